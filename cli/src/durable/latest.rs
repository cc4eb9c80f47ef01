//! Each shipment's latest milestone in the `latest` table: `ordering::place` decides against
//! the stored row inside one immediate transaction, so two racing milestones never both win.
//! The partner time is kept as RFC 3339 with its full precision: the order compares it exactly.

use chrono::{DateTime, SecondsFormat, Utc};
use freightbridge::canonical::ShipmentStatus;
use freightbridge::idempotency::StoreError;
use freightbridge::ordering::{LatestMilestones, Milestone, Placement, place};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::{Durable, DurableError, immediate};

impl LatestMilestones for Durable {
    async fn advance(
        &self,
        key: &str,
        incoming: &Milestone,
        now: DateTime<Utc>,
        expires_at: i64,
    ) -> Result<Placement, StoreError> {
        let (key, incoming) = (key.to_owned(), *incoming);
        Ok(self
            .blocking(move |conn| advance(conn, &key, &incoming, now, expires_at))
            .await?)
    }

    async fn latest(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Milestone>, StoreError> {
        let key = key.to_owned();
        Ok(self.blocking(move |conn| live(conn, &key, now)).await?)
    }
}

fn advance(
    conn: &mut Connection,
    key: &str,
    incoming: &Milestone,
    now: DateTime<Utc>,
    expires_at: i64,
) -> Result<Placement, DurableError> {
    let tx = immediate(conn)?;
    let placement = place(live(&tx, key, now)?.as_ref(), incoming);
    if placement == Placement::Current {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO latest (key, status, occurred_at, event_id, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            key,
            incoming.status.as_str(),
            incoming
                .occurred_at
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
            incoming.event_id.to_string(),
            expires_at,
        ])?;
        tx.commit()?;
    }
    Ok(placement)
}

/// The unexpired latest milestone of `key`.
fn live(
    conn: &Connection,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Option<Milestone>, DurableError> {
    let row = conn
        .prepare_cached(
            "SELECT status, occurred_at, event_id FROM latest
             WHERE key = ?1 AND expires_at > ?2",
        )?
        .query_row(params![key, now.timestamp()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })
        .optional()?;
    row.map(|(status, occurred_at, event_id)| decode(key, &status, &occurred_at, &event_id))
        .transpose()
}

fn decode(
    key: &str,
    status: &str,
    occurred_at: &str,
    event_id: &str,
) -> Result<Milestone, DurableError> {
    let status = ShipmentStatus::ALL
        .into_iter()
        .find(|s| s.as_str() == status)
        .ok_or_else(|| DurableError::corrupt(key, format!("unknown status {status:?}")))?;
    let occurred_at = DateTime::parse_from_rfc3339(occurred_at)
        .map_err(|e| DurableError::corrupt(key, format!("occurred_at {occurred_at:?}: {e}")))?
        .with_timezone(&Utc);
    let event_id = Uuid::parse_str(event_id)
        .map_err(|e| DurableError::corrupt(key, format!("event_id {event_id:?}: {e}")))?;
    Ok(Milestone {
        status,
        occurred_at,
        event_id,
    })
}

#[cfg(test)]
mod tests {
    use ShipmentStatus::*;
    use freightbridge::canonical::event_id;
    use freightbridge::ordering::LatestMilestones;

    use super::super::testing::{fresh, raw, reopen};
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn milestone(status: ShipmentStatus, time: &str, source: &str) -> Milestone {
        Milestone {
            status,
            occurred_at: at(time),
            event_id: event_id("easypost", source, 0),
        }
    }

    #[tokio::test]
    async fn the_latest_moves_forward_only_and_expired_records_count_as_absent() {
        let (_dir, store) = fresh();
        let now = at("2024-08-03T00:00:00Z");
        let expiry = now.timestamp() + 100;
        let transit = milestone(InTransit, "2024-08-02T12:00:00Z", "evt_t");
        let delivered = milestone(Delivered, "2024-08-02T15:00:00Z", "evt_d");
        let late_scan = milestone(InTransit, "2024-08-02T13:00:00Z", "evt_s");
        let advance = |m: Milestone, now, expiry| {
            let store = store.clone();
            async move { store.advance("k", &m, now, expiry).await.unwrap() }
        };
        assert_eq!(advance(transit, now, expiry).await, Placement::Current);
        assert_eq!(advance(delivered, now, expiry).await, Placement::Current);
        assert_eq!(advance(late_scan, now, expiry).await, Placement::History);
        assert_eq!(store.latest("k", now).await.unwrap(), Some(delivered));
        let after_expiry = at("2024-08-03T00:01:40Z");
        assert_eq!(store.latest("k", after_expiry).await.unwrap(), None);
        assert_eq!(
            advance(late_scan, after_expiry, expiry + 200).await,
            Placement::Current
        );
        assert_eq!(
            store.latest("k", after_expiry).await.unwrap(),
            Some(late_scan)
        );
    }

    #[tokio::test]
    async fn the_latest_survives_a_reopen_with_its_exact_partner_time() {
        let (dir, store) = fresh();
        let now = at("2024-08-03T00:00:00Z");
        let precise = Milestone {
            occurred_at: at("2024-08-02T12:00:00.123456789Z"),
            ..milestone(OutForDelivery, "2024-08-02T12:00:00Z", "evt_o")
        };
        store
            .advance("k", &precise, now, now.timestamp() + 100)
            .await
            .unwrap();
        drop(store);
        let store = reopen(&dir);
        assert_eq!(store.latest("k", now).await.unwrap(), Some(precise));
        let a_nanosecond_earlier = Milestone {
            occurred_at: at("2024-08-02T12:00:00.123456788Z"),
            ..milestone(InTransit, "2024-08-02T12:00:00Z", "evt_i")
        };
        let placement = store
            .advance("k", &a_nanosecond_earlier, now, now.timestamp() + 100)
            .await
            .unwrap();
        assert_eq!(placement, Placement::History);
    }

    #[tokio::test]
    async fn racing_milestones_are_placed_one_after_the_other() {
        let (_dir, store) = fresh();
        let now = at("2024-08-03T00:00:00Z");
        let tasks: Vec<_> = (0..8)
            .map(|hour| {
                let store = store.clone();
                let m = milestone(
                    InTransit,
                    &format!("2024-08-02T1{hour}:00:00Z"),
                    &format!("evt_{hour}"),
                );
                tokio::spawn(async move { store.advance("k", &m, now, i64::MAX).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let latest = store.latest("k", now).await.unwrap().unwrap();
        assert_eq!(latest.occurred_at, at("2024-08-02T17:00:00Z"));
    }

    #[tokio::test]
    async fn an_unreadable_milestone_is_corrupt() {
        let (_dir, store) = fresh();
        raw(
            &store,
            "INSERT INTO latest VALUES ('k', 'lost_at_sea', '2024-08-02T12:00:00Z',
             '00000000-0000-0000-0000-000000000000', 9999999999)",
        );
        let now = at("2024-08-03T00:00:00Z");
        assert!(matches!(
            store.latest("k", now).await,
            Err(StoreError::Corrupt { .. })
        ));
    }
}
