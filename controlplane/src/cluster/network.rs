//! The client side of node-to-node traffic: openraft's `RaftNetworkFactory`/`RaftNetwork`
//! over HTTP POSTs with JSON bodies to a peer's `--raft-addr` (`/raft/append`, `/raft/vote`,
//! `/raft/snapshot`), proposals forwarded to the leader (`/raft/propose`), and the join
//! request to a member's API (`/api/v1/cluster/join`). Every request is signed
//! ([`super::auth`]). A peer that cannot be reached is `Unreachable` to openraft (it backs
//! off); a peer that answers with an error status is a network error (it retries).

use std::sync::Arc;
use std::time::Duration;

use camstream_raft_store::openraft::BasicNode;
use camstream_raft_store::openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use camstream_raft_store::openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use camstream_raft_store::openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use camstream_raft_store::{NodeId, NodeInfo, Response, TypeConfig};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::auth::{ClusterKey, NODE_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIME_HEADER};
use super::{Proposal, ProposeFailure, now_ms};

/// Why a request to a peer failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PeerError {
    /// No connection, or no answer in time.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// The peer answered with an error status.
    #[error("HTTP {status}: {body}")]
    Status {
        /// The status.
        status: u16,
        /// The start of the body.
        body: String,
    },
    /// The answer did not decode.
    #[error("bad answer: {0}")]
    Decode(String),
}

/// Signs and sends requests to other nodes. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Peer {
    client: reqwest::Client,
    key: Arc<ClusterKey>,
    me: NodeId,
}

impl Peer {
    pub(crate) fn new(me: NodeId, key: Arc<ClusterKey>) -> Self {
        // reqwest is built without a default TLS provider; the ring one is what the rest of
        // the binary uses (a second install is a no-op).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(1))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client with default settings");
        Self { client, key, me }
    }

    /// POSTs `body` as JSON to `base` + `path`, signed, and decodes the JSON answer.
    pub(crate) async fn post<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        base: &str,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        let bytes = serde_json::to_vec(body).map_err(|e| PeerError::Decode(e.to_string()))?;
        let signed = self.key.sign("POST", path, self.me, now_ms(), &bytes);
        let resp = self
            .client
            .post(format!("{base}{path}"))
            .timeout(timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(NODE_HEADER, signed.node)
            .header(TIME_HEADER, signed.time)
            .header(NONCE_HEADER, signed.nonce)
            .header(SIGNATURE_HEADER, signed.signature)
            .body(bytes)
            .send()
            .await
            .map_err(|e| PeerError::Unreachable(e.to_string()))?;
        let status = resp.status();
        let text = resp
            .bytes()
            .await
            .map_err(|e| PeerError::Unreachable(e.to_string()))?;
        if !status.is_success() {
            return Err(PeerError::Status {
                status: status.as_u16(),
                body: String::from_utf8_lossy(&text[..text.len().min(512)]).into_owned(),
            });
        }
        serde_json::from_slice(&text).map_err(|e| PeerError::Decode(e.to_string()))
    }

    /// Forwards a proposal to the node at raft address `addr` (the leader, as far as we
    /// know).
    pub(crate) async fn propose(
        &self,
        addr: &str,
        p: &Proposal,
        timeout: Duration,
    ) -> Result<Response, ProposeFailure> {
        self.post::<_, Result<Response, ProposeFailure>>(
            &format!("http://{addr}"),
            "/raft/propose",
            p,
            timeout,
        )
        .await
        .unwrap_or_else(|e| Err(ProposeFailure::Failed(e.to_string())))
    }

    /// Asks the member whose API is at `api_url` to add this node.
    pub(crate) async fn join(&self, api_url: &str, info: &NodeInfo) -> Result<(), PeerError> {
        self.post::<_, serde_json::Value>(
            api_url,
            "/api/v1/cluster/join",
            info,
            Duration::from_secs(15),
        )
        .await
        .map(|_| ())
    }
}

/// openraft's network: one [`Conn`] per target node.
#[derive(Clone)]
pub(crate) struct Network {
    peer: Peer,
}

impl Network {
    pub(crate) fn new(peer: Peer) -> Self {
        Self { peer }
    }
}

/// A connection to one target node (connection reuse is reqwest's pool).
pub(crate) struct Conn {
    peer: Peer,
    target: NodeId,
    base: String,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Conn;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Conn {
        Conn {
            peer: self.peer.clone(),
            target,
            base: format!("http://{}", node.addr),
        }
    }
}

impl Conn {
    // The error type is openraft's, as the RaftNetwork methods must return it.
    #[allow(clippy::result_large_err)]
    async fn call<Req, Resp, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, RaftError<NodeId, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let answer: Result<Resp, RaftError<NodeId, E>> = self
            .peer
            .post(&self.base, path, req, option.hard_ttl())
            .await
            .map_err(|e| match e {
                PeerError::Unreachable(m) => RPCError::Unreachable(Unreachable::new(
                    &std::io::Error::new(std::io::ErrorKind::ConnectionRefused, m),
                )),
                other => RPCError::Network(NetworkError::new(&other)),
            })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for Conn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call("/raft/append", &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.call("/raft/snapshot", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.call("/raft/vote", &rpc, &option).await
    }
}
