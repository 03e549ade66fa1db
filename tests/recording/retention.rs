//! Retention across every tier into a real S3-compatible server (moto in server mode,
//! installed with pip into a venv under `target/testdata` when `python3 -m moto.server` is
//! missing; an install failure fails the test). Hot → warm → cold → archive, with the
//! process aborted between copy and row switch and between row switch and source removal
//! (`--test-crash-at`): the next start finishes or undoes the move, nothing is lost and no
//! file or object is left over. Signed URLs of archived files redirect to a presigned URL
//! that downloads the same bytes; deletion empties the bucket. The store is a real
//! PostgreSQL here (the other recording tests use SQLite), so both backends carry the
//! recordings, their index, the journal and the audit log end to end.

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::api::Api;
use crate::common::services::Postgres;
use crate::common::{Server, eventually, http_client, testdata};
use crate::support::{self, files_under, publish, recording_camera, rows, signed};

const BUCKET: &str = "camrec";

/// A moto S3 server on a free loopback port, killed on drop.
struct Moto {
    child: Child,
    port: u16,
}

/// A Python with moto's server importable: the system one, or a venv made here.
fn moto_python() -> PathBuf {
    let has_moto = |py: &Path| {
        Command::new(py)
            .args(["-c", "import moto.server, flask"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let system = PathBuf::from("python3");
    if has_moto(&system) {
        return system;
    }
    let venv = testdata().join("moto-venv");
    let py = venv.join("bin").join("python");
    if has_moto(&py) {
        return py;
    }
    let out = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .expect("run python3 (is it installed?)");
    assert!(
        out.status.success(),
        "python3 -m venv (apt-get install python3-venv): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&py)
        .args(["-m", "pip", "install", "--quiet", "moto[server]"])
        .output()
        .expect("run pip");
    assert!(
        out.status.success() && has_moto(&py),
        "pip install 'moto[server]' failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    py
}

impl Moto {
    async fn start(dir: &Path) -> Moto {
        let dir = dir.to_owned();
        let (child, port) = tokio::task::spawn_blocking(move || {
            let py = moto_python();
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let log = std::fs::File::create(dir.join("moto.log")).expect("moto log");
            let child = Command::new(py)
                .args([
                    "-m",
                    "moto.server",
                    "-H",
                    "127.0.0.1",
                    "-p",
                    &port.to_string(),
                ])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("clone log"))
                .stderr(log)
                .spawn()
                .expect("spawn moto");
            (child, port)
        })
        .await
        .expect("moto start");
        let moto = Moto { child, port };
        let client = http_client();
        let url = moto.url("/");
        eventually("moto to answer", Duration::from_secs(30), || {
            let client = client.clone();
            let url = url.clone();
            async move { client.get(url).send().await.ok().map(|_| ()) }
        })
        .await;
        moto
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every object key of the bucket.
    async fn keys(&self) -> BTreeSet<String> {
        let xml = http_client()
            .get(self.url(&format!("/{BUCKET}?list-type=2")))
            .send()
            .await
            .expect("list bucket")
            .text()
            .await
            .expect("list body");
        xml.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split_once("</Key>").map(|(k, _)| k.to_owned()))
            .collect()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn put_policy(api: &Api, policy: Value) {
    api.ok(
        Method::PUT,
        "/api/v1/retention",
        Some(policy),
        StatusCode::OK,
    )
    .await;
}

/// Runs a pass that must leave nothing due behind: no failure, no skip.
async fn run_pass(api: &Api) -> Value {
    let report = api
        .ok(Method::POST, "/api/v1/retention/run", None, StatusCode::OK)
        .await;
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["skipped"], 0, "{report}");
    assert_eq!(report["skips"], json!([]), "{report}");
    report
}

/// Runs a pass that must abort the process (`--test-crash-at`); waits for the exit.
async fn crashing_pass(server: &Server, api: &Api) {
    let r = server
        .client()
        .post(server.url("/api/v1/retention/run"))
        .bearer_auth(&api.token)
        .send()
        .await;
    assert!(
        r.is_err() || r.as_ref().is_ok_and(|r| !r.status().is_success()),
        "the pass finished instead of crashing"
    );
    let status = server.wait_exit(Duration::from_secs(20)).await;
    assert!(!status.success(), "exited with {status}");
}

/// The rows' files (or objects) hold exactly the bytes recorded.
async fn assert_tier(
    api: &Api,
    camera: &str,
    tier: &str,
    dir: Option<&Path>,
    bytes: &BTreeMap<String, Vec<u8>>,
) -> Vec<support::Row> {
    let all = rows(api, camera).await;
    assert_eq!(all.len(), bytes.len());
    for r in &all {
        assert_eq!(r.tier, tier, "{}", r.json);
        if let Some(d) = dir {
            assert!(
                r.path.starts_with(d),
                "{} not under {}",
                r.path.display(),
                d.display()
            );
            let got = std::fs::read(&r.path).expect("read moved file");
            assert!(
                got == bytes[&r.id],
                "{} changed in the move",
                r.path.display()
            );
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_moves_through_every_tier_into_s3() {
    let began = Instant::now();
    let tiers = testdata().join("runs").join("rec-retention-tiers");
    let _ = std::fs::remove_dir_all(&tiers);
    std::fs::create_dir_all(&tiers).expect("tiers dir");
    let moto = Moto::start(&tiers).await;
    let pg = Postgres::start("rec-retention-pg").await;
    let r = http_client()
        .put(moto.url(&format!("/{BUCKET}")))
        .send()
        .await
        .expect("create bucket");
    assert!(r.status().is_success(), "create bucket: {}", r.status());
    let (warm, cold) = (tiers.join("warm"), tiers.join("cold"));
    let env = [
        ("AWS_ENDPOINT_URL", moto.url("")),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
    ]
    .map(|(k, v)| (k.to_owned(), v))
    .to_vec();
    let server = support::start(
        "rec-retention",
        vec![
            "--record-chunk".into(),
            "10s".into(),
            "--storage-warm".into(),
            warm.display().to_string(),
            "--storage-cold".into(),
            cold.display().to_string(),
            "--archive-url".into(),
            format!("s3://{BUCKET}/archive"),
            "--database-url".into(),
            pg.url(),
        ],
        env,
    )
    .await;
    let hot = std::fs::canonicalize(server.dir.join("data").join("recordings")).expect("hot");
    let (warm, cold) = (
        std::fs::canonicalize(&warm).expect("warm"),
        std::fs::canonicalize(&cold).expect("cold"),
    );
    let api = Api::admin(&server).await;
    let (id, url) = recording_camera(&api, "Lot").await;
    let publisher = publish(&server, &url, "lot").await;
    support::wait_complete(&api, &id, 2, Duration::from_secs(60)).await;
    // Recording off through the camera itself (PUT), while it still publishes.
    let cam = api
        .ok(
            Method::PUT,
            &format!("/api/v1/cameras/{id}"),
            Some(json!({ "isRecording": false })),
            StatusCode::OK,
        )
        .await;
    assert_eq!(cam["isRecording"], false, "{cam}");
    let recorded = eventually("every file closed", Duration::from_secs(10), || async {
        let r = rows(&api, &id).await;
        r.iter().all(|r| r.status == "complete").then_some(r)
    })
    .await;
    drop(publisher);
    let n = recorded.len();
    assert!(n >= 3, "{n} files");
    // The file cut just before recording went off is often one part long, and its media
    // clock may end a few ms after ours (issue 15): complete all the same, and moved below.
    for r in &recorded {
        support::check_file(r).await;
    }
    let bytes: BTreeMap<String, Vec<u8>> = recorded
        .iter()
        .map(|r| {
            (
                r.id.clone(),
                std::fs::read(&r.path).expect("read recording"),
            )
        })
        .collect();

    // Hot → warm, then → cold.
    put_policy(&api, json!({ "warmAfterDays": 0 })).await;
    let report = run_pass(&api).await;
    assert_eq!(report["failed"], 0, "{report}");
    assert_tier(&api, &id, "warm", Some(&warm), &bytes).await;
    let usage = api
        .ok(
            Method::GET,
            "/api/v1/analytics/storage/usage",
            None,
            StatusCode::OK,
        )
        .await;
    let total: u64 = bytes.values().map(|b| b.len() as u64).sum();
    let tier = |name: &str| {
        usage["tiers"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["tier"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {usage}"))
    };
    assert_eq!(tier("warm")["files"], n, "{usage}");
    assert_eq!(tier("warm")["bytes"], total, "{usage}");
    assert_eq!(tier("hot")["files"], 0, "{usage}");
    assert_eq!(usage["cameras"][0]["cameraId"], id.as_str(), "{usage}");
    assert_eq!(usage["cameras"][0]["bytes"], total, "{usage}");
    assert!(
        files_under(&hot).is_empty(),
        "left on hot: {:?}",
        files_under(&hot)
    );
    put_policy(&api, json!({ "warmAfterDays": 0, "coldAfterDays": 0 })).await;
    let report = run_pass(&api).await;
    assert_eq!(report["failed"], 0, "{report}");
    assert_tier(&api, &id, "cold", Some(&cold), &bytes).await;
    assert!(files_under(&warm).is_empty(), "left on warm");

    // → archive, crashing after the copy (before the row switches).
    let server = server.restart(&[("--test-crash-at", "after-copy")]).await;
    let api = Api::admin(&server).await;
    put_policy(
        &api,
        json!({ "warmAfterDays": 0, "coldAfterDays": 0, "archiveAfterDays": 0 }),
    )
    .await;
    crashing_pass(&server, &api).await;
    assert_eq!(moto.keys().await.len(), 1, "the copy before the crash");
    // The next start undoes it: the row still points at the intact cold file.
    let server = server
        .relaunch(&[("--test-crash-at", "after-switch")], &[])
        .await;
    let api = Api::admin(&server).await;
    assert!(moto.keys().await.is_empty(), "orphan object after recovery");
    assert_tier(&api, &id, "cold", Some(&cold), &bytes).await;

    // Crashing after the switch (before the source is removed).
    crashing_pass(&server, &api).await;
    assert_eq!(files_under(&cold).len(), n, "the source is still there");
    let server = server.relaunch(&[], &["--test-crash-at"]).await;
    let api = Api::admin(&server).await;
    assert_eq!(
        files_under(&cold).len(),
        n - 1,
        "recovery removed the source"
    );
    let report = run_pass(&api).await;
    assert_eq!(report["failed"], 0, "{report}");

    let archived = assert_tier(&api, &id, "archived", None, &bytes).await;
    for d in [&hot, &warm, &cold] {
        assert!(
            files_under(d).is_empty(),
            "left in {}: {:?}",
            d.display(),
            files_under(d)
        );
    }
    let keys = moto.keys().await;
    let expected: BTreeSet<String> = archived
        .iter()
        .map(|r| {
            assert_eq!(r.json["isArchived"], true);
            let cloud = r.json["cloudUrl"].as_str().expect("cloudUrl");
            let key = cloud
                .strip_prefix(&format!("s3://{BUCKET}/"))
                .unwrap_or_else(|| panic!("cloudUrl {cloud}"));
            assert!(key.starts_with("archive/"), "{key}");
            key.to_owned()
        })
        .collect();
    assert_eq!(keys, expected, "objects and rows differ");
    assert_eq!(pg.query("SELECT count(*) FROM recording_jobs").await, "0");

    // Signed URLs of archived files: a redirect to a presigned URL with the same bytes.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for r in &archived {
        let url = signed(&api, &format!("/api/v1/recordings/{}/signed-url", r.id)).await;
        let first = no_redirect.get(&url).send().await.expect("GET signed url");
        assert_eq!(first.status(), StatusCode::TEMPORARY_REDIRECT);
        let location = first.headers()[header::LOCATION]
            .to_str()
            .expect("location");
        assert!(location.starts_with(&moto.url("/")), "{location}");
        let got = server
            .client()
            .get(&url)
            .send()
            .await
            .expect("GET archived")
            .bytes()
            .await
            .expect("body");
        assert!(
            got.as_ref() == bytes[&r.id].as_slice(),
            "archived bytes of {}",
            r.id
        );
    }

    // Deleted after R days: the objects go too.
    put_policy(
        &api,
        json!({ "warmAfterDays": 0, "coldAfterDays": 0, "archiveAfterDays": 0, "deleteAfterDays": 0 }),
    )
    .await;
    let report = run_pass(&api).await;
    assert_eq!(report["failed"], 0, "{report}");
    assert!(rows(&api, &id).await.is_empty());
    assert!(moto.keys().await.is_empty(), "objects left after deletion");
    drop(server);
    println!("retention test took {:?}", began.elapsed());
}
