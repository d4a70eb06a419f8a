//! Converting a 1,000-record DynamoDB stream batch into PutEvents entries (decode with
//! serde_dynamo, build the ConfigChanged detail, size and chunk) — no network.
//! Goal: ≤ 5 ms. `cargo bench -p stream-publisher --bench convert`

use aws_lambda_events::event::dynamodb::{Event, EventRecord};
use criterion::{criterion_group, criterion_main, Criterion};
use stream_publisher::{chunks, prepare, PublisherConfig};

fn batch_of_1000() -> Vec<EventRecord> {
    let path = format!("{}/../../events/stream/changes.json", env!("CARGO_MANIFEST_DIR"));
    let event: Event = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let template = event.records[0].clone();
    (0..1000u64)
        .map(|i| {
            let mut r = template.clone();
            let sk = serde_dynamo::AttributeValue::S(format!("C#{:020}", i + 1));
            r.change.keys.insert("sk".into(), sk.clone());
            r.change.new_image.insert("sk".into(), sk);
            r.change
                .new_image
                .insert("revision".into(), serde_dynamo::AttributeValue::N((i + 1).to_string()));
            r.change.sequence_number = Some((1000 + i).to_string());
            r
        })
        .collect()
}

fn convert(c: &mut Criterion) {
    let records = batch_of_1000();
    let config = PublisherConfig {
        event_bus: "tagcfg-bus".into(),
        source: "tagcfg".into(),
    };
    let (pending, failed) = prepare(&records, &config);
    assert_eq!((pending.len(), failed), (1000, None));
    c.bench_function("1,000 stream records -> PutEvents entries (chunked)", |b| {
        b.iter(|| {
            let (pending, _) = prepare(&records, &config);
            let sizes: Vec<usize> = pending.iter().map(|p| p.2).collect();
            chunks(&sizes).len()
        })
    });
}

criterion_group!(benches, convert);
criterion_main!(benches);
