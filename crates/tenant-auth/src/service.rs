//! The service credential: what the cache-refresher presents to a watch server's
//! `Refresh`. An HS256 token with its own secret, issuer and audience and **no tenant
//! claim**, so a tenant token — whoever signed it — can never pass for one.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Map, Value};

use crate::{AuthError, DEFAULT_TENANT_CLAIM};

pub const SERVICE_ISSUER: &str = "tagcfg-service";
pub const SERVICE_AUDIENCE: &str = "tagcfg-refresh";

/// Verifies service credentials.
pub struct ServiceVerifier {
    key: DecodingKey,
}

impl std::fmt::Debug for ServiceVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceVerifier")
    }
}

impl ServiceVerifier {
    pub fn new(secret: &[u8]) -> Result<Self, AuthError> {
        if secret.len() < 32 {
            return Err(AuthError::Config("the service secret must be at least 32 bytes".into()));
        }
        Ok(ServiceVerifier {
            key: DecodingKey::from_secret(secret),
        })
    }

    /// Returns the caller's subject when `authorization` carries a valid service token.
    pub fn verify_authorization(&self, authorization: Option<&str>) -> Result<String, AuthError> {
        let token = authorization
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or(AuthError::MissingToken)?
            .strip_prefix("Bearer ")
            .ok_or_else(|| AuthError::Malformed("the Authorization value is not 'Bearer <token>'".into()))?;
        let header = jsonwebtoken::decode_header(token).map_err(|e| AuthError::Malformed(e.to_string()))?;
        if header.alg != Algorithm::HS256 {
            return Err(AuthError::UnsupportedAlgorithm(format!(
                "{:?} (service tokens are HS256)",
                header.alg
            )));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[SERVICE_ISSUER]);
        validation.set_audience(&[SERVICE_AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = decode::<Map<String, Value>>(token, &self.key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => AuthError::BadSignature,
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                jsonwebtoken::errors::ErrorKind::InvalidAudience => AuthError::WrongAudience,
                jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(c) if c == "aud" => AuthError::WrongAudience,
                jsonwebtoken::errors::ErrorKind::MissingRequiredClaim(c) if c == "iss" => AuthError::WrongIssuer,
                other => AuthError::Malformed(format!("{other:?}")),
            })?
            .claims;
        if claims.contains_key(DEFAULT_TENANT_CLAIM) {
            return Err(AuthError::WrongTokenUse(
                "tenant tokens cannot call service operations".into(),
            ));
        }
        Ok(claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or("service")
            .to_owned())
    }
}

/// Mints a service token (the cache-refresher does this with its configured secret).
pub fn mint(secret: &[u8], subject: &str, ttl_secs: u64) -> Result<String, AuthError> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let claims =
        json!({"iss": SERVICE_ISSUER, "aud": SERVICE_AUDIENCE, "sub": subject, "iat": now, "exp": now + ttl_secs});
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(|e| AuthError::Config(format!("cannot sign a service token: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tagged_routing::TenantId;

    const SECRET: &[u8] = b"service-secret-service-secret-service!";

    #[test]
    fn only_service_tokens_pass() {
        let v = ServiceVerifier::new(SECRET).unwrap();
        let ok = mint(SECRET, "cache-refresher", 60).unwrap();
        assert_eq!(
            v.verify_authorization(Some(&format!("Bearer {ok}"))).unwrap(),
            "cache-refresher"
        );
        // A tenant dev token signed with the very same secret still fails (issuer, audience).
        let tenant = crate::dev::mint(
            SECRET,
            &TenantId::parse("acme").unwrap(),
            "u",
            &[crate::Scope::Admin],
            60,
        )
        .unwrap();
        assert_eq!(
            v.verify_authorization(Some(&format!("Bearer {tenant}"))),
            Err(AuthError::WrongIssuer)
        );
        // Even with the service issuer and audience, a tenant claim disqualifies it.
        let claims =
            json!({"iss": SERVICE_ISSUER, "aud": SERVICE_AUDIENCE, "exp": 4102444800u64, DEFAULT_TENANT_CLAIM: "acme"});
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(matches!(
            v.verify_authorization(Some(&format!("Bearer {forged}"))),
            Err(AuthError::WrongTokenUse(_))
        ));
        let other = mint(b"another-secret-another-secret-another!", "x", 60).unwrap();
        assert_eq!(
            v.verify_authorization(Some(&format!("Bearer {other}"))),
            Err(AuthError::BadSignature)
        );
        assert_eq!(v.verify_authorization(None), Err(AuthError::MissingToken));
    }
}

/// The shortest service secret accepted.
pub const MIN_SECRET_LEN: usize = 32;

/// Where the key of the service credential comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `TAGCFG_SERVICE_SECRET`: the key itself (local runs, tests; on ECS the task injects it
    /// from Parameter Store).
    Value(Vec<u8>),
    /// `TAGCFG_SERVICE_SECRET_PARAMETER`: the name of a SecureString to read at start, so no
    /// deployed function carries the key in its environment.
    Parameter(String),
}

impl std::fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Value(_) => f.write_str("SecretSource::Value(<redacted>)"),
            SecretSource::Parameter(name) => write!(f, "SecretSource::Parameter({name})"),
        }
    }
}

impl SecretSource {
    /// Exactly one of `TAGCFG_SERVICE_SECRET` and `TAGCFG_SERVICE_SECRET_PARAMETER`.
    pub fn from_lookup(get: &impl tagged_routing::env::Lookup) -> Result<Self, tagged_routing::env::EnvError> {
        use tagged_routing::env::EnvError;
        match (get("TAGCFG_SERVICE_SECRET"), get("TAGCFG_SERVICE_SECRET_PARAMETER")) {
            (Some(_), Some(_)) => Err(EnvError::invalid(
                "TAGCFG_SERVICE_SECRET_PARAMETER",
                "set it or TAGCFG_SERVICE_SECRET, not both",
            )),
            (Some(value), None) => Ok(SecretSource::Value(checked_secret("TAGCFG_SERVICE_SECRET", value)?)),
            (None, Some(name)) if name.starts_with('/') => Ok(SecretSource::Parameter(name)),
            (None, Some(name)) => Err(EnvError::invalid(
                "TAGCFG_SERVICE_SECRET_PARAMETER",
                format!("'{name}' is not a parameter path (/...)"),
            )),
            (None, None) => Err(EnvError::Missing(
                "TAGCFG_SERVICE_SECRET (or TAGCFG_SERVICE_SECRET_PARAMETER)".into(),
            )),
        }
    }
}

/// `value` as a service secret read from `source` (a variable or parameter name), refused
/// when shorter than [`MIN_SECRET_LEN`].
pub fn checked_secret(source: &str, value: String) -> Result<Vec<u8>, tagged_routing::env::EnvError> {
    if value.len() < MIN_SECRET_LEN {
        return Err(tagged_routing::env::EnvError::invalid(
            source,
            format!("must be at least {MIN_SECRET_LEN} characters"),
        ));
    }
    Ok(value.into_bytes())
}
