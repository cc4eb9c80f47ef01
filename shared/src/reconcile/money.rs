//! How the reconciler rounds, shows and reads amounts. Computed amounts (a rate-card line haul, a
//! fuel surcharge, a percent tolerance) are rounded to cents half away from zero — the commercial
//! rounding carriers print on invoices; amounts a partner stated are compared as stated.

use std::fmt;
use std::str::FromStr;

use rust_decimal::{Decimal, RoundingStrategy};
use serde::Deserializer;
use serde::de::{self, Visitor};

/// Decimals kept on computed amounts.
pub const CENTS: u32 = 2;

/// Rounds a computed amount to cents, half away from zero (`4.205` → `4.21`, `-4.205` → `-4.21`;
/// banker's rounding would give `4.20`).
pub fn round_cents(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(CENTS, RoundingStrategy::MidpointAwayFromZero)
}

/// An amount for a message: at least two decimals, more when it has them (`5` → `5.00`,
/// `3.859` stays `3.859`).
pub(super) fn show(amount: Decimal) -> String {
    let mut shown = amount;
    if shown.scale() < CENTS {
        shown.rescale(CENTS);
    }
    shown.to_string()
}

/// A percent or a weight for a message, without trailing zeros (`2.50` → `2.5`).
pub(super) fn show_plain(value: Decimal) -> String {
    value.normalize().to_string()
}

/// ISO 4217 codes are compared without regard to case or surrounding blanks.
pub(super) fn same_currency(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Reads a configured decimal from a string (`"5.00"`) or an integer (`5`), and refuses a TOML
/// float (`5.0`): money, rates and percents never pass through binary floating point.
pub(super) fn decimal_text<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    d.deserialize_any(DecimalText)
}

/// [`decimal_text`] for an optional field (used with `#[serde(default)]`).
pub(super) fn optional_decimal_text<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Decimal>, D::Error> {
    d.deserialize_any(DecimalText).map(Some)
}

struct DecimalText;

impl Visitor<'_> for DecimalText {
    type Value = Decimal;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a decimal written as a string (\"5.00\") or an integer")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Decimal, E> {
        Decimal::from_str(text.trim())
            .map_err(|_| E::invalid_value(de::Unexpected::Str(text), &self))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Decimal, E> {
        Ok(Decimal::from(value))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Decimal, E> {
        Ok(Decimal::from(value))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Decimal, E> {
        Err(E::custom(format!(
            "{value} is a float; write it as a string (\"{value}\") so it is read as an exact decimal"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().expect("test decimal")
    }

    #[test]
    fn computed_amounts_round_half_away_from_zero_to_cents() {
        for (amount, rounded) in [
            ("4.205", "4.21"),
            ("4.215", "4.22"),
            ("4.2049", "4.20"),
            ("-4.205", "-4.21"),
            ("0.005", "0.01"),
            ("0.0049999", "0.00"),
            ("210", "210"),
            ("12.3", "12.3"),
        ] {
            assert_eq!(round_cents(d(amount)), d(rounded), "{amount}");
        }
        // The choice is visible where banker's rounding would differ.
        assert_ne!(
            round_cents(d("4.205")),
            d("4.205").round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven)
        );
    }

    #[test]
    fn messages_show_at_least_cents() {
        for (amount, shown) in [
            ("5", "5.00"),
            ("5.5", "5.50"),
            ("3.859", "3.859"),
            ("-0.1", "-0.10"),
        ] {
            assert_eq!(show(d(amount)), shown);
        }
        assert_eq!(show_plain(d("2.50")), "2.5");
        assert_eq!(show_plain(d("100")), "100");
    }

    #[test]
    fn currencies_compare_without_case_or_blanks() {
        assert!(same_currency("USD", " usd "));
        assert!(!same_currency("USD", "EUR"));
    }

    #[derive(Debug, serde::Deserialize)]
    struct Amount {
        #[serde(deserialize_with = "decimal_text")]
        value: Decimal,
    }

    #[test]
    fn configured_decimals_are_strings_or_integers_never_floats() {
        let read = |text: &str| toml::from_str::<Amount>(text).map(|a| a.value);
        assert_eq!(read("value = \"5.00\"").ok(), Some(d("5.00")));
        assert_eq!(read("value = 5").ok(), Some(d("5")));
        assert_eq!(read("value = \" 0.1 \"").ok(), Some(d("0.1")));
        let float = read("value = 5.0").expect_err("a float is refused");
        assert!(
            float.to_string().contains("write it as a string"),
            "{float}"
        );
        assert!(read("value = \"5,00\"").is_err());
        assert!(read("value = true").is_err());
    }
}
