//! For integration tests: the AWS SDK configuration pointed at the local emulators.

use std::io::Write;

/// The SDK configuration when `AWS_ENDPOINT_URL_<SERVICE>` is exported for every service
/// named (`make test` exports them for DynamoDB Local and moto). Otherwise prints
/// `SKIPPED <test>: …` on stderr (past libtest's capture of passing tests) and returns
/// `None` — unless `TAGCFG_EMULATORS` is set: under `make test` nothing may be skipped, so
/// missing endpoints there are a failure.
pub async fn sdk_config_or_skip(test: &str, services: &[&str]) -> Option<aws_config::SdkConfig> {
    let missing: Vec<String> = services
        .iter()
        .map(|s| format!("AWS_ENDPOINT_URL_{s}"))
        .filter(|var| std::env::var_os(var).is_none())
        .collect();
    if missing.is_empty() {
        return Some(aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await);
    }
    assert!(
        std::env::var_os("TAGCFG_EMULATORS").is_none(),
        "TAGCFG_EMULATORS is set but {} is not",
        missing.join(", ")
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: no emulators ({} unset); run `make test`",
        missing.join(", ")
    );
    None
}
