//! Hosting: the watch service with grpc.health.v1 and server reflection, on a listener.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Server;

use crate::pb;
use crate::WatchService;

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    service: WatchService,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::config_watch_server::ConfigWatchServer<WatchService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    Server::builder()
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(pb::config_watch_server::ConfigWatchServer::new(service))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
}

/// A watch server running in the background.
pub struct WatchServer {
    pub addr: SocketAddr,
    hub: std::sync::Arc<crate::Hub>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl WatchServer {
    /// Binds `addr` (port 0 for a free one) and starts serving.
    pub async fn start(addr: SocketAddr, service: WatchService) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let hub = service.hub().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, service, async {
            let _ = stopped.await;
        }));
        Ok(WatchServer { addr, hub, stop, task })
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
