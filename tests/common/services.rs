//! PostgreSQL and Redis as real peers of the control plane, started by the tests themselves
//! (the approach of `controlplane/tests/support`): `initdb` + `postgres` on a free loopback
//! port, run as the `postgres` user through `runuser` when the tests run as root (postgres
//! refuses root), and `redis-server` with persistence off. A missing binary fails the test;
//! nothing is skipped. Both servers are stopped and their directories removed on drop.
//!
//! Their command-line clients (`psql`, `redis-cli`) are the test's independent view of what
//! camstream wrote.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::scratch;

/// A free TCP port on 127.0.0.1 (bound, then released for the server to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A PostgreSQL program: `PATH`, then Debian's versioned directories.
fn pg_bin(name: &str) -> PathBuf {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    if !found.is_empty() {
        return PathBuf::from(found);
    }
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join("bin").join(name))
                .collect()
        })
        .unwrap_or_default();
    candidates.sort();
    candidates.pop().filter(|p| p.exists()).unwrap_or_else(|| {
        panic!("PostgreSQL program {name} not found: apt-get install postgresql")
    })
}

/// `bin` as the postgres user when we are root.
fn pg_command(bin: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

/// A private PostgreSQL server with trust authentication on 127.0.0.1.
pub(crate) struct Postgres {
    child: Child,
    dir: PathBuf,
    port: u16,
    root: bool,
}

impl Postgres {
    /// Initializes a cluster in a scratch directory named `name` and starts it.
    ///
    /// # Panics
    /// When PostgreSQL is missing or does not become ready within 30 s.
    pub(crate) async fn start(name: &str) -> Postgres {
        let dir = scratch(name);
        tokio::task::spawn_blocking(move || Self::start_blocking(dir))
            .await
            .expect("postgres start panicked")
    }

    fn start_blocking(dir: PathBuf) -> Postgres {
        let root = is_root();
        if root {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("run chown")
                .success();
            assert!(
                ok,
                "chown the postgres directory (is there a postgres user?)"
            );
        }
        let data = dir.join("data");
        let out = pg_command(&pg_bin("initdb"), root)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .output()
            .expect("run initdb");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let log = std::fs::File::create(dir.join("postgres.log")).expect("create postgres log");
        let child = pg_command(&pg_bin("postgres"), root)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(&dir)
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn postgres");
        let pg = Postgres {
            child,
            dir,
            port,
            root,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !Command::new(pg_bin("pg_isready"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(
                Instant::now() < deadline,
                "postgres did not become ready; log:\n{}",
                std::fs::read_to_string(pg.dir.join("postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        pg
    }

    /// `postgres://postgres@127.0.0.1:{port}/postgres`.
    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// One value from `psql -tA -c sql` (trimmed).
    pub(crate) async fn query(&self, sql: &str) -> String {
        let out = tokio::process::Command::new(pg_bin("psql"))
            .args([
                "-X",
                "-tA",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url(),
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
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

/// A private Redis server on 127.0.0.1 with persistence off.
pub(crate) struct Redis {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Redis {
    /// Starts `redis-server` in a scratch directory named `name`.
    ///
    /// # Panics
    /// When redis-server is missing or does not answer `PING` within 15 s.
    pub(crate) async fn start(name: &str) -> Redis {
        let dir = scratch(name);
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("redis-server not runnable ({e}): apt-get install redis-server")
            });
        let redis = Redis { child, dir, port };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while redis.cli(&["PING"]).await.as_deref() != Some("PONG") {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server did not answer PING"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        redis
    }

    /// `redis://127.0.0.1:{port}/`.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `redis-cli` with `args`: its trimmed output, or `None` when it failed (server not
    /// up yet).
    pub(crate) async fn cli(&self, args: &[&str]) -> Option<String> {
        let out = tokio::process::Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run redis-cli (is redis-tools installed?)");
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !text.starts_with("Could not connect")).then_some(text)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
