//! Properties of judging over generated ledgers and invoices: it never panics, its outcome and
//! reasons agree, an amount within the tolerance is never an amount reason (and one beyond it
//! always is), and an anomaly flag never changes the outcome.

use chrono::{DateTime, Utc};
use proptest::prelude::*;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::*;
use crate::canonical::{
    ChargeKind, ChargeLine, Estimate, EstimateKind, EventBody, Invoice, ShipmentStatus,
};

const CONFIG: &str = r#"
    [default]
    tolerance = { absolute = "5.00", percent = "2" }

    [carrier.UPS]
    currency = "USD"
    tolerance = { absolute = "5.00", percent = "2" }
    surcharges = [{ code = "LFG", cap = "75.00" }, { kind = "tax" }]
    anomaly = { min_history = 3 }

    [carrier.UPS.rate_card]
    weight_unit = "kg"
    lanes = [
        { origin = { postal_prefix = "1" }, destination = {}, minimum = "45", breaks = [{ from = 0, rate = "0.50" }, { from = 500, rate = "0.40" }] },
        { origin = { zone = "E" }, destination = { zone = "W" }, breaks = [{ from = 0, rate = "1.10" }] },
    ]

    [carrier.UPS.fuel]
    bands = [{ from = "3.00", to = "3.50", percent = "10" }, { from = "3.50", to = "4.00", percent = "12" }]
"#;

fn config() -> ReconcileConfig {
    ReconcileConfig::from_toml(CONFIG).expect("valid configuration")
}

/// Decimals of every shape: cents, any mantissa and scale, and the extremes.
fn any_decimal() -> impl Strategy<Value = Decimal> {
    prop_oneof![
        4 => (-1_000_000i64..10_000_000).prop_map(|cents| Decimal::new(cents, 2)),
        2 => (any::<i64>(), 0u32..=28).prop_map(|(m, s)| Decimal::new(m, s)),
        1 => (any::<i128>(), 0u32..=28).prop_map(|(m, s)| {
            Decimal::try_from_i128_with_scale(m >> 32, s).unwrap_or(Decimal::MAX)
        }),
        1 => prop_oneof![
            Just(Decimal::MAX),
            Just(Decimal::MIN),
            Just(Decimal::ZERO),
            Just(Decimal::new(1, 28))
        ],
    ]
}

fn any_kind() -> impl Strategy<Value = ChargeKind> {
    prop_oneof![
        Just(ChargeKind::BaseFreight),
        Just(ChargeKind::FuelSurcharge),
        Just(ChargeKind::Accessorial),
        Just(ChargeKind::Tax),
        Just(ChargeKind::Discount),
        Just(ChargeKind::Other),
    ]
}

fn any_line() -> impl Strategy<Value = ChargeLine> {
    (
        any_kind(),
        prop::option::of(prop_oneof![Just("LFG"), Just("lfg"), Just("RES"), Just("")]),
        any_decimal(),
    )
        .prop_map(|(kind, code, amount)| ChargeLine {
            kind,
            code: code.map(str::to_string),
            description: None,
            amount,
        })
}

fn any_currency() -> impl Strategy<Value = String> {
    prop_oneof![4 => Just("USD"), 1 => Just("EUR"), 1 => Just("usd")].prop_map(str::to_string)
}

fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
    (0i64..4_000_000_000).prop_map(|s| DateTime::from_timestamp(s, 0).unwrap_or_default())
}

fn any_receipt() -> impl Strategy<Value = Receipt> {
    (any_time(), 0u128..4).prop_map(|(received_at, id)| Receipt {
        received_at,
        event_id: Uuid::from_u128(id),
    })
}

fn any_invoice() -> impl Strategy<Value = Invoice> {
    (
        prop_oneof![Just("INV-1"), Just("inv-1 "), Just("INV-2")],
        any_currency(),
        any_decimal(),
        prop::collection::vec(any_line(), 0..6),
    )
        .prop_map(|(number, currency, total, lines)| Invoice {
            number: number.into(),
            issued_on: "2024-08-05".parse().unwrap_or_default(),
            currency,
            total,
            lines,
            references: vec![],
            parties: vec![],
            delivered_on: None,
            weight: None,
        })
}

fn any_place() -> impl Strategy<Value = Place> {
    (
        prop::option::of(prop_oneof![
            Just("10001"),
            Just("1"),
            Just("90210"),
            Just("")
        ]),
        prop::option::of(prop_oneof![Just("E"), Just("w"), Just("X")]),
    )
        .prop_map(|(postal_code, zone)| Place {
            postal_code: postal_code.map(str::to_string),
            zone: zone.map(str::to_string),
        })
}

fn any_facts() -> impl Strategy<Value = ShipmentFacts> {
    let estimate = (
        any_currency(),
        any_decimal(),
        prop::collection::vec(any_line(), 0..4),
    )
        .prop_map(|(currency, total, lines)| Estimate {
            kind: EstimateKind::Booking,
            currency,
            total,
            lines,
        });
    let lane = (
        any_place(),
        any_place(),
        prop::option::of((any_decimal(), prop::bool::ANY)),
    )
        .prop_map(|(origin, destination, weight)| LaneFacts {
            origin,
            destination,
            weight: weight.map(|(value, kg)| Weight {
                value,
                unit: if kg { WeightUnit::Kg } else { WeightUnit::Lb },
            }),
        });
    let sighting = (
        prop_oneof![Just("UPS"), Just("FedEx")],
        prop_oneof![Just("1Z1"), Just("1Z2")],
        prop_oneof![Just("INV-1"), Just("INV-0")],
        any_currency(),
        any_decimal(),
        any_receipt(),
    )
        .prop_map(
            |(carrier, tracking, number, currency, total, receipt)| InvoiceSighting {
                carrier: carrier.into(),
                tracking_number: tracking.into(),
                number: number.into(),
                currency,
                total,
                receipt,
            },
        );
    (
        prop_oneof![Just("UPS"), Just("ups"), Just("DHL")],
        prop::option::of(Just(ShipmentStatus::Delivered)),
        prop::option::of(any_time()),
        prop::option::of(estimate),
        prop::option::of(lane),
        prop::collection::vec(sighting, 0..4),
    )
        .prop_map(
            |(carrier, status, pod, estimate, lane, invoices)| ShipmentFacts {
                carrier: carrier.into(),
                tracking_number: "1Z1".into(),
                reference: None,
                status,
                pod: pod.map(|delivered_at| Pod {
                    reference: "evt".into(),
                    delivered_at,
                    signed_by: None,
                }),
                estimate,
                lane,
                invoices,
            },
        )
}

fn any_context() -> impl Strategy<Value = JudgeContext> {
    (
        any_receipt(),
        prop::option::of(any_decimal()),
        prop::option::of(prop::collection::vec(any_decimal(), 0..12)),
    )
        .prop_map(|(receipt, fuel_price, history)| JudgeContext {
            receipt,
            fuel_price,
            history: history.and_then(|costs| {
                baseline(&costs).map(|baseline| LaneHistory {
                    currency: "USD".into(),
                    baseline,
                })
            }),
        })
}

proptest! {
    #[test]
    fn judging_never_panics_and_outcome_reasons_and_body_agree(
        facts in any_facts(),
        invoice in any_invoice(),
        context in any_context(),
    ) {
        let judgement = judge(&facts, &invoice, &config(), &context);
        prop_assert_eq!(judgement.reasons.is_empty(), judgement.outcome == Outcome::Matched);
        prop_assert!(judgement.reasons.windows(2).all(|w| w[0].code < w[1].code));
        prop_assert!(judgement.reasons.iter().all(|r| !r.message.is_empty()));
        prop_assert_eq!(judgement.evidence.lines.len(), invoice.lines.len());
        match judgement.canonical_body() {
            EventBody::InvoiceMatched(_) => prop_assert!(judgement.is_matched()),
            EventBody::InvoiceDisputed(body) => {
                prop_assert!(!body.reasons.is_empty());
                prop_assert_eq!(body.reasons.len(), judgement.reasons.len());
            }
            other => prop_assert!(false, "{other:?}"),
        }
        // A match needs a known, delivered shipment with an expected cost.
        if judgement.is_matched() {
            prop_assert!(facts.is_known() && facts.pod.is_some());
            prop_assert!(judgement.evidence.comparison.is_some());
        }
        let json = serde_json::to_string(&judgement).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let back: Judgement = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(back, judgement);
    }

    #[test]
    fn an_anomaly_flag_never_changes_the_outcome(
        facts in any_facts(),
        invoice in any_invoice(),
        context in any_context(),
        history in prop::collection::vec(any_decimal(), 1..12),
    ) {
        let config = config();
        let without = JudgeContext { history: None, ..context.clone() };
        let with = JudgeContext {
            history: baseline(&history).map(|baseline| LaneHistory {
                currency: invoice.currency.clone(),
                baseline,
            }),
            ..context
        };
        let plain = judge(&facts, &invoice, &config, &without);
        let flagged = judge(&facts, &invoice, &config, &with);
        prop_assert_eq!(&plain.reasons, &flagged.reasons);
        prop_assert_eq!(plain.outcome, flagged.outcome);
        prop_assert_eq!(plain.canonical_body(), flagged.canonical_body());
        prop_assert_eq!(plain.evidence.anomaly, None);
    }

    #[test]
    fn within_the_tolerance_is_never_an_amount_reason_and_beyond_it_always_is(
        expected_cents in 0i64..100_000_000,
        fraction in 0u32..=1000,
        beyond_cents in 1i64..10_000,
        over in prop::bool::ANY,
    ) {
        let expected = Decimal::new(expected_cents, 2);
        // The allowed difference: the larger of 5.00 and 2 % of the expected cost, in cents.
        let allowed = Decimal::new(500, 2).max(round_cents(expected * Decimal::new(2, 2)));
        let within = (allowed * Decimal::from(fraction) / Decimal::from(1000)).round_dp(2);
        let beyond = allowed + Decimal::new(beyond_cents, 2);
        let sign = if over { Decimal::ONE } else { Decimal::NEGATIVE_ONE };
        let facts = ShipmentFacts {
            status: Some(ShipmentStatus::Delivered),
            pod: Some(Pod {
                reference: "evt".into(),
                delivered_at: DateTime::UNIX_EPOCH,
                signed_by: None,
            }),
            estimate: Some(Estimate {
                kind: EstimateKind::Booking,
                currency: "USD".into(),
                total: expected,
                lines: vec![],
            }),
            ..ShipmentFacts::new("UPS", "1Z1")
        };
        let context = JudgeContext {
            receipt: Receipt { received_at: DateTime::UNIX_EPOCH, event_id: Uuid::nil() },
            fuel_price: None,
            history: None,
        };
        let invoice = |total: Decimal| Invoice {
            number: "INV-1".into(),
            issued_on: "2024-08-05".parse().unwrap_or_default(),
            currency: "USD".into(),
            total,
            lines: vec![],
            references: vec![],
            parties: vec![],
            delivered_on: None,
            weight: None,
        };
        let config = config();
        let inside = judge(&facts, &invoice(expected + sign * within), &config, &context);
        prop_assert!(inside.is_matched(), "{:?}", inside.reasons);
        let outside = judge(&facts, &invoice(expected + sign * beyond), &config, &context);
        let code = if over { ReasonCode::OverTolerance } else { ReasonCode::UnderTolerance };
        prop_assert_eq!(
            outside.reasons.iter().map(|r| r.code).collect::<Vec<_>>(),
            vec![code]
        );
    }
}
