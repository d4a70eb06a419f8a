//! # serving: accepting and holding connections within limits
//!
//! Both servers (the HTTP API of `tagcfg serve`, the gRPC push server of `tagcfg serve` and
//! of the ECS watch server) accept connections through this crate, so one idle or hostile
//! client cannot take the process's file descriptors or spin its CPU:
//!
//! - [`ConnLimits`]: the limits, with defaults and `TAGCFG_*` variables;
//! - [`Incoming`]: the accept loop — at most `max_connections` open at once (the rest wait
//!   in the kernel's backlog), `TCP_NODELAY` on every socket, and a backoff from 10 ms to
//!   1 s when `accept` fails for want of descriptors or memory (`EMFILE`, `ENFILE`,
//!   `ENOBUFS`, `ENOMEM`) instead of retrying at once;
//! - [`Guarded`]: an accepted socket that holds its connection slot and closes itself
//!   after `idle_timeout` without a byte in either direction; on the gRPC server it also
//!   gathers the frames many HTTP/2 streams produce at once into one write
//!   ([`Incoming::coalescing_writes`]);
//! - [`serve_http`]: HTTP/1.1 over [`Incoming`] with a header-read timeout and graceful
//!   shutdown. The gRPC server (`push::server`) hands [`Incoming`] to tonic and sets the
//!   HTTP/2 limits from the same [`ConnLimits`].
//!
//! - [`tenant_limits`]: per-tenant token buckets for reads and writes, which the HTTP API
//!   and the gRPC `Get` of one server share.
//!
//! The request timeout is the router's and the gRPC server's own (a deadline per request,
//! answered with a typed error), not a property of the connection.

mod guarded;
mod http;
mod incoming;
mod limits;
pub mod tenant_limits;

pub use guarded::Guarded;
pub use http::serve_http;
pub use incoming::Incoming;
pub use limits::{ConnLimits, H2_KEEPALIVE_INTERVAL, H2_KEEPALIVE_TIMEOUT};
pub use tenant_limits::{TenantLimiter, TenantLimits};
