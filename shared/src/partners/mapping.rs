//! What the configured formats (`csv`, `mapped-json`) share: the fields a partner maps (each read
//! from its data or set as a constant), its status words → canonical statuses, its time format
//! and zone, and the canonical event built from one mapped record.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use chrono::format::{Item, Parsed, StrftimeItems};
use chrono::{
    DateTime, Datelike as _, FixedOffset, LocalResult, NaiveDateTime, NaiveTime, TimeZone, Utc,
};
use chrono_tz::Tz;

use crate::canonical::{
    self, CanonicalEvent, EventBody, Location, ShipmentRef, ShipmentStatus, StatusChange,
};

/// A canonical field a partner can map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Field {
    /// The partner's own id of this one event (row, history entry), when it has one.
    EventId,
    TrackingNumber,
    Carrier,
    Status,
    StatusDetail,
    OccurredAt,
    City,
    State,
    Country,
    PostalCode,
    Reference,
    Message,
    SignedBy,
    Eta,
}

impl Field {
    pub const ALL: [Field; 14] = [
        Field::EventId,
        Field::TrackingNumber,
        Field::Carrier,
        Field::Status,
        Field::StatusDetail,
        Field::OccurredAt,
        Field::City,
        Field::State,
        Field::Country,
        Field::PostalCode,
        Field::Reference,
        Field::Message,
        Field::SignedBy,
        Field::Eta,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::EventId => "event_id",
            Field::TrackingNumber => "tracking_number",
            Field::Carrier => "carrier",
            Field::Status => "status",
            Field::StatusDetail => "status_detail",
            Field::OccurredAt => "occurred_at",
            Field::City => "city",
            Field::State => "state",
            Field::Country => "country",
            Field::PostalCode => "postal_code",
            Field::Reference => "reference",
            Field::Message => "message",
            Field::SignedBy => "signed_by",
            Field::Eta => "eta",
        }
    }

    fn parse(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|field| field.name() == name)
    }

    /// Without these a record cannot become an event.
    pub fn required(self) -> bool {
        matches!(
            self,
            Field::TrackingNumber | Field::Status | Field::OccurredAt
        )
    }

    /// A constant makes sense only for what can be the same on every record (one carrier, one
    /// country, a file of deliveries only); an id or a time never is.
    fn constant_allowed(self) -> bool {
        !matches!(
            self,
            Field::EventId | Field::TrackingNumber | Field::OccurredAt | Field::Eta
        )
    }
}

/// Where a field's value comes from: the partner's data (a column, a JSON pointer) or a value
/// set in configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source<P> {
    Read(P),
    Constant(String),
}

/// Reads a field table (`[partner.options.columns]`, `[partner.options.fields]`): each key a
/// field name, each value what `read` understands or `{ constant = "…" }`.
pub fn parse_fields<P>(
    table: &toml::Table,
    read: impl Fn(&toml::Value) -> Result<P, String>,
) -> Result<BTreeMap<Field, Source<P>>, String> {
    let mut fields = BTreeMap::new();
    for (key, value) in table {
        let field = Field::parse(key).ok_or_else(|| {
            let known: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
            format!("unknown field `{key}` (known: {})", known.join(", "))
        })?;
        let source = match value.as_table() {
            Some(inner) if inner.contains_key("constant") => {
                if !field.constant_allowed() {
                    return Err(format!("`{key}` cannot be a constant"));
                }
                match (inner.len(), inner.get("constant")) {
                    (1, Some(toml::Value::String(text))) if !text.trim().is_empty() => {
                        Source::Constant(text.trim().to_owned())
                    }
                    _ => {
                        return Err(format!(
                            "`{key}`: a constant is written {{ constant = \"text\" }}"
                        ));
                    }
                }
            }
            _ => Source::Read(read(value).map_err(|e| format!("`{key}`: {e}"))?),
        };
        fields.insert(field, source);
    }
    for field in Field::ALL.into_iter().filter(|f| f.required()) {
        if !fields.contains_key(&field) {
            return Err(format!("field `{}` must be mapped", field.name()));
        }
    }
    Ok(fields)
}

/// Every canonical status, for partners whose words already are canonical.
const CANONICAL_STATUSES: [ShipmentStatus; 9] = [
    ShipmentStatus::Booked,
    ShipmentStatus::PickedUp,
    ShipmentStatus::InTransit,
    ShipmentStatus::Delayed,
    ShipmentStatus::OutForDelivery,
    ShipmentStatus::Delivered,
    ShipmentStatus::Exception,
    ShipmentStatus::Returned,
    ShipmentStatus::Cancelled,
];

/// A partner's status words → canonical statuses (`[partner.options.statuses]`). Words match
/// trimmed and without regard to case; a word missing from the table that is itself a canonical
/// status name maps to that status; any other word becomes `exception`, its word kept.
#[derive(Debug, Clone)]
pub struct StatusTable {
    words: HashMap<String, ShipmentStatus>,
    /// Statuses that several partner words map to: the word says more than the status, so it
    /// is kept as `raw_status`.
    lossy: Vec<ShipmentStatus>,
}

/// A partner status word as the canonical model sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusMapping {
    pub status: ShipmentStatus,
    /// Whether the partner's word goes into `raw_status`.
    pub keep_raw: bool,
}

impl StatusTable {
    pub fn from_config(table: &BTreeMap<String, ShipmentStatus>) -> Result<StatusTable, String> {
        let mut words: HashMap<String, ShipmentStatus> = HashMap::new();
        let mut spelled: HashMap<String, &str> = HashMap::new();
        for (word, status) in table {
            let key = normalise(word);
            if key.is_empty() {
                return Err("statuses: a status word is empty".into());
            }
            if let Some(previous) = spelled.insert(key.clone(), word) {
                return Err(format!(
                    "statuses: `{previous}` and `{word}` are the same word (words match without regard to case)"
                ));
            }
            words.insert(key, *status);
        }
        let mut lossy: Vec<ShipmentStatus> = Vec::new();
        for status in CANONICAL_STATUSES {
            if words.values().filter(|s| **s == status).count() > 1 {
                lossy.push(status);
            }
        }
        Ok(StatusTable { words, lossy })
    }

    pub fn map(&self, word: &str) -> StatusMapping {
        let key = normalise(word);
        let known = self.words.get(&key).copied().or_else(|| {
            CANONICAL_STATUSES
                .into_iter()
                .find(|status| status.as_str() == key)
        });
        match known {
            Some(status) => StatusMapping {
                status,
                keep_raw: status == ShipmentStatus::Exception || self.lossy.contains(&status),
            },
            None => StatusMapping {
                status: ShipmentStatus::Exception,
                keep_raw: true,
            },
        }
    }
}

fn normalise(word: &str) -> String {
    word.trim().to_lowercase()
}

/// How a partner writes times, and in which zone when the text carries no offset.
#[derive(Debug, Clone)]
pub struct TimeReader {
    format: TimeFormat,
    zone: Zone,
}

#[derive(Debug, Clone)]
enum TimeFormat {
    /// RFC 3339; without an offset the time is read in the configured zone.
    Rfc3339,
    /// Seconds since the Unix epoch.
    Unix,
    /// Milliseconds since the Unix epoch.
    UnixMillis,
    /// A chrono `strftime` pattern.
    Pattern(String),
}

#[derive(Debug, Clone, Copy)]
enum Zone {
    Named(Tz),
    Fixed(FixedOffset),
}

/// Why a time could not be read. Never quotes the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeError {
    /// Not a time in the configured format.
    Format,
    /// A local time skipped by a daylight-saving change.
    Gap,
    /// Before year 1 or after 9999.
    Range,
}

impl TimeReader {
    pub const DEFAULT_FORMAT: &'static str = "rfc3339";

    /// `format`: `rfc3339` (default), `unix`, `unix_ms` or a chrono strftime pattern such as
    /// `%m/%d/%Y %H:%M`. `zone`: `UTC` (default), an IANA name (`America/Chicago`) or a fixed
    /// offset (`+02:00`), used when a time carries no offset of its own.
    pub fn from_config(format: Option<&str>, zone: Option<&str>) -> Result<TimeReader, String> {
        let zone = match zone.map(str::trim) {
            None | Some("UTC") | Some("utc") | Some("Z") => Zone::Named(Tz::UTC),
            Some(name) => match name.parse::<FixedOffset>() {
                Ok(offset) if name.starts_with(['+', '-']) => Zone::Fixed(offset),
                _ => Zone::Named(name.parse::<Tz>().map_err(|_| {
                    format!("timezone `{name}` is not an IANA zone name or an offset like +02:00")
                })?),
            },
        };
        let format = match format.map(str::trim) {
            None | Some(TimeReader::DEFAULT_FORMAT) => TimeFormat::Rfc3339,
            Some("unix") => TimeFormat::Unix,
            Some("unix_ms") => TimeFormat::UnixMillis,
            Some(pattern) => TimeFormat::Pattern(check_pattern(pattern)?),
        };
        Ok(TimeReader { format, zone })
    }

    /// The format as configured, for error messages.
    pub fn describe(&self) -> &str {
        match &self.format {
            TimeFormat::Rfc3339 => TimeReader::DEFAULT_FORMAT,
            TimeFormat::Unix => "unix",
            TimeFormat::UnixMillis => "unix_ms",
            TimeFormat::Pattern(pattern) => pattern,
        }
    }

    pub fn parse_text(&self, text: &str) -> Result<DateTime<Utc>, TimeError> {
        let text = text.trim();
        let time = match &self.format {
            TimeFormat::Rfc3339 => match DateTime::parse_from_rfc3339(text) {
                Ok(time) => time.with_timezone(&Utc),
                Err(_) => {
                    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                        .map_err(|_| TimeError::Format)?;
                    self.local(naive)?
                }
            },
            TimeFormat::Unix => from_epoch(text.parse().map_err(|_| TimeError::Format)?, 1)?,
            TimeFormat::UnixMillis => {
                from_epoch(text.parse().map_err(|_| TimeError::Format)?, 1000)?
            }
            TimeFormat::Pattern(pattern) => self.parse_pattern(text, pattern)?,
        };
        in_range(time)
    }

    /// A JSON number: only the epoch formats read numbers.
    pub fn parse_number(&self, number: &serde_json::Number) -> Result<DateTime<Utc>, TimeError> {
        let value = number.as_i64().ok_or(TimeError::Format)?;
        let time = match self.format {
            TimeFormat::Unix => from_epoch(value, 1)?,
            TimeFormat::UnixMillis => from_epoch(value, 1000)?,
            TimeFormat::Rfc3339 | TimeFormat::Pattern(_) => return Err(TimeError::Format),
        };
        in_range(time)
    }

    fn parse_pattern(&self, text: &str, pattern: &str) -> Result<DateTime<Utc>, TimeError> {
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, text, StrftimeItems::new(pattern))
            .map_err(|_| TimeError::Format)?;
        if parsed.offset().is_some() || parsed.timestamp().is_some() {
            return parsed
                .to_datetime()
                .map(|time| time.with_timezone(&Utc))
                .map_err(|_| TimeError::Format);
        }
        let date = parsed.to_naive_date().map_err(|_| TimeError::Format)?;
        // A date-only export means the start of that day in the partner's zone.
        let time = if parsed.hour_div_12().is_none() && parsed.hour_mod_12().is_none() {
            NaiveTime::MIN
        } else {
            parsed.to_naive_time().map_err(|_| TimeError::Format)?
        };
        self.local(date.and_time(time))
    }

    fn local(&self, naive: NaiveDateTime) -> Result<DateTime<Utc>, TimeError> {
        let resolved = match self.zone {
            Zone::Named(zone) => zone
                .from_local_datetime(&naive)
                .map(|time| time.with_timezone(&Utc)),
            Zone::Fixed(offset) => offset
                .from_local_datetime(&naive)
                .map(|time| time.with_timezone(&Utc)),
        };
        match resolved {
            LocalResult::Single(time) => Ok(time),
            // The hour repeated when clocks go back: the first one is as good a guess as the
            // second, and choosing the same one every time keeps event ids stable.
            LocalResult::Ambiguous(earliest, _) => Ok(earliest),
            LocalResult::None => Err(TimeError::Gap),
        }
    }
}

/// A pattern must parse, and must be able to read back a full date it wrote.
fn check_pattern(pattern: &str) -> Result<String, String> {
    if pattern.is_empty() || StrftimeItems::new(pattern).any(|item| item == Item::Error) {
        return Err(format!(
            "time_format `{pattern}` is not a valid strftime pattern"
        ));
    }
    let sample = DateTime::<Utc>::from_naive_utc_and_offset(
        NaiveDateTime::new(
            chrono::NaiveDate::from_ymd_opt(2024, 8, 2).unwrap_or_default(),
            NaiveTime::from_hms_opt(18, 50, 7).unwrap_or_default(),
        ),
        Utc,
    );
    let mut text = String::new();
    let readable = write!(text, "{}", sample.format(pattern)).is_ok() && {
        let mut parsed = Parsed::new();
        chrono::format::parse(&mut parsed, &text, StrftimeItems::new(pattern)).is_ok()
            && (parsed.to_naive_date().is_ok() || parsed.timestamp().is_some())
    };
    if !readable {
        return Err(format!(
            "time_format `{pattern}` cannot read back a full date (year, month and day)"
        ));
    }
    Ok(pattern.to_owned())
}

fn from_epoch(value: i64, per_second: i64) -> Result<DateTime<Utc>, TimeError> {
    let seconds = value.div_euclid(per_second);
    let nanos = value.rem_euclid(per_second) * (1_000_000_000 / per_second);
    let nanos = u32::try_from(nanos).map_err(|_| TimeError::Range)?;
    DateTime::from_timestamp(seconds, nanos).ok_or(TimeError::Range)
}

/// Canonical times are written with four-digit years.
fn in_range(time: DateTime<Utc>) -> Result<DateTime<Utc>, TimeError> {
    if (1..=9999).contains(&time.year()) {
        Ok(time)
    } else {
        Err(TimeError::Range)
    }
}

/// A value read from a record.
#[derive(Debug, Clone)]
pub enum Raw<'a> {
    Text(Cow<'a, str>),
    Number(&'a serde_json::Number),
}

/// One partner record (a CSV row, a JSON element) seen through the partner's field map.
pub trait Record {
    /// The field's value, `None` when it is not mapped, missing or empty. The error is a reason
    /// naming the field and where it was looked for, never its value.
    fn raw(&self, field: Field) -> Result<Option<Raw<'_>>, String>;

    /// Where the field is read from, for error messages (`column "Status"`).
    fn describe(&self, field: Field) -> String;
}

/// One record read through the mapping: what a canonical event is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub event_id: Option<String>,
    pub tracking_number: String,
    pub carrier: Option<String>,
    pub status_word: String,
    pub status: StatusMapping,
    pub status_detail: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub location: Option<Location>,
    pub reference: Option<String>,
    pub message: Option<String>,
    pub signed_by: Option<String>,
    pub eta: Option<DateTime<Utc>>,
}

/// Reads every mapped field of `record`. The error is a reason without values.
pub fn read_record(
    record: &impl Record,
    times: &TimeReader,
    statuses: &StatusTable,
) -> Result<Reading, String> {
    let text = |field: Field| -> Result<Option<String>, String> {
        Ok(match record.raw(field)? {
            None => None,
            Some(Raw::Text(text)) => Some(text.trim().to_owned()).filter(|t| !t.is_empty()),
            Some(Raw::Number(number)) => Some(number.to_string()),
        })
    };
    let required = |field: Field| -> Result<String, String> {
        text(field)?
            .ok_or_else(|| format!("missing `{}` ({})", field.name(), record.describe(field)))
    };
    let time = |field: Field| -> Result<Option<DateTime<Utc>>, String> {
        let parsed = match record.raw(field)? {
            None => return Ok(None),
            Some(Raw::Text(text)) if text.trim().is_empty() => return Ok(None),
            Some(Raw::Text(text)) => times.parse_text(&text),
            Some(Raw::Number(number)) => times.parse_number(number),
        };
        let why = match parsed {
            Ok(time) => return Ok(Some(time)),
            Err(TimeError::Format) => {
                format!("is not a time in the format `{}`", times.describe())
            }
            Err(TimeError::Gap) => "is a local time skipped by a daylight-saving change".into(),
            Err(TimeError::Range) => "is out of range (years 1 to 9999)".into(),
        };
        Err(format!(
            "`{}` ({}) {why}",
            field.name(),
            record.describe(field)
        ))
    };

    let tracking_number = required(Field::TrackingNumber)?;
    let status_word = required(Field::Status)?;
    let occurred_at = time(Field::OccurredAt)?.ok_or_else(|| {
        format!(
            "missing `occurred_at` ({})",
            record.describe(Field::OccurredAt)
        )
    })?;
    Ok(Reading {
        event_id: text(Field::EventId)?,
        status: statuses.map(&status_word),
        status_word,
        tracking_number,
        carrier: text(Field::Carrier)?,
        status_detail: text(Field::StatusDetail)?,
        occurred_at,
        location: Location {
            city: text(Field::City)?,
            state: text(Field::State)?,
            country: text(Field::Country)?,
            postal_code: text(Field::PostalCode)?,
        }
        .non_empty(),
        reference: text(Field::Reference)?,
        message: text(Field::Message)?,
        signed_by: text(Field::SignedBy)?,
        eta: time(Field::Eta)?,
    })
}

/// Where an event came from, for its header.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub partner: &'a str,
    /// The delivery's id (or the body's hash); a record's own `event_id` takes its place.
    pub source_event_id: &'a str,
    pub correlation_id: &'a str,
    /// The record's index in the delivery.
    pub position: u32,
    pub received_at: DateTime<Utc>,
}

impl Reading {
    /// The canonical event. A record with its own id is identified by that id alone, so the
    /// same record sent again in a later delivery (a resent history) gets the same event id.
    pub fn into_event(self, origin: Origin<'_>) -> CanonicalEvent {
        let (source_event_id, position) = match &self.event_id {
            Some(id) => (id.as_str(), 0),
            None => (origin.source_event_id, origin.position),
        };
        let change = StatusChange {
            status: self.status.status,
            status_detail: self.status_detail,
            raw_status: self.status.keep_raw.then_some(self.status_word),
            location: self.location,
            message: self.message,
            eta: self.eta,
        };
        let body = EventBody::milestone(change, self.occurred_at, self.signed_by);
        CanonicalEvent {
            schema: canonical::SCHEMA.to_owned(),
            event_id: canonical::event_id(origin.partner, source_event_id, position),
            partner: origin.partner.to_owned(),
            source_event_id: source_event_id.to_owned(),
            correlation_id: origin.correlation_id.to_owned(),
            occurred_at: self.occurred_at,
            received_at: origin.received_at,
            shipment: ShipmentRef {
                tracking_number: self.tracking_number,
                carrier: self.carrier,
                reference: self.reference,
            },
            body,
        }
    }
}

/// Arbitrary JSON for the property tests of every JSON-reading format.
#[cfg(test)]
pub(crate) fn any_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-z_./:0-9 -]{0,12}".prop_map(Value::String),
        Just(Value::String("2024-08-02T18:50:00Z".into())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "type",
                    "timestamp",
                    "data",
                    "events",
                    "tracking_number",
                    "status",
                    "schema",
                    "partner",
                    "source_event_id",
                    "estimate",
                    "total",
                    "x",
                ])
                .prop_map(str::to_owned),
                inner,
                0..6,
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn times_are_read_in_each_format_and_zone() {
        let cases = [
            (
                "rfc3339",
                None,
                "2024-08-02T18:50:00Z",
                "2024-08-02T18:50:00Z",
            ),
            (
                "rfc3339",
                None,
                "2024-08-02T20:50:00+02:00",
                "2024-08-02T18:50:00Z",
            ),
            (
                "rfc3339",
                None,
                "2024-08-02T18:50:00.25Z",
                "2024-08-02T18:50:00.25Z",
            ),
            // No offset: the configured zone (UTC by default, then Chicago in summer time).
            (
                "rfc3339",
                None,
                "2024-08-02T18:50:00",
                "2024-08-02T18:50:00Z",
            ),
            (
                "rfc3339",
                Some("America/Chicago"),
                "2024-08-02T13:50:00",
                "2024-08-02T18:50:00Z",
            ),
            ("unix", None, "1722624600", "2024-08-02T18:50:00Z"),
            ("unix_ms", None, "1722624600250", "2024-08-02T18:50:00.25Z"),
            (
                "%m/%d/%Y %H:%M",
                None,
                "08/02/2024 18:50",
                "2024-08-02T18:50:00Z",
            ),
            // Chicago is UTC-5 in August and UTC-6 in January.
            (
                "%m/%d/%Y %H:%M",
                Some("America/Chicago"),
                "08/02/2024 13:50",
                "2024-08-02T18:50:00Z",
            ),
            (
                "%m/%d/%Y %H:%M",
                Some("America/Chicago"),
                "01/15/2024 12:50",
                "2024-01-15T18:50:00Z",
            ),
            (
                "%d.%m.%Y %H:%M",
                Some("+02:00"),
                "02.08.2024 20:50",
                "2024-08-02T18:50:00Z",
            ),
            (
                "%Y-%m-%d %H:%M:%S %z",
                Some("Asia/Tokyo"),
                "2024-08-02 13:50:00 -0500",
                "2024-08-02T18:50:00Z",
            ),
            (
                "%Y-%m-%d",
                Some("Europe/Berlin"),
                "2024-08-02",
                "2024-08-01T22:00:00Z",
            ),
            // The repeated hour when Chicago's clocks go back: the first (daylight) one.
            (
                "%Y-%m-%d %H:%M",
                Some("America/Chicago"),
                "2024-11-03 01:30",
                "2024-11-03T06:30:00Z",
            ),
        ];
        for (format, zone, text, expected) in cases {
            let reader = TimeReader::from_config(Some(format), zone).unwrap();
            assert_eq!(
                reader.parse_text(text),
                Ok(utc(expected)),
                "{format} {zone:?} {text}"
            );
        }
    }

    #[test]
    fn unreadable_times_say_why() {
        let reader = |format: &str, zone| TimeReader::from_config(Some(format), zone).unwrap();
        let cases = [
            (reader("rfc3339", None), "yesterday", TimeError::Format),
            (
                reader("%m/%d/%Y %H:%M", None),
                "2024-08-02T18:50:00Z",
                TimeError::Format,
            ),
            (
                reader("%m/%d/%Y %H:%M", None),
                "02/30/2024 10:00",
                TimeError::Format,
            ),
            (reader("unix", None), "17e8", TimeError::Format),
            (reader("unix", None), "999999999999999", TimeError::Range),
            // 02:30 does not exist in Chicago on the day clocks go forward.
            (
                reader("%Y-%m-%d %H:%M", Some("America/Chicago")),
                "2024-03-10 02:30",
                TimeError::Gap,
            ),
        ];
        for (reader, text, expected) in cases {
            assert_eq!(reader.parse_text(text), Err(expected), "{text}");
        }
        let number: serde_json::Number = 1722624600.into();
        assert_eq!(
            reader("unix", None).parse_number(&number),
            Ok(utc("2024-08-02T18:50:00Z"))
        );
        assert_eq!(
            reader("rfc3339", None).parse_number(&number),
            Err(TimeError::Format)
        );
    }

    #[test]
    fn bad_time_configuration_is_refused() {
        for (format, zone) in [
            (Some("%Q"), None),
            (Some("%H:%M"), None),
            (Some("%m/%d"), None),
            (Some(""), None),
            (None, Some("Mars/Olympus_Mons")),
            (None, Some("+25:00")),
        ] {
            assert!(
                TimeReader::from_config(format, zone).is_err(),
                "{format:?} {zone:?}"
            );
        }
    }

    #[test]
    fn status_words_map_through_the_table_case_blind_and_unknown_words_become_exceptions() {
        let table: BTreeMap<String, ShipmentStatus> = [
            ("Picked Up", ShipmentStatus::PickedUp),
            ("DLV", ShipmentStatus::Delivered),
            ("Held at terminal", ShipmentStatus::Exception),
            ("Arrived", ShipmentStatus::InTransit),
            ("Departed", ShipmentStatus::InTransit),
        ]
        .into_iter()
        .map(|(w, s)| (w.to_owned(), s))
        .collect();
        let table = StatusTable::from_config(&table).unwrap();
        let cases = [
            ("Picked Up", ShipmentStatus::PickedUp, false),
            ("  picked up ", ShipmentStatus::PickedUp, false),
            ("dlv", ShipmentStatus::Delivered, false),
            ("Held at terminal", ShipmentStatus::Exception, true),
            // Two words map to in_transit: the word says which.
            ("Arrived", ShipmentStatus::InTransit, true),
            // Not in the table but a canonical name.
            ("out_for_delivery", ShipmentStatus::OutForDelivery, false),
            ("Lost in space", ShipmentStatus::Exception, true),
            ("", ShipmentStatus::Exception, true),
        ];
        for (word, status, keep_raw) in cases {
            assert_eq!(
                table.map(word),
                StatusMapping { status, keep_raw },
                "{word:?}"
            );
        }
    }

    #[test]
    fn status_words_differing_only_in_case_are_refused() {
        let table: BTreeMap<String, ShipmentStatus> = [
            ("Delivered".to_owned(), ShipmentStatus::Delivered),
            ("DELIVERED".to_owned(), ShipmentStatus::Delivered),
        ]
        .into();
        assert!(StatusTable::from_config(&table).is_err());
    }

    #[test]
    fn field_tables_need_the_required_fields_and_allow_constants_only_where_they_make_sense() {
        let parse = |text: &str| {
            let table: toml::Table = toml::from_str(text).unwrap();
            parse_fields(&table, |v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| "not text".into())
            })
        };
        let fields = parse(
            r#"
tracking_number = "PRO"
status = "Status"
occurred_at = "When"
carrier = { constant = "ODFL" }
"#,
        )
        .unwrap();
        assert_eq!(fields[&Field::Carrier], Source::Constant("ODFL".into()));
        assert_eq!(fields[&Field::Status], Source::Read("Status".into()));

        for bad in [
            // status missing
            "tracking_number = \"PRO\"\noccurred_at = \"When\"",
            "tracking_number = \"PRO\"\nstatus = \"S\"\noccurred_at = \"W\"\nstatsu = \"x\"",
            "tracking_number = { constant = \"1\" }\nstatus = \"S\"\noccurred_at = \"W\"",
            "tracking_number = \"PRO\"\nstatus = \"S\"\noccurred_at = \"W\"\ncarrier = { constant = \"\" }",
            "tracking_number = \"PRO\"\nstatus = \"S\"\noccurred_at = \"W\"\ncarrier = { constant = \"A\", x = 1 }",
            "tracking_number = 7\nstatus = \"S\"\noccurred_at = \"W\"",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
