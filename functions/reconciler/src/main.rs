//! reconciler on Lambda: the shipment ledger in DynamoDB (`LEDGER_TABLE`), the bus
//! (`EVENT_BUS_NAME`), the dead-letter queue (`DLQ_URL`) and the reconciliation settings read
//! once at cold start — from the SSM parameter `RECONCILE_PARAMETER` names, else the TOML in
//! `RECONCILE_CONFIG`, else the defaults (exact amounts, no surcharges allowed, no rate card) —
//! then each SQS batch of canonical events through the reconciler, with a partial batch response.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use freightbridge::audit::AuditedDeadLetters;
use freightbridge::aws::eventbridge::EventBridgeBus;
use freightbridge::aws::ledger::DynamoLedger;
use freightbridge::aws::sqs::{SqsDeadLetters, SqsVisibility};
use freightbridge::aws::{sdk_config, ssm};
use freightbridge::batch::{BatchConfig, Settlement, process_batch};
use freightbridge::environment;
use freightbridge::observability::init_json;
use freightbridge::reconcile::ReconcileConfig;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use reconciler::{CONSUMER, Reconciler};

/// Records reconciled at once. Events of one shipment racing each other are safe (the ledger's
/// conditional update), only slower.
const CONCURRENCY: usize = 10;

struct Function {
    reconciler: Reconciler<DynamoLedger, EventBridgeBus>,
    dead_letters: AuditedDeadLetters<Arc<SqsDeadLetters>>,
    visibility: SqsVisibility,
    batch: BatchConfig,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_json();
    let function = match cold_start().await {
        Ok(function) => function,
        Err(error) => {
            tracing::error!(%error, "cold start failed");
            std::process::exit(1);
        }
    };
    run(service_fn(|event| handle(&function, event))).await
}

async fn cold_start() -> Result<Function, Error> {
    let table = environment::required("LEDGER_TABLE")?;
    let config = sdk_config().await;
    let settings = match (
        environment::optional("RECONCILE_PARAMETER"),
        environment::optional("RECONCILE_CONFIG"),
    ) {
        (Some(name), _) => {
            let text = ssm::get_parameter(&aws_sdk_ssm_client(&config), &name).await?;
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
    let auditor = environment::audit_from_env(&config)?;
    let dead_letters = AuditedDeadLetters::new(
        Arc::new(SqsDeadLetters::from_config(
            &config,
            environment::required("DLQ_URL")?,
        )),
        auditor.clone(),
    );
    Ok(Function {
        reconciler: Reconciler::new(
            DynamoLedger::new(aws_sdk_dynamodb::Client::new(&config), table),
            EventBridgeBus::from_config(&config, environment::required("EVENT_BUS_NAME")?),
            Arc::new(settings),
        )
        .with_audit(auditor),
        dead_letters,
        visibility: SqsVisibility::from_config(&config, environment::required("QUEUE_URL")?),
        batch: environment::batch_config(CONSUMER, CONCURRENCY)?,
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
