//! # tagged-routing: the domain of tagcfg
//!
//! Configuration keys carry a *tag* (their prefix) and the tag decides which backend stores
//! the key. This crate holds everything that is true whatever the backend is, and does no I/O:
//!
//! - [`TenantId`], [`TierName`] and [`Owner`]: whose configuration a call touches (a tenant,
//!   a tier or the shared layer).
//! - [`layers`]: the tenant → tier → shared stack and the one resolution rule every reader
//!   and every cache uses.
//! - [`Key`], [`Tag`], [`BackendKind`] and the [`RoutingTable`] that parses a raw key into them
//!   (longest matching tag wins).
//! - The values: [`JsonText`], [`ConfigItem`], [`Version`], [`Revision`], [`Change`],
//!   [`Precondition`], [`HistoryEntry`].
//! - The ports the adapters implement: [`ConfigStore`] (values, change log, head revision),
//!   [`ChangeLog`] (guarded appends for backends that keep values elsewhere) and
//!   [`ChangeSink`] (where committed changes are announced).
//! - [`TaggedStore`]: the Strategy dispatcher that sends each call to the store of its tag's
//!   backend and keeps one change log per tenant across backends.
//! - [`rules`]: the write semantics (preconditions, versions, revisions) every store applies.
//! - [`memory::MemoryStore`]: an in-memory store for tests.
//! - [`env`]: typed configuration from the environment, errors naming the variable.
//! - [`governance`]: JSON Schemas per key or prefix and the override policy of each.
//! - [`scope`]: the tenant a request acts for ([`scope::as_tenant`]) and [`scope::Fenced`],
//!   the store decorator that holds every call of that request to that tenant's layer.
//!
//! One error type, [`Error`], covers every failure; the HTTP and gRPC layers map it to a
//! status in one place each.

pub mod env;
mod error;
pub mod governance;
mod key;
pub mod layers;
pub mod memory;
mod model;
mod ports;
mod routing;
pub mod rules;
pub mod scope;
mod tagged_store;
mod tenant;

pub use error::{Error, Result};
pub use key::{validate_name, BackendKind, Key, Tag, MAX_NAME_LEN};
pub use layers::{is_visible, resolve, LayerSource, LayerStack};
pub use model::{
    now_rfc3339, Author, Change, ChangeOp, ConfigItem, HistoryEntry, JsonText, Layer, Page, Precondition, Revision,
    SetWrite, ValueOmitted, Version, INLINE_VALUE_LIMIT, MAX_JSON_DEPTH, MAX_REASON_CHARS, MAX_SET_WRITES,
};
pub use ports::{
    guard_allows, value_in_history, AppendGuard, ChangeLog, ChangeSink, ConfigStore, Recorded, REVERTIBLE_VERSIONS,
};
pub use routing::{RoutingTable, DEFAULT_ROUTES};
pub use tagged_store::{StoreLimits, TaggedStore};
pub use tenant::{Owner, TenantId, TierName, SHARED_OWNER, TIER_OWNER_PREFIX};
