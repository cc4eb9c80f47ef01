//! What the poster is handed in the tests: an SQS record carrying a canonical event as the bus
//! delivers it, and the idempotency record an attempt leaves when it dies after writing to Odoo.

use chrono::{Duration, Utc};
use freightbridge::batch::RecordContext;
use freightbridge::bus::Envelope;
use freightbridge::canonical::{BUS_SOURCE, CanonicalEvent};
use freightbridge::idempotency::{IdempotencyRecord, IdempotencyStore, Status};

/// The SQS record of `event`'s `receive_count`-th delivery to the poster's queue.
pub fn record(event: &CanonicalEvent, receive_count: u32) -> RecordContext {
    let envelope = Envelope {
        version: Some("0".into()),
        id: format!("bus-{}", event.event_id),
        detail_type: event.event_type().into(),
        source: BUS_SOURCE.into(),
        account: None,
        time: Utc::now(),
        region: None,
        resources: Vec::new(),
        detail: event,
    };
    RecordContext {
        message_id: format!("m-{}-{receive_count}", event.event_id),
        body: serde_json::to_string(&envelope).expect("an event serialises"),
        receive_count,
    }
}

/// An attempt that wrote to Odoo and died before completing its record: the event's key in
/// progress with a lapsed lock, so the next delivery looks for its own earlier write.
pub async fn crashed_attempt(store: &impl IdempotencyStore, event: &CanonicalEvent) {
    let now = Utc::now();
    let stale = IdempotencyRecord {
        key: format!("odoo#{}", event.event_id),
        status: Status::InProgress,
        expires_at: (now + Duration::days(7)).timestamp(),
        in_progress_expires_at: Some((now - Duration::seconds(1)).timestamp_millis()),
        payload_hash: None,
        result: None,
    };
    store
        .put_in_progress(&stale, now)
        .await
        .expect("the store takes the stale record");
}
