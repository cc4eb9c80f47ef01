use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use crate::canonical::{
    self, CanonicalEvent, Delivery, EventBody, Location, ProofOfDelivery, ShipmentRef,
    ShipmentStatus, StatusChange,
};
use crate::config::PartnersFile;
use crate::failure::Classify;
use crate::partners::mapping::any_json;
use crate::partners::{Adapter, Format, History, PartnerError, canonical_json};
use crate::webhook::{ReceivedWebhook, WebhookBody, ingress_id};

const PARTNERS: &str = include_str!("../../../../events/partners.local.toml");
const OUT_FOR_DELIVERY: &str =
    include_str!("../../../../events/partners/tms-shipment-out-for-delivery.json");
const DELIVERED: &str = include_str!("../../../../events/partners/tms-shipment-delivered.json");
const SPEC_EXAMPLE: &str =
    include_str!("../../../tests/fixtures/partners/standard-webhooks-spec-contact-created.json");

fn time(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn adapter_from(partners_toml: &str, id: &str) -> Adapter {
    let file = PartnersFile::parse(partners_toml).unwrap();
    Adapter::from_config(file.get(id).unwrap()).unwrap()
}

fn tms() -> Adapter {
    adapter_from(PARTNERS, "tms")
}

/// As ingress hands it on for a Standard Webhooks partner: keyed on the `webhook-id`.
fn webhook(partner: &str, delivery_id: &str, body: &[u8]) -> ReceivedWebhook {
    ReceivedWebhook {
        ingress_id: ingress_id(partner, delivery_id),
        partner: partner.into(),
        format: "mapped-json".into(),
        delivery_id: delivery_id.into(),
        received_at: time("2024-08-05T12:41:10.5Z"),
        content_type: Some("application/json".into()),
        body: WebhookBody::from_bytes(body),
    }
}

fn lyon() -> Option<Location> {
    Some(Location {
        city: Some("Lyon".into()),
        state: Some("Auvergne-Rhone-Alpes".into()),
        country: Some("FR".into()),
        postal_code: Some("69007".into()),
    })
}

fn tms_event(message_id: &str, occurred_at: &str, body: EventBody) -> CanonicalEvent {
    CanonicalEvent {
        schema: canonical::SCHEMA.into(),
        event_id: canonical::event_id("tms", message_id, 0),
        partner: "tms".into(),
        source_event_id: message_id.into(),
        correlation_id: message_id.into(),
        occurred_at: time(occurred_at),
        received_at: time("2024-08-05T12:41:10.5Z"),
        shipment: ShipmentRef {
            tracking_number: "1Z999AA10123456784".into(),
            carrier: Some("UPS".into()),
            reference: Some("WH/OUT/00021".into()),
        },
        body,
    }
}

#[test]
fn standard_webhooks_milestones_become_exact_canonical_events() {
    let adapter = tms();
    let out = adapter
        .to_canonical(&webhook("tms", "msg_ofd_1", OUT_FOR_DELIVERY.as_bytes()))
        .unwrap();
    assert_eq!(
        out,
        vec![tms_event(
            "msg_ofd_1",
            "2024-08-05T07:12:44.318Z",
            EventBody::StatusChanged(StatusChange {
                status: ShipmentStatus::OutForDelivery,
                status_detail: None,
                raw_status: None,
                location: lyon(),
                message: Some("On vehicle for delivery".into()),
                eta: Some(time("2024-08-05T14:00:00Z")),
            }),
        )]
    );

    let delivered = adapter
        .to_canonical(&webhook("tms", "msg_dlv_1", DELIVERED.as_bytes()))
        .unwrap();
    assert_eq!(
        delivered,
        vec![tms_event(
            "msg_dlv_1",
            "2024-08-05T12:41:09Z",
            EventBody::Delivered(Delivery {
                status: ShipmentStatus::Delivered,
                status_detail: None,
                location: lyon(),
                message: Some("Delivered to reception".into()),
                pod: ProofOfDelivery {
                    signed_by: Some("C. MARTIN".into()),
                    delivered_at: time("2024-08-05T12:41:09Z"),
                    document_url: None,
                },
            }),
        )]
    );
    for event in out.iter().chain(&delivered) {
        let value = serde_json::to_value(event).unwrap();
        assert_eq!(canonical_json::validate(&value).unwrap(), Ok(()));
    }
}

#[test]
fn the_specification_envelope_is_read_and_an_unknown_type_becomes_an_exception() {
    // The spec's own example is not a logistics event; mapped loosely it still shows the
    // envelope being read: `type`, a fractional `timestamp`, pointers into `data`.
    let partners = r#"
[[partner]]
id = "spec"
format = "mapped-json"
[partner.signature]
scheme = "standard-webhooks"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
[partner.options.fields]
tracking_number = "/data/id"
status = "/type"
occurred_at = "/timestamp"
"#;
    let adapter = adapter_from(partners, "spec");
    let events = adapter
        .to_canonical(&webhook("spec", "msg_1", SPEC_EXAMPLE.as_bytes()))
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].shipment.tracking_number,
        "1f81eb52-5198-4599-803e-771906343485"
    );
    assert_eq!(events[0].occurred_at, time("2022-11-03T20:26:10.344522Z"));
    match &events[0].body {
        EventBody::StatusChanged(change) => {
            assert_eq!(change.status, ShipmentStatus::Exception);
            assert_eq!(change.raw_status.as_deref(), Some("contact.created"));
        }
        other => panic!("{other:?}"),
    }

    // The demo TMS mapping refuses it: there is no tracking number where it looks.
    let error = tms().inspect(SPEC_EXAMPLE.as_bytes()).unwrap_err();
    assert_eq!(
        error,
        PartnerError::Malformed {
            format: "mapped-json",
            reason: "missing `tracking_number` (pointer `/data/tracking_number`)".into(),
        }
    );
}

/// A partner onboarded with configuration only: a tracking API pushing a shipment with its
/// history, times in epoch seconds, its own status codes, the carrier on the shipment.
const ONBOARDED: &str = r#"
[[partner]]
id = "acme-tracking"
format = "mapped-json"
[partner.signature]
scheme = "hmac-sha256"
header = "x-acme-signature"
encoding = "base64"
secrets = ["env:ACME_TRACKING_SECRET", "local-acme-secret"]
[partner.options]
delivery_id = "/notification_id"
events = "/shipment/history"
time_format = "unix"
[partner.options.fields]
event_id = "/id"
tracking_number = { root = "/shipment/awb" }
carrier = { root = "/shipment/carrier/name" }
reference = { root = "/shipment/customer_ref" }
status = "/code"
status_detail = "/reason"
occurred_at = "/at"
city = "/where/city"
country = { constant = "DE" }
message = "/text"
eta = { root = "/shipment/eta" }
[partner.options.statuses]
PU = "picked_up"
DEP = "in_transit"
ARR = "in_transit"
DLY = "delayed"
"#;

fn onboarded_body() -> Value {
    json!({
        "notification_id": "ntf-991",
        "shipment": {
            "awb": 4_200_017_731_u64,
            "carrier": {"name": "DB Schenker"},
            "customer_ref": "SO/2024/0815",
            "eta": 1_722_870_000,
            "history": [
                {"id": "h1", "code": "PU", "at": 1_722_589_200, "where": {"city": "Hamburg"}, "text": "Abgeholt"},
                {"id": "h2", "code": "DLY", "reason": "traffic", "at": 1_722_600_000, "where": {"city": "Hannover"}},
                {"id": "h3", "code": "ZOLL", "at": 1_722_610_800, "where": {"city": null}}
            ]
        }
    })
}

#[test]
fn a_partner_is_onboarded_from_configuration_alone() {
    let adapter = adapter_from(ONBOARDED, "acme-tracking");
    assert_eq!(adapter.format(), Format::MappedJson);
    let body = serde_json::to_vec(&onboarded_body()).unwrap();

    let key = adapter.inspect(&body).unwrap();
    assert_eq!(key.delivery_id.as_deref(), Some("ntf-991"));

    let events = adapter
        .to_canonical(&webhook("acme-tracking", "ntf-991", &body))
        .unwrap();
    let event = |id: &str, at: &str, city: Option<&str>, change: StatusChange| CanonicalEvent {
        schema: canonical::SCHEMA.into(),
        // Each history entry has its own id: resent history gives the same events.
        event_id: canonical::event_id("acme-tracking", id, 0),
        partner: "acme-tracking".into(),
        source_event_id: id.into(),
        correlation_id: "ntf-991".into(),
        occurred_at: time(at),
        received_at: time("2024-08-05T12:41:10.5Z"),
        shipment: ShipmentRef {
            tracking_number: "4200017731".into(),
            carrier: Some("DB Schenker".into()),
            reference: Some("SO/2024/0815".into()),
        },
        body: EventBody::StatusChanged(StatusChange {
            location: Some(Location {
                city: city.map(str::to_owned),
                country: Some("DE".into()),
                ..Location::default()
            }),
            ..change
        }),
    };
    let change =
        |status, raw: Option<&str>, detail: Option<&str>, message: Option<&str>| StatusChange {
            status,
            status_detail: detail.map(str::to_owned),
            raw_status: raw.map(str::to_owned),
            location: None,
            message: message.map(str::to_owned),
            eta: Some(time("2024-08-05T15:00:00Z")),
        };
    assert_eq!(
        events,
        vec![
            event(
                "h1",
                "2024-08-02T09:00:00Z",
                Some("Hamburg"),
                change(ShipmentStatus::PickedUp, None, None, Some("Abgeholt")),
            ),
            event(
                "h2",
                "2024-08-02T12:00:00Z",
                Some("Hannover"),
                change(ShipmentStatus::Delayed, None, Some("traffic"), None),
            ),
            event(
                "h3",
                "2024-08-02T15:00:00Z",
                None,
                change(ShipmentStatus::Exception, Some("ZOLL"), None, None),
            ),
        ]
    );

    // The next notification repeats the history with one more entry: the repeated entries
    // get the same ids, so the consumers' dedupe drops them.
    let mut next = onboarded_body();
    next["notification_id"] = json!("ntf-992");
    next["shipment"]["history"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "h4", "code": "ARR", "at": 1_722_650_000}));
    let body = serde_json::to_vec(&next).unwrap();
    let again = adapter
        .to_canonical(&webhook("acme-tracking", "ntf-992", &body))
        .unwrap();
    let ids = |events: &[CanonicalEvent]| events.iter().map(|e| e.event_id).collect::<Vec<_>>();
    assert_eq!(ids(&again)[..3], ids(&events)[..]);
    assert_eq!(again.len(), 4);
}

#[test]
fn records_with_their_own_ids_are_history_per_shipment() {
    let adapter = adapter_from(ONBOARDED, "acme-tracking");
    let mut body = onboarded_body();
    // A second shipment in the same push: its entries are its own history.
    body["shipment"]["history"][2]["awb"] = json!("X-2");
    let partners = ONBOARDED.replace(
        "tracking_number = { root = \"/shipment/awb\" }",
        "tracking_number = \"/awb\"",
    );
    let per_entry = adapter_from(&partners, "acme-tracking");
    body["shipment"]["history"][0]["awb"] = json!("X-1");
    body["shipment"]["history"][1]["awb"] = json!("X-1");
    let bytes = serde_json::to_vec(&body).unwrap();
    let transformed = per_entry
        .transform(&webhook("acme-tracking", "ntf-991", &bytes))
        .unwrap();
    let ids: Vec<_> = transformed.events.iter().map(|e| e.event_id).collect();
    assert_eq!(
        transformed.history,
        vec![
            History {
                scope: "acme-tracking#X-1".into(),
                entries: ids[..2].to_vec(),
            },
            History {
                scope: "acme-tracking#X-2".into(),
                entries: ids[2..].to_vec(),
            },
        ]
    );

    // With the shipment at the root, one history for the whole push.
    let bytes = serde_json::to_vec(&onboarded_body()).unwrap();
    let transformed = adapter
        .transform(&webhook("acme-tracking", "ntf-991", &bytes))
        .unwrap();
    assert_eq!(transformed.history.len(), 1);
    assert_eq!(transformed.history[0].scope, "acme-tracking#4200017731");
    assert_eq!(transformed.history[0].entries.len(), 3);

    // Without their own ids, records are numbered within their delivery: not history.
    let numbered = adapter_from(
        &ONBOARDED.replace("event_id = \"/id\"\n", ""),
        "acme-tracking",
    );
    let transformed = numbered
        .transform(&webhook("acme-tracking", "ntf-991", &bytes))
        .unwrap();
    assert_eq!(transformed.events.len(), 3);
    assert!(transformed.history.is_empty());
}

#[test]
fn without_event_ids_events_are_numbered_within_their_delivery() {
    let partners = ONBOARDED.replace("event_id = \"/id\"\n", "");
    let adapter = adapter_from(&partners, "acme-tracking");
    let body = serde_json::to_vec(&onboarded_body()).unwrap();
    // The delivery id pointer wins over the id ingress keyed the delivery on.
    let events = adapter
        .to_canonical(&webhook("acme-tracking", "sha256:abc", &body))
        .unwrap();
    let ids: Vec<_> = events.iter().map(|e| e.event_id).collect();
    assert_eq!(
        ids,
        (0..3)
            .map(|position| canonical::event_id("acme-tracking", "ntf-991", position))
            .collect::<Vec<_>>()
    );
    assert!(events.iter().all(|e| e.source_event_id == "ntf-991"));

    // Without a delivery id pointer, the id ingress keyed the delivery on.
    let partners = partners.replace("delivery_id = \"/notification_id\"\n", "");
    let adapter = adapter_from(&partners, "acme-tracking");
    let events = adapter
        .to_canonical(&webhook("acme-tracking", "msg_77", &body))
        .unwrap();
    assert_eq!(
        events[2].event_id,
        canonical::event_id("acme-tracking", "msg_77", 2)
    );
    assert_eq!(adapter.inspect(&body).unwrap().delivery_id, None);
}

#[test]
fn an_empty_history_is_a_delivery_without_events() {
    let adapter = adapter_from(ONBOARDED, "acme-tracking");
    let mut body = onboarded_body();
    body["shipment"]["history"] = json!([]);
    let body = serde_json::to_vec(&body).unwrap();
    assert!(adapter.inspect(&body).is_ok());
    let events = adapter
        .to_canonical(&webhook("acme-tracking", "ntf-991", &body))
        .unwrap();
    assert!(events.is_empty());
}

/// A change made to a valid body to break it, and the reason expected.
type Edit = Box<dyn Fn(&mut Value)>;

#[test]
fn malformed_bodies_are_refused_with_the_field_and_never_its_value() {
    let adapter = adapter_from(ONBOARDED, "acme-tracking");
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|b| b["shipment"]["history"] = json!({"id": "h1"})),
            "`/shipment/history` is not an array",
        ),
        (
            Box::new(|b| drop(b["shipment"].as_object_mut().unwrap().remove("history"))),
            "missing the events array at `/shipment/history`",
        ),
        (
            Box::new(|b| drop(b.as_object_mut().unwrap().remove("notification_id"))),
            "missing the delivery id at `/notification_id`",
        ),
        (
            Box::new(|b| b["notification_id"] = json!({"x": 1})),
            "`/notification_id` is not a string",
        ),
        (
            Box::new(|b| b["shipment"]["history"][1]["at"] = json!("2024-08-02")),
            "event 1: `occurred_at` (pointer `/shipment/history/1/at`) is not a time in the format `unix`",
        ),
        (
            Box::new(|b| b["shipment"]["history"][2]["code"] = json!(null)),
            "event 2: missing `status` (pointer `/shipment/history/2/code`)",
        ),
        (
            Box::new(|b| b["shipment"]["awb"] = json!(["4200017731"])),
            "event 0: `tracking_number` (pointer `/shipment/awb`) is not a string or a number",
        ),
        (
            Box::new(|b| b["shipment"]["eta"] = json!(99_999_999_999_999_i64)),
            "event 0: `eta` (pointer `/shipment/eta`) is out of range",
        ),
    ];
    for (edit, reason) in cases {
        let mut body = onboarded_body();
        edit(&mut body);
        let bytes = serde_json::to_vec(&body).unwrap();
        let error = adapter.inspect(&bytes).unwrap_err();
        let PartnerError::Malformed { reason: why, .. } = &error else {
            panic!("{error:?}");
        };
        assert!(
            why.starts_with(reason),
            "{why:?} should start with {reason:?}"
        );
        assert_eq!(
            adapter
                .to_canonical(&webhook("acme-tracking", "x", &bytes))
                .unwrap_err(),
            error
        );
    }
    for body in [&b"not json"[..], b"[1,2]", b"\"text\"", b""] {
        assert_eq!(
            adapter.inspect(body).unwrap_err().code(),
            "malformed_payload"
        );
    }
}

#[test]
fn bad_options_are_configuration_errors() {
    let cases = [
        (
            "pointer without slash",
            ONBOARDED.replace("\"/code\"", "\"code\""),
        ),
        ("bad escape", ONBOARDED.replace("\"/code\"", "\"/co~de\"")),
        (
            "root pointer table with extra key",
            ONBOARDED.replace("{ root = \"/shipment/awb\" }", "{ root = \"/a\", x = 1 }"),
        ),
        (
            "constant tracking number",
            ONBOARDED.replace("{ root = \"/shipment/awb\" }", "{ constant = \"1\" }"),
        ),
        (
            "missing fields table",
            ONBOARDED.replace("[partner.options.fields]\n", ""),
        ),
        (
            "unknown canonical status",
            ONBOARDED.replace("\"picked_up\"", "\"collected\""),
        ),
        (
            "bad events pointer",
            ONBOARDED.replace("\"/shipment/history\"", "\"history\""),
        ),
    ];
    for (case, text) in cases {
        let file = PartnersFile::parse(&text);
        let refused = match file {
            Err(_) => true,
            Ok(file) => Adapter::from_config(&file.partner[0]).is_err(),
        };
        assert!(refused, "{case} was accepted");
    }
}

#[test]
fn the_same_body_gives_the_same_events_and_the_same_payload_hash() {
    let adapter = tms();
    let reordered: Value = serde_json::from_str(DELIVERED).unwrap();
    let compact = serde_json::to_vec(&reordered).unwrap();
    assert_eq!(
        adapter.inspect(DELIVERED.as_bytes()).unwrap(),
        adapter.inspect(&compact).unwrap()
    );
    let first = adapter
        .to_canonical(&webhook("tms", "msg_1", DELIVERED.as_bytes()))
        .unwrap();
    let second = adapter
        .to_canonical(&webhook("tms", "msg_1", &compact))
        .unwrap();
    assert_eq!(first, second);
}

fn never_panics(adapter: &Adapter, body: &[u8]) {
    let inspected = adapter.inspect(body);
    let transformed = adapter.to_canonical(&webhook("acme-tracking", "msg", body));
    assert_eq!(inspected.is_ok(), transformed.is_ok());
    if let Err(error) = transformed {
        assert_eq!(error.code(), "malformed_payload");
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        never_panics(&tms(), &body);
        never_panics(&adapter_from(ONBOARDED, "acme-tracking"), &body);
    }

    #[test]
    fn arbitrary_json_never_panics(value in any_json()) {
        let bytes = serde_json::to_vec(&value).unwrap();
        never_panics(&tms(), &bytes);
        never_panics(&adapter_from(ONBOARDED, "acme-tracking"), &bytes);
    }

    #[test]
    fn arbitrary_history_entries_never_panic(entry in any_json()) {
        let mut body = onboarded_body();
        body["shipment"]["history"][1] = entry;
        never_panics(&adapter_from(ONBOARDED, "acme-tracking"), &serde_json::to_vec(&body).unwrap());
    }
}
