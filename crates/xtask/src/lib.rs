//! # xtask: the repository's chores, in Rust (`cargo xtask <command>`)
//!
//! - [`fixtures`]: the sample events in `events/` (`cargo xtask events`; a test keeps the
//!   committed files equal to what the code makes);
//! - [`runtime_stub`]: a local Lambda Runtime API that times a binary's init
//!   (`cargo xtask cold-start`, used by `make bench`);
//! - [`bootstraps`]: the checks on what `sam build` produced (`cargo xtask check-bootstraps`,
//!   the end of `make build`);
//! - `create-table` (feature `aws`): the config table on DynamoDB Local, from
//!   `adapters::aws::table` (what `make lambda-invoke` uses).

pub mod bootstraps;
pub mod fixtures;
pub mod runtime_stub;

/// The repository root (the crate lives in `crates/xtask`).
pub fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
