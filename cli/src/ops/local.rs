//! The operator commands against a local chain's state directory (`freightctl serve
//! --state-dir`), safe beside a running `serve`: each change is one SQLite transaction, so a
//! command stopped halfway has moved whole batches or nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use freightbridge::audit::{self, Actor, AuditLog, AuditRecord, Auditor, Outcome, Reason, Stage};
use freightbridge::aws::sqs::attr;

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
    /// The reconciler's operator commands over this state directory's ledger, bus and trail.
    pub fn reconcile(
        &self,
    ) -> super::reconcile::ReconcileOps<Arc<Durable>, Arc<DurableBus>, DurableAuditLog> {
        super::reconcile::ReconcileOps::new(
            self.state.clone(),
            self.bus.clone(),
            self.audit.clone(),
            self.auditor.clone(),
        )
    }
}
