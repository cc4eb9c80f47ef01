//! `freightctl serve` as a process, on its embedded runtime, against the Odoo double: killed
//! with SIGKILL in the middle of a load, killed after Odoo committed a write and before serve
//! recorded it, stopped with SIGTERM, and through an Odoo outage of minutes
//! (`FREIGHTBRIDGE_OUTAGE_SECONDS`, default 150). After each, every scan must be a note on its
//! picking exactly once and nothing dead-lettered. Figures are printed (`-- --nocapture`).
//!
//! The binary is the one `cargo test --workspace` builds for freightctl's own tests
//! (`target/<profile>/freightctl`).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use freightbridge::breaker::BreakerConfig;
use freightbridge::config::{PartnerConfig, PartnersFile};
use freightbridge::idempotency::{IdempotencyStore as _, Status};
use freightbridge_tests::freightctl_binary;
use freightbridge_tests::odoo_double::{
    HeldCall, InjectedFailure, OdooDouble, OdooDoubleConfig, PickingSeed,
};
use freightctl::chain::{ODOO_DLQ, ODOO_QUEUE, TRANSFORM_DLQ, TRANSFORM_QUEUE};
use freightctl::durable::{Durability, Durable, DurableQueue};
use freightctl::send;
use futures::StreamExt as _;
use serde_json::Value;

const PARTNERS: &str = include_str!("../../events/partners.local.toml");
const FINANCE: &str = include_str!("../../events/odoo.local.toml");
/// Seven scans, all before delivery: seven notes.
const TRACKER: &str =
    include_str!("../../events/partners/easypost-tracker-updated-in-transit.json");
/// Four scans ending in delivered: four notes, and the customer invoice released when the
/// finance settings say so.
const DELIVERED: &str = include_str!("../../events/partners/easypost-tracker-delivered.json");
/// The poster's records at once (`ChainConfig::concurrency`, which serve does not change).
const POSTER_CONCURRENCY: usize = 8;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One `freightctl serve` process; killed when dropped.
struct Serve {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

/// What a test changes from serve's defaults; `None` leaves serve's own default.
#[derive(Debug, Clone, Default)]
struct ServeOptions {
    /// `BREAKER_COOLDOWN_SECONDS`.
    breaker_cooldown_seconds: Option<u32>,
    /// `ODOO_TIMEOUT_SECS`.
    odoo_timeout_seconds: Option<u32>,
    /// `--odoo-finance`.
    finance: Option<PathBuf>,
}

impl ServeOptions {
    /// The short breaker cooldown and Odoo timeout of the tests that are not about them.
    fn quick() -> ServeOptions {
        ServeOptions {
            breaker_cooldown_seconds: Some(1),
            odoo_timeout_seconds: Some(5),
            finance: None,
        }
    }
}

/// The state directory serve is given inside a test's directory.
fn state_dir(test_dir: &Path) -> PathBuf {
    test_dir.join("state")
}

impl Serve {
    fn start(double: &OdooDouble, state: &Path, cooldown_seconds: u32) -> Serve {
        let options = ServeOptions {
            breaker_cooldown_seconds: Some(cooldown_seconds),
            ..ServeOptions::quick()
        };
        Serve::start_with(double, state, &options)
    }

    fn start_with(double: &OdooDouble, state: &Path, options: &ServeOptions) -> Serve {
        let config = double.config();
        let journal = state.join("journal.jsonl");
        let mut command = Command::new(freightctl_binary());
        command
            .current_dir(repo_root())
            .args(["serve", "--port", "0", "--drain-seconds", "10"])
            .arg("--state-dir")
            .arg(state_dir(state))
            .arg("--event-log")
            .arg(state.join("events.jsonl"))
            .arg("--odoo-journal")
            .arg(&journal)
            .env("ODOO_URL", double.url())
            .env("ODOO_DB", &config.db)
            .env("ODOO_USER", &config.login)
            .env("ODOO_API_KEY", &config.api_key)
            .env("RUST_LOG", "info");
        // Whatever the environment running the tests sets, serve gets only what the test says.
        for inherited in [
            "ODOO_TIMEOUT_SECS",
            "ODOO_TRANSPORT",
            "ODOO_PASSWORD",
            "ODOO_FINANCE_CONFIG",
            "BREAKER_THRESHOLD",
            "BREAKER_COOLDOWN_SECONDS",
        ] {
            command.env_remove(inherited);
        }
        if let Some(seconds) = options.breaker_cooldown_seconds {
            command.env("BREAKER_COOLDOWN_SECONDS", seconds.to_string());
        }
        if let Some(seconds) = options.odoo_timeout_seconds {
            command.env("ODOO_TIMEOUT_SECS", seconds.to_string());
        }
        if let Some(finance) = &options.finance {
            command.arg("--odoo-finance").arg(finance);
        }
        let mut child = command
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("freightctl serve starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Some(at) = line.find("listening on http://") {
                        let rest = &line[at + "listening on ".len()..];
                        let base = rest.split("/webhooks").next().unwrap_or(rest).to_owned();
                        let _ = tx.send(base);
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("serve did not start: {:?}", log.lock().unwrap()));
        Serve { child, base, log }
    }

    fn lines_with(&self, text: &str) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(text))
            .count()
    }

    fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit; answers whether it exited cleanly in time.
    fn terminate(&mut self, within: Duration) -> bool {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status();
        assert!(sent.is_ok_and(|s| s.success()), "kill -TERM");
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One partner delivery: a tracker of its own shipment, signed, with its delivery id.
#[derive(Clone)]
struct Webhook {
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

/// A shipment of the load: its picking and the notes its webhook must leave there.
struct Shipment {
    picking: i64,
    scans: usize,
}

struct Load {
    double: OdooDouble,
    partner: PartnerConfig,
    webhooks: Vec<Webhook>,
    shipments: Vec<Shipment>,
    client: reqwest::Client,
}

impl Load {
    /// `shipments` in-transit trackers (seven scans each).
    async fn new(shipments: usize) -> Load {
        let mut load = Load::empty().await;
        load.add(TRACKER, shipments);
        load
    }

    async fn empty() -> Load {
        let double = OdooDouble::start(OdooDoubleConfig::version(19)).await;
        let partners = PartnersFile::parse(PARTNERS).unwrap();
        let partner: PartnerConfig = partners.get("easypost").unwrap().clone();
        Load {
            double,
            partner,
            webhooks: Vec::new(),
            shipments: Vec::new(),
            client: reqwest::Client::new(),
        }
    }

    /// Adds `count` shipments, each with a picking and a webhook made from the EasyPost
    /// tracker `template`; answers their webhook numbers.
    fn add(&mut self, template: &str, count: usize) -> Vec<usize> {
        let template: Value = serde_json::from_str(template).unwrap();
        let scans = template["result"]["tracking_details"]
            .as_array()
            .map_or(0, Vec::len);
        assert!(scans > 0, "the template has scans");
        let first = self.webhooks.len();
        for n in first..first + count {
            let tracking = format!("LOAD{n:05}");
            let picking = self
                .double
                .seed_picking(PickingSeed::new(&format!("WH/OUT/{n:05}"), Some(&tracking)));
            let mut tracker = template.clone();
            tracker["id"] = Value::from(format!("evt_load_{n}"));
            tracker["result"]["id"] = Value::from(format!("trk_load_{n}"));
            tracker["result"]["tracking_code"] = Value::from(tracking);
            let body = serde_json::to_vec(&tracker).unwrap();
            let headers =
                send::partner_headers(&self.partner, &body, &format!("msg_load_{n}")).unwrap();
            self.webhooks.push(Webhook { body, headers });
            self.shipments.push(Shipment { picking, scans });
        }
        (first..first + count).collect()
    }

    /// Sends the webhooks numbered `which`, 16 at a time; answers the status of each (`None`:
    /// no answer, as when the process died).
    async fn send(&self, base: &str, which: &[usize]) -> Vec<(usize, Option<u16>)> {
        let url = format!("{base}/webhooks/easypost");
        futures::stream::iter(which.iter().copied())
            .map(|n| {
                let url = url.clone();
                async move {
                    let hook = &self.webhooks[n];
                    let status = send::post(&self.client, &url, &hook.headers, hook.body.clone())
                        .await
                        .ok()
                        .map(|r| r.status);
                    (n, status)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await
    }

    fn notes(&self) -> usize {
        self.double.records("mail.message").len()
    }

    /// Notes the whole load must leave: one per scan.
    fn expected_notes(&self) -> usize {
        self.shipments.iter().map(|s| s.scans).sum()
    }

    /// Waits until every scan has its note (or `timeout`), then a little longer to catch a
    /// late double; answers how long the wait took.
    async fn wait_for_all_notes(&self, timeout: Duration) -> Duration {
        let started = Instant::now();
        let expected = self.expected_notes();
        while self.notes() < expected && started.elapsed() < timeout {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let took = started.elapsed();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        took
    }

    /// Every picking has exactly one note per scan.
    fn assert_each_scan_once(&self) {
        let mut wrong = Vec::new();
        for (n, shipment) in self.shipments.iter().enumerate() {
            let notes = self.double.messages_on(shipment.picking).len();
            if notes != shipment.scans {
                wrong.push((n, notes, shipment.scans));
            }
        }
        assert!(
            wrong.is_empty(),
            "shipments with other than one note per scan (shipment, notes, scans): {wrong:?}"
        );
    }

    /// Chatter notes whose body carries `marker`.
    fn notes_with(&self, marker: &str) -> usize {
        self.double
            .records("mail.message")
            .iter()
            .filter(|m| m["body"].as_str().is_some_and(|b| b.contains(marker)))
            .count()
    }
}

/// The marker a note ends with (`[freightbridge event <id>]`, inside Odoo's `<p>` once
/// stored), and the event id in it.
fn marker_in(body: &str) -> Option<(String, String)> {
    const OPEN: &str = "[freightbridge event ";
    let start = body.rfind(OPEN)?;
    let (id, _) = body[start + OPEN.len()..].split_once(']')?;
    Some((format!("{OPEN}{id}]"), id.to_owned()))
}

/// The finance settings of the repository with the customer invoice released on delivery.
fn finance_with_release(dir: &Path) -> PathBuf {
    let off = "[invoice_release]\nenabled = false";
    assert!(
        FINANCE.contains(off),
        "events/odoo.local.toml turns release off"
    );
    let path = dir.join("odoo.release.toml");
    std::fs::write(
        &path,
        FINANCE.replace(off, "[invoice_release]\nenabled = true"),
    )
    .unwrap();
    path
}

/// The poster's idempotency record of `event_id` in a stopped serve's state: its status.
fn recorded_status(state: &Path, event_id: &str) -> Option<Status> {
    let durable = Durable::open(&state_dir(state), Durability::Normal).unwrap();
    let record = futures::executor::block_on(durable.get(&format!("odoo#{event_id}"))).unwrap();
    record.map(|r| r.status)
}

/// Messages left on the two work queues and the two DLQs of a stopped serve's state.
fn queue_depths(state: &Path) -> [(&'static str, usize); 4] {
    let durable = Durable::open(&state_dir(state), Durability::Normal).unwrap();
    [TRANSFORM_QUEUE, ODOO_QUEUE, TRANSFORM_DLQ, ODOO_DLQ].map(|name| {
        let queue = DurableQueue::new(&durable, name, Duration::from_secs(30), 100, None);
        (name, queue.len().unwrap())
    })
}

/// Waits until the double holds at least `at_least` answers and no more have joined them for
/// a second: the poster's batch is then stuck on them (a batch ends when all its records
/// have), well within serve's 30 s Odoo timeout.
async fn held_writes_settle(double: &OdooDouble, at_least: usize) {
    assert!(
        eventually(Duration::from_secs(30), || double.held().len() >= at_least).await,
        "a write was held"
    );
    let mut count = double.held().len();
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = double.held().len();
        if now == count {
            return;
        }
        count = now;
    }
}

/// Waits until `done` holds, for at most `within`; answers whether it held.
async fn eventually(within: Duration, done: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while !done() {
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

fn unanswered(results: &[(usize, Option<u16>)]) -> Vec<usize> {
    results
        .iter()
        .filter(|(_, status)| !status.is_some_and(|s| (200..300).contains(&s)))
        .map(|(n, _)| *n)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_mid_load_then_restart_and_resend_loses_and_doubles_nothing() {
    let load = Load::new(150).await;
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Serve::start(&load.double, dir.path(), 1);
    let base = serve.base.clone();
    let all: Vec<usize> = (0..load.webhooks.len()).collect();
    let sending = load.send(&base, &all);
    let killing = async {
        // Kill once a fifth of the notes are in Odoo: deliveries still arriving, scans draining.
        let target = load.expected_notes() / 5;
        while load.notes() < target {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        serve.kill9();
        load.notes()
    };
    let (results, notes_at_kill) = tokio::join!(sending, killing);
    let accepted_before = results.len() - unanswered(&results).len();

    // The partner resends what got no 2xx; a few accepted ones come again as well.
    let serve = Serve::start(&load.double, dir.path(), 1);
    let started = Instant::now();
    let mut resend = unanswered(&results);
    resend.extend(0..10);
    let second = load.send(&serve.base, &resend).await;
    assert!(
        unanswered(&second).is_empty(),
        "restarted chain answers: {second:?}"
    );
    let took = load.wait_for_all_notes(Duration::from_secs(90)).await;
    println!(
        "kill -9: {accepted_before}/{} webhooks accepted before the kill, {notes_at_kill} notes in Odoo at the kill; after restart {} resent, all {} notes in {:.1} s ({:.0} notes/s)",
        load.webhooks.len(),
        resend.len(),
        load.expected_notes(),
        took.as_secs_f64(),
        (load.expected_notes() - notes_at_kill) as f64 / started.elapsed().as_secs_f64()
    );
    load.assert_each_scan_once();
    assert_eq!(load.notes(), load.expected_notes());
    assert_eq!(
        serve.lines_with("dead-lettered"),
        0,
        "nothing dead-lettered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_drains_in_flight_work_and_a_restart_finishes_the_rest_once() {
    let load = Load::new(100).await;
    let dir = tempfile::tempdir().unwrap();
    let mut serve = Serve::start(&load.double, dir.path(), 1);
    let all: Vec<usize> = (0..load.webhooks.len()).collect();
    let results = load.send(&serve.base, &all).await;
    assert!(unanswered(&results).is_empty(), "all accepted: {results:?}");
    let stopped_at = Instant::now();
    assert!(
        serve.terminate(Duration::from_secs(15)),
        "clean exit on SIGTERM"
    );
    let drain = stopped_at.elapsed();
    let notes_at_stop = load.notes();
    assert!(serve.lines_with("draining") == 1);

    let serve = Serve::start(&load.double, dir.path(), 1);
    let took = load.wait_for_all_notes(Duration::from_secs(90)).await;
    println!(
        "SIGTERM: exited in {:.2} s with {notes_at_stop}/{} notes posted; the restart posted the rest in {:.1} s",
        drain.as_secs_f64(),
        load.expected_notes(),
        took.as_secs_f64()
    );
    load.assert_each_scan_once();
    assert_eq!(serve.lines_with("dead-lettered"), 0);
}

/// Kills serve while the writes it has sent are committed in Odoo and their answers held
/// back: Odoo has the effect, serve has not recorded it. Twice: with chatter notes held
/// (`message_post`), then with customer invoices released on delivery (`action_post`). The
/// restarts must find each earlier write by its marker (or its state) and never write again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_crash_after_the_odoo_write_and_before_the_idempotency_update_doubles_nothing() {
    let mut load = Load::empty().await;
    let in_transit = load.add(TRACKER, 40);
    let delivered = load.add(DELIVERED, 8);
    let customer = load.double.seed_partner(None, "Customer of the load");
    let invoices: Vec<i64> = delivered
        .iter()
        .map(|n| {
            let picking = load.shipments[*n].picking;
            let order = load
                .double
                .seed_sale_order(&format!("S{n:05}"), customer, &[picking]);
            load.double.seed_customer_invoice(order, 100.0)
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let options = ServeOptions {
        finance: Some(finance_with_release(dir.path())),
        // A held answer must not time out before the kill: serve's default (30 s).
        odoo_timeout_seconds: None,
        ..ServeOptions::quick()
    };

    // 1. Notes: once some are in, every note written is committed and its answer held.
    let mut first = Serve::start_with(&load.double, dir.path(), &options);
    let first_base = first.base.clone();
    let sending = load.send(&first_base, &in_transit);
    let crash = async {
        assert!(
            eventually(Duration::from_secs(60), || load.notes() >= 60).await,
            "notes flow"
        );
        load.double.hold_after_commit(&["message_post"], usize::MAX);
        held_writes_settle(&load.double, 1).await;
        first.kill9();
    };
    let (results, ()) = tokio::join!(sending, crash);
    // A request that reached the double before the kill still commits and is held.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held_notes = load.double.held();
    let notes_at_first_kill = load.notes();
    load.double.release_held();
    assert!(!held_notes.is_empty(), "a note was held when serve died");
    let held_markers: Vec<(String, String)> = held_notes
        .iter()
        .map(|call| {
            let body = call.args.get("body").and_then(Value::as_str);
            body.and_then(marker_in)
                .unwrap_or_else(|| panic!("a held note without a marker: {call:?}"))
        })
        .collect();
    for (marker, event_id) in &held_markers {
        assert_eq!(load.notes_with(marker), 1, "the held note is in Odoo");
        assert_eq!(
            recorded_status(dir.path(), event_id),
            Some(Status::InProgress),
            "serve had not recorded {event_id} as applied"
        );
    }

    // 2. Invoices: the restart resumes the notes; the deliveries' invoice posts are held.
    load.double.hold_after_commit(&["action_post"], usize::MAX);
    let mut second = Serve::start_with(&load.double, dir.path(), &options);
    let mut resend = unanswered(&results);
    resend.extend(delivered.iter().copied());
    let answers = load.send(&second.base, &resend).await;
    assert!(unanswered(&answers).is_empty(), "accepted: {answers:?}");
    held_writes_settle(&load.double, held_notes.len() + 1).await;
    second.kill9();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held_posts: Vec<HeldCall> = load.double.held()[held_notes.len()..].to_vec();
    load.double.release_held();
    assert!(
        !held_posts.is_empty(),
        "an invoice post was held when serve died"
    );
    for call in &held_posts {
        assert_eq!(call.method, "action_post");
        let [invoice] = call.ids[..] else {
            panic!("one invoice per delivery: {call:?}");
        };
        let state = load
            .double
            .record("account.move", invoice)
            .map(|m| m["state"].clone());
        assert_eq!(state, Some(Value::from("posted")), "committed in Odoo");
        let n = invoices
            .iter()
            .position(|i| *i == invoice)
            .expect("a seeded invoice");
        let picking = load.shipments[delivered[n]].picking;
        let pod = load.double.messages_on(picking).into_iter().find_map(|m| {
            m["body"]
                .as_str()
                .filter(|b| b.contains("Proof of delivery"))
                .and_then(marker_in)
        });
        let (_, event_id) = pod.unwrap_or_else(|| {
            panic!(
                "the delivery's note is posted before its invoice: {:?}",
                load.double.messages_on(picking)
            )
        });
        assert_eq!(
            recorded_status(dir.path(), &event_id),
            Some(Status::InProgress),
            "serve had not recorded the delivery {event_id} as applied"
        );
    }

    // 3. The last restart finishes the rest; nothing is written twice.
    let mut third = Serve::start_with(&load.double, dir.path(), &options);
    let settled = load.wait_for_all_notes(Duration::from_secs(90)).await;
    let action_posts = load
        .double
        .calls()
        .iter()
        .filter(|(model, method)| model == "account.move" && method == "action_post")
        .count();
    let found_again = second.lines_with("already posted") + third.lines_with("already posted");
    println!(
        "crash after the write: {} shipments, {} notes; 1st kill with {} notes committed and unanswered ({notes_at_first_kill} in Odoo), 2nd kill with {} invoice posts committed and unanswered; after the restarts {found_again} notes found by their marker instead of posted again, all {} notes once in {:.1} s after the last restart, {action_posts} invoice posts for {} invoices",
        load.shipments.len(),
        load.expected_notes(),
        held_notes.len(),
        held_posts.len(),
        load.expected_notes(),
        settled.as_secs_f64(),
        invoices.len(),
    );
    load.assert_each_scan_once();
    for (marker, _) in &held_markers {
        assert_eq!(load.notes_with(marker), 1, "a held note once: {marker}");
    }
    assert!(
        found_again >= held_notes.len(),
        "each held note's retry looked it up first"
    );
    for invoice in &invoices {
        let state = load
            .double
            .record("account.move", *invoice)
            .map(|m| m["state"].clone());
        assert_eq!(state, Some(Value::from("posted")), "invoice {invoice}");
    }
    assert_eq!(
        action_posts,
        invoices.len(),
        "one post per invoice, never again"
    );
    for serve in [&first, &second, &third] {
        assert_eq!(
            serve.lines_with("dead-lettered"),
            0,
            "nothing dead-lettered"
        );
        assert!(serve.lines_with("state swept") >= 1, "swept at start");
    }
    assert!(third.terminate(Duration::from_secs(15)), "clean exit");
    assert!(
        queue_depths(dir.path()).iter().all(|(_, n)| *n == 0),
        "queues and DLQs empty: {:?}",
        queue_depths(dir.path())
    );
}

/// `FREIGHTBRIDGE_OUTAGE_SECONDS`, default 150.
fn outage_length() -> Duration {
    match std::env::var("FREIGHTBRIDGE_OUTAGE_SECONDS") {
        Err(_) => Duration::from_secs(150),
        Ok(text) => match text.trim().parse::<u64>() {
            Ok(seconds) if seconds > 0 => Duration::from_secs(seconds),
            _ => {
                panic!("FREIGHTBRIDGE_OUTAGE_SECONDS={text:?} is not a positive number of seconds")
            }
        },
    }
}

/// When the breaker probes Odoo, counted from its first opening: after each cooldown, doubled
/// per reopening up to the cap. Answers the probes within `outage` and the first after it.
fn probe_schedule(config: &BreakerConfig, outage: Duration) -> (usize, Duration) {
    let mut at = Duration::ZERO;
    let mut cooldown = config.cooldown.to_std().unwrap_or_default();
    let cap = config.max_cooldown.to_std().unwrap_or_default();
    let mut within = 0;
    loop {
        at += cooldown;
        if at >= outage {
            return (within, at);
        }
        within += 1;
        cooldown = (cooldown * 2).min(cap);
    }
}

/// Odoo down for minutes while webhooks keep coming, with serve's own backoff, breaker and
/// retry budget: nothing is dead-lettered, every scan is posted once, the breaker holds the
/// calls while Odoo is down and closes after it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_odoo_outage_of_minutes_mid_load_dead_letters_nothing_and_the_breaker_holds_the_calls() {
    let outage = outage_length();
    let breaker = BreakerConfig::default();
    let (probes, first_probe_after) = probe_schedule(&breaker, outage);
    let mut load = Load::empty().await;
    let before = load.add(TRACKER, 40);
    let during = load.add(TRACKER, 20);
    let dir = tempfile::tempdir().unwrap();
    // Serve's defaults: breaker threshold 5, cooldown 15 s doubling to 5 min, backoff 2 s
    // doubling to 5 min, retry budget 2 h, Odoo timeout 30 s.
    let mut serve = Serve::start_with(&load.double, dir.path(), &ServeOptions::default());
    let started = Instant::now();
    let sending = load.send(&serve.base, &before);
    let down = async {
        assert!(
            eventually(Duration::from_secs(60), || load.notes() >= 100).await,
            "notes flow"
        );
        // Odoo goes away: every call answered 503 by the proxy in front of it.
        load.double.fail_next(usize::MAX, InjectedFailure::Http503);
        let down_at = Instant::now();
        let notes_at_down = load.notes();
        // Webhooks keep coming while it is down.
        tokio::time::sleep(outage / 2).await;
        let answers = load.send(&serve.base, &during).await;
        tokio::time::sleep(outage.saturating_sub(down_at.elapsed())).await;
        let refused = load.double.injected_count();
        let notes_while_down = load.notes() - notes_at_down;
        load.double.clear_failures();
        (down_at, notes_at_down, notes_while_down, refused, answers)
    };
    let (results, (down_at, notes_at_down, notes_while_down, refused, answers)) =
        tokio::join!(sending, down);
    let back_at = Instant::now();
    assert!(
        unanswered(&results).is_empty() && unanswered(&answers).is_empty(),
        "ingress never depends on Odoo"
    );
    let noticed = eventually(first_probe_after + Duration::from_secs(60), || {
        load.notes() > notes_at_down + notes_while_down
    })
    .await;
    let noticed_after = back_at.elapsed();
    assert!(noticed, "notes flow again after the outage");
    let took = load
        .wait_for_all_notes(first_probe_after + Duration::from_secs(120))
        .await;
    let settled_after = back_at.elapsed() - Duration::from_millis(1500);
    let lag = first_probe_after.saturating_sub(outage);
    println!(
        "outage: Odoo down {:.0} s (FREIGHTBRIDGE_OUTAGE_SECONDS), {} webhooks before and {} during it, {} notes; {refused} calls reached Odoo while it was down ({notes_at_down} notes before); breaker opened {} time(s), probed {} time(s) ({probes} while down as scheduled), closed {} time(s); Odoo noticed back {:.1} s after it returned (scheduled probe: {:.0} s after), all notes {:.1} s after it returned, {:.1} s after the load started",
        (back_at - down_at).as_secs_f64(),
        before.len(),
        during.len(),
        load.expected_notes(),
        serve.lines_with("breaker opened"),
        serve.lines_with("breaker half-open"),
        serve.lines_with("breaker closed"),
        noticed_after.as_secs_f64(),
        lag.as_secs_f64(),
        settled_after.as_secs_f64(),
        started.elapsed().as_secs_f64() - 1.5,
    );
    let _ = took;
    load.assert_each_scan_once();
    assert_eq!(notes_while_down, 0, "nothing reached a down Odoo");
    assert_eq!(
        serve.lines_with("dead-lettered"),
        0,
        "nothing dead-lettered"
    );
    assert!(
        serve.lines_with("breaker opened") >= 1,
        "the breaker opened"
    );
    assert!(serve.lines_with("breaker closed") >= 1, "and closed again");
    // Down: the failures that open it (threshold), the calls already in flight when it opened
    // (at most two per poster worker), one per probe. Without the breaker every waiting record
    // would call Odoo at each of its backoff steps (hundreds of calls).
    let bound = breaker.threshold as usize + 2 * POSTER_CONCURRENCY + probes + 2;
    assert!(
        refused <= bound,
        "{refused} calls reached Odoo while it was down; the breaker should hold all but {bound}"
    );
    // Back: noticed at the breaker's next probe, not later.
    assert!(
        noticed_after <= lag + Duration::from_secs(10),
        "noticed {noticed_after:?} after Odoo returned; the next probe was due {lag:?} after"
    );
    assert!(serve.terminate(Duration::from_secs(15)), "clean exit");
    assert!(
        queue_depths(dir.path()).iter().all(|(_, n)| *n == 0),
        "queues and DLQs empty: {:?}",
        queue_depths(dir.path())
    );
}
