//! Ingress hot path in process, for a ~2 KB EasyPost body: signature verification, format
//! inspection and dedupe key, and the canonical transform; plus the full ingress handler against
//! the in-memory store and bus (what one warm Lambda invocation does besides network I/O).

use std::hint::black_box;
use std::sync::Arc;

use chrono::Utc;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use freightbridge::bus::memory::MemoryBus;
use freightbridge::config::{PartnersFile, Secret, resolve_local};
use freightbridge::idempotency::memory::MemoryStore;
use freightbridge::idempotency::{Idempotency, Policy};
use freightbridge::ingress::Registry;
use freightbridge::partners::Adapters;
use freightbridge::signature::{Scheme, sign};
use freightbridge::webhook::{ReceivedWebhook, WebhookBody, ingress_id};
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use webhook_ingress::Ingress;

const PARTNERS: &str = r#"
[[partner]]
id = "easypost"
format = "easypost"
[partner.signature]
scheme = "easypost"
secrets = ["bench-secret"]
"#;

/// The EasyPost sample trimmed to about 2 KB (two tracking details).
fn body_2kb() -> Vec<u8> {
    let text = include_str!("../../events/partners/easypost-tracker-updated-in-transit.json");
    let mut event: Value = serde_json::from_str(text).expect("sample is JSON");
    if let Some(details) = event["result"]["tracking_details"].as_array_mut() {
        details.truncate(2);
    }
    serde_json::to_vec(&event).expect("serialises")
}

fn headers_for(body: &[u8]) -> HeaderMap {
    let scheme = Scheme::EasyPost;
    let signed = sign(&scheme, &Secret::new("bench-secret"), body, Utc::now(), "m").expect("signs");
    let mut headers = HeaderMap::new();
    for (name, value) in signed {
        headers.insert(
            HeaderName::try_from(name).expect("header name"),
            HeaderValue::try_from(value).expect("header value"),
        );
    }
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers
}

fn bench(c: &mut Criterion) {
    let partners = PartnersFile::parse(PARTNERS).expect("partners");
    let registry = Arc::new(Registry::build(&partners, resolve_local).expect("registry"));
    let adapters = Adapters::from_partners(&partners).expect("adapters");
    let body = body_2kb();
    let headers = headers_for(&body);

    let mut group = c.benchmark_group("ingress");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function(format!("verify+inspect+transform/{}B", body.len()), |b| {
        b.iter(|| {
            let now = Utc::now();
            let accepted = registry
                .evaluate("easypost", black_box(&headers), None, black_box(&body), now)
                .expect("accepted");
            let webhook = ReceivedWebhook {
                ingress_id: ingress_id(&accepted.partner, &accepted.delivery_id),
                partner: accepted.partner,
                format: accepted.format.name().to_owned(),
                delivery_id: accepted.delivery_id,
                received_at: now,
                content_type: accepted.content_type,
                body: WebhookBody::from_bytes(&body),
            };
            black_box(canonical_transform::transform(&adapters, &webhook).expect("events"))
        })
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let ingress = Ingress::new(
        registry.clone(),
        Idempotency::new(Arc::new(MemoryStore::new()), Policy::default()),
        Arc::new(MemoryBus::new()),
    );
    group.bench_function(format!("handler-first-delivery/{}B", body.len()), |b| {
        let mut n = 0u64;
        b.iter_batched(
            || {
                // A new EasyPost event id each time, so every request is a first delivery:
                // dedupe record written, event published, record completed.
                n += 1;
                let mut event: Value = serde_json::from_slice(&body).expect("JSON");
                event["id"] = Value::String(format!("evt_bench_{n}"));
                let unique = serde_json::to_vec(&event).expect("serialises");
                let headers = headers_for(&unique);
                (unique, headers)
            },
            |(unique, headers)| {
                runtime.block_on(async {
                    let now = Utc::now();
                    black_box(
                        ingress
                            .handle(
                                "easypost",
                                &headers,
                                None,
                                &unique,
                                now,
                                now + chrono::Duration::seconds(30),
                            )
                            .await,
                    )
                })
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.bench_function(format!("handler-duplicate/{}B", body.len()), |b| {
        b.iter(|| {
            runtime.block_on(async {
                let now = Utc::now();
                black_box(
                    ingress
                        .handle(
                            "easypost",
                            &headers,
                            None,
                            &body,
                            now,
                            now + chrono::Duration::seconds(30),
                        )
                        .await,
                )
            })
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
