//! SSM Parameter Store: where the deployed partner registry lives (a String parameter holding
//! the partners-file TOML), read once at cold start. The registry holds secret references,
//! never secrets, so its text may be logged; SecureString parameters are decrypted all the same.

use aws_sdk_ssm::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ssm::operation::get_parameter::GetParameterError;
use thiserror::Error;

use super::{failure_class, render_error};
use crate::failure::{Classify, FailureClass};

/// Re-exported so a function can build the client without depending on the SDK crate itself.
pub use aws_sdk_ssm::Client;

#[derive(Debug, Error)]
#[error("SSM GetParameter {name}: {detail}")]
pub struct SsmError {
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

/// The partners file a function runs with: `PARTNERS_FILE` (a path: local runs, or a file
/// bundled with the function) when set, else the SSM parameter named by `PARTNERS_SSM_PARAMETER`.
pub async fn load_partners_file(
    config: &aws_config::SdkConfig,
) -> Result<crate::config::PartnersFile, String> {
    use crate::config::PartnersFile;
    if let Some(path) = std::env::var("PARTNERS_FILE")
        .ok()
        .filter(|p| !p.is_empty())
    {
        return PartnersFile::load(std::path::Path::new(&path)).map_err(|e| e.to_string());
    }
    let name = std::env::var("PARTNERS_SSM_PARAMETER")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .ok_or("neither PARTNERS_FILE nor PARTNERS_SSM_PARAMETER is set")?;
    let text = get_parameter(&Client::new(config), &name)
        .await
        .map_err(|e| e.to_string())?;
    PartnersFile::parse(&text).map_err(|e| format!("SSM parameter {name}: {e}"))
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
            name: name.to_owned(),
            detail: describe(&e),
            class: failure_class(&e),
        })?;
    output
        .parameter
        .and_then(|p| p.value)
        .ok_or_else(|| SsmError {
            name: name.to_owned(),
            detail: "the parameter has no value".into(),
            class: FailureClass::Permanent,
        })
}

/// A refusal is its code and message (`ParameterNotFound: …`); anything else keeps its cause
/// chain.
fn describe<R: std::fmt::Debug>(error: &SdkError<GetParameterError, R>) -> String {
    match error.as_service_error() {
        Some(refused) => format!(
            "{}: {}",
            refused.code().unwrap_or("refused"),
            refused.message().unwrap_or("no message")
        ),
        None => render_error(error),
    }
}
