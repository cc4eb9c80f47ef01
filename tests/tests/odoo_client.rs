//! The Odoo client against real Odoo wire transcripts (replayed), the Odoo double against the
//! same transcripts, the milestone note operation end to end against the double (both
//! transports, Odoo 18 and 19), the retry classification, and the dry-run journal.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use freightbridge::canonical::{
    CanonicalEvent, Delivery, EventBody, ProofOfDelivery, SCHEMA, ShipmentRef, ShipmentStatus,
    StatusChange, event_id,
};
use freightbridge::config::Secret;
use freightbridge::failure::{Classify, FailureClass};
use freightbridge::odoo::milestones::{note_marker, post_milestone_note};
use freightbridge::odoo::{
    DryRunJournal, OdooCall, OdooClient, OdooConfig, OdooErrorKind, OdooPort, Transport,
};
use freightbridge_tests::odoo_double::{
    InjectedFailure, OdooDouble, OdooDoubleConfig, PickingSeed,
};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Our API key in replays: 40 lowercase hex characters, like a real one.
const KEY: &str = "0123456789abcdef0123456789abcdef01234567";
const MASKED_KEYS: &[&str] = &["<ADMIN_API_KEY:40 hex chars>", "<API_KEY:40 hex chars>"];

fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/odoo/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

fn path_of(exchange: &Value) -> String {
    let url = exchange["request"]["url"].as_str().unwrap();
    let after_scheme = url.split_once("://").unwrap().1;
    format!("/{}", after_scheme.split_once('/').unwrap().1)
}

// ---------------------------------------------------------------------------------------------
// A replay server: answers each request with the next transcript's recorded response and
// records what the client sent.

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    headers: HeaderMap,
    body: Value,
}

#[derive(Clone)]
struct ReplayState {
    queue: Arc<Mutex<VecDeque<Value>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

struct Replay {
    url: String,
    state: ReplayState,
    task: JoinHandle<()>,
}

impl Replay {
    async fn start(exchanges: Vec<Value>) -> Replay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let state = ReplayState {
            queue: Arc::new(Mutex::new(exchanges.into())),
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        let app = Router::new()
            .fallback(replay_handler)
            .with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Replay { url, state, task }
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn replay_handler(
    State(state): State<ReplayState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()))
    };
    state.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers,
        body: request_body.clone(),
    });
    let Some(exchange) = state.queue.lock().unwrap().pop_front() else {
        return (StatusCode::IM_A_TEAPOT, "replay exhausted").into_response();
    };
    let response = &exchange["response"];
    let body = if response["body_is_json"] == true {
        let mut body = response["body"].clone();
        // JSON-RPC ids are per connection: echo the client's, as Odoo does.
        if let (Some(obj), Some(id)) = (body.as_object_mut(), request_body.get("id"))
            && obj.contains_key("id")
            && !obj["id"].is_null()
        {
            obj.insert("id".into(), id.clone());
        }
        body.to_string()
    } else {
        response["body"].as_str().unwrap_or_default().to_owned()
    };
    let status = StatusCode::from_u16(exchange["http_status"].as_u64().unwrap() as u16).unwrap();
    let mut out = (status, body).into_response();
    for name in ["Content-Type", "WWW-Authenticate", "Location"] {
        if let Some(value) = response["headers"][name].as_str() {
            out.headers_mut()
                .insert(name, HeaderValue::from_str(value).unwrap());
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// JSON-RPC requests compared modulo ids, masked secrets and argument style.

/// Parameter names of positional arguments, as Odoo's methods declare them.
fn positional_names(method: &str) -> (&'static [&'static str], bool) {
    match method {
        "search_read" => (&["domain", "fields", "offset", "limit", "order"], false),
        "search" => (&["domain", "offset", "limit", "order"], false),
        "search_count" => (&["domain"], false),
        "create" => (&["vals_list"], false),
        "read" => (&["fields", "load"], true),
        "write" => (&["vals"], true),
        _ => (&[], true),
    }
}

/// `execute_kw` arguments → (model, method, ids, named arguments). Transcripts often pass the
/// domain or vals positionally; our client names everything but the ids (and `create`'s
/// `vals_list`, which Odoo needs by position). Both mean the same call.
fn canonical_execute_kw(args: &[Value]) -> (String, String, Vec<i64>, Map<String, Value>) {
    let model = args[3].as_str().unwrap().to_owned();
    let method = args[4].as_str().unwrap().to_owned();
    let mut positional: VecDeque<Value> = args
        .get(5)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into();
    let mut kwargs = args
        .get(6)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let (names, on_records) = positional_names(&method);
    let ids = if on_records {
        positional
            .pop_front()
            .map(|v| {
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|i| i.as_i64().unwrap())
                    .collect()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    assert!(
        positional.len() <= names.len(),
        "unexpected positional arguments in {args:?}"
    );
    for (name, value) in names.iter().zip(positional) {
        assert!(kwargs.insert((*name).to_owned(), value).is_none());
    }
    (model, method, ids, kwargs)
}

/// `common.login(db, login, pw)` is `authenticate(db, login, pw, {})` (reference §3.1); the
/// secret is masked on both sides and checked separately.
fn canonical_common(params: &Value) -> (String, Vec<Value>) {
    let method = params["method"].as_str().unwrap();
    let mut args = params["args"].as_array().unwrap().clone();
    if method == "login" {
        args.push(json!({}));
    }
    args[2] = json!("<secret>");
    ("authenticate".into(), args)
}

fn secret_in(args: &[Value]) -> String {
    args[2].as_str().unwrap().to_owned()
}

fn unmask(secret: &str) -> String {
    if MASKED_KEYS.contains(&secret) {
        KEY.to_owned()
    } else {
        secret.to_owned()
    }
}

fn assert_jsonrpc_envelope(seen: &Seen, transcript: &Value, file: &str) {
    let expected = &transcript["request"];
    assert_eq!(seen.method, "POST", "{file}");
    assert_eq!(seen.path, path_of(transcript), "{file}");
    assert_eq!(
        seen.headers[header::CONTENT_TYPE],
        expected["headers"]["Content-Type"].as_str().unwrap(),
        "{file}"
    );
    assert_eq!(seen.body["jsonrpc"], "2.0", "{file}");
    assert_eq!(seen.body["method"], "call", "{file}");
    assert!(
        seen.body["id"].is_u64(),
        "{file}: JSON-RPC id must be a number"
    );
    assert_eq!(
        seen.body["params"]["service"], expected["body"]["params"]["service"],
        "{file}"
    );
}

fn assert_auth_request(seen: &Seen, transcript: &Value, secret: &str, file: &str) {
    assert_jsonrpc_envelope(seen, transcript, file);
    let ours = canonical_common(&seen.body["params"]);
    let theirs = canonical_common(&transcript["request"]["body"]["params"]);
    assert_eq!(ours, theirs, "{file}: authenticate request");
    assert_eq!(
        seen.body["params"]["args"][2], secret,
        "{file}: secret sent"
    );
}

fn assert_execute_kw_request(seen: &Seen, transcript: &Value, secret: &str, file: &str) {
    assert_jsonrpc_envelope(seen, transcript, file);
    assert_eq!(seen.body["params"]["method"], "execute_kw", "{file}");
    let ours = seen.body["params"]["args"].as_array().unwrap();
    let theirs = transcript["request"]["body"]["params"]["args"]
        .as_array()
        .unwrap();
    assert_eq!(ours[0], theirs[0], "{file}: database");
    assert_eq!(ours[1], theirs[1], "{file}: uid");
    assert_eq!(ours[2], secret, "{file}: secret");
    assert_eq!(
        canonical_execute_kw(ours),
        canonical_execute_kw(theirs),
        "{file}: call"
    );
    // When the transcript already used our style (only ids positional), the bytes agree too.
    let (_, _, ids, _) = canonical_execute_kw(theirs);
    let only_ids_positional = theirs[5]
        == if ids.is_empty() {
            json!([])
        } else {
            json!([ids])
        };
    let kwargs_absent_iff_empty = theirs
        .get(6)
        .is_none_or(|k| !k.as_object().unwrap().is_empty());
    if only_ids_positional && kwargs_absent_iff_empty {
        let mut ours = ours.clone();
        let mut theirs = theirs.clone();
        ours[2] = json!("<secret>");
        theirs[2] = json!("<secret>");
        assert_eq!(ours, theirs, "{file}: execute_kw arguments, literally");
    }
}

// ---------------------------------------------------------------------------------------------
// (1) Transcript conformance.

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The transcript's `result` (JSON-RPC, `null` when absent) or body (JSON-2).
    Result,
    Error(OdooErrorKind),
}

fn expected_result(transcript: &Value) -> Value {
    let body = &transcript["response"]["body"];
    if transcript["request"]["url"]
        .as_str()
        .unwrap()
        .ends_with("/jsonrpc")
    {
        body.get("result").cloned().unwrap_or(Value::Null)
    } else {
        body.clone()
    }
}

/// Odoo's name and message in a JSON error response (`None` for HTML pages).
fn expected_error(transcript: &Value) -> Option<(String, String)> {
    let response = &transcript["response"];
    if response["body_is_json"] != true {
        return None;
    }
    let body = &response["body"];
    let source = if body.get("error").is_some() {
        &body["error"]["data"]
    } else {
        body
    };
    Some((
        source["name"].as_str()?.to_owned(),
        source["message"].as_str()?.to_owned(),
    ))
}

fn call_from_execute_kw(transcript: &Value) -> OdooCall {
    let args = transcript["request"]["body"]["params"]["args"]
        .as_array()
        .unwrap();
    let (model, method, ids, kwargs) = canonical_execute_kw(args);
    let mut call = OdooCall::new(model, method).with_ids(ids);
    call.kwargs = kwargs;
    call
}

fn call_from_json2(transcript: &Value) -> OdooCall {
    let path = path_of(transcript);
    let mut parts = path.trim_start_matches("/json/2/").split('/');
    let (model, method) = (parts.next().unwrap(), parts.next().unwrap());
    let mut kwargs = transcript["request"]["body"].as_object().unwrap().clone();
    let ids: Vec<i64> = kwargs
        .remove("ids")
        .map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_i64().unwrap())
                .collect()
        })
        .unwrap_or_default();
    let mut call = OdooCall::new(model, method).with_ids(ids);
    call.kwargs = kwargs;
    call
}

fn check_outcome(
    file: &str,
    transcript: &Value,
    expect: Expect,
    outcome: Result<Value, freightbridge::odoo::OdooError>,
) {
    match (expect, outcome) {
        (Expect::Result, Ok(value)) => assert_eq!(value, expected_result(transcript), "{file}"),
        (Expect::Error(kind), Err(error)) => {
            assert_eq!(error.kind, kind, "{file}: {error}");
            match expected_error(transcript) {
                Some((name, message)) => {
                    assert_eq!(error.name.as_deref(), Some(name.as_str()), "{file}");
                    assert_eq!(error.message, message, "{file}");
                }
                None => assert_eq!(error.name, None, "{file}"),
            }
            let shown = error.to_string();
            assert!(
                !shown.contains("Traceback") && !shown.contains("stack frames"),
                "{file}: {shown}"
            );
        }
        (expect, outcome) => panic!("{file}: expected {expect:?}, got {outcome:?}"),
    }
}

fn rpc_config(url: &str, db: &str, login: &str, secret: &str) -> OdooConfig {
    let mut cfg = OdooConfig::new(url);
    cfg.transport = Some(Transport::JsonRpc);
    cfg.db = Some(db.into());
    cfg.user = Some(login.into());
    if secret == KEY {
        cfg.api_key = Some(Secret::new(secret));
    } else {
        cfg.password = Some(Secret::new(secret));
    }
    cfg
}

#[tokio::test]
async fn jsonrpc_client_sends_what_odoo_expects_and_decodes_what_odoo_answers() {
    use OdooErrorKind::*;
    let cases: &[(&str, &str, Expect)] = &[
        (
            "039_jsonrpc_stock_picking_message_post",
            "005_jsonrpc_common_authenticate",
            Expect::Result,
        ),
        (
            "058_jsonrpc_account_move_button_draft_bill",
            "005_jsonrpc_common_authenticate",
            Expect::Result,
        ),
        (
            "014_jsonrpc_res_partner_create_vendor",
            "005_jsonrpc_common_authenticate",
            Expect::Result,
        ),
        (
            "015_jsonrpc_res_partner_create_customer_multi",
            "005_jsonrpc_common_authenticate",
            Expect::Result,
        ),
        (
            "065_jsonrpc_error_MissingError_read",
            "005_jsonrpc_common_authenticate",
            Expect::Result,
        ),
        (
            "064_jsonrpc_error_MissingError_write",
            "004_jsonrpc_common_login",
            Expect::Error(NotFound),
        ),
        (
            "008_jsonrpc_execute_kw_wrong_password_AccessDenied",
            "005_jsonrpc_common_authenticate",
            Expect::Error(Auth),
        ),
        (
            "066_jsonrpc_error_invalid_field_search_read",
            "005_jsonrpc_common_authenticate",
            Expect::Error(BadRequest),
        ),
        (
            "067_jsonrpc_error_invalid_field_domain",
            "005_jsonrpc_common_authenticate",
            Expect::Error(BadRequest),
        ),
        (
            "069_jsonrpc_error_ValidationError_recursive_partner",
            "005_jsonrpc_common_authenticate",
            Expect::Error(Validation),
        ),
        (
            "072_jsonrpc_error_unknown_method",
            "005_jsonrpc_common_authenticate",
            Expect::Error(BadRequest),
        ),
        (
            "074_jsonrpc_error_unknown_model",
            "005_jsonrpc_common_authenticate",
            Expect::Error(Business),
        ),
        (
            "131_jsonrpc_execute_kw_with_api_key",
            "130_jsonrpc_common_authenticate_with_api_key",
            Expect::Result,
        ),
        (
            "odoo18/06_jsonrpc_execute_kw_wrong_password_AccessDenied",
            "odoo18/04_jsonrpc_common_login",
            Expect::Error(Auth),
        ),
        (
            "odoo18/13_jsonrpc_stock_picking_search_read",
            "odoo18/04_jsonrpc_common_login",
            Expect::Result,
        ),
        (
            "odoo18/14_jsonrpc_res_partner_message_post",
            "odoo18/04_jsonrpc_common_login",
            Expect::Result,
        ),
        (
            "odoo18/20_jsonrpc_error_UserError_unbalanced_create",
            "odoo18/04_jsonrpc_common_login",
            Expect::Error(Business),
        ),
        (
            "odoo18/21_jsonrpc_error_MissingError_write",
            "odoo18/04_jsonrpc_common_login",
            Expect::Error(NotFound),
        ),
        (
            "odoo18/22_jsonrpc_read_missing_id",
            "odoo18/04_jsonrpc_common_login",
            Expect::Result,
        ),
        (
            "odoo18/38_jsonrpc_execute_kw_with_api_key",
            "odoo18/37_jsonrpc_common_authenticate_with_api_key",
            Expect::Result,
        ),
    ];
    for (file, auth_file, expect) in cases {
        let transcript = fixture(file);
        let auth = fixture(auth_file);
        let args = transcript["request"]["body"]["params"]["args"]
            .as_array()
            .unwrap();
        let secret = unmask(&secret_in(args));
        let login = auth["request"]["body"]["params"]["args"][1]
            .as_str()
            .unwrap();
        let replay = Replay::start(vec![auth.clone(), transcript.clone()]).await;
        let cfg = rpc_config(&replay.url, args[0].as_str().unwrap(), login, &secret);
        let client = OdooClient::connect(&cfg).await.unwrap();
        let outcome = client.execute(&call_from_execute_kw(&transcript)).await;

        let seen = replay.seen();
        assert_eq!(seen.len(), 2, "{file}: authenticate once, then the call");
        assert_auth_request(&seen[0], &auth, &secret, auth_file);
        assert_execute_kw_request(&seen[1], &transcript, &secret, file);
        check_outcome(file, &transcript, *expect, outcome);
    }
}

#[tokio::test]
async fn jsonrpc_login_refused_with_false_is_an_auth_error_and_stops_there() {
    for file in [
        "006_jsonrpc_common_login_wrong_password",
        "007_jsonrpc_common_authenticate_wrong_password",
    ] {
        let transcript = fixture(file);
        let args = transcript["request"]["body"]["params"]["args"]
            .as_array()
            .unwrap();
        let replay = Replay::start(vec![transcript.clone()]).await;
        let cfg = rpc_config(&replay.url, "test", "admin", args[2].as_str().unwrap());
        let client = OdooClient::connect(&cfg).await.unwrap();
        let call = OdooCall::new("res.partner", "search_read").with_arg("domain", json!([]));
        let error = client.execute(&call).await.unwrap_err();
        assert_eq!(error.kind, OdooErrorKind::Auth, "{file}");
        assert_eq!(error.class(), FailureClass::Permanent);
        assert!(
            !error.message.contains("wrong-password"),
            "{file}: secret in message"
        );
        let seen = replay.seen();
        assert_eq!(seen.len(), 1, "{file}: no execute_kw after a refused login");
        assert_auth_request(&seen[0], &transcript, "wrong-password", file);
    }
}

#[tokio::test]
async fn json2_client_sends_what_odoo_expects_and_decodes_what_odoo_answers() {
    use OdooErrorKind::*;
    let cases: &[(&str, Expect)] = &[
        ("094_json2_stock_picking_search_read", Expect::Result),
        ("096_json2_stock_picking_message_post", Expect::Result),
        ("089_json2_res_users_context_get", Expect::Result),
        ("092_json2_res_partner_create", Expect::Result),
        ("093_json2_res_partner_write", Expect::Result),
        ("097_json2_stock_picking_read", Expect::Result),
        (
            "113_json2_error_MissingError_write",
            Expect::Error(NotFound),
        ),
        ("115_json2_error_ValidationError", Expect::Error(Validation)),
        (
            "116_json2_error_UserError_unbalanced",
            Expect::Error(Business),
        ),
        ("103_json2_error_invalid_api_key", Expect::Error(Auth)),
        ("104_json2_error_missing_authorization", Expect::Error(Auth)),
        (
            "105_json2_error_wrong_database_header",
            Expect::Error(Config),
        ),
        ("107_json2_error_unknown_model", Expect::Error(BadRequest)),
        ("108_json2_error_unknown_method", Expect::Error(BadRequest)),
        (
            "110_json2_error_model_method_called_with_ids",
            Expect::Error(BadRequest),
        ),
        ("114_json2_error_invalid_field", Expect::Error(BadRequest)),
        (
            "odoo18/07_json2_endpoint_absent_in_18",
            Expect::Error(Config),
        ),
    ];
    for (file, expect) in cases {
        let transcript = fixture(file);
        let headers = &transcript["request"]["headers"];
        let sent_auth = headers["Authorization"].as_str();
        let key = sent_auth
            .map(|a| unmask(a.trim_start_matches("bearer ")))
            .unwrap_or_else(|| KEY.to_owned());
        let replay = Replay::start(vec![transcript.clone()]).await;
        let mut cfg = OdooConfig::new(&replay.url);
        cfg.transport = Some(Transport::Json2);
        cfg.api_key = Some(Secret::new(&key));
        cfg.db = headers["X-Odoo-Database"].as_str().map(Into::into);
        let client = OdooClient::connect(&cfg).await.unwrap();
        let outcome = client.execute(&call_from_json2(&transcript)).await;

        let seen = replay.seen();
        assert_eq!(seen.len(), 1, "{file}");
        let seen = &seen[0];
        assert_eq!(seen.method, "POST", "{file}");
        assert_eq!(seen.path, path_of(&transcript), "{file}");
        // Odoo reads JSON either way; the 18 probe happened to omit the charset.
        let media = |v: &str| v.split(';').next().unwrap().trim().to_owned();
        assert_eq!(
            media(seen.headers[header::CONTENT_TYPE].to_str().unwrap()),
            media(headers["Content-Type"].as_str().unwrap()),
            "{file}"
        );
        assert_eq!(
            seen.headers
                .get("x-odoo-database")
                .map(|v| v.to_str().unwrap()),
            headers["X-Odoo-Database"].as_str(),
            "{file}"
        );
        // 104 recorded a request without the header on purpose; we always send ours.
        let ours = seen.headers[header::AUTHORIZATION].to_str().unwrap();
        assert_eq!(ours, format!("bearer {key}"), "{file}");
        match sent_auth {
            Some(theirs) if MASKED_KEYS.iter().any(|m| theirs.ends_with(m)) => {
                let sent_key = ours.strip_prefix("bearer ").unwrap();
                assert_eq!(sent_key.len(), 40, "{file}");
                assert!(
                    sent_key
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
                );
            }
            Some(theirs) => assert_eq!(ours, theirs, "{file}"),
            None => {}
        }
        assert_eq!(seen.body, transcript["request"]["body"], "{file}: body");
        check_outcome(file, &transcript, *expect, outcome);
    }
}

#[tokio::test]
async fn connect_picks_json2_on_19_with_a_key_and_jsonrpc_otherwise() {
    struct Case {
        exchanges: &'static [&'static str],
        api_key: bool,
        transport: Transport,
    }
    let cases = [
        Case {
            exchanges: &["002_web_version_GET"],
            api_key: true,
            transport: Transport::Json2,
        },
        Case {
            exchanges: &["002_web_version_GET"],
            api_key: false,
            transport: Transport::JsonRpc,
        },
        Case {
            exchanges: &[
                "odoo18/02_web_version_GET",
                "odoo18/01_web_webclient_version_info",
            ],
            api_key: true,
            transport: Transport::JsonRpc,
        },
        // /web/version hidden by a proxy: version_info still tells 19.
        Case {
            exchanges: &[
                "odoo18/02_web_version_GET",
                "001_web_webclient_version_info",
            ],
            api_key: true,
            transport: Transport::Json2,
        },
    ];
    for case in cases {
        let transcripts: Vec<Value> = case.exchanges.iter().map(|f| fixture(f)).collect();
        let replay = Replay::start(transcripts.clone()).await;
        let mut cfg = OdooConfig::new(&replay.url);
        cfg.db = Some("test".into());
        cfg.user = Some("admin".into());
        cfg.password = Some(Secret::new("admin"));
        if case.api_key {
            cfg.api_key = Some(Secret::new(KEY));
        }
        let client = OdooClient::connect(&cfg).await.unwrap();
        assert_eq!(
            client.transport(),
            Some(case.transport),
            "{:?}",
            case.exchanges
        );
        let seen = replay.seen();
        assert_eq!(seen.len(), transcripts.len(), "{:?}", case.exchanges);
        for (seen, transcript) in seen.iter().zip(&transcripts) {
            assert_eq!(
                seen.method,
                transcript["request"]["method"].as_str().unwrap()
            );
            assert_eq!(seen.path, path_of(transcript));
            if transcript["request"]["body"].is_object() {
                let mut theirs = transcript["request"]["body"].clone();
                theirs["id"] = seen.body["id"].clone();
                assert_eq!(seen.body, theirs);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// (2) The double answers like Odoo: same status, content type, JSON shape, and the same error
// names, messages and codes.

/// Same JSON types and object keys; list elements compared with the transcript's first one.
fn assert_same_shape(expected: &Value, actual: &Value, at: &str) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            let mut ek: Vec<&String> = e.keys().collect();
            let mut ak: Vec<&String> = a.keys().collect();
            ek.sort();
            ak.sort();
            assert_eq!(ek, ak, "{at}: keys");
            for (k, v) in e {
                assert_same_shape(v, &a[k], &format!("{at}.{k}"));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(e.is_empty(), a.is_empty(), "{at}: emptiness ({actual})");
            let kind = |v: &Value| std::mem::discriminant(v);
            let homogeneous = e.windows(2).all(|w| kind(&w[0]) == kind(&w[1]));
            if homogeneous {
                if let Some(first) = e.first() {
                    for (i, item) in a.iter().enumerate() {
                        assert_same_shape(first, item, &format!("{at}[{i}]"));
                    }
                }
            } else {
                // A tuple such as version_info [19, 0, 0, "final", 0, ""] or a many2one.
                assert_eq!(e.len(), a.len(), "{at}: tuple length");
                for (i, (x, y)) in e.iter().zip(a).enumerate() {
                    assert_same_shape(x, y, &format!("{at}[{i}]"));
                }
            }
        }
        (Value::Number(_), Value::Number(_))
        | (Value::String(_), Value::String(_))
        | (Value::Bool(_), Value::Bool(_))
        | (Value::Null, Value::Null) => {}
        _ => panic!("{at}: expected a value like {expected}, got {actual}"),
    }
}

fn substitute_keys(value: &Value, key: &str) -> Value {
    match value {
        Value::String(s) if MASKED_KEYS.contains(&s.as_str()) => json!(key),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| substitute_keys(v, key)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), substitute_keys(v, key)))
                .collect(),
        ),
        other => other.clone(),
    }
}

async fn send_raw(double: &OdooDouble, transcript: &Value) -> (u16, bool, HeaderMap, Value) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let request = &transcript["request"];
    let url = format!("{}{}", double.url(), path_of(transcript));
    let mut builder = match request["method"].as_str().unwrap() {
        "GET" => http.get(url),
        _ => http.post(url),
    };
    let key = &double.config().api_key;
    for (name, value) in request["headers"].as_object().unwrap() {
        let value = value.as_str().unwrap();
        let value = MASKED_KEYS
            .iter()
            .fold(value.to_owned(), |v, masked| v.replace(masked, key));
        builder = builder.header(name.as_str(), value);
    }
    if !request["body"].is_null() {
        builder = builder.body(substitute_keys(&request["body"], key).to_string());
    }
    let response = builder.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.to_str().unwrap().starts_with("application/json"));
    let text = response.text().await.unwrap();
    let body = if is_json {
        serde_json::from_str(&text).unwrap()
    } else {
        Value::String(text)
    };
    (status, is_json, headers, body)
}

fn seed_like_the_transcripts(double: &OdooDouble) {
    double.seed_partner(Some(6), "Oceanic Freight Lines Ltd");
    double.seed_partner(Some(7), "Blue Harbor Retail GmbH");
    double.seed_partner(Some(10), "Swift Parcel Co");
    let mut receipt = PickingSeed::new("WH/IN/00001", Some("OFL-TRK-0001")).with_id(1);
    receipt.picking_type_code = "incoming".into();
    double.seed_picking(receipt);
    let mut delivery = PickingSeed::new(
        "WH/OUT/00001",
        Some("1Z999AA10123456784,1Z999AA10123456795"),
    )
    .with_id(2);
    delivery.state = "done".into();
    delivery.origin = Some("S00001".into());
    delivery.partner_id = Some((7, "Blue Harbor Retail GmbH".into()));
    delivery.carrier_id = Some((2, "Oceanic Road Freight".into()));
    delivery.date_done = Some("2026-11-27 07:46:02".into());
    double.seed_picking(delivery);
}

async fn assert_double_answers_like(double: &OdooDouble, file: &str) {
    let transcript = fixture(file);
    let (status, is_json, headers, body) = send_raw(double, &transcript).await;
    let response = &transcript["response"];
    assert_eq!(
        u64::from(status),
        transcript["http_status"].as_u64().unwrap(),
        "{file}: status"
    );
    assert_eq!(
        is_json,
        response["body_is_json"] == true,
        "{file}: content type"
    );
    if !is_json {
        return;
    }
    let expected = &response["body"];
    assert_same_shape(expected, &body, file);
    if let Some(error) = expected.get("error") {
        assert_eq!(body["error"]["code"], error["code"], "{file}: error.code");
        assert_eq!(
            body["error"]["data"]["name"], error["data"]["name"],
            "{file}"
        );
        assert_eq!(
            body["error"]["data"]["message"], error["data"]["message"],
            "{file}"
        );
    } else if expected.get("name").is_some() && status >= 400 {
        assert_eq!(body["name"], expected["name"], "{file}");
        assert_eq!(body["message"], expected["message"], "{file}");
        if status == 401 {
            // HTTP parsers drop the trailing blank of Odoo's "Bearer ".
            assert_eq!(
                headers[header::WWW_AUTHENTICATE].to_str().unwrap().trim(),
                "Bearer",
                "{file}"
            );
        }
    }
}

#[tokio::test]
async fn double_answers_odoo_19_requests_like_odoo_19() {
    let double = OdooDouble::start(OdooDoubleConfig::version(19)).await;
    seed_like_the_transcripts(&double);
    // Not covered: account.move (058, 116) and the unknown-method case on it (072): the
    // double has no accounting models.
    for file in [
        "001_web_webclient_version_info",
        "002_web_version_GET",
        "004_jsonrpc_common_login",
        "005_jsonrpc_common_authenticate",
        "006_jsonrpc_common_login_wrong_password",
        "007_jsonrpc_common_authenticate_wrong_password",
        "008_jsonrpc_execute_kw_wrong_password_AccessDenied",
        "014_jsonrpc_res_partner_create_vendor",
        "015_jsonrpc_res_partner_create_customer_multi",
        "039_jsonrpc_stock_picking_message_post",
        "064_jsonrpc_error_MissingError_write",
        "065_jsonrpc_error_MissingError_read",
        "066_jsonrpc_error_invalid_field_search_read",
        "067_jsonrpc_error_invalid_field_domain",
        "069_jsonrpc_error_ValidationError_recursive_partner",
        "074_jsonrpc_error_unknown_model",
        "089_json2_res_users_context_get",
        "092_json2_res_partner_create",
        "093_json2_res_partner_write",
        "094_json2_stock_picking_search_read",
        "096_json2_stock_picking_message_post",
        "097_json2_stock_picking_read",
        "103_json2_error_invalid_api_key",
        "104_json2_error_missing_authorization",
        "105_json2_error_wrong_database_header",
        "107_json2_error_unknown_model",
        "108_json2_error_unknown_method",
        "110_json2_error_model_method_called_with_ids",
        "113_json2_error_MissingError_write",
        "114_json2_error_invalid_field",
        "115_json2_error_ValidationError",
        "130_jsonrpc_common_authenticate_with_api_key",
        "131_jsonrpc_execute_kw_with_api_key",
    ] {
        assert_double_answers_like(&double, file).await;
    }
}

#[tokio::test]
async fn double_answers_odoo_18_requests_like_odoo_18() {
    let double = OdooDouble::start(OdooDoubleConfig::version(18)).await;
    double.seed_partner(Some(7), "Oceanic Freight Lines Ltd");
    // Not covered: 20 (account.move).
    for file in [
        "odoo18/01_web_webclient_version_info",
        "odoo18/02_web_version_GET",
        "odoo18/04_jsonrpc_common_login",
        "odoo18/06_jsonrpc_execute_kw_wrong_password_AccessDenied",
        "odoo18/13_jsonrpc_stock_picking_search_read",
        "odoo18/14_jsonrpc_res_partner_message_post",
        "odoo18/21_jsonrpc_error_MissingError_write",
        "odoo18/22_jsonrpc_read_missing_id",
        "odoo18/37_jsonrpc_common_authenticate_with_api_key",
        "odoo18/38_jsonrpc_execute_kw_with_api_key",
    ] {
        assert_double_answers_like(&double, file).await;
    }
    // The 18 transcript followed Odoo's redirect to the login page; unfollowed it is a 303.
    let (status, _, headers, _) =
        send_raw(&double, &fixture("odoo18/07_json2_endpoint_absent_in_18")).await;
    assert_eq!(status, 303);
    assert!(
        headers[header::LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/web/login")
    );
}

/// Real Odoo 19 and 18 create the records of a `create` whose `vals_list` is named, then fail
/// adapting the result through `args[0]` and roll back (19: `odoo/service/model.py`, 18:
/// `odoo/api.py`); the double refuses it the same way, so a client that names it fails here too.
#[tokio::test]
async fn double_refuses_a_jsonrpc_create_with_a_named_vals_list_like_odoo() {
    for (version, message) in [
        (19, "list index out of range"),
        (18, "tuple index out of range"),
    ] {
        let double = OdooDouble::start(OdooDoubleConfig::version(version)).await;
        let d = double.config().clone();
        let call = |args: Value, kwargs: Value| {
            json!({"jsonrpc": "2.0", "method": "call", "id": 5, "params": {
                "service": "object", "method": "execute_kw",
                "args": [d.db, 2, d.password, "res.partner", "create", args, kwargs]}})
        };
        let http = reqwest::Client::new();
        let send = async |body: Value| -> Value {
            let response = http
                .post(format!("{}/jsonrpc", double.url()))
                .json(&body)
                .send()
                .await
                .unwrap();
            response.json().await.unwrap()
        };
        let named = send(call(json!([]), json!({"vals_list": [{"name": "Named"}]}))).await;
        assert_eq!(
            named["error"]["data"]["name"], "builtins.IndexError",
            "{version}"
        );
        assert_eq!(named["error"]["data"]["message"], message, "{version}");
        assert!(
            double
                .find("res.partner", json!([["name", "=", "Named"]]))
                .is_empty()
        );
        let positional = send(call(json!([[{"name": "Positional"}]]), json!({}))).await;
        assert!(positional["result"].is_array(), "{version}: {positional}");
        assert_eq!(
            double
                .find("res.partner", json!([["name", "=", "Positional"]]))
                .len(),
            1
        );
    }
}

// ---------------------------------------------------------------------------------------------
// (3) Milestone notes against the double.

#[derive(Debug, Clone, Copy)]
enum Setup {
    V19Json2,
    V19JsonRpc,
    V18JsonRpc,
}

const SETUPS: [Setup; 3] = [Setup::V19Json2, Setup::V19JsonRpc, Setup::V18JsonRpc];

async fn start(setup: Setup, timeout: Duration) -> (OdooDouble, OdooClient) {
    let (version, transport) = match setup {
        Setup::V19Json2 => (19, Transport::Json2),
        Setup::V19JsonRpc => (19, Transport::JsonRpc),
        Setup::V18JsonRpc => (18, Transport::JsonRpc),
    };
    let double = OdooDouble::start(OdooDoubleConfig::version(version)).await;
    let d = double.config();
    let mut cfg = OdooConfig::new(double.url());
    cfg.db = Some(d.db.clone());
    cfg.user = Some(d.login.clone());
    cfg.api_key = Some(Secret::new(&d.api_key));
    cfg.transport = Some(transport);
    cfg.timeout = timeout;
    let client = OdooClient::connect(&cfg).await.unwrap();
    (double, client)
}

fn event(tracking: &str, source_event: &str, body: EventBody) -> CanonicalEvent {
    let at: DateTime<Utc> = "2026-11-28T09:40:00Z".parse().unwrap();
    CanonicalEvent {
        schema: SCHEMA.into(),
        event_id: event_id("easypost", source_event, 0),
        partner: "easypost".into(),
        source_event_id: source_event.into(),
        correlation_id: source_event.into(),
        occurred_at: at,
        received_at: at,
        shipment: ShipmentRef {
            tracking_number: tracking.into(),
            carrier: Some("UPS".into()),
            reference: None,
        },
        body,
    }
}

fn picked_up(tracking: &str, source_event: &str) -> CanonicalEvent {
    event(
        tracking,
        source_event,
        EventBody::StatusChanged(StatusChange {
            status: ShipmentStatus::PickedUp,
            status_detail: None,
            raw_status: None,
            location: None,
            message: None,
            eta: None,
        }),
    )
}

fn delivered(tracking: &str, source_event: &str) -> CanonicalEvent {
    event(
        tracking,
        source_event,
        EventBody::Delivered(Delivery {
            status: ShipmentStatus::Delivered,
            status_detail: Some("arrived_at_destination".into()),
            location: None,
            message: None,
            pod: ProofOfDelivery {
                signed_by: Some("J. Smith".into()),
                delivered_at: "2026-11-28T09:40:00Z".parse().unwrap(),
                document_url: None,
            },
        }),
    )
}

fn business_calls(double: &OdooDouble) -> Vec<(String, String)> {
    double
        .calls()
        .into_iter()
        .filter(|(m, _)| m != "common")
        .collect()
}

fn logins(double: &OdooDouble) -> usize {
    double.calls().iter().filter(|(m, _)| m == "common").count()
}

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn delivered_note_lands_on_the_picking_in_two_round_trips() {
    for setup in SETUPS {
        let (double, client) = start(setup, WAIT).await;
        let other =
            double.seed_picking(PickingSeed::new("WH/OUT/00001", Some("1Z999AA10000000001")));
        let target =
            double.seed_picking(PickingSeed::new("WH/OUT/00002", Some("1Z999AA10123456784")));
        let e = delivered("1Z999AA10123456784", "evt_delivered");

        let posted = post_milestone_note(&client, &e, false).await.unwrap();

        assert_eq!(posted.picking_id, target, "{setup:?}");
        assert_eq!(posted.picking_name, "WH/OUT/00002", "{setup:?}");
        assert!(!posted.already_posted);
        let messages = double.messages_on(target);
        assert_eq!(messages.len(), 1, "{setup:?}");
        let message = &messages[0];
        assert_eq!(
            posted.message_id,
            message["id"].as_i64(),
            "{setup:?}: [id] and id both read"
        );
        assert_eq!(message["message_type"], "comment");
        assert_eq!(message["subtype_id"][1], "Note");
        let body = message["body"].as_str().unwrap();
        assert!(body.starts_with("<p>Shipment delivered"), "{body}");
        assert!(body.contains("signed by J. Smith"), "{body}");
        assert!(body.contains(&note_marker(&e)), "{body}");
        assert!(double.messages_on(other).is_empty(), "{setup:?}");
        let expected = vec![
            ("stock.picking".to_owned(), "search_read".to_owned()),
            ("stock.picking".to_owned(), "message_post".to_owned()),
        ];
        assert_eq!(business_calls(&double), expected, "{setup:?}");
        let auth_expected = usize::from(!matches!(setup, Setup::V19Json2));
        assert_eq!(logins(&double), auth_expected, "{setup:?}");

        // A second event on the same client: two more calls, no second login.
        post_milestone_note(&client, &picked_up("1Z999AA10123456784", "evt_2"), false)
            .await
            .unwrap();
        assert_eq!(business_calls(&double).len(), 4, "{setup:?}");
        assert_eq!(logins(&double), auth_expected, "{setup:?}");
        assert_eq!(double.messages_on(target).len(), 2);
    }
}

#[tokio::test]
async fn comma_separated_refs_match_whole_numbers_only() {
    for setup in SETUPS {
        let (double, client) = start(setup, WAIT).await;
        let listed = double.seed_picking(PickingSeed::new(
            "WH/OUT/00010",
            Some("1Z999AA10123456795, 1Z999AA10123456784"),
        ));
        // Newer, and contains the number only as part of a longer one.
        let decoy = double.seed_picking(PickingSeed::new(
            "WH/OUT/00011",
            Some("1Z999AA101234567840"),
        ));

        let posted = post_milestone_note(&client, &picked_up("1Z999AA10123456784", "evt_c"), false)
            .await
            .unwrap();

        assert_eq!(posted.picking_id, listed, "{setup:?}");
        assert_eq!(double.messages_on(listed).len(), 1);
        assert!(double.messages_on(decoy).is_empty(), "{setup:?}");
    }
}

#[tokio::test]
async fn several_matching_pickings_take_the_most_recent() {
    for setup in SETUPS {
        let (double, client) = start(setup, WAIT).await;
        let older = double.seed_picking(PickingSeed::new("WH/OUT/00001", Some("TRK-1")));
        let newer = double.seed_picking(PickingSeed::new("WH/OUT/00002", Some("TRK-1,TRK-2")));
        let posted = post_milestone_note(&client, &picked_up("TRK-1", "evt_s"), false)
            .await
            .unwrap();
        assert_eq!(posted.picking_id, newer, "{setup:?}");
        assert!(double.messages_on(older).is_empty());
    }
}

#[tokio::test]
async fn picking_found_by_reference_when_no_tracking_ref_matches() {
    for setup in SETUPS {
        let (double, client) = start(setup, WAIT).await;
        let picking = double.seed_picking(PickingSeed::new("WH/OUT/00042", None));
        let mut e = picked_up("NOT-YET-WRITTEN", "evt_r");
        e.shipment.reference = Some("WH/OUT/00042".into());
        let posted = post_milestone_note(&client, &e, false).await.unwrap();
        assert_eq!(posted.picking_id, picking, "{setup:?}");
        assert_eq!(double.messages_on(picking).len(), 1);
    }
}

#[tokio::test]
async fn missing_picking_is_a_permanent_not_found() {
    for setup in SETUPS {
        let (double, client) = start(setup, WAIT).await;
        double.seed_picking(PickingSeed::new("WH/OUT/00001", Some("SOMETHING-ELSE")));
        let error = post_milestone_note(&client, &picked_up("1Z-UNKNOWN-9", "evt_m"), true)
            .await
            .unwrap_err();
        assert_eq!(error.kind, OdooErrorKind::NotFound, "{setup:?}");
        assert_eq!(error.class(), FailureClass::Permanent);
        assert_eq!(error.code(), "odoo_picking_not_found");
        assert!(error.message.contains("1Z-UNKNOWN-9"));
        assert!(
            !business_calls(&double)
                .iter()
                .any(|(_, m)| m == "message_post")
        );
    }
}

#[tokio::test]
async fn retry_with_check_existing_finds_the_earlier_note() {
    for setup in SETUPS {
        let (double, client) = start(setup, WAIT).await;
        let picking =
            double.seed_picking(PickingSeed::new("WH/OUT/00001", Some("1Z999AA10123456784")));
        let e = delivered("1Z999AA10123456784", "evt_retry");
        let first = post_milestone_note(&client, &e, false).await.unwrap();

        let again = post_milestone_note(&client, &e, true).await.unwrap();

        assert!(again.already_posted, "{setup:?}");
        assert_eq!(again.message_id, first.message_id, "{setup:?}");
        assert_eq!(double.messages_on(picking).len(), 1, "{setup:?}");
        let calls = business_calls(&double);
        assert_eq!(
            calls[2..],
            [
                ("stock.picking".to_owned(), "search_read".to_owned()),
                ("mail.message".to_owned(), "search_read".to_owned()),
            ],
            "{setup:?}"
        );

        // A different event on the same picking is not mistaken for the first one.
        let other =
            post_milestone_note(&client, &picked_up("1Z999AA10123456784", "evt_other"), true)
                .await
                .unwrap();
        assert!(!other.already_posted, "{setup:?}");
        assert_eq!(double.messages_on(picking).len(), 2);
    }
}

#[tokio::test]
async fn timeout_after_odoo_committed_is_retryable_and_the_retry_does_not_post_twice() {
    for setup in SETUPS {
        let (double, client) = start(setup, Duration::from_millis(800)).await;
        let picking =
            double.seed_picking(PickingSeed::new("WH/OUT/00001", Some("1Z999AA10123456784")));
        double.fail_next_on(
            "message_post",
            1,
            InjectedFailure::Delay(Duration::from_millis(1600)),
        );
        let e = delivered("1Z999AA10123456784", "evt_slow");

        let error = post_milestone_note(&client, &e, false).await.unwrap_err();
        assert_eq!(error.kind, OdooErrorKind::Timeout, "{setup:?}: {error}");
        assert_eq!(error.class(), FailureClass::Retryable);

        // The slow Odoo still commits the note after we gave up.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while double.messages_on(picking).is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{setup:?}: note never landed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let retry = post_milestone_note(&client, &e, true).await.unwrap();
        assert!(retry.already_posted, "{setup:?}");
        assert_eq!(double.messages_on(picking).len(), 1, "{setup:?}");
    }
}

#[tokio::test]
async fn a_held_write_is_in_odoo_before_its_answer_and_answered_once_released() {
    for setup in SETUPS {
        let (double, client) = start(setup, WAIT).await;
        let picking = double.seed_picking(PickingSeed::new("WH/OUT/00001", Some("TRK-H")));
        double.hold_after_commit(&["message_post"], 1);
        let client = Arc::new(client);
        let posting = {
            let client = client.clone();
            tokio::spawn(async move {
                post_milestone_note(&*client, &picked_up("TRK-H", "evt_held"), false).await
            })
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while double.held().is_empty() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{setup:?}: never held"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Committed, and the caller still waits for the answer.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(double.messages_on(picking).len(), 1, "{setup:?}");
        assert!(!posting.is_finished(), "{setup:?}: answered while held");
        let held = double.held();
        assert_eq!(held.len(), 1, "{setup:?}");
        assert_eq!(
            (
                held[0].model.as_str(),
                held[0].method.as_str(),
                &held[0].ids
            ),
            ("stock.picking", "message_post", &vec![picking]),
            "{setup:?}"
        );
        let body = held[0].args.get("body").and_then(Value::as_str);
        assert!(
            body.is_some_and(|b| b.ends_with(&note_marker(&picked_up("TRK-H", "evt_held")))),
            "{setup:?}: {body:?}"
        );

        // Only `n` calls are held: the next write is answered at once.
        let second = picked_up("TRK-H", "evt_second");
        tokio::time::timeout(
            Duration::from_secs(5),
            post_milestone_note(&*client, &second, false),
        )
        .await
        .expect("not held")
        .unwrap();
        assert!(!posting.is_finished(), "{setup:?}: the first is still held");

        double.release_held();
        let note = tokio::time::timeout(Duration::from_secs(5), posting)
            .await
            .expect("answered once released")
            .unwrap()
            .unwrap();
        assert!(!note.already_posted, "{setup:?}");
        // A release ends the hold, whatever was left of it.
        double.hold_after_commit(&["message_post"], 5);
        double.release_held();
        let third = picked_up("TRK-H", "evt_third");
        tokio::time::timeout(
            Duration::from_secs(5),
            post_milestone_note(&*client, &third, false),
        )
        .await
        .expect("not held after a release")
        .unwrap();
        assert_eq!(double.held().len(), 1, "{setup:?}");
        assert_eq!(double.messages_on(picking).len(), 3, "{setup:?}");
    }
}

#[tokio::test]
async fn server_failures_are_retryable_and_post_nothing() {
    let failures = [
        (InjectedFailure::Http500, OdooErrorKind::Server),
        (InjectedFailure::Http503, OdooErrorKind::Server),
        (
            InjectedFailure::SerializationFailure,
            OdooErrorKind::Concurrency,
        ),
    ];
    for setup in SETUPS {
        for (failure, kind) in failures {
            let (double, client) = start(setup, WAIT).await;
            let picking = double.seed_picking(PickingSeed::new("WH/OUT/00001", Some("TRK-9")));
            double.fail_next_on("message_post", 1, failure);
            let error = post_milestone_note(&client, &picked_up("TRK-9", "evt_f"), false)
                .await
                .unwrap_err();
            assert_eq!(error.kind, kind, "{setup:?} {failure:?}: {error}");
            assert_eq!(error.class(), FailureClass::Retryable);
            assert!(double.messages_on(picking).is_empty());
            // The next attempt goes through.
            post_milestone_note(&client, &picked_up("TRK-9", "evt_f"), true)
                .await
                .unwrap();
            assert_eq!(
                double.messages_on(picking).len(),
                1,
                "{setup:?} {failure:?}"
            );
        }
    }
}

#[tokio::test]
async fn wrong_credentials_are_permanent_auth_errors() {
    for setup in SETUPS {
        let (double, _) = start(setup, WAIT).await;
        let d = double.config();
        let mut cfg = OdooConfig::new(double.url());
        cfg.db = Some(d.db.clone());
        cfg.user = Some(d.login.clone());
        cfg.api_key = Some(Secret::new("ffffffffffffffffffffffffffffffffffffffff"));
        cfg.transport = Some(match setup {
            Setup::V19Json2 => Transport::Json2,
            _ => Transport::JsonRpc,
        });
        let client = OdooClient::connect(&cfg).await.unwrap();
        let error = post_milestone_note(&client, &picked_up("TRK", "evt_a"), false)
            .await
            .unwrap_err();
        assert_eq!(error.kind, OdooErrorKind::Auth, "{setup:?}");
        assert_eq!(error.class(), FailureClass::Permanent);
        assert!(
            !error.to_string().contains("ffffffff"),
            "{setup:?}: key leaked"
        );
    }
}

#[tokio::test]
async fn detection_against_the_double_picks_the_transport_that_works() {
    for (version, expected) in [(19, Transport::Json2), (18, Transport::JsonRpc)] {
        let double = OdooDouble::start(OdooDoubleConfig::version(version)).await;
        let d = double.config();
        let mut cfg = OdooConfig::new(double.url());
        cfg.db = Some(d.db.clone());
        cfg.user = Some(d.login.clone());
        cfg.api_key = Some(Secret::new(&d.api_key));
        let client = OdooClient::connect(&cfg).await.unwrap();
        assert_eq!(client.transport(), Some(expected), "Odoo {version}");
        let picking = double.seed_picking(PickingSeed::new("WH/OUT/00001", Some("TRK-D")));
        post_milestone_note(&client, &picked_up("TRK-D", "evt_d"), false)
            .await
            .unwrap();
        assert_eq!(double.messages_on(picking).len(), 1, "Odoo {version}");
    }
}

#[tokio::test]
async fn unreachable_odoo_is_a_retryable_network_error() {
    // Bind then drop: nothing listens on the port any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = OdooConfig::new(format!("http://127.0.0.1:{port}"));
    cfg.api_key = Some(Secret::new(KEY));
    cfg.transport = Some(Transport::Json2);
    let client = OdooClient::connect(&cfg).await.unwrap();
    let error = client
        .execute(&OdooCall::new("res.users", "context_get"))
        .await
        .unwrap_err();
    assert_eq!(error.kind, OdooErrorKind::Network);
    assert_eq!(error.class(), FailureClass::Retryable);
    cfg.transport = None;
    let error = OdooClient::connect(&cfg).await.unwrap_err();
    assert_eq!(error.kind, OdooErrorKind::Network);
}

// ---------------------------------------------------------------------------------------------
// (4) Retry classification.

#[test]
fn every_error_kind_is_classified_with_a_code() {
    use OdooErrorKind::*;
    let table = [
        (Auth, FailureClass::Permanent, "odoo_auth_failed"),
        (Forbidden, FailureClass::Permanent, "odoo_access_denied"),
        (NotFound, FailureClass::Permanent, "odoo_missing_record"),
        (Validation, FailureClass::Permanent, "odoo_validation"),
        (Business, FailureClass::Permanent, "odoo_user_error"),
        (BadRequest, FailureClass::Permanent, "odoo_bad_request"),
        (Config, FailureClass::Permanent, "odoo_config"),
        (Protocol, FailureClass::Permanent, "odoo_protocol"),
        (Server, FailureClass::Retryable, "odoo_server_error"),
        (RateLimited, FailureClass::Retryable, "odoo_rate_limited"),
        (
            Concurrency,
            FailureClass::Retryable,
            "odoo_concurrency_conflict",
        ),
        (Network, FailureClass::Retryable, "odoo_network"),
        (Timeout, FailureClass::Retryable, "odoo_timeout"),
    ];
    for (kind, class, code) in table {
        let error = freightbridge::odoo::OdooError::new(kind, "x");
        assert_eq!(error.class(), class, "{kind:?}");
        assert_eq!(error.code(), code, "{kind:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// (5) Dry-run journal.

#[tokio::test]
async fn dry_run_journals_every_call_and_assumes_the_picking_exists() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odoo-calls.jsonl");
    let client = OdooClient::dry_run(DryRunJournal::open(&path).await.unwrap());
    let e = delivered("1Z999AA10123456784", "evt_dry");

    let posted = post_milestone_note(&client, &e, true).await.unwrap();

    assert_eq!(posted.picking_id, 0);
    assert_eq!(posted.picking_name, "(dry-run)");
    assert_eq!(posted.message_id, None);
    assert!(!posted.already_posted);
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for line in &lines {
        let mut keys: Vec<&String> = line.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(
            keys,
            ["assumed_answer", "at", "ids", "kwargs", "method", "model"]
        );
        DateTime::parse_from_rfc3339(line["at"].as_str().unwrap()).unwrap();
    }
    assert_eq!(
        (lines[0]["model"].as_str(), lines[0]["method"].as_str()),
        (Some("stock.picking"), Some("search_read"))
    );
    assert_eq!(
        lines[0]["kwargs"]["domain"],
        json!([["carrier_tracking_ref", "ilike", "1Z999AA10123456784"]])
    );
    assert_eq!(lines[0]["assumed_answer"][0]["name"], "(dry-run)");
    assert_eq!(lines[1]["model"], "mail.message");
    assert_eq!(lines[1]["assumed_answer"], json!([]));
    assert_eq!(lines[2]["method"], "message_post");
    assert_eq!(lines[2]["ids"], json!([0]));
    assert_eq!(lines[2]["kwargs"]["subtype_xmlid"], "mail.mt_note");
    assert!(
        lines[2]["kwargs"]["body"]
            .as_str()
            .unwrap()
            .ends_with(&note_marker(&e))
    );
    assert_eq!(lines[2]["assumed_answer"], Value::Null);
}

#[tokio::test]
async fn dry_run_lines_stay_whole_under_concurrent_calls() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("odoo-calls.jsonl");
    let journal = Arc::new(DryRunJournal::open(&path).await.unwrap());
    let big = "x".repeat(20_000);
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let journal = Arc::clone(&journal);
            let big = big.clone();
            tokio::spawn(async move {
                let call = OdooCall::new("stock.picking", "message_post")
                    .with_ids([i])
                    .with_arg("body", big)
                    .assuming(json!([i]));
                journal.record(&call).await.unwrap()
            })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        assert_eq!(task.await.unwrap(), json!([i]));
    }
    // Reopening appends rather than truncating.
    let reopened = DryRunJournal::open(&path).await.unwrap();
    reopened
        .record(&OdooCall::new("res.users", "context_get"))
        .await
        .unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 41);
    let mut ids: Vec<i64> = lines[..40]
        .iter()
        .map(|l| l["ids"][0].as_i64().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, (0..40).collect::<Vec<_>>());
    assert_eq!(lines[40]["method"], "context_get");
}
