//! The reconciler's sweep over the shipment ledger: what fell through the cracks, found by age
//! (pure: the caller pages through the ledger and acts on the findings).
//!
//! - delivered, and no invoice after `uninvoiced_after` → `uninvoiced_delivery`;
//! - an invoice still waiting for its shipment's facts after `undelivered_after` →
//!   `invoice_without_delivery` (no proof of delivery) or `invoice_without_expected_cost`
//!   (delivered, no estimate and no rate card price); the reconciler then judges it as it
//!   stands and publishes the dispute;
//! - an expected cost (accrued) with no invoice after `accrual_after` → `stale_accrual`, listed
//!   for period close with its amount.
//!
//! Each sweep ends with a summary: counts and amounts by finding and carrier, and the oldest item.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ledger::LedgerEntry;

/// The ages after which the sweep reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepAges {
    pub uninvoiced_after: Duration,
    pub undelivered_after: Duration,
    pub accrual_after: Duration,
}

impl Default for SweepAges {
    fn default() -> Self {
        SweepAges {
            uninvoiced_after: Duration::days(14),
            undelivered_after: Duration::days(7),
            accrual_after: Duration::days(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    UninvoicedDelivery,
    InvoiceWithoutDelivery,
    /// Delivered, invoiced, and still no expected cost (no estimate, no rate card price).
    InvoiceWithoutExpectedCost,
    StaleAccrual,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::UninvoicedDelivery => "uninvoiced_delivery",
            FindingKind::InvoiceWithoutDelivery => "invoice_without_delivery",
            FindingKind::InvoiceWithoutExpectedCost => "invoice_without_expected_cost",
            FindingKind::StaleAccrual => "stale_accrual",
        }
    }
}

impl FindingKind {
    /// An invoice the reconciler has been holding for facts that did not come: the sweep judges
    /// it as it stands.
    pub fn is_overdue_invoice(self) -> bool {
        matches!(
            self,
            FindingKind::InvoiceWithoutDelivery | FindingKind::InvoiceWithoutExpectedCost
        )
    }
}

/// One item the sweep found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub tracking_number: String,
    pub carrier: String,
    /// The invoice, for `invoice_without_delivery`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_number: Option<String>,
    /// The amount at stake (invoiced, or accrued) and its currency, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount: Option<Decimal>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// Since when: the delivery, the invoice's receipt, the estimate.
    pub since: DateTime<Utc>,
}

impl Finding {
    pub fn age(&self, now: DateTime<Utc>) -> Duration {
        now - self.since
    }
}

/// Which ages apply to a carrier: one set for all ([`SweepAges`]), or per carrier from the
/// reconciliation configuration (`[carrier.X.sweep]`).
pub trait SweepAgesFor {
    fn ages_for(&self, carrier: &str) -> SweepAges;
}

impl SweepAgesFor for SweepAges {
    fn ages_for(&self, _carrier: &str) -> SweepAges {
        *self
    }
}

impl SweepAgesFor for super::ReconcileConfig {
    fn ages_for(&self, carrier: &str) -> SweepAges {
        self.rules_for(carrier).sweep_ages()
    }
}

/// What one entry owes the sweep at `now`. A closed shipment (every invoice settled) owes
/// nothing; the shipment's first carrier picks the ages of its delivery and accrual, each
/// invoice's carrier the ages of the invoice.
pub fn sweep_entry(
    entry: &LedgerEntry,
    now: DateTime<Utc>,
    ages: &impl SweepAgesFor,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    if entry.closed_at.is_some() {
        return findings;
    }
    let carrier = entry.carriers.first().cloned().unwrap_or_default();
    let shipment_ages = ages.ages_for(&carrier);
    let judged = |number: &str| entry.outcome_of(number).is_some();
    if let Some(pod) = &entry.delivery
        && entry.invoices.is_empty()
        && now - pod.delivered_at >= shipment_ages.uninvoiced_after
    {
        findings.push(Finding {
            kind: FindingKind::UninvoicedDelivery,
            tracking_number: entry.tracking_number.clone(),
            carrier: carrier.clone(),
            invoice_number: None,
            amount: entry.expected.as_ref().map(|e| e.estimate.total),
            currency: entry.expected.as_ref().map(|e| e.estimate.currency.clone()),
            since: pod.delivered_at,
        });
    }
    for invoice in &entry.invoices {
        let kind = match (&entry.delivery, &entry.expected) {
            (None, _) => FindingKind::InvoiceWithoutDelivery,
            (Some(_), None) => FindingKind::InvoiceWithoutExpectedCost,
            // Everything is known: the reconciler has judged it.
            (Some(_), Some(_)) => continue,
        };
        if !judged(&invoice.number)
            && now - invoice.received_at >= ages.ages_for(&invoice.carrier).undelivered_after
        {
            findings.push(Finding {
                kind,
                tracking_number: entry.tracking_number.clone(),
                carrier: invoice.carrier.clone(),
                invoice_number: Some(invoice.number.clone()),
                amount: Some(invoice.invoice.total),
                currency: Some(invoice.invoice.currency.clone()),
                since: invoice.received_at,
            });
        }
    }
    if let Some(expected) = &entry.expected
        && entry.invoices.is_empty()
        && now - expected.occurred_at >= shipment_ages.accrual_after
    {
        findings.push(Finding {
            kind: FindingKind::StaleAccrual,
            tracking_number: entry.tracking_number.clone(),
            carrier,
            invoice_number: None,
            amount: Some(expected.estimate.total),
            currency: Some(expected.estimate.currency.clone()),
            since: expected.occurred_at,
        });
    }
    findings
}

/// Counts and amounts of one finding kind for one carrier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub count: usize,
    /// By currency.
    pub amounts: BTreeMap<String, Decimal>,
}

impl Tally {
    /// Counts one more, with its amount in its currency when it has one.
    pub fn add(&mut self, amount: Option<(&str, Decimal)>) {
        self.count += 1;
        if let Some((currency, amount)) = amount {
            *self.amounts.entry(currency.to_owned()).or_default() += amount;
        }
    }
}

/// A sweep's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepSummary {
    /// Ledger entries read.
    pub entries: usize,
    /// `"<finding>/<carrier>"` → tally.
    pub by_kind_and_carrier: BTreeMap<String, Tally>,
    pub oldest: Option<Finding>,
}

impl SweepSummary {
    pub fn add(&mut self, finding: &Finding) {
        let tally = self
            .by_kind_and_carrier
            .entry(format!("{}/{}", finding.kind.as_str(), finding.carrier))
            .or_default();
        tally.add(finding.currency.as_deref().zip(finding.amount));
        if self.oldest.as_ref().is_none_or(|o| finding.since < o.since) {
            self.oldest = Some(finding.clone());
        }
    }

    pub fn findings(&self) -> usize {
        self.by_kind_and_carrier.values().map(|t| t.count).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Estimate, EstimateKind, Invoice, InvoiceDate};
    use crate::ledger::{ExpectedCost, InvoiceEntry, ProofOfDelivery};
    use chrono::TimeZone;
    use uuid::Uuid;

    fn day(d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, d, 12, 0, 0)
            .single()
            .expect("valid")
    }

    fn d(text: &str) -> Decimal {
        text.parse().expect("decimal")
    }

    fn entry() -> LedgerEntry {
        let mut entry = LedgerEntry::new("T1");
        entry.carriers.push("UPS".into());
        entry
    }

    fn delivered(entry: &mut LedgerEntry, on: DateTime<Utc>) {
        entry.delivery = Some(ProofOfDelivery {
            delivered_at: on,
            signed: true,
            document_url: None,
            event_id: Uuid::from_u128(1),
        });
    }

    fn invoiced(entry: &mut LedgerEntry, number: &str, on: DateTime<Utc>) {
        entry.invoices.push(InvoiceEntry {
            number: number.into(),
            carrier: "UPS".into(),
            partner: "ups-edi".into(),
            shipment_carrier: None,
            correlation_id: "c".into(),
            invoice: Invoice {
                number: number.into(),
                issued_on: InvoiceDate::from_ymd_opt(2026, 11, 1).expect("date"),
                currency: "USD".into(),
                total: d("120.00"),
                lines: Vec::new(),
                references: Vec::new(),
                parties: Vec::new(),
                delivered_on: None,
                weight: None,
            },
            received_at: on,
            event_id: Uuid::from_u128(2),
            repeats: 0,
        });
    }

    fn estimated(entry: &mut LedgerEntry, on: DateTime<Utc>) {
        entry.expected = Some(ExpectedCost {
            estimate: Estimate {
                kind: EstimateKind::Booking,
                currency: "USD".into(),
                total: d("100.00"),
                lines: Vec::new(),
            },
            occurred_at: on,
            event_id: Uuid::from_u128(3),
        });
    }

    fn kinds(entry: &LedgerEntry, now: DateTime<Utc>) -> Vec<FindingKind> {
        sweep_entry(entry, now, &SweepAges::default())
            .into_iter()
            .map(|f| f.kind)
            .collect()
    }

    #[test]
    fn a_delivery_not_invoiced_is_found_from_its_fourteenth_day() {
        let mut e = entry();
        delivered(&mut e, day(1));
        estimated(&mut e, day(1));
        assert!(kinds(&e, day(14)).is_empty(), "13 days");
        assert_eq!(
            kinds(&e, day(15)),
            [FindingKind::UninvoicedDelivery],
            "exactly 14 days"
        );
        invoiced(&mut e, "I1", day(16));
        assert!(kinds(&e, day(28)).is_empty(), "invoiced");
    }

    #[test]
    fn an_invoice_waiting_for_its_pod_is_found_after_seven_days_unless_judged() {
        let mut e = entry();
        invoiced(&mut e, "I1", day(1));
        assert!(kinds(&e, day(7)).is_empty());
        let found = sweep_entry(&e, day(8), &SweepAges::default());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, FindingKind::InvoiceWithoutDelivery);
        assert_eq!(found[0].invoice_number.as_deref(), Some("I1"));
        assert_eq!(found[0].amount, Some(d("120.00")));
        delivered(&mut e, day(9));
        assert_eq!(
            kinds(&e, day(20)),
            [FindingKind::InvoiceWithoutExpectedCost],
            "delivered after all, and still no expected cost"
        );
        estimated(&mut e, day(10));
        assert!(
            kinds(&e, day(20)).is_empty(),
            "everything known: judged on arrival"
        );
    }

    #[test]
    fn each_carrier_is_swept_with_its_own_ages_and_a_closed_shipment_not_at_all() {
        let config = crate::reconcile::ReconcileConfig::from_toml(
            "[carrier.UPS]\nsweep = { undelivered_days = 3 }\n",
        )
        .expect("valid");
        let mut e = entry();
        invoiced(&mut e, "I1", day(1));
        assert!(sweep_entry(&e, day(3), &config).is_empty(), "2 days");
        assert_eq!(sweep_entry(&e, day(4), &config).len(), 1, "3 days for UPS");
        e.invoices[0].carrier = "FedEx".into();
        assert!(
            sweep_entry(&e, day(4), &config).is_empty(),
            "7 days for FedEx"
        );
        e.closed_at = Some(day(5));
        let zero = SweepAges {
            uninvoiced_after: Duration::zero(),
            undelivered_after: Duration::zero(),
            accrual_after: Duration::zero(),
        };
        assert!(sweep_entry(&e, day(30), &zero).is_empty(), "closed");
    }

    #[test]
    fn an_accrual_without_invoice_is_listed_after_thirty_days_with_its_amount() {
        let mut e = entry();
        estimated(&mut e, day(1));
        assert!(kinds(&e, day(30)).is_empty());
        let found = sweep_entry(&e, day(1) + Duration::days(30), &SweepAges::default());
        assert_eq!(found[0].kind, FindingKind::StaleAccrual);
        assert_eq!(found[0].amount, Some(d("100.00")));
    }

    #[test]
    fn the_summary_counts_and_sums_by_kind_and_carrier_and_keeps_the_oldest() {
        let mut summary = SweepSummary::default();
        let mut a = entry();
        estimated(&mut a, day(1));
        let mut b = entry();
        estimated(&mut b, day(3));
        for e in [&a, &b] {
            for finding in sweep_entry(e, day(1) + Duration::days(40), &SweepAges::default()) {
                summary.add(&finding);
            }
        }
        let tally = &summary.by_kind_and_carrier["stale_accrual/UPS"];
        assert_eq!(tally.count, 2);
        assert_eq!(tally.amounts["USD"], d("200.00"));
        assert_eq!(summary.findings(), 2);
        assert_eq!(summary.oldest.as_ref().map(|o| o.since), Some(day(1)));
    }
}
