use std::fmt;

use crate::Error;

/// The owner name of the shared layer. It can never be a tenant id: tenant ids start with
/// `[a-z0-9]`.
pub const SHARED_OWNER: &str = "_shared";

/// A tenant id: `[a-z0-9][a-z0-9-]{0,62}`. It only ever comes from a verified token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let mut chars = raw.chars();
        let first_ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if first_ok && rest_ok && raw.len() <= 63 {
            Ok(TenantId(raw.to_owned()))
        } else {
            Err(Error::InvalidTenant(format!(
                "'{}' does not match [a-z0-9][a-z0-9-]{{0,62}}",
                raw.chars().take(80).collect::<String>()
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whose namespace a store call works in: one tenant's, or the shared layer that tenant
/// reads of hierarchical backends fall back to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    Tenant(TenantId),
    Shared,
}

impl Owner {
    /// The name stores use for this owner: the tenant id, or `_shared`.
    pub fn as_str(&self) -> &str {
        match self {
            Owner::Tenant(t) => t.as_str(),
            Owner::Shared => SHARED_OWNER,
        }
    }

    /// The layer this owner's values answer as.
    pub fn layer(&self) -> crate::Layer {
        match self {
            Owner::Tenant(_) => crate::Layer::Tenant,
            Owner::Shared => crate::Layer::Shared,
        }
    }

    /// Parses a stored owner name back (the inverse of [`Owner::as_str`]).
    pub fn parse(raw: &str) -> Result<Self, Error> {
        if raw == SHARED_OWNER {
            Ok(Owner::Shared)
        } else {
            TenantId::parse(raw).map(Owner::Tenant)
        }
    }
}

impl From<TenantId> for Owner {
    fn from(t: TenantId) -> Self {
        Owner::Tenant(t)
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_grammar() {
        for ok in ["acme", "a", "0", "acme-eu-1", &"a".repeat(63)] {
            assert!(TenantId::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "_shared", "-acme", "Acme", "ac me", "acme/x", &"a".repeat(64)] {
            assert!(TenantId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn owner_round_trips() {
        assert_eq!(Owner::parse("_shared").unwrap(), Owner::Shared);
        let acme = Owner::parse("acme").unwrap();
        assert_eq!(acme.as_str(), "acme");
        assert!(Owner::parse("_other").is_err());
    }
}
