//! The governance suite: schemas and override policies through the HTTP API, run against
//! any [`Deployment`] (the local server, the emulator stack). Each step asserts the status,
//! the problem `code` and what was (not) written.

use serde_json::{json, Value};

use crate::layers::{Deployment, Feed};

struct Api<'a> {
    d: &'a Deployment,
    http: reqwest::Client,
}

impl Api<'_> {
    async fn call(&self, method: &str, path: &str, token: &str, body: Option<&str>) -> (u16, Value, String) {
        self.call_with(method, path, token, body, None).await
    }

    async fn call_with(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&str>,
        reason: Option<&str>,
    ) -> (u16, Value, String) {
        let mut request = self
            .http
            .request(method.parse().expect("method"), format!("{}{path}", self.d.http_url))
            .bearer_auth(token);
        if let Some(reason) = reason {
            request = request.header("x-change-reason", reason);
        }
        if let Some(body) = body {
            request = request.body(body.to_owned());
        }
        let response = request.send().await.expect("the HTTP API answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null), text)
    }

    async fn operator(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value, String) {
        self.call(method, path, &self.d.operator_token, body).await
    }

    async fn tenant(&self, method: &str, path: &str, body: Option<&str>) -> (u16, Value, String) {
        self.call(method, path, &self.d.tenant_token, body).await
    }
}

fn expect(step: &str, (status, body, _): &(u16, Value, String), want: u16, code: Option<&str>) {
    assert_eq!(*status, want, "{step}: {body}");
    if let Some(code) = code {
        assert_eq!(body["code"], code, "{step}: {body}");
    }
}

/// Runs the suite. Keys and the tier carry `d.nonce`, so runs never meet.
pub async fn run(d: &Deployment, feed: &dyn Feed) {
    let api = Api {
        d,
        http: tenant_auth::http_client(std::time::Duration::from_secs(30)).expect("an HTTP client"),
    };
    let n = &d.nonce;
    let base = format!("tenant_config_gov-{n}/");
    let api_key = format!("{base}api");
    let locked = format!("{base}locked");
    let tier = format!("gov-{n}");
    let bounded = r#"{"schema":{"type":"object","properties":{"max_rps":{"type":"integer","minimum":1}},"required":["max_rps"]},
                      "override":{"schema":{"properties":{"max_rps":{"maximum":500}}}}}"#;

    // A value written before any schema; tenants never register schemas.
    let r = api
        .tenant("PUT", &format!("/v1/config/{api_key}"), Some(r#"{"max_rps":900}"#))
        .await;
    expect("tenant writes before any schema", &r, 201, None);
    let r = api.tenant("PUT", &format!("/v1/schemas/{base}"), Some(bounded)).await;
    expect("a tenant registers a schema", &r, 403, Some("forbidden"));
    let r = api
        .operator(
            "PUT",
            &format!("/v1/schemas/{base}"),
            Some(r#"{"schema":{"type":"nope"}}"#),
        )
        .await;
    expect("an invalid schema", &r, 400, Some("invalid_schema"));

    // The stored override breaks the bound: 409 with the list, the dry run lists it too.
    let r = api.operator("PUT", &format!("/v1/schemas/{base}"), Some(bounded)).await;
    expect("a registration existing values break", &r, 409, Some("schema_conflict"));
    assert_eq!(r.1["total"], 1, "{}", r.1);
    let listed = &r.1["violations"][0];
    assert_eq!(listed["key"], api_key.as_str(), "{listed}");
    assert_eq!(listed["tenant"], d.tenant.as_str(), "{listed}");
    assert_eq!(listed["layer"], "tenant", "{listed}");
    assert_eq!(listed["error"]["pointer"], "/max_rps", "{listed}");
    assert!(
        !listed["error"]["message"].to_string().contains("900"),
        "a tenant's value is never shown to an operator: {listed}"
    );
    let r = api
        .operator("PUT", &format!("/v1/schemas/{base}?dry_run=true"), Some(bounded))
        .await;
    expect("dry run", &r, 200, None);
    assert_eq!(
        (r.1["registered"].clone(), r.1["total"].clone()),
        (json!(false), json!(1))
    );
    let r = api.operator("GET", &format!("/v1/schemas/{base}"), None).await;
    expect("nothing registered by the 409 or the dry run", &r, 404, None);
    let r = api
        .operator("PUT", &format!("/v1/schemas/{base}?force=true"), Some(bounded))
        .await;
    expect("forced registration", &r, 201, None);
    feed.settle().await;

    // Every write is checked, on every layer; a refused write writes nothing.
    let r = api
        .tenant("PUT", &format!("/v1/config/{api_key}"), Some(r#"{"max_rps":"fast"}"#))
        .await;
    expect("a wrong type", &r, 422, Some("schema_violation"));
    assert_eq!(r.1["errors"][0]["pointer"], "/max_rps", "{}", r.1);
    let r = api
        .tenant("PUT", &format!("/v1/config/{api_key}"), Some(r#"{"max_rps":600}"#))
        .await;
    expect("a tenant above the bound", &r, 422, Some("schema_violation"));
    let r = api.tenant("GET", &format!("/v1/config/{api_key}"), None).await;
    assert_eq!(
        (r.1["value"].clone(), r.1["version"].clone()),
        (json!({"max_rps": 900}), json!(1))
    );
    let r = api
        .tenant("PUT", &format!("/v1/config/{api_key}"), Some(r#"{"max_rps":400}"#))
        .await;
    expect("a tenant within the bound", &r, 200, None);
    let shared = format!("/v1/config/{api_key}?layer=shared");
    expect(
        "shared above the bound (the bound is for overrides)",
        &api.operator("PUT", &shared, Some(r#"{"max_rps":900}"#)).await,
        201,
        None,
    );
    expect(
        "shared without the required field",
        &api.operator("PUT", &shared, Some("{}")).await,
        422,
        Some("schema_violation"),
    );
    let tier_path = format!("/v1/config/{api_key}?layer=tier:{tier}");
    expect(
        "a tier above the bound",
        &api.operator("PUT", &tier_path, Some(r#"{"max_rps":700}"#)).await,
        422,
        Some("schema_violation"),
    );

    // deny, at a longer path: it governs its key instead of the prefix's schema.
    let deny = r#"{"schema":{"type":"boolean"},"override":"deny"}"#;
    expect(
        "deny at the exact key",
        &api.operator("PUT", &format!("/v1/schemas/{locked}"), Some(deny)).await,
        201,
        None,
    );
    feed.settle().await;
    let r = api.tenant("PUT", &format!("/v1/config/{locked}"), Some("true")).await;
    expect("a tenant writes a denied key", &r, 403, Some("override_denied"));
    let r = api
        .operator("PUT", &format!("/v1/config/{locked}?layer=tier:{tier}"), Some("true"))
        .await;
    expect("a tier writes a denied key", &r, 403, Some("override_denied"));
    let r = api
        .operator("PUT", &format!("/v1/config/{locked}?layer=shared"), Some("true"))
        .await;
    expect(
        "shared writes the denied key (boolean: the longer path's schema)",
        &r,
        201,
        None,
    );
    let r = api
        .operator("PUT", &format!("/v1/config/{locked}?layer=shared"), Some("\"x\""))
        .await;
    expect(
        "shared breaks the denied key's schema",
        &r,
        422,
        Some("schema_violation"),
    );

    // deny where an override exists: 409 unless forced.
    let mine = format!("{base}mine");
    expect(
        "a tenant override",
        &api.tenant("PUT", &format!("/v1/config/{mine}"), Some(r#"{"max_rps":3}"#))
            .await,
        201,
        None,
    );
    let r = api
        .operator(
            "PUT",
            &format!("/v1/schemas/{mine}"),
            Some(r#"{"schema":{},"override":"deny"}"#),
        )
        .await;
    expect("deny over an existing override", &r, 409, Some("schema_conflict"));
    assert_eq!(r.1["violations"][0]["key"], mine.as_str(), "{}", r.1);
    let r = api
        .operator(
            "PUT",
            &format!("/v1/schemas/{mine}?force=true"),
            Some(r#"{"schema":{},"override":"deny"}"#),
        )
        .await;
    expect(
        "force does not deny over an existing override",
        &r,
        409,
        Some("schema_conflict"),
    );

    // Registrations are listed, read back with their versions, and removed.
    expect(
        "re-register the prefix",
        &api.operator("PUT", &format!("/v1/schemas/{base}?force=true"), Some(bounded))
            .await,
        200,
        None,
    );
    let r = api.tenant("GET", &format!("/v1/schemas/{base}"), None).await;
    expect("a tenant reads a schema", &r, 200, None);
    assert_eq!((r.1["path"].clone(), r.1["version"].clone()), (json!(base), json!(2)));
    assert_eq!(r.1["override"]["schema"]["properties"]["max_rps"]["maximum"], 500);
    let r = api
        .operator("GET", &format!("/v1/schemas/{base}?history=true"), None)
        .await;
    assert_eq!(r.1["versions"].as_array().map(Vec::len), Some(2), "{}", r.1);
    let r = api.operator("GET", "/v1/schemas?limit=1000", None).await;
    let paths: Vec<&str> = r.1["schemas"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|s| s["path"].as_str())
        .collect();
    assert!(
        paths.contains(&base.as_str()) && paths.contains(&locked.as_str()),
        "{paths:?}"
    );
    let r = api
        .operator("GET", "/v1/config?layer=shared&prefix=&limit=1000", None)
        .await;
    assert!(
        !r.2.contains("_schema_"),
        "a registration shows in a layer listing: {}",
        r.2
    );
    expect(
        "remove the deny",
        &api.operator("DELETE", &format!("/v1/schemas/{locked}"), None).await,
        204,
        None,
    );
    feed.settle().await;
    let r = api
        .tenant("PUT", &format!("/v1/config/{locked}"), Some(r#"{"max_rps":2}"#))
        .await;
    expect("the prefix's schema governs the key again", &r, 201, None);

    // A secret's violation never quotes it.
    let secrets = format!("secret_config_gov-{n}/");
    expect(
        "a secret schema",
        &api.operator(
            "PUT",
            &format!("/v1/schemas/{secrets}"),
            Some(r#"{"schema":{"type":"string","pattern":"^sk_"}}"#),
        )
        .await,
        201,
        None,
    );
    let r = api
        .tenant("PUT", &format!("/v1/config/{secrets}db"), Some("\"hunter2-secret\""))
        .await;
    expect("a secret breaks its schema", &r, 422, Some("schema_violation"));
    assert!(!r.2.contains("hunter2"), "a secret was quoted: {}", r.2);

    // Provenance: tenant over tier over shared.
    let eff = format!("{base}eff");
    let put = |layer: &str, value: &str| format!("/v1/config/{eff}?layer={layer}|{value}");
    for target in [
        put("shared", r#"{"max_rps":5}"#),
        put(&format!("tier:{tier}"), r#"{"max_rps":6}"#),
    ] {
        let (path, value) = target.split_once('|').expect("path|value");
        expect(
            "a platform value",
            &api.operator("PUT", path, Some(value)).await,
            201,
            None,
        );
    }
    expect(
        "assign the tier",
        &api.call_with(
            "PUT",
            &format!("/v1/tenants/{}", d.tenant),
            &d.operator_token,
            Some(&format!(r#"{{"tier":"{tier}"}}"#)),
            Some("pilot of the tier"),
        )
        .await,
        200,
        None,
    );
    expect(
        "the tenant's own",
        &api.tenant("PUT", &format!("/v1/config/{eff}"), Some(r#"{"max_rps":7}"#))
            .await,
        201,
        None,
    );
    let r = api.tenant("GET", &format!("/v1/effective?prefix={eff}"), None).await;
    expect("effective", &r, 200, None);
    let item = &r.1["items"][0];
    assert_eq!(item["value"], json!({"max_rps": 7}), "{item}");
    assert_eq!(item["layer"], "tenant", "{item}");
    assert_eq!(
        item["shadows"],
        json!([{"layer": format!("tier:{tier}"), "version": 1}, {"layer": "shared", "version": 1}]),
        "{item}"
    );
    let r = api.tenant("GET", &format!("/v1/effective?prefix={base}"), None).await;
    let keys: Vec<&str> = r.1["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["key"].as_str())
        .collect();
    assert_eq!(
        keys,
        [api_key.as_str(), eff.as_str(), locked.as_str(), mine.as_str()],
        "{}",
        r.1
    );
    // Change sets: all or nothing, seen by a watcher as one batch.
    let (set_a, set_b) = (format!("{base}set/a"), format!("{base}set/b"));
    let mut watcher = crate::auth::watch(&d.grpc_url, &d.tenant_token, &[format!("{base}set/")], None).await;
    // The first event says the stream is live.
    watcher
        .message()
        .await
        .expect("the stream stays up")
        .expect("a first event");
    let set = json!({"writes": [{"key": set_a, "value": {"max_rps": 10}}, {"key": set_b, "value": {"max_rps": 11}}],
                     "reason": "two limits at once"})
    .to_string();
    let r = api.tenant("POST", "/v1/config:batchWrite", Some(&set)).await;
    expect("a change set", &r, 200, None);
    assert_eq!(r.1["changes"].as_array().map(Vec::len), Some(2), "{}", r.1);
    feed.settle().await;
    let batch = next_batch(&mut watcher).await;
    assert_eq!(batch, [set_a.clone(), set_b.clone()], "the whole set in one batch");
    let stale =
        json!({"writes": [{"key": set_a, "value": {"max_rps": 12}}, {"key": set_b, "value": null, "if_match": 9}]})
            .to_string();
    let r = api.tenant("POST", "/v1/config:batchWrite", Some(&stale)).await;
    expect("a set with a stale if_match", &r, 412, Some("version_mismatch"));
    let r = api.tenant("GET", &format!("/v1/config/{set_a}"), None).await;
    assert_eq!(
        r.1["value"],
        json!({"max_rps": 10}),
        "nothing of the failed set was written"
    );
    let invalid =
        json!({"writes": [{"key": set_a, "value": {"max_rps": 13}}, {"key": set_b, "value": {"max_rps": "x"}}]})
            .to_string();
    let r = api.tenant("POST", "/v1/config:batchWrite", Some(&invalid)).await;
    expect("a set with a schema violation", &r, 422, Some("schema_violation"));
    let mixed = json!({"writes": [{"key": set_a, "value": {"max_rps": 14}}, {"key": format!("param_config_gov-{n}/x"), "value": 1}]})
        .to_string();
    let r = api.tenant("POST", "/v1/config:batchWrite", Some(&mixed)).await;
    expect("a set with an SSM-routed key", &r, 400, Some("not_atomic"));
    let r = api.tenant("GET", &format!("/v1/config/{set_a}"), None).await;
    assert_eq!(r.1["version"], 1, "{}", r.1);

    // Reasons: in history (DynamoDB- and SSM-routed keys), in the change log, bounded.
    let param = format!("param_config_gov-{n}/endpoint");
    for (key, value) in [(&eff, r#"{"max_rps":8}"#), (&param, "\"https://x.example\"")] {
        let path = format!("/v1/config/{key}");
        let r = api
            .call_with(
                "PUT",
                &path,
                &d.tenant_token,
                Some(value),
                Some("launch day: raise the limit"),
            )
            .await;
        assert!((200..300).contains(&r.0), "a write with a reason: {}", r.1);
        let r = api.tenant("GET", &format!("{path}/history"), None).await;
        assert_eq!(
            r.1["versions"][0]["reason"], "launch day: raise the limit",
            "{key}: {}",
            r.1
        );
    }
    let r = api.tenant("GET", "/v1/changes?since=0&limit=1000", None).await;
    let reasons = r.1["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .filter(|c| c["reason"] == "launch day: raise the limit")
        .count();
    assert_eq!(reasons, 2, "{}", r.1);
    let assigned = r.1["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .any(|c| c["op"] == "tier" && c["reason"] == "pilot of the tier");
    assert!(assigned, "the tier assignment's reason is in the tenant's log: {}", r.1);
    let long = "x".repeat(257);
    let r = api
        .call_with(
            "PUT",
            &format!("/v1/config/{eff}"),
            &d.tenant_token,
            Some("{}"),
            Some(&long),
        )
        .await;
    expect("a reason of 257 characters", &r, 400, Some("bad_header"));
    // Revert one key, a secret (its old value never reaches the caller), then the layer.
    let r = api
        .tenant("PUT", &format!("/v1/config/{set_a}"), Some(r#"{"max_rps":20}"#))
        .await;
    expect("a second version", &r, 200, None);
    let r = api
        .call_with(
            "POST",
            &format!("/v1/config/{set_a}:revert"),
            &d.tenant_token,
            Some(r#"{"to_version":1}"#),
            Some("undo"),
        )
        .await;
    expect("revert a key", &r, 200, None);
    assert_eq!(
        (r.1["version"].clone(), r.1["reverted_to"].clone()),
        (json!(3), json!(1)),
        "{}",
        r.1
    );
    let r = api.tenant("GET", &format!("/v1/config/{set_a}"), None).await;
    assert_eq!(r.1["value"], json!({"max_rps": 10}));
    let r = api.tenant("GET", &format!("/v1/config/{set_a}/history"), None).await;
    assert_eq!(r.1["versions"][0]["reason"], "undo", "{}", r.1);
    let r = api
        .tenant(
            "POST",
            &format!("/v1/config/{set_a}:revert"),
            Some(r#"{"to_version":99}"#),
        )
        .await;
    expect("revert to a version that never was", &r, 409, Some("not_kept"));
    let token = format!("{secrets}token");
    for value in ["\"sk_first_value\"", "\"sk_second_value\""] {
        let r = api.tenant("PUT", &format!("/v1/config/{token}"), Some(value)).await;
        assert!((200..300).contains(&r.0), "a secret: {}", r.1);
    }
    let r = api
        .tenant(
            "POST",
            &format!("/v1/config/{token}:revert"),
            Some(r#"{"to_version":1}"#),
        )
        .await;
    expect("revert a secret", &r, 200, None);
    assert!(
        !r.2.contains("sk_first_value"),
        "the old secret reached the caller: {}",
        r.2
    );
    let r = api.tenant("GET", &format!("/v1/config/{token}"), None).await;
    assert_eq!(r.1["value"], "sk_first_value", "{}", r.1);

    let r = api
        .tenant("PUT", &format!("/v1/config/{set_b}"), Some(r#"{"max_rps":30}"#))
        .await;
    let checkpoint = r.1["revision"].as_u64().expect("a revision");
    let late = format!("{base}late");
    for (method, path, body) in [
        ("PUT", format!("/v1/config/{set_b}"), Some(r#"{"max_rps":31}"#)),
        ("PUT", format!("/v1/config/{late}"), Some(r#"{"max_rps":32}"#)),
        ("DELETE", format!("/v1/config/{mine}"), None),
        ("PUT", format!("/v1/config/{param}"), Some("\"https://later.example\"")),
    ] {
        let r = api.tenant(method, &path, body).await;
        assert!((200..300).contains(&r.0), "{method} {path}: {}", r.1);
    }
    let r = api
        .tenant(
            "POST",
            "/v1/revert",
            Some(&json!({"to_revision": checkpoint}).to_string()),
        )
        .await;
    expect("revert the layer", &r, 200, None);
    assert_eq!(r.1["changes"].as_array().map(Vec::len), Some(4), "{}", r.1);
    feed.settle().await;
    for (key, want) in [
        (&set_b, Some(json!({"max_rps": 30}))),
        (&late, None),
        (&mine, Some(json!({"max_rps": 3}))),
        (&param, Some(json!("https://x.example"))),
    ] {
        let r = api.tenant("GET", &format!("/v1/config/{key}"), None).await;
        match want {
            Some(value) => assert_eq!(r.1["value"], value, "{key} after the layer revert: {}", r.1),
            None => assert_eq!(r.0, 404, "{key} was created after the checkpoint: {}", r.1),
        }
    }

    expect(
        "effective is a tenant's view",
        &api.operator("GET", "/v1/effective", None).await,
        403,
        Some("forbidden"),
    );
    feed.settle().await;
}

/// The keys of the next update batch on `stream` (heartbeats skipped), within 20 s.
async fn next_batch(stream: &mut tonic::Streaming<push::pb::WatchEvent>) -> Vec<String> {
    use push::pb::watch_event::Event;
    let deadline = std::time::Duration::from_secs(20);
    loop {
        let event = tokio::time::timeout(deadline, stream.message())
            .await
            .expect("an event within 20 s")
            .expect("the stream stays up")
            .expect("the stream goes on");
        match event.event {
            Some(Event::Updates(batch)) => return batch.updates.into_iter().map(|u| u.key).collect(),
            Some(Event::Heartbeat(_)) => continue,
            other => panic!("unexpected event {other:?}"),
        }
    }
}
