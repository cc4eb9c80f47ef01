//! Shippo (query token and HMAC), AfterShip and HTTP Basic partners through the API Gateway
//! adapter, with the partners file and samples the local chain uses: what is accepted, what is
//! refused, and that a query token never reaches a log line or an answer.

use std::io::Write;
use std::sync::{Arc, Mutex};

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_lambda_events::encodings::Body;
use chrono::{DateTime, Duration, Utc};
use freightbridge::bus::memory::MemoryBus;
use freightbridge::config::{PartnersFile, Secret, resolve_local};
use freightbridge::idempotency::memory::MemoryStore;
use freightbridge::idempotency::{Idempotency, Policy};
use freightbridge::ingress::Registry;
use freightbridge::signature::{Scheme, sign};
use freightbridge::webhook::{self, ReceivedWebhook};
use serde_json::{Value, json};
use webhook_ingress::Ingress;

const PARTNERS: &str = include_str!("../../../events/partners.local.toml");
const SHIPPO_DELIVERED: &str =
    include_str!("../../../events/partners/shippo-track-updated-delivered.json");
const SHIPPO_PICKED_UP: &str =
    include_str!("../../../events/partners/shippo-hmac-track-updated-picked-up.json");
const AFTERSHIP_DELIVERED: &str =
    include_str!("../../../events/partners/aftership-tracking-update-delivered.json");
/// The literal local token of the `shippo` partner in events/partners.local.toml.
const SHIPPO_TOKEN: &str = "shippo-local-token";

/// A partner that only this test knows: a carrier posting with HTTP Basic credentials.
const BASIC_PARTNER: &str = r#"
[[partner]]
id = "carrier-basic"
format = "aftership"
[partner.signature]
scheme = "basic"
secrets = ["freightbridge:n3w-pa55", "freightbridge:old-pa55"]
"#;

type Handler = Ingress<Arc<MemoryStore>, Arc<MemoryBus>>;

fn setup() -> (Handler, Arc<MemoryBus>) {
    let text = format!("{PARTNERS}\n{BASIC_PARTNER}");
    let registry = Registry::build(&PartnersFile::parse(&text).unwrap(), resolve_local).unwrap();
    let bus = Arc::new(MemoryBus::new());
    let ingress = Ingress::new(
        Arc::new(registry),
        Idempotency::new(Arc::new(MemoryStore::new()), Policy::default()),
        bus.clone(),
    );
    (ingress, bus)
}

fn now() -> DateTime<Utc> {
    "2026-11-27T09:00:00Z".parse().unwrap()
}

/// An API Gateway HTTP API (payload v2) request as it reaches the Lambda.
fn request(partner: &str, query: &str, headers: &[(&str, &str)], body: &str) -> Value {
    let mut header_map = serde_json::Map::new();
    header_map.insert("content-type".into(), json!("application/json"));
    header_map.insert("user-agent".into(), json!("test-partner/1.0"));
    for (name, value) in headers {
        header_map.insert((*name).to_owned(), json!(value));
    }
    let path = format!("/webhooks/{partner}");
    json!({
        "version": "2.0",
        "routeKey": "POST /webhooks/{partner}",
        "rawPath": path,
        "rawQueryString": query,
        "headers": header_map,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "a1b2c3d4e5",
            "domainName": "a1b2c3d4e5.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "a1b2c3d4e5",
            "http": {
                "method": "POST",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "52.4.41.98"
            },
            "requestId": "rq-1",
            "routeKey": "POST /webhooks/{partner}",
            "stage": "$default",
            "time": "27/Nov/2026:09:00:00 +0000",
            "timeEpoch": 1795770000000u64
        },
        "pathParameters": {"partner": partner},
        "body": body,
        "isBase64Encoded": false
    })
}

async fn call(ingress: &Handler, request: Value) -> (i64, Value) {
    let request: ApiGatewayV2httpRequest = serde_json::from_value(request).unwrap();
    let response = ingress
        .handle_apigw(request, now(), now() + Duration::seconds(10))
        .await;
    let body = match response.body {
        Some(Body::Text(text)) => serde_json::from_str(&text).unwrap(),
        other => panic!("unexpected body {other:?}"),
    };
    (response.status_code, body)
}

fn published(bus: &MemoryBus) -> Vec<ReceivedWebhook> {
    bus.published()
        .into_iter()
        .map(|event| serde_json::from_value(event.detail).unwrap())
        .collect()
}

fn signature_header(scheme: &Scheme, secret: &str, body: &str, at: DateTime<Utc>) -> String {
    sign(scheme, &Secret::new(secret), body.as_bytes(), at, "unused")
        .unwrap()
        .remove(0)
        .1
}

#[tokio::test]
async fn shippo_delivery_with_its_query_token_is_accepted_once() {
    let (ingress, bus) = setup();
    let query = format!("token={SHIPPO_TOKEN}");
    let (status, answer) = call(&ingress, request("shippo", &query, &[], SHIPPO_DELIVERED)).await;
    assert_eq!(status, 202, "{answer}");
    let delivery_id = "SHIPPO_DELIVERED#2d3d646335e449a8b0308f798970d045";
    assert_eq!(
        answer["event_id"],
        webhook::ingress_id("shippo", delivery_id).to_string()
    );
    let sent = published(&bus);
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (
            sent[0].partner.as_str(),
            sent[0].format.as_str(),
            sent[0].delivery_id.as_str()
        ),
        ("shippo", "shippo", delivery_id)
    );
    assert_eq!(
        sent[0].body.to_bytes().unwrap(),
        SHIPPO_DELIVERED.as_bytes()
    );

    // Shippo retries once on a timeout: the same scan is a duplicate, whatever else it adds.
    let retry = format!("carrier=shippo&token={SHIPPO_TOKEN}");
    let (status, again) = call(&ingress, request("shippo", &retry, &[], SHIPPO_DELIVERED)).await;
    assert_eq!((status, again["duplicate"].as_bool()), (200, Some(true)));
    assert_eq!(again["event_id"], answer["event_id"]);
    assert_eq!(published(&bus).len(), 1);
}

#[tokio::test]
async fn shippo_delivery_without_the_right_token_is_refused_and_publishes_nothing() {
    let (ingress, bus) = setup();
    let cases = [
        ("no query string", String::new()),
        ("another parameter only", "carrier=shippo".to_owned()),
        ("wrong token", "token=guessed".to_owned()),
        ("token cut short", format!("token={}", &SHIPPO_TOKEN[1..])),
        ("token twice", format!("token={SHIPPO_TOKEN}&token=x")),
        ("parameter in upper case", format!("TOKEN={SHIPPO_TOKEN}")),
    ];
    for (case, query) in cases {
        let (status, answer) =
            call(&ingress, request("shippo", &query, &[], SHIPPO_DELIVERED)).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("unauthorized")),
            "{case}"
        );
    }
    // The token in a header is not the token in the URL.
    let (status, _) = call(
        &ingress,
        request("shippo", "", &[("token", SHIPPO_TOKEN)], SHIPPO_DELIVERED),
    )
    .await;
    assert_eq!(status, 401);
    assert!(bus.published().is_empty());
}

/// Collects everything the handler logs, as JSON lines.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn query_tokens_never_reach_the_logs_or_the_answer() {
    // One subscriber for the whole test binary (a thread-local one misses events whose callsite
    // interest another test thread cached first): every test's logs land here, which makes the
    // check below stronger — the tokens appear in no log line at all.
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    let logs = LOGS
        .get_or_init(|| {
            let logs = Captured::default();
            let writer = logs.clone();
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber)
                .expect("no other global subscriber in this test binary");
            logs
        })
        .clone();

    let (ingress, _) = setup();
    let wrong = "token=almost-the-shippo-local-token";
    let (status, refused) = call(&ingress, request("shippo", wrong, &[], SHIPPO_DELIVERED)).await;
    assert_eq!(status, 401);
    let right = format!("token={SHIPPO_TOKEN}");
    let (status, accepted) = call(&ingress, request("shippo", &right, &[], SHIPPO_DELIVERED)).await;
    assert_eq!(status, 202);

    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("webhook rejected") && logged.contains("webhook accepted"),
        "logs:\n{logged}"
    );
    for secret in [SHIPPO_TOKEN, "almost-the-shippo-local-token"] {
        assert!(!logged.contains(secret), "{secret} logged:\n{logged}");
        assert!(!refused.to_string().contains(secret));
        assert!(!accepted.to_string().contains(secret));
    }
}

#[tokio::test]
async fn shippo_hmac_delivery_is_checked_against_its_timestamp() {
    let (ingress, bus) = setup();
    let post = |header: String| {
        request(
            "shippo-hmac",
            "",
            &[("shippo-auth-signature", &header)],
            SHIPPO_PICKED_UP,
        )
    };
    let signed = |secret: &str, at: DateTime<Utc>| {
        signature_header(&Scheme::Shippo, secret, SHIPPO_PICKED_UP, at)
    };
    let refusals = [
        (
            "signed 10 minutes ago",
            signed("shippo-local-secret", now() - Duration::minutes(10)),
        ),
        (
            "signed 10 minutes ahead",
            signed("shippo-local-secret", now() + Duration::minutes(10)),
        ),
        ("signed with another secret", signed("other", now())),
    ];
    for (case, header) in refusals {
        let (status, answer) = call(&ingress, post(header)).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (401, Some("unauthorized")),
            "{case}"
        );
    }
    assert!(bus.published().is_empty());

    let header = signed("shippo-local-secret", now() - Duration::seconds(5));
    let (status, answer) = call(&ingress, post(header)).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        published(&bus)[0].delivery_id,
        "1Z999AA10123456784#7c6b5a4f3e2d41c0b9a8f7e6d5c4b3a2"
    );
}

#[tokio::test]
async fn aftership_delivery_signed_with_the_body_hmac_is_accepted_under_its_event_id() {
    let (ingress, bus) = setup();
    let header = signature_header(
        &Scheme::AfterShip,
        "aftership-local-secret",
        AFTERSHIP_DELIVERED,
        now(),
    );
    let (status, answer) = call(
        &ingress,
        request(
            "aftership",
            "",
            &[("aftership-hmac-sha256", &header)],
            AFTERSHIP_DELIVERED,
        ),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(
        published(&bus)[0].delivery_id,
        "3f1c9a52-7d4e-4b8a-9e21-6c0d5b7a8f13"
    );

    let tampered = AFTERSHIP_DELIVERED.replace("M.GARCIA", "M.GARCIB");
    let (status, _) = call(
        &ingress,
        request(
            "aftership",
            "",
            &[("aftership-hmac-sha256", &header)],
            &tampered,
        ),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(published(&bus).len(), 1);
}

#[tokio::test]
async fn basic_credentials_are_accepted_current_and_previous_and_refused_otherwise() {
    let (ingress, bus) = setup();
    let basic = |credentials: &str| {
        sign(
            &Scheme::Basic,
            &Secret::new(credentials),
            b"",
            now(),
            "unused",
        )
        .unwrap()
        .remove(0)
        .1
    };
    let body = |event_id: &str| AFTERSHIP_DELIVERED.replace("3f1c9a52", event_id);
    let cases = [
        (
            "current credentials",
            basic("freightbridge:n3w-pa55"),
            "00000001",
            202,
        ),
        (
            "previous credentials",
            basic("freightbridge:old-pa55"),
            "00000002",
            202,
        ),
        (
            "wrong password",
            basic("freightbridge:guess"),
            "00000003",
            401,
        ),
        ("wrong user", basic("admin:n3w-pa55"), "00000004", 401),
        ("not Basic", "Bearer n3w-pa55".to_owned(), "00000005", 401),
    ];
    for (case, authorization, event_id, expected) in cases {
        let (status, answer) = call(
            &ingress,
            request(
                "carrier-basic",
                "",
                &[("authorization", &authorization)],
                &body(event_id),
            ),
        )
        .await;
        assert_eq!(status, expected, "{case}: {answer}");
    }
    let (status, _) = call(
        &ingress,
        request("carrier-basic", "", &[], &body("00000006")),
    )
    .await;
    assert_eq!(status, 401, "no credentials");
    assert_eq!(published(&bus).len(), 2);
}
