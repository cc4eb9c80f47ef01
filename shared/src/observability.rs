//! Logging setup. Functions log JSON lines (one per event, with the current span's fields under
//! `span` and every open span under `spans`, the Lambda runtime's `requestId` among them) so
//! CloudWatch Logs Insights can follow a correlation id from partner delivery to canonical event
//! to Odoo record, and a line to its invocation. Secrets and personal data are never put in fields.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Logs and metrics for the Lambda function `function`: JSON lines unless the function's
/// logging config says `Text` (`AWS_LAMBDA_LOG_FORMAT`), at the level of `RUST_LOG`, else the
/// logging config's application level (`AWS_LAMBDA_LOG_LEVEL`), else `LOG_LEVEL`, else `info`;
/// metrics in Embedded Metric Format on stdout ([`crate::metrics`]).
pub fn init_lambda(function: &str) {
    if std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("text")) {
        let _ = tracing_subscriber::fmt()
            .compact()
            .with_env_filter(filter("info"))
            .with_target(false)
            .with_ansi(false)
            .try_init();
    } else {
        init_json();
    }
    crate::metrics::init_stdout(function);
}

/// The `tracing` level for Lambda's application log level (`TRACE` … `FATAL`).
pub fn lambda_level(level: &str) -> Option<&'static str> {
    match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => Some("trace"),
        "DEBUG" => Some("debug"),
        "INFO" => Some("info"),
        "WARN" => Some("warn"),
        "ERROR" | "FATAL" => Some("error"),
        _ => None,
    }
}

/// JSON logs for a Lambda function. Level from `RUST_LOG`, else `AWS_LAMBDA_LOG_LEVEL`, else
/// `LOG_LEVEL`, else `info`. Safe to call twice (the second call does nothing).
pub fn init_json() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter("info"))
        .with_current_span(true)
        .with_span_list(true)
        .flatten_event(true)
        .with_target(false)
        .with_ansi(false)
        .with_span_events(FmtSpan::NONE)
        .try_init();
}

/// Human-readable logs on stderr for the local tools (at `default_level` unless `RUST_LOG` or
/// `LOG_LEVEL` says otherwise); `json` switches to the Lambda format.
pub fn init_local(json: bool, default_level: &str) {
    if json {
        init_json();
        return;
    }
    let _ = tracing_subscriber::fmt()
        .compact()
        .with_env_filter(filter(default_level))
        .with_target(false)
        // Colours only for a person at a terminal, not in CI logs or files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

fn filter(default_level: &str) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| {
            let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
                .ok()
                .and_then(|l| lambda_level(&l).map(str::to_owned))
                .or_else(|| std::env::var("LOG_LEVEL").ok())
                .unwrap_or_else(|| default_level.to_owned());
            EnvFilter::try_new(level)
        })
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambdas_log_levels_map_onto_tracings() {
        for (lambda, ours) in [
            ("TRACE", Some("trace")),
            ("debug", Some("debug")),
            ("INFO", Some("info")),
            ("WARN", Some("warn")),
            ("ERROR", Some("error")),
            ("FATAL", Some("error")),
            ("LOUD", None),
        ] {
            assert_eq!(lambda_level(lambda), ours, "{lambda}");
        }
    }
}
