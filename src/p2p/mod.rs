//! p2p: the node-to-node transport. This first part is its wire encoding; the swarm, the
//! member gate and the client follow.

pub mod codec;
