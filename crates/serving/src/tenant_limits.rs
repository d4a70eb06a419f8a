//! Per-tenant rate limits: one token bucket per tenant for reads and one for writes (GCRA,
//! the `governor` crate), shared by the HTTP API and the gRPC `Get` of a server. A tenant
//! past its limit gets 429 with `Retry-After` (HTTP) or `RESOURCE_EXHAUSTED` (gRPC); the
//! buckets of the others are untouched, so one tenant flooding cannot spend their share.
//! Operators and the service credential are not limited here (the platform's own calls).
//!
//! In Lambda each execution environment keeps its own buckets: a tenant gets up to the
//! limit per concurrently running environment, and the API Gateway stage throttling
//! (template.yaml) bounds everyone together.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use tagged_routing::env::{self, EnvError, Lookup};
use tagged_routing::{Error, TenantId};

/// Requests per second and burst, per tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantLimits {
    /// `TAGCFG_TENANT_READS_PER_SEC` (default 1000): GET, list, history, changes, batchGet.
    pub reads_per_sec: u32,
    /// `TAGCFG_TENANT_READ_BURST` (default 2000).
    pub read_burst: u32,
    /// `TAGCFG_TENANT_WRITES_PER_SEC` (default 100): PUT and DELETE.
    pub writes_per_sec: u32,
    /// `TAGCFG_TENANT_WRITE_BURST` (default 200).
    pub write_burst: u32,
}

impl Default for TenantLimits {
    fn default() -> Self {
        TenantLimits {
            reads_per_sec: 1000,
            read_burst: 2000,
            writes_per_sec: 100,
            write_burst: 200,
        }
    }
}

impl TenantLimits {
    pub fn from_lookup(get: &impl Lookup) -> Result<Self, EnvError> {
        let d = TenantLimits::default();
        let positive = |var: &str, default: u32| -> Result<u32, EnvError> {
            let n = env::number(get, var, u64::from(default))?;
            u32::try_from(n)
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| EnvError::invalid(var, "must be between 1 and 4294967295"))
        };
        Ok(TenantLimits {
            reads_per_sec: positive("TAGCFG_TENANT_READS_PER_SEC", d.reads_per_sec)?,
            read_burst: positive("TAGCFG_TENANT_READ_BURST", d.read_burst)?,
            writes_per_sec: positive("TAGCFG_TENANT_WRITES_PER_SEC", d.writes_per_sec)?,
            write_burst: positive("TAGCFG_TENANT_WRITE_BURST", d.write_burst)?,
        })
    }
}

/// How often (in checks) the buckets of tenants that have been quiet long enough to be full
/// again are dropped: memory stays bounded by the tenants active within a refill period.
const PRUNE_EVERY: u64 = 10_000;

/// Which bucket a request takes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// The buckets of every tenant that was active within a refill period.
pub struct TenantLimiter {
    reads: DefaultKeyedRateLimiter<TenantId>,
    writes: DefaultKeyedRateLimiter<TenantId>,
    clock: DefaultClock,
    checks: AtomicU64,
}

fn quota(per_sec: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_sec).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(rate))
}

impl TenantLimiter {
    pub fn new(limits: TenantLimits) -> Self {
        TenantLimiter {
            reads: DefaultKeyedRateLimiter::keyed(quota(limits.reads_per_sec, limits.read_burst)),
            writes: DefaultKeyedRateLimiter::keyed(quota(limits.writes_per_sec, limits.write_burst)),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one request of `tenant` from its read or write bucket; `Error::Throttled`
    /// with the wait when it is empty.
    pub fn check(&self, tenant: &TenantId, access: Access) -> Result<(), Error> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.reads.retain_recent();
            self.writes.retain_recent();
        }
        let (bucket, what) = match access {
            Access::Read => (&self.reads, "read"),
            Access::Write => (&self.writes, "write"),
        };
        bucket.check_key(tenant).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            Error::Throttled {
                backend: format!("this tenant's {what} limit"),
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }
}
