//! Resolves secret references, reading `secretsmanager:` ones from Secrets Manager once per
//! process (a warm Lambda keeps them). After a rotation the cached value goes stale: ingress,
//! whose signature check failed, calls `refresh`, which re-reads a secret at most once a minute.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::render_error;
use crate::config::{ConfigError, Secret, SecretRef, SecretRefresher, resolve_local};

/// A secret is re-read from Secrets Manager at most this often, so a flood of badly signed
/// requests cannot turn into a flood of GetSecretValue calls. Production always uses it; only
/// tests against a local Secrets Manager shorten it ([`SecretsResolver::with_refresh_interval`]).
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// Where `secretsmanager:` references are read from.
pub trait SecretSource: Send + Sync {
    /// The `SecretString` of the secret's current version. Errors must not contain the value.
    fn fetch(&self, secret_id: &str) -> impl Future<Output = Result<String, String>> + Send;
}

impl SecretSource for aws_sdk_secretsmanager::Client {
    async fn fetch(&self, secret_id: &str) -> Result<String, String> {
        let output = self
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| format!("GetSecretValue: {}", render_error(&e)))?;
        output
            .secret_string
            .ok_or_else(|| "the secret has no SecretString (binary secrets are not used)".into())
    }
}

struct Cached {
    secret: Secret,
    /// The last time we asked the source, successful or not.
    fetched_at: Instant,
}

pub struct SecretsResolver<S = aws_sdk_secretsmanager::Client> {
    source: S,
    refresh_interval: Duration,
    cache: Mutex<HashMap<String, Cached>>,
}

impl SecretsResolver<aws_sdk_secretsmanager::Client> {
    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self::new(aws_sdk_secretsmanager::Client::new(config))
    }
}

impl<S: SecretSource> SecretsResolver<S> {
    pub fn new(source: S) -> Self {
        Self::with_refresh_interval(source, MIN_REFRESH_INTERVAL)
    }

    /// A resolver that re-reads a secret at most once per `interval`: for tests that cannot
    /// wait a minute of real time. Production code uses [`SecretsResolver::new`].
    pub fn with_refresh_interval(source: S, interval: Duration) -> Self {
        Self {
            source,
            refresh_interval: interval,
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn source(&self) -> &S {
        &self.source
    }

    /// The secret a reference names; Secrets Manager is asked only the first time.
    pub async fn resolve(&self, reference: &SecretRef) -> Result<Secret, ConfigError> {
        let SecretRef::SecretsManager(id) = reference else {
            return resolve_local(reference);
        };
        if let Some(cached) = self.lock().get(id) {
            return Ok(cached.secret.clone());
        }
        self.fetch(reference, id).await
    }

    /// Resolve several references (a partner's current and previous secret), in order.
    pub async fn resolve_all(&self, references: &[SecretRef]) -> Result<Vec<Secret>, ConfigError> {
        let mut out = Vec::with_capacity(references.len());
        for reference in references {
            out.push(self.resolve(reference).await?);
        }
        Ok(out)
    }

    /// Re-read a secret that may have been rotated, unless it was read (or a read was started)
    /// less than the refresh interval ago: then the cached value is returned. `env:` and literal
    /// references are simply resolved again.
    pub async fn refresh(&self, reference: &SecretRef) -> Result<Secret, ConfigError> {
        let SecretRef::SecretsManager(id) = reference else {
            return resolve_local(reference);
        };
        if let Some(cached) = self.lock().get_mut(id) {
            if cached.fetched_at.elapsed() < self.refresh_interval {
                return Ok(cached.secret.clone());
            }
            // Count the read from now, before it is sent: refreshes arriving while it is in
            // flight get the cached value instead of asking too, so the limit holds under a
            // concurrent flood as well.
            cached.fetched_at = Instant::now();
        }
        self.fetch(reference, id).await
    }

    async fn fetch(&self, reference: &SecretRef, id: &str) -> Result<Secret, ConfigError> {
        let result = self.source.fetch(id).await;
        let mut cache = self.lock();
        match result {
            Ok(value) if !value.is_empty() => {
                let secret = Secret::new(value);
                cache.insert(
                    id.to_owned(),
                    Cached {
                        secret: secret.clone(),
                        fetched_at: Instant::now(),
                    },
                );
                Ok(secret)
            }
            outcome => {
                // A failed read also counts as a read for the refresh limit; the old value
                // stays cached for callers that only `resolve`.
                if let Some(cached) = cache.get_mut(id) {
                    cached.fetched_at = Instant::now();
                }
                let message = match outcome {
                    Err(message) => message,
                    Ok(_) => "the secret is empty".into(),
                };
                tracing::warn!(secret = %reference.describe(), %message, "secret could not be read");
                Err(ConfigError::Secret {
                    reference: reference.describe(),
                    message,
                })
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<S: SecretSource> SecretRefresher for SecretsResolver<S> {
    async fn refresh(&self, reference: &SecretRef) -> Result<Secret, ConfigError> {
        SecretsResolver::refresh(self, reference).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Serves whatever value is current, counting reads; `None` means the service is down.
    #[derive(Default)]
    struct FakeSource {
        value: Mutex<Option<String>>,
        reads: AtomicUsize,
        /// How long a read takes, so that concurrent refreshes overlap.
        latency: Duration,
    }

    impl FakeSource {
        fn serving(value: &str) -> Self {
            let source = Self::default();
            source.set(Some(value));
            source
        }

        fn set(&self, value: Option<&str>) {
            *self.value.lock().unwrap() = value.map(str::to_owned);
        }

        fn reads(&self) -> usize {
            self.reads.load(Ordering::SeqCst)
        }
    }

    impl SecretSource for FakeSource {
        async fn fetch(&self, _secret_id: &str) -> Result<String, String> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.latency).await;
            self.value
                .lock()
                .unwrap()
                .clone()
                .ok_or_else(|| "connection refused".to_owned())
        }
    }

    fn arn() -> SecretRef {
        SecretRef::parse("secretsmanager:arn:aws:secretsmanager:us-east-1:1:secret:wh").unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn secrets_manager_is_read_once_then_served_from_the_cache() {
        let resolver = SecretsResolver::new(FakeSource::serving("whsec_one"));
        for _ in 0..3 {
            assert_eq!(
                resolver.resolve(&arn()).await.unwrap().expose(),
                "whsec_one"
            );
        }
        assert_eq!(resolver.source().reads(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn refresh_rereads_a_rotated_secret_at_most_once_a_minute() {
        let resolver = SecretsResolver::new(FakeSource::serving("old"));
        resolver.resolve(&arn()).await.unwrap();
        resolver.source().set(Some("new"));

        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(resolver.refresh(&arn()).await.unwrap().expose(), "old");
        assert_eq!(resolver.source().reads(), 1);

        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(resolver.refresh(&arn()).await.unwrap().expose(), "new");
        assert_eq!(resolver.refresh(&arn()).await.unwrap().expose(), "new");
        assert_eq!(resolver.resolve(&arn()).await.unwrap().expose(), "new");
        assert_eq!(resolver.source().reads(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_refresh_keeps_the_old_value_and_still_counts_against_the_limit() {
        let resolver = SecretsResolver::new(FakeSource::serving("old"));
        resolver.resolve(&arn()).await.unwrap();
        resolver.source().set(None);
        tokio::time::advance(MIN_REFRESH_INTERVAL).await;

        let err = resolver.refresh(&arn()).await.unwrap_err();
        assert!(err.to_string().contains("connection refused"), "{err}");
        assert_eq!(resolver.resolve(&arn()).await.unwrap().expose(), "old");
        assert_eq!(resolver.refresh(&arn()).await.unwrap().expose(), "old");
        assert_eq!(resolver.source().reads(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_refreshes_after_the_interval_ask_the_source_once() {
        let source = FakeSource {
            latency: Duration::from_millis(200),
            ..FakeSource::serving("old")
        };
        let resolver = SecretsResolver::new(source);
        resolver.resolve(&arn()).await.unwrap();
        resolver.source().set(Some("new"));
        tokio::time::advance(MIN_REFRESH_INTERVAL).await;

        let reference = arn();
        let results =
            futures::future::join_all((0..10).map(|_| resolver.refresh(&reference))).await;
        assert_eq!(resolver.source().reads(), 2);
        // The refresh that asked gets the new value; those overlapping it keep the cached one.
        let values: Vec<&str> = results
            .iter()
            .map(|r| r.as_ref().unwrap().expose())
            .collect();
        assert_eq!(
            values.iter().filter(|v| **v == "new").count(),
            1,
            "{values:?}"
        );
        assert_eq!(resolver.resolve(&arn()).await.unwrap().expose(), "new");
    }

    #[tokio::test(start_paused = true)]
    async fn a_shorter_refresh_interval_rereads_sooner() {
        let interval = Duration::from_secs(1);
        let resolver = SecretsResolver::with_refresh_interval(FakeSource::serving("old"), interval);
        resolver.resolve(&arn()).await.unwrap();
        resolver.source().set(Some("new"));
        assert_eq!(resolver.refresh(&arn()).await.unwrap().expose(), "old");
        tokio::time::advance(interval).await;
        assert_eq!(resolver.refresh(&arn()).await.unwrap().expose(), "new");
        assert_eq!(resolver.source().reads(), 2);
    }

    #[tokio::test]
    async fn unreadable_or_empty_secrets_are_errors_naming_the_reference() {
        for value in [None, Some("")] {
            let source = FakeSource::default();
            source.set(value);
            let resolver = SecretsResolver::new(source);
            let err = resolver.resolve(&arn()).await.unwrap_err();
            assert!(
                err.to_string()
                    .contains("secretsmanager:arn:aws:secretsmanager"),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn literal_and_env_references_never_reach_secrets_manager() {
        let resolver = SecretsResolver::new(FakeSource::serving("unused"));
        let literal = SecretRef::parse("local-secret").unwrap();
        assert_eq!(
            resolver.resolve(&literal).await.unwrap().expose(),
            "local-secret"
        );
        assert_eq!(
            resolver.refresh(&literal).await.unwrap().expose(),
            "local-secret"
        );
        let unset = SecretRef::parse("env:FREIGHTBRIDGE_TEST_SURELY_UNSET_VARIABLE").unwrap();
        assert!(resolver.resolve(&unset).await.is_err());
        assert_eq!(resolver.source().reads(), 0);
    }

    #[tokio::test]
    async fn resolve_all_keeps_the_order_current_then_previous() {
        let resolver = SecretsResolver::new(FakeSource::serving("from-aws"));
        let refs = [arn(), SecretRef::parse("previous-literal").unwrap()];
        let secrets = resolver.resolve_all(&refs).await.unwrap();
        let values: Vec<&str> = secrets.iter().map(Secret::expose).collect();
        assert_eq!(values, vec!["from-aws", "previous-literal"]);
    }
}
