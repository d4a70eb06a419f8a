//! The conformance suite and the AWS-specific guarantees against DynamoDB Local and moto,
//! through the real AWS SDK. `make test` starts both emulators and sets
//! `TAGCFG_EMULATORS=1`; without it these tests say they were skipped.
#![cfg(feature = "aws")]

mod common;

use std::sync::Arc;

use common::aws::{emulators, store};
use tagged_routing::{ConfigStore, Error, JsonText, Precondition, Revision, Version};

#[tokio::test]
async fn aws_stores_conform() {
    let Some(sdk) = emulators("aws_stores_conform").await else {
        return;
    };
    let (store, _) = store(&sdk, "conf").await;
    common::conformance::run_all(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_log_port_conforms_on_dynamodb() {
    let Some(sdk) = emulators("the_change_log_port_conforms_on_dynamodb").await else {
        return;
    };
    let table = testkit::emulators::fresh_table(&sdk, "log").await;
    let log = adapters::aws::DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        table,
        std::time::Duration::from_secs(3600),
    );
    common::change_log::run_all(Arc::new(log)).await;
}

#[tokio::test]
async fn concurrent_if_match_writers_lose_no_update_and_revisions_are_gap_free() {
    let Some(sdk) = emulators("concurrent_if_match_writers").await else {
        return;
    };
    let (store, _) = store(&sdk, "race").await;
    let store = Arc::new(store);
    let acme = common::conformance::fresh_tenant("race");
    let key = store.routes().parse_key("tenant_config_counter").unwrap();
    store
        .put(&acme, &key, &JsonText::parse("0").unwrap(), Precondition::None, "init")
        .await
        .unwrap();

    let mut writers = Vec::new();
    for w in 0..8 {
        let (store, acme, key) = (store.clone(), acme.clone(), key.clone());
        writers.push(tokio::spawn(async move {
            let mut successes = Vec::new();
            for _ in 0..50 {
                let current = store.get(&acme, &key).await.unwrap().unwrap();
                let n: u64 = current.value.as_str().parse().unwrap();
                let next = JsonText::parse(&(n + 1).to_string()).unwrap();
                match store
                    .put(
                        &acme,
                        &key,
                        &next,
                        Precondition::IfVersion(current.version),
                        &format!("w{w}"),
                    )
                    .await
                {
                    Ok(item) => successes.push(item.revision),
                    Err(Error::VersionMismatch { .. }) | Err(Error::Conflict(_)) => {}
                    Err(other) => panic!("unexpected error: {other:?}"),
                }
            }
            successes
        }));
    }
    let mut revisions = Vec::new();
    for w in writers {
        revisions.extend(w.await.unwrap());
    }
    let successes = revisions.len() as u64;
    assert!(successes > 0);
    let last = store.get(&acme, &key).await.unwrap().unwrap();
    assert_eq!(last.version, Version(1 + successes), "version = 1 + successful writes");
    assert_eq!(last.value.as_str(), successes.to_string(), "no lost update");

    let log = store.changes_since(&acme, Revision(0), 10_000).await.unwrap();
    let logged: Vec<u64> = log.iter().map(|c| c.revision.0).collect();
    assert_eq!(
        logged,
        (1..=1 + successes).collect::<Vec<_>>(),
        "gap-free revisions, one change per write"
    );
    revisions.sort();
    for r in &revisions {
        assert_eq!(
            log.iter().filter(|c| c.revision == *r).count(),
            1,
            "exactly one change item per successful write"
        );
    }
    assert_eq!(store.head_revision(&acme).await.unwrap(), Revision(1 + successes));
    eprintln!("8 writers x 50 If-Match updates: {successes} succeeded");
}

#[tokio::test]
async fn ssm_path_depth_is_checked_before_calling_aws() {
    let Some(sdk) = emulators("ssm_path_depth").await else {
        return;
    };
    let (store, _) = store(&sdk, "depth").await;
    let acme = common::conformance::fresh_tenant("acme");
    let deep = store
        .routes()
        .parse_key(&format!("param_config_{}", vec!["d"; 14].join("/")))
        .unwrap();
    let err = store
        .put(&acme, &deep, &JsonText::parse("1").unwrap(), Precondition::None, "a")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidKey(_)), "{err:?}");
}
