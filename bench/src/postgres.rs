//! A private PostgreSQL for a relay run (a cluster needs one shared database), started as
//! the tests start theirs (`tests/common/services.rs`): `initdb` + `postgres` on a free
//! loopback port with trust authentication and fsync off, as the `postgres` user through
//! `runuser` when the harness runs as root. Missing programs fail the run with a clear
//! message; the server is stopped and its folder removed on [`Postgres::stop`] or drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// A running PostgreSQL.
#[derive(Debug)]
pub(crate) struct Postgres {
    child: Child,
    dir: PathBuf,
    port: u16,
    root: bool,
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().next() == Some("0"))
        })
        .unwrap_or(false)
}

/// A PostgreSQL program: `PATH`, then Debian's versioned folders.
fn pg_bin(name: &str) -> anyhow::Result<PathBuf> {
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path().join("bin").join(name))
                .collect()
        })
        .unwrap_or_default();
    debian.sort();
    debian.reverse();
    on_path
        .into_iter()
        .chain(debian)
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "PostgreSQL program {name} not found (a relay run needs a database): apt-get install postgresql"
            )
        })
}

fn pg_command(bin: &Path, root: bool) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

impl Postgres {
    /// Initializes a database cluster in a fresh folder under `parent` and starts it.
    ///
    /// # Errors
    /// PostgreSQL missing, `initdb` failing, or the server not ready within 30 s.
    pub(crate) fn start(parent: &Path) -> anyhow::Result<Self> {
        let root = is_root();
        let dir = parent.join(format!("camstream-bench-pg-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        if root {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .context("running chown")?
                .success();
            if !ok {
                bail!("chown of the PostgreSQL folder failed (is there a postgres user?)");
            }
        }
        let data = dir.join("data");
        let out = pg_command(&pg_bin("initdb")?, root)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"])
            .output()
            .context("running initdb")?;
        if !out.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(dir.join("postgres.log"))?;
        let child = pg_command(&pg_bin("postgres")?, root)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-h", "127.0.0.1", "-k"])
            .arg(&dir)
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "max_connections=300"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting postgres")?;
        let pg = Self {
            child,
            dir,
            port,
            root,
        };
        let ready = pg_bin("pg_isready")?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !Command::new(&ready)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            if Instant::now() > deadline {
                bail!(
                    "PostgreSQL not ready after 30 s; log:\n{}",
                    std::fs::read_to_string(pg.dir.join("postgres.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(pg)
    }

    /// `postgres://postgres@127.0.0.1:{port}/postgres`.
    pub(crate) fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Under runuser the child is runuser, not postgres: stop the server itself.
        if let Ok(ctl) = pg_bin("pg_ctl") {
            let _ = pg_command(&ctl, self.root)
                .arg("stop")
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "immediate", "-w"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
