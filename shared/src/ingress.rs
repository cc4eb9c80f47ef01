//! The ingress decision, free of I/O: is this request from a partner we know, of an acceptable
//! size and type, correctly signed and well-formed — and if so, which delivery is it? A partner
//! whose secret may have been rotated in Secrets Manager gets its secrets re-read (through a
//! `SecretRefresher` port) when a signature does not match. webhook-ingress adds dedupe and
//! publishing around it.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use chrono::{DateTime, Utc};
use http::HeaderMap;

use crate::config::{
    ConfigError, DEFAULT_MAX_BODY_BYTES, PartnersFile, Secret, SecretRef, SecretRefresher,
};
use crate::idempotency::sha256_tag;
use crate::partners::{Adapter, Format, Need, PartnerError};
use crate::signature::{SignatureError, Verifier};

/// A partner as ingress needs it: its format, verifier and limits, prepared once at cold start.
/// The verifier is replaced, never mutated, when a rotated secret is read: a request checks
/// against the one it took, while the next ones see the new one.
#[derive(Debug)]
pub struct Partner {
    pub id: String,
    pub adapter: Adapter,
    pub content_types: Vec<String>,
    pub max_body_bytes: usize,
    /// As configured: current first, then previous.
    references: Vec<SecretRef>,
    keys: RwLock<Keys>,
}

/// The verifier in force and the secret values it was built from (one per reference, `None`
/// for one that could not be resolved), kept to tell whether a re-read changed anything.
#[derive(Debug)]
struct Keys {
    secrets: Vec<Option<Secret>>,
    verifier: Arc<Verifier>,
}

impl Partner {
    /// The verifier in force now.
    pub fn verifier(&self) -> Arc<Verifier> {
        self.keys().verifier.clone()
    }

    /// Only Secrets Manager values change under a running function; `env:` and literal ones
    /// are fixed for the life of the process.
    fn has_rotating_secret(&self) -> bool {
        self.references
            .iter()
            .any(|r| matches!(r, SecretRef::SecretsManager(_)))
    }

    /// Re-read every secret reference through `secrets` and, if a value changed, replace the
    /// verifier. `checked` is the verifier a request was refused by; returns whether another
    /// one is in force now (built here, or by a concurrent request), i.e. whether checking
    /// again can give another answer. A reference that cannot be read keeps its old value.
    async fn refresh_secrets(
        &self,
        secrets: &impl SecretRefresher,
        checked: &Arc<Verifier>,
    ) -> bool {
        let old = {
            let keys = self.keys();
            if !Arc::ptr_eq(&keys.verifier, checked) {
                return true;
            }
            keys.secrets.clone()
        };
        let mut fresh = Vec::with_capacity(old.len());
        for (reference, old) in self.references.iter().zip(&old) {
            match secrets.refresh(reference).await {
                Ok(secret) => fresh.push(Some(secret)),
                Err(error) => {
                    tracing::warn!(
                        partner = %self.id,
                        secret = %reference.describe(),
                        %error,
                        "secret could not be re-read; keeping the value in use"
                    );
                    fresh.push(old.clone());
                }
            }
        }
        if fresh != old {
            let values: Vec<Secret> = fresh.iter().flatten().cloned().collect();
            match Verifier::new(checked.scheme().clone(), &values, checked.tolerance()) {
                Ok(verifier) => {
                    let mut keys = self.keys.write().unwrap_or_else(PoisonError::into_inner);
                    // A concurrent refresh may have replaced it already; its values are at
                    // least as recent as these, so it stays.
                    if Arc::ptr_eq(&keys.verifier, checked) {
                        *keys = Keys {
                            secrets: fresh,
                            verifier: Arc::new(verifier),
                        };
                        tracing::info!(partner = %self.id, "partner secret changed; verifier rebuilt");
                    }
                }
                Err(error) => tracing::warn!(
                    partner = %self.id,
                    %error,
                    "re-read secrets cannot be used; keeping the ones in use"
                ),
            }
        }
        !Arc::ptr_eq(&self.keys().verifier, checked)
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, Keys> {
        // Keys are replaced whole under the lock, so a poisoned lock still holds a valid set.
        self.keys.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every check on one request, against `verifier`. Checks run cheapest and least trusting
    /// first: the body is only parsed after its signature verified.
    fn check(
        &self,
        verifier: &Verifier,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Accepted, Rejection> {
        if body.len() > self.max_body_bytes {
            return Err(Rejection::PayloadTooLarge {
                limit: self.max_body_bytes,
            });
        }
        let media_type = media_type(headers);
        if !self
            .content_types
            .iter()
            .any(|allowed| media_type.as_deref() == Some(allowed.as_str()))
        {
            return Err(Rejection::UnsupportedMediaType);
        }
        verifier
            .verify(headers, query, body, now)
            .map_err(Rejection::Unauthorized)?;
        // A signed header naming the delivery keys it with the body's own hash: the adapter's
        // payload hash is not needed, only its checks and id.
        let need = match verifier.scheme().delivery_id_header() {
            Some(_) => Need::DeliveryId,
            None => Need::DeliveryIdAndHash,
        };
        let key = self
            .adapter
            .inspect_for(body, need)
            .map_err(Rejection::Malformed)?;
        let (delivery_id, payload_hash) = match verifier.scheme().delivery_id_header() {
            // A signed message id (Standard Webhooks) stays the same across retries, and so
            // does the body.
            Some(name) => match header(headers, name) {
                Some(id) => (id.to_owned(), Some(sha256_tag(body))),
                None => return Err(Rejection::Unauthorized(SignatureError::Malformed)),
            },
            None => match key.delivery_id {
                Some(id) => (id, key.payload_hash),
                // No id from the partner: the body itself identifies the delivery.
                None => (sha256_tag(body), None),
            },
        };
        Ok(Accepted {
            partner: self.id.clone(),
            format: self.adapter.format(),
            delivery_id,
            payload_hash,
            content_type: media_type,
        })
    }
}

/// Every configured partner, by id.
#[derive(Debug, Default)]
pub struct Registry {
    partners: HashMap<String, Partner>,
}

impl Registry {
    /// Build from the partners file, resolving each secret reference with `resolve`.
    pub fn build(
        file: &PartnersFile,
        mut resolve: impl FnMut(&SecretRef) -> Result<Secret, ConfigError>,
    ) -> Result<Self, ConfigError> {
        let mut partners = HashMap::new();
        for cfg in &file.partner {
            let fail = |message: String| ConfigError::Partner {
                partner: cfg.id.clone(),
                message,
            };
            let adapter = Adapter::from_config(cfg)?;
            let references = cfg
                .signature
                .secrets
                .iter()
                .map(|r| SecretRef::parse(r))
                .collect::<Result<Vec<_>, _>>()
                .map_err(fail)?;
            let mut secrets = Vec::with_capacity(references.len());
            for reference in &references {
                match resolve(reference) {
                    Ok(secret) => secrets.push(Some(secret)),
                    // A previous secret that is not set is fine (no rotation under way); the
                    // partner still needs at least one secret, checked below.
                    Err(e) => {
                        tracing::warn!(partner = %cfg.id, error = %e, "secret not available");
                        secrets.push(None);
                    }
                }
            }
            let values: Vec<Secret> = secrets.iter().flatten().cloned().collect();
            if values.is_empty() {
                return Err(fail(
                    "none of the partner's secrets could be resolved".into(),
                ));
            }
            let verifier =
                Verifier::from_config(&cfg.signature, &values).map_err(|e| fail(e.to_string()))?;
            let content_types = cfg.content_types.clone().unwrap_or_else(|| {
                adapter
                    .format()
                    .default_content_types()
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect()
            });
            partners.insert(
                cfg.id.clone(),
                Partner {
                    id: cfg.id.clone(),
                    adapter,
                    content_types,
                    max_body_bytes: cfg.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
                    references,
                    keys: RwLock::new(Keys {
                        secrets,
                        verifier: Arc::new(verifier),
                    }),
                },
            );
        }
        Ok(Self { partners })
    }

    pub fn get(&self, id: &str) -> Option<&Partner> {
        self.partners.get(id)
    }

    pub fn len(&self) -> usize {
        self.partners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.partners.is_empty()
    }

    /// Decide about one request with the secrets in force. `query` is the raw query string,
    /// which a `query-token` partner's token arrives in; it is never logged.
    pub fn evaluate(
        &self,
        partner_id: &str,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Accepted, Rejection> {
        let partner = self.get(partner_id).ok_or(Rejection::UnknownPartner)?;
        partner.check(&partner.verifier(), headers, query, body, now)
    }

    /// As [`Registry::evaluate`], but a signature that does not match, from a partner with a
    /// Secrets Manager secret, has the partner's secrets re-read through `secrets` (which
    /// limits how often it really asks) and, if they changed, is checked once more. A missing
    /// or malformed signature or a stale timestamp is not about the key and re-reads nothing.
    pub async fn evaluate_refreshing(
        &self,
        secrets: &impl SecretRefresher,
        partner_id: &str,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Accepted, Rejection> {
        let partner = self.get(partner_id).ok_or(Rejection::UnknownPartner)?;
        let verifier = partner.verifier();
        let first = partner.check(&verifier, headers, query, body, now);
        let mismatch = matches!(
            first,
            Err(Rejection::Unauthorized(SignatureError::Mismatch))
        );
        if !mismatch
            || !partner.has_rotating_secret()
            || !partner.refresh_secrets(secrets, &verifier).await
        {
            return first;
        }
        partner.check(&partner.verifier(), headers, query, body, now)
    }
}

/// A request that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub partner: String,
    pub format: Format,
    pub delivery_id: String,
    pub payload_hash: Option<String>,
    pub content_type: Option<String>,
}

/// Why a request was refused, with its HTTP status and machine code (DESIGN §3.1).
#[derive(Debug)]
pub enum Rejection {
    UnknownPartner,
    PayloadTooLarge { limit: usize },
    UnsupportedMediaType,
    Unauthorized(SignatureError),
    Malformed(PartnerError),
}

impl Rejection {
    pub fn status(&self) -> u16 {
        match self {
            Rejection::UnknownPartner => 404,
            Rejection::PayloadTooLarge { .. } => 413,
            Rejection::UnsupportedMediaType => 415,
            Rejection::Unauthorized(_) => 401,
            Rejection::Malformed(_) => 400,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Rejection::UnknownPartner => "unknown_partner",
            Rejection::PayloadTooLarge { .. } => "payload_too_large",
            Rejection::UnsupportedMediaType => "unsupported_media_type",
            Rejection::Unauthorized(_) => "unauthorized",
            Rejection::Malformed(_) => "malformed_payload",
        }
    }

    /// The message sent back to the caller. A signature failure says nothing about which part
    /// failed (the reason is logged, not returned).
    pub fn message(&self) -> String {
        match self {
            Rejection::UnknownPartner => "no partner is configured under this path".into(),
            Rejection::PayloadTooLarge { limit } => {
                format!("request body is larger than the partner's limit of {limit} bytes")
            }
            Rejection::UnsupportedMediaType => {
                "content type is not accepted for this partner".into()
            }
            Rejection::Unauthorized(_) => "webhook signature could not be verified".into(),
            Rejection::Malformed(e) => e.to_string(),
        }
    }
}

/// The request's media type, lowercased, without parameters (`application/json; charset=utf-8`
/// → `application/json`).
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    header(headers, "content-type").map(|v| {
        v.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    })
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::resolve_local;
    use crate::signature::sign;
    use http::{HeaderName, HeaderValue};

    const PARTNERS: &str = r#"
[[partner]]
id = "easypost"
format = "easypost"
max_body_bytes = 8192
[partner.signature]
scheme = "easypost"
secrets = ["ep-current", "ep-previous"]

[[partner]]
id = "tms"
format = "easypost"
[partner.signature]
scheme = "standard-webhooks"
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
"#;

    const BODY: &str =
        include_str!("../tests/fixtures/partners/easypost-tracker-updated-in-transit.json");

    fn registry() -> Registry {
        Registry::build(&PartnersFile::parse(PARTNERS).unwrap(), resolve_local).unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2026-11-27T09:00:00Z".parse().unwrap()
    }

    fn signed(partner: &str, secret: &str, body: &[u8]) -> HeaderMap {
        let registry = registry();
        let scheme = registry.get(partner).unwrap().verifier().scheme().clone();
        let mut headers = HeaderMap::new();
        for (name, value) in sign(&scheme, &Secret::new(secret), body, now(), "msg_1").unwrap() {
            headers.insert(
                HeaderName::try_from(name).unwrap(),
                HeaderValue::try_from(value).unwrap(),
            );
        }
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        headers
    }

    #[test]
    fn signed_easypost_event_is_accepted_with_its_event_id_as_delivery_id() {
        let headers = signed("easypost", "ep-current", BODY.as_bytes());
        let accepted = registry()
            .evaluate("easypost", &headers, None, BODY.as_bytes(), now())
            .unwrap();
        assert_eq!(accepted.delivery_id, "evt_1");
        assert!(accepted.payload_hash.is_some());
        assert_eq!(accepted.content_type.as_deref(), Some("application/json"));
    }

    #[test]
    fn previous_secret_still_verifies_during_rotation() {
        let headers = signed("easypost", "ep-previous", BODY.as_bytes());
        assert!(
            registry()
                .evaluate("easypost", &headers, None, BODY.as_bytes(), now())
                .is_ok()
        );
    }

    #[test]
    fn standard_webhooks_delivery_id_is_the_signed_message_id() {
        let headers = signed(
            "tms",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            BODY.as_bytes(),
        );
        let accepted = registry()
            .evaluate("tms", &headers, None, BODY.as_bytes(), now())
            .unwrap();
        assert_eq!(accepted.delivery_id, "msg_1");
        assert_eq!(accepted.payload_hash, Some(sha256_tag(BODY.as_bytes())));
    }

    #[test]
    fn rejections_follow_the_status_table() {
        let good = signed("easypost", "ep-current", BODY.as_bytes());
        let big = vec![b' '; 8193];
        let empty = HeaderMap::new();
        let mut text_plain = good.clone();
        text_plain.insert("content-type", HeaderValue::from_static("text/plain"));
        let mut no_type = good.clone();
        no_type.remove("content-type");
        let wrong_secret = signed("easypost", "not-the-secret", BODY.as_bytes());
        let garbage = b"{not json";
        let signed_garbage = signed("easypost", "ep-current", garbage);
        type Case<'a> = (&'a str, &'a str, &'a HeaderMap, &'a [u8], u16, &'a str);
        let cases: Vec<Case> = vec![
            (
                "unknown partner",
                "nobody",
                &good,
                BODY.as_bytes(),
                404,
                "unknown_partner",
            ),
            (
                "body over the limit, even unsigned",
                "easypost",
                &empty,
                &big,
                413,
                "payload_too_large",
            ),
            (
                "content type not configured",
                "easypost",
                &text_plain,
                BODY.as_bytes(),
                415,
                "unsupported_media_type",
            ),
            (
                "no content type",
                "easypost",
                &no_type,
                BODY.as_bytes(),
                415,
                "unsupported_media_type",
            ),
            (
                "wrong secret",
                "easypost",
                &wrong_secret,
                BODY.as_bytes(),
                401,
                "unauthorized",
            ),
            (
                "tampered body",
                "easypost",
                &good,
                &BODY.as_bytes()[1..],
                401,
                "unauthorized",
            ),
            (
                "signed but not JSON",
                "easypost",
                &signed_garbage,
                garbage,
                400,
                "malformed_payload",
            ),
        ];
        let registry = registry();
        for (name, partner, headers, body, status, code) in cases {
            let rejection = registry
                .evaluate(partner, headers, None, body, now())
                .unwrap_err();
            assert_eq!(
                (rejection.status(), rejection.code()),
                (status, code),
                "{name}"
            );
        }
    }

    #[test]
    fn unauthorized_message_does_not_say_which_part_failed() {
        let headers = signed("easypost", "wrong", BODY.as_bytes());
        let rejection = registry()
            .evaluate("easypost", &headers, None, BODY.as_bytes(), now())
            .unwrap_err();
        assert_eq!(
            rejection.message(),
            "webhook signature could not be verified"
        );
    }

    #[test]
    fn partner_whose_secrets_cannot_be_resolved_is_a_config_error() {
        let file = PartnersFile::parse(
            "[[partner]]\nid = \"x\"\nformat = \"easypost\"\n[partner.signature]\nscheme = \"easypost\"\nsecrets = [\"env:FREIGHTBRIDGE_TEST_UNSET_VARIABLE\"]\n",
        )
        .unwrap();
        assert!(Registry::build(&file, resolve_local).is_err());
    }
}

/// Re-reading a partner's secrets after a mismatch, against the real Secrets Manager resolver
/// over an in-memory source (tokio's paused clock stands in for the minute between reads).
#[cfg(test)]
mod rotation_tests {
    use std::io::Write;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use http::{HeaderName, HeaderValue};

    use super::*;
    use crate::aws::secrets::{MIN_REFRESH_INTERVAL, SecretSource, SecretsResolver};
    use crate::config::resolve_local;
    use crate::signature::{Scheme, sign};

    const PARTNERS: &str = r#"
[[partner]]
id = "rotating"
format = "easypost"
[partner.signature]
scheme = "standard-webhooks"
secrets = ["secretsmanager:rotating-current", "secretsmanager:rotating-previous"]

[[partner]]
id = "local"
format = "easypost"
[partner.signature]
scheme = "standard-webhooks"
secrets = ["whsec_bG9jYWwta2V5", "env:FREIGHTBRIDGE_TEST_UNSET_ROTATION_VARIABLE"]
"#;

    const LOCAL_KEY: &str = "whsec_bG9jYWwta2V5";

    const BODY: &[u8] =
        include_bytes!("../tests/fixtures/partners/easypost-tracker-updated-in-transit.json");

    /// A Standard Webhooks secret, distinct per generation.
    fn key(generation: &str) -> String {
        format!("whsec_{}", STANDARD.encode(format!("key-{generation}")))
    }

    /// Secrets by id (`None`: the service is down), counting reads per id.
    #[derive(Default)]
    struct FakeSource {
        values: Mutex<HashMap<String, Option<String>>>,
        reads: Mutex<HashMap<String, usize>>,
        /// How long a read takes, so that concurrent requests overlap.
        latency: Duration,
    }

    impl FakeSource {
        fn serving(current: &str, previous: &str) -> Self {
            let source = Self::default();
            source.set(Some(current), Some(previous));
            source
        }

        fn set(&self, current: Option<&str>, previous: Option<&str>) {
            let mut values = self.values.lock().unwrap();
            values.insert("rotating-current".into(), current.map(str::to_owned));
            values.insert("rotating-previous".into(), previous.map(str::to_owned));
        }

        fn reads(&self) -> (usize, usize) {
            let reads = self.reads.lock().unwrap();
            let count = |id: &str| reads.get(id).copied().unwrap_or_default();
            (count("rotating-current"), count("rotating-previous"))
        }
    }

    impl SecretSource for FakeSource {
        async fn fetch(&self, secret_id: &str) -> Result<String, String> {
            *self
                .reads
                .lock()
                .unwrap()
                .entry(secret_id.to_owned())
                .or_default() += 1;
            tokio::time::sleep(self.latency).await;
            let value = self
                .values
                .lock()
                .unwrap()
                .get(secret_id)
                .cloned()
                .flatten();
            value.ok_or_else(|| "connection refused".to_owned())
        }
    }

    /// Counts the refreshes asked for, whatever the resolver then does with them.
    struct CountingRefresher<'a> {
        inner: &'a SecretsResolver<FakeSource>,
        calls: AtomicUsize,
    }

    impl SecretRefresher for CountingRefresher<'_> {
        async fn refresh(&self, reference: &SecretRef) -> Result<Secret, ConfigError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.inner.refresh(reference).await
        }
    }

    /// The registry as webhook-ingress builds it at cold start: Secrets Manager values read
    /// through the resolver first, the others resolved locally.
    async fn cold_start(resolver: &SecretsResolver<FakeSource>) -> Registry {
        let file = PartnersFile::parse(PARTNERS).unwrap();
        let mut read = Vec::new();
        for text in file.partner.iter().flat_map(|p| &p.signature.secrets) {
            let reference = SecretRef::parse(text).unwrap();
            if let SecretRef::SecretsManager(_) = reference {
                let secret = resolver.resolve(&reference).await.unwrap();
                read.push((reference, secret));
            }
        }
        Registry::build(&file, |reference| {
            match read.iter().find(|(r, _)| r == reference) {
                Some((_, secret)) => Ok(secret.clone()),
                None => resolve_local(reference),
            }
        })
        .unwrap()
    }

    fn now() -> DateTime<Utc> {
        "2026-11-27T09:00:00Z".parse().unwrap()
    }

    fn signed_at(secret: &str, message_id: &str, at: DateTime<Utc>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let pairs = sign(
            &Scheme::StandardWebhooks,
            &Secret::new(secret),
            BODY,
            at,
            message_id,
        )
        .unwrap();
        for (name, value) in pairs {
            headers.insert(
                HeaderName::try_from(name).unwrap(),
                HeaderValue::try_from(value).unwrap(),
            );
        }
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers
    }

    fn signed(secret: &str, message_id: &str) -> HeaderMap {
        signed_at(secret, message_id, now())
    }

    async fn evaluate(
        registry: &Registry,
        secrets: &impl SecretRefresher,
        partner: &str,
        headers: &HeaderMap,
    ) -> Result<Accepted, Rejection> {
        registry
            .evaluate_refreshing(secrets, partner, headers, None, BODY, now())
            .await
    }

    fn is_mismatch(outcome: &Result<Accepted, Rejection>) -> bool {
        matches!(
            outcome,
            Err(Rejection::Unauthorized(SignatureError::Mismatch))
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_rotated_secret_is_accepted_once_the_refresh_interval_has_passed() {
        let resolver = SecretsResolver::new(FakeSource::serving(&key("1"), &key("0")));
        let registry = cold_start(&resolver).await;
        // The partner rotates: the new secret becomes current, the old one previous.
        resolver.source().set(Some(&key("2")), Some(&key("1")));
        let rotated = signed(&key("2"), "msg_rotated");

        let outcome = evaluate(&registry, &resolver, "rotating", &rotated).await;
        assert!(is_mismatch(&outcome), "{outcome:?}");
        tokio::time::advance(MIN_REFRESH_INTERVAL / 2).await;
        let outcome = evaluate(&registry, &resolver, "rotating", &rotated).await;
        assert!(is_mismatch(&outcome), "{outcome:?}");
        assert_eq!(
            resolver.source().reads(),
            (1, 1),
            "still the cold-start reads"
        );

        tokio::time::advance(MIN_REFRESH_INTERVAL / 2).await;
        let accepted = evaluate(&registry, &resolver, "rotating", &rotated)
            .await
            .unwrap();
        assert_eq!(accepted.delivery_id, "msg_rotated");
        assert_eq!(
            resolver.source().reads(),
            (2, 2),
            "current and previous re-read"
        );

        // The new verifier stays in force, holding both of the new pair and nothing older.
        for (secret, accepted) in [(key("2"), true), (key("1"), true), (key("0"), false)] {
            let outcome = registry.evaluate("rotating", &signed(&secret, "m"), None, BODY, now());
            assert_eq!(outcome.is_ok(), accepted, "{outcome:?}");
        }
        assert_eq!(resolver.source().reads(), (2, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_bad_signatures_reads_each_secret_at_most_once_a_minute() {
        let source = FakeSource {
            latency: Duration::from_millis(100),
            ..FakeSource::serving(&key("1"), &key("0"))
        };
        let resolver = SecretsResolver::new(source);
        let registry = cold_start(&resolver).await;
        let forged = signed(&key("forged"), "msg_forged");

        for _ in 0..50 {
            let outcome = evaluate(&registry, &resolver, "rotating", &forged).await;
            assert!(is_mismatch(&outcome), "{outcome:?}");
        }
        assert_eq!(resolver.source().reads(), (1, 1));

        tokio::time::advance(MIN_REFRESH_INTERVAL).await;
        // Concurrent, then one after another: one read per secret for the whole minute.
        let flood = (0..50).map(|_| evaluate(&registry, &resolver, "rotating", &forged));
        for outcome in futures::future::join_all(flood).await {
            assert!(is_mismatch(&outcome), "{outcome:?}");
        }
        for _ in 0..50 {
            let outcome = evaluate(&registry, &resolver, "rotating", &forged).await;
            assert!(is_mismatch(&outcome), "{outcome:?}");
        }
        assert_eq!(resolver.source().reads(), (2, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_refresh_keeps_the_secrets_in_use_and_logs_only_the_reference() {
        let logs = Logs::default();
        let _guard = tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(logs.clone())
                .with_ansi(false)
                .finish(),
        );
        let resolver = SecretsResolver::new(FakeSource::serving(&key("1"), &key("0")));
        let registry = cold_start(&resolver).await;
        resolver.source().set(None, None);
        tokio::time::advance(MIN_REFRESH_INTERVAL).await;

        let outcome = evaluate(&registry, &resolver, "rotating", &signed(&key("2"), "m1")).await;
        assert!(is_mismatch(&outcome), "{outcome:?}");
        assert_eq!(resolver.source().reads(), (2, 2));
        for secret in [key("1"), key("0")] {
            let outcome = evaluate(&registry, &resolver, "rotating", &signed(&secret, "m2")).await;
            assert!(outcome.is_ok(), "{outcome:?}");
        }

        let text = logs.text();
        for reference in [
            "secretsmanager:rotating-current",
            "secretsmanager:rotating-previous",
        ] {
            assert!(
                text.lines().any(|line| line.contains("partner=rotating")
                    && line.contains(reference)
                    && line.contains("could not be re-read")),
                "{text}"
            );
        }
        for secret in [key("0"), key("1"), key("2")] {
            assert!(!text.contains(&secret), "{text}");
        }

        // Service back with the rotated pair: a failed read counted too, so only after the
        // next minute.
        resolver.source().set(Some(&key("2")), Some(&key("1")));
        let rotated = signed(&key("2"), "m3");
        let outcome = evaluate(&registry, &resolver, "rotating", &rotated).await;
        assert!(is_mismatch(&outcome), "{outcome:?}");
        tokio::time::advance(MIN_REFRESH_INTERVAL).await;
        assert!(
            evaluate(&registry, &resolver, "rotating", &rotated)
                .await
                .is_ok()
        );
        assert!(!logs.text().contains(&key("2")));
    }

    #[tokio::test(start_paused = true)]
    async fn only_a_mismatch_from_a_secrets_manager_partner_asks_for_a_refresh() {
        let resolver = SecretsResolver::new(FakeSource::serving(&key("1"), &key("0")));
        let registry = cold_start(&resolver).await;
        tokio::time::advance(MIN_REFRESH_INTERVAL).await;
        let forged = signed(&key("forged"), "m");
        let mut unsigned = forged.clone();
        unsigned.remove(crate::signature::WEBHOOK_SIGNATURE);
        let mut malformed = forged.clone();
        malformed.insert(
            crate::signature::WEBHOOK_SIGNATURE,
            HeaderValue::from_static("v1,not-base64"),
        );
        let stale = signed_at(&key("1"), "m", now() - chrono::Duration::hours(1));
        let cases: [(&str, &str, &HeaderMap, usize); 6] = [
            ("literal partner, wrong key", "local", &forged, 0),
            (
                "literal partner, right key",
                "local",
                &signed(LOCAL_KEY, "m"),
                0,
            ),
            ("no signature header", "rotating", &unsigned, 0),
            ("malformed signature", "rotating", &malformed, 0),
            ("stale timestamp", "rotating", &stale, 0),
            ("wrong key", "rotating", &forged, 2),
        ];
        for (name, partner, headers, expected_calls) in cases {
            let counting = CountingRefresher {
                inner: &resolver,
                calls: AtomicUsize::new(0),
            };
            let _ = evaluate(&registry, &counting, partner, headers).await;
            assert_eq!(
                counting.calls.load(Ordering::SeqCst),
                expected_calls,
                "{name}"
            );
        }
        assert_eq!(
            resolver.source().reads(),
            (2, 2),
            "only the wrong key re-read"
        );
    }

    /// Log lines written by the test's subscriber.
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl Logs {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl Write for Logs {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
        type Writer = Logs;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }
}
