//! Restart persistence on the embedded store: stop `camstream serve` (SIGTERM) while a
//! camera publishes, start it again on the same data directory, and check that the admin,
//! the camera, its stream key, API tokens and the generated master secret survived.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::time::Instant;

use crate::api::{self, Api};
use crate::common::ffmpeg::{Ffmpeg, clips};
use crate::lifecycle::{start, wait_online};

/// Issue 4: after a restart on the same data dir the camera, its key and the admin still
/// work, and tokens signed before the restart still verify (the JWT secret persisted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_admin_camera_key_and_secret() {
    let clips = clips().await;
    // No --jwt-secret: the secret is generated into the data dir on first start.
    let server = start("cp-restart", Vec::new()).await;
    let secret_path = server.dir.join("data").join("jwt.secret");
    let secret = std::fs::read_to_string(&secret_path).expect("jwt.secret generated");
    assert!(secret.trim().len() >= 32, "short secret");
    let mode = std::fs::metadata(&secret_path)
        .expect("stat jwt.secret")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "jwt.secret mode {mode:o}");
    server
        .wait_log(&["created the first admin"], Duration::from_secs(1))
        .await;

    let api = Api::admin(&server).await;
    let cam = api.create_camera("Gate", "E2E-RESTART-1").await;
    let id = cam["id"].as_str().expect("id").to_owned();
    let key = cam["streamKey"].as_str().expect("streamKey").to_owned();
    let created = api
        .ok(
            Method::POST,
            "/api/v1/tokens",
            Some(json!({ "name": "e2e", "permissions": ["cameras:read", "streams:play"] })),
            StatusCode::CREATED,
        )
        .await;
    let api_token = created["tokenSecret"]
        .as_str()
        .expect("tokenSecret")
        .to_owned();
    let publisher = Ffmpeg::publish(
        &clips.av_long,
        cam["rtmpUrl"].as_str().expect("rtmpUrl"),
        server.dir.join("publish-before.stderr"),
    );
    wait_online(&api, &id, Instant::now()).await;
    let old_playback = api.playback(&id).await["token"]
        .as_str()
        .expect("token")
        .to_owned();

    // Restart while publishing, with another --admin-password: the flag only seeds an
    // empty users table, so it must be ignored now.
    let stopping = Instant::now();
    let server = server
        .restart(&[("--admin-password", "Other-Root-Pass-99")])
        .await;
    println!("restarted in {:?}", stopping.elapsed());
    drop(publisher);
    server
        .wait_log(
            &["marked streams of the previous run offline", "cameras=1"],
            Duration::from_secs(1),
        )
        .await;
    assert!(
        !server.log().contains("created the first admin"),
        "the admin was created again:\n{}",
        server.log()
    );
    assert_eq!(
        std::fs::read_to_string(&secret_path).expect("jwt.secret"),
        secret,
        "the master secret changed"
    );

    let r = api::login(&server, "admin", "Other-Root-Pass-99").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.json);
    assert_eq!(r.code(), "AUTH_CREDENTIALS_INVALID");
    let fresh = Api::admin(&server).await;
    // The old access JWT still verifies (same secret), but its session lived in the
    // in-memory cache: it is revoked, not invalid.
    let old = Api::with_token(&server, api.token.clone());
    let r = old.call(Method::GET, "/api/v1/cameras", None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.json);
    assert_eq!(r.code(), "AUTH_TOKEN_REVOKED", "{}", r.json);

    let by_token = Api::with_token(&server, api_token);
    let list = by_token
        .ok(Method::GET, "/api/v1/cameras", None, StatusCode::OK)
        .await;
    let listed = list.as_array().expect("a page of cameras");
    assert!(
        listed
            .iter()
            .any(|c| c["id"] == id.as_str() && c["serialNumber"] == "E2E-RESTART-1"),
        "{list}"
    );

    let row = fresh.camera(&id).await;
    assert_eq!(row["streamStatus"], "offline", "{row}");
    assert_eq!(row["isActive"], true, "{row}");
    assert_eq!(
        row["rtmpUrl"],
        format!("rtmp://{}/live", server.rtmp),
        "{row}"
    );
    assert_eq!(fresh.status(&id).await["status"], "offline");

    // The same key publishes to the restarted server; the playback token signed before
    // the restart still plays.
    let _publisher = Ffmpeg::publish(
        &clips.av_short,
        &server.rtmp_url(&key),
        server.dir.join("publish-after.stderr"),
    );
    let (online, _, _) = wait_online(&fresh, &id, Instant::now()).await;
    println!("after the restart the old key is online in {online:?}");
    let r = server
        .get(&format!("/hls/{id}/playlist.m3u8?token={old_playback}"))
        .await;
    assert_eq!(r.status(), 200, "a playback token from before the restart");
    server.assert_healthy().await;
}
