//! SQS batch processing with partial batch responses: records run concurrently, each failure is
//! reported alone in `batchItemFailures`, a panic fails only its own record, and a permanent
//! failure goes straight to the dead-letter queue with its reason attached.

use std::future::Future;
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;
use chrono::{DateTime, Utc};

use crate::failure::FailureReason;
use crate::retry::{RetryDecision, RetryPolicy};

/// One message sent to a dead-letter queue by the consumer itself, so the reason travels with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The original message body, unchanged, so it can be redriven as it was.
    pub body: String,
    /// The original SQS message id.
    pub message_id: String,
    pub reason: FailureReason,
    /// Which consumer gave up on it (`canonical-transform`, `odoo-poster`, …).
    pub consumer: String,
    /// How many times the message had been received.
    pub receive_count: u32,
}

/// Where permanently failed records go (an SQS DLQ in AWS, a local queue in the chain).
pub trait DeadLetterSink: Send + Sync {
    fn send(&self, letter: DeadLetter) -> impl Future<Output = Result<(), String>> + Send;
}

/// Where a record that will be retried gets its backoff: SQS `ChangeMessageVisibility` in AWS,
/// the embedded queue locally. A failed change leaves the queue's own visibility timeout.
pub trait Visibility: Send + Sync {
    fn delay(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

impl<T: Visibility> Visibility for std::sync::Arc<T> {
    fn delay(
        &self,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> impl Future<Output = Result<(), String>> + Send {
        (**self).delay(receipt_handle, delay)
    }
}

/// What a record handler sees of one SQS message.
#[derive(Debug, Clone)]
pub struct RecordContext {
    pub message_id: String,
    pub body: String,
    /// `ApproximateReceiveCount`: 1 on the first delivery. Handlers use `> 1` to know a
    /// delivery may be a retry of one whose effect was applied but not recorded.
    pub receive_count: u32,
}

impl RecordContext {
    pub fn is_redelivery(&self) -> bool {
        self.receive_count > 1
    }
}

/// How a consumer runs its batches.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Consumer name written on dead letters: the stage that gave up.
    pub consumer: String,
    /// Records processed at the same time.
    pub concurrency: usize,
    /// The queue's `maxReceiveCount`, a backstop above what the retry budget can use: on that
    /// receive a still-failing record is dead-lettered by us, with its reason, instead of
    /// silently by the redrive policy.
    pub max_receive_count: u32,
    /// Backoff between receives and the retry budget (time since the record was queued).
    pub retry: RetryPolicy,
    /// Records whose bodies answer the same key run one after another, in batch order; other
    /// records (and those without a key) still run `concurrency` at a time. The poster and the
    /// reconciler key by shipment, so a webhook's scans in one batch neither race for the same
    /// ledger entry nor reach Odoo out of order.
    pub group_by: Option<GroupKey>,
}

/// The key a record's body is grouped under ([`BatchConfig::group_by`]).
pub type GroupKey = fn(&str) -> Option<String>;

impl BatchConfig {
    /// The same configuration, its records grouped by `key`.
    pub fn grouped_by(self, key: GroupKey) -> Self {
        Self {
            group_by: Some(key),
            ..self
        }
    }

    /// The batch's records in groups run one after another (`group_by`), each group in batch
    /// order and the groups in the order of their first record.
    fn groups(&self, records: Vec<SqsMessage>) -> Vec<Vec<(usize, SqsMessage)>> {
        let mut groups: Vec<Vec<_>> = Vec::with_capacity(records.len());
        let mut by_key = std::collections::HashMap::new();
        for (index, record) in records.into_iter().enumerate() {
            let key = self
                .group_by
                .and_then(|key| record.body.as_deref().and_then(key));
            let next = groups.len();
            let at = key.map_or(next, |key| *by_key.entry(key).or_insert(next));
            if at == next {
                groups.push(Vec::new());
            }
            groups[at].push((index, record));
        }
        groups
    }
}

/// The outcome of one record, for logs and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    Done,
    /// Reported in `batchItemFailures`: delivered again once `delay` has passed (or the
    /// queue's visibility timeout, when the delay could not be set).
    Retry {
        reason: FailureReason,
        delay: Duration,
    },
    /// Sent to the dead-letter queue with its reason.
    DeadLettered(FailureReason),
}

/// The batch response plus what happened to each record (in input order).
#[derive(Debug, Default)]
pub struct BatchReport {
    pub response: aws_lambda_events::event::sqs::SqsBatchResponse,
    pub outcomes: Vec<(String, RecordOutcome)>,
}

/// Where a batch's records go when they are not done: the dead-letter queue, or back on their
/// queue after a backoff.
pub struct Settlement<'a, D, V> {
    pub config: &'a BatchConfig,
    pub dead_letters: &'a D,
    pub visibility: &'a V,
}

/// Run `handler` over every record of a batch, at most `config.concurrency` at a time.
///
/// Never fails as a whole: each record ends done, retried (listed in `batchItemFailures`, its
/// visibility extended by the backoff) or dead-lettered. A panicking handler fails only its
/// own record (retried, then dead-lettered with the panic message once the budget is spent).
pub async fn process_batch<F, Fut, D, V>(
    records: Vec<aws_lambda_events::event::sqs::SqsMessage>,
    settlement: &Settlement<'_, D, V>,
    handler: F,
) -> BatchReport
where
    F: Fn(RecordContext) -> Fut,
    Fut: Future<Output = Result<(), FailureReason>>,
    D: DeadLetterSink,
    V: Visibility,
{
    use futures::FutureExt as _;
    use futures::StreamExt as _;
    use std::panic::AssertUnwindSafe;

    let handler = &handler;
    let run_one = |index: usize, record: SqsMessage| async move {
        let message_id = record
            .message_id
            .clone()
            .unwrap_or_else(|| format!("record-{index}"));
        let receive_count = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let result = match record.body.clone() {
            None => Err(FailureReason::permanent(
                "empty_message",
                "SQS record has no body",
            )),
            Some(body) => {
                let ctx = RecordContext {
                    message_id: message_id.clone(),
                    body,
                    receive_count,
                };
                AssertUnwindSafe(handler(ctx))
                    .catch_unwind()
                    .await
                    .unwrap_or_else(|panic| {
                        Err(FailureReason::retryable(
                            "handler_panic",
                            panic_message(panic.as_ref()),
                        ))
                    })
            }
        };
        let outcome = settlement
            .settle(result, &record, &message_id, receive_count)
            .await;
        (index, message_id, outcome)
    };
    let groups = settlement.config.groups(records);
    let outcomes: Vec<(usize, String, RecordOutcome)> = futures::stream::iter(groups)
        .map(|group| async move {
            let mut outcomes = Vec::with_capacity(group.len());
            for (index, record) in group {
                outcomes.push(run_one(index, record).await);
            }
            futures::stream::iter(outcomes)
        })
        .buffer_unordered(settlement.config.concurrency.max(1))
        .flatten()
        .collect()
        .await;

    let mut outcomes = outcomes;
    outcomes.sort_by_key(|(index, _, _)| *index);
    let mut report = BatchReport::default();
    for (_, message_id, outcome) in outcomes {
        if matches!(outcome, RecordOutcome::Retry { .. }) {
            let mut failure = aws_lambda_events::event::sqs::BatchItemFailure::default();
            failure.item_identifier = message_id.clone();
            report.response.batch_item_failures.push(failure);
        }
        report.outcomes.push((message_id, outcome));
    }
    report
}

/// When the record was put on its queue (`SentTimestamp`, Unix milliseconds); a record
/// without one is taken as queued now, which only lengthens its budget.
fn queued_at(
    record: &aws_lambda_events::event::sqs::SqsMessage,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    record
        .attributes
        .get("SentTimestamp")
        .and_then(|ms| ms.parse::<i64>().ok())
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or(now)
}

impl<D: DeadLetterSink, V: Visibility> Settlement<'_, D, V> {
    async fn settle(
        &self,
        result: Result<(), FailureReason>,
        record: &aws_lambda_events::event::sqs::SqsMessage,
        message_id: &str,
        receive_count: u32,
    ) -> RecordOutcome {
        let reason = match result {
            Ok(()) => return RecordOutcome::Done,
            Err(reason) => reason,
        };
        if reason.class == crate::failure::FailureClass::Retryable {
            let now = Utc::now();
            let queued = queued_at(record, now);
            let decision = self.config.retry.decide(
                queued,
                receive_count,
                now,
                reason.not_before,
                crate::retry::jitter(),
            );
            let backstop = receive_count >= self.config.max_receive_count;
            if let (RetryDecision::After(delay), false) = (decision, backstop) {
                return self
                    .retry_later(reason, record, message_id, receive_count, delay)
                    .await;
            }
            tracing::warn!(
                message_id,
                code = %reason.code,
                receive_count,
                queued_at = %queued.to_rfc3339(),
                "retry budget spent"
            );
        }
        self.dead_letter(reason, record, message_id, receive_count)
            .await
    }

    async fn retry_later(
        &self,
        reason: FailureReason,
        record: &aws_lambda_events::event::sqs::SqsMessage,
        message_id: &str,
        receive_count: u32,
        delay: Duration,
    ) -> RecordOutcome {
        tracing::warn!(
            message_id,
            code = %reason.code,
            error = %reason.message,
            receive_count,
            retry_in_ms = delay.as_millis() as u64,
            "record failed, will be retried"
        );
        crate::metrics::count(crate::metrics::name::RETRIES, &[("Reason", &reason.code)]);
        match record.receipt_handle.as_deref() {
            Some(handle) => {
                if let Err(error) = self.visibility.delay(handle, delay).await {
                    // It still comes back, at the queue's own visibility timeout.
                    tracing::warn!(message_id, %error, "could not set the retry delay");
                }
            }
            None => tracing::warn!(message_id, "record has no receipt handle; no retry delay"),
        }
        RecordOutcome::Retry { reason, delay }
    }

    async fn dead_letter(
        &self,
        reason: FailureReason,
        record: &aws_lambda_events::event::sqs::SqsMessage,
        message_id: &str,
        receive_count: u32,
    ) -> RecordOutcome {
        let letter = DeadLetter {
            body: record.body.clone().unwrap_or_default(),
            message_id: message_id.to_owned(),
            reason: reason.clone(),
            consumer: self.config.consumer.clone(),
            receive_count,
        };
        match self.dead_letters.send(letter).await {
            Ok(()) => {
                tracing::error!(message_id, code = %reason.code, error = %reason.message, receive_count, "record dead-lettered");
                crate::metrics::count(
                    crate::metrics::name::DEAD_LETTERED,
                    &[("Reason", &reason.code)],
                );
                RecordOutcome::DeadLettered(reason)
            }
            Err(send_error) => {
                // Could not dead-letter: keep the record on the queue rather than lose it.
                tracing::error!(message_id, code = %reason.code, %send_error, "dead-letter send failed, record kept for retry");
                let delay = self.config.retry.base_delay;
                if let Some(handle) = record.receipt_handle.as_deref()
                    && let Err(error) = self.visibility.delay(handle, delay).await
                {
                    tracing::warn!(message_id, %error, "could not set the retry delay");
                }
                RecordOutcome::Retry { reason, delay }
            }
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "handler panicked".to_owned()
    }
}

/// Dead letters kept in memory: for the local chain and tests.
#[derive(Debug, Default)]
pub struct MemoryDeadLetters {
    letters: std::sync::Mutex<Vec<DeadLetter>>,
    refuse: std::sync::atomic::AtomicBool,
}

impl MemoryDeadLetters {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn letters(&self) -> Vec<DeadLetter> {
        self.letters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Make sends fail, as an unreachable DLQ would.
    pub fn set_refusing(&self, refuse: bool) {
        self.refuse
            .store(refuse, std::sync::atomic::Ordering::SeqCst);
    }
}

impl DeadLetterSink for MemoryDeadLetters {
    async fn send(&self, letter: DeadLetter) -> Result<(), String> {
        if self.refuse.load(std::sync::atomic::Ordering::SeqCst) {
            return Err("dead-letter queue unavailable".into());
        }
        self.letters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(letter);
        Ok(())
    }
}

/// Retry delays kept in memory: what a consumer asked of its queue, for tests.
#[derive(Debug, Default)]
pub struct MemoryVisibility {
    delays: std::sync::Mutex<Vec<(String, Duration)>>,
}

impl MemoryVisibility {
    pub fn new() -> Self {
        Self::default()
    }

    /// `(receipt handle, delay)` in the order they were asked for.
    pub fn delays(&self) -> Vec<(String, Duration)> {
        self.delays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl Visibility for MemoryVisibility {
    async fn delay(&self, receipt_handle: &str, delay: Duration) -> Result<(), String> {
        self.delays
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((receipt_handle.to_owned(), delay));
        Ok(())
    }
}

impl<T: DeadLetterSink> DeadLetterSink for std::sync::Arc<T> {
    fn send(&self, letter: DeadLetter) -> impl Future<Output = Result<(), String>> + Send {
        (**self).send(letter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessage;

    fn record_sent(id: &str, body: &str, receive_count: u32, sent: DateTime<Utc>) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.receipt_handle = Some(format!("rh-{id}"));
        m.body = Some(body.into());
        m.attributes
            .insert("ApproximateReceiveCount".into(), receive_count.to_string());
        m.attributes
            .insert("SentTimestamp".into(), sent.timestamp_millis().to_string());
        m
    }

    fn record(id: &str, body: &str, receive_count: u32) -> SqsMessage {
        record_sent(id, body, receive_count, Utc::now())
    }

    fn config() -> BatchConfig {
        BatchConfig {
            consumer: "test".into(),
            concurrency: 4,
            max_receive_count: 50,
            retry: RetryPolicy::default(),
            group_by: None,
        }
    }

    async fn handle(ctx: RecordContext) -> Result<(), FailureReason> {
        match ctx.body.as_str() {
            "ok" => Ok(()),
            "retry" => Err(FailureReason::retryable("busy", "try later")),
            "bad" => Err(FailureReason::permanent("malformed_payload", "not JSON")),
            "panic" => panic!("boom in record"),
            other => Err(FailureReason::permanent("unexpected", other)),
        }
    }

    async fn run(
        records: Vec<SqsMessage>,
        config: &BatchConfig,
        dlq: &MemoryDeadLetters,
        visibility: &MemoryVisibility,
    ) -> BatchReport {
        let settlement = Settlement {
            config,
            dead_letters: dlq,
            visibility,
        };
        process_batch(records, &settlement, handle).await
    }

    #[tokio::test]
    async fn each_failed_record_is_reported_alone_and_a_panic_fails_only_its_record() {
        let dlq = MemoryDeadLetters::new();
        let visibility = MemoryVisibility::new();
        let records = vec![
            record("m1", "ok", 1),
            record("m2", "retry", 1),
            record("m3", "panic", 1),
            record("m4", "ok", 1),
        ];
        let report = run(records, &config(), &dlq, &visibility).await;
        let failed: Vec<_> = report
            .response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, vec!["m2", "m3"]);
        assert_eq!(report.outcomes[0].1, RecordOutcome::Done);
        assert!(
            matches!(&report.outcomes[2].1, RecordOutcome::Retry { reason, .. } if reason.code == "handler_panic" && reason.message.contains("boom"))
        );
        assert!(dlq.letters().is_empty());
    }

    #[tokio::test]
    async fn records_of_one_group_run_one_after_another_in_batch_order() {
        use std::sync::Mutex;
        // Body "<group>:<n>"; the group is what comes before the colon.
        let config = config().grouped_by(|body| body.split_once(':').map(|(g, _)| g.to_owned()));
        let records: Vec<_> = ["a:1", "b:1", "a:2", "c:1", "a:3", "b:2"]
            .iter()
            .map(|body| record(body, body, 1))
            .collect();
        let running: Mutex<Vec<String>> = Mutex::new(Vec::new());
        let (overlaps, order) = (Mutex::new(Vec::new()), Mutex::new(Vec::new()));
        let settlement = Settlement {
            config: &config,
            dead_letters: &MemoryDeadLetters::new(),
            visibility: &MemoryVisibility::new(),
        };
        let report = process_batch(records, &settlement, |ctx: RecordContext| {
            let (running, overlaps, order) = (&running, &overlaps, &order);
            async move {
                let group = ctx.body[..1].to_owned();
                {
                    let mut now = running.lock().unwrap();
                    if now.contains(&group) {
                        overlaps.lock().unwrap().push(ctx.body.clone());
                    }
                    now.push(group.clone());
                }
                tokio::task::yield_now().await;
                tokio::time::sleep(Duration::from_millis(2)).await;
                order.lock().unwrap().push(ctx.body.clone());
                let mut now = running.lock().unwrap();
                let at = now.iter().position(|g| *g == group).unwrap();
                now.remove(at);
                Ok(())
            }
        })
        .await;
        assert!(overlaps.lock().unwrap().is_empty(), "{overlaps:?}");
        let order = order.into_inner().unwrap();
        let of = |g: &str| -> Vec<&str> {
            order
                .iter()
                .filter(|b| b.starts_with(g))
                .map(String::as_str)
                .collect()
        };
        assert_eq!(of("a"), ["a:1", "a:2", "a:3"]);
        assert_eq!(of("b"), ["b:1", "b:2"]);
        // Groups still run side by side, and the report keeps the batch's order.
        let ids: Vec<_> = report.outcomes.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ids, ["a:1", "b:1", "a:2", "c:1", "a:3", "b:2"]);
    }

    #[tokio::test]
    async fn without_a_group_key_records_run_side_by_side() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let (running, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let records: Vec<_> = (0..4).map(|n| record(&format!("m{n}"), "a:1", 1)).collect();
        let settlement = Settlement {
            config: &config(),
            dead_letters: &MemoryDeadLetters::new(),
            visibility: &MemoryVisibility::new(),
        };
        process_batch(records, &settlement, |_ctx: RecordContext| {
            let (running, most) = (&running, &most);
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        })
        .await;
        assert!(most.load(Ordering::SeqCst) > 1);
    }

    #[tokio::test]
    async fn a_retried_record_gets_a_backoff_that_grows_with_its_receives() {
        let dlq = MemoryDeadLetters::new();
        let visibility = MemoryVisibility::new();
        let records = vec![record("m1", "retry", 1), record("m2", "retry", 6)];
        run(records, &config(), &dlq, &visibility).await;
        let mut delays = visibility.delays();
        delays.sort();
        assert_eq!(delays.len(), 2);
        assert_eq!(delays[0].0, "rh-m1");
        // Receive 1: 2 s less up to half of jitter; receive 6: 64 s less up to half.
        assert!((1..=2).contains(&delays[0].1.as_secs()), "{delays:?}");
        assert!((32..=64).contains(&delays[1].1.as_secs()), "{delays:?}");
        assert!(dlq.letters().is_empty());
    }

    #[tokio::test]
    async fn dead_letters_and_retries_are_counted_by_reason() {
        let counted = |metric: &str, reason: &str| {
            crate::metrics::capture("test")
                .iter()
                .filter(|doc| doc.get(metric).is_some() && doc["Reason"] == reason)
                .count()
        };
        let (letters, retries) = (
            counted("DeadLettered", "malformed_payload"),
            counted("Retries", "busy"),
        );
        let dlq = MemoryDeadLetters::new();
        let visibility = MemoryVisibility::new();
        run(
            vec![record("m1", "bad", 1), record("m2", "retry", 1)],
            &config(),
            &dlq,
            &visibility,
        )
        .await;
        // Other tests of this process count too: at least this batch's one of each.
        assert!(counted("DeadLettered", "malformed_payload") > letters);
        assert!(counted("Retries", "busy") > retries);
    }

    #[tokio::test]
    async fn permanent_failure_is_dead_lettered_with_its_reason_and_not_retried() {
        let dlq = MemoryDeadLetters::new();
        let visibility = MemoryVisibility::new();
        let report = run(vec![record("m1", "bad", 1)], &config(), &dlq, &visibility).await;
        assert!(report.response.batch_item_failures.is_empty());
        let letters = dlq.letters();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].body, "bad");
        assert_eq!(letters[0].reason.code, "malformed_payload");
        assert_eq!(letters[0].consumer, "test");
        assert!(visibility.delays().is_empty());
    }

    #[tokio::test]
    async fn a_retryable_failure_is_dead_lettered_only_once_its_time_budget_is_spent() {
        let dlq = MemoryDeadLetters::new();
        let visibility = MemoryVisibility::new();
        let fresh = Utc::now() - chrono::Duration::minutes(119);
        let spent = Utc::now() - chrono::Duration::minutes(121);
        let records = vec![
            record_sent("young", "retry", 30, fresh),
            record_sent("old", "retry", 30, spent),
        ];
        let report = run(records, &config(), &dlq, &visibility).await;
        assert!(matches!(report.outcomes[0].1, RecordOutcome::Retry { .. }));
        // The young record's last try lands on its budget's end, a minute away at most.
        assert!(visibility.delays()[0].1 <= Duration::from_secs(60));
        assert_eq!(dlq.letters().len(), 1);
        assert_eq!(dlq.letters()[0].message_id, "old");
        assert_eq!(dlq.letters()[0].reason.code, "busy");
        assert_eq!(dlq.letters()[0].receive_count, 30);
    }

    #[tokio::test]
    async fn the_receive_count_backstop_dead_letters_with_the_reason() {
        let dlq = MemoryDeadLetters::new();
        let visibility = MemoryVisibility::new();
        let report = run(
            vec![record("m1", "retry", 50)],
            &config(),
            &dlq,
            &visibility,
        )
        .await;
        assert!(report.response.batch_item_failures.is_empty());
        assert_eq!(dlq.letters()[0].reason.code, "busy");
    }

    #[tokio::test]
    async fn record_is_kept_for_retry_when_the_dead_letter_queue_is_down() {
        let dlq = MemoryDeadLetters::new();
        let visibility = MemoryVisibility::new();
        dlq.set_refusing(true);
        let report = run(vec![record("m1", "bad", 1)], &config(), &dlq, &visibility).await;
        assert_eq!(report.response.batch_item_failures.len(), 1);
        assert_eq!(visibility.delays().len(), 1);
    }

    #[tokio::test]
    async fn record_without_body_is_dead_lettered() {
        let dlq = MemoryDeadLetters::new();
        let visibility = MemoryVisibility::new();
        let mut m = record("m1", "", 1);
        m.body = None;
        run(vec![m], &config(), &dlq, &visibility).await;
        assert_eq!(dlq.letters()[0].reason.code, "empty_message");
    }
}
