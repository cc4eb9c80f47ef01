//! Dry-run: no Odoo at all. Every call that would have been made is appended to a journal as one
//! JSON line, and the business operation's assumed answer stands in for Odoo's, so the whole
//! chain runs locally and the journal shows exactly what would have reached Odoo.

use std::path::{Path, PathBuf};

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use std::io::Write as _;
use std::sync::Mutex;

use super::OdooCall;
use super::error::{OdooError, OdooErrorKind};

#[derive(Debug)]
pub struct DryRunJournal {
    target: Target,
    /// One writer at a time, and each line goes out in a single write: lines never interleave.
    /// The write is a short blocking one, straight to the kernel (no buffer to flush): the
    /// journal is a local development aid, and a trip to a blocking thread per line cost more
    /// than the write.
    sink: Mutex<Sink>,
}

#[derive(Debug, Clone)]
enum Target {
    File(PathBuf),
    Stdout,
}

#[derive(Debug)]
enum Sink {
    File(std::fs::File),
    Stdout,
}

impl DryRunJournal {
    /// Appends to `path`, creating it if needed.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, OdooError> {
        let path = path.as_ref().to_owned();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| journal_error(&format!("cannot open {}: {e}", path.display())))?;
        Ok(Self {
            target: Target::File(path),
            sink: Mutex::new(Sink::File(file)),
        })
    }

    /// Writes the journal to standard output.
    pub fn stdout() -> Self {
        Self {
            target: Target::Stdout,
            sink: Mutex::new(Sink::Stdout),
        }
    }

    /// Where the lines go, for the startup log.
    pub fn describe(&self) -> String {
        match &self.target {
            Target::File(path) => path.display().to_string(),
            Target::Stdout => "stdout".into(),
        }
    }

    /// Journals `call` and answers what the caller said to assume (or `null`).
    pub async fn record(&self, call: &OdooCall) -> Result<Value, OdooError> {
        let answer = call.dry_run_answer.clone().unwrap_or(Value::Null);
        let line = json!({
            "at": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            "model": call.model,
            "method": call.method,
            "ids": call.ids,
            "kwargs": call.kwargs,
            "assumed_answer": answer,
        });
        let mut bytes = line.to_string().into_bytes();
        bytes.push(b'\n');
        let written = match &mut *self.sink.lock().unwrap_or_else(|p| p.into_inner()) {
            Sink::File(file) => file.write_all(&bytes),
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&bytes).and_then(|()| out.flush())
            }
        };
        written.map_err(|e| journal_error(&format!("cannot write the dry-run journal: {e}")))?;
        tracing::debug!(model = %call.model, method = %call.method, "dry-run: Odoo call journaled");
        Ok(answer)
    }
}

fn journal_error(message: &str) -> OdooError {
    OdooError::new(OdooErrorKind::Config, message)
}
