//! EasyPost adapter. EasyPost delivers `Event` objects; `tracker.created` and `tracker.updated`
//! carry a Tracker in `result`. Each scan in the tracker's `tracking_details` becomes one
//! canonical event named after the scan (so a scan repeated by later deliveries is the same
//! event), the newest carrying the tracker's estimate and signer; the tracker's current status
//! becomes an event of its own only when no scan says it. Status words map through a table; a
//! word we do not know becomes `exception`, never dropped.

use std::borrow::Cow;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

use super::history::{self, ScanEvents};
use super::strict_json::{self, Key, Keys, Skip};
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
        payload_hash: need.hash().then(|| payload_hash(body)).transpose()?,
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
        let source = history::source_event_id(update.tracking_code, &scan.key());
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
        location: reading.location.map(Place::to_location),
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

/// The hash of `description` and `result` re-serialised as parsed values, for a body
/// [`parse_body`] has already accepted. Only these two are read as values, by the strict
/// parser's own reader, so the hash is the one a parse of the whole body gives.
fn payload_hash(body: &[u8]) -> Result<String, PartnerError> {
    let cannot = |e: serde_json::Error| malformed(format!("body is not JSON ({e})"));
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let stable = deserializer
        .deserialize_any(StableVisitor)
        .map_err(cannot)?;
    deserializer.end().map_err(cannot)?;
    let stable = StablePart {
        description: stable.description.as_ref(),
        result: stable.result.as_ref(),
    };
    // Re-serialising parsed values sorts object keys, so the hash ignores key order and spacing.
    let bytes = serde_json::to_vec(&stable)
        .map_err(|e| malformed(format!("payload cannot be re-serialised ({e})")))?;
    Ok(sha256_tag(&bytes))
}

/// `description` and `result` of an accepted body, as values.
#[derive(Default)]
struct StableValues {
    description: Option<Value>,
    result: Option<Value>,
}

struct StableVisitor;

impl<'de> Visitor<'de> for StableVisitor {
    type Value = StableValues;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StableValues, A::Error> {
        // The body has been read strictly already: no key comes twice.
        let mut stable = StableValues::default();
        while let Some(key) = map.next_key_seed(Key)? {
            let slot = match key.as_ref() {
                "description" => &mut stable.description,
                "result" => &mut stable.result,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value_seed(StrictValue)?);
        }
        Ok(stable)
    }
}

/// A value as [`strict_json::parse`] builds it.
struct StrictValue;

impl<'de> de::DeserializeSeed<'de> for StrictValue {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        strict_json::value(deserializer)
    }
}

fn malformed(reason: impl Into<String>) -> PartnerError {
    PartnerError::Malformed {
        format: FORMAT,
        reason: reason.into(),
    }
}

/// The body's fields that the adapter reads, typed and borrowing from the body. The rest of the
/// body is walked as strictly as [`strict_json::parse`] reads it (a key twice in any object is
/// refused, strings must be UTF-8, numbers finite) without being kept, so exactly the bodies
/// that parse refuses are refused, with its messages. A field of the wrong kind is not refused
/// while reading: [`read_event`] does, in its own order, so each body gets the same reason.
fn parse_body(body: &[u8]) -> Result<EventFields<'_>, PartnerError> {
    // serde_json's messages give position and kind only, never the offending text.
    let not_json = |e: serde_json::Error| malformed(format!("body is not JSON ({e})"));
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let root = Object::<EventFields>::deserialize(&mut deserializer).map_err(not_json)?;
    deserializer.end().map_err(not_json)?;
    match root {
        Object::Is(fields) => Ok(fields),
        Object::Absent | Object::Other => Err(malformed("body is not a JSON object")),
    }
}

/// An object of the body read into `Self`: the fields it names, the rest walked strictly.
trait FromMap<'de>: Sized {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

/// A struct of the fields of one kind of object, each a type that takes any JSON value
/// ([`Text`], [`Object`], [`List`]), and its reader. A key given twice is refused, whether it
/// names a field or not.
macro_rules! json_object {
    ($(#[$meta:meta])* struct $name:ident<$lt:lifetime> {
        $($field:ident: $ty:ty,)*
    }) => {
        $(#[$meta])*
        #[derive(Default)]
        struct $name<$lt> {
            $($field: $ty,)*
        }

        impl<$lt> FromMap<$lt> for $name<$lt> {
            fn from_map<A: MapAccess<$lt>>(mut map: A) -> Result<Self, A::Error> {
                $(let mut $field: Option<$ty> = None;)*
                let mut others = Keys::default();
                while let Some(key) = map.next_key_seed(Key)? {
                    match key.as_ref() {
                        $(stringify!($field) => {
                            if $field.is_some() {
                                return Err(strict_json::duplicate_key(&key));
                            }
                            $field = Some(map.next_value()?);
                        })*
                        _ => {
                            others.insert(key)?;
                            map.next_value_seed(Skip)?;
                        }
                    }
                }
                Ok($name {
                    $($field: $field.unwrap_or_default(),)*
                })
            }
        }
    };
}

json_object! {
    /// The Event envelope.
    struct EventFields<'a> {
        id: Text<'a>,
        description: Text<'a>,
        previous_attributes: Object<PreviousFields<'a>>,
        updated_at: Text<'a>,
        created_at: Text<'a>,
        result: Object<TrackerFields<'a>>,
    }
}

json_object! {
    /// `previous_attributes`: what the update changed.
    struct PreviousFields<'a> {
        status: Text<'a>,
    }
}

json_object! {
    /// `result` of a tracker event: the Tracker.
    struct TrackerFields<'a> {
        tracking_code: Text<'a>,
        status: Text<'a>,
        status_detail: Text<'a>,
        carrier: Text<'a>,
        signed_by: Text<'a>,
        est_delivery_date: Text<'a>,
        updated_at: Text<'a>,
        tracking_details: List<DetailFields<'a>>,
    }
}

json_object! {
    /// One entry of `tracking_details`.
    struct DetailFields<'a> {
        datetime: Text<'a>,
        message: Text<'a>,
        tracking_location: Object<LocationFields<'a>>,
        status: Text<'a>,
        status_detail: Text<'a>,
        carrier_code: Text<'a>,
    }
}

json_object! {
    /// A scan's `tracking_location`.
    struct LocationFields<'a> {
        city: Text<'a>,
        state: Text<'a>,
        country: Text<'a>,
        zip: Text<'a>,
    }
}

/// A field read as a string: missing or `null`, a string (unescaped only when it had escapes),
/// or any other kind of value.
#[derive(Default)]
enum Text<'a> {
    #[default]
    Absent,
    Is(Cow<'a, str>),
    Other,
}

/// A field read as an object: missing or `null`, an object, or any other kind of value.
#[derive(Default)]
enum Object<T> {
    #[default]
    Absent,
    Is(T),
    Other,
}

/// A field read as an array (of entries that should be objects), or any other kind of value.
#[derive(Default)]
enum List<T> {
    #[default]
    Absent,
    Items(Vec<Object<T>>),
    Other,
}

/// What a field's type makes of each kind of JSON value. A kind it does not take is walked as
/// strictly as the rest of the body and read as `OTHER`; `null` is `ABSENT`.
trait Field<'de>: Sized {
    const ABSENT: Self;
    const OTHER: Self;

    fn from_text(_: Cow<'de, str>) -> Self {
        Self::OTHER
    }

    fn from_seq<A: SeqAccess<'de>>(seq: A) -> Result<Self, A::Error> {
        strict_json::skip_seq(seq).map(|()| Self::OTHER)
    }

    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        strict_json::skip_map(map).map(|()| Self::OTHER)
    }
}

impl<'de> Field<'de> for Text<'de> {
    const ABSENT: Self = Text::Absent;
    const OTHER: Self = Text::Other;

    fn from_text(text: Cow<'de, str>) -> Self {
        Text::Is(text)
    }
}

impl<'de, T: FromMap<'de>> Field<'de> for Object<T> {
    const ABSENT: Self = Object::Absent;
    const OTHER: Self = Object::Other;

    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::from_map(map).map(Object::Is)
    }
}

impl<'de, T: FromMap<'de>> Field<'de> for List<T> {
    const ABSENT: Self = List::Absent;
    const OTHER: Self = List::Other;

    fn from_seq<A: SeqAccess<'de>>(mut seq: A) -> Result<Self, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(List::Items(items))
    }
}

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor(std::marker::PhantomData))
    }
}

impl<'de, T: FromMap<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor(std::marker::PhantomData))
    }
}

impl<'de, T: FromMap<'de>> Deserialize<'de> for List<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FieldVisitor(std::marker::PhantomData))
    }
}

/// Reads any JSON value into the [`Field`] `F`.
struct FieldVisitor<F>(std::marker::PhantomData<F>);

impl<'de, F: Field<'de>> Visitor<'de> for FieldVisitor<F> {
    type Value = F;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<F, E> {
        Ok(F::OTHER)
    }

    fn visit_i64<E>(self, _: i64) -> Result<F, E> {
        Ok(F::OTHER)
    }

    fn visit_u64<E>(self, _: u64) -> Result<F, E> {
        Ok(F::OTHER)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<F, E> {
        strict_json::check_finite(v).map(|()| F::OTHER)
    }

    fn visit_unit<E>(self) -> Result<F, E> {
        Ok(F::ABSENT)
    }

    fn visit_none<E>(self) -> Result<F, E> {
        Ok(F::ABSENT)
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<F, E> {
        Ok(F::from_text(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<F, E> {
        Ok(F::from_text(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<F, E> {
        Ok(F::from_text(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<F, A::Error> {
        F::from_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<F, A::Error> {
        F::from_map(map)
    }
}

/// Where a field is in the body, for errors: `result.tracking_details[2].datetime`. Built on
/// the stack as the reader descends; written out only when a field is refused.
#[derive(Clone, Copy)]
enum Path<'p> {
    Root,
    Field(&'p Path<'p>, &'static str),
    Item(&'p Path<'p>, usize),
}

impl<'p> Path<'p> {
    fn field(&'p self, name: &'static str) -> Path<'p> {
        Path::Field(self, name)
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Field(Path::Root, name) => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Item(parent, index) => write!(f, "{parent}[{index}]"),
        }
    }
}

impl Text<'_> {
    /// The string; blank counts as absent. Any other type means the format has changed under
    /// us, which is reported rather than guessed around.
    fn text(&self, path: Path<'_>) -> Result<Option<&str>, PartnerError> {
        match self {
            Text::Absent => Ok(None),
            Text::Is(text) => Ok(Some(text.trim()).filter(|text| !text.is_empty())),
            Text::Other => Err(malformed(format!("`{path}` is not a string"))),
        }
    }

    fn required(&self, path: Path<'_>) -> Result<&str, PartnerError> {
        self.text(path)?
            .ok_or_else(|| malformed(format!("missing `{path}`")))
    }

    fn time(&self, path: Path<'_>) -> Result<Option<DateTime<Utc>>, PartnerError> {
        let Some(text) = self.text(path)? else {
            return Ok(None);
        };
        DateTime::parse_from_rfc3339(text)
            .map(|time| Some(time.with_timezone(&Utc)))
            .map_err(|_| malformed(format!("`{path}` is not an RFC 3339 date-time")))
    }

    /// An optional estimate: read leniently, dropped with a warning when unreadable (the
    /// milestone never fails for it).
    fn estimate_time(&self, path: Path<'_>) -> Option<DateTime<Utc>> {
        let read = match self {
            Text::Absent => return None,
            Text::Is(text) => super::json_fields::lenient_time(text),
            Text::Other => None,
        };
        if read.is_none() {
            tracing::warn!(field = %path, "unreadable EasyPost estimate ignored");
        }
        read
    }
}

impl<T> Object<T> {
    fn get(&self, path: Path<'_>) -> Result<Option<&T>, PartnerError> {
        match self {
            Object::Absent => Ok(None),
            Object::Is(fields) => Ok(Some(fields)),
            Object::Other => Err(malformed(format!("`{path}` is not an object"))),
        }
    }
}

impl<T> List<T> {
    /// The entries; absent is none.
    fn items(&self, path: Path<'_>) -> Result<&[Object<T>], PartnerError> {
        match self {
            List::Absent => Ok(&[]),
            List::Items(items) => Ok(items),
            List::Other => Err(malformed(format!("`{path}` is not an array"))),
        }
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
    location: Option<Place<'a>>,
    message: Option<&'a str>,
}

/// A scan's place, at least one part present.
#[derive(Clone, Copy)]
struct Place<'a> {
    city: Option<&'a str>,
    state: Option<&'a str>,
    country: Option<&'a str>,
    zip: Option<&'a str>,
}

impl Place<'_> {
    fn to_location(self) -> Location {
        let owned = |text: Option<&str>| text.map(str::to_owned);
        Location {
            city: owned(self.city),
            state: owned(self.state),
            country: owned(self.country),
            postal_code: owned(self.zip),
        }
    }
}

/// One entry of `tracking_details`.
struct Scan<'a> {
    reading: Reading<'a>,
    carrier_code: Option<&'a str>,
}

impl Scan<'_> {
    /// What names the scan in every delivery that repeats it (EasyPost gives scans no id).
    fn key(&self) -> String {
        let reading = &self.reading;
        let [city, state, country, zip] = match reading.location {
            Some(place) => [place.city, place.state, place.country, place.zip],
            None => [None; 4],
        };
        history::scan_key(
            reading.at,
            &[
                Some(reading.status),
                reading.status_detail,
                self.carrier_code,
                reading.message,
                city,
                state,
                country,
                zip,
            ],
        )
    }
}

fn read_event<'a>(event: &'a EventFields<'_>) -> Result<Event<'a>, PartnerError> {
    let root = Path::Root;
    let id = event.id.required(root.field("id"))?;
    let description = event.description.required(root.field("description"))?;
    if !TRACKER_EVENTS.contains(&description) {
        // Other objects' envelopes are not ours to judge beyond what identifies them.
        return Ok(Event {
            id,
            description,
            update: Update::Other,
        });
    }

    let previous_path = root.field("previous_attributes");
    let previous_status = match event.previous_attributes.get(previous_path)? {
        Some(previous) => previous.status.text(previous_path.field("status"))?,
        None => None,
    };
    let event_updated_at = event.updated_at.time(root.field("updated_at"))?;
    let event_created_at = event.created_at.time(root.field("created_at"))?;
    let tracker_path = root.field("result");
    let Some(tracker) = event.result.get(tracker_path)? else {
        // EasyPost's `tracker.created` can come before the tracker exists (partners.md §2).
        return Ok(Event {
            id,
            description,
            update: Update::NotYet,
        });
    };

    let at_tracker = |name: &'static str| tracker_path.field(name);
    let tracking_code = tracker
        .tracking_code
        .required(at_tracker("tracking_code"))?;
    let status = tracker.status.required(at_tracker("status"))?;
    let status_detail = tracker.status_detail.text(at_tracker("status_detail"))?;
    let carrier = tracker.carrier.text(at_tracker("carrier"))?;
    let signed_by = tracker.signed_by.text(at_tracker("signed_by"))?;
    let eta = tracker
        .est_delivery_date
        .estimate_time(at_tracker("est_delivery_date"));
    let tracker_updated_at = tracker.updated_at.time(at_tracker("updated_at"))?;
    let scans = read_scans(tracker, tracker_path)?;
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
        .map(|reading| (reading.location, reading.message))
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
fn read_scans<'a>(
    tracker: &'a TrackerFields<'_>,
    tracker_path: Path<'_>,
) -> Result<Vec<Scan<'a>>, PartnerError> {
    let list_path = tracker_path.field("tracking_details");
    let items = tracker.tracking_details.items(list_path)?;
    let mut scans = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let path = Path::Item(&list_path, index);
        let Object::Is(detail) = item else {
            return Err(malformed(format!("`{path}` is not an object")));
        };
        let at = detail.datetime.time(path.field("datetime"))?;
        let message = detail.message.text(path.field("message"))?;
        let place_path = path.field("tracking_location");
        let location = match detail.tracking_location.get(place_path)? {
            Some(place) => read_location(place, place_path)?,
            None => None,
        };
        let status = detail.status.text(path.field("status"))?;
        let status_detail = detail.status_detail.text(path.field("status_detail"))?;
        let carrier_code = detail.carrier_code.text(path.field("carrier_code"))?;
        let Some(at) = at else { continue };
        // A scan without a status word is still a scan: it maps to `exception`, kept raw.
        let status = status.unwrap_or("unknown");
        scans.push(Scan {
            reading: Reading {
                status,
                status_detail,
                at,
                location,
                message,
            },
            carrier_code,
        });
    }
    scans.sort_by_key(|scan| scan.reading.at);
    Ok(scans)
}

fn read_location<'a>(
    place: &'a LocationFields<'_>,
    path: Path<'_>,
) -> Result<Option<Place<'a>>, PartnerError> {
    let place = Place {
        city: place.city.text(path.field("city"))?,
        state: place.state.text(path.field("state"))?,
        country: place.country.text(path.field("country"))?,
        zip: place.zip.text(path.field("zip"))?,
    };
    let empty = [place.city, place.state, place.country, place.zip]
        .iter()
        .all(Option::is_none);
    Ok((!empty).then_some(place))
}

#[cfg(test)]
mod tests;
