//! Driving one operation: a closed loop (a fixed number of clients, each sending its next
//! request when the previous one is answered) or an open loop (requests at a fixed rate,
//! whether or not the earlier ones were answered). Latencies go into an HdrHistogram.
//!
//! The open loop measures each request from the moment it was *due*, not from when a busy
//! client got round to sending it, so a stalled server shows as latency instead of as a
//! quietly lower rate (the "coordinated omission" a closed loop hides).

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hdrhistogram::Histogram;

use crate::BenchError;

/// How a call ended, when the server answered as it should.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered; its latency is recorded.
    Done,
    /// Refused by a rate limit (HTTP 429, gRPC `RESOURCE_EXHAUSTED`); counted, not timed.
    Refused,
}

/// One kind of request against one system.
#[async_trait]
pub trait Op: Send + Sync {
    /// One call by client `worker` (0-based, below the run's concurrency).
    async fn call(&self, worker: usize) -> Result<Outcome, BenchError>;
}

/// Closed or open loop.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// `concurrency` clients, back to back.
    Closed { concurrency: usize },
    /// `rate` requests a second spread over `concurrency` clients; a client that falls
    /// behind sends late, and the lateness counts as latency.
    Open { rate: f64, concurrency: usize },
}

impl Mode {
    pub fn concurrency(&self) -> usize {
        match *self {
            Mode::Closed { concurrency } | Mode::Open { concurrency, .. } => concurrency.max(1),
        }
    }
}

/// What a run saw.
#[derive(Debug, Clone)]
pub struct Run {
    pub done: u64,
    pub refused: u64,
    pub errors: u64,
    /// The first error's text, to say why a run went wrong.
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Latency of answered calls, in nanoseconds.
    pub latency: Histogram<u64>,
}

/// The slowest latency a histogram holds (longer ones are clamped to it).
const MAX_LATENCY_NS: u64 = 60_000_000_000;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

/// The latency at `quantile` of a histogram of nanoseconds, in milliseconds.
pub fn ms_at(latency: &Histogram<u64>, quantile: f64) -> f64 {
    latency.value_at_quantile(quantile) as f64 / 1e6
}

impl Run {
    fn empty() -> Run {
        Run {
            done: 0,
            refused: 0,
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            latency: histogram(),
        }
    }

    /// Answered calls per second.
    pub fn per_sec(&self) -> f64 {
        if self.elapsed.is_zero() {
            return 0.0;
        }
        self.done as f64 / self.elapsed.as_secs_f64()
    }

    /// The latency at `quantile` (0.99 for p99), in milliseconds.
    pub fn ms(&self, quantile: f64) -> f64 {
        ms_at(&self.latency, quantile)
    }

    /// `"<label>: N errors (first: …)"` when any call failed: the note a report carries.
    pub fn problems(&self, label: &str) -> Option<String> {
        (self.errors > 0).then(|| {
            format!(
                "{label}: {} errors (first: {})",
                self.errors,
                self.first_error.as_deref().unwrap_or("-")
            )
        })
    }

    /// Adds another run of the same operation (a later round): counts, time and latencies.
    pub fn merge(&mut self, other: &Run) {
        self.done += other.done;
        self.refused += other.refused;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        self.elapsed += other.elapsed;
        // Both come from `histogram()`: same bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
    }

    fn record(&mut self, result: Result<Outcome, BenchError>, latency: Duration) {
        match result {
            Ok(Outcome::Done) => {
                self.done += 1;
                self.latency
                    .saturating_record(latency.as_nanos().min(u128::from(MAX_LATENCY_NS)) as u64);
            }
            Ok(Outcome::Refused) => self.refused += 1,
            Err(e) => {
                self.errors += 1;
                if self.first_error.is_none() {
                    self.first_error = Some(e.to_string());
                }
            }
        }
    }
}

/// Runs `op` in `mode` for `duration`.
pub async fn run(op: Arc<dyn Op>, mode: Mode, duration: Duration) -> Run {
    let concurrency = mode.concurrency();
    let started = Instant::now();
    let until = started + duration;
    let clients: Vec<_> = (0..concurrency)
        .map(|worker| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut run = Run::empty();
                match mode {
                    Mode::Closed { .. } => {
                        while Instant::now() < until {
                            let sent = Instant::now();
                            let result = op.call(worker).await;
                            run.record(result, sent.elapsed());
                        }
                    }
                    Mode::Open { rate, .. } => {
                        let every = Duration::from_secs_f64(concurrency as f64 / rate.max(f64::MIN_POSITIVE));
                        // Clients start staggered, so the requests are spread evenly.
                        let mut due = started + every.mul_f64(worker as f64 / concurrency as f64);
                        while due < until {
                            tokio::time::sleep_until(due.into()).await;
                            let result = op.call(worker).await;
                            run.record(result, due.elapsed());
                            due += every;
                        }
                    }
                }
                run
            })
        })
        .collect();
    let mut total = Run::empty();
    for client in clients {
        match client.await {
            Ok(run) => total.merge(&Run {
                elapsed: Duration::ZERO,
                ..run
            }),
            Err(e) => total.record(Err(BenchError::Client(e.to_string())), Duration::ZERO),
        }
    }
    total.elapsed = started.elapsed();
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Answers after `delay`; every `refuse_every`-th call is refused, every `fail_every`-th
    /// fails.
    struct Sleepy {
        delay: Duration,
        calls: AtomicU64,
        refuse_every: u64,
        fail_every: u64,
    }

    #[async_trait]
    impl Op for Sleepy {
        async fn call(&self, _worker: usize) -> Result<Outcome, BenchError> {
            let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
            tokio::time::sleep(self.delay).await;
            if n.is_multiple_of(self.fail_every) {
                return Err(BenchError::Unexpected("boom".into()));
            }
            Ok(if n.is_multiple_of(self.refuse_every) {
                Outcome::Refused
            } else {
                Outcome::Done
            })
        }
    }

    fn sleepy(delay_ms: u64) -> Arc<Sleepy> {
        Arc::new(Sleepy {
            delay: Duration::from_millis(delay_ms),
            calls: AtomicU64::new(0),
            refuse_every: 5,
            fail_every: 7,
        })
    }

    #[tokio::test]
    async fn a_closed_loop_counts_every_outcome_and_times_the_answered_calls() {
        let op = sleepy(2);
        let run = run(op.clone(), Mode::Closed { concurrency: 4 }, Duration::from_millis(300)).await;
        let calls = op.calls.load(Ordering::Relaxed);
        assert_eq!(run.done + run.refused + run.errors, calls);
        assert!(run.errors > 0 && run.refused > 0, "{run:?}");
        assert_eq!(run.first_error.as_deref(), Some("unexpected answer: boom"));
        assert_eq!(run.latency.len(), run.done);
        assert!(run.ms(0.5) >= 2.0, "every call sleeps 2 ms: p50 {}", run.ms(0.5));
    }

    #[tokio::test]
    async fn an_open_loop_holds_its_rate_and_counts_lateness_as_latency() {
        // 200/s for 0.5 s over 2 clients: ~100 calls, whatever each takes.
        let fast = run(
            sleepy(0),
            Mode::Open {
                rate: 200.0,
                concurrency: 2,
            },
            Duration::from_millis(500),
        )
        .await;
        let calls = fast.done + fast.refused + fast.errors;
        assert!((90..=101).contains(&calls), "{calls} calls");
        // A server slower than the rate: each client is due every 10 ms but a call takes
        // 30 ms, so the queue grows and the latency with it, far beyond the 30 ms a closed
        // loop would report.
        let slow = run(
            sleepy(30),
            Mode::Open {
                rate: 200.0,
                concurrency: 2,
            },
            Duration::from_millis(600),
        )
        .await;
        assert!(slow.ms(0.99) > 100.0, "p99 {} ms", slow.ms(0.99));
    }

    #[test]
    fn merged_rounds_add_counts_time_and_latencies() {
        let mut a = Run::empty();
        a.record(Ok(Outcome::Done), Duration::from_millis(1));
        a.elapsed = Duration::from_secs(1);
        let mut b = Run::empty();
        b.record(Ok(Outcome::Done), Duration::from_millis(3));
        b.record(Ok(Outcome::Refused), Duration::ZERO);
        b.elapsed = Duration::from_secs(1);
        a.merge(&b);
        assert_eq!((a.done, a.refused, a.latency.len()), (2, 1, 2));
        assert!((a.per_sec() - 1.0).abs() < 1e-9);
        assert!((a.ms(1.0) - 3.0).abs() < 0.01);
    }
}
