//! The operator commands against the local chain (`freightctl serve`'s state directory), run
//! beside the running chain: a poison record listed with its reason, fixed in Odoo and
//! redriven to exactly one effect (in two halves, as a redrive stopped halfway leaves it); a
//! replay of the archive that doubles nothing in Odoo; and the shipment's trace through
//! ingress, transform, poster, dead letter, operator and poster again, in order. The commands
//! are run as the `freightctl` binary too, as an operator types them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use chrono::Utc;
use freightbridge::audit::{AuditRecord, Outcome, Stage};
use freightbridge::config::PartnersFile;
use freightbridge::odoo::{OdooClient, OdooConfig};
use freightbridge_tests::freightctl_binary;
use freightbridge_tests::odoo_double::{OdooDouble, OdooDoubleConfig, PickingSeed};
use freightctl::chain::{Chain, ChainConfig};
use freightctl::ops::local::LocalOps;
use freightctl::ops::{LetterFilter, ReplayWindow};
use freightctl::send;
use serde_json::Value;

const PARTNERS: &str = include_str!("../../events/partners.local.toml");
const IN_TRANSIT: &[u8] =
    include_bytes!("../../events/partners/easypost-tracker-updated-in-transit.json");
/// Scans in the sample tracker, and its tracking number.
const SCANS: usize = 7;
const TRACKING: &str = "1";

async fn chain(double: &OdooDouble, state: &Path) -> Chain<OdooClient> {
    let odoo_config = double.config().clone();
    let mut config = OdooConfig::new(double.url());
    config.db = Some(odoo_config.db.clone());
    config.user = Some(odoo_config.login.clone());
    config.api_key = Some(freightbridge::config::Secret::new(
        odoo_config.api_key.clone(),
    ));
    let odoo = OdooClient::connect(&config).await.expect("double answers");
    let partners = PartnersFile::parse(PARTNERS).expect("partners file");
    let mut chain_config = ChainConfig::new(partners, state);
    chain_config.visibility_timeout = Duration::from_millis(200);
    chain_config.odoo_user = Some(odoo_config.login.clone());
    Chain::start(chain_config, odoo).expect("chain starts")
}

/// Runs `freightctl <args> --state-dir <state>`.
fn run_freightctl(state: &Path, args: &[&str]) -> std::process::Output {
    Command::new(freightctl_binary())
        .args(args)
        .arg("--state-dir")
        .arg(state)
        .output()
        .expect("freightctl runs")
}

/// Runs `freightctl <args> --state-dir <state>`, which must succeed; answers its stdout.
fn freightctl(state: &Path, args: &[&str]) -> String {
    let output = run_freightctl(state, args);
    assert!(
        output.status.success(),
        "freightctl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn position(records: &[AuditRecord], stage: Stage, action: &str, outcome: Outcome) -> usize {
    records
        .iter()
        .position(|r| r.stage == stage && r.action == action && r.outcome == outcome)
        .unwrap_or_else(|| {
            panic!(
                "no {stage:?} {action} {outcome:?} in the trace:\n{}",
                freightbridge::audit::timeline(records)
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_poison_record_is_listed_fixed_redriven_once_replayed_without_doubling_and_traced() {
    let double = OdooDouble::start(OdooDoubleConfig::version(19)).await;
    let state = tempfile::tempdir().expect("tempdir");
    let chain = chain(&double, state.path()).await;
    let (addr, _server) = chain.listen(0).await.expect("listens");
    let partners = PartnersFile::parse(PARTNERS).expect("partners file");
    let partner = partners.get("easypost").expect("easypost").clone();
    let headers = send::partner_headers(&partner, IN_TRANSIT, "msg_ops").expect("signed");
    let url = format!("http://{addr}/webhooks/easypost");
    let client = reqwest::Client::new();

    // No picking carries the tracking number yet: every scan is dead-lettered by the poster.
    let answer = send::post(&client, &url, &headers, IN_TRANSIT.to_vec())
        .await
        .expect("posted");
    assert_eq!(answer.status, 202, "{}", answer.body);
    assert!(chain.wait_drained(Duration::from_secs(20)).await, "drained");

    let ops = LocalOps::open(state.path()).expect("operator view beside the chain");
    let letters = ops.letters(&LetterFilter::default()).expect("listed");
    assert_eq!(letters.len(), SCANS, "one letter per scan");
    for (letter, _) in &letters {
        assert_eq!(letter.queue, "odoo-dlq");
        assert_eq!(letter.error_code.as_deref(), Some("odoo_picking_not_found"));
        assert_eq!(letter.consumer.as_deref(), Some("odoo-poster"));
        assert_eq!(letter.partner.as_deref(), Some("easypost"));
        assert_eq!(letter.shipment.as_deref(), Some(TRACKING));
        assert!(
            letter
                .error_message
                .as_deref()
                .is_some_and(|m| m.contains(TRACKING)),
            "{letter:?}"
        );
    }
    // The same, as the operator sees it.
    let table = freightctl(
        state.path(),
        &["dlq", "list", "--code", "odoo_picking_not_found"],
    );
    assert!(
        table.contains(&format!("{SCANS} dead letter(s)")),
        "{table}"
    );
    assert!(
        table.contains("odoo-dlq") && table.contains("easypost"),
        "{table}"
    );
    let listed: Value =
        serde_json::from_str(&freightctl(state.path(), &["dlq", "list", "--json"])).expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(SCANS), "{listed}");
    let none = freightctl(state.path(), &["dlq", "list", "--code", "bad_row"]);
    assert!(none.contains("0 dead letter(s)"), "{none}");

    // A dry run moves nothing.
    let dry = ops
        .redrive(&LetterFilter::default(), None, true)
        .await
        .expect("dry run");
    assert_eq!((dry.matched, dry.moved), (SCANS, 0));
    assert_eq!(
        ops.letters(&LetterFilter::default()).expect("listed").len(),
        SCANS
    );

    // Fixed in Odoo, then redriven in two halves (what a redrive stopped halfway leaves):
    // each scan applied exactly once.
    let picking = double.seed_picking(PickingSeed::new("WH/OUT/00042", Some(TRACKING)));
    let first = ops
        .redrive(&LetterFilter::default(), Some(3), false)
        .await
        .expect("first half");
    assert_eq!((first.matched, first.moved, first.failed), (3, 3, 0));
    assert_eq!(
        ops.letters(&LetterFilter::default()).expect("listed").len(),
        SCANS - 3
    );
    let rest = freightctl(state.path(), &["dlq", "redrive", "--queue", "odoo-dlq"]);
    assert!(
        rest.contains(&format!("redrove {} of {}", SCANS - 3, SCANS - 3)),
        "{rest}"
    );
    let again = freightctl(state.path(), &["dlq", "redrive"]);
    assert!(again.contains("redrove 0 of 0"), "{again}");
    assert!(chain.wait_drained(Duration::from_secs(20)).await, "drained");
    assert_eq!(
        double.messages_on(picking).len(),
        SCANS,
        "each scan noted once"
    );
    assert!(chain.odoo_dlq.is_empty().expect("dlq"));

    // A replay of the whole archive: the webhook and its events go through again, and
    // nothing more reaches Odoo.
    let posts_before = post_calls(&double);
    let window = ReplayWindow {
        from: Utc::now() - chrono::Duration::hours(1),
        to: Utc::now(),
        partner: Some("easypost".into()),
        detail_type: None,
    };
    let dry = ops.replay(&window, true).await.expect("dry replay");
    assert_eq!(dry.replayed, 0);
    assert_eq!(
        dry.matched,
        1 + SCANS,
        "the webhook and its events: {dry:?}"
    );
    let replayed = ops.replay(&window, false).await.expect("replay");
    assert_eq!(replayed.replayed, dry.matched);
    let other_partner = ReplayWindow {
        partner: Some("shippo".into()),
        ..window.clone()
    };
    assert_eq!(
        ops.replay(&other_partner, true).await.expect("dry").matched,
        0
    );
    assert!(chain.wait_drained(Duration::from_secs(20)).await, "drained");
    assert_eq!(
        double.messages_on(picking).len(),
        SCANS,
        "a replay doubles nothing"
    );
    assert_eq!(
        post_calls(&double),
        posts_before,
        "nothing written to Odoo again"
    );
    assert!(
        chain.odoo_dlq.is_empty().expect("dlq") && chain.transform_dlq.is_empty().expect("dlq")
    );

    // The trace: received, published, refused, dead-lettered, redriven, noted — in that order,
    // from the tracking number, from an event id and from the delivery id alike.
    let records = ops.trace(TRACKING).await.expect("trace");
    let received = position(&records, Stage::Ingress, "webhook_received", Outcome::Done);
    let published = position(&records, Stage::Transform, "event_published", Outcome::Done);
    let refused = position(&records, Stage::Poster, "milestone_noted", Outcome::Refused);
    let dead = position(
        &records,
        Stage::DeadLetter,
        "dead_lettered",
        Outcome::DeadLettered,
    );
    let redriven = position(&records, Stage::Operator, "redriven", Outcome::Done);
    let noted = position(&records, Stage::Poster, "milestone_noted", Outcome::Done);
    assert!(
        received < published
            && published < refused
            && refused < dead
            && dead < redriven
            && redriven < noted,
        "out of order:\n{}",
        freightbridge::audit::timeline(&records)
    );
    let applied: Vec<&AuditRecord> = records
        .iter()
        .filter(|r| r.stage == Stage::Poster && r.outcome == Outcome::Done)
        .collect();
    assert_eq!(applied.len(), SCANS, "one applied step per scan");
    assert!(
        applied
            .iter()
            .all(|r| r.actor.odoo_user.as_deref() == Some(double.config().login.as_str()))
    );
    assert!(
        applied.iter().all(|r| r.outputs.iter().any(|o| matches!(o,
            freightbridge::audit::Output::Odoo { model, id } if model == "stock.picking" && *id == picking))),
        "each applied step names the picking"
    );
    let replayed_steps = records
        .iter()
        .filter(|r| r.stage == Stage::Operator && r.action == "replayed")
        .count();
    assert_eq!(
        replayed_steps,
        1 + SCANS,
        "the webhook and each event, replayed once"
    );
    let replays = records
        .iter()
        .filter(|r| r.stage == Stage::Poster && r.outcome == Outcome::Duplicate)
        .count();
    assert_eq!(
        replays, SCANS,
        "the replayed events are duplicates in the trail"
    );
    let event_id = applied[0].subjects.events[0].to_string();
    assert_eq!(
        ops.trace(&event_id).await.expect("trace").len(),
        records.len()
    );
    let delivery = records[received]
        .subjects
        .delivery_id
        .clone()
        .expect("delivery id");
    assert_eq!(
        ops.trace(&delivery).await.expect("trace").len(),
        records.len()
    );

    let timeline = freightctl(state.path(), &["trace", TRACKING]);
    assert_eq!(timeline.lines().count(), records.len(), "{timeline}");
    assert!(timeline.contains("odoo_picking_not_found"), "{timeline}");
    let traced: Value =
        serde_json::from_str(&freightctl(state.path(), &["trace", TRACKING, "--json"]))
            .expect("json");
    assert_eq!(traced.as_array().map(Vec::len), Some(records.len()));
    println!("trace of shipment {TRACKING}:\n{timeline}");
}

fn post_calls(double: &OdooDouble) -> usize {
    double
        .calls()
        .iter()
        .filter(|(_, method)| method == "message_post")
        .count()
}

/// Runs `freightctl <args> --state-dir <state>`; answers whether it succeeded and its output.
fn freightctl_status(state: &Path, args: &[&str]) -> (bool, String) {
    let output = run_freightctl(state, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn reconcile_approve_publishes_the_match_records_it_and_keeps_duties_apart() {
    use freightbridge::audit::{Actor, AuditLog as _, Subjects};
    use freightbridge::ledger::{LedgerStore as _, MatchOutcome, ledger_key, update};
    use freightbridge_tests::freight_events::{self, dec};
    use freightctl::durable::{Durability, Durable, DurableAuditLog};

    let state = tempfile::tempdir().expect("tempdir");
    let when: chrono::DateTime<Utc> = "2026-11-27T09:00:00Z".parse().expect("time");
    {
        // A disputed invoice in the ledger, and the delivery confirmed by `poster-bot`.
        let durable = Durable::open(state.path(), Durability::Normal).expect("state");
        let invoice = freight_events::event(
            "ofl-edi",
            "inv-1",
            "OFL",
            "SHP-9",
            when,
            freightbridge::canonical::EventBody::InvoiceReceived(
                freightbridge::canonical::InvoiceReceived {
                    invoice: freight_events::invoice(
                        "INV-9",
                        "2026-11-20".parse().expect("date"),
                        dec("130.00"),
                        Vec::new(),
                    ),
                },
            ),
        );
        update(&*durable, "SHP-9", |entry| {
            entry.apply(&invoice, "OFL", when);
            entry.record_outcome(MatchOutcome {
                invoice_number: "INV-9".into(),
                outcome: "disputed".into(),
                reasons: vec!["no_expected_cost".into()],
                evidence: serde_json::json!({}),
                at: when,
                event_id: uuid::Uuid::from_u128(9),
                event: None,
                published: true,
            })
        })
        .await
        .expect("ledger");
        let trail = DurableAuditLog::new(&durable, chrono::Duration::days(1));
        let confirmed = AuditRecord::new(
            Stage::Poster,
            Actor {
                function: "odoo-poster".into(),
                partner: Some("easypost".into()),
                odoo_user: Some("poster-bot".into()),
            },
            "delivery_confirmed",
            Utc::now(),
            Outcome::Done,
        )
        .subjects(Subjects {
            shipments: vec!["SHP-9".into()],
            ..Subjects::default()
        });
        trail.write(&[confirmed]).await.expect("trail");
    }

    let (ok, refused) = freightctl_status(
        state.path(),
        &[
            "reconcile",
            "approve",
            "INV-9",
            "--by",
            "poster-bot",
            "--reason",
            "fine",
        ],
    );
    assert!(
        !ok && refused.contains("segregation of duties"),
        "{refused}"
    );
    let (ok, unknown) = freightctl_status(
        state.path(),
        &[
            "reconcile",
            "approve",
            "INV-0",
            "--by",
            "ap.clerk",
            "--reason",
            "fine",
        ],
    );
    assert!(
        !ok && unknown.contains("no shipment in the ledger"),
        "{unknown}"
    );
    let approved = freightctl(
        state.path(),
        &[
            "reconcile",
            "approve",
            "INV-9",
            "--by",
            "ap.clerk",
            "--reason",
            "rate agreed by phone",
        ],
    );
    assert!(approved.contains("freight_invoice.matched"), "{approved}");
    let (ok, twice) = freightctl_status(
        state.path(),
        &[
            "reconcile",
            "approve",
            "INV-9",
            "--by",
            "ap.clerk",
            "--reason",
            "again",
        ],
    );
    assert!(!ok && twice.contains("matched already"), "{twice}");

    // On the bus for the poster, in the ledger, in the trail.
    let durable = Durable::open(state.path(), Durability::Normal).expect("state");
    let queued = odoo_queue(&durable);
    assert_eq!(queued.len(), 1, "one matched event for the poster");
    assert!(queued[0].body.contains("freight_invoice.matched"));
    let entry = durable
        .load(&ledger_key("SHP-9"))
        .await
        .expect("ledger")
        .expect("entry")
        .entry;
    let outcome = entry.outcome_of("INV-9").expect("outcome");
    assert_eq!(outcome.outcome, "matched");
    assert_eq!(outcome.evidence["approved_by"], "ap.clerk");
    assert_eq!(
        outcome.evidence["overruled"],
        serde_json::json!(["no_expected_cost"])
    );
    let trail = DurableAuditLog::new(&durable, chrono::Duration::days(1));
    let steps = freightbridge::audit::trace(&trail, "INV-9")
        .await
        .expect("trace");
    let approval = steps
        .iter()
        .find(|r| r.action == "dispute_approved")
        .expect("the approval is in the trail");
    assert_eq!(approval.actor.odoo_user.as_deref(), Some("ap.clerk"));
    assert_eq!(
        approval.reason.as_ref().map(|r| r.message.as_str()),
        Some("rate agreed by phone")
    );
}

#[tokio::test]
async fn reconcile_sweep_finds_what_fell_through_and_disputes_an_undelivered_invoice_once() {
    use freightbridge::canonical::{EventBody, InvoiceReceived};
    use freightbridge::ledger::update;
    use freightbridge_tests::freight_events::{self, dec};
    use freightctl::durable::{Durability, Durable};

    let state = tempfile::tempdir().expect("tempdir");
    let now = Utc::now();
    {
        let durable = Durable::open(state.path(), Durability::Normal).expect("state");
        let days_ago = |n: i64| now - chrono::Duration::days(n);
        // Invoiced 10 days ago, never delivered.
        let invoice = freight_events::event(
            "ofl-edi",
            "inv-1",
            "OFL",
            "SHP-1",
            days_ago(10),
            EventBody::InvoiceReceived(InvoiceReceived {
                invoice: freight_events::invoice(
                    "INV-1",
                    "2026-11-20".parse().expect("date"),
                    dec("130.00"),
                    Vec::new(),
                ),
            }),
        );
        // Delivered 20 days ago, never invoiced; accrued 40 days ago, never invoiced.
        let pod = freight_events::event(
            "easypost",
            "pod-2",
            "OFL",
            "SHP-2",
            days_ago(20),
            freight_events::delivered(days_ago(20), None),
        );
        let accrual = freight_events::event(
            "ofl-tms",
            "est-3",
            "OFL",
            "SHP-3",
            days_ago(40),
            freight_events::estimate("250.00"),
        );
        for event in [&invoice, &pod, &accrual] {
            update(&*durable, &event.shipment.tracking_number, |entry| {
                entry.apply(event, "OFL", event.received_at)
            })
            .await
            .expect("ledger");
        }
    }

    let first: serde_json::Value =
        serde_json::from_str(&freightctl(state.path(), &["reconcile", "sweep", "--json"]))
            .expect("json");
    assert_eq!(first["summary"]["entries"], 3, "{first}");
    let kinds: Vec<&str> = first["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert_eq!(kinds.len(), 3, "{first}");
    for kind in [
        "invoice_without_delivery",
        "uninvoiced_delivery",
        "stale_accrual",
    ] {
        assert!(kinds.contains(&kind), "{kind}: {first}");
    }
    assert_eq!(first["disputes_published"], 1);
    assert_eq!(
        first["summary"]["by_kind_and_carrier"]["stale_accrual/OFL"]["amounts"]["USD"],
        "250.00"
    );

    // The dispute is on the bus for the poster, once: a second sweep finds it recorded.
    let table = freightctl(state.path(), &["reconcile", "sweep"]);
    assert!(
        table.contains("findings: 2, disputes published: 0"),
        "{table}"
    );
    assert!(table.contains("oldest: stale_accrual SHP-3"), "{table}");
    let durable = Durable::open(state.path(), Durability::Normal).expect("state");
    let queued = odoo_queue(&durable);
    assert_eq!(queued.len(), 1);
    // Judged as it stands: the ledger heard of the shipment from this invoice only.
    assert!(
        queued[0].body.contains("\"unknown_shipment\""),
        "{}",
        queued[0].body
    );
    // Report only: nothing published even for a new finding.
    let report: serde_json::Value = serde_json::from_str(&freightctl(
        state.path(),
        &[
            "reconcile",
            "sweep",
            "--report-only",
            "--undelivered-days",
            "0",
            "--json",
        ],
    ))
    .expect("json");
    assert_eq!(report["disputes_published"], 0);
}

/// What waits on the poster's queue of a state directory.
fn odoo_queue(
    durable: &std::sync::Arc<freightctl::durable::Durable>,
) -> Vec<freightctl::durable::QueuedMessage> {
    freightctl::durable::DurableQueue::new(
        durable,
        freightctl::chain::ODOO_QUEUE,
        Duration::from_secs(30),
        10,
        None,
    )
    .snapshot()
    .expect("queue")
}
