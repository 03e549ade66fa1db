//! What the partition and crash-restart tests share: starting a node (optionally advertising
//! a proxy as its raft address), an admin token, the cluster status and the applied state
//! machine of a node, and the check that every node's state machine agrees.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::common::{Server, ServerOptions};

pub(crate) const SECRET: &str = "cluster-test-secret-0123456789";
pub(crate) const ADMIN_PASSWORD: &str = "Raft-Operator-Pass-42";

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// A cluster node of a test.
pub(crate) struct Node {
    pub(crate) id: u64,
    pub(crate) server: Server,
}

/// Starts node `id` listening for raft on `raft` and advertising `advertise` (a proxy port)
/// when given; joins through `join` (an API URL) when given.
pub(crate) async fn start(
    name: &str,
    id: u64,
    raft: u16,
    advertise: Option<u16>,
    db: &str,
    join: Option<String>,
) -> Node {
    let mut extra = vec![
        "--database-url".to_owned(),
        db.to_owned(),
        "--node-id".to_owned(),
        id.to_string(),
        "--raft-addr".to_owned(),
        format!("127.0.0.1:{raft}"),
        "--cluster-secret".to_owned(),
        SECRET.to_owned(),
        "--relay-addr".to_owned(),
        "127.0.0.1:0".to_owned(),
        "--jwt-secret".to_owned(),
        "cluster-test-jwt-secret-0123456789".to_owned(),
        "--admin-password".to_owned(),
        ADMIN_PASSWORD.to_owned(),
    ];
    if let Some(p) = advertise {
        extra.extend(["--advertise-raft".to_owned(), format!("127.0.0.1:{p}")]);
    }
    if let Some(j) = join {
        extra.extend(["--join".to_owned(), j]);
    }
    let server = Server::start_with(
        &format!("{name}-node{id}"),
        ServerOptions {
            allow_any_key: false,
            ..ServerOptions::default()
        },
        extra,
    )
    .await;
    Node { id, server }
}

/// An API token with cluster and camera permissions, made through `server`.
pub(crate) async fn admin_token(server: &Server) -> String {
    let r: Value = server
        .client()
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = r["data"]["accessToken"].as_str().expect("login").to_owned();
    let r: Value = server
        .client()
        .post(server.url("/api/v1/tokens"))
        .bearer_auth(&session)
        .json(&json!({
            "name": "cluster test",
            "permissions": ["cluster:manage", "cameras:read", "cameras:write"]
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["data"]["tokenSecret"].as_str().expect("token").to_owned()
}

async fn get_data(server: &Server, path: &str, token: &str) -> Option<Value> {
    let r = server
        .client()
        .get(server.url(path))
        .bearer_auth(token)
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .ok()?;
    if r.status() != StatusCode::OK {
        return None;
    }
    r.json::<Value>().await.ok().map(|v| v["data"].clone())
}

/// `GET /api/v1/cluster` of a node.
pub(crate) async fn cluster_of(server: &Server, token: &str) -> Option<Value> {
    get_data(server, "/api/v1/cluster", token).await
}

/// The placement of `camera` in a node's status: (node, epoch).
pub(crate) fn placement_in(status: &Value, camera: &str) -> Option<(Option<u64>, u64)> {
    status["cameras"]
        .as_array()?
        .iter()
        .find(|c| c["cameraId"] == camera)
        .map(|c| (c["nodeId"].as_u64(), c["epoch"].as_u64().unwrap_or(0)))
}

/// Polls until every node in `nodes` shows `ids` as voting members holding leases and all
/// name the same leader; returns it.
pub(crate) async fn converged(nodes: &[&Node], ids: &[u64], token: &str, timeout: Duration) -> u64 {
    let deadline = Instant::now() + timeout;
    let mut last = Vec::new();
    loop {
        last.clear();
        let mut leaders = Vec::new();
        for n in nodes {
            let Some(c) = cluster_of(&n.server, token).await else {
                last.push(json!(null));
                continue;
            };
            let members: Vec<u64> = c["members"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|m| m["voter"] == true && m["leaseHeld"] == true)
                .map(|m| m["id"].as_u64().unwrap())
                .collect();
            if members == ids && c["clustered"] == true && c["leaseHeld"] == true {
                leaders.push(c["leaderId"].as_u64());
            }
            last.push(c);
        }
        if leaders.len() == nodes.len()
            && let Some(Some(l)) = leaders.first()
            && leaders.iter().all(|x| *x == Some(*l))
        {
            return *l;
        }
        assert!(
            Instant::now() < deadline,
            "nodes did not converge on members {ids:?}: {}",
            serde_json::to_string_pretty(&last).unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates a camera through `server`; returns its id, stream key and assigned node (`None`
/// when the placement was not acknowledged).
pub(crate) async fn create_camera(
    server: &Server,
    token: &str,
    name: &str,
) -> Option<(String, String, Option<u64>)> {
    let r = server
        .client()
        .post(server.url("/api/v1/cameras"))
        .bearer_auth(token)
        .json(&json!({ "name": name, "serialNumber": name }))
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .ok()?;
    if r.status() != StatusCode::CREATED {
        return None;
    }
    let v: Value = r.json().await.ok()?;
    let c = &v["data"];
    Some((
        c["id"].as_str()?.to_owned(),
        c["streamKey"].as_str()?.to_owned(),
        c["assignedNode"].as_str().and_then(|n| n.parse().ok()),
    ))
}

/// One node's applied state machine: (last applied index, digest, state).
pub(crate) async fn applied_state(server: &Server, token: &str) -> Option<(u64, String, Value)> {
    let d = get_data(server, "/api/v1/cluster/state", token).await?;
    Some((
        d["lastAppliedIndex"].as_u64()?,
        d["digest"].as_str()?.to_owned(),
        d["state"].clone(),
    ))
}

/// Samples every node's applied state machine until all have been seen at one common log
/// index (the nodes keep applying heartbeats, so they are compared at the same position, not
/// at the same moment); asserts the digests are equal at every common index seen and returns
/// the state at the highest one.
pub(crate) async fn states_agree(nodes: &[&Node], token: &str, timeout: Duration) -> (u64, Value) {
    let deadline = Instant::now() + timeout;
    let mut seen: Vec<BTreeMap<u64, (String, Value)>> = vec![BTreeMap::new(); nodes.len()];
    loop {
        for (i, n) in nodes.iter().enumerate() {
            if let Some((index, digest, state)) = applied_state(&n.server, token).await {
                seen[i].insert(index, (digest, state));
            }
        }
        let common: Vec<u64> = seen[0]
            .keys()
            .filter(|k| seen.iter().all(|m| m.contains_key(k)))
            .copied()
            .collect();
        for k in &common {
            let first = &seen[0][k];
            for (i, m) in seen.iter().enumerate() {
                assert_eq!(
                    m[k].0, first.0,
                    "node {} and node {} differ at index {k}:\n{}\n{}",
                    nodes[0].id, nodes[i].id, first.1, m[k].1
                );
            }
        }
        if common.len() >= 2 {
            let k = *common.last().unwrap();
            return (k, seen[0][&k].1.clone());
        }
        assert!(
            Instant::now() < deadline,
            "never saw all nodes at one log index: {:?}",
            seen.iter()
                .map(|m| m.keys().rev().take(10).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
