//! Partner formats: one adapter per format. Ingress asks an adapter whether a body is well formed
//! and what identifies the delivery; the canonical transform asks it for the canonical events.
//! Adapters are pure: bytes in, values or a classified error out.

pub mod aftership;
#[cfg(test)]
mod arbitrary_json;
pub mod canonical_json;
pub mod csv;
pub mod easypost;
mod history;
mod json_fields;
pub mod mapped_json;
mod mapping;
pub mod shippo;
pub mod strict_json;
pub mod x12;

#[cfg(test)]
mod schema_conformance;

use std::collections::HashMap;

use thiserror::Error;

use crate::canonical::CanonicalEvent;
use crate::config::{ConfigError, PartnerConfig, PartnersFile};
use crate::failure::{Classify, FailureClass};
use crate::webhook::ReceivedWebhook;

/// A partner body format that has an adapter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    EasyPost,
    Csv,
    MappedJson,
    Canonical,
    Shippo,
    AfterShip,
    X12,
}

impl Format {
    /// Every format, for configuration checks and listings.
    pub const ALL: [Format; 7] = [
        Format::EasyPost,
        Format::Shippo,
        Format::AfterShip,
        Format::X12,
        Format::Csv,
        Format::MappedJson,
        Format::Canonical,
    ];

    /// The format named in partner configuration (`format = "easypost"`).
    pub fn parse(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|format| format.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::EasyPost => easypost::FORMAT,
            Format::Csv => csv::FORMAT,
            Format::MappedJson => mapped_json::FORMAT,
            Format::Canonical => canonical_json::FORMAT,
            Format::Shippo => shippo::FORMAT,
            Format::AfterShip => aftership::FORMAT,
            Format::X12 => x12::FORMAT,
        }
    }

    /// Content types accepted when the partner's configuration names none.
    pub fn default_content_types(self) -> &'static [&'static str] {
        match self {
            Format::EasyPost => &["application/json"],
            Format::Csv => &["text/csv"],
            Format::MappedJson => &["application/json"],
            Format::Canonical => &["application/json"],
            Format::Shippo => &["application/json"],
            Format::AfterShip => &["application/json"],
            Format::X12 => &x12::CONTENT_TYPES,
        }
    }
}

/// A configured partner's adapter: its format plus the format's options from the partners file
/// (`[partner.options]`). Built once at cold start; ingress and the transform both use it.
#[derive(Debug, Clone)]
pub struct Adapter {
    format: Format,
    options: FormatOptions,
}

/// Per-format settings. Formats without settings refuse a non-empty `[partner.options]`, so a
/// typo there is a configuration error rather than silently ignored.
#[derive(Debug, Clone)]
enum FormatOptions {
    None,
    Csv(csv::CsvOptions),
    MappedJson(mapped_json::MappedOptions),
    Canonical(canonical_json::CanonicalOptions),
    X12(x12::Options),
}

impl Adapter {
    /// An adapter for a format that takes no options.
    /// (X12 gets its default options; the configured formats need `from_config`.)
    pub fn new(format: Format) -> Adapter {
        let options = match format {
            Format::X12 => FormatOptions::X12(x12::Options::default()),
            _ => FormatOptions::None,
        };
        Adapter { format, options }
    }

    pub fn from_config(cfg: &PartnerConfig) -> Result<Adapter, ConfigError> {
        let fail = |message: String| ConfigError::Partner {
            partner: cfg.id.clone(),
            message,
        };
        let format = Format::parse(&cfg.format).ok_or_else(|| {
            fail(format!(
                "unknown format {:?}",
                printable_prefix(&cfg.format)
            ))
        })?;
        let options = match format {
            Format::EasyPost => {
                if !cfg.options.is_empty() {
                    return Err(fail(format!(
                        "format {} takes no [partner.options]",
                        format.name()
                    )));
                }
                FormatOptions::None
            }
            Format::Shippo | Format::AfterShip => {
                if !cfg.options.is_empty() {
                    return Err(fail(format!(
                        "format {} takes no [partner.options]",
                        format.name()
                    )));
                }
                FormatOptions::None
            }
            Format::Csv => {
                FormatOptions::Csv(csv::CsvOptions::from_table(&cfg.options).map_err(fail)?)
            }
            Format::MappedJson => FormatOptions::MappedJson(
                mapped_json::MappedOptions::from_table(&cfg.options).map_err(fail)?,
            ),
            Format::Canonical => {
                if !cfg.options.is_empty() {
                    return Err(fail(format!(
                        "format {} takes no [partner.options]",
                        format.name()
                    )));
                }
                FormatOptions::Canonical(canonical_json::CanonicalOptions::new(&cfg.id))
            }
            Format::X12 => {
                FormatOptions::X12(x12::Options::from_table(&cfg.options).map_err(fail)?)
            }
        };
        Ok(Adapter { format, options })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// See [`inspect`].
    pub fn inspect(&self, body: &[u8]) -> Result<DeliveryKey, PartnerError> {
        self.inspect_for(body, Need::DeliveryIdAndHash)
    }

    /// [`Adapter::inspect`], computing the payload hash only when `need` asks for it: the body
    /// is checked as fully either way.
    pub fn inspect_for(&self, body: &[u8], need: Need) -> Result<DeliveryKey, PartnerError> {
        match (&self.format, &self.options) {
            (Format::EasyPost, FormatOptions::None) => easypost::inspect(body, need),
            (Format::Shippo, FormatOptions::None) => shippo::inspect(body, need),
            (Format::AfterShip, FormatOptions::None) => aftership::inspect(body, need),
            (Format::Csv, FormatOptions::Csv(options)) => csv::inspect(options, body),
            (Format::MappedJson, FormatOptions::MappedJson(options)) => {
                mapped_json::inspect(options, body, need)
            }
            (Format::Canonical, FormatOptions::Canonical(options)) => {
                canonical_json::inspect(options, body, need)
            }
            (Format::X12, FormatOptions::X12(options)) => x12::inspect(body, options),
            (format, _) => Err(PartnerError::Unconfigured {
                format: format.name(),
            }),
        }
    }

    /// See [`to_canonical`].
    pub fn to_canonical(
        &self,
        webhook: &ReceivedWebhook,
    ) -> Result<Vec<CanonicalEvent>, PartnerError> {
        match (&self.format, &self.options) {
            (Format::EasyPost | Format::Shippo | Format::AfterShip, FormatOptions::None) => {
                to_canonical(self.format, webhook)
            }
            // A caller that wants every event it can get, and the bad rows apart, uses
            // `transform`; here a file with a bad row is refused whole.
            (Format::Csv, FormatOptions::Csv(_)) => {
                let transformed = self.transform(webhook)?;
                match transformed.rejected.first() {
                    None => Ok(transformed.events),
                    Some(row) => Err(PartnerError::Malformed {
                        format: csv::FORMAT,
                        reason: format!("line {}: {}", row.line, row.reason),
                    }),
                }
            }
            (Format::MappedJson, FormatOptions::MappedJson(options)) => {
                mapped_json::transform(options, webhook, &webhook_body(self.format, webhook)?)
                    .map(|transformed| transformed.events)
            }
            (Format::Canonical, FormatOptions::Canonical(options)) => {
                canonical_json::to_canonical(options, webhook, &webhook_body(self.format, webhook)?)
            }
            (Format::X12, FormatOptions::X12(options)) => {
                x12::to_canonical(webhook, &webhook_body(self.format, webhook)?, options)
            }
            (format, _) => Err(PartnerError::Unconfigured {
                format: format.name(),
            }),
        }
    }

    /// Turns an accepted webhook into canonical events, setting apart the records that could not
    /// be read when the format has records of its own (CSV rows): those are reported, the rest
    /// go through. For the other formats a body is read whole or refused.
    pub fn transform(&self, webhook: &ReceivedWebhook) -> Result<Transformed, PartnerError> {
        match (&self.format, &self.options) {
            (Format::Csv, FormatOptions::Csv(options)) => {
                csv::transform(options, webhook, &webhook_body(self.format, webhook)?)
            }
            (Format::EasyPost | Format::Shippo | Format::AfterShip, FormatOptions::None) => {
                transform_aggregator(self.format, webhook)
            }
            (Format::MappedJson, FormatOptions::MappedJson(options)) => {
                mapped_json::transform(options, webhook, &webhook_body(self.format, webhook)?)
            }
            _ => self.to_canonical(webhook).map(|events| Transformed {
                events,
                rejected: Vec::new(),
                history: Vec::new(),
            }),
        }
    }
}

/// What a webhook became: its events, the records that could not be read, and which events
/// stand for entries of a history the partner repeats in later deliveries (one per shipment).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transformed {
    pub events: Vec<CanonicalEvent>,
    pub rejected: Vec<RejectedRow>,
    pub history: Vec<History>,
}

/// Events read from a shipment's history: the aggregators' scans (EasyPost `tracking_details`,
/// Shippo `tracking_history`, AfterShip `checkpoints`), and the records of a configured partner
/// that carry their own id (a cumulative export, a full history on every push). The partner
/// repeats them in later deliveries; only the entries not seen before are published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    /// Where the shipment's seen entries are remembered: `<partner>#<tracking number>`.
    pub scope: String,
    /// The ids of the events that stand for history entries. An id depends only on its entry,
    /// so an entry repeated by a later delivery has the same id.
    pub entries: Vec<uuid::Uuid>,
}

impl History {
    /// The histories of the events for which `is_entry` holds, one per tracking number, in the
    /// order the shipments first appear.
    pub(crate) fn of_records(
        partner: &str,
        events: &[CanonicalEvent],
        is_entry: impl Fn(usize) -> bool,
    ) -> Vec<History> {
        let mut histories: Vec<History> = Vec::new();
        for (index, event) in events.iter().enumerate() {
            if !is_entry(index) {
                continue;
            }
            let scope = history::scope(partner, &event.shipment.tracking_number);
            match histories.iter_mut().find(|history| history.scope == scope) {
                Some(history) => history.entries.push(event.event_id),
                None => histories.push(History {
                    scope,
                    entries: vec![event.event_id],
                }),
            }
        }
        histories
    }
}

/// A record of a multi-record body (a CSV row) that could not become an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedRow {
    /// The line of the body the record starts on, counting from 1.
    pub line: u64,
    /// Why, naming fields and columns but never their values.
    pub reason: String,
}

/// The raw body of an accepted webhook.
fn webhook_body(format: Format, webhook: &ReceivedWebhook) -> Result<Vec<u8>, PartnerError> {
    webhook
        .body
        .to_bytes()
        .map_err(|_| PartnerError::Malformed {
            format: format.name(),
            reason: "webhook body is not valid base64".into(),
        })
}

/// Every configured partner's adapter, by partner id: what the transform reads bodies with.
#[derive(Debug, Clone, Default)]
pub struct Adapters {
    by_partner: HashMap<String, Adapter>,
}

impl Adapters {
    pub fn from_partners(file: &PartnersFile) -> Result<Adapters, ConfigError> {
        let by_partner = file
            .partner
            .iter()
            .map(|cfg| Ok((cfg.id.clone(), Adapter::from_config(cfg)?)))
            .collect::<Result<_, ConfigError>>()?;
        Ok(Adapters { by_partner })
    }

    pub fn get(&self, partner: &str) -> Option<&Adapter> {
        self.by_partner.get(partner)
    }
}

/// What ingress needs of an inspection: always that the body is one the transform takes and
/// the partner's delivery id; the payload hash only when no signed header names the delivery
/// (a Standard Webhooks `webhook-id` does, and the body's own hash then keys it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    DeliveryId,
    DeliveryIdAndHash,
}

impl Need {
    fn hash(self) -> bool {
        self == Need::DeliveryIdAndHash
    }
}

/// What ingress learns from a body before accepting it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeliveryKey {
    /// The partner's own delivery id, when the body carries one (EasyPost Event `id`).
    pub delivery_id: Option<String>,
    /// `sha256:<hex>` of the part of the payload that must not change between retries of one
    /// delivery, so a delivery id reused for different content can be refused.
    pub payload_hash: Option<String>,
}

/// Checks that `body` is well formed for `format` and reads what identifies the delivery.
///
/// Bodies the adapter would not turn into events but that are valid for the format (an EasyPost
/// `batch.updated`, say) are accepted here: refusing them would make the partner retry forever.
pub fn inspect(format: Format, body: &[u8]) -> Result<DeliveryKey, PartnerError> {
    match format {
        Format::EasyPost => easypost::inspect(body, Need::DeliveryIdAndHash),
        Format::Csv | Format::MappedJson | Format::Canonical => Err(PartnerError::Unconfigured {
            format: format.name(),
        }),
        Format::Shippo => shippo::inspect(body, Need::DeliveryIdAndHash),
        Format::AfterShip => aftership::inspect(body, Need::DeliveryIdAndHash),
        Format::X12 => x12::inspect(body, &x12::Options::default()),
    }
}

/// Turns an accepted webhook into canonical events. Ids are deterministic
/// (`canonical::event_id(partner, source_event_id, position)`), so a replay gives the same events.
pub fn to_canonical(
    format: Format,
    webhook: &ReceivedWebhook,
) -> Result<Vec<CanonicalEvent>, PartnerError> {
    let body = webhook
        .body
        .to_bytes()
        .map_err(|_| PartnerError::Malformed {
            format: format.name(),
            reason: "webhook body is not valid base64".into(),
        })?;
    match format {
        Format::EasyPost | Format::Shippo | Format::AfterShip => {
            transform_aggregator(format, webhook).map(|transformed| transformed.events)
        }
        Format::Csv | Format::MappedJson | Format::Canonical => Err(PartnerError::Unconfigured {
            format: format.name(),
        }),
        Format::X12 => x12::to_canonical(webhook, &body, &x12::Options::default()),
    }
}

/// The aggregators' bodies carry a scan history besides the current status.
fn transform_aggregator(
    format: Format,
    webhook: &ReceivedWebhook,
) -> Result<Transformed, PartnerError> {
    let body = webhook_body(format, webhook)?;
    match format {
        Format::EasyPost => easypost::transform(webhook, &body),
        Format::Shippo => shippo::transform(webhook, &body),
        Format::AfterShip => aftership::transform(webhook, &body),
        _ => Err(PartnerError::Unconfigured {
            format: format.name(),
        }),
    }
}

/// Why a partner body could not be read. Never retryable: the same bytes give the same answer.
/// Messages name fields, never their values, so no personal data reaches logs or dead letters.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PartnerError {
    #[error("malformed {format} payload: {reason}")]
    Malformed {
        format: &'static str,
        reason: String,
    },
    #[error("unsupported {format} payload: {what}")]
    Unsupported { format: &'static str, what: String },
    #[error("unknown partner format: {name}")]
    UnknownFormat { name: String },
    #[error("no partner {partner} is configured")]
    UnknownPartner { partner: String },
    /// A configured format read without its partner's configuration (use [`Adapter`]).
    #[error("format {format} is read with its partner's configuration")]
    Unconfigured { format: &'static str },
}

impl Classify for PartnerError {
    fn class(&self) -> FailureClass {
        FailureClass::Permanent
    }

    fn code(&self) -> &'static str {
        match self {
            PartnerError::Malformed { .. } => "malformed_payload",
            PartnerError::Unsupported { .. } => "unsupported_event",
            PartnerError::UnknownFormat { .. } => "unknown_format",
            PartnerError::UnknownPartner { .. } => "unknown_partner",
            PartnerError::Unconfigured { .. } => "unconfigured_format",
        }
    }
}

impl PartnerError {
    /// For callers holding a format name from configuration or from a received webhook.
    pub fn unknown_format(name: &str) -> PartnerError {
        PartnerError::UnknownFormat {
            name: printable_prefix(name),
        }
    }
}

/// At most 64 printable characters of a partner-supplied word, so an error message quoting it
/// can neither flood a log line nor smuggle control characters into it.
pub fn printable_prefix(word: &str) -> String {
    word.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_the_hash_an_inspection_checks_as_much_and_names_the_same_delivery() {
        let partners = crate::config::PartnersFile::parse(
            "[[partner]]\nid = \"ep\"\nformat = \"easypost\"\n[partner.signature]\nscheme = \"basic\"\nsecrets = [\"u:p\"]\n\
             [[partner]]\nid = \"as\"\nformat = \"aftership\"\n[partner.signature]\nscheme = \"basic\"\nsecrets = [\"u:p\"]\n\
             [[partner]]\nid = \"sh\"\nformat = \"shippo\"\n[partner.signature]\nscheme = \"basic\"\nsecrets = [\"u:p\"]\n",
        )
        .expect("partners");
        let adapters = Adapters::from_partners(&partners).expect("adapters");
        for (partner, body) in [
            (
                "ep",
                &include_bytes!(
                    "../../tests/fixtures/partners/easypost-tracker-updated-in-transit.json"
                )[..],
            ),
            (
                "as",
                &include_bytes!(
                    "../../tests/fixtures/partners/aftership-tracking-update-in-transit-docs-trimmed.json"
                )[..],
            ),
            (
                "sh",
                &include_bytes!(
                    "../../tests/fixtures/partners/shippo-track-updated-test-webhook-delivered.json"
                )[..],
            ),
        ] {
            let adapter = adapters.get(partner).expect("adapter");
            let full = adapter.inspect(body).expect("inspects");
            let lean = adapter
                .inspect_for(body, Need::DeliveryId)
                .expect("inspects");
            assert!(full.payload_hash.is_some(), "{partner}");
            assert_eq!(lean.payload_hash, None, "{partner}");
            assert_eq!(lean.delivery_id, full.delivery_id, "{partner}");
            // A body the transform would refuse is refused all the same.
            let mut broken: serde_json::Value = serde_json::from_slice(body).expect("JSON");
            broken.as_object_mut().expect("object").clear();
            let broken = serde_json::to_vec(&broken).expect("serialises");
            assert_eq!(
                adapter.inspect(&broken).is_err(),
                adapter.inspect_for(&broken, Need::DeliveryId).is_err(),
                "{partner}"
            );
            assert!(
                adapter.inspect_for(&broken, Need::DeliveryId).is_err(),
                "{partner}"
            );
        }
    }

    #[test]
    fn format_names_round_trip_and_unknown_names_are_refused() {
        for format in Format::ALL {
            assert_eq!(Format::parse(format.name()), Some(format));
        }
        assert_eq!(Format::parse("easypost"), Some(Format::EasyPost));
        assert_eq!(Format::parse("EasyPost"), None);
        assert_eq!(Format::parse("Shippo"), None);
        assert_eq!(Format::parse("shippo"), Some(Format::Shippo));
        assert_eq!(Format::parse("aftership"), Some(Format::AfterShip));
        assert_eq!(Format::parse(""), None);
    }

    #[test]
    fn easypost_defaults_to_json_content() {
        assert_eq!(
            Format::EasyPost.default_content_types(),
            &["application/json"]
        );
    }

    #[test]
    fn every_partner_error_is_permanent_with_its_code() {
        let cases = [
            (
                PartnerError::Malformed {
                    format: "easypost",
                    reason: "missing `id`".into(),
                },
                "malformed_payload",
            ),
            (
                PartnerError::Unsupported {
                    format: "easypost",
                    what: "event `batch.updated`".into(),
                },
                "unsupported_event",
            ),
            (PartnerError::unknown_format("edi-999"), "unknown_format"),
        ];
        for (error, code) in cases {
            assert_eq!(error.class(), FailureClass::Permanent, "{error}");
            assert_eq!(error.code(), code, "{error}");
        }
    }

    #[test]
    fn quoted_partner_words_are_bounded_and_printable() {
        let long = "x".repeat(500);
        assert_eq!(printable_prefix(&long).chars().count(), 64);
        assert_eq!(printable_prefix("a\nb\u{1b}c"), "a?b?c");
    }

    #[test]
    fn undecodable_base64_body_is_malformed() {
        let webhook = ReceivedWebhook {
            ingress_id: crate::webhook::ingress_id("easypost", "evt_1"),
            partner: "easypost".into(),
            format: "easypost".into(),
            delivery_id: "evt_1".into(),
            received_at: "2024-08-02T19:26:53Z".parse().unwrap(),
            content_type: Some("application/json".into()),
            body: crate::webhook::WebhookBody::Base64("not base64!".into()),
        };
        let error = to_canonical(Format::EasyPost, &webhook).unwrap_err();
        assert_eq!(error.code(), "malformed_payload");
    }
}
