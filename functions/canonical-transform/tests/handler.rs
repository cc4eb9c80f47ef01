//! The transform handler against the in-memory bus, with the SQS sample event from `events/`.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use canonical_transform::Transform;
use freightbridge::batch::RecordContext;
use freightbridge::bus::Envelope;
use freightbridge::bus::memory::MemoryBus;
use freightbridge::canonical::{self, CanonicalEvent};
use freightbridge::config::PartnersFile;
use freightbridge::partners::Adapters;
use serde_json::Value;

const SQS: &str = include_str!("../../../events/sqs-transform-batch.json");
const PARTNERS: &str = include_str!("../../../events/partners.local.toml");

fn adapters() -> Arc<Adapters> {
    Arc::new(Adapters::from_partners(&PartnersFile::parse(PARTNERS).unwrap()).unwrap())
}

fn record_body() -> String {
    let event: SqsEvent = serde_json::from_str(SQS).unwrap();
    event.records[0].body.clone().unwrap()
}

fn ctx(body: String) -> RecordContext {
    RecordContext {
        message_id: "m1".into(),
        body,
        receive_count: 1,
    }
}

#[tokio::test]
async fn accepted_easypost_webhook_becomes_a_published_canonical_event() {
    let bus = Arc::new(MemoryBus::new());
    Transform::new(bus.clone(), adapters())
        .handle_record(ctx(record_body()))
        .await
        .unwrap();
    let published = bus.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].source, canonical::BUS_SOURCE);
    assert_eq!(published[0].detail_type, "shipment.status_changed");
    let event: CanonicalEvent = serde_json::from_value(published[0].detail.clone()).unwrap();
    assert_eq!(event.shipment.tracking_number, "1");
    assert_eq!(event.source_event_id, "evt_1");
    assert_eq!(event.event_id, canonical::event_id("easypost", "evt_1", 0));
}

#[tokio::test]
async fn redelivered_record_republishes_identical_events() {
    let bus = Arc::new(MemoryBus::new());
    let transform = Transform::new(bus.clone(), adapters());
    transform.handle_record(ctx(record_body())).await.unwrap();
    transform.handle_record(ctx(record_body())).await.unwrap();
    let published = bus.published();
    assert_eq!(published[0].detail, published[1].detail);
}

#[tokio::test]
async fn malformed_envelope_and_payload_fail_permanently() {
    let transform = Transform::new(Arc::new(MemoryBus::new()), adapters());
    let err = transform
        .handle_record(ctx("not json".into()))
        .await
        .unwrap_err();
    assert_eq!(err.code, "malformed_envelope");
    assert_eq!(err.class, freightbridge::failure::FailureClass::Permanent);

    let mut envelope: Envelope<Value> = serde_json::from_str(&record_body()).unwrap();
    envelope.detail["body"] =
        serde_json::json!({"text": "{\"id\": \"evt_2\", \"description\": \"tracker.updated\"}"});
    let err = transform
        .handle_record(ctx(serde_json::to_string(&envelope).unwrap()))
        .await
        .unwrap_err();
    assert_eq!(err.code, "malformed_payload");
}

#[tokio::test]
async fn unsupported_event_kind_is_acknowledged_without_events() {
    let bus = Arc::new(MemoryBus::new());
    let mut envelope: Envelope<Value> = serde_json::from_str(&record_body()).unwrap();
    envelope.detail["body"] = serde_json::json!({"text": "{\"id\": \"evt_3\", \"object\": \"Event\", \"description\": \"batch.updated\", \"result\": {}}"});
    Transform::new(bus.clone(), adapters())
        .handle_record(ctx(serde_json::to_string(&envelope).unwrap()))
        .await
        .unwrap();
    assert!(bus.published().is_empty());
}

#[tokio::test]
async fn bus_outage_is_retryable() {
    let bus = Arc::new(MemoryBus::new());
    bus.set_unavailable(true);
    let err = Transform::new(bus, adapters())
        .handle_record(ctx(record_body()))
        .await
        .unwrap_err();
    assert_eq!(err.class, freightbridge::failure::FailureClass::Retryable);
}

#[tokio::test]
async fn webhook_for_a_partner_no_longer_configured_fails_permanently() {
    let mut envelope: Envelope<Value> = serde_json::from_str(&record_body()).unwrap();
    envelope.detail["partner"] = Value::String("gone".into());
    let err = Transform::new(Arc::new(MemoryBus::new()), adapters())
        .handle_record(ctx(serde_json::to_string(&envelope).unwrap()))
        .await
        .unwrap_err();
    assert_eq!(err.code, "unknown_partner");
    assert_eq!(err.class, freightbridge::failure::FailureClass::Permanent);
}
