//! The durable event bus: EventBridge-style rules route each published event, in the envelope
//! EventBridge delivers, to durable queues, and every envelope is appended to `archive`. A
//! publish is one transaction, archive rows and queue messages together: when it returns `Ok`,
//! every event is on every queue it belongs to, and when it fails none is anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SecondsFormat, Utc};
use freightbridge::bus::memory::local_envelope;
use freightbridge::bus::{BusError, BusEvent, Envelope, EventBus};
use rusqlite::{Connection, params};
use serde_json::Value;

use super::{Durable, DurableError, immediate, lock, now_ms, queue};

/// An EventBridge-style rule: matches on `source` and, optionally, `detail-type`, and delivers
/// to the durable queue named `queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusRule {
    pub name: String,
    pub sources: Vec<String>,
    pub detail_types: Option<Vec<String>>,
    pub queue: String,
}

impl BusRule {
    pub fn matches(&self, event: &BusEvent) -> bool {
        self.matches_type(&event.source, &event.detail_type)
    }

    pub fn matches_type(&self, source: &str, detail_type: &str) -> bool {
        self.sources.iter().any(|s| s == source)
            && self
                .detail_types
                .as_ref()
                .is_none_or(|types| types.iter().any(|t| t == detail_type))
    }
}

/// One envelope of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedEvent {
    /// Its place in publishing order.
    pub seq: i64,
    pub id: String,
    pub source: String,
    pub detail_type: String,
    pub time: DateTime<Utc>,
    /// The envelope as JSON text, exactly as the queues received it.
    pub envelope: String,
}

/// The bus. Rules are wiring, set up by the chain at start; the archive and the queues are in
/// the database.
#[derive(Debug)]
pub struct DurableBus {
    durable: Arc<Durable>,
    rules: Mutex<Vec<BusRule>>,
}

/// An envelope ready to commit, with the queues its event is routed to.
struct Routed {
    id: String,
    source: String,
    detail_type: String,
    time: String,
    /// `time` in Unix milliseconds: the archive's age for retention.
    time_ms: i64,
    text: String,
    queues: Vec<String>,
}

impl DurableBus {
    pub fn new(durable: &Arc<Durable>) -> Self {
        Self {
            durable: durable.clone(),
            rules: Mutex::new(Vec::new()),
        }
    }

    pub fn add_rule(&self, rule: BusRule) {
        lock(&self.rules).push(rule);
    }

    /// Every archived envelope, in publishing order.
    pub fn archive(&self) -> Result<Vec<ArchivedEvent>, DurableError> {
        self.archive_after(0)
    }

    /// The archived envelopes after `seq` (0: all), in publishing order.
    pub fn archive_after(&self, seq: i64) -> Result<Vec<ArchivedEvent>, DurableError> {
        self.durable.with(|conn| read_archive(conn, seq))
    }

    /// Every envelope published so far, in order (as `MemoryBus::published`).
    pub fn published(&self) -> Result<Vec<Envelope<Value>>, DurableError> {
        self.archive()?
            .into_iter()
            .map(|event| {
                serde_json::from_str(&event.envelope).map_err(|e| {
                    DurableError::corrupt(format!("archived envelope {}", event.id), e)
                })
            })
            .collect()
    }

    /// Sends archived envelopes again, unchanged, to the queues their rules name now (a replay):
    /// one transaction, nothing archived again. Answers how many queue messages were sent.
    pub fn resend(&self, events: &[ArchivedEvent]) -> Result<usize, DurableError> {
        let routed: Vec<(String, Vec<String>)> = {
            let rules = lock(&self.rules);
            events
                .iter()
                .map(|event| {
                    let queues = rules
                        .iter()
                        .filter(|rule| rule.matches_type(&event.source, &event.detail_type))
                        .map(|rule| rule.queue.clone())
                        .collect();
                    (event.envelope.clone(), queues)
                })
                .collect()
        };
        let sent = self.durable.with(|conn| {
            let tx = immediate(conn)?;
            let now = now_ms();
            let mut sent = 0;
            for (text, queues) in &routed {
                for target in queues {
                    queue::insert(&tx, target, text, &[], now)?;
                    sent += 1;
                }
            }
            tx.commit()?;
            Ok(sent)
        })?;
        let woken: BTreeSet<&String> = routed.iter().flat_map(|(_, q)| q).collect();
        for queue in woken {
            self.durable.wake(queue);
        }
        Ok(sent)
    }

    /// How many envelopes from `source` were archived, by detail type.
    pub fn counts_by_detail_type(
        &self,
        source: &str,
    ) -> Result<BTreeMap<String, usize>, DurableError> {
        self.durable.with(|conn| {
            let mut statement = conn.prepare_cached(
                "SELECT detail_type, COUNT(*) FROM archive WHERE source = ?1 GROUP BY detail_type",
            )?;
            let rows = statement.query_map([source], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            rows.map(|row| {
                let (detail_type, count) = row?;
                Ok((detail_type, usize::try_from(count).unwrap_or(0)))
            })
            .collect()
        })
    }

    fn route(&self, event: &BusEvent) -> Result<Routed, BusError> {
        let envelope = local_envelope(event)?;
        let text =
            serde_json::to_string(&envelope).map_err(|e| BusError::Invalid(e.to_string()))?;
        let queues = lock(&self.rules)
            .iter()
            .filter(|rule| rule.matches(event))
            .map(|rule| rule.queue.clone())
            .collect();
        Ok(Routed {
            id: envelope.id,
            source: envelope.source,
            detail_type: envelope.detail_type,
            time: envelope.time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
            time_ms: envelope.time.timestamp_millis(),
            text,
            queues,
        })
    }
}

impl EventBus for DurableBus {
    async fn publish(&self, events: &[BusEvent]) -> Result<(), BusError> {
        let routed = events
            .iter()
            .map(|event| self.route(event))
            .collect::<Result<Vec<_>, _>>()?;
        let woken: BTreeSet<String> = routed.iter().flat_map(|r| r.queues.clone()).collect();
        self.durable
            .blocking(move |conn| commit(conn, &routed, now_ms()))
            .await?;
        for queue in &woken {
            self.durable.wake(queue);
        }
        Ok(())
    }
}

/// Archives every envelope and sends it to its queues, in one transaction.
fn commit(conn: &mut Connection, routed: &[Routed], now: i64) -> Result<(), DurableError> {
    let tx = immediate(conn)?;
    for event in routed {
        tx.prepare_cached(
            "INSERT INTO archive (id, source, detail_type, time, envelope, archived_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            event.id,
            event.source,
            event.detail_type,
            event.time,
            event.text,
            event.time_ms
        ])?;
        for target in &event.queues {
            queue::insert(&tx, target, &event.text, &[], now)?;
        }
    }
    tx.commit()?;
    Ok(())
}

fn read_archive(conn: &Connection, after: i64) -> Result<Vec<ArchivedEvent>, DurableError> {
    let mut statement = conn.prepare_cached(
        "SELECT seq, id, source, detail_type, time, envelope FROM archive WHERE seq > ?1 ORDER BY seq",
    )?;
    let rows = statement.query_and_then([after], |row| {
        let id: String = row.get(1)?;
        let time: String = row.get(4)?;
        let time = DateTime::parse_from_rfc3339(&time)
            .map_err(|e| DurableError::corrupt(format!("archived envelope {id}"), e))?
            .with_timezone(&Utc);
        Ok(ArchivedEvent {
            seq: row.get(0)?,
            source: row.get(2)?,
            detail_type: row.get(3)?,
            time,
            envelope: row.get(5)?,
            id,
        })
    })?;
    rows.collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::DurableQueue;
    use super::super::testing::{fresh, raw, reopen};
    use super::*;

    fn event(source: &str, detail_type: &str, n: u32) -> BusEvent {
        BusEvent {
            source: source.into(),
            detail_type: detail_type.into(),
            detail: format!(r#"{{"n":{n}}}"#),
        }
    }

    fn rule(name: &str, source: &str, detail_types: Option<&[&str]>, queue: &str) -> BusRule {
        BusRule {
            name: name.into(),
            sources: vec![source.into()],
            detail_types: detail_types.map(|t| t.iter().map(|s| (*s).to_owned()).collect()),
            queue: queue.into(),
        }
    }

    /// A bus with: delivered canonical events → `odoo`, every canonical event → `audit`, ingress
    /// events → `transform`.
    fn wired(durable: &Arc<Durable>) -> DurableBus {
        let bus = DurableBus::new(durable);
        bus.add_rule(rule("to-odoo", "canonical", Some(&["delivered"]), "odoo"));
        bus.add_rule(rule("to-audit", "canonical", None, "audit"));
        bus.add_rule(rule("to-transform", "ingress", None, "transform"));
        bus
    }

    fn queue(durable: &Arc<Durable>, name: &str) -> Arc<DurableQueue> {
        DurableQueue::new(durable, name, Duration::from_secs(30), 5, None)
    }

    fn bodies(queue: &DurableQueue) -> Vec<Value> {
        let snapshot = queue.snapshot().unwrap();
        snapshot
            .iter()
            .map(|m| serde_json::from_str::<Value>(&m.body).unwrap()["detail"].clone())
            .collect()
    }

    #[tokio::test]
    async fn publish_routes_to_matching_queues_only_and_archives_every_envelope() {
        let (_dir, durable) = fresh();
        let bus = wired(&durable);
        bus.publish(&[
            event("canonical", "delivered", 1),
            event("canonical", "status_changed", 2),
        ])
        .await
        .unwrap();
        let n = |v: u32| serde_json::json!({ "n": v });
        assert_eq!(bodies(&queue(&durable, "odoo")), vec![n(1)]);
        assert_eq!(bodies(&queue(&durable, "audit")), vec![n(1), n(2)]);
        assert!(queue(&durable, "transform").is_empty().unwrap());
        let archive = bus.archive().unwrap();
        assert_eq!(archive.len(), 2);
        assert!(archive[0].seq < archive[1].seq);
        let envelope: Envelope<Value> = serde_json::from_str(&archive[0].envelope).unwrap();
        assert_eq!(envelope.detail_type, "delivered");
        assert_eq!(envelope.source, "canonical");
        assert_eq!(envelope.account.as_deref(), Some("000000000000"));
        assert_eq!(envelope.id, archive[0].id);
        assert_eq!(envelope.time, archive[0].time);
        let odoo = queue(&durable, "odoo").snapshot().unwrap();
        assert_eq!(
            odoo[0].body, archive[0].envelope,
            "the queue gets the archived text"
        );
    }

    #[tokio::test]
    async fn a_publish_that_fails_part_way_leaves_nothing_anywhere() {
        let (_dir, durable) = fresh();
        let bus = wired(&durable);
        raw(
            &durable,
            "CREATE TEMP TRIGGER refuse_transform BEFORE INSERT ON main.messages
             WHEN NEW.queue = 'transform' BEGIN SELECT RAISE(ABORT, 'disk full'); END",
        );
        let error = bus
            .publish(&[event("canonical", "delivered", 1), event("ingress", "x", 2)])
            .await
            .unwrap_err();
        assert!(matches!(error, BusError::Unavailable(_)), "{error}");
        assert!(bus.archive().unwrap().is_empty());
        assert!(queue(&durable, "odoo").is_empty().unwrap());
        assert!(queue(&durable, "audit").is_empty().unwrap());
    }

    #[tokio::test]
    async fn an_event_whose_detail_is_not_json_refuses_the_whole_publish() {
        let (_dir, durable) = fresh();
        let bus = wired(&durable);
        let bad = BusEvent {
            detail: "{".into(),
            ..event("canonical", "delivered", 0)
        };
        let error = bus
            .publish(&[event("canonical", "delivered", 1), bad])
            .await
            .unwrap_err();
        assert!(matches!(error, BusError::Invalid(_)), "{error}");
        assert!(bus.published().unwrap().is_empty());
        assert!(queue(&durable, "odoo").is_empty().unwrap());
    }

    #[tokio::test]
    async fn the_archive_survives_a_reopen_and_counts_by_detail_type() {
        let (dir, durable) = fresh();
        wired(&durable)
            .publish(&[
                event("canonical", "delivered", 1),
                event("canonical", "status_changed", 2),
                event("canonical", "delivered", 3),
                event("ingress", "received", 4),
            ])
            .await
            .unwrap();
        drop(durable);
        let durable = reopen(&dir);
        let bus = DurableBus::new(&durable);
        let counts = bus.counts_by_detail_type("canonical").unwrap();
        assert_eq!(
            counts,
            BTreeMap::from([("delivered".into(), 2), ("status_changed".into(), 1)])
        );
        let published = bus.published().unwrap();
        let order: Vec<_> = published.iter().map(|e| e.detail["n"].clone()).collect();
        assert_eq!(order, [1, 2, 3, 4].map(|n| serde_json::json!(n)));
    }

    #[tokio::test]
    async fn a_publish_wakes_the_waiters_of_the_queues_it_reached() {
        let (_dir, durable) = fresh();
        let bus = wired(&durable);
        let odoo = queue(&durable, "odoo");
        let waiting = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            odoo.wait(Duration::from_secs(5)).await;
            started.elapsed()
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        bus.publish(&[event("canonical", "delivered", 1)])
            .await
            .unwrap();
        let waited = waiting.await.unwrap();
        assert!(
            waited < Duration::from_secs(2),
            "woken, not timed out: {waited:?}"
        );
    }
}
