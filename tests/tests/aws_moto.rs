//! The AWS adapters against moto server (the real AWS wire protocol on 127.0.0.1): DynamoDB
//! idempotency with the same cases the in-memory store passes, EventBridge → SQS delivery,
//! dead letters, SQS redrive and visibility, Secrets Manager; shipments' latest milestones, the
//! Odoo circuit breaker and the audit trail. One moto server serves the whole binary.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName};
use chrono::{DateTime, Duration as Span, Utc};
use freightbridge::audit::{Actor, AuditLog, AuditRecord, Outcome, Stage, Subjects};
use freightbridge::aws::audit::DynamoAuditLog;
use freightbridge::aws::dynamodb::DynamoStore;
use freightbridge::aws::eventbridge::EventBridgeBus;
use freightbridge::aws::secrets::{SecretSource, SecretsResolver};
use freightbridge::aws::sqs::{SqsDeadLetters, SqsQueue, SqsVisibility, attr as dl_attr};
use freightbridge::batch::{DeadLetter, DeadLetterSink, Visibility};
use freightbridge::breaker::{
    Admission, Breaker, BreakerConfig, BreakerState, BreakerStore, Observation, Transition,
    Versioned,
};
use freightbridge::bus::{BusError, BusEvent, Envelope, EventBus};
use freightbridge::canonical::ShipmentStatus;
use freightbridge::config::{ConfigError, SecretRef};
use freightbridge::failure::FailureReason;
use freightbridge::idempotency::memory::MemoryStore;
use freightbridge::idempotency::{
    Begin, Idempotency, IdempotencyRecord, IdempotencyStore, Policy, PutOutcome, Status, StoreError,
};
use freightbridge::ordering::{LatestMilestones, Milestone, Placement};
use freightbridge::seen::{MemorySeen, SeenStore};
use freightbridge_tests::moto::{MotoServer, unique_name};
use serde_json::{Value, json};

const NOW: &str = "2026-11-27T09:00:00Z";
const DEADLINE: &str = "2026-11-27T09:00:30Z";
const SOURCE: &str = "freightbridge.ingress";
const DETAIL_TYPE: &str = "partner.webhook.received";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn moto() -> &'static MotoServer {
    MotoServer::shared()
}

async fn dynamo_store() -> DynamoStore {
    let table = moto().create_idempotency_table().await;
    DynamoStore::new(moto().dynamodb(), table)
}

// ---------------------------------------------------------------------------------------------
// Idempotency: every case runs on the in-memory store and on DynamoDB, which must agree.

async fn duplicate_of_completed_returns_stored_result<S: IdempotencyStore>(store: S) {
    let idem = Idempotency::new(store, Policy::default());
    let begin = idem.begin("k", Some("h"), t(NOW), t(DEADLINE)).await;
    assert_eq!(
        begin.unwrap(),
        Begin::Proceed {
            prior_attempt: false
        }
    );
    idem.complete("k", r#"{"id":1}"#, t(NOW)).await.unwrap();
    let again = idem.begin("k", Some("h"), t(NOW), t(DEADLINE)).await;
    assert_eq!(
        again.unwrap(),
        Begin::Completed {
            result: Some(r#"{"id":1}"#.into())
        }
    );
}

#[tokio::test]
async fn first_call_proceeds_and_duplicate_of_completed_returns_stored_result() {
    duplicate_of_completed_returns_stored_result(MemoryStore::new()).await;
    duplicate_of_completed_returns_stored_result(dynamo_store().await).await;
}

async fn in_progress_until_deadline<S: IdempotencyStore>(store: S) {
    let idem = Idempotency::new(store, Policy::default());
    idem.begin("k", None, t(NOW), t(DEADLINE)).await.unwrap();
    let during = idem
        .begin(
            "k",
            None,
            t("2026-11-27T09:00:10Z"),
            t("2026-11-27T09:00:40Z"),
        )
        .await;
    assert_eq!(during.unwrap(), Begin::InProgress);
    let after = idem
        .begin(
            "k",
            None,
            t("2026-11-27T09:00:31Z"),
            t("2026-11-27T09:01:01Z"),
        )
        .await;
    assert_eq!(
        after.unwrap(),
        Begin::Proceed {
            prior_attempt: true
        }
    );
}

#[tokio::test]
async fn concurrent_duplicate_is_in_progress_until_the_deadline_lapses() {
    in_progress_until_deadline(MemoryStore::new()).await;
    in_progress_until_deadline(dynamo_store().await).await;
}

async fn release_then_retry<S: IdempotencyStore>(store: S) {
    let idem = Idempotency::new(store, Policy::default());
    idem.begin("k", None, t(NOW), t(DEADLINE)).await.unwrap();
    idem.release("k").await.unwrap();
    assert_eq!(idem.store().get("k").await.unwrap(), None);
    let retry = idem.begin("k", None, t(NOW), t(DEADLINE)).await;
    assert_eq!(
        retry.unwrap(),
        Begin::Proceed {
            prior_attempt: false
        }
    );
}

async fn abandon_then_retry<S: IdempotencyStore>(store: S) {
    let idem = Idempotency::new(store, Policy::default());
    idem.begin("k", None, t(NOW), t(DEADLINE)).await.unwrap();
    idem.abandon("k").await.unwrap();
    let kept = idem.store().get("k").await.unwrap().unwrap();
    assert_eq!(kept.status, Status::InProgress);
    let retry = idem.begin("k", None, t(NOW), t(DEADLINE)).await;
    assert_eq!(
        retry.unwrap(),
        Begin::Proceed {
            prior_attempt: true
        }
    );
    idem.complete("k", "{}", t(NOW)).await.unwrap();
    idem.abandon("k").await.unwrap();
    let done = idem.begin("k", None, t(NOW), t(DEADLINE)).await;
    assert!(
        matches!(done.unwrap(), Begin::Completed { .. }),
        "abandon never reopens a completed key"
    );
}

#[tokio::test]
async fn abandoned_attempt_lets_a_retry_in_and_tells_it_to_check_first() {
    abandon_then_retry(MemoryStore::new()).await;
    abandon_then_retry(dynamo_store().await).await;
}

#[tokio::test]
async fn failed_handler_releases_the_key_for_a_retry() {
    release_then_retry(MemoryStore::new()).await;
    release_then_retry(dynamo_store().await).await;
}

async fn payload_mismatch<S: IdempotencyStore>(store: S) {
    let idem = Idempotency::new(store, Policy::default());
    idem.begin("k", Some("h1"), t(NOW), t(DEADLINE))
        .await
        .unwrap();
    let while_running = idem.begin("k", Some("h2"), t(NOW), t(DEADLINE)).await;
    assert_eq!(while_running.unwrap(), Begin::PayloadMismatch);
    idem.complete("k", "{}", t(NOW)).await.unwrap();
    let other = idem.begin("k", Some("h2"), t(NOW), t(DEADLINE)).await;
    assert_eq!(other.unwrap(), Begin::PayloadMismatch);
}

#[tokio::test]
async fn reused_key_with_different_payload_is_rejected() {
    payload_mismatch(MemoryStore::new()).await;
    payload_mismatch(dynamo_store().await).await;
}

/// moto never deletes expired items (TTL is not enforced), so this proves the conditional put
/// itself treats an item past its `expiration` as absent.
async fn expired_counts_as_absent<S: IdempotencyStore>(store: S) {
    let idem = Idempotency::new(
        store,
        Policy {
            ttl: Span::hours(1),
        },
    );
    idem.begin("k", Some("h1"), t(NOW), t(DEADLINE))
        .await
        .unwrap();
    idem.complete("k", "{}", t(NOW)).await.unwrap();
    let before = t("2026-11-27T09:59:59Z");
    let still = idem.begin("k", Some("h1"), before, before + Span::seconds(30));
    assert!(matches!(still.await.unwrap(), Begin::Completed { .. }));
    // Exactly at the expiry second the record no longer counts (`is_expired`), and a new
    // payload is not compared with the dead record's.
    let at_expiry = t("2026-11-27T10:00:00Z");
    let begin = idem
        .begin("k", Some("h2"), at_expiry, at_expiry + Span::seconds(30))
        .await;
    assert_eq!(
        begin.unwrap(),
        Begin::Proceed {
            prior_attempt: true
        }
    );
    let taken = idem.store().get("k").await.unwrap().unwrap();
    assert_eq!(taken.status, Status::InProgress);
    assert_eq!(taken.payload_hash.as_deref(), Some("h2"));
}

#[tokio::test]
async fn expired_completed_record_counts_as_absent() {
    expired_counts_as_absent(MemoryStore::new()).await;
    expired_counts_as_absent(dynamo_store().await).await;
}

/// Records the DynamoDB operations a client sends (from the `X-Amz-Target` header).
#[derive(Debug, Clone, Default)]
struct OperationLog(Arc<Mutex<Vec<String>>>);

impl OperationLog {
    fn operations(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl Intercept for OperationLog {
    fn name(&self) -> &'static str {
        "OperationLog"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let target = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .unwrap_or("<no target>");
        self.0.lock().unwrap().push(target.to_owned());
        Ok(())
    }
}

#[tokio::test]
async fn refused_put_returns_the_stored_record_without_reading_it_again() {
    let table = moto().create_idempotency_table().await;
    let log = OperationLog::default();
    let config = aws_sdk_dynamodb::config::Builder::from(&moto().sdk_config())
        .interceptor(log.clone())
        .build();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), table);

    let first = IdempotencyRecord {
        key: "easypost:evt_1".into(),
        status: Status::InProgress,
        expires_at: t(NOW).timestamp() + 3600,
        in_progress_expires_at: Some(t(DEADLINE).timestamp_millis()),
        payload_hash: Some("sha256:aa".into()),
        result: None,
    };
    let outcome = store.put_in_progress(&first, t(NOW)).await.unwrap();
    assert_eq!(outcome, PutOutcome::Acquired { replaced: false });

    let second = IdempotencyRecord {
        payload_hash: Some("sha256:bb".into()),
        ..first.clone()
    };
    let outcome = store
        .put_in_progress(&second, t("2026-11-27T09:00:05Z"))
        .await
        .unwrap();
    assert_eq!(outcome, PutOutcome::Exists(first));
    assert_eq!(log.operations(), vec!["PutItem", "PutItem"]);
}

#[tokio::test]
async fn completed_item_has_powertools_attributes_and_no_lock_expiry() {
    let store = dynamo_store().await;
    let idem = Idempotency::new(store.clone(), Policy::default());
    idem.begin("k", Some("sha256:aa"), t(NOW), t(DEADLINE))
        .await
        .unwrap();
    idem.complete("k", r#"{"event_id":"e1"}"#, t(NOW))
        .await
        .unwrap();

    let item = moto()
        .dynamodb()
        .get_item()
        .table_name(store.table())
        .key("id", AttributeValue::S("k".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let expected_expiry = (t(NOW) + Policy::default().ttl).timestamp().to_string();
    assert_eq!(item["status"], AttributeValue::S("COMPLETED".into()));
    assert_eq!(
        item["data"],
        AttributeValue::S(r#"{"event_id":"e1"}"#.into())
    );
    assert_eq!(item["expiration"], AttributeValue::N(expected_expiry));
    assert_eq!(item["validation"], AttributeValue::S("sha256:aa".into()));
    assert!(!item.contains_key("in_progress_expiration"));
}

#[tokio::test]
async fn unreachable_store_is_unavailable_and_says_why() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let config = aws_sdk_dynamodb::config::Builder::from(&moto().sdk_config())
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
        .build();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(config), "t");
    let err = store.get("k").await.unwrap_err();
    let StoreError::Unavailable(message) = err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert!(message.to_lowercase().contains("connect"), "{message}");
}

#[tokio::test]
async fn missing_table_is_unavailable_not_absent() {
    let store = DynamoStore::new(moto().dynamodb(), unique_name("no-such-table"));
    let err = store.get("k").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("ResourceNotFound")),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Seen scan histories: the same cases on memory and on DynamoDB (the idempotency table).

fn entries(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

async fn seen_entries_accumulate_per_scope_until_they_expire<S: SeenStore>(store: S) {
    let now = t(NOW).timestamp();
    assert!(store.seen("easypost#1", now).await.unwrap().is_empty());
    store
        .mark("easypost#1", &entries(&["a", "b"]), now + 60)
        .await
        .unwrap();
    store
        .mark("easypost#1", &entries(&["b", "c"]), now + 120)
        .await
        .unwrap();
    store.mark("easypost#1", &[], now + 10).await.unwrap();
    let seen: BTreeSet<String> = store
        .seen("easypost#1", now + 90)
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(seen, BTreeSet::from(["a".into(), "b".into(), "c".into()]));
    assert!(store.seen("easypost#2", now).await.unwrap().is_empty());
    assert!(store.seen("shippo#1", now).await.unwrap().is_empty());
    // Expired but not yet removed by TTL: as good as gone.
    assert!(
        store
            .seen("easypost#1", now + 120)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn seen_scan_histories_behave_alike_on_memory_and_dynamodb() {
    seen_entries_accumulate_per_scope_until_they_expire(MemorySeen::new()).await;
    seen_entries_accumulate_per_scope_until_they_expire(dynamo_store().await).await;
}

#[tokio::test]
async fn a_seen_set_is_one_item_with_a_string_set_and_the_table_ttl() {
    let store = dynamo_store().await;
    let now = t(NOW).timestamp();
    store
        .mark(
            "aftership#0000000000000000",
            &entries(&["x", "y"]),
            now + 60,
        )
        .await
        .unwrap();
    let item = moto()
        .dynamodb()
        .get_item()
        .table_name(store.table())
        .key(
            "id",
            AttributeValue::S("seen#aftership#0000000000000000".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        item["expiration"],
        AttributeValue::N((now + 60).to_string())
    );
    let AttributeValue::Ss(set) = &item["entries"] else {
        panic!("{item:?}");
    };
    assert_eq!(
        set.iter().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from(["x".into(), "y".into()])
    );

    // A scope too long for a key is stored under its digest and still found.
    let long = format!("easypost#{}", "9".repeat(3000));
    store.mark(&long, &entries(&["z"]), now + 60).await.unwrap();
    assert!(store.seen(&long, now).await.unwrap().contains("z"));
}

#[tokio::test]
async fn an_unreachable_seen_set_is_unavailable() {
    let store = DynamoStore::new(moto().dynamodb(), unique_name("no-such-table"));
    let err = store.seen("easypost#1", 0).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = store
        .mark("easypost#1", &entries(&["a"]), 0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Latest milestone per shipment: the same cases on memory and on DynamoDB (the idempotency
// table), where the conditional UpdateItem is the ordering rule.

fn milestone(status: ShipmentStatus, at: &str, source: &str) -> Milestone {
    Milestone {
        status,
        occurred_at: t(at),
        event_id: freightbridge::canonical::event_id("easypost", source, 0),
    }
}

async fn latest_moves_forward_only<S: LatestMilestones>(store: S) {
    use Placement::{Current, History};
    let now = t(NOW);
    let expiry = now.timestamp() + 60;
    let key = "latest#fedex#1";
    let cases = [
        (
            "first",
            milestone(ShipmentStatus::InTransit, "2024-08-02T12:00:00Z", "a"),
            Current,
        ),
        (
            "older",
            milestone(ShipmentStatus::PickedUp, "2024-08-02T09:00:00Z", "b"),
            History,
        ),
        (
            "equal time",
            milestone(ShipmentStatus::Delayed, "2024-08-02T12:00:00Z", "c"),
            Current,
        ),
        (
            "delivered",
            milestone(ShipmentStatus::Delivered, "2024-08-03T10:00:00Z", "d"),
            Current,
        ),
        (
            "older in transit",
            milestone(ShipmentStatus::InTransit, "2024-08-02T18:00:00Z", "e"),
            History,
        ),
        (
            "newer in transit",
            milestone(ShipmentStatus::InTransit, "2024-08-03T12:00:00Z", "f"),
            History,
        ),
        (
            "retry of delivered",
            milestone(ShipmentStatus::Delivered, "2024-08-03T10:00:00Z", "d"),
            Current,
        ),
        (
            "returned",
            milestone(ShipmentStatus::Returned, "2024-08-04T10:00:00Z", "g"),
            Current,
        ),
    ];
    for (name, incoming, expected) in &cases {
        let placed = store.advance(key, incoming, now, expiry).await.unwrap();
        assert_eq!(placed, *expected, "{name}");
    }
    assert_eq!(store.latest(key, now).await.unwrap(), Some(cases[7].1));
    assert_eq!(store.latest("latest#fedex#2", now).await.unwrap(), None);
    // Expired but not yet removed by TTL: as good as gone, and an older milestone may start over.
    let later = t(NOW) + Span::seconds(60);
    assert_eq!(store.latest(key, later).await.unwrap(), None);
    let placed = store.advance(key, &cases[1].1, later, expiry + 60).await;
    assert_eq!(placed.unwrap(), Current);
}

#[tokio::test]
async fn latest_milestones_move_forward_only_alike_on_memory_and_dynamodb() {
    latest_moves_forward_only(MemoryStore::new()).await;
    latest_moves_forward_only(dynamo_store().await).await;
}

#[tokio::test]
async fn racing_milestones_leave_the_newest_as_latest_and_only_it_can_be_current_last() {
    let store = Arc::new(dynamo_store().await);
    let now = t(NOW);
    let key = "latest#ups#1z999aa10123456784";
    // Twelve scans an hour apart, sent all at once in a shuffled order.
    let order = [7, 2, 11, 0, 5, 9, 1, 10, 3, 8, 4, 6];
    let tasks: Vec<_> = order
        .iter()
        .map(|hour| {
            let store = store.clone();
            let m = milestone(
                ShipmentStatus::InTransit,
                &format!("2024-08-02T{hour:02}:00:00Z"),
                &format!("scan{hour}"),
            );
            tokio::spawn(async move {
                store
                    .advance(key, &m, now, now.timestamp() + 60)
                    .await
                    .map(|p| (m, p))
            })
        })
        .collect();
    let mut placed = Vec::new();
    for task in tasks {
        placed.push(task.await.unwrap().unwrap());
    }
    let newest = milestone(ShipmentStatus::InTransit, "2024-08-02T11:00:00Z", "scan11");
    assert!(placed.contains(&(newest, Placement::Current)));
    // No lost update: whatever interleaving happened, the stored latest is the newest scan.
    assert_eq!(store.latest(key, now).await.unwrap(), Some(newest));
}

#[tokio::test]
async fn a_latest_milestone_is_one_item_with_the_table_ttl() {
    let store = dynamo_store().await;
    let now = t(NOW);
    let delivered = milestone(ShipmentStatus::Delivered, "2024-08-03T10:00:00.250Z", "d");
    store
        .advance("latest#fedex#1", &delivered, now, now.timestamp() + 60)
        .await
        .unwrap();
    let item = moto()
        .dynamodb()
        .get_item()
        .table_name(store.table())
        .key("id", AttributeValue::S("latest#fedex#1".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(
        item["expiration"],
        AttributeValue::N((now.timestamp() + 60).to_string())
    );
    assert_eq!(
        item["latest_at"],
        AttributeValue::N(delivered.occurred_at.timestamp_micros().to_string())
    );
    assert_eq!(item["latest_status"], AttributeValue::S("delivered".into()));
    assert_eq!(item["latest_terminal"], AttributeValue::Bool(true));
    assert_eq!(
        item["latest_event"],
        AttributeValue::S(delivered.event_id.to_string())
    );
}

#[tokio::test]
async fn an_unreachable_latest_milestone_store_is_unavailable() {
    let store = DynamoStore::new(moto().dynamodb(), unique_name("no-such-table"));
    let m = milestone(ShipmentStatus::InTransit, "2024-08-02T12:00:00Z", "a");
    let err = store
        .advance("latest#x#1", &m, t(NOW), 0)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = store.latest("latest#x#1", t(NOW)).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// The Odoo circuit breaker: shared by every caller through one item of the idempotency table.

fn breaker_config() -> BreakerConfig {
    BreakerConfig {
        threshold: 3,
        cooldown: Span::seconds(1),
        max_cooldown: Span::seconds(8),
        probe_lease: Span::seconds(30),
        // Every admission reads the table, so the test sees each transition at once.
        trust_closed_for: std::time::Duration::ZERO,
    }
}

/// Two breakers over two clients, as two Lambda instances would be. Times are passed
/// explicitly: the cooldown "passes" without sleeping.
#[tokio::test]
async fn breaker_shared_through_dynamodb_opens_admits_one_probe_and_closes() {
    let table = moto().create_idempotency_table().await;
    let a = Breaker::new(
        DynamoStore::new(moto().dynamodb(), &table),
        "odoo",
        breaker_config(),
    );
    let b = Breaker::new(
        DynamoStore::new(moto().dynamodb(), &table),
        "odoo",
        breaker_config(),
    );
    let now = t(NOW);
    assert_eq!(a.admit(now).await, Admission::Call);

    for _ in 0..2 {
        assert_eq!(
            a.observe(Observation::Unreachable, now).await.unwrap(),
            None
        );
    }
    let until = now + Span::seconds(1);
    assert_eq!(
        a.observe(Observation::Unreachable, now).await.unwrap(),
        Some(Transition::Opened { until })
    );
    assert_eq!(b.admit(now).await, Admission::Wait { until });
    assert_eq!(a.admit(now).await, Admission::Wait { until });

    // Both ask at once after the cooldown: the conditional write lets one take the lease.
    let later = until + Span::milliseconds(1);
    let (from_a, from_b) = tokio::join!(a.admit(later), b.admit(later));
    // The other looks again within a second: the probe's answer may close it by then.
    let lease = Admission::Wait {
        until: later + Span::seconds(1),
    };
    let (prober, waiter) = match (from_a, from_b) {
        (Admission::Probe, other) => {
            assert_eq!(other, lease, "b while a probes");
            (&a, &b)
        }
        (other, Admission::Probe) => {
            assert_eq!(other, lease, "a while b probes");
            (&b, &a)
        }
        other => panic!("expected exactly one probe, got {other:?}"),
    };
    assert_eq!(waiter.admit(later).await, lease);

    assert_eq!(
        prober.observe(Observation::Answered, later).await.unwrap(),
        Some(Transition::Closed)
    );
    assert_eq!(a.admit(later).await, Admission::Call);
    assert_eq!(b.admit(later).await, Admission::Call);
}

#[tokio::test]
async fn breaker_swap_on_a_stale_version_is_refused_and_changes_nothing() {
    let first = dynamo_store().await;
    let second = DynamoStore::new(moto().dynamodb(), first.table());
    assert_eq!(first.load("odoo").await.unwrap(), Versioned::default());

    let failing = BreakerState {
        consecutive_failures: 1,
        ..BreakerState::default()
    };
    assert!(first.swap("odoo", 0, &failing).await.unwrap());
    assert!(
        !second.swap("odoo", 0, &failing).await.unwrap(),
        "version 0 only creates"
    );
    let open = BreakerState {
        consecutive_failures: 3,
        open_until: Some(t(NOW).timestamp_millis() + 1000),
        probe_until: None,
        trips: 1,
    };
    assert!(second.swap("odoo", 1, &open).await.unwrap());
    assert!(
        !first
            .swap("odoo", 1, &BreakerState::default())
            .await
            .unwrap(),
        "stale version"
    );
    assert!(
        !first
            .swap("odoo", 5, &BreakerState::default())
            .await
            .unwrap()
    );
    assert_eq!(
        first.load("odoo").await.unwrap(),
        Versioned {
            state: open,
            version: 2
        }
    );
    // Another breaker's name is another item.
    assert_eq!(first.load("other").await.unwrap(), Versioned::default());
}

#[tokio::test]
async fn breaker_item_has_no_ttl_and_a_corrupt_one_is_reported() {
    let store = dynamo_store().await;
    let leased = BreakerState {
        consecutive_failures: 4,
        open_until: Some(1_794_395_230_000),
        probe_until: Some(1_794_395_290_000),
        trips: 2,
    };
    assert!(store.swap("odoo", 0, &leased).await.unwrap());
    assert!(
        store
            .swap("odoo", 1, &BreakerState::default())
            .await
            .unwrap()
    );
    let read = || async {
        moto()
            .dynamodb()
            .get_item()
            .table_name(store.table())
            .key("id", AttributeValue::S("breaker#odoo".into()))
            .send()
            .await
            .unwrap()
            .item
            .unwrap()
    };
    let item = read().await;
    assert_eq!(item["version"], AttributeValue::N("2".into()));
    assert_eq!(item["consecutive_failures"], AttributeValue::N("0".into()));
    for gone in ["open_until", "probe_until", "expiration"] {
        assert!(!item.contains_key(gone), "{gone}: {item:?}");
    }

    moto()
        .dynamodb()
        .put_item()
        .table_name(store.table())
        .item("id", AttributeValue::S("breaker#odoo".into()))
        .item("version", AttributeValue::S("two".into()))
        .send()
        .await
        .unwrap();
    let err = store.load("odoo").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt { key, .. } if key == "breaker#odoo"),
        "{err:?}"
    );
}

#[tokio::test]
async fn unreachable_breaker_store_is_unavailable() {
    let store = DynamoStore::new(moto().dynamodb(), unique_name("no-such-table"));
    for err in [
        store.load("odoo").await.unwrap_err(),
        store
            .swap("odoo", 0, &BreakerState::default())
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("ResourceNotFound")),
            "{err:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// EventBridge → SQS

fn sqs_queue(url: &str) -> SqsQueue {
    SqsQueue::new(moto().sqs(), url)
}

/// Receive (and delete) until `want` messages arrived or a few seconds passed with none.
async fn drain(queue: &SqsQueue, want: usize) -> Vec<Message> {
    let mut out = Vec::new();
    let mut empty_polls = 0;
    while out.len() < want && empty_polls < 3 {
        let batch = queue.receive(10, 1, None).await.unwrap();
        if batch.is_empty() {
            empty_polls += 1;
        }
        for message in batch {
            queue
                .delete(message.receipt_handle().unwrap())
                .await
                .unwrap();
            out.push(message);
        }
    }
    out
}

fn envelope(message: &Message) -> Envelope<Value> {
    serde_json::from_str(message.body().unwrap()).unwrap()
}

#[tokio::test]
async fn published_event_reaches_the_queue_in_an_eventbridge_envelope() {
    let route = moto()
        .create_bus_routed_to_queue(&[SOURCE], &[DETAIL_TYPE])
        .await;
    let bus = EventBridgeBus::new(moto().eventbridge(), &route.bus_name);
    let detail = json!({"partner": "easypost", "delivery_id": "evt_1", "body": {"x": [1, 2]}});
    let wanted = BusEvent::new(SOURCE, DETAIL_TYPE, &detail).unwrap();
    let other_type = BusEvent::new(SOURCE, "partner.webhook.other", &json!({"n": 1})).unwrap();
    let other_source = BusEvent::new("someone.else", DETAIL_TYPE, &json!({"n": 2})).unwrap();
    bus.publish(&[other_type, wanted, other_source])
        .await
        .unwrap();

    let messages = drain(&sqs_queue(&route.queue.url), 2).await;
    assert_eq!(messages.len(), 1, "only the matching event is routed");
    let env = envelope(&messages[0]);
    assert_eq!(env.source, SOURCE);
    assert_eq!(env.detail_type, DETAIL_TYPE);
    assert_eq!(env.detail, detail);
    assert!(!env.id.is_empty());
}

#[tokio::test]
async fn twenty_five_events_are_sent_in_chunks_and_all_arrive_once() {
    let route = moto()
        .create_bus_routed_to_queue(&[SOURCE], &[DETAIL_TYPE])
        .await;
    let bus = EventBridgeBus::new(moto().eventbridge(), &route.bus_name);
    let events: Vec<BusEvent> = (0..25)
        .map(|n| BusEvent::new(SOURCE, DETAIL_TYPE, &json!({ "n": n })).unwrap())
        .collect();
    bus.publish(&events).await.unwrap();

    let messages = drain(&sqs_queue(&route.queue.url), 26).await;
    let numbers: Vec<i64> = messages
        .iter()
        .map(|m| envelope(m).detail["n"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers.len(), 25, "each event exactly once: {numbers:?}");
    assert_eq!(
        numbers.into_iter().collect::<BTreeSet<_>>(),
        (0..25).collect::<BTreeSet<_>>()
    );
}

#[tokio::test]
async fn an_oversized_event_fails_the_publish_before_anything_is_sent() {
    let route = moto()
        .create_bus_routed_to_queue(&[SOURCE], &[DETAIL_TYPE])
        .await;
    let bus = EventBridgeBus::new(moto().eventbridge(), &route.bus_name);
    let small = BusEvent::new(SOURCE, DETAIL_TYPE, &json!({"n": 1})).unwrap();
    let huge = BusEvent::new(SOURCE, DETAIL_TYPE, &json!({"pad": "x".repeat(300 * 1024)})).unwrap();
    let err = bus.publish(&[small, huge]).await.unwrap_err();
    assert!(matches!(err, BusError::Invalid(_)), "{err:?}");
    let queue = sqs_queue(&route.queue.url);
    assert!(queue.receive(10, 1, None).await.unwrap().is_empty());
}

#[tokio::test]
async fn publishing_to_a_missing_bus_is_an_error_naming_the_cause() {
    let bus = EventBridgeBus::new(moto().eventbridge(), unique_name("no-such-bus"));
    let event = BusEvent::new(SOURCE, DETAIL_TYPE, &json!({"n": 1})).unwrap();
    let err = bus.publish(&[event]).await.unwrap_err();
    assert!(
        matches!(&err, BusError::Unavailable(m) if m.contains("ResourceNotFound")),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Dead letters and redrive

#[tokio::test]
async fn dead_letter_keeps_the_body_and_carries_its_reason() {
    let queue = moto().create_queue("dead-letters").await;
    let sink = SqsDeadLetters::new(moto().sqs(), &queue.url);
    let body = r#"{"version":"0","detail":{"tracking":"1Z999"}}"#;
    sink.send(DeadLetter {
        body: body.into(),
        message_id: "0f4c-original".into(),
        reason: FailureReason::permanent("odoo_missing_record", "picking WH/OUT/7 not found"),
        consumer: "odoo-poster".into(),
        receive_count: 4,
    })
    .await
    .unwrap();

    let messages = drain(&sqs_queue(&queue.url), 1).await;
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.body(), Some(body));
    let attrs = message.message_attributes().unwrap();
    let expected = [
        (dl_attr::ERROR_CLASS, "permanent"),
        (dl_attr::ERROR_CODE, "odoo_missing_record"),
        (dl_attr::ERROR_MESSAGE, "picking WH/OUT/7 not found"),
        (dl_attr::CONSUMER, "odoo-poster"),
        (dl_attr::ORIGINAL_MESSAGE_ID, "0f4c-original"),
        (dl_attr::RECEIVE_COUNT, "4"),
    ];
    for (name, value) in expected {
        assert_eq!(attrs[name].string_value(), Some(value), "{name}");
    }
    assert_eq!(attrs[dl_attr::RECEIVE_COUNT].data_type(), "Number");
}

#[tokio::test]
async fn unconsumed_message_moves_to_the_dlq_after_max_receives() {
    let pair = moto().create_queue_with_dlq(2, 0).await;
    let queue = sqs_queue(&pair.queue.url);
    let dlq = sqs_queue(&pair.dlq.url);
    let id = queue.send(r#"{"n":1}"#).await.unwrap();

    for expected_count in ["1", "2"] {
        let got = queue.receive(1, 1, Some(0)).await.unwrap();
        assert_eq!(got.len(), 1, "receive {expected_count}");
        assert_eq!(got[0].message_id(), Some(id.as_str()));
        let count = got[0]
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount));
        assert_eq!(count.map(String::as_str), Some(expected_count));
    }
    assert!(queue.receive(1, 1, Some(0)).await.unwrap().is_empty());
    let dead = drain(&dlq, 1).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].body(), Some(r#"{"n":1}"#));
}

/// The consumer's backoff for a retried record: the message comes back when told, not after
/// the queue's own visibility timeout (30 s by default).
#[tokio::test]
async fn visibility_delay_brings_a_message_back_at_once_or_holds_it() {
    let queue = moto().create_queue("backoff").await;
    let sqs = sqs_queue(&queue.url);
    let visibility = SqsVisibility::new(moto().sqs(), &queue.url);
    let id = sqs.send(r#"{"n":1}"#).await.unwrap();
    let receive_count = |message: &Message| {
        message
            .attributes()
            .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
            .cloned()
    };
    let handle = |message: &Message| message.receipt_handle().unwrap_or_default().to_owned();

    let first = sqs.receive(1, 1, None).await.unwrap();
    assert_eq!(first.len(), 1);
    assert!(
        sqs.receive(1, 0, None).await.unwrap().is_empty(),
        "held by the queue's visibility timeout"
    );
    visibility
        .delay(&handle(&first[0]), std::time::Duration::ZERO)
        .await
        .unwrap();
    // Received with a zero timeout, so only a delay can hold it afterwards.
    let again = sqs.receive(1, 1, Some(0)).await.unwrap();
    assert_eq!(again.len(), 1, "visible again at once");
    assert_eq!(again[0].message_id(), Some(id.as_str()));
    assert_eq!(receive_count(&again[0]).as_deref(), Some("2"));

    visibility
        .delay(&handle(&again[0]), std::time::Duration::from_secs(30))
        .await
        .unwrap();
    assert!(
        sqs.receive(1, 0, None).await.unwrap().is_empty(),
        "held for the delay"
    );

    // Still on the queue, not lost: releasing it brings it back.
    sqs.change_visibility(&handle(&again[0]), 0).await.unwrap();
    let third = sqs.receive(1, 1, None).await.unwrap();
    assert_eq!(third.len(), 1);
    assert_eq!(receive_count(&third[0]).as_deref(), Some("3"));
}

#[tokio::test]
async fn visibility_delay_with_an_unknown_receipt_handle_is_an_error() {
    let queue = moto().create_queue("backoff").await;
    sqs_queue(&queue.url).send("{}").await.unwrap();
    let visibility = SqsVisibility::from_config(&moto().sdk_config(), &queue.url);
    let err = visibility
        .delay("not-a-receipt-handle", std::time::Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(err.contains("ChangeMessageVisibility"), "{err}");
    assert!(err.contains("ReceiptHandleIsInvalid"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// Secrets Manager

/// The real client, counting how often it is asked.
struct CountingSource {
    client: aws_sdk_secretsmanager::Client,
    reads: AtomicUsize,
}

impl SecretSource for CountingSource {
    async fn fetch(&self, secret_id: &str) -> Result<String, String> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.client.fetch(secret_id).await
    }
}

#[tokio::test]
async fn secrets_manager_reference_resolves_once_and_is_then_cached() {
    let client = moto().secretsmanager();
    let arn = client
        .create_secret()
        .name(unique_name("easypost-webhook"))
        .secret_string("whsec_first")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let reference = SecretRef::parse(&format!("secretsmanager:{arn}")).unwrap();
    let resolver = SecretsResolver::new(CountingSource {
        client: client.clone(),
        reads: AtomicUsize::new(0),
    });

    assert_eq!(
        resolver.resolve(&reference).await.unwrap().expose(),
        "whsec_first"
    );
    client
        .put_secret_value()
        .secret_id(&arn)
        .secret_string("whsec_rotated")
        .send()
        .await
        .unwrap();
    // Served from the cache: neither a resolve nor an early refresh asks again.
    assert_eq!(
        resolver.resolve(&reference).await.unwrap().expose(),
        "whsec_first"
    );
    assert_eq!(
        resolver.refresh(&reference).await.unwrap().expose(),
        "whsec_first"
    );
    assert_eq!(resolver.source().reads.load(Ordering::SeqCst), 1);

    // A fresh resolver (a new cold start) sees the rotated value.
    let cold = SecretsResolver::from_config(&moto().sdk_config());
    assert_eq!(
        cold.resolve(&reference).await.unwrap().expose(),
        "whsec_rotated"
    );
}

#[tokio::test]
async fn missing_secret_is_an_error_naming_the_reference() {
    let resolver = SecretsResolver::from_config(&moto().sdk_config());
    let name = unique_name("absent");
    let reference = SecretRef::parse(&format!("secretsmanager:{name}")).unwrap();
    let err = resolver.resolve(&reference).await.unwrap_err();
    let ConfigError::Secret { reference, message } = err else {
        panic!("expected a secret error, got {err:?}");
    };
    assert_eq!(reference, format!("secretsmanager:{name}"));
    assert!(message.contains("ResourceNotFound"), "{message}");
}

/// A partner rotates its secret in Secrets Manager (PutSecretValue) while ingress stays warm.
/// The refresh interval is shortened for the test only; production keeps the minute.
#[tokio::test]
async fn warm_ingress_accepts_a_secret_rotated_in_secrets_manager_after_the_refresh_interval() {
    use aws_lambda_events::http::{HeaderMap, HeaderValue};
    use freightbridge::bus::memory::MemoryBus;
    use freightbridge::config::{PartnersFile, Secret};
    use freightbridge::signature::{EASYPOST_SIGNATURE, Scheme, sign};
    use webhook_ingress::{Ingress, resolve_registry};

    const INTERVAL: std::time::Duration = std::time::Duration::from_secs(3);
    const BODY: &str =
        include_str!("../../events/partners/easypost-tracker-updated-in-transit.json");
    let client = moto().secretsmanager();
    let mut arns = Vec::new();
    for (name, value) in [
        ("ep-current", "ep-secret-1"),
        ("ep-previous", "ep-secret-0"),
    ] {
        let created = client
            .create_secret()
            .name(unique_name(name))
            .secret_string(value)
            .send()
            .await
            .unwrap();
        arns.push(created.arn.unwrap());
    }
    let partners = PartnersFile::parse(&format!(
        "[[partner]]\nid = \"easypost\"\nformat = \"easypost\"\n[partner.signature]\n\
         scheme = \"easypost\"\nsecrets = [\"secretsmanager:{}\", \"secretsmanager:{}\"]\n",
        arns[0], arns[1]
    ))
    .unwrap();
    // The cold start, as `main` does it.
    let resolver = SecretsResolver::with_refresh_interval(client.clone(), INTERVAL);
    let registry = resolve_registry(&partners, &resolver).await.unwrap();
    let ingress = Ingress::new(
        Arc::new(registry),
        Idempotency::new(Arc::new(MemoryStore::new()), Policy::default()),
        Arc::new(MemoryBus::new()),
    )
    .with_refresher(resolver);

    // The partner rotates: the new secret becomes current, the old one previous.
    for (arn, value) in arns.iter().zip(["ep-secret-2", "ep-secret-1"]) {
        client
            .put_secret_value()
            .secret_id(arn)
            .secret_string(value)
            .send()
            .await
            .unwrap();
    }
    let now = Utc::now();
    let signed_with = |secret: &str| {
        let (_, signature) = sign(
            &Scheme::EasyPost,
            &Secret::new(secret),
            BODY.as_bytes(),
            now,
            "m",
        )
        .unwrap()
        .remove(0);
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert(
            EASYPOST_SIGNATURE,
            HeaderValue::try_from(signature).unwrap(),
        );
        headers
    };
    let deliver = |headers: HeaderMap| {
        let ingress = &ingress;
        async move {
            ingress
                .handle(
                    "easypost",
                    &headers,
                    None,
                    BODY.as_bytes(),
                    now,
                    now + Span::seconds(10),
                )
                .await
                .status
        }
    };

    assert_eq!(
        deliver(signed_with("ep-secret-2")).await,
        401,
        "read less than the interval ago"
    );
    tokio::time::sleep(INTERVAL).await;
    assert_eq!(
        deliver(signed_with("ep-secret-2")).await,
        202,
        "re-read, without a cold start"
    );
    assert_eq!(
        deliver(signed_with("ep-secret-0")).await,
        401,
        "rotated out"
    );
}

// ---------------------------------------------------------------------------------------------
// Audit trail

/// Each record once per subject key, read back oldest first a page at a time, BatchWriteItem in
/// chunks of 25.
#[tokio::test]
async fn the_audit_table_keeps_a_subjects_records_in_order_across_pages_and_skips_expired_ones() {
    let table = moto().create_audit_table().await;
    let log = DynamoAuditLog::new(moto().dynamodb(), &table, Span::days(400));
    let base = Utc::now() - Span::minutes(10);
    // 40 records of one shipment, each filed under three keys: five BatchWriteItem chunks.
    let records: Vec<AuditRecord> = (0..40)
        .rev()
        .map(|n| {
            AuditRecord::new(
                Stage::Poster,
                Actor::default(),
                "milestone_noted",
                base + Span::seconds(n),
                Outcome::Done,
            )
            .subjects(Subjects {
                shipments: vec!["1ZPAGES".into()],
                events: vec![uuid::Uuid::new_v4()],
                invoices: vec!["INV-1".into()],
                ..Default::default()
            })
        })
        .collect();
    log.write(&records).await.unwrap();
    // Written again (a retried write): still one item per record and key.
    log.write(&records[..5]).await.unwrap();
    let got = log.by_subject("shipment#1ZPAGES", 1_000).await.unwrap();
    assert_eq!(got.len(), 40);
    assert!(got.windows(2).all(|w| w[0].at < w[1].at), "oldest first");
    let first_ten = log.by_subject("invoice#INV-1", 10).await.unwrap();
    assert_eq!(first_ten, got[..10].to_vec());

    // Expired but not yet removed (moto, like DynamoDB for a while, keeps it): skipped.
    let short = DynamoAuditLog::new(moto().dynamodb(), &table, Span::seconds(1));
    let old = AuditRecord::new(
        Stage::Ingress,
        Actor::default(),
        "webhook_received",
        base - Span::days(2),
        Outcome::Done,
    )
    .subjects(Subjects {
        shipments: vec!["1ZPAGES".into()],
        ..Default::default()
    });
    short.write(std::slice::from_ref(&old)).await.unwrap();
    let raw = moto()
        .dynamodb()
        .query()
        .table_name(&table)
        .key_condition_expression("subject = :s")
        .expression_attribute_values(":s", AttributeValue::S("shipment#1ZPAGES".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(raw.count(), 41, "the expired item is still in the table");
    let got = log.by_subject("shipment#1ZPAGES", 1_000).await.unwrap();
    assert_eq!(got.len(), 40);
    assert!(got.iter().all(|r| r.id != old.id));
    // The expired item is the oldest: the first page of ten holds nine records, and the tenth
    // comes from the next page.
    let ten = log.by_subject("shipment#1ZPAGES", 10).await.unwrap();
    assert_eq!(ten, got[..10].to_vec());

    // An unreachable table is unavailable, and says which.
    let gone = DynamoAuditLog::new(moto().dynamodb(), "no-such-table", Span::days(1));
    let error = gone
        .by_subject("shipment#x", 10)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("no-such-table"), "{error}");
    assert!(gone.write(&records[..1]).await.is_err());
}
