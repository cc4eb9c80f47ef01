//! The `canonical` format: a partner (typically the TMS booking freight) that already sends
//! canonical v1 events, one per body or `{"events": [...]}`. Each is checked against the
//! published JSON Schema; the fields that are ours to set (`event_id`, `received_at`) are set here.

use std::sync::OnceLock;

use chrono::{DateTime, SecondsFormat, Utc};
use jsonschema::{ValidationError, Validator};
use serde_json::{Map, Value};

use super::{DeliveryKey, PartnerError};
use crate::canonical::{self, CanonicalEvent};
use crate::idempotency::sha256_tag;
use crate::webhook::ReceivedWebhook;

/// The format name used in partner configuration and in `ReceivedWebhook::format`.
pub const FORMAT: &str = "canonical";

/// The published schema, as consumers read it.
const SCHEMA: &str = include_str!("../../../schema/freightbridge.canonical.v1.schema.json");

/// What a `canonical` partner is checked against besides the schema.
#[derive(Debug, Clone)]
pub struct CanonicalOptions {
    /// The configured partner id: every event must name it.
    partner: String,
}

impl CanonicalOptions {
    pub fn new(partner: &str) -> CanonicalOptions {
        CanonicalOptions {
            partner: partner.to_owned(),
        }
    }
}

/// Where a canonical event breaks the schema: the JSON pointer of the offending value and the
/// schema keyword it fails, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaViolation {
    pub path: String,
    pub keyword: String,
}

/// The schema, compiled once per process.
fn validator() -> Result<&'static Validator, PartnerError> {
    static VALIDATOR: OnceLock<Result<Validator, String>> = OnceLock::new();
    VALIDATOR
        .get_or_init(|| {
            let schema: Value = serde_json::from_str(SCHEMA).map_err(|e| e.to_string())?;
            jsonschema::draft202012::options()
                .should_validate_formats(true)
                .build(&schema)
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| PartnerError::Malformed {
            format: FORMAT,
            reason: format!("the canonical schema does not compile ({e})"),
        })
}

/// Checks one event against the published schema.
pub fn validate(event: &Value) -> Result<Result<(), SchemaViolation>, PartnerError> {
    let errors: Vec<ValidationError<'_>> = validator()?.iter_errors(event).collect();
    Ok(match deepest(errors.iter()) {
        None => Ok(()),
        Some(error) => Err(SchemaViolation {
            path: error.instance_path().as_str().to_owned(),
            keyword: error.kind().keyword().to_owned(),
        }),
    })
}

/// The error deepest in the document, looking inside `oneOf`/`anyOf` failures (which say only
/// that no branch matched); of equally deep errors, the first.
fn deepest<'e, 'a: 'e>(
    errors: impl Iterator<Item = &'e ValidationError<'a>>,
) -> Option<&'e ValidationError<'a>> {
    let depth = |e: &ValidationError<'_>| e.instance_path().as_str().matches('/').count();
    let mut best: Option<&ValidationError<'a>> = None;
    for error in errors {
        let specific = most_specific(error);
        if best.is_none_or(|best| depth(specific) > depth(best)) {
            best = Some(specific);
        }
    }
    best
}

/// The error inside the branch that was meant. Branches refused on a `const` (another `type`,
/// or a delivery that is not `delivered`) were not meant, unless every branch was.
fn most_specific<'e, 'a>(error: &'e ValidationError<'a>) -> &'e ValidationError<'a> {
    use jsonschema::error::ValidationErrorKind as Kind;
    let context = match error.kind() {
        Kind::OneOfNotValid { context } | Kind::AnyOf { context } => context,
        _ => return error,
    };
    let meant: Vec<&Vec<ValidationError<'static>>> = context
        .iter()
        .filter(|branch| {
            !branch
                .iter()
                .any(|e| matches!(e.kind(), Kind::Constant { .. }))
        })
        .collect();
    let branches = if meant.is_empty() {
        context.iter().collect()
    } else {
        meant
    };
    match deepest(branches.into_iter().flatten()) {
        Some(inner) => inner,
        None => error,
    }
}

fn malformed(reason: impl Into<String>) -> PartnerError {
    PartnerError::Malformed {
        format: FORMAT,
        reason: reason.into(),
    }
}

/// The events of a body, checked and completed. `received_at` is ours: at ingress (which has no
/// receive time yet) any valid time serves, as it only takes part in the schema check.
fn read(
    options: &CanonicalOptions,
    body: &[u8],
    received_at: DateTime<Utc>,
) -> Result<Vec<Value>, PartnerError> {
    let root: Value = super::strict_json::parse(body)
        .map_err(|e| malformed(format!("body is not JSON ({e})")))?;
    let Value::Object(mut root) = root else {
        return Err(malformed("body is not a JSON object"));
    };
    // One event has a `schema`; a batch is `{"events": [...]}` and nothing else.
    let (events, prefix) = if !root.contains_key("schema") && root.contains_key("events") {
        if root.len() != 1 {
            return Err(malformed(
                "a batch is {\"events\": [...]} with no other key",
            ));
        }
        match root.remove("events") {
            Some(Value::Array(events)) => (events, Some("/events")),
            _ => return Err(malformed("`/events` is not an array")),
        }
    } else {
        (vec![Value::Object(root)], None)
    };
    let received_at = received_at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    events
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            let at = |path: &str| match prefix {
                Some(prefix) => format!("{prefix}/{index}{path}"),
                None => path.to_owned(),
            };
            let Value::Object(mut event) = event else {
                return Err(malformed(format!("`{}` is not an object", at(""))));
            };
            let position =
                u32::try_from(index).map_err(|_| malformed("more events than can be numbered"))?;
            complete(options, &mut event, position, &received_at);
            let event = Value::Object(event);
            if let Err(violation) = validate(&event)? {
                return Err(malformed(format!(
                    "schema violation at `{}` ({})",
                    at(&violation.path),
                    violation.keyword
                )));
            }
            if event.get("partner").and_then(Value::as_str) != Some(options.partner.as_str()) {
                return Err(malformed(format!(
                    "`{}` is not this partner's id",
                    at("/partner")
                )));
            }
            Ok(event)
        })
        .collect()
}

/// Sets what is ours to set. `event_id` is recomputed from (partner, source_event_id,
/// position) as for every other format: a partner cannot then collide with another partner's
/// ids, and a resent body gets the same ids whatever the partner put there.
fn complete(
    options: &CanonicalOptions,
    event: &mut Map<String, Value>,
    position: u32,
    received_at: &str,
) {
    let source_event_id = event
        .get("source_event_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let event_id = canonical::event_id(&options.partner, source_event_id, position);
    event.insert("event_id".into(), Value::String(event_id.to_string()));
    event.insert("received_at".into(), Value::String(received_at.to_owned()));
}

pub(super) fn inspect(
    options: &CanonicalOptions,
    body: &[u8],
    need: super::Need,
) -> Result<DeliveryKey, PartnerError> {
    let events = read(options, body, DateTime::UNIX_EPOCH)?;
    // Ingress refuses exactly what the transform would.
    into_model(events.clone())?;
    // The partner's own id when the whole body is one delivery of theirs.
    let mut sources = events
        .iter()
        .filter_map(|event| event.get("source_event_id").and_then(Value::as_str));
    let first = sources.next();
    let delivery_id = first
        .filter(|first| sources.all(|other| other == *first))
        .map(str::to_owned);
    // The events as checked (keys sorted, our fields fixed), so spacing and key order do not
    // count as a change between retries.
    let payload_hash = if need.hash() {
        let stable = serde_json::to_vec(&events)
            .map_err(|e| malformed(format!("payload cannot be re-serialised ({e})")))?;
        Some(sha256_tag(&stable))
    } else {
        None
    };
    Ok(DeliveryKey {
        delivery_id,
        payload_hash,
    })
}

pub(super) fn to_canonical(
    options: &CanonicalOptions,
    webhook: &ReceivedWebhook,
    body: &[u8],
) -> Result<Vec<CanonicalEvent>, PartnerError> {
    into_model(read(options, body, webhook.received_at)?)
}

fn into_model(events: Vec<Value>) -> Result<Vec<CanonicalEvent>, PartnerError> {
    events
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            // Schema-valid yet unrepresentable, e.g. an amount with more than 28 digits. The
            // serde message would quote the value, so only the position is given.
            serde_json::from_value(event).map_err(|_| {
                malformed(format!(
                    "event {index} fits the schema but not the canonical model (an amount too large?)"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
