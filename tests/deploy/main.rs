//! Checks of `deploy/` (README "Deployment"), which no container runtime runs here:
//!
//! - every metric name in the alerting rules (`deploy/prometheus/rules.yml`) and the Grafana
//!   dashboards (`deploy/grafana/*.json`) is exported by a live `camstream serve` after a
//!   camera published a clip and a login failed; the few names that only appear after an
//!   event (a dropped recording fragment, an HTTP timeout) or only on cluster nodes are
//!   listed in [`EVENT_OR_CLUSTER_ONLY`] and each is checked against the source instead;
//! - every dashboard query is valid PromQL (`promtool check rules` on a generated file) and
//!   every alert has a case that fires in `rules.test.yml`;
//! - every YAML and JSON file under `deploy/` parses (YAML with Python's `yaml`, which
//!   `scripts/deps.sh test` installs), and the `--flags` and `CAMSTREAM_*` variables the
//!   compose files, Kubernetes manifests and Dockerfile give `camstream serve` are real
//!   flags of `camstream serve --help`.
//!
//! `promtool test rules` itself runs in `make deploy-test`.

#[path = "../common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::ffmpeg::{Ffmpeg, clips};
use common::{Server, ServerOptions, eventually};
use serde_json::Value;

/// Metric names the rules and dashboards may use without a fresh single node exporting
/// them: the series appears with the first event of its kind, or only with `--node-id`.
/// Each must appear as a string literal in the server's source.
const EVENT_OR_CLUSTER_ONLY: &[&str] = &[
    // First dropped fragment (controlplane/src/recordings/sink.rs).
    "camstream_recording_dropped_fragments_total",
    // First timeout, refusal, refused blocking reload (dataplane/src/http/).
    "camstream_http_timeouts_total",
    "camstream_http_connections_refused_total",
    "camstream_http_blocking_reloads_refused_total",
    // Cluster nodes only (controlplane/src/cluster/tasks.rs, dataplane/src/relay/).
    "camstream_raft_term",
    "camstream_raft_leader_id",
    "camstream_raft_is_leader",
    "camstream_raft_commit_index",
    "camstream_raft_last_applied",
    "camstream_cluster_lease_held",
    "camstream_relay_streams_in",
    "camstream_relay_streams_out",
    "camstream_relay_pulls_started_total",
    "camstream_relay_pulls_failed_total",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn deploy() -> PathBuf {
    root().join("deploy")
}

/// Files under `dir` (recursive), sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read {}: {e}", d.display())) {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn has_ext(p: &Path, exts: &[&str]) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.contains(&e))
}

/// Every document of a YAML file as JSON, parsed by Python's `yaml.safe_load_all`.
fn yaml(path: &Path) -> Vec<Value> {
    let out = Command::new("python3")
        .args([
            "-c",
            "import sys, json, yaml\n\
             json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)",
        ])
        .arg(path)
        .output()
        .expect("python3 runs (scripts/deps.sh test installs it)");
    assert!(
        out.status.success(),
        "{} does not parse as YAML (or python3-yaml is missing: scripts/deps.sh test):\n{}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = serde_json::from_slice(&out.stdout).expect("python printed JSON");
    assert!(
        docs.iter().any(|d| !d.is_null()),
        "{} is empty",
        path.display()
    );
    docs
}

fn json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("read JSON");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Words of `text` that look like Prometheus metric names of ours.
fn metric_names(text: &str, into: &mut BTreeSet<String>) {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut word = String::new();
    let mut quoted = false;
    for c in text.chars().chain([' ']) {
        if is_name(c) {
            word.push(c);
            continue;
        }
        // Label values (`type="CAMERA_OFFLINE"`) are not names.
        if !quoted && (word.starts_with("camstream_") || word == "active_streams_per_pod") {
            into.insert(std::mem::take(&mut word));
        }
        word.clear();
        if c == '"' {
            quoted = !quoted;
        }
    }
}

/// The alerting rules' expressions, by alert name.
fn rule_exprs() -> Vec<(String, String)> {
    let docs = yaml(&deploy().join("prometheus/rules.yml"));
    let mut out = Vec::new();
    for g in docs[0]["groups"].as_array().expect("groups") {
        for r in g["rules"].as_array().expect("rules") {
            let name = r["alert"]
                .as_str()
                .or(r["record"].as_str())
                .expect("alert or record");
            out.push((
                name.to_owned(),
                r["expr"].as_str().expect("expr").to_owned(),
            ));
        }
    }
    out
}

/// Every PromQL query of the dashboards: panel targets and template variable queries.
fn dashboard_queries() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let dir = deploy().join("grafana");
    let boards: Vec<PathBuf> = files(&dir)
        .into_iter()
        .filter(|p| has_ext(p, &["json"]))
        .collect();
    assert!(
        boards.len() >= 5,
        "fleet, streams, storage, API, cluster: {boards:?}"
    );
    for path in boards {
        let d = json(&path);
        let board = path.file_name().unwrap().to_string_lossy().into_owned();
        for p in d["panels"].as_array().expect("panels") {
            let targets = p["targets"].as_array().expect("targets");
            assert!(
                !targets.is_empty(),
                "{board}: panel {} has no query",
                p["title"]
            );
            for t in targets {
                let expr = t["expr"].as_str().expect("expr");
                out.push((format!("{board}: {}", p["title"]), expr.to_owned()));
            }
        }
        for v in d["templating"]["list"].as_array().expect("templating") {
            let q = v["query"]["query"].as_str().or(v["query"].as_str());
            if v["type"] == "query" {
                out.push((
                    format!("{board}: ${}", v["name"]),
                    q.expect("query").to_owned(),
                ));
            }
        }
    }
    out
}

/// The sample names of a Prometheus text exposition.
fn scraped_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(['{', ' ']).next().unwrap_or_default().to_owned())
        .collect()
}

/// The server's Rust source, concatenated.
fn server_source() -> String {
    let mut all = String::new();
    for dir in ["src", "controlplane/src", "dataplane/src"] {
        for f in files(&root().join(dir)) {
            if has_ext(&f, &["rs"]) {
                all.push_str(&std::fs::read_to_string(&f).expect("read source"));
            }
        }
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_and_dashboards_use_only_exported_metrics() {
    let mut used = BTreeSet::new();
    let rules = rule_exprs();
    let queries = dashboard_queries();
    for (_, e) in rules.iter().chain(&queries) {
        metric_names(e, &mut used);
    }
    assert!(used.len() > 20, "{used:?}");

    let server = Server::start("deploy-metrics", ServerOptions::default()).await;
    let clip = &clips().await.av_short;
    let ffmpeg = Ffmpeg::publish(
        clip,
        &server.rtmp_url("deploy-cam"),
        server.dir.join("ffmpeg.log"),
    );
    // A refused login and a garbage token, so the auth failure series exist.
    let login = server
        .client()
        .post(server.url("/api/v1/auth/login"))
        .json(&serde_json::json!({"username": "admin", "password": "not-the-password"}))
        .send()
        .await
        .expect("login request");
    assert_eq!(login.status(), 401);
    let api = server
        .client()
        .get(server.url("/api/v1/cameras"))
        .bearer_auth("garbage")
        .send()
        .await
        .expect("cameras request");
    assert_eq!(api.status(), 401);
    let text = eventually(
        "per-camera series with the camera online",
        Duration::from_secs(30),
        || async {
            let text = server.get_text("/metrics").await;
            (text.contains("camstream_stream_online{camera_id=\"deploy-cam\"} 1")
                && text.contains("camstream_storage_used_ratio{tier=\"hot\"}")
                && text.contains("camstream_alerts_open{type=\"CAMERA_OFFLINE\"}"))
            .then_some(text)
        },
    )
    .await;
    drop(ffmpeg);
    let scraped = scraped_names(&text);
    for name in [
        "camstream_stream_fps",
        "camstream_stream_bitrate_bps",
        "camstream_stream_dropped_frames_total",
        "camstream_auth_failures_total",
    ] {
        assert!(scraped.contains(name), "{name} not scraped:\n{text}");
    }
    assert!(
        text.contains("camstream_auth_failures_total{code=\"AUTH_CREDENTIALS_INVALID\"} 1"),
        "{text}"
    );

    let source = server_source();
    for name in EVENT_OR_CLUSTER_ONLY {
        assert!(
            source.contains(&format!("\"{name}\"")),
            "{name} is listed as exported on events or by cluster nodes, but no source file names it"
        );
    }
    let missing: Vec<&String> = used
        .iter()
        .filter(|n| !scraped.contains(*n) && !EVENT_OR_CLUSTER_ONLY.contains(&n.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "rules or dashboards use metrics the server does not export: {missing:?}\nscraped: {scraped:?}"
    );
    println!(
        "{} metric names in rules and dashboards: {} scraped from a live server, {} event/cluster-only checked in the source",
        used.len(),
        used.iter().filter(|n| scraped.contains(*n)).count(),
        used.iter().filter(|n| !scraped.contains(*n)).count()
    );
}

#[test]
fn dashboard_queries_are_promql_and_every_alert_has_a_firing_case() {
    // promtool parses each panel query as a recording rule's expression (template
    // variables use Grafana's `label_values(...)`, which is not PromQL).
    let queries = dashboard_queries();
    let rules: Vec<Value> = queries
        .iter()
        .filter(|(_, e)| !e.starts_with("label_values("))
        .enumerate()
        .map(|(i, (_, e))| serde_json::json!({"record": format!("dashboard:q{i}"), "expr": e}))
        .collect();
    let file =
        std::env::temp_dir().join(format!("camstream-dashboards-{}.json", std::process::id()));
    std::fs::write(
        &file,
        serde_json::to_vec(
            &serde_json::json!({"groups": [{"name": "dashboards", "rules": rules}]}),
        )
        .expect("json"),
    )
    .expect("write rules file");
    let out = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
        .expect("promtool runs (Debian package prometheus, scripts/deps.sh test)");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "a dashboard query is not valid PromQL:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let tests = yaml(&deploy().join("prometheus/rules.test.yml"));
    let mut firing = BTreeSet::new();
    for t in tests[0]["tests"].as_array().expect("tests") {
        for case in t["alert_rule_test"].as_array().into_iter().flatten() {
            if case["exp_alerts"].as_array().is_some_and(|a| !a.is_empty()) {
                firing.insert(case["alertname"].as_str().expect("alertname").to_owned());
            }
        }
    }
    for (alert, _) in rule_exprs() {
        assert!(
            firing.contains(&alert),
            "rules.test.yml has no case where {alert} fires"
        );
    }
}

/// The long flags of `camstream serve --help`.
fn serve_flags() -> BTreeSet<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_camstream"))
        .args(["serve", "--help"])
        .output()
        .expect("camstream serve --help");
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).expect("utf-8 help");
    let mut flags = BTreeSet::new();
    for line in help.lines() {
        for word in line.split_whitespace() {
            let word = word.trim_end_matches(',');
            if let Some(f) = word.strip_prefix("--") {
                flags.insert(f.split(['=', ' ']).next().unwrap_or_default().to_owned());
            }
        }
    }
    for f in ["node-id", "raft-addr", "join", "cluster-secret", "data-dir"] {
        assert!(flags.contains(f), "--{f} missing from:\n{help}");
    }
    flags
}

/// `--flag` words in `text` (not a bare `--`).
fn long_flags(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == '"' || c == '\'')
        .filter_map(|w| w.strip_prefix("--"))
        .filter(|f| f.starts_with(|c: char| c.is_ascii_lowercase()))
        .map(|f| {
            f.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

/// `CAMSTREAM_*` words in `text`, as the flag each stands for (`CAMSTREAM_DATA_DIR` ->
/// `data-dir`).
fn env_flags(text: &str) -> Vec<(String, String)> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter_map(|w| {
            let rest = w.strip_prefix("CAMSTREAM_").filter(|r| !r.is_empty())?;
            Some((w.to_owned(), rest.to_ascii_lowercase().replace('_', "-")))
        })
        .collect()
}

/// Strings of a JSON value, recursively.
fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(o) => o.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

#[test]
fn deploy_files_parse_and_use_real_serve_flags() {
    let flags = serve_flags();
    let mut parsed = 0;
    // What `camstream serve` is given: command lines of camstream containers and services.
    let mut commands: Vec<(String, String)> = Vec::new();
    for path in files(&deploy()) {
        let rel = path.strip_prefix(root()).unwrap().display().to_string();
        if has_ext(&path, &["json"]) {
            json(&path);
            parsed += 1;
        } else if has_ext(&path, &["yml", "yaml"]) {
            let docs = yaml(&path);
            parsed += 1;
            for doc in &docs {
                // compose: services built from this repository or using its image.
                for (name, svc) in doc["services"].as_object().into_iter().flatten() {
                    let ours = svc.get("build").is_some()
                        || svc["image"]
                            .as_str()
                            .is_some_and(|i| i.starts_with("camstream"));
                    if ours {
                        let mut s = Vec::new();
                        strings(&svc["command"], &mut s);
                        assert!(
                            s.first() == Some(&"serve"),
                            "{rel}: {name} does not run serve"
                        );
                        commands.push((format!("{rel}: {name}"), s.join(" ")));
                    }
                }
                // Kubernetes: containers of this image.
                let containers = &doc["spec"]["template"]["spec"]["containers"];
                for c in containers.as_array().into_iter().flatten() {
                    if c["image"]
                        .as_str()
                        .is_some_and(|i| i.starts_with("camstream"))
                    {
                        let mut s = Vec::new();
                        strings(&c["command"], &mut s);
                        strings(&c["args"], &mut s);
                        let line = s.join(" ");
                        assert!(line.contains("camstream serve"), "{rel}: {line}");
                        commands.push((format!("{rel}: {}", c["name"]), line));
                    }
                }
            }
        }
        // Environment variables anywhere (compose, ConfigMap, Secret, env, Dockerfile).
        if let Ok(text) = std::fs::read_to_string(&path) {
            for (var, flag) in env_flags(&text) {
                assert!(
                    flags.contains(&flag),
                    "{rel}: {var} sets no flag of camstream serve (--{flag})"
                );
            }
        }
    }
    assert!(parsed >= 14, "{parsed} YAML/JSON files parsed");
    // single.yml, cluster.yml x3, the StatefulSet.
    assert!(commands.len() >= 5, "{commands:?}");
    let mut seen = BTreeSet::new();
    for (what, line) in &commands {
        for f in long_flags(line) {
            assert!(
                flags.contains(&f),
                "{what}: --{f} is not a flag of camstream serve"
            );
            seen.insert(f);
        }
    }
    for f in ["node-id", "join", "raft-addr", "relay-addr", "data-dir"] {
        assert!(seen.contains(f), "no deploy file passes --{f}: {seen:?}");
    }

    let docker = std::fs::read_to_string(deploy().join("Dockerfile")).expect("Dockerfile");
    for needle in [
        "AS web",
        "cargo build --release",
        "debian:bookworm-slim",
        "ffmpeg",
        "USER camstream",
        "VOLUME [\"/data\"]",
        "EXPOSE 1935/tcp 1936/tcp 8080/tcp 8443/tcp",
        "/healthz",
    ] {
        assert!(docker.contains(needle), "Dockerfile lacks {needle:?}");
    }
}
