use std::path::PathBuf;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::canonical::{Delivery, ProofOfDelivery};
use crate::failure::Classify;
use crate::partners::{self, Format};
use crate::webhook::{WebhookBody, ingress_id};

/// Shippo's "Webhook POSTBody Example" (2020 docs), final newline included.
const DELIVERED: &str = include_str!(
    "../../../tests/fixtures/partners/shippo-track-updated-test-webhook-delivered.json"
);

fn time(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn webhook_for(partner: &str, body: &[u8]) -> ReceivedWebhook {
    ReceivedWebhook {
        ingress_id: ingress_id(partner, "SHIPPO_DELIVERED#x"),
        partner: partner.into(),
        format: FORMAT.into(),
        delivery_id: "SHIPPO_DELIVERED#x".into(),
        received_at: time("2020-03-12T09:49:07Z"),
        content_type: Some("application/json".into()),
        body: WebhookBody::from_bytes(body),
    }
}

fn transform(body: &Value) -> Result<Vec<CanonicalEvent>, PartnerError> {
    let bytes = serde_json::to_vec(body).unwrap();
    partners::to_canonical(Format::Shippo, &webhook_for("shippo", &bytes))
}

/// The event of a Track whose history is empty: its current scan's.
fn only_event(body: &Value) -> CanonicalEvent {
    let mut events = transform(body).unwrap();
    assert_eq!(events.len(), 1, "one event per scan");
    events.remove(0)
}

fn transformed(body: &Value) -> Transformed {
    let bytes = serde_json::to_vec(body).unwrap();
    partners::Adapter::new(Format::Shippo)
        .transform(&webhook_for("shippo", &bytes))
        .unwrap()
}

fn status_change(event: &CanonicalEvent) -> &StatusChange {
    match &event.body {
        EventBody::StatusChanged(change) => change,
        other => panic!("expected shipment.status_changed, got {other:?}"),
    }
}

fn delivered() -> Value {
    serde_json::from_str(DELIVERED).unwrap()
}

/// The fixture with an empty `tracking_history`: only the current scan.
fn current_only() -> Value {
    let mut body = delivered();
    body["data"]["tracking_history"] = json!([]);
    body
}

/// The fixture's current scan alone, set to `status` / `substatus`.
fn with_status(status: &str, substatus: Option<&str>) -> Value {
    let mut body = current_only();
    body["data"]["tracking_status"]["status"] = json!(status);
    body["data"]["tracking_status"]["substatus"] = match substatus {
        Some(code) => json!({"code": code, "text": "", "action_required": false}),
        None => Value::Null,
    };
    body
}

fn malformed_reason(error: PartnerError) -> String {
    match error {
        PartnerError::Malformed { format, reason } => {
            assert_eq!(format, FORMAT);
            reason
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
}

fn chicago() -> Location {
    Location {
        city: Some("Chicago".into()),
        state: Some("IL".into()),
        country: Some("US".into()),
        postal_code: Some("60611".into()),
    }
}

#[test]
fn delivered_fixture_becomes_one_event_per_scan_with_the_top_level_carrier() {
    let events = transform(&delivered()).unwrap();
    let delivery_id = "SHIPPO_DELIVERED#2d3d646335e449a8b0308f798970d045";
    // The history's four scans; the current scan is the history's last one, 2 ms apart.
    let scans = [
        (
            "2020-03-08T01:29:06.473Z",
            ShipmentStatus::Exception,
            Some("UNKNOWN"),
        ),
        ("2020-03-09T03:34:06.473Z", ShipmentStatus::InTransit, None),
        (
            "2020-03-10T05:39:06.473Z",
            ShipmentStatus::Exception,
            Some("FAILURE"),
        ),
    ];
    assert_eq!(events.len(), 4);
    for (event, (at, status, raw)) in events.iter().zip(scans) {
        let second = &at[..19];
        assert!(
            event
                .source_event_id
                .starts_with(&format!("SHIPPO_DELIVERED#{second}Z#")),
            "{}",
            event.source_event_id
        );
        assert_eq!(event.occurred_at, time(at));
        assert_eq!(event.correlation_id, delivery_id);
        let change = status_change(event);
        assert_eq!(change.status, status, "{at}");
        assert_eq!(change.raw_status.as_deref(), raw, "{at}");
        assert_eq!(change.eta, None, "{at}");
    }

    let event = &events[3];
    assert!(
        event
            .source_event_id
            .starts_with("SHIPPO_DELIVERED#2020-03-11T07:44:06Z#"),
        "{}",
        event.source_event_id
    );
    let expected = CanonicalEvent {
        schema: canonical::SCHEMA.into(),
        event_id: canonical::event_id("shippo", &event.source_event_id, 0),
        partner: "shippo".into(),
        source_event_id: event.source_event_id.clone(),
        correlation_id: delivery_id.into(),
        occurred_at: time("2020-03-11T07:44:06.473Z"),
        received_at: time("2020-03-12T09:49:07Z"),
        shipment: ShipmentRef {
            tracking_number: "SHIPPO_DELIVERED".into(),
            // `data.carrier` is null in this sample; the top-level `carrier` is read instead.
            carrier: Some("shippo".into()),
            reference: None,
        },
        body: EventBody::Delivered(Delivery {
            status: ShipmentStatus::Delivered,
            status_detail: None,
            location: Some(chicago()),
            message: Some("Your shipment has been delivered.".into()),
            pod: ProofOfDelivery {
                signed_by: None,
                delivered_at: time("2020-03-11T07:44:06.473Z"),
                document_url: None,
            },
        }),
    };
    assert_eq!(event, &expected);
    assert_eq!(event.event_type(), "shipment.delivered");
}

#[test]
fn every_scan_is_history_and_the_current_scan_is_named_like_its_history_entry() {
    let transformed = transformed(&delivered());
    let history = transformed.history[0].clone();
    assert_eq!(transformed.history.len(), 1);
    assert_eq!(history.scope, "shippo#SHIPPO_DELIVERED");
    let ids: Vec<_> = transformed.events.iter().map(|e| e.event_id).collect();
    assert_eq!(history.entries, ids);

    // The delivery before this one had no history yet: its current scan is the same event as
    // the history's last entry here.
    let alone = transformed_ids(&current_only());
    assert_eq!(alone, vec![ids[3]]);
}

fn transformed_ids(body: &Value) -> Vec<uuid::Uuid> {
    transform(body)
        .unwrap()
        .iter()
        .map(|event| event.event_id)
        .collect()
}

#[test]
fn scans_are_named_by_second_status_and_place_not_by_shippo_id_or_text() {
    let base = transformed_ids(&current_only());
    let renamed = |edit: &dyn Fn(&mut Value)| {
        let mut body = current_only();
        edit(&mut body["data"]["tracking_status"]);
        transformed_ids(&body)
    };
    assert_eq!(renamed(&|scan| scan["object_id"] = json!("other")), base);
    assert_eq!(
        renamed(&|scan| scan["status_details"] = json!("Delivered.")),
        base
    );
    assert_eq!(
        renamed(&|scan| scan["status_date"] = json!("2020-03-11T07:44:06.999Z")),
        base
    );
    assert_ne!(
        renamed(&|scan| scan["status_date"] = json!("2020-03-11T07:44:07Z")),
        base
    );
    assert_ne!(renamed(&|scan| scan["status"] = json!("RETURNED")), base);
    assert_ne!(
        renamed(&|scan| scan["location"]["zip"] = json!("60612")),
        base
    );
    assert_ne!(
        renamed(&|scan| scan["substatus"] = json!({"code": "delivered"})),
        base
    );
}

#[test]
fn the_newest_scan_carries_the_estimate() {
    let mut body = delivered();
    body["data"]["tracking_status"] = body["data"]["tracking_history"][1].clone();
    body["data"]["eta"] = json!("2020-03-12T18:00:00Z");
    let events = transform(&body).unwrap();
    assert_eq!(events.len(), 4);
    // The current scan is the history's second; the newest is still the delivery.
    assert!(events.iter().all(|event| match &event.body {
        EventBody::StatusChanged(change) => change.eta.is_none(),
        _ => true,
    }));
    body["data"]["tracking_history"]
        .as_array_mut()
        .unwrap()
        .truncate(2);
    let events = transform(&body).unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        status_change(&events[1]).eta,
        Some(time("2020-03-12T18:00:00Z"))
    );
    assert_eq!(status_change(&events[0]).eta, None);
}

#[test]
fn history_entries_without_a_time_are_skipped_and_without_a_status_are_unknown() {
    let mut body = delivered();
    let history = body["data"]["tracking_history"].as_array_mut().unwrap();
    history[0]["status_date"] = Value::Null;
    history[0]["object_created"] = Value::Null;
    history[1]["status"] = Value::Null;
    let events = transform(&body).unwrap();
    assert_eq!(events.len(), 3);
    let change = status_change(&events[0]);
    assert_eq!(change.status, ShipmentStatus::Exception);
    assert_eq!(change.raw_status.as_deref(), Some("UNKNOWN"));
}

#[test]
fn inspect_names_the_delivery_by_tracking_number_and_scan_and_hashes_the_scan() {
    let key = partners::inspect(Format::Shippo, DELIVERED.as_bytes()).unwrap();
    assert_eq!(
        key.delivery_id.as_deref(),
        Some("SHIPPO_DELIVERED#2d3d646335e449a8b0308f798970d045")
    );
    let scan = &delivered()["data"]["tracking_status"];
    let expected = crate::idempotency::sha256_tag(&serde_json::to_vec(scan).unwrap());
    assert_eq!(key.payload_hash.as_deref(), Some(expected.as_str()));
}

#[test]
fn a_retry_with_other_envelope_details_is_the_same_delivery() {
    let first = partners::inspect(Format::Shippo, DELIVERED.as_bytes()).unwrap();
    let mut retry = delivered();
    retry["metadata"] = json!("retried");
    retry["data"]["tracking_history"] = json!([]);
    let second =
        partners::inspect(Format::Shippo, &serde_json::to_vec_pretty(&retry).unwrap()).unwrap();
    assert_eq!(second, first);

    let mut other_scan = delivered();
    other_scan["data"]["tracking_status"]["status_details"] = json!("Left at front door.");
    let third =
        partners::inspect(Format::Shippo, &serde_json::to_vec(&other_scan).unwrap()).unwrap();
    assert_eq!(third.delivery_id, first.delivery_id);
    assert_ne!(third.payload_hash, first.payload_hash);
}

#[test]
fn without_a_scan_id_the_delivery_is_named_by_the_scan_time() {
    let mut body = current_only();
    body["data"]["tracking_status"]["object_id"] = Value::Null;
    let bytes = serde_json::to_vec(&body).unwrap();
    let key = partners::inspect(Format::Shippo, &bytes).unwrap();
    let id = "SHIPPO_DELIVERED#2020-03-11T07:44:06.471Z";
    assert_eq!(key.delivery_id.as_deref(), Some(id));
    let event = only_event(&body);
    assert_eq!(event.correlation_id, id);
    assert_eq!(
        event.event_id,
        canonical::event_id("shippo", &event.source_event_id, 0)
    );
}

#[test]
fn carrier_comes_from_the_track_first_then_the_envelope() {
    let mut body = current_only();
    body["data"]["carrier"] = json!("usps");
    assert_eq!(only_event(&body).shipment.carrier.as_deref(), Some("usps"));
    body["data"]["carrier"] = Value::Null;
    body.as_object_mut().unwrap().remove("carrier");
    assert_eq!(only_event(&body).shipment.carrier, None);
}

/// (status, substatus code, canonical status, raw status kept)
type Row = (&'static str, Option<&'static str>, ShipmentStatus, bool);

/// Every row of both tables, written out independently of them, plus words neither knows.
fn expected_mappings() -> Vec<Row> {
    use ShipmentStatus::*;
    vec![
        ("PRE_TRANSIT", None, Booked, false),
        ("TRANSIT", None, InTransit, false),
        ("DELIVERED", None, Delivered, false),
        ("RETURNED", None, Returned, false),
        ("FAILURE", None, Exception, true),
        ("UNKNOWN", None, Exception, true),
        ("PRE_TRANSIT", Some("information_received"), Booked, false),
        ("TRANSIT", Some("package_accepted"), PickedUp, false),
        ("TRANSIT", Some("package_arrived"), InTransit, false),
        ("TRANSIT", Some("package_departed"), InTransit, false),
        ("TRANSIT", Some("package_processed"), InTransit, false),
        ("TRANSIT", Some("package_processing"), InTransit, false),
        ("TRANSIT", Some("package_forwarded"), InTransit, false),
        ("TRANSIT", Some("delivery_scheduled"), InTransit, false),
        ("TRANSIT", Some("out_for_delivery"), OutForDelivery, false),
        ("TRANSIT", Some("pickup_available"), OutForDelivery, true),
        ("TRANSIT", Some("delayed"), Delayed, false),
        ("TRANSIT", Some("delivery_rescheduled"), Delayed, false),
        ("TRANSIT", Some("delivery_attempted"), Exception, true),
        ("TRANSIT", Some("notice_left"), Exception, true),
        ("TRANSIT", Some("location_inaccessible"), Exception, true),
        ("TRANSIT", Some("address_issue"), Exception, true),
        ("TRANSIT", Some("reschedule_delivery"), Exception, true),
        ("TRANSIT", Some("contact_carrier"), Exception, true),
        ("TRANSIT", Some("package_held"), Exception, true),
        ("TRANSIT", Some("package_damaged"), Exception, true),
        ("DELIVERED", Some("delivered"), Delivered, false),
        ("RETURNED", Some("return_to_sender"), Returned, false),
        ("RETURNED", Some("package_unclaimed"), Exception, true),
        ("FAILURE", Some("package_undeliverable"), Exception, true),
        ("FAILURE", Some("package_disposed"), Exception, true),
        ("FAILURE", Some("package_lost"), Exception, true),
        ("UNKNOWN", Some("other"), Exception, true),
        // Words neither table knows.
        ("IN_ORBIT", None, Exception, true),
        ("transit", None, Exception, true),
        ("IN_ORBIT", Some("teleported"), Exception, true),
        // An unknown substatus falls back to the status.
        ("TRANSIT", Some("package_teleported"), InTransit, false),
        ("DELIVERED", Some("left_with_neighbour"), Delivered, false),
        // A known substatus wins over its status.
        ("UNKNOWN", Some("package_accepted"), PickedUp, false),
    ]
}

#[test]
fn status_tables_map_every_shippo_word() {
    let rows = expected_mappings();
    for (status, substatus, expected, keep_raw) in &rows {
        assert_eq!(
            map_status(status, *substatus),
            StatusMapping {
                status: *expected,
                keep_raw: *keep_raw
            },
            "{status} / {substatus:?}"
        );
    }
    // Every table row is among the cases above.
    for (word, ..) in STATUS_TABLE {
        assert!(rows.iter().any(|r| r.0 == word && r.1.is_none()), "{word}");
    }
    for (code, ..) in SUBSTATUS_TABLE {
        assert!(rows.iter().any(|r| r.1 == Some(code)), "{code}");
    }
}

#[test]
fn every_mapping_reaches_the_canonical_event_with_its_detail_and_raw_word() {
    for (status, substatus, expected, keep_raw) in expected_mappings() {
        let event = only_event(&with_status(status, substatus));
        let case = format!("{status} / {substatus:?}");
        match &event.body {
            EventBody::Delivered(delivery) => {
                assert_eq!(expected, ShipmentStatus::Delivered, "{case}");
                assert_eq!(delivery.status_detail.as_deref(), substatus, "{case}");
                assert_eq!(delivery.pod.signed_by, None, "{case}");
            }
            EventBody::StatusChanged(change) => {
                assert_eq!(change.status, expected, "{case}");
                assert_eq!(change.status_detail.as_deref(), substatus, "{case}");
                assert_eq!(
                    change.raw_status.as_deref(),
                    keep_raw.then_some(status),
                    "{case}"
                );
                assert_eq!(change.eta, Some(time("2020-03-11T09:49:06.459Z")), "{case}");
            }
            other => panic!("{case}: unexpected {other:?}"),
        }
    }
}

#[test]
fn label_created_scan_sent_as_unknown_is_an_exception_keeping_the_word_and_text() {
    // partners.md §3: real data sends "electronic shipment information" scans as UNKNOWN.
    let mut body = with_status("UNKNOWN", None);
    body["data"]["tracking_status"]["status_details"] =
        json!("The carrier has received the electronic shipment information.");
    let event = only_event(&body);
    let change = status_change(&event);
    assert_eq!(change.status, ShipmentStatus::Exception);
    assert_eq!(change.raw_status.as_deref(), Some("UNKNOWN"));
    assert_eq!(
        change.message.as_deref(),
        Some("The carrier has received the electronic shipment information.")
    );
}

#[test]
fn out_for_delivery_without_substatus_stays_in_transit_with_the_text_kept() {
    // 2016 data: "out for delivery" arrives as TRANSIT with no substatus; the text is not parsed.
    let mut body = with_status("TRANSIT", None);
    body["data"]["tracking_status"]["status_details"] = json!("Out for Delivery");
    let event = only_event(&body);
    let change = status_change(&event);
    assert_eq!(change.status, ShipmentStatus::InTransit);
    assert_eq!(change.message.as_deref(), Some("Out for Delivery"));
    let with_code = only_event(&with_status("TRANSIT", Some("out_for_delivery")));
    assert_eq!(
        status_change(&with_code).status,
        ShipmentStatus::OutForDelivery
    );
}

#[test]
fn scan_time_falls_back_from_status_date_to_the_object_times() {
    let mut body = current_only();
    body["data"]["tracking_status"]["status_date"] = Value::Null;
    assert_eq!(
        only_event(&body).occurred_at,
        time("2020-03-12T09:49:06.471Z")
    );
    body["data"]["tracking_status"]["object_updated"] = json!("2020-03-12T10:00:00Z");
    assert_eq!(only_event(&body).occurred_at, time("2020-03-12T10:00:00Z"));
    body["data"]["tracking_status"]["object_updated"] = Value::Null;
    body["data"]["tracking_status"]["object_created"] = Value::Null;
    let reason = malformed_reason(transform(&body).unwrap_err());
    assert!(reason.contains("no time"), "{reason}");
}

#[test]
fn scan_without_location_or_eta_has_none() {
    let mut body = with_status("TRANSIT", Some("package_departed"));
    body["data"]["tracking_status"]["location"] = Value::Null;
    body["data"]["eta"] = Value::Null;
    let event = only_event(&body);
    let change = status_change(&event);
    assert_eq!(change.location, None);
    assert_eq!(change.eta, None);

    body["data"]["tracking_status"]["location"] = json!({"city": " ", "zip": ""});
    assert_eq!(status_change(&only_event(&body)).location, None);
}

/// A change made to a valid body to break it.
type Edit = Box<dyn Fn(&mut Value)>;

#[test]
fn malformed_bodies_are_refused_naming_the_field() {
    let edits: Vec<(&str, Edit)> = vec![
        (
            "event",
            Box::new(|b| drop(b.as_object_mut().unwrap().remove("event"))),
        ),
        ("event", Box::new(|b| b["event"] = json!(1))),
        ("data", Box::new(|b| b["data"] = Value::Null)),
        ("data", Box::new(|b| b["data"] = json!([]))),
        (
            "data.tracking_number",
            Box::new(|b| b["data"]["tracking_number"] = json!("")),
        ),
        (
            "data.tracking_number",
            Box::new(|b| b["data"]["tracking_number"] = json!(42)),
        ),
        (
            "data.carrier",
            Box::new(|b| b["data"]["carrier"] = json!({})),
        ),
        ("carrier", Box::new(|b| b["carrier"] = json!(false))),
        (
            "data.tracking_status",
            Box::new(|b| b["data"]["tracking_status"] = Value::Null),
        ),
        (
            "data.tracking_status",
            Box::new(|b| b["data"]["tracking_status"] = json!("DELIVERED")),
        ),
        (
            "data.tracking_status.status",
            Box::new(|b| b["data"]["tracking_status"]["status"] = Value::Null),
        ),
        (
            "data.tracking_status.substatus",
            Box::new(|b| b["data"]["tracking_status"]["substatus"] = json!("delayed")),
        ),
        (
            "data.tracking_status.substatus.code",
            Box::new(|b| b["data"]["tracking_status"]["substatus"] = json!({"code": 7})),
        ),
        (
            "data.tracking_status.status_date",
            Box::new(|b| b["data"]["tracking_status"]["status_date"] = json!("2020-03-11")),
        ),
        (
            "data.tracking_status.object_id",
            Box::new(|b| b["data"]["tracking_status"]["object_id"] = json!(["x"])),
        ),
        (
            "data.tracking_status.location",
            Box::new(|b| b["data"]["tracking_status"]["location"] = json!("Chicago")),
        ),
        (
            "data.tracking_status.location.zip",
            Box::new(|b| b["data"]["tracking_status"]["location"]["zip"] = json!(60611)),
        ),
        (
            "data.tracking_status.status_details",
            Box::new(|b| b["data"]["tracking_status"]["status_details"] = json!(1)),
        ),
    ];
    for (field, edit) in edits {
        let mut body = delivered();
        edit(&mut body);
        let bytes = serde_json::to_vec(&body).unwrap();
        let from_inspect = partners::inspect(Format::Shippo, &bytes).unwrap_err();
        let from_transform = transform(&body).unwrap_err();
        assert_eq!(from_inspect, from_transform, "ingress and transform agree");
        assert_eq!(from_transform.code(), "malformed_payload");
        let reason = malformed_reason(from_transform);
        assert!(reason.contains(&format!("`{field}`")), "{field}: {reason}");
        // Reasons name fields, never values.
        assert!(
            !reason.contains("SHIPPO_DELIVERED") && !reason.contains("Chicago"),
            "{reason}"
        );
    }
}

#[test]
fn bodies_that_are_not_json_objects_are_malformed() {
    for body in [
        &b""[..],
        b"not json",
        b"[]",
        b"\"track_updated\"",
        b"\xff{}",
    ] {
        let error = partners::inspect(Format::Shippo, body).unwrap_err();
        assert_eq!(error.code(), "malformed_payload", "{body:?}");
        let error =
            partners::to_canonical(Format::Shippo, &webhook_for("shippo", body)).unwrap_err();
        assert_eq!(error.code(), "malformed_payload", "{body:?}");
    }
}

#[test]
fn other_events_are_accepted_at_ingress_but_not_transformed() {
    for event in [
        "transaction_created",
        "transaction_updated",
        "batch_purchased",
    ] {
        let body = json!({"event": event, "test": true, "data": {"object_id": "abc"}});
        let bytes = serde_json::to_vec(&body).unwrap();
        let key = partners::inspect(Format::Shippo, &bytes).unwrap();
        // No id of Shippo's: ingress names the delivery by its bytes.
        assert_eq!(
            key,
            DeliveryKey {
                delivery_id: None,
                payload_hash: None
            }
        );
        assert_eq!(
            transform(&body).unwrap_err(),
            PartnerError::Unsupported {
                format: FORMAT,
                what: format!("event `{event}`"),
            }
        );
    }
}

#[test]
fn transforming_twice_gives_identical_events_and_ids_depend_on_the_partner() {
    let webhook = webhook_for("shippo", DELIVERED.as_bytes());
    let first = partners::to_canonical(Format::Shippo, &webhook).unwrap();
    let second = partners::to_canonical(Format::Shippo, &webhook).unwrap();
    assert_eq!(first, second);
    let other = partners::to_canonical(
        Format::Shippo,
        &webhook_for("shippo-eu", DELIVERED.as_bytes()),
    )
    .unwrap();
    assert_ne!(other[0].event_id, first[0].event_id);
}

fn schema_validator() -> jsonschema::Validator {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../schema/freightbridge.canonical.v1.schema.json");
    let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap()
}

fn demo_samples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/partners");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("shippo-") && name.ends_with(".json"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_event_conforms_to_the_published_schema() {
    let validator = schema_validator();
    let mut bodies: Vec<Vec<u8>> = expected_mappings()
        .into_iter()
        .map(|(status, substatus, ..)| serde_json::to_vec(&with_status(status, substatus)).unwrap())
        .collect();
    bodies.extend(
        demo_samples()
            .into_iter()
            .map(|p| std::fs::read(p).unwrap()),
    );
    for body in bodies {
        for event in partners::to_canonical(Format::Shippo, &webhook_for("shippo", &body)).unwrap()
        {
            let value = serde_json::to_value(&event).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| e.to_string())
                .collect();
            assert!(errors.is_empty(), "{errors:?} in {value:#}");
        }
    }
}

#[test]
fn demo_samples_transform_as_documented() {
    let samples = demo_samples();
    assert!(samples.len() >= 3, "found {samples:?}");
    for path in &samples {
        let body = std::fs::read(path).unwrap();
        let key = partners::inspect(Format::Shippo, &body).unwrap();
        let events = partners::to_canonical(Format::Shippo, &webhook_for("shippo", &body)).unwrap();
        assert!(!events.is_empty(), "{}", path.display());
        let delivery_id = key.delivery_id.unwrap();
        assert!(
            events
                .iter()
                .all(|event| event.correlation_id == delivery_id)
        );
    }
    let read = |name: &str| {
        std::fs::read(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../events/partners")
                .join(name),
        )
        .unwrap()
    };
    assert_eq!(
        read("shippo-track-updated-delivered.json"),
        DELIVERED.as_bytes()
    );

    let events = partners::to_canonical(
        Format::Shippo,
        &webhook_for(
            "shippo",
            &read("shippo-track-updated-out-for-delivery.json"),
        ),
    )
    .unwrap();
    let event = events.last().unwrap();
    assert_eq!(event.shipment.tracking_number, "9205590164917312751089");
    assert_eq!(event.shipment.carrier.as_deref(), Some("usps"));
    assert_eq!(event.occurred_at, time("2026-11-26T13:02:00Z"));
    let change = status_change(event);
    assert_eq!(change.status, ShipmentStatus::OutForDelivery);
    assert_eq!(change.status_detail.as_deref(), Some("out_for_delivery"));
    assert_eq!(change.eta, Some(time("2026-11-26T20:00:00Z")));

    let events = partners::to_canonical(
        Format::Shippo,
        &webhook_for(
            "shippo-hmac",
            &read("shippo-hmac-track-updated-picked-up.json"),
        ),
    )
    .unwrap();
    assert_eq!(events.len(), 1, "no history yet: the current scan alone");
    let event = &events[0];
    assert_eq!(event.shipment.tracking_number, "1Z999AA10123456784");
    assert_eq!(event.shipment.carrier.as_deref(), Some("ups"));
    assert_eq!(status_change(event).status, ShipmentStatus::PickedUp);
}

/// Any JSON value, nested a few levels, biased towards Shippo's own words.
fn any_json() -> impl Strategy<Value = Value> {
    const WORDS: &[&str] = &[
        "track_updated",
        "TRANSIT",
        "DELIVERED",
        "UNKNOWN",
        "out_for_delivery",
        "2020-03-11T07:44:06.471Z",
        "SHIPPO_DELIVERED",
    ];
    const KEYS: &[&str] = &[
        "tracking_number",
        "carrier",
        "tracking_status",
        "status",
        "substatus",
        "code",
        "status_date",
        "object_id",
        "location",
        "zip",
        "eta",
        "x",
    ];
    crate::partners::arbitrary_json::json_with(WORDS, KEYS)
}

fn never_panics(body: &[u8]) {
    let _ = partners::inspect(Format::Shippo, body);
    let _ = partners::to_canonical(Format::Shippo, &webhook_for("shippo", body));
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
    fn arbitrary_tracks_never_panic_and_ingress_agrees_with_the_transform(
        data in any_json(),
        carrier in any_json(),
    ) {
        let body = json!({"event": "track_updated", "test": false, "data": data, "carrier": carrier});
        let bytes = serde_json::to_vec(&body).unwrap();
        let inspected = partners::inspect(Format::Shippo, &bytes);
        let transformed = partners::to_canonical(Format::Shippo, &webhook_for("shippo", &bytes));
        prop_assert_eq!(inspected.is_ok(), transformed.is_ok());
        if let (Ok(key), Ok(events)) = (inspected, transformed) {
            // At least the current scan, every event correlated with the delivery.
            prop_assert!(!events.is_empty());
            for event in &events {
                prop_assert_eq!(key.delivery_id.as_deref(), Some(event.correlation_id.as_str()));
            }
        }
    }

    #[test]
    fn arbitrary_fields_in_the_real_scan_never_panic_and_agree(
        key in prop::sample::select(vec![
            "status", "substatus", "status_date", "object_id", "location", "status_details",
            "object_updated",
        ]),
        value in any_json(),
    ) {
        let mut body = delivered();
        body["data"]["tracking_status"][key] = value;
        let bytes = serde_json::to_vec(&body).unwrap();
        let inspected = partners::inspect(Format::Shippo, &bytes);
        let transformed = partners::to_canonical(Format::Shippo, &webhook_for("shippo", &bytes));
        prop_assert_eq!(inspected.is_ok(), transformed.is_ok());
    }
}

#[test]
fn shippo_partners_take_json_and_no_options() {
    assert_eq!(
        Format::Shippo.default_content_types(),
        &["application/json"]
    );
    let file = |options: &str| {
        crate::config::PartnersFile::parse(&format!(
            "[[partner]]\nid = \"shippo\"\nformat = \"shippo\"\n{options}[partner.signature]\nscheme = \"query-token\"\nsecrets = [\"t\"]\n"
        ))
        .unwrap()
    };
    let plain = file("");
    let adapter = partners::Adapter::from_config(&plain.partner[0]).unwrap();
    assert_eq!(adapter.format(), Format::Shippo);
    assert_eq!(
        adapter.inspect(DELIVERED.as_bytes()),
        partners::inspect(Format::Shippo, DELIVERED.as_bytes())
    );
    let with_options = file("[partner.options]\nstatus_field = \"x\"\n");
    let error = partners::Adapter::from_config(&with_options.partner[0]).unwrap_err();
    assert!(
        error.to_string().contains("takes no [partner.options]"),
        "{error}"
    );
}

/// Shippo's documented test-mode payloads send `eta` without a zone (`2018-08-02T18:49:42.566`):
/// read as UTC. An `eta` that cannot be read at all is dropped; the milestone never is.
#[test]
fn an_eta_without_a_zone_is_utc_and_an_unreadable_one_costs_nothing() {
    let mut body = with_status("TRANSIT", None);
    body["data"]["eta"] = json!("2018-08-02T18:49:42.566");
    let event = only_event(&body);
    assert_eq!(
        status_change(&event).eta,
        Some("2018-08-02T18:49:42.566Z".parse().unwrap())
    );
    for unreadable in [json!("tomorrow"), json!(20180802), json!({"date": "x"})] {
        body["data"]["eta"] = unreadable.clone();
        let bytes = serde_json::to_vec(&body).unwrap();
        assert!(
            partners::inspect(Format::Shippo, &bytes).is_ok(),
            "{unreadable}"
        );
        let event = only_event(&body);
        assert_eq!(status_change(&event).eta, None, "{unreadable}");
    }
}
