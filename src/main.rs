//! The `camstream` binary: parses the configuration, starts the planes, waits for a signal.

mod cli;
mod config;
mod gauges;
mod notify_args;
mod recording;
mod web;

use std::sync::{Arc, OnceLock};

use anyhow::Context;
use camstream_controlplane::ControlPlane;
use camstream_dataplane::auth::{
    AllowAnyKey, Authorizer, BoxFuture, CameraId, Denied, FirstOf, PlaybackDenied, PlaybackGuard,
    PublicPlayback, PublishRequest, StaticKeys,
};
use camstream_dataplane::{CertSource, DataPlane, Server};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Cli, Command, LogFormat, ServeArgs};

/// Issue 11's allocator experiment (`--features mimalloc`, bench/results/allocator).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => *args,
        Some(Command::Cluster(c)) => return cli::run(c),
        None => ServeArgs::parse_from_env(),
    };
    let serve = args.resolve()?;
    init_logging(serve.log_format);
    raise_open_files_limit(&serve);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("camstream")
        .build()
        .context("cannot start the async runtime")?
        .block_on(run(serve))
}

/// Every connection is a file: lift the soft limit to the hard one, and say so when even
/// that is below what the connection caps allow.
fn raise_open_files_limit(serve: &config::Serve) {
    let Some((before, now)) = camstream_dataplane::raise_open_files_limit() else {
        warn!("cannot read the open files limit (RLIMIT_NOFILE)");
        return;
    };
    if now > before {
        info!(from = before, to = now, "raised the open files limit");
    }
    let dp = &serve.dataplane;
    // Listeners, recordings, the database and a margin.
    let wanted = (dp.http.max_connections + dp.max_ingest_connections + 256) as u64;
    if now < wanted {
        warn!(
            limit = now,
            wanted,
            "the open files limit is below --http-max-connections + the ingest cap; raise the hard limit (LimitNOFILE=) or lower the caps"
        );
    }
}

impl ServeArgs {
    /// `camstream` with no subcommand serves, with flags from the environment only.
    fn parse_from_env() -> Self {
        use clap::FromArgMatches;
        let cmd = <ServeArgs as clap::Args>::augment_args(clap::Command::new("camstream"));
        let matches = cmd.get_matches_from(["camstream"]);
        ServeArgs::from_arg_matches(&matches).expect("defaults parse")
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(serve: config::Serve) -> anyhow::Result<()> {
    std::fs::create_dir_all(&serve.dataplane.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            serve.dataplane.data_dir.display()
        )
    })?;
    let shutdown = CancellationToken::new();
    // The data plane binds first so the control plane hands out the ports actually bound
    // (a configured port 0 becomes a real one in rtmpUrl and playback URLs); the control
    // plane's answers reach the ingest and HLS through `deferred`, filled before serving.
    let deferred = Arc::new(Deferred::default());
    let (authorizer, guard): (Arc<dyn Authorizer>, Arc<dyn PlaybackGuard>) = if serve.allow_any_key
    {
        warn!(
            "--allow-any-key: every stream key is accepted and used as the camera id, playback needs no token; development and benchmarks only"
        );
        (Arc::new(AllowAnyKey), Arc::new(PublicPlayback))
    } else {
        let store: Arc<dyn Authorizer> = deferred.clone();
        let authorizer: Arc<dyn Authorizer> = if serve.streams.is_empty() {
            store
        } else {
            info!(
                keys = serve.streams.len(),
                "stream keys from the config file, then the store"
            );
            Arc::new(FirstOf::new(vec![
                Arc::new(StaticKeys::new(&serve.streams)),
                store,
            ]))
        };
        (authorizer, deferred.clone())
    };
    // A cluster node takes publishers only while it holds its lease (fencing); a single
    // node keeps the authorizer as it is.
    let lease_gate = serve.is_cluster().then(|| {
        Arc::new(LeaseGate {
            inner: authorizer.clone(),
            cluster: OnceLock::new(),
        })
    });
    let authorizer: Arc<dyn Authorizer> = match &lease_gate {
        Some(g) => g.clone(),
        None => authorizer,
    };
    let mut server = Server::bind(serve.dataplane.clone(), authorizer, guard)
        .await
        .context("cannot start the data plane")?;
    let mut cp_config = serve.controlplane_config(server.addrs());
    // The relay binds before the control plane starts, so the node advertises the relay
    // port actually bound. Only a cluster node given --relay-addr runs one: a single node
    // keeps no GOP for edges and opens no UDP socket.
    let relay = match serve.relay_config() {
        Some(rc) => {
            let relay = camstream_dataplane::relay::Relay::bind(rc, &server.data_plane())
                .context("cannot start the relay")?;
            serve.advertise_bound_relay(&mut cp_config, relay.local_addr());
            info!(addr = %relay.local_addr(), "relay (QUIC) listening");
            Some(relay)
        }
        None => {
            if cp_config.cluster.is_some() {
                warn!("cluster node without --relay-addr: other nodes cannot play its cameras");
            }
            None
        }
    };
    // The recorder reports absolute (canonical) paths; the hot tier must be spelled alike.
    cp_config.recordings_dir = Some(server.data_plane().recordings_dir());
    let cp = ControlPlane::start_with_cancel(cp_config, shutdown.child_token())
        .await
        .context("cannot start the control plane")?;
    deferred.fill(&cp);
    // A cluster node with a relay serves any camera: viewers of a camera ingested elsewhere
    // get it pulled from its origin. Without one (or on a single node) the HLS routes
    // answer only for cameras ingested here.
    if let (Some(relay), Some(locator)) = (&relay, cp.origin_locator()) {
        server
            .data_plane()
            .enable_pulls(relay.edge(), locator, shutdown.clone());
    }
    cp.attach_live(Arc::new(server.data_plane()));
    server.data_plane().set_abr_policy(cp.abr_policy());
    if let Some(cluster) = cp.cluster() {
        if let Some(g) = &lease_gate {
            let _ = g.cluster.set(cluster.clone());
        }
        // The origin serves a camera to edges only while this node holds its lease and the
        // placement names it.
        if let Some(r) = &relay {
            r.set_fence(Arc::new(cluster.clone()));
        }
    }
    // Recording: the recorder has repaired the hot tier during bind; the control plane now
    // finishes interrupted tier moves, reconciles the hot tier with its rows, and turns
    // recording on for the cameras stored with isRecording. Nothing records before
    // `server.run`, so no file is growing yet.
    let events = server.take_recording_events();
    let sink = cp
        .start_recordings(Arc::new(recording::Host(server.data_plane())))
        .await
        .context("cannot start the recordings service")?;
    let pump = events.map(|rx| tokio::spawn(recording::pump(rx, sink, shutdown.clone())));
    match server.cert_source() {
        CertSource::Generated(p) => {
            info!(path = %p.display(), "generated a self-signed TLS certificate (use --tls-cert/--tls-key for a real one)")
        }
        CertSource::Reused(p) => {
            info!(path = %p.display(), "using the self-signed TLS certificate generated earlier")
        }
        CertSource::Operator(p) => info!(path = %p.display(), "using the TLS certificate given"),
    }
    camstream_dataplane::log_listeners(server.addrs());
    info!(
        "API: http://{}/api/v1 (docs at /api/docs, metrics at /metrics)",
        server.addrs().http
    );
    let stop = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down");
        stop.cancel();
    });
    let relay_task = relay.map(|r| tokio::spawn(r.run(shutdown.clone())));
    let health = tokio::spawn(report_health(
        server.data_plane(),
        cp.clone(),
        shutdown.clone(),
    ));
    let assets = match &serve.web_dir {
        Some(dir) => {
            info!(dir = %dir.display(), "dashboard served from --web-dir");
            web::Assets::Dir(dir.clone())
        }
        None if !web::Assets::embedded_is_built() => {
            warn!(
                "this binary was built without the web dashboard (web/dist was missing): `/` shows how to build it"
            );
            web::Assets::Embedded
        }
        None => web::Assets::Embedded,
    };
    info!("dashboard: http://{}/", server.addrs().http);
    server
        .run(web::with_dashboard(cp.router(), assets), shutdown)
        .await;
    let _ = health.await;
    if let Some(t) = relay_task {
        let _ = t.await;
    }
    if let Some(pump) = pump {
        let _ = pump.await;
    }
    cp.shutdown().await;
    info!("stopped");
    Ok(())
}

/// Every second: stream health into the control plane (cache, `stream_status`) and the
/// data plane's gauges and counters into `/metrics`.
async fn report_health(dp: DataPlane, cp: ControlPlane, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut cpu = CpuUse::default();
    let mut gauges = gauges::Gauges::new(dp.recordings_dir());
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        let health = dp.health();
        let online = health
            .iter()
            .filter(|h| h.state == camstream_protocol::StreamState::Online)
            .count();
        // The HPA metric of the design keeps its name next to ours; both are this node's
        // publishing cameras.
        metrics::gauge!("camstream_active_streams").set(online as f64);
        metrics::gauge!("active_streams_per_pod").set(online as f64);
        if let Some(cluster) = cp.cluster() {
            let kbps: u64 = health
                .iter()
                .filter(|h| h.state == camstream_protocol::StreamState::Online)
                .map(|h| h.bitrate_bps / 1000)
                .sum();
            cluster.set_load(
                u32::try_from(online).unwrap_or(u32::MAX),
                kbps,
                cpu.sample(),
                dp.transcode_load(),
            );
        }
        let viewers: u64 = health.iter().map(|h| u64::from(h.viewers)).sum();
        let bytes_in: u64 = health.iter().map(|h| h.bytes_in).sum();
        let bytes_out: u64 = health.iter().map(|h| h.bytes_out).sum();
        metrics::gauge!("camstream_streams_active").set(online as f64);
        metrics::gauge!("camstream_viewers").set(viewers as f64);
        metrics::counter!("camstream_bytes_in_total").absolute(bytes_in);
        metrics::counter!("camstream_bytes_out_total").absolute(bytes_out);
        if let Some(used) = gauges.update(&health) {
            cp.report_storage(used).await;
        }
        if let Err(e) = cp.report_health(health).await {
            warn!(error = %e, "stream health not recorded");
        }
    }
}

/// This process's CPU use between two samples, from `/proc/self/stat` (utime + stime in
/// clock ticks, 100 per second on Linux), in per mille of all cores. 0 where that file is
/// not readable.
#[derive(Default)]
struct CpuUse {
    last: Option<(std::time::Instant, u64)>,
}

impl CpuUse {
    fn ticks() -> Option<u64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')')?.1;
        let mut f = rest.split_whitespace().skip(11);
        let utime: u64 = f.next()?.parse().ok()?;
        let stime: u64 = f.next()?.parse().ok()?;
        Some(utime + stime)
    }

    fn sample(&mut self) -> u16 {
        let now = std::time::Instant::now();
        let Some(ticks) = Self::ticks() else { return 0 };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let permille = match self.last {
            Some((t, before)) => {
                let secs = now.duration_since(t).as_secs_f64().max(1e-3);
                (ticks.saturating_sub(before) as f64 / 100.0) / (secs * cores) * 1000.0
            }
            None => 0.0,
        };
        self.last = Some((now, ticks));
        permille.clamp(0.0, 1000.0) as u16
    }
}

/// A cluster node's ingest gate: refuses publishers while the node's own view of its
/// cluster lease has lapsed (cut off from the majority, or still joining), so a camera is
/// never ingested on a node that may already have lost it; otherwise asks `inner`.
struct LeaseGate {
    inner: Arc<dyn Authorizer>,
    cluster: OnceLock<camstream_controlplane::Cluster>,
}

impl Authorizer for LeaseGate {
    fn authorize<'a>(&'a self, req: PublishRequest<'a>) -> BoxFuture<'a, Result<CameraId, Denied>> {
        match self.cluster.get() {
            Some(c) if c.holds_lease() => self.inner.authorize(req),
            Some(_) => Box::pin(std::future::ready(Err(Denied::Fenced(
                "this cluster node does not hold its lease (cut off from the majority?); publish to another node".into(),
            )))),
            None => Box::pin(std::future::ready(Err(Denied::Unavailable(
                "the cluster node is starting".into(),
            )))),
        }
    }
}

/// The control plane's publish authorizer and playback guard, set once it has started.
/// Listeners accept nothing before [`Server::run`], which comes after [`Deferred::fill`], so
/// the unset answers (refusals) are never observed in practice.
#[derive(Default)]
struct Deferred {
    authorizer: OnceLock<Arc<dyn Authorizer>>,
    guard: OnceLock<Arc<dyn PlaybackGuard>>,
}

impl Deferred {
    fn fill(&self, cp: &ControlPlane) {
        let _ = self.authorizer.set(cp.authorizer());
        let _ = self.guard.set(cp.playback_guard());
    }
}

impl Authorizer for Deferred {
    fn authorize<'a>(&'a self, req: PublishRequest<'a>) -> BoxFuture<'a, Result<CameraId, Denied>> {
        match self.authorizer.get() {
            Some(a) => a.authorize(req),
            None => Box::pin(std::future::ready(Err(Denied::Unavailable(
                "the control plane is starting".into(),
            )))),
        }
    }
}

impl PlaybackGuard for Deferred {
    fn check(&self, camera_id: &str, token: Option<&str>) -> Result<(), PlaybackDenied> {
        match self.guard.get() {
            Some(g) => g.check(camera_id, token),
            None => Err(PlaybackDenied::Invalid(
                "the control plane is starting".into(),
            )),
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
