//! The `ChangeLog` port's conformance scenarios: the same sequence against every
//! implementation (memory, redb, DynamoDB Local).

use std::sync::Arc;

use tagged_routing::{
    now_rfc3339, AppendGuard, Change, ChangeLog, ChangeOp, JsonText, Key, Owner, Revision, RoutingTable, Version,
};

use super::conformance::fresh_tenant;

fn change(owner: &Owner, key: &Key, op: ChangeOp, version: u64) -> impl Fn(Revision) -> Change + Send + Sync {
    let (owner, key) = (owner.clone(), key.clone());
    move |revision| {
        let value = JsonText::parse(&version.to_string()).unwrap();
        let value = (op == ChangeOp::Put).then_some(&value);
        Change::new(
            &owner,
            revision,
            &key,
            op,
            Version(version),
            &"log-test".into(),
            now_rfc3339(),
            value,
        )
    }
}

/// Guarded appends, records, order and gap-free revisions under concurrent appenders.
pub async fn run_all(log: Arc<dyn ChangeLog>) {
    let routes = RoutingTable::default();
    let t = fresh_tenant("log");
    let key = routes.parse_key("param_config_logged").unwrap();
    assert_eq!(log.head(&t).await.unwrap(), Revision(0));

    // An API write: always appended, recorded with its revision.
    let first = log
        .append(&t, &change(&t, &key, ChangeOp::Put, 1), AppendGuard::Always)
        .await
        .unwrap()
        .expect("an unguarded append goes ahead");
    assert_eq!(first.revision, Revision(1));
    let recorded = log.recorded(&t, std::slice::from_ref(&key)).await.unwrap();
    assert_eq!(
        recorded.iter().map(|r| (r.version, r.revision)).collect::<Vec<_>>(),
        [(Version(1), Revision(1))]
    );

    // A repeated outside edit adds nothing; a newer one goes ahead.
    let again = log
        .append(&t, &change(&t, &key, ChangeOp::Put, 1), AppendGuard::NewerThanRecorded)
        .await
        .unwrap();
    assert!(again.is_none(), "version 1 is recorded already");
    let newer = log
        .append(&t, &change(&t, &key, ChangeOp::Put, 2), AppendGuard::NewerThanRecorded)
        .await
        .unwrap()
        .expect("version 2 is newer");
    assert_eq!(newer.revision, Revision(2));

    // An outside delete only of the version recorded; then the record is gone.
    let stale = log
        .append(
            &t,
            &change(&t, &key, ChangeOp::Delete, 1),
            AppendGuard::RecordedIs(Version(1)),
        )
        .await
        .unwrap();
    assert!(stale.is_none(), "version 2 is recorded, not 1");
    let deleted = log
        .append(
            &t,
            &change(&t, &key, ChangeOp::Delete, 2),
            AppendGuard::RecordedIs(Version(2)),
        )
        .await
        .unwrap()
        .expect("the recorded version");
    assert_eq!(deleted.revision, Revision(3));
    assert!(log.recorded(&t, std::slice::from_ref(&key)).await.unwrap().is_empty());
    assert_eq!(
        log.head(&t).await.unwrap(),
        Revision(3),
        "refused appends took no revision"
    );

    // Concurrent appenders: every revision once, none skipped, in order.
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (log, t) = (log.clone(), t.clone());
        let key = routes.parse_key(&format!("param_config_writer/{w}")).unwrap();
        tasks.push(tokio::spawn(async move {
            for v in 1..=5 {
                log.append(&t, &change(&t, &key, ChangeOp::Put, v), AppendGuard::Always)
                    .await
                    .unwrap()
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let all = log.changes_since(&t, Revision(0), 100).await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.revision.0).collect::<Vec<_>>(),
        (1..=23).collect::<Vec<_>>()
    );
    assert_eq!(log.head(&t).await.unwrap(), Revision(23));
    let keys: Vec<Key> = (0..4)
        .map(|w| routes.parse_key(&format!("param_config_writer/{w}")).unwrap())
        .collect();
    let records = log.recorded(&t, &keys).await.unwrap();
    assert_eq!(records.len(), 4);
    assert!(records.iter().all(|r| r.version == Version(5)));

    // An API put whose own event was ingested first adds nothing; a re-created parameter
    // (SSM starts again at version 1) goes ahead although an older record says 3.
    let recreated = routes.parse_key("param_config_recreated").unwrap();
    for v in [3, 1] {
        let appended = log
            .append(
                &t,
                &change(&t, &recreated, ChangeOp::Put, v),
                AppendGuard::NotRecordedAs(Version(v)),
            )
            .await
            .unwrap();
        assert!(appended.is_some(), "version {v} is not the recorded one");
    }
    let again = log
        .append(
            &t,
            &change(&t, &recreated, ChangeOp::Put, 1),
            AppendGuard::NotRecordedAs(Version(1)),
        )
        .await
        .unwrap();
    assert!(again.is_none(), "version 1 is recorded already");

    // Records page in key order under a prefix, resuming after the last key of a page.
    let paged = fresh_tenant("log-page");
    for name in [
        "param_config_b",
        "param_config_a/2",
        "param_config_a/1",
        "param_config_ab",
        "secret_config_a",
    ] {
        let key = routes.parse_key(name).unwrap();
        log.append(&paged, &change(&paged, &key, ChangeOp::Put, 1), AppendGuard::Always)
            .await
            .unwrap()
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = log
            .recorded_page(&paged, "param_config_a", after.as_deref(), 2)
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|r| r.key.clone()));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ["param_config_a/1", "param_config_a/2", "param_config_ab"]);
    let all = log.recorded_page(&paged, "", None, 10).await.unwrap();
    assert_eq!(all.items.len(), 5);
    assert!(all.next.is_none());
    assert!(
        log.recorded_page(&t, "param_config_a", None, 10)
            .await
            .unwrap()
            .items
            .is_empty(),
        "another owner's records"
    );
}
