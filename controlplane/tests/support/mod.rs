//! Test support: real PostgreSQL and Redis servers started by the tests themselves (no
//! service needs to be running; a missing binary fails the test), and an in-process API
//! client over `Router::oneshot`.
//!
//! PostgreSQL: `initdb` into a temp dir and `postgres` on a free loopback port, run as the
//! `postgres` user through `runuser` when the tests run as root (postgres refuses root).
//! Redis: `redis-server` on a free port with persistence off. Both are killed and their
//! directories removed on drop.

#![allow(dead_code, unreachable_pub)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use camstream_controlplane::{ControlPlane, ControlPlaneConfig};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a loopback port")
        .local_addr()
        .expect("local addr")
        .port()
}

/// A fresh directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("camstream-{tag}-{}", uuid_like()));
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{t}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Finds a PostgreSQL server binary: `PATH`, then Debian's versioned directories.
fn pg_bin(name: &str) -> PathBuf {
    if let Ok(out) = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
    {
        let p = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if !p.is_empty() {
            return PathBuf::from(p);
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join("bin").join(name))
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .filter(|p| p.exists())
        .unwrap_or_else(|| panic!("PostgreSQL binary {name} not found: apt-get install postgresql"))
}

/// Runs `cmd` as the postgres user when we are root.
fn pg_command(bin: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

/// A private PostgreSQL server.
pub struct Postgres {
    child: Child,
    dir: PathBuf,
    port: u16,
    root: bool,
}

impl Postgres {
    /// Initializes and starts a server; panics (fails the test) when it cannot.
    pub fn start() -> Self {
        let root = is_root();
        let dir = temp_dir("pg");
        if root {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown")
                .success();
            assert!(
                ok,
                "chown the postgres data dir (is there a postgres user?)"
            );
        }
        let data = dir.join("data");
        let out = pg_command(&pg_bin("initdb"), root)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .stdout(Stdio::null())
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let child = pg_command(&pg_bin("postgres"), root)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(&dir)
            .args([
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn postgres");
        let pg = Self {
            child,
            dir,
            port,
            root,
        };
        pg.wait_ready();
        pg
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let ready = pg_bin("pg_isready");
        loop {
            let ok = Command::new(&ready)
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "postgres",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "postgres did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The URL of the `postgres` database.
    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Creates a fresh database and returns its URL.
    pub async fn database(&self) -> String {
        use sqlx::Connection;
        let name = format!("t_{}", uuid_like().replace('-', "_"));
        let mut conn = sqlx::PgConnection::connect(&self.admin_url())
            .await
            .expect("connect to postgres");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create database");
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Under runuser the child is runuser, not postgres: stop the server itself.
        let _ = pg_command(&pg_bin("pg_ctl"), self.root)
            .arg("stop")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private Redis server.
pub struct Redis {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Redis {
    /// Starts `redis-server`; panics (fails the test) when it cannot.
    pub fn start() -> Self {
        let dir = temp_dir("redis");
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server not runnable ({e}): apt-get install redis-server")
            });
        let r = Self { child, dir, port };
        r.wait_ready();
        r
    }

    fn wait_ready(&self) {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let mut buf = [0u8; 16];
                if s.write_all(b"PING\r\n").is_ok()
                    && s.read(&mut buf)
                        .is_ok_and(|n| buf[..n].starts_with(b"+PONG"))
                {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "redis did not become ready");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `redis://127.0.0.1:port/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The first admin's password in test apps.
pub const ADMIN_PASSWORD: &str = "Test-Root-Pass-1";

/// A control plane over a temp data dir (SQLite + in-memory cache unless configured).
pub struct TestApp {
    pub cp: ControlPlane,
    pub router: Router,
    pub dir: PathBuf,
}

impl TestApp {
    /// Starts with defaults plus `tweak`.
    pub async fn start(tweak: impl FnOnce(&mut ControlPlaneConfig)) -> Self {
        let dir = temp_dir("cp");
        let mut config = ControlPlaneConfig {
            data_dir: dir.clone(),
            admin_password: Some(ADMIN_PASSWORD.into()),
            ..ControlPlaneConfig::default()
        };
        tweak(&mut config);
        let cp = ControlPlane::start(config)
            .await
            .expect("control plane starts");
        let router = cp.router();
        Self { cp, router, dir }
    }

    /// Sends one request.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut b = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b
                .header("content-type", "application/json")
                .body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        }
        .expect("request");
        self.send(req).await
    }

    /// Sends a prepared request.
    pub async fn send(&self, req: Request<Body>) -> Resp {
        let res = self.router.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            json,
            bytes: bytes.to_vec(),
        }
    }

    /// Logs in and returns (access, refresh).
    pub async fn login(&self, username: &str, password: &str) -> (String, String) {
        let r = self
            .call(
                "POST",
                "/api/v1/auth/login",
                None,
                Some(serde_json::json!({ "username": username, "password": password })),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "login {username}: {}", r.json);
        (
            r.json["data"]["accessToken"]
                .as_str()
                .expect("access")
                .to_owned(),
            r.json["data"]["refreshToken"]
                .as_str()
                .expect("refresh")
                .to_owned(),
        )
    }

    /// The admin's access token.
    pub async fn admin(&self) -> String {
        self.login("admin", ADMIN_PASSWORD).await.0
    }

    /// Creates a user (as `admin_token`) and returns their access token and id.
    pub async fn user(
        &self,
        admin_token: &str,
        name: &str,
        role: &str,
        company: Option<&str>,
    ) -> (String, String) {
        let password = "User-Password-42";
        let r = self
            .call(
                "POST",
                "/api/v1/users",
                Some(admin_token),
                Some(serde_json::json!({
                    "username": name, "password": password, "role": role, "company": company
                })),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        let id = r.json["data"]["id"].as_str().expect("id").to_owned();
        (self.login(name, password).await.0, id)
    }

    /// Creates a camera and returns its JSON.
    pub async fn camera(
        &self,
        token: &str,
        name: &str,
        serial: &str,
        company: Option<&str>,
    ) -> Value {
        let r = self
            .call(
                "POST",
                "/api/v1/cameras",
                Some(token),
                Some(
                    serde_json::json!({ "name": name, "serialNumber": serial, "company": company }),
                ),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.json);
        r.json["data"].clone()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub json: Value,
    pub bytes: Vec<u8>,
}

impl Resp {
    /// The error code of an error envelope.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("<none>")
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A healthy-looking stream report for `camera` (25 fps, 1 Mbit/s, 720p) in `state`.
pub fn health(
    camera: &str,
    state: camstream_protocol::StreamState,
) -> camstream_protocol::StreamHealth {
    health_at_fps(camera, state, 25.0)
}

/// As [`health`], at `fps` frames per second (stream-quality rules look at it).
pub fn health_at_fps(
    camera: &str,
    state: camstream_protocol::StreamState,
    fps: f32,
) -> camstream_protocol::StreamHealth {
    camstream_protocol::StreamHealth {
        camera_id: camera.into(),
        state,
        fps,
        bitrate_bps: 1_000_000,
        dropped_frames: 0,
        resolution: Some((1280, 720)),
        codecs: vec!["avc1.64001f".into()],
        viewers: 0,
        bytes_in: 1,
        bytes_out: 0,
        since: std::time::SystemTime::now(),
        last_seen: std::time::SystemTime::now(),
    }
}
