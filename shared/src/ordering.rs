//! Milestone order: partners deliver out of order, so each shipment keeps its latest milestone
//! (by partner time, `occurred_at`). A milestone older than that one, or a non-terminal one after
//! a terminal one, is history: it is still recorded, but never shown as the current status.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::canonical::{CanonicalEvent, EventBody, ShipmentStatus};
use crate::idempotency::{StoreError, scoped_key};

/// How long a shipment's latest milestone is remembered after it last moved: far longer than
/// any shipment takes, and refreshed by every newer milestone.
pub const LATEST_TTL: Duration = Duration::days(90);

/// A milestone as the ordering sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Milestone {
    pub status: ShipmentStatus,
    pub occurred_at: DateTime<Utc>,
    /// The event it came from: a retry of the event that set the latest is still current.
    pub event_id: Uuid,
}

impl Milestone {
    /// The milestone an event reports; `None` for finance events.
    pub fn of(event: &CanonicalEvent) -> Option<Milestone> {
        let status = match &event.body {
            EventBody::StatusChanged(change) => change.status,
            EventBody::Delivered(delivery) => delivery.status,
            _ => return None,
        };
        Some(Milestone {
            status,
            occurred_at: event.occurred_at,
            event_id: event.event_id,
        })
    }
}

/// Where an incoming milestone belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The shipment's status now: it becomes the latest.
    Current,
    /// Older than the latest (or after the shipment ended): recorded as history only.
    History,
}

/// The ordering rule. A milestone at the same partner time as the latest is current (partners
/// that report whole minutes give simultaneous scans; the later one is not "earlier"), unless it
/// would reopen a shipment that ended. The stores apply exactly this rule atomically.
pub fn place(latest: Option<&Milestone>, incoming: &Milestone) -> Placement {
    let Some(latest) = latest else {
        return Placement::Current;
    };
    if latest.event_id == incoming.event_id {
        return Placement::Current;
    }
    let older = incoming.occurred_at < latest.occurred_at;
    let reopens = latest.status.is_terminal() && !incoming.status.is_terminal();
    if older || reopens {
        Placement::History
    } else {
        Placement::Current
    }
}

/// The record key of a shipment's latest milestone: `latest#<carrier or partner>#<tracking
/// number>`, lower case (the same shipment heard from two partners meets in one record when both
/// name the carrier). `None` without a tracking number: nothing to order by.
pub fn latest_key(event: &CanonicalEvent) -> Option<String> {
    let tracking = event.shipment.tracking_number.trim();
    if tracking.is_empty() {
        return None;
    }
    let owner = event
        .shipment
        .carrier
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .unwrap_or(&event.partner);
    Some(scoped_key(
        "latest",
        &format!("{owner}#{tracking}").to_lowercase(),
    ))
}

/// Each shipment's latest milestone.
pub trait LatestMilestones: Send + Sync {
    /// Records `incoming` as the latest of `key` when `place` says it is current against the
    /// stored one, atomically (two racing milestones never both win against a stale read), and
    /// answers the placement. A record whose expiry (Unix seconds) is before `now` counts as
    /// absent; a moved record expires at `expires_at`.
    fn advance(
        &self,
        key: &str,
        incoming: &Milestone,
        now: DateTime<Utc>,
        expires_at: i64,
    ) -> impl Future<Output = Result<Placement, StoreError>> + Send;

    fn latest(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Milestone>, StoreError>> + Send;
}

impl<T: LatestMilestones> LatestMilestones for std::sync::Arc<T> {
    fn advance(
        &self,
        key: &str,
        incoming: &Milestone,
        now: DateTime<Utc>,
        expires_at: i64,
    ) -> impl Future<Output = Result<Placement, StoreError>> + Send {
        (**self).advance(key, incoming, now, expires_at)
    }

    fn latest(
        &self,
        key: &str,
        now: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<Milestone>, StoreError>> + Send {
        (**self).latest(key, now)
    }
}

/// Places an event's milestone in the store: `Current` for events that carry none or have no
/// tracking number (nothing to compare with).
pub async fn place_event(
    store: &impl LatestMilestones,
    event: &CanonicalEvent,
    now: DateTime<Utc>,
) -> Result<Placement, StoreError> {
    let (Some(milestone), Some(key)) = (Milestone::of(event), latest_key(event)) else {
        return Ok(Placement::Current);
    };
    let expires_at = (now + LATEST_TTL).timestamp();
    store.advance(&key, &milestone, now, expires_at).await
}

/// The in-memory latest milestones, for the local chain and tests: `place` under one lock.
#[derive(Debug, Default)]
pub struct MemoryLatest {
    latest: Mutex<HashMap<String, (Milestone, i64)>>,
}

impl MemoryLatest {
    pub fn new() -> Self {
        Self::default()
    }

    /// The unexpired latest milestone of `key`, under the caller's lock.
    fn live(
        latest: &HashMap<String, (Milestone, i64)>,
        key: &str,
        now: DateTime<Utc>,
    ) -> Option<Milestone> {
        latest
            .get(key)
            .filter(|(_, expiry)| *expiry > now.timestamp())
            .map(|(m, _)| *m)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Milestone, i64)>> {
        self.latest.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl LatestMilestones for MemoryLatest {
    async fn advance(
        &self,
        key: &str,
        incoming: &Milestone,
        now: DateTime<Utc>,
        expires_at: i64,
    ) -> Result<Placement, StoreError> {
        let mut latest = self.lock();
        let placement = place(Self::live(&latest, key, now).as_ref(), incoming);
        if placement == Placement::Current {
            latest.insert(key.to_owned(), (*incoming, expires_at));
        }
        Ok(placement)
    }

    async fn latest(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Milestone>, StoreError> {
        Ok(Self::live(&self.lock(), key, now))
    }
}

#[cfg(test)]
mod tests {
    use crate::canonical::{SCHEMA, ShipmentRef, StatusChange, event_id};

    use super::*;
    use ShipmentStatus::*;

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

    #[test]
    fn placement_table() {
        use Placement::*;
        let noon = "2024-08-02T12:00:00Z";
        let earlier = "2024-08-02T09:00:00Z";
        let later = "2024-08-02T15:00:00Z";
        let cases = [
            ("first milestone", None, (InTransit, noon), Current),
            (
                "older",
                Some((InTransit, noon)),
                (PickedUp, earlier),
                History,
            ),
            (
                "equal time",
                Some((InTransit, noon)),
                (OutForDelivery, noon),
                Current,
            ),
            (
                "newer",
                Some((InTransit, noon)),
                (OutForDelivery, later),
                Current,
            ),
            (
                "non-terminal after delivered",
                Some((Delivered, noon)),
                (InTransit, later),
                History,
            ),
            (
                "non-terminal at delivery time",
                Some((Delivered, noon)),
                (OutForDelivery, noon),
                History,
            ),
            (
                "older in transit after delivered",
                Some((Delivered, noon)),
                (InTransit, earlier),
                History,
            ),
            (
                "delivered after in transit",
                Some((InTransit, noon)),
                (Delivered, later),
                Current,
            ),
            (
                "delivered older than in transit",
                Some((InTransit, noon)),
                (Delivered, earlier),
                History,
            ),
            (
                "returned after delivered",
                Some((Delivered, noon)),
                (Returned, later),
                Current,
            ),
            (
                "exception after returned",
                Some((Returned, noon)),
                (Exception, later),
                History,
            ),
            (
                "in transit after an exception",
                Some((Exception, noon)),
                (InTransit, later),
                Current,
            ),
            (
                "in transit after cancelled",
                Some((Cancelled, noon)),
                (InTransit, later),
                History,
            ),
        ];
        for (name, latest, (status, time), expected) in cases {
            let latest = latest.map(|(s, t)| milestone(s, t, "evt_latest"));
            let incoming = milestone(status, time, "evt_incoming");
            assert_eq!(place(latest.as_ref(), &incoming), expected, "{name}");
        }
    }

    #[test]
    fn a_retry_of_the_event_that_set_the_latest_is_still_current() {
        let delivered = milestone(Delivered, "2024-08-02T12:00:00Z", "evt_1");
        assert_eq!(place(Some(&delivered), &delivered), Placement::Current);
    }

    #[test]
    fn terminal_statuses_are_the_ends_of_a_shipment() {
        let terminal: Vec<_> = ShipmentStatus::ALL
            .into_iter()
            .filter(|s| s.is_terminal())
            .collect();
        assert_eq!(terminal, vec![Delivered, Returned, Cancelled]);
    }

    fn status_event(carrier: Option<&str>, tracking: &str) -> CanonicalEvent {
        CanonicalEvent {
            schema: SCHEMA.into(),
            event_id: event_id("easypost", "evt_1", 0),
            partner: "easypost".into(),
            source_event_id: "evt_1".into(),
            correlation_id: "evt_1".into(),
            occurred_at: at("2024-08-02T18:50:00Z"),
            received_at: at("2024-08-02T19:26:52Z"),
            shipment: ShipmentRef {
                tracking_number: tracking.into(),
                carrier: carrier.map(Into::into),
                reference: None,
            },
            body: EventBody::StatusChanged(StatusChange {
                status: InTransit,
                status_detail: None,
                raw_status: None,
                location: None,
                message: None,
                eta: None,
            }),
        }
    }

    #[test]
    fn the_key_names_the_carrier_or_else_the_partner_and_the_tracking_number() {
        let key = |carrier, tracking| latest_key(&status_event(carrier, tracking));
        assert_eq!(
            key(Some(" UPS "), "1Z999AA1"),
            Some("latest#ups#1z999aa1".into())
        );
        assert_eq!(
            key(None, "1Z999AA1"),
            Some("latest#easypost#1z999aa1".into())
        );
        assert_eq!(
            key(Some(""), "1Z999AA1"),
            Some("latest#easypost#1z999aa1".into())
        );
        assert_eq!(key(Some("UPS"), "  "), None);
        let long = key(Some("UPS"), &"9".repeat(3000)).unwrap();
        assert!(
            long.starts_with("latest#sha256:") && long.len() < 100,
            "{long}"
        );
    }

    #[tokio::test]
    async fn the_memory_store_moves_forward_only_and_forgets_expired_records() {
        let store = MemoryLatest::new();
        let now = at("2024-08-03T00:00:00Z");
        let expiry = now.timestamp() + 100;
        let transit = milestone(InTransit, "2024-08-02T12:00:00Z", "evt_t");
        let delivered = milestone(Delivered, "2024-08-02T15:00:00Z", "evt_d");
        let late_scan = milestone(InTransit, "2024-08-02T13:00:00Z", "evt_s");
        assert_eq!(
            store.advance("k", &transit, now, expiry).await.unwrap(),
            Placement::Current
        );
        assert_eq!(
            store.advance("k", &delivered, now, expiry).await.unwrap(),
            Placement::Current
        );
        assert_eq!(
            store.advance("k", &late_scan, now, expiry).await.unwrap(),
            Placement::History
        );
        assert_eq!(store.latest("k", now).await.unwrap(), Some(delivered));
        let after_expiry = at("2024-08-03T00:01:40Z");
        assert_eq!(store.latest("k", after_expiry).await.unwrap(), None);
        assert_eq!(
            store
                .advance("k", &late_scan, after_expiry, expiry + 200)
                .await
                .unwrap(),
            Placement::Current
        );
    }
}
