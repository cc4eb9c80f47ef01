//! Queues with SQS's semantics, persisted in `messages`: a received message is invisible for the
//! visibility timeout and delivered again unless deleted, counts its receives, and moves to its
//! dead-letter queue when received again after `max_receive_count` receives. The API follows
//! `crate::queue::LocalQueue`, with the database's errors surfaced.
//!
//! A receipt handle is `<message id>:<receive count>`: it names one delivery, so a consumer that
//! kept a handle past its visibility timeout cannot change the visibility of the next delivery.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsMessage, SqsMessageAttribute};
use chrono::{DateTime, Utc};
use freightbridge::batch::Visibility;
use rusqlite::{Connection, params};

use super::{Durable, DurableError, immediate, millis, now_ms, off_thread};

/// The prefix of the attributes a consumer puts on a dead letter (`letter_attributes`).
const LETTER_ATTRIBUTE_PREFIX: &str = "fb-";

/// A handle on one named queue of the database. Handles are cheap; the messages are shared by
/// every handle of the same name.
#[derive(Debug, Clone)]
pub struct DurableQueue {
    durable: Arc<Durable>,
    name: String,
    visibility_timeout: Duration,
    max_receive_count: u32,
    dead_letter: Option<String>,
}

/// A message as it sits on a queue, for reports and the DLQ listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMessage {
    pub id: String,
    pub body: String,
    pub receive_count: u32,
    pub attributes: Vec<(String, String)>,
    pub sent_at: DateTime<Utc>,
}

/// A stored message, as `receive` and `redrive` read it.
struct Stored {
    id: String,
    seq: i64,
    body: String,
    attributes: Vec<(String, String)>,
    sent_at_ms: i64,
    first_received_ms: Option<i64>,
    receive_count: u32,
}

const STORED_COLUMNS: &str =
    "id, seq, body, attributes, sent_at_ms, first_received_ms, receive_count";

impl DurableQueue {
    /// A handle on queue `name`. Messages received `max_receive_count` times move to the queue
    /// named `dead_letter` on their next receive (without one, they are delivered forever).
    pub fn new(
        durable: &Arc<Durable>,
        name: &str,
        visibility_timeout: Duration,
        max_receive_count: u32,
        dead_letter: Option<&str>,
    ) -> Arc<Self> {
        Arc::new(Self {
            durable: durable.clone(),
            name: name.to_owned(),
            visibility_timeout,
            max_receive_count,
            dead_letter: dead_letter.map(str::to_owned),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends a message; answers its id.
    pub fn send(&self, body: String) -> Result<String, DurableError> {
        self.send_with_attributes(body, Vec::new())
    }

    pub fn send_with_attributes(
        &self,
        body: String,
        attributes: Vec<(String, String)>,
    ) -> Result<String, DurableError> {
        let id = self
            .durable
            .with(|conn| insert(conn, &self.name, &body, &attributes, now_ms()))?;
        self.durable.wake(&self.name);
        Ok(id)
    }

    /// Receives up to `max` visible messages, oldest first, as SQS ReceiveMessage does (without
    /// long polling: see `wait`). One that already had its last receive moves to the DLQ.
    pub fn receive(&self, max: usize) -> Result<Vec<SqsMessage>, DurableError> {
        let (received, moved) = self.durable.with(|conn| {
            let tx = immediate(conn)?;
            let outcome = self.receive_in(&tx, max, now_ms())?;
            tx.commit()?;
            Ok(outcome)
        })?;
        if moved > 0
            && let Some(dlq) = &self.dead_letter
        {
            self.durable.wake(dlq);
        }
        Ok(received)
    }

    /// Deletes the message a receipt handle (or a bare message id) names, whichever delivery the
    /// handle came from, as SQS does. Answers whether a message was deleted.
    pub fn delete(&self, receipt_handle_or_id: &str) -> Result<bool, DurableError> {
        Ok(self.delete_all(&[receipt_handle_or_id])? == 1)
    }

    /// Deletes every message the handles (or bare ids) name, in one transaction, as SQS's
    /// `DeleteMessageBatch`.
    /// Answers how many were deleted.
    pub fn delete_all(&self, receipt_handles: &[impl AsRef<str>]) -> Result<usize, DurableError> {
        self.durable.with(|conn| {
            let tx = immediate(conn)?;
            let mut deleted = 0;
            {
                let mut statement =
                    tx.prepare_cached("DELETE FROM messages WHERE queue = ?1 AND id = ?2")?;
                for handle in receipt_handles {
                    let (id, _) = parse_handle(handle.as_ref());
                    deleted += statement.execute(params![self.name, id])?;
                }
            }
            tx.commit()?;
            Ok(deleted)
        })
    }

    /// Makes the delivery `receipt_handle` names visible `timeout` from now. A handle from an
    /// earlier delivery, or of a deleted message, changes nothing (answers `false`).
    pub fn change_visibility(
        &self,
        receipt_handle: &str,
        timeout: Duration,
    ) -> Result<bool, DurableError> {
        let (id, Some(receive_count)) = parse_handle(receipt_handle) else {
            return Ok(false);
        };
        let visible_at = now_ms().saturating_add(millis(timeout));
        let changed = self.durable.with(|conn| {
            Ok(conn
                .prepare_cached(
                    "UPDATE messages SET visible_at_ms = ?1
                     WHERE queue = ?2 AND id = ?3 AND receive_count = ?4",
                )?
                .execute(params![visible_at, self.name, id, receive_count])?)
        })?;
        if changed == 1 {
            self.durable.wake(&self.name);
        }
        Ok(changed == 1)
    }

    /// Messages on the queue, visible or in flight.
    pub fn len(&self) -> Result<usize, DurableError> {
        self.count("SELECT COUNT(*) FROM messages WHERE queue = ?1", None)
    }

    /// No message on the queue, visible or in flight. One index probe, not a count: the chain
    /// polls it while draining.
    pub fn is_empty(&self) -> Result<bool, DurableError> {
        Ok(self.count(
            "SELECT EXISTS (SELECT 1 FROM messages WHERE queue = ?1)",
            None,
        )? == 0)
    }

    /// Messages received and not yet visible again.
    pub fn in_flight(&self) -> Result<usize, DurableError> {
        self.count(
            "SELECT COUNT(*) FROM messages WHERE queue = ?1 AND visible_at_ms > ?2",
            Some(now_ms()),
        )
    }

    /// Every message on the queue, oldest first.
    pub fn snapshot(&self) -> Result<Vec<QueuedMessage>, DurableError> {
        self.durable.with(|conn| {
            all_stored(conn, &self.name)?
                .into_iter()
                .map(queued)
                .collect()
        })
    }

    /// Moves messages of this (dead-letter) queue back to queue `to`, as an SQS redrive does:
    /// visible at once, receive count 0, body kept, the dead letter's `fb-*` reason dropped.
    /// `ids` picks messages by id; `None` moves them all. Answers how many moved.
    pub fn redrive(&self, to: &str, ids: Option<&[String]>) -> Result<usize, DurableError> {
        let wanted: Option<HashSet<&str>> = ids.map(|ids| ids.iter().map(String::as_str).collect());
        let moved = self.durable.with(|conn| {
            let tx = immediate(conn)?;
            let now = now_ms();
            let mut moved = 0;
            for message in all_stored(&tx, &self.name)? {
                if wanted
                    .as_ref()
                    .is_some_and(|w| !w.contains(message.id.as_str()))
                {
                    continue;
                }
                let kept: Vec<_> = message
                    .attributes
                    .into_iter()
                    .filter(|(name, _)| !name.starts_with(LETTER_ATTRIBUTE_PREFIX))
                    .collect();
                move_message(&tx, &message.id, to, &kept, now)?;
                moved += 1;
            }
            tx.commit()?;
            Ok(moved)
        })?;
        if moved > 0 {
            self.durable.wake(to);
        }
        Ok(moved)
    }

    /// Deletes every message on the queue; answers how many.
    pub fn purge(&self) -> Result<usize, DurableError> {
        self.durable
            .with(|conn| Ok(conn.execute("DELETE FROM messages WHERE queue = ?1", [&self.name])?))
    }

    /// Waits until a message may be visible: at once if one is, else until the next one's
    /// visibility timeout ends or a send, publish or visibility change on this queue, bounded
    /// by `max_wait`.
    pub async fn wait(&self, max_wait: Duration) {
        let deadline = tokio::time::Instant::now() + max_wait;
        let waiter = self.durable.waiter(&self.name);
        let mut notified = std::pin::pin!(waiter.notified());
        // Registered before looking, so a send between the look and the sleep still wakes us.
        notified.as_mut().enable();
        let until = match self.next_visible_ms() {
            Ok(Some(at)) => {
                let wait = at.saturating_sub(now_ms());
                if wait <= 0 {
                    return;
                }
                let wait = Duration::from_millis(wait.unsigned_abs());
                deadline.min(tokio::time::Instant::now() + wait)
            }
            Ok(None) => deadline,
            Err(error) => {
                tracing::warn!(queue = %self.name, %error, "queue unreadable while waiting");
                deadline
            }
        };
        let _ = tokio::time::timeout_at(until, notified).await;
    }

    fn receive_in(
        &self,
        tx: &Connection,
        max: usize,
        now: i64,
    ) -> Result<(Vec<SqsMessage>, usize), DurableError> {
        let mut received = Vec::new();
        let mut moved = 0;
        // Read in pages after the last seq looked at: a message moved to the DLQ frees a place
        // in the batch, and with a zero visibility timeout a delivered one stays visible.
        let mut after = i64::MIN;
        while received.len() < max {
            let page = self.visible_page(tx, after, max - received.len(), now)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for message in page {
                match &self.dead_letter {
                    Some(dlq) if message.receive_count >= self.max_receive_count => {
                        // SQS's redrive keeps the body and attributes and says nothing of why.
                        move_message(tx, &message.id, dlq, &message.attributes, now)?;
                        moved += 1;
                    }
                    _ => received.push(self.deliver(tx, message, now)?),
                }
            }
        }
        Ok((received, moved))
    }

    fn visible_page(
        &self,
        tx: &Connection,
        after_seq: i64,
        limit: usize,
        now: i64,
    ) -> Result<Vec<Stored>, DurableError> {
        let sql = format!(
            "SELECT {STORED_COLUMNS} FROM messages
             WHERE queue = ?1 AND visible_at_ms <= ?2 AND seq > ?3 ORDER BY seq LIMIT ?4"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut statement = tx.prepare_cached(&sql)?;
        let rows =
            statement.query_and_then(params![self.name, now, after_seq, limit], read_stored)?;
        rows.collect()
    }

    /// Counts the receive and hides the message for the visibility timeout.
    fn deliver(
        &self,
        tx: &Connection,
        mut message: Stored,
        now: i64,
    ) -> Result<SqsMessage, DurableError> {
        message.receive_count = message.receive_count.saturating_add(1);
        let first_received = *message.first_received_ms.get_or_insert(now);
        tx.prepare_cached(
            "UPDATE messages SET receive_count = ?2, visible_at_ms = ?3, first_received_ms = ?4
             WHERE id = ?1",
        )?
        .execute(params![
            message.id,
            message.receive_count,
            now.saturating_add(millis(self.visibility_timeout)),
            first_received,
        ])?;
        Ok(to_sqs(&message, &self.name))
    }

    fn next_visible_ms(&self) -> Result<Option<i64>, DurableError> {
        self.durable.with(|conn| {
            Ok(conn
                .prepare_cached("SELECT MIN(visible_at_ms) FROM messages WHERE queue = ?1")?
                .query_row([&self.name], |row| row.get(0))?)
        })
    }

    fn count(&self, sql: &str, now: Option<i64>) -> Result<usize, DurableError> {
        let count: i64 = self.durable.with(|conn| {
            let mut statement = conn.prepare_cached(sql)?;
            Ok(match now {
                Some(now) => statement.query_row(params![self.name, now], |row| row.get(0))?,
                None => statement.query_row([&self.name], |row| row.get(0))?,
            })
        })?;
        Ok(usize::try_from(count).unwrap_or(0))
    }
}

/// The port a retried record's backoff goes through (`ChangeMessageVisibility` in AWS).
impl Visibility for DurableQueue {
    async fn delay(&self, receipt_handle: &str, delay: Duration) -> Result<(), String> {
        let (queue, handle) = (self.clone(), receipt_handle.to_owned());
        let changed = off_thread(move || queue.change_visibility(&handle, delay))
            .await
            .map_err(|e| e.to_string())?;
        if changed {
            Ok(())
        } else {
            Err(format!(
                "receipt handle {receipt_handle} is not the current delivery of a message on {}",
                self.name
            ))
        }
    }
}

/// Adds a message at the end of `queue`; answers its id.
pub(super) fn insert(
    conn: &Connection,
    queue: &str,
    body: &str,
    attributes: &[(String, String)],
    now: i64,
) -> Result<String, DurableError> {
    let id = uuid::Uuid::new_v4().to_string();
    conn.prepare_cached(
        "INSERT INTO messages (id, queue, seq, body, attributes, sent_at_ms, first_received_ms,
            receive_count, visible_at_ms)
         VALUES (?1, ?2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE queue = ?2),
            ?3, ?4, ?5, NULL, 0, ?5)",
    )?
    .execute(params![
        id,
        queue,
        body,
        encode_attributes(attributes)?,
        now
    ])?;
    Ok(id)
}

/// Moves a message to the end of queue `to` as a new message (a new id, so no receipt handle
/// or id of its earlier life reaches it), visible now, never received; its sent time is kept.
fn move_message(
    tx: &Connection,
    id: &str,
    to: &str,
    attributes: &[(String, String)],
    now: i64,
) -> Result<(), DurableError> {
    tx.prepare_cached(
        "UPDATE messages SET id = ?2, queue = ?3,
            seq = (SELECT COALESCE(MAX(seq), 0) + 1 FROM messages WHERE queue = ?3),
            attributes = ?4, receive_count = 0, first_received_ms = NULL, visible_at_ms = ?5
         WHERE id = ?1",
    )?
    .execute(params![
        id,
        uuid::Uuid::new_v4().to_string(),
        to,
        encode_attributes(attributes)?,
        now,
    ])?;
    Ok(())
}

/// Every message of `queue`, oldest first.
fn all_stored(conn: &Connection, queue: &str) -> Result<Vec<Stored>, DurableError> {
    let sql = format!("SELECT {STORED_COLUMNS} FROM messages WHERE queue = ?1 ORDER BY seq");
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement.query_and_then([queue], read_stored)?;
    rows.collect()
}

/// One row in `STORED_COLUMNS` order.
fn read_stored(row: &rusqlite::Row<'_>) -> Result<Stored, DurableError> {
    let id: String = row.get(0)?;
    let attributes = decode_attributes(&id, &row.get::<_, String>(3)?)?;
    Ok(Stored {
        id,
        seq: row.get(1)?,
        body: row.get(2)?,
        attributes,
        sent_at_ms: row.get(4)?,
        first_received_ms: row.get(5)?,
        receive_count: row.get(6)?,
    })
}

fn queued(message: Stored) -> Result<QueuedMessage, DurableError> {
    let sent_at = DateTime::from_timestamp_millis(message.sent_at_ms).ok_or_else(|| {
        DurableError::corrupt(
            format!("message {}", message.id),
            format!("sent_at_ms {} is out of range", message.sent_at_ms),
        )
    })?;
    Ok(QueuedMessage {
        id: message.id,
        body: message.body,
        receive_count: message.receive_count,
        attributes: message.attributes,
        sent_at,
    })
}

fn encode_attributes(attributes: &[(String, String)]) -> Result<String, DurableError> {
    serde_json::to_string(attributes).map_err(|e| DurableError::corrupt("message attributes", e))
}

fn decode_attributes(id: &str, text: &str) -> Result<Vec<(String, String)>, DurableError> {
    serde_json::from_str(text)
        .map_err(|e| DurableError::corrupt(format!("message {id}"), format!("attributes: {e}")))
}

/// `<id>:<receive count>` split; a bare message id has no count.
fn parse_handle(handle: &str) -> (&str, Option<u32>) {
    match handle.rsplit_once(':') {
        Some((id, count)) => match count.parse() {
            Ok(count) => (id, Some(count)),
            Err(_) => (handle, None),
        },
        None => (handle, None),
    }
}

/// The record Lambda's SQS event source would hand the consumer.
fn to_sqs(message: &Stored, queue: &str) -> SqsMessage {
    let mut m = SqsMessage::default();
    m.message_id = Some(message.id.clone());
    m.receipt_handle = Some(format!("{}:{}", message.id, message.receive_count));
    m.body = Some(message.body.clone());
    m.event_source = Some("aws:sqs".into());
    m.event_source_arn = Some(format!("arn:aws:sqs:local:000000000000:{queue}"));
    m.aws_region = Some("local".into());
    let first_received = message.first_received_ms.unwrap_or(message.sent_at_ms);
    for (name, value) in [
        ("ApproximateReceiveCount", message.receive_count.to_string()),
        ("SentTimestamp", message.sent_at_ms.to_string()),
        (
            "ApproximateFirstReceiveTimestamp",
            first_received.to_string(),
        ),
    ] {
        m.attributes.insert(name.into(), value);
    }
    for (name, value) in &message.attributes {
        let mut attribute = SqsMessageAttribute::default();
        attribute.string_value = Some(value.clone());
        attribute.data_type = Some("String".into());
        m.message_attributes.insert(name.clone(), attribute);
    }
    m
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::super::testing::{fresh, reopen};
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    fn queue(
        durable: &Arc<Durable>,
        name: &str,
        visibility_timeout: Duration,
    ) -> Arc<DurableQueue> {
        DurableQueue::new(durable, name, visibility_timeout, 5, None)
    }

    fn ids(messages: &[SqsMessage]) -> Vec<&str> {
        messages
            .iter()
            .map(|m| m.message_id.as_deref().unwrap())
            .collect()
    }

    fn bodies(messages: &[SqsMessage]) -> Vec<&str> {
        messages
            .iter()
            .map(|m| m.body.as_deref().unwrap())
            .collect()
    }

    fn handle(message: &SqsMessage) -> &str {
        message.receipt_handle.as_deref().unwrap()
    }

    #[test]
    fn received_messages_come_oldest_first_and_stay_invisible_until_deleted() {
        let (_dir, durable) = fresh();
        let q = queue(&durable, "q", LONG);
        for body in ["a", "b", "c"] {
            q.send(body.into()).unwrap();
        }
        let first = q.receive(2).unwrap();
        assert_eq!(bodies(&first), ["a", "b"]);
        assert_eq!(bodies(&q.receive(10).unwrap()), ["c"]);
        assert!(
            q.receive(10).unwrap().is_empty(),
            "invisible while in flight"
        );
        assert_eq!((q.len().unwrap(), q.in_flight().unwrap()), (3, 3));
        assert!(q.delete(handle(&first[0])).unwrap(), "by receipt handle");
        assert!(q.delete(ids(&first)[1]).unwrap(), "by message id");
        assert!(!q.delete(ids(&first)[1]).unwrap(), "already gone");
        assert_eq!(q.len().unwrap(), 1);
    }

    #[test]
    fn a_delivery_carries_the_sqs_record_fields_and_attributes() {
        let (_dir, durable) = fresh();
        let q = queue(&durable, "transform-queue", LONG);
        let before = now_ms();
        let id = q
            .send_with_attributes("a".into(), vec![("trace".into(), "t-1".into())])
            .unwrap();
        let message = q.receive(1).unwrap().remove(0);
        assert_eq!(message.message_id.as_deref(), Some(id.as_str()));
        assert_eq!(handle(&message), format!("{id}:1"));
        assert_eq!(message.event_source.as_deref(), Some("aws:sqs"));
        assert_eq!(
            message.event_source_arn.as_deref(),
            Some("arn:aws:sqs:local:000000000000:transform-queue")
        );
        let ms = |name: &str| message.attributes[name].parse::<i64>().unwrap();
        assert_eq!(message.attributes["ApproximateReceiveCount"], "1");
        assert!(ms("SentTimestamp") >= before);
        assert!(ms("ApproximateFirstReceiveTimestamp") >= ms("SentTimestamp"));
        let trace = &message.message_attributes["trace"];
        assert_eq!(trace.string_value.as_deref(), Some("t-1"));
    }

    #[tokio::test]
    async fn an_unacknowledged_message_comes_back_after_the_visibility_timeout() {
        let (_dir, durable) = fresh();
        let q = queue(&durable, "q", Duration::from_millis(20));
        q.send("a".into()).unwrap();
        let first = q.receive(10).unwrap();
        assert_eq!(first.len(), 1);
        tokio::time::sleep(Duration::from_millis(40)).await;
        let again = q.receive(10).unwrap();
        assert_eq!(ids(&again), ids(&first));
        assert_eq!(again[0].attributes["ApproximateReceiveCount"], "2");
        assert_eq!(handle(&again[0]), format!("{}:2", ids(&first)[0]));
        assert_eq!(
            again[0].attributes["ApproximateFirstReceiveTimestamp"],
            first[0].attributes["ApproximateFirstReceiveTimestamp"],
            "set on the first receive only"
        );
    }

    #[test]
    fn a_message_moves_to_its_dead_letter_queue_on_the_receive_after_its_last() {
        let (_dir, durable) = fresh();
        let dlq = queue(&durable, "dlq", LONG);
        let q = DurableQueue::new(&durable, "q", Duration::ZERO, 2, Some("dlq"));
        let attributes = vec![("trace".to_owned(), "t-1".to_owned())];
        let id = q
            .send_with_attributes("poison".into(), attributes.clone())
            .unwrap();
        for count in ["1", "2"] {
            let received = q.receive(10).unwrap();
            assert_eq!(received[0].attributes["ApproximateReceiveCount"], count);
        }
        assert!(q.receive(10).unwrap().is_empty());
        assert!(q.is_empty().unwrap());
        let moved = dlq.snapshot().unwrap();
        assert_eq!(moved.len(), 1);
        assert_eq!(
            (moved[0].body.as_str(), moved[0].receive_count),
            ("poison", 0)
        );
        assert_eq!(moved[0].attributes, attributes);
        assert_ne!(moved[0].id, id, "a stale id cannot reach it");
        assert!(!dlq.delete(&id).unwrap());
    }

    #[test]
    fn a_message_moved_to_the_dead_letter_queue_frees_its_place_in_the_batch() {
        let (_dir, durable) = fresh();
        let dlq = queue(&durable, "dlq", LONG);
        let q = DurableQueue::new(&durable, "q", Duration::ZERO, 1, Some("dlq"));
        q.send("poison".into()).unwrap();
        assert_eq!(bodies(&q.receive(1).unwrap()), ["poison"]);
        q.send("good".into()).unwrap();
        assert_eq!(bodies(&q.receive(1).unwrap()), ["good"]);
        assert_eq!(dlq.len().unwrap(), 1);
    }

    #[test]
    fn without_a_dead_letter_queue_a_message_is_delivered_again_and_again() {
        let (_dir, durable) = fresh();
        let q = DurableQueue::new(&durable, "q", Duration::ZERO, 1, None);
        q.send("a".into()).unwrap();
        for count in ["1", "2", "3"] {
            assert_eq!(
                q.receive(10).unwrap()[0].attributes["ApproximateReceiveCount"],
                count
            );
        }
    }

    #[test]
    fn change_visibility_with_a_stale_receipt_handle_does_nothing() {
        let (_dir, durable) = fresh();
        let q = queue(&durable, "q", LONG);
        q.send("a".into()).unwrap();
        let first = q.receive(1).unwrap();
        assert!(
            q.change_visibility(handle(&first[0]), Duration::ZERO)
                .unwrap()
        );
        let second = q.receive(1).unwrap();
        assert_eq!(ids(&second), ids(&first));
        assert!(
            !q.change_visibility(handle(&first[0]), Duration::ZERO)
                .unwrap()
        );
        assert!(
            !q.change_visibility(ids(&first)[0], Duration::ZERO).unwrap(),
            "no count"
        );
        assert!(
            q.receive(1).unwrap().is_empty(),
            "the second delivery is still hidden"
        );
        assert!(
            q.change_visibility(handle(&second[0]), Duration::ZERO)
                .unwrap()
        );
        assert_eq!(q.receive(1).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_delay_hides_the_delivery_for_that_long_and_refuses_a_stale_handle() {
        let (_dir, durable) = fresh();
        let q = queue(&durable, "q", LONG);
        q.send("a".into()).unwrap();
        let first = q.receive(1).unwrap();
        q.delay(handle(&first[0]), Duration::from_millis(20))
            .await
            .unwrap();
        assert!(q.receive(1).unwrap().is_empty());
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert_eq!(q.receive(1).unwrap().len(), 1);
        let stale = q.delay(handle(&first[0]), Duration::ZERO).await;
        assert!(stale.is_err());
    }

    #[test]
    fn redrive_moves_dead_letters_back_without_their_reason() {
        let (_dir, durable) = fresh();
        let source = queue(&durable, "q", LONG);
        let dlq = queue(&durable, "dlq", LONG);
        let letter = |body: &str| {
            let attributes = vec![
                ("fb-error-code".to_owned(), "odoo_validation".to_owned()),
                ("trace".to_owned(), "t-1".to_owned()),
            ];
            dlq.send_with_attributes(body.into(), attributes).unwrap()
        };
        let ids = [letter("a"), letter("b"), letter("c")];
        dlq.receive(1).unwrap();
        assert_eq!(dlq.redrive("q", Some(&ids[1..2])).unwrap(), 1);
        assert_eq!(dlq.redrive("q", Some(&["nope".to_owned()])).unwrap(), 0);
        assert_eq!(dlq.redrive("q", None).unwrap(), 2, "in flight ones too");
        assert!(dlq.is_empty().unwrap());
        let back = source.snapshot().unwrap();
        let order: Vec<_> = back.iter().map(|m| m.body.as_str()).collect();
        assert_eq!(order, ["b", "a", "c"]);
        for message in &back {
            assert_eq!(message.receive_count, 0);
            assert_eq!(message.attributes, [("trace".to_owned(), "t-1".to_owned())]);
        }
        assert_eq!(source.receive(10).unwrap().len(), 3, "visible at once");
    }

    #[test]
    fn purge_empties_one_queue_only() {
        let (_dir, durable) = fresh();
        let a = queue(&durable, "a", LONG);
        let b = queue(&durable, "b", LONG);
        a.send("1".into()).unwrap();
        a.send("2".into()).unwrap();
        b.send("3".into()).unwrap();
        assert_eq!(a.purge().unwrap(), 2);
        assert!(a.is_empty().unwrap());
        assert_eq!(b.len().unwrap(), 1);
    }

    #[test]
    fn queued_and_in_flight_messages_survive_a_reopen_and_in_flight_ones_are_visible_at_once() {
        let (dir, durable) = fresh();
        let q = queue(&durable, "q", LONG);
        q.send("waiting".into()).unwrap();
        q.send("in flight".into()).unwrap();
        q.send("done".into()).unwrap();
        let taken = q.receive(3).unwrap();
        q.delete(handle(&taken[2])).unwrap();
        q.change_visibility(handle(&taken[0]), Duration::ZERO)
            .unwrap();
        let sent_at = q.snapshot().unwrap()[1].sent_at;
        drop((q, durable));
        let durable = reopen(&dir);
        assert_eq!(durable.recovered().in_flight_messages, 1);
        let q = queue(&durable, "q", LONG);
        assert_eq!(q.in_flight().unwrap(), 0);
        assert_eq!(q.snapshot().unwrap()[1].sent_at, sent_at);
        let again = q.receive(10).unwrap();
        assert_eq!(bodies(&again), ["waiting", "in flight"]);
        assert_eq!(
            again[1].attributes["ApproximateReceiveCount"], "2",
            "count kept"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_receivers_never_get_the_same_message_twice_while_it_is_invisible() {
        let (_dir, durable) = fresh();
        let q = queue(&durable, "q", LONG);
        for n in 0..200 {
            q.send(n.to_string()).unwrap();
        }
        let receivers: Vec<_> = (0..8)
            .map(|_| {
                let q = q.clone();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    loop {
                        let batch = q.receive(3).unwrap();
                        if batch.is_empty() {
                            return got;
                        }
                        got.extend(batch.into_iter().filter_map(|m| m.message_id));
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for receiver in receivers {
            all.extend(receiver.await.unwrap());
        }
        let distinct: HashSet<_> = all.iter().collect();
        assert_eq!(all.len(), 200);
        assert_eq!(distinct.len(), 200);
    }

    #[tokio::test]
    async fn wait_returns_at_once_when_a_message_is_visible() {
        let (_dir, durable) = fresh();
        let q = queue(&durable, "q", LONG);
        q.send("a".into()).unwrap();
        let started = tokio::time::Instant::now();
        q.wait(Duration::from_secs(5)).await;
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn wait_on_an_empty_queue_is_bounded_by_max_wait() {
        let (_dir, durable) = fresh();
        let q = queue(&durable, "q", LONG);
        let started = tokio::time::Instant::now();
        q.wait(Duration::from_millis(30)).await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
        assert!(waited < Duration::from_secs(2), "{waited:?}");
    }

    #[tokio::test]
    async fn wait_ends_when_the_next_message_becomes_visible_again() {
        let (_dir, durable) = fresh();
        let q = queue(&durable, "q", Duration::from_millis(30));
        q.send("a".into()).unwrap();
        q.receive(1).unwrap();
        let started = tokio::time::Instant::now();
        q.wait(Duration::from_secs(5)).await;
        let waited = started.elapsed();
        assert!(waited < Duration::from_secs(2), "{waited:?}");
        assert_eq!(q.receive(1).unwrap().len(), 1);
    }

    #[tokio::test]
    async fn wait_is_woken_by_a_send_on_its_queue() {
        let (_dir, durable) = fresh();
        let q = queue(&durable, "q", LONG);
        let waiter = q.clone();
        let waiting = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            waiter.wait(Duration::from_secs(5)).await;
            started.elapsed()
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        queue(&durable, "other", LONG).send("x".into()).unwrap();
        q.send("a".into()).unwrap();
        let waited = waiting.await.unwrap();
        assert!(
            waited < Duration::from_secs(2),
            "woken, not timed out: {waited:?}"
        );
    }

    #[test]
    fn receipt_handles_split_into_id_and_receive_count() {
        let id = "0b7c6a54-8d1e-4f7b-9a51-2b7d8f0e1c3a";
        assert_eq!(parse_handle(&format!("{id}:3")), (id, Some(3)));
        assert_eq!(parse_handle(id), (id, None));
        assert_eq!(parse_handle("a:b"), ("a:b", None));
    }
}
