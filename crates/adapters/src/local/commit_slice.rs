//! A short scheduler slice for the thread that commits writes.
//!
//! On a saturated machine a write waits for threads to be woken more than for its commit:
//! the committer is woken to take the queue and again when `fdatasync` returns, and each
//! time it waits behind the runtime's busy workers for their slice to end (about 1.4 ms on
//! the 2-core machine of docs/BENCHMARKS.md). Linux's scheduler (EEVDF, kernel 6.12 and
//! later) lets a thread ask for a shorter slice (`sched_attr.sched_runtime` for a
//! `SCHED_OTHER` thread): it is then picked sooner after it wakes, while its share of the
//! CPU stays what its nice value gives. No privilege is needed. An older kernel accepts
//! the call and keeps its own slice; elsewhere nothing is asked.
//!
//! The committer runs on the blocking pool, whose threads do other work too, so the slice
//! is held only while it commits ([`Shortened`] gives the thread the scheduler's default
//! slice back when dropped).

use std::time::Duration;

/// The slice the committer asks for unless configured otherwise (`TAGCFG_COMMIT_SLICE_US`):
/// the shortest Linux accepts. Measured in docs/BENCHMARKS.md, "Writes under the mixed
/// workload".
pub const DEFAULT_COMMIT_SLICE: Duration = Duration::from_micros(100);

/// The calling thread's scheduler slice, shortened until this is dropped.
pub struct Shortened(());

/// Asks the scheduler for `slice` on the calling thread. `None` when the platform or the
/// kernel refuses it (the thread then keeps its slice; nothing else changes).
pub fn shorten(slice: Duration) -> Option<Shortened> {
    #[cfg(target_os = "linux")]
    {
        let mut attr = linux::current()?;
        attr.sched_runtime = u64::try_from(slice.as_nanos()).unwrap_or(u64::MAX);
        linux::set(&attr).then_some(Shortened(()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = slice;
        None
    }
}

/// The slice the calling thread runs with now (`None` when it cannot be read).
pub fn current() -> Option<Duration> {
    #[cfg(target_os = "linux")]
    {
        linux::current().map(|attr| Duration::from_nanos(attr.sched_runtime))
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

impl Drop for Shortened {
    fn drop(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(mut attr) = linux::current() {
            // 0: the scheduler's default slice, which follows its own tuning.
            attr.sched_runtime = 0;
            linux::set(&attr);
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    /// `sched_attr`'s first version (48 bytes): policy, flags, nice, priority and times.
    const ATTR_SIZE: u32 = std::mem::size_of::<libc::sched_attr>() as u32;

    /// The calling thread's scheduling attributes, or `None` when the kernel has no
    /// `sched_getattr` (before 3.14) or refuses.
    pub fn current() -> Option<libc::sched_attr> {
        let mut attr = libc::sched_attr {
            size: ATTR_SIZE,
            sched_policy: 0,
            sched_flags: 0,
            sched_nice: 0,
            sched_priority: 0,
            sched_runtime: 0,
            sched_deadline: 0,
            sched_period: 0,
        };
        // SAFETY: `attr` is a valid, writable `sched_attr` of the size passed; pid 0 is the
        // calling thread; the kernel writes at most `ATTR_SIZE` bytes into it.
        let done = unsafe {
            libc::syscall(
                libc::SYS_sched_getattr,
                0,
                &mut attr as *mut libc::sched_attr,
                ATTR_SIZE,
                0,
            )
        };
        (done == 0).then_some(attr)
    }

    /// Sets the calling thread's attributes as read by [`current`] and changed by the
    /// caller (policy, nice and priority as they were; flags other than reset-on-fork are
    /// dropped, as they would ask for more than a slice).
    pub fn set(attr: &libc::sched_attr) -> bool {
        let attr = libc::sched_attr {
            size: ATTR_SIZE,
            sched_flags: attr.sched_flags & libc::SCHED_FLAG_RESET_ON_FORK as u64,
            ..*attr
        };
        // SAFETY: `attr` is a valid `sched_attr` of the size passed, read-only for the
        // kernel; pid 0 is the calling thread.
        let done = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const libc::sched_attr, 0) };
        done == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[test]
    fn a_shortened_slice_holds_until_dropped_and_the_thread_gets_its_own_back() {
        let own = current().expect("the thread's scheduling attributes");
        let shortened = shorten(Duration::from_micros(200)).expect("the kernel accepts a slice");
        let during = current().expect("attributes while shortened");
        drop(shortened);
        assert_eq!(current(), Some(own));
        // A kernel before 6.12 accepts the call and ignores the slice: only where the slice
        // is the scheduler's (it reports the one in force) is there more to check.
        if own > Duration::ZERO {
            assert_eq!(during, Duration::from_micros(200));
        }
    }
}
