//! `tagcfg serve` for real: behind an identity provider it verifies RS256 tokens from a
//! JWKS exactly as the Lambda does, and no dev secret or dev token exists.

use local_server::{LocalConfig, LocalError, LocalServer};
use serde_json::json;
use tenant_auth::{KeySource, VerifierConfig};

const ISSUER: &str = "https://idp.example/realms/saas";
const CLIENT: &str = "tagcfg-console";

#[tokio::test]
async fn tokens_of_the_identity_provider_pass_and_dev_tokens_do_not_exist() {
    let dir = testkit::data_dir();
    let server = LocalServer::start(LocalConfig {
        identity_provider: Some(VerifierConfig {
            issuer: Some(ISSUER.into()),
            audiences: vec![CLIENT.into()],
            jwks: Some(KeySource::File(testkit::auth::test_jwks())),
            ..VerifierConfig::default()
        }),
        ..LocalConfig::on_free_ports(dir.path())
    })
    .await
    .unwrap();
    assert!(!dir.path().join("dev-secret").exists(), "no dev secret is made");
    assert!(matches!(server.token("acme", &[]), Err(LocalError::NoDevTokens)));

    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let claims = json!({"iss": ISSUER, "aud": CLIENT, "sub": "alice", "exp": exp,
                        "custom:tenantId": "acme", "scope": "config:write"});
    let http = tenant_auth::http_client(std::time::Duration::from_secs(10)).unwrap();
    let url = format!("{}/v1/config/tenant_config_flags/checkout", server.url());
    let put = http
        .put(&url)
        .bearer_auth(testkit::auth::rs256(&claims))
        .header("content-type", "application/json")
        .body(r#"{"enabled":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);

    // Another audience, and an HS256 token of any secret: refused.
    let mut other = claims.clone();
    other["aud"] = json!("someone-else");
    let wrong_audience = http
        .get(&url)
        .bearer_auth(testkit::auth::rs256(&other))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_audience.status(), 401);
    let tenant = tagged_routing::TenantId::parse("acme").unwrap();
    let dev = tenant_auth::dev::mint(b"any-dev-secret-any-dev-secret-any-dev", &tenant, "x", &[], 600).unwrap();
    let refused = http.get(&url).bearer_auth(dev).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "hmac_not_accepted");
    server.shutdown().await.unwrap();
}
