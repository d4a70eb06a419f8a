//! Governance: JSON Schemas per key or prefix, and how far tenants and tiers may override
//! the shared defaults.
//!
//! An operator registers a [`Registration`] at a [`SchemaPath`]: a key, or a prefix ending
//! in `/` that covers every key under it; the longest path that covers a key governs it.
//! Every write of a governed key is checked by [`check_write`]:
//!
//! - the value must satisfy the schema, on every layer;
//! - the override policy bounds the layers above shared: `deny` refuses tenant and tier
//!   writes of the key (`override_denied`), a bounding schema must also hold for them.
//!
//! Registrations are stored as values of the shared owner under record keys
//! (`_schema_<path>`) that no routing table can parse (tags start with a letter), so they
//! are versioned, have history and travel the change feed like any value, and no tenant
//! can read or write one. Feeds and listings skip them with [`is_record_key`].
//!
//! Validation uses the `jsonschema` crate (draft 2020-12), with no remote or file `$ref`
//! resolution: a schema cannot make the server fetch anything.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{ConfigStore, Error, JsonText, Key, Layer, Owner, Result};

/// Where registration records live in the shared owner.
pub const RECORD_PREFIX: &str = "_schema_";

/// The most violations one answer lists (the rest are counted).
pub const MAX_LISTED_VIOLATIONS: usize = 100;

/// Whether a stored key is a governance record rather than a configuration key.
pub fn is_record_key(raw: &str) -> bool {
    raw.starts_with(RECORD_PREFIX)
}

/// A key, or a prefix ending in `/`, that a schema is registered at.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchemaPath(String);

impl SchemaPath {
    /// `raw` must route like a key: `tenant_config_limits/api`, or with a trailing `/`,
    /// `tenant_config_limits/`.
    pub fn parse(raw: &str, routes: &crate::RoutingTable) -> Result<Self> {
        let as_key = raw.strip_suffix('/').unwrap_or(raw);
        routes.parse_key(as_key)?;
        Ok(SchemaPath(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_prefix(&self) -> bool {
        self.0.ends_with('/')
    }

    /// Whether this path covers `key`.
    pub fn covers(&self, key: &str) -> bool {
        if self.is_prefix() {
            key.starts_with(&self.0)
        } else {
            key == self.0
        }
    }

    /// The key of this path's record in the shared owner.
    pub fn record_key(&self) -> Key {
        Key::record(format!("{RECORD_PREFIX}{}", self.0))
    }

    /// The path a record key holds.
    pub fn of_record(raw: &str) -> Option<SchemaPath> {
        raw.strip_prefix(RECORD_PREFIX).map(|p| SchemaPath(p.to_owned()))
    }

    /// Every path that could govern `key`, longest first: the key, then each prefix of it
    /// that ends in `/`.
    pub fn candidates(key: &str) -> Vec<SchemaPath> {
        let mut paths = vec![SchemaPath(key.to_owned())];
        paths.extend(
            key.char_indices()
                .filter(|(_, c)| *c == '/')
                .rev()
                .map(|(i, _)| SchemaPath(key[..=i].to_owned())),
        );
        paths
    }
}

impl std::fmt::Display for SchemaPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How far the layers above shared may override a governed key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Override {
    /// `"allow"` or `"deny"`.
    Rule(OverrideRule),
    /// `{"schema": …}`: tenant and tier values must satisfy this schema too.
    Bounded { schema: Value },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverrideRule {
    Allow,
    Deny,
}

impl Default for Override {
    fn default() -> Self {
        Override::Rule(OverrideRule::Allow)
    }
}

/// What an operator registers at a path: `{"schema": …, "override": "allow" | "deny" |
/// {"schema": …}}` (`override` defaults to `allow`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    pub schema: Value,
    #[serde(default, rename = "override")]
    pub override_policy: Override,
}

/// One way a value fails a schema: where (a JSON pointer into the value) and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub pointer: String,
    pub message: String,
}

/// A registration whose schemas compiled.
#[derive(Clone)]
pub struct Governing {
    pub path: SchemaPath,
    pub registration: Registration,
    schema: Arc<jsonschema::Validator>,
    bound: Option<Arc<jsonschema::Validator>>,
}

impl std::fmt::Debug for Governing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Governing")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn compile(schema: &Value, what: &str) -> Result<jsonschema::Validator> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .build(schema)
        .map_err(|e| Error::InvalidSchema(format!("{what}: {e}")))
}

impl Governing {
    /// Parses and compiles a registration body.
    pub fn compile(path: SchemaPath, body: &JsonText) -> Result<Self> {
        let registration: Registration = serde_json::from_str(body.as_str()).map_err(|e| {
            Error::InvalidSchema(format!(
                "expected {{\"schema\": …, \"override\": \"allow\" | \"deny\" | {{\"schema\": …}}}}: {e}"
            ))
        })?;
        let schema = compile(&registration.schema, "schema")?;
        let bound = match &registration.override_policy {
            Override::Bounded { schema } => Some(Arc::new(compile(schema, "override schema")?)),
            Override::Rule(_) => None,
        };
        Ok(Governing {
            path,
            registration,
            schema: Arc::new(schema),
            bound,
        })
    }

    /// What is wrong with writing `value` at `key` in `layer`; empty when nothing is.
    /// Messages about a secret key's value never quote it.
    pub fn check(&self, key: &Key, layer: &Layer, value: &JsonText) -> Result<Vec<Violation>> {
        self.check_quoting(key, layer, value, !key.backend().is_secret())
    }

    /// [`Governing::check`] with messages that never quote the value, whatever the key: what
    /// an operator is shown about a tenant's stored value (a registration's conflicts), since
    /// tenant configuration is never shown to an operator.
    pub fn check_unquoted(&self, key: &Key, layer: &Layer, value: &JsonText) -> Result<Vec<Violation>> {
        self.check_quoting(key, layer, value, false)
    }

    fn check_quoting(&self, key: &Key, layer: &Layer, value: &JsonText, quote: bool) -> Result<Vec<Violation>> {
        if !matches!(layer, Layer::Shared) && self.registration.override_policy == Override::Rule(OverrideRule::Deny) {
            return Err(Error::OverrideDenied(format!(
                "the platform does not let {} override '{}' (policy at '{}')",
                layer_name(layer),
                key.as_str(),
                self.path
            )));
        }
        let instance: Value = serde_json::from_str(value.as_str()).map_err(|e| Error::InvalidValue(e.to_string()))?;
        let mut found = violations(&self.schema, &instance, quote, "");
        if let (Some(bound), false) = (&self.bound, matches!(layer, Layer::Shared)) {
            found.extend(violations(bound, &instance, quote, "override bound: "));
        }
        Ok(found)
    }
}

fn layer_name(layer: &Layer) -> String {
    match layer {
        Layer::Tenant => "a tenant".into(),
        Layer::Tier(t) => format!("tier '{t}'"),
        Layer::Shared => "the shared layer".into(),
    }
}

fn violations(schema: &jsonschema::Validator, instance: &Value, quote: bool, label: &str) -> Vec<Violation> {
    schema
        .iter_errors(instance)
        .map(|e| Violation {
            pointer: e.instance_path().to_string(),
            message: if quote {
                format!("{label}{e}")
            } else {
                // The validator's message quotes the offending value.
                format!("{label}the value at this pointer does not satisfy the schema")
            },
        })
        .collect()
}

/// The registration governing `key`, if any: the longest registered path that covers it.
pub async fn governing(store: &dyn ConfigStore, key: &Key) -> Result<Option<Governing>> {
    let candidates = SchemaPath::candidates(key.as_str());
    let record_keys: Vec<Key> = candidates.iter().map(SchemaPath::record_key).collect();
    let found = store.batch_get(&Owner::Shared, &record_keys).await?;
    for path in candidates {
        let record = path.record_key();
        if let Some(item) = found.iter().find(|i| i.key == record.as_str()) {
            return Governing::compile(path, &item.value).map(Some);
        }
    }
    Ok(None)
}

/// Checks a write of `value` at `key` in `owner`'s layer against the registration that
/// governs the key: `Err(SchemaViolation)` or `Err(OverrideDenied)`, nothing written.
pub async fn check_write(store: &dyn ConfigStore, owner: &Owner, key: &Key, value: &JsonText) -> Result<()> {
    let Some(governing) = governing(store, key).await? else {
        return Ok(());
    };
    let found = governing.check(key, &owner.layer(), value)?;
    if found.is_empty() {
        Ok(())
    } else {
        Err(Error::SchemaViolation(found))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RoutingTable;

    fn governing(body: &str) -> Governing {
        let path = SchemaPath::parse("tenant_config_limits/", &RoutingTable::default()).unwrap();
        Governing::compile(path, &JsonText::parse(body).unwrap()).unwrap()
    }

    fn key(raw: &str) -> Key {
        RoutingTable::default().parse_key(raw).unwrap()
    }

    fn value(raw: &str) -> JsonText {
        JsonText::parse(raw).unwrap()
    }

    #[test]
    fn candidates_run_from_the_key_to_its_shortest_prefix() {
        let paths: Vec<String> = SchemaPath::candidates("tenant_config_a/b/c")
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(paths, ["tenant_config_a/b/c", "tenant_config_a/b/", "tenant_config_a/"]);
        let prefix = SchemaPath::parse("tenant_config_a/", &RoutingTable::default()).unwrap();
        assert!(prefix.covers("tenant_config_a/b") && !prefix.covers("tenant_config_ab"));
        assert!(SchemaPath::parse("nope_x/", &RoutingTable::default()).is_err());
        assert!(is_record_key(prefix.record_key().as_str()));
        assert_eq!(SchemaPath::of_record(prefix.record_key().as_str()), Some(prefix));
    }

    #[test]
    fn values_are_checked_with_pointers_and_bounds_apply_above_shared() {
        let g = governing(
            r#"{"schema":{"type":"object","properties":{"max_rps":{"type":"integer","minimum":1}},"required":["max_rps"]},
                "override":{"schema":{"properties":{"max_rps":{"maximum":500}}}}}"#,
        );
        let k = key("tenant_config_limits/api");
        assert!(g
            .check(&k, &Layer::Shared, &value(r#"{"max_rps":900}"#))
            .unwrap()
            .is_empty());
        let v = g.check(&k, &Layer::Tenant, &value(r#"{"max_rps":900}"#)).unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].pointer, "/max_rps");
        assert!(v[0].message.starts_with("override bound: "), "{v:?}");
        let v = g.check(&k, &Layer::Shared, &value(r#"{"max_rps":"fast"}"#)).unwrap();
        assert_eq!(v[0].pointer, "/max_rps");
        assert!(v[0].message.contains("fast"), "{v:?}");
        assert!(!g.check(&k, &Layer::Tenant, &value("{}")).unwrap().is_empty());
    }

    #[test]
    fn deny_refuses_tenant_and_tier_writes_and_secrets_are_never_quoted() {
        let g = governing(r#"{"schema":{"type":"string","maxLength":3},"override":"deny"}"#);
        let k = key("tenant_config_limits/api");
        assert!(matches!(
            g.check(&k, &Layer::Tenant, &value("\"a\"")),
            Err(Error::OverrideDenied(_))
        ));
        let tier = Layer::Tier(crate::TierName::parse("pro").unwrap());
        assert!(matches!(
            g.check(&k, &tier, &value("\"a\"")),
            Err(Error::OverrideDenied(_))
        ));
        assert!(g.check(&k, &Layer::Shared, &value("\"a\"")).unwrap().is_empty());

        let path = SchemaPath::parse("secret_config_db/", &RoutingTable::default()).unwrap();
        let g = Governing::compile(path, &value(r#"{"schema":{"type":"string","maxLength":3}}"#)).unwrap();
        let v = g
            .check(
                &key("secret_config_db/pw"),
                &Layer::Tenant,
                &value("\"hunter2-secret\""),
            )
            .unwrap();
        assert_eq!(v.len(), 1);
        assert!(!v[0].message.contains("hunter2"), "{v:?}");
    }

    #[test]
    fn bad_registrations_are_refused_and_remote_refs_are_not_fetched() {
        let path = || SchemaPath::parse("tenant_config_x", &RoutingTable::default()).unwrap();
        for bad in [
            r#"{"schema":{"type":"nonsense"}}"#,
            r#"{"schema":{},"override":"maybe"}"#,
            r#"{"schema":{},"extra":1}"#,
            r#"{"override":"deny"}"#,
            r#"{"schema":{"$ref":"http://127.0.0.1:9/x.json"}}"#,
        ] {
            let err = Governing::compile(path(), &value(bad)).unwrap_err();
            assert!(matches!(err, Error::InvalidSchema(_)), "{bad}: {err}");
        }
    }
}
