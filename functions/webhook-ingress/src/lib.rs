//! webhook-ingress: `POST /webhooks/{partner}` behind API Gateway (HTTP API, payload v2).
//! Verify and inspect the request (shared `ingress`), dedupe the delivery durably, publish it on
//! the bus, and answer with DESIGN §3.1's status table. A failed hand-off releases the dedupe
//! record and answers 503 so the partner's retry is accepted. A signature mismatch has the
//! partner's Secrets Manager secrets re-read (at most once a minute each), so a warm function
//! follows a rotation without a cold start.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use aws_lambda_events::encodings::Body;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use freightbridge::audit::{Actor, AuditRecord, Auditor, Outcome, Output, Reason, Stage, Subjects};
use freightbridge::aws::secrets::{SecretSource, SecretsResolver};
use freightbridge::bus::{BusEvent, EventBus};
use freightbridge::config::{
    ConfigError, LocalSecrets, PartnersFile, Secret, SecretRef, SecretRefresher,
};
use freightbridge::idempotency::{Begin, Idempotency, IdempotencyStore, sha256_tag};
use freightbridge::ingress::{Accepted, Registry};
use freightbridge::metrics;
use freightbridge::webhook::{self, ReceivedWebhook, WebhookBody};
use http::HeaderMap;
use serde_json::{Value, json};
use tracing::Instrument as _;

/// Seconds a partner should wait before retrying a delivery that is being processed right now.
const RETRY_AFTER_SECONDS: &str = "5";

/// The trail's record of an answered delivery: the partner, its delivery id, the body's hash,
/// the answer, and the event it became.
fn received_record(
    partner: &str,
    delivery_id: &str,
    body: &[u8],
    reply: &Reply,
    now: DateTime<Utc>,
) -> AuditRecord {
    let outcome = match reply.status {
        202 => Outcome::Done,
        200 => Outcome::Duplicate,
        409 | 503 => Outcome::Retrying,
        _ => Outcome::Refused,
    };
    let mut record = AuditRecord::new(
        Stage::Ingress,
        Actor {
            function: FUNCTION.to_owned(),
            partner: Some(partner.to_owned()),
            odoo_user: None,
        },
        "webhook_received",
        now,
        outcome,
    )
    .subjects(Subjects {
        delivery_id: Some(delivery_id.to_owned()),
        ..Subjects::default()
    })
    .input_hash(sha256_tag(body))
    .output(Output::Answer {
        status: reply.status,
    });
    if reply.status < 300 {
        if let Some(id) = reply
            .body
            .get("event_id")
            .and_then(Value::as_str)
            .and_then(|id| uuid::Uuid::parse_str(id).ok())
        {
            record = record.output(Output::Event {
                id,
                event_type: webhook::DETAIL_TYPE.to_owned(),
            });
        }
    } else {
        let field = |name: &str| reply.body.get(name).and_then(Value::as_str).unwrap_or("");
        record = record.reason(Reason::new(field("error"), field("message")));
    }
    record
}

/// The answer to a registered partner's delivery, as a metric.
fn count_answer(partner: &str, reply: &Reply) {
    match reply.status {
        202 => metrics::count(metrics::name::WEBHOOK_ACCEPTED, &[("Partner", partner)]),
        200 => metrics::count(metrics::name::WEBHOOK_DUPLICATE, &[("Partner", partner)]),
        _ => {
            let reason = reply
                .body
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("unknown");
            metrics::count(
                metrics::name::WEBHOOK_REJECTED,
                &[("Partner", partner), ("Reason", reason)],
            );
        }
    }
}

/// The function name written on audit records.
pub const FUNCTION: &str = "webhook-ingress";

/// An HTTP answer, independent of API Gateway's types (the local chain serves it too).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub retry_after: Option<&'static str>,
}

impl Reply {
    fn error(status: u16, code: &str, message: impl Into<String>) -> Self {
        Reply {
            status,
            body: json!({"error": code, "message": message.into()}),
            retry_after: None,
        }
    }
}

/// The ingress handler, generic over its store, its bus and where rotated secrets are re-read.
pub struct Ingress<S, B, R = LocalSecrets> {
    registry: Arc<Registry>,
    idempotency: Idempotency<S>,
    bus: B,
    secrets: R,
    auditor: Auditor,
}

impl<S: IdempotencyStore, B: EventBus> Ingress<S, B> {
    /// An ingress whose secrets come from the environment or the partners file (the local
    /// chain): they cannot change while it runs.
    pub fn new(registry: Arc<Registry>, idempotency: Idempotency<S>, bus: B) -> Self {
        Self {
            registry,
            idempotency,
            bus,
            secrets: LocalSecrets,
            auditor: Auditor::disabled(),
        }
    }
}

impl<S, B, R> Ingress<S, B, R> {
    /// Re-read a partner's secrets through `secrets` when a signature does not match (in AWS
    /// the resolver that read them at cold start, which keeps its once-a-minute limit).
    pub fn with_refresher<T: SecretRefresher>(self, secrets: T) -> Ingress<S, B, T> {
        Ingress {
            registry: self.registry,
            idempotency: self.idempotency,
            bus: self.bus,
            secrets,
            auditor: self.auditor,
        }
    }

    /// Writes each answered delivery of a known partner to the audit trail.
    pub fn with_audit(mut self, auditor: Auditor) -> Self {
        self.auditor = auditor;
        self
    }
}

impl<S: IdempotencyStore, B: EventBus, R: SecretRefresher> Ingress<S, B, R> {
    /// Handle one webhook. `query` is the raw query string (a `query-token` partner's token
    /// is in it, so it is never logged). `lock_until` bounds how long this attempt holds the
    /// delivery's key (the Lambda deadline).
    pub async fn handle(
        &self,
        partner: &str,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
        lock_until: DateTime<Utc>,
    ) -> Reply {
        let evaluated = self
            .registry
            .evaluate_refreshing(&self.secrets, partner, headers, query, body, now)
            .await;
        let accepted = match evaluated {
            Ok(accepted) => accepted,
            Err(rejection) => {
                // The precise reason stays in our logs; the partner only gets the code.
                // The path is the sender's: bounded and printable before it reaches a log line.
                tracing::warn!(
                    partner = %freightbridge::partners::printable_prefix(partner),
                    status = rejection.status(),
                    code = rejection.code(),
                    reason = ?rejection,
                    "webhook rejected"
                );
                // A dimension is a registered partner's id, never a path a sender made up.
                let known = if self.registry.get(partner).is_some() {
                    partner
                } else {
                    "unregistered"
                };
                metrics::count(
                    metrics::name::WEBHOOK_REJECTED,
                    &[("Partner", known), ("Reason", rejection.code())],
                );
                return Reply::error(rejection.status(), rejection.code(), rejection.message());
            }
        };
        let span = tracing::info_span!(
            "webhook",
            partner = %accepted.partner,
            correlation_id = %accepted.delivery_id,
        );
        let (partner, delivery_id) = (accepted.partner.clone(), accepted.delivery_id.clone());
        let reply = self
            .accept(accepted, body, now, lock_until)
            .instrument(span)
            .await;
        count_answer(&partner, &reply);
        self.auditor
            .record(&[received_record(&partner, &delivery_id, body, &reply, now)])
            .await;
        reply
    }

    async fn accept(
        &self,
        accepted: Accepted,
        body: &[u8],
        now: DateTime<Utc>,
        lock_until: DateTime<Utc>,
    ) -> Reply {
        let key = format!("ingress#{}#{}", accepted.partner, accepted.delivery_id);
        let begin = self
            .idempotency
            .begin(&key, accepted.payload_hash.as_deref(), now, lock_until)
            .await;
        match begin {
            Err(e) => {
                tracing::error!(error = %e, "idempotency store unavailable");
                Reply::error(
                    503,
                    "store_unavailable",
                    "could not record the delivery; retry later",
                )
            }
            Ok(Begin::Completed { result }) => {
                let event_id = result
                    .as_deref()
                    .and_then(|r| serde_json::from_str::<Value>(r).ok())
                    .and_then(|v| v.get("event_id").cloned())
                    .unwrap_or_else(|| {
                        json!(webhook::ingress_id(
                            &accepted.partner,
                            &accepted.delivery_id
                        ))
                    });
                tracing::info!(
                    event_id = event_id.as_str().unwrap_or_default(),
                    "duplicate delivery"
                );
                Reply {
                    status: 200,
                    body: json!({"event_id": event_id, "duplicate": true}),
                    retry_after: None,
                }
            }
            Ok(Begin::InProgress) => Reply {
                retry_after: Some(RETRY_AFTER_SECONDS),
                ..Reply::error(
                    409,
                    "in_progress",
                    "this delivery is being processed; retry later",
                )
            },
            Ok(Begin::PayloadMismatch) => Reply::error(
                422,
                "delivery_id_reused",
                "this delivery id was already used with different content",
            ),
            Ok(Begin::Proceed { .. }) => self.publish(&key, accepted, body, now).await,
        }
    }

    async fn publish(
        &self,
        key: &str,
        accepted: Accepted,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Reply {
        let ingress_id = webhook::ingress_id(&accepted.partner, &accepted.delivery_id);
        let detail = ReceivedWebhook {
            ingress_id,
            partner: accepted.partner,
            format: accepted.format.name().to_owned(),
            delivery_id: accepted.delivery_id,
            received_at: now,
            content_type: accepted.content_type,
            body: WebhookBody::from_bytes(body),
        };
        let published = match BusEvent::new(webhook::BUS_SOURCE, webhook::DETAIL_TYPE, &detail) {
            Ok(event) => self.bus.publish(&[event]).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(error) = published {
            tracing::error!(%error, "publish failed; releasing the delivery for the partner's retry");
            if let Err(e) = self.idempotency.release(key).await {
                // The in-progress record lapses at the deadline, so the retry still gets through.
                tracing::error!(error = %e, "could not release the delivery record");
            }
            return Reply::error(
                503,
                "bus_unavailable",
                "could not hand off the delivery; retry later",
            );
        }
        let result = json!({"event_id": ingress_id}).to_string();
        if let Err(e) = self.idempotency.complete(key, &result, now).await {
            // Published already: answer success. A retry after the lock lapses republishes the
            // same deterministic event, which downstream consumers dedupe.
            tracing::warn!(error = %e, "could not mark the delivery completed");
        }
        tracing::info!(event_id = %ingress_id, "webhook accepted");
        Reply {
            status: 202,
            body: json!({"event_id": ingress_id, "duplicate": false}),
            retry_after: None,
        }
    }

    /// API Gateway HTTP API (payload v2) adapter around [`Ingress::handle`].
    pub async fn handle_apigw(
        &self,
        request: ApiGatewayV2httpRequest,
        now: DateTime<Utc>,
        lock_until: DateTime<Utc>,
    ) -> ApiGatewayV2httpResponse {
        let reply = match decode_apigw(&request) {
            Ok((partner, body)) => {
                let query = request.raw_query_string.as_deref();
                self.handle(&partner, &request.headers, query, &body, now, lock_until)
                    .await
            }
            Err(reply) => reply,
        };
        to_apigw(reply)
    }
}

/// The partner registry with every secret read through `resolver` first (`Registry::build`
/// resolves synchronously). The same resolver then serves the refreshes, from its cache.
pub async fn resolve_registry<T: SecretSource>(
    file: &PartnersFile,
    resolver: &SecretsResolver<T>,
) -> Result<Registry, ConfigError> {
    let mut resolved: Vec<(SecretRef, Result<Secret, String>)> = Vec::new();
    for text in file.partner.iter().flat_map(|p| &p.signature.secrets) {
        // An unparseable reference is reported by `Registry::build`, with its partner.
        let Ok(reference) = SecretRef::parse(text) else {
            continue;
        };
        let secret = resolver.resolve(&reference).await.map_err(|e| match e {
            ConfigError::Secret { message, .. } => message,
            other => other.to_string(),
        });
        resolved.push((reference, secret));
    }
    Registry::build(file, |reference| {
        let found = resolved.iter().find(|(r, _)| r == reference);
        match found.map(|(_, secret)| secret) {
            Some(Ok(secret)) => Ok(secret.clone()),
            Some(Err(message)) => Err(ConfigError::Secret {
                reference: reference.describe(),
                message: message.clone(),
            }),
            None => Err(ConfigError::Secret {
                reference: reference.describe(),
                message: "not resolved at cold start".into(),
            }),
        }
    })
}

fn decode_apigw(request: &ApiGatewayV2httpRequest) -> Result<(String, Vec<u8>), Reply> {
    let method = request.request_context.http.method.as_str();
    if method != "POST" {
        return Err(Reply::error(405, "method_not_allowed", "use POST"));
    }
    let partner = request
        .path_parameters
        .get("partner")
        .cloned()
        .or_else(|| {
            request
                .raw_path
                .as_deref()
                .and_then(|p| p.strip_prefix("/webhooks/"))
                .map(|p| p.trim_end_matches('/').to_owned())
        })
        .filter(|p| !p.is_empty())
        .ok_or_else(|| Reply::error(404, "unknown_partner", "no partner in the path"))?;
    let raw = request.body.as_deref().unwrap_or_default();
    let body = if request.is_base64_encoded {
        STANDARD
            .decode(raw)
            .map_err(|_| Reply::error(400, "malformed_payload", "body is not valid base64"))?
    } else {
        raw.as_bytes().to_vec()
    };
    Ok((partner, body))
}

/// Render a reply as an API Gateway v2 response.
pub fn to_apigw(reply: Reply) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(reply.status);
    response.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Some(seconds) = reply.retry_after {
        response.headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static(seconds),
        );
    }
    response.body = Some(Body::Text(reply.body.to_string()));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answered_delivery_is_recorded_with_its_answer_hash_and_event() {
        let now = Utc::now();
        let id = webhook::ingress_id("acme", "d-1");
        let accepted = Reply {
            status: 202,
            body: json!({"event_id": id, "duplicate": false}),
            retry_after: None,
        };
        let record = received_record("acme", "d-1", b"{}", &accepted, now);
        assert_eq!(record.outcome, Outcome::Done);
        assert_eq!(record.subjects.delivery_id.as_deref(), Some("d-1"));
        assert_eq!(
            record.input_hash.as_deref(),
            Some(sha256_tag(b"{}").as_str())
        );
        assert!(record.outputs.contains(&Output::Answer { status: 202 }));
        assert!(
            record
                .outputs
                .iter()
                .any(|o| matches!(o, Output::Event { id: e, .. } if *e == id))
        );
        assert!(record.reason.is_none());

        let outcomes = [
            (200, Outcome::Duplicate),
            (409, Outcome::Retrying),
            (503, Outcome::Retrying),
            (422, Outcome::Refused),
        ];
        for (status, outcome) in outcomes {
            let reply = if status == 200 {
                Reply {
                    status,
                    body: json!({"event_id": id, "duplicate": true}),
                    retry_after: None,
                }
            } else {
                Reply::error(status, "some_code", "some message")
            };
            let record = received_record("acme", "d-1", b"{}", &reply, now);
            assert_eq!(record.outcome, outcome, "{status}");
            if status >= 300 {
                let reason = record.reason.expect("a refusal has its reason");
                assert_eq!(
                    (reason.code.as_str(), reason.message.as_str()),
                    ("some_code", "some message")
                );
            }
        }
    }
}
