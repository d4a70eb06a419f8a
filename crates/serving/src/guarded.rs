//! An accepted socket that holds a connection slot and times out when idle.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};

/// A connection of [`crate::Incoming`]. Dropping it closes the socket and frees its slot.
///
/// The idle check runs in `poll_read`: both HTTP/1.1 (between requests) and HTTP/2 (always)
/// keep a read pending on a connection, so an idle one is polled when its timer fires.
/// The timer is re-armed lazily, only when it fires, so a busy connection costs one clock
/// read per I/O call and no timer-wheel work.
///
/// With [`Guarded::coalescing_writes`], the first write of each burst waits until the
/// runtime has run the tasks already ready (see [`WriteBurst`]), so the frames that many
/// HTTP/2 streams of this connection produce at once leave in one `writev`.
pub struct Guarded {
    io: TcpStream,
    idle_timeout: Duration,
    last_activity: Instant,
    timer: Pin<Box<Sleep>>,
    burst: Option<WriteBurst>,
    _slot: OwnedSemaphorePermit,
}

/// Where a coalescing connection is in its current burst of writes.
///
/// Why: hyper runs every HTTP/2 stream as its own task, and each stream that queues a frame
/// wakes the connection's task, which Tokio then runs next (its LIFO slot), before the other
/// streams woken by the same change. One change to 10,000 watchers thus cost about 10,000
/// `writev` calls and TCP segments, a third of the server's CPU in the fan-out
/// (docs/BENCHMARKS.md). Deferring the first write of a burst until the scheduler has run
/// the tasks already ready (up to its event interval, or until it would park) lets the
/// connection write all their frames at once. A deferral during which the connection was
/// woken again (more of its streams queued frames) is followed by another, at most
/// [`MAX_DEFERRALS`] in all. An idle server adds one poll of its I/O driver to a lone write.
enum WriteBurst {
    /// The next write starts a burst: defer it.
    Idle,
    /// Deferred (the how-manieth time); writes go through once the scheduler woke this.
    Deferred(Arc<Deferral>, u32),
    /// This burst is being written; back to `Idle` at the next completed flush.
    Writing,
}

/// The most deferrals of one burst's first write. Each lasts until the scheduler polls its
/// I/O driver: at most its event interval (61 task polls by default) on a busy worker, so
/// this bounds what coalescing adds to a write's latency under load to about 250 task polls.
const MAX_DEFERRALS: u32 = 4;

/// A wake-up handed to the scheduler's deferred list ([`tokio::task::yield_now`]). The
/// connection's task is also woken by its streams meanwhile; only this says the deferral
/// is over.
struct Deferral {
    over: AtomicBool,
    /// Whether the connection was polled while deferred (its streams had frames to send).
    busy: AtomicBool,
    connection: Mutex<Option<Waker>>,
}

impl Deferral {
    /// Hands a wake-up to the scheduler's deferred list; `cx`'s task is woken with it.
    fn start(cx: &Context<'_>) -> Arc<Self> {
        let deferral = Arc::new(Deferral {
            over: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            connection: Mutex::new(Some(cx.waker().clone())),
        });
        let waker = Waker::from(deferral.clone());
        let mut yielding = std::pin::pin!(tokio::task::yield_now());
        // The first poll only defers `waker`; outside a runtime it wakes it at once.
        let _ = yielding.as_mut().poll(&mut Context::from_waker(&waker));
        deferral
    }

    fn poll_over(&self, cx: &Context<'_>) -> Poll<()> {
        if self.over.load(Ordering::Acquire) {
            return Poll::Ready(());
        }
        self.busy.store(true, Ordering::Relaxed);
        *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = Some(cx.waker().clone());
        // Woken between the check and the registration: do not miss it.
        if self.over.load(Ordering::Acquire) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Wake for Deferral {
    fn wake(self: Arc<Self>) {
        self.over.store(true, Ordering::Release);
        let waker = self.connection.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Guarded {
    pub(crate) fn new(io: TcpStream, idle_timeout: Duration, slot: OwnedSemaphorePermit) -> Self {
        let now = Instant::now();
        Guarded {
            io,
            idle_timeout,
            last_activity: now,
            timer: Box::pin(tokio::time::sleep_until(now + idle_timeout)),
            burst: None,
            _slot: slot,
        }
    }

    /// Lets the frames of a connection's many streams go out together (see [`WriteBurst`]):
    /// for HTTP/2 servers, whose streams are tasks of their own.
    pub fn coalescing_writes(mut self) -> Self {
        self.burst = Some(WriteBurst::Idle);
        self
    }

    /// `Pending` while the first write of a burst is deferred; `Ready` once writes may go.
    fn poll_burst(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        loop {
            match &mut self.burst {
                None | Some(WriteBurst::Writing) => return Poll::Ready(()),
                Some(WriteBurst::Idle) => {
                    self.burst = Some(WriteBurst::Deferred(Deferral::start(cx), 1));
                    return Poll::Pending;
                }
                Some(WriteBurst::Deferred(deferral, count)) => {
                    std::task::ready!(deferral.poll_over(cx));
                    if deferral.busy.load(Ordering::Relaxed) && *count < MAX_DEFERRALS {
                        self.burst = Some(WriteBurst::Deferred(Deferral::start(cx), *count + 1));
                        return Poll::Pending;
                    }
                    self.burst = Some(WriteBurst::Writing);
                }
            }
        }
    }

    /// `Err(TimedOut)` once nothing moved for `idle_timeout`; otherwise registers the
    /// waker for the next deadline.
    fn check_idle(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let deadline = self.last_activity + self.idle_timeout;
            if Instant::now() >= deadline {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle"));
            }
            self.timer.as_mut().reset(deadline);
        }
        Ok(())
    }

    fn moved(&mut self) {
        self.last_activity = Instant::now();
    }
}

impl AsyncRead for Guarded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.check_idle(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_burst(cx));
        let written = Pin::new(&mut self.io).poll_write(cx, data);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_burst(cx));
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = std::task::ready!(Pin::new(&mut self.io).poll_flush(cx));
        if let Some(burst @ WriteBurst::Writing) = &mut self.burst {
            *burst = WriteBurst::Idle;
        }
        Poll::Ready(flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl tonic::transport::server::Connected for Guarded {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::Semaphore;

    /// A connected pair: the accepted side as a `Guarded`, and the client's socket.
    async fn pair() -> (Guarded, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (socket, _) = listener.accept().await.unwrap();
        let slot = Arc::new(Semaphore::new(1)).try_acquire_owned().unwrap();
        (Guarded::new(socket, Duration::from_secs(60), slot), client)
    }

    /// Whether a task made ready just before a write runs before the write goes out.
    async fn ready_task_runs_first(conn: Guarded) -> Vec<&'static str> {
        let mut conn = conn;
        let order = Arc::new(StdMutex::new(Vec::new()));
        let task_order = order.clone();
        let task = tokio::spawn(async move { task_order.lock().unwrap().push("ready task") });
        conn.write_all(b"frame").await.unwrap();
        conn.flush().await.unwrap();
        order.lock().unwrap().push("written");
        task.await.unwrap();
        let order = order.lock().unwrap().clone();
        order
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_coalescing_connection_lets_ready_tasks_queue_before_it_writes() {
        let (conn, mut client) = pair().await;
        assert_eq!(
            ready_task_runs_first(conn.coalescing_writes()).await,
            ["ready task", "written"]
        );
        let mut got = [0u8; 5];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"frame");

        // Without coalescing the write goes out at once, before the ready task.
        let (conn, _client) = pair().await;
        assert_eq!(ready_task_runs_first(conn).await, ["written", "ready task"]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_burst_is_written_in_order_on_a_busy_runtime() {
        let (conn, mut client) = pair().await;
        let mut conn = conn.coalescing_writes();
        // Tasks that keep the workers busy while the connection writes many bursts.
        let busy: Vec<_> = (0..8)
            .map(|_| {
                tokio::spawn(async {
                    for _ in 0..2_000 {
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        let writer = tokio::spawn(async move {
            for i in 0..200u32 {
                conn.write_all(&i.to_be_bytes()).await.unwrap();
                conn.flush().await.unwrap();
            }
        });
        let mut got = vec![0u8; 800];
        client.read_exact(&mut got).await.unwrap();
        let numbers: Vec<u32> = got
            .chunks(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(numbers, (0..200).collect::<Vec<_>>());
        writer.await.unwrap();
        for task in busy {
            task.await.unwrap();
        }
    }
}
