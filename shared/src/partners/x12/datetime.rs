//! X12 dates (CCYYMMDD, older YYMMDD), times (HHMM[SS[D..]]) and time codes (element 623),
//! turned into UTC the same way for every segment that carries them.

use chrono::{
    DateTime, FixedOffset, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset as _, TimeZone,
    Utc,
};
use chrono_tz::{GapInfo, Tz};

/// Codes that name a clock with a fixed offset from UTC, in minutes: universal time and the
/// explicit standard (`xS`) and daylight (`xD`) codes, which say which one applied. Element 623 as
/// published for 4010 and later releases (stedi.com/edi/x12-004010/element/623); 3020/3030 lack
/// the Alaska, Hawaii-Aleutian and Newfoundland codes, which only adds codes, never changes one.
const FIXED_CODES: [(&str, i32); 16] = [
    ("UT", 0),
    ("GM", 0),
    ("ES", -5 * 60),
    ("ED", -4 * 60),
    ("CS", -6 * 60),
    ("CD", -5 * 60),
    ("MS", -7 * 60),
    ("MD", -6 * 60),
    ("PS", -8 * 60),
    ("PD", -7 * 60),
    ("AS", -9 * 60),
    ("AD", -8 * 60),
    ("HS", -10 * 60),
    ("HD", -9 * 60),
    ("NS", -(3 * 60 + 30)),
    ("ND", -(2 * 60 + 30)),
];

/// Zone-only codes: the wall clock of that zone on that date, daylight saving included when it
/// was in force, so they are read through the zone's IANA rules rather than one offset.
/// Where a zone's places disagree about daylight saving, the zone's main rules are taken; a
/// sender in one of the exceptions has the explicit codes to say so:
/// - `MT` follows Denver, so Arizona's summer times need `MS`;
/// - `HT` follows Honolulu (no daylight saving), so the Aleutians' summer times need `HD`.
const ZONE_CODES: [(&str, Tz); 7] = [
    ("ET", Tz::America__New_York),
    ("CT", Tz::America__Chicago),
    ("MT", Tz::America__Denver),
    ("PT", Tz::America__Los_Angeles),
    ("AT", Tz::America__Anchorage),
    ("HT", Tz::Pacific__Honolulu),
    ("NT", Tz::America__St_Johns),
];

/// What a time code says about the clock of the time next to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeCode {
    /// A known fixed offset (`UT`, `CD`, `PS`, `05` …).
    Offset(FixedOffset),
    /// Local time in a named zone (`ET`, `CT`, `MT`, `PT`, …), daylight saving when it applied.
    Zone(Tz),
    /// `LT` or no code: the sender's local time, which the segment does not place. It is read
    /// in the partner's configured `local_time_zone` (UTC unless set); the raw code stays
    /// visible in the body.
    Local,
    /// A code outside the tables: read as UTC, and reported through the checks.
    Unknown,
}

pub fn time_code(code: &[u8]) -> TimeCode {
    let code = code.trim_ascii();
    if code.is_empty() || code == b"LT" {
        return TimeCode::Local;
    }
    if let Some((_, zone)) = ZONE_CODES.iter().find(|(name, _)| name.as_bytes() == code) {
        return TimeCode::Zone(*zone);
    }
    FIXED_CODES
        .iter()
        .find(|(name, _)| name.as_bytes() == code)
        .map(|(_, minutes)| *minutes)
        .or_else(|| iso_hours(code).map(|hours| hours * 60))
        .and_then(|minutes| FixedOffset::east_opt(minutes * 60))
        .map_or(TimeCode::Unknown, TimeCode::Offset)
}

/// `01`–`12` are ISO 8601 offsets P01–P12 (east of UTC) and `13`–`24` are M12–M01 (west),
/// counting back towards UTC, since X12 cannot write `+`.
fn iso_hours(code: &[u8]) -> Option<i32> {
    if code.len() != 2 {
        return None;
    }
    match i32::try_from(number(code)?).ok()? {
        hours @ 1..=12 => Some(hours),
        code @ 13..=24 => Some(code - 25),
        _ => None,
    }
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

/// A date and time on the clock `code` names, in UTC; `local_zone` is the partner's clock, for
/// `LT` and times without a code.
pub fn to_utc(
    date: NaiveDate,
    time: NaiveTime,
    code: TimeCode,
    local_zone: Tz,
) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::new(date, time);
    match code {
        TimeCode::Offset(offset) => offset
            .from_local_datetime(&naive)
            .single()
            .map(|at| at.with_timezone(&Utc)),
        TimeCode::Zone(zone) => in_zone(naive, zone),
        TimeCode::Local => in_zone(naive, local_zone),
        TimeCode::Unknown => Some(naive.and_utc()),
    }
}

/// A wall-clock time in `zone`. The two times a daylight-saving change makes unclear are
/// decided, not refused: a status is news about a real event, and an hour's doubt is better than
/// losing the event.
fn in_zone(naive: NaiveDateTime, zone: Tz) -> Option<DateTime<Utc>> {
    match zone.from_local_datetime(&naive) {
        LocalResult::Single(at) => Some(at.with_timezone(&Utc)),
        // Clocks went back and this hour happened twice; nothing in the segment says which.
        // The earlier instant is taken (the first occurrence, still on daylight time), as the
        // configured JSON and CSV formats also do.
        LocalResult::Ambiguous(earliest, _) => Some(earliest.with_timezone(&Utc)),
        // Clocks went forward over this time, so no such instant exists. It is most likely
        // written by a clock not yet moved on, so it is read with the offset in force before the
        // gap: the time moves forward by the gap's length (02:30 on a spring-forward night is
        // 03:30 daylight time).
        LocalResult::None => {
            let (_, before) = GapInfo::new(&naive, &zone)?.begin?;
            before
                .fix()
                .from_local_datetime(&naive)
                .single()
                .map(|at| at.with_timezone(&Utc))
        }
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

    /// `local` (`YYYY-MM-DDTHH:MM`) on the clock `code` names, as RFC 3339 UTC.
    fn utc(code: &str, local: &str, local_zone: Tz) -> Option<String> {
        let naive: NaiveDateTime = format!("{local}:00").parse().unwrap();
        to_utc(
            naive.date(),
            naive.time(),
            time_code(code.as_bytes()),
            local_zone,
        )
        .map(|at| at.format("%Y-%m-%dT%H:%MZ").to_string())
    }

    fn check(cases: &[(&str, &str, &str)], local_zone: Tz) {
        for (code, local, expected) in cases {
            assert_eq!(
                utc(code, local, local_zone).as_deref(),
                Some(*expected),
                "{local} {code:?} with local zone {local_zone}"
            );
        }
    }

    #[test]
    fn zone_codes_are_standard_time_in_winter_and_daylight_time_in_summer() {
        check(
            &[
                ("ET", "2024-01-15T10:00", "2024-01-15T15:00Z"),
                ("ET", "2024-07-15T10:00", "2024-07-15T14:00Z"),
                ("CT", "2024-01-15T10:00", "2024-01-15T16:00Z"),
                ("CT", "2024-07-15T10:00", "2024-07-15T15:00Z"),
                ("MT", "2024-01-15T10:00", "2024-01-15T17:00Z"),
                ("MT", "2024-07-15T10:00", "2024-07-15T16:00Z"),
                ("PT", "2024-01-15T10:00", "2024-01-15T18:00Z"),
                ("PT", "2024-07-15T10:00", "2024-07-15T17:00Z"),
                ("AT", "2024-01-15T10:00", "2024-01-15T19:00Z"),
                ("AT", "2024-07-15T10:00", "2024-07-15T18:00Z"),
                // Honolulu keeps standard time all year.
                ("HT", "2024-01-15T10:00", "2024-01-15T20:00Z"),
                ("HT", "2024-07-15T10:00", "2024-07-15T20:00Z"),
                ("NT", "2024-01-15T10:00", "2024-01-15T13:30Z"),
                ("NT", "2024-07-15T10:00", "2024-07-15T12:30Z"),
                // The day's date decides, across midnight UTC too.
                ("PT", "2024-07-15T20:30", "2024-07-16T03:30Z"),
                (" ET ", "2024-07-15T10:00", "2024-07-15T14:00Z"),
            ],
            Tz::UTC,
        );
    }

    #[test]
    fn explicit_codes_keep_their_offset_whatever_the_season() {
        let cases = [
            ("UT", 0, 0),
            ("GM", 0, 0),
            ("ES", -5, 0),
            ("ED", -4, 0),
            ("CS", -6, 0),
            ("CD", -5, 0),
            ("MS", -7, 0),
            ("MD", -6, 0),
            ("PS", -8, 0),
            ("PD", -7, 0),
            ("AS", -9, 0),
            ("AD", -8, 0),
            ("HS", -10, 0),
            ("HD", -9, 0),
            ("NS", -3, -30),
            ("ND", -2, -30),
            ("01", 1, 0),
            ("12", 12, 0),
            ("13", -12, 0),
            ("19", -6, 0),
            ("24", -1, 0),
        ];
        for (code, hours, minutes) in cases {
            let offset = FixedOffset::east_opt((hours * 60 + minutes) * 60).unwrap();
            assert_eq!(
                time_code(code.as_bytes()),
                TimeCode::Offset(offset),
                "{code}"
            );
            for local in ["2024-01-15T10:00", "2024-07-15T10:00"] {
                let naive: NaiveDateTime = format!("{local}:00").parse().unwrap();
                let expected = (naive - offset).format("%Y-%m-%dT%H:%MZ").to_string();
                assert_eq!(
                    utc(code, local, Tz::America__Chicago).as_deref(),
                    Some(expected.as_str()),
                    "{local} {code}"
                );
            }
        }
        check(
            &[
                ("ED", "2024-01-15T10:00", "2024-01-15T14:00Z"),
                ("ES", "2024-07-15T10:00", "2024-07-15T15:00Z"),
            ],
            Tz::UTC,
        );
    }

    #[test]
    fn the_repeated_hour_when_clocks_go_back_is_its_first_occurrence() {
        // 2024-11-03: US clocks go back from 02:00 daylight to 01:00 standard time.
        check(
            &[
                ("ET", "2024-11-03T00:59", "2024-11-03T04:59Z"),
                ("ET", "2024-11-03T01:00", "2024-11-03T05:00Z"),
                ("ET", "2024-11-03T01:30", "2024-11-03T05:30Z"),
                ("ET", "2024-11-03T02:00", "2024-11-03T07:00Z"),
                ("CT", "2024-11-03T01:30", "2024-11-03T06:30Z"),
                ("MT", "2024-11-03T01:30", "2024-11-03T07:30Z"),
                ("PT", "2024-11-03T01:30", "2024-11-03T08:30Z"),
                ("LT", "2024-11-03T01:30", "2024-11-03T06:30Z"),
            ],
            Tz::America__Chicago,
        );
    }

    #[test]
    fn a_time_skipped_when_clocks_go_forward_moves_forward_by_the_gap() {
        // 2024-03-10: US clocks go forward from 02:00 standard to 03:00 daylight time, so
        // 02:30 is read as 03:30 daylight time.
        check(
            &[
                ("ET", "2024-03-10T01:59", "2024-03-10T06:59Z"),
                ("ET", "2024-03-10T02:00", "2024-03-10T07:00Z"),
                ("ET", "2024-03-10T02:30", "2024-03-10T07:30Z"),
                ("ET", "2024-03-10T03:00", "2024-03-10T07:00Z"),
                ("ET", "2024-03-10T03:30", "2024-03-10T07:30Z"),
                ("CT", "2024-03-10T02:30", "2024-03-10T08:30Z"),
                ("MT", "2024-03-10T02:30", "2024-03-10T09:30Z"),
                ("PT", "2024-03-10T02:30", "2024-03-10T10:30Z"),
                ("NT", "2024-03-10T02:30", "2024-03-10T06:00Z"),
                ("", "2024-03-10T02:30", "2024-03-10T08:30Z"),
            ],
            Tz::America__Chicago,
        );
    }

    #[test]
    fn local_time_is_read_in_the_partners_zone_and_utc_by_default() {
        let cases = [
            ("LT", Tz::UTC, "2024-07-15T10:00Z"),
            ("", Tz::UTC, "2024-07-15T10:00Z"),
            ("LT", Tz::America__Chicago, "2024-07-15T15:00Z"),
            ("", Tz::America__Chicago, "2024-07-15T15:00Z"),
            (" LT ", Tz::Europe__Paris, "2024-07-15T08:00Z"),
            // An unknown code is not the partner's clock either: UTC, with a check raised.
            ("ZZ", Tz::America__Chicago, "2024-07-15T10:00Z"),
            // A zone code names its own clock, not the partner's.
            ("PT", Tz::America__Chicago, "2024-07-15T17:00Z"),
        ];
        for (code, zone, expected) in cases {
            check(&[(code, "2024-07-15T10:00", expected)], zone);
        }
        check(
            &[("LT", "2024-01-15T10:00", "2024-01-15T16:00Z")],
            Tz::America__Chicago,
        );
    }

    #[test]
    fn codes_outside_element_623_are_unknown() {
        for code in ["ZZ", "00", "25", "99", "1", "E", "ETX", "et", "+5"] {
            assert_eq!(time_code(code.as_bytes()), TimeCode::Unknown, "{code:?}");
        }
        for code in ["", "  ", "LT", " LT "] {
            assert_eq!(time_code(code.as_bytes()), TimeCode::Local, "{code:?}");
        }
    }
}
