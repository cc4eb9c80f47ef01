//! The JSON-RPC transport (`POST /jsonrpc`, Odoo 16–21): `common.authenticate` once for the uid,
//! then `object.execute_kw` per call. Errors arrive under HTTP 200 in an `error` member whose
//! `code` changed between versions (200 up to 18, 0 in 19), so only `error.data.name` is trusted.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};
use tokio::sync::Mutex;

use crate::config::Secret;

use super::config::OdooConfig;
use super::error::{OdooError, OdooErrorKind, kind_for_status};
use super::http::{self, Reply};
use super::{OdooCall, check_names};

/// `error.code` of routes that need a web session; never expected on `/jsonrpc`, but if a proxy
/// routes us to one it is a login problem.
const SESSION_EXPIRED_CODE: i64 = 100;

#[derive(Debug)]
pub struct JsonRpcClient {
    http: reqwest::Client,
    endpoint: String,
    db: String,
    login: String,
    secret: Secret,
    /// Cached after the first successful `authenticate`; cleared when Odoo rejects the secret.
    uid: Mutex<Option<i64>>,
    next_id: AtomicU64,
}

impl JsonRpcClient {
    pub fn new(cfg: &OdooConfig) -> Result<Self, OdooError> {
        let (db, login, secret) = cfg.json_rpc_login()?;
        Ok(Self {
            http: http::client(cfg.timeout)?,
            endpoint: format!("{}/jsonrpc", cfg.url.trim_end_matches('/')),
            db: db.to_owned(),
            login: login.to_owned(),
            secret: secret.clone(),
            uid: Mutex::new(None),
            next_id: AtomicU64::new(1),
        })
    }

    pub async fn call(&self, call: &OdooCall) -> Result<Value, OdooError> {
        check_names(call)?;
        let uid = self.uid().await?;
        let result = self
            .rpc(
                "object",
                "execute_kw",
                execute_kw_args(&self.db, uid, &self.secret, call),
            )
            .await;
        if let Err(error) = &result
            && error.kind == OdooErrorKind::Auth
        {
            // The key may have been rotated or revoked: log in again next time.
            *self.uid.lock().await = None;
        }
        result
    }

    /// The uid, authenticating once. The lock is held across the round trip so concurrent
    /// first calls authenticate once, not once each.
    async fn uid(&self) -> Result<i64, OdooError> {
        let mut cached = self.uid.lock().await;
        if let Some(uid) = *cached {
            return Ok(uid);
        }
        let answer = self
            .rpc(
                "common",
                "authenticate",
                vec![
                    json!(self.db),
                    json!(self.login),
                    json!(self.secret.expose()),
                    json!({}),
                ],
            )
            .await?;
        let uid = match answer {
            Value::Number(n) => n
                .as_i64()
                .ok_or_else(|| OdooError::protocol("authenticate returned a non-integer uid"))?,
            // A wrong login or secret is not an error for Odoo, just `false` (transcripts 006/007).
            Value::Bool(false) => {
                return Err(OdooError::new(
                    OdooErrorKind::Auth,
                    "Odoo refused the login: wrong database, login, password or API key",
                ));
            }
            _ => {
                return Err(OdooError::protocol(
                    "authenticate returned neither a uid nor false",
                ));
            }
        };
        tracing::debug!(uid, "authenticated with Odoo over JSON-RPC");
        *cached = Some(uid);
        Ok(uid)
    }

    async fn rpc(&self, service: &str, method: &str, args: Vec<Value>) -> Result<Value, OdooError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let envelope = json!({
            "jsonrpc": "2.0",
            "method": "call",
            "params": {"service": service, "method": method, "args": args},
            "id": id,
        });
        let response = self
            .http
            .post(&self.endpoint)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(reqwest::header::ACCEPT, "application/json")
            .body(envelope.to_string())
            .send()
            .await
            .map_err(http::transport_error)?;
        decode(Reply::read(response).await?, id)
    }
}

/// Arguments that `execute_kw` must receive positionally, whatever the Python signature says:
/// Odoo adapts `create`'s result by looking at `args[0]` (`odoo/service/model.py` on 19,
/// `odoo/api.py` on 16–18), so a `vals_list` sent by name creates the records and then fails
/// with `IndexError`, rolling the transaction back.
const POSITIONAL: &[(&str, &str)] = &[("create", "vals_list")];

/// `[db, uid, secret, model, method, [args…], {kwargs}]`. The positional list holds the ids
/// first (recordset methods; `@api.model` methods take none), then the arguments Odoo needs by
/// position (`create`'s `vals_list`); everything else is named. An empty kwargs object is left
/// out, as Odoo's own clients do for argument-less calls.
pub(crate) fn execute_kw_args(db: &str, uid: i64, secret: &Secret, call: &OdooCall) -> Vec<Value> {
    let mut kwargs = call.kwargs.clone();
    let mut positional = Vec::new();
    if !call.ids.is_empty() {
        positional.push(json!(call.ids));
    }
    for (method, parameter) in POSITIONAL {
        if call.method == *method
            && let Some(value) = kwargs.remove(*parameter)
        {
            positional.push(value);
        }
    }
    let mut args = vec![
        json!(db),
        json!(uid),
        json!(secret.expose()),
        json!(call.model),
        json!(call.method),
        Value::Array(positional),
    ];
    if !kwargs.is_empty() {
        args.push(Value::Object(kwargs));
    }
    args
}

pub(crate) fn decode(reply: Reply, id: u64) -> Result<Value, OdooError> {
    if reply.status != 200 {
        let kind = match reply.status {
            404 => OdooErrorKind::Config,
            status => kind_for_status(status).unwrap_or(OdooErrorKind::Protocol),
        };
        return Err(OdooError::new(
            kind,
            format!("Odoo answered HTTP {} on /jsonrpc", reply.status),
        ));
    }
    if !reply.is_json {
        return Err(OdooError::protocol(
            "Odoo answered /jsonrpc with a page instead of JSON",
        ));
    }
    let Value::Object(envelope) = reply.json()? else {
        return Err(OdooError::protocol("the JSON-RPC answer is not an object"));
    };
    match envelope.get("id") {
        None | Some(Value::Null) => {}
        Some(echoed) if echoed.as_u64() == Some(id) => {}
        Some(_) => {
            return Err(OdooError::protocol(
                "the JSON-RPC answer belongs to another request",
            ));
        }
    }
    if let Some(error) = envelope.get("error") {
        return Err(error_member(error));
    }
    // A method returning None gives no `result` member at all (transcript 058).
    Ok(envelope.get("result").cloned().unwrap_or(Value::Null))
}

/// `{"code", "message", "data": {"name", "message", "arguments", "context", "debug"}}`;
/// `debug` (the traceback) is dropped.
fn error_member(error: &Value) -> OdooError {
    let data = error.get("data");
    let name = data.and_then(|d| d.get("name")).and_then(Value::as_str);
    let message = data
        .and_then(|d| d.get("message"))
        .and_then(Value::as_str)
        .or_else(|| error.get("message").and_then(Value::as_str))
        .unwrap_or("Odoo reported an error without a message");
    let mut out = match name {
        Some(name) => OdooError::from_odoo(name, message, None),
        None => OdooError::new(OdooErrorKind::Server, message),
    };
    if error.get("code").and_then(Value::as_i64) == Some(SESSION_EXPIRED_CODE) {
        out.kind = OdooErrorKind::Auth;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(body: Value) -> Reply {
        Reply {
            status: 200,
            is_json: true,
            location: None,
            body: body.to_string().into_bytes(),
        }
    }

    #[test]
    fn ids_are_the_only_positional_argument() {
        let secret = Secret::new("k");
        let post = OdooCall::new("stock.picking", "message_post")
            .with_ids([2])
            .with_arg("body", "x");
        assert_eq!(
            execute_kw_args("test", 2, &secret, &post),
            vec![
                json!("test"),
                json!(2),
                json!("k"),
                json!("stock.picking"),
                json!("message_post"),
                json!([[2]]),
                json!({"body": "x"})
            ]
        );
        let search = OdooCall::new("res.partner", "search_read").with_arg("domain", json!([]));
        assert_eq!(execute_kw_args("test", 2, &secret, &search)[5], json!([]));
        let draft = OdooCall::new("account.move", "button_draft").with_ids([2]);
        assert_eq!(execute_kw_args("test", 2, &secret, &draft).len(), 6);
    }

    #[test]
    fn create_takes_its_vals_list_by_position() {
        let secret = Secret::new("k");
        let create = OdooCall::new("account.move", "create")
            .with_arg("vals_list", json!([{"ref": "A"}]))
            .with_arg("context", json!({"lang": "en_US"}));
        let args = execute_kw_args("test", 2, &secret, &create);
        assert_eq!(args[5], json!([[{"ref": "A"}]]));
        assert_eq!(args[6], json!({"context": {"lang": "en_US"}}));
        let bare = OdooCall::new("res.partner", "create").with_arg("vals_list", json!([{}]));
        assert_eq!(execute_kw_args("test", 2, &secret, &bare).len(), 6);
        // Only `create` is special: a `write` keeps its `vals` named.
        let write = OdooCall::new("res.partner", "write")
            .with_ids([3])
            .with_arg("vals", json!({"ref": "B"}));
        let args = execute_kw_args("test", 2, &secret, &write);
        assert_eq!(
            (&args[5], &args[6]),
            (&json!([[3]]), &json!({"vals": {"ref": "B"}}))
        );
    }

    #[test]
    fn missing_result_is_null() {
        assert_eq!(
            decode(reply(json!({"jsonrpc": "2.0", "id": 7})), 7).unwrap(),
            Value::Null
        );
        assert_eq!(
            decode(
                reply(json!({"jsonrpc": "2.0", "id": 7, "result": [135]})),
                7
            )
            .unwrap(),
            json!([135])
        );
    }

    #[test]
    fn errors_branch_on_the_name_not_the_code() {
        for code in [0, 200] {
            let body = json!({"jsonrpc": "2.0", "id": 3, "error": {"code": code, "message": "Odoo Server Error",
                "data": {"name": "odoo.exceptions.MissingError", "message": "Record does not exist",
                         "arguments": [], "context": {}, "debug": "Traceback ..."}}});
            let error = decode(reply(body), 3).unwrap_err();
            assert_eq!(error.kind, OdooErrorKind::NotFound);
            assert_eq!(error.message, "Record does not exist");
        }
    }

    #[test]
    fn session_expired_and_foreign_ids_are_recognised() {
        let expired = json!({"jsonrpc": "2.0", "id": null, "error": {"code": 100, "message": "Odoo Session Expired",
            "data": {"name": "odoo.http.SessionExpiredException", "message": "Session expired"}}});
        assert_eq!(
            decode(reply(expired), 1).unwrap_err().kind,
            OdooErrorKind::Auth
        );
        let foreign = json!({"jsonrpc": "2.0", "id": 9, "result": 1});
        assert_eq!(
            decode(reply(foreign), 1).unwrap_err().kind,
            OdooErrorKind::Protocol
        );
        let nameless = json!({"jsonrpc": "2.0", "id": 1, "error": {"code": 0, "message": "boom"}});
        let error = decode(reply(nameless), 1).unwrap_err();
        assert_eq!(
            (error.kind, error.message.as_str()),
            (OdooErrorKind::Server, "boom")
        );
    }

    #[test]
    fn http_failures_map_to_kinds() {
        let mut r = reply(json!({}));
        r.status = 503;
        assert_eq!(decode(r, 1).unwrap_err().kind, OdooErrorKind::Server);
        let mut r = reply(json!({}));
        r.status = 404;
        assert_eq!(decode(r, 1).unwrap_err().kind, OdooErrorKind::Config);
        let mut r = reply(json!({}));
        r.is_json = false;
        assert_eq!(decode(r, 1).unwrap_err().kind, OdooErrorKind::Protocol);
    }
}
