//! etcd under test: one member on 127.0.0.1 with its data in a temporary directory, driven
//! through its native gRPC API (the `etcd-client` crate: `Range`, `Put`, `Txn`, `Watch`) and
//! its HTTP gateway (`POST /v3/kv/range`, JSON with base64 keys).

use std::path::Path;
use std::process::Command;

use async_trait::async_trait;
use base64::Engine;
use etcd_client::{Client, GetOptions, KvClient, Txn, TxnOp, WatchStream};

use crate::load::{Op, Outcome};
use crate::probe::expect_ok;
use crate::process::{free_port, wait_ready, Server};
use crate::BenchError;

/// A running etcd member.
pub struct Etcd {
    pub endpoint: String,
    pub server: Server,
}

impl Etcd {
    /// Starts `binary` as a single-member cluster. etcd's defaults stay (a WAL fsync per
    /// committed batch, as tagcfg's redb commits are durable); only logging is quieted.
    pub async fn start(binary: &Path, data_dir: &Path, http: &reqwest::Client) -> Result<Etcd, BenchError> {
        let (client_port, peer_port) = (free_port()?, free_port()?);
        let endpoint = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let mut command = Command::new(binary);
        command
            .args(["--name", "bench", "--data-dir"])
            .arg(data_dir)
            .args(["--listen-client-urls", &endpoint, "--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .arg("--initial-cluster")
            .arg(format!("bench={peer}"))
            .args(["--logger", "zap", "--log-level", "error"]);
        let mut server = Server::spawn("etcd", command)?;
        wait_ready(&mut server, http, &format!("{endpoint}/health")).await?;
        Ok(Etcd { endpoint, server })
    }

    /// One client on its own HTTP/2 connection (see [`client`]).
    pub async fn client(&self) -> Result<Client, BenchError> {
        client(&self.endpoint).await
    }

    /// `n` KV clients, each on its own connection.
    pub async fn kv_clients(&self, n: usize) -> Result<Vec<KvClient>, BenchError> {
        kv_clients(&self.endpoint, n).await
    }

    /// Writes every `(key, value)` in transactions of `per_txn` puts.
    pub async fn seed(&self, values: &[(String, String)], per_txn: usize) -> Result<(), BenchError> {
        let mut kv = self.client().await?.kv_client();
        for chunk in values.chunks(per_txn.max(1)) {
            let puts: Vec<TxnOp> = chunk
                .iter()
                .map(|(k, v)| TxnOp::put(k.as_str(), v.as_str(), None))
                .collect();
            kv.txn(Txn::new().and_then(puts)).await?;
        }
        Ok(())
    }

    /// The gateway's URL for `path` (`/v3/kv/range`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint)
    }
}

/// A client of the etcd at `endpoint` on its own HTTP/2 connection: a plain tonic channel,
/// as tagcfg's side gets (etcd-client's own `connect` puts a load-balancing layer in between).
pub async fn client(endpoint: &str) -> Result<Client, BenchError> {
    let channel = crate::probe::channels(endpoint, 1).await?.remove(0);
    Ok(Client::from_channel(etcd_client::Channel::Tonic(channel), None).await?)
}

/// `n` KV clients of the etcd at `endpoint`, each on its own connection.
pub async fn kv_clients(endpoint: &str, n: usize) -> Result<Vec<KvClient>, BenchError> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        clients.push(client(endpoint).await?.kv_client());
    }
    Ok(clients)
}

/// `Range` of one key, serializable (answered by the member from its own store) or
/// linearizable (confirmed through the raft leader first: etcd's default).
pub struct GrpcRange {
    pub clients: Vec<KvClient>,
    pub key: String,
    pub serializable: bool,
}

#[async_trait]
impl Op for GrpcRange {
    async fn call(&self, worker: usize) -> Result<Outcome, BenchError> {
        let mut kv = self.clients[worker % self.clients.len()].clone();
        let options = if self.serializable {
            GetOptions::new().with_serializable()
        } else {
            GetOptions::new()
        };
        let answer = kv.get(self.key.as_str(), Some(options)).await?;
        if answer.kvs().len() == 1 {
            Ok(Outcome::Done)
        } else {
            Err(BenchError::Unexpected(format!("{} keys", answer.kvs().len())))
        }
    }
}

/// The HTTP gateway's range of one key (`POST /v3/kv/range`).
pub struct GatewayRange {
    pub http: reqwest::Client,
    pub url: String,
    body: String,
}

impl GatewayRange {
    pub fn new(http: reqwest::Client, etcd: &Etcd, key: &str, serializable: bool) -> Self {
        Self::with_url(http, &etcd.endpoint, key, serializable)
    }

    /// The same against the etcd at `endpoint` (`http://host:port`).
    pub fn with_url(http: reqwest::Client, endpoint: &str, key: &str, serializable: bool) -> Self {
        let key = base64::engine::general_purpose::STANDARD.encode(key);
        GatewayRange {
            http,
            url: format!("{endpoint}/v3/kv/range"),
            body: format!("{{\"key\":\"{key}\",\"serializable\":{serializable}}}"),
        }
    }
}

#[async_trait]
impl Op for GatewayRange {
    async fn call(&self, _worker: usize) -> Result<Outcome, BenchError> {
        expect_ok(self.http.post(&self.url).body(self.body.clone()).send().await?).await
    }
}

/// A watch of `key` on its own stream of `client`'s connection, open once etcd confirmed it.
pub async fn watcher(client: &mut Client, key: &str) -> Result<WatchStream, BenchError> {
    let mut stream = client.watch(key, None).await?;
    match stream.message().await? {
        Some(answer) if answer.created() => Ok(stream),
        other => Err(BenchError::Unexpected(format!("first watch answer {other:?}"))),
    }
}

/// Waits for the stream's next answer carrying events.
pub async fn next_event(stream: &mut WatchStream) -> Result<(), BenchError> {
    loop {
        match stream.message().await? {
            Some(answer) if !answer.events().is_empty() => return Ok(()),
            Some(answer) if answer.canceled() => {
                return Err(BenchError::Unexpected(format!(
                    "watch canceled: {}",
                    answer.cancel_reason()
                )))
            }
            Some(_) => continue,
            None => return Err(BenchError::Unexpected("the watch stream ended".into())),
        }
    }
}
