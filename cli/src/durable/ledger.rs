//! The reconciler's shipment ledger in the embedded database: one row per shipment, its entry
//! as JSON and a version that each save checks, as the DynamoDB table's conditional update does;
//! the documents beside it (invoice-number index, lane costs) alike in `ledger_docs`.

use freightbridge::idempotency::StoreError;
use freightbridge::ledger::{LedgerDocs, LedgerEntry, LedgerStore, Versioned};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Durable, DurableError, immediate};

impl LedgerStore for Durable {
    async fn load(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        let key = key.to_owned();
        Ok(self.blocking(move |conn| load(conn, &key)).await?)
    }

    async fn save(&self, key: &str, entry: &LedgerEntry, version: u64) -> Result<bool, StoreError> {
        let json = serde_json::to_string(entry).map_err(|e| StoreError::Corrupt {
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
        let key = key.to_owned();
        Ok(self
            .blocking(move |conn| save(conn, &key, &json, version))
            .await?)
    }

    async fn page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, LedgerEntry)>, StoreError> {
        let after = after.unwrap_or("").to_owned();
        Ok(self.blocking(move |conn| page(conn, &after, limit)).await?)
    }
}

impl LedgerDocs for Durable {
    async fn load_doc(&self, key: &str) -> Result<Option<(String, u64)>, StoreError> {
        let key = key.to_owned();
        Ok(self.blocking(move |conn| load_doc(conn, &key)).await?)
    }

    async fn save_doc(&self, key: &str, json: &str, version: u64) -> Result<bool, StoreError> {
        let (key, json) = (key.to_owned(), json.to_owned());
        Ok(self
            .blocking(move |conn| save_doc(conn, &key, &json, version))
            .await?)
    }
}

fn load_doc(conn: &Connection, key: &str) -> Result<Option<(String, u64)>, DurableError> {
    let row: Option<(i64, String)> = conn
        .prepare_cached("SELECT version, doc FROM ledger_docs WHERE key = ?1")?
        .query_row([key], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    row.map(|(version, json)| {
        let version = u64::try_from(version)
            .map_err(|e| DurableError::corrupt(format!("ledger document version of {key}"), e))?;
        Ok((json, version))
    })
    .transpose()
}

fn save_doc(
    conn: &mut Connection,
    key: &str,
    json: &str,
    version: u64,
) -> Result<bool, DurableError> {
    let version = i64::try_from(version)
        .map_err(|e| DurableError::corrupt(format!("ledger document version of {key}"), e))?;
    let tx = immediate(conn)?;
    let written = if version == 1 {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO ledger_docs (key, version, doc) VALUES (?1, 1, ?2)",
        )?
        .execute(params![key, json])?
    } else {
        tx.prepare_cached(
            "UPDATE ledger_docs SET version = ?3, doc = ?2 WHERE key = ?1 AND version = ?3 - 1",
        )?
        .execute(params![key, json, version])?
    };
    tx.commit()?;
    Ok(written == 1)
}

fn parse(key: &str, json: &str) -> Result<LedgerEntry, DurableError> {
    serde_json::from_str(json).map_err(|e| DurableError::corrupt(format!("ledger entry {key}"), e))
}

fn load(conn: &Connection, key: &str) -> Result<Option<Versioned>, DurableError> {
    let row: Option<(i64, String)> = conn
        .prepare_cached("SELECT version, entry FROM ledger WHERE key = ?1")?
        .query_row([key], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    row.map(|(version, json)| {
        Ok(Versioned {
            entry: parse(key, &json)?,
            version: u64::try_from(version)
                .map_err(|e| DurableError::corrupt(format!("ledger version of {key}"), e))?,
        })
    })
    .transpose()
}

fn save(conn: &mut Connection, key: &str, json: &str, version: u64) -> Result<bool, DurableError> {
    let version = i64::try_from(version)
        .map_err(|e| DurableError::corrupt(format!("ledger version of {key}"), e))?;
    let tx = immediate(conn)?;
    let written = if version == 1 {
        tx.prepare_cached("INSERT OR IGNORE INTO ledger (key, version, entry) VALUES (?1, 1, ?2)")?
            .execute(params![key, json])?
    } else {
        tx.prepare_cached(
            "UPDATE ledger SET version = ?3, entry = ?2 WHERE key = ?1 AND version = ?3 - 1",
        )?
        .execute(params![key, json, version])?
    };
    tx.commit()?;
    Ok(written == 1)
}

fn page(
    conn: &Connection,
    after: &str,
    limit: usize,
) -> Result<Vec<(String, LedgerEntry)>, DurableError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut statement =
        conn.prepare_cached("SELECT key, entry FROM ledger WHERE key > ?1 ORDER BY key LIMIT ?2")?;
    let rows = statement.query_map(params![after, limit], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut entries = Vec::new();
    for row in rows {
        let (key, json) = row?;
        let entry = parse(&key, &json)?;
        entries.push((key, entry));
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fresh, reopen};
    use super::*;

    #[tokio::test]
    async fn documents_are_versioned_survive_a_reopen_and_stay_out_of_the_pages() {
        let (dir, durable) = fresh();
        assert!(durable.save_doc("invoice#UPS#1", "{}", 1).await.unwrap());
        assert!(!durable.save_doc("invoice#UPS#1", "{}", 1).await.unwrap());
        assert!(
            !durable
                .save_doc("invoice#UPS#1", "{\"a\":1}", 3)
                .await
                .unwrap()
        );
        assert!(
            durable
                .save_doc("invoice#UPS#1", "{\"a\":1}", 2)
                .await
                .unwrap()
        );
        drop(durable);
        let durable = reopen(&dir);
        assert_eq!(
            durable.load_doc("invoice#UPS#1").await.unwrap(),
            Some(("{\"a\":1}".to_owned(), 2))
        );
        assert_eq!(durable.load_doc("lane#UPS#079#900").await.unwrap(), None);
        assert!(durable.page(None, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn saves_are_versioned_survive_a_reopen_and_page_in_key_order() {
        let (dir, durable) = fresh();
        let mut entry = LedgerEntry::new("1Z1");
        assert!(durable.save("ledger#1Z1", &entry, 1).await.unwrap());
        assert!(
            !durable.save("ledger#1Z1", &entry, 1).await.unwrap(),
            "exists"
        );
        entry.carriers.push("FedEx".into());
        assert!(
            !durable.save("ledger#1Z1", &entry, 3).await.unwrap(),
            "skipped one"
        );
        assert!(durable.save("ledger#1Z1", &entry, 2).await.unwrap());
        assert!(
            durable
                .save("ledger#0A", &LedgerEntry::new("0A"), 1)
                .await
                .unwrap()
        );
        drop(durable);
        let durable = reopen(&dir);
        let stored = durable.load("ledger#1Z1").await.unwrap().unwrap();
        assert_eq!((stored.version, stored.entry), (2, entry));
        assert!(durable.load("ledger#nope").await.unwrap().is_none());
        let first = durable.page(None, 1).await.unwrap();
        assert_eq!(first[0].0, "ledger#0A");
        let rest = durable.page(Some("ledger#0A"), 10).await.unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].0, "ledger#1Z1");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_updates_of_one_shipment_keep_every_change() {
        let (_dir, durable) = fresh();
        let mut tasks = Vec::new();
        for n in 0..24 {
            let durable = durable.clone();
            tasks.push(tokio::spawn(async move {
                freightbridge::ledger::update(&durable, "1Z1", |entry| {
                    entry.carriers.push(format!("c{n}"));
                    freightbridge::ledger::Change::Changed
                })
                .await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let stored = durable.load("ledger#1Z1").await.unwrap().unwrap();
        assert_eq!(stored.entry.carriers.len(), 24);
        assert_eq!(stored.version, 24);
    }
}
