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

    assert_eq!(verifier.verify(&headers, body, at(ts + 10)), Ok(()));
    assert_eq!(
        verifier.verify(&headers, body, at(ts + 301)),
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
    assert_eq!(verifier.verify(&headers, body, at(ts - 30)), Ok(()));
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
        verifier(&Scheme::EasyPost, &[EASYPOST_SECRET]).verify(&headers, body, now),
        Ok(())
    );
    // The decomposed spelling of the same secret is the same key after NFKD.
    assert_eq!(
        verifier(&Scheme::EasyPost, &["se\u{301}cret"]).verify(&headers, body, now),
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
        verifier(&Scheme::EasyPost, &[EASYPOST_SECRET]).verify(&headers, EASYPOST_EVENT_FILE, now),
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
        verifier(&unnormalised, &[EASYPOST_SECRET]).verify(&headers, body, Utc::now()),
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
        verifier(&github(), &[secret]).verify(&headers, body, Utc::now()),
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
        verifier.verify(&headers, b"Hello, World!", Utc::now()),
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
        assert_eq!(verifier.verify(&header_map(&signed), body, now), Ok(()));
        assert_eq!(
            verifier.verify(&header_map(&signed), b"{}", now),
            Err(SignatureError::Mismatch)
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

/// One delivery as the receiver sees it.
struct Delivery {
    headers: HeaderMap,
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
    use Scheme::{AfterShip, EasyPost, StandardWebhooks as Sw};
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
        let mut delivery = Delivery {
            headers: header_map(&signed),
            body: BODY.to_vec(),
            signed_at,
        };
        (case.tamper)(&mut delivery);
        let verdict = verifier(&case.scheme, case.receiver).verify(
            &delivery.headers,
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
                let leaks = [CURRENT, PREVIOUS, UNKNOWN]
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

fn any_scheme() -> impl Strategy<Value = Scheme> {
    prop_oneof![
        Just(Scheme::StandardWebhooks),
        Just(Scheme::EasyPost),
        Just(Scheme::AfterShip),
        Just(github()),
        Just(generic_base64()),
    ]
}

/// A secret in the form the scheme expects: `whsec_` + base64 key, or any text.
fn any_secret(scheme: &Scheme) -> BoxedStrategy<String> {
    match scheme {
        Scheme::StandardWebhooks => proptest::collection::vec(any::<u8>(), 24..=64)
            .prop_map(|key| format!("whsec_{}", STANDARD.encode(key)))
            .boxed(),
        _ => "\\PC{1,40}".boxed(),
    }
}

fn any_signed_delivery() -> impl Strategy<Value = (Scheme, String, Vec<u8>, i64)> {
    any_scheme().prop_flat_map(|scheme| {
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
        (scheme, secret, body, clock_skew) in any_signed_delivery()
    ) {
        let signed = sign(&scheme, &Secret::new(secret.clone()), &body, at(NOW), MSG_ID).unwrap();
        let verdict = verifier(&scheme, &[&secret])
            .verify(&header_map(&signed), &body, at(NOW + clock_skew));
        prop_assert_eq!(verdict, Ok(()));
    }

    #[test]
    fn changing_any_body_byte_breaks_every_scheme(
        (scheme, secret, mut body, _) in any_signed_delivery(),
        index in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        prop_assume!(!body.is_empty());
        let signed = sign(&scheme, &Secret::new(secret.clone()), &body, at(NOW), MSG_ID).unwrap();
        let i = index.index(body.len());
        body[i] ^= flip;
        let verdict = verifier(&scheme, &[&secret]).verify(&header_map(&signed), &body, at(NOW));
        prop_assert_eq!(verdict, Err(SignatureError::Mismatch));
    }

    #[test]
    fn arbitrary_signature_headers_are_refused_without_panicking(
        scheme in any_scheme(),
        value in "[ -~]{0,200}",
    ) {
        let signed = sign(&scheme, &Secret::new(CURRENT), BODY, at(NOW), MSG_ID).unwrap();
        let mut headers = header_map(&signed);
        let signature_header = signed.last().unwrap().0.clone();
        headers.insert(
            HeaderName::from_bytes(signature_header.as_bytes()).unwrap(),
            HeaderValue::from_str(&value).unwrap(),
        );
        prop_assert!(verifier(&scheme, &[CURRENT]).verify(&headers, BODY, at(NOW)).is_err());
    }

    #[test]
    fn arbitrary_timestamps_never_panic_and_only_the_signed_one_verifies(
        value in "[ -~]{0,30}",
    ) {
        let signed = sign(&Scheme::StandardWebhooks, &Secret::new(CURRENT), BODY, at(NOW), MSG_ID)
            .unwrap();
        let mut headers = header_map(&signed);
        headers.insert("webhook-timestamp", HeaderValue::from_str(&value).unwrap());
        let verdict = verifier(&Scheme::StandardWebhooks, &[CURRENT]).verify(&headers, BODY, at(NOW));
        prop_assert_eq!(verdict.is_ok(), value == NOW.to_string());
    }
}
