//! EasyPost adapter. EasyPost delivers `Event` objects; `tracker.created` and `tracker.updated`
//! carry a Tracker in `result`, and each becomes one canonical event for the tracker's current
//! status. Status words map through a table; a word we do not know becomes `exception`, never
//! dropped.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{DeliveryKey, PartnerError, printable_prefix};
use crate::canonical::{
    self, CanonicalEvent, Delivery, EventBody, Location, ProofOfDelivery, ShipmentRef,
    ShipmentStatus, StatusChange,
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

pub(super) fn inspect(body: &[u8]) -> Result<DeliveryKey, PartnerError> {
    let root = parse_body(body)?;
    let event = read_event(&root)?;
    Ok(DeliveryKey {
        delivery_id: Some(event.id.to_owned()),
        payload_hash: Some(payload_hash(&root)?),
    })
}

pub(super) fn to_canonical(
    webhook: &ReceivedWebhook,
    body: &[u8],
) -> Result<Vec<CanonicalEvent>, PartnerError> {
    let root = parse_body(body)?;
    let event = read_event(&root)?;
    let Some(update) = event.update else {
        return Err(PartnerError::Unsupported {
            format: FORMAT,
            what: format!("event `{}`", printable_prefix(event.description)),
        });
    };

    let mapping = map_status(update.status, update.status_detail, update.previous_status);
    let status_detail = update.status_detail.map(str::to_owned);
    let message = update.message.map(str::to_owned);
    let body = if mapping.status == ShipmentStatus::Delivered {
        EventBody::Delivered(Delivery {
            status: ShipmentStatus::Delivered,
            status_detail,
            location: update.location,
            message,
            pod: ProofOfDelivery {
                signed_by: update.signed_by.map(str::to_owned),
                delivered_at: update.occurred_at,
                document_url: None,
            },
        })
    } else {
        EventBody::StatusChanged(StatusChange {
            status: mapping.status,
            status_detail,
            raw_status: mapping.keep_raw.then(|| update.status.to_owned()),
            location: update.location,
            message,
            eta: update.eta,
        })
    };

    Ok(vec![CanonicalEvent {
        schema: canonical::SCHEMA.to_owned(),
        event_id: canonical::event_id(&webhook.partner, event.id, 0),
        partner: webhook.partner.clone(),
        source_event_id: event.id.to_owned(),
        correlation_id: event.id.to_owned(),
        occurred_at: update.occurred_at,
        received_at: webhook.received_at,
        shipment: ShipmentRef {
            tracking_number: update.tracking_code.to_owned(),
            carrier: update.carrier.map(str::to_owned),
            reference: None,
        },
        body,
    }])
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
    let value: Value =
        serde_json::from_slice(body).map_err(|e| malformed(format!("body is not JSON ({e})")))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(malformed("body is not a JSON object")),
    }
}

/// An Event read and checked once, so that ingress refuses exactly what the transform would.
struct Event<'a> {
    id: &'a str,
    description: &'a str,
    /// Present for tracker events only.
    update: Option<TrackerUpdate<'a>>,
}

/// The tracker's current state, with the time and place of its newest scan.
struct TrackerUpdate<'a> {
    tracking_code: &'a str,
    carrier: Option<&'a str>,
    status: &'a str,
    status_detail: Option<&'a str>,
    previous_status: Option<&'a str>,
    signed_by: Option<&'a str>,
    eta: Option<DateTime<Utc>>,
    occurred_at: DateTime<Utc>,
    location: Option<Location>,
    message: Option<&'a str>,
}

/// The newest entry of `tracking_details`.
struct Scan<'a> {
    at: DateTime<Utc>,
    message: Option<&'a str>,
    location: Option<Location>,
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
            update: None,
        });
    }

    let previous_status = match event.object("previous_attributes")? {
        Some(previous) => previous.text("status")?,
        None => None,
    };
    let event_updated_at = event.time("updated_at")?;
    let event_created_at = event.time("created_at")?;
    let tracker = event
        .object("result")?
        .ok_or_else(|| malformed("missing `result` (the Tracker)"))?;

    let tracking_code = tracker.required_text("tracking_code")?;
    let status = tracker.required_text("status")?;
    let status_detail = tracker.text("status_detail")?;
    let carrier = tracker.text("carrier")?;
    let signed_by = tracker.text("signed_by")?;
    let eta = tracker.time("est_delivery_date")?;
    let tracker_updated_at = tracker.time("updated_at")?;
    let newest = newest_scan(&tracker)?;

    let occurred_at = newest
        .as_ref()
        .map(|scan| scan.at)
        .or(tracker_updated_at)
        .or(event_updated_at)
        .or(event_created_at)
        .ok_or_else(|| {
            malformed(
                "no time for the event: `result.tracking_details[].datetime`, \
                 `result.updated_at`, `updated_at` and `created_at` are all missing",
            )
        })?;
    let (location, message) = newest
        .map(|scan| (scan.location, scan.message))
        .unwrap_or_default();

    Ok(Event {
        id,
        description,
        update: Some(TrackerUpdate {
            tracking_code,
            carrier,
            status,
            status_detail,
            previous_status,
            signed_by,
            eta,
            occurred_at,
            location,
            message,
        }),
    })
}

/// The scan with the latest `datetime`; of equal times the later entry wins, as EasyPost lists
/// scans oldest first. Entries without a time cannot be placed and are skipped.
fn newest_scan<'a>(tracker: &Obj<'a>) -> Result<Option<Scan<'a>>, PartnerError> {
    let list_path = tracker.path_of("tracking_details");
    let mut newest: Option<Scan<'a>> = None;
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
        let Some(at) = at else { continue };
        if newest.as_ref().is_none_or(|current| at >= current.at) {
            newest = Some(Scan {
                at,
                message,
                location,
            });
        }
    }
    Ok(newest)
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
