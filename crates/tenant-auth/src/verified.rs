//! The verified-token cache: a token seen and verified before is answered from memory until
//! it expires, so a client repeating its token costs one hash, not a signature check.
//!
//! Keyed by the SHA-256 of the whole token (any other token, a tampered one included, is a
//! miss and is verified in full); only tenant principals are cached (the hot path), until
//! the `expires_at` the verifier computed (`exp` plus leeway), never longer. A token keeps
//! working until then even if its signing key leaves the JWKS. Bounded: when full, expired
//! entries go, and if none had expired, all of them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use aws_lc_rs::digest::{digest, SHA256};

use crate::TenantContext;

/// How many verified tokens a verifier remembers by default (`TAGCFG_VERIFIED_TOKENS`).
pub const DEFAULT_VERIFIED_TOKENS: usize = 10_000;

pub(crate) struct VerifiedTokens {
    capacity: usize,
    entries: Mutex<HashMap<[u8; 32], TenantContext>>,
    hits: AtomicU64,
}

fn key_of(token: &str) -> [u8; 32] {
    let mut key = [0u8; 32];
    key.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    key
}

impl VerifiedTokens {
    pub(crate) fn new(capacity: usize) -> Self {
        VerifiedTokens {
            capacity,
            entries: Mutex::default(),
            hits: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], TenantContext>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The context `token` was verified to, if it was and has not expired at `now`.
    pub(crate) fn get(&self, token: &str, now: u64) -> Option<TenantContext> {
        if self.capacity == 0 {
            return None;
        }
        let found = self.lock().get(&key_of(token)).filter(|c| now < c.expires_at).cloned();
        if found.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        found
    }

    pub(crate) fn put(&self, token: &str, context: &TenantContext, now: u64) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, c| now < c.expires_at);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(key_of(token), context.clone());
    }

    pub(crate) fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}
