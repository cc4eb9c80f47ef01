//! The transform's seen scans: a row per scope in `seen_scopes` (its expiry, moved by every
//! mark) and a row per entry in `seen_entries`, so a mark adds rows instead of rewriting a set.

use std::collections::HashSet;

use freightbridge::idempotency::StoreError;
use freightbridge::seen::SeenStore;
use rusqlite::{Connection, params};

use super::{Durable, DurableError, immediate};

impl SeenStore for Durable {
    async fn seen(&self, scope: &str, now: i64) -> Result<HashSet<String>, StoreError> {
        let scope = scope.to_owned();
        Ok(self.blocking(move |conn| seen(conn, &scope, now)).await?)
    }

    async fn mark(
        &self,
        scope: &str,
        entries: &[String],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        // Nothing to add changes nothing, as with the DynamoDB set (which cannot be empty).
        if entries.is_empty() {
            return Ok(());
        }
        let (scope, entries) = (scope.to_owned(), entries.to_vec());
        Ok(self
            .blocking(move |conn| mark(conn, &scope, &entries, expires_at))
            .await?)
    }
}

fn seen(conn: &Connection, scope: &str, now: i64) -> Result<HashSet<String>, DurableError> {
    let mut statement = conn.prepare_cached(
        "SELECT e.entry FROM seen_entries e JOIN seen_scopes s ON s.scope = e.scope
         WHERE s.scope = ?1 AND s.expires_at > ?2",
    )?;
    let entries = statement
        .query_map(params![scope, now], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(entries)
}

fn mark(
    conn: &mut Connection,
    scope: &str,
    entries: &[String],
    expires_at: i64,
) -> Result<(), DurableError> {
    let tx = immediate(conn)?;
    tx.prepare_cached("INSERT OR REPLACE INTO seen_scopes (scope, expires_at) VALUES (?1, ?2)")?
        .execute(params![scope, expires_at])?;
    {
        let mut insert =
            tx.prepare_cached("INSERT OR IGNORE INTO seen_entries (scope, entry) VALUES (?1, ?2)")?;
        for entry in entries {
            insert.execute(params![scope, entry])?;
        }
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::DateTime;

    use super::super::testing::{fresh, reopen};
    use super::*;

    fn keys(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn set(items: &[&str]) -> HashSet<String> {
        keys(items).into_iter().collect()
    }

    #[tokio::test]
    async fn marked_entries_are_seen_in_their_scope_only_until_they_expire() {
        let (_dir, store) = fresh();
        assert!(store.seen("ep#1", 100).await.unwrap().is_empty());
        store.mark("ep#1", &keys(&["a", "b"]), 200).await.unwrap();
        store.mark("ep#1", &keys(&["c", "a"]), 300).await.unwrap();
        store.mark("ep#1", &[], 100).await.unwrap();
        assert_eq!(
            store.seen("ep#1", 250).await.unwrap(),
            set(&["a", "b", "c"])
        );
        assert!(store.seen("ep#2", 250).await.unwrap().is_empty());
        assert!(store.seen("ep#1", 300).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn seen_sets_survive_a_reopen_and_sweep_removes_expired_ones() {
        let (dir, store) = fresh();
        store.mark("ep#1", &keys(&["a"]), 200).await.unwrap();
        store.mark("ep#2", &keys(&["b"]), 400).await.unwrap();
        drop(store);
        let store = reopen(&dir);
        assert_eq!(store.seen("ep#1", 100).await.unwrap(), set(&["a"]));
        let swept = store
            .sweep(DateTime::from_timestamp(300, 0).unwrap(), None)
            .unwrap();
        assert_eq!(
            (swept.seen_scopes, swept.seen_entries, swept.total()),
            (1, 1, 2),
            "one scope and its one entry"
        );
        assert!(store.seen("ep#1", 100).await.unwrap().is_empty());
        assert_eq!(store.seen("ep#2", 100).await.unwrap(), set(&["b"]));
    }
}
