//! The `camstream serve` process under test.
//!
//! Every listener is bound to `127.0.0.1:0` and the harness learns the ports from the log
//! line naming the HTTP address and then `/readyz`, so parallel tests never race for a
//! port. stdout and stderr go to one log file that tests search.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use tokio::process::{Child, Command};

use super::hls::LlPlaylist;
use super::{eventually, http_client, scratch};

/// How to start a server.
pub(crate) struct ServerOptions {
    /// `--allow-any-key`.
    pub(crate) allow_any_key: bool,
    /// `[streams]` entries of a generated `--config` file (stream key, camera id).
    pub(crate) streams: Vec<(&'static str, &'static str)>,
    /// More flags, e.g. `--reconnect-window 3s`.
    pub(crate) args: Vec<&'static str>,
    /// Environment variables for the process (kept across restarts).
    pub(crate) env: Vec<(String, String)>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            allow_any_key: true,
            streams: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// A running `camstream serve`, killed on drop.
pub(crate) struct Server {
    child: Mutex<Child>,
    /// Scratch directory of the test (data dir, log, outputs).
    pub(crate) dir: PathBuf,
    log: PathBuf,
    pub(crate) rtmp: SocketAddr,
    pub(crate) rtmps: SocketAddr,
    pub(crate) http: SocketAddr,
    pub(crate) https: SocketAddr,
    client: reqwest::Client,
    /// The command line (for [`Server::restart`]).
    args: Vec<String>,
    /// The environment added (for [`Server::restart`]).
    env: Vec<(String, String)>,
    /// How many times this data directory was restarted.
    generation: u32,
}

impl Server {
    /// Starts the binary in a fresh scratch directory named `name` and waits for `/readyz`.
    pub(crate) async fn start(name: &str, opts: ServerOptions) -> Server {
        Self::start_with(name, opts, Vec::new()).await
    }

    /// [`Server::start`] with more flags whose values are only known at run time
    /// (database URLs, secrets).
    pub(crate) async fn start_with(name: &str, opts: ServerOptions, extra: Vec<String>) -> Server {
        let dir = scratch(name);
        let mut args: Vec<String> = vec!["serve".into(), "--data-dir".into()];
        args.push(dir.join("data").display().to_string());
        for (flag, addr) in [
            ("--rtmp-addr", "127.0.0.1:0"),
            ("--rtmps-addr", "127.0.0.1:0"),
            ("--http-addr", "127.0.0.1:0"),
            ("--https-addr", "127.0.0.1:0"),
            ("--webrtc-addr", "127.0.0.1:0"),
        ] {
            args.extend([flag.into(), addr.into()]);
        }
        if opts.allow_any_key {
            args.push("--allow-any-key".into());
        }
        if !opts.streams.is_empty() {
            let mut toml = String::from("[streams]\n");
            for (key, camera) in &opts.streams {
                toml.push_str(&format!("{key:?} = {camera:?}\n"));
            }
            let path = dir.join("camstream.toml");
            std::fs::write(&path, toml).expect("write config file");
            args.extend(["--config".into(), path.display().to_string()]);
        }
        args.extend(opts.args.iter().map(|a| (*a).to_owned()));
        args.extend(extra);
        Self::launch(dir, 0, args, opts.env).await
    }

    /// Stops the server with SIGTERM (a graceful shutdown) and starts the same command
    /// again on the same data directory, with `replace` swapping flag values (`(flag,
    /// new value)`; the flag is added when absent). Listeners get new ports; the new log
    /// is `camstream.N.log`.
    pub(crate) async fn restart(self, replace: &[(&str, &str)]) -> Server {
        let status = self.stop(Duration::from_secs(20)).await;
        assert!(
            status.success(),
            "camstream stopped with {status}; log:\n{}",
            self.log()
        );
        let mut args = self.args.clone();
        for (flag, value) in replace {
            match args.iter().position(|a| a == flag) {
                Some(i) => args[i + 1] = (*value).to_owned(),
                None => args.extend([(*flag).to_owned(), (*value).to_owned()]),
            }
        }
        Self::launch(
            self.dir.clone(),
            self.generation + 1,
            args,
            self.env.clone(),
        )
        .await
    }

    /// Kills the process with SIGKILL (no shutdown of any kind) and waits until it is gone.
    pub(crate) async fn kill9(&self) {
        let pid = self.child.lock().expect("child lock").id();
        if let Some(pid) = pid {
            let ok = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status()
                .expect("run kill")
                .success();
            assert!(ok, "kill -KILL {pid} failed");
        }
        self.wait_exit(Duration::from_secs(10)).await;
    }

    /// Waits for the process to exit by itself (panics after `timeout`).
    pub(crate) async fn wait_exit(&self, timeout: Duration) -> std::process::ExitStatus {
        eventually("camstream to exit", timeout, || {
            let exited = self.child.lock().expect("child lock").try_wait();
            async move { exited.expect("try_wait") }
        })
        .await
    }

    /// Starts the same command again on the same data directory once the process has
    /// exited (killed or crashed), with `replace` swapping flag values as in
    /// [`Server::restart`] and the flags in `remove` (with their values) dropped.
    pub(crate) async fn relaunch(self, replace: &[(&str, &str)], remove: &[&str]) -> Server {
        assert!(!self.alive(), "relaunch of a running server");
        let mut args = self.args.clone();
        for flag in remove {
            if let Some(i) = args.iter().position(|a| a == flag) {
                args.drain(i..i + 2);
            }
        }
        for (flag, value) in replace {
            match args.iter().position(|a| a == flag) {
                Some(i) => args[i + 1] = (*value).to_owned(),
                None => args.extend([(*flag).to_owned(), (*value).to_owned()]),
            }
        }
        Self::launch(
            self.dir.clone(),
            self.generation + 1,
            args,
            self.env.clone(),
        )
        .await
    }

    /// Sends SIGTERM and waits for the process to exit (panics after `timeout`).
    pub(crate) async fn stop(&self, timeout: Duration) -> std::process::ExitStatus {
        let pid = self.child.lock().expect("child lock").id();
        if let Some(pid) = pid {
            let ok = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .expect("run kill")
                .success();
            assert!(ok, "kill -TERM {pid} failed");
        }
        eventually("camstream to exit after SIGTERM", timeout, || {
            let exited = self.child.lock().expect("child lock").try_wait();
            async move { exited.expect("try_wait") }
        })
        .await
    }

    /// Runs `camstream args` in `dir` and waits until it is ready.
    async fn launch(
        dir: PathBuf,
        generation: u32,
        args: Vec<String>,
        env: Vec<(String, String)>,
    ) -> Server {
        let log = if generation == 0 {
            dir.join("camstream.log")
        } else {
            dir.join(format!("camstream.{generation}.log"))
        };
        let out = std::fs::File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_camstream"));
        cmd.args(&args)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("CAMSTREAM_ALLOW_ANY_KEY")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        let child = Mutex::new(cmd.spawn().expect("spawn camstream"));
        let client = http_client();
        let http: SocketAddr = eventually(
            "the HTTP listener in the log",
            Duration::from_secs(60),
            || {
                let text = read_log(&log);
                let exited = child
                    .lock()
                    .expect("child lock")
                    .try_wait()
                    .expect("try_wait");
                if let Some(status) = exited {
                    panic!("camstream exited early with {status}; log:\n{text}");
                }
                let addr = text
                    .lines()
                    .find(|l| l.contains("HLS: http://"))
                    .and_then(|l| field(l, "http"))
                    .and_then(|v| v.parse().ok());
                async move { addr }
            },
        )
        .await;
        let ready: serde_json::Value = eventually("/readyz", Duration::from_secs(30), || {
            let client = client.clone();
            async move {
                let r = client
                    .get(format!("http://{http}/readyz"))
                    .send()
                    .await
                    .ok()?;
                if r.status() != 200 {
                    return None;
                }
                r.json().await.ok()
            }
        })
        .await;
        let listener = |name: &str| -> SocketAddr {
            ready["listeners"][name]
                .as_str()
                .unwrap_or_else(|| panic!("/readyz lacks listener {name}: {ready}"))
                .parse()
                .expect("listener address")
        };
        assert_eq!(ready["status"], "ready", "{ready}");
        assert_eq!(listener("http"), http);
        Server {
            rtmp: listener("rtmp"),
            rtmps: listener("rtmps"),
            https: listener("https"),
            http,
            child,
            dir,
            log,
            client,
            args,
            env,
            generation,
        }
    }

    /// `http://host:port{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// `https://host:port{path}`.
    pub(crate) fn https_url(&self, path: &str) -> String {
        format!("https://{}{path}", self.https)
    }

    /// `rtmp://host:port/live/{key}`.
    pub(crate) fn rtmp_url(&self, key: &str) -> String {
        format!("rtmp://{}/live/{key}", self.rtmp)
    }

    /// `rtmps://host:port/live/{key}`.
    pub(crate) fn rtmps_url(&self, key: &str) -> String {
        format!("rtmps://{}/live/{key}", self.rtmps)
    }

    /// The HTTP/1.1 client of this server.
    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// GET over HTTP.
    pub(crate) async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// GET over HTTP expecting 200; the body as text.
    pub(crate) async fn get_text(&self, path: &str) -> String {
        let r = self.get(path).await;
        let status = r.status();
        let body = r.text().await.expect("read body");
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// GET over HTTP expecting 200; the body.
    pub(crate) async fn get_bytes(&self, path: &str) -> bytes::Bytes {
        let r = self.get(path).await;
        assert_eq!(r.status(), 200, "GET {path}");
        r.bytes().await.expect("read body")
    }

    /// The LL-HLS playlist of `camera` with `query` (may be empty), parsed and checked.
    pub(crate) async fn ll(&self, camera: &str, query: &str) -> LlPlaylist {
        let text = self
            .get_text(&format!("/hls/{camera}/playlist.m3u8{query}"))
            .await;
        LlPlaylist::parse(&text)
    }

    /// The LL-HLS playlist once the camera has one (the server answers 404 before).
    pub(crate) async fn wait_ll(&self, camera: &str, timeout: Duration) -> LlPlaylist {
        let path = format!("/hls/{camera}/playlist.m3u8");
        let text = eventually(&format!("{path} to appear"), timeout, || async {
            let r = self.client.get(self.url(&path)).send().await.ok()?;
            if r.status() != 200 {
                return None;
            }
            r.text().await.ok()
        })
        .await;
        LlPlaylist::parse(&text)
    }

    /// Waits until the LL-HLS playlist of `camera` satisfies `pred`, polling plain reloads.
    pub(crate) async fn wait_ll_until(
        &self,
        camera: &str,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&LlPlaylist) -> bool,
    ) -> LlPlaylist {
        let path = format!("/hls/{camera}/playlist.m3u8");
        eventually(what, timeout, || async {
            let r = self.client.get(self.url(&path)).send().await.ok()?;
            if r.status() != 200 {
                return None;
            }
            let p = LlPlaylist::parse(&r.text().await.ok()?);
            pred(&p).then_some(p)
        })
        .await
    }

    /// The whole log so far.
    pub(crate) fn log(&self) -> String {
        read_log(&self.log)
    }

    /// Waits for a log line containing every one of `needles`; returns it.
    pub(crate) async fn wait_log(&self, needles: &[&str], timeout: Duration) -> String {
        self.wait_log_line(&format!("{needles:?}"), timeout, |l| {
            needles.iter().all(|n| l.contains(n))
        })
        .await
    }

    /// Waits for a log line about the connection from `peer` that contains `needle`.
    pub(crate) async fn wait_log_peer(
        &self,
        peer: SocketAddr,
        needle: &str,
        timeout: Duration,
    ) -> String {
        let peer = peer.to_string();
        self.wait_log_line(&format!("peer={peer} and {needle:?}"), timeout, |l| {
            field(l, "peer") == Some(&*peer) && l.contains(needle)
        })
        .await
    }

    /// Waits for a log line satisfying `pred`; returns it.
    async fn wait_log_line(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> String {
        let found = tokio::time::timeout(timeout, async {
            loop {
                if let Some(l) = self.log().lines().find(|l| pred(l)) {
                    return l.to_owned();
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        found.unwrap_or_else(|_| {
            panic!(
                "no log line with {what} within {timeout:?}; log:\n{}",
                self.log()
            )
        })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child
            .lock()
            .expect("child lock")
            .id()
            .expect("camstream is running")
    }

    /// Whether the process is still running.
    pub(crate) fn alive(&self) -> bool {
        self.child
            .lock()
            .expect("child lock")
            .try_wait()
            .expect("try_wait")
            .is_none()
    }

    /// Asserts the process runs and `/healthz` answers 200 with status ok.
    pub(crate) async fn assert_healthy(&self) {
        assert!(self.alive(), "camstream died; log:\n{}", self.log());
        let r = self.get("/healthz").await;
        assert_eq!(r.status(), 200);
        let body: serde_json::Value = r.json().await.expect("healthz json");
        assert_eq!(body["status"], "ok", "{body}");
    }
}

/// The log file's text without ANSI colour sequences.
fn read_log(path: &PathBuf) -> String {
    let raw = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&raw);
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of `name=value` in a text log line (up to a space or the span's `}`).
pub(crate) fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=");
    let start = line
        .match_indices(&key)
        .find(|(i, _)| *i == 0 || matches!(line.as_bytes()[i - 1], b' ' | b'{'))
        .map(|(i, _)| i + key.len())?;
    let rest = &line[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '}')
        .unwrap_or(rest.len());
    Some(&rest[..end])
}
