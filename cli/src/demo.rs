//! `freightctl demo`: run the chain, send every sample in `events/partners/` (plus one duplicate
//! and one badly signed request, to show both paths), wait for the queues to drain, and report
//! what happened at each stage.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use freightbridge::config::PartnersFile;
use freightbridge::odoo::{OdooCall, OdooError, OdooPort};
use serde_json::Value;

use crate::chain::Chain;
use crate::send::{self, SendError};

/// An Odoo port that counts the calls going through it, by `model.method`.
pub struct CountingOdoo<O> {
    inner: O,
    calls: Mutex<BTreeMap<String, usize>>,
}

impl<O> CountingOdoo<O> {
    pub fn new(inner: O) -> Self {
        Self {
            inner,
            calls: Mutex::new(BTreeMap::new()),
        }
    }

    pub fn calls(&self) -> BTreeMap<String, usize> {
        self.calls.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl<O: OdooPort> OdooPort for CountingOdoo<O> {
    async fn execute(&self, call: &OdooCall) -> Result<Value, OdooError> {
        *self
            .calls
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(format!("{}.{}", call.model, call.method))
            .or_default() += 1;
        self.inner.execute(call).await
    }
}

/// One request the demo sent and what the ingress answered.
#[derive(Debug, Clone)]
pub struct Sent {
    pub file: String,
    pub partner: String,
    pub note: &'static str,
    pub status: u16,
    pub answer: Value,
}

#[derive(Debug, Default)]
pub struct DemoReport {
    pub sent: Vec<Sent>,
    pub skipped: Vec<(String, String)>,
    pub drained: bool,
    pub canonical: BTreeMap<String, usize>,
    pub odoo_calls: BTreeMap<String, usize>,
    pub dead_letters: Vec<(String, String, String)>,
}

impl DemoReport {
    pub fn accepted(&self) -> usize {
        self.sent.iter().filter(|s| s.status == 202).count()
    }

    pub fn duplicates(&self) -> usize {
        self.sent.iter().filter(|s| s.status == 200).count()
    }

    pub fn rejected(&self) -> usize {
        self.sent.iter().filter(|s| s.status >= 400).count()
    }
}

/// The demo's sample files, each with the partner it belongs to, and the files left out.
#[derive(Debug, Default)]
pub struct Samples {
    pub files: Vec<(PathBuf, String)>,
    pub skipped: Vec<(String, String)>,
}

/// A request already sent, kept to replay it as a partner retry would.
struct SentRequest {
    file: String,
    partner: String,
    body: Vec<u8>,
    headers: Vec<(String, String)>,
}

/// The sample files and the partner each belongs to (`<partner>-….json`).
pub fn samples(dir: &Path, partners: &PartnersFile) -> std::io::Result<Samples> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut samples = Vec::new();
    let mut skipped = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let partner = partners
            .partner
            .iter()
            .filter(|p| name.starts_with(&format!("{}-", p.id)))
            .max_by_key(|p| p.id.len());
        match partner {
            Some(p) => samples.push((path, p.id.clone())),
            None => skipped.push((
                name,
                "no configured partner matches the file name prefix".into(),
            )),
        }
    }
    Ok(Samples {
        files: samples,
        skipped,
    })
}

/// Send the samples through a running chain and collect the report.
pub async fn run<O: OdooPort + 'static>(
    chain: &Chain<CountingOdoo<O>>,
    addr: SocketAddr,
    samples_dir: &Path,
    partners: &PartnersFile,
) -> Result<DemoReport, SendError> {
    let client = reqwest::Client::new();
    let Samples {
        files: samples,
        skipped,
    } = samples(samples_dir, partners).map_err(|e| {
        SendError::Partner(
            "-".into(),
            format!("cannot read {}: {e}", samples_dir.display()),
        )
    })?;
    let mut report = DemoReport {
        skipped,
        ..DemoReport::default()
    };
    let mut first: Option<SentRequest> = None;
    for (path, partner_id) in &samples {
        let body = std::fs::read(path).map_err(|e| {
            SendError::Partner(
                partner_id.clone(),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let Some(partner) = partners.get(partner_id) else {
            continue;
        };
        let headers = send::partner_headers(
            partner,
            &body,
            &format!("msg_{}", uuid::Uuid::new_v4().simple()),
        )?;
        let url = format!("http://{addr}/webhooks/{partner_id}");
        let result = send::post(&client, &url, &headers, body.clone()).await?;
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if first.is_none() && result.status == 202 {
            first = Some(SentRequest {
                file: file.clone(),
                partner: partner_id.clone(),
                body,
                headers,
            });
        }
        report.sent.push(Sent {
            file,
            partner: partner_id.clone(),
            note: "sample",
            status: result.status,
            answer: result.body,
        });
    }
    if let Some(SentRequest {
        file,
        partner: partner_id,
        body,
        headers,
    }) = first
    {
        let url = format!("http://{addr}/webhooks/{partner_id}");
        let again = send::post(&client, &url, &headers, body.clone()).await?;
        report.sent.push(Sent {
            file: file.clone(),
            partner: partner_id.clone(),
            note: "sent again (partner retry)",
            status: again.status,
            answer: again.body,
        });
        let mut tampered = body;
        tampered.extend_from_slice(b" ");
        let bad = send::post(&client, &url, &headers, tampered).await?;
        report.sent.push(Sent {
            file,
            partner: partner_id,
            note: "body altered after signing",
            status: bad.status,
            answer: bad.body,
        });
    }
    report.drained = chain.wait_drained(Duration::from_secs(30)).await;
    report.canonical = chain.canonical_counts();
    report.odoo_calls = chain.poster.odoo().calls();
    for (queue, dlq) in [
        ("transform", &chain.transform_dlq),
        ("odoo", &chain.odoo_dlq),
    ] {
        let letters = match dlq.snapshot() {
            Ok(letters) => letters,
            Err(error) => {
                report.dead_letters.push((
                    queue.to_owned(),
                    "dlq_unreadable".into(),
                    error.to_string(),
                ));
                continue;
            }
        };
        for message in letters {
            let attr = |k: &str| {
                message
                    .attributes
                    .iter()
                    .find(|(n, _)| n == k)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            };
            report.dead_letters.push((
                queue.to_owned(),
                attr("fb-error-code"),
                attr("fb-error-message"),
            ));
        }
    }
    Ok(report)
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "freightbridge demo report")?;
        writeln!(f, "=========================")?;
        writeln!(
            f,
            "webhooks: {} accepted, {} duplicates, {} rejected",
            self.accepted(),
            self.duplicates(),
            self.rejected()
        )?;
        for s in &self.sent {
            let detail = s
                .answer
                .get("error")
                .or_else(|| s.answer.get("event_id"))
                .map(|v| v.to_string())
                .unwrap_or_default();
            writeln!(
                f,
                "  {:>3}  {:<12} {:<48} {} {}",
                s.status, s.partner, s.file, s.note, detail
            )?;
        }
        for (file, why) in &self.skipped {
            writeln!(f, "  skipped {file}: {why}")?;
        }
        let total: usize = self.canonical.values().sum();
        writeln!(f, "canonical events: {total}")?;
        for (kind, n) in &self.canonical {
            writeln!(f, "  {n:>3}  {kind}")?;
        }
        let calls: usize = self.odoo_calls.values().sum();
        writeln!(f, "odoo calls: {calls}")?;
        for (call, n) in &self.odoo_calls {
            writeln!(f, "  {n:>3}  {call}")?;
        }
        writeln!(f, "dead letters: {}", self.dead_letters.len())?;
        for (queue, code, message) in &self.dead_letters {
            writeln!(f, "  {queue}: {code}: {message}")?;
        }
        if !self.drained {
            writeln!(f, "WARNING: queues did not drain within 30 s")?;
        }
        Ok(())
    }
}
