//! Fault injection under the AWS SDK: an HTTP client that sits where the SDK sends its
//! requests, so every client built from a [`with_faults`] configuration — DynamoDB, SSM,
//! EventBridge, Cloud Map, STS — meets the same faults without any change to the code
//! under test.
//!
//! Faults are chosen per call, by rate ([`Faults::at_rate`]) or by script
//! ([`Faults::scripted`]), among the kinds that make sense for the operation:
//!
//! | [`Fault`] | what the SDK sees | sent to the service? |
//! | --- | --- | --- |
//! | `Throttling` | 400 `ThrottlingException` (retried by the SDK) | no |
//! | `ServerError` | 500 `InternalServerError` (retried by the SDK) | no |
//! | `Timeout` | a connector timeout (retried by the SDK) | no |
//! | `TransactionConflict` | `TransactionCanceledException`, every reason `TransactionConflict` (`TransactWriteItems` only) | no |
//! | `LostResponse` | 500 after the request **was** executed (writes only): the SDK's retry repeats it | yes |
//! | `PartialPutEvents` | `PutEvents` answered with its first entry failed, after all were delivered | yes |

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::client::http::{
    http_client_fn, HttpClient, HttpConnector, HttpConnectorFuture, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;

/// One kind of fault (see the module table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fault {
    Throttling,
    ServerError,
    Timeout,
    TransactionConflict,
    LostResponse,
    PartialPutEvents,
}

/// Operations that change something: the only ones a lost response matters for.
const WRITES: &[&str] = &["TransactWriteItems", "PutParameter", "DeleteParameter", "PutEvents"];

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::Throttling,
        Fault::ServerError,
        Fault::Timeout,
        Fault::TransactionConflict,
        Fault::LostResponse,
        Fault::PartialPutEvents,
    ];

    fn applies_to(self, operation: &str) -> bool {
        match self {
            Fault::Throttling | Fault::ServerError | Fault::Timeout => true,
            Fault::TransactionConflict => operation == "TransactWriteItems",
            Fault::LostResponse => WRITES.contains(&operation),
            Fault::PartialPutEvents => operation == "PutEvents",
        }
    }
}

/// Which faults to inject, and what was injected.
#[derive(Debug)]
pub struct Faults {
    per_mille: u32,
    kinds: Vec<Fault>,
    rng: Mutex<u64>,
    script: Mutex<VecDeque<Fault>>,
    enabled: AtomicBool,
    calls: AtomicU64,
    injected: Mutex<BTreeMap<(String, Fault), u64>>,
}

impl Faults {
    /// Each call meets one of `kinds` (those that apply to its operation) with probability
    /// `per_mille`/1000, from a generator seeded with `seed`.
    pub fn at_rate(per_mille: u32, kinds: &[Fault], seed: u64) -> Arc<Self> {
        Arc::new(Faults {
            per_mille,
            kinds: kinds.to_vec(),
            rng: Mutex::new(seed | 1),
            script: Mutex::new(VecDeque::new()),
            enabled: AtomicBool::new(true),
            calls: AtomicU64::new(0),
            injected: Mutex::new(BTreeMap::new()),
        })
    }

    /// The next calls each meet the next fault of `script` that applies to them, in order.
    pub fn scripted(script: &[Fault]) -> Arc<Self> {
        let faults = Faults::at_rate(0, &[], 1);
        faults.script(script);
        faults
    }

    /// Queues `script`: the next applicable calls meet these faults, in order, before any
    /// chosen by rate.
    pub fn script(&self, script: &[Fault]) {
        self.script.lock().unwrap_or_else(|p| p.into_inner()).extend(script);
    }

    /// Stops (or resumes) injecting: a test checks the outcome on a clean path.
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::SeqCst);
    }

    /// Calls seen (faulted or not).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Faults injected, by operation and kind.
    pub fn injected(&self) -> BTreeMap<(String, Fault), u64> {
        self.injected.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Faults injected in all.
    pub fn total(&self) -> u64 {
        self.injected().values().sum()
    }

    fn choose(&self, operation: &str) -> Option<Fault> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !self.enabled.load(Ordering::SeqCst) {
            return None;
        }
        let chosen = {
            let mut script = self.script.lock().unwrap_or_else(|p| p.into_inner());
            match script.front() {
                Some(next) if next.applies_to(operation) => script.pop_front(),
                Some(_) => None,
                None => {
                    let applicable: Vec<Fault> =
                        self.kinds.iter().copied().filter(|k| k.applies_to(operation)).collect();
                    let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
                    let mut next = || {
                        *rng ^= *rng << 13;
                        *rng ^= *rng >> 7;
                        *rng ^= *rng << 17;
                        *rng
                    };
                    (!applicable.is_empty() && next() % 1000 < u64::from(self.per_mille))
                        .then(|| applicable[(next() % applicable.len() as u64) as usize])
                }
            }
        };
        if let Some(fault) = chosen {
            *self
                .injected
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry((operation.to_owned(), fault))
                .or_default() += 1;
        }
        chosen
    }
}

/// `sdk` with a plain-HTTP client wrapped in `faults` (the emulators speak HTTP): build any
/// AWS client from the result. The SDK's standard retries stay (3 attempts) with a 10 ms
/// initial backoff instead of 1 s, so a run of thousands of faults stays short.
pub fn with_faults(sdk: &aws_config::SdkConfig, faults: Arc<Faults>) -> aws_config::SdkConfig {
    let inner = aws_smithy_http_client::Builder::new().build_http();
    let client = http_client_fn(move |settings, components| {
        SharedHttpConnector::new(FaultyConnector {
            inner: inner.http_connector(settings, components),
            faults: faults.clone(),
        })
    });
    sdk.to_builder()
        .http_client(client)
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_initial_backoff(std::time::Duration::from_millis(10))
                .with_max_backoff(std::time::Duration::from_millis(200)),
        )
        .build()
}

#[derive(Debug)]
struct FaultyConnector {
    inner: SharedHttpConnector,
    faults: Arc<Faults>,
}

/// The operation a request calls: the `X-Amz-Target` of the JSON protocols, or the
/// `Action` of the query protocol.
fn operation(request: &HttpRequest) -> String {
    if let Some(target) = request.headers().get("x-amz-target") {
        return target.rsplit('.').next().unwrap_or(target).to_owned();
    }
    let body = request.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
    body.split('&')
        .find_map(|p| p.strip_prefix("Action="))
        .unwrap_or("unknown")
        .to_owned()
}

/// How many entries of `field` (`TransactItems`, `Entries`) a JSON request carries.
fn entries(request: &HttpRequest, field: &str) -> usize {
    request
        .body()
        .bytes()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(b).ok())
        .and_then(|v| v[field].as_array().map(Vec::len))
        .unwrap_or(1)
}

fn json(status: u16, body: serde_json::Value) -> HttpResponse {
    let mut response = HttpResponse::new(
        status.try_into().expect("a valid status"),
        SdkBody::from(body.to_string()),
    );
    response
        .headers_mut()
        .insert("content-type", "application/x-amz-json-1.0");
    response
}

fn service_error(status: u16, code: &str) -> HttpResponse {
    json(
        status,
        serde_json::json!({"__type": format!("com.amazonaws.injected#{code}"), "message": "injected fault"}),
    )
}

impl HttpConnector for FaultyConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let operation = operation(&request);
        let Some(fault) = self.faults.choose(&operation) else {
            return self.inner.call(request);
        };
        match fault {
            Fault::Throttling => HttpConnectorFuture::ready(Ok(service_error(400, "ThrottlingException"))),
            Fault::ServerError => HttpConnectorFuture::ready(Ok(service_error(500, "InternalServerError"))),
            Fault::Timeout => HttpConnectorFuture::ready(Err(ConnectorError::timeout("injected timeout".into()))),
            Fault::TransactionConflict => {
                let reasons: Vec<_> = (0..entries(&request, "TransactItems"))
                    .map(|_| serde_json::json!({"Code": "TransactionConflict", "Message": "injected"}))
                    .collect();
                HttpConnectorFuture::ready(Ok(json(
                    400,
                    serde_json::json!({
                        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
                        "Message": "Transaction cancelled (injected)",
                        "CancellationReasons": reasons,
                    }),
                )))
            }
            Fault::LostResponse => {
                let sent = self.inner.call(request);
                HttpConnectorFuture::new(async move {
                    let _ = sent.await;
                    Ok(service_error(500, "InternalServerError"))
                })
            }
            Fault::PartialPutEvents => {
                let count = entries(&request, "Entries");
                let sent = self.inner.call(request);
                HttpConnectorFuture::new(async move {
                    let real = sent.await?;
                    if !real.status().is_success() {
                        return Ok(real);
                    }
                    let mut results =
                        vec![serde_json::json!({"ErrorCode": "InternalFailure", "ErrorMessage": "injected"})];
                    results.extend((1..count).map(|i| serde_json::json!({"EventId": format!("injected-{i}")})));
                    Ok(json(
                        200,
                        serde_json::json!({"FailedEntryCount": 1, "Entries": results}),
                    ))
                })
            }
        }
    }
}
