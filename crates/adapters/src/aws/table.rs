//! The config table's definition, read from `infra/dynamodb/config-table.json` — the same
//! file the SAM template's table is checked against — so tests create exactly the table
//! production has.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, LocalSecondaryIndex, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;
use serde::Deserialize;
use tagged_routing::{Error, Result};

use super::error::from_sdk;

/// The table definition (CreateTable input without the name).
pub const TABLE_DEFINITION: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../infra/dynamodb/config-table.json"
));

/// The attribute DynamoDB's TTL reads on change-log items.
pub const TTL_ATTRIBUTE: &str = "expires_at";

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Definition {
    attribute_definitions: Vec<Attribute>,
    key_schema: Vec<KeyElement>,
    #[serde(default)]
    local_secondary_indexes: Vec<Index>,
    billing_mode: String,
    stream_specification: Option<Stream>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Attribute {
    attribute_name: String,
    attribute_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct KeyElement {
    attribute_name: String,
    key_type: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Index {
    index_name: String,
    key_schema: Vec<KeyElement>,
    projection: IndexProjection,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct IndexProjection {
    projection_type: String,
}

fn key_element(k: KeyElement) -> Result<KeySchemaElement> {
    KeySchemaElement::builder()
        .attribute_name(k.attribute_name)
        .key_type(KeyType::from(k.key_type.as_str()))
        .build()
        .map_err(bad)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Stream {
    stream_enabled: bool,
    stream_view_type: String,
}

fn bad(e: impl std::fmt::Display) -> Error {
    Error::Backend(format!("infra/dynamodb/config-table.json: {e}"))
}

/// Creates the config table (and its TTL) from the definition file.
pub async fn create_config_table(client: &Client, name: &str) -> Result<()> {
    let def: Definition = serde_json::from_str(TABLE_DEFINITION).map_err(bad)?;
    let mut request = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::from(def.billing_mode.as_str()));
    for a in def.attribute_definitions {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(a.attribute_name)
                .attribute_type(ScalarAttributeType::from(a.attribute_type.as_str()))
                .build()
                .map_err(bad)?,
        );
    }
    for k in def.key_schema {
        request = request.key_schema(key_element(k)?);
    }
    for index in def.local_secondary_indexes {
        let keys = index
            .key_schema
            .into_iter()
            .map(key_element)
            .collect::<Result<Vec<_>>>()?;
        request = request.local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name(index.index_name)
                .set_key_schema(Some(keys))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(index.projection.projection_type.as_str()))
                        .build(),
                )
                .build()
                .map_err(bad)?,
        );
    }
    if let Some(s) = def.stream_specification {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(s.stream_enabled)
                .stream_view_type(StreamViewType::from(s.stream_view_type.as_str()))
                .build()
                .map_err(bad)?,
        );
    }
    request
        .send()
        .await
        .map_err(|e| from_sdk("DynamoDB", "CreateTable", e))?;
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .attribute_name(TTL_ATTRIBUTE)
                .enabled(true)
                .build()
                .map_err(bad)?,
        )
        .send()
        .await
        .map_err(|e| from_sdk("DynamoDB", "UpdateTimeToLive", e))?;
    Ok(())
}
