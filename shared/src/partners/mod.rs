//! Partner formats: one adapter per format. Ingress asks an adapter whether a body is well formed
//! and what identifies the delivery; the canonical transform asks it for the canonical events.
//! Adapters are pure: bytes in, values or a classified error out.

pub mod easypost;
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
    X12,
}

impl Format {
    /// Every format, for configuration checks and listings.
    pub const ALL: [Format; 2] = [Format::EasyPost, Format::X12];

    /// The format named in partner configuration (`format = "easypost"`).
    pub fn parse(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|format| format.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::EasyPost => easypost::FORMAT,
            Format::X12 => x12::FORMAT,
        }
    }

    /// Content types accepted when the partner's configuration names none.
    pub fn default_content_types(self) -> &'static [&'static str] {
        match self {
            Format::EasyPost => &["application/json"],
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
    X12(x12::Options),
}

impl Adapter {
    /// An adapter for a format that takes no options.
    pub fn new(format: Format) -> Adapter {
        Adapter {
            format,
            options: FormatOptions::None,
        }
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
        match (&self.format, &self.options) {
            (Format::EasyPost, FormatOptions::None) => easypost::inspect(body),
            (Format::X12, FormatOptions::X12(options)) => x12::inspect(body, options),
            // `Adapter::new` gives a format its default options.
            (format, _) => inspect(*format, body),
        }
    }

    /// See [`to_canonical`].
    pub fn to_canonical(
        &self,
        webhook: &ReceivedWebhook,
    ) -> Result<Vec<CanonicalEvent>, PartnerError> {
        match (&self.format, &self.options) {
            (Format::EasyPost, FormatOptions::None) => to_canonical(self.format, webhook),
            (Format::X12, FormatOptions::X12(options)) => {
                x12::to_canonical(webhook, &webhook_body(self.format, webhook)?, options)
            }
            (format, _) => to_canonical(*format, webhook),
        }
    }
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
        Format::EasyPost => easypost::inspect(body),
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
        Format::EasyPost => easypost::to_canonical(webhook, &body),
        Format::X12 => x12::to_canonical(webhook, &body, &x12::Options::default()),
    }
}

/// The raw bytes of a webhook's body, for adapters called with their own options.
fn webhook_body(format: Format, webhook: &ReceivedWebhook) -> Result<Vec<u8>, PartnerError> {
    webhook
        .body
        .to_bytes()
        .map_err(|_| PartnerError::Malformed {
            format: format.name(),
            reason: "webhook body is not valid base64".into(),
        })
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
    fn format_names_round_trip_and_unknown_names_are_refused() {
        for format in Format::ALL {
            assert_eq!(Format::parse(format.name()), Some(format));
        }
        assert_eq!(Format::parse("easypost"), Some(Format::EasyPost));
        assert_eq!(Format::parse("EasyPost"), None);
        assert_eq!(Format::parse("shippo"), None);
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
