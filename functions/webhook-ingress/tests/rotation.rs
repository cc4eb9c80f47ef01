//! A partner rotates its secret in Secrets Manager while the function stays warm: the handler
//! built as at cold start (`resolve_registry`, the resolver kept for refreshes), over an
//! in-memory Secrets Manager, with tokio's paused clock standing in for the minute between reads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration as Wait;

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use freightbridge::aws::secrets::{MIN_REFRESH_INTERVAL, SecretSource, SecretsResolver};
use freightbridge::bus::memory::MemoryBus;
use freightbridge::config::{PartnersFile, Secret};
use freightbridge::idempotency::memory::MemoryStore;
use freightbridge::idempotency::{Idempotency, Policy};
use freightbridge::signature::{Scheme, sign};
use serde_json::{Value, json};
use webhook_ingress::{Ingress, resolve_registry};

const PARTNERS: &str = r#"
[[partner]]
id = "tms"
format = "easypost"
[partner.signature]
scheme = "standard-webhooks"
secrets = ["secretsmanager:freightbridge/test/partners/tms", "secretsmanager:freightbridge/test/partners/tms-previous"]

[[partner]]
id = "local"
format = "easypost"
[partner.signature]
scheme = "standard-webhooks"
secrets = ["whsec_bG9jYWwta2V5", "env:FREIGHTBRIDGE_TEST_UNSET_ROTATION_VARIABLE"]
"#;

const CURRENT: &str = "freightbridge/test/partners/tms";
const PREVIOUS: &str = "freightbridge/test/partners/tms-previous";
const LOCAL_KEY: &str = "whsec_bG9jYWwta2V5";
const BODY: &str =
    include_str!("../../../events/partners/easypost-tracker-updated-in-transit.json");

/// A Standard Webhooks secret, distinct per generation.
fn key(generation: &str) -> String {
    format!("whsec_{}", STANDARD.encode(format!("tms-key-{generation}")))
}

/// Secrets Manager in memory: values by id (`None`: the service fails), reads counted per id.
/// Clones share their state, so the test keeps a handle on what the handler owns.
#[derive(Clone, Default)]
struct FakeSecretsManager(Arc<State>);

#[derive(Default)]
struct State {
    values: Mutex<HashMap<String, Option<String>>>,
    reads: Mutex<HashMap<String, usize>>,
    latency: Wait,
}

impl FakeSecretsManager {
    fn serving(current: &str, previous: &str, latency: Wait) -> Self {
        let source = Self(Arc::new(State {
            latency,
            ..State::default()
        }));
        source.set(Some(current), Some(previous));
        source
    }

    fn set(&self, current: Option<&str>, previous: Option<&str>) {
        let mut values = self.0.values.lock().unwrap();
        values.insert(CURRENT.into(), current.map(str::to_owned));
        values.insert(PREVIOUS.into(), previous.map(str::to_owned));
    }

    /// Reads of (current, previous), and of anything else.
    fn reads(&self) -> (usize, usize, usize) {
        let reads = self.0.reads.lock().unwrap();
        let of = |id: &str| reads.get(id).copied().unwrap_or_default();
        let total: usize = reads.values().sum();
        (
            of(CURRENT),
            of(PREVIOUS),
            total - of(CURRENT) - of(PREVIOUS),
        )
    }
}

impl SecretSource for FakeSecretsManager {
    async fn fetch(&self, secret_id: &str) -> Result<String, String> {
        *self
            .0
            .reads
            .lock()
            .unwrap()
            .entry(secret_id.to_owned())
            .or_default() += 1;
        tokio::time::sleep(self.0.latency).await;
        let value = self.0.values.lock().unwrap().get(secret_id).cloned();
        value
            .flatten()
            .ok_or_else(|| "GetSecretValue: service unavailable".to_owned())
    }
}

type Handler = Ingress<Arc<MemoryStore>, Arc<MemoryBus>, SecretsResolver<FakeSecretsManager>>;

/// What `main` does at cold start, with the fake in place of Secrets Manager.
async fn cold_start(source: &FakeSecretsManager) -> Handler {
    let resolver = SecretsResolver::new(source.clone());
    let registry = resolve_registry(&PartnersFile::parse(PARTNERS).unwrap(), &resolver)
        .await
        .unwrap();
    Ingress::new(
        Arc::new(registry),
        Idempotency::new(Arc::new(MemoryStore::new()), Policy::default()),
        Arc::new(MemoryBus::new()),
    )
    .with_refresher(resolver)
}

fn now() -> DateTime<Utc> {
    "2026-11-27T09:00:00Z".parse().unwrap()
}

/// An API Gateway HTTP API request from `partner`, signed with `secret` under `message_id`.
fn signed(partner: &str, secret: &str, message_id: &str) -> Value {
    let mut headers = serde_json::Map::new();
    headers.insert("content-type".into(), json!("application/json"));
    let pairs = sign(
        &Scheme::StandardWebhooks,
        &Secret::new(secret),
        BODY.as_bytes(),
        now(),
        message_id,
    )
    .unwrap();
    for (name, value) in pairs {
        headers.insert(name, json!(value));
    }
    let path = format!("/webhooks/{partner}");
    json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/{partner}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "52.4.41.98"},
            "requestId": "rq-1",
            "stage": "$default",
        },
        "pathParameters": {"partner": partner},
        "body": BODY,
        "isBase64Encoded": false
    })
}

async fn status(ingress: &Handler, request: Value) -> i64 {
    let request: ApiGatewayV2httpRequest = serde_json::from_value(request).unwrap();
    ingress
        .handle_apigw(request, now(), now() + Duration::seconds(10))
        .await
        .status_code
}

#[tokio::test(start_paused = true)]
async fn rotated_secret_is_refused_until_the_interval_passes_then_accepted_while_warm() {
    let source = FakeSecretsManager::serving(&key("1"), &key("0"), Wait::ZERO);
    let ingress = cold_start(&source).await;
    assert_eq!(source.reads(), (1, 1, 0));
    // The partner rotates: the new secret becomes current, the old one previous.
    source.set(Some(&key("2")), Some(&key("1")));

    assert_eq!(
        status(&ingress, signed("tms", &key("2"), "msg_1")).await,
        401
    );
    tokio::time::advance(MIN_REFRESH_INTERVAL - Wait::from_secs(1)).await;
    assert_eq!(
        status(&ingress, signed("tms", &key("2"), "msg_1")).await,
        401
    );
    assert_eq!(
        source.reads(),
        (1, 1, 0),
        "nothing re-read within the minute"
    );

    tokio::time::advance(Wait::from_secs(1)).await;
    assert_eq!(
        status(&ingress, signed("tms", &key("2"), "msg_1")).await,
        202
    );
    assert_eq!(
        source.reads(),
        (2, 2, 0),
        "current and previous re-read once"
    );
    // Both secrets of the new pair verify; the one rotated out no longer does.
    assert_eq!(
        status(&ingress, signed("tms", &key("1"), "msg_2")).await,
        202
    );
    assert_eq!(
        status(&ingress, signed("tms", &key("0"), "msg_3")).await,
        401
    );
    assert_eq!(source.reads(), (2, 2, 0));
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_bad_signatures_reads_each_secret_at_most_once_a_minute() {
    let source = FakeSecretsManager::serving(&key("1"), &key("0"), Wait::from_millis(50));
    let ingress = cold_start(&source).await;
    tokio::time::advance(MIN_REFRESH_INTERVAL).await;

    // Overlapping requests first (a warm function serving several at once), then in a row.
    let flood = (0..40).map(|i| status(&ingress, signed("tms", &key("forged"), &format!("f{i}"))));
    let statuses = futures::future::join_all(flood).await;
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    for i in 0..40 {
        let request = signed("tms", &key("forged"), &format!("g{i}"));
        assert_eq!(status(&ingress, request).await, 401);
    }
    assert_eq!(source.reads(), (2, 2, 0));

    tokio::time::advance(MIN_REFRESH_INTERVAL).await;
    for i in 0..40 {
        let request = signed("tms", &key("forged"), &format!("h{i}"));
        assert_eq!(status(&ingress, request).await, 401);
    }
    assert_eq!(source.reads(), (3, 3, 0));
}

#[tokio::test(start_paused = true)]
async fn secrets_manager_outage_keeps_the_secrets_in_use() {
    let source = FakeSecretsManager::serving(&key("1"), &key("0"), Wait::ZERO);
    let ingress = cold_start(&source).await;
    source.set(None, None);
    tokio::time::advance(MIN_REFRESH_INTERVAL).await;

    assert_eq!(
        status(&ingress, signed("tms", &key("2"), "msg_1")).await,
        401
    );
    assert_eq!(source.reads(), (2, 2, 0), "the refresh was tried");
    assert_eq!(
        status(&ingress, signed("tms", &key("1"), "msg_2")).await,
        202
    );
    assert_eq!(
        status(&ingress, signed("tms", &key("0"), "msg_3")).await,
        202
    );
}

#[tokio::test(start_paused = true)]
async fn partners_with_env_or_literal_secrets_never_reach_secrets_manager() {
    let source = FakeSecretsManager::serving(&key("1"), &key("0"), Wait::ZERO);
    let ingress = cold_start(&source).await;
    for i in 0..3 {
        tokio::time::advance(MIN_REFRESH_INTERVAL).await;
        let forged = signed("local", &key("forged"), &format!("f{i}"));
        assert_eq!(status(&ingress, forged).await, 401);
        let good = signed("local", LOCAL_KEY, &format!("m{i}"));
        assert_eq!(status(&ingress, good).await, 202);
    }
    assert_eq!(
        source.reads(),
        (1, 1, 0),
        "only the tms partner's cold-start reads"
    );
}
