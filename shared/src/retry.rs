//! When a retryable failure is tried again. A failed record is not left to come back at the
//! queue's visibility timeout and burn a receive each time: its visibility is extended with
//! exponential backoff and jitter, and its retry budget is time since it was first queued
//! (default two hours), so an Odoo outage shorter than the budget never dead-letters anything.
//! Past the budget the record goes to the dead-letter queue with its last reason.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// SQS refuses a visibility timeout above twelve hours.
pub const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 60 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// How long after it was queued a record may still be retried.
    pub budget: Duration,
    /// The delay before the second receive; doubled for each receive after it.
    pub base_delay: Duration,
    /// The longest delay between two receives.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            budget: Duration::from_secs(2 * 60 * 60),
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(5 * 60),
        }
    }
}

/// What to do with a record whose attempt failed with a retryable reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryDecision {
    /// Make it invisible for `delay`, then receive it again.
    After(Duration),
    /// The budget is spent: dead-letter it.
    Exhausted,
}

impl RetryPolicy {
    /// The decision for a record queued at `queued_at` whose `receive_count`-th receive failed
    /// at `now`. `not_before` is a time the failure itself named (the breaker's reopening);
    /// `jitter` in `[0, 1)` spreads records that failed together (half the delay is random).
    pub fn decide(
        &self,
        queued_at: DateTime<Utc>,
        receive_count: u32,
        now: DateTime<Utc>,
        not_before: Option<DateTime<Utc>>,
        jitter: f64,
    ) -> RetryDecision {
        let deadline = queued_at + chrono::Duration::from_std(self.budget).unwrap_or_default();
        if now >= deadline {
            return RetryDecision::Exhausted;
        }
        let exponent = receive_count.saturating_sub(1).min(30);
        let backoff = self
            .base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        let jitter = jitter.clamp(0.0, 1.0);
        let mut delay = backoff.mul_f64(0.5 + 0.5 * jitter);
        if let Some(until) = not_before {
            // Waiting for the breaker is not a failed attempt: come back just after it
            // reopens, spread over up to a second, whatever the receive count says.
            let wait = (until - now).to_std().unwrap_or_default();
            delay = wait + Duration::from_millis((jitter * 1000.0) as u64);
        }
        // The last try lands on the deadline, not after it.
        if let Ok(left) = (deadline - now).to_std() {
            delay = delay.min(left);
        }
        RetryDecision::After(delay.clamp(Duration::from_secs(1), MAX_VISIBILITY))
    }
}

/// A fresh jitter fraction in `[0, 1)`.
pub fn jitter() -> f64 {
    fastrand::f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn delays_double_with_each_receive_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let queued = t("2026-12-03T10:00:00Z");
        let delays: Vec<u64> = (1..=10)
            .map(|n| match policy.decide(queued, n, queued, None, 1.0) {
                RetryDecision::After(d) => d.as_secs(),
                RetryDecision::Exhausted => 0,
            })
            .collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        // Jitter takes up to half away, never more.
        assert_eq!(
            policy.decide(queued, 4, queued, None, 0.0),
            RetryDecision::After(Duration::from_secs(8))
        );
    }

    #[test]
    fn the_budget_is_time_since_queued_and_the_last_try_lands_on_it() {
        let policy = RetryPolicy::default();
        let queued = t("2026-12-03T10:00:00Z");
        let near_end = t("2026-12-03T11:59:00Z");
        assert_eq!(
            policy.decide(queued, 40, near_end, None, 1.0),
            RetryDecision::After(Duration::from_secs(60))
        );
        assert_eq!(
            policy.decide(queued, 41, t("2026-12-03T12:00:00Z"), None, 1.0),
            RetryDecision::Exhausted
        );
    }

    #[test]
    fn a_record_waiting_for_the_breaker_comes_back_after_it_reopens() {
        let policy = RetryPolicy::default();
        let queued = t("2026-12-03T10:00:00Z");
        let now = t("2026-12-03T10:00:05Z");
        let reopens = t("2026-12-03T10:00:35Z");
        let RetryDecision::After(delay) = policy.decide(queued, 1, now, Some(reopens), 0.5) else {
            panic!("exhausted");
        };
        assert_eq!(delay, Duration::from_millis(30_500));
        // Many receives spent waiting do not stretch the wait past the reopening.
        let RetryDecision::After(delay) = policy.decide(queued, 12, now, Some(reopens), 0.5) else {
            panic!("exhausted");
        };
        assert_eq!(delay, Duration::from_millis(30_500));
    }

    #[test]
    fn worst_case_receives_in_the_default_budget_stay_under_the_redrive_backstop() {
        // The template's maxReceiveCount must exceed what the budget can use, or SQS would
        // dead-letter (without a reason) before the budget is spent. Shortest delays: jitter 0.
        let policy = RetryPolicy::default();
        let queued = t("2026-12-03T10:00:00Z");
        let mut now = queued;
        let mut receives = 0;
        loop {
            receives += 1;
            match policy.decide(queued, receives, now, None, 0.0) {
                RetryDecision::After(d) => now += chrono::Duration::from_std(d).unwrap(),
                RetryDecision::Exhausted => break,
            }
        }
        assert!(receives < 100, "{receives} receives");
        assert!(receives > 20, "{receives} receives");
    }
}
