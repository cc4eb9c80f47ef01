//! SQS batch processing with partial batch responses: records run concurrently, each failure is
//! reported alone in `batchItemFailures`, a panic fails only its own record, and a permanent
//! failure goes straight to the dead-letter queue with its reason attached.

use std::future::Future;

use crate::failure::FailureReason;

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
    /// Consumer name written on dead letters.
    pub consumer: String,
    /// Records processed at the same time.
    pub concurrency: usize,
    /// The queue's `maxReceiveCount`: on the last receive a still-failing record is
    /// dead-lettered by us, with its reason, instead of silently by the redrive policy.
    pub max_receive_count: u32,
}

/// The outcome of one record, for logs and reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordOutcome {
    Done,
    /// Reported in `batchItemFailures`: SQS delivers it again after the visibility timeout.
    Retry(FailureReason),
    /// Sent to the dead-letter queue with its reason.
    DeadLettered(FailureReason),
}

/// The batch response plus what happened to each record (in input order).
#[derive(Debug, Default)]
pub struct BatchReport {
    pub response: aws_lambda_events::event::sqs::SqsBatchResponse,
    pub outcomes: Vec<(String, RecordOutcome)>,
}

/// Run `handler` over every record of a batch, at most `config.concurrency` at a time.
///
/// Never fails as a whole: each record ends done, retried (listed in `batchItemFailures`) or
/// dead-lettered. A panicking handler fails only its own record (retried, then dead-lettered
/// with the panic message on the last receive).
pub async fn process_batch<F, Fut, D>(
    records: Vec<aws_lambda_events::event::sqs::SqsMessage>,
    config: &BatchConfig,
    dead_letters: &D,
    handler: F,
) -> BatchReport
where
    F: Fn(RecordContext) -> Fut,
    Fut: Future<Output = Result<(), FailureReason>>,
    D: DeadLetterSink,
{
    use futures::FutureExt as _;
    use futures::StreamExt as _;
    use std::panic::AssertUnwindSafe;

    let handler = &handler;
    let outcomes: Vec<(usize, String, RecordOutcome)> =
        futures::stream::iter(records.into_iter().enumerate())
            .map(|(index, record)| async move {
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
                let outcome = settle(
                    result,
                    &record,
                    &message_id,
                    receive_count,
                    config,
                    dead_letters,
                )
                .await;
                (index, message_id, outcome)
            })
            .buffer_unordered(config.concurrency.max(1))
            .collect()
            .await;

    let mut outcomes = outcomes;
    outcomes.sort_by_key(|(index, _, _)| *index);
    let mut report = BatchReport::default();
    for (_, message_id, outcome) in outcomes {
        if matches!(outcome, RecordOutcome::Retry(_)) {
            let mut failure = aws_lambda_events::event::sqs::BatchItemFailure::default();
            failure.item_identifier = message_id.clone();
            report.response.batch_item_failures.push(failure);
        }
        report.outcomes.push((message_id, outcome));
    }
    report
}

async fn settle<D: DeadLetterSink>(
    result: Result<(), FailureReason>,
    record: &aws_lambda_events::event::sqs::SqsMessage,
    message_id: &str,
    receive_count: u32,
    config: &BatchConfig,
    dead_letters: &D,
) -> RecordOutcome {
    let reason = match result {
        Ok(()) => return RecordOutcome::Done,
        Err(reason) => reason,
    };
    let last_chance = receive_count >= config.max_receive_count;
    if reason.class == crate::failure::FailureClass::Retryable && !last_chance {
        tracing::warn!(message_id, code = %reason.code, error = %reason.message, receive_count, "record failed, will be retried");
        return RecordOutcome::Retry(reason);
    }
    let letter = DeadLetter {
        body: record.body.clone().unwrap_or_default(),
        message_id: message_id.to_owned(),
        reason: reason.clone(),
        consumer: config.consumer.clone(),
        receive_count,
    };
    match dead_letters.send(letter).await {
        Ok(()) => {
            tracing::error!(message_id, code = %reason.code, error = %reason.message, receive_count, "record dead-lettered");
            RecordOutcome::DeadLettered(reason)
        }
        Err(send_error) => {
            // Could not dead-letter: keep the record on the queue rather than lose it.
            tracing::error!(message_id, code = %reason.code, %send_error, "dead-letter send failed, record kept for retry");
            RecordOutcome::Retry(reason)
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

impl<T: DeadLetterSink> DeadLetterSink for std::sync::Arc<T> {
    fn send(&self, letter: DeadLetter) -> impl Future<Output = Result<(), String>> + Send {
        (**self).send(letter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::sqs::SqsMessage;

    fn record(id: &str, body: &str, receive_count: u32) -> SqsMessage {
        let mut m = SqsMessage::default();
        m.message_id = Some(id.into());
        m.body = Some(body.into());
        m.attributes
            .insert("ApproximateReceiveCount".into(), receive_count.to_string());
        m
    }

    fn config() -> BatchConfig {
        BatchConfig {
            consumer: "test".into(),
            concurrency: 4,
            max_receive_count: 3,
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

    #[tokio::test]
    async fn each_failed_record_is_reported_alone_and_a_panic_fails_only_its_record() {
        let dlq = MemoryDeadLetters::new();
        let records = vec![
            record("m1", "ok", 1),
            record("m2", "retry", 1),
            record("m3", "panic", 1),
            record("m4", "ok", 1),
        ];
        let report = process_batch(records, &config(), &dlq, handle).await;
        let failed: Vec<_> = report
            .response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failed, vec!["m2", "m3"]);
        assert_eq!(report.outcomes[0].1, RecordOutcome::Done);
        assert!(
            matches!(&report.outcomes[2].1, RecordOutcome::Retry(r) if r.code == "handler_panic" && r.message.contains("boom"))
        );
        assert!(dlq.letters().is_empty());
    }

    #[tokio::test]
    async fn permanent_failure_is_dead_lettered_with_its_reason_and_not_retried() {
        let dlq = MemoryDeadLetters::new();
        let report = process_batch(vec![record("m1", "bad", 1)], &config(), &dlq, handle).await;
        assert!(report.response.batch_item_failures.is_empty());
        let letters = dlq.letters();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].body, "bad");
        assert_eq!(letters[0].reason.code, "malformed_payload");
        assert_eq!(letters[0].consumer, "test");
    }

    #[tokio::test]
    async fn retryable_failure_on_the_last_receive_is_dead_lettered() {
        let dlq = MemoryDeadLetters::new();
        let report = process_batch(vec![record("m1", "retry", 3)], &config(), &dlq, handle).await;
        assert!(report.response.batch_item_failures.is_empty());
        assert_eq!(dlq.letters()[0].reason.code, "busy");
        assert_eq!(dlq.letters()[0].receive_count, 3);
    }

    #[tokio::test]
    async fn record_is_kept_for_retry_when_the_dead_letter_queue_is_down() {
        let dlq = MemoryDeadLetters::new();
        dlq.set_refusing(true);
        let report = process_batch(vec![record("m1", "bad", 1)], &config(), &dlq, handle).await;
        assert_eq!(report.response.batch_item_failures.len(), 1);
    }

    #[tokio::test]
    async fn record_without_body_is_dead_lettered() {
        let dlq = MemoryDeadLetters::new();
        let mut m = record("m1", "", 1);
        m.body = None;
        process_batch(vec![m], &config(), &dlq, handle).await;
        assert_eq!(dlq.letters()[0].reason.code, "empty_message");
    }
}
