//! An explainable anomaly flag: decision support, never a decision. A robust baseline (median and
//! median absolute deviation) of what shipments on a carrier's lane cost, and a flag with the
//! numbers behind it when an invoice is far outside it. A flag goes into the evidence of a match
//! or a dispute; it never changes the outcome.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::config::ConfigProblem;
use super::money::{decimal_text, round_cents, show, show_plain};

/// The consistency constant of the modified z-score (Iglewicz and Hoaglin): 0.6745 × (x − median)
/// / MAD is comparable to a standard score for normal data.
const MAD_SCALE: Decimal = Decimal::from_parts(6745, 0, 0, false, 4);

/// When the MAD is 0 (more than half the history costs the same), the mean absolute deviation
/// scaled by 1.253314 stands in for it (the IBM SPSS convention).
const MEAN_AD_SCALE: Decimal = Decimal::from_parts(1_253_314, 0, 0, false, 6);

/// What shipments on one lane cost before: median, median absolute deviation and mean absolute
/// deviation from the median, over `n` costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    pub n: usize,
    pub median: Decimal,
    pub mad: Decimal,
    pub mean_absolute_deviation: Decimal,
}

/// The baseline of earlier costs per shipment; `None` without any.
pub fn baseline(costs: &[Decimal]) -> Option<Baseline> {
    let median = median_of(costs.to_vec())?;
    let deviations: Vec<Decimal> = costs
        .iter()
        .map(|cost| cost.saturating_sub(median).abs())
        .collect();
    let mad = median_of(deviations.clone()).unwrap_or_default();
    let total = deviations
        .iter()
        .fold(Decimal::ZERO, |sum, d| sum.saturating_add(*d));
    let mean_absolute_deviation = total
        .checked_div(Decimal::from(costs.len()))
        .unwrap_or_default();
    Some(Baseline {
        n: costs.len(),
        median,
        mad,
        mean_absolute_deviation,
    })
}

fn median_of(mut values: Vec<Decimal>) -> Option<Decimal> {
    values.sort();
    let middle = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => values.get(middle).copied(),
        _ => {
            let (low, high) = (values.get(middle - 1)?, values.get(middle)?);
            Some(
                low.checked_add(*high)
                    .map(|sum| sum / Decimal::TWO)
                    .unwrap_or((*low / Decimal::TWO).saturating_add(*high / Decimal::TWO)),
            )
        }
    }
}

/// `anomaly = { threshold = "3.5", min_history = 10 }` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyRule {
    /// How many robust z-scores from the median an invoice must be to be flagged (strictly
    /// beyond).
    #[serde(
        default = "AnomalyRule::default_threshold",
        deserialize_with = "decimal_text"
    )]
    pub threshold: Decimal,
    /// Fewer earlier shipments than this give no flag at all.
    #[serde(default = "AnomalyRule::default_min_history")]
    pub min_history: usize,
}

impl AnomalyRule {
    fn default_threshold() -> Decimal {
        Decimal::from_parts(35, 0, 0, false, 1)
    }

    fn default_min_history() -> usize {
        10
    }

    pub(super) fn check_config(&self, section: &str, problems: &mut Vec<ConfigProblem>) {
        if self.threshold <= Decimal::ZERO || self.min_history == 0 {
            problems.push(ConfigProblem::AnomalyRule {
                section: section.into(),
            });
        }
    }
}

impl Default for AnomalyRule {
    /// 3.5 robust z-scores over at least 10 earlier shipments.
    fn default() -> Self {
        AnomalyRule {
            threshold: AnomalyRule::default_threshold(),
            min_history: AnomalyRule::default_min_history(),
        }
    }
}

/// An invoice far outside its lane's baseline, with the numbers that explain it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    pub invoiced: Decimal,
    pub median: Decimal,
    pub n: usize,
    /// The deviation the score is measured in.
    pub spread: Spread,
    /// The robust z-score, to two decimals; `None` when the history has no spread at all (or
    /// the score is too large to represent): any other amount is then an outlier.
    pub score: Option<Decimal>,
    pub threshold: Decimal,
    pub direction: Direction,
    /// The flag in one sentence, for a person.
    pub explanation: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "measure", rename_all = "snake_case")]
pub enum Spread {
    /// 0.6745 × (invoiced − median) / MAD.
    Mad { mad: Decimal },
    /// (invoiced − median) / (1.253314 × mean absolute deviation), when the MAD is 0.
    MeanAbsoluteDeviation { mean_absolute_deviation: Decimal },
    /// Every earlier cost was the median.
    NoSpread,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Above,
    Below,
}

/// Flags `invoiced` when it is strictly more than `rule.threshold` robust z-scores from the
/// baseline's median, over at least `rule.min_history` earlier costs.
pub fn flag(baseline: &Baseline, invoiced: Decimal, rule: &AnomalyRule) -> Option<Anomaly> {
    if baseline.n < rule.min_history || baseline.n == 0 {
        return None;
    }
    let deviation = invoiced.saturating_sub(baseline.median);
    if deviation.is_zero() {
        return None;
    }
    let direction = if deviation.is_sign_positive() {
        Direction::Above
    } else {
        Direction::Below
    };
    let (spread, score) = if baseline.mad > Decimal::ZERO {
        let score = deviation
            .checked_mul(MAD_SCALE)
            .and_then(|scaled| scaled.checked_div(baseline.mad));
        (Spread::Mad { mad: baseline.mad }, score)
    } else if baseline.mean_absolute_deviation > Decimal::ZERO {
        let score = baseline
            .mean_absolute_deviation
            .checked_mul(MEAN_AD_SCALE)
            .and_then(|scale| deviation.checked_div(scale));
        (
            Spread::MeanAbsoluteDeviation {
                mean_absolute_deviation: baseline.mean_absolute_deviation,
            },
            score,
        )
    } else {
        (Spread::NoSpread, None)
    };
    if score.is_some_and(|score| score.abs() <= rule.threshold) {
        return None;
    }
    let score = score.map(round_cents);
    let explanation = explain(baseline, invoiced, spread, score, rule.threshold, direction);
    Some(Anomaly {
        invoiced,
        median: baseline.median,
        n: baseline.n,
        spread,
        score,
        threshold: rule.threshold,
        direction,
        explanation,
    })
}

fn explain(
    baseline: &Baseline,
    invoiced: Decimal,
    spread: Spread,
    score: Option<Decimal>,
    threshold: Decimal,
    direction: Direction,
) -> String {
    let side = match direction {
        Direction::Above => "above",
        Direction::Below => "below",
    };
    let (invoiced, median, n) = (show(invoiced), show(baseline.median), baseline.n);
    let far = match score {
        Some(score) => format!("{} robust z-scores {side}", show_plain(score.abs())),
        None => format!("too far {side}"),
    };
    match spread {
        Spread::Mad { mad } => format!(
            "invoiced {invoiced} is {far} the median {median} of {n} earlier shipments \
             (0.6745 × ({invoiced} − {median}) / MAD {}; flagged beyond {})",
            show(mad),
            show_plain(threshold)
        ),
        Spread::MeanAbsoluteDeviation {
            mean_absolute_deviation,
        } => format!(
            "invoiced {invoiced} is {far} the median {median} of {n} earlier shipments \
             (the MAD is 0, so ({invoiced} − {median}) / (1.253314 × mean absolute deviation {}); \
             flagged beyond {})",
            show(mean_absolute_deviation),
            show_plain(threshold)
        ),
        Spread::NoSpread => format!(
            "invoiced {invoiced} is {side} {median}, what every one of the {n} earlier shipments cost"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().expect("test decimal")
    }

    fn costs(list: &[&str]) -> Vec<Decimal> {
        list.iter().map(|c| d(c)).collect()
    }

    #[test]
    fn the_baseline_is_the_median_and_the_median_absolute_deviation() {
        // (costs, median, MAD, mean absolute deviation)
        let table: [(&[&str], &str, &str, &str); 6] = [
            (&["210"], "210", "0", "0"),
            (&["200", "220"], "210", "10", "10"),
            (
                &["100", "200", "300"],
                "200",
                "100",
                "66.666666666666666666666666667",
            ),
            // Unordered, with an outlier the median and MAD ignore.
            (&["205", "9999", "200", "210", "215"], "210", "5", "1961.8"),
            (&["1", "2", "3", "4"], "2.5", "1", "1"),
            (&["210", "210", "210", "250"], "210", "0", "10"),
        ];
        for (list, median, mad, mean_ad) in table {
            let baseline = baseline(&costs(list)).expect("some history");
            assert_eq!(baseline.n, list.len());
            assert_eq!(baseline.median, d(median), "{list:?}");
            assert_eq!(baseline.mad, d(mad), "{list:?}");
            assert_eq!(baseline.mean_absolute_deviation, d(mean_ad), "{list:?}");
        }
        assert_eq!(baseline(&[]), None);
    }

    #[test]
    fn huge_costs_give_a_baseline_without_overflowing() {
        let baseline = baseline(&[Decimal::MAX, Decimal::MAX, Decimal::MIN]).expect("history");
        assert_eq!(baseline.median, Decimal::MAX);
        let baseline = super::baseline(&[Decimal::MAX, Decimal::MAX]).expect("history");
        assert_eq!(baseline.median, Decimal::MAX);
    }

    fn history(n: usize, around: &str, spread: &str) -> Baseline {
        Baseline {
            n,
            median: d(around),
            mad: d(spread),
            mean_absolute_deviation: d(spread),
        }
    }

    #[test]
    fn an_invoice_strictly_beyond_the_threshold_is_flagged_with_its_numbers() {
        let rule = AnomalyRule::default();
        // MAD 6.745: one z-score per 10.00 from the median, so 35.00 is exactly 3.5.
        let lane = history(20, "200.00", "6.745");
        for (invoiced, flagged, score) in [
            ("235.00", false, None),
            ("165.00", false, None),
            ("235.01", true, Some("3.50")),
            ("164.99", true, Some("-3.50")),
            ("300.00", true, Some("10.00")),
            ("200.00", false, None),
        ] {
            let anomaly = flag(&lane, d(invoiced), &rule);
            assert_eq!(anomaly.is_some(), flagged, "{invoiced}");
            assert_eq!(
                anomaly.as_ref().and_then(|a| a.score),
                score.map(d),
                "{invoiced}"
            );
        }
        let anomaly = flag(&lane, d("300.00"), &rule).expect("flagged");
        assert_eq!(anomaly.direction, Direction::Above);
        assert_eq!(anomaly.spread, Spread::Mad { mad: d("6.745") });
        assert_eq!(
            anomaly.explanation,
            "invoiced 300.00 is 10 robust z-scores above the median 200.00 of 20 earlier \
             shipments (0.6745 × (300.00 − 200.00) / MAD 6.745; flagged beyond 3.5)"
        );
        assert_eq!(
            flag(&lane, d("164.99"), &rule).map(|a| a.direction),
            Some(Direction::Below)
        );
    }

    #[test]
    fn the_threshold_and_minimum_history_are_configurable() {
        let lane = history(20, "200.00", "6.745");
        let strict = AnomalyRule {
            threshold: d("2"),
            min_history: 10,
        };
        assert!(flag(&lane, d("221.00"), &strict).is_some());
        assert!(flag(&lane, d("221.00"), &AnomalyRule::default()).is_none());
        let short = history(9, "200.00", "6.745");
        assert!(flag(&short, d("9999"), &AnomalyRule::default()).is_none());
        let lenient = AnomalyRule {
            threshold: d("3.5"),
            min_history: 9,
        };
        assert!(flag(&short, d("9999"), &lenient).is_some());
    }

    #[test]
    fn a_zero_mad_falls_back_to_the_mean_absolute_deviation_then_to_no_spread() {
        let rule = AnomalyRule::default();
        // Nine at 210 and one at 260: MAD 0, mean absolute deviation 5.
        let mut list = vec!["210"; 9];
        list.push("260");
        let lane = baseline(&costs(&list)).expect("history");
        assert_eq!((lane.mad, lane.mean_absolute_deviation), (d("0"), d("5")));
        // (x − 210) / (1.253314 × 5) = (x − 210) / 6.26657: 3.5 at 231.93.
        assert!(flag(&lane, d("231.93"), &rule).is_none());
        let anomaly = flag(&lane, d("231.94"), &rule).expect("flagged");
        assert!(matches!(
            anomaly.spread,
            Spread::MeanAbsoluteDeviation { .. }
        ));
        assert_eq!(anomaly.score, Some(d("3.50")));

        // Every earlier shipment cost the same: any other amount is flagged, without a score.
        let lane = baseline(&costs(&["210.00"; 12])).expect("history");
        assert!(flag(&lane, d("210.00"), &rule).is_none());
        let anomaly = flag(&lane, d("210.01"), &rule).expect("flagged");
        assert_eq!((anomaly.spread, anomaly.score), (Spread::NoSpread, None));
        assert_eq!(
            anomaly.explanation,
            "invoiced 210.01 is above 210.00, what every one of the 12 earlier shipments cost"
        );
    }

    #[test]
    fn a_score_too_large_to_represent_is_still_a_flag() {
        let lane = Baseline {
            n: 10,
            median: Decimal::ZERO,
            mad: Decimal::new(1, 28),
            mean_absolute_deviation: Decimal::new(1, 28),
        };
        let anomaly = flag(&lane, Decimal::MAX, &AnomalyRule::default()).expect("flagged");
        assert_eq!(anomaly.score, None);
        assert!(
            anomaly.explanation.contains("too far above"),
            "{}",
            anomaly.explanation
        );
    }

    #[test]
    fn the_rule_reads_from_configuration_with_defaults() {
        let rule: AnomalyRule = toml::from_str("").expect("defaults");
        assert_eq!(rule, AnomalyRule::default());
        assert_eq!((rule.threshold, rule.min_history), (d("3.5"), 10));
        let rule: AnomalyRule =
            toml::from_str("threshold = \"5\"\nmin_history = 30").expect("rule");
        assert_eq!((rule.threshold, rule.min_history), (d("5"), 30));
        for bad in ["threshold = \"0\"", "min_history = 0", "threshold = \"-1\""] {
            let rule: AnomalyRule = toml::from_str(bad).expect(bad);
            let mut problems = Vec::new();
            rule.check_config("default", &mut problems);
            assert_eq!(
                problems,
                [ConfigProblem::AnomalyRule {
                    section: "default".into()
                }],
                "{bad}"
            );
        }
    }
}
