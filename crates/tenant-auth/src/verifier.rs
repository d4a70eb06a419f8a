use std::time::Duration;

use base64::Engine;
use jsonwebtoken::{decode, decode_header, errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use tagged_routing::{TenantId, SHARED_OWNER};

use crate::jwks::JwksCache;
use crate::{AuthError, KeySource, OperatorContext, Principal, Scopes, TenantContext};

/// Cognito's custom attribute for the tenant, as the AWS tagged-storage article uses.
pub const DEFAULT_TENANT_CLAIM: &str = "custom:tenantId";

/// What a [`Verifier`] checks.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    /// Required `iss`, when set.
    pub issuer: Option<String>,
    /// Accepted `aud` (ID tokens) or `client_id` (Cognito access tokens); empty = any.
    pub audiences: Vec<String>,
    /// The claim holding the tenant id.
    pub tenant_claim: String,
    /// Accepted `token_use` values, checked when the claim is present.
    pub token_uses: Vec<String>,
    /// A token without `token_use` is refused (strict: a deployment that declares its
    /// token type accepts nothing else).
    pub require_token_use: bool,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway_secs: u64,
    /// Public keys for RS256 / ES256.
    pub jwks: Option<KeySource>,
    /// Shared secret for HS256 dev tokens. Refused inside Lambda.
    pub dev_secret: Option<Vec<u8>>,
    /// Minimum time between two JWKS fetches triggered by unknown `kid`s.
    pub jwks_min_refetch: Duration,
    /// Longer tokens are refused before anything of them is decoded
    /// ([`DEFAULT_MAX_TOKEN_BYTES`]; `TAGCFG_MAX_TOKEN_BYTES`).
    pub max_token_bytes: usize,
    /// How many verified tenant tokens are remembered until they expire
    /// ([`crate::verified::DEFAULT_VERIFIED_TOKENS`]; `TAGCFG_VERIFIED_TOKENS`; 0: none).
    pub verified_tokens: usize,
}

/// Cognito's ID tokens are 1–2 KiB with a few groups; 8 KiB leaves room for many and stops
/// a client from making every request parse and verify a 100 KB token.
pub const DEFAULT_MAX_TOKEN_BYTES: usize = 8 * 1024;

impl Default for VerifierConfig {
    fn default() -> Self {
        VerifierConfig {
            issuer: None,
            audiences: Vec::new(),
            tenant_claim: DEFAULT_TENANT_CLAIM.to_owned(),
            token_uses: vec!["access".into(), "id".into()],
            require_token_use: false,
            leeway_secs: 60,
            jwks: None,
            dev_secret: None,
            jwks_min_refetch: Duration::from_secs(30),
            max_token_bytes: DEFAULT_MAX_TOKEN_BYTES,
            verified_tokens: crate::verified::DEFAULT_VERIFIED_TOKENS,
        }
    }
}

/// Verifies bearer tokens. Build it once at start-up and share it.
pub struct Verifier {
    config: VerifierConfig,
    jwks: Option<JwksCache>,
    dev_key: Option<DecodingKey>,
    verified: crate::verified::VerifiedTokens,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.config.issuer)
            .field("audiences", &self.config.audiences)
            .field("tenant_claim", &self.config.tenant_claim)
            .field("jwks", &self.jwks.is_some())
            .field("dev_secret", &self.dev_key.is_some())
            .finish()
    }
}

impl Verifier {
    pub fn new(mut config: VerifierConfig) -> Result<Self, AuthError> {
        if config.dev_secret.is_some() && std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() {
            return Err(AuthError::Config(
                "a dev HS256 secret is refused when running inside Lambda".into(),
            ));
        }
        if config.dev_secret.as_ref().is_some_and(|s| s.len() < 32) {
            return Err(AuthError::Config("the dev secret must be at least 32 bytes".into()));
        }
        if config.jwks.is_none() && config.dev_secret.is_none() {
            return Err(AuthError::Config(
                "no key source: configure a JWKS or a dev secret".into(),
            ));
        }
        if config.tenant_claim.is_empty() {
            return Err(AuthError::Config("the tenant claim name is empty".into()));
        }
        let jwks = config
            .jwks
            .take()
            .map(|source| JwksCache::new(source, config.jwks_min_refetch))
            .transpose()?;
        let dev_key = config.dev_secret.take().map(|s| DecodingKey::from_secret(&s));
        let verified = crate::verified::VerifiedTokens::new(config.verified_tokens);
        Ok(Verifier {
            config,
            jwks,
            dev_key,
            verified,
        })
    }

    /// Verifies the value of an `Authorization` header (`Bearer <jwt>`).
    pub async fn verify_authorization(&self, header: Option<&str>) -> Result<Principal, AuthError> {
        let header = header
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .ok_or(AuthError::MissingToken)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| AuthError::Malformed("the Authorization header is not 'Bearer <token>'".into()))?;
        self.verify(token.trim()).await
    }

    /// Verifies the `Authorization` header of a call only tenants may make.
    pub async fn verify_tenant_authorization(&self, header: Option<&str>) -> Result<TenantContext, AuthError> {
        self.verify_authorization(header).await?.into_tenant()
    }

    /// Verifies a compact JWT that must speak for a tenant.
    pub async fn verify_tenant(&self, token: &str) -> Result<TenantContext, AuthError> {
        self.verify(token).await?.into_tenant()
    }

    /// Verifies a compact JWT: a tenant principal (tenant claim) or an operator (the
    /// `config:operator` scope or group, and no tenant claim). A tenant token verified
    /// before is answered from [`crate::verified`] until it expires.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > self.config.max_token_bytes {
            return Err(AuthError::TooLarge {
                limit: self.config.max_token_bytes,
            });
        }
        let now = unix_now();
        if let Some(context) = self.verified.get(token, now) {
            return Ok(Principal::Tenant(context));
        }
        let principal = self.verify_in_full(token).await?;
        if let Principal::Tenant(context) = &principal {
            self.verified.put(token, context, now);
        }
        Ok(principal)
    }

    /// How many verifications the verified-token cache answered (a measure, for tests and
    /// benchmarks).
    pub fn verified_from_cache(&self) -> u64 {
        self.verified.hits()
    }

    async fn verify_in_full(&self, token: &str) -> Result<Principal, AuthError> {
        let header = decode_header(token).map_err(|_| classify_bad_header(token))?;
        let key = match header.alg {
            Algorithm::HS256 => self.dev_key.clone().ok_or(AuthError::HmacNotAccepted)?,
            Algorithm::RS256 | Algorithm::ES256 => {
                let jwks = self
                    .jwks
                    .as_ref()
                    .ok_or_else(|| AuthError::UnsupportedAlgorithm(format!("{:?} (no JWKS configured)", header.alg)))?;
                let kid = header.kid.as_deref().ok_or(AuthError::MissingKid)?;
                let jwk = jwks.key_for(kid).await?;
                let mismatch = || AuthError::KeyAlgorithmMismatch {
                    kid: kid.to_owned(),
                    alg: format!("{:?}", header.alg),
                };
                let key = DecodingKey::from_jwk(&jwk).map_err(|_| mismatch())?;
                if key.family() != header.alg.family() {
                    return Err(mismatch());
                }
                key
            }
            other => return Err(AuthError::UnsupportedAlgorithm(format!("{other:?}"))),
        };

        let mut validation = Validation::new(header.alg);
        validation.leeway = self.config.leeway_secs;
        validation.validate_nbf = true;
        validation.validate_aud = false; // checked below: `aud` or Cognito's `client_id`
                                         // Only `exp` is required through the library: it checks required claims in a hash
                                         // set's order, so a token missing two of them got either error, at random (found by
                                         // the jwt fuzz target). A missing `iss` is refused below, after `exp`.
        if let Some(issuer) = &self.config.issuer {
            validation.set_issuer(&[issuer]);
        }
        validation.set_required_spec_claims(&["exp"]);

        let claims = decode::<Map<String, Value>>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature => AuthError::BadSignature,
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
                ErrorKind::MissingRequiredClaim(c) if c == "iss" => AuthError::WrongIssuer,
                ErrorKind::MissingRequiredClaim(c) if c == "exp" => AuthError::MissingExpiry,
                ErrorKind::InvalidAlgorithm => AuthError::UnsupportedAlgorithm(format!("{:?}", header.alg)),
                other => AuthError::Malformed(format!("{other:?}")),
            })?
            .claims;

        if self.config.issuer.is_some() && !claims.contains_key("iss") {
            return Err(AuthError::WrongIssuer);
        }
        self.check_audience(&claims)?;
        match claims.get("token_use") {
            Some(token_use) => {
                let token_use = token_use.as_str().unwrap_or_default();
                if !self.config.token_uses.iter().any(|u| u == token_use) {
                    return Err(AuthError::WrongTokenUse(token_use.chars().take(32).collect()));
                }
            }
            None if self.config.require_token_use => return Err(AuthError::WrongTokenUse("(none)".into())),
            None => {}
        }
        let subject = ["sub", "client_id", "username"]
            .iter()
            .find_map(|c| claims.get(*c).and_then(Value::as_str))
            .unwrap_or("anonymous")
            .to_owned();
        let scopes = scopes_of(&claims);
        let has_tenant = claims.contains_key(&self.config.tenant_claim);
        match (scopes.operator(), has_tenant) {
            (true, true) => Err(AuthError::MixedPrincipal),
            (true, false) => Ok(Principal::Operator(OperatorContext { subject })),
            (false, _) => Ok(Principal::Tenant(TenantContext {
                tenant: self.tenant_of(&claims)?,
                subject,
                scopes,
                expires_at: claims
                    .get("exp")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    .saturating_add(self.config.leeway_secs),
            })),
        }
    }

    fn check_audience(&self, claims: &Map<String, Value>) -> Result<(), AuthError> {
        if self.config.audiences.is_empty() {
            return Ok(());
        }
        let accepted = |v: &Value| v.as_str().is_some_and(|s| self.config.audiences.iter().any(|a| a == s));
        let aud_ok = match claims.get("aud") {
            Some(Value::Array(values)) => values.iter().any(accepted),
            Some(v) => accepted(v),
            None => false,
        };
        if aud_ok || claims.get("client_id").is_some_and(accepted) {
            Ok(())
        } else {
            Err(AuthError::WrongAudience)
        }
    }

    fn tenant_of(&self, claims: &Map<String, Value>) -> Result<TenantId, AuthError> {
        let claim = &self.config.tenant_claim;
        let raw = claims
            .get(claim)
            .ok_or_else(|| AuthError::MissingTenantClaim(claim.clone()))?
            .as_str()
            .ok_or_else(|| AuthError::MalformedTenantClaim(format!("'{claim}' is not a string")))?;
        if raw == SHARED_OWNER {
            return Err(AuthError::ReservedTenant);
        }
        TenantId::parse(raw).map_err(|e| AuthError::MalformedTenantClaim(e.to_string()))
    }
}

fn scopes_of(claims: &Map<String, Value>) -> Scopes {
    let from_scope = claims
        .get("scope")
        .and_then(Value::as_str)
        .into_iter()
        .flat_map(str::split_whitespace);
    let from_groups = claims
        .get("cognito:groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    Scopes::from_claims(from_scope.chain(from_groups))
}

/// Says why a header did not decode: an algorithm jsonwebtoken does not know (such as
/// `none`) is reported as such, anything else as malformed.
fn classify_bad_header(token: &str) -> AuthError {
    let alg = token
        .split('.')
        .next()
        .and_then(|h| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|bytes| serde_json::from_slice::<Map<String, Value>>(&bytes).ok())
        .and_then(|h| h.get("alg").and_then(Value::as_str).map(str::to_owned));
    match alg {
        Some(alg) => AuthError::UnsupportedAlgorithm(alg.chars().take(16).collect()),
        None => AuthError::Malformed("the header is not a base64url JSON object with an 'alg'".into()),
    }
}

impl VerifierConfig {
    /// The verifier settings of a deployed binary:
    ///
    /// | variable | meaning | default |
    /// | --- | --- | --- |
    /// | `TAGCFG_COGNITO_USER_POOL_ID` | derives issuer and JWKS URL (region from the id) | — |
    /// | `TAGCFG_JWKS_URL` / `TAGCFG_JWKS_FILE` | explicit key source | — |
    /// | `TAGCFG_ISSUER` | required `iss` | derived from the pool |
    /// | `TAGCFG_AUDIENCES` | accepted `aud` / `client_id`, comma-separated | any |
    /// | `TAGCFG_TENANT_CLAIM` | claim holding the tenant | `custom:tenantId` |
    /// | `TAGCFG_TOKEN_USE` | accepted `token_use`: `id`, `access` or `id,access`; when set, a token without the claim is refused | `id` with a Cognito pool (strict: the deployment's ID-token path); otherwise any, claim optional |
    /// | `TAGCFG_MAX_TOKEN_BYTES` | longer tokens are refused unread | 8192 |
    /// | `TAGCFG_VERIFIED_TOKENS` | verified tenant tokens remembered until they expire (0: none) | 10000 |
    /// | `TAGCFG_DEV_SECRET` | HS256 dev secret (refused inside Lambda) | — |
    pub fn from_lookup(get: &impl tagged_routing::env::Lookup) -> Result<Self, tagged_routing::env::EnvError> {
        use tagged_routing::env::EnvError;
        let cognito_issuer = get("TAGCFG_COGNITO_USER_POOL_ID")
            .map(|pool| {
                let (region, _) = pool.split_once('_').ok_or_else(|| {
                    EnvError::invalid(
                        "TAGCFG_COGNITO_USER_POOL_ID",
                        format!("'{pool}' is not of the form <region>_<id>"),
                    )
                })?;
                Ok::<_, EnvError>(format!("https://cognito-idp.{region}.amazonaws.com/{pool}"))
            })
            .transpose()?;
        let jwks = match (get("TAGCFG_JWKS_URL"), get("TAGCFG_JWKS_FILE"), &cognito_issuer) {
            (Some(url), _, _) => Some(KeySource::Url(url)),
            (None, Some(file), _) => Some(KeySource::File(file.into())),
            (None, None, Some(issuer)) => Some(KeySource::Url(format!("{issuer}/.well-known/jwks.json"))),
            (None, None, None) => None,
        };
        let dev_secret = get("TAGCFG_DEV_SECRET").map(String::into_bytes);
        if jwks.is_none() && dev_secret.is_none() {
            return Err(EnvError::Missing(
                "TAGCFG_COGNITO_USER_POOL_ID (or TAGCFG_JWKS_URL / TAGCFG_JWKS_FILE)".into(),
            ));
        }
        let token_use = match get("TAGCFG_TOKEN_USE") {
            Some(list) => {
                let uses: Vec<String> = list
                    .split(',')
                    .map(|u| u.trim().to_owned())
                    .filter(|u| !u.is_empty())
                    .collect();
                if uses.is_empty() || uses.iter().any(|u| u != "id" && u != "access") {
                    return Err(EnvError::invalid(
                        "TAGCFG_TOKEN_USE",
                        format!("'{list}': use id, access or id,access"),
                    ));
                }
                Some(uses)
            }
            // Cognito puts custom:tenantId in ID tokens only: the deployment's path.
            None if cognito_issuer.is_some() => Some(vec!["id".to_owned()]),
            None => None,
        };
        let issuer = get("TAGCFG_ISSUER").or(cognito_issuer);
        if issuer.is_none() && dev_secret.is_none() {
            return Err(EnvError::Missing("TAGCFG_ISSUER".into()));
        }
        Ok(VerifierConfig {
            issuer,
            audiences: get("TAGCFG_AUDIENCES")
                .map(|a| {
                    a.split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            tenant_claim: get("TAGCFG_TENANT_CLAIM").unwrap_or_else(|| DEFAULT_TENANT_CLAIM.into()),
            jwks,
            dev_secret,
            require_token_use: token_use.is_some(),
            max_token_bytes: usize::try_from(tagged_routing::env::number(
                get,
                "TAGCFG_MAX_TOKEN_BYTES",
                DEFAULT_MAX_TOKEN_BYTES as u64,
            )?)
            .map_err(|_| EnvError::invalid("TAGCFG_MAX_TOKEN_BYTES", "too large"))?,
            token_uses: token_use.unwrap_or_else(|| VerifierConfig::default().token_uses),
            verified_tokens: usize::try_from(tagged_routing::env::number(
                get,
                "TAGCFG_VERIFIED_TOKENS",
                crate::verified::DEFAULT_VERIFIED_TOKENS as u64,
            )?)
            .map_err(|_| EnvError::invalid("TAGCFG_VERIFIED_TOKENS", "too large"))?,
            ..VerifierConfig::default()
        })
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
