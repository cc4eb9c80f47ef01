//! reconciler: consumes canonical events from its own queue, keeps the shipment ledger
//! (`freightbridge::ledger`), and judges each invoice of the shipment against the expected cost
//! and the proof of delivery (`freightbridge::reconcile::judge`), publishing the outcome as
//! `freight_invoice.matched` (the poster posts the bill and reverses the accrual) or
//! `freight_invoice.disputed` (the poster opens an activity for accounts payable).
//!
//! - An invoice whose only problem is a missing proof of delivery waits for it: carriers often
//!   invoice at delivery, and the delivery scan may arrive after the invoice. Nothing is
//!   published; the POD's arrival judges it again (the sweep disputes invoices still waiting
//!   after the configured days).
//! - A matched invoice is final. A disputed one is judged again by every later event of its
//!   shipment (a revised estimate, the POD), and its outcome published only when it changed.
//! - Outcome event ids are deterministic (invoice, outcome, reasons, expected cost), so a
//!   redelivered record republishes the same event, which the poster dedupes; the ledger records
//!   each outcome once.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use freightbridge::audit::{
    Actor, AuditRecord, Auditor, Outcome as AuditOutcome, Reason, Stage, Subjects,
};
use freightbridge::batch::RecordContext;
use freightbridge::bus::{BusEvent, Envelope, EventBus};
use freightbridge::canonical::{self, CanonicalEvent, EventBody, ShipmentRef};
use freightbridge::failure::FailureReason;
use freightbridge::ledger::docs::{InvoiceIndex, LaneCost, LaneCosts, invoice_key, lane_key};
use freightbridge::ledger::{
    self, InvoiceEntry, LedgerDocs, LedgerEntry, LedgerStore, MatchOutcome, read_doc, update_doc,
};
use freightbridge::reconcile::{
    InvoiceSighting, JudgeContext, Judgement, LaneHistory, Outcome, Pod, ReasonCode, Receipt,
    ReconcileConfig, ShipmentFacts, judge,
};
use tracing::Instrument as _;
use uuid::Uuid;

pub mod sweep;

pub use sweep::{SettleRun, SettledInvoice, SweepRun};

/// The consumer name written on dead letters and audit records.
pub const CONSUMER: &str = "reconciler";

/// Namespace of the outcome event ids (UUIDv5).
const OUTCOME_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a4e_9b7d_4e0a_8c35_d1f2_a9e4_7b60);

pub struct Reconciler<L, B> {
    ledger: L,
    bus: B,
    config: Arc<ReconcileConfig>,
    auditor: Auditor,
}

impl<L: LedgerStore + LedgerDocs, B: EventBus> Reconciler<L, B> {
    pub fn new(ledger: L, bus: B, config: Arc<ReconcileConfig>) -> Self {
        Self {
            ledger,
            bus,
            config,
            auditor: Auditor::disabled(),
        }
    }

    /// Writes every published outcome to the audit trail.
    pub fn with_audit(mut self, auditor: Auditor) -> Self {
        self.auditor = auditor;
        self
    }

    pub fn ledger(&self) -> &L {
        &self.ledger
    }

    pub async fn handle_record(&self, ctx: RecordContext) -> Result<(), FailureReason> {
        self.handle_record_at(ctx, Utc::now()).await
    }

    /// [`Self::handle_record`] at a given time (the ledger's `updated_at`).
    pub async fn handle_record_at(
        &self,
        ctx: RecordContext,
        now: DateTime<Utc>,
    ) -> Result<(), FailureReason> {
        let envelope: Envelope<CanonicalEvent> = serde_json::from_str(&ctx.body)
            .map_err(|e| FailureReason::permanent("malformed_envelope", e.to_string()))?;
        let event = envelope.detail;
        let span = tracing::info_span!(
            "reconcile",
            correlation_id = %event.correlation_id,
            event_id = %event.event_id,
            event_type = event.event_type(),
        );
        self.reconcile(&event, now).instrument(span).await
    }

    async fn reconcile(
        &self,
        event: &CanonicalEvent,
        now: DateTime<Utc>,
    ) -> Result<(), FailureReason> {
        if matches!(
            event.body,
            EventBody::InvoiceMatched(_)
                | EventBody::InvoiceDisputed(_)
                | EventBody::InvoiceSettled(_)
        ) {
            // Our own outcomes: the template's rule does not route them here.
            return Ok(());
        }
        let (entry, change) = ledger::record(&self.ledger, event, now)
            .await
            .map_err(|e| FailureReason::from_error(&e))?;
        tracing::info!(?change, invoices = entry.invoices.len(), "ledger updated");
        // Judged even when the event was applied before: the earlier attempt may have stopped
        // between the ledger and the bus.
        self.judge_invoices(&entry, now).await
    }

    /// Judges every invoice of the shipment not matched yet; publishes what changed.
    async fn judge_invoices(
        &self,
        entry: &LedgerEntry,
        now: DateTime<Utc>,
    ) -> Result<(), FailureReason> {
        for invoice in &entry.invoices {
            self.judge_invoice(entry, invoice, now, Waiting::Wait, CONSUMER)
                .await?;
        }
        Ok(())
    }

    /// Judges one invoice and publishes its outcome when it changed; answers whether this call
    /// published one. A matched or settled invoice is final. An invoice still waiting for facts
    /// (the shipment unknown, no proof of delivery, no expected cost) waits — nothing is
    /// published — unless `waiting` is [`Waiting::Overdue`] (the sweep, past the carrier's age):
    /// then its dispute is published as it stands.
    pub(crate) async fn judge_invoice(
        &self,
        entry: &LedgerEntry,
        invoice: &InvoiceEntry,
        now: DateTime<Utc>,
        waiting: Waiting,
        function: &str,
    ) -> Result<bool, FailureReason> {
        let previous = entry.outcome_of(&invoice.number);
        if let Some(final_outcome) =
            previous.filter(|o| o.outcome == "matched" || o.outcome == ledger::SETTLED)
        {
            // Final; but an earlier attempt may have stopped before publishing it (and so,
            // perhaps, before counting its cost on the lane, which comes first).
            if final_outcome.outcome == "matched" && !final_outcome.published {
                self.count_lane_cost(invoice).await?;
            }
            self.publish_recorded(entry, final_outcome).await?;
            return Ok(false);
        }
        let (facts, history) = self.shipment_facts(entry, invoice, now, function).await?;
        let judgement = judge(
            &facts,
            &invoice.invoice,
            &self.config,
            &JudgeContext {
                receipt: receipt(invoice),
                fuel_price: self
                    .config
                    .fuel_price_on(&invoice.carrier, shipped_on(entry, invoice)),
                history,
            },
        );
        if waiting == Waiting::Wait && awaits_facts(&judgement) {
            tracing::info!(
                invoice = %invoice.number,
                reasons = ?judgement.reasons.iter().map(|r| r.code.as_str()).collect::<Vec<_>>(),
                "invoice waits for its shipment's facts"
            );
            return Ok(false);
        }
        let outcome = outcome_event(entry, invoice, &judgement);
        let recorded = match previous.filter(|o| o.event_id == outcome.event_id) {
            Some(recorded) => recorded.clone(),
            None => {
                // Recorded first (with the event), published second: a racing invocation
                // that judged alike finds this record and publishes the same bytes.
                let record = MatchOutcome {
                    invoice_number: invoice.number.clone(),
                    outcome: outcome_name(&judgement).to_owned(),
                    reasons: judgement
                        .reasons
                        .iter()
                        .map(|r| r.code.as_str().to_owned())
                        .collect(),
                    evidence: serde_json::to_value(&judgement.evidence)
                        .unwrap_or_else(|e| serde_json::json!({"unserialisable": e.to_string()})),
                    at: now,
                    event_id: outcome.event_id,
                    event: Some(outcome.clone()),
                    published: false,
                };
                let (saved, _) = ledger::update(&self.ledger, &entry.tracking_number, |e| {
                    e.record_outcome(record.clone())
                })
                .await
                .map_err(|e| FailureReason::from_error(&e))?;
                saved
                    .outcomes
                    .iter()
                    .find(|o| o.event_id == outcome.event_id)
                    .cloned()
                    .unwrap_or(record)
            }
        };
        if recorded.outcome == "matched" && !recorded.published {
            self.count_lane_cost(invoice).await?;
        }
        let published = self.publish_recorded(entry, &recorded).await?;
        if published {
            count_outcome(&judgement, &invoice.carrier);
            tracing::info!(
                invoice = %invoice.number,
                outcome = outcome_name(&judgement),
                outcome_event_id = %outcome.event_id,
                "invoice judged"
            );
            self.auditor
                .record(&[audit_record(&outcome, &judgement, now, function)])
                .await;
        }
        Ok(published)
    }

    /// What the ledger knows that bears on `invoice`: its shipment's facts, every receipt of
    /// its number on other shipments (from the invoice-number index, which this adds it to),
    /// and the cost history of its lane. A receipt of the number on another shipment that came
    /// after this one is judged again with the index as it now stands: whichever of two copies
    /// reached the index first, the later copy is found a duplicate while it can still be
    /// stopped (it waits for its own facts, or is matched only after both are in the index).
    async fn shipment_facts(
        &self,
        entry: &LedgerEntry,
        invoice: &InvoiceEntry,
        now: DateTime<Utc>,
        function: &str,
    ) -> Result<(ShipmentFacts, Option<LaneHistory>), FailureReason> {
        let mut facts = facts(entry, invoice);
        let sighting = sighting(entry, invoice);
        let index: InvoiceIndex = update_doc(
            &self.ledger,
            &invoice_key(&invoice.carrier, &invoice.number),
            |index: &mut InvoiceIndex| index.add(sighting.clone()),
        )
        .await
        .map_err(|e| FailureReason::from_error(&e))?;
        let elsewhere: Vec<InvoiceSighting> = index
            .sightings
            .into_iter()
            .filter(|s| {
                ledger::normalise_tracking(&s.tracking_number)
                    != ledger::normalise_tracking(&entry.tracking_number)
            })
            .collect();
        for later in elsewhere.iter().filter(|s| s.receipt > sighting.receipt) {
            Box::pin(self.judge_again(later, now, function)).await?;
        }
        facts.invoices.extend(elsewhere);
        let history = match facts
            .lane
            .as_ref()
            .and_then(|l| lane_key(&invoice.carrier, l))
        {
            Some(key) => read_doc::<_, LaneCosts>(&self.ledger, &key)
                .await
                .map_err(|e| FailureReason::from_error(&e))?
                .history(&invoice.invoice.currency, invoice.event_id),
            None => None,
        };
        Ok((facts, history))
    }

    /// Judges the invoice `sighting` names again, on its own shipment.
    async fn judge_again(
        &self,
        sighting: &InvoiceSighting,
        now: DateTime<Utc>,
        function: &str,
    ) -> Result<(), FailureReason> {
        let found = self
            .ledger
            .load(&ledger::ledger_key(&sighting.tracking_number))
            .await
            .map_err(|e| FailureReason::from_error(&e))?;
        let Some(found) = found else {
            return Ok(());
        };
        let entry = found.entry;
        if let Some(invoice) = entry
            .invoices
            .iter()
            .find(|i| i.event_id == sighting.receipt.event_id)
        {
            tracing::info!(
                invoice = %invoice.number,
                "judged again: its number was also received on another shipment"
            );
            self.judge_invoice(&entry, invoice, now, Waiting::Wait, function)
                .await?;
        }
        Ok(())
    }

    /// A matched invoice's total joins its lane's cost history (once per invoice).
    async fn count_lane_cost(&self, invoice: &InvoiceEntry) -> Result<(), FailureReason> {
        let Some(key) = invoice_lane(invoice).and_then(|l| lane_key(&invoice.carrier, &l)) else {
            return Ok(());
        };
        let cost = LaneCost {
            event_id: invoice.event_id,
            currency: invoice.invoice.currency.trim().to_uppercase(),
            total: invoice.invoice.total,
        };
        update_doc(&self.ledger, &key, |costs: &mut LaneCosts| {
            costs.add(cost.clone())
        })
        .await
        .map_err(|e| FailureReason::from_error(&e))?;
        Ok(())
    }

    /// Publishes a recorded outcome not published yet, its recorded bytes, and marks it
    /// published; answers whether it did.
    pub(crate) async fn publish_recorded(
        &self,
        entry: &LedgerEntry,
        recorded: &MatchOutcome,
    ) -> Result<bool, FailureReason> {
        if recorded.published {
            return Ok(false);
        }
        let Some(event) = &recorded.event else {
            // Recorded by an operator command, which publishes before it records.
            return Ok(false);
        };
        self.publish(event).await?;
        ledger::update(&self.ledger, &entry.tracking_number, |e| {
            e.mark_published(event.event_id)
        })
        .await
        .map_err(|e| FailureReason::from_error(&e))?;
        Ok(true)
    }

    async fn publish(&self, outcome: &CanonicalEvent) -> Result<(), FailureReason> {
        let event = BusEvent::new(
            canonical::RECONCILIATION_SOURCE,
            outcome.event_type(),
            outcome,
        )
        .map_err(|e| FailureReason::permanent("serialisation_failed", e.to_string()))?;
        self.bus
            .publish(&[event])
            .await
            .map_err(|e| FailureReason::from_error(&e))
    }
}

/// Whether an invoice may wait for facts still to come, or must be judged as it stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waiting {
    /// A fact of the shipment arrived: an invoice missing others waits for them.
    Wait,
    /// The sweep, past the carrier's age: the invoice is judged as it stands.
    Overdue,
}

/// Whether the judgement's only objections are facts that may still be on their way: the
/// shipment itself (an invoice in the same batch as its booking and scans, or ahead of them),
/// its proof of delivery (carriers invoice at delivery), its expected cost. Carriers and TMSs
/// send these independently and SQS does not order them, so disputing at once would open an
/// activity for accounts payable that the next event makes moot.
fn awaits_facts(judgement: &Judgement) -> bool {
    judgement.outcome == Outcome::Disputed
        && !judgement.reasons.is_empty()
        && judgement.reasons.iter().all(|r| {
            matches!(
                r.code,
                ReasonCode::UnknownShipment | ReasonCode::NoPod | ReasonCode::NoExpectedCost
            )
        })
}

/// A published outcome as metrics: by outcome and carrier, and for a dispute the invoiced
/// amount it holds back, by carrier and currency.
fn count_outcome(judgement: &Judgement, carrier: &str) {
    use freightbridge::metrics;
    let outcome = outcome_name(judgement);
    metrics::count(
        metrics::name::RECONCILED,
        &[("Outcome", outcome), ("Carrier", carrier)],
    );
    if !judgement.is_matched() {
        let amount = rust_decimal::prelude::ToPrimitive::to_f64(&judgement.invoiced_total)
            .unwrap_or_default();
        metrics::emit(
            &[("Carrier", carrier), ("Currency", &judgement.currency)],
            &[(metrics::name::AMOUNT_AT_STAKE, amount, metrics::Unit::None)],
        );
    }
}

fn outcome_name(judgement: &Judgement) -> &'static str {
    if judgement.is_matched() {
        "matched"
    } else {
        "disputed"
    }
}

/// What the ledger knows that bears on `invoice`, as the judgement reads it.
pub fn facts(entry: &LedgerEntry, invoice: &InvoiceEntry) -> ShipmentFacts {
    let mut facts = ShipmentFacts::new(invoice.carrier.clone(), entry.tracking_number.clone());
    facts.reference = entry.reference.clone();
    facts.status = entry.latest.as_ref().map(|l| l.status);
    facts.pod = entry.delivery.as_ref().map(|pod| Pod {
        reference: pod
            .document_url
            .clone()
            .unwrap_or_else(|| format!("shipment.delivered {}", pod.event_id)),
        delivered_at: pod.delivered_at,
        // The ledger keeps no names: whether it was signed is what the evidence needs.
        signed_by: pod.signed.then(|| "signed".to_owned()),
    });
    facts.estimate = entry.expected.as_ref().map(|e| e.estimate.clone());
    facts.lane = invoice_lane(invoice);
    facts.invoices = entry.invoices.iter().map(|i| sighting(entry, i)).collect();
    facts
}

/// The lane the invoice names (shipper and consignee postal codes, billed weight).
fn invoice_lane(invoice: &InvoiceEntry) -> Option<freightbridge::reconcile::LaneFacts> {
    freightbridge::reconcile::LaneFacts::from_parties(
        &invoice.invoice.parties,
        invoice.invoice.weight,
    )
}

fn receipt(invoice: &InvoiceEntry) -> Receipt {
    Receipt {
        received_at: invoice.received_at,
        event_id: invoice.event_id,
    }
}

fn sighting(entry: &LedgerEntry, invoice: &InvoiceEntry) -> InvoiceSighting {
    InvoiceSighting {
        carrier: invoice.carrier.clone(),
        tracking_number: entry.tracking_number.clone(),
        number: invoice.number.clone(),
        currency: invoice.invoice.currency.clone(),
        total: invoice.invoice.total,
        receipt: receipt(invoice),
    }
}

/// The day whose fuel index price applies: the delivery the invoice states, else the proof of
/// delivery's, else the invoice's date.
fn shipped_on(entry: &LedgerEntry, invoice: &InvoiceEntry) -> chrono::NaiveDate {
    invoice
        .invoice
        .delivered_on
        .or_else(|| {
            entry
                .delivery
                .as_ref()
                .map(|pod| pod.delivered_at.date_naive())
        })
        .unwrap_or(invoice.invoice.issued_on)
}

/// The outcome as a canonical event, under the invoice's partner and carrier (so the poster
/// finds the bill it drafted) and at the invoice's time (so a republished outcome is the same
/// fact). Its id names the invoice and the judgement's substance.
pub fn outcome_event(
    entry: &LedgerEntry,
    invoice: &InvoiceEntry,
    judgement: &Judgement,
) -> CanonicalEvent {
    let reasons: Vec<&str> = judgement.reasons.iter().map(|r| r.code.as_str()).collect();
    let expected = judgement
        .evidence
        .expected
        .as_ref()
        .map(|e| e.total.to_string())
        .unwrap_or_default();
    let name = format!(
        "{}|{}|{}|{}|{}|{}",
        invoice.carrier,
        invoice.number,
        invoice.event_id,
        outcome_name(judgement),
        reasons.join(","),
        expected
    );
    outcome_of_invoice(entry, invoice, &name, judgement.canonical_body())
}

fn audit_record(
    outcome: &CanonicalEvent,
    judgement: &Judgement,
    now: DateTime<Utc>,
    function: &str,
) -> AuditRecord {
    let mut record = AuditRecord::new(
        Stage::Reconciler,
        Actor {
            function: function.to_owned(),
            partner: Some(outcome.partner.clone()),
            odoo_user: None,
        },
        if judgement.is_matched() {
            "invoice_matched"
        } else {
            "invoice_disputed"
        },
        now,
        AuditOutcome::Done,
    )
    .subjects(Subjects::of_event(outcome))
    .output(freightbridge::audit::Output::Event {
        id: outcome.event_id,
        event_type: outcome.event_type().to_owned(),
    });
    if !judgement.is_matched() {
        let codes: Vec<&str> = judgement.reasons.iter().map(|r| r.code.as_str()).collect();
        let message: Vec<&str> = judgement
            .reasons
            .iter()
            .map(|r| r.message.as_str())
            .collect();
        record = record.reason(Reason::new(&codes.join(","), &message.join("; ")));
    }
    record
}

/// An outcome about `invoice` as a canonical event: under the invoice's partner and carrier (so
/// the poster finds the bill it drafted), at the invoice's time (so a republished outcome is
/// the same fact), with an id named by `name` (UUIDv5).
pub(crate) fn outcome_of_invoice(
    entry: &LedgerEntry,
    invoice: &InvoiceEntry,
    name: &str,
    body: EventBody,
) -> CanonicalEvent {
    CanonicalEvent {
        schema: canonical::SCHEMA.to_owned(),
        event_id: Uuid::new_v5(&OUTCOME_NAMESPACE, name.as_bytes()),
        partner: invoice.partner.clone(),
        source_event_id: invoice.event_id.to_string(),
        correlation_id: invoice.correlation_id.clone(),
        occurred_at: invoice.received_at,
        received_at: invoice.received_at,
        shipment: ShipmentRef {
            tracking_number: entry.tracking_number.clone(),
            carrier: invoice.shipment_carrier.clone(),
            reference: None,
        },
        body,
    }
}

/// Why a person's approval of a disputed invoice was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalRefused {
    /// No shipment in the ledger has an invoice with this number.
    UnknownInvoice,
    /// The invoice is matched already: there is nothing to approve.
    AlreadyMatched,
    /// The reconciler has not disputed it (it may be waiting for its proof of delivery).
    NotDisputed,
    /// Segregation of duties: the approver confirmed the shipment's delivery.
    ApproverConfirmedDelivery { user: String },
}

impl std::fmt::Display for ApprovalRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApprovalRefused::UnknownInvoice => {
                write!(f, "no shipment in the ledger has this invoice")
            }
            ApprovalRefused::AlreadyMatched => write!(f, "the invoice is matched already"),
            ApprovalRefused::NotDisputed => write!(
                f,
                "the reconciler has not disputed this invoice (it may be waiting for its proof of delivery)"
            ),
            ApprovalRefused::ApproverConfirmedDelivery { user } => write!(
                f,
                "segregation of duties: {user} confirmed the shipment's delivery and cannot approve its payment"
            ),
        }
    }
}

/// A person's approval of a disputed invoice: the `freight_invoice.matched` to publish (its id
/// names the invoice and the approver, so approving twice publishes one event) and the outcome
/// the ledger records, with the approver, the reason and the reasons overruled as evidence.
///
/// `delivery_confirmed_by` are the users the audit trail shows confirming the delivery; with
/// `segregate` the approver may not be one of them.
pub fn approve(
    entry: &LedgerEntry,
    invoice_number: &str,
    approver: &str,
    reason: &str,
    delivery_confirmed_by: &[String],
    segregate: bool,
    now: DateTime<Utc>,
) -> Result<(CanonicalEvent, MatchOutcome), ApprovalRefused> {
    let invoice = entry
        .invoices
        .iter()
        .find(|i| i.number == invoice_number)
        .ok_or(ApprovalRefused::UnknownInvoice)?;
    let previous = entry
        .outcome_of(invoice_number)
        .ok_or(ApprovalRefused::NotDisputed)?;
    if previous.outcome == "matched" {
        return Err(ApprovalRefused::AlreadyMatched);
    }
    if segregate
        && let Some(user) = delivery_confirmed_by
            .iter()
            .find(|u| u.trim().eq_ignore_ascii_case(approver.trim()))
    {
        return Err(ApprovalRefused::ApproverConfirmedDelivery { user: user.clone() });
    }
    let name = format!(
        "approved|{}|{}|{}|{}",
        invoice.carrier,
        invoice.number,
        invoice.event_id,
        approver.trim().to_lowercase()
    );
    let event = outcome_of_invoice(
        entry,
        invoice,
        &name,
        EventBody::InvoiceMatched(canonical::InvoiceMatched {
            invoice_number: invoice.number.clone(),
            currency: invoice.invoice.currency.clone(),
            invoiced_total: invoice.invoice.total,
            expected_total: entry.expected.as_ref().map(|e| e.estimate.total),
        }),
    );
    let outcome = MatchOutcome {
        invoice_number: invoice.number.clone(),
        outcome: "matched".to_owned(),
        reasons: Vec::new(),
        evidence: serde_json::json!({
            "approved_by": approver,
            "reason": reason,
            "overruled": previous.reasons,
            "disputed_event_id": previous.event_id,
        }),
        at: now,
        event_id: event.event_id,
        event: Some(event.clone()),
        published: true,
    };
    Ok((event, outcome))
}
