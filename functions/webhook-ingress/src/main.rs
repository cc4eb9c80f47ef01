//! webhook-ingress on Lambda: builds the DynamoDB store, the EventBridge bus and the partner
//! registry (from `PARTNERS_FILE`, else the SSM parameter `PARTNERS_SSM_PARAMETER`, with every
//! secret resolved) once at cold start, then serves API Gateway HTTP API events.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use chrono::Utc;
use freightbridge::aws::dynamodb::DynamoStore;
use freightbridge::aws::eventbridge::EventBridgeBus;
use freightbridge::aws::secrets::SecretsResolver;
use freightbridge::aws::{sdk_config, ssm};
use freightbridge::config::{ConfigError, Secret, SecretRef};
use freightbridge::environment;
use freightbridge::idempotency::Idempotency;
use freightbridge::ingress::Registry;
use freightbridge::observability::init_json;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use webhook_ingress::Ingress;

type AwsIngress = Ingress<DynamoStore, EventBridgeBus>;

#[tokio::main]
async fn main() -> Result<(), Error> {
    init_json();
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
    let registry = load_registry(&config).await?;
    tracing::info!(partners = registry.len(), "partner registry loaded");
    Ok(Ingress::new(
        Arc::new(registry),
        Idempotency::new(DynamoStore::from_config(&config, table), policy),
        EventBridgeBus::from_config(&config, bus_name),
    ))
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

/// The partners file, then its secrets: `Registry::build` resolves synchronously, so every
/// reference is read first (Secrets Manager ones through the resolver).
async fn load_registry(config: &aws_config::SdkConfig) -> Result<Registry, Error> {
    let file = ssm::load_partners_file(config).await?;
    let resolver = SecretsResolver::from_config(config);
    let mut resolved: Vec<(SecretRef, Result<Secret, String>)> = Vec::new();
    for text in file.partner.iter().flat_map(|p| &p.signature.secrets) {
        // An unparseable reference is reported by `Registry::build`, with its partner.
        let Ok(reference) = SecretRef::parse(text) else {
            continue;
        };
        let secret = resolver.resolve(&reference).await.map_err(|e| match e {
            ConfigError::Secret { message, .. } => message,
            other => other.to_string(),
        });
        resolved.push((reference, secret));
    }
    let registry = Registry::build(&file, |reference| {
        let found = resolved.iter().find(|(r, _)| r == reference);
        match found.map(|(_, secret)| secret) {
            Some(Ok(secret)) => Ok(secret.clone()),
            Some(Err(message)) => Err(ConfigError::Secret {
                reference: reference.describe(),
                message: message.clone(),
            }),
            None => Err(ConfigError::Secret {
                reference: reference.describe(),
                message: "not resolved at cold start".into(),
            }),
        }
    })?;
    Ok(registry)
}
