//! Secrets turned into HMAC keys or credential fingerprints, once per verifier. Each scheme reads
//! its secret differently (Standard Webhooks base64-decodes it, EasyPost NFKD-normalises it,
//! Basic splits `user:password`); getting that step wrong is the usual reason a correctly signed
//! delivery fails to verify.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use subtle::{Choice, ConstantTimeEq as _};
use unicode_normalization::UnicodeNormalization as _;

use super::SignatureConfigError;
use super::scheme::Scheme;
use crate::config::Secret;

/// Length of an HMAC-SHA256 tag.
pub(super) const MAC_LEN: usize = 32;

const WHSEC_PREFIX: &str = "whsec_";

/// Standard Webhooks secrets are shown with or without their `=` padding depending on who
/// copied them; both must give the same key.
const SECRET_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An HMAC-SHA256 state already keyed: cloning it skips re-hashing the key on every request.
#[derive(Clone)]
pub(super) struct PreparedKey {
    mac: Hmac<Sha256>,
}

impl PreparedKey {
    /// `position` (1-based) names the secret in errors; the secret itself never appears.
    pub(super) fn prepare(
        scheme: &Scheme,
        secret: &Secret,
        position: usize,
    ) -> Result<Self, SignatureConfigError> {
        let raw = secret.expose();
        let key: Vec<u8> = match scheme {
            Scheme::StandardWebhooks => {
                let encoded = raw.strip_prefix(WHSEC_PREFIX).unwrap_or(raw);
                // The decoder's own error names the offending byte and offset: drop it.
                SECRET_BASE64
                    .decode(encoded)
                    .map_err(|_| SignatureConfigError::InvalidSecret {
                        position,
                        reason: "is not base64 (after an optional whsec_ prefix)",
                    })?
            }
            Scheme::EasyPost => raw.nfkd().collect::<String>().into_bytes(),
            Scheme::AfterShip | Scheme::HmacSha256 { .. } | Scheme::Shippo => {
                raw.as_bytes().to_vec()
            }
            // These compare credentials instead of computing a MAC: see `Fingerprint`.
            Scheme::QueryToken { .. } | Scheme::Basic => {
                return Err(SignatureConfigError::InvalidSecret {
                    position,
                    reason: "is a credential, not an HMAC key",
                });
            }
        };
        if key.is_empty() {
            return Err(SignatureConfigError::InvalidSecret {
                position,
                reason: "is empty",
            });
        }
        let mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| {
            SignatureConfigError::InvalidSecret {
                position,
                reason: "cannot key HMAC-SHA256",
            }
        })?;
        Ok(Self { mac })
    }

    /// The MAC of the concatenated parts (saves joining `id.ts.body` into a new buffer).
    pub(super) fn mac(&self, parts: &[&[u8]]) -> [u8; MAC_LEN] {
        let mut mac = self.mac.clone();
        for part in parts {
            mac.update(part);
        }
        let mut tag = [0u8; MAC_LEN];
        tag.copy_from_slice(&mac.finalize().into_bytes());
        tag
    }
}

/// SHA-256 of a credential. Comparing digests takes the same time whatever the lengths of the
/// received and expected values, where comparing the values would give the length away.
#[derive(Clone)]
pub(super) struct Fingerprint([u8; MAC_LEN]);

impl Fingerprint {
    pub(super) fn of(value: &[u8]) -> Self {
        Fingerprint(Sha256::digest(value).into())
    }

    pub(super) fn matches(&self, candidate: &[u8]) -> Choice {
        Fingerprint::of(candidate).0.ct_eq(&self.0)
    }
}

/// A `query-token` secret: the token the partner puts in the URL.
pub(super) fn prepare_token(
    secret: &Secret,
    position: usize,
) -> Result<Fingerprint, SignatureConfigError> {
    let token = secret.expose();
    if token.is_empty() {
        return Err(SignatureConfigError::InvalidSecret {
            position,
            reason: "is empty",
        });
    }
    Ok(Fingerprint::of(token.as_bytes()))
}

/// A `basic` secret, `user:password`, kept as two fingerprints so that both parts are always
/// compared (no early exit on a wrong user name).
#[derive(Clone)]
pub(super) struct BasicCredentials {
    user: Fingerprint,
    password: Fingerprint,
}

impl BasicCredentials {
    pub(super) fn prepare(secret: &Secret, position: usize) -> Result<Self, SignatureConfigError> {
        let (user, password) = split_basic_secret(secret, position)?;
        Ok(BasicCredentials {
            user: Fingerprint::of(user.as_bytes()),
            password: Fingerprint::of(password.as_bytes()),
        })
    }

    pub(super) fn matches(&self, user: &[u8], password: &[u8]) -> Choice {
        self.user.matches(user) & self.password.matches(password)
    }
}

/// `user:password` split at the first colon, as RFC 7617 does (a user id cannot contain one,
/// a password can). The user may be empty (password-only senders); the password may not.
pub(super) fn split_basic_secret(
    secret: &Secret,
    position: usize,
) -> Result<(&str, &str), SignatureConfigError> {
    match secret.expose().split_once(':') {
        Some((user, password)) if !password.is_empty() => Ok((user, password)),
        _ => Err(SignatureConfigError::InvalidSecret {
            position,
            reason: "must be user:password with a non-empty password",
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac_with(scheme: &Scheme, secret: &str) -> [u8; MAC_LEN] {
        PreparedKey::prepare(scheme, &Secret::new(secret), 1)
            .unwrap()
            .mac(&[b"body"])
    }

    #[test]
    fn standard_webhooks_secret_works_with_or_without_prefix_and_padding() {
        // 22, 23 and 24 key bytes: base64 with two, one and no pad characters.
        for len in [22usize, 23, 24] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let padded = base64::engine::general_purpose::STANDARD.encode(&key);
            let unpadded = padded.trim_end_matches('=');
            let expected = Hmac::<Sha256>::new_from_slice(&key)
                .unwrap()
                .chain_update(b"body")
                .finalize()
                .into_bytes();
            for secret in [
                format!("whsec_{padded}"),
                format!("whsec_{unpadded}"),
                padded.clone(),
                unpadded.to_owned(),
            ] {
                assert_eq!(
                    mac_with(&Scheme::StandardWebhooks, &secret)[..],
                    expected[..],
                    "{len} bytes as {secret}"
                );
            }
        }
    }

    #[test]
    fn easypost_keys_are_the_same_for_composed_and_decomposed_secrets() {
        assert_eq!(
            mac_with(&Scheme::EasyPost, "s\u{e9}cret"),
            mac_with(&Scheme::EasyPost, "se\u{301}cret")
        );
        // The other schemes take the bytes as given, so the two spellings differ there.
        assert_ne!(
            mac_with(&Scheme::AfterShip, "s\u{e9}cret"),
            mac_with(&Scheme::AfterShip, "se\u{301}cret")
        );
    }

    #[test]
    fn unusable_secrets_are_refused_without_echoing_them() {
        let cases = [
            (Scheme::StandardWebhooks, "whsec_", "is empty"),
            (Scheme::StandardWebhooks, "", "is empty"),
            (Scheme::StandardWebhooks, "whsec_s3cr3t!!", "is not base64"),
            (Scheme::EasyPost, "", "is empty"),
            (Scheme::AfterShip, "", "is empty"),
            (Scheme::Shippo, "", "is empty"),
        ];
        for (scheme, secret, reason) in cases {
            let err = match PreparedKey::prepare(&scheme, &Secret::new(secret), 2) {
                Ok(_) => panic!("{secret:?} accepted for {}", scheme.name()),
                Err(err) => err,
            };
            let shown = err.to_string();
            assert!(
                shown.contains(reason) && shown.contains("secret 2"),
                "{shown}"
            );
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
    }

    #[test]
    fn basic_secrets_split_at_the_first_colon_and_need_a_password() {
        let cases = [
            ("carrier:p4ss", Some(("carrier", "p4ss"))),
            ("carrier:p4:ss", Some(("carrier", "p4:ss"))),
            (":p4ss", Some(("", "p4ss"))),
            ("carrier:", None),
            ("carrier", None),
            ("", None),
        ];
        for (secret, expected) in cases {
            let secret = Secret::new(secret);
            let split = split_basic_secret(&secret, 1).ok();
            assert_eq!(split, expected, "{secret:?}");
            assert_eq!(
                BasicCredentials::prepare(&secret, 1).is_ok(),
                expected.is_some()
            );
        }
        let err = BasicCredentials::prepare(&Secret::new("carrier-only-s3cr3t"), 2)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("secret 2") && !err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn basic_credentials_match_only_when_both_parts_match() {
        let creds = BasicCredentials::prepare(&Secret::new("carrier:p4ss"), 1).unwrap();
        let cases: [(&[u8], &[u8], bool); 5] = [
            (b"carrier", b"p4ss", true),
            (b"carrier", b"p4sS", false),
            (b"Carrier", b"p4ss", false),
            (b"carrier", b"", false),
            (b"", b"carrier:p4ss", false),
        ];
        for (user, password, expected) in cases {
            assert_eq!(
                bool::from(creds.matches(user, password)),
                expected,
                "{user:?}"
            );
        }
    }

    #[test]
    fn tokens_match_exactly_whatever_their_length() {
        let token = prepare_token(&Secret::new("tok_123abc"), 1).unwrap();
        for (candidate, expected) in [
            ("tok_123abc", true),
            ("tok_123ab", false),
            ("tok_123abcd", false),
            ("TOK_123ABC", false),
            ("", false),
        ] {
            assert_eq!(
                bool::from(token.matches(candidate.as_bytes())),
                expected,
                "{candidate}"
            );
        }
        assert!(prepare_token(&Secret::new(""), 1).is_err());
    }

    #[test]
    fn credential_schemes_have_no_hmac_key() {
        for scheme in [
            Scheme::Basic,
            Scheme::QueryToken {
                parameter: "token".into(),
            },
        ] {
            assert!(PreparedKey::prepare(&scheme, &Secret::new("a:b"), 1).is_err());
        }
    }
}
