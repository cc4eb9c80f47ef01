//! The local chain's durable state: one SQLite file under `freightctl serve --state-dir` keeps
//! what the AWS deployment keeps in DynamoDB, SQS and the EventBridge archive, so the chain can
//! be stopped, killed or restarted without losing an accepted webhook or applying one twice.
//!
//! What is stored where (`freightbridge.sqlite3`, schema in `schema.rs`):
//! - `idempotency`: the ingress and poster idempotency records (the DynamoDB table's records);
//! - `latest`: each shipment's latest milestone (`freightbridge::ordering`);
//! - `seen_scopes`, `seen_entries`: the scans the transform has published (`freightbridge::seen`);
//! - `breakers`: the Odoo circuit breaker's versioned state;
//! - `messages`: every queue's messages, dead-letter queues included, with SQS's bookkeeping;
//! - `archive`: every envelope published on the bus, in order (the EventBridge archive).
//!
//! What expires is deleted by `sweep` (`sweep.rs`), which the chain runs at start and then
//! periodically, with the archive's retention.
//!
//! Ingress answers 2xx only after `publish` has committed the envelope and its queue messages in
//! one transaction, so a 2xx means committed: on disk even across a power loss with
//! `Durability::Full`, across a crash of the process with `Normal`. A consumer deletes a message
//! only once its effect is recorded; one received but not deleted when the process died is
//! visible again on the next open (`Recovered`), and the idempotency locks its handler held are
//! lapsed, so the retry is told to look for the effect first.
//!
//! One process owns a state directory (`freightbridge.lock`). Inside it every operation goes
//! through one connection. The async ports' operations are committed in groups (`blocking`):
//! whoever finds no commit running takes the connection on a blocking thread and runs every
//! operation queued meanwhile in one transaction, each in its own savepoint, and answers each
//! caller only once that transaction has committed. A group costs one commit (one fsync with
//! `Durability::Full`) instead of one per operation; a failing operation rolls back only its
//! own savepoint.

mod audit;
mod breaker;
mod bus;
mod dead_letters;
mod idempotency;
mod latest;
mod ledger;
mod queue;
mod schema;
mod seen;
mod sweep;

pub use audit::DurableAuditLog;
pub use bus::{ArchivedEvent, BusRule, DurableBus};
pub use dead_letters::{DurableDeadLetters, letter_attributes};
pub use queue::{DurableQueue, QueuedMessage};
pub use sweep::Swept;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::Utc;
use freightbridge::bus::BusError;
use freightbridge::idempotency::{Status, StoreError};
use rusqlite::{Connection, Savepoint, Transaction, TransactionBehavior};
use thiserror::Error;
use tokio::sync::Notify;

/// The database file inside the state directory.
pub const DATABASE_FILE: &str = "freightbridge.sqlite3";
/// The file whose exclusive lock says a process owns the state directory.
pub const LOCK_FILE: &str = "freightbridge.lock";

/// Most operations committed in one group transaction.
const GROUP_LIMIT: usize = 256;

/// How long a statement waits for SQLite's own locks (a checkpoint, another connection of a
/// tool inspecting the file) before it fails as unavailable.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How far a commit is on disk when it returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: committed means on disk, even after a power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: survives a crash of the process (kill -9); a power loss may lose
    /// the last commits.
    Normal,
}

impl Durability {
    fn synchronous(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

#[derive(Debug, Error)]
pub enum DurableError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is locked: another freightctl is using this state directory")]
    InUse { path: PathBuf },
    #[error("embedded database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored {what} is corrupt: {reason}")]
    Corrupt { what: String, reason: String },
    #[error("the database is at schema version {found}; this freightctl knows up to {supported}")]
    Schema { found: i64, supported: i64 },
    #[error("database worker failed: {0}")]
    Worker(String),
}

impl DurableError {
    fn corrupt(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        DurableError::Corrupt {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    /// A stored value SQLite could not hand back as the type its column should hold.
    fn is_unreadable_value(&self) -> bool {
        matches!(
            self,
            DurableError::Sqlite(
                rusqlite::Error::FromSqlConversionFailure(..)
                    | rusqlite::Error::InvalidColumnType(..)
                    | rusqlite::Error::IntegralValueOutOfRange(..)
                    | rusqlite::Error::Utf8Error(..)
            )
        )
    }
}

impl From<DurableError> for StoreError {
    fn from(error: DurableError) -> Self {
        match error {
            DurableError::Corrupt { what, reason } => StoreError::Corrupt { key: what, reason },
            unreadable if unreadable.is_unreadable_value() => StoreError::Corrupt {
                key: "a stored row".into(),
                reason: unreadable.to_string(),
            },
            other => StoreError::Unavailable(other.to_string()),
        }
    }
}

impl From<DurableError> for BusError {
    fn from(error: DurableError) -> Self {
        BusError::Unavailable(error.to_string())
    }
}

/// What `open` found left over from the previous process and released.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Messages that were in flight: visible again now, their receive counts kept.
    pub in_flight_messages: usize,
    /// `INPROGRESS` idempotency records whose lock was lapsed.
    pub lapsed_locks: usize,
}

/// The open state directory: the database connection, the directory lock and the in-process
/// wake-ups of queue waiters.
pub struct Durable {
    conn: Arc<Mutex<Connection>>,
    /// Operations waiting for the next group commit (`blocking`).
    pending: Arc<Mutex<Pending>>,
    path: PathBuf,
    waiters: Mutex<HashMap<String, Arc<Notify>>>,
    recovered: Recovered,
    // Declared last so it is released after the connection has closed. An operator's
    // connection (`open_operator`) holds none.
    _lock: Option<File>,
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable")
            .field("path", &self.path)
            .field("recovered", &self.recovered)
            .finish_non_exhaustive()
    }
}

impl Durable {
    /// Opens (creating it if needed) the state in `state_dir`, takes the directory's lock, and
    /// releases what the previous process left in flight.
    pub fn open(state_dir: &Path, durability: Durability) -> Result<Arc<Durable>, DurableError> {
        std::fs::create_dir_all(state_dir).map_err(io_error(state_dir))?;
        let lock = lock_directory(&state_dir.join(LOCK_FILE))?;
        let path = state_dir.join(DATABASE_FILE);
        let mut conn = Connection::open(&path)?;
        configure(&conn, durability)?;
        schema::migrate(&mut conn)?;
        let recovered = recover(&mut conn, now_ms())?;
        tracing::info!(
            path = %path.display(),
            in_flight_messages = recovered.in_flight_messages,
            lapsed_locks = recovered.lapsed_locks,
            "durable state opened"
        );
        Ok(Arc::new(Durable {
            conn: Arc::new(Mutex::new(conn)),
            pending: Arc::default(),
            path,
            waiters: Mutex::new(HashMap::new()),
            recovered,
            _lock: Some(lock),
        }))
    }

    /// Opens an existing state directory for the operator commands, beside a `serve` that may
    /// be running on it: no directory lock, nothing recovered (what is in flight belongs to
    /// that process). SQLite's own locking keeps the two connections' transactions apart.
    pub fn open_operator(state_dir: &Path) -> Result<Arc<Durable>, DurableError> {
        let path = state_dir.join(DATABASE_FILE);
        if !path.is_file() {
            return Err(DurableError::Io {
                path,
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no freightbridge state here (is --state-dir the one serve uses?)",
                ),
            });
        }
        let mut conn = Connection::open(&path)?;
        configure(&conn, Durability::Full)?;
        let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if found < schema::VERSION {
            // An older freightctl's state that no serve has upgraded yet: upgrade it here,
            // under the directory lock so a serve starting now waits for nothing half-done.
            let _lock = lock_directory(&state_dir.join(LOCK_FILE))?;
            schema::migrate(&mut conn)?;
        } else if found > schema::VERSION {
            return Err(DurableError::Schema {
                found,
                supported: schema::VERSION,
            });
        }
        Ok(Arc::new(Durable {
            conn: Arc::new(Mutex::new(conn)),
            pending: Arc::default(),
            path,
            waiters: Mutex::new(HashMap::new()),
            recovered: Recovered::default(),
            _lock: None,
        }))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What this open released from the previous process.
    pub fn recovered(&self) -> Recovered {
        self.recovered
    }

    /// Runs `op` on the connection, on this thread.
    fn with<T>(
        &self,
        op: impl FnOnce(&mut Connection) -> Result<T, DurableError>,
    ) -> Result<T, DurableError> {
        op(&mut lock(&self.conn))
    }

    /// Runs `op` on the connection on a blocking thread, for the async ports: in the next group
    /// commit (see the module's notes), answered once that group has committed.
    async fn blocking<T, F>(&self, op: F) -> Result<T, DurableError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DurableError> + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = op(conn);
            let failed = result.is_err();
            let deliver: Deliver = Box::new(move |committed| {
                let _ = answer.send(match committed {
                    Ok(()) => result,
                    Err(reason) => result.and(Err(DurableError::Worker(reason))),
                });
            });
            (failed, deliver)
        });
        let lead = {
            let mut pending = lock(&self.pending);
            pending.jobs.push(job);
            !std::mem::replace(&mut pending.committing, true)
        };
        if lead {
            let (conn, pending) = (self.conn.clone(), self.pending.clone());
            // Not awaited: the committer may go on with later groups after this caller's.
            drop(tokio::task::spawn_blocking(move || {
                commit_groups(&conn, &pending)
            }));
        }
        answered
            .await
            .unwrap_or_else(|_| Err(DurableError::Worker("the operation did not finish".into())))
    }

    /// The wake-up of `queue`'s waiters.
    fn waiter(&self, queue: &str) -> Arc<Notify> {
        lock(&self.waiters)
            .entry(queue.to_owned())
            .or_default()
            .clone()
    }

    /// Something on `queue` may have become visible: wake its waiters.
    fn wake(&self, queue: &str) {
        if let Some(notify) = lock(&self.waiters).get(queue) {
            notify.notify_waiters();
        }
    }
}

/// Runs a blocking database call off the async runtime's threads.
async fn off_thread<T: Send + 'static>(
    op: impl FnOnce() -> Result<T, DurableError> + Send + 'static,
) -> Result<T, DurableError> {
    tokio::task::spawn_blocking(op)
        .await
        .unwrap_or_else(|join| Err(DurableError::Worker(join.to_string())))
}

/// One operation of a group commit: runs on the connection and answers whether it failed and
/// how to tell its caller once the group's commit is known.
type Job = Box<dyn FnOnce(&mut Connection) -> (bool, Deliver) + Send>;
/// Tells one caller its answer, given whether the group committed (or why not).
type Deliver = Box<dyn FnOnce(Result<(), String>) + Send>;

/// The operations waiting for a group commit, and whether a committer is running.
#[derive(Default)]
struct Pending {
    jobs: Vec<Job>,
    committing: bool,
}

/// The committer: commits groups until none is waiting. Should it unwind, the guard lets the
/// next caller start another, and the waiting callers are told (their answers are dropped).
fn commit_groups(conn: &Mutex<Connection>, pending: &Mutex<Pending>) {
    struct Committing<'a>(&'a Mutex<Pending>);
    impl Drop for Committing<'_> {
        fn drop(&mut self) {
            let mut pending = lock(self.0);
            if std::thread::panicking() {
                pending.jobs.clear();
            }
            pending.committing = false;
        }
    }
    let _committing = Committing(pending);
    loop {
        let jobs = {
            let mut pending = lock(pending);
            if pending.jobs.is_empty() {
                return;
            }
            let now = pending.jobs.len().min(GROUP_LIMIT);
            let later = pending.jobs.split_off(now);
            std::mem::replace(&mut pending.jobs, later)
        };
        commit_group(&mut lock(conn), jobs);
    }
}

/// Runs `jobs` in one transaction, each in a savepoint, and answers them after the commit.
fn commit_group(conn: &mut Connection, jobs: Vec<Job>) {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    if let Err(error) = conn.execute_batch("BEGIN IMMEDIATE") {
        tracing::warn!(%error, "group commit could not begin; operations run one by one");
        for job in jobs {
            // Outside a transaction each operation is its own, as without groups.
            if let Ok((_, deliver)) = catch_unwind(AssertUnwindSafe(|| job(conn))) {
                deliver(Ok(()));
            }
        }
        return;
    }
    let mut answers = Vec::with_capacity(jobs.len());
    for job in jobs {
        if let Err(error) = conn.execute_batch("SAVEPOINT operation") {
            // Not run: its caller is told, and the rest of the group goes on.
            tracing::warn!(%error, "savepoint failed");
            drop(job);
            continue;
        }
        let ran = catch_unwind(AssertUnwindSafe(|| job(conn)));
        let undo = !matches!(ran, Ok((false, _)));
        let end = if undo {
            "ROLLBACK TO operation; RELEASE operation"
        } else {
            "RELEASE operation"
        };
        if let Err(error) = conn.execute_batch(end) {
            tracing::warn!(%error, "savepoint could not be closed");
        }
        // A panicking operation dropped its answer while unwinding: its caller hears so.
        if let Ok((_, deliver)) = ran {
            answers.push(deliver);
        }
    }
    let committed = conn.execute_batch("COMMIT").map_err(|error| {
        let _ = conn.execute_batch("ROLLBACK");
        format!("the group commit failed: {error}")
    });
    for deliver in answers {
        deliver(committed.clone());
    }
}

/// One operation's write transaction: its own `BEGIN IMMEDIATE` (the write lock at once, for
/// read-modify-write) when the connection is idle, a savepoint inside a group commit.
enum Tx<'c> {
    Own(Transaction<'c>),
    Nested(Savepoint<'c>),
}

impl std::ops::Deref for Tx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        match self {
            Tx::Own(tx) => tx,
            Tx::Nested(savepoint) => savepoint,
        }
    }
}

impl Tx<'_> {
    fn commit(self) -> rusqlite::Result<()> {
        match self {
            Tx::Own(tx) => tx.commit(),
            Tx::Nested(savepoint) => savepoint.commit(),
        }
    }
}

/// The write transaction of one operation ([`Tx`]).
fn immediate(conn: &mut Connection) -> rusqlite::Result<Tx<'_>> {
    if conn.is_autocommit() {
        Ok(Tx::Own(conn.transaction_with_behavior(
            TransactionBehavior::Immediate,
        )?))
    } else {
        Ok(Tx::Nested(conn.savepoint()?))
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// A duration in whole milliseconds, saturating (a visibility timeout of years is "never").
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// A poisoned lock only means another thread panicked; SQLite rolled its transaction back.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> DurableError {
    let path = path.to_owned();
    move |source| DurableError::Io { path, source }
}

/// The directory's exclusive lock, held as long as the returned file is open.
fn lock_directory(path: &Path) -> Result<File, DurableError> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_error(path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(DurableError::InUse {
            path: path.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(io_error(path)(source)),
    }
}

fn configure(conn: &Connection, durability: Durability) -> Result<(), DurableError> {
    let mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(DurableError::corrupt(
            "journal mode",
            format!("SQLite kept {mode:?} instead of WAL"),
        ));
    }
    conn.pragma_update(None, "synchronous", durability.synchronous())?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // A checkpoint every 32 MB of WAL rather than every 4 MB, and a 32 MB page cache: a page
    // written by many commits is copied back once, and the indexes of a long queue stay cached
    // (the 10 000-webhook drain bench: 73.5 s at SQLite's defaults, 52.3 s with these).
    conn.pragma_update(None, "wal_autocheckpoint", 8192)?;
    conn.pragma_update(None, "cache_size", -32768)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Single node: nobody else holds anything, so every in-flight message is visible again and
/// every in-progress lock has lapsed (its holder is gone, and may have applied its effect).
fn recover(conn: &mut Connection, now_ms: i64) -> Result<Recovered, DurableError> {
    let tx = immediate(conn)?;
    let in_flight_messages = tx.execute(
        "UPDATE messages SET visible_at_ms = ?1 WHERE visible_at_ms > ?1",
        [now_ms],
    )?;
    let lapsed_locks = tx.execute(
        "UPDATE idempotency SET in_progress_expires_at = 0
         WHERE status = ?1 AND in_progress_expires_at IS NOT 0",
        [Status::InProgress.as_str()],
    )?;
    tx.commit()?;
    Ok(Recovered {
        in_flight_messages,
        lapsed_locks,
    })
}

#[cfg(test)]
mod testing {
    use super::*;

    /// A fresh state directory, opened with the default durability.
    pub(super) fn fresh() -> (tempfile::TempDir, Arc<Durable>) {
        let dir = tempfile::tempdir().unwrap();
        let durable = Durable::open(dir.path(), Durability::default()).unwrap();
        (dir, durable)
    }

    /// Opens the directory again after the previous `Durable` was dropped.
    pub(super) fn reopen(dir: &tempfile::TempDir) -> Arc<Durable> {
        Durable::open(dir.path(), Durability::default()).unwrap()
    }

    /// Runs raw SQL, to set up what only a corrupt or old file would hold.
    pub(super) fn raw(durable: &Durable, sql: &str) {
        durable.with(|c| Ok(c.execute_batch(sql)?)).unwrap();
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;

    #[test]
    fn a_second_open_of_a_directory_in_use_fails_until_the_first_is_dropped() {
        let (dir, first) = fresh();
        let second = Durable::open(dir.path(), Durability::Normal);
        match second {
            Err(DurableError::InUse { path }) => assert_eq!(path, dir.path().join(LOCK_FILE)),
            other => panic!("expected InUse, got {other:?}"),
        }
        drop(first);
        let again = reopen(&dir);
        assert_eq!(again.path(), dir.path().join(DATABASE_FILE));
    }

    #[test]
    fn open_creates_the_directory_and_sets_wal_and_the_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("state").join("chain");
        let durable = Durable::open(&nested, Durability::Normal).unwrap();
        let (mode, version, synchronous): (String, i64, i64) = durable
            .with(|c| {
                let mode = c.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
                let version = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
                let sync = c.pragma_query_value(None, "synchronous", |r| r.get(0))?;
                Ok((mode, version, sync))
            })
            .unwrap();
        assert_eq!(mode, "wal");
        assert_eq!(version, schema::VERSION);
        assert_eq!(synchronous, 1, "NORMAL");
        assert!(nested.join(DATABASE_FILE).exists());
    }

    #[test]
    fn full_durability_is_the_default_and_syncs_fully() {
        let (_dir, durable) = fresh();
        let synchronous: i64 = durable
            .with(|c| Ok(c.pragma_query_value(None, "synchronous", |r| r.get(0))?))
            .unwrap();
        assert_eq!(synchronous, 2, "FULL");
    }

    /// Runs `n` operations at once through the group commit: each inserts its number into
    /// table `t`; those whose number `fails` says fail after writing, and those `panics` says
    /// panic after writing. Answers each caller's result and what the table holds after.
    async fn grouped(
        durable: &Arc<Durable>,
        n: i64,
        fails: fn(i64) -> bool,
        panics: fn(i64) -> bool,
    ) -> (Vec<Result<i64, DurableError>>, Vec<i64>) {
        raw(
            durable,
            "CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY)",
        );
        let calls = (0..n).map(|k| {
            let durable = durable.clone();
            async move {
                durable
                    .blocking(move |conn| {
                        let tx = immediate(conn)?;
                        tx.execute("INSERT INTO t (n) VALUES (?1)", [k])?;
                        if panics(k) {
                            panic!("operation {k} panicked");
                        }
                        if fails(k) {
                            return Err(DurableError::corrupt("t", format!("{k} refused")));
                        }
                        tx.commit()?;
                        // What this operation sees: the ones before it in its group included.
                        Ok(conn.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?)
                    })
                    .await
            }
        });
        let results = futures::future::join_all(calls).await;
        let rows = durable
            .with(|c| {
                let mut statement = c.prepare("SELECT n FROM t ORDER BY n")?;
                let rows = statement.query_map([], |r| r.get(0))?;
                Ok(rows.collect::<Result<Vec<i64>, _>>()?)
            })
            .unwrap();
        (results, rows)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn operations_committed_in_groups_are_all_kept_and_answered_after_the_commit() {
        let (dir, durable) = fresh();
        let (results, rows) = grouped(&durable, 200, |_| false, |_| false).await;
        assert_eq!(rows, (0..200).collect::<Vec<_>>());
        let seen: Vec<i64> = results.into_iter().map(Result::unwrap).collect();
        assert!(seen.iter().all(|&count| (1..=200).contains(&count)));
        // Answered means committed: a reopened database has every row.
        drop(durable);
        let again = reopen(&dir);
        let count: i64 = again
            .with(|c| Ok(c.query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))?))
            .unwrap();
        assert_eq!(count, 200);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_or_panicking_operation_undoes_only_its_own_writes() {
        let (_dir, durable) = fresh();
        let (results, rows) = grouped(&durable, 60, |k| k % 7 == 3, |k| k % 11 == 5).await;
        let kept = |k: &i64| k % 7 != 3 && k % 11 != 5;
        assert_eq!(rows, (0..60).filter(kept).collect::<Vec<_>>());
        for (k, result) in (0..60).zip(&results) {
            match result {
                Ok(_) => assert!(kept(&k), "{k} should have failed"),
                Err(DurableError::Corrupt { reason, .. }) => {
                    assert_eq!(*reason, format!("{k} refused"))
                }
                Err(DurableError::Worker(_)) => assert_eq!(k % 11, 5, "{k}: {result:?}"),
                Err(other) => panic!("{k}: {other:?}"),
            }
        }
        // The committer survived the panics: later operations still commit.
        let (_, rows) = grouped(&durable, 0, |_| false, |_| false).await;
        assert_eq!(rows.len(), results.iter().filter(|r| r.is_ok()).count());
        let after = durable
            .blocking(|conn| Ok(conn.execute("INSERT INTO t (n) VALUES (1000)", [])?))
            .await;
        assert_eq!(after.unwrap(), 1);
    }

    #[test]
    fn a_database_from_a_newer_freightctl_is_refused() {
        let (dir, durable) = fresh();
        raw(&durable, "PRAGMA user_version = 99");
        drop(durable);
        match Durable::open(dir.path(), Durability::Normal) {
            Err(DurableError::Schema { found, supported }) => {
                assert_eq!((found, supported), (99, schema::VERSION));
            }
            other => panic!("expected a schema error, got {other:?}"),
        }
    }
}
