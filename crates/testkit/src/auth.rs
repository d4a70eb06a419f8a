//! Dev-token verification and authorised gRPC requests, as every server test needs them.

use tenant_auth::{dev, Verifier};

/// [`dev::verifier`] for a test's own secret (what `tagcfg serve` runs with).
pub fn dev_verifier(secret: &[u8]) -> Verifier {
    dev::verifier(secret).expect("a dev secret of 32 bytes or more")
}

/// A gRPC request carrying `authorization: Bearer <token>` (the client SDK's own).
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    client::grpc::authorized(message, token).expect("an ASCII token")
}
