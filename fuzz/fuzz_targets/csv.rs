//! Feeds arbitrary bytes as the body of a CSV status export, read through a fixed column map
//! like the demo's carrier portal (two columns joined into a local time, constants, a status
//! table), as ingress (`inspect`) and the transform (`transform`, `to_canonical`) would. Any
//! panic is a finding, and so is ingress and the transform disagreeing about a file.

#![no_main]

use std::sync::LazyLock;

use freightbridge::config::PartnersFile;
use freightbridge::partners::Adapter;
use freightbridge::webhook::{ReceivedWebhook, WebhookBody, ingress_id};
use libfuzzer_sys::fuzz_target;

const PARTNER: &str = "csv-portal";

const PARTNERS: &str = r#"
[[partner]]
id = "csv-portal"
format = "csv"
[partner.signature]
scheme = "hmac-sha256"
header = "x-portal-signature"
prefix = "sha256="
secrets = ["env:FUZZ_UNUSED_SECRET"]
[partner.options]
time_format = "%m/%d/%Y %H:%M"
timezone = "America/Chicago"
[partner.options.columns]
tracking_number = "PRO Number"
carrier = { constant = "Old Dominion" }
status = "Status"
occurred_at = ["Status Date", "Status Time"]
city = "City"
state = "State"
postal_code = "Zip"
country = { constant = "US" }
reference = "BOL"
message = "Remarks"
signed_by = "Signed By"
[partner.options.statuses]
"Dispatched" = "booked"
"Picked Up" = "picked_up"
"Arrived at Terminal" = "in_transit"
"Departed Terminal" = "in_transit"
"Weather Delay" = "delayed"
"Out for Delivery" = "out_for_delivery"
"Delivered" = "delivered"
"Refused" = "exception"
"Returned to Shipper" = "returned"
"Cancelled" = "cancelled"
"#;

static ADAPTER: LazyLock<Adapter> = LazyLock::new(|| {
    let file = PartnersFile::parse(PARTNERS).expect("the fuzz partners file parses");
    let partner = file.get(PARTNER).expect("the fuzz partner is listed");
    Adapter::from_config(partner).expect("the fuzz partner's options are valid")
});

fuzz_target!(|body: &[u8]| {
    let inspected = ADAPTER.inspect(body);
    let webhook = ReceivedWebhook {
        ingress_id: ingress_id(PARTNER, "csv"),
        partner: PARTNER.into(),
        format: "csv".into(),
        delivery_id: "csv".into(),
        received_at: chrono::DateTime::UNIX_EPOCH,
        content_type: Some("text/csv".into()),
        body: WebhookBody::from_bytes(body),
    };
    let transformed = ADAPTER.transform(&webhook);
    let events = ADAPTER.to_canonical(&webhook);

    // Ingress refuses a file exactly when the transform can make nothing of it, for the same
    // reason; a file it accepts yields at least one event, bad rows set apart.
    assert_eq!(inspected.as_ref().err(), transformed.as_ref().err());
    if let Ok(transformed) = &transformed {
        assert!(!transformed.events.is_empty());
    }
    // `to_canonical` takes a file whole or not at all.
    match (&transformed, &events) {
        (Ok(transformed), Ok(events)) => {
            assert!(transformed.rejected.is_empty());
            assert_eq!(&transformed.events, events);
        }
        (Ok(transformed), Err(_)) => assert!(!transformed.rejected.is_empty()),
        (Err(_), Ok(_)) => panic!("to_canonical accepted a file transform refused"),
        (Err(_), Err(_)) => {}
    }
});
