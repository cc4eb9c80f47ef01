//! A carrier's surcharge allow-list: the accessorial, tax and other charges it may add beyond the
//! freight, each with an optional cap. Those lines are judged here, one rule at a time; the
//! freight lines (base freight, fuel surcharge, discount) are judged together against the
//! expected cost instead.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::config::ConfigProblem;
use super::money::{optional_decimal_text, same_currency, show};
use crate::canonical::{ChargeKind, ChargeLine};

/// Whether a line is judged on its own against the allow-list. Base freight and fuel are the
/// freight; a discount adjusts the freight (a contract discount off the line haul), so it is
/// compared with it rather than allowed or refused.
pub fn judged_on_its_own(kind: ChargeKind) -> bool {
    match kind {
        ChargeKind::BaseFreight | ChargeKind::FuelSurcharge | ChargeKind::Discount => false,
        ChargeKind::Accessorial | ChargeKind::Tax | ChargeKind::Other => true,
    }
}

/// `{ code = "LFG", cap = "75.00" }`, `{ kind = "tax" }`, or both a code and a kind. A rule with
/// a code is more specific than one with a kind only; with neither cap, any amount is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurchargeRule {
    /// The partner's charge code, compared trimmed and without case.
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    kind: Option<ChargeKind>,
    /// The most the invoice's lines under this rule may add up to, in the carrier's currency.
    #[serde(default, deserialize_with = "optional_decimal_text")]
    cap: Option<Decimal>,
}

impl SurchargeRule {
    fn fits(&self, line: &ChargeLine) -> bool {
        let code_fits = self.code.as_deref().is_none_or(|code| {
            line.code
                .as_deref()
                .is_some_and(|c| c.trim().eq_ignore_ascii_case(code.trim()))
        });
        code_fits && self.kind.is_none_or(|kind| kind == line.kind)
    }

    fn specificity(&self) -> (bool, bool) {
        (self.code.is_some(), self.kind.is_some())
    }

    /// `code LFG`, `kind tax`, `code LFG (accessorial)`.
    pub fn describe(&self) -> String {
        match (&self.code, self.kind) {
            (Some(code), Some(kind)) => format!("code {} ({})", code.trim(), kind.as_str()),
            (Some(code), None) => format!("code {}", code.trim()),
            (None, Some(kind)) => format!("kind {}", kind.as_str()),
            (None, None) => "any charge".into(),
        }
    }

    pub(super) fn has_cap(&self) -> bool {
        self.cap.is_some()
    }

    pub(super) fn check_config(
        rules: &[SurchargeRule],
        section: &str,
        problems: &mut Vec<ConfigProblem>,
    ) {
        let section = || section.to_string();
        for (index, rule) in rules.iter().enumerate() {
            if (rule.code.is_none() && rule.kind.is_none())
                || rule.code.as_deref().is_some_and(|c| c.trim().is_empty())
            {
                problems.push(ConfigProblem::SurchargeRuleEmpty {
                    section: section(),
                    index,
                });
            }
            if let Some(kind) = rule.kind.filter(|kind| !judged_on_its_own(*kind)) {
                problems.push(ConfigProblem::SurchargeKindInFreight {
                    section: section(),
                    rule: rule.describe(),
                    kind,
                });
            }
            if rule.cap.is_some_and(|cap| cap.is_sign_negative()) {
                problems.push(ConfigProblem::NegativeCap {
                    section: section(),
                    rule: rule.describe(),
                });
            }
            let same = |other: &SurchargeRule| {
                other.kind == rule.kind
                    && other.code.as_deref().map(|c| c.trim().to_ascii_uppercase())
                        == rule.code.as_deref().map(|c| c.trim().to_ascii_uppercase())
            };
            if rules[..index].iter().any(same) {
                problems.push(ConfigProblem::SurchargeRuleRepeated {
                    section: section(),
                    rule: rule.describe(),
                });
            }
        }
    }
}

/// The verdict on one invoice line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineVerdict {
    /// 1-based position on the invoice.
    pub line: usize,
    pub kind: ChargeKind,
    pub code: Option<String>,
    pub description: Option<String>,
    pub amount: Decimal,
    #[serde(flatten)]
    pub verdict: Verdict,
}

impl LineVerdict {
    /// "line 3 (LFG, Liftgate) 80.00".
    pub fn describe(&self) -> String {
        let named: Vec<&str> = [self.code.as_deref(), self.description.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        let named = if named.is_empty() {
            self.kind.as_str().to_string()
        } else {
            named.join(", ")
        };
        format!("line {} ({named}) {}", self.line, show(self.amount))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// A freight line: part of the amount compared with the expected cost.
    InFreightTotal,
    /// A surcharge line of zero or less costs nothing and needs no allowance.
    ZeroOrCredit,
    /// On the allow-list, and the lines under its rule are within the cap (or it has none).
    Allowed {
        rule: String,
        cap: Option<Decimal>,
        /// What the invoice's lines under this rule add up to.
        covered: Decimal,
    },
    /// On the allow-list, but the lines under its rule add up to more than the cap.
    OverCap {
        rule: String,
        cap: Decimal,
        covered: Decimal,
        over_by: Decimal,
    },
    /// No rule of the allow-list fits the line.
    NotAllowed,
    /// The rule's cap is in another currency than the invoice, so it cannot be checked.
    CapInOtherCurrency {
        rule: String,
        cap: Decimal,
        cap_currency: Option<String>,
    },
}

/// Judges every line of an invoice: freight lines are marked for the total, each surcharge line
/// goes to the most specific rule that fits it (the first listed among equals), and a capped
/// rule's cap is checked against the sum of the positive lines it covers.
pub(super) fn judge_lines(
    lines: &[ChargeLine],
    rules: &[SurchargeRule],
    cap_currency: Option<&str>,
    invoice_currency: &str,
) -> Vec<LineVerdict> {
    let rule_for = |line: &ChargeLine| {
        let mut best: Option<(usize, &SurchargeRule)> = None;
        for (index, rule) in rules.iter().enumerate() {
            if rule.fits(line) && best.is_none_or(|(_, b)| rule.specificity() > b.specificity()) {
                best = Some((index, rule));
            }
        }
        best
    };
    let charged = |line: &ChargeLine| judged_on_its_own(line.kind) && line.amount > Decimal::ZERO;
    let mut covered = vec![Decimal::ZERO; rules.len()];
    for line in lines.iter().filter(|line| charged(line)) {
        if let Some((index, _)) = rule_for(line)
            && let Some(sum) = covered.get_mut(index)
        {
            *sum = sum.saturating_add(line.amount);
        }
    }
    let cap_comparable = cap_currency.is_some_and(|c| same_currency(c, invoice_currency));
    lines
        .iter()
        .enumerate()
        .map(|(index, line)| {
            let verdict = if !judged_on_its_own(line.kind) {
                Verdict::InFreightTotal
            } else if !charged(line) {
                Verdict::ZeroOrCredit
            } else {
                match rule_for(line) {
                    None => Verdict::NotAllowed,
                    Some((rule_index, rule)) => {
                        let covered = covered.get(rule_index).copied().unwrap_or_default();
                        match rule.cap {
                            Some(cap) if !cap_comparable => Verdict::CapInOtherCurrency {
                                rule: rule.describe(),
                                cap,
                                cap_currency: cap_currency.map(str::to_string),
                            },
                            Some(cap) if covered > cap => Verdict::OverCap {
                                rule: rule.describe(),
                                cap,
                                covered,
                                over_by: covered.saturating_sub(cap),
                            },
                            cap => Verdict::Allowed {
                                rule: rule.describe(),
                                cap,
                                covered,
                            },
                        }
                    }
                }
            };
            LineVerdict {
                line: index + 1,
                kind: line.kind,
                code: line.code.clone(),
                description: line.description.clone(),
                amount: line.amount,
                verdict,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().expect("test decimal")
    }

    #[derive(Deserialize)]
    struct Rules {
        surcharges: Vec<SurchargeRule>,
    }

    fn rules(text: &str) -> (Vec<SurchargeRule>, Vec<ConfigProblem>) {
        let rules = toml::from_str::<Rules>(text).expect("rules").surcharges;
        let mut problems = Vec::new();
        SurchargeRule::check_config(&rules, "carrier.ups", &mut problems);
        (rules, problems)
    }

    const RULES: &str = r#"
        surcharges = [
            { code = "LFG", cap = "75.00" },
            { kind = "tax" },
            { kind = "accessorial", cap = "20.00" },
            { code = "RES", kind = "accessorial", cap = "5.00" },
            { code = "DET", cap = "100" },
        ]
    "#;

    fn line(kind: ChargeKind, code: Option<&str>, amount: &str) -> ChargeLine {
        ChargeLine {
            kind,
            code: code.map(str::to_string),
            description: None,
            amount: d(amount),
        }
    }

    fn verdicts(lines: &[ChargeLine], currency: &str) -> Vec<Verdict> {
        let (rules, problems) = rules(RULES);
        assert_eq!(problems, []);
        judge_lines(lines, &rules, Some("USD"), currency)
            .into_iter()
            .map(|v| v.verdict)
            .collect()
    }

    #[test]
    fn freight_lines_are_compared_in_the_total_and_the_rest_judged_on_their_own() {
        use ChargeKind::*;
        let table = [
            (BaseFreight, false),
            (FuelSurcharge, false),
            (Discount, false),
            (Accessorial, true),
            (Tax, true),
            (Other, true),
        ];
        for (kind, own) in table {
            assert_eq!(judged_on_its_own(kind), own, "{kind:?}");
        }
    }

    #[test]
    fn each_surcharge_line_gets_the_most_specific_rule_and_caps_cover_the_rule_s_lines() {
        use ChargeKind::*;
        let allowed = |rule: &str, cap: Option<&str>, covered: &str| Verdict::Allowed {
            rule: rule.into(),
            cap: cap.map(d),
            covered: d(covered),
        };
        let over = |rule: &str, cap: &str, covered: &str, by: &str| Verdict::OverCap {
            rule: rule.into(),
            cap: d(cap),
            covered: d(covered),
            over_by: d(by),
        };
        let cases: Vec<(&str, Vec<ChargeLine>, Vec<Verdict>)> = vec![
            (
                "freight, credits and zero lines need no rule",
                vec![
                    line(BaseFreight, Some("400"), "200.00"),
                    line(FuelSurcharge, Some("FUE"), "20.00"),
                    line(Discount, None, "-12.00"),
                    line(Other, Some("XYZ"), "-5.00"),
                    line(Accessorial, Some("XYZ"), "0"),
                ],
                vec![
                    Verdict::InFreightTotal,
                    Verdict::InFreightTotal,
                    Verdict::InFreightTotal,
                    Verdict::ZeroOrCredit,
                    Verdict::ZeroOrCredit,
                ],
            ),
            (
                "exactly on the cap is allowed, a cent over is not",
                vec![line(Accessorial, Some("LFG"), "75.00")],
                vec![allowed("code LFG", Some("75.00"), "75.00")],
            ),
            (
                "a cent over the cap",
                vec![line(Accessorial, Some("lfg "), "75.01")],
                vec![over("code LFG", "75.00", "75.01", "0.01")],
            ),
            (
                "two lines under one rule share its cap",
                vec![
                    line(Accessorial, Some("LFG"), "40.00"),
                    line(Accessorial, Some("LFG"), "40.00"),
                ],
                vec![
                    over("code LFG", "75.00", "80.00", "5.00"),
                    over("code LFG", "75.00", "80.00", "5.00"),
                ],
            ),
            (
                "a code with a kind beats the kind alone; the kind alone catches the rest",
                vec![
                    line(Accessorial, Some("RES"), "5.00"),
                    line(Accessorial, Some("INS"), "19.00"),
                    line(Accessorial, None, "1.00"),
                ],
                vec![
                    allowed("code RES (accessorial)", Some("5.00"), "5.00"),
                    allowed("kind accessorial", Some("20.00"), "20.00"),
                    allowed("kind accessorial", Some("20.00"), "20.00"),
                ],
            ),
            (
                "an uncapped kind allows any amount; an unknown kind or code is not allowed",
                vec![
                    line(Tax, Some("GST"), "999.99"),
                    line(Other, Some("XYZ"), "1.00"),
                    line(Other, Some("RES"), "1.00"),
                    line(Other, Some("DET"), "100.00"),
                ],
                vec![
                    allowed("kind tax", None, "999.99"),
                    Verdict::NotAllowed,
                    Verdict::NotAllowed,
                    allowed("code DET", Some("100"), "100.00"),
                ],
            ),
        ];
        for (case, lines, expected) in cases {
            assert_eq!(verdicts(&lines, "USD"), expected, "{case}");
        }
    }

    #[test]
    fn a_cap_in_another_currency_cannot_be_checked() {
        let lines = [
            line(ChargeKind::Accessorial, Some("LFG"), "10.00"),
            line(ChargeKind::Tax, None, "10.00"),
        ];
        assert_eq!(
            verdicts(&lines, "EUR"),
            [
                Verdict::CapInOtherCurrency {
                    rule: "code LFG".into(),
                    cap: d("75.00"),
                    cap_currency: Some("USD".into())
                },
                // An uncapped rule has no amount to compare.
                Verdict::Allowed {
                    rule: "kind tax".into(),
                    cap: None,
                    covered: d("10.00")
                }
            ]
        );
        assert_eq!(verdicts(&lines[..1], "usd")[0], {
            Verdict::Allowed {
                rule: "code LFG".into(),
                cap: Some(d("75.00")),
                covered: d("10.00"),
            }
        });
    }

    #[test]
    fn an_empty_allow_list_allows_no_surcharge() {
        let lines = [line(ChargeKind::Accessorial, Some("LFG"), "1.00")];
        let verdict = judge_lines(&lines, &[], None, "USD");
        assert_eq!(verdict[0].verdict, Verdict::NotAllowed);
        assert_eq!(verdict[0].line, 1);
        assert_eq!(verdict[0].describe(), "line 1 (LFG) 1.00");
    }

    #[test]
    fn malformed_rules_are_configuration_problems() {
        let section = || "carrier.ups".to_string();
        let cases = [
            (
                "surcharges = [{ cap = \"1\" }]",
                vec![ConfigProblem::SurchargeRuleEmpty {
                    section: section(),
                    index: 0,
                }],
            ),
            (
                "surcharges = [{ code = \" \" }]",
                vec![ConfigProblem::SurchargeRuleEmpty {
                    section: section(),
                    index: 0,
                }],
            ),
            (
                "surcharges = [{ kind = \"fuel_surcharge\" }]",
                vec![ConfigProblem::SurchargeKindInFreight {
                    section: section(),
                    rule: "kind fuel_surcharge".into(),
                    kind: ChargeKind::FuelSurcharge,
                }],
            ),
            (
                "surcharges = [{ code = \"LFG\", cap = \"-1\" }]",
                vec![ConfigProblem::NegativeCap {
                    section: section(),
                    rule: "code LFG".into(),
                }],
            ),
            (
                "surcharges = [{ code = \"LFG\" }, { code = \"lfg\", cap = 5 }]",
                vec![ConfigProblem::SurchargeRuleRepeated {
                    section: section(),
                    rule: "code lfg".into(),
                }],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(rules(text).1, expected, "{text}");
        }
        assert!(toml::from_str::<Rules>("surcharges = [{ code = \"LFG\", cap = 75.0 }]").is_err());
        assert!(toml::from_str::<Rules>("surcharges = [{ code = \"LFG\", limit = 75 }]").is_err());
    }
}
