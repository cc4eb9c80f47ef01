//! canonical-transform: consumes accepted webhooks from the transform queue (EventBridge
//! envelopes in SQS records), turns each into canonical events with the partner's adapter, and
//! publishes them on the bus. The transformation is deterministic (same input, same event ids),
//! so a redelivered record republishes identical events that the consumers dedupe.

use freightbridge::batch::RecordContext;
use freightbridge::bus::{BusEvent, Envelope, EventBus};
use freightbridge::canonical::{self, CanonicalEvent};
use freightbridge::failure::FailureReason;
use freightbridge::partners::{self, Format, PartnerError};
use freightbridge::webhook::ReceivedWebhook;
use tracing::Instrument as _;

pub struct Transform<B> {
    bus: B,
}

impl<B: EventBus> Transform<B> {
    pub fn new(bus: B) -> Self {
        Self { bus }
    }

    /// Process one SQS record: parse, transform, publish.
    pub async fn handle_record(&self, ctx: RecordContext) -> Result<(), FailureReason> {
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
            let events = match transform(&webhook) {
                Ok(events) => events,
                // The partner sends more kinds of events than we act on (EasyPost
                // `batch.updated`, …): acknowledge them, loudly, rather than fill the DLQ.
                Err(PartnerError::Unsupported { what, .. }) => {
                    tracing::warn!(what = %what, "event kind not handled; acknowledged without canonical events");
                    return Ok(());
                }
                Err(e) => return Err(FailureReason::from_error(&e)),
            };
            if events.is_empty() {
                tracing::info!("delivery produced no canonical events");
                return Ok(());
            }
            let bus_events = events
                .iter()
                .map(|e| BusEvent::new(canonical::BUS_SOURCE, e.event_type(), e))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| FailureReason::permanent("serialisation_failed", e.to_string()))?;
            self.bus
                .publish(&bus_events)
                .await
                .map_err(|e| FailureReason::from_error(&e))?;
            for event in &events {
                tracing::info!(event_id = %event.event_id, event_type = event.event_type(), "canonical event published");
            }
            Ok(())
        }
        .instrument(span)
        .await
    }
}

/// The pure part: an accepted webhook → its canonical events.
pub fn transform(webhook: &ReceivedWebhook) -> Result<Vec<CanonicalEvent>, PartnerError> {
    let format = Format::parse(&webhook.format)
        .ok_or_else(|| PartnerError::unknown_format(&webhook.format))?;
    partners::to_canonical(format, webhook)
}
