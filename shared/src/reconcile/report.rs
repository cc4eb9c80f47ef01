//! The exceptions report a finance user reads: one row per thing that needs a person — an
//! invoice disputed, an invoice still waiting for its shipment's facts, a delivery nobody
//! invoiced, an accrual that went stale — with the amount at stake, sorted by it (pure: the
//! caller pages through the ledger and renders the report).
//!
//! - an invoice whose latest outcome is `disputed` → its reason codes;
//! - an invoice with no outcome yet → the sweep's finding when it is overdue
//!   (`invoice_without_delivery`, `invoice_without_expected_cost`), else what it waits for
//!   (`awaiting_pod`, `awaiting_expected_cost`, `awaiting_judgement`);
//! - a shipment with no invoice that the sweep finds → `uninvoiced_delivery` and/or
//!   `stale_accrual`, one row for both.
//!
//! Closed shipments and matched or settled invoices are not exceptions. Amounts are totalled
//! per currency, never across currencies.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::money::same_currency;
use super::sweep::{FindingKind, SweepAgesFor, Tally, sweep_entry};
use crate::ledger::{InvoiceEntry, LedgerEntry};

/// The reason of an invoice with no proof of delivery yet, not overdue.
pub const AWAITING_POD: &str = "awaiting_pod";
/// Delivered, and neither an estimate nor a rate card price yet, not overdue.
pub const AWAITING_EXPECTED_COST: &str = "awaiting_expected_cost";
/// Every fact known and no outcome recorded yet (judged on the next delivery of the invoice).
pub const AWAITING_JUDGEMENT: &str = "awaiting_judgement";
/// A disputed invoice whose outcome names no reason code.
pub const DISPUTED: &str = "disputed";
/// The carrier of a shipment no partner named a carrier for.
pub const UNKNOWN_CARRIER: &str = "unknown";

/// One exception.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionRow {
    pub tracking_number: String,
    pub carrier: String,
    /// The invoice, for an invoice's exception; `None` for a shipment nobody invoiced.
    pub invoice_number: Option<String>,
    /// ISO 4217 (upper case) of the amounts; `None` when no amount is known.
    pub currency: Option<String>,
    /// The expected cost in the row's currency (the estimate, else the rate card's price the
    /// judgement used), when there is one.
    pub expected: Option<Decimal>,
    /// The invoice total as the carrier states it.
    pub invoiced: Option<Decimal>,
    /// `invoiced − expected`, when both are known: positive when the carrier asks for more.
    pub difference: Option<Decimal>,
    pub reasons: Vec<String>,
    /// Since when: the invoice's receipt, the delivery or the estimate (the oldest of them).
    pub since: DateTime<Utc>,
    /// Whole days from `since` to the report's time.
    pub age_days: i64,
    /// The invoiced total for an invoice, the expected cost for a shipment not invoiced (zero
    /// when that is unknown).
    pub amount_at_stake: Decimal,
}

/// The report: its rows, largest amount at stake first, and the totals its charts show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExceptionReport {
    /// The time the ages are counted to.
    pub now: DateTime<Utc>,
    /// Ledger entries read.
    pub entries: usize,
    pub rows: Vec<ExceptionRow>,
    /// Reason code → rows naming it (a row with two reasons counts under both) and their
    /// amounts at stake by currency.
    pub by_reason: BTreeMap<String, Tally>,
    /// Carrier → rows and their amounts at stake by currency.
    pub by_carrier: BTreeMap<String, Tally>,
    /// Every row's amount at stake, by currency.
    pub total: Tally,
}

impl ExceptionReport {
    /// An empty report counted to `now`; add entries with [`ExceptionReport::add`], then
    /// [`ExceptionReport::finish`].
    pub fn new(now: DateTime<Utc>) -> ExceptionReport {
        ExceptionReport {
            now,
            entries: 0,
            rows: Vec::new(),
            by_reason: BTreeMap::new(),
            by_carrier: BTreeMap::new(),
            total: Tally::default(),
        }
    }

    /// Adds one ledger entry's exceptions.
    pub fn add(&mut self, entry: &LedgerEntry, ages: &impl SweepAgesFor) {
        self.entries += 1;
        for row in entry_rows(entry, self.now, ages) {
            for reason in &row.reasons {
                tally(self.by_reason.entry(reason.clone()).or_default(), &row);
            }
            tally(
                self.by_carrier.entry(row.carrier.clone()).or_default(),
                &row,
            );
            tally(&mut self.total, &row);
            self.rows.push(row);
        }
    }

    /// Sorts the rows: largest amount at stake first, then by tracking and invoice number.
    pub fn finish(mut self) -> ExceptionReport {
        self.rows.sort_by(|a, b| {
            b.amount_at_stake
                .cmp(&a.amount_at_stake)
                .then_with(|| a.tracking_number.cmp(&b.tracking_number))
                .then_with(|| a.invoice_number.cmp(&b.invoice_number))
        });
        self
    }
}

/// The exceptions of `entries` at `now`, with each carrier's sweep ages.
pub fn exceptions<'a>(
    entries: impl IntoIterator<Item = &'a LedgerEntry>,
    now: DateTime<Utc>,
    ages: &impl SweepAgesFor,
) -> ExceptionReport {
    let mut report = ExceptionReport::new(now);
    for entry in entries {
        report.add(entry, ages);
    }
    report.finish()
}

fn tally(tally: &mut Tally, row: &ExceptionRow) {
    tally.add(row.currency.as_deref().map(|c| (c, row.amount_at_stake)));
}

fn entry_rows(
    entry: &LedgerEntry,
    now: DateTime<Utc>,
    ages: &impl SweepAgesFor,
) -> Vec<ExceptionRow> {
    let mut rows = Vec::new();
    if entry.closed_at.is_some() {
        return rows;
    }
    let findings = sweep_entry(entry, now, ages);
    for invoice in &entry.invoices {
        let reasons = match entry.outcome_of(&invoice.number) {
            Some(outcome) if outcome.outcome == DISPUTED => {
                let reasons = if outcome.reasons.is_empty() {
                    vec![DISPUTED.to_owned()]
                } else {
                    outcome.reasons.clone()
                };
                let judged = expected_judged(&outcome.evidence, &invoice.invoice.currency);
                rows.push(invoice_row(entry, invoice, reasons, judged, now));
                continue;
            }
            // Matched, settled: nothing for a person to do.
            Some(_) => continue,
            None => {
                let overdue = findings.iter().find(|f| {
                    f.kind.is_overdue_invoice()
                        && f.invoice_number.as_deref() == Some(invoice.number.as_str())
                        && f.carrier == invoice.carrier
                });
                let reason = match (overdue, &entry.delivery, &entry.expected) {
                    (Some(finding), _, _) => finding.kind.as_str(),
                    (None, None, _) => AWAITING_POD,
                    (None, Some(_), None) => AWAITING_EXPECTED_COST,
                    (None, Some(_), Some(_)) => AWAITING_JUDGEMENT,
                };
                vec![reason.to_owned()]
            }
        };
        rows.push(invoice_row(entry, invoice, reasons, None, now));
    }
    let uninvoiced: Vec<_> = findings
        .iter()
        .filter(|f| {
            matches!(
                f.kind,
                FindingKind::UninvoicedDelivery | FindingKind::StaleAccrual
            )
        })
        .collect();
    if let Some(since) = uninvoiced.iter().map(|f| f.since).min() {
        let expected = entry.expected.as_ref().map(|e| &e.estimate);
        rows.push(ExceptionRow {
            tracking_number: entry.tracking_number.clone(),
            carrier: carrier_name(entry.carriers.first().map(String::as_str)),
            invoice_number: None,
            currency: expected.map(|e| currency_code(&e.currency)),
            expected: expected.map(|e| e.total),
            invoiced: None,
            difference: None,
            reasons: uninvoiced
                .iter()
                .map(|f| f.kind.as_str().to_owned())
                .collect(),
            since,
            age_days: age_days(since, now),
            amount_at_stake: expected.map_or(Decimal::ZERO, |e| e.total),
        });
    }
    rows
}

/// An invoice's row; the expected cost is the one the judgement used when it says, else the
/// ledger's estimate, and only in the invoice's currency.
fn invoice_row(
    entry: &LedgerEntry,
    invoice: &InvoiceEntry,
    reasons: Vec<String>,
    judged: Option<Decimal>,
    now: DateTime<Utc>,
) -> ExceptionRow {
    let currency = &invoice.invoice.currency;
    let expected = judged.or_else(|| {
        entry
            .expected
            .as_ref()
            .filter(|e| same_currency(&e.estimate.currency, currency))
            .map(|e| e.estimate.total)
    });
    let invoiced = invoice.invoice.total;
    ExceptionRow {
        tracking_number: entry.tracking_number.clone(),
        carrier: carrier_name(Some(invoice.carrier.as_str())),
        invoice_number: Some(invoice.number.clone()),
        currency: Some(currency_code(currency)),
        expected,
        invoiced: Some(invoiced),
        difference: expected.map(|e| invoiced - e),
        reasons,
        since: invoice.received_at,
        age_days: age_days(invoice.received_at, now),
        amount_at_stake: invoiced,
    }
}

/// The expected total a judgement's evidence names (`expected.total`), when it is in the
/// invoice's currency. The evidence is kept as JSON in the ledger; anything else is ignored.
fn expected_judged(evidence: &Value, currency: &str) -> Option<Decimal> {
    let expected = evidence.get("expected")?;
    let same = expected
        .get("currency")
        .and_then(Value::as_str)
        .is_some_and(|c| same_currency(c, currency));
    if !same {
        return None;
    }
    match expected.get("total")? {
        Value::String(text) => text.trim().parse().ok(),
        Value::Number(number) => number.to_string().parse().ok(),
        _ => None,
    }
}

fn carrier_name(carrier: Option<&str>) -> String {
    match carrier.map(str::trim) {
        Some(name) if !name.is_empty() => name.to_owned(),
        _ => UNKNOWN_CARRIER.to_owned(),
    }
}

fn currency_code(currency: &str) -> String {
    currency.trim().to_uppercase()
}

fn age_days(since: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (now - since).num_days().max(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{Estimate, EstimateKind, Invoice, InvoiceDate};
    use crate::ledger::{ExpectedCost, MatchOutcome, ProofOfDelivery, SETTLED};
    use crate::reconcile::SweepAges;
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

    fn entry(tracking: &str, carrier: &str) -> LedgerEntry {
        let mut entry = LedgerEntry::new(tracking);
        entry.carriers.push(carrier.into());
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

    fn estimated(entry: &mut LedgerEntry, currency: &str, total: &str, on: DateTime<Utc>) {
        entry.expected = Some(ExpectedCost {
            estimate: Estimate {
                kind: EstimateKind::Booking,
                currency: currency.into(),
                total: d(total),
                lines: Vec::new(),
            },
            occurred_at: on,
            event_id: Uuid::from_u128(3),
        });
    }

    fn invoiced(
        entry: &mut LedgerEntry,
        number: &str,
        currency: &str,
        total: &str,
        on: DateTime<Utc>,
    ) {
        let carrier = entry.carriers.first().cloned().unwrap_or_default();
        entry.invoices.push(InvoiceEntry {
            number: number.into(),
            carrier,
            partner: "edi".into(),
            shipment_carrier: None,
            correlation_id: "c".into(),
            invoice: Invoice {
                number: number.into(),
                issued_on: InvoiceDate::from_ymd_opt(2026, 11, 1).expect("date"),
                currency: currency.into(),
                total: d(total),
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

    fn judged(
        entry: &mut LedgerEntry,
        number: &str,
        outcome: &str,
        reasons: &[&str],
        evidence: Value,
    ) {
        let id = Uuid::from_u128(100 + entry.outcomes.len() as u128);
        entry.record_outcome(MatchOutcome {
            invoice_number: number.into(),
            outcome: outcome.into(),
            reasons: reasons.iter().map(|r| (*r).to_owned()).collect(),
            evidence,
            at: day(5),
            event_id: id,
            event: None,
            published: true,
        });
    }

    fn report(entries: &[LedgerEntry], now: DateTime<Utc>) -> ExceptionReport {
        exceptions(entries, now, &SweepAges::default())
    }

    #[test]
    fn a_disputed_invoice_is_a_row_with_its_reasons_and_the_judged_expected_cost() {
        let mut e = entry("t1", "UPS");
        delivered(&mut e, day(1));
        estimated(&mut e, "USD", "100.00", day(1));
        invoiced(&mut e, "I-1", "usd", "130.00", day(2));
        judged(
            &mut e,
            "I-1",
            "disputed",
            &["over_tolerance", "surcharge_not_allowed"],
            serde_json::json!({"expected": {"currency": "USD", "total": "104.50"}}),
        );
        let r = report(&[e], day(12));
        assert_eq!(r.rows.len(), 1);
        let row = &r.rows[0];
        assert_eq!(row.tracking_number, "T1");
        assert_eq!(row.carrier, "UPS");
        assert_eq!(row.invoice_number.as_deref(), Some("I-1"));
        assert_eq!(row.currency.as_deref(), Some("USD"));
        assert_eq!(
            row.expected,
            Some(d("104.50")),
            "the judgement's expected cost"
        );
        assert_eq!(row.invoiced, Some(d("130.00")));
        assert_eq!(row.difference, Some(d("25.50")));
        assert_eq!(row.reasons, ["over_tolerance", "surcharge_not_allowed"]);
        assert_eq!(row.age_days, 10);
        assert_eq!(row.amount_at_stake, d("130.00"));
        assert_eq!(r.by_reason["over_tolerance"].count, 1);
        assert_eq!(
            r.by_reason["surcharge_not_allowed"].amounts["USD"],
            d("130.00")
        );
        assert_eq!(r.by_carrier["UPS"].count, 1);
        assert_eq!(r.entries, 1);
    }

    #[test]
    fn a_dispute_without_judged_expected_falls_back_to_the_estimate_or_nothing() {
        let mut e = entry("T2", "UPS");
        delivered(&mut e, day(1));
        estimated(&mut e, "EUR", "90.00", day(1));
        invoiced(&mut e, "I-2", "USD", "100.00", day(2));
        judged(&mut e, "I-2", "disputed", &[], serde_json::json!({}));
        let row = &report(&[e.clone()], day(3)).rows[0];
        assert_eq!(row.reasons, [DISPUTED]);
        assert_eq!(
            row.expected, None,
            "an estimate in another currency is not compared"
        );
        assert_eq!(row.difference, None);
        estimated(&mut e, "USD", "90.00", day(1));
        let row = &report(&[e], day(3)).rows[0];
        assert_eq!(row.expected, Some(d("90.00")));
        assert_eq!(row.difference, Some(d("10.00")));
    }

    #[test]
    fn a_waiting_invoice_says_what_it_waits_for_and_the_sweep_names_it_when_overdue() {
        let mut e = entry("T3", "FedEx");
        invoiced(&mut e, "I-3", "USD", "55.00", day(1));
        let row = &report(&[e.clone()], day(3)).rows[0];
        assert_eq!(row.reasons, [AWAITING_POD]);
        assert_eq!(row.expected, None);
        assert_eq!(row.amount_at_stake, d("55.00"));
        let row = &report(&[e.clone()], day(9)).rows[0];
        assert_eq!(row.reasons, ["invoice_without_delivery"], "past 7 days");
        delivered(&mut e, day(2));
        let row = &report(&[e.clone()], day(3)).rows[0];
        assert_eq!(row.reasons, [AWAITING_EXPECTED_COST]);
        let row = &report(&[e.clone()], day(9)).rows[0];
        assert_eq!(row.reasons, ["invoice_without_expected_cost"]);
        estimated(&mut e, "USD", "50.00", day(2));
        let row = &report(&[e], day(3)).rows[0];
        assert_eq!(row.reasons, [AWAITING_JUDGEMENT]);
        assert_eq!(row.difference, Some(d("5.00")));
    }

    #[test]
    fn an_uninvoiced_delivery_and_a_stale_accrual_are_one_row_at_the_expected_amount() {
        let mut e = entry("T4", "DHL");
        delivered(&mut e, day(2));
        estimated(&mut e, "EUR", "80.00", day(1));
        assert!(report(&[e.clone()], day(15)).rows.is_empty(), "13 days");
        let row = report(&[e.clone()], day(16)).rows[0].clone();
        assert_eq!(row.reasons, ["uninvoiced_delivery"]);
        assert_eq!(row.invoice_number, None);
        assert_eq!(row.invoiced, None);
        assert_eq!(row.expected, Some(d("80.00")));
        assert_eq!(row.amount_at_stake, d("80.00"));
        assert_eq!(row.age_days, 14);
        let later = day(1) + chrono::Duration::days(31);
        let r = report(&[e], later);
        assert_eq!(r.rows.len(), 1);
        assert_eq!(r.rows[0].reasons, ["uninvoiced_delivery", "stale_accrual"]);
        assert_eq!(r.rows[0].age_days, 31, "from the oldest: the estimate");
        assert_eq!(r.by_reason["stale_accrual"].amounts["EUR"], d("80.00"));
        assert_eq!(r.by_reason["uninvoiced_delivery"].count, 1);
        assert_eq!(r.total.count, 1, "one row for both reasons");
    }

    #[test]
    fn a_stale_accrual_alone_and_an_uninvoiced_delivery_without_estimate() {
        let mut accrued = entry("T5", "UPS");
        estimated(&mut accrued, "USD", "70.00", day(1));
        let mut bare = LedgerEntry::new("T6");
        delivered(&mut bare, day(1));
        let now = day(1) + chrono::Duration::days(30);
        let r = report(&[accrued, bare], now);
        assert_eq!(r.rows.len(), 2);
        assert_eq!(r.rows[0].reasons, ["stale_accrual"]);
        assert_eq!(r.rows[0].amount_at_stake, d("70.00"));
        assert_eq!(r.rows[1].reasons, ["uninvoiced_delivery"]);
        assert_eq!(r.rows[1].carrier, UNKNOWN_CARRIER);
        assert_eq!(r.rows[1].currency, None);
        assert_eq!(r.rows[1].amount_at_stake, Decimal::ZERO);
        assert!(r.by_carrier[UNKNOWN_CARRIER].amounts.is_empty());
    }

    #[test]
    fn closed_shipments_and_matched_or_settled_invoices_are_not_exceptions() {
        let mut closed = entry("T7", "UPS");
        invoiced(&mut closed, "I-7", "USD", "10.00", day(1));
        judged(&mut closed, "I-7", "disputed", &["no_pod"], Value::Null);
        closed.closed_at = Some(day(4));
        let mut matched = entry("T8", "UPS");
        delivered(&mut matched, day(1));
        estimated(&mut matched, "USD", "10.00", day(1));
        invoiced(&mut matched, "I-8", "USD", "10.00", day(1));
        judged(&mut matched, "I-8", "matched", &[], Value::Null);
        let mut settled = entry("T9", "UPS");
        invoiced(&mut settled, "I-9", "USD", "10.00", day(1));
        judged(&mut settled, "I-9", "disputed", &["no_pod"], Value::Null);
        judged(&mut settled, "I-9", "matched", &[], Value::Null);
        judged(&mut settled, "I-9", SETTLED, &[], Value::Null);
        let r = report(&[closed, matched, settled], day(28));
        assert!(r.rows.is_empty(), "{:?}", r.rows);
        assert_eq!(r.entries, 3);
        assert_eq!(r.total.count, 0);
    }

    #[test]
    fn rows_sort_by_amount_at_stake_then_tracking_number() {
        let mut entries = Vec::new();
        for (tracking, amount) in [
            ("B", "50.00"),
            ("A", "50.00"),
            ("C", "900.00"),
            ("D", "7.5"),
        ] {
            let mut e = entry(tracking, "UPS");
            invoiced(&mut e, &format!("I-{tracking}"), "USD", amount, day(1));
            entries.push(e);
        }
        let r = report(&entries, day(2));
        let order: Vec<&str> = r.rows.iter().map(|r| r.tracking_number.as_str()).collect();
        assert_eq!(order, ["C", "A", "B", "D"]);
        assert_eq!(r.total.amounts["USD"], d("1007.50"));
    }

    #[test]
    fn currencies_are_totalled_apart() {
        let mut usd = entry("U1", "UPS");
        invoiced(&mut usd, "I-U", "USD", "100.00", day(1));
        let mut eur = entry("E1", "UPS");
        invoiced(&mut eur, "I-E", " eur", "40.00", day(1));
        let mut usd2 = entry("U2", "UPS");
        invoiced(&mut usd2, "I-U2", "USD", "1.00", day(1));
        let r = report(&[usd, eur, usd2], day(2));
        let ups = &r.by_carrier["UPS"];
        assert_eq!(ups.count, 3);
        assert_eq!(ups.amounts.len(), 2);
        assert_eq!(ups.amounts["USD"], d("101.00"));
        assert_eq!(ups.amounts["EUR"], d("40.00"));
        assert_eq!(r.by_reason[AWAITING_POD].amounts["EUR"], d("40.00"));
        assert_eq!(r.total.amounts["USD"], d("101.00"));
    }
}
