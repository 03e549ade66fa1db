//! Three nodes, one database: join, status on every node, a wrongly signed raft RPC, and
//! repeated leader kills.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::common::services::Postgres;
use crate::common::{Server, ServerOptions};

pub(crate) const SECRET: &str = "cluster-test-secret-0123456789";
pub(crate) const ADMIN_PASSWORD: &str = "Raft-Operator-Pass-42";
/// Leader kills measured.
const ROUNDS: usize = 5;

/// Logs in as the admin on `server` and makes an API token named `name` with
/// `permissions`; its secret (one shared database: it works on every node).
pub(crate) async fn api_token(server: &Server, name: &str, permissions: &[&str]) -> String {
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
        .json(&json!({ "name": name, "permissions": permissions }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["data"]["tokenSecret"]
        .as_str()
        .unwrap_or_else(|| panic!("API token: {r}"))
        .to_owned()
}

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Signs like `controlplane/src/cluster/auth.rs` (key = HMAC(secret, label); message =
/// method, path, node, time, nonce, hex SHA-256 of the body, each followed by a newline).
fn sign(secret: &str, path: &str, node: u64, time_ms: u64, nonce: &str, body: &[u8]) -> String {
    let mut k = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    k.update(b"camstream cluster rpc v1");
    let key = k.finalize().into_bytes();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    for part in [
        "POST".to_owned(),
        path.to_owned(),
        node.to_string(),
        time_ms.to_string(),
        nonce.to_owned(),
        hex(&Sha256::digest(body)),
    ] {
        mac.update(part.as_bytes());
        mac.update(b"\n");
    }
    hex(&mac.finalize().into_bytes())
}

pub(crate) struct Node {
    pub(crate) id: u64,
    pub(crate) raft: u16,
    pub(crate) server: Server,
}

pub(crate) async fn start(id: u64, raft: u16, db: &str, join: Option<String>) -> Server {
    start_named(&format!("cluster-node{id}"), id, raft, db, join).await
}

/// [`start`] in the scratch directory `name` (tests running at once need their own).
pub(crate) async fn start_named(
    name: &str,
    id: u64,
    raft: u16,
    db: &str,
    join: Option<String>,
) -> Server {
    start_node(name, id, raft, db, join, &[]).await
}

/// [`start_named`] with `more` flags after the cluster ones (e.g. a shorter
/// `--alert-offline-after`).
pub(crate) async fn start_node(
    name: &str,
    id: u64,
    raft: u16,
    db: &str,
    join: Option<String>,
    more: &[&str],
) -> Server {
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
    if let Some(j) = join {
        extra.extend(["--join".to_owned(), j]);
    }
    extra.extend(more.iter().map(|s| (*s).to_owned()));
    Server::start_with(
        name,
        ServerOptions {
            allow_any_key: false,
            ..ServerOptions::default()
        },
        extra,
    )
    .await
}

/// `method` `path` on `server` with the bearer `token` and an optional JSON body;
/// (status, JSON body or null).
pub(crate) async fn call(
    server: &Server,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut r = server
        .client()
        .request(method, server.url(path))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.expect("request");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn cluster_of(server: &Server, token: &str) -> Option<Value> {
    let r = server
        .client()
        .get(server.url("/api/v1/cluster"))
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
            if members == ids && c["clustered"] == true {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_join_agree_refuse_a_wrong_secret_and_elect_a_new_leader_after_kill9() {
    let started = Instant::now();
    let pg = Postgres::start("cluster-pg").await;
    let db = pg.url();
    let ports = [free_port(), free_port(), free_port()];
    let n1 = start(1, ports[0], &db, None).await;
    let join = format!("http://{}", n1.http);
    let mut nodes = vec![Node {
        id: 1,
        raft: ports[0],
        server: n1,
    }];
    for id in [2u64, 3] {
        let raft = ports[id as usize - 1];
        let server = start(id, raft, &db, Some(join.clone())).await;
        nodes.push(Node { id, raft, server });
    }

    // One shared database: a token made on node 1 works on every node.
    let s1 = &nodes[0].server;
    let r: Value = s1
        .client()
        .post(s1.url("/api/v1/auth/login"))
        .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let session = r["data"]["accessToken"].as_str().expect("login").to_owned();
    let r: Value = s1
        .client()
        .post(s1.url("/api/v1/tokens"))
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
    let token = r["data"]["tokenSecret"].as_str().expect("token").to_owned();

    let all: Vec<&Node> = nodes.iter().collect();
    let leader = converged(&all, &[1, 2, 3], &token, Duration::from_secs(30)).await;
    let formed = started.elapsed();
    for n in &nodes {
        let c = cluster_of(&n.server, &token).await.unwrap();
        assert_eq!(c["nodeId"], n.id);
        assert!(c["term"].as_u64().unwrap() >= 1, "{c}");
        assert!(c["commitIndex"].as_u64().unwrap() >= 3, "{c}");
        let me = c["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == n.id)
            .unwrap()
            .clone();
        assert_eq!(me["raftAddr"], format!("127.0.0.1:{}", n.raft), "{me}");
        assert_eq!(
            me["apiUrl"],
            format!("http://localhost:{}", n.server.http.port())
        );
        // The relay is bound (port 0 became a real one) and that port is advertised.
        let relay = me["relayAddr"].as_str().expect("relayAddr advertised");
        let port: u16 = relay.rsplit_once(':').unwrap().1.parse().unwrap();
        assert_ne!(port, 0, "{me}");
        assert!(
            std::net::UdpSocket::bind(("127.0.0.1", port)).is_err(),
            "the relay's UDP port {port} is not bound"
        );
        // The gauges are refreshed twice a second.
        let want = format!("camstream_raft_leader_id {leader}\n");
        let metrics = crate::common::eventually("raft gauges", Duration::from_secs(5), || async {
            let m = n.server.get_text("/metrics").await;
            (m.contains(&want) && m.contains("camstream_cluster_lease_held 1\n")).then_some(m)
        })
        .await;
        for name in [
            "camstream_raft_term",
            "camstream_raft_commit_index",
            "camstream_raft_last_applied",
            "camstream_active_streams",
            "active_streams_per_pod",
        ] {
            assert!(
                metrics.contains(name),
                "node {} /metrics lacks {name}",
                n.id
            );
        }
    }
    // A camera created through a follower is placed: its assignedNode is a member and its
    // rtmpUrl points at that node's RTMP listener; every node says the same.
    let follower = nodes.iter().find(|n| n.id != leader).unwrap();
    let r = follower
        .server
        .client()
        .post(follower.server.url("/api/v1/cameras"))
        .bearer_auth(&token)
        .json(&json!({ "name": "Gate", "serialNumber": "CLUSTER-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let cam: Value = r.json().await.unwrap();
    let cam = &cam["data"];
    let placed: u64 = cam["assignedNode"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("assignedNode: {cam}"));
    let on = nodes.iter().find(|n| n.id == placed).expect("a member");
    let rtmp = format!("rtmp://localhost:{}/live/", on.server.rtmp.port());
    assert!(
        cam["rtmpUrl"].as_str().unwrap().starts_with(&rtmp),
        "{} should start with {rtmp}",
        cam["rtmpUrl"]
    );
    let cam_id = cam["id"].as_str().unwrap().to_owned();
    let cam_id = cam_id.as_str();
    for n in &nodes {
        let c: Value = n
            .server
            .client()
            .get(n.server.url(&format!("/api/v1/cameras/{cam_id}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            c["data"]["assignedNode"],
            placed.to_string(),
            "node {}",
            n.id
        );
    }
    let c = cluster_of(s1, &token).await.unwrap();
    assert_eq!(
        c["cameras"],
        json!([{ "cameraId": cam_id, "nodeId": placed, "epoch": 1 }])
    );

    // A publisher connecting to another node claims the camera there: a new epoch, and
    // assignedNode follows.
    let other = nodes.iter().find(|n| n.id != placed).unwrap();
    let key = cam["streamKey"].as_str().unwrap();
    let clip = crate::common::ffmpeg::clips().await.video.clone();
    let publisher = crate::common::ffmpeg::Ffmpeg::publish(
        &clip,
        &format!("rtmp://127.0.0.1:{}/live/{key}", other.server.rtmp.port()),
        other.server.dir.join("ffmpeg-claim.log"),
    );
    let t_publish = Instant::now();
    crate::common::eventually(
        "claim on the publisher's node",
        Duration::from_secs(15),
        || async {
            let c = cluster_of(s1, &token).await?;
            // Its heartbeats carry the load: one stream with a bitrate.
            let load = &c["members"]
                .as_array()?
                .iter()
                .find(|m| m["id"] == other.id)?["load"];
            (c["cameras"][0]["nodeId"] == other.id
                && c["cameras"][0]["epoch"] == 2
                && load["activeStreams"] == 1
                && load["ingestKbps"].as_u64() > Some(0)
                // No ABR profile: nothing transcoded, the default budget (2) reported.
                && load["transcoding"] == 0
                && load["transcodeMax"] == 2)
                .then_some(())
        },
    )
    .await;
    eprintln!(
        "published to node {} (placed on {placed}): claimed, and its load heartbeated, after {:?}",
        other.id,
        t_publish.elapsed()
    );
    drop(publisher);
    let placed = other.id;
    let c: Value = s1
        .client()
        .get(s1.url(&format!("/api/v1/cameras/{cam_id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(c["data"]["assignedNode"], placed.to_string());
    assert!(
        c["data"]["rtmpUrl"]
            .as_str()
            .unwrap()
            .starts_with(&format!("rtmp://localhost:{}/", other.server.rtmp.port())),
        "{c}"
    );

    // Without the cluster credential, /api/v1/cluster is refused like any admin route.
    let r = s1.get("/api/v1/cluster").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A raft RPC signed with another secret is refused and logged with the peer address;
    // the same request signed with the right secret gets through the check (and raft
    // answers it).
    let body =
        br#"{"vote":{"leader_id":{"term":0,"node_id":9},"committed":false},"last_log_id":null}"#;
    let rpc = |secret: &'static str| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        s1.client()
            .post(format!("http://127.0.0.1:{}/raft/vote", nodes[0].raft))
            .header("content-type", "application/json")
            .header("x-camstream-node", "9")
            .header("x-camstream-time", now.to_string())
            .header("x-camstream-nonce", "42")
            .header(
                "x-camstream-signature",
                sign(secret, "/raft/vote", 9, now, "42", body),
            )
            .body(body.to_vec())
            .send()
    };
    let r = rpc("not-the-cluster-secret-at-all").await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    s1.wait_log(
        &["refused an unauthenticated cluster request", "127.0.0.1:"],
        Duration::from_secs(5),
    )
    .await;
    let r = s1
        .client()
        .post(format!("http://127.0.0.1:{}/raft/vote", nodes[0].raft))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "unsigned");
    let r = rpc(SECRET).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());

    // Kill the leader; the other two elect a new one. Then bring it back and repeat.
    let mut times = Vec::new();
    let mut leader = leader;
    for round in 0..ROUNDS {
        let i = nodes.iter().position(|n| n.id == leader).unwrap();
        nodes[i].server.kill9().await;
        let t_kill = Instant::now();
        let survivors: Vec<&Node> = nodes.iter().filter(|n| n.id != leader).collect();
        let deadline = t_kill + Duration::from_secs(15);
        let new_leader = loop {
            let mut seen = Vec::new();
            for n in &survivors {
                seen.push(
                    cluster_of(&n.server, &token)
                        .await
                        .and_then(|c| c["leaderId"].as_u64()),
                );
            }
            if let Some(Some(l)) = seen.first()
                && *l != leader
                && seen.iter().all(|x| *x == Some(*l))
            {
                break *l;
            }
            assert!(Instant::now() < deadline, "no new leader: {seen:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let took = t_kill.elapsed();
        times.push(took);
        eprintln!("round {round}: killed leader {leader}, node {new_leader} leads after {took:?}");
        // The dead node's lease runs out on the survivors (Takeover grace + lease).
        let dead = leader;
        let s = &survivors[0].server;
        crate::common::eventually(
            "dead node's lease ends",
            // Lease + takeover grace is ~4 s after the election; the slack is for a loaded
            // 2-core machine (CI runs builds next to it).
            Duration::from_secs(20),
            || async {
                let c = cluster_of(s, &token).await?;
                let m = c["members"]
                    .as_array()?
                    .iter()
                    .find(|m| m["id"] == dead)?
                    .clone();
                (m["leaseHeld"] == false).then_some(())
            },
        )
        .await;
        // The leader's scheduler moves the camera off a dead node (or leaves it where it
        // is, on a survivor).
        let moved =
            crate::common::eventually("camera on a live node", Duration::from_secs(20), || async {
                let c = cluster_of(s, &token).await?;
                let node = c["cameras"][0]["nodeId"].as_u64()?;
                (node != dead).then_some(node)
            })
            .await;
        eprintln!("round {round}: camera on node {moved}");
        // Restart the killed node from its directories; it rejoins.
        let node = nodes.remove(i);
        let server = node.server.relaunch(&[], &[]).await;
        nodes.insert(i, Node { server, ..node });
        let all: Vec<&Node> = nodes.iter().collect();
        leader = converged(&all, &[1, 2, 3], &token, Duration::from_secs(30)).await;
    }
    // The CLI against a follower: drain a node, see it, remove it, see two members.
    let follower = nodes.iter().find(|n| n.id != leader).unwrap();
    let api = format!("http://{}", follower.server.http);
    let target = nodes
        .iter()
        .find(|n| n.id != leader && n.id != follower.id)
        .unwrap()
        .id;
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_camstream"))
            .arg("cluster")
            .args(args)
            .args(["--api", &api])
            .env("CAMSTREAM_API_TOKEN", &token)
            .output()
            .expect("run camstream cluster");
        assert!(
            out.status.success(),
            "camstream cluster {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let table = cli(&["status"]);
    assert!(
        table.contains(&format!("leader {leader}")) && table.lines().count() == 6,
        "{table}"
    );
    let target_s = target.to_string();
    cli(&["drain", &target_s]);
    let status: Value = serde_json::from_str(&cli(&["status", "--json"])).unwrap();
    let m = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == target)
        .unwrap();
    assert_eq!(m["draining"], true, "{status}");
    cli(&["remove", &target_s]);
    let status: Value = serde_json::from_str(&cli(&["status", "--json"])).unwrap();
    let ids: Vec<u64> = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_u64().unwrap())
        .collect();
    assert!(!ids.contains(&target) && ids.len() == 2, "{status}");
    // The removed node still runs: it must not unsettle the other two (their leader and
    // term stay as they are for several election timeouts).
    let term = status["term"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: Value = serde_json::from_str(&cli(&["status", "--json"])).unwrap();
    assert_eq!(
        (after["term"].as_u64(), after["leaderId"].as_u64()),
        (Some(term), Some(leader)),
        "{after}"
    );

    // A cluster node stops cleanly on SIGTERM (raft, its listener and loops included).
    for n in &nodes {
        let t = Instant::now();
        let status = n.server.stop(Duration::from_secs(15)).await;
        assert!(status.success(), "node {} exited with {status}", n.id);
        eprintln!("node {} stopped in {:?}", n.id, t.elapsed());
    }

    times.sort();
    eprintln!(
        "cluster formed in {formed:?}; leader kill -9 -> new leader agreed by both survivors: min {:?} median {:?} max {:?} (whole test {:?})",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1],
        started.elapsed()
    );
    for t in &times {
        assert!(*t < Duration::from_secs(5), "failover took {t:?}");
    }
}
