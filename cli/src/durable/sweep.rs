//! Housekeeping of the state file: idempotency records, latest milestones and seen sets whose
//! expiry has passed (they already count as absent; DynamoDB's TTL deletes them in AWS), and
//! archived envelopes older than the archive's retention (the EventBridge archive's
//! `RetentionDays`). Deletes go in chunks, each its own short statement, so a large sweep never
//! holds the connection long enough to delay a delivery's commit, and can stop between chunks.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{Durable, DurableError, millis};

/// Rows (or seen scopes) one statement deletes at most.
const CHUNK: usize = 500;
const CHUNK_LIMIT: i64 = CHUNK as i64;

/// What one sweep deleted, by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Swept {
    pub idempotency: usize,
    pub latest: usize,
    pub seen_scopes: usize,
    pub seen_entries: usize,
    pub archive: usize,
    /// Audit records past their time to live (each with its subject rows).
    pub audit: usize,
}

impl Swept {
    pub fn total(&self) -> usize {
        self.idempotency
            + self.latest
            + self.seen_scopes
            + self.seen_entries
            + self.archive
            + self.audit
    }

    /// Adds another sweep's counts to these.
    pub fn add(&mut self, other: &Swept) {
        self.idempotency += other.idempotency;
        self.latest += other.latest;
        self.seen_scopes += other.seen_scopes;
        self.seen_entries += other.seen_entries;
        self.archive += other.archive;
        self.audit += other.audit;
    }
}

const EXPIRED_IDEMPOTENCY: &str = "DELETE FROM idempotency WHERE rowid IN
    (SELECT rowid FROM idempotency WHERE expires_at <= ?1 LIMIT ?2)";
const EXPIRED_LATEST: &str = "DELETE FROM latest WHERE rowid IN
    (SELECT rowid FROM latest WHERE expires_at <= ?1 LIMIT ?2)";
/// The entries of the chunk of expired scopes `EXPIRED_SCOPES` then deletes: both statements
/// run in one transaction, so they pick the same scopes.
const EXPIRED_SCOPE_ENTRIES: &str = "DELETE FROM seen_entries WHERE scope IN
    (SELECT scope FROM seen_scopes WHERE expires_at <= ?1 ORDER BY scope LIMIT ?2)";
const EXPIRED_SCOPES: &str = "DELETE FROM seen_scopes WHERE scope IN
    (SELECT scope FROM seen_scopes WHERE expires_at <= ?1 ORDER BY scope LIMIT ?2)";
/// The subject rows of the chunk of expired audit records `EXPIRED_AUDIT` then deletes, in
/// one transaction, so they pick the same records.
const EXPIRED_AUDIT_SUBJECTS: &str = "DELETE FROM audit_subjects WHERE id IN
    (SELECT id FROM audit WHERE expires_at <= ?1 ORDER BY id LIMIT ?2)";
const EXPIRED_AUDIT: &str = "DELETE FROM audit WHERE id IN
    (SELECT id FROM audit WHERE expires_at <= ?1 ORDER BY id LIMIT ?2)";
/// A row whose age is unknown (NULL: its `time` was unreadable at migration) is kept.
const ARCHIVE_BEFORE: &str = "DELETE FROM archive WHERE seq IN
    (SELECT seq FROM archive WHERE archived_at_ms < ?1 ORDER BY seq LIMIT ?2)";

impl Durable {
    /// Deletes what expired by `now`, and archived envelopes older than `archive_retention`
    /// (`None` keeps the archive forever); answers how many rows went from each table.
    pub fn sweep(
        &self,
        now: DateTime<Utc>,
        archive_retention: Option<Duration>,
    ) -> Result<Swept, DurableError> {
        self.sweep_while(now, archive_retention, || true)
    }

    /// `sweep`, asking `go_on` before each chunk: a `false` stops it there, with what was
    /// deleted so far (every chunk is complete on its own, so stopping loses nothing).
    pub fn sweep_while(
        &self,
        now: DateTime<Utc>,
        archive_retention: Option<Duration>,
        go_on: impl Fn() -> bool,
    ) -> Result<Swept, DurableError> {
        let now_s = now.timestamp();
        let mut swept = Swept {
            idempotency: self.delete_in_chunks(EXPIRED_IDEMPOTENCY, now_s, &go_on)?,
            latest: self.delete_in_chunks(EXPIRED_LATEST, now_s, &go_on)?,
            ..Swept::default()
        };
        while go_on() {
            let (scopes, entries) = self.with(|conn| {
                let tx = conn.transaction()?;
                let entries = tx.execute(EXPIRED_SCOPE_ENTRIES, params![now_s, CHUNK_LIMIT])?;
                let scopes = tx.execute(EXPIRED_SCOPES, params![now_s, CHUNK_LIMIT])?;
                tx.commit()?;
                Ok((scopes, entries))
            })?;
            swept.seen_scopes += scopes;
            swept.seen_entries += entries;
            if scopes < CHUNK {
                break;
            }
        }
        while go_on() {
            let records = self.with(|conn| {
                let tx = conn.transaction()?;
                tx.execute(EXPIRED_AUDIT_SUBJECTS, params![now_s, CHUNK_LIMIT])?;
                let records = tx.execute(EXPIRED_AUDIT, params![now_s, CHUNK_LIMIT])?;
                tx.commit()?;
                Ok(records)
            })?;
            swept.audit += records;
            if records < CHUNK {
                break;
            }
        }
        if let Some(retention) = archive_retention {
            let cutoff_ms = now.timestamp_millis().saturating_sub(millis(retention));
            swept.archive = self.delete_in_chunks(ARCHIVE_BEFORE, cutoff_ms, &go_on)?;
        }
        Ok(swept)
    }

    /// Runs a chunked `DELETE` (`?1` the bound, `?2` the chunk size) until a chunk comes back
    /// short or `go_on` says stop; answers the rows deleted.
    fn delete_in_chunks(
        &self,
        sql: &str,
        bound: i64,
        go_on: &impl Fn() -> bool,
    ) -> Result<usize, DurableError> {
        let mut removed = 0;
        while go_on() {
            let deleted = self.with(|conn| {
                Ok(conn
                    .prepare_cached(sql)?
                    .execute(params![bound, CHUNK_LIMIT])?)
            })?;
            removed += deleted;
            if deleted < CHUNK {
                break;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use freightbridge::bus::{BusEvent, EventBus as _};
    use freightbridge::canonical::ShipmentStatus;
    use freightbridge::idempotency::IdempotencyStore as _;
    use freightbridge::ordering::{LatestMilestones as _, Milestone};
    use freightbridge::seen::SeenStore as _;

    use super::super::DurableBus;
    use super::super::testing::{fresh, raw};
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(seconds, 0).unwrap()
    }

    fn milestone(n: u128) -> Milestone {
        Milestone {
            status: ShipmentStatus::InTransit,
            occurred_at: at(50),
            event_id: uuid::Uuid::from_u128(n),
        }
    }

    async fn archive_one(bus: &DurableBus, n: u32) {
        let event = BusEvent {
            source: "canonical".into(),
            detail_type: "delivered".into(),
            detail: format!(r#"{{"n":{n}}}"#),
        };
        bus.publish(&[event]).await.unwrap();
    }

    /// The detail `n` of every archived envelope, in archive order.
    fn archived(bus: &DurableBus) -> Vec<u64> {
        bus.published()
            .unwrap()
            .iter()
            .filter_map(|e| e.detail["n"].as_u64())
            .collect()
    }

    #[tokio::test]
    async fn a_sweep_deletes_every_kind_of_expired_row_and_counts_each() {
        let (_dir, durable) = fresh();
        durable.complete("old", "{}", 100).await.unwrap();
        durable.complete("new", "{}", 300).await.unwrap();
        durable
            .advance("shipment#old", &milestone(1), at(50), 150)
            .await
            .unwrap();
        durable
            .advance("shipment#new", &milestone(2), at(50), 250)
            .await
            .unwrap();
        let entries = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        durable
            .mark("ep#old", &entries(&["a", "b", "c"]), 190)
            .await
            .unwrap();
        durable.mark("ep#new", &entries(&["d"]), 400).await.unwrap();

        let swept = durable.sweep(at(200), None).unwrap();
        assert_eq!(
            swept,
            Swept {
                idempotency: 1,
                latest: 1,
                seen_scopes: 1,
                seen_entries: 3,
                archive: 0,
                audit: 0,
            }
        );
        assert_eq!(swept.total(), 6);
        assert_eq!(durable.get("old").await.unwrap(), None);
        assert!(durable.get("new").await.unwrap().is_some());
        assert!(
            durable
                .latest("shipment#new", at(50))
                .await
                .unwrap()
                .is_some()
        );
        // What the sweep left is what is still live; a second sweep finds nothing more.
        assert!(
            durable
                .latest("shipment#old", at(50))
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(durable.seen("ep#new", 200).await.unwrap().len(), 1);
        assert_eq!(durable.sweep(at(200), None).unwrap(), Swept::default());
    }

    #[tokio::test]
    async fn a_sweep_of_more_than_a_chunk_takes_every_expired_row() {
        let (_dir, durable) = fresh();
        raw(
            &durable,
            &format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {})
                 INSERT INTO idempotency (key, status, expires_at)
                 SELECT 'k' || i, 'COMPLETED', CASE WHEN i % 10 = 0 THEN 900 ELSE 100 END FROM n;
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {})
                 INSERT INTO seen_scopes (scope, expires_at) SELECT 's' || i, 100 FROM n;
                 INSERT INTO seen_entries (scope, entry) SELECT scope, 'e' FROM seen_scopes;",
                3 * CHUNK + 7,
                CHUNK + 1
            ),
        );
        let swept = durable.sweep(at(200), None).unwrap();
        let expired = 3 * CHUNK + 7 - (3 * CHUNK + 7) / 10;
        assert_eq!(swept.idempotency, expired);
        assert_eq!(
            (swept.seen_scopes, swept.seen_entries),
            (CHUNK + 1, CHUNK + 1)
        );
        assert!(durable.get("k10").await.unwrap().is_some());
        assert_eq!(durable.get("k11").await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_sweep_told_to_stop_stops_between_chunks_and_the_next_one_finishes() {
        let (_dir, durable) = fresh();
        raw(
            &durable,
            &format!(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {})
                 INSERT INTO idempotency (key, status, expires_at)
                 SELECT 'k' || i, 'COMPLETED', 100 FROM n;",
                2 * CHUNK + 1
            ),
        );
        let asked = Cell::new(0);
        let first = durable
            .sweep_while(at(200), None, || {
                asked.set(asked.get() + 1);
                asked.get() == 1
            })
            .unwrap();
        assert_eq!(
            first,
            Swept {
                idempotency: CHUNK,
                ..Swept::default()
            }
        );
        let rest = durable.sweep(at(200), None).unwrap();
        assert_eq!(rest.idempotency, CHUNK + 1);
    }

    #[tokio::test]
    async fn archive_retention_deletes_only_envelopes_older_than_it() {
        let (_dir, durable) = fresh();
        let bus = DurableBus::new(&durable);
        for n in 1..=4 {
            archive_one(&bus, n).await;
        }
        let now = Utc::now();
        // Envelopes 1 and 2 were archived 31 and 30 days and a minute ago, 3 a day ago.
        let back = |n: u32, age: chrono::Duration| {
            let time = now - age;
            raw(
                &durable,
                &format!(
                    "UPDATE archive SET archived_at_ms = {}, time = '{}'
                     WHERE json_extract(envelope, '$.detail.n') = {n}",
                    time.timestamp_millis(),
                    time.to_rfc3339()
                ),
            );
        };
        back(1, chrono::Duration::days(31));
        back(2, chrono::Duration::days(30) + chrono::Duration::minutes(1));
        back(3, chrono::Duration::days(1));

        assert_eq!(
            durable.sweep(now, None).unwrap().archive,
            0,
            "None keeps all"
        );
        assert_eq!(archived(&bus), [1, 2, 3, 4]);
        let swept = durable.sweep(now, Some(30 * DAY)).unwrap();
        assert_eq!(swept.archive, 2);
        assert_eq!(archived(&bus), [3, 4]);
        assert_eq!(durable.sweep(now, Some(30 * DAY)).unwrap().archive, 0);
        // The retention is measured from the sweep's `now`.
        let later = now + chrono::Duration::days(29) + chrono::Duration::hours(12);
        assert_eq!(durable.sweep(later, Some(30 * DAY)).unwrap().archive, 1);
        assert_eq!(archived(&bus), [4]);
    }

    #[tokio::test]
    async fn an_archive_row_of_unknown_age_is_kept() {
        let (_dir, durable) = fresh();
        let bus = DurableBus::new(&durable);
        archive_one(&bus, 1).await;
        raw(&durable, "UPDATE archive SET archived_at_ms = NULL");
        let far = Utc::now() + chrono::Duration::days(3650);
        assert_eq!(durable.sweep(far, Some(DAY)).unwrap().archive, 0);
        assert_eq!(archived(&bus), [1]);
    }
}
