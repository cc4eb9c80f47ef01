//! X12 EDI adapter (EDI relayed over HTTP): 214 shipment status sets become shipment events, one
//! per AT7; 210 freight invoice sets become `freight_invoice.received`, one per set. Delimiters
//! come from each ISA header; envelope counts are checked strictly or leniently per partner.

mod datetime;
mod envelope;
mod invoice;
mod status;
pub mod tokenizer;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::Deserialize;

use super::{DeliveryKey, PartnerError, printable_prefix};
use crate::canonical::{self, CanonicalEvent, ChargeKind, EventBody, ShipmentRef};
use crate::idempotency::sha256_tag;
use crate::webhook::ReceivedWebhook;

pub use invoice::DEFAULT_CHARGE_CODES;
pub use status::{Milestone, StatusMapping, map_status};

/// The format name used in partner configuration and in `ReceivedWebhook::format`.
pub const FORMAT: &str = "x12";

/// Content types EDI relays use when the partner's configuration names none.
pub const CONTENT_TYPES: [&str; 2] = ["application/edi-x12", "text/plain"];

/// A partner's X12 settings, from `[partner.options]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Refuse bodies whose envelope counts, control numbers or totals disagree, instead of
    /// accepting them with a warning. Off by default: real senders get these wrong.
    pub strict: bool,
    /// ISO 4217 code for 210 invoices without a C3 segment.
    pub default_currency: String,
    /// L108 charge code → kind, consulted before [`DEFAULT_CHARGE_CODES`].
    pub charge_codes: BTreeMap<String, ChargeKind>,
    /// The partner's clock, for times with time code `LT`, with no code, and GS04/GS05. UTC by
    /// default, because a sender's zone cannot be guessed. Zone codes (`ET`, `PT`, …) and
    /// explicit ones (`ED`, `UT`, …) carry their own clock and do not use it.
    pub local_time_zone: Tz,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            strict: false,
            default_currency: "USD".to_owned(),
            charge_codes: BTreeMap::new(),
            local_time_zone: Tz::UTC,
        }
    }
}

/// `[partner.options]` as written; unknown keys are refused so a typo is not silently ignored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionsFile {
    #[serde(default)]
    strict: Option<bool>,
    #[serde(default)]
    default_currency: Option<String>,
    #[serde(default)]
    charge_codes: BTreeMap<String, ChargeKind>,
    #[serde(default)]
    local_time_zone: Option<String>,
}

impl Options {
    /// Reads `[partner.options]`, e.g. `strict = true`, `default_currency = "CAD"`,
    /// `local_time_zone = "America/Chicago"`, `[partner.options.charge_codes] "295" = "discount"`.
    pub fn from_table(table: &toml::Table) -> Result<Options, String> {
        let file: OptionsFile = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| format!("invalid x12 options: {}", e.message()))?;
        let defaults = Options::default();
        let default_currency = match file.default_currency {
            Some(code) => currency_code(code.as_bytes())
                .ok_or("default_currency must be a three-letter ISO 4217 code")?,
            None => defaults.default_currency,
        };
        let local_time_zone = match file.local_time_zone {
            // IANA names only: a fixed offset would be wrong for half the year in any zone that
            // keeps daylight saving, which is the point of naming the zone.
            Some(name) => name.trim().parse::<Tz>().map_err(|_| {
                format!(
                    "local_time_zone {:?} is not an IANA time zone name such as \"America/Chicago\"",
                    printable_prefix(&name)
                )
            })?,
            None => defaults.local_time_zone,
        };
        if file.charge_codes.keys().any(|code| code.trim().is_empty()) {
            return Err("charge_codes has an empty code".to_owned());
        }
        Ok(Options {
            strict: file.strict.unwrap_or(defaults.strict),
            default_currency,
            charge_codes: file.charge_codes,
            local_time_zone,
        })
    }

    /// What kind of charge an L1 line is. The partner's table, then the defaults (codes whose
    /// meaning the X12 charge code list fixes); otherwise a negative amount is a discount — it
    /// lowers the bill whatever it is called — and a positive one with a code is an accessorial,
    /// since everything on a freight invoice beyond base freight, fuel and tax is a service
    /// charge. A line without any code cannot be classed and is `other`.
    pub fn charge_kind(&self, code: Option<&str>, amount: Decimal) -> ChargeKind {
        let known = code.and_then(|code| {
            self.charge_codes.get(code).copied().or_else(|| {
                DEFAULT_CHARGE_CODES
                    .iter()
                    .find(|(known, _)| *known == code)
                    .map(|(_, kind)| *kind)
            })
        });
        match (known, code) {
            (Some(kind), _) => kind,
            _ if amount.is_sign_negative() && !amount.is_zero() => ChargeKind::Discount,
            (None, Some(_)) => ChargeKind::Accessorial,
            (None, None) => ChargeKind::Other,
        }
    }
}

/// Something a lenient partner got wrong that did not stop the body (a strict partner's body
/// is refused instead). Messages name segments and positions, never partner values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// What was checked: `SE01`, `GE02`, `L305`, `AT707`, ….
    pub check: &'static str,
    pub message: String,
}

/// The events of a body and the warnings met while reading it.
#[derive(Debug, Clone, PartialEq)]
pub struct Transformed {
    pub events: Vec<CanonicalEvent>,
    pub warnings: Vec<Warning>,
}

/// Checks that may fail a strict partner's body and only warn for a lenient one.
#[derive(Debug)]
struct Checks {
    strict: bool,
    warnings: Vec<Warning>,
}

impl Checks {
    fn new(options: &Options) -> Checks {
        Checks {
            strict: options.strict,
            warnings: Vec::new(),
        }
    }

    fn failed(&mut self, check: &'static str, message: String) -> Result<(), PartnerError> {
        if self.strict {
            return Err(malformed(format!("{check} check failed: {message}")));
        }
        tracing::warn!(format = FORMAT, check, "{message}");
        self.warnings.push(Warning { check, message });
        Ok(())
    }

    /// Worth telling whatever the mode, never a reason to refuse.
    fn note(&mut self, check: &'static str, message: String) {
        tracing::info!(format = FORMAT, check, "{message}");
        self.warnings.push(Warning { check, message });
    }
}

/// An event before the webhook it came in is known: what ingress and the transform share.
#[derive(Debug, Clone, PartialEq)]
struct Draft {
    source_event_id: String,
    position: u32,
    occurred_at: DateTime<Utc>,
    shipment: ShipmentRef,
    body: EventBody,
}

/// A body read through: interchange count (for the delivery id), drafts and warnings.
struct Reading {
    delivery_id: Option<String>,
    /// Transaction sets in the body, of any kind.
    sets: usize,
    drafts: Vec<Draft>,
    warnings: Vec<Warning>,
}

fn read(body: &[u8], options: &Options) -> Result<Reading, PartnerError> {
    let tokens = tokenizer::tokenize(body)?;
    let mut checks = Checks::new(options);
    let envelopes = envelope::read(&tokens, &mut checks)?;
    let delivery_id = match envelopes.interchanges.as_slice() {
        [only] => Some(format!("x12:{}:{}", only.sender, only.control)),
        _ => None,
    };
    let mut drafts = Vec::new();
    let mut status_position = 0u32;
    for (index, set) in envelopes.sets.iter().enumerate() {
        match set.kind.as_str() {
            "214" => {
                check_functional_id(set, &["QM"], &mut checks)?;
                drafts.extend(status::read(
                    set,
                    &mut status_position,
                    options,
                    &mut checks,
                )?);
            }
            "210" => {
                // EdiFabric's published sample says `IN`; it is accepted as well as `IM`.
                check_functional_id(set, &["IM", "IN"], &mut checks)?;
                let position = u32::try_from(index)
                    .map_err(|_| malformed("too many transaction sets in one body"))?;
                drafts.push(invoice::read(set, position, options, &mut checks)?);
            }
            _ => checks.note(
                "ST01",
                format!(
                    "transaction set at segment {} is neither a 214 nor a 210; skipped",
                    set.position()
                ),
            ),
        }
    }
    Ok(Reading {
        delivery_id,
        sets: envelopes.sets.len(),
        drafts,
        warnings: checks.warnings,
    })
}

fn check_functional_id(
    set: &envelope::TransactionSet<'_, '_>,
    expected: &[&str],
    checks: &mut Checks,
) -> Result<(), PartnerError> {
    let found = set.functional_id();
    if !expected.iter().any(|id| found.as_deref() == Some(*id)) {
        checks.failed(
            "GS01",
            format!(
                "GS01 at segment {} does not name the functional group of the {} set at segment {}",
                set.group.position,
                set.kind,
                set.position()
            ),
        )?;
    }
    Ok(())
}

/// Reads the whole body as the transform would, so ingress refuses exactly what the transform
/// would refuse. Bodies without 214 or 210 sets are valid X12 and accepted here.
pub fn inspect(body: &[u8], options: &Options) -> Result<DeliveryKey, PartnerError> {
    let reading = read(body, options)?;
    Ok(DeliveryKey {
        delivery_id: reading.delivery_id,
        payload_hash: Some(sha256_tag(body)),
    })
}

pub fn to_canonical(
    webhook: &ReceivedWebhook,
    body: &[u8],
    options: &Options,
) -> Result<Vec<CanonicalEvent>, PartnerError> {
    transform(webhook, body, options).map(|transformed| transformed.events)
}

/// [`to_canonical`] with the warnings a lenient partner's body raised.
pub fn transform(
    webhook: &ReceivedWebhook,
    body: &[u8],
    options: &Options,
) -> Result<Transformed, PartnerError> {
    let reading = read(body, options)?;
    if reading.drafts.is_empty() {
        return Err(PartnerError::Unsupported {
            format: FORMAT,
            what: if reading.sets == 0 {
                "interchange without transaction sets".to_owned()
            } else {
                "transaction sets other than 214 and 210".to_owned()
            },
        });
    }
    let correlation_id = if webhook.delivery_id.is_empty() {
        None
    } else {
        Some(webhook.delivery_id.as_str())
    };
    let events = reading
        .drafts
        .into_iter()
        .map(|draft| CanonicalEvent {
            schema: canonical::SCHEMA.to_owned(),
            event_id: canonical::event_id(&webhook.partner, &draft.source_event_id, draft.position),
            partner: webhook.partner.clone(),
            // One delivery (the interchange, or the body) ties all its events together.
            correlation_id: correlation_id
                .unwrap_or(draft.source_event_id.as_str())
                .to_owned(),
            source_event_id: draft.source_event_id,
            occurred_at: draft.occurred_at,
            received_at: webhook.received_at,
            shipment: draft.shipment,
            body: draft.body,
        })
        .collect();
    Ok(Transformed {
        events,
        warnings: reading.warnings,
    })
}

/// `ISA13-GS06-ST02`: unique per transaction set for a sender that numbers its controls.
fn source_event_id(set: &envelope::TransactionSet<'_, '_>) -> String {
    format!(
        "{}-{}-{}",
        set.interchange_id.control,
        set.group_control(),
        set.control
    )
}

/// The Odoo-facing reference among a set's qualified references: bill of lading, then
/// purchase order, then customer reference — the numbers the shipper (us) gave the carrier.
/// A value equal to the tracking number says nothing new and is passed over.
fn shipment_reference(references: &[(String, String)], tracking_number: &str) -> Option<String> {
    ["BM", "PO", "CR"].iter().find_map(|wanted| {
        references
            .iter()
            .find(|(qualifier, value)| qualifier == wanted && value != tracking_number)
            .map(|(_, value)| value.clone())
    })
}

/// Three ASCII letters, upper-cased.
fn currency_code(raw: &[u8]) -> Option<String> {
    let raw = raw.trim_ascii();
    (raw.len() == 3 && raw.iter().all(u8::is_ascii_alphabetic))
        .then(|| String::from_utf8_lossy(raw).to_ascii_uppercase())
}

fn malformed(reason: impl Into<String>) -> PartnerError {
    PartnerError::Malformed {
        format: FORMAT,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
