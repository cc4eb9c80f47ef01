//! Duplicate invoices: the same carrier's invoice number received before (on any shipment), or
//! the same shipment billed again for the same amount under another number. Only invoices
//! received earlier count, so of two copies the later one is the duplicate, however often either
//! is judged.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::facts::{InvoiceSighting, Receipt, ShipmentFacts};
use super::money::{same_currency, show};
use crate::canonical::Invoice;

/// An earlier invoice the judged one repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Duplicate {
    pub number: String,
    pub tracking_number: String,
    pub currency: String,
    pub total: Decimal,
    pub receipt: Receipt,
    pub basis: DuplicateBasis,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateBasis {
    /// The carrier's invoice number was received before.
    SameNumber,
    /// The shipment was invoiced before, under another number, for the same total.
    SameTotalOnShipment,
}

impl Duplicate {
    /// For the dispute message, about invoice `number`.
    pub fn describe(&self, number: &str) -> String {
        let when = self.receipt.received_at.format("%Y-%m-%d %H:%M UTC");
        match self.basis {
            DuplicateBasis::SameNumber => format!(
                "invoice {number} was already received on {when} (shipment {}, {} {})",
                self.tracking_number,
                show(self.total),
                self.currency
            ),
            DuplicateBasis::SameTotalOnShipment => format!(
                "invoice {number} bills shipment {} for {} {} again: invoice {}, received on \
                 {when}, has the same total",
                self.tracking_number,
                show(self.total),
                self.currency,
                self.number
            ),
        }
    }
}

/// Identifiers compare trimmed and without case: carriers are not consistent about either.
fn same_id(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// The earlier invoices that `invoice` (received as `receipt`) repeats, oldest first.
pub(super) fn earlier_copies(
    facts: &ShipmentFacts,
    invoice: &Invoice,
    receipt: Receipt,
) -> Vec<Duplicate> {
    let basis = |seen: &InvoiceSighting| {
        if seen.receipt.event_id == receipt.event_id || seen.receipt >= receipt {
            return None;
        }
        if !same_id(&seen.carrier, &facts.carrier) {
            return None;
        }
        if same_id(&seen.number, &invoice.number) {
            return Some(DuplicateBasis::SameNumber);
        }
        let same_shipment = same_id(&seen.tracking_number, &facts.tracking_number);
        (same_shipment
            && same_currency(&seen.currency, &invoice.currency)
            && seen.total == invoice.total)
            .then_some(DuplicateBasis::SameTotalOnShipment)
    };
    let mut copies: Vec<Duplicate> = facts
        .invoices
        .iter()
        .filter_map(|seen| {
            basis(seen).map(|basis| Duplicate {
                number: seen.number.clone(),
                tracking_number: seen.tracking_number.clone(),
                currency: seen.currency.clone(),
                total: seen.total,
                receipt: seen.receipt,
                basis,
            })
        })
        .collect();
    copies.sort_by_key(|copy| copy.receipt);
    copies
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().expect("test decimal")
    }

    fn receipt(minute: u32, id: u128) -> Receipt {
        Receipt {
            received_at: format!("2024-08-01T10:{minute:02}:00Z")
                .parse::<DateTime<Utc>>()
                .expect("time"),
            event_id: Uuid::from_u128(id),
        }
    }

    fn seen(
        carrier: &str,
        tracking: &str,
        number: &str,
        total: &str,
        at: Receipt,
    ) -> InvoiceSighting {
        InvoiceSighting {
            carrier: carrier.into(),
            tracking_number: tracking.into(),
            number: number.into(),
            currency: "USD".into(),
            total: d(total),
            receipt: at,
        }
    }

    fn invoice(number: &str, total: &str) -> Invoice {
        Invoice {
            number: number.into(),
            issued_on: "2024-08-01".parse().expect("date"),
            currency: "USD".into(),
            total: d(total),
            lines: vec![],
            references: vec![],
            parties: vec![],
            delivered_on: None,
            weight: None,
        }
    }

    #[test]
    fn only_earlier_invoices_of_the_same_carrier_make_a_duplicate() {
        use DuplicateBasis::*;
        let now = receipt(30, 50);
        // (sighting, expected basis)
        let table = [
            (
                seen("UPS", "1Z1", "INV-1", "210.00", receipt(10, 1)),
                Some(SameNumber),
            ),
            // Trimmed and without case.
            (
                seen(" ups", "1Z1", "inv-1 ", "1.00", receipt(10, 1)),
                Some(SameNumber),
            ),
            // On another shipment: still the same carrier's invoice number.
            (
                seen("UPS", "1Z9", "INV-1", "99.00", receipt(10, 1)),
                Some(SameNumber),
            ),
            // Another carrier may use the same number.
            (
                seen("FedEx", "1Z1", "INV-1", "210.00", receipt(10, 1)),
                None,
            ),
            // The invoice itself, recognised by its receipt, never counts against itself.
            (seen("UPS", "1Z1", "INV-1", "210.00", now), None),
            (
                seen(
                    "UPS",
                    "1Z1",
                    "INV-1",
                    "210.00",
                    Receipt {
                        event_id: now.event_id,
                        ..receipt(10, 0)
                    },
                ),
                None,
            ),
            // A later copy makes that one the duplicate, not this one.
            (seen("UPS", "1Z1", "INV-1", "210.00", receipt(40, 2)), None),
            // Received in the same second: the event id decides.
            (
                seen("UPS", "1Z1", "INV-1", "210.00", receipt(30, 49)),
                Some(SameNumber),
            ),
            (seen("UPS", "1Z1", "INV-1", "210.00", receipt(30, 51)), None),
            // The same shipment billed again for the same total under another number.
            (
                seen("UPS", "1Z1", "INV-0", "210.00", receipt(10, 1)),
                Some(SameTotalOnShipment),
            ),
            (
                seen("UPS", "1z1", "INV-0", "210.0", receipt(10, 1)),
                Some(SameTotalOnShipment),
            ),
            // Another total, or another shipment's invoice with the same total, is not.
            (seen("UPS", "1Z1", "INV-0", "30.00", receipt(10, 1)), None),
            (seen("UPS", "1Z9", "INV-0", "210.00", receipt(10, 1)), None),
        ];
        let facts = |sighting: InvoiceSighting| ShipmentFacts {
            invoices: vec![sighting],
            ..ShipmentFacts::new("UPS", "1Z1")
        };
        for (sighting, basis) in table {
            let case = format!("{sighting:?}");
            let copies = earlier_copies(&facts(sighting), &invoice("INV-1", "210.00"), now);
            assert_eq!(copies.first().map(|c| c.basis), basis, "{case}");
            assert!(copies.len() <= 1, "{case}");
        }
        // Same total in another currency is another amount.
        let mut euros = seen("UPS", "1Z1", "INV-0", "210.00", receipt(10, 1));
        euros.currency = "EUR".into();
        assert!(earlier_copies(&facts(euros), &invoice("INV-1", "210.00"), now).is_empty());
    }

    #[test]
    fn two_copies_judged_either_way_round_leave_exactly_one_duplicate() {
        let first = receipt(10, 1);
        let second = receipt(20, 2);
        let facts = ShipmentFacts {
            invoices: vec![
                seen("UPS", "1Z1", "INV-1", "210.00", second),
                seen("UPS", "1Z1", "INV-1", "210.00", first),
            ],
            ..ShipmentFacts::new("UPS", "1Z1")
        };
        let inv = invoice("INV-1", "210.00");
        assert!(earlier_copies(&facts, &inv, first).is_empty());
        let copies = earlier_copies(&facts, &inv, second);
        assert_eq!(copies.len(), 1);
        assert_eq!(copies[0].receipt, first);
        assert_eq!(
            copies[0].describe("INV-1"),
            "invoice INV-1 was already received on 2024-08-01 10:10 UTC (shipment 1Z1, 210.00 USD)"
        );
    }

    #[test]
    fn copies_are_listed_oldest_first() {
        let facts = ShipmentFacts {
            invoices: vec![
                seen("UPS", "1Z1", "INV-0", "210.00", receipt(20, 2)),
                seen("UPS", "1Z2", "INV-1", "15.00", receipt(10, 1)),
            ],
            ..ShipmentFacts::new("UPS", "1Z1")
        };
        let copies = earlier_copies(&facts, &invoice("INV-1", "210.00"), receipt(30, 3));
        let bases: Vec<_> = copies
            .iter()
            .map(|c| (c.number.as_str(), c.basis))
            .collect();
        assert_eq!(
            bases,
            [
                ("INV-1", DuplicateBasis::SameNumber),
                ("INV-0", DuplicateBasis::SameTotalOnShipment)
            ]
        );
        assert_eq!(
            copies[1].describe("INV-1"),
            "invoice INV-1 bills shipment 1Z1 for 210.00 USD again: invoice INV-0, received on \
             2024-08-01 10:20 UTC, has the same total"
        );
    }
}
