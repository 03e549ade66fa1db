//! The relay benchmark (`camstream-bench relay`): a PostgreSQL and a two-node camstream
//! cluster on loopback (node 1 the origin, node 2 joining it; both with a QUIC relay, a
//! cluster secret and `--allow-any-key`). The scenario's publishers always push to the
//! origin. First the viewers watch on the origin (the local baseline), then, with fresh
//! publishers, on the edge, so every camera is pulled over the relay once. Both nodes' process
//! trees are sampled each second; a few cameras' parts are timed on both nodes
//! ([`probe`], `partclock`) for the edge-added latency.
//!
//! The single-server run is `run`'s; this module starts the cluster, drives `run::drive`
//! twice and writes the comparison.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::partclock::{PartClock, Side};
use crate::playlist::Playlist;
use crate::postgres::Postgres;
use crate::report::Report;
use crate::run::{Peer, RunConfig, drive, http_client};
use crate::server::Server;

/// The secret both nodes authenticate raft and relay traffic with.
const SECRET: &str = "camstream-bench-cluster-secret-0123456789";
/// Required by a node with a database; nothing logs in during a relay run.
const JWT_SECRET: &str = "camstream-bench-jwt-secret-0123456789abcdef";
/// Relay counters read from each node's `/metrics` after the relayed run.
const RELAY_METRICS: [&str; 4] = [
    "camstream_relay_streams_in",
    "camstream_relay_streams_out",
    "camstream_relay_pulls_started_total",
    "camstream_relay_pulls_failed_total",
];

/// One table cell from a run's summary.
type SummaryCell<'a> = dyn Fn(&crate::report::Summary) -> String + 'a;

/// Both runs of a relay benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RelayReport {
    /// Viewers on the origin; `None` when the scenario skips the baseline.
    pub(crate) local: Option<Report>,
    /// Viewers on the edge.
    pub(crate) relay: Report,
    /// `(node, metric, value)` after the relayed run, before the nodes stopped.
    pub(crate) relay_metrics: Vec<(String, String, f64)>,
}

/// The value of an unlabelled metric in a Prometheus text exposition.
pub(crate) fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok())?
    })
}

fn tmp_root() -> PathBuf {
    if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    }
}

fn node_args(db: &str, id: u64, join: Option<&str>) -> anyhow::Result<Vec<String>> {
    let raft = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut a: Vec<String> = [
        "--database-url",
        db,
        "--node-id",
        &id.to_string(),
        "--raft-addr",
        &format!("127.0.0.1:{raft}"),
        "--relay-addr",
        // Port 0: the node advertises the port it bound.
        "127.0.0.1:0",
        "--cluster-secret",
        SECRET,
        "--jwt-secret",
        JWT_SECRET,
    ]
    .map(str::to_owned)
    .to_vec();
    if let Some(j) = join {
        a.extend(["--join".to_owned(), j.to_owned()]);
    }
    Ok(a)
}

/// Polls the edge's `/metrics` until it names a raft leader.
async fn wait_joined(edge: &Server, within: Duration) -> anyhow::Result<()> {
    let client = http_client()?;
    let url = format!("{}/metrics", edge.endpoints.http);
    let deadline = Instant::now() + within;
    loop {
        if let Ok(r) = client
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            && let Ok(text) = r.text().await
            && metric_value(&text, "camstream_raft_leader_id").is_some_and(|l| l > 0.0)
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "the edge (node 2) found no raft leader within {} s",
                within.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn relay_metrics(nodes: [(&str, &Server); 2]) -> Vec<(String, String, f64)> {
    let Ok(client) = http_client() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, s) in nodes {
        let url = format!("{}/metrics", s.endpoints.http);
        let text = match client
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        for m in RELAY_METRICS {
            if let Some(v) = metric_value(&text, m) {
                out.push((name.to_owned(), m.to_owned(), v));
            }
        }
    }
    out
}

/// Runs the relay benchmark: PostgreSQL, origin and edge, the local baseline (when the
/// scenario asks for it) and the relayed run; stops everything afterwards.
///
/// # Errors
/// No `[cluster]` in the scenario, PostgreSQL or a node failing to start, a run failing.
pub(crate) async fn run(cfg: &RunConfig) -> anyhow::Result<RelayReport> {
    let sc = &cfg.scenario;
    let Some(cl) = sc.cluster.clone() else {
        bail!(
            "scenario {} has no [cluster] section: relay runs need one (bench/scenarios/relay-100.toml)",
            sc.name
        );
    };
    let root = tmp_root();
    let pg = tokio::task::spawn_blocking(move || Postgres::start(&root))
        .await
        .context("PostgreSQL start panicked")?
        .context("starting PostgreSQL for the cluster")?;
    let db = pg.url();
    let mut extra = node_args(&db, 1, None)?;
    extra.extend(sc.server.camstream_args.iter().cloned());
    let mut origin = Server::camstream(&cfg.camstream_bin, &extra, true, None)
        .await
        .context("starting node 1 (origin)")?;
    let mut extra = node_args(&db, 2, Some(&origin.endpoints.http))?;
    extra.extend(sc.server.camstream_args.iter().cloned());
    let edge = match Server::camstream(&cfg.camstream_bin, &extra, true, None).await {
        Ok(e) => e,
        Err(e) => {
            let _ = origin.stop().await;
            return Err(e.context("starting node 2 (edge)"));
        }
    };
    let result = async {
        wait_joined(&edge, Duration::from_secs(cl.edge_ready_s)).await?;
        let local = if cl.baseline {
            let peer = Peer {
                server: &edge,
                watch_here: false,
                probe_cameras: 0,
            };
            let mut r = drive(cfg, &mut origin, Some(peer))
                .await
                .context("local run (viewers on the origin)")?;
            r.server.name = "camstream origin, viewers local".into();
            Some(r)
        } else {
            None
        };
        let peer = Peer {
            server: &edge,
            watch_here: true,
            probe_cameras: cl.probe_cameras,
        };
        let mut relay = drive(cfg, &mut origin, Some(peer))
            .await
            .context("relayed run (viewers on the edge)")?;
        relay.server.name = "camstream origin, viewers on the edge".into();
        relay.notes.push(format!("Edge (node 2): {}", edge.command));
        let metrics = relay_metrics([("origin", &origin), ("edge", &edge)]).await;
        anyhow::Ok(RelayReport {
            local,
            relay,
            relay_metrics: metrics,
        })
    }
    .await;
    let died_edge = edge.stop().await?;
    let died_origin = origin.stop().await?;
    drop(pg);
    let mut report = result?;
    for (who, d) in [("origin", died_origin), ("edge", died_edge)] {
        if let Some(d) = d {
            report.relay.notes.push(format!("The {who} {d}"));
        }
    }
    Ok(report)
}

/// Times one camera's LL-HLS parts on the origin and the edge: a blocking-reload loop per
/// node, each part's first listing after the first answer recorded on the run's clock and
/// paired by position. Starts at `at`, ends when `stop` fires; returns edge minus origin in
/// µs for every paired part.
pub(crate) async fn probe(
    origin: String,
    edge: String,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    at: std::time::Instant,
) -> Vec<i64> {
    tokio::select! {
        () = stop.cancelled() => return Vec::new(),
        () = tokio::time::sleep_until(at.into()) => {}
    }
    let clock = Arc::new(Mutex::new(PartClock::default()));
    let deltas = Arc::new(Mutex::new(Vec::new()));
    let side = |side, url| {
        follow(
            side,
            url,
            client.clone(),
            metrics.clone(),
            clock.clone(),
            deltas.clone(),
            stop.clone(),
        )
    };
    tokio::join!(side(Side::Origin, origin), side(Side::Edge, edge));
    deltas.lock().map(|d| d.clone()).unwrap_or_default()
}

async fn follow(
    side: Side,
    url: String,
    client: reqwest::Client,
    metrics: Arc<Metrics>,
    clock: Arc<Mutex<PartClock>>,
    deltas: Arc<Mutex<Vec<i64>>>,
    stop: CancellationToken,
) {
    let mut known: HashSet<(u64, u32)> = HashSet::new();
    let mut next: Option<(u64, u32)> = None;
    while !stop.is_cancelled() {
        let u = match next {
            None => url.clone(),
            Some((m, p)) => format!("{url}?_HLS_msn={m}&_HLS_part={p}"),
        };
        let got = tokio::select! {
            () = stop.cancelled() => return,
            r = async {
                let r = client.get(&u).timeout(Duration::from_secs(10)).send().await?;
                let ok = r.status().is_success();
                Ok::<_, reqwest::Error>((ok, r.text().await?))
            } => r,
        };
        let t = metrics.clock.now_us();
        let pl = match got {
            Ok((true, body)) => match Playlist::parse(&body) {
                Ok(Playlist::Media(pl)) => pl,
                _ => return,
            },
            _ => {
                // Not there yet (the edge is still pulling) or a timeout: ask afresh.
                next = None;
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
                continue;
            }
        };
        let first = next.is_none() && known.is_empty();
        for p in pl.parts() {
            if known.insert((p.msn, p.index))
                && !first
                && let Ok(mut c) = clock.lock()
                && let Some(d) = c.seen(side, p.msn, p.index, t)
                && let Ok(mut v) = deltas.lock()
            {
                v.push(d);
            }
        }
        next = pl.parts().last().map(|p| pl.position_after(p.msn, p.index));
    }
}

impl RelayReport {
    /// The comparison as Markdown: both nodes' CPU and memory, relay cost per camera,
    /// edge-added latency, then each run's own report.
    pub(crate) fn markdown(&self, plots: &[String]) -> String {
        let r = &self.relay;
        let s = &r.summary;
        let mut o = String::new();
        let name = r.scenario.as_ref().map_or("relay", |s| s.name.as_str());
        let _ = writeln!(o, "# camstream relay: {name}\n");
        r.conditions(&mut o);
        let _ = writeln!(
            o,
            "- Cluster: PostgreSQL + 2 `camstream serve` nodes on loopback (node 1 origin: every publisher; node 2 edge: `--join` node 1), QUIC relay, `--allow-any-key`; the harness (publishers, viewers, probe) is a third process.\n"
        );
        let n = s.cameras_target.max(1) as f64;
        let f = |x: f64| format!("{x:.1}");
        let per = |x: f64| format!("{:.3}", x / n);
        let _ = writeln!(
            o,
            "| | local: viewers on the origin | relayed: viewers on the edge |\n|---|---:|---:|"
        );
        let l = self.local.as_ref().map(|l| &l.summary);
        let col = |g: &SummaryCell<'_>| (l.map_or_else(|| "–".to_owned(), g), g(s));
        let rows: [(&str, &SummaryCell<'_>); 12] = [
            ("cameras reached", &|s| s.cameras_reached.to_string()),
            ("viewers started", &|s| s.viewers_started.to_string()),
            ("origin CPU, % of one core", &|s| f(s.server_cpu_pct)),
            ("origin CPU per camera, %", &|s| per(s.server_cpu_pct)),
            ("edge CPU, % of one core", &|s| f(s.peer_cpu_pct)),
            ("edge CPU per camera, %", &|s| per(s.peer_cpu_pct)),
            ("origin RSS, MB", &|s| f(s.server_rss_mb)),
            ("edge RSS, MB", &|s| f(s.peer_rss_mb)),
            ("harness CPU, % of one core", &|s| f(s.generator_cpu_pct)),
            ("machine CPU, % of all cores", &|s| f(s.machine_cpu_pct)),
            ("missing frames / stalls (settled)", &|s| {
                format!(
                    "{} / {}",
                    s.missing_frames + s.tail_missing_frames,
                    s.stalls
                )
            }),
            ("HTTP errors", &|s| s.http_errors.to_string()),
        ];
        for (label, g) in rows {
            let (a, b) = col(g);
            let _ = writeln!(o, "| {label} | {a} | {b} |");
        }
        let lat = |rep: Option<&Report>, g: &dyn Fn(&Report) -> String| {
            rep.map_or_else(|| "–".to_owned(), g)
        };
        for (label, q) in [("p50", 0usize), ("p99", 1)] {
            let g = |rep: &Report| {
                let x = &rep.latency.llhls.ingest_to_available;
                f(if q == 0 { x.p50_ms } else { x.p99_ms })
            };
            let _ = writeln!(
                o,
                "| LL-HLS ingest → available {label}, ms (viewer's node) | {} | {} |",
                lat(self.local.as_ref(), &g),
                g(r)
            );
        }
        let g = |rep: &Report| f(rep.latency.llhls.glass_to_glass.p50_ms);
        let _ = writeln!(
            o,
            "| LL-HLS glass-to-glass proxy p50, ms | {} | {} |",
            lat(self.local.as_ref(), &g),
            g(r)
        );
        let e = &r.latency.edge_added;
        let _ = writeln!(o, "\n## Relay cost\n");
        if let Some(l) = l {
            let local_per = l.server_cpu_pct / n;
            let _ = writeln!(
                o,
                "- Edge CPU per relayed camera: {:.3} % of one core, {:.2}× the origin's CPU per camera serving the same viewers locally ({:.3} %).",
                s.peer_cpu_pct / n,
                if local_per > 0.0 {
                    s.peer_cpu_pct / n / local_per
                } else {
                    0.0
                },
                local_per
            );
            let _ = writeln!(
                o,
                "- Origin CPU per camera: {:.3} % relayed vs {:.3} % local ({:+.3} % per camera: relay sending minus the HTTP viewers it no longer serves).",
                s.server_cpu_pct / n,
                local_per,
                (s.server_cpu_pct - l.server_cpu_pct) / n
            );
            let _ = writeln!(
                o,
                "- Both nodes per camera relayed: {:.3} % vs {:.3} % local ({:.2}×); the edge's CPU while the origin served locally: {:.1} %.",
                (s.server_cpu_pct + s.peer_cpu_pct) / n,
                (l.server_cpu_pct + l.peer_cpu_pct) / n,
                if l.server_cpu_pct + l.peer_cpu_pct > 0.0 {
                    (s.server_cpu_pct + s.peer_cpu_pct) / (l.server_cpu_pct + l.peer_cpu_pct)
                } else {
                    0.0
                },
                l.peer_cpu_pct
            );
            let _ = writeln!(
                o,
                "- RSS: edge {:.1} MB relayed ({:.1} MB while idle), origin {:.1} MB relayed vs {:.1} MB local.",
                s.peer_rss_mb, l.peer_rss_mb, s.server_rss_mb, l.server_rss_mb
            );
        } else {
            let _ = writeln!(
                o,
                "- No local baseline in this run: edge {:.3} %, origin {:.3} % of one core per camera.",
                s.peer_cpu_pct / n,
                s.server_cpu_pct / n
            );
        }
        let _ = writeln!(
            o,
            "- Edge-added part latency (first listing in an edge blocking reload minus first listing in an origin one, {} parts of {} cameras): p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms, mean {:.1} ms.",
            e.count,
            r.scenario
                .as_ref()
                .and_then(|s| s.cluster.as_ref())
                .map_or(0, |c| c.probe_cameras),
            e.p50_ms,
            e.p95_ms,
            e.p99_ms,
            e.max_ms,
            e.mean_ms
        );
        if !self.relay_metrics.is_empty() {
            let m: Vec<String> = self
                .relay_metrics
                .iter()
                .map(|(node, k, v)| format!("{node} `{k}` {v}"))
                .collect();
            let _ = writeln!(o, "- After the relayed run: {}.", m.join(", "));
        }
        let _ = writeln!(
            o,
            "\nMethod. One invocation, one cluster: the local run first (publishers on node 1, viewers on node 1, node 2 idle in the cluster), then publishers again and the same viewers on node 2. CPU and RSS are each node's process tree from /proc every second, averaged over the steady window; per camera is divided by the cameras of the scenario. The probe follows the first cameras' LL-HLS playlists on both nodes with blocking reloads (`_HLS_msn`/`_HLS_part`, no delta updates) and pairs the parts by position; its requests are load on both nodes in the relayed run only. PostgreSQL's CPU is not in either node's figure (it counts as other processes in the machine note).\n"
        );
        if !plots.is_empty() {
            let _ = writeln!(o, "## Plots (origin)\n");
            for p in plots {
                let _ = writeln!(o, "![{p}]({p})");
            }
            o.push('\n');
        }
        for (title, rep) in [("local run", self.local.as_ref()), ("relayed run", Some(r))] {
            if let Some(rep) = rep {
                let _ = writeln!(
                    o,
                    "---\n\n<details><summary>{title}</summary>\n\n{}\n</details>\n",
                    rep.markdown(&[])
                );
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_unlabelled_metrics() {
        let text = "# HELP camstream_relay_streams_in x\n# TYPE camstream_relay_streams_in gauge\ncamstream_relay_streams_in 100\ncamstream_relay_streams_in_total 3\ncamstream_raft_leader_id 1\n";
        assert_eq!(
            metric_value(text, "camstream_relay_streams_in"),
            Some(100.0)
        );
        assert_eq!(metric_value(text, "camstream_raft_leader_id"), Some(1.0));
        assert_eq!(metric_value(text, "camstream_relay_streams_out"), None);
        assert_eq!(metric_value("x notanumber\n", "x"), None);
    }

    #[test]
    fn node_flags() {
        let a = node_args("postgres://db", 2, Some("http://127.0.0.1:9")).expect("args");
        for (k, v) in [
            ("--node-id", "2"),
            ("--join", "http://127.0.0.1:9"),
            ("--relay-addr", "127.0.0.1:0"),
            ("--database-url", "postgres://db"),
        ] {
            let at = a.iter().position(|x| x == k).expect(k);
            assert_eq!(a[at + 1], v);
        }
        assert!(
            !node_args("d", 1, None)
                .expect("args")
                .contains(&"--join".into())
        );
    }

    #[test]
    fn markdown_names_both_nodes() {
        let mut relay = crate::report::tests::sample_report("camstream");
        relay.summary.cameras_target = 10;
        relay.summary.server_cpu_pct = 20.0;
        relay.summary.peer_cpu_pct = 10.0;
        relay.latency.edge_added.p99_ms = 12.5;
        let mut local = relay.clone();
        local.summary.server_cpu_pct = 15.0;
        local.summary.peer_cpu_pct = 1.0;
        let md = RelayReport {
            local: Some(local),
            relay,
            relay_metrics: vec![("edge".into(), "camstream_relay_streams_in".into(), 10.0)],
        }
        .markdown(&[]);
        assert!(
            md.contains("| edge CPU per camera, % | 0.100 | 1.000 |"),
            "{md}"
        );
        assert!(md.contains("0.67× the origin's CPU per camera"), "{md}");
        assert!(md.contains("p99 12.5 ms"), "{md}");
        assert!(md.contains("edge `camstream_relay_streams_in` 10"), "{md}");
    }
}
