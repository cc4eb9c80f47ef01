//! SSM Parameter Store: where the deployed partner registry lives (a String parameter holding
//! the partners-file TOML, and/or one parameter per partner under a path), read once at cold
//! start. The registry holds secret references,
//! never secrets, so its text may be logged; SecureString parameters are decrypted all the same.

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use thiserror::Error;

use super::{failure_class, render_error};
use crate::failure::{Classify, FailureClass};

/// Re-exported so a function can build the client without depending on the SDK crate itself.
pub use aws_sdk_ssm::Client;

#[derive(Debug, Error)]
#[error("SSM {operation} {name}: {detail}")]
pub struct SsmError {
    pub operation: &'static str,
    pub name: String,
    pub detail: String,
    pub class: FailureClass,
}

impl Classify for SsmError {
    fn class(&self) -> FailureClass {
        self.class
    }

    fn code(&self) -> &'static str {
        match self.class {
            FailureClass::Retryable => "ssm_unavailable",
            FailureClass::Permanent => "ssm_parameter_unreadable",
        }
    }
}

/// Where a function's partner registry comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartnersSource {
    /// `PARTNERS_FILE`: a path (local runs, or a file bundled with the function).
    File(String),
    /// `PARTNERS_SSM_PARAMETER` (the whole registry in one parameter) and/or `PARTNERS_SSM_PATH`
    /// (one parameter per partner under a path), merged.
    Ssm {
        parameter: Option<String>,
        path: Option<String>,
    },
}

impl PartnersSource {
    /// From the environment: `PARTNERS_FILE` wins; else the SSM names, at least one of them.
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|value| value.trim().to_owned())
                .filter(|value| !value.is_empty())
        };
        if let Some(path) = var("PARTNERS_FILE") {
            return Ok(PartnersSource::File(path));
        }
        let (parameter, path) = (var("PARTNERS_SSM_PARAMETER"), var("PARTNERS_SSM_PATH"));
        if parameter.is_none() && path.is_none() {
            return Err(
                "none of PARTNERS_FILE, PARTNERS_SSM_PARAMETER and PARTNERS_SSM_PATH is set".into(),
            );
        }
        Ok(PartnersSource::Ssm { parameter, path })
    }
}

/// The partners file a function runs with, from the source the environment names.
pub async fn load_partners_file(
    config: &aws_config::SdkConfig,
) -> Result<crate::config::PartnersFile, String> {
    load_partners(&Client::new(config), &PartnersSource::from_env()?).await
}

/// The registry from `source`. From SSM, the registry parameter comes first, then the partners'
/// own parameters in name order; a partner defined twice is refused (`PartnersFile::merge`).
pub async fn load_partners(
    client: &Client,
    source: &PartnersSource,
) -> Result<crate::config::PartnersFile, String> {
    use crate::config::PartnersFile;
    let (parameter, path) = match source {
        PartnersSource::File(path) => {
            return PartnersFile::load(std::path::Path::new(path)).map_err(|e| e.to_string());
        }
        PartnersSource::Ssm { parameter, path } => (parameter, path),
    };
    let mut sources = Vec::new();
    if let Some(name) = parameter {
        let text = get_parameter(client, name)
            .await
            .map_err(|e| e.to_string())?;
        sources.push((format!("SSM parameter {name}"), text));
    }
    if let Some(path) = path {
        let mut found = get_parameters_by_path(client, path)
            .await
            .map_err(|e| e.to_string())?;
        found.sort();
        sources.extend(
            found
                .into_iter()
                .map(|(name, text)| (format!("SSM parameter {name}"), text)),
        );
    }
    PartnersFile::merge(&sources)
}

/// Every parameter directly under `path` (not its sub-paths), as (name, value), decrypted.
/// An empty path is no partners, not an error: the registry parameter may hold them all.
pub async fn get_parameters_by_path(
    client: &Client,
    path: &str,
) -> Result<Vec<(String, String)>, SsmError> {
    let mut found = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let output = client
            .get_parameters_by_path()
            .path(path)
            .recursive(false)
            .with_decryption(true)
            .set_next_token(next_token.take())
            .send()
            .await
            .map_err(|e| SsmError {
                operation: "GetParametersByPath",
                name: path.to_owned(),
                detail: describe(&e),
                class: failure_class(&e),
            })?;
        for parameter in output.parameters() {
            if let (Some(name), Some(value)) = (parameter.name(), parameter.value()) {
                found.push((name.to_owned(), value.to_owned()));
            }
        }
        match output.next_token() {
            Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
            _ => return Ok(found),
        }
    }
}

/// The value of parameter `name` (decrypted when it is a SecureString).
pub async fn get_parameter(client: &Client, name: &str) -> Result<String, SsmError> {
    let output = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| SsmError {
            operation: "GetParameter",
            name: name.to_owned(),
            detail: describe(&e),
            class: failure_class(&e),
        })?;
    output
        .parameter
        .and_then(|p| p.value)
        .ok_or_else(|| SsmError {
            operation: "GetParameter",
            name: name.to_owned(),
            detail: "the parameter has no value".into(),
            class: FailureClass::Permanent,
        })
}

/// A refusal is its code and message (`ParameterNotFound: …`); anything else keeps its cause
/// chain.
fn describe<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error.as_service_error() {
        Some(refused) => format!(
            "{}: {}",
            refused.code().unwrap_or("refused"),
            refused.message().unwrap_or("no message")
        ),
        None => render_error(error),
    }
}
