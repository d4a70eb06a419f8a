//! The bounded queue from the hub to one watch stream.
//!
//! One sender (the hub), one receiver (the stream's [`Pump`](crate::service)), a few
//! deliveries at most: a `VecDeque` behind a mutex, with the receiver's waker beside it.
//! `tokio::sync::mpsc` does the same job for any number of senders, with a lock-free block
//! list and a semaphore, each on its own cache lines; for a change reaching 10,000 streams
//! it touched ~5 cold cache lines per stream on each side and was ~12% of the fan-out's CPU
//! (docs/BENCHMARKS.md, "Profile of the fan-out"). This one touches one or two, and a stream
//! that is woken once per burst of deliveries, not once per delivery.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

/// A queue holding at most `capacity` (at least 1) values.
pub fn mailbox<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            capacity: capacity.max(1),
            waker: None,
            sender_gone: false,
            receiver_gone: false,
        }),
    });
    (Sender(shared.clone()), Receiver(shared))
}

struct Shared<T> {
    state: Mutex<State<T>>,
}

struct State<T> {
    queue: VecDeque<T>,
    capacity: usize,
    /// The receiver's waker while it waits; taken by the first value that arrives.
    waker: Option<Waker>,
    sender_gone: bool,
    receiver_gone: bool,
}

impl<T> Shared<T> {
    /// Nothing here can panic mid-update, so a poisoned lock still holds a whole state.
    fn state(&self) -> MutexGuard<'_, State<T>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Why [`Sender::try_send`] gave the value back.
#[derive(Debug, PartialEq, Eq)]
pub enum TrySendError<T> {
    /// The receiver has `capacity` values it has not taken.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

/// The hub's end. Dropping it ends the receiver once it has taken what is queued.
pub struct Sender<T>(Arc<Shared<T>>);

impl<T> Sender<T> {
    /// Queues `value` without waiting, and wakes the receiver if it waits.
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let waker = {
            let mut state = self.0.state();
            if state.receiver_gone {
                return Err(TrySendError::Closed(value));
            }
            if state.queue.len() >= state.capacity {
                return Err(TrySendError::Full(value));
            }
            state.queue.push_back(value);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.0.state();
            state.sender_gone = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The stream's end.
pub struct Receiver<T>(Arc<Shared<T>>);

impl<T> Receiver<T> {
    /// The next value; `None` once the sender is gone and the queue is empty.
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.0.state();
        if let Some(value) = state.queue.pop_front() {
            return Poll::Ready(Some(value));
        }
        if state.sender_gone {
            return Poll::Ready(None);
        }
        if !state.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            state.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    pub fn is_empty(&self) -> bool {
        self.0.state().queue.is_empty()
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let queued = {
            let mut state = self.0.state();
            state.receiver_gone = true;
            std::mem::take(&mut state.queue)
        };
        // What was queued is dropped outside the lock.
        drop(queued);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    /// Counts its wake-ups.
    #[derive(Default)]
    struct Wakes(AtomicUsize);

    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counting() -> (Arc<Wakes>, Waker) {
        let wakes = Arc::new(Wakes::default());
        (wakes.clone(), Waker::from(wakes))
    }

    #[test]
    fn values_arrive_in_order_up_to_the_capacity_then_full() {
        let (tx, mut rx) = mailbox(2);
        assert_eq!(tx.try_send(1), Ok(()));
        assert_eq!(tx.try_send(2), Ok(()));
        assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
        let (_, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(1)));
        assert_eq!(tx.try_send(4), Ok(()));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(2)));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(4)));
        assert!(rx.is_empty());
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
    }

    #[test]
    fn a_waiting_receiver_is_woken_once_per_burst() {
        let (tx, mut rx) = mailbox(8);
        let (wakes, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(1)));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(2)));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        tx.try_send(3).unwrap();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn the_senders_end_is_seen_after_what_it_queued() {
        let (tx, mut rx) = mailbox(4);
        let (wakes, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        tx.try_send(1).unwrap();
        drop(tx);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(Some(1)));
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None));

        let (tx, mut rx) = mailbox::<u8>(4);
        assert_eq!(rx.poll_recv(&mut cx), Poll::Pending);
        drop(tx);
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            1,
            "the waiting receiver is woken by the end"
        );
        assert_eq!(rx.poll_recv(&mut cx), Poll::Ready(None));
    }

    #[test]
    fn a_gone_receiver_closes_the_mailbox_and_frees_what_was_queued() {
        let (tx, rx) = mailbox(4);
        let queued = Arc::new(());
        tx.try_send(queued.clone()).unwrap();
        drop(rx);
        assert_eq!(Arc::strong_count(&queued), 1);
        assert!(matches!(tx.try_send(queued.clone()), Err(TrySendError::Closed(_))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_receiver_on_another_thread_gets_every_value() {
        let (tx, mut rx) = mailbox(16);
        let sender = std::thread::spawn(move || {
            let mut sent = 0u32;
            while sent < 10_000 {
                match tx.try_send(sent) {
                    Ok(()) => sent += 1,
                    Err(TrySendError::Full(_)) => std::thread::yield_now(),
                    Err(TrySendError::Closed(_)) => panic!("the receiver went away"),
                }
            }
        });
        for expected in 0..10_000 {
            assert_eq!(std::future::poll_fn(|cx| rx.poll_recv(cx)).await, Some(expected));
        }
        assert_eq!(std::future::poll_fn(|cx| rx.poll_recv(cx)).await, None);
        sender.join().unwrap();
    }
}
