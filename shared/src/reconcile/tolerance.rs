//! A carrier's tolerance: how far an invoice may be from the expected cost and still match. The
//! allowed difference is the larger of an absolute amount and a percent of the expected cost
//! (±5.00 or ±2 %, whichever is larger), the same over and under; exactly on the limit matches.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::config::ConfigProblem;
use super::money::{decimal_text, round_cents, show, show_plain};

/// `{ absolute = "5.00", percent = "2" }` in the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tolerance {
    /// In the invoice's currency.
    #[serde(deserialize_with = "decimal_text")]
    pub absolute: Decimal,
    /// Of the expected cost: `2` is 2 %.
    #[serde(deserialize_with = "decimal_text")]
    pub percent: Decimal,
}

impl Tolerance {
    /// No difference allowed: what a carrier gets when neither it nor the default section
    /// configures a tolerance.
    pub const EXACT: Tolerance = Tolerance {
        absolute: Decimal::ZERO,
        percent: Decimal::ZERO,
    };

    /// The difference allowed around `expected`: the percent of its size, rounded to cents half
    /// away from zero, or the absolute amount, whichever is larger (the absolute on a tie).
    pub fn around(&self, expected: Decimal) -> ToleranceApplied {
        let percent_amount = round_cents(
            expected
                .abs()
                .saturating_mul(self.percent)
                .checked_div(Decimal::ONE_HUNDRED)
                .unwrap_or(Decimal::MAX),
        );
        let (allowed, winner) = if percent_amount > self.absolute {
            (percent_amount, ToleranceWinner::Percent)
        } else {
            (self.absolute, ToleranceWinner::Absolute)
        };
        ToleranceApplied {
            absolute: self.absolute,
            percent: self.percent,
            percent_amount,
            allowed,
            winner,
        }
    }

    /// Compares an invoiced amount with the expected one.
    pub fn check(&self, invoiced: Decimal, expected: Decimal) -> AmountCheck {
        let tolerance = self.around(expected);
        let difference = invoiced.saturating_sub(expected);
        let verdict = if difference > tolerance.allowed {
            AmountVerdict::Over
        } else if difference < -tolerance.allowed {
            AmountVerdict::Under
        } else {
            AmountVerdict::Within
        };
        AmountCheck {
            difference,
            tolerance,
            verdict,
        }
    }

    pub(super) fn check_config(&self, section: &str, problems: &mut Vec<ConfigProblem>) {
        if self.absolute.is_sign_negative() || self.percent.is_sign_negative() {
            problems.push(ConfigProblem::NegativeTolerance {
                section: section.into(),
            });
        }
        if self.percent > Decimal::ONE_HUNDRED {
            problems.push(ConfigProblem::TolerancePercentOver100 {
                section: section.into(),
                percent: self.percent,
            });
        }
    }
}

/// The tolerance as it was applied to one expected cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToleranceApplied {
    pub absolute: Decimal,
    pub percent: Decimal,
    /// `percent` of the expected cost, rounded to cents.
    pub percent_amount: Decimal,
    /// The larger of `absolute` and `percent_amount`.
    pub allowed: Decimal,
    pub winner: ToleranceWinner,
}

impl ToleranceApplied {
    /// "5.00, the larger of 5.00 and 2 % (4.20)".
    pub fn describe(&self) -> String {
        format!(
            "{}, the larger of {} and {} % ({})",
            show(self.allowed),
            show(self.absolute),
            show_plain(self.percent),
            show(self.percent_amount)
        )
    }
}

/// Which part of the tolerance set the allowed difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToleranceWinner {
    Absolute,
    Percent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmountCheck {
    /// Invoiced less expected: positive when the carrier asks for more.
    pub difference: Decimal,
    pub tolerance: ToleranceApplied,
    pub verdict: AmountVerdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AmountVerdict {
    Within,
    Over,
    Under,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().expect("test decimal")
    }

    fn tolerance(absolute: &str, percent: &str) -> Tolerance {
        Tolerance {
            absolute: d(absolute),
            percent: d(percent),
        }
    }

    #[test]
    fn the_larger_of_absolute_and_percent_is_allowed_and_the_limit_itself_matches() {
        use AmountVerdict::*;
        use ToleranceWinner::*;
        // (absolute, percent, expected, invoiced, allowed, winner, verdict)
        let table = [
            // 2 % of 210.00 = 4.20 < 5.00: the absolute wins.
            ("5.00", "2", "210.00", "215.00", "5.00", Absolute, Within),
            ("5.00", "2", "210.00", "215.01", "5.00", Absolute, Over),
            ("5.00", "2", "210.00", "205.00", "5.00", Absolute, Within),
            ("5.00", "2", "210.00", "204.99", "5.00", Absolute, Under),
            // 2 % of 1000.00 = 20.00 > 5.00: the percent wins.
            ("5.00", "2", "1000.00", "1020.00", "20.00", Percent, Within),
            ("5.00", "2", "1000.00", "1020.01", "20.00", Percent, Over),
            ("5.00", "2", "1000.00", "980.00", "20.00", Percent, Within),
            ("5.00", "2", "1000.00", "979.99", "20.00", Percent, Under),
            // 2 % of 250.00 = 5.00: a tie is reported as the absolute.
            ("5.00", "2", "250.00", "255.00", "5.00", Absolute, Within),
            // 2 % of 210.25 = 4.205, rounded half away from zero to 4.21.
            ("0", "2", "210.25", "214.46", "4.21", Percent, Within),
            ("0", "2", "210.25", "214.47", "4.21", Percent, Over),
            ("0", "2", "210.25", "206.04", "4.21", Percent, Within),
            ("0", "2", "210.25", "206.03", "4.21", Percent, Under),
            // Exact tolerance: only the same amount matches; scale does not matter.
            ("0", "0", "210.00", "210", "0", Absolute, Within),
            ("0", "0", "210.00", "210.01", "0", Absolute, Over),
            ("0", "0", "210.00", "209.99", "0", Absolute, Under),
            // A credit note as expected cost: the percent is of its size.
            ("0", "10", "-100.00", "-110.00", "10.00", Percent, Within),
            ("0", "10", "-100.00", "-110.01", "10.00", Percent, Under),
            // Sub-cent invoices are compared as stated.
            ("5.00", "2", "210.00", "215.001", "5.00", Absolute, Over),
        ];
        for (absolute, percent, expected, invoiced, allowed, winner, verdict) in table {
            let check = tolerance(absolute, percent).check(d(invoiced), d(expected));
            let case = format!("±{absolute} or {percent} % of {expected}, invoiced {invoiced}");
            assert_eq!(check.tolerance.allowed, d(allowed), "{case}");
            assert_eq!(check.tolerance.winner, winner, "{case}");
            assert_eq!(check.verdict, verdict, "{case}");
            assert_eq!(check.difference, d(invoiced) - d(expected), "{case}");
        }
    }

    #[test]
    fn the_tolerance_describes_itself_with_both_parts() {
        let applied = tolerance("5.00", "2").around(d("210.00"));
        assert_eq!(
            applied.describe(),
            "5.00, the larger of 5.00 and 2 % (4.20)"
        );
    }

    #[test]
    fn huge_amounts_saturate_instead_of_panicking() {
        let check = tolerance("5", "100").check(Decimal::MAX, Decimal::MIN);
        assert_eq!(check.verdict, AmountVerdict::Over);
        let check = tolerance("5", "2").check(Decimal::MIN, Decimal::MAX);
        assert_eq!(check.verdict, AmountVerdict::Under);
    }

    #[test]
    fn negative_or_over_100_percent_tolerances_are_configuration_problems() {
        let problems = |t: Tolerance| {
            let mut out = Vec::new();
            t.check_config("carrier.ups", &mut out);
            out
        };
        assert!(problems(tolerance("5", "2")).is_empty());
        assert!(problems(tolerance("0", "100")).is_empty());
        assert_eq!(
            problems(tolerance("-1", "2")),
            [ConfigProblem::NegativeTolerance {
                section: "carrier.ups".into()
            }]
        );
        assert_eq!(
            problems(tolerance("1", "-2")),
            [ConfigProblem::NegativeTolerance {
                section: "carrier.ups".into()
            }]
        );
        assert_eq!(
            problems(tolerance("1", "100.01")),
            [ConfigProblem::TolerancePercentOver100 {
                section: "carrier.ups".into(),
                percent: d("100.01")
            }]
        );
    }
}
