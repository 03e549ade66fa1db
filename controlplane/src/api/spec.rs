//! Completing the OpenAPI document so a generated client can trust it (issue 9): the
//! handler annotations say what is particular to each route; this adds what every route
//! shares and the annotations cannot see — the failures of the guard (401, 403, 429) and of
//! the extractors (400, 413) derived from the route table and the operation's shape, 503,
//! the response headers, the form of path parameters, and the links from a created resource
//! to the operations on it. `tests/controlplane/contract.rs` holds the server to the result.

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response as DocResponse, ResponseBuilder};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Type};

use super::routes::Access;

/// Completes the generated document so it says everything the server does, which the
/// handler annotations alone do not: the failures every route shares (the guard's 401, 403
/// and 429, the extractors' 400 and 413, and 503 when the store or cache is down) derived
/// from the route table and the operation's shape, the rate-limit headers, and the links
/// from a created resource to the operations on it (clients and the stateful contract test
/// follow them). Handlers document only what is particular to them.
pub(crate) fn complete(doc: &mut utoipa::openapi::OpenApi) {
    for (path, item) in &mut doc.paths.paths {
        for (method, op) in [
            ("GET", item.get.as_mut()),
            ("PUT", item.put.as_mut()),
            ("POST", item.post.as_mut()),
            ("DELETE", item.delete.as_mut()),
        ] {
            let Some(op) = op else { continue };
            path_params(path, op);
            let access = super::routes::lookup(method, path).map_or(Access::Public, |r| r.access);
            shared_failures(op, access);
            if let Some(links) = links_of(method, path) {
                add_links(op, links);
            }
        }
    }
}

/// Puts this server's configured bounds into the served document where the annotations can
/// only name the widest one: a token's `rateLimit` is capped by `--max-token-rate-limit` and
/// the user rate limit, so the document a client is generated from says this server's cap.
pub(crate) fn serve_limits(doc: &mut serde_json::Value, token_rate_cap: i64) {
    let rate = &mut doc["components"]["schemas"]["CreateToken"]["properties"]["rateLimit"];
    if rate.is_object() {
        rate["maximum"] = token_rate_cap.into();
    }
}

fn error(description: &str) -> DocResponse {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
                .build(),
        )
        .build()
}

fn integer_header(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(
            utoipa::openapi::ObjectBuilder::new().schema_type(Type::Integer),
        ))
        .description(Some(description))
        .build()
}

/// Adds `status` unless the handler documented it; a documented one gets the shared codes
/// appended to its description.
fn add(op: &mut Operation, status: &str, description: &str) {
    match op.responses.responses.get_mut(status) {
        Some(RefOr::T(r)) => {
            if !r.description.contains(description) {
                r.description = format!("{}; {description}", r.description);
            }
        }
        Some(RefOr::Ref(_)) => {}
        None => {
            op.responses
                .responses
                .insert(status.to_owned(), RefOr::T(error(description)));
        }
    }
}

fn shared_failures(op: &mut Operation, access: Access) {
    let has_body = op.request_body.is_some();
    if has_body || op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
        add(
            op,
            "400",
            "VALIDATION_FAILED: a parameter or the body breaks the schema; `details.fields` names it",
        );
    }
    if has_body {
        add(
            op,
            "413",
            "PAYLOAD_TOO_LARGE: the body is over the server's limit",
        );
    }
    let authenticated = !matches!(access, Access::Public | Access::Signed | Access::Node);
    if authenticated {
        add(
            op,
            "401",
            "AUTH_TOKEN_MISSING, AUTH_TOKEN_INVALID, AUTH_TOKEN_EXPIRED or AUTH_TOKEN_REVOKED",
        );
        add(
            op,
            "429",
            "RATE_LIMIT_EXCEEDED: the credential's hourly limit is used up",
        );
    }
    if matches!(
        access,
        Access::Session | Access::Perm(_) | Access::SessionPerm(_)
    ) {
        add(
            op,
            "403",
            "AUTH_INSUFFICIENT_PERMISSIONS or AUTH_ROLE_RESTRICTED",
        );
    }
    add(
        op,
        "503",
        "SERVICE_UNAVAILABLE: the database or the cache cannot be reached",
    );
    for (status, response) in &mut op.responses.responses {
        let RefOr::T(r) = response else { continue };
        r.headers.insert(
            "X-Request-Id".to_owned(),
            RefOr::T(
                HeaderBuilder::new()
                    .schema(Some(
                        utoipa::openapi::ObjectBuilder::new().schema_type(Type::String),
                    ))
                    .description(Some(
                        "The request's id (the caller's `X-Request-Id` when it is 1-64 of \
                         `[A-Za-z0-9._-]`, else a new UUID); also `error.requestId`",
                    ))
                    .build(),
            ),
        );
        if status == "429" {
            r.headers.insert(
                "Retry-After".to_owned(),
                RefOr::T(integer_header("Seconds until a request may succeed")),
            );
        } else if authenticated && status != "401" {
            for (name, what) in [
                ("X-RateLimit-Limit", "Requests allowed per hour"),
                ("X-RateLimit-Remaining", "Requests left in this hour"),
                ("X-RateLimit-Reset", "Unix time when the window resets"),
            ] {
                r.headers
                    .insert(name.to_owned(), RefOr::T(integer_header(what)));
            }
        }
    }
}

/// Camera ids of the recording routes: any camera the data plane knows (`[streams]` ids
/// too, and cameras deleted since), `camstream_protocol::auth::is_valid_camera_id`.
const CAMERA_ID: &str = r"^[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$";
/// Free text as `extract::text` takes it: no control characters, not only blanks.
const TEXT: &str = r"^[^\x00-\x1f\x7f-\x9f]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\x00-\x1f\x7f-\x9f]*$";
/// `{recording id}.mp4`.
const MEDIA_FILE: &str = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.mp4$";

/// The form of the path parameters: an `{id}` is a server-made UUID, except where it names a
/// camera of the recording routes; of another form it does not exist (404). A control
/// character in any of them is refused with 400 (`extract::Path`).
fn path_params(path: &str, op: &mut Operation) {
    use utoipa::openapi::path::{Parameter, ParameterIn};
    use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat};
    for p in op.parameters.iter_mut().flatten() {
        let RefOr::T(Parameter {
            name,
            parameter_in: ParameterIn::Path,
            schema,
            ..
        }) = p
        else {
            continue;
        };
        let camera = path.starts_with("/vod/")
            || path.starts_with("/api/v1/recordings/timeline/")
            || path.starts_with("/api/v1/recordings/playback/")
            || path.starts_with("/api/v1/recordings/export/")
            || path.starts_with("/api/v1/retention/cameras/");
        let string = ObjectBuilder::new().schema_type(Type::String);
        let string = match name.as_str() {
            "id" if camera => string.pattern(Some(CAMERA_ID)),
            "id" => string.format(Some(SchemaFormat::Custom("uuid".to_owned()))),
            "file" => string.pattern(Some(MEDIA_FILE)),
            // `extract::text(.., 256)`, as a company is written on a camera.
            "company" => string
                .pattern(Some(TEXT))
                .min_length(Some(1))
                .max_length(Some(256)),
            _ => continue,
        };
        *schema = Some(string.into());
    }
}

/// The operations a created resource leads to: (method, path, status, targets).
type Links = (&'static str, &'static [&'static str]);

fn links_of(method: &str, path: &str) -> Option<Links> {
    const CAMERA: &[&str] = &[
        "getCamera",
        "updateCamera",
        "deleteCamera",
        "rotateCameraKey",
        "getCameraPlayback",
        "getCameraStatus",
        "getCameraHealth",
        "getCameraAnalytics",
        "startCameraRecording",
        "stopCameraRecording",
        "getCameraMetrics",
        "getRecordingTimeline",
        "getRecordingPlayback",
        "setCameraRetention",
        "deleteCameraRetention",
    ];
    match (method, path) {
        ("POST", "/api/v1/cameras") => Some(("201", CAMERA)),
        ("POST", "/api/v1/users") => Some(("201", &["getUser", "updateUser", "deleteUser"])),
        ("POST", "/api/v1/tokens") => Some(("201", &["revokeToken", "setTokenPermissions"])),
        ("POST", "/api/v1/layouts") => {
            Some(("201", &["getLayout", "updateLayout", "deleteLayout"]))
        }
        ("POST", "/api/v1/notification-channels") => Some((
            "201",
            &[
                "getNotificationChannel",
                "updateNotificationChannel",
                "deleteNotificationChannel",
            ],
        )),
        ("POST", "/api/v1/alert-rules") => Some((
            "201",
            &["getAlertRule", "updateAlertRule", "deleteAlertRule"],
        )),
        _ => None,
    }
}

fn add_links(op: &mut Operation, (status, targets): Links) {
    let Some(RefOr::T(r)) = op.responses.responses.get_mut(status) else {
        return;
    };
    for target in targets {
        let link = LinkBuilder::new()
            .operation_id(*target)
            .parameter("id", "$response.body#/data/id")
            .description(format!("`{target}` of the created resource"))
            .build();
        r.links.insert((*target).to_owned(), RefOr::T(link));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::super::routes::{Access, ROUTES};

    fn doc() -> Value {
        serde_json::to_value(super::super::openapi()).unwrap()
    }

    /// Every `$ref` names a schema the document has (an enum used only as a query
    /// parameter is not collected by utoipa unless a body uses it too; generated clients
    /// refuse a dangling reference).
    #[test]
    fn every_reference_resolves() {
        fn walk(v: &Value, schemas: &serde_json::Map<String, Value>, bad: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    if let Some(Value::String(r)) = m.get("$ref") {
                        let name = r.strip_prefix("#/components/schemas/").unwrap_or(r);
                        if !schemas.contains_key(name) {
                            bad.push(r.clone());
                        }
                    }
                    m.values().for_each(|x| walk(x, schemas, bad));
                }
                Value::Array(a) => a.iter().for_each(|x| walk(x, schemas, bad)),
                _ => {}
            }
        }
        let doc = doc();
        let schemas = doc["components"]["schemas"].as_object().unwrap().clone();
        let mut bad = Vec::new();
        walk(&doc, &schemas, &mut bad);
        assert_eq!(bad, Vec::<String>::new());
    }

    #[test]
    fn every_route_lists_the_shared_failures() {
        let doc = doc();
        for r in ROUTES.iter().filter(|r| r.documented) {
            let op = &doc["paths"][r.path][r.method.to_lowercase()];
            let responses = op["responses"].as_object().unwrap();
            let has = |s: &str| responses.contains_key(s);
            let what = format!("{} {}", r.method, r.path);
            // The live events upgrade authenticates in its handler (header or first
            // message) and documents the header's 401/403/429 itself.
            let authenticated =
                !matches!(r.access, Access::Public | Access::Signed) || r.path == "/api/v1/ws";
            assert_eq!(
                has("401"),
                authenticated || r.path.contains("/auth/"),
                "{what}"
            );
            assert_eq!(
                has("429"),
                authenticated || r.path.ends_with("/login"),
                "{what}"
            );
            if matches!(
                r.access,
                Access::Session | Access::Perm(_) | Access::SessionPerm(_) | Access::Signed
            ) {
                assert!(has("403"), "{what}");
            }
            let body = op["requestBody"].is_object();
            assert_eq!(has("413"), body, "{what}");
            if body || op["parameters"].as_array().is_some_and(|p| !p.is_empty()) {
                assert!(has("400"), "{what}");
            }
            assert!(has("503"), "{what}");
            for (status, response) in responses {
                assert!(
                    response["headers"]["X-Request-Id"].is_object(),
                    "{what} {status}"
                );
            }
            if has("429") {
                assert!(
                    responses["429"]["headers"]["Retry-After"].is_object(),
                    "{what}"
                );
            }
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorEnvelope",
                        "{what} {status}"
                    );
                }
            }
        }
    }

    #[test]
    fn the_served_token_rate_limit_is_the_configured_cap() {
        let mut doc = doc();
        assert_eq!(
            doc["components"]["schemas"]["CreateToken"]["properties"]["rateLimit"]["maximum"],
            1_000_000
        );
        super::serve_limits(&mut doc, 10_000);
        assert_eq!(
            doc["components"]["schemas"]["CreateToken"]["properties"]["rateLimit"]["maximum"],
            10_000
        );
    }

    #[test]
    fn operation_ids_are_unique_and_links_resolve() {
        let doc = doc();
        let mut ids = BTreeSet::new();
        let mut targets = Vec::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let id = op["operationId"].as_str().expect("an operationId");
                assert!(ids.insert(id.to_owned()), "operationId {id} twice");
                for response in op["responses"].as_object().unwrap().values() {
                    for link in response["links"].as_object().into_iter().flatten() {
                        targets.push(link.1["operationId"].as_str().unwrap().to_owned());
                        assert_eq!(link.1["parameters"]["id"], "$response.body#/data/id");
                    }
                }
            }
        }
        for t in &targets {
            assert!(ids.contains(t), "a link to unknown operation {t}");
        }
        for t in [
            "getCamera",
            "updateCamera",
            "deleteCamera",
            "getUser",
            "revokeToken",
        ] {
            assert!(targets.iter().any(|x| x == t), "no link to {t}");
        }
    }

    #[test]
    fn nullable_and_constrained_fields() {
        let doc = doc();
        let s = &doc["components"]["schemas"];
        assert_eq!(
            s["ErrorBody"]["properties"]["details"]["type"],
            serde_json::json!(["object", "null"])
        );
        assert_eq!(
            s["ErrorBody"]["properties"]["timestamp"]["format"],
            "date-time"
        );
        let name = &s["CreateCamera"]["properties"]["name"];
        assert_eq!(
            (name["minLength"].clone(), name["maxLength"].clone()),
            (1.into(), 128.into())
        );
        assert!(name["pattern"].is_string());
        assert_eq!(
            s["CameraView"]["properties"]["createdAt"]["format"],
            "date-time"
        );
        let page = doc["paths"]["/api/v1/cameras"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap()
            .clone();
        assert_eq!(
            (
                page["schema"]["minimum"].clone(),
                page["schema"]["maximum"].clone()
            ),
            (1.into(), 100.into())
        );
        let id = &doc["paths"]["/api/v1/cameras/{id}"]["get"]["parameters"][0]["schema"];
        assert_eq!(id["format"], "uuid");
    }

    /// The text pattern says what `extract::text` enforces: not blank, no control character.
    #[test]
    fn text_pattern_matches_the_check() {
        let doc = doc();
        let pattern = doc["components"]["schemas"]["CreateCamera"]["properties"]["name"]["pattern"]
            .as_str()
            .unwrap()
            .to_owned();
        let re = regex::Regex::new(&pattern).unwrap();
        for s in [
            "a",
            " a ",
            "Lobby 2",
            "é",
            "\u{feff}",
            " \u{3000}x",
            "",
            " ",
            "\u{3000}",
            "\t",
            "a\nb",
            "a\u{0}",
            "\u{85}",
            "\u{a0}",
            "x\u{9f}",
        ] {
            let server = super::super::extract::text("f", s, 128).is_ok();
            assert_eq!(re.is_match(s), server, "{s:?}");
        }
    }
}
