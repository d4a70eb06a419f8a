//! # testkit: helpers shared by the tests of several crates
//!
//! A dev-dependency only: no production crate depends on it (`cargo tree -e normal` of any
//! binary shows it nowhere).
//!
//! - [`auth`]: the dev-token verifier, the test identity provider (RS256 tokens, its JWKS),
//!   authorised gRPC requests and `Watch` streams.
//! - [`layers`]: the layer conformance suite — one scripted sequence of operator and tenant
//!   writes, checked at every step against every reader (HTTP, gRPC `Get`, a `Watch`
//!   stream's view, a resumed `Watch` stream, the Lambda's `CachedStore`, the Rust client),
//!   run against any [`layers::Deployment`]: the local server, or the emulator stack.
//! - [`governance`]: the governance suite — schemas, override policies, conflicts on
//!   registration and effective values, through the HTTP API of any deployment.
//! - [`faults`]: an HTTP client under the AWS SDK that injects throttling, 5xx, timeouts,
//!   transaction conflicts, lost responses and partial `PutEvents` failures, by rate or by
//!   script, into every client built from its configuration.
//! - [`linearizability`]: concurrent HTTP clients' histories on a few keys, checked per key
//!   against a versioned register (the Wing & Gong / Lowe search, as Porcupine does).
//! - [`stores`]: a store decorator that counts backend reads and can make the change log
//!   forget old revisions.
//! - [`serve`]: `tagcfg serve` as a child process on free ports, its banner read (tests of
//!   the binary, the watch benchmark); SIGTERM to stop a server process.
//! - [`data_dir`]: an owner-only temporary data directory for a server.
//! - [`emulators`]: the AWS SDK configuration for DynamoDB Local and moto (or a skip note
//!   outside `make test`), unique names and fresh config tables.

pub mod auth;
pub mod emulators;
pub mod faults;
pub mod governance;
pub mod layers;
pub mod linearizability;
pub mod serve;
pub mod stores;

/// Writes a suite's counts to stderr past libtest's capture, so `make test` shows them for
/// passing tests too (`println!` is only shown for failures).
pub fn report(line: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A temporary data directory for a server, owner-only (0700) as the local server requires
/// of its data directory (a plain temporary directory may be 0755 under the test's umask).
pub fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).expect("chmod 700");
    }
    dir
}
