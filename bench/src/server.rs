//! The servers under test, started and stopped by the harness: camstream (`camstream
//! serve --allow-any-key`, every listener on a free loopback port, data dir on tmpfs) and
//! nginx with libnginx-mod-rtmp (its own prefix, config, pid and temp paths, `daemon off`,
//! RTMP → HLS TS with 2 s fragments on tmpfs, served by its http server; PEERS.md).
//!
//! Owns the URLs each server uses for publishing and playback, and its version string.
//! Measuring the processes is `procstat`'s.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::process::{Child, Command};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Kind {
    Camstream,
    Nginx,
}

impl Kind {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Camstream => "camstream",
            Self::Nginx => "nginx-rtmp",
        }
    }
}

/// How to reach a running server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Endpoints {
    pub(crate) kind: Kind,
    /// `127.0.0.1:port` of the RTMP listener.
    pub(crate) rtmp: String,
    /// `http://127.0.0.1:port`.
    pub(crate) http: String,
}

impl Endpoints {
    pub(crate) fn publish_url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.rtmp)
    }

    /// Classic HLS (MPEG-TS) playlist of a camera.
    pub(crate) fn hls_url(&self, camera: &str) -> String {
        match self.kind {
            Kind::Camstream => format!("{}/hls/{camera}/ts/playlist.m3u8", self.http),
            // hls_nested on: one folder per stream, index.m3u8 inside.
            Kind::Nginx => format!("{}/hls/{camera}/index.m3u8", self.http),
        }
    }

    /// LL-HLS playlist of a camera; nginx-rtmp has none.
    pub(crate) fn llhls_url(&self, camera: &str) -> Option<String> {
        match self.kind {
            Kind::Camstream => Some(format!("{}/hls/{camera}/playlist.m3u8", self.http)),
            Kind::Nginx => None,
        }
    }

    /// Base URL of `/api/v1`; nginx-rtmp has none.
    pub(crate) fn api_base(&self) -> Option<String> {
        (self.kind == Kind::Camstream).then(|| self.http.clone())
    }
}

/// A started server.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) endpoints: Endpoints,
    pub(crate) version: String,
    pub(crate) command: String,
    child: Child,
    workdir: PathBuf,
}

/// `N` distinct free loopback ports. The probe sockets are all held until every port is
/// chosen, so one call never hands out the same port twice; another process can still
/// take one before the server binds it (see `Server::camstream`, which retries).
fn free_ports<const N: usize>() -> anyhow::Result<[u16; N]> {
    let probes = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").context("binding a probe socket"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut ports = [0u16; N];
    for (p, l) in ports.iter_mut().zip(&probes) {
        *p = l.local_addr()?.port();
    }
    Ok(ports)
}

/// What a server printed before it died, without the backtrace frames that bury the
/// reason (`RUST_BACKTRACE=1` in CI prints thirty frames after a one-line error).
fn readable_tail(text: &str, keep: usize) -> String {
    let frame = |l: &str| {
        let t = l.trim_start();
        t.starts_with("at ")
            || t.split_once(": ")
                .is_some_and(|(n, _)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !frame(l) && !l.trim().is_empty())
        .collect();
    lines[lines.len().saturating_sub(keep)..].join("\n")
}

/// A fresh folder on tmpfs when there is one (the nginx baseline kept HLS on tmpfs).
fn workdir(kind: Kind) -> anyhow::Result<PathBuf> {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let root = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = root.join(format!(
        "camstream-bench-{}-{}-{n}",
        kind.label(),
        std::process::id()
    ));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// First line of a command's output (stdout, else stderr), or `unknown`.
async fn version_of(cmd: &Path, args: &[&str]) -> String {
    match Command::new(cmd).args(args).output().await {
        Ok(o) => {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .unwrap_or("unknown")
                .trim()
                .to_owned()
        }
        Err(_) => "unknown".into(),
    }
}

fn chmod(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
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

/// The nginx.conf the harness runs nginx-rtmp with.
pub(crate) fn nginx_conf(
    dir: &Path,
    rtmp_port: u16,
    http_port: u16,
    workers: &str,
    root: bool,
) -> String {
    let d = dir.display();
    // As root the workers drop to nobody; Debian's nobody has group nogroup.
    let user = if root { "user nobody nogroup;\n" } else { "" };
    format!(
        r#"{user}daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile 65536;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;
events {{ worker_connections 16384; }}
rtmp {{
    server {{
        listen 127.0.0.1:{rtmp_port};
        chunk_size 4096;
        application live {{
            live on;
            record off;
            hls on;
            hls_path {d}/hls;
            hls_nested on;
            hls_fragment 2s;
            hls_playlist_length 10s;
            hls_cleanup on;
        }}
    }}
}}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    types {{
        application/vnd.apple.mpegurl m3u8;
        video/mp2t ts;
    }}
    server {{
        listen 127.0.0.1:{http_port};
        location /hls/ {{
            root {d};
            add_header Cache-Control no-cache;
            add_header Access-Control-Allow-Origin *;
        }}
        location = /healthz {{
            default_type application/json;
            return 200 '{{"status":"ok"}}';
        }}
    }}
}}
"#
    )
}

impl Server {
    /// Starts `camstream serve` on free loopback ports. `admin_password` is handed over
    /// as `CAMSTREAM_ADMIN_PASSWORD` (an environment variable, so a binary without the
    /// control plane still starts).
    ///
    /// The ports are probed free and then handed over, so another process can bind one in
    /// between; a start that fails on a port in use is retried on fresh ports (three tries
    /// in all). Any other early exit fails at once with the server's own error line.
    pub(crate) async fn camstream(
        bin: &Path,
        extra: &[String],
        allow_any_key: bool,
        admin_password: Option<&str>,
    ) -> anyhow::Result<Self> {
        let mut tries = 0;
        loop {
            tries += 1;
            match Self::camstream_once(bin, extra, allow_any_key, admin_password).await {
                Err(e) if tries < 3 && format!("{e:#}").contains("os error 98") => {
                    eprintln!(
                        "camstream could not bind a probed port (taken meanwhile); retrying on fresh ports"
                    );
                }
                r => return r,
            }
        }
    }

    async fn camstream_once(
        bin: &Path,
        extra: &[String],
        allow_any_key: bool,
        admin_password: Option<&str>,
    ) -> anyhow::Result<Self> {
        if !bin.exists() {
            bail!(
                "camstream binary {} not found: build it (cargo build --release --bin camstream) or pass --camstream-bin",
                bin.display()
            );
        }
        let dir = workdir(Kind::Camstream)?;
        let [rtmp, rtmps, http, https] = free_ports::<4>()?;
        let mut args: Vec<String> = vec!["serve".into()];
        if allow_any_key {
            args.push("--allow-any-key".into());
        }
        args.extend([
            "--data-dir".into(),
            dir.join("data").display().to_string(),
            "--rtmp-addr".into(),
            format!("127.0.0.1:{rtmp}"),
            "--rtmps-addr".into(),
            format!("127.0.0.1:{rtmps}"),
            "--http-addr".into(),
            format!("127.0.0.1:{http}"),
            "--https-addr".into(),
            format!("127.0.0.1:{https}"),
            "--webrtc-addr".into(),
            "127.0.0.1:0".into(),
        ]);
        args.extend(extra.iter().cloned());
        let log = std::fs::File::create(dir.join("server.log"))?;
        let mut cmd = Command::new(bin);
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true);
        if let Some(p) = admin_password {
            cmd.env("CAMSTREAM_ADMIN_PASSWORD", p);
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let version = version_of(bin, &["--version"]).await;
        let mut s = Self {
            endpoints: Endpoints {
                kind: Kind::Camstream,
                rtmp: format!("127.0.0.1:{rtmp}"),
                http: format!("http://127.0.0.1:{http}"),
            },
            version,
            command: format!("{} {}", bin.display(), args.join(" ")),
            child,
            workdir: dir,
        };
        s.wait_ready("/readyz").await?;
        Ok(s)
    }

    /// Starts nginx with libnginx-mod-rtmp under its own prefix.
    pub(crate) async fn nginx(workers: &str) -> anyhow::Result<Self> {
        let nginx = PathBuf::from("/usr/sbin/nginx");
        if !nginx.exists() || !Path::new("/usr/lib/nginx/modules/ngx_rtmp_module.so").exists() {
            bail!(
                "nginx with the RTMP module is not installed: apt-get install -y nginx libnginx-mod-rtmp"
            );
        }
        let dir = workdir(Kind::Nginx)?;
        for sub in ["hls", "tmp", "logs"] {
            std::fs::create_dir_all(dir.join(sub))?;
            // The workers run as nobody and must write HLS fragments and temp files.
            chmod(&dir.join(sub), 0o777)?;
        }
        chmod(&dir, 0o755)?;
        let [rtmp, http] = free_ports::<2>()?;
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, nginx_conf(&dir, rtmp, http, workers, is_root()))?;
        let log = std::fs::File::create(dir.join("server.log"))?;
        let prefix = format!("{}/", dir.display());
        let args = ["-p", prefix.as_str(), "-c", &conf.display().to_string()].map(str::to_owned);
        let child = Command::new(&nginx)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .context("starting nginx")?;
        let module = Command::new("dpkg-query")
            .args(["-W", "-f=${Version}", "libnginx-mod-rtmp"])
            .output()
            .await
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "unknown".into());
        let version = format!(
            "{}, libnginx-mod-rtmp {module}",
            version_of(&nginx, &["-v"]).await
        );
        let mut s = Self {
            endpoints: Endpoints {
                kind: Kind::Nginx,
                rtmp: format!("127.0.0.1:{rtmp}"),
                http: format!("http://127.0.0.1:{http}"),
            },
            version,
            command: format!("{} {}", nginx.display(), args.join(" ")),
            child,
            workdir: dir,
        };
        s.wait_ready("/healthz").await?;
        Ok(s)
    }

    /// Bytes of media the server keeps as files (nginx-rtmp's HLS window on tmpfs, which
    /// is memory too but not in its RSS); camstream serves from memory and writes none.
    pub(crate) fn media_file_bytes(&self) -> u64 {
        fn walk(dir: &Path) -> u64 {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return 0;
            };
            entries
                .flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => walk(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        }
        walk(&self.workdir.join("hls"))
    }

    /// The root pid of the server's process tree.
    pub(crate) fn pid(&self) -> i32 {
        self.child.id().map_or(0, |p| p as i32)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.workdir.join("server.log")).unwrap_or_default()
            + &std::fs::read_to_string(self.workdir.join("error.log")).unwrap_or_default();
        readable_tail(&text, 15)
    }

    async fn wait_ready(&mut self, path: &str) -> anyhow::Result<()> {
        let client = crate::run::http_client()?;
        let url = format!("{}{path}", self.endpoints.http);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited with {status} before it was ready:\n{}",
                    self.endpoints.kind.label(),
                    self.log_tail()
                );
            }
            if let Ok(r) = client
                .get(&url)
                .timeout(Duration::from_secs(1))
                .send()
                .await
                && r.status().is_success()
            {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!(
            "{} not ready at {url} after 30 s:\n{}",
            self.endpoints.kind.label(),
            self.log_tail()
        )
    }

    /// Stops the server (SIGTERM to the root, which takes nginx's workers along; SIGKILL
    /// after 10 s) and removes its folder. Returns the log tail when it had died early.
    pub(crate) async fn stop(mut self) -> anyhow::Result<Option<String>> {
        let died = self
            .child
            .try_wait()?
            .map(|st| format!("exited during the run with {st}:\n{}", self.log_tail()));
        if died.is_none() {
            let pid = self.pid().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status().await;
            if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
                .await
                .is_err()
            {
                self.child.kill().await?;
            }
        }
        let _ = std::fs::remove_dir_all(&self.workdir);
        Ok(died)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probed_ports_are_distinct() {
        for _ in 0..50 {
            let ports = free_ports::<4>().unwrap();
            let mut sorted = ports.to_vec();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), 4, "{ports:?}");
        }
    }

    #[test]
    fn the_tail_keeps_the_error_and_drops_backtrace_frames() {
        let log = "2026-12-06 INFO starting\nError: cannot start the data plane\n\nCaused by:\n    Address already in use (os error 98)\n\nStack backtrace:\n   0: anyhow::error::msg\n             at ./src/lib.rs:1:2\n  28: main\n  31: _start\n";
        let t = readable_tail(log, 15);
        assert!(t.contains("Error: cannot start the data plane"), "{t}");
        assert!(t.contains("os error 98"), "{t}");
        assert!(!t.contains("_start") && !t.contains("lib.rs"), "{t}");
    }

    #[test]
    fn urls_per_server() {
        let c = Endpoints {
            kind: Kind::Camstream,
            rtmp: "127.0.0.1:1".into(),
            http: "http://127.0.0.1:2".into(),
        };
        assert_eq!(c.publish_url("k"), "rtmp://127.0.0.1:1/live/k");
        assert_eq!(c.hls_url("k"), "http://127.0.0.1:2/hls/k/ts/playlist.m3u8");
        assert_eq!(
            c.llhls_url("k").as_deref(),
            Some("http://127.0.0.1:2/hls/k/playlist.m3u8")
        );
        let n = Endpoints {
            kind: Kind::Nginx,
            ..c
        };
        assert_eq!(n.hls_url("k"), "http://127.0.0.1:2/hls/k/index.m3u8");
        assert_eq!((n.llhls_url("k"), n.api_base()), (None, None));
    }

    #[test]
    fn nginx_conf_keeps_everything_under_the_prefix() {
        let c = nginx_conf(Path::new("/dev/shm/x"), 1935, 8080, "auto", true);
        assert!(c.starts_with("user nobody nogroup;"));
        assert!(c.contains("daemon off;") && c.contains("pid /dev/shm/x/nginx.pid;"));
        assert!(c.contains("hls_fragment 2s;") && c.contains("hls_path /dev/shm/x/hls;"));
        assert!(c.contains("listen 127.0.0.1:1935;") && c.contains("listen 127.0.0.1:8080;"));
        assert!(!nginx_conf(Path::new("/t"), 1, 2, "1", false).contains("user "));
    }

    #[tokio::test]
    async fn nginx_starts_and_stops_with_its_workers() {
        let s = Server::nginx("2")
            .await
            .expect("nginx with the RTMP module starts");
        let pid = s.pid();
        let tree = crate::procstat::process_tree(pid);
        assert!(
            tree.len() >= 3,
            "master + 2 workers (+ cache manager): {tree:?}"
        );
        assert!(s.version.contains("nginx/"), "{}", s.version);
        let dir = s.workdir.clone();
        assert_eq!(s.stop().await.expect("stops"), None);
        assert!(!dir.exists());
        for p in tree {
            assert!(
                !Path::new(&format!("/proc/{p}")).exists()
                    || std::fs::read_to_string(format!("/proc/{p}/stat"))
                        .is_ok_and(|s| s.contains(") Z ")),
                "{p} still running"
            );
        }
    }
}
