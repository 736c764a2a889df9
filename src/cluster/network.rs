//! openraft's network over the p2p plane: one request-response exchange per Raft RPC on the
//! `/swarm/raft` protocol, bodies encoded by `crate::codec`.
//!
//! ```text
//!  openraft core ── append/vote/snapshot ──▶ P2pConnection ── RaftRpc ──▶ Client::request_raft
//!                                                                             │ p2p
//!  remote: Inbound::RaftRequest ──▶ serve() ──▶ raft.append_entries/vote/install_snapshot
//!                                      └── RaftReply (the Result as it is) ──▶ back
//! ```
//!
//! Errors: a peer we cannot reach is `Unreachable` (openraft backs off), any other transport
//! failure is `Network` (retried), and a `Err` from the remote Raft is `RemoteError`.

use libp2p::PeerId;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use super::raft_types::{NodeId, NodeInfo, Raft, TypeConfig};
use crate::codec;
use crate::p2p::{Client, P2pError};

/// A Raft RPC as it crosses the wire.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftRpc {
    Append(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    Snapshot(InstallSnapshotRequest<TypeConfig>),
}

/// The remote Raft's answer, `Result` and all.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftReply {
    Append(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    Snapshot(Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>),
}

/// Builds one connection per target; connections are lazy (p2p dials members itself).
#[derive(Clone)]
pub struct P2pNetwork {
    client: Client,
}

impl P2pNetwork {
    pub fn new(client: Client) -> P2pNetwork {
        P2pNetwork { client }
    }
}

pub struct P2pConnection {
    client: Client,
    target: NodeId,
    /// `None` if the membership carries a peer ID that does not parse: always unreachable.
    peer: Option<PeerId>,
}

impl RaftNetworkFactory<TypeConfig> for P2pNetwork {
    type Network = P2pConnection;

    async fn new_client(&mut self, target: NodeId, node: &NodeInfo) -> P2pConnection {
        P2pConnection {
            client: self.client.clone(),
            target,
            peer: node.peer_id.parse().ok(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum WireError {
    #[error("node {0} has no valid peer ID")]
    BadPeer(NodeId),
    #[error("undecodable reply: {0}")]
    Codec(#[from] codec::CodecError),
    #[error("reply of the wrong kind")]
    WrongKind,
}

type Rpc<E> = RPCError<NodeId, NodeInfo, E>;

impl P2pConnection {
    async fn call<E: std::error::Error>(&self, rpc: &RaftRpc) -> Result<RaftReply, Rpc<E>> {
        let peer = self.peer.ok_or_else(|| {
            RPCError::Unreachable(Unreachable::new(&WireError::BadPeer(self.target)))
        })?;
        let bytes = codec::encode(rpc)
            .map_err(|e| RPCError::Network(NetworkError::new(&WireError::Codec(e))))?;
        let started = std::time::Instant::now();
        let reply = self
            .client
            .request_raft(peer, bytes)
            .await
            .map_err(transport_error)?;
        tracing::trace!(target = self.target, took = ?started.elapsed(), "raft rpc round trip");
        codec::decode(&reply)
            .map_err(|e| RPCError::Network(NetworkError::new(&WireError::Codec(e))))
    }
}

fn transport_error<E: std::error::Error>(e: P2pError) -> Rpc<E> {
    if e.is_unreachable() || matches!(e, P2pError::NotMember(_) | P2pError::Refused { .. }) {
        RPCError::Unreachable(Unreachable::new(&e))
    } else {
        RPCError::Network(NetworkError::new(&e))
    }
}

fn wrong_kind<E: std::error::Error>() -> Rpc<E> {
    RPCError::Network(NetworkError::new(&WireError::WrongKind))
}

impl RaftNetwork<TypeConfig> for P2pConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, Rpc<RaftError<NodeId>>> {
        match self.call(&RaftRpc::Append(rpc)).await? {
            RaftReply::Append(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(wrong_kind()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, Rpc<RaftError<NodeId, InstallSnapshotError>>> {
        match self.call(&RaftRpc::Snapshot(rpc)).await? {
            RaftReply::Snapshot(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(wrong_kind()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, Rpc<RaftError<NodeId>>> {
        match self.call(&RaftRpc::Vote(rpc)).await? {
            RaftReply::Vote(r) => {
                r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            _ => Err(wrong_kind()),
        }
    }
}

/// Answers one inbound Raft RPC. `None` if the request does not decode (the p2p layer then
/// answers with an error when the reply sender is dropped).
pub async fn serve(raft: &Raft, bytes: &[u8]) -> Option<Vec<u8>> {
    let rpc: RaftRpc = match codec::decode(bytes) {
        Ok(rpc) => rpc,
        Err(e) => {
            tracing::warn!(error = %e, "undecodable raft request");
            return None;
        }
    };
    let started = std::time::Instant::now();
    let reply = match rpc {
        RaftRpc::Append(req) => RaftReply::Append(raft.append_entries(req).await),
        RaftRpc::Vote(req) => RaftReply::Vote(raft.vote(req).await),
        RaftRpc::Snapshot(req) => RaftReply::Snapshot(raft.install_snapshot(req).await),
    };
    tracing::trace!(took = ?started.elapsed(), "served a raft rpc");
    codec::encode(&reply).ok()
}
