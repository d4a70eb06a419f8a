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

/// A name no other test, nor an earlier run against the same long-lived emulator, has used:
/// `tagcfg-<label>-<nanoseconds since the epoch>`. Tables, SSM roots, buses, queues and
/// namespaces of one test all take it.
pub fn unique_name(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("tagcfg-{label}-{nanos}")
}

/// Creates a config table (the shape in `infra/dynamodb/config-table.json`) under a
/// [`unique_name`] and returns the name. Panics when the emulator refuses: a test with no
/// table cannot say anything.
pub async fn fresh_table(sdk: &aws_config::SdkConfig, label: &str) -> String {
    let name = unique_name(label);
    adapters::aws::table::create_config_table(&aws_sdk_dynamodb::Client::new(sdk), &name)
        .await
        .unwrap_or_else(|e| panic!("create the config table {name} in DynamoDB Local: {e}"));
    name
}
