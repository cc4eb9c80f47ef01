//! Hostile and odd input against the local chain's listener (the one `freightctl serve` runs):
//! each is refused with a 4xx, publishes nothing, and leaves the server healthy — a valid
//! signed webhook is accepted right after. The table prints what each case got.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use freightbridge::config::{PartnerConfig, PartnersFile, Secret};
use freightbridge::odoo::{OdooClient, OdooConfig};
use freightbridge_tests::odoo_double::{OdooDouble, OdooDoubleConfig};
use freightctl::chain::{Chain, ChainConfig};
use freightctl::send;

const PARTNERS: &str = include_str!("../../events/partners.local.toml");
const IN_TRANSIT: &[u8] =
    include_bytes!("../../events/partners/easypost-tracker-updated-in-transit.json");

/// What came back on the wire: status, headers (lower-case names) and body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn json_code(&self) -> Option<String> {
        let value: serde_json::Value = serde_json::from_str(&self.body).ok()?;
        value["error"].as_str().map(str::to_owned)
    }
}

/// One raw HTTP/1.1 exchange, so that requests no client library would send can be sent.
fn exchange(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // A refusal may come before the whole body was read: a reset after it is fine.
    let _ = stream.write_all(request);
    let mut raw = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buffer[..n]),
        }
        if let Some(end) = find(&raw, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if raw.len() >= end + 4 + length {
                break;
            }
        }
    }
    let end = find(&raw, b"\r\n\r\n").unwrap_or(raw.len());
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = String::from_utf8_lossy(raw.get(end + 4..).unwrap_or_default()).into_owned();
    Answer { status, head, body }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn request(method: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn signed(partner: &PartnerConfig, body: &[u8], id: &str) -> Vec<(String, String)> {
    send::partner_headers(partner, body, id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_is_refused_with_json_errors_and_the_server_stays_healthy() {
    let double = OdooDouble::start(OdooDoubleConfig::version(19)).await;
    let d = double.config().clone();
    let mut odoo = OdooConfig::new(double.url());
    odoo.db = Some(d.db.clone());
    odoo.user = Some(d.login.clone());
    odoo.api_key = Some(Secret::new(d.api_key.clone()));
    let odoo = OdooClient::connect(&odoo).await.unwrap();
    let partners = PartnersFile::parse(PARTNERS).unwrap();
    let easypost = partners.get("easypost").unwrap().clone();
    let state = tempfile::tempdir().unwrap();
    let chain = Chain::start(ChainConfig::new(partners, state.path()), odoo).unwrap();
    let (addr, _server) = chain.listen(0).await.unwrap();

    let json = ("Content-Type".to_owned(), "application/json".to_owned());
    let with_json = |mut headers: Vec<(String, String)>| {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case("content-type"));
        headers.push(json.clone());
        headers
    };
    let deep = format!(
        "{{\"description\":\"tracker.updated\",\"result\":{}1{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let duplicate = br#"{"id":"evt_dup","description":"tracker.updated","description":"refund.successful","result":{"object":"Tracker","tracking_code":"EZ1","status":"in_transit"}}"#;
    let huge = br#"{"id":"evt_huge","description":"tracker.updated","result":{"object":"Tracker","tracking_code":"EZ2","status":"in_transit","weight":1e400}}"#;
    let over_ingress = vec![b' '; 300 * 1024];
    let over_listener = vec![b' '; 10 * 1024 * 1024 + 1];
    let long_id = "p".repeat(5000);

    // (case, raw request, expected status, expected JSON code; None: refused by the HTTP parser
    // itself, which answers 400 without a body before any handler runs)
    let cases: Vec<(&str, Vec<u8>, u16, Option<&str>)> = vec![
        (
            "GET on the webhook path",
            request("GET", "/webhooks/easypost", &[], b""),
            405,
            Some("method_not_allowed"),
        ),
        (
            "DELETE on the webhook path",
            request("DELETE", "/webhooks/easypost", &[], b""),
            405,
            Some("method_not_allowed"),
        ),
        (
            "body over the listener's cap",
            request("POST", "/webhooks/easypost", std::slice::from_ref(&json), &over_listener),
            413,
            Some("payload_too_large"),
        ),
        (
            "body over the partner's cap",
            request(
                "POST",
                "/webhooks/easypost",
                &with_json(signed(&easypost, &over_ingress, "msg_big")),
                &over_ingress,
            ),
            413,
            Some("payload_too_large"),
        ),
        (
            "very long partner id",
            request("POST", &format!("/webhooks/{long_id}"), std::slice::from_ref(&json), b"{}"),
            404,
            Some("unknown_partner"),
        ),
        (
            "partner id that is not UTF-8",
            request("POST", "/webhooks/%FF%FEeasypost", std::slice::from_ref(&json), b"{}"),
            400,
            Some("invalid_partner_id"),
        ),
        (
            "duplicate JSON keys in a signed body",
            request(
                "POST",
                "/webhooks/easypost",
                &with_json(signed(&easypost, duplicate, "msg_dup")),
                duplicate,
            ),
            400,
            Some("malformed_payload"),
        ),
        (
            "nesting 5000 deep in a signed body",
            request(
                "POST",
                "/webhooks/easypost",
                &with_json(signed(&easypost, deep.as_bytes(), "msg_deep")),
                deep.as_bytes(),
            ),
            400,
            Some("malformed_payload"),
        ),
        (
            "a number beyond f64 in a signed body",
            request(
                "POST",
                "/webhooks/easypost",
                &with_json(signed(&easypost, huge, "msg_huge")),
                huge,
            ),
            400,
            Some("malformed_payload"),
        ),
        (
            "CR/LF smuggled into a header value",
            b"POST /webhooks/easypost HTTP/1.1\r\nHost: x\r\nX-Note: a\rb\r\nContent-Length: 2\r\n\r\n{}"
                .to_vec(),
            400,
            None,
        ),
        (
            "obsolete line folding",
            b"POST /webhooks/easypost HTTP/1.1\r\nHost: x\r\nX-Note: a\r\n folded\r\nContent-Length: 2\r\n\r\n{}"
                .to_vec(),
            400,
            None,
        ),
    ];

    let published_before = chain.bus.published().unwrap().len();
    let mut report = Vec::new();
    for (case, raw, status, code) in cases {
        let answer = tokio::task::spawn_blocking(move || exchange(addr, &raw))
            .await
            .unwrap();
        report.push(format!(
            "{case:40} {} {}",
            answer.status,
            answer.json_code().unwrap_or_else(|| "-".into())
        ));
        assert_eq!(
            answer.status, status,
            "{case}: {}{}",
            answer.head, answer.body
        );
        match code {
            Some(code) => {
                assert_eq!(
                    answer.json_code().as_deref(),
                    Some(code),
                    "{case}: {}",
                    answer.body
                );
                assert!(
                    answer.head.contains("content-type: application/json"),
                    "{case}"
                );
            }
            None => assert!(answer.body.is_empty(), "{case}: {}", answer.body),
        }
        if status == 405 {
            assert!(
                answer.head.contains("allow: post"),
                "{case}: {}",
                answer.head
            );
        }
        assert_eq!(
            chain.bus.published().unwrap().len(),
            published_before,
            "{case}: something was published"
        );
    }
    println!("hostile input (status, code):\n{}", report.join("\n"));

    // Healthy after all of it: a real webhook is accepted and published.
    let webhooks = || {
        chain
            .bus
            .published()
            .unwrap()
            .iter()
            .filter(|envelope| envelope.source == freightbridge::webhook::BUS_SOURCE)
            .count()
    };
    let webhooks_before = webhooks();
    let valid = IN_TRANSIT.to_vec();
    let headers = with_json(signed(&easypost, &valid, "msg_valid"));
    let answer = tokio::task::spawn_blocking(move || {
        exchange(
            addr,
            &request("POST", "/webhooks/easypost", &headers, &valid),
        )
    })
    .await
    .unwrap();
    assert_eq!(answer.status, 202, "{}", answer.body);
    // The webhook itself: the transform may already have published its canonical events too.
    assert_eq!(webhooks(), webhooks_before + 1);
}
