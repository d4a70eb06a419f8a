use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Longest accepted name (the part of a key after its tag).
pub const MAX_NAME_LEN: usize = 256;

/// The kind of backend a tag routes to. A kind is a storage *contract* (limits, layering,
/// secrecy); which implementation serves it is wiring (AWS or the local embedded store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// DynamoDB: hot per-tenant values, up to 350 KiB each.
    Dynamodb,
    /// SSM Parameter Store, `String` parameters: hierarchical, versioned, with a shared layer.
    Ssm,
    /// SSM Parameter Store, `SecureString` parameters: like `ssm`, and the value never
    /// appears in change events, the change log or logs.
    SsmSecure,
}

impl BackendKind {
    pub const ALL: [BackendKind; 3] = [BackendKind::Dynamodb, BackendKind::Ssm, BackendKind::SsmSecure];

    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Dynamodb => "dynamodb",
            BackendKind::Ssm => "ssm",
            BackendKind::SsmSecure => "ssm-secure",
        }
    }

    /// Values of this kind must never leave the store except to an authorised reader.
    pub fn is_secret(self) -> bool {
        matches!(self, BackendKind::SsmSecure)
    }

    /// Whether the backend is hierarchical (SSM paths: one path segment per tag). Layers
    /// do not depend on it: every backend has tenant, tier and shared layers.
    pub fn is_hierarchical(self) -> bool {
        matches!(self, BackendKind::Ssm | BackendKind::SsmSecure)
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BackendKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        BackendKind::ALL.into_iter().find(|b| b.as_str() == s).ok_or_else(|| {
            Error::InvalidRoutingTable(format!(
                "unknown backend '{s}' (expected one of: dynamodb, ssm, ssm-secure)"
            ))
        })
    }
}

/// A tag: the prefix of a key that names its route, e.g. `tenant_config_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(String);

impl Tag {
    /// Tags are `[a-z0-9_]+`, start with a letter and end with `_`, so a tag can never be
    /// confused with the name that follows it.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        let ok = raw.len() >= 2
            && raw.len() <= 64
            && raw.starts_with(|c: char| c.is_ascii_lowercase())
            && raw.ends_with('_')
            && raw
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if ok {
            Ok(Tag(raw.to_owned()))
        } else {
            Err(Error::InvalidRoutingTable(format!(
                "tag '{raw}' must match [a-z][a-z0-9_]*_ (at most 64 characters)"
            )))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tag without its trailing `_`: its path segment in SSM (`tenant_config_` →
    /// `tenant_config`).
    pub fn trimmed(&self) -> &str {
        self.0.trim_end_matches('_')
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed key: `<tag><name>` and the backend its tag routes to. Only a
/// [`crate::RoutingTable`] makes one, so every `Key` is routable. Ordered by its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub(crate) raw: String,
    pub(crate) tag: Tag,
    pub(crate) backend: BackendKind,
}

impl Key {
    /// A governance record's key (`crate::governance`): outside every routing table's
    /// grammar, kept in DynamoDB on AWS.
    pub(crate) fn record(raw: String) -> Key {
        Key {
            raw,
            tag: Tag(crate::governance::RECORD_PREFIX.to_owned()),
            backend: BackendKind::Dynamodb,
        }
    }

    /// The whole key, e.g. `tenant_config_flags/checkout`.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
    pub fn tag(&self) -> &Tag {
        &self.tag
    }
    /// The part after the tag, e.g. `flags/checkout`.
    pub fn name(&self) -> &str {
        &self.raw[self.tag.as_str().len()..]
    }
    pub fn backend(&self) -> BackendKind {
        self.backend
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Checks a key name: 1-256 characters of `[A-Za-z0-9._-/]`; `/` separates segments; no
/// empty, `.` or `..` segment (so no leading, trailing or doubled `/`).
pub fn validate_name(name: &str) -> Result<(), Error> {
    if name.is_empty() {
        return Err(Error::InvalidKey("the name after the tag is empty".into()));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::InvalidKey(format!(
            "the name is {} characters; at most {MAX_NAME_LEN} are allowed",
            name.len()
        )));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')))
    {
        return Err(Error::InvalidKey(format!(
            "character {c:?} is not allowed (use A-Z a-z 0-9 . _ - /)"
        )));
    }
    for segment in name.split('/') {
        match segment {
            "" => {
                return Err(Error::InvalidKey(
                    "empty path segment (leading, trailing or doubled '/')".into(),
                ))
            }
            "." | ".." => return Err(Error::InvalidKey(format!("path segment '{segment}' is not allowed"))),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "flags/checkout", "a.b-c_d/E9", "..a/b..", &"x".repeat(256)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "a//b",
            "../x",
            "a/./b",
            "a/..",
            "a b",
            "ä",
            "a\\b",
            &"x".repeat(257),
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags() {
        assert_eq!(Tag::parse("tenant_config_").unwrap().trimmed(), "tenant_config");
        for bad in ["", "_", "tenant", "Tenant_", "1x_", "a-b_"] {
            assert!(Tag::parse(bad).is_err(), "{bad}");
        }
    }
}
