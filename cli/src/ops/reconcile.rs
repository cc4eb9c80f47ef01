//! The reconciler's operator commands — sweep, settle, the exceptions report, a person's
//! approval — over any ledger, bus and audit trail: the state directory's locally, DynamoDB,
//! EventBridge and the audit table of a deployed stack with `--aws`. Each is the reconciler's
//! own code (`reconciler::Reconciler`, `reconciler::approve`) run from the operator's shell.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use freightbridge::audit::{self, Actor, AuditLog, AuditRecord, Auditor, Outcome, Reason, Stage};
use freightbridge::bus::{BusEvent, EventBus};
use freightbridge::canonical::CanonicalEvent;
use freightbridge::ledger::{self, LedgerDocs, LedgerEntry, LedgerStore, MatchOutcome};
use freightbridge::odoo::OdooPort;
use freightbridge::reconcile::{ExceptionReport, ReconcileConfig, SweepAgesFor};
use reconciler::{Reconciler, SettleRun, SweepRun};

/// Ledger entries read per page.
const PAGE: usize = 500;

/// The reconciler's state as an operator reaches it.
pub struct ReconcileOps<L, B, A> {
    ledger: L,
    bus: B,
    audit: A,
    auditor: Auditor,
}

impl<L, B, A> ReconcileOps<L, B, A>
where
    L: LedgerStore + LedgerDocs + Clone,
    B: EventBus + Clone,
    A: AuditLog,
{
    /// `audit` is read (who confirmed a delivery), `auditor` written (what the operator did).
    pub fn new(ledger: L, bus: B, audit: A, auditor: Auditor) -> Self {
        Self {
            ledger,
            bus,
            audit,
            auditor,
        }
    }

    fn reconciler(&self, settings: ReconcileConfig) -> Reconciler<L, B> {
        Reconciler::new(self.ledger.clone(), self.bus.clone(), Arc::new(settings))
            .with_audit(self.auditor.clone())
    }

    /// The findings sweep (`Reconciler::sweep`) with each carrier's ages from `settings`; with
    /// `dispute`, invoices overdue for their facts are disputed as they stand, once.
    pub async fn sweep(
        &self,
        settings: ReconcileConfig,
        dispute: bool,
    ) -> Result<SweepRun, String> {
        self.reconciler(settings)
            .sweep(Utc::now(), dispute, "freightctl reconcile sweep")
            .await
            .map_err(|e| format!("{}: {}", e.code, e.message))
    }

    /// The settlement sweep (`Reconciler::settle`) against `odoo`.
    pub async fn settle(&self, odoo: &impl OdooPort) -> Result<SettleRun, String> {
        self.reconciler(ReconcileConfig::default())
            .settle(odoo, Utc::now(), "freightctl reconcile settle")
            .await
            .map_err(|e| format!("{}: {}", e.code, e.message))
    }

    /// The exceptions report of the whole ledger at `now`, each carrier's ages from `ages`.
    /// Read only: it publishes and changes nothing.
    pub async fn exceptions(
        &self,
        now: DateTime<Utc>,
        ages: &impl SweepAgesFor,
    ) -> Result<ExceptionReport, String> {
        let mut report = ExceptionReport::new(now);
        let mut after = None;
        loop {
            let page = self.page(&mut after).await?;
            if page.is_empty() {
                return Ok(report.finish());
            }
            for (_, entry) in &page {
                report.add(entry, ages);
            }
        }
    }

    /// A person approves a disputed invoice (`reconciler::approve`): the
    /// `freight_invoice.matched` is published on the bus (the poster posts the bill and reverses
    /// the accrual), the ledger records the outcome, and the trail the approver, the reason and
    /// what was overruled. With `segregate`, whoever the trail shows confirming the delivery
    /// may not approve.
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
        outcome: &MatchOutcome,
    ) -> Result<(), String> {
        let published = BusEvent::new(
            freightbridge::canonical::RECONCILIATION_SOURCE,
            event.event_type(),
            event,
        )
        .map_err(|e| e.to_string())?;
        self.bus
            .publish(&[published])
            .await
            .map_err(|e| e.to_string())?;
        ledger::update(&self.ledger, tracking_number, |e| {
            e.record_outcome(outcome.clone())
        })
        .await
        .map_err(|e| e.to_string())?;
        Ok(())
    }

    /// The ledger entry holding invoice `number`, read page by page.
    async fn entry_with_invoice(&self, number: &str) -> Result<Option<LedgerEntry>, String> {
        let mut after = None;
        loop {
            let page = self.page(&mut after).await?;
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

    async fn page(&self, after: &mut Option<String>) -> Result<Vec<(String, LedgerEntry)>, String> {
        let page = self
            .ledger
            .page(after.as_deref(), PAGE)
            .await
            .map_err(|e| e.to_string())?;
        if let Some((last, _)) = page.last() {
            *after = Some(last.clone());
        }
        Ok(page)
    }
}
