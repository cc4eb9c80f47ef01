//! An in-process queue that behaves like SQS where the chain depends on it: a received message
//! stays invisible for the visibility timeout, is delivered again unless deleted, counts its
//! receives, and moves to its dead-letter queue once received more than `max_receive_count` times.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::sqs::SqsMessage;
use freightbridge::batch::{DeadLetter, DeadLetterSink};
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Debug, Clone)]
struct Message {
    id: String,
    body: String,
    receive_count: u32,
    visible_at: Instant,
    attributes: Vec<(String, String)>,
}

pub struct LocalQueue {
    name: String,
    messages: Mutex<VecDeque<Message>>,
    notify: Notify,
    visibility_timeout: Duration,
    max_receive_count: u32,
    dead_letter: Option<Arc<LocalQueue>>,
}

/// A message as it sits on a queue, for reports and the DLQ listing.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub id: String,
    pub body: String,
    pub receive_count: u32,
    pub attributes: Vec<(String, String)>,
}

impl LocalQueue {
    pub fn new(
        name: &str,
        visibility_timeout: Duration,
        max_receive_count: u32,
        dead_letter: Option<Arc<LocalQueue>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            name: name.to_owned(),
            messages: Mutex::new(VecDeque::new()),
            notify: Notify::new(),
            visibility_timeout,
            max_receive_count,
            dead_letter,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn send(&self, body: String) {
        self.send_with_attributes(body, Vec::new());
    }

    fn send_with_attributes(&self, body: String, attributes: Vec<(String, String)>) {
        self.lock().push_back(Message {
            id: uuid::Uuid::new_v4().to_string(),
            body,
            receive_count: 0,
            visible_at: Instant::now(),
            attributes,
        });
        self.notify.notify_waiters();
    }

    /// Receive up to `max` visible messages, as SQS ReceiveMessage does (without long polling).
    pub fn receive(&self, max: usize) -> Vec<SqsMessage> {
        let now = Instant::now();
        let mut moved = Vec::new();
        let mut received = Vec::new();
        {
            let mut messages = self.lock();
            let mut index = 0;
            while index < messages.len() && received.len() < max {
                if messages[index].visible_at > now {
                    index += 1;
                    continue;
                }
                if messages[index].receive_count >= self.max_receive_count
                    && self.dead_letter.is_some()
                {
                    if let Some(message) = messages.remove(index) {
                        moved.push(message);
                    }
                    continue;
                }
                let message = &mut messages[index];
                message.receive_count += 1;
                message.visible_at = now + self.visibility_timeout;
                received.push(to_sqs(message, &self.name));
                index += 1;
            }
        }
        if let Some(dlq) = &self.dead_letter {
            for message in moved {
                // SQS's redrive keeps the body and says nothing about why.
                dlq.send_with_attributes(message.body, message.attributes);
            }
        }
        received
    }

    /// Make an in-flight message invisible for `delay` from now (SQS ChangeMessageVisibility).
    pub fn change_visibility(&self, message_id: &str, delay: Duration) {
        if let Some(message) = self.lock().iter_mut().find(|m| m.id == message_id) {
            message.visible_at = Instant::now() + delay;
        }
        self.notify.notify_waiters();
    }

    pub fn delete(&self, message_id: &str) {
        self.lock().retain(|m| m.id != message_id);
        self.notify.notify_waiters();
    }

    /// Messages on the queue, visible or in flight.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    pub fn snapshot(&self) -> Vec<QueuedMessage> {
        self.lock()
            .iter()
            .map(|m| QueuedMessage {
                id: m.id.clone(),
                body: m.body.clone(),
                receive_count: m.receive_count,
                attributes: m.attributes.clone(),
            })
            .collect()
    }

    /// Wait until a message may have arrived or become visible (bounded by `max_wait`).
    pub async fn wait(&self, max_wait: Duration) {
        let next_visible = self.lock().iter().map(|m| m.visible_at).min();
        let until = match next_visible {
            Some(at) if at <= Instant::now() => return,
            Some(at) => at.min(Instant::now() + max_wait),
            None => Instant::now() + max_wait,
        };
        let _ = tokio::time::timeout_at(until, self.notify.notified()).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Message>> {
        self.messages.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn to_sqs(message: &Message, queue: &str) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(message.id.clone());
    m.receipt_handle = Some(message.id.clone());
    m.body = Some(message.body.clone());
    m.event_source = Some("aws:sqs".into());
    m.event_source_arn = Some(format!("arn:aws:sqs:local:000000000000:{queue}"));
    m.attributes.insert(
        "ApproximateReceiveCount".into(),
        message.receive_count.to_string(),
    );
    m
}

impl freightbridge::batch::Visibility for LocalQueue {
    async fn delay(&self, receipt_handle: &str, delay: Duration) -> Result<(), String> {
        self.change_visibility(receipt_handle, delay);
        Ok(())
    }
}

/// A local dead-letter queue used as the consumers' dead-letter sink: the reason travels as
/// message attributes, as the SQS adapter sends them.
pub struct QueueDeadLetters(pub Arc<LocalQueue>);

impl DeadLetterSink for QueueDeadLetters {
    async fn send(&self, letter: DeadLetter) -> Result<(), String> {
        let attributes = vec![
            (
                "fb-error-class".into(),
                format!("{:?}", letter.reason.class).to_lowercase(),
            ),
            ("fb-error-code".into(), letter.reason.code.clone()),
            ("fb-error-message".into(), letter.reason.message.clone()),
            ("fb-consumer".into(), letter.consumer.clone()),
            ("fb-original-message-id".into(), letter.message_id.clone()),
            ("fb-receive-count".into(), letter.receive_count.to_string()),
        ];
        self.0.send_with_attributes(letter.body, attributes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn unacknowledged_message_comes_back_after_the_visibility_timeout() {
        let q = LocalQueue::new("q", Duration::from_secs(30), 5, None);
        q.send("a".into());
        let first = q.receive(10);
        assert_eq!(first.len(), 1);
        assert!(q.receive(10).is_empty(), "invisible while in flight");
        tokio::time::advance(Duration::from_secs(31)).await;
        let again = q.receive(10);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attributes["ApproximateReceiveCount"], "2");
        q.delete(again[0].message_id.as_deref().unwrap());
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn message_moves_to_the_dead_letter_queue_after_max_receives() {
        let dlq = LocalQueue::new("dlq", Duration::from_secs(30), 5, None);
        let q = LocalQueue::new("q", Duration::from_secs(1), 2, Some(dlq.clone()));
        q.send("poison".into());
        for _ in 0..2 {
            assert_eq!(q.receive(10).len(), 1);
            tokio::time::advance(Duration::from_secs(2)).await;
        }
        assert!(q.receive(10).is_empty());
        assert!(q.is_empty());
        assert_eq!(dlq.snapshot()[0].body, "poison");
    }
}
