//! # tagcfg-fuzz: what each fuzz target checks
//!
//! One function per `cargo fuzz` target (`fuzz_targets/<name>.rs` only calls it), so the
//! same checks replay the corpus and every regression input under `make test`
//! (`tests/replay.rs`) without libFuzzer. Each check feeds untrusted bytes to one parser
//! the service exposes and asserts what must hold for every input: no panic, and for what
//! is accepted, the invariants the rest of the code relies on.
//!
//! | target | input | holds |
//! | --- | --- | --- |
//! | [`key_parser`] | a raw key, a tenant id, a tier name | an accepted key is the input, its tag routes, its name obeys the grammar |
//! | [`routing_table`] | a `TAGCFG_ROUTES` spec | an accepted table routes every tag it lists to its own backend, longest tag first |
//! | [`json_text`] | a config value | an accepted value is JSON within the depth limit, kept byte for byte |
//! | [`jwt`] | a bearer token, or claims signed with the dev key | a refusal is a typed error; a tenant principal has a valid tenant id |
//! | [`stream_record`] | a DynamoDB Streams batch | decoded changes become events that decode back to the same change |
//! | [`eventbridge_event`] | an EventBridge event | decoding answers a typed error or the change the detail holds |
//! | [`http_router`] | method, path, headers, body, caller | never a 5xx; no answer carries an item or change of another tenant |

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::Request;
use tagged_routing::memory::MemoryStore;
use tagged_routing::{
    validate_name, Change, ConfigStore, JsonText, Key, Owner, Precondition, RoutingTable, StoreLimits, TaggedStore,
    TenantId, TierName, MAX_JSON_DEPTH,
};
use tenant_auth::{dev, Principal, Scope, Verifier};
use tower::ServiceExt;

/// The dev secret every target that verifies tokens signs with.
const SECRET: &[u8] = b"fuzz-secret-fuzz-secret-fuzz-secret!";

/// The actor of tenant `globex`'s values. The fuzzed callers' tokens are fixed (`acme-user`,
/// `ops`), so no item or change they can reach carries it: an answer that does shows
/// another tenant's data. (A marker in the values would not do: the fuzzer learns strings
/// from comparisons and writes them into acme's own keys and values.)
const GLOBEX_ACTOR: &str = "globex-seed";

/// Keys, tenant ids and tier names.
pub fn key_parser(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let routes = RoutingTable::default();
    if let Ok(key) = routes.parse_key(raw) {
        check_key(&routes, raw, &key);
    }
    if let Ok(tenant) = TenantId::parse(raw) {
        assert_eq!(tenant.as_str(), raw);
        assert!(!raw.starts_with('_'), "a tenant id never names a platform owner");
        assert_eq!(Owner::parse(raw).ok(), Some(Owner::Tenant(tenant)));
    }
    if let Ok(tier) = TierName::parse(raw) {
        assert_eq!(tier.as_str(), raw);
    }
    if let Ok(owner) = Owner::parse(raw) {
        assert_eq!(owner.as_str(), raw, "an owner prints as it parsed");
    }
}

fn check_key(routes: &RoutingTable, raw: &str, key: &Key) {
    assert_eq!(key.as_str(), raw);
    assert!(raw.starts_with(key.tag().as_str()));
    assert_eq!(format!("{}{}", key.tag().as_str(), key.name()), raw);
    assert!(validate_name(key.name()).is_ok());
    let longest = routes
        .routes()
        .filter(|(tag, _)| raw.starts_with(tag.as_str()))
        .map(|(tag, _)| tag.as_str().len())
        .max();
    assert_eq!(longest, Some(key.tag().as_str().len()), "the longest tag wins");
}

/// Routing table specs, then a key routed by the table.
pub fn routing_table(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (spec, key) = text.split_once('\n').unwrap_or((text, "tenant_config_x"));
    let Ok(table) = RoutingTable::parse(spec) else { return };
    let routes: Vec<_> = table.routes().collect();
    assert!(!routes.is_empty(), "an accepted table has a route");
    assert!(
        routes
            .windows(2)
            .all(|w| w[0].0.as_str().len() >= w[1].0.as_str().len()),
        "longest tag first"
    );
    for (tag, backend) in &routes {
        let probe = format!("{}probe", tag.as_str());
        let key = table.parse_key(&probe).expect("a listed tag routes a plain name");
        // A longer listed tag may shadow this one only if it prefixes the probe too.
        if key.tag() == *tag {
            assert_eq!(key.backend(), *backend);
        }
    }
    if let Ok(parsed) = table.parse_key(key) {
        check_key(&table, key, &parsed);
    }
}

/// Config values: the depth limit and exact preservation.
pub fn json_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match JsonText::parse(text) {
        Ok(value) => {
            assert_eq!(value.as_str(), text.trim_matches(|c: char| c.is_ascii_whitespace()));
            serde_json::from_str::<&serde_json::value::RawValue>(value.as_str()).expect("an accepted value is JSON");
            // Values are kept as written, numbers beyond f64 (`1e400`) included: only those
            // keep serde_json from building the value.
            match serde_json::from_str::<serde_json::Value>(value.as_str()) {
                Ok(parsed) => assert!(
                    depth(&parsed) <= MAX_JSON_DEPTH,
                    "an accepted value is within the depth limit"
                ),
                Err(e) => assert!(e.to_string().contains("number out of range"), "{e}"),
            }
            assert_eq!(
                JsonText::parse(value.as_str()).map(|v| v.as_str().to_owned()).ok(),
                Some(value.as_str().to_owned())
            );
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
        }
    }
}

fn depth(value: &serde_json::Value) -> usize {
    match value {
        serde_json::Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The verifier of `tagcfg serve` (dev key, dev issuer and audience), and a runtime to
/// drive it: built once per process.
fn verifier() -> &'static (tokio::runtime::Runtime, Verifier) {
    static VERIFIER: OnceLock<(tokio::runtime::Runtime, Verifier)> = OnceLock::new();
    VERIFIER.get_or_init(|| (runtime(), dev::verifier(SECRET).expect("a 32-byte dev secret")))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

/// Bearer tokens: the first byte chooses raw text (header pre-parse, signature, any
/// algorithm) or a JSON claims object signed with the dev key (the claim checks).
pub fn jwt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else { return };
    let token = if mode % 2 == 0 {
        text.to_owned()
    } else {
        let Ok(claims) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) else {
            return;
        };
        let Ok(token) = jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        ) else {
            return;
        };
        token
    };
    let (runtime, verifier) = verifier();
    // Twice: the second answer may come from the verified-token cache and must agree.
    let first = runtime.block_on(verifier.verify(&token));
    let second = runtime.block_on(verifier.verify(&token));
    match (&first, &second) {
        (Ok(Principal::Tenant(a)), Ok(Principal::Tenant(b))) => {
            assert_eq!(a.tenant, b.tenant);
            assert!(TenantId::parse(a.tenant.as_str()).is_ok());
        }
        (Ok(Principal::Operator(_)), Ok(Principal::Operator(_))) => {}
        (Err(a), Err(b)) => {
            assert_eq!(a.to_string(), b.to_string());
            // An error names the problem, never echoes a signature or the token.
            assert!(token.len() < 24 || !a.to_string().contains(&token));
        }
        _ => panic!("a token verified twice gave two answers: {first:?} then {second:?}"),
    }
}

/// DynamoDB Streams batches through the publisher's decoding and event building.
pub fn stream_record(data: &[u8]) {
    let Ok(event) = serde_json::from_slice::<aws_lambda_events::event::dynamodb::Event>(data) else {
        return;
    };
    let config = stream_publisher::PublisherConfig {
        event_bus: "fuzz".into(),
        source: "tagcfg".into(),
    };
    for record in &event.records {
        if let Ok(Some(change)) = stream_publisher::change_of(record) {
            let (entry, size) = stream_publisher::entry(&change, &config);
            let detail = entry.detail().expect("an entry has a detail");
            assert!(size >= detail.len());
            let back: Change = serde_json::from_str(detail).expect("an event's detail decodes");
            assert_eq!(back, change, "the event carries the change unaltered");
        }
    }
    let (pending, first_failed) = stream_publisher::prepare(&event.records, &config);
    if let Some(failed) = first_failed {
        assert!(failed < event.records.len());
        assert!(
            pending.iter().all(|(i, ..)| *i < failed),
            "nothing after a malformed record is sent"
        );
    }
}

/// EventBridge events through the refresher's decoding.
pub fn eventbridge_event(data: &[u8]) {
    let Ok(event) =
        serde_json::from_slice::<aws_lambda_events::event::eventbridge::EventBridgeEvent<serde_json::Value>>(data)
    else {
        return;
    };
    match cache_refresher::decode(&event) {
        Ok(cache_refresher::Incoming::Changed(change)) => {
            assert_eq!(event.detail_type, cache_refresher::CONFIG_CHANGED);
            let again: Change = serde_json::from_value(event.detail.clone()).expect("decoded once, decodes again");
            assert_eq!(again, change);
        }
        Ok(cache_refresher::Incoming::ParameterStore { name }) => {
            assert_eq!(event.detail.get("name").and_then(|n| n.as_str()), Some(name));
        }
        Ok(cache_refresher::Incoming::Other { detail_type }) => {
            assert_ne!(detail_type, cache_refresher::CONFIG_CHANGED);
        }
        Err(e) => assert!(e.to_string().contains(&event.detail_type)),
    }
}

/// Who sends a fuzzed HTTP request: the `x-fuzz-caller` line of the input.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Caller {
    Anonymous,
    Reader,
    Writer,
    Admin,
    Operator,
    Garbage,
}

impl Caller {
    fn named(name: &str) -> Caller {
        match name.trim() {
            "reader" => Caller::Reader,
            "writer" => Caller::Writer,
            "admin" => Caller::Admin,
            "operator" => Caller::Operator,
            "garbage" => Caller::Garbage,
            _ => Caller::Anonymous,
        }
    }
}

struct Site {
    runtime: tokio::runtime::Runtime,
    router: axum::Router,
    tokens: [(Caller, String); 5],
}

fn site() -> &'static Site {
    static SITE: OnceLock<Site> = OnceLock::new();
    SITE.get_or_init(|| {
        let runtime = runtime();
        let routes = RoutingTable::default();
        let store = Arc::new(TaggedStore::single(
            routes.clone(),
            Arc::new(MemoryStore::new()),
            StoreLimits::default(),
        ));
        let globex = TenantId::parse("globex").expect("a tenant id");
        let acme = TenantId::parse("acme").expect("a tenant id");
        runtime.block_on(async {
            for name in ["tenant_config_flag", "param_config_region", "secret_config_db"] {
                let key = routes.parse_key(name).expect("a default-routed key");
                let value = JsonText::from_serialize(&"globex's own").expect("a JSON string");
                store
                    .put(
                        &Owner::Tenant(globex.clone()),
                        &key,
                        &value,
                        Precondition::None,
                        GLOBEX_ACTOR,
                    )
                    .await
                    .expect("a seed write");
            }
        });
        let verifier = dev::verifier(SECRET).expect("a 32-byte dev secret");
        let day = 86_400;
        let mint = |scopes: &[Scope]| dev::mint(SECRET, &acme, "acme-user", scopes, day).expect("a dev token");
        let tokens = [
            (Caller::Reader, mint(&[Scope::Read])),
            (Caller::Writer, mint(&[Scope::Read, Scope::Write])),
            (Caller::Admin, mint(&[Scope::Read, Scope::Write, Scope::Admin])),
            (
                Caller::Operator,
                dev::mint_operator(SECRET, "ops", day).expect("a dev token"),
            ),
            (Caller::Garbage, "eyJhbGciOiJub25lIn0.e30.".to_owned()),
        ];
        let router = http_api::router(http_api::AppState::new(store, routes, Arc::new(verifier)));
        Site {
            runtime,
            router,
            tokens,
        }
    })
}

/// Arbitrary HTTP requests against the router over an in-memory store, as tenant `acme`
/// (or an operator, or nobody) beside tenant `globex`'s values. The input reads like an
/// HTTP/1 request: `METHOD PATH`, header lines (`x-fuzz-caller: reader|writer|admin|
/// operator|garbage` picks the bearer token), an empty line, the body.
pub fn http_router(data: &[u8]) {
    let split = data.windows(2).position(|w| w == b"\n\n");
    let (head, body) = match split {
        Some(at) => (&data[..at], data[at + 2..].to_vec()),
        None => (data, Vec::new()),
    };
    let Ok(head) = std::str::from_utf8(head) else { return };
    let mut lines = head.lines();
    let Some((method, path)) = lines.next().and_then(|l| l.split_once(' ')) else {
        return;
    };
    let site = site();
    let mut request = Request::builder().method(method).uri(path);
    let mut caller = Caller::Anonymous;
    for line in lines.take(32) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("x-fuzz-caller") {
            caller = Caller::named(value);
        } else {
            request = request.header(name, value.trim_start());
        }
    }
    if let Some((_, token)) = site.tokens.iter().find(|(c, _)| *c == caller) {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let Ok(request) = request.body(Body::from(body)) else {
        return;
    };
    let (status, answer) = site.runtime.block_on(async {
        let response = site
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a body in memory");
        (status, body)
    });
    assert!(
        !status.is_server_error(),
        "{status} for {head}: {}",
        String::from_utf8_lossy(&answer)
    );
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&answer) {
        assert!(
            !written_by(&json, GLOBEX_ACTOR),
            "another tenant's data in an answer: {}",
            String::from_utf8_lossy(&answer)
        );
    }
}

/// Whether an item or change in `answer` (outside any stored value, which the caller wrote
/// and may shape like anything) was written by `actor`.
fn written_by(answer: &serde_json::Value, actor: &str) -> bool {
    match answer {
        serde_json::Value::Object(fields) => fields.iter().any(|(name, field)| match name.as_str() {
            "value" => false,
            "updated_by" | "actor" => field.as_str() == Some(actor),
            _ => written_by(field, actor),
        }),
        serde_json::Value::Array(items) => items.iter().any(|item| written_by(item, actor)),
        _ => false,
    }
}
