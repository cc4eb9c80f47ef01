//! What a deployed function reads from its Lambda environment at cold start: required and
//! optional variables, the idempotency policy, the queue's redrive count, the audit trail, and
//! the invocation deadline. One place, so the three binaries agree on names, defaults and error messages.

use chrono::{DateTime, Duration, Utc};

use std::sync::Arc;

use crate::audit::Auditor;
use crate::aws::audit::DynamoAuditLog;
use crate::aws::secrets::SecretsResolver;
use crate::breaker::BreakerConfig;
use crate::config::SecretRef;
use crate::idempotency::Policy;
use crate::odoo::{OdooClient, OdooConfig};
use crate::retry::RetryPolicy;

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

/// A positive whole number from `name`, or `default` when it is not set.
fn positive(name: &str, default: u64) -> Result<u64, String> {
    positive_of(name, optional(name), default)
}

/// [`positive`] of a value already read.
fn positive_of(name: &str, value: Option<String>, default: u64) -> Result<u64, String> {
    match value {
        None => Ok(default),
        Some(text) => match text.trim().parse::<u64>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{name} must be a positive integer, not {text:?}")),
        },
    }
}

/// How a consumer named `consumer` runs its SQS batches, `concurrency` records at a time, with
/// the receive backstop (`MAX_RECEIVE_COUNT`) and retry policy of the environment.
pub fn batch_config(
    consumer: &str,
    concurrency: usize,
) -> Result<crate::batch::BatchConfig, String> {
    Ok(crate::batch::BatchConfig {
        consumer: consumer.to_owned(),
        concurrency,
        max_receive_count: max_receive_count()?,
        retry: retry_policy()?,
        group_by: None,
    })
}

/// The retry budget and backoff: `RETRY_BUDGET_MINUTES` (default 120), the longest time a
/// failing record is retried before it is dead-lettered, and `RETRY_MAX_DELAY_SECONDS`
/// (default 300), the longest wait between two receives.
pub fn retry_policy() -> Result<RetryPolicy, String> {
    let defaults = RetryPolicy::default();
    let budget = positive("RETRY_BUDGET_MINUTES", defaults.budget.as_secs() / 60)?;
    let max_delay = positive("RETRY_MAX_DELAY_SECONDS", defaults.max_delay.as_secs())?;
    Ok(RetryPolicy {
        budget: std::time::Duration::from_secs(budget.saturating_mul(60)),
        max_delay: std::time::Duration::from_secs(max_delay).min(crate::retry::MAX_VISIBILITY),
        ..defaults
    })
}

/// The Odoo circuit breaker: `BREAKER_THRESHOLD` consecutive unreachable failures open it
/// (default 5) for `BREAKER_COOLDOWN_SECONDS` (default 15, doubling per reopening).
pub fn breaker_config() -> Result<BreakerConfig, String> {
    let defaults = BreakerConfig::default();
    let threshold = positive("BREAKER_THRESHOLD", u64::from(defaults.threshold))?;
    let cooldown = positive(
        "BREAKER_COOLDOWN_SECONDS",
        defaults.cooldown.num_seconds().unsigned_abs(),
    )?;
    Ok(BreakerConfig {
        threshold: u32::try_from(threshold).unwrap_or(u32::MAX),
        cooldown: Duration::seconds(i64::try_from(cooldown).unwrap_or(i64::MAX / 1000)),
        ..defaults
    })
}

/// How long audit records are kept: `AUDIT_TTL_DAYS` (a positive integer), else
/// `audit::DEFAULT_TTL_DAYS`.
pub fn audit_ttl() -> Result<Duration, String> {
    audit_ttl_of(optional("AUDIT_TTL_DAYS"))
}

/// Longest audit TTL taken, in days: beyond any table's life, and no overflow in time arithmetic.
const MAX_AUDIT_TTL_DAYS: i64 = 365_000;

fn audit_ttl_of(value: Option<String>) -> Result<Duration, String> {
    let days = positive_of(
        "AUDIT_TTL_DAYS",
        value,
        u64::from(crate::audit::DEFAULT_TTL_DAYS),
    )?;
    Ok(Duration::days(
        i64::try_from(days).map_or(MAX_AUDIT_TTL_DAYS, |d| d.min(MAX_AUDIT_TTL_DAYS)),
    ))
}

/// The audit trail a function writes: the DynamoDB table `AUDIT_TABLE` names, records kept
/// `AUDIT_TTL_DAYS`. The template always sets it; without it (a function run by hand, an older
/// stack) a warning is logged once and the function runs without a trail.
pub fn audit_from_env(config: &aws_config::SdkConfig) -> Result<Auditor, String> {
    let ttl = audit_ttl()?;
    Ok(match optional("AUDIT_TABLE") {
        Some(table) => Auditor::new(Arc::new(DynamoAuditLog::from_config(config, table, ttl))),
        None => {
            tracing::warn!("AUDIT_TABLE is not set: no audit trail is written");
            Auditor::disabled()
        }
    })
}

/// Odoo from `ODOO_URL` & co., its API key from the secret `ODOO_API_KEY_SECRET_ARN` names (or
/// `ODOO_API_KEY` when run by hand), connected; with the configured Odoo login (`ODOO_USER`)
/// the audit trail names as the writer. `None` when `ODOO_URL` is not set.
pub async fn odoo_from_env(
    config: &aws_config::SdkConfig,
) -> Result<Option<(OdooClient, Option<String>)>, String> {
    if optional("ODOO_URL").is_none() {
        return Ok(None);
    }
    let api_key = match optional("ODOO_API_KEY_SECRET_ARN") {
        Some(arn) => Some(
            SecretsResolver::from_config(config)
                .resolve(&SecretRef::SecretsManager(arn))
                .await
                .map_err(|e| e.to_string())?,
        ),
        None => None,
    };
    let odoo_config = OdooConfig::from_lookup(|name| match (name, &api_key) {
        ("ODOO_API_KEY", Some(key)) => Some(key.expose().to_owned()),
        _ => std::env::var(name).ok(),
    })
    .map_err(|e| e.to_string())?
    .ok_or("ODOO_URL is not set")?;
    let client = OdooClient::connect(&odoo_config)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(transport = ?client.transport(), "Odoo client ready");
    Ok(Some((client, odoo_config.user.clone())))
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
    fn audit_ttl_is_the_days_configured_or_the_default() {
        let default = Duration::days(i64::from(crate::audit::DEFAULT_TTL_DAYS));
        assert_eq!(audit_ttl_of(None), Ok(default));
        assert_eq!(audit_ttl_of(Some("30".into())), Ok(Duration::days(30)));
        assert_eq!(
            audit_ttl_of(Some("99999999999".into())),
            Ok(Duration::days(MAX_AUDIT_TTL_DAYS))
        );
        for bad in ["0", "-3", "x"] {
            let error = audit_ttl_of(Some(bad.into())).expect_err(bad);
            assert!(error.contains("AUDIT_TTL_DAYS"), "{error}");
        }
    }

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
