//! The ingress decision, free of I/O: is this request from a partner we know, of an acceptable
//! size and type, correctly signed and well-formed — and if so, which delivery is it? The
//! webhook-ingress function adds dedupe and publishing around it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use http::HeaderMap;

use crate::config::{ConfigError, DEFAULT_MAX_BODY_BYTES, PartnersFile, Secret, SecretRef};
use crate::idempotency::sha256_tag;
use crate::partners::{Adapter, Format, PartnerError};
use crate::signature::{SignatureError, Verifier};

/// A partner as ingress needs it: its format, verifier and limits, prepared once at cold start.
#[derive(Debug)]
pub struct Partner {
    pub id: String,
    pub adapter: Adapter,
    pub verifier: Verifier,
    pub content_types: Vec<String>,
    pub max_body_bytes: usize,
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
            let mut secrets = Vec::new();
            for reference in &cfg.signature.secrets {
                let reference = SecretRef::parse(reference).map_err(fail)?;
                match resolve(&reference) {
                    Ok(secret) => secrets.push(secret),
                    // A previous secret that is not set is fine (no rotation under way); the
                    // partner still needs at least one secret, checked below.
                    Err(e) => tracing::warn!(partner = %cfg.id, error = %e, "secret not available"),
                }
            }
            if secrets.is_empty() {
                return Err(fail(
                    "none of the partner's secrets could be resolved".into(),
                ));
            }
            let verifier =
                Verifier::from_config(&cfg.signature, &secrets).map_err(|e| fail(e.to_string()))?;
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
                    verifier,
                    content_types,
                    max_body_bytes: cfg.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES),
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

    /// Decide about one request. Checks run cheapest and least trusting first: the body is
    /// only parsed after its signature verified. `query` is the raw query string, which a
    /// `query-token` partner's token arrives in; it is never logged.
    pub fn evaluate(
        &self,
        partner_id: &str,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Accepted, Rejection> {
        let partner = self.get(partner_id).ok_or(Rejection::UnknownPartner)?;
        if body.len() > partner.max_body_bytes {
            return Err(Rejection::PayloadTooLarge {
                limit: partner.max_body_bytes,
            });
        }
        let media_type = media_type(headers);
        if !partner
            .content_types
            .iter()
            .any(|allowed| media_type.as_deref() == Some(allowed.as_str()))
        {
            return Err(Rejection::UnsupportedMediaType);
        }
        partner
            .verifier
            .verify(headers, query, body, now)
            .map_err(Rejection::Unauthorized)?;
        let key = partner
            .adapter
            .inspect(body)
            .map_err(Rejection::Malformed)?;
        let (delivery_id, payload_hash) = match partner.verifier.scheme().delivery_id_header() {
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
            partner: partner.id.clone(),
            format: partner.adapter.format(),
            delivery_id,
            payload_hash,
            content_type: media_type,
        })
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
        let scheme = registry.get(partner).unwrap().verifier.scheme().clone();
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
