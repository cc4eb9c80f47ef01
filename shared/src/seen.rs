//! What the transform has published of each shipment's scan history. Aggregators repeat every
//! scan so far in each delivery; the transform publishes only the scans not in this set, then
//! adds them. The set saves work, it is not what keeps Odoo exact: a scan's event id depends
//! only on the scan, so a scan published twice (two deliveries racing) is one event to the
//! poster's idempotency.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;

use crate::idempotency::StoreError;

/// A shipment's seen history entries, by scope (`<partner>#<tracking number>`).
pub trait SeenStore: Send + Sync {
    /// The entries of `scope` published so far. `now` (Unix seconds) hides a set whose expiry
    /// has passed but that the store has not removed yet.
    fn seen(
        &self,
        scope: &str,
        now: i64,
    ) -> impl Future<Output = Result<HashSet<String>, StoreError>> + Send;

    /// Adds `entries` to the scope's set and moves its expiry to `expires_at` (Unix seconds):
    /// a shipment that keeps moving keeps its set.
    fn mark(
        &self,
        scope: &str,
        entries: &[String],
        expires_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl<T: SeenStore> SeenStore for std::sync::Arc<T> {
    fn seen(
        &self,
        scope: &str,
        now: i64,
    ) -> impl Future<Output = Result<HashSet<String>, StoreError>> + Send {
        (**self).seen(scope, now)
    }

    fn mark(
        &self,
        scope: &str,
        entries: &[String],
        expires_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).mark(scope, entries, expires_at)
    }
}

/// The in-memory set, for the local chain and tests.
#[derive(Debug, Default)]
pub struct MemorySeen {
    scopes: Mutex<HashMap<String, (HashSet<String>, i64)>>,
}

impl MemorySeen {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (HashSet<String>, i64)>> {
        self.scopes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SeenStore for MemorySeen {
    async fn seen(&self, scope: &str, now: i64) -> Result<HashSet<String>, StoreError> {
        Ok(match self.lock().get(scope) {
            Some((entries, expires_at)) if *expires_at > now => entries.clone(),
            _ => HashSet::new(),
        })
    }

    async fn mark(
        &self,
        scope: &str,
        entries: &[String],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        // Nothing to add changes nothing, as with DynamoDB (where a set cannot be empty).
        if entries.is_empty() {
            return Ok(());
        }
        let mut scopes = self.lock();
        let (set, expiry) = scopes
            .entry(scope.to_owned())
            .or_insert_with(|| (HashSet::new(), expires_at));
        set.extend(entries.iter().cloned());
        *expiry = expires_at;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[tokio::test]
    async fn marked_entries_are_seen_in_their_scope_only_until_they_expire() {
        let store = MemorySeen::new();
        assert!(store.seen("ep#1", 100).await.unwrap().is_empty());
        store.mark("ep#1", &keys(&["a", "b"]), 200).await.unwrap();
        store.mark("ep#1", &keys(&["c"]), 300).await.unwrap();
        let seen = store.seen("ep#1", 250).await.unwrap();
        assert_eq!(seen, HashSet::from(["a".into(), "b".into(), "c".into()]));
        assert!(store.seen("ep#2", 250).await.unwrap().is_empty());
        assert!(store.seen("ep#1", 300).await.unwrap().is_empty());
    }
}
