//! reconciler on Lambda: the shipment ledger in DynamoDB (`LEDGER_TABLE`), the bus
//! (`EVENT_BUS_NAME`) and the reconciliation settings read once at cold start — from the SSM
//! parameter `RECONCILE_PARAMETER` names, else the TOML in `RECONCILE_CONFIG`, else the defaults
//! (exact amounts, no surcharges allowed, no rate card). Two modes (`RECONCILER_MODE`):
//!
//! - `queue` (the default): each SQS batch of canonical events through the reconciler, with a
//!   partial batch response; its dead-letter queue is `DLQ_URL`.
//! - `sweep`: each scheduled invocation (`{"sweep": ["findings", "settle"]}`; an EventBridge
//!   schedule in the template) runs the sweeps it names — the findings sweep, then the
//!   settlement sweep against Odoo (`ODOO_URL` & co., the key from `ODOO_API_KEY_SECRET_ARN`) —
//!   and answers their summaries. A failing sweep fails the invocation (the schedule retries it;
//!   what it published before is recorded and not published twice).

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use chrono::Utc;
use freightbridge::audit::AuditedDeadLetters;
use freightbridge::aws::eventbridge::EventBridgeBus;
use freightbridge::aws::ledger::DynamoLedger;
use freightbridge::aws::sqs::{SqsDeadLetters, SqsVisibility};
use freightbridge::aws::{sdk_config, ssm};
use freightbridge::batch::{BatchConfig, Settlement, process_batch};
use freightbridge::environment;
use freightbridge::observability::init_lambda;
use freightbridge::odoo::OdooClient;
use freightbridge::reconcile::ReconcileConfig;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use reconciler::{CONSUMER, Reconciler};
use serde::Deserialize;
use serde_json::Value;

/// Records reconciled at once. Events of one shipment racing each other are safe (the ledger's
/// conditional update), only slower.
const CONCURRENCY: usize = 10;

type LambdaReconciler = Reconciler<DynamoLedger, EventBridgeBus>;

struct Function {
    reconciler: LambdaReconciler,
    dead_letters: AuditedDeadLetters<Arc<SqsDeadLetters>>,
    visibility: SqsVisibility,
    batch: BatchConfig,
}

struct Sweeper {
    reconciler: LambdaReconciler,
    /// `None` without `ODOO_URL`: the settlement sweep is skipped with a warning.
    odoo: Option<OdooClient>,
}

/// What a scheduled invocation asks for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepRequest {
    sweep: Vec<SweepKind>,
    /// Report the findings without disputing overdue invoices.
    #[serde(default)]
    report_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum SweepKind {
    Findings,
    Settle,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_lambda("reconciler");
    let sweep_mode = match environment::optional("RECONCILER_MODE").as_deref() {
        None | Some("queue") => false,
        Some("sweep") => true,
        Some(other) => {
            tracing::error!(mode = other, "RECONCILER_MODE must be queue or sweep");
            std::process::exit(1);
        }
    };
    if sweep_mode {
        let sweeper = match sweep_cold_start().await {
            Ok(sweeper) => sweeper,
            Err(error) => {
                tracing::error!(%error, "cold start failed");
                std::process::exit(1);
            }
        };
        return run(service_fn(|event| sweep(&sweeper, event))).await;
    }
    let function = match cold_start().await {
        Ok(function) => function,
        Err(error) => {
            tracing::error!(%error, "cold start failed");
            std::process::exit(1);
        }
    };
    run(service_fn(|event| handle(&function, event))).await
}

async fn reconciler(config: &aws_config::SdkConfig) -> Result<LambdaReconciler, Error> {
    let table = environment::required("LEDGER_TABLE")?;
    let settings = match (
        environment::optional("RECONCILE_PARAMETER"),
        environment::optional("RECONCILE_CONFIG"),
    ) {
        (Some(name), _) => {
            let text = ssm::get_parameter(&aws_sdk_ssm_client(config), &name).await?;
            ReconcileConfig::from_toml(&text)?
        }
        (None, Some(text)) => ReconcileConfig::from_toml(&text)?,
        (None, None) => {
            tracing::warn!(
                "no RECONCILE_PARAMETER or RECONCILE_CONFIG: exact amounts, no surcharges, no rate card"
            );
            ReconcileConfig::default()
        }
    };
    let auditor = environment::audit_from_env(config)?;
    Ok(Reconciler::new(
        DynamoLedger::new(aws_sdk_dynamodb::Client::new(config), table),
        EventBridgeBus::from_config(config, environment::required("EVENT_BUS_NAME")?),
        Arc::new(settings),
    )
    .with_audit(auditor))
}

async fn sweep_cold_start() -> Result<Sweeper, Error> {
    let config = sdk_config().await;
    let odoo = environment::odoo_from_env(&config)
        .await?
        .map(|(odoo, _)| odoo);
    if odoo.is_none() {
        tracing::warn!("ODOO_URL is not set: the settlement sweep is skipped");
    }
    Ok(Sweeper {
        reconciler: reconciler(&config).await?,
        odoo,
    })
}

async fn cold_start() -> Result<Function, Error> {
    let config = sdk_config().await;
    let auditor = environment::audit_from_env(&config)?;
    let dead_letters = AuditedDeadLetters::new(
        Arc::new(SqsDeadLetters::from_config(
            &config,
            environment::required("DLQ_URL")?,
        )),
        auditor,
    );
    Ok(Function {
        reconciler: reconciler(&config).await?,
        dead_letters,
        visibility: SqsVisibility::from_config(&config, environment::required("QUEUE_URL")?),
        batch: environment::batch_config(CONSUMER, CONCURRENCY)?
            .grouped_by(freightbridge::canonical::envelope_shipment),
    })
}

fn aws_sdk_ssm_client(config: &aws_config::SdkConfig) -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(config)
}

async fn handle(f: &Function, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    let records = event.payload.records;
    let settlement = Settlement {
        config: &f.batch,
        dead_letters: &f.dead_letters,
        visibility: &f.visibility,
    };
    let report = process_batch(records, &settlement, |ctx| f.reconciler.handle_record(ctx)).await;
    Ok(report.response)
}

/// One scheduled invocation: the sweeps it names, in order, and their summaries.
async fn sweep(s: &Sweeper, event: LambdaEvent<Value>) -> Result<Value, Error> {
    let request: SweepRequest = serde_json::from_value(event.payload).map_err(|e| {
        format!(r#"a sweep invocation is {{"sweep": ["findings", "settle"]}}: {e}"#)
    })?;
    let now = Utc::now();
    let mut answer = serde_json::Map::new();
    for kind in &request.sweep {
        match kind {
            SweepKind::Findings => {
                let run = s
                    .reconciler
                    .sweep(now, !request.report_only, "reconcile-sweep")
                    .await
                    .map_err(|e| format!("findings sweep: {}: {}", e.code, e.message))?;
                answer.insert(
                    "findings".into(),
                    serde_json::json!({
                        "summary": run.summary,
                        "disputes_published": run.disputes_published,
                    }),
                );
            }
            SweepKind::Settle => {
                let Some(odoo) = &s.odoo else {
                    answer.insert("settle".into(), serde_json::json!("skipped: no ODOO_URL"));
                    continue;
                };
                let run = s
                    .reconciler
                    .settle(odoo, now, "reconcile-sweep")
                    .await
                    .map_err(|e| format!("settlement sweep: {}: {}", e.code, e.message))?;
                answer.insert("settle".into(), serde_json::to_value(&run)?);
            }
        }
    }
    Ok(Value::Object(answer))
}
