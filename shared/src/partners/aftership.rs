//! AfterShip Tracking adapter. AfterShip posts `{ts, event, event_id, is_tracking_first_tag,
//! msg}` where `msg` is the whole Tracking; a `tracking_update` becomes one canonical event for
//! the tracking's current tag, placed and timed by its latest checkpoint.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone as _, Utc};
use serde_json::{Value, json};

use super::json_fields::{Fields, malformed, parse_object};
use super::{DeliveryKey, PartnerError, printable_prefix};
use crate::canonical::{
    self, CanonicalEvent, Delivery, EventBody, Location, ProofOfDelivery, ShipmentRef,
    ShipmentStatus, StatusChange,
};
use crate::idempotency::sha256_tag;
use crate::webhook::ReceivedWebhook;

/// The format name used in partner configuration and in `ReceivedWebhook::format`.
pub const FORMAT: &str = "aftership";

/// The event that reports a status change. `edd_revise` (a new delivery estimate) and
/// `tracking_pending_time` (an alert) carry no new status, and are acknowledged unconverted.
pub const TRACKING_UPDATE: &str = "tracking_update";

/// One row of the status table: `tag`, the `subtag` it is limited to (`None`: any), the
/// canonical status, the `status_detail` to use instead of the subtag, and whether the partner's
/// word is kept as `raw_status`.
pub type StatusRow = (
    &'static str,
    Option<&'static str>,
    ShipmentStatus,
    Option<&'static str>,
    bool,
);

/// `msg.tag` / `msg.subtag` → canonical status (partners.md §4 and §9, AfterShip column). The
/// first matching row wins, so subtag rows come before their tag's catch-all. Tags missing
/// here map to `exception`, kept raw.
pub const STATUS_TABLE: [StatusRow; 14] = [
    ("Pending", None, ShipmentStatus::Booked, None, true),
    ("InfoReceived", None, ShipmentStatus::Booked, None, false),
    // The acceptance scan: the carrier has the parcel.
    (
        "InTransit",
        Some("InTransit_002"),
        ShipmentStatus::PickedUp,
        None,
        false,
    ),
    ("InTransit", None, ShipmentStatus::InTransit, None, false),
    (
        "OutForDelivery",
        None,
        ShipmentStatus::OutForDelivery,
        None,
        false,
    ),
    (
        "AvailableForPickup",
        None,
        ShipmentStatus::OutForDelivery,
        Some("ready_for_pickup"),
        true,
    ),
    (
        "AttemptFail",
        None,
        ShipmentStatus::Exception,
        Some("attempt_failed"),
        true,
    ),
    ("Delivered", None, ShipmentStatus::Delivered, None, false),
    // "Delayed (Customs clearance)" and "Delayed (External factors)".
    (
        "Exception",
        Some("Exception_004"),
        ShipmentStatus::Delayed,
        None,
        true,
    ),
    (
        "Exception",
        Some("Exception_005"),
        ShipmentStatus::Delayed,
        None,
        true,
    ),
    // "Returning to sender" and "Returned to sender".
    (
        "Exception",
        Some("Exception_010"),
        ShipmentStatus::Returned,
        None,
        false,
    ),
    (
        "Exception",
        Some("Exception_011"),
        ShipmentStatus::Returned,
        None,
        false,
    ),
    ("Exception", None, ShipmentStatus::Exception, None, true),
    // No tracking information for 30 days.
    ("Expired", None, ShipmentStatus::Exception, None, true),
];

/// An AfterShip tag as the canonical model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusMapping {
    pub status: ShipmentStatus,
    /// Replaces the subtag as `status_detail` when set.
    pub detail: Option<&'static str>,
    /// Whether the partner's word (subtag, else tag) goes into `raw_status`.
    pub keep_raw: bool,
}

/// Maps `msg.tag` and `msg.subtag` (and `msg.return_to_sender`) to a canonical status.
///
/// AfterShip sets `return_to_sender` once any checkpoint says the parcel is going back, and
/// keeps it set: later scans belong to the return leg. A `Delivered` then means back at the
/// sender, which must not close the outbound delivery, so every tag maps to `returned` once the
/// flag is set, the tag kept as `raw_status`.
pub fn map_status(tag: &str, subtag: Option<&str>, return_to_sender: bool) -> StatusMapping {
    let row = STATUS_TABLE
        .iter()
        .find(|(known, only, ..)| *known == tag && only.is_none_or(|only| subtag == Some(only)));
    let mapping = match row {
        Some(&(_, _, status, detail, keep_raw)) => StatusMapping {
            status,
            detail,
            keep_raw,
        },
        None => StatusMapping {
            status: ShipmentStatus::Exception,
            detail: None,
            keep_raw: true,
        },
    };
    if return_to_sender && mapping.status != ShipmentStatus::Returned {
        StatusMapping {
            status: ShipmentStatus::Returned,
            detail: None,
            keep_raw: true,
        }
    } else {
        mapping
    }
}

/// A time as AfterShip writes it: RFC 3339, an offset without a colon, a local date-time with
/// no zone at all, or a bare date. `checkpoint_time` is in the carrier's local time and often
/// has no zone; the local offset cannot be known then, so it is read as UTC (off by the
/// checkpoint's offset, at most a day's hours, and never reordering one tracking's checkpoints
/// within one time zone). A bare date is midnight UTC.
pub fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    if let Ok(time) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(time.with_timezone(&Utc));
    }
    if let Ok(local) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(local.and_utc());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|midnight| midnight.and_utc())
}

const TIME_FORMATS: &str = "a date-time (RFC 3339, local or date-only)";

pub(super) fn inspect(body: &[u8]) -> Result<DeliveryKey, PartnerError> {
    let root = parse_object(FORMAT, body)?;
    let envelope = read_envelope(&Fields::root(FORMAT, &root))?;
    Ok(DeliveryKey {
        delivery_id: Some(envelope.event_id.to_owned()),
        payload_hash: Some(payload_hash(&root)?),
    })
}

pub(super) fn to_canonical(
    webhook: &ReceivedWebhook,
    body: &[u8],
) -> Result<Vec<CanonicalEvent>, PartnerError> {
    let root = parse_object(FORMAT, body)?;
    let envelope = read_envelope(&Fields::root(FORMAT, &root))?;
    let Some(update) = envelope.update else {
        return Err(PartnerError::Unsupported {
            format: FORMAT,
            what: format!("event `{}`", printable_prefix(envelope.event)),
        });
    };

    let mapping = map_status(update.tag, update.subtag, update.return_to_sender);
    let status_detail = mapping.detail.or(update.subtag).map(str::to_owned);
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
            raw_status: mapping
                .keep_raw
                .then(|| update.subtag.unwrap_or(update.tag).to_owned()),
            location: update.location,
            message,
            eta: update.eta,
        })
    };

    let event_id = envelope.event_id;
    Ok(vec![CanonicalEvent {
        schema: canonical::SCHEMA.to_owned(),
        event_id: canonical::event_id(&webhook.partner, event_id, 0),
        partner: webhook.partner.clone(),
        source_event_id: event_id.to_owned(),
        correlation_id: event_id.to_owned(),
        occurred_at: update.occurred_at,
        received_at: webhook.received_at,
        shipment: ShipmentRef {
            tracking_number: update.tracking_number.to_owned(),
            carrier: update.carrier.map(str::to_owned),
            reference: None,
        },
        body,
    }])
}

/// What one event says, however AfterShip re-renders the rest of the Tracking on a retry
/// (`updated_at`, new checkpoints, estimates): the event kind, the shipment and its tag.
fn payload_hash(root: &serde_json::Map<String, Value>) -> Result<String, PartnerError> {
    let msg = root.get("msg");
    let field = |key: &str| msg.and_then(|m| m.get(key)).cloned();
    let stable = json!({
        "event": root.get("event"),
        "tracking_number": field("tracking_number"),
        "slug": field("slug"),
        "tag": field("tag"),
        "subtag": field("subtag"),
    });
    let bytes = serde_json::to_vec(&stable)
        .map_err(|e| malformed(FORMAT, format!("payload cannot be re-serialised ({e})")))?;
    Ok(sha256_tag(&bytes))
}

/// The envelope read and checked once, so that ingress refuses exactly what the transform would.
struct Envelope<'a> {
    event: &'a str,
    event_id: &'a str,
    /// Present for `tracking_update` only.
    update: Option<TrackingUpdate<'a>>,
}

struct TrackingUpdate<'a> {
    tracking_number: &'a str,
    carrier: Option<&'a str>,
    tag: &'a str,
    subtag: Option<&'a str>,
    return_to_sender: bool,
    signed_by: Option<&'a str>,
    occurred_at: DateTime<Utc>,
    location: Option<Location>,
    message: Option<&'a str>,
    eta: Option<DateTime<Utc>>,
}

fn read_envelope<'a>(root: &Fields<'a>) -> Result<Envelope<'a>, PartnerError> {
    let event = root.required_text("event")?;
    let event_id = root.required_text("event_id")?;
    if event != TRACKING_UPDATE {
        return Ok(Envelope {
            event,
            event_id,
            update: None,
        });
    }
    let sent_at = match root.integer("ts")? {
        None => None,
        Some(seconds) => Some(
            Utc.timestamp_opt(seconds, 0)
                .single()
                .ok_or_else(|| root.malformed("`ts` is not a Unix time"))?,
        ),
    };
    let msg = root.required_object("msg")?;
    let tracking_number = msg.required_text("tracking_number")?;
    let tag = msg.required_text("tag")?;
    let subtag = msg.text("subtag")?;
    let carrier = msg.text("slug")?;
    let signed_by = msg.text("signed_by")?;
    let return_to_sender = msg.bool("return_to_sender")?.unwrap_or(false);
    let eta = read_eta(&msg)?;

    // AfterShip lists checkpoints oldest first. Their times are each carrier's local time, so
    // comparing them across time zones could misorder them; the list order is the reliable one.
    let latest = msg.objects("checkpoints")?.pop();
    let (checkpoint_time, location, message) = match &latest {
        Some(checkpoint) => (
            checkpoint.parsed("checkpoint_time", TIME_FORMATS, parse_time)?,
            read_location(checkpoint)?,
            checkpoint.text("message")?,
        ),
        None => (None, None, None),
    };
    let occurred_at = checkpoint_time.or(sent_at).ok_or_else(|| {
        root.malformed(
            "no time for the event: the latest `msg.checkpoints[].checkpoint_time` and `ts` \
             are both missing",
        )
    })?;

    Ok(Envelope {
        event,
        event_id,
        update: Some(TrackingUpdate {
            tracking_number,
            carrier,
            tag,
            subtag,
            return_to_sender,
            signed_by,
            occurred_at,
            location,
            message,
            eta,
        }),
    })
}

/// `expected_delivery` (older webhook versions), else AfterShip's own estimate, which is an
/// object with `estimated_delivery_date` in current versions.
fn read_eta(msg: &Fields<'_>) -> Result<Option<DateTime<Utc>>, PartnerError> {
    if let Some(eta) = msg.parsed("expected_delivery", TIME_FORMATS, parse_time)? {
        return Ok(Some(eta));
    }
    match msg.get("aftership_estimated_delivery_date") {
        Some(Value::String(_)) => msg.parsed(
            "aftership_estimated_delivery_date",
            TIME_FORMATS,
            parse_time,
        ),
        _ => match msg.object("aftership_estimated_delivery_date")? {
            Some(estimate) => estimate.parsed("estimated_delivery_date", TIME_FORMATS, parse_time),
            None => Ok(None),
        },
    }
}

/// Older versions write `zip` and `country_iso3`, current ones `postal_code` and
/// `country_region` (both ISO 3166-1 alpha-3).
fn read_location(checkpoint: &Fields<'_>) -> Result<Option<Location>, PartnerError> {
    let owned = |text: Option<&str>| text.map(str::to_owned);
    let either = |first: &str, second: &str| -> Result<Option<String>, PartnerError> {
        Ok(owned(match checkpoint.text(first)? {
            Some(text) => Some(text),
            None => checkpoint.text(second)?,
        }))
    };
    Ok(Location {
        city: owned(checkpoint.text("city")?),
        state: owned(checkpoint.text("state")?),
        country: either("country_region", "country_iso3")?,
        postal_code: either("postal_code", "zip")?,
    }
    .non_empty())
}

#[cfg(test)]
mod tests;
