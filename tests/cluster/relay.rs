//! Any node serves any camera: a viewer on one node plays a camera ingested on another
//! through the QUIC relay (same numbers, same bytes, one relay stream for many viewers), and
//! keeps playing when the ingest node is killed and the publisher reconnects elsewhere
//! through a TCP balancer.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use super::failover::{Node, api_token, cluster_of, converged, free_port, start_named};
use crate::common::hls::LlPlaylist;
use crate::common::services::Postgres;
use crate::common::{Server, eventually};

/// Kills of the ingest node measured.
const ROUNDS: usize = 5;
/// Concurrent viewers on the edge that must share one relay stream.
const VIEWERS: usize = 20;

/// A TCP balancer as operators put in front of RTMP ports: each connection goes to the
/// first backend that accepts it, piped both ways.
struct Balancer {
    addr: SocketAddr,
    backends: Arc<Mutex<Vec<SocketAddr>>>,
    task: JoinHandle<()>,
}

impl Balancer {
    async fn start(backends: Vec<SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let backends = Arc::new(Mutex::new(backends));
        let list = backends.clone();
        let task = tokio::spawn(async move {
            let mut pipes = JoinSet::new();
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                while pipes.try_join_next().is_some() {}
                let candidates = list.lock().unwrap().clone();
                pipes.spawn(async move {
                    for b in candidates {
                        let up =
                            tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(b))
                                .await;
                        if let Ok(Ok(mut up)) = up {
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                            return;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            backends,
            task,
        }
    }

    fn set(&self, backends: Vec<SocketAddr>) {
        *self.backends.lock().unwrap() = backends;
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// ffmpeg publishing the clip in a loop, started again whenever it exits (as a camera
/// reconnects); killed on drop.
struct Publisher(JoinHandle<()>);

impl Publisher {
    fn start(clip: PathBuf, url: String, log: PathBuf) -> Self {
        Self(tokio::spawn(async move {
            loop {
                let err = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap();
                let mut cmd = tokio::process::Command::new("ffmpeg");
                cmd.args(["-hide_banner", "-nostdin", "-v", "error", "-re"])
                    .args(["-stream_loop", "-1", "-i"])
                    .arg(&clip)
                    .args(["-c", "copy", "-f", "flv", &url])
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .stderr(err)
                    .kill_on_drop(true);
                let _ = cmd.status().await;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }))
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A gauge or counter from `/metrics` (0 when absent: counters appear on first use).
async fn metric(server: &Server, name: &str) -> f64 {
    let text = server.get_text("/metrics").await;
    text.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(' ')?;
            (n == name).then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0.0)
}

/// GET of a playlist or media path with the playback token; status and body.
async fn fetch(server: &Server, path: &str, token: &str) -> Option<(StatusCode, bytes::Bytes)> {
    let r = server
        .client()
        .get(format!("{}?token={token}", server.url(path)))
        .timeout(Duration::from_secs(15))
        .send()
        .await
        .ok()?;
    let status = r.status();
    Some((status, r.bytes().await.ok()?))
}

async fn playlist(server: &Server, camera: &str, token: &str) -> Option<LlPlaylist> {
    let (status, body) = fetch(server, &format!("/hls/{camera}/playlist.m3u8"), token).await?;
    (status == StatusCode::OK).then(|| LlPlaylist::parse(std::str::from_utf8(&body).unwrap()))
}

/// The newest part a playlist lists: (msn, part index).
fn newest(p: &LlPlaylist) -> Option<(u64, usize)> {
    p.last_part().map(|(m, i, _)| (m, i))
}

/// Discontinuities a playlist has announced: those counted in its discontinuity sequence and
/// those it lists (a tag sliding out of the window moves from one to the other).
fn discontinuities(p: &LlPlaylist) -> u64 {
    p.discontinuity_sequence
        + p.segments.iter().filter(|s| s.discontinuity).count() as u64
        + u64::from(p.trailing_discontinuity)
}

/// Media path of a playlist URI (relative, with its `?token=`).
fn media_path(camera: &str, uri: &str) -> String {
    format!("/hls/{camera}/{}", uri.split('?').next().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_serves_any_camera_and_viewers_survive_kill9_of_the_ingest_node() {
    // Failover is timed: not beside the ABR test's transcoder and browser.
    let _heavy = crate::common::heavy().await;
    let started = Instant::now();
    let pg = Postgres::start("relay-pg").await;
    let db = pg.url();
    let ports = [free_port(), free_port(), free_port()];
    let n1 = start_named("relay-node1", 1, ports[0], &db, None).await;
    let join = format!("http://{}", n1.http);
    let mut nodes = vec![Node {
        id: 1,
        raft: ports[0],
        server: n1,
    }];
    for id in [2u64, 3] {
        let raft = ports[id as usize - 1];
        let server = start_named(
            &format!("relay-node{id}"),
            id,
            raft,
            &db,
            Some(join.clone()),
        )
        .await;
        nodes.push(Node { id, raft, server });
    }
    let s1 = &nodes[0].server;
    let api = api_token(
        s1,
        "relay test",
        &[
            "cluster:manage",
            "cameras:read",
            "cameras:write",
            "streams:play",
        ],
    )
    .await;
    let all: Vec<&Node> = nodes.iter().collect();
    let mut leader = converged(&all, &[1, 2, 3], &api, Duration::from_secs(30)).await;
    let cam: Value = s1
        .client()
        .post(s1.url("/api/v1/cameras"))
        .bearer_auth(&api)
        .json(&json!({ "name": "Dock", "serialNumber": "RELAY-1" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let camera = cam["data"]["id"].as_str().unwrap().to_owned();
    let key = cam["data"]["streamKey"].as_str().unwrap().to_owned();
    let urls: Value = s1
        .client()
        .get(s1.url(&format!("/api/v1/cameras/{camera}/stream/hls")))
        .bearer_auth(&api)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = urls["data"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("playback token: {urls}"))
        .to_owned();

    // The balancer prefers the leader: the first kill takes the leader and the ingest.
    let mut order: Vec<u64> = vec![leader];
    order.extend([1u64, 2, 3].into_iter().filter(|n| *n != leader));
    let rtmp_of = |nodes: &[Node], order: &[u64]| -> Vec<SocketAddr> {
        order
            .iter()
            .map(|id| nodes.iter().find(|n| n.id == *id).unwrap().server.rtmp)
            .collect()
    };
    let balancer = Balancer::start(rtmp_of(&nodes, &order)).await;
    let clip = crate::common::ffmpeg::clips().await.av_long.clone();
    let _publisher = Publisher::start(
        clip,
        format!("rtmp://{}/live/{key}", balancer.addr),
        nodes[0].server.dir.join("ffmpeg-relay.log"),
    );
    let node = |nodes: &[Node], id: u64| nodes.iter().position(|n| n.id == id).unwrap();
    let a = node(&nodes, order[0]);
    let b = node(&nodes, order[1]);
    let (sa, sb) = (&nodes[a].server, &nodes[b].server);
    let pa = eventually(
        "the playlist on the ingest node",
        Duration::from_secs(20),
        || playlist(sa, &camera, &token),
    )
    .await;
    assert!(
        pa.media_sequence > 1_000_000_000,
        "a cluster origin numbers from the UNIX time:\n{}",
        pa.text
    );

    // No token, or a wrong one: refused on the edge before any pull starts.
    let path = format!("/hls/{camera}/playlist.m3u8");
    assert_eq!(sb.get(&path).await.status(), StatusCode::UNAUTHORIZED);
    let (status, _) = fetch(sb, &path, "not-a-token").await.unwrap();
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(metric(sb, "camstream_relay_pulls_started_total").await, 0.0);
    assert_eq!(metric(sb, "camstream_relay_streams_in").await, 0.0);

    // Many viewers at once on the edge: all served, one relay stream between the nodes.
    let mut viewers = JoinSet::new();
    for _ in 0..VIEWERS {
        let (client, url) = (sb.client().clone(), sb.url(&path));
        let token = token.clone();
        viewers.spawn(async move {
            let r = client
                .get(format!("{url}?token={token}"))
                .timeout(Duration::from_secs(20))
                .send()
                .await
                .unwrap();
            (r.status(), r.text().await.unwrap())
        });
    }
    let t_view = Instant::now();
    while let Some(r) = viewers.join_next().await {
        let (status, text) = r.unwrap();
        assert_eq!(status, StatusCode::OK, "{text}");
        LlPlaylist::parse(&text);
    }
    eprintln!(
        "{VIEWERS} concurrent viewers on node {} served in {:?} (camera ingested on node {})",
        nodes[b].id,
        t_view.elapsed(),
        nodes[a].id
    );
    assert_eq!(metric(sb, "camstream_relay_streams_in").await, 1.0);
    assert_eq!(metric(sa, "camstream_relay_streams_out").await, 1.0);
    assert_eq!(metric(sb, "camstream_relay_pulls_started_total").await, 1.0);

    // Same numbers and bytes on the edge as on the origin: the edge's newest complete
    // segment, once the origin lists it too.
    let pb = eventually(
        "a complete segment on the edge",
        Duration::from_secs(10),
        || async {
            playlist(sb, &camera, &token)
                .await
                .filter(|p| p.segments.last().is_some_and(|s| !s.parts.is_empty()))
        },
    )
    .await;
    let seg = pb.segments.last().unwrap().clone();
    let pa = playlist(sa, &camera, &token).await.unwrap();
    let on_a = pa
        .segments
        .iter()
        .find(|s| s.msn == seg.msn)
        .unwrap_or_else(|| panic!("segment {} not on the origin:\n{}", seg.msn, pa.text));
    let names = |s: &crate::common::hls::SegmentInfo| -> Vec<String> {
        s.parts
            .iter()
            .map(|p| p.uri.split('?').next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(on_a),
        names(&seg),
        "part names of segment {}",
        seg.msn
    );
    assert_eq!(on_a.uri, seg.uri);
    for p in &seg.parts {
        let path = media_path(&camera, &p.uri);
        let (sa_status, on_origin) = fetch(sa, &path, &token).await.unwrap();
        let (sb_status, on_edge) = fetch(sb, &path, &token).await.unwrap();
        assert_eq!(
            (sa_status, sb_status),
            (StatusCode::OK, StatusCode::OK),
            "{path}"
        );
        assert!(on_origin == on_edge, "{path}: the edge's bytes differ");
    }
    eprintln!(
        "MSN check: segment {} has the same {} part names and bytes on origin node {} (media sequence {}) and edge node {} (media sequence {})",
        seg.msn,
        seg.parts.len(),
        nodes[a].id,
        pa.media_sequence,
        nodes[b].id,
        pb.media_sequence
    );
    // The edge's media decode: its init segment and that segment, through ffprobe.
    let map = seg.map.clone().or(pb.map.clone()).expect("EXT-X-MAP");
    let mut file = fetch(sb, &media_path(&camera, &map), &token)
        .await
        .unwrap()
        .1
        .to_vec();
    file.extend_from_slice(
        &fetch(sb, &media_path(&camera, &seg.uri), &token)
            .await
            .unwrap()
            .1,
    );
    let out = sb.dir.join("edge-segment.mp4");
    std::fs::write(&out, &file).unwrap();
    let probed = crate::common::ffmpeg::probe(out.to_str().unwrap()).await;
    assert_eq!(
        probed.stream("video").map(|s| s.codec_name.as_str()),
        Some("h264")
    );
    assert_eq!(
        probed.stream("audio").map(|s| s.codec_name.as_str()),
        Some("aac")
    );

    // Failover: kill -9 the node the publisher is on; the publisher reconnects through the
    // balancer to the next node; a viewer polling a surviving node sees new parts.
    let mut on = order[0];
    let mut times = Vec::new();
    for round in 0..ROUNDS {
        let next = *order.iter().find(|n| **n != on).unwrap();
        let other = *order.iter().find(|n| **n != on && **n != next).unwrap();
        // Alternate: the viewer's node becomes the ingest (its local publisher replaces the
        // relay), or stays an edge while the origin moves to the third node.
        let viewer = if round % 2 == 1 { next } else { other };
        let sv = &nodes[node(&nodes, viewer)].server;
        let s_any = &nodes[node(&nodes, viewer)].server;
        eventually(
            "the camera placed on the publisher's node",
            Duration::from_secs(20),
            || async {
                let c = cluster_of(s_any, &api).await?;
                let placed = c["cameras"]
                    .as_array()?
                    .iter()
                    .find(|x| x["cameraId"] == camera.as_str())?["nodeId"]
                    .as_u64()?;
                (placed == on).then_some(())
            },
        )
        .await;
        let before = eventually(
            "the viewer's node plays",
            Duration::from_secs(20),
            || async {
                let p = playlist(sv, &camera, &token).await?;
                newest(&p)
            },
        )
        .await;
        let p_before = playlist(sv, &camera, &token).await.unwrap();
        let ds_before = p_before.discontinuity_sequence;
        let d_before = discontinuities(&p_before);
        let was_leader = on == leader;
        // The killed node comes back on the same relay address (the others know it from
        // its join; a restart with --join pointing at a node that moved could not update it).
        let c = cluster_of(s_any, &api).await.unwrap();
        let relay_addr = c["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == on)
            .unwrap()["relayAddr"]
            .as_str()
            .unwrap()
            .to_owned();
        let k = node(&nodes, on);
        nodes[k].server.kill9().await;
        let t_kill = Instant::now();
        let sv = &nodes[node(&nodes, viewer)].server;
        let after = loop {
            if let Some(p) = playlist(sv, &camera, &token).await
                && let Some((msn, part)) = newest(&p)
                && msn > before.0
                && !p.trailing_discontinuity
                && discontinuities(&p) > d_before
            {
                // A new part behind a new discontinuity: the new origin's media (the edge
                // also closes its segment in progress when the old origin goes, which adds
                // a part to no new media).
                break (msn, part, p);
            }
            assert!(
                t_kill.elapsed() < Duration::from_secs(20),
                "round {round}: no new part behind a new discontinuity on node {viewer} after killing node {on} (before: part {}.{}, {d_before} discontinuities)",
                before.0,
                before.1
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let took = t_kill.elapsed();
        times.push(took);
        // The same playlist URL went on behind a discontinuity (listed, or counted in the
        // discontinuity sequence when the numbers jumped and the window restarted): the
        // loop above waited for it.
        eprintln!(
            "round {round}: killed ingest node {on}{}; publisher to node {next}; viewer on node {viewer} saw part {}.{} (before {}.{}, discontinuity sequence {} -> {}) after {took:?}",
            if was_leader { " (the leader)" } else { "" },
            after.0,
            after.1,
            before.0,
            before.1,
            ds_before,
            after.2.discontinuity_sequence
        );
        // Bring the killed node back (new ports) and point the balancer at it again.
        let dead = on;
        on = next;
        let n = nodes.remove(k);
        let server = n
            .server
            .relaunch(&[("--relay-addr", relay_addr.as_str())], &[])
            .await;
        nodes.insert(k, Node { server, ..n });
        balancer.set(rtmp_of(&nodes, &order));
        let all: Vec<&Node> = nodes.iter().collect();
        leader = converged(&all, &[1, 2, 3], &api, Duration::from_secs(30)).await;
        let _ = dead;
    }
    times.sort();
    eprintln!(
        "ingest kill -9 -> new part on a surviving node's playlist: min {:?} median {:?} max {:?} ({ROUNDS} rounds; whole test {:?})",
        times[0],
        times[times.len() / 2],
        times[times.len() - 1],
        started.elapsed()
    );
    for t in &times {
        assert!(*t < Duration::from_secs(5), "failover took {t:?}");
    }
}
