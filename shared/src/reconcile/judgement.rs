//! Judging one carrier invoice against what the ledger knows of its shipment: matched only with a
//! proof of delivery, in the expected cost's currency, within the carrier's tolerance of the
//! expected cost, with every surcharge on the allow-list and within its cap, and not a
//! duplicate. Every judgement carries the evidence a person, the ledger and the audit trail need.

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::allow_list::{LineVerdict, Verdict, judge_lines, judged_on_its_own};
use super::anomaly::{Anomaly, Baseline, flag};
use super::config::{CarrierRules, ReconcileConfig};
use super::duplicates::{Duplicate, earlier_copies};
use super::facts::{Pod, Receipt, ShipmentFacts};
use super::money::{same_currency, show, show_plain};
use super::rate_card::{RateCardLookup, price};
use super::tolerance::{AmountVerdict, ToleranceApplied};
use crate::canonical::{
    ChargeKind, ChargeLine, DisputeCode, DisputeReason, Estimate, EstimateKind, EventBody, Invoice,
    InvoiceDisputed, InvoiceMatched, ShipmentStatus,
};

/// What the judgement needs besides the ledger's facts and the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JudgeContext {
    /// The `freight_invoice.received` that brought the invoice: tells it apart from earlier
    /// copies among [`ShipmentFacts::invoices`].
    pub receipt: Receipt,
    /// The fuel price the carrier's fuel table is read with (the carrier's published index for
    /// the shipment's week). Needed only when the rate card prices the shipment.
    pub fuel_price: Option<Decimal>,
    /// What shipments on this carrier's lane cost before, for the anomaly flag.
    pub history: Option<LaneHistory>,
}

/// A baseline of earlier costs per shipment (invoice totals) on one carrier's lane, in one
/// currency; the invoice's total is flagged against it only when the currencies agree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneHistory {
    pub currency: String,
    pub baseline: Baseline,
}

/// The reconciler's verdict on one invoice. `reasons` is empty exactly when `outcome` is
/// `matched`; reasons come in [`ReasonCode`] order, one per code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Judgement {
    pub carrier: String,
    pub tracking_number: String,
    pub invoice_number: String,
    /// The invoice's, ISO 4217.
    pub currency: String,
    pub invoiced_total: Decimal,
    pub outcome: Outcome,
    pub reasons: Vec<Reason>,
    pub evidence: Evidence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Post the bill.
    Matched,
    /// A person decides.
    Disputed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: ReasonCode,
    /// For the person who resolves the dispute, with the numbers.
    pub message: String,
}

/// Why an invoice is disputed. The declaration order is the order reasons are listed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasonCode {
    /// The ledger knows nothing of the shipment but invoices.
    UnknownShipment,
    /// The shipment has no proof of delivery.
    NoPod,
    /// The invoice repeats one received earlier.
    DuplicateInvoice,
    /// No estimate arrived and the rate card cannot price the shipment.
    NoExpectedCost,
    /// The invoice is in another currency than the expected cost or a surcharge cap.
    CurrencyMismatch,
    /// The invoice asks for more than the expected cost plus the tolerance.
    OverTolerance,
    /// The invoice asks for less than the expected cost less the tolerance.
    UnderTolerance,
    /// A surcharge line that no rule of the carrier's allow-list covers.
    SurchargeNotAllowed,
    /// Surcharge lines adding up to more than their rule's cap.
    SurchargeOverCap,
}

impl ReasonCode {
    pub const ALL: [ReasonCode; 9] = [
        ReasonCode::UnknownShipment,
        ReasonCode::NoPod,
        ReasonCode::DuplicateInvoice,
        ReasonCode::NoExpectedCost,
        ReasonCode::CurrencyMismatch,
        ReasonCode::OverTolerance,
        ReasonCode::UnderTolerance,
        ReasonCode::SurchargeNotAllowed,
        ReasonCode::SurchargeOverCap,
    ];

    pub fn as_str(self) -> &'static str {
        self.dispute_code().as_str()
    }

    /// The canonical code carried by `freight_invoice.disputed`.
    pub fn dispute_code(self) -> DisputeCode {
        match self {
            ReasonCode::UnknownShipment => DisputeCode::UnknownShipment,
            ReasonCode::NoPod => DisputeCode::NoPod,
            ReasonCode::DuplicateInvoice => DisputeCode::DuplicateInvoice,
            ReasonCode::NoExpectedCost => DisputeCode::NoExpectedCost,
            ReasonCode::CurrencyMismatch => DisputeCode::CurrencyMismatch,
            ReasonCode::OverTolerance => DisputeCode::OverTolerance,
            ReasonCode::UnderTolerance => DisputeCode::UnderTolerance,
            ReasonCode::SurchargeNotAllowed => DisputeCode::SurchargeNotAllowed,
            ReasonCode::SurchargeOverCap => DisputeCode::SurchargeOverCap,
        }
    }
}

/// What the judgement was based on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The configuration section that judged it (`carrier.UPS`, `default`).
    pub rules: String,
    pub known_shipment: bool,
    pub status: Option<ShipmentStatus>,
    pub pod: Option<Pod>,
    /// The estimate when one arrived, else the rate card's price; `None` when neither.
    pub expected: Option<Expected>,
    /// What the rate card said, when it was consulted (no estimate arrived).
    pub rate_card: Option<RateCardLookup>,
    /// The amounts compared, when there was an expected cost in the invoice's currency.
    pub comparison: Option<Comparison>,
    /// One verdict per invoice line, in the invoice's order.
    pub lines: Vec<LineVerdict>,
    /// Earlier invoices this one repeats.
    pub duplicates: Vec<Duplicate>,
    /// Decision support only: never a reason, never changes the outcome.
    pub anomaly: Option<Anomaly>,
}

/// The expected cost of the shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    pub source: ExpectedSource,
    /// Booking or quote, when the source is an estimate.
    pub estimate_kind: Option<EstimateKind>,
    /// ISO 4217.
    pub currency: String,
    pub total: Decimal,
    pub lines: Vec<ChargeLine>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedSource {
    Estimate,
    RateCard,
}

impl Expected {
    fn from_estimate(estimate: &Estimate) -> Expected {
        Expected {
            source: ExpectedSource::Estimate,
            estimate_kind: Some(estimate.kind),
            currency: estimate.currency.clone(),
            total: estimate.total,
            lines: estimate.lines.clone(),
        }
    }

    fn from_rate_card(lookup: &RateCardLookup, currency: &str) -> Option<Expected> {
        let RateCardLookup::Priced {
            line_haul,
            fuel,
            total,
        } = lookup
        else {
            return None;
        };
        let mut lines = vec![ChargeLine {
            kind: ChargeKind::BaseFreight,
            code: None,
            description: Some(line_haul.describe()),
            amount: line_haul.amount,
        }];
        if let Some(fuel) = fuel {
            lines.push(ChargeLine {
                kind: ChargeKind::FuelSurcharge,
                code: None,
                description: Some(format!(
                    "fuel surcharge {} % at fuel price {} = {}",
                    show_plain(fuel.percent),
                    show(fuel.price),
                    show(fuel.amount)
                )),
                amount: fuel.amount,
            });
        }
        Some(Expected {
            source: ExpectedSource::RateCard,
            estimate_kind: None,
            currency: currency.to_string(),
            total: *total,
            lines,
        })
    }

    /// "booking estimate", "quote", "rate card".
    fn source_name(&self) -> &'static str {
        match (self.source, self.estimate_kind) {
            (ExpectedSource::Estimate, Some(EstimateKind::Quote)) => "quote",
            (ExpectedSource::Estimate, _) => "booking estimate",
            (ExpectedSource::RateCard, _) => "rate card",
        }
    }
}

/// The amounts compared with the tolerance: each side's total less its surcharge lines
/// (accessorial, tax, other), which are judged on their own against the allow-list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Comparison {
    /// The invoice total less `invoiced_surcharges`.
    pub invoiced: Decimal,
    /// The expected total less `expected_surcharges`.
    pub expected: Decimal,
    pub invoiced_surcharges: Decimal,
    pub expected_surcharges: Decimal,
    /// `invoiced − expected`: positive when the carrier asks for more.
    pub difference: Decimal,
    pub tolerance: ToleranceApplied,
    pub verdict: AmountVerdict,
}

fn surcharges(lines: &[ChargeLine]) -> Decimal {
    lines
        .iter()
        .filter(|line| judged_on_its_own(line.kind))
        .fold(Decimal::ZERO, |sum, line| sum.saturating_add(line.amount))
}

impl Comparison {
    fn of(invoice: &Invoice, expected: &Expected, rules: &CarrierRules) -> Comparison {
        let invoiced_surcharges = surcharges(&invoice.lines);
        let expected_surcharges = surcharges(&expected.lines);
        let invoiced = invoice.total.saturating_sub(invoiced_surcharges);
        let expected_amount = expected.total.saturating_sub(expected_surcharges);
        let check = rules.tolerance.check(invoiced, expected_amount);
        Comparison {
            invoiced,
            expected: expected_amount,
            invoiced_surcharges,
            expected_surcharges,
            difference: check.difference,
            tolerance: check.tolerance,
            verdict: check.verdict,
        }
    }

    /// "invoiced 231.00 USD is 21.00 over the expected 210.00 USD (booking estimate); the
    /// tolerance is 5.00, the larger of 5.00 and 2 % (4.20)".
    fn describe(&self, invoice: &Invoice, expected: &Expected) -> String {
        let currency = &invoice.currency;
        let invoiced = if self.invoiced_surcharges.is_zero() {
            format!("invoiced {} {currency}", show(self.invoiced))
        } else {
            format!(
                "the freight of {} {currency} (invoice total {} less {} of surcharges judged on \
                 their own)",
                show(self.invoiced),
                show(invoice.total),
                show(self.invoiced_surcharges)
            )
        };
        let mut against = format!(
            "the expected {} {currency} ({}",
            show(self.expected),
            expected.source_name()
        );
        if !self.expected_surcharges.is_zero() {
            against.push_str(&format!(
                " total {} less {} of surcharges",
                show(expected.total),
                show(self.expected_surcharges)
            ));
        }
        if expected.source == ExpectedSource::RateCard {
            let rows: Vec<&str> = expected
                .lines
                .iter()
                .filter_map(|line| line.description.as_deref())
                .collect();
            against.push_str(&format!(": {}", rows.join("; ")));
        }
        against.push(')');
        let side = if self.difference.is_sign_negative() {
            "under"
        } else {
            "over"
        };
        format!(
            "{invoiced} is {} {side} {against}; the tolerance is {}",
            show(self.difference.abs()),
            self.tolerance.describe()
        )
    }
}

impl Judgement {
    pub fn is_matched(&self) -> bool {
        self.outcome == Outcome::Matched && self.reasons.is_empty()
    }

    /// The reconciler's canonical event body: `freight_invoice.matched`, or
    /// `freight_invoice.disputed` with each reason's code and message. Only a judgement that is
    /// matched and has no reasons becomes `matched`.
    pub fn canonical_body(&self) -> EventBody {
        let expected_total = self.evidence.expected.as_ref().map(|e| e.total);
        if self.is_matched() {
            return EventBody::InvoiceMatched(InvoiceMatched {
                invoice_number: self.invoice_number.clone(),
                currency: self.currency.clone(),
                invoiced_total: self.invoiced_total,
                expected_total,
            });
        }
        let mut reasons: Vec<DisputeReason> = self
            .reasons
            .iter()
            .map(|reason| DisputeReason {
                code: reason.code.dispute_code(),
                message: reason.message.clone(),
            })
            .collect();
        if reasons.is_empty() {
            reasons.push(DisputeReason {
                code: DisputeCode::Other,
                message: "the judgement was disputed without a reason".into(),
            });
        }
        EventBody::InvoiceDisputed(InvoiceDisputed {
            invoice_number: self.invoice_number.clone(),
            currency: self.currency.clone(),
            invoiced_total: self.invoiced_total,
            expected_total,
            reasons,
        })
    }
}

/// Reasons gathered while judging: one per code, its messages joined.
#[derive(Default)]
struct Reasons(BTreeMap<ReasonCode, Vec<String>>);

impl Reasons {
    fn add(&mut self, code: ReasonCode, message: String) {
        self.0.entry(code).or_default().push(message);
    }

    fn into_list(self) -> Vec<Reason> {
        self.0
            .into_iter()
            .map(|(code, messages)| Reason {
                code,
                message: messages.join("; "),
            })
            .collect()
    }
}

/// Judges `invoice` against the ledger's `facts` of its shipment with the carrier's rules from
/// `config`. Pure: the same inputs always give the same judgement, and nothing here panics on
/// what partners send.
///
/// - An unknown shipment is reported as `unknown_shipment` alone, not also as `no_pod` and
///   `no_expected_cost`, which follow from it.
/// - The expected cost is the estimate when one arrived, else the rate card's line haul plus
///   fuel surcharge; amounts in another currency are not compared.
/// - The freight (total less surcharge lines) is compared with the expected freight; surcharge
///   lines are judged against the allow-list.
/// - The anomaly flag, when `context.history` is in the invoice's currency, is evidence only.
pub fn judge(
    facts: &ShipmentFacts,
    invoice: &Invoice,
    config: &ReconcileConfig,
    context: &JudgeContext,
) -> Judgement {
    let rules = config.rules_for(&facts.carrier);
    let mut reasons = Reasons::default();
    let shipment = format!("{} {}", facts.carrier, facts.tracking_number);
    let known = facts.is_known();

    if !known {
        reasons.add(
            ReasonCode::UnknownShipment,
            format!("the ledger has no shipment {shipment}: only invoices were received for it"),
        );
    } else if facts.pod.is_none() {
        let status = facts.status.map_or("none received", ShipmentStatus::as_str);
        reasons.add(
            ReasonCode::NoPod,
            format!("no proof of delivery for {shipment} (latest status: {status})"),
        );
    }

    let duplicates = earlier_copies(facts, invoice, context.receipt);
    for copy in &duplicates {
        reasons.add(ReasonCode::DuplicateInvoice, copy.describe(&invoice.number));
    }

    let lines = judge_lines(
        &invoice.lines,
        &rules.surcharges,
        rules.currency.as_deref(),
        &invoice.currency,
    );
    add_line_reasons(&mut reasons, &lines, &invoice.currency, rules.section());

    let (expected, rate_card) = match &facts.estimate {
        Some(estimate) => (Some(Expected::from_estimate(estimate)), None),
        None => {
            let lookup = price(
                rules.rate_card.as_ref(),
                rules.fuel.as_ref(),
                facts.lane.as_ref(),
                context.fuel_price,
            );
            let expected = rules
                .currency
                .as_deref()
                .and_then(|currency| Expected::from_rate_card(&lookup, currency));
            (expected, Some(lookup))
        }
    };

    let comparison = match &expected {
        None => {
            if known {
                let why = rate_card
                    .as_ref()
                    .and_then(RateCardLookup::why_not_priced)
                    .unwrap_or_else(|| "the rate card's currency is not configured".into());
                reasons.add(
                    ReasonCode::NoExpectedCost,
                    format!("no estimate arrived, and {why}"),
                );
            }
            None
        }
        Some(expected) if !same_currency(&expected.currency, &invoice.currency) => {
            reasons.add(
                ReasonCode::CurrencyMismatch,
                format!(
                    "invoiced in {}, but the expected cost ({}) is {} {}: amounts in different \
                     currencies are not compared",
                    invoice.currency,
                    expected.source_name(),
                    show(expected.total),
                    expected.currency
                ),
            );
            None
        }
        Some(expected) => {
            let comparison = Comparison::of(invoice, expected, rules);
            let code = match comparison.verdict {
                AmountVerdict::Within => None,
                AmountVerdict::Over => Some(ReasonCode::OverTolerance),
                AmountVerdict::Under => Some(ReasonCode::UnderTolerance),
            };
            if let Some(code) = code {
                reasons.add(code, comparison.describe(invoice, expected));
            }
            Some(comparison)
        }
    };

    let anomaly = context
        .history
        .as_ref()
        .filter(|history| same_currency(&history.currency, &invoice.currency))
        .and_then(|history| flag(&history.baseline, invoice.total, &rules.anomaly));

    let reasons = reasons.into_list();
    Judgement {
        carrier: facts.carrier.clone(),
        tracking_number: facts.tracking_number.clone(),
        invoice_number: invoice.number.clone(),
        currency: invoice.currency.clone(),
        invoiced_total: invoice.total,
        outcome: if reasons.is_empty() {
            Outcome::Matched
        } else {
            Outcome::Disputed
        },
        reasons,
        evidence: Evidence {
            rules: rules.section().to_string(),
            known_shipment: known,
            status: facts.status,
            pod: facts.pod.clone(),
            expected,
            rate_card,
            comparison,
            lines,
            duplicates,
            anomaly,
        },
    }
}

/// Surcharge reasons: each line not allowed, each capped rule over its cap (once, naming its
/// lines), each cap that cannot be checked in the invoice's currency.
fn add_line_reasons(reasons: &mut Reasons, lines: &[LineVerdict], currency: &str, section: &str) {
    let mut over_cap: BTreeMap<&str, (Vec<usize>, Decimal, Decimal, Decimal)> = BTreeMap::new();
    for line in lines {
        match &line.verdict {
            Verdict::NotAllowed => reasons.add(
                ReasonCode::SurchargeNotAllowed,
                format!(
                    "{} {currency} is not on the allow-list of {section}",
                    line.describe()
                ),
            ),
            Verdict::OverCap {
                rule,
                cap,
                covered,
                over_by,
            } => over_cap
                .entry(rule)
                .or_insert_with(|| (Vec::new(), *cap, *covered, *over_by))
                .0
                .push(line.line),
            Verdict::CapInOtherCurrency {
                rule,
                cap,
                cap_currency,
            } => reasons.add(
                ReasonCode::CurrencyMismatch,
                format!(
                    "{} {currency} cannot be checked against the cap of {} {} ({rule})",
                    line.describe(),
                    show(*cap),
                    cap_currency
                        .as_deref()
                        .unwrap_or("in an unconfigured currency")
                ),
            ),
            Verdict::InFreightTotal | Verdict::ZeroOrCredit | Verdict::Allowed { .. } => {}
        }
    }
    for (rule, (numbers, cap, covered, over_by)) in over_cap {
        let numbers: Vec<String> = numbers.iter().map(ToString::to_string).collect();
        let which = match numbers.as_slice() {
            [one] => format!("line {one} under {rule} is"),
            many => format!("lines {} under {rule} add up to", many.join(", ")),
        };
        reasons.add(
            ReasonCode::SurchargeOverCap,
            format!(
                "{which} {} {currency}, {} over the cap of {}",
                show(covered),
                show(over_by),
                show(cap)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::canonical::ChargeKind::{Accessorial, BaseFreight, Discount, FuelSurcharge, Tax};
    use crate::reconcile::anomaly::baseline;
    use crate::reconcile::facts::{InvoiceSighting, LaneFacts, Place, Weight, WeightUnit};
    use crate::reconcile::tolerance::ToleranceWinner;
    use ReasonCode::*;

    fn d(text: &str) -> Decimal {
        text.parse().expect("test decimal")
    }

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().expect("test time")
    }

    const CONFIG: &str = r#"
        [default]
        tolerance = { absolute = "1.00", percent = "0" }

        [carrier.UPS]
        currency = "USD"
        tolerance = { absolute = "5.00", percent = "2" }
        surcharges = [{ code = "LFG", cap = "75.00" }, { kind = "tax" }]

        [carrier.UPS.rate_card]
        weight_unit = "kg"
        lanes = [
            { name = "NYC-LAX", origin = { postal_prefix = "100" }, destination = { postal_prefix = "900" },
              minimum = "45.00", breaks = [{ from = 0, rate = "0.50" }, { from = 500, rate = "0.40" }] },
        ]

        [carrier.UPS.fuel]
        bands = [{ from = "3.00", to = "3.50", percent = "10" }, { from = "3.50", to = "4.00", percent = "12" }]
    "#;

    fn config() -> ReconcileConfig {
        ReconcileConfig::from_toml(CONFIG).expect("valid configuration")
    }

    fn line(kind: ChargeKind, code: &str, amount: &str) -> ChargeLine {
        ChargeLine {
            kind,
            code: (!code.is_empty()).then(|| code.to_string()),
            description: None,
            amount: d(amount),
        }
    }

    fn estimate(total: &str, lines: Vec<ChargeLine>) -> Estimate {
        Estimate {
            kind: EstimateKind::Booking,
            currency: "USD".into(),
            total: d(total),
            lines,
        }
    }

    /// Delivered with its proof, booked at 210.00 USD (190.00 freight, 20.00 fuel), 400 kg from
    /// 10001 to 90012.
    fn delivered() -> ShipmentFacts {
        ShipmentFacts {
            carrier: "UPS".into(),
            tracking_number: "1Z999".into(),
            reference: Some("WH/OUT/00042".into()),
            status: Some(ShipmentStatus::Delivered),
            pod: Some(Pod {
                reference: "https://pod.example/1Z999.pdf".into(),
                delivered_at: at("2024-08-02T18:50:00Z"),
                signed_by: Some("J. DOE".into()),
            }),
            estimate: Some(estimate(
                "210.00",
                vec![
                    line(BaseFreight, "400", "190.00"),
                    line(FuelSurcharge, "FUE", "20.00"),
                ],
            )),
            lane: Some(LaneFacts {
                origin: Place {
                    postal_code: Some("10001".into()),
                    zone: None,
                },
                destination: Place {
                    postal_code: Some("90012".into()),
                    zone: None,
                },
                weight: Some(Weight {
                    value: d("400"),
                    unit: WeightUnit::Kg,
                }),
            }),
            invoices: vec![],
        }
    }

    fn by_rate_card() -> ShipmentFacts {
        ShipmentFacts {
            estimate: None,
            ..delivered()
        }
    }

    fn invoice(total: &str, lines: Vec<ChargeLine>) -> Invoice {
        Invoice {
            number: "INV-1".into(),
            issued_on: "2024-08-05".parse().expect("date"),
            currency: "USD".into(),
            total: d(total),
            lines,
            references: vec![],
            parties: vec![],
            delivered_on: None,
            weight: None,
        }
    }

    /// One base freight line for the whole total.
    fn freight(total: &str) -> Invoice {
        invoice(total, vec![line(BaseFreight, "400", total)])
    }

    fn in_euros(mut invoice: Invoice) -> Invoice {
        invoice.currency = "EUR".into();
        invoice
    }

    fn receipt() -> Receipt {
        Receipt {
            received_at: at("2024-08-05T09:00:00Z"),
            event_id: Uuid::from_u128(7),
        }
    }

    fn context() -> JudgeContext {
        JudgeContext {
            receipt: receipt(),
            fuel_price: Some(d("3.20")),
            history: None,
        }
    }

    fn codes(judgement: &Judgement) -> Vec<ReasonCode> {
        judgement.reasons.iter().map(|r| r.code).collect()
    }

    fn earlier(number: &str, tracking: &str, total: &str) -> InvoiceSighting {
        InvoiceSighting {
            carrier: "UPS".into(),
            tracking_number: tracking.into(),
            number: number.into(),
            currency: "USD".into(),
            total: d(total),
            receipt: Receipt {
                received_at: at("2024-08-01T09:00:00Z"),
                event_id: Uuid::from_u128(1),
            },
        }
    }

    #[test]
    fn every_outcome_and_reason_code() {
        let config = config();
        let no_pod = ShipmentFacts {
            pod: None,
            status: Some(ShipmentStatus::OutForDelivery),
            ..delivered()
        };
        let duplicate = ShipmentFacts {
            invoices: vec![earlier("INV-1", "1Z999", "210.00")],
            ..delivered()
        };
        let rebilled = ShipmentFacts {
            invoices: vec![earlier("INV-0", "1Z999", "210.00")],
            ..delivered()
        };
        let elsewhere = ShipmentFacts {
            invoices: vec![earlier("INV-0", "1Z888", "210.00")],
            ..delivered()
        };
        let quoted_liftgate = ShipmentFacts {
            estimate: Some(estimate(
                "235.00",
                vec![
                    line(BaseFreight, "400", "190.00"),
                    line(FuelSurcharge, "FUE", "20.00"),
                    line(Accessorial, "LFG", "25.00"),
                ],
            )),
            ..delivered()
        };
        let lineless_estimate = ShipmentFacts {
            estimate: Some(estimate("235.00", vec![])),
            ..delivered()
        };
        let no_lane = ShipmentFacts {
            lane: None,
            ..by_rate_card()
        };
        let mut elsewhere_lane = by_rate_card();
        if let Some(lane) = &mut elsewhere_lane.lane {
            lane.destination.postal_code = Some("80202".into());
        }
        let dhl = ShipmentFacts {
            carrier: "DHL".into(),
            ..delivered()
        };
        let surcharged = |extra: Vec<ChargeLine>, total: &str| {
            let mut lines = vec![
                line(BaseFreight, "400", "190.00"),
                line(FuelSurcharge, "FUE", "20.00"),
            ];
            lines.extend(extra);
            invoice(total, lines)
        };

        let cases: Vec<(&str, ShipmentFacts, Invoice, Vec<ReasonCode>)> = vec![
            (
                "matched: delivered, booked and invoiced alike",
                delivered(),
                surcharged(vec![], "210.00"),
                vec![],
            ),
            (
                "matched: exactly 5.00 over",
                delivered(),
                freight("215.00"),
                vec![],
            ),
            (
                "over_tolerance: a cent more",
                delivered(),
                freight("215.01"),
                vec![OverTolerance],
            ),
            (
                "matched: exactly 5.00 under",
                delivered(),
                freight("205.00"),
                vec![],
            ),
            (
                "under_tolerance: a cent less",
                delivered(),
                freight("204.99"),
                vec![UnderTolerance],
            ),
            (
                "over_tolerance: 10 % over",
                delivered(),
                freight("231.00"),
                vec![OverTolerance],
            ),
            (
                "over_tolerance: lines that do not add up to the total count at the total",
                delivered(),
                surcharged(vec![], "230.00"),
                vec![OverTolerance],
            ),
            (
                "matched: a discount is part of the freight",
                delivered(),
                invoice(
                    "210.00",
                    vec![
                        line(BaseFreight, "400", "230.00"),
                        line(Discount, "", "-20.00"),
                    ],
                ),
                vec![],
            ),
            ("no_pod", no_pod.clone(), freight("210.00"), vec![NoPod]),
            (
                "unknown_shipment alone, though it has no proof and no expected cost",
                ShipmentFacts::new("UPS", "1Z000"),
                freight("210.00"),
                vec![UnknownShipment],
            ),
            (
                "duplicate_invoice: the number again",
                duplicate,
                freight("210.00"),
                vec![DuplicateInvoice],
            ),
            (
                "duplicate_invoice: the same total under another number",
                rebilled,
                freight("210.00"),
                vec![DuplicateInvoice],
            ),
            (
                "matched: another shipment's invoice with the same total",
                elsewhere,
                freight("210.00"),
                vec![],
            ),
            (
                "currency_mismatch: euros against a dollar estimate",
                delivered(),
                in_euros(freight("210.00")),
                vec![CurrencyMismatch],
            ),
            (
                "currency_mismatch: amounts are not compared across currencies",
                delivered(),
                in_euros(freight("999.00")),
                vec![CurrencyMismatch],
            ),
            (
                "matched: euros against a euro estimate",
                euro_estimate(),
                in_euros(freight("210.00")),
                vec![],
            ),
            (
                "matched: allowed surcharges within their caps, judged on their own",
                delivered(),
                surcharged(
                    vec![line(Accessorial, "LFG", "75.00"), line(Tax, "GST", "12.34")],
                    "297.34",
                ),
                vec![],
            ),
            (
                "surcharge_over_cap: a cent over the cap, the freight still matches",
                delivered(),
                surcharged(vec![line(Accessorial, "LFG", "75.01")], "285.01"),
                vec![SurchargeOverCap],
            ),
            (
                "surcharge_not_allowed",
                delivered(),
                surcharged(vec![line(Accessorial, "RES", "15.00")], "225.00"),
                vec![SurchargeNotAllowed],
            ),
            (
                "matched: a quoted surcharge is left out of both sides",
                quoted_liftgate.clone(),
                surcharged(vec![line(Accessorial, "LFG", "25.00")], "235.00"),
                vec![],
            ),
            (
                "matched: a quoted surcharge the carrier did not charge",
                quoted_liftgate,
                surcharged(vec![], "210.00"),
                vec![],
            ),
            (
                "under_tolerance: an estimate without lines is all freight, surcharges it meant included",
                lineless_estimate,
                surcharged(vec![line(Accessorial, "LFG", "25.00")], "235.00"),
                vec![UnderTolerance],
            ),
            (
                "matched by the rate card: 400 kg × 0.50 + 10 % fuel = 220.00",
                by_rate_card(),
                freight("220.00"),
                vec![],
            ),
            (
                "over_tolerance against the rate card",
                by_rate_card(),
                freight("225.01"),
                vec![OverTolerance],
            ),
            (
                "no_expected_cost: no lane known",
                no_lane,
                freight("220.00"),
                vec![NoExpectedCost],
            ),
            (
                "no_expected_cost: the lane is not in the card",
                elsewhere_lane,
                freight("220.00"),
                vec![NoExpectedCost],
            ),
            (
                "no_expected_cost: a carrier without a rate card",
                ShipmentFacts {
                    estimate: None,
                    ..dhl.clone()
                },
                freight("220.00"),
                vec![NoExpectedCost],
            ),
            (
                "currency_mismatch against the rate card",
                by_rate_card(),
                in_euros(freight("220.00")),
                vec![CurrencyMismatch],
            ),
            (
                "currency_mismatch: a dollar cap on a euro invoice, the amounts still compared",
                euro_estimate(),
                in_euros(surcharged(
                    vec![line(Accessorial, "LFG", "10.00")],
                    "220.00",
                )),
                vec![CurrencyMismatch],
            ),
            (
                "the default section: its tolerance, and no surcharges allowed",
                dhl,
                invoice(
                    "220.50",
                    vec![
                        line(BaseFreight, "400", "210.50"),
                        line(Tax, "VAT", "10.00"),
                    ],
                ),
                vec![SurchargeNotAllowed],
            ),
            (
                "several reasons at once, in code order",
                no_pod,
                surcharged(
                    vec![
                        line(Accessorial, "RES", "15.00"),
                        line(Accessorial, "LFG", "80.00"),
                    ],
                    "330.00",
                ),
                vec![NoPod, OverTolerance, SurchargeNotAllowed, SurchargeOverCap],
            ),
        ];
        for (case, facts, invoice, expected) in cases {
            let judgement = judge(&facts, &invoice, &config, &context());
            assert_eq!(
                codes(&judgement),
                expected,
                "{case}: {:#?}",
                judgement.reasons
            );
            let outcome = if expected.is_empty() {
                Outcome::Matched
            } else {
                Outcome::Disputed
            };
            assert_eq!(judgement.outcome, outcome, "{case}");
            assert_eq!(judgement.is_matched(), expected.is_empty(), "{case}");
        }
    }

    fn euro_estimate() -> ShipmentFacts {
        let mut facts = delivered();
        if let Some(estimate) = &mut facts.estimate {
            estimate.currency = "EUR".into();
        }
        facts
    }

    #[test]
    fn the_tolerance_percent_wins_on_large_invoices() {
        let config = config();
        let big = ShipmentFacts {
            estimate: Some(estimate("1000.00", vec![])),
            ..delivered()
        };
        for (total, expected) in [
            ("1020.00", vec![]),
            ("1020.01", vec![OverTolerance]),
            ("980.00", vec![]),
            ("979.99", vec![UnderTolerance]),
        ] {
            let judgement = judge(&big, &freight(total), &config, &context());
            assert_eq!(codes(&judgement), expected, "{total}");
            let comparison = judgement.evidence.comparison.expect("compared");
            assert_eq!(comparison.tolerance.winner, ToleranceWinner::Percent);
            assert_eq!(comparison.tolerance.allowed, d("20.00"));
        }
        let small = judge(&delivered(), &freight("215.00"), &config, &context());
        let tolerance = small.evidence.comparison.expect("compared").tolerance;
        assert_eq!(
            (
                tolerance.winner,
                tolerance.allowed,
                tolerance.percent_amount
            ),
            (ToleranceWinner::Absolute, d("5.00"), d("4.20"))
        );
    }

    #[test]
    fn a_matched_judgement_carries_its_evidence() {
        let judgement = judge(&delivered(), &freight("214.00"), &config(), &context());
        assert!(judgement.is_matched());
        let evidence = &judgement.evidence;
        assert_eq!(evidence.rules, "carrier.UPS");
        assert!(evidence.known_shipment);
        assert_eq!(evidence.status, Some(ShipmentStatus::Delivered));
        assert_eq!(
            evidence.pod.as_ref().map(|p| p.reference.as_str()),
            Some("https://pod.example/1Z999.pdf")
        );
        let expected = evidence.expected.as_ref().expect("expected");
        assert_eq!(expected.source, ExpectedSource::Estimate);
        assert_eq!(expected.estimate_kind, Some(EstimateKind::Booking));
        assert_eq!(
            (expected.currency.as_str(), expected.total),
            ("USD", d("210.00"))
        );
        assert_eq!(evidence.rate_card, None, "the estimate came first");
        let comparison = evidence.comparison.expect("compared");
        assert_eq!(
            (
                comparison.invoiced,
                comparison.expected,
                comparison.difference
            ),
            (d("214.00"), d("210.00"), d("4.00"))
        );
        assert_eq!(comparison.verdict, AmountVerdict::Within);
        assert_eq!(evidence.lines.len(), 1);
        assert_eq!(evidence.lines[0].verdict, Verdict::InFreightTotal);
        assert!(evidence.duplicates.is_empty() && evidence.anomaly.is_none());
    }

    #[test]
    fn the_rate_card_row_used_is_in_the_evidence() {
        let config = config();
        let judgement = judge(&by_rate_card(), &freight("220.00"), &config, &context());
        assert!(judgement.is_matched(), "{:#?}", judgement.reasons);
        let Some(RateCardLookup::Priced {
            line_haul,
            fuel: Some(fuel),
            total,
        }) = &judgement.evidence.rate_card
        else {
            panic!("priced: {:#?}", judgement.evidence.rate_card);
        };
        assert_eq!(line_haul.lane, "NYC-LAX");
        assert_eq!(
            (
                line_haul.weight,
                line_haul.break_from,
                line_haul.rate,
                line_haul.amount
            ),
            (d("400"), d("0"), d("0.50"), d("200.00"))
        );
        assert!(!line_haul.minimum_applied);
        assert_eq!(
            (
                fuel.price,
                fuel.band_from,
                fuel.band_to,
                fuel.percent,
                fuel.amount
            ),
            (d("3.20"), d("3.00"), d("3.50"), d("10"), d("20.00"))
        );
        assert_eq!(*total, d("220.00"));
        let expected = judgement.evidence.expected.as_ref().expect("expected");
        assert_eq!(expected.source, ExpectedSource::RateCard);
        assert_eq!(expected.total, d("220.00"));
        assert_eq!(
            expected
                .lines
                .iter()
                .map(|l| (l.kind, l.amount))
                .collect::<Vec<_>>(),
            [(BaseFreight, d("200.00")), (FuelSurcharge, d("20.00"))]
        );

        // 10 kg: 5.00 by weight, the 45.00 minimum, 4.50 fuel.
        let mut light = by_rate_card();
        if let Some(lane) = &mut light.lane {
            lane.weight = Some(Weight {
                value: d("10"),
                unit: WeightUnit::Kg,
            });
        }
        let judgement = judge(&light, &freight("49.50"), &config, &context());
        assert!(judgement.is_matched(), "{:#?}", judgement.reasons);
        assert!(matches!(
            &judgement.evidence.rate_card,
            Some(RateCardLookup::Priced { line_haul, total, .. })
                if line_haul.minimum_applied && *total == d("49.50")
        ));
    }

    #[test]
    fn fuel_band_edges_decide_the_rate_card_price() {
        let config = config();
        // 400 kg: 200.00 line haul; 10 % fuel in [3.00, 3.50), 12 % in [3.50, 4.00).
        for (price, expected_total) in [
            (Some("3.00"), Some("220.00")),
            (Some("3.4999"), Some("220.00")),
            (Some("3.50"), Some("224.00")),
            (Some("3.999"), Some("224.00")),
            (Some("4.00"), None),
            (Some("2.999"), None),
            (None, None),
        ] {
            let context = JudgeContext {
                fuel_price: price.map(d),
                ..context()
            };
            let judgement = judge(&by_rate_card(), &freight("224.00"), &config, &context);
            let total = judgement.evidence.expected.as_ref().map(|e| e.total);
            assert_eq!(total, expected_total.map(d), "{price:?}");
            if expected_total.is_none() {
                assert_eq!(codes(&judgement), [NoExpectedCost], "{price:?}");
            }
        }
    }

    #[test]
    fn every_reason_reads_for_a_person_with_its_numbers() {
        let config = config();
        let message = |facts: &ShipmentFacts, invoice: &Invoice, code: ReasonCode| {
            let judgement = judge(facts, invoice, &config, &context());
            judgement
                .reasons
                .into_iter()
                .find(|r| r.code == code)
                .map(|r| r.message)
                .unwrap_or_else(|| panic!("no {code:?}"))
        };
        let no_pod = ShipmentFacts {
            pod: None,
            status: Some(ShipmentStatus::InTransit),
            ..delivered()
        };
        let surcharged = invoice(
            "330.00",
            vec![
                line(BaseFreight, "400", "210.00"),
                line(Accessorial, "RES", "15.00"),
                line(Accessorial, "LFG", "45.00"),
                line(Accessorial, "LFG", "60.00"),
            ],
        );
        let mut not_in_card = by_rate_card();
        if let Some(lane) = &mut not_in_card.lane {
            lane.destination.postal_code = Some("80202".into());
        }
        let cases = [
            (
                message(&delivered(), &freight("231.00"), OverTolerance),
                "invoiced 231.00 USD is 21.00 over the expected 210.00 USD (booking estimate); \
                 the tolerance is 5.00, the larger of 5.00 and 2 % (4.20)",
            ),
            (
                message(&delivered(), &freight("150.00"), UnderTolerance),
                "invoiced 150.00 USD is 60.00 under the expected 210.00 USD (booking estimate); \
                 the tolerance is 5.00, the larger of 5.00 and 2 % (4.20)",
            ),
            (
                message(
                    &delivered(),
                    &invoice(
                        "260.00",
                        vec![line(BaseFreight, "", "235.00"), line(Tax, "", "25.00")],
                    ),
                    OverTolerance,
                ),
                "the freight of 235.00 USD (invoice total 260.00 less 25.00 of surcharges judged \
                 on their own) is 25.00 over the expected 210.00 USD (booking estimate); the \
                 tolerance is 5.00, the larger of 5.00 and 2 % (4.20)",
            ),
            (
                message(&by_rate_card(), &freight("300.00"), OverTolerance),
                "invoiced 300.00 USD is 80.00 over the expected 220.00 USD (rate card: lane \
                 NYC-LAX, 400 kg at 0.50/kg from the 0 kg break = 200.00; fuel surcharge 10 % at \
                 fuel price 3.20 = 20.00); the tolerance is 5.00, the larger of 5.00 and 2 % (4.40)",
            ),
            (
                message(&no_pod, &freight("210.00"), NoPod),
                "no proof of delivery for UPS 1Z999 (latest status: in_transit)",
            ),
            (
                message(
                    &ShipmentFacts::new("UPS", "1Z000"),
                    &freight("210.00"),
                    UnknownShipment,
                ),
                "the ledger has no shipment UPS 1Z000: only invoices were received for it",
            ),
            (
                message(&not_in_card, &freight("210.00"), NoExpectedCost),
                "no estimate arrived, and no lane of the rate card fits 10001 → 80202",
            ),
            (
                message(&delivered(), &in_euros(freight("210.00")), CurrencyMismatch),
                "invoiced in EUR, but the expected cost (booking estimate) is 210.00 USD: amounts \
                 in different currencies are not compared",
            ),
            (
                message(&delivered(), &surcharged, SurchargeNotAllowed),
                "line 2 (RES) 15.00 USD is not on the allow-list of carrier.UPS",
            ),
            (
                message(&delivered(), &surcharged, SurchargeOverCap),
                "lines 3, 4 under code LFG add up to 105.00 USD, 30.00 over the cap of 75.00",
            ),
        ];
        for (found, expected) in cases {
            assert_eq!(found, expected);
        }
        let duplicate = ShipmentFacts {
            invoices: vec![earlier("INV-1", "1Z999", "210.00")],
            ..delivered()
        };
        assert_eq!(
            message(&duplicate, &freight("210.00"), DuplicateInvoice),
            "invoice INV-1 was already received on 2024-08-01 09:00 UTC (shipment 1Z999, 210.00 USD)"
        );
    }

    #[test]
    fn an_invoice_before_its_proof_of_delivery_matches_when_the_proof_arrives() {
        let config = config();
        let invoice = freight("210.00");
        let before = ShipmentFacts {
            pod: None,
            status: Some(ShipmentStatus::InTransit),
            ..delivered()
        };
        assert_eq!(
            codes(&judge(&before, &invoice, &config, &context())),
            [NoPod]
        );
        // The ledger now holds the invoice itself; judged again it is not its own duplicate.
        let after = ShipmentFacts {
            invoices: vec![InvoiceSighting {
                carrier: "UPS".into(),
                tracking_number: "1Z999".into(),
                number: "INV-1".into(),
                currency: "USD".into(),
                total: d("210.00"),
                receipt: receipt(),
            }],
            ..delivered()
        };
        assert!(judge(&after, &invoice, &config, &context()).is_matched());
    }

    #[test]
    fn anomaly_flags_add_evidence_and_never_change_the_outcome() {
        let config = config();
        let costs: Vec<Decimal> = [
            "200", "205", "210", "210", "215", "220", "200", "210", "205", "215",
        ]
        .iter()
        .map(|c| d(c))
        .collect();
        let history = LaneHistory {
            currency: "USD".into(),
            baseline: baseline(&costs).expect("history"),
        };
        let with_history = JudgeContext {
            history: Some(history.clone()),
            ..context()
        };
        let cheap_estimate = ShipmentFacts {
            estimate: Some(estimate("400.00", vec![])),
            ..delivered()
        };
        let no_pod = ShipmentFacts {
            pod: None,
            ..cheap_estimate.clone()
        };
        // (facts, invoice, flagged): a matched and a disputed invoice far from the lane's costs,
        // and one within them.
        for (facts, invoice, flagged) in [
            (&cheap_estimate, freight("400.00"), true),
            (&no_pod, freight("400.00"), true),
            (&delivered(), freight("210.00"), false),
        ] {
            let plain = judge(facts, &invoice, &config, &context());
            let flagged_judgement = judge(facts, &invoice, &config, &with_history);
            assert_eq!(flagged_judgement.outcome, plain.outcome);
            assert_eq!(flagged_judgement.reasons, plain.reasons);
            assert_eq!(flagged_judgement.canonical_body(), plain.canonical_body());
            assert_eq!(flagged_judgement.evidence.anomaly.is_some(), flagged);
            assert_eq!(plain.evidence.anomaly, None);
        }
        let judgement = judge(&cheap_estimate, &freight("400.00"), &config, &with_history);
        assert!(judgement.is_matched());
        let anomaly = judgement.evidence.anomaly.expect("flagged");
        assert_eq!((anomaly.median, anomaly.n), (d("210"), 10));
        assert!(
            anomaly.explanation.contains("above the median 210.00"),
            "{}",
            anomaly.explanation
        );

        // A baseline in another currency says nothing about this invoice.
        let euros = JudgeContext {
            history: Some(LaneHistory {
                currency: "EUR".into(),
                ..history
            }),
            ..context()
        };
        assert_eq!(
            judge(&cheap_estimate, &freight("400.00"), &config, &euros)
                .evidence
                .anomaly,
            None
        );
    }

    #[test]
    fn judgements_round_trip_as_json_with_amounts_as_strings() {
        let config = config();
        let mut facts = by_rate_card();
        facts.invoices.push(earlier("INV-1", "1Z999", "220.00"));
        let costs: Vec<Decimal> = (0..12).map(|i| Decimal::from(200 + i)).collect();
        let context = JudgeContext {
            history: Some(LaneHistory {
                currency: "USD".into(),
                baseline: baseline(&costs).expect("history"),
            }),
            ..context()
        };
        let invoice = invoice(
            "400.00",
            vec![
                line(BaseFreight, "400", "300.00"),
                line(Accessorial, "LFG", "100.00"),
            ],
        );
        let judgement = judge(&facts, &invoice, &config, &context);
        assert_eq!(
            codes(&judgement),
            [DuplicateInvoice, OverTolerance, SurchargeOverCap]
        );
        assert!(judgement.evidence.anomaly.is_some());
        let json = serde_json::to_value(&judgement).expect("serialises");
        assert_eq!(json["outcome"], "disputed");
        assert_eq!(json["reasons"][0]["code"], "duplicate_invoice");
        assert_eq!(json["invoiced_total"], "400.00");
        assert_eq!(json["evidence"]["comparison"]["difference"], "80.00");
        assert_eq!(
            json["evidence"]["comparison"]["tolerance"]["winner"],
            "absolute"
        );
        assert_eq!(json["evidence"]["rate_card"]["result"], "priced");
        assert_eq!(
            json["evidence"]["rate_card"]["line_haul"]["lane"],
            "NYC-LAX"
        );
        assert_eq!(json["evidence"]["lines"][1]["verdict"], "over_cap");
        assert_eq!(json["evidence"]["lines"][1]["cap"], "75.00");
        assert_eq!(json["evidence"]["duplicates"][0]["basis"], "same_number");
        let back: Judgement = serde_json::from_value(json).expect("reads back");
        assert_eq!(back, judgement);
    }

    #[test]
    fn judgements_become_the_reconciler_s_canonical_bodies() {
        let config = config();
        let matched = judge(&delivered(), &freight("212.00"), &config, &context());
        assert_eq!(
            matched.canonical_body(),
            EventBody::InvoiceMatched(InvoiceMatched {
                invoice_number: "INV-1".into(),
                currency: "USD".into(),
                invoiced_total: d("212.00"),
                expected_total: Some(d("210.00")),
            })
        );
        let disputed = judge(&delivered(), &freight("231.00"), &config, &context());
        let EventBody::InvoiceDisputed(body) = disputed.canonical_body() else {
            panic!("disputed");
        };
        assert_eq!(body.expected_total, Some(d("210.00")));
        assert_eq!(body.invoiced_total, d("231.00"));
        assert_eq!(body.reasons.len(), 1);
        assert_eq!(body.reasons[0].code, DisputeCode::OverTolerance);
        assert_eq!(body.reasons[0].message, disputed.reasons[0].message);

        let unknown = judge(
            &ShipmentFacts::new("UPS", "1Z000"),
            &freight("1.00"),
            &config,
            &context(),
        );
        let EventBody::InvoiceDisputed(body) = unknown.canonical_body() else {
            panic!("disputed");
        };
        assert_eq!(body.expected_total, None);
        assert_eq!(body.reasons[0].code, DisputeCode::UnknownShipment);

        // A judgement read back marked matched but carrying a reason is still a dispute, and one
        // marked disputed without a reason says so rather than publishing an empty list.
        let mut tampered = disputed.clone();
        tampered.outcome = Outcome::Matched;
        assert!(matches!(
            tampered.canonical_body(),
            EventBody::InvoiceDisputed(_)
        ));
        let mut empty = matched;
        empty.outcome = Outcome::Disputed;
        let EventBody::InvoiceDisputed(body) = empty.canonical_body() else {
            panic!("disputed");
        };
        assert_eq!(body.reasons[0].code, DisputeCode::Other);
    }

    #[test]
    fn every_reason_code_is_a_canonical_dispute_code_of_the_same_name() {
        for code in ReasonCode::ALL {
            assert_eq!(
                serde_json::to_value(code).expect("code"),
                serde_json::to_value(code.dispute_code()).expect("dispute code")
            );
            assert_eq!(serde_json::to_value(code).expect("code"), code.as_str());
        }
        let names: Vec<&str> = ReasonCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "unknown_shipment",
                "no_pod",
                "duplicate_invoice",
                "no_expected_cost",
                "currency_mismatch",
                "over_tolerance",
                "under_tolerance",
                "surcharge_not_allowed",
                "surcharge_over_cap"
            ]
        );
        assert!(
            ReasonCode::ALL.windows(2).all(|w| w[0] < w[1]),
            "ALL is in order"
        );
    }
}
