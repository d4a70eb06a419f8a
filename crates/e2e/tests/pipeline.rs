//! The whole change feed on the emulators, in one test:
//!
//! PUT through the config-api Lambda handler (DynamoDB Local + moto) → the change item's
//! record read from DynamoDB Local's stream (GetRecords, wrapped as a Lambda stream event)
//! → stream-publisher → moto EventBridge bus, rule with the pattern in
//! `infra/eventbridge/config-changed-pattern.json` → SQS target → cache-refresher →
//! `Refresh` on a watch server on a random port → a `Watch` client receives the change.
//! Then a `PutParameter` made straight against moto, delivered as a Parameter Store Change
//! event, reaches the watcher exactly once.

use std::collections::HashMap;
use std::time::Duration;

use adapters::aws::Clients;
use aws_lambda_events::event::dynamodb::EventRecord;
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use cache_refresher::{Outcome, Refresher, RefresherConfig};
use lambda_http::{Context, LambdaEvent, Service};
use push::pb::watch_event::Event;
use serde_json::{json, Value};
use stream_publisher::{EventBridgeSink, PublisherConfig};
use tenant_auth::{dev, Scope};
use testkit::emulators;

const SERVICE_SECRET: &str = "pipeline-service-secret-0123456789abcd";
const DEV_SECRET: &str = "pipeline-dev-secret-0123456789abcdefgh";

fn root() -> String {
    format!("{}/../..", env!("CARGO_MANIFEST_DIR"))
}

/// Reads DynamoDB Local's stream from where the last call stopped: a fresh iterator per
/// read, after the last sequence number seen in each shard.
struct StreamReader {
    client: aws_sdk_dynamodbstreams::Client,
    arn: String,
    seen: HashMap<String, String>,
}

impl StreamReader {
    async fn open(sdk: &aws_config::SdkConfig, table: &str) -> Self {
        let ddb = aws_sdk_dynamodb::Client::new(sdk);
        let arn = ddb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .unwrap()
            .table
            .unwrap()
            .latest_stream_arn
            .unwrap();
        StreamReader {
            client: aws_sdk_dynamodbstreams::Client::new(sdk),
            arn,
            seen: HashMap::new(),
        }
    }

    /// New records, as Lambda would deliver them.
    async fn read(&mut self) -> Vec<EventRecord> {
        use aws_sdk_dynamodbstreams::types::ShardIteratorType;
        let mut out = Vec::new();
        let stream = self
            .client
            .describe_stream()
            .stream_arn(&self.arn)
            .send()
            .await
            .unwrap()
            .stream_description
            .unwrap();
        for shard in stream.shards.unwrap_or_default() {
            let shard_id = shard.shard_id.unwrap();
            let request = self
                .client
                .get_shard_iterator()
                .stream_arn(&self.arn)
                .shard_id(&shard_id);
            let request = match self.seen.get(&shard_id) {
                Some(seq) => request
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .sequence_number(seq),
                None => request.shard_iterator_type(ShardIteratorType::TrimHorizon),
            };
            let mut iterator = request.send().await.unwrap().shard_iterator;
            for _ in 0..5 {
                let Some(it) = iterator.take() else { break };
                let page = self.client.get_records().shard_iterator(it).send().await.unwrap();
                let records = page.records.unwrap_or_default();
                let empty = records.is_empty();
                for r in records {
                    let change = r.dynamodb.unwrap();
                    if let Some(seq) = &change.sequence_number {
                        self.seen.insert(shard_id.clone(), seq.clone());
                    }
                    let mut record = EventRecord::default();
                    record.event_id = r.event_id.unwrap_or_default();
                    record.event_name = r.event_name.map(|n| n.as_str().to_owned()).unwrap_or_default();
                    record.aws_region = "us-east-1".into();
                    record.change.keys = serde_dynamo::Item::from(change.keys.unwrap_or_default());
                    record.change.new_image = serde_dynamo::Item::from(change.new_image.unwrap_or_default());
                    record.change.sequence_number = change.sequence_number;
                    out.push(record);
                }
                if empty {
                    break;
                }
                iterator = page.next_shard_iterator;
            }
        }
        out
    }
}

/// A bus named `name` whose rule - the pattern the SAM template and the refresher use,
/// `infra/eventbridge/config-changed-pattern.json` - delivers to an SQS queue named `name`.
/// Returns both clients and the queue's URL.
async fn bus_to_queue(
    sdk: &aws_config::SdkConfig,
    name: &str,
) -> (aws_sdk_eventbridge::Client, aws_sdk_sqs::Client, String) {
    let events = aws_sdk_eventbridge::Client::new(sdk);
    let sqs = aws_sdk_sqs::Client::new(sdk);
    events.create_event_bus().name(name).send().await.unwrap();
    let queue_url = sqs
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    let pattern = std::fs::read_to_string(format!("{}/infra/eventbridge/config-changed-pattern.json", root())).unwrap();
    events
        .put_rule()
        .name("config-changed")
        .event_bus_name(name)
        .event_pattern(pattern)
        .send()
        .await
        .unwrap();
    events
        .put_targets()
        .rule("config-changed")
        .event_bus_name(name)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("refresher-queue")
                .arn(queue_arn)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    (events, sqs, queue_url)
}

/// The environment of a watch server (and a dev-token config-api) over table `name`.
fn stack_vars(name: &str) -> HashMap<&'static str, String> {
    HashMap::from([
        ("TAGCFG_TABLE", name.to_owned()),
        ("TAGCFG_SSM_ROOT", name.to_owned()),
        ("TAGCFG_WATCH_ADDR", "127.0.0.1:0".into()),
        ("TAGCFG_SERVICE_SECRET", SERVICE_SECRET.into()),
        ("TAGCFG_DEV_SECRET", DEV_SECRET.into()),
        ("TAGCFG_DEV", "1".into()),
        ("TAGCFG_ISSUER", dev::DEV_ISSUER.into()),
        ("TAGCFG_AUDIENCES", dev::DEV_AUDIENCE.into()),
        // The stack's tests measure the pipeline, not the per-tenant token buckets.
        ("TAGCFG_TENANT_READS_PER_SEC", "100000".into()),
        ("TAGCFG_TENANT_READ_BURST", "100000".into()),
        ("TAGCFG_TENANT_WRITES_PER_SEC", "100000".into()),
        ("TAGCFG_TENANT_WRITE_BURST", "100000".into()),
    ])
}

async fn watch_server(
    vars: &HashMap<&'static str, String>,
    clients: &Clients,
    sdk: &aws_config::SdkConfig,
) -> push::PushServer {
    let config = watch_server::Config::from_lookup(&|k: &str| vars.get(k).cloned()).unwrap();
    watch_server::start(config, clients, sdk).await.unwrap()
}

/// The cache-refresher of table `name`, refreshing `server`. As deployed, it reads the
/// service secret from a SecureString at start (no secret in its environment).
async fn refresher_of(
    sdk: &aws_config::SdkConfig,
    clients: &Clients,
    name: &str,
    server: &push::PushServer,
) -> Refresher {
    let parameter = format!("/{name}-internal/service-secret");
    clients
        .ssm
        .put_parameter()
        .name(&parameter)
        .value(SERVICE_SECRET)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let vars: HashMap<&str, String> = HashMap::from([
        ("TAGCFG_WATCH_ENDPOINTS", format!("http://{}", server.addr)),
        ("TAGCFG_SERVICE_SECRET_PARAMETER", parameter),
        ("TAGCFG_TABLE", name.to_owned()),
        ("TAGCFG_SSM_ROOT", name.to_owned()),
    ]);
    Refresher::new(
        RefresherConfig::from_lookup(&|k: &str| vars.get(k).cloned()).unwrap(),
        clients,
        aws_sdk_servicediscovery::Client::new(sdk),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_and_a_console_edit_travel_the_whole_feed_to_a_watcher() {
    let Some(sdk) = testkit::emulators::sdk_config_or_skip(
        "a_write_and_a_console_edit_travel_the_whole_feed",
        &["DYNAMODB", "EVENTBRIDGE"],
    )
    .await
    else {
        return;
    };
    let name = emulators::fresh_table(&sdk, "e2e").await;
    let clients = Clients::from_sdk(&sdk);

    // EventBridge bus → rule (the shared pattern) → SQS queue.
    let (events, sqs, queue_url) = bus_to_queue(&sdk, &name).await;

    // A watch server over the same table, and a watcher of acme.
    let vars = stack_vars(&name);
    let server = watch_server(&vars, &clients, &sdk).await;
    let token = dev::mint(
        DEV_SECRET.as_bytes(),
        &tagged_routing::TenantId::parse("acme").unwrap(),
        "svc",
        &[Scope::Read],
        600,
    )
    .unwrap();
    let mut watcher = testkit::auth::watch(&format!("http://{}", server.addr), &token, &["param_config_"], None).await;
    assert!(matches!(
        watcher.message().await.unwrap().unwrap().event,
        Some(Event::Heartbeat(_))
    ));

    // The Lambdas of the feed.
    let api_vars: HashMap<&str, String> = HashMap::from([
        ("TAGCFG_TABLE", name.clone()),
        ("TAGCFG_SSM_ROOT", name.clone()),
        (
            "TAGCFG_JWKS_FILE",
            format!("{}/crates/tenant-auth/tests/fixtures/jwks.json", root()),
        ),
        (
            "TAGCFG_ISSUER",
            "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_tagcfgEvents".into(),
        ),
    ]);
    let api = config_api::build(
        config_api::ApiConfig::from_lookup(|k| api_vars.get(k).cloned()).unwrap(),
        &clients,
        &sdk,
    )
    .unwrap();
    let publisher = PublisherConfig {
        event_bus: name.clone(),
        source: "tagcfg".into(),
    };
    let sink = EventBridgeSink { client: events.clone() };
    let refresher = refresher_of(&sdk, &clients, &name, &server).await;
    let mut stream = StreamReader::open(&sdk, &name).await;

    let pipe = Pipe {
        publisher: &publisher,
        sink: &sink,
        sqs: &sqs,
        queue_url: &queue_url,
        refresher: &refresher,
    };

    // 1. A PUT through the config-api handler.
    let event: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{}/events/api/put-param.json", root())).unwrap())
            .unwrap();
    let mut handler = lambda_http::Adapter::from(api.router.clone());
    let answer = handler
        .call(LambdaEvent::new(
            serde_json::from_value(event).unwrap(),
            Context::default(),
        ))
        .await
        .unwrap();
    assert_eq!(serde_json::to_value(answer).unwrap()["statusCode"], 201);
    assert_eq!(pipe.feed(&mut stream).await, 1, "one ConfigChanged event for one write");
    let change = match tokio::time::timeout(Duration::from_secs(5), watcher.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .event
    {
        Some(Event::Updates(batch)) => batch.updates.into_iter().next().unwrap(),
        other => panic!("expected the change, got {other:?}"),
    };
    assert_eq!(
        (
            change
                .layer
                .as_ref()
                .and_then(push::layer_from_pb)
                .map(|l| l.to_string()),
            change.key.as_str(),
            change.version,
            change.revision
        ),
        (Some("tenant".to_owned()), "param_config_payments/endpoint", 1, 1)
    );
    assert_eq!(
        change.value_json.as_deref(),
        Some("\"https://payments.acme.example/v2\"")
    );

    // 2. A console edit: PutParameter straight against moto, then its Parameter Store
    //    Change event (delivered twice, as EventBridge may).
    let parameter = format!("/{name}/acme/param_config/payments/endpoint");
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&parameter)
        .value("\"https://payments.acme.example/console\"")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    let mut ssm_event: EventBridgeEvent<Value> = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/events/eventbridge/ssm-update.json", root())).unwrap(),
    )
    .unwrap();
    ssm_event.detail["name"] = json!(parameter);
    assert!(matches!(
        refresher.handle(&ssm_event).await.unwrap(),
        Outcome::Ingested { revision: 2, .. }
    ));
    assert!(matches!(
        refresher.handle(&ssm_event).await.unwrap(),
        Outcome::AlreadyRecorded { .. }
    ));
    assert_eq!(
        pipe.feed(&mut stream).await,
        1,
        "the console edit entered the feed once"
    );
    let change = match tokio::time::timeout(Duration::from_secs(5), watcher.message())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .event
    {
        Some(Event::Updates(batch)) => batch.updates.into_iter().next().unwrap(),
        other => panic!("expected the console change, got {other:?}"),
    };
    assert_eq!((change.revision, change.version, change.actor.as_str()), (2, 2, "ssm"));
    assert_eq!(
        change.value_json.as_deref(),
        Some("\"https://payments.acme.example/console\"")
    );
    // Nothing else arrives.
    let more = tokio::time::timeout(Duration::from_millis(500), watcher.message()).await;
    assert!(
        more.is_err() || matches!(more, Ok(Ok(Some(ref e))) if matches!(e.event, Some(Event::Heartbeat(_)))),
        "{more:?}"
    );
    drop(watcher);
    server.shutdown().await.unwrap();
}

/// Publisher → bus → queue → refresher.
struct Pipe<'a> {
    publisher: &'a PublisherConfig,
    sink: &'a EventBridgeSink,
    sqs: &'a aws_sdk_sqs::Client,
    queue_url: &'a str,
    refresher: &'a Refresher,
}

impl Pipe<'_> {
    /// Moves whatever the stream holds through the feed; returns the events refreshed.
    async fn feed(&self, stream: &mut StreamReader) -> usize {
        let records = stream.read().await;
        let response = stream_publisher::publish(&records, self.sink, self.publisher).await;
        assert!(response.batch_item_failures.is_empty());
        let outcomes = drain_queue(self.sqs, self.queue_url, self.refresher).await;
        for outcome in &outcomes {
            assert!(matches!(outcome, Outcome::Refreshed { accepted: 1, .. }), "{outcome:?}");
        }
        outcomes.len()
    }
}

/// Hands every event the queue receives (until it stays empty after the first) to the
/// cache-refresher, as the Lambda's SQS-free EventBridge target would; returns the outcomes.
async fn drain_queue(sqs: &aws_sdk_sqs::Client, queue_url: &str, refresher: &Refresher) -> Vec<Outcome> {
    drain_queue_recording(sqs, queue_url, refresher).await.0
}

/// [`drain_queue`], also returning the `(tenant, revision)` of every `ConfigChanged`
/// delivery, duplicates included.
async fn drain_queue_recording(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    refresher: &Refresher,
) -> (Vec<Outcome>, Vec<(String, u64)>) {
    let (mut outcomes, mut delivered) = (Vec::new(), Vec::new());
    let mut waits = 0;
    loop {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let messages = received.messages.unwrap_or_default();
        // Once events came, an empty receive is the end; before, wait up to 10 of them.
        if messages.is_empty() {
            if !outcomes.is_empty() || waits >= 10 {
                break;
            }
            waits += 1;
            continue;
        }
        for m in messages {
            let mut body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            // moto's SQS-delivered events lack `account`.
            body.as_object_mut()
                .unwrap()
                .entry("account")
                .or_insert(json!("123456789012"));
            if let (Some(tenant), Some(revision)) =
                (body["detail"]["tenant"].as_str(), body["detail"]["revision"].as_u64())
            {
                delivered.push((tenant.to_owned(), revision));
            }
            let event: EventBridgeEvent<Value> = serde_json::from_value(body).unwrap();
            outcomes.push(refresher.handle(&event).await.unwrap());
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    (outcomes, delivered)
}

/// The real EventBridge client, refusing chosen changes (by revision) for a number of
/// attempts (u32::MAX = always) without sending them.
struct FaultInjecting {
    inner: EventBridgeSink,
    refuse: std::sync::Mutex<HashMap<u64, u32>>,
}

#[async_trait::async_trait]
impl stream_publisher::EventSink for FaultInjecting {
    async fn put_events(
        &self,
        entries: Vec<aws_sdk_eventbridge::types::PutEventsRequestEntry>,
    ) -> Result<Vec<Option<String>>, String> {
        let mut results = vec![None; entries.len()];
        let mut send = Vec::new();
        let mut sent_at = Vec::new();
        for (i, e) in entries.into_iter().enumerate() {
            let revision = serde_json::from_str::<Value>(e.detail().unwrap()).unwrap()["revision"]
                .as_u64()
                .unwrap();
            let mut refuse = self.refuse.lock().unwrap();
            match refuse.get_mut(&revision) {
                Some(left) if *left > 0 => {
                    *left = left.saturating_sub(1);
                    results[i] = Some("InjectedFailure".to_owned());
                }
                _ => {
                    send.push(e);
                    sent_at.push(i);
                }
            }
        }
        if !send.is_empty() {
            for (i, r) in sent_at.into_iter().zip(self.inner.put_events(send).await?) {
                results[i] = r;
            }
        }
        Ok(results)
    }
}

#[tokio::test]
async fn with_entries_failing_every_change_is_published_once_or_reported() {
    let Some(sdk) = testkit::emulators::sdk_config_or_skip(
        "with_entries_failing_every_change_is_published_once_or_reported",
        &["DYNAMODB", "EVENTBRIDGE"],
    )
    .await
    else {
        return;
    };
    let name = emulators::fresh_table(&sdk, "faults").await;
    let (events, sqs, queue_url) = bus_to_queue(&sdk, &name).await;

    // 25 changes in the table, read back from its stream.
    let clients = Clients::from_sdk(&sdk);
    let mut settings = adapters::aws::AwsSettings::new(&name);
    settings.ssm.root = name.clone();
    let store = adapters::aws::tagged_store(&clients, tagged_routing::RoutingTable::default(), &settings).unwrap();
    let acme = tagged_routing::Owner::Tenant(tagged_routing::TenantId::parse("acme").unwrap());
    for i in 1..=25 {
        let key = store.routes().parse_key(&format!("tenant_config_k{i}")).unwrap();
        use tagged_routing::ConfigStore;
        store
            .put(
                &acme,
                &key,
                &tagged_routing::JsonText::parse("1").unwrap(),
                tagged_routing::Precondition::None,
                "w",
            )
            .await
            .unwrap();
    }
    let records = StreamReader::open(&sdk, &name).await.read().await;

    // Revisions 3, 7 and 11 fail twice then get in; revision 20 never does.
    let sink = FaultInjecting {
        inner: EventBridgeSink { client: events.clone() },
        refuse: std::sync::Mutex::new(HashMap::from([(3, 2), (7, 2), (11, 2), (20, u32::MAX)])),
    };
    let config = PublisherConfig {
        event_bus: name.clone(),
        source: "tagcfg".into(),
    };
    let response = stream_publisher::publish(&records, &sink, &config).await;

    let mut delivered: Vec<u64> = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            let body: Value = serde_json::from_str(m.body().unwrap()).unwrap();
            delivered.push(body["detail"]["revision"].as_u64().unwrap());
            sqs.delete_message()
                .queue_url(&queue_url)
                .receipt_handle(m.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    delivered.sort();
    let expected: Vec<u64> = (1..=25).filter(|r| *r != 20).collect();
    assert_eq!(
        delivered, expected,
        "every change exactly once, except the one that never got in"
    );
    // The one that never got in is reported: Lambda will retry from its record.
    let failed_seq = response.batch_item_failures[0].item_identifier.clone().unwrap();
    let failed_record = records
        .iter()
        .find(|r| r.change.sequence_number.as_deref() == Some(failed_seq.as_str()))
        .unwrap();
    let failed: adapters::aws::ChangeItem = serde_dynamo::from_item(failed_record.change.new_image.clone()).unwrap();
    assert_eq!(failed.into_change().unwrap().revision.0, 20);
}

/// The layer suite's feed on the emulators: the DynamoDB stream through the publisher,
/// EventBridge (moto), SQS and the cache-refresher into the watch server.
struct EmulatorFeed {
    stream: tokio::sync::Mutex<StreamReader>,
    publisher: PublisherConfig,
    sink: EventBridgeSink,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    refresher: Refresher,
}

#[async_trait::async_trait]
impl testkit::layers::Feed for EmulatorFeed {
    async fn settle(&self) {
        let records = self.stream.lock().await.read().await;
        if records.is_empty() {
            return;
        }
        let response = stream_publisher::publish(&records, &self.sink, &self.publisher).await;
        assert!(response.batch_item_failures.is_empty());
        drain_queue(&self.sqs, &self.queue_url, &self.refresher).await;
    }
}

/// The whole AWS stack on the emulators, as the suites of `testkit` drive it: the watch
/// server, the config-api router on a port of its own, and the feed's Lambdas.
struct EmulatorStack {
    deployment: testkit::layers::Deployment,
    feed: EmulatorFeed,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    server: push::PushServer,
}

impl EmulatorStack {
    async fn start(sdk: &aws_config::SdkConfig, label: &str) -> Self {
        start_stack(sdk, label).await
    }

    async fn stop(self) {
        self.http.abort();
        self.server.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reader_agrees_at_every_step_on_the_emulator_stack() {
    let Some(sdk) = testkit::emulators::sdk_config_or_skip(
        "every_reader_agrees_at_every_step_on_the_emulator_stack",
        &["DYNAMODB", "EVENTBRIDGE"],
    )
    .await
    else {
        return;
    };
    let stack = EmulatorStack::start(&sdk, "layers").await;
    testkit::layers::run(&stack.deployment, &stack.feed, tagged_routing::RoutingTable::default()).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_and_override_policies_govern_every_write_on_the_emulator_stack() {
    let Some(sdk) = testkit::emulators::sdk_config_or_skip(
        "schemas_and_override_policies_govern_every_write_on_the_emulator_stack",
        &["DYNAMODB", "EVENTBRIDGE"],
    )
    .await
    else {
        return;
    };
    let stack = EmulatorStack::start(&sdk, "governance").await;
    testkit::governance::run(&stack.deployment, &stack.feed).await;
    stack.stop().await;
}

async fn start_stack(sdk: &aws_config::SdkConfig, label: &str) -> EmulatorStack {
    start_stack_with(sdk, label, sdk, &[]).await
}

/// The stack whose Lambdas (config-api, stream-publisher's EventBridge client,
/// cache-refresher) reach AWS through `lambdas` (a configuration with injected faults);
/// the test's own view of the emulators (stream reads, SQS, checks) through `sdk`.
async fn start_stack_with(
    sdk: &aws_config::SdkConfig,
    label: &str,
    lambdas: &aws_config::SdkConfig,
    settings: &[(&'static str, &str)],
) -> EmulatorStack {
    let sdk = sdk.clone();
    let name = emulators::fresh_table(&sdk, label).await;
    let clients = Clients::from_sdk(&sdk);
    let lambda_clients = Clients::from_sdk(lambdas);
    let (_, sqs, queue_url) = bus_to_queue(&sdk, &name).await;
    let events = aws_sdk_eventbridge::Client::new(lambdas);
    // The watch server, the config-api router on a port of its own, the feed's Lambdas.
    let mut vars = stack_vars(&name);
    vars.extend(settings.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let server = watch_server(&vars, &clients, &sdk).await;
    let api = config_api::build(
        config_api::ApiConfig::from_lookup(|k| vars.get(k).cloned()).unwrap(),
        &lambda_clients,
        lambdas,
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_addr = listener.local_addr().unwrap();
    let http = tokio::spawn(async move { axum::serve(listener, api.router).await });
    let feed = EmulatorFeed {
        stream: tokio::sync::Mutex::new(StreamReader::open(&sdk, &name).await),
        publisher: PublisherConfig {
            event_bus: name.clone(),
            source: "tagcfg".into(),
        },
        sink: EventBridgeSink { client: events },
        sqs,
        queue_url,
        refresher: refresher_of(&sdk, &lambda_clients, &name, &server).await,
    };
    let mut settings = adapters::aws::AwsSettings::new(&name);
    settings.ssm.root = name.clone();
    let store = adapters::aws::tagged_store(&clients, tagged_routing::RoutingTable::default(), &settings).unwrap();
    let tenant = tagged_routing::TenantId::parse("initech").unwrap();
    let deployment = testkit::layers::Deployment {
        http_url: format!("http://{http_addr}"),
        grpc_url: format!("http://{}", server.addr),
        tenant_token: dev::mint(DEV_SECRET.as_bytes(), &tenant, "initech-user", &[Scope::Write], 600).unwrap(),
        operator_token: dev::mint_operator(DEV_SECRET.as_bytes(), "ops", 600).unwrap(),
        tenant,
        store: std::sync::Arc::new(store),
        nonce: name.to_lowercase().replace('_', "-"),
    };
    EmulatorStack {
        deployment,
        feed,
        http,
        server,
    }
}

/// 10,000 operations from 8 clients on 3 keys through the config-api router over DynamoDB
/// Local (conditional TransactWriteItems), checked against a versioned register.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_http_operations_are_linearizable_on_dynamodb_local() {
    let Some(sdk) = testkit::emulators::sdk_config_or_skip(
        "concurrent_http_operations_are_linearizable_on_dynamodb_local",
        &["DYNAMODB", "EVENTBRIDGE"],
    )
    .await
    else {
        return;
    };
    // The config-api's read cache answers from memory for TAGCFG_FRESHNESS_MS (250 ms by
    // default): reads are then bounded-stale, not linearizable (this check found a client
    // reading version 1 after its own 412 had shown version 2). With 0 every read checks the
    // head revision first, and that is what is checked here.
    let stack = start_stack_with(&sdk, "linearizable", &sdk, &[("TAGCFG_FRESHNESS_MS", "0")]).await;
    let workload = testkit::linearizability::Workload {
        clients: 8,
        keys: ["a", "b", "c"].map(|k| format!("tenant_config_lin/{k}")).to_vec(),
        operations: 10_000,
        seed: 2,
    };
    let d = &stack.deployment;
    let report = testkit::linearizability::record_and_check(&d.http_url, &d.tenant_token, &workload).await;
    testkit::report(&format!("linearizability, DynamoDB Local: {report}"));
    assert_eq!(report.operations, 10_000, "{report}");
    assert_eq!(report.unknown, 0, "{report}");
    assert_eq!(report.anomalies, 0, "{report}");
    stack.stop().await;
}

/// One HTTP write of the fault suite and what it answered.
struct Attempt {
    key: String,
    value: u64,
    conditional: bool,
    status: u16,
    retry_after: bool,
    revision: Option<u64>,
}

/// Several thousand operations through the config-api, its DynamoDB and EventBridge calls
/// meeting injected faults (throttling, 5xx, timeouts, transaction conflicts, lost
/// responses, partial `PutEvents` failures) at a few percent, then the feed moved through
/// the same faults. Checked: every write committed whole or not at all (value, head
/// revision and change agree; a write answered is there once, one refused with 409 or 412 is
/// nowhere, one answered 429 or 503 at most once),
/// refusals are 409/429/503 with `Retry-After` and never a hang, the feed lost no change
/// (duplicates counted and dropped by tenant + revision), and a watcher saw every revision
/// once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_injected_faults_writes_are_whole_the_feed_loses_nothing_and_watchers_see_no_gap() {
    use std::collections::{BTreeMap, BTreeSet};
    use tagged_routing::{ChangeOp, Owner, Revision};
    use testkit::faults::{with_faults, Fault, Faults};

    let Some(sdk) = testkit::emulators::sdk_config_or_skip(
        "under_injected_faults_writes_are_whole_the_feed_loses_nothing_and_watchers_see_no_gap",
        &["DYNAMODB", "EVENTBRIDGE"],
    )
    .await
    else {
        return;
    };
    const CLIENTS: u64 = 8;
    const PER_CLIENT: u64 = 300;
    const KEYS: u64 = 12;
    let faults = Faults::at_rate(40, &Fault::ALL, 20261128);
    faults.set_enabled(false);
    let stack = start_stack_with(&sdk, "faults", &with_faults(&sdk, faults.clone()), &[]).await;
    let d = &stack.deployment;
    let owner = Owner::Tenant(d.tenant.clone());
    let mut watch = testkit::auth::watch(&d.grpc_url, &d.tenant_token, &["tenant_config_f/"], None).await;
    faults.set_enabled(true);

    // The operations: unconditional and conditional puts, deletes, reads.
    let http = tenant_auth::http_client(Duration::from_secs(60)).unwrap();
    let mut clients = Vec::new();
    for client in 0..CLIENTS {
        let (http, url, token) = (http.clone(), d.http_url.clone(), d.tenant_token.clone());
        clients.push(tokio::spawn(async move {
            let mut attempts = Vec::new();
            let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
            let mut last_version: HashMap<String, u64> = HashMap::new();
            for i in 0..PER_CLIENT {
                let pick = (client * 7919 + i * 104_729) % 1000;
                let key = format!("tenant_config_f/k{}", pick % KEYS);
                let address = format!("{url}/v1/config/{key}");
                let value = (client + 1) * 1_000_000 + i;
                let (request, write, conditional) = match pick % 10 {
                    0..=2 => (http.get(&address), false, false),
                    3..=5 => (http.put(&address).body(value.to_string()), true, false),
                    6..=8 => {
                        let put = http.put(&address).body(value.to_string());
                        let guess = last_version.get(&key).copied().unwrap_or(1);
                        (put.header("if-match", format!("\"{guess}\"")), true, true)
                    }
                    _ => (http.delete(&address), false, false),
                };
                let response = request
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .send()
                    .await
                    .expect("every request is answered: a deadline bounds it");
                let status = response.status().as_u16();
                let retry_after = response.headers().contains_key("retry-after");
                let body: Value = response.json().await.unwrap_or_default();
                *statuses.entry(status).or_default() += 1;
                if let Some(v) = body["version"].as_u64() {
                    last_version.insert(key.clone(), v);
                }
                if write {
                    attempts.push(Attempt {
                        key,
                        value,
                        conditional,
                        status,
                        retry_after,
                        revision: body["revision"].as_u64(),
                    });
                } else {
                    assert!(
                        [200, 204, 404, 409, 412, 429, 503].contains(&status),
                        "a read or delete answered {status}: {body}"
                    );
                }
            }
            (attempts, statuses)
        }));
    }
    let (mut attempts, mut statuses) = (Vec::new(), BTreeMap::<u16, u64>::new());
    for client in clients {
        let (a, s) = client.await.unwrap();
        attempts.extend(a);
        for (status, n) in s {
            *statuses.entry(status).or_default() += n;
        }
    }

    // Faults the SDK's retries cannot hide, one request each: what the API answers then.
    let scripted = [
        (Fault::Throttling, 3, "GET", 429, "throttled"),
        (Fault::ServerError, 3, "GET", 503, "unavailable"),
        (Fault::Timeout, 3, "GET", 503, "unavailable"),
        (Fault::TransactionConflict, 12, "PUT", 409, "conflict"),
    ];
    let mut refusals = Vec::new();
    for (fault, times, method, status, code) in scripted {
        faults.script(&vec![fault; times]);
        let address = format!("{}/v1/config/tenant_config_f/scripted", d.http_url);
        let request = match method {
            "GET" => http.get(&address),
            _ => http.put(&address).body("1"),
        };
        let response = request.bearer_auth(&d.tenant_token).send().await.unwrap();
        let retry_after = response.headers().get("retry-after").cloned();
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            (body["status"].as_u64(), body["code"].as_str()),
            (Some(status), Some(code)),
            "{fault:?}: {body}"
        );
        assert!(retry_after.is_some(), "{fault:?}: {status} without Retry-After");
        assert!(
            !body.to_string().contains("injected"),
            "{fault:?}: backend details in the answer: {body}"
        );
        refusals.push(format!("{fault:?}×{times} → {status} {code}"));
    }

    // The feed, through the same faults: a failed batch is retried from its first failed
    // record, as Lambda does; every delivery is recorded before the refresher takes it.
    let feed = &stack.feed;
    let mut publish_retries = 0;
    loop {
        let records = feed.stream.lock().await.read().await;
        if records.is_empty() {
            break;
        }
        let mut batch = records;
        loop {
            let response = stream_publisher::publish(&batch, &feed.sink, &feed.publisher).await;
            let Some(failed) = response.batch_item_failures.first() else {
                break;
            };
            publish_retries += 1;
            assert!(publish_retries < 500, "the feed never got through");
            let failed = failed.item_identifier.clone().unwrap();
            let at = batch
                .iter()
                .position(|r| r.change.sequence_number.as_deref() == Some(failed.as_str()))
                .unwrap();
            batch = batch.split_off(at);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let (_, delivered) = drain_queue_recording(&feed.sqs, &feed.queue_url, &feed.refresher).await;
    faults.set_enabled(false);

    // 1. Whole writes: the change log is gap-free, and replaying it gives every stored value.
    let store = &d.store;
    let head = store.head_revision(&owner).await.unwrap().0;
    let log = store.changes_since(&owner, Revision(0), usize::MAX >> 1).await.unwrap();
    let revisions: Vec<u64> = log.iter().map(|c| c.revision.0).collect();
    assert_eq!(
        revisions,
        (1..=head).collect::<Vec<_>>(),
        "the change log is gap-free up to the head"
    );
    let mut replayed: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut writes_of_value: HashMap<String, Vec<u64>> = HashMap::new();
    for change in &log {
        match change.op {
            ChangeOp::Put => {
                let value = change.value.as_ref().unwrap().as_str().to_owned();
                writes_of_value
                    .entry(value.clone())
                    .or_default()
                    .push(change.revision.0);
                replayed.insert(change.key.clone(), (change.version.0, value));
            }
            ChangeOp::Delete => {
                replayed.remove(&change.key);
            }
            ChangeOp::Tier => {}
        }
    }
    for k in 0..KEYS {
        let key = tagged_routing::RoutingTable::default()
            .parse_key(&format!("tenant_config_f/k{k}"))
            .unwrap();
        let stored = store
            .get(&owner, &key)
            .await
            .unwrap()
            .map(|i| (i.version.0, i.value.as_str().to_owned()));
        assert_eq!(
            stored,
            replayed.get(key.as_str()).cloned(),
            "{key}: value and change log agree"
        );
    }
    // 2. Every answer tells the truth: a write answered 2xx is in the log once, at the
    //    revision it answered; one refused (412, 409, 429, 503) is not in it at all.
    let (mut answered, mut refused) = (0, 0);
    for a in &attempts {
        let found = writes_of_value.get(&a.value.to_string()).cloned().unwrap_or_default();
        match a.status {
            200 | 201 => {
                answered += 1;
                assert_eq!(
                    found,
                    vec![a.revision.unwrap()],
                    "{} = {} answered {:?}",
                    a.key,
                    a.value,
                    a.revision
                );
            }
            // Definite refusals: the backend cancelled the transaction.
            412 | 409 => {
                refused += 1;
                assert!(
                    found.is_empty(),
                    "{} = {} answered {} but was written at {found:?}",
                    a.key,
                    a.value,
                    a.status
                );
                assert!(a.status == 412 || a.retry_after, "{} without Retry-After", a.status);
            }
            // The backend's answer was lost or refused after an attempt that may have run:
            // the outcome is unknown (to the server too), but never doubled.
            429 | 503 => {
                refused += 1;
                assert!(
                    found.len() <= 1,
                    "{} = {} answered {}, written at {found:?}",
                    a.key,
                    a.value,
                    a.status
                );
                assert!(a.retry_after, "{} without Retry-After", a.status);
            }
            other => panic!(
                "{} = {} (conditional: {}) answered {other}",
                a.key, a.value, a.conditional
            ),
        }
    }
    // 3. The feed lost nothing; duplicates are dropped by tenant + revision.
    let unique: BTreeSet<(String, u64)> = delivered.iter().cloned().collect();
    let expected: BTreeSet<(String, u64)> = revisions.iter().map(|r| (d.tenant.to_string(), *r)).collect();
    let lost: Vec<_> = expected.difference(&unique).collect();
    assert!(lost.is_empty(), "changes lost by the feed: {lost:?}");
    // 4. The watcher saw every revision of the watched keys once, in order.
    let mut seen = Vec::new();
    while seen.last().copied().unwrap_or(0) < head {
        let event = tokio::time::timeout(Duration::from_secs(10), watch.message())
            .await
            .expect("the watcher hears every change")
            .unwrap()
            .unwrap();
        match event.event {
            Some(Event::Updates(batch)) => seen.extend(batch.updates.iter().map(|u| u.revision)),
            Some(Event::Resync(r)) => panic!("a resync: {}", r.reason),
            _ => {}
        }
    }
    let in_order: Vec<u64> = (1..=head).collect();
    assert_eq!(seen, in_order, "no gap, no reordering, no duplicate");
    let injected = faults.injected();
    testkit::report(&format!(
        "fault suite: {} operations ({} writes: {answered} answered, {refused} refused; statuses {statuses:?}); \
         {} AWS calls, {} faults injected {injected:?}; {} changes, {} deliveries ({} duplicates dropped), {} publish retries; \
         changes lost: {}; watcher gaps or reorderings: 0; scripted: {refusals:?}",
        CLIENTS * PER_CLIENT,
        attempts.len(),
        faults.calls(),
        faults.total(),
        head,
        delivered.len(),
        delivered.len() - unique.len(),
        publish_retries,
        lost.len(),
    ));
    stack.stop().await;
}
