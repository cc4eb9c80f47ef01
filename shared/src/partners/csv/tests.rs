use chrono::{DateTime, Utc};
use proptest::prelude::*;

use crate::canonical::{
    self, CanonicalEvent, Delivery, EventBody, Location, ProofOfDelivery, ShipmentRef,
    ShipmentStatus, StatusChange,
};
use crate::config::PartnersFile;
use crate::failure::Classify;
use crate::idempotency::sha256_tag;
use crate::partners::{Adapter, History, PartnerError, RejectedRow, Transformed, canonical_json};
use crate::webhook::{ReceivedWebhook, WebhookBody, ingress_id};

const PARTNERS: &str = include_str!("../../../../events/partners.local.toml");
const EXPORT: &str = include_str!("../../../../events/partners/csv-portal-status-export.csv");
const WITH_BAD_ROW: &str =
    include_str!("../../../../events/partners/csv-portal-export-with-bad-row.csv");

fn time(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// The demo's `csv-portal` partner, as configured in `events/partners.local.toml`.
fn portal() -> Adapter {
    let file = PartnersFile::parse(PARTNERS).unwrap();
    Adapter::from_config(file.get("csv-portal").unwrap()).unwrap()
}

/// A minimal partner: three mapped columns and a table of two words.
fn adapter(options: &str) -> Result<Adapter, String> {
    let text = format!(
        r#"
[[partner]]
id = "portal"
format = "csv"
[partner.signature]
scheme = "hmac-sha256"
header = "x-signature"
secrets = ["s"]
{options}
"#
    );
    let file = PartnersFile::parse(&text).map_err(|e| e.to_string())?;
    Adapter::from_config(&file.partner[0]).map_err(|e| e.to_string())
}

const SIMPLE: &str = r#"
[partner.options.columns]
tracking_number = "Tracking"
status = "Status"
occurred_at = "When"
[partner.options.statuses]
"Delivered" = "delivered"
"Moving" = "in_transit"
"#;

fn webhook(partner: &str, body: &[u8]) -> ReceivedWebhook {
    let delivery_id = sha256_tag(body);
    ReceivedWebhook {
        ingress_id: ingress_id(partner, &delivery_id),
        partner: partner.into(),
        format: "csv".into(),
        delivery_id,
        received_at: time("2024-08-02T19:26:53Z"),
        content_type: Some("text/csv".into()),
        body: WebhookBody::from_bytes(body),
    }
}

fn transform(adapter: &Adapter, partner: &str, body: &str) -> Transformed {
    adapter
        .transform(&webhook(partner, body.as_bytes()))
        .unwrap()
}

fn status(event: &CanonicalEvent) -> ShipmentStatus {
    match &event.body {
        EventBody::StatusChanged(change) => change.status,
        EventBody::Delivered(delivery) => delivery.status,
        other => panic!("not a shipment event: {other:?}"),
    }
}

fn raw_status(event: &CanonicalEvent) -> Option<&str> {
    match &event.body {
        EventBody::StatusChanged(change) => change.raw_status.as_deref(),
        _ => None,
    }
}

#[test]
fn portal_export_becomes_one_exact_event_per_row() {
    let transformed = transform(&portal(), "csv-portal", EXPORT);
    assert!(
        transformed.rejected.is_empty(),
        "{:?}",
        transformed.rejected
    );

    let file = sha256_tag(EXPORT.as_bytes());
    let received_at = time("2024-08-02T19:26:53Z");
    let place = |city: &str, state: &str, zip: &str| {
        Some(Location {
            city: Some(city.into()),
            state: Some(state.into()),
            country: Some("US".into()),
            postal_code: Some(zip.into()),
        })
    };
    let header = |position: u32, pro: &str, bol: &str, at: &str, body: EventBody| CanonicalEvent {
        schema: canonical::SCHEMA.into(),
        event_id: canonical::event_id("csv-portal", &file, position),
        partner: "csv-portal".into(),
        source_event_id: file.clone(),
        correlation_id: file.clone(),
        occurred_at: time(at),
        received_at,
        shipment: ShipmentRef {
            tracking_number: pro.into(),
            carrier: Some("Old Dominion".into()),
            reference: Some(bol.into()),
        },
        body,
    };
    let change = |status, raw: Option<&str>, location, message: &str| {
        EventBody::StatusChanged(StatusChange {
            status,
            status_detail: None,
            raw_status: raw.map(str::to_owned),
            location,
            message: Some(message.into()),
            eta: None,
        })
    };
    // Central daylight time is UTC-5.
    let expected = vec![
        header(
            0,
            "5551234001",
            "WH/OUT/00012",
            "2024-08-01T14:15:00Z",
            change(
                ShipmentStatus::PickedUp,
                None,
                place("CHICAGO", "IL", "60638"),
                "Freight picked up at shipper",
            ),
        ),
        header(
            1,
            "5551234001",
            "WH/OUT/00012",
            "2024-08-02T03:40:00Z",
            // Two portal words map to in_transit, so the word is kept.
            change(
                ShipmentStatus::InTransit,
                Some("Arrived at Terminal"),
                place("INDIANAPOLIS", "IN", "46241"),
                "Arrived at service center, unloaded",
            ),
        ),
        header(
            2,
            "5551234002",
            "WH/OUT/00013",
            "2024-08-02T12:30:00Z",
            change(
                ShipmentStatus::Delayed,
                None,
                place("LOUISVILLE", "KY", "40209"),
                "Held for weather at origin",
            ),
        ),
        header(
            3,
            "5551234001",
            "WH/OUT/00012",
            "2024-08-02T18:05:00Z",
            EventBody::Delivered(Delivery {
                status: ShipmentStatus::Delivered,
                status_detail: None,
                location: place("COLUMBUS", "OH", "43228"),
                message: Some("Delivered - no exceptions".into()),
                pod: ProofOfDelivery {
                    signed_by: Some("J SMITH".into()),
                    delivered_at: time("2024-08-02T18:05:00Z"),
                    document_url: None,
                },
            }),
        ),
        header(
            4,
            "5551234003",
            "WH/OUT/00014",
            "2024-08-02T20:20:00Z",
            // Not in the portal's table: an exception, with the word.
            change(
                ShipmentStatus::Exception,
                Some("Dock Closed"),
                place("DAYTON", "OH", "45414"),
                "Consignee dock closed on arrival",
            ),
        ),
    ];
    assert_eq!(transformed.events, expected);
}

#[test]
fn every_event_from_the_export_conforms_to_the_published_schema() {
    for body in [EXPORT, WITH_BAD_ROW] {
        for event in transform(&portal(), "csv-portal", body).events {
            let value = serde_json::to_value(&event).unwrap();
            assert_eq!(
                canonical_json::validate(&value).unwrap(),
                Ok(()),
                "{value:#}"
            );
        }
    }
}

#[test]
fn a_bad_row_is_reported_with_its_line_while_the_good_rows_go_through() {
    let transformed = transform(&portal(), "csv-portal", WITH_BAD_ROW);
    assert_eq!(transformed.events.len(), 1);
    let good = &transformed.events[0];
    assert_eq!(good.shipment.tracking_number, "5551234004");
    assert_eq!(status(good), ShipmentStatus::OutForDelivery);
    assert_eq!(
        good.event_id,
        canonical::event_id("csv-portal", &sha256_tag(WITH_BAD_ROW.as_bytes()), 0)
    );
    // The first record spans lines 2 and 3 (a quoted line break), so the bad one is on line 4.
    assert_eq!(
        transformed.rejected,
        vec![RejectedRow {
            line: 4,
            reason: "`occurred_at` (column \"Status Date\" + \"Status Time\") is not a time in \
                     the format `%m/%d/%Y %H:%M`"
                .into(),
        }]
    );
    // The value itself never appears in the reason.
    assert!(!transformed.rejected[0].reason.contains("08/33"));
}

#[test]
fn each_kind_of_bad_row_is_named_and_positions_do_not_shift() {
    let adapter = adapter(SIMPLE).unwrap();
    let body = "Tracking,Status,When\n\
                T1,Moving,2024-08-02T10:00:00Z\n\
                T2,,2024-08-02T11:00:00Z\n\
                ,Moving,2024-08-02T11:00:00Z\n\
                T4,Moving,yesterday\n\
                T5,Moving\n\
                T6,Moving,2024-08-02T12:00:00Z,extra\n\
                T7,Delivered,2024-08-02T13:00:00Z\n";
    let transformed = transform(&adapter, "portal", body);
    let lines: Vec<(u64, &str)> = transformed
        .rejected
        .iter()
        .map(|row| (row.line, row.reason.as_str()))
        .collect();
    assert_eq!(
        lines,
        vec![
            (3, "missing `status` (column \"Status\")"),
            (4, "missing `tracking_number` (column \"Tracking\")"),
            (
                5,
                "`occurred_at` (column \"When\") is not a time in the format `rfc3339`"
            ),
            (6, "has 2 fields, the header has 3"),
            (7, "has 4 fields, the header has 3"),
        ]
    );
    let file = sha256_tag(body.as_bytes());
    let ids: Vec<_> = transformed.events.iter().map(|e| e.event_id).collect();
    // T7 is the seventh data row whatever happened to the rows before it.
    assert_eq!(
        ids,
        vec![
            canonical::event_id("portal", &file, 0),
            canonical::event_id("portal", &file, 6),
        ]
    );
    assert_eq!(status(&transformed.events[1]), ShipmentStatus::Delivered);
}

#[test]
fn to_canonical_refuses_a_file_with_a_bad_row_naming_the_line() {
    let error = portal()
        .to_canonical(&webhook("csv-portal", WITH_BAD_ROW.as_bytes()))
        .unwrap_err();
    assert_eq!(error.code(), "malformed_payload");
    assert!(error.to_string().contains("line 4:"), "{error}");
    let events = portal()
        .to_canonical(&webhook("csv-portal", EXPORT.as_bytes()))
        .unwrap();
    assert_eq!(events.len(), 5);
}

#[test]
fn the_same_file_gives_the_same_events_whenever_and_however_it_arrives() {
    let adapter = portal();
    let first = transform(&adapter, "csv-portal", EXPORT);
    let mut later = webhook("csv-portal", EXPORT.as_bytes());
    later.received_at = time("2024-08-09T00:00:00Z");
    // Signed with a scheme that carries a message id: a different delivery id.
    later.delivery_id = "msg_2".into();
    let second = adapter.transform(&later).unwrap();
    let ids = |t: &Transformed| t.events.iter().map(|e| e.event_id).collect::<Vec<_>>();
    assert_eq!(ids(&first), ids(&second));
    assert_eq!(first, transform(&adapter, "csv-portal", EXPORT));
}

#[test]
fn rows_with_their_own_ids_are_history_per_tracking_number() {
    let with_ids = SIMPLE.replace(
        "occurred_at = \"When\"",
        "occurred_at = \"When\"\nevent_id = \"Scan\"",
    );
    let adapter = adapter(&with_ids).unwrap();
    let file = "Tracking,Status,When,Scan\n\
                A1,Moving,2024-08-01T09:00:00Z,s-1\n\
                B2,Moving,2024-08-01T09:30:00Z,s-2\n\
                A1,Delivered,2024-08-02T10:00:00Z,s-3\n\
                B2,Moving,2024-08-02T11:00:00Z,\n";
    let transformed = transform(&adapter, "portal", file);
    assert_eq!(transformed.events.len(), 4);
    let id = |row: usize| transformed.events[row].event_id;
    assert_eq!(id(0), canonical::event_id("portal", "s-1", 0));
    assert_eq!(
        transformed.history,
        vec![
            History {
                scope: "portal#A1".into(),
                entries: vec![id(0), id(2)],
            },
            // The last row has no id of its own: numbered in its file, not history.
            History {
                scope: "portal#B2".into(),
                entries: vec![id(1)],
            },
        ]
    );

    // Without an id column nothing is history: a file is named by its hash.
    let plain = transform(&portal(), "csv-portal", EXPORT);
    assert!(plain.history.is_empty());
}

#[test]
fn file_level_problems_refuse_the_whole_file_at_ingress_and_in_the_transform() {
    let adapter = adapter(SIMPLE).unwrap();
    let cases: [(&[u8], &str); 7] = [
        (b"", "no header row"),
        (b"\n\n", "no header row"),
        (b"Tracking,Status,When\n", "no data rows"),
        (b"Tracking,Status,When\n,,\n", "no data rows"),
        (
            b"Tracking,State,When\nT1,Moving,2024-08-02T10:00:00Z\n",
            "no column \"Status\" (mapped to `status`)",
        ),
        (b"Tracking,Status,When\nT1,Moving,\xff\xfe\n", "not UTF-8"),
        (
            b"Tracking,Status,When\nT1,Moving,soon\nT2,Moving,later\n",
            "no row could be read; the first, line 2,",
        ),
    ];
    for (body, reason) in cases {
        let inspected = adapter.inspect(body).unwrap_err();
        let transformed = adapter.transform(&webhook("portal", body)).unwrap_err();
        assert_eq!(inspected, transformed);
        let PartnerError::Malformed {
            format,
            reason: why,
        } = &inspected
        else {
            panic!("{inspected:?}");
        };
        assert_eq!(*format, "csv");
        assert!(why.contains(reason), "{why:?} should contain {reason:?}");
    }
    let twice = b"Tracking,Status,Status,When\nT1,Moving,Moving,2024-08-02T10:00:00Z\n";
    assert!(adapter.inspect(twice).is_err());
}

#[test]
fn a_good_file_is_accepted_at_ingress_and_keyed_on_its_hash() {
    let key = portal().inspect(EXPORT.as_bytes()).unwrap();
    assert_eq!(key.delivery_id, None);
    assert_eq!(key.payload_hash, None);
    // A bad row is the transform's to report, not a reason to refuse the file.
    assert!(portal().inspect(WITH_BAD_ROW.as_bytes()).is_ok());
}

#[test]
fn delimiters_headers_bom_crlf_and_quotes_are_read_as_written() {
    let semicolons = adapter(&format!("[partner.options]\ndelimiter = \";\"\n{SIMPLE}")).unwrap();
    let body = "\u{feff} tracking ; STATUS ;When\r\n\
                \"T;1\";Moving;2024-08-02T10:00:00Z\r\n\
                \r\n\
                T2;\"Delivered\";2024-08-02T11:00:00+02:00\r\n";
    let transformed = transform(&semicolons, "portal", body);
    assert!(
        transformed.rejected.is_empty(),
        "{:?}",
        transformed.rejected
    );
    let events = transformed.events;
    assert_eq!(events[0].shipment.tracking_number, "T;1");
    assert_eq!(events[1].occurred_at, time("2024-08-02T09:00:00Z"));
    // The blank line still counts as a line but not as a row.
    assert_eq!(
        events[1].event_id,
        canonical::event_id("portal", &sha256_tag(body.as_bytes()), 1)
    );

    let tabs = adapter(&format!("[partner.options]\ndelimiter = \"\\t\"\n{SIMPLE}")).unwrap();
    let body = "Tracking\tStatus\tWhen\nT1\tMoving\t2024-08-02T10:00:00Z\n";
    assert_eq!(transform(&tabs, "portal", body).events.len(), 1);
}

#[test]
fn status_words_map_through_the_table_and_unknown_words_become_exceptions() {
    let adapter = adapter(SIMPLE).unwrap();
    let body = "Tracking,Status,When\n\
                T1,DELIVERED,2024-08-02T10:00:00Z\n\
                T2,moving,2024-08-02T10:00:00Z\n\
                T3,picked_up,2024-08-02T10:00:00Z\n\
                T4,Stuck at border,2024-08-02T10:00:00Z\n";
    let events = transform(&adapter, "portal", body).events;
    let got: Vec<(ShipmentStatus, Option<&str>)> =
        events.iter().map(|e| (status(e), raw_status(e))).collect();
    assert_eq!(
        got,
        vec![
            (ShipmentStatus::Delivered, None),
            (ShipmentStatus::InTransit, None),
            (ShipmentStatus::PickedUp, None),
            (ShipmentStatus::Exception, Some("Stuck at border")),
        ]
    );
}

#[test]
fn bad_options_are_configuration_errors() {
    let cases = [
        ("no columns", "[partner.options]\ndelimiter = \",\""),
        (
            "two-character delimiter",
            &format!("[partner.options]\ndelimiter = \";;\"\n{SIMPLE}"),
        ),
        (
            "quote as delimiter",
            &format!("[partner.options]\ndelimiter = '\"'\n{SIMPLE}"),
        ),
        (
            "unknown option",
            &format!("[partner.options]\nseparator = \";\"\n{SIMPLE}"),
        ),
        (
            "unknown canonical status",
            &format!("{SIMPLE}\"Lost\" = \"vanished\"\n"),
        ),
        (
            "bad time format",
            &format!("[partner.options]\ntime_format = \"%H:%M\"\n{SIMPLE}"),
        ),
        (
            "unknown zone",
            &format!("[partner.options]\ntimezone = \"Central\"\n{SIMPLE}"),
        ),
        (
            "empty column list",
            "[partner.options.columns]\ntracking_number = []\nstatus = \"S\"\noccurred_at = \"W\"",
        ),
    ];
    for (case, options) in cases {
        let error = adapter(options).unwrap_err();
        assert!(error.contains("partner portal"), "{case}: {error}");
    }
}

fn never_panics(body: &[u8]) {
    for adapter in [portal(), adapter(SIMPLE).unwrap()] {
        let inspected = adapter.inspect(body);
        let transformed = adapter.transform(&webhook("portal", body));
        // What ingress accepts the transform can read, and the other way round.
        assert_eq!(inspected.is_ok(), transformed.is_ok());
        if let Err(error) = transformed {
            assert_eq!(error.code(), "malformed_payload");
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        never_panics(&body);
    }

    #[test]
    fn arbitrary_json_never_panics(value in crate::partners::mapping::any_json()) {
        never_panics(&serde_json::to_vec(&value).unwrap());
    }

    #[test]
    fn arbitrary_csv_like_text_never_panics(
        body in "(Tracking|Status|When|T1|Moving|Delivered|2024-08-02T10:00:00Z|\"|,|;|\r|\n| |x){0,40}"
    ) {
        never_panics(body.as_bytes());
    }
}
