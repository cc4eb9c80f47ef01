//! Feeds arbitrary bytes to the configured-JSON adapter (`mapped-json`) as ingress (`inspect`)
//! and the canonical transform (`to_canonical`) would, through two fixed partner configurations:
//! a one-event-per-body TMS (RFC 3339 times) and a partner sending a history array (delivery id,
//! pointers from the root, Unix times). Any panic is a finding, and so is the two disagreeing.
//!
//! The configuration comes from a file too, so the fuzzer may also vary it: an input whose first
//! byte is a digit is `<slot><value>\n<body>`, the value replacing one setting (a pointer, the
//! time format, the zone; see `SLOTS`) in both configurations before the body is read.

#![no_main]

use std::sync::LazyLock;

use freightbridge::config::{PartnerConfig, PartnersFile};
use freightbridge::partners::Adapter;
use freightbridge::webhook::{ReceivedWebhook, WebhookBody, ingress_id};
use libfuzzer_sys::fuzz_target;

const PARTNERS: &str = r#"
[[partner]]
id = "tms"
format = "mapped-json"
[partner.signature]
scheme = "standard-webhooks"
secrets = ["env:FUZZ_UNUSED_SECRET"]
[partner.options.fields]
tracking_number = "/data/tracking_number"
carrier = "/data/carrier"
status = "/type"
occurred_at = "/timestamp"
reference = "/data/order_reference"
city = "/data/location/city"
state = "/data/location/region"
country = "/data/location/country"
postal_code = "/data/location/postal_code"
message = "/data/description"
signed_by = "/data/proof_of_delivery/signed_by"
eta = "/data/estimated_delivery"
[partner.options.statuses]
"shipment.booked" = "booked"
"shipment.picked_up" = "picked_up"
"shipment.in_transit" = "in_transit"
"shipment.delayed" = "delayed"
"shipment.out_for_delivery" = "out_for_delivery"
"shipment.delivered" = "delivered"
"shipment.returned" = "returned"
"shipment.cancelled" = "cancelled"

[[partner]]
id = "acme"
format = "mapped-json"
[partner.signature]
scheme = "hmac-sha256"
header = "x-acme-signature"
encoding = "base64"
secrets = ["env:FUZZ_UNUSED_SECRET"]
[partner.options]
delivery_id = "/notification_id"
events = "/shipment/history"
time_format = "unix"
timezone = "Europe/Berlin"
[partner.options.fields]
event_id = "/id"
tracking_number = { root = "/shipment/awb" }
carrier = { root = "/shipment/carrier/name" }
reference = { root = "/shipment/customer_ref" }
status = "/code"
status_detail = "/reason"
occurred_at = "/at"
city = "/where/city"
country = { constant = "DE" }
message = "/text"
eta = { root = "/shipment/eta" }
[partner.options.statuses]
PU = "picked_up"
DEP = "in_transit"
ARR = "in_transit"
DLY = "delayed"
DLV = "delivered"
"#;

static CONFIGS: LazyLock<Vec<PartnerConfig>> = LazyLock::new(|| {
    PartnersFile::parse(PARTNERS)
        .expect("the fuzz partners file parses")
        .partner
});

static ADAPTERS: LazyLock<Vec<Adapter>> = LazyLock::new(|| {
    CONFIGS
        .iter()
        .map(|cfg| Adapter::from_config(cfg).expect("the fuzz partners' options are valid"))
        .collect()
});

/// What the value of a `<slot><value>` line replaces, by slot digit.
#[derive(Clone, Copy)]
enum Setting {
    /// `[partner.options] <key> = "<value>"`
    Option(&'static str),
    /// `[partner.options.fields] <field> = "<value>"`
    Field(&'static str),
    /// `[partner.options.fields] <field> = { root = "<value>" }`
    RootField(&'static str),
}

const SLOTS: [Setting; 10] = [
    Setting::Option("events"),
    Setting::Option("delivery_id"),
    Setting::Field("status"),
    Setting::Field("tracking_number"),
    Setting::Field("occurred_at"),
    Setting::RootField("tracking_number"),
    Setting::Field("eta"),
    Setting::Option("time_format"),
    Setting::Option("timezone"),
    Setting::Field("event_id"),
];

fn configured(base: &PartnerConfig, setting: Setting, value: &str) -> PartnerConfig {
    let mut cfg = base.clone();
    let text = toml::Value::String(value.to_owned());
    let (table, key, value) = match setting {
        Setting::Option(key) => (&mut cfg.options, key, text),
        Setting::Field(key) => (fields(&mut cfg), key, text),
        Setting::RootField(key) => {
            let root = toml::Table::from_iter([("root".to_owned(), text)]);
            (fields(&mut cfg), key, toml::Value::Table(root))
        }
    };
    table.insert(key.to_owned(), value);
    cfg
}

fn fields(cfg: &mut PartnerConfig) -> &mut toml::Table {
    cfg.options
        .entry("fields")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .expect("the fuzz partners' fields are a table")
}

fn check(adapter: &Adapter, partner: &str, body: &[u8]) {
    let inspected = adapter.inspect(body);
    let webhook = ReceivedWebhook {
        ingress_id: ingress_id(partner, "msg_fuzz"),
        partner: partner.into(),
        format: "mapped-json".into(),
        delivery_id: "msg_fuzz".into(),
        received_at: chrono::DateTime::UNIX_EPOCH,
        content_type: Some("application/json".into()),
        body: WebhookBody::from_bytes(body),
    };
    let transformed = adapter.to_canonical(&webhook);
    // Ingress checks everything the transform reads: they refuse the same bodies, alike.
    assert_eq!(inspected.as_ref().err(), transformed.as_ref().err());
}

fuzz_target!(|data: &[u8]| {
    let slot = match data.first() {
        Some(digit @ b'0'..=b'9') => Some(SLOTS[usize::from(digit - b'0')]),
        _ => None,
    };
    let Some(setting) = slot else {
        for (cfg, adapter) in CONFIGS.iter().zip(ADAPTERS.iter()) {
            check(adapter, &cfg.id, data);
        }
        return;
    };
    let rest = &data[1..];
    let (line, body) = match rest.iter().position(|&byte| byte == b'\n') {
        Some(end) => (&rest[..end], &rest[end + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(value) = std::str::from_utf8(line) else {
        return;
    };
    for base in CONFIGS.iter() {
        // A setting the configuration check refuses never reaches a body.
        if let Ok(adapter) = Adapter::from_config(&configured(base, setting, value)) {
            check(&adapter, &base.id, body);
        }
    }
});
