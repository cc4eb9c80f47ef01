//! The operator commands against a stack on moto server (`freightctl::ops::aws::AwsOps`, built
//! from a `sam list stack-outputs` file): the real ingress, transform and poster handlers with
//! DynamoDB idempotency, the DynamoDB audit trail, the SQS dead-letter sinks and the Odoo double.
//! moto has no SQS → Lambda event source; `drive` plays it (receive, invoke, delete what was
//! not reported failed).
//!
//! What moto's `StartReplay` really does (moto/events/models.py, `Replay.replay_events`): it
//! sends every archived event, whatever the window and the filter ARNs, to every rule of the bus
//! whose pattern matches, at once, and reports COMPLETED. So the replay test proves the request
//! is well formed, the events come back through the rules and nothing is applied twice; the
//! window and rule filtering are EventBridge's, and not exercised here.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lambda_events::apigw::ApiGatewayV2httpRequest;
use aws_sdk_sqs::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_sqs::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_sqs::error::BoxError;
use aws_sdk_sqs::types::MessageAttributeValue;
use canonical_transform::{SeenHistory, Transform};
use chrono::{Duration, Utc};
use freightbridge::audit::{AuditRecord, AuditedDeadLetters, Auditor, Outcome, Stage};
use freightbridge::aws::audit::DynamoAuditLog;
use freightbridge::aws::dynamodb::DynamoStore;
use freightbridge::aws::eventbridge::EventBridgeBus;
use freightbridge::aws::sqs::{SqsDeadLetters, SqsQueue, SqsVisibility, to_lambda_message};
use freightbridge::batch::{
    BatchConfig, DeadLetterSink, RecordContext, RecordOutcome, Settlement, process_batch,
};
use freightbridge::bus::Envelope;
use freightbridge::canonical::{self, CanonicalEvent, EventBody};
use freightbridge::config::{PartnersFile, Secret, resolve_local};
use freightbridge::failure::FailureReason;
use freightbridge::idempotency::{Idempotency, Policy};
use freightbridge::ingress::Registry;
use freightbridge::odoo::{OdooClient, OdooConfig};
use freightbridge::retry::RetryPolicy;
use freightbridge::webhook;
use freightbridge_tests::moto::{ACCOUNT, MotoServer, Queue, REGION, unique_name};
use freightbridge_tests::odoo_double::{OdooDouble, OdooDoubleConfig, PickingSeed};
use freightctl::ops::aws::{AwsOps, AwsOpsError, StackOutputs};
use freightctl::ops::{LetterFilter, ReplayWindow};
use odoo_poster::Poster;
use webhook_ingress::Ingress;

const PARTNERS: &str = include_str!("../../events/partners.local.toml");
const APIGW: &str = include_str!("../../events/apigw-webhook-easypost.json");
/// The sample EasyPost tracker's shipment and how many scans (one canonical event each) it has.
const TRACKING: &str = "1";
const SCANS: usize = 7;

/// The template's resources on moto, and the outputs file `sam list stack-outputs` would print.
struct Stack {
    bus_name: String,
    transform_queue: Queue,
    transform_dlq: Queue,
    odoo_queue: Queue,
    odoo_dlq: Queue,
    bus_dlq: Queue,
    table: String,
    ledger_table: String,
    audit_table: String,
    outputs: PathBuf,
    _dir: tempfile::TempDir,
}

fn moto() -> &'static MotoServer {
    MotoServer::shared()
}

async fn deploy() -> Stack {
    let moto = moto();
    let events = moto.eventbridge();
    let bus_name = unique_name("bus");
    let bus_arn = events
        .create_event_bus()
        .name(&bus_name)
        .send()
        .await
        .unwrap()
        .event_bus_arn
        .unwrap();
    let archive_name = unique_name("archive");
    events
        .create_archive()
        .archive_name(&archive_name)
        .event_source_arn(&bus_arn)
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
            serde_json::json!({"source": [canonical::BUS_SOURCE, canonical::RECONCILIATION_SOURCE],
                               "detail-type": EventBody::TYPES}),
            &odoo_queue,
        ),
    ];
    let mut rule_arns = Vec::new();
    for (pattern, queue) in rules {
        let rule = unique_name("rule");
        let arn = events
            .put_rule()
            .name(&rule)
            .event_bus_name(&bus_name)
            .event_pattern(pattern.to_string())
            .send()
            .await
            .unwrap()
            .rule_arn
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
        rule_arns.push(arn);
    }
    let dir = tempfile::tempdir().unwrap();
    let stack = Stack {
        bus_name,
        transform_dlq: moto.create_queue("transform-dlq").await,
        odoo_dlq: moto.create_queue("odoo-dlq").await,
        bus_dlq: moto.create_queue("bus-dlq").await,
        table: moto.create_idempotency_table().await,
        // The ledger table has the idempotency table's key layout (partition key `id`).
        ledger_table: moto.create_idempotency_table().await,
        audit_table: moto.create_audit_table().await,
        transform_queue,
        odoo_queue,
        outputs: dir.path().join("outputs.json"),
        _dir: dir,
    };
    let outputs = [
        ("EventBusName", stack.bus_name.clone()),
        ("EventBusArn", bus_arn),
        ("EventArchiveName", archive_name),
        ("IngressToTransformRuleArn", rule_arns[0].clone()),
        ("CanonicalToOdooRuleArn", rule_arns[1].clone()),
        ("TransformQueueUrl", stack.transform_queue.url.clone()),
        ("TransformDlqUrl", stack.transform_dlq.url.clone()),
        ("OdooQueueUrl", stack.odoo_queue.url.clone()),
        ("OdooDlqUrl", stack.odoo_dlq.url.clone()),
        ("BusDlqUrl", stack.bus_dlq.url.clone()),
        (
            "ReconcileQueueUrl",
            moto.create_queue("reconcile").await.url,
        ),
        (
            "ReconcileDlqUrl",
            moto.create_queue("reconcile-dlq").await.url,
        ),
        ("IdempotencyTableName", stack.table.clone()),
        ("LedgerTableName", stack.ledger_table.clone()),
        ("AuditTableName", stack.audit_table.clone()),
    ];
    let rows: Vec<serde_json::Value> = outputs
        .iter()
        .map(|(key, value)| {
            serde_json::json!({"OutputKey": key, "OutputValue": value, "Description": key})
        })
        .collect();
    std::fs::write(&stack.outputs, serde_json::to_string_pretty(&rows).unwrap()).unwrap();
    stack
}

impl Stack {
    fn ops(&self) -> AwsOps {
        self.ops_with_sqs(moto().sqs())
    }

    /// The operator's view with an SQS client of the test's own (one that fails deletes).
    fn ops_with_sqs(&self, sqs: aws_sdk_sqs::Client) -> AwsOps {
        let outputs = StackOutputs::load(&self.outputs).unwrap();
        AwsOps::with_clients(outputs, sqs, moto().eventbridge(), moto().dynamodb())
            .with_replay_poll(std::time::Duration::from_millis(100))
    }

    fn audit_log(&self) -> DynamoAuditLog {
        DynamoAuditLog::new(moto().dynamodb(), &self.audit_table, Duration::days(400))
    }

    fn auditor(&self) -> Auditor {
        Auditor::new(Arc::new(self.audit_log()))
    }

    fn store(&self) -> Arc<DynamoStore> {
        Arc::new(DynamoStore::new(moto().dynamodb(), &self.table))
    }

    fn dead_letters(&self, dlq: &Queue) -> AuditedDeadLetters<SqsDeadLetters> {
        AuditedDeadLetters::new(SqsDeadLetters::new(moto().sqs(), &dlq.url), self.auditor())
    }
}

/// The three handlers wired as the Lambda mains wire them, the poster against an Odoo double.
struct Chain {
    stack: Stack,
    ingress: Ingress<Arc<DynamoStore>, Arc<EventBridgeBus>>,
    transform: Transform<Arc<EventBridgeBus>, AuditedDeadLetters<SqsDeadLetters>, Arc<DynamoStore>>,
    poster: Poster<OdooClient, Arc<DynamoStore>>,
    double: OdooDouble,
}

async fn chain() -> Chain {
    let stack = deploy().await;
    let bus = Arc::new(EventBridgeBus::new(moto().eventbridge(), &stack.bus_name));
    let idempotency = || Idempotency::new(stack.store(), Policy::default());
    let partners = PartnersFile::parse(PARTNERS).unwrap();
    let registry = Registry::build(&partners, resolve_local).unwrap();
    let ingress =
        Ingress::new(Arc::new(registry), idempotency(), bus.clone()).with_audit(stack.auditor());
    let transform = Transform::new(
        bus,
        Arc::new(freightbridge::partners::Adapters::from_partners(&partners).unwrap()),
        stack.dead_letters(&stack.transform_dlq),
        SeenHistory {
            store: stack.store(),
            ttl: Policy::default().ttl,
        },
    )
    .with_audit(stack.auditor());
    let double = OdooDouble::start(OdooDoubleConfig::version(19)).await;
    let mut config = OdooConfig::new(double.url());
    config.db = Some(double.config().db.clone());
    config.api_key = Some(Secret::new(double.config().api_key.clone()));
    let poster = Poster::new(OdooClient::connect(&config).await.unwrap(), idempotency())
        .with_audit(stack.auditor(), Some(double.config().login.clone()));
    Chain {
        stack,
        ingress,
        transform,
        poster,
        double,
    }
}

impl Chain {
    /// The sample EasyPost webhook through API Gateway into ingress; answers the status.
    async fn webhook(&self) -> i64 {
        let request: ApiGatewayV2httpRequest = serde_json::from_str(APIGW).unwrap();
        let now = Utc::now();
        self.ingress
            .handle_apigw(request, now, now + Duration::seconds(10))
            .await
            .status_code
    }

    /// The transform queue drained through the transform; answers the bodies it was handed.
    async fn transform(&self) -> Vec<String> {
        let dead_letters = self.stack.dead_letters(&self.stack.transform_dlq);
        drive(
            &self.stack.transform_queue,
            &dead_letters,
            "canonical-transform",
            |ctx| self.transform.handle_record(ctx),
        )
        .await
    }

    /// The Odoo queue drained through the poster; answers the bodies it was handed.
    async fn post(&self) -> Vec<String> {
        let dead_letters = self.stack.dead_letters(&self.stack.odoo_dlq);
        drive(
            &self.stack.odoo_queue,
            &dead_letters,
            "odoo-poster",
            |ctx| {
                let now = Utc::now();
                self.poster
                    .handle_record(ctx, now, now + Duration::seconds(30))
            },
        )
        .await
    }
}

/// What the SQS event source mapping does, until the queue is empty and no record waits out a
/// retry: receive a batch, run it with the real batch helper (permanent failures go to
/// `dead_letters`, retried records get their backoff on the queue), delete what was not
/// reported failed. Answers the body of each message once it is done or dead-lettered.
async fn drive<F, Fut, D: DeadLetterSink>(
    queue: &Queue,
    dead_letters: &D,
    consumer: &str,
    handler: F,
) -> Vec<String>
where
    F: Fn(RecordContext) -> Fut,
    Fut: std::future::Future<Output = Result<(), FailureReason>>,
{
    let sqs = SqsQueue::new(moto().sqs(), &queue.url);
    let config = BatchConfig {
        consumer: consumer.into(),
        concurrency: 4,
        max_receive_count: 100,
        retry: RetryPolicy::default(),
        group_by: None,
    };
    let visibility = SqsVisibility::new(moto().sqs(), &queue.url);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut retrying: BTreeSet<String> = BTreeSet::new();
    let mut bodies = Vec::new();
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "{consumer}: records still retried after a minute: {retrying:?}"
        );
        let messages = sqs.receive(10, 1, None).await.unwrap();
        if messages.is_empty() {
            if retrying.is_empty() {
                return bodies;
            }
            continue;
        }
        let records = messages
            .iter()
            .map(|m| to_lambda_message(m, &queue.arn, REGION))
            .collect();
        let settlement = Settlement {
            config: &config,
            dead_letters,
            visibility: &visibility,
        };
        let report = process_batch(records, &settlement, &handler).await;
        for (message, (id, outcome)) in messages.iter().zip(&report.outcomes) {
            assert_eq!(
                message.message_id(),
                Some(id.as_str()),
                "outcomes in input order"
            );
            if let RecordOutcome::Retry { reason, .. } = outcome {
                // Only a duplicate racing its twin in the same batch may wait.
                assert_eq!(reason.code, "in_progress", "{consumer}: {reason:?}");
                retrying.insert(id.clone());
                continue;
            }
            retrying.remove(id);
            sqs.delete(message.receipt_handle().unwrap()).await.unwrap();
            bodies.push(message.body().unwrap_or_default().to_owned());
        }
    }
}

fn odoo_dlq() -> LetterFilter {
    LetterFilter {
        queue: Some("odoo-dlq".into()),
        ..LetterFilter::default()
    }
}

fn event_of(body: &str) -> CanonicalEvent {
    serde_json::from_str::<Envelope<CanonicalEvent>>(body)
        .unwrap()
        .detail
}

/// Fails every SQS DeleteMessage before it is sent: a redrive that stops between its send and
/// its delete.
#[derive(Debug, Clone, Default)]
struct FailDeletes(Arc<AtomicUsize>);

impl Intercept for FailDeletes {
    fn name(&self) -> &'static str {
        "FailDeletes"
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
            .unwrap_or_default();
        if target.ends_with(".DeleteMessage") {
            self.0.fetch_add(1, Ordering::SeqCst);
            return Err("injected: the redrive stopped before its delete".into());
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- the tests

#[tokio::test]
async fn a_poison_record_is_listed_redriven_without_loss_or_double_effect_and_traced() {
    let c = chain().await;
    let ops = c.stack.ops();
    assert_eq!(c.webhook().await, 202);
    assert_eq!(c.transform().await.len(), 1);
    // No picking carries the tracking number yet: every scan's event is refused for good and
    // dead-lettered by the real SQS sink.
    let posted = c.post().await;
    assert_eq!(posted.len(), SCANS);

    // Listed with its reason, and listing takes nothing away.
    let letters = ops.letters(&odoo_dlq()).await.unwrap();
    assert_eq!(letters.len(), SCANS);
    for (letter, body) in &letters {
        assert_eq!(letter.queue, "odoo-dlq");
        assert_eq!(letter.error_code.as_deref(), Some("odoo_picking_not_found"));
        assert_eq!(letter.error_class.as_deref(), Some("permanent"));
        assert_eq!(letter.consumer.as_deref(), Some("odoo-poster"));
        assert_eq!(letter.receive_count, Some(1));
        assert_eq!(letter.partner.as_deref(), Some("easypost"));
        assert_eq!(letter.shipment.as_deref(), Some(TRACKING));
        assert!(letter.sent_at.is_some_and(|at| at <= Utc::now()));
        assert!(posted.contains(body), "the body is the poster's, unchanged");
    }
    assert_eq!(
        ops.letters(&LetterFilter::default()).await.unwrap().len(),
        SCANS
    );
    let other_code = LetterFilter {
        code: Some("bad_row".into()),
        ..LetterFilter::default()
    };
    assert!(ops.letters(&other_code).await.unwrap().is_empty());
    let dry = ops.redrive(&odoo_dlq(), None, true).await.unwrap();
    assert_eq!((dry.matched, dry.moved), (SCANS, 0));
    assert_eq!(ops.letters(&odoo_dlq()).await.unwrap().len(), SCANS);

    // Fixed: the picking exists now.
    let picking = c
        .double
        .seed_picking(PickingSeed::new("WH/OUT/00042", Some(TRACKING)));

    // Interrupted halfway: three moved, the rest still waiting.
    let first = ops.redrive(&odoo_dlq(), Some(3), false).await.unwrap();
    assert_eq!((first.matched, first.moved, first.failed), (3, 3, 0));
    assert_eq!(ops.letters(&odoo_dlq()).await.unwrap().len(), SCANS - 3);
    assert_eq!(c.post().await.len(), 3);
    assert_eq!(c.double.messages_on(picking).len(), 3);

    // Interrupted between a send and its delete: the letter is on its queue *and* still on
    // the DLQ.
    let deletes = FailDeletes::default();
    let failing = aws_sdk_sqs::config::Builder::from(&moto().sdk_config())
        .interceptor(deletes.clone())
        .build();
    let interrupted = c
        .stack
        .ops_with_sqs(aws_sdk_sqs::Client::from_conf(failing))
        .redrive(&odoo_dlq(), Some(1), false)
        .await
        .unwrap();
    assert_eq!(
        (interrupted.moved, interrupted.sent_not_deleted),
        (0, 1),
        "{interrupted:?}"
    );
    assert!(deletes.0.load(Ordering::SeqCst) >= 1);
    assert_eq!(ops.letters(&odoo_dlq()).await.unwrap().len(), SCANS - 3);

    // The rest, the half-moved letter with them: sent a second time.
    let rest = ops.redrive(&odoo_dlq(), None, false).await.unwrap();
    assert_eq!(
        (rest.matched, rest.moved, rest.failed),
        (SCANS - 3, SCANS - 3, 0)
    );
    assert!(
        ops.letters(&LetterFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        SqsQueue::new(moto().sqs(), &c.stack.odoo_dlq.url)
            .receive(10, 1, None)
            .await
            .unwrap()
            .is_empty(),
        "the DLQ is empty"
    );

    // Nothing lost, nothing doubled: the poster got one message more than there are events,
    // and each event is one note on the picking.
    let reposted = c.post().await;
    assert_eq!(reposted.len(), SCANS - 3 + 1);
    let notes = c.double.messages_on(picking);
    assert_eq!(notes.len(), SCANS, "one note per scan: {notes:?}");
    let mut events: Vec<String> = reposted
        .iter()
        .map(|b| event_of(b).event_id.to_string())
        .collect();
    events.sort();
    events.dedup();
    assert_eq!(events.len(), SCANS - 3, "the extra message is a duplicate");

    // The trail, from the tracking number: ingress, transform, the refusal and its dead letter,
    // the operator's redrive, the note; in time order.
    let trace = ops.trace(TRACKING).await.unwrap();
    assert!(
        trace.windows(2).all(|w| w[0].at <= w[1].at),
        "in time order"
    );
    assert_eq!(trace[0].stage, Stage::Ingress);
    assert_eq!(trace[0].action, "webhook_received");
    let event = event_of(&posted[0]).event_id;
    let of_event: Vec<(Stage, Outcome)> = trace
        .iter()
        .filter(|r| r.subjects.events.contains(&event))
        .map(|r| (r.stage, r.outcome))
        .collect();
    assert_eq!(of_event.first(), Some(&(Stage::Transform, Outcome::Done)));
    let position = |step: (Stage, Outcome)| {
        of_event
            .iter()
            .position(|s| *s == step)
            .unwrap_or_else(|| panic!("{step:?} missing from {of_event:?}"))
    };
    let refused = position((Stage::Poster, Outcome::Refused));
    let lettered = position((Stage::DeadLetter, Outcome::DeadLettered));
    let redriven = position((Stage::Operator, Outcome::Done));
    let applied = position((Stage::Poster, Outcome::Done));
    assert!(
        refused < lettered && lettered < redriven && redriven < applied,
        "{of_event:?}"
    );
    let note: &AuditRecord = trace
        .iter()
        .find(|r| r.stage == Stage::Poster && r.outcome == Outcome::Done)
        .unwrap();
    assert_eq!(note.actor.odoo_user.as_deref(), Some("admin"));
    // Every record of the shipment, whichever subject a trace starts from (records of one
    // instant, the transform's seven, may come in another order).
    let ids = |records: &[AuditRecord]| records.iter().map(|r| r.id).collect::<BTreeSet<_>>();
    let from_event = ops.trace(&event.to_string()).await.unwrap();
    assert_eq!(ids(&from_event), ids(&trace));
    assert_eq!(from_event.len(), trace.len());

    // The same, as an operator types it against the stack.
    let traced = freightctl_aws(&c.stack, &["trace", TRACKING, "--json"]);
    let traced: serde_json::Value = serde_json::from_str(&traced).unwrap();
    assert_eq!(traced.as_array().map(Vec::len), Some(trace.len()));
    let listed = freightctl_aws(&c.stack, &["dlq", "list", "--queue", "odoo-dlq"]);
    assert!(listed.contains("0 dead letter(s)"), "{listed}");
}

/// Runs `freightctl <args> --stack-outputs <the stack's file>` against moto, credentials and
/// endpoint from the environment as an operator's shell would have them.
fn freightctl_aws(stack: &Stack, args: &[&str]) -> String {
    let output = std::process::Command::new(freightbridge_tests::freightctl_binary())
        .args(args)
        .arg("--stack-outputs")
        .arg(&stack.outputs)
        .env("AWS_ENDPOINT_URL", moto().endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", freightbridge_tests::moto::REGION)
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "freightctl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test]
async fn a_replay_of_a_window_redelivers_the_archived_events_and_doubles_nothing() {
    let c = chain().await;
    let ops = c.stack.ops();
    let picking = c
        .double
        .seed_picking(PickingSeed::new("WH/OUT/00043", Some(TRACKING)));
    let from = Utc::now() - Duration::minutes(1);
    assert_eq!(c.webhook().await, 202);
    assert_eq!(c.transform().await.len(), 1);
    let first: Vec<String> = c.post().await;
    assert_eq!(first.len(), SCANS);
    assert_eq!(c.double.messages_on(picking).len(), SCANS);

    let window = ReplayWindow {
        from,
        to: Utc::now() + Duration::minutes(1),
        partner: None,
        detail_type: None,
    };
    // A dry run names the archive and the rules, and starts nothing.
    let dry = ops.replay(&window, true).await.unwrap();
    assert!(dry.dry_run);
    assert!(
        dry.archive
            .as_deref()
            .is_some_and(|a| a.starts_with(&format!("arn:aws:events:{REGION}:{ACCOUNT}:archive/"))),
        "{dry:?}"
    );
    assert_eq!(dry.rules.len(), 2);
    assert!(
        SqsQueue::new(moto().sqs(), &c.stack.odoo_queue.url)
            .receive(10, 1, None)
            .await
            .unwrap()
            .is_empty(),
        "nothing replayed by a dry run"
    );

    let summary = ops.replay(&window, false).await.unwrap();
    assert_eq!(summary.state.as_deref(), Some("COMPLETED"), "{summary:?}");
    let name = summary.replay_name.clone().unwrap();
    // The webhook comes back to the transform: its scans are known, nothing is published again.
    let retransformed = c.transform().await;
    assert_eq!(retransformed.len(), 1);
    assert!(
        retransformed[0].contains(&name),
        "marked as replayed by {name}"
    );
    // The canonical events come back to the poster: each is a duplicate, no second note.
    let replayed = c.post().await;
    assert_eq!(replayed.len(), SCANS);
    assert!(replayed.iter().all(|b| b.contains(&name)));
    let mut ids: Vec<_> = replayed.iter().map(|b| event_of(b).event_id).collect();
    let mut originals: Vec<_> = first.iter().map(|b| event_of(b).event_id).collect();
    ids.sort();
    originals.sort();
    assert_eq!(ids, originals, "the same events");
    assert_eq!(
        c.double.messages_on(picking).len(),
        SCANS,
        "nothing doubled"
    );
    let duplicates = ops
        .trace(TRACKING)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.stage == Stage::Poster && r.outcome == Outcome::Duplicate)
        .count();
    assert_eq!(duplicates, SCANS);

    // A partner cannot be picked from an EventBridge archive: refused, with why.
    let by_partner = ReplayWindow {
        partner: Some("easypost".into()),
        ..window.clone()
    };
    let error = ops.replay(&by_partner, false).await.unwrap_err();
    assert!(
        matches!(error, AwsOpsError::PartnerFilterUnsupported),
        "{error}"
    );
    assert!(error.to_string().contains("--partner"), "{error}");
    let unknown_type = ReplayWindow {
        detail_type: Some("shipment.teleported".into()),
        ..window
    };
    assert!(matches!(
        ops.replay(&unknown_type, true).await,
        Err(AwsOpsError::UnknownDetailType(..))
    ));
}

#[tokio::test]
async fn a_bus_letter_goes_back_onto_the_bus_and_reaches_its_rules_queue_once() {
    let stack = deploy().await;
    let ops = stack.ops();
    // What EventBridge puts on the bus DLQ when a rule cannot deliver: the event as the target
    // would have received it, and the failure in its own attributes.
    let detail = serde_json::json!({"partner": "easypost", "note": "kept as sent", "n": 1.5});
    let body = serde_json::json!({
        "version": "0", "id": "4e3b-original", "detail-type": "shipment.status_changed",
        "source": canonical::BUS_SOURCE, "account": ACCOUNT, "time": "2026-12-04T10:00:00Z",
        "region": REGION, "resources": [], "detail": detail,
    })
    .to_string();
    let string = |value: &str| {
        MessageAttributeValue::builder()
            .data_type("String")
            .string_value(value)
            .build()
            .unwrap()
    };
    moto()
        .sqs()
        .send_message()
        .queue_url(&stack.bus_dlq.url)
        .message_body(&body)
        .message_attributes("ERROR_CODE", string("SQS.AWS.SdkClientException"))
        .message_attributes("ERROR_MESSAGE", string("Throttling"))
        .message_attributes("RULE_ARN", string("arn:aws:events:us-east-1:1:rule/b/c"))
        .send()
        .await
        .unwrap();

    let filter = LetterFilter {
        queue: Some("bus-dlq".into()),
        ..LetterFilter::default()
    };
    let letters = ops.letters(&filter).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        letters[0].0.error_code.as_deref(),
        Some("SQS.AWS.SdkClientException")
    );
    assert_eq!(letters[0].0.error_message.as_deref(), Some("Throttling"));

    let summary = ops.redrive(&filter, None, false).await.unwrap();
    assert_eq!((summary.matched, summary.moved), (1, 1), "{summary:?}");
    assert!(ops.letters(&filter).await.unwrap().is_empty());
    let delivered = SqsQueue::new(moto().sqs(), &stack.odoo_queue.url)
        .receive(10, 1, None)
        .await
        .unwrap();
    assert_eq!(delivered.len(), 1, "through the canonical rule, once");
    let envelope: Envelope<serde_json::Value> =
        serde_json::from_str(delivered[0].body().unwrap()).unwrap();
    assert_eq!(envelope.detail, detail);
    assert_eq!(envelope.detail_type, "shipment.status_changed");
    assert_eq!(envelope.time.to_rfc3339(), "2026-12-04T10:00:00+00:00");
    assert!(
        SqsQueue::new(moto().sqs(), &stack.transform_queue.url)
            .receive(10, 1, None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_missing_output_names_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old-stack.json");
    std::fs::write(
        &path,
        r#"[{"OutputKey":"OdooDlqUrl","OutputValue":"http://127.0.0.1:9/q","Description":"x"}]"#,
    )
    .unwrap();
    let ops = AwsOps::with_clients(
        StackOutputs::load(&path).unwrap(),
        moto().sqs(),
        moto().eventbridge(),
        moto().dynamodb(),
    );
    let error = ops.trace(TRACKING).await.unwrap_err().to_string();
    assert!(
        error.contains("AuditTableName") && error.contains("old-stack.json"),
        "{error}"
    );
    let missing = StackOutputs::load(&dir.path().join("nope.json"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("nope.json"), "{missing}");
}

/// The messages waiting on `queue`, each received and deleted.
async fn take_all(queue: &Queue) -> Vec<String> {
    let sqs = moto().sqs();
    let mut bodies = Vec::new();
    loop {
        let received = sqs
            .receive_message()
            .queue_url(&queue.url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return bodies;
        }
        for message in messages {
            sqs.delete_message()
                .queue_url(&queue.url)
                .receipt_handle(message.receipt_handle.unwrap())
                .send()
                .await
                .unwrap();
            bodies.push(message.body.unwrap());
        }
    }
}

#[tokio::test]
async fn reconcile_report_approve_and_sweep_run_against_the_stacks_ledger_bus_and_trail() {
    use freightbridge::audit::AuditLog as _;
    use freightbridge::aws::ledger::DynamoLedger;
    use freightbridge::reconcile::ReconcileConfig;
    use freightbridge_tests::freight_events::{self as fe, dec, line};

    let stack = deploy().await;
    // The reconciler as the Lambda runs it, on the stack's ledger table and bus.
    let reconciler = reconciler::Reconciler::new(
        DynamoLedger::new(moto().dynamodb(), &stack.ledger_table),
        EventBridgeBus::new(moto().eventbridge(), &stack.bus_name),
        Arc::new(
            ReconcileConfig::from_toml(
                "[default]\ntolerance = { absolute = \"5.00\", percent = \"2\" }",
            )
            .unwrap(),
        ),
    );
    let when = Utc::now() - Duration::days(2);
    let facts = [
        fe::event(
            "ofl-tms",
            "est-1",
            "OFL",
            "SHP-A",
            when,
            fe::estimate("1000.00"),
        ),
        fe::event(
            "easypost",
            "pod-1",
            "OFL",
            "SHP-A",
            when,
            fe::delivered(when, Some("https://pod.example.com/SHP-A.pdf")),
        ),
        fe::event(
            "ofl-edi",
            "inv-1",
            "OFL",
            "SHP-A",
            when,
            EventBody::InvoiceReceived(canonical::InvoiceReceived {
                invoice: fe::invoice(
                    "OFL-INV-A",
                    when.date_naive(),
                    dec("1100.00"),
                    vec![line(
                        canonical::ChargeKind::BaseFreight,
                        "400",
                        dec("1100.00"),
                    )],
                ),
            }),
        ),
    ];
    for event in &facts {
        reconciler
            .handle_record(freightbridge_tests::poster_input::record(event, 1))
            .await
            .unwrap();
    }
    let outcomes: Vec<CanonicalEvent> = take_all(&stack.odoo_queue)
        .await
        .iter()
        .map(|body| event_of(body))
        .filter(|e| e.partner == "ofl-edi" && e.event_type().starts_with("freight_invoice."))
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .map(CanonicalEvent::event_type)
            .collect::<Vec<_>>(),
        ["freight_invoice.disputed"],
        "10 % over"
    );

    // The exceptions report from the stack's ledger.
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("exceptions.csv");
    let printed = freightctl_aws(
        &stack,
        &["reconcile", "report", "--csv", csv.to_str().unwrap()],
    );
    assert!(
        printed.starts_with("1 exceptions from 1 ledger entries"),
        "{printed}"
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        text.contains("OFL-INV-A") && text.contains("over_tolerance"),
        "{text}"
    );

    // A person approves it: the match goes on the stack's bus, to the poster's queue.
    let printed = freightctl_aws(
        &stack,
        &[
            "reconcile",
            "approve",
            "OFL-INV-A",
            "--by",
            "alice",
            "--reason",
            "fuel amendment of 2026-11",
        ],
    );
    assert!(
        printed.contains("approved invoice OFL-INV-A by alice"),
        "{printed}"
    );
    let approved: Vec<CanonicalEvent> = take_all(&stack.odoo_queue)
        .await
        .iter()
        .map(|body| event_of(body))
        .collect();
    assert_eq!(approved.len(), 1, "{approved:?}");
    assert_eq!(approved[0].event_type(), "freight_invoice.matched");
    let trail = stack
        .audit_log()
        .by_subject(
            &freightbridge::audit::subject_key(freightbridge::audit::Kind::Shipment, "SHP-A"),
            100,
        )
        .await
        .unwrap();
    assert!(
        trail
            .iter()
            .any(|r| r.stage == Stage::Operator && r.action == "dispute_approved"),
        "{}",
        freightbridge::audit::timeline(&trail)
    );

    // The sweep reads the same ledger: the approved invoice is no exception any more.
    let swept: serde_json::Value = serde_json::from_str(&freightctl_aws(
        &stack,
        &["reconcile", "sweep", "--json", "--report-only"],
    ))
    .unwrap();
    assert_eq!(swept["summary"]["entries"], 1, "{swept}");
    let printed = freightctl_aws(
        &stack,
        &["reconcile", "report", "--csv", csv.to_str().unwrap()],
    );
    assert!(
        printed.starts_with("0 exceptions from 1 ledger entries"),
        "{printed}"
    );
}
