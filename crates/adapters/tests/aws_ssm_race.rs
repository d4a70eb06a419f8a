//! An SSM write is two steps (PutParameter, then the change-log append), and its Parameter
//! Store Change event can be ingested between them. Either order gives one change per SSM
//! version (DynamoDB Local + moto).
#![cfg(feature = "aws")]

mod common;

use adapters::aws::Clients;
use aws_sdk_ssm::types::ParameterType;
use common::aws::{emulators, store};
use tagged_routing::{ChangeOp, ConfigStore, JsonText, Revision, Version};

#[tokio::test]
async fn an_event_ingested_before_the_api_records_its_write_gives_one_revision() {
    let Some(sdk) = emulators("an_event_ingested_before_the_api_records_its_write").await else {
        return;
    };
    let (tagged, settings) = store(&sdk, "race").await;
    let ssm = adapters::aws::ssm_store(&Clients::from_sdk(&sdk), tagged.routes().clone(), &settings);
    let client = aws_sdk_ssm::Client::new(&sdk);
    let acme = common::conformance::fresh_tenant("race");
    let key = tagged.routes().parse_key("param_config_race/endpoint").unwrap();
    let name = ssm.parameter_name(&acme, &key).unwrap();
    let value = JsonText::parse("\"https://v1.example\"").unwrap();

    // The API's PutParameter lands; its event is ingested before the API's own append.
    client
        .put_parameter()
        .name(&name)
        .value(value.as_str())
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap();
    let ingested = ssm
        .ingest_external(&acme, &key)
        .await
        .unwrap()
        .expect("the event records version 1");
    let recorded = ssm
        .record(&acme, &key, ChangeOp::Put, Version(1), Some(&value), &"alice".into())
        .await
        .unwrap();
    assert_eq!(
        recorded.revision, ingested.revision,
        "the API answers the revision that recorded version 1"
    );
    let log = tagged.changes_since(&acme, Revision(0), 10).await.unwrap();
    assert_eq!(log.len(), 1, "one SSM version, one change: {log:?}");

    // The same for a delete.
    client.delete_parameter().name(&name).send().await.unwrap();
    let ingested = ssm
        .ingest_external(&acme, &key)
        .await
        .unwrap()
        .expect("the event records the delete");
    let recorded = ssm
        .record(&acme, &key, ChangeOp::Delete, Version(1), None, &"alice".into())
        .await
        .unwrap();
    assert_eq!(recorded.revision, ingested.revision);
    assert_eq!(tagged.changes_since(&acme, Revision(0), 10).await.unwrap().len(), 2);

    // In the usual order the API's append records the write, with its author, and the late
    // event adds nothing.
    tagged
        .put(&acme, &key, &value, tagged_routing::Precondition::None, "alice")
        .await
        .unwrap();
    assert!(ssm.ingest_external(&acme, &key).await.unwrap().is_none());
    let log = tagged.changes_since(&acme, Revision(0), 10).await.unwrap();
    assert_eq!(log.len(), 3, "{log:?}");
    assert_eq!(log[2].actor, "alice");
}
