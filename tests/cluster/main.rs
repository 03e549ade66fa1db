//! End-to-end tests of the cluster node shell (issue 10): real `camstream serve` processes
//! sharing one PostgreSQL database, each with `--node-id`, `--raft-addr` and the cluster
//! secret, join into one cluster through `--join`; every node's `GET /api/v1/cluster` shows
//! the same members and leader; a raft RPC signed with another secret is refused with 401
//! and logged with the peer's address; `kill -9` of the leader gives a new leader among the
//! survivors (the time is printed, run with `--nocapture`); a viewer on any node plays a
//! camera ingested on another through the QUIC relay, and keeps playing when the ingest
//! node is killed and the publisher reconnects elsewhere (`relay`); a node cut off from the
//! others by fault-injecting raft proxies is fenced and rejoins (`partition`); `kill -9` of
//! a follower and of the leader under continuous placements loses nothing (`crash`); a
//! recording made on one node is served and deleted through others (`recordings`); the ABR
//! renditions of a camera transcoded on one node play on another over HLS and WHEP (`abr`).

#[path = "../common/mod.rs"]
mod common;

mod abr;
mod crash;
mod events;
mod failover;
mod nodes;
mod partition;
mod proxy;
mod recordings;
mod relay;
