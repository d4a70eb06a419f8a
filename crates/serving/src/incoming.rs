//! The accept loop: a connection cap, and a backoff instead of a spin when accepting fails.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};
use tokio_stream::Stream;

use crate::{ConnLimits, Guarded};

/// The first and the longest pause after `accept` failed for want of resources.
const BACKOFF_FIRST: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Accepted connections, as a stream (what tonic's `serve_with_incoming` takes). A task
/// owns the listener and stops, closing it, when this is dropped.
pub struct Incoming {
    accepted: mpsc::Receiver<Guarded>,
    coalesce_writes: bool,
}

impl Incoming {
    /// Starts accepting on `listener` within `limits`.
    pub fn new(listener: TcpListener, limits: &ConnLimits) -> Self {
        let (tx, accepted) = mpsc::channel(1);
        let slots = Arc::new(Semaphore::new(limits.max_connections));
        tokio::spawn(accept_loop(listener, slots, limits.idle_timeout, tx));
        Incoming {
            accepted,
            coalesce_writes: false,
        }
    }

    /// Every connection writes its streams' frames in bursts ([`Guarded::coalescing_writes`]).
    pub fn coalescing_writes(mut self) -> Self {
        self.coalesce_writes = true;
        self
    }

    /// The next connection; `None` once the accept loop stopped.
    pub async fn next(&mut self) -> Option<Guarded> {
        let accepted = self.accepted.recv().await;
        accepted.map(|conn| self.prepared(conn))
    }

    fn prepared(&self, conn: Guarded) -> Guarded {
        if self.coalesce_writes {
            conn.coalescing_writes()
        } else {
            conn
        }
    }
}

impl Stream for Incoming {
    type Item = Result<Guarded, std::convert::Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.accepted
            .poll_recv(cx)
            .map(|next| next.map(|conn| Ok(self.prepared(conn))))
    }
}

async fn accept_loop(listener: TcpListener, slots: Arc<Semaphore>, idle: Duration, tx: mpsc::Sender<Guarded>) {
    let mut backoff: Option<Duration> = None;
    let mut at_cap = false;
    loop {
        // A slot first: at the cap, new clients wait in the backlog instead of costing a
        // descriptor each.
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                at_cap = false;
                slot
            }
            Err(_) => {
                if !at_cap {
                    tracing::warn!("connection limit reached; new connections wait in the backlog");
                    at_cap = true;
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => return,
                    },
                    _ = tx.closed() => return,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = tx.closed() => return,
        };
        match accepted {
            Ok((socket, _peer)) => {
                backoff = None;
                // Small answers must not wait for the peer's delayed ACK (~40 ms a call).
                let _ = socket.set_nodelay(true);
                if tx.send(Guarded::new(socket, idle, slot)).await.is_err() {
                    return;
                }
            }
            // The peer gave up before we accepted: nothing to wait for.
            Err(e) if is_peer_gone(&e) => {}
            Err(e) => {
                let pause = backoff.map_or(BACKOFF_FIRST, |last| (last * 2).min(BACKOFF_MAX));
                if backoff.is_none() {
                    tracing::warn!(error = %e, "accept failed; backing off until it succeeds again");
                }
                backoff = Some(pause);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = tx.closed() => return,
                }
            }
        }
    }
}

fn is_peer_gone(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionRefused
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn listening(limits: ConnLimits) -> (std::net::SocketAddr, Incoming) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (addr, Incoming::new(listener, &limits))
    }

    #[tokio::test]
    async fn holds_at_most_max_connections_and_frees_a_slot_on_close() {
        let (addr, mut incoming) = listening(ConnLimits {
            max_connections: 2,
            ..ConnLimits::default()
        })
        .await;
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let _c = TcpStream::connect(addr).await.unwrap(); // completes in the kernel's backlog
        let first = incoming.next().await.unwrap();
        let _second = incoming.next().await.unwrap();
        let third = tokio::time::timeout(Duration::from_millis(300), incoming.next()).await;
        assert!(third.is_err(), "a third connection was accepted past the cap of two");
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), incoming.next()).await;
        assert!(matches!(third, Ok(Some(_))), "the freed slot was not reused");
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_and_an_active_one_is_not() {
        let idle_timeout = Duration::from_millis(400);
        let (addr, mut incoming) = listening(ConnLimits {
            idle_timeout,
            ..ConnLimits::default()
        })
        .await;
        let mut idle_client = TcpStream::connect(addr).await.unwrap();
        let mut idle = incoming.next().await.unwrap();
        let mut buf = [0u8; 8];
        let err = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(idle);
        assert_eq!(
            idle_client.read(&mut buf).await.unwrap(),
            0,
            "the client did not see the close"
        );

        // A peer sending a byte every 100 ms outlives several idle timeouts.
        let mut active_client = TcpStream::connect(addr).await.unwrap();
        let mut active = incoming.next().await.unwrap();
        let talker = tokio::spawn(async move {
            for _ in 0..15 {
                active_client.write_all(b"x").await.unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let mut received = 0;
        while received < 15 {
            received += active.read(&mut buf).await.expect("an active connection timed out");
        }
        talker.await.unwrap();
    }
}
