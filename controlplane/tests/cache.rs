//! The cache suite: the same checks against a real `redis-server` started by the test and
//! against the in-memory cache. TTLs are real (short) so both run on the wall clock; waits
//! poll with a deadline instead of sleeping a fixed time.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use camstream_controlplane::cache::{Cache, MemoryCache, RedisCache, keys};

async fn gone_within(c: &dyn Cache, key: &str, deadline: Duration) -> bool {
    let end = Instant::now() + deadline;
    while Instant::now() < end {
        if c.get(key).await.unwrap().is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn suite(c: Arc<dyn Cache>) {
    // get/set/del.
    let k = keys::session("s1");
    assert_eq!(k, "session:s1");
    assert_eq!(c.get(&k).await.unwrap(), None);
    c.set(&k, "user-1", None).await.unwrap();
    assert_eq!(c.get(&k).await.unwrap().as_deref(), Some("user-1"));
    assert_eq!(c.ttl(&k).await.unwrap(), None, "no expiry set");
    c.set(&k, "user-2", Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(c.get(&k).await.unwrap().as_deref(), Some("user-2"));
    let ttl = c.ttl(&k).await.unwrap().expect("has ttl");
    assert!(
        ttl > Duration::from_secs(3590) && ttl <= Duration::from_secs(3600),
        "{ttl:?}"
    );
    assert!(c.del(&k).await.unwrap());
    assert!(!c.del(&k).await.unwrap());
    assert_eq!(c.get(&k).await.unwrap(), None);

    // Values are opaque text (JSON, unicode).
    let status = keys::stream_status("cam-1");
    assert_eq!(status, "stream:status:cam-1");
    let json = r#"{"status":"online","name":"Caméra ☃"}"#;
    c.set(&status, json, Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(c.get(&status).await.unwrap().as_deref(), Some(json));

    // Expiry.
    let short = "test:short";
    c.set(short, "x", Some(Duration::from_millis(300)))
        .await
        .unwrap();
    assert_eq!(c.get(short).await.unwrap().as_deref(), Some("x"));
    assert!(
        gone_within(&*c, short, Duration::from_secs(3)).await,
        "expired"
    );
    assert_eq!(c.ttl(short).await.unwrap(), None);
    // Setting again without TTL clears the old expiry.
    c.set(short, "y", Some(Duration::from_millis(200)))
        .await
        .unwrap();
    c.set(short, "z", None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(c.get(short).await.unwrap().as_deref(), Some("z"));

    // Counters: fixed windows; the first increment sets the TTL, later ones keep it.
    let rl = keys::rate_limit("tok:abc", 42);
    assert_eq!(rl, "rate_limit:tok:abc:42");
    let a = c.incr(&rl, 1, Duration::from_secs(100)).await.unwrap();
    assert_eq!(a.value, 1);
    assert!(
        a.ttl > Duration::from_secs(95) && a.ttl <= Duration::from_secs(100),
        "{:?}",
        a.ttl
    );
    let b = c.incr(&rl, 5, Duration::from_secs(1000)).await.unwrap();
    assert_eq!(b.value, 6);
    assert!(
        b.ttl <= Duration::from_secs(100),
        "window kept: {:?}",
        b.ttl
    );
    assert_eq!(c.get(&rl).await.unwrap().as_deref(), Some("6"));
    let win = "test:window";
    assert_eq!(
        c.incr(win, 1, Duration::from_millis(300))
            .await
            .unwrap()
            .value,
        1
    );
    assert_eq!(
        c.incr(win, 1, Duration::from_millis(300))
            .await
            .unwrap()
            .value,
        2
    );
    assert!(gone_within(&*c, win, Duration::from_secs(3)).await);
    assert_eq!(
        c.incr(win, 1, Duration::from_secs(10)).await.unwrap().value,
        1,
        "new window"
    );

    // Concurrent increments are not lost.
    let hot = "test:hot";
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..50 {
        let c = c.clone();
        tasks.spawn(async move { c.incr(hot, 1, Duration::from_secs(60)).await.unwrap().value });
    }
    let mut seen = Vec::new();
    while let Some(v) = tasks.join_next().await {
        seen.push(v.unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (1..=50).collect::<Vec<_>>());

    // The other key shapes of the design.
    assert_eq!(
        keys::analytics("cam", "2026-11-30"),
        "analytics:camera:cam:2026-11-30"
    );
    assert_eq!(keys::viewers("cam"), "viewers:cam");
}

#[tokio::test]
async fn cache_suite_memory() {
    let c = Arc::new(MemoryCache::default());
    assert_eq!(c.backend(), "memory");
    suite(c).await;
}

#[tokio::test]
async fn cache_suite_redis() {
    let server = support::Redis::start();
    let c = Arc::new(RedisCache::connect(&server.url()).await.unwrap());
    assert_eq!(c.backend(), "redis");
    suite(c).await;
}

#[tokio::test]
async fn redis_unreachable_is_an_error() {
    let port = support::free_port();
    let r = RedisCache::connect(&format!("redis://127.0.0.1:{port}/")).await;
    assert!(r.is_err(), "nothing listens on {port}");
}
