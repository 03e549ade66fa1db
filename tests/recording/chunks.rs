//! Two minutes and more of one camera in 30 s chunks: the files follow each other without
//! a hole, each reads in ffprobe with no message and lasts what its row says within a
//! frame; a VOD playlist over a range that spans two files plays start to end as one
//! timeline (one init segment, no discontinuity, every frame decoded); signed
//! downloads honour Range and refuse tampered and expired signatures; every access is in
//! the audit log.

use std::time::Duration;

use reqwest::{Method, StatusCode, header};
use serde_json::Value;
use tokio::process::Command;
use tokio::time::Instant;

use crate::api::Api;
use crate::support::{
    self, FRAME, check_file, decode_clean, publish, rfc3339, rows, signed, wait_complete,
};

/// At least this much is recorded.
const RECORD_S: f64 = 120.0;

async fn error_code(client: &reqwest::Client, url: &str) -> (StatusCode, String) {
    let r = client.get(url).send().await.expect("GET signed url");
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        v["error"]["code"].as_str().unwrap_or_default().to_owned(),
    )
}

/// Video (frames decoded, packets read) of `input` by ffprobe; any message fails.
async fn frames_and_packets(input: &str) -> (u64, u64) {
    let out = Command::new("ffprobe")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-count_frames",
            "-count_packets",
        ])
        .args(["-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames,nb_read_packets"])
        .args(["-of", "csv=p=0", input])
        .output()
        .await
        .expect("run ffprobe (is it installed?)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "ffprobe -count_frames {input}: {stderr}"
    );
    // The HLS demuxer lists the stream under its program too: the same line twice.
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| !l.trim().is_empty())
        .and_then(|l| l.trim().split_once(','))
        .and_then(|(f, p)| Some((f.parse().ok()?, p.trim_end_matches(',').parse().ok()?)))
        .unwrap_or_else(|| panic!("frames,packets in {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_minutes_in_chunks_play_back_and_download() {
    let began = Instant::now();
    let server = support::start(
        "rec-record",
        vec!["--record-chunk".into(), "30s".into()],
        Vec::new(),
    )
    .await;
    let api = Api::admin(&server).await;
    let cam = api
        .ok(
            Method::POST,
            "/api/v1/cameras",
            Some(serde_json::json!({ "name": "Yard", "serialNumber": "REC-YARD", "location": "e2e" })),
            StatusCode::CREATED,
        )
        .await;
    assert_eq!(cam["isRecording"], false);
    let id = cam["id"].as_str().expect("id").to_owned();
    let started = api
        .ok(
            Method::POST,
            &format!("/api/v1/cameras/{id}/recording/start"),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(started["isRecording"], true, "{started}");
    assert_eq!(api.camera(&id).await["isRecording"], true);
    let publisher = publish(&server, cam["rtmpUrl"].as_str().expect("rtmpUrl"), "yard").await;

    // The first chunk: a short-lived download URL for the expiry check later on.
    let first = wait_complete(&api, &id, 1, Duration::from_secs(60)).await;
    let short_lived = signed(
        &api,
        &format!("/api/v1/recordings/{}/signed-url?expiresIn=10", first[0].id),
    )
    .await;
    let client = server.client().clone();
    assert_eq!(
        client.get(&short_lived).send().await.expect("GET").status(),
        StatusCode::OK
    );

    let recorded = wait_complete(&api, &id, 4, Duration::from_secs(200)).await;
    let stopped = api
        .ok(
            Method::POST,
            &format!("/api/v1/cameras/{id}/recording/stop"),
            None,
            StatusCode::OK,
        )
        .await;
    assert_eq!(stopped["isRecording"], false);
    let all = crate::common::eventually(
        "every recording closed after stop",
        Duration::from_secs(10),
        || async {
            let r = rows(&api, &id).await;
            r.iter().all(|r| r.status == "complete").then_some(r)
        },
    )
    .await;
    assert!(all.len() >= recorded.len());
    // Still publishing, not recording: no new file.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rows(&api, &id).await.len(), all.len(), "a file after stop");
    drop(publisher);
    println!("recorded {} files in {:?}", all.len(), began.elapsed());

    // Files: contiguous, matching their rows, clean in ffprobe and ffmpeg.
    let total: f64 = all.iter().map(|r| r.duration).sum();
    assert!(total >= RECORD_S, "only {total}s recorded");
    for (i, r) in all.iter().enumerate() {
        check_file(r).await;
        assert!(r.path.exists());
        if i + 1 < all.len() {
            assert!(
                (r.duration - 30.0).abs() < 1.5,
                "chunk {i} lasts {}s",
                r.duration
            );
            let next = &all[i + 1];
            let hole = (next.start_ms - r.end_ms).abs();
            assert!(
                hole as f64 <= FRAME * 1000.0 + 1.0,
                "{}ms between file {i} and the next",
                hole
            );
        }
    }

    // VOD over a range spanning files 1 and 2.
    let from = all[1].start_ms + 10_000;
    let to = all[2].start_ms + 10_000;
    let url = signed(
        &api,
        &format!(
            "/api/v1/recordings/playback/{id}?from={}&to={}",
            rfc3339(from),
            rfc3339(to)
        ),
    )
    .await;
    let r = client.get(&url).send().await.expect("GET playlist");
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.expect("playlist");
    assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD") && text.contains("#EXT-X-ENDLIST"));
    let maps = text.matches("#EXT-X-MAP:").count();
    assert_eq!(
        maps, 1,
        "two files of one session, one init segment:\n{text}"
    );
    assert!(!text.contains("#EXT-X-DISCONTINUITY"), "{text}");
    assert!(text.contains("#EXT-X-BYTERANGE:"));
    assert!(text.contains(&format!("{}.mp4?bytes=", all[1].id)));
    assert!(text.contains(&format!("{}.mp4?bytes=", all[2].id)));
    let listed: f64 = text
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|l| l.trim_end_matches(',').parse::<f64>().expect("EXTINF"))
        .sum();
    let span = (to - from) as f64 / 1000.0;
    // It starts at the keyframe at or before `from` (one per second in the clip).
    assert!(
        listed >= span - 0.5 && listed <= span + 2.5,
        "{listed}s listed for {span}s"
    );
    decode_clean(&url).await;
    // Every fragment listed reaches the player...
    let (frames, packets) = frames_and_packets(&url).await;
    println!("VOD over a file boundary: {listed}s listed, {packets} packets, {frames} frames");
    assert!(
        (packets as f64 - listed * 30.0).abs() <= 2.0,
        "{packets} video packets for {listed}s"
    );
    // ...and decodes: the timeline runs on across the file boundary, nothing is discarded.
    assert_eq!(
        frames, packets,
        "{frames} frames decoded of {packets} packets"
    );
    // Tampered playlist signature.
    let tampered = url.replace("token=", "token=1");
    assert_eq!(
        error_code(&client, &tampered).await,
        (StatusCode::FORBIDDEN, "URL_SIGNATURE_INVALID".into())
    );

    // Signed download with Range.
    let target = &all[1];
    let bytes = std::fs::read(&target.path).expect("read recording");
    let dl = signed(
        &api,
        &format!("/api/v1/recordings/{}/signed-url", target.id),
    )
    .await;
    let r = client.get(&dl).send().await.expect("GET download");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.expect("body").as_ref(), &bytes[..]);
    let r = client
        .get(&dl)
        .header(header::RANGE, "bytes=1000-1999")
        .send()
        .await
        .expect("GET range");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.headers()[header::CONTENT_RANGE],
        format!("bytes 1000-1999/{}", bytes.len()).as_str()
    );
    assert_eq!(r.bytes().await.expect("body").as_ref(), &bytes[1000..2000]);
    let r = client
        .get(&dl)
        .header(header::RANGE, "bytes=-500")
        .send()
        .await
        .expect("GET suffix");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(
        r.bytes().await.expect("body").as_ref(),
        &bytes[bytes.len() - 500..]
    );
    let r = client
        .get(&dl)
        .header(header::RANGE, format!("bytes={}-", bytes.len()))
        .send()
        .await
        .expect("GET past the end");
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // Tampered, missing, or for another file: refused.
    let (base, token) = dl.split_once("token=").expect("token");
    let mut forged = token.to_owned();
    let last = forged.pop().expect("token char");
    forged.push(if last == 'A' { 'B' } else { 'A' });
    for bad in [
        format!("{base}token={forged}"),
        base.trim_end_matches('&').to_owned(),
        dl.replace(&target.id, &all[0].id),
    ] {
        assert_eq!(
            error_code(&client, &bad).await,
            (StatusCode::FORBIDDEN, "URL_SIGNATURE_INVALID".into()),
            "{bad}"
        );
    }
    // Issued with a 10 s lifetime two minutes ago.
    assert_eq!(
        error_code(&client, &short_lived).await,
        (StatusCode::FORBIDDEN, "URL_EXPIRED".into())
    );

    // Delete one: the file goes too.
    let gone = &all[0];
    api.ok(
        Method::DELETE,
        &format!("/api/v1/recordings/{}", gone.id),
        None,
        StatusCode::OK,
    )
    .await;
    assert!(!gone.path.exists(), "{} still there", gone.path.display());
    let r = api
        .call(
            Method::GET,
            &format!("/api/v1/recordings/{}", gone.id),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // The audit log has every access, with who and from where.
    let audit = api
        .ok(Method::GET, "/api/v1/audit?limit=100", None, StatusCode::OK)
        .await;
    let entries = audit.as_array().expect("audit rows");
    let has = |action: &str, key: &str, value: &str| {
        entries.iter().any(|e| {
            e["action"] == action
                && e[key] == value
                && e["ip"] == "127.0.0.1"
                && e["userId"].as_str().is_some()
        })
    };
    assert!(
        has("recording.url_issued", "recordingId", &target.id),
        "{audit}"
    );
    assert!(
        has("recording.url_issued", "recordingId", &first[0].id),
        "{audit}"
    );
    assert!(has("recording.playlist", "cameraId", &id), "{audit}");
    assert!(has("recording.deleted", "recordingId", &gone.id), "{audit}");
    println!("record test took {:?}", began.elapsed());
}
