//! A small `/api/v1` client for the tests: login, JSON calls that check the envelope, and
//! the camera calls the flows use.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::common::Server;

/// The first admin's password (`--admin-password`).
pub(crate) const ADMIN_PASSWORD: &str = "E2e-Root-Pass-42";

/// A JSON response: status and body (`Value::Null` when the body is not JSON).
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) json: Value,
}

impl Reply {
    /// The `error.code` of an error envelope.
    pub(crate) fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or_default()
    }
}

/// An API client holding one bearer credential.
pub(crate) struct Api {
    base: String,
    client: reqwest::Client,
    pub(crate) token: String,
}

/// Sends `method path` with an optional bearer `token` and JSON `body`.
pub(crate) async fn call(
    server: &Server,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let mut req = server.client().request(method.clone(), server.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = res.status();
    let bytes = res.bytes().await.expect("read body");
    Reply {
        status,
        json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    }
}

/// `POST /auth/login`.
pub(crate) async fn login(server: &Server, username: &str, password: &str) -> Reply {
    call(
        server,
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({ "username": username, "password": password })),
    )
    .await
}

impl Api {
    /// Logs in as `admin` with [`ADMIN_PASSWORD`].
    pub(crate) async fn admin(server: &Server) -> Api {
        let r = login(server, "admin", ADMIN_PASSWORD).await;
        assert_eq!(r.status, StatusCode::OK, "admin login: {}", r.json);
        let token = r.json["data"]["accessToken"]
            .as_str()
            .expect("accessToken")
            .to_owned();
        Api::with_token(server, token)
    }

    /// A client using `token` (an access JWT or an API token).
    pub(crate) fn with_token(server: &Server, token: String) -> Api {
        Api {
            base: server.url(""),
            client: server.client().clone(),
            token,
        }
    }

    /// Sends a request with this client's credential.
    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Reply {
        let mut req = self
            .client
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = res.status();
        let bytes = res.bytes().await.expect("read body");
        Reply {
            status,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// A request that must succeed with `want`; returns the envelope's `data`.
    pub(crate) async fn ok(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        want: StatusCode,
    ) -> Value {
        let r = self.call(method.clone(), path, body).await;
        assert_eq!(r.status, want, "{method} {path}: {}", r.json);
        assert_eq!(r.json["success"], true, "{method} {path}: {}", r.json);
        r.json["data"].clone()
    }

    /// `POST /cameras`: the created camera with its key and ingest URLs.
    pub(crate) async fn create_camera(&self, name: &str, serial: &str) -> Value {
        self.ok(
            Method::POST,
            "/api/v1/cameras",
            Some(json!({ "name": name, "serialNumber": serial, "location": "e2e" })),
            StatusCode::CREATED,
        )
        .await
    }

    /// `GET /cameras/{id}`.
    pub(crate) async fn camera(&self, id: &str) -> Value {
        self.ok(
            Method::GET,
            &format!("/api/v1/cameras/{id}"),
            None,
            StatusCode::OK,
        )
        .await
    }

    /// `GET /cameras/{id}/status`.
    pub(crate) async fn status(&self, id: &str) -> Value {
        self.ok(
            Method::GET,
            &format!("/api/v1/cameras/{id}/status"),
            None,
            StatusCode::OK,
        )
        .await
    }

    /// `GET /cameras/{id}/stream/hls`: the signed playback URLs.
    pub(crate) async fn playback(&self, id: &str) -> Value {
        self.ok(
            Method::GET,
            &format!("/api/v1/cameras/{id}/stream/hls"),
            None,
            StatusCode::OK,
        )
        .await
    }
}
