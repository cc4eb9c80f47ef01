//! The AWS leg of the chain on moto server: the real ingress, transform and poster handlers with
//! the DynamoDB store, the EventBridge bus (one bus, the template's two rules) and SQS queues.
//! moto has no SQS → Lambda event source, so the test drives that leg the way the mapping does:
//! receive, wrap in the Lambda SQS event shape, invoke, delete what was not reported failed.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::encodings::Body;
use canonical_transform::{SeenHistory, Transform};
use chrono::{Duration, Utc};
use freightbridge::aws::dynamodb::DynamoStore;
use freightbridge::aws::eventbridge::EventBridgeBus;
use freightbridge::aws::sqs::{SqsDeadLetters, SqsQueue, SqsVisibility, to_lambda_message};
use freightbridge::batch::{BatchConfig, RecordContext, Settlement, process_batch};
use freightbridge::bus::Envelope;
use freightbridge::canonical::{CanonicalEvent, EventBody, ShipmentStatus};
use freightbridge::config::{PartnersFile, resolve_local};
use freightbridge::failure::FailureReason;
use freightbridge::idempotency::{Idempotency, Policy};
use freightbridge::ingress::Registry;
use freightbridge::odoo::{DryRunJournal, OdooClient};
use freightbridge::retry::RetryPolicy;
use freightbridge::{canonical, webhook};
use freightbridge_tests::moto::{MotoServer, Queue, unique_name};
use odoo_poster::Poster;
use webhook_ingress::Ingress;

const PARTNERS: &str = include_str!("../../events/partners.local.toml");
const APIGW: &str = include_str!("../../events/apigw-webhook-easypost.json");

/// One bus with the SAM template's two rules, each delivering to its own queue.
struct Deployed {
    bus_name: String,
    transform_queue: Queue,
    odoo_queue: Queue,
    dlq: Queue,
    table: String,
}

async fn deploy(moto: &MotoServer) -> Deployed {
    let events = moto.eventbridge();
    let bus_name = unique_name("bus");
    events
        .create_event_bus()
        .name(&bus_name)
        .send()
        .await
        .unwrap();
    let transform_queue = moto.create_queue("transform").await;
    let odoo_queue = moto.create_queue("odoo").await;
    let rules = [
        (
            serde_json::json!({"source": [webhook::BUS_SOURCE], "detail-type": [webhook::DETAIL_TYPE]}),
            &transform_queue,
        ),
        (
            serde_json::json!({"source": [canonical::BUS_SOURCE],
                               "detail-type": ["shipment.status_changed", "shipment.delivered"]}),
            &odoo_queue,
        ),
    ];
    for (pattern, queue) in rules {
        let rule = unique_name("rule");
        events
            .put_rule()
            .name(&rule)
            .event_bus_name(&bus_name)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .unwrap();
        let target = aws_sdk_eventbridge::types::Target::builder()
            .id("queue")
            .arn(&queue.arn)
            .build()
            .unwrap();
        events
            .put_targets()
            .rule(&rule)
            .event_bus_name(&bus_name)
            .targets(target)
            .send()
            .await
            .unwrap();
    }
    Deployed {
        bus_name,
        transform_queue,
        odoo_queue,
        dlq: moto.create_queue("dlq").await,
        table: moto.create_idempotency_table().await,
    }
}

/// What the SQS event source mapping does for one batch. Returns the bodies it handed over.
async fn drive<F, Fut>(
    moto: &MotoServer,
    queue: &Queue,
    dlq: &Queue,
    consumer: &str,
    handler: F,
) -> Vec<String>
where
    F: Fn(RecordContext) -> Fut,
    Fut: std::future::Future<Output = Result<(), FailureReason>>,
{
    let sqs = SqsQueue::new(moto.sqs(), &queue.url);
    let mut bodies = Vec::new();
    loop {
        let batch = drive_batch(moto, &sqs, queue, dlq, consumer, &handler).await;
        if batch.is_empty() {
            return bodies;
        }
        bodies.extend(batch);
    }
}

/// One receive and its batch.
async fn drive_batch<F, Fut>(
    moto: &MotoServer,
    sqs: &SqsQueue,
    queue: &Queue,
    dlq: &Queue,
    consumer: &str,
    handler: &F,
) -> Vec<String>
where
    F: Fn(RecordContext) -> Fut,
    Fut: std::future::Future<Output = Result<(), FailureReason>>,
{
    let messages = sqs.receive(10, 1, None).await.unwrap();
    if messages.is_empty() {
        return Vec::new();
    }
    let records = messages
        .iter()
        .map(|m| to_lambda_message(m, &queue.arn, "us-east-1"))
        .collect::<Vec<_>>();
    let config = BatchConfig {
        consumer: consumer.into(),
        concurrency: 4,
        max_receive_count: 100,
        retry: RetryPolicy::default(),
        group_by: None,
    };
    let dead_letters = SqsDeadLetters::new(moto.sqs(), &dlq.url);
    let visibility = SqsVisibility::new(moto.sqs(), &queue.url);
    let settlement = Settlement {
        config: &config,
        dead_letters: &dead_letters,
        visibility: &visibility,
    };
    let report = process_batch(records, &settlement, handler).await;
    assert!(
        report.response.batch_item_failures.is_empty(),
        "{consumer} failed records: {:?}",
        report.outcomes
    );
    for message in &messages {
        sqs.delete(message.receipt_handle().unwrap()).await.unwrap();
    }
    messages
        .iter()
        .map(|m| m.body().unwrap_or_default().to_owned())
        .collect()
}

/// Scans in the sample EasyPost tracker (`events/partners/easypost-tracker-updated-in-transit.json`).
const SCANS: usize = 7;

#[tokio::test]
async fn signed_webhook_flows_through_eventbridge_and_sqs_to_the_odoo_poster() {
    let moto = MotoServer::shared();
    let deployed = deploy(moto).await;
    let config = moto.sdk_config();
    let bus = Arc::new(EventBridgeBus::from_config(&config, &deployed.bus_name));
    let store = Arc::new(DynamoStore::from_config(&config, &deployed.table));
    let idempotency = || Idempotency::new(store.clone(), Policy::default());

    // 1. API Gateway → ingress → EventBridge.
    let registry = Registry::build(&PartnersFile::parse(PARTNERS).unwrap(), resolve_local).unwrap();
    let ingress = Ingress::new(Arc::new(registry), idempotency(), bus.clone());
    let request: ApiGatewayV2httpRequest = serde_json::from_str(APIGW).unwrap();
    let now = Utc::now();
    let response = ingress
        .handle_apigw(request.clone(), now, now + Duration::seconds(10))
        .await;
    assert_eq!(response.status_code, 202);
    let again = ingress
        .handle_apigw(request, now, now + Duration::seconds(10))
        .await;
    assert_eq!(again.status_code, 200, "duplicate answered from DynamoDB");
    let Some(Body::Text(text)) = again.body else {
        panic!("no body")
    };
    assert!(text.contains("\"duplicate\":true"));

    // 2. rule → transform queue → canonical-transform → EventBridge.
    let partners = PartnersFile::parse(PARTNERS).unwrap();
    let adapters = Arc::new(freightbridge::partners::Adapters::from_partners(&partners).unwrap());
    let transform = Transform::new(
        bus.clone(),
        adapters,
        SqsDeadLetters::new(moto.sqs(), &deployed.dlq.url),
        SeenHistory {
            store: store.clone(),
            ttl: Policy::default().ttl,
        },
    );
    let transformed = drive(
        moto,
        &deployed.transform_queue,
        &deployed.dlq,
        "canonical-transform",
        |ctx| transform.handle_record(ctx),
    )
    .await;
    assert_eq!(
        transformed.len(),
        1,
        "exactly one accepted webhook on the transform queue"
    );

    // 3. rule → odoo queue → odoo-poster (dry-run journal).
    let dir = tempfile::tempdir().unwrap();
    let journal_path = dir.path().join("odoo.jsonl");
    let odoo = OdooClient::dry_run(DryRunJournal::open(&journal_path).await.unwrap());
    let poster = Poster::new(odoo, idempotency());
    let post = |ctx: RecordContext| {
        let now = Utc::now();
        let poster = &poster;
        async move {
            poster
                .handle_record(ctx, now, now + Duration::seconds(30))
                .await
        }
    };
    let posted = drive(
        moto,
        &deployed.odoo_queue,
        &deployed.dlq,
        "odoo-poster",
        post,
    )
    .await;
    // The sample tracker lists seven scans: one canonical event each.
    assert_eq!(posted.len(), SCANS);
    let calls_after_first = std::fs::read_to_string(&journal_path)
        .unwrap()
        .lines()
        .count();
    assert_eq!(
        calls_after_first,
        2 * SCANS,
        "lookup + message_post per scan"
    );

    // The canonical events arrived in their EventBridge envelopes.
    let events: Vec<CanonicalEvent> = posted
        .iter()
        .map(|body| {
            let envelope: Envelope<CanonicalEvent> = serde_json::from_str(body).unwrap();
            assert_eq!(envelope.source, canonical::BUS_SOURCE);
            assert_eq!(envelope.detail_type, "shipment.status_changed");
            envelope.detail
        })
        .collect();
    assert!(events.iter().all(|e| e.shipment.tracking_number == "1"));
    assert!(events.iter().any(
        |e| matches!(&e.body, EventBody::StatusChanged(s) if s.status == ShipmentStatus::InTransit)
    ));

    // The transform record redelivered: its scans are in the seen set (DynamoDB), so nothing
    // is published again.
    SqsQueue::new(moto.sqs(), &deployed.transform_queue.url)
        .send(&transformed[0])
        .await
        .unwrap();
    let retransformed = drive(
        moto,
        &deployed.transform_queue,
        &deployed.dlq,
        "canonical-transform",
        |ctx| transform.handle_record(ctx),
    )
    .await;
    assert_eq!(retransformed.len(), 1);
    let nothing_new = SqsQueue::new(moto.sqs(), &deployed.odoo_queue.url)
        .receive(10, 1, None)
        .await
        .unwrap();
    assert!(nothing_new.is_empty(), "no scan published twice");

    // 4. A second delivery of the same event is suppressed by the DynamoDB record.
    SqsQueue::new(moto.sqs(), &deployed.odoo_queue.url)
        .send(&posted[0])
        .await
        .unwrap();
    let again = drive(
        moto,
        &deployed.odoo_queue,
        &deployed.dlq,
        "odoo-poster",
        post,
    )
    .await;
    assert_eq!(again.len(), 1);
    let calls_after_second = std::fs::read_to_string(&journal_path)
        .unwrap()
        .lines()
        .count();
    assert_eq!(
        calls_after_second,
        2 * SCANS,
        "the redelivered event made no Odoo call"
    );

    let dlq = SqsQueue::new(moto.sqs(), &deployed.dlq.url)
        .receive(10, 0, None)
        .await
        .unwrap();
    assert!(dlq.is_empty(), "nothing dead-lettered");
}

/// A record failing with a retryable reason is not redelivered at the queue's pace: its own
/// message gets the backoff (ChangeMessageVisibility), and a permanent failure goes to the DLQ
/// with its reason, against the real SQS wire protocol.
#[tokio::test]
async fn a_retried_record_waits_out_its_backoff_on_the_queue_and_a_poison_one_is_dead_lettered() {
    let moto = MotoServer::shared();
    let queue = moto.create_queue(&unique_name("backoff")).await;
    let dlq = moto.create_queue(&unique_name("backoff-dlq")).await;
    let sqs = SqsQueue::new(moto.sqs(), &queue.url);
    sqs.send("retry").await.unwrap();
    sqs.send("poison").await.unwrap();
    // Received with no visibility timeout at all: without the backoff both would be back at once.
    let mut messages = Vec::new();
    for _ in 0..5 {
        messages.extend(sqs.receive(10, 0, Some(0)).await.unwrap());
        messages.dedup_by(|a, b| a.message_id() == b.message_id());
        if messages.len() == 2 {
            break;
        }
    }
    assert_eq!(messages.len(), 2, "both messages received");
    let records = messages
        .iter()
        .map(|m| to_lambda_message(m, &queue.arn, "us-east-1"))
        .collect::<Vec<_>>();
    let config = BatchConfig {
        consumer: "backoff-test".into(),
        concurrency: 2,
        max_receive_count: 100,
        retry: RetryPolicy::default(),
        group_by: None,
    };
    let dead_letters = SqsDeadLetters::new(moto.sqs(), &dlq.url);
    let visibility = SqsVisibility::new(moto.sqs(), &queue.url);
    let settlement = Settlement {
        config: &config,
        dead_letters: &dead_letters,
        visibility: &visibility,
    };
    let report = process_batch(records, &settlement, |ctx: RecordContext| async move {
        match ctx.body.as_str() {
            "retry" => Err(FailureReason::retryable(
                "odoo_network",
                "connection refused",
            )),
            _ => Err(FailureReason::permanent(
                "malformed_envelope",
                "not an envelope",
            )),
        }
    })
    .await;
    assert_eq!(report.response.batch_item_failures.len(), 1);
    // The poison record is acknowledged (deleted by the caller) and dead-lettered with its reason.
    let poison = messages
        .iter()
        .find(|m| m.body() == Some("poison"))
        .unwrap();
    sqs.delete(poison.receipt_handle().unwrap()).await.unwrap();
    let letters = SqsQueue::new(moto.sqs(), &dlq.url)
        .receive(10, 1, None)
        .await
        .unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].body(), Some("poison"));
    let code = letters[0]
        .message_attributes()
        .and_then(|a| a.get("fb-error-code"))
        .and_then(|v| v.string_value());
    assert_eq!(code, Some("malformed_envelope"));
    // The retried one sits out its backoff (at least a second) instead of coming straight back.
    assert!(sqs.receive(10, 0, None).await.unwrap().is_empty());
}
