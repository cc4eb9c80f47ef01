//! canonical-transform on Lambda: builds the EventBridge bus, the partners' adapters (from
//! `PARTNERS_FILE` or the SSM parameter), the SQS dead-letter sink, the seen scan histories
//! (in the idempotency table) and the audit trail (`AUDIT_TABLE`) once at cold start, then runs each SQS batch through the
//! transform, answering with a partial batch response.

use std::sync::Arc;

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use canonical_transform::{SeenHistory, Transform};
use freightbridge::audit::AuditedDeadLetters;
use freightbridge::aws::dynamodb::DynamoStore;
use freightbridge::aws::eventbridge::EventBridgeBus;
use freightbridge::aws::sqs::{SqsDeadLetters, SqsVisibility};
use freightbridge::aws::{sdk_config, ssm};
use freightbridge::batch::{BatchConfig, Settlement, process_batch};
use freightbridge::environment;
use freightbridge::observability::init_lambda;
use freightbridge::partners::Adapters;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

/// Records transformed at once: the event source's whole batch (BatchSize 10 in the template).
const CONCURRENCY: usize = 10;

/// Dead letters go to SQS and to the audit trail.
type DeadLetters = Arc<AuditedDeadLetters<SqsDeadLetters>>;

struct Function {
    transform: Transform<EventBridgeBus, DeadLetters, DynamoStore>,
    dead_letters: DeadLetters,
    /// The function's own queue: a retried record's backoff is set on it.
    visibility: SqsVisibility,
    batch: BatchConfig,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_lambda("canonical-transform");
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

async fn cold_start() -> Result<Function, Error> {
    // The environment first: a missing variable fails before any network call.
    let (table, policy) = (
        environment::required("IDEMPOTENCY_TABLE")?,
        environment::idempotency_policy()?,
    );
    let config = sdk_config().await;
    let auditor = environment::audit_from_env(&config)?;
    // One dead-letter sink: the batch helper's (failed records) and the transform's (bad rows).
    let dead_letters = Arc::new(AuditedDeadLetters::new(
        SqsDeadLetters::from_config(&config, environment::required("DLQ_URL")?),
        auditor.clone(),
    ));
    Ok(Function {
        transform: Transform::new(
            EventBridgeBus::from_config(&config, environment::required("EVENT_BUS_NAME")?),
            Arc::new(Adapters::from_partners(
                &ssm::load_partners_file(&config).await?,
            )?),
            dead_letters.clone(),
            // Seen scan histories live in the idempotency table, as long as its records.
            SeenHistory {
                store: DynamoStore::from_config(&config, table),
                ttl: policy.ttl,
            },
        )
        .with_audit(auditor),
        dead_letters,
        visibility: SqsVisibility::from_config(&config, environment::required("QUEUE_URL")?),
        batch: environment::batch_config("canonical-transform", CONCURRENCY)?,
    })
}

async fn handle(f: &Function, event: LambdaEvent<SqsEvent>) -> Result<SqsBatchResponse, Error> {
    let records = event.payload.records;
    let settlement = Settlement {
        config: &f.batch,
        dead_letters: &f.dead_letters,
        visibility: &f.visibility,
    };
    let report = process_batch(records, &settlement, |ctx| f.transform.handle_record(ctx)).await;
    Ok(report.response)
}
