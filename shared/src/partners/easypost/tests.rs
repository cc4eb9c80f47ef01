use std::path::PathBuf;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::failure::Classify;
use crate::partners::{self, Adapter, Format, Need};
use crate::webhook::{WebhookBody, ingress_id};

const IN_TRANSIT: &str =
    include_str!("../../../tests/fixtures/partners/easypost-tracker-updated-in-transit.json");
const PRE_TRANSIT_TRACKER: &str =
    include_str!("../../../tests/fixtures/partners/easypost-tracker-object-pre-transit.json");

fn time(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn webhook_for(partner: &str, body: &[u8]) -> ReceivedWebhook {
    ReceivedWebhook {
        ingress_id: ingress_id(partner, "evt_any"),
        partner: partner.into(),
        format: FORMAT.into(),
        delivery_id: "evt_any".into(),
        received_at: time("2024-08-02T19:26:53Z"),
        content_type: Some("application/json".into()),
        body: WebhookBody::from_bytes(body),
    }
}

fn transform(body: &Value) -> Result<Vec<CanonicalEvent>, PartnerError> {
    let bytes = serde_json::to_vec(body).unwrap();
    partners::to_canonical(Format::EasyPost, &webhook_for("easypost", &bytes))
}

/// The event for the tracker's current status: the last one, whether the newest scan's event
/// stands for it or it comes as an event of its own.
fn current_event(body: &Value) -> CanonicalEvent {
    let mut events = transform(body).unwrap();
    events
        .pop()
        .expect("a tracker event has at least one canonical event")
}

fn transformed(body: &Value) -> Transformed {
    let bytes = serde_json::to_vec(body).unwrap();
    Adapter::new(Format::EasyPost)
        .transform(&webhook_for("easypost", &bytes))
        .unwrap()
}

/// The id of the scan of `tracking_code` at `at`, whatever its digest.
fn scan_source_prefix(tracking_code: &str, at: &str) -> String {
    format!("{tracking_code}#{at}#")
}

fn status_change(event: &CanonicalEvent) -> &StatusChange {
    match &event.body {
        EventBody::StatusChanged(change) => change,
        other => panic!("expected shipment.status_changed, got {other:?}"),
    }
}

/// A change made to a valid body to break it.
type Edit = Box<dyn Fn(&mut Value)>;

fn in_transit() -> Value {
    serde_json::from_str(IN_TRANSIT).unwrap()
}

/// The bare pre-transit Tracker from the docs, wrapped in the Event envelope EasyPost posts.
fn pre_transit_event() -> Value {
    let tracker: Value = serde_json::from_str(PRE_TRANSIT_TRACKER).unwrap();
    json!({
        "id": "evt_pre_transit_1",
        "object": "Event",
        "description": "tracker.created",
        "mode": "test",
        "previous_attributes": {},
        "pending_urls": ["https://example.com/easypost"],
        "completed_urls": [],
        "created_at": "2025-05-09T20:40:18Z",
        "updated_at": "2025-05-09T20:40:18Z",
        "status": "pending",
        "result": tracker,
    })
}

fn with_status(mut body: Value, status: &str, detail: Option<&str>) -> Value {
    body["result"]["status"] = json!(status);
    body["result"]["status_detail"] = json!(detail);
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

#[test]
fn in_transit_fixture_becomes_one_event_per_scan_the_newest_with_the_estimate() {
    let events = transform(&in_transit()).unwrap();
    let scans = [
        (
            "2024-07-31T15:00:00Z",
            ShipmentStatus::Booked,
            "label_created",
            "ORLANDO",
        ),
        (
            "2024-07-31T19:27:00Z",
            ShipmentStatus::PickedUp,
            "arrived_at_facility",
            "ORLANDO",
        ),
        (
            "2024-07-31T22:35:00Z",
            ShipmentStatus::InTransit,
            "arrived_at_facility",
            "ORLANDO",
        ),
        (
            "2024-08-01T14:42:13Z",
            ShipmentStatus::InTransit,
            "departed_facility",
            "ORLANDO",
        ),
        (
            "2024-08-02T02:46:19Z",
            ShipmentStatus::InTransit,
            "unknown",
            "KENLY",
        ),
        (
            "2024-08-02T18:35:20Z",
            ShipmentStatus::InTransit,
            "unknown",
            "EDISON TWP",
        ),
        (
            "2024-08-02T18:50:00Z",
            ShipmentStatus::InTransit,
            "arrived_at_facility",
            "EDISON",
        ),
    ];
    assert_eq!(events.len(), scans.len());
    for (event, (at, status, detail, city)) in events.iter().zip(scans) {
        assert!(
            event
                .source_event_id
                .starts_with(&scan_source_prefix("1", at)),
            "{}",
            event.source_event_id
        );
        assert_eq!(
            event.event_id,
            canonical::event_id("easypost", &event.source_event_id, 0)
        );
        assert_eq!(event.occurred_at, time(at));
        assert_eq!(event.correlation_id, "evt_1");
        let change = status_change(event);
        assert_eq!(change.status, status, "{at}");
        assert_eq!(change.status_detail.as_deref(), Some(detail), "{at}");
        let first_city = change.location.as_ref().and_then(|l| l.city.as_deref());
        // The label scan has a postcode but no city.
        if at != "2024-07-31T15:00:00Z" {
            assert_eq!(first_city, Some(city), "{at}");
        }
        // Only the newest scan carries the tracker's estimate.
        let newest = at == "2024-08-02T18:50:00Z";
        assert_eq!(change.eta.is_some(), newest, "{at}");
    }

    let newest = events.last().unwrap();
    let expected = CanonicalEvent {
        schema: canonical::SCHEMA.into(),
        event_id: newest.event_id,
        partner: "easypost".into(),
        source_event_id: newest.source_event_id.clone(),
        correlation_id: "evt_1".into(),
        occurred_at: time("2024-08-02T18:50:00Z"),
        received_at: time("2024-08-02T19:26:53Z"),
        shipment: ShipmentRef {
            tracking_number: "1".into(),
            carrier: Some("FedEx".into()),
            reference: None,
        },
        body: EventBody::StatusChanged(StatusChange {
            status: ShipmentStatus::InTransit,
            status_detail: Some("arrived_at_facility".into()),
            raw_status: None,
            location: Some(Location {
                city: Some("EDISON".into()),
                state: Some("NJ".into()),
                country: Some("US".into()),
                postal_code: Some("08817".into()),
            }),
            message: Some("Arrived at FedEx location".into()),
            eta: Some(time("2024-08-05T00:00:00Z")),
        }),
    };
    assert_eq!(newest, &expected);
    assert_eq!(newest.event_type(), "shipment.status_changed");
}

#[test]
fn the_scans_are_history_and_the_scope_names_partner_and_tracking_code() {
    let transformed = transformed(&in_transit());
    let [history] = &transformed.history[..] else {
        panic!("one shipment's scans: {:?}", transformed.history);
    };
    assert_eq!(history.scope, "easypost#1");
    let ids: Vec<_> = transformed.events.iter().map(|e| e.event_id).collect();
    assert_eq!(history.entries, ids);
}

#[test]
fn a_scan_has_the_same_id_in_every_delivery_that_repeats_it() {
    // The next delivery: a new Event id, one more scan, the tracker out for delivery.
    let earlier = transform(&in_transit()).unwrap();
    let mut body = in_transit();
    body["id"] = json!("evt_2");
    body["result"]["status"] = json!("out_for_delivery");
    body["result"]["status_detail"] = json!("out_for_delivery");
    body["result"]["tracking_details"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "object": "TrackingDetail",
            "message": "On FedEx vehicle for delivery",
            "status": "out_for_delivery",
            "status_detail": "out_for_delivery",
            "datetime": "2024-08-03T08:05:00Z",
            "carrier_code": "OD",
            "tracking_location": {"city": "EDISON", "state": "NJ", "country": "US", "zip": "08817"},
        }));
    let later = transform(&body).unwrap();
    assert_eq!(later.len(), earlier.len() + 1);
    for (before, after) in earlier.iter().zip(&later) {
        assert_eq!(before.event_id, after.event_id);
        assert_eq!(after.correlation_id, "evt_2");
    }
    let newest = later.last().unwrap();
    assert_eq!(status_change(newest).status, ShipmentStatus::OutForDelivery);
    assert_eq!(
        status_change(newest).eta,
        Some(time("2024-08-05T00:00:00Z"))
    );
    // The scan that was newest before no longer carries the estimate.
    assert_eq!(status_change(&later[earlier.len() - 1]).eta, None);
}

#[test]
fn a_scan_listed_twice_is_one_event() {
    let mut body = in_transit();
    let details = body["result"]["tracking_details"].as_array_mut().unwrap();
    let again = details[3].clone();
    details.push(again);
    assert_eq!(transform(&body).unwrap().len(), 7);
}

#[test]
fn a_status_no_scan_says_comes_as_an_event_named_after_the_delivery() {
    let body = with_status(in_transit(), "delivered", Some("arrived_at_destination"));
    let transformed = transformed(&body);
    assert_eq!(transformed.events.len(), 8);
    let current = transformed.events.last().unwrap();
    assert_eq!(current.source_event_id, "evt_1");
    assert_eq!(
        current.event_id,
        canonical::event_id("easypost", "evt_1", 0)
    );
    // It is not history: a later delivery will not repeat it.
    let history = &transformed.history[0];
    assert_eq!(history.entries.len(), 7);
    assert!(!history.entries.contains(&current.event_id));
    // The estimate goes with the current status, not with a scan.
    assert!(
        transformed.events[..7]
            .iter()
            .all(|event| status_change(event).eta.is_none())
    );
}

#[test]
fn without_scans_the_delivery_is_one_event_and_no_history() {
    let mut body = in_transit();
    body["result"]["tracking_details"] = json!([]);
    let transformed = transformed(&body);
    assert!(transformed.history.is_empty());
    assert_eq!(transformed.events.len(), 1);
    assert_eq!(transformed.events[0].source_event_id, "evt_1");
}

#[test]
fn tracker_created_before_the_tracker_exists_is_accepted_with_no_events() {
    // partners.md §2: `tracker.created` events retrieved through the API may have no `result`.
    for result in [None, Some(Value::Null)] {
        let mut body = json!({
            "id": "evt_created_1",
            "object": "Event",
            "description": "tracker.created",
            "mode": "test",
            "status": "pending",
            "created_at": "2024-08-02T19:00:00Z",
            "updated_at": "2024-08-02T19:00:00Z",
        });
        if let Some(result) = result {
            body["result"] = result;
        }
        let bytes = serde_json::to_vec(&body).unwrap();
        let key = partners::inspect(Format::EasyPost, &bytes).unwrap();
        assert_eq!(key.delivery_id.as_deref(), Some("evt_created_1"));
        assert_eq!(transformed(&body), Transformed::default());
    }
}

#[test]
fn a_scan_after_a_pre_transit_scan_is_the_pickup() {
    let mut body = pre_transit_event();
    body["result"]["status"] = json!("in_transit");
    body["result"]["status_detail"] = json!("arrived_at_facility");
    body["result"]["tracking_details"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "status": "in_transit",
            "status_detail": "arrived_at_facility",
            "datetime": "2025-04-11T09:00:00Z",
            "message": "Arrived",
        }));
    let current = current_event(&body);
    assert_eq!(status_change(&current).status, ShipmentStatus::PickedUp);
}

#[test]
fn wrapped_pre_transit_tracker_becomes_booked() {
    let event = current_event(&pre_transit_event());
    assert!(
        event
            .source_event_id
            .starts_with(&scan_source_prefix("EZ1000000001", "2025-04-10T09:17:17Z")),
        "{}",
        event.source_event_id
    );
    assert_eq!(event.shipment.tracking_number, "EZ1000000001");
    assert_eq!(event.shipment.carrier.as_deref(), Some("USPS"));
    // The newest scan, not the first one listed and not the tracker's own timestamps.
    assert_eq!(event.occurred_at, time("2025-04-10T09:17:17Z"));
    let change = status_change(&event);
    assert_eq!(change.status, ShipmentStatus::Booked);
    assert_eq!(change.status_detail.as_deref(), Some("status_update"));
    assert_eq!(change.raw_status, None);
    assert_eq!(change.message.as_deref(), Some("Shipping Label Created"));
    assert_eq!(
        change.location,
        Some(Location {
            city: Some("HOUSTON".into()),
            state: Some("TX".into()),
            country: None,
            postal_code: Some("77063".into()),
        })
    );
    assert_eq!(change.eta, Some(time("2025-05-09T20:40:17Z")));
}

#[test]
fn delivered_tracker_becomes_delivery_with_proof() {
    let mut body = with_status(in_transit(), "delivered", Some("arrived_at_destination"));
    body["result"]["signed_by"] = json!("John Tester");
    let event = current_event(&body);
    assert_eq!(event.event_type(), "shipment.delivered");
    let EventBody::Delivered(delivery) = &event.body else {
        panic!("expected a delivery, got {:?}", event.body);
    };
    assert_eq!(delivery.status, ShipmentStatus::Delivered);
    assert_eq!(
        delivery.status_detail.as_deref(),
        Some("arrived_at_destination")
    );
    assert_eq!(delivery.pod.signed_by.as_deref(), Some("John Tester"));
    assert_eq!(delivery.pod.delivered_at, event.occurred_at);
    assert_eq!(delivery.pod.delivered_at, time("2024-08-02T18:50:00Z"));
    assert_eq!(delivery.pod.document_url, None);
    assert_eq!(
        delivery.location.as_ref().map(Location::display).as_deref(),
        Some("EDISON, NJ 08817 US")
    );
}

#[test]
fn delivery_without_signature_still_has_proof_time() {
    let body = with_status(in_transit(), "delivered", None);
    let event = current_event(&body);
    let EventBody::Delivered(delivery) = &event.body else {
        panic!("expected a delivery");
    };
    assert_eq!(delivery.pod.signed_by, None);
    assert_eq!(delivery.pod.delivered_at, time("2024-08-02T18:50:00Z"));
}

#[test]
fn return_to_sender_becomes_returned() {
    let body = with_status(pre_transit_event(), "return_to_sender", Some("return"));
    let event = current_event(&body);
    let change = status_change(&event);
    assert_eq!(change.status, ShipmentStatus::Returned);
    assert_eq!(change.status_detail.as_deref(), Some("return"));
    assert_eq!(change.raw_status, None);
}

#[test]
fn unknown_status_word_becomes_exception_keeping_the_word() {
    let body = with_status(in_transit(), "teleported", Some("unknown"));
    let event = current_event(&body);
    let change = status_change(&event);
    assert_eq!(change.status, ShipmentStatus::Exception);
    assert_eq!(change.raw_status.as_deref(), Some("teleported"));
    assert_eq!(change.status_detail.as_deref(), Some("unknown"));
}

/// (status, status_detail, previous_attributes.status, canonical status, raw_status kept)
type StatusRow = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    ShipmentStatus,
    bool,
);

#[test]
fn status_table_maps_every_easypost_status() {
    use ShipmentStatus::*;
    let cases: [StatusRow; 21] = [
        ("pre_transit", Some("label_created"), None, Booked, false),
        (
            "in_transit",
            Some("arrived_at_facility"),
            None,
            InTransit,
            false,
        ),
        ("in_transit", None, Some("in_transit"), InTransit, false),
        (
            "in_transit",
            Some("departed_facility"),
            None,
            InTransit,
            false,
        ),
        (
            "in_transit",
            Some("arrived_at_facility"),
            Some("pre_transit"),
            PickedUp,
            false,
        ),
        (
            "in_transit",
            Some("received_at_origin_facility"),
            None,
            PickedUp,
            false,
        ),
        (
            "in_transit",
            Some("departed_origin_facility"),
            Some("in_transit"),
            PickedUp,
            false,
        ),
        ("in_transit", Some("delayed"), None, Delayed, false),
        (
            "in_transit",
            Some("weather_delay"),
            Some("in_transit"),
            Delayed,
            false,
        ),
        (
            "in_transit",
            Some("weather_delay"),
            Some("pre_transit"),
            PickedUp,
            false,
        ),
        (
            "out_for_delivery",
            Some("out_for_delivery"),
            None,
            OutForDelivery,
            false,
        ),
        (
            "available_for_pickup",
            Some("arrived_at_pickup_location"),
            None,
            OutForDelivery,
            true,
        ),
        (
            "delivered",
            Some("arrived_at_destination"),
            None,
            Delivered,
            false,
        ),
        ("return_to_sender", Some("return"), None, Returned, false),
        ("failure", Some("lost"), None, Exception, true),
        ("cancelled", Some("cancelled"), None, Cancelled, false),
        ("error", None, None, Exception, true),
        ("unknown", Some("unknown"), None, Exception, true),
        ("held_by_customs", None, None, Exception, true),
        ("IN_TRANSIT", None, None, Exception, true),
        // Refinements belong to in_transit only.
        (
            "out_for_delivery",
            Some("delayed"),
            Some("pre_transit"),
            OutForDelivery,
            false,
        ),
    ];
    for (status, detail, previous, expected, keep_raw) in cases {
        assert_eq!(
            map_status(status, detail, previous),
            StatusMapping {
                status: expected,
                keep_raw
            },
            "{status} / {detail:?} / previous {previous:?}"
        );
    }
}

#[test]
fn raw_status_is_set_exactly_when_the_table_says_so() {
    for (word, _, keep_raw) in STATUS_TABLE {
        if word == "delivered" {
            continue; // deliveries carry proof, not a raw status
        }
        let event = current_event(&with_status(in_transit(), word, None));
        let expected = keep_raw.then(|| word.to_owned());
        assert_eq!(status_change(&event).raw_status, expected, "{word}");
    }
}

#[test]
fn without_scans_the_first_move_out_of_pre_transit_is_a_pickup() {
    let mut body = in_transit();
    body["result"]["tracking_details"] = json!([]);
    body["previous_attributes"]["status"] = json!("pre_transit");
    let change_status = status_change(&current_event(&body)).status;
    assert_eq!(change_status, ShipmentStatus::PickedUp);
}

#[test]
fn newest_scan_is_chosen_by_time_not_by_position() {
    let mut body = in_transit();
    let details = body["result"]["tracking_details"].as_array_mut().unwrap();
    details.reverse();
    let events = transform(&body).unwrap();
    assert_eq!(
        events,
        transform(&in_transit()).unwrap(),
        "events come by time"
    );
    let event = current_event(&body);
    assert_eq!(event.occurred_at, time("2024-08-02T18:50:00Z"));
    assert_eq!(
        status_change(&event).message.as_deref(),
        Some("Arrived at FedEx location")
    );
}

#[test]
fn scans_without_a_time_are_skipped() {
    let mut body = in_transit();
    body["result"]["tracking_details"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "message": "Undated",
            "datetime": null,
            "tracking_location": {"city": "NOWHERE"},
        }));
    let event = current_event(&body);
    assert_eq!(event.occurred_at, time("2024-08-02T18:50:00Z"));
    assert_eq!(
        status_change(&event).message.as_deref(),
        Some("Arrived at FedEx location")
    );
}

#[test]
fn occurred_at_falls_back_from_scans_to_tracker_to_event_times() {
    let without_scans = || {
        let mut body = in_transit();
        body["result"]["tracking_details"] = json!([]);
        body
    };
    let tracker_time = current_event(&without_scans()).occurred_at;
    assert_eq!(tracker_time, time("2024-08-02T19:26:51Z"));

    let mut body = without_scans();
    body["result"]["updated_at"] = Value::Null;
    body["updated_at"] = json!("2024-08-02T19:26:52.000Z");
    body["created_at"] = json!("2024-08-02T19:00:00Z");
    assert_eq!(
        current_event(&body).occurred_at,
        time("2024-08-02T19:26:52Z")
    );

    body.as_object_mut().unwrap().remove("updated_at");
    assert_eq!(
        current_event(&body).occurred_at,
        time("2024-08-02T19:00:00Z")
    );

    body.as_object_mut().unwrap().remove("created_at");
    let reason = malformed_reason(transform(&body).unwrap_err());
    assert!(reason.contains("no time"), "{reason}");
}

#[test]
fn event_without_scans_has_no_location_or_message() {
    let mut body = in_transit();
    body["result"]
        .as_object_mut()
        .unwrap()
        .remove("tracking_details");
    let event = current_event(&body);
    let change = status_change(&event);
    assert_eq!(change.location, None);
    assert_eq!(change.message, None);
}

#[test]
fn blank_location_parts_are_absent_and_an_all_blank_location_is_none() {
    let mut body = in_transit();
    let details = body["result"]["tracking_details"].as_array_mut().unwrap();
    let last = details.last_mut().unwrap();
    last["tracking_location"] = json!({"city": " ", "state": "", "country": null, "zip": null});
    assert_eq!(status_change(&current_event(&body)).location, None);
}

#[test]
fn malformed_bodies_are_refused_naming_the_field() {
    let edits: Vec<(&str, Edit)> = vec![
        (
            "id",
            Box::new(|b| drop(b.as_object_mut().unwrap().remove("id"))),
        ),
        ("id", Box::new(|b| b["id"] = json!(17))),
        ("id", Box::new(|b| b["id"] = json!(""))),
        (
            "description",
            Box::new(|b| b["description"] = json!(["tracker.updated"])),
        ),
        (
            "description",
            Box::new(|b| drop(b.as_object_mut().unwrap().remove("description"))),
        ),
        ("result", Box::new(|b| b["result"] = json!("trk_1"))),
        (
            "result.tracking_code",
            Box::new(|b| b["result"]["tracking_code"] = Value::Null),
        ),
        (
            "result.tracking_code",
            Box::new(|b| b["result"]["tracking_code"] = json!(1)),
        ),
        (
            "result.status",
            Box::new(|b| drop(b["result"].as_object_mut().unwrap().remove("status"))),
        ),
        (
            "result.status",
            Box::new(|b| b["result"]["status"] = json!({"s": 1})),
        ),
        (
            "result.status_detail",
            Box::new(|b| b["result"]["status_detail"] = json!(3)),
        ),
        (
            "result.carrier",
            Box::new(|b| b["result"]["carrier"] = json!(true)),
        ),
        (
            "result.tracking_details",
            Box::new(|b| b["result"]["tracking_details"] = json!({})),
        ),
        (
            "result.tracking_details[6]",
            Box::new(|b| b["result"]["tracking_details"][6] = json!("scan")),
        ),
        (
            "result.tracking_details[2].datetime",
            Box::new(|b| b["result"]["tracking_details"][2]["datetime"] = json!("yesterday")),
        ),
        (
            "result.tracking_details[0].tracking_location",
            Box::new(|b| b["result"]["tracking_details"][0]["tracking_location"] = json!([])),
        ),
        (
            "result.tracking_details[1].tracking_location.zip",
            Box::new(|b| {
                b["result"]["tracking_details"][1]["tracking_location"]["zip"] = json!(32809)
            }),
        ),
        (
            "previous_attributes",
            Box::new(|b| b["previous_attributes"] = json!("in_transit")),
        ),
        (
            "updated_at",
            Box::new(|b| b["updated_at"] = json!(1722626812)),
        ),
    ];
    for (field, edit) in edits {
        let mut body = in_transit();
        edit(&mut body);
        let bytes = serde_json::to_vec(&body).unwrap();
        let from_inspect = partners::inspect(Format::EasyPost, &bytes).unwrap_err();
        let from_transform = transform(&body).unwrap_err();
        assert_eq!(from_inspect, from_transform, "ingress and transform agree");
        assert_eq!(from_transform.code(), "malformed_payload");
        let reason = malformed_reason(from_transform);
        assert!(reason.contains(&format!("`{field}`")), "{field}: {reason}");
    }
}

#[test]
fn bodies_that_are_not_json_objects_are_malformed() {
    for body in [
        &b""[..],
        b"not json",
        b"{\"id\":",
        b"[]",
        b"\"evt_1\"",
        b"null",
        b"\xff\xfe{}",
    ] {
        let error = partners::inspect(Format::EasyPost, body).unwrap_err();
        assert_eq!(error.code(), "malformed_payload", "{body:?}");
        let error =
            partners::to_canonical(Format::EasyPost, &webhook_for("easypost", body)).unwrap_err();
        assert_eq!(error.code(), "malformed_payload", "{body:?}");
    }
}

#[test]
fn non_tracker_events_are_accepted_at_ingress_but_not_transformed() {
    let body = json!({
        "id": "evt_batch_1",
        "object": "Event",
        "description": "batch.updated",
        "result": {"object": "Batch"},
    });
    let bytes = serde_json::to_vec(&body).unwrap();
    let key = partners::inspect(Format::EasyPost, &bytes).unwrap();
    assert_eq!(key.delivery_id.as_deref(), Some("evt_batch_1"));
    let error = transform(&body).unwrap_err();
    assert_eq!(error.code(), "unsupported_event");
    assert_eq!(
        error,
        PartnerError::Unsupported {
            format: FORMAT,
            what: "event `batch.updated`".into()
        }
    );
}

#[test]
fn inspect_reads_the_event_id_and_hashes_the_stable_part() {
    let key = partners::inspect(Format::EasyPost, IN_TRANSIT.as_bytes()).unwrap();
    assert_eq!(key.delivery_id.as_deref(), Some("evt_1"));
    let hash = key.payload_hash.unwrap();
    assert!(
        hash.starts_with("sha256:") && hash.len() == 7 + 64,
        "{hash}"
    );

    let body = in_transit();
    let expected = crate::idempotency::sha256_tag(
        &serde_json::to_vec(&json!({"description": body["description"], "result": body["result"]}))
            .unwrap(),
    );
    assert_eq!(hash, expected);
}

#[test]
fn retries_of_one_event_hash_alike() {
    let first = partners::inspect(Format::EasyPost, IN_TRANSIT.as_bytes()).unwrap();
    let mut retry = in_transit();
    retry["pending_urls"] = json!([]);
    retry["completed_urls"] = json!(["https://example.com/easypost"]);
    retry["updated_at"] = json!("2024-08-02T19:31:52.000Z");
    retry["status"] = json!("completed");
    // Pretty-printed, keys in another order: same content.
    let retried = partners::inspect(
        Format::EasyPost,
        serde_json::to_string_pretty(&retry).unwrap().as_bytes(),
    )
    .unwrap();
    assert_eq!(retried, first);
}

#[test]
fn same_event_id_with_other_content_hashes_differently() {
    let first = partners::inspect(Format::EasyPost, IN_TRANSIT.as_bytes()).unwrap();
    let changed = with_status(in_transit(), "delivered", None);
    let second =
        partners::inspect(Format::EasyPost, &serde_json::to_vec(&changed).unwrap()).unwrap();
    assert_eq!(second.delivery_id, first.delivery_id);
    assert_ne!(second.payload_hash, first.payload_hash);

    let mut renamed = in_transit();
    renamed["description"] = json!("tracker.created");
    let third =
        partners::inspect(Format::EasyPost, &serde_json::to_vec(&renamed).unwrap()).unwrap();
    assert_ne!(third.payload_hash, first.payload_hash);
}

#[test]
fn transforming_twice_gives_identical_events() {
    let webhook = webhook_for("easypost", IN_TRANSIT.as_bytes());
    let first = partners::to_canonical(Format::EasyPost, &webhook).unwrap();
    let second = partners::to_canonical(Format::EasyPost, &webhook).unwrap();
    assert_eq!(first, second);
    assert_eq!(
        serde_json::to_string(&first).unwrap(),
        serde_json::to_string(&second).unwrap()
    );
}

#[test]
fn event_id_depends_on_partner_and_event_not_on_delivery_time() {
    let mut later = webhook_for("easypost", IN_TRANSIT.as_bytes());
    later.received_at = time("2024-08-03T00:00:00Z");
    let a = partners::to_canonical(
        Format::EasyPost,
        &webhook_for("easypost", IN_TRANSIT.as_bytes()),
    )
    .unwrap();
    let b = partners::to_canonical(Format::EasyPost, &later).unwrap();
    assert_eq!(a[0].event_id, b[0].event_id);

    let other_account = webhook_for("easypost-eu", IN_TRANSIT.as_bytes());
    let c = partners::to_canonical(Format::EasyPost, &other_account).unwrap();
    assert_eq!(c[0].partner, "easypost-eu");
    assert_ne!(c[0].event_id, a[0].event_id);
    assert_eq!(
        c[0].event_id,
        canonical::event_id("easypost-eu", &a[0].source_event_id, 0)
    );
}

#[test]
fn base64_bodies_are_decoded_before_reading() {
    use base64::Engine as _;
    let mut webhook = webhook_for("easypost", IN_TRANSIT.as_bytes());
    webhook.body =
        WebhookBody::Base64(base64::engine::general_purpose::STANDARD.encode(IN_TRANSIT));
    let events = partners::to_canonical(Format::EasyPost, &webhook).unwrap();
    assert_eq!(events[0].shipment.tracking_number, "1");
}

fn demo_samples() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events/partners");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.starts_with("easypost-") && name.ends_with(".json"))
        })
        .collect();
    files.sort();
    files
}

#[test]
fn every_easypost_demo_sample_transforms() {
    let samples = demo_samples();
    assert!(samples.len() >= 2, "found {samples:?}");
    for path in samples {
        let body = std::fs::read(&path).unwrap();
        let key = partners::inspect(Format::EasyPost, &body)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let events = partners::to_canonical(Format::EasyPost, &webhook_for("easypost", &body))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!events.is_empty(), "{}", path.display());
        let delivery_id = key.delivery_id.unwrap();
        assert!(
            events
                .iter()
                .all(|event| event.correlation_id == delivery_id),
            "{}",
            path.display()
        );
    }
}

#[test]
fn demo_in_transit_sample_is_the_fixture_byte_for_byte() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events/partners/easypost-tracker-updated-in-transit.json");
    assert_eq!(std::fs::read(path).unwrap(), IN_TRANSIT.as_bytes());
}

#[test]
fn demo_delivered_sample_is_a_signed_delivery() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../events/partners/easypost-tracker-delivered.json");
    let body = std::fs::read(path).unwrap();
    let events = partners::to_canonical(Format::EasyPost, &webhook_for("easypost", &body)).unwrap();
    let event = events.last().unwrap();
    assert_eq!(event.shipment.tracking_number, "EZ4000000004");
    assert_eq!(event.shipment.carrier.as_deref(), Some("UPS"));
    assert!(event.correlation_id.starts_with("evt_"));
    assert_ne!(event.correlation_id, "evt_1");
    let EventBody::Delivered(delivery) = &event.body else {
        panic!("expected a delivery, got {:?}", event.body);
    };
    assert_eq!(delivery.pod.signed_by.as_deref(), Some("John Tester"));
    assert_eq!(delivery.pod.delivered_at, time("2024-08-06T16:12:08Z"));
}

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    const WORDS: &[&str] = &[
        "tracker.updated",
        "tracker.created",
        "in_transit",
        "delivered",
        "pre_transit",
        "2024-08-02T18:50:00Z",
        "evt_1",
    ];
    const KEYS: &[&str] = &[
        "id",
        "description",
        "result",
        "status",
        "status_detail",
        "tracking_code",
        "tracking_details",
        "datetime",
        "tracking_location",
        "previous_attributes",
        "updated_at",
        "zip",
        "x",
    ];
    crate::partners::arbitrary_json::json_with(WORDS, KEYS)
}

fn never_panics(body: &[u8]) {
    let _ = partners::inspect(Format::EasyPost, body);
    let _ = partners::to_canonical(Format::EasyPost, &webhook_for("easypost", body));
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
    fn arbitrary_trackers_never_panic_and_agree_with_ingress(
        result in any_json(),
        previous in any_json(),
    ) {
        let mut body = in_transit();
        body["result"] = result;
        body["previous_attributes"] = previous;
        let bytes = serde_json::to_vec(&body).unwrap();
        let inspected = partners::inspect(Format::EasyPost, &bytes);
        let webhook = webhook_for("easypost", &bytes);
        let transformed = partners::to_canonical(Format::EasyPost, &webhook);
        // What ingress accepts, the transform turns into events (at least the current status,
        // unless the tracker is absent), and vice versa.
        prop_assert_eq!(inspected.is_ok(), transformed.is_ok());
        if let Ok(events) = transformed {
            let tracker_absent = body["result"].is_null();
            prop_assert_eq!(events.is_empty(), tracker_absent);
        }
    }

    #[test]
    fn arbitrary_fields_in_a_real_tracker_never_panic(
        key in prop::sample::select(vec![
            "status",
            "status_detail",
            "tracking_code",
            "carrier",
            "signed_by",
            "est_delivery_date",
            "updated_at",
            "tracking_details",
        ]),
        value in any_json(),
    ) {
        let mut body = in_transit();
        body["result"][key] = value;
        never_panics(&serde_json::to_vec(&body).unwrap());
    }
}

/// An estimate that cannot be read is dropped; the milestone is not.
#[test]
fn an_unreadable_estimate_costs_nothing() {
    let mut body = in_transit();
    body["result"]["est_delivery_date"] = json!("2024-08-05T18:00:00");
    assert_eq!(
        status_change(&current_event(&body)).eta,
        Some("2024-08-05T18:00:00Z".parse().unwrap()),
        "no zone: UTC"
    );
    for unreadable in [json!("next week"), json!(17), json!([])] {
        body["result"]["est_delivery_date"] = unreadable.clone();
        let bytes = serde_json::to_vec(&body).unwrap();
        assert!(
            partners::inspect(Format::EasyPost, &bytes).is_ok(),
            "{unreadable}"
        );
        assert_eq!(
            status_change(&current_event(&body)).eta,
            None,
            "{unreadable}"
        );
    }
}

/// A key twice in one object is refused wherever it is, whether the adapter reads it or not:
/// the signature covers both values, and two readers could each see another payload.
#[test]
fn a_key_twice_is_refused_wherever_it_is_naming_only_the_key() {
    let secret = "SECRET-VALUE";
    let bodies = [
        // Fields the adapter reads, at each depth.
        IN_TRANSIT.replacen(
            "\"id\":\"evt_1\"",
            &format!("\"id\":\"evt_1\", \"id\": \"{secret}\""),
            1,
        ),
        IN_TRANSIT.replacen(
            "\"tracking_code\":\"1\"",
            &format!("\"tracking_code\":\"1\",\"tracking_code\": \"{secret}\""),
            1,
        ),
        IN_TRANSIT.replacen(
            "\"zip\":\"08817\"",
            &format!("\"zip\":\"08817\",\"zip\": \"{secret}\""),
            1,
        ),
        // An escaped spelling is the same key.
        IN_TRANSIT.replacen(
            "\"id\":\"evt_1\"",
            &format!("\"id\":\"evt_1\", \"i\\u0064\": \"{secret}\""),
            1,
        ),
        // Fields it does not read, in objects it reads and in objects it does not.
        IN_TRANSIT.replacen(
            "\"mode\":\"production\"",
            &format!("\"mode\":\"production\",\"mode\": \"{secret}\""),
            1,
        ),
        IN_TRANSIT.replacen(
            "\"tracking_details\":[",
            &format!(
                "\"fees\": [{{\"amount\": 1, \"amount\": \"{secret}\"}}], \"tracking_details\":["
            ),
            1,
        ),
    ];
    for body in bodies {
        assert_ne!(body, IN_TRANSIT, "the edit applies");
        for need in [Need::DeliveryId, Need::DeliveryIdAndHash] {
            let error = Adapter::new(Format::EasyPost)
                .inspect_for(body.as_bytes(), need)
                .unwrap_err();
            let from_transform =
                partners::to_canonical(Format::EasyPost, &webhook_for("easypost", body.as_bytes()))
                    .unwrap_err();
            assert_eq!(error, from_transform, "ingress and transform agree");
            let reason = malformed_reason(error);
            assert!(reason.contains("duplicate key `"), "{reason}");
            assert!(!reason.contains(secret), "{reason}");
            // What the strict parser says of the body, word for word.
            let strict = crate::partners::strict_json::parse(body.as_bytes()).unwrap_err();
            assert_eq!(reason, format!("body is not JSON ({strict})"));
        }
    }
}

/// JSON text whose objects may name a key twice, as a hostile partner could send it.
fn any_json_text() -> impl Strategy<Value = String> {
    const KEYS: &[&str] = &[
        "id",
        "description",
        "result",
        "status",
        "tracking_code",
        "tracking_details",
        "datetime",
        "tracking_location",
        "previous_attributes",
        "updated_at",
        "zip",
        "x",
        "i\\u0064",
    ];
    let leaf = prop_oneof![
        Just("null".to_owned()),
        Just("\"tracker.updated\"".to_owned()),
        Just("\"2024-08-02T18:50:00Z\"".to_owned()),
        Just("\"\\ud800\"".to_owned()),
        Just("1e400".to_owned()),
        Just("-0.5".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        ".{0,8}".prop_map(|text| serde_json::to_string(&text).unwrap()),
        // Anything at all, for the parser's refusals.
        "[\\[\\]{}\",:a-z0-9 ]{0,6}",
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5)
                .prop_map(|items| format!("[{}]", items.join(","))),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|fields| {
                let fields: Vec<String> = fields
                    .into_iter()
                    .map(|(key, value)| format!("\"{key}\": {value}"))
                    .collect();
                format!("{{{}}}", fields.join(", "))
            }),
        ]
    })
}

proptest! {
    /// The typed reader refuses exactly the bodies the strict parser refuses, with its words,
    /// and hashes what it accepts as a hash of the parsed values does.
    #[test]
    fn the_body_is_refused_as_the_strict_parser_refuses_it(text in any_json_text()) {
        let body = text.as_bytes();
        let read = parse_body(body).map(|_| ());
        let expected = match crate::partners::strict_json::parse(body) {
            Err(e) => Err(malformed(format!("body is not JSON ({e})"))),
            Ok(Value::Object(_)) => Ok(()),
            Ok(_) => Err(malformed("body is not a JSON object")),
        };
        prop_assert_eq!(&read, &expected);
        if let Ok(key) = partners::inspect(Format::EasyPost, body) {
            let value = crate::partners::strict_json::parse(body).unwrap();
            let stable = json!({"description": value["description"], "result": value["result"]});
            let hash = crate::idempotency::sha256_tag(&serde_json::to_vec(&stable).unwrap());
            prop_assert_eq!(key.payload_hash, Some(hash));
        }
    }
}

/// Values the adapter does not read are still checked as the strict parser checks them: text
/// that is not UTF-8, an escape that is no character, a number beyond f64.
#[test]
fn values_the_adapter_does_not_read_are_checked_all_the_same() {
    let mut not_utf8 = IN_TRANSIT.as_bytes().to_vec();
    let at = IN_TRANSIT.find("track.easypost.com").unwrap();
    not_utf8[at] = 0xff;
    let bodies = [
        not_utf8,
        IN_TRANSIT
            .replacen("\"weight\":614.4", "\"weight\":1e400", 1)
            .into_bytes(),
        IN_TRANSIT
            .replacen("\"source\":\"FedEx\"", "\"source\":\"\\ud800\"", 1)
            .into_bytes(),
    ];
    for body in bodies {
        assert_ne!(body, IN_TRANSIT.as_bytes(), "the edit applies");
        let strict = crate::partners::strict_json::parse(&body).unwrap_err();
        for need in [Need::DeliveryId, Need::DeliveryIdAndHash] {
            let error = Adapter::new(Format::EasyPost)
                .inspect_for(&body, need)
                .unwrap_err();
            assert_eq!(
                malformed_reason(error),
                format!("body is not JSON ({strict})")
            );
        }
        let error =
            partners::to_canonical(Format::EasyPost, &webhook_for("easypost", &body)).unwrap_err();
        assert_eq!(
            malformed_reason(error),
            format!("body is not JSON ({strict})")
        );
    }
}
