//! The whole chain on one computer: the real ingress, transform and poster handlers, wired by
//! the in-memory bus, SQS-like local queues (with DLQs) and the in-memory idempotency store, with
//! an HTTP listener that behaves like API Gateway for `POST /webhooks/{partner}`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
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
use freightbridge::batch::{BatchConfig, RecordContext, Settlement, process_batch};
use freightbridge::bus::memory::{MemoryBus, Rule};
use freightbridge::config::{ConfigError, PartnersFile, resolve_local};
use freightbridge::failure::FailureReason;
use freightbridge::idempotency::memory::MemoryStore;
use freightbridge::idempotency::{Idempotency, Policy};
use freightbridge::ingress::Registry;
use freightbridge::odoo::{Finance, FinanceConfig, OdooPort};
use freightbridge::partners::Adapters;
use freightbridge::retry::RetryPolicy;
use freightbridge::seen::MemorySeen;
use freightbridge::{canonical, webhook};
use odoo_poster::Poster;
use tokio::task::JoinHandle;
use webhook_ingress::{Ingress, Reply};

use crate::queue::{LocalQueue, QueueDeadLetters};

/// Requests larger than this are cut off by the listener itself, like API Gateway's 10 MB cap;
/// smaller ones reach the partner's own limit check.
const LISTENER_BODY_LIMIT: usize = 10 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ChainConfig {
    pub partners: PartnersFile,
    pub event_log: Option<PathBuf>,
    /// How long a received message stays invisible (SQS visibility timeout).
    pub visibility_timeout: Duration,
    /// Receives before a message moves to its DLQ (SQS `maxReceiveCount`).
    pub max_receive_count: u32,
    /// How long one handler invocation may hold an idempotency key (the Lambda timeout).
    pub handler_timeout: Duration,
    /// Finance settings for the poster; without them finance events are dead-lettered.
    pub finance: Option<FinanceConfig>,
    /// Backoff between receives and how long a failing record is retried.
    pub retry: RetryPolicy,
}

impl ChainConfig {
    pub fn new(partners: PartnersFile) -> Self {
        Self {
            partners,
            event_log: None,
            visibility_timeout: Duration::from_secs(2),
            max_receive_count: 3,
            handler_timeout: Duration::from_secs(30),
            finance: None,
            retry: RetryPolicy::default(),
        }
    }
}

type LocalIngress = Ingress<Arc<MemoryStore>, Arc<MemoryBus>>;

/// A running local chain. Dropping it stops the workers.
pub struct Chain<O: OdooPort + 'static> {
    pub bus: Arc<MemoryBus>,
    pub store: Arc<MemoryStore>,
    pub transform_queue: Arc<LocalQueue>,
    pub transform_dlq: Arc<LocalQueue>,
    pub odoo_queue: Arc<LocalQueue>,
    pub odoo_dlq: Arc<LocalQueue>,
    pub poster: Arc<Poster<O, Arc<MemoryStore>>>,
    ingress: Arc<LocalIngress>,
    workers: Vec<JoinHandle<()>>,
}

impl<O: OdooPort + 'static> Chain<O> {
    /// Wire the chain and start the queue consumers (the part Lambda's SQS event source does).
    pub fn start(config: ChainConfig, odoo: O) -> Result<Self, ConfigError> {
        let registry = Arc::new(Registry::build(&config.partners, resolve_local)?);
        let bus = Arc::new(match &config.event_log {
            Some(path) => MemoryBus::with_event_log(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?,
            None => MemoryBus::new(),
        });
        let store = Arc::new(MemoryStore::new());
        let queue = |name: &str, dlq: Option<Arc<LocalQueue>>| {
            LocalQueue::new(
                name,
                config.visibility_timeout,
                config.max_receive_count,
                dlq,
            )
        };
        let transform_dlq = queue("transform-dlq", None);
        let transform_queue = queue("transform-queue", Some(transform_dlq.clone()));
        let odoo_dlq = queue("odoo-dlq", None);
        let odoo_queue = queue("odoo-queue", Some(odoo_dlq.clone()));

        // The SAM template's rules, in memory.
        bus.add_rule(rule(
            "ingress-to-transform",
            webhook::BUS_SOURCE,
            Some(vec![webhook::DETAIL_TYPE]),
            &transform_queue,
        ));
        let mut to_odoo = rule(
            "canonical-to-odoo",
            canonical::BUS_SOURCE,
            Some(canonical::EventBody::TYPES.to_vec()),
            &odoo_queue,
        );
        // The reconciler publishes its outcomes (matched, disputed) under its own source.
        to_odoo
            .sources
            .push(canonical::RECONCILIATION_SOURCE.to_owned());
        bus.add_rule(to_odoo);

        let idempotency = || Idempotency::new(store.clone(), Policy::default());
        let ingress = Arc::new(Ingress::new(registry, idempotency(), bus.clone()));
        let adapters = Arc::new(Adapters::from_partners(&config.partners)?);
        let transform = Arc::new(Transform::new(
            bus.clone(),
            adapters,
            QueueDeadLetters(transform_dlq.clone()),
            SeenHistory {
                store: MemorySeen::new(),
                ttl: Policy::default().ttl,
            },
        ));
        let poster = Poster::new(odoo, idempotency());
        let poster = Arc::new(match config.finance.clone() {
            Some(finance) => poster.with_finance(Finance::new(finance)),
            None => poster,
        });

        let batch = |consumer: &str| BatchConfig {
            consumer: consumer.to_owned(),
            concurrency: 8,
            max_receive_count: config.max_receive_count,
            retry: config.retry,
        };
        let handler_timeout = chrono::Duration::from_std(config.handler_timeout)
            .unwrap_or_else(|_| chrono::Duration::seconds(30));
        let transform_worker = {
            let transform = transform.clone();
            spawn_consumer(
                transform_queue.clone(),
                QueueDeadLetters(transform_dlq.clone()),
                batch("canonical-transform"),
                move |ctx| {
                    let transform = transform.clone();
                    async move { transform.handle_record(ctx).await }
                },
            )
        };
        let poster_worker = {
            let poster = poster.clone();
            spawn_consumer(
                odoo_queue.clone(),
                QueueDeadLetters(odoo_dlq.clone()),
                batch("odoo-poster"),
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
            bus,
            store,
            transform_queue,
            transform_dlq,
            odoo_queue,
            odoo_dlq,
            poster,
            ingress,
            workers: vec![transform_worker, poster_worker],
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

    /// Serve the listener on `127.0.0.1:port` (0 = any free port) in the background.
    pub async fn listen(&self, port: u16) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let addr = listener.local_addr()?;
        let router = self.router();
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "listener stopped");
            }
        });
        Ok((addr, server))
    }

    /// Wait until both work queues are empty (everything applied or dead-lettered).
    pub async fn wait_drained(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.transform_queue.is_empty() && self.odoo_queue.is_empty() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Canonical events published so far, counted by type.
    pub fn canonical_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for envelope in self.bus.published() {
            if envelope.source == canonical::BUS_SOURCE {
                *counts.entry(envelope.detail_type.clone()).or_default() += 1;
            }
        }
        counts
    }
}

impl<O: OdooPort + 'static> Drop for Chain<O> {
    fn drop(&mut self) {
        for worker in &self.workers {
            worker.abort();
        }
    }
}

fn rule(
    name: &str,
    source: &str,
    detail_types: Option<Vec<&str>>,
    queue: &Arc<LocalQueue>,
) -> Rule {
    let queue = queue.clone();
    Rule {
        name: name.to_owned(),
        sources: vec![source.to_owned()],
        detail_types: detail_types.map(|t| t.into_iter().map(str::to_owned).collect()),
        sink: Arc::new(move |body| queue.send(body)),
    }
}

/// The SQS event source mapping, locally: receive batches, run the handler, delete what succeeded.
fn spawn_consumer<F, Fut>(
    queue: Arc<LocalQueue>,
    dead_letters: QueueDeadLetters,
    config: BatchConfig,
    handler: F,
) -> JoinHandle<()>
where
    F: Fn(RecordContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), FailureReason>> + Send + 'static,
{
    tokio::spawn(async move {
        loop {
            let records = queue.receive(10);
            if records.is_empty() {
                queue.wait(Duration::from_millis(200)).await;
                continue;
            }
            let settlement = Settlement {
                config: &config,
                dead_letters: &dead_letters,
                visibility: queue.as_ref(),
            };
            let report = process_batch(records, &settlement, &handler).await;
            let failed: std::collections::HashSet<&str> = report
                .response
                .batch_item_failures
                .iter()
                .map(|f| f.item_identifier.as_str())
                .collect();
            for (message_id, _) in &report.outcomes {
                if !failed.contains(message_id.as_str()) {
                    queue.delete(message_id);
                }
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
