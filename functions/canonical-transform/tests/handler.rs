//! The transform handler against the in-memory bus, with the SQS sample event from `events/`.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use canonical_transform::{MAX_ROW_DEAD_LETTERS, Transform};
use freightbridge::batch::{MemoryDeadLetters, RecordContext};
use freightbridge::bus::Envelope;
use freightbridge::bus::memory::MemoryBus;
use freightbridge::canonical::{self, CanonicalEvent};
use freightbridge::config::PartnersFile;
use freightbridge::failure::FailureClass;
use freightbridge::idempotency::sha256_tag;
use freightbridge::partners::Adapters;
use freightbridge::webhook::{ReceivedWebhook, WebhookBody, ingress_id};
use serde_json::Value;

const SQS: &str = include_str!("../../../events/sqs-transform-batch.json");
const PARTNERS: &str = include_str!("../../../events/partners.local.toml");
const CSV_WITH_BAD_ROW: &str =
    include_str!("../../../events/partners/csv-portal-export-with-bad-row.csv");

fn adapters() -> Arc<Adapters> {
    Arc::new(Adapters::from_partners(&PartnersFile::parse(PARTNERS).unwrap()).unwrap())
}

fn record_body() -> String {
    let event: SqsEvent = serde_json::from_str(SQS).unwrap();
    event.records[0].body.clone().unwrap()
}

/// A transform whose dead letters can be read back.
fn transform_with(
    bus: Arc<MemoryBus>,
) -> (
    Transform<Arc<MemoryBus>, Arc<MemoryDeadLetters>>,
    Arc<MemoryDeadLetters>,
) {
    let dlq = Arc::new(MemoryDeadLetters::new());
    (Transform::new(bus, adapters(), dlq.clone()), dlq)
}

/// The SQS record ingress would have queued for a CSV file from the demo's `csv-portal`.
fn csv_record(body: &str) -> String {
    let delivery_id = sha256_tag(body.as_bytes());
    let webhook = ReceivedWebhook {
        ingress_id: ingress_id("csv-portal", &delivery_id),
        partner: "csv-portal".into(),
        format: "csv".into(),
        delivery_id,
        received_at: "2024-08-03T12:00:00Z".parse().unwrap(),
        content_type: Some("text/csv".into()),
        body: WebhookBody::from_bytes(body.as_bytes()),
    };
    let mut envelope: Envelope<Value> = serde_json::from_str(&record_body()).unwrap();
    envelope.detail = serde_json::to_value(webhook).unwrap();
    serde_json::to_string(&envelope).unwrap()
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
    transform_with(bus.clone())
        .0
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
    let transform = transform_with(bus.clone()).0;
    transform.handle_record(ctx(record_body())).await.unwrap();
    transform.handle_record(ctx(record_body())).await.unwrap();
    let published = bus.published();
    assert_eq!(published[0].detail, published[1].detail);
}

#[tokio::test]
async fn malformed_envelope_and_payload_fail_permanently() {
    let transform = transform_with(Arc::new(MemoryBus::new())).0;
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
    transform_with(bus.clone())
        .0
        .handle_record(ctx(serde_json::to_string(&envelope).unwrap()))
        .await
        .unwrap();
    assert!(bus.published().is_empty());
}

#[tokio::test]
async fn bus_outage_is_retryable() {
    let bus = Arc::new(MemoryBus::new());
    bus.set_unavailable(true);
    let err = transform_with(bus)
        .0
        .handle_record(ctx(record_body()))
        .await
        .unwrap_err();
    assert_eq!(err.class, freightbridge::failure::FailureClass::Retryable);
}

#[tokio::test]
async fn webhook_for_a_partner_no_longer_configured_fails_permanently() {
    let mut envelope: Envelope<Value> = serde_json::from_str(&record_body()).unwrap();
    envelope.detail["partner"] = Value::String("gone".into());
    let err = transform_with(Arc::new(MemoryBus::new()))
        .0
        .handle_record(ctx(serde_json::to_string(&envelope).unwrap()))
        .await
        .unwrap_err();
    assert_eq!(err.code, "unknown_partner");
    assert_eq!(err.class, freightbridge::failure::FailureClass::Permanent);
}

#[tokio::test]
async fn csv_bad_row_is_dead_lettered_with_its_line_while_the_good_rows_are_published() {
    let bus = Arc::new(MemoryBus::new());
    let (transform, dlq) = transform_with(bus.clone());
    let body = csv_record(CSV_WITH_BAD_ROW);
    transform
        .handle_record(RecordContext {
            message_id: "m-csv".into(),
            body: body.clone(),
            receive_count: 1,
        })
        .await
        .unwrap();

    let published = bus.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].detail_type, "shipment.status_changed");
    assert_eq!(
        published[0].detail["shipment"]["tracking_number"],
        "5551234004"
    );

    let letters = dlq.letters();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.reason.code, "bad_row");
    assert_eq!(letter.reason.class, FailureClass::Permanent);
    assert!(
        letter.reason.message.starts_with("line 4: `occurred_at`"),
        "{}",
        letter.reason.message
    );
    assert_eq!(letter.consumer, "canonical-transform");
    assert_eq!(letter.message_id, "m-csv");
    // The record as it came, so it can be redriven once the file or the mapping is fixed.
    assert_eq!(letter.body, body);
}

#[tokio::test]
async fn a_file_of_many_bad_rows_is_dead_lettered_in_bounded_letters() {
    let mut file = String::from(
        "PRO Number,Status,Status Date,Status Time,City,State,Zip,BOL,Remarks,Signed By\n",
    );
    file.push_str("5550000000,Picked Up,08/01/2024,09:15,CHICAGO,IL,60638,WH/OUT/1,ok,\n");
    for n in 1..=30 {
        file.push_str(&format!(
            "555000{n:04},Picked Up,13/01/2024,09:15,CHICAGO,IL,60638,WH/OUT/1,bad date,\n"
        ));
    }
    let bus = Arc::new(MemoryBus::new());
    let (transform, dlq) = transform_with(bus.clone());
    transform
        .handle_record(ctx(csv_record(&file)))
        .await
        .unwrap();
    assert_eq!(bus.published().len(), 1);
    let letters = dlq.letters();
    assert_eq!(letters.len(), MAX_ROW_DEAD_LETTERS + 1);
    assert!(letters[0].reason.message.starts_with("line 3: "));
    // Rows 3..=22 are told one by one; the summary counts the other 10 from line 23.
    assert_eq!(
        letters[MAX_ROW_DEAD_LETTERS].reason.message,
        "10 more bad rows, from line 23"
    );
}

#[tokio::test]
async fn an_unreachable_dead_letter_queue_makes_the_record_retryable_after_publishing() {
    let bus = Arc::new(MemoryBus::new());
    let (transform, dlq) = transform_with(bus.clone());
    dlq.set_refusing(true);
    let err = transform
        .handle_record(ctx(csv_record(CSV_WITH_BAD_ROW)))
        .await
        .unwrap_err();
    assert_eq!(err.class, FailureClass::Retryable);
    assert_eq!(err.code, "dead_letter_unavailable");
    // The retry republishes the same event, which the consumers dedupe.
    dlq.set_refusing(false);
    transform
        .handle_record(ctx(csv_record(CSV_WITH_BAD_ROW)))
        .await
        .unwrap();
    let published = bus.published();
    assert_eq!(published.len(), 2);
    assert_eq!(published[0].detail, published[1].detail);
    assert_eq!(dlq.letters().len(), 1);
}

#[tokio::test]
async fn every_demo_sample_of_the_configured_formats_is_transformed() {
    let samples = [
        (
            "csv-portal",
            "csv",
            include_str!("../../../events/partners/csv-portal-status-export.csv"),
            5,
        ),
        (
            "tms",
            "mapped-json",
            include_str!("../../../events/partners/tms-shipment-delivered.json"),
            1,
        ),
        (
            "tms",
            "mapped-json",
            include_str!("../../../events/partners/tms-shipment-out-for-delivery.json"),
            1,
        ),
        (
            "tms-bookings",
            "canonical",
            include_str!("../../../events/partners/tms-bookings-freight-cost-estimated.json"),
            1,
        ),
    ];
    for (partner, format, body, count) in samples {
        let bus = Arc::new(MemoryBus::new());
        let (transform, dlq) = transform_with(bus.clone());
        let mut envelope: Envelope<Value> = serde_json::from_str(&record_body()).unwrap();
        envelope.detail["partner"] = partner.into();
        envelope.detail["format"] = format.into();
        envelope.detail["delivery_id"] = "msg_sample".into();
        envelope.detail["body"] = serde_json::json!({"text": body});
        transform
            .handle_record(ctx(serde_json::to_string(&envelope).unwrap()))
            .await
            .unwrap();
        assert_eq!(bus.published().len(), count, "{partner}");
        assert!(dlq.letters().is_empty(), "{partner}");
    }
}
