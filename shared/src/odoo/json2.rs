//! The JSON-2 transport (Odoo 19+): `POST /json/2/<model>/<method>` with named arguments and a
//! bearer API key; the body of a success is the bare result, errors are flat `{name, message}`
//! objects under real HTTP status codes — except routing failures, which are HTML pages.

use serde_json::{Map, Value};

use crate::config::Secret;

use super::config::OdooConfig;
use super::error::{OdooError, OdooErrorKind, kind_for_status};
use super::http::{self, Reply};
use super::{OdooCall, check_names};

#[derive(Debug, Clone)]
pub struct Json2Client {
    http: reqwest::Client,
    base: String,
    key: Secret,
    db: Option<String>,
}

impl Json2Client {
    pub fn new(cfg: &OdooConfig) -> Result<Self, OdooError> {
        let key = cfg.api_key.clone().ok_or_else(|| {
            OdooError::new(
                OdooErrorKind::Config,
                "JSON-2 needs an API key (ODOO_API_KEY)",
            )
        })?;
        Ok(Self {
            http: http::client(cfg.timeout)?,
            base: cfg.url.trim_end_matches('/').to_owned(),
            key,
            db: cfg.db.clone(),
        })
    }

    pub async fn call(&self, call: &OdooCall) -> Result<Value, OdooError> {
        check_names(call)?;
        let url = format!("{}/json/2/{}/{}", self.base, call.model, call.method);
        let mut request = self
            .http
            .post(url)
            .header(
                reqwest::header::AUTHORIZATION,
                format!("bearer {}", self.key.expose()),
            )
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .header(reqwest::header::ACCEPT, "application/json")
            // Always an object: Odoo silently ignores an array body and answers as if no
            // argument was given (transcript 119).
            .body(Value::Object(body(call)).to_string());
        if let Some(db) = &self.db {
            request = request.header("X-Odoo-Database", db);
        }
        let response = request.send().await.map_err(http::transport_error)?;
        decode(Reply::read(response).await?)
    }
}

fn body(call: &OdooCall) -> Map<String, Value> {
    let mut body = call.kwargs.clone();
    if !call.ids.is_empty() {
        body.insert("ids".into(), Value::from(call.ids.clone()));
    }
    body
}

pub(crate) fn decode(reply: Reply) -> Result<Value, OdooError> {
    match reply.status {
        200..=299 if reply.is_json => reply.json(),
        200..=299 => Err(OdooError::new(
            OdooErrorKind::Config,
            format!(
                "JSON-2 answered HTTP {} with a page instead of JSON: this server does not serve /json/2 (Odoo before 19?)",
                reply.status
            ),
        )),
        300..=399 => Err(OdooError::new(
            OdooErrorKind::Config,
            format!(
                "JSON-2 request redirected to {}: this server does not serve /json/2 (Odoo before 19?)",
                reply.location.as_deref().unwrap_or("another page")
            ),
        )),
        status if reply.is_json => Err(error_body(status, &reply.json()?)),
        404 => Err(OdooError::new(
            OdooErrorKind::Config,
            "Odoo answered 404 with an HTML page: the database is not served by this host (check ODOO_DB and the server's dbfilter)",
        )),
        status => Err(OdooError::new(
            kind_for_status(status).unwrap_or(OdooErrorKind::Protocol),
            format!("Odoo answered HTTP {status} without a JSON error"),
        )),
    }
}

/// `{"name", "message", "arguments", "context", "debug"}`: `debug` (the traceback) is dropped.
fn error_body(status: u16, body: &Value) -> OdooError {
    let name = body.get("name").and_then(Value::as_str);
    let message = body.get("message").and_then(Value::as_str);
    match name {
        Some(name) => OdooError::from_odoo(name, message.unwrap_or_default(), Some(status)),
        None => OdooError::new(
            kind_for_status(status).unwrap_or(OdooErrorKind::Protocol),
            format!(
                "Odoo answered HTTP {status}: {}",
                message.unwrap_or("no error name given")
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn reply(status: u16, is_json: bool, body: &str) -> Reply {
        Reply {
            status,
            is_json,
            location: None,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn body_holds_named_arguments_and_ids_only_when_given() {
        let call = OdooCall::new("stock.picking", "message_post")
            .with_ids([2])
            .with_arg("body", "hi");
        assert_eq!(
            Value::Object(body(&call)),
            json!({"ids": [2], "body": "hi"})
        );
        let call = OdooCall::new("res.users", "context_get");
        assert_eq!(Value::Object(body(&call)), json!({}));
    }

    #[test]
    fn replies_decode_by_status_and_content_type() {
        assert_eq!(decode(reply(200, true, "[158]")).unwrap(), json!([158]));
        assert_eq!(decode(reply(200, true, "false")).unwrap(), json!(false));
        let html = decode(reply(200, false, "<html>login</html>")).unwrap_err();
        assert_eq!(html.kind, OdooErrorKind::Config);
        let redirect = decode(reply(303, false, "")).unwrap_err();
        assert_eq!(redirect.kind, OdooErrorKind::Config);
        let db = decode(reply(404, false, "<!DOCTYPE html>")).unwrap_err();
        assert_eq!(db.kind, OdooErrorKind::Config);
        let gateway = decode(reply(502, false, "<html>bad gateway</html>")).unwrap_err();
        assert_eq!(gateway.kind, OdooErrorKind::Server);
        let limited = decode(reply(429, false, "")).unwrap_err();
        assert_eq!(limited.kind, OdooErrorKind::RateLimited);
        let broken = decode(reply(200, true, "{\"a\":")).unwrap_err();
        assert_eq!(broken.kind, OdooErrorKind::Protocol);
    }

    #[test]
    fn error_bodies_keep_name_and_message_and_drop_the_traceback() {
        let body = json!({"name": "odoo.exceptions.MissingError", "message": "Record does not exist",
                          "arguments": ["Record does not exist"], "context": {},
                          "debug": "Traceback (most recent call last): secret frames"});
        let error = decode(reply(404, true, &body.to_string())).unwrap_err();
        assert_eq!(error.kind, OdooErrorKind::NotFound);
        assert_eq!(error.name.as_deref(), Some("odoo.exceptions.MissingError"));
        assert_eq!(error.message, "Record does not exist");
        assert!(!error.to_string().contains("Traceback"));
    }
}
