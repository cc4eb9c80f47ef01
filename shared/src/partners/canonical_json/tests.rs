use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::canonical::{
    ChargeKind, ChargeLine, CostEstimate, Estimate, EstimateKind, EventBody, ShipmentRef,
};
use crate::config::PartnersFile;
use crate::failure::Classify;
use crate::partners::mapping::any_json;
use crate::partners::{Adapter, Format};
use crate::webhook::{WebhookBody, ingress_id};

const PARTNERS: &str = include_str!("../../../../events/partners.local.toml");
const BOOKING: &str =
    include_str!("../../../../events/partners/tms-bookings-freight-cost-estimated.json");

fn time(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn bookings() -> Adapter {
    let file = PartnersFile::parse(PARTNERS).unwrap();
    Adapter::from_config(file.get("tms-bookings").unwrap()).unwrap()
}

fn webhook(body: &[u8]) -> ReceivedWebhook {
    ReceivedWebhook {
        ingress_id: ingress_id("tms-bookings", "msg_bkg_1"),
        partner: "tms-bookings".into(),
        format: "canonical".into(),
        delivery_id: "msg_bkg_1".into(),
        received_at: time("2024-08-05T06:30:02.25Z"),
        content_type: Some("application/json".into()),
        body: WebhookBody::from_bytes(body),
    }
}

fn booking() -> Value {
    serde_json::from_str(BOOKING).unwrap()
}

fn transform(body: &Value) -> Result<Vec<CanonicalEvent>, PartnerError> {
    bookings().to_canonical(&webhook(&serde_json::to_vec(body).unwrap()))
}

fn reason(error: PartnerError) -> String {
    match error {
        PartnerError::Malformed { format, reason } => {
            assert_eq!(format, "canonical");
            reason
        }
        other => panic!("{other:?}"),
    }
}

fn line(kind: ChargeKind, code: &str, description: &str, amount: &str) -> ChargeLine {
    ChargeLine {
        kind,
        code: Some(code.into()),
        description: Some(description.into()),
        amount: amount.parse().unwrap(),
    }
}

#[test]
fn a_booking_becomes_its_exact_canonical_event_with_our_id_and_receive_time() {
    let events = bookings()
        .to_canonical(&webhook(BOOKING.as_bytes()))
        .unwrap();
    assert_eq!(
        events,
        vec![CanonicalEvent {
            schema: canonical::SCHEMA.into(),
            event_id: canonical::event_id("tms-bookings", "bkg_20240805_0042", 0),
            partner: "tms-bookings".into(),
            source_event_id: "bkg_20240805_0042".into(),
            correlation_id: "bkg_20240805_0042".into(),
            occurred_at: time("2024-08-05T06:30:00Z"),
            received_at: time("2024-08-05T06:30:02.25Z"),
            shipment: ShipmentRef {
                tracking_number: "1Z999AA10123456784".into(),
                carrier: Some("UPS".into()),
                reference: Some("WH/OUT/00021".into()),
            },
            body: EventBody::CostEstimated(CostEstimate {
                estimate: Estimate {
                    kind: EstimateKind::Booking,
                    currency: "EUR".into(),
                    total: "142.80".parse().unwrap(),
                    lines: vec![
                        line(
                            ChargeKind::BaseFreight,
                            "FRT",
                            "Road freight Paris - Lyon",
                            "118.00"
                        ),
                        line(ChargeKind::FuelSurcharge, "FUE", "Fuel surcharge", "19.80"),
                        line(ChargeKind::Accessorial, "TLG", "Tail-lift delivery", "5.00"),
                    ],
                },
            }),
        }]
    );
    // What we publish conforms too.
    let value = serde_json::to_value(&events[0]).unwrap();
    assert_eq!(validate(&value).unwrap(), Ok(()));
}

#[test]
fn the_partners_own_event_id_and_receive_time_are_replaced() {
    let mut body = booking();
    // Another partner's id, or garbage: neither survives.
    body["event_id"] = json!(canonical::event_id("easypost", "evt_1", 0).to_string());
    body["received_at"] = json!("1999-01-01T00:00:00Z");
    let event = &transform(&body).unwrap()[0];
    assert_eq!(
        event.event_id,
        canonical::event_id("tms-bookings", "bkg_20240805_0042", 0)
    );
    assert_eq!(event.received_at, time("2024-08-05T06:30:02.25Z"));
    body["event_id"] = json!("not-a-uuid");
    assert!(transform(&body).is_ok());
}

#[test]
fn a_batch_is_numbered_in_order_and_each_event_checked() {
    let mut quote = booking();
    quote["estimate"]["kind"] = json!("quote");
    quote["source_event_id"] = json!("qte_7");
    let body = json!({"events": [booking(), quote]});
    let events = transform(&body).unwrap();
    let ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(
        ids,
        vec![
            canonical::event_id("tms-bookings", "bkg_20240805_0042", 0),
            canonical::event_id("tms-bookings", "qte_7", 1),
        ]
    );
    // Two sources: ingress keys the delivery on something else (the webhook-id, the hash).
    let bytes = serde_json::to_vec(&body).unwrap();
    assert_eq!(bookings().inspect(&bytes).unwrap().delivery_id, None);
    assert_eq!(
        bookings()
            .inspect(BOOKING.as_bytes())
            .unwrap()
            .delivery_id
            .as_deref(),
        Some("bkg_20240805_0042")
    );

    let mut bad = body.clone();
    bad["events"][1]["estimate"]["total"] = json!(142.8);
    assert_eq!(
        reason(transform(&bad).unwrap_err()),
        "schema violation at `/events/1/estimate/total` (type)"
    );
    assert!(transform(&json!({"events": []})).unwrap().is_empty());
}

#[test]
fn a_float_amount_is_refused_with_its_path_and_not_its_value() {
    let cases = [
        ("/estimate/total", json!(142.8)),
        ("/estimate/lines/1/amount", json!(19.8)),
    ];
    for (path, float) in cases {
        let mut body = booking();
        *body.pointer_mut(path).unwrap() = float;
        let error = transform(&body).unwrap_err();
        assert_eq!(error.code(), "malformed_payload");
        let why = reason(error);
        assert_eq!(why, format!("schema violation at `{path}` (type)"));
        assert!(!why.contains("19.8") && !why.contains("142.8"));
    }
}

#[test]
fn an_event_for_another_partner_is_refused() {
    for partner in ["easypost", "tms", "TMS-BOOKINGS"] {
        let mut body = booking();
        body["partner"] = json!(partner);
        let error = transform(&body).unwrap_err();
        assert_eq!(reason(error.clone()), "`/partner` is not this partner's id");
        assert_eq!(
            bookings().inspect(&serde_json::to_vec(&body).unwrap()),
            Err(error)
        );
    }
}

/// A change made to a valid event to break it.
type Edit = Box<dyn Fn(&mut Value)>;

#[test]
fn schema_violations_name_the_deepest_path_and_the_keyword() {
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|e| e["estimate"]["currency"] = json!("eur")),
            "schema violation at `/estimate/currency` (pattern)",
        ),
        (
            Box::new(|e| e["estimate"]["kind"] = json!("guess")),
            "schema violation at `/estimate/kind` (enum)",
        ),
        (
            Box::new(|e| e["estimate"]["lines"][0]["kind"] = json!("bribe")),
            "schema violation at `/estimate/lines/0/kind` (enum)",
        ),
        (
            Box::new(|e| e["occurred_at"] = json!("2024-08-05 06:30")),
            "schema violation at `/occurred_at` (",
        ),
        (
            Box::new(|e| e["shipment"]["tracking_number"] = json!("")),
            "schema violation at `/shipment/tracking_number` (minLength)",
        ),
        (
            Box::new(|e| drop(e.as_object_mut().unwrap().remove("source_event_id"))),
            "schema violation at `` (required)",
        ),
        (
            Box::new(|e| e["schema"] = json!("freightbridge.canonical/v2")),
            "schema violation at `/schema` (const)",
        ),
        (
            Box::new(|e| e["type"] = json!("shipment.teleported")),
            "schema violation at `/type` (enum)",
        ),
    ];
    for (edit, expected) in cases {
        let mut body = booking();
        edit(&mut body);
        let why = reason(transform(&body).unwrap_err());
        assert!(
            why.starts_with(expected),
            "{why:?} should start with {expected:?}"
        );
    }
}

#[test]
fn bodies_that_are_not_events_are_malformed() {
    let cases: [(&[u8], &str); 5] = [
        (b"not json", "body is not JSON"),
        (b"[]", "body is not a JSON object"),
        (br#"{"events": {}}"#, "`/events` is not an array"),
        (br#"{"events": [], "more": 1}"#, "a batch is"),
        (br#"{"events": [7]}"#, "`/events/0` is not an object"),
    ];
    for (body, expected) in cases {
        let why = reason(bookings().inspect(body).unwrap_err());
        assert!(why.starts_with(expected), "{why:?}");
    }
}

#[test]
fn an_amount_the_schema_allows_but_the_model_cannot_hold_is_malformed_not_a_panic() {
    let mut body = booking();
    body["estimate"]["total"] = json!("1".repeat(40));
    let why = reason(transform(&body).unwrap_err());
    assert!(why.contains("event 0"), "{why}");
    assert!(!why.contains("1111"));
}

#[test]
fn the_same_body_gives_the_same_events_and_payload_hash() {
    let compact = serde_json::to_vec(&booking()).unwrap();
    assert_eq!(
        bookings().inspect(BOOKING.as_bytes()).unwrap(),
        bookings().inspect(&compact).unwrap()
    );
    assert_eq!(
        bookings()
            .to_canonical(&webhook(BOOKING.as_bytes()))
            .unwrap(),
        bookings().to_canonical(&webhook(&compact)).unwrap()
    );
}

#[test]
fn the_format_takes_no_options_and_the_free_functions_need_the_adapter() {
    let file = PartnersFile::parse(PARTNERS).unwrap();
    let mut bookings = file.get("tms-bookings").unwrap().clone();
    bookings
        .options
        .insert("strict".into(), toml::Value::Boolean(true));
    assert!(Adapter::from_config(&bookings).is_err());
    assert_eq!(
        crate::partners::inspect(Format::Canonical, BOOKING.as_bytes())
            .unwrap_err()
            .code(),
        "unconfigured_format"
    );
}

fn never_panics(body: &[u8]) {
    let adapter = bookings();
    let inspected = adapter.inspect(body);
    let transformed = adapter.to_canonical(&webhook(body));
    assert_eq!(inspected.is_ok(), transformed.is_ok());
    if let Err(error) = transformed {
        assert_eq!(error.code(), "malformed_payload");
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        never_panics(&body);
    }

    #[test]
    fn arbitrary_json_never_panics(value in any_json()) {
        never_panics(&serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn arbitrary_estimates_never_panic(estimate in any_json(), shipment in any_json()) {
        let mut body = booking();
        body["estimate"] = estimate;
        body["shipment"] = shipment;
        never_panics(&serde_json::to_vec(&body).unwrap());
        never_panics(&serde_json::to_vec(&json!({"events": [body]})).unwrap());
    }
}
