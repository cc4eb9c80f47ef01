//! odoo-poster: consumes canonical events from the Odoo queue and applies each to Odoo exactly
//! once. The idempotency record (keyed by event id) suppresses duplicates. Whenever an earlier
//! attempt may have written to Odoo (an SQS redelivery, or a key taken over from a failed or
//! timed-out attempt) the operation first looks for its own earlier write, which closes the
//! window between an Odoo write that committed and an idempotency record never completed.
//! Finance operations also look up their natural key (vendor + invoice number, the shipment's
//! accrual references) before every write, so even a lost record never makes a second one.
//! Milestones are placed against the shipment's latest one first (`ordering`): one older than
//! the latest is noted as history, never as the current status.
//!
//! Every call to Odoo goes through the circuit breaker shared with the other pollers (kept in
//! the same store as the idempotency records): while it is open the event's key is released
//! and the record waits on its queue until the breaker reopens, without calling Odoo.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use freightbridge::audit::{Actor, AuditRecord, Auditor, Outcome, Output, Reason, Stage, Subjects};
use freightbridge::batch::RecordContext;
use freightbridge::breaker::{Admission, Breaker, BreakerConfig, BreakerStore, Observation};
use freightbridge::bus::Envelope;
use freightbridge::canonical::{CanonicalEvent, EventBody};
use freightbridge::failure::{FailureClass, FailureReason};
use freightbridge::idempotency::{Begin, Idempotency, IdempotencyStore, sha256_tag};
use freightbridge::ledger::{OdooNotes, OdooRecord};
use freightbridge::metrics;
use freightbridge::odoo::accruals::{self, Accrued, Reversal};
use freightbridge::odoo::{Finance, FinanceError, OdooPort, bills, delivery, milestones};
use freightbridge::ordering::{self, LatestMilestones, Placement};
use serde_json::{Value, json};
use tracing::Instrument as _;

/// What the poster does in Odoo for an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    /// Chatter note on the shipment's picking.
    MilestoneNote,
    /// Proof-of-delivery note, and the customer invoice's release when configured.
    DeliveryConfirmation,
    /// Accrual entry for the (revised) expected cost.
    Accrual,
    /// Draft vendor bill for the carrier's invoice.
    VendorBill,
    /// Late charge on the draft bill, or on a separate draft bill.
    LateCharge,
    /// Post the bill, reverse the accrual, allocate inbound freight.
    SettleMatched,
    /// Activity for accounts payable on the draft bill.
    Dispute,
    /// A bill Odoo shows paid: Odoo's own news, nothing for the poster to write (the poster's
    /// rule does not route it here; if something does, it is refused as `no_odoo_operation`).
    Settled,
}

impl Operation {
    /// The action the audit trail names. Delivery confirmation (the proof of delivery on the
    /// shipment) and payment approval (the matched bill posted) are separate actions.
    fn action(self) -> &'static str {
        match self {
            Operation::MilestoneNote => "milestone_noted",
            Operation::DeliveryConfirmation => "delivery_confirmed",
            Operation::Accrual => "accrual_posted",
            Operation::VendorBill => "bill_drafted",
            Operation::LateCharge => "charge_added",
            Operation::SettleMatched => "payment_approved",
            Operation::Dispute => "dispute_opened",
            Operation::Settled => "invoice_settled",
        }
    }

    fn for_event(body: &EventBody) -> Operation {
        match body {
            EventBody::StatusChanged(_) => Operation::MilestoneNote,
            EventBody::Delivered(_) => Operation::DeliveryConfirmation,
            EventBody::CostEstimated(_) => Operation::Accrual,
            EventBody::InvoiceReceived(_) => Operation::VendorBill,
            EventBody::ChargeAdded(_) => Operation::LateCharge,
            EventBody::InvoiceMatched(_) => Operation::SettleMatched,
            EventBody::InvoiceDisputed(_) => Operation::Dispute,
            EventBody::InvoiceSettled(_) => Operation::Settled,
        }
    }

    fn is_finance(self) -> bool {
        !self.is_milestone()
    }

    fn is_milestone(self) -> bool {
        matches!(
            self,
            Operation::MilestoneNote | Operation::DeliveryConfirmation
        )
    }
}

/// The breaker's name in the store: one Odoo, one breaker.
pub const ODOO_BREAKER: &str = "odoo";

pub struct Poster<O, S> {
    odoo: O,
    idempotency: Idempotency<S>,
    breaker: Breaker<S>,
    /// Finance settings and their cached reference data; without them finance events are
    /// refused and deliveries get their note only.
    finance: Option<Finance>,
    auditor: Auditor,
    /// The Odoo login the poster writes as, for the audit trail.
    odoo_user: Option<String>,
    /// Where the Odoo records written for a shipment are noted (its ledger entry).
    notes: Option<Arc<dyn OdooNotes>>,
}

impl<O: OdooPort, S: IdempotencyStore + LatestMilestones + BreakerStore + Clone> Poster<O, S> {
    pub fn new(odoo: O, idempotency: Idempotency<S>) -> Self {
        let breaker = Breaker::new(
            idempotency.store().clone(),
            ODOO_BREAKER,
            BreakerConfig::default(),
        );
        Self {
            odoo,
            idempotency,
            breaker,
            finance: None,
            auditor: Auditor::disabled(),
            odoo_user: None,
            notes: None,
        }
    }

    /// Writes each applied, duplicate or failed event to the audit trail, as `odoo_user`.
    pub fn with_audit(mut self, auditor: Auditor, odoo_user: Option<String>) -> Self {
        self.auditor = auditor;
        self.odoo_user = odoo_user;
        self
    }

    /// Replaces the default breaker settings (`BreakerConfig::default`).
    pub fn with_breaker(mut self, config: BreakerConfig) -> Self {
        self.breaker = Breaker::new(self.idempotency.store().clone(), ODOO_BREAKER, config);
        self
    }

    pub fn breaker(&self) -> &Breaker<S> {
        &self.breaker
    }

    /// Enables the finance operations (see `FinanceConfig::from_env`).
    /// Notes the Odoo records each event wrote in its shipment's ledger entry (best effort, as
    /// the audit trail: the write in Odoo stands, and a failed note is logged).
    pub fn with_odoo_notes(mut self, notes: Arc<dyn OdooNotes>) -> Self {
        self.notes = Some(notes);
        self
    }

    pub fn with_finance(mut self, finance: Finance) -> Self {
        self.finance = Some(finance);
        self
    }

    pub fn odoo(&self) -> &O {
        &self.odoo
    }

    pub fn finance(&self) -> Option<&Finance> {
        self.finance.as_ref()
    }

    /// Process one SQS record carrying a canonical event.
    pub async fn handle_record(
        &self,
        ctx: RecordContext,
        now: DateTime<Utc>,
        lock_until: DateTime<Utc>,
    ) -> Result<(), FailureReason> {
        let envelope: Envelope<CanonicalEvent> = serde_json::from_str(&ctx.body)
            .map_err(|e| FailureReason::permanent("malformed_envelope", e.to_string()))?;
        let event = envelope.detail;
        let span = tracing::info_span!(
            "post",
            correlation_id = %event.correlation_id,
            event_id = %event.event_id,
            event_type = event.event_type(),
        );
        let started = std::time::Instant::now();
        let outcome = self
            .apply(&event, ctx.is_redelivery(), now, lock_until)
            .instrument(span)
            .await;
        count_outcome(&event, &outcome, started.elapsed());
        if let Some(record) = self.record(&event, &ctx.body, &outcome, now) {
            self.note_odoo(&event, &record).await;
            self.auditor.record(&[record]).await;
        }
        outcome.map(|_| ())
    }

    /// Notes in the shipment's ledger entry the Odoo records the attempt wrote.
    async fn note_odoo(&self, event: &CanonicalEvent, record: &AuditRecord) {
        let Some(notes) = &self.notes else {
            return;
        };
        let written: Vec<OdooRecord> = record
            .outputs
            .iter()
            .filter_map(|output| match output {
                Output::Odoo { model, id } => Some(OdooRecord {
                    model: model.clone(),
                    id: *id,
                }),
                _ => None,
            })
            .collect();
        if written.is_empty() {
            return;
        }
        if let Err(error) = notes.note(&event.shipment.tracking_number, &written).await {
            tracing::warn!(
                error = %error,
                records = written.len(),
                "the shipment's ledger entry did not take its Odoo records (the audit trail has them)"
            );
        }
    }

    /// The trail's record of one attempt: applied (with the Odoo records), duplicate, refused
    /// or failing. Waits on the breaker or on another invocation are not steps of their own.
    fn record(
        &self,
        event: &CanonicalEvent,
        body: &str,
        outcome: &Result<Applied, FailureReason>,
        now: DateTime<Utc>,
    ) -> Option<AuditRecord> {
        let operation = Operation::for_event(&event.body);
        let (kind, reason, outputs) = match outcome {
            Ok(Applied::Now(result)) => (Outcome::Done, None, odoo_outputs(result)),
            Ok(Applied::Before) => (Outcome::Duplicate, None, Vec::new()),
            Err(failure)
                if matches!(failure.code.as_str(), "odoo_circuit_open" | "in_progress") =>
            {
                return None;
            }
            Err(failure) => (
                if failure.class == FailureClass::Retryable {
                    Outcome::Retrying
                } else {
                    Outcome::Refused
                },
                Some(Reason::of_failure(failure)),
                Vec::new(),
            ),
        };
        let mut record = AuditRecord::new(
            Stage::Poster,
            Actor {
                function: CONSUMER.to_owned(),
                partner: Some(event.partner.clone()),
                odoo_user: self.odoo_user.clone(),
            },
            operation.action(),
            now,
            kind,
        )
        .subjects(Subjects::of_event(event))
        .input_hash(sha256_tag(body.as_bytes()));
        record.outputs = outputs;
        record.reason = reason;
        Some(record)
    }

    async fn apply(
        &self,
        event: &CanonicalEvent,
        redelivery: bool,
        now: DateTime<Utc>,
        lock_until: DateTime<Utc>,
    ) -> Result<Applied, FailureReason> {
        let operation = Operation::for_event(&event.body);
        if operation.is_finance() && self.finance.is_none() {
            // Kept in the DLQ with its reason, not acknowledged: a redrive applies it once the
            // finance settings are deployed.
            return Err(FailureReason::permanent(
                "finance_not_configured",
                format!(
                    "{} needs the finance settings (ODOO_FINANCE_CONFIG)",
                    event.event_type()
                ),
            ));
        }
        let key = format!("odoo#{}", event.event_id);
        // The same id with another fact is refused; the same fact heard again is a duplicate.
        let payload = serde_json::to_vec(&event.fact())
            .map_err(|e| FailureReason::permanent("serialisation_failed", e.to_string()))?;
        let hash = sha256_tag(&payload);
        let begin = self
            .idempotency
            .begin(&key, Some(&hash), now, lock_until)
            .await
            .map_err(|e| FailureReason::from_error(&e))?;
        let prior_attempt = match begin {
            Begin::Completed { .. } => {
                tracing::info!("already applied to Odoo; duplicate suppressed");
                return Ok(Applied::Before);
            }
            Begin::InProgress => {
                return Err(FailureReason::retryable(
                    "in_progress",
                    "another invocation is applying this event",
                ));
            }
            Begin::PayloadMismatch => {
                return Err(FailureReason::permanent(
                    "event_id_reused",
                    "an event with this id but different content was applied before",
                ));
            }
            Begin::Proceed { prior_attempt } => prior_attempt,
        };
        let check_existing = redelivery || prior_attempt;
        if let Admission::Wait { until } = self.breaker.admit(now).await {
            self.free_key(&key, prior_attempt).await;
            tracing::info!(retry_at = %until.to_rfc3339(), "Odoo circuit open: waiting");
            return Err(FailureReason::retryable(
                "odoo_circuit_open",
                format!(
                    "Odoo stopped answering; the circuit breaker holds calls until {}",
                    until.to_rfc3339()
                ),
            )
            .not_before(until));
        }
        // Placed before the note is written, so two racing milestones are ordered by the store
        // and not by whichever note lands first. A retry of this event is placed the same way.
        let placement = if operation.is_milestone() {
            match ordering::place_event(self.idempotency.store(), event, now).await {
                Ok(placement) => placement,
                Err(e) => {
                    self.free_key(&key, prior_attempt).await;
                    return Err(FailureReason::from_error(&e));
                }
            }
        } else {
            Placement::Current
        };
        if placement == Placement::History {
            tracing::info!(
                occurred_at = %event.occurred_at,
                "older than the shipment's latest milestone: noted as history"
            );
        }
        let outcome = self.run(operation, event, placement, check_existing).await;
        let observation = match &outcome {
            Ok(_) => Observation::Answered,
            Err(e) => Observation::of_failure(&FailureReason::from_error(e)),
        };
        if let Err(e) = self.breaker.observe(observation, now).await {
            tracing::warn!(error = %e, "could not record the Odoo call on the circuit breaker");
        }
        match outcome {
            Ok(result) => {
                if let Err(e) = self
                    .idempotency
                    .complete(&key, &result.to_string(), now)
                    .await
                {
                    // Applied in Odoo; a redelivery would find the note by its marker.
                    tracing::warn!(error = %e, "could not mark the event applied");
                }
                Ok(Applied::Now(result))
            }
            Err(e) => {
                // A failed write may still have committed in Odoo (a timeout after sending):
                // keep the record so the retry checks before writing again.
                if let Err(abandon) = self.idempotency.abandon(&key).await {
                    tracing::error!(error = %abandon, "could not release the event's key");
                }
                Err(FailureReason::from_error(&e).with_odoo_error(e.odoo_error_name()))
            }
        }
    }

    /// Lets a retry take the key when nothing was written this time: an attempt before this
    /// one may have written, and then the retry must still be told to check Odoo first.
    async fn free_key(&self, key: &str, prior_attempt: bool) {
        let freed = if prior_attempt {
            self.idempotency.abandon(key).await
        } else {
            self.idempotency.release(key).await
        };
        if let Err(freed) = freed {
            tracing::error!(error = %freed, "could not release the event's key");
        }
    }

    /// Applies `operation`; the JSON is what the idempotency record keeps as the result.
    async fn run(
        &self,
        operation: Operation,
        event: &CanonicalEvent,
        placement: Placement,
        check_existing: bool,
    ) -> Result<Value, FinanceError> {
        let odoo = &self.odoo;
        let finance = self.finance.as_ref();
        let unrouted = || {
            FinanceError::refused(
                "no_odoo_operation",
                format!("no Odoo operation for {}", event.event_type()),
            )
        };
        match (operation, &event.body, finance) {
            (Operation::MilestoneNote, _, _) => {
                let note =
                    milestones::post_placed_note(odoo, event, placement, check_existing).await?;
                tracing::info!(
                    picking_id = note.picking_id,
                    message_id = ?note.message_id,
                    already_posted = note.already_posted,
                    "milestone note on picking"
                );
                Ok(
                    json!({"picking_id": note.picking_id, "message_id": note.message_id,
                          "placement": placement_name(placement)}),
                )
            }
            (Operation::DeliveryConfirmation, _, _) => {
                let done =
                    delivery::confirm_delivery(odoo, finance, event, placement, check_existing)
                        .await?;
                Ok(json!({
                    "picking_id": done.note.picking_id,
                    "message_id": done.note.message_id,
                    "placement": placement_name(placement),
                    "released_invoices": done.released_invoices,
                }))
            }
            (Operation::Accrual, EventBody::CostEstimated(c), Some(f)) => {
                Ok(match accruals::accrue(odoo, f, event, &c.estimate).await? {
                    Accrued::Posted {
                        move_id,
                        difference,
                        accrued,
                    } => json!({"accrual": "posted", "move_id": move_id,
                                "difference": difference.to_string(), "accrued": accrued.to_string()}),
                    Accrued::AlreadyApplied { move_id } => {
                        json!({"accrual": "already_applied", "move_id": move_id})
                    }
                    Accrued::Unchanged { accrued } => {
                        json!({"accrual": "unchanged", "accrued": accrued.to_string()})
                    }
                    Accrued::Stale => json!({"accrual": "stale"}),
                    Accrued::Closed => json!({"accrual": "closed"}),
                })
            }
            (Operation::VendorBill, EventBody::InvoiceReceived(r), Some(f)) => {
                let bill = bills::receive_invoice(odoo, f, event, &r.invoice).await?;
                Ok(json!({"bill_id": bill.bill_id, "created": bill.created}))
            }
            (Operation::LateCharge, EventBody::ChargeAdded(c), Some(f)) => {
                let applied = bills::add_charge(odoo, f, event, c, check_existing).await?;
                Ok(json!({"bill_id": applied.bill_id,
                          "on_original_bill": applied.on_original_bill,
                          "already_applied": applied.already_applied}))
            }
            (Operation::SettleMatched, EventBody::InvoiceMatched(m), Some(f)) => {
                let settled = bills::settle_matched(odoo, f, event, m).await?;
                let accrual = match &settled.accrual {
                    Reversal::Reversed {
                        accrual_ids,
                        reversal_ids,
                    } => json!({"reversed": accrual_ids, "reversal_ids": reversal_ids}),
                    Reversal::AlreadyReversed => json!("already_reversed"),
                    Reversal::NothingAccrued => json!("nothing_accrued"),
                };
                Ok(json!({
                    "bill_id": settled.bill_id,
                    "posted_now": settled.posted_now,
                    "accrual": accrual,
                    "landed_cost_id": settled.landed_cost.map(|l| l.landed_cost_id),
                }))
            }
            (Operation::Dispute, EventBody::InvoiceDisputed(d), Some(f)) => {
                let opened = bills::open_dispute(odoo, f, event, d, check_existing).await?;
                Ok(
                    json!({"bill_id": opened.bill_id, "activity_id": opened.activity_id,
                          "already_open": opened.already_open}),
                )
            }
            _ => Err(unrouted()),
        }
    }
}

/// What an event's turn came to.
enum Applied {
    /// Applied by this attempt; the result the idempotency record keeps.
    Now(Value),
    /// Applied before: a duplicate.
    Before,
}

/// An event's turn as metrics: applied (with how long the Odoo work took) or a duplicate.
/// Failures are counted by the batch (retries, dead letters).
fn count_outcome(
    event: &CanonicalEvent,
    outcome: &Result<Applied, FailureReason>,
    took: std::time::Duration,
) {
    let dimensions = [("EventType", event.event_type())];
    match outcome {
        Ok(Applied::Now(_)) => metrics::emit(
            &dimensions,
            &[
                (metrics::name::ODOO_APPLIED, 1.0, metrics::Unit::Count),
                (
                    metrics::name::ODOO_LATENCY,
                    took.as_secs_f64() * 1000.0,
                    metrics::Unit::Milliseconds,
                ),
            ],
        ),
        Ok(Applied::Before) => metrics::count(metrics::name::ODOO_DUPLICATE, &dimensions),
        Err(_) => {}
    }
}

/// The consumer name written on audit records (and dead letters, by the batch).
pub const CONSUMER: &str = "odoo-poster";

/// The Odoo records a stored result names, as audit outputs.
fn odoo_outputs(result: &Value) -> Vec<Output> {
    const FIELDS: [(&str, &str); 7] = [
        ("picking_id", "stock.picking"),
        ("message_id", "mail.message"),
        ("move_id", "account.move"),
        ("bill_id", "account.move"),
        ("activity_id", "mail.activity"),
        ("landed_cost_id", "stock.landed.cost"),
        ("released_invoices", "account.move"),
    ];
    let mut outputs = Vec::new();
    let mut push = |model: &str, value: &Value| {
        if let Some(id) = value.as_i64() {
            outputs.push(Output::Odoo {
                model: model.to_owned(),
                id,
            });
        }
    };
    for (field, model) in FIELDS {
        match result.get(field) {
            Some(Value::Array(ids)) => ids.iter().for_each(|id| push(model, id)),
            Some(value) => push(model, value),
            None => {}
        }
    }
    if let Some(reversed) = result.get("accrual").and_then(|a| a.get("reversal_ids")) {
        for id in reversed.as_array().into_iter().flatten() {
            push("account.move", id);
        }
    }
    outputs
}

/// How the stored result names a milestone's placement.
fn placement_name(placement: Placement) -> &'static str {
    match placement {
        Placement::Current => "current",
        Placement::History => "history",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trail_names_every_odoo_record_a_result_holds() {
        let settled = json!({"bill_id": 40, "posted_now": true,
            "accrual": {"reversed": [7], "reversal_ids": [8, 9]}, "landed_cost_id": null});
        let outputs = odoo_outputs(&settled);
        let ids: Vec<(String, i64)> = outputs
            .into_iter()
            .filter_map(|o| match o {
                Output::Odoo { model, id } => Some((model, id)),
                _ => None,
            })
            .collect();
        assert_eq!(
            ids,
            vec![
                ("account.move".to_owned(), 40),
                ("account.move".to_owned(), 8),
                ("account.move".to_owned(), 9)
            ]
        );
        let delivered = json!({"picking_id": 3, "message_id": 11, "released_invoices": [21, 22]});
        assert_eq!(odoo_outputs(&delivered).len(), 4);
        assert!(odoo_outputs(&json!({"accrual": "stale"})).is_empty());
    }

    #[test]
    fn delivery_confirmation_and_payment_approval_are_separate_actions() {
        assert_eq!(
            Operation::DeliveryConfirmation.action(),
            "delivery_confirmed"
        );
        assert_eq!(Operation::SettleMatched.action(), "payment_approved");
        let all = [
            Operation::MilestoneNote,
            Operation::DeliveryConfirmation,
            Operation::Accrual,
            Operation::VendorBill,
            Operation::LateCharge,
            Operation::SettleMatched,
            Operation::Dispute,
        ];
        let names: std::collections::HashSet<&str> = all.iter().map(|o| o.action()).collect();
        assert_eq!(names.len(), all.len());
    }
}
