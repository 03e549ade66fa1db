//! The web dashboard at `/`: the files Vite builds into `web/dist`, embedded in the binary
//! (see `build.rs`) or read from `--web-dir`.
//!
//! Routing: every route of the planes keeps precedence. A GET or HEAD outside the reserved
//! prefixes (`/api`, `/hls`, `/vod`, `/metrics`, `/healthz`, `/readyz`) is a dashboard file
//! when one has that path; otherwise the planes' router answers, and when it has nothing
//! (404) the request is a client route of the single-page app and gets `index.html`.
//! Under the reserved prefixes the planes answer alone (their JSON 404 included).
//!
//! Caching: Vite names what it puts in `/assets/` by content hash, so those are immutable
//! for a year; `index.html` is `no-cache` so a new build is picked up at the next load.

use std::convert::Infallible;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

/// Path prefixes that belong to the planes, never to the dashboard.
const RESERVED: [&str; 7] = [
    "/api", "/hls", "/whep", "/vod", "/metrics", "/healthz", "/readyz",
];

/// Where the dashboard's files come from.
#[derive(Debug, Clone)]
pub(crate) enum Assets {
    /// Compiled into the binary from `web/dist` (or a placeholder page when it was not built).
    Embedded,
    /// A directory read on every request (`--web-dir`, development).
    Dir(PathBuf),
}

impl Assets {
    /// Whether the embedded copy is a real build (false: the placeholder page).
    pub(crate) fn embedded_is_built() -> bool {
        embedded::BUILT
    }

    async fn get(&self, rel: &str) -> Option<Body> {
        match self {
            Assets::Embedded => embedded::FILES
                .iter()
                .find(|(p, _)| *p == rel)
                .map(|(_, bytes)| Body::from(*bytes)),
            Assets::Dir(dir) => {
                let rel = Path::new(rel);
                // Only plain names below the directory: no `..`, no absolute paths.
                if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
                    return None;
                }
                let path = dir.join(rel);
                if !tokio::fs::metadata(&path).await.ok()?.is_file() {
                    return None;
                }
                tokio::fs::read(path).await.ok().map(Body::from)
            }
        }
    }
}

/// `planes` with the dashboard as its fallback (see the module docs for the order).
pub(crate) fn with_dashboard(planes: Router, assets: Assets) -> Router {
    let assets = Arc::new(assets);
    Router::new().fallback_service(tower::service_fn(move |req: Request| {
        let planes = planes.clone();
        let assets = assets.clone();
        async move { Ok::<_, Infallible>(serve(req, planes, &assets).await) }
    }))
}

async fn serve(req: Request, planes: Router, assets: &Assets) -> Response {
    let path = req.uri().path().to_owned();
    let head = req.method() == Method::HEAD;
    let reserved = RESERVED
        .iter()
        .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')));
    if reserved || !(head || req.method() == Method::GET) {
        return planes.oneshot(req).await.into_response();
    }
    let rel = path.trim_start_matches('/');
    if !rel.is_empty() && rel != "index.html" {
        if let Some(body) = assets.get(rel).await {
            return file(rel, body, head);
        }
        if rel.starts_with("assets/") {
            // A hashed file that is not (or no longer) there: a real 404, so a stale page
            // sees its chunk fail instead of parsing HTML as JavaScript.
            return (StatusCode::NOT_FOUND, "not found").into_response();
        }
    }
    let answer = planes.oneshot(req).await.into_response();
    if answer.status() != StatusCode::NOT_FOUND {
        return answer;
    }
    match assets.get("index.html").await {
        Some(body) => file("index.html", body, head),
        None => answer,
    }
}

fn file(rel: &str, body: Body, head: bool) -> Response {
    let cache = if rel == "index.html" {
        "no-cache"
    } else if rel.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=3600"
    };
    let mut res = if head {
        Response::new(Body::empty())
    } else {
        Response::new(body)
    };
    let headers = res.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(rel)),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    res
}

fn content_type(rel: &str) -> &'static str {
    let ext = rel.rsplit_once('.').map_or("", |(_, e)| e);
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    /// A stand-in for the planes: one API route and a JSON 404 fallback, like the control
    /// plane's router.
    fn planes() -> Router {
        Router::new()
            .route("/api/v1/ping", get(|| async { "pong" }))
            .route("/healthz", get(|| async { "ok" }))
            .fallback(|| async { (StatusCode::NOT_FOUND, "{\"success\":false}") })
    }

    fn dist() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("camstream-web-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("assets")).expect("create dist");
        std::fs::write(dir.join("index.html"), "<!doctype html><div id=root></div>")
            .expect("write index");
        std::fs::write(dir.join("assets/index-abc123.js"), "console.log(1)").expect("write js");
        std::fs::write(dir.join("favicon.svg"), "<svg/>").expect("write icon");
        dir
    }

    async fn call(
        app: &Router,
        method: Method,
        path: &str,
    ) -> (StatusCode, String, String, String) {
        let req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .expect("request");
        let res = app.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let h = |n: header::HeaderName| {
            res.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (ct, cc) = (h(header::CONTENT_TYPE), h(header::CACHE_CONTROL));
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, ct, cc, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn serves_the_app_with_spa_fallback_and_keeps_api_precedence() {
        let app = with_dashboard(planes(), Assets::Dir(dist()));

        let (s, ct, cc, body) = call(&app, Method::GET, "/").await;
        assert_eq!(s, StatusCode::OK);
        assert!(ct.starts_with("text/html"), "{ct}");
        assert_eq!(cc, "no-cache");
        assert!(body.contains("id=root"), "{body}");

        // A client route is the app.
        let (s, _, cc, body) = call(&app, Method::GET, "/cameras/x").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(cc, "no-cache");
        assert!(body.contains("id=root"));

        // Hashed assets are immutable; a missing one is a real 404.
        let (s, ct, cc, body) = call(&app, Method::GET, "/assets/index-abc123.js").await;
        assert_eq!(s, StatusCode::OK);
        assert!(ct.starts_with("text/javascript"), "{ct}");
        assert_eq!(cc, "public, max-age=31536000, immutable");
        assert_eq!(body, "console.log(1)");
        let (s, _, _, _) = call(&app, Method::GET, "/assets/gone-000.js").await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, ct, _, _) = call(&app, Method::GET, "/favicon.svg").await;
        assert_eq!((s, ct.as_str()), (StatusCode::OK, "image/svg+xml"));

        // HEAD: headers only.
        let (s, _, cc, body) = call(&app, Method::HEAD, "/fleet").await;
        assert_eq!(
            (s, cc.as_str(), body.as_str()),
            (StatusCode::OK, "no-cache", "")
        );

        // The planes' routes and their 404s are untouched.
        let (s, _, _, body) = call(&app, Method::GET, "/api/v1/ping").await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "pong"));
        let (s, _, _, body) = call(&app, Method::GET, "/healthz").await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "ok"));
        for path in [
            "/api/v1/nothing",
            "/hls/cam/nothing.m3u8",
            "/vod/x",
            "/metrics/x",
        ] {
            let (s, _, _, body) = call(&app, Method::GET, path).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(body, "{\"success\":false}", "{path}");
        }
        // Only GET and HEAD reach the dashboard.
        let (s, _, _, body) = call(&app, Method::POST, "/cameras/x").await;
        assert_eq!(
            (s, body.as_str()),
            (StatusCode::NOT_FOUND, "{\"success\":false}")
        );

        // No way out of the directory.
        let (_, _, _, body) = call(&app, Method::GET, "/assets/../../etc/passwd").await;
        assert!(!body.contains("root:"), "{body}");
    }

    #[tokio::test]
    async fn embedded_copy_serves_index() {
        let app = with_dashboard(planes(), Assets::Embedded);
        let (s, ct, cc, body) = call(&app, Method::GET, "/cameras/x").await;
        assert_eq!(s, StatusCode::OK);
        assert!(ct.starts_with("text/html"), "{ct}");
        assert_eq!(cc, "no-cache");
        assert!(
            body.contains("<html") || body.contains("<!doctype"),
            "{body}"
        );
        let (s, _, _, _) = call(&app, Method::GET, "/api/v1/ping").await;
        assert_eq!(s, StatusCode::OK);
        if Assets::embedded_is_built() {
            // The real build: its entry script is embedded and immutable.
            assert!(body.contains("id=\"root\""), "{body}");
            let script = body
                .split('"')
                .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
                .expect("index.html names its script");
            let (s, ct, cc, _) = call(&app, Method::GET, script).await;
            assert_eq!(s, StatusCode::OK, "{script}");
            assert!(ct.starts_with("text/javascript"), "{ct}");
            assert_eq!(cc, "public, max-age=31536000, immutable");
        } else {
            assert!(body.contains("built without the web dashboard"), "{body}");
        }
    }
}
