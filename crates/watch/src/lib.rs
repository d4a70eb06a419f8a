//! # watch: the gRPC watch server
//!
//! Services hold a `Watch` stream and receive every change of their tenant as it
//! happens — the push half of "fresh within a second, load grows with changes".
//!
//! - [`pb`]: the generated `tagcfg.v1.ConfigWatch` protocol (`proto/`), built without
//!   `protoc`;
//! - [`hub::Hub`]: per-tenant fan-out in revision order, a replay ring, the per-tenant value
//!   cache behind `Get`, idempotent by tenant + revision, gap-filling from the store's
//!   change log, and bounded per-subscriber buffers (a slow subscriber is cut off with a
//!   `resync`, never buffered without bound);
//! - [`service::WatchService`]: the tonic service: tenant tokens for `Get`/`Watch`, the
//!   service credential for `Refresh`;
//! - [`server`]: the server with grpc.health.v1 and reflection, on a listener you give it;
//! - [`codec`]: protobuf with small per-stream buffers (memory per open stream);
//! - `convert`: domain ↔ protobuf, and the one mapping of errors to gRPC codes.

pub mod codec;
mod convert;
pub mod hub;
pub mod server;
pub mod service;

/// The generated protocol.
pub mod pb {
    tonic::include_proto!("tagcfg.v1");

    /// The descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("tagcfg_descriptor");
}

pub use convert::{change_from_pb, change_to_pb, status_of};
pub use hub::{Hub, HubConfig};
pub use server::{serve, WatchServer};
pub use service::WatchService;
