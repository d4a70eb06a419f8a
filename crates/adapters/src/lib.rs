//! # adapters: the stores and feeds behind the ports of `tagged-routing`
//!
//! - [`memory`] (always): the in-memory store, for tests (re-exported from the domain).
//! - [`local`] (feature `local`): [`local::RedbStore`], the embedded store of
//!   `tagcfg serve`, and [`local::InProcessFeed`], its change feed.
//! - `aws` (feature `aws`): the DynamoDB and SSM Parameter Store adapters.
//!
//! Each adapter maps its own errors into [`tagged_routing::Error`] in one place.

pub use tagged_routing::memory;

#[cfg(feature = "local")]
pub mod local;

#[cfg(feature = "aws")]
pub mod aws;
