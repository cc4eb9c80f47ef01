//! X12 214 (shipment status): each AT7 becomes one canonical event. AT701 maps through a table
//! (partners.md §9), AT702 refines it, AT705–AT707 give the time, the MS1 after the AT7 the place,
//! and B10/L11 name the shipment.

use chrono::{DateTime, NaiveTime, Utc};
use chrono_tz::Tz;

use super::datetime::{self, TimeCode};
use super::envelope::TransactionSet;
use super::tokenizer::Segment;
use super::{Checks, Draft, Options, malformed, shipment_reference, source_event_id};
use crate::canonical::{
    Delivery, EventBody, Location, ProofOfDelivery, ShipmentRef, ShipmentStatus, StatusChange,
};
use crate::partners::PartnerError;

/// What an AT701 code means for the canonical model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Milestone {
    /// A `shipment.status_changed` with this status.
    Status(ShipmentStatus),
    /// The final delivery: `shipment.delivered` with proof of delivery.
    Delivered,
    /// Only an estimate. Without the shipment's previous status there is no status to keep, so
    /// it is reported as `in_transit` with `eta` set and the code in `raw_status`.
    Eta,
}

use Milestone::{Delivered, Eta, Status};
use ShipmentStatus::{
    Booked, Cancelled, Delayed, Exception, InTransit, OutForDelivery, PickedUp, Returned,
};

/// AT701 (element 1650) → milestone, the detail reported in `status_detail`, and whether the
/// canonical status says all the code says (otherwise the code is kept in `raw_status`).
/// Codes missing here become `exception` with the code kept.
const STATUS_CODES: [(&str, Milestone, &str, bool); 44] = [
    // XB means "Shipment Acknowledged" in 4030 but POD-in-hand for some communities.
    ("XB", Status(Booked), "shipment_acknowledged", false),
    ("OO", Status(Booked), "paperwork_received", false),
    ("X3", Status(Booked), "arrived_at_pickup_location", false),
    ("X8", Status(Booked), "arrived_at_pickup_dock", false),
    ("AF", Status(PickedUp), "departed_pickup_location", true),
    ("CP", Status(PickedUp), "loading_completed_at_pickup", false),
    ("AM", Status(PickedUp), "loaded_on_truck", false),
    ("L1", Status(PickedUp), "loading", false),
    ("X4", Status(InTransit), "arrived_at_terminal", false),
    ("P1", Status(InTransit), "departed_terminal", false),
    (
        "X6",
        Status(InTransit),
        "en_route_to_delivery_location",
        true,
    ),
    (
        "R1",
        Status(InTransit),
        "received_from_prior_carrier",
        false,
    ),
    ("BA", Status(InTransit), "connecting_line_pickup", false),
    (
        "J1",
        Status(InTransit),
        "delivered_to_connecting_line",
        false,
    ),
    ("K1", Status(InTransit), "arrived_at_customs", false),
    ("CT", Status(InTransit), "customs_release", false),
    (
        "AR",
        Status(InTransit),
        "rail_arrival_at_destination_ramp",
        false,
    ),
    (
        "RL",
        Status(InTransit),
        "rail_departure_from_origin_ramp",
        false,
    ),
    ("AN", Status(InTransit), "diverted_to_air_carrier", false),
    ("AI", Status(InTransit), "reconsigned", false),
    // A partial delivery is not the end of the shipment: CB reports the final part.
    ("PA", Status(InTransit), "partial_delivery", false),
    ("AJ", Status(OutForDelivery), "tendered_for_delivery", false),
    (
        "AV",
        Status(OutForDelivery),
        "available_for_delivery",
        false,
    ),
    (
        "X1",
        Status(OutForDelivery),
        "arrived_at_delivery_location",
        false,
    ),
    (
        "X5",
        Status(OutForDelivery),
        "arrived_at_delivery_dock",
        false,
    ),
    (
        "S1",
        Status(OutForDelivery),
        "trailer_spotted_at_consignee",
        false,
    ),
    ("AW", Status(OutForDelivery), "available_for_pickup", false),
    (
        "D1",
        Delivered,
        "completed_unloading_at_delivery_location",
        true,
    ),
    ("CB", Delivered, "completed_shipment", false),
    // Sent after D1: the delivery already happened, so it is a status, not a second POD.
    (
        "CD",
        Status(ShipmentStatus::Delivered),
        "departed_delivery_location",
        false,
    ),
    ("SD", Status(Delayed), "shipment_delayed", true),
    ("AH", Status(Exception), "delivery_attempted", false),
    ("AP", Status(Exception), "delivery_not_completed", false),
    ("A7", Status(Exception), "refused_by_consignee", false),
    ("A9", Status(Exception), "shipment_damaged", false),
    ("PR", Status(Exception), "customs_hold", false),
    ("BC", Status(Exception), "storage_in_transit", false),
    ("A3", Status(Returned), "returned_to_shipper", true),
    ("CA", Status(Cancelled), "shipment_cancelled", true),
    ("AG", Eta, "estimated_delivery", false),
    ("X2", Eta, "estimated_arrival_at_consignee", false),
    ("B6", Eta, "estimated_arrival_at_terminal", false),
    ("C1", Eta, "estimated_departure_from_terminal", false),
    // Appointment statuses (AT703) travel in the same slot when AT701 is empty.
    ("", Status(InTransit), "appointment", false),
];

/// AT702 (element 1651) reasons with a name; others are reported by code.
const REASON_CODES: [(&str, &str); 18] = [
    ("A1", "missed_delivery"),
    ("A2", "incorrect_address"),
    ("A5", "unable_to_locate"),
    ("AG", "consignee_related"),
    ("AH", "driver_related"),
    ("AI", "mechanical_breakdown"),
    ("AM", "shipper_related"),
    ("AO", "weather_or_natural_disaster"),
    ("AS", "customs_documentation_hold"),
    ("AY", "missed_pickup"),
    ("B1", "consignee_closed"),
    ("B5", "held_for_consignee"),
    ("BS", "refused_by_customer"),
    ("BT", "returned_to_shipper"),
    ("C1", "waiting_for_customer_pickup"),
    ("CA", "customs"),
    ("D2", "driver_not_available"),
    ("HB", "held_pending_appointment"),
];

/// AT702 `NS`: nothing to report.
const NORMAL_STATUS: &str = "NS";

/// An AT7 status as the canonical model sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusMapping {
    pub milestone: Milestone,
    /// The canonical status (for [`Milestone::Eta`], `in_transit` or `delayed`).
    pub status: ShipmentStatus,
    pub status_detail: String,
    /// `AT701` or `AT701/AT702`, kept when the status does not say everything.
    pub raw_status: Option<String>,
}

/// Maps AT701 (`status`) with AT702 (`reason`, `NS` or absent when normal). A reason on a
/// progress code (booked … out for delivery, or an estimate) means the shipment is late, so it
/// becomes `delayed` with the reason in the detail; on other codes the reason only adds detail.
pub fn map_status(status: &str, reason: Option<&str>) -> StatusMapping {
    let reason = reason.filter(|reason| !reason.is_empty() && *reason != NORMAL_STATUS);
    let (milestone, detail, exact) = STATUS_CODES
        .iter()
        .find(|(code, ..)| *code == status)
        .map_or((Status(Exception), "unknown_status_code", false), |row| {
            (row.1, row.2, row.3)
        });
    let progress = matches!(
        milestone,
        Status(Booked | PickedUp | InTransit | OutForDelivery) | Eta
    );
    let status_word = match (milestone, reason) {
        (_, Some(_)) if progress => Delayed,
        (Status(status), _) => status,
        (Delivered, _) => ShipmentStatus::Delivered,
        (Eta, _) => InTransit,
    };
    let status_detail = match reason {
        Some(reason) => {
            let reason_word = REASON_CODES
                .iter()
                .find(|(code, _)| *code == reason)
                .map_or_else(
                    || format!("reason_{reason}"),
                    |(_, word)| (*word).to_owned(),
                );
            format!("{detail}; {reason_word}")
        }
        None => detail.to_owned(),
    };
    let raw_status = (!exact || reason.is_some()).then(|| match reason {
        Some(reason) => format!("{status}/{reason}"),
        None => status.to_owned(),
    });
    StatusMapping {
        milestone,
        status: status_word,
        status_detail,
        raw_status,
    }
}

/// The events of one 214 set; `next_position` counts AT7s across the body.
pub(super) fn read(
    set: &TransactionSet<'_, '_>,
    next_position: &mut u32,
    options: &Options,
    checks: &mut Checks,
) -> Result<Vec<Draft>, PartnerError> {
    let body = set.body();
    let b10 = body.iter().find(|s| s.is("B10")).ok_or_else(|| {
        malformed(format!(
            "214 set at segment {} has no B10 segment",
            set.position()
        ))
    })?;
    // B1001 is the carrier's PRO, what the carrier tracks by; B1002 the shipper's shipment id.
    let tracking_number = b10.text(1).or_else(|| b10.text(2)).ok_or_else(|| {
        malformed(format!(
            "B10 at segment {} has neither B1001 nor B1002",
            b10.position
        ))
    })?;
    let references: Vec<(String, String)> = body
        .iter()
        .filter(|s| s.is("L11"))
        .filter_map(|l11| Some((l11.text(2)?, l11.text(1)?)))
        .collect();
    // B1002 is how the shipper knows the shipment; when it only repeats the PRO, a BM/PO/CR
    // reference may still name the order.
    let reference = b10
        .text(2)
        .filter(|id| *id != tracking_number)
        .or_else(|| shipment_reference(&references, &tracking_number));
    let shipment = ShipmentRef {
        carrier: b10.text(3),
        reference,
        tracking_number,
    };
    let source_event_id = source_event_id(set);

    let mut drafts = Vec::new();
    for (index, at7) in body.iter().enumerate() {
        if !at7.is("AT7") {
            continue;
        }
        let following = body.get(index + 1..).unwrap_or_default();
        let location = following
            .iter()
            .take_while(|s| !s.is("AT7") && !s.is("LX"))
            .find(|s| s.is("MS1"))
            .and_then(location_of);
        let position = *next_position;
        *next_position = next_position
            .checked_add(1)
            .ok_or_else(|| malformed("too many AT7 segments in one body"))?;
        let (occurred_at, event) = event_of(set, at7, location, options.local_time_zone, checks)?;
        drafts.push(Draft {
            source_event_id: source_event_id.clone(),
            position,
            occurred_at,
            shipment: shipment.clone(),
            body: event,
        });
    }
    Ok(drafts)
}

/// When the event one AT7 reports happened, and the event.
fn event_of(
    set: &TransactionSet<'_, '_>,
    at7: &Segment<'_>,
    location: Option<Location>,
    local_zone: Tz,
    checks: &mut Checks,
) -> Result<(DateTime<Utc>, EventBody), PartnerError> {
    let mapping = match (at7.text(1), at7.text(3)) {
        (Some(code), _) => map_status(&code, at7.text(2).as_deref()),
        (None, Some(appointment)) => {
            let mut mapping = map_status("", at7.text(4).as_deref());
            mapping.raw_status = Some(match at7.text(4) {
                Some(reason) => format!("{appointment}/{reason}"),
                None => appointment,
            });
            mapping
        }
        (None, None) => {
            return Err(malformed(format!(
                "AT7 at segment {} has neither AT701 nor AT703",
                at7.position
            )));
        }
    };
    let reported = reported_time(at7, local_zone, checks)?;
    let (occurred_at, eta) = match (mapping.milestone, reported) {
        // An estimate's time is the estimate; the news itself is as old as the group.
        (Eta, eta) => (group_time(set, local_zone)?, eta),
        (_, Some(at)) => (at, None),
        (_, None) => {
            checks.failed(
                "AT705",
                format!(
                    "AT7 at segment {} has no date (AT705); the group's date is used",
                    at7.position
                ),
            )?;
            (group_time(set, local_zone)?, None)
        }
    };
    let body = match mapping.milestone {
        Delivered => EventBody::Delivered(Delivery {
            status: ShipmentStatus::Delivered,
            status_detail: Some(mapping.status_detail),
            location,
            message: None,
            pod: ProofOfDelivery {
                // AT7 has no signature element; a signer travels in partner-specific segments
                // (K1 remarks, L11) whose meaning no standard fixes, so none is claimed.
                signed_by: None,
                delivered_at: occurred_at,
                document_url: None,
            },
        }),
        Status(_) | Eta => EventBody::StatusChanged(StatusChange {
            status: mapping.status,
            status_detail: Some(mapping.status_detail),
            raw_status: mapping.raw_status,
            location,
            message: None,
            eta,
        }),
    };
    Ok((occurred_at, body))
}

/// AT705 date, AT706 time (midnight when absent), AT707 time code (`local_zone` for `LT` or
/// none); `None` without a date.
fn reported_time(
    at7: &Segment<'_>,
    local_zone: Tz,
    checks: &mut Checks,
) -> Result<Option<DateTime<Utc>>, PartnerError> {
    if at7.text(5).is_none() {
        return Ok(None);
    }
    let date = datetime::date(at7.element(5)).ok_or_else(|| {
        malformed(format!(
            "AT705 at segment {} is not a CCYYMMDD date",
            at7.position
        ))
    })?;
    let time = match at7.text(6) {
        None => NaiveTime::MIN,
        Some(_) => datetime::time(at7.element(6)).ok_or_else(|| {
            malformed(format!(
                "AT706 at segment {} is not an HHMM[SS] time",
                at7.position
            ))
        })?,
    };
    let code = datetime::time_code(at7.element(7));
    if code == TimeCode::Unknown {
        checks.failed(
            "AT707",
            format!(
                "AT707 at segment {} is not a known time code; the time is read as UTC",
                at7.position
            ),
        )?;
    }
    datetime::to_utc(date, time, code, local_zone)
        .map(Some)
        .ok_or_else(|| malformed(format!("AT7 at segment {} has no UTC time", at7.position)))
}

/// GS04 date and GS05 time. GS carries no time code: it is the sender's clock, read in the
/// partner's `local_time_zone` (UTC unless configured).
fn group_time(set: &TransactionSet<'_, '_>, local_zone: Tz) -> Result<DateTime<Utc>, PartnerError> {
    let gs = set.group;
    let date = datetime::date(gs.element(4));
    let time = datetime::time(gs.element(5));
    match (date, time) {
        (Some(date), Some(time)) => datetime::to_utc(date, time, TimeCode::Local, local_zone),
        _ => None,
    }
    .ok_or_else(|| {
        malformed(format!(
            "GS04/GS05 at segment {} are not a date and time",
            gs.position
        ))
    })
}

/// MS101 city, MS102 state or province, MS103 country.
fn location_of(ms1: &Segment<'_>) -> Option<Location> {
    Location {
        city: ms1.text(1),
        state: ms1.text(2),
        country: ms1.text(3),
        postal_code: None,
    }
    .non_empty()
}
