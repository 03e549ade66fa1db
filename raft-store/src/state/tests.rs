use super::*;

pub(crate) fn info(id: NodeId, max_streams: u32) -> NodeInfo {
    NodeInfo {
        id,
        api_url: format!("http://10.0.0.{id}:8080"),
        raft_addr: format!("10.0.0.{id}:7000"),
        relay_addr: format!("10.0.0.{id}:7001"),
        rtmp_addrs: vec![format!("rtmp://10.0.0.{id}:1935")],
        capacity: Capacity {
            max_streams,
            max_ingest_kbps: 0,
        },
    }
}

fn join(s: &mut ClusterState, id: NodeId, at_ms: u64) -> Response {
    s.apply(Command::Join {
        info: info(id, 100),
        at_ms,
        lease_ms: DEFAULT_LEASE_MS,
    })
}

fn place(
    s: &mut ClusterState,
    camera: &str,
    node: NodeId,
    expected_epoch: u64,
    at_ms: u64,
) -> Response {
    s.apply(Command::Place {
        camera: camera.into(),
        node,
        expected_epoch,
        at_ms,
    })
}

fn placed(camera: &str, node: Option<NodeId>, epoch: u64) -> Response {
    Response::Placed {
        camera: camera.into(),
        node,
        epoch,
    }
}

#[test]
fn join_grants_a_lease_from_the_command_time() {
    let mut s = ClusterState::new();
    assert_eq!(
        join(&mut s, 1, 10_000),
        Response::Lease {
            node: 1,
            until_ms: 12_000
        }
    );
    let m = s.member(1).expect("joined");
    assert!(m.is_live(11_999));
    assert!(!m.is_live(12_000));
    assert_eq!(m.info.relay_addr, "10.0.0.1:7001");
}

#[test]
fn place_bumps_the_epoch_and_checks_the_expected_one() {
    let mut s = ClusterState::new();
    join(&mut s, 1, 1_000);
    join(&mut s, 2, 1_000);
    assert_eq!(place(&mut s, "cam", 1, 0, 1_100), placed("cam", Some(1), 1));
    // A scheduler that looked before the first placement is refused.
    assert_eq!(
        place(&mut s, "cam", 2, 0, 1_200),
        Response::Refused(Refusal::StaleEpoch {
            camera: "cam".into(),
            expected: 0,
            current: 1
        })
    );
    assert_eq!(place(&mut s, "cam", 2, 1, 1_300), placed("cam", Some(2), 2));
    assert_eq!(s.member(1).map(|m| m.placed), Some(0));
    assert_eq!(s.member(2).map(|m| m.placed), Some(1));
}

#[test]
fn claim_moves_the_camera_with_a_new_epoch_and_is_idempotent() {
    let mut s = ClusterState::new();
    join(&mut s, 1, 1_000);
    join(&mut s, 2, 1_000);
    place(&mut s, "cam", 1, 0, 1_000);
    assert_eq!(
        s.apply(Command::Claim {
            camera: "cam".into(),
            node: 2,
            at_ms: 1_100
        }),
        placed("cam", Some(2), 2)
    );
    // The same claim again (a retried proposal) changes nothing.
    assert_eq!(
        s.apply(Command::Claim {
            camera: "cam".into(),
            node: 2,
            at_ms: 1_200
        }),
        placed("cam", Some(2), 2)
    );
    // A claim for a camera never placed creates it.
    assert_eq!(
        s.apply(Command::Claim {
            camera: "new".into(),
            node: 1,
            at_ms: 1_200
        }),
        placed("new", Some(1), 1)
    );
}

#[test]
fn commands_for_unknown_nodes_are_refused_without_change() {
    let mut s = ClusterState::new();
    join(&mut s, 1, 1_000);
    let before = s.clone();
    for cmd in [
        Command::Heartbeat {
            node: 9,
            at_ms: 1_000,
            lease_ms: 2_000,
            load: Load::default(),
        },
        Command::Place {
            camera: "cam".into(),
            node: 9,
            expected_epoch: 0,
            at_ms: 1_000,
        },
        Command::Claim {
            camera: "cam".into(),
            node: 9,
            at_ms: 1_000,
        },
        Command::Leave {
            node: 9,
            at_ms: 1_000,
        },
        Command::SetDraining {
            node: 9,
            draining: true,
            at_ms: 1_000,
        },
    ] {
        assert_eq!(
            s.apply(cmd),
            Response::Refused(Refusal::UnknownNode { node: 9 })
        );
    }
    assert_eq!(s, before);
}

#[test]
fn an_expired_lease_unplaces_the_nodes_cameras_with_new_epochs() {
    let mut s = ClusterState::new();
    join(&mut s, 1, 1_000);
    join(&mut s, 2, 1_000);
    place(&mut s, "a", 1, 0, 1_000);
    place(&mut s, "b", 1, 0, 1_000);
    place(&mut s, "c", 2, 0, 1_000);
    // Node 2 renews, node 1 does not.
    s.apply(Command::Heartbeat {
        node: 2,
        at_ms: 2_500,
        lease_ms: 2_000,
        load: Load::default(),
    });
    // Lease of node 1 ends at 3_000: at 2_999 nothing happens.
    s.apply(Command::Tick { at_ms: 2_999 });
    assert_eq!(s.placement("a").map(|p| p.node), Some(Some(1)));
    s.apply(Command::Tick { at_ms: 3_000 });
    assert_eq!(
        s.placement("a"),
        Some(Placement {
            node: None,
            epoch: 2
        })
    );
    assert_eq!(
        s.placement("b"),
        Some(Placement {
            node: None,
            epoch: 2
        })
    );
    assert_eq!(
        s.placement("c"),
        Some(Placement {
            node: Some(2),
            epoch: 1
        })
    );
    assert_eq!(s.member(1).map(|m| m.placed), Some(0));
    // The expired node can neither claim nor be chosen ...
    assert_eq!(
        s.apply(Command::Claim {
            camera: "a".into(),
            node: 1,
            at_ms: 3_100
        }),
        Response::Refused(Refusal::LeaseExpired {
            node: 1,
            until_ms: 3_000,
            now_ms: 3_100
        })
    );
    // ... until a heartbeat readmits it; the camera then needs a new placement.
    s.apply(Command::Heartbeat {
        node: 1,
        at_ms: 3_200,
        lease_ms: 2_000,
        load: Load::default(),
    });
    assert_eq!(place(&mut s, "a", 1, 2, 3_300), placed("a", Some(1), 3));
}

#[test]
fn the_clock_never_runs_backwards_and_leases_never_shrink() {
    let mut s = ClusterState::new();
    join(&mut s, 1, 10_000);
    // A new leader whose clock lags by 5 s stamps a heartbeat.
    let r = s.apply(Command::Heartbeat {
        node: 1,
        at_ms: 5_000,
        lease_ms: 2_000,
        load: Load::default(),
    });
    assert_eq!(
        r,
        Response::Lease {
            node: 1,
            until_ms: 12_000
        }
    );
    assert_eq!(s.clock_ms(), 10_000);
}

#[test]
fn a_takeover_extends_live_leases_before_checking_them() {
    let mut s = ClusterState::new();
    join(&mut s, 1, 1_000); // lease until 3_000
    join(&mut s, 2, 1_000);
    place(&mut s, "a", 1, 0, 1_000);
    // Node 2 lapsed while the old leader still ran.
    s.apply(Command::Heartbeat {
        node: 1,
        at_ms: 2_900,
        lease_ms: 2_000,
        load: Load::default(),
    });
    s.apply(Command::Tick { at_ms: 3_100 });
    assert!(!s.member(2).expect("member").is_live(3_100));
    // The old leader dies; the election takes 3 s, longer than node 1's lease (until 4_900).
    let r = s.apply(Command::Takeover {
        at_ms: 6_100,
        grace_ms: 2_000,
    });
    assert_eq!(r, Response::Done);
    assert_eq!(s.placement("a").and_then(|p| p.node), Some(1), "kept");
    assert_eq!(s.member(1).map(|m| m.lease_until_ms), Some(8_100));
    // A node that had already lapsed is not revived.
    assert!(!s.member(2).expect("member").is_live(6_100));
    // Without a renewal the grace runs out like any lease.
    s.apply(Command::Tick { at_ms: 8_100 });
    assert_eq!(s.placement("a").and_then(|p| p.node), None);
}

#[test]
fn draining_nodes_take_no_cameras_but_keep_theirs() {
    let mut s = ClusterState::new();
    join(&mut s, 1, 1_000);
    join(&mut s, 2, 1_000);
    place(&mut s, "a", 1, 0, 1_000);
    assert_eq!(
        s.apply(Command::SetDraining {
            node: 1,
            draining: true,
            at_ms: 1_100
        }),
        Response::Done
    );
    assert_eq!(s.placement("a").and_then(|p| p.node), Some(1));
    assert_eq!(
        place(&mut s, "b", 1, 0, 1_200),
        Response::Refused(Refusal::NodeDraining { node: 1 })
    );
    assert_eq!(
        s.apply(Command::Claim {
            camera: "b".into(),
            node: 1,
            at_ms: 1_200
        }),
        Response::Refused(Refusal::NodeDraining { node: 1 })
    );
    // The hand-over: the scheduler moves "a" with the epoch it saw.
    assert_eq!(place(&mut s, "a", 2, 1, 1_300), placed("a", Some(2), 2));
}

#[test]
fn leave_unplaces_the_cameras_and_unplace_checks_the_epoch() {
    let mut s = ClusterState::new();
    join(&mut s, 1, 1_000);
    place(&mut s, "a", 1, 0, 1_000);
    place(&mut s, "b", 1, 0, 1_000);
    assert_eq!(
        s.apply(Command::Unplace {
            camera: "b".into(),
            expected_epoch: 7,
            at_ms: 1_000
        }),
        Response::Refused(Refusal::StaleEpoch {
            camera: "b".into(),
            expected: 7,
            current: 1
        })
    );
    assert_eq!(
        s.apply(Command::Unplace {
            camera: "b".into(),
            expected_epoch: 1,
            at_ms: 1_000
        }),
        placed("b", None, 2)
    );
    assert_eq!(
        s.apply(Command::Leave {
            node: 1,
            at_ms: 1_100
        }),
        Response::Done
    );
    assert!(s.member(1).is_none());
    assert_eq!(
        s.placement("a"),
        Some(Placement {
            node: None,
            epoch: 2
        })
    );
}

#[test]
fn malformed_commands_are_refused() {
    let mut s = ClusterState::new();
    assert!(matches!(
        s.apply(Command::Join {
            info: info(1, 10),
            at_ms: 0,
            lease_ms: 0
        }),
        Response::Refused(Refusal::Invalid { .. })
    ));
    join(&mut s, 1, 1_000);
    assert!(matches!(
        place(&mut s, "", 1, 0, 1_000),
        Response::Refused(Refusal::Invalid { .. })
    ));
}

#[test]
fn apply_is_deterministic_and_the_state_round_trips_through_serde() {
    // A pseudo-random command stream (fixed LCG) applied to two states gives equal states,
    // and a state serialized mid-way and restored continues identically.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    let mut cmds = Vec::new();
    let mut t = 1_000;
    for _ in 0..2_000 {
        t += next(400);
        let node = 1 + next(4);
        let camera = format!("cam{}", next(30));
        cmds.push(match next(7) {
            0 => Command::Join {
                info: info(node, 10),
                at_ms: t,
                lease_ms: 2_000,
            },
            1 => Command::Heartbeat {
                node,
                at_ms: t,
                lease_ms: 2_000,
                load: Load {
                    active_streams: next(10) as u32,
                    ingest_kbps: next(50_000),
                    cpu_permille: next(1000) as u16,
                    transcoding: 1,
                    transcode_max: 2,
                },
            },
            2 => Command::Place {
                camera,
                node,
                expected_epoch: next(5),
                at_ms: t,
            },
            3 => Command::Claim {
                camera,
                node,
                at_ms: t,
            },
            4 => Command::SetDraining {
                node,
                draining: next(4) == 0,
                at_ms: t,
            },
            5 => Command::Takeover {
                at_ms: t,
                grace_ms: 2_000,
            },
            _ => Command::Tick { at_ms: t },
        });
    }
    let mut a = ClusterState::new();
    let mut b = ClusterState::new();
    let mut ra = Vec::new();
    for (i, c) in cmds.iter().enumerate() {
        ra.push(a.apply(c.clone()));
        if i == 1_000 {
            let json = serde_json::to_vec(&b).expect("serialize");
            b = serde_json::from_slice(&json).expect("deserialize");
        }
        assert_eq!(b.apply(c.clone()), ra[i], "command {i}");
    }
    assert_eq!(a, b);
    // The per-node counts stay in step with the placement table.
    for (id, m) in a.members() {
        let n = a.cameras().filter(|(_, p)| p.node == Some(id)).count();
        assert_eq!(m.placed as usize, n, "node {id}");
    }
    assert!(
        ra.iter().any(|r| matches!(r, Response::Placed { .. })),
        "the stream placed something"
    );
}

/// A heartbeat in the log and a member in a snapshot as the version before the transcode
/// fields wrote them still read: the fields default to 0 (no transcoding, ABR off).
#[test]
fn load_written_before_the_transcode_fields_still_reads() {
    let old_command = r#"{"Heartbeat":{"node":3,"at_ms":5000,"lease_ms":2000,
        "load":{"active_streams":4,"ingest_kbps":8000,"cpu_permille":120}}}"#;
    let cmd: Command = serde_json::from_str(old_command).expect("an old heartbeat reads");
    let Command::Heartbeat { load, .. } = &cmd else {
        panic!("{cmd:?}")
    };
    assert_eq!(
        *load,
        Load {
            active_streams: 4,
            ingest_kbps: 8000,
            cpu_permille: 120,
            transcoding: 0,
            transcode_max: 0,
        }
    );
    // A snapshot: write one with the new fields, strip them, read it back.
    let mut s = ClusterState::new();
    join(&mut s, 1, 1_000);
    s.apply(Command::Heartbeat {
        node: 1,
        at_ms: 1_100,
        lease_ms: DEFAULT_LEASE_MS,
        load: Load {
            active_streams: 1,
            ingest_kbps: 2,
            cpu_permille: 3,
            transcoding: 0,
            transcode_max: 0,
        },
    });
    let json = serde_json::to_string(&s).expect("serialize");
    let old = json.replace(r#","transcoding":0,"transcode_max":0"#, "");
    assert_ne!(old, json, "the new fields were in the snapshot: {json}");
    let back: ClusterState = serde_json::from_str(&old).expect("an old snapshot reads");
    assert_eq!(back, s);
}
