//! X12 envelopes: ISA/IEA interchanges holding GS/GE functional groups holding ST/SE
//! transaction sets. Nesting errors are always malformed; control counts and numbers that
//! disagree go through [`Checks`], so a lenient partner's quirks become warnings.

use super::tokenizer::{Interchange, Segment};
use super::{Checks, malformed};
use crate::partners::PartnerError;

/// An interchange's identity, as ISA06 and ISA13 give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterchangeId {
    /// ISA06 without its padding.
    pub sender: String,
    /// ISA13.
    pub control: String,
}

/// One transaction set and where it sits.
#[derive(Debug)]
pub struct TransactionSet<'t, 'a> {
    /// ISA06/ISA13 of the enclosing interchange.
    pub interchange_id: InterchangeId,
    /// The enclosing GS segment.
    pub group: &'t Segment<'a>,
    /// ST01, e.g. `214`.
    pub kind: String,
    /// ST02.
    pub control: String,
    /// ST through SE inclusive.
    pub segments: &'t [Segment<'a>],
}

impl<'t, 'a> TransactionSet<'t, 'a> {
    /// GS01: `QM` for 214, `IM` (or `IN`) for 210.
    pub fn functional_id(&self) -> Option<String> {
        self.group.text(1)
    }

    /// GS06.
    pub fn group_control(&self) -> String {
        self.group.text(6).unwrap_or_default()
    }

    /// The segments between ST and SE.
    pub fn body(&self) -> &'t [Segment<'a>] {
        let inner = self.segments.len().saturating_sub(1);
        self.segments.get(1..inner).unwrap_or_default()
    }

    /// Position of the ST segment in the body.
    pub fn position(&self) -> usize {
        self.segments.first().map_or(0, |st| st.position)
    }
}

/// Every interchange's identity and every transaction set, in body order.
#[derive(Debug)]
pub struct Envelopes<'t, 'a> {
    pub interchanges: Vec<InterchangeId>,
    pub sets: Vec<TransactionSet<'t, 'a>>,
}

/// Reads the envelope structure of tokenized interchanges and checks its control values.
pub fn read<'t, 'a>(
    tokens: &'t [Interchange<'a>],
    checks: &mut Checks,
) -> Result<Envelopes<'t, 'a>, PartnerError> {
    let interchanges: Vec<InterchangeId> = tokens
        .iter()
        .map(|interchange| {
            let isa = &interchange.segments[0];
            InterchangeId {
                sender: isa.text(6).unwrap_or_default(),
                control: isa.text(13).unwrap_or_default(),
            }
        })
        .collect();
    let mut sets = Vec::new();
    for (interchange, id) in tokens.iter().zip(&interchanges) {
        read_interchange(interchange, id, checks, &mut sets)?;
    }
    Ok(Envelopes { interchanges, sets })
}

fn read_interchange<'t, 'a>(
    interchange: &'t Interchange<'a>,
    id: &InterchangeId,
    checks: &mut Checks,
    sets: &mut Vec<TransactionSet<'t, 'a>>,
) -> Result<(), PartnerError> {
    let segments = &interchange.segments;
    let isa = &segments[0];
    if id.control.is_empty() {
        return Err(malformed(format!(
            "ISA13 (interchange control number) is empty at segment {}",
            isa.position
        )));
    }
    let mut groups = 0usize;
    let mut group: Option<(&'t Segment<'a>, usize)> = None;
    let mut set_start: Option<usize> = None;

    // The last segment is the IEA (the tokenizer ends an interchange there).
    let last = segments.len() - 1;
    for (at, segment) in segments.iter().enumerate().take(last).skip(1) {
        let id_bytes = segment.id();
        match id_bytes {
            b"GS" if group.is_none() => group = Some((segment, 0)),
            b"ST" if group.is_some() && set_start.is_none() => set_start = Some(at),
            b"SE" if set_start.is_some() => {
                let start = set_start.take().unwrap_or(at);
                let set = &segments[start..=at];
                check_set(set, checks)?;
                if let Some((gs, count)) = group.as_mut() {
                    *count += 1;
                    let st = &set[0];
                    sets.push(TransactionSet {
                        interchange_id: id.clone(),
                        group: gs,
                        kind: st.text(1).unwrap_or_default(),
                        control: st.text(2).unwrap_or_default(),
                        segments: set,
                    });
                }
            }
            b"GE" if set_start.is_some() => return Err(missing_trailer(segment, "group", "SE")),
            b"GE" => {
                let Some((gs, count)) = group.take() else {
                    return Err(out_of_place(segment));
                };
                check_group(gs, segment, count, checks)?;
                groups += 1;
            }
            // Interchange acknowledgments may sit between groups; they carry no events.
            b"TA1" if group.is_none() => {}
            b"GS" | b"ST" => return Err(out_of_place(segment)),
            // Inside a set, every other segment is the set's business.
            _ if set_start.is_some() => {}
            _ => return Err(out_of_place(segment)),
        }
    }
    let iea = &segments[last];
    if set_start.is_some() {
        return Err(missing_trailer(iea, "interchange", "SE"));
    }
    if group.is_some() {
        return Err(missing_trailer(iea, "interchange", "GE"));
    }
    if !count_matches(iea.element(1), groups) {
        checks.failed(
            "IEA01",
            format!(
                "IEA01 at segment {} does not match the interchange's {groups} functional group(s)",
                iea.position
            ),
        )?;
    }
    if !same_control(iea.element(2), isa.element(13)) {
        checks.failed(
            "IEA02",
            format!(
                "IEA02 at segment {} does not match ISA13 at segment {}",
                iea.position, isa.position
            ),
        )?;
    }
    Ok(())
}

fn check_set(set: &[Segment<'_>], checks: &mut Checks) -> Result<(), PartnerError> {
    let (Some(st), Some(se)) = (set.first(), set.last()) else {
        return Ok(());
    };
    if st.text(1).is_none() || st.text(2).is_none() {
        return Err(malformed(format!(
            "ST at segment {} lacks ST01 or ST02",
            st.position
        )));
    }
    if !count_matches(se.element(1), set.len()) {
        checks.failed(
            "SE01",
            format!(
                "SE01 at segment {} does not match the set's {} segments (ST to SE)",
                se.position,
                set.len()
            ),
        )?;
    }
    if !same_control(se.element(2), st.element(2)) {
        checks.failed(
            "SE02",
            format!(
                "SE02 at segment {} does not match ST02 at segment {}",
                se.position, st.position
            ),
        )?;
    }
    Ok(())
}

fn check_group(
    gs: &Segment<'_>,
    ge: &Segment<'_>,
    sets: usize,
    checks: &mut Checks,
) -> Result<(), PartnerError> {
    if !count_matches(ge.element(1), sets) {
        checks.failed(
            "GE01",
            format!(
                "GE01 at segment {} does not match the group's {sets} transaction set(s)",
                ge.position
            ),
        )?;
    }
    if !same_control(ge.element(2), gs.element(6)) {
        checks.failed(
            "GE02",
            format!(
                "GE02 at segment {} does not match GS06 at segment {}",
                ge.position, gs.position
            ),
        )?;
    }
    Ok(())
}

/// A count element (`SE01`, `GE01`, `IEA01`) equals `actual`. Zero padding is allowed
/// (`0000000013`); anything that is not a plain number is a mismatch.
fn count_matches(element: &[u8], actual: usize) -> bool {
    parse_count(element.trim_ascii()) == Some(actual)
}

fn parse_count(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0usize, |n, d| {
        n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
    })
}

/// Control numbers agree. Numeric ones compare as numbers, because senders pad them to
/// different widths (`GS06 1644` against `GE02 000001644`); others compare as text.
fn same_control(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (a.trim_ascii(), b.trim_ascii());
    if a.is_empty() || b.is_empty() {
        return false;
    }
    match (parse_count(a), parse_count(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

fn out_of_place(segment: &Segment<'_>) -> PartnerError {
    malformed(format!(
        "segment {} ({}) is out of place in the X12 envelope",
        segment.position,
        segment_name(segment)
    ))
}

fn missing_trailer(segment: &Segment<'_>, closes: &str, trailer: &str) -> PartnerError {
    malformed(format!(
        "segment {} ({}) closes the {closes} before its {trailer} trailer",
        segment.position,
        segment_name(segment)
    ))
}

/// The segment id for messages; ids passed the tokenizer's check, so they are safe to print.
pub fn segment_name(segment: &Segment<'_>) -> String {
    String::from_utf8_lossy(segment.id()).into_owned()
}
