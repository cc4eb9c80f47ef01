//! Shippo adapter. Shippo posts `{event, test, data}`; for `track_updated`, `data` is a Track.
//! Each of its scans (`tracking_history` and the current `tracking_status`) becomes one
//! canonical event, named after what the scan says so that a scan repeated by later deliveries
//! is the same event. Shippo sends no event id, so a delivery is named by its tracking number
//! and current scan (partners.md §0.4).

use chrono::{DateTime, SecondsFormat, SubsecRound as _, Utc};
use serde_json::Value;

use super::history::{self, ScanEvents};
use super::json_fields::{Fields, parse_object};
use super::{DeliveryKey, PartnerError, Transformed, printable_prefix};
use crate::canonical::{
    self, CanonicalEvent, EventBody, Location, ShipmentRef, ShipmentStatus, StatusChange,
};
use crate::idempotency::sha256_tag;
use crate::webhook::ReceivedWebhook;

/// The format name used in partner configuration and in `ReceivedWebhook::format`.
pub const FORMAT: &str = "shippo";

/// The only event whose `data` is a Track, and so the only one that becomes canonical events.
pub const TRACK_UPDATED: &str = "track_updated";

/// `tracking_status.status` → canonical status, and whether the Shippo word is kept as
/// `raw_status` because the canonical status loses something. Words missing here map to
/// `exception`, kept raw.
///
/// Real data sends label-created scans as `UNKNOWN` (partners.md §3), but `UNKNOWN` is also what
/// Shippo says about scans it could not classify later on. Telling the two apart would mean
/// reading the free-text `status_details`, so `UNKNOWN` stays an exception a person looks at;
/// the text travels in `message`.
pub const STATUS_TABLE: [(&str, ShipmentStatus, bool); 6] = [
    ("PRE_TRANSIT", ShipmentStatus::Booked, false),
    ("TRANSIT", ShipmentStatus::InTransit, false),
    ("DELIVERED", ShipmentStatus::Delivered, false),
    ("RETURNED", ShipmentStatus::Returned, false),
    ("FAILURE", ShipmentStatus::Exception, true),
    ("UNKNOWN", ShipmentStatus::Exception, true),
];

/// `tracking_status.substatus.code` → canonical status (partners.md §9, Shippo column). More
/// precise than `status`, so it wins when known; an unknown code falls back to `status`. The
/// code always travels as `status_detail`.
pub const SUBSTATUS_TABLE: [(&str, ShipmentStatus, bool); 27] = [
    ("information_received", ShipmentStatus::Booked, false),
    ("package_accepted", ShipmentStatus::PickedUp, false),
    ("package_arrived", ShipmentStatus::InTransit, false),
    ("package_departed", ShipmentStatus::InTransit, false),
    ("package_processed", ShipmentStatus::InTransit, false),
    ("package_processing", ShipmentStatus::InTransit, false),
    ("package_forwarded", ShipmentStatus::InTransit, false),
    ("delivery_scheduled", ShipmentStatus::InTransit, false),
    // Real data (2016, before substatus existed) sends "out for delivery" as plain TRANSIT.
    ("out_for_delivery", ShipmentStatus::OutForDelivery, false),
    // Waiting at a pickup point rather than on the van: kept raw, as EasyPost's
    // `available_for_pickup` is.
    ("pickup_available", ShipmentStatus::OutForDelivery, true),
    ("delayed", ShipmentStatus::Delayed, false),
    ("delivery_rescheduled", ShipmentStatus::Delayed, false),
    // Failed attempts and holds: exceptions, the kind in `status_detail`.
    ("delivery_attempted", ShipmentStatus::Exception, true),
    ("notice_left", ShipmentStatus::Exception, true),
    ("location_inaccessible", ShipmentStatus::Exception, true),
    ("address_issue", ShipmentStatus::Exception, true),
    ("reschedule_delivery", ShipmentStatus::Exception, true),
    ("contact_carrier", ShipmentStatus::Exception, true),
    ("package_held", ShipmentStatus::Exception, true),
    ("package_damaged", ShipmentStatus::Exception, true),
    ("delivered", ShipmentStatus::Delivered, false),
    ("return_to_sender", ShipmentStatus::Returned, false),
    // Listed under RETURNED, but nobody collected it yet: closer to a failed attempt (§9).
    ("package_unclaimed", ShipmentStatus::Exception, true),
    ("package_undeliverable", ShipmentStatus::Exception, true),
    ("package_disposed", ShipmentStatus::Exception, true),
    ("package_lost", ShipmentStatus::Exception, true),
    ("other", ShipmentStatus::Exception, true),
];

/// A Shippo status as the canonical model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusMapping {
    pub status: ShipmentStatus,
    /// Whether the Shippo `status` word goes into `raw_status`.
    pub keep_raw: bool,
}

/// Maps `tracking_status.status` and `substatus.code` to a canonical status.
pub fn map_status(status: &str, substatus: Option<&str>) -> StatusMapping {
    let row = |table: &[(&str, ShipmentStatus, bool)], word: &str| {
        table
            .iter()
            .find(|(known, ..)| *known == word)
            .map(|&(_, status, keep_raw)| StatusMapping { status, keep_raw })
    };
    substatus
        .and_then(|code| row(&SUBSTATUS_TABLE, code))
        .or_else(|| row(&STATUS_TABLE, status))
        .unwrap_or(StatusMapping {
            status: ShipmentStatus::Exception,
            keep_raw: true,
        })
}

pub(super) fn inspect(body: &[u8], need: super::Need) -> Result<DeliveryKey, PartnerError> {
    let root = parse_object(FORMAT, body)?;
    let envelope = read_envelope(&Fields::root(FORMAT, &root))?;
    Ok(match envelope.track {
        Some(track) => DeliveryKey {
            delivery_id: Some(track.delivery_id()),
            payload_hash: need
                .hash()
                .then(|| payload_hash(track.tracking_status))
                .transpose()?,
        },
        // Other events carry no id of their own: ingress names them by their bytes.
        None => DeliveryKey {
            delivery_id: None,
            payload_hash: None,
        },
    })
}

/// Every scan of the Track (`tracking_history`, then `tracking_status`) becomes one event named
/// after what the scan says, so the current status and the same scan in the history, in this
/// delivery or a later one, are one event. The newest carries the Track's estimate.
pub(super) fn transform(
    webhook: &ReceivedWebhook,
    body: &[u8],
) -> Result<Transformed, PartnerError> {
    let root = parse_object(FORMAT, body)?;
    let envelope = read_envelope(&Fields::root(FORMAT, &root))?;
    let Some(track) = envelope.track else {
        return Err(PartnerError::Unsupported {
            format: FORMAT,
            what: format!("event `{}`", printable_prefix(envelope.event)),
        });
    };

    let partner = &webhook.partner;
    let correlation_id = track.delivery_id();
    let mut scans = ScanEvents::new(partner, track.tracking_number);
    for scan in track.history.iter().chain([&track.current]) {
        let source_event_id = history::source_event_id(track.tracking_number, &scan.key());
        scans.push(CanonicalEvent {
            schema: canonical::SCHEMA.to_owned(),
            event_id: canonical::event_id(partner, &source_event_id, 0),
            partner: partner.clone(),
            source_event_id,
            correlation_id: correlation_id.clone(),
            occurred_at: scan.occurred_at,
            received_at: webhook.received_at,
            shipment: ShipmentRef {
                tracking_number: track.tracking_number.to_owned(),
                carrier: track.carrier.map(str::to_owned),
                reference: None,
            },
            body: scan.event_body(),
        });
    }
    if let Some(EventBody::StatusChanged(change)) = scans.newest_mut().map(|event| &mut event.body)
    {
        change.eta = track.eta;
    }
    Ok(scans.finish(None))
}

/// A scan is the same scan on every retry; hashing it (keys sorted by re-serialising) lets
/// ingress refuse a reused delivery id that names a different scan.
fn payload_hash(tracking_status: &Value) -> Result<String, PartnerError> {
    let bytes = serde_json::to_vec(tracking_status).map_err(|e| {
        super::json_fields::malformed(
            FORMAT,
            format!("`data.tracking_status` cannot be re-serialised ({e})"),
        )
    })?;
    Ok(sha256_tag(&bytes))
}

/// The envelope read and checked once, so that ingress refuses exactly what the transform would.
struct Envelope<'a> {
    event: &'a str,
    /// Present for `track_updated` only.
    track: Option<TrackUpdate<'a>>,
}

/// The Track: its current status and its history.
struct TrackUpdate<'a> {
    tracking_number: &'a str,
    carrier: Option<&'a str>,
    /// `tracking_status`, the newest scan.
    current: Scan<'a>,
    /// `tracking_history` (oldest first) without the entries that carry no time.
    history: Vec<Scan<'a>>,
    eta: Option<DateTime<Utc>>,
    tracking_status: &'a Value,
}

impl TrackUpdate<'_> {
    /// `<tracking number>#<scan id>`, or the scan time when Shippo gives no scan id.
    fn delivery_id(&self) -> String {
        let scan = match self.current.scan_id {
            Some(id) => id.to_owned(),
            None => self
                .current
                .occurred_at
                .to_rfc3339_opts(SecondsFormat::AutoSi, true),
        };
        format!("{}#{scan}", self.tracking_number)
    }
}

/// One TrackingStatus: the current one or a history entry.
struct Scan<'a> {
    status: &'a str,
    substatus: Option<&'a str>,
    /// Shippo's id of the scan, when given.
    scan_id: Option<&'a str>,
    occurred_at: DateTime<Utc>,
    location: Option<Location>,
    message: Option<&'a str>,
}

impl Scan<'_> {
    /// What names the scan in every delivery. Not Shippo's `object_id`: the same scan has one
    /// id as `tracking_status` and another in `tracking_history`, its time a few milliseconds
    /// apart (fixtures/partners/shippo-track-updated-test-webhook-delivered.json). So: the time
    /// to the second, the status words and the place; not the free text, which Shippo rewrites.
    fn key(&self) -> String {
        let [city, state, country, zip] = history::location_parts(self.location.as_ref());
        history::scan_key(
            self.occurred_at.trunc_subsecs(0),
            &[Some(self.status), self.substatus, city, state, country, zip],
        )
    }

    fn event_body(&self) -> EventBody {
        let mapping = map_status(self.status, self.substatus);
        let change = StatusChange {
            status: mapping.status,
            status_detail: self.substatus.map(str::to_owned),
            raw_status: mapping.keep_raw.then(|| self.status.to_owned()),
            location: self.location.clone(),
            message: self.message.map(str::to_owned),
            eta: None,
        };
        // Shippo's Track has no signer.
        EventBody::milestone(change, self.occurred_at, None)
    }
}

fn read_envelope<'a>(root: &Fields<'a>) -> Result<Envelope<'a>, PartnerError> {
    let event = root.required_text("event")?;
    if event != TRACK_UPDATED {
        // Transactions and batches are not ours to judge beyond the event name.
        return Ok(Envelope { event, track: None });
    }
    let data = root.required_object("data")?;
    let tracking_number = data.required_text("tracking_number")?;
    // The 2020 sample has `data.carrier: null` and the carrier at the top level.
    let carrier = match data.text("carrier")? {
        Some(carrier) => Some(carrier),
        None => root.text("carrier")?,
    };
    // Shippo's documented test-mode payloads send `eta` without a zone.
    let eta = data.estimate_time("eta");
    let tracking_status = data
        .get("tracking_status")
        .ok_or_else(|| data.malformed("missing `data.tracking_status`"))?;
    let current =
        read_scan(&data.required_object("tracking_status")?, false)?.ok_or_else(|| {
            data.malformed(
                "no time for the scan: `data.tracking_status.status_date`, \
             `object_updated` and `object_created` are all missing",
            )
        })?;
    let mut history = Vec::new();
    for entry in data.objects("tracking_history")? {
        // An entry without a time cannot be placed among the others.
        if let Some(scan) = read_scan(&entry, true)? {
            history.push(scan);
        }
    }
    Ok(Envelope {
        event,
        track: Some(TrackUpdate {
            tracking_number,
            carrier,
            current,
            history,
            eta,
            tracking_status,
        }),
    })
}

/// A TrackingStatus, or `None` when it has no time at all. A history entry without a status
/// word is still a scan (`UNKNOWN`, which becomes an exception); the current status needs one.
fn read_scan<'a>(scan: &Fields<'a>, in_history: bool) -> Result<Option<Scan<'a>>, PartnerError> {
    let status = match scan.text("status")? {
        Some(status) => status,
        None if in_history => "UNKNOWN",
        None => return Err(scan.malformed(format!("missing `{}`", scan.path_of("status")))),
    };
    let substatus = match scan.object("substatus")? {
        Some(substatus) => substatus.text("code")?,
        None => None,
    };
    let occurred_at = scan
        .rfc3339("status_date")?
        .or(scan.rfc3339("object_updated")?)
        .or(scan.rfc3339("object_created")?);
    let location = match scan.object("location")? {
        Some(place) => read_location(&place)?,
        None => None,
    };
    let scan_id = scan.text("object_id")?;
    let message = scan.text("status_details")?;
    Ok(occurred_at.map(|occurred_at| Scan {
        status,
        substatus,
        scan_id,
        occurred_at,
        location,
        message,
    }))
}

fn read_location(place: &Fields<'_>) -> Result<Option<Location>, PartnerError> {
    let owned = |text: Option<&str>| text.map(str::to_owned);
    Ok(Location {
        city: owned(place.text("city")?),
        state: owned(place.text("state")?),
        country: owned(place.text("country")?),
        postal_code: owned(place.text("zip")?),
    }
    .non_empty())
}

#[cfg(test)]
mod tests;
