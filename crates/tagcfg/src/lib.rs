//! # tagcfg: the command-line tool and the local all-in-one server
//!
//! - [`local`]: `tagcfg serve` — the HTTP API over the embedded redb store and the
//!   in-process change feed, with a dev HS256 secret and demo data, in one process.
//!   Integration tests start it on a random port through [`local::LocalServer`].
//! - [`remote`]: the small HTTP client behind `tagcfg get|put|rm|ls|history|changes`.
//! - [`watch`]: `tagcfg watch`, a Watch stream printed as JSON lines.
//! - [`signals`]: Ctrl-C or SIGTERM, the servers' stop signal.
//! - [`watch_server`]: `tagcfg watch-server`, the standalone watch server of the AWS
//!   deployment (ECS/Fargate behind Cloud Map), fed by `Refresh`, reading misses from
//!   DynamoDB + SSM.
//! - `main.rs`: the clap command line; it only parses arguments and calls these.

pub mod local;
pub mod remote;
pub mod signals;
pub mod watch;
pub mod watch_server;
