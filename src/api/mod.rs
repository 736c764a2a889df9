//! The HTTP API, in the Docker Engine API's shape, over a Unix socket.
//!
//! ```text
//!  CLI / docker CLI ──HTTP/1.1 + JSON──▶ server.rs  strips /v1.xx, checks the version,
//!                                          │          sets Api-Version on every answer
//!                                          ▼
//!                                 handlers (system.rs, …): parse the request, call the
//!                                 Backend the daemon implements, return JSON or ApiError
//!  swarm CLI ◀── client.rs (hyper over the socket; errors carry Docker's {"message"})
//! ```
//!
//! Handlers hold no logic: they turn a request into a typed call on [`Backend`] and its
//! result into JSON. Errors are `{"message": …}` with `Content-Type: application/json`
//! exactly (the docker CLI parses the body only then) and Docker's status codes.

mod auth;
pub mod client;
pub mod containers;
pub mod error;
pub mod exec;
pub mod images;
pub mod networks;
pub mod server;
pub mod services;
pub mod swarm;
mod system;
pub mod volumes;

pub use error::ApiError;
pub use server::{Backend, serve};

/// The API version we advertise (`Api-Version` header).
pub const API_VERSION: &str = "1.50";
/// The oldest `/v1.xx` prefix accepted (swarm mode needs 1.24).
pub const MIN_API_VERSION: &str = "1.24";
/// Default socket of the daemon.
pub const DEFAULT_SOCKET: &str = "/run/swarm/swarm.sock";
