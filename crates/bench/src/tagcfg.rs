//! tagcfg under test: a release `tagcfg serve` on 127.0.0.1 with its data in a temporary
//! directory, dev tokens minted from that directory's dev secret (one per tenant, as an
//! identity provider would issue them), and its reads, writes and watchers.

use std::path::Path;
use std::process::Command;

use async_trait::async_trait;
use push::pb::{config_watch_client::ConfigWatchClient, watch_event::Event, GetRequest, WatchEvent};
use tagged_routing::TenantId;
use tenant_auth::{dev, Scope};
use tonic::transport::Channel;
use tonic::Streaming;

use crate::load::{Op, Outcome};
use crate::probe::expect_ok;
use crate::process::{free_port, wait_ready, Server};
use crate::BenchError;

/// How long the benchmark's tokens live.
const TOKEN_TTL_SECS: u64 = 24 * 3600;

/// A running `tagcfg serve`.
pub struct Tagcfg {
    pub http_url: String,
    pub grpc_url: String,
    secret: Vec<u8>,
    pub server: Server,
}

impl Tagcfg {
    /// Starts `binary serve` (no demo data) with `env` added to its environment (limits).
    pub async fn start(
        binary: &Path,
        data_dir: &Path,
        env: &[(&str, String)],
        http: &reqwest::Client,
    ) -> Result<Tagcfg, BenchError> {
        let (port, grpc_port) = (free_port()?, free_port()?);
        let mut command = Command::new(binary);
        command
            .args(["serve", "--no-demo", "--addr"])
            .arg(format!("127.0.0.1:{port}"))
            .arg("--grpc-addr")
            .arg(format!("127.0.0.1:{grpc_port}"))
            .arg("--data-dir")
            .arg(data_dir)
            .env("TAGCFG_LOG", "error")
            .envs(env.iter().map(|(k, v)| (k, v)));
        let mut server = Server::spawn("tagcfg serve", command)?;
        let http_url = format!("http://127.0.0.1:{port}");
        wait_ready(&mut server, http, &format!("{http_url}/healthz")).await?;
        // The server wrote its dev secret before it answered.
        let secret = local_server::dev_secret(data_dir).map_err(|e| BenchError::Start {
            what: "tagcfg serve".into(),
            detail: format!("dev secret: {e}"),
        })?;
        Ok(Tagcfg {
            http_url,
            grpc_url: format!("http://127.0.0.1:{grpc_port}"),
            secret,
            server,
        })
    }

    /// A token of `tenant` that reads and writes its configuration.
    pub fn token(&self, tenant: &str) -> Result<String, BenchError> {
        token(&self.secret, tenant)
    }

    pub fn url(&self, key: &str) -> String {
        format!("{}/v1/config/{key}", self.http_url)
    }

    /// Writes every `(key, JSON value)` of one tenant, [`tagged_routing::MAX_SET_WRITES`] to a
    /// change set.
    pub async fn seed(
        &self,
        http: &reqwest::Client,
        token: &str,
        values: &[(String, String)],
    ) -> Result<(), BenchError> {
        for chunk in values.chunks(tagged_routing::MAX_SET_WRITES) {
            let writes: Vec<String> = chunk
                .iter()
                .map(|(key, value)| {
                    format!(
                        "{{\"key\":{},\"value\":{value}}}",
                        serde_json::Value::from(key.as_str())
                    )
                })
                .collect();
            let response = http
                .post(format!("{}/v1/config:batchWrite", self.http_url))
                .bearer_auth(token)
                .body(format!("{{\"writes\":[{}]}}", writes.join(",")))
                .send()
                .await?;
            expect_ok(response).await?;
        }
        Ok(())
    }
}

/// A token of `tenant`, signed with a server's dev `secret`, that reads and writes its
/// configuration.
pub fn token(secret: &[u8], tenant: &str) -> Result<String, BenchError> {
    let id = TenantId::parse(tenant).map_err(|e| BenchError::Unexpected(e.to_string()))?;
    dev::mint(secret, &id, &format!("{tenant}-bench"), &[Scope::Write], TOKEN_TTL_SECS)
        .map_err(|e| BenchError::Unexpected(e.to_string()))
}

/// `PUT /v1/config/{key}` of `value`.
pub async fn put(http: &reqwest::Client, url: &str, token: &str, value: String) -> Result<Outcome, BenchError> {
    expect_ok(http.put(url).bearer_auth(token).body(value).send().await?).await
}

/// An authenticated `GET /v1/config/{key}` of one key.
pub struct HttpRead {
    pub http: reqwest::Client,
    pub url: String,
    pub token: String,
}

#[async_trait]
impl Op for HttpRead {
    async fn call(&self, _worker: usize) -> Result<Outcome, BenchError> {
        expect_ok(self.http.get(&self.url).bearer_auth(&self.token).send().await?).await
    }
}

/// `tagcfg.v2.ConfigWatch/Get` of one key, one channel per client.
pub struct GrpcRead {
    pub clients: Vec<ConfigWatchClient<Channel>>,
    pub key: String,
    pub token: String,
}

impl GrpcRead {
    pub fn new(channels: &[Channel], key: &str, token: &str) -> Self {
        GrpcRead {
            clients: channels.iter().cloned().map(ConfigWatchClient::new).collect(),
            key: key.to_owned(),
            token: token.to_owned(),
        }
    }
}

#[async_trait]
impl Op for GrpcRead {
    async fn call(&self, worker: usize) -> Result<Outcome, BenchError> {
        let mut client = self.clients[worker % self.clients.len()].clone();
        let request = client::grpc::authorized(
            GetRequest {
                keys: vec![self.key.clone()],
            },
            &self.token,
        )?;
        match client.get(request).await {
            Ok(answer) if answer.get_ref().items.len() == 1 => Ok(Outcome::Done),
            Ok(answer) => Err(BenchError::Unexpected(format!(
                "{} items",
                answer.get_ref().items.len()
            ))),
            Err(status) if status.code() == tonic::Code::ResourceExhausted => Ok(Outcome::Refused),
            Err(status) => Err(status.into()),
        }
    }
}

/// A `Watch` stream of `token`'s tenant under `prefix`, open once its first event (the
/// cursor it starts from) has arrived.
pub async fn watcher(channel: Channel, token: &str, prefix: &str) -> Result<Streaming<WatchEvent>, BenchError> {
    let mut stream = client::grpc::watch(channel, token, vec![prefix.to_owned()], None).await?;
    match stream.message().await?.and_then(|e| e.event) {
        Some(Event::Updates(_) | Event::Heartbeat(_)) => Ok(stream),
        other => Err(BenchError::Unexpected(format!("first watch event {other:?}"))),
    }
}

/// Waits for the stream's next batch of updates (heartbeats skipped).
pub async fn next_update(stream: &mut Streaming<WatchEvent>) -> Result<(), BenchError> {
    loop {
        match stream.message().await?.and_then(|e| e.event) {
            Some(Event::Updates(batch)) if !batch.updates.is_empty() => return Ok(()),
            Some(Event::Updates(_) | Event::Heartbeat(_)) => continue,
            None => return Err(BenchError::Unexpected("the watch stream ended".into())),
            Some(other) => return Err(BenchError::Unexpected(format!("watch event {other:?}"))),
        }
    }
}
