//! Dev-token verification and authorised gRPC requests, as every server test needs them.

use tenant_auth::{dev, Verifier, VerifierConfig};

/// A verifier of dev (HS256) tokens signed with `secret`, with the dev issuer and audience:
/// what `tagcfg serve` runs with.
pub fn dev_verifier(secret: &[u8]) -> Verifier {
    Verifier::new(VerifierConfig {
        issuer: Some(dev::DEV_ISSUER.into()),
        audiences: vec![dev::DEV_AUDIENCE.into()],
        dev_secret: Some(secret.to_vec()),
        ..VerifierConfig::default()
    })
    .expect("a dev secret of 32 bytes or more")
}

/// A gRPC request carrying `authorization: Bearer <token>`.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("an ASCII token"),
    );
    request
}
