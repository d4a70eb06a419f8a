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

/// The highest scope a token grants; a token without any tagcfg scope may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scopes(Scope);

impl Scopes {
    pub fn from_claims<'a>(names: impl IntoIterator<Item = &'a str>) -> Scopes {
        Scopes(names.into_iter().filter_map(Scope::parse).max().unwrap_or(Scope::Read))
    }

    pub fn highest(self) -> Scope {
        self.0
    }

    pub fn allows(self, needed: Scope) -> bool {
        self.0 >= needed
    }
}

/// Who is calling: the verified tenant, the token subject (recorded as `updated_by`) and
/// what the token allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantContext {
    pub tenant: TenantId,
    pub subject: String,
    pub scopes: Scopes,
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
    }
}
