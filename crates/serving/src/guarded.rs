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
/// With [`Guarded::coalescing_writes`], a write that closely follows a flush waits until
/// the runtime has run the tasks already ready (see [`WriteBurst`]), so the frames that many
/// HTTP/2 streams of this connection produce at once leave in a few `writev` calls, not one
/// each.
pub struct Guarded {
    io: TcpStream,
    idle_timeout: Duration,
    last_activity: Instant,
    timer: Pin<Box<Sleep>>,
    burst: Option<WriteBurst>,
    _slot: OwnedSemaphorePermit,
}

/// Where a coalescing connection is between its writes.
///
/// Why: hyper runs every HTTP/2 stream as its own task, and each stream that queues a frame
/// wakes the connection's task, which Tokio then runs next (its LIFO slot), before the other
/// streams woken by the same change. One change to 10,000 watchers thus cost about 10,000
/// `writev` calls and TCP segments, a third of the server's CPU in the fan-out
/// (docs/BENCHMARKS.md). So after each flush that wrote something, the connection gathers:
/// its next write waits until the scheduler has run the tasks that were ready (until it
/// next polls its I/O driver: at once when it runs out of work, after at most its event
/// interval, 61 task polls, when busy), and then carries every frame they queued. A write
/// after a quiet spell goes out at once: a lone answer or event waits for nothing (deferring
/// every first write cost a unary call ~20 % more time on an idle server).
enum WriteBurst {
    /// Nothing written since the last gathering ended: the next write goes at once.
    Open,
    /// Something was written; set to gather after the flush.
    Written,
    /// Writes wait until the scheduler wakes this.
    Gathering(Arc<Deferral>),
}

/// A wake-up handed to the scheduler's deferred list ([`tokio::task::yield_now`]); it
/// wakes the connection only if a write waited meanwhile.
struct Deferral {
    over: AtomicBool,
    connection: Mutex<Option<Waker>>,
}

impl Deferral {
    /// Hands a wake-up to the current scheduler's deferred list.
    fn start() -> Arc<Self> {
        let deferral = Arc::new(Deferral {
            over: AtomicBool::new(false),
            connection: Mutex::new(None),
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
        self.burst = Some(WriteBurst::Open);
        self
    }

    /// `Pending` while the connection gathers frames; `Ready` once a write may go.
    fn poll_burst(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(WriteBurst::Gathering(deferral)) = &self.burst {
            std::task::ready!(deferral.poll_over(cx));
            self.burst = Some(WriteBurst::Open);
        }
        Poll::Ready(())
    }

    /// Bookkeeping after a write: activity for the idle check, and gathering after the
    /// next flush.
    fn after_write(&mut self, written: &Poll<io::Result<usize>>) {
        if matches!(written, Poll::Ready(Ok(n)) if *n > 0) {
            self.moved();
            if let Some(burst @ WriteBurst::Open) = &mut self.burst {
                *burst = WriteBurst::Written;
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
        self.after_write(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(self.poll_burst(cx));
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.after_write(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = std::task::ready!(Pin::new(&mut self.io).poll_flush(cx));
        if let Some(burst @ WriteBurst::Written) = &mut self.burst {
            *burst = WriteBurst::Gathering(Deferral::start());
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

    /// Two writes in a row, with a task made ready before them: the order in which the
    /// writes and the task happen.
    async fn writes_and_a_ready_task(conn: Guarded) -> Vec<&'static str> {
        let mut conn = conn;
        let order = Arc::new(StdMutex::new(Vec::new()));
        let task_order = order.clone();
        let task = tokio::spawn(async move { task_order.lock().unwrap().push("ready task") });
        for written in ["first written", "second written"] {
            conn.write_all(written.as_bytes()).await.unwrap();
            conn.flush().await.unwrap();
            order.lock().unwrap().push(written);
        }
        task.await.unwrap();
        let order = order.lock().unwrap().clone();
        order
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_coalescing_connection_writes_at_once_then_lets_ready_tasks_queue_first() {
        let (conn, mut client) = pair().await;
        assert_eq!(
            writes_and_a_ready_task(conn.coalescing_writes()).await,
            ["first written", "ready task", "second written"]
        );
        let mut got = [0u8; 27];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"first writtensecond written");

        // Without coalescing both writes go out before the ready task runs.
        let (conn, _client) = pair().await;
        assert_eq!(
            writes_and_a_ready_task(conn).await,
            ["first written", "second written", "ready task"]
        );
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
