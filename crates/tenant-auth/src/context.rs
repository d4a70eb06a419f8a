use std::fmt;

use tagged_routing::TenantId;

/// A permission a token grants. Each scope includes the ones below it:
/// `admin` ⊃ `write` ⊃ `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    Read,
    Write,
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "config:read",
            Scope::Write => "config:write",
            Scope::Admin => "config:admin",
        }
    }

    /// Accepts `config:write` and the resource-server form `<server>/config:write` Cognito
    /// puts in access tokens.
    pub fn parse(raw: &str) -> Option<Scope> {
        let name = raw.rsplit('/').next().unwrap_or(raw);
        [Scope::Read, Scope::Write, Scope::Admin]
            .into_iter()
            .find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The scope (or Cognito group) of platform operators. It is not above `config:admin`: it
/// is a different principal, which owns the shared and tier layers and no tenant.
pub const OPERATOR_SCOPE: &str = "config:operator";

/// The highest tenant scope a token grants (a token without any tagcfg scope may read), and
/// whether it names the operator scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes {
    highest: Scope,
    operator: bool,
}

impl Scopes {
    pub fn from_claims<'a>(names: impl IntoIterator<Item = &'a str>) -> Scopes {
        let mut highest = Scope::Read;
        let mut operator = false;
        for name in names {
            operator |= name.rsplit('/').next() == Some(OPERATOR_SCOPE);
            highest = highest.max(Scope::parse(name).unwrap_or(Scope::Read));
        }
        Scopes { highest, operator }
    }

    pub fn highest(self) -> Scope {
        self.highest
    }

    pub fn allows(self, needed: Scope) -> bool {
        self.highest >= needed
    }

    /// Whether the token names `config:operator`.
    pub fn operator(self) -> bool {
        self.operator
    }
}

/// Who is calling: the verified tenant, the token subject (recorded as `updated_by`) and
/// what the token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantContext {
    pub tenant: TenantId,
    pub subject: String,
    pub scopes: Scopes,
    /// Until when (seconds since the Unix epoch) the token is accepted: its `exp` plus the
    /// verifier's leeway. A long-lived stream opened with it ends then, so a token's end is
    /// the end of what it can receive.
    pub expires_at: u64,
}

/// A platform operator: writes the shared and tier layers and assigns tenants to tiers. An
/// operator token carries no tenant claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorContext {
    pub subject: String,
}

/// Whoever a verified token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Tenant(TenantContext),
    Operator(OperatorContext),
}

impl Principal {
    /// The token subject, recorded as `updated_by` / `actor`.
    pub fn subject(&self) -> &str {
        match self {
            Principal::Tenant(t) => &t.subject,
            Principal::Operator(o) => &o.subject,
        }
    }

    /// The tenant context, or [`crate::AuthError::NotATenant`] for an operator.
    pub fn into_tenant(self) -> Result<TenantContext, crate::AuthError> {
        match self {
            Principal::Tenant(t) => Ok(t),
            Principal::Operator(_) => Err(crate::AuthError::NotATenant),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        assert_eq!(Scopes::from_claims([]).highest(), Scope::Read);
        assert_eq!(Scopes::from_claims(["openid", "email"]).highest(), Scope::Read);
        assert_eq!(Scopes::from_claims(["tagcfg/config:write"]).highest(), Scope::Write);
        let admin = Scopes::from_claims(["config:read", "config:admin"]);
        assert!(admin.allows(Scope::Write) && admin.allows(Scope::Read));
        assert!(!Scopes::from_claims(["config:write"]).allows(Scope::Admin));
        let operator = Scopes::from_claims(["tagcfg/config:operator"]);
        assert!(operator.operator() && !operator.allows(Scope::Write));
        assert!(!admin.operator());
    }
}
