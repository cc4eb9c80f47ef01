//! `freightctl serve` as a process, on its embedded runtime, against the Odoo double: killed
//! with SIGKILL in the middle of a load, stopped with SIGTERM, and through an Odoo outage. After
//! each, every scan must be a note on its picking exactly once and nothing dead-lettered.
//! Figures are printed (`-- --nocapture`).
//!
//! The binary is the one `cargo test --workspace` builds for freightctl's own tests
//! (`target/<profile>/freightctl`).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use freightbridge::config::{PartnerConfig, PartnersFile};
use freightbridge_tests::odoo_double::{
    InjectedFailure, OdooDouble, OdooDoubleConfig, PickingSeed,
};
use freightctl::send;
use futures::StreamExt as _;
use serde_json::Value;

const PARTNERS: &str = include_str!("../../events/partners.local.toml");
const TRACKER: &str =
    include_str!("../../events/partners/easypost-tracker-updated-in-transit.json");
/// Scans in the sample tracker: one note each.
const SCANS: usize = 7;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `target/<profile>/freightctl`, beside this test's own `deps/` directory.
fn freightctl_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let binary = profile_dir.join("freightctl");
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (or `cargo build -p freightctl` first)",
        binary.display()
    );
    binary
}

/// One `freightctl serve` process; killed when dropped.
struct Serve {
    child: Child,
    base: String,
    log: Arc<Mutex<Vec<String>>>,
}

impl Serve {
    fn start(double: &OdooDouble, state: &Path, cooldown_seconds: u32) -> Serve {
        let config = double.config();
        let journal = state.join("journal.jsonl");
        let mut child = Command::new(freightctl_binary())
            .current_dir(repo_root())
            .args(["serve", "--port", "0", "--drain-seconds", "10"])
            .arg("--state-dir")
            .arg(state.join("state"))
            .arg("--event-log")
            .arg(state.join("events.jsonl"))
            .arg("--odoo-journal")
            .arg(&journal)
            .env("ODOO_URL", double.url())
            .env("ODOO_DB", &config.db)
            .env("ODOO_USER", &config.login)
            .env("ODOO_API_KEY", &config.api_key)
            .env("ODOO_TIMEOUT_SECS", "5")
            .env("BREAKER_THRESHOLD", "5")
            .env("BREAKER_COOLDOWN_SECONDS", cooldown_seconds.to_string())
            .env("RUST_LOG", "info")
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

struct Load {
    double: OdooDouble,
    webhooks: Vec<Webhook>,
    pickings: Vec<i64>,
    client: reqwest::Client,
}

impl Load {
    async fn new(shipments: usize) -> Load {
        let double = OdooDouble::start(OdooDoubleConfig::version(19)).await;
        let partners = PartnersFile::parse(PARTNERS).unwrap();
        let partner: PartnerConfig = partners.get("easypost").unwrap().clone();
        let template: Value = serde_json::from_str(TRACKER).unwrap();
        let mut webhooks = Vec::new();
        let mut pickings = Vec::new();
        for n in 0..shipments {
            let tracking = format!("LOAD{n:05}");
            pickings.push(
                double.seed_picking(PickingSeed::new(&format!("WH/OUT/{n:05}"), Some(&tracking))),
            );
            let mut tracker = template.clone();
            tracker["id"] = Value::from(format!("evt_load_{n}"));
            tracker["result"]["id"] = Value::from(format!("trk_load_{n}"));
            tracker["result"]["tracking_code"] = Value::from(tracking);
            let body = serde_json::to_vec(&tracker).unwrap();
            let headers = send::partner_headers(&partner, &body, &format!("msg_load_{n}")).unwrap();
            webhooks.push(Webhook { body, headers });
        }
        Load {
            double,
            webhooks,
            pickings,
            client: reqwest::Client::new(),
        }
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

    /// Waits until every scan has its note (or `timeout`), then a little longer to catch a
    /// late double; answers how long the wait took.
    async fn wait_for_all_notes(&self, timeout: Duration) -> Duration {
        let started = Instant::now();
        let expected = self.webhooks.len() * SCANS;
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
        for (n, picking) in self.pickings.iter().enumerate() {
            let notes = self.double.messages_on(*picking).len();
            if notes != SCANS {
                wrong.push((n, notes));
            }
        }
        assert!(
            wrong.is_empty(),
            "shipments with other than {SCANS} notes (shipment, notes): {wrong:?}"
        );
    }
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
        let target = load.webhooks.len() * SCANS / 5;
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
        load.webhooks.len() * SCANS,
        took.as_secs_f64(),
        (load.webhooks.len() * SCANS - notes_at_kill) as f64 / started.elapsed().as_secs_f64()
    );
    load.assert_each_scan_once();
    assert_eq!(load.notes(), load.webhooks.len() * SCANS);
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
        load.webhooks.len() * SCANS,
        took.as_secs_f64()
    );
    load.assert_each_scan_once();
    assert_eq!(serve.lines_with("dead-lettered"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_odoo_outage_mid_load_dead_letters_nothing_and_the_breaker_opens_and_closes() {
    let load = Load::new(100).await;
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve::start(&load.double, dir.path(), 1);
    let all: Vec<usize> = (0..load.webhooks.len()).collect();
    let sending = load.send(&serve.base, &all);
    let outage = async {
        while load.notes() < 100 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Odoo goes away: every call answered 503 by the proxy in front of it, for 6 s.
        load.double.fail_next(usize::MAX, InjectedFailure::Http503);
        let down = Instant::now();
        tokio::time::sleep(Duration::from_secs(6)).await;
        load.double.clear_failures();
        (down.elapsed(), load.double.injected_count())
    };
    let started = Instant::now();
    let (results, (down_for, refused)) = tokio::join!(sending, outage);
    assert!(
        unanswered(&results).is_empty(),
        "ingress never depends on Odoo"
    );
    let took = load.wait_for_all_notes(Duration::from_secs(120)).await;
    println!(
        "outage: Odoo down {:.1} s, {refused} calls refused while down (the breaker held the rest); all {} notes {:.1} s after the load started; breaker opened {} time(s), closed {} time(s)",
        down_for.as_secs_f64(),
        load.webhooks.len() * SCANS,
        started.elapsed().as_secs_f64() - 1.5,
        serve.lines_with("breaker opened"),
        serve.lines_with("breaker closed"),
    );
    let _ = took;
    load.assert_each_scan_once();
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
}
