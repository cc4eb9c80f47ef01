//! Freight accounting in Odoo: the settings and reference data every finance operation shares,
//! their error type, and the markers that let an operation recognise its own earlier writes
//! (each Odoo call is its own transaction, so every operation must be safe to repeat).

use thiserror::Error;

use crate::canonical::{CanonicalEvent, ChargeKind};
use crate::failure::{Classify, FailureClass};

use super::OdooPort;
use super::error::OdooError;
use super::finance_config::{FinanceConfig, OdooRef};
use super::money::MoneyError;
use super::reference::{Kind, ReferenceData};

/// The finance settings and the reference data resolved from them, shared by every invocation
/// of one execution environment (a Lambda container, the local chain).
#[derive(Debug)]
pub struct Finance {
    config: FinanceConfig,
    reference: ReferenceData,
}

impl Finance {
    pub fn new(config: FinanceConfig) -> Self {
        Self {
            reference: ReferenceData::new(&config),
            config,
        }
    }

    pub fn config(&self) -> &FinanceConfig {
        &self.config
    }

    pub fn reference(&self) -> &ReferenceData {
        &self.reference
    }

    /// The vendor (`res.partner` id) of the event's carrier, as the settings map it.
    pub async fn carrier_partner(
        &self,
        odoo: &impl OdooPort,
        event: &CanonicalEvent,
    ) -> Result<i64, FinanceError> {
        let carrier = carrier_key(event);
        let setting = format!("carriers.{carrier}");
        let Some(partner) = self.config.carriers.get(carrier) else {
            return Err(FinanceError::missing(
                setting,
                "the finance settings name no vendor for this carrier",
            ));
        };
        if let Some(id) = partner.id {
            return Ok(id);
        }
        if let Some(reference) = &partner.reference {
            return self
                .reference
                .resolve(odoo, Kind::PartnerRef, reference, &setting)
                .await;
        }
        match &partner.xmlid {
            Some(xmlid) => {
                self.reference
                    .resolve(odoo, Kind::XmlId, xmlid, &setting)
                    .await
            }
            None => Err(FinanceError::Config(format!(
                "{setting} needs one of ref, xmlid or id"
            ))),
        }
    }

    /// Where a bill line of `kind` books to: account, optional product, explicit taxes.
    pub async fn charge_booking(
        &self,
        odoo: &impl OdooPort,
        kind: ChargeKind,
    ) -> Result<ChargeBooking, FinanceError> {
        let setting = format!("charges.{}", kind.as_str());
        let Some(mapping) = self.config.charges.get(&kind) else {
            return Err(FinanceError::missing(
                setting,
                "the finance settings say nothing about this charge kind",
            ));
        };
        let account_id = self
            .reference
            .record(
                odoo,
                Kind::Account,
                &mapping.account,
                &format!("{setting}.account"),
            )
            .await?;
        let product_id = match &mapping.product {
            Some(product) => Some(
                self.reference
                    .record(odoo, Kind::Product, product, &format!("{setting}.product"))
                    .await?,
            ),
            None => None,
        };
        Ok(ChargeBooking {
            account_id,
            product_id,
            tax_ids: mapping.taxes.clone(),
        })
    }

    /// A journal named in the settings at `setting`.
    pub async fn journal(
        &self,
        odoo: &impl OdooPort,
        journal: &OdooRef,
        setting: &str,
    ) -> Result<i64, FinanceError> {
        self.reference
            .record(odoo, Kind::Journal, journal, setting)
            .await
    }
}

/// The Odoo side of one charge kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeBooking {
    pub account_id: i64,
    pub product_id: Option<i64>,
    pub tax_ids: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FinanceError {
    #[error(transparent)]
    Odoo(#[from] OdooError),
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error("finance settings: {0}")]
    Config(String),
    /// A mapping the operation needs is not configured, or names nothing in Odoo.
    #[error("missing mapping {key}: {detail}")]
    MissingMapping { key: String, detail: String },
    #[error("ambiguous mapping {key}: {detail}")]
    AmbiguousMapping { key: String, detail: String },
    /// The carrier sent an invoice number it already used for a different invoice.
    #[error(
        "invoice {number} of carrier {carrier} was received before with other content (bill id {bill_id}); not creating a second bill"
    )]
    InvoiceNumberReused {
        carrier: String,
        number: String,
        bill_id: i64,
    },
    /// The bill an outcome refers to is not in Odoo (yet: events are not ordered).
    #[error("no vendor bill {number} of carrier {carrier} in Odoo")]
    BillNotFound { carrier: String, number: String },
    #[error("{message}")]
    Refused { code: &'static str, message: String },
}

impl FinanceError {
    /// Odoo's exception name, when Odoo refused the operation.
    pub fn odoo_error_name(&self) -> Option<&str> {
        match self {
            FinanceError::Odoo(e) => e.name.as_deref(),
            _ => None,
        }
    }

    pub fn refused(code: &'static str, message: impl Into<String>) -> Self {
        FinanceError::Refused {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn missing(key: impl Into<String>, detail: impl Into<String>) -> Self {
        FinanceError::MissingMapping {
            key: key.into(),
            detail: detail.into(),
        }
    }
}

impl Classify for FinanceError {
    fn class(&self) -> FailureClass {
        match self {
            FinanceError::Odoo(e) => e.class(),
            FinanceError::Money(e) => e.class(),
            // The received event may still be on its way (the queue does not keep order):
            // retry, and let the DLQ keep it if the bill never comes.
            FinanceError::BillNotFound { .. } => FailureClass::Retryable,
            FinanceError::Config(_)
            | FinanceError::MissingMapping { .. }
            | FinanceError::AmbiguousMapping { .. }
            | FinanceError::InvoiceNumberReused { .. }
            | FinanceError::Refused { .. } => FailureClass::Permanent,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            FinanceError::Odoo(e) => e.code(),
            FinanceError::Money(e) => e.code(),
            FinanceError::Config(_) => "finance_config",
            FinanceError::MissingMapping { .. } => "missing_mapping",
            FinanceError::AmbiguousMapping { .. } => "ambiguous_mapping",
            FinanceError::InvoiceNumberReused { .. } => "invoice_number_reused",
            FinanceError::BillNotFound { .. } => "vendor_bill_not_found",
            FinanceError::Refused { code, .. } => code,
        }
    }
}

/// The carrier an event's money is owed to: its `shipment.carrier`, else the partner that
/// reported it (an EDI sender is the carrier itself).
pub fn carrier_key(event: &CanonicalEvent) -> &str {
    event
        .shipment
        .carrier
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .unwrap_or(&event.partner)
}

/// A short, stable tag of the event for labels and references (`fb:1a2b3c4d`): unique enough
/// within one bill or shipment, short enough for a bill line.
pub fn event_tag(event: &CanonicalEvent) -> String {
    let simple = event.event_id.simple().to_string();
    format!("fb:{}", &simple[..8])
}

/// Partner text on one line, without control characters, cut to `max` characters.
pub(crate) fn one_line(s: &str, max: usize) -> String {
    let flat = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    match flat.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &flat[..cut]),
        None => flat,
    }
}

#[cfg(test)]
mod tests {
    use crate::canonical::{
        EventBody, SCHEMA, ShipmentRef, ShipmentStatus, StatusChange, event_id,
    };
    use crate::odoo::OdooErrorKind;

    use super::*;

    fn event(carrier: Option<&str>) -> CanonicalEvent {
        CanonicalEvent {
            schema: SCHEMA.into(),
            event_id: event_id("ups-edi", "ISA-1", 0),
            partner: "ups-edi".into(),
            source_event_id: "ISA-1".into(),
            correlation_id: "ISA-1".into(),
            occurred_at: "2008-07-26T00:00:00Z".parse().unwrap(),
            received_at: "2008-07-26T00:00:00Z".parse().unwrap(),
            shipment: ShipmentRef {
                tracking_number: "1Z1808WW0473048017".into(),
                carrier: carrier.map(Into::into),
                reference: None,
            },
            body: EventBody::StatusChanged(StatusChange {
                status: ShipmentStatus::InTransit,
                status_detail: None,
                raw_status: None,
                location: None,
                message: None,
                eta: None,
            }),
        }
    }

    #[test]
    fn the_carrier_falls_back_to_the_reporting_partner() {
        assert_eq!(carrier_key(&event(Some(" UPSN "))), "UPSN");
        assert_eq!(carrier_key(&event(Some(""))), "ups-edi");
        assert_eq!(carrier_key(&event(None)), "ups-edi");
    }

    #[test]
    fn event_tags_are_short_and_stable() {
        let tag = event_tag(&event(None));
        assert_eq!(tag, event_tag(&event(Some("UPSN"))));
        assert_eq!(tag.len(), 11);
        assert!(tag.starts_with("fb:"));
    }

    #[test]
    fn errors_say_whether_to_retry() {
        let cases: Vec<(FinanceError, FailureClass, &str)> = vec![
            (
                OdooError::new(OdooErrorKind::Timeout, "slow").into(),
                FailureClass::Retryable,
                "odoo_timeout",
            ),
            (
                FinanceError::missing("carriers.UPSN", "not configured"),
                FailureClass::Permanent,
                "missing_mapping",
            ),
            (
                FinanceError::BillNotFound {
                    carrier: "UPSN".into(),
                    number: "1".into(),
                },
                FailureClass::Retryable,
                "vendor_bill_not_found",
            ),
            (
                FinanceError::InvoiceNumberReused {
                    carrier: "UPSN".into(),
                    number: "1".into(),
                    bill_id: 3,
                },
                FailureClass::Permanent,
                "invoice_number_reused",
            ),
            (
                FinanceError::refused("negative_invoice_total", "credit"),
                FailureClass::Permanent,
                "negative_invoice_total",
            ),
        ];
        for (error, class, code) in cases {
            assert_eq!(error.class(), class, "{error}");
            assert_eq!(error.code(), code, "{error}");
        }
    }

    #[test]
    fn partner_text_is_flattened_and_cut() {
        assert_eq!(one_line(" a\n b\t", 10), "a b");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
