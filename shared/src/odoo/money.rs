//! Money on its way into Odoo: decimals end to end, rounded only at the currency's precision
//! (Odoo's `res.currency.decimal_places`), and every entry checked for balance before it is sent.
//! Amounts become JSON numbers only at the wire, and only when the number reads back exactly.

use std::str::FromStr;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::Value;
use thiserror::Error;

use crate::failure::{Classify, FailureClass};

/// Odoo rounds half away from zero (`float_round`, HALF-UP on the magnitude).
const ODOO_ROUNDING: RoundingStrategy = RoundingStrategy::MidpointAwayFromZero;

/// Amounts beyond this many significant digits would not survive the trip through a float.
const MAX_SIGNIFICANT_DIGITS: u32 = 15;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MoneyError {
    #[error("the entry is not balanced: debits {debit} and credits {credit} ({currency})")]
    Unbalanced {
        debit: Decimal,
        credit: Decimal,
        currency: String,
    },
    #[error("line {line} of the entry is invalid: {reason}")]
    InvalidLine { line: usize, reason: String },
    #[error("the entry has no amount")]
    Empty,
    #[error("the charge lines add up to {lines} but the document's total is {total} ({currency})")]
    TotalMismatch {
        lines: Decimal,
        total: Decimal,
        currency: String,
    },
    #[error("{amount} cannot be sent to Odoo exactly")]
    NotRepresentable { amount: Decimal },
}

impl Classify for MoneyError {
    fn class(&self) -> FailureClass {
        // The same input gives the same sums: retrying cannot help.
        FailureClass::Permanent
    }

    fn code(&self) -> &'static str {
        match self {
            MoneyError::Unbalanced { .. } => "unbalanced_entry",
            MoneyError::InvalidLine { .. } => "invalid_entry_line",
            MoneyError::Empty => "empty_entry",
            MoneyError::TotalMismatch { .. } => "invoice_total_mismatch",
            MoneyError::NotRepresentable { .. } => "amount_not_representable",
        }
    }
}

/// A currency as Odoo knows it: its code and how many decimals it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency {
    pub id: i64,
    pub code: String,
    pub decimal_places: u32,
}

impl Currency {
    /// `amount` at this currency's precision.
    pub fn round(&self, amount: Decimal) -> Decimal {
        amount.round_dp_with_strategy(self.decimal_places, ODOO_ROUNDING)
    }

    /// Whether `amount` already has no more decimals than the currency keeps.
    pub fn is_exact(&self, amount: Decimal) -> bool {
        self.round(amount) == amount
    }
}

/// `amount` as the JSON number Odoo receives. Refused when the number would not read back as
/// the same decimal (too many significant digits for a float).
pub fn to_wire(amount: Decimal) -> Result<Value, MoneyError> {
    let refused = || MoneyError::NotRepresentable { amount };
    let normalized = amount.normalize();
    let digits = normalized.mantissa().unsigned_abs().to_string().len();
    if digits > MAX_SIGNIFICANT_DIGITS as usize {
        return Err(refused());
    }
    let float = normalized.to_f64().ok_or_else(refused)?;
    // Rust prints the shortest decimal that reads back as the same float: for up to 15
    // significant digits that is the decimal itself.
    if Decimal::from_str(&float.to_string()).ok() != Some(normalized) {
        return Err(refused());
    }
    serde_json::Number::from_f64(float)
        .map(Value::Number)
        .ok_or_else(refused)
}

/// A monetary value Odoo sent (a float such as `1348.33`, or `false` for empty) as a decimal.
/// Floats are read through their shortest representation, so `0.1` is `0.1`, not
/// `0.1000000000000000055…`.
pub fn from_wire(value: Option<&Value>) -> Option<Decimal> {
    match value? {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(Decimal::from(i))
            } else {
                Decimal::from_str(&n.as_f64()?.to_string()).ok()
            }
        }
        _ => None,
    }
}

/// One journal item of an entry we write (`line_ids` of a `move_type = entry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryLine {
    pub account_id: i64,
    pub label: String,
    pub debit: Decimal,
    pub credit: Decimal,
    pub partner_id: Option<i64>,
}

/// Checks an entry before it is sent: every line is a debit or a credit (not both, not
/// negative), at the currency's precision, and debits equal credits. Odoo refuses an unbalanced
/// entry itself (transcripts 070/116, odoo18/20); checking here keeps that a clear, permanent
/// error of ours rather than a round trip.
pub fn check_balanced(lines: &[EntryLine], currency: &Currency) -> Result<(), MoneyError> {
    let mut debit = Decimal::ZERO;
    let mut credit = Decimal::ZERO;
    for (index, line) in lines.iter().enumerate() {
        let invalid = |reason: &str| MoneyError::InvalidLine {
            line: index + 1,
            reason: reason.to_owned(),
        };
        if line.debit.is_sign_negative() && !line.debit.is_zero()
            || line.credit.is_sign_negative() && !line.credit.is_zero()
        {
            return Err(invalid("debit and credit must not be negative"));
        }
        if !line.debit.is_zero() && !line.credit.is_zero() {
            return Err(invalid("a line is either a debit or a credit"));
        }
        if !currency.is_exact(line.debit) || !currency.is_exact(line.credit) {
            return Err(invalid(&format!(
                "more decimals than {} keeps ({})",
                currency.code, currency.decimal_places
            )));
        }
        debit += line.debit;
        credit += line.credit;
    }
    if debit.is_zero() && credit.is_zero() {
        return Err(MoneyError::Empty);
    }
    if debit != credit {
        return Err(MoneyError::Unbalanced {
            debit,
            credit,
            currency: currency.code.clone(),
        });
    }
    Ok(())
}

/// The document lines, each at the currency's precision, must add up to the document's own
/// total: a bill whose lines disagree with the carrier's amount due is not sent.
pub fn check_total(
    amounts: &[Decimal],
    total: Decimal,
    currency: &Currency,
) -> Result<Vec<Decimal>, MoneyError> {
    let rounded: Vec<Decimal> = amounts.iter().map(|a| currency.round(*a)).collect();
    let sum: Decimal = rounded.iter().sum();
    if sum != currency.round(total) {
        return Err(MoneyError::TotalMismatch {
            lines: sum,
            total,
            currency: currency.code.clone(),
        });
    }
    Ok(rounded)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn usd() -> Currency {
        Currency {
            id: 1,
            code: "USD".into(),
            decimal_places: 2,
        }
    }

    fn line(debit: &str, credit: &str) -> EntryLine {
        EntryLine {
            account_id: 1,
            label: "x".into(),
            debit: d(debit),
            credit: d(credit),
            partner_id: None,
        }
    }

    #[test]
    fn rounding_is_half_away_from_zero_at_the_currency_precision() {
        let jpy = Currency {
            id: 2,
            code: "JPY".into(),
            decimal_places: 0,
        };
        let kwd = Currency {
            id: 3,
            code: "KWD".into(),
            decimal_places: 3,
        };
        let cases = [
            (&usd(), "2.345", "2.35"),
            (&usd(), "-2.345", "-2.35"),
            (&usd(), "2.344", "2.34"),
            (&usd(), "51.65", "51.65"),
            (&jpy, "100.5", "101"),
            (&kwd, "1.2345", "1.235"),
        ];
        for (currency, amount, expected) in cases {
            assert_eq!(currency.round(d(amount)), d(expected), "{amount}");
        }
        assert!(usd().is_exact(d("51.650")));
        assert!(!usd().is_exact(d("51.655")));
    }

    #[test]
    fn amounts_go_on_the_wire_as_numbers_that_read_back_exactly() {
        for (amount, wire) in [
            ("51.65", json!(51.65)),
            ("1348.33", json!(1348.33)),
            ("-12.74", json!(-12.74)),
            ("0.1", json!(0.1)),
            ("100.00", json!(100.0)),
        ] {
            let value = to_wire(d(amount)).unwrap();
            assert_eq!(value, wire, "{amount}");
            assert_eq!(from_wire(Some(&value)).unwrap(), d(amount).normalize());
        }
        assert_eq!(
            to_wire(d("12345678901234567.89")).unwrap_err().code(),
            "amount_not_representable"
        );
    }

    #[test]
    fn odoo_floats_and_false_are_read_as_decimals_or_nothing() {
        assert_eq!(from_wire(Some(&json!(12.83))), Some(d("12.83")));
        assert_eq!(from_wire(Some(&json!(900))), Some(d("900")));
        assert_eq!(from_wire(Some(&json!(false))), None);
        assert_eq!(from_wire(None), None);
    }

    #[test]
    fn entries_are_checked_before_sending() {
        let ok = [line("900.00", "0"), line("0", "900.00")];
        check_balanced(&ok, &usd()).unwrap();
        let cases: Vec<(Vec<EntryLine>, &str)> = vec![
            (vec![line("100", "0"), line("0", "50")], "unbalanced_entry"),
            (
                vec![line("100.001", "0"), line("0", "100.001")],
                "invalid_entry_line",
            ),
            (
                vec![line("-100", "0"), line("0", "-100")],
                "invalid_entry_line",
            ),
            (vec![line("100", "100")], "invalid_entry_line"),
            (vec![line("0", "0"), line("0", "0")], "empty_entry"),
            (vec![], "empty_entry"),
        ];
        for (lines, code) in cases {
            let error = check_balanced(&lines, &usd()).unwrap_err();
            assert_eq!(error.code(), code, "{lines:?}");
            assert_eq!(error.class(), FailureClass::Permanent);
        }
    }

    #[test]
    fn document_lines_must_add_up_to_its_total() {
        let lines = [d("127.40"), d("15.00"), d("25.48"), d("-12.74")];
        assert_eq!(check_total(&lines, d("155.14"), &usd()).unwrap(), lines);
        let error = check_total(&lines, d("155.15"), &usd()).unwrap_err();
        assert_eq!(error.code(), "invoice_total_mismatch");
        assert!(error.to_string().contains("155.14"));
        // Rounding happens per line, at the currency's precision, before adding up.
        let thirds = [d("0.333"), d("0.333"), d("0.333")];
        assert_eq!(
            check_total(&thirds, d("0.99"), &usd()).unwrap(),
            vec![d("0.33"); 3]
        );
        assert!(check_total(&thirds, d("1.00"), &usd()).is_err());
    }
}
