//! # cache-refresher: EventBridge → every watch server
//!
//! The Lambda behind two EventBridge rules:
//!
//! - `ConfigChanged` (from the stream publisher): the change is pushed with `Refresh` to
//!   every watch-server instance, in parallel, each within a deadline, with the service
//!   credential. The invocation fails — so EventBridge retries, then the DLQ gets it —
//!   only when an instance could not be refreshed; retries are harmless because `Refresh`
//!   is idempotent by tenant + revision.
//! - `Parameter Store Change` (from `aws.ssm`, edits made outside the API): the new
//!   version enters the tenant's change log exactly once (`SsmStore::ingest_external`,
//!   deduplicated by parameter name + version with a conditional write; our own API
//!   writes are recognised and not doubled). From the log it reaches the watch servers
//!   through the stream like every other change — one path, so exactly once.
//!
//! Instances come from Cloud Map (`DiscoverInstances` on `TAGCFG_CLOUDMAP_NAMESPACE` /
//! `TAGCFG_CLOUDMAP_SERVICE`, asked on every invocation, healthy instances first) or from a
//! static `TAGCFG_WATCH_ENDPOINTS` list.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use adapters::aws::{AwsSettings, Clients, SsmStore};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use push::pb::{config_refresh_client::ConfigRefreshClient, RefreshRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tagged_routing::env::{self, EnvError, Lookup};
use tagged_routing::{Change, RoutingTable};
use tenant_auth::service::{checked_secret, SecretSource};
use tonic::transport::{Channel, Endpoint};

pub const CONFIG_CHANGED: &str = "ConfigChanged";
/// How long the SDK waits for a TCP/TLS connection to an AWS endpoint.
pub const AWS_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

impl RefresherConfig {
    /// The SDK timeouts this function runs with (see [`RefresherConfig::aws_timeout`]).
    pub fn aws_timeouts(&self) -> aws_config::timeout::TimeoutConfig {
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(AWS_CONNECT_TIMEOUT)
            .operation_timeout(self.aws_timeout)
            .build()
    }
}
pub const PARAMETER_STORE_CHANGE: &str = "Parameter Store Change";

/// Where the watch-server instances are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discovery {
    /// `TAGCFG_WATCH_ENDPOINTS`: comma-separated `http://host:port` of every instance.
    Static(Vec<String>),
    /// `TAGCFG_CLOUDMAP_NAMESPACE` + `TAGCFG_CLOUDMAP_SERVICE`; instances registered with
    /// `AWS_INSTANCE_IPV4` and `AWS_INSTANCE_PORT` (default `TAGCFG_WATCH_PORT`, 50051).
    CloudMap {
        namespace: String,
        service: String,
        default_port: u16,
    },
}

/// Everything the function reads from its environment.
#[derive(Debug, Clone)]
pub struct RefresherConfig {
    pub discovery: Discovery,
    /// The key that signs the service credential: `TAGCFG_SERVICE_SECRET`, or the
    /// SecureString named by `TAGCFG_SERVICE_SECRET_PARAMETER`, read by [`Refresher::new`].
    pub service_secret: SecretSource,
    /// `TAGCFG_REFRESH_TIMEOUT_MS` (default 2000): deadline per instance.
    pub timeout: Duration,
    /// `TAGCFG_AWS_TIMEOUT_MS` (default 3000): deadline of each AWS call, its retries
    /// included, with connections given [`AWS_CONNECT_TIMEOUT`]. In a VPC without a route
    /// to an AWS endpoint the SDK would otherwise retry connects past the function's
    /// timeout; an invocation makes at most two AWS calls one after the other, then the
    /// refreshes: 2 × 3 s + 2 s stays inside the template's 10 s.
    pub aws_timeout: Duration,
    pub routes: RoutingTable,
    pub aws: AwsSettings,
}

impl RefresherConfig {
    pub fn from_lookup(get: &impl Lookup) -> Result<Self, EnvError> {
        let discovery = match (get("TAGCFG_CLOUDMAP_NAMESPACE"), get("TAGCFG_CLOUDMAP_SERVICE")) {
            (Some(namespace), Some(service)) => {
                let port = env::number(get, "TAGCFG_WATCH_PORT", 50051)?;
                let default_port =
                    u16::try_from(port).map_err(|_| EnvError::invalid("TAGCFG_WATCH_PORT", "is not a port"))?;
                Discovery::CloudMap {
                    namespace,
                    service,
                    default_port,
                }
            }
            (Some(_), None) => {
                return Err(EnvError::Missing(
                    "TAGCFG_CLOUDMAP_SERVICE (TAGCFG_CLOUDMAP_NAMESPACE is set)".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(EnvError::Missing(
                    "TAGCFG_CLOUDMAP_NAMESPACE (TAGCFG_CLOUDMAP_SERVICE is set)".into(),
                ))
            }
            (None, None) => {
                let endpoints: Vec<String> = env::required(get, "TAGCFG_WATCH_ENDPOINTS")?
                    .split(',')
                    .map(|e| e.trim().trim_end_matches('/').to_owned())
                    .filter(|e| !e.is_empty())
                    .collect();
                if let Some(bad) = endpoints
                    .iter()
                    .find(|e| !(e.starts_with("http://") || e.starts_with("https://")))
                {
                    return Err(EnvError::invalid(
                        "TAGCFG_WATCH_ENDPOINTS",
                        format!("'{bad}' is not an http(s):// URL"),
                    ));
                }
                if endpoints.is_empty() {
                    return Err(EnvError::invalid("TAGCFG_WATCH_ENDPOINTS", "lists no endpoint"));
                }
                Discovery::Static(endpoints)
            }
        };
        Ok(RefresherConfig {
            discovery,
            service_secret: SecretSource::from_lookup(get)?,
            timeout: Duration::from_millis(env::number(get, "TAGCFG_REFRESH_TIMEOUT_MS", 2000)?),
            aws_timeout: Duration::from_millis(env::number(get, "TAGCFG_AWS_TIMEOUT_MS", 3000)?.max(1)),
            routes: env::routes(get)?,
            aws: AwsSettings::from_lookup(get)?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error("malformed {detail_type} event: {reason}")]
    Malformed { detail_type: String, reason: String },
    #[error("{failed} of {total} watch instances were not refreshed: {details}")]
    Instances {
        failed: usize,
        total: usize,
        details: String,
    },
    #[error("{0}")]
    Store(#[from] tagged_routing::Error),
    #[error("{0}")]
    Auth(#[from] tenant_auth::AuthError),
    #[error("cannot discover the watch instances: {0}")]
    Discovery(String),
}

impl RefreshError {
    fn kind(&self) -> &'static str {
        match self {
            RefreshError::Malformed { .. } => "MalformedEvent",
            RefreshError::Instances { .. } => "InstancesNotRefreshed",
            RefreshError::Store(e) if e.is_retryable() => "StoreUnavailable",
            RefreshError::Store(_) => "StoreError",
            RefreshError::Auth(_) => "ServiceCredentialError",
            RefreshError::Discovery(_) => "DiscoveryFailed",
        }
    }
}

/// The runtime reports a failed invocation with a type and a message; these say which
/// failure it was (EventBridge retries it, then the DLQ keeps it).
impl From<RefreshError> for lambda_runtime::Diagnostic {
    fn from(e: RefreshError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: e.kind().into(),
            error_message: e.to_string(),
        }
    }
}

/// What one invocation did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Refreshed {
        instances: usize,
        accepted: u32,
        duplicates: u32,
    },
    Ingested {
        tenant: String,
        revision: u64,
        key: String,
    },
    AlreadyRecorded {
        key: String,
    },
    Ignored {
        reason: String,
    },
}

/// Built once per execution environment: connections to the instances are kept.
pub struct Refresher {
    discovery: Discovery,
    cloud_map: aws_sdk_servicediscovery::Client,
    /// One lazy connection per endpoint, kept across invocations.
    connections: Mutex<HashMap<String, ConfigRefreshClient<Channel>>>,
    secret: Vec<u8>,
    timeout: Duration,
    ssm: SsmStore,
    token: Mutex<Option<(String, Instant)>>,
}

impl Refresher {
    /// `cloud_map` is only called with [`Discovery::CloudMap`].
    /// Checks the configuration and reads the service secret (from Parameter Store when
    /// configured so: one `GetParameter` at start).
    pub async fn new(
        config: RefresherConfig,
        clients: &Clients,
        cloud_map: aws_sdk_servicediscovery::Client,
    ) -> Result<Self, EnvError> {
        if let Discovery::Static(endpoints) = &config.discovery {
            for url in endpoints {
                Endpoint::from_shared(url.clone())
                    .map_err(|e| EnvError::invalid("TAGCFG_WATCH_ENDPOINTS", format!("{url}: {e}")))?;
            }
        }
        Ok(Refresher {
            discovery: config.discovery,
            cloud_map,
            connections: Mutex::new(HashMap::new()),
            secret: match config.service_secret {
                SecretSource::Value(secret) => secret,
                SecretSource::Parameter(name) => {
                    let value = adapters::aws::secure_parameter(&clients.ssm, &name)
                        .await
                        .map_err(|e| EnvError::invalid("TAGCFG_SERVICE_SECRET_PARAMETER", format!("{name}: {e}")))?;
                    checked_secret(&name, value)?
                }
            },
            timeout: config.timeout,
            ssm: adapters::aws::ssm_store(clients, config.routes, &config.aws),
            token: Mutex::new(None),
        })
    }

    /// The instances to refresh now.
    pub async fn endpoints(&self) -> Result<Vec<String>, RefreshError> {
        match &self.discovery {
            Discovery::Static(endpoints) => Ok(endpoints.clone()),
            Discovery::CloudMap {
                namespace,
                service,
                default_port,
            } => {
                let out = self
                    .cloud_map
                    .discover_instances()
                    .namespace_name(namespace)
                    .service_name(service)
                    .health_status(aws_sdk_servicediscovery::types::HealthStatusFilter::HealthyOrElseAll)
                    .send()
                    .await
                    .map_err(|e| {
                        RefreshError::Discovery(aws_sdk_servicediscovery::error::DisplayErrorContext(e).to_string())
                    })?;
                let mut endpoints: Vec<String> = out
                    .instances()
                    .iter()
                    .filter_map(|i| {
                        let attributes = i.attributes()?;
                        let ip = attributes.get("AWS_INSTANCE_IPV4")?;
                        let port = attributes
                            .get("AWS_INSTANCE_PORT")
                            .cloned()
                            .unwrap_or_else(|| default_port.to_string());
                        Some(format!("http://{ip}:{port}"))
                    })
                    .collect();
                endpoints.sort();
                endpoints.dedup();
                Ok(endpoints)
            }
        }
    }

    fn connection(&self, url: &str) -> Result<ConfigRefreshClient<Channel>, RefreshError> {
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(client) = connections.get(url) {
            return Ok(client.clone());
        }
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| RefreshError::Discovery(format!("{url}: {e}")))?
            .connect_timeout(self.timeout);
        let client = ConfigRefreshClient::new(endpoint.connect_lazy());
        connections.insert(url.to_owned(), client.clone());
        Ok(client)
    }

    /// A service credential, reused for four minutes of its five.
    fn credential(&self) -> Result<String, RefreshError> {
        let mut cached = self.token.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((token, minted)) = cached.as_ref() {
            if minted.elapsed() < Duration::from_secs(240) {
                return Ok(token.clone());
            }
        }
        let token = tenant_auth::service::mint(&self.secret, "cache-refresher", 300)?;
        *cached = Some((token.clone(), Instant::now()));
        Ok(token)
    }

    /// Handles one EventBridge event.
    pub async fn handle(&self, event: &EventBridgeEvent<Value>) -> Result<Outcome, RefreshError> {
        match decode(event)? {
            Incoming::Changed(change) => self.refresh_all(vec![change]).await,
            Incoming::ParameterStore { name } => {
                let Some((owner, key)) = self.ssm.locate(name) else {
                    return Ok(Outcome::Ignored {
                        reason: format!("{name} is outside the configured root or tags"),
                    });
                };
                Ok(match self.ssm.ingest_external(&owner, &key).await? {
                    Some(change) => {
                        tracing::info!(tenant = %owner, key = %key, revision = change.revision.0, "ingested an SSM change made outside the API");
                        Outcome::Ingested {
                            tenant: change.tenant,
                            revision: change.revision.0,
                            key: change.key,
                        }
                    }
                    None => Outcome::AlreadyRecorded {
                        key: key.as_str().to_owned(),
                    },
                })
            }
            Incoming::Other { detail_type } => Ok(Outcome::Ignored {
                reason: format!("detail-type '{detail_type}' is not handled"),
            }),
        }
    }

    /// `Refresh` on every instance in parallel, each within the deadline.
    pub async fn refresh_all(&self, changes: Vec<Change>) -> Result<Outcome, RefreshError> {
        let token = self.credential()?;
        let request = RefreshRequest {
            changes: changes.iter().map(push::change_to_pb).collect(),
        };
        let endpoints = self.endpoints().await?;
        let mut calls = tokio::task::JoinSet::new();
        for url in &endpoints {
            let (url, mut client, timeout) = (url.clone(), self.connection(url)?, self.timeout);
            let mut call = tonic::Request::new(request.clone());
            call.set_timeout(timeout);
            let bearer = format!("Bearer {token}").parse().map_err(|_| malformed_token())?;
            call.metadata_mut().insert("authorization", bearer);
            calls.spawn(async move {
                let result = tokio::time::timeout(timeout, client.refresh(call)).await;
                (url, result)
            });
        }
        let (mut accepted, mut duplicates, mut failures) = (0, 0, Vec::new());
        while let Some(joined) = calls.join_next().await {
            match joined {
                Ok((_, Ok(Ok(answer)))) => {
                    let answer = answer.into_inner();
                    accepted += answer.accepted;
                    duplicates += answer.duplicates;
                }
                Ok((url, Ok(Err(status)))) => failures.push(format!("{url}: {:?} {}", status.code(), status.message())),
                Ok((url, Err(_))) => failures.push(format!("{url}: no answer within {} ms", self.timeout.as_millis())),
                Err(e) => failures.push(format!("a refresh task failed: {e}")),
            }
        }
        if !failures.is_empty() {
            failures.sort();
            return Err(RefreshError::Instances {
                failed: failures.len(),
                total: endpoints.len(),
                details: failures.join("; "),
            });
        }
        Ok(Outcome::Refreshed {
            instances: endpoints.len(),
            accepted,
            duplicates,
        })
    }
}

fn malformed_token() -> RefreshError {
    RefreshError::Auth(tenant_auth::AuthError::Config("the service token is not ASCII".into()))
}

/// What an EventBridge event asks of the refresher, decoded without touching any backend.
#[derive(Debug)]
pub enum Incoming<'a> {
    /// A `ConfigChanged` event of the change feed.
    Changed(Change),
    /// A `Parameter Store Change` event: a parameter edited outside the API.
    ParameterStore { name: &'a str },
    /// Any other detail-type (ignored).
    Other { detail_type: &'a str },
}

/// Decodes an event's detail by its detail-type; a malformed detail is a typed error
/// naming the detail-type (the fuzz target `eventbridge_event` drives this).
pub fn decode(event: &EventBridgeEvent<Value>) -> Result<Incoming<'_>, RefreshError> {
    let malformed = |reason: String| RefreshError::Malformed {
        detail_type: event.detail_type.clone(),
        reason,
    };
    match event.detail_type.as_str() {
        CONFIG_CHANGED => Change::deserialize(&event.detail)
            .map(Incoming::Changed)
            .map_err(|e| malformed(e.to_string())),
        PARAMETER_STORE_CHANGE => event
            .detail
            .get("name")
            .and_then(Value::as_str)
            .map(|name| Incoming::ParameterStore { name })
            .ok_or_else(|| malformed("no 'name'".into())),
        other => Ok(Incoming::Other { detail_type: other }),
    }
}
