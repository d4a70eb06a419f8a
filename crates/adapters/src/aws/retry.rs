//! Exponential backoff with equal jitter (half the cap, plus a random half) for retried AWS
//! calls: never a near-zero sleep, still spread out.

use std::time::Duration;

/// Sleeps before retry number `attempt` (0-based): a random time between half of and all
/// of 10 ms × 2^attempt, capped at 1 s.
pub async fn backoff(attempt: u32) {
    let cap_ms = (10u64 << attempt.min(7)).min(1000);
    tokio::time::sleep(Duration::from_millis(jitter(cap_ms))).await;
}

/// A cheap random number in `[cap/2, cap]`: retries only need to spread out, not be
/// unpredictable, so the clock's nanoseconds mixed through a hash will do.
fn jitter(cap_ms: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    cap_ms / 2 + h.finish() % (cap_ms / 2 + 1)
}
