//! Every way a token can be wrong is refused, each with its own error.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tenant_auth::{dev, AuthError, KeySource, Scope, Verifier, VerifierConfig, DEFAULT_MAX_TOKEN_BYTES};

const ISSUER: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_test";
const CLIENT: &str = "tagcfg-client";
const DEV_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-dev";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn claims() -> Value {
    json!({
        "iss": ISSUER, "client_id": CLIENT, "sub": "user-1", "token_use": "access",
        "exp": now() + 600, "nbf": now() - 10, "custom:tenantId": "acme",
        "scope": "tagcfg/config:write",
    })
}

fn sign(alg: Algorithm, kid: Option<&str>, pem: &str, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    let bytes = std::fs::read(fixture(pem)).unwrap();
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&bytes).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&bytes).unwrap(),
        _ => unreachable!(),
    };
    encode(&header, claims, &key).unwrap()
}

fn rsa(claims: &Value) -> String {
    testkit::auth::rs256(claims)
}

fn verifier() -> Verifier {
    Verifier::new(VerifierConfig {
        issuer: Some(ISSUER.into()),
        audiences: vec![CLIENT.into()],
        jwks: Some(KeySource::File(fixture("jwks.json"))),
        ..VerifierConfig::default()
    })
    .unwrap()
}

async fn reject(token: &str) -> AuthError {
    verifier()
        .verify_tenant(token)
        .await
        .expect_err("the token must be refused")
}

fn with(field: &str, value: Value) -> Value {
    let mut c = claims();
    c[field] = value;
    c
}

fn b64(v: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
}

#[tokio::test]
async fn valid_rs256_and_es256_tokens_are_accepted() {
    let ctx = verifier().verify_tenant(&rsa(&claims())).await.unwrap();
    assert_eq!(ctx.tenant.as_str(), "acme");
    assert_eq!(ctx.subject, "user-1");
    assert_eq!(ctx.scopes.highest(), Scope::Write);

    // An ID token: `aud` instead of `client_id`, scopes from cognito:groups.
    let mut id = claims();
    id.as_object_mut().unwrap().remove("client_id");
    id["aud"] = json!(CLIENT);
    id["token_use"] = json!("id");
    id["cognito:groups"] = json!(["config:admin"]);
    id.as_object_mut().unwrap().remove("scope");
    let ctx = verifier()
        .verify_tenant(&sign(Algorithm::ES256, Some("test-ec"), "ec-private.pem", &id))
        .await
        .unwrap();
    assert_eq!(ctx.scopes.highest(), Scope::Admin);
}

#[tokio::test]
async fn no_scope_means_read_only() {
    let mut c = claims();
    c.as_object_mut().unwrap().remove("scope");
    assert_eq!(
        verifier().verify_tenant(&rsa(&c)).await.unwrap().scopes.highest(),
        Scope::Read
    );
}

#[tokio::test]
async fn alg_none_is_refused() {
    let header = json!({"alg": "none", "typ": "JWT"});
    let token = format!("{}.{}.", b64(&header), b64(&claims()));
    assert_eq!(reject(&token).await, AuthError::UnsupportedAlgorithm("none".into()));
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    // Key confusion: an attacker signs HS256 with the RSA public key as the HMAC secret.
    let jwks: Value = serde_json::from_str(&std::fs::read_to_string(fixture("jwks.json")).unwrap()).unwrap();
    let public = jwks["keys"][0]["n"].as_str().unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("test-rsa".into());
    let token = encode(&header, &claims(), &EncodingKey::from_secret(public.as_bytes())).unwrap();
    assert_eq!(reject(&token).await, AuthError::HmacNotAccepted);
}

#[tokio::test]
async fn expired_and_not_yet_valid_are_refused_beyond_the_leeway() {
    assert_eq!(reject(&rsa(&with("exp", json!(now() - 120)))).await, AuthError::Expired);
    assert_eq!(
        reject(&rsa(&with("nbf", json!(now() + 120)))).await,
        AuthError::NotYetValid
    );
    // Within the 60 s leeway both pass.
    assert!(verifier()
        .verify_tenant(&rsa(&with("exp", json!(now() - 30))))
        .await
        .is_ok());
    assert!(verifier()
        .verify_tenant(&rsa(&with("nbf", json!(now() + 30))))
        .await
        .is_ok());
    let mut no_exp = claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(reject(&rsa(&no_exp)).await, AuthError::MissingExpiry);
    let mut no_iss = claims();
    no_iss.as_object_mut().unwrap().remove("iss");
    assert_eq!(reject(&rsa(&no_iss)).await, AuthError::WrongIssuer);
    // Missing both: always the same answer (the jwt fuzz target found it random).
    no_exp.as_object_mut().unwrap().remove("iss");
    for _ in 0..20 {
        assert_eq!(reject(&rsa(&no_exp)).await, AuthError::MissingExpiry);
    }
}

#[tokio::test]
async fn wrong_issuer_audience_and_token_use_are_refused() {
    assert_eq!(
        reject(&rsa(&with("iss", json!("https://evil.example")))).await,
        AuthError::WrongIssuer
    );
    assert_eq!(
        reject(&rsa(&with("client_id", json!("other-client")))).await,
        AuthError::WrongAudience
    );
    assert_eq!(
        reject(&rsa(&with("token_use", json!("refresh")))).await,
        AuthError::WrongTokenUse("refresh".into())
    );
}

#[tokio::test]
async fn bad_signature_and_unknown_kid_are_refused() {
    let forged = sign(Algorithm::RS256, Some("test-rsa"), "rsa-other-private.pem", &claims());
    assert_eq!(reject(&forged).await, AuthError::BadSignature);
    let unknown = sign(Algorithm::RS256, Some("rotated-away"), "rsa-private.pem", &claims());
    assert_eq!(reject(&unknown).await, AuthError::UnknownKid("rotated-away".into()));
    let no_kid = sign(Algorithm::RS256, None, "rsa-private.pem", &claims());
    assert_eq!(reject(&no_kid).await, AuthError::MissingKid);
    // An ES256 token naming the RSA key.
    let crossed = sign(Algorithm::ES256, Some("test-rsa"), "ec-private.pem", &claims());
    assert!(matches!(reject(&crossed).await, AuthError::KeyAlgorithmMismatch { .. }));
}

#[tokio::test]
async fn tenant_claim_must_be_present_well_formed_and_not_shared() {
    let mut c = claims();
    c.as_object_mut().unwrap().remove("custom:tenantId");
    assert_eq!(
        reject(&rsa(&c)).await,
        AuthError::MissingTenantClaim("custom:tenantId".into())
    );
    assert!(matches!(
        reject(&rsa(&with("custom:tenantId", json!("Acme Corp")))).await,
        AuthError::MalformedTenantClaim(_)
    ));
    assert!(matches!(
        reject(&rsa(&with("custom:tenantId", json!(42)))).await,
        AuthError::MalformedTenantClaim(_)
    ));
    assert_eq!(
        reject(&rsa(&with("custom:tenantId", json!("_shared")))).await,
        AuthError::ReservedTenant
    );
}

#[tokio::test]
async fn garbage_is_malformed() {
    assert!(matches!(reject("not-a-jwt").await, AuthError::Malformed(_)));
    assert!(matches!(reject("a.b.c").await, AuthError::Malformed(_)));
    let v = verifier();
    assert_eq!(
        v.verify_tenant_authorization(None).await.unwrap_err(),
        AuthError::MissingToken
    );
    assert!(matches!(
        v.verify_tenant_authorization(Some("Basic abc")).await,
        Err(AuthError::Malformed(_))
    ));
}

#[tokio::test]
async fn the_tenant_claim_name_is_configurable() {
    let v = Verifier::new(VerifierConfig {
        issuer: Some(ISSUER.into()),
        tenant_claim: "tenant".into(),
        jwks: Some(KeySource::File(fixture("jwks.json"))),
        ..VerifierConfig::default()
    })
    .unwrap();
    let ctx = v.verify_tenant(&rsa(&with("tenant", json!("globex")))).await.unwrap();
    assert_eq!(ctx.tenant.as_str(), "globex");
}

/// A verifier of dev tokens signed with `DEV_SECRET`.
fn dev_verifier() -> Verifier {
    Verifier::new(VerifierConfig {
        issuer: Some(dev::DEV_ISSUER.into()),
        audiences: vec![dev::DEV_AUDIENCE.into()],
        dev_secret: Some(DEV_SECRET.to_vec()),
        ..VerifierConfig::default()
    })
    .unwrap()
}

#[tokio::test]
async fn dev_tokens_need_the_dev_secret() {
    let acme = tagged_routing::TenantId::parse("acme").unwrap();
    let token = dev::mint(DEV_SECRET, &acme, "dev", &[Scope::Read], 60).unwrap();
    // An RS256-only verifier refuses it.
    assert_eq!(reject(&token).await, AuthError::HmacNotAccepted);
    let dev_verifier = dev_verifier();
    assert_eq!(dev_verifier.verify_tenant(&token).await.unwrap().tenant, acme);
    let other = dev::mint(b"another-secret-another-secret-another", &acme, "dev", &[], 60).unwrap();
    assert_eq!(
        dev_verifier.verify_tenant(&other).await.unwrap_err(),
        AuthError::BadSignature
    );
}

/// A one-route HTTP server that serves `body` and counts requests.
async fn jwks_server(body: String) -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (format!("http://127.0.0.1:{}/.well-known/jwks.json", addr.port()), hits)
}

#[tokio::test]
async fn jwks_url_is_fetched_once_and_refetches_for_unknown_kids_at_a_limited_rate() {
    let (url, hits) = jwks_server(std::fs::read_to_string(fixture("jwks.json")).unwrap()).await;
    let v = Verifier::new(VerifierConfig {
        issuer: Some(ISSUER.into()),
        jwks: Some(KeySource::Url(url)),
        jwks_min_refetch: Duration::from_secs(3600),
        ..VerifierConfig::default()
    })
    .unwrap();
    for _ in 0..5 {
        v.verify_tenant(&rsa(&claims())).await.unwrap();
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "known kids are served from the cache");
    // A flood of bogus kids: the first (after the interval) could refetch, none of these may.
    for i in 0..20 {
        let bogus = sign(
            Algorithm::RS256,
            Some(&format!("bogus-{i}")),
            "rsa-private.pem",
            &claims(),
        );
        assert!(matches!(v.verify_tenant(&bogus).await, Err(AuthError::UnknownKid(_))));
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "unknown kids must not hammer the issuer"
    );
}

#[tokio::test]
async fn an_unreachable_jwks_is_unavailable_not_a_bad_token() {
    let v = Verifier::new(VerifierConfig {
        jwks: Some(KeySource::Url("http://127.0.0.1:9/jwks.json".into())),
        ..VerifierConfig::default()
    })
    .unwrap();
    let err = v.verify_tenant(&rsa(&claims())).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
}

#[tokio::test]
async fn operators_carry_the_operator_scope_and_no_tenant() {
    use tenant_auth::{OperatorContext, Principal};
    let mut operator = claims();
    operator.as_object_mut().unwrap().remove("custom:tenantId");
    operator["scope"] = json!("tagcfg/config:operator");
    assert_eq!(
        verifier().verify(&rsa(&operator)).await.unwrap(),
        Principal::Operator(OperatorContext {
            subject: "user-1".into()
        })
    );
    // The Cognito group works the same way.
    let mut grouped = operator.clone();
    grouped["scope"] = json!("openid");
    grouped["cognito:groups"] = json!(["config:operator"]);
    assert!(matches!(
        verifier().verify(&rsa(&grouped)).await,
        Ok(Principal::Operator(_))
    ));
    // An operator is no tenant.
    assert_eq!(reject(&rsa(&operator)).await, AuthError::NotATenant);
    // A tenant token cannot also be an operator's.
    let mixed = with("scope", json!("config:admin config:operator"));
    assert_eq!(
        verifier().verify(&rsa(&mixed)).await.unwrap_err(),
        AuthError::MixedPrincipal
    );
    // Without the scope, no tenant claim is still an error.
    let mut nobody = claims();
    nobody.as_object_mut().unwrap().remove("custom:tenantId");
    assert!(matches!(reject(&rsa(&nobody)).await, AuthError::MissingTenantClaim(_)));
}

#[tokio::test]
async fn dev_operator_tokens() {
    let token = dev::mint_operator(DEV_SECRET, "ops", 60).unwrap();
    let dev_verifier = dev_verifier();
    let principal = dev_verifier.verify(&token).await.unwrap();
    assert_eq!(principal.subject(), "ops");
    assert!(matches!(principal, tenant_auth::Principal::Operator(_)));
}

#[tokio::test]
async fn a_cognito_deployment_accepts_id_tokens_only_and_requires_token_use() {
    // What the template configures: a Cognito pool, no TAGCFG_TOKEN_USE. The JWKS comes
    // from the test file instead of the pool's URL, the issuer is the test one.
    let jwks = fixture("jwks.json").display().to_string();
    let vars = std::collections::HashMap::from([
        ("TAGCFG_COGNITO_USER_POOL_ID", "us-east-1_Strict".to_owned()),
        ("TAGCFG_JWKS_FILE", jwks.clone()),
        ("TAGCFG_ISSUER", ISSUER.to_owned()),
        ("TAGCFG_AUDIENCES", CLIENT.to_owned()),
    ]);
    let config = VerifierConfig::from_lookup(&|k: &str| vars.get(k).cloned()).unwrap();
    let strict = Verifier::new(config).unwrap();
    let mut id = claims();
    id["token_use"] = json!("id");
    id["aud"] = json!(CLIENT);
    assert!(strict.verify_tenant(&rsa(&id)).await.is_ok(), "an ID token passes");
    assert_eq!(
        strict.verify_tenant(&rsa(&claims())).await.unwrap_err(),
        AuthError::WrongTokenUse("access".into()),
        "an access token is refused"
    );
    let mut bare = id.clone();
    bare.as_object_mut().unwrap().remove("token_use");
    assert_eq!(
        strict.verify_tenant(&rsa(&bare)).await.unwrap_err(),
        AuthError::WrongTokenUse("(none)".into()),
        "a token that does not say what it is is refused"
    );

    // Declared explicitly, access tokens (a pre-token-generation trigger adds the tenant).
    let mut vars = vars;
    vars.insert("TAGCFG_TOKEN_USE", "access".into());
    let access = Verifier::new(VerifierConfig::from_lookup(&|k: &str| vars.get(k).cloned()).unwrap()).unwrap();
    assert!(access.verify_tenant(&rsa(&claims())).await.is_ok());
    assert!(access.verify_tenant(&rsa(&id)).await.is_err());
    vars.insert("TAGCFG_TOKEN_USE", "refresh".into());
    let err = VerifierConfig::from_lookup(&|k: &str| vars.get(k).cloned()).unwrap_err();
    assert!(err.to_string().starts_with("TAGCFG_TOKEN_USE:"), "{err}");
}

#[tokio::test]
async fn an_oversized_token_is_refused_before_it_is_read() {
    let mut big = claims();
    big["padding"] = json!("x".repeat(DEFAULT_MAX_TOKEN_BYTES));
    let token = rsa(&big);
    assert!(token.len() > DEFAULT_MAX_TOKEN_BYTES);
    assert_eq!(
        reject(&token).await,
        AuthError::TooLarge {
            limit: DEFAULT_MAX_TOKEN_BYTES
        }
    );
    assert_eq!(reject(&token).await.code(), "token_too_large");
    // Configurable: the same token passes a verifier that allows it.
    let roomy = Verifier::new(VerifierConfig {
        issuer: Some(ISSUER.into()),
        audiences: vec![CLIENT.into()],
        jwks: Some(KeySource::File(fixture("jwks.json"))),
        max_token_bytes: 64 * 1024,
        ..VerifierConfig::default()
    })
    .unwrap();
    assert!(roomy.verify_tenant(&token).await.is_ok());
}

#[tokio::test]
async fn a_verified_token_is_remembered_until_it_expires_and_no_other_token_rides_on_it() {
    let v = Verifier::new(VerifierConfig {
        issuer: Some(ISSUER.into()),
        audiences: vec![CLIENT.into()],
        jwks: Some(KeySource::File(fixture("jwks.json"))),
        leeway_secs: 0,
        ..VerifierConfig::default()
    })
    .unwrap();
    let token = rsa(&claims());
    let first = v.verify_tenant(&token).await.unwrap();
    assert_eq!(v.verified_from_cache(), 0, "the first verification is a full one");
    assert_eq!(v.verify_tenant(&token).await.unwrap(), first);
    assert_eq!(v.verified_from_cache(), 1, "the repeat came from the cache");

    // A token that differs in its signature alone is verified in full, and refused.
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert!(v.verify_tenant(&tampered).await.is_err());
    assert_eq!(v.verified_from_cache(), 1);

    // A remembered token ends at its expiry like any other.
    let exp = now() + 2;
    let brief = rsa(&with("exp", json!(exp)));
    v.verify_tenant(&brief).await.unwrap();
    v.verify_tenant(&brief).await.unwrap();
    assert_eq!(v.verified_from_cache(), 2);
    // Past `exp` in whole seconds, as JWT validation counts them.
    while now() <= exp {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let err = v.verify_tenant(&brief).await.expect_err("expired");
    assert!(matches!(err, AuthError::Expired), "{err:?}");

    // With the cache off, nothing is remembered.
    let uncached = Verifier::new(VerifierConfig {
        issuer: Some(ISSUER.into()),
        audiences: vec![CLIENT.into()],
        jwks: Some(KeySource::File(fixture("jwks.json"))),
        verified_tokens: 0,
        ..VerifierConfig::default()
    })
    .unwrap();
    uncached.verify_tenant(&token).await.unwrap();
    uncached.verify_tenant(&token).await.unwrap();
    assert_eq!(uncached.verified_from_cache(), 0);
}
