//! `/api/v1/cluster`: the cluster as this node sees it (members with addresses, leases, load
//! and cameras; leader, term, commit index), draining and removing nodes (admins,
//! `cluster:manage`), and `POST /api/v1/cluster/join`, which a new node calls with a request
//! signed with the cluster secret (not a user credential; not in the OpenAPI document).
//!
//! On a single node (no `--node-id`) `GET` answers `clustered: false` with empty lists and
//! null figures, and the changes answer 409 CLUSTER_NOT_ENABLED.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use camstream_raft_store::{NodeId, NodeInfo};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{Envelope, Path, ok};
use super::guard::ClientAddr;
use crate::clock::rfc3339;
use crate::cluster::auth::Presented;
use crate::cluster::{Cluster, ClusterStatus, Proposal, ProposeError};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

/// How long an API call waits for a leader to apply a change.
const WRITE_WITHIN: Duration = Duration::from_secs(10);

/// A node's last reported load.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LoadView {
    /// Cameras it ingests.
    active_streams: u32,
    /// Their total ingest bitrate, kbit/s.
    ingest_kbps: u64,
    /// CPU use in per mille of all its cores: the node's own process, not its ABR
    /// transcoders (those count through `transcoding`).
    cpu_permille: u16,
    /// Cameras it transcodes into an ABR ladder now (one ffmpeg each).
    transcoding: u32,
    /// Most cameras it may transcode at once (`--abr-max-cameras`); 0: ABR is off there.
    transcode_max: u32,
}

/// One member.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct MemberView {
    /// Raft node id.
    id: u64,
    /// Base URL of its API.
    api_url: String,
    /// `HOST:PORT` of its raft RPC.
    raft_addr: String,
    /// `HOST:PORT` of its QUIC relay, null when it has none.
    relay_addr: Option<String>,
    /// RTMP URL bases handed to publishers of cameras placed on it.
    rtmp_urls: Vec<String>,
    /// Whether it votes in raft (a joining node is a learner first).
    voter: bool,
    /// Whether its liveness lease holds at the cluster's clock.
    lease_held: bool,
    /// When its lease ends (leader time).
    #[schema(format = DateTime)]
    lease_until: String,
    /// A draining node takes no new cameras and hands its cameras over.
    draining: bool,
    /// Its last reported load.
    load: LoadView,
    /// Cameras placed on it now.
    cameras: u32,
}

/// Where one camera is ingested.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PlacementView {
    /// The camera.
    camera_id: String,
    /// Its origin node, null while it waits for one.
    node_id: Option<u64>,
    /// Bumped on every move; a node is origin only at the current epoch.
    epoch: u64,
}

/// The cluster as the answering node sees it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ClusterView {
    /// `false` on a single node (started without `--node-id`): then every figure is null
    /// and the lists are empty.
    clustered: bool,
    /// The answering node's id.
    node_id: Option<u64>,
    /// The leader this node knows of (null during an election).
    leader_id: Option<u64>,
    /// Whether the answering node is the leader.
    is_leader: bool,
    /// Current raft term.
    term: Option<u64>,
    /// Last committed log index this node saved.
    commit_index: Option<u64>,
    /// Last log index applied to this node's state.
    last_applied: Option<u64>,
    /// The cluster's clock: the latest leader time applied.
    #[schema(format = DateTime)]
    clock: Option<String>,
    /// Whether the answering node holds its own lease (its conservative view).
    lease_held: bool,
    /// Members by id.
    members: Vec<MemberView>,
    /// Camera placements by camera id.
    cameras: Vec<PlacementView>,
}

fn ms(v: u64) -> String {
    rfc3339(i64::try_from(v).unwrap_or(i64::MAX))
}

impl From<ClusterStatus> for ClusterView {
    fn from(s: ClusterStatus) -> Self {
        Self {
            clustered: true,
            node_id: Some(s.node_id),
            leader_id: s.leader,
            is_leader: s.is_leader,
            term: Some(s.term),
            commit_index: s.commit_index,
            last_applied: s.last_applied,
            clock: Some(ms(s.clock_ms)),
            lease_held: s.own_lease_held,
            members: s
                .members
                .into_iter()
                .map(|m| MemberView {
                    id: m.id,
                    api_url: m.info.api_url,
                    raft_addr: m.info.raft_addr,
                    relay_addr: Some(m.info.relay_addr).filter(|a| !a.is_empty()),
                    rtmp_urls: m.info.rtmp_addrs,
                    voter: m.voter,
                    lease_held: m.lease_held,
                    lease_until: ms(m.lease_until_ms),
                    draining: m.draining,
                    load: LoadView {
                        active_streams: m.load.active_streams,
                        ingest_kbps: m.load.ingest_kbps,
                        cpu_permille: m.load.cpu_permille,
                        transcoding: m.load.transcoding,
                        transcode_max: m.load.transcode_max,
                    },
                    cameras: m.cameras,
                })
                .collect(),
            cameras: s
                .cameras
                .into_iter()
                .map(|(camera_id, node_id, epoch)| PlacementView {
                    camera_id,
                    node_id,
                    epoch,
                })
                .collect(),
        }
    }
}

fn single_node() -> ClusterView {
    ClusterView {
        clustered: false,
        node_id: None,
        leader_id: None,
        is_leader: false,
        term: None,
        commit_index: None,
        last_applied: None,
        clock: None,
        lease_held: false,
        members: Vec::new(),
        cameras: Vec::new(),
    }
}

fn clustered(state: &AppState) -> Result<&Cluster, ApiError> {
    state.cluster.as_ref().ok_or_else(|| {
        ApiError::new(
            ErrorCode::ClusterNotEnabled,
            "this node runs alone (started without --node-id)",
        )
    })
}

fn valid_node(node: NodeId) -> Result<(), ApiError> {
    if node == 0 {
        return Err(ApiError::validation("node", "must be 1 or more"));
    }
    Ok(())
}

fn failed(e: ProposeError) -> ApiError {
    match e {
        ProposeError::UnknownNode(n) => {
            ApiError::new(ErrorCode::NodeNotFound, format!("no cluster member {n}"))
        }
        other => ApiError::new(ErrorCode::ServiceUnavailable, other.to_string()),
    }
}

/// The cluster: members, leader, term, commit index, placements.
#[utoipa::path(get, path = "/api/v1/cluster", operation_id = "getCluster", tag = "cluster", security(("bearer" = [])),
    responses(
        (status = 200, description = "The cluster as this node sees it; `clustered: false` on a single node", body = Envelope<ClusterView>),
    ))]
pub(crate) async fn status(State(state): State<AppState>) -> Response {
    let view = state
        .cluster
        .as_ref()
        .map_or_else(single_node, |c| c.status().into());
    ok(view).into_response()
}

/// The applied cluster state machine of this node at one log position.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AppliedState {
    /// This node.
    node_id: u64,
    /// Term of the last log entry applied (null before any).
    last_applied_term: Option<u64>,
    /// Index of the last log entry applied (null before any).
    last_applied_index: Option<u64>,
    /// SHA-256 (hex) of `state` serialized as JSON: equal on two nodes at the same index
    /// when their state machines agree.
    digest: String,
    /// The state machine (members with leases and load, placements with epochs, clock), as
    /// replicated.
    #[schema(value_type = Object)]
    state: serde_json::Value,
}

/// The applied state machine and the log position it reflects, read together: compare two
/// nodes at the same `lastAppliedIndex` (a debugging and test aid).
#[utoipa::path(get, path = "/api/v1/cluster/state", operation_id = "getClusterState", tag = "cluster", security(("bearer" = [])),
    responses(
        (status = 200, description = "The applied state machine", body = Envelope<AppliedState>),
        (status = 409, description = "CLUSTER_NOT_ENABLED: this node runs alone", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn applied_state(State(state): State<AppState>) -> Result<Response, ApiError> {
    let cluster = clustered(&state)?;
    let (at, digest, value) = cluster.applied_state();
    Ok(ok(AppliedState {
        node_id: cluster.node_id(),
        last_applied_term: at.map(|a| a.0),
        last_applied_index: at.map(|a| a.1),
        digest,
        state: value,
    })
    .into_response())
}

/// What a drain or removal did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeChange {
    /// The node.
    node_id: u64,
    /// Whether it is draining now.
    draining: bool,
    /// Whether it was removed.
    removed: bool,
}

/// Drain a node: it takes no new cameras, and the scheduler moves its cameras to others.
#[utoipa::path(post, path = "/api/v1/cluster/nodes/{node}/drain", operation_id = "drainClusterNode", tag = "cluster", security(("bearer" = [])),
    params(("node" = u64, Path, minimum = 1, description = "Node id")),
    responses(
        (status = 200, description = "Draining", body = Envelope<NodeChange>),
        (status = 404, description = "NODE_NOT_FOUND", body = crate::error::ErrorEnvelope),
        (status = 409, description = "CLUSTER_NOT_ENABLED: this node runs alone", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn drain(
    State(state): State<AppState>,
    Path(node): Path<NodeId>,
) -> Result<Response, ApiError> {
    valid_node(node)?;
    let cluster = clustered(&state)?;
    cluster
        .propose(
            Proposal::Drain {
                node,
                draining: true,
            },
            WRITE_WITHIN,
        )
        .await
        .map_err(failed)?;
    Ok(ok(NodeChange {
        node_id: node,
        draining: true,
        removed: false,
    })
    .into_response())
}

/// Remove a node from the cluster (raft membership and state); its cameras are re-placed.
#[utoipa::path(delete, path = "/api/v1/cluster/nodes/{node}", operation_id = "removeClusterNode", tag = "cluster", security(("bearer" = [])),
    params(("node" = u64, Path, minimum = 1, description = "Node id")),
    responses(
        (status = 200, description = "Removed", body = Envelope<NodeChange>),
        (status = 404, description = "NODE_NOT_FOUND", body = crate::error::ErrorEnvelope),
        (status = 409, description = "CLUSTER_NOT_ENABLED: this node runs alone", body = crate::error::ErrorEnvelope),
    ))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    Path(node): Path<NodeId>,
) -> Result<Response, ApiError> {
    valid_node(node)?;
    let cluster = clustered(&state)?;
    cluster
        .propose(Proposal::Remove { node }, WRITE_WITHIN)
        .await
        .map_err(failed)?;
    Ok(ok(NodeChange {
        node_id: node,
        draining: false,
        removed: true,
    })
    .into_response())
}

/// `POST /api/v1/cluster/join`: a node asks to be added; forwarded to the leader.
pub(crate) async fn join(
    State(state): State<AppState>,
    ClientAddr(peer): ClientAddr,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let cluster = clustered(&state)?;
    let from = cluster
        .verify(
            "POST",
            "/api/v1/cluster/join",
            Presented::from_headers(&headers),
            &body,
        )
        .map_err(|e| {
            tracing::warn!(peer = ?peer, error = %e, "refused an unauthenticated cluster join");
            ApiError::new(ErrorCode::ClusterAuthInvalid, "cluster signature refused")
        })?;
    let info: NodeInfo =
        serde_json::from_slice(&body).map_err(|e| ApiError::validation("body", e.to_string()))?;
    if info.id == 0 || info.id != from {
        return Err(ApiError::validation(
            "id",
            "must be the signing node's id, 1 or more",
        ));
    }
    let id = info.id;
    cluster
        .propose(Proposal::Join(info), WRITE_WITHIN)
        .await
        .map_err(failed)?;
    tracing::info!(node = id, peer = ?peer, "accepted a join");
    Ok(ok(serde_json::json!({ "nodeId": id })).into_response())
}
