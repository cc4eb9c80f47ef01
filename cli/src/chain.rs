//! The whole chain on one computer: the real ingress, transform and poster handlers, wired by
//! the embedded runtime (`durable`: the bus and its archive, SQS-like queues with DLQs, the
//! idempotency records, seen sets, latest milestones and the Odoo breaker, all in one SQLite
//! file under the state directory), with an HTTP listener that behaves like API Gateway for
//! `POST /webhooks/{partner}`. A 2xx from the listener means the delivery is committed to
//! disk; a restart resumes from the database, and `shutdown` drains what is in flight.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use canonical_transform::{SeenHistory, Transform};
use chrono::Utc;
use freightbridge::audit::{AuditedDeadLetters, Auditor};
use freightbridge::batch::{BatchConfig, RecordContext, Settlement, process_batch};
use freightbridge::breaker::BreakerConfig;
use freightbridge::bus::{BusError, BusEvent, EventBus};
use freightbridge::config::{ConfigError, PartnersFile, resolve_local};
use freightbridge::failure::FailureReason;
use freightbridge::idempotency::{Idempotency, Policy};
use freightbridge::ingress::Registry;
use freightbridge::odoo::{Finance, FinanceConfig, OdooPort};
use freightbridge::partners::Adapters;
use freightbridge::reconcile::ReconcileConfig;
use freightbridge::retry::RetryPolicy;
use freightbridge::{canonical, webhook};
use odoo_poster::Poster;
use reconciler::Reconciler;
use thiserror::Error;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use webhook_ingress::{Ingress, Reply};

use crate::durable::{
    BusRule, Durability, Durable, DurableAuditLog, DurableBus, DurableDeadLetters, DurableError,
    DurableQueue,
};

/// Requests larger than this are cut off by the listener itself, like API Gateway's 10 MB cap;
/// smaller ones reach the partner's own limit check.
const LISTENER_BODY_LIMIT: usize = 10 * 1024 * 1024;

/// Messages a local consumer receives at once. Lambda's SQS batches are 10; locally a larger
/// batch gives the shipment groups of one batch (`BatchConfig::group_by`) more room to run side
/// by side.
const RECEIVE_BATCH: usize = 100;

/// The queues' names in the database (and in `freightctl` reports).
pub const TRANSFORM_QUEUE: &str = "transform-queue";
pub const TRANSFORM_DLQ: &str = "transform-dlq";
pub const ODOO_QUEUE: &str = "odoo-queue";
pub const ODOO_DLQ: &str = "odoo-dlq";
pub const RECONCILE_QUEUE: &str = "reconcile-queue";
pub const RECONCILE_DLQ: &str = "reconcile-dlq";

/// Each dead-letter queue and the queue its letters came from.
pub const DEAD_LETTER_QUEUES: [(&str, &str); 3] = [
    (TRANSFORM_DLQ, TRANSFORM_QUEUE),
    (ODOO_DLQ, ODOO_QUEUE),
    (RECONCILE_DLQ, RECONCILE_QUEUE),
];

/// The SAM template's rules, routing the bus to the local queues.
pub fn bus_rules() -> Vec<BusRule> {
    vec![
        BusRule {
            name: "ingress-to-transform".into(),
            sources: vec![webhook::BUS_SOURCE.into()],
            detail_types: Some(vec![webhook::DETAIL_TYPE.into()]),
            queue: TRANSFORM_QUEUE.into(),
        },
        BusRule {
            name: "canonical-to-odoo".into(),
            // The reconciler publishes its outcomes (matched, disputed) under its own source;
            // `settled` is Odoo's own news, nothing for the poster to write.
            sources: vec![
                canonical::BUS_SOURCE.into(),
                canonical::RECONCILIATION_SOURCE.into(),
            ],
            detail_types: Some(
                canonical::EventBody::TYPES
                    .iter()
                    .filter(|t| **t != "freight_invoice.settled")
                    .map(|t| (*t).to_owned())
                    .collect(),
            ),
            queue: ODOO_QUEUE.into(),
        },
        BusRule {
            name: "canonical-to-reconciler".into(),
            // Not the reconciler's own outcomes: those go to the poster.
            sources: vec![canonical::BUS_SOURCE.into()],
            detail_types: Some(
                canonical::EventBody::TYPES
                    .iter()
                    .filter(|t| {
                        !matches!(
                            **t,
                            "freight_invoice.matched"
                                | "freight_invoice.disputed"
                                | "freight_invoice.settled"
                        )
                    })
                    .map(|t| (*t).to_owned())
                    .collect(),
            ),
            queue: RECONCILE_QUEUE.into(),
        },
    ]
}

#[derive(Debug, Clone)]
pub struct ChainConfig {
    pub partners: PartnersFile,
    /// Where the embedded database lives (`freightbridge.sqlite3`).
    pub state_dir: PathBuf,
    pub durability: Durability,
    /// A copy of every envelope put on the bus, one JSON object per line (the database's
    /// `archive` table is the record; this file is for reading along).
    pub event_log: Option<PathBuf>,
    /// How long a received message stays invisible (SQS visibility timeout).
    pub visibility_timeout: Duration,
    /// Receives before a message moves to its DLQ (SQS `maxReceiveCount`): a backstop, the
    /// retry budget decides first.
    pub max_receive_count: u32,
    /// How long one handler invocation may hold an idempotency key (the Lambda timeout).
    pub handler_timeout: Duration,
    /// Finance settings for the poster; without them finance events are dead-lettered.
    pub finance: Option<FinanceConfig>,
    /// Backoff between receives and how long a failing record is retried.
    pub retry: RetryPolicy,
    pub breaker: BreakerConfig,
    /// Records each consumer works on at once.
    pub concurrency: usize,
    /// Days the audit trail keeps a record.
    pub audit_ttl_days: u32,
    /// The Odoo login the poster writes as, named on its audit records.
    pub odoo_user: Option<String>,
    /// The reconciler's tolerances, allow-lists and rate cards (`events/reconcile.local.toml`).
    pub reconcile: ReconcileConfig,
    /// How often the state is swept of expired rows (`crate::sweeper`; also once at start).
    pub sweep_interval: Duration,
    /// How long archived envelopes are kept (`serve --archive-retention-days`); `None`: forever.
    pub archive_retention: Option<Duration>,
}

impl ChainConfig {
    pub fn new(partners: PartnersFile, state_dir: impl Into<PathBuf>) -> Self {
        Self {
            partners,
            state_dir: state_dir.into(),
            durability: Durability::Full,
            event_log: None,
            visibility_timeout: Duration::from_secs(30),
            max_receive_count: 100,
            handler_timeout: Duration::from_secs(30),
            finance: None,
            retry: RetryPolicy::default(),
            breaker: BreakerConfig::default(),
            concurrency: 8,
            audit_ttl_days: freightbridge::audit::DEFAULT_TTL_DAYS,
            odoo_user: None,
            reconcile: ReconcileConfig::default(),
            sweep_interval: Duration::from_secs(10 * 60),
            archive_retention: Some(Duration::from_secs(30 * 24 * 60 * 60)),
        }
    }
}

#[derive(Debug, Error)]
pub enum ChainError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    State(#[from] DurableError),
    #[error("event log {path}: {source}")]
    EventLog {
        path: String,
        source: std::io::Error,
    },
}

type LocalIngress = Ingress<Arc<Durable>, Arc<LoggedBus>>;

/// The durable bus, plus the optional JSON-lines copy of what it archives.
pub struct LoggedBus {
    pub bus: Arc<DurableBus>,
    log: Option<Mutex<EventLog>>,
}

/// The copy file and the archive position it has been written up to.
struct EventLog {
    file: File,
    through: i64,
}

impl EventBus for LoggedBus {
    async fn publish(&self, events: &[BusEvent]) -> Result<(), BusError> {
        self.bus.publish(events).await?;
        if let Some(log) = &self.log {
            // Best effort: the archive is committed, the file is only a copy to read along.
            let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
            if let Ok(archived) = self.bus.archive_after(log.through) {
                for event in archived {
                    let _ = writeln!(log.file, "{}", event.envelope);
                    log.through = event.seq;
                }
            }
        }
        Ok(())
    }
}

/// A running local chain. Dropping it stops the workers at once; `shutdown` drains first.
pub struct Chain<O: OdooPort + 'static> {
    pub state: Arc<Durable>,
    pub bus: Arc<DurableBus>,
    pub transform_queue: Arc<DurableQueue>,
    pub transform_dlq: Arc<DurableQueue>,
    pub odoo_queue: Arc<DurableQueue>,
    pub odoo_dlq: Arc<DurableQueue>,
    pub reconcile_queue: Arc<DurableQueue>,
    pub reconcile_dlq: Arc<DurableQueue>,
    pub poster: Arc<Poster<O, Arc<Durable>>>,
    /// The audit trail every stage writes.
    pub audit: Arc<DurableAuditLog>,
    /// What the background sweeper has removed so far.
    pub sweeps: Arc<crate::sweeper::Sweeps>,
    ingress: Arc<LocalIngress>,
    workers: Vec<JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl<O: OdooPort + 'static> Chain<O> {
    /// Open the state, wire the chain and start the queue consumers (the part Lambda's SQS
    /// event source does). Work left in flight by an earlier run is visible again at once.
    pub fn start(config: ChainConfig, odoo: O) -> Result<Self, ChainError> {
        let registry = Arc::new(Registry::build(&config.partners, resolve_local)?);
        let state = Durable::open(&config.state_dir, config.durability)?;
        let recovered = state.recovered();
        tracing::info!(
            state = %state.path().display(),
            ?recovered,
            "local chain state opened"
        );
        let bus = Arc::new(DurableBus::new(&state));
        let log = match &config.event_log {
            Some(path) => {
                let file = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|source| ChainError::EventLog {
                        path: path.display().to_string(),
                        source,
                    })?;
                // The copy continues where the archive stands: earlier runs are not repeated.
                let through = bus.archive()?.last().map_or(0, |e| e.seq);
                Some(Mutex::new(EventLog { file, through }))
            }
            None => None,
        };
        let logged = Arc::new(LoggedBus {
            bus: bus.clone(),
            log,
        });
        let queue = |name: &str, dlq: Option<&str>| {
            DurableQueue::new(
                &state,
                name,
                config.visibility_timeout,
                config.max_receive_count,
                dlq,
            )
        };
        let transform_dlq = queue(TRANSFORM_DLQ, None);
        let transform_queue = queue(TRANSFORM_QUEUE, Some(TRANSFORM_DLQ));
        let odoo_dlq = queue(ODOO_DLQ, None);
        let odoo_queue = queue(ODOO_QUEUE, Some(ODOO_DLQ));
        let reconcile_dlq = queue(RECONCILE_DLQ, None);
        let reconcile_queue = queue(RECONCILE_QUEUE, Some(RECONCILE_DLQ));

        for rule in bus_rules() {
            bus.add_rule(rule);
        }

        let audit = Arc::new(DurableAuditLog::new(
            &state,
            chrono::Duration::days(i64::from(config.audit_ttl_days)),
        ));
        let auditor = Auditor::new(audit.clone());
        let dead_letters = |dlq: &Arc<DurableQueue>| {
            AuditedDeadLetters::new(DurableDeadLetters(dlq.clone()), auditor.clone())
        };
        let idempotency = || Idempotency::new(state.clone(), Policy::default());
        let ingress = Arc::new(
            Ingress::new(registry, idempotency(), logged.clone()).with_audit(auditor.clone()),
        );
        let adapters = Arc::new(Adapters::from_partners(&config.partners)?);
        let transform = Arc::new(
            Transform::new(
                logged.clone(),
                adapters,
                dead_letters(&transform_dlq),
                SeenHistory {
                    store: state.clone(),
                    ttl: Policy::default().ttl,
                },
            )
            .with_audit(auditor.clone()),
        );
        let poster = Poster::new(odoo, idempotency())
            .with_breaker(config.breaker)
            .with_audit(auditor.clone(), config.odoo_user.clone())
            .with_odoo_notes(Arc::new(freightbridge::ledger::LedgerNotes(state.clone())));
        let poster = Arc::new(match config.finance.clone() {
            Some(finance) => poster.with_finance(Finance::new(finance)),
            None => poster,
        });

        let batch = |consumer: &str| BatchConfig {
            consumer: consumer.to_owned(),
            concurrency: config.concurrency,
            max_receive_count: config.max_receive_count,
            retry: config.retry,
            group_by: None,
        };
        let handler_timeout = chrono::Duration::from_std(config.handler_timeout)
            .unwrap_or_else(|_| chrono::Duration::seconds(30));
        let (stop, stopped) = watch::channel(false);
        let transform_worker = {
            let transform = transform.clone();
            spawn_consumer(
                transform_queue.clone(),
                dead_letters(&transform_dlq),
                batch("canonical-transform"),
                stopped.clone(),
                move |ctx| {
                    let transform = transform.clone();
                    async move { transform.handle_record(ctx).await }
                },
            )
        };
        let (sweeps, sweeper) = crate::sweeper::spawn(
            state.clone(),
            crate::sweeper::SweepConfig {
                interval: config.sweep_interval,
                archive_retention: config.archive_retention,
            },
            stopped.clone(),
        );
        let reconciler = Arc::new(
            Reconciler::new(
                state.clone(),
                logged.clone(),
                Arc::new(config.reconcile.clone()),
            )
            .with_audit(auditor.clone()),
        );
        let reconciler_worker = {
            let reconciler = reconciler.clone();
            spawn_consumer(
                reconcile_queue.clone(),
                dead_letters(&reconcile_dlq),
                batch(reconciler::CONSUMER).grouped_by(canonical::envelope_shipment),
                stopped.clone(),
                move |ctx| {
                    let reconciler = reconciler.clone();
                    async move { reconciler.handle_record(ctx).await }
                },
            )
        };
        let poster_worker = {
            let poster = poster.clone();
            spawn_consumer(
                odoo_queue.clone(),
                dead_letters(&odoo_dlq),
                batch("odoo-poster").grouped_by(canonical::envelope_shipment),
                stopped,
                move |ctx| {
                    let poster = poster.clone();
                    async move {
                        let now = Utc::now();
                        poster.handle_record(ctx, now, now + handler_timeout).await
                    }
                },
            )
        };

        Ok(Self {
            state,
            bus,
            transform_queue,
            transform_dlq,
            odoo_queue,
            odoo_dlq,
            reconcile_queue,
            reconcile_dlq,
            poster,
            audit,
            sweeps,
            ingress,
            workers: vec![transform_worker, reconciler_worker, poster_worker, sweeper],
            stop,
        })
    }

    /// The API Gateway stand-in: `POST /webhooks/{partner}`.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/webhooks/{partner}",
                post(receive).fallback(method_not_allowed),
            )
            .fallback(not_found)
            .layer(DefaultBodyLimit::max(LISTENER_BODY_LIMIT))
            .with_state(self.ingress.clone())
    }

    /// Serve the listener on `127.0.0.1:port` (0 = any free port) in the background, until
    /// `stop` resolves; requests already being answered are finished first.
    pub async fn listen_until(
        &self,
        port: u16,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let router = self.router();
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "listener stopped");
            }
        });
        Ok((addr, server))
    }

    /// Serve the listener until the chain is dropped or its process ends.
    pub async fn listen(&self, port: u16) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
        self.listen_until(port, std::future::pending()).await
    }

    /// Stop taking new batches and let the ones in flight finish, for at most `bound`. What is
    /// not finished stays in the database and is picked up by the next start.
    pub async fn shutdown(mut self, bound: Duration) -> bool {
        let _ = self.stop.send(true);
        let workers = std::mem::take(&mut self.workers);
        let drained = tokio::time::timeout(bound, futures::future::join_all(workers))
            .await
            .is_ok();
        if !drained {
            tracing::warn!(
                bound_ms = bound.as_millis() as u64,
                "in-flight work did not finish in time; it resumes on the next start"
            );
        }
        drained
    }

    /// Wait until both work queues are empty (everything applied or dead-lettered).
    pub async fn wait_drained(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let empty = |q: &DurableQueue| q.is_empty().unwrap_or(false);
            // In this order: each stage hands on before it lets go of its message.
            if empty(&self.transform_queue)
                && empty(&self.reconcile_queue)
                && empty(&self.odoo_queue)
            {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Canonical events published so far (this run and earlier ones), counted by type.
    pub fn canonical_counts(&self) -> BTreeMap<String, usize> {
        self.bus
            .counts_by_detail_type(canonical::BUS_SOURCE)
            .unwrap_or_default()
    }
}

impl<O: OdooPort + 'static> Drop for Chain<O> {
    fn drop(&mut self) {
        for worker in &self.workers {
            worker.abort();
        }
    }
}

/// The SQS event source mapping, locally: receive batches, run the handler, delete what
/// succeeded; a retried record's backoff is set on its message. Stops between batches once
/// `stopped` says so.
fn spawn_consumer<F, Fut>(
    queue: Arc<DurableQueue>,
    dead_letters: AuditedDeadLetters<DurableDeadLetters>,
    config: BatchConfig,
    mut stopped: watch::Receiver<bool>,
    handler: F,
) -> JoinHandle<()>
where
    F: Fn(RecordContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), FailureReason>> + Send + 'static,
{
    tokio::spawn(async move {
        while !*stopped.borrow() {
            let receiving = queue.clone();
            let records =
                match tokio::task::spawn_blocking(move || receiving.receive(RECEIVE_BATCH)).await {
                    Ok(Ok(records)) => records,
                    Ok(Err(error)) => {
                        tracing::error!(queue = queue.name(), %error, "receive failed");
                        Vec::new()
                    }
                    Err(join) => {
                        tracing::error!(queue = queue.name(), error = %join, "receive task failed");
                        Vec::new()
                    }
                };
            if records.is_empty() {
                tokio::select! {
                    _ = queue.wait(Duration::from_millis(200)) => {}
                    _ = stopped.changed() => {}
                }
                continue;
            }
            let receipts: BTreeMap<String, String> = records
                .iter()
                .filter_map(|r| Some((r.message_id.clone()?, r.receipt_handle.clone()?)))
                .collect();
            let settlement = Settlement {
                config: &config,
                dead_letters: &dead_letters,
                visibility: queue.as_ref(),
            };
            let report = process_batch(records, &settlement, &handler).await;
            let done: Vec<String> = report
                .outcomes
                .iter()
                .filter(|(_, outcome)| {
                    !matches!(outcome, freightbridge::batch::RecordOutcome::Retry { .. })
                })
                .filter_map(|(id, _)| receipts.get(id).cloned())
                .collect();
            let deleting = queue.clone();
            let deleted = tokio::task::spawn_blocking(move || deleting.delete_all(&done)).await;
            if let Ok(Err(error)) = deleted {
                // Not deleted: redelivered after its visibility, and the handlers' idempotency
                // makes the second run a no-op.
                tracing::error!(queue = queue.name(), %error, "delete failed");
            }
        }
    })
}

async fn receive(
    State(ingress): State<Arc<LocalIngress>>,
    partner: Result<Path<String>, PathRejection>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // The extractors' own refusals are plain text; the partner gets the JSON error shape.
    let Ok(Path(partner)) = partner else {
        return json_error(
            400,
            "invalid_partner_id",
            "the partner id in the path is not UTF-8 text",
        );
    };
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return json_error(
                413,
                "payload_too_large",
                format!("the body exceeds the listener's {LISTENER_BODY_LIMIT} bytes"),
            );
        }
        Err(rejection) => return json_error(400, "unreadable_body", rejection.body_text()),
    };
    let now = Utc::now();
    let reply = ingress
        .handle(
            &partner,
            &headers,
            query.as_deref(),
            &body,
            now,
            now + chrono::Duration::seconds(30),
        )
        .await;
    reply_response(reply)
}

async fn method_not_allowed() -> Response {
    let mut response = json_error(
        405,
        "method_not_allowed",
        "webhooks are delivered with POST /webhooks/{partner}",
    );
    response.headers_mut().insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static("POST"),
    );
    response
}

fn json_error(status: u16, code: &str, message: impl Into<String>) -> Response {
    reply_response(Reply {
        status,
        body: serde_json::json!({"error": code, "message": message.into()}),
        retry_after: None,
    })
}

async fn not_found() -> Response {
    json_error(404, "not_found", "use POST /webhooks/{partner}")
}

fn reply_response(reply: Reply) -> Response {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(reply.body)).into_response();
    if let Some(seconds) = reply.retry_after {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static(seconds),
        );
    }
    response
}
