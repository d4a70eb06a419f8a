//! CloudWatch Embedded Metric Format: one JSON line on stdout per invocation that touched
//! the store; CloudWatch turns its fields into metrics without an API call.

use std::time::{SystemTime, UNIX_EPOCH};

use http_api::CacheCounts;
use serde_json::json;

/// The EMF line for these counts, or `None` when all are zero.
pub fn emf_line(function: &str, counts: CacheCounts) -> Option<String> {
    if counts == CacheCounts::default() {
        return None;
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    let metric = |name: &str| json!({"Name": name, "Unit": "Count"});
    Some(
        json!({
            "_aws": {
                "Timestamp": now_ms,
                "CloudWatchMetrics": [{
                    "Namespace": "tagcfg",
                    "Dimensions": [["FunctionName"]],
                    "Metrics": [metric("CacheHits"), metric("CacheMisses"), metric("HeadChecks"), metric("BackendReads")],
                }],
            },
            "FunctionName": function,
            "CacheHits": counts.hits,
            "CacheMisses": counts.misses,
            "HeadChecks": counts.head_checks,
            "BackendReads": counts.backend_reads,
        })
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_lines_carry_the_counts() {
        assert_eq!(emf_line("f", CacheCounts::default()), None);
        let line = emf_line(
            "f",
            CacheCounts {
                hits: 3,
                misses: 1,
                head_checks: 1,
                backend_reads: 1,
            },
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["CacheHits"], 3);
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "tagcfg");
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().unwrap().len(),
            4
        );
    }
}
