//! AfterShip Tracking adapter. AfterShip posts `{ts, event, event_id, is_tracking_first_tag,
//! msg}` where `msg` is the whole Tracking. For a `tracking_update`, each checkpoint becomes one
//! canonical event named after the checkpoint (so one repeated by later deliveries is the same
//! event), and the tracking's current tag becomes an event of its own only when the latest
//! checkpoint does not say it.

use chrono::{DateTime, TimeZone as _, Utc};
use serde_json::{Value, json};

use super::history::{self, ScanEvents};
use super::json_fields::{Fields, malformed, parse_object};
use super::{DeliveryKey, PartnerError, Transformed, printable_prefix};
use crate::canonical::{
    self, CanonicalEvent, EventBody, Location, ShipmentRef, ShipmentStatus, StatusChange,
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

/// A time as AfterShip writes it (see `json_fields::lenient_time`).
pub use super::json_fields::lenient_time as parse_time;

const TIME_FORMATS: &str = "a date-time (RFC 3339, local or date-only)";

pub(super) fn inspect(body: &[u8], need: super::Need) -> Result<DeliveryKey, PartnerError> {
    let root = parse_object(FORMAT, body)?;
    let envelope = read_envelope(&Fields::root(FORMAT, &root))?;
    Ok(DeliveryKey {
        delivery_id: Some(envelope.event_id.to_owned()),
        payload_hash: need.hash().then(|| payload_hash(&root)).transpose()?,
    })
}

/// Each checkpoint becomes one event named after the checkpoint (so a checkpoint repeated by
/// later deliveries is the same event), the newest carrying the tracking's estimate and signer;
/// the tracking's tag becomes an event of its own only when the newest checkpoint does not say
/// it.
pub(super) fn transform(
    webhook: &ReceivedWebhook,
    body: &[u8],
) -> Result<Transformed, PartnerError> {
    let root = parse_object(FORMAT, body)?;
    let envelope = read_envelope(&Fields::root(FORMAT, &root))?;
    let Some(update) = envelope.update else {
        return Err(PartnerError::Unsupported {
            format: FORMAT,
            what: format!("event `{}`", printable_prefix(envelope.event)),
        });
    };
    let partner = &webhook.partner;
    let header = |source_event_id: String, occurred_at, body| CanonicalEvent {
        schema: canonical::SCHEMA.to_owned(),
        event_id: canonical::event_id(partner, &source_event_id, 0),
        partner: partner.clone(),
        source_event_id,
        correlation_id: envelope.event_id.to_owned(),
        occurred_at,
        received_at: webhook.received_at,
        shipment: ShipmentRef {
            tracking_number: update.tracking_number.to_owned(),
            carrier: update.carrier.map(str::to_owned),
            reference: None,
        },
        body,
    };

    let mut scans = ScanEvents::new(partner, update.tracking_number);
    // Once a checkpoint says the parcel is going back, the later ones belong to the return leg.
    let mut returning = false;
    for checkpoint in &update.checkpoints {
        returning |= checkpoint
            .reading
            .subtag
            .is_some_and(|subtag| RETURN_SUBTAGS.contains(&subtag));
        let source = history::source_event_id(update.tracking_number, &checkpoint.key);
        scans.push(header(
            source,
            checkpoint.reading.at,
            event_body(&checkpoint.reading, returning, None, None),
        ));
    }

    // The latest checkpoint says the tracking's status when it has the same tag and subtag and
    // both agree on whether the parcel is on its way back.
    let newest_says_current = returning == update.return_to_sender
        && update.checkpoints.last().is_some_and(|newest| {
            newest.reading.tag == update.current.tag
                && newest.reading.subtag == update.current.subtag
        });
    let mut current = None;
    if newest_says_current {
        if let Some(newest) = scans.newest_mut() {
            match &mut newest.body {
                EventBody::StatusChanged(change) => change.eta = update.eta,
                EventBody::Delivered(delivery) => {
                    delivery.pod.signed_by = update.signed_by.map(str::to_owned);
                }
                _ => {}
            }
        }
    } else {
        current = Some(header(
            envelope.event_id.to_owned(),
            update.current.at,
            event_body(
                &update.current,
                update.return_to_sender,
                update.eta,
                update.signed_by,
            ),
        ));
    }
    Ok(scans.finish(current))
}

/// Subtags that start the return leg: "Returning to sender", "Returned to sender".
const RETURN_SUBTAGS: [&str; 2] = ["Exception_010", "Exception_011"];

/// A status change, or a delivery with its proof when the tag says delivered.
fn event_body(
    reading: &Reading<'_>,
    return_to_sender: bool,
    eta: Option<DateTime<Utc>>,
    signed_by: Option<&str>,
) -> EventBody {
    let mapping = map_status(reading.tag, reading.subtag, return_to_sender);
    let change = StatusChange {
        status: mapping.status,
        status_detail: mapping.detail.or(reading.subtag).map(str::to_owned),
        raw_status: mapping
            .keep_raw
            .then(|| reading.subtag.unwrap_or(reading.tag).to_owned()),
        location: reading.location.clone(),
        message: reading.message.map(str::to_owned),
        eta,
    };
    EventBody::milestone(change, reading.at, signed_by.map(str::to_owned))
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
    /// The tracking's tag, timed and placed by its latest checkpoint.
    current: Reading<'a>,
    return_to_sender: bool,
    signed_by: Option<&'a str>,
    eta: Option<DateTime<Utc>>,
    /// `checkpoints` in AfterShip's order (oldest first), without the untimed ones.
    checkpoints: Vec<Checkpoint<'a>>,
}

/// A tag at a time and place: the tracking's, or one checkpoint's.
struct Reading<'a> {
    tag: &'a str,
    subtag: Option<&'a str>,
    at: DateTime<Utc>,
    location: Option<Location>,
    message: Option<&'a str>,
}

struct Checkpoint<'a> {
    /// AfterShip's `hash` of the checkpoint (webhook version 2026-07 on), else our digest of
    /// what the checkpoint says.
    key: String,
    reading: Reading<'a>,
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
    let listed = msg.objects("checkpoints")?;
    let latest_listed = listed.len().checked_sub(1);
    let mut checkpoints = Vec::with_capacity(listed.len());
    let mut latest = None;
    for (index, fields) in listed.iter().enumerate() {
        let checkpoint = read_checkpoint(fields)?;
        if Some(index) == latest_listed {
            latest = Some((
                checkpoint.as_ref().map(|c| c.reading.at),
                read_location(fields)?,
                fields.text("message")?,
            ));
        }
        checkpoints.extend(checkpoint);
    }
    let (checkpoint_time, location, message) = latest.unwrap_or_default();
    let at = checkpoint_time.or(sent_at).ok_or_else(|| {
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
            current: Reading {
                tag,
                subtag,
                at,
                location,
                message,
            },
            return_to_sender,
            signed_by,
            eta,
            checkpoints,
        }),
    })
}

/// A checkpoint, or `None` when it has no time and so cannot be placed among the others. A
/// checkpoint without a tag is still a scan: it becomes an exception, kept raw.
fn read_checkpoint<'a>(fields: &Fields<'a>) -> Result<Option<Checkpoint<'a>>, PartnerError> {
    let at = fields.parsed("checkpoint_time", TIME_FORMATS, parse_time)?;
    let tag = fields.text("tag")?.unwrap_or("Unknown");
    let subtag = fields.text("subtag")?;
    let message = fields.text("message")?;
    let location = read_location(fields)?;
    let hash = fields.text("hash")?;
    let Some(at) = at else { return Ok(None) };
    let key = match hash {
        Some(hash) => hash.to_owned(),
        None => {
            let [city, state, country, zip] = history::location_parts(location.as_ref());
            history::scan_key(at, &[Some(tag), subtag, message, city, state, country, zip])
        }
    };
    Ok(Some(Checkpoint {
        key,
        reading: Reading {
            tag,
            subtag,
            at,
            location,
            message,
        },
    }))
}

/// `expected_delivery` (older webhook versions), else AfterShip's own estimate, which is an
/// object with `estimated_delivery_date` in current versions. An estimate that cannot be read is
/// dropped (with a warning), never the milestone.
fn read_eta(msg: &Fields<'_>) -> Result<Option<DateTime<Utc>>, PartnerError> {
    if let Some(eta) = msg.estimate_time("expected_delivery") {
        return Ok(Some(eta));
    }
    Ok(match msg.get("aftership_estimated_delivery_date") {
        Some(Value::String(_)) => msg.estimate_time("aftership_estimated_delivery_date"),
        Some(Value::Object(_)) => msg
            .object("aftership_estimated_delivery_date")?
            .and_then(|estimate| estimate.estimate_time("estimated_delivery_date")),
        _ => None,
    })
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
