//! How a failure should be treated: retried later (the cause may go away) or sent to the
//! dead-letter queue with its reason (retrying cannot help). Every error type in the crate
//! says which it is, so handlers never guess.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    /// Network, throttling, 5xx, locks, a concurrent duplicate: try again.
    Retryable,
    /// Bad input, missing record, access or validation error: retrying gives the same answer.
    Permanent,
}

/// Implemented by every error that can end a record's processing.
pub trait Classify {
    fn class(&self) -> FailureClass;

    /// A short machine-readable code (`odoo_missing_record`, `malformed_payload`, …).
    fn code(&self) -> &'static str;
}

/// Why one record failed: what goes into logs and onto a dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureReason {
    pub class: FailureClass,
    pub code: String,
    pub message: String,
    /// Odoo's exception name (`odoo.exceptions.ValidationError`) when Odoo refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub odoo_error: Option<String>,
    /// Do not retry before this time (the Odoo circuit breaker's reopening).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<chrono::DateTime<chrono::Utc>>,
}

impl FailureReason {
    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            class: FailureClass::Retryable,
            code: code.into(),
            message: message.into(),
            odoo_error: None,
            not_before: None,
        }
    }

    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            class: FailureClass::Permanent,
            code: code.into(),
            message: message.into(),
            odoo_error: None,
            not_before: None,
        }
    }

    pub fn from_error<E: Classify + std::fmt::Display>(error: &E) -> Self {
        Self {
            class: error.class(),
            code: error.code().to_string(),
            message: error.to_string(),
            odoo_error: None,
            not_before: None,
        }
    }

    pub fn with_odoo_error(mut self, name: Option<&str>) -> Self {
        self.odoo_error = name.map(str::to_owned);
        self
    }

    pub fn not_before(mut self, at: chrono::DateTime<chrono::Utc>) -> Self {
        self.not_before = Some(at);
        self
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}
