use std::fmt;

use crate::Error;

/// The owner name of the shared layer. It can never be a tenant id: tenant ids start with
/// `[a-z0-9]`.
pub const SHARED_OWNER: &str = "_shared";

/// Owner names of tier layers start with this, followed by the tier name.
pub const TIER_OWNER_PREFIX: &str = "_tier_";

/// Whether `raw` follows the tenant-id grammar `[a-z0-9][a-z0-9-]{0,62}` (tier names too).
fn is_id(raw: &str) -> bool {
    let mut chars = raw.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    first_ok && raw.len() <= 63 && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A tenant id: `[a-z0-9][a-z0-9-]{0,62}`. It only ever comes from a verified token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(raw: &str) -> Result<Self, Error> {
        if is_id(raw) {
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

/// The name of a tier: a layer between a tenant and the shared defaults, which operators
/// write and assign tenants to. Same grammar as a tenant id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TierName {
    /// `_tier_<name>`: kept whole so that [`Owner::as_str`] needs no allocation.
    owner: String,
}

impl TierName {
    pub fn parse(raw: &str) -> Result<Self, Error> {
        if is_id(raw) {
            Ok(TierName {
                owner: format!("{TIER_OWNER_PREFIX}{raw}"),
            })
        } else {
            Err(Error::InvalidTier(format!(
                "'{}' does not match [a-z0-9][a-z0-9-]{{0,62}}",
                raw.chars().take(80).collect::<String>()
            )))
        }
    }

    /// The tier's name, e.g. `pro`.
    pub fn as_str(&self) -> &str {
        &self.owner[TIER_OWNER_PREFIX.len()..]
    }
}

impl fmt::Display for TierName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose namespace a store call works in: one tenant's, a tier's, or the shared layer.
/// Each owner has its own values, change log and revision.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Owner {
    Tenant(TenantId),
    Tier(TierName),
    Shared,
}

impl Owner {
    /// The name stores use for this owner: the tenant id, `_tier_<name>` or `_shared`.
    pub fn as_str(&self) -> &str {
        match self {
            Owner::Tenant(t) => t.as_str(),
            Owner::Tier(t) => &t.owner,
            Owner::Shared => SHARED_OWNER,
        }
    }

    /// The layer this owner's values answer as.
    pub fn layer(&self) -> crate::Layer {
        match self {
            Owner::Tenant(_) => crate::Layer::Tenant,
            Owner::Tier(t) => crate::Layer::Tier(t.clone()),
            Owner::Shared => crate::Layer::Shared,
        }
    }

    /// Whether this owner belongs to the platform (written by operators only).
    pub fn is_platform(&self) -> bool {
        !matches!(self, Owner::Tenant(_))
    }

    /// Parses a stored owner name back (the inverse of [`Owner::as_str`]).
    pub fn parse(raw: &str) -> Result<Self, Error> {
        if raw == SHARED_OWNER {
            Ok(Owner::Shared)
        } else if let Some(tier) = raw.strip_prefix(TIER_OWNER_PREFIX) {
            TierName::parse(tier).map(Owner::Tier)
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
        let pro = Owner::parse("_tier_pro").unwrap();
        assert_eq!(pro, Owner::Tier(TierName::parse("pro").unwrap()));
        assert_eq!(pro.as_str(), "_tier_pro");
        assert!(Owner::parse("_tier_").is_err());
        assert!(Owner::parse("_tier_Pro").is_err());
    }
}
