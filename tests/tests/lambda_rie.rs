//! The four function binaries under the AWS Lambda Runtime Interface Emulator (what `sam local
//! invoke` runs inside its container), against moto: each cold-starts from nothing but its
//! environment, answers the sample events in `events/`, and its effects land in emulated AWS.

use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use freightbridge::audit::{AuditLog, Outcome, Stage};
use freightbridge::aws::audit::DynamoAuditLog;
use freightbridge::aws::ssm;
use freightbridge::bus::Envelope;
use freightbridge::canonical::CanonicalEvent;
use freightbridge::failure::{Classify, FailureClass};
use freightbridge::webhook::{ReceivedWebhook, WebhookBody};
use freightbridge_tests::moto::{self, MotoServer, Queue};
use serde_json::{Value, json};

const INGRESS: &str = "webhook-ingress";
const TRANSFORM: &str = "canonical-transform";
const POSTER: &str = "odoo-poster";
const RECONCILER: &str = "reconciler";
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);

/// The watchdog between a test and RIE: RIE is stopped (SIGTERM, which also stops the function
/// process it runs) when the watchdog's stdin closes — on drop, or when the test process dies.
/// Both of RIE's ports are chosen here: its Runtime API defaults to 127.0.0.1:9001, which
/// parallel tests would fight over.
const WATCHDOG: &str = r#"
"$0" --runtime-interface-emulator-address "$1" --runtime-api-address "$2" "$3" >"$4" 2>&1 &
rie=$!
read -r _ignored
kill "$rie" 2>/dev/null
wait "$rie" 2>/dev/null
exit 0
"#;

// ---------------------------------------------------------------- the tests

#[tokio::test]
async fn ingress_binary_accepts_the_sample_webhook_and_publishes_it_on_the_bus() {
    let moto = MotoServer::shared();
    let table = moto.create_idempotency_table().await;
    let route = moto
        .create_bus_routed_to_queue(&["freightbridge.ingress"], &["partner.webhook.received"])
        .await;
    // The registry names the secret only by reference: the sample's signature verifies only
    // if the function read the secret from Secrets Manager.
    let secret_name = format!(
        "freightbridge/test/partners/{}",
        moto::unique_name("easypost")
    );
    create_secret(moto, &secret_name, "sécret").await;
    let parameter = format!("/freightbridge/{}/partners", moto::unique_name("stage"));
    let registry = format!(
        "[[partner]]\nid = \"easypost\"\nformat = \"easypost\"\n[partner.signature]\n\
         scheme = \"easypost\"\nsecrets = [\"secretsmanager:{secret_name}\"]\n"
    );
    put_parameter(moto, &parameter, &registry).await;

    let rie = Rie::start(
        INGRESS,
        &[
            ("IDEMPOTENCY_TABLE", table.as_str()),
            ("IDEMPOTENCY_TTL_DAYS", "7"),
            ("EVENT_BUS_NAME", route.bus_name.as_str()),
            ("PARTNERS_SSM_PARAMETER", parameter.as_str()),
        ],
    );
    let request = sample_event("apigw-webhook-easypost.json");
    let first = rie.invoke(&request).await;
    assert_eq!(first["statusCode"], 202, "{first}\n{}", rie.log());
    let body: Value = serde_json::from_str(first["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["duplicate"], false, "{body}");
    let event_id = body["event_id"].as_str().unwrap().to_owned();

    let published = receive_all(moto, &route.queue, 1).await;
    assert_eq!(published.len(), 1, "{published:?}");
    let envelope: Envelope<ReceivedWebhook> = serde_json::from_str(&published[0]).unwrap();
    assert_eq!(envelope.detail_type, "partner.webhook.received");
    assert_eq!(envelope.detail.ingress_id.to_string(), event_id);
    assert_eq!(envelope.detail.partner, "easypost");
    let sent_body = request["body"].as_str().unwrap().as_bytes();
    assert_eq!(envelope.detail.body, WebhookBody::from_bytes(sent_body));

    // The same process serves the redelivery (a warm Lambda) and DynamoDB remembers it.
    let second = rie.invoke(&request).await;
    assert_eq!(second["statusCode"], 200, "{second}");
    let body: Value = serde_json::from_str(second["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, json!({"event_id": event_id, "duplicate": true}));

    // The same delivery with the body API Gateway base64-encodes when it takes it for binary
    // (`events/apigw-webhook-easypost-base64.json`): decoded before the signature is checked,
    // so it verifies, and it is the same delivery.
    let encoded = sample_event("apigw-webhook-easypost-base64.json");
    assert_eq!(encoded["isBase64Encoded"], true);
    assert_ne!(encoded["body"], request["body"]);
    let third = rie.invoke(&encoded).await;
    assert_eq!(third["statusCode"], 200, "{third}\n{}", rie.log());
    let body: Value = serde_json::from_str(third["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, json!({"event_id": event_id, "duplicate": true}));

    let log = rie.log();
    assert!(log.contains("partner registry loaded"), "{log}");
    let accepted = emf(&log, "WebhookAccepted");
    assert_eq!(accepted.len(), 1, "{log}");
    assert_eq!(accepted[0]["Partner"], "easypost");
    assert_eq!(accepted[0]["Function"], "webhook-ingress");
    assert_eq!(emf(&log, "WebhookDuplicate").len(), 2, "{log}");
    // No AUDIT_TABLE (the template always sets it): said once, and the function runs.
    assert_eq!(log.matches("AUDIT_TABLE is not set").count(), 1, "{log}");
    assert_eq!(init_reports(&log).len(), 1, "one cold start only:\n{log}");
    report_cold_start(INGRESS, &log);
}

#[tokio::test]
async fn transform_binary_publishes_the_canonical_events_of_the_sample_batch() {
    let moto = MotoServer::shared();
    let route = moto
        .create_bus_routed_to_queue(
            &["freightbridge.canonical"],
            &["shipment.status_changed", "shipment.delivered"],
        )
        .await;
    let dlq = moto.create_queue("transform-dlq").await;
    let queue = moto.create_queue("transform-queue").await;
    let table = moto.create_idempotency_table().await;
    let audit = moto.create_audit_table().await;
    let partners_file = concat!(env!("CARGO_MANIFEST_DIR"), "/../events/partners.local.toml");
    let rie = Rie::start(
        TRANSFORM,
        &[
            ("PARTNERS_FILE", partners_file),
            ("IDEMPOTENCY_TABLE", table.as_str()),
            ("AUDIT_TABLE", audit.as_str()),
            ("AUDIT_TTL_DAYS", "30"),
            ("EVENT_BUS_NAME", route.bus_name.as_str()),
            ("DLQ_URL", dlq.url.as_str()),
            ("QUEUE_URL", queue.url.as_str()),
            ("MAX_RECEIVE_COUNT", "100"),
        ],
    );
    let batch = sample_event("sqs-transform-batch.json");
    let response = rie.invoke(&batch).await;
    assert_eq!(
        response,
        json!({"batchItemFailures": []}),
        "\n{}",
        rie.log()
    );

    let sample: Envelope<ReceivedWebhook> =
        serde_json::from_str(batch["Records"][0]["body"].as_str().unwrap()).unwrap();
    let partners =
        freightbridge::config::PartnersFile::load(std::path::Path::new(partners_file)).unwrap();
    let adapters = freightbridge::partners::Adapters::from_partners(&partners).unwrap();
    let transformed = canonical_transform::transform(&adapters, &sample.detail).unwrap();
    let expected: BTreeSet<String> = transformed
        .events
        .iter()
        .map(|e| e.event_id.to_string())
        .collect();
    assert!(!expected.is_empty());
    let counted: f64 = emf(&rie.log(), "EventsPublished")
        .iter()
        .filter_map(|doc| doc["EventsPublished"].as_f64())
        .sum();
    assert_eq!(counted as usize, expected.len(), "{}", rie.log());
    // Every line of the journey names the delivery and the Lambda request.
    let published: Vec<Value> = rie
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["message"] == "canonical event published")
        .collect();
    assert_eq!(published.len(), expected.len(), "{}", rie.log());
    for line in &published {
        assert!(line["span"]["correlation_id"].is_string(), "{line}");
        let spans = line["spans"].as_array().expect("the span list");
        assert!(spans.iter().any(|s| s["requestId"].is_string()), "{line}");
    }
    // The scans published are remembered in the table, under the shipment's scope.
    let history = transformed
        .history
        .first()
        .expect("the sample is an EasyPost tracker with scans");
    let item = moto
        .dynamodb()
        .get_item()
        .table_name(&table)
        .key("id", AttributeValue::S(format!("seen#{}", history.scope)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the shipment's seen scans");
    let AttributeValue::Ss(seen) = &item["entries"] else {
        panic!("entries is not a string set: {item:?}");
    };
    let seen: BTreeSet<String> = seen.iter().cloned().collect();
    let entries: BTreeSet<String> = history.entries.iter().map(|id| id.to_string()).collect();
    assert_eq!(seen, entries);
    let published: BTreeSet<String> = receive_all(moto, &route.queue, expected.len())
        .await
        .iter()
        .map(|body| {
            let envelope: Envelope<CanonicalEvent> = serde_json::from_str(body).unwrap();
            assert_eq!(envelope.source, "freightbridge.canonical");
            envelope.detail.event_id.to_string()
        })
        .collect();
    assert_eq!(published, expected);
    assert!(receive_all(moto, &dlq, 0).await.is_empty());
    // Each published event is in the audit trail, kept AUDIT_TTL_DAYS.
    let trail = DynamoAuditLog::new(moto.dynamodb(), &audit, chrono::Duration::days(30));
    for event_id in &expected {
        let records = trail
            .by_subject(&format!("event#{event_id}"), 10)
            .await
            .unwrap();
        assert_eq!(records.len(), 1, "{event_id}: {records:?}");
        assert_eq!(records[0].stage, Stage::Transform);
        assert_eq!(records[0].actor.function, TRANSFORM);
    }
    let scanned = moto
        .dynamodb()
        .scan()
        .table_name(&audit)
        .limit(1)
        .send()
        .await
        .unwrap();
    let item = &scanned.items()[0];
    let AttributeValue::N(expires_at) = &item["expires_at"] else {
        panic!("expires_at is not a number: {item:?}");
    };
    let days = (expires_at.parse::<i64>().unwrap() - chrono::Utc::now().timestamp()) / 86_400;
    assert!((29..=30).contains(&days), "{days} days");
    report_cold_start(TRANSFORM, &rie.log());
}

#[tokio::test]
async fn poster_binary_without_odoo_url_applies_the_sample_batch_in_dry_run() {
    let moto = MotoServer::shared();
    let table = moto.create_idempotency_table().await;
    let dlq = moto.create_queue("odoo-dlq").await;
    let queue = moto.create_queue("odoo-queue").await;
    let audit = moto.create_audit_table().await;
    let ledger = moto.create_idempotency_table().await;
    let rie = Rie::start(
        POSTER,
        &[
            ("IDEMPOTENCY_TABLE", table.as_str()),
            ("LEDGER_TABLE", ledger.as_str()),
            ("AUDIT_TABLE", audit.as_str()),
            ("DLQ_URL", dlq.url.as_str()),
            ("QUEUE_URL", queue.url.as_str()),
            ("MAX_RECEIVE_COUNT", "100"),
        ],
    );
    let batch = sample_event("sqs-odoo-batch.json");
    let response = rie.invoke(&batch).await;
    assert_eq!(
        response,
        json!({"batchItemFailures": []}),
        "\n{}",
        rie.log()
    );

    let log = rie.log();
    assert!(log.contains("ODOO_URL is not set: dry-run"), "{log}");
    let applied = emf(&log, "OdooApplied");
    assert!(!applied.is_empty(), "{log}");
    assert!(
        applied
            .iter()
            .all(|doc| doc["OdooLatency"].as_f64().is_some_and(|ms| ms >= 0.0)),
        "{applied:?}"
    );
    let journaled = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line.get("assumed_answer").is_some())
        .count();
    assert!(journaled > 0, "no dry-run journal line on stdout:\n{log}");

    let sample: Envelope<CanonicalEvent> =
        serde_json::from_str(batch["Records"][0]["body"].as_str().unwrap()).unwrap();
    let item = moto
        .dynamodb()
        .get_item()
        .table_name(&table)
        .key(
            "id",
            AttributeValue::S(format!("odoo#{}", sample.detail.event_id)),
        )
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("the event's idempotency record");
    assert_eq!(item["status"], AttributeValue::S("COMPLETED".into()));
    assert!(receive_all(moto, &dlq, 0).await.is_empty());
    let trail = DynamoAuditLog::new(moto.dynamodb(), &audit, chrono::Duration::days(1));
    let records = trail
        .by_subject(&format!("event#{}", sample.detail.event_id), 10)
        .await
        .unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(
        (records[0].stage, records[0].outcome),
        (Stage::Poster, Outcome::Done)
    );
    assert!(!log.contains("AUDIT_TABLE is not set"), "{log}");
    report_cold_start(POSTER, &log);
}

/// The sample's contract: 2 % or 5.00, whichever is larger (214.90 invoiced on 212.40 booked).
const RECONCILE_SETTINGS: &str =
    "[default]\ntolerance = { absolute = \"5.00\", percent = \"2\" }\n";

#[tokio::test]
async fn reconciler_binary_matches_the_sample_invoice_and_publishes_the_outcome() {
    use freightbridge::aws::ledger::DynamoLedger;
    use freightbridge::ledger::{LedgerStore as _, ledger_key};
    let moto = MotoServer::shared();
    let ledger = moto.create_idempotency_table().await;
    let audit = moto.create_audit_table().await;
    let dlq = moto.create_queue("reconcile-dlq").await;
    let queue = moto.create_queue("reconcile-queue").await;
    let route = moto
        .create_bus_routed_to_queue(&["freightbridge.reconciliation"], &[])
        .await;
    let rie = Rie::start(
        RECONCILER,
        &[
            ("LEDGER_TABLE", ledger.as_str()),
            ("AUDIT_TABLE", audit.as_str()),
            ("EVENT_BUS_NAME", route.bus_name.as_str()),
            ("DLQ_URL", dlq.url.as_str()),
            ("QUEUE_URL", queue.url.as_str()),
            ("RECONCILE_CONFIG", RECONCILE_SETTINGS),
            ("MAX_RECEIVE_COUNT", "100"),
        ],
    );
    let batch = sample_event("sqs-reconcile-batch.json");
    let response = rie.invoke(&batch).await;
    assert_eq!(
        response,
        json!({"batchItemFailures": []}),
        "\n{}",
        rie.log()
    );
    let published = receive_all(moto, &route.queue, 1).await;
    assert_eq!(published.len(), 1, "{published:?}\n{}", rie.log());
    let outcome: Envelope<CanonicalEvent> = serde_json::from_str(&published[0]).unwrap();
    assert_eq!(outcome.detail_type, "freight_invoice.matched");
    assert_eq!(outcome.source, "freightbridge.reconciliation");
    let entry = DynamoLedger::new(moto.dynamodb(), &ledger)
        .load(&ledger_key("1Z999AA10123456784"))
        .await
        .unwrap()
        .expect("the shipment's ledger entry")
        .entry;
    assert!(entry.delivery.is_some() && entry.expected.is_some());
    assert_eq!(entry.outcomes.len(), 1);
    assert!(entry.outcomes[0].published);
    let reconciled = emf(&rie.log(), "Reconciled");
    assert_eq!(reconciled.len(), 1, "{}", rie.log());
    assert_eq!(
        (&reconciled[0]["Outcome"], &reconciled[0]["Carrier"]),
        (&json!("matched"), &json!("UPS"))
    );
    // The same batch again (SQS redelivers): nothing new on the bus.
    let again = rie.invoke(&batch).await;
    assert_eq!(again, json!({"batchItemFailures": []}));
    assert!(receive_all(moto, &route.queue, 0).await.is_empty());
    assert!(receive_all(moto, &dlq, 0).await.is_empty());
    report_cold_start(RECONCILER, &rie.log());
}

#[tokio::test]
async fn reconcile_sweep_binary_settles_the_bill_odoo_shows_paid_once() {
    use freightbridge::aws::ledger::DynamoLedger;
    use freightbridge::ledger::{self, LedgerStore as _, ledger_key};
    use freightbridge::odoo::{OdooCall, OdooClient, OdooConfig, OdooPort as _, Transport};
    use freightbridge_tests::odoo_double::{OdooDouble, OdooDoubleConfig};

    let moto = MotoServer::shared();
    let table = moto.create_idempotency_table().await;
    let audit = moto.create_audit_table().await;
    let route = moto
        .create_bus_routed_to_queue(
            &["freightbridge.reconciliation"],
            &["freight_invoice.settled"],
        )
        .await;
    // The ledger as the queue consumer left it: the sample's booking, delivery and invoice.
    let dynamo = DynamoLedger::new(moto.dynamodb(), &table);
    let batch = sample_event("sqs-reconcile-batch.json");
    let mut invoice = None;
    for record in batch["Records"].as_array().unwrap() {
        let envelope: Envelope<CanonicalEvent> =
            serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
        if let freightbridge::canonical::EventBody::InvoiceReceived(received) =
            &envelope.detail.body
        {
            invoice = Some(received.invoice.clone());
        }
        ledger::record(&dynamo, &envelope.detail, chrono::Utc::now())
            .await
            .unwrap();
    }
    let invoice = invoice.expect("the sample has an invoice");

    // Odoo: the bill freightbridge drafted (its fingerprint in the narration), posted and paid.
    let double = OdooDouble::start(OdooDoubleConfig::version(19)).await;
    let vendor = double.seed_vendor(None, "UPS Supply Chain", "CARRIER-UPS");
    let d = double.config().clone();
    let mut config = OdooConfig::new(double.url());
    config.db = Some(d.db.clone());
    config.api_key = Some(freightbridge::config::Secret::new(&d.api_key));
    config.transport = Some(Transport::Json2);
    let odoo = OdooClient::connect(&config).await.unwrap();
    let narration = format!(
        "<p>Carrier invoice {}. {}</p>",
        invoice.number,
        freightbridge::odoo::bills::invoice_fingerprint(&invoice)
    );
    let created = odoo
        .execute(&OdooCall::new("account.move", "create").with_arg(
            "vals_list",
            json!([{
                "move_type": "in_invoice", "partner_id": vendor, "ref": invoice.number,
                "narration": narration, "invoice_date": "2026-11-26",
                "invoice_line_ids": [[0, 0, {"name": "Line haul", "quantity": 1, "price_unit": 214.90}]],
            }]),
        ))
        .await
        .unwrap();
    let bill = freightbridge::odoo::values::single_id(&created).unwrap();
    odoo.execute(&OdooCall::new("account.move", "action_post").with_arg("ids", json!([bill])))
        .await
        .unwrap();
    double.pay_bill(bill, "paid");

    let rie = Rie::start(
        RECONCILER,
        &[
            ("RECONCILER_MODE", "sweep"),
            ("LEDGER_TABLE", table.as_str()),
            ("AUDIT_TABLE", audit.as_str()),
            ("EVENT_BUS_NAME", route.bus_name.as_str()),
            ("RECONCILE_CONFIG", RECONCILE_SETTINGS),
            ("ODOO_URL", double.url().as_str()),
            ("ODOO_DB", d.db.as_str()),
            ("ODOO_API_KEY", d.api_key.as_str()),
            ("ODOO_TRANSPORT", "json2"),
        ],
    );
    let request = sample_event("schedule-reconcile-sweep.json");
    let answer = rie.invoke(&request).await;
    let settle = &answer["settle"];
    assert_eq!(
        settle["settled"][0]["bill_id"],
        json!(bill),
        "{answer}\n{}",
        rie.log()
    );
    assert_eq!(settle["shipments_closed"], 1, "{answer}");
    assert_eq!(answer["findings"]["summary"]["entries"], 1, "{answer}");
    let published = receive_all(moto, &route.queue, 1).await;
    assert_eq!(published.len(), 1, "{published:?}");
    let settled: Envelope<CanonicalEvent> = serde_json::from_str(&published[0]).unwrap();
    assert_eq!(settled.detail_type, "freight_invoice.settled");
    let entry = dynamo
        .load(&ledger_key("1Z999AA10123456784"))
        .await
        .unwrap()
        .unwrap()
        .entry;
    assert!(entry.closed_at.is_some());

    // The schedule fires again: the shipment is closed, nothing is asked or published.
    let again = rie.invoke(&request).await;
    assert_eq!(again["settle"]["invoices_checked"], 0, "{again}");
    assert!(receive_all(moto, &route.queue, 0).await.is_empty());
    // An invocation that is not a sweep request is an error, not a silent success.
    let (status, body) = rie
        .invoke_raw(&json!({"detail-type": "Scheduled Event"}))
        .await;
    assert!(
        status != 200 || body.contains("errorMessage"),
        "{status}: {body}"
    );
}

#[tokio::test]
async fn ingress_binary_stops_at_cold_start_when_the_registry_parameter_is_missing() {
    let moto = MotoServer::shared();
    let table = moto.create_idempotency_table().await;
    let parameter = format!("/freightbridge/{}/partners", moto::unique_name("missing"));
    let rie = Rie::start(
        INGRESS,
        &[
            ("IDEMPOTENCY_TABLE", table.as_str()),
            ("EVENT_BUS_NAME", "unused"),
            ("PARTNERS_SSM_PARAMETER", parameter.as_str()),
        ],
    );
    let (status, _) = rie
        .invoke_raw(&sample_event("apigw-webhook-easypost.json"))
        .await;
    assert_ne!(status, 200, "{}", rie.log());
    let log = rie.log();
    let failure = log
        .lines()
        .find(|line| line.contains("cold start failed"))
        .unwrap_or_else(|| panic!("no cold start failure logged:\n{log}"));
    assert!(failure.contains(&parameter), "{failure}");
    assert!(failure.contains("ParameterNotFound"), "{failure}");
    assert!(log.contains("Runtime.ExitError"), "{log}");
}

#[tokio::test]
async fn partners_are_merged_from_the_registry_parameter_and_one_parameter_per_partner() {
    let moto = MotoServer::shared();
    let client = ssm::Client::new(&moto.sdk_config());
    let stage = moto::unique_name("stage");
    let entry = |id: &str| {
        format!(
            "[[partner]]\nid = \"{id}\"\nformat = \"easypost\"\n[partner.signature]\n\
             scheme = \"easypost\"\nsecrets = [\"env:SECRET_{id}\"]\n"
        )
    };
    let registry = format!("/freightbridge/{stage}/partners");
    let path = format!("/freightbridge/{stage}/partner");
    put_parameter(moto, &registry, &entry("alpha")).await;
    // More than one page of GetParametersByPath (10 a page), and a sub-path that is not read.
    for n in 0..12 {
        put_parameter(
            moto,
            &format!("{path}/p{n:02}"),
            &entry(&format!("p{n:02}")),
        )
        .await;
    }
    put_parameter(moto, &format!("{path}/archive/old"), &entry("old")).await;

    let source = ssm::PartnersSource::Ssm {
        parameter: Some(registry.clone()),
        path: Some(path.clone()),
    };
    let file = ssm::load_partners(&client, &source).await.unwrap();
    let ids: Vec<&str> = file.partner.iter().map(|p| p.id.as_str()).collect();
    let mut expected = vec!["alpha".to_owned()];
    expected.extend((0..12).map(|n| format!("p{n:02}")));
    assert_eq!(ids, expected);

    // The path alone, and an empty path, are registries too.
    let only_path = ssm::PartnersSource::Ssm {
        parameter: None,
        path: Some(path.clone()),
    };
    assert_eq!(
        ssm::load_partners(&client, &only_path)
            .await
            .unwrap()
            .partner
            .len(),
        12
    );
    let empty = ssm::PartnersSource::Ssm {
        parameter: Some(registry.clone()),
        path: Some(format!("/freightbridge/{stage}/nobody")),
    };
    assert_eq!(
        ssm::load_partners(&client, &empty)
            .await
            .unwrap()
            .partner
            .len(),
        1
    );

    // A partner in both places is refused, naming both parameters.
    put_parameter(moto, &format!("{path}/alpha"), &entry("alpha")).await;
    let error = ssm::load_partners(&client, &source).await.unwrap_err();
    assert_eq!(
        error,
        format!(
            "partner alpha is defined in both SSM parameter {registry} and SSM parameter {path}/alpha"
        )
    );
}

#[tokio::test]
async fn registry_parameter_is_read_from_ssm_and_a_missing_one_is_a_permanent_error() {
    let moto = MotoServer::shared();
    let client = ssm::Client::new(&moto.sdk_config());
    let name = format!("/freightbridge/{}/partners", moto::unique_name("stage"));
    put_parameter(moto, &name, "# no partners yet").await;
    assert_eq!(
        ssm::get_parameter(&client, &name).await.unwrap(),
        "# no partners yet"
    );

    let missing = ssm::get_parameter(&client, &format!("{name}-missing"))
        .await
        .unwrap_err();
    assert_eq!(missing.class(), FailureClass::Permanent);
    assert_eq!(missing.code(), "ssm_parameter_unreadable");
    assert!(
        missing.to_string().contains("ParameterNotFound"),
        "{missing}"
    );
}

// ---------------------------------------------------------------- RIE harness

struct Rie {
    watchdog: Child,
    stdin: Option<ChildStdin>,
    url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Rie {
    /// RIE on a free port with `binary` as the bootstrap. The environment is exactly: moto's
    /// endpoint and test credentials, Lambda's settings, and `vars`.
    fn start(binary: &str, vars: &[(&str, &str)]) -> Rie {
        let rie = find_rie();
        let bootstrap = built_binary(binary);
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("rie.log");
        let port = free_port();
        let runtime_api_port = free_port();
        let moto = MotoServer::shared();
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WATCHDOG)
            .arg(&rie)
            .arg(format!("127.0.0.1:{port}"))
            .arg(format!("127.0.0.1:{runtime_api_port}"))
            .arg(&bootstrap)
            .arg(&log)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("AWS_REGION", moto::REGION)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_LAMBDA_FUNCTION_NAME", binary)
            .env("AWS_LAMBDA_FUNCTION_TIMEOUT", "10")
            .env(
                "RUST_LOG",
                "info,aws_config=warn,aws_smithy_runtime=warn,hyper_util=warn,rustls=warn",
            )
            .envs(vars.iter().copied())
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut watchdog = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", rie.display()));
        let stdin = watchdog.stdin.take();
        let rie = Rie {
            watchdog,
            stdin,
            url: format!("http://127.0.0.1:{port}/2015-03-31/functions/function/invocations"),
            log,
            _dir: dir,
        };
        rie.wait_until_listening(port);
        rie
    }

    /// Invoke with `event` and return the function's answer as JSON.
    async fn invoke(&self, event: &Value) -> Value {
        let (status, body) = self.invoke_raw(event).await;
        assert_eq!(status, 200, "RIE answered {status}: {body}\n{}", self.log());
        serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {body}\n{}", self.log()))
    }

    async fn invoke_raw(&self, event: &Value) -> (u16, String) {
        let client = reqwest::Client::builder()
            .timeout(INVOKE_TIMEOUT)
            .build()
            .unwrap();
        let response = client
            .post(&self.url)
            .body(event.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("invoke failed: {e}\n{}", self.log()));
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// Everything RIE and the function wrote so far.
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_until_listening(&self, port: u16) {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("RIE did not listen on {addr}:\n{}", self.log());
    }
}

impl Drop for Rie {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.watchdog.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

/// `$AWS_LAMBDA_RIE`, else the emulator shipped in the aws-sam-cli wheel in `.tools/venv`.
fn find_rie() -> PathBuf {
    if let Some(path) = std::env::var_os("AWS_LAMBDA_RIE").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "AWS_LAMBDA_RIE={} is not a file",
            path.display()
        );
        return path;
    }
    let arch = match std::env::consts::ARCH {
        "aarch64" => "arm64",
        _ => "x86_64",
    };
    let lib = workspace_root().join(".tools/venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|pythons| {
        pythons.flatten().find_map(|python| {
            let rie = python
                .path()
                .join("site-packages/samcli/local/rapid")
                .join(format!("aws-lambda-rie-{arch}"));
            rie.is_file().then_some(rie)
        })
    });
    found.unwrap_or_else(|| {
        panic!(
            "the Lambda Runtime Interface Emulator (aws-lambda-rie-{arch}) was not found under {}: \
             run `scripts/tools.sh` (it installs aws-sam-cli, which ships it) or set AWS_LAMBDA_RIE",
            lib.display()
        )
    })
}

/// The function binaries, built once per test run by cargo into the workspace's target dir
/// (cheap when they are up to date).
fn built_binary(name: &str) -> PathBuf {
    static BINARIES: OnceLock<HashMap<String, PathBuf>> = OnceLock::new();
    let binaries = BINARIES.get_or_init(|| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .current_dir(workspace_root())
            .args(["build", "--quiet", "--message-format=json"])
            .args([
                "-p", INGRESS, "-p", TRANSFORM, "-p", POSTER, "-p", RECONCILER,
            ])
            .arg("--bins");
        // The same profile as this test, so `cargo test --release` tests release binaries.
        if !cfg!(debug_assertions) {
            cargo.arg("--release");
        }
        let output = cargo.stderr(Stdio::inherit()).output().expect("cargo runs");
        assert!(
            output.status.success(),
            "cargo build of the functions failed"
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|m| m["reason"] == "compiler-artifact")
            .filter_map(|m| {
                let name = m["target"]["name"].as_str()?.to_owned();
                let executable = m["executable"].as_str()?;
                Some((name, PathBuf::from(executable)))
            })
            .collect()
    });
    binaries
        .get(name)
        .unwrap_or_else(|| panic!("cargo built no binary named {name}: {binaries:?}"))
        .clone()
}

// ---------------------------------------------------------------- moto and sample helpers

async fn create_secret(moto: &MotoServer, name: &str, value: &str) {
    moto.secretsmanager()
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

async fn put_parameter(moto: &MotoServer, name: &str, value: &str) {
    ssm::Client::new(&moto.sdk_config())
        .put_parameter()
        .name(name)
        .value(value)
        .r#type("String".into())
        .send()
        .await
        .unwrap();
}

/// Bodies on `queue`, waiting (briefly) until `expected` have arrived; with `expected` 0 it
/// checks the queue once.
async fn receive_all(moto: &MotoServer, queue: &Queue, expected: usize) -> Vec<String> {
    let client = moto.sqs();
    let mut bodies = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let messages = client
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .wait_time_seconds(if expected == 0 { 0 } else { 1 })
            .send()
            .await
            .unwrap()
            .messages
            .unwrap_or_default();
        bodies.extend(messages.into_iter().filter_map(|m| m.body));
        if expected == 0 || bodies.len() >= expected || Instant::now() >= deadline {
            return bodies;
        }
    }
}

fn sample_event(name: &str) -> Value {
    let path = workspace_root().join("events").join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// RIE's `INIT REPORT(durationMs: …)` lines.
fn init_reports(log: &str) -> Vec<&str> {
    log.lines().filter(|l| l.contains("INIT REPORT")).collect()
}

/// The Embedded Metric Format documents in `log` that carry `metric`, each checked against
/// the EMF specification's rules: one directive in namespace `freightbridge`, each declared
/// dimension and metric a member of the root, dimensions strings, values numbers.
fn emf(log: &str, metric: &str) -> Vec<Value> {
    let mut found = Vec::new();
    for line in log.lines() {
        let Some(start) = line.find("{\"") else {
            continue;
        };
        let Ok(doc) = serde_json::from_str::<Value>(&line[start..]) else {
            continue;
        };
        let Some(directives) = doc["_aws"]["CloudWatchMetrics"].as_array() else {
            continue;
        };
        assert!(doc["_aws"]["Timestamp"].is_i64(), "{doc}");
        assert_eq!(directives.len(), 1, "{doc}");
        let directive = &directives[0];
        assert_eq!(directive["Namespace"], "freightbridge", "{doc}");
        for set in directive["Dimensions"].as_array().expect("dimension sets") {
            for dimension in set.as_array().expect("a dimension set") {
                let name = dimension.as_str().expect("a dimension name");
                assert!(
                    doc[name].is_string(),
                    "dimension {name} not a string member: {doc}"
                );
            }
        }
        let mut carries = false;
        for declared in directive["Metrics"].as_array().expect("metrics") {
            let name = declared["Name"].as_str().expect("a metric name");
            assert!(doc[name].is_number(), "metric {name} not a number: {doc}");
            carries |= name == metric;
        }
        if carries {
            found.push(doc);
        }
    }
    found
}

/// Shown with `--nocapture`: the cold-start figure of each binary.
fn report_cold_start(binary: &str, log: &str) {
    let reports = init_reports(log);
    assert!(!reports.is_empty(), "no INIT REPORT in the RIE log:\n{log}");
    for report in reports {
        let figure = report.split("INIT REPORT").nth(1).unwrap_or(report);
        eprintln!("{binary}: INIT REPORT{figure}");
    }
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}
