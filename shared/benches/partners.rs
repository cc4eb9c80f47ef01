//! Partner adapters in process: EasyPost JSON → canonical (the in-transit sample), and X12
//! throughput in MB/s — the Canada Post 214 as received, the same sets repeated in one large
//! interchange, the tokenizer alone, and the UPS 210.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use freightbridge::partners::x12::{self, Options, tokenizer};
use freightbridge::partners::{self, Adapter, Format, Need};
use freightbridge::webhook::{ReceivedWebhook, WebhookBody, ingress_id};

const EASYPOST_IN_TRANSIT: &[u8] =
    include_bytes!("../tests/fixtures/partners/easypost-tracker-updated-in-transit.json");
const CANADAPOST_214: &[u8] =
    include_bytes!("../tests/fixtures/x12/edi-214-canadapost-multi-status.edi");
const UPS_210: &[u8] = include_bytes!("../tests/fixtures/x12/edi-210-ups-multi-invoice.edi");

/// Times the Canada Post sets are repeated in the large body (~1.1 MB).
const REPEATS: usize = 200;

fn webhook(format: &str, body: &[u8]) -> ReceivedWebhook {
    ReceivedWebhook {
        ingress_id: ingress_id("bench", "delivery"),
        partner: "bench".into(),
        format: format.into(),
        delivery_id: "delivery".into(),
        received_at: chrono::DateTime::UNIX_EPOCH,
        content_type: None,
        body: WebhookBody::from_bytes(body),
    }
}

/// The Canada Post interchange with its 19 sets repeated `times` times in one group, control
/// numbers and trailer counts rewritten so the envelope stays valid.
fn repeated_214(times: usize) -> Vec<u8> {
    let text = std::str::from_utf8(CANADAPOST_214).expect("the sample is text");
    let lines: Vec<&str> = text.lines().collect();
    let sets: Vec<&[&str]> = lines
        .split_inclusive(|line| line.starts_with("SE*"))
        .filter(|chunk| chunk.iter().any(|line| line.starts_with("ST*")))
        .map(|chunk| {
            let start = chunk.iter().position(|l| l.starts_with("ST*")).unwrap_or(0);
            &chunk[start..]
        })
        .collect();
    let mut out = String::new();
    out.push_str(lines[0]);
    out.push('\n');
    out.push_str(lines[1]);
    out.push('\n');
    let mut control = 0usize;
    for _ in 0..times {
        for set in &sets {
            control += 1;
            for line in *set {
                if line.starts_with("ST*") {
                    out.push_str(&format!("ST*214*{control:09}\n"));
                } else if line.starts_with("SE*") {
                    out.push_str(&format!("SE*{}*{control:09}\n", set.len()));
                } else {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
    }
    out.push_str(&format!("GE*{control}*000001644\nIEA*1*000001644\n"));
    out.into_bytes()
}

fn easypost(c: &mut Criterion) {
    let webhook = webhook("easypost", EASYPOST_IN_TRANSIT);
    let mut group = c.benchmark_group("easypost");
    group.throughput(Throughput::Bytes(EASYPOST_IN_TRANSIT.len() as u64));
    group.bench_function(
        // Seven scans: seven events, the newest with the tracker's estimate.
        format!("in-transit→canonical/{}B", EASYPOST_IN_TRANSIT.len()),
        |b| {
            b.iter(|| {
                black_box(partners::to_canonical(
                    Format::EasyPost,
                    black_box(&webhook),
                ))
                .expect("events")
            })
        },
    );
    // Ingress: the check and the delivery id, without the payload hash (a Standard Webhooks
    // partner is keyed by its `webhook-id` header) and with it (the body keys the delivery).
    let adapter = Adapter::new(Format::EasyPost);
    for (name, need) in [
        ("inspect/delivery-id", Need::DeliveryId),
        ("inspect/delivery-id+hash", Need::DeliveryIdAndHash),
    ] {
        group.bench_function(format!("{name}/{}B", EASYPOST_IN_TRANSIT.len()), |b| {
            b.iter(|| {
                black_box(adapter.inspect_for(black_box(EASYPOST_IN_TRANSIT), need))
                    .expect("inspects")
            })
        });
    }
    // The transform as the canonical-transform Lambda calls it (events, history).
    group.bench_function(
        format!("in-transit→transformed/{}B", EASYPOST_IN_TRANSIT.len()),
        |b| b.iter(|| black_box(adapter.transform(black_box(&webhook))).expect("events")),
    );
    group.finish();
}

fn x12(c: &mut Criterion) {
    let options = Options::default();
    let large = repeated_214(REPEATS);
    let bodies: [(&str, &[u8]); 3] = [
        ("214-canadapost", CANADAPOST_214),
        ("214-repeated", &large),
        ("210-ups", UPS_210),
    ];
    let mut group = c.benchmark_group("x12");
    for (name, body) in bodies {
        let webhook = webhook(x12::FORMAT, body);
        let events = x12::to_canonical(&webhook, body, &options).expect("events");
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_function(
            format!(
                "{name}/parse+transform/{}B/{}events",
                body.len(),
                events.len()
            ),
            |b| {
                b.iter(|| {
                    black_box(x12::to_canonical(&webhook, black_box(body), &options))
                        .expect("events")
                })
            },
        );
        group.bench_function(format!("{name}/tokenize/{}B", body.len()), |b| {
            b.iter(|| black_box(tokenizer::tokenize(black_box(body))).expect("tokens"))
        });
    }
    group.finish();
}

criterion_group!(benches, easypost, x12);
criterion_main!(benches);
