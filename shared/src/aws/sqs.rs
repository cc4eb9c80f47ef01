//! SQS: the dead-letter sink consumers use for records that can never succeed (the original body
//! unchanged, the reason in message attributes so the DLQ explains itself and can be redriven),
//! the visibility port that gives a retried record its backoff, and a small queue client for the
//! harnesses that drive the SQS → Lambda leg themselves.

use std::collections::HashMap;

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::sqs::{SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::SdkError;
use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use thiserror::Error;

use super::{failure_class, render_error};
use crate::batch::{DeadLetter, DeadLetterSink, Visibility};
use crate::failure::{Classify, FailureClass};

/// Message attribute names on a dead letter.
pub mod attr {
    pub const ERROR_CLASS: &str = "fb-error-class";
    pub const ERROR_CODE: &str = "fb-error-code";
    pub const ERROR_MESSAGE: &str = "fb-error-message";
    pub const CONSUMER: &str = "fb-consumer";
    pub const ORIGINAL_MESSAGE_ID: &str = "fb-original-message-id";
    pub const RECEIVE_COUNT: &str = "fb-receive-count";
    /// Odoo's exception name, when Odoo refused.
    pub const ODOO_ERROR: &str = "fb-odoo-error";
}

/// The error message on a dead letter is cut to this many bytes: it explains, the logs hold
/// the rest, and SQS counts attributes against the message size limit.
pub const MAX_ERROR_MESSAGE_BYTES: usize = 1024;

/// The longest visibility timeout SQS accepts, in seconds (12 hours).
pub const MAX_VISIBILITY_SECONDS: i32 = 43_200;

#[derive(Debug, Error)]
#[error("SQS {operation} failed: {detail}")]
pub struct SqsError {
    pub operation: &'static str,
    pub detail: String,
    pub class: FailureClass,
}

impl SqsError {
    fn from_sdk<E>(operation: &'static str, err: &SdkError<E>) -> Self
    where
        E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
    {
        Self {
            operation,
            detail: render_error(err),
            class: failure_class(err),
        }
    }
}

impl Classify for SqsError {
    fn class(&self) -> FailureClass {
        self.class
    }

    fn code(&self) -> &'static str {
        match self.class {
            FailureClass::Retryable => "sqs_unavailable",
            FailureClass::Permanent => "sqs_request_refused",
        }
    }
}

/// Sends dead letters to an SQS queue.
#[derive(Debug, Clone)]
pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
}

impl SqsDeadLetters {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn from_config(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::new(Client::new(config), queue_url)
    }
}

impl DeadLetterSink for SqsDeadLetters {
    async fn send(&self, letter: DeadLetter) -> Result<(), String> {
        let attributes = dead_letter_attributes(&letter)?;
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(letter.body)
            .set_message_attributes(Some(attributes))
            .send()
            .await
            .map_err(|e| SqsError::from_sdk("SendMessage (dead letter)", &e).to_string())?;
        Ok(())
    }
}

/// Delays retried records of one queue through `ChangeMessageVisibility`.
#[derive(Debug, Clone)]
pub struct SqsVisibility {
    client: Client,
    queue_url: String,
}

impl SqsVisibility {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn from_config(config: &aws_config::SdkConfig, queue_url: impl Into<String>) -> Self {
        Self::new(Client::new(config), queue_url)
    }
}

impl Visibility for SqsVisibility {
    async fn delay(&self, receipt_handle: &str, delay: std::time::Duration) -> Result<(), String> {
        change_visibility(
            &self.client,
            &self.queue_url,
            receipt_handle,
            visibility_seconds(delay),
        )
        .await
        .map_err(|e| e.to_string())
    }
}

/// A backoff as a visibility timeout: rounded up, so a record never comes back before its
/// backoff has passed, and capped at what SQS accepts. SQS also counts the 12 hours from the
/// first receive, so a long delay on an old message may still be refused; the queue's own
/// timeout then stands.
fn visibility_seconds(delay: std::time::Duration) -> i32 {
    let whole = delay
        .as_secs()
        .saturating_add(u64::from(delay.subsec_nanos() > 0));
    i32::try_from(whole).map_or(MAX_VISIBILITY_SECONDS, |s| s.min(MAX_VISIBILITY_SECONDS))
}

async fn change_visibility(
    client: &Client,
    queue_url: &str,
    receipt_handle: &str,
    seconds: i32,
) -> Result<(), SqsError> {
    client
        .change_message_visibility()
        .queue_url(queue_url)
        .receipt_handle(receipt_handle)
        .visibility_timeout(seconds)
        .send()
        .await
        .map_err(|e| SqsError::from_sdk("ChangeMessageVisibility", &e))?;
    Ok(())
}

/// The attributes that travel with a dead letter. Empty values are left out (SQS refuses them).
pub fn dead_letter_attributes(
    letter: &DeadLetter,
) -> Result<HashMap<String, MessageAttributeValue>, String> {
    let class = match letter.reason.class {
        FailureClass::Retryable => "retryable",
        FailureClass::Permanent => "permanent",
    };
    let message = truncate(&letter.reason.message, MAX_ERROR_MESSAGE_BYTES);
    let receive_count = letter.receive_count.to_string();
    let rows = [
        (attr::ERROR_CLASS, "String", class),
        (attr::ERROR_CODE, "String", letter.reason.code.as_str()),
        (attr::ERROR_MESSAGE, "String", message.as_str()),
        (attr::CONSUMER, "String", letter.consumer.as_str()),
        (
            attr::ORIGINAL_MESSAGE_ID,
            "String",
            letter.message_id.as_str(),
        ),
        (attr::RECEIVE_COUNT, "Number", receive_count.as_str()),
        (
            attr::ODOO_ERROR,
            "String",
            letter.reason.odoo_error.as_deref().unwrap_or_default(),
        ),
    ];
    let mut attributes = HashMap::new();
    for (name, data_type, value) in rows {
        if value.is_empty() {
            continue;
        }
        let value = MessageAttributeValue::builder()
            .data_type(data_type)
            .string_value(sqs_text(value))
            .build()
            .map_err(|e| format!("dead letter attribute {name}: {e}"))?;
        attributes.insert(name.to_owned(), value);
    }
    Ok(attributes)
}

/// At most `max` bytes, cut on a character boundary, with an ellipsis when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// SQS accepts only XML-safe characters (tab, newline, carriage return, U+0020 and up, minus
/// the non-characters U+FFFE/U+FFFF); an error message may quote anything.
fn sqs_text(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\t' | '\n' | '\r' => c,
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// A queue as the local harnesses use it: send, receive (with every attribute) and delete.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.queue_url
    }

    /// Send a body; returns the new message id.
    pub async fn send(&self, body: &str) -> Result<String, SqsError> {
        let output = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map_err(|e| SqsError::from_sdk("SendMessage", &e))?;
        Ok(output.message_id().unwrap_or_default().to_owned())
    }

    /// Receive up to `max` (1–10) messages, waiting up to `wait_seconds` for the first one.
    /// `visibility_timeout` overrides the queue's when given.
    pub async fn receive(
        &self,
        max: i32,
        wait_seconds: i32,
        visibility_timeout: Option<i32>,
    ) -> Result<Vec<Message>, SqsError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(max)
            .wait_time_seconds(wait_seconds)
            .set_visibility_timeout(visibility_timeout)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| SqsError::from_sdk("ReceiveMessage", &e))?;
        Ok(output.messages.unwrap_or_default())
    }

    pub async fn delete(&self, receipt_handle: &str) -> Result<(), SqsError> {
        self.client
            .delete_message()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .send()
            .await
            .map_err(|e| SqsError::from_sdk("DeleteMessage", &e))?;
        Ok(())
    }

    /// Make a received message visible again after `seconds` (0: at once), as a consumer
    /// does to give a retried record its backoff.
    pub async fn change_visibility(
        &self,
        receipt_handle: &str,
        seconds: i32,
    ) -> Result<(), SqsError> {
        change_visibility(&self.client, &self.queue_url, receipt_handle, seconds).await
    }
}

/// A received message in the shape Lambda's SQS event source hands to a function, so a harness
/// can invoke a handler with what the event source mapping would have sent.
pub fn to_lambda_message(message: &Message, queue_arn: &str, region: &str) -> SqsMessage {
    let mut out = SqsMessage::default();
    out.message_id = message.message_id().map(str::to_owned);
    out.receipt_handle = message.receipt_handle().map(str::to_owned);
    out.body = message.body().map(str::to_owned);
    out.md5_of_body = message.md5_of_body().map(str::to_owned);
    out.md5_of_message_attributes = message.md5_of_message_attributes().map(str::to_owned);
    out.attributes = message
        .attributes()
        .map(|attrs| {
            attrs
                .iter()
                .map(|(name, value)| (name.as_str().to_owned(), value.clone()))
                .collect()
        })
        .unwrap_or_default();
    out.message_attributes = message
        .message_attributes()
        .map(|attrs| {
            attrs
                .iter()
                .map(|(name, value)| (name.clone(), to_lambda_attribute(value)))
                .collect()
        })
        .unwrap_or_default();
    out.event_source_arn = Some(queue_arn.to_owned());
    out.event_source = Some("aws:sqs".to_owned());
    out.aws_region = Some(region.to_owned());
    out
}

fn to_lambda_attribute(value: &MessageAttributeValue) -> SqsMessageAttribute {
    let mut out = SqsMessageAttribute::default();
    out.data_type = Some(value.data_type().to_owned());
    out.string_value = value.string_value().map(str::to_owned);
    out.binary_value = value.binary_value().map(|b| base64_data(b.as_ref()));
    out.string_list_values = value.string_list_values().to_vec();
    out.binary_list_values = value
        .binary_list_values()
        .iter()
        .map(|b| base64_data(b.as_ref()))
        .collect();
    out
}

fn base64_data(bytes: &[u8]) -> Base64Data {
    // `Base64Data` is non-exhaustive: build it through its `Default` and `DerefMut`.
    let mut data = Base64Data::default();
    data.extend_from_slice(bytes);
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::FailureReason;

    fn letter(message: &str) -> DeadLetter {
        DeadLetter {
            body: r#"{"detail":{}}"#.into(),
            message_id: "m-1".into(),
            reason: FailureReason::permanent("odoo_missing_record", message),
            consumer: "odoo-poster".into(),
            receive_count: 3,
        }
    }

    fn string_of(attrs: &HashMap<String, MessageAttributeValue>, name: &str) -> String {
        attrs[name].string_value().unwrap().to_owned()
    }

    #[test]
    fn dead_letter_carries_its_reason_in_attributes() {
        let attrs = dead_letter_attributes(&letter("no such picking")).unwrap();
        let expected = [
            (attr::ERROR_CLASS, "String", "permanent"),
            (attr::ERROR_CODE, "String", "odoo_missing_record"),
            (attr::ERROR_MESSAGE, "String", "no such picking"),
            (attr::CONSUMER, "String", "odoo-poster"),
            (attr::ORIGINAL_MESSAGE_ID, "String", "m-1"),
            (attr::RECEIVE_COUNT, "Number", "3"),
        ];
        assert_eq!(attrs.len(), expected.len());
        for (name, data_type, value) in expected {
            assert_eq!(attrs[name].data_type(), data_type, "{name}");
            assert_eq!(string_of(&attrs, name), value, "{name}");
        }
    }

    #[test]
    fn long_error_messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_ERROR_MESSAGE_BYTES);
        let attrs = dead_letter_attributes(&letter(&long)).unwrap();
        let cut = string_of(&attrs, attr::ERROR_MESSAGE);
        assert!(cut.len() <= MAX_ERROR_MESSAGE_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert!(cut.trim_end_matches('…').chars().all(|c| c == 'é'));
    }

    #[test]
    fn characters_sqs_refuses_are_replaced_and_empty_values_left_out() {
        let mut l = letter("bad\u{0}byte\tand\u{FFFF}");
        l.message_id = String::new();
        let attrs = dead_letter_attributes(&l).unwrap();
        assert_eq!(
            string_of(&attrs, attr::ERROR_MESSAGE),
            "bad\u{FFFD}byte\tand\u{FFFD}"
        );
        assert!(!attrs.contains_key(attr::ORIGINAL_MESSAGE_ID));
    }

    #[test]
    fn received_message_becomes_a_lambda_sqs_record() {
        let message = Message::builder()
            .message_id("m-1")
            .receipt_handle("rh")
            .body("{}")
            .attributes(MessageSystemAttributeName::ApproximateReceiveCount, "2")
            .message_attributes(
                attr::CONSUMER,
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("odoo-poster")
                    .build()
                    .unwrap(),
            )
            .build();
        let record = to_lambda_message(&message, "arn:aws:sqs:us-east-1:1:q", "us-east-1");
        assert_eq!(record.message_id.as_deref(), Some("m-1"));
        assert_eq!(record.receipt_handle.as_deref(), Some("rh"));
        assert_eq!(record.attributes["ApproximateReceiveCount"], "2");
        assert_eq!(
            record.message_attributes[attr::CONSUMER]
                .string_value
                .as_deref(),
            Some("odoo-poster")
        );
        assert_eq!(record.event_source.as_deref(), Some("aws:sqs"));
        assert_eq!(
            record.event_source_arn.as_deref(),
            Some("arn:aws:sqs:us-east-1:1:q")
        );
    }

    #[test]
    fn visibility_delay_is_rounded_up_to_whole_seconds_and_capped() {
        use std::time::Duration;
        let cases = [
            (Duration::ZERO, 0),
            (Duration::from_nanos(1), 1),
            (Duration::from_millis(999), 1),
            (Duration::from_secs(1), 1),
            (Duration::from_millis(1001), 2),
            (Duration::from_secs(30), 30),
            (Duration::from_secs(43_200), 43_200),
            (Duration::from_millis(43_200_001), 43_200),
            (Duration::from_secs(u64::from(u32::MAX) + 1), 43_200),
            (Duration::MAX, 43_200),
        ];
        for (delay, expected) in cases {
            assert_eq!(visibility_seconds(delay), expected, "{delay:?}");
        }
    }
}
