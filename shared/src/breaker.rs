//! The Odoo circuit breaker. After `threshold` consecutive failures that say Odoo is not
//! reachable (network, timeout, 5xx, 429) it opens: no caller talks to Odoo until the cooldown
//! has passed, and records wait on their queue instead of burning their retry budget against a
//! server that is down. Then one caller holds a probe lease (half-open); its success closes the
//! breaker, its failure opens it again for a longer cooldown.
//!
//! The state is shared by every poller and invocation, so it lives in a store (DynamoDB in AWS,
//! the embedded database locally) and is changed by compare-and-swap on a version number: the
//! transitions are decided here, by pure functions, and the stores only keep the versioned value.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::failure::{FailureClass, FailureReason};
use crate::idempotency::StoreError;

/// The stored breaker. `Default` is closed with no failures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakerState {
    /// Odoo-unreachable failures since the last call that Odoo answered.
    pub consecutive_failures: u32,
    /// Unix milliseconds until which the breaker is open; `None` while closed.
    pub open_until: Option<i64>,
    /// Unix milliseconds until which a half-open probe holds the right to call Odoo.
    pub probe_until: Option<i64>,
    /// Times it opened since it was last closed: each reopening doubles the cooldown.
    pub trips: u32,
}

/// A stored state and its version; version 0 means nothing is stored yet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Versioned {
    pub state: BreakerState,
    pub version: u64,
}

/// Where the breaker's state is shared. `swap` must be atomic: it writes `state` with version
/// `expected + 1` only if the stored version is still `expected` (0: nothing stored yet).
pub trait BreakerStore: Send + Sync {
    fn load(&self, name: &str) -> impl Future<Output = Result<Versioned, StoreError>> + Send;

    /// `Ok(false)` when another writer changed the state first.
    fn swap(
        &self,
        name: &str,
        expected: u64,
        state: &BreakerState,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

impl<T: BreakerStore> BreakerStore for std::sync::Arc<T> {
    fn load(&self, name: &str) -> impl Future<Output = Result<Versioned, StoreError>> + Send {
        (**self).load(name)
    }

    fn swap(
        &self,
        name: &str,
        expected: u64,
        state: &BreakerState,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).swap(name, expected, state)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive Odoo-unreachable failures that open the breaker.
    pub threshold: u32,
    /// The first cooldown; each reopening doubles it up to `max_cooldown`.
    pub cooldown: chrono::Duration,
    pub max_cooldown: chrono::Duration,
    /// How long a probe may take before another caller may probe instead (the handler timeout).
    pub probe_lease: chrono::Duration,
    /// How long a caller trusts a closed state it read before reading it again: calls while
    /// Odoo answers cost no store read each, and an opening is seen by others within this.
    pub trust_closed_for: std::time::Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            threshold: 5,
            cooldown: chrono::Duration::seconds(15),
            max_cooldown: chrono::Duration::minutes(5),
            probe_lease: chrono::Duration::seconds(60),
            trust_closed_for: std::time::Duration::from_secs(1),
        }
    }
}

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: call Odoo.
    Call,
    /// Half-open and this caller holds the probe lease: call Odoo, and report the outcome.
    Probe,
    /// Open (or another caller is probing): do not call Odoo before `until`.
    Wait { until: DateTime<Utc> },
}

/// What a call to Odoo showed about Odoo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// Odoo answered, even with a refusal (a validation error is an answering server).
    Answered,
    /// Odoo could not be reached or failed as a server does when it is down or overloaded.
    Unreachable,
}

impl Observation {
    /// How a failed operation's reason reads for the breaker. Retryable Odoo failures other
    /// than a lost concurrency race mean the server is not answering; everything else does not.
    pub fn of_failure(reason: &FailureReason) -> Observation {
        let unreachable = reason.class == FailureClass::Retryable
            && matches!(
                reason.code.as_str(),
                "odoo_network" | "odoo_timeout" | "odoo_server_error" | "odoo_rate_limited"
            );
        if unreachable {
            Observation::Unreachable
        } else {
            Observation::Answered
        }
    }
}

/// A change worth a log line and a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Opened { until: DateTime<Utc> },
    Closed,
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn at(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The admission `state` gives at `now`, and the state to store when taking it needs a write
/// (a caller taking the probe lease).
pub fn admit(
    state: &BreakerState,
    now: DateTime<Utc>,
    config: &BreakerConfig,
) -> (Admission, Option<BreakerState>) {
    let now_ms = millis(now);
    match state.open_until {
        None => (Admission::Call, None),
        Some(until) if until > now_ms => (Admission::Wait { until: at(until) }, None),
        Some(_) => match state.probe_until {
            // Another caller is probing: look again soon, its answer may close the breaker.
            Some(lease) if lease > now_ms => {
                let soon = millis(now + chrono::Duration::seconds(1)).min(lease);
                (Admission::Wait { until: at(soon) }, None)
            }
            _ => {
                let leased = BreakerState {
                    probe_until: Some(millis(now + config.probe_lease)),
                    ..*state
                };
                (Admission::Probe, Some(leased))
            }
        },
    }
}

/// The state after an observation at `now`, when it changes, with the transition it makes.
pub fn observe(
    state: &BreakerState,
    observation: Observation,
    now: DateTime<Utc>,
    config: &BreakerConfig,
) -> Option<(BreakerState, Option<Transition>)> {
    match observation {
        Observation::Answered if *state == BreakerState::default() => None,
        Observation::Answered => {
            let transition = state.open_until.map(|_| Transition::Closed);
            Some((BreakerState::default(), transition))
        }
        Observation::Unreachable => {
            let failures = state.consecutive_failures.saturating_add(1);
            let half_open = state.open_until.is_some_and(|until| until <= millis(now));
            let open = state.open_until.is_some() && !half_open;
            if open {
                // A call admitted before it opened, failing late: count it, keep the cooldown.
                return Some((
                    BreakerState {
                        consecutive_failures: failures,
                        ..*state
                    },
                    None,
                ));
            }
            if !half_open && failures < config.threshold {
                return Some((
                    BreakerState {
                        consecutive_failures: failures,
                        ..*state
                    },
                    None,
                ));
            }
            let until = now + cooldown(config, state.trips);
            Some((
                BreakerState {
                    consecutive_failures: failures,
                    open_until: Some(millis(until)),
                    probe_until: None,
                    trips: state.trips.saturating_add(1),
                },
                Some(Transition::Opened { until }),
            ))
        }
    }
}

/// The cooldown after `trips` earlier openings: doubled each time, capped.
fn cooldown(config: &BreakerConfig, trips: u32) -> chrono::Duration {
    let factor = 1i32.checked_shl(trips.min(20)).unwrap_or(i32::MAX);
    config
        .cooldown
        .checked_mul(factor)
        .unwrap_or(config.max_cooldown)
        .min(config.max_cooldown)
}

/// Attempts at a compare-and-swap before giving up on a contended write.
const SWAP_ATTEMPTS: usize = 8;

/// The breaker one function shares with every other caller through its store.
pub struct Breaker<S> {
    store: S,
    name: String,
    config: BreakerConfig,
    /// When this caller last read (or wrote) a closed, failure-free state.
    closed_seen: Mutex<Option<std::time::Instant>>,
}

impl<S: BreakerStore> Breaker<S> {
    pub fn new(store: S, name: impl Into<String>, config: BreakerConfig) -> Self {
        Self {
            store,
            name: name.into(),
            config,
            closed_seen: Mutex::new(None),
        }
    }

    /// Did this caller see the breaker closed and clean recently enough to skip a read?
    fn trusts_closed(&self) -> bool {
        self.closed_seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some_and(|seen| seen.elapsed() < self.config.trust_closed_for)
    }

    fn remember(&self, state: &BreakerState) {
        let mut seen = self.closed_seen.lock().unwrap_or_else(|p| p.into_inner());
        *seen = (*state == BreakerState::default()).then(std::time::Instant::now);
    }

    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    /// May this caller call Odoo now? A store that cannot be read admits the call: the breaker
    /// protects Odoo and the retry budget, it never decides whether an event is applied.
    pub async fn admit(&self, now: DateTime<Utc>) -> Admission {
        if self.trusts_closed() {
            return Admission::Call;
        }
        for _ in 0..SWAP_ATTEMPTS {
            let current = match self.store.load(&self.name).await {
                Ok(current) => current,
                Err(error) => {
                    tracing::warn!(breaker = %self.name, %error, "breaker state unreadable; calling Odoo");
                    return Admission::Call;
                }
            };
            self.remember(&current.state);
            let (admission, write) = admit(&current.state, now, &self.config);
            let Some(next) = write else {
                return admission;
            };
            match self.store.swap(&self.name, current.version, &next).await {
                Ok(true) => {
                    tracing::info!(breaker = %self.name, "breaker half-open: probing Odoo");
                    return admission;
                }
                Ok(false) => continue,
                Err(error) => {
                    tracing::warn!(breaker = %self.name, %error, "breaker probe lease not written; calling Odoo");
                    return Admission::Call;
                }
            }
        }
        // Every attempt lost a race for the lease: someone else is probing.
        Admission::Wait {
            until: now + chrono::Duration::seconds(1),
        }
    }

    /// Records what a call showed; answers the transition it made, if any.
    pub async fn observe(
        &self,
        observation: Observation,
        now: DateTime<Utc>,
    ) -> Result<Option<Transition>, StoreError> {
        if observation == Observation::Answered && self.trusts_closed() {
            return Ok(None);
        }
        for _ in 0..SWAP_ATTEMPTS {
            let current = self.store.load(&self.name).await?;
            self.remember(&current.state);
            let Some((next, transition)) = observe(&current.state, observation, now, &self.config)
            else {
                return Ok(None);
            };
            if self.store.swap(&self.name, current.version, &next).await? {
                self.remember(&next);
                match transition {
                    Some(Transition::Opened { until }) => {
                        tracing::warn!(
                            breaker = %self.name,
                            consecutive_failures = next.consecutive_failures,
                            open_until = %until.to_rfc3339(),
                            "breaker opened: Odoo is not answering"
                        );
                        crate::metrics::count(crate::metrics::name::BREAKER_OPENED, &[]);
                    }
                    Some(Transition::Closed) => {
                        tracing::info!(breaker = %self.name, "breaker closed: Odoo answers again");
                        crate::metrics::count(crate::metrics::name::BREAKER_CLOSED, &[]);
                    }
                    None => {}
                }
                return Ok(transition);
            }
        }
        Err(StoreError::Unavailable(format!(
            "breaker {} changed by others on every attempt",
            self.name
        )))
    }
}

/// The breaker's state in memory, for tests and one-process runs.
#[derive(Debug, Default)]
pub struct MemoryBreakerStore {
    states: Mutex<HashMap<String, Versioned>>,
}

impl MemoryBreakerStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Versioned>> {
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BreakerStore for MemoryBreakerStore {
    async fn load(&self, name: &str) -> Result<Versioned, StoreError> {
        Ok(self.lock().get(name).copied().unwrap_or_default())
    }

    async fn swap(
        &self,
        name: &str,
        expected: u64,
        state: &BreakerState,
    ) -> Result<bool, StoreError> {
        let mut states = self.lock();
        let stored = states.get(name).map_or(0, |v| v.version);
        if stored != expected {
            return Ok(false);
        }
        states.insert(
            name.to_owned(),
            Versioned {
                state: *state,
                version: expected + 1,
            },
        );
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn config() -> BreakerConfig {
        BreakerConfig {
            threshold: 3,
            cooldown: chrono::Duration::seconds(10),
            max_cooldown: chrono::Duration::seconds(25),
            probe_lease: chrono::Duration::seconds(5),
            trust_closed_for: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn opens_after_threshold_consecutive_unreachable_failures_only() {
        let c = config();
        let now = t("2026-12-03T10:00:00Z");
        let mut state = BreakerState::default();
        for _ in 0..2 {
            let (next, transition) = observe(&state, Observation::Unreachable, now, &c).unwrap();
            assert_eq!(transition, None);
            state = next;
        }
        // An answer in between resets the count.
        let (reset, _) = observe(&state, Observation::Answered, now, &c).unwrap();
        assert_eq!(reset, BreakerState::default());
        state = reset;
        for _ in 0..2 {
            state = observe(&state, Observation::Unreachable, now, &c)
                .unwrap()
                .0;
        }
        let (open, transition) = observe(&state, Observation::Unreachable, now, &c).unwrap();
        let until = now + chrono::Duration::seconds(10);
        assert_eq!(transition, Some(Transition::Opened { until }));
        assert_eq!(admit(&open, now, &c).0, Admission::Wait { until });
    }

    #[test]
    fn one_probe_after_the_cooldown_closes_or_reopens_for_longer() {
        let c = config();
        let opened = t("2026-12-03T10:00:00Z");
        let open = BreakerState {
            consecutive_failures: 3,
            open_until: Some(millis(opened + chrono::Duration::seconds(10))),
            probe_until: None,
            trips: 1,
        };
        let later = opened + chrono::Duration::seconds(11);
        let (admission, leased) = admit(&open, later, &c);
        assert_eq!(admission, Admission::Probe);
        let leased = leased.unwrap();
        // A second caller waits for the probe, and looks again within a second.
        assert_eq!(
            admit(&leased, later, &c).0,
            Admission::Wait {
                until: later + chrono::Duration::seconds(1)
            }
        );
        // The probe fails: open again, cooldown doubled (20 s, under the 25 s cap).
        let (reopened, transition) = observe(&leased, Observation::Unreachable, later, &c).unwrap();
        assert_eq!(
            transition,
            Some(Transition::Opened {
                until: later + chrono::Duration::seconds(20)
            })
        );
        assert_eq!(reopened.trips, 2);
        // Capped at 25 s the next time.
        let again = later + chrono::Duration::seconds(21);
        let (_, leased) = admit(&reopened, again, &c);
        let (_, transition) =
            observe(&leased.unwrap(), Observation::Unreachable, again, &c).unwrap();
        assert_eq!(
            transition,
            Some(Transition::Opened {
                until: again + chrono::Duration::seconds(25)
            })
        );
        // The probe succeeds: closed, counters cleared.
        let (closed, transition) = observe(&reopened, Observation::Answered, again, &c).unwrap();
        assert_eq!(transition, Some(Transition::Closed));
        assert_eq!(closed, BreakerState::default());
    }

    #[test]
    fn a_lapsed_probe_lease_lets_another_caller_probe() {
        let c = config();
        let now = t("2026-12-03T10:00:00Z");
        let stuck = BreakerState {
            consecutive_failures: 3,
            open_until: Some(millis(now - chrono::Duration::seconds(30))),
            probe_until: Some(millis(now - chrono::Duration::seconds(1))),
            trips: 1,
        };
        assert_eq!(admit(&stuck, now, &c).0, Admission::Probe);
    }

    #[test]
    fn only_unreachable_odoo_failures_count() {
        for (reason, expected) in [
            (
                FailureReason::retryable("odoo_network", "connection refused"),
                Observation::Unreachable,
            ),
            (
                FailureReason::retryable("odoo_server_error", "502"),
                Observation::Unreachable,
            ),
            (
                FailureReason::retryable("odoo_concurrency_conflict", "serialize"),
                Observation::Answered,
            ),
            (
                FailureReason::permanent("odoo_validation", "bad value"),
                Observation::Answered,
            ),
            (
                FailureReason::retryable("idempotency_store_unavailable", "x"),
                Observation::Answered,
            ),
        ] {
            assert_eq!(Observation::of_failure(&reason), expected, "{reason}");
        }
    }

    #[tokio::test]
    async fn breaker_shares_its_state_through_the_store_and_one_caller_wins_the_probe() {
        let store = std::sync::Arc::new(MemoryBreakerStore::new());
        let a = Breaker::new(store.clone(), "odoo", config());
        let b = Breaker::new(store.clone(), "odoo", config());
        let now = t("2026-12-03T10:00:00Z");
        for _ in 0..2 {
            a.observe(Observation::Unreachable, now).await.unwrap();
        }
        let transition = b.observe(Observation::Unreachable, now).await.unwrap();
        assert!(matches!(transition, Some(Transition::Opened { .. })));
        assert!(matches!(a.admit(now).await, Admission::Wait { .. }));
        let later = now + chrono::Duration::seconds(11);
        assert_eq!(a.admit(later).await, Admission::Probe);
        assert!(matches!(b.admit(later).await, Admission::Wait { .. }));
        let closed = a.observe(Observation::Answered, later).await.unwrap();
        assert_eq!(closed, Some(Transition::Closed));
        assert_eq!(b.admit(later).await, Admission::Call);
    }

    #[tokio::test]
    async fn a_caller_that_saw_it_closed_skips_reads_for_a_while_but_never_misses_a_failure() {
        let store = std::sync::Arc::new(MemoryBreakerStore::new());
        let trusting = BreakerConfig {
            trust_closed_for: std::time::Duration::from_secs(60),
            ..config()
        };
        let a = Breaker::new(store.clone(), "odoo", trusting);
        let now = t("2026-12-03T10:00:00Z");
        assert_eq!(a.admit(now).await, Admission::Call);
        // Failures are always written, whatever the caller trusted.
        for _ in 0..3 {
            a.observe(Observation::Unreachable, now).await.unwrap();
        }
        assert!(matches!(a.admit(now).await, Admission::Wait { .. }));
        assert!(store.load("odoo").await.unwrap().state.open_until.is_some());
    }
}
