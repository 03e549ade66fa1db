//! Raft storage with real processes: while cameras are created (each one a placement the
//! leader writes and the API acknowledges with `assignedNode`) without pause, `kill -9` a
//! follower and restart it from its directories, then the leader. Afterwards every node's
//! state machine is identical at one log index and holds every acknowledged placement.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::common::services::Postgres;
use crate::nodes::{Node, admin_token, converged, free_port, start, states_agree};

/// Placements acknowledged while a killed node is down.
const DOWN_FOR: usize = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_state_survives_kill9_of_a_follower_and_the_leader_under_placements() {
    let started = Instant::now();
    let pg = Postgres::start("crash-pg").await;
    let db = pg.url();
    let raft = [free_port(), free_port(), free_port()];
    let n1 = start("crash", 1, raft[0], None, &db, None).await;
    let join = format!("http://{}", n1.server.http);
    let mut nodes = vec![n1];
    for id in [2u64, 3] {
        let r = raft[id as usize - 1];
        nodes.push(start("crash", id, r, None, &db, Some(join.clone())).await);
    }
    let token = admin_token(&nodes[0].server).await;
    let all: Vec<&Node> = nodes.iter().collect();
    let leader = converged(&all, &[1, 2, 3], &token, Duration::from_secs(30)).await;
    // Kill a follower first, then whoever leads then; the writer talks to a node that is not
    // about to be killed.
    let follower = nodes.iter().find(|n| n.id != leader).unwrap().id;
    let mut writer_node = nodes
        .iter()
        .find(|n| n.id != leader && n.id != follower)
        .unwrap()
        .id;

    // The writer: creates cameras back to back through `target`'s API and records every
    // placement acknowledged (camera, node) and when.
    let acked: Arc<Mutex<Vec<(String, u64, Instant)>>> = Arc::default();
    let (stop, mut stopped) = watch::channel(false);
    let url_of = |nodes: &[Node], id: u64| {
        let s = &nodes.iter().find(|n| n.id == id).unwrap().server;
        s.url("/api/v1/cameras")
    };
    let target = Arc::new(Mutex::new(url_of(&nodes, writer_node)));
    let writer = {
        let acked = acked.clone();
        let target = target.clone();
        let client = nodes[0].server.client().clone();
        let token = token.clone();
        tokio::spawn(async move {
            let mut n = 0u32;
            let mut refused = 0u32;
            while !*stopped.borrow_and_update() {
                n += 1;
                let name = format!("CRASH-{n}");
                let url = target.lock().unwrap().clone();
                let r = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&serde_json::json!({ "name": name, "serialNumber": name }))
                    .timeout(Duration::from_secs(20))
                    .send()
                    .await;
                let v: Option<serde_json::Value> = match r {
                    Ok(r) if r.status() == reqwest::StatusCode::CREATED => r.json().await.ok(),
                    _ => None,
                };
                let placed = v.as_ref().and_then(|v| {
                    let c = &v["data"];
                    Some((
                        c["id"].as_str()?.to_owned(),
                        c["assignedNode"].as_str()?.parse::<u64>().ok()?,
                    ))
                });
                match placed {
                    Some((id, node)) => acked.lock().unwrap().push((id, node, Instant::now())),
                    None => refused += 1,
                }
            }
            (n, refused)
        })
    };
    let acks_after = |t: Instant| {
        let a = acked.lock().unwrap();
        a.iter().find(|x| x.2 > t).map(|x| x.2 - t)
    };
    let wait_acks = |what: &'static str, t: Instant| {
        let acks_after = &acks_after;
        async move {
            crate::common::eventually(what, Duration::from_secs(20), || async { acks_after(t) })
                .await
        }
    };
    wait_acks("first placements", Instant::now()).await;

    let mut report = Vec::new();
    let mut leader_now = leader;
    for role in ["follower", "leader"] {
        let victim = if role == "leader" {
            leader_now
        } else {
            follower
        };
        if victim == writer_node {
            writer_node = nodes.iter().find(|n| n.id != victim).unwrap().id;
            *target.lock().unwrap() = url_of(&nodes, writer_node);
        }
        let i = nodes.iter().position(|n| n.id == victim).unwrap();
        // Let placements flow for a moment before the kill.
        let before = acked.lock().unwrap().len();
        crate::common::eventually("placements flowing", Duration::from_secs(20), || async {
            (acked.lock().unwrap().len() >= before + 3).then_some(())
        })
        .await;
        nodes[i].server.kill9().await;
        let t_kill = Instant::now();
        let next = wait_acks("a placement acknowledged after the kill", t_kill).await;
        // Keep it down while placements go on without it: it must catch up from its own
        // log after the restart.
        let down_from = acked.lock().unwrap().len();
        crate::common::eventually(
            "placements while the node is down",
            Duration::from_secs(20),
            || async { (acked.lock().unwrap().len() >= down_from + DOWN_FOR).then_some(()) },
        )
        .await;
        let node = nodes.remove(i);
        let server = node.server.relaunch(&[], &[]).await;
        nodes.insert(i, Node { server, ..node });
        let all: Vec<&Node> = nodes.iter().collect();
        leader_now = converged(&all, &[1, 2, 3], &token, Duration::from_secs(30)).await;
        let rejoined = t_kill.elapsed();
        eprintln!(
            "kill -9 of the {role} (node {victim}): next placement acknowledged after {next:?}; restarted after {DOWN_FOR} more, rejoined {rejoined:?} after the kill"
        );
        report.push((role, next));
    }
    // A few more after both restarts, then stop writing.
    let t = Instant::now();
    wait_acks("placements after the restarts", t).await;
    stop.send_replace(true);
    let (tried, refused) = writer.await.unwrap();

    let all: Vec<&Node> = nodes.iter().collect();
    let (index, state) = states_agree(&all, &token, Duration::from_secs(15)).await;
    let acked = acked.lock().unwrap().clone();
    for (camera, node, _) in &acked {
        let p = &state["cameras"][camera];
        assert!(
            p["epoch"].as_u64().is_some_and(|e| e >= 1),
            "acknowledged placement of {camera} on node {node} lost: {p}"
        );
        // Placed once and never moved, unless its node's lease ran out while it was down.
        if p["epoch"] == 1 {
            assert_eq!(p["node"], *node, "{camera}");
        }
    }
    eprintln!(
        "{} placements acknowledged ({tried} tried, {refused} not acknowledged), all on every node; state machines equal at log index {index} (whole test {:?})",
        acked.len(),
        started.elapsed()
    );
    for (role, next) in report {
        assert!(
            next < Duration::from_secs(10),
            "placements stalled {next:?} after killing the {role}"
        );
    }
}
