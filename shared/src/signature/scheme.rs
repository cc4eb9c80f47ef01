//! The signature schemes partners use, read from a partner's `[partner.signature]` table.
//! A scheme is data: which headers (or query parameter) carry what, how the secret becomes a key
//! or credential, and how the MAC is written. `wire` turns it into the one shape the verifier
//! and the signer both work from.

use std::borrow::Cow;

use chrono::Duration;
use http::HeaderName;

use super::SignatureConfigError;
use crate::config::SignatureConfig;

/// Standard Webhooks: unique message id, stable across retries.
pub const WEBHOOK_ID: &str = "webhook-id";
/// Standard Webhooks: Unix seconds of this delivery attempt.
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Standard Webhooks: space-separated `v1,<base64>` items.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";
/// EasyPost: `hmac-sha256-hex=<lowercase hex>`.
pub const EASYPOST_SIGNATURE: &str = "x-hmac-signature";
const EASYPOST_PREFIX: &str = "hmac-sha256-hex=";
/// AfterShip Tracking: base64 MAC of the body.
pub const AFTERSHIP_SIGNATURE: &str = "aftership-hmac-sha256";
/// Shippo HMAC: `t=<unix>,v1=<hex>` (Stripe's shape). Third-party-reported, see partners.md §3:
/// Shippo enables HMAC per account through its account manager and publishes no signed example,
/// so confirm the format against a real delivery before relying on it.
pub const SHIPPO_SIGNATURE: &str = "shippo-auth-signature";
/// HTTP Basic credentials (RFC 7617).
pub const AUTHORIZATION: &str = "authorization";
/// The query parameter a `query-token` partner puts its token in unless configured otherwise
/// (Shippo's documented `?token=`).
pub const DEFAULT_QUERY_PARAMETER: &str = "token";

/// Allowed clock difference for timestamped schemes when the partner entry does not set one
/// (what every Standard Webhooks reference library uses).
pub const DEFAULT_TOLERANCE_SECONDS: u64 = 300;
/// A wider window than a day is no replay protection at all.
const MAX_TOLERANCE_SECONDS: i64 = 86_400;

/// How a MAC is written into a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Lowercase hex.
    Hex,
    /// Standard base64 with padding.
    Base64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64> …`; the secret is
    /// `whsec_` + base64 of the key; the MAC covers `{id}.{timestamp}.{body}`.
    StandardWebhooks,
    /// `X-Hmac-Signature: hmac-sha256-hex=<hex>` over the body, keyed with the NFKD form of
    /// the secret.
    EasyPost,
    /// `aftership-hmac-sha256: <base64>` over the body, keyed with the secret as UTF-8.
    AfterShip,
    /// Any "HMAC-SHA256 of the body in one header" partner, e.g. GitHub-style
    /// `x-hub-signature-256: sha256=<hex>`. The secret is used as UTF-8.
    HmacSha256 {
        header: String,
        prefix: String,
        encoding: Encoding,
    },
    /// `Shippo-Auth-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]`, the MAC over `{t}.{body}`
    /// keyed with the secret as UTF-8, `t` within the tolerance.
    Shippo,
    /// A shared token in the request's query string (`?token=…`), compared in constant time.
    /// Nothing about the body is signed: only TLS keeps it from being altered.
    QueryToken { parameter: String },
    /// `Authorization: Basic base64(user:password)`; the secret is `user:password`.
    Basic,
}

/// The scheme in the form verification and signing work from: header names checked once.
#[derive(Debug, Clone)]
pub(super) enum Wire {
    StandardWebhooks,
    SingleHeader {
        header: HeaderName,
        prefix: Cow<'static, str>,
        encoding: Encoding,
    },
    /// `t=<unix>,v1=<hex>` in one header, the MAC over `{t}.{body}`.
    TimestampedHeader {
        header: HeaderName,
    },
    QueryToken {
        parameter: String,
    },
    Basic,
}

impl Scheme {
    /// Reads a partner's signature table. Options that do not apply to the chosen scheme are
    /// refused rather than ignored, so a typo never silently weakens verification.
    pub fn from_config(cfg: &SignatureConfig) -> Result<Scheme, SignatureConfigError> {
        let scheme = match cfg.scheme.as_str() {
            "standard-webhooks" => Scheme::StandardWebhooks,
            "easypost" => Scheme::EasyPost,
            "aftership" => Scheme::AfterShip,
            "shippo" => Scheme::Shippo,
            "basic" => Scheme::Basic,
            "query-token" => Scheme::QueryToken {
                parameter: cfg
                    .query_parameter
                    .clone()
                    .unwrap_or_else(|| DEFAULT_QUERY_PARAMETER.to_owned()),
            },
            "hmac-sha256" => {
                let header = cfg
                    .header
                    .as_deref()
                    .ok_or(SignatureConfigError::MissingOption {
                        scheme: "hmac-sha256",
                        option: "header",
                    })?;
                let encoding = match cfg.encoding.as_deref() {
                    None | Some("hex") => Encoding::Hex,
                    Some("base64") => Encoding::Base64,
                    Some(_) => {
                        return Err(SignatureConfigError::InvalidOption {
                            option: "encoding",
                            message: "must be \"hex\" or \"base64\"".into(),
                        });
                    }
                };
                Scheme::HmacSha256 {
                    header: header.to_ascii_lowercase(),
                    prefix: cfg.prefix.clone().unwrap_or_default(),
                    encoding,
                }
            }
            other => return Err(SignatureConfigError::UnknownScheme(other.to_owned())),
        };
        if !matches!(scheme, Scheme::HmacSha256 { .. }) {
            let extra = [
                ("header", cfg.header.is_some()),
                ("prefix", cfg.prefix.is_some()),
                ("encoding", cfg.encoding.is_some()),
            ];
            if let Some((option, _)) = extra.iter().find(|(_, set)| *set) {
                return Err(SignatureConfigError::UnsupportedOption {
                    scheme: scheme.name(),
                    option,
                });
            }
        }
        if cfg.query_parameter.is_some() && !matches!(scheme, Scheme::QueryToken { .. }) {
            return Err(SignatureConfigError::UnsupportedOption {
                scheme: scheme.name(),
                option: "query_parameter",
            });
        }
        if cfg.tolerance_seconds.is_some() && !scheme.is_timestamped() {
            return Err(SignatureConfigError::UnsupportedOption {
                scheme: scheme.name(),
                option: "tolerance_seconds",
            });
        }
        scheme.wire()?;
        Ok(scheme)
    }

    /// The name used in the partners file.
    pub fn name(&self) -> &'static str {
        match self {
            Scheme::StandardWebhooks => "standard-webhooks",
            Scheme::EasyPost => "easypost",
            Scheme::AfterShip => "aftership",
            Scheme::HmacSha256 { .. } => "hmac-sha256",
            Scheme::Shippo => "shippo",
            Scheme::QueryToken { .. } => "query-token",
            Scheme::Basic => "basic",
        }
    }

    /// Whether a timestamp is signed, i.e. whether replays outside the tolerance are refused.
    pub fn is_timestamped(&self) -> bool {
        matches!(self, Scheme::StandardWebhooks | Scheme::Shippo)
    }

    /// The header that names the delivery, when the scheme signs one (ingress dedupes on it).
    pub fn delivery_id_header(&self) -> Option<&'static str> {
        match self {
            Scheme::StandardWebhooks => Some(WEBHOOK_ID),
            Scheme::EasyPost
            | Scheme::AfterShip
            | Scheme::HmacSha256 { .. }
            | Scheme::Shippo
            | Scheme::QueryToken { .. }
            | Scheme::Basic => None,
        }
    }

    pub(super) fn wire(&self) -> Result<Wire, SignatureConfigError> {
        Ok(match self {
            Scheme::StandardWebhooks => Wire::StandardWebhooks,
            Scheme::EasyPost => Wire::SingleHeader {
                header: HeaderName::from_static(EASYPOST_SIGNATURE),
                prefix: Cow::Borrowed(EASYPOST_PREFIX),
                encoding: Encoding::Hex,
            },
            Scheme::AfterShip => Wire::SingleHeader {
                header: HeaderName::from_static(AFTERSHIP_SIGNATURE),
                prefix: Cow::Borrowed(""),
                encoding: Encoding::Base64,
            },
            Scheme::HmacSha256 {
                header,
                prefix,
                encoding,
            } => {
                let header = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                    SignatureConfigError::InvalidOption {
                        option: "header",
                        message: "is not a valid HTTP header name".into(),
                    }
                })?;
                // A header value we can read is visible ASCII, so any other prefix never matches.
                if !prefix.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
                    return Err(SignatureConfigError::InvalidOption {
                        option: "prefix",
                        message: "must be printable ASCII".into(),
                    });
                }
                Wire::SingleHeader {
                    header,
                    prefix: Cow::Owned(prefix.clone()),
                    encoding: *encoding,
                }
            }
            Scheme::Shippo => Wire::TimestampedHeader {
                header: HeaderName::from_static(SHIPPO_SIGNATURE),
            },
            Scheme::QueryToken { parameter } => {
                // Unreserved characters only, so the name reads the same encoded or not.
                let plain =
                    |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
                if parameter.is_empty() || !parameter.bytes().all(plain) {
                    return Err(SignatureConfigError::InvalidOption {
                        option: "query_parameter",
                        message: "must be non-empty letters, digits, '-', '_', '.' or '~'".into(),
                    });
                }
                Wire::QueryToken {
                    parameter: parameter.clone(),
                }
            }
            Scheme::Basic => Wire::Basic,
        })
    }
}

/// The clock tolerance a partner entry asks for (`tolerance_seconds`, default 300 s).
pub fn tolerance_from_config(cfg: &SignatureConfig) -> Result<Duration, SignatureConfigError> {
    let seconds = cfg.tolerance_seconds.unwrap_or(DEFAULT_TOLERANCE_SECONDS);
    match i64::try_from(seconds) {
        Ok(s) if (1..=MAX_TOLERANCE_SECONDS).contains(&s) => Ok(Duration::seconds(s)),
        _ => Err(SignatureConfigError::InvalidOption {
            option: "tolerance_seconds",
            message: format!("must be between 1 and {MAX_TOLERANCE_SECONDS}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(scheme: &str) -> SignatureConfig {
        SignatureConfig {
            scheme: scheme.into(),
            secrets: vec!["literal".into()],
            header: None,
            prefix: None,
            encoding: None,
            tolerance_seconds: None,
            query_parameter: None,
        }
    }

    #[test]
    fn named_schemes_are_read_from_config() {
        let cases = [
            ("standard-webhooks", Scheme::StandardWebhooks),
            ("easypost", Scheme::EasyPost),
            ("aftership", Scheme::AfterShip),
            ("shippo", Scheme::Shippo),
            ("basic", Scheme::Basic),
            (
                "query-token",
                Scheme::QueryToken {
                    parameter: "token".into(),
                },
            ),
        ];
        for (name, expected) in cases {
            let scheme = Scheme::from_config(&config(name)).unwrap();
            assert_eq!(scheme, expected, "{name}");
            assert_eq!(scheme.name(), name);
        }
    }

    #[test]
    fn generic_hmac_lowercases_the_header_and_defaults_to_hex_without_prefix() {
        let mut cfg = config("hmac-sha256");
        cfg.header = Some("X-Hub-Signature-256".into());
        assert_eq!(
            Scheme::from_config(&cfg).unwrap(),
            Scheme::HmacSha256 {
                header: "x-hub-signature-256".into(),
                prefix: String::new(),
                encoding: Encoding::Hex,
            }
        );
        cfg.prefix = Some("sha256=".into());
        cfg.encoding = Some("base64".into());
        assert_eq!(
            Scheme::from_config(&cfg).unwrap(),
            Scheme::HmacSha256 {
                header: "x-hub-signature-256".into(),
                prefix: "sha256=".into(),
                encoding: Encoding::Base64,
            }
        );
    }

    #[test]
    fn query_token_parameter_name_is_configurable() {
        let mut cfg = config("query-token");
        cfg.query_parameter = Some("shippo_key".into());
        assert_eq!(
            Scheme::from_config(&cfg).unwrap(),
            Scheme::QueryToken {
                parameter: "shippo_key".into()
            }
        );
    }

    #[test]
    fn bad_scheme_options_are_refused_with_the_option_named() {
        type Edit = fn(&mut SignatureConfig);
        let cases: [(&str, &str, Edit, &str); 15] = [
            ("unknown scheme", "stripe", |_| {}, "stripe"),
            ("generic without header", "hmac-sha256", |_| {}, "header"),
            (
                "generic with unknown encoding",
                "hmac-sha256",
                |c| {
                    c.header = Some("x-sig".into());
                    c.encoding = Some("base32".into());
                },
                "encoding",
            ),
            (
                "generic with invalid header name",
                "hmac-sha256",
                |c| c.header = Some("x sig".into()),
                "header",
            ),
            (
                "generic with non-ASCII prefix",
                "hmac-sha256",
                |c| {
                    c.header = Some("x-sig".into());
                    c.prefix = Some("sé=".into());
                },
                "prefix",
            ),
            (
                "header on a named scheme",
                "easypost",
                |c| c.header = Some("x-sig".into()),
                "header",
            ),
            (
                "encoding on a named scheme",
                "aftership",
                |c| c.encoding = Some("hex".into()),
                "encoding",
            ),
            (
                "tolerance on an untimestamped scheme",
                "easypost",
                |c| c.tolerance_seconds = Some(60),
                "tolerance_seconds",
            ),
            (
                "prefix on standard webhooks",
                "standard-webhooks",
                |c| c.prefix = Some("v1,".into()),
                "prefix",
            ),
            (
                "query parameter on an HMAC scheme",
                "shippo",
                |c| c.query_parameter = Some("token".into()),
                "query_parameter",
            ),
            (
                "header on query-token",
                "query-token",
                |c| c.header = Some("x-token".into()),
                "header",
            ),
            (
                "tolerance on query-token",
                "query-token",
                |c| c.tolerance_seconds = Some(60),
                "tolerance_seconds",
            ),
            (
                "tolerance on basic",
                "basic",
                |c| c.tolerance_seconds = Some(60),
                "tolerance_seconds",
            ),
            (
                "empty query parameter name",
                "query-token",
                |c| c.query_parameter = Some(String::new()),
                "query_parameter",
            ),
            (
                "query parameter name needing encoding",
                "query-token",
                |c| c.query_parameter = Some("to ken&x".into()),
                "query_parameter",
            ),
        ];
        for (case, scheme, edit, mentions) in cases {
            let mut cfg = config(scheme);
            edit(&mut cfg);
            let err = Scheme::from_config(&cfg).expect_err(case);
            assert!(
                err.to_string().contains(mentions),
                "{case}: {err} should mention {mentions}"
            );
        }
    }

    #[test]
    fn tolerance_defaults_to_five_minutes_and_stays_in_range() {
        let mut cfg = config("standard-webhooks");
        assert_eq!(tolerance_from_config(&cfg).unwrap(), Duration::seconds(300));
        cfg.tolerance_seconds = Some(60);
        assert_eq!(tolerance_from_config(&cfg).unwrap(), Duration::seconds(60));
        for bad in [0, 86_401, u64::MAX] {
            cfg.tolerance_seconds = Some(bad);
            assert!(tolerance_from_config(&cfg).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamped_schemes_are_standard_webhooks_and_shippo_and_only_the_first_names_its_delivery()
    {
        let generic = Scheme::HmacSha256 {
            header: "x-sig".into(),
            prefix: String::new(),
            encoding: Encoding::Hex,
        };
        let token = Scheme::QueryToken {
            parameter: "token".into(),
        };
        // (scheme, timestamped, signs a delivery id)
        for (scheme, timestamped, names_delivery) in [
            (Scheme::StandardWebhooks, true, true),
            (Scheme::Shippo, true, false),
            (Scheme::EasyPost, false, false),
            (Scheme::AfterShip, false, false),
            (generic, false, false),
            (token, false, false),
            (Scheme::Basic, false, false),
        ] {
            assert_eq!(scheme.is_timestamped(), timestamped, "{}", scheme.name());
            assert_eq!(
                scheme.delivery_id_header().is_some(),
                names_delivery,
                "{}",
                scheme.name()
            );
        }
    }

    #[test]
    fn shippo_tolerance_defaults_to_five_minutes_and_can_be_set() {
        let mut cfg = config("shippo");
        assert_eq!(tolerance_from_config(&cfg).unwrap(), Duration::seconds(300));
        cfg.tolerance_seconds = Some(120);
        assert!(Scheme::from_config(&cfg).is_ok());
        assert_eq!(tolerance_from_config(&cfg).unwrap(), Duration::seconds(120));
    }
}
