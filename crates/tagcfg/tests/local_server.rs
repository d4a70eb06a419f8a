//! The local server, started for real on a random port (the mini-redis way), driven over
//! HTTP with reqwest and with the `tagcfg` binary itself.

use std::path::Path;
use std::process::Command;

use local_server::{LocalConfig, LocalServer};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tenant_auth::Scope;

async fn start(dir: &Path) -> LocalServer {
    LocalServer::start(LocalConfig {
        seed_demo_data: true,
        ..LocalConfig::on_free_ports(dir)
    })
    .await
    .unwrap()
}

struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut req = self
            .client
            .request(method.parse().unwrap(), format!("{}{}", self.base, path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = req.send().await.unwrap();
        let (status, headers) = (resp.status(), resp.headers().clone());
        let text = resp.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null), headers)
    }
}

#[tokio::test]
async fn the_quick_start_scenario_works_over_http() {
    let dir = testkit::data_dir();
    let server = start(dir.path()).await;
    assert!(server.seeded, "first start seeds the demo data");
    let http = Http {
        base: server.url(),
        client: tenant_auth::http_client(std::time::Duration::from_secs(30)).unwrap(),
    };
    let acme = server.token("acme", &[Scope::Write]).unwrap();
    let globex = server.token("globex", &[Scope::Write]).unwrap();
    let acme_read = server.token("acme", &[Scope::Read]).unwrap();
    let key = "/v1/config/tenant_config_flags/checkout";

    // The demo data is there on the first curl.
    let (status, body, _) = http.send("GET", key, Some(&acme), &[], None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"]["enabled"], true);

    // PUT then GET round-trips with version and revision.
    let (status, put, headers) = http
        .send(
            "PUT",
            key,
            Some(&acme),
            &[],
            Some(r#"{"enabled":false,"rollout_percent":50}"#.into()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let version = put["version"].as_u64().unwrap();
    assert_eq!(version, 2);
    assert_eq!(headers["etag"], "\"2\"");
    let (_, got, _) = http.send("GET", key, Some(&acme), &[], None).await;
    assert_eq!(got["value"], json!({"enabled": false, "rollout_percent": 50}));
    assert_eq!(
        (got["version"].clone(), got["revision"].clone()),
        (put["version"].clone(), put["revision"].clone())
    );

    // Stale If-Match → 412.
    let (status, body, _) = http
        .send("PUT", key, Some(&acme), &[("if-match", "\"1\"")], Some("true".into()))
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::PRECONDITION_FAILED, Some("version_mismatch"))
    );

    // globex cannot see acme's key: 404, not 403.
    let (status, _, _) = http
        .send("GET", "/v1/config/tenant_config_limits/api", Some(&globex), &[], None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // No token → 401; read-only token writing → 403.
    let (status, _, _) = http.send("GET", key, None, &[], None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = http.send("PUT", key, Some(&acme_read), &[], Some("1".into())).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Bad keys → 400.
    for bad in [
        "/v1/config/tenant_config_../x",
        "/v1/config/tenant_config_",
        "/v1/config/unknown_tag_x",
    ] {
        let (status, body, _) = http.send("PUT", bad, Some(&acme), &[], Some("1".into())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    // 2 MiB body → 413.
    let (status, _, _) = http
        .send(
            "PUT",
            key,
            Some(&acme),
            &[],
            Some(format!("\"{}\"", "x".repeat(2 << 20))),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    // The data survives a restart.
    server.shutdown().await.unwrap();
    let server = start(dir.path()).await;
    assert!(!server.seeded, "a restart does not seed again");
    let http = Http {
        base: server.url(),
        client: tenant_auth::http_client(std::time::Duration::from_secs(30)).unwrap(),
    };
    let acme = server.token("acme", &[Scope::Read]).unwrap();
    let (status, again, _) = http.send("GET", key, Some(&acme), &[], None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["value"], got["value"]);
    assert_eq!(again["version"], 2);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn writes_reach_the_in_process_change_feed() {
    let dir = testkit::data_dir();
    let server = start(dir.path()).await;
    let mut feed = server.feed.subscribe();
    let http = Http {
        base: server.url(),
        client: tenant_auth::http_client(std::time::Duration::from_secs(30)).unwrap(),
    };
    let acme = server.token("acme", &[Scope::Write]).unwrap();
    let (_, put, _) = http
        .send(
            "PUT",
            "/v1/config/tenant_config_new",
            Some(&acme),
            &[],
            Some("42".into()),
        )
        .await;
    let change = tokio::time::timeout(std::time::Duration::from_secs(5), feed.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (change.tenant.as_str(), change.key.as_str()),
        ("acme", "tenant_config_new")
    );
    assert_eq!(change.revision.0, put["revision"].as_u64().unwrap());
    server.shutdown().await.unwrap();
}

fn tagcfg(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tagcfg"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_talks_to_the_server() {
    let dir = testkit::data_dir();
    let server = start(dir.path()).await;
    let url = server.url();
    let data_dir = dir.path().to_str().unwrap();
    let (ok, token, err) = tagcfg(
        &[
            "token",
            "--tenant",
            "acme",
            "--scope",
            "config:write",
            "--data-dir",
            data_dir,
        ],
        &[],
    );
    assert!(ok, "{err}");
    let token = token.trim().to_owned();
    let env = [("TAGCFG_URL", url.as_str()), ("TAGCFG_TOKEN", token.as_str())];

    let (ok, out, err) = tagcfg(
        &["put", "tenant_config_cli/x", "[1, 2.50, 12345678901234567890123]"],
        &env,
    );
    assert!(ok, "{err}");
    assert!(out.contains("\"version\":1"), "{out}");
    let (ok, out, _) = tagcfg(&["get", "tenant_config_cli/x"], &env);
    assert!(ok);
    assert!(
        out.contains("\"value\":[1, 2.50, 12345678901234567890123]"),
        "values print exactly: {out}"
    );
    let (ok, _, err) = tagcfg(&["put", "tenant_config_cli/x", "3", "--if-match", "7"], &env);
    assert!(!ok);
    assert!(err.contains("412 version_mismatch"), "{err}");
    let (ok, out, _) = tagcfg(&["ls", "tenant_config_cli/"], &env);
    assert!(ok && out.contains("tenant_config_cli/x"), "{out}");
    let (ok, out, _) = tagcfg(&["history", "tenant_config_cli/x"], &env);
    assert!(ok && out.contains("\"version\":1"), "{out}");
    let (ok, out, _) = tagcfg(&["rm", "tenant_config_cli/x"], &env);
    assert!(ok && out.contains("deleted"), "{out}");
    let (ok, _, err) = tagcfg(&["get", "tenant_config_cli/x"], &env);
    assert!(!ok && err.contains("404"), "{err}");
    let (ok, _, err) = tagcfg(&["get", "tenant_config_cli/x"], &[("TAGCFG_URL", url.as_str())]);
    assert!(
        !ok && err.contains("no token"),
        "a helpful message without a token: {err}"
    );
    let (ok, _, err) = tagcfg(&["token", "--tenant", "Not_Valid", "--data-dir", data_dir], &[]);
    assert!(!ok && err.contains("invalid tenant"), "{err}");
    server.shutdown().await.unwrap();
}

#[test]
fn tagcfg_serve_prints_working_tokens() {
    let dir = testkit::data_dir();
    let served = testkit::serve::Served::start(env!("CARGO_BIN_EXE_tagcfg"), dir.path(), &[]);
    let (url, token) = (Some(served.http_url.clone()), Some(served.token("ACME_TOKEN")));
    let (url, token) = (
        url.expect("the banner shows the URL"),
        token.expect("the banner shows an acme token"),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let status = rt.block_on(async {
        tenant_auth::http_client(std::time::Duration::from_secs(30))
            .unwrap()
            .get(format!("{url}/v1/config/tenant_config_flags/checkout"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .status()
    });
    drop(served);
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_write_reaches_a_grpc_watcher_and_the_cli_watch() {
    use push::pb::watch_event::Event;
    let dir = testkit::data_dir();
    let server = start(dir.path()).await;
    let acme = server.token("acme", &[Scope::Write]).unwrap();
    let mut stream = testkit::auth::watch(&server.grpc_url(), &acme, &["tenant_config_flags/"], None).await;
    let live_at = match stream.message().await.unwrap().unwrap().event.unwrap() {
        Event::Heartbeat(hb) => push::cursor_from_pb(&hb.cursor.unwrap()).unwrap(),
        other => panic!("expected the live heartbeat, got {other:?}"),
    };

    let http = Http {
        base: server.url(),
        client: tenant_auth::http_client(std::time::Duration::from_secs(30)).unwrap(),
    };
    let (_, put, _) = http
        .send(
            "PUT",
            "/v1/config/tenant_config_flags/checkout",
            Some(&acme),
            &[],
            Some("{\"enabled\":false}".into()),
        )
        .await;
    let revision = put["revision"].as_u64().unwrap();
    assert_eq!(revision, live_at.tenant.0 + 1);
    let change = loop {
        match tokio::time::timeout(std::time::Duration::from_secs(5), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
            .event
            .unwrap()
        {
            Event::Updates(batch) => break batch.updates.into_iter().next().unwrap(),
            Event::Heartbeat(_) => continue,
            Event::Resync(r) => panic!("resync: {}", r.reason),
        }
    };
    assert_eq!(
        (change.key.as_str(), change.revision, change.layer.unwrap().kind()),
        ("tenant_config_flags/checkout", revision, push::pb::LayerKind::Tenant)
    );
    assert_eq!(change.value_json.as_deref(), Some("{\"enabled\":false}"));

    // `tagcfg watch --since` replays it (and would then print live changes).
    let url = server.grpc_url();
    let since = live_at.to_string();
    let (ok, out, err) = tokio::task::spawn_blocking({
        let acme = acme.clone();
        move || {
            let args = [
                "watch",
                "tenant_config_flags/",
                "--since",
                &since,
                "--count",
                "1",
                "--grpc-url",
                &url,
            ];
            tagcfg(&args, &[("TAGCFG_TOKEN", acme.as_str())])
        }
    })
    .await
    .unwrap();
    assert!(ok, "{err}");
    assert!(
        out.contains("\"key\":\"tenant_config_flags/checkout\"") && out.contains("\"value\":{\"enabled\":false}"),
        "{out}"
    );
    server.shutdown().await.unwrap();
}

#[test]
fn serve_behind_an_identity_provider_requires_an_audience() {
    let dir = testkit::data_dir();
    let jwks = testkit::auth::test_jwks().display().to_string();
    let data = dir.path().display().to_string();
    let (ok, _, stderr) = tagcfg(
        &[
            "serve",
            "--data-dir",
            &data,
            "--jwks-file",
            &jwks,
            "--issuer",
            "https://idp.example",
        ],
        &[],
    );
    assert!(!ok);
    assert!(stderr.contains("--audiences"), "{stderr}");
    assert!(!dir.path().join("dev-secret").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_governs_applies_reverts_and_explains() {
    let dir = testkit::data_dir();
    let server = start(dir.path()).await;
    let url = server.url();
    let (tenant, operator) = (
        server.token("acme", &[Scope::Write]).unwrap(),
        server.operator_token().unwrap(),
    );
    let as_tenant = [("TAGCFG_URL", url.as_str()), ("TAGCFG_TOKEN", tenant.as_str())];
    let as_operator = [("TAGCFG_URL", url.as_str()), ("TAGCFG_TOKEN", operator.as_str())];

    let schema = r#"{"schema":{"type":"object","required":["rps"]},"override":{"schema":{"properties":{"rps":{"maximum":100}}}}}"#;
    let (ok, out, err) = tagcfg(
        &["schema", "put", "tenant_config_cli/", schema, "--reason", "cap rps"],
        &as_operator,
    );
    assert!(ok && out.contains("\"version\":1"), "{out}{err}");
    let (ok, out, _) = tagcfg(&["schema", "ls"], &as_tenant);
    assert!(ok && out.contains("tenant_config_cli/"), "{out}");
    let (ok, out, _) = tagcfg(&["schema", "get", "tenant_config_cli/", "--history"], &as_tenant);
    assert!(
        ok && out.contains("cap rps"),
        "the reason is in the schema's history: {out}"
    );

    let set = dir.path().join("set.yaml");
    std::fs::write(
        &set,
        "writes:\n  - key: tenant_config_cli/a\n    value: {rps: 10}\n  - key: tenant_config_cli/b\n    value: {rps: 20}\nreason: first limits\n",
    )
    .unwrap();
    let path = set.to_str().unwrap();
    let (ok, out, err) = tagcfg(&["apply", path, "--dry-run"], &as_tenant);
    assert!(ok, "{err}");
    assert!(out.contains("+ tenant_config_cli/a = {\"rps\":10}"), "{out}");
    let (ok, _, err) = tagcfg(&["get", "tenant_config_cli/a"], &as_tenant);
    assert!(!ok && err.contains("404"), "a dry run writes nothing: {err}");
    let (ok, out, err) = tagcfg(&["apply", path], &as_tenant);
    assert!(ok, "{err}");
    let applied: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(applied["changes"].as_array().map(Vec::len), Some(2), "{out}");
    let before_apply = applied["changes"][0]["revision"].as_u64().unwrap() - 1;
    std::fs::write(
        &set,
        r#"{"writes":[{"key":"tenant_config_cli/a","value":{"rps":500}}]}"#,
    )
    .unwrap();
    let (ok, _, err) = tagcfg(&["apply", path], &as_tenant);
    assert!(!ok && err.contains("422 schema_violation"), "{err}");

    let (ok, _, err) = tagcfg(&["put", "tenant_config_cli/a", r#"{"rps":11}"#], &as_tenant);
    assert!(ok, "{err}");
    let (ok, out, err) = tagcfg(&["revert", "tenant_config_cli/a", "--to-version", "1"], &as_tenant);
    assert!(ok && out.contains("\"reverted_to\":1"), "{out}{err}");
    let checkpoint = before_apply.to_string();
    let (ok, out, err) = tagcfg(&["revert", "--to-revision", &checkpoint], &as_tenant);
    assert!(
        ok && out.contains(&format!("\"reverted_to\":{checkpoint}")),
        "{out}{err}"
    );
    let (ok, out, _) = tagcfg(&["effective", "tenant_config_cli/"], &as_tenant);
    assert!(
        ok && out.contains("\"items\":[]"),
        "the layer reverted to nothing: {out}"
    );
    let (ok, out, _) = tagcfg(&["effective", "tenant_config_flags/"], &as_tenant);
    assert!(ok && out.contains("\"layer\":\"tenant\""), "{out}");
    let (ok, _, err) = tagcfg(&["revert", "tenant_config_cli/a"], &as_tenant);
    assert!(!ok && err.contains("--to-version"), "a helpful message: {err}");
    server.shutdown().await.unwrap();
}
