//! odoo-poster: consumes canonical events from the Odoo queue and applies each to Odoo exactly
//! once. The idempotency record (keyed by event id) suppresses duplicates. Whenever an earlier
//! attempt may have written to Odoo (an SQS redelivery, or a key taken over from a failed or
//! timed-out attempt) the operation first looks for its own earlier write, which closes the
//! window between an Odoo write that committed and an idempotency record never completed.

use chrono::{DateTime, Utc};
use freightbridge::batch::RecordContext;
use freightbridge::bus::Envelope;
use freightbridge::canonical::{CanonicalEvent, EventBody};
use freightbridge::failure::FailureReason;
use freightbridge::idempotency::{Begin, Idempotency, IdempotencyStore, sha256_tag};
use freightbridge::odoo::OdooPort;
use freightbridge::odoo::milestones;
use serde_json::json;
use tracing::Instrument as _;

/// What the poster does in Odoo for an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    /// Chatter note on the shipment's picking.
    MilestoneNote,
}

pub struct Poster<O, S> {
    odoo: O,
    idempotency: Idempotency<S>,
}

impl<O: OdooPort, S: IdempotencyStore> Poster<O, S> {
    pub fn new(odoo: O, idempotency: Idempotency<S>) -> Self {
        Self { odoo, idempotency }
    }

    pub fn odoo(&self) -> &O {
        &self.odoo
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
        self.apply(&event, ctx.is_redelivery(), now, lock_until)
            .instrument(span)
            .await
    }

    async fn apply(
        &self,
        event: &CanonicalEvent,
        redelivery: bool,
        now: DateTime<Utc>,
        lock_until: DateTime<Utc>,
    ) -> Result<(), FailureReason> {
        let operation = match &event.body {
            EventBody::StatusChanged(_) | EventBody::Delivered(_) => Operation::MilestoneNote,
            // The SAM rules route only shipment milestones here for now; anything else is a
            // routing mistake, kept in the DLQ with its reason rather than acknowledged.
            EventBody::CostEstimated(_)
            | EventBody::InvoiceReceived(_)
            | EventBody::ChargeAdded(_) => {
                return Err(FailureReason::permanent(
                    "no_odoo_operation",
                    format!(
                        "the poster has no Odoo operation for {}",
                        event.event_type()
                    ),
                ));
            }
        };
        let key = format!("odoo#{}", event.event_id);
        let payload = serde_json::to_vec(event)
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
                return Ok(());
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
        let outcome = match operation {
            Operation::MilestoneNote => {
                milestones::post_milestone_note(&self.odoo, event, check_existing)
                    .await
                    .map(|note| {
                        tracing::info!(
                            picking_id = note.picking_id,
                            message_id = ?note.message_id,
                            already_posted = note.already_posted,
                            "milestone note on picking"
                        );
                        json!({"picking_id": note.picking_id, "message_id": note.message_id})
                    })
            }
        };
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
                Ok(())
            }
            Err(e) => {
                // A failed write may still have committed in Odoo (a timeout after sending):
                // keep the record so the retry checks before writing again.
                if let Err(abandon) = self.idempotency.abandon(&key).await {
                    tracing::error!(error = %abandon, "could not release the event's key");
                }
                Err(FailureReason::from_error(&e))
            }
        }
    }
}
