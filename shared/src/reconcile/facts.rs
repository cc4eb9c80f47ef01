//! What the shipment ledger knows that bears on one invoice: the shipment's delivery, its
//! expected cost, the lane the rate card prices, and the invoices received before. The ledger
//! builds these; judging reads nothing else.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::canonical::{Estimate, Party, ShipmentStatus};
pub use crate::canonical::{Weight, WeightUnit};

/// One shipment as the ledger knows it, keyed by carrier and tracking number.
///
/// A shipment the ledger has heard nothing of but invoices (no status, no proof of delivery, no
/// estimate, no Odoo reference; a lane read off the invoice does not count) is unknown: [`ShipmentFacts::new`] builds exactly that,
/// and the invoice is disputed as `unknown_shipment`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShipmentFacts {
    /// The carrier as partners name it (`UPS`, `FedEx`); picks the carrier's configuration,
    /// compared without regard to case.
    pub carrier: String,
    pub tracking_number: String,
    /// The Odoo picking or order reference, once known.
    pub reference: Option<String>,
    /// The latest status by partner time.
    pub status: Option<ShipmentStatus>,
    /// Present once the shipment is delivered (`shipment.delivered`).
    pub pod: Option<Pod>,
    /// The latest `freight_cost.estimated` (booking or quote): the expected cost when present.
    pub estimate: Option<Estimate>,
    /// What the rate card needs when no estimate arrived.
    pub lane: Option<LaneFacts>,
    /// Invoices the ledger holds that are on this shipment, or that carry this invoice's carrier
    /// and number on any shipment. The invoice being judged may be among them: it is recognised
    /// by its receipt ([`super::JudgeContext::receipt`]) and never counts against itself, and only
    /// invoices received before it make it a duplicate, so judging it again later (when the proof
    /// of delivery arrives) gives the same answer.
    pub invoices: Vec<InvoiceSighting>,
}

impl ShipmentFacts {
    /// A shipment the ledger knows nothing about yet.
    pub fn new(carrier: impl Into<String>, tracking_number: impl Into<String>) -> ShipmentFacts {
        ShipmentFacts {
            carrier: carrier.into(),
            tracking_number: tracking_number.into(),
            reference: None,
            status: None,
            pod: None,
            estimate: None,
            lane: None,
            invoices: Vec::new(),
        }
    }

    /// Whether the ledger has heard of the shipment from anything but invoices.
    pub fn is_known(&self) -> bool {
        self.reference.is_some()
            || self.status.is_some()
            || self.pod.is_some()
            || self.estimate.is_some()
    }
}

/// Proof of delivery as the ledger cites it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    /// How the ledger cites the proof: the document URL when the carrier gave one, else the id
    /// of the `shipment.delivered` event.
    pub reference: String,
    pub delivered_at: DateTime<Utc>,
    pub signed_by: Option<String>,
}

/// Where a shipment went and what it weighed, for the rate card.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LaneFacts {
    pub origin: Place,
    pub destination: Place,
    pub weight: Option<Weight>,
}

impl LaneFacts {
    /// The lane an invoice names: from the first shipper (`SH`) to the first consignee (`CN`)
    /// with a postal code, with the billed weight. `None` unless both ends are known.
    pub fn from_parties(parties: &[Party], weight: Option<Weight>) -> Option<LaneFacts> {
        let postal = |role: &str| {
            parties
                .iter()
                .filter(|p| p.role.eq_ignore_ascii_case(role))
                .find_map(|p| {
                    p.postal_code
                        .as_deref()
                        .map(str::trim)
                        .filter(|code| !code.is_empty())
                })
                .map(|code| Place {
                    postal_code: Some(code.to_owned()),
                    zone: None,
                })
        };
        Some(LaneFacts {
            origin: postal("SH")?,
            destination: postal("CN")?,
            weight,
        })
    }
}

/// One end of a lane: a postal code, a zone (as the carrier's contract names them), or both.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Place {
    pub postal_code: Option<String>,
    pub zone: Option<String>,
}

/// An invoice the ledger holds, for duplicate detection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceSighting {
    pub carrier: String,
    pub tracking_number: String,
    /// The carrier's invoice number.
    pub number: String,
    /// ISO 4217.
    pub currency: String,
    pub total: Decimal,
    pub receipt: Receipt,
}

/// Which `freight_invoice.received` brought an invoice, and when. Receipts are ordered by time,
/// then event id, so of two copies exactly one is the earlier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Receipt {
    pub received_at: DateTime<Utc>,
    pub event_id: Uuid,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().expect("test decimal")
    }

    #[test]
    fn a_shipment_heard_of_only_through_invoices_is_unknown() {
        let unknown = ShipmentFacts::new("UPS", "1Z1");
        assert!(!unknown.is_known());
        let edits: [fn(&mut ShipmentFacts); 4] = [
            |f| f.reference = Some("WH/OUT/00012".into()),
            |f| f.status = Some(ShipmentStatus::InTransit),
            |f| {
                f.pod = Some(Pod {
                    reference: "evt".into(),
                    delivered_at: DateTime::UNIX_EPOCH,
                    signed_by: None,
                })
            },
            |f| {
                f.estimate = Some(Estimate {
                    kind: crate::canonical::EstimateKind::Booking,
                    currency: "USD".into(),
                    total: Decimal::ONE,
                    lines: vec![],
                })
            },
        ];
        for edit in edits {
            let mut known = unknown.clone();
            edit(&mut known);
            assert!(known.is_known(), "{known:?}");
        }
        let mut invoiced = unknown.clone();
        invoiced.invoices.push(InvoiceSighting {
            carrier: "UPS".into(),
            tracking_number: "1Z1".into(),
            number: "INV-1".into(),
            currency: "USD".into(),
            total: Decimal::ONE,
            receipt: Receipt {
                received_at: DateTime::UNIX_EPOCH,
                event_id: Uuid::nil(),
            },
        });
        assert!(!invoiced.is_known());
        // The invoice's own lane is what it says, not something the ledger heard.
        invoiced.lane = Some(LaneFacts {
            origin: Place::default(),
            destination: Place::default(),
            weight: None,
        });
        assert!(!invoiced.is_known());
    }

    fn party(role: &str, postal_code: Option<&str>) -> Party {
        Party {
            postal_code: postal_code.map(Into::into),
            ..Party::new(role)
        }
    }

    #[test]
    fn an_invoice_names_its_lane_by_the_shipper_and_consignee_postal_codes() {
        let weight = Weight {
            value: d("850"),
            unit: WeightUnit::Lb,
        };
        let lane = LaneFacts::from_parties(
            &[
                party("BT", Some("07960")),
                party("SH", None),
                party("SH", Some(" 10001 ")),
                party("CN", Some("90012")),
            ],
            Some(weight),
        )
        .expect("a lane");
        assert_eq!(lane.origin.postal_code.as_deref(), Some("10001"));
        assert_eq!(lane.destination.postal_code.as_deref(), Some("90012"));
        assert_eq!(lane.weight, Some(weight));
        assert_eq!(
            LaneFacts::from_parties(&[party("SH", Some("10001"))], Some(weight)),
            None,
            "no consignee"
        );
        assert_eq!(
            LaneFacts::from_parties(&[party("SH", Some("10001")), party("CN", Some(""))], None),
            None,
            "an empty postal code"
        );
    }

    #[test]
    fn weights_convert_between_kilograms_and_pounds_exactly() {
        let lb = |v: &str| Weight {
            value: d(v),
            unit: WeightUnit::Lb,
        };
        let kg = |v: &str| Weight {
            value: d(v),
            unit: WeightUnit::Kg,
        };
        assert_eq!(lb("100").in_unit(WeightUnit::Kg), Some(d("45.359237")));
        assert_eq!(kg("45.359237").in_unit(WeightUnit::Lb), Some(d("100")));
        assert_eq!(kg("7").in_unit(WeightUnit::Kg), Some(d("7")));
        assert_eq!(lb("7").in_unit(WeightUnit::Lb), Some(d("7")));
        assert_eq!(
            Weight {
                value: Decimal::MAX,
                unit: WeightUnit::Kg
            }
            .in_unit(WeightUnit::Lb),
            None
        );
    }

    #[test]
    fn receipts_order_by_time_then_event_id() {
        let at = |s: &str| s.parse::<DateTime<Utc>>().expect("time");
        let a = Receipt {
            received_at: at("2024-08-01T10:00:00Z"),
            event_id: Uuid::from_u128(2),
        };
        let b = Receipt {
            received_at: at("2024-08-01T10:00:01Z"),
            event_id: Uuid::from_u128(1),
        };
        let c = Receipt {
            received_at: at("2024-08-01T10:00:01Z"),
            event_id: Uuid::from_u128(3),
        };
        assert!(a < b && b < c);
    }
}
