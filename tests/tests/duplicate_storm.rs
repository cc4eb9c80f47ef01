//! The local chain on its embedded runtime under a duplicate storm (partners redelivering 30 %
//! of their webhooks, 64 connections at once), and a poison record among good ones. Figures are
//! printed (`-- --nocapture`).

use std::time::{Duration, Instant};

use freightbridge::config::{PartnersFile, Secret};
use freightbridge::odoo::{OdooClient, OdooConfig};
use freightbridge_tests::odoo_double::{OdooDouble, OdooDoubleConfig, PickingSeed};
use freightctl::chain::{Chain, ChainConfig};
use freightctl::send;
use futures::StreamExt as _;
use serde_json::Value;

const PARTNERS: &str = include_str!("../../events/partners.local.toml");
const TRACKER: &str =
    include_str!("../../events/partners/easypost-tracker-updated-in-transit.json");

async fn odoo(double: &OdooDouble) -> OdooClient {
    let d = double.config();
    let mut config = OdooConfig::new(double.url());
    config.db = Some(d.db.clone());
    config.user = Some(d.login.clone());
    config.api_key = Some(Secret::new(d.api_key.clone()));
    OdooClient::connect(&config).await.unwrap()
}

/// A tracker of shipment `tracking` with only its newest scan: one note.
fn one_scan_tracker(n: usize, tracking: &str) -> Vec<u8> {
    let mut tracker: Value = serde_json::from_str(TRACKER).unwrap();
    tracker["id"] = Value::from(format!("evt_storm_{n}"));
    tracker["result"]["id"] = Value::from(format!("trk_storm_{n}"));
    tracker["result"]["tracking_code"] = Value::from(tracking);
    let details = tracker["result"]["tracking_details"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    tracker["result"]["tracking_details"] =
        Value::from(details.last().cloned().into_iter().collect::<Vec<_>>());
    serde_json::to_vec(&tracker).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_duplicate_storm_posts_every_scan_exactly_once() {
    const UNIQUE: usize = 1400;
    const REDELIVERED: usize = 600; // 30 % of the 2,000 deliveries
    let double = OdooDouble::start(OdooDoubleConfig::version(19)).await;
    let partners = PartnersFile::parse(PARTNERS).unwrap();
    let easypost = partners.get("easypost").unwrap().clone();
    let state = tempfile::tempdir().unwrap();
    let chain = Chain::start(
        ChainConfig::new(partners, state.path()),
        odoo(&double).await,
    )
    .unwrap();
    let (addr, _server) = chain.listen(0).await.unwrap();
    let url = format!("http://{addr}/webhooks/easypost");

    let mut pickings = Vec::new();
    let mut deliveries = Vec::new();
    for n in 0..UNIQUE {
        let tracking = format!("STORM{n:05}");
        pickings.push(double.seed_picking(PickingSeed::new(
            &format!("WH/OUT/S{n:05}"),
            Some(&tracking),
        )));
        let body = one_scan_tracker(n, &tracking);
        let headers = send::partner_headers(&easypost, &body, &format!("msg_storm_{n}")).unwrap();
        deliveries.push((headers, body));
    }
    // Redeliveries of every other webhook, mixed in with the first deliveries.
    let mut order: Vec<usize> = (0..UNIQUE).collect();
    order.extend((0..REDELIVERED).map(|i| (i * 7) % UNIQUE));
    fastrand::shuffle(&mut order);

    let client = reqwest::Client::new();
    let started = Instant::now();
    let statuses: Vec<(usize, u16)> = futures::stream::iter(order.iter().copied())
        .map(|n| {
            let (client, url) = (&client, &url);
            let (headers, body) = &deliveries[n];
            async move {
                let status = send::post(client, url, headers, body.clone())
                    .await
                    .map(|r| r.status)
                    .unwrap_or(0);
                (n, status)
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let ingested = started.elapsed();
    assert!(
        chain.wait_drained(Duration::from_secs(480)).await,
        "queues drained"
    );
    let total = started.elapsed();
    let count = |code: u16| statuses.iter().filter(|(_, s)| *s == code).count();
    let (accepted, duplicates, in_progress) = (count(202), count(200), count(409));
    // A redelivery racing its first delivery is told 409 `in_progress` (DESIGN §3.6), and the
    // partner retries it: then it is a plain duplicate.
    for (n, _) in statuses.iter().filter(|(_, s)| *s == 409) {
        let (headers, body) = &deliveries[*n];
        let again = send::post(&client, &url, headers, body.clone())
            .await
            .unwrap();
        assert_eq!(
            again.status, 200,
            "the retried race is a duplicate: {:?}",
            again.body
        );
    }
    println!(
        "duplicate storm: {} deliveries ({UNIQUE} unique, {REDELIVERED} redelivered) over 64 connections: {accepted} accepted, {duplicates} answered as duplicates, {in_progress} as in progress (retried: duplicates), ingested in {:.1} s ({:.0} webhooks/s), every note in Odoo after {:.1} s ({:.0} notes/s)",
        order.len(),
        ingested.as_secs_f64(),
        order.len() as f64 / ingested.as_secs_f64(),
        total.as_secs_f64(),
        UNIQUE as f64 / total.as_secs_f64(),
    );
    assert_eq!(
        accepted + duplicates + in_progress,
        order.len(),
        "every delivery answered 202, 200 or 409: {statuses:?}"
    );
    assert_eq!(accepted, UNIQUE, "each webhook accepted once");
    let wrong: Vec<(usize, usize)> = pickings
        .iter()
        .enumerate()
        .map(|(n, p)| (n, double.messages_on(*p).len()))
        .filter(|(_, notes)| *notes != 1)
        .collect();
    assert!(
        wrong.is_empty(),
        "shipments without exactly one note: {wrong:?}"
    );
    assert!(chain.odoo_dlq.is_empty().unwrap() && chain.transform_dlq.is_empty().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_among_ten_is_dead_lettered_with_its_reason_and_the_nine_applied() {
    let double = OdooDouble::start(OdooDoubleConfig::version(19)).await;
    let partners = PartnersFile::parse(PARTNERS).unwrap();
    let easypost = partners.get("easypost").unwrap().clone();
    let state = tempfile::tempdir().unwrap();
    let chain = Chain::start(
        ChainConfig::new(partners, state.path()),
        odoo(&double).await,
    )
    .unwrap();
    let (addr, _server) = chain.listen(0).await.unwrap();
    let url = format!("http://{addr}/webhooks/easypost");
    let client = reqwest::Client::new();
    let mut pickings = Vec::new();
    for n in 0..10 {
        let tracking = format!("POISON{n}");
        // The tenth shipment has no picking in Odoo: its event cannot be applied.
        if n < 9 {
            pickings.push(
                double.seed_picking(PickingSeed::new(&format!("WH/OUT/P{n}"), Some(&tracking))),
            );
        }
        let body = one_scan_tracker(100 + n, &tracking);
        let headers = send::partner_headers(&easypost, &body, &format!("msg_poison_{n}")).unwrap();
        let answer = send::post(&client, &url, &headers, body).await.unwrap();
        assert_eq!(answer.status, 202);
    }
    assert!(chain.wait_drained(Duration::from_secs(60)).await);
    for picking in &pickings {
        assert_eq!(
            double.messages_on(*picking).len(),
            1,
            "the nine are applied"
        );
    }
    let letters = chain.odoo_dlq.snapshot().unwrap();
    assert_eq!(letters.len(), 1, "one dead letter");
    let attr = |name: &str| {
        letters[0]
            .attributes
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(attr("fb-error-class").as_deref(), Some("permanent"));
    assert_eq!(
        attr("fb-error-code").as_deref(),
        Some("odoo_picking_not_found")
    );
    assert_eq!(attr("fb-consumer").as_deref(), Some("odoo-poster"));
    assert_eq!(
        attr("fb-receive-count").as_deref(),
        Some("1"),
        "dead-lettered at once"
    );
    assert!(
        letters[0].body.contains("POISON9"),
        "the original message, unchanged"
    );
}
