//! Configuration: the partners file (who may send us webhooks, in which format, signed how) and
//! secret references (`env:NAME`, `secretsmanager:<arn>`, or a literal for local use).

use std::fmt;
use std::future::Future;
use std::path::Path;

use serde::Deserialize;
use thiserror::Error;

/// Default body limit (DESIGN §3.1).
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid partners file: {0}")]
    Parse(String),
    #[error("partner {partner}: {message}")]
    Partner { partner: String, message: String },
    #[error("secret {reference} could not be resolved: {message}")]
    Secret { reference: String, message: String },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnersFile {
    #[serde(default)]
    pub partner: Vec<PartnerConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerConfig {
    pub id: String,
    /// The adapter that reads this partner's bodies (`easypost`, …).
    pub format: String,
    pub signature: SignatureConfig,
    /// Accepted request content types (media type only, parameters ignored).
    /// Defaults to the format's usual types.
    #[serde(default)]
    pub content_types: Option<Vec<String>>,
    #[serde(default)]
    pub max_body_bytes: Option<usize>,
    /// Format-specific settings (`[partner.options]`), read by the format's adapter.
    #[serde(default)]
    pub options: toml::Table,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureConfig {
    /// `standard-webhooks` | `easypost` | `aftership` | `hmac-sha256` | `shippo` |
    /// `query-token` | `basic`
    pub scheme: String,
    /// One or two secret references: current first, then the previous one during rotation.
    pub secrets: Vec<String>,
    /// `hmac-sha256` only: the header carrying the signature.
    #[serde(default)]
    pub header: Option<String>,
    /// `hmac-sha256` only: a prefix before the encoded MAC, e.g. `sha256=`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// `hmac-sha256` only: `hex` (default) or `base64`.
    #[serde(default)]
    pub encoding: Option<String>,
    /// Timestamped schemes: allowed clock difference in seconds (default 300).
    #[serde(default)]
    pub tolerance_seconds: Option<u64>,
    /// `query-token` only: the query parameter carrying the token (default `token`).
    #[serde(default)]
    pub query_parameter: Option<String>,
}

impl PartnersFile {
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let file: PartnersFile =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        file.validate()?;
        Ok(file)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn get(&self, id: &str) -> Option<&PartnerConfig> {
        self.partner.iter().find(|p| p.id == id)
    }

    /// One registry from several sources (the registry parameter and one parameter per
    /// partner), each parsed on its own so an error names its source. A partner id defined in
    /// two sources is refused, naming both: which one was meant cannot be guessed.
    pub fn merge(sources: &[(String, String)]) -> Result<Self, String> {
        let mut merged = PartnersFile::default();
        let mut origin: Vec<&str> = Vec::new();
        for (source, text) in sources {
            let file = PartnersFile::parse(text).map_err(|e| format!("{source}: {e}"))?;
            for partner in file.partner {
                if let Some(index) = merged.partner.iter().position(|p| p.id == partner.id) {
                    return Err(format!(
                        "partner {} is defined in both {} and {source}",
                        partner.id,
                        origin.get(index).copied().unwrap_or("another source")
                    ));
                }
                merged.partner.push(partner);
                origin.push(source);
            }
        }
        Ok(merged)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for p in &self.partner {
            let fail = |message: &str| ConfigError::Partner {
                partner: p.id.clone(),
                message: message.to_owned(),
            };
            if p.id.is_empty()
                || !p
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(fail(
                    "id must be non-empty and use only letters, digits, '-' and '_'",
                ));
            }
            if !seen.insert(p.id.as_str()) {
                return Err(fail("id is listed twice"));
            }
            if p.signature.secrets.is_empty() || p.signature.secrets.len() > 2 {
                return Err(fail(
                    "signature.secrets must hold one or two secrets (current, previous)",
                ));
            }
            for s in &p.signature.secrets {
                SecretRef::parse(s).map_err(|m| fail(&m))?;
            }
        }
        Ok(())
    }
}

/// Where a secret comes from. Literal values never appear in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    SecretsManager(String),
    Literal(String),
}

impl SecretRef {
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(name) = s.strip_prefix("env:") {
            if name.is_empty() {
                return Err("env: secret reference needs a variable name".into());
            }
            Ok(SecretRef::Env(name.to_owned()))
        } else if let Some(arn) = s.strip_prefix("secretsmanager:") {
            if arn.is_empty() {
                return Err("secretsmanager: secret reference needs an ARN or name".into());
            }
            Ok(SecretRef::SecretsManager(arn.to_owned()))
        } else if s.is_empty() {
            Err("empty secret".into())
        } else {
            Ok(SecretRef::Literal(s.to_owned()))
        }
    }

    /// How the reference is shown in logs and errors: never the secret itself.
    pub fn describe(&self) -> String {
        match self {
            SecretRef::Env(name) => format!("env:{name}"),
            SecretRef::SecretsManager(arn) => format!("secretsmanager:{arn}"),
            SecretRef::Literal(_) => "literal:<redacted>".into(),
        }
    }
}

impl fmt::Debug for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Secret material. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Resolve an `env:` or literal reference. `secretsmanager:` references need the AWS resolver
/// (`aws::secrets`); here they are an error.
pub fn resolve_local(reference: &SecretRef) -> Result<Secret, ConfigError> {
    match reference {
        SecretRef::Literal(v) => Ok(Secret::new(v.clone())),
        SecretRef::Env(name) => match std::env::var(name) {
            Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
            _ => Err(ConfigError::Secret {
                reference: reference.describe(),
                message: "environment variable is not set".into(),
            }),
        },
        SecretRef::SecretsManager(_) => Err(ConfigError::Secret {
            reference: reference.describe(),
            message: "Secrets Manager references need the AWS resolver".into(),
        }),
    }
}

/// Re-reads a secret that may have been rotated since it was first resolved. Ingress asks it
/// after a signature mismatch; an implementation decides how often it really goes to the source
/// (the Secrets Manager resolver: at most once a minute per secret). Errors name the reference,
/// never the value.
pub trait SecretRefresher: Send + Sync {
    fn refresh(
        &self,
        reference: &SecretRef,
    ) -> impl Future<Output = Result<Secret, ConfigError>> + Send;
}

/// The local chain's refresher: `env:` and literal references are resolved again, as at start;
/// `secretsmanager:` ones fail as they do in [`resolve_local`], so the secrets in use stay.
#[derive(Debug, Clone, Copy, Default)]
pub struct LocalSecrets;

impl SecretRefresher for LocalSecrets {
    async fn refresh(&self, reference: &SecretRef) -> Result<Secret, ConfigError> {
        resolve_local(reference)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[[partner]]
id = "easypost"
format = "easypost"
[partner.signature]
scheme = "easypost"
secrets = ["env:EASYPOST_WEBHOOK_SECRET", "literal-secret-for-local-use"]
"#;

    #[test]
    fn parses_the_documented_partner_entry() {
        let file = PartnersFile::parse(SAMPLE).unwrap();
        let p = file.get("easypost").unwrap();
        assert_eq!(p.format, "easypost");
        assert_eq!(
            SecretRef::parse(&p.signature.secrets[0]).unwrap(),
            SecretRef::Env("EASYPOST_WEBHOOK_SECRET".into())
        );
        assert!(file.get("nobody").is_none());
    }

    #[test]
    fn sources_merge_into_one_registry_and_a_partner_in_two_is_refused_naming_both() {
        let entry = |id: &str| {
            format!(
                "[[partner]]\nid = \"{id}\"\nformat = \"easypost\"\n\
                 [partner.signature]\nscheme = \"easypost\"\nsecrets = [\"s\"]\n"
            )
        };
        let sources = vec![
            (
                "/fb/dev/partners".to_owned(),
                format!("{}{}", entry("a"), entry("b")),
            ),
            ("/fb/dev/partner/c".to_owned(), entry("c")),
        ];
        let merged = PartnersFile::merge(&sources).unwrap();
        let ids: Vec<&str> = merged.partner.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert!(PartnersFile::merge(&[]).unwrap().partner.is_empty());

        let mut twice = sources.clone();
        twice.push(("/fb/dev/partner/b".to_owned(), entry("b")));
        assert_eq!(
            PartnersFile::merge(&twice).unwrap_err(),
            "partner b is defined in both /fb/dev/partners and /fb/dev/partner/b"
        );

        let broken = vec![(
            "/fb/dev/partner/x".to_owned(),
            "[[partner]]\nid = 3".to_owned(),
        )];
        let error = PartnersFile::merge(&broken).unwrap_err();
        assert!(error.starts_with("/fb/dev/partner/x: "), "{error}");
    }

    #[test]
    fn rejects_more_than_two_secrets_and_duplicate_ids() {
        let three = SAMPLE.replace(
            r#"secrets = ["env:EASYPOST_WEBHOOK_SECRET", "literal-secret-for-local-use"]"#,
            r#"secrets = ["a", "b", "c"]"#,
        );
        assert!(PartnersFile::parse(&three).is_err());
        let twice = format!("{SAMPLE}\n{SAMPLE}");
        assert!(PartnersFile::parse(&twice).is_err());
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let literal = SecretRef::parse("hunter2").unwrap();
        assert!(!format!("{literal:?}").contains("hunter2"));
        assert!(!format!("{:?}", Secret::new("hunter2")).contains("hunter2"));
    }
}
