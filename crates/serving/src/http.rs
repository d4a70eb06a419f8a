//! HTTP/1.1 over [`Incoming`]: what `axum::serve` does, plus the header-read timeout and
//! the connection limits.

use std::future::Future;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use crate::{ConnLimits, Incoming};

/// How long shutdown waits for in-flight requests before it drops their connections.
const DRAIN: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` completes, then finishes the requests in
/// flight (at most 10 s). HTTP/1.1 only: the API is plain request/answer; HTTP/2 is the
/// gRPC server's.
pub async fn serve_http(
    listener: TcpListener,
    limits: &ConnLimits,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send,
) {
    let mut incoming = Incoming::new(listener, limits);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let socket = tokio::select! {
            socket = incoming.next() => match socket {
                Some(socket) => socket,
                None => break,
            },
            _ = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(TokioIo::new(socket), service));
        tokio::spawn(async move {
            // A peer that vanished, timed out or sent garbage: its problem, not the server's.
            if let Err(e) = connection.await {
                tracing::debug!(error = ?e.to_string(), "connection ended");
            }
        });
    }
    // Stop accepting (the listener closes with `incoming`), then drain.
    drop(incoming);
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open {DRAIN:?} after shutdown; dropping them");
    }
}
