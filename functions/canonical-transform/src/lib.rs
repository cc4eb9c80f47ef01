//! canonical-transform: consumes accepted webhooks from the transform queue (EventBridge
//! envelopes in SQS records), turns each into canonical events with the partner's adapter, and
//! publishes them on the bus. The transformation is deterministic (same input, same event ids),
//! so a redelivered record republishes identical events that the consumers dedupe. Records of a
//! body that could not be read (bad CSV rows) go to the dead-letter queue one by one, with their
//! line, while the rest of the body goes through. Aggregators repeat a shipment's whole scan
//! history in every delivery: only the scans not published before are (`freightbridge::seen`).

use chrono::{DateTime, Duration, Utc};
use freightbridge::batch::{DeadLetter, DeadLetterSink, RecordContext};
use freightbridge::bus::{BusEvent, Envelope, EventBus};
use freightbridge::canonical::{self, CanonicalEvent};
use freightbridge::failure::FailureReason;
use std::sync::Arc;

use freightbridge::partners::{Adapters, History, PartnerError, RejectedRow, Transformed};
use freightbridge::seen::SeenStore;
use freightbridge::webhook::ReceivedWebhook;
use tracing::Instrument as _;

/// The consumer name written on dead letters.
pub const CONSUMER: &str = "canonical-transform";

/// Bad rows dead-lettered one by one per record; past this, one more letter counts the rest, so
/// a file of thousands of bad rows does not become thousands of copies of itself.
pub const MAX_ROW_DEAD_LETTERS: usize = 20;

/// Where the scans already published are remembered, and for how long after a shipment's last
/// delivery (the idempotency records' time to live: a scan forgotten is published again, and
/// the poster must still know it).
pub struct SeenHistory<S> {
    pub store: S,
    pub ttl: Duration,
}

pub struct Transform<B, D, S> {
    bus: B,
    adapters: Arc<Adapters>,
    dead_letters: D,
    seen: SeenHistory<S>,
}

impl<B: EventBus, D: DeadLetterSink, S: SeenStore> Transform<B, D, S> {
    pub fn new(bus: B, adapters: Arc<Adapters>, dead_letters: D, seen: SeenHistory<S>) -> Self {
        Self {
            bus,
            adapters,
            dead_letters,
            seen,
        }
    }

    /// Process one SQS record: parse, transform, publish.
    pub async fn handle_record(&self, ctx: RecordContext) -> Result<(), FailureReason> {
        self.handle_record_at(ctx, Utc::now()).await
    }

    /// [`Self::handle_record`] at a given time (the seen histories' expiry).
    pub async fn handle_record_at(
        &self,
        ctx: RecordContext,
        now: DateTime<Utc>,
    ) -> Result<(), FailureReason> {
        let envelope: Envelope<ReceivedWebhook> = serde_json::from_str(&ctx.body)
            .map_err(|e| FailureReason::permanent("malformed_envelope", e.to_string()))?;
        let webhook = envelope.detail;
        let span = tracing::info_span!(
            "transform",
            partner = %webhook.partner,
            correlation_id = %webhook.delivery_id,
            ingress_id = %webhook.ingress_id,
        );
        async {
            let Transformed {
                events,
                rejected,
                history,
            } = match transform(&self.adapters, &webhook) {
                Ok(transformed) => transformed,
                // The partner sends more kinds of events than we act on (EasyPost
                // `batch.updated`, …): acknowledge them, loudly, rather than fill the DLQ.
                Err(PartnerError::Unsupported { what, .. }) => {
                    tracing::warn!(what = %what, "event kind not handled; acknowledged without canonical events");
                    return Ok(());
                }
                Err(e) => return Err(FailureReason::from_error(&e)),
            };
            let mut events = events;
            for history in &history {
                events = self.unseen(history, events, now).await?;
            }
            if !events.is_empty() {
                self.publish(&events).await?;
            }
            for history in &history {
                self.mark_seen(history, &events, now).await?;
            }
            if events.is_empty() && rejected.is_empty() {
                tracing::info!("delivery produced no new canonical events");
            }
            // After publishing: if the dead-letter queue is down, the record is retried and its
            // events republished under the same ids, which the consumers dedupe.
            self.dead_letter_rows(&ctx, &rejected).await
        }
        .instrument(span)
        .await
    }

    /// The events without the history entries published before.
    async fn unseen(
        &self,
        history: &History,
        events: Vec<CanonicalEvent>,
        now: DateTime<Utc>,
    ) -> Result<Vec<CanonicalEvent>, FailureReason> {
        let seen = self
            .seen
            .store
            .seen(&history.scope, now.timestamp())
            .await
            .map_err(|e| FailureReason::from_error(&e))?;
        let total = events.len();
        let fresh: Vec<CanonicalEvent> = events
            .into_iter()
            .filter(|event| {
                !(history.entries.contains(&event.event_id)
                    && seen.contains(&event.event_id.to_string()))
            })
            .collect();
        if fresh.len() < total {
            tracing::info!(
                scans_seen_before = total - fresh.len(),
                "scans published before are not published again"
            );
        }
        Ok(fresh)
    }

    /// Remembers the history entries just published. If that fails the record is retried: its
    /// events are published again under the same ids (duplicates to the poster), and marked.
    async fn mark_seen(
        &self,
        history: &History,
        published: &[CanonicalEvent],
        now: DateTime<Utc>,
    ) -> Result<(), FailureReason> {
        let entries: Vec<String> = published
            .iter()
            .filter(|event| history.entries.contains(&event.event_id))
            .map(|event| event.event_id.to_string())
            .collect();
        if entries.is_empty() {
            return Ok(());
        }
        let expires_at = (now + self.seen.ttl).timestamp();
        self.seen
            .store
            .mark(&history.scope, &entries, expires_at)
            .await
            .map_err(|e| FailureReason::from_error(&e))
    }

    async fn publish(&self, events: &[CanonicalEvent]) -> Result<(), FailureReason> {
        let bus_events = events
            .iter()
            .map(|e| BusEvent::new(canonical::BUS_SOURCE, e.event_type(), e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| FailureReason::permanent("serialisation_failed", e.to_string()))?;
        self.bus
            .publish(&bus_events)
            .await
            .map_err(|e| FailureReason::from_error(&e))?;
        for event in events {
            tracing::info!(event_id = %event.event_id, event_type = event.event_type(), "canonical event published");
        }
        Ok(())
    }

    /// One dead letter per bad row (code `bad_row`, the line in the message), carrying the
    /// record's body unchanged: once the file or the mapping is fixed, redriving it republishes
    /// the good rows under their same ids and reads the fixed ones.
    async fn dead_letter_rows(
        &self,
        ctx: &RecordContext,
        rejected: &[RejectedRow],
    ) -> Result<(), FailureReason> {
        let letter = |message: String| DeadLetter {
            body: ctx.body.clone(),
            message_id: ctx.message_id.clone(),
            reason: FailureReason::permanent("bad_row", message),
            consumer: CONSUMER.to_owned(),
            receive_count: ctx.receive_count,
        };
        let mut letters: Vec<DeadLetter> = rejected
            .iter()
            .take(MAX_ROW_DEAD_LETTERS)
            .map(|row| letter(format!("line {}: {}", row.line, row.reason)))
            .collect();
        if let Some(first_untold) = rejected.get(MAX_ROW_DEAD_LETTERS) {
            letters.push(letter(format!(
                "{} more bad rows, from line {}",
                rejected.len() - MAX_ROW_DEAD_LETTERS,
                first_untold.line
            )));
        }
        for letter in letters {
            let message = letter.reason.message.clone();
            self.dead_letters.send(letter).await.map_err(|e| {
                FailureReason::retryable(
                    "dead_letter_unavailable",
                    format!("could not dead-letter a bad row: {e}"),
                )
            })?;
            tracing::warn!(code = "bad_row", error = %message, "bad row dead-lettered; the other rows went through");
        }
        Ok(())
    }
}

/// The pure part: an accepted webhook → its canonical events (and the records that could not be
/// read), read by the partner's adapter.
pub fn transform(
    adapters: &Adapters,
    webhook: &ReceivedWebhook,
) -> Result<Transformed, PartnerError> {
    let adapter = adapters
        .get(&webhook.partner)
        .ok_or_else(|| PartnerError::UnknownPartner {
            partner: freightbridge::partners::printable_prefix(&webhook.partner),
        })?;
    if adapter.format().name() != webhook.format {
        // The partner's format changed since ingress accepted this body.
        return Err(PartnerError::unknown_format(&webhook.format));
    }
    adapter.transform(webhook)
}
