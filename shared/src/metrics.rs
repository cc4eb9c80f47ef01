//! Business and health metrics as CloudWatch Embedded Metric Format: one JSON object per line
//! on stdout, which CloudWatch Logs turns into metrics in the namespace `METRICS_NAMESPACE`
//! (default `freightbridge`). No API call on the hot path, no permission beyond the function's
//! log group.
//!
//! Every metric has the dimension `Function` and at most two more, all of bounded cardinality:
//! a registered partner's id (never a path a sender chose), an event type, a reason code, a
//! carrier as configured. Nothing personal and no secret is ever a dimension or a property.
//!
//! Metrics are off until a Lambda `main` calls [`init_stdout`]; tests read what was emitted with
//! [`capture`].

use std::io::Write as _;
use std::sync::{Mutex, OnceLock};

use chrono::Utc;
use serde_json::{Map, Value, json};

/// The environment variable naming the namespace.
pub const NAMESPACE_ENV: &str = "METRICS_NAMESPACE";
const DEFAULT_NAMESPACE: &str = "freightbridge";

/// The metric names, one place for the template's alarms and dashboard to match.
pub mod name {
    /// Webhooks answered 202 (dimensions: Partner).
    pub const WEBHOOK_ACCEPTED: &str = "WebhookAccepted";
    /// Webhooks answered 200 as a duplicate delivery (Partner).
    pub const WEBHOOK_DUPLICATE: &str = "WebhookDuplicate";
    /// Webhooks refused (Partner, Reason); `Reason` `bad_signature` is the signature alarm's.
    pub const WEBHOOK_REJECTED: &str = "WebhookRejected";
    /// Canonical events published by the transform (EventType).
    pub const EVENTS_PUBLISHED: &str = "EventsPublished";
    /// Events the poster applied to Odoo (EventType), and how long the Odoo work took.
    pub const ODOO_APPLIED: &str = "OdooApplied";
    pub const ODOO_LATENCY: &str = "OdooLatency";
    /// Events the poster found applied before (EventType).
    pub const ODOO_DUPLICATE: &str = "OdooDuplicate";
    /// Attempts that failed and will be retried (Reason).
    pub const RETRIES: &str = "Retries";
    /// Records sent to a dead-letter queue (Reason).
    pub const DEAD_LETTERED: &str = "DeadLettered";
    /// The Odoo breaker opened (1) or closed (1) — `BreakerOpened` is the breaker alarm's.
    pub const BREAKER_OPENED: &str = "BreakerOpened";
    pub const BREAKER_CLOSED: &str = "BreakerClosed";
    /// Reconciliation outcomes (Outcome, Carrier), and the invoiced amount a dispute holds back
    /// (Carrier, Currency).
    pub const RECONCILED: &str = "Reconciled";
    pub const AMOUNT_AT_STAKE: &str = "AmountAtStake";
    /// What a sweep found (Finding, Carrier): uninvoiced deliveries, invoices without a POD, …
    pub const SWEEP_FINDINGS: &str = "SweepFindings";
}

/// A metric's unit, as CloudWatch names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Count,
    Milliseconds,
    /// A plain number (an amount of money, whose currency is a dimension).
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
            Unit::None => "None",
        }
    }
}

/// Dimensions a roll-up leaves out, so alarms can watch a metric across every partner or
/// carrier (an alarm needs the exact dimension set; a dashboard can `SEARCH`).
const ROLLED_UP: [&str; 2] = ["Partner", "Carrier"];

/// One EMF document: `values` under `dimensions` (plus `Function`), at `timestamp_ms`; when
/// the dimensions name a partner or carrier, also under the same set without them.
pub fn document(
    namespace: &str,
    function: &str,
    timestamp_ms: i64,
    dimensions: &[(&str, &str)],
    values: &[(&str, f64, Unit)],
) -> Value {
    let mut root = Map::new();
    let mut names: Vec<&str> = vec!["Function"];
    root.insert("Function".into(), Value::from(function));
    for (dimension, value) in dimensions {
        names.push(dimension);
        root.insert((*dimension).to_owned(), Value::from(*value));
    }
    let metrics: Vec<Value> = values
        .iter()
        .map(|(metric, _, unit)| json!({"Name": metric, "Unit": unit.as_str()}))
        .collect();
    for (metric, value, _) in values {
        root.insert((*metric).to_owned(), json!(value));
    }
    let rolled: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !ROLLED_UP.contains(n))
        .collect();
    let sets = if rolled.len() < names.len() {
        json!([names, rolled])
    } else {
        json!([names])
    };
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": sets,
                "Metrics": metrics,
            }],
        }),
    );
    Value::Object(root)
}

enum Sink {
    Stdout,
    Capture(Mutex<Vec<Value>>),
}

struct Emitter {
    namespace: String,
    function: String,
    sink: Sink,
}

static EMITTER: OnceLock<Emitter> = OnceLock::new();

/// Metrics on stdout for the Lambda function `function` (the `Function` dimension). Once per
/// process; later calls change nothing.
pub fn init_stdout(function: &str) {
    let _ = EMITTER.set(Emitter {
        namespace: namespace(),
        function: function.to_owned(),
        sink: Sink::Stdout,
    });
}

/// Keeps what is emitted in memory instead, for a test process; answers what was emitted so far
/// (every call). Panics if metrics already go to stdout.
pub fn capture(function: &str) -> Vec<Value> {
    let emitter = EMITTER.get_or_init(|| Emitter {
        namespace: namespace(),
        function: function.to_owned(),
        sink: Sink::Capture(Mutex::new(Vec::new())),
    });
    match &emitter.sink {
        Sink::Capture(kept) => kept.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        Sink::Stdout => panic!("metrics go to stdout in this process"),
    }
}

fn namespace() -> String {
    std::env::var(NAMESPACE_ENV)
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

/// Emits `values` under `dimensions`; nothing when metrics are off.
pub fn emit(dimensions: &[(&str, &str)], values: &[(&str, f64, Unit)]) {
    let Some(emitter) = EMITTER.get() else {
        return;
    };
    let doc = document(
        &emitter.namespace,
        &emitter.function,
        Utc::now().timestamp_millis(),
        dimensions,
        values,
    );
    match &emitter.sink {
        Sink::Stdout => {
            // One write of one line under the lock: never interleaved with a log line.
            let mut line = doc.to_string();
            line.push('\n');
            let _ = std::io::stdout().lock().write_all(line.as_bytes());
        }
        Sink::Capture(kept) => kept.lock().unwrap_or_else(|p| p.into_inner()).push(doc),
    }
}

/// Counts one occurrence of `metric` under `dimensions`.
pub fn count(metric: &str, dimensions: &[(&str, &str)]) {
    emit(dimensions, &[(metric, 1.0, Unit::Count)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_declares_its_metrics_and_dimensions_as_emf_wants_them() {
        let doc = document(
            "freightbridge",
            "webhook-ingress",
            1_764_000_000_000,
            &[("Partner", "easypost"), ("Reason", "bad_signature")],
            &[(name::WEBHOOK_REJECTED, 1.0, Unit::Count)],
        );
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(doc["_aws"]["Timestamp"], 1_764_000_000_000_i64);
        assert_eq!(directive["Namespace"], "freightbridge");
        assert_eq!(
            directive["Dimensions"],
            json!([["Function", "Partner", "Reason"], ["Function", "Reason"]]),
            "and rolled up across partners, for the signature alarm"
        );
        assert_eq!(
            directive["Metrics"],
            json!([{"Name": "WebhookRejected", "Unit": "Count"}])
        );
        // Every dimension and metric named in the directive is a member of the root.
        for key in ["Function", "Partner", "Reason", "WebhookRejected"] {
            assert!(doc.get(key).is_some(), "{key} missing: {doc}");
        }
        assert_eq!(doc["Partner"], "easypost");
        assert_eq!(doc["WebhookRejected"], 1.0);
    }

    /// Every freightbridge metric the template's alarms and dashboard name is one the code
    /// emits (a renamed metric would leave an alarm that never fires).
    #[test]
    fn the_templates_alarms_and_dashboard_watch_metrics_that_exist() {
        const TEMPLATE: &str = include_str!("../../infra/template.yaml");
        let known = [
            name::WEBHOOK_ACCEPTED,
            name::WEBHOOK_DUPLICATE,
            name::WEBHOOK_REJECTED,
            name::EVENTS_PUBLISHED,
            name::ODOO_APPLIED,
            name::ODOO_LATENCY,
            name::ODOO_DUPLICATE,
            name::RETRIES,
            name::DEAD_LETTERED,
            name::BREAKER_OPENED,
            name::BREAKER_CLOSED,
            name::RECONCILED,
            name::AMOUNT_AT_STAKE,
            name::SWEEP_FINDINGS,
        ];
        let mut named = Vec::new();
        let lines: Vec<&str> = TEMPLATE.lines().collect();
        for (at, line) in lines.iter().enumerate() {
            if line.trim() == "Namespace: freightbridge"
                && let Some(metric) = lines
                    .get(at + 1)
                    .and_then(|l| l.trim().strip_prefix("MetricName: "))
            {
                named.push(metric.trim().to_owned());
            }
            for part in line.split("MetricName=\\\"").skip(1) {
                named.push(part.split('\\').next().unwrap_or_default().to_owned());
            }
            if let Some(rest) = line.split("[\"freightbridge\", \"").nth(1) {
                named.push(rest.split('"').next().unwrap_or_default().to_owned());
            }
        }
        assert!(named.len() >= 8, "found only {named:?}");
        for metric in &named {
            assert!(known.contains(&metric.as_str()), "{metric} is not emitted");
        }
    }

    #[test]
    fn several_values_share_one_document() {
        let doc = document(
            "ns",
            "odoo-poster",
            0,
            &[("EventType", "shipment.delivered")],
            &[
                (name::ODOO_APPLIED, 1.0, Unit::Count),
                (name::ODOO_LATENCY, 182.5, Unit::Milliseconds),
            ],
        );
        let metrics = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(metrics, 2);
        assert_eq!(doc["OdooLatency"], 182.5);
        assert_eq!(
            doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Function", "EventType"]]),
            "nothing to roll up"
        );
    }
}
