//! Operator commands: the dead-letter queues listed and redriven, the bus archive replayed,
//! a shipment traced through the audit trail. The same commands and the same reports against
//! the local chain's state directory (`local`) and against a deployed stack (`aws`).

pub mod aws;
pub mod local;
pub mod reconcile;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// One message on a dead-letter queue, as `dlq list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Letter {
    /// The dead-letter queue it is on (`transform-dlq`, `odoo-dlq`, `bus-dlq`).
    pub queue: String,
    pub message_id: String,
    /// When it was sent to the dead-letter queue.
    pub sent_at: Option<DateTime<Utc>>,
    /// How many times its consumer had received it (`fb-receive-count`).
    pub receive_count: Option<u32>,
    pub error_class: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub odoo_error: Option<String>,
    /// The stage that gave up (`fb-consumer`).
    pub consumer: Option<String>,
    pub partner: Option<String>,
    pub shipment: Option<String>,
    pub event_id: Option<String>,
    pub delivery_id: Option<String>,
}

impl Letter {
    /// Fills partner, shipment, event and delivery from the body (`audit::letter_subjects`).
    pub fn with_subjects_of(mut self, body: &str) -> Letter {
        let (partner, subjects) = freightbridge::audit::letter_subjects(body);
        self.partner = partner;
        self.shipment = subjects.shipments.first().cloned();
        self.event_id = subjects.events.first().map(ToString::to_string);
        self.delivery_id = subjects.delivery_id;
        self
    }
}

/// Which letters a command acts on.
#[derive(Debug, Clone, Default)]
pub struct LetterFilter {
    /// Only this dead-letter queue (`transform-dlq`, `odoo-dlq`); all of them when `None`.
    pub queue: Option<String>,
    /// Only letters with this error code.
    pub code: Option<String>,
    /// Only letters sent to the DLQ at or after this time.
    pub since: Option<DateTime<Utc>>,
}

impl LetterFilter {
    pub fn matches(&self, letter: &Letter) -> bool {
        self.queue.as_ref().is_none_or(|q| q == &letter.queue)
            && self
                .code
                .as_ref()
                .is_none_or(|c| letter.error_code.as_ref() == Some(c))
            && self
                .since
                .is_none_or(|since| letter.sent_at.is_some_and(|at| at >= since))
    }
}

/// What a redrive did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RedriveSummary {
    /// Letters that matched the filter (all of them on a dry run).
    pub matched: usize,
    /// Sent back to their source queue and removed from the DLQ.
    pub moved: usize,
    /// Sent back, but still on the DLQ too (its delete failed): a redrive again is harmless,
    /// the consumers dedupe.
    pub sent_not_deleted: usize,
    /// Not moved: the send failed; still on the DLQ, unchanged.
    pub failed: usize,
    pub dry_run: bool,
}

impl RedriveSummary {
    fn line(&self) -> String {
        if self.dry_run {
            return format!("would redrive {} dead letter(s)", self.matched);
        }
        let mut line = format!("redrove {} of {} dead letter(s)", self.moved, self.matched);
        if self.sent_not_deleted > 0 {
            line.push_str(&format!(
                "; {} sent but still on the DLQ (redriving them again is harmless)",
                self.sent_not_deleted
            ));
        }
        if self.failed > 0 {
            line.push_str(&format!("; {} not moved, still on the DLQ", self.failed));
        }
        line
    }
}

/// The one-line summary of a redrive.
pub fn redrive_line(summary: &RedriveSummary) -> String {
    summary.line()
}

/// Which archived events a replay sends again.
#[derive(Debug, Clone)]
pub struct ReplayWindow {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub partner: Option<String>,
    /// Detail type (`shipment.status_changed`, `partner.webhook.received`, …).
    pub detail_type: Option<String>,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReplaySummary {
    /// Archived events in the window that matched. Counted locally only: EventBridge tells
    /// neither this nor `replayed` for a replay, so both stay 0 in AWS (see `state`).
    pub matched: usize,
    /// Sent again to their rules' targets.
    pub replayed: usize,
    pub dry_run: bool,
    /// The EventBridge replay's name (AWS only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay_name: Option<String>,
    /// The archive replayed from (AWS only: its ARN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    /// The rules the events are sent to again (AWS only: the replay's filter ARNs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// How the EventBridge replay ended (AWS only: `COMPLETED`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// Progress of a long command on stderr: one line rewritten in place on a terminal, a line
/// per tenth otherwise.
pub struct Progress {
    label: &'static str,
    total: usize,
    last_tenth: usize,
    terminal: bool,
}

impl Progress {
    pub fn new(label: &'static str, total: usize) -> Progress {
        use std::io::IsTerminal as _;
        Progress {
            label,
            total,
            last_tenth: 0,
            terminal: std::io::stderr().is_terminal(),
        }
    }

    pub fn update(&mut self, done: usize) {
        if self.total == 0 {
            return;
        }
        let width = 30;
        let filled = done.min(self.total) * width / self.total;
        let bar = format!(
            "{} [{}{}] {done}/{}",
            self.label,
            "#".repeat(filled),
            " ".repeat(width - filled),
            self.total
        );
        if self.terminal {
            eprint!("\r{bar}");
            if done >= self.total {
                eprintln!();
            }
        } else {
            let tenth = done * 10 / self.total;
            if tenth > self.last_tenth || done >= self.total {
                self.last_tenth = tenth;
                eprintln!("{bar}");
            }
        }
    }
}

/// A time given on the command line: RFC 3339 (`2026-12-04T10:00:00Z`), or an age back from
/// now (`90s`, `30m`, `2h`, `7d`).
pub fn parse_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let amount: i64 = number
        .parse()
        .map_err(|_| format!("{text:?} is neither an RFC 3339 time nor an age like 30m, 2h, 7d"))?;
    let age = match unit {
        "s" => Duration::seconds(amount),
        "m" => Duration::minutes(amount),
        "h" => Duration::hours(amount),
        "d" => Duration::days(amount),
        _ => return Err(format!("{text:?}: an age ends in s, m, h or d")),
    };
    Ok(now - age)
}

/// `dlq list` as a table.
pub fn letters_table(letters: &[Letter], now: DateTime<Utc>) -> String {
    let mut rows = vec![[
        "QUEUE".to_owned(),
        "MESSAGE ID".to_owned(),
        "AGE".to_owned(),
        "RECEIVES".to_owned(),
        "CODE".to_owned(),
        "PARTNER".to_owned(),
        "SHIPMENT".to_owned(),
        "MESSAGE".to_owned(),
    ]];
    for l in letters {
        rows.push([
            l.queue.clone(),
            l.message_id.clone(),
            l.sent_at.map_or("?".into(), |at| age(now - at)),
            l.receive_count.map_or("?".into(), |n| n.to_string()),
            l.error_code.clone().unwrap_or_else(|| "-".into()),
            l.partner.clone().unwrap_or_else(|| "-".into()),
            l.shipment.clone().unwrap_or_else(|| "-".into()),
            l.error_message
                .as_deref()
                .map(|m| m.chars().take(80).collect())
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut widths = [0usize; 8];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    out.push_str(&format!("{} dead letter(s)\n", letters.len()));
    out
}

/// `reconcile sweep` as text: one line per finding kind and carrier, then the oldest item.
/// Sweep ages an operator gives on the command line, in days, for every carrier.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgeOverrides {
    pub uninvoiced_days: Option<i64>,
    pub undelivered_days: Option<i64>,
    pub accrual_days: Option<i64>,
}

impl AgeOverrides {
    /// `settings` with these ages for every carrier; a negative or absurd age is refused.
    pub fn apply(
        self,
        settings: &freightbridge::reconcile::ReconcileConfig,
    ) -> Result<freightbridge::reconcile::ReconcileConfig, String> {
        let checked = |days: Option<i64>, flag: &str| match days {
            Some(d) if !(0..=3650).contains(&d) => {
                Err(format!("--{flag} must be between 0 and 3650 days"))
            }
            other => Ok(other.map(Duration::days)),
        };
        let uninvoiced = checked(self.uninvoiced_days, "uninvoiced-days")?;
        let undelivered = checked(self.undelivered_days, "undelivered-days")?;
        let accrual = checked(self.accrual_days, "accrual-days")?;
        Ok(settings
            .clone()
            .with_sweep_ages(|ages| freightbridge::reconcile::SweepAges {
                uninvoiced_after: uninvoiced.unwrap_or(ages.uninvoiced_after),
                undelivered_after: undelivered.unwrap_or(ages.undelivered_after),
                accrual_after: accrual.unwrap_or(ages.accrual_after),
            }))
    }
}

/// What `reconcile settle` did, for an operator.
pub fn settle_table(run: &reconciler::SettleRun) -> String {
    let mut out = format!(
        "ledger entries: {}, open invoices checked: {}, Odoo queries: {}, settled: {}, shipments closed: {}\n",
        run.entries,
        run.invoices_checked,
        run.odoo_queries,
        run.settled.len(),
        run.shipments_closed
    );
    for settled in &run.settled {
        out.push_str(&format!(
            "  {:<24} {:<10} invoice {:<16} bill {:<8} {:<10} {} {}{}\n",
            settled.tracking_number,
            settled.carrier,
            settled.invoice_number,
            settled.bill_id,
            settled.payment_state,
            settled.amount,
            settled.currency,
            if settled.published_now {
                ""
            } else {
                " (settled before)"
            }
        ));
    }
    out
}

pub fn sweep_table(run: &reconciler::SweepRun, now: DateTime<Utc>) -> String {
    let summary = &run.summary;
    let mut out = format!(
        "ledger entries: {}, findings: {}, disputes published: {}\n",
        summary.entries,
        summary.findings(),
        run.disputes_published
    );
    for (key, tally) in &summary.by_kind_and_carrier {
        let amounts: Vec<String> = tally
            .amounts
            .iter()
            .map(|(currency, amount)| format!("{amount} {currency}"))
            .collect();
        out.push_str(&format!(
            "  {key:<40} {:>6}  {}\n",
            tally.count,
            amounts.join(", ")
        ));
    }
    if let Some(oldest) = &summary.oldest {
        out.push_str(&format!(
            "oldest: {} {} ({}), {}\n",
            oldest.kind.as_str(),
            oldest.tracking_number,
            oldest.carrier,
            age(now - oldest.since)
        ));
    }
    out
}

/// An age as an operator reads it: `42s`, `17m`, `5h`, `3d`.
fn age(age: Duration) -> String {
    let seconds = age.num_seconds().max(0);
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

/// The operator commands' backend: a local state directory or a deployed stack.
pub enum Ops {
    Local(local::LocalOps),
    Aws(Box<aws::AwsOps>),
}

impl Ops {
    /// The stack whose outputs file is `outputs` (or `$FREIGHTBRIDGE_STACK_OUTPUTS`) when `aws`,
    /// else the state directory.
    pub async fn open(
        aws: bool,
        outputs: Option<&std::path::Path>,
        state_dir: &std::path::Path,
    ) -> Result<Ops, String> {
        if aws || outputs.is_some() {
            let ops = aws::AwsOps::from_env(outputs)
                .await
                .map_err(|e| e.to_string())?;
            Ok(Ops::Aws(Box::new(ops)))
        } else {
            local::LocalOps::open(state_dir)
                .map(Ops::Local)
                .map_err(|e| e.to_string())
        }
    }

    /// The reconciler's findings sweep (`reconcile::ReconcileOps::sweep`).
    pub async fn sweep(
        &self,
        settings: freightbridge::reconcile::ReconcileConfig,
        dispute: bool,
    ) -> Result<reconciler::SweepRun, String> {
        match self {
            Ops::Local(ops) => ops.reconcile().sweep(settings, dispute).await,
            Ops::Aws(ops) => {
                ops.reconcile()
                    .map_err(|e| e.to_string())?
                    .sweep(settings, dispute)
                    .await
            }
        }
    }

    /// The reconciler's settlement sweep against `odoo`.
    pub async fn settle(
        &self,
        odoo: &impl freightbridge::odoo::OdooPort,
    ) -> Result<reconciler::SettleRun, String> {
        match self {
            Ops::Local(ops) => ops.reconcile().settle(odoo).await,
            Ops::Aws(ops) => {
                ops.reconcile()
                    .map_err(|e| e.to_string())?
                    .settle(odoo)
                    .await
            }
        }
    }

    /// The exceptions report at `now`.
    pub async fn exceptions(
        &self,
        now: DateTime<Utc>,
        ages: &impl freightbridge::reconcile::SweepAgesFor,
    ) -> Result<freightbridge::reconcile::ExceptionReport, String> {
        match self {
            Ops::Local(ops) => ops.reconcile().exceptions(now, ages).await,
            Ops::Aws(ops) => {
                ops.reconcile()
                    .map_err(|e| e.to_string())?
                    .exceptions(now, ages)
                    .await
            }
        }
    }

    /// A person approves a disputed invoice.
    pub async fn approve(
        &self,
        invoice_number: &str,
        approver: &str,
        reason: &str,
        segregate: bool,
    ) -> Result<freightbridge::canonical::CanonicalEvent, String> {
        match self {
            Ops::Local(ops) => {
                ops.reconcile()
                    .approve(invoice_number, approver, reason, segregate)
                    .await
            }
            Ops::Aws(ops) => {
                ops.reconcile()
                    .map_err(|e| e.to_string())?
                    .approve(invoice_number, approver, reason, segregate)
                    .await
            }
        }
    }

    pub async fn letters(&self, filter: &LetterFilter) -> Result<Vec<(Letter, String)>, String> {
        match self {
            Ops::Local(ops) => ops.letters(filter).map_err(|e| e.to_string()),
            Ops::Aws(ops) => ops.letters(filter).await.map_err(|e| e.to_string()),
        }
    }

    pub async fn redrive(
        &self,
        filter: &LetterFilter,
        limit: Option<usize>,
        dry_run: bool,
    ) -> Result<RedriveSummary, String> {
        match self {
            Ops::Local(ops) => ops
                .redrive(filter, limit, dry_run)
                .await
                .map_err(|e| e.to_string()),
            Ops::Aws(ops) => ops
                .redrive(filter, limit, dry_run)
                .await
                .map_err(|e| e.to_string()),
        }
    }

    pub async fn replay(
        &self,
        window: &ReplayWindow,
        dry_run: bool,
    ) -> Result<ReplaySummary, String> {
        match self {
            Ops::Local(ops) => ops.replay(window, dry_run).await.map_err(|e| e.to_string()),
            Ops::Aws(ops) => ops.replay(window, dry_run).await.map_err(|e| e.to_string()),
        }
    }

    pub async fn trace(
        &self,
        query: &str,
    ) -> Result<Vec<freightbridge::audit::AuditRecord>, String> {
        match self {
            Ops::Local(ops) => ops.trace(query).await.map_err(|e| e.to_string()),
            Ops::Aws(ops) => ops.trace(query).await.map_err(|e| e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, 12, 0, 0)
            .single()
            .expect("valid")
    }

    fn letter(queue: &str, code: &str, minutes_ago: i64) -> Letter {
        Letter {
            queue: queue.into(),
            message_id: format!("m-{code}"),
            sent_at: Some(now() - Duration::minutes(minutes_ago)),
            receive_count: Some(1),
            error_class: Some("permanent".into()),
            error_code: Some(code.into()),
            error_message: Some("no picking with tracking 1Z".into()),
            odoo_error: None,
            consumer: Some("odoo-poster".into()),
            partner: Some("easypost".into()),
            shipment: Some("1Z".into()),
            event_id: None,
            delivery_id: None,
        }
    }

    #[test]
    fn times_are_rfc3339_or_ages() {
        assert_eq!(parse_time("2h", now()), Ok(now() - Duration::hours(2)));
        assert_eq!(parse_time("90s", now()), Ok(now() - Duration::seconds(90)));
        assert_eq!(
            parse_time("2026-12-04T10:00:00+01:00", now()),
            Ok(Utc
                .with_ymd_and_hms(2026, 12, 4, 9, 0, 0)
                .single()
                .expect("valid"))
        );
        assert!(parse_time("yesterday", now()).is_err());
        assert!(parse_time("5w", now()).is_err());
        assert!(parse_time("", now()).is_err());
    }

    #[test]
    fn the_filter_picks_by_queue_code_and_age() {
        let l = letter("odoo-dlq", "odoo_missing_record", 30);
        assert!(LetterFilter::default().matches(&l));
        let by_code = LetterFilter {
            code: Some("odoo_missing_record".into()),
            ..LetterFilter::default()
        };
        assert!(by_code.matches(&l));
        let other_code = LetterFilter {
            code: Some("bad_row".into()),
            ..LetterFilter::default()
        };
        assert!(!other_code.matches(&l));
        let other_queue = LetterFilter {
            queue: Some("transform-dlq".into()),
            ..LetterFilter::default()
        };
        assert!(!other_queue.matches(&l));
        let recent = LetterFilter {
            since: Some(now() - Duration::minutes(10)),
            ..LetterFilter::default()
        };
        assert!(!recent.matches(&l));
    }

    #[test]
    fn the_table_has_a_row_per_letter_with_age_code_partner_and_shipment() {
        let table = letters_table(
            &[
                letter("odoo-dlq", "odoo_missing_record", 30),
                letter("transform-dlq", "bad_row", 3_000),
            ],
            now(),
        );
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("QUEUE"), "{table}");
        assert!(
            lines[1].contains("30m") && lines[1].contains("odoo_missing_record"),
            "{table}"
        );
        assert!(
            lines[1].contains("easypost") && lines[1].contains("1Z"),
            "{table}"
        );
        assert!(
            lines[2].contains("2d") && lines[2].contains("bad_row"),
            "{table}"
        );
        assert_eq!(lines[3], "2 dead letter(s)");
    }
}
