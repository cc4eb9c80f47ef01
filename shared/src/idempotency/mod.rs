//! Idempotency with Powertools semantics (DESIGN §3.6): a record per key, `INPROGRESS` while a
//! handler runs and `COMPLETED` with its stored result afterwards. Expiry is computed from the
//! TTL attribute, never stored as a status. An in-progress lock lapses at the Lambda deadline so
//! a crashed invocation does not block retries. A key reused with different content is refused.

pub mod memory;

use std::future::Future;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::failure::{Classify, FailureClass};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    InProgress,
    Completed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::InProgress => "INPROGRESS",
            Status::Completed => "COMPLETED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "INPROGRESS" => Some(Status::InProgress),
            "COMPLETED" => Some(Status::Completed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    pub key: String,
    pub status: Status,
    /// Unix seconds after which the record no longer counts (the DynamoDB TTL attribute).
    pub expires_at: i64,
    /// Unix milliseconds after which an `INPROGRESS` record no longer blocks (Lambda deadline).
    pub in_progress_expires_at: Option<i64>,
    /// `sha256:<hex>` of the payload, to refuse a key reused with different content.
    pub payload_hash: Option<String>,
    /// The stored result of a completed handler (JSON text).
    pub result: Option<String>,
}

impl IdempotencyRecord {
    /// Expired records are treated as absent (computed, never stored).
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now.timestamp() >= self.expires_at
    }

    /// An in-progress record whose holder's deadline has passed no longer blocks a retry.
    pub fn in_progress_lapsed(&self, now: DateTime<Utc>) -> bool {
        self.status == Status::InProgress
            && self
                .in_progress_expires_at
                .is_some_and(|until| now.timestamp_millis() >= until)
    }

    /// May a new `INPROGRESS` record replace this one? (The conditional put's condition.)
    pub fn is_replaceable(&self, now: DateTime<Utc>) -> bool {
        self.is_expired(now) || self.in_progress_lapsed(now)
    }
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("idempotency store unavailable: {0}")]
    Unavailable(String),
    #[error("idempotency record for {key} is corrupt: {reason}")]
    Corrupt { key: String, reason: String },
}

impl Classify for StoreError {
    fn class(&self) -> FailureClass {
        match self {
            StoreError::Unavailable(_) => FailureClass::Retryable,
            StoreError::Corrupt { .. } => FailureClass::Permanent,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            StoreError::Unavailable(_) => "idempotency_store_unavailable",
            StoreError::Corrupt { .. } => "idempotency_record_corrupt",
        }
    }
}

/// The result of the conditional put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// The record was written: the caller holds the key. `replaced`: an earlier record (an
    /// expired one, or an attempt whose lock had lapsed) was overwritten.
    Acquired { replaced: bool },
    /// A live record already exists (returned as it is stored).
    Exists(IdempotencyRecord),
}

/// Persistence of idempotency records. Implementations must make `put_in_progress` atomic:
/// write only if no record exists or the existing one `is_replaceable(now)`.
pub trait IdempotencyStore: Send + Sync {
    fn put_in_progress(
        &self,
        record: &IdempotencyRecord,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send;

    /// Mark `key` completed with its result and final expiry.
    fn complete(
        &self,
        key: &str,
        result: &str,
        expires_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Remove `key` (a failed handler releases its key so a retry can run).
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Make an `INPROGRESS` record's lock lapse now, keeping the record (no-op otherwise).
    fn lapse(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send;

    fn get(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, StoreError>> + Send;
}

impl<T: IdempotencyStore> IdempotencyStore for std::sync::Arc<T> {
    fn put_in_progress(
        &self,
        record: &IdempotencyRecord,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<PutOutcome, StoreError>> + Send {
        (**self).put_in_progress(record, now)
    }
    fn complete(
        &self,
        key: &str,
        result: &str,
        expires_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).complete(key, result, expires_at)
    }
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).delete(key)
    }
    fn lapse(&self, key: &str) -> impl Future<Output = Result<(), StoreError>> + Send {
        (**self).lapse(key)
    }
    fn get(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<IdempotencyRecord>, StoreError>> + Send {
        (**self).get(key)
    }
}

/// `sha256:<hex>` of some bytes: payload hashes and body-derived delivery ids.
pub fn sha256_tag(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// The key of a record that lives beside the idempotency records: `<kind>#<scope>`. Scopes are
/// partner ids, carriers and tracking numbers, short in practice; one too long for a key
/// (DynamoDB allows 2048 bytes) is named by its digest.
pub fn scoped_key(kind: &str, scope: &str) -> String {
    const LONGEST_READABLE: usize = 512;
    if scope.len() <= LONGEST_READABLE {
        format!("{kind}#{scope}")
    } else {
        format!("{kind}#{}", sha256_tag(scope.as_bytes()))
    }
}

/// What the caller should do with a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// First time (or the earlier attempt expired or failed): run the handler, then
    /// `complete`, `release` or `abandon`. `prior_attempt`: an earlier attempt held this key
    /// and may have applied its effect before failing, so look for that effect first.
    Proceed { prior_attempt: bool },
    /// Already done: here is the stored result.
    Completed { result: Option<String> },
    /// Another invocation holds the key right now: retry later.
    InProgress,
    /// The key was used before with a different payload.
    PayloadMismatch,
}

/// Idempotency settings for one use (ingress dedupe, Odoo posting, …).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// How long a completed key is remembered.
    pub ttl: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        // Partners retry for up to about three days (Standard Webhooks, AfterShip): remember
        // completed keys for a week.
        Self {
            ttl: Duration::days(7),
        }
    }
}

/// The idempotency protocol over a store.
#[derive(Debug, Clone)]
pub struct Idempotency<S> {
    store: S,
    policy: Policy,
}

impl<S: IdempotencyStore> Idempotency<S> {
    pub fn new(store: S, policy: Policy) -> Self {
        Self { store, policy }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// Try to take `key`. `lock_until` is when this invocation gives up (the Lambda deadline):
    /// past it, a retry may take the key over.
    pub async fn begin(
        &self,
        key: &str,
        payload_hash: Option<&str>,
        now: DateTime<Utc>,
        lock_until: DateTime<Utc>,
    ) -> Result<Begin, StoreError> {
        let record = IdempotencyRecord {
            key: key.to_owned(),
            status: Status::InProgress,
            expires_at: (now + self.policy.ttl).timestamp(),
            in_progress_expires_at: Some(lock_until.timestamp_millis()),
            payload_hash: payload_hash.map(str::to_owned),
            result: None,
        };
        match self.store.put_in_progress(&record, now).await? {
            PutOutcome::Acquired { replaced } => Ok(Begin::Proceed {
                prior_attempt: replaced,
            }),
            PutOutcome::Exists(existing) => Ok(decide_existing(&existing, payload_hash)),
        }
    }

    /// Record the handler's result.
    pub async fn complete(
        &self,
        key: &str,
        result: &str,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let expires_at = (now + self.policy.ttl).timestamp();
        self.store.complete(key, result, expires_at).await
    }

    /// The handler failed before applying anything: release the key so a retry can run.
    pub async fn release(&self, key: &str) -> Result<(), StoreError> {
        self.store.delete(key).await
    }

    /// The handler failed after it may have applied its effect (a write that timed out can
    /// still have committed): let a retry take the key at once, but keep the record so the
    /// retry learns (`Begin::Proceed { prior_attempt: true }`) that it must check first.
    pub async fn abandon(&self, key: &str) -> Result<(), StoreError> {
        self.store.lapse(key).await
    }
}

/// Decide about a live record that blocked the conditional put. Payload first (as Powertools
/// does): a reused key with other content is refused whatever the record's status.
pub fn decide_existing(existing: &IdempotencyRecord, payload_hash: Option<&str>) -> Begin {
    if let (Some(stored), Some(given)) = (existing.payload_hash.as_deref(), payload_hash)
        && stored != given
    {
        return Begin::PayloadMismatch;
    }
    match existing.status {
        Status::Completed => Begin::Completed {
            result: existing.result.clone(),
        },
        Status::InProgress => Begin::InProgress,
    }
}

#[cfg(test)]
mod tests {
    use super::memory::MemoryStore;
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn idem() -> Idempotency<MemoryStore> {
        Idempotency::new(MemoryStore::new(), Policy::default())
    }

    const NOW: &str = "2026-11-27T09:00:00Z";
    const DEADLINE: &str = "2026-11-27T09:00:30Z";

    #[tokio::test]
    async fn first_call_proceeds_and_duplicate_of_completed_returns_stored_result() {
        let idem = idem();
        let begin = idem.begin("k", Some("h"), t(NOW), t(DEADLINE)).await;
        assert_eq!(
            begin.unwrap(),
            Begin::Proceed {
                prior_attempt: false
            }
        );
        idem.complete("k", r#"{"id":1}"#, t(NOW)).await.unwrap();
        let again = idem.begin("k", Some("h"), t(NOW), t(DEADLINE)).await;
        assert_eq!(
            again.unwrap(),
            Begin::Completed {
                result: Some(r#"{"id":1}"#.into())
            }
        );
    }

    #[tokio::test]
    async fn concurrent_duplicate_is_in_progress_until_the_deadline_lapses() {
        let idem = idem();
        idem.begin("k", None, t(NOW), t(DEADLINE)).await.unwrap();
        let during = idem
            .begin(
                "k",
                None,
                t("2026-11-27T09:00:10Z"),
                t("2026-11-27T09:00:40Z"),
            )
            .await;
        assert_eq!(during.unwrap(), Begin::InProgress);
        let after = idem
            .begin(
                "k",
                None,
                t("2026-11-27T09:00:31Z"),
                t("2026-11-27T09:01:01Z"),
            )
            .await;
        assert_eq!(
            after.unwrap(),
            Begin::Proceed {
                prior_attempt: true
            }
        );
    }

    #[tokio::test]
    async fn failed_handler_releases_the_key_for_a_retry() {
        let idem = idem();
        idem.begin("k", None, t(NOW), t(DEADLINE)).await.unwrap();
        idem.release("k").await.unwrap();
        let retry = idem.begin("k", None, t(NOW), t(DEADLINE)).await;
        assert_eq!(
            retry.unwrap(),
            Begin::Proceed {
                prior_attempt: false
            }
        );
    }

    #[tokio::test]
    async fn abandoned_attempt_lets_a_retry_in_at_once_and_tells_it_to_check_first() {
        let idem = idem();
        idem.begin("k", None, t(NOW), t(DEADLINE)).await.unwrap();
        idem.abandon("k").await.unwrap();
        let retry = idem.begin("k", None, t(NOW), t(DEADLINE)).await;
        assert_eq!(
            retry.unwrap(),
            Begin::Proceed {
                prior_attempt: true
            }
        );
    }

    #[tokio::test]
    async fn abandon_leaves_a_completed_record_alone() {
        let idem = idem();
        idem.begin("k", None, t(NOW), t(DEADLINE)).await.unwrap();
        idem.complete("k", "{}", t(NOW)).await.unwrap();
        idem.abandon("k").await.unwrap();
        let again = idem.begin("k", None, t(NOW), t(DEADLINE)).await;
        assert_eq!(
            again.unwrap(),
            Begin::Completed {
                result: Some("{}".into())
            }
        );
    }

    #[tokio::test]
    async fn reused_key_with_different_payload_is_rejected() {
        let idem = idem();
        idem.begin("k", Some("h1"), t(NOW), t(DEADLINE))
            .await
            .unwrap();
        idem.complete("k", "{}", t(NOW)).await.unwrap();
        let other = idem.begin("k", Some("h2"), t(NOW), t(DEADLINE)).await;
        assert_eq!(other.unwrap(), Begin::PayloadMismatch);
    }

    #[tokio::test]
    async fn expired_completed_record_counts_as_absent() {
        let idem = Idempotency::new(
            MemoryStore::new(),
            Policy {
                ttl: Duration::hours(1),
            },
        );
        idem.begin("k", None, t(NOW), t(DEADLINE)).await.unwrap();
        idem.complete("k", "{}", t(NOW)).await.unwrap();
        let later = t("2026-11-27T10:00:01Z");
        let begin = idem
            .begin("k", None, later, later + Duration::seconds(30))
            .await;
        assert_eq!(
            begin.unwrap(),
            Begin::Proceed {
                prior_attempt: true
            }
        );
    }

    #[test]
    fn status_names_match_powertools() {
        assert_eq!(Status::InProgress.as_str(), "INPROGRESS");
        assert_eq!(Status::parse("COMPLETED"), Some(Status::Completed));
        assert_eq!(Status::parse("EXPIRED"), None);
    }
}
