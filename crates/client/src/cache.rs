//! The client's local cache of effective values.
//!
//! The server resolves every value through the tenant's layers and pushes *effective*
//! updates, so the cache never compares revisions (which belong to different logs). The
//! one race it guards against is a read answered before a push but stored after it: every
//! push bumps an epoch, and a read stores its answer only if no push happened since it
//! began (or the key is not cached yet).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::RwLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cached {
    pub value_json: String,
    pub version: u64,
    /// `tenant`, `tier:<name>` or `shared`.
    pub layer: String,
}

#[derive(Default)]
pub(crate) struct Cache {
    map: RwLock<HashMap<String, Cached>>,
    epoch: AtomicU64,
}

impl Cache {
    pub fn get(&self, key: &str) -> Option<Cached> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).get(key).cloned()
    }

    pub fn keys(&self) -> Vec<String> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.map.read().unwrap_or_else(|p| p.into_inner()).contains_key(key)
    }

    /// The epoch to pass to [`Cache::store_read`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// A pushed update: always wins. `None` removes the key. True when the value changed.
    pub fn push(&self, key: &str, value: Option<Cached>) -> bool {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.epoch.fetch_add(1, Ordering::SeqCst);
        match value {
            Some(v) => map.insert(key.to_owned(), v.clone()).as_ref() != Some(&v),
            None => map.remove(key).is_some(),
        }
    }

    /// A value read (gRPC `Get`, HTTP) that began at `epoch`. True when the value changed.
    pub fn store_read(&self, key: &str, value: Cached, epoch: u64) -> bool {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if self.epoch.load(Ordering::SeqCst) != epoch && map.contains_key(key) {
            return false;
        }
        map.insert(key.to_owned(), value.clone()).as_ref() != Some(&value)
    }
}
