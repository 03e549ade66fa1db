//! Notification delivery against real peers: an SMTP server (aiosmtpd, a separate process),
//! a webhook receiver that verifies the HMAC signature and an SMS gateway receiver that
//! checks the Twilio-shaped form (both real HTTP servers). Nothing inside the control plane
//! is mocked; alerts come from the sweeper (CAMERA_OFFLINE) or the store's own alert calls,
//! and tests that need time to pass (backoff, breaker cooldown, quiet hours, digests) step
//! the notifier's manual clock.

#[path = "support/peers.rs"]
mod peers;
mod support;

use std::time::Duration;

use axum::http::StatusCode;
use camstream_controlplane::notify::{Clock, ManualClock};
use camstream_controlplane::store::notify::Delivery;
use camstream_controlplane::store::{NewAlert, Store};
use camstream_protocol::StreamState;
use peers::{Receiver, SmtpSink, until};
use serde_json::{Value, json};
use support::TestApp;

const SECRET: &str = "whsec-test-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(30);

async fn call_ok(app: &TestApp, method: &str, path: &str, who: &str, body: Option<Value>) -> Value {
    let r = app.call(method, path, Some(who), body).await;
    assert!(
        r.status.is_success(),
        "{method} {path}: {} {}",
        r.status,
        r.json
    );
    r.json["data"].clone()
}

async fn deliveries(store: &dyn Store) -> Vec<Delivery> {
    store.list_deliveries(None, 0, 100).await.unwrap().0
}

fn alert(kind: &str, severity: &str, cause: &str, company: Option<&str>) -> NewAlert {
    NewAlert {
        kind: kind.into(),
        severity: severity.into(),
        message: format!("{kind} because of {cause}"),
        cause: Some(cause.into()),
        company: company.map(str::to_owned),
        ..NewAlert::default()
    }
}

/// A `/metrics` sample line's value.
async fn metric(app: &TestApp, line_prefix: &str) -> Option<f64> {
    let m = app.call("GET", "/metrics", None, None).await;
    let text = String::from_utf8(m.bytes).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix))?
        .trim()
        .parse()
        .ok()
}

/// The end-to-end case: a publishing camera stops → CAMERA_OFFLINE after a
/// shortened threshold → exactly one email, one SMS and one webhook; it comes back →
/// resolved, delivered once each too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_camera_is_delivered_once_per_channel_and_so_is_its_return() {
    let dir = support::temp_dir("notify-e2e");
    let smtp = SmtpSink::start(&dir).await;
    let rx = Receiver::start(SECRET).await;
    rx.require_sms_auth("AC123:sms-token");
    let (smtp_url, sms_url) = (smtp.url(), rx.sms_url());
    let app = TestApp::start(move |c| {
        c.alert_offline_after = Duration::from_secs(1);
        c.notify.smtp_url = Some(smtp_url);
        c.notify.smtp_from = "alerts@camstream.test".into();
        c.notify.sms_url = Some(sms_url);
        c.notify.sms_auth = Some("AC123:sms-token".into());
        c.notify.sms_from = Some("+15550000000".into());
        c.notify.poll = Duration::from_millis(100);
        c.notify.private_targets = true;
    })
    .await;
    let admin = app.admin().await;
    let (acme, _) = app.user(&admin, "acme-op", "operator", Some("acme")).await;
    let (viewer, _) = app.user(&admin, "acme-view", "viewer", Some("acme")).await;
    let (globex, _) = app
        .user(&admin, "globex-op", "operator", Some("globex"))
        .await;
    call_ok(
        &app,
        "PUT",
        "/api/v1/users/me/notification-preferences",
        &acme,
        Some(json!({
            "email": "ops@acme.test", "phone": "+15551234567",
            "channels": { "critical": ["email", "sms"] }
        })),
    )
    .await;
    // Another tenant asks for everything too, and must get nothing.
    call_ok(
        &app,
        "PUT",
        "/api/v1/users/me/notification-preferences",
        &globex,
        Some(json!({ "email": "ops@globex.test", "channels": { "critical": ["email"], "warning": ["email"] } })),
    )
    .await;
    let hook = call_ok(
        &app,
        "POST",
        "/api/v1/notification-channels",
        &acme,
        Some(json!({
            "name": "acme pager", "kind": "webhook", "target": rx.hook_url(),
            "secret": SECRET, "minSeverity": "warning"
        })),
    )
    .await;
    assert_eq!(hook["company"], "acme", "{hook}");
    // Viewers manage no channels; another tenant does not see this one.
    let r = app
        .call("GET", "/api/v1/notification-channels", Some(&viewer), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let theirs = call_ok(&app, "GET", "/api/v1/notification-channels", &globex, None).await;
    assert_eq!(theirs, json!([]));

    let cam = app.camera(&acme, "Gate", "NT-1", None).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.cp
        .report_health(vec![support::health(&cam, StreamState::Online)])
        .await
        .unwrap();
    app.cp
        .report_health(vec![support::health(&cam, StreamState::Offline)])
        .await
        .unwrap();
    let went = std::time::Instant::now();
    until(
        "the opened alert by email, SMS and webhook",
        WAIT,
        async || {
            (smtp.messages().len() == 1
                && rx.delivered_hooks().len() == 1
                && rx.delivered_sms().len() == 1)
                .then_some(())
        },
    )
    .await;
    eprintln!(
        "CAMERA_OFFLINE delivered {:?} after the camera went offline",
        went.elapsed()
    );
    let mail = &smtp.messages()[0];
    assert!(mail.contains("X-Rcpt: ops@acme.test"), "{mail}");
    assert!(mail.contains("From: alerts@camstream.test"), "{mail}");
    assert!(
        mail.contains("Subject: [camstream] CRITICAL CAMERA_OFFLINE opened"),
        "{mail}"
    );
    assert!(mail.contains(&cam), "{mail}");
    let h = &rx.delivered_hooks()[0];
    let body = h.json.as_ref().expect("webhook JSON");
    assert_eq!(body["event"], "opened");
    assert_eq!(body["kind"], "CAMERA_OFFLINE");
    assert_eq!(body["cameraId"], cam.as_str());
    assert_eq!(body["company"], "acme");
    assert_eq!(body["deliveryId"].as_str(), h.delivery.as_deref());
    let sms = &rx.delivered_sms()[0];
    let field = |k: &str| {
        sms.form
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(field("To"), "+15551234567");
    assert_eq!(field("From"), "+15550000000");
    assert!(
        field("Body").contains("critical CAMERA_OFFLINE opened"),
        "{sms:?}"
    );

    // It comes back: resolved, once each.
    app.cp
        .report_health(vec![support::health(&cam, StreamState::Online)])
        .await
        .unwrap();
    until(
        "the resolved alert by email, SMS and webhook",
        WAIT,
        async || {
            (smtp.messages().len() == 2
                && rx.delivered_hooks().len() == 2
                && rx.delivered_sms().len() == 2)
                .then_some(())
        },
    )
    .await;
    assert!(smtp.messages()[1].contains("CAMERA_OFFLINE resolved"));
    assert_eq!(
        rx.delivered_hooks()[1].json.as_ref().unwrap()["event"],
        "resolved"
    );
    // More sweeps (every 5 s) and outbox re-reads change nothing.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(smtp.messages().len(), 2);
    assert_eq!(rx.hits().len(), 4, "{:?}", rx.hits());
    assert!(rx.problems().is_empty(), "{:?}", rx.problems());
    assert!(!smtp.messages().iter().any(|m| m.contains("globex")));
    // The admin's view of the queue: six deliveries, all sent.
    let all = call_ok(
        &app,
        "GET",
        "/api/v1/notifications/deliveries?state=sent",
        &admin,
        None,
    )
    .await;
    assert_eq!(all.as_array().unwrap().len(), 6, "{all}");
    let r = app
        .call("GET", "/api/v1/notifications/deliveries", Some(&acme), None)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        metric(&app, "camstream_notify_sent_total{channel=\"email\"} ")
            .await
            .unwrap_or(0.0)
            >= 2.0
    );
}

/// A failing webhook: retries with a doubling backoff ceiling, the breaker opens after 3
/// failures (the delivery then waits without spending attempts), one probe after the
/// cooldown closes it; a delivery that keeps failing ends dead after 5 attempts and the
/// admin's retry sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_retries_back_off_trip_the_breaker_and_end_as_dead_letters_an_admin_retries() {
    let clock = ManualClock::new(1_800_000_000_000);
    let rx = Receiver::start(SECRET).await;
    rx.set_failing(true);
    let c2 = clock.clone();
    let app = TestApp::start(move |c| {
        c.notify.clock = c2;
        c.notify.poll = Duration::from_millis(50);
        c.notify.private_targets = true;
        c.notify.breaker_failures = 3;
        c.notify.breaker_cooldown = Duration::from_secs(60);
        c.notify.backoff_base = Duration::from_secs(1);
        c.notify.backoff_max = Duration::from_secs(3600);
        c.notify.max_attempts = 5;
    })
    .await;
    let admin = app.admin().await;
    let store = app.cp.store();
    // The admins' channel (no company) takes alerts without a tenant.
    call_ok(
        &app,
        "POST",
        "/api/v1/notification-channels",
        &admin,
        Some(json!({ "name": "ops hook", "kind": "webhook", "target": rx.hook_url(), "secret": SECRET })),
    )
    .await;
    let breaker = format!(
        "camstream_notify_breaker_state{{destination=\"webhook:{}\"}} ",
        rx.addr
    );
    let a1 = store
        .create_alert(alert("STORAGE_FULL", "critical", "disk-1", None))
        .await
        .unwrap();
    let get = async |attempts: i64| -> Delivery {
        until(&format!("attempt {attempts}"), WAIT, async || {
            deliveries(&*store).await.into_iter().find(|d| {
                d.alert_id.as_deref() == Some(&a1.id)
                    && d.attempts == attempts
                    && d.state == "pending"
            })
        })
        .await
    };
    let mut d = get(1).await;
    for n in 1..=2_i64 {
        let delay = d.next_attempt_at - clock.now_ms();
        let ceiling = 1000 << (n - 1);
        eprintln!("retry {n}: delay {delay} ms (ceiling {ceiling} ms)");
        assert!((0..=ceiling).contains(&delay), "retry {n}: {delay} ms");
        clock.set(d.next_attempt_at);
        d = get(n + 1).await;
    }
    // Three failures in a row: open.
    assert_eq!(rx.hits().len(), 3);
    until("the breaker gauge to show open", WAIT, async || {
        (metric(&app, &breaker).await == Some(1.0)).then_some(())
    })
    .await;
    let opened_at = clock.now_ms();
    // The retry comes due while the breaker is open: it waits for the cooldown, attempts
    // unchanged, nothing sent.
    clock.set(d.next_attempt_at);
    let held = until("the delivery held by the open breaker", WAIT, async || {
        deliveries(&*store).await.into_iter().find(|x| {
            x.id == d.id && x.state == "pending" && x.next_attempt_at == opened_at + 60_000
        })
    })
    .await;
    assert_eq!(held.attempts, 3);
    assert_eq!(rx.hits().len(), 3);
    // The receiver recovers; after the cooldown one probe goes and closes the breaker.
    rx.set_failing(false);
    clock.set(opened_at + 60_000);
    until("the probe to deliver", WAIT, async || {
        deliveries(&*store)
            .await
            .into_iter()
            .find(|x| x.id == d.id && x.state == "sent")
    })
    .await;
    assert_eq!(rx.delivered_hooks().len(), 1);
    assert_eq!(rx.hits().len(), 4);
    until("the breaker gauge to show closed", WAIT, async || {
        (metric(&app, &breaker).await == Some(0.0)).then_some(())
    })
    .await;

    // A delivery that keeps failing: 3 retries open the breaker, each probe fails, the
    // fifth attempt makes it a dead letter.
    rx.set_failing(true);
    let a2 = store
        .create_alert(alert("STORAGE_FULL", "critical", "disk-2", None))
        .await
        .unwrap();
    let mut attempts = 0;
    let dead = loop {
        let d = until("the next attempt", WAIT, async || {
            deliveries(&*store).await.into_iter().find(|x| {
                x.alert_id.as_deref() == Some(&a2.id)
                    && x.state != "sending"
                    && (x.attempts > attempts || x.state == "dead")
            })
        })
        .await;
        attempts = d.attempts;
        if d.state == "dead" {
            break d;
        }
        assert!(attempts < 5, "{d:?}");
        // Past any backoff (at most 4 s here) and the breaker cooldown.
        clock.advance(61_000);
    };
    assert_eq!(dead.attempts, 5);
    assert!(
        dead.last_error.as_deref().unwrap_or("").contains("500"),
        "{dead:?}"
    );
    assert_eq!(rx.hits().len(), 9, "4 before, 5 attempts now");
    let letters = call_ok(
        &app,
        "GET",
        "/api/v1/notifications/dead-letters",
        &admin,
        None,
    )
    .await;
    assert_eq!(letters.as_array().unwrap().len(), 1, "{letters}");
    assert_eq!(letters[0]["id"], dead.id.as_str());
    // Operators cannot retry; the admin can, once.
    let (op, _) = app.user(&admin, "acme-op2", "operator", Some("acme")).await;
    let path = format!("/api/v1/notifications/dead-letters/{}/retry", dead.id);
    assert_eq!(
        app.call("POST", &path, Some(&op), None).await.status,
        StatusCode::FORBIDDEN
    );
    let again = call_ok(&app, "POST", &path, &admin, None).await;
    assert_eq!(again["state"], "pending");
    assert_eq!(again["attempts"], 0);
    let r = app.call("POST", &path, Some(&admin), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.json);
    rx.set_failing(false);
    clock.advance(61_000);
    until(
        "the retried dead letter to be delivered",
        WAIT,
        async || {
            deliveries(&*store)
                .await
                .into_iter()
                .find(|x| x.id == dead.id && x.state == "sent")
        },
    )
    .await;
    assert_eq!(rx.delivered_hooks().len(), 2);
    assert!(rx.problems().is_empty(), "{:?}", rx.problems());
    assert!(
        metric(&app, "camstream_notify_dead_total{channel=\"webhook\"} ")
            .await
            .unwrap_or(0.0)
            >= 1.0
    );
}

fn ms(s: &str) -> i64 {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap();
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

/// Quiet hours (Europe/Berlin, overnight) hold a warning until 07:00 local but let a
/// critical alert through; a digest user gets one email listing the hour's warnings; an
/// `escalated` event reaches exactly the user and channel it names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_hours_digest_and_escalation_follow_the_clock() {
    // 23:30 in Berlin (UTC+1 in December).
    let clock = ManualClock::new(ms("2026-12-07T22:30:00Z"));
    let dir = support::temp_dir("notify-quiet");
    let smtp = SmtpSink::start(&dir).await;
    let rx = Receiver::start(SECRET).await;
    let (c2, smtp_url) = (clock.clone(), smtp.url());
    let app = TestApp::start(move |c| {
        c.notify.clock = c2;
        c.notify.poll = Duration::from_millis(50);
        c.notify.private_targets = true;
        c.notify.smtp_url = Some(smtp_url);
    })
    .await;
    let admin = app.admin().await;
    let store = app.cp.store();
    let (night, _) = app.user(&admin, "night-op", "operator", Some("acme")).await;
    let (digest, _) = app
        .user(&admin, "digest-op", "operator", Some("acme"))
        .await;
    let (_, esc_id) = app.user(&admin, "esc-op", "operator", Some("acme")).await;
    call_ok(
        &app,
        "PUT",
        &format!("/api/v1/users/{esc_id}"),
        &admin,
        Some(json!({ "email": "esc@acme.test" })),
    )
    .await;
    let p = call_ok(
        &app,
        "PUT",
        "/api/v1/users/me/notification-preferences",
        &night,
        Some(json!({
            "email": "night@acme.test",
            "channels": { "warning": ["email"], "critical": ["email"] },
            "quietStart": "22:00", "quietEnd": "07:00", "timeZone": "Europe/Berlin"
        })),
    )
    .await;
    assert_eq!(p["timeZone"], "Europe/Berlin");
    let r = app
        .call(
            "PUT",
            "/api/v1/users/me/notification-preferences",
            Some(&night),
            Some(json!({ "quietStart": "22:00", "quietEnd": "07:00", "timeZone": "Mars/Olympus" })),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.json);
    call_ok(
        &app,
        "PUT",
        "/api/v1/users/me/notification-preferences",
        &digest,
        Some(json!({
            "email": "digest@acme.test",
            "channels": { "warning": ["email"], "critical": ["email"] },
            "digest": true, "digestIntervalMinutes": 60
        })),
    )
    .await;
    // Only critical alerts and what an escalation names reach this channel.
    let hook = call_ok(
        &app,
        "POST",
        "/api/v1/notification-channels",
        &admin,
        Some(
            json!({ "name": "acme critical", "kind": "webhook", "target": rx.hook_url(),
                     "secret": SECRET, "minSeverity": "critical", "company": "acme" }),
        ),
    )
    .await;
    let hook_id = hook["id"].as_str().unwrap().to_owned();

    let w1 = store
        .create_alert(alert("LOGIN_FAILURES", "warning", "w1", Some("acme")))
        .await
        .unwrap();
    let held = until(
        "the night user's warning to be queued for 07:00 Berlin",
        WAIT,
        async || {
            deliveries(&*store)
                .await
                .into_iter()
                .find(|d| d.target == "night@acme.test")
        },
    )
    .await;
    assert_eq!(held.next_attempt_at, ms("2026-12-08T06:00:00Z"), "{held:?}");
    assert_eq!(held.state, "pending");
    // Critical goes through quiet hours and past the digest.
    store
        .create_alert(alert("STORAGE_FULL", "critical", "c1", Some("acme")))
        .await
        .unwrap();
    until(
        "the critical alert to both users and the webhook",
        WAIT,
        async || (smtp.messages().len() == 2 && rx.delivered_hooks().len() == 1).then_some(()),
    )
    .await;
    let mails = smtp.messages();
    assert!(
        mails
            .iter()
            .any(|m| m.contains("X-Rcpt: night@acme.test") && m.contains("STORAGE_FULL"))
    );
    assert!(
        mails
            .iter()
            .any(|m| m.contains("X-Rcpt: digest@acme.test") && m.contains("STORAGE_FULL"))
    );
    store
        .create_alert(alert("LOGIN_FAILURES", "warning", "w2", Some("acme")))
        .await
        .unwrap();

    // Escalation of w1: exactly the named user (no preferences: the account's address) and
    // the named channel (its severity floor does not apply to an escalation).
    // Another tenant's user and channel named in the list get nothing.
    let (_, foreign_id) = app
        .user(&admin, "globex-op", "operator", Some("globex"))
        .await;
    call_ok(
        &app,
        "PUT",
        &format!("/api/v1/users/{foreign_id}"),
        &admin,
        Some(json!({ "email": "op@globex.test" })),
    )
    .await;
    let foreign = call_ok(
        &app,
        "POST",
        "/api/v1/notification-channels",
        &admin,
        Some(json!({ "name": "globex mail", "kind": "email", "target": "desk@globex.test", "company": "globex" })),
    )
    .await;
    let data = json!({ "step": 1, "afterMinutes": 5, "userIds": [esc_id, foreign_id],
                       "channelIds": [hook_id, foreign["id"]] });
    store
        .record_alert_event(&w1.id, "escalated", None, Some(&data.to_string()))
        .await
        .unwrap()
        .expect("the alert exists");
    until("the escalation by email and webhook", WAIT, async || {
        (smtp.messages().len() == 3 && rx.delivered_hooks().len() == 2).then_some(())
    })
    .await;
    let esc = smtp
        .messages()
        .into_iter()
        .find(|m| m.contains("X-Rcpt: esc@acme.test"))
        .expect("escalation mail");
    assert!(
        esc.contains("LOGIN_FAILURES escalated") && esc.contains("Escalation step: 1"),
        "{esc}"
    );
    let body = rx.delivered_hooks()[1].json.clone().unwrap();
    assert_eq!(body["event"], "escalated");
    assert_eq!(body["escalation"]["userIds"][0], esc_id.as_str());

    // The digest window (22:00–23:00 UTC) closes: one email with both warnings.
    clock.set(ms("2026-12-07T23:00:00Z"));
    let dmail = until("the digest", WAIT, async || {
        smtp.messages().into_iter().find(|m| {
            m.contains("X-Rcpt: digest@acme.test") && m.contains("Subject: [camstream] digest")
        })
    })
    .await;
    assert!(dmail.contains("2 alert events"), "{dmail}");
    // The body is quoted-printable: undo its soft line breaks.
    let flat = dmail.replace("=\r\n", "").replace("=\n", "");
    assert!(
        flat.contains("because of w1") && flat.contains("because of w2"),
        "{dmail}"
    );
    assert_eq!(smtp.messages().len(), 4);
    // Still quiet for the night user at 06:59 UTC-equivalent... until 07:00 Berlin.
    clock.set(ms("2026-12-08T05:59:00Z"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.messages().len(), 4);
    clock.set(ms("2026-12-08T06:00:00Z"));
    until("the night user's held warnings", WAIT, async || {
        (smtp
            .messages()
            .iter()
            .filter(|m| m.contains("X-Rcpt: night@acme.test"))
            .count()
            == 3)
            .then_some(())
    })
    .await;
    assert_eq!(smtp.messages().len(), 6);
    assert!(
        !smtp.messages().iter().any(|m| m.contains("globex.test")),
        "a foreign escalation target got mail"
    );
    assert!(rx.problems().is_empty(), "{:?}", rx.problems());
}

/// Two control planes on one PostgreSQL both read the outbox and both run workers: every
/// event is enqueued once and delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_deliver_each_event_once() {
    let pg = support::Postgres::start();
    let url = pg.database().await;
    let rx = Receiver::start(SECRET).await;
    let node = |url: String| {
        move |c: &mut camstream_controlplane::ControlPlaneConfig| {
            c.database_url = Some(url);
            c.notify.poll = Duration::from_millis(50);
            c.notify.private_targets = true;
        }
    };
    let a = TestApp::start(node(url.clone())).await;
    let b = TestApp::start(node(url.clone())).await;
    let admin = a.admin().await;
    call_ok(
        &a,
        "POST",
        "/api/v1/notification-channels",
        &admin,
        Some(json!({ "name": "ops hook", "kind": "webhook", "target": rx.hook_url(), "secret": SECRET })),
    )
    .await;
    // Alerts raised through both nodes' stores.
    for i in 0..10 {
        let app = if i % 2 == 0 { &a } else { &b };
        app.cp
            .store()
            .create_alert(alert(
                "STORAGE_FULL",
                "critical",
                &format!("disk-{i}"),
                None,
            ))
            .await
            .unwrap();
    }
    until("ten deliveries", WAIT, async || {
        (rx.delivered_hooks().len() >= 10).then_some(())
    })
    .await;
    // Both nodes keep polling (and re-reading the outbox window): nothing more arrives.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 10, "{hits:?}");
    let mut ids: Vec<String> = hits.iter().filter_map(|h| h.delivery.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 10);
    let rows = deliveries(&*a.cp.store()).await;
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|d| d.state == "sent"), "{rows:?}");
    assert!(rx.problems().is_empty(), "{:?}", rx.problems());
}

/// Webhook URLs are chosen by tenant operators: by default they may not point at the
/// server's own network (loopback, private, link-local such as the cloud metadata address),
/// a channel naming one is refused with the flag that allows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_to_the_servers_own_network_are_refused_by_default() {
    let app = TestApp::start(|_| {}).await;
    let admin = app.admin().await;
    let (acme, _) = app.user(&admin, "acme-op", "operator", Some("acme")).await;
    for target in [
        "http://127.0.0.1:8080/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://10.0.0.5/hook",
        "http://localhost:9000/hook",
    ] {
        let r = app
            .call(
                "POST",
                "/api/v1/notification-channels",
                Some(&acme),
                Some(json!({ "name": "inward", "kind": "webhook", "target": target })),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{target}: {}", r.json);
        let msg = r.json["error"]["message"].as_str().unwrap_or_default();
        assert!(
            msg.contains("--notify-private-targets"),
            "{target}: {}",
            r.json
        );
    }
    let ok = call_ok(
        &app,
        "POST",
        "/api/v1/notification-channels",
        &acme,
        Some(json!({ "name": "outward", "kind": "webhook", "target": "https://hooks.example.com/x" })),
    )
    .await;
    assert_eq!(ok["kind"], "webhook", "{ok}");
}
