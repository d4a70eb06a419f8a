//! ETags and preconditions. A tenant-layer item's ETag is its version (`"3"`); a
//! shared-layer item's is `"shared-3"` and a tier's `"tier-pro-3"`, so an ETag read from one
//! layer never satisfies an `If-Match` on a write to another.

use axum::http::{HeaderMap, HeaderValue};
use tagged_routing::{ConfigItem, Layer, Precondition, Version};

use crate::ApiError;

/// The ETag text before the version: empty for the tenant layer.
fn etag_prefix(layer: &Layer) -> String {
    match layer {
        Layer::Tenant => String::new(),
        Layer::Tier(t) => format!("tier-{t}-"),
        Layer::Shared => "shared-".to_owned(),
    }
}

pub fn etag(item: &ConfigItem) -> String {
    format!("\"{}{}\"", etag_prefix(&item.layer), item.version)
}

pub fn etag_header(item: &ConfigItem) -> HeaderValue {
    HeaderValue::from_str(&etag(item)).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, ApiError> {
    headers
        .get(name)
        .map(|v| v.to_str().map_err(|_| ApiError::bad_header(name, "is not ASCII")))
        .transpose()
}

/// The precondition of a PUT or DELETE of `layer` from `If-Match` / `If-None-Match`. An
/// `If-Match` ETag of another layer is refused with 412: it names a version of a value this
/// write does not touch.
pub fn write_precondition(
    headers: &HeaderMap,
    layer: &Layer,
    allow_create_only: bool,
) -> Result<Precondition, ApiError> {
    let if_match = header(headers, "if-match")?;
    let if_none_match = header(headers, "if-none-match")?;
    match (if_match, if_none_match) {
        (Some(_), Some(_)) => Err(ApiError::bad_header(
            "if-match",
            "cannot be combined with If-None-Match",
        )),
        (Some(v), None) => {
            let tag = v.trim();
            let tag = tag.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(tag);
            let prefix = etag_prefix(layer);
            let Some(digits) = tag
                .strip_prefix(prefix.as_str())
                .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
            else {
                if tag.bytes().last().is_some_and(|b| b.is_ascii_digit()) && tag.contains('-') || !prefix.is_empty() {
                    // Well formed for another layer: a version mismatch, not a bad header.
                    if let Some(n) = tag
                        .rsplit('-')
                        .next()
                        .and_then(|d| d.parse::<u64>().ok())
                        .filter(|n| *n > 0)
                    {
                        return Err(ApiError::Domain(tagged_routing::Error::VersionMismatch {
                            expected: Version(n),
                            actual: None,
                        }));
                    }
                }
                return Err(ApiError::bad_header(
                    "if-match",
                    "must be the ETag of a version of the layer written, e.g. \"3\"",
                ));
            };
            digits
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .map(|n| Precondition::IfVersion(Version(n)))
                .ok_or_else(|| {
                    ApiError::bad_header(
                        "if-match",
                        "must be the ETag of a version of the layer written, e.g. \"3\"",
                    )
                })
        }
        (None, Some(v)) if v.trim() == "*" && allow_create_only => Ok(Precondition::CreateOnly),
        (None, Some(_)) => Err(ApiError::bad_header(
            "if-none-match",
            "only '*' (create-only) is supported on writes",
        )),
        (None, None) => Ok(Precondition::None),
    }
}

/// Whether a GET's `If-None-Match` matches the item (→ 304).
pub fn not_modified(headers: &HeaderMap, item: &ConfigItem) -> bool {
    let Some(v) = headers.get("if-none-match").and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let current = etag(item);
    v.split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == current)
}
