//! The audit trail: every stage writes what it did with what (DESIGN: operations). A record
//! says which stage acted (the function, the partner, the Odoo user), when, the hash of its
//! input, what it produced (event ids, Odoo model + id), the outcome and its reason.
//!
//! Records are filed under their subjects (`Subjects::keys`): the partner's delivery id, the
//! shipment's tracking number, the event ids and the carrier's invoice number, so `trace`
//! finds a shipment's whole story from any one of them. The stores (DynamoDB in AWS, the
//! embedded database locally, memory in tests) keep one copy per subject key and expire
//! records after the configured time.
//!
//! What is never written: secrets, bodies, street addresses, names of people (a proof of
//! delivery's signer). Reasons are bounded and made printable first.
//!
//! Writing the trail never decides an outcome: a store that fails is logged and the stage
//! goes on (its effect is already committed or retried on its own terms).

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

use crate::batch::{DeadLetter, DeadLetterSink};
use crate::bus::Envelope;
use crate::canonical::{CanonicalEvent, EventBody};
use crate::failure::FailureReason;
use crate::webhook::ReceivedWebhook;

/// Longest reason message kept in a record.
pub const MAX_REASON_CHARS: usize = 300;
/// Longest identifier (delivery id, tracking or invoice number) kept as a subject.
pub const MAX_SUBJECT_CHARS: usize = 128;
/// Days a record is kept when the configuration does not say (`AUDIT_TTL_DAYS`).
pub const DEFAULT_TTL_DAYS: u32 = 400;

/// The stage that acted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Ingress,
    Transform,
    Poster,
    Reconciler,
    DeadLetter,
    Operator,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Ingress => "ingress",
            Stage::Transform => "transform",
            Stage::Poster => "poster",
            Stage::Reconciler => "reconciler",
            Stage::DeadLetter => "dead_letter",
            Stage::Operator => "operator",
        }
    }
}

/// How the action ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done: accepted, published, applied.
    Done,
    /// Heard before; nothing done again.
    Duplicate,
    /// Refused for good (bad input, a permanent Odoo error).
    Refused,
    /// Failed for now; the record is retried.
    Retrying,
    /// Handed to a dead-letter queue.
    DeadLettered,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Duplicate => "duplicate",
            Outcome::Refused => "refused",
            Outcome::Retrying => "retrying",
            Outcome::DeadLettered => "dead_lettered",
        }
    }
}

/// What acted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The function or command (`webhook-ingress`, `odoo-poster`, `freightctl dlq redrive`).
    pub function: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub odoo_user: Option<String>,
}

/// What a record is about; each is a key it can be found by.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subjects {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shipments: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Uuid>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub invoices: Vec<String>,
}

impl Subjects {
    /// The subjects of a canonical event: its id, its shipment and its invoice number.
    pub fn of_event(event: &CanonicalEvent) -> Subjects {
        Subjects {
            delivery_id: None,
            shipments: vec![bounded(&event.shipment.tracking_number)],
            events: vec![event.event_id],
            invoices: invoice_number(&event.body)
                .map(|n| vec![bounded(n)])
                .unwrap_or_default(),
        }
    }

    /// The keys the record is filed under.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        keys.extend(
            self.delivery_id
                .iter()
                .map(|d| subject_key(Kind::Delivery, d)),
        );
        keys.extend(
            self.shipments
                .iter()
                .map(|s| subject_key(Kind::Shipment, s)),
        );
        keys.extend(
            self.events
                .iter()
                .map(|e| subject_key(Kind::Event, &e.to_string())),
        );
        keys.extend(self.invoices.iter().map(|i| subject_key(Kind::Invoice, i)));
        let mut seen = HashSet::new();
        keys.retain(|k| seen.insert(k.clone()));
        keys
    }
}

/// The kinds of subject a trace can start from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Delivery,
    Shipment,
    Event,
    Invoice,
}

/// The store key of one subject: `shipment#1Z999…`.
pub fn subject_key(kind: Kind, id: &str) -> String {
    let prefix = match kind {
        Kind::Delivery => "delivery",
        Kind::Shipment => "shipment",
        Kind::Event => "event",
        Kind::Invoice => "invoice",
    };
    format!("{prefix}#{}", bounded(id))
}

/// Something a stage produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Output {
    /// An event put on the bus.
    Event { id: Uuid, event_type: String },
    /// A record written (or found) in Odoo.
    Odoo { model: String, id: i64 },
    /// The HTTP answer given to the partner.
    Answer { status: u16 },
}

/// Why an outcome is what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub odoo_error: Option<String>,
}

impl Reason {
    pub fn new(code: &str, message: &str) -> Reason {
        Reason {
            code: bounded(code),
            message: printable(message, MAX_REASON_CHARS),
            odoo_error: None,
        }
    }

    pub fn of_failure(failure: &FailureReason) -> Reason {
        Reason {
            odoo_error: failure.odoo_error.as_deref().map(bounded),
            ..Reason::new(&failure.code, &failure.message)
        }
    }
}

/// One step of the trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub id: Uuid,
    pub at: DateTime<Utc>,
    pub stage: Stage,
    pub actor: Actor,
    /// What was done: `webhook_received`, `event_published`, `milestone_noted`,
    /// `delivery_confirmed`, `payment_approved`, `dead_lettered`, `redriven`, …
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_hash: Option<String>,
    pub subjects: Subjects,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<Output>,
    pub outcome: Outcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
}

impl AuditRecord {
    pub fn new(
        stage: Stage,
        actor: Actor,
        action: &str,
        at: DateTime<Utc>,
        outcome: Outcome,
    ) -> AuditRecord {
        AuditRecord {
            id: Uuid::new_v4(),
            at,
            stage,
            actor,
            action: action.to_owned(),
            input_hash: None,
            subjects: Subjects::default(),
            outputs: Vec::new(),
            outcome,
            reason: None,
        }
    }

    pub fn subjects(mut self, subjects: Subjects) -> Self {
        self.subjects = subjects;
        self
    }

    pub fn input_hash(mut self, hash: String) -> Self {
        self.input_hash = Some(hash);
        self
    }

    pub fn output(mut self, output: Output) -> Self {
        self.outputs.push(output);
        self
    }

    pub fn reason(mut self, reason: Reason) -> Self {
        self.reason = Some(reason);
        self
    }

    /// The store's sort key: time first, so a subject's records come back in order.
    pub fn sort_key(&self) -> String {
        format!(
            "{}#{}",
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            self.id
        )
    }
}

#[derive(Debug, Error)]
pub enum AuditError {
    #[error("audit store unavailable: {0}")]
    Unavailable(String),
    #[error("stored audit record is corrupt: {0}")]
    Corrupt(String),
}

/// Where the trail is kept. Object-safe, so every handler holds one without a type parameter.
pub trait AuditLog: Send + Sync {
    /// Files every record under each of its subject keys.
    fn write<'a>(&'a self, records: &'a [AuditRecord]) -> BoxFuture<'a, Result<(), AuditError>>;

    /// The records filed under `key`, oldest first, at most `limit`.
    fn by_subject<'a>(
        &'a self,
        key: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<AuditRecord>, AuditError>>;
}

/// A handler's hold on the trail: a store, or none (unit tests of other things).
#[derive(Clone, Default)]
pub struct Auditor {
    log: Option<Arc<dyn AuditLog>>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor")
            .field("enabled", &self.log.is_some())
            .finish()
    }
}

impl Auditor {
    pub fn new(log: Arc<dyn AuditLog>) -> Auditor {
        Auditor { log: Some(log) }
    }

    /// Writes nothing.
    pub fn disabled() -> Auditor {
        Auditor { log: None }
    }

    /// Writes the records; a failure is logged, never returned (see the module's note).
    pub async fn record(&self, records: &[AuditRecord]) {
        let Some(log) = &self.log else { return };
        if records.is_empty() {
            return;
        }
        if let Err(error) = log.write(records).await {
            tracing::error!(%error, records = records.len(), "could not write the audit trail");
        }
    }
}

/// The in-memory trail, for tests.
#[derive(Debug, Default, Clone)]
pub struct MemoryAuditLog {
    records: Arc<Mutex<Vec<AuditRecord>>>,
}

impl MemoryAuditLog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn records(&self) -> Vec<AuditRecord> {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl AuditLog for MemoryAuditLog {
    fn write<'a>(&'a self, records: &'a [AuditRecord]) -> BoxFuture<'a, Result<(), AuditError>> {
        Box::pin(async move {
            self.records
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .extend_from_slice(records);
            Ok(())
        })
    }

    fn by_subject<'a>(
        &'a self,
        key: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<AuditRecord>, AuditError>> {
        Box::pin(async move {
            let mut found: Vec<AuditRecord> = self
                .records()
                .into_iter()
                .filter(|r| r.subjects.keys().iter().any(|k| k == key))
                .collect();
            found.sort_by_key(AuditRecord::sort_key);
            found.truncate(limit);
            Ok(found)
        })
    }
}

/// Most records read per subject by a trace.
pub const TRACE_LIMIT: usize = 1_000;

/// Every record of the shipments `query` names (a tracking number, an event id, a delivery id
/// or a carrier invoice number), with the deliveries that carried them, oldest first.
///
/// A delivery's records that belong to other shipments (one EDI file names many) are left out.
pub async fn trace(log: &dyn AuditLog, query: &str) -> Result<Vec<AuditRecord>, AuditError> {
    let mut records = Vec::new();
    for kind in [Kind::Shipment, Kind::Event, Kind::Delivery, Kind::Invoice] {
        records.extend(
            log.by_subject(&subject_key(kind, query), TRACE_LIMIT)
                .await?,
        );
    }
    let shipments: BTreeSet<String> = records
        .iter()
        .flat_map(|r| r.subjects.shipments.iter().cloned())
        .collect();
    for shipment in &shipments {
        records.extend(
            log.by_subject(&subject_key(Kind::Shipment, shipment), TRACE_LIMIT)
                .await?,
        );
    }
    let deliveries: BTreeSet<String> = records
        .iter()
        .filter_map(|r| r.subjects.delivery_id.clone())
        .collect();
    for delivery in &deliveries {
        let of_delivery = log
            .by_subject(&subject_key(Kind::Delivery, delivery), TRACE_LIMIT)
            .await?;
        records.extend(of_delivery.into_iter().filter(|r| {
            shipments.is_empty()
                || r.subjects.shipments.is_empty()
                || r.subjects.shipments.iter().any(|s| shipments.contains(s))
        }));
    }
    let mut seen = HashSet::new();
    records.retain(|r| seen.insert(r.id));
    records.sort_by(|a, b| a.at.cmp(&b.at).then(a.stage.cmp(&b.stage)));
    Ok(records)
}

/// A trace as a readable timeline, one line per step.
pub fn timeline(records: &[AuditRecord]) -> String {
    let mut out = String::new();
    for r in records {
        let mut line = format!(
            "{}  {:<11} {:<24} {:<14}",
            r.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            r.stage.as_str(),
            r.action,
            r.outcome.as_str(),
        );
        let mut facts = Vec::new();
        if let Some(partner) = &r.actor.partner {
            facts.push(format!("partner={partner}"));
        }
        if let Some(delivery) = &r.subjects.delivery_id {
            facts.push(format!("delivery={delivery}"));
        }
        if !r.subjects.shipments.is_empty() {
            facts.push(format!("shipment={}", r.subjects.shipments.join(",")));
        }
        let names_its_event = r.outputs.iter().any(|o| matches!(o, Output::Event { .. }));
        if let [event] = r.subjects.events.as_slice()
            && !names_its_event
        {
            facts.push(format!("event={event}"));
        }
        if let Some(user) = &r.actor.odoo_user {
            facts.push(format!("odoo_user={user}"));
        }
        for output in &r.outputs {
            facts.push(match output {
                Output::Event { id, event_type } => format!("→ {event_type} {id}"),
                Output::Odoo { model, id } => format!("→ {model}/{id}"),
                Output::Answer { status } => format!("→ HTTP {status}"),
            });
        }
        if let Some(reason) = &r.reason {
            facts.push(format!("[{}] {}", reason.code, reason.message));
        }
        line.push_str(&facts.join("  "));
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A dead-letter sink that also writes the letter to the trail, with the subjects its body
/// names (the canonical event, or the webhook's delivery).
pub struct AuditedDeadLetters<D> {
    inner: D,
    auditor: Auditor,
}

impl<D> AuditedDeadLetters<D> {
    pub fn new(inner: D, auditor: Auditor) -> Self {
        Self { inner, auditor }
    }

    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<D: DeadLetterSink> DeadLetterSink for AuditedDeadLetters<D> {
    async fn send(&self, letter: DeadLetter) -> Result<(), String> {
        let record = dead_letter_record(&letter, Utc::now());
        self.inner.send(letter).await?;
        self.auditor.record(&[record]).await;
        Ok(())
    }
}

/// The trail's record of a dead letter.
pub fn dead_letter_record(letter: &DeadLetter, at: DateTime<Utc>) -> AuditRecord {
    let (partner, subjects) = letter_subjects(&letter.body);
    AuditRecord::new(
        Stage::DeadLetter,
        Actor {
            function: letter.consumer.clone(),
            partner,
            odoo_user: None,
        },
        "dead_lettered",
        at,
        Outcome::DeadLettered,
    )
    .subjects(subjects)
    .input_hash(crate::idempotency::sha256_tag(letter.body.as_bytes()))
    .reason(Reason::of_failure(&letter.reason))
}

/// The partner and the subjects a queued message's body names: a canonical event's, or an
/// accepted webhook's delivery. A body that is neither names nothing.
pub fn letter_subjects(body: &str) -> (Option<String>, Subjects) {
    if let Ok(envelope) = serde_json::from_str::<Envelope<CanonicalEvent>>(body) {
        let event = envelope.detail;
        return (Some(bounded(&event.partner)), Subjects::of_event(&event));
    }
    if let Ok(envelope) = serde_json::from_str::<Envelope<ReceivedWebhook>>(body) {
        let webhook = envelope.detail;
        let subjects = Subjects {
            delivery_id: Some(bounded(&webhook.delivery_id)),
            ..Subjects::default()
        };
        return (Some(bounded(&webhook.partner)), subjects);
    }
    (None, Subjects::default())
}

/// The carrier's invoice number an event is about, if any.
pub fn invoice_number(body: &EventBody) -> Option<&str> {
    match body {
        EventBody::InvoiceReceived(r) => Some(&r.invoice.number),
        EventBody::ChargeAdded(c) => c.invoice_number.as_deref(),
        EventBody::InvoiceMatched(m) => Some(&m.invoice_number),
        EventBody::InvoiceDisputed(d) => Some(&d.invoice_number),
        _ => None,
    }
}

/// `id` cut to `MAX_SUBJECT_CHARS` printable characters.
fn bounded(id: &str) -> String {
    printable(id, MAX_SUBJECT_CHARS)
}

fn printable(text: &str, max: usize) -> String {
    text.chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, second)
            .single()
            .expect("valid time")
    }

    fn record(stage: Stage, action: &str, second: u32, subjects: Subjects) -> AuditRecord {
        AuditRecord::new(
            stage,
            Actor {
                function: stage.as_str().into(),
                ..Actor::default()
            },
            action,
            at(second),
            Outcome::Done,
        )
        .subjects(subjects)
    }

    fn shipment(tracking: &str, delivery: Option<&str>, event: Uuid) -> Subjects {
        Subjects {
            delivery_id: delivery.map(str::to_owned),
            shipments: vec![tracking.into()],
            events: vec![event],
            invoices: Vec::new(),
        }
    }

    #[test]
    fn keys_name_every_subject_once_bounded_and_printable() {
        let event = Uuid::from_u128(7);
        let subjects = Subjects {
            delivery_id: Some("d\n1".into()),
            shipments: vec!["T1".into(), "T1".into()],
            events: vec![event],
            invoices: vec!["x".repeat(500)],
        };
        let keys = subjects.keys();
        assert_eq!(keys[0], "delivery#d 1");
        assert_eq!(keys[1], "shipment#T1");
        assert_eq!(keys[2], format!("event#{event}"));
        assert_eq!(keys[3].len(), "invoice#".len() + MAX_SUBJECT_CHARS);
        assert_eq!(keys.len(), 4);
    }

    #[tokio::test]
    async fn a_trace_from_any_subject_finds_the_shipment_and_its_delivery_in_order() {
        let log = MemoryAuditLog::new();
        let (e1, e2, other) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let received = record(
            Stage::Ingress,
            "webhook_received",
            1,
            Subjects {
                delivery_id: Some("D1".into()),
                ..Subjects::default()
            },
        );
        let published = record(
            Stage::Transform,
            "event_published",
            2,
            shipment("T1", Some("D1"), e1),
        );
        let not_ours = record(
            Stage::Transform,
            "event_published",
            2,
            shipment("T9", Some("D1"), other),
        );
        let noted = record(
            Stage::Poster,
            "milestone_noted",
            3,
            shipment("T1", None, e1),
        );
        let later = record(
            Stage::Poster,
            "delivery_confirmed",
            9,
            shipment("T1", None, e2),
        );
        log.write(&[
            later.clone(),
            noted.clone(),
            not_ours,
            published.clone(),
            received.clone(),
        ])
        .await
        .expect("memory");
        let want = vec![received.id, published.id, noted.id, later.id];
        for query in ["T1", &e1.to_string(), "D1"] {
            let got: Vec<Uuid> = trace(&log, query)
                .await
                .expect("trace")
                .iter()
                .map(|r| r.id)
                .collect();
            if query == "D1" {
                // From a delivery: every shipment it carried.
                assert_eq!(got.len(), 5, "{query}");
            } else {
                assert_eq!(got, want, "{query}");
            }
        }
        assert!(trace(&log, "nothing").await.expect("trace").is_empty());
    }

    #[test]
    fn the_timeline_shows_stage_action_outcome_outputs_and_reason() {
        let text = timeline(&[record(
            Stage::Poster,
            "payment_approved",
            4,
            shipment("T1", None, Uuid::from_u128(1)),
        )
        .output(Output::Odoo {
            model: "account.move".into(),
            id: 42,
        })
        .reason(Reason::new("posted", "bill posted"))]);
        assert!(
            text.starts_with("2026-12-04T10:00:04.000Z  poster"),
            "{text}"
        );
        assert!(text.contains("payment_approved"), "{text}");
        assert!(text.contains("→ account.move/42"), "{text}");
        assert!(text.contains("[posted] bill posted"), "{text}");
    }

    #[test]
    fn reasons_are_bounded_and_printable() {
        let reason = Reason::new("c", &format!("a\r\nb{}", "z".repeat(1_000)));
        assert!(reason.message.starts_with("a  b"));
        assert_eq!(reason.message.chars().count(), MAX_REASON_CHARS);
    }

    #[tokio::test]
    async fn a_dead_letter_is_written_with_the_subjects_its_body_names() {
        use crate::batch::MemoryDeadLetters;
        let log = MemoryAuditLog::new();
        let sink = AuditedDeadLetters::new(
            MemoryDeadLetters::new(),
            Auditor::new(Arc::new(log.clone())),
        );
        let body = serde_json::json!({
            "version": "0", "id": "x", "detail-type": "webhook.received", "source": "s",
            "account": "0", "time": "2026-12-04T10:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"ingress_id": Uuid::from_u128(5), "partner": "acme", "format": "csv",
                       "delivery_id": "D7", "received_at": "2026-12-04T10:00:00Z",
                       "body": {"text": "a,b"}}
        })
        .to_string();
        sink.send(DeadLetter {
            body,
            message_id: "m1".into(),
            reason: FailureReason::permanent("bad_row", "line 2: no tracking number"),
            consumer: "canonical-transform".into(),
            receive_count: 1,
        })
        .await
        .expect("sent");
        assert_eq!(sink.inner().letters().len(), 1);
        let records = log.records();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].subjects.delivery_id.as_deref(), Some("D7"));
        assert_eq!(records[0].actor.partner.as_deref(), Some("acme"));
        assert_eq!(records[0].outcome, Outcome::DeadLettered);
        assert_eq!(
            records[0].reason.as_ref().map(|r| r.code.as_str()),
            Some("bad_row")
        );
    }
}
