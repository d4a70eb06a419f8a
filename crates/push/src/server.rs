//! Hosting: the watch service with grpc.health.v1 and server reflection, on a listener.

use std::future::Future;
use std::net::SocketAddr;

use serving::{ConnLimits, Incoming};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::transport::Server;

use crate::pb;
use crate::PushService;

/// Serves `tagcfg.v2.ConfigWatch`, `tagcfg.v2.ConfigRefresh`, grpc.health.v1 and server
/// reflection (v1 and v1alpha: many tools still speak only v1alpha) until `shutdown`
/// completes, accepting through [`serving::Incoming`] (connection cap, idle timeout,
/// `TCP_NODELAY`, backoff when descriptors run out) with the HTTP/2 limits and the unary
/// request deadline of `limits`.
pub async fn serve(
    listener: TcpListener,
    service: PushService,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::config_watch_server::ConfigWatchServer<PushService>>()
        .await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().expect("the embedded descriptor sets are valid");
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .expect("the embedded descriptor sets are valid");
    // A change reaches many streams of a connection at once: send their frames together.
    let incoming = Incoming::new(listener, &limits).coalescing_writes();
    Server::builder()
        .http2_keepalive_interval(Some(serving::H2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(serving::H2_KEEPALIVE_TIMEOUT))
        .max_concurrent_streams(limits.h2_max_concurrent_streams)
        .http2_max_header_list_size(limits.h2_max_header_list_bytes)
        .timeout(limits.request_timeout)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(pb::config_refresh_server::ConfigRefreshServer::new(service.clone()))
        .add_service(pb::config_watch_server::ConfigWatchServer::new(service))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}

/// A watch server running in the background.
pub struct PushServer {
    pub addr: SocketAddr,
    hub: std::sync::Arc<crate::Hub>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl PushServer {
    /// Binds `addr` (port 0 for a free one) and starts serving within `limits`.
    pub async fn start(addr: SocketAddr, service: PushService, limits: ConnLimits) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let hub = service.hub().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, service, limits, async {
            let _ = stopped.await;
        }));
        Ok(PushServer { addr, hub, stop, task })
    }

    /// Stops accepting, ends every Watch stream (with a resync) and waits for the
    /// connections to finish, at most a few seconds.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        let _ = self.stop.send(());
        self.hub.close_all();
        let finished = tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.task).await;
        let Ok(joined) = finished else {
            self.task.abort();
            return Ok(());
        };
        match joined {
            Ok(result) => result.map_err(std::io::Error::other),
            Err(e) => Err(std::io::Error::other(e)),
        }
    }
}
