//! Odoo failures as one type for both transports: Odoo's exception name and user-facing message
//! (never the traceback), a kind decided from the name first and the HTTP status second, and the
//! retry decision the queue consumers act on.

use std::fmt;

use crate::failure::{Classify, FailureClass};

/// Longest message kept from Odoo; some messages quote whole records.
const MAX_MESSAGE_CHARS: usize = 2000;

/// What went wrong, as far as the caller needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OdooErrorKind {
    /// Wrong or expired API key / password, or the login does not exist.
    Auth,
    /// Access rights, record rules, private methods.
    Forbidden,
    /// The record does not exist (MissingError, or a lookup that found nothing).
    NotFound,
    /// A constraint refused the values (ValidationError).
    Validation,
    /// A business rule refused the operation (UserError and friends).
    Business,
    /// We sent something Odoo cannot understand: unknown field, method or argument.
    BadRequest,
    /// The deployment is wrong: unknown database, JSON-2 not served, missing settings.
    Config,
    /// Odoo failed internally (5xx, unknown exception).
    Server,
    /// Odoo or a proxy asked us to slow down (429).
    RateLimited,
    /// A concurrent transaction won (serialization failure, lock not available, deadlock).
    Concurrency,
    /// Could not reach Odoo, or the connection broke.
    Network,
    /// Odoo did not answer in time.
    Timeout,
    /// The answer was not what either transport ever sends.
    Protocol,
}

impl OdooErrorKind {
    pub fn class(self) -> FailureClass {
        use OdooErrorKind::*;
        match self {
            Server | RateLimited | Concurrency | Network | Timeout => FailureClass::Retryable,
            Auth | Forbidden | NotFound | Validation | Business | BadRequest | Config
            | Protocol => FailureClass::Permanent,
        }
    }

    pub fn code(self) -> &'static str {
        use OdooErrorKind::*;
        match self {
            Auth => "odoo_auth_failed",
            Forbidden => "odoo_access_denied",
            NotFound => "odoo_missing_record",
            Validation => "odoo_validation",
            Business => "odoo_user_error",
            BadRequest => "odoo_bad_request",
            Config => "odoo_config",
            Server => "odoo_server_error",
            RateLimited => "odoo_rate_limited",
            Concurrency => "odoo_concurrency_conflict",
            Network => "odoo_network",
            Timeout => "odoo_timeout",
            Protocol => "odoo_protocol",
        }
    }
}

/// One failed Odoo call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OdooError {
    pub kind: OdooErrorKind,
    /// Odoo's exception name, e.g. `odoo.exceptions.MissingError`, when Odoo sent one.
    pub name: Option<String>,
    /// Odoo's user-facing message (or ours), never the traceback.
    pub message: String,
    /// A more specific machine code than the kind's, set by business operations
    /// (e.g. `odoo_picking_not_found`).
    pub code: Option<&'static str>,
}

impl OdooError {
    pub fn new(kind: OdooErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            name: None,
            message: truncate(message.into()),
            code: None,
        }
    }

    /// An answer Odoo should not have given (a create without an id, a missing field).
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(OdooErrorKind::Protocol, message)
    }

    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// An error Odoo reported by exception name; `status` is the HTTP status when the transport
    /// carries a meaningful one (JSON-2), `None` for JSON-RPC (always 200).
    pub fn from_odoo(name: &str, message: &str, status: Option<u16>) -> Self {
        let kind = kind_for_name(name, message)
            .or_else(|| status.and_then(kind_for_status))
            .unwrap_or(OdooErrorKind::Server);
        Self {
            kind,
            name: Some(name.to_owned()).filter(|n| !n.is_empty()),
            message: truncate(message.to_owned()),
            code: None,
        }
    }
}

impl fmt::Display for OdooError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{name}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for OdooError {}

impl Classify for OdooError {
    fn class(&self) -> FailureClass {
        self.kind.class()
    }

    fn code(&self) -> &'static str {
        self.code.unwrap_or_else(|| self.kind.code())
    }
}

/// Exception names seen from Odoo (transcripts and source), most specific first. Names are
/// matched exactly, then by their last path segment, so `psycopg2.errors.SerializationFailure`
/// and `psycopg2.extensions.TransactionRollbackError` both land on the same row.
const NAME_KINDS: &[(&str, OdooErrorKind)] = &[
    ("AccessDenied", OdooErrorKind::Auth),
    ("SessionExpiredException", OdooErrorKind::Auth),
    ("Unauthorized", OdooErrorKind::Auth),
    ("AccessError", OdooErrorKind::Forbidden),
    ("Forbidden", OdooErrorKind::Forbidden),
    ("MissingError", OdooErrorKind::NotFound),
    ("ValidationError", OdooErrorKind::Validation),
    ("UserError", OdooErrorKind::Business),
    ("RedirectWarning", OdooErrorKind::Business),
    ("Warning", OdooErrorKind::Business),
    ("ValueError", OdooErrorKind::BadRequest),
    ("TypeError", OdooErrorKind::BadRequest),
    ("AttributeError", OdooErrorKind::BadRequest),
    ("KeyError", OdooErrorKind::BadRequest),
    ("BadRequest", OdooErrorKind::BadRequest),
    ("UnprocessableEntity", OdooErrorKind::BadRequest),
    ("MethodNotAllowed", OdooErrorKind::BadRequest),
    // JSON-2 answers an unknown model or method with werkzeug's NotFound: our request is wrong
    // (or a module is missing), not a record.
    ("NotFound", OdooErrorKind::BadRequest),
    ("SerializationFailure", OdooErrorKind::Concurrency),
    ("TransactionRollbackError", OdooErrorKind::Concurrency),
    ("LockNotAvailable", OdooErrorKind::Concurrency),
    ("DeadlockDetected", OdooErrorKind::Concurrency),
    ("ConcurrencyError", OdooErrorKind::Concurrency),
    ("TooManyRequests", OdooErrorKind::RateLimited),
    ("ServiceUnavailable", OdooErrorKind::Server),
    ("InternalServerError", OdooErrorKind::Server),
    ("GatewayTimeout", OdooErrorKind::Timeout),
];

fn kind_for_name(name: &str, message: &str) -> Option<OdooErrorKind> {
    let lower = message.to_ascii_lowercase();
    // Postgres reports lost races through several exception classes; the message is the
    // reliable part.
    if lower.contains("could not serialize access") || lower.contains("could not obtain lock") {
        return Some(OdooErrorKind::Concurrency);
    }
    let last = name.rsplit('.').next().unwrap_or(name);
    if last == "OperationalError" {
        // Unknown database (transcript 009) is a deployment error; other operational errors
        // (connection lost, server restarting) may pass.
        return Some(if lower.contains("does not exist") {
            OdooErrorKind::Config
        } else {
            OdooErrorKind::Server
        });
    }
    NAME_KINDS
        .iter()
        .find(|(n, _)| *n == last)
        .map(|(_, kind)| *kind)
}

/// Kind from an HTTP status alone, when the name says nothing we know.
pub(crate) fn kind_for_status(status: u16) -> Option<OdooErrorKind> {
    Some(match status {
        400 | 405 | 409 | 415 => OdooErrorKind::BadRequest,
        401 => OdooErrorKind::Auth,
        403 => OdooErrorKind::Forbidden,
        404 => OdooErrorKind::NotFound,
        408 | 504 => OdooErrorKind::Timeout,
        422 => OdooErrorKind::Business,
        429 => OdooErrorKind::RateLimited,
        500..=599 => OdooErrorKind::Server,
        _ => return None,
    })
}

fn truncate(mut message: String) -> String {
    if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
        message.truncate(cut);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exception_names_decide_the_kind_before_the_status() {
        let cases: &[(&str, &str, Option<u16>, OdooErrorKind)] = &[
            (
                "odoo.exceptions.AccessDenied",
                "Access Denied",
                None,
                OdooErrorKind::Auth,
            ),
            (
                "werkzeug.exceptions.Unauthorized",
                "Invalid apikey",
                Some(401),
                OdooErrorKind::Auth,
            ),
            (
                "odoo.http.SessionExpiredException",
                "Session expired",
                None,
                OdooErrorKind::Auth,
            ),
            (
                "odoo.exceptions.AccessError",
                "not allowed",
                Some(403),
                OdooErrorKind::Forbidden,
            ),
            (
                "odoo.exceptions.MissingError",
                "Record does not exist",
                Some(404),
                OdooErrorKind::NotFound,
            ),
            (
                "odoo.exceptions.ValidationError",
                "recursive",
                Some(422),
                OdooErrorKind::Validation,
            ),
            (
                "odoo.exceptions.UserError",
                "The entry is not balanced.",
                Some(422),
                OdooErrorKind::Business,
            ),
            // A 500 carrying ValueError is our bug, not Odoo's outage: retrying cannot help.
            (
                "builtins.ValueError",
                "Invalid field 'x' on 'res.partner'",
                Some(500),
                OdooErrorKind::BadRequest,
            ),
            (
                "builtins.TypeError",
                "unexpected keyword argument",
                Some(500),
                OdooErrorKind::BadRequest,
            ),
            (
                "builtins.AttributeError",
                "no attribute",
                None,
                OdooErrorKind::BadRequest,
            ),
            (
                "werkzeug.exceptions.NotFound",
                "the model 'x' does not exist",
                Some(404),
                OdooErrorKind::BadRequest,
            ),
            (
                "werkzeug.exceptions.UnprocessableEntity",
                "ids given",
                Some(422),
                OdooErrorKind::BadRequest,
            ),
            (
                "psycopg2.OperationalError",
                "FATAL:  database \"x\" does not exist",
                None,
                OdooErrorKind::Config,
            ),
            (
                "psycopg2.OperationalError",
                "server closed the connection unexpectedly",
                None,
                OdooErrorKind::Server,
            ),
            (
                "psycopg2.errors.SerializationFailure",
                "could not serialize access due to concurrent update",
                None,
                OdooErrorKind::Concurrency,
            ),
            (
                "psycopg2.errors.LockNotAvailable",
                "could not obtain lock on row",
                None,
                OdooErrorKind::Concurrency,
            ),
            (
                "builtins.Exception",
                "could not serialize access due to concurrent update",
                Some(500),
                OdooErrorKind::Concurrency,
            ),
            (
                "odoo.addons.custom.Oops",
                "weird",
                Some(500),
                OdooErrorKind::Server,
            ),
            (
                "odoo.addons.custom.Oops",
                "weird",
                Some(403),
                OdooErrorKind::Forbidden,
            ),
            (
                "odoo.addons.custom.Oops",
                "weird",
                None,
                OdooErrorKind::Server,
            ),
        ];
        for (name, message, status, kind) in cases {
            let error = OdooError::from_odoo(name, message, *status);
            assert_eq!(error.kind, *kind, "{name} / {message} / {status:?}");
            assert_eq!(error.name.as_deref(), Some(*name));
            assert_eq!(error.message, *message);
        }
    }

    #[test]
    fn specific_codes_override_the_kind_code() {
        let plain = OdooError::new(OdooErrorKind::NotFound, "gone");
        assert_eq!(plain.code(), "odoo_missing_record");
        let specific = plain.with_code("odoo_picking_not_found");
        assert_eq!(specific.code(), "odoo_picking_not_found");
        assert_eq!(specific.class(), FailureClass::Permanent);
    }

    #[test]
    fn long_messages_are_cut() {
        let error = OdooError::new(OdooErrorKind::Business, "x".repeat(5000));
        assert_eq!(error.message.chars().count(), MAX_MESSAGE_CHARS + 1);
    }

    #[test]
    fn display_shows_name_and_message() {
        let error = OdooError::from_odoo("odoo.exceptions.UserError", "No.", None);
        assert_eq!(error.to_string(), "odoo.exceptions.UserError: No.");
    }
}
