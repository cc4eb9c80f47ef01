//! Feeds arbitrary bytes to the `canonical` adapter (schema-checked canonical v1 events) as
//! ingress (`inspect`) and the canonical transform (`to_canonical`) would, for a partner
//! configured like the demo's TMS booking feed. Any panic is a finding, and so is the two
//! disagreeing about a body.

#![no_main]

use std::sync::LazyLock;

use freightbridge::config::PartnersFile;
use freightbridge::partners::Adapter;
use freightbridge::webhook::{ReceivedWebhook, WebhookBody, ingress_id};
use libfuzzer_sys::fuzz_target;

const PARTNER: &str = "tms-bookings";

const PARTNERS: &str = r#"
[[partner]]
id = "tms-bookings"
format = "canonical"
[partner.signature]
scheme = "standard-webhooks"
secrets = ["env:FUZZ_UNUSED_SECRET"]
"#;

static ADAPTER: LazyLock<Adapter> = LazyLock::new(|| {
    let file = PartnersFile::parse(PARTNERS).expect("the fuzz partners file parses");
    let partner = file.get(PARTNER).expect("the fuzz partner is listed");
    Adapter::from_config(partner).expect("the fuzz partner's options are valid")
});

fuzz_target!(|body: &[u8]| {
    let inspected = ADAPTER.inspect(body);
    let webhook = ReceivedWebhook {
        ingress_id: ingress_id(PARTNER, "msg_fuzz"),
        partner: PARTNER.into(),
        format: "canonical".into(),
        delivery_id: "msg_fuzz".into(),
        // Ingress checks with the epoch as receive time; the same here makes the two readings
        // of the body identical, so they must agree exactly.
        received_at: chrono::DateTime::UNIX_EPOCH,
        content_type: Some("application/json".into()),
        body: WebhookBody::from_bytes(body),
    };
    let transformed = ADAPTER.to_canonical(&webhook);
    // Ingress refuses exactly what the transform would, for the same reason.
    assert_eq!(inspected.as_ref().err(), transformed.as_ref().err());
});
