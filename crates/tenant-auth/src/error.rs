/// Why a token was refused. Messages never contain the token itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    MissingToken,
    #[error("the token is longer than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the token is not a well-formed JWT: {0}")]
    Malformed(String),
    #[error("algorithm '{0}' is not accepted")]
    UnsupportedAlgorithm(String),
    #[error("HS256 tokens are not accepted by this verifier (no dev secret configured)")]
    HmacNotAccepted,
    #[error("the token has no 'kid' header")]
    MissingKid,
    #[error("no key with kid '{0}' in the JWKS")]
    UnknownKid(String),
    #[error("the key for kid '{kid}' does not fit algorithm {alg}")]
    KeyAlgorithmMismatch { kid: String, alg: String },
    #[error("bad signature")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf)")]
    NotYetValid,
    #[error("the token has no 'exp' claim")]
    MissingExpiry,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("wrong audience / client id")]
    WrongAudience,
    #[error("token_use '{0}' is not accepted")]
    WrongTokenUse(String),
    #[error("the token has no '{0}' claim")]
    MissingTenantClaim(String),
    #[error("the tenant claim is malformed: {0}")]
    MalformedTenantClaim(String),
    #[error("the tenant claim names the reserved shared layer")]
    ReservedTenant,
    #[error("the token names both a tenant and the config:operator scope; an operator token carries no tenant claim")]
    MixedPrincipal,
    #[error("an operator token has no tenant; this call needs a tenant's token")]
    NotATenant,
    #[error("the JWKS could not be loaded: {0}")]
    JwksUnavailable(String),
    #[error("invalid verifier configuration: {0}")]
    Config(String),
}

impl AuthError {
    /// A short stable code for problem+json bodies and logs.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::TooLarge { .. } => "token_too_large",
            AuthError::Malformed(_) => "malformed_token",
            AuthError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            AuthError::HmacNotAccepted => "hmac_not_accepted",
            AuthError::MissingKid => "missing_kid",
            AuthError::UnknownKid(_) => "unknown_kid",
            AuthError::KeyAlgorithmMismatch { .. } => "key_algorithm_mismatch",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "token_expired",
            AuthError::NotYetValid => "token_not_yet_valid",
            AuthError::MissingExpiry => "missing_exp",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::WrongTokenUse(_) => "wrong_token_use",
            AuthError::MissingTenantClaim(_) => "missing_tenant_claim",
            AuthError::MalformedTenantClaim(_) => "malformed_tenant_claim",
            AuthError::ReservedTenant => "reserved_tenant",
            AuthError::MixedPrincipal => "mixed_principal",
            AuthError::NotATenant => "not_a_tenant",
            AuthError::JwksUnavailable(_) => "jwks_unavailable",
            AuthError::Config(_) => "auth_config",
        }
    }

    /// The token is valid but speaks for the wrong kind of principal (403, not 401).
    pub fn is_wrong_principal(&self) -> bool {
        matches!(self, AuthError::NotATenant)
    }

    /// The verifier could not do its job (as opposed to the token being bad).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, AuthError::JwksUnavailable(_))
    }
}
