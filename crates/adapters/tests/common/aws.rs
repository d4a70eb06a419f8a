//! Emulator access for the AWS tests.

use adapters::aws::{AwsSettings, SsmSettings};
use tagged_routing::{RoutingTable, TaggedStore};

/// The SDK config pointed at the emulators, or `None` (with a note) when they are not running.
pub async fn emulators(test: &str) -> Option<aws_config::SdkConfig> {
    testkit::emulators::sdk_config_or_skip(test, &["DYNAMODB", "SSM"]).await
}

/// A fresh table (from infra/dynamodb/config-table.json) and SSM root for one test.
pub async fn store(sdk: &aws_config::SdkConfig, label: &str) -> (TaggedStore, AwsSettings) {
    let name = testkit::emulators::fresh_table(sdk, label).await;
    let mut settings = AwsSettings::new(name.clone());
    settings.ssm = SsmSettings {
        root: name,
        ..SsmSettings::default()
    };
    (
        adapters::aws::tagged_store(
            &adapters::aws::Clients::from_sdk(sdk),
            RoutingTable::default(),
            &settings,
        )
        .unwrap(),
        settings,
    )
}
