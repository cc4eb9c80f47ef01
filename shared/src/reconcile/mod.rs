//! Reconciliation's pure matching (DESIGN §3.5): a carrier invoice judged against the shipment
//! ledger's facts — proof of delivery, expected cost (estimate, else the contract rate card and
//! fuel table), the carrier's tolerance and surcharge allow-list, earlier invoices — into a
//! `matched` or `disputed` judgement with its evidence. No I/O: the ledger and the reconciler
//! function gather the facts and act on the judgement.
//!
//! ```text
//! let config = ReconcileConfig::from_toml(&text)?;            // once, at start-up
//! let judgement = judge(&facts, &invoice, &config, &context); // per invoice
//! let body = judgement.canonical_body();                      // freight_invoice.matched / .disputed
//! ```
//!
//! Money is `rust_decimal::Decimal` with an ISO 4217 code, never a float. Computed amounts are
//! rounded to cents half away from zero ([`round_cents`]); stated amounts are compared as stated,
//! and a difference exactly on the tolerance matches.

mod allow_list;
mod anomaly;
mod config;
mod duplicates;
mod facts;
mod fuel;
mod judgement;
mod money;
mod rate_card;
mod report;
mod sweep;
mod tolerance;

#[cfg(test)]
mod properties;

pub use allow_list::{LineVerdict, SurchargeRule, Verdict, judged_on_its_own};
pub use anomaly::{Anomaly, AnomalyRule, Baseline, Direction, Spread, baseline, flag};
pub use config::{CarrierRules, ConfigError, ConfigProblem, ReconcileConfig};
pub use duplicates::{Duplicate, DuplicateBasis};
pub use facts::{
    InvoiceSighting, LaneFacts, Place, Pod, Receipt, ShipmentFacts, Weight, WeightUnit,
};
pub use fuel::{FuelApplied, FuelTable};
pub use judgement::{
    Comparison, Evidence, Expected, ExpectedSource, JudgeContext, Judgement, LaneHistory, Outcome,
    Reason, ReasonCode, judge,
};
pub use money::{CENTS, round_cents};
pub use rate_card::{LineHaul, RateCard, RateCardLookup};
pub use report::{
    AWAITING_EXPECTED_COST, AWAITING_JUDGEMENT, AWAITING_POD, DISPUTED, ExceptionReport,
    ExceptionRow, UNKNOWN_CARRIER, exceptions,
};
pub use sweep::{Finding, FindingKind, SweepAges, SweepAgesFor, SweepSummary, Tally, sweep_entry};
pub use tolerance::{AmountCheck, AmountVerdict, Tolerance, ToleranceApplied, ToleranceWinner};
