//! The operator commands against a deployed stack, through the SDK and the stack's outputs (the
//! JSON `sam list stack-outputs --output json` prints). The same reports as the local backend:
//! dead letters listed and redriven (receive → send → delete, never a delete before the send
//! succeeded), the bus archive replayed with `StartReplay`, a shipment traced in the audit table.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_eventbridge::types::{PutEventsRequestEntry, ReplayDestination, ReplayState};
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageAttributeValue,
    MessageSystemAttributeName,
};
use chrono::{DateTime, Utc};
use freightbridge::audit::{
    self, Actor, AuditError, AuditLog, AuditRecord, Auditor, Outcome, Reason, Stage,
};
use freightbridge::aws::audit::DynamoAuditLog;
use freightbridge::aws::render_error;
use freightbridge::aws::sqs::attr;
use freightbridge::bus::Envelope;
use freightbridge::canonical::EventBody;
use freightbridge::webhook;
use serde::Deserialize;
use serde_json::value::RawValue;
use thiserror::Error;

use super::{Letter, LetterFilter, Progress, RedriveSummary, ReplaySummary, ReplayWindow};

/// Where the outputs file is looked for when no path is given.
pub const OUTPUTS_ENV: &str = "FREIGHTBRIDGE_STACK_OUTPUTS";

/// How long a listing holds the letters it received before making them visible again: long
/// enough to read a large queue; an interrupted listing leaves them hidden this long at most.
const LIST_VISIBILITY_SECONDS: i32 = 120;
/// How long a redrive holds the letters it received: long enough to send and delete them all.
/// A letter whose hold ran out before its delete is sent again by the next redrive, which the
/// consumers dedupe.
const REDRIVE_VISIBILITY_SECONDS: i32 = 900;
/// Receives in a row that bring back only letters already held (their hold ran out) before a
/// scan stops.
const STALE_RECEIVES: usize = 3;
/// Operator records written to the trail at once.
const AUDIT_BATCH: usize = 25;

/// Each dead-letter queue: its name in reports, the output holding its URL, where its letters
/// go back to.
const DEAD_LETTER_QUEUES: [(&str, &str, Back); 4] = [
    (
        "transform-dlq",
        "TransformDlqUrl",
        Back::Queue("TransformQueueUrl"),
    ),
    ("odoo-dlq", "OdooDlqUrl", Back::Queue("OdooQueueUrl")),
    (
        "reconcile-dlq",
        "ReconcileDlqUrl",
        Back::Queue("ReconcileQueueUrl"),
    ),
    ("bus-dlq", "BusDlqUrl", Back::Bus),
];

/// Where a redriven letter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Back {
    /// The consumer's queue (the output holding its URL), body and attributes unchanged.
    Queue(&'static str),
    /// The bus, with PutEvents: the letter is an event a rule could not deliver.
    Bus,
}

/// The template's rules: the output holding each one's ARN and the detail types it routes.
fn rules() -> [(&'static str, Vec<&'static str>); 2] {
    [
        ("IngressToTransformRuleArn", vec![webhook::DETAIL_TYPE]),
        ("CanonicalToOdooRuleArn", EventBody::TYPES.to_vec()),
    ]
}

#[derive(Debug, Error)]
pub enum AwsOpsError {
    #[error(
        "no stack outputs file: pass its path or set {OUTPUTS_ENV} (write it with \
         `sam list stack-outputs --stack-name <stack> --output json > outputs.json`)"
    )]
    NoOutputsFile,
    #[error("stack outputs file {path}: {reason}")]
    OutputsUnreadable { path: PathBuf, reason: String },
    #[error(
        "stack outputs file {path} has no output {key} (a stack deployed from an older \
         template? deploy it again, then write the file again)"
    )]
    MissingOutput { key: &'static str, path: PathBuf },
    #[error("stack output {key} in {path} is not what it should be: {reason}")]
    BadOutput {
        key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("unknown dead-letter queue {0:?}: transform-dlq, odoo-dlq, reconcile-dlq or bus-dlq")]
    UnknownQueue(String),
    #[error("{operation} failed: {detail}")]
    Aws {
        operation: &'static str,
        detail: String,
    },
    #[error(
        "--partner cannot be replayed in AWS: an EventBridge replay picks events by time and \
         rule only, never by what their detail says. Replay the window without --partner \
         (the consumers dedupe what they already applied), or redrive the partner's letters"
    )]
    PartnerFilterUnsupported,
    #[error("no rule of the stack routes detail type {0:?}; known types: {1}")]
    UnknownDetailType(String, String),
    #[error(
        "the replay window {from} .. {to} holds no archived event: it must start before it \
         ends, and before now"
    )]
    EmptyWindow {
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    },
    #[error("replay {name} ended {state}: {reason}")]
    ReplayEnded {
        name: String,
        state: String,
        reason: String,
    },
    #[error("audit trail: {0}")]
    Audit(#[from] AuditError),
    #[error("{0}")]
    Environment(String),
}

fn sdk_error<E: std::error::Error>(operation: &'static str, error: &E) -> AwsOpsError {
    AwsOpsError::Aws {
        operation,
        detail: render_error(error),
    }
}

/// A stack's outputs, by key, and the file they came from (for error messages).
#[derive(Debug, Clone)]
pub struct StackOutputs {
    values: BTreeMap<String, String>,
    path: PathBuf,
}

/// One row of `sam list stack-outputs --output json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct OutputRow {
    output_key: String,
    output_value: String,
}

impl StackOutputs {
    /// The file at `path`, else at `$FREIGHTBRIDGE_STACK_OUTPUTS`.
    pub fn locate(path: Option<&Path>) -> Result<StackOutputs, AwsOpsError> {
        match path {
            Some(path) => StackOutputs::load(path),
            None => match std::env::var_os(OUTPUTS_ENV).filter(|p| !p.is_empty()) {
                Some(path) => StackOutputs::load(Path::new(&path)),
                None => Err(AwsOpsError::NoOutputsFile),
            },
        }
    }

    pub fn load(path: &Path) -> Result<StackOutputs, AwsOpsError> {
        let text = std::fs::read_to_string(path).map_err(|e| AwsOpsError::OutputsUnreadable {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        StackOutputs::parse(&text, path)
    }

    /// The outputs in `text`, said to come from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<StackOutputs, AwsOpsError> {
        let rows: Vec<OutputRow> =
            serde_json::from_str(text).map_err(|e| AwsOpsError::OutputsUnreadable {
                path: path.to_owned(),
                reason: format!(
                    "not the JSON array `sam list stack-outputs --output json` prints: {e}"
                ),
            })?;
        Ok(StackOutputs {
            values: rows
                .into_iter()
                .map(|row| (row.output_key, row.output_value))
                .collect(),
            path: path.to_owned(),
        })
    }

    /// The value of output `key`; its absence names the key and the file.
    pub fn get(&self, key: &'static str) -> Result<&str, AwsOpsError> {
        self.values
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| AwsOpsError::MissingOutput {
                key,
                path: self.path.clone(),
            })
    }

    fn bad(&self, key: &'static str, reason: String) -> AwsOpsError {
        AwsOpsError::BadOutput {
            key,
            path: self.path.clone(),
            reason,
        }
    }
}

/// The operator's view of a deployed stack.
pub struct AwsOps {
    outputs: StackOutputs,
    sqs: aws_sdk_sqs::Client,
    events: aws_sdk_eventbridge::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    audit_ttl: chrono::Duration,
    replay_poll: Duration,
}

impl AwsOps {
    /// The stack whose outputs are at `outputs` (else `$FREIGHTBRIDGE_STACK_OUTPUTS`), reached
    /// with the usual AWS environment (profile or keys, `AWS_REGION`, `AWS_ENDPOINT_URL`).
    pub async fn from_env(outputs: Option<&Path>) -> Result<AwsOps, AwsOpsError> {
        let outputs = StackOutputs::locate(outputs)?;
        let audit_ttl =
            freightbridge::environment::audit_ttl().map_err(AwsOpsError::Environment)?;
        let config = freightbridge::aws::sdk_config().await;
        Ok(AwsOps::new(&config, outputs).with_audit_ttl(audit_ttl))
    }

    pub fn new(config: &aws_config::SdkConfig, outputs: StackOutputs) -> AwsOps {
        AwsOps::with_clients(
            outputs,
            aws_sdk_sqs::Client::new(config),
            aws_sdk_eventbridge::Client::new(config),
            aws_sdk_dynamodb::Client::new(config),
        )
    }

    /// With clients of one's own (an interceptor in a test, a custom retry policy).
    pub fn with_clients(
        outputs: StackOutputs,
        sqs: aws_sdk_sqs::Client,
        events: aws_sdk_eventbridge::Client,
        dynamodb: aws_sdk_dynamodb::Client,
    ) -> AwsOps {
        AwsOps {
            outputs,
            sqs,
            events,
            dynamodb,
            audit_ttl: chrono::Duration::days(i64::from(audit::DEFAULT_TTL_DAYS)),
            replay_poll: Duration::from_secs(5),
        }
    }

    /// How long the operator's own records are kept (the functions' `AUDIT_TTL_DAYS`).
    pub fn with_audit_ttl(mut self, ttl: chrono::Duration) -> AwsOps {
        self.audit_ttl = ttl;
        self
    }

    /// How often a running replay is asked how far it got.
    pub fn with_replay_poll(mut self, every: Duration) -> AwsOps {
        self.replay_poll = every;
        self
    }

    fn audit_log(&self) -> Result<DynamoAuditLog, AwsOpsError> {
        Ok(DynamoAuditLog::new(
            self.dynamodb.clone(),
            self.outputs.get("AuditTableName")?,
            self.audit_ttl,
        ))
    }

    /// The reconciler's operator commands over the stack's ledger table, bus and audit table.
    pub fn reconcile(
        &self,
    ) -> Result<
        super::reconcile::ReconcileOps<
            freightbridge::aws::ledger::DynamoLedger,
            freightbridge::aws::eventbridge::EventBridgeBus,
            DynamoAuditLog,
        >,
        AwsOpsError,
    > {
        let ledger = freightbridge::aws::ledger::DynamoLedger::new(
            self.dynamodb.clone(),
            self.outputs.get("LedgerTableName")?,
        );
        let bus = freightbridge::aws::eventbridge::EventBridgeBus::new(
            self.events.clone(),
            self.outputs.get("EventBusName")?,
        );
        let audit = self.audit_log()?;
        let auditor = Auditor::new(Arc::new(audit.clone()));
        Ok(super::reconcile::ReconcileOps::new(
            ledger, bus, audit, auditor,
        ))
    }

    /// The dead-letter queues `filter` names (all of them without one).
    fn queues(
        &self,
        filter: &LetterFilter,
    ) -> Result<Vec<(&'static str, &'static str, Back)>, AwsOpsError> {
        if let Some(name) = &filter.queue
            && !DEAD_LETTER_QUEUES.iter().any(|(q, _, _)| q == name)
        {
            return Err(AwsOpsError::UnknownQueue(name.clone()));
        }
        Ok(DEAD_LETTER_QUEUES
            .into_iter()
            .filter(|(q, _, _)| filter.queue.as_deref().is_none_or(|name| name == *q))
            .collect())
    }

    /// The dead letters `filter` picks, oldest first, queue by queue. SQS cannot peek: each
    /// queue is received until it gives nothing more, then every letter is made visible again.
    pub async fn letters(
        &self,
        filter: &LetterFilter,
    ) -> Result<Vec<(Letter, String)>, AwsOpsError> {
        let mut letters = Vec::new();
        for (name, url_key, _) in self.queues(filter)? {
            let url = self.outputs.get(url_key)?;
            let mut held = Vec::new();
            let scanned = self
                .scan(name, url, LIST_VISIBILITY_SECONDS, &mut held)
                .await;
            self.release(url, held.iter().map(|h| &h.message)).await;
            scanned?;
            held.sort_by_key(|h| h.letter.sent_at);
            letters.extend(
                held.into_iter()
                    .filter(|h| filter.matches(&h.letter))
                    .map(|h| (h.letter, h.body)),
            );
        }
        Ok(letters)
    }

    /// Sends the letters `filter` picks (at most `limit`, oldest first) back where they came
    /// from: a consumer's letter to its queue with the same body and attributes (the `fb-*`
    /// reason left behind), a bus letter onto the bus with PutEvents. Each letter is deleted
    /// only once its send succeeded; the letters not picked, and those whose send failed, are
    /// made visible again at once. Every letter sent back is written to the audit trail.
    pub async fn redrive(
        &self,
        filter: &LetterFilter,
        limit: Option<usize>,
        dry_run: bool,
    ) -> Result<RedriveSummary, AwsOpsError> {
        if dry_run {
            let mut letters = self.letters(filter).await?;
            if let Some(limit) = limit {
                letters.truncate(limit);
            }
            return Ok(RedriveSummary {
                matched: letters.len(),
                dry_run,
                ..RedriveSummary::default()
            });
        }
        // Every output the redrive needs, before a letter is touched.
        let queues = self.queues(filter)?;
        let mut targets = Vec::new();
        for (name, url_key, back) in queues {
            let url = self.outputs.get(url_key)?;
            let target = match back {
                Back::Queue(key) => Target::Queue(self.outputs.get(key)?),
                Back::Bus => Target::Bus(self.outputs.get("EventBusName")?),
            };
            targets.push((name, url, target));
        }
        let auditor = Auditor::new(Arc::new(self.audit_log()?));

        let mut picked: Vec<(&str, &Target<'_>, Held)> = Vec::new();
        for (name, url, target) in &targets {
            let room = limit.map_or(usize::MAX, |limit| limit.saturating_sub(picked.len()));
            if room == 0 {
                break;
            }
            let mut held = Vec::new();
            let scanned = self
                .scan(name, url, REDRIVE_VISIBILITY_SECONDS, &mut held)
                .await;
            if let Err(error) = scanned {
                self.release(url, held.iter().map(|h| &h.message)).await;
                self.release_all(&picked).await;
                return Err(error);
            }
            held.sort_by_key(|h| h.letter.sent_at);
            let (mut mine, mut rest): (Vec<Held>, Vec<Held>) =
                held.into_iter().partition(|h| filter.matches(&h.letter));
            rest.extend(mine.split_off(room.min(mine.len())));
            self.release(url, rest.iter().map(|h| &h.message)).await;
            picked.extend(mine.into_iter().map(|held| (*url, target, held)));
        }

        let mut summary = RedriveSummary {
            matched: picked.len(),
            dry_run,
            ..RedriveSummary::default()
        };
        let mut progress = Progress::new("redrive", picked.len());
        let mut records = Vec::new();
        for (done, (dlq_url, target, held)) in picked.iter().enumerate() {
            match self.send_back(target, held).await {
                Err(error) => {
                    eprintln!("letter {}: not sent back: {error}", held.letter.message_id);
                    summary.failed += 1;
                    self.release(dlq_url, std::iter::once(&held.message)).await;
                }
                Ok(()) => {
                    let deleted = self.delete(dlq_url, &held.message).await;
                    if let Err(error) = &deleted {
                        eprintln!(
                            "letter {}: sent back but still on {}: {error}",
                            held.letter.message_id, held.letter.queue
                        );
                        summary.sent_not_deleted += 1;
                        // Shown again by the next listing, so the operator sees it is there.
                        self.release(dlq_url, std::iter::once(&held.message)).await;
                    } else {
                        summary.moved += 1;
                    }
                    records.push(redrive_record(
                        &held.letter,
                        &held.body,
                        target,
                        deleted.is_ok(),
                        Utc::now(),
                    ));
                }
            }
            if records.len() >= AUDIT_BATCH {
                auditor.record(&records).await;
                records.clear();
            }
            progress.update(done + 1);
        }
        auditor.record(&records).await;
        Ok(summary)
    }

    /// Sends the archived events of `window` again with an EventBridge replay from the stack's
    /// archive to its bus, restricted to the rule routing `window.detail_type` (every rule
    /// without one), and waits until the replay has ended, showing how far it got.
    ///
    /// A replay filters by time and rule only: with a detail type, every event its rule routes
    /// in the window is sent again, not only that type's (the consumers dedupe them all). A
    /// window ending in the future ends now. `window.partner` cannot be honoured and is refused.
    pub async fn replay(
        &self,
        window: &ReplayWindow,
        dry_run: bool,
    ) -> Result<ReplaySummary, AwsOpsError> {
        if window.partner.is_some() {
            return Err(AwsOpsError::PartnerFilterUnsupported);
        }
        let to = window.to.min(Utc::now());
        if to < window.from {
            return Err(AwsOpsError::EmptyWindow {
                from: window.from,
                to: window.to,
            });
        }
        let bus_arn = self.outputs.get("EventBusArn")?;
        let archive_name = self.outputs.get("EventArchiveName")?;
        let archive = archive_arn(bus_arn, archive_name)
            .map_err(|reason| self.outputs.bad("EventBusArn", reason))?;
        let rules = self.replay_rules(window.detail_type.as_deref())?;
        let name = replay_name(Utc::now());
        let mut summary = ReplaySummary {
            dry_run,
            replay_name: Some(name.clone()),
            archive: Some(archive.clone()),
            rules: rules.clone(),
            ..ReplaySummary::default()
        };
        if dry_run {
            return Ok(summary);
        }
        let destination = ReplayDestination::builder()
            .arn(bus_arn)
            .set_filter_arns(Some(rules))
            .build()
            .map_err(|e| sdk_error("StartReplay", &e))?;
        self.events
            .start_replay()
            .replay_name(&name)
            .description(format!(
                "freightctl replay {} .. {}",
                window.from.to_rfc3339(),
                to.to_rfc3339()
            ))
            .event_source_arn(&archive)
            .event_start_time(smithy_time(window.from))
            .event_end_time(smithy_time(to))
            .destination(destination)
            .send()
            .await
            .map_err(|e| sdk_error("StartReplay", &e))?;

        let total = usize::try_from((to - window.from).num_seconds()).unwrap_or(0);
        let mut progress = Progress::new("replay", total);
        loop {
            let replay = self
                .events
                .describe_replay()
                .replay_name(&name)
                .send()
                .await
                .map_err(|e| sdk_error("DescribeReplay", &e))?;
            let state = replay.state().cloned();
            if let Some(last) = replay
                .event_last_replayed_time()
                .and_then(|t| DateTime::from_timestamp_millis(t.to_millis().ok()?))
            {
                progress.update(usize::try_from((last - window.from).num_seconds()).unwrap_or(0));
            }
            match state {
                Some(ReplayState::Completed) => {
                    progress.update(total);
                    summary.state = Some(ReplayState::Completed.as_str().to_owned());
                    return Ok(summary);
                }
                Some(ended @ (ReplayState::Failed | ReplayState::Cancelled)) => {
                    return Err(AwsOpsError::ReplayEnded {
                        name,
                        state: ended.as_str().to_owned(),
                        reason: replay
                            .state_reason()
                            .unwrap_or("no reason given")
                            .to_owned(),
                    });
                }
                _ => tokio::time::sleep(self.replay_poll).await,
            }
        }
    }

    /// Every step of the shipments `query` names (`audit::trace` over the audit table).
    pub async fn trace(&self, query: &str) -> Result<Vec<AuditRecord>, AwsOpsError> {
        let log = self.audit_log()?;
        Ok(audit::trace(&log as &dyn AuditLog, query).await?)
    }

    /// The ARNs of the rules a replay of `detail_type` goes to (all of them without one).
    fn replay_rules(&self, detail_type: Option<&str>) -> Result<Vec<String>, AwsOpsError> {
        let mut arns = Vec::new();
        for (key, types) in rules() {
            if detail_type.is_none_or(|t| types.contains(&t)) {
                arns.push(self.outputs.get(key)?.to_owned());
            }
        }
        if arns.is_empty() {
            let known: Vec<&str> = rules().iter().flat_map(|(_, t)| t.clone()).collect();
            return Err(AwsOpsError::UnknownDetailType(
                detail_type.unwrap_or_default().to_owned(),
                known.join(", "),
            ));
        }
        Ok(arns)
    }

    /// Receives every message of the queue at `url` into `held`, hidden for `visibility`
    /// seconds. Stops when the queue gives nothing more, or only letters already held (their
    /// hold ran out on a very large queue). On an error, `held` has what was received so far.
    async fn scan(
        &self,
        queue: &str,
        url: &str,
        visibility: i32,
        held: &mut Vec<Held>,
    ) -> Result<(), AwsOpsError> {
        let mut index: HashMap<String, usize> = HashMap::new();
        let mut stale = 0;
        loop {
            let messages = self
                .sqs
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                // Long polling asks every SQS server; a short poll may miss letters.
                .wait_time_seconds(1)
                .visibility_timeout(visibility)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(|e| sdk_error("ReceiveMessage", &e))?
                .messages
                .unwrap_or_default();
            if messages.is_empty() {
                return Ok(());
            }
            let mut new = 0;
            for message in messages {
                let id = message.message_id().unwrap_or_default().to_owned();
                match index.get(&id) {
                    // Received again: only its newest receipt handle works.
                    Some(&at) => held[at].message = message,
                    None => {
                        index.insert(id, held.len());
                        held.push(Held::new(queue, message));
                        new += 1;
                    }
                }
            }
            stale = if new == 0 { stale + 1 } else { 0 };
            if stale >= STALE_RECEIVES {
                return Ok(());
            }
        }
    }

    /// Makes `messages` visible again at once. A failure only delays them until their hold
    /// runs out, so it is reported, not returned.
    async fn release<'m>(&self, url: &str, messages: impl Iterator<Item = &'m Message>) {
        let handles: Vec<&str> = messages.filter_map(|m| m.receipt_handle()).collect();
        for chunk in handles.chunks(10) {
            let mut entries = Vec::new();
            for (i, handle) in chunk.iter().enumerate() {
                match ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*handle)
                    .visibility_timeout(0)
                    .build()
                {
                    Ok(entry) => entries.push(entry),
                    Err(error) => eprintln!("cannot release a letter: {error}"),
                }
            }
            match self
                .sqs
                .change_message_visibility_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(output) => {
                    for failed in output.failed() {
                        eprintln!(
                            "a letter stays hidden until its hold runs out: {} {}",
                            failed.code(),
                            failed.message().unwrap_or_default()
                        );
                    }
                }
                Err(error) => eprintln!(
                    "{} letter(s) stay hidden until their hold runs out: {}",
                    chunk.len(),
                    render_error(&error)
                ),
            }
        }
    }

    async fn release_all(&self, picked: &[(&str, &Target<'_>, Held)]) {
        for (url, _, held) in picked {
            self.release(url, std::iter::once(&held.message)).await;
        }
    }

    async fn delete(&self, url: &str, message: &Message) -> Result<(), AwsOpsError> {
        self.sqs
            .delete_message()
            .queue_url(url)
            .receipt_handle(message.receipt_handle().unwrap_or_default())
            .send()
            .await
            .map_err(|e| sdk_error("DeleteMessage", &e))?;
        Ok(())
    }

    async fn send_back(&self, target: &Target<'_>, held: &Held) -> Result<(), AwsOpsError> {
        match target {
            Target::Queue(url) => {
                self.sqs
                    .send_message()
                    .queue_url(*url)
                    .message_body(&held.body)
                    .set_message_attributes(kept_attributes(&held.message))
                    .send()
                    .await
                    .map_err(|e| sdk_error("SendMessage", &e))?;
                Ok(())
            }
            Target::Bus(bus) => {
                let entry = bus_entry(bus, &held.body)?;
                let output = self
                    .events
                    .put_events()
                    .entries(entry)
                    .send()
                    .await
                    .map_err(|e| sdk_error("PutEvents", &e))?;
                if output.failed_entry_count() > 0 {
                    let (code, message) = output
                        .entries()
                        .first()
                        .map(|e| {
                            (
                                e.error_code().unwrap_or("unknown"),
                                e.error_message().unwrap_or_default(),
                            )
                        })
                        .unwrap_or(("unknown", ""));
                    return Err(AwsOpsError::Aws {
                        operation: "PutEvents",
                        detail: format!("the bus refused the event: {code} {message}"),
                    });
                }
                Ok(())
            }
        }
    }
}

/// Where a letter goes back to, resolved from the outputs.
#[derive(Debug)]
enum Target<'a> {
    /// A queue URL.
    Queue(&'a str),
    /// A bus name.
    Bus(&'a str),
}

/// A received letter: the message (its newest receipt handle) and how it reads.
struct Held {
    message: Message,
    letter: Letter,
    body: String,
}

impl Held {
    fn new(queue: &str, message: Message) -> Held {
        let body = message.body().unwrap_or_default().to_owned();
        Held {
            letter: letter(queue, &message),
            message,
            body,
        }
    }
}

/// A received dead letter as the listing shows it: our consumers' `fb-*` attributes, else
/// EventBridge's (a rule's target failure on the bus DLQ), and SQS's `SentTimestamp`.
fn letter(queue: &str, message: &Message) -> Letter {
    let attribute = |name: &str| {
        message
            .message_attributes()
            .and_then(|a| a.get(name))
            .and_then(|v| v.string_value())
            .map(str::to_owned)
    };
    let sent_at = message
        .attributes()
        .and_then(|a| a.get(&MessageSystemAttributeName::SentTimestamp))
        .and_then(|ms| ms.parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_millis);
    Letter {
        queue: queue.to_owned(),
        message_id: message.message_id().unwrap_or_default().to_owned(),
        sent_at,
        receive_count: attribute(attr::RECEIVE_COUNT).and_then(|n| n.parse().ok()),
        error_class: attribute(attr::ERROR_CLASS),
        error_code: attribute(attr::ERROR_CODE).or_else(|| attribute(eventbridge::ERROR_CODE)),
        error_message: attribute(attr::ERROR_MESSAGE)
            .or_else(|| attribute(eventbridge::ERROR_MESSAGE)),
        odoo_error: attribute(attr::ODOO_ERROR),
        consumer: attribute(attr::CONSUMER).or_else(|| attribute(eventbridge::RULE_ARN)),
        partner: None,
        shipment: None,
        event_id: None,
        delivery_id: None,
    }
    .with_subjects_of(message.body().unwrap_or_default())
}

/// The message attributes EventBridge sets on an event a rule's target could not take.
mod eventbridge {
    pub const RULE_ARN: &str = "RULE_ARN";
    pub const ERROR_CODE: &str = "ERROR_CODE";
    pub const ERROR_MESSAGE: &str = "ERROR_MESSAGE";
}

/// The attributes a redriven letter keeps: all but the reason (`fb-*`) its consumer added.
fn kept_attributes(message: &Message) -> Option<HashMap<String, MessageAttributeValue>> {
    let kept: HashMap<String, MessageAttributeValue> = message
        .message_attributes()?
        .iter()
        .filter(|(name, _)| !name.starts_with("fb-"))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    (!kept.is_empty()).then_some(kept)
}

/// The PutEvents entry that puts a bus letter (the event as its rule's target would have
/// received it) back on `bus`: the same source, detail type, time, resources and detail, byte
/// for byte. EventBridge gives it a new envelope id; the consumers key on the detail.
fn bus_entry(bus: &str, body: &str) -> Result<PutEventsRequestEntry, AwsOpsError> {
    let envelope: Envelope<Box<RawValue>> =
        serde_json::from_str(body).map_err(|e| AwsOpsError::Aws {
            operation: "PutEvents",
            detail: format!("the letter is not an EventBridge event: {e}"),
        })?;
    Ok(PutEventsRequestEntry::builder()
        .event_bus_name(bus)
        .source(envelope.source)
        .detail_type(envelope.detail_type)
        .time(smithy_time(envelope.time))
        .set_resources((!envelope.resources.is_empty()).then_some(envelope.resources))
        .detail(envelope.detail.get())
        .build())
}

/// The trail's record of one letter sent back.
fn redrive_record(
    letter: &Letter,
    body: &str,
    target: &Target<'_>,
    deleted: bool,
    now: DateTime<Utc>,
) -> AuditRecord {
    let (partner, subjects) = audit::letter_subjects(body);
    let whither = match target {
        Target::Queue(_) => "back to its queue",
        Target::Bus(_) => "back onto the bus",
    };
    let mut message = format!("from {} {whither}", letter.queue);
    if !deleted {
        message.push_str("; still on the DLQ too (its delete failed)");
    }
    AuditRecord::new(
        Stage::Operator,
        Actor {
            function: "freightctl dlq redrive".into(),
            partner,
            odoo_user: None,
        },
        "redriven",
        now,
        Outcome::Done,
    )
    .subjects(subjects)
    .input_hash(freightbridge::idempotency::sha256_tag(body.as_bytes()))
    .reason(Reason::new(
        letter.error_code.as_deref().unwrap_or("redriven"),
        &message,
    ))
}

/// The archive's ARN: the bus's, with `event-bus/<bus>` made `archive/<name>` (same partition,
/// region and account).
fn archive_arn(bus_arn: &str, archive_name: &str) -> Result<String, String> {
    let (prefix, resource) = bus_arn
        .rsplit_once(':')
        .ok_or_else(|| format!("{bus_arn:?} is not an ARN"))?;
    if !prefix.starts_with("arn:") || !prefix.contains(":events:") {
        return Err(format!("{bus_arn:?} is not an EventBridge ARN"));
    }
    if !resource.starts_with("event-bus/") {
        return Err(format!("{bus_arn:?} is not an event bus ARN"));
    }
    Ok(format!("{prefix}:archive/{archive_name}"))
}

/// A replay name no other replay has (EventBridge keeps them): the time it was started and a
/// random suffix, 35 characters of `[A-Za-z0-9-]`.
fn replay_name(now: DateTime<Utc>) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "freightctl-{}-{}",
        now.format("%Y%m%dT%H%M%S"),
        &suffix[..8]
    )
}

fn smithy_time(at: DateTime<Utc>) -> aws_smithy_types::DateTime {
    aws_smithy_types::DateTime::from_millis(at.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outputs(rows: &[(&str, &str)]) -> StackOutputs {
        let json: Vec<serde_json::Value> = rows
            .iter()
            .map(|(k, v)| serde_json::json!({"OutputKey": k, "OutputValue": v, "Description": "d"}))
            .collect();
        StackOutputs::parse(
            &serde_json::Value::Array(json).to_string(),
            Path::new("outputs.json"),
        )
        .expect("parses")
    }

    /// Operations whose clients are never called.
    fn offline(outputs: StackOutputs) -> AwsOps {
        let config = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        AwsOps::new(&config, outputs)
    }

    #[test]
    fn outputs_are_read_from_sam_json_and_a_missing_key_names_key_and_file() {
        let o = outputs(&[("OdooDlqUrl", "https://sqs/odoo-dlq")]);
        assert_eq!(
            o.get("OdooDlqUrl").expect("present"),
            "https://sqs/odoo-dlq"
        );
        let error = o.get("AuditTableName").expect_err("absent").to_string();
        assert!(
            error.contains("AuditTableName") && error.contains("outputs.json"),
            "{error}"
        );
        // Without Description, as sam prints outputs that have none.
        let bare = StackOutputs::parse(
            r#"[{"OutputKey":"BusDlqUrl","OutputValue":"u"}]"#,
            Path::new("o.json"),
        )
        .expect("parses");
        assert_eq!(bare.get("BusDlqUrl").expect("present"), "u");
        let error = StackOutputs::parse(r#"{"OutputKey":"x"}"#, Path::new("o.json"))
            .expect_err("not an array")
            .to_string();
        assert!(error.contains("sam list stack-outputs"), "{error}");
    }

    #[test]
    fn the_archive_arn_is_built_beside_the_bus_arn() {
        assert_eq!(
            archive_arn(
                "arn:aws:events:eu-west-1:123456789012:event-bus/freightbridge-dev",
                "EventArchive-abc"
            ),
            Ok("arn:aws:events:eu-west-1:123456789012:archive/EventArchive-abc".into())
        );
        assert_eq!(
            archive_arn("arn:aws-cn:events:cn-north-1:1:event-bus/b", "a"),
            Ok("arn:aws-cn:events:cn-north-1:1:archive/a".into())
        );
        for bad in [
            "freightbridge-dev",
            "arn:aws:sqs:us-east-1:1:queue",
            "arn:aws:events:us-east-1:1:rule/x",
        ] {
            assert!(archive_arn(bad, "a").is_err(), "{bad}");
        }
    }

    #[test]
    fn a_detail_type_picks_the_rule_that_routes_it() {
        let o = outputs(&[
            ("IngressToTransformRuleArn", "arn:rule/ingress"),
            ("CanonicalToOdooRuleArn", "arn:rule/canonical"),
        ]);
        let ops = offline(o);
        let cases: [(Option<&str>, &[&str]); 4] = [
            (None, &["arn:rule/ingress", "arn:rule/canonical"]),
            (Some("partner.webhook.received"), &["arn:rule/ingress"]),
            (Some("shipment.delivered"), &["arn:rule/canonical"]),
            (Some("freight_invoice.disputed"), &["arn:rule/canonical"]),
        ];
        for (detail_type, expected) in cases {
            assert_eq!(
                ops.replay_rules(detail_type).expect("routed"),
                expected.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "{detail_type:?}"
            );
        }
        let error = ops
            .replay_rules(Some("shipment.teleported"))
            .expect_err("no rule")
            .to_string();
        assert!(
            error.contains("shipment.teleported") && error.contains("shipment.delivered"),
            "{error}"
        );
    }

    fn message(attributes: &[(&str, &str)], body: &str) -> Message {
        let mut builder = Message::builder()
            .message_id("m-1")
            .receipt_handle("rh")
            .body(body)
            .attributes(MessageSystemAttributeName::SentTimestamp, "1796378400000");
        for (name, value) in attributes {
            builder = builder.message_attributes(
                *name,
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(*value)
                    .build()
                    .expect("attribute"),
            );
        }
        builder.build()
    }

    #[test]
    fn a_letter_reads_our_reason_or_eventbridges_and_its_sent_time() {
        let ours = letter(
            "odoo-dlq",
            &message(
                &[
                    (attr::ERROR_CODE, "odoo_picking_not_found"),
                    (attr::ERROR_MESSAGE, "no picking with tracking 1Z"),
                    (attr::CONSUMER, "odoo-poster"),
                    (attr::RECEIVE_COUNT, "3"),
                    (eventbridge::ERROR_CODE, "ignored"),
                ],
                "{}",
            ),
        );
        assert_eq!(ours.error_code.as_deref(), Some("odoo_picking_not_found"));
        assert_eq!(ours.consumer.as_deref(), Some("odoo-poster"));
        assert_eq!(ours.receive_count, Some(3));
        assert_eq!(
            ours.sent_at,
            DateTime::from_timestamp_millis(1_796_378_400_000)
        );
        let bus = letter(
            "bus-dlq",
            &message(
                &[
                    (eventbridge::ERROR_CODE, "SQS.AWS.SdkClientException"),
                    (eventbridge::ERROR_MESSAGE, "throttled"),
                    (eventbridge::RULE_ARN, "arn:aws:events:r:1:rule/b/canonical"),
                ],
                "{}",
            ),
        );
        assert_eq!(
            bus.error_code.as_deref(),
            Some("SQS.AWS.SdkClientException")
        );
        assert_eq!(bus.error_message.as_deref(), Some("throttled"));
        assert_eq!(
            bus.consumer.as_deref(),
            Some("arn:aws:events:r:1:rule/b/canonical")
        );
    }

    #[test]
    fn a_redriven_letter_keeps_its_attributes_but_not_its_reason() {
        let m = message(&[(attr::ERROR_CODE, "bad_row"), ("trace-id", "t-1")], "{}");
        let kept = kept_attributes(&m).expect("one kept");
        assert_eq!(kept.len(), 1);
        assert_eq!(kept["trace-id"].string_value(), Some("t-1"));
        assert!(kept_attributes(&message(&[(attr::ERROR_CODE, "x")], "{}")).is_none());
    }

    #[test]
    fn a_bus_letter_goes_back_as_the_same_event_detail_byte_for_byte() {
        let body = r#"{"version":"0","id":"e-1","detail-type":"shipment.delivered",
            "source":"freightbridge.canonical","time":"2026-12-04T10:00:00Z",
            "region":"us-east-1","resources":["r1"],"detail":{"b":1.50,"a":"x"}}"#;
        let entry = bus_entry("freightbridge-dev", body).expect("an event");
        assert_eq!(entry.event_bus_name(), Some("freightbridge-dev"));
        assert_eq!(entry.source(), Some("freightbridge.canonical"));
        assert_eq!(entry.detail_type(), Some("shipment.delivered"));
        assert_eq!(entry.detail(), Some(r#"{"b":1.50,"a":"x"}"#));
        assert_eq!(entry.resources(), ["r1".to_owned()]);
        assert_eq!(
            entry.time().map(|t| t.secs()),
            Some(
                DateTime::parse_from_rfc3339("2026-12-04T10:00:00Z")
                    .expect("time")
                    .timestamp()
            )
        );
        assert!(bus_entry("b", "not json").is_err());
    }

    #[test]
    fn replay_names_are_valid_and_distinct() {
        let now = Utc::now();
        let (a, b) = (replay_name(now), replay_name(now));
        assert_ne!(a, b);
        assert!(a.len() <= 64, "{a}");
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_'),
            "{a}"
        );
    }

    #[test]
    fn an_unknown_queue_is_refused_with_the_known_ones() {
        let ops = offline(outputs(&[]));
        let filter = LetterFilter {
            queue: Some("odoo-queue".into()),
            ..LetterFilter::default()
        };
        let error = ops.queues(&filter).expect_err("unknown").to_string();
        assert!(
            error.contains("odoo-queue") && error.contains("bus-dlq"),
            "{error}"
        );
        assert_eq!(ops.queues(&LetterFilter::default()).expect("all").len(), 4);
    }
}
