//! `/api/docs` (Swagger UI with bundled assets, nothing from the internet),
//! `/api/v1/openapi.json` (OpenAPI 3.1 with the camera routes) and `/metrics` (Prometheus
//! text with HTTP latency histograms) on the binary's HTTP listener.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::api::{self, Api};
use crate::common::eventually;
use crate::lifecycle::{metric, start};

/// Issue 4: the Swagger UI works offline and the OpenAPI document describes the camera
/// routes; `/metrics` has the stream gauges and per-route latency histograms.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_openapi_and_metrics() {
    let server = start("cp-docs", Vec::new()).await;

    let r = server.get("/api/docs").await;
    assert_eq!(r.status(), 200);
    let ctype = r.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(ctype.starts_with("text/html"), "{ctype}");
    let html = r.text().await.expect("body");
    assert!(html.contains("SwaggerUIBundle"), "{html}");
    assert!(html.contains("/api/v1/openapi.json"), "{html}");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "the page loads something from elsewhere:\n{html}"
    );
    let assets: Vec<&str> = ["src=\"", "href=\""]
        .iter()
        .flat_map(|attr| html.split(attr).skip(1))
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert_eq!(assets.len(), 2, "a script and a stylesheet: {assets:?}");
    for asset in assets {
        assert!(asset.starts_with("/api/docs/"), "{asset}");
        let r = server.get(asset).await;
        assert_eq!(r.status(), 200, "{asset}");
        let ctype = r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        let body = r.bytes().await.expect("body");
        let (want, min) = if asset.ends_with(".js") {
            ("application/javascript", 500_000)
        } else {
            ("text/css", 50_000)
        };
        assert_eq!(ctype, want, "{asset}");
        assert!(body.len() > min, "{asset}: {} bytes", body.len());
        println!("{asset}: {} bytes of {ctype}", body.len());
    }
    let r = server.get("/api/docs/elsewhere.js").await;
    assert_eq!(r.status(), 404);

    let doc: Value = server
        .get("/api/v1/openapi.json")
        .await
        .json()
        .await
        .expect("openapi.json parses as JSON");
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1"), "OpenAPI {version}");
    assert!(doc["info"]["title"].is_string(), "{}", doc["info"]);
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer",
        "{}",
        doc["components"]["securitySchemes"]
    );
    let paths = doc["paths"].as_object().expect("paths");
    for (path, methods) in [
        ("/api/v1/cameras", &["get", "post"][..]),
        ("/api/v1/cameras/{id}", &["get", "put", "delete"]),
        ("/api/v1/cameras/{id}/rotate-key", &["post"]),
        ("/api/v1/cameras/{id}/stream/hls", &["get"]),
        ("/api/v1/cameras/{id}/stream/webrtc", &["get"]),
        ("/api/v1/cameras/{id}/status", &["get"]),
        ("/api/v1/cameras/{id}/analytics", &["get"]),
        ("/api/v1/auth/login", &["post"]),
    ] {
        let item = paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} missing from {:?}", paths.keys()));
        for m in methods {
            let op = &item[*m];
            assert!(op.is_object(), "{m} {path} missing: {item}");
            assert!(op["responses"].is_object(), "{m} {path} has no responses");
        }
    }
    let create = &paths["/api/v1/cameras"]["post"];
    assert!(
        create["requestBody"]["content"]["application/json"]["schema"].is_object(),
        "{create}"
    );
    assert!(create["responses"]["201"].is_object(), "{create}");
    let schemas = doc["components"]["schemas"].as_object().expect("schemas");
    let camera = schemas
        .iter()
        .find(|(_, s)| s["properties"]["rtmpsUrl"].is_object())
        .map(|(name, s)| (name.clone(), s.clone()))
        .expect("a schema with rtmpsUrl (the camera view)");
    for field in ["id", "rtmpUrl", "streamStatus", "isActive", "serialNumber"] {
        assert!(
            camera.1["properties"][field].is_object(),
            "{} lacks {field}",
            camera.0
        );
    }

    // Metrics: requests are timed per route template, not per camera id.
    let api = Api::admin(&server).await;
    let cam = api.create_camera("Lobby", "E2E-DOCS-1").await;
    let id = cam["id"].as_str().expect("id");
    for _ in 0..3 {
        api.status(id).await;
    }
    let r = api
        .call(Method::GET, "/api/v1/cameras/not-a-uuid", None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "CAMERA_NOT_FOUND");
    let r = api::login(&server, "admin", "Wrong-Password-123").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.json);
    let text = eventually(
        "gauges after the first health tick",
        Duration::from_secs(5),
        || async {
            let t = server.get_text("/metrics").await;
            metric(&t, "camstream_streams_active").map(|_| t)
        },
    )
    .await;
    assert_eq!(metric(&text, "camstream_streams_active"), Some(0.0));
    assert!(
        text.contains("# TYPE camstream_http_request_duration_seconds histogram"),
        "{text}"
    );
    let status_count = text
        .lines()
        .find(|l| {
            l.starts_with("camstream_http_request_duration_seconds_count{")
                && l.contains("route=\"/api/v1/cameras/{id}/status\"")
                && l.contains("status=\"200\"")
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(status_count, Some(3.0), "{text}");
    for (route, status) in [
        ("/api/v1/cameras/{id}", "404"),
        ("/api/v1/auth/login", "401"),
        ("/api/v1/cameras", "201"),
    ] {
        let want = format!("route=\"{route}\",status=\"{status}\",le=\"+Inf\"}}");
        assert!(
            text.lines().any(|l| l.contains(&want)),
            "no histogram for {route} {status}:\n{text}"
        );
    }
    assert!(
        !text.contains(id),
        "a camera id became a label (unbounded cardinality)"
    );
    server.assert_healthy().await;
}
