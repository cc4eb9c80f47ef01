//! A carrier's contract rate card: what a shipment should cost when no estimate arrived. A lane is
//! chosen by origin and destination (zone or postal prefix, the most specific wins), the weight
//! break by weight, the line haul is weight × rate with the lane's minimum charge, and the fuel
//! table adds its percent of that line haul.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::config::ConfigProblem;
use super::facts::{LaneFacts, Place, Weight, WeightUnit};
use super::fuel::{FuelApplied, FuelTable};
use super::money::{decimal_text, optional_decimal_text, round_cents, show, show_plain};

/// `[carrier.<name>.rate_card]`: the contract's currency, its weight unit and its lanes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateCard {
    /// The unit the weight breaks and rates are in.
    weight_unit: WeightUnit,
    lanes: Vec<Lane>,
}

/// `{ name = "NYC-LAX", origin = { postal_prefix = "100" }, destination = { zone = "W" },
/// minimum = "45.00", breaks = [{ from = 0, rate = "0.50" }, { from = 500, rate = "0.42" }] }`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Lane {
    /// Shown in the evidence; the endpoints are shown when it has none.
    #[serde(default)]
    name: Option<String>,
    origin: Endpoint,
    destination: Endpoint,
    /// The least the lane costs before fuel.
    #[serde(default, deserialize_with = "optional_decimal_text")]
    minimum: Option<Decimal>,
    breaks: Vec<WeightBreak>,
}

/// One end of a lane: a zone, a postal prefix, or neither (anywhere).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Endpoint {
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    postal_prefix: Option<String>,
}

/// From this weight (inclusive) up to the next break, `rate` per weight unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct WeightBreak {
    #[serde(deserialize_with = "decimal_text")]
    from: Decimal,
    #[serde(deserialize_with = "decimal_text")]
    rate: Decimal,
}

/// How well an endpoint fits a place: anywhere, the zone, or a postal prefix of some length.
/// The derived order is the ranking: a longer prefix beats a shorter one, any prefix beats a
/// zone, a zone beats anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fit {
    Anywhere,
    Zone,
    Prefix(usize),
}

/// Postal codes compare on their letters and digits, upper-cased: `SW1A 1AA` is `SW1A1AA`,
/// `10001-1234` is `100011234`.
fn postal_key(code: &str) -> String {
    code.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

impl Endpoint {
    fn fit(&self, place: &Place) -> Option<Fit> {
        match (&self.zone, &self.postal_prefix) {
            (None, None) => Some(Fit::Anywhere),
            (Some(zone), _) => place
                .zone
                .as_deref()
                .filter(|z| z.trim().eq_ignore_ascii_case(zone.trim()))
                .map(|_| Fit::Zone),
            (None, Some(prefix)) => {
                let prefix = postal_key(prefix);
                place
                    .postal_code
                    .as_deref()
                    .map(postal_key)
                    .filter(|code| code.starts_with(&prefix))
                    .map(|_| Fit::Prefix(prefix.len()))
            }
        }
    }

    /// `postal 100*`, `zone W`, `anywhere`.
    fn describe(&self) -> String {
        match (&self.zone, &self.postal_prefix) {
            (Some(zone), _) => format!("zone {}", zone.trim()),
            (None, Some(prefix)) => format!("postal {}*", postal_key(prefix)),
            (None, None) => "anywhere".into(),
        }
    }

    fn key(&self) -> (Option<String>, Option<String>) {
        (
            self.zone.as_deref().map(|z| z.trim().to_ascii_uppercase()),
            self.postal_prefix.as_deref().map(postal_key),
        )
    }
}

impl Lane {
    fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            format!(
                "{} → {}",
                self.origin.describe(),
                self.destination.describe()
            )
        })
    }
}

/// The line haul a rate-card lane gives for one weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineHaul {
    /// The lane's name, or its endpoints (`postal 100* → zone W`).
    pub lane: String,
    pub origin: String,
    pub destination: String,
    /// The shipment's weight in the card's unit.
    pub weight: Decimal,
    pub weight_unit: WeightUnit,
    /// The weight break used: the highest `from` not above the weight.
    pub break_from: Decimal,
    /// Per weight unit.
    pub rate: Decimal,
    /// `weight × rate`, rounded to cents.
    pub by_weight: Decimal,
    pub minimum: Option<Decimal>,
    /// Whether the minimum charge replaced `by_weight`.
    pub minimum_applied: bool,
    /// The line haul charged: the larger of `by_weight` and the minimum.
    pub amount: Decimal,
}

impl LineHaul {
    /// "lane NYC-LAX, 500 kg at 0.42/kg = 210.00" (with "minimum 45.00 applied" when it was).
    pub fn describe(&self) -> String {
        let unit = self.weight_unit.as_str();
        let mut text = format!(
            "lane {}, {} {unit} at {}/{unit} from the {} {unit} break = {}",
            self.lane,
            show_plain(self.weight),
            show(self.rate),
            show_plain(self.break_from),
            show(self.by_weight)
        );
        if let (true, Some(minimum)) = (self.minimum_applied, self.minimum) {
            text.push_str(&format!(", minimum charge {} applied", show(minimum)));
        }
        text
    }
}

/// What the rate card said about one shipment, priced or why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum RateCardLookup {
    Priced {
        line_haul: Box<LineHaul>,
        /// Absent when the carrier has no fuel table.
        fuel: Option<FuelApplied>,
        /// Line haul plus fuel surcharge.
        total: Decimal,
    },
    /// The carrier has no rate card in the configuration.
    NoRateCard,
    /// The ledger does not know where the shipment went.
    NoLaneFacts,
    /// No lane of the card fits the shipment's origin and destination.
    LaneNotInCard { origin: Place, destination: Place },
    /// The lane is in the card but the shipment's weight is unknown.
    NoWeight { lane: String },
    /// A negative weight, or one too large to convert to the card's unit.
    UnusableWeight { lane: String, weight: Weight },
    /// The carrier has a fuel table but no fuel price was given.
    NoFuelPrice { line_haul: Box<LineHaul> },
    /// The fuel price given is outside every band of the carrier's fuel table.
    FuelPriceOutsideBands {
        line_haul: Box<LineHaul>,
        price: Decimal,
        lowest: Decimal,
        highest: Decimal,
    },
}

impl RateCardLookup {
    /// Why the rate card gave no expected cost, for a person (`None` when it did).
    pub fn why_not_priced(&self) -> Option<String> {
        let place = |p: &Place| match (&p.postal_code, &p.zone) {
            (Some(code), Some(zone)) => format!("{code} (zone {zone})"),
            (Some(code), None) => code.clone(),
            (None, Some(zone)) => format!("zone {zone}"),
            (None, None) => "an unknown place".into(),
        };
        Some(match self {
            RateCardLookup::Priced { .. } => return None,
            RateCardLookup::NoRateCard => "the carrier has no rate card".into(),
            RateCardLookup::NoLaneFacts => {
                "the ledger does not know the shipment's origin and destination".into()
            }
            RateCardLookup::LaneNotInCard {
                origin,
                destination,
            } => format!(
                "no lane of the rate card fits {} → {}",
                place(origin),
                place(destination)
            ),
            RateCardLookup::NoWeight { lane } => {
                format!("lane {lane} is in the rate card but the shipment's weight is unknown")
            }
            RateCardLookup::UnusableWeight { lane, weight } => format!(
                "lane {lane} cannot price a weight of {} {}",
                show_plain(weight.value),
                weight.unit.as_str()
            ),
            RateCardLookup::NoFuelPrice { line_haul } => format!(
                "{}, but no fuel price was given for the carrier's fuel table",
                line_haul.describe()
            ),
            RateCardLookup::FuelPriceOutsideBands {
                line_haul,
                price,
                lowest,
                highest,
            } => format!(
                "{}, but the fuel price {} is outside every band of the fuel table ({} to {})",
                line_haul.describe(),
                show(*price),
                show(*lowest),
                show(*highest)
            ),
        })
    }
}

impl RateCard {
    /// The most specific lane fitting both ends: the better origin fit first, then the better
    /// destination fit. Two lanes cannot fit a place equally well unless they have the same ends,
    /// which the configuration check refuses; the first listed would win.
    fn lane_for(&self, facts: &LaneFacts) -> Option<&Lane> {
        let mut best: Option<((Fit, Fit), &Lane)> = None;
        for lane in &self.lanes {
            let (Some(origin), Some(destination)) = (
                lane.origin.fit(&facts.origin),
                lane.destination.fit(&facts.destination),
            ) else {
                continue;
            };
            if best.is_none_or(|(fit, _)| (origin, destination) > fit) {
                best = Some(((origin, destination), lane));
            }
        }
        best.map(|(_, lane)| lane)
    }

    /// The line haul for a shipment, or why there is none.
    fn line_haul(&self, facts: Option<&LaneFacts>) -> Result<LineHaul, RateCardLookup> {
        let facts = facts.ok_or(RateCardLookup::NoLaneFacts)?;
        let lane = self
            .lane_for(facts)
            .ok_or_else(|| RateCardLookup::LaneNotInCard {
                origin: facts.origin.clone(),
                destination: facts.destination.clone(),
            })?;
        let given = facts
            .weight
            .ok_or_else(|| RateCardLookup::NoWeight { lane: lane.label() })?;
        let unusable = || RateCardLookup::UnusableWeight {
            lane: lane.label(),
            weight: given,
        };
        let weight = given
            .in_unit(self.weight_unit)
            .filter(|w| !w.is_sign_negative())
            .ok_or_else(unusable)?;
        let weight_break = lane
            .breaks
            .iter()
            .filter(|b| b.from <= weight)
            .max_by_key(|b| b.from)
            .ok_or_else(unusable)?;
        let by_weight = round_cents(weight.saturating_mul(weight_break.rate));
        let minimum_applied = lane.minimum.is_some_and(|minimum| minimum > by_weight);
        let amount = match lane.minimum {
            Some(minimum) if minimum_applied => minimum,
            _ => by_weight,
        };
        Ok(LineHaul {
            lane: lane.label(),
            origin: lane.origin.describe(),
            destination: lane.destination.describe(),
            weight,
            weight_unit: self.weight_unit,
            break_from: weight_break.from,
            rate: weight_break.rate,
            by_weight,
            minimum: lane.minimum,
            minimum_applied,
            amount,
        })
    }

    pub(super) fn check_config(&self, section: &str, problems: &mut Vec<ConfigProblem>) {
        let section = || section.to_string();
        if self.lanes.is_empty() {
            problems.push(ConfigProblem::NoLanes { section: section() });
        }
        for (index, lane) in self.lanes.iter().enumerate() {
            let label = lane.label();
            for (end, endpoint) in [("origin", &lane.origin), ("destination", &lane.destination)] {
                match (&endpoint.zone, &endpoint.postal_prefix) {
                    (Some(_), Some(_)) => problems.push(ConfigProblem::EndpointAmbiguous {
                        section: section(),
                        lane: label.clone(),
                        end,
                    }),
                    (Some(zone), None) if zone.trim().is_empty() => {
                        problems.push(ConfigProblem::EndpointEmpty {
                            section: section(),
                            lane: label.clone(),
                            end,
                        })
                    }
                    (None, Some(prefix)) if postal_key(prefix).is_empty() => {
                        problems.push(ConfigProblem::EndpointEmpty {
                            section: section(),
                            lane: label.clone(),
                            end,
                        })
                    }
                    _ => {}
                }
            }
            let same_ends = |other: &Lane| {
                other.origin.key() == lane.origin.key()
                    && other.destination.key() == lane.destination.key()
            };
            if self.lanes[..index].iter().any(same_ends) {
                problems.push(ConfigProblem::LaneRepeated {
                    section: section(),
                    lane: label.clone(),
                });
            }
            match lane.breaks.first() {
                None => problems.push(ConfigProblem::NoBreaks {
                    section: section(),
                    lane: label.clone(),
                }),
                Some(first) if !first.from.is_zero() => {
                    problems.push(ConfigProblem::FirstBreakNotZero {
                        section: section(),
                        lane: label.clone(),
                        from: first.from,
                    })
                }
                Some(_) => {}
            }
            if lane
                .breaks
                .windows(2)
                .any(|pair| pair[0].from >= pair[1].from)
            {
                problems.push(ConfigProblem::BreaksNotIncreasing {
                    section: section(),
                    lane: label.clone(),
                });
            }
            if lane.breaks.iter().any(|b| b.rate.is_sign_negative())
                || lane.minimum.is_some_and(|m| m.is_sign_negative())
            {
                problems.push(ConfigProblem::NegativeRate {
                    section: section(),
                    lane: label.clone(),
                });
            }
        }
    }
}

/// The rate card's expected cost for a shipment: line haul, then the fuel surcharge on it when
/// the carrier has a fuel table (which then needs the current `fuel_price`).
pub(super) fn price(
    card: Option<&RateCard>,
    fuel: Option<&FuelTable>,
    lane: Option<&LaneFacts>,
    fuel_price: Option<Decimal>,
) -> RateCardLookup {
    let Some(card) = card else {
        return RateCardLookup::NoRateCard;
    };
    let line_haul = match card.line_haul(lane) {
        Ok(line_haul) => Box::new(line_haul),
        Err(not_priced) => return not_priced,
    };
    let fuel = match (fuel, fuel_price) {
        (None, _) => None,
        (Some(_), None) => return RateCardLookup::NoFuelPrice { line_haul },
        (Some(table), Some(price)) => match table.apply(price, line_haul.amount) {
            Ok(applied) => Some(applied),
            Err(outside) => {
                return RateCardLookup::FuelPriceOutsideBands {
                    line_haul,
                    price,
                    lowest: outside.lowest,
                    highest: outside.highest,
                };
            }
        },
    };
    let total = line_haul
        .amount
        .saturating_add(fuel.map(|f| f.amount).unwrap_or_default());
    RateCardLookup::Priced {
        line_haul,
        fuel,
        total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().expect("test decimal")
    }

    fn card(text: &str) -> (RateCard, Vec<ConfigProblem>) {
        let card: RateCard = toml::from_str(text).expect("rate card");
        let mut problems = Vec::new();
        card.check_config("carrier.ups", &mut problems);
        (card, problems)
    }

    const CARD: &str = r#"
        weight_unit = "kg"

        [[lanes]]
        name = "NY metro to California"
        origin = { postal_prefix = "10" }
        destination = { postal_prefix = "9" }
        minimum = "45.00"
        breaks = [{ from = 0, rate = "0.50" }, { from = 100, rate = "0.45" }, { from = "500", rate = "0.42" }]

        [[lanes]]
        name = "Manhattan to Los Angeles"
        origin = { postal_prefix = "100" }
        destination = { postal_prefix = "900" }
        breaks = [{ from = 0, rate = "0.40" }]

        [[lanes]]
        name = "Manhattan to zone W"
        origin = { postal_prefix = "100" }
        destination = { zone = "W" }
        breaks = [{ from = 0, rate = "0.60" }]

        [[lanes]]
        name = "zone E to anywhere"
        origin = { zone = "E" }
        destination = {}
        breaks = [{ from = 0, rate = "0.90" }]

        [[lanes]]
        name = "UK London SW"
        origin = { postal_prefix = "SW1" }
        destination = {}
        breaks = [{ from = 0, rate = "1.10" }]
    "#;

    fn lane(origin: &str, destination: &str, weight: Option<(&str, WeightUnit)>) -> LaneFacts {
        let place = |text: &str| {
            let (postal, zone) = text.split_once('/').unwrap_or((text, ""));
            Place {
                postal_code: (!postal.is_empty()).then(|| postal.to_string()),
                zone: (!zone.is_empty()).then(|| zone.to_string()),
            }
        };
        LaneFacts {
            origin: place(origin),
            destination: place(destination),
            weight: weight.map(|(value, unit)| Weight {
                value: d(value),
                unit,
            }),
        }
    }

    #[test]
    fn the_sample_card_is_valid() {
        assert_eq!(card(CARD).1, []);
    }

    #[test]
    fn the_most_specific_lane_wins() {
        let (card, _) = card(CARD);
        // "postal/zone" for each end.
        for (origin, destination, chosen) in [
            ("10001", "94105", "NY metro to California"),
            ("10001", "90012", "Manhattan to Los Angeles"),
            // A postal prefix beats a zone at the destination, whatever the order listed.
            ("10001", "90012/W", "Manhattan to Los Angeles"),
            ("10001", "94105/W", "Manhattan to zone W"),
            ("10101", "90210", "NY metro to California"),
            // The origin decides first: a prefix of 3 at the origin beats a prefix of 2 with a
            // better destination.
            ("10001/E", "94105/W", "Manhattan to zone W"),
            ("20001/E", "94105", "zone E to anywhere"),
            ("20001/e", "", "zone E to anywhere"),
            // Postal codes compare on letters and digits, upper-cased.
            ("sw1a 1aa", "", "UK London SW"),
            ("100-01", "900 12", "Manhattan to Los Angeles"),
        ] {
            let facts = lane(origin, destination, None);
            assert_eq!(
                card.lane_for(&facts).map(Lane::label).as_deref(),
                Some(chosen),
                "{origin} → {destination}"
            );
        }
    }

    #[test]
    fn a_lane_missing_from_the_card_is_not_priced() {
        let (card, _) = card(CARD);
        for (origin, destination) in [("20001", "94105"), ("10001", "80202"), ("", ""), ("S", "")] {
            let facts = lane(origin, destination, Some(("10", WeightUnit::Kg)));
            assert_eq!(
                price(Some(&card), None, Some(&facts), None),
                RateCardLookup::LaneNotInCard {
                    origin: facts.origin.clone(),
                    destination: facts.destination.clone()
                },
                "{origin} → {destination}"
            );
        }
        assert_eq!(
            price(Some(&card), None, None, None),
            RateCardLookup::NoLaneFacts
        );
        assert_eq!(
            price(None, None, Some(&lane("10001", "94105", None)), None),
            RateCardLookup::NoRateCard
        );
    }

    #[test]
    fn the_weight_break_is_the_highest_not_above_the_weight_and_the_minimum_is_a_floor() {
        let (card, _) = card(CARD);
        // (weight, unit, break, rate, by weight, minimum applied, line haul) on the NY → CA lane.
        for (weight, unit, from, rate, by_weight, minimum_applied, amount) in [
            ("0", WeightUnit::Kg, "0", "0.50", "0.00", true, "45.00"),
            (
                "89.99",
                WeightUnit::Kg,
                "0",
                "0.50",
                "45.00",
                false,
                "45.00",
            ),
            ("89.98", WeightUnit::Kg, "0", "0.50", "44.99", true, "45.00"),
            ("90", WeightUnit::Kg, "0", "0.50", "45.00", false, "45.00"),
            (
                "99.999",
                WeightUnit::Kg,
                "0",
                "0.50",
                "50.00",
                false,
                "50.00",
            ),
            (
                "100",
                WeightUnit::Kg,
                "100",
                "0.45",
                "45.00",
                false,
                "45.00",
            ),
            (
                "499.99",
                WeightUnit::Kg,
                "100",
                "0.45",
                "225.00",
                false,
                "225.00",
            ),
            (
                "500",
                WeightUnit::Kg,
                "500",
                "0.42",
                "210.00",
                false,
                "210.00",
            ),
            (
                "12000",
                WeightUnit::Kg,
                "500",
                "0.42",
                "5040.00",
                false,
                "5040.00",
            ),
            // 0.005 of a cent rounds half away from zero: 100.01 × 0.45 = 45.0045 → 45.00;
            // 100.03 × 0.45 = 45.0135 → 45.01; 101.1 × 0.45 = 45.495 → 45.50.
            (
                "100.01",
                WeightUnit::Kg,
                "100",
                "0.45",
                "45.00",
                false,
                "45.00",
            ),
            (
                "100.03",
                WeightUnit::Kg,
                "100",
                "0.45",
                "45.01",
                false,
                "45.01",
            ),
            (
                "101.1",
                WeightUnit::Kg,
                "100",
                "0.45",
                "45.50",
                false,
                "45.50",
            ),
            // Pounds convert to the card's kilograms: 1102.31 lb = 499.9994… kg, just below 500.
            (
                "1102.31",
                WeightUnit::Lb,
                "100",
                "0.45",
                "225.00",
                false,
                "225.00",
            ),
            (
                "1102.32",
                WeightUnit::Lb,
                "500",
                "0.42",
                "210.00",
                false,
                "210.00",
            ),
        ] {
            let facts = lane("10001", "94105", Some((weight, unit)));
            let line_haul = card.line_haul(Some(&facts)).expect(weight);
            let case = format!("{weight} {}", unit.as_str());
            assert_eq!(line_haul.break_from, d(from), "{case}");
            assert_eq!(line_haul.rate, d(rate), "{case}");
            assert_eq!(line_haul.by_weight, d(by_weight), "{case}");
            assert_eq!(line_haul.minimum_applied, minimum_applied, "{case}");
            assert_eq!(line_haul.amount, d(amount), "{case}");
            assert_eq!(line_haul.minimum, Some(d("45.00")), "{case}");
        }
    }

    #[test]
    fn an_unknown_or_negative_weight_is_not_priced() {
        let (kilograms, _) = card(CARD);
        let facts = lane("10001", "94105", None);
        assert_eq!(
            kilograms.line_haul(Some(&facts)),
            Err(RateCardLookup::NoWeight {
                lane: "NY metro to California".into()
            })
        );
        let facts = lane("10001", "94105", Some(("-1", WeightUnit::Kg)));
        assert!(matches!(
            kilograms.line_haul(Some(&facts)),
            Err(RateCardLookup::UnusableWeight { .. })
        ));
        // Kilograms too large to express in a card's pounds.
        let (pounds, _) = card(
            "weight_unit = \"lb\"\nlanes = [{ origin = {}, destination = {}, breaks = [{ from = 0, rate = 1 }] }]",
        );
        let facts = lane(
            "10001",
            "94105",
            Some(("79228162514264337593543950335", WeightUnit::Kg)),
        );
        assert!(matches!(
            pounds.line_haul(Some(&facts)),
            Err(RateCardLookup::UnusableWeight { .. })
        ));
        // The same weight in the card's own unit saturates instead of overflowing.
        let facts = lane(
            "10001",
            "94105",
            Some(("79228162514264337593543950335", WeightUnit::Lb)),
        );
        assert_eq!(
            pounds.line_haul(Some(&facts)).map(|l| l.amount),
            Ok(round_cents(Decimal::MAX))
        );
    }

    #[test]
    fn fuel_is_a_percent_of_the_line_haul_after_the_minimum() {
        let (card, _) = card(CARD);
        let mut fuel: FuelTable = toml::from_str(
            r#"bands = [{ from = "3.00", to = "3.50", percent = "10" }, { from = "3.50", to = "4.00", percent = "20" }]"#,
        )
        .expect("fuel");
        fuel.check_config("carrier.ups", &mut Vec::new());
        let facts = lane("10001", "94105", Some(("10", WeightUnit::Kg)));
        let RateCardLookup::Priced {
            line_haul,
            fuel: Some(applied),
            total,
        } = price(Some(&card), Some(&fuel), Some(&facts), Some(d("3.50")))
        else {
            panic!("priced with fuel");
        };
        assert!(line_haul.minimum_applied);
        assert_eq!((applied.percent, applied.amount), (d("20"), d("9.00")));
        assert_eq!(total, d("54.00"));

        assert!(matches!(
            price(Some(&card), Some(&fuel), Some(&facts), None),
            RateCardLookup::NoFuelPrice { .. }
        ));
        let outside = price(Some(&card), Some(&fuel), Some(&facts), Some(d("4.00")));
        assert!(
            matches!(outside, RateCardLookup::FuelPriceOutsideBands { price, lowest, highest, .. }
                if price == d("4.00") && lowest == d("3.00") && highest == d("4.00")),
            "{outside:?}"
        );
        // Without a fuel table, the line haul is the total and no price is needed.
        assert!(matches!(
            price(Some(&card), None, Some(&facts), None),
            RateCardLookup::Priced { fuel: None, total, .. } if total == d("45.00")
        ));
    }

    #[test]
    fn every_reason_not_to_price_reads_for_a_person() {
        let (card, _) = card(CARD);
        let facts = lane("10001", "94105", Some(("10", WeightUnit::Kg)));
        let line_haul = card.line_haul(Some(&facts)).expect("priced");
        assert_eq!(
            line_haul.describe(),
            "lane NY metro to California, 10 kg at 0.50/kg from the 0 kg break = 5.00, \
             minimum charge 45.00 applied"
        );
        let cases = [
            (RateCardLookup::NoRateCard, "the carrier has no rate card"),
            (
                RateCardLookup::NoLaneFacts,
                "the ledger does not know the shipment's origin and destination",
            ),
            (
                RateCardLookup::LaneNotInCard {
                    origin: lane("20001", "", None).origin,
                    destination: lane("/W", "", None).origin,
                },
                "no lane of the rate card fits 20001 → zone W",
            ),
            (
                RateCardLookup::NoWeight { lane: "A".into() },
                "lane A is in the rate card but the shipment's weight is unknown",
            ),
            (
                RateCardLookup::FuelPriceOutsideBands {
                    line_haul: Box::new(line_haul.clone()),
                    price: d("4.10"),
                    lowest: d("3.00"),
                    highest: d("4.00"),
                },
                "fuel price 4.10 is outside every band of the fuel table (3.00 to 4.00)",
            ),
        ];
        for (lookup, text) in cases {
            let why = lookup.why_not_priced().expect("not priced");
            assert!(why.contains(text), "{why}");
        }
        assert_eq!(
            RateCardLookup::Priced {
                line_haul: Box::new(line_haul),
                fuel: None,
                total: d("45.00")
            }
            .why_not_priced(),
            None
        );
    }

    #[test]
    fn malformed_lanes_are_configuration_problems() {
        let section = || "carrier.ups".to_string();
        let lane_text =
            |body: &str| format!("weight_unit = \"kg\"\n[[lanes]]\nname = \"L\"\n{body}");
        let cases = [
            (
                "weight_unit = \"kg\"\nlanes = []".to_string(),
                vec![ConfigProblem::NoLanes { section: section() }],
            ),
            (
                lane_text(
                    "origin = { zone = \"E\", postal_prefix = \"1\" }\ndestination = {}\nbreaks = [{ from = 0, rate = 1 }]",
                ),
                vec![ConfigProblem::EndpointAmbiguous {
                    section: section(),
                    lane: "L".into(),
                    end: "origin",
                }],
            ),
            (
                lane_text(
                    "origin = {}\ndestination = { postal_prefix = \" - \" }\nbreaks = [{ from = 0, rate = 1 }]",
                ),
                vec![ConfigProblem::EndpointEmpty {
                    section: section(),
                    lane: "L".into(),
                    end: "destination",
                }],
            ),
            (
                lane_text(
                    "origin = { zone = \" \" }\ndestination = {}\nbreaks = [{ from = 0, rate = 1 }]",
                ),
                vec![ConfigProblem::EndpointEmpty {
                    section: section(),
                    lane: "L".into(),
                    end: "origin",
                }],
            ),
            (
                lane_text("origin = {}\ndestination = {}\nbreaks = []"),
                vec![ConfigProblem::NoBreaks {
                    section: section(),
                    lane: "L".into(),
                }],
            ),
            (
                lane_text("origin = {}\ndestination = {}\nbreaks = [{ from = 1, rate = 1 }]"),
                vec![ConfigProblem::FirstBreakNotZero {
                    section: section(),
                    lane: "L".into(),
                    from: d("1"),
                }],
            ),
            (
                lane_text(
                    "origin = {}\ndestination = {}\nbreaks = [{ from = 0, rate = 1 }, { from = 100, rate = 1 }, { from = 100, rate = 1 }]",
                ),
                vec![ConfigProblem::BreaksNotIncreasing {
                    section: section(),
                    lane: "L".into(),
                }],
            ),
            (
                lane_text(
                    "origin = {}\ndestination = {}\nbreaks = [{ from = 0, rate = \"-0.1\" }]",
                ),
                vec![ConfigProblem::NegativeRate {
                    section: section(),
                    lane: "L".into(),
                }],
            ),
            (
                lane_text(
                    "origin = {}\ndestination = {}\nminimum = \"-1\"\nbreaks = [{ from = 0, rate = 1 }]",
                ),
                vec![ConfigProblem::NegativeRate {
                    section: section(),
                    lane: "L".into(),
                }],
            ),
            (
                format!(
                    "{}\n[[lanes]]\nname = \"M\"\norigin = {{ postal_prefix = \"1 0\" }}\ndestination = {{}}\nbreaks = [{{ from = 0, rate = 1 }}]",
                    lane_text(
                        "origin = { postal_prefix = \"10\" }\ndestination = {}\nbreaks = [{ from = 0, rate = 1 }]"
                    )
                ),
                vec![ConfigProblem::LaneRepeated {
                    section: section(),
                    lane: "M".into(),
                }],
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(card(&text).1, expected, "{text}");
        }
    }
}
