//! Idempotency records in the `idempotency` table, with the conditional put of the DynamoDB
//! adapter made atomic by an immediate transaction: read, decide with `is_replaceable`, write.

use chrono::{DateTime, Utc};
use freightbridge::idempotency::{
    IdempotencyRecord, IdempotencyStore, PutOutcome, Status, StoreError,
};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Durable, DurableError, immediate};

impl IdempotencyStore for Durable {
    async fn put_in_progress(
        &self,
        record: &IdempotencyRecord,
        now: DateTime<Utc>,
    ) -> Result<PutOutcome, StoreError> {
        let record = record.clone();
        Ok(self
            .blocking(move |conn| put_in_progress(conn, &record, now))
            .await?)
    }

    async fn complete(&self, key: &str, result: &str, expires_at: i64) -> Result<(), StoreError> {
        let (key, result) = (key.to_owned(), result.to_owned());
        Ok(self
            .blocking(move |conn| complete(conn, &key, &result, expires_at))
            .await?)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        Ok(self
            .blocking(move |conn| {
                conn.execute("DELETE FROM idempotency WHERE key = ?1", [&key])?;
                Ok(())
            })
            .await?)
    }

    async fn lapse(&self, key: &str) -> Result<(), StoreError> {
        let key = key.to_owned();
        Ok(self
            .blocking(move |conn| {
                conn.execute(
                    "UPDATE idempotency SET in_progress_expires_at = 0
                     WHERE key = ?1 AND status = ?2",
                    params![key, Status::InProgress.as_str()],
                )?;
                Ok(())
            })
            .await?)
    }

    async fn get(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        let key = key.to_owned();
        Ok(self.blocking(move |conn| read(conn, &key)).await?)
    }
}

fn put_in_progress(
    conn: &mut Connection,
    record: &IdempotencyRecord,
    now: DateTime<Utc>,
) -> Result<PutOutcome, DurableError> {
    let tx = immediate(conn)?;
    let existing = read(&tx, &record.key)?;
    if let Some(live) = existing.as_ref().filter(|r| !r.is_replaceable(now)) {
        return Ok(PutOutcome::Exists(live.clone()));
    }
    tx.prepare_cached(
        "INSERT OR REPLACE INTO idempotency
            (key, status, expires_at, in_progress_expires_at, payload_hash, result)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        record.key,
        record.status.as_str(),
        record.expires_at,
        record.in_progress_expires_at,
        record.payload_hash,
        record.result,
    ])?;
    tx.commit()?;
    Ok(PutOutcome::Acquired {
        replaced: existing.is_some(),
    })
}

/// An upsert: the record becomes completed with its result, keeping its payload hash.
fn complete(
    conn: &Connection,
    key: &str,
    result: &str,
    expires_at: i64,
) -> Result<(), DurableError> {
    conn.prepare_cached(
        "INSERT INTO idempotency (key, status, expires_at, in_progress_expires_at, result)
         VALUES (?1, ?2, ?3, NULL, ?4)
         ON CONFLICT (key) DO UPDATE SET
            status = excluded.status,
            expires_at = excluded.expires_at,
            in_progress_expires_at = NULL,
            result = excluded.result",
    )?
    .execute(params![key, Status::Completed.as_str(), expires_at, result])?;
    Ok(())
}

fn read(conn: &Connection, key: &str) -> Result<Option<IdempotencyRecord>, DurableError> {
    let row = conn
        .prepare_cached(
            "SELECT status, expires_at, in_progress_expires_at, payload_hash, result
             FROM idempotency WHERE key = ?1",
        )?
        .query_row([key], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .optional()?;
    let Some((status, expires_at, in_progress_expires_at, payload_hash, result)) = row else {
        return Ok(None);
    };
    let status = Status::parse(&status)
        .ok_or_else(|| DurableError::corrupt(key, format!("unknown status {status:?}")))?;
    Ok(Some(IdempotencyRecord {
        key: key.to_owned(),
        status,
        expires_at,
        in_progress_expires_at,
        payload_hash,
        result,
    }))
}

#[cfg(test)]
mod tests {
    use chrono::Duration;
    use freightbridge::idempotency::{Begin, Idempotency, Policy};
    use std::sync::Arc;

    use super::super::testing::{fresh, raw, reopen};
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    const NOW: &str = "2026-11-27T09:00:00Z";
    const DEADLINE: &str = "2026-11-27T09:00:30Z";

    fn idem(durable: &Arc<Durable>) -> Idempotency<Arc<Durable>> {
        Idempotency::new(durable.clone(), Policy::default())
    }

    fn proceed(prior_attempt: bool) -> Begin {
        Begin::Proceed { prior_attempt }
    }

    #[tokio::test]
    async fn first_call_proceeds_and_a_duplicate_of_a_completed_key_gets_the_stored_result() {
        let (_dir, durable) = fresh();
        let idem = idem(&durable);
        let begin = idem.begin("k", Some("h"), t(NOW), t(DEADLINE)).await;
        assert_eq!(begin.unwrap(), proceed(false));
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
    async fn a_concurrent_duplicate_is_in_progress_until_the_deadline_lapses() {
        let (_dir, durable) = fresh();
        let idem = idem(&durable);
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
        assert_eq!(after.unwrap(), proceed(true));
    }

    #[tokio::test]
    async fn a_released_key_lets_a_retry_in_as_a_first_attempt() {
        let (_dir, durable) = fresh();
        let idem = idem(&durable);
        idem.begin("k", None, t(NOW), t(DEADLINE)).await.unwrap();
        idem.release("k").await.unwrap();
        assert_eq!(durable.get("k").await.unwrap(), None);
        let retry = idem.begin("k", None, t(NOW), t(DEADLINE)).await;
        assert_eq!(retry.unwrap(), proceed(false));
    }

    #[tokio::test]
    async fn an_abandoned_attempt_lets_a_retry_in_at_once_and_tells_it_to_check_first() {
        let (_dir, durable) = fresh();
        let idem = idem(&durable);
        idem.begin("k", None, t(NOW), t(DEADLINE)).await.unwrap();
        idem.abandon("k").await.unwrap();
        let lapsed = durable.get("k").await.unwrap().unwrap();
        assert_eq!(lapsed.in_progress_expires_at, Some(0));
        let retry = idem.begin("k", None, t(NOW), t(DEADLINE)).await;
        assert_eq!(retry.unwrap(), proceed(true));
    }

    #[tokio::test]
    async fn lapse_leaves_a_completed_record_alone() {
        let (_dir, durable) = fresh();
        let idem = idem(&durable);
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
    async fn a_reused_key_with_a_different_payload_is_refused() {
        let (_dir, durable) = fresh();
        let idem = idem(&durable);
        idem.begin("k", Some("h1"), t(NOW), t(DEADLINE))
            .await
            .unwrap();
        idem.complete("k", "{}", t(NOW)).await.unwrap();
        let stored = durable.get("k").await.unwrap().unwrap();
        assert_eq!(
            stored.payload_hash.as_deref(),
            Some("h1"),
            "complete keeps it"
        );
        let other = idem.begin("k", Some("h2"), t(NOW), t(DEADLINE)).await;
        assert_eq!(other.unwrap(), Begin::PayloadMismatch);
    }

    #[tokio::test]
    async fn an_expired_completed_record_counts_as_absent() {
        let (_dir, durable) = fresh();
        let idem = Idempotency::new(
            durable.clone(),
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
        assert_eq!(begin.unwrap(), proceed(true));
    }

    #[tokio::test]
    async fn complete_without_a_record_writes_a_completed_one() {
        let (_dir, durable) = fresh();
        durable.complete("k", "{}", 1_000).await.unwrap();
        let record = durable.get("k").await.unwrap().unwrap();
        assert_eq!(record.status, Status::Completed);
        assert_eq!(record.expires_at, 1_000);
        assert_eq!(record.in_progress_expires_at, None);
        assert_eq!(record.result.as_deref(), Some("{}"));
    }

    #[tokio::test]
    async fn records_survive_a_reopen() {
        let (dir, durable) = fresh();
        let first = idem(&durable);
        first
            .begin("done", Some("h"), t(NOW), t(DEADLINE))
            .await
            .unwrap();
        first.complete("done", r#"{"id":7}"#, t(NOW)).await.unwrap();
        drop((first, durable));
        let durable = reopen(&dir);
        let again = idem(&durable)
            .begin("done", Some("h"), t(NOW), t(DEADLINE))
            .await;
        assert_eq!(
            again.unwrap(),
            Begin::Completed {
                result: Some(r#"{"id":7}"#.into())
            }
        );
    }

    #[tokio::test]
    async fn an_in_progress_lock_left_by_a_dead_process_is_lapsed_on_open() {
        let (dir, durable) = fresh();
        let far = t("2099-01-01T00:00:00Z");
        idem(&durable).begin("k", None, t(NOW), far).await.unwrap();
        idem(&durable)
            .begin("done", None, t(NOW), far)
            .await
            .unwrap();
        durable
            .complete("done", "{}", far.timestamp())
            .await
            .unwrap();
        drop(durable);
        let durable = reopen(&dir);
        assert_eq!(durable.recovered().lapsed_locks, 1);
        let retry = idem(&durable).begin("k", None, t(NOW), t(DEADLINE)).await;
        assert_eq!(retry.unwrap(), proceed(true));
        let done = durable.get("done").await.unwrap().unwrap();
        assert_eq!(done.status, Status::Completed);
    }

    #[tokio::test]
    async fn an_unknown_stored_status_is_corrupt_not_absent() {
        let (_dir, durable) = fresh();
        raw(
            &durable,
            "INSERT INTO idempotency (key, status, expires_at) VALUES ('k', 'EXPIRED', 1)",
        );
        match durable.get("k").await {
            Err(StoreError::Corrupt { key, reason }) => {
                assert_eq!(key, "k");
                assert!(reason.contains("EXPIRED"), "{reason}");
            }
            other => panic!("expected corrupt, got {other:?}"),
        }
        raw(
            &durable,
            "INSERT INTO idempotency (key, status, expires_at) VALUES ('n', 'COMPLETED', 'soon')",
        );
        assert!(matches!(
            durable.get("n").await,
            Err(StoreError::Corrupt { .. })
        ));
    }

    #[tokio::test]
    async fn sweep_removes_expired_records_only() {
        let (_dir, durable) = fresh();
        durable.complete("old", "{}", 100).await.unwrap();
        durable.complete("new", "{}", 300).await.unwrap();
        let swept = durable
            .sweep(DateTime::from_timestamp(200, 0).unwrap(), None)
            .unwrap();
        assert_eq!(swept.idempotency, 1);
        assert_eq!(swept.total(), 1);
        assert_eq!(durable.get("old").await.unwrap(), None);
        assert!(durable.get("new").await.unwrap().is_some());
    }
}
