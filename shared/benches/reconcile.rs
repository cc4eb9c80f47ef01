//! Judging one carrier invoice in process: priced by a 50-lane rate card with a fuel table (the
//! lane found by longest prefix, every lane looked at), and against an estimate for comparison.
//! Both with a surcharge allow-list, earlier invoices to check for duplicates and a lane history
//! for the anomaly flag.

use std::hint::black_box;

use chrono::DateTime;
use criterion::{Criterion, criterion_group, criterion_main};
use freightbridge::canonical::{
    ChargeKind, ChargeLine, Estimate, EstimateKind, Invoice, ShipmentStatus,
};
use freightbridge::reconcile::{
    InvoiceSighting, JudgeContext, LaneFacts, LaneHistory, Place, Pod, Receipt, ReconcileConfig,
    ShipmentFacts, Weight, WeightUnit, baseline, judge,
};
use rust_decimal::Decimal;
use uuid::Uuid;

const LANES: usize = 50;

/// A UPS configuration with `LANES` lanes: postal prefixes of one to three digits at the origin,
/// zones and prefixes at the destination, three weight breaks each and a minimum; ten fuel bands.
fn config() -> ReconcileConfig {
    let mut text = String::from(
        r#"
        [carrier.UPS]
        currency = "USD"
        tolerance = { absolute = "5.00", percent = "2" }
        surcharges = [{ code = "LFG", cap = "75.00" }, { code = "RES", cap = "5.00" }, { kind = "tax" }]

        [carrier.UPS.fuel]
        bands = [
        "#,
    );
    for band in 0..10 {
        text.push_str(&format!(
            "{{ from = \"{}.{:02}\", to = \"{}.{:02}\", percent = \"{}.5\" }},\n",
            3 + band * 25 / 100,
            band * 25 % 100,
            3 + (band + 1) * 25 / 100,
            (band + 1) * 25 % 100,
            10 + band
        ));
    }
    text.push_str("]\n[carrier.UPS.rate_card]\nweight_unit = \"kg\"\nlanes = [\n");
    for lane in 0..LANES {
        // Unique origins: one digit for every fifth lane, three digits for the next, two for
        // the rest.
        let origin = match lane % 5 {
            0 => format!("{}", lane / 10),
            1 => format!("0{lane:02}"),
            _ => format!("{lane:02}"),
        };
        let destination = if lane % 2 == 0 {
            format!("{{ zone = \"Z{}\" }}", lane % 8)
        } else {
            format!("{{ postal_prefix = \"9{}\" }}", lane % 10)
        };
        text.push_str(&format!(
            "{{ name = \"lane {lane}\", origin = {{ postal_prefix = \"{origin}\" }}, \
             destination = {destination}, minimum = \"45.00\", \
             breaks = [{{ from = 0, rate = \"0.6{lane}\" }}, {{ from = 100, rate = \"0.5{lane}\" }}, \
             {{ from = 500, rate = \"0.4{lane}\" }}] }},\n"
        ));
    }
    text.push_str("]\n");
    ReconcileConfig::from_toml(&text).expect("bench configuration")
}

fn decimal(text: &str) -> Decimal {
    text.parse().expect("bench decimal")
}

fn line(kind: ChargeKind, code: &str, amount: &str) -> ChargeLine {
    ChargeLine {
        kind,
        code: Some(code.into()),
        description: None,
        amount: decimal(amount),
    }
}

/// Delivered, 420 kg from 04601 to 94105 in zone Z4: every lane is looked at, and lane 4 (prefix
/// 04 to zone Z4) is the one that fits (lane 46's longer 046 goes to zone Z6). Priced at
/// 420 × 0.54 = 226.80 plus 13.5 % fuel at 3.859 (30.62).
fn facts(estimate: Option<Estimate>) -> ShipmentFacts {
    let receipt = |id: u128| Receipt {
        received_at: DateTime::from_timestamp(1_722_500_000 + id as i64, 0).unwrap_or_default(),
        event_id: Uuid::from_u128(id),
    };
    ShipmentFacts {
        carrier: "UPS".into(),
        tracking_number: "1Z999".into(),
        reference: Some("WH/OUT/00042".into()),
        status: Some(ShipmentStatus::Delivered),
        pod: Some(Pod {
            reference: "https://pod.example/1Z999.pdf".into(),
            delivered_at: DateTime::from_timestamp(1_722_600_000, 0).unwrap_or_default(),
            signed_by: Some("J. DOE".into()),
        }),
        estimate,
        lane: Some(LaneFacts {
            origin: Place {
                postal_code: Some("04601".into()),
                zone: None,
            },
            destination: Place {
                postal_code: Some("94105".into()),
                zone: Some("Z4".into()),
            },
            weight: Some(Weight {
                value: decimal("420"),
                unit: WeightUnit::Kg,
            }),
        }),
        invoices: (1..=3)
            .map(|id| InvoiceSighting {
                carrier: "UPS".into(),
                tracking_number: format!("1Z{id}"),
                number: format!("INV-{id}"),
                currency: "USD".into(),
                total: decimal("230.00"),
                receipt: receipt(id),
            })
            .collect(),
    }
}

fn invoice() -> Invoice {
    Invoice {
        number: "INV-9".into(),
        issued_on: "2024-08-05".parse().expect("date"),
        currency: "USD".into(),
        total: decimal("315.93"),
        lines: vec![
            line(ChargeKind::BaseFreight, "400", "226.80"),
            line(ChargeKind::FuelSurcharge, "FUE", "30.62"),
            line(ChargeKind::Accessorial, "LFG", "50.00"),
            line(ChargeKind::Tax, "GST", "8.51"),
        ],
        references: vec![],
        parties: vec![],
        delivered_on: None,
        weight: None,
    }
}

fn reconcile(c: &mut Criterion) {
    let config = config();
    let costs: Vec<Decimal> = (0..50)
        .map(|i| Decimal::new(23_000 + i * 37 % 900, 2))
        .collect();
    let context = JudgeContext {
        receipt: Receipt {
            received_at: DateTime::from_timestamp(1_722_700_000, 0).unwrap_or_default(),
            event_id: Uuid::from_u128(9),
        },
        fuel_price: Some(decimal("3.859")),
        history: Some(LaneHistory {
            currency: "USD".into(),
            baseline: baseline(&costs).expect("history"),
        }),
    };
    let invoice = invoice();
    let by_card = facts(None);
    let by_estimate = facts(Some(Estimate {
        kind: EstimateKind::Booking,
        currency: "USD".into(),
        total: decimal("255.00"),
        lines: vec![],
    }));
    let judgement = judge(&by_card, &invoice, &config, &context);
    assert!(
        judgement.evidence.expected.is_some(),
        "{:#?}",
        judgement.evidence.rate_card
    );

    let mut group = c.benchmark_group("reconcile");
    group.bench_function(format!("judge/rate-card-{LANES}-lanes+fuel"), |b| {
        b.iter(|| judge(black_box(&by_card), black_box(&invoice), &config, &context))
    });
    group.bench_function("judge/estimate", |b| {
        b.iter(|| {
            judge(
                black_box(&by_estimate),
                black_box(&invoice),
                &config,
                &context,
            )
        })
    });
    group.bench_function("judge+canonical-body+evidence-json/rate-card", |b| {
        b.iter(|| {
            let judgement = judge(black_box(&by_card), black_box(&invoice), &config, &context);
            let body = judgement.canonical_body();
            black_box((body, serde_json::to_vec(&judgement.evidence).expect("json")))
        })
    });
    group.bench_function("baseline/50-costs", |b| {
        b.iter(|| baseline(black_box(&costs)))
    });
    group.finish();
}

criterion_group!(benches, reconcile);
criterion_main!(benches);
