//! The ingress handler against the in-memory store and bus: the DESIGN §3.1 status table
//! end to end through the API Gateway adapter, with the sample events from `events/`.

use std::sync::Arc;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::encodings::Body;
use chrono::{DateTime, Duration, Utc};
use freightbridge::bus::memory::MemoryBus;
use freightbridge::config::{PartnersFile, resolve_local};
use freightbridge::idempotency::memory::MemoryStore;
use freightbridge::idempotency::{Idempotency, IdempotencyStore, Policy};
use freightbridge::ingress::Registry;
use freightbridge::webhook::{self, ReceivedWebhook};
use serde_json::Value;
use webhook_ingress::Ingress;

const PARTNERS: &str = include_str!("../../../events/partners.local.toml");
const APIGW: &str = include_str!("../../../events/apigw-webhook-easypost.json");
const APIGW_BASE64: &str = include_str!("../../../events/apigw-webhook-easypost-base64.json");

type Handler = Ingress<Arc<MemoryStore>, Arc<MemoryBus>>;

fn setup() -> (Handler, Arc<MemoryStore>, Arc<MemoryBus>) {
    let registry = Registry::build(&PartnersFile::parse(PARTNERS).unwrap(), resolve_local).unwrap();
    let store = Arc::new(MemoryStore::new());
    let bus = Arc::new(MemoryBus::new());
    let ingress = Ingress::new(
        Arc::new(registry),
        Idempotency::new(store.clone(), Policy::default()),
        bus.clone(),
    );
    (ingress, store, bus)
}

fn now() -> DateTime<Utc> {
    "2026-11-27T09:00:00Z".parse().unwrap()
}

async fn call(ingress: &Handler, request: &str) -> (i64, Value) {
    let request: ApiGatewayV2httpRequest = serde_json::from_str(request).unwrap();
    let response = ingress
        .handle_apigw(request, now(), now() + Duration::seconds(10))
        .await;
    let body = match response.body {
        Some(Body::Text(text)) => serde_json::from_str(&text).unwrap(),
        other => panic!("unexpected body {other:?}"),
    };
    (response.status_code, body)
}

#[tokio::test]
async fn signed_webhook_is_accepted_once_and_published_with_its_raw_body() {
    let (ingress, _, bus) = setup();
    let (status, body) = call(&ingress, APIGW).await;
    assert_eq!(status, 202);
    assert_eq!(body["duplicate"], false);
    let expected_id = webhook::ingress_id("easypost", "evt_1").to_string();
    assert_eq!(body["event_id"], expected_id);

    let published = bus.published();
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].source, webhook::BUS_SOURCE);
    assert_eq!(published[0].detail_type, webhook::DETAIL_TYPE);
    let detail: ReceivedWebhook = serde_json::from_value(published[0].detail.clone()).unwrap();
    let request: ApiGatewayV2httpRequest = serde_json::from_str(APIGW).unwrap();
    assert_eq!(
        detail.body.to_bytes().unwrap(),
        request.body.unwrap().as_bytes()
    );
    assert_eq!(detail.delivery_id, "evt_1");
}

#[tokio::test]
async fn duplicate_webhook_returns_first_event_id_and_publishes_nothing_more() {
    let (ingress, _, bus) = setup();
    let (_, first) = call(&ingress, APIGW).await;
    let (status, again) = call(&ingress, APIGW_BASE64).await;
    assert_eq!(status, 200);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["event_id"], first["event_id"]);
    assert_eq!(bus.published().len(), 1);
}

#[tokio::test]
async fn bus_outage_answers_503_and_releases_the_delivery_for_the_retry() {
    let (ingress, store, bus) = setup();
    bus.set_unavailable(true);
    let (status, body) = call(&ingress, APIGW).await;
    assert_eq!(status, 503);
    assert_eq!(body["error"], "bus_unavailable");
    assert!(store.is_empty(), "dedupe record released");
    bus.set_unavailable(false);
    let (status, _) = call(&ingress, APIGW).await;
    assert_eq!(status, 202, "the partner's retry is accepted");
    assert_eq!(bus.published().len(), 1);
}

#[tokio::test]
async fn concurrent_duplicate_is_told_to_retry_later() {
    let (ingress, store, bus) = setup();
    let key = "ingress#easypost#evt_1";
    let record = freightbridge::idempotency::IdempotencyRecord {
        key: key.into(),
        status: freightbridge::idempotency::Status::InProgress,
        expires_at: (now() + Duration::days(7)).timestamp(),
        in_progress_expires_at: Some((now() + Duration::seconds(10)).timestamp_millis()),
        payload_hash: None,
        result: None,
    };
    store.put_in_progress(&record, now()).await.unwrap();
    let request: ApiGatewayV2httpRequest = serde_json::from_str(APIGW).unwrap();
    let response = ingress
        .handle_apigw(request, now(), now() + Duration::seconds(10))
        .await;
    assert_eq!(response.status_code, 409);
    assert_eq!(response.headers["retry-after"], "5");
    assert!(bus.published().is_empty());
}

#[tokio::test]
async fn reused_event_id_with_other_content_is_refused() {
    let (ingress, _, _) = setup();
    call(&ingress, APIGW).await;
    // Same EasyPost event id, different tracker status: sign the altered body properly.
    let mut request: Value = serde_json::from_str(APIGW).unwrap();
    let mut event: Value = serde_json::from_str(request["body"].as_str().unwrap()).unwrap();
    event["result"]["status"] = Value::String("delivered".into());
    let body = serde_json::to_string(&event).unwrap();
    let scheme = freightbridge::signature::Scheme::EasyPost;
    let headers = freightbridge::signature::sign(
        &scheme,
        &freightbridge::config::Secret::new("sécret"),
        body.as_bytes(),
        now(),
        "m",
    )
    .unwrap();
    request["headers"]["x-hmac-signature"] = Value::String(headers[0].1.clone());
    request["body"] = Value::String(body);
    let (status, answer) = call(&ingress, &request.to_string()).await;
    assert_eq!(status, 422);
    assert_eq!(answer["error"], "delivery_id_reused");
}

#[tokio::test]
async fn rejected_requests_publish_nothing() {
    let (ingress, store, bus) = setup();
    let mut request: Value = serde_json::from_str(APIGW).unwrap();
    request["headers"]["x-hmac-signature"] = Value::String("hmac-sha256-hex=00".into());
    let (status, body) = call(&ingress, &request.to_string()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );

    let mut unknown: Value = serde_json::from_str(APIGW).unwrap();
    unknown["pathParameters"]["partner"] = Value::String("nobody".into());
    let (status, _) = call(&ingress, &unknown.to_string()).await;
    assert_eq!(status, 404);

    let mut bad_base64: Value = serde_json::from_str(APIGW).unwrap();
    bad_base64["isBase64Encoded"] = Value::Bool(true);
    bad_base64["body"] = Value::String("***".into());
    let (status, _) = call(&ingress, &bad_base64.to_string()).await;
    assert_eq!(status, 400);

    assert!(bus.published().is_empty());
    assert!(store.is_empty());
}
