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
