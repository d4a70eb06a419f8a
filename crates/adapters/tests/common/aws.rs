//! Emulator access for the AWS tests.

use adapters::aws::{table, AwsSettings, SsmSettings};
use tagged_routing::{RoutingTable, TaggedStore};

/// The SDK config pointed at the emulators, or `None` (with a note) when they are not running.
pub async fn emulators(test: &str) -> Option<aws_config::SdkConfig> {
    adapters::aws::emulators::sdk_config_or_skip(test, &["DYNAMODB", "SSM"]).await
}

/// A fresh table (from infra/dynamodb/config-table.json) and SSM root for one test.
pub async fn store(sdk: &aws_config::SdkConfig, label: &str) -> (TaggedStore, AwsSettings) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let mut settings = AwsSettings::new(format!("tagcfg-{label}-{nanos}"));
    settings.ssm = SsmSettings {
        root: format!("tagcfg-{label}-{nanos}"),
        ..SsmSettings::default()
    };
    table::create_config_table(&aws_sdk_dynamodb::Client::new(sdk), &settings.table)
        .await
        .expect("create the config table in DynamoDB Local");
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
