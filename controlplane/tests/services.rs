//! The API over the production backends: PostgreSQL and Redis started by the test, the same
//! flows as on SQLite + memory (sessions, cameras, rate limits, health, publish).

mod support;

use axum::http::StatusCode;
use camstream_protocol::auth::{Denied, PublishRequest};
use camstream_protocol::{StreamHealth, StreamState};
use serde_json::json;
use support::{ADMIN_PASSWORD, Postgres, Redis, TestApp};

#[tokio::test]
async fn api_on_postgres_and_redis() {
    let pg = Postgres::start();
    let redis = Redis::start();
    let db = pg.database().await;
    let redis_url = redis.url();
    let app = TestApp::start(|c| {
        c.database_url = Some(db.clone());
        c.redis_url = Some(redis_url.clone());
        c.user_rate_limit = 1000;
    })
    .await;
    assert_eq!(app.cp.store().backend(), "postgres");
    assert_eq!(app.cp.cache().backend(), "redis");

    // Sessions live in Redis.
    let (admin, refresh) = app.login("admin", ADMIN_PASSWORD).await;
    let r = app
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refreshToken": refresh })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.json);
    let r = app
        .call(
            "POST",
            "/api/v1/auth/refresh",
            None,
            Some(json!({ "refreshToken": refresh })),
        )
        .await;
    assert_eq!(r.code(), "AUTH_TOKEN_REVOKED");
    // The replay ended the session in Redis: its access token is dead too.
    let r = app.call("GET", "/api/v1/auth/me", Some(&admin), None).await;
    assert_eq!(
        (r.status, r.code()),
        (StatusCode::UNAUTHORIZED, "AUTH_TOKEN_REVOKED")
    );

    // Cameras in PostgreSQL, with filters and conflicts.
    let admin = app.admin().await;
    let cam = app
        .camera(&admin, "Loading bay", "PG-1", Some("acme"))
        .await;
    app.camera(&admin, "Roof", "PG-2", Some("globex")).await;
    let id = cam["id"].as_str().unwrap().to_owned();
    let key = cam["streamKey"].as_str().unwrap().to_owned();
    let r = app
        .call(
            "GET",
            "/api/v1/cameras?search=BAY&company=acme",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.json["pagination"]["total"], 1);
    let r = app
        .call(
            "POST",
            "/api/v1/cameras",
            Some(&admin),
            Some(json!({ "name": "x", "serialNumber": "PG-1" })),
        )
        .await;
    assert_eq!(r.code(), "CAMERA_SERIAL_DUPLICATE");
    let r = app
        .call(
            "GET",
            "/api/v1/cameras?search=%27%3B%20DROP%20TABLE%20cameras%3B--",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.json["pagination"]["total"], 0);

    // Publish authorization and health reports.
    let authz = app.cp.authorizer();
    let req = |k: &'static str| PublishRequest {
        app: "live",
        stream_key: k,
        token: None,
        peer: "127.0.0.1:1".parse().unwrap(),
        tls: true,
    };
    let key: &'static str = Box::leak(key.into_boxed_str());
    assert_eq!(&*authz.authorize(req(key)).await.unwrap(), id.as_str());
    assert_eq!(
        authz.authorize(req("x".repeat(44).leak())).await,
        Err(Denied::UnknownKey)
    );
    app.cp
        .report_health(vec![StreamHealth {
            camera_id: id.clone(),
            state: StreamState::Online,
            fps: 25.0,
            bitrate_bps: 1_000_000,
            dropped_frames: 0,
            resolution: Some((1920, 1080)),
            codecs: vec![],
            viewers: 2,
            bytes_in: 10,
            bytes_out: 20,
            since: std::time::SystemTime::now(),
            last_seen: std::time::SystemTime::now(),
        }])
        .await
        .unwrap();
    let s = app
        .call(
            "GET",
            &format!("/api/v1/cameras/{id}/status"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(s.json["data"]["status"], "online");
    assert_eq!(s.json["data"]["resolution"], "1920x1080");
    let dash = app
        .call("GET", "/api/v1/analytics/dashboard", Some(&admin), None)
        .await;
    assert_eq!(dash.json["data"]["onlineCameras"], 1);
    assert_eq!(dash.json["data"]["totalViewers"], 2);

    // Token rate limit counted in Redis, alert row in PostgreSQL.
    let r = app
        .call(
            "POST",
            "/api/v1/tokens",
            Some(&admin),
            Some(json!({ "name": "t", "permissions": ["cameras:read"], "rateLimit": 2 })),
        )
        .await;
    let token = r.json["data"]["tokenSecret"].as_str().unwrap().to_owned();
    let statuses = [
        app.call("GET", "/api/v1/cameras", Some(&token), None)
            .await
            .status,
        app.call("GET", "/api/v1/cameras", Some(&token), None)
            .await
            .status,
        app.call("GET", "/api/v1/cameras", Some(&token), None)
            .await
            .status,
    ];
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let alerts = app
        .cp
        .store()
        .list_alerts(Some("API_RATE_LIMIT"), 5)
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1);
    app.cp.shutdown().await;
}
