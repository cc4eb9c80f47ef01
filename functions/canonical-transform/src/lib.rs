//! canonical-transform: consumes accepted webhooks from the transform queue (EventBridge
//! envelopes in SQS records), turns each into canonical events with the partner's adapter, and
//! publishes them on the bus. The transformation is deterministic (same input, same event ids),
//! so a redelivered record republishes identical events that the consumers dedupe. Records of a
//! body that could not be read (bad CSV rows) go to the dead-letter queue one by one, with their
//! line, while the rest of the body goes through. Aggregators repeat a shipment's whole scan
//! history in every delivery: only the scans not published before are (`freightbridge::seen`).

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use freightbridge::audit::{Actor, AuditRecord, Auditor, Outcome, Output, Reason, Stage, Subjects};
use freightbridge::batch::{DeadLetter, DeadLetterSink, RecordContext};
use freightbridge::bus::{BusEvent, Envelope, EventBus};
use freightbridge::canonical::{self, CanonicalEvent};
use freightbridge::failure::FailureReason;
use futures::StreamExt as _;
use std::sync::Arc;

use freightbridge::idempotency::{StoreError, sha256_tag};
use freightbridge::partners::{Adapters, History, PartnerError, RejectedRow, Transformed};
use freightbridge::seen::SeenStore;
use freightbridge::webhook::ReceivedWebhook;
use tracing::Instrument as _;
use uuid::Uuid;

/// The consumer name written on dead letters.
pub const CONSUMER: &str = "canonical-transform";

/// Seen sets read or written at once for one delivery (one per shipment it names).
const SEEN_CONCURRENCY: usize = 10;

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
    auditor: Auditor,
}

impl<B: EventBus, D: DeadLetterSink, S: SeenStore> Transform<B, D, S> {
    pub fn new(bus: B, adapters: Arc<Adapters>, dead_letters: D, seen: SeenHistory<S>) -> Self {
        Self {
            bus,
            adapters,
            dead_letters,
            seen,
            auditor: Auditor::disabled(),
        }
    }

    /// Writes every published event (and every delivery acknowledged without one) to the
    /// audit trail.
    pub fn with_audit(mut self, auditor: Auditor) -> Self {
        self.auditor = auditor;
        self
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
                    let input_hash = sha256_tag(ctx.body.as_bytes());
                    let record = transform_record(&webhook, &input_hash, "acknowledged_unsupported", now)
                        .reason(Reason::new("unsupported", &what));
                    self.auditor.record(&[record]).await;
                    return Ok(());
                }
                Err(e) => return Err(FailureReason::from_error(&e)),
            };
            let seen_before = self.seen_before(&history, now).await?;
            let mut events = events;
            events.retain(|event| !seen_before.contains(&event.event_id));
            if !seen_before.is_empty() {
                tracing::info!(
                    entries_seen_before = seen_before.len(),
                    "history entries published before are not published again"
                );
            }
            if !events.is_empty() {
                self.publish(&events).await?;
            }
            self.mark_seen(&history, &events, now).await?;
            // The record's body hashed once, not once per event it became.
            let input_hash = sha256_tag(ctx.body.as_bytes());
            let records: Vec<AuditRecord> = events
                .iter()
                .map(|event| {
                    let mut subjects = Subjects::of_event(event);
                    subjects.delivery_id = Some(webhook.delivery_id.clone());
                    transform_record(&webhook, &input_hash, "event_published", now)
                        .subjects(subjects)
                        .output(Output::Event {
                            id: event.event_id,
                            event_type: event.event_type().to_owned(),
                        })
                })
                .collect();
            self.auditor.record(&records).await;
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

    /// The history entries of this delivery published before, every shipment's set read at
    /// once (a cumulative export can name hundreds of shipments).
    async fn seen_before(
        &self,
        histories: &[History],
        now: DateTime<Utc>,
    ) -> Result<HashSet<Uuid>, FailureReason> {
        // Futures built in a loop, not by a closure: a closure's borrow would not prove `Send`
        // for every lifetime, which the local chain's spawned consumers need.
        let mut reads = Vec::with_capacity(histories.len());
        for history in histories {
            reads.push(async move {
                let seen = self
                    .seen
                    .store
                    .seen(&history.scope, now.timestamp())
                    .await?;
                Ok::<_, StoreError>(
                    history
                        .entries
                        .iter()
                        .filter(|id| seen.contains(&id.to_string()))
                        .copied()
                        .collect::<Vec<_>>(),
                )
            });
        }
        let mut seen_before = HashSet::new();
        let mut results = futures::stream::iter(reads).buffer_unordered(SEEN_CONCURRENCY);
        while let Some(result) = results.next().await {
            seen_before.extend(result.map_err(|e| FailureReason::from_error(&e))?);
        }
        Ok(seen_before)
    }

    /// Remembers the history entries just published, every shipment's set at once. If that
    /// fails the record is retried: its events are published again under the same ids
    /// (duplicates to the poster), and marked.
    async fn mark_seen(
        &self,
        histories: &[History],
        published: &[CanonicalEvent],
        now: DateTime<Utc>,
    ) -> Result<(), FailureReason> {
        let published: HashSet<Uuid> = published.iter().map(|event| event.event_id).collect();
        let expires_at = (now + self.seen.ttl).timestamp();
        let mut marks = Vec::with_capacity(histories.len());
        for history in histories {
            let entries: Vec<String> = history
                .entries
                .iter()
                .filter(|id| published.contains(id))
                .map(Uuid::to_string)
                .collect();
            if !entries.is_empty() {
                let scope = history.scope.as_str();
                marks.push(async move { self.seen.store.mark(scope, &entries, expires_at).await });
            }
        }
        let mut results = futures::stream::iter(marks).buffer_unordered(SEEN_CONCURRENCY);
        while let Some(result) = results.next().await {
            result.map_err(|e| FailureReason::from_error(&e))?;
        }
        Ok(())
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
        let mut by_type: std::collections::BTreeMap<&str, u32> = std::collections::BTreeMap::new();
        for event in events {
            tracing::info!(event_id = %event.event_id, event_type = event.event_type(), "canonical event published");
            *by_type.entry(event.event_type()).or_default() += 1;
        }
        for (event_type, n) in by_type {
            freightbridge::metrics::emit(
                &[("EventType", event_type)],
                &[(
                    freightbridge::metrics::name::EVENTS_PUBLISHED,
                    f64::from(n),
                    freightbridge::metrics::Unit::Count,
                )],
            );
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

/// A transform record about `webhook`, filed under its delivery.
fn transform_record(
    webhook: &ReceivedWebhook,
    input_hash: &str,
    action: &str,
    now: DateTime<Utc>,
) -> AuditRecord {
    AuditRecord::new(
        Stage::Transform,
        Actor {
            function: CONSUMER.to_owned(),
            partner: Some(webhook.partner.clone()),
            odoo_user: None,
        },
        action,
        now,
        Outcome::Done,
    )
    .subjects(Subjects {
        delivery_id: Some(webhook.delivery_id.clone()),
        ..Subjects::default()
    })
    .input_hash(input_hash.to_owned())
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
