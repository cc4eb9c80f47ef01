//! The shipment ledger: what the reconciler knows of each shipment, kept from the canonical
//! events on its own queue — the latest milestone by partner time, the proof of delivery, the
//! expected cost, every invoice and late charge received, the Odoo records written and every
//! match outcome with its evidence.
//!
//! An entry is keyed by the shipment's tracking number (trimmed, upper case): partners name the
//! same carrier differently (an aggregator's `FedEx`, the carrier's own EDI partner id), so the
//! carriers that reported the shipment are kept in the entry instead of in the key.
//!
//! Applying an event is pure (`LedgerEntry::apply`) and idempotent per event id; the store is
//! updated with a version check (`record`), so two events for one shipment racing on two
//! invocations are both kept, never one lost.

pub mod docs;

pub use docs::{LedgerDocs, read_doc, update_doc};

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::canonical::{CanonicalEvent, ChargeLine, Estimate, EventBody, Invoice, ShipmentStatus};
use crate::idempotency::StoreError;

/// Event ids remembered per entry for idempotency; older ones are forgotten first (an event
/// that old redelivered is still harmless: each fact is also deduplicated on its own).
pub const APPLIED_KEPT: usize = 500;

/// Attempts of a conditional update before `update` gives up with a retryable error; between
/// them a jittered pause that doubles, so racing writers spread out instead of colliding again.
const RECORD_ATTEMPTS: u32 = 16;
const FIRST_PAUSE_MS: u64 = 2;
const LONGEST_PAUSE_MS: u64 = 200;

/// The store key of a shipment's entry.
pub fn ledger_key(tracking_number: &str) -> String {
    format!("ledger#{}", normalise_tracking(tracking_number))
}

/// The outcome recorded when the sweep finds an invoice's bill paid.
pub const SETTLED: &str = "settled";

/// A tracking number as the ledger compares them.
pub fn normalise_tracking(tracking_number: &str) -> String {
    tracking_number.trim().to_uppercase()
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerEntry {
    pub tracking_number: String,
    /// Every carrier name the shipment was reported under, first seen first.
    #[serde(default)]
    pub carriers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latest: Option<Milestone>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<ProofOfDelivery>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<ExpectedCost>,
    #[serde(default)]
    pub invoices: Vec<InvoiceEntry>,
    #[serde(default)]
    pub charges: Vec<ChargeEntry>,
    /// The Odoo picking or order reference the partners give the shipment (the latest), from
    /// anything but invoices (an invoice alone does not make a shipment known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Odoo records the reconciler learnt of for the shipment (model, id): the vendor bill of
    /// each settled invoice. What the poster writes is in the audit trail (`freightctl trace`).
    #[serde(default)]
    pub odoo: Vec<OdooRecord>,
    /// Every judgement, oldest first.
    #[serde(default)]
    pub outcomes: Vec<MatchOutcome>,
    /// The event ids applied, newest last (at most `APPLIED_KEPT`).
    #[serde(default)]
    pub applied: Vec<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<DateTime<Utc>>,
    /// When the last of the shipment's invoices was settled (its bill paid in Odoo): the
    /// shipment is closed, and the sweeps pass it by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Milestone {
    pub status: ShipmentStatus,
    pub occurred_at: DateTime<Utc>,
    pub event_id: Uuid,
}

/// The proof of delivery as evidence: when, whether it was signed, the document. The signer's
/// name stays in Odoo's chatter note; the ledger does not keep people's names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofOfDelivery {
    pub delivered_at: DateTime<Utc>,
    pub signed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_url: Option<String>,
    pub event_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpectedCost {
    /// The latest `freight_cost.estimated` (booking or quote).
    pub estimate: Estimate,
    /// Partner time of the estimate: a later one revises, an older one arriving late does not.
    pub occurred_at: DateTime<Utc>,
    pub event_id: Uuid,
}

/// An invoice as received. The outcome of judging it is published under the partner and
/// shipment carrier of its `freight_invoice.received`, so the poster finds the bill it drafted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceEntry {
    pub number: String,
    /// The carrier key the bill was drafted under (`finance::carrier_key`).
    pub carrier: String,
    pub partner: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shipment_carrier: Option<String>,
    pub correlation_id: String,
    /// The invoice itself; of its parties only the role, postal code and country of those with a
    /// postal code (the lane, for the rate card), never a name or id.
    pub invoice: Invoice,
    pub received_at: DateTime<Utc>,
    pub event_id: Uuid,
    /// The same carrier and number received again under another event (another file): the
    /// reconciler disputes it as `duplicate_invoice`.
    #[serde(default)]
    pub repeats: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_number: Option<String>,
    pub currency: String,
    pub charge: ChargeLine,
    pub occurred_at: DateTime<Utc>,
    pub event_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OdooRecord {
    pub model: String,
    pub id: i64,
}

/// One judgement of one invoice, with the evidence it rests on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchOutcome {
    pub invoice_number: String,
    /// `matched` or `disputed`.
    pub outcome: String,
    #[serde(default)]
    pub reasons: Vec<String>,
    pub evidence: Value,
    pub at: DateTime<Utc>,
    /// The canonical event published for it.
    pub event_id: Uuid,
    /// That event as it is published (an outbox): recorded before it is published, so a retry
    /// publishes these very bytes again and two invocations racing publish one content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<CanonicalEvent>,
    /// Whether the event has been published.
    #[serde(default)]
    pub published: bool,
}

/// What applying an event did to an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The entry changed; it must be saved.
    Changed,
    /// This event id was applied before.
    AlreadyApplied,
    /// Applied, but it changed no fact (an older milestone, an estimate revised since): the
    /// event id is remembered all the same.
    Noted,
}

impl LedgerEntry {
    pub fn new(tracking_number: &str) -> LedgerEntry {
        LedgerEntry {
            tracking_number: normalise_tracking(tracking_number),
            ..LedgerEntry::default()
        }
    }

    /// Applies one canonical event (pure). Idempotent per event id.
    pub fn apply(&mut self, event: &CanonicalEvent, carrier: &str, now: DateTime<Utc>) -> Change {
        if self.applied.contains(&event.event_id) {
            return Change::AlreadyApplied;
        }
        self.remember(event.event_id);
        self.updated_at = Some(now);
        if !carrier.is_empty() && !self.carriers.iter().any(|c| c == carrier) {
            self.carriers.push(carrier.to_owned());
        }
        if !matches!(event.body, EventBody::InvoiceReceived(_))
            && let Some(reference) = event.shipment.reference()
        {
            self.reference = Some(reference.to_owned());
        }
        let changed = match &event.body {
            EventBody::StatusChanged(change) => self.milestone(change.status, event),
            EventBody::Delivered(delivery) => {
                let first = self.delivery.is_none();
                if first {
                    self.delivery = Some(ProofOfDelivery {
                        delivered_at: delivery.pod.delivered_at,
                        signed: delivery.pod.signed_by.is_some(),
                        document_url: delivery.pod.document_url.clone(),
                        event_id: event.event_id,
                    });
                }
                self.milestone(delivery.status, event) || first
            }
            EventBody::CostEstimated(estimated) => {
                let newer = self
                    .expected
                    .as_ref()
                    .is_none_or(|e| event.occurred_at >= e.occurred_at);
                if newer {
                    self.expected = Some(ExpectedCost {
                        estimate: estimated.estimate.clone(),
                        occurred_at: event.occurred_at,
                        event_id: event.event_id,
                    });
                }
                newer
            }
            EventBody::InvoiceReceived(received) => {
                let invoice = &received.invoice;
                match self
                    .invoices
                    .iter_mut()
                    .find(|i| i.number == invoice.number && i.carrier == carrier)
                {
                    Some(known) => known.repeats += 1,
                    None => self.invoices.push(InvoiceEntry {
                        number: invoice.number.clone(),
                        carrier: carrier.to_owned(),
                        partner: event.partner.clone(),
                        shipment_carrier: event.shipment.carrier.clone(),
                        correlation_id: event.correlation_id.clone(),
                        invoice: Invoice {
                            // No names: each party's role and where it is, for the lane.
                            parties: invoice
                                .parties
                                .iter()
                                .filter(|p| p.postal_code.is_some())
                                .map(|p| crate::canonical::Party {
                                    postal_code: p.postal_code.clone(),
                                    country: p.country.clone(),
                                    ..crate::canonical::Party::new(p.role.clone())
                                })
                                .collect(),
                            ..invoice.clone()
                        },
                        received_at: event.received_at,
                        event_id: event.event_id,
                        repeats: 0,
                    }),
                }
                true
            }
            EventBody::ChargeAdded(added) => {
                self.charges.push(ChargeEntry {
                    invoice_number: added.invoice_number.clone(),
                    currency: added.currency.clone(),
                    charge: added.charge.clone(),
                    occurred_at: event.occurred_at,
                    event_id: event.event_id,
                });
                true
            }
            // The reconciler's own outcomes are recorded by `record_outcome`, not replayed here.
            EventBody::InvoiceMatched(_)
            | EventBody::InvoiceDisputed(_)
            | EventBody::InvoiceSettled(_) => false,
        };
        if changed {
            Change::Changed
        } else {
            Change::Noted
        }
    }

    /// Records a judgement (and its published event) once per event id.
    pub fn record_outcome(&mut self, outcome: MatchOutcome) -> Change {
        if self.outcomes.iter().any(|o| o.event_id == outcome.event_id) {
            return Change::AlreadyApplied;
        }
        self.updated_at = Some(outcome.at);
        self.outcomes.push(outcome);
        Change::Changed
    }

    /// Records that an invoice's bill is paid (an outcome `settled`, once per event id); closes
    /// the shipment when every invoice it has is settled.
    pub fn record_settlement(&mut self, outcome: MatchOutcome) -> Change {
        let at = outcome.at;
        let bill = match outcome.event.as_ref().map(|e| &e.body) {
            Some(EventBody::InvoiceSettled(settled)) => Some(OdooRecord {
                model: "account.move".to_owned(),
                id: settled.bill_id,
            }),
            _ => None,
        };
        if self.record_outcome(outcome) == Change::AlreadyApplied {
            return Change::AlreadyApplied;
        }
        if let Some(bill) = bill {
            self.note_odoo(&[bill]);
        }
        if self.closed_at.is_none() && self.all_settled() {
            self.closed_at = Some(at);
        }
        Change::Changed
    }

    /// Whether the invoice's latest outcome is `settled`.
    pub fn is_settled(&self, invoice_number: &str) -> bool {
        self.outcome_of(invoice_number)
            .is_some_and(|o| o.outcome == SETTLED)
    }

    fn all_settled(&self) -> bool {
        !self.invoices.is_empty() && self.invoices.iter().all(|i| self.is_settled(&i.number))
    }

    /// Marks the outcome with `event_id` published.
    pub fn mark_published(&mut self, event_id: Uuid) -> Change {
        match self.outcomes.iter_mut().find(|o| o.event_id == event_id) {
            Some(outcome) if !outcome.published => {
                outcome.published = true;
                Change::Changed
            }
            _ => Change::AlreadyApplied,
        }
    }

    /// The latest judgement of `invoice_number`.
    pub fn outcome_of(&self, invoice_number: &str) -> Option<&MatchOutcome> {
        self.outcomes
            .iter()
            .rev()
            .find(|o| o.invoice_number == invoice_number)
    }

    fn milestone(&mut self, status: ShipmentStatus, event: &CanonicalEvent) -> bool {
        let newer = self
            .latest
            .as_ref()
            .is_none_or(|l| event.occurred_at > l.occurred_at);
        if newer {
            self.latest = Some(Milestone {
                status,
                occurred_at: event.occurred_at,
                event_id: event.event_id,
            });
        }
        newer
    }

    fn remember(&mut self, event_id: Uuid) {
        self.applied.push(event_id);
        if self.applied.len() > APPLIED_KEPT {
            let excess = self.applied.len() - APPLIED_KEPT;
            self.applied.drain(..excess);
        }
    }
}

/// Odoo records kept per entry; a shipment with more has had its records noted already.
pub const ODOO_RECORDS_KEPT: usize = 200;

impl LedgerEntry {
    /// Notes Odoo records written for the shipment (each once, at most
    /// [`ODOO_RECORDS_KEPT`]); `Noted` when it knew them all.
    pub fn note_odoo(&mut self, records: &[OdooRecord]) -> Change {
        let mut changed = false;
        for record in records {
            if self.odoo.len() < ODOO_RECORDS_KEPT && !self.odoo.contains(record) {
                self.odoo.push(record.clone());
                changed = true;
            }
        }
        if changed {
            Change::Changed
        } else {
            Change::AlreadyApplied
        }
    }
}

/// Where the poster notes the Odoo records it wrote for a shipment: the shipment's ledger entry.
pub trait OdooNotes: Send + Sync {
    fn note<'a>(
        &'a self,
        tracking_number: &'a str,
        records: &'a [OdooRecord],
    ) -> futures::future::BoxFuture<'a, Result<(), StoreError>>;
}

/// [`OdooNotes`] on a ledger store, with the versioned update every writer uses.
pub struct LedgerNotes<L>(pub L);

impl<L: LedgerStore> OdooNotes for LedgerNotes<L> {
    fn note<'a>(
        &'a self,
        tracking_number: &'a str,
        records: &'a [OdooRecord],
    ) -> futures::future::BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            update(&self.0, tracking_number, |entry| entry.note_odoo(records)).await?;
            Ok(())
        })
    }
}

/// An entry as stored, with the version its conditional update checks.
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned {
    pub entry: LedgerEntry,
    pub version: u64,
}

/// Where the ledger lives: DynamoDB in AWS, the embedded database locally, memory in tests.
pub trait LedgerStore: Send + Sync {
    fn load(&self, key: &str)
    -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send;

    /// Saves `entry` as version `version` if the stored one is still `version - 1` (or absent
    /// when `version` is 1). Answers `false` when another writer got there first.
    fn save(
        &self,
        key: &str,
        entry: &LedgerEntry,
        version: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// At most `limit` entries after the key `after` (the last key of the previous page), in
    /// the store's own order (key order locally, a Scan's order in DynamoDB), for the sweeps.
    fn page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, LedgerEntry)>, StoreError>> + Send;
}

impl<T: LedgerStore> LedgerStore for std::sync::Arc<T> {
    fn load(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Versioned>, StoreError>> + Send {
        (**self).load(key)
    }

    fn save(
        &self,
        key: &str,
        entry: &LedgerEntry,
        version: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).save(key, entry, version)
    }

    fn page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<(String, LedgerEntry)>, StoreError>> + Send {
        (**self).page(after, limit)
    }
}

/// Reads the entry of `tracking_number`, changes it with `change`, and saves it with a version
/// check, again from a fresh read when another writer got there first. Answers the entry as
/// saved (or as found, when `change` changed nothing) and what `change` said.
pub async fn update<S, F>(
    store: &S,
    tracking_number: &str,
    mut change: F,
) -> Result<(LedgerEntry, Change), StoreError>
where
    S: LedgerStore,
    F: FnMut(&mut LedgerEntry) -> Change,
{
    let key = ledger_key(tracking_number);
    for attempt in 0..RECORD_ATTEMPTS {
        if attempt > 0 {
            let ceiling = (FIRST_PAUSE_MS << attempt.min(8)).min(LONGEST_PAUSE_MS);
            tokio::time::sleep(std::time::Duration::from_millis(fastrand::u64(1..=ceiling))).await;
        }
        let (mut entry, version) = match store.load(&key).await? {
            Some(found) => (found.entry, found.version),
            None => (LedgerEntry::new(tracking_number), 0),
        };
        let outcome = change(&mut entry);
        if outcome == Change::AlreadyApplied {
            return Ok((entry, outcome));
        }
        if store.save(&key, &entry, version + 1).await? {
            return Ok((entry, outcome));
        }
    }
    Err(StoreError::Unavailable(format!(
        "ledger entry {key} kept changing under {RECORD_ATTEMPTS} attempts"
    )))
}

/// Applies `event` to its shipment's entry (`update` + `LedgerEntry::apply`).
pub async fn record<S: LedgerStore>(
    store: &S,
    event: &CanonicalEvent,
    now: DateTime<Utc>,
) -> Result<(LedgerEntry, Change), StoreError> {
    let carrier = crate::odoo::finance::carrier_key(event).to_owned();
    update(store, &event.shipment.tracking_number, |entry| {
        entry.apply(event, &carrier, now)
    })
    .await
}

/// The in-memory ledger, for tests.
#[derive(Debug, Default)]
pub struct MemoryLedger {
    entries: std::sync::Mutex<std::collections::BTreeMap<String, (u64, LedgerEntry)>>,
    docs: std::sync::Mutex<std::collections::HashMap<String, (u64, String)>>,
}

impl MemoryLedger {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<String, (u64, LedgerEntry)>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl LedgerDocs for MemoryLedger {
    async fn load_doc(&self, key: &str) -> Result<Option<(String, u64)>, StoreError> {
        let docs = self.docs.lock().unwrap_or_else(|p| p.into_inner());
        Ok(docs
            .get(key)
            .map(|(version, json)| (json.clone(), *version)))
    }

    async fn save_doc(&self, key: &str, json: &str, version: u64) -> Result<bool, StoreError> {
        let mut docs = self.docs.lock().unwrap_or_else(|p| p.into_inner());
        let stored = docs.get(key).map_or(0, |(v, _)| *v);
        if stored + 1 != version {
            return Ok(false);
        }
        docs.insert(key.to_owned(), (version, json.to_owned()));
        Ok(true)
    }
}

impl LedgerStore for MemoryLedger {
    async fn load(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        Ok(self.lock().get(key).map(|(version, entry)| Versioned {
            entry: entry.clone(),
            version: *version,
        }))
    }

    async fn save(&self, key: &str, entry: &LedgerEntry, version: u64) -> Result<bool, StoreError> {
        let mut entries = self.lock();
        let stored = entries.get(key).map_or(0, |(v, _)| *v);
        if stored + 1 != version {
            return Ok(false);
        }
        entries.insert(key.to_owned(), (version, entry.clone()));
        Ok(true)
    }

    async fn page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, LedgerEntry)>, StoreError> {
        let entries = self.lock();
        let range = match after {
            Some(after) => entries
                .range::<str, _>((std::ops::Bound::Excluded(after), std::ops::Bound::Unbounded))
                .take(limit)
                .map(|(k, (_, e))| (k.clone(), e.clone()))
                .collect(),
            None => entries
                .iter()
                .take(limit)
                .map(|(k, (_, e))| (k.clone(), e.clone()))
                .collect(),
        };
        Ok(range)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::{
        ChargeKind, CostEstimate, Delivery, EstimateKind, InvoiceDate, InvoiceReceived,
        ShipmentRef, StatusChange,
    };
    use chrono::TimeZone;
    use rust_decimal::Decimal;

    fn d(text: &str) -> Decimal {
        text.parse().expect("decimal")
    }

    fn at(hour: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, hour, 0, 0)
            .single()
            .expect("valid")
    }

    fn event(id: u128, hour: u32, body: EventBody) -> CanonicalEvent {
        CanonicalEvent {
            schema: "freightbridge.canonical.v1".into(),
            event_id: Uuid::from_u128(id),
            partner: "fedex-edi".into(),
            source_event_id: format!("s{id}"),
            correlation_id: format!("c{id}"),
            occurred_at: at(hour),
            received_at: at(hour),
            shipment: ShipmentRef {
                tracking_number: " 1z999 ".into(),
                carrier: Some("FedEx".into()),
                reference: None,
            },
            body,
        }
    }

    fn status(status: ShipmentStatus) -> EventBody {
        EventBody::StatusChanged(StatusChange {
            status,
            status_detail: None,
            raw_status: None,
            location: None,
            message: None,
            eta: None,
        })
    }

    fn delivered() -> EventBody {
        EventBody::Delivered(Delivery {
            status: ShipmentStatus::Delivered,
            status_detail: None,
            location: None,
            message: None,
            pod: crate::canonical::ProofOfDelivery {
                signed_by: Some("A. PERSON".into()),
                delivered_at: at(9),
                document_url: None,
            },
        })
    }

    fn estimate(total: Decimal) -> EventBody {
        EventBody::CostEstimated(CostEstimate {
            estimate: Estimate {
                kind: EstimateKind::Booking,
                currency: "USD".into(),
                total,
                lines: vec![ChargeLine {
                    kind: ChargeKind::BaseFreight,
                    code: None,
                    description: None,
                    amount: total,
                }],
            },
        })
    }

    fn invoice(number: &str, total: Decimal) -> EventBody {
        EventBody::InvoiceReceived(InvoiceReceived {
            invoice: Invoice {
                number: number.into(),
                issued_on: InvoiceDate::from_ymd_opt(2026, 12, 2).expect("date"),
                currency: "USD".into(),
                total,
                lines: Vec::new(),
                references: Vec::new(),
                parties: Vec::new(),
                delivered_on: None,
                weight: None,
            },
        })
    }

    #[tokio::test]
    async fn the_odoo_records_written_for_a_shipment_are_noted_once_each() {
        let ledger = std::sync::Arc::new(MemoryLedger::new());
        let notes = LedgerNotes(ledger.clone());
        let bill = OdooRecord {
            model: "account.move".into(),
            id: 40,
        };
        let note = OdooRecord {
            model: "mail.message".into(),
            id: 7,
        };
        notes
            .note("1z9", std::slice::from_ref(&bill))
            .await
            .unwrap();
        notes
            .note("1Z9", &[bill.clone(), note.clone()])
            .await
            .unwrap();
        let entry = ledger
            .load(&ledger_key("1Z9"))
            .await
            .unwrap()
            .expect("entry")
            .entry;
        assert_eq!(entry.odoo, [bill, note]);
    }

    #[test]
    fn the_odoo_reference_comes_from_the_shipments_facts_not_its_invoices() {
        let mut entry = LedgerEntry::new("1Z9");
        let mut billed = event(1, 8, invoice("INV-9", d("10.00")));
        billed.shipment.reference = Some("SO-00042".into());
        entry.apply(&billed, "UPS", at(12));
        assert_eq!(
            entry.reference, None,
            "an invoice alone does not make it known"
        );
        let mut moving = event(2, 9, status(ShipmentStatus::InTransit));
        moving.shipment.reference = Some(" WH/OUT/00012 ".into());
        entry.apply(&moving, "UPS", at(12));
        assert_eq!(entry.reference.as_deref(), Some("WH/OUT/00012"));
        let mut blank = event(3, 10, status(ShipmentStatus::OutForDelivery));
        blank.shipment.reference = Some("  ".into());
        entry.apply(&blank, "UPS", at(12));
        assert_eq!(entry.reference.as_deref(), Some("WH/OUT/00012"), "kept");
    }

    #[test]
    fn an_invoice_is_kept_with_where_its_parties_are_but_not_who_they_are() {
        let mut body = invoice("INV-9", d("10.00"));
        if let EventBody::InvoiceReceived(received) = &mut body {
            received.invoice.parties = vec![
                crate::canonical::Party {
                    name: Some("PERSON SHIPPER".into()),
                    id: Some("S-1".into()),
                    postal_code: Some("07960".into()),
                    country: Some("US".into()),
                    ..crate::canonical::Party::new("SH")
                },
                crate::canonical::Party {
                    name: Some("PERSON BILL-TO".into()),
                    ..crate::canonical::Party::new("BT")
                },
            ];
        }
        let mut entry = LedgerEntry::new("1Z9");
        entry.apply(&event(1, 8, body), "UPS", at(12));
        let parties = &entry.invoices[0].invoice.parties;
        assert_eq!(parties.len(), 1, "{parties:?}");
        assert_eq!(
            (parties[0].role.as_str(), parties[0].postal_code.as_deref()),
            ("SH", Some("07960"))
        );
        let json = serde_json::to_string(&entry).expect("json");
        assert!(!json.contains("PERSON") && !json.contains("S-1"), "{json}");
    }

    #[test]
    fn events_build_the_entry_once_each_and_older_facts_do_not_overwrite_newer() {
        let mut entry = LedgerEntry::new(" 1z999 ");
        assert_eq!(entry.tracking_number, "1Z999");
        let now = at(12);
        let transit = event(1, 8, status(ShipmentStatus::InTransit));
        assert_eq!(entry.apply(&transit, "FedEx", now), Change::Changed);
        assert_eq!(entry.apply(&transit, "FedEx", now), Change::AlreadyApplied);
        assert_eq!(
            entry.apply(&event(2, 9, delivered()), "FedEx", now),
            Change::Changed
        );
        // An older scan arriving late is remembered, but the delivery stays the latest.
        let late = event(3, 7, status(ShipmentStatus::InTransit));
        assert_eq!(entry.apply(&late, "FedEx", now), Change::Noted);
        assert_eq!(
            entry.latest.as_ref().map(|l| l.status),
            Some(ShipmentStatus::Delivered)
        );
        let pod = entry.delivery.as_ref().expect("pod");
        assert!(pod.signed);
        assert!(
            !serde_json::to_string(&entry)
                .expect("json")
                .contains("PERSON"),
            "no names kept"
        );

        // A revised estimate replaces the expected cost; an older one does not.
        entry.apply(&event(4, 6, estimate(d("100.00"))), "FedEx", now);
        entry.apply(&event(5, 10, estimate(d("120.00"))), "FedEx", now);
        assert_eq!(
            entry.apply(&event(6, 5, estimate(d("90.00"))), "FedEx", now),
            Change::Noted
        );
        assert_eq!(
            entry.expected.as_ref().map(|e| e.estimate.total),
            Some(d("120.00"))
        );

        // The same carrier and invoice number in another file counts as a repeat.
        entry.apply(
            &event(7, 11, invoice("INV-1", d("121.00"))),
            "fedex-edi",
            now,
        );
        entry.apply(
            &event(8, 11, invoice("INV-1", d("121.00"))),
            "fedex-edi",
            now,
        );
        entry.apply(&event(9, 11, invoice("INV-2", d("5.00"))), "fedex-edi", now);
        assert_eq!(entry.invoices.len(), 2);
        assert_eq!(entry.invoices[0].repeats, 1);
        assert_eq!(
            entry.carriers,
            vec!["FedEx".to_owned(), "fedex-edi".to_owned()]
        );
    }

    #[test]
    fn the_applied_ids_are_bounded() {
        let mut entry = LedgerEntry::new("T");
        for id in 0..(APPLIED_KEPT as u128 + 10) {
            entry.apply(
                &event(id, 8, status(ShipmentStatus::InTransit)),
                "c",
                at(12),
            );
        }
        assert_eq!(entry.applied.len(), APPLIED_KEPT);
        assert_eq!(entry.applied[0], Uuid::from_u128(10));
    }

    #[tokio::test]
    async fn a_save_over_a_newer_version_is_refused() {
        let store = MemoryLedger::new();
        let entry = LedgerEntry::new("T");
        assert!(store.save("k", &entry, 1).await.expect("save"));
        assert!(
            !store.save("k", &entry, 1).await.expect("save"),
            "version 1 exists"
        );
        assert!(
            !store.save("k", &entry, 3).await.expect("save"),
            "a version skipped"
        );
        assert!(store.save("k", &entry, 2).await.expect("save"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_events_for_one_shipment_are_all_kept() {
        let store = std::sync::Arc::new(MemoryLedger::new());
        let mut tasks = Vec::new();
        for id in 0..32u128 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let body = invoice(&format!("INV-{id}"), d("10.00"));
                record(&*store, &event(100 + id, 11, body), at(12))
                    .await
                    .map(|(_, change)| change)
            }));
        }
        for task in tasks {
            assert_eq!(
                task.await.expect("joined").expect("recorded"),
                Change::Changed
            );
        }
        let stored = store
            .load(&ledger_key("1Z999"))
            .await
            .expect("load")
            .expect("entry");
        assert_eq!(stored.entry.invoices.len(), 32);
        assert_eq!(stored.version, 32);
        // Redelivered: nothing saved again.
        let again = record(
            &*store,
            &event(100, 11, invoice("INV-0", d("10.00"))),
            at(13),
        )
        .await
        .expect("recorded");
        assert_eq!(again.1, Change::AlreadyApplied);
        let page = store.page(None, 10).await.expect("page");
        assert_eq!(page.len(), 1);
        assert!(
            store
                .page(Some(&page[0].0), 10)
                .await
                .expect("page")
                .is_empty()
        );
    }
}
