//! The operator commands against a local chain's state directory (`freightctl serve
//! --state-dir`), safe beside a running `serve`: each change is one SQLite transaction, so a
//! command stopped halfway has moved whole batches or nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use freightbridge::audit::{self, Actor, AuditLog, AuditRecord, Auditor, Outcome, Reason, Stage};
use freightbridge::aws::sqs::attr;
use freightbridge::bus::{BusEvent, EventBus as _};
use freightbridge::canonical::CanonicalEvent;

use super::{Letter, LetterFilter, Progress, RedriveSummary, ReplaySummary, ReplayWindow};
use crate::chain::{DEAD_LETTER_QUEUES, bus_rules};
use crate::durable::{
    ArchivedEvent, Durable, DurableAuditLog, DurableBus, DurableError, DurableQueue, QueuedMessage,
};

/// Letters moved per transaction by a redrive.
const REDRIVE_BATCH: usize = 100;

/// The operator's view of a state directory.
pub struct LocalOps {
    state: Arc<Durable>,
    audit: DurableAuditLog,
    /// The operator's own steps go to the same trail.
    auditor: Auditor,
    /// The bus with the chain's rules, for replays and the reconciliation outcomes published here.
    bus: Arc<DurableBus>,
}

impl LocalOps {
    pub fn open(state_dir: &Path) -> Result<LocalOps, DurableError> {
        let state = Durable::open_operator(state_dir)?;
        let audit = DurableAuditLog::new(
            &state,
            chrono::Duration::days(i64::from(audit::DEFAULT_TTL_DAYS)),
        );
        let auditor = Auditor::new(Arc::new(audit.clone()));
        let bus = DurableBus::new(&state);
        for rule in bus_rules() {
            bus.add_rule(rule);
        }
        Ok(LocalOps {
            state,
            audit,
            auditor,
            bus: Arc::new(bus),
        })
    }

    /// The next page of ledger entries after the cursor `after`, which it moves on; empty at
    /// the end.
    async fn ledger_page(
        &self,
        after: &mut Option<String>,
    ) -> Result<Vec<(String, freightbridge::ledger::LedgerEntry)>, String> {
        use freightbridge::ledger::LedgerStore as _;
        let page = self
            .state
            .page(after.as_deref(), 500)
            .await
            .map_err(|e| e.to_string())?;
        if let Some((last, _)) = page.last() {
            *after = Some(last.clone());
        }
        Ok(page)
    }

    fn queue(&self, name: &str) -> Arc<DurableQueue> {
        // Only listed and moved from here, never received: the timeout and count do not apply.
        DurableQueue::new(&self.state, name, Duration::from_secs(30), u32::MAX, None)
    }

    /// The dead letters `filter` picks, oldest first, queue by queue.
    pub fn letters(&self, filter: &LetterFilter) -> Result<Vec<(Letter, String)>, DurableError> {
        let mut letters = Vec::new();
        for (dlq, _) in DEAD_LETTER_QUEUES {
            if filter.queue.as_deref().is_some_and(|q| q != dlq) {
                continue;
            }
            for message in self.queue(dlq).snapshot()? {
                let letter = letter(dlq, &message);
                if filter.matches(&letter) {
                    letters.push((letter, message.body));
                }
            }
        }
        Ok(letters)
    }

    /// Moves the letters `filter` picks (at most `limit`) back to the queues they came from,
    /// unchanged, `REDRIVE_BATCH` per transaction, writing each to the audit trail.
    pub async fn redrive(
        &self,
        filter: &LetterFilter,
        limit: Option<usize>,
        dry_run: bool,
    ) -> Result<RedriveSummary, DurableError> {
        let mut picked = self.letters(filter)?;
        if let Some(limit) = limit {
            picked.truncate(limit);
        }
        let mut summary = RedriveSummary {
            matched: picked.len(),
            dry_run,
            ..RedriveSummary::default()
        };
        if dry_run || picked.is_empty() {
            return Ok(summary);
        }
        let auditor = &self.auditor;
        let mut progress = Progress::new("redrive", picked.len());
        for (dlq, source) in DEAD_LETTER_QUEUES {
            let of_queue: Vec<&(Letter, String)> =
                picked.iter().filter(|(l, _)| l.queue == dlq).collect();
            for batch in of_queue.chunks(REDRIVE_BATCH) {
                let ids: Vec<String> = batch.iter().map(|(l, _)| l.message_id.clone()).collect();
                let moved = self.queue(dlq).redrive(source, Some(&ids))?;
                summary.moved += moved;
                // A letter another command moved (or serve consumed) in between is not there.
                summary.failed += ids.len() - moved;
                let now = Utc::now();
                let records: Vec<AuditRecord> = batch
                    .iter()
                    .map(|(letter, body)| operator_record("redriven", letter, body, now))
                    .collect();
                auditor.record(&records).await;
                progress.update(summary.moved + summary.failed);
            }
        }
        Ok(summary)
    }

    /// Sends the archived events in `window` again to their rules' queues. The consumers dedupe
    /// them (same event ids, same delivery ids), so a replay never applies an effect twice.
    pub async fn replay(
        &self,
        window: &ReplayWindow,
        dry_run: bool,
    ) -> Result<ReplaySummary, DurableError> {
        let bus = &self.bus;
        let picked: Vec<ArchivedEvent> = bus
            .archive()?
            .into_iter()
            .filter(|event| in_window(event, window))
            .collect();
        let mut summary = ReplaySummary {
            matched: picked.len(),
            dry_run,
            ..ReplaySummary::default()
        };
        if dry_run {
            return Ok(summary);
        }
        let auditor = &self.auditor;
        let mut progress = Progress::new("replay", picked.len());
        for batch in picked.chunks(REDRIVE_BATCH) {
            bus.resend(batch)?;
            summary.replayed += batch.len();
            let now = Utc::now();
            let records: Vec<AuditRecord> = batch
                .iter()
                .map(|event| replay_record(event, now))
                .collect();
            auditor.record(&records).await;
            progress.update(summary.replayed);
        }
        Ok(summary)
    }

    /// Every step of the shipments `query` names (`audit::trace`).
    pub async fn trace(&self, query: &str) -> Result<Vec<AuditRecord>, audit::AuditError> {
        audit::trace(&self.audit as &dyn AuditLog, query).await
    }
}

/// Whether an archived event is one the window asks for.
fn in_window(event: &ArchivedEvent, window: &ReplayWindow) -> bool {
    if event.time < window.from || event.time > window.to {
        return false;
    }
    if window
        .detail_type
        .as_ref()
        .is_some_and(|t| t != &event.detail_type)
    {
        return false;
    }
    match &window.partner {
        None => true,
        Some(partner) => serde_json::from_str::<serde_json::Value>(&event.envelope)
            .ok()
            .and_then(|envelope| {
                envelope
                    .pointer("/detail/partner")
                    .and_then(|p| p.as_str().map(|p| p == partner))
            })
            .unwrap_or(false),
    }
}

/// The trail's record of an archived event sent again.
fn replay_record(event: &ArchivedEvent, now: chrono::DateTime<Utc>) -> AuditRecord {
    let (partner, subjects) = audit::letter_subjects(&event.envelope);
    AuditRecord::new(
        Stage::Operator,
        Actor {
            function: "freightctl replay".to_owned(),
            partner,
            odoo_user: None,
        },
        "replayed",
        now,
        Outcome::Done,
    )
    .subjects(subjects)
    .input_hash(freightbridge::idempotency::sha256_tag(
        event.envelope.as_bytes(),
    ))
    .reason(Reason::new(
        "replay",
        &format!("{} sent again", event.detail_type),
    ))
}

/// A stored dead letter as the listing shows it.
fn letter(queue: &str, message: &QueuedMessage) -> Letter {
    let get = |name: &str| {
        message
            .attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    Letter {
        queue: queue.to_owned(),
        message_id: message.id.clone(),
        sent_at: Some(message.sent_at),
        receive_count: get(attr::RECEIVE_COUNT).and_then(|n| n.parse().ok()),
        error_class: get(attr::ERROR_CLASS),
        error_code: get(attr::ERROR_CODE),
        error_message: get(attr::ERROR_MESSAGE),
        odoo_error: get(attr::ODOO_ERROR),
        consumer: get(attr::CONSUMER),
        partner: None,
        shipment: None,
        event_id: None,
        delivery_id: None,
    }
    .with_subjects_of(&message.body)
}

/// The trail's record of an operator's action on a letter.
pub fn operator_record(
    action: &str,
    letter: &Letter,
    body: &str,
    now: chrono::DateTime<Utc>,
) -> AuditRecord {
    let (partner, subjects) = audit::letter_subjects(body);
    let mut record = AuditRecord::new(
        Stage::Operator,
        Actor {
            function: format!("freightctl dlq {action}"),
            partner,
            odoo_user: None,
        },
        action,
        now,
        Outcome::Done,
    )
    .subjects(subjects)
    .input_hash(freightbridge::idempotency::sha256_tag(body.as_bytes()));
    if let Some(code) = &letter.error_code {
        record = record.reason(Reason::new(
            code,
            &format!("from {} back to its queue", letter.queue),
        ));
    }
    record
}

impl LocalOps {
    /// A person approves a disputed invoice (`reconciler::approve`): the `freight_invoice.matched`
    /// is published on the bus (the poster posts the bill and reverses the accrual), the ledger
    /// records the outcome, and the trail the approver, the reason and what was overruled.
    /// With `segregate`, whoever the trail shows confirming the delivery may not approve.
    pub async fn approve(
        &self,
        invoice_number: &str,
        approver: &str,
        reason: &str,
        segregate: bool,
    ) -> Result<CanonicalEvent, String> {
        let entry = self
            .entry_with_invoice(invoice_number)
            .await?
            .ok_or_else(|| reconciler::ApprovalRefused::UnknownInvoice.to_string())?;
        let shipment = audit::subject_key(audit::Kind::Shipment, &entry.tracking_number);
        let confirmed_by: Vec<String> = self
            .audit
            .by_subject(&shipment, audit::TRACE_LIMIT)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|r| r.action == "delivery_confirmed" && r.outcome == Outcome::Done)
            .filter_map(|r| r.actor.odoo_user)
            .collect();
        let now = Utc::now();
        let (event, outcome) = reconciler::approve(
            &entry,
            invoice_number,
            approver,
            reason,
            &confirmed_by,
            segregate,
            now,
        )
        .map_err(|refused| refused.to_string())?;
        self.publish_outcome(&event, &entry.tracking_number, &outcome)
            .await?;
        let record = AuditRecord::new(
            Stage::Operator,
            Actor {
                function: "freightctl reconcile approve".to_owned(),
                partner: Some(event.partner.clone()),
                odoo_user: Some(approver.to_owned()),
            },
            "dispute_approved",
            now,
            Outcome::Done,
        )
        .subjects(audit::Subjects::of_event(&event))
        .output(audit::Output::Event {
            id: event.event_id,
            event_type: event.event_type().to_owned(),
        })
        .reason(Reason::new("approved_by_person", reason));
        self.auditor.record(&[record]).await;
        Ok(event)
    }

    /// Publishes a reconciliation outcome on the bus (for the poster) and records it in the
    /// shipment's ledger entry.
    async fn publish_outcome(
        &self,
        event: &CanonicalEvent,
        tracking_number: &str,
        outcome: &freightbridge::ledger::MatchOutcome,
    ) -> Result<(), String> {
        let bus = &self.bus;
        let published = BusEvent::new(
            freightbridge::canonical::RECONCILIATION_SOURCE,
            event.event_type(),
            event,
        )
        .map_err(|e| e.to_string())?;
        bus.publish(&[published]).await.map_err(|e| e.to_string())?;
        freightbridge::ledger::update(&self.state, tracking_number, |e| {
            e.record_outcome(outcome.clone())
        })
        .await
        .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The ledger entry holding invoice `number`, read page by page.
    async fn entry_with_invoice(
        &self,
        number: &str,
    ) -> Result<Option<freightbridge::ledger::LedgerEntry>, String> {
        let mut after = None;
        loop {
            let page = self.ledger_page(&mut after).await?;
            if page.is_empty() {
                return Ok(None);
            }
            if let Some((_, entry)) = page
                .into_iter()
                .find(|(_, e)| e.invoices.iter().any(|i| i.number == number))
            {
                return Ok(Some(entry));
            }
        }
    }
}

impl LocalOps {
    /// The reconciler over this state directory's ledger and bus, writing to its trail.
    fn reconciler(
        &self,
        settings: freightbridge::reconcile::ReconcileConfig,
    ) -> reconciler::Reconciler<Arc<Durable>, Arc<DurableBus>> {
        reconciler::Reconciler::new(self.state.clone(), self.bus.clone(), Arc::new(settings))
            .with_audit(self.auditor.clone())
    }

    /// The reconciler's findings sweep (`reconciler::Reconciler::sweep`) over the local ledger,
    /// with each carrier's ages from `settings`; with `dispute`, invoices still waiting for
    /// their proof of delivery are disputed as `no_pod` once.
    pub async fn sweep(
        &self,
        settings: freightbridge::reconcile::ReconcileConfig,
        dispute: bool,
    ) -> Result<reconciler::SweepRun, String> {
        self.reconciler(settings)
            .sweep(Utc::now(), dispute, "freightctl reconcile sweep")
            .await
            .map_err(|e| format!("{}: {}", e.code, e.message))
    }

    /// The reconciler's settlement sweep over the local ledger against `odoo`.
    pub async fn settle(
        &self,
        odoo: &impl freightbridge::odoo::OdooPort,
    ) -> Result<reconciler::SettleRun, String> {
        self.reconciler(freightbridge::reconcile::ReconcileConfig::default())
            .settle(odoo, Utc::now(), "freightctl reconcile settle")
            .await
            .map_err(|e| format!("{}: {}", e.code, e.message))
    }

    /// The exceptions report of the whole local ledger at `now` (read only: it publishes and
    /// changes nothing), each carrier's sweep ages from `ages`.
    pub async fn exceptions(
        &self,
        now: chrono::DateTime<Utc>,
        ages: &impl freightbridge::reconcile::SweepAgesFor,
    ) -> Result<freightbridge::reconcile::ExceptionReport, String> {
        let mut report = freightbridge::reconcile::ExceptionReport::new(now);
        let mut after = None;
        loop {
            let page = self.ledger_page(&mut after).await?;
            if page.is_empty() {
                return Ok(report.finish());
            }
            for (_, entry) in &page {
                report.add(entry, ages);
            }
        }
    }
}
