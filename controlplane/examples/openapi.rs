//! Prints the `/api/v1` OpenAPI document (the dashboard generates its API types from it).
//!
//! `cargo run -q -p camstream-controlplane --example openapi > web/openapi.json`

fn main() {
    let doc = camstream_controlplane::api::openapi();
    let json = serde_json::to_string_pretty(&doc).expect("the OpenAPI document serializes");
    println!("{json}");
}
