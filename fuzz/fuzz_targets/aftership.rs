//! Feeds arbitrary bytes to the AfterShip adapter as ingress (`inspect`) and the canonical
//! transform (`to_canonical`) would. Any panic is a finding, and so is the two disagreeing on
//! what is malformed.

#![no_main]

use freightbridge::partners::{self, Format, PartnerError};
use freightbridge::webhook::{ReceivedWebhook, WebhookBody, ingress_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let inspected = partners::inspect(Format::AfterShip, body);
    let webhook = ReceivedWebhook {
        ingress_id: ingress_id("fuzz", "aftership"),
        partner: "fuzz".into(),
        format: "aftership".into(),
        delivery_id: "aftership".into(),
        received_at: chrono::DateTime::UNIX_EPOCH,
        content_type: Some("application/json".into()),
        body: WebhookBody::from_bytes(body),
    };
    let transformed = partners::to_canonical(Format::AfterShip, &webhook);
    // Ingress refuses exactly the bodies the transform finds malformed; a well-formed event the
    // transform does not use (another event kind) is accepted at the door, unsupported later.
    if inspected.is_err() {
        assert!(transformed.is_err());
    }
    if let Err(PartnerError::Malformed { .. }) = transformed {
        assert!(inspected.is_err());
    }
});
