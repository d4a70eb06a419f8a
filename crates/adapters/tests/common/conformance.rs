//! The store conformance suite: the same scenarios, unchanged, against every store
//! (memory, redb, DynamoDB + SSM) behind a `TaggedStore`. Semantic parity between the
//! local and the AWS stores is the point, so nothing here may depend on which store runs.

use std::sync::atomic::{AtomicU32, Ordering};

use tagged_routing::{
    resolve, ChangeOp, ConfigStore, Error, JsonText, Key, Layer, Owner, Precondition, Revision, TaggedStore, TenantId,
    TierName, ValueOmitted, Version,
};

/// A tenant no other scenario (or earlier run against the same emulator) has used.
pub fn fresh_tenant(label: &str) -> Owner {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    Owner::Tenant(TenantId::parse(&format!("{label}-{nanos:x}-{n}")).unwrap())
}

fn key(store: &TaggedStore, raw: &str) -> Key {
    store.routes().parse_key(raw).unwrap()
}

fn json(s: &str) -> JsonText {
    JsonText::parse(s).unwrap()
}

/// Runs every scenario; panics with the scenario's name on the first failure.
pub async fn run_all(store: &TaggedStore) {
    put_get_round_trip(store).await;
    versions_and_preconditions(store).await;
    delete_semantics(store).await;
    list_with_cursor_across_backends(store).await;
    batch_get(store).await;
    change_log(store).await;
    history(store).await;
    tenant_isolation(store).await;
    secrets_stay_out_of_the_change_log(store).await;
    shared_layer(store).await;
    layers(store).await;
    change_sets(store).await;
}

/// A change set: all its writes with consecutive revisions marked with the last, or none
/// of them (a failing precondition, a key that cannot join the transaction).
pub async fn change_sets(store: &TaggedStore) {
    let t = fresh_tenant("set");
    let (a, b, gone) = (
        key(store, "tenant_config_set/a"),
        key(store, "tenant_config_set/b"),
        key(store, "tenant_config_set/gone"),
    );
    store
        .put(&t, &a, &json("1"), Precondition::None, "alice")
        .await
        .unwrap();
    store
        .put(&t, &gone, &json("0"), Precondition::None, "alice")
        .await
        .unwrap();
    let write = |k: &Key, v: Option<&str>, p: Precondition| tagged_routing::SetWrite {
        key: k.clone(),
        value: v.map(json),
        precondition: p,
    };
    let author = tagged_routing::Author::with_reason("bob", "move a and b together").unwrap();
    let changes = store
        .write_set(
            &t,
            &[
                write(&a, Some("2"), Precondition::IfVersion(Version(1))),
                write(&b, Some("\"new\""), Precondition::CreateOnly),
                write(&gone, None, Precondition::None),
            ],
            &author,
        )
        .await
        .unwrap();
    let revisions: Vec<u64> = changes.iter().map(|c| c.revision.0).collect();
    assert_eq!(revisions, [3, 4, 5], "consecutive revisions after the head");
    assert!(changes.iter().all(|c| c.set_last == Some(Revision(5))), "{changes:?}");
    assert_eq!(changes[2].op, ChangeOp::Delete);
    let logged = store.changes_since(&t, Revision(2), 10).await.unwrap();
    assert_eq!(logged, changes, "the log holds the set as answered");
    assert_eq!(logged[0].reason.as_deref(), Some("move a and b together"));
    assert_eq!(store.get(&t, &a).await.unwrap().unwrap().version, Version(2));
    assert!(store.get(&t, &gone).await.unwrap().is_none());

    // One failing precondition: nothing written, the head unmoved.
    let err = store
        .write_set(
            &t,
            &[
                write(&a, Some("3"), Precondition::None),
                write(&b, Some("\"stale\""), Precondition::IfVersion(Version(7))),
            ],
            &author,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::VersionMismatch { .. }), "{err}");
    assert_eq!(store.head_revision(&t).await.unwrap(), Revision(5));
    assert_eq!(store.get(&t, &a).await.unwrap().unwrap().value.as_str(), "2");

    // SSM-routed keys cannot share the transaction; a key twice is refused.
    let param = key(store, "param_config_set/x");
    let err = store
        .write_set(
            &t,
            &[
                write(&a, Some("4"), Precondition::None),
                write(&param, Some("1"), Precondition::None),
            ],
            &author,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotAtomic(_)), "{err}");
    let err = store
        .write_set(
            &t,
            &[
                write(&a, Some("4"), Precondition::None),
                write(&a, Some("5"), Precondition::None),
            ],
            &author,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidValue(_)), "{err}");
    assert_eq!(store.head_revision(&t).await.unwrap(), Revision(5));
}

pub async fn put_get_round_trip(store: &TaggedStore) {
    let t = fresh_tenant("rt");
    for raw in ["tenant_config_flags/checkout", "param_config_db/url"] {
        let k = key(store, raw);
        let value = json(r#"{"big":123456789012345678901234567890,"f":1.50,"s":"é\u00e9","n":null,"a":[true,false]}"#);
        let head = store.head_revision(&t).await.unwrap();
        let item = store.put(&t, &k, &value, Precondition::None, "alice").await.unwrap();
        assert_eq!(item.version, Version(1), "{raw}: first version");
        assert_eq!(item.revision, Revision(head.0 + 1), "{raw}: revision follows head");
        let got = store.get(&t, &k).await.unwrap().expect("value just written");
        assert_eq!(got.value.as_str(), value.as_str(), "{raw}: exact JSON text");
        assert_eq!(
            (got.version, got.revision, got.layer),
            (Version(1), item.revision, Layer::Tenant)
        );
        assert_eq!(got.updated_by, "alice");
        assert_eq!(got.key, raw);
    }
    assert_eq!(store.head_revision(&t).await.unwrap(), Revision(2));
    assert!(store
        .get(&t, &key(store, "tenant_config_absent"))
        .await
        .unwrap()
        .is_none());
}

pub async fn versions_and_preconditions(store: &TaggedStore) {
    let t = fresh_tenant("pre");
    for raw in ["tenant_config_limit", "param_config_limit"] {
        let k = key(store, raw);
        let head0 = store.head_revision(&t).await.unwrap();
        // If-Match on a missing key fails and writes nothing.
        let err = store
            .put(&t, &k, &json("1"), Precondition::IfVersion(Version(1)), "a")
            .await
            .unwrap_err();
        assert_eq!(
            err,
            Error::VersionMismatch {
                expected: Version(1),
                actual: None
            },
            "{raw}"
        );
        assert!(store.get(&t, &k).await.unwrap().is_none());
        // Create-only creates.
        let v1 = store
            .put(&t, &k, &json("1"), Precondition::CreateOnly, "a")
            .await
            .unwrap();
        assert_eq!(v1.version, Version(1));
        // Create-only on an existing key fails.
        let err = store
            .put(&t, &k, &json("9"), Precondition::CreateOnly, "a")
            .await
            .unwrap_err();
        assert_eq!(err, Error::AlreadyExists(Version(1)), "{raw}");
        // Matching If-Match succeeds and bumps the version.
        let v2 = store
            .put(&t, &k, &json("2"), Precondition::IfVersion(Version(1)), "a")
            .await
            .unwrap();
        assert_eq!(v2.version, Version(2));
        assert_eq!(v2.revision, Revision(v1.revision.0 + 1));
        // A stale If-Match fails and changes nothing.
        let err = store
            .put(&t, &k, &json("3"), Precondition::IfVersion(Version(1)), "a")
            .await
            .unwrap_err();
        assert_eq!(
            err,
            Error::VersionMismatch {
                expected: Version(1),
                actual: Some(Version(2))
            },
            "{raw}"
        );
        let got = store.get(&t, &k).await.unwrap().unwrap();
        assert_eq!((got.value.as_str(), got.version), ("2", Version(2)));
        // An unconditional write always goes through.
        let v3 = store.put(&t, &k, &json("3"), Precondition::None, "a").await.unwrap();
        assert_eq!(v3.version, Version(3));
        assert_eq!(
            store.head_revision(&t).await.unwrap(),
            Revision(head0.0 + 3),
            "{raw}: failed writes add no revision"
        );
    }
}

pub async fn delete_semantics(store: &TaggedStore) {
    let t = fresh_tenant("del");
    for raw in ["tenant_config_gone", "param_config_gone"] {
        let k = key(store, raw);
        assert_eq!(
            store.delete(&t, &k, Precondition::None, "a").await.unwrap_err(),
            Error::NotFound,
            "{raw}"
        );
        store.put(&t, &k, &json("1"), Precondition::None, "a").await.unwrap();
        store.put(&t, &k, &json("2"), Precondition::None, "a").await.unwrap();
        let err = store
            .delete(&t, &k, Precondition::IfVersion(Version(1)), "a")
            .await
            .unwrap_err();
        assert_eq!(
            err,
            Error::VersionMismatch {
                expected: Version(1),
                actual: Some(Version(2))
            }
        );
        let change = store
            .delete(&t, &k, Precondition::IfVersion(Version(2)), "bob")
            .await
            .unwrap();
        assert_eq!(
            (change.op, change.version, change.actor.as_str()),
            (ChangeOp::Delete, Version(2), "bob")
        );
        assert!(store.get(&t, &k).await.unwrap().is_none(), "{raw}: deleted");
        // A new life starts at version 1.
        let again = store
            .put(&t, &k, &json("3"), Precondition::CreateOnly, "a")
            .await
            .unwrap();
        assert_eq!(again.version, Version(1), "{raw}");
    }
}

pub async fn list_with_cursor_across_backends(store: &TaggedStore) {
    let t = fresh_tenant("ls");
    let keys = [
        "tenant_config_app/a",
        "tenant_config_app/b",
        "tenant_config_app/c",
        "tenant_config_other",
        "param_config_app/x",
        "param_config_app/y",
    ];
    for raw in keys {
        store
            .put(&t, &key(store, raw), &json("true"), Precondition::None, "a")
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = store.list(&t, "", after.as_deref(), 2).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|i| i.key.clone()));
        pages += 1;
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
        assert!(pages < 10, "the cursor must make progress");
    }
    let mut expected: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    expected.sort();
    assert_eq!(seen, expected);

    let page = store.list(&t, "tenant_config_app/", None, 10).await.unwrap();
    let names: Vec<&str> = page.items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(
        names,
        ["tenant_config_app/a", "tenant_config_app/b", "tenant_config_app/c"]
    );
    assert!(page.next.is_none());
    let page = store.list(&t, "param_config_", None, 10).await.unwrap();
    assert_eq!(page.items.len(), 2);
    assert!(store.list(&t, "nothing_", None, 10).await.unwrap().items.is_empty());
}

pub async fn batch_get(store: &TaggedStore) {
    let t = fresh_tenant("bg");
    let a = key(store, "tenant_config_a");
    let p = key(store, "param_config_p");
    let missing = key(store, "tenant_config_missing");
    store.put(&t, &a, &json("1"), Precondition::None, "x").await.unwrap();
    store.put(&t, &p, &json("2"), Precondition::None, "x").await.unwrap();
    let mut got: Vec<(String, String)> = store
        .batch_get(&t, &[a.clone(), p.clone(), missing])
        .await
        .unwrap()
        .into_iter()
        .map(|i| (i.key, i.value.as_str().to_owned()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("param_config_p".into(), "2".into()),
            ("tenant_config_a".into(), "1".into())
        ]
    );
}

pub async fn change_log(store: &TaggedStore) {
    let t = fresh_tenant("log");
    let a = key(store, "tenant_config_a");
    let p = key(store, "param_config_p");
    store.put(&t, &a, &json("1"), Precondition::None, "x").await.unwrap();
    store
        .put(&t, &p, &json("\"v\""), Precondition::None, "x")
        .await
        .unwrap();
    store.put(&t, &a, &json("2"), Precondition::None, "y").await.unwrap();
    store.delete(&t, &a, Precondition::None, "z").await.unwrap();
    let all = store.changes_since(&t, Revision(0), 100).await.unwrap();
    let summary: Vec<(u64, &str, ChangeOp, u64)> = all
        .iter()
        .map(|c| (c.revision.0, c.key.as_str(), c.op, c.version.0))
        .collect();
    assert_eq!(
        summary,
        [
            (1, "tenant_config_a", ChangeOp::Put, 1),
            (2, "param_config_p", ChangeOp::Put, 1),
            (3, "tenant_config_a", ChangeOp::Put, 2),
            (4, "tenant_config_a", ChangeOp::Delete, 2),
        ]
    );
    assert!(all.iter().all(|c| c.tenant == t.as_str()));
    assert_eq!(
        all[0].value.as_ref().map(JsonText::as_str),
        Some("1"),
        "small values are inline"
    );
    assert_eq!(all[1].tag, "param_config_");
    assert_eq!(all[3].value, None);
    let tail = store.changes_since(&t, Revision(2), 100).await.unwrap();
    assert_eq!(tail.iter().map(|c| c.revision.0).collect::<Vec<_>>(), [3, 4]);
    let limited = store.changes_since(&t, Revision(0), 2).await.unwrap();
    assert_eq!(limited.iter().map(|c| c.revision.0).collect::<Vec<_>>(), [1, 2]);
    assert!(store.changes_since(&t, Revision(4), 10).await.unwrap().is_empty());
    assert_eq!(store.head_revision(&t).await.unwrap(), Revision(4));
}

pub async fn history(store: &TaggedStore) {
    let t = fresh_tenant("hist");
    for raw in ["tenant_config_h", "param_config_h"] {
        let k = key(store, raw);
        // Keys that share its name as a prefix change in between: none of theirs shows.
        let siblings = [key(store, &format!("{raw}2")), key(store, &format!("{raw}/sub"))];
        for v in ["1", "2", "3"] {
            store.put(&t, &k, &json(v), Precondition::None, "x").await.unwrap();
            for sibling in &siblings {
                let other = format!("{v}0");
                store
                    .put(&t, sibling, &json(&other), Precondition::None, "x")
                    .await
                    .unwrap();
            }
        }
        let h = store.history(&t, &k, 10).await.unwrap();
        let versions: Vec<u64> = h.iter().map(|e| e.version.0).collect();
        assert_eq!(versions, [3, 2, 1], "{raw}: newest first");
        let values: Vec<&str> = h
            .iter()
            .filter_map(|e| e.value.as_ref().map(JsonText::as_str))
            .collect();
        assert_eq!(values, ["3", "2", "1"], "{raw}: only its own changes");
        assert_eq!(h[0].value.as_ref().map(JsonText::as_str), Some("3"));
        assert_eq!(store.history(&t, &k, 2).await.unwrap().len(), 2);
    }
}

pub async fn tenant_isolation(store: &TaggedStore) {
    let acme = fresh_tenant("iso-a");
    let globex = fresh_tenant("iso-g");
    for raw in ["tenant_config_secret-plan", "param_config_secret-plan"] {
        let k = key(store, raw);
        store
            .put(&acme, &k, &json("\"acme only\""), Precondition::None, "a")
            .await
            .unwrap();
        assert!(store.get(&globex, &k).await.unwrap().is_none(), "{raw}");
        assert!(store
            .batch_get(&globex, std::slice::from_ref(&k))
            .await
            .unwrap()
            .is_empty());
        assert!(store.history(&globex, &k, 10).await.unwrap().is_empty());
        assert_eq!(
            store.delete(&globex, &k, Precondition::None, "g").await.unwrap_err(),
            Error::NotFound
        );
    }
    assert!(store.list(&globex, "", None, 50).await.unwrap().items.is_empty());
    assert!(store.changes_since(&globex, Revision(0), 50).await.unwrap().is_empty());
    assert_eq!(store.head_revision(&globex).await.unwrap(), Revision(0));
}

pub async fn secrets_stay_out_of_the_change_log(store: &TaggedStore) {
    let t = fresh_tenant("sec");
    let k = key(store, "secret_config_db/password");
    let secret = "\"hunter2-very-secret\"";
    store.put(&t, &k, &json(secret), Precondition::None, "a").await.unwrap();
    assert_eq!(
        store.get(&t, &k).await.unwrap().unwrap().value.as_str(),
        secret,
        "the owner reads it back"
    );
    let log = store.changes_since(&t, Revision(0), 10).await.unwrap();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].value, None);
    assert_eq!(log[0].value_omitted, Some(ValueOmitted::Secret));
    assert!(!serde_json::to_string(&log).unwrap().contains("hunter2"));
}

/// Layers on every backend: a tenant's read resolves tenant → its tier → shared, the
/// answer names the layer, each layer keeps its own log, and a tier assignment is a change
/// of the tenant.
pub async fn layers(store: &TaggedStore) {
    let t = fresh_tenant("lyr");
    let Owner::Tenant(tenant) = &t else { unreachable!() };
    // Names unique to this run: the shared and tier layers are global.
    let tier = TierName::parse(&format!("t-{}", tenant.as_str())).unwrap();
    let tier_owner = Owner::Tier(tier.clone());
    for raw in [
        format!("param_config_shared/{tenant}"),
        format!("tenant_config_shared/{tenant}"),
    ] {
        let k = key(store, &raw);
        let read = || async { resolve(store, tenant, std::slice::from_ref(&k)).await.unwrap().0.pop() };
        assert!(read().await.is_none(), "{raw}");
        let shared_head = store.head_revision(&Owner::Shared).await.unwrap();
        let shared = store
            .put(&Owner::Shared, &k, &json("\"default\""), Precondition::None, "op")
            .await
            .unwrap();
        assert_eq!(
            shared.revision,
            Revision(shared_head.0 + 1),
            "{raw}: the shared log's own revision"
        );
        let got = read().await.expect("falls back to the shared layer");
        assert_eq!((got.value.as_str(), got.layer), ("\"default\"", Layer::Shared), "{raw}");
        store
            .put(&tier_owner, &k, &json("\"tiered\""), Precondition::None, "op")
            .await
            .unwrap();
        if store.tier_of(tenant).await.unwrap().is_none() {
            assert_eq!(
                read().await.unwrap().layer,
                Layer::Shared,
                "{raw}: no tier assigned yet"
            );
            let head = store.head_revision(&t).await.unwrap();
            let change = store
                .assign_tier(tenant, Some(&tier), &"op".into())
                .await
                .unwrap()
                .unwrap();
            assert_eq!((change.op, change.revision), (ChangeOp::Tier, Revision(head.0 + 1)));
            assert_eq!(change.assigned_tier(), Some(Some(tier.clone())));
            assert!(
                store
                    .assign_tier(tenant, Some(&tier), &"op".into())
                    .await
                    .unwrap()
                    .is_none(),
                "same tier: no change"
            );
            assert_eq!(store.tier_of(tenant).await.unwrap(), Some(tier.clone()));
            let log = store.changes_since(&t, head, 10).await.unwrap();
            assert_eq!(log.len(), 1, "one change per assignment");
        }
        let got = read().await.unwrap();
        assert_eq!(
            (got.value.as_str(), &got.layer),
            ("\"tiered\"", &Layer::Tier(tier.clone())),
            "{raw}"
        );
        store
            .put(&t, &k, &json("\"mine\""), Precondition::None, "a")
            .await
            .unwrap();
        let got = read().await.unwrap();
        assert_eq!((got.value.as_str(), got.layer), ("\"mine\"", Layer::Tenant), "{raw}");
        // The own-layer read never falls back.
        let other = fresh_tenant("lyr");
        assert!(store.get(&other, &k).await.unwrap().is_none(), "{raw}");
        store.delete(&t, &k, Precondition::None, "a").await.unwrap();
        assert_eq!(
            read().await.unwrap().layer,
            Layer::Tier(tier.clone()),
            "{raw}: the tier shows again"
        );
        store.delete(&tier_owner, &k, Precondition::None, "op").await.unwrap();
        store
            .delete(&Owner::Shared, &k, Precondition::None, "op")
            .await
            .unwrap();
        assert!(read().await.is_none(), "{raw}");
    }
    let head = store.head_revision(&t).await.unwrap();
    let change = store.assign_tier(tenant, None, &"op".into()).await.unwrap().unwrap();
    assert_eq!(
        (change.revision, change.assigned_tier()),
        (Revision(head.0 + 1), Some(None))
    );
    assert_eq!(store.tier_of(tenant).await.unwrap(), None);
}

pub async fn shared_layer(store: &TaggedStore) {
    let t = fresh_tenant("shr");
    // A name unique to this run: the shared layer is global.
    let raw = format!("param_config_shared/{}", t.as_str());
    let k = key(store, &raw);
    store
        .put(&Owner::Shared, &k, &json("\"default\""), Precondition::None, "admin")
        .await
        .unwrap();
    let Owner::Tenant(tenant) = &t else { unreachable!() };
    let got = resolve(store, tenant, std::slice::from_ref(&k)).await.unwrap().0.pop();
    let got = got.expect("falls back to the shared layer");
    assert_eq!((got.value.as_str(), got.layer), ("\"default\"", Layer::Shared));
    store
        .put(&t, &k, &json("\"mine\""), Precondition::None, "a")
        .await
        .unwrap();
    let got = resolve(store, tenant, std::slice::from_ref(&k))
        .await
        .unwrap()
        .0
        .pop()
        .unwrap();
    assert_eq!((got.value.as_str(), got.layer), ("\"mine\"", Layer::Tenant));
    store
        .delete(&Owner::Shared, &k, Precondition::None, "admin")
        .await
        .unwrap();
}
