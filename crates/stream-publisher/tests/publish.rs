//! The publisher over the sample batches in events/stream/, with recording and
//! fault-injecting sinks (no network).

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use serde_json::Value;
use stream_publisher::{chunks, publish, EventSink, PublisherConfig, MAX_ENTRIES, MAX_REQUEST_BYTES};

fn config() -> PublisherConfig {
    PublisherConfig {
        event_bus: "tagcfg-bus".into(),
        source: "tagcfg".into(),
    }
}

fn batch(name: &str) -> Vec<EventRecord> {
    let path = format!("{}/../../events/stream/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let event: Event = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event.records
}

/// Records what was published; refuses entries whose `<tenant>:<revision>` is listed, for
/// as many attempts as given (u32::MAX = always), and may fail whole calls.
#[derive(Default)]
struct FaultySink {
    published: Mutex<Vec<Value>>,
    refuse: Mutex<HashMap<String, u32>>,
    calls: Mutex<Vec<usize>>,
    fail_first_calls: Mutex<u32>,
}

fn id(detail: &Value) -> String {
    format!("{}:{}", detail["tenant"].as_str().unwrap(), detail["revision"])
}

#[async_trait]
impl EventSink for FaultySink {
    async fn put_events(&self, entries: Vec<PutEventsRequestEntry>) -> Result<Vec<Option<String>>, String> {
        self.calls.lock().unwrap().push(entries.len());
        {
            let mut fail = self.fail_first_calls.lock().unwrap();
            if *fail > 0 {
                *fail -= 1;
                return Err("connection reset".into());
            }
        }
        let mut results = Vec::new();
        for e in entries {
            assert_eq!(e.detail_type(), Some("ConfigChanged"));
            assert_eq!(e.source(), Some("tagcfg"));
            assert_eq!(e.event_bus_name(), Some("tagcfg-bus"));
            let detail: Value = serde_json::from_str(e.detail().unwrap()).unwrap();
            let mut refuse = self.refuse.lock().unwrap();
            match refuse.get_mut(&id(&detail)) {
                Some(left) if *left > 0 => {
                    *left = left.saturating_sub(1);
                    results.push(Some("InternalFailure".to_owned()));
                }
                _ => {
                    self.published.lock().unwrap().push(detail);
                    results.push(None);
                }
            }
        }
        Ok(results)
    }
}

impl FaultySink {
    fn ids(&self) -> Vec<String> {
        self.published.lock().unwrap().iter().map(id).collect()
    }
}

#[tokio::test]
async fn change_items_become_config_changed_events_and_other_records_are_ignored() {
    let sink = FaultySink::default();
    let response = publish(&batch("changes"), &sink, &config()).await;
    assert!(response.batch_item_failures.is_empty());
    let published = sink.published.lock().unwrap().clone();
    assert_eq!(sink.ids(), ["acme:7", "acme:8", "acme:9"]);
    assert_eq!(published[0]["value"], serde_json::json!({"enabled": true}));
    assert_eq!(published[0]["key"], "tenant_config_flags/checkout");
    assert_eq!(
        published[0]["reason"], "enable checkout for the launch",
        "the reason travels"
    );
    assert_eq!(
        (published[0]["op"].as_str(), published[0]["version"].as_u64()),
        (Some("put"), Some(2))
    );
    assert_eq!(published[1]["value_omitted"], "secret");
    assert!(published[1].get("value").is_none(), "secrets never travel");
    assert_eq!(published[2]["op"], "delete");

    let sink = FaultySink::default();
    let response = publish(&batch("ignored-items"), &sink, &config()).await;
    assert!(response.batch_item_failures.is_empty());
    assert!(
        sink.ids().is_empty(),
        "value items, head updates and TTL removals are not changes"
    );
    assert!(sink.calls.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_malformed_record_is_reported_and_does_not_block_the_records_before_it() {
    let sink = FaultySink::default();
    let response = publish(&batch("malformed"), &sink, &config()).await;
    assert_eq!(sink.ids(), ["acme:7"], "the record before it is published");
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(
        response.batch_item_failures[0].item_identifier.as_deref(),
        Some("102"),
        "the malformed record's sequence number"
    );
}

#[tokio::test]
async fn refused_entries_are_retried_alone_and_nothing_is_lost_or_doubled() {
    let sink = FaultySink::default();
    sink.refuse.lock().unwrap().insert("acme:8".into(), 2); // refused twice, then accepted
    *sink.fail_first_calls.lock().unwrap() = 1; // and the very first call fails whole
    let response = publish(&batch("changes"), &sink, &config()).await;
    assert!(response.batch_item_failures.is_empty());
    let mut ids = sink.ids();
    ids.sort();
    assert_eq!(ids, ["acme:7", "acme:8", "acme:9"], "each change exactly once");
    // Calls: 3 entries (failed whole), 3 entries (one refused), 1, 1.
    assert_eq!(*sink.calls.lock().unwrap(), [3, 3, 1, 1]);
}

#[tokio::test]
async fn an_entry_that_never_gets_in_is_reported_by_its_record() {
    let sink = FaultySink::default();
    sink.refuse.lock().unwrap().insert("acme:8".into(), u32::MAX);
    let response = publish(&batch("changes"), &sink, &config()).await;
    let mut ids = sink.ids();
    ids.sort();
    assert_eq!(ids, ["acme:7", "acme:9"]);
    assert_eq!(response.batch_item_failures[0].item_identifier.as_deref(), Some("102"));
}

#[test]
fn chunks_respect_eventbridge_limits_in_order() {
    let small = vec![300; 25];
    let c = chunks(&small);
    assert_eq!(c.iter().map(Vec::len).collect::<Vec<_>>(), [10, 10, 5]);
    assert_eq!(c.concat(), (0..25).collect::<Vec<_>>());
    let big = vec![40 * 1024; 13];
    for chunk in chunks(&big) {
        assert!(chunk.len() <= MAX_ENTRIES);
        assert!(chunk.iter().map(|&i| big[i]).sum::<usize>() <= MAX_REQUEST_BYTES);
    }
    assert_eq!(chunks(&big).concat(), (0..13).collect::<Vec<_>>());
}

#[test]
fn a_change_set_that_fits_one_call_is_not_split() {
    use stream_publisher::chunks_keeping_sets;
    // Seven single changes, then a set of five: the set starts a new call instead of
    // filling the first call's last three places.
    let mut entries: Vec<(usize, Option<(&str, u64)>)> = vec![(100, None); 7];
    entries.extend(vec![(100, Some(("acme", 12))); 5]);
    let c = chunks_keeping_sets(&entries);
    assert_eq!(c, vec![(0..7).collect::<Vec<_>>(), (7..12).collect()]);
    // A set larger than one call is split, in order.
    let big: Vec<(usize, Option<(&str, u64)>)> = vec![(100, Some(("acme", 30))); 13];
    let c = chunks_keeping_sets(&big);
    assert_eq!(c.concat(), (0..13).collect::<Vec<_>>());
    assert!(c.iter().all(|chunk| chunk.len() <= MAX_ENTRIES));
}
