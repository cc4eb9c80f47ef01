//! webhook-ingress on Lambda: builds the DynamoDB store, the EventBridge bus, the audit trail
//! (`AUDIT_TABLE`) and the partner registry (from `PARTNERS_FILE`, else the SSM parameter
//! `PARTNERS_SSM_PARAMETER`, with every secret resolved) once at cold start, then serves API
//! Gateway HTTP API events. The Secrets
//! Manager resolver stays with the handler to re-read a partner's rotated secret.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use chrono::Utc;
use freightbridge::aws::dynamodb::DynamoStore;
use freightbridge::aws::eventbridge::EventBridgeBus;
use freightbridge::aws::secrets::SecretsResolver;
use freightbridge::aws::{sdk_config, ssm};
use freightbridge::environment;
use freightbridge::idempotency::Idempotency;
use freightbridge::observability::init_lambda;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use webhook_ingress::{Ingress, resolve_registry};

type AwsIngress = Ingress<DynamoStore, EventBridgeBus, SecretsResolver>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_lambda("webhook-ingress");
    let ingress = match cold_start().await {
        Ok(ingress) => ingress,
        Err(error) => {
            // One clear log line and a non-zero exit: Lambda reports Runtime.ExitError.
            tracing::error!(%error, "cold start failed");
            std::process::exit(1);
        }
    };
    run(service_fn(|event| handle(&ingress, event))).await
}

async fn cold_start() -> Result<AwsIngress, Error> {
    // The environment first: a missing variable fails before any network call.
    let (table, bus_name, policy) = (
        environment::required("IDEMPOTENCY_TABLE")?,
        environment::required("EVENT_BUS_NAME")?,
        environment::idempotency_policy()?,
    );
    let config = sdk_config().await;
    let auditor = environment::audit_from_env(&config)?;
    let file = ssm::load_partners_file(&config).await?;
    let secrets = SecretsResolver::from_config(&config);
    let registry = resolve_registry(&file, &secrets).await?;
    tracing::info!(partners = registry.len(), "partner registry loaded");
    Ok(Ingress::new(
        Arc::new(registry),
        Idempotency::new(DynamoStore::from_config(&config, table), policy),
        EventBridgeBus::from_config(&config, bus_name),
    )
    .with_refresher(secrets)
    .with_audit(auditor))
}

async fn handle(
    ingress: &AwsIngress,
    event: LambdaEvent<ApiGatewayV2httpRequest>,
) -> Result<ApiGatewayV2httpResponse, Error> {
    let now = Utc::now();
    let deadline =
        environment::deadline(event.context.deadline, now, chrono::Duration::seconds(10));
    Ok(ingress.handle_apigw(event.payload, now, deadline).await)
}
