//! A carrier's fuel surcharge table, the way carriers publish them weekly: a percent of the line
//! haul for each fuel price band. Bands are `[from, to)` and must follow one another without gap
//! or overlap, so every price between the first `from` and the last `to` falls in exactly one.

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::config::ConfigProblem;
use super::money::{decimal_text, round_cents};

/// `[carrier.<name>.fuel]` with `bands = [{ from = "3.00", to = "3.25", percent = "14.5" }, …]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FuelTable {
    bands: Vec<FuelBand>,
    /// The fuel price index the bands are read with, as published weekly (in the US the
    /// EIA's on-highway diesel average): each price holds from its date until the next one.
    /// Kept current in the settings (the SSM parameter in AWS) by whoever follows the index.
    #[serde(default)]
    prices: Vec<FuelPrice>,
}

/// `{ from = "2026-11-30", price = "3.812" }`: the index price from that day on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct FuelPrice {
    from: NaiveDate,
    #[serde(deserialize_with = "decimal_text")]
    price: Decimal,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct FuelBand {
    /// Fuel price, inclusive.
    #[serde(deserialize_with = "decimal_text")]
    from: Decimal,
    /// Fuel price, exclusive.
    #[serde(deserialize_with = "decimal_text")]
    to: Decimal,
    /// Of the line haul: `14.5` is 14.5 %.
    #[serde(deserialize_with = "decimal_text")]
    percent: Decimal,
}

/// The fuel surcharge applied to one line haul, with the band that set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FuelApplied {
    /// The fuel price the surcharge was looked up with.
    pub price: Decimal,
    pub band_from: Decimal,
    pub band_to: Decimal,
    pub percent: Decimal,
    /// `percent` of the line haul, rounded to cents.
    pub amount: Decimal,
}

/// A fuel price below the table's first band or at or above its last band's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OutsideBands {
    pub lowest: Decimal,
    pub highest: Decimal,
}

impl FuelTable {
    /// The surcharge on `line_haul` at fuel price `price`.
    pub(super) fn apply(
        &self,
        price: Decimal,
        line_haul: Decimal,
    ) -> Result<FuelApplied, OutsideBands> {
        let band = self
            .bands
            .iter()
            .find(|band| band.from <= price && price < band.to);
        match band {
            Some(band) => Ok(FuelApplied {
                price,
                band_from: band.from,
                band_to: band.to,
                percent: band.percent,
                amount: round_cents(
                    line_haul
                        .saturating_mul(band.percent)
                        .checked_div(Decimal::ONE_HUNDRED)
                        .unwrap_or(Decimal::MAX),
                ),
            }),
            None => Err(OutsideBands {
                lowest: self.bands.iter().map(|b| b.from).min().unwrap_or_default(),
                highest: self.bands.iter().map(|b| b.to).max().unwrap_or_default(),
            }),
        }
    }

    /// The index price in force on `day`: the latest one published on or before it. `None`
    /// before the first price, or when the settings list none.
    pub fn price_on(&self, day: NaiveDate) -> Option<Decimal> {
        self.prices
            .iter()
            .take_while(|p| p.from <= day)
            .last()
            .map(|p| p.price)
    }

    /// Sorts the bands by price and the index prices by date, and reports empty, negative, overlapping and gapped ones.
    pub(super) fn check_config(&mut self, section: &str, problems: &mut Vec<ConfigProblem>) {
        let section = || section.to_string();
        if self.bands.is_empty() {
            problems.push(ConfigProblem::NoFuelBands { section: section() });
        }
        self.bands.sort_by_key(|band| (band.from, band.to));
        for band in &self.bands {
            if band.from >= band.to {
                problems.push(ConfigProblem::FuelBandEmpty {
                    section: section(),
                    from: band.from,
                    to: band.to,
                });
            }
            if band.percent.is_sign_negative() {
                problems.push(ConfigProblem::NegativeFuelPercent {
                    section: section(),
                    from: band.from,
                    to: band.to,
                });
            }
        }
        self.prices.sort_by_key(|p| p.from);
        for pair in self.prices.windows(2) {
            if let [first, next] = pair
                && first.from == next.from
            {
                problems.push(ConfigProblem::FuelPriceRepeated {
                    section: section(),
                    from: first.from,
                });
            }
        }
        for price in &self.prices {
            if price.price <= Decimal::ZERO {
                problems.push(ConfigProblem::FuelPriceNotPositive {
                    section: section(),
                    from: price.from,
                });
            }
        }
        for pair in self.bands.windows(2) {
            let [first, next] = pair else { continue };
            if next.from < first.to {
                problems.push(ConfigProblem::FuelBandsOverlap {
                    section: section(),
                    first_to: first.to,
                    next_from: next.from,
                });
            } else if next.from > first.to {
                problems.push(ConfigProblem::FuelBandsGap {
                    section: section(),
                    first_to: first.to,
                    next_from: next.from,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().expect("test decimal")
    }

    fn table(text: &str) -> (FuelTable, Vec<ConfigProblem>) {
        let mut table: FuelTable = toml::from_str(text).expect("fuel table");
        let mut problems = Vec::new();
        table.check_config("carrier.ups", &mut problems);
        (table, problems)
    }

    const WEEKLY: &str = r#"
        bands = [
            { from = "3.50", to = "3.75", percent = "15.5" },
            { from = "3.00", to = "3.25", percent = "14.5" },
            { from = "3.25", to = "3.50", percent = "15" },
        ]
    "#;

    #[test]
    fn the_band_containing_the_price_sets_the_percent_and_its_end_belongs_to_the_next() {
        let (table, problems) = table(WEEKLY);
        assert!(problems.is_empty(), "{problems:?}");
        // (price, band from, band to, percent, surcharge on 200.00)
        for (price, from, to, percent, amount) in [
            ("3.00", "3.00", "3.25", "14.5", "29.00"),
            ("3.249", "3.00", "3.25", "14.5", "29.00"),
            ("3.25", "3.25", "3.50", "15", "30.00"),
            ("3.499", "3.25", "3.50", "15", "30.00"),
            ("3.50", "3.50", "3.75", "15.5", "31.00"),
            ("3.7499", "3.50", "3.75", "15.5", "31.00"),
        ] {
            let applied = table.apply(d(price), d("200.00")).expect(price);
            assert_eq!(
                (
                    applied.band_from,
                    applied.band_to,
                    applied.percent,
                    applied.amount
                ),
                (d(from), d(to), d(percent), d(amount)),
                "{price}"
            );
            assert_eq!(applied.price, d(price));
        }
    }

    #[test]
    fn the_index_price_of_a_day_is_the_latest_published_on_or_before_it() {
        let (indexed, problems) = table(&format!(
            "{WEEKLY}\nprices = [{{ from = \"2026-11-30\", price = \"3.61\" }}, \
             {{ from = \"2026-11-16\", price = \"3.40\" }}, {{ from = \"2026-11-23\", price = \"3.52\" }}]"
        ));
        assert!(problems.is_empty(), "{problems:?}");
        let day = |text: &str| text.parse::<NaiveDate>().expect("test date");
        for (on, price) in [
            ("2026-11-15", None),
            ("2026-11-16", Some("3.40")),
            ("2026-11-22", Some("3.40")),
            ("2026-11-23", Some("3.52")),
            ("2026-11-29", Some("3.52")),
            ("2026-11-30", Some("3.61")),
            ("2027-03-01", Some("3.61")),
        ] {
            assert_eq!(indexed.price_on(day(on)), price.map(d), "{on}");
        }
        let (without, _) = table(WEEKLY);
        assert_eq!(without.price_on(day("2026-11-30")), None);
    }

    #[test]
    fn repeated_and_non_positive_index_prices_are_reported() {
        let (_, problems) = table(&format!(
            "{WEEKLY}\nprices = [{{ from = \"2026-11-30\", price = \"3.61\" }}, \
             {{ from = \"2026-11-30\", price = \"3.62\" }}, {{ from = \"2026-11-23\", price = \"0\" }}]"
        ));
        let day = |text: &str| text.parse::<NaiveDate>().expect("test date");
        assert_eq!(
            problems,
            [
                ConfigProblem::FuelPriceRepeated {
                    section: "carrier.ups".into(),
                    from: day("2026-11-30")
                },
                ConfigProblem::FuelPriceNotPositive {
                    section: "carrier.ups".into(),
                    from: day("2026-11-23")
                },
            ]
        );
    }

    #[test]
    fn a_price_outside_every_band_is_not_priced() {
        let (table, _) = table(WEEKLY);
        for price in ["2.999", "3.75", "9", "-1"] {
            assert_eq!(
                table.apply(d(price), d("200.00")),
                Err(OutsideBands {
                    lowest: d("3.00"),
                    highest: d("3.75")
                }),
                "{price}"
            );
        }
    }

    #[test]
    fn the_surcharge_is_rounded_half_away_from_zero() {
        let (table, _) = table(WEEKLY);
        // 14.5 % of 123.45 = 17.90025 → 17.90; of 0.10 = 0.0145 → 0.01; of 0.03 = 0.00435 → 0.00.
        for (line_haul, amount) in [("123.45", "17.90"), ("0.10", "0.01"), ("0.03", "0.00")] {
            assert_eq!(
                table.apply(d("3.10"), d(line_haul)).map(|a| a.amount),
                Ok(d(amount)),
                "{line_haul}"
            );
        }
        // 15 % of 10.30 = 1.545 → 1.55, where banker's rounding would give 1.54.
        assert_eq!(
            table.apply(d("3.30"), d("10.30")).map(|a| a.amount),
            Ok(d("1.55"))
        );
    }

    #[test]
    fn empty_negative_overlapping_and_gapped_bands_are_configuration_problems() {
        let section = || "carrier.ups".to_string();
        let cases = [
            (
                "bands = []",
                vec![ConfigProblem::NoFuelBands { section: section() }],
            ),
            (
                r#"bands = [{ from = "3.25", to = "3.25", percent = "1" }]"#,
                vec![ConfigProblem::FuelBandEmpty {
                    section: section(),
                    from: d("3.25"),
                    to: d("3.25"),
                }],
            ),
            (
                r#"bands = [{ from = "3", to = "4", percent = "-1" }]"#,
                vec![ConfigProblem::NegativeFuelPercent {
                    section: section(),
                    from: d("3"),
                    to: d("4"),
                }],
            ),
            (
                r#"bands = [{ from = "3", to = "4", percent = "1" }, { from = "3.9", to = "5", percent = "2" }]"#,
                vec![ConfigProblem::FuelBandsOverlap {
                    section: section(),
                    first_to: d("4"),
                    next_from: d("3.9"),
                }],
            ),
            (
                r#"bands = [{ from = "3", to = "3.99", percent = "1" }, { from = "4", to = "5", percent = "2" }]"#,
                vec![ConfigProblem::FuelBandsGap {
                    section: section(),
                    first_to: d("3.99"),
                    next_from: d("4"),
                }],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(table(text).1, expected, "{text}");
        }
        assert!(
            toml::from_str::<FuelTable>(r#"bands = [{ from = 3.0, to = "4", percent = "1" }]"#)
                .is_err()
        );
    }
}
