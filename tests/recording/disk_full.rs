//! Disk full at the process level: the hot tier is a 3 MiB tmpfs and nothing keeps space
//! back (`--record-min-free 0`), so a write fails with ENOSPC. Live HLS keeps serving, a
//! `STORAGE_FULL` alert is recorded (it shows on the camera's timeline), and the files
//! written before are intact.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use reqwest::StatusCode;

use crate::api::Api;
use crate::common::{eventually, testdata};
use crate::support::{self, check_file, files_under, publish, recording_camera, rows};

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Tmpfs {
        // A previous run that died before its drop may have left it mounted.
        let _ = Command::new("umount").arg(path).output();
        let _ = std::fs::remove_dir_all(path);
        std::fs::create_dir_all(path).expect("create the mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mount tmpfs (the tests run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(path.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_hot_tier_keeps_live_and_earlier_files() {
    let hot = testdata().join("runs").join("rec-disk-full-hot");
    let tmpfs = Tmpfs::mount(&hot, "3m");
    let server = support::start(
        "rec-disk-full",
        vec![
            "--record-chunk".into(),
            "10s".into(),
            "--record-min-free".into(),
            "0".into(),
            "--recordings-dir".into(),
            hot.display().to_string(),
        ],
        Vec::new(),
    )
    .await;
    let api = Api::admin(&server).await;
    let (id, url) = recording_camera(&api, "Roof").await;
    let publisher = publish(&server, &url, "roof").await;

    let timeline = format!("/api/v1/recordings/timeline/{id}");
    let alert = eventually("a STORAGE_FULL alert", Duration::from_secs(90), || async {
        let t = api.ok(Method::GET, &timeline, None, StatusCode::OK).await;
        t["markers"]
            .as_array()
            .and_then(|m| {
                m.iter()
                    .find(|m| m["type"] == "alert" && m["label"] == "STORAGE_FULL")
            })
            .cloned()
    })
    .await;
    println!("alert: {alert}");
    assert_eq!(alert["severity"], "critical");
    // Both in the alerts list: the camera's (fragments dropped) and the node's (its
    // recordings file system over 90 % used, from the health loop).
    let open = eventually(
        "the camera's and the node's STORAGE_FULL in /api/v1/alerts",
        Duration::from_secs(30),
        || async {
            let a = api
                .ok(
                    Method::GET,
                    "/api/v1/alerts?type=STORAGE_FULL&state=open",
                    None,
                    StatusCode::OK,
                )
                .await;
            let a = a.as_array()?.clone();
            let camera = a.iter().any(|x| x["cameraId"] == id.as_str());
            let node = a
                .iter()
                .any(|x| x["message"].as_str().is_some_and(|m| m.contains("% used")));
            (camera && node).then_some(a)
        },
    )
    .await;
    assert_eq!(open.len(), 2, "{open:?}");

    // Live keeps going: the LL-HLS playlist advances and its newest segment is served.
    let ll = support::ll_url(&api, &id).await;
    let client = server.client().clone();
    let now = support::live(&client, &ll).await.expect("live playlist");
    let msn = now.last_msn().expect("segments");
    let later = eventually(
        "live to advance after the disk filled",
        Duration::from_secs(15),
        || async {
            let p = support::live(&client, &ll).await?;
            p.last_msn().is_some_and(|m| m >= msn + 2).then_some(p)
        },
    )
    .await;
    let seg = later.segments.last().expect("segment");
    let seg_url = reqwest::Url::parse(&ll)
        .and_then(|u| u.join(&seg.uri))
        .expect("segment url");
    let r = client
        .get(seg_url.clone())
        .send()
        .await
        .expect("GET segment");
    assert_eq!(r.status(), StatusCode::OK, "{seg_url}");
    assert!(!r.bytes().await.expect("segment").is_empty());
    assert!(
        publisher_alive(publisher).await,
        "the publisher was cut off"
    );
    server.assert_healthy().await;

    // Earlier files are intact.
    let all = rows(&api, &id).await;
    let complete: Vec<_> = all.iter().filter(|r| r.status == "complete").collect();
    assert!(
        !complete.is_empty(),
        "no file completed before the disk filled: {all:?}"
    );
    for r in &complete {
        check_file(r).await;
    }
    // Every file on the full disk is one of the rows.
    let hot_real = std::fs::canonicalize(&hot).expect("hot");
    for f in files_under(&hot_real) {
        assert!(
            all.iter().any(|r| r.path == f),
            "{} has no row",
            f.display()
        );
    }
    drop(server);
    drop(tmpfs);
}

async fn publisher_alive(mut p: crate::common::ffmpeg::Ffmpeg) -> bool {
    p.exited().is_none()
}
