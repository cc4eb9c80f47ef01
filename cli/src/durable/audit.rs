//! The audit trail in the embedded database: each record once in `audit` (its JSON), and one
//! row per subject key in `audit_subjects`, ordered by the record's time, so a trace reads a
//! subject's records with one index range, as it queries the DynamoDB table in AWS.

use std::sync::Arc;

use chrono::Duration;
use freightbridge::audit::{AuditError, AuditLog, AuditRecord};
use futures::future::BoxFuture;
use rusqlite::{Connection, params};

use super::{Durable, DurableError, immediate};

/// The trail kept in a state directory, records expiring `ttl` after they were written.
#[derive(Debug, Clone)]
pub struct DurableAuditLog {
    durable: Arc<Durable>,
    ttl: Duration,
}

impl DurableAuditLog {
    pub fn new(durable: &Arc<Durable>, ttl: Duration) -> Self {
        Self {
            durable: durable.clone(),
            ttl,
        }
    }
}

impl From<DurableError> for AuditError {
    fn from(error: DurableError) -> Self {
        match error {
            DurableError::Corrupt { what, reason } => {
                AuditError::Corrupt(format!("{what}: {reason}"))
            }
            other => AuditError::Unavailable(other.to_string()),
        }
    }
}

impl AuditLog for DurableAuditLog {
    fn write<'a>(&'a self, records: &'a [AuditRecord]) -> BoxFuture<'a, Result<(), AuditError>> {
        let records = records.to_vec();
        let ttl = self.ttl;
        Box::pin(async move {
            Ok(self
                .durable
                .blocking(move |conn| write(conn, &records, ttl))
                .await?)
        })
    }

    fn by_subject<'a>(
        &'a self,
        key: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<AuditRecord>, AuditError>> {
        let key = key.to_owned();
        Box::pin(async move {
            Ok(self
                .durable
                .blocking(move |conn| by_subject(conn, &key, limit))
                .await?)
        })
    }
}

fn write(
    conn: &mut Connection,
    records: &[AuditRecord],
    ttl: Duration,
) -> Result<(), DurableError> {
    let tx = immediate(conn)?;
    {
        let mut record_row = tx.prepare_cached(
            "INSERT OR IGNORE INTO audit (id, at_ms, expires_at, record) VALUES (?1, ?2, ?3, ?4)",
        )?;
        let mut subject_row = tx.prepare_cached(
            "INSERT OR IGNORE INTO audit_subjects (subject, sort_key, id) VALUES (?1, ?2, ?3)",
        )?;
        for record in records {
            let id = record.id.to_string();
            let json = serde_json::to_string(record)
                .map_err(|e| DurableError::corrupt("audit record", e))?;
            let expires_at = (record.at + ttl).timestamp();
            record_row.execute(params![id, record.at.timestamp_millis(), expires_at, json])?;
            let sort_key = record.sort_key();
            for subject in record.subjects.keys() {
                subject_row.execute(params![subject, sort_key, id])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

fn by_subject(
    conn: &Connection,
    key: &str,
    limit: usize,
) -> Result<Vec<AuditRecord>, DurableError> {
    let mut statement = conn.prepare_cached(
        "SELECT a.record FROM audit_subjects s JOIN audit a ON a.id = s.id
         WHERE s.subject = ?1 AND a.expires_at > ?2 ORDER BY s.sort_key LIMIT ?3",
    )?;
    let now = chrono::Utc::now().timestamp();
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = statement.query_map(params![key, now, limit], |row| row.get::<_, String>(0))?;
    let mut records = Vec::new();
    for json in rows {
        let json = json?;
        records.push(
            serde_json::from_str(&json).map_err(|e| DurableError::corrupt("audit record", e))?,
        );
    }
    Ok(records)
}

/// Deletes the records expired by `now_s` and their subject rows; answers how many records.
pub(super) fn sweep(conn: &Connection, now_s: i64) -> Result<usize, DurableError> {
    conn.execute(
        "DELETE FROM audit_subjects WHERE id IN (SELECT id FROM audit WHERE expires_at <= ?1)",
        [now_s],
    )?;
    Ok(conn.execute("DELETE FROM audit WHERE expires_at <= ?1", [now_s])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::Durability;
    use freightbridge::audit::{Actor, Outcome, Stage, Subjects, trace};
    use uuid::Uuid;

    fn record(at: chrono::DateTime<chrono::Utc>, tracking: &str, action: &str) -> AuditRecord {
        AuditRecord::new(Stage::Poster, Actor::default(), action, at, Outcome::Done).subjects(
            Subjects {
                shipments: vec![tracking.into()],
                events: vec![Uuid::new_v4()],
                ..Subjects::default()
            },
        )
    }

    #[tokio::test]
    async fn records_survive_a_reopen_come_back_in_time_order_and_expire() {
        let dir = tempfile::tempdir().expect("tempdir");
        let now = chrono::Utc::now();
        let (first, second) = (
            record(now - Duration::seconds(5), "T1", "milestone_noted"),
            record(now, "T1", "delivery_confirmed"),
        );
        {
            let durable = Durable::open(dir.path(), Durability::Normal).expect("open");
            let log = DurableAuditLog::new(&durable, Duration::days(1));
            log.write(&[second.clone(), first.clone(), record(now, "T2", "x")])
                .await
                .expect("write");
            // Written twice (a retried write) is still one record.
            log.write(std::slice::from_ref(&first))
                .await
                .expect("write");
        }
        let durable = Durable::open(dir.path(), Durability::Normal).expect("reopen");
        let log = DurableAuditLog::new(&durable, Duration::days(1));
        let got = trace(&log, "T1").await.expect("trace");
        assert_eq!(got, vec![first.clone(), second.clone()]);
        let removed = durable
            .with(|conn| sweep(conn, (now + Duration::days(2)).timestamp()))
            .expect("sweep");
        assert_eq!(removed, 3);
        assert!(trace(&log, "T1").await.expect("trace").is_empty());
    }
}
