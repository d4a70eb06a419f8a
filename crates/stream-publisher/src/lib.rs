//! # stream-publisher: DynamoDB stream → EventBridge `ConfigChanged` events
//!
//! The Lambda behind the config table's stream. For each batch it
//!
//! 1. keeps only change-log inserts (`sk = C#…`; value and head items, and the TTL's
//!    removals, are not changes) and decodes each `NewImage` with serde_dynamo into the
//!    table's own `ChangeItem` — the same type the store writes;
//! 2. turns each change into one `ConfigChanged` entry whose detail is the [`Change`]
//!    (the value inline only when it is neither secret nor over 32 KiB — the store already
//!    decided that when it wrote the item);
//! 3. sends `PutEvents` in chunks within EventBridge's limits (10 entries, 256 KiB),
//!    retrying only the entries that failed, with backoff and jitter;
//! 4. answers with the sequence number of the first record it could not deliver (or
//!    decode), so Lambda retries from there and nothing is acknowledged unpublished.
//!    Records before it are published; records after it come again, and duplicates are
//!    harmless downstream (idempotent by tenant + revision).

use adapters::aws::{ChangeItem, CHANGE_SK_PREFIX};
use async_trait::async_trait;
use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use tagged_routing::Change;

/// The detail-type of every event.
pub const DETAIL_TYPE: &str = "ConfigChanged";
/// EventBridge's limits for one `PutEvents` call.
pub const MAX_ENTRIES: usize = 10;
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;
/// Attempts per entry before its record is reported as failed.
pub const MAX_ATTEMPTS: u32 = 5;

/// Why a record could not be turned into an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record {event_id}: the change item does not decode: {reason}")]
    Malformed { event_id: String, reason: String },
}

/// Where events go: EventBridge, or a test double.
#[async_trait]
pub trait EventSink: Send + Sync {
    /// Sends up to [`MAX_ENTRIES`] entries; returns, per entry, `None` when accepted or the
    /// error code when EventBridge refused it. `Err` means the whole call failed.
    async fn put_events(&self, entries: Vec<PutEventsRequestEntry>) -> Result<Vec<Option<String>>, String>;
}

/// The real sink.
pub struct EventBridgeSink {
    pub client: aws_sdk_eventbridge::Client,
}

#[async_trait]
impl EventSink for EventBridgeSink {
    async fn put_events(&self, entries: Vec<PutEventsRequestEntry>) -> Result<Vec<Option<String>>, String> {
        let count = entries.len();
        let out = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| aws_sdk_eventbridge::error::DisplayErrorContext(e).to_string())?;
        let results: Vec<Option<String>> = out
            .entries()
            .iter()
            .map(|e| e.error_code().map(str::to_owned))
            .collect();
        if results.len() != count {
            return Err(format!(
                "PutEvents answered {} results for {count} entries",
                results.len()
            ));
        }
        Ok(results)
    }
}

/// Where events are published.
#[derive(Debug, Clone)]
pub struct PublisherConfig {
    pub event_bus: String,
    /// The events' `source`, default `tagcfg`.
    pub source: String,
}

impl PublisherConfig {
    /// `TAGCFG_EVENT_BUS` (required), `TAGCFG_EVENT_SOURCE` (default `tagcfg`).
    pub fn from_lookup(get: &impl tagged_routing::env::Lookup) -> Result<Self, tagged_routing::env::EnvError> {
        Ok(PublisherConfig {
            event_bus: tagged_routing::env::required(get, "TAGCFG_EVENT_BUS")?,
            source: get("TAGCFG_EVENT_SOURCE").unwrap_or_else(|| "tagcfg".into()),
        })
    }
}

/// The change a stream record carries: `Ok(None)` for records that are not change-log
/// inserts, `Err` for a change-log record that does not decode.
pub fn change_of(record: &EventRecord) -> Result<Option<Change>, RecordError> {
    let is_change = matches!(record.change.keys.get("sk"), Some(serde_dynamo::AttributeValue::S(sk)) if sk.starts_with(CHANGE_SK_PREFIX));
    if !is_change || record.event_name != "INSERT" {
        return Ok(None);
    }
    let malformed = |reason: String| RecordError::Malformed {
        event_id: record.event_id.clone(),
        reason,
    };
    let item: ChangeItem =
        serde_dynamo::from_item(record.change.new_image.clone()).map_err(|e| malformed(e.to_string()))?;
    item.into_change().map(Some).map_err(|e| malformed(e.to_string()))
}

/// The `ConfigChanged` entry of a change and its size as EventBridge counts it.
pub fn entry(change: &Change, config: &PublisherConfig) -> (PutEventsRequestEntry, usize) {
    let detail = serde_json::to_string(change).unwrap_or_default();
    let size = config.source.len() + DETAIL_TYPE.len() + detail.len() + config.event_bus.len() + 14;
    let entry = PutEventsRequestEntry::builder()
        .source(&config.source)
        .detail_type(DETAIL_TYPE)
        .detail(detail)
        .event_bus_name(&config.event_bus)
        .build();
    (entry, size)
}

/// Groups entries (by index) into chunks within EventBridge's limits, keeping order.
pub fn chunks(sizes: &[usize]) -> Vec<Vec<usize>> {
    chunks_keeping_sets(&sizes.iter().map(|s| (*s, None)).collect::<Vec<_>>())
}

/// [`chunks`], where each entry may belong to a change set (`(owner, last revision)`): a
/// set that fits in one `PutEvents` call (10 entries, 256 KB) starts a new call rather than
/// being split over two. The push server shows a set whole either way; keeping it in one
/// call keeps its events together in EventBridge too.
pub fn chunks_keeping_sets(entries: &[(usize, Option<(&str, u64)>)]) -> Vec<Vec<usize>> {
    let mut out: Vec<Vec<usize>> = Vec::new();
    let mut bytes = 0;
    for (i, (size, set)) in entries.iter().enumerate() {
        let starts_set = set.is_some() && (i == 0 || entries[i - 1].1 != *set);
        let set_needs_room = starts_set && {
            let (count, total) = entries[i..]
                .iter()
                .take_while(|(_, s)| s == set)
                .fold((0, 0), |(n, b), (s, _)| (n + 1, b + s));
            let fits_alone = count <= MAX_ENTRIES && total <= MAX_REQUEST_BYTES;
            fits_alone
                && out
                    .last()
                    .is_some_and(|c| c.len() + count > MAX_ENTRIES || bytes + total > MAX_REQUEST_BYTES)
        };
        let full = set_needs_room
            || out
                .last()
                .is_none_or(|c| c.len() == MAX_ENTRIES || bytes + size > MAX_REQUEST_BYTES);
        if full {
            out.push(Vec::new());
            bytes = 0;
        }
        out.last_mut().expect("a chunk was just pushed").push(i);
        bytes += size;
    }
    out
}

/// One entry to send: the index of its record, the entry, its size, and the change set it
/// belongs to (`(owner, last revision)`).
pub type Pending = (usize, PutEventsRequestEntry, usize, Option<(String, u64)>);

/// Turns a batch into entries, up to the first malformed record (whose index is returned:
/// it and everything after it must be retried). No network.
pub fn prepare(records: &[EventRecord], config: &PublisherConfig) -> (Vec<Pending>, Option<usize>) {
    let mut pending = Vec::new();
    for (i, record) in records.iter().enumerate() {
        match change_of(record) {
            Ok(Some(change)) => {
                let (entry, size) = entry(&change, config);
                let set = change.set_last.map(|last| (change.tenant.clone(), last.0));
                pending.push((i, entry, size, set));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "malformed stream record");
                return (pending, Some(i));
            }
        }
    }
    (pending, None)
}

/// Publishes one stream batch; returns the partial batch response.
pub async fn publish(records: &[EventRecord], sink: &dyn EventSink, config: &PublisherConfig) -> DynamoDbEventResponse {
    let (mut pending, mut first_failed) = prepare(records, config);
    // Send, retrying failed entries only, until delivered or out of attempts.
    let mut attempt = 0;
    while !pending.is_empty() && attempt < MAX_ATTEMPTS {
        if attempt > 0 {
            adapters::aws::retry::backoff(attempt).await;
        }
        attempt += 1;
        let sizes: Vec<(usize, Option<(&str, u64)>)> = pending
            .iter()
            .map(|(_, _, size, set)| (*size, set.as_ref().map(|(owner, last)| (owner.as_str(), *last))))
            .collect();
        let mut still: Vec<Pending> = Vec::new();
        for chunk in chunks_keeping_sets(&sizes) {
            let entries: Vec<PutEventsRequestEntry> = chunk.iter().map(|&i| pending[i].1.clone()).collect();
            match sink.put_events(entries).await {
                Ok(results) => {
                    for (&i, result) in chunk.iter().zip(results) {
                        if let Some(code) = result {
                            tracing::warn!(code, record = pending[i].0, "PutEvents refused an entry");
                            still.push(pending[i].clone());
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "PutEvents failed");
                    still.extend(chunk.iter().map(|&i| pending[i].clone()));
                }
            }
        }
        pending = still;
    }
    if let Some((record, _, _, _)) = pending.first() {
        first_failed = Some(first_failed.map_or(*record, |m| m.min(*record)));
    }
    let batch_item_failures = first_failed
        .map(|i| {
            let mut failure = DynamoDbBatchItemFailure::default();
            failure.item_identifier = records[i].change.sequence_number.clone();
            vec![failure]
        })
        .unwrap_or_default();
    let mut response = DynamoDbEventResponse::default();
    response.batch_item_failures = batch_item_failures;
    response
}
