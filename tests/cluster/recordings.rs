//! Recordings in a cluster: a camera ingested and recorded on node 1 is listed, downloaded
//! (whole and by Range) and played as a VOD playlist through node 3, which forwards the
//! byte requests to node 1 (the file is on node 1's disk); a delete through node 3 removes
//! the row at once and node 1 removes the file on its next retention pass. Recording is
//! turned off through node 3 and node 1, which records, closes the file.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::failover::{ADMIN_PASSWORD, call, free_port, start_node};
use crate::common::services::Postgres;
use crate::common::{Server, eventually};

async fn node(id: u64, db: &str, join: Option<String>) -> Server {
    let name = format!("cluster-rec-node{id}");
    start_node(&name, id, free_port(), db, join, &[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_made_on_one_node_is_listed_downloaded_played_and_deleted_through_another() {
    let pg = Postgres::start("cluster-rec-pg").await;
    let db = pg.url();
    let n1 = node(1, &db, None).await;
    let join = format!("http://{}", n1.http);
    let n2 = node(2, &db, Some(join.clone())).await;
    let n3 = node(3, &db, Some(join)).await;
    let r: Value = n1
        .client()
        .post(n1.url("/api/v1/auth/login"))
        .json(&json!({ "username": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The session lives in node 1's cache (no Redis here); an API token is in the store and
    // works on every node.
    let session = r["data"]["accessToken"].as_str().expect("login").to_owned();
    let (status, t) = call(
        &n1,
        &session,
        reqwest::Method::POST,
        "/api/v1/tokens",
        Some(json!({
            "name": "cluster recordings",
            "permissions": ["cameras:read", "cameras:write", "recordings:read", "recordings:delete"]
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{t}");
    let token = t["data"]["tokenSecret"].as_str().expect("token").to_owned();
    let get = reqwest::Method::GET;
    // Publish once every node holds its lease: a node without one refuses publishers
    // (fencing), as it may just after the others joined.
    eventually(
        "three members holding leases",
        Duration::from_secs(30),
        || async {
            let (s, v) = call(&n1, &session, get.clone(), "/api/v1/cluster", None).await;
            let members = v["data"]["members"].as_array()?;
            (s == StatusCode::OK
                && members.len() == 3
                && members.iter().all(|m| m["leaseHeld"] == true)
                && v["data"]["leaseHeld"] == true)
                .then_some(())
        },
    )
    .await;

    // A recording camera published to node 1 (the placement follows the publisher).
    let (status, cam) = call(
        &n1,
        &token,
        reqwest::Method::POST,
        "/api/v1/cameras",
        Some(json!({ "name": "Dock", "serialNumber": "CLUSTER-REC-1", "isRecording": true })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{cam}");
    let id = cam["data"]["id"].as_str().unwrap().to_owned();
    let key = cam["data"]["streamKey"].as_str().unwrap().to_owned();
    let clip = crate::common::ffmpeg::clips().await.av_short.clone();
    // An encoder retries a refusal: a node whose own lease view lapsed for a moment (a slow
    // heartbeat on a loaded machine) takes no publishers until it holds the lease again.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut publisher = crate::common::ffmpeg::Ffmpeg::publish(
            &clip,
            &format!("rtmp://127.0.0.1:{}/live/{key}", n1.rtmp.port()),
            n1.dir.join(format!("ffmpeg-rec-{attempts}.log")),
        );
        let ok = publisher.wait(Duration::from_secs(60)).await.success();
        if ok {
            break;
        }
        let err = publisher.stderr();
        assert!(
            attempts < 5 && err.contains("takes no publishers now"),
            "attempt {attempts}: {err}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Recording turned off through node 3: node 1, which records, closes the file (the
    // control is sent to every node).
    let (status, v) = call(
        &n3,
        &token,
        reqwest::Method::POST,
        &format!("/api/v1/cameras/{id}/recording/stop"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    // Listed through node 3 (one shared store), complete.
    let row = eventually(
        "a complete recording listed on node 3",
        Duration::from_secs(10),
        || async {
            let (s, v) = call(
                &n3,
                &token,
                get.clone(),
                &format!("/api/v1/recordings?cameraId={id}"),
                None,
            )
            .await;
            (s == StatusCode::OK)
                .then(|| v["data"].as_array().cloned())
                .flatten()?
                .into_iter()
                .find(|r| r["status"] == "complete")
        },
    )
    .await;
    let rec = row["id"].as_str().unwrap().to_owned();
    let path = row["filePath"].as_str().unwrap().to_owned();
    assert!(
        Path::new(&path).starts_with(&n1.dir),
        "{path} is not on node 1's disk ({})",
        n1.dir.display()
    );
    let on_disk = std::fs::read(&path).expect("the file on node 1");

    // Downloaded through node 3: the same bytes, whole and by Range.
    let (s, v) = call(
        &n3,
        &token,
        get.clone(),
        &format!("/api/v1/recordings/{rec}/signed-url"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let url = v["data"]["url"].as_str().expect("url").to_owned();
    assert!(
        url.starts_with(&format!("http://localhost:{}/", n3.http.port())),
        "{url}"
    );
    let started = Instant::now();
    let r = n3.client().get(&url).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap().as_ref(), on_disk.as_slice());
    eprintln!(
        "{} bytes downloaded through node 3 from node 1 in {:?}",
        on_disk.len(),
        started.elapsed()
    );
    let r = n3
        .client()
        .get(&url)
        .header("range", "bytes=100-1099")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.headers()["content-range"].to_str().unwrap(),
        format!("bytes 100-1099/{}", on_disk.len())
    );
    assert_eq!(r.bytes().await.unwrap().as_ref(), &on_disk[100..1100]);
    // A tampered URL is refused by node 3 itself, not forwarded.
    let tampered = url.replace("token=", "token=1");
    let r = n3.client().get(&tampered).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // The VOD playlist issued by node 3 plays from node 3 (ffprobe reads the media ranges,
    // each forwarded to node 1).
    let (s, v) = call(
        &n3,
        &token,
        get.clone(),
        &format!(
            "/api/v1/recordings/playback/{id}?from={}&to={}",
            row["startTime"].as_str().unwrap(),
            row["endTime"].as_str().unwrap()
        ),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let vod = v["data"]["url"].as_str().expect("playlist url").to_owned();
    let probe = crate::common::ffmpeg::probe(&vod).await;
    assert!(probe.stream("video").is_some(), "no video through node 3");
    assert!(probe.stream("audio").is_some(), "no audio through node 3");
    let recorded = row["duration"].as_f64().unwrap();
    let played = probe.duration.expect("duration");
    assert!(
        (played - recorded).abs() < 1.0,
        "VOD through node 3 lasts {played} s, the recording {recorded} s"
    );

    // Deleted through node 2: the row goes now; node 1 removes its file on its next pass.
    let (s, v) = call(
        &n2,
        &token,
        reqwest::Method::DELETE,
        &format!("/api/v1/recordings/{rec}"),
        None,
    )
    .await;
    assert!(s.is_success(), "{s} {v}");
    let (s, _) = call(
        &n3,
        &token,
        get.clone(),
        &format!("/api/v1/recordings/{rec}"),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        Path::new(&path).exists(),
        "node 2 cannot have removed node 1's file"
    );
    let (s, v) = call(
        &n1,
        &session,
        reqwest::Method::POST,
        "/api/v1/retention/run",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        !Path::new(&path).exists(),
        "node 1's pass left the deleted file: {v}"
    );
}
