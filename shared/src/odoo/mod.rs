//! Odoo: the client (JSON-2 and JSON-RPC transports, dry-run journal) and business operations.
//! Business code builds `OdooCall`s and talks to the `OdooPort`; which wire protocol carries them
//! (or whether they are only journaled) is decided once, when the client is built.

pub mod accruals;
pub mod bills;
pub mod config;
pub mod delivery;
pub mod dry_run;
pub mod error;
pub mod finance;
pub mod finance_config;
mod http;
pub mod json2;
pub mod jsonrpc;
pub mod landed_costs;
pub mod milestones;
pub mod money;
pub mod reference;
pub mod values;

use std::future::Future;

use serde_json::{Map, Value, json};

pub use config::{OdooConfig, Transport};
pub use dry_run::DryRunJournal;
pub use error::{OdooError, OdooErrorKind};
pub use finance::{Finance, FinanceError};
pub use finance_config::FinanceConfig;
pub use json2::Json2Client;
pub use jsonrpc::JsonRpcClient;

use http::Reply;

/// First Odoo major version that serves JSON-2.
const FIRST_JSON2_VERSION: u32 = 19;

/// One model method call, transport-neutral: ids plus named arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct OdooCall {
    pub model: String,
    pub method: String,
    /// The recordset; empty for `@api.model` methods (search, create, …).
    pub ids: Vec<i64>,
    /// Named arguments, after the Python parameter names (`domain`, `fields`, `vals`, …).
    pub kwargs: Map<String, Value>,
    /// In dry-run this is what the journal assumes the call returned (set by the business
    /// operation: e.g. "the picking exists" for a lookup, "nothing posted yet" for a dedupe
    /// lookup). Real transports ignore it.
    pub dry_run_answer: Option<Value>,
}

impl OdooCall {
    pub fn new(model: impl Into<String>, method: impl Into<String>) -> Self {
        Self {
            model: model.into(),
            method: method.into(),
            ids: Vec::new(),
            kwargs: Map::new(),
            dry_run_answer: None,
        }
    }

    pub fn with_ids(mut self, ids: impl IntoIterator<Item = i64>) -> Self {
        self.ids = ids.into_iter().collect();
        self
    }

    pub fn with_arg(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.kwargs.insert(name.to_owned(), value.into());
        self
    }

    pub fn assuming(mut self, answer: Value) -> Self {
        self.dry_run_answer = Some(answer);
        self
    }
}

/// Executes Odoo calls. Each call is its own Odoo transaction.
pub trait OdooPort: Send + Sync {
    fn execute(&self, call: &OdooCall) -> impl Future<Output = Result<Value, OdooError>> + Send;
}

impl<T: OdooPort> OdooPort for std::sync::Arc<T> {
    fn execute(&self, call: &OdooCall) -> impl Future<Output = Result<Value, OdooError>> + Send {
        (**self).execute(call)
    }
}

impl<T: OdooPort> OdooPort for &T {
    fn execute(&self, call: &OdooCall) -> impl Future<Output = Result<Value, OdooError>> + Send {
        (**self).execute(call)
    }
}

/// The client the functions use.
#[derive(Debug)]
pub enum OdooClient {
    Json2(Json2Client),
    JsonRpc(JsonRpcClient),
    DryRun(DryRunJournal),
}

impl OdooClient {
    /// Builds the client for `cfg`. Without a configured transport the server is asked for its
    /// version: 19+ with an API key speaks JSON-2, anything else (or no answer) JSON-RPC.
    pub async fn connect(cfg: &OdooConfig) -> Result<Self, OdooError> {
        cfg.check()?;
        let transport = match cfg.transport {
            Some(transport) => transport,
            None => {
                let major = detect_major_version(cfg).await?;
                let transport = match major {
                    Some(v) if v >= FIRST_JSON2_VERSION && cfg.api_key.is_some() => {
                        Transport::Json2
                    }
                    _ => Transport::JsonRpc,
                };
                tracing::info!(odoo_version = ?major, ?transport, "Odoo transport detected");
                transport
            }
        };
        Ok(match transport {
            Transport::Json2 => OdooClient::Json2(Json2Client::new(cfg)?),
            Transport::JsonRpc => OdooClient::JsonRpc(JsonRpcClient::new(cfg)?),
        })
    }

    pub fn dry_run(journal: DryRunJournal) -> Self {
        OdooClient::DryRun(journal)
    }

    /// Which transport carries the calls (`None` in dry-run).
    pub fn transport(&self) -> Option<Transport> {
        match self {
            OdooClient::Json2(_) => Some(Transport::Json2),
            OdooClient::JsonRpc(_) => Some(Transport::JsonRpc),
            OdooClient::DryRun(_) => None,
        }
    }
}

impl OdooPort for OdooClient {
    async fn execute(&self, call: &OdooCall) -> Result<Value, OdooError> {
        match self {
            OdooClient::Json2(client) => client.call(call).await,
            OdooClient::JsonRpc(client) => client.call(call).await,
            OdooClient::DryRun(journal) => journal.record(call).await,
        }
    }
}

/// What a server says of its version: the full name (`19.0+e-20251227`) and the major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    pub version: Option<String>,
    pub major: Option<u32>,
}

async fn detect_major_version(cfg: &OdooConfig) -> Result<Option<u32>, OdooError> {
    Ok(server_version(cfg).await?.and_then(|v| v.major))
}

/// `GET /web/version` (19+), then `POST /web/webclient/version_info` (every version). `None`
/// when neither answers with a version; an unreachable server is an error (retryable).
pub async fn server_version(cfg: &OdooConfig) -> Result<Option<ServerVersion>, OdooError> {
    let http = http::client(cfg.timeout)?;
    let base = cfg.url.trim_end_matches('/');
    let reply = Reply::read(
        http.get(format!("{base}/web/version"))
            .send()
            .await
            .map_err(http::transport_error)?,
    )
    .await?;
    if reply.status == 200
        && reply.is_json
        && let Ok(answer) = reply.json()
        && let Some(major) = major_version(answer.get("version_info"))
    {
        return Ok(Some(ServerVersion {
            version: answer
                .get("version")
                .and_then(Value::as_str)
                .map(str::to_owned),
            major: Some(major),
        }));
    }
    let envelope = json!({"jsonrpc": "2.0", "method": "call", "params": {}, "id": 1});
    let reply = Reply::read(
        http.post(format!("{base}/web/webclient/version_info"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(envelope.to_string())
            .send()
            .await
            .map_err(http::transport_error)?,
    )
    .await?;
    if reply.status == 200 && reply.is_json {
        let info = reply.json().ok();
        let result = info.as_ref().and_then(|v| v.get("result"));
        let version = result
            .and_then(|r| r.get("server_version"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let major = major_version(result.and_then(|r| r.get("server_version_info")));
        if version.is_some() || major.is_some() {
            return Ok(Some(ServerVersion { version, major }));
        }
    }
    Ok(None)
}

/// `[19, 0, 0, "final", 0, ""]`, or `["saas~18", 3, …]` on Odoo Online.
fn major_version(info: Option<&Value>) -> Option<u32> {
    match info?.get(0)? {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => s.trim_start_matches("saas~").parse().ok(),
        _ => None,
    }
}

/// Model and method names go into a URL path (JSON-2): only Odoo's identifier characters.
pub(crate) fn check_names(call: &OdooCall) -> Result<(), OdooError> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    };
    if valid(&call.model) && valid(&call.method) {
        Ok(())
    } else {
        Err(OdooError::new(
            OdooErrorKind::BadRequest,
            "model and method names may only hold letters, digits, '_' and '.'",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn major_versions_are_read_from_both_shapes() {
        assert_eq!(
            major_version(Some(&json!([19, 0, 0, "final", 0, ""]))),
            Some(19)
        );
        assert_eq!(
            major_version(Some(&json!(["saas~18", 3, 0, "final", 0, ""]))),
            Some(18)
        );
        assert_eq!(major_version(Some(&json!([]))), None);
        assert_eq!(major_version(None), None);
    }

    #[test]
    fn names_that_could_escape_the_path_are_refused() {
        assert!(check_names(&OdooCall::new("stock.picking", "message_post")).is_ok());
        for (model, method) in [
            ("stock.picking/../x", "read"),
            ("res.partner", "read?x=1"),
            ("", "read"),
        ] {
            let error = check_names(&OdooCall::new(model, method)).unwrap_err();
            assert_eq!(error.kind, OdooErrorKind::BadRequest);
        }
    }
}
