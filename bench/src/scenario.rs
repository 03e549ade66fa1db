//! Scenarios: what a run does, read from a TOML file (`bench/scenarios/*.toml`) and checked
//! once, so the rest of the harness never meets an impossible value.

use std::path::Path;

use anyhow::{Context, ensure};
use serde::{Deserialize, Serialize};

use crate::clip::ClipSpec;

/// A whole scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Scenario {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) description: String,
    /// Seconds of steady load after the last publisher started.
    pub(crate) duration_s: u64,
    #[serde(default)]
    pub(crate) publishers: Publishers,
    #[serde(default)]
    pub(crate) viewers: Viewers,
    #[serde(default)]
    pub(crate) api: Option<Api>,
    #[serde(default)]
    pub(crate) clip: ClipSpec,
    #[serde(default)]
    pub(crate) server: ServerOptions,
    #[serde(default)]
    pub(crate) limits: Limits,
    /// Relay benchmark (`camstream-bench relay`): a two-node cluster, publishers on the
    /// origin, viewers on the edge, against the same viewers on the origin.
    #[serde(default)]
    pub(crate) cluster: Option<Cluster>,
}

/// The two-node cluster of a relay run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Cluster {
    /// Cameras whose parts are timed on both nodes (blocking reloads of both playlists)
    /// for the edge-added latency; the first ones. Default 10.
    pub(crate) probe_cameras: u32,
    /// Run the local baseline (viewers on the origin) before the relayed run. Default true.
    pub(crate) baseline: bool,
    /// Seconds the edge has to serve the first camera's playlist once publishers are on
    /// the origin. Default 30.
    pub(crate) edge_ready_s: u64,
}

impl Default for Cluster {
    fn default() -> Self {
        Self {
            probe_cameras: 10,
            baseline: true,
            edge_ready_s: 30,
        }
    }
}

/// RTMP publishers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Publishers {
    /// Cameras. Default 1.
    pub(crate) count: u32,
    /// New publishers per second. Default 10.
    pub(crate) ramp_per_s: f64,
    /// Stream key pattern; `{i}` becomes the camera index. Default `bench-{i}`.
    pub(crate) key_pattern: String,
    /// Create one camera per publisher through `/api/v1/cameras` and publish with its key.
    pub(crate) keys_from_api: bool,
}

impl Default for Publishers {
    fn default() -> Self {
        Self {
            count: 1,
            ramp_per_s: 10.0,
            key_pattern: "bench-{i}".into(),
            keys_from_api: false,
        }
    }
}

/// HLS and LL-HLS viewers, spread over the cameras round-robin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Viewers {
    /// Classic HLS (MPEG-TS) viewers. Default 0.
    pub(crate) hls: u32,
    /// LL-HLS (fMP4 parts) viewers; servers without LL-HLS (nginx-rtmp) get none. Default 0.
    pub(crate) llhls: u32,
    /// New viewers per second. Default 20.
    pub(crate) ramp_per_s: f64,
    /// Seconds a viewer waits after its camera went live (a playlist needs a segment or a
    /// few parts). Default 4.
    pub(crate) start_delay_s: f64,
}

impl Default for Viewers {
    fn default() -> Self {
        Self {
            hls: 0,
            llhls: 0,
            ramp_per_s: 20.0,
            start_delay_s: 4.0,
        }
    }
}

/// Authenticated API clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Api {
    /// Target requests per second over all clients. Default 50.
    pub(crate) rate_per_s: f64,
    /// Concurrent clients. Default 4.
    pub(crate) clients: u32,
    pub(crate) username: String,
    pub(crate) password: String,
    /// Fail the run when the server has no API (the `api` scenario); otherwise note it
    /// and go on without API load (`mixed`). Default true.
    pub(crate) required: bool,
}

impl Default for Api {
    fn default() -> Self {
        Self {
            rate_per_s: 50.0,
            clients: 4,
            username: "admin".into(),
            password: "Bench-Load-Pass-2026".into(),
            required: true,
        }
    }
}

/// How the harness starts the servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct ServerOptions {
    /// Extra arguments for `camstream serve`.
    pub(crate) camstream_args: Vec<String>,
    /// Start camstream with `--allow-any-key`. Default true.
    pub(crate) allow_any_key: bool,
    /// nginx `worker_processes`. Default `auto` (one per core, as camstream uses every core).
    pub(crate) nginx_workers: String,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            camstream_args: Vec::new(),
            allow_any_key: true,
            nginx_workers: "auto".into(),
        }
    }
}

/// When the harness calls the machine's limit reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(crate) struct Limits {
    /// Machine CPU (% of all cores) that counts as saturated. Default 95.
    pub(crate) machine_cpu_pct: f64,
    /// Publisher lateness that counts as a saturated generator, ms. Default 500.
    pub(crate) generator_lag_ms: f64,
    /// Consecutive one-second samples a condition must hold. Default 3.
    pub(crate) sustain_s: u32,
    /// End the run once a limit is reached (after `sustain_s` more seconds). Default true.
    pub(crate) stop_on_limit: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            machine_cpu_pct: 95.0,
            generator_lag_ms: 500.0,
            sustain_s: 3,
            stop_on_limit: true,
        }
    }
}

/// Command-line overrides of a scenario.
#[derive(Debug, Clone, Default)]
pub(crate) struct Overrides {
    pub(crate) cameras: Option<u32>,
    pub(crate) hls_viewers: Option<u32>,
    pub(crate) llhls_viewers: Option<u32>,
    pub(crate) duration_s: Option<u64>,
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading scenario {}", path.display()))?;
        let s: Self = toml::from_str(&text)
            .with_context(|| format!("parsing scenario {}", path.display()))?;
        s.validate()
            .with_context(|| format!("scenario {}", path.display()))?;
        Ok(s)
    }

    /// Applies overrides; the name records them so reports never mix up runs.
    pub(crate) fn apply(&mut self, o: &Overrides) -> anyhow::Result<()> {
        if let Some(n) = o.cameras {
            self.publishers.count = n;
            self.name = format!("{}@cameras={n}", self.name);
        }
        if let Some(n) = o.hls_viewers {
            self.viewers.hls = n;
            self.name = format!("{}@hls={n}", self.name);
        }
        if let Some(n) = o.llhls_viewers {
            self.viewers.llhls = n;
            self.name = format!("{}@llhls={n}", self.name);
        }
        if let Some(d) = o.duration_s {
            self.duration_s = d;
        }
        self.validate()
    }

    /// Checks the values the run relies on.
    pub(crate) fn validate(&self) -> anyhow::Result<()> {
        ensure!(!self.name.is_empty(), "name is empty");
        ensure!(
            self.duration_s >= 5,
            "duration_s must be at least 5 (got {})",
            self.duration_s
        );
        ensure!(
            self.duration_s <= 24 * 3600,
            "duration_s over a day ({})",
            self.duration_s
        );
        let p = &self.publishers;
        ensure!(
            p.count <= 20_000,
            "publishers.count {} is beyond any machine",
            p.count
        );
        ensure!(
            p.ramp_per_s > 0.0 && p.ramp_per_s.is_finite(),
            "publishers.ramp_per_s must be > 0"
        );
        ensure!(
            p.keys_from_api || p.key_pattern.contains("{i}"),
            "publishers.key_pattern must contain {{i}} so keys differ"
        );
        let v = &self.viewers;
        ensure!(
            v.ramp_per_s > 0.0 && v.ramp_per_s.is_finite(),
            "viewers.ramp_per_s must be > 0"
        );
        ensure!(v.start_delay_s >= 0.0, "viewers.start_delay_s must be >= 0");
        ensure!(
            v.hls + v.llhls == 0 || p.count > 0,
            "viewers need at least one camera"
        );
        ensure!(v.hls + v.llhls <= 50_000, "more than 50000 viewers");
        if let Some(a) = &self.api {
            ensure!(
                a.rate_per_s > 0.0 && a.rate_per_s <= 100_000.0,
                "api.rate_per_s out of range"
            );
            ensure!(
                a.clients > 0 && a.clients <= 1000,
                "api.clients must be 1..=1000"
            );
        }
        ensure!(
            p.count > 0 || self.api.is_some(),
            "a scenario needs publishers or API clients"
        );
        ensure!(
            !p.keys_from_api || self.api.is_some(),
            "keys_from_api needs an [api] section (credentials)"
        );
        if let Some(c) = &self.cluster {
            ensure!(
                c.probe_cameras <= p.count,
                "cluster.probe_cameras {} is more than the {} cameras",
                c.probe_cameras,
                p.count
            );
            ensure!(
                !p.keys_from_api && self.api.is_none(),
                "a relay run publishes with --allow-any-key keys: no [api], no keys_from_api"
            );
            ensure!(
                v.llhls + v.hls > 0,
                "a relay run needs viewers: relaying starts when the edge has one"
            );
        }
        Ok(())
    }

    /// Seconds until the last publisher has started.
    pub(crate) fn ramp_s(&self) -> f64 {
        f64::from(self.publishers.count) / self.publishers.ramp_per_s
    }

    /// The stream key of camera `i`.
    pub(crate) fn key(&self, i: u32) -> String {
        self.publishers.key_pattern.replace("{i}", &i.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_admin_password_passes_the_servers_rules() {
        // camstream refuses to start with a weak --admin-password, which would make every
        // API scenario fail before it began.
        let api = Api::default();
        camstream_controlplane::auth::password::check_strength(&api.password, &api.username)
            .expect("the harness's admin password is one camstream accepts");
    }

    #[test]
    fn every_shipped_scenario_loads() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut names = Vec::new();
        for e in std::fs::read_dir(&dir).expect("scenarios folder") {
            let path = e.expect("entry").path();
            if path.extension().is_some_and(|x| x == "toml") {
                let s = Scenario::load(&path).expect("valid scenario");
                assert_eq!(
                    Some(s.name.as_str()),
                    path.file_stem().and_then(|x| x.to_str()),
                    "name matches file"
                );
                names.push(s.name);
            }
        }
        names.sort();
        for wanted in [
            "api",
            "cameras-10",
            "cameras-100",
            "cameras-1000",
            "cameras-500",
            "mixed",
            "quick",
            "relay-100",
        ] {
            assert!(
                names.iter().any(|n| n == wanted),
                "{wanted} missing from {names:?}"
            );
        }
        let quick = Scenario::load(&dir.join("quick.toml")).expect("quick");
        let worst = quick.ramp_s() + quick.viewers.start_delay_s + quick.duration_s as f64;
        assert!(
            worst < 60.0,
            "quick must leave room for two servers in 2 minutes: {worst}s"
        );
    }

    #[test]
    fn defaults_overrides_and_checks() {
        let mut s: Scenario = toml::from_str("name = \"t\"\nduration_s = 10\n").expect("minimal");
        assert_eq!(s.publishers, Publishers::default());
        assert_eq!(s.key(7), "bench-7");
        s.apply(&Overrides {
            cameras: Some(40),
            duration_s: Some(30),
            ..Overrides::default()
        })
        .expect("valid");
        assert_eq!(
            (s.publishers.count, s.duration_s, s.name.as_str()),
            (40, 30, "t@cameras=40")
        );
        assert_eq!(s.ramp_s(), 4.0);
        assert!(toml::from_str::<Scenario>("name = \"t\"\nduration_s = 10\nbogus = 1\n").is_err());
        let bad: Scenario =
            toml::from_str("name = \"t\"\nduration_s = 10\n[publishers]\nkey_pattern = \"same\"\n")
                .expect("parses");
        assert!(bad.validate().is_err(), "keys would collide");
        let lonely: Scenario = toml::from_str(
            "name = \"t\"\nduration_s = 10\n[publishers]\ncount = 0\n[viewers]\nhls = 1\n",
        )
        .expect("parses");
        assert!(lonely.validate().is_err(), "viewers without cameras");
    }

    #[test]
    fn cluster_section() {
        let s: Scenario = toml::from_str(
            "name = \"r\"\nduration_s = 10\n[publishers]\ncount = 4\n[viewers]\nllhls = 4\n[cluster]\n",
        )
        .expect("parses");
        assert_eq!(s.cluster, Some(Cluster::default()));
        assert!(s.validate().is_err(), "10 probed cameras of 4");
        let s: Scenario = toml::from_str(
            "name = \"r\"\nduration_s = 10\n[publishers]\ncount = 4\n[viewers]\nllhls = 4\n[cluster]\nprobe_cameras = 2\nbaseline = false\n",
        )
        .expect("parses");
        s.validate().expect("valid");
        assert!(!s.cluster.expect("cluster").baseline);
        let s: Scenario = toml::from_str(
            "name = \"r\"\nduration_s = 10\n[publishers]\ncount = 4\n[cluster]\nprobe_cameras = 2\n",
        )
        .expect("parses");
        assert!(s.validate().is_err(), "no viewers, nothing relayed");
        assert!(
            toml::from_str::<Scenario>("name = \"r\"\nduration_s = 10\n[cluster]\nnodes = 3\n")
                .is_err()
        );
    }
}
