//! The AWS backends: [`DynamoStore`] (values, head revisions, the change log of every
//! backend) and [`SsmStore`] (Parameter Store values with a shared layer), wired into one
//! [`TaggedStore`] by [`tagged_store`], the function every binary calls.

mod dynamodb;
pub mod error;
pub mod retry;
pub mod scoped;
mod ssm;
pub mod table;

use std::sync::Arc;
use std::time::Duration;

pub use dynamodb::{ChangeItem, DynamoStore, CHANGE_SK_PREFIX, HISTORY_INDEX};
pub use ssm::{SsmSettings, SsmStore};
use tagged_routing::{BackendKind, ConfigStore, RoutingTable, StoreLimits, TaggedStore};

/// How the AWS store is set up.
#[derive(Debug, Clone)]
pub struct AwsSettings {
    pub table: String,
    pub ssm: SsmSettings,
    /// How long change-log items live (DynamoDB TTL), default 7 days.
    pub change_retention: Duration,
}

impl AwsSettings {
    pub fn new(table: impl Into<String>) -> Self {
        AwsSettings {
            table: table.into(),
            ssm: SsmSettings::default(),
            change_retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The AWS clients, built once per process and shared.
#[derive(Clone, Debug)]
pub struct Clients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub ssm: aws_sdk_ssm::Client,
}

impl Clients {
    /// Clients from the shared SDK configuration (`AWS_ENDPOINT_URL_*` included).
    pub fn from_sdk(sdk: &aws_config::SdkConfig) -> Self {
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            ssm: aws_sdk_ssm::Client::new(sdk),
        }
    }
}

/// The value of a (SecureString) parameter outside the config root, decrypted: where a
/// deployed function reads a secret at start instead of from its environment.
pub async fn secure_parameter(ssm: &aws_sdk_ssm::Client, name: &str) -> tagged_routing::Result<String> {
    let out = ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| error::from_sdk("SSM", "GetParameter", e))?;
    out.parameter
        .and_then(|p| p.value)
        .ok_or_else(|| tagged_routing::Error::Backend(format!("parameter {name} has no value")))
}

/// The SSM store (with its change log in the table), alone: what the cache-refresher
/// needs to ingest Parameter Store changes made outside the API.
pub fn ssm_store(clients: &Clients, routes: RoutingTable, settings: &AwsSettings) -> SsmStore {
    let log = DynamoStore::new(clients.dynamodb.clone(), &settings.table, settings.change_retention);
    SsmStore::new(clients.ssm.clone(), Arc::new(log), routes, settings.ssm.clone())
}

/// The store of the AWS deployment: DynamoDB-tagged keys in the table, SSM-tagged keys
/// in Parameter Store, one change log (in the table) for both.
pub fn tagged_store(
    clients: &Clients,
    routes: RoutingTable,
    settings: &AwsSettings,
) -> tagged_routing::Result<TaggedStore> {
    let dynamo = DynamoStore::new(clients.dynamodb.clone(), &settings.table, settings.change_retention);
    let ssm: Arc<dyn ConfigStore> = Arc::new(ssm_store(clients, routes.clone(), settings));
    let dynamo: Arc<dyn ConfigStore> = Arc::new(dynamo);
    let limits = StoreLimits {
        ssm_advanced_tier: settings.ssm.advanced_tier,
    };
    TaggedStore::new(
        routes,
        dynamo.clone(),
        [
            (BackendKind::Dynamodb, dynamo),
            (BackendKind::Ssm, ssm.clone()),
            (BackendKind::SsmSecure, ssm),
        ],
        limits,
    )
}

impl AwsSettings {
    /// | variable | meaning | default |
    /// | --- | --- | --- |
    /// | `TAGCFG_TABLE` | the DynamoDB config table | required |
    /// | `TAGCFG_SSM_ROOT` | first SSM path segment | `tagcfg` |
    /// | `TAGCFG_SSM_KMS_KEY_ID` | KMS key for SecureString | the account's `alias/aws/ssm` |
    /// | `TAGCFG_SSM_ADVANCED_TIER` | `true` for 8 KB parameters | `false` |
    /// | `TAGCFG_CHANGE_RETENTION_DAYS` | change-log TTL | `7` |
    pub fn from_lookup(get: &impl tagged_routing::env::Lookup) -> Result<Self, tagged_routing::env::EnvError> {
        use tagged_routing::env::{flag, number, required, EnvError};
        let mut settings = AwsSettings::new(required(get, "TAGCFG_TABLE")?);
        settings.ssm = SsmSettings {
            root: get("TAGCFG_SSM_ROOT").unwrap_or_else(|| "tagcfg".into()),
            kms_key_id: get("TAGCFG_SSM_KMS_KEY_ID"),
            advanced_tier: flag(get, "TAGCFG_SSM_ADVANCED_TIER")?,
        };
        if settings.ssm.root.is_empty() || settings.ssm.root.contains('/') {
            return Err(EnvError::invalid(
                "TAGCFG_SSM_ROOT",
                "must be one path segment without '/'",
            ));
        }
        settings.change_retention = Duration::from_secs(number(get, "TAGCFG_CHANGE_RETENTION_DAYS", 7)? * 24 * 3600);
        Ok(settings)
    }
}
