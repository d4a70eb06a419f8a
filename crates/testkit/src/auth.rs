//! Dev-token verification, authorised gRPC requests and `Watch` streams, as every server
//! test needs them.

use tenant_auth::{dev, Verifier};

/// [`dev::verifier`] for a test's own secret (what `tagcfg serve` runs with).
pub fn dev_verifier(secret: &[u8]) -> Verifier {
    dev::verifier(secret).expect("a dev secret of 32 bytes or more")
}

/// A gRPC request carrying `authorization: Bearer <token>` (the client SDK's own).
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    client::grpc::authorized(message, token).expect("an ASCII token")
}

/// A `Watch` stream of `token`'s tenant from the push server at `url` (`http://host:port`),
/// opened through the client SDK; panics when the server refuses.
pub async fn watch<S: AsRef<str>>(
    url: &str,
    token: &str,
    prefixes: &[S],
    since: Option<push::pb::Cursor>,
) -> tonic::Streaming<push::pb::WatchEvent> {
    let channel = client::grpc::channel(url).expect("a valid push server URL");
    let prefixes = prefixes.iter().map(|p| p.as_ref().to_owned()).collect();
    client::grpc::watch(channel, token, prefixes, since)
        .await
        .unwrap_or_else(|e| panic!("Watch on {url}: {e}"))
}

/// The key set of the test identity provider (`crates/tenant-auth/tests/fixtures`: public,
/// for tests only).
pub fn test_jwks() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tenant-auth/tests/fixtures/jwks.json")
}

/// A token of the test identity provider: `claims` signed RS256 with its private key, kid
/// `test-rsa` (in [`test_jwks`]).
pub fn rs256(claims: &serde_json::Value) -> String {
    let pem = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tenant-auth/tests/fixtures/rsa-private.pem");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(&std::fs::read(pem).expect("the test private key"))
        .expect("an RSA private key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("test-rsa".into());
    jsonwebtoken::encode(&header, claims, &key).expect("signed")
}
