//! `camstream cluster status|drain|remove|add`: the cluster API of a running node
//! (`/api/v1/cluster...`) from the command line, with a human-readable table or `--json`.
//! Credentials: an API token or access JWT (`--token`, `CAMSTREAM_API_TOKEN`), or a
//! username and password to log in with (`--username`, `--password`,
//! `CAMSTREAM_API_PASSWORD`). `add` is signed with the cluster secret instead.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

/// `camstream cluster ...`.
#[derive(Debug, Args)]
pub(crate) struct ClusterCli {
    #[command(subcommand)]
    command: ClusterCommand,
}

/// Where and who.
#[derive(Debug, Args)]
struct Conn {
    /// Base URL of any member's API.
    #[arg(long, env = "CAMSTREAM_API", default_value = "http://127.0.0.1:8080")]
    api: String,
    /// API token (cst_...) or access JWT with cluster:manage.
    #[arg(long, env = "CAMSTREAM_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// User to log in as when no token is given.
    #[arg(long, env = "CAMSTREAM_API_USERNAME", default_value = "admin")]
    username: String,
    /// Password for --username.
    #[arg(long, env = "CAMSTREAM_API_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Print the API's JSON answer instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Members, leader, term, commit index, leases, load and cameras.
    Status(Conn),
    /// Drain a node: no new cameras, its cameras move to others.
    Drain {
        /// The node id.
        node: u64,
        #[command(flatten)]
        conn: Conn,
    },
    /// Remove a node from the cluster; its cameras are re-placed.
    Remove {
        /// The node id.
        node: u64,
        #[command(flatten)]
        conn: Conn,
    },
    /// Ask the cluster to add a running node (one started with --node-id and --raft-addr;
    /// normally unnecessary, since a node started with --join adds itself). Signed with
    /// the cluster secret, not a user credential.
    Add(AddArgs),
}

#[derive(Debug, Args)]
struct AddArgs {
    /// Base URL of any member's API.
    #[arg(long, env = "CAMSTREAM_API", default_value = "http://127.0.0.1:8080")]
    api: String,
    /// The cluster secret.
    #[arg(long, env = "CAMSTREAM_CLUSTER_SECRET", hide_env_values = true)]
    cluster_secret: String,
    /// The new node's id.
    #[arg(long)]
    node_id: u64,
    /// The new node's raft HOST:PORT (as the others reach it).
    #[arg(long)]
    raft_addr: String,
    /// The new node's API base URL.
    #[arg(long)]
    api_url: String,
    /// The new node's relay HOST:PORT.
    #[arg(long, default_value = "")]
    relay_addr: String,
    /// The new node's RTMP URL base (rtmp://host:port).
    #[arg(long)]
    rtmp_url: Option<String>,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the subcommand.
///
/// # Errors
/// Unreachable API, refused credentials, or an API error (its code and message are shown).
pub(crate) fn run(cli: ClusterCli) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(async move {
            let _ = rustls::crypto::ring::default_provider().install_default();
            match cli.command {
                ClusterCommand::Status(conn) => {
                    let v = call(&conn, reqwest::Method::GET, "/api/v1/cluster").await?;
                    print(&conn, &v, status_text)
                }
                ClusterCommand::Drain { node, conn } => {
                    let path = format!("/api/v1/cluster/nodes/{node}/drain");
                    let v = call(&conn, reqwest::Method::POST, &path).await?;
                    print(&conn, &v, |_| format!("node {node} is draining\n"))
                }
                ClusterCommand::Remove { node, conn } => {
                    let path = format!("/api/v1/cluster/nodes/{node}");
                    let v = call(&conn, reqwest::Method::DELETE, &path).await?;
                    print(&conn, &v, |_| format!("node {node} removed\n"))
                }
                ClusterCommand::Add(a) => add(a).await,
            }
        })
}

fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .context("cannot build the HTTP client")
}

/// The API's error envelope as one line.
fn api_error(status: reqwest::StatusCode, body: &Value) -> anyhow::Error {
    let e = &body["error"];
    match (e["code"].as_str(), e["message"].as_str()) {
        (Some(code), Some(msg)) => anyhow::anyhow!("{status}: {code}: {msg}"),
        _ => anyhow::anyhow!("{status}: {body}"),
    }
}

async fn bearer(conn: &Conn, http: &reqwest::Client) -> anyhow::Result<String> {
    if let Some(t) = &conn.token {
        return Ok(t.clone());
    }
    let Some(password) = &conn.password else {
        bail!("give --token (or CAMSTREAM_API_TOKEN), or --password (or CAMSTREAM_API_PASSWORD)");
    };
    let url = format!("{}/api/v1/auth/login", conn.api.trim_end_matches('/'));
    let r = http
        .post(&url)
        .json(&json!({ "username": conn.username, "password": password }))
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(api_error(status, &body).context("login failed"));
    }
    body["data"]["accessToken"]
        .as_str()
        .map(str::to_owned)
        .context("login answered without an access token")
}

async fn call(conn: &Conn, method: reqwest::Method, path: &str) -> anyhow::Result<Value> {
    let http = client()?;
    let token = bearer(conn, &http).await?;
    let url = format!("{}{path}", conn.api.trim_end_matches('/'));
    let r = http
        .request(method, &url)
        .bearer_auth(token)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        return Err(api_error(status, &body));
    }
    Ok(body["data"].clone())
}

fn print(conn: &Conn, v: &Value, text: impl Fn(&Value) -> String) -> anyhow::Result<()> {
    if conn.json {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        print!("{}", text(v));
    }
    Ok(())
}

fn num(v: &Value) -> String {
    v.as_u64().map_or_else(|| "-".to_owned(), |n| n.to_string())
}

/// The status as a table.
fn status_text(v: &Value) -> String {
    let mut out = String::new();
    if v["clustered"] != true {
        out.push_str("not clustered: this node runs alone (started without --node-id)\n");
        return out;
    }
    let _ = writeln!(
        out,
        "node {} answered: leader {}, term {}, commit index {}, last applied {}, own lease {}",
        num(&v["nodeId"]),
        num(&v["leaderId"]),
        num(&v["term"]),
        num(&v["commitIndex"]),
        num(&v["lastApplied"]),
        if v["leaseHeld"] == true {
            "held"
        } else {
            "not held"
        },
    );
    let _ = writeln!(
        out,
        "{:<4} {:<7} {:<6} {:<5} {:>7} {:>8} {:>5} {:>7}  {:<28} RAFT",
        "ID", "ROLE", "LEASE", "DRAIN", "STREAMS", "KBIT/S", "CPU‰", "CAMERAS", "API"
    );
    for m in v["members"].as_array().into_iter().flatten() {
        let role = if m["id"] == v["leaderId"] {
            "leader"
        } else if m["voter"] == true {
            "voter"
        } else {
            "learner"
        };
        let _ = writeln!(
            out,
            "{:<4} {:<7} {:<6} {:<5} {:>7} {:>8} {:>5} {:>7}  {:<28} {}",
            num(&m["id"]),
            role,
            if m["leaseHeld"] == true {
                "held"
            } else {
                "lost"
            },
            if m["draining"] == true { "yes" } else { "no" },
            num(&m["load"]["activeStreams"]),
            num(&m["load"]["ingestKbps"]),
            num(&m["load"]["cpuPermille"]),
            num(&m["cameras"]),
            m["apiUrl"].as_str().unwrap_or("-"),
            m["raftAddr"].as_str().unwrap_or("-"),
        );
    }
    let cameras = v["cameras"].as_array().map_or(0, Vec::len);
    let placed = v["cameras"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| !c["nodeId"].is_null())
        .count();
    let _ = writeln!(out, "cameras: {cameras} known, {placed} placed");
    out
}

async fn add(a: AddArgs) -> anyhow::Result<()> {
    let info = camstream_controlplane::NodeInfo {
        id: a.node_id,
        api_url: a.api_url.trim_end_matches('/').to_owned(),
        raft_addr: a.raft_addr,
        relay_addr: a.relay_addr,
        rtmp_addrs: a.rtmp_url.into_iter().collect(),
        capacity: camstream_controlplane::NodeCapacity::default(),
    };
    camstream_controlplane::send_join(&a.api, &a.cluster_secret, &info)
        .await
        .map_err(anyhow::Error::msg)
        .context("join refused")?;
    if a.json {
        println!("{}", json!({ "nodeId": info.id, "added": true }));
    } else {
        println!("node {} added", info.id);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table_names_the_leader_and_each_member() {
        let v = json!({
            "clustered": true, "nodeId": 1, "leaderId": 2, "term": 4, "commitIndex": 90,
            "lastApplied": 90, "leaseHeld": true,
            "members": [
                { "id": 1, "voter": true, "leaseHeld": true, "draining": false, "cameras": 3,
                  "load": { "activeStreams": 3, "ingestKbps": 6000, "cpuPermille": 120 },
                  "apiUrl": "http://a:8080", "raftAddr": "a:7000" },
                { "id": 2, "voter": true, "leaseHeld": false, "draining": true, "cameras": 0,
                  "load": { "activeStreams": 0, "ingestKbps": 0, "cpuPermille": 5 },
                  "apiUrl": "http://b:8080", "raftAddr": "b:7000" }
            ],
            "cameras": [ { "cameraId": "c1", "nodeId": 1, "epoch": 2 },
                         { "cameraId": "c2", "nodeId": null, "epoch": 3 } ]
        });
        let t = status_text(&v);
        assert!(t.contains("leader 2, term 4, commit index 90"), "{t}");
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[2].starts_with("1    voter   held   no"), "{t}");
        assert!(lines[3].starts_with("2    leader  lost   yes"), "{t}");
        assert!(
            lines[2].contains("6000") && lines[2].contains("a:7000"),
            "{t}"
        );
        assert!(t.contains("cameras: 2 known, 1 placed"), "{t}");
        let single = status_text(&json!({ "clustered": false }));
        assert!(single.starts_with("not clustered"), "{single}");
    }
}
