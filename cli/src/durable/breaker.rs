//! The circuit breaker's versioned state in `breakers`. Each compare-and-swap is one statement
//! (an insert that yields to an existing row, or an update guarded by the version), so it is
//! atomic without a transaction.

use freightbridge::breaker::{BreakerState, BreakerStore, Versioned};
use freightbridge::idempotency::StoreError;
use rusqlite::{Connection, OptionalExtension, params};

use super::{Durable, DurableError};

impl BreakerStore for Durable {
    async fn load(&self, name: &str) -> Result<Versioned, StoreError> {
        let name = name.to_owned();
        Ok(self.blocking(move |conn| load(conn, &name)).await?)
    }

    async fn swap(
        &self,
        name: &str,
        expected: u64,
        state: &BreakerState,
    ) -> Result<bool, StoreError> {
        let (name, state) = (name.to_owned(), *state);
        Ok(self
            .blocking(move |conn| swap(conn, &name, expected, &state))
            .await?)
    }
}

fn load(conn: &Connection, name: &str) -> Result<Versioned, DurableError> {
    let row = conn
        .prepare_cached(
            "SELECT version, consecutive_failures, open_until_ms, probe_until_ms, trips
             FROM breakers WHERE name = ?1",
        )?
        .query_row([name], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                BreakerState {
                    consecutive_failures: row.get(1)?,
                    open_until: row.get(2)?,
                    probe_until: row.get(3)?,
                    trips: row.get(4)?,
                },
            ))
        })
        .optional()?;
    let Some((version, state)) = row else {
        return Ok(Versioned::default());
    };
    let version = u64::try_from(version)
        .map_err(|_| DurableError::corrupt(name, format!("negative version {version}")))?;
    Ok(Versioned { state, version })
}

fn swap(
    conn: &Connection,
    name: &str,
    expected: u64,
    state: &BreakerState,
) -> Result<bool, DurableError> {
    // No stored version is that large: the writer's view is stale by definition.
    let Some(next) = i64::try_from(expected).ok().and_then(|v| v.checked_add(1)) else {
        return Ok(false);
    };
    let values = params![
        name,
        next,
        state.consecutive_failures,
        state.open_until,
        state.probe_until,
        state.trips,
    ];
    let written = if expected == 0 {
        conn.prepare_cached(
            "INSERT INTO breakers
                (name, version, consecutive_failures, open_until_ms, probe_until_ms, trips)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (name) DO NOTHING",
        )?
        .execute(values)?
    } else {
        // `?2 - 1` is `expected`: the version this writer read.
        conn.prepare_cached(
            "UPDATE breakers SET version = ?2, consecutive_failures = ?3, open_until_ms = ?4,
                probe_until_ms = ?5, trips = ?6
             WHERE name = ?1 AND version = ?2 - 1",
        )?
        .execute(values)?
    };
    Ok(written == 1)
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use freightbridge::breaker::{Admission, Breaker, BreakerConfig, Observation, Transition};

    use super::super::testing::{fresh, reopen};
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn config() -> BreakerConfig {
        BreakerConfig {
            threshold: 3,
            cooldown: chrono::Duration::seconds(10),
            max_cooldown: chrono::Duration::seconds(25),
            probe_lease: chrono::Duration::seconds(5),
            trust_closed_for: std::time::Duration::ZERO,
        }
    }

    fn opened(failures: u32) -> BreakerState {
        BreakerState {
            consecutive_failures: failures,
            open_until: Some(1_000),
            probe_until: None,
            trips: 1,
        }
    }

    #[tokio::test]
    async fn an_absent_breaker_loads_as_version_zero_closed() {
        let (_dir, store) = fresh();
        assert_eq!(store.load("odoo").await.unwrap(), Versioned::default());
    }

    #[tokio::test]
    async fn of_two_writers_with_the_same_version_only_the_first_swaps() {
        let (_dir, store) = fresh();
        let a = store.load("odoo").await.unwrap();
        let b = store.load("odoo").await.unwrap();
        assert!(store.swap("odoo", a.version, &opened(3)).await.unwrap());
        assert!(!store.swap("odoo", b.version, &opened(4)).await.unwrap());
        let now = store.load("odoo").await.unwrap();
        assert_eq!(now.version, 1);
        assert_eq!(now.state, opened(3));
        assert!(store.swap("odoo", now.version, &opened(4)).await.unwrap());
        assert!(!store.swap("odoo", now.version, &opened(5)).await.unwrap());
        assert!(!store.swap("odoo", u64::MAX, &opened(5)).await.unwrap());
        let last = store.load("odoo").await.unwrap();
        assert_eq!((last.version, last.state), (2, opened(4)));
    }

    #[tokio::test]
    async fn the_breaker_state_survives_a_reopen() {
        let (dir, store) = fresh();
        assert!(store.swap("odoo", 0, &opened(3)).await.unwrap());
        drop(store);
        let store = reopen(&dir);
        let loaded = store.load("odoo").await.unwrap();
        assert_eq!((loaded.version, loaded.state), (1, opened(3)));
    }

    #[tokio::test]
    async fn breakers_share_their_state_through_the_store_and_one_caller_wins_the_probe() {
        let (_dir, store) = fresh();
        let a = Breaker::new(store.clone(), "odoo", config());
        let b = Breaker::new(store.clone(), "odoo", config());
        let now = t("2026-12-03T10:00:00Z");
        for _ in 0..2 {
            a.observe(Observation::Unreachable, now).await.unwrap();
        }
        let transition = b.observe(Observation::Unreachable, now).await.unwrap();
        assert!(matches!(transition, Some(Transition::Opened { .. })));
        assert!(matches!(a.admit(now).await, Admission::Wait { .. }));
        let later = now + chrono::Duration::seconds(11);
        assert_eq!(a.admit(later).await, Admission::Probe);
        assert!(matches!(b.admit(later).await, Admission::Wait { .. }));
        let closed = a.observe(Observation::Answered, later).await.unwrap();
        assert_eq!(closed, Some(Transition::Closed));
        assert_eq!(b.admit(later).await, Admission::Call);
    }
}
