//! The layer conformance suite.
//!
//! One scripted sequence over a tenant's layers (tenant → tier → shared), run against a
//! [`Deployment`]. After every step, every reader must show the same effective value and
//! layer for every key, and that must be the value the script expects:
//!
//! - HTTP `GET /v1/config/{key}` with the tenant's token;
//! - gRPC `Get`;
//! - the view built by applying a `Watch` stream's updates, opened before the first write;
//! - a second `Watch` stream, dropped mid-way and resumed from its cursor across writes to
//!   every layer;
//! - the Lambda's `CachedStore` (validating on every read) with the domain's `resolve`;
//! - the Rust client's cache.
//!
//! Readers fed by a change feed get until [`SETTLE`] to agree; nothing is timed.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use push::pb::{self, config_watch_client::ConfigWatchClient, watch_event::Event};
use serde_json::Value;
use tagged_routing::{ConfigStore, TenantId};
use tokio::task::JoinHandle;

/// How long readers fed by a change feed get to agree before the step fails.
pub const SETTLE: Duration = Duration::from_secs(15);

/// What the suite needs of a running stack.
pub struct Deployment {
    pub http_url: String,
    pub grpc_url: String,
    /// The suite's tenant: fresh, never written.
    pub tenant: TenantId,
    /// A `config:write` token of that tenant.
    pub tenant_token: String,
    pub operator_token: String,
    /// The store the API writes to, for the `CachedStore` reader.
    pub store: Arc<dyn ConfigStore>,
    /// A name no earlier run used (tiers and keys are global to a stack).
    pub nonce: String,
}

/// Moves what was written through the stack's change feed (a no-op where the feed runs by
/// itself, as in `tagcfg serve`).
#[async_trait]
pub trait Feed: Send + Sync {
    async fn settle(&self);
}

/// A feed that needs no help.
pub struct InProcess;

#[async_trait]
impl Feed for InProcess {
    async fn settle(&self) {}
}

/// An effective value as a reader shows it: the JSON value and the layer.
type Seen = Option<(Value, String)>;
type View = Arc<Mutex<BTreeMap<String, Seen>>>;

struct Keys {
    /// A DynamoDB-routed key with values in every layer.
    limit: String,
    /// An SSM-routed key the tenant overrides.
    region: String,
    /// A key only tiers hold.
    feature: String,
    /// A key only the tenant holds.
    own: String,
}

impl Keys {
    fn all(&self) -> [&str; 4] {
        [&self.limit, &self.region, &self.feature, &self.own]
    }
}

/// A `Watch` stream applied to a map, in the background.
struct Watcher {
    view: View,
    cursor: Arc<Mutex<Option<pb::Cursor>>>,
    task: JoinHandle<()>,
}

impl Watcher {
    async fn open(d: &Deployment, prefixes: &[String], since: Option<pb::Cursor>, view: View) -> Watcher {
        let mut stream = crate::auth::watch(&d.grpc_url, &d.tenant_token, prefixes, since).await;
        let cursor = Arc::new(Mutex::new(None));
        let (v, c) = (view.clone(), cursor.clone());
        let task = tokio::spawn(async move {
            while let Ok(Some(event)) = stream.message().await {
                match event.event {
                    Some(Event::Updates(batch)) => {
                        let mut view = v.lock().unwrap();
                        for u in batch.updates {
                            let seen = match u.op() {
                                pb::Op::Delete => None,
                                _ => {
                                    let value = u.value_json.as_deref().map(parse).unwrap_or(Value::Null);
                                    let layer = u.layer.as_ref().and_then(push::layer_from_pb);
                                    Some((value, layer.map(|l| l.to_string()).unwrap_or_default()))
                                }
                            };
                            view.insert(u.key, seen);
                        }
                        *c.lock().unwrap() = batch.cursor;
                    }
                    Some(Event::Heartbeat(hb)) => *c.lock().unwrap() = hb.cursor,
                    Some(Event::Resync(r)) => panic!("unexpected resync: {}", r.reason),
                    None => {}
                }
            }
        });
        Watcher { view, cursor, task }
    }

    /// Drops the stream; returns its view and its last cursor.
    fn disconnect(self) -> (View, Option<pb::Cursor>) {
        self.task.abort();
        let cursor = self.cursor.lock().unwrap().clone();
        (self.view, cursor)
    }
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).expect("values are JSON")
}

struct Suite<'a> {
    d: &'a Deployment,
    feed: &'a dyn Feed,
    http: reqwest::Client,
    keys: Keys,
    prefixes: Vec<String>,
    expected: BTreeMap<String, Seen>,
    watcher: Watcher,
    resumable: Option<Watcher>,
    cached: http_api::CachedStore,
    client: client::Client,
    routes: tagged_routing::RoutingTable,
}

impl Suite<'_> {
    async fn call(&self, method: &str, path: &str, token: &str, body: Option<String>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method.parse().expect("method"), format!("{}{path}", self.d.http_url))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request.send().await.expect("the HTTP API answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn operator_put(&self, layer: &str, key: &str, value: &str) -> Value {
        let path = format!("/v1/config/{key}?layer={layer}");
        let (status, body) = self
            .call("PUT", &path, &self.d.operator_token, Some(value.into()))
            .await;
        assert!((200..300).contains(&status), "operator PUT {path}: {status} {body}");
        body
    }

    async fn operator_delete(&self, layer: &str, key: &str) {
        let path = format!("/v1/config/{key}?layer={layer}");
        let (status, body) = self.call("DELETE", &path, &self.d.operator_token, None).await;
        assert_eq!(status, 204, "operator DELETE {path}: {body}");
    }

    async fn tenant_put(&self, key: &str, value: &str) -> Value {
        let path = format!("/v1/config/{key}");
        let (status, body) = self.call("PUT", &path, &self.d.tenant_token, Some(value.into())).await;
        assert!((200..300).contains(&status), "tenant PUT {path}: {status} {body}");
        body
    }

    async fn tenant_delete(&self, key: &str) {
        let path = format!("/v1/config/{key}");
        let (status, body) = self.call("DELETE", &path, &self.d.tenant_token, None).await;
        assert_eq!(status, 204, "tenant DELETE {path}: {body}");
    }

    async fn assign(&self, tier: Option<&str>) {
        let path = format!("/v1/tenants/{}", self.d.tenant);
        let body = serde_json::json!({ "tier": tier }).to_string();
        let (status, answer) = self.call("PUT", &path, &self.d.operator_token, Some(body)).await;
        assert_eq!(status, 200, "assign tier: {answer}");
    }

    fn expect(&mut self, key: &str, value: Option<(&str, &str)>) {
        self.expected
            .insert(key.to_owned(), value.map(|(v, l)| (parse(v), l.to_owned())));
    }

    async fn http_view(&self, key: &str) -> Seen {
        let (status, body) = self
            .call("GET", &format!("/v1/config/{key}"), &self.d.tenant_token, None)
            .await;
        match status {
            404 => None,
            200 => Some((
                body["value"].clone(),
                body["layer"].as_str().unwrap_or_default().to_owned(),
            )),
            other => panic!("HTTP GET {key}: {other} {body}"),
        }
    }

    async fn grpc_view(&self) -> BTreeMap<String, Seen> {
        let keys: Vec<String> = self.keys.all().iter().map(|k| k.to_string()).collect();
        let mut request = tonic::Request::new(pb::GetRequest { keys: keys.clone() });
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {}", self.d.tenant_token).parse().expect("ASCII token"),
        );
        let answer = ConfigWatchClient::connect(self.d.grpc_url.clone())
            .await
            .expect("the watch server answers")
            .get(request)
            .await
            .expect("Get answers")
            .into_inner();
        let mut view: BTreeMap<String, Seen> = keys.iter().map(|k| (k.clone(), None)).collect();
        for item in answer.items {
            let layer = item.layer.as_ref().and_then(push::layer_from_pb);
            view.insert(
                item.key,
                Some((
                    parse(&item.value_json),
                    layer.map(|l| l.to_string()).unwrap_or_default(),
                )),
            );
        }
        view
    }

    async fn cached_view(&self, key: &str) -> Seen {
        let key = self.routes.parse_key(key).expect("suite keys route");
        let (mut items, _) = tagged_routing::resolve(&self.cached, &self.d.tenant, std::slice::from_ref(&key))
            .await
            .expect("the cached store reads");
        items.pop().map(|i| (parse(i.value.as_str()), i.layer.to_string()))
    }

    async fn client_view(&self, key: &str) -> Seen {
        match self.client.get_json(key).await {
            Ok(json) => Some((parse(&json), self.client.layer(key).await.unwrap_or_default())),
            Err(client::ClientError::NotFound(_)) => None,
            Err(e) => panic!("client get {key}: {e}"),
        }
    }

    fn stream_view(view: &View, keys: &[&str]) -> BTreeMap<String, Seen> {
        let view = view.lock().unwrap();
        keys.iter()
            .map(|k| (k.to_string(), view.get(*k).cloned().flatten()))
            .collect()
    }

    /// Every reader against the expected state; readers fed by the change feed get until
    /// [`SETTLE`] to converge.
    async fn agree(&self, step: &str) {
        self.feed.settle().await;
        let keys = self.keys.all();
        let expected: BTreeMap<String, Seen> = keys
            .iter()
            .map(|k| (k.to_string(), self.expected.get(*k).cloned().flatten()))
            .collect();
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let mut readers: Vec<(&str, BTreeMap<String, Seen>)> = Vec::new();
            let mut http = BTreeMap::new();
            let mut cached = BTreeMap::new();
            let mut client = BTreeMap::new();
            for key in keys {
                http.insert(key.to_owned(), self.http_view(key).await);
                cached.insert(key.to_owned(), self.cached_view(key).await);
                client.insert(key.to_owned(), self.client_view(key).await);
            }
            readers.push(("HTTP GET", http));
            readers.push(("gRPC Get", self.grpc_view().await));
            readers.push(("Watch stream", Self::stream_view(&self.watcher.view, &keys)));
            if let Some(resumable) = &self.resumable {
                readers.push(("resumed Watch stream", Self::stream_view(&resumable.view, &keys)));
            }
            readers.push(("CachedStore", cached));
            readers.push(("Rust client", client));
            let wrong: Vec<_> = readers.iter().filter(|(_, view)| *view != expected).collect();
            if wrong.is_empty() {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                let detail: Vec<String> = wrong.iter().map(|(name, view)| format!("  {name}: {view:?}")).collect();
                panic!(
                    "step '{step}': readers disagree with the expected\n  expected: {expected:?}\n{}",
                    detail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.feed.settle().await;
        }
    }
}

/// Runs the whole sequence; panics naming the step and the readers that disagree.
pub async fn run(d: &Deployment, feed: &dyn Feed, routes: tagged_routing::RoutingTable) {
    let n = &d.nonce;
    let keys = Keys {
        limit: format!("tenant_config_layers-{n}/limit"),
        region: format!("param_config_layers-{n}/region"),
        feature: format!("tenant_config_layers-{n}/feature"),
        own: format!("tenant_config_layers-{n}/own"),
    };
    let prefixes = vec![
        format!("tenant_config_layers-{n}/"),
        format!("param_config_layers-{n}/"),
    ];
    let (gold, silver) = (format!("gold-{n}"), format!("silver-{n}"));
    let (gold_layer, silver_layer) = (format!("tier:{gold}"), format!("tier:{silver}"));
    let watcher = Watcher::open(d, &prefixes, None, View::default()).await;
    let resumable = Watcher::open(d, &prefixes, None, View::default()).await;
    let client = client::Client::builder(d.grpc_url.clone(), d.tenant_token.clone())
        .prefixes(prefixes.clone())
        .connect()
        .await
        .expect("the client connects");
    let mut s = Suite {
        d,
        feed,
        http: tenant_auth::http_client(Duration::from_secs(30)).expect("HTTP client"),
        keys,
        prefixes,
        expected: BTreeMap::new(),
        watcher,
        resumable: Some(resumable),
        cached: http_api::CachedStore::new(d.store.clone(), Duration::ZERO),
        client,
        routes,
    };
    let (limit, region, feature, own) = (
        s.keys.limit.clone(),
        s.keys.region.clone(),
        s.keys.feature.clone(),
        s.keys.own.clone(),
    );
    s.agree("nothing written yet").await;

    // 1. An operator writes shared and tier values; the shared log goes past revision 40.
    s.operator_put("shared", &limit, "10").await;
    s.operator_put("shared", &region, "\"eu\"").await;
    for i in 0..40 {
        s.operator_put("shared", &format!("tenant_config_filler-{n}/{i}"), "0")
            .await;
    }
    s.operator_put(&gold_layer, &limit, "100").await;
    s.operator_put(&gold_layer, &feature, "true").await;
    // 2. The fresh tenant (revision 0, no tier) reads the shared defaults.
    s.expect(&limit, Some(("10", "shared")));
    s.expect(&region, Some(("\"eu\"", "shared")));
    s.agree("a fresh tenant reads the shared layer").await;

    // 3. The tenant overrides at its revision 1 while the shared log is past 40.
    let written = s.tenant_put(&region, "\"us\"").await;
    assert_eq!(written["revision"], 1, "the tenant's own first revision");
    s.expect(&region, Some(("\"us\"", "tenant")));
    s.agree("the tenant overrides at revision 1").await;

    // 4. Shared and tier writes under and over the override.
    s.operator_put("shared", &region, "\"ap\"").await;
    s.operator_put("shared", &limit, "20").await;
    s.operator_put(&gold_layer, &limit, "200").await;
    s.expect(&limit, Some(("20", "shared")));
    s.agree("shared writes under and over the override").await;

    // 5. Deleting the override shows the shared value again.
    s.tenant_delete(&region).await;
    s.expect(&region, Some(("\"ap\"", "shared")));
    s.agree("the override is deleted").await;

    // 6. The tenant joins a tier, then moves to another.
    s.assign(Some(&gold)).await;
    s.expect(&limit, Some(("200", &gold_layer)));
    s.expect(&feature, Some(("true", &gold_layer)));
    s.agree("the tenant joins a tier").await;
    s.operator_put(&silver_layer, &feature, "false").await;
    s.assign(Some(&silver)).await;
    s.expect(&limit, Some(("20", "shared")));
    s.expect(&feature, Some(("false", &silver_layer)));
    s.agree("the tenant changes tier").await;

    // 7. A watcher disconnects; every layer changes; it resumes from its cursor.
    let (view, cursor) = s.resumable.take().expect("the resumable watcher").disconnect();
    let cursor = cursor.expect("the stream reported a cursor");
    s.tenant_put(&own, "1").await;
    s.operator_put(&silver_layer, &feature, "\"x\"").await;
    s.operator_put("shared", &limit, "30").await;
    s.operator_put(&gold_layer, &limit, "300").await;
    s.operator_delete("shared", &region).await;
    s.expect(&own, Some(("1", "tenant")));
    s.expect(&feature, Some(("\"x\"", &silver_layer)));
    s.expect(&limit, Some(("30", "shared")));
    s.expect(&region, None);
    s.feed.settle().await;
    let prefixes = s.prefixes.clone();
    s.resumable = Some(Watcher::open(d, &prefixes, Some(cursor), view).await);
    s.agree("a watcher resumes across writes to every layer").await;

    // 8. Out of every tier.
    s.assign(None).await;
    s.expect(&feature, None);
    s.agree("the tenant leaves its tier").await;
}
