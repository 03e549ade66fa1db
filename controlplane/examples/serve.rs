//! Serves the control plane alone, for trying the API and the Swagger UI by hand:
//! `cargo run -p camstream-controlplane --example serve -- [ADDR] [DATA_DIR]`
//! (defaults `127.0.0.1:8080` and `./data`). The admin password is taken from
//! `CAMSTREAM_ADMIN_PASSWORD`, or generated and logged on first start.

use std::net::SocketAddr;

use anyhow::Result;
use camstream_controlplane::{ControlPlane, ControlPlaneConfig};

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = args.next().as_deref().unwrap_or("127.0.0.1:8080").parse()?;
    let data_dir = args.next().unwrap_or_else(|| "./data".into());
    let cp = ControlPlane::start(ControlPlaneConfig {
        data_dir: data_dir.into(),
        admin_password: std::env::var("CAMSTREAM_ADMIN_PASSWORD").ok(),
        public_base_url: format!("http://{addr}"),
        ..ControlPlaneConfig::default()
    })
    .await?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /api/v1, /api/docs, /metrics");
    axum::serve(
        listener,
        cp.router()
            .into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    cp.shutdown().await;
    Ok(())
}
