//! EasyPost adapter. EasyPost delivers `Event` objects; `tracker.created` and `tracker.updated`
//! carry a Tracker in `result`. Each scan in the tracker's `tracking_details` becomes one
//! canonical event named after the scan (so a scan repeated by later deliveries is the same
//! event), the newest carrying the tracker's estimate and signer; the tracker's current status
//! becomes an event of its own only when no scan says it. Status words map through a table; a
//! word we do not know becomes `exception`, never dropped.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::history::{self, ScanEvents};
use super::{DeliveryKey, PartnerError, Transformed, printable_prefix};
use crate::canonical::{
    self, CanonicalEvent, EventBody, Location, ShipmentRef, ShipmentStatus, StatusChange,
};
use crate::idempotency::sha256_tag;
use crate::webhook::ReceivedWebhook;

/// The format name used in partner configuration and in `ReceivedWebhook::format`.
pub const FORMAT: &str = "easypost";

/// Event descriptions whose `result` is a Tracker: the only ones that become canonical events.
pub const TRACKER_EVENTS: [&str; 2] = ["tracker.created", "tracker.updated"];

/// EasyPost tracker `status` → canonical status, and whether the EasyPost word is kept as
/// `raw_status` because the canonical status loses something (which kind of exception it was,
/// a pickup point rather than the doorstep). Words missing here map to `exception`, kept raw.
const STATUS_TABLE: [(&str, ShipmentStatus, bool); 10] = [
    ("pre_transit", ShipmentStatus::Booked, false),
    ("in_transit", ShipmentStatus::InTransit, false),
    ("out_for_delivery", ShipmentStatus::OutForDelivery, false),
    ("available_for_pickup", ShipmentStatus::OutForDelivery, true),
    ("delivered", ShipmentStatus::Delivered, false),
    ("return_to_sender", ShipmentStatus::Returned, false),
    ("failure", ShipmentStatus::Exception, true),
    ("cancelled", ShipmentStatus::Cancelled, false),
    ("error", ShipmentStatus::Exception, true),
    ("unknown", ShipmentStatus::Exception, true),
];

/// `in_transit` details that mean the carrier has just taken the parcel.
const PICKUP_DETAILS: [&str; 2] = ["received_at_origin_facility", "departed_origin_facility"];

/// `in_transit` details that mean the parcel is late.
const DELAY_DETAILS: [&str; 2] = ["delayed", "weather_delay"];

/// A tracker status as the canonical model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusMapping {
    pub status: ShipmentStatus,
    /// Whether the EasyPost `status` word goes into `raw_status`.
    pub keep_raw: bool,
}

/// Maps a tracker's `status` (refined by its `status_detail` and by the Event's
/// `previous_attributes.status`) to a canonical status.
pub fn map_status(
    status: &str,
    status_detail: Option<&str>,
    previous_status: Option<&str>,
) -> StatusMapping {
    let Some(&(_, mapped, keep_raw)) = STATUS_TABLE.iter().find(|(word, ..)| *word == status)
    else {
        return StatusMapping {
            status: ShipmentStatus::Exception,
            keep_raw: true,
        };
    };
    let status = if mapped == ShipmentStatus::InTransit {
        refine_in_transit(status_detail, previous_status)
    } else {
        mapped
    };
    StatusMapping { status, keep_raw }
}

fn refine_in_transit(status_detail: Option<&str>, previous_status: Option<&str>) -> ShipmentStatus {
    let detail_in = |set: &[&str]| status_detail.is_some_and(|detail| set.contains(&detail));
    // The first move out of pre_transit is the pickup even when the carrier already reports a
    // delay: pickup is the milestone Odoo acts on, and the delay still travels in status_detail.
    if previous_status == Some("pre_transit") || detail_in(&PICKUP_DETAILS) {
        ShipmentStatus::PickedUp
    } else if detail_in(&DELAY_DETAILS) {
        ShipmentStatus::Delayed
    } else {
        ShipmentStatus::InTransit
    }
}

pub(super) fn inspect(body: &[u8], need: super::Need) -> Result<DeliveryKey, PartnerError> {
    let root = parse_body(body)?;
    let event = read_event(&root)?;
    Ok(DeliveryKey {
        delivery_id: Some(event.id.to_owned()),
        payload_hash: need.hash().then(|| payload_hash(&root)).transpose()?,
    })
}

/// The tracker's scans (`tracking_details`), one event each, then its current status when the
/// newest scan does not already say it. A `tracker.created` sent before EasyPost has the
/// tracker (no `result`) has nothing to say yet: no events.
pub(super) fn transform(
    webhook: &ReceivedWebhook,
    body: &[u8],
) -> Result<Transformed, PartnerError> {
    let root = parse_body(body)?;
    let event = read_event(&root)?;
    let update = match event.update {
        Update::Tracker(update) => update,
        Update::NotYet => return Ok(Transformed::default()),
        Update::Other => {
            return Err(PartnerError::Unsupported {
                format: FORMAT,
                what: format!("event `{}`", printable_prefix(event.description)),
            });
        }
    };
    let partner = &webhook.partner;
    let header = |source_event_id: String, occurred_at, body| CanonicalEvent {
        schema: canonical::SCHEMA.to_owned(),
        event_id: canonical::event_id(partner, &source_event_id, 0),
        partner: partner.clone(),
        source_event_id,
        correlation_id: event.id.to_owned(),
        occurred_at,
        received_at: webhook.received_at,
        shipment: ShipmentRef {
            tracking_number: update.tracking_code.to_owned(),
            carrier: update.carrier.map(str::to_owned),
            reference: None,
        },
        body,
    };

    let mut scans = ScanEvents::new(partner, update.tracking_code);
    let mut previous: Option<&str> = None;
    for scan in &update.scans {
        let mapping = map_status(scan.reading.status, scan.reading.status_detail, previous);
        previous = Some(scan.reading.status);
        let source = history::source_event_id(update.tracking_code, &scan.key);
        scans.push(header(
            source,
            scan.reading.at,
            event_body(mapping, &scan.reading, None, None),
        ));
    }

    // The newest scan is the tracker's current state when it has the tracker's status: it gets
    // what only the current state knows (the estimate, the signer). Otherwise the status comes
    // as an event of its own, named after the delivery as before histories were read.
    let newest_says_current = update
        .scans
        .last()
        .is_some_and(|scan| scan.reading.status == update.current.status);
    let mut current = None;
    if newest_says_current {
        if let Some(newest) = scans.newest_mut() {
            enrich(&mut newest.body, update.eta, update.signed_by);
        }
    } else {
        let mapping = map_status(
            update.current.status,
            update.current.status_detail,
            update.previous_status,
        );
        current = Some(header(
            event.id.to_owned(),
            update.current.at,
            event_body(mapping, &update.current, update.eta, update.signed_by),
        ));
    }
    Ok(scans.finish(current))
}

/// A status change, or a delivery with its proof when the status is delivered.
fn event_body(
    mapping: StatusMapping,
    reading: &Reading<'_>,
    eta: Option<DateTime<Utc>>,
    signed_by: Option<&str>,
) -> EventBody {
    let change = StatusChange {
        status: mapping.status,
        status_detail: reading.status_detail.map(str::to_owned),
        raw_status: mapping.keep_raw.then(|| reading.status.to_owned()),
        location: reading.location.clone(),
        message: reading.message.map(str::to_owned),
        eta,
    };
    EventBody::milestone(change, reading.at, signed_by.map(str::to_owned))
}

/// The current state's estimate and signer, on the scan that stands for it.
fn enrich(body: &mut EventBody, eta: Option<DateTime<Utc>>, signed_by: Option<&str>) {
    match body {
        EventBody::StatusChanged(change) => change.eta = eta,
        EventBody::Delivered(delivery) => delivery.pod.signed_by = signed_by.map(str::to_owned),
        _ => {}
    }
}

/// What must stay the same across EasyPost's retries of one Event. Retries rewrite the
/// envelope's `pending_urls`, `completed_urls`, `status` and `updated_at`, so those are left out.
#[derive(Serialize)]
struct StablePart<'a> {
    description: Option<&'a Value>,
    result: Option<&'a Value>,
}

fn payload_hash(root: &Map<String, Value>) -> Result<String, PartnerError> {
    let stable = StablePart {
        description: root.get("description"),
        result: root.get("result"),
    };
    // Re-serialising parsed values sorts object keys, so the hash ignores key order and spacing.
    let bytes = serde_json::to_vec(&stable)
        .map_err(|e| malformed(format!("payload cannot be re-serialised ({e})")))?;
    Ok(sha256_tag(&bytes))
}

fn malformed(reason: impl Into<String>) -> PartnerError {
    PartnerError::Malformed {
        format: FORMAT,
        reason: reason.into(),
    }
}

fn parse_body(body: &[u8]) -> Result<Map<String, Value>, PartnerError> {
    // serde_json's messages give position and kind only, never the offending text.
    let value: Value = super::strict_json::parse(body)
        .map_err(|e| malformed(format!("body is not JSON ({e})")))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(malformed("body is not a JSON object")),
    }
}

/// An Event read and checked once, so that ingress refuses exactly what the transform would.
struct Event<'a> {
    id: &'a str,
    description: &'a str,
    update: Update<'a>,
}

enum Update<'a> {
    /// A tracker event with its Tracker.
    Tracker(Box<TrackerUpdate<'a>>),
    /// A tracker event sent before EasyPost had the Tracker: `result` is absent.
    NotYet,
    /// Not a tracker event.
    Other,
}

/// The tracker's current state and its scans.
struct TrackerUpdate<'a> {
    tracking_code: &'a str,
    carrier: Option<&'a str>,
    /// The tracker's status, timed and placed by its newest scan.
    current: Reading<'a>,
    previous_status: Option<&'a str>,
    signed_by: Option<&'a str>,
    eta: Option<DateTime<Utc>>,
    /// `tracking_details` by time, oldest first, without the untimed entries.
    scans: Vec<Scan<'a>>,
}

/// A status at a time and place: the tracker's, or one scan's.
struct Reading<'a> {
    status: &'a str,
    status_detail: Option<&'a str>,
    at: DateTime<Utc>,
    location: Option<Location>,
    message: Option<&'a str>,
}

/// One entry of `tracking_details`.
struct Scan<'a> {
    /// What names the scan in every delivery that repeats it (EasyPost gives scans no id).
    key: String,
    reading: Reading<'a>,
}

fn read_event(root: &Map<String, Value>) -> Result<Event<'_>, PartnerError> {
    let event = Obj::root(root);
    let id = event.required_text("id")?;
    let description = event.required_text("description")?;
    if !TRACKER_EVENTS.contains(&description) {
        // Other objects' envelopes are not ours to judge beyond what identifies them.
        return Ok(Event {
            id,
            description,
            update: Update::Other,
        });
    }

    let previous_status = match event.object("previous_attributes")? {
        Some(previous) => previous.text("status")?,
        None => None,
    };
    let event_updated_at = event.time("updated_at")?;
    let event_created_at = event.time("created_at")?;
    let Some(tracker) = event.object("result")? else {
        // EasyPost's `tracker.created` can come before the tracker exists (partners.md §2).
        return Ok(Event {
            id,
            description,
            update: Update::NotYet,
        });
    };

    let tracking_code = tracker.required_text("tracking_code")?;
    let status = tracker.required_text("status")?;
    let status_detail = tracker.text("status_detail")?;
    let carrier = tracker.text("carrier")?;
    let signed_by = tracker.text("signed_by")?;
    let eta = tracker.estimate_time("est_delivery_date");
    let tracker_updated_at = tracker.time("updated_at")?;
    let scans = read_scans(&tracker)?;
    let newest_reading = scans.last().map(|scan| &scan.reading);

    let at = newest_reading
        .map(|reading| reading.at)
        .or(tracker_updated_at)
        .or(event_updated_at)
        .or(event_created_at)
        .ok_or_else(|| {
            malformed(
                "no time for the event: `result.tracking_details[].datetime`, \
                 `result.updated_at`, `updated_at` and `created_at` are all missing",
            )
        })?;
    let (location, message) = newest_reading
        .map(|reading| (reading.location.clone(), reading.message))
        .unwrap_or_default();

    Ok(Event {
        id,
        description,
        update: Update::Tracker(Box::new(TrackerUpdate {
            tracking_code,
            carrier,
            current: Reading {
                status,
                status_detail,
                at,
                location,
                message,
            },
            previous_status,
            signed_by,
            eta,
            scans,
        })),
    })
}

/// The scans of `tracking_details`, by time: EasyPost lists them oldest first, and of equal
/// times the later listed stays later. Entries without a time cannot be placed and are skipped.
fn read_scans<'a>(tracker: &Obj<'a>) -> Result<Vec<Scan<'a>>, PartnerError> {
    let list_path = tracker.path_of("tracking_details");
    let mut scans = Vec::new();
    for (index, item) in tracker.array("tracking_details")?.iter().enumerate() {
        let path = format!("{list_path}[{index}]");
        let Value::Object(map) = item else {
            return Err(malformed(format!("`{path}` is not an object")));
        };
        let detail = Obj { map, path };
        let at = detail.time("datetime")?;
        let message = detail.text("message")?;
        let location = match detail.object("tracking_location")? {
            Some(place) => read_location(&place)?,
            None => None,
        };
        let status = detail.text("status")?;
        let status_detail = detail.text("status_detail")?;
        let carrier_code = detail.text("carrier_code")?;
        let Some(at) = at else { continue };
        // A scan without a status word is still a scan: it maps to `exception`, kept raw.
        let status = status.unwrap_or("unknown");
        let [city, state, country, zip] = history::location_parts(location.as_ref());
        let key = history::scan_key(
            at,
            &[
                Some(status),
                status_detail,
                carrier_code,
                message,
                city,
                state,
                country,
                zip,
            ],
        );
        scans.push(Scan {
            key,
            reading: Reading {
                status,
                status_detail,
                at,
                location,
                message,
            },
        });
    }
    scans.sort_by_key(|scan| scan.reading.at);
    Ok(scans)
}

fn read_location(place: &Obj<'_>) -> Result<Option<Location>, PartnerError> {
    let owned = |text: Option<&str>| text.map(str::to_owned);
    Ok(Location {
        city: owned(place.text("city")?),
        state: owned(place.text("state")?),
        country: owned(place.text("country")?),
        postal_code: owned(place.text("zip")?),
    }
    .non_empty())
}

/// A JSON object and its path in the body, so that every error names the exact field.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    fn root(map: &'a Map<String, Value>) -> Self {
        Obj {
            map,
            path: String::new(),
        }
    }

    fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// Missing and `null` both mean absent: EasyPost writes `null` where it has no value.
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    /// A string field; blank counts as absent. Any other type means the format has changed
    /// under us, which is reported rather than guessed around.
    fn text(&self, key: &str) -> Result<Option<&'a str>, PartnerError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.trim()).filter(|text| !text.is_empty())),
            Some(_) => Err(malformed(format!(
                "`{}` is not a string",
                self.path_of(key)
            ))),
        }
    }

    fn required_text(&self, key: &str) -> Result<&'a str, PartnerError> {
        self.text(key)?
            .ok_or_else(|| malformed(format!("missing `{}`", self.path_of(key))))
    }

    fn time(&self, key: &str) -> Result<Option<DateTime<Utc>>, PartnerError> {
        let Some(text) = self.text(key)? else {
            return Ok(None);
        };
        DateTime::parse_from_rfc3339(text)
            .map(|time| Some(time.with_timezone(&Utc)))
            .map_err(|_| {
                malformed(format!(
                    "`{}` is not an RFC 3339 date-time",
                    self.path_of(key)
                ))
            })
    }

    /// An optional estimate: read leniently, dropped with a warning when unreadable (the
    /// milestone never fails for it).
    fn estimate_time(&self, key: &str) -> Option<DateTime<Utc>> {
        let value = self.get(key)?;
        let read = value.as_str().and_then(super::json_fields::lenient_time);
        if read.is_none() {
            tracing::warn!(field = %self.path_of(key), "unreadable EasyPost estimate ignored");
        }
        read
    }

    fn object(&self, key: &str) -> Result<Option<Obj<'a>>, PartnerError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Obj {
                map,
                path: self.path_of(key),
            })),
            Some(_) => Err(malformed(format!(
                "`{}` is not an object",
                self.path_of(key)
            ))),
        }
    }

    fn array(&self, key: &str) -> Result<&'a [Value], PartnerError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(malformed(format!(
                "`{}` is not an array",
                self.path_of(key)
            ))),
        }
    }
}

#[cfg(test)]
mod tests;
