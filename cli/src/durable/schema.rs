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

const MIGRATIONS: [&str; 3] = [V1, V2, V3];

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
