//! The store conformance suite: one body of checks run unchanged against SQLite and a real
//! PostgreSQL started by the test (a missing server fails, never skips).

mod support;

use std::sync::Arc;

use camstream_controlplane::rbac::{Permission, Permissions, Role};
use camstream_controlplane::store::layouts::{LayoutTile, NewLayout, TilePlayback, Tiles};
use camstream_controlplane::store::recordings::{
    AuditFilter, JobKind, JobState, NewAudit, NewBookmark, NewRecording, Recording,
    RecordingFilter, RecordingGrowth, RecordingJob, RecordingStatus, RetentionPolicy, Tier,
};
use camstream_controlplane::store::{
    self, ApiToken, CameraFilter, CameraUpdate, NewAlert, NewCamera, NewUser, RefreshToken, Store,
    StreamStatus, UserUpdate,
};

fn new_camera(serial: &str, company: Option<&str>, prefix: &str) -> NewCamera {
    NewCamera {
        name: format!("Camera {serial}"),
        company: company.map(str::to_owned),
        model: Some("X100".into()),
        serial_number: serial.into(),
        location: Some("Dock 5".into()),
        place: Some("North gate".into()),
        rtmp_url: "rtmp://localhost:1935/live".into(),
        rtmp_key_prefix: prefix.into(),
        rtmp_key_hash: format!("hash-{prefix}"),
        is_active: true,
        is_recording: false,
        abr_profile: "default".into(),
        owner_id: None,
    }
}

/// Returns once the wall clock's millisecond differs from the one it was called in.
async fn next_ms() {
    let ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis()
    };
    let start = ms();
    while ms() == start {
        tokio::time::sleep(std::time::Duration::from_micros(200)).await;
    }
}

async fn conformance(s: Arc<dyn Store>) {
    s.ping().await.unwrap();

    // Users.
    assert_eq!(s.count_users().await.unwrap(), 0);
    let u = s
        .create_user(NewUser {
            username: "alice".into(),
            email: Some("a@example.com".into()),
            password_hash: "$argon2id$x".into(),
            role: Role::Operator,
            company: Some("acme".into()),
        })
        .await
        .unwrap();
    assert_eq!(u.role, Role::Operator);
    assert!(u.is_active);
    assert_eq!(s.get_user(&u.id).await.unwrap().as_ref(), Some(&u));
    assert_eq!(
        s.get_user_by_username("alice").await.unwrap().map(|x| x.id),
        Some(u.id.clone())
    );
    assert_eq!(s.get_user_by_username("ALICE").await.unwrap(), None);
    let dup = s
        .create_user(NewUser {
            username: "alice".into(),
            email: None,
            password_hash: "h".into(),
            role: Role::Viewer,
            company: None,
        })
        .await
        .unwrap_err();
    assert_eq!(dup.conflict_field(), Some("username"));
    let updated = s
        .update_user(
            &u.id,
            UserUpdate {
                email: Some(None),
                role: Some(Role::Viewer),
                is_active: Some(false),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.email, None);
    assert_eq!(updated.role, Role::Viewer);
    assert!(!updated.is_active);
    assert_eq!(updated.company.as_deref(), Some("acme"));
    assert!(
        s.update_user("nope", UserUpdate::default())
            .await
            .unwrap()
            .is_none()
    );
    s.touch_login(&u.id, 1234).await.unwrap();
    assert_eq!(
        s.get_user(&u.id).await.unwrap().unwrap().last_login_at,
        Some(1234)
    );
    let bob = s
        .create_user(NewUser {
            username: "bob".into(),
            email: None,
            password_hash: "h".into(),
            role: Role::Admin,
            company: None,
        })
        .await
        .unwrap();
    let (page, total) = s.list_users(0, 1).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(page.len(), 1);
    let (page2, _) = s.list_users(1, 10).await.unwrap();
    assert_eq!(page2.len(), 1);
    assert_ne!(page[0].id, page2[0].id);

    // Cameras.
    let c1 = s
        .create_camera(NewCamera {
            owner_id: Some(u.id.clone()),
            ..new_camera("SN-1", Some("acme"), "prefix000001")
        })
        .await
        .unwrap();
    assert_eq!(c1.stream_status, StreamStatus::Offline);
    assert_eq!(c1.owner_id.as_deref(), Some(u.id.as_str()));
    // Lists are in creation order, ties (same millisecond) by id: a random UUID. The
    // checks below expect c1 < c2 < c3, so each is created in a later millisecond.
    next_ms().await;
    let c2 = s
        .create_camera(new_camera("SN-2", Some("globex"), "prefix000002"))
        .await
        .unwrap();
    next_ms().await;
    let c3 = s
        .create_camera(NewCamera {
            name: "Lobby 100%_done".into(),
            location: None,
            place: None,
            is_active: false,
            ..new_camera("sn-3", None, "prefix000003")
        })
        .await
        .unwrap();
    let e = s
        .create_camera(new_camera("SN-1", None, "prefix000004"))
        .await
        .unwrap_err();
    assert_eq!(e.conflict_field(), Some("serial_number"));
    let e = s
        .create_camera(new_camera("SN-9", None, "prefix000001"))
        .await
        .unwrap_err();
    assert_eq!(e.conflict_field(), Some("prefix"));
    assert_eq!(s.get_camera(&c1.id).await.unwrap().as_ref(), Some(&c1));
    assert_eq!(
        s.get_camera_by_key_prefix("prefix000002")
            .await
            .unwrap()
            .map(|c| c.id),
        Some(c2.id.clone())
    );

    let list = |f: CameraFilter| {
        let s = s.clone();
        async move {
            let (rows, total) = s.list_cameras(&f).await.unwrap();
            (
                rows.into_iter()
                    .map(|c| c.serial_number)
                    .collect::<Vec<_>>(),
                total,
            )
        }
    };
    let all = CameraFilter {
        limit: 10,
        ..CameraFilter::default()
    };
    assert_eq!(
        list(all.clone()).await,
        (vec!["SN-1".into(), "SN-2".into(), "sn-3".into()], 3)
    );
    assert_eq!(
        list(CameraFilter {
            limit: 1,
            offset: 1,
            ..all.clone()
        })
        .await,
        (vec!["SN-2".into()], 3)
    );
    assert_eq!(
        list(CameraFilter {
            tenant: Some("acme".into()),
            ..all.clone()
        })
        .await,
        (vec!["SN-1".into()], 1)
    );
    assert_eq!(
        list(CameraFilter {
            is_active: Some(false),
            ..all.clone()
        })
        .await,
        (vec!["sn-3".into()], 1)
    );
    assert_eq!(
        list(CameraFilter {
            company: Some("globex".into()),
            ..all.clone()
        })
        .await,
        (vec!["SN-2".into()], 1)
    );
    assert_eq!(
        list(CameraFilter {
            location: Some("Dock 5".into()),
            ..all.clone()
        })
        .await
        .1,
        2
    );
    // Search: case-insensitive, across fields, wildcards literal.
    assert_eq!(
        list(CameraFilter {
            search: Some("sn-".into()),
            ..all.clone()
        })
        .await
        .1,
        3
    );
    assert_eq!(
        list(CameraFilter {
            search: Some("NORTH".into()),
            ..all.clone()
        })
        .await
        .1,
        2
    );
    assert_eq!(
        list(CameraFilter {
            search: Some("100%_".into()),
            ..all.clone()
        })
        .await,
        (vec!["sn-3".into()], 1)
    );
    assert_eq!(
        list(CameraFilter {
            search: Some("%".into()),
            ..all.clone()
        })
        .await,
        (vec!["sn-3".into()], 1)
    );
    // Injection attempts are plain text.
    assert_eq!(
        list(CameraFilter {
            search: Some("' OR '1'='1".into()),
            ..all.clone()
        })
        .await
        .1,
        0
    );
    assert_eq!(
        list(CameraFilter {
            company: Some("x' OR 1=1 --".into()),
            ..all.clone()
        })
        .await
        .1,
        0
    );

    let upd = s
        .update_camera(
            &c2.id,
            CameraUpdate {
                name: Some("Renamed'); DROP TABLE cameras; --".into()),
                company: Some(None),
                is_recording: Some(true),
                ..CameraUpdate::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(upd.name, "Renamed'); DROP TABLE cameras; --");
    assert_eq!(upd.company, None);
    assert!(upd.is_recording);
    assert!(upd.updated_at >= c2.updated_at);
    assert_eq!(upd.abr_profile, "default", "kept when not updated");
    let upd = s
        .update_camera(
            &c2.id,
            CameraUpdate {
                abr_profile: Some("off".into()),
                ..CameraUpdate::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(upd.abr_profile, "off");
    let e = s
        .update_camera(
            &c2.id,
            CameraUpdate {
                serial_number: Some("SN-1".into()),
                ..CameraUpdate::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.conflict_field(), Some("serial_number"));
    let rekeyed = s
        .set_camera_key(&c1.id, "newprefix001", "newhash")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rekeyed.rtmp_key_hash, "newhash");
    assert!(
        s.get_camera_by_key_prefix("prefix000001")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.set_stream_status(&c1.id, StreamStatus::Online, Some("node-a"))
            .await
            .unwrap()
    );
    assert!(
        !s.set_stream_status("missing", StreamStatus::Online, None)
            .await
            .unwrap()
    );
    let c1b = s.get_camera(&c1.id).await.unwrap().unwrap();
    assert_eq!(c1b.stream_status, StreamStatus::Online);
    assert_eq!(c1b.assigned_node.as_deref(), Some("node-a"));
    assert_eq!(
        list(CameraFilter {
            status: Some(StreamStatus::Online),
            ..all.clone()
        })
        .await,
        (vec!["SN-1".into()], 1)
    );
    let counts = s.camera_counts(None).await.unwrap();
    assert_eq!(
        (
            counts.total,
            counts.active,
            counts.online,
            counts.recording,
            counts.abr
        ),
        (3, 2, 1, 1, 2)
    );
    let counts = s.camera_counts(Some("acme")).await.unwrap();
    assert_eq!((counts.total, counts.online), (1, 1));
    let counts = s.camera_counts(Some("nobody")).await.unwrap();
    assert_eq!(counts.total, 0);
    assert!(
        s.set_stream_status(&c2.id, StreamStatus::Online, Some("node-b"))
            .await
            .unwrap()
    );
    assert_eq!(s.reset_node_streams("node-b").await.unwrap(), 1);
    assert_eq!(
        s.get_camera(&c2.id).await.unwrap().unwrap().stream_status,
        StreamStatus::Offline
    );
    assert_eq!(
        s.get_camera(&c1.id).await.unwrap().unwrap().stream_status,
        StreamStatus::Online
    );
    assert_eq!(s.reset_node_streams("node-b").await.unwrap(), 0);

    // API tokens.
    let t = ApiToken {
        id: "6f4b1c52-0000-4000-8000-000000000001".into(),
        user_id: bob.id.clone(),
        name: "ci".into(),
        remark: Some("pipeline".into()),
        prefix: "tokprefix001".into(),
        secret_hash: "h1".into(),
        permissions: Permissions(vec![Permission::CamerasRead, Permission::StreamsPlay]),
        rate_limit: 100,
        expires_at: Some(9_999_999_999_999),
        last_used_at: None,
        revoked_at: None,
        created_at: 1,
    };
    s.create_api_token(&t).await.unwrap();
    assert_eq!(s.get_api_token(&t.id).await.unwrap().as_ref(), Some(&t));
    assert_eq!(
        s.get_api_token_by_prefix("tokprefix001")
            .await
            .unwrap()
            .as_ref(),
        Some(&t)
    );
    let t2 = ApiToken {
        id: "6f4b1c52-0000-4000-8000-000000000002".into(),
        user_id: u.id.clone(),
        prefix: "tokprefix002".into(),
        created_at: 2,
        ..t.clone()
    };
    s.create_api_token(&t2).await.unwrap();
    assert_eq!(s.list_api_tokens(Some(&bob.id)).await.unwrap().len(), 1);
    let all_tokens = s.list_api_tokens(None).await.unwrap();
    assert_eq!(all_tokens.len(), 2);
    assert_eq!(all_tokens[0].id, t2.id, "newest first");
    let p = Permissions(vec![Permission::CamerasWrite]);
    let changed = s
        .set_api_token_permissions(&t.id, &p)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.permissions, p);
    s.touch_api_token(&t.id, 77).await.unwrap();
    assert!(s.revoke_api_token(&t.id, 88).await.unwrap());
    assert!(
        !s.revoke_api_token(&t.id, 99).await.unwrap(),
        "already revoked"
    );
    let t_after = s.get_api_token(&t.id).await.unwrap().unwrap();
    assert_eq!(
        (t_after.last_used_at, t_after.revoked_at),
        (Some(77), Some(88))
    );

    // Refresh tokens and sessions.
    let r1 = RefreshToken {
        id: "r1".into(),
        user_id: bob.id.clone(),
        session_id: "s1".into(),
        prefix: "refprefix001".into(),
        secret_hash: "rh".into(),
        expires_at: 5000,
        revoked_at: None,
        created_at: 1,
    };
    s.create_refresh_token(&r1).await.unwrap();
    let r2 = RefreshToken {
        id: "r2".into(),
        prefix: "refprefix002".into(),
        ..r1.clone()
    };
    s.create_refresh_token(&r2).await.unwrap();
    let r3 = RefreshToken {
        id: "r3".into(),
        session_id: "s2".into(),
        prefix: "refprefix003".into(),
        ..r1.clone()
    };
    s.create_refresh_token(&r3).await.unwrap();
    assert_eq!(
        s.get_refresh_token_by_prefix("refprefix001")
            .await
            .unwrap()
            .as_ref(),
        Some(&r1)
    );
    assert!(s.revoke_refresh_token("r1", 10).await.unwrap());
    assert!(
        !s.revoke_refresh_token("r1", 11).await.unwrap(),
        "one winner"
    );
    assert_eq!(s.revoke_session("s1", 12).await.unwrap(), 1);
    let mut sessions = s.revoke_user_sessions(&bob.id, 13).await.unwrap();
    sessions.sort();
    assert_eq!(sessions, vec!["s2".to_owned()]);
    assert!(
        s.revoke_user_sessions(&bob.id, 14)
            .await
            .unwrap()
            .is_empty()
    );

    // Alerts.
    let a = s
        .create_alert(NewAlert {
            kind: "API_RATE_LIMIT".into(),
            severity: "warning".into(),
            camera_id: None,
            user_id: Some(bob.id.clone()),
            token_id: Some(t.id.clone()),
            message: "limit".into(),
            ..NewAlert::default()
        })
        .await
        .unwrap();
    s.create_alert(NewAlert {
        kind: "OTHER".into(),
        severity: "info".into(),
        camera_id: Some(c1.id.clone()),
        user_id: None,
        token_id: None,
        message: "x".into(),
        ..NewAlert::default()
    })
    .await
    .unwrap();
    assert_eq!(
        s.list_alerts(Some("API_RATE_LIMIT"), 10).await.unwrap(),
        vec![a]
    );
    assert_eq!(s.list_alerts(None, 10).await.unwrap().len(), 2);
    alerts_conformance(&*s, &c1.id, &bob.id).await;

    // Deletes cascade: a user's tokens go with them.
    assert!(s.delete_user(&bob.id).await.unwrap());
    assert!(!s.delete_user(&bob.id).await.unwrap());
    assert!(s.get_api_token(&t.id).await.unwrap().is_none());
    assert!(s.delete_camera(&c3.id).await.unwrap());
    assert!(!s.delete_camera(&c3.id).await.unwrap());
    // The owner going away keeps the camera.
    assert!(s.delete_user(&u.id).await.unwrap());
    assert_eq!(s.get_camera(&c1.id).await.unwrap().unwrap().owner_id, None);
}

fn new_recording(camera: &str, path: &str, start: i64) -> NewRecording {
    NewRecording {
        camera_id: camera.into(),
        filename: path.rsplit('/').next().unwrap().into(),
        file_path: path.into(),
        init_size: 1200,
        start_time: start,
        end_time: start,
        duration_ms: 0,
        file_size: 1200,
        status: RecordingStatus::Recording,
        node_id: Some("n1".into()),
    }
}

/// The recordings part: rows growing with index chunks, authoritative re-indexing, time
/// windows, retention candidates, the journal, policies, bookmarks, alerts and audit.
async fn recordings_conformance(s: Arc<dyn Store>) {
    let cam = s
        .create_camera(new_camera("REC-1", None, "recprefix01"))
        .await
        .unwrap();
    let c = cam.id.as_str();
    let t0 = 1_800_000_000_000_i64;
    let a = s
        .open_recording(new_recording(c, "/hot/c/d/a.mp4", t0))
        .await
        .unwrap();
    assert_eq!(a.segment_number, 1);
    assert_eq!(a.status, RecordingStatus::Recording);
    assert_eq!(a.storage_tier, Tier::Hot);
    assert!(!a.is_archived);
    let grow = |end: i64, complete| RecordingGrowth {
        duration_ms: end - t0,
        file_size: 5000,
        end_time: end,
        complete,
    };
    assert_eq!(
        s.grow_recording("/hot/c/d/a.mp4", grow(t0 + 10_000, false), Some(vec![1, 2]))
            .await
            .unwrap(),
        Some(a.id.clone())
    );
    s.grow_recording("/hot/c/d/a.mp4", grow(t0 + 30_000, true), Some(vec![3]))
        .await
        .unwrap();
    assert_eq!(
        s.grow_recording("/hot/c/d/none.mp4", grow(t0, false), None)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.recording_index(&a.id).await.unwrap(),
        vec![vec![1, 2], vec![3]]
    );
    let a = s.get_recording(&a.id).await.unwrap().unwrap();
    assert_eq!(a.status, RecordingStatus::Complete);
    assert_eq!(
        (a.duration_ms, a.file_size, a.end_time),
        (30_000, 5000, t0 + 30_000)
    );
    // The next file of the camera, open; indexing it from the file replaces its chunks.
    let b = s
        .open_recording(new_recording(c, "/hot/c/d/b.mp4", t0 + 30_000))
        .await
        .unwrap();
    assert_eq!(b.segment_number, 2);
    s.grow_recording("/hot/c/d/b.mp4", grow(t0 + 40_000, false), Some(vec![9]))
        .await
        .unwrap();
    assert_eq!(s.open_recordings().await.unwrap().len(), 1);
    let mut whole = new_recording(c, "/hot/c/d/b.mp4", t0 + 30_000);
    whole.end_time = t0 + 45_000;
    whole.duration_ms = 15_000;
    whole.file_size = 7000;
    whole.status = RecordingStatus::Complete;
    let b2 = s.index_recording(whole, vec![7, 7]).await.unwrap();
    assert_eq!(b2.id, b.id, "re-indexing keeps the row");
    assert_eq!(b2.status, RecordingStatus::Complete);
    assert_eq!(s.recording_index(&b.id).await.unwrap(), vec![vec![7, 7]]);
    assert!(s.open_recordings().await.unwrap().is_empty());
    assert_eq!(
        s.get_recording_by_path("/hot/c/d/b.mp4")
            .await
            .unwrap()
            .map(|r| r.id),
        Some(b.id.clone())
    );

    // Windows and lists.
    let ids = |v: Vec<Recording>| v.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(s
            .recordings_between(c, t0 + 20_000, t0 + 35_000, 10)
            .await
            .unwrap()),
        vec![a.id.clone(), b.id.clone()]
    );
    assert_eq!(
        ids(s
            .recordings_between(c, t0 + 30_000, t0 + 35_000, 10)
            .await
            .unwrap()),
        vec![b.id.clone()],
        "a file ending at `from` is outside"
    );
    let (page, total) = s
        .list_recordings(&RecordingFilter {
            camera_id: Some(c.into()),
            limit: 1,
            ..RecordingFilter::default()
        })
        .await
        .unwrap();
    assert_eq!((ids(page), total), (vec![b.id.clone()], 2), "newest first");
    let (page, total) = s
        .list_recordings(&RecordingFilter {
            tier: Some(Tier::Warm),
            limit: 10,
            ..RecordingFilter::default()
        })
        .await
        .unwrap();
    assert!(page.is_empty() && total == 0);

    // Retention: candidates page by (end_time, id); a move is journaled and switched.
    let cands = s.retention_candidates(t0 + 60_000, None, 1).await.unwrap();
    assert_eq!(ids(cands.clone()), vec![a.id.clone()]);
    let next = s
        .retention_candidates(
            t0 + 60_000,
            Some((cands[0].end_time, cands[0].id.clone())),
            10,
        )
        .await
        .unwrap();
    assert_eq!(ids(next), vec![b.id.clone()]);
    assert!(
        s.retention_candidates(t0 + 30_000, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let job = RecordingJob {
        recording_id: a.id.clone(),
        kind: JobKind::Move,
        state: JobState::Copying,
        from_tier: Tier::Hot,
        to_tier: Some("archived".into()),
        src_path: a.file_path.clone(),
        dst_path: Some("archive/c/d/a.mp4".into()),
        checksum: None,
        created_at: t0,
        updated_at: t0,
        node_id: Some("n1".into()),
    };
    s.create_job(&job).await.unwrap();
    s.set_job_state(&a.id, JobState::Copied, Some("abc123"))
        .await
        .unwrap();
    let j = s.get_job(&a.id).await.unwrap().unwrap();
    assert_eq!(
        (j.state, j.checksum.as_deref(), j.node_id.as_deref()),
        (JobState::Copied, Some("abc123"), Some("n1"))
    );
    // The node that wrote a file is stored with its row.
    assert_eq!(a.node_id.as_deref(), Some("n1"));
    assert!(
        s.switch_tier(
            &a.id,
            Tier::Archived,
            "archive/c/d/a.mp4",
            Some("s3://b/archive/c/d/a.mp4"),
            "abc123"
        )
        .await
        .unwrap()
    );
    assert_eq!(
        s.get_job(&a.id).await.unwrap().unwrap().state,
        JobState::Switched
    );
    let a = s.get_recording(&a.id).await.unwrap().unwrap();
    assert_eq!(a.storage_tier, Tier::Archived);
    assert!(a.is_archived);
    assert_eq!(a.cloud_url.as_deref(), Some("s3://b/archive/c/d/a.mp4"));
    assert_eq!(a.checksum.as_deref(), Some("abc123"));
    assert_eq!(s.list_jobs().await.unwrap().len(), 1);
    s.delete_job(&a.id).await.unwrap();
    assert!(s.list_jobs().await.unwrap().is_empty());
    // Another company's usage holds none of these rows.
    assert!(s.recording_usage(Some("other")).await.unwrap().is_empty());
    let usage = s.recording_usage(None).await.unwrap();
    let of = |t: Tier| {
        usage
            .iter()
            .find(|u| u.tier == t)
            .map(|u| (u.bytes, u.files))
    };
    assert_eq!(of(Tier::Archived), Some((5000, 1)));
    assert_eq!(of(Tier::Hot), Some((7000, 1)));
    s.set_signed_url_expiry(&b.id, t0 + 900_000).await.unwrap();
    assert_eq!(
        s.get_recording(&b.id)
            .await
            .unwrap()
            .unwrap()
            .signed_url_expires_at,
        Some(t0 + 900_000)
    );
    // A journaled delete removes the row and leaves a job saying which file to remove.
    let gone = s.delete_recording_journaled(&b.id).await.unwrap().unwrap();
    assert_eq!(gone.file_path, "/hot/c/d/b.mp4");
    assert!(s.get_recording(&b.id).await.unwrap().is_none());
    assert!(s.recording_index(&b.id).await.unwrap().is_empty());
    let j = s.get_job(&b.id).await.unwrap().unwrap();
    assert_eq!((j.kind, j.state), (JobKind::Delete, JobState::Deleting));
    assert_eq!(j.src_path, "/hot/c/d/b.mp4");
    s.delete_job(&b.id).await.unwrap();
    assert!(s.delete_recording_journaled(&b.id).await.unwrap().is_none());
    assert!(
        s.delete_recording_by_path("archive/c/d/a.mp4")
            .await
            .unwrap()
    );
    assert!(
        !s.delete_recording_by_path("archive/c/d/a.mp4")
            .await
            .unwrap()
    );

    // Policies.
    let policy = RetentionPolicy {
        scope: "*".into(),
        warm_after_s: Some(86_400),
        cold_after_s: None,
        archive_after_s: Some(30 * 86_400),
        delete_after_s: None,
        updated_at: t0,
    };
    s.put_policy(&policy).await.unwrap();
    let mut own = policy.clone();
    own.scope = c.into();
    own.delete_after_s = Some(90 * 86_400);
    s.put_policy(&own).await.unwrap();
    own.warm_after_s = Some(3600);
    s.put_policy(&own).await.unwrap();
    let mut listed = s.list_policies().await.unwrap();
    listed.sort_by(|x, y| x.scope.cmp(&y.scope));
    assert_eq!(listed, vec![policy, own]);
    assert!(s.delete_policy(c).await.unwrap());
    assert!(!s.delete_policy(c).await.unwrap());

    // Bookmarks and alerts on the timeline window.
    let bm = s
        .create_bookmark(NewBookmark {
            camera_id: c.into(),
            at: t0 + 5_000,
            label: "gate opened".into(),
            user_id: None,
        })
        .await
        .unwrap();
    assert_eq!(
        s.list_bookmarks(c, t0, t0 + 10_000, 10).await.unwrap(),
        vec![bm]
    );
    assert!(
        s.list_bookmarks(c, t0 + 6_000, t0 + 10_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    s.create_alert(NewAlert {
        kind: "STORAGE_FULL".into(),
        severity: "critical".into(),
        camera_id: Some(c.into()),
        user_id: None,
        token_id: None,
        message: "full".into(),
        ..NewAlert::default()
    })
    .await
    .unwrap();
    let alerts = s.camera_alerts(c, 0, i64::MAX, 10).await.unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, "STORAGE_FULL");

    // Audit, newest first, filtered.
    for action in ["recording.url_issued", "recording.playlist"] {
        s.add_audit(NewAudit {
            action: action.into(),
            camera_id: Some(c.into()),
            ip: Some("10.0.0.1".into()),
            ..NewAudit::default()
        })
        .await
        .unwrap();
    }
    let (all, total) = s
        .list_audit(&AuditFilter {
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(total, 2);
    assert_eq!(all[0].ip.as_deref(), Some("10.0.0.1"));
    let (some, total) = s
        .list_audit(&AuditFilter {
            action: Some("recording.playlist".into()),
            camera_id: Some(c.into()),
            limit: 10,
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!((some.len(), total), (1, 1));
    assert_eq!(some[0].action, "recording.playlist");
}

/// Alerts: one open alert per cause counting occurrences, resolve, acknowledge, the
/// filtered list with tenants, and cameras offline since a time.
async fn alerts_conformance(s: &dyn Store, camera: &str, user: &str) {
    use camstream_controlplane::store::alerts::AlertFilter;
    let raise = |cause: &str, company: Option<&str>, severity: &str| NewAlert {
        kind: "CAMERA_OFFLINE".into(),
        severity: severity.into(),
        camera_id: Some(camera.into()),
        message: format!("raised {cause}"),
        cause: Some(cause.into()),
        company: company.map(str::to_owned),
        ..NewAlert::default()
    };
    let first = s
        .create_alert(raise("CAMERA_OFFLINE:x", Some("acme"), "warning"))
        .await
        .unwrap();
    next_ms().await;
    let again = s
        .create_alert(raise("CAMERA_OFFLINE:x", Some("acme"), "critical"))
        .await
        .unwrap();
    assert_eq!(again.id, first.id, "an open cause is counted, not repeated");
    assert_eq!(
        (again.occurrences, again.severity.as_str()),
        (2, "critical")
    );
    assert!(again.last_seen_at > first.last_seen_at);
    assert_eq!(s.open_alerts("CAMERA_OFFLINE").await.unwrap().len(), 1);
    // Resolved: the next raise is a new alert.
    assert!(s.resolve_cause("CAMERA_OFFLINE:x", 5).await.unwrap());
    assert!(!s.resolve_cause("CAMERA_OFFLINE:x", 6).await.unwrap());
    let third = s
        .create_alert(raise("CAMERA_OFFLINE:x", Some("acme"), "warning"))
        .await
        .unwrap();
    assert_ne!(third.id, first.id);
    assert_eq!(third.occurrences, 1);
    s.create_alert(raise("CAMERA_OFFLINE:y", Some("globex"), "info"))
        .await
        .unwrap();
    s.create_alert(raise("CAMERA_OFFLINE:z", None, "info"))
        .await
        .unwrap();
    // Acknowledge once; a second acknowledgement keeps the first.
    let acked = s
        .acknowledge_alert(&third.id, user, 100)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (acked.acknowledged_at, acked.acknowledged_by.as_deref()),
        (Some(100), Some(user))
    );
    let acked = s
        .acknowledge_alert(&third.id, "someone-else", 200)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (acked.acknowledged_at, acked.acknowledged_by.as_deref()),
        (Some(100), Some(user))
    );
    assert!(
        s.acknowledge_alert("nope", user, 1)
            .await
            .unwrap()
            .is_none()
    );
    // The outbox saw every change once, in order, with the tenant and the actor.
    let start = s.last_alert_event_seq().await.unwrap();
    assert!(start > 0);
    let events = s.alert_events_since(0, i64::MAX, 1000).await.unwrap();
    let mine: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e.alert_id == first.id || e.alert_id == third.id)
        .map(|e| (e.alert_id.as_str(), e.event.as_str()))
        .collect();
    assert_eq!(
        mine,
        [
            (first.id.as_str(), "opened"),
            (first.id.as_str(), "repeated"),
            (first.id.as_str(), "resolved"),
            (third.id.as_str(), "opened"),
            (third.id.as_str(), "acknowledged"),
        ]
    );
    assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
    let ack = events.iter().find(|e| e.event == "acknowledged").unwrap();
    assert_eq!(
        (ack.actor.as_deref(), ack.company.as_deref(), ack.at),
        (Some(user), Some("acme"), 100)
    );
    let esc = s
        .record_alert_event(&third.id, "escalated", None, Some(r#"{"step":1}"#))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(esc.seq, start + 1);
    assert_eq!(
        s.alert_events_since(start, i64::MAX, 10).await.unwrap(),
        std::slice::from_ref(&esc)
    );
    // The look-back window by time brings back older ones too.
    assert!(s.alert_events_since(start, 0, 1000).await.unwrap().len() > 1);
    assert!(
        s.record_alert_event("nope", "escalated", None, None)
            .await
            .unwrap()
            .is_none()
    );
    let list = |f: AlertFilter| async move {
        let (rows, total) = s
            .list_alerts_page(&AlertFilter { limit: 50, ..f })
            .await
            .unwrap();
        assert_eq!(rows.len() as i64, total);
        rows.into_iter().map(|a| a.message).collect::<Vec<_>>()
    };
    let acme = || AlertFilter {
        tenant: Some("acme".into()),
        ..AlertFilter::default()
    };
    assert_eq!(
        list(acme()).await,
        ["raised CAMERA_OFFLINE:x", "raised CAMERA_OFFLINE:x"]
    );
    assert_eq!(
        list(AlertFilter {
            open: Some(true),
            ..acme()
        })
        .await
        .len(),
        1
    );
    assert_eq!(
        list(AlertFilter {
            open: Some(false),
            ..acme()
        })
        .await
        .len(),
        1
    );
    assert_eq!(
        list(AlertFilter {
            acknowledged: Some(true),
            ..acme()
        })
        .await
        .len(),
        1
    );
    assert_eq!(
        list(AlertFilter {
            severity: Some("info".into()),
            ..AlertFilter::default()
        })
        .await
        .len(),
        3
    );
    assert_eq!(
        list(AlertFilter {
            kind: Some("CAMERA_OFFLINE".into()),
            camera_id: Some(camera.into()),
            ..AlertFilter::default()
        })
        .await
        .len(),
        4
    );
    let (page, total) = s
        .list_alerts_page(&AlertFilter {
            limit: 1,
            offset: 1,
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    assert_eq!((page.len(), total), (1, 6));
    // A camera whose stream went offline is found once it has been so long enough.
    assert!(
        s.set_stream_status(camera, StreamStatus::Online, Some("n1"))
            .await
            .unwrap()
    );
    next_ms().await;
    assert!(
        s.set_stream_status(camera, StreamStatus::Offline, None)
            .await
            .unwrap()
    );
    let went = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(
        s.cameras_offline_since(went - 60_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let found = s.cameras_offline_since(went + 1, 10).await.unwrap();
    assert!(found.iter().any(|c| c.id == camera), "{found:?}");
    // Reporting the same status again does not move the time it changed.
    next_ms().await;
    assert!(
        s.set_stream_status(camera, StreamStatus::Offline, None)
            .await
            .unwrap()
    );
    assert!(
        s.cameras_offline_since(went + 1, 10)
            .await
            .unwrap()
            .iter()
            .any(|c| c.id == camera)
    );
    for cause in ["CAMERA_OFFLINE:x", "CAMERA_OFFLINE:y", "CAMERA_OFFLINE:z"] {
        s.resolve_cause(cause, 7).await.unwrap();
    }
}

/// Layouts: per user, one default at a time, tiles round-trip, a cap, gone with the user.
async fn layouts_conformance(s: Arc<dyn Store>) {
    let mut users = Vec::new();
    for name in ["layout-a", "layout-b"] {
        users.push(
            s.create_user(NewUser {
                username: name.into(),
                email: None,
                password_hash: "$argon2id$x".into(),
                role: Role::Viewer,
                company: None,
            })
            .await
            .unwrap(),
        );
    }
    let (a, b) = (&users[0].id, &users[1].id);
    let new = |name: &str, default: bool| NewLayout {
        name: name.into(),
        grid_columns: 2,
        grid_rows: 3,
        tiles: Tiles(vec![LayoutTile {
            camera_id: "cam-1".into(),
            position: 5,
            playback: Some(TilePlayback::Webrtc),
        }]),
        is_default: default,
    };
    let one = s
        .create_layout(a, new("one", true), 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((one.grid_columns, one.grid_rows), (2, 3));
    assert_eq!(one.tiles.0[0].position, 5);
    assert_eq!(one.tiles.0[0].playback, Some(TilePlayback::Webrtc));
    assert!(one.is_default);
    next_ms().await;
    let two = s
        .create_layout(a, new("two", true), 2)
        .await
        .unwrap()
        .unwrap();
    // The cap counts this user's layouts only.
    assert!(
        s.create_layout(a, new("three", false), 2)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.create_layout(b, new("b's", true), 2)
            .await
            .unwrap()
            .is_some()
    );
    let listed = s.list_layouts(a).await.unwrap();
    let flags: Vec<(&str, bool)> = listed
        .iter()
        .map(|l| (l.name.as_str(), l.is_default))
        .collect();
    assert_eq!(flags, [("one", false), ("two", true)]);
    // b's default is untouched by a's.
    assert!(s.list_layouts(b).await.unwrap()[0].is_default);
    let changed = s
        .update_layout(a, &one.id, new("one again", true))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.name, "one again");
    assert!(!s.get_layout(a, &two.id).await.unwrap().unwrap().is_default);
    // Another user's id is nobody's to read, change or delete.
    assert!(s.get_layout(b, &one.id).await.unwrap().is_none());
    assert!(
        s.update_layout(b, &one.id, new("x", true))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.get_layout(a, &one.id).await.unwrap().unwrap().is_default,
        "a failed update of b's changed a's default"
    );
    assert!(!s.delete_layout(b, &one.id).await.unwrap());
    assert!(s.delete_layout(a, &two.id).await.unwrap());
    assert_eq!(s.list_layouts(a).await.unwrap().len(), 1);
    // A deleted user's layouts go with them.
    for u in &users {
        assert!(s.delete_user(&u.id).await.unwrap());
    }
    assert!(s.list_layouts(a).await.unwrap().is_empty());
}

/// Alert rules (one per company, camera and type), escalation steps taken once each across
/// callers and never after acknowledgement, cameras offline with their time, and the
/// retention purge of resolved alerts with their outbox rows.
async fn rules_conformance(s: &dyn Store) {
    use camstream_controlplane::store::rules::{Escalation, EscalationStep, NewAlertRule};
    let cam = s
        .create_camera(new_camera("RULES-1", Some("acme"), "rul1"))
        .await
        .unwrap();
    let rule = |camera: Option<&str>, kind: &str| NewAlertRule {
        company: "acme".into(),
        camera_id: camera.map(str::to_owned),
        kind: kind.into(),
        enabled: true,
        severity: "warning".into(),
        threshold: Some(0.5),
        minimum: None,
        duration_ms: Some(60_000),
        escalation: Escalation(vec![EscalationStep {
            after_minutes: 5,
            user_ids: vec!["u1".into()],
            channel_ids: vec!["c1".into()],
        }]),
    };
    let company = s
        .create_alert_rule(rule(None, "STREAM_FPS_LOW"))
        .await
        .unwrap();
    assert_eq!(company.threshold, Some(0.5));
    assert_eq!(company.escalation.0[0].user_ids, vec!["u1".to_owned()]);
    let camera = s
        .create_alert_rule(rule(Some(&cam.id), "STREAM_FPS_LOW"))
        .await
        .unwrap();
    // One rule per scope and type: a second company rule (NULL camera) conflicts too.
    for dup in [
        rule(None, "STREAM_FPS_LOW"),
        rule(Some(&cam.id), "STREAM_FPS_LOW"),
    ] {
        let e = s.create_alert_rule(dup).await.unwrap_err();
        assert_eq!(e.conflict_field(), Some("type"), "{e}");
    }
    let globex = s
        .create_alert_rule(NewAlertRule {
            company: "globex".into(),
            ..rule(None, "CAMERA_OFFLINE")
        })
        .await
        .unwrap();
    let acme: Vec<String> = s
        .list_alert_rules(Some("acme"))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        acme,
        vec![company.id.clone(), camera.id.clone()],
        "company rules first"
    );
    assert_eq!(s.list_alert_rules(None).await.unwrap().len(), 3);
    let changed = s
        .update_alert_rule(
            &camera.id,
            NewAlertRule {
                enabled: false,
                threshold: None,
                escalation: Escalation::default(),
                ..rule(Some(&cam.id), "STREAM_FPS_LOW")
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!changed.enabled && changed.threshold.is_none() && changed.escalation.0.is_empty());
    assert_eq!(
        s.get_alert_rule(&camera.id).await.unwrap().unwrap(),
        changed
    );
    let e = s
        .update_alert_rule(&camera.id, rule(None, "STREAM_FPS_LOW"))
        .await
        .unwrap_err();
    assert_eq!(e.conflict_field(), Some("type"));
    assert!(
        s.update_alert_rule("nope", rule(None, "X"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.delete_alert_rule(&globex.id).await.unwrap());
    assert!(!s.delete_alert_rule(&globex.id).await.unwrap());

    // Escalation: once per step whoever asks, never after acknowledgement or resolution.
    let raise = |cause: &str| NewAlert {
        kind: "STREAM_FPS_LOW".into(),
        severity: "warning".into(),
        camera_id: Some(cam.id.clone()),
        message: "low".into(),
        cause: Some(cause.into()),
        company: Some("acme".into()),
        ..NewAlert::default()
    };
    let a = s.create_alert(raise("RULES:a")).await.unwrap();
    let data = r#"{"step":1,"afterMinutes":5,"userIds":["u1"],"channelIds":["c1"]}"#;
    let (x, y) = tokio::join!(
        s.escalate_alert(&a.id, 1, 1000, data),
        s.escalate_alert(&a.id, 1, 1001, data)
    );
    let taken: Vec<_> = [x.unwrap(), y.unwrap()].into_iter().flatten().collect();
    assert_eq!(
        taken.len(),
        1,
        "one of two concurrent callers takes the step"
    );
    assert_eq!(
        (
            taken[0].event.as_str(),
            taken[0].data.as_deref(),
            taken[0].alert_id.as_str()
        ),
        ("escalated", Some(data), a.id.as_str())
    );
    assert!(
        s.escalate_alert(&a.id, 1, 2000, data)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.escalate_alert(&a.id, 2, 2000, "{}")
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        s.open_alert_escalations().await.unwrap(),
        vec![(a.id.clone(), 1), (a.id.clone(), 2)]
    );
    s.acknowledge_alert(&a.id, "u1", 3000).await.unwrap();
    assert!(
        s.escalate_alert(&a.id, 3, 4000, "{}")
            .await
            .unwrap()
            .is_none()
    );
    let b = s.create_alert(raise("RULES:b")).await.unwrap();
    assert!(s.resolve_cause("RULES:b", 5000).await.unwrap());
    assert!(
        s.escalate_alert(&b.id, 1, 6000, "{}")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.escalate_alert("nope", 1, 6000, "{}")
            .await
            .unwrap()
            .is_none()
    );

    // Offline cameras with the time they went offline.
    s.set_stream_status(&cam.id, StreamStatus::Online, Some("n1"))
        .await
        .unwrap();
    s.set_stream_status(&cam.id, StreamStatus::Offline, None)
        .await
        .unwrap();
    let off = s.offline_cameras(i64::MAX, 10).await.unwrap();
    let mine = off.iter().find(|c| c.id == cam.id).expect("offline camera");
    assert_eq!(mine.company.as_deref(), Some("acme"));
    assert!(mine.status_changed_at > 0);
    assert!(
        s.offline_cameras(mine.status_changed_at, 10)
            .await
            .unwrap()
            .iter()
            .all(|c| c.id != cam.id)
    );

    // Retention: alerts resolved before the cut-off go with their outbox rows and steps.
    let before = s.alert_events_since(0, i64::MAX, 100_000).await.unwrap();
    let b_events = before.iter().filter(|e| e.alert_id == b.id).count();
    assert_eq!(b_events, 2, "opened and resolved");
    assert!(s.resolve_cause("RULES:a", 9000).await.unwrap());
    // What the other checks resolved earlier (at small times) goes first.
    s.purge_resolved_alerts(4999).await.unwrap();
    let purged = s.purge_resolved_alerts(6000).await.unwrap();
    assert_eq!(purged.alerts, 1);
    assert_eq!(purged.events, 2);
    assert!(s.get_alert(&b.id).await.unwrap().is_none());
    assert!(s.get_alert(&a.id).await.unwrap().is_some());
    let purged = s.purge_resolved_alerts(9001).await.unwrap();
    assert_eq!((purged.alerts, purged.events), (1, 5));
    assert!(s.get_alert(&a.id).await.unwrap().is_none());
    assert!(
        s.alert_events_since(0, i64::MAX, 100_000)
            .await
            .unwrap()
            .iter()
            .all(|e| e.alert_id != a.id && e.alert_id != b.id)
    );
    // Deleting the camera deletes its rules.
    assert!(s.delete_camera(&cam.id).await.unwrap());
    assert!(s.get_alert_rule(&camera.id).await.unwrap().is_none());
    assert!(s.get_alert_rule(&company.id).await.unwrap().is_some());
}

#[tokio::test]
async fn conformance_sqlite() {
    let dir = support::temp_dir("store");
    let s = store::connect(None, &dir).await.unwrap();
    assert_eq!(s.backend(), "sqlite");
    conformance(s.clone()).await;
    layouts_conformance(s.clone()).await;
    recordings_conformance(s).await;
    // Reopening runs migrations again without harm and keeps the data.
    let s = store::connect(None, &dir).await.unwrap();
    assert_eq!(s.count_users().await.unwrap(), 0);
    assert_eq!(s.camera_counts(None).await.unwrap().total, 3);
    rules_conformance(&*s).await;
    notify_conformance(s).await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn conformance_postgres() {
    let pg = support::Postgres::start();
    let url = pg.database().await;
    let dir = support::temp_dir("store-pg");
    let s = store::connect(Some(&url), &dir).await.unwrap();
    assert_eq!(s.backend(), "postgres");
    conformance(s.clone()).await;
    layouts_conformance(s.clone()).await;
    recordings_conformance(s).await;
    let s = store::connect(Some(&url), &dir).await.unwrap();
    assert_eq!(s.camera_counts(None).await.unwrap().total, 3);
    rules_conformance(&*s).await;
    notify_conformance(s).await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn unsupported_urls_are_refused() {
    let dir = support::temp_dir("store-bad");
    let e = store::connect(Some("mysql://u:pw@h/db"), &dir)
        .await
        .err()
        .expect("refused");
    let text = e.to_string();
    assert!(text.contains("unsupported"), "{text}");
    assert!(!text.contains("pw"), "password leaked: {text}");
    std::fs::remove_dir_all(dir).unwrap();
}

async fn notify_conformance(s: Arc<dyn Store>) {
    use camstream_controlplane::store::notify::{
        DigestAdd, NewChannel, NewDelivery, Outcome, Preferences,
    };
    let user = |name: &str, role: Role, company: Option<&str>| NewUser {
        username: name.into(),
        email: Some(format!("{name}@example.test")),
        password_hash: "$argon2id$x".into(),
        role,
        company: company.map(str::to_owned),
    };
    let admin = s
        .create_user(user("n-admin", Role::Admin, None))
        .await
        .unwrap();
    let op = s
        .create_user(user("n-op", Role::Operator, Some("acme")))
        .await
        .unwrap();
    let gone = s
        .create_user(user("n-gone", Role::Operator, Some("acme")))
        .await
        .unwrap();
    s.update_user(
        &gone.id,
        UserUpdate {
            is_active: Some(false),
            ..Default::default()
        },
    )
    .await
    .unwrap();

    // Channels.
    let channel = |company: Option<&str>, kind: &str, enabled: bool| NewChannel {
        company: company.map(str::to_owned),
        kind: kind.into(),
        name: format!("{kind} channel"),
        target: "http://hooks.example.test/x".into(),
        secret: Some("s3cret-s3cret-s3cret".into()),
        enabled,
        min_severity: "warning".into(),
        kinds: Some(r#"["CAMERA_OFFLINE"]"#.into()),
    };
    let c = s
        .create_channel(channel(Some("acme"), "webhook", true))
        .await
        .unwrap();
    assert_eq!(c.company.as_deref(), Some("acme"));
    assert_eq!(c.kinds.as_deref(), Some(r#"["CAMERA_OFFLINE"]"#));
    let g = s
        .create_channel(channel(None, "email", false))
        .await
        .unwrap();
    assert_eq!(s.get_channel(&c.id).await.unwrap().as_ref(), Some(&c));
    assert_eq!(
        s.list_channels(Some("acme")).await.unwrap(),
        vec![c.clone()]
    );
    assert_eq!(s.list_channels(None).await.unwrap().len(), 2);
    assert_eq!(
        s.enabled_channels(Some("acme")).await.unwrap(),
        vec![c.clone()]
    );
    assert!(s.enabled_channels(None).await.unwrap().is_empty());
    let g2 = s
        .update_channel(&g.id, channel(None, "email", true))
        .await
        .unwrap()
        .unwrap();
    assert!(g2.enabled && g2.updated_at >= g.updated_at);
    assert_eq!(s.enabled_channels(None).await.unwrap().len(), 1);
    assert!(
        s.update_channel("nope", channel(None, "sms", true))
            .await
            .unwrap()
            .is_none()
    );
    assert!(s.delete_channel(&g.id).await.unwrap());
    assert!(!s.delete_channel(&g.id).await.unwrap());

    // The queue: one row per dedup key.
    let nd = |key: &str, next: i64| NewDelivery {
        dedup_key: key.into(),
        event_seq: 1,
        alert_id: Some("a1".into()),
        event: "opened".into(),
        channel_kind: "webhook".into(),
        channel_id: Some(c.id.clone()),
        user_id: None,
        company: Some("acme".into()),
        target: c.target.clone(),
        breaker_key: "webhook:hooks.example.test:80".into(),
        next_attempt_at: next,
        payload: r#"{"event":"opened"}"#.into(),
        is_digest: false,
    };
    assert!(s.enqueue_delivery(nd("1:c:x", 100), 50).await.unwrap());
    assert!(
        !s.enqueue_delivery(nd("1:c:x", 100), 50).await.unwrap(),
        "enqueued twice"
    );
    assert!(s.enqueue_delivery(nd("2:c:x", 200), 50).await.unwrap());
    let got = s.claim_deliveries("n1", 150, 1000, 10).await.unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    let d1 = got[0].clone();
    assert_eq!(
        (d1.dedup_key.as_str(), d1.state.as_str()),
        ("1:c:x", "sending")
    );
    assert_eq!(
        (d1.lease_owner.as_deref(), d1.lease_until),
        (Some("n1"), Some(1150))
    );
    assert!(
        s.claim_deliveries("n2", 150, 1000, 10)
            .await
            .unwrap()
            .is_empty(),
        "leased twice"
    );
    let retry = Outcome::Retry {
        next: 300,
        error: "HTTP 500".into(),
    };
    assert!(
        !s.finish_delivery(&d1.id, "n2", retry.clone(), 160)
            .await
            .unwrap(),
        "not n2's"
    );
    assert!(s.finish_delivery(&d1.id, "n1", retry, 160).await.unwrap());
    let r = s.get_delivery(&d1.id).await.unwrap().unwrap();
    assert_eq!(
        (r.state.as_str(), r.attempts, r.next_attempt_at),
        ("pending", 1, 300)
    );
    assert_eq!(r.last_error.as_deref(), Some("HTTP 500"));
    assert!(r.lease_owner.is_none());
    let got = s.claim_deliveries("n2", 250, 1000, 10).await.unwrap();
    assert_eq!(got.len(), 1);
    let d2 = got[0].clone();
    assert_eq!(d2.dedup_key, "2:c:x");
    // n2 dies holding d2: after its lease n1 takes both (d1 is due again), oldest due
    // first.
    let got = s.claim_deliveries("n1", 1251, 1000, 10).await.unwrap();
    assert_eq!(
        got.iter().map(|d| d.dedup_key.as_str()).collect::<Vec<_>>(),
        ["2:c:x", "1:c:x"]
    );
    assert!(
        !s.finish_delivery(&d2.id, "n2", Outcome::Sent { at: 1300 }, 1300)
            .await
            .unwrap(),
        "lost lease"
    );
    assert!(
        s.finish_delivery(
            &d1.id,
            "n1",
            Outcome::Dead {
                error: "gone".into()
            },
            1300
        )
        .await
        .unwrap()
    );
    assert!(
        s.finish_delivery(&d2.id, "n1", Outcome::Sent { at: 1300 }, 1300)
            .await
            .unwrap()
    );
    let r = s.get_delivery(&d1.id).await.unwrap().unwrap();
    assert_eq!((r.state.as_str(), r.attempts), ("dead", 2));
    assert_eq!(
        s.get_delivery(&d2.id).await.unwrap().unwrap().sent_at,
        Some(1300)
    );
    let (dead, total) = s.list_deliveries(Some("dead"), 0, 10).await.unwrap();
    assert_eq!((dead.len(), total), (1, 1));
    assert_eq!(s.list_deliveries(None, 0, 10).await.unwrap().1, 2);
    let back = s.retry_dead_delivery(&d1.id, 2000).await.unwrap().unwrap();
    assert_eq!(
        (back.state.as_str(), back.attempts, back.next_attempt_at),
        ("pending", 0, 2000)
    );
    assert!(
        s.retry_dead_delivery(&d1.id, 2000).await.unwrap().is_none(),
        "not dead any more"
    );
    assert!(
        s.retry_dead_delivery(&d2.id, 2000).await.unwrap().is_none(),
        "sent, not dead"
    );
    // An open breaker releases without spending an attempt.
    let got = s.claim_deliveries("n1", 2000, 1000, 10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(
        s.finish_delivery(&d1.id, "n1", Outcome::Release { next: 5000 }, 2000)
            .await
            .unwrap()
    );
    let r = s.get_delivery(&d1.id).await.unwrap().unwrap();
    assert_eq!(
        (r.state.as_str(), r.attempts, r.next_attempt_at),
        ("pending", 0, 5000)
    );

    // Concurrent claimers never lease one row twice.
    for i in 0..24 {
        assert!(
            s.enqueue_delivery(nd(&format!("c:{i}"), 3000), 3000)
                .await
                .unwrap()
        );
    }
    let mut set = tokio::task::JoinSet::new();
    for n in 0..4 {
        let s = s.clone();
        set.spawn(async move {
            s.claim_deliveries(&format!("w{n}"), 3000, 1000, 5)
                .await
                .unwrap()
        });
    }
    let mut ids = Vec::new();
    while let Some(r) = set.join_next().await {
        ids.extend(r.unwrap().into_iter().map(|d| d.id));
    }
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "a row was leased twice");
    assert_eq!(n, 20, "4 claimers of 5 with 24 due");

    // Digests: an event joins one digest; a digest being sent takes no more.
    let mut dd = nd("digest:u:1", 10_000);
    dd.is_digest = true;
    dd.user_id = Some(op.id.clone());
    dd.event_seq = 10;
    assert_eq!(
        s.add_digest_item(dd.clone(), &op.id, "line a", 4000)
            .await
            .unwrap(),
        DigestAdd::Added
    );
    assert_eq!(
        s.add_digest_item(dd.clone(), &op.id, "line a", 4000)
            .await
            .unwrap(),
        DigestAdd::Present
    );
    dd.event_seq = 11;
    assert_eq!(
        s.add_digest_item(dd.clone(), &op.id, "line b", 4001)
            .await
            .unwrap(),
        DigestAdd::Added
    );
    let digest = s
        .claim_deliveries("n1", 10_000, 1000, 100)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.is_digest)
        .expect("the digest is due");
    assert_eq!(
        s.digest_lines(&digest.id).await.unwrap(),
        ["line a", "line b"]
    );
    dd.event_seq = 12;
    assert_eq!(
        s.add_digest_item(dd, &op.id, "line c", 10_001)
            .await
            .unwrap(),
        DigestAdd::Closed
    );

    // Old sent and dead deliveries go, with their digest lines; pending ones stay.
    assert!(
        s.finish_delivery(&digest.id, "n1", Outcome::Sent { at: 10_002 }, 10_002)
            .await
            .unwrap()
    );
    assert_eq!(s.purge_deliveries(0).await.unwrap(), 0);
    assert_eq!(s.purge_deliveries(i64::MAX).await.unwrap(), 2);
    assert!(s.get_delivery(&d2.id).await.unwrap().is_none());
    assert!(s.digest_lines(&digest.id).await.unwrap().is_empty());
    assert!(
        s.get_delivery(&d1.id).await.unwrap().is_some(),
        "pending rows stay"
    );

    // Preferences and recipients.
    assert!(s.get_preferences(&op.id).await.unwrap().is_none());
    let mut p = Preferences {
        user_id: op.id.clone(),
        email: Some("pager@acme.test".into()),
        phone: Some("+15551234567".into()),
        channels: r#"{"critical":["email","sms"]}"#.into(),
        kinds: None,
        quiet_start: Some("22:00".into()),
        quiet_end: Some("07:00".into()),
        time_zone: Some("Europe/Berlin".into()),
        digest: false,
        digest_minutes: 60,
        updated_at: 1,
    };
    assert_eq!(s.put_preferences(p.clone()).await.unwrap(), p);
    p.digest = true;
    p.kinds = Some(r#"{"CAMERA_OFFLINE":["sms"]}"#.into());
    p.updated_at = 2;
    assert_eq!(s.put_preferences(p.clone()).await.unwrap(), p);
    assert_eq!(s.get_preferences(&op.id).await.unwrap(), Some(p));
    let ids = |v: Vec<camstream_controlplane::store::notify::Recipient>| {
        v.into_iter().map(|r| r.id).collect::<Vec<_>>()
    };
    assert_eq!(
        ids(s.notify_recipients(Some("acme")).await.unwrap()),
        vec![op.id.clone()]
    );
    assert_eq!(
        ids(s.notify_recipients(None).await.unwrap()),
        vec![admin.id.clone()]
    );
    let r = s
        .recipients_by_id(&[gone.id.clone(), op.id.clone(), "nobody".into()])
        .await
        .unwrap();
    assert_eq!(ids(r.clone()), vec![op.id.clone()]);
    assert_eq!(r[0].email.as_deref(), Some("n-op@example.test"));
    for u in [&admin, &op, &gone] {
        assert!(s.delete_user(&u.id).await.unwrap());
    }
    assert!(
        s.get_preferences(&op.id).await.unwrap().is_none(),
        "preferences go with the user"
    );
}
