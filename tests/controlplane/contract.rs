//! Issue 9: the OpenAPI document is a contract a generated client can trust. schemathesis
//! (pinned below, installed with pip into a venv under `target/testdata` on first use; an
//! install failure fails the test) reads `/api/v1/openapi.json` from the real binary and
//! runs every phase (examples, coverage, fuzzing, and the stateful phase that follows the
//! document's links: create a camera, then read, update, rotate and delete it) with
//! `--checks all`: no 5xx, every status and header documented, every response body valid
//! against its schema, schema-valid requests accepted, schema-invalid ones refused with 400.
//! It runs on SQLite with the in-process cache, and on PostgreSQL with Redis.
//!
//! A fuzzer holding an admin credential can saw off the branch it sits on, so the API is
//! split over runs whose credential the run cannot end, each checked to work afterwards:
//! - `/api/v1/tokens*` (which need a login session) with an admin session; nothing in that
//!   run ends a session. It runs first: it revokes whatever token ids it sees listed;
//! - `POST /auth/logout` alone with a session of its own, since its first success ends it
//!   (the session must be refused afterwards);
//! - everything but `/api/v1/tokens*` with an admin API token made after the tokens run (API
//!   tokens survive a password change of their owner, which `PUT /users/{id}` may do to the
//!   admin whose id the fuzzer learns from `/auth/me`; logout answers 403 to a token);
//! - the stateful phase over the camera routes alone, which must have read, updated and
//!   deleted a camera it created through the links.
//!
//! The few rules JSON Schema cannot state (cross-field and time rules) are listed with their
//! reason in `schemathesis.toml` beside this file.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::api::{ADMIN_PASSWORD, Api, login};
use crate::common::services::{Postgres, Redis};
use crate::common::{Server, testdata};
use crate::lifecycle::start;

/// The schemathesis release the contract is checked with.
const SCHEMATHESIS: &str = "4.32.5";
/// Every phase schemathesis has.
const ALL_PHASES: &str = "examples,coverage,fuzzing,stateful";

/// The `st` executable of a venv with [`SCHEMATHESIS`], made once per test process.
fn schemathesis() -> PathBuf {
    static ST: OnceLock<PathBuf> = OnceLock::new();
    ST.get_or_init(|| {
        let venv = testdata().join(format!("schemathesis-{SCHEMATHESIS}-venv"));
        let st = venv.join("bin").join("st");
        let installed = || {
            Command::new(&st)
                .arg("--version")
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(SCHEMATHESIS))
        };
        if installed() {
            return st;
        }
        let out = Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv)
            .output()
            .expect("run python3 (is it installed?)");
        assert!(
            out.status.success(),
            "python3 -m venv (apt-get install python3-venv): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = Command::new(venv.join("bin").join("python"))
            .args(["-m", "pip", "install", "--quiet"])
            .arg(format!("schemathesis=={SCHEMATHESIS}"))
            .output()
            .expect("run pip");
        assert!(
            out.status.success() && installed(),
            "pip install schemathesis=={SCHEMATHESIS} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        st
    })
    .clone()
}

/// What one schemathesis run reported.
struct Outcome {
    what: &'static str,
    tested: u32,
    generated: u32,
    passed: u32,
    stateful_scenarios: Option<u32>,
    links_covered: Option<u32>,
    took: Duration,
    /// The ndjson event stream.
    report: String,
}

/// The number after `label` on the first line containing it.
fn number_after(text: &str, label: &str) -> Option<u32> {
    let rest = &text[text.find(label)? + label.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Runs `st run` against `server` with `bearer` and `filters`; panics with schemathesis's
/// whole output when it reports anything.
async fn run(
    server: &Server,
    what: &'static str,
    bearer: &str,
    filters: &[&str],
    phases: &str,
) -> Outcome {
    let st = schemathesis();
    let config = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("controlplane")
        .join("schemathesis.toml");
    let report = server.dir.join(format!("schemathesis-{what}.ndjson"));
    let mut cmd = tokio::process::Command::new(st);
    cmd.arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(server.url("/api/v1/openapi.json"))
        .args(["--checks", "all"])
        .args(["--request-timeout", "10"])
        .args(["--workers", "1"])
        // A fixed seed: the same cases every run, so a finding reproduces (change it, or
        // raise `generation.max-examples` in schemathesis.toml, to explore further).
        .args(["--seed", "9"])
        .args(["--no-color", "--output-truncate", "false"])
        .arg("-H")
        .arg(format!("Authorization: Bearer {bearer}"))
        .args(filters)
        .args(["--phases", phases])
        .args(["--report", "ndjson", "--report-ndjson-path"])
        .arg(&report)
        .current_dir(&server.dir)
        .kill_on_drop(true);
    let t0 = Instant::now();
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis ({what}) ran for over 180 s"))
        .expect("run st");
    let took = t0.elapsed();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found problems ({what}, {}):\n{text}\nserver log:\n{}",
        out.status,
        server.log()
    );
    let count = |label: &str| {
        number_after(&text, label)
            .unwrap_or_else(|| panic!("no `{label}` in schemathesis's output:\n{text}"))
    };
    let mut outcome = Outcome {
        what,
        tested: count("Tested:"),
        generated: count("Test cases:"),
        passed: count("generated,"),
        stateful_scenarios: number_after(&text, "Scenarios:"),
        links_covered: number_after(&text, "API Links:"),
        took,
        report: String::new(),
    };
    assert!(
        outcome.tested > 0 && outcome.generated > 0,
        "nothing was tested ({what}):\n{text}"
    );
    assert_eq!(
        outcome.generated, outcome.passed,
        "not every test case passed ({what}):\n{text}"
    );
    outcome.report = std::fs::read_to_string(&report).expect("read the ndjson report");
    outcome
}

/// `(method, uri, status)` of every request of the stateful phase, from the ndjson report.
fn stateful_requests(report: &str) -> Vec<(String, String, u64)> {
    let mut out = Vec::new();
    for line in report.lines() {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let interactions = &event["ScenarioFinished"]["recorder"]["interactions"];
        for i in interactions
            .as_object()
            .into_iter()
            .flat_map(|m| m.values())
        {
            let (Some(method), Some(uri), Some(status)) = (
                i["request"]["method"].as_str(),
                i["request"]["uri"].as_str(),
                i["response"]["status_code"].as_u64(),
            ) else {
                continue;
            };
            out.push((method.to_owned(), uri.to_owned(), status));
        }
    }
    out
}

/// Whether `s` looks like a server-made id (a hyphenated UUID).
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// An admin login session (a fresh one per call).
async fn admin_session(server: &Server) -> String {
    let r = login(server, "admin", ADMIN_PASSWORD).await;
    assert_eq!(r.status, StatusCode::OK, "admin login: {}", r.json);
    r.json["data"]["accessToken"]
        .as_str()
        .expect("accessToken")
        .to_owned()
}

async fn contract(name: &str, extra: Vec<String>, backend: &str) {
    let server = start(name, extra).await;
    // Both sessions before any run: the fuzzer's failed logins from this address throttle
    // the login afterwards.
    let session = Api::with_token(&server, admin_session(&server).await);
    let logout_session = Api::with_token(&server, admin_session(&server).await);
    let t0 = Instant::now();
    let mut outcomes = Vec::new();

    // The tokens run first: it can revoke any token it sees listed, so the API token of the
    // main run is made after it. Its session must still work afterwards.
    outcomes.push(
        run(
            &server,
            "tokens",
            &session.token,
            &["--include-path-regex", "^/api/v1/tokens"],
            ALL_PHASES,
        )
        .await,
    );
    session
        .ok(Method::GET, "/api/v1/auth/me", None, StatusCode::OK)
        .await;

    // Logout: its first success ends the session, which must then be refused.
    outcomes.push(
        run(
            &server,
            "logout",
            &logout_session.token,
            &["--include-operation-id", "logout"],
            // One operation has no links to follow.
            "examples,coverage,fuzzing",
        )
        .await,
    );
    let r = logout_session
        .call(Method::GET, "/api/v1/auth/me", None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "logout never succeeded");

    // Every permission an admin may grant, and the highest limit: the run sends thousands
    // of requests and a 429 would hide what the routes answer.
    let me = session
        .ok(Method::GET, "/api/v1/auth/me", None, StatusCode::OK)
        .await;
    let perms: Vec<&str> = me["permissions"]
        .as_array()
        .expect("permissions")
        .iter()
        .filter_map(|p| p.as_str())
        .filter(|p| *p != "tokens:manage")
        .collect();
    let token = Api::with_token(
        &server,
        session
            .ok(
                Method::POST,
                "/api/v1/tokens",
                Some(json!({ "name": "contract", "permissions": perms, "rateLimit": 10_000 })),
                StatusCode::CREATED,
            )
            .await["tokenSecret"]
            .as_str()
            .expect("tokenSecret")
            .to_owned(),
    );
    // `GET /api/v1/ws` is a WebSocket upgrade, which an HTTP fuzzer cannot make (every
    // request it sends gets the documented 400); controlplane/tests/ws.rs checks it.
    outcomes.push(
        run(
            &server,
            "api",
            &token.token,
            &["--exclude-path-regex", "^/api/v1/(tokens|ws$)"],
            ALL_PHASES,
        )
        .await,
    );
    // The stateful phase over the camera routes alone, so its walks start at the create
    // more often than among all 39 operations: a created camera must be read, updated and
    // deleted through the links (ids are random UUIDs: a 200 on one came from a create).
    let flow = run(
        &server,
        "camera-flow",
        &token.token,
        &["--include-path-regex", "^/api/v1/cameras"],
        "stateful",
    )
    .await;
    let requests = stateful_requests(&flow.report);
    for method in ["GET", "PUT", "DELETE"] {
        let hit = requests.iter().any(|(m, uri, status)| {
            let id = uri.rsplit_once("/api/v1/cameras/").map_or("", |(_, id)| id);
            m == method && *status == 200 && is_uuid(id)
        });
        assert!(
            hit,
            "the stateful phase never ran {method} /api/v1/cameras/{{id}} on a created camera: \
             {requests:?}"
        );
    }
    outcomes.push(flow);
    // The runs did not saw off their own credential.
    token
        .ok(Method::GET, "/api/v1/auth/me", None, StatusCode::OK)
        .await;
    let total = t0.elapsed();

    for o in &outcomes {
        println!(
            "{backend} {}: {} operations, {} test cases, {} passed, 0 failures, \
             {:?} stateful scenarios, {:?} links covered, {:.1} s",
            o.what,
            o.tested,
            o.generated,
            o.passed,
            o.stateful_scenarios,
            o.links_covered,
            o.took.as_secs_f64()
        );
    }
    println!(
        "{backend}: {} test cases in {} runs, {:.1} s",
        outcomes.iter().map(|o| o.generated).sum::<u32>(),
        outcomes.len(),
        total.as_secs_f64()
    );
    let api = &outcomes[2];
    assert!(
        api.stateful_scenarios.is_some_and(|n| n > 0) && api.links_covered.is_some_and(|n| n > 0),
        "the stateful phase followed no link"
    );
    // The checks above refuse any 5xx they see; the log shows none happened at all.
    let log = server.log();
    assert!(
        !log.contains("request failed") && !log.contains("panicked"),
        "a request failed with 5xx; log:\n{log}"
    );
    server.assert_healthy().await;
}

/// The contract on SQLite with the in-process cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_contract_sqlite() {
    contract("cp-contract-sqlite", Vec::new(), "sqlite").await;
}

/// The contract on PostgreSQL with Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_contract_postgres() {
    let postgres = Postgres::start("cp-contract-pg-data").await;
    let redis = Redis::start("cp-contract-redis-data").await;
    let extra = vec![
        "--database-url".to_owned(),
        postgres.url(),
        "--redis-url".to_owned(),
        redis.url(),
    ];
    contract("cp-contract-postgres", extra, "postgres").await;
}
