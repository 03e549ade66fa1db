//! `kill -9` of the server while it records, at three random moments (the seed is printed):
//! on restart every file is repaired (ffprobe reads it with no message, it decodes
//! cleanly), its row matches it (size, duration, closed), no file lacks a row and no row a
//! file, at most the fragment in flight is lost, and recording resumes once the camera
//! publishes again.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::time::Instant;

use crate::api::Api;
use crate::common::eventually;
use crate::common::services::Postgres;
use crate::support::{
    self, check_file, decode_clean, files_under, now_ms, publish, recording_camera, rfc3339, rows,
    signed,
};

/// Slack on "at most one fragment": rounding of the playlist's durations.
const SLACK_MS: i64 = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_recording_loses_at_most_a_fragment() {
    crash_rounds("rec-crash", Vec::new()).await;
}

/// The same on PostgreSQL: the rows of files cut off are closed and re-indexed there too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_recording_on_postgres() {
    let pg = Postgres::start("rec-crash-pg-data").await;
    crash_rounds("rec-crash-pg", vec!["--database-url".into(), pg.url()]).await;
    assert_eq!(
        pg.query("SELECT count(*) FROM recordings WHERE status <> 'complete'")
            .await,
        "0"
    );
}

async fn crash_rounds(name: &str, extra: Vec<String>) {
    let began = Instant::now();
    let seed = now_ms() as u64 | 1;
    println!("{name}: seed {seed}");
    let mut rng = crate::common::Junk::new(seed);
    let mut args = vec!["--record-chunk".to_owned(), "10s".to_owned()];
    args.extend(extra);
    let mut server = support::start(name, args, Vec::new()).await;
    let mut api = Api::admin(&server).await;
    let (id, url) = recording_camera(&api, "Dock").await;
    // The stream key stays; the port changes with every start.
    let key = url.rsplit('/').next().expect("stream key");
    let hot =
        std::fs::canonicalize(server.dir.join("data").join("recordings")).expect("recordings dir");
    let mut publisher = publish(&server, &url, "dock-0").await;

    for round in 0..3u32 {
        // A file of this run is growing...
        let since = now_ms();
        eventually(
            "a file growing after (re)start",
            Duration::from_secs(30),
            || async {
                rows(&api, &id)
                    .await
                    .iter()
                    .any(|r| r.status == "recording" && r.end_ms > since)
                    .then_some(())
            },
        )
        .await;
        // ...for a random while, across chunk boundaries sometimes.
        let wait = Duration::from_millis(2_000 + u64::from(rng.bytes(2)[0]) * 40);
        tokio::time::sleep(wait).await;
        // What live viewers had just before the kill: every part of it was handed to the
        // recorder when it was published.
        let ll = support::live(server.client(), &support::ll_url(&api, &id).await)
            .await
            .expect("live playlist");
        let edge = support::live_edge(&ll);
        let part_ms = (ll.part_target.expect("PART-TARGET") * 1000.0).round() as i64;
        let killed_at = now_ms();
        server.kill9().await;
        drop(publisher);
        println!("{name} round {round}: killed after {wait:?}");

        server = server.relaunch(&[], &[]).await;
        api = Api::admin(&server).await;
        let all = rows(&api, &id).await;
        assert!(!all.is_empty());
        for r in &all {
            assert_eq!(r.status, "complete", "row left open: {}", r.json);
            check_file(r).await;
        }
        let last = all.last().expect("rows");
        let lost = edge - last.end_ms;
        println!(
            "{name} round {round}: {lost} ms of the live edge lost (parts of {part_ms} ms; killed {} ms after the edge)",
            killed_at - edge
        );
        assert!(
            lost <= part_ms + SLACK_MS,
            "lost {lost} ms: file ends {}, live edge {}",
            rfc3339(last.end_ms),
            rfc3339(edge)
        );
        let on_disk: BTreeSet<_> = files_under(&hot).into_iter().collect();
        let in_rows: BTreeSet<_> = all.iter().map(|r| r.path.clone()).collect();
        assert_eq!(
            on_disk, in_rows,
            "files and rows differ after round {round}"
        );

        publisher = publish(
            &server,
            &server.rtmp_url(key),
            &format!("dock-{}", round + 1),
        )
        .await;
        // Recording resumes in a new file.
        let restarted = now_ms();
        eventually("recording to resume", Duration::from_secs(30), || async {
            rows(&api, &id)
                .await
                .iter()
                .any(|r| r.start_ms >= killed_at && r.end_ms > restarted)
                .then_some(())
        })
        .await;
    }
    // The camera goes away: its file is closed once it has been idle for a while.
    drop(publisher);
    let all = eventually("the last file closed", Duration::from_secs(30), || async {
        let r = rows(&api, &id).await;
        r.iter().all(|r| r.status == "complete").then_some(r)
    })
    .await;
    check_file(all.last().expect("rows")).await;

    // The index of the repaired files drives playback: the whole morning plays cleanly.
    let from = all.first().expect("rows").start_ms;
    let to = now_ms();
    let url = signed(
        &api,
        &format!(
            "/api/v1/recordings/playback/{id}?from={}&to={}",
            rfc3339(from),
            rfc3339(to)
        ),
    )
    .await;
    decode_clean(&url).await;

    // The timeline: one covered stretch per run (files of a run follow each other; each
    // kill and restart leaves a hole), and a bookmark among the markers.
    let at = rfc3339(from + 1_000);
    api.ok(
        Method::POST,
        "/api/v1/recordings/bookmarks",
        Some(json!({ "cameraId": id, "at": at, "label": "forklift" })),
        StatusCode::CREATED,
    )
    .await;
    let t = api
        .ok(
            Method::GET,
            &format!(
                "/api/v1/recordings/timeline/{id}?from={}&to={}",
                rfc3339(from - 60_000),
                rfc3339(to)
            ),
            None,
            StatusCode::OK,
        )
        .await;
    let covered = t["covered"].as_array().expect("covered");
    assert_eq!(covered.len(), 4, "three kills, four stretches: {t}");
    let first = support::ms(covered[0]["start"].as_str().expect("start"));
    assert!((first - from).abs() <= 50, "{t}");
    let recorded: f64 = all.iter().map(|r| r.duration).sum();
    let covered_s = t["coveredSeconds"].as_f64().expect("coveredSeconds");
    assert!(
        (covered_s - recorded).abs() <= 1.0,
        "{covered_s}s covered, {recorded}s in rows"
    );
    let markers = t["markers"].as_array().expect("markers");
    assert!(
        markers.iter().any(|m| m["type"] == "bookmark"
                && m["label"] == "forklift"
                // The API trims trailing zeros of the fraction (".75Z"): compare instants.
                && m["at"].as_str().is_some_and(|a| support::ms(a) == from + 1_000)),
        "{t}"
    );
    println!("{name} took {:?}", began.elapsed());
}
