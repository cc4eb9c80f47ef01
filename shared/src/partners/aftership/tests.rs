use std::path::PathBuf;

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;
use crate::failure::Classify;
use crate::partners::{self, Format};
use crate::webhook::{WebhookBody, ingress_id};

/// AfterShip's "Webhook Specifications" sample (2026-07), as trimmed in hookdeck/webhook-skills.
const IN_TRANSIT: &str = include_str!(
    "../../../tests/fixtures/partners/aftership-tracking-update-in-transit-docs-trimmed.json"
);
const FIXTURE_EVENT_ID: &str = "94dadd60-ed26-46d0-aa52-3ced925a50ff";

fn time(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn webhook_for(partner: &str, body: &[u8]) -> ReceivedWebhook {
    ReceivedWebhook {
        ingress_id: ingress_id(partner, FIXTURE_EVENT_ID),
        partner: partner.into(),
        format: FORMAT.into(),
        delivery_id: FIXTURE_EVENT_ID.into(),
        received_at: time("2024-04-10T09:35:00Z"),
        content_type: Some("application/json".into()),
        body: WebhookBody::from_bytes(body),
    }
}

fn transform(body: &Value) -> Result<Vec<CanonicalEvent>, PartnerError> {
    let bytes = serde_json::to_vec(body).unwrap();
    partners::to_canonical(Format::AfterShip, &webhook_for("aftership", &bytes))
}

/// The event for the tracking's current tag: the last one, whether the latest checkpoint's
/// event stands for it or it comes as an event of its own.
fn current_event(body: &Value) -> CanonicalEvent {
    let mut events = transform(body).unwrap();
    events
        .pop()
        .expect("a tracking update has at least one canonical event")
}

fn transformed(body: &Value) -> Transformed {
    let bytes = serde_json::to_vec(body).unwrap();
    partners::Adapter::new(Format::AfterShip)
        .transform(&webhook_for("aftership", &bytes))
        .unwrap()
}

fn status_change(event: &CanonicalEvent) -> &StatusChange {
    match &event.body {
        EventBody::StatusChanged(change) => change,
        other => panic!("expected shipment.status_changed, got {other:?}"),
    }
}

fn in_transit() -> Value {
    serde_json::from_str(IN_TRANSIT).unwrap()
}

fn with_tag(tag: &str, subtag: Option<&str>, return_to_sender: bool) -> Value {
    let mut body = in_transit();
    body["msg"]["tag"] = json!(tag);
    body["msg"]["subtag"] = json!(subtag);
    body["msg"]["return_to_sender"] = json!(return_to_sender);
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
fn in_transit_fixture_becomes_one_event_for_its_one_checkpoint() {
    let events = transform(&in_transit()).unwrap();
    assert_eq!(events.len(), 1, "the checkpoint says the tracking's tag");
    let event = &events[0];
    // The checkpoint carries no AfterShip `hash`: it is named by its time and a digest.
    assert!(
        event
            .source_event_id
            .starts_with("0000000000000000#2021-01-14T00:52:00Z#"),
        "{}",
        event.source_event_id
    );
    let expected = CanonicalEvent {
        schema: canonical::SCHEMA.into(),
        event_id: canonical::event_id("aftership", &event.source_event_id, 0),
        partner: "aftership".into(),
        source_event_id: event.source_event_id.clone(),
        correlation_id: FIXTURE_EVENT_ID.into(),
        // The checkpoint's local time has no zone: read as UTC.
        occurred_at: time("2021-01-14T00:52:00Z"),
        received_at: time("2024-04-10T09:35:00Z"),
        shipment: ShipmentRef {
            tracking_number: "0000000000000000".into(),
            carrier: Some("usps".into()),
            reference: None,
        },
        body: EventBody::StatusChanged(StatusChange {
            status: ShipmentStatus::InTransit,
            status_detail: Some("InTransit_001".into()),
            raw_status: None,
            location: None,
            message: Some("Departed Shipping Partner Facility, USPS Awaiting Item".into()),
            eta: None,
        }),
    };
    assert_eq!(event, &expected);
}

#[test]
fn checkpoints_are_history_named_by_aftership_hash_when_given() {
    let transformed = transformed(&in_transit());
    assert_eq!(transformed.history.len(), 1);
    let history = transformed.history[0].clone();
    assert_eq!(history.scope, "aftership#0000000000000000");
    assert_eq!(history.entries, vec![transformed.events[0].event_id]);

    let mut body = in_transit();
    body["msg"]["checkpoints"][0]["hash"] = json!("q9Fh2Kd8");
    let event = current_event(&body);
    assert_eq!(event.source_event_id, "0000000000000000#q9Fh2Kd8");
    // The hash names the checkpoint whatever AfterShip rewrites in it.
    body["msg"]["checkpoints"][0]["message"] = json!("Departed facility");
    assert_eq!(current_event(&body).event_id, event.event_id);
}

#[test]
fn a_later_delivery_repeats_the_checkpoints_with_the_same_ids() {
    let earlier = transform(&in_transit()).unwrap();
    let mut body = in_transit();
    body["event_id"] = json!("5b1e0c4a-0000-4000-8000-000000000002");
    body["msg"]["tag"] = json!("OutForDelivery");
    body["msg"]["subtag"] = json!("OutForDelivery_001");
    body["msg"]["expected_delivery"] = json!("2021-01-15T18:00:00");
    body["msg"]["checkpoints"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "checkpoint_time": "2021-01-15T07:40:00",
            "tag": "OutForDelivery",
            "subtag": "OutForDelivery_001",
            "message": "Out for Delivery",
            "city": "BRONX",
        }));
    let later = transform(&body).unwrap();
    assert_eq!(later.len(), 2);
    assert_eq!(later[0].event_id, earlier[0].event_id);
    assert_eq!(
        later[0].correlation_id,
        "5b1e0c4a-0000-4000-8000-000000000002"
    );
    assert_eq!(status_change(&later[0]).eta, None);
    let newest = status_change(&later[1]);
    assert_eq!(newest.status, ShipmentStatus::OutForDelivery);
    assert_eq!(newest.eta, Some(time("2021-01-15T18:00:00Z")));
}

#[test]
fn a_tag_no_checkpoint_says_comes_as_an_event_named_after_the_delivery() {
    let transformed = transformed(&with_tag("Exception", Some("Exception_003"), false));
    assert_eq!(transformed.events.len(), 2);
    let current = &transformed.events[1];
    assert_eq!(current.source_event_id, FIXTURE_EVENT_ID);
    assert_eq!(
        current.event_id,
        canonical::event_id("aftership", FIXTURE_EVENT_ID, 0)
    );
    let history = &transformed.history[0];
    assert_eq!(history.entries, vec![transformed.events[0].event_id]);
}

#[test]
fn checkpoints_after_the_return_starts_belong_to_the_return_leg() {
    let mut body = with_tag("Delivered", Some("Delivered_001"), true);
    let checkpoints = body["msg"]["checkpoints"].as_array_mut().unwrap();
    checkpoints.push(json!({
        "checkpoint_time": "2021-01-16T09:00:00",
        "tag": "Exception",
        "subtag": "Exception_010",
        "message": "Returning to sender",
    }));
    checkpoints.push(json!({
        "checkpoint_time": "2021-01-19T11:00:00",
        "tag": "Delivered",
        "subtag": "Delivered_001",
        "message": "Delivered to sender",
    }));
    let events = transform(&body).unwrap();
    let statuses: Vec<_> = events.iter().map(|e| status_change(e).status).collect();
    assert_eq!(
        statuses,
        [
            ShipmentStatus::InTransit,
            ShipmentStatus::Returned,
            ShipmentStatus::Returned
        ]
    );
    assert_eq!(
        status_change(&events[2]).raw_status.as_deref(),
        Some("Delivered_001")
    );
}

#[test]
fn checkpoints_without_a_time_are_skipped() {
    let mut body = in_transit();
    body["msg"]["checkpoints"].as_array_mut().unwrap().insert(
        0,
        json!({"tag": "InfoReceived", "message": "Label created"}),
    );
    let transformed = transformed(&body);
    assert_eq!(transformed.events.len(), 1);
    assert_eq!(transformed.history[0].entries.len(), 1);
}

#[test]
fn inspect_takes_the_event_id_and_hashes_what_the_event_says() {
    let key = partners::inspect(Format::AfterShip, IN_TRANSIT.as_bytes()).unwrap();
    assert_eq!(key.delivery_id.as_deref(), Some(FIXTURE_EVENT_ID));
    let expected = crate::idempotency::sha256_tag(
        &serde_json::to_vec(&json!({
            "event": "tracking_update",
            "slug": "usps",
            "subtag": "InTransit_001",
            "tag": "InTransit",
            "tracking_number": "0000000000000000",
        }))
        .unwrap(),
    );
    assert_eq!(key.payload_hash, Some(expected));
}

#[test]
fn a_retry_that_re_renders_the_tracking_is_the_same_delivery() {
    let first = partners::inspect(Format::AfterShip, IN_TRANSIT.as_bytes()).unwrap();
    let mut retry = in_transit();
    retry["ts"] = json!(1712741999);
    retry["msg"]["updated_at"] = json!("2024-04-10T09:40:00+00:00");
    retry["msg"]["checkpoints"]
        .as_array_mut()
        .unwrap()
        .push(json!({"checkpoint_time": "2021-01-15T08:00:00", "tag": "InTransit"}));
    let second = partners::inspect(
        Format::AfterShip,
        &serde_json::to_vec_pretty(&retry).unwrap(),
    )
    .unwrap();
    assert_eq!(second, first);

    let changed = with_tag("Delivered", Some("Delivered_001"), false);
    let third =
        partners::inspect(Format::AfterShip, &serde_json::to_vec(&changed).unwrap()).unwrap();
    assert_eq!(third.delivery_id, first.delivery_id);
    assert_ne!(third.payload_hash, first.payload_hash);
}

/// (tag, subtag, return_to_sender, canonical status, status_detail, raw_status)
type Row = (
    &'static str,
    Option<&'static str>,
    bool,
    ShipmentStatus,
    Option<&'static str>,
    Option<&'static str>,
);

/// Every row of the table, written out independently of it, plus the return-to-sender rule and
/// words the table does not know.
fn expected_mappings() -> Vec<Row> {
    use ShipmentStatus::*;
    let p = Some;
    vec![
        (
            "Pending",
            p("Pending_001"),
            false,
            Booked,
            p("Pending_001"),
            p("Pending_001"),
        ),
        ("Pending", None, false, Booked, None, p("Pending")),
        (
            "InfoReceived",
            p("InfoReceived_001"),
            false,
            Booked,
            p("InfoReceived_001"),
            None,
        ),
        (
            "InTransit",
            p("InTransit_001"),
            false,
            InTransit,
            p("InTransit_001"),
            None,
        ),
        (
            "InTransit",
            p("InTransit_002"),
            false,
            PickedUp,
            p("InTransit_002"),
            None,
        ),
        (
            "InTransit",
            p("InTransit_003"),
            false,
            InTransit,
            p("InTransit_003"),
            None,
        ),
        (
            "InTransit",
            p("InTransit_007"),
            false,
            InTransit,
            p("InTransit_007"),
            None,
        ),
        ("InTransit", None, false, InTransit, None, None),
        (
            "OutForDelivery",
            p("OutForDelivery_001"),
            false,
            OutForDelivery,
            p("OutForDelivery_001"),
            None,
        ),
        (
            "AvailableForPickup",
            p("AvailableForPickup_001"),
            false,
            OutForDelivery,
            p("ready_for_pickup"),
            p("AvailableForPickup_001"),
        ),
        (
            "AttemptFail",
            p("AttemptFail_001"),
            false,
            Exception,
            p("attempt_failed"),
            p("AttemptFail_001"),
        ),
        (
            "AttemptFail",
            None,
            false,
            Exception,
            p("attempt_failed"),
            p("AttemptFail"),
        ),
        (
            "Delivered",
            p("Delivered_001"),
            false,
            Delivered,
            p("Delivered_001"),
            None,
        ),
        (
            "Delivered",
            p("Delivered_003"),
            false,
            Delivered,
            p("Delivered_003"),
            None,
        ),
        (
            "Exception",
            p("Exception_002"),
            false,
            Exception,
            p("Exception_002"),
            p("Exception_002"),
        ),
        (
            "Exception",
            p("Exception_003"),
            false,
            Exception,
            p("Exception_003"),
            p("Exception_003"),
        ),
        (
            "Exception",
            p("Exception_004"),
            false,
            Delayed,
            p("Exception_004"),
            p("Exception_004"),
        ),
        (
            "Exception",
            p("Exception_005"),
            false,
            Delayed,
            p("Exception_005"),
            p("Exception_005"),
        ),
        (
            "Exception",
            p("Exception_010"),
            false,
            Returned,
            p("Exception_010"),
            None,
        ),
        (
            "Exception",
            p("Exception_011"),
            false,
            Returned,
            p("Exception_011"),
            None,
        ),
        (
            "Exception",
            p("Exception_013"),
            false,
            Exception,
            p("Exception_013"),
            p("Exception_013"),
        ),
        ("Exception", None, false, Exception, None, p("Exception")),
        (
            "Exception",
            p("Exception_001"),
            true,
            Returned,
            p("Exception_001"),
            p("Exception_001"),
        ),
        (
            "Exception",
            p("Exception_011"),
            true,
            Returned,
            p("Exception_011"),
            None,
        ),
        (
            "Expired",
            p("Expired_001"),
            false,
            Exception,
            p("Expired_001"),
            p("Expired_001"),
        ),
        // Once the return started, later scans are the return leg's.
        (
            "InTransit",
            p("InTransit_001"),
            true,
            Returned,
            p("InTransit_001"),
            p("InTransit_001"),
        ),
        (
            "Delivered",
            p("Delivered_001"),
            true,
            Returned,
            p("Delivered_001"),
            p("Delivered_001"),
        ),
        // A subtag row only matches its own tag.
        (
            "InTransit",
            p("Exception_010"),
            false,
            InTransit,
            p("Exception_010"),
            None,
        ),
        // Words the table does not know.
        ("Teleported", None, false, Exception, None, p("Teleported")),
        (
            "intransit",
            p("InTransit_001"),
            false,
            Exception,
            p("InTransit_001"),
            p("InTransit_001"),
        ),
    ]
}

#[test]
fn status_table_maps_every_aftership_tag() {
    let rows = expected_mappings();
    for (tag, subtag, return_to_sender, status, ..) in &rows {
        assert_eq!(
            map_status(tag, *subtag, *return_to_sender).status,
            *status,
            "{tag} / {subtag:?} / return {return_to_sender}"
        );
    }
    // Every table row is among the cases above.
    for (tag, only, ..) in STATUS_TABLE {
        assert!(
            rows.iter()
                .any(|r| r.0 == tag && (only.is_none() || r.1 == only) && !r.2),
            "{tag} / {only:?}"
        );
    }
}

#[test]
fn every_mapping_reaches_the_canonical_event_with_its_detail_and_raw_word() {
    for (tag, subtag, return_to_sender, status, detail, raw) in expected_mappings() {
        let event = current_event(&with_tag(tag, subtag, return_to_sender));
        let case = format!("{tag} / {subtag:?} / return {return_to_sender}");
        match &event.body {
            EventBody::Delivered(delivery) => {
                assert_eq!(status, ShipmentStatus::Delivered, "{case}");
                assert_eq!(delivery.status_detail.as_deref(), detail, "{case}");
                assert_eq!(raw, None, "{case}");
            }
            EventBody::StatusChanged(change) => {
                assert_eq!(change.status, status, "{case}");
                assert_eq!(change.status_detail.as_deref(), detail, "{case}");
                assert_eq!(change.raw_status.as_deref(), raw, "{case}");
            }
            other => panic!("{case}: unexpected {other:?}"),
        }
    }
}

#[test]
fn delivered_tracking_carries_the_signer_as_proof() {
    let mut body = with_tag("Delivered", Some("Delivered_003"), false);
    body["msg"]["signed_by"] = json!("J. DOE");
    let event = current_event(&body);
    let EventBody::Delivered(delivery) = &event.body else {
        panic!("expected a delivery, got {:?}", event.body);
    };
    assert_eq!(delivery.pod.signed_by.as_deref(), Some("J. DOE"));
    assert_eq!(delivery.pod.delivered_at, time("2021-01-14T00:52:00Z"));
    assert_eq!(delivery.pod.delivered_at, event.occurred_at);
    body["msg"]["signed_by"] = json!("");
    let event = current_event(&body);
    let EventBody::Delivered(delivery) = &event.body else {
        panic!("expected a delivery");
    };
    assert_eq!(delivery.pod.signed_by, None);
}

#[test]
fn aftership_times_are_read_with_or_without_a_zone() {
    let cases = [
        ("2021-01-14T00:52:00", Some("2021-01-14T00:52:00Z")),
        ("2021-01-14T00:52:00.250", Some("2021-01-14T00:52:00.25Z")),
        ("2021-01-14T00:52:00Z", Some("2021-01-14T00:52:00Z")),
        ("2021-01-14T00:52:00+08:00", Some("2021-01-13T16:52:00Z")),
        ("2021-01-14T00:52:00+0800", Some("2021-01-13T16:52:00Z")),
        ("2021-01-14T00:52:00-05:00", Some("2021-01-14T05:52:00Z")),
        ("2021-01-14", Some("2021-01-14T00:00:00Z")),
        ("14/01/2021", None),
        ("2021-13-01T00:00:00", None),
        ("2021-01-14T25:00:00", None),
        ("yesterday", None),
        ("", None),
    ];
    for (text, expected) in cases {
        assert_eq!(parse_time(text), expected.map(time), "{text}");
    }
}

#[test]
fn checkpoint_offsets_are_honoured() {
    let mut body = in_transit();
    body["msg"]["checkpoints"][0]["checkpoint_time"] = json!("2021-01-14T00:52:00-06:00");
    assert_eq!(
        current_event(&body).occurred_at,
        time("2021-01-14T06:52:00Z")
    );
}

#[test]
fn the_last_checkpoint_listed_is_the_latest_whatever_its_local_time() {
    let mut body = in_transit();
    body["msg"]["checkpoints"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            // Earlier on the clock, but a later scan in a time zone further west.
            "checkpoint_time": "2021-01-13T22:10:00",
            "message": "Arrived at USPS Regional Facility",
            "city": "SEATTLE",
            "state": "WA",
            "postal_code": "98101",
            "country_region": "USA",
        }));
    let event = current_event(&body);
    assert_eq!(event.occurred_at, time("2021-01-13T22:10:00Z"));
    let change = status_change(&event);
    assert_eq!(
        change.message.as_deref(),
        Some("Arrived at USPS Regional Facility")
    );
    assert_eq!(
        change.location,
        Some(Location {
            city: Some("SEATTLE".into()),
            state: Some("WA".into()),
            country: Some("USA".into()),
            postal_code: Some("98101".into()),
        })
    );
}

#[test]
fn older_location_field_names_are_read_too() {
    let mut body = in_transit();
    let checkpoint = &mut body["msg"]["checkpoints"][0];
    checkpoint["zip"] = json!("10451");
    checkpoint["country_iso3"] = json!("USA");
    checkpoint["city"] = json!("BRONX");
    let change_location = status_change(&current_event(&body)).location.clone();
    assert_eq!(
        change_location,
        Some(Location {
            city: Some("BRONX".into()),
            state: None,
            country: Some("USA".into()),
            postal_code: Some("10451".into()),
        })
    );
}

#[test]
fn event_time_falls_back_to_ts_and_is_required() {
    let mut body = in_transit();
    body["msg"]["checkpoints"][0]["checkpoint_time"] = Value::Null;
    assert_eq!(
        current_event(&body).occurred_at,
        time("2024-04-10T09:34:56Z")
    );
    body["msg"]["checkpoints"] = json!([]);
    assert_eq!(
        current_event(&body).occurred_at,
        time("2024-04-10T09:34:56Z")
    );
    let change = status_change(&current_event(&body)).clone();
    assert_eq!((change.location, change.message), (None, None));
    body.as_object_mut().unwrap().remove("ts");
    let reason = malformed_reason(transform(&body).unwrap_err());
    assert!(reason.contains("no time"), "{reason}");
}

#[test]
fn eta_comes_from_expected_delivery_then_aftership_estimate() {
    let mut body = in_transit();
    body["msg"]["aftership_estimated_delivery_date"] = json!({
        "estimated_delivery_date": "2021-01-18",
        "confidence_code": null,
    });
    assert_eq!(
        status_change(&current_event(&body)).eta,
        Some(time("2021-01-18T00:00:00Z"))
    );
    body["msg"]["aftership_estimated_delivery_date"] = json!("2021-01-19");
    assert_eq!(
        status_change(&current_event(&body)).eta,
        Some(time("2021-01-19T00:00:00Z"))
    );
    body["msg"]["expected_delivery"] = json!("2021-01-17T18:00:00+01:00");
    assert_eq!(
        status_change(&current_event(&body)).eta,
        Some(time("2021-01-17T17:00:00Z"))
    );
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
        (
            "event",
            Box::new(|b| b["event"] = json!(["tracking_update"])),
        ),
        (
            "event_id",
            Box::new(|b| drop(b.as_object_mut().unwrap().remove("event_id"))),
        ),
        ("event_id", Box::new(|b| b["event_id"] = json!(7))),
        ("ts", Box::new(|b| b["ts"] = json!("1712741696"))),
        ("ts", Box::new(|b| b["ts"] = json!(1.5))),
        ("ts", Box::new(|b| b["ts"] = json!(i64::MAX))),
        ("msg", Box::new(|b| b["msg"] = Value::Null)),
        ("msg", Box::new(|b| b["msg"] = json!("InTransit"))),
        (
            "msg.tracking_number",
            Box::new(|b| b["msg"]["tracking_number"] = json!(" ")),
        ),
        (
            "msg.tracking_number",
            Box::new(|b| b["msg"]["tracking_number"] = json!(123)),
        ),
        (
            "msg.tag",
            Box::new(|b| drop(b["msg"].as_object_mut().unwrap().remove("tag"))),
        ),
        ("msg.subtag", Box::new(|b| b["msg"]["subtag"] = json!(1))),
        ("msg.slug", Box::new(|b| b["msg"]["slug"] = json!({}))),
        (
            "msg.signed_by",
            Box::new(|b| b["msg"]["signed_by"] = json!(0)),
        ),
        (
            "msg.return_to_sender",
            Box::new(|b| b["msg"]["return_to_sender"] = json!("true")),
        ),
        (
            "msg.checkpoints",
            Box::new(|b| b["msg"]["checkpoints"] = json!({})),
        ),
        (
            "msg.checkpoints[1]",
            Box::new(|b| {
                let list = b["msg"]["checkpoints"].as_array_mut().unwrap();
                list.push(json!("Delivered"));
            }),
        ),
        (
            "msg.checkpoints[0].checkpoint_time",
            Box::new(|b| b["msg"]["checkpoints"][0]["checkpoint_time"] = json!("14/01/2021")),
        ),
        (
            "msg.checkpoints[0].checkpoint_time",
            Box::new(|b| b["msg"]["checkpoints"][0]["checkpoint_time"] = json!(1610585520)),
        ),
        (
            "msg.checkpoints[0].city",
            Box::new(|b| b["msg"]["checkpoints"][0]["city"] = json!(["BRONX"])),
        ),
        (
            "msg.checkpoints[0].message",
            Box::new(|b| b["msg"]["checkpoints"][0]["message"] = json!(true)),
        ),
    ];
    for (field, edit) in edits {
        let mut body = in_transit();
        edit(&mut body);
        let bytes = serde_json::to_vec(&body).unwrap();
        let from_inspect = partners::inspect(Format::AfterShip, &bytes).unwrap_err();
        let from_transform = transform(&body).unwrap_err();
        assert_eq!(from_inspect, from_transform, "ingress and transform agree");
        assert_eq!(from_transform.code(), "malformed_payload");
        let reason = malformed_reason(from_transform);
        assert!(reason.contains(&format!("`{field}`")), "{field}: {reason}");
        assert!(
            !reason.contains("0000000000000000") && !reason.contains("Departed"),
            "{reason}"
        );
    }
}

#[test]
fn bodies_that_are_not_json_objects_are_malformed() {
    for body in [&b""[..], b"not json", b"[]", b"null", b"\xff{}"] {
        let error = partners::inspect(Format::AfterShip, body).unwrap_err();
        assert_eq!(error.code(), "malformed_payload", "{body:?}");
        let error =
            partners::to_canonical(Format::AfterShip, &webhook_for("aftership", body)).unwrap_err();
        assert_eq!(error.code(), "malformed_payload", "{body:?}");
    }
}

#[test]
fn other_events_are_accepted_at_ingress_but_not_transformed() {
    for event in ["edd_revise", "tracking_pending_time"] {
        let mut body = in_transit();
        body["event"] = json!(event);
        // Their `msg` is not read, so a shape we do not know does not block them.
        body["msg"] = json!({"tag": 5});
        let bytes = serde_json::to_vec(&body).unwrap();
        let key = partners::inspect(Format::AfterShip, &bytes).unwrap();
        assert_eq!(key.delivery_id.as_deref(), Some(FIXTURE_EVENT_ID));
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
    let webhook = webhook_for("aftership", IN_TRANSIT.as_bytes());
    let first = partners::to_canonical(Format::AfterShip, &webhook).unwrap();
    assert_eq!(
        first,
        partners::to_canonical(Format::AfterShip, &webhook).unwrap()
    );
    let other = partners::to_canonical(
        Format::AfterShip,
        &webhook_for("aftership-eu", IN_TRANSIT.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        other[0].event_id,
        canonical::event_id("aftership-eu", &first[0].source_event_id, 0)
    );
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

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../events/partners")
            .join(name),
    )
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
                .is_some_and(|name| name.starts_with("aftership-") && name.ends_with(".json"))
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
        .map(|(tag, subtag, rts, ..)| serde_json::to_vec(&with_tag(tag, subtag, rts)).unwrap())
        .collect();
    bodies.extend(
        demo_samples()
            .into_iter()
            .map(|p| std::fs::read(p).unwrap()),
    );
    for body in bodies {
        for event in
            partners::to_canonical(Format::AfterShip, &webhook_for("aftership", &body)).unwrap()
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
    assert!(samples.len() >= 2, "found {samples:?}");
    for path in &samples {
        let body = std::fs::read(path).unwrap();
        let key = partners::inspect(Format::AfterShip, &body).unwrap();
        let events =
            partners::to_canonical(Format::AfterShip, &webhook_for("aftership", &body)).unwrap();
        assert!(!events.is_empty(), "{}", path.display());
        let delivery_id = key.delivery_id.unwrap();
        assert!(
            events
                .iter()
                .all(|event| event.correlation_id == delivery_id)
        );
    }
    assert_eq!(
        sample("aftership-tracking-update-in-transit.json"),
        IN_TRANSIT.as_bytes()
    );

    let events = partners::to_canonical(
        Format::AfterShip,
        &webhook_for(
            "aftership",
            &sample("aftership-tracking-update-delivered.json"),
        ),
    )
    .unwrap();
    assert_eq!(
        events.len(),
        2,
        "two checkpoints, the latest says delivered"
    );
    let event = &events[1];
    assert_eq!(event.correlation_id, "3f1c9a52-7d4e-4b8a-9e21-6c0d5b7a8f13");
    assert_eq!(event.shipment.tracking_number, "773302011234");
    assert_eq!(event.shipment.carrier.as_deref(), Some("fedex"));
    assert_eq!(event.occurred_at, time("2026-11-26T16:14:00Z"));
    let EventBody::Delivered(delivery) = &event.body else {
        panic!("expected a delivery, got {:?}", event.body);
    };
    assert_eq!(delivery.status_detail.as_deref(), Some("Delivered_003"));
    assert_eq!(delivery.pod.signed_by.as_deref(), Some("M.GARCIA"));
    assert_eq!(
        delivery.location.as_ref().map(Location::display).as_deref(),
        Some("HOUSTON, TX 77002 USA")
    );
}

/// Any JSON value, nested a few levels, biased towards AfterShip's own words.
fn any_json() -> impl Strategy<Value = Value> {
    const WORDS: &[&str] = &[
        "InTransit",
        "Delivered",
        "Exception",
        "Exception_010",
        "2021-01-14T00:52:00",
        "2021-01-14T00:52:00+08:00",
        "2021-01-14",
    ];
    const KEYS: &[&str] = &[
        "tracking_number",
        "slug",
        "tag",
        "subtag",
        "signed_by",
        "return_to_sender",
        "checkpoints",
        "checkpoint_time",
        "expected_delivery",
        "aftership_estimated_delivery_date",
        "estimated_delivery_date",
        "city",
        "x",
    ];
    crate::partners::arbitrary_json::json_with(WORDS, KEYS)
}

fn never_panics(body: &[u8]) {
    let _ = partners::inspect(Format::AfterShip, body);
    let _ = partners::to_canonical(Format::AfterShip, &webhook_for("aftership", body));
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
    fn arbitrary_trackings_never_panic_and_ingress_agrees_with_the_transform(
        msg in any_json(),
        ts in any_json(),
    ) {
        let body = json!({
            "event": "tracking_update",
            "event_id": FIXTURE_EVENT_ID,
            "is_tracking_first_tag": false,
            "msg": msg,
            "ts": ts,
        });
        let bytes = serde_json::to_vec(&body).unwrap();
        let inspected = partners::inspect(Format::AfterShip, &bytes);
        let transformed = partners::to_canonical(Format::AfterShip, &webhook_for("aftership", &bytes));
        prop_assert_eq!(inspected.is_ok(), transformed.is_ok());
        if let Ok(events) = transformed {
            prop_assert!(!events.is_empty());
        }
    }

    #[test]
    fn arbitrary_fields_in_the_real_tracking_never_panic_and_agree(
        key in prop::sample::select(vec![
            "tag", "subtag", "slug", "signed_by", "return_to_sender", "checkpoints",
            "expected_delivery", "aftership_estimated_delivery_date",
        ]),
        value in any_json(),
    ) {
        let mut body = in_transit();
        body["msg"][key] = value;
        let bytes = serde_json::to_vec(&body).unwrap();
        let inspected = partners::inspect(Format::AfterShip, &bytes);
        let transformed = partners::to_canonical(Format::AfterShip, &webhook_for("aftership", &bytes));
        prop_assert_eq!(inspected.is_ok(), transformed.is_ok());
    }
}

#[test]
fn aftership_partners_take_json_and_no_options() {
    assert_eq!(
        Format::AfterShip.default_content_types(),
        &["application/json"]
    );
    let file = |options: &str| {
        crate::config::PartnersFile::parse(&format!(
            "[[partner]]\nid = \"aftership\"\nformat = \"aftership\"\n{options}[partner.signature]\nscheme = \"aftership\"\nsecrets = [\"s\"]\n"
        ))
        .unwrap()
    };
    let plain = file("");
    let adapter = partners::Adapter::from_config(&plain.partner[0]).unwrap();
    assert_eq!(adapter.format(), Format::AfterShip);
    let webhook = webhook_for("aftership", IN_TRANSIT.as_bytes());
    assert_eq!(
        adapter.to_canonical(&webhook),
        partners::to_canonical(Format::AfterShip, &webhook)
    );
    let with_options = file("[partner.options]\nslug = \"usps\"\n");
    let error = partners::Adapter::from_config(&with_options.partner[0]).unwrap_err();
    assert!(
        error.to_string().contains("takes no [partner.options]"),
        "{error}"
    );
}

/// An estimate that cannot be read is dropped; the milestone is not.
#[test]
fn an_unreadable_estimate_costs_nothing() {
    for (field, unreadable) in [
        ("expected_delivery", json!("next week")),
        ("aftership_estimated_delivery_date", json!(20210118)),
        (
            "aftership_estimated_delivery_date",
            json!({"estimated_delivery_date": "soon"}),
        ),
    ] {
        let mut body = in_transit();
        body["msg"][field] = unreadable.clone();
        let bytes = serde_json::to_vec(&body).unwrap();
        assert!(
            partners::inspect(Format::AfterShip, &bytes).is_ok(),
            "{unreadable}"
        );
        assert_eq!(
            status_change(&current_event(&body)).eta,
            None,
            "{unreadable}"
        );
    }
}
