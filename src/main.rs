//! The `camstream` binary: parses the configuration, starts the planes, waits for a signal.

mod config;

use std::sync::Arc;

use anyhow::Context;
use camstream_dataplane::auth::{AllowAnyKey, Authorizer, PublicPlayback, StaticKeys};
use camstream_dataplane::{CertSource, Server};
use clap::Parser;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::{Cli, Command, LogFormat, ServeArgs};

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(args)) => *args,
        None => ServeArgs::parse_from_env(),
    };
    let serve = args.resolve()?;
    init_logging(serve.log_format);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("camstream")
        .build()
        .context("cannot start the async runtime")?
        .block_on(run(serve))
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
    let authorizer: Arc<dyn Authorizer> = if serve.allow_any_key {
        warn!(
            "--allow-any-key: every stream key is accepted and used as the camera id; development and benchmarks only"
        );
        Arc::new(AllowAnyKey)
    } else {
        if serve.streams.is_empty() {
            warn!(
                "no stream keys configured: every publish is refused (add a [streams] table to the --config file, or use --allow-any-key for development)"
            );
        } else {
            info!(
                keys = serve.streams.len(),
                "stream keys loaded from the config file"
            );
        }
        Arc::new(StaticKeys::new(&serve.streams))
    };
    let server = Server::bind(
        serve.dataplane.clone(),
        authorizer,
        Arc::new(PublicPlayback),
    )
    .await
    .context("cannot start the data plane")?;
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
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutting down");
        stop.cancel();
    });
    server.run(axum::Router::new(), shutdown).await;
    info!("stopped");
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
