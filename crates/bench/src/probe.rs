//! The floor: what each server answers without touching its data. A real read is measured
//! against these in the same run.

use async_trait::async_trait;
use tonic::transport::Channel;
use tonic_health::pb::{health_client::HealthClient, HealthCheckRequest};

use crate::load::{Op, Outcome};
use crate::BenchError;

/// `GET url`, expecting 200 (tagcfg `/healthz`, etcd `/version`).
pub struct HttpGet {
    pub http: reqwest::Client,
    pub url: String,
}

#[async_trait]
impl Op for HttpGet {
    async fn call(&self, _worker: usize) -> Result<Outcome, BenchError> {
        let response = self.http.get(&self.url).send().await?;
        expect_ok(response).await
    }
}

/// Reads the whole body; 200 is `Done`, 429 `Refused`, anything else an error.
pub async fn expect_ok(response: reqwest::Response) -> Result<Outcome, BenchError> {
    let status = response.status();
    let body = response.bytes().await?;
    match status.as_u16() {
        200 | 201 => Ok(Outcome::Done),
        429 => Ok(Outcome::Refused),
        other => Err(BenchError::Unexpected(format!(
            "HTTP {other}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ))),
    }
}

/// `grpc.health.v1.Health/Check` of the whole server, one channel per client.
pub struct GrpcHealth {
    pub clients: Vec<HealthClient<Channel>>,
}

impl GrpcHealth {
    pub fn new(channels: &[Channel]) -> Self {
        GrpcHealth {
            clients: channels.iter().cloned().map(HealthClient::new).collect(),
        }
    }
}

#[async_trait]
impl Op for GrpcHealth {
    async fn call(&self, worker: usize) -> Result<Outcome, BenchError> {
        let mut client = self.clients[worker % self.clients.len()].clone();
        let status = client
            .check(HealthCheckRequest { service: String::new() })
            .await?
            .into_inner()
            .status;
        // 1: SERVING.
        if status == 1 {
            Ok(Outcome::Done)
        } else {
            Err(BenchError::Unexpected(format!("health status {status}")))
        }
    }
}

/// `n` gRPC channels to `endpoint` (`http://host:port`), connected now.
pub async fn channels(endpoint: &str, n: usize) -> Result<Vec<Channel>, BenchError> {
    let mut channels = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())
            .map_err(|e| BenchError::Transport(e.to_string()))?
            .tcp_nodelay(true)
            .connect()
            .await
            .map_err(|e| BenchError::Transport(format!("{endpoint}: {e}")))?;
        channels.push(channel);
    }
    Ok(channels)
}
