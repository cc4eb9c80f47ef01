//! The event bus port: publish events (EventBridge in AWS, in memory locally) and read the
//! EventBridge envelope a rule delivers to SQS.

pub mod memory;

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::failure::{Classify, FailureClass};

/// One event to publish. `detail` is JSON text, as EventBridge takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusEvent {
    pub source: String,
    pub detail_type: String,
    pub detail: String,
}

impl BusEvent {
    pub fn new<T: Serialize>(
        source: &str,
        detail_type: &str,
        detail: &T,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            source: source.to_owned(),
            detail_type: detail_type.to_owned(),
            detail: serde_json::to_string(detail)?,
        })
    }
}

#[derive(Debug, Error)]
pub enum BusError {
    /// The bus could not be reached or throttled us.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    /// Some entries were refused (EventBridge `FailedEntryCount` > 0) after retries.
    #[error("event bus refused {failed} of {total} entries: {reasons}")]
    Rejected {
        failed: usize,
        total: usize,
        reasons: String,
    },
    /// An entry can never be accepted (too large, malformed).
    #[error("event cannot be published: {0}")]
    Invalid(String),
}

impl Classify for BusError {
    fn class(&self) -> FailureClass {
        match self {
            BusError::Unavailable(_) | BusError::Rejected { .. } => FailureClass::Retryable,
            BusError::Invalid(_) => FailureClass::Permanent,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            BusError::Unavailable(_) => "bus_unavailable",
            BusError::Rejected { .. } => "bus_rejected",
            BusError::Invalid(_) => "bus_invalid_event",
        }
    }
}

/// Publishes events. All or nothing from the caller's view: `Ok` means every event was accepted.
pub trait EventBus: Send + Sync {
    fn publish(&self, events: &[BusEvent]) -> impl Future<Output = Result<(), BusError>> + Send;
}

impl<T: EventBus> EventBus for std::sync::Arc<T> {
    fn publish(&self, events: &[BusEvent]) -> impl Future<Output = Result<(), BusError>> + Send {
        (**self).publish(events)
    }
}

/// The envelope EventBridge wraps around `detail` when a rule delivers to SQS.
/// `account` and `region` are optional: moto leaves `account` out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    #[serde(default)]
    pub version: Option<String>,
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    #[serde(default)]
    pub account: Option<String>,
    pub time: DateTime<Utc>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    pub detail: T,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_without_account_parses() {
        let body = r#"{"version":"0","id":"e1","detail-type":"partner.webhook.received",
            "source":"freightbridge.ingress","time":"2026-11-27T09:00:00Z","region":"us-east-1",
            "resources":[],"detail":{"x":1}}"#;
        let env: Envelope<serde_json::Value> = serde_json::from_str(body).unwrap();
        assert_eq!(env.account, None);
        assert_eq!(env.detail["x"], 1);
        assert_eq!(env.detail_type, "partner.webhook.received");
    }
}
