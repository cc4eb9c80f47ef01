//! Configured JSON partners (`mapped-json`): a partner described entirely in the partners file.
//! Each canonical field is found by a JSON pointer (RFC 6901) or set as a constant, and the
//! partner's status words map through a table, so onboarding one is configuration, not code.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::mapping::{self, Field, Origin, Raw, Reading, Record, Source, StatusTable, TimeReader};
use super::{DeliveryKey, History, PartnerError, Transformed, printable_prefix};
use crate::canonical::ShipmentStatus;
use crate::idempotency::sha256_tag;
use crate::webhook::ReceivedWebhook;

/// The format name used in partner configuration and in `ReceivedWebhook::format`.
pub const FORMAT: &str = "mapped-json";

/// A configured JSON partner's settings (`[partner.options]`).
#[derive(Debug, Clone)]
pub struct MappedOptions {
    /// Where the partner's delivery id is, in the whole body.
    delivery_id: Option<String>,
    /// An array of events, one canonical event per element; field pointers are then read in
    /// the element (or in the whole body, for `{ root = "…" }`).
    events: Option<String>,
    fields: BTreeMap<Field, Source<Pointer>>,
    statuses: StatusTable,
    times: TimeReader,
}

/// A JSON pointer and what it is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pointer {
    path: String,
    from_root: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionsFile {
    #[serde(default)]
    delivery_id: Option<String>,
    #[serde(default)]
    events: Option<String>,
    #[serde(default)]
    time_format: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    fields: toml::Table,
    #[serde(default)]
    statuses: BTreeMap<String, ShipmentStatus>,
}

impl MappedOptions {
    pub fn from_table(table: &toml::Table) -> Result<MappedOptions, String> {
        let file: OptionsFile = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| format!("[partner.options]: {}", e.message()))?;
        let delivery_id = file
            .delivery_id
            .map(|path| check_pointer(&path).map_err(|e| format!("delivery_id: {e}")))
            .transpose()?;
        let events = file
            .events
            .map(|path| check_pointer(&path).map_err(|e| format!("events: {e}")))
            .transpose()?;
        let fields = mapping::parse_fields(&file.fields, field_pointer)
            .map_err(|e| format!("fields: {e}"))?;
        Ok(MappedOptions {
            delivery_id,
            events,
            fields,
            statuses: StatusTable::from_config(&file.statuses)?,
            times: TimeReader::from_config(file.time_format.as_deref(), file.timezone.as_deref())?,
        })
    }
}

/// `"/data/status"` (in the event) or `{ root = "/data/carrier" }` (in the whole body).
fn field_pointer(value: &toml::Value) -> Result<Pointer, String> {
    match value {
        toml::Value::String(path) => Ok(Pointer {
            path: check_pointer(path)?,
            from_root: false,
        }),
        toml::Value::Table(table) => match (table.len(), table.get("root")) {
            (1, Some(toml::Value::String(path))) => Ok(Pointer {
                path: check_pointer(path)?,
                from_root: true,
            }),
            _ => Err(
                "expected a JSON pointer, { root = \"/pointer\" } or { constant = \"…\" }".into(),
            ),
        },
        _ => Err("expected a JSON pointer such as \"/data/status\"".into()),
    }
}

/// RFC 6901: empty (the whole document) or `/`-separated tokens where `~` only starts `~0`/`~1`.
fn check_pointer(path: &str) -> Result<String, String> {
    let valid_escapes = path
        .split('~')
        .skip(1)
        .all(|rest| rest.starts_with(['0', '1']));
    if !(path.is_empty() || path.starts_with('/')) || !valid_escapes {
        return Err(format!(
            "`{path}` is not a JSON pointer (RFC 6901, e.g. \"/data/status\")"
        ));
    }
    Ok(path.to_owned())
}

fn malformed(reason: impl Into<String>) -> PartnerError {
    PartnerError::Malformed {
        format: FORMAT,
        reason: reason.into(),
    }
}

/// A body read through the field map: the partner's delivery id and one reading per event.
struct Delivery {
    delivery_id: Option<String>,
    readings: Vec<Reading>,
    root: Value,
}

fn read(options: &MappedOptions, body: &[u8]) -> Result<Delivery, PartnerError> {
    // serde_json's messages give position and kind only, never the offending text.
    let root: Value = super::strict_json::parse(body)
        .map_err(|e| malformed(format!("body is not JSON ({e})")))?;
    let delivery_id = match &options.delivery_id {
        None => None,
        Some(path) => Some(
            text_at(&root, path)
                .map_err(malformed)?
                .ok_or_else(|| malformed(format!("missing the delivery id at `{path}`")))?,
        ),
    };
    let elements: Vec<&Value> = match &options.events {
        None => vec![&root],
        Some(path) => match root.pointer(path) {
            Some(Value::Array(items)) => items.iter().collect(),
            Some(_) => return Err(malformed(format!("`{path}` is not an array"))),
            None => return Err(malformed(format!("missing the events array at `{path}`"))),
        },
    };
    let mut readings = Vec::with_capacity(elements.len());
    for (index, element) in elements.into_iter().enumerate() {
        let record = JsonRecord {
            root: &root,
            element,
            options,
            prefix: options
                .events
                .as_ref()
                .map(|path| format!("{path}/{index}")),
        };
        let reading =
            mapping::read_record(&record, &options.times, &options.statuses).map_err(|reason| {
                match &options.events {
                    Some(_) => malformed(format!("event {index}: {reason}")),
                    None => malformed(reason),
                }
            })?;
        readings.push(reading);
    }
    Ok(Delivery {
        delivery_id,
        readings,
        root,
    })
}

/// A string or integer at `path`; `None` when absent, null or blank.
fn text_at(root: &Value, path: &str) -> Result<Option<String>, String> {
    match root.pointer(path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.trim().to_owned()).filter(|t| !t.is_empty())),
        Some(Value::Number(number)) if number.is_i64() || number.is_u64() => {
            Ok(Some(number.to_string()))
        }
        Some(_) => Err(format!("`{path}` is not a string")),
    }
}

pub(super) fn inspect(
    options: &MappedOptions,
    body: &[u8],
    need: super::Need,
) -> Result<DeliveryKey, PartnerError> {
    // Everything the transform reads is checked here, so ingress refuses what would fail later.
    let delivery = read(options, body)?;
    // Re-serialising parsed values sorts object keys, so the hash ignores key order and spacing.
    let payload_hash = if need.hash() {
        let stable = serde_json::to_vec(&delivery.root)
            .map_err(|e| malformed(format!("payload cannot be re-serialised ({e})")))?;
        Some(sha256_tag(&stable))
    } else {
        None
    };
    Ok(DeliveryKey {
        delivery_id: delivery.delivery_id,
        payload_hash,
    })
}

/// The body's events. Records with their own id (`event_id` mapped) are history: a partner that
/// pushes a shipment's whole history sends them again, and only the new ones are published.
pub(super) fn transform(
    options: &MappedOptions,
    webhook: &ReceivedWebhook,
    body: &[u8],
) -> Result<Transformed, PartnerError> {
    let delivery = read(options, body)?;
    // The partner's id when the body has one; otherwise what ingress keyed the delivery on
    // (the signed `webhook-id`, or the body's hash).
    let source_event_id = delivery
        .delivery_id
        .unwrap_or_else(|| webhook.delivery_id.clone());
    let own_ids: Vec<bool> = delivery
        .readings
        .iter()
        .map(|reading| reading.event_id.is_some())
        .collect();
    let events = delivery
        .readings
        .into_iter()
        .enumerate()
        .map(|(index, reading)| {
            let position =
                u32::try_from(index).map_err(|_| malformed("more events than can be numbered"))?;
            Ok(reading.into_event(Origin {
                partner: &webhook.partner,
                source_event_id: &source_event_id,
                correlation_id: &webhook.delivery_id,
                position,
                received_at: webhook.received_at,
            }))
        })
        .collect::<Result<Vec<_>, PartnerError>>()?;
    let history = History::of_records(&webhook.partner, &events, |index| {
        own_ids.get(index).copied().unwrap_or(false)
    });
    Ok(Transformed {
        events,
        rejected: Vec::new(),
        history,
    })
}

struct JsonRecord<'a> {
    root: &'a Value,
    element: &'a Value,
    options: &'a MappedOptions,
    /// The element's own pointer in the body, for error messages.
    prefix: Option<String>,
}

impl JsonRecord<'_> {
    fn where_is(&self, pointer: &Pointer) -> String {
        match (&self.prefix, pointer.from_root) {
            (Some(prefix), false) => format!("{prefix}{}", pointer.path),
            _ => pointer.path.clone(),
        }
    }
}

impl Record for JsonRecord<'_> {
    fn raw(&self, field: Field) -> Result<Option<Raw<'_>>, String> {
        let pointer = match self.options.fields.get(&field) {
            None => return Ok(None),
            Some(Source::Constant(text)) => return Ok(Some(Raw::Text(Cow::Borrowed(text)))),
            Some(Source::Read(pointer)) => pointer,
        };
        let base = if pointer.from_root {
            self.root
        } else {
            self.element
        };
        match base.pointer(&pointer.path) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(Raw::Text(Cow::Borrowed(text)))),
            Some(Value::Number(number)) => Ok(Some(Raw::Number(number))),
            Some(_) => Err(format!(
                "`{}` (pointer `{}`) is not a string or a number",
                field.name(),
                printable_prefix(&self.where_is(pointer))
            )),
        }
    }

    fn describe(&self, field: Field) -> String {
        match self.options.fields.get(&field) {
            None => "not mapped".into(),
            Some(Source::Constant(_)) => "a constant".into(),
            Some(Source::Read(pointer)) => {
                format!("pointer `{}`", printable_prefix(&self.where_is(pointer)))
            }
        }
    }
}

#[cfg(test)]
mod tests;
