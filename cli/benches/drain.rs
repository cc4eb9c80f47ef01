//! The whole local chain on its embedded runtime (`freightctl serve`'s): N signed EasyPost
//! webhooks (default 10 000, `-- --webhooks N`), each a new tracker with its 7 scans, posted over
//! HTTP on 64 connections, then drained through the transform and the poster (Odoo in dry-run:
//! the calls journaled, not sent) and the reconciler. Prints the figures; a bench binary rather
//! than criterion, since one pass is the measurement.

use std::sync::Arc;
use std::time::{Duration, Instant};

use freightbridge::config::PartnersFile;
use freightctl::chain::{Chain, ChainConfig};
use freightctl::durable::Durability;
use futures::StreamExt as _;
use serde_json::Value;

const PARTNERS: &str = r#"
[[partner]]
id = "easypost"
format = "easypost"
[partner.signature]
scheme = "easypost"
secrets = ["bench-secret"]
"#;

/// A signed request: its body and headers.
type Signed = (Vec<u8>, Vec<(String, String)>);

const SAMPLE: &str = include_str!("../../events/partners/easypost-tracker-updated-in-transit.json");

#[tokio::main]
async fn main() {
    let mut webhooks: usize = 10_000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--webhooks" {
            webhooks = args
                .next()
                .and_then(|n| n.parse().ok())
                .expect("--webhooks takes a count");
        }
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let partners = PartnersFile::parse(PARTNERS).expect("partners");
    let odoo = freightctl::odoo_from_env(&dir.path().join("odoo-journal.jsonl"))
        .await
        .expect("a dry-run Odoo");
    let mut config = ChainConfig::new(partners.clone(), dir.path().join("state"));
    config.durability = Durability::Normal;
    config.visibility_timeout = Duration::from_secs(30);
    let chain = Arc::new(Chain::start(config, odoo).expect("the chain starts"));
    let (addr, _server) = chain.listen(0).await.expect("listens");
    let partner = partners.get("easypost").expect("partner");
    let template: Value = serde_json::from_str(SAMPLE).expect("sample");
    let bodies: Vec<Signed> = (0..webhooks)
        .map(|n| {
            let mut tracker = template.clone();
            tracker["id"] = Value::from(format!("evt_drain_{n}"));
            tracker["result"]["id"] = Value::from(format!("trk_drain_{n}"));
            tracker["result"]["tracking_code"] = Value::from(format!("DRAIN{n:08}"));
            let body = serde_json::to_vec(&tracker).expect("serialises");
            let headers = freightctl::send::partner_headers(partner, &body, &format!("msg_{n}"))
                .expect("signs");
            (body, headers)
        })
        .collect();
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/webhooks/easypost");
    let started = Instant::now();
    let accepted = futures::stream::iter(bodies)
        .map(|(body, headers)| {
            let (client, url) = (client.clone(), url.clone());
            async move {
                freightctl::send::post(&client, &url, &headers, body)
                    .await
                    .map(|r| r.status)
                    .unwrap_or(0)
            }
        })
        .buffer_unordered(64)
        .filter(|status| std::future::ready(*status == 202))
        .count()
        .await;
    let ingested = started.elapsed();
    let drained = chain.wait_drained(Duration::from_secs(1800)).await;
    let total = started.elapsed();
    let counts = chain.canonical_counts();
    println!(
        "{webhooks} webhooks ({accepted} accepted) ingested in {:.2} s ({:.0}/s); chain drained: {drained} \
         after {:.2} s ({:.0} webhooks/s end to end); canonical events: {counts:?}",
        ingested.as_secs_f64(),
        webhooks as f64 / ingested.as_secs_f64(),
        total.as_secs_f64(),
        webhooks as f64 / total.as_secs_f64(),
    );
}
