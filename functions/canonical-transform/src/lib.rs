//! canonical-transform: consumes accepted webhooks from the transform queue (EventBridge
//! envelopes in SQS records), turns each into canonical events with the partner's adapter, and
//! publishes them on the bus. The transformation is deterministic (same input, same event ids),
//! so a redelivered record republishes identical events that the consumers dedupe.

use freightbridge::batch::RecordContext;
use freightbridge::bus::{BusEvent, Envelope, EventBus};
use freightbridge::canonical::{self, CanonicalEvent};
use freightbridge::failure::FailureReason;
use std::sync::Arc;

use freightbridge::partners::{Adapters, PartnerError};
use freightbridge::webhook::ReceivedWebhook;
use tracing::Instrument as _;

pub struct Transform<B> {
    bus: B,
    adapters: Arc<Adapters>,
}

impl<B: EventBus> Transform<B> {
    pub fn new(bus: B, adapters: Arc<Adapters>) -> Self {
        Self { bus, adapters }
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
            let events = match transform(&self.adapters, &webhook) {
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

/// The pure part: an accepted webhook → its canonical events, read by the partner's adapter.
pub fn transform(
    adapters: &Adapters,
    webhook: &ReceivedWebhook,
) -> Result<Vec<CanonicalEvent>, PartnerError> {
    let adapter = adapters
        .get(&webhook.partner)
        .ok_or_else(|| PartnerError::UnknownPartner {
            partner: freightbridge::partners::printable_prefix(&webhook.partner),
        })?;
    if adapter.format().name() != webhook.format {
        // The partner's format changed since ingress accepted this body.
        return Err(PartnerError::unknown_format(&webhook.format));
    }
    adapter.to_canonical(webhook)
}
