//! The listener on `--raft-addr`: openraft's RPCs from the other nodes and the proposals
//! they forward to the leader, each a signed JSON POST. Unsigned, wrongly signed, stale or
//! replayed requests get 401 and a warning naming the peer address; nothing else is served.

use std::net::SocketAddr;

use axum::Json;
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use camstream_raft_store::openraft::raft::{
    AppendEntriesRequest, InstallSnapshotRequest, VoteRequest,
};
use camstream_raft_store::{NodeId, TypeConfig};
use tokio_util::sync::CancellationToken;

use super::auth::Presented;
use super::{CameraControl, Cluster, Proposal, now_ms};

/// Largest RPC body: snapshots of the cluster state travel whole.
const MAX_BODY: usize = 64 << 20;

/// Serves the raft listener until `cancel`.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    cluster: Cluster,
    cancel: CancellationToken,
) {
    let app = router(cluster).into_make_service_with_connect_info::<SocketAddr>();
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(cancel.cancelled_owned())
        .await
    {
        tracing::error!(error = %e, "raft listener failed");
    }
}

fn router(cluster: Cluster) -> Router {
    Router::new()
        .route("/raft/append", post(append))
        .route("/raft/vote", post(vote))
        .route("/raft/snapshot", post(snapshot))
        .route("/raft/propose", post(propose))
        .route("/cluster/camera", post(camera_control))
        .route("/cluster/events", post(events))
        .layer(from_fn_with_state(cluster.clone(), authenticate))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(cluster)
}

/// Verifies the signature over the whole body; refuses with 401 and a warning otherwise.
async fn authenticate(
    State(cluster): State<Cluster>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    match cluster.inner.key.verify(
        parts.method.as_str(),
        parts.uri.path(),
        Presented::from_headers(&parts.headers),
        &bytes,
        now_ms(),
    ) {
        Ok(_) => {
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
        Err(e) => {
            tracing::warn!(%peer, path = %parts.uri.path(), error = %e, "refused an unauthenticated cluster request");
            (StatusCode::UNAUTHORIZED, e.to_string()).into_response()
        }
    }
}

fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, (StatusCode, String)> {
    serde_json::from_slice(body).map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))
}

async fn append(State(c): State<Cluster>, body: Bytes) -> Response {
    let rpc: AppendEntriesRequest<TypeConfig> = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    Json(c.inner.raft.append_entries(rpc).await).into_response()
}

async fn vote(State(c): State<Cluster>, body: Bytes) -> Response {
    let rpc: VoteRequest<NodeId> = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    Json(c.inner.raft.vote(rpc).await).into_response()
}

async fn snapshot(State(c): State<Cluster>, body: Bytes) -> Response {
    let rpc: InstallSnapshotRequest<TypeConfig> = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    Json(c.inner.raft.install_snapshot(rpc).await).into_response()
}

async fn propose(State(c): State<Cluster>, body: Bytes) -> Response {
    let p: Proposal = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    Json(c.propose_here(p).await).into_response()
}

async fn camera_control(State(c): State<Cluster>, body: Bytes) -> Response {
    let control: CameraControl = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    Json(c.apply_camera_control(&control)).into_response()
}

/// Events relayed by another node (`events::relay`).
async fn events(State(c): State<Cluster>, body: Bytes) -> Response {
    let batch: Vec<crate::events::NewEvent> = match json_body(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    Json(c.apply_events(batch)).into_response()
}
