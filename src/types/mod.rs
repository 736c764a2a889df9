//! API and state objects in the Docker Engine API's shapes, shared by the API server, the
//! CLI client and (later) the cluster state. Field names and casing are Docker's: the real
//! docker CLI reads them.

pub mod container;
pub mod system;
