//! The database's tables, versioned with `PRAGMA user_version`: migration `n` takes a database
//! from version `n` to `n + 1`, so a state directory from an older freightctl is upgraded in
//! place and one from a newer freightctl is refused rather than misread.

use rusqlite::Connection;

use super::{DurableError, immediate};

/// Version 1. Times are Unix seconds where the AWS stores use seconds (the DynamoDB TTL
/// attribute: `expires_at`) and Unix milliseconds (`*_ms`) elsewhere.
const V1: &str = "
CREATE TABLE idempotency (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    expires_at INTEGER NOT NULL,
    in_progress_expires_at INTEGER,
    payload_hash TEXT,
    result TEXT
);

CREATE TABLE latest (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    occurred_at TEXT NOT NULL,
    event_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE seen_scopes (
    scope TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);

CREATE TABLE seen_entries (
    scope TEXT NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (scope, entry)
) WITHOUT ROWID;

CREATE TABLE breakers (
    name TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    consecutive_failures INTEGER NOT NULL,
    open_until_ms INTEGER,
    probe_until_ms INTEGER,
    trips INTEGER NOT NULL
);

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    attributes TEXT NOT NULL,
    sent_at_ms INTEGER NOT NULL,
    first_received_ms INTEGER,
    receive_count INTEGER NOT NULL,
    visible_at_ms INTEGER NOT NULL
);
CREATE INDEX messages_by_visibility ON messages (queue, visible_at_ms);
CREATE INDEX messages_by_order ON messages (queue, seq);

CREATE TABLE archive (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    source TEXT NOT NULL,
    detail_type TEXT NOT NULL,
    time TEXT NOT NULL,
    envelope TEXT NOT NULL
);
CREATE INDEX archive_by_type ON archive (source, detail_type);
";

/// Version 2: the audit trail (`audit.rs`).
const V2: &str = "
CREATE TABLE audit (
    id TEXT PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX audit_by_expiry ON audit (expires_at);

CREATE TABLE audit_subjects (
    subject TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (subject, sort_key)
) WITHOUT ROWID;
CREATE INDEX audit_subjects_by_id ON audit_subjects (id);
";

/// Version 3: the reconciler's shipment ledger (`ledger.rs`).
const V3: &str = "
CREATE TABLE ledger (
    key TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    entry TEXT NOT NULL
);
";

/// Version 4: the archive's age as a number, for retention (`--archive-retention-days`): the
/// envelope's `time` in Unix milliseconds, indexed. Rows archived before it are dated from their
/// `time` text; one SQLite cannot read stays NULL, and retention keeps it.
const V4: &str = "
ALTER TABLE archive ADD COLUMN archived_at_ms INTEGER;
UPDATE archive
    SET archived_at_ms = CAST(round((julianday(time) - 2440587.5) * 86400000.0) AS INTEGER);
CREATE INDEX archive_by_age ON archive (archived_at_ms);
";

/// Version 5: the documents beside the ledger's shipments (`ledger.rs`): the invoice-number
/// index and the lane cost histories.
const V5: &str = "
CREATE TABLE ledger_docs (
    key TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    doc TEXT NOT NULL
);
";

const MIGRATIONS: [&str; 5] = [V1, V2, V3, V4, V5];

/// The schema version this freightctl writes.
pub(super) const VERSION: i64 = MIGRATIONS.len() as i64;

/// Brings the database to `VERSION`, each migration in its own transaction.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), DurableError> {
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    let Some(pending) = usize::try_from(found)
        .ok()
        .and_then(|done| MIGRATIONS.get(done..))
    else {
        return Err(DurableError::Schema {
            found,
            supported: VERSION,
        });
    };
    for (step, sql) in (found + 1..).zip(pending) {
        let tx = immediate(conn)?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", step)?;
        tx.commit()?;
        tracing::info!(version = step, "durable state schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::super::testing::reopen;
    use super::*;

    #[test]
    fn a_version_1_archive_is_dated_from_its_time_text_by_migration_4() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut conn = Connection::open(dir.path().join(super::super::DATABASE_FILE)).unwrap();
            let tx = conn.transaction().unwrap();
            tx.execute_batch(V1).unwrap();
            tx.pragma_update(None, "user_version", 1).unwrap();
            tx.execute_batch(
                "INSERT INTO archive (id, source, detail_type, time, envelope) VALUES
                    ('a', 's', 'd', '2026-12-03T10:00:00Z', '{}'),
                    ('b', 's', 'd', '2026-12-03T10:00:00.123456789Z', '{}'),
                    ('c', 's', 'd', '2026-12-03T11:00:00+01:00', '{}'),
                    ('d', 's', 'd', 'not a time', '{}');",
            )
            .unwrap();
            tx.commit().unwrap();
        }
        let durable = reopen(&dir);
        let rows: Vec<(String, Option<i64>)> = durable
            .with(|c| {
                let mut statement =
                    c.prepare("SELECT id, archived_at_ms FROM archive ORDER BY seq")?;
                let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<Result<_, _>>()?)
            })
            .unwrap();
        let ms = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .unwrap()
                .with_timezone(&Utc)
                .timestamp_millis()
        };
        assert_eq!(
            rows,
            [
                ("a".into(), Some(ms("2026-12-03T10:00:00Z"))),
                ("b".into(), Some(ms("2026-12-03T10:00:00.123Z"))),
                ("c".into(), Some(ms("2026-12-03T10:00:00Z"))),
                ("d".into(), None),
            ]
        );
        let version: i64 = durable
            .with(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
            .unwrap();
        assert_eq!(version, VERSION);
    }
}
