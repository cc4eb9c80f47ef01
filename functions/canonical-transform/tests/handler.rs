//! The transform handler against the in-memory bus, with the SQS sample event from `events/`.

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use canonical_transform::{MAX_ROW_DEAD_LETTERS, SeenHistory, Transform};
use freightbridge::batch::{MemoryDeadLetters, RecordContext};
use freightbridge::bus::Envelope;
use freightbridge::bus::memory::MemoryBus;
use freightbridge::canonical::{self, CanonicalEvent};
use freightbridge::config::PartnersFile;
use freightbridge::failure::FailureClass;
use freightbridge::idempotency::{Policy, StoreError, sha256_tag};
use freightbridge::partners::Adapters;
use freightbridge::seen::{MemorySeen, SeenStore};
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

/// The in-memory seen set, which can be made to fail.
#[derive(Default)]
struct Seen {
    inner: MemorySeen,
    reads_fail: AtomicBool,
    marks_fail: AtomicBool,
}

impl SeenStore for Seen {
    async fn seen(&self, scope: &str, now: i64) -> Result<HashSet<String>, StoreError> {
        if self.reads_fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("seen set down".into()));
        }
        self.inner.seen(scope, now).await
    }

    async fn mark(
        &self,
        scope: &str,
        entries: &[String],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        if self.marks_fail.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("seen set down".into()));
        }
        self.inner.mark(scope, entries, expires_at).await
    }
}

type TestTransform = Transform<Arc<MemoryBus>, Arc<MemoryDeadLetters>, Arc<Seen>>;

/// A transform whose dead letters can be read back.
fn transform_with(bus: Arc<MemoryBus>) -> (TestTransform, Arc<MemoryDeadLetters>) {
    let (transform, dlq, _) = transform_with_seen(bus);
    (transform, dlq)
}

fn transform_with_seen(bus: Arc<MemoryBus>) -> (TestTransform, Arc<MemoryDeadLetters>, Arc<Seen>) {
    let dlq = Arc::new(MemoryDeadLetters::new());
    let seen = Arc::new(Seen::default());
    let history = SeenHistory {
        store: seen.clone(),
        ttl: Policy::default().ttl,
    };
    (
        Transform::new(bus, adapters(), dlq.clone(), history),
        dlq,
        seen,
    )
}

fn published_events(bus: &MemoryBus) -> Vec<CanonicalEvent> {
    bus.published()
        .iter()
        .map(|event| serde_json::from_value(event.detail.clone()).unwrap())
        .collect()
}

/// The sample record with its EasyPost body edited.
fn easypost_record(edit: impl Fn(&mut Value)) -> String {
    let mut envelope: Envelope<Value> = serde_json::from_str(&record_body()).unwrap();
    let webhook: ReceivedWebhook = serde_json::from_value(envelope.detail.clone()).unwrap();
    let mut body: Value = serde_json::from_slice(&webhook.body.to_bytes().unwrap()).unwrap();
    edit(&mut body);
    envelope.detail["body"] = serde_json::json!({"text": body.to_string()});
    serde_json::to_string(&envelope).unwrap()
}

/// The next delivery for the sample's tracker: a new Event with one more scan.
fn next_delivery(body: &mut Value) {
    body["id"] = "evt_2".into();
    body["result"]["status"] = "out_for_delivery".into();
    body["result"]["tracking_details"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "status": "out_for_delivery",
            "status_detail": "out_for_delivery",
            "datetime": "2024-08-03T08:05:00Z",
            "message": "On FedEx vehicle for delivery",
        }));
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
async fn accepted_easypost_webhook_becomes_one_published_event_per_scan() {
    let bus = Arc::new(MemoryBus::new());
    transform_with(bus.clone())
        .0
        .handle_record(ctx(record_body()))
        .await
        .unwrap();
    let published = bus.published();
    assert_eq!(published.len(), 7, "the sample tracker has seven scans");
    assert!(published.iter().all(|e| e.source == canonical::BUS_SOURCE));
    assert!(
        published
            .iter()
            .all(|e| e.detail_type == "shipment.status_changed")
    );
    let events = published_events(&bus);
    let newest = events.last().unwrap();
    assert_eq!(newest.shipment.tracking_number, "1");
    assert_eq!(newest.correlation_id, "evt_1");
    assert_eq!(
        newest.event_id,
        canonical::event_id("easypost", &newest.source_event_id, 0)
    );
}

#[tokio::test]
async fn a_later_delivery_publishes_only_the_scans_not_seen_before() {
    let bus = Arc::new(MemoryBus::new());
    let (transform, ..) = transform_with(bus.clone());
    transform.handle_record(ctx(record_body())).await.unwrap();
    let first = published_events(&bus);

    transform
        .handle_record(ctx(easypost_record(next_delivery)))
        .await
        .unwrap();
    let all = published_events(&bus);
    assert_eq!(all.len(), first.len() + 1, "one new scan");
    let new = all.last().unwrap();
    assert_eq!(new.correlation_id, "evt_2");
    assert!(first.iter().all(|event| event.event_id != new.event_id));
    assert_eq!(
        new.occurred_at,
        "2024-08-03T08:05:00Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
    );

    // The same deliveries again (partner retries, SQS redeliveries): nothing new.
    transform.handle_record(ctx(record_body())).await.unwrap();
    transform
        .handle_record(ctx(easypost_record(next_delivery)))
        .await
        .unwrap();
    assert_eq!(bus.published().len(), all.len());
}

#[tokio::test]
async fn a_status_no_scan_says_is_published_with_every_delivery() {
    let bus = Arc::new(MemoryBus::new());
    let (transform, ..) = transform_with(bus.clone());
    let delivered = |body: &mut Value| body["result"]["status"] = "delivered".into();
    transform
        .handle_record(ctx(easypost_record(delivered)))
        .await
        .unwrap();
    assert_eq!(bus.published().len(), 8);
    // A retry of the same delivery: the scans are seen, the status event (named after the
    // delivery) comes again under its same id, for the poster to dedupe.
    transform
        .handle_record(ctx(easypost_record(delivered)))
        .await
        .unwrap();
    let events = published_events(&bus);
    assert_eq!(events.len(), 9);
    assert_eq!(events[8].event_id, events[7].event_id);
    assert_eq!(events[8].source_event_id, "evt_1");
}

#[tokio::test]
async fn scans_are_remembered_per_partner_and_tracking_number() {
    let bus = Arc::new(MemoryBus::new());
    let (transform, ..) = transform_with(bus.clone());
    transform.handle_record(ctx(record_body())).await.unwrap();
    let other_tracker = |body: &mut Value| body["result"]["tracking_code"] = "2".into();
    transform
        .handle_record(ctx(easypost_record(other_tracker)))
        .await
        .unwrap();
    assert_eq!(bus.published().len(), 14);
}

#[tokio::test]
async fn an_unreadable_seen_set_makes_the_record_retryable_before_publishing() {
    let bus = Arc::new(MemoryBus::new());
    let (transform, _, seen) = transform_with_seen(bus.clone());
    seen.reads_fail.store(true, Ordering::SeqCst);
    let err = transform
        .handle_record(ctx(record_body()))
        .await
        .unwrap_err();
    assert_eq!(err.class, FailureClass::Retryable);
    assert_eq!(err.code, "idempotency_store_unavailable");
    assert!(bus.published().is_empty());
}

#[tokio::test]
async fn scans_that_could_not_be_marked_are_published_again_by_the_retry() {
    let bus = Arc::new(MemoryBus::new());
    let (transform, _, seen) = transform_with_seen(bus.clone());
    seen.marks_fail.store(true, Ordering::SeqCst);
    let err = transform
        .handle_record(ctx(record_body()))
        .await
        .unwrap_err();
    assert_eq!(err.class, FailureClass::Retryable);
    assert_eq!(bus.published().len(), 7, "published before the mark failed");

    seen.marks_fail.store(false, Ordering::SeqCst);
    transform.handle_record(ctx(record_body())).await.unwrap();
    let events = published_events(&bus);
    assert_eq!(events.len(), 14);
    // Identical events under the same ids: duplicates the poster suppresses.
    assert_eq!(events[..7], events[7..]);
    transform.handle_record(ctx(record_body())).await.unwrap();
    assert_eq!(bus.published().len(), 14, "marked now");
}

#[tokio::test]
async fn a_cumulative_export_publishes_only_rows_not_seen_before_for_each_shipment() {
    let partners = PartnersFile::parse(
        r#"
[[partner]]
id = "portal"
format = "csv"
[partner.signature]
scheme = "hmac-sha256"
header = "x-signature"
secrets = ["s"]
[partner.options.columns]
tracking_number = "Tracking"
status = "Status"
occurred_at = "When"
event_id = "Scan"
[partner.options.statuses]
"Moving" = "in_transit"
"Delivered" = "delivered"
"#,
    )
    .unwrap();
    let bus = Arc::new(MemoryBus::new());
    let transform = Transform::new(
        bus.clone(),
        Arc::new(Adapters::from_partners(&partners).unwrap()),
        Arc::new(MemoryDeadLetters::new()),
        SeenHistory {
            store: Arc::new(MemorySeen::new()),
            ttl: Policy::default().ttl,
        },
    );
    let record = |file: &str| {
        let mut envelope: Envelope<Value> = serde_json::from_str(&csv_record(file)).unwrap();
        envelope.detail["partner"] = "portal".into();
        serde_json::to_string(&envelope).unwrap()
    };
    let monday = "Tracking,Status,When,Scan\n\
                  A1,Moving,2024-08-01T09:00:00Z,s-1\n\
                  B2,Moving,2024-08-01T09:30:00Z,s-2\n";
    let tuesday = "Tracking,Status,When,Scan\n\
                   A1,Moving,2024-08-01T09:00:00Z,s-1\n\
                   B2,Moving,2024-08-01T09:30:00Z,s-2\n\
                   A1,Delivered,2024-08-02T10:00:00Z,s-3\n\
                   C3,Moving,2024-08-02T11:00:00Z,s-4\n";
    transform.handle_record(ctx(record(monday))).await.unwrap();
    assert_eq!(bus.published().len(), 2);
    transform.handle_record(ctx(record(tuesday))).await.unwrap();
    let events = published_events(&bus);
    assert_eq!(events.len(), 4, "Tuesday's export adds two rows");
    let new: Vec<&str> = events[2..]
        .iter()
        .map(|e| e.source_event_id.as_str())
        .collect();
    assert_eq!(new, ["s-3", "s-4"]);
}

#[tokio::test]
async fn tracker_created_without_a_tracker_is_acknowledged_without_events() {
    let bus = Arc::new(MemoryBus::new());
    let created = |body: &mut Value| {
        body["description"] = "tracker.created".into();
        body.as_object_mut().unwrap().remove("result");
    };
    transform_with(bus.clone())
        .0
        .handle_record(ctx(easypost_record(created)))
        .await
        .unwrap();
    assert!(bus.published().is_empty());
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
    envelope.detail["body"] = serde_json::json!({"text": "{\"id\": \"evt_2\", \"description\": \"tracker.updated\", \"result\": \"trk_1\"}"});
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
