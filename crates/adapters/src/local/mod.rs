//! The local all-in-one backends: an embedded redb store and an in-process change feed.

pub mod commit_slice;
mod feed;
mod redb_store;
pub mod sealing;

pub use feed::InProcessFeed;
pub use redb_store::RedbStore;
pub use sealing::Keyring;
