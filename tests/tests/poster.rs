//! The odoo-poster handler against the Odoo double: exactly-once notes across duplicates,
//! redeliveries, timeouts whose write still committed, and crashes between the Odoo write and
//! the idempotency update; round trips per note; milestones received out of order.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsEvent;
use chrono::{Duration as Span, Utc};
use freightbridge::batch::RecordContext;
use freightbridge::breaker::{BreakerConfig, BreakerStore};
use freightbridge::bus::Envelope;
use freightbridge::canonical::{
    CanonicalEvent, Delivery, EventBody, ProofOfDelivery, ShipmentStatus,
};
use freightbridge::config::Secret;
use freightbridge::failure::FailureClass;
use freightbridge::idempotency::memory::MemoryStore;
use freightbridge::idempotency::{Idempotency, IdempotencyStore, Policy, Status};
use freightbridge::odoo::{OdooClient, OdooConfig, milestones};
use freightbridge::ordering::{LatestMilestones, latest_key};
use freightbridge_tests::odoo_double::{
    InjectedFailure, OdooDouble, OdooDoubleConfig, PickingSeed,
};
use freightbridge_tests::poster_input;
use odoo_poster::Poster;

const SQS: &str = include_str!("../../events/sqs-odoo-batch.json");

fn body() -> String {
    let event: SqsEvent = serde_json::from_str(SQS).unwrap();
    event.records[0].body.clone().unwrap()
}

fn event() -> CanonicalEvent {
    serde_json::from_str::<Envelope<CanonicalEvent>>(&body())
        .unwrap()
        .detail
}

fn ctx(receive_count: u32) -> RecordContext {
    RecordContext {
        message_id: format!("m{receive_count}"),
        body: body(),
        receive_count,
    }
}

struct Setup {
    double: OdooDouble,
    store: Arc<MemoryStore>,
    poster: Poster<OdooClient, Arc<MemoryStore>>,
    picking: i64,
}

async fn setup(timeout: Duration) -> Setup {
    setup_with(timeout, BreakerConfig::default()).await
}

async fn setup_with(timeout: Duration, breaker: BreakerConfig) -> Setup {
    let double = OdooDouble::start(OdooDoubleConfig::version(19)).await;
    let picking = double.seed_picking(PickingSeed::new("WH/OUT/00002", Some("1")));
    let mut config = OdooConfig::new(double.url());
    config.db = Some(double.config().db.clone());
    config.api_key = Some(Secret::new(double.config().api_key.clone()));
    config.timeout = timeout;
    let odoo = OdooClient::connect(&config).await.unwrap();
    let store = Arc::new(MemoryStore::new());
    let poster =
        Poster::new(odoo, Idempotency::new(store.clone(), Policy::default())).with_breaker(breaker);
    Setup {
        double,
        store,
        poster,
        picking,
    }
}

async fn handle(
    s: &Setup,
    receive_count: u32,
) -> Result<(), freightbridge::failure::FailureReason> {
    let now = Utc::now();
    s.poster
        .handle_record(ctx(receive_count), now, now + Span::seconds(30))
        .await
}

fn odoo_calls(s: &Setup) -> usize {
    s.double.calls().len()
}

#[tokio::test]
async fn first_delivery_posts_one_note_in_two_round_trips() {
    let s = setup(Duration::from_secs(5)).await;
    let before = odoo_calls(&s);
    handle(&s, 1).await.unwrap();
    assert_eq!(odoo_calls(&s) - before, 2, "picking lookup + message_post");
    assert_eq!(s.double.messages_on(s.picking).len(), 1);
}

#[tokio::test]
async fn duplicate_event_makes_no_odoo_call() {
    let s = setup(Duration::from_secs(5)).await;
    handle(&s, 1).await.unwrap();
    let after_first = odoo_calls(&s);
    handle(&s, 1).await.unwrap();
    assert_eq!(odoo_calls(&s), after_first);
    assert_eq!(s.double.messages_on(s.picking).len(), 1);
}

#[tokio::test]
async fn timed_out_write_that_committed_is_not_repeated_on_retry() {
    let s = setup(Duration::from_millis(300)).await;
    // Odoo answers after the client gave up, but commits the note anyway.
    s.double.fail_next_on(
        "message_post",
        1,
        InjectedFailure::Delay(Duration::from_millis(800)),
    );
    let err = handle(&s, 1).await.unwrap_err();
    assert_eq!(err.class, FailureClass::Retryable);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        s.double.messages_on(s.picking).len(),
        1,
        "the slow write committed"
    );
    // SQS redelivers; the retry finds the note by its marker instead of posting again.
    handle(&s, 2).await.unwrap();
    assert_eq!(s.double.messages_on(s.picking).len(), 1);
    let record = s
        .store
        .get(&format!("odoo#{}", event().event_id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, Status::Completed);
}

#[tokio::test]
async fn crash_after_the_odoo_write_is_recovered_by_the_next_attempt() {
    let s = setup(Duration::from_secs(5)).await;
    let event = event();
    // An earlier invocation wrote the note, then died before completing its record; its
    // lock has lapsed. The next attempt arrives as a fresh message (an archive replay).
    milestones::post_milestone_note(s.poster.odoo(), &event, false)
        .await
        .unwrap();
    poster_input::crashed_attempt(&s.store, &event).await;
    handle(&s, 1).await.unwrap();
    assert_eq!(s.double.messages_on(s.picking).len(), 1, "no second note");
}

#[tokio::test]
async fn missing_picking_is_a_permanent_failure_that_can_be_retried_later() {
    let s = setup(Duration::from_secs(5)).await;
    let mut wrong = event();
    wrong.shipment.tracking_number = "NO-SUCH-NUMBER".into();
    let envelope = serde_json::json!({
        "version": "0", "id": "x", "detail-type": "shipment.status_changed",
        "source": "freightbridge.canonical", "time": "2026-11-27T09:00:00Z",
        "detail": wrong,
    });
    let now = Utc::now();
    let ctx = RecordContext {
        message_id: "m".into(),
        body: envelope.to_string(),
        receive_count: 1,
    };
    let err = s
        .poster
        .handle_record(ctx.clone(), now, now + Span::seconds(30))
        .await
        .unwrap_err();
    assert_eq!(err.class, FailureClass::Permanent);
    assert_eq!(err.code, "odoo_picking_not_found");
    // Once the picking exists (a redrive from the DLQ), the same event goes through.
    s.double
        .seed_picking(PickingSeed::new("WH/OUT/00009", Some("NO-SUCH-NUMBER")));
    s.poster
        .handle_record(ctx, now, now + Span::seconds(30))
        .await
        .unwrap();
}

/// The same milestone as another event (its own id), so each is a note of its own.
fn another_event() -> CanonicalEvent {
    let mut e = event();
    e.event_id = uuid::Uuid::new_v4();
    e
}

#[tokio::test]
async fn an_odoo_outage_opens_the_breaker_which_holds_calls_until_one_probe_succeeds() {
    let breaker = BreakerConfig {
        threshold: 2,
        cooldown: Span::milliseconds(300),
        max_cooldown: Span::seconds(1),
        probe_lease: Span::seconds(5),
        trust_closed_for: Duration::ZERO,
    };
    let s = setup_with(Duration::from_secs(5), breaker).await;
    let events: Vec<CanonicalEvent> = (0..3).map(|_| another_event()).collect();
    let post = |event: &CanonicalEvent| {
        let now = Utc::now();
        s.poster
            .handle_record(poster_input::record(event, 1), now, now + Span::seconds(30))
    };
    // Odoo answers every call with a proxy's 503.
    s.double.fail_next(usize::MAX, InjectedFailure::Http503);
    for event in &events[..2] {
        let err = post(event).await.unwrap_err();
        assert_eq!(err.class, FailureClass::Retryable);
        assert_eq!(err.code, "odoo_server_error");
    }
    let state = s.store.load(odoo_poster::ODOO_BREAKER).await.unwrap().state;
    assert!(
        state.open_until.is_some(),
        "two failures open it: {state:?}"
    );
    // While open, nothing reaches Odoo and the record is told when to come back.
    let refused_so_far = s.double.injected_count();
    let err = post(&events[2]).await.unwrap_err();
    assert_eq!(err.code, "odoo_circuit_open");
    assert_eq!(err.class, FailureClass::Retryable);
    assert!(err.not_before.is_some_and(|t| t > Utc::now()));
    assert_eq!(
        s.double.injected_count(),
        refused_so_far,
        "no call while open"
    );
    // Odoo is back; after the cooldown the first caller probes and closes it.
    s.double.clear_failures();
    tokio::time::sleep(Duration::from_millis(350)).await;
    post(&events[2]).await.unwrap();
    let state = s.store.load(odoo_poster::ODOO_BREAKER).await.unwrap().state;
    assert_eq!(state, Default::default(), "closed and cleared");
    for event in &events[..2] {
        post(event).await.unwrap();
    }
    assert_eq!(s.double.messages_on(s.picking).len(), 3, "each event once");
}

#[tokio::test]
async fn malformed_record_fails_permanently_without_calling_odoo() {
    let s = setup(Duration::from_secs(5)).await;
    let before = odoo_calls(&s);
    let now = Utc::now();
    let bad = RecordContext {
        message_id: "m".into(),
        body: "{}".into(),
        receive_count: 1,
    };
    let err = s
        .poster
        .handle_record(bad, now, now + Span::seconds(30))
        .await
        .unwrap_err();
    assert_eq!(err.code, "malformed_envelope");
    assert_eq!(odoo_calls(&s), before);
}

// ---------------------------------------------------------------------------------------------
// Order: partners deliver out of order; a milestone older than the shipment's latest is history.

/// A milestone of the sample shipment (tracking number 1) as its own event.
fn milestone(source_event_id: &str, occurred_at: &str, delivered: bool) -> CanonicalEvent {
    let mut e = event();
    e.source_event_id = source_event_id.into();
    e.event_id = freightbridge::canonical::event_id("easypost", source_event_id, 0);
    e.occurred_at = occurred_at.parse().unwrap();
    if delivered {
        e.body = EventBody::Delivered(Delivery {
            status: ShipmentStatus::Delivered,
            status_detail: None,
            location: None,
            message: None,
            pod: ProofOfDelivery {
                signed_by: Some("J. Doe".into()),
                delivered_at: e.occurred_at,
                document_url: None,
            },
        });
    }
    e
}

async fn post(s: &Setup, e: &CanonicalEvent) {
    let envelope = serde_json::json!({
        "version": "0", "id": "x", "detail-type": e.event_type(),
        "source": "freightbridge.canonical", "time": "2026-11-27T09:00:00Z",
        "detail": e,
    });
    let ctx = RecordContext {
        message_id: e.source_event_id.clone(),
        body: envelope.to_string(),
        receive_count: 1,
    };
    let now = Utc::now();
    s.poster
        .handle_record(ctx, now, now + Span::seconds(30))
        .await
        .unwrap();
}

/// The note bodies on the picking, oldest first.
fn note_bodies(s: &Setup) -> Vec<String> {
    let mut messages = s.double.records("mail.message");
    messages.retain(|m| m["model"] == "stock.picking" && m["res_id"] == s.picking);
    messages.sort_by_key(|m| m["id"].as_i64());
    messages
        .iter()
        .map(|m| {
            // Odoo stores the plain-text body escaped, in one paragraph.
            let html = m["body"].as_str().unwrap_or_default();
            let text = html.strip_prefix("<p>").unwrap_or(html);
            text.strip_suffix("</p>").unwrap_or(text).to_owned()
        })
        .collect()
}

async fn latest_status(s: &Setup, e: &CanonicalEvent) -> Option<ShipmentStatus> {
    let key = latest_key(e).unwrap();
    s.store
        .latest(&key, Utc::now())
        .await
        .unwrap()
        .map(|m| m.status)
}

#[tokio::test]
async fn an_older_in_transit_scan_after_delivery_is_noted_as_history_and_delivered_stays_latest() {
    let s = setup(Duration::from_secs(5)).await;
    let delivered = milestone("evt_delivered", "2024-08-03T10:00:00Z", true);
    let late_scan = milestone("evt_scan", "2024-08-02T18:50:00Z", false);
    post(&s, &delivered).await;
    post(&s, &late_scan).await;

    let notes = note_bodies(&s);
    assert_eq!(notes.len(), 2, "history is still recorded: {notes:?}");
    assert!(notes[0].contains("Shipment delivered"), "{}", notes[0]);
    assert!(
        notes[1].contains("Earlier scan (received out of order): in transit"),
        "{}",
        notes[1]
    );
    assert!(!notes[1].contains("Shipment in transit"), "{}", notes[1]);
    assert!(!notes[1].contains("Estimated delivery"), "{}", notes[1]);
    assert!(notes[1].contains(&milestones::note_marker(&late_scan)));
    assert_eq!(
        latest_status(&s, &delivered).await,
        Some(ShipmentStatus::Delivered)
    );
}

#[tokio::test]
async fn in_transit_then_delivered_are_both_current() {
    let s = setup(Duration::from_secs(5)).await;
    let scan = milestone("evt_scan", "2024-08-02T18:50:00Z", false);
    let delivered = milestone("evt_delivered", "2024-08-03T10:00:00Z", true);
    post(&s, &scan).await;
    post(&s, &delivered).await;

    let notes = note_bodies(&s);
    assert_eq!(notes.len(), 2);
    assert!(
        notes[0].starts_with("Shipment in transit (arrived at facility)"),
        "{}",
        notes[0]
    );
    assert!(notes[1].starts_with("Shipment delivered."), "{}", notes[1]);
    assert!(notes.iter().all(|n| !n.contains("Earlier scan")));
    assert_eq!(
        latest_status(&s, &delivered).await,
        Some(ShipmentStatus::Delivered)
    );
}

#[tokio::test]
async fn a_newer_scan_after_delivery_never_says_the_shipment_is_in_transit_now() {
    let s = setup(Duration::from_secs(5)).await;
    post(
        &s,
        &milestone("evt_delivered", "2024-08-03T10:00:00Z", true),
    )
    .await;
    // A depot re-scan stamped after the delivery: the shipment has ended all the same.
    post(&s, &milestone("evt_rescan", "2024-08-03T12:00:00Z", false)).await;
    let notes = note_bodies(&s);
    assert!(
        notes[1].starts_with("Earlier scan (received out of order)"),
        "{}",
        notes[1]
    );
    assert!(!notes[1].contains("Shipment in transit"));
}

#[tokio::test]
async fn a_redelivered_current_milestone_is_still_current() {
    let s = setup(Duration::from_millis(300)).await;
    let scan = milestone("evt_scan", "2024-08-02T18:50:00Z", false);
    // The first attempt places the milestone, then its note fails before Odoo writes it.
    s.double
        .fail_next_on("message_post", 1, InjectedFailure::Http503);
    let envelope = serde_json::json!({
        "version": "0", "id": "x", "detail-type": scan.event_type(),
        "source": "freightbridge.canonical", "time": "2026-11-27T09:00:00Z", "detail": scan,
    });
    let now = Utc::now();
    let ctx = |receive_count| RecordContext {
        message_id: "m".into(),
        body: envelope.to_string(),
        receive_count,
    };
    assert!(
        s.poster
            .handle_record(ctx(1), now, now + Span::seconds(30))
            .await
            .is_err()
    );
    s.poster
        .handle_record(ctx(2), now, now + Span::seconds(30))
        .await
        .unwrap();
    let notes = note_bodies(&s);
    assert_eq!(notes.len(), 1);
    assert!(notes[0].starts_with("Shipment in transit"), "{}", notes[0]);
}
