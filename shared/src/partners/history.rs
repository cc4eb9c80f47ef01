//! Scan histories. The aggregators repeat every scan so far in each delivery (EasyPost
//! `tracking_details`, Shippo `tracking_history`, AfterShip `checkpoints`). Each scan becomes
//! one event whose id depends only on the scan, never on the delivery that carried it, so the
//! transform can publish just the scans it has not seen before (`crate::seen`) and a scan that
//! slips through twice is still one event to the poster.

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest as _, Sha256};

use super::{History, Transformed};
use crate::canonical::{CanonicalEvent, Location};

/// Where a shipment's seen scans are remembered: the partner and the tracking number.
pub(super) fn scope(partner: &str, tracking_number: &str) -> String {
    format!("{partner}#{tracking_number}")
}

/// A scan's identity when the partner gives it none: its time, readable, and a short digest of
/// what the scan says. Fields are separated by a byte JSON text cannot contain unescaped, so
/// `("a", "bc")` and `("ab", "c")` differ.
pub(super) fn scan_key(at: DateTime<Utc>, parts: &[Option<&str>]) -> String {
    let mut digest = Sha256::new();
    for part in parts {
        match part {
            Some(text) => {
                digest.update([1]);
                digest.update(text.as_bytes());
            }
            None => digest.update([0]),
        }
        digest.update([0x1f]);
    }
    let digest = hex::encode(digest.finalize());
    format!(
        "{}#{}",
        at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        &digest[..12]
    )
}

/// The parts of a location that identify a scan, for `scan_key`.
pub(super) fn location_parts(location: Option<&Location>) -> [Option<&str>; 4] {
    match location {
        Some(place) => [
            place.city.as_deref(),
            place.state.as_deref(),
            place.country.as_deref(),
            place.postal_code.as_deref(),
        ],
        None => [None; 4],
    }
}

/// The source event id of a scan: the tracking number and the scan's key.
pub(super) fn source_event_id(tracking_number: &str, key: &str) -> String {
    format!("{tracking_number}#{key}")
}

/// Collects one delivery's scan events, oldest first, and the event for the current status when
/// the history does not already say it.
pub(super) struct ScanEvents {
    scope: String,
    scans: Vec<CanonicalEvent>,
}

impl ScanEvents {
    pub(super) fn new(partner: &str, tracking_number: &str) -> Self {
        ScanEvents {
            scope: scope(partner, tracking_number),
            scans: Vec::new(),
        }
    }

    /// Adds a scan's event; a scan listed twice in one delivery counts once.
    pub(super) fn push(&mut self, event: CanonicalEvent) {
        if !self
            .scans
            .iter()
            .any(|seen| seen.event_id == event.event_id)
        {
            self.scans.push(event);
        }
    }

    /// The newest scan's event: the last one pushed, as adapters push scans oldest first.
    pub(super) fn newest_mut(&mut self) -> Option<&mut CanonicalEvent> {
        self.scans.last_mut()
    }

    /// Scan events in the order pushed (oldest first), then `current` (the delivery's own
    /// status event, when the newest scan does not already stand for it). Only the scans are
    /// history: `current` is named after the delivery and is always published.
    pub(super) fn finish(self, current: Option<CanonicalEvent>) -> Transformed {
        let history = if self.scans.is_empty() {
            Vec::new()
        } else {
            vec![History {
                scope: self.scope,
                entries: self.scans.iter().map(|event| event.event_id).collect(),
            }]
        };
        let mut events = self.scans;
        events.extend(current);
        Transformed {
            events,
            rejected: Vec::new(),
            history,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn scan_keys_depend_on_every_part_and_on_where_parts_split() {
        let t = at("2024-08-01T14:42:13Z");
        let base = scan_key(t, &[Some("in_transit"), Some("AR"), None]);
        assert_eq!(base, scan_key(t, &[Some("in_transit"), Some("AR"), None]));
        assert!(base.starts_with("2024-08-01T14:42:13Z#"), "{base}");
        let others = [
            scan_key(
                at("2024-08-01T14:42:14Z"),
                &[Some("in_transit"), Some("AR"), None],
            ),
            scan_key(t, &[Some("in_transit"), Some("DP"), None]),
            scan_key(t, &[Some("in_transit"), Some("AR"), Some("")]),
            scan_key(t, &[Some("in_transitA"), Some("R"), None]),
            scan_key(t, &[Some("in_transit"), Some("AR")]),
        ];
        for other in others {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn scan_key_time_keeps_sub_second_precision_only_when_present() {
        let key = scan_key(at("2020-03-11T07:44:06.473Z"), &[]);
        assert!(key.starts_with("2020-03-11T07:44:06.473Z#"), "{key}");
    }
}
