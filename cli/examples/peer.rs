//! The Rust side of the peer comparison (`benches/peer/run.sh`): on the 3.5 KB EasyPost
//! in-transit sample (7 scans) signed with the Standard Webhooks scheme, the ingress check
//! (`Registry::evaluate`: verify, inspect, dedupe key) and the ingress check plus the canonical
//! transform and `serde_json::to_vec` of each event, each timed over `--iterations` runs on one
//! thread. Writes the inputs (body, headers, secret) to `--inputs DIR` for the Python peer and
//! prints one JSON line of figures.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use chrono::Utc;
use freightbridge::config::{PartnersFile, Secret, resolve_local};
use freightbridge::ingress::Registry;
use freightbridge::partners::Adapters;
use freightbridge::signature::{Scheme, sign};
use freightbridge::webhook::{ReceivedWebhook, WebhookBody, ingress_id};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;

/// The Standard Webhooks specification's published test secret.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const BODY: &[u8] =
    include_bytes!("../../events/partners/easypost-tracker-updated-in-transit.json");

fn main() {
    let mut iterations: u32 = 20_000;
    let mut inputs: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--iterations" => {
                iterations = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--iterations takes a count")
            }
            "--inputs" => inputs = args.next().map(PathBuf::from),
            other => panic!("unknown argument {other}"),
        }
    }
    let partners = PartnersFile::parse(&format!(
        "[[partner]]\nid = \"easypost\"\nformat = \"easypost\"\n[partner.signature]\n\
         scheme = \"standard-webhooks\"\nsecrets = [\"{SECRET}\"]\n"
    ))
    .expect("partners");
    let registry = Registry::build(&partners, resolve_local).expect("registry");
    let adapters = Adapters::from_partners(&partners).expect("adapters");
    let signed = sign(
        &Scheme::StandardWebhooks,
        &Secret::new(SECRET),
        BODY,
        Utc::now(),
        "msg_peer_1",
    )
    .expect("signs");
    let mut headers = HeaderMap::new();
    for (name, value) in &signed {
        headers.insert(
            HeaderName::try_from(name.as_str()).expect("header name"),
            HeaderValue::try_from(value.as_str()).expect("header value"),
        );
    }
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Some(dir) = &inputs {
        std::fs::create_dir_all(dir).expect("inputs directory");
        std::fs::write(dir.join("body.json"), BODY).expect("body");
        let header_map: serde_json::Map<String, serde_json::Value> = signed
            .iter()
            .map(|(name, value)| (name.clone(), json!(value)))
            .collect();
        std::fs::write(
            dir.join("inputs.json"),
            json!({"secret": SECRET, "headers": header_map}).to_string(),
        )
        .expect("inputs");
    }

    let check = || {
        registry
            .evaluate("easypost", &headers, None, BODY, Utc::now())
            .expect("accepted")
    };
    let time = |work: &dyn Fn()| {
        let started = Instant::now();
        for _ in 0..iterations {
            work();
        }
        started.elapsed().as_secs_f64() * 1e6 / f64::from(iterations)
    };
    let check_us = time(&|| {
        black_box(check());
    });
    // Where the check's time goes: the body's inspection (parse, read, payload hash) and the
    // hash of the body that keys a Standard Webhooks delivery.
    let inspect_us = time(&|| {
        black_box(
            freightbridge::partners::inspect(freightbridge::partners::Format::EasyPost, BODY)
                .expect("inspects"),
        );
    });
    let body_hash_us = time(&|| {
        black_box(freightbridge::idempotency::sha256_tag(BODY));
    });
    let mut events = 0;

    let started = Instant::now();
    for _ in 0..iterations {
        let accepted = check();
        let webhook = ReceivedWebhook {
            ingress_id: ingress_id(&accepted.partner, &accepted.delivery_id),
            partner: accepted.partner,
            format: accepted.format.name().to_owned(),
            delivery_id: accepted.delivery_id,
            received_at: Utc::now(),
            content_type: accepted.content_type,
            body: WebhookBody::from_bytes(BODY),
        };
        let transformed = canonical_transform::transform(&adapters, &webhook).expect("events");
        events = transformed.events.len();
        for event in &transformed.events {
            black_box(serde_json::to_vec(event).expect("serialises"));
        }
    }
    let full_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(iterations);
    println!(
        "{}",
        json!({
            "implementation": "freightbridge (Rust)",
            "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
            "iterations": iterations,
            "body_bytes": BODY.len(),
            "events": events,
            "ingress_check_us": check_us,
            "of_which_inspect_us": inspect_us,
            "of_which_body_hash_us": body_hash_us,
            "ingress_transform_us": full_us,
        })
    );
}
