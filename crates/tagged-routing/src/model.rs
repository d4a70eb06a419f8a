use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::{BackendKind, Error, Key, Owner, TenantId, TierName};

/// Values up to this size travel inline in change records and events; larger ones are
/// omitted there and read from the store.
pub const INLINE_VALUE_LIMIT: usize = 32 * 1024;

/// A key's version: 1 on creation, +1 on every write. Deleting a key ends its history; a
/// later create starts again at 1 (as SSM does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Version(pub u64);

/// A tenant's change counter: +1 for every change of any of its keys, on any backend.
/// Gap-free and monotonic per owner; revision 0 means "nothing yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct Revision(pub u64);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A configuration value: any JSON value, kept as the exact text the writer sent so that
/// every value round-trips (numbers beyond f64, key order, escapes).
#[derive(Debug, Clone)]
pub struct JsonText(Box<RawValue>);

/// How deeply a value may nest arrays and objects. Fixed rather than configurable: every
/// reader downstream (events, the client, the CLI, other languages' parsers) must be able to
/// parse what is stored, and common parsers stop at 128 (serde_json) or less.
pub const MAX_JSON_DEPTH: usize = 64;

/// The deepest nesting of arrays and objects in valid JSON `text` (strings skipped).
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// The first `\u` escape of `json` (valid JSON text) that is a surrogate without its other
/// half: a high one not followed by a `\u` low one, or a low one on its own.
fn lone_surrogate(json: &str) -> Option<u16> {
    let bytes = json.as_bytes();
    let escape_at = |i: usize| -> Option<u16> {
        (bytes.get(i) == Some(&b'\\') && bytes.get(i + 1) == Some(&b'u'))
            .then(|| json.get(i + 2..i + 6).and_then(|hex| u16::from_str_radix(hex, 16).ok()))
            .flatten()
    };
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        match escape_at(i) {
            Some(high @ 0xD800..=0xDBFF) => match escape_at(i + 6) {
                Some(0xDC00..=0xDFFF) => i += 12,
                _ => return Some(high),
            },
            Some(low @ 0xDC00..=0xDFFF) => return Some(low),
            Some(_) => i += 6,
            // Any other escape is two bytes (`\"`, `\\`, `\n`, ...).
            None => i += 2,
        }
    }
    None
}

impl JsonText {
    /// Validates `text` as one JSON value nested at most [`MAX_JSON_DEPTH`] deep
    /// (surrounding whitespace is dropped). The text is kept as written: values stay raw
    /// JSON end to end.
    pub fn parse(text: &str) -> Result<Self, Error> {
        // Depth first: a deep value is refused before the parser walks it.
        let depth = nesting_depth(text);
        if depth > MAX_JSON_DEPTH {
            return Err(Error::ValueTooDeep {
                depth,
                limit: MAX_JSON_DEPTH,
            });
        }
        let raw = serde_json::from_str::<Box<RawValue>>(text)
            .map_err(|e| Error::InvalidValue(format!("the value is not valid JSON: {e}")))?;
        // The raw parser skips strings without pairing their \u escapes; a lone surrogate
        // would be stored, then refused by every reader that decodes the value (schemas,
        // SDKs). Found by the json_text fuzz target (fuzz/regressions/json_text).
        if let Some(escape) = lone_surrogate(raw.get()) {
            return Err(Error::InvalidValue(format!(
                "the value is not valid JSON: a string holds a lone UTF-16 surrogate (\\u{escape:04x})"
            )));
        }
        Ok(JsonText(raw))
    }

    /// Builds a value from anything serializable (demo data, tests).
    pub fn from_serialize<T: Serialize>(value: &T) -> Result<Self, Error> {
        serde_json::to_string(value)
            .map_err(|e| Error::InvalidValue(e.to_string()))
            .and_then(|s| JsonText::parse(&s))
    }

    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    pub fn len(&self) -> usize {
        self.0.get().len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.get().is_empty()
    }
}

impl PartialEq for JsonText {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for JsonText {}

impl Serialize for JsonText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(JsonText)
    }
}

/// Which layer answered a read: `tenant`, `tier:<name>` or `shared` on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Layer {
    Tenant,
    Tier(TierName),
    Shared,
}

impl Layer {
    /// Parses `tenant`, `tier:<name>` or `shared`.
    pub fn parse(raw: &str) -> Result<Self, Error> {
        match raw {
            "tenant" => Ok(Layer::Tenant),
            "shared" => Ok(Layer::Shared),
            _ => match raw.strip_prefix("tier:") {
                Some(name) => TierName::parse(name).map(Layer::Tier),
                None => Err(Error::InvalidValue(format!(
                    "layer '{}' is not tenant, tier:<name> or shared",
                    raw.chars().take(80).collect::<String>()
                ))),
            },
        }
    }

    /// The owner whose values answer as this layer for `tenant`.
    pub fn owner(&self, tenant: &TenantId) -> Owner {
        match self {
            Layer::Tenant => Owner::Tenant(tenant.clone()),
            Layer::Tier(t) => Owner::Tier(t.clone()),
            Layer::Shared => Owner::Shared,
        }
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layer::Tenant => f.write_str("tenant"),
            Layer::Tier(t) => write!(f, "tier:{t}"),
            Layer::Shared => f.write_str("shared"),
        }
    }
}

impl Serialize for Layer {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Layer {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = std::borrow::Cow::<str>::deserialize(d)?;
        Layer::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// One stored value as readers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigItem {
    pub key: String,
    pub value: JsonText,
    pub version: Version,
    /// The owner's revision at the write that produced this version.
    pub revision: Revision,
    pub updated_at: String,
    pub updated_by: String,
    pub layer: Layer,
}

impl ConfigItem {
    /// The item a put leaves behind: the key, version, revision, time and actor its change
    /// recorded, with the value itself (which the change may not carry inline).
    pub fn written(owner: &Owner, change: &Change, value: &JsonText) -> Self {
        ConfigItem {
            key: change.key.clone(),
            value: value.clone(),
            version: change.version,
            revision: change.revision,
            updated_at: change.at.clone(),
            updated_by: change.actor.clone(),
            layer: owner.layer(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    Put,
    Delete,
    /// The tenant was assigned to a tier (or removed from one): the change's value is the
    /// tier name as a JSON string, or absent for no tier; its key and tag are empty.
    Tier,
}

/// Why a change record carries no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueOmitted {
    Secret,
    TooLarge,
}

/// One entry of an owner's change log, and the detail of a `ConfigChanged` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The owner: a tenant id or `_shared`.
    pub tenant: String,
    pub revision: Revision,
    pub key: String,
    pub tag: String,
    pub backend: BackendKind,
    pub op: ChangeOp,
    /// The version written (put) or the version removed (delete).
    pub version: Version,
    pub actor: String,
    /// Why, in the author's words (`X-Change-Reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// In a change set: the revision of the set's last change. Readers of the feed show the
    /// set's changes together once that one arrived, never half a set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_last: Option<Revision>,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<JsonText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_omitted: Option<ValueOmitted>,
}

/// One write of a change set: a value (`None`: delete the key) under a precondition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetWrite {
    pub key: Key,
    pub value: Option<JsonText>,
    pub precondition: Precondition,
}

/// The most writes one change set holds: DynamoDB's `TransactWriteItems` takes 100 items,
/// and a set writes two per key (value, change) plus the owner's head.
pub const MAX_SET_WRITES: usize = 49;

/// The longest change reason accepted (`X-Change-Reason`), in characters.
pub const MAX_REASON_CHARS: usize = 256;

/// Who makes a change, and why: the verified subject, and the reason they gave.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Author {
    pub actor: String,
    pub reason: Option<String>,
}

impl Author {
    pub fn new(actor: impl Into<String>) -> Self {
        Author {
            actor: actor.into(),
            reason: None,
        }
    }

    /// With a reason: at most [`MAX_REASON_CHARS`] characters and no control characters
    /// (it is shown in logs, listings and terminals); empty means none.
    pub fn with_reason(actor: impl Into<String>, reason: &str) -> Result<Self, crate::Error> {
        let reason = reason.trim();
        if reason.chars().count() > MAX_REASON_CHARS {
            return Err(crate::Error::InvalidValue(format!(
                "a change reason has at most {MAX_REASON_CHARS} characters"
            )));
        }
        if reason.chars().any(char::is_control) {
            return Err(crate::Error::InvalidValue(
                "a change reason has no control characters".into(),
            ));
        }
        Ok(Author {
            actor: actor.into(),
            reason: (!reason.is_empty()).then(|| reason.to_owned()),
        })
    }
}

impl From<&str> for Author {
    fn from(actor: &str) -> Self {
        Author::new(actor)
    }
}

impl Change {
    /// Builds a change record, carrying the value inline only when it is neither secret nor
    /// larger than [`INLINE_VALUE_LIMIT`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        owner: &Owner,
        revision: Revision,
        key: &Key,
        op: ChangeOp,
        version: Version,
        author: &Author,
        at: String,
        value: Option<&JsonText>,
    ) -> Self {
        let (value, value_omitted) = match value {
            None => (None, None),
            Some(_) if key.backend().is_secret() => (None, Some(ValueOmitted::Secret)),
            Some(v) if v.len() > INLINE_VALUE_LIMIT => (None, Some(ValueOmitted::TooLarge)),
            Some(v) => (Some(v.clone()), None),
        };
        Change {
            tenant: owner.as_str().to_owned(),
            revision,
            key: key.as_str().to_owned(),
            tag: key.tag().as_str().to_owned(),
            backend: key.backend(),
            op,
            version,
            actor: author.actor.clone(),
            reason: author.reason.clone(),
            set_last: None,
            at,
            value,
            value_omitted,
        }
    }
}

impl Change {
    /// The record of assigning `tenant` to `tier` (`None`: to no tier). `version` counts the
    /// tenant's assignments.
    pub fn tier_assigned(
        tenant: &TenantId,
        revision: Revision,
        tier: Option<&TierName>,
        version: Version,
        author: &Author,
        at: String,
    ) -> Self {
        // No tier: no value (a JSON null would not survive every hop of the feed).
        let value = tier.and_then(|t| JsonText::from_serialize(&t.as_str()).ok());
        Change {
            tenant: tenant.as_str().to_owned(),
            revision,
            key: String::new(),
            tag: String::new(),
            backend: BackendKind::Dynamodb,
            op: ChangeOp::Tier,
            version,
            actor: author.actor.clone(),
            reason: author.reason.clone(),
            set_last: None,
            at,
            value,
            value_omitted: None,
        }
    }

    /// For a [`ChangeOp::Tier`] change: the tier assigned (`Some(None)`: none). `None` for
    /// any other change, or a tier change whose value is not a valid tier name.
    pub fn assigned_tier(&self) -> Option<Option<TierName>> {
        if self.op != ChangeOp::Tier {
            return None;
        }
        let Some(value) = &self.value else {
            return Some(None);
        };
        match serde_json::from_str::<Option<String>>(value.as_str()).ok()? {
            None => Some(None),
            Some(name) => TierName::parse(&name).ok().map(Some),
        }
    }
}

/// One version of a key, newest first in a history listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub version: Version,
    /// The owner's revision of this change, when the backend knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<Revision>,
    pub op: ChangeOp,
    pub actor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<JsonText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_omitted: Option<ValueOmitted>,
}

impl From<Change> for HistoryEntry {
    fn from(c: Change) -> Self {
        HistoryEntry {
            version: c.version,
            revision: Some(c.revision),
            op: c.op,
            actor: c.actor,
            reason: c.reason,
            at: c.at,
            value: c.value,
            value_omitted: c.value_omitted,
        }
    }
}

/// The condition a write is made under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Precondition {
    /// Write whatever is there.
    #[default]
    None,
    /// `If-Match`: only if the current version is this one.
    IfVersion(Version),
    /// `If-None-Match: *`: only if the key does not exist.
    CreateOnly,
}

/// A page of a listing; `next` is the cursor for the following page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// A page from a read of up to `limit + 1` items in key order: the first `limit`, and
    /// the last one's key as `next` when the extra item showed that more follow.
    pub fn cut(mut items: Vec<T>, limit: usize, key: impl Fn(&T) -> &str) -> Page<T> {
        let more = items.len() > limit;
        items.truncate(limit);
        Page::after(items, more, key)
    }

    /// A page of `items` (already at most the limit); `more`: whether others follow.
    pub fn after(items: Vec<T>, more: bool, key: impl Fn(&T) -> &str) -> Page<T> {
        let next = if more {
            items.last().map(|i| key(i).to_owned())
        } else {
            None
        };
        Page { items, next }
    }
}

/// The current UTC time in RFC 3339, the format of `updated_at` and `at`.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_surrogates_are_refused_and_pairs_and_other_escapes_kept() {
        // fuzz/regressions/json_text/lone-surrogate, found by `make fuzz`.
        for text in [
            r#"{"32861\udf632860[":"x"}"#,
            r#""\ud83d""#,
            r#""\ud83d\u0041""#,
            r#"["\\\udc00"]"#,
        ] {
            assert!(
                matches!(JsonText::parse(text), Err(Error::InvalidValue(m)) if m.contains("surrogate")),
                "{text}"
            );
        }
        for text in [
            r#""\ud83d\ude00""#,
            r#""\\udc00""#,
            r#""\u00e9\n\"""#,
            r#"{"\u0041":1}"#,
        ] {
            assert_eq!(
                JsonText::parse(text).map(|v| v.as_str().to_owned()).ok().as_deref(),
                Some(text)
            );
        }
    }

    #[test]
    fn nesting_is_counted_outside_strings_only() {
        assert_eq!(nesting_depth("1"), 0);
        assert_eq!(nesting_depth(r#"{"a":[1,{"b":[]}]}"#), 4);
        assert_eq!(
            nesting_depth(r#""[[[[\"[[""#),
            0,
            "brackets and escaped quotes inside a string"
        );
        assert_eq!(
            nesting_depth(r#"["\\",[[]]]"#),
            3,
            "an escaped backslash ends before the quote"
        );
        let deep = format!("{}{}", "[".repeat(MAX_JSON_DEPTH + 1), "]".repeat(MAX_JSON_DEPTH + 1));
        assert_eq!(
            JsonText::parse(&deep).unwrap_err(),
            Error::ValueTooDeep {
                depth: MAX_JSON_DEPTH + 1,
                limit: MAX_JSON_DEPTH
            }
        );
        let objects = format!("{}1{}", "{\"a\":".repeat(MAX_JSON_DEPTH), "}".repeat(MAX_JSON_DEPTH));
        assert!(JsonText::parse(&objects).is_ok(), "{MAX_JSON_DEPTH} levels are a value");
    }

    #[test]
    fn json_text_keeps_exact_text() {
        for text in [
            "12345678901234567890123456789",
            "{\"b\":1,\"a\":2}",
            "\"\\u00e9\"",
            "1e400",
            "null",
        ] {
            let v = JsonText::parse(text).unwrap();
            assert_eq!(v.as_str(), text);
            assert_eq!(serde_json::to_string(&v).unwrap(), text);
        }
        assert_eq!(JsonText::parse("  [1, 2]\n").unwrap().as_str(), "[1, 2]");
        for bad in ["", "{", "01", "[1,]", "1 2", "nul"] {
            assert!(matches!(JsonText::parse(bad), Err(Error::InvalidValue(_))), "{bad}");
        }
    }

    #[test]
    fn layers_round_trip_as_text() {
        for text in ["\"tenant\"", "\"tier:pro\"", "\"shared\""] {
            let layer: Layer = serde_json::from_str(text).unwrap();
            assert_eq!(serde_json::to_string(&layer).unwrap(), text);
        }
        for bad in ["\"tier:\"", "\"tier:Pro\"", "\"Tenant\"", "\"_shared\""] {
            assert!(serde_json::from_str::<Layer>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tier_changes_carry_the_tier() {
        let acme = TenantId::parse("acme").unwrap();
        let pro = TierName::parse("pro").unwrap();
        let c = Change::tier_assigned(&acme, Revision(3), Some(&pro), Version(1), &"op".into(), now_rfc3339());
        assert_eq!(c.assigned_tier(), Some(Some(pro)));
        let c = Change::tier_assigned(&acme, Revision(4), None, Version(2), &"op".into(), now_rfc3339());
        assert_eq!(c.assigned_tier(), Some(None));
        // Both survive a trip through JSON, as in an event's detail.
        let back: Change = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
        assert_eq!(back.assigned_tier(), Some(None));
    }
}
