//! Secrets turned into HMAC keys, once per verifier. Each scheme reads its secret differently
//! (Standard Webhooks base64-decodes it, EasyPost NFKD-normalises it); getting that step wrong
//! is the usual reason a correctly signed delivery fails to verify.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, Mac};
use sha2::Sha256;
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
            Scheme::AfterShip | Scheme::HmacSha256 { .. } => raw.as_bytes().to_vec(),
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
}
