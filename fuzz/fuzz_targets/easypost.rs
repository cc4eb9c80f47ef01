//! Feeds arbitrary bytes to the EasyPost adapter as ingress (`inspect`) and the canonical
//! transform (`to_canonical`) would. Any panic is a finding.

#![no_main]

use freightbridge::partners::{self, Format};
use freightbridge::webhook::{ReceivedWebhook, WebhookBody, ingress_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let _ = partners::inspect(Format::EasyPost, body);
    let webhook = ReceivedWebhook {
        ingress_id: ingress_id("fuzz", "easypost"),
        partner: "fuzz".into(),
        format: "easypost".into(),
        delivery_id: "easypost".into(),
        received_at: chrono::DateTime::UNIX_EPOCH,
        content_type: Some("application/json".into()),
        body: WebhookBody::from_bytes(body),
    };
    let _ = partners::to_canonical(Format::EasyPost, &webhook);
});
