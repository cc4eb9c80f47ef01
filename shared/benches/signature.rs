//! Each signature scheme's verification of the 3.5 KB EasyPost in-transit sample, signed the
//! way a partner using that scheme signs it (`signature::sign`), with one secret configured.

use std::hint::black_box;

use chrono::{Duration, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use freightbridge::config::Secret;
use freightbridge::signature::{self, Encoding, Scheme, Verifier};
use http::{HeaderMap, HeaderName, HeaderValue};

const BODY: &[u8] =
    include_bytes!("../tests/fixtures/partners/easypost-tracker-updated-in-transit.json");

/// Every scheme, with a secret of the form it takes.
fn schemes() -> Vec<(&'static str, Scheme, &'static str)> {
    vec![
        (
            "standard-webhooks",
            Scheme::StandardWebhooks,
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ),
        ("easypost", Scheme::EasyPost, "sécret"),
        ("aftership", Scheme::AfterShip, "aftership-secret"),
        (
            "hmac-sha256-hex",
            Scheme::HmacSha256 {
                header: "x-hub-signature-256".into(),
                prefix: "sha256=".into(),
                encoding: Encoding::Hex,
            },
            "github-style-secret",
        ),
        ("shippo", Scheme::Shippo, "shippo-secret"),
        (
            "query-token",
            Scheme::QueryToken {
                parameter: "token".into(),
            },
            "a-long-shared-token-0123456789",
        ),
        ("basic", Scheme::Basic, "partner:correct horse battery"),
    ]
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("signature");
    group.throughput(Throughput::Bytes(BODY.len() as u64));
    let now = Utc::now();
    for (name, scheme, secret) in schemes() {
        let secret = Secret::new(secret);
        let signed = signature::sign(&scheme, &secret, BODY, now, "msg_2Yh7bench")
            .expect("the sample signs");
        let (mut headers, mut query) = (HeaderMap::new(), None);
        for (header, value) in signed {
            match signature::query_parameter(&header) {
                Some(parameter) => query = Some(format!("{parameter}={value}")),
                None => {
                    headers.insert(
                        HeaderName::try_from(header.as_str()).expect("a header name"),
                        HeaderValue::try_from(value.as_str()).expect("a header value"),
                    );
                }
            }
        }
        let verifier = Verifier::new(scheme, &[secret], Duration::minutes(5)).expect("a verifier");
        verifier
            .verify(&headers, query.as_deref(), BODY, now)
            .expect("the sample verifies");
        group.bench_function(format!("verify/{name}/{}B", BODY.len()), |b| {
            b.iter(|| {
                verifier
                    .verify(
                        black_box(&headers),
                        black_box(query.as_deref()),
                        black_box(BODY),
                        now,
                    )
                    .expect("verifies")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
