//! X12 dates (CCYYMMDD, older YYMMDD), times (HHMM[SS[D..]]) and time codes (element 623),
//! turned into UTC the same way for every segment that carries them.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// Time codes with a fixed offset from UTC, in minutes. The zone-only codes (`ET`, `CT`, `MT`,
/// `PT`) do not say whether daylight saving applied; reading them as standard time keeps the
/// conversion a pure function of the segment. A partner whose guide says otherwise sends the
/// explicit `ED`/`CD`/`MD`/`PD` codes, which are honoured.
const TIME_CODES: [(&str, i32); 14] = [
    ("UT", 0),
    ("GM", 0),
    ("ET", -5 * 60),
    ("ES", -5 * 60),
    ("ED", -4 * 60),
    ("CT", -6 * 60),
    ("CS", -6 * 60),
    ("CD", -5 * 60),
    ("MT", -7 * 60),
    ("MS", -7 * 60),
    ("MD", -6 * 60),
    ("PT", -8 * 60),
    ("PS", -8 * 60),
    ("PD", -7 * 60),
];

/// What a time code says about the clock of the time next to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeCode {
    /// A known offset (`UT`, `PT`, `CD`, …).
    Offset(FixedOffset),
    /// `LT` or no code: the sender's local time, which the segment does not place. It is read
    /// as UTC, because the partner's zone is not known here; the error is bounded by the
    /// partner's offset and the raw code stays visible in the body.
    Local,
    /// A code outside the table: also read as UTC, but reported through the checks.
    Unknown,
}

pub fn time_code(code: &[u8]) -> TimeCode {
    let code = code.trim_ascii();
    if code.is_empty() || code == b"LT" {
        return TimeCode::Local;
    }
    TIME_CODES
        .iter()
        .find(|(name, _)| name.as_bytes() == code)
        .and_then(|(_, minutes)| FixedOffset::east_opt(minutes * 60))
        .map_or(TimeCode::Unknown, TimeCode::Offset)
}

/// CCYYMMDD, or YYMMDD as older versions write it (read as 20YY: invoices and statuses
/// received today are not from the 1900s).
pub fn date(bytes: &[u8]) -> Option<NaiveDate> {
    let bytes = bytes.trim_ascii();
    let (year, rest) = match bytes.len() {
        8 => (number(&bytes[..4])?, &bytes[4..]),
        6 => (2000 + number(&bytes[..2])?, &bytes[2..]),
        _ => return None,
    };
    NaiveDate::from_ymd_opt(
        i32::try_from(year).ok()?,
        number(&rest[..2])?,
        number(&rest[2..4])?,
    )
}

/// HHMM, HHMMSS, or HHMMSS with one or two decimal-second digits (dropped).
pub fn time(bytes: &[u8]) -> Option<NaiveTime> {
    let bytes = bytes.trim_ascii();
    if !matches!(bytes.len(), 4 | 6 | 7 | 8) {
        return None;
    }
    let seconds = if bytes.len() >= 6 {
        number(&bytes[4..6])?
    } else {
        0
    };
    if bytes.len() > 6 {
        number(&bytes[6..])?;
    }
    NaiveTime::from_hms_opt(number(&bytes[..2])?, number(&bytes[2..4])?, seconds)
}

/// A date and time on the clock `code` names, in UTC.
pub fn to_utc(date: NaiveDate, time: NaiveTime, code: TimeCode) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::new(date, time);
    match code {
        TimeCode::Offset(offset) => offset
            .from_local_datetime(&naive)
            .single()
            .map(|at| at.with_timezone(&Utc)),
        TimeCode::Local | TimeCode::Unknown => Some(naive.and_utc()),
    }
}

/// Decimal digits only; `None` for anything else (signs included).
fn number(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || digits.len() > 9 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0')),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_read_both_widths_and_refuse_impossible_days() {
        let cases: [(&str, Option<&str>); 7] = [
            ("20071031", Some("2007-10-31")),
            ("071031", Some("2007-10-31")),
            ("20240229", Some("2024-02-29")),
            ("20230229", None),
            ("2007103", None),
            ("2007-10-3", None),
            ("", None),
        ];
        for (raw, expected) in cases {
            let expected = expected.map(|d| d.parse::<NaiveDate>().unwrap());
            assert_eq!(date(raw.as_bytes()), expected, "{raw:?}");
        }
    }

    #[test]
    fn times_read_minutes_seconds_and_decimal_seconds() {
        let cases: [(&str, Option<&str>); 7] = [
            ("1534", Some("15:34:00")),
            ("153407", Some("15:34:07")),
            ("1534075", Some("15:34:07")),
            ("15340750", Some("15:34:07")),
            ("2400", None),
            ("15:3", None),
            ("153", None),
        ];
        for (raw, expected) in cases {
            let expected = expected.map(|t| t.parse::<NaiveTime>().unwrap());
            assert_eq!(time(raw.as_bytes()), expected, "{raw:?}");
        }
    }

    #[test]
    fn time_codes_convert_to_utc_by_their_table_offset() {
        let date = NaiveDate::from_ymd_opt(2019, 11, 2).unwrap();
        let time = NaiveTime::from_hms_opt(16, 25, 0).unwrap();
        let cases = [
            ("UT", "2019-11-02T16:25:00Z"),
            ("GM", "2019-11-02T16:25:00Z"),
            ("ET", "2019-11-02T21:25:00Z"),
            ("ED", "2019-11-02T20:25:00Z"),
            ("CS", "2019-11-02T22:25:00Z"),
            ("CD", "2019-11-02T21:25:00Z"),
            ("MT", "2019-11-02T23:25:00Z"),
            ("PT", "2019-11-03T00:25:00Z"),
            ("PD", "2019-11-02T23:25:00Z"),
            ("LT", "2019-11-02T16:25:00Z"),
            ("", "2019-11-02T16:25:00Z"),
        ];
        for (code, expected) in cases {
            let at = to_utc(date, time, time_code(code.as_bytes())).unwrap();
            assert_eq!(at.to_rfc3339(), expected.replace('Z', "+00:00"), "{code:?}");
        }
        assert_eq!(time_code(b"ZZ"), TimeCode::Unknown);
        assert_eq!(time_code(b" LT "), TimeCode::Local);
    }
}
