//! Published vectors, a table of refused deliveries, and sign/verify properties for every scheme.

use chrono::{DateTime, Duration, TimeZone, Utc};
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use serde_json::Value;

use base64::Engine as _;

use super::*;
use crate::config::PartnersFile;

const SW_LIBRARY_VECTOR: &str =
    include_str!("../../tests/fixtures/signature/standard-webhooks-vector-libraries.json");
const GITHUB_VECTOR: &str = include_str!("../../tests/fixtures/signature/github-hmac-vector.json");
const SHIPPO_DELIVERED: &[u8] = include_bytes!(
    "../../tests/fixtures/partners/shippo-track-updated-test-webhook-delivered.json"
);
const AFTERSHIP_IN_TRANSIT: &[u8] = include_bytes!(
    "../../tests/fixtures/partners/aftership-tracking-update-in-transit-docs-trimmed.json"
);
/// The EasyPost official fixture, trailing newline included as published.
const EASYPOST_EVENT_FILE: &[u8] =
    include_bytes!("../../tests/fixtures/signature/easypost-tracker-updated-in-transit.json");
/// `é` precomposed (U+00E9): NFKD turns it into `e` + U+0301, which changes the key.
const EASYPOST_SECRET: &str = "s\u{e9}cret";
const EASYPOST_EXPECTED: &str =
    "hmac-sha256-hex=38f3f53c103713df81616a0a186d77141957323ec21d5fe9363db93840f527db";

fn header_map<N: AsRef<str>, V: AsRef<str>>(pairs: &[(N, V)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_ref().as_bytes()).unwrap(),
            HeaderValue::from_str(value.as_ref()).unwrap(),
        );
    }
    map
}

/// Headers and query string of a signed request: `sign` gives query parameters as `?name`
/// pseudo-headers, which a sender puts in the URL.
fn request_parts(signed: &[(String, String)]) -> (HeaderMap, Option<String>) {
    let mut query = form_urlencoded::Serializer::new(String::new());
    let mut has_query = false;
    let mut headers = Vec::new();
    for (name, value) in signed {
        match query_parameter(name) {
            Some(parameter) => {
                query.append_pair(parameter, value);
                has_query = true;
            }
            None => headers.push((name.clone(), value.clone())),
        }
    }
    (header_map(&headers), has_query.then(|| query.finish()))
}

fn at(unix_seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(unix_seconds, 0).unwrap()
}

fn verifier(scheme: &Scheme, secrets: &[&str]) -> Verifier {
    let secrets: Vec<Secret> = secrets.iter().map(|s| Secret::new(*s)).collect();
    Verifier::new(scheme.clone(), &secrets, Duration::seconds(300)).unwrap()
}

fn github() -> Scheme {
    Scheme::HmacSha256 {
        header: "x-hub-signature-256".into(),
        prefix: "sha256=".into(),
        encoding: Encoding::Hex,
    }
}

fn generic_base64() -> Scheme {
    Scheme::HmacSha256 {
        header: "x-partner-signature".into(),
        prefix: "hmac=".into(),
        encoding: Encoding::Base64,
    }
}

fn easypost_body() -> &'static [u8] {
    EASYPOST_EVENT_FILE.strip_suffix(b"\n").unwrap()
}

#[test]
fn standard_webhooks_library_vector_verifies_at_its_own_time_only() {
    let vector: Value = serde_json::from_str(SW_LIBRARY_VECTOR).unwrap();
    let secret = vector["secret"].as_str().unwrap();
    let body = vector["body"].as_str().unwrap().as_bytes();
    let sent: Vec<(String, String)> = vector["headers"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let id = vector["headers"]["webhook-id"].as_str().unwrap();
    let ts: i64 = vector["headers"]["webhook-timestamp"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let verifier = verifier(&Scheme::StandardWebhooks, &[secret]);
    let headers = header_map(&sent);

    assert_eq!(verifier.verify(&headers, None, body, at(ts + 10)), Ok(()));
    assert_eq!(
        verifier.verify(&headers, None, body, at(ts + 301)),
        Err(SignatureError::TimestampTooOld)
    );
    let signed = sign(
        &Scheme::StandardWebhooks,
        &Secret::new(secret),
        body,
        at(ts),
        id,
    )
    .unwrap();
    assert_eq!(
        signed,
        vec![
            ("webhook-id".to_owned(), id.to_owned()),
            ("webhook-timestamp".to_owned(), ts.to_string()),
            (
                "webhook-signature".to_owned(),
                vector["expected_signature"].as_str().unwrap().to_owned()
            ),
        ]
    );
}

#[test]
fn standard_webhooks_rust_library_vector_signs_and_verifies() {
    // partners.md §1, from the spec repository's Rust library tests.
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let id = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    let ts = 1_649_367_553;
    let body = br#"{"email":"test@example.com","username":"test_user"}"#;
    let expected = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    let headers = header_map(&[
        ("webhook-id", id),
        ("webhook-timestamp", "1649367553"),
        ("webhook-signature", expected),
    ]);
    let verifier = verifier(&Scheme::StandardWebhooks, &[secret]);
    assert_eq!(verifier.verify(&headers, None, body, at(ts - 30)), Ok(()));
    let signed = sign(
        &Scheme::StandardWebhooks,
        &Secret::new(secret),
        body,
        at(ts),
        id,
    )
    .unwrap();
    assert_eq!(signed[2].1, expected);
}

#[test]
fn easypost_official_vector_verifies_with_the_nfkd_secret() {
    let body = easypost_body();
    assert_eq!(body.len(), 3550);
    let headers = header_map(&[("X-Hmac-Signature", EASYPOST_EXPECTED)]);
    let now = Utc::now();

    assert_eq!(
        verifier(&Scheme::EasyPost, &[EASYPOST_SECRET]).verify(&headers, None, body, now),
        Ok(())
    );
    // The decomposed spelling of the same secret is the same key after NFKD.
    assert_eq!(
        verifier(&Scheme::EasyPost, &["se\u{301}cret"]).verify(&headers, None, body, now),
        Ok(())
    );
    assert_eq!(
        sign(
            &Scheme::EasyPost,
            &Secret::new(EASYPOST_SECRET),
            body,
            now,
            "unused"
        )
        .unwrap(),
        vec![("x-hmac-signature".to_owned(), EASYPOST_EXPECTED.to_owned())]
    );
    // The fixture as stored (with its final newline) is a different body.
    assert_eq!(
        verifier(&Scheme::EasyPost, &[EASYPOST_SECRET]).verify(
            &headers,
            None,
            EASYPOST_EVENT_FILE,
            now
        ),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn easypost_official_vector_fails_when_the_secret_is_not_normalised() {
    // The same wire format, keyed with the secret's bytes as given.
    let unnormalised = Scheme::HmacSha256 {
        header: "x-hmac-signature".into(),
        prefix: "hmac-sha256-hex=".into(),
        encoding: Encoding::Hex,
    };
    let body = easypost_body();
    let headers = header_map(&[("X-Hmac-Signature", EASYPOST_EXPECTED)]);
    assert_eq!(
        verifier(&unnormalised, &[EASYPOST_SECRET]).verify(&headers, None, body, Utc::now()),
        Err(SignatureError::Mismatch)
    );
    let (_, value) = sign(
        &unnormalised,
        &Secret::new(EASYPOST_SECRET),
        body,
        Utc::now(),
        "unused",
    )
    .unwrap()
    .remove(0);
    // partners.md §2: without NFKD the MAC is 7f1669d6…219b.
    assert!(
        value.starts_with("hmac-sha256-hex=7f1669d6") && value.ends_with("219b"),
        "{value}"
    );
}

#[test]
fn github_vector_verifies_through_the_generic_scheme() {
    let vector: Value = serde_json::from_str(GITHUB_VECTOR).unwrap();
    let secret = vector["secret"].as_str().unwrap();
    let body = vector["body"].as_str().unwrap().as_bytes();
    let expected = vector["expected_header"]["X-Hub-Signature-256"]
        .as_str()
        .unwrap();
    // GitHub's docs spell the header in mixed case; lookup must not care.
    let headers = header_map(&[("X-Hub-Signature-256", expected)]);

    assert_eq!(
        verifier(&github(), &[secret]).verify(&headers, None, body, Utc::now()),
        Ok(())
    );
    assert_eq!(
        sign(&github(), &Secret::new(secret), body, Utc::now(), "unused").unwrap(),
        vec![("x-hub-signature-256".to_owned(), expected.to_owned())]
    );
}

#[test]
fn github_style_partner_entry_from_the_partners_file_verifies_the_vector() {
    let file = PartnersFile::parse(
        r#"
[[partner]]
id = "flexport"
format = "flexport"
[partner.signature]
scheme = "hmac-sha256"
secrets = ["It's a Secret to Everybody"]
header = "X-Hub-Signature-256"
prefix = "sha256="
"#,
    )
    .unwrap();
    let cfg = &file.get("flexport").unwrap().signature;
    let verifier =
        Verifier::from_config(cfg, &[Secret::new("It's a Secret to Everybody")]).unwrap();
    let headers = header_map(&[(
        "x-hub-signature-256",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    )]);
    assert_eq!(verifier.scheme(), &github());
    assert_eq!(
        verifier.verify(&headers, None, b"Hello, World!", Utc::now()),
        Ok(())
    );
}

#[test]
fn aftership_and_base64_generic_sign_what_they_verify() {
    let body = br#"{"event":"tracking_update","event_id":"1b9a6a4e-0c4b-4b43-9f53-2f5e8a1d9c11"}"#;
    let now = Utc::now();
    for (scheme, header, prefix) in [
        (Scheme::AfterShip, "aftership-hmac-sha256", ""),
        (generic_base64(), "x-partner-signature", "hmac="),
    ] {
        let signed = sign(&scheme, &Secret::new("as-secret"), body, now, "unused").unwrap();
        assert_eq!(signed.len(), 1);
        let (name, value) = &signed[0];
        assert_eq!(name, header);
        let encoded = value.strip_prefix(prefix).unwrap();
        assert_eq!(STANDARD.decode(encoded).unwrap().len(), 32, "{value}");
        let verifier = verifier(&scheme, &["as-secret"]);
        assert_eq!(
            verifier.verify(&header_map(&signed), None, body, now),
            Ok(())
        );
        assert_eq!(
            verifier.verify(&header_map(&signed), None, b"{}", now),
            Err(SignatureError::Mismatch)
        );
    }
}

#[test]
fn stripe_shaped_vector_verifies_as_shippo() {
    // partners.md §7: Shippo reportedly signs as Stripe does (secret used verbatim, `t.body`).
    // The vector is locally derived there, so it checks the shape, not Shippo itself.
    let body = br#"{"id":"evt_test","object":"event"}"#;
    let value = "t=1700000000,v1=8042376f6ca064adbe037642a718227dfd59047137eb49497a54c49eb0cfb724";
    let headers = header_map(&[("Shippo-Auth-Signature", value)]);
    let verifier = verifier(&Scheme::Shippo, &["whsec_test_secret"]);
    assert_eq!(
        verifier.verify(&headers, None, body, at(1_700_000_000 + 299)),
        Ok(())
    );
    assert_eq!(
        verifier.verify(&headers, None, body, at(1_700_000_000 + 301)),
        Err(SignatureError::TimestampTooOld)
    );
    let signed = sign(
        &Scheme::Shippo,
        &Secret::new("whsec_test_secret"),
        body,
        at(1_700_000_000),
        "unused",
    )
    .unwrap();
    assert_eq!(
        signed,
        vec![("shippo-auth-signature".to_owned(), value.to_owned())]
    );
}

#[test]
fn shippo_fixture_signed_elsewhere_verifies() {
    // Signed with Python's hmac over the fixture's exact bytes (final newline included).
    let value = "t=1583919000,v1=b7dc908ef124461a7d2e0efcd65ca87f409977fc38801ef9bbb7fd7a483038ac";
    let headers = header_map(&[("Shippo-Auth-Signature", value)]);
    let verifier = verifier(&Scheme::Shippo, &["shippo-local-secret"]);
    assert_eq!(
        verifier.verify(&headers, None, SHIPPO_DELIVERED, at(1_583_919_000)),
        Ok(())
    );
    let trimmed = SHIPPO_DELIVERED.strip_suffix(b"\n").unwrap();
    assert_eq!(
        verifier.verify(&headers, None, trimmed, at(1_583_919_000)),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn aftership_fixture_signed_elsewhere_verifies_with_the_documented_header() {
    // partners.md §4: `aftership-hmac-sha256` (docs spell it `Aftership-Hmac-Sha256`), base64 of
    // HMAC-SHA256 over the raw body, secret as UTF-8. Signed with Python's hmac.
    let value = "ckssKQJEX6AO58OQtXEoGdFs2BPui6qtnfxJrCQGRBY=";
    let headers = header_map(&[("Aftership-Hmac-Sha256", value)]);
    let verifier = verifier(&Scheme::AfterShip, &["aftership-local-secret"]);
    assert_eq!(
        verifier.verify(&headers, None, AFTERSHIP_IN_TRANSIT, Utc::now()),
        Ok(())
    );
    assert_eq!(
        sign(
            &Scheme::AfterShip,
            &Secret::new("aftership-local-secret"),
            AFTERSHIP_IN_TRANSIT,
            Utc::now(),
            "unused"
        )
        .unwrap(),
        vec![("aftership-hmac-sha256".to_owned(), value.to_owned())]
    );
}

#[test]
fn basic_rfc_7617_example_verifies() {
    // RFC 7617 §2: "Aladdin" / "open sesame".
    let headers = header_map(&[("Authorization", "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")]);
    let verifier = verifier(&Scheme::Basic, &["Aladdin:open sesame"]);
    assert_eq!(verifier.verify(&headers, None, b"", Utc::now()), Ok(()));
    assert_eq!(
        sign(
            &Scheme::Basic,
            &Secret::new("Aladdin:open sesame"),
            b"{}",
            Utc::now(),
            "unused"
        )
        .unwrap(),
        vec![(
            "authorization".to_owned(),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==".to_owned()
        )]
    );
}

#[test]
fn query_token_partner_from_the_partners_file_reads_its_configured_parameter() {
    let file = PartnersFile::parse(
        r#"
[[partner]]
id = "shippo"
format = "shippo"
[partner.signature]
scheme = "query-token"
secrets = ["tok-current", "tok-previous"]
query_parameter = "shippo_token"
"#,
    )
    .unwrap();
    let cfg = &file.get("shippo").unwrap().signature;
    let secrets = [Secret::new("tok-current"), Secret::new("tok-previous")];
    let verifier = Verifier::from_config(cfg, &secrets).unwrap();
    let none = HeaderMap::new();
    let cases = [
        (Some("shippo_token=tok-current"), Ok(())),
        (Some("shippo_token=tok-previous"), Ok(())),
        (
            Some("token=tok-current"),
            Err(SignatureError::MissingQueryParameter("shippo_token".into())),
        ),
        (
            Some("shippo_token=tok-other"),
            Err(SignatureError::Mismatch),
        ),
        (
            None,
            Err(SignatureError::MissingQueryParameter("shippo_token".into())),
        ),
    ];
    for (query, expected) in cases {
        assert_eq!(
            verifier.verify(&none, query, BODY, Utc::now()),
            expected,
            "{query:?}"
        );
    }
}

#[test]
fn signing_for_a_query_token_partner_gives_a_query_parameter_not_a_header() {
    let scheme = Scheme::QueryToken {
        parameter: "shippo_token".into(),
    };
    let signed = sign(&scheme, &Secret::new("a+b&c d"), BODY, Utc::now(), "unused").unwrap();
    assert_eq!(
        signed,
        vec![("?shippo_token".to_owned(), "a+b&c d".to_owned())]
    );
    assert_eq!(query_parameter(&signed[0].0), Some("shippo_token"));
    assert_eq!(query_parameter("x-hmac-signature"), None);
    assert!(HeaderName::from_bytes(signed[0].0.as_bytes()).is_err());
    // Encoded as a URL query, the token comes back intact.
    let (headers, query) = request_parts(&signed);
    assert!(headers.is_empty());
    assert_eq!(query.as_deref(), Some("shippo_token=a%2Bb%26c+d"));
    assert_eq!(
        verifier(&scheme, &["a+b&c d"]).verify(&headers, query.as_deref(), BODY, Utc::now()),
        Ok(())
    );
}

#[test]
fn credential_secrets_that_cannot_work_are_refused_when_signing_and_verifying() {
    let five_minutes = Duration::seconds(300);
    for (scheme, secret) in [
        (Scheme::Basic, "no-colon"),
        (Scheme::Basic, "user:"),
        (token(), ""),
    ] {
        let secrets = [Secret::new(secret)];
        assert!(
            matches!(
                Verifier::new(scheme.clone(), &secrets, five_minutes),
                Err(SignatureConfigError::InvalidSecret { position: 1, .. })
            ),
            "{} {secret:?}",
            scheme.name()
        );
        assert!(
            sign(&scheme, &secrets[0], BODY, Utc::now(), "unused").is_err(),
            "{} {secret:?}",
            scheme.name()
        );
    }
}

// ---- The table of refused (and a few accepted) deliveries --------------------------------

/// Valid base64 secrets, so every scheme can use them.
const CURRENT: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const PREVIOUS: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const UNKNOWN: &str = "whsec_dW5rbm93bi1rZXktdW5rbm93bi1rZXkhIQ==";
const MSG_ID: &str = "msg_2mVb3k8Yqk0cT1";
const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z
const BODY: &[u8] = br#"{"id":"evt_1","description":"tracker.updated","result":{"weight":136.0}}"#;

/// `user:password` secrets for the Basic scheme, in the same roles as the three above.
const BASIC_CURRENT: &str = "carrier:MfKQ9r8GKYqrTwjUPD8ILPZIo2";
const BASIC_PREVIOUS: &str = "carrier:C2FVsBQIhrscChlQIMV+b5sS";
const BASIC_UNKNOWN: &str = "carrier:dW5rbm93bi1rZXktdW5rbm93";

fn token() -> Scheme {
    Scheme::QueryToken {
        parameter: "token".into(),
    }
}

/// One delivery as the receiver sees it.
struct Delivery {
    headers: HeaderMap,
    /// The raw query string, without `?`.
    query: Option<String>,
    body: Vec<u8>,
    signed_at: i64,
}

impl Delivery {
    fn value(&self, name: &str) -> String {
        self.headers[name].to_str().unwrap().to_owned()
    }

    fn set(&mut self, name: &str, value: &str) {
        self.headers.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }

    fn add(&mut self, name: &str, value: &str) {
        self.headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }

    fn remove(&mut self, name: &str) {
        self.headers.remove(name);
    }

    /// Rebuilds the map from names spelt in upper case, as a REST API Gateway passes them on.
    fn shout_header_names(&mut self) {
        let pairs: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str().to_uppercase(), v.to_str().unwrap().to_owned()))
            .collect();
        self.headers = header_map(&pairs);
    }

    /// The Shippo `v1=` item another secret would give this delivery.
    fn shippo_v1_with(&self, secret: &str) -> String {
        let value = sign(
            &Scheme::Shippo,
            &Secret::new(secret),
            &self.body,
            at(self.signed_at),
            MSG_ID,
        )
        .unwrap()
        .remove(0)
        .1;
        value.split_once(',').unwrap().1.to_owned()
    }

    /// The Standard Webhooks signature another secret would give this delivery.
    fn standard_signature_with(&self, secret: &str) -> String {
        sign(
            &Scheme::StandardWebhooks,
            &Secret::new(secret),
            &self.body,
            at(self.signed_at),
            MSG_ID,
        )
        .unwrap()
        .remove(2)
        .1
    }
}

struct Case {
    name: &'static str,
    scheme: Scheme,
    /// What the receiver holds: current secret, then previous.
    receiver: &'static [&'static str],
    /// What the sender signed with.
    sender: &'static str,
    /// Seconds between signing and verifying; negative when the sender's clock runs ahead.
    age: i64,
    tamper: fn(&mut Delivery),
    expected: Result<(), SignatureError>,
}

fn untouched(_: &mut Delivery) {}

fn case(
    name: &'static str,
    scheme: Scheme,
    tamper: fn(&mut Delivery),
    expected: Result<(), SignatureError>,
) -> Case {
    Case {
        name,
        scheme,
        receiver: &[CURRENT],
        sender: CURRENT,
        age: 0,
        tamper,
        expected,
    }
}

fn missing(name: &str) -> Result<(), SignatureError> {
    Err(SignatureError::MissingHeader(name.to_owned()))
}

fn cases() -> Vec<Case> {
    use Scheme::{AfterShip, Basic, EasyPost, Shippo, StandardWebhooks as Sw};
    use SignatureError::{InvalidTimestamp, Malformed, Mismatch, TimestampTooNew, TimestampTooOld};
    let ok = Ok(());
    let rotated = |name: &'static str,
                   scheme: Scheme,
                   receiver: &'static [&'static str],
                   sender: &'static str,
                   expected: Result<(), SignatureError>| Case {
        receiver,
        sender,
        ..case(name, scheme, untouched, expected)
    };
    let aged = |name: &'static str, age: i64, expected: Result<(), SignatureError>| Case {
        age,
        ..case(name, Sw, untouched, expected)
    };
    let shippo_aged = |name: &'static str, age: i64, expected: Result<(), SignatureError>| Case {
        age,
        ..case(name, Shippo, untouched, expected)
    };
    let basic = |name: &'static str,
                 receiver: &'static [&'static str],
                 sender: &'static str,
                 tamper: fn(&mut Delivery),
                 expected: Result<(), SignatureError>| Case {
        receiver,
        sender,
        ..case(name, Basic, tamper, expected)
    };
    vec![
        // Standard Webhooks
        case("sw: untouched delivery verifies", Sw, untouched, ok.clone()),
        rotated("sw: wrong secret", Sw, &[UNKNOWN], CURRENT, Err(Mismatch)),
        case(
            "sw: one body byte changed",
            Sw,
            |d| d.body[3] ^= 0x01,
            Err(Mismatch),
        ),
        case(
            "sw: body with a trailing newline added",
            Sw,
            |d| d.body.push(b'\n'),
            Err(Mismatch),
        ),
        case(
            "sw: signature truncated",
            Sw,
            |d| {
                let sig = d.value("webhook-signature");
                d.set("webhook-signature", &sig[..sig.len() - 4]);
            },
            Err(Malformed),
        ),
        case(
            "sw: signature cut to its version",
            Sw,
            |d| d.set("webhook-signature", "v1,"),
            Err(Malformed),
        ),
        case(
            "sw: garbled base64",
            Sw,
            |d| {
                d.set(
                    "webhook-signature",
                    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVl*IOLJ1OE=",
                )
            },
            Err(Malformed),
        ),
        case(
            "sw: missing webhook-id",
            Sw,
            |d| d.remove("webhook-id"),
            missing("webhook-id"),
        ),
        case(
            "sw: missing webhook-timestamp",
            Sw,
            |d| d.remove("webhook-timestamp"),
            missing("webhook-timestamp"),
        ),
        case(
            "sw: missing webhook-signature",
            Sw,
            |d| d.remove("webhook-signature"),
            missing("webhook-signature"),
        ),
        aged("sw: timestamp 6 minutes old", 360, Err(TimestampTooOld)),
        aged("sw: timestamp 6 minutes ahead", -360, Err(TimestampTooNew)),
        aged("sw: timestamp exactly 5 minutes old", 300, ok.clone()),
        aged("sw: timestamp exactly 5 minutes ahead", -300, ok.clone()),
        aged(
            "sw: replayed a year later",
            365 * 86_400,
            Err(TimestampTooOld),
        ),
        case(
            "sw: non-numeric timestamp",
            Sw,
            |d| d.set("webhook-timestamp", "17672256O0"),
            Err(InvalidTimestamp),
        ),
        case(
            "sw: timestamp with a sign",
            Sw,
            |d| d.set("webhook-timestamp", "+1767225600"),
            Err(InvalidTimestamp),
        ),
        case(
            "sw: negative timestamp",
            Sw,
            |d| d.set("webhook-timestamp", "-1"),
            Err(InvalidTimestamp),
        ),
        case(
            "sw: fractional timestamp",
            Sw,
            |d| d.set("webhook-timestamp", "1767225600.5"),
            Err(InvalidTimestamp),
        ),
        case(
            "sw: empty timestamp",
            Sw,
            |d| d.set("webhook-timestamp", ""),
            Err(InvalidTimestamp),
        ),
        case(
            "sw: timestamp beyond i64",
            Sw,
            |d| d.set("webhook-timestamp", "99999999999999999999"),
            Err(InvalidTimestamp),
        ),
        case(
            "sw: timestamp moved one second within tolerance",
            Sw,
            |d| d.set("webhook-timestamp", &(NOW + 1).to_string()),
            Err(Mismatch),
        ),
        case(
            "sw: timestamp with a leading zero",
            Sw,
            |d| d.set("webhook-timestamp", &format!("0{NOW}")),
            Err(Mismatch),
        ),
        case(
            "sw: webhook-id changed",
            Sw,
            |d| d.set("webhook-id", "msg_other"),
            Err(Mismatch),
        ),
        case(
            "sw: webhook-id containing a dot",
            Sw,
            |d| d.set("webhook-id", "msg.1767225600"),
            Err(Malformed),
        ),
        case(
            "sw: two webhook-timestamp headers",
            Sw,
            |d| d.add("webhook-timestamp", &NOW.to_string()),
            Err(Malformed),
        ),
        case(
            "sw: only a v2 signature",
            Sw,
            |d| {
                let sig = d.value("webhook-signature").replacen("v1,", "v2,", 1);
                d.set("webhook-signature", &sig);
            },
            Err(Malformed),
        ),
        case(
            "sw: unknown version listed before a valid v1",
            Sw,
            |d| {
                let sig = d.value("webhook-signature");
                d.set("webhook-signature", &format!("v1a,c2lnbmF0dXJl {sig}"));
            },
            ok.clone(),
        ),
        case(
            "sw: signature without a version",
            Sw,
            |d| {
                let sig = d.value("webhook-signature").replacen("v1,", "", 1);
                d.set("webhook-signature", &sig);
            },
            Err(Malformed),
        ),
        case(
            "sw: empty signature header",
            Sw,
            |d| d.set("webhook-signature", ""),
            Err(Malformed),
        ),
        case(
            "sw: signature header that is not ASCII",
            Sw,
            |d| {
                d.headers.insert(
                    "webhook-signature",
                    HeaderValue::from_bytes(b"v1,\xffabc").unwrap(),
                );
            },
            Err(Malformed),
        ),
        case(
            "sw: header names in upper case",
            Sw,
            Delivery::shout_header_names,
            ok.clone(),
        ),
        case(
            "sw: only the second of two signatures matches",
            Sw,
            |d| {
                let stale = d.standard_signature_with(UNKNOWN);
                let sig = d.value("webhook-signature");
                d.set("webhook-signature", &format!("{stale} {sig}"));
            },
            ok.clone(),
        ),
        case(
            "sw: extra spaces around the signature list",
            Sw,
            |d| {
                let sig = d.value("webhook-signature");
                d.set("webhook-signature", &format!("  v1,AAAA  {sig} "));
            },
            ok.clone(),
        ),
        case(
            "sw: signatures in two header lines, the second matches",
            Sw,
            |d| {
                let sig = d.value("webhook-signature");
                let stale = d.standard_signature_with(UNKNOWN);
                d.set("webhook-signature", &stale);
                d.add("webhook-signature", &sig);
            },
            ok.clone(),
        ),
        case(
            "sw: several signatures, none matches",
            Sw,
            |d| {
                let a = d.standard_signature_with(UNKNOWN);
                let b = d.standard_signature_with(PREVIOUS);
                d.set("webhook-signature", &format!("{a} {b}"));
            },
            Err(Mismatch),
        ),
        rotated(
            "sw: signed with the previous secret",
            Sw,
            &[CURRENT, PREVIOUS],
            PREVIOUS,
            ok.clone(),
        ),
        rotated(
            "sw: signed with the current secret during rotation",
            Sw,
            &[CURRENT, PREVIOUS],
            CURRENT,
            ok.clone(),
        ),
        rotated(
            "sw: signed with a third, unknown secret",
            Sw,
            &[CURRENT, PREVIOUS],
            UNKNOWN,
            Err(Mismatch),
        ),
        // EasyPost
        case(
            "easypost: untouched delivery verifies",
            EasyPost,
            untouched,
            ok.clone(),
        ),
        rotated(
            "easypost: wrong secret",
            EasyPost,
            &[UNKNOWN],
            CURRENT,
            Err(Mismatch),
        ),
        case(
            "easypost: one body byte changed",
            EasyPost,
            |d| d.body[0] ^= 0x20,
            Err(Mismatch),
        ),
        case(
            "easypost: signature truncated",
            EasyPost,
            |d| {
                let sig = d.value("x-hmac-signature");
                d.set("x-hmac-signature", &sig[..sig.len() - 2]);
            },
            Err(Malformed),
        ),
        case(
            "easypost: garbled hex",
            EasyPost,
            |d| {
                let sig = d.value("x-hmac-signature").replacen('a', "g", 1);
                d.set("x-hmac-signature", &sig);
            },
            Err(Malformed),
        ),
        case(
            "easypost: missing header",
            EasyPost,
            |d| d.remove("x-hmac-signature"),
            missing("x-hmac-signature"),
        ),
        case(
            "easypost: hmac-sha256-hex= prefix missing",
            EasyPost,
            |d| {
                let sig = d
                    .value("x-hmac-signature")
                    .replacen("hmac-sha256-hex=", "", 1);
                d.set("x-hmac-signature", &sig);
            },
            Err(Malformed),
        ),
        case(
            "easypost: another algorithm's prefix",
            EasyPost,
            |d| {
                let sig =
                    d.value("x-hmac-signature")
                        .replacen("hmac-sha256-hex=", "hmac-sha512-hex=", 1);
                d.set("x-hmac-signature", &sig);
            },
            Err(Malformed),
        ),
        case(
            "easypost: empty signature header",
            EasyPost,
            |d| d.set("x-hmac-signature", ""),
            Err(Malformed),
        ),
        case(
            "easypost: hex in upper case is not what EasyPost sends",
            EasyPost,
            |d| {
                let sig = d.value("x-hmac-signature");
                let (prefix, hex) = sig.split_at("hmac-sha256-hex=".len());
                d.set(
                    "x-hmac-signature",
                    &format!("{prefix}{}", hex.to_uppercase()),
                );
            },
            Err(Mismatch),
        ),
        case(
            "easypost: two signature headers",
            EasyPost,
            |d| {
                let sig = d.value("x-hmac-signature");
                d.add("x-hmac-signature", &sig);
            },
            Err(Malformed),
        ),
        case(
            "easypost: header names in upper case",
            EasyPost,
            Delivery::shout_header_names,
            ok.clone(),
        ),
        Case {
            age: 3 * 365 * 86_400,
            ..case(
                "easypost: no timestamp is signed, so age does not matter",
                EasyPost,
                untouched,
                ok.clone(),
            )
        },
        rotated(
            "easypost: signed with the previous secret",
            EasyPost,
            &[CURRENT, PREVIOUS],
            PREVIOUS,
            ok.clone(),
        ),
        rotated(
            "easypost: signed with a third, unknown secret",
            EasyPost,
            &[CURRENT, PREVIOUS],
            UNKNOWN,
            Err(Mismatch),
        ),
        // AfterShip
        case(
            "aftership: untouched delivery verifies",
            AfterShip,
            untouched,
            ok.clone(),
        ),
        rotated(
            "aftership: wrong secret",
            AfterShip,
            &[UNKNOWN],
            CURRENT,
            Err(Mismatch),
        ),
        case(
            "aftership: one body byte changed",
            AfterShip,
            |d| {
                let last = d.body.len() - 1;
                d.body[last] ^= 0x01;
            },
            Err(Mismatch),
        ),
        case(
            "aftership: signature truncated",
            AfterShip,
            |d| {
                let sig = d.value("aftership-hmac-sha256");
                d.set("aftership-hmac-sha256", &sig[..40]);
            },
            Err(Malformed),
        ),
        case(
            "aftership: garbled base64",
            AfterShip,
            |d| {
                let sig = d.value("aftership-hmac-sha256");
                d.set("aftership-hmac-sha256", &format!("%{}", &sig[1..]));
            },
            Err(Malformed),
        ),
        case(
            "aftership: missing header",
            AfterShip,
            |d| d.remove("aftership-hmac-sha256"),
            missing("aftership-hmac-sha256"),
        ),
        case(
            "aftership: header names as the docs spell them",
            AfterShip,
            |d| {
                let sig = d.value("aftership-hmac-sha256");
                d.headers = header_map(&[("Aftership-Hmac-Sha256", sig)]);
            },
            ok.clone(),
        ),
        rotated(
            "aftership: signed with the previous secret",
            AfterShip,
            &[CURRENT, PREVIOUS],
            PREVIOUS,
            ok.clone(),
        ),
        rotated(
            "aftership: signed with a third, unknown secret",
            AfterShip,
            &[CURRENT, PREVIOUS],
            UNKNOWN,
            Err(Mismatch),
        ),
        // Generic HMAC-SHA256, GitHub style (hex) and base64 with a prefix
        case(
            "github: untouched delivery verifies",
            github(),
            untouched,
            ok.clone(),
        ),
        case(
            "github: one body byte changed",
            github(),
            |d| d.body[1] ^= 0x01,
            Err(Mismatch),
        ),
        case(
            "github: legacy sha1= prefix",
            github(),
            |d| {
                let sig = d
                    .value("x-hub-signature-256")
                    .replacen("sha256=", "sha1=", 1);
                d.set("x-hub-signature-256", &sig);
            },
            Err(Malformed),
        ),
        case(
            "github: only the legacy x-hub-signature header",
            github(),
            |d| {
                let sig = d.value("x-hub-signature-256");
                d.remove("x-hub-signature-256");
                d.set("x-hub-signature", &sig);
            },
            missing("x-hub-signature-256"),
        ),
        case(
            "github: header names in upper case",
            github(),
            Delivery::shout_header_names,
            ok.clone(),
        ),
        rotated(
            "github: signed with the previous secret",
            github(),
            &[CURRENT, PREVIOUS],
            PREVIOUS,
            ok.clone(),
        ),
        case(
            "base64: untouched delivery verifies",
            generic_base64(),
            untouched,
            ok.clone(),
        ),
        case(
            "base64: one body byte changed",
            generic_base64(),
            |d| d.body[2] ^= 0x01,
            Err(Mismatch),
        ),
        case(
            "base64: prefix missing",
            generic_base64(),
            |d| {
                let sig = d.value("x-partner-signature").replacen("hmac=", "", 1);
                d.set("x-partner-signature", &sig);
            },
            Err(Malformed),
        ),
        case(
            "base64: padding stripped",
            generic_base64(),
            |d| {
                let sig = d.value("x-partner-signature");
                d.set("x-partner-signature", sig.trim_end_matches('='));
            },
            Err(Malformed),
        ),
        rotated(
            "base64: wrong secret",
            generic_base64(),
            &[UNKNOWN],
            CURRENT,
            Err(Mismatch),
        ),
        // Shippo HMAC (Stripe shape: `t=<unix>,v1=<hex>` over `t.body`)
        case(
            "shippo: untouched delivery verifies",
            Shippo,
            untouched,
            ok.clone(),
        ),
        rotated(
            "shippo: wrong secret",
            Shippo,
            &[UNKNOWN],
            CURRENT,
            Err(Mismatch),
        ),
        case(
            "shippo: one body byte changed",
            Shippo,
            |d| d.body[5] ^= 0x04,
            Err(Mismatch),
        ),
        shippo_aged("shippo: t 6 minutes old", 360, Err(TimestampTooOld)),
        shippo_aged("shippo: t 6 minutes ahead", -360, Err(TimestampTooNew)),
        shippo_aged("shippo: t exactly 5 minutes old", 300, ok.clone()),
        shippo_aged("shippo: replayed a day later", 86_400, Err(TimestampTooOld)),
        case(
            "shippo: t moved one second within tolerance",
            Shippo,
            |d| {
                let sig = d.value("shippo-auth-signature").replacen(
                    &format!("t={NOW}"),
                    &format!("t={}", NOW + 1),
                    1,
                );
                d.set("shippo-auth-signature", &sig);
            },
            Err(Mismatch),
        ),
        case(
            "shippo: missing header",
            Shippo,
            |d| d.remove("shippo-auth-signature"),
            missing("shippo-auth-signature"),
        ),
        case(
            "shippo: header names as Shippo spells them",
            Shippo,
            |d| {
                let sig = d.value("shippo-auth-signature");
                d.headers = header_map(&[("Shippo-Auth-Signature", sig)]);
            },
            ok.clone(),
        ),
        case(
            "shippo: the conflicting Shippo-Signature header name is not read",
            Shippo,
            |d| {
                let sig = d.value("shippo-auth-signature");
                d.headers = header_map(&[("Shippo-Signature", sig)]);
            },
            missing("shippo-auth-signature"),
        ),
        case(
            "shippo: no t",
            Shippo,
            |d| {
                let v1 = d.shippo_v1_with(CURRENT);
                d.set("shippo-auth-signature", &v1);
            },
            Err(Malformed),
        ),
        case(
            "shippo: no v1",
            Shippo,
            |d| d.set("shippo-auth-signature", &format!("t={NOW}")),
            Err(Malformed),
        ),
        case(
            "shippo: t twice",
            Shippo,
            |d| {
                let sig = d.value("shippo-auth-signature");
                d.set("shippo-auth-signature", &format!("t={NOW},{sig}"));
            },
            Err(Malformed),
        ),
        case(
            "shippo: t not Unix seconds",
            Shippo,
            |d| {
                let v1 = d.shippo_v1_with(CURRENT);
                d.set("shippo-auth-signature", &format!("t=2026-01-01,{v1}"));
            },
            Err(InvalidTimestamp),
        ),
        case(
            "shippo: v1 mismatch (all zeros)",
            Shippo,
            |d| {
                let zeros = "0".repeat(64);
                d.set("shippo-auth-signature", &format!("t={NOW},v1={zeros}"));
            },
            Err(Mismatch),
        ),
        case(
            "shippo: v1 truncated",
            Shippo,
            |d| {
                let sig = d.value("shippo-auth-signature");
                d.set("shippo-auth-signature", &sig[..sig.len() - 2]);
            },
            Err(Malformed),
        ),
        case(
            "shippo: v1 not hex",
            Shippo,
            |d| {
                let sig = d.value("shippo-auth-signature");
                let (head, _) = sig.split_at(sig.len() - 1);
                d.set("shippo-auth-signature", &format!("{head}z"));
            },
            Err(Malformed),
        ),
        case(
            "shippo: item without '='",
            Shippo,
            |d| {
                let sig = d.value("shippo-auth-signature");
                d.set("shippo-auth-signature", &format!("{sig},v1"));
            },
            Err(Malformed),
        ),
        case(
            "shippo: a stale v1 listed before the valid one",
            Shippo,
            |d| {
                let stale = d.shippo_v1_with(UNKNOWN);
                let sig = d.value("shippo-auth-signature");
                let (t, v1) = sig.split_once(',').unwrap();
                d.set("shippo-auth-signature", &format!("{t},{stale},{v1}"));
            },
            ok.clone(),
        ),
        case(
            "shippo: v0 and unknown keys are ignored",
            Shippo,
            |d| {
                let sig = d.value("shippo-auth-signature");
                d.set("shippo-auth-signature", &format!("{sig},v0=abc,x=1"));
            },
            ok.clone(),
        ),
        case(
            "shippo: spaces after the commas",
            Shippo,
            |d| {
                let sig = d.value("shippo-auth-signature").replace(',', ", ");
                d.set("shippo-auth-signature", &sig);
            },
            ok.clone(),
        ),
        case(
            "shippo: several v1, none matches",
            Shippo,
            |d| {
                let a = d.shippo_v1_with(UNKNOWN);
                let b = d.shippo_v1_with(PREVIOUS);
                d.set("shippo-auth-signature", &format!("t={NOW},{a},{b}"));
            },
            Err(Mismatch),
        ),
        case(
            "shippo: two signature headers",
            Shippo,
            |d| {
                let sig = d.value("shippo-auth-signature");
                d.add("shippo-auth-signature", &sig);
            },
            Err(Malformed),
        ),
        rotated(
            "shippo: signed with the previous secret",
            Shippo,
            &[CURRENT, PREVIOUS],
            PREVIOUS,
            ok.clone(),
        ),
        rotated(
            "shippo: signed with a third, unknown secret",
            Shippo,
            &[CURRENT, PREVIOUS],
            UNKNOWN,
            Err(Mismatch),
        ),
        // Query token (Shippo's default): nothing about the body is signed
        case(
            "token: untouched delivery verifies",
            token(),
            untouched,
            ok.clone(),
        ),
        rotated(
            "token: wrong token",
            token(),
            &[UNKNOWN],
            CURRENT,
            Err(Mismatch),
        ),
        case(
            "token: no query string",
            token(),
            |d| d.query = None,
            Err(SignatureError::MissingQueryParameter("token".into())),
        ),
        case(
            "token: query without the token parameter",
            token(),
            |d| d.query = Some("carrier=shippo&test=true".into()),
            Err(SignatureError::MissingQueryParameter("token".into())),
        ),
        case(
            "token: parameter name in another case",
            token(),
            |d| d.query = Some(format!("TOKEN={CURRENT}")),
            Err(SignatureError::MissingQueryParameter("token".into())),
        ),
        case(
            "token: sent as a header instead",
            token(),
            |d| {
                d.set("token", CURRENT);
                d.query = None;
            },
            Err(SignatureError::MissingQueryParameter("token".into())),
        ),
        case(
            "token: empty value",
            token(),
            |d| d.query = Some("token=".into()),
            Err(Mismatch),
        ),
        case(
            "token: a prefix of the token",
            token(),
            |d| d.query = Some(format!("token={}", &CURRENT[..CURRENT.len() - 1])),
            Err(Mismatch),
        ),
        case(
            "token: the token with a character added",
            token(),
            |d| d.query = Some(format!("token={CURRENT}x")),
            Err(Mismatch),
        ),
        case(
            "token: given twice",
            token(),
            |d| d.query = Some(format!("token={CURRENT}&token={CURRENT}")),
            Err(Malformed),
        ),
        case(
            "token: among other parameters",
            token(),
            |d| d.query = Some(format!("a=1&token={CURRENT}&b=")),
            ok.clone(),
        ),
        case(
            "token: every character percent-encoded",
            token(),
            |d| {
                let encoded: String = CURRENT.bytes().map(|b| format!("%{b:02X}")).collect();
                d.query = Some(format!("token={encoded}"));
            },
            ok.clone(),
        ),
        Case {
            receiver: &[PREVIOUS],
            sender: PREVIOUS,
            ..case(
                "token: an unencoded '+' in the token reads as a space",
                token(),
                // As a sender that pastes the token into the URL without encoding it would.
                |d| d.query = Some(format!("token={PREVIOUS}")),
                Err(Mismatch),
            )
        },
        case(
            "token: the body is not covered, so a changed body still passes",
            token(),
            |d| d.body.push(b' '),
            ok.clone(),
        ),
        rotated(
            "token: the previous token during rotation",
            token(),
            &[CURRENT, PREVIOUS],
            PREVIOUS,
            ok.clone(),
        ),
        rotated(
            "token: a third, unknown token",
            token(),
            &[CURRENT, PREVIOUS],
            UNKNOWN,
            Err(Mismatch),
        ),
        // HTTP Basic
        basic(
            "basic: untouched delivery verifies",
            &[BASIC_CURRENT],
            BASIC_CURRENT,
            untouched,
            ok.clone(),
        ),
        basic(
            "basic: wrong password",
            &[BASIC_CURRENT],
            "carrier:not-the-password",
            untouched,
            Err(Mismatch),
        ),
        basic(
            "basic: wrong user",
            &[BASIC_CURRENT],
            "shipper:MfKQ9r8GKYqrTwjUPD8ILPZIo2",
            untouched,
            Err(Mismatch),
        ),
        basic(
            "basic: the whole secret as the password",
            &[BASIC_CURRENT],
            ":carrier:MfKQ9r8GKYqrTwjUPD8ILPZIo2",
            untouched,
            Err(Mismatch),
        ),
        basic(
            "basic: missing authorization",
            &[BASIC_CURRENT],
            BASIC_CURRENT,
            |d| d.remove("authorization"),
            missing("authorization"),
        ),
        basic(
            "basic: a bearer token instead",
            &[BASIC_CURRENT],
            BASIC_CURRENT,
            |d| {
                let value = d.value("authorization").replacen("Basic", "Bearer", 1);
                d.set("authorization", &value);
            },
            Err(Malformed),
        ),
        basic(
            "basic: scheme name in lower case",
            &[BASIC_CURRENT],
            BASIC_CURRENT,
            |d| {
                let value = d.value("authorization").replacen("Basic", "basic", 1);
                d.set("authorization", &value);
            },
            ok.clone(),
        ),
        basic(
            "basic: no credentials after the scheme",
            &[BASIC_CURRENT],
            BASIC_CURRENT,
            |d| d.set("authorization", "Basic"),
            Err(Malformed),
        ),
        basic(
            "basic: garbled base64",
            &[BASIC_CURRENT],
            BASIC_CURRENT,
            |d| d.set("authorization", "Basic Y2Fy*mllcg=="),
            Err(Malformed),
        ),
        basic(
            "basic: credentials without a colon",
            &[BASIC_CURRENT],
            BASIC_CURRENT,
            |d| {
                let encoded = STANDARD.encode("carrierMfKQ9r8GKYqrTwjUPD8ILPZIo2");
                d.set("authorization", &format!("Basic {encoded}"));
            },
            Err(Malformed),
        ),
        basic(
            "basic: an oversized header",
            &[BASIC_CURRENT],
            BASIC_CURRENT,
            |d| d.set("authorization", &format!("Basic {}", "QUFB".repeat(400))),
            Err(Malformed),
        ),
        basic(
            "basic: two authorization headers",
            &[BASIC_CURRENT],
            BASIC_CURRENT,
            |d| {
                let value = d.value("authorization");
                d.add("authorization", &value);
            },
            Err(Malformed),
        ),
        basic(
            "basic: header names in upper case",
            &[BASIC_CURRENT],
            BASIC_CURRENT,
            Delivery::shout_header_names,
            ok.clone(),
        ),
        basic(
            "basic: the body is not covered, so a changed body still passes",
            &[BASIC_CURRENT],
            BASIC_CURRENT,
            |d| d.body.clear(),
            ok.clone(),
        ),
        basic(
            "basic: the previous credentials during rotation",
            &[BASIC_CURRENT, BASIC_PREVIOUS],
            BASIC_PREVIOUS,
            untouched,
            ok.clone(),
        ),
        basic(
            "basic: third, unknown credentials",
            &[BASIC_CURRENT, BASIC_PREVIOUS],
            BASIC_UNKNOWN,
            untouched,
            Err(Mismatch),
        ),
    ]
}

#[test]
fn delivery_table_gives_the_expected_verdict_for_every_case() {
    let mut wrong = Vec::new();
    for case in cases() {
        let signed_at = NOW - case.age;
        let signed = sign(
            &case.scheme,
            &Secret::new(case.sender),
            BODY,
            at(signed_at),
            MSG_ID,
        )
        .unwrap();
        let (headers, query) = request_parts(&signed);
        let mut delivery = Delivery {
            headers,
            query,
            body: BODY.to_vec(),
            signed_at,
        };
        (case.tamper)(&mut delivery);
        let verdict = verifier(&case.scheme, case.receiver).verify(
            &delivery.headers,
            delivery.query.as_deref(),
            &delivery.body,
            at(NOW),
        );
        if verdict != case.expected {
            wrong.push(format!(
                "{}: got {verdict:?}, expected {:?}",
                case.name, case.expected
            ));
        }
        if let Err(error) = verdict {
            // The signature the receiver would have expected, per secret it holds.
            let expected_signatures: Vec<String> = case
                .receiver
                .iter()
                .map(|secret| {
                    let mut headers = sign(
                        &case.scheme,
                        &Secret::new(*secret),
                        &delivery.body,
                        at(signed_at),
                        MSG_ID,
                    )
                    .unwrap();
                    headers.pop().unwrap().1
                })
                .collect();
            for shown in [error.to_string(), format!("{error:?}")] {
                let leaks = [
                    CURRENT,
                    PREVIOUS,
                    UNKNOWN,
                    BASIC_CURRENT,
                    BASIC_PREVIOUS,
                    BASIC_UNKNOWN,
                ]
                .iter()
                .map(|s| s.to_string())
                // The MAC itself, without its `v1,` or `sha256=` wrapping.
                .chain(expected_signatures.iter().flat_map(|v| {
                    v.split([',', '='])
                        .filter(|part| part.len() >= 16)
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                }))
                .any(|material| shown.contains(&material));
                if leaks {
                    wrong.push(format!("{}: {shown:?} shows secret material", case.name));
                }
            }
            assert_eq!(error.class(), FailureClass::Permanent, "{}", case.name);
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[test]
fn error_codes_follow_the_ingress_contract() {
    let cases = [
        (
            SignatureError::MissingHeader("webhook-id".into()),
            "signature_missing",
        ),
        (
            SignatureError::MissingQueryParameter("token".into()),
            "signature_missing",
        ),
        (SignatureError::Malformed, "signature_malformed"),
        (SignatureError::InvalidTimestamp, "timestamp_malformed"),
        (SignatureError::Mismatch, "signature_mismatch"),
        (
            SignatureError::TimestampTooOld,
            "timestamp_out_of_tolerance",
        ),
        (
            SignatureError::TimestampTooNew,
            "timestamp_out_of_tolerance",
        ),
    ];
    for (error, code) in cases {
        assert_eq!(error.code(), code, "{error:?}");
        assert_eq!(error.class(), FailureClass::Permanent, "{error:?}");
    }
    let config = SignatureConfigError::SecretCount(3);
    assert_eq!(
        (config.code(), config.class()),
        ("signature_config", FailureClass::Permanent)
    );
}

#[test]
fn verifier_holds_one_or_two_secrets_and_a_usable_tolerance() {
    let one = [Secret::new(CURRENT)];
    let three = [
        Secret::new(CURRENT),
        Secret::new(PREVIOUS),
        Secret::new(UNKNOWN),
    ];
    let five_minutes = Duration::seconds(300);
    assert_eq!(
        Verifier::new(Scheme::EasyPost, &[], five_minutes).unwrap_err(),
        SignatureConfigError::SecretCount(0)
    );
    assert_eq!(
        Verifier::new(Scheme::EasyPost, &three, five_minutes).unwrap_err(),
        SignatureConfigError::SecretCount(3)
    );
    for tolerance in [
        Duration::zero(),
        Duration::seconds(-5),
        Duration::milliseconds(500),
    ] {
        assert_eq!(
            Verifier::new(Scheme::StandardWebhooks, &one, tolerance).unwrap_err(),
            SignatureConfigError::InvalidTolerance
        );
        // Untimestamped schemes never read the tolerance.
        assert!(Verifier::new(Scheme::EasyPost, &one, tolerance).is_ok());
    }
    let empty_previous = [Secret::new(CURRENT), Secret::new("")];
    assert_eq!(
        Verifier::new(Scheme::AfterShip, &empty_previous, five_minutes).unwrap_err(),
        SignatureConfigError::InvalidSecret {
            position: 2,
            reason: "is empty"
        }
    );
    let bad_header = Scheme::HmacSha256 {
        header: "x sig".into(),
        prefix: String::new(),
        encoding: Encoding::Hex,
    };
    assert!(matches!(
        Verifier::new(bad_header, &one, five_minutes),
        Err(SignatureConfigError::InvalidOption {
            option: "header",
            ..
        })
    ));
}

#[test]
fn verifier_debug_output_shows_no_key_material() {
    let verifier = verifier(&Scheme::AfterShip, &["hunter2-hunter2", "previous-secret"]);
    let shown = format!("{verifier:?}");
    assert!(
        shown.contains("AfterShip") && shown.contains("keys: 2"),
        "{shown}"
    );
    assert!(!shown.contains("hunter2") && !shown.contains("previous-secret"));
}

#[test]
fn verifiers_can_be_shared_between_request_tasks() {
    fn shareable<T: Send + Sync + Clone + 'static>(_: &T) {}
    shareable(&verifier(&Scheme::StandardWebhooks, &[CURRENT]));
}

#[test]
fn signing_refuses_message_ids_that_would_make_the_signed_content_ambiguous() {
    for id in ["", "msg.1", "msg 1", "msg\u{e9}"] {
        assert_eq!(
            sign(
                &Scheme::StandardWebhooks,
                &Secret::new(CURRENT),
                BODY,
                at(NOW),
                id
            )
            .unwrap_err(),
            SignatureConfigError::InvalidMessageId,
            "{id:?}"
        );
    }
}

// ---- Properties ---------------------------------------------------------------------------

/// Schemes whose signature covers the body.
fn any_body_scheme() -> impl Strategy<Value = Scheme> {
    prop_oneof![
        Just(Scheme::StandardWebhooks),
        Just(Scheme::EasyPost),
        Just(Scheme::AfterShip),
        Just(Scheme::Shippo),
        Just(github()),
        Just(generic_base64()),
    ]
}

/// Every scheme, credential schemes included.
fn any_scheme() -> impl Strategy<Value = Scheme> {
    prop_oneof![
        4 => any_body_scheme(),
        1 => Just(token()),
        1 => Just(Scheme::Basic),
    ]
}

/// A secret in the form the scheme expects: `whsec_` + base64 key, `user:password`, or any
/// text (query tokens included: they must survive URL encoding whatever they hold).
fn any_secret(scheme: &Scheme) -> BoxedStrategy<String> {
    match scheme {
        Scheme::StandardWebhooks => proptest::collection::vec(any::<u8>(), 24..=64)
            .prop_map(|key| format!("whsec_{}", STANDARD.encode(key)))
            .boxed(),
        Scheme::Basic => "[a-zA-Z0-9_.@-]{0,12}:\\PC{1,30}".boxed(),
        _ => "\\PC{1,40}".boxed(),
    }
}

fn signed_delivery(
    schemes: impl Strategy<Value = Scheme>,
) -> impl Strategy<Value = (Scheme, String, Vec<u8>, i64)> {
    schemes.prop_flat_map(|scheme| {
        let secret = any_secret(&scheme);
        (
            Just(scheme),
            secret,
            proptest::collection::vec(any::<u8>(), 0..2048),
            -300i64..=300,
        )
    })
}

proptest! {
    #[test]
    fn every_scheme_verifies_what_it_signs(
        (scheme, secret, body, clock_skew) in signed_delivery(any_scheme())
    ) {
        let signed = sign(&scheme, &Secret::new(secret.clone()), &body, at(NOW), MSG_ID).unwrap();
        let (headers, query) = request_parts(&signed);
        let verdict = verifier(&scheme, &[&secret])
            .verify(&headers, query.as_deref(), &body, at(NOW + clock_skew));
        prop_assert_eq!(verdict, Ok(()));
    }

    #[test]
    fn changing_any_body_byte_breaks_every_body_scheme(
        (scheme, secret, mut body, _) in signed_delivery(any_body_scheme()),
        index in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        prop_assume!(!body.is_empty());
        let signed = sign(&scheme, &Secret::new(secret.clone()), &body, at(NOW), MSG_ID).unwrap();
        let i = index.index(body.len());
        body[i] ^= flip;
        let verdict = verifier(&scheme, &[&secret]).verify(&header_map(&signed), None, &body, at(NOW));
        prop_assert_eq!(verdict, Err(SignatureError::Mismatch));
    }

    #[test]
    fn arbitrary_signature_headers_are_refused_without_panicking(
        scheme in prop_oneof![any_body_scheme(), Just(Scheme::Basic)],
        value in "[ -~]{0,200}",
    ) {
        let secret = if scheme == Scheme::Basic { BASIC_CURRENT } else { CURRENT };
        let signed = sign(&scheme, &Secret::new(secret), BODY, at(NOW), MSG_ID).unwrap();
        let mut headers = header_map(&signed);
        let signature_header = signed.last().unwrap().0.clone();
        headers.insert(
            HeaderName::from_bytes(signature_header.as_bytes()).unwrap(),
            HeaderValue::from_str(&value).unwrap(),
        );
        prop_assert!(verifier(&scheme, &[secret]).verify(&headers, None, BODY, at(NOW)).is_err());
    }

    #[test]
    fn arbitrary_query_strings_are_refused_without_panicking(query in "\\PC{0,200}") {
        let verdict = verifier(&token(), &[CURRENT]).verify(&HeaderMap::new(), Some(&query), BODY, at(NOW));
        prop_assert!(verdict.is_err());
    }

    #[test]
    fn arbitrary_timestamps_never_panic_and_only_the_signed_one_verifies(
        value in "[ -~]{0,30}",
    ) {
        let signed = sign(&Scheme::StandardWebhooks, &Secret::new(CURRENT), BODY, at(NOW), MSG_ID)
            .unwrap();
        let mut headers = header_map(&signed);
        headers.insert("webhook-timestamp", HeaderValue::from_str(&value).unwrap());
        let verdict = verifier(&Scheme::StandardWebhooks, &[CURRENT]).verify(&headers, None, BODY, at(NOW));
        prop_assert_eq!(verdict.is_ok(), value == NOW.to_string());
    }

    #[test]
    fn arbitrary_shippo_timestamps_never_panic_and_only_the_signed_one_verifies(
        value in "[ -~&&[^,]]{0,30}",
    ) {
        let signed = sign(&Scheme::Shippo, &Secret::new(CURRENT), BODY, at(NOW), MSG_ID).unwrap();
        let v1 = signed[0].1.split_once(',').unwrap().1;
        let headers = header_map(&[("shippo-auth-signature", format!("t={value},{v1}"))]);
        let verdict = verifier(&Scheme::Shippo, &[CURRENT]).verify(&headers, None, BODY, at(NOW));
        prop_assert_eq!(verdict.is_ok(), value.trim_end_matches(' ') == NOW.to_string());
    }
}
