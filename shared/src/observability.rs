//! Logging setup. Functions log JSON lines (one per event, with the current span's fields) so
//! CloudWatch Logs Insights can follow a correlation id from partner delivery to canonical event
//! to Odoo record. Secrets and personal data are never put in fields.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// JSON logs for a Lambda function. Level from `RUST_LOG`, else `LOG_LEVEL`, else `info`.
/// Safe to call twice (the second call does nothing).
pub fn init_json() {
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter("info"))
        .with_current_span(true)
        .with_span_list(false)
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
            EnvFilter::try_new(
                std::env::var("LOG_LEVEL").unwrap_or_else(|_| default_level.to_owned()),
            )
        })
        .unwrap_or_else(|_| EnvFilter::new("info"))
}
