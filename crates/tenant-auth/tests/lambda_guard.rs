//! Inside Lambda a dev HS256 secret is refused (alone in its binary: it sets a process-wide
//! environment variable).

use tenant_auth::{AuthError, Verifier, VerifierConfig};

#[test]
fn a_dev_secret_is_refused_inside_lambda() {
    let config = VerifierConfig {
        issuer: Some("tagcfg-dev".into()),
        dev_secret: Some(b"0123456789abcdef0123456789abcdef-dev".to_vec()),
        ..VerifierConfig::default()
    };
    assert!(Verifier::new(config.clone()).is_ok(), "outside Lambda it is allowed");
    std::env::set_var("AWS_LAMBDA_FUNCTION_NAME", "config-api");
    let err = Verifier::new(config).unwrap_err();
    assert!(
        matches!(err, AuthError::Config(ref m) if m.contains("inside Lambda")),
        "{err:?}"
    );
}
