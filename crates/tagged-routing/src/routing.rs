use std::collections::HashSet;
use std::fmt;

use crate::{validate_name, BackendKind, Error, Key, Tag};

/// The routing table tagcfg starts with when `TAGCFG_ROUTES` is not set: the prefixes of
/// the AWS tagged-storage article.
pub const DEFAULT_ROUTES: &str = "tenant_config_=dynamodb,param_config_=ssm,secret_config_=ssm-secure";

/// Tag → backend. Built once at start-up from a string such as
/// `tenant_config_=dynamodb,param_config_=ssm`; a malformed table fails there, never at the
/// first request. Parsing a key picks the longest tag that prefixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingTable {
    /// Sorted by tag length, longest first, so the first match is the longest.
    routes: Vec<(Tag, BackendKind)>,
}

impl RoutingTable {
    pub fn parse(spec: &str) -> Result<Self, Error> {
        let mut routes = Vec::new();
        let mut seen = HashSet::new();
        let mut ssm_segments = HashSet::new();
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (tag, backend) = entry.split_once('=').ok_or_else(|| {
                Error::InvalidRoutingTable(format!("entry '{entry}' is not of the form <tag>=<backend>"))
            })?;
            let tag = Tag::parse(tag.trim())?;
            let backend: BackendKind = backend.trim().parse()?;
            if !seen.insert(tag.clone()) {
                return Err(Error::InvalidRoutingTable(format!("tag '{tag}' appears twice")));
            }
            // Two SSM tags must not share a path segment once their trailing '_' is trimmed.
            if backend.is_hierarchical() && !ssm_segments.insert(tag.trimmed().to_owned()) {
                return Err(Error::InvalidRoutingTable(format!(
                    "tag '{tag}' collides with another SSM-routed tag after trimming its trailing '_'"
                )));
            }
            routes.push((tag, backend));
        }
        if routes.is_empty() {
            return Err(Error::InvalidRoutingTable("the table has no routes".into()));
        }
        routes.sort_by(|a, b| b.0.as_str().len().cmp(&a.0.as_str().len()).then(a.0.cmp(&b.0)));
        Ok(RoutingTable { routes })
    }

    /// Parses a raw key: the longest matching tag, then the name grammar.
    pub fn parse_key(&self, raw: &str) -> Result<Key, Error> {
        let (tag, backend) = self
            .routes
            .iter()
            .find(|(tag, _)| raw.starts_with(tag.as_str()))
            .ok_or_else(|| Error::UnknownTag(raw.chars().take(300).collect()))?;
        validate_name(&raw[tag.as_str().len()..])?;
        Ok(Key {
            raw: raw.to_owned(),
            tag: tag.clone(),
            backend: *backend,
        })
    }

    /// Every route, longest tag first.
    pub fn routes(&self) -> impl Iterator<Item = (&Tag, BackendKind)> {
        self.routes.iter().map(|(t, b)| (t, *b))
    }

    /// The backends any key starting with `prefix` can route to.
    pub fn backends_for_prefix(&self, prefix: &str) -> Vec<BackendKind> {
        // A key under `prefix` routes by the longest tag that prefixes the key. If some tag
        // prefixes `prefix`, the longest such tag decides unless a longer tag starts with
        // `prefix` too, so collect both kinds of candidates.
        let mut kinds: Vec<BackendKind> = self
            .routes
            .iter()
            .filter(|(t, _)| t.as_str().starts_with(prefix) || prefix.starts_with(t.as_str()))
            .map(|(_, b)| *b)
            .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }
}

impl Default for RoutingTable {
    fn default() -> Self {
        RoutingTable::parse(DEFAULT_ROUTES).expect("the default routing table is valid")
    }
}

impl fmt::Display for RoutingTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.routes.iter().map(|(t, b)| format!("{t}={b}")).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_tag_wins() {
        let t = RoutingTable::parse("tenant_=dynamodb,tenant_secret_=ssm-secure").unwrap();
        assert_eq!(
            t.parse_key("tenant_secret_db").unwrap().backend(),
            BackendKind::SsmSecure
        );
        assert_eq!(t.parse_key("tenant_x").unwrap().backend(), BackendKind::Dynamodb);
        let k = t.parse_key("tenant_secret_db/url").unwrap();
        assert_eq!(k.tag().as_str(), "tenant_secret_");
        assert_eq!(k.name(), "db/url");
    }

    #[test]
    fn errors() {
        let t = RoutingTable::default();
        assert!(matches!(t.parse_key("nope_x"), Err(Error::UnknownTag(_))));
        assert!(matches!(t.parse_key("tenant_config_"), Err(Error::InvalidKey(_))));
        assert!(matches!(t.parse_key("tenant_config_../x"), Err(Error::InvalidKey(_))));
    }

    #[test]
    fn malformed_tables_fail_at_parse() {
        for bad in [
            "",
            "tenant_config_",
            "tenant_config_=postgres",
            "Tenant_=dynamodb",
            "a_=dynamodb,a_=ssm",
            "p_=ssm,p__=ssm",
        ] {
            assert!(
                matches!(RoutingTable::parse(bad), Err(Error::InvalidRoutingTable(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn adding_a_tag_needs_no_code() {
        let t = RoutingTable::parse("tenant_config_=dynamodb,flags_=dynamodb, param_config_ = ssm").unwrap();
        assert_eq!(t.parse_key("flags_beta").unwrap().backend(), BackendKind::Dynamodb);
        assert_eq!(t.parse_key("param_config_db").unwrap().backend(), BackendKind::Ssm);
        assert_eq!(
            t.to_string(),
            "tenant_config_=dynamodb,param_config_=ssm,flags_=dynamodb"
        );
    }

    #[test]
    fn prefix_candidates() {
        let t = RoutingTable::default();
        assert_eq!(t.backends_for_prefix("tenant_config_fl"), vec![BackendKind::Dynamodb]);
        assert_eq!(t.backends_for_prefix(""), BackendKind::ALL.to_vec());
        assert_eq!(t.backends_for_prefix("param"), vec![BackendKind::Ssm]);
    }
}
