//! # push: the fan-out of changes to the services that read them
//!
//! Services hold a `Watch` stream (protocol `tagcfg.v2.ConfigWatch`) and receive every
//! change of what their tenant reads as it happens — the push half of "fresh within a
//! second, load grows with changes". The `watch-server` binary (ECS) and the local server
//! both host it.
//!
//! - [`pb`]: the generated `tagcfg.v2` protocol (`proto/`: `ConfigWatch` for tenants,
//!   `ConfigRefresh` for the cache-refresher), built without `protoc`;
//! - [`hub::Hub`]: fan-out of every owner's log (tenant, tier, shared) to the tenants that
//!   read through it, as effective values resolved by the domain's one rule; per-log order,
//!   replay ring and gap-filling; a cursor over the logs a stream follows; the per-owner
//!   cache behind `Get`; bounded per-subscriber buffers (a slow subscriber is cut off with a
//!   `resync`, never buffered without bound);
//! - [`mailbox`]: the bounded queue from the hub to one stream;
//! - [`service::PushService`]: both tonic services: tenant tokens for `Get`/`Watch`, the
//!   service credential for `Refresh`;
//! - [`server`]: [`PushServer`], the gRPC server with grpc.health.v1 and reflection (v1 and
//!   v1alpha), on a listener you give it, `TCP_NODELAY` on every connection;
//! - [`shutdown`]: Ctrl-C or SIGTERM, the servers' stop signal;
//! - [`codec`]: protobuf with small per-stream buffers (memory per open stream);
//! - [`frame`]: what the `Watch` server sends, a `WatchEvent` encoded once for every stream
//!   that sends the same one;
//! - `convert`: domain ↔ protobuf, and the one mapping of errors to gRPC codes.

pub mod codec;
mod convert;
pub mod frame;
pub mod hub;
pub mod mailbox;
pub mod server;
pub mod service;
pub mod shutdown;

/// The generated protocol.
pub mod pb {
    tonic::include_proto!("tagcfg.v2");
    // The servers, generated over the messages above (build.rs).
    include!(concat!(env!("OUT_DIR"), "/servers/tagcfg.v2.rs"));

    /// The descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("tagcfg_descriptor");
}

pub use convert::{change_from_pb, change_to_pb, cursor_from_pb, cursor_to_pb, layer_from_pb, layer_to_pb, status_of};
pub use hub::{Cursor, Hub, HubConfig};
pub use server::{serve, PushServer};
pub use service::PushService;
pub use serving::{TenantLimiter, TenantLimits};
