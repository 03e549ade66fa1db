//! Partition: one node (the leader, the harder case) is cut off from the other two by the
//! fault-injecting raft proxies. The minority cannot change placement, its lease lapses, it
//! drops its publisher and refuses new ones; the majority elects a leader, expires the cut
//! node's lease, re-places its camera and keeps applying changes; after healing the node
//! rejoins and every state machine agrees. Figures are printed (`--nocapture`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::common::eventually;
use crate::common::ffmpeg::{Ffmpeg, clips};
use crate::common::services::Postgres;
use crate::nodes::{
    Node, admin_token, cluster_of, converged, create_camera, free_port, placement_in, start,
    states_agree,
};
use crate::proxy::Proxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_the_majority_is_fenced_and_rejoins_after_healing() {
    let started = Instant::now();
    let pg = Postgres::start("partition-pg").await;
    let db = pg.url();
    let (cut, _) = watch::channel(BTreeSet::new());
    let raft = [free_port(), free_port(), free_port()];
    let mut proxies = Vec::new();
    for (i, port) in raft.iter().enumerate() {
        proxies.push(Proxy::start(i as u64 + 1, *port, &cut).await);
    }
    let n1 = start("partition", 1, raft[0], Some(proxies[0].port), &db, None).await;
    let join = format!("http://{}", n1.server.http);
    let mut nodes = vec![n1];
    for id in [2u64, 3] {
        let i = id as usize - 1;
        nodes.push(
            start(
                "partition",
                id,
                raft[i],
                Some(proxies[i].port),
                &db,
                Some(join.clone()),
            )
            .await,
        );
    }
    let token = admin_token(&nodes[0].server).await;
    let all: Vec<&Node> = nodes.iter().collect();
    let leader = converged(&all, &[1, 2, 3], &token, Duration::from_secs(30)).await;
    // Raft traffic really goes through the proxies: the members advertise them.
    let c = cluster_of(&nodes[0].server, &token).await.unwrap();
    for (i, p) in proxies.iter().enumerate() {
        assert_eq!(
            c["members"][i]["raftAddr"],
            format!("127.0.0.1:{}", p.port),
            "{c}"
        );
    }

    // A camera published on a majority node y, then (the same key, a second encoder) on
    // the node about to be cut off, x (the leader): x claims it with a newer epoch and y,
    // fenced by that epoch, drops its publisher.
    let x = nodes.iter().find(|n| n.id == leader).unwrap();
    let majority: Vec<&Node> = nodes.iter().filter(|n| n.id != leader).collect();
    let y = majority[0];
    let (cam, key, _) = create_camera(&x.server, &token, "PARTITION-1")
        .await
        .expect("camera created");
    let clip = clips().await.av_long.clone();
    let live_on = |n: &Node| {
        let (id, cam, token) = (n.id, cam.clone(), token.clone());
        let s = &majority[1].server;
        async move {
            eventually(
                "the camera live on its node",
                Duration::from_secs(15),
                || async {
                    let c = cluster_of(s, &token).await?;
                    let (node, epoch) = placement_in(&c, &cam)?;
                    let load = &c["members"].as_array()?.iter().find(|m| m["id"] == id)?["load"];
                    (node == Some(id) && load["activeStreams"] == 1).then_some(epoch)
                },
            )
            .await
        }
    };
    let _first = Ffmpeg::publish(
        &clip,
        &y.server.rtmp_url(&key),
        y.server.dir.join("ffmpeg-first.log"),
    );
    let on_y = live_on(y).await;
    let _publisher = Ffmpeg::publish(
        &clip,
        &x.server.rtmp_url(&key),
        x.server.dir.join("ffmpeg-partition.log"),
    );
    let t_second = Instant::now();
    let line = y
        .server
        .wait_log(
            &[
                "fenced: the camera moved to another node, publisher dropped",
                &cam,
            ],
            Duration::from_secs(15),
        )
        .await;
    let t_moved = t_second.elapsed();
    for field in [
        format!("old_node={}", y.id),
        format!("old_epoch={on_y}"),
        format!("new_node={}", x.id),
    ] {
        assert!(line.contains(&field), "{field} not in {line}");
    }
    let epoch = live_on(x).await;
    assert!(epoch > on_y, "epoch {epoch} after {on_y}");
    eprintln!(
        "a second encoder on node {}: node {} (epoch {on_y}) dropped its publisher {t_moved:?} after it started (epoch {epoch})",
        x.id, y.id
    );

    // Cut x off.
    cut.send_replace(BTreeSet::from([x.id]));
    let t_cut = Instant::now();

    // The majority: a new leader, x's lease ends there, the camera is re-placed there with
    // a newer epoch; a camera created there is placed (changes still apply).
    let majority_side = async {
        let new_leader = eventually("a majority leader", Duration::from_secs(15), || async {
            let mut ls = Vec::new();
            for n in &majority {
                ls.push(cluster_of(&n.server, &token).await?["leaderId"].as_u64()?);
            }
            (ls[0] != x.id && ls.iter().all(|l| *l == ls[0])).then_some(ls[0])
        })
        .await;
        let t_leader = t_cut.elapsed();
        let (to, new_epoch) =
            eventually("the camera re-placed", Duration::from_secs(20), || async {
                let c = cluster_of(&majority[0].server, &token).await?;
                let lease_held =
                    c["members"].as_array()?.iter().find(|m| m["id"] == x.id)?["leaseHeld"]
                        .as_bool()?;
                let (node, e) = placement_in(&c, &cam)?;
                let node = node?;
                (!lease_held && node != x.id && e > epoch).then_some((node, e))
            })
            .await;
        let t_replaced = t_cut.elapsed();
        let created = create_camera(&majority[1].server, &token, "PARTITION-MAJORITY")
            .await
            .expect("created on the majority");
        let placed = created.2.expect("placed by the majority");
        assert!(placed != x.id, "placed on the cut-off node {placed}");
        (new_leader, t_leader, to, new_epoch, t_replaced, created.0)
    };
    // The minority: its lease view lapses, its publisher is dropped, a new one is refused,
    // and a change asked of it is not applied.
    let minority_side = async {
        let line = x
            .server
            .wait_log(
                &[
                    "fenced: this node's cluster lease lapsed, publisher dropped",
                    &cam,
                ],
                Duration::from_secs(15),
            )
            .await;
        let t_fenced = t_cut.elapsed();
        let lapsed = eventually("lease gauge 0", Duration::from_secs(5), || async {
            let m = x.server.get_text("/metrics").await;
            m.contains("camstream_cluster_lease_held 0\n").then_some(())
        });
        lapsed.await;
        let _again = Ffmpeg::publish(
            &clip,
            &x.server.rtmp_url(&key),
            x.server.dir.join("ffmpeg-refused.log"),
        );
        x.server
            .wait_log(
                &["this node takes no publishers now", "lease"],
                Duration::from_secs(10),
            )
            .await;
        let t = Instant::now();
        let minor = create_camera(&x.server, &token, "PARTITION-MINORITY")
            .await
            .expect("the row is created (PostgreSQL is shared)");
        assert_eq!(minor.2, None, "the minority placed a camera");
        (line, t_fenced, minor.0, t.elapsed())
    };
    let (
        (new_leader, t_leader, to, new_epoch, t_replaced, majority_cam),
        (line, t_fenced, minority_cam, t_minor),
    ) = tokio::join!(majority_side, minority_side);
    eprintln!(
        "partition of node {}: majority leader {new_leader} after {t_leader:?}; camera re-placed on node {to} (epoch {epoch} -> {new_epoch}) after {t_replaced:?}; publisher dropped on the cut-off node after {t_fenced:?}; a placement asked of the minority failed after {t_minor:?}",
        x.id
    );
    assert!(line.contains("WARN"), "{line}");
    assert!(
        t_fenced < Duration::from_secs(8),
        "fenced after {t_fenced:?}"
    );

    // Heal: x rejoins (a voter holding a lease again, one leader), and every state machine
    // agrees; the minority's change is nowhere, the majority's is everywhere.
    cut.send_replace(BTreeSet::new());
    let t_heal = Instant::now();
    let all: Vec<&Node> = nodes.iter().collect();
    converged(&all, &[1, 2, 3], &token, Duration::from_secs(30)).await;
    let t_rejoined = t_heal.elapsed();
    let (index, state) = states_agree(&all, &token, Duration::from_secs(10)).await;
    let cameras = &state["cameras"];
    assert!(cameras.get(&minority_cam).is_none(), "{state}");
    assert!(cameras.get(&majority_cam).is_some(), "{state}");
    assert_eq!(cameras[&cam]["node"], to, "{state}");
    eprintln!(
        "healed: node {} rejoined after {t_rejoined:?}; all state machines equal at log index {index}",
        x.id,
    );

    // Drain hands a camera over through the same fence: a camera live on the drained node is
    // re-placed by the scheduler with a newer epoch, and the drained node drops its
    // publisher.
    let (drained_cam, drained_key, _) = create_camera(&x.server, &token, "PARTITION-DRAIN")
        .await
        .expect("camera created");
    let _drained_publisher = Ffmpeg::publish(
        &clip,
        &x.server.rtmp_url(&drained_key),
        x.server.dir.join("ffmpeg-drain.log"),
    );
    let on_x = eventually("the camera live on x", Duration::from_secs(15), || async {
        let c = cluster_of(&majority[1].server, &token).await?;
        let (node, epoch) = placement_in(&c, &drained_cam)?;
        (node == Some(x.id)).then_some(epoch)
    })
    .await;
    x.server
        .wait_log(&["publishing", &drained_cam], Duration::from_secs(10))
        .await;
    let r = majority[0]
        .server
        .client()
        .post(
            majority[0]
                .server
                .url(&format!("/api/v1/cluster/nodes/{}/drain", x.id)),
        )
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let t_drain = Instant::now();
    x.server
        .wait_log(
            // Moved (placed here, then re-placed) or draining (re-placed before this node
            // saw it here), depending on whether a health round came in between.
            &["fenced: ", "publisher dropped", &drained_cam],
            Duration::from_secs(10),
        )
        .await;
    let t_dropped = t_drain.elapsed();
    let c = cluster_of(&majority[1].server, &token).await.unwrap();
    let (node, epoch) = placement_in(&c, &drained_cam).unwrap();
    assert!(node.is_some_and(|n| n != x.id) && epoch > on_x, "{c}");
    eprintln!(
        "drain of node {}: its publisher dropped {t_dropped:?} after the drain, camera on node {node:?} (epoch {on_x} -> {epoch}) (whole test {:?})",
        x.id,
        started.elapsed()
    );
}
