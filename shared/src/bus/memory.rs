//! In-process event bus for the local chain and tests: routes each published event, wrapped in
//! the same envelope EventBridge delivers, to the subscribers whose rule matches, and appends it
//! to an optional event log (the local stand-in for the EventBridge archive).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use serde_json::Value;

use super::{BusError, BusEvent, Envelope, EventBus};

/// Where a matching event goes: receives the envelope as JSON text (an SQS body).
pub type Sink = Arc<dyn Fn(String) + Send + Sync>;

/// An EventBridge-style rule: matches on `source` and, optionally, `detail-type`.
pub struct Rule {
    pub name: String,
    pub sources: Vec<String>,
    pub detail_types: Option<Vec<String>>,
    pub sink: Sink,
}

impl Rule {
    fn matches(&self, event: &BusEvent) -> bool {
        self.sources.iter().any(|s| s == &event.source)
            && self
                .detail_types
                .as_ref()
                .is_none_or(|types| types.iter().any(|t| t == &event.detail_type))
    }
}

#[derive(Default)]
pub struct MemoryBus {
    rules: Mutex<Vec<Rule>>,
    log: Option<Mutex<File>>,
    published: Mutex<Vec<Envelope<Value>>>,
    unavailable: AtomicBool,
}

impl MemoryBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// Also append every published envelope, one JSON object per line, to `path`.
    pub fn with_event_log(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            log: Some(Mutex::new(file)),
            ..Self::default()
        })
    }

    pub fn add_rule(&self, rule: Rule) {
        lock(&self.rules).push(rule);
    }

    /// Every envelope published so far, in order.
    pub fn published(&self) -> Vec<Envelope<Value>> {
        lock(&self.published).clone()
    }

    /// Make the bus refuse publishes, as an EventBridge outage would.
    pub fn set_unavailable(&self, down: bool) {
        self.unavailable.store(down, Ordering::SeqCst);
    }
}

impl EventBus for MemoryBus {
    async fn publish(&self, events: &[BusEvent]) -> Result<(), BusError> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(BusError::Unavailable("local bus set unavailable".into()));
        }
        let envelopes = events
            .iter()
            .map(local_envelope)
            .collect::<Result<Vec<_>, _>>()?;
        for (event, envelope) in events.iter().zip(envelopes) {
            let text =
                serde_json::to_string(&envelope).map_err(|e| BusError::Invalid(e.to_string()))?;
            if let Some(log) = &self.log {
                let mut file = lock(log);
                writeln!(file, "{text}")
                    .map_err(|e| BusError::Unavailable(format!("event log: {e}")))?;
            }
            let sinks: Vec<Sink> = lock(&self.rules)
                .iter()
                .filter(|rule| rule.matches(event))
                .map(|rule| rule.sink.clone())
                .collect();
            for sink in sinks {
                sink(text.clone());
            }
            lock(&self.published).push(envelope);
        }
        Ok(())
    }
}

/// The envelope EventBridge wraps around an event's detail, as the local buses build it
/// (account `000000000000`, region `local`, a fresh id).
pub fn local_envelope(event: &BusEvent) -> Result<Envelope<Value>, BusError> {
    let detail: Value = serde_json::from_str(&event.detail)
        .map_err(|e| BusError::Invalid(format!("detail is not JSON: {e}")))?;
    Ok(Envelope {
        version: Some("0".into()),
        id: uuid::Uuid::new_v4().to_string(),
        detail_type: event.detail_type.clone(),
        source: event.source.clone(),
        account: Some("000000000000".into()),
        time: Utc::now(),
        region: Some("local".into()),
        resources: Vec::new(),
        detail,
    })
}

/// A poisoned lock only means another thread panicked mid-update of a plain list; keep going.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn routes_by_source_and_detail_type_and_logs() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("events.jsonl");
        let bus = MemoryBus::with_event_log(&log).unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink_got = got.clone();
        bus.add_rule(Rule {
            name: "odoo".into(),
            sources: vec!["freightbridge.canonical".into()],
            detail_types: Some(vec!["shipment.delivered".into()]),
            sink: Arc::new(move |body| sink_got.lock().unwrap().push(body)),
        });
        let hit = BusEvent {
            source: "freightbridge.canonical".into(),
            detail_type: "shipment.delivered".into(),
            detail: r#"{"n":1}"#.into(),
        };
        let miss = BusEvent {
            detail_type: "shipment.status_changed".into(),
            ..hit.clone()
        };
        bus.publish(&[hit, miss]).await.unwrap();
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 1);
        let env: Envelope<Value> = serde_json::from_str(&got[0]).unwrap();
        assert_eq!(env.detail["n"], 1);
        assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 2);
    }

    #[tokio::test]
    async fn unavailable_bus_refuses_and_delivers_nothing() {
        let bus = MemoryBus::new();
        bus.set_unavailable(true);
        let event = BusEvent {
            source: "s".into(),
            detail_type: "d".into(),
            detail: "{}".into(),
        };
        let err = bus.publish(&[event]).await.unwrap_err();
        assert!(matches!(err, BusError::Unavailable(_)));
        assert!(bus.published().is_empty());
    }
}
