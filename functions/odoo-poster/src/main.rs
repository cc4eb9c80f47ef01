//! odoo-poster on Lambda: builds the DynamoDB store, the SQS dead-letter sink, the audit trail
//! (`AUDIT_TABLE`) and the Odoo client (API key read from Secrets Manager; no `ODOO_URL` means
//! dry-run to stdout) once at cold start, then applies each SQS batch, answering with a partial batch response.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use chrono::Utc;
use freightbridge::audit::AuditedDeadLetters;
use freightbridge::aws::dynamodb::DynamoStore;
use freightbridge::aws::ledger::DynamoLedger;
use freightbridge::aws::sqs::{SqsDeadLetters, SqsVisibility};
use freightbridge::aws::{sdk_config, ssm};
use freightbridge::batch::{BatchConfig, Settlement, process_batch};
use freightbridge::environment;
use freightbridge::idempotency::Idempotency;
use freightbridge::ledger::LedgerNotes;
use freightbridge::observability::init_lambda;
use freightbridge::odoo::{DryRunJournal, Finance, FinanceConfig, OdooClient};
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use odoo_poster::Poster;

/// Records applied at once: the event source's whole batch (BatchSize 5 in the template); the
/// template's MaximumConcurrency caps how many batches reach Odoo together.
const CONCURRENCY: usize = 5;

struct Function {
    poster: Poster<OdooClient, DynamoStore>,
    /// Dead letters go to SQS and to the audit trail.
    dead_letters: AuditedDeadLetters<SqsDeadLetters>,
    /// The function's own queue: a retried record's backoff is set on it.
    visibility: SqsVisibility,
    batch: BatchConfig,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_lambda("odoo-poster");
    let function = match cold_start().await {
        Ok(function) => function,
        Err(error) => {
            // One clear log line and a non-zero exit: Lambda reports Runtime.ExitError.
            tracing::error!(%error, "cold start failed");
            std::process::exit(1);
        }
    };
    run(service_fn(|event| handle(&function, event))).await
}

/// Finance settings from `ODOO_FINANCE_CONFIG` (a path) or the SSM parameter named by
/// `ODOO_FINANCE_SSM_PARAMETER`. Without either, finance events are refused with
/// `finance_not_configured` (they wait in the DLQ) and milestones still get their notes.
async fn with_finance(
    poster: Poster<OdooClient, DynamoStore>,
    config: &aws_config::SdkConfig,
) -> Result<Poster<OdooClient, DynamoStore>, Error> {
    let finance = match FinanceConfig::from_env()? {
        Some(finance) => Some(finance),
        None => match std::env::var("ODOO_FINANCE_SSM_PARAMETER")
            .ok()
            .filter(|n| !n.trim().is_empty())
        {
            Some(name) => match ssm::get_parameter(&ssm::Client::new(config), &name).await {
                Ok(text) => Some(
                    FinanceConfig::parse(&text)
                        .map_err(|e| format!("SSM parameter {name}: {e}"))?,
                ),
                // Not created yet (a fresh stack): run without finance rather than not at all.
                Err(e) if e.detail.starts_with("ParameterNotFound") => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        },
    };
    Ok(match finance {
        Some(finance) => poster.with_finance(Finance::new(finance)),
        None => {
            tracing::warn!("no finance configuration: finance events will be refused");
            poster
        }
    })
}

async fn cold_start() -> Result<Function, Error> {
    let config = sdk_config().await;
    let store = DynamoStore::from_config(&config, environment::required("IDEMPOTENCY_TABLE")?);
    let auditor = environment::audit_from_env(&config)?;
    let (odoo, odoo_user) = odoo(&config).await?;
    Ok(Function {
        poster: with_finance(
            Poster::new(
                odoo,
                Idempotency::new(store, environment::idempotency_policy()?),
            )
            .with_breaker(environment::breaker_config()?)
            .with_audit(auditor.clone(), odoo_user)
            .with_odoo_notes(Arc::new(LedgerNotes(DynamoLedger::from_config(
                &config,
                environment::required("LEDGER_TABLE")?,
            )))),
            &config,
        )
        .await?,
        dead_letters: AuditedDeadLetters::new(
            SqsDeadLetters::from_config(&config, environment::required("DLQ_URL")?),
            auditor,
        ),
        visibility: SqsVisibility::from_config(&config, environment::required("QUEUE_URL")?),
        batch: environment::batch_config("odoo-poster", CONCURRENCY)?
            .grouped_by(freightbridge::canonical::envelope_shipment),
    })
}

async fn handle(f: &Function, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    let now = Utc::now();
    let lock_until =
        environment::deadline(event.context.deadline, now, chrono::Duration::seconds(60));
    let records = event.payload.records;
    let settlement = Settlement {
        config: &f.batch,
        dead_letters: &f.dead_letters,
        visibility: &f.visibility,
    };
    let report = process_batch(records, &settlement, |ctx| {
        f.poster.handle_record(ctx, now, lock_until)
    })
    .await;
    Ok(report.response)
}

/// Odoo from the environment (`environment::odoo_from_env`); without `ODOO_URL`, a dry-run
/// journal on stdout.
async fn odoo(config: &aws_config::SdkConfig) -> Result<(OdooClient, Option<String>), Error> {
    match environment::odoo_from_env(config).await? {
        Some(odoo) => Ok(odoo),
        None => {
            tracing::warn!(
                "ODOO_URL is not set: dry-run, the Odoo calls are written to stdout and nothing reaches Odoo"
            );
            Ok((OdooClient::dry_run(DryRunJournal::stdout()), None))
        }
    }
}
