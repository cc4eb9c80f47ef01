//! The event bus on EventBridge. PutEvents can accept a request yet refuse some of its entries
//! (`FailedEntryCount`); those entries, and only those, are sent again a few times before the
//! publish fails, so an event is never silently dropped and accepted ones are not duplicated.

use std::collections::BTreeMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::ProvideErrorMetadata;
use aws_sdk_eventbridge::types::{PutEventsRequestEntry, PutEventsResultEntry};

use super::render_error;
use crate::bus::{BusError, BusEvent, EventBus};

/// PutEvents takes at most this many entries per request.
pub const MAX_ENTRIES_PER_REQUEST: usize = 10;
/// The largest entry, and the largest request, EventBridge accepts (bytes, as it counts them).
pub const MAX_ENTRY_BYTES: usize = 256 * 1024;
/// Attempts for refused entries, the first send included.
pub const MAX_ATTEMPTS: u32 = 3;
const BACKOFF_BASE: Duration = Duration::from_millis(50);

#[derive(Debug, Clone)]
pub struct EventBridgeBus {
    client: Client,
    bus_name: String,
}

impl EventBridgeBus {
    pub fn new(client: Client, bus_name: impl Into<String>) -> Self {
        Self {
            client,
            bus_name: bus_name.into(),
        }
    }

    pub fn from_config(config: &aws_config::SdkConfig, bus_name: impl Into<String>) -> Self {
        Self::new(Client::new(config), bus_name)
    }

    pub fn bus_name(&self) -> &str {
        &self.bus_name
    }

    fn entry(&self, event: &BusEvent) -> PutEventsRequestEntry {
        PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus_name)
            .source(&event.source)
            .detail_type(&event.detail_type)
            .detail(&event.detail)
            .build()
    }

    /// One PutEvents call; returns the refused entries (index in `entries`, error code).
    async fn put_events(
        &self,
        entries: Vec<PutEventsRequestEntry>,
    ) -> Result<Vec<(usize, String)>, BusError> {
        let sent = entries.len();
        let output = self
            .client
            .put_events()
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|err| {
                let text = format!("PutEvents to bus {}: {}", self.bus_name, render_error(&err));
                if err.code() == Some("ValidationException") {
                    BusError::Invalid(text)
                } else {
                    BusError::Unavailable(text)
                }
            })?;
        Ok(refused_entries(
            sent,
            output.failed_entry_count(),
            output.entries(),
        ))
    }
}

impl EventBus for EventBridgeBus {
    async fn publish(&self, events: &[BusEvent]) -> Result<(), BusError> {
        for event in events {
            validate(event)?;
        }
        let mut refused = 0;
        let mut codes: BTreeMap<String, usize> = BTreeMap::new();
        // Every chunk is tried even after one is refused: the caller will retry the whole
        // publish anyway, and consumers are idempotent, so more progress now is better.
        for chunk in chunks(events) {
            let entries = chunk.iter().map(|e| self.entry(e)).collect();
            let left = send_with_retries(entries, |batch| self.put_events(batch)).await?;
            refused += left.len();
            for code in left {
                *codes.entry(code).or_default() += 1;
            }
        }
        if refused == 0 {
            return Ok(());
        }
        let reasons = codes
            .iter()
            .map(|(code, n)| format!("{code} x{n}"))
            .collect::<Vec<_>>()
            .join(", ");
        tracing::warn!(
            bus = %self.bus_name,
            refused,
            total = events.len(),
            %reasons,
            "EventBridge refused entries after retries"
        );
        Err(BusError::Rejected {
            failed: refused,
            total: events.len(),
            reasons,
        })
    }
}

/// The size EventBridge charges an entry: the UTF-8 bytes of source, detail-type and detail
/// (no time or resources are set here).
pub fn entry_size(event: &BusEvent) -> usize {
    event.source.len() + event.detail_type.len() + event.detail.len()
}

/// Refuse before sending what EventBridge can never accept.
fn validate(event: &BusEvent) -> Result<(), BusError> {
    if event.source.is_empty() || event.detail_type.is_empty() {
        return Err(BusError::Invalid(
            "event needs a source and a detail-type".into(),
        ));
    }
    let size = entry_size(event);
    if size > MAX_ENTRY_BYTES {
        return Err(BusError::Invalid(format!(
            "{} event is {size} bytes; EventBridge accepts at most {MAX_ENTRY_BYTES}",
            event.detail_type
        )));
    }
    match serde_json::from_str::<serde_json::Value>(&event.detail) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        _ => Err(BusError::Invalid(format!(
            "{} event detail is not a JSON object",
            event.detail_type
        ))),
    }
}

/// Split events into PutEvents requests: at most ten entries and at most `MAX_ENTRY_BYTES` in
/// all per request. Every event must already fit on its own.
pub fn chunks(events: &[BusEvent]) -> Vec<&[BusEvent]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, event) in events.iter().enumerate() {
        let size = entry_size(event);
        let count = i - start;
        if count > 0 && (count == MAX_ENTRIES_PER_REQUEST || bytes + size > MAX_ENTRY_BYTES) {
            out.push(&events[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < events.len() {
        out.push(&events[start..]);
    }
    out
}

/// Which of `sent` entries were refused, by index, with their error codes. A non-zero
/// `failed_entry_count` is believed even if the per-entry results do not say which entries
/// failed: then every entry without a confirmed event id counts as refused.
pub fn refused_entries(
    sent: usize,
    failed_entry_count: i32,
    results: &[PutEventsResultEntry],
) -> Vec<(usize, String)> {
    let mut refused: Vec<(usize, String)> = (0..sent)
        .filter_map(|i| match results.get(i) {
            Some(r) => r.error_code().map(|code| (i, code.to_owned())),
            None => Some((i, "MissingResult".to_owned())),
        })
        .collect();
    if failed_entry_count > 0 && refused.is_empty() {
        refused = (0..sent)
            .filter(|&i| results.get(i).and_then(|r| r.event_id()).is_none())
            .map(|i| (i, "Unreported".to_owned()))
            .collect();
        if refused.is_empty() {
            // Every entry has an id yet the count says otherwise: resend all rather than lose one.
            refused = (0..sent).map(|i| (i, "Unreported".to_owned())).collect();
        }
    }
    refused
}

/// Send `entries`, then resend only the refused ones, up to `MAX_ATTEMPTS` sends in all.
/// Returns the error codes of entries still refused at the end; a failed request (no per-entry
/// answer) ends it at once with that error (the SDK has already retried it).
async fn send_with_retries<T, F, Fut>(entries: Vec<T>, mut send: F) -> Result<Vec<String>, BusError>
where
    T: Clone,
    F: FnMut(Vec<T>) -> Fut,
    Fut: Future<Output = Result<Vec<(usize, String)>, BusError>>,
{
    let mut pending: Vec<usize> = (0..entries.len()).collect();
    let mut codes = Vec::new();
    for attempt in 0..MAX_ATTEMPTS {
        if pending.is_empty() {
            break;
        }
        if attempt > 0 {
            tokio::time::sleep(backoff(attempt)).await;
        }
        let batch = pending.iter().map(|&i| entries[i].clone()).collect();
        let refused = send(batch).await?;
        let mut still = Vec::with_capacity(refused.len());
        codes.clear();
        for (j, code) in refused {
            if let Some(&original) = pending.get(j) {
                still.push(original);
                codes.push(code);
            }
        }
        pending = still;
    }
    Ok(codes)
}

/// Exponential backoff with jitter in [half, full], so concurrent publishers do not resend in
/// step. The hasher's per-process random keys are randomness enough for this.
fn backoff(attempt: u32) -> Duration {
    let full = BACKOFF_BASE * 2u32.saturating_pow(attempt.saturating_sub(1));
    let half = full / 2;
    let spread = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
    let random = RandomState::new().hash_one(attempt);
    half + Duration::from_micros(random % spread)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn event(detail_bytes: usize) -> BusEvent {
        let filler = "x".repeat(detail_bytes.saturating_sub(8));
        BusEvent {
            source: "s".into(),
            detail_type: "t".into(),
            detail: format!(r#"{{"f":"{filler}"}}"#),
        }
    }

    fn ok_entry() -> PutEventsResultEntry {
        PutEventsResultEntry::builder().event_id("id").build()
    }

    fn failed_entry(code: &str) -> PutEventsResultEntry {
        PutEventsResultEntry::builder().error_code(code).build()
    }

    #[test]
    fn chunks_hold_at_most_ten_entries() {
        let events: Vec<BusEvent> = (0..25).map(|_| event(100)).collect();
        let sizes: Vec<usize> = chunks(&events).iter().map(|c| c.len()).collect();
        assert_eq!(sizes, vec![10, 10, 5]);
        assert!(chunks(&[]).is_empty());
    }

    #[test]
    fn chunks_keep_each_request_under_the_size_limit() {
        let big = MAX_ENTRY_BYTES / 3;
        let events: Vec<BusEvent> = (0..5).map(|_| event(big)).collect();
        let parts = chunks(&events);
        assert_eq!(
            parts.iter().map(|c| c.len()).collect::<Vec<_>>(),
            vec![2, 2, 1]
        );
        for part in parts {
            assert!(part.iter().map(entry_size).sum::<usize>() <= MAX_ENTRY_BYTES);
        }
    }

    #[test]
    fn events_eventbridge_would_never_accept_are_invalid_before_sending() {
        let too_big = event(MAX_ENTRY_BYTES + 1);
        let not_object = BusEvent {
            detail: "[1,2]".into(),
            ..event(10)
        };
        let not_json = BusEvent {
            detail: "{".into(),
            ..event(10)
        };
        let no_source = BusEvent {
            source: String::new(),
            ..event(10)
        };
        for bad in [too_big, not_object, not_json, no_source] {
            assert!(matches!(validate(&bad), Err(BusError::Invalid(_))));
        }
        assert!(validate(&event(MAX_ENTRY_BYTES - 2)).is_ok());
    }

    #[test]
    fn refused_entries_are_found_by_index() {
        let results = [
            ok_entry(),
            failed_entry("ThrottlingException"),
            ok_entry(),
            failed_entry("InternalFailure"),
        ];
        assert_eq!(
            refused_entries(4, 2, &results),
            vec![
                (1, "ThrottlingException".to_owned()),
                (3, "InternalFailure".to_owned())
            ]
        );
        assert!(
            refused_entries(4, 0, &[ok_entry(), ok_entry(), ok_entry(), ok_entry()]).is_empty()
        );
    }

    #[test]
    fn a_failed_count_is_never_ignored_even_without_entry_errors() {
        let no_id = PutEventsResultEntry::builder().build();
        assert_eq!(
            refused_entries(2, 1, &[ok_entry(), no_id]),
            vec![(1, "Unreported".to_owned())]
        );
        assert_eq!(refused_entries(2, 1, &[ok_entry(), ok_entry()]).len(), 2);
        assert_eq!(
            refused_entries(3, 0, &[ok_entry()]),
            vec![
                (1, "MissingResult".to_owned()),
                (2, "MissingResult".to_owned())
            ]
        );
    }

    /// Refuses the listed entries (by value) on the given attempts; records what was sent.
    struct FlakyBus {
        refuse: Vec<(u32, &'static str)>,
        sent: Mutex<Vec<Vec<&'static str>>>,
    }

    impl FlakyBus {
        async fn send(&self, batch: Vec<&'static str>) -> Result<Vec<(usize, String)>, BusError> {
            let attempt = {
                let mut sent = self.sent.lock().unwrap();
                sent.push(batch.clone());
                u32::try_from(sent.len()).unwrap()
            };
            Ok(batch
                .iter()
                .enumerate()
                .filter(|(_, e)| self.refuse.contains(&(attempt, **e)))
                .map(|(i, _)| (i, format!("Code{attempt}")))
                .collect())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn only_refused_entries_are_resent() {
        let bus = FlakyBus {
            refuse: vec![(1, "b"), (1, "d"), (2, "d")],
            sent: Mutex::default(),
        };
        let left = send_with_retries(vec!["a", "b", "c", "d"], |b| bus.send(b))
            .await
            .unwrap();
        assert!(left.is_empty());
        assert_eq!(
            *bus.sent.lock().unwrap(),
            vec![vec!["a", "b", "c", "d"], vec!["b", "d"], vec!["d"]]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn entries_still_refused_after_the_last_attempt_are_reported_with_their_codes() {
        let bus = FlakyBus {
            refuse: vec![(1, "a"), (1, "b"), (2, "b"), (3, "b")],
            sent: Mutex::default(),
        };
        let left = send_with_retries(vec!["a", "b", "c"], |b| bus.send(b))
            .await
            .unwrap();
        assert_eq!(left, vec!["Code3".to_owned()]);
        assert_eq!(bus.sent.lock().unwrap().len(), MAX_ATTEMPTS as usize);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_request_ends_the_publish_with_its_error() {
        let calls = Mutex::new(0);
        let result = send_with_retries(vec!["a"], |_| {
            *calls.lock().unwrap() += 1;
            async { Err::<Vec<(usize, String)>, _>(BusError::Unavailable("down".into())) }
        })
        .await;
        assert!(matches!(result, Err(BusError::Unavailable(_))));
        assert_eq!(*calls.lock().unwrap(), 1);
    }

    #[test]
    fn backoff_grows_and_stays_within_its_jitter_band() {
        for attempt in 1..=3 {
            let full = BACKOFF_BASE * 2u32.pow(attempt - 1);
            for _ in 0..50 {
                let d = backoff(attempt);
                assert!(d >= full / 2 && d <= full, "{attempt}: {d:?}");
            }
        }
    }
}
