//! A durable dead-letter queue as the consumers' dead-letter sink: the body unchanged, so it can
//! be redriven as it was, and the reason as message attributes, as the SQS adapter sends them.

use std::sync::Arc;

use freightbridge::aws::sqs::attr;
use freightbridge::batch::{DeadLetter, DeadLetterSink};
use freightbridge::failure::FailureClass;

use super::{DurableQueue, off_thread};

/// Sends dead letters to a durable queue.
#[derive(Debug, Clone)]
pub struct DurableDeadLetters(pub Arc<DurableQueue>);

impl DeadLetterSink for DurableDeadLetters {
    async fn send(&self, letter: DeadLetter) -> Result<(), String> {
        let queue = self.0.clone();
        off_thread(move || {
            let attributes = letter_attributes(&letter);
            queue.send_with_attributes(letter.body, attributes)
        })
        .await
        .map(drop)
        .map_err(|e| e.to_string())
    }
}

/// The attributes that travel with a dead letter: the one place that says what a letter
/// carries besides its body.
pub fn letter_attributes(letter: &DeadLetter) -> Vec<(String, String)> {
    let class = match letter.reason.class {
        FailureClass::Retryable => "retryable",
        FailureClass::Permanent => "permanent",
    };
    [
        (attr::ERROR_CLASS, class.to_owned()),
        (attr::ERROR_CODE, letter.reason.code.clone()),
        (attr::ERROR_MESSAGE, letter.reason.message.clone()),
        (attr::CONSUMER, letter.consumer.clone()),
        (attr::ORIGINAL_MESSAGE_ID, letter.message_id.clone()),
        (attr::RECEIVE_COUNT, letter.receive_count.to_string()),
        (
            attr::ODOO_ERROR,
            letter.reason.odoo_error.clone().unwrap_or_default(),
        ),
    ]
    .into_iter()
    // As on SQS, an attribute without a value is left out.
    .filter(|(_, value)| !value.is_empty())
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use freightbridge::failure::FailureReason;

    use super::super::testing::{fresh, reopen};
    use super::*;

    fn letter() -> DeadLetter {
        DeadLetter {
            body: r#"{"detail":{"n":1}}"#.into(),
            message_id: "m-1".into(),
            reason: FailureReason::permanent("odoo_validation", "bad partner"),
            consumer: "odoo-poster".into(),
            receive_count: 3,
        }
    }

    fn attribute<'a>(attributes: &'a [(String, String)], name: &str) -> Option<&'a str> {
        attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_letter_carries_its_reason_consumer_origin_and_receive_count() {
        let attributes = letter_attributes(&letter());
        let expected = [
            ("fb-error-class", "permanent"),
            ("fb-error-code", "odoo_validation"),
            ("fb-error-message", "bad partner"),
            ("fb-consumer", "odoo-poster"),
            ("fb-original-message-id", "m-1"),
            ("fb-receive-count", "3"),
        ];
        for (name, value) in expected {
            assert_eq!(attribute(&attributes, name), Some(value), "{name}");
        }
        assert_eq!(attributes.len(), expected.len());
    }

    #[tokio::test]
    async fn dead_letters_survive_a_reopen_with_body_and_attributes() {
        let (dir, durable) = fresh();
        let dlq = DurableQueue::new(&durable, "odoo-dlq", Duration::from_secs(30), 5, None);
        DurableDeadLetters(dlq).send(letter()).await.unwrap();
        drop(durable);
        let durable = reopen(&dir);
        let dlq = DurableQueue::new(&durable, "odoo-dlq", Duration::from_secs(30), 5, None);
        let listed = dlq.snapshot().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].body, letter().body);
        assert_eq!(listed[0].attributes, letter_attributes(&letter()));
        assert_eq!(listed[0].receive_count, 0);
    }
}
