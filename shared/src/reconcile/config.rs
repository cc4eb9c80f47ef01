//! The reconciliation configuration: per carrier (and a `default` section for the rest) the
//! tolerance, the surcharge allow-list, the contract rate card, the fuel surcharge table and the
//! anomaly rule. It is read from TOML and checked as a whole, every problem reported at once.
//!
//! ```toml
//! [default]
//! tolerance = { absolute = "5.00", percent = "2" }
//!
//! [carrier.UPS]
//! currency = "USD"
//! tolerance = { absolute = "5.00", percent = "2" }
//! surcharges = [{ code = "LFG", cap = "75.00" }, { kind = "tax" }]
//! anomaly = { threshold = "3.5", min_history = 10 }
//!
//! [carrier.UPS.rate_card]
//! weight_unit = "lb"
//! lanes = [
//!   { origin = { postal_prefix = "100" }, destination = { postal_prefix = "900" },
//!     minimum = "45.00", breaks = [{ from = 0, rate = "0.50" }, { from = 500, rate = "0.42" }] },
//! ]
//!
//! [carrier.UPS.fuel]
//! bands = [{ from = "3.00", to = "3.25", percent = "14.5" }, { from = "3.25", to = "3.50", percent = "15" }]
//! prices = [{ from = "2026-11-30", price = "3.31" }]   # the weekly index, each from its date
//!
//! [carrier.UPS.sweep]
//! uninvoiced_days = 21     # delivered and no invoice after this long → uninvoiced_delivery
//! undelivered_days = 7     # invoiced and no proof of delivery → invoice_without_delivery
//! accrual_days = 30        # accrued and no invoice → stale_accrual
//! ```
//!
//! A carrier's section replaces the default's field by field, each field as a whole: a carrier
//! that lists `surcharges` lists every surcharge it may add. Decimals are written as strings or
//! integers, never as TOML floats.

use std::collections::BTreeMap;

use chrono::Duration;
use rust_decimal::Decimal;
use serde::Deserialize;
use thiserror::Error;

use super::allow_list::SurchargeRule;
use super::anomaly::AnomalyRule;
use super::fuel::FuelTable;
use super::rate_card::RateCard;
use super::sweep::SweepAges;
use super::tolerance::Tolerance;
use crate::canonical::ChargeKind;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("reconciliation configuration: {0}")]
    Parse(#[from] toml::de::Error),
    #[error("reconciliation configuration: {}", list(.0))]
    Invalid(Vec<ConfigProblem>),
}

fn list(problems: &[ConfigProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// One thing wrong with the configuration, named by its section (`default`, `carrier.UPS`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigProblem {
    #[error("carrier {name:?} is configured twice (carrier names compare without case)")]
    CarrierRepeated { name: String },
    #[error("{section}: currency {currency:?} is not an ISO 4217 code (three capital letters)")]
    CurrencyNotIso { section: String, currency: String },
    #[error("{section}: {needed_for} need a currency")]
    CurrencyMissing {
        section: String,
        needed_for: &'static str,
    },
    #[error("{section}: a tolerance cannot be negative")]
    NegativeTolerance { section: String },
    #[error("{section}: a tolerance of {percent} % is over 100 %")]
    TolerancePercentOver100 { section: String, percent: Decimal },
    #[error("{section}: surcharge {index} names neither a code nor a kind")]
    SurchargeRuleEmpty { section: String, index: usize },
    #[error(
        "{section}: surcharge {rule}: {} lines are compared with the expected cost, not allowed one by one",
        kind.as_str()
    )]
    SurchargeKindInFreight {
        section: String,
        rule: String,
        kind: ChargeKind,
    },
    #[error("{section}: surcharge {rule} has a negative cap")]
    NegativeCap { section: String, rule: String },
    #[error("{section}: surcharge {rule} is listed twice")]
    SurchargeRuleRepeated { section: String, rule: String },
    #[error("{section}: the rate card has no lanes")]
    NoLanes { section: String },
    #[error("{section}: lane {lane}: the {end} names both a zone and a postal prefix")]
    EndpointAmbiguous {
        section: String,
        lane: String,
        end: &'static str,
    },
    #[error("{section}: lane {lane}: the {end}'s zone or postal prefix is empty")]
    EndpointEmpty {
        section: String,
        lane: String,
        end: &'static str,
    },
    #[error("{section}: lane {lane} has the same origin and destination as an earlier lane")]
    LaneRepeated { section: String, lane: String },
    #[error("{section}: lane {lane} has no weight breaks")]
    NoBreaks { section: String, lane: String },
    #[error("{section}: lane {lane}: the first weight break starts at {from}, not 0")]
    FirstBreakNotZero {
        section: String,
        lane: String,
        from: Decimal,
    },
    #[error("{section}: lane {lane}: weight breaks must start at increasing weights")]
    BreaksNotIncreasing { section: String, lane: String },
    #[error("{section}: lane {lane}: rates and minimum charges cannot be negative")]
    NegativeRate { section: String, lane: String },
    #[error("{section}: the fuel table has no bands")]
    NoFuelBands { section: String },
    #[error("{section}: fuel band [{from}, {to}) contains no price")]
    FuelBandEmpty {
        section: String,
        from: Decimal,
        to: Decimal,
    },
    #[error("{section}: the fuel index lists two prices from {from}")]
    FuelPriceRepeated {
        section: String,
        from: chrono::NaiveDate,
    },
    #[error("{section}: the fuel index price from {from} is not above 0")]
    FuelPriceNotPositive {
        section: String,
        from: chrono::NaiveDate,
    },
    #[error("{section}: fuel band [{from}, {to}) has a negative percent")]
    NegativeFuelPercent {
        section: String,
        from: Decimal,
        to: Decimal,
    },
    #[error(
        "{section}: fuel bands overlap: one ends at {first_to}, the next starts at {next_from}"
    )]
    FuelBandsOverlap {
        section: String,
        first_to: Decimal,
        next_from: Decimal,
    },
    #[error(
        "{section}: fuel bands leave a gap: one ends at {first_to}, the next starts at {next_from}"
    )]
    FuelBandsGap {
        section: String,
        first_to: Decimal,
        next_from: Decimal,
    },
    #[error("{section}: the anomaly threshold must be above 0 and the minimum history at least 1")]
    AnomalyRule { section: String },
    #[error("{section}: sweep ages are whole days from 1 to 3650")]
    SweepAge { section: String },
}

/// One section as written: every field optional, a carrier's falling back to the default's.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Section {
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    tolerance: Option<Tolerance>,
    #[serde(default)]
    surcharges: Option<Vec<SurchargeRule>>,
    #[serde(default)]
    rate_card: Option<RateCard>,
    #[serde(default)]
    fuel: Option<FuelTable>,
    #[serde(default)]
    anomaly: Option<AnomalyRule>,
    #[serde(default)]
    sweep: Option<SweepDays>,
}

/// The sweep's ages as written, in days; a field left out keeps the default's (or the built-in
/// [`SweepAges::default`]).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepDays {
    uninvoiced_days: Option<i64>,
    undelivered_days: Option<i64>,
    accrual_days: Option<i64>,
}

impl SweepDays {
    fn days(self) -> [Option<i64>; 3] {
        [
            self.uninvoiced_days,
            self.undelivered_days,
            self.accrual_days,
        ]
    }

    /// `self` over `base`, field by field.
    fn over(self, base: SweepAges) -> SweepAges {
        let days = |d: Option<i64>, fallback: Duration| d.map_or(fallback, Duration::days);
        SweepAges {
            uninvoiced_after: days(self.uninvoiced_days, base.uninvoiced_after),
            undelivered_after: days(self.undelivered_days, base.undelivered_after),
            accrual_after: days(self.accrual_days, base.accrual_after),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    default: Section,
    #[serde(default)]
    carrier: BTreeMap<String, Section>,
}

/// The rules that judge one carrier's invoices, resolved from its section and the default.
#[derive(Debug, Clone)]
pub struct CarrierRules {
    pub(super) section: String,
    /// The contract currency: the rate card's and the surcharge caps'.
    pub(super) currency: Option<String>,
    pub(super) tolerance: Tolerance,
    pub(super) surcharges: Vec<SurchargeRule>,
    pub(super) rate_card: Option<RateCard>,
    pub(super) fuel: Option<FuelTable>,
    pub(super) anomaly: AnomalyRule,
    pub(super) sweep: SweepAges,
}

impl CarrierRules {
    /// `carrier.UPS`, or `default` for a carrier without its own section.
    pub fn section(&self) -> &str {
        &self.section
    }

    pub fn currency(&self) -> Option<&str> {
        self.currency.as_deref()
    }

    /// [`Tolerance::EXACT`] unless configured.
    pub fn tolerance(&self) -> Tolerance {
        self.tolerance
    }

    /// [`AnomalyRule::default`] unless configured.
    pub fn anomaly(&self) -> AnomalyRule {
        self.anomaly
    }

    /// The sweep's ages for this carrier: its own `sweep` fields over the default's over
    /// [`SweepAges::default`].
    pub fn sweep_ages(&self) -> SweepAges {
        self.sweep
    }

    fn resolve(section: String, own: &Section, default: &Section) -> CarrierRules {
        CarrierRules {
            section,
            currency: own.currency.clone().or_else(|| default.currency.clone()),
            tolerance: own
                .tolerance
                .or(default.tolerance)
                .unwrap_or(Tolerance::EXACT),
            surcharges: own
                .surcharges
                .clone()
                .or_else(|| default.surcharges.clone())
                .unwrap_or_default(),
            rate_card: own.rate_card.clone().or_else(|| default.rate_card.clone()),
            fuel: own.fuel.clone().or_else(|| default.fuel.clone()),
            anomaly: own.anomaly.or(default.anomaly).unwrap_or_default(),
            sweep: own
                .sweep
                .unwrap_or_default()
                .over(default.sweep.unwrap_or_default().over(SweepAges::default())),
        }
    }

    fn check_currency(&self, problems: &mut Vec<ConfigProblem>) {
        if self.currency.is_some() {
            return;
        }
        let mut missing = |needed_for| {
            problems.push(ConfigProblem::CurrencyMissing {
                section: self.section.clone(),
                needed_for,
            })
        };
        if self.rate_card.is_some() {
            missing("the rate card and fuel table");
        }
        if self.surcharges.iter().any(SurchargeRule::has_cap) {
            missing("surcharge caps");
        }
    }
}

impl Section {
    fn check(&mut self, section: &str, problems: &mut Vec<ConfigProblem>) {
        if let Some(currency) = &self.currency
            && !(currency.len() == 3 && currency.bytes().all(|b| b.is_ascii_uppercase()))
        {
            problems.push(ConfigProblem::CurrencyNotIso {
                section: section.into(),
                currency: currency.clone(),
            });
        }
        if let Some(tolerance) = &self.tolerance {
            tolerance.check_config(section, problems);
        }
        if let Some(rules) = &self.surcharges {
            SurchargeRule::check_config(rules, section, problems);
        }
        if let Some(card) = &self.rate_card {
            card.check_config(section, problems);
        }
        if let Some(fuel) = &mut self.fuel {
            fuel.check_config(section, problems);
        }
        if let Some(anomaly) = &self.anomaly {
            anomaly.check_config(section, problems);
        }
        if let Some(sweep) = &self.sweep
            && sweep
                .days()
                .into_iter()
                .flatten()
                .any(|d| !(1..=3650).contains(&d))
        {
            problems.push(ConfigProblem::SweepAge {
                section: section.into(),
            });
        }
    }
}

/// The checked configuration. Read it with [`ReconcileConfig::from_toml`] or as part of a larger
/// file through serde (which checks it the same way); [`ReconcileConfig::default`] judges every
/// carrier with an exact tolerance, no surcharges allowed and no rate card.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "ConfigFile")]
pub struct ReconcileConfig {
    default: CarrierRules,
    /// By carrier name, lower-cased.
    carriers: BTreeMap<String, CarrierRules>,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            default: CarrierRules::resolve(
                "default".into(),
                &Section::default(),
                &Section::default(),
            ),
            carriers: BTreeMap::new(),
        }
    }
}

impl ReconcileConfig {
    pub fn from_toml(text: &str) -> Result<ReconcileConfig, ConfigError> {
        let file: ConfigFile = toml::from_str(text)?;
        ReconcileConfig::try_from(file)
    }

    /// Every carrier's sweep ages (and the default's) changed by `change`: an operator's
    /// one-off ages for all carriers.
    pub fn with_sweep_ages(mut self, change: impl Fn(SweepAges) -> SweepAges) -> ReconcileConfig {
        self.default.sweep = change(self.default.sweep);
        for rules in self.carriers.values_mut() {
            rules.sweep = change(rules.sweep);
        }
        self
    }

    /// The rules for a carrier: its own section (names compare without case), else the default.
    /// The fuel index price in force for `carrier` on `day` (its fuel table's `prices`).
    pub fn fuel_price_on(&self, carrier: &str, day: chrono::NaiveDate) -> Option<Decimal> {
        self.rules_for(carrier).fuel.as_ref()?.price_on(day)
    }

    pub fn rules_for(&self, carrier: &str) -> &CarrierRules {
        self.carriers
            .get(&carrier.trim().to_lowercase())
            .unwrap_or(&self.default)
    }
}

impl TryFrom<ConfigFile> for ReconcileConfig {
    type Error = ConfigError;

    fn try_from(mut file: ConfigFile) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        file.default.check("default", &mut problems);
        let mut carriers = BTreeMap::new();
        for (name, own) in &mut file.carrier {
            let section = format!("carrier.{name}");
            own.check(&section, &mut problems);
            let rules = CarrierRules::resolve(section, own, &file.default);
            rules.check_currency(&mut problems);
            if carriers.insert(name.trim().to_lowercase(), rules).is_some() {
                problems.push(ConfigProblem::CarrierRepeated { name: name.clone() });
            }
        }
        let default = CarrierRules::resolve("default".into(), &file.default, &Section::default());
        default.check_currency(&mut problems);
        if problems.is_empty() {
            Ok(ReconcileConfig { default, carriers })
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().expect("test decimal")
    }

    fn problems(text: &str) -> Vec<ConfigProblem> {
        match ReconcileConfig::from_toml(text) {
            Ok(_) => vec![],
            Err(ConfigError::Invalid(problems)) => problems,
            Err(other) => panic!("{other}"),
        }
    }

    const CONFIG: &str = r#"
        [default]
        tolerance = { absolute = "5.00", percent = "2" }
        surcharges = [{ kind = "tax" }]

        [carrier.UPS]
        currency = "USD"
        tolerance = { absolute = "10", percent = "1.5" }
        surcharges = [{ code = "LFG", cap = "75.00" }]
        anomaly = { threshold = "4" }

        [carrier.UPS.rate_card]
        weight_unit = "lb"
        lanes = [{ origin = {}, destination = {}, breaks = [{ from = 0, rate = "0.50" }] }]

        [carrier.UPS.fuel]
        bands = [{ from = "3.25", to = "3.50", percent = "15" }, { from = "3.00", to = "3.25", percent = "14.5" }]

        [carrier.FedEx]
        currency = "USD"
    "#;

    /// The example in the module documentation, kept here so it stays valid.
    const DOCUMENTED: &str = r#"
[default]
tolerance = { absolute = "5.00", percent = "2" }

[carrier.UPS]
currency = "USD"
tolerance = { absolute = "5.00", percent = "2" }
surcharges = [{ code = "LFG", cap = "75.00" }, { kind = "tax" }]
anomaly = { threshold = "3.5", min_history = 10 }

[carrier.UPS.rate_card]
weight_unit = "lb"
lanes = [
  { origin = { postal_prefix = "100" }, destination = { postal_prefix = "900" },
    minimum = "45.00", breaks = [{ from = 0, rate = "0.50" }, { from = 500, rate = "0.42" }] },
]

[carrier.UPS.fuel]
bands = [{ from = "3.00", to = "3.25", percent = "14.5" }, { from = "3.25", to = "3.50", percent = "15" }]

[carrier.UPS.sweep]
uninvoiced_days = 21     # delivered and no invoice after this long → uninvoiced_delivery
undelivered_days = 7     # invoiced and no proof of delivery → invoice_without_delivery
accrual_days = 30        # accrued and no invoice → stale_accrual
"#;

    #[test]
    fn sweep_ages_come_per_carrier_field_by_field_over_the_default() {
        let config = ReconcileConfig::from_toml(
            r#"
            [default]
            sweep = { undelivered_days = 10 }
            [carrier.UPS]
            sweep = { uninvoiced_days = 21 }
            "#,
        )
        .expect("valid");
        let ups = config.rules_for("ups").sweep_ages();
        assert_eq!(ups.uninvoiced_after, Duration::days(21));
        assert_eq!(ups.undelivered_after, Duration::days(10));
        assert_eq!(ups.accrual_after, Duration::days(30));
        let other = config.rules_for("DHL").sweep_ages();
        assert_eq!(other.uninvoiced_after, Duration::days(14));
        assert_eq!(other.undelivered_after, Duration::days(10));
        assert_eq!(
            ReconcileConfig::default().rules_for("x").sweep_ages(),
            SweepAges::default()
        );
        assert_eq!(
            problems("[carrier.UPS]\nsweep = { accrual_days = 0 }"),
            vec![ConfigProblem::SweepAge {
                section: "carrier.UPS".into()
            }]
        );
        assert!(ReconcileConfig::from_toml("[default]\nsweep = { days = 3 }").is_err());
    }

    #[test]
    fn the_documented_example_is_valid() {
        let config = ReconcileConfig::from_toml(DOCUMENTED).expect("valid");
        let ups = config.rules_for("UPS");
        assert!(ups.rate_card.is_some() && ups.fuel.is_some());
        assert_eq!(config.rules_for("DHL").tolerance().absolute, d("5.00"));
    }

    #[test]
    fn a_carrier_s_section_replaces_the_default_field_by_field() {
        let config = ReconcileConfig::from_toml(CONFIG).expect("valid");
        let ups = config.rules_for(" ups ");
        assert_eq!(ups.section(), "carrier.UPS");
        assert_eq!(ups.currency(), Some("USD"));
        assert_eq!(
            ups.tolerance(),
            Tolerance {
                absolute: d("10"),
                percent: d("1.5")
            }
        );
        assert_eq!(ups.surcharges.len(), 1);
        assert!(ups.rate_card.is_some() && ups.fuel.is_some());
        assert_eq!(ups.anomaly().threshold, d("4"));
        assert_eq!(ups.anomaly().min_history, 10);

        let fedex = config.rules_for("FEDEX");
        assert_eq!(fedex.section(), "carrier.FedEx");
        assert_eq!(fedex.tolerance().absolute, d("5.00"));
        assert_eq!(fedex.surcharges[0].describe(), "kind tax");
        assert!(fedex.rate_card.is_none());
        assert_eq!(fedex.anomaly(), AnomalyRule::default());

        let other = config.rules_for("DHL");
        assert_eq!(other.section(), "default");
        assert_eq!(other.currency(), None);
        assert_eq!(other.tolerance().percent, d("2"));
    }

    #[test]
    fn nothing_configured_means_an_exact_match_and_no_surcharges() {
        for config in [
            ReconcileConfig::default(),
            ReconcileConfig::from_toml("").expect("empty"),
        ] {
            let rules = config.rules_for("UPS");
            assert_eq!(rules.tolerance(), Tolerance::EXACT);
            assert!(rules.surcharges.is_empty() && rules.rate_card.is_none());
            assert_eq!(rules.anomaly(), AnomalyRule::default());
        }
    }

    #[test]
    fn the_configuration_deserialises_within_a_larger_file_and_is_checked_there_too() {
        #[derive(Deserialize)]
        struct Outer {
            reconcile: ReconcileConfig,
        }
        let outer: Outer =
            toml::from_str("[reconcile.default]\ntolerance = { absolute = 1, percent = 0 }")
                .expect("valid");
        assert_eq!(outer.reconcile.rules_for("x").tolerance().absolute, d("1"));
        let error = toml::from_str::<Outer>(
            "[reconcile.default]\ntolerance = { absolute = -1, percent = 0 }",
        )
        .err()
        .expect("invalid");
        assert!(error.to_string().contains("cannot be negative"), "{error}");
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_section() {
        let text = r#"
            [default]
            currency = "usd"
            tolerance = { absolute = "-1", percent = "2" }

            [carrier.UPS]
            surcharges = [{ code = "LFG", cap = "75" }]
            [carrier.UPS.rate_card]
            weight_unit = "kg"
            lanes = []

            [carrier.ups]
            anomaly = { threshold = "0" }
        "#;
        let found = problems(text);
        let expected = [
            ConfigProblem::CurrencyNotIso {
                section: "default".into(),
                currency: "usd".into(),
            },
            ConfigProblem::NegativeTolerance {
                section: "default".into(),
            },
            ConfigProblem::NoLanes {
                section: "carrier.UPS".into(),
            },
            ConfigProblem::AnomalyRule {
                section: "carrier.ups".into(),
            },
            ConfigProblem::CarrierRepeated { name: "ups".into() },
        ];
        for problem in &expected {
            assert!(found.contains(problem), "{problem:?} not in {found:#?}");
        }
        // `usd` is reported as not ISO; the carriers inherit it, so no currency is missing.
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        let message = ReconcileConfig::from_toml(text)
            .expect_err("invalid")
            .to_string();
        assert!(
            message.contains("default: a tolerance cannot be negative"),
            "{message}"
        );
        assert!(
            message.contains("carrier.UPS: the rate card has no lanes"),
            "{message}"
        );
    }

    #[test]
    fn a_rate_card_or_a_cap_needs_a_currency() {
        let card = "[carrier.UPS.rate_card]\nweight_unit = \"kg\"\n\
                    lanes = [{ origin = {}, destination = {}, breaks = [{ from = 0, rate = 1 }] }]";
        assert_eq!(
            problems(card),
            [ConfigProblem::CurrencyMissing {
                section: "carrier.UPS".into(),
                needed_for: "the rate card and fuel table"
            }]
        );
        assert_eq!(
            problems(&format!("[default]\ncurrency = \"USD\"\n{card}")),
            []
        );
        assert_eq!(
            problems("[default]\nsurcharges = [{ code = \"LFG\", cap = 1 }]"),
            [ConfigProblem::CurrencyMissing {
                section: "default".into(),
                needed_for: "surcharge caps"
            }]
        );
        assert_eq!(problems("[default]\nsurcharges = [{ code = \"LFG\" }]"), []);
    }

    #[test]
    fn unknown_keys_and_floats_are_parse_errors() {
        for text in [
            "[default]\ntolerence = { absolute = 1, percent = 1 }",
            "[default]\ntolerance = { absolute = 1.0, percent = 1 }",
            "[carrier.UPS]\nfuel = { bands = [{ from = \"1\", to = \"2\", percent = 1.5 }] }",
            "[default.tolerance]\nabsolute = \"1\"",
            "[carriers.UPS]\ncurrency = \"USD\"",
        ] {
            assert!(
                matches!(ReconcileConfig::from_toml(text), Err(ConfigError::Parse(_))),
                "{text}"
            );
        }
    }
}
