//! Shipment milestones as chatter notes: find the delivery (`stock.picking`) by its carrier
//! tracking number and post an internal note saying what happened. Every note carries a marker
//! with the event id, so a retry can see that the note already landed and not post it twice.
//! A milestone older than the shipment's latest (`ordering`) is worded as history.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::canonical::{CanonicalEvent, EventBody, Location, ShipmentStatus};
use crate::ordering::Placement;

use super::error::{OdooError, OdooErrorKind};
use super::values::{record_id, records, single_id, text};
use super::{OdooCall, OdooPort};

/// Enough candidates for any real tracking number; short ones could match a lot by substring.
const PICKING_SEARCH_LIMIT: i64 = 100;

/// Partner-supplied text is cut to this many characters in a note.
const MAX_PARTNER_TEXT: usize = 300;

/// What was done for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotePosted {
    pub picking_id: i64,
    pub picking_name: String,
    /// `None` in dry-run, where nothing was created.
    pub message_id: Option<i64>,
    /// The note was found from an earlier attempt; nothing was posted this time.
    pub already_posted: bool,
}

/// The marker that ends every note: the dedupe key searched for on retries.
pub fn note_marker(event: &CanonicalEvent) -> String {
    format!("[freightbridge event {}]", event.event_id)
}

/// The note text of a current milestone (plain text: Odoo escapes it and wraps it in a
/// paragraph).
pub fn note_body(event: &CanonicalEvent) -> String {
    placed_note_body(event, Placement::Current)
}

/// The first sentence of a note: the status now, or what an earlier scan said.
fn headline(status: ShipmentStatus, detail: Option<&str>, placement: Placement) -> String {
    let mut headline = match placement {
        Placement::Current => format!("Shipment {}", status_words(status)),
        Placement::History => format!(
            "Earlier scan (received out of order): {}",
            status_words(status)
        ),
    };
    if let Some(detail) = detail.and_then(clean) {
        headline.push_str(&format!(" ({})", detail.replace('_', " ")));
    }
    headline
}

/// The note text for a milestone placed as `placement`. A history note leaves out the
/// delivery estimate: a newer milestone has superseded it.
pub fn placed_note_body(event: &CanonicalEvent, placement: Placement) -> String {
    let mut sentences: Vec<String> = Vec::new();
    match &event.body {
        EventBody::StatusChanged(change) => {
            sentences.push(headline(
                change.status,
                change.status_detail.as_deref(),
                placement,
            ));
            sentences.push(format!("Time: {}", utc(event.occurred_at)));
            push_location(&mut sentences, change.location.as_ref());
            if let Some(eta) = change.eta.filter(|_| placement == Placement::Current) {
                sentences.push(format!("Estimated delivery: {}", utc(eta)));
            }
            if let Some(raw) = change.raw_status.as_deref().and_then(clean) {
                sentences.push(format!("Partner status: {raw}"));
            }
            if let Some(message) = change.message.as_deref().and_then(clean) {
                sentences.push(format!("Carrier message: {message}"));
            }
        }
        EventBody::Delivered(delivery) => {
            sentences.push(headline(
                delivery.status,
                delivery.status_detail.as_deref(),
                placement,
            ));
            sentences.push(format!("Time: {}", utc(event.occurred_at)));
            push_location(&mut sentences, delivery.location.as_ref());
            if let Some(message) = delivery.message.as_deref().and_then(clean) {
                sentences.push(format!("Carrier message: {message}"));
            }
            let pod = &delivery.pod;
            let mut proof = format!("Proof of delivery: delivered at {}", utc(pod.delivered_at));
            if let Some(signer) = pod.signed_by.as_deref().and_then(clean) {
                proof.push_str(&format!(", signed by {signer}"));
            }
            sentences.push(proof);
            if let Some(url) = pod.document_url.as_deref().and_then(clean) {
                sentences.push(format!("POD document: {url}"));
            }
        }
        // Finance events are not milestones; the poster routes them to their own operations.
        EventBody::CostEstimated(_)
        | EventBody::InvoiceReceived(_)
        | EventBody::ChargeAdded(_)
        | EventBody::InvoiceMatched(_)
        | EventBody::InvoiceDisputed(_)
        | EventBody::InvoiceSettled(_) => {
            sentences.push(format!("Freight event {}", event.event_type()));
        }
    }
    if let Some(carrier) = event.shipment.carrier.as_deref().and_then(clean) {
        sentences.push(format!("Carrier: {carrier}"));
    }
    sentences.push(format!(
        "Tracking number: {}",
        event.shipment.tracking_number
    ));
    sentences.push(format!("Source: {}", event.partner));
    let mut body = sentences.join(". ");
    body.push_str(". ");
    body.push_str(&note_marker(event));
    body
}

/// Posts the note of a current milestone; see `post_placed_note`.
pub async fn post_milestone_note(
    odoo: &impl OdooPort,
    event: &CanonicalEvent,
    check_existing: bool,
) -> Result<NotePosted, OdooError> {
    post_placed_note(odoo, event, Placement::Current, check_existing).await
}

/// Posts the milestone note for `event` on its picking, worded for its `placement`.
/// `check_existing` (set by the caller on retries) first looks for the note of an earlier
/// attempt. Two round trips on a first delivery, three with the check.
pub async fn post_placed_note(
    odoo: &impl OdooPort,
    event: &CanonicalEvent,
    placement: Placement,
    check_existing: bool,
) -> Result<NotePosted, OdooError> {
    let event_id = event.event_id;
    let picking = find_picking(odoo, event).await?;
    let (picking_id, picking_name) = (picking.id, picking.name);
    let marker = note_marker(event);

    if check_existing {
        let lookup = OdooCall::new("mail.message", "search_read")
            .with_arg(
                "domain",
                json!([
                    ["model", "=", "stock.picking"],
                    ["res_id", "=", picking_id],
                    ["body", "ilike", marker],
                ]),
            )
            .with_arg("fields", json!(["id"]))
            .with_arg("limit", 1)
            .assuming(json!([]));
        let found = records(odoo.execute(&lookup).await?)?;
        if let Some(message_id) = found.first().and_then(record_id) {
            tracing::info!(%event_id, picking_id, message_id, "milestone note already posted; not posting again");
            return Ok(NotePosted {
                picking_id,
                picking_name,
                message_id: Some(message_id),
                already_posted: true,
            });
        }
    }

    let post = OdooCall::new("stock.picking", "message_post")
        .with_ids([picking_id])
        .with_arg("body", placed_note_body(event, placement))
        .with_arg("message_type", "comment")
        .with_arg("subtype_xmlid", "mail.mt_note");
    let answer = odoo.execute(&post).await?;
    let message_id = single_id(&answer);
    tracing::info!(%event_id, picking_id, message_id, ?placement, "milestone note posted");
    Ok(NotePosted {
        picking_id,
        picking_name,
        message_id,
        already_posted: false,
    })
}

/// A transfer found for a shipment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picking {
    pub id: i64,
    pub name: String,
    /// `incoming` (a receipt), `outgoing` (a delivery) or `internal`.
    pub type_code: Option<String>,
    pub state: Option<String>,
}

/// The picking whose `carrier_tracking_ref` holds the tracking number as one of its
/// comma-separated entries, else the one named like `shipment.reference`. Several: the newest.
pub async fn find_picking(
    odoo: &impl OdooPort,
    event: &CanonicalEvent,
) -> Result<Picking, OdooError> {
    let tracking = event.shipment.tracking_number.trim();
    let event_id = event.event_id;
    let dry_run_picking = json!([{"id": 0, "name": "(dry-run)", "carrier_tracking_ref": tracking}]);

    let mut candidates = Vec::new();
    if !tracking.is_empty() {
        // `ilike` finds the number inside a list of numbers; the exact check below drops the
        // pickings that only contain it as a substring of another number.
        let search = picking_search(json!([["carrier_tracking_ref", "ilike", tracking]]))
            .assuming(dry_run_picking.clone());
        candidates = records(odoo.execute(&search).await?)?
            .into_iter()
            .filter(|p| holds_tracking_number(text(p.get("carrier_tracking_ref")), tracking))
            .collect();
    }
    if candidates.is_empty()
        && let Some(reference) = event.shipment.reference()
    {
        let search = picking_search(json!([["name", "=", reference]])).assuming(dry_run_picking);
        candidates = records(odoo.execute(&search).await?)?;
    }

    let count = candidates.len();
    let Some((picking_id, picking)) = candidates
        .into_iter()
        .filter_map(|p| record_id(&p).map(|id| (id, p)))
        .max_by_key(|(id, _)| *id)
    else {
        tracing::warn!(%event_id, "no picking carries the shipment's tracking number or reference");
        let message = match (tracking.is_empty(), event.shipment.reference.as_deref()) {
            (false, _) => format!("no stock.picking has tracking number {tracking}"),
            (true, Some(reference)) => format!("no stock.picking is named {reference}"),
            (true, None) => "the event has neither a tracking number nor a reference".to_owned(),
        };
        return Err(
            OdooError::new(OdooErrorKind::NotFound, message).with_code("odoo_picking_not_found")
        );
    };
    if count > 1 {
        tracing::warn!(%event_id, picking_id, count, "several pickings carry this tracking number; using the most recent");
    }
    Ok(Picking {
        id: picking_id,
        name: text(picking.get("name")).unwrap_or_default().to_owned(),
        type_code: text(picking.get("picking_type_code")).map(str::to_owned),
        state: text(picking.get("state")).map(str::to_owned),
    })
}

fn picking_search(domain: Value) -> OdooCall {
    OdooCall::new("stock.picking", "search_read")
        .with_arg("domain", domain)
        .with_arg(
            "fields",
            json!([
                "id",
                "name",
                "carrier_tracking_ref",
                "picking_type_code",
                "state"
            ]),
        )
        .with_arg("order", "id desc")
        .with_arg("limit", PICKING_SEARCH_LIMIT)
}

/// `carrier_tracking_ref` is free text; several numbers are stored comma-separated (transcript
/// 097). The number must be one entry, not part of one. Case is ignored, as `ilike` does.
fn holds_tracking_number(refs: Option<&str>, tracking: &str) -> bool {
    refs.is_some_and(|refs| {
        refs.split([',', ';', '\n'])
            .map(str::trim)
            .any(|entry| entry.eq_ignore_ascii_case(tracking))
    })
}

fn status_words(status: ShipmentStatus) -> &'static str {
    match status {
        ShipmentStatus::Booked => "booked",
        ShipmentStatus::PickedUp => "picked up",
        ShipmentStatus::InTransit => "in transit",
        ShipmentStatus::Delayed => "delayed",
        ShipmentStatus::OutForDelivery => "out for delivery",
        ShipmentStatus::Delivered => "delivered",
        ShipmentStatus::Exception => "exception reported by the carrier",
        ShipmentStatus::Returned => "returned to sender",
        ShipmentStatus::Cancelled => "cancelled",
    }
}

fn utc(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn push_location(sentences: &mut Vec<String>, location: Option<&Location>) {
    if let Some(place) = location.map(Location::display).as_deref().and_then(clean) {
        sentences.push(format!("Location: {place}"));
    }
}

/// Partner text on one line, without control characters, trailing dots or excess length.
fn clean(s: &str) -> Option<String> {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let flat = flat.trim_end_matches('.');
    if flat.is_empty() {
        return None;
    }
    Some(match flat.char_indices().nth(MAX_PARTNER_TEXT) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use crate::canonical::{
        Delivery, ProofOfDelivery, SCHEMA, ShipmentRef, StatusChange, event_id,
    };

    use super::*;

    fn event(body: EventBody) -> CanonicalEvent {
        CanonicalEvent {
            schema: SCHEMA.into(),
            event_id: event_id("easypost", "evt_1", 0),
            partner: "easypost".into(),
            source_event_id: "evt_1".into(),
            correlation_id: "evt_1".into(),
            occurred_at: "2024-08-02T18:50:00Z".parse().unwrap(),
            received_at: "2024-08-02T19:26:52Z".parse().unwrap(),
            shipment: ShipmentRef {
                tracking_number: "1Z999AA10123456784".into(),
                carrier: Some("UPS".into()),
                reference: None,
            },
            body,
        }
    }

    fn in_transit() -> CanonicalEvent {
        event(EventBody::StatusChanged(StatusChange {
            status: ShipmentStatus::InTransit,
            status_detail: Some("arrived_at_facility".into()),
            raw_status: None,
            location: Some(Location {
                city: Some("ORLANDO".into()),
                state: Some("FL".into()),
                country: Some("US".into()),
                postal_code: Some("32809".into()),
            }),
            message: Some("Arrived at facility.\n".into()),
            eta: Some("2024-08-05T17:00:00Z".parse().unwrap()),
        }))
    }

    fn delivered() -> CanonicalEvent {
        event(EventBody::Delivered(Delivery {
            status: ShipmentStatus::Delivered,
            status_detail: None,
            location: None,
            message: None,
            pod: ProofOfDelivery {
                signed_by: Some("John Tester".into()),
                delivered_at: "2024-08-03T10:15:30Z".parse().unwrap(),
                document_url: Some("https://pod.example.com/1.pdf".into()),
            },
        }))
    }

    #[test]
    fn status_note_reads_as_sentences_and_ends_with_the_marker() {
        let e = in_transit();
        assert_eq!(
            note_body(&e),
            format!(
                "Shipment in transit (arrived at facility). Time: 2024-08-02 18:50 UTC. \
                 Location: ORLANDO, FL 32809 US. Estimated delivery: 2024-08-05 17:00 UTC. \
                 Carrier message: Arrived at facility. Carrier: UPS. Tracking number: 1Z999AA10123456784. \
                 Source: easypost. [freightbridge event {}]",
                e.event_id
            )
        );
    }

    #[test]
    fn delivery_note_carries_the_proof_of_delivery() {
        let body = note_body(&delivered());
        assert!(body.starts_with("Shipment delivered. Time: 2024-08-02 18:50 UTC."));
        assert!(body.contains(
            "Proof of delivery: delivered at 2024-08-03 10:15 UTC, signed by John Tester."
        ));
        assert!(body.contains("POD document: https://pod.example.com/1.pdf."));
        assert!(body.ends_with(&note_marker(&delivered())));
    }

    #[test]
    fn an_out_of_order_scan_is_worded_as_history_without_its_stale_estimate() {
        let e = in_transit();
        let body = placed_note_body(&e, Placement::History);
        assert!(
            body.starts_with(
                "Earlier scan (received out of order): in transit (arrived at facility). \
                 Time: 2024-08-02 18:50 UTC."
            ),
            "{body}"
        );
        assert!(!body.contains("Shipment in transit"), "{body}");
        assert!(!body.contains("Estimated delivery"), "{body}");
        assert!(body.ends_with(&note_marker(&e)));
    }

    #[test]
    fn an_out_of_order_delivery_keeps_its_proof() {
        let body = placed_note_body(&delivered(), Placement::History);
        assert!(body.starts_with("Earlier scan (received out of order): delivered."));
        assert!(body.contains("Proof of delivery: delivered at 2024-08-03 10:15 UTC"));
    }

    #[test]
    fn every_status_has_human_words() {
        for status in ShipmentStatus::ALL {
            let words = status_words(status);
            assert!(!words.contains('_'), "{words}");
        }
    }

    #[test]
    fn tracking_numbers_match_whole_entries_only() {
        let cases = [
            (Some("1Z999AA10123456784"), true),
            (Some("1Z999AA10123456784,1Z999AA10123456795"), true),
            (Some("1Z999AA10123456795, 1z999aa10123456784"), true),
            (Some("X1Z999AA10123456784"), false),
            (Some("1Z999AA101234567845"), false),
            (None, false),
        ];
        for (refs, expected) in cases {
            assert_eq!(
                holds_tracking_number(refs, "1Z999AA10123456784"),
                expected,
                "{refs:?}"
            );
        }
    }

    #[test]
    fn partner_text_is_flattened_and_cut() {
        assert_eq!(clean("  a\n\tb.  ").as_deref(), Some("a b"));
        assert_eq!(clean(" . "), None);
        assert_eq!(
            clean(&"x".repeat(1000)).unwrap().chars().count(),
            MAX_PARTNER_TEXT + 1
        );
    }

    /// Answers calls from a script and records them.
    struct Scripted {
        answers: Mutex<Vec<Result<Value, OdooError>>>,
        calls: Mutex<Vec<OdooCall>>,
    }

    impl Scripted {
        fn new(answers: Vec<Result<Value, OdooError>>) -> Self {
            Self {
                answers: Mutex::new(answers.into_iter().rev().collect()),
                calls: Mutex::new(Vec::new()),
            }
        }
    }

    impl OdooPort for Scripted {
        async fn execute(&self, call: &OdooCall) -> Result<Value, OdooError> {
            self.calls.lock().unwrap().push(call.clone());
            self.answers.lock().unwrap().pop().expect("unexpected call")
        }
    }

    #[tokio::test]
    async fn newest_exact_match_wins_over_substring_matches() {
        let odoo = Scripted::new(vec![
            Ok(json!([
                {"id": 9, "name": "WH/OUT/00009", "carrier_tracking_ref": "1Z999AA101234567849"},
                {"id": 7, "name": "WH/OUT/00007", "carrier_tracking_ref": "AAA,1Z999AA10123456784"},
                {"id": 3, "name": "WH/OUT/00003", "carrier_tracking_ref": "1Z999AA10123456784"},
            ])),
            Ok(json!(16)),
        ]);
        let posted = post_milestone_note(&odoo, &in_transit(), false)
            .await
            .unwrap();
        assert_eq!(
            posted,
            NotePosted {
                picking_id: 7,
                picking_name: "WH/OUT/00007".into(),
                message_id: Some(16),
                already_posted: false
            }
        );
        let calls = odoo.calls.lock().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].ids, vec![7]);
        assert_eq!(calls[1].kwargs["subtype_xmlid"], "mail.mt_note");
    }

    #[tokio::test]
    async fn reference_is_tried_when_no_tracking_number_matches() {
        let mut e = in_transit();
        e.shipment.reference = Some("WH/OUT/00004".into());
        let odoo = Scripted::new(vec![
            Ok(json!([])),
            Ok(json!([{"id": 4, "name": "WH/OUT/00004", "carrier_tracking_ref": false}])),
            Ok(json!([30])),
        ]);
        let posted = post_milestone_note(&odoo, &e, false).await.unwrap();
        assert_eq!((posted.picking_id, posted.message_id), (4, Some(30)));
        let calls = odoo.calls.lock().unwrap();
        assert_eq!(
            calls[1].kwargs["domain"],
            json!([["name", "=", "WH/OUT/00004"]])
        );
    }

    #[tokio::test]
    async fn no_picking_is_a_permanent_not_found() {
        let odoo = Scripted::new(vec![Ok(json!([]))]);
        let error = post_milestone_note(&odoo, &in_transit(), false)
            .await
            .unwrap_err();
        assert_eq!(error.kind, OdooErrorKind::NotFound);
        assert_eq!(
            crate::failure::Classify::code(&error),
            "odoo_picking_not_found"
        );
        assert!(error.message.contains("1Z999AA10123456784"));
    }

    #[tokio::test]
    async fn event_without_tracking_number_or_reference_asks_odoo_nothing() {
        let mut e = in_transit();
        e.shipment.tracking_number = " ".into();
        let odoo = Scripted::new(vec![]);
        let error = post_milestone_note(&odoo, &e, false).await.unwrap_err();
        assert_eq!(error.kind, OdooErrorKind::NotFound);
        assert_eq!(
            error.message,
            "the event has neither a tracking number nor a reference"
        );
        assert!(odoo.calls.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn existing_note_is_reported_instead_of_posting_again() {
        let odoo = Scripted::new(vec![
            Ok(
                json!([{"id": 2, "name": "WH/OUT/00001", "carrier_tracking_ref": "1Z999AA10123456784"}]),
            ),
            Ok(json!([{"id": 158}])),
        ]);
        let posted = post_milestone_note(&odoo, &delivered(), true)
            .await
            .unwrap();
        assert!(posted.already_posted);
        assert_eq!(posted.message_id, Some(158));
        let calls = odoo.calls.lock().unwrap();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].model, "mail.message");
        assert_eq!(
            calls[1].kwargs["domain"][2],
            json!(["body", "ilike", note_marker(&delivered())])
        );
    }

    #[tokio::test]
    async fn failures_of_odoo_are_passed_on() {
        let odoo = Scripted::new(vec![Err(OdooError::new(OdooErrorKind::Timeout, "slow"))]);
        let error = post_milestone_note(&odoo, &in_transit(), false)
            .await
            .unwrap_err();
        assert_eq!(error.kind, OdooErrorKind::Timeout);
    }
}
