//! Real peers for the notification tests: an SMTP server (aiosmtpd, a Python process this
//! module starts, installed into a venv under `target/testdata` when missing: a failed
//! install fails the test), and one HTTP receiver (axum on a loopback port) that takes
//! webhooks at `/hook` (checking the HMAC-SHA256 signature) and SMS at `/sms` (checking the
//! Twilio-shaped form and basic auth). The receiver can be told to fail (500) to exercise
//! retries and the circuit breaker.

#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// `target/testdata` (beside the test binaries' tmp dir).
fn testdata() -> PathBuf {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp
        .parent()
        .map_or(tmp.clone(), PathBuf::from)
        .join("testdata");
    std::fs::create_dir_all(&dir).expect("create target/testdata");
    dir
}

/// A Python that can import aiosmtpd: the system one, or a venv made (once) here.
pub fn aiosmtpd_python() -> PathBuf {
    let has = |py: &Path| {
        Command::new(py)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let system = PathBuf::from("python3");
    if has(&system) {
        return system;
    }
    let venv = testdata().join("aiosmtpd-venv");
    let py = venv.join("bin").join("python");
    if has(&py) {
        return py;
    }
    let out = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .expect("run python3 (is it installed?)");
    assert!(
        out.status.success(),
        "python3 -m venv (apt-get install python3-venv): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(&py)
        .args(["-m", "pip", "install", "--quiet", "aiosmtpd"])
        .output()
        .expect("run pip");
    assert!(
        out.status.success() && has(&py),
        "pip install aiosmtpd failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    py
}

/// An aiosmtpd server writing each message into `dir`; killed on drop.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl SmtpSink {
    /// Starts it on a free port and waits for READY.
    pub async fn start(dir: &Path) -> SmtpSink {
        let dir = dir.join("mail");
        std::fs::create_dir_all(&dir).expect("mail dir");
        let d = dir.clone();
        tokio::task::spawn_blocking(move || {
            let py = aiosmtpd_python();
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/smtp_sink.py");
            let script = if script.exists() {
                script
            } else {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("controlplane/tests/support/smtp_sink.py")
            };
            let mut child = Command::new(py)
                .arg(script)
                .arg(port.to_string())
                .arg(&d)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn the SMTP sink");
            let mut line = String::new();
            BufReader::new(child.stdout.take().expect("stdout"))
                .read_line(&mut line)
                .expect("read READY");
            assert_eq!(line.trim(), "READY", "the SMTP sink did not start");
            SmtpSink {
                child,
                port,
                dir: d,
            }
        })
        .await
        .expect("smtp start")
    }

    /// `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .map(|r| {
                r.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "eml"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hit {
    /// `/hook` or `/sms`.
    pub path: &'static str,
    pub at: Instant,
    /// What the receiver answered.
    pub status: u16,
    pub body: String,
    /// The webhook JSON.
    pub json: Option<serde_json::Value>,
    /// The SMS form fields.
    pub form: Vec<(String, String)>,
    /// `X-Camstream-Delivery`.
    pub delivery: Option<String>,
}

#[derive(Default)]
struct Inner {
    secret: Mutex<String>,
    sms_auth: Mutex<Option<String>>,
    fail: AtomicBool,
    hits: Mutex<Vec<Hit>>,
    problems: Mutex<Vec<String>>,
}

/// A webhook + SMS gateway receiver.
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    task: tokio::task::JoinHandle<()>,
}

/// Verifies `X-Camstream-Signature` as docs/notifications.md says: `v1=` + hex of
/// HMAC-SHA256(secret, "{X-Camstream-Timestamp}.{body}"), timestamp within 5 minutes.
pub fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let ts = headers
        .get("x-camstream-timestamp")
        .and_then(|v| v.to_str().ok())
        .ok_or("no X-Camstream-Timestamp")?;
    let sig = headers
        .get("x-camstream-signature")
        .and_then(|v| v.to_str().ok())
        .ok_or("no X-Camstream-Signature")?;
    let t: i64 = ts.parse().map_err(|_| format!("bad timestamp {ts:?}"))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    if (now - t).abs() > 300 {
        return Err(format!("timestamp {t} is {}s off", now - t));
    }
    let hex = sig.strip_prefix("v1=").ok_or("no v1= prefix")?;
    let got: Vec<u8> = (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(ts.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&got)
        .map_err(|_| "signature mismatch".to_owned())
}

fn form_decode(s: &str) -> Vec<(String, String)> {
    let dec = |x: &str| {
        let b = x.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < b.len() => {
                    let h = std::str::from_utf8(&b[i + 1..(i + 3).min(b.len())]).unwrap_or("");
                    match u8::from_str_radix(h, 16) {
                        Ok(v) => {
                            out.push(v);
                            i += 2;
                        }
                        Err(_) => out.push(b'%'),
                    }
                }
                c => out.push(c),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (dec(k), dec(v))
        })
        .collect()
}

async fn hook(State(s): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let secret = s.secret.lock().unwrap().clone();
    let checked = verify(&secret, &headers, &body);
    let status = if let Err(e) = &checked {
        s.problems.lock().unwrap().push(format!("webhook: {e}"));
        StatusCode::UNAUTHORIZED
    } else if headers.get("content-type").and_then(|v| v.to_str().ok()) != Some("application/json")
    {
        s.problems
            .lock()
            .unwrap()
            .push("webhook: not application/json".into());
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    } else if s.fail.load(Ordering::SeqCst) {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    let text = String::from_utf8_lossy(&body).into_owned();
    s.hits.lock().unwrap().push(Hit {
        path: "/hook",
        at: Instant::now(),
        status: status.as_u16(),
        json: serde_json::from_str(&text).ok(),
        body: text,
        form: Vec::new(),
        delivery: headers
            .get("x-camstream-delivery")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    });
    status
}

async fn sms(State(s): State<Arc<Inner>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let text = String::from_utf8_lossy(&body).into_owned();
    let form = form_decode(&text);
    let mut problem = None;
    if headers.get("content-type").and_then(|v| v.to_str().ok())
        != Some("application/x-www-form-urlencoded")
    {
        problem = Some("sms: not a form".to_owned());
    }
    for f in ["To", "From", "Body"] {
        if !form.iter().any(|(k, _)| k == f) {
            problem = Some(format!("sms: no {f}"));
        }
    }
    let want = s.sms_auth.lock().unwrap().clone();
    if let Some(want) = want {
        use base64_lite::encode;
        let expected = format!("Basic {}", encode(want.as_bytes()));
        if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
            problem = Some("sms: wrong authorization".into());
        }
    }
    let status = match &problem {
        Some(p) => {
            s.problems.lock().unwrap().push(p.clone());
            StatusCode::BAD_REQUEST
        }
        None if s.fail.load(Ordering::SeqCst) => StatusCode::INTERNAL_SERVER_ERROR,
        None => StatusCode::CREATED,
    };
    s.hits.lock().unwrap().push(Hit {
        path: "/sms",
        at: Instant::now(),
        status: status.as_u16(),
        json: None,
        body: text,
        form,
        delivery: None,
    });
    status
}

/// Base64 for the expected basic-auth header (the tests' own, not the server's code).
mod base64_lite {
    pub fn encode(b: &[u8]) -> String {
        const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in b.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

impl Receiver {
    /// Starts on a free loopback port.
    pub async fn start(secret: &str) -> Receiver {
        Self::start_on("127.0.0.1:0".parse().unwrap(), secret).await
    }

    /// Starts on `addr` (a port chosen earlier, for a receiver that comes up late).
    pub async fn start_on(addr: SocketAddr, secret: &str) -> Receiver {
        let inner = Arc::new(Inner::default());
        *inner.secret.lock().unwrap() = secret.to_owned();
        let app = Router::new()
            .route("/hook", post(hook))
            .route("/sms", post(sms))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { addr, inner, task }
    }

    pub fn hook_url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn sms_url(&self) -> String {
        format!("http://{}/sms", self.addr)
    }

    /// The basic-auth `user:password` the SMS route requires.
    pub fn require_sms_auth(&self, userpass: &str) {
        *self.inner.sms_auth.lock().unwrap() = Some(userpass.to_owned());
    }

    /// Answer 500 to everything (or stop doing so).
    pub fn set_failing(&self, fail: bool) {
        self.inner.fail.store(fail, Ordering::SeqCst);
    }

    pub fn hits(&self) -> Vec<Hit> {
        self.inner.hits.lock().unwrap().clone()
    }

    /// Accepted webhooks (2xx) with a valid signature.
    pub fn delivered_hooks(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.path == "/hook" && h.status == 200)
            .collect()
    }

    /// Accepted SMS.
    pub fn delivered_sms(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.path == "/sms" && h.status == 201)
            .collect()
    }

    /// Signature, content-type and form problems seen (must stay empty).
    pub fn problems(&self) -> Vec<String> {
        self.inner.problems.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `f` every 100 ms until it returns `Some`, failing after `timeout`.
pub async fn until<T>(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
