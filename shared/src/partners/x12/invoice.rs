//! X12 210 (motor carrier freight invoice): one `freight_invoice.received` per set, from B3
//! (number, dates, total), C3 (currency), N1 (parties), N9/L11 (references) and one charge
//! line per L1, with the L1 sum checked against L3 and B3.

use std::collections::HashSet;

use chrono::NaiveTime;
use rust_decimal::Decimal;

use super::envelope::TransactionSet;
use super::tokenizer::Segment;
use super::{
    Checks, Draft, Options, currency_code, datetime, malformed, shipment_reference, source_event_id,
};
use crate::canonical::{
    ChargeKind, ChargeLine, EventBody, Invoice, InvoiceReceived, Party, Reference, ShipmentRef,
    Weight, WeightUnit,
};
use crate::partners::PartnerError;

/// L108 codes (X12 element 150) whose kind holds for every partner: `400` freight, `FUE` and
/// `405` fuel surcharge, `TAX`. Everything else is a partner's own usage and belongs in its
/// `charge_codes` option; see [`Options::charge_kind`] for lines left unclassed.
pub const DEFAULT_CHARGE_CODES: [(&str, ChargeKind); 4] = [
    ("400", ChargeKind::BaseFreight),
    ("FUE", ChargeKind::FuelSurcharge),
    ("405", ChargeKind::FuelSurcharge),
    ("TAX", ChargeKind::Tax),
];

/// B310 qualifier saying B309 is the delivery date.
const DELIVERED_QUALIFIER: &str = "035";

/// Reference qualifier given to B303, the shipment id (bill of lading or PRO).
const SHIPMENT_ID_QUALIFIER: &str = "BM";

pub(super) fn read(
    set: &TransactionSet<'_, '_>,
    position: u32,
    options: &Options,
    checks: &mut Checks,
) -> Result<Draft, PartnerError> {
    let body = set.body();
    let b3 = body.iter().find(|s| s.is("B3")).ok_or_else(|| {
        malformed(format!(
            "210 set at segment {} has no B3 segment",
            set.position()
        ))
    })?;
    let number = b3.text(2).ok_or_else(|| {
        malformed(format!(
            "B302 (invoice number) is empty at segment {}",
            b3.position
        ))
    })?;
    let issued_on = datetime::date(b3.element(6)).ok_or_else(|| {
        malformed(format!(
            "B306 at segment {} is not a CCYYMMDD or YYMMDD date",
            b3.position
        ))
    })?;
    let total = implied_cents(b3.element(7)).ok_or_else(|| not_an_amount("B307", b3))?;
    let delivered_on = match (b3.text(10).as_deref(), b3.text(9)) {
        (Some(DELIVERED_QUALIFIER), Some(_)) => {
            Some(datetime::date(b3.element(9)).ok_or_else(|| {
                malformed(format!(
                    "B309 at segment {} is not a CCYYMMDD or YYMMDD date",
                    b3.position
                ))
            })?)
        }
        _ => None,
    };
    // Without B311 the interchange sender is the best name for the carrier we have.
    let carrier = b3
        .text(11)
        .or_else(|| Some(set.interchange_id.sender.clone()).filter(|s| !s.is_empty()));
    let currency = match body.iter().find(|s| s.is("C3")) {
        Some(c3) if c3.text(1).is_some() => currency_code(c3.element(1)).ok_or_else(|| {
            malformed(format!(
                "C301 at segment {} is not a three-letter currency code",
                c3.position
            ))
        })?,
        _ => options.default_currency.clone(),
    };

    let references = references(b3, body);
    let parties = parties(body);
    let weight = weight(b3, body, checks)?;
    let lines = charge_lines(body, options, checks)?;
    check_totals(set, b3, body, total, &lines, checks)?;

    let tracking_number = tracking_number(b3, body).unwrap_or_else(|| number.clone());
    let pairs: Vec<(String, String)> = references
        .iter()
        .map(|r| (r.qualifier.clone(), r.value.clone()))
        .collect();
    let reference = shipment_reference(&pairs, &tracking_number);
    Ok(Draft {
        source_event_id: source_event_id(set),
        position,
        // An invoice happens on its date; B306 has no time, so the day starts it.
        occurred_at: issued_on.and_time(NaiveTime::MIN).and_utc(),
        shipment: ShipmentRef {
            tracking_number,
            carrier,
            reference,
        },
        body: EventBody::InvoiceReceived(InvoiceReceived {
            invoice: Invoice {
                number,
                issued_on,
                currency,
                total,
                lines,
                references,
                parties,
                delivered_on,
                weight,
            },
        }),
    })
}

/// Every N1 (N101 role, N102 name, N104 id) with the postal code and country of the N4 in its
/// loop (N403, N404); the street (N3) is not kept.
fn parties(body: &[Segment<'_>]) -> Vec<Party> {
    body.iter()
        .enumerate()
        .filter(|(_, s)| s.is("N1"))
        .filter_map(|(at, n1)| {
            let n4 = body[at + 1..]
                .iter()
                .take_while(|s| {
                    ["N2", "N3", "N4", "N9", "G61", "PER"]
                        .iter()
                        .any(|id| s.is(id))
                })
                .find(|s| s.is("N4"));
            Some(Party {
                role: n1.text(1)?,
                name: n1.text(2),
                id: n1.text(4),
                postal_code: n4.and_then(|n4| n4.text(3)),
                country: n4.and_then(|n4| n4.text(4)),
            })
        })
        .collect()
}

/// L301, the billed weight, in the unit L312 names or else B305 (`K` kilograms, `L` pounds).
/// A weight without a known unit is left out, as is one that is not a number (a failed check).
fn weight(
    b3: &Segment<'_>,
    body: &[Segment<'_>],
    checks: &mut Checks,
) -> Result<Option<Weight>, PartnerError> {
    let Some(l3) = body.iter().find(|s| s.is("L3")) else {
        return Ok(None);
    };
    let Some(text) = l3.text(1) else {
        return Ok(None);
    };
    let unit = match l3.text(12).or_else(|| b3.text(5)).as_deref() {
        Some("K") => WeightUnit::Kg,
        Some("L") => WeightUnit::Lb,
        _ => return Ok(None),
    };
    match text.trim().parse::<Decimal>() {
        Ok(value) if value >= Decimal::ZERO => Ok(Some(Weight { value, unit })),
        _ => {
            checks.failed(
                "L301",
                format!(
                    "L301 at segment {} is not a weight; the invoice is read without one",
                    l3.position
                ),
            )?;
            Ok(None)
        }
    }
}

/// B303, the shipment the invoice bills. UPS leaves it empty on invoices covering many parcels;
/// then a bill of lading or carrier reference given before the first LX (so for the whole
/// invoice, not one line) stands in, and failing that the caller uses the invoice number.
fn tracking_number(b3: &Segment<'_>, body: &[Segment<'_>]) -> Option<String> {
    b3.text(3).or_else(|| {
        body.iter()
            .take_while(|s| !s.is("LX"))
            .filter_map(qualified_reference)
            .find(|r| r.qualifier == "BM" || r.qualifier == "CN")
            .map(|r| r.value)
    })
}

/// B303 as a bill of lading, then every N9 and L11 in order, each distinct pair once.
fn references(b3: &Segment<'_>, body: &[Segment<'_>]) -> Vec<Reference> {
    let shipment_id = b3.text(3).map(|value| Reference {
        qualifier: SHIPMENT_ID_QUALIFIER.to_owned(),
        value,
    });
    // A set so that a body of thousands of N9s costs linear time, not quadratic.
    let mut seen = HashSet::new();
    shipment_id
        .into_iter()
        .chain(body.iter().filter_map(qualified_reference))
        .filter(|r| seen.insert((r.qualifier.clone(), r.value.clone())))
        .collect()
}

/// N901 qualifier and N902 value, or L1102 qualifier and L1101 value.
fn qualified_reference(segment: &Segment<'_>) -> Option<Reference> {
    let (qualifier, value) = match segment.id() {
        b"N9" => (segment.text(1)?, segment.text(2)?),
        b"L11" => (segment.text(2)?, segment.text(1)?),
        _ => return None,
    };
    Some(Reference { qualifier, value })
}

fn charge_lines(
    body: &[Segment<'_>],
    options: &Options,
    checks: &mut Checks,
) -> Result<Vec<ChargeLine>, PartnerError> {
    let mut lines = Vec::new();
    for l1 in body.iter().filter(|s| s.is("L1")) {
        if l1.text(4).is_none() {
            checks.failed(
                "L104",
                format!(
                    "L1 at segment {} has no charge (L104); the line is left out",
                    l1.position
                ),
            )?;
            continue;
        }
        let amount = implied_cents(l1.element(4)).ok_or_else(|| not_an_amount("L104", l1))?;
        let code = l1.text(8);
        lines.push(ChargeLine {
            kind: options.charge_kind(code.as_deref(), amount),
            code,
            description: l1.text(12),
            amount,
        });
    }
    Ok(lines)
}

/// ΣL104 = L305 and L305 = B307; without an L3, ΣL104 = B307.
fn check_totals(
    set: &TransactionSet<'_, '_>,
    b3: &Segment<'_>,
    body: &[Segment<'_>],
    total: Decimal,
    lines: &[ChargeLine],
    checks: &mut Checks,
) -> Result<(), PartnerError> {
    let sum = lines
        .iter()
        .try_fold(Decimal::ZERO, |sum, line| sum.checked_add(line.amount))
        .ok_or_else(|| {
            malformed(format!(
                "the L104 charges of the set at segment {} overflow",
                set.position()
            ))
        })?;
    let l3 = body.iter().find(|s| s.is("L3"));
    let stated = match l3 {
        Some(l3) if l3.text(5).is_some() => Some((
            l3,
            implied_cents(l3.element(5)).ok_or_else(|| not_an_amount("L305", l3))?,
        )),
        _ => None,
    };
    match stated {
        Some((l3, l305)) => {
            if sum != l305 {
                checks.failed(
                    "L305",
                    format!(
                        "the L104 charges do not add up to L305 at segment {}",
                        l3.position
                    ),
                )?;
            }
            if l305 != total {
                checks.failed(
                    "B307",
                    format!(
                        "L305 at segment {} differs from B307 at segment {}",
                        l3.position, b3.position
                    ),
                )?;
            }
        }
        None if !lines.is_empty() && sum != total => checks.failed(
            "B307",
            format!(
                "the L104 charges do not add up to B307 at segment {}",
                b3.position
            ),
        )?,
        None => {}
    }
    Ok(())
}

/// An X12 `N2` amount: digits with two implied decimals, optionally negative (`-1274` is
/// -12.74). At most 18 digits, so it always fits and a sum of body-many lines cannot overflow
/// before the checked addition says so.
pub(super) fn implied_cents(raw: &[u8]) -> Option<Decimal> {
    let raw = raw.trim_ascii();
    let (negative, digits) = match raw.strip_prefix(b"-") {
        Some(digits) => (true, digits),
        None => (false, raw),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let cents = digits
        .iter()
        .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
    Some(Decimal::new(if negative { -cents } else { cents }, 2))
}

fn not_an_amount(element: &str, segment: &Segment<'_>) -> PartnerError {
    malformed(format!(
        "{element} at segment {} is not an amount with two implied decimals",
        segment.position
    ))
}
