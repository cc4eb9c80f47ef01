//! Feeds arbitrary bytes to the X12 adapter exactly as ingress (`inspect`) and the canonical
//! transform (`to_canonical`) would, lenient and strict. Any panic, overflow or runaway
//! allocation is a finding.

#![no_main]

use freightbridge::partners::x12::{self, Options};
use freightbridge::webhook::{ReceivedWebhook, WebhookBody, ingress_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let webhook = ReceivedWebhook {
        ingress_id: ingress_id("fuzz", "x12"),
        partner: "fuzz".into(),
        format: x12::FORMAT.into(),
        delivery_id: "x12".into(),
        received_at: chrono::DateTime::UNIX_EPOCH,
        content_type: Some("application/edi-x12".into()),
        body: WebhookBody::from_bytes(body),
    };
    for strict in [false, true] {
        let options = Options {
            strict,
            ..Options::default()
        };
        let inspected = x12::inspect(body, &options);
        let transformed = x12::to_canonical(&webhook, body, &options);
        // Ingress and the transform read the body the same way: what one refuses as malformed,
        // so does the other.
        if inspected.is_err() {
            assert!(transformed.is_err());
        }
    }
});
