//! The reconciler's sweeps over the whole ledger, run on a schedule (EventBridge in AWS,
//! `freightctl reconcile sweep|settle` locally):
//!
//! - **findings** (`reconcile::sweep_entry`, per-carrier ages from the settings): deliveries not
//!   invoiced, invoices still waiting for their shipment's facts (never delivered, or no
//!   expected cost) — judged as they stand and their dispute published, once —, accruals with
//!   no invoice; a summary of counts and amounts by finding and carrier, with the oldest item;
//! - **settlement**: the bills freightbridge drafted that Odoo shows paid become
//!   `freight_invoice.settled`, and a shipment whose invoices are all settled is closed. Odoo is
//!   asked in pages of [`SETTLE_BATCH`] invoice numbers, never for all bills at once, and only
//!   about the ledger's open invoices.
//!
//! Both go through the ledger's outbox as the judgements do: the event is recorded with the
//! outcome, published from the record, and marked published, so two sweeps racing, or a sweep
//! stopped half-way, publish each event once with one content.

use chrono::{DateTime, Utc};
use freightbridge::audit::{Actor, AuditRecord, Outcome as AuditOutcome, Output, Stage, Subjects};
use freightbridge::bus::EventBus;
use freightbridge::canonical::{self, CanonicalEvent, EventBody};
use freightbridge::failure::FailureReason;
use freightbridge::ledger::{self, InvoiceEntry, LedgerEntry, LedgerStore, MatchOutcome};
use freightbridge::odoo::OdooPort;
use freightbridge::odoo::bills::{self, PaidBill};
use freightbridge::reconcile::{Finding, SweepSummary, sweep_entry};
use serde::Serialize;

use crate::{Reconciler, Waiting, outcome_of_invoice};

/// Ledger entries read per page.
pub const SWEEP_PAGE: usize = 500;

/// Invoice numbers asked about per Odoo call.
pub const SETTLE_BATCH: usize = 80;

/// What the findings sweep found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SweepRun {
    pub summary: SweepSummary,
    pub findings: Vec<Finding>,
    /// `invoice_without_delivery` findings disputed as `no_pod` by this sweep.
    pub disputes_published: usize,
}

/// What the settlement sweep found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SettleRun {
    /// Ledger entries read.
    pub entries: usize,
    /// Open invoices asked about.
    pub invoices_checked: usize,
    /// Odoo `search_read` calls made.
    pub odoo_queries: usize,
    pub settled: Vec<SettledInvoice>,
    /// Shipments closed by this sweep.
    pub shipments_closed: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SettledInvoice {
    pub tracking_number: String,
    pub carrier: String,
    pub invoice_number: String,
    pub bill_id: i64,
    pub payment_state: String,
    pub amount: rust_decimal::Decimal,
    pub currency: String,
    /// Whether this sweep published it (`false`: an earlier sweep had).
    pub published_now: bool,
}

/// An open invoice waiting for the answer of the Odoo page it is in.
struct Open {
    entry: LedgerEntry,
    invoice: InvoiceEntry,
}

impl<L: LedgerStore + freightbridge::ledger::LedgerDocs, B: EventBus> Reconciler<L, B> {
    /// Pages through the ledger for findings; with `dispute`, each invoice still waiting for
    /// its proof of delivery past its carrier's age is disputed as `no_pod` (published for the
    /// poster, recorded in the ledger and the trail, once).
    pub async fn sweep(
        &self,
        now: DateTime<Utc>,
        dispute: bool,
        function: &str,
    ) -> Result<SweepRun, FailureReason> {
        let mut run = SweepRun::default();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .ledger
                .page(after.as_deref(), SWEEP_PAGE)
                .await
                .map_err(|e| FailureReason::from_error(&e))?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            for (_, entry) in &page {
                run.summary.entries += 1;
                for finding in sweep_entry(entry, now, self.config.as_ref()) {
                    run.summary.add(&finding);
                    if dispute
                        && finding.kind.is_overdue_invoice()
                        && let Some(invoice) = entry
                            .invoices
                            .iter()
                            .find(|i| Some(&i.number) == finding.invoice_number.as_ref())
                        && self
                            .judge_invoice(entry, invoice, now, Waiting::Overdue, function)
                            .await?
                    {
                        run.disputes_published += 1;
                    }
                    run.findings.push(finding);
                }
            }
        }
        tracing::info!(
            entries = run.summary.entries,
            findings = run.summary.findings(),
            disputes_published = run.disputes_published,
            "ledger sweep done"
        );
        for (key, tally) in &run.summary.by_kind_and_carrier {
            let (finding, carrier) = key.split_once('/').unwrap_or((key.as_str(), ""));
            let carrier = if carrier.is_empty() {
                freightbridge::reconcile::UNKNOWN_CARRIER
            } else {
                carrier
            };
            freightbridge::metrics::emit(
                &[("Finding", finding), ("Carrier", carrier)],
                &[(
                    freightbridge::metrics::name::SWEEP_FINDINGS,
                    tally.count as f64,
                    freightbridge::metrics::Unit::Count,
                )],
            );
        }
        Ok(run)
    }

    /// Pages through the ledger's open invoices, asks Odoo which of their bills are paid
    /// ([`SETTLE_BATCH`] numbers per call), and settles those freightbridge drafted.
    pub async fn settle<O: OdooPort>(
        &self,
        odoo: &O,
        now: DateTime<Utc>,
        function: &str,
    ) -> Result<SettleRun, FailureReason> {
        let mut run = SettleRun::default();
        let mut waiting: Vec<Open> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .ledger
                .page(after.as_deref(), SWEEP_PAGE)
                .await
                .map_err(|e| FailureReason::from_error(&e))?;
            let Some((last, _)) = page.last() else {
                break;
            };
            after = Some(last.clone());
            for (_, entry) in page {
                run.entries += 1;
                if entry.closed_at.is_some() {
                    continue;
                }
                for invoice in &entry.invoices {
                    if !entry.is_settled(&invoice.number) {
                        waiting.push(Open {
                            entry: entry.clone(),
                            invoice: invoice.clone(),
                        });
                    }
                }
                if waiting.len() >= SETTLE_BATCH {
                    self.settle_batch(odoo, &mut waiting, &mut run, now, function)
                        .await?;
                }
            }
        }
        self.settle_batch(odoo, &mut waiting, &mut run, now, function)
            .await?;
        tracing::info!(
            entries = run.entries,
            invoices_checked = run.invoices_checked,
            odoo_queries = run.odoo_queries,
            settled = run.settled.len(),
            shipments_closed = run.shipments_closed,
            "settlement sweep done"
        );
        Ok(run)
    }

    async fn settle_batch<O: OdooPort>(
        &self,
        odoo: &O,
        waiting: &mut Vec<Open>,
        run: &mut SettleRun,
        now: DateTime<Utc>,
        function: &str,
    ) -> Result<(), FailureReason> {
        while !waiting.is_empty() {
            let batch: Vec<Open> = waiting.drain(..waiting.len().min(SETTLE_BATCH)).collect();
            let mut references: Vec<String> = batch
                .iter()
                .map(|o| o.invoice.number.trim().to_owned())
                .collect();
            references.sort();
            references.dedup();
            run.invoices_checked += batch.len();
            run.odoo_queries += 1;
            let paid = bills::paid_bills(odoo, &references)
                .await
                .map_err(|e| FailureReason::from_error(&e))?;
            for open in &batch {
                let Some(bill) = paid.iter().find(|b| {
                    b.reference == open.invoice.number.trim()
                        && b.drafted_from(&open.invoice.invoice)
                }) else {
                    continue;
                };
                let (event, outcome) = settlement(&open.entry, &open.invoice, bill, now);
                let (published_now, saved) =
                    self.record_and_publish(&open.entry, outcome, true).await?;
                if published_now && saved.closed_at == Some(now) {
                    run.shipments_closed += 1;
                }
                let EventBody::InvoiceSettled(settled) = &event.body else {
                    continue;
                };
                if published_now {
                    let record = sweep_record(function, &event, "invoice_settled", now).output(
                        Output::Odoo {
                            model: "account.move".to_owned(),
                            id: bill.id,
                        },
                    );
                    self.auditor.record(&[record]).await;
                }
                run.settled.push(SettledInvoice {
                    tracking_number: open.entry.tracking_number.clone(),
                    carrier: open.invoice.carrier.clone(),
                    invoice_number: open.invoice.number.clone(),
                    bill_id: bill.id,
                    payment_state: settled.payment_state.clone(),
                    amount: settled.amount_total,
                    currency: settled.currency.clone(),
                    published_now,
                });
            }
        }
        Ok(())
    }

    /// Records `outcome` (with its event, not published) unless recorded before, publishes the
    /// recorded one if it is not published yet, and marks it; answers whether this call
    /// published it, and the entry as saved (a settlement may have closed it).
    async fn record_and_publish(
        &self,
        entry: &LedgerEntry,
        outcome: MatchOutcome,
        settlement: bool,
    ) -> Result<(bool, LedgerEntry), FailureReason> {
        let event_id = outcome.event_id;
        let (saved, _) = ledger::update(&self.ledger, &entry.tracking_number, |e| {
            if settlement {
                e.record_settlement(outcome.clone())
            } else {
                e.record_outcome(outcome.clone())
            }
        })
        .await
        .map_err(|e| FailureReason::from_error(&e))?;
        let recorded = saved
            .outcomes
            .iter()
            .find(|o| o.event_id == event_id)
            .cloned()
            .unwrap_or(outcome);
        let published = self.publish_recorded(&saved, &recorded).await?;
        Ok((published, saved))
    }
}

/// The `freight_invoice.settled` for `invoice`, whose bill Odoo shows paid, and the ledger's
/// outcome. The id names the invoice and the bill, so every sweep that finds it paid names
/// the same event.
pub fn settlement(
    entry: &LedgerEntry,
    invoice: &InvoiceEntry,
    bill: &PaidBill,
    now: DateTime<Utc>,
) -> (CanonicalEvent, MatchOutcome) {
    let name = format!(
        "settled|{}|{}|{}|{}",
        invoice.carrier, invoice.number, invoice.event_id, bill.id
    );
    let currency = bill
        .currency
        .clone()
        .unwrap_or_else(|| invoice.invoice.currency.clone());
    let amount_total = bill.amount_total.unwrap_or(invoice.invoice.total);
    let event = outcome_of_invoice(
        entry,
        invoice,
        &name,
        EventBody::InvoiceSettled(canonical::InvoiceSettled {
            invoice_number: invoice.number.clone(),
            currency: currency.clone(),
            amount_total,
            bill_id: bill.id,
            bill_name: bill.name.clone(),
            payment_state: bill.payment_state.clone(),
        }),
    );
    let outcome = MatchOutcome {
        invoice_number: invoice.number.clone(),
        outcome: ledger::SETTLED.to_owned(),
        reasons: Vec::new(),
        evidence: serde_json::json!({
            "bill_id": bill.id,
            "bill_name": bill.name,
            "payment_state": bill.payment_state,
            "amount_total": amount_total.to_string(),
            "currency": currency,
        }),
        at: now,
        event_id: event.event_id,
        event: Some(event.clone()),
        published: false,
    };
    (event, outcome)
}

fn sweep_record(
    function: &str,
    event: &CanonicalEvent,
    action: &str,
    now: DateTime<Utc>,
) -> AuditRecord {
    AuditRecord::new(
        Stage::Reconciler,
        Actor {
            function: function.to_owned(),
            partner: Some(event.partner.clone()),
            odoo_user: None,
        },
        action,
        now,
        AuditOutcome::Done,
    )
    .subjects(Subjects::of_event(event))
    .output(Output::Event {
        id: event.event_id,
        event_type: event.event_type().to_owned(),
    })
}
