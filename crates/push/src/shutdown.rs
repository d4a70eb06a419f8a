//! How the servers learn to stop: Ctrl-C (SIGINT) at a terminal, SIGTERM from ECS, systemd
//! or a container runtime.

use std::future::Future;

/// Listens for the stop signals from now on and completes when one arrives. Call it before
/// announcing that the server is ready: a signal sent in between would otherwise meet the
/// default action and kill the process instead of stopping it gracefully. If a signal
/// cannot be listened for, that is logged and the other one still works.
pub fn stop_requested() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind: SignalKind, name: &'static str| match signal(kind) {
            Ok(stream) => Some(stream),
            Err(e) => {
                tracing::warn!(error = %e, signal = name, "cannot listen for the signal");
                None
            }
        };
        let (mut interrupt, mut terminate) = (
            listen(SignalKind::interrupt(), "SIGINT"),
            listen(SignalKind::terminate(), "SIGTERM"),
        );
        async move {
            tokio::select! {
                _ = received(interrupt.as_mut()) => {}
                _ = received(terminate.as_mut()) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    }
}

/// The next signal on `stream`; never, when it could not be listened for.
#[cfg(unix)]
async fn received(stream: Option<&mut tokio::signal::unix::Signal>) {
    match stream {
        Some(stream) => {
            stream.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
