//! Webhook signature schemes: verification of raw bodies, and signing for local senders.
//! A `Verifier` is built once per partner (keys prepared up front, current and previous secret)
//! and checks each delivery's headers (and, for token partners, its query string) against its
//! exact body bytes; `sign` produces what that partner would send, for `freightctl send` and tests.

mod key;
mod scheme;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Duration, Utc};
use http::{HeaderMap, HeaderName};
use subtle::{Choice, ConstantTimeEq as _};
use thiserror::Error;

use self::key::{BasicCredentials, Fingerprint, MAC_LEN, PreparedKey};
use self::scheme::Wire;
pub use self::scheme::{
    AFTERSHIP_SIGNATURE, AUTHORIZATION, DEFAULT_QUERY_PARAMETER, DEFAULT_TOLERANCE_SECONDS,
    EASYPOST_SIGNATURE, Encoding, SHIPPO_SIGNATURE, Scheme, WEBHOOK_ID, WEBHOOK_SIGNATURE,
    WEBHOOK_TIMESTAMP, tolerance_from_config,
};
use crate::config::{Secret, SignatureConfig};
use crate::failure::{Classify, FailureClass};

/// `sign` returns a query-string parameter as a pseudo-header named `?<parameter>` (never a
/// valid HTTP header name): the sender puts it in the URL instead. See [`query_parameter`].
pub const QUERY_PARAMETER_MARK: &str = "?";

/// The query parameter a pair from [`sign`] stands for, if it is one rather than a header.
pub fn query_parameter(name: &str) -> Option<&str> {
    name.strip_prefix(QUERY_PARAMETER_MARK)
}

const ID_HEADER: HeaderName = HeaderName::from_static(WEBHOOK_ID);
const TIMESTAMP_HEADER: HeaderName = HeaderName::from_static(WEBHOOK_TIMESTAMP);
const SIGNATURE_HEADER: HeaderName = HeaderName::from_static(WEBHOOK_SIGNATURE);
const AUTHORIZATION_HEADER: HeaderName = HeaderName::from_static(AUTHORIZATION);
const STANDARD_WEBHOOKS_VERSION: &str = "v1";
/// Stripe-shaped headers (`t=…,v1=…`): the timestamp and signature keys.
const TIMESTAMP_KEY: &str = "t";
const SIGNATURE_KEY: &str = "v1";
/// Far more than any `user:password` needs; keeps a hostile header from costing a big decode.
const MAX_BASIC_CREDENTIALS_LEN: usize = 1024;

/// Why a delivery was refused. Messages name headers at most: never a secret, a received
/// signature or the expected one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("missing signature header {0}")]
    MissingHeader(String),
    #[error("missing query parameter {0}")]
    MissingQueryParameter(String),
    #[error("signature header is malformed")]
    Malformed,
    #[error("timestamp header is not Unix seconds")]
    InvalidTimestamp,
    #[error("signature does not match")]
    Mismatch,
    #[error("timestamp is older than the allowed tolerance")]
    TimestampTooOld,
    #[error("timestamp is further ahead than the allowed tolerance")]
    TimestampTooNew,
}

impl Classify for SignatureError {
    fn class(&self) -> FailureClass {
        // The partner resends the same bytes: retrying cannot change the verdict.
        FailureClass::Permanent
    }

    fn code(&self) -> &'static str {
        match self {
            SignatureError::MissingHeader(_) | SignatureError::MissingQueryParameter(_) => {
                "signature_missing"
            }
            SignatureError::Malformed => "signature_malformed",
            SignatureError::InvalidTimestamp => "timestamp_malformed",
            SignatureError::Mismatch => "signature_mismatch",
            SignatureError::TimestampTooOld | SignatureError::TimestampTooNew => {
                "timestamp_out_of_tolerance"
            }
        }
    }
}

/// A partner's signature settings cannot be used. Secrets are named by position only.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureConfigError {
    #[error(
        "unknown signature scheme \"{0}\" (expected standard-webhooks, easypost, aftership, hmac-sha256, shippo, query-token or basic)"
    )]
    UnknownScheme(String),
    #[error("signature scheme {scheme} needs the `{option}` option")]
    MissingOption {
        scheme: &'static str,
        option: &'static str,
    },
    #[error("option `{option}` does not apply to signature scheme {scheme}")]
    UnsupportedOption {
        scheme: &'static str,
        option: &'static str,
    },
    #[error("option `{option}` {message}")]
    InvalidOption {
        option: &'static str,
        message: String,
    },
    #[error("expected one or two secrets (current, previous), got {0}")]
    SecretCount(usize),
    #[error("secret {position} {reason}")]
    InvalidSecret {
        position: usize,
        reason: &'static str,
    },
    #[error("tolerance must be at least one second for a timestamped scheme")]
    InvalidTolerance,
    #[error("message id must be non-empty printable ASCII without '.'")]
    InvalidMessageId,
}

impl Classify for SignatureConfigError {
    fn class(&self) -> FailureClass {
        FailureClass::Permanent
    }

    fn code(&self) -> &'static str {
        "signature_config"
    }
}

/// Checks deliveries for one partner. Cheap to clone; safe to share between requests.
#[derive(Clone)]
pub struct Verifier {
    scheme: Scheme,
    check: Check,
    tolerance: Duration,
}

/// The scheme's wire shape together with the keys prepared for it, so that a verifier can only
/// hold the kind of key its scheme uses. Every list holds the current secret first, then the
/// previous one while a rotation is under way.
#[derive(Clone)]
enum Check {
    StandardWebhooks(Vec<PreparedKey>),
    SingleHeader {
        header: HeaderName,
        prefix: Cow<'static, str>,
        encoding: Encoding,
        keys: Vec<PreparedKey>,
    },
    TimestampedHeader {
        header: HeaderName,
        keys: Vec<PreparedKey>,
    },
    QueryToken {
        parameter: String,
        tokens: Vec<Fingerprint>,
    },
    Basic(Vec<BasicCredentials>),
}

impl Check {
    fn key_count(&self) -> usize {
        match self {
            Check::StandardWebhooks(keys)
            | Check::SingleHeader { keys, .. }
            | Check::TimestampedHeader { keys, .. } => keys.len(),
            Check::QueryToken { tokens, .. } => tokens.len(),
            Check::Basic(credentials) => credentials.len(),
        }
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("scheme", &self.scheme)
            .field("keys", &self.check.key_count())
            .field("tolerance", &self.tolerance)
            .finish()
    }
}

impl Verifier {
    /// `secrets` holds the current secret, then optionally the previous one. `tolerance` only
    /// matters for timestamped schemes.
    pub fn new(
        scheme: Scheme,
        secrets: &[Secret],
        tolerance: Duration,
    ) -> Result<Self, SignatureConfigError> {
        if secrets.is_empty() || secrets.len() > 2 {
            return Err(SignatureConfigError::SecretCount(secrets.len()));
        }
        if scheme.is_timestamped() && tolerance < Duration::seconds(1) {
            return Err(SignatureConfigError::InvalidTolerance);
        }
        // Secrets are named by position (1 = current, 2 = previous) in errors.
        let numbered = || secrets.iter().zip(1..);
        let mac_keys = || {
            numbered()
                .map(|(secret, position)| PreparedKey::prepare(&scheme, secret, position))
                .collect::<Result<Vec<_>, _>>()
        };
        let check = match scheme.wire()? {
            Wire::StandardWebhooks => Check::StandardWebhooks(mac_keys()?),
            Wire::SingleHeader {
                header,
                prefix,
                encoding,
            } => Check::SingleHeader {
                header,
                prefix,
                encoding,
                keys: mac_keys()?,
            },
            Wire::TimestampedHeader { header } => Check::TimestampedHeader {
                header,
                keys: mac_keys()?,
            },
            Wire::QueryToken { parameter } => Check::QueryToken {
                parameter,
                tokens: numbered()
                    .map(|(secret, position)| key::prepare_token(secret, position))
                    .collect::<Result<_, _>>()?,
            },
            Wire::Basic => Check::Basic(
                numbered()
                    .map(|(secret, position)| BasicCredentials::prepare(secret, position))
                    .collect::<Result<_, _>>()?,
            ),
        };
        Ok(Self {
            scheme,
            check,
            tolerance,
        })
    }

    /// A verifier for a partner entry, its secret references already resolved (same order).
    pub fn from_config(
        cfg: &SignatureConfig,
        secrets: &[Secret],
    ) -> Result<Self, SignatureConfigError> {
        let scheme = Scheme::from_config(cfg)?;
        let tolerance = tolerance_from_config(cfg)?;
        Self::new(scheme, secrets, tolerance)
    }

    /// Accepts the delivery if any of its signatures was made with one of our secrets over
    /// exactly these body bytes (and, for timestamped schemes, within the tolerance of `now`),
    /// or, for credential schemes, if it carries one of our credentials. `query` is the
    /// request's raw query string (without `?`); it may hold a token, so it is never logged.
    pub fn verify(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        match &self.check {
            Check::StandardWebhooks(keys) => {
                self.verify_standard_webhooks(keys, headers, body, now)
            }
            Check::SingleHeader {
                header,
                prefix,
                encoding,
                keys,
            } => verify_single_header(keys, headers, body, header, prefix, *encoding),
            Check::TimestampedHeader { header, keys } => {
                self.verify_timestamped_header(keys, headers, header, body, now)
            }
            Check::QueryToken { parameter, tokens } => verify_query_token(tokens, parameter, query),
            Check::Basic(credentials) => verify_basic(credentials, headers),
        }
    }

    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    fn verify_standard_webhooks(
        &self,
        keys: &[PreparedKey],
        headers: &HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        let id = single_value(headers, &ID_HEADER)?;
        let timestamp = single_value(headers, &TIMESTAMP_HEADER)?;
        let signatures = headers.get_all(&SIGNATURE_HEADER);
        if signatures.iter().next().is_none() {
            return Err(SignatureError::MissingHeader(WEBHOOK_SIGNATURE.to_owned()));
        }
        if !is_valid_message_id(id) {
            return Err(SignatureError::Malformed);
        }
        let sent_at = parse_unix_seconds(timestamp).ok_or(SignatureError::InvalidTimestamp)?;
        self.check_window(sent_at, now)?;

        // The timestamp is signed as sent, so it is fed to the MAC as text, not re-rendered.
        let expected: Vec<[u8; MAC_LEN]> = keys
            .iter()
            .map(|key| key.mac(&[id.as_bytes(), b".", timestamp.as_bytes(), b".", body]))
            .collect();
        let mut saw_candidate = false;
        for value in signatures {
            let value = value.to_str().map_err(|_| SignatureError::Malformed)?;
            for item in value.split(' ').filter(|item| !item.is_empty()) {
                // Other versions (`v1a` ed25519, future ones) are skipped, as the spec says.
                let Some((STANDARD_WEBHOOKS_VERSION, encoded)) = item.split_once(',') else {
                    continue;
                };
                let Some(candidate) = decode_mac(encoded, Encoding::Base64) else {
                    continue;
                };
                saw_candidate = true;
                let matched = expected.iter().fold(Choice::from(0), |acc, mac| {
                    acc | mac[..].ct_eq(&candidate[..])
                });
                if bool::from(matched) {
                    return Ok(());
                }
            }
        }
        Err(if saw_candidate {
            SignatureError::Mismatch
        } else {
            SignatureError::Malformed
        })
    }

    /// `t=<unix>,v1=<hex>[,v1=<hex>…]` (Stripe's shape, used by Shippo): the MAC covers
    /// `{t}.{body}`; any `v1` may match, other keys (Stripe's `v0`) are ignored.
    fn verify_timestamped_header(
        &self,
        keys: &[PreparedKey],
        headers: &HeaderMap,
        header: &HeaderName,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<(), SignatureError> {
        let value = single_value(headers, header)?;
        let mut timestamp = None;
        let mut candidates = Vec::new();
        for item in value.split(',').map(|item| item.trim_matches(' ')) {
            let Some((name, text)) = item.split_once('=') else {
                return Err(SignatureError::Malformed);
            };
            match name {
                TIMESTAMP_KEY if timestamp.is_some() => return Err(SignatureError::Malformed),
                TIMESTAMP_KEY => timestamp = Some(text),
                SIGNATURE_KEY => candidates
                    .push(decode_mac(text, Encoding::Hex).ok_or(SignatureError::Malformed)?),
                _ => {}
            }
        }
        let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
        if candidates.is_empty() {
            return Err(SignatureError::Malformed);
        }
        let sent_at = parse_unix_seconds(timestamp).ok_or(SignatureError::InvalidTimestamp)?;
        self.check_window(sent_at, now)?;
        // As with Standard Webhooks, the timestamp is signed as sent.
        let matched = keys.iter().fold(Choice::from(0), |acc, key| {
            let expected = key.mac(&[timestamp.as_bytes(), b".", body]);
            candidates.iter().fold(acc, |acc, candidate| {
                acc | expected[..].ct_eq(&candidate[..])
            })
        });
        if bool::from(matched) {
            Ok(())
        } else {
            Err(SignatureError::Mismatch)
        }
    }

    fn check_window(&self, sent_at: i64, now: DateTime<Utc>) -> Result<(), SignatureError> {
        let tolerance = i128::from(self.tolerance.num_seconds());
        let age = i128::from(now.timestamp()) - i128::from(sent_at);
        if age > tolerance {
            Err(SignatureError::TimestampTooOld)
        } else if -age > tolerance {
            Err(SignatureError::TimestampTooNew)
        } else {
            Ok(())
        }
    }
}

fn verify_single_header(
    keys: &[PreparedKey],
    headers: &HeaderMap,
    body: &[u8],
    header: &HeaderName,
    prefix: &str,
    encoding: Encoding,
) -> Result<(), SignatureError> {
    let value = single_value(headers, header)?;
    let well_formed = value
        .strip_prefix(prefix)
        .and_then(|encoded| decode_mac(encoded, encoding))
        .is_some();
    if !well_formed {
        return Err(SignatureError::Malformed);
    }
    // The partners' own clients compare the whole header text (prefix and canonical
    // encoding included), so upper-case hex is refused here as it is there.
    let matched = keys.iter().fold(Choice::from(0), |acc, key| {
        let expected = render(prefix, encoding, &key.mac(&[body]));
        acc | value.as_bytes().ct_eq(expected.as_bytes())
    });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The token must appear exactly once: with two, what we checked and what a proxy or a later
/// reader takes could differ.
fn verify_query_token(
    tokens: &[Fingerprint],
    parameter: &str,
    query: Option<&str>,
) -> Result<(), SignatureError> {
    let mut values = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == parameter)
        .map(|(_, value)| value);
    let token = values
        .next()
        .ok_or_else(|| SignatureError::MissingQueryParameter(parameter.to_owned()))?;
    if values.next().is_some() {
        return Err(SignatureError::Malformed);
    }
    let matched = tokens.iter().fold(Choice::from(0), |acc, expected| {
        acc | expected.matches(token.as_bytes())
    });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// `Authorization: Basic <base64(user:password)>`; the scheme name is case-insensitive
/// (RFC 7235), the base64 is standard and padded.
fn verify_basic(
    credentials: &[BasicCredentials],
    headers: &HeaderMap,
) -> Result<(), SignatureError> {
    let value = single_value(headers, &AUTHORIZATION_HEADER)?;
    let (auth_scheme, encoded) = value.split_once(' ').ok_or(SignatureError::Malformed)?;
    let encoded = encoded.trim_matches(' ');
    if !auth_scheme.eq_ignore_ascii_case("basic") || encoded.len() > MAX_BASIC_CREDENTIALS_LEN {
        return Err(SignatureError::Malformed);
    }
    let decoded = STANDARD
        .decode(encoded)
        .map_err(|_| SignatureError::Malformed)?;
    let colon = decoded
        .iter()
        .position(|&b| b == b':')
        .ok_or(SignatureError::Malformed)?;
    let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
    let matched = credentials.iter().fold(Choice::from(0), |acc, expected| {
        acc | expected.matches(user, password)
    });
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// What a sender using `scheme` attaches to `body` at `now`: header name and value pairs.
/// `message_id` becomes the Standard Webhooks `webhook-id`; the other schemes sign no id.
/// A `query-token` partner's token comes back as a pseudo-header `?<parameter>` (see
/// [`query_parameter`]) that belongs in the URL's query string, not in the headers.
pub fn sign(
    scheme: &Scheme,
    secret: &Secret,
    body: &[u8],
    now: DateTime<Utc>,
    message_id: &str,
) -> Result<Vec<(String, String)>, SignatureConfigError> {
    let wire = scheme.wire()?;
    let mac_key = || PreparedKey::prepare(scheme, secret, 1);
    Ok(match wire {
        Wire::StandardWebhooks => {
            let key = mac_key()?;
            if !is_valid_message_id(message_id) || !message_id.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(SignatureConfigError::InvalidMessageId);
            }
            let timestamp = now.timestamp().to_string();
            let mac = key.mac(&[
                message_id.as_bytes(),
                b".",
                timestamp.as_bytes(),
                b".",
                body,
            ]);
            vec![
                (WEBHOOK_ID.to_owned(), message_id.to_owned()),
                (WEBHOOK_TIMESTAMP.to_owned(), timestamp),
                (
                    WEBHOOK_SIGNATURE.to_owned(),
                    format!("{STANDARD_WEBHOOKS_VERSION},{}", STANDARD.encode(mac)),
                ),
            ]
        }
        Wire::SingleHeader {
            header,
            prefix,
            encoding,
        } => vec![(
            header.as_str().to_owned(),
            render(&prefix, encoding, &mac_key()?.mac(&[body])),
        )],
        Wire::TimestampedHeader { header } => {
            let timestamp = now.timestamp().to_string();
            let mac = mac_key()?.mac(&[timestamp.as_bytes(), b".", body]);
            vec![(
                header.as_str().to_owned(),
                format!(
                    "{TIMESTAMP_KEY}={timestamp},{SIGNATURE_KEY}={}",
                    hex::encode(mac)
                ),
            )]
        }
        Wire::QueryToken { parameter } => {
            key::prepare_token(secret, 1)?;
            vec![(
                format!("{QUERY_PARAMETER_MARK}{parameter}"),
                secret.expose().to_owned(),
            )]
        }
        Wire::Basic => {
            key::split_basic_secret(secret, 1)?;
            vec![(
                AUTHORIZATION.to_owned(),
                format!("Basic {}", STANDARD.encode(secret.expose())),
            )]
        }
    })
}

/// A header that must appear exactly once: a second copy could make what we verify differ
/// from what a later step reads.
fn single_value<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<&'h str, SignatureError> {
    let mut values = headers.get_all(name).iter();
    let first = values
        .next()
        .ok_or_else(|| SignatureError::MissingHeader(name.as_str().to_owned()))?;
    if values.next().is_some() {
        return Err(SignatureError::Malformed);
    }
    first.to_str().map_err(|_| SignatureError::Malformed)
}

/// The spec forbids `.` in ids because `id.ts.body` would otherwise be ambiguous.
fn is_valid_message_id(id: &str) -> bool {
    !id.is_empty() && !id.contains('.')
}

/// Plain decimal digits only: `+5`, ` 5` or `-5` are not what any sender writes.
fn parse_unix_seconds(text: &str) -> Option<i64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A MAC written in `encoding`, if the text is exactly one (lowercase or uppercase hex;
/// padded standard base64).
fn decode_mac(text: &str, encoding: Encoding) -> Option<[u8; MAC_LEN]> {
    let mut mac = [0u8; MAC_LEN];
    match encoding {
        Encoding::Hex => hex::decode_to_slice(text, &mut mac).ok()?,
        Encoding::Base64 => {
            // Checking the length first keeps a huge header from costing a huge allocation.
            if text.len() != MAC_LEN.div_ceil(3) * 4 {
                return None;
            }
            let decoded = STANDARD.decode(text).ok()?;
            if decoded.len() != MAC_LEN {
                return None;
            }
            mac.copy_from_slice(&decoded);
        }
    }
    Some(mac)
}

fn render(prefix: &str, encoding: Encoding, mac: &[u8; MAC_LEN]) -> String {
    let encoded = match encoding {
        Encoding::Hex => hex::encode(mac),
        Encoding::Base64 => STANDARD.encode(mac),
    };
    format!("{prefix}{encoded}")
}
