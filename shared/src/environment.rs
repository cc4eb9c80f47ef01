//! What a deployed function reads from its Lambda environment at cold start: required and
//! optional variables, the idempotency policy, the queue's redrive count, and the invocation
//! deadline. One place, so the three binaries agree on names, defaults and error messages.

use chrono::{DateTime, Duration, Utc};

use crate::idempotency::Policy;

/// A variable that must be set and not blank.
pub fn required(name: &str) -> Result<String, String> {
    optional(name).ok_or_else(|| format!("environment variable {name} is not set"))
}

/// A variable that may be absent; blank counts as absent.
pub fn optional(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// `IDEMPOTENCY_TTL_DAYS` (a positive integer), else the default policy.
pub fn idempotency_policy() -> Result<Policy, String> {
    match std::env::var("IDEMPOTENCY_TTL_DAYS").ok() {
        None => Ok(Policy::default()),
        Some(days) => match days.trim().parse::<i64>() {
            Ok(n) if n > 0 => Ok(Policy {
                ttl: Duration::days(n),
            }),
            _ => Err(format!(
                "IDEMPOTENCY_TTL_DAYS must be a positive integer, not {days:?}"
            )),
        },
    }
}

/// The queue's `maxReceiveCount` (`MAX_RECEIVE_COUNT`): on that receive a failing record is
/// dead-lettered by the consumer itself, with its reason.
pub fn max_receive_count() -> Result<u32, String> {
    let text = required("MAX_RECEIVE_COUNT")?;
    match text.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "MAX_RECEIVE_COUNT must be a positive integer, not {text:?}"
        )),
    }
}

/// The invocation's deadline (Lambda context, ms since the epoch): how long this attempt holds
/// its idempotency key. `fallback` past `now` when the value is out of range.
pub fn deadline(deadline_ms: u64, now: DateTime<Utc>, fallback: Duration) -> DateTime<Utc> {
    i64::try_from(deadline_ms)
        .ok()
        .and_then(DateTime::from_timestamp_millis)
        .unwrap_or(now + fallback)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_the_context_value_or_the_fallback() {
        let now: DateTime<Utc> = "2026-11-27T09:00:00Z".parse().unwrap();
        let at = deadline(1_800_000_000_000, now, Duration::seconds(10));
        assert_eq!(at.timestamp_millis(), 1_800_000_000_000);
        assert_eq!(
            deadline(u64::MAX, now, Duration::seconds(10)),
            now + Duration::seconds(10)
        );
    }
}
