//! In-memory idempotency store: the same conditional-put semantics as the DynamoDB adapter,
//! for the local chain and tests. Like the DynamoDB table, it also keeps each shipment's latest
//! milestone (`ordering`) and the Odoo circuit breaker's state (`breaker`).

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use super::{IdempotencyRecord, IdempotencyStore, PutOutcome, Status, StoreError};
use crate::breaker::{BreakerState, BreakerStore, MemoryBreakerStore, Versioned};
use crate::ordering::{LatestMilestones, MemoryLatest, Milestone, Placement};

#[derive(Debug, Default)]
pub struct MemoryStore {
    records: Mutex<HashMap<String, IdempotencyRecord>>,
    latest: MemoryLatest,
    breakers: MemoryBreakerStore,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, IdempotencyRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl IdempotencyStore for MemoryStore {
    async fn put_in_progress(
        &self,
        record: &IdempotencyRecord,
        now: DateTime<Utc>,
    ) -> Result<PutOutcome, StoreError> {
        let mut records = self.lock();
        if let Some(existing) = records.get(&record.key)
            && !existing.is_replaceable(now)
        {
            return Ok(PutOutcome::Exists(existing.clone()));
        }
        let replaced = records.insert(record.key.clone(), record.clone()).is_some();
        Ok(PutOutcome::Acquired { replaced })
    }

    async fn complete(&self, key: &str, result: &str, expires_at: i64) -> Result<(), StoreError> {
        let mut records = self.lock();
        let record = records
            .entry(key.to_owned())
            .or_insert_with(|| IdempotencyRecord {
                key: key.to_owned(),
                status: Status::Completed,
                expires_at,
                in_progress_expires_at: None,
                payload_hash: None,
                result: None,
            });
        record.status = Status::Completed;
        record.expires_at = expires_at;
        record.in_progress_expires_at = None;
        record.result = Some(result.to_owned());
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.lock().remove(key);
        Ok(())
    }

    async fn lapse(&self, key: &str) -> Result<(), StoreError> {
        if let Some(record) = self.lock().get_mut(key)
            && record.status == Status::InProgress
        {
            record.in_progress_expires_at = Some(0);
        }
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self.lock().get(key).cloned())
    }
}

impl LatestMilestones for MemoryStore {
    async fn advance(
        &self,
        key: &str,
        incoming: &Milestone,
        now: DateTime<Utc>,
        expires_at: i64,
    ) -> Result<Placement, StoreError> {
        self.latest.advance(key, incoming, now, expires_at).await
    }

    async fn latest(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Milestone>, StoreError> {
        self.latest.latest(key, now).await
    }
}

impl BreakerStore for MemoryStore {
    async fn load(&self, name: &str) -> Result<Versioned, StoreError> {
        self.breakers.load(name).await
    }

    async fn swap(
        &self,
        name: &str,
        expected: u64,
        state: &BreakerState,
    ) -> Result<bool, StoreError> {
        self.breakers.swap(name, expected, state).await
    }
}
