use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

use super::*;
use crate::canonical::{
    ChargeKind, ChargeLine, Delivery, Invoice, Location, Party, Reference, ShipmentStatus,
    StatusChange, Weight, WeightUnit,
};
use crate::config::PartnersFile;
use crate::failure::Classify;
use crate::partners::{self, Adapter, Format};
use crate::webhook::{WebhookBody, ingress_id};

const EDIFABRIC_210: &[u8] =
    include_bytes!("../../../tests/fixtures/x12/edi-210-edifabric-truckload-invoice.edi");
const UPS_210: &[u8] = include_bytes!("../../../tests/fixtures/x12/edi-210-ups-multi-invoice.edi");
const CANADAPOST_214: &[u8] =
    include_bytes!("../../../tests/fixtures/x12/edi-214-canadapost-multi-status.edi");

fn time(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn money(text: &str) -> Decimal {
    text.parse().unwrap()
}

fn webhook_for(body: &[u8]) -> ReceivedWebhook {
    ReceivedWebhook {
        ingress_id: ingress_id("relay", "x12:delivery"),
        partner: "relay".into(),
        format: FORMAT.into(),
        delivery_id: "x12:delivery".into(),
        received_at: time("2024-08-02T19:26:53Z"),
        content_type: Some("application/edi-x12".into()),
        body: WebhookBody::from_bytes(body),
    }
}

fn lenient(body: &[u8]) -> Transformed {
    transform(&webhook_for(body), body, &Options::default()).unwrap()
}

fn strict() -> Options {
    Options {
        strict: true,
        ..Options::default()
    }
}

fn malformed_reason(error: PartnerError) -> String {
    assert_eq!(error.code(), "malformed_payload", "{error}");
    match error {
        PartnerError::Malformed { format, reason } => {
            assert_eq!(format, FORMAT);
            reason
        }
        other => panic!("expected a malformed payload, got {other:?}"),
    }
}

fn status_change(event: &CanonicalEvent) -> &StatusChange {
    match &event.body {
        EventBody::StatusChanged(change) => change,
        other => panic!("expected shipment.status_changed, got {other:?}"),
    }
}

fn delivery(event: &CanonicalEvent) -> &Delivery {
    match &event.body {
        EventBody::Delivered(delivery) => delivery,
        other => panic!("expected shipment.delivered, got {other:?}"),
    }
}

fn invoice(event: &CanonicalEvent) -> &Invoice {
    match &event.body {
        EventBody::InvoiceReceived(received) => &received.invoice,
        other => panic!("expected freight_invoice.received, got {other:?}"),
    }
}

fn checks_of(warnings: &[Warning]) -> Vec<&'static str> {
    warnings.iter().map(|w| w.check).collect()
}

// ---------------------------------------------------------------------------------------------
// Small bodies, written with `*` between elements, `>` between components and one segment per
// entry, then re-delimited as each test needs.

#[derive(Clone, Copy)]
struct Layout {
    element: char,
    component: char,
    terminator: char,
    /// Written after each terminator: "", "\n", "\r\n", …
    after: &'static str,
    bom: bool,
}

const TILDE: Layout = Layout {
    element: '*',
    component: '>',
    terminator: '~',
    after: "\n",
    bom: false,
};

/// The fixed-width ISA header with these delimiters and ISA13 `control`.
fn isa(layout: Layout, sender: &str, control: &str) -> String {
    let header = format!(
        "ISA*00*{:10}*00*{:10}*ZZ*{sender:<15}*ZZ*{:<15}*240801*1200*U*00401*{control:0>9}*0*P*{}{}",
        "", "", "RECEIVER", layout.component, layout.terminator
    );
    assert_eq!(header.len(), tokenizer::ISA_LEN);
    header.replace('*', &layout.element.to_string())
}

fn interchange(layout: Layout, sender: &str, control: &str, segments: &[String]) -> String {
    let mut text = isa(layout, sender, control);
    text.push_str(layout.after);
    for segment in segments {
        let segment = segment
            .replace('*', &layout.element.to_string())
            .replace('>', &layout.component.to_string());
        text.push_str(&segment);
        text.push(layout.terminator);
        text.push_str(layout.after);
    }
    text
}

fn body(layout: Layout, segments: &[String]) -> Vec<u8> {
    let mut bytes = Vec::new();
    if layout.bom {
        bytes.extend_from_slice(b"\xEF\xBB\xBF");
    }
    bytes.extend_from_slice(interchange(layout, "RELAY", "101", segments).as_bytes());
    bytes
}

fn lines(segments: &[&str]) -> Vec<String> {
    segments.iter().map(|s| (*s).to_owned()).collect()
}

/// A group of one 214 set with the given AT7 loop, closed by GE and IEA (ISA13 `101`).
fn status_body(at7_loop: &[&str]) -> Vec<String> {
    status_body_with(&["B10*PRO123*SHIP9*ABCD"], at7_loop)
}

fn status_body_with(header: &[&str], at7_loop: &[&str]) -> Vec<String> {
    let mut set = vec!["ST*214*0001".to_owned()];
    set.extend(lines(header));
    set.push("LX*1".to_owned());
    set.extend(lines(at7_loop));
    set.push(format!("SE*{}*0001", set.len() + 1));
    let mut all = vec!["GS*QM*RELAY*RECEIVER*20240801*1200*7*X*004010".to_owned()];
    all.extend(set);
    all.extend(lines(&["GE*1*7", "IEA*1*000000101"]));
    all
}

/// A group of one 210 set with these segments between ST and SE.
fn invoice_body(inner: &[&str]) -> Vec<String> {
    let mut set = vec!["ST*210*0001".to_owned()];
    set.extend(lines(inner));
    set.push(format!("SE*{}*0001", set.len() + 1));
    let mut all = vec!["GS*IM*RELAY*RECEIVER*20240801*1200*8*X*004010".to_owned()];
    all.extend(set);
    all.extend(lines(&["GE*1*8", "IEA*1*000000101"]));
    all
}

const AT7_IN_TRANSIT: &str = "AT7*X6*NS***20240801*0930*ET";
const MS1_ATLANTA: &str = "MS1*ATLANTA*GA*US";

// ---------------------------------------------------------------------------------------------
// Fixtures

#[test]
fn edifabric_210_becomes_one_invoice_with_its_b3_values() {
    let transformed = lenient(EDIFABRIC_210);
    assert_eq!(transformed.warnings, []);
    let [event] = transformed.events.as_slice() else {
        panic!("one invoice per 210 set: {:?}", transformed.events)
    };
    assert_eq!(event.source_event_id, "000000263-000000001-00000001");
    assert_eq!(event.correlation_id, "x12:delivery");
    assert_eq!(
        event.event_id,
        canonical::event_id("relay", "000000263-000000001-00000001", 0)
    );
    assert_eq!(event.occurred_at, time("2007-10-31T00:00:00Z"));
    assert_eq!(event.shipment.tracking_number, "545930791T");
    assert_eq!(event.shipment.carrier.as_deref(), Some("NLMI"));
    assert_eq!(event.shipment.reference, None);

    let invoice = invoice(event);
    assert_eq!(invoice.number, "3410889");
    assert_eq!(invoice.total, money("51.65"));
    assert_eq!(invoice.currency, "USD");
    assert_eq!(invoice.issued_on, date("2007-10-31"));
    assert_eq!(invoice.delivered_on, Some(date("2007-10-29")));
    assert_eq!(
        invoice.lines,
        [ChargeLine {
            kind: ChargeKind::BaseFreight,
            code: Some("400".into()),
            description: None,
            amount: money("51.65"),
        }]
    );
    let party = |role: &str, name: &str, id: &str, postal: &str, country: &str| Party {
        role: role.into(),
        name: Some(name.into()),
        id: Some(id.into()),
        postal_code: Some(postal.into()),
        country: Some(country.into()),
    };
    assert_eq!(
        invoice.parties,
        [
            party(
                "SH",
                "SIEMENS VDO S A DE C V - SIEMENS AUTOMOTIVE",
                "99999",
                "99999",
                "MX"
            ),
            party(
                "CN",
                "BRAMPTON ASSEMBLY - COLLINS AND AIKMAN",
                "09126B",
                "99999",
                "CA"
            ),
            party("BT", "BRAMPTON ASSEMBLY - MAIN", "09126", "99999", "CA"),
            party(
                "CA",
                "NATIONAL LOGISTICS MANAGEMENT",
                "45795",
                "48228",
                "US"
            ),
            party("ZZ", "EXPEDITORS/EMERY WORLDWIDE", "37905", "66201", "US"),
        ]
    );
    // L3 2619 in the pounds of B305 `L`.
    assert_eq!(
        invoice.weight,
        Some(Weight {
            value: Decimal::from(2619),
            unit: WeightUnit::Lb
        })
    );
    let reference = |qualifier: &str, value: &str| Reference {
        qualifier: qualifier.into(),
        value: value.into(),
    };
    assert_eq!(
        invoice.references,
        [
            reference("BM", "545930791T"),
            reference("AE", "260451"),
            reference("OP", "3410889"),
            reference("IK", "545930791T"),
        ]
    );
}

#[test]
fn ups_210_gives_five_invoices_with_their_totals_and_lines() {
    // (B302, B307, C301, L1 lines, negative lines), counted from the file by hand.
    let expected = [
        ("0000001808WW308", "17.00", "USD", 7, 2),
        ("0000001502WW308", "94.15", "USD", 19, 9),
        ("0000004045WW308", "285.55", "USD", 23, 11),
        ("0000002063WW308", "1056.47", "USD", 60, 24),
        ("0000004469WW318", "21642.90", "CAD", 102, 3),
    ];
    let events = lenient(UPS_210).events;
    assert_eq!(events.len(), expected.len());
    for (position, (event, (number, total, currency, count, negative))) in
        events.iter().zip(expected).enumerate()
    {
        let invoice = invoice(event);
        assert_eq!(invoice.number, number);
        assert_eq!(invoice.total, money(total), "{number}");
        assert_eq!(invoice.currency, currency, "{number}");
        assert_eq!(invoice.lines.len(), count, "{number}");
        let negatives = invoice.lines.iter().filter(|l| l.amount < Decimal::ZERO);
        assert_eq!(negatives.count(), negative, "{number}");
        let sum: Decimal = invoice.lines.iter().map(|l| l.amount).sum();
        assert_eq!(sum, invoice.total, "{number}: the lines add up to B307");
        // UPS leaves B303 empty: the invoice number identifies what is billed.
        assert_eq!(event.shipment.tracking_number, number);
        assert_eq!(event.shipment.carrier.as_deref(), Some("UPSN"));
        assert_eq!(
            event.event_id,
            canonical::event_id("relay", &event.source_event_id, position as u32)
        );
    }
    assert_eq!(events[0].source_event_id, "000002838-2767-000158669");
    assert_eq!(
        events[0].shipment.reference.as_deref(),
        Some("7803A-0005-0001-1"),
        "the N9 CR customer reference"
    );

    let line = |kind, code: &str, amount: &str| ChargeLine {
        kind,
        code: Some(code.into()),
        description: None,
        amount: money(amount),
    };
    assert_eq!(
        invoice(&events[0]).lines,
        [
            line(ChargeKind::Accessorial, "SAC", "17.00"),
            line(ChargeKind::BaseFreight, "400", "127.40"),
            line(ChargeKind::Accessorial, "395", "15.00"),
            line(ChargeKind::FuelSurcharge, "FUE", "25.48"),
            line(ChargeKind::Discount, "295", "-12.74"),
            ChargeLine {
                // `L1*3***-16788****CDF****050`: the one L112 in the set.
                description: Some("050".into()),
                ..line(ChargeKind::Discount, "CDF", "-167.88")
            },
            line(ChargeKind::Accessorial, "275", "12.74"),
        ]
    );
}

#[test]
fn ups_first_set_miscount_warns_when_lenient_and_is_refused_when_strict() {
    let transformed = lenient(UPS_210);
    assert_eq!(
        transformed.warnings,
        [Warning {
            check: "SE01",
            message: "SE01 at segment 50 does not match the set's 48 segments (ST to SE)".into(),
        }]
    );
    assert_eq!(transformed.events.len(), 5);

    let reason = malformed_reason(inspect(UPS_210, &strict()).unwrap_err());
    assert!(reason.starts_with("SE01 check failed"), "{reason}");
    assert!(
        !reason.contains("46"),
        "no partner value in the message: {reason}"
    );
    let reason =
        malformed_reason(transform(&webhook_for(UPS_210), UPS_210, &strict()).unwrap_err());
    assert!(reason.starts_with("SE01 check failed"), "{reason}");
}

#[test]
fn ups_non_ascii_reference_bytes_are_kept_as_text() {
    let events = lenient(UPS_210).events;
    let last = invoice(&events[4]);
    let vr: Vec<&str> = last
        .references
        .iter()
        .filter(|r| r.qualifier == "VR")
        .map(|r| r.value.as_str())
        .collect();
    // `N9*VR*I †Œ ` (UTF-8 E2 80 A0, C5 92), an empty `N9*VR*` and two `N9*VR*C`.
    assert_eq!(vr, ["I \u{2020}\u{152}", "C"]);
}

#[test]
fn canadapost_214_gives_one_event_per_at7_with_the_section_9_statuses() {
    let transformed = lenient(CANADAPOST_214);
    assert_eq!(transformed.warnings, []);
    let events = transformed.events;
    assert_eq!(events.len(), 19);
    for (position, event) in events.iter().enumerate() {
        let set = format!("{:09}", position + 1);
        assert_eq!(event.source_event_id, format!("000001644-000001644-{set}"));
        assert_eq!(
            event.event_id,
            canonical::event_id("relay", &event.source_event_id, position as u32)
        );
        assert_eq!(event.shipment.carrier.as_deref(), Some("CPCC"));
        assert_eq!(event.received_at, time("2024-08-02T19:26:53Z"));
    }

    // (set, status, detail, raw status, UTC time, city): AT707 empty in set 1 (read as UTC, the
    // default local zone); PT and MT on 2019-11-02 are still daylight time (−7, −6), MT on
    // 2019-11-03 after 02:00 standard time (−7); CS is −6 whatever the date.
    let expected = [
        (
            0,
            ShipmentStatus::Booked,
            "shipment_acknowledged",
            Some("XB"),
            "2019-11-03T15:34:00Z",
            "WRENCH",
        ),
        (
            1,
            ShipmentStatus::Exception,
            "delivery_attempted; consignee_related",
            Some("AH/AG"),
            "2019-11-02T23:25:00Z",
            "DRILL",
        ),
        (
            2,
            ShipmentStatus::Cancelled,
            "shipment_cancelled; returned_to_shipper",
            Some("CA/BT"),
            "2019-11-03T00:52:00Z",
            "SAW",
        ),
        (
            4,
            ShipmentStatus::PickedUp,
            "departed_pickup_location",
            None,
            "2019-11-03T21:09:00Z",
            "PAINTBRUSH",
        ),
        (
            11,
            ShipmentStatus::Exception,
            "delivery_not_completed; consignee_related",
            Some("AP/AG"),
            "2019-11-03T15:15:00Z",
            "LASERLEVEL",
        ),
    ];
    for (index, status, detail, raw, at, city) in expected {
        let event = &events[index];
        let change = status_change(event);
        assert_eq!(change.status, status, "set {}", index + 1);
        assert_eq!(change.status_detail.as_deref(), Some(detail));
        assert_eq!(change.raw_status.as_deref(), raw);
        assert_eq!(change.eta, None);
        assert_eq!(event.occurred_at, time(at), "set {}", index + 1);
        assert_eq!(
            change.location.as_ref().and_then(|l| l.city.as_deref()),
            Some(city)
        );
    }
    assert_eq!(events[0].shipment.tracking_number, "4343638097845589");
    assert_eq!(
        events[0].shipment.reference, None,
        "B1002 repeats the PRO and no L11 is BM/PO/CR"
    );

    let delivered = &events[3];
    assert_eq!(delivered.event_type(), "shipment.delivered");
    assert_eq!(delivered.occurred_at, time("2019-11-02T22:48:00Z"));
    let delivered = delivery(delivered);
    assert_eq!(delivered.pod.delivered_at, time("2019-11-02T22:48:00Z"));
    assert_eq!(delivered.pod.signed_by, None);
    assert_eq!(
        delivered.location,
        Some(Location {
            city: Some("SWITCH".into()),
            state: Some("AB".into()),
            country: Some("CA".into()),
            postal_code: None,
        })
    );

    let mut by_status = std::collections::BTreeMap::new();
    for event in &events {
        let status = match &event.body {
            EventBody::StatusChanged(change) => change.status.as_str(),
            EventBody::Delivered(_) => "delivered",
            other => panic!("unexpected {other:?}"),
        };
        *by_status.entry(status).or_insert(0) += 1;
    }
    assert_eq!(
        by_status.into_iter().collect::<Vec<_>>(),
        [
            ("booked", 6),
            ("cancelled", 1),
            ("delivered", 1),
            ("exception", 4),
            ("picked_up", 7)
        ]
    );
}

#[test]
fn single_interchange_is_identified_by_sender_and_control_number() {
    let cases = [
        (EDIFABRIC_210, "x12:SENDER1:000000263"),
        (UPS_210, "x12:UPSN:000002838"),
        (CANADAPOST_214, "x12:CPC:000001644"),
    ];
    for (body, id) in cases {
        let key = partners::inspect(Format::X12, body).unwrap();
        assert_eq!(key.delivery_id.as_deref(), Some(id));
        assert_eq!(key.payload_hash, Some(crate::idempotency::sha256_tag(body)));
    }
}

#[test]
fn every_fixture_event_matches_the_published_schema() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../schema/freightbridge.canonical.v1.schema.json");
    let schema: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap();
    let eta = body(
        TILDE,
        &status_body(&["AT7*AG*NS***20240803*1700*CT", MS1_ATLANTA]),
    );
    let mut checked = 0;
    for fixture in [EDIFABRIC_210, UPS_210, CANADAPOST_214, eta.as_slice()] {
        for event in lenient(fixture).events {
            let json = serde_json::to_value(&event).unwrap();
            let errors: Vec<String> = validator
                .iter_errors(&json)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{errors:#?}\nin {json:#}");
            checked += 1;
        }
    }
    assert_eq!(checked, 1 + 5 + 19 + 1);
}

// ---------------------------------------------------------------------------------------------
// Delimiters and layout

#[test]
fn terminators_and_separators_come_from_each_isa_header() {
    let layouts = [
        ("tilde", TILDE),
        (
            "pipe, no line ends",
            Layout {
                terminator: '|',
                after: "",
                ..TILDE
            },
        ),
        (
            "newline",
            Layout {
                terminator: '\n',
                after: "",
                ..TILDE
            },
        ),
        (
            "dot with CRLF and indentation",
            Layout {
                terminator: '.',
                after: "\r\n    ",
                ..TILDE
            },
        ),
        (
            "caret elements, colon components",
            Layout {
                element: '^',
                component: ':',
                ..TILDE
            },
        ),
        (
            "BOM and CRLF",
            Layout {
                after: "\r\n",
                bom: true,
                ..TILDE
            },
        ),
        (
            "CRLF line ends whose CR is the terminator",
            Layout {
                terminator: '\r',
                after: "\n",
                bom: true,
                ..TILDE
            },
        ),
    ];
    let segments = status_body(&[AT7_IN_TRANSIT, MS1_ATLANTA]);
    let reference = lenient(&body(TILDE, &segments));
    assert_eq!(reference.events.len(), 1);
    for (name, layout) in layouts {
        let bytes = body(layout, &segments);
        let transformed = lenient(&bytes);
        assert_eq!(transformed.warnings, [], "{name}");
        assert_eq!(transformed.events, reference.events, "{name}");
    }
    let event = &reference.events[0];
    assert_eq!(event.occurred_at, time("2024-08-01T13:30:00Z"), "09:30 EDT");
    let change = status_change(event);
    assert_eq!(change.status, ShipmentStatus::InTransit);
    assert_eq!(change.raw_status, None, "X6 maps exactly");
    assert_eq!(
        change.location.as_ref().and_then(|l| l.state.as_deref()),
        Some("GA")
    );
}

#[test]
fn interchanges_with_their_own_delimiters_follow_each_other_in_one_body() {
    let pipe = Layout {
        terminator: '|',
        after: "\r\n",
        component: ':',
        ..TILDE
    };
    let first = status_body(&[AT7_IN_TRANSIT]);
    let mut second = status_body(&["AT7*D1*NS***20240802*1015*UT"]);
    *second.last_mut().unwrap() = "IEA*1*000000202".into();
    let mut bytes = interchange(TILDE, "RELAY", "101", &first).into_bytes();
    bytes.extend_from_slice(b"\r\n\r\n");
    bytes.extend_from_slice(interchange(pipe, "OTHER", "202", &second).as_bytes());

    let transformed = lenient(&bytes);
    assert_eq!(transformed.warnings, []);
    let ids: Vec<&str> = transformed
        .events
        .iter()
        .map(|e| e.source_event_id.as_str())
        .collect();
    assert_eq!(ids, ["000000101-7-0001", "000000202-7-0001"]);
    assert_eq!(
        transformed.events[1].event_id,
        canonical::event_id("relay", "000000202-7-0001", 1),
        "positions count AT7s across the body"
    );
    assert_eq!(transformed.events[1].event_type(), "shipment.delivered");
    let key = inspect(&bytes, &Options::default()).unwrap();
    assert_eq!(key.delivery_id, None, "ingress falls back to the body hash");
    assert_eq!(
        key.payload_hash,
        Some(crate::idempotency::sha256_tag(&bytes))
    );
}

#[test]
fn several_groups_and_sets_per_interchange_are_all_read() {
    let segments = lines(&[
        "GS*QM*RELAY*RECEIVER*20240801*1200*7*X*004010",
        "ST*214*0001",
        "B10*PRO1**ABCD",
        "AT7*AF*NS***20240801*0800*UT",
        "SE*4*0001",
        "ST*214*0002",
        "B10*PRO2**ABCD",
        "LX*1",
        "AT7*X4*NS***20240801*0900*UT",
        "LX*2",
        "AT7*AV*NS***20240801*1000*UT",
        "SE*7*0002",
        "GE*2*7",
        "GS*IM*RELAY*RECEIVER*20240801*1200*8*X*004010",
        "ST*210*0001",
        "B3**INV1*PRO1*PP**20240801*1000",
        "L1*1***1000****400",
        "SE*4*0001",
        "GE*1*8",
        "IEA*2*000000101",
    ]);
    let transformed = lenient(&body(TILDE, &segments));
    assert_eq!(transformed.warnings, []);
    let summary: Vec<(&str, &str, &str)> = transformed
        .events
        .iter()
        .map(|e| {
            (
                e.event_type(),
                e.shipment.tracking_number.as_str(),
                e.source_event_id.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("shipment.status_changed", "PRO1", "000000101-7-0001"),
            ("shipment.status_changed", "PRO2", "000000101-7-0002"),
            ("shipment.status_changed", "PRO2", "000000101-7-0002"),
            ("freight_invoice.received", "PRO1", "000000101-8-0001"),
        ]
    );
    let statuses: Vec<ShipmentStatus> = transformed.events[..3]
        .iter()
        .map(|e| status_change(e).status)
        .collect();
    assert_eq!(
        statuses,
        [
            ShipmentStatus::PickedUp,
            ShipmentStatus::InTransit,
            ShipmentStatus::OutForDelivery
        ]
    );
    assert_ne!(
        transformed.events[1].event_id,
        transformed.events[2].event_id
    );
}

#[test]
fn space_padded_elements_count_as_empty() {
    let transformed = lenient(&body(
        TILDE,
        &status_body_with(
            &["B10*  *SHIP9*ABCD  "],
            &["AT7*X6*  *  *  *20240801*0930*  ", "MS1*  *GA*US"],
        ),
    ));
    let event = &transformed.events[0];
    assert_eq!(
        event.shipment.tracking_number, "SHIP9",
        "B1001 blank: B1002"
    );
    assert_eq!(event.shipment.carrier.as_deref(), Some("ABCD"));
    assert_eq!(event.occurred_at, time("2024-08-01T09:30:00Z"), "no AT707");
    let change = status_change(event);
    assert_eq!(
        change.status,
        ShipmentStatus::InTransit,
        "AT702 blank is normal"
    );
    assert_eq!(change.location.as_ref().unwrap().city, None);
}

// ---------------------------------------------------------------------------------------------
// Envelope checks

#[test]
fn envelope_mismatches_warn_when_lenient_and_refuse_when_strict() {
    // (check, segment to replace, replacement)
    let cases = [
        ("SE01", "SE*6*0001", "SE*5*0001"),
        ("SE01", "SE*6*0001", "SE*six*0001"),
        ("SE02", "SE*6*0001", "SE*6*0002"),
        ("GE01", "GE*1*7", "GE*2*7"),
        ("GE02", "GE*1*7", "GE*1*8"),
        ("IEA01", "IEA*1*000000101", "IEA*3*000000101"),
        ("IEA02", "IEA*1*000000101", "IEA*1*000000999"),
        (
            "GS01",
            "GS*QM*RELAY*RECEIVER*20240801*1200*7*X*004010",
            "GS*IM*RELAY*RECEIVER*20240801*1200*7*X*004010",
        ),
        ("AT707", AT7_IN_TRANSIT, "AT7*X6*NS***20240801*0930*QQ"),
        ("AT705", AT7_IN_TRANSIT, "AT7*X6*NS****0930*ET"),
    ];
    let valid = status_body(&[AT7_IN_TRANSIT, MS1_ATLANTA]);
    assert_eq!(lenient(&body(TILDE, &valid)).warnings, []);
    for (check, from, to) in cases {
        let edited: Vec<String> = valid
            .iter()
            .map(|s| if s == from { to.to_owned() } else { s.clone() })
            .collect();
        assert_ne!(edited, valid, "{check}: the edit applies");
        let bytes = body(TILDE, &edited);

        let transformed = lenient(&bytes);
        assert_eq!(checks_of(&transformed.warnings), [check]);
        assert_eq!(
            transformed.events.len(),
            1,
            "{check}: the event still goes through"
        );

        let reason = malformed_reason(inspect(&bytes, &strict()).unwrap_err());
        assert!(
            reason.starts_with(&format!("{check} check failed")),
            "{reason}"
        );
    }
}

#[test]
fn padded_and_unpadded_control_numbers_agree() {
    let segments = lines(&[
        "GS*QM*RELAY*RECEIVER*20240801*1200*000000007*X*004010",
        "ST*214*0001",
        "B10*PRO1**ABCD",
        AT7_IN_TRANSIT,
        "SE*0000000004*00001",
        "GE*000001*7",
        "IEA*00001*101",
    ]);
    let transformed = transform(
        &webhook_for(&body(TILDE, &segments)),
        &body(TILDE, &segments),
        &strict(),
    )
    .unwrap();
    assert_eq!(transformed.warnings, []);
}

#[test]
fn broken_structure_is_malformed_whatever_the_mode() {
    let valid = status_body(&[AT7_IN_TRANSIT]);
    let without = |id: &str| -> Vec<String> {
        valid
            .iter()
            .filter(|s| !s.starts_with(id))
            .cloned()
            .collect()
    };
    let mut data_outside_set = valid.clone();
    data_outside_set.insert(1, "B10*PRO*X*ABCD".into());
    let mut nested_st = valid.clone();
    nested_st.insert(3, "ST*214*0002".into());
    let mut bad_id = valid.clone();
    bad_id.insert(3, "b10*PRO".into());

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty body", Vec::new(), "no ISA"),
        ("only layout", b"\xEF\xBB\xBF \r\n".to_vec(), "no ISA"),
        (
            "not X12",
            b"{\"id\": 1}".to_vec(),
            "expected an ISA segment at byte 0",
        ),
        (
            "short ISA",
            isa(TILDE, "RELAY", "1").as_bytes()[..80].to_vec(),
            "shorter",
        ),
        ("no IEA", body(TILDE, &without("IEA")), "has no IEA"),
        (
            "no SE",
            body(TILDE, &without("SE")),
            "before its SE trailer",
        ),
        (
            "no GE",
            body(TILDE, &without("GE")),
            "before its GE trailer",
        ),
        ("no GS", body(TILDE, &without("GS")), "out of place"),
        (
            "data outside a set",
            body(TILDE, &data_outside_set),
            "segment 3 (B10) is out of place",
        ),
        (
            "ST inside a set",
            body(TILDE, &nested_st),
            "segment 5 (ST) is out of place",
        ),
        (
            "lower-case segment id",
            body(TILDE, &bad_id),
            "segment 5 has no valid segment id",
        ),
        (
            "trailing garbage",
            [body(TILDE, &valid), b"garbage".to_vec()].concat(),
            "expected an ISA segment",
        ),
        (
            "same element and segment delimiter",
            body(
                Layout {
                    terminator: '*',
                    ..TILDE
                },
                &valid,
            ),
            "unusable delimiters",
        ),
        (
            "letter as delimiter",
            body(
                Layout {
                    component: 'X',
                    ..TILDE
                },
                &valid,
            ),
            "unusable delimiters",
        ),
        (
            "no B10",
            body(TILDE, &status_body_with(&[], &[AT7_IN_TRANSIT])),
            "has no B10",
        ),
        (
            "AT7 without status",
            body(TILDE, &status_body(&["AT7*****20240801*0930"])),
            "neither AT701 nor AT703",
        ),
        (
            "bad AT705",
            body(TILDE, &status_body(&["AT7*X6*NS***2024AUG1*0930"])),
            "AT705 at segment 6 is not a CCYYMMDD date",
        ),
        (
            "bad AT706",
            body(TILDE, &status_body(&["AT7*X6*NS***20240801*9930"])),
            "AT706 at segment 6",
        ),
    ];
    for (name, bytes, expected) in cases {
        for options in [Options::default(), strict()] {
            let reason = malformed_reason(inspect(&bytes, &options).unwrap_err());
            assert!(reason.contains(expected), "{name}: {reason}");
        }
    }
}

#[test]
fn error_messages_point_at_positions_never_at_partner_values() {
    let secret = "SECRETVALUE";
    let bodies = [
        body(
            TILDE,
            &status_body(&[&format!("AT7*X6*NS***{secret}*0930")]),
        ),
        body(
            TILDE,
            &status_body(&[&format!("AT7*X6*NS***20240801*{secret}")]),
        ),
        body(
            TILDE,
            &invoice_body(&[&format!("B3**INV*PRO*PP**{secret}*100")]),
        ),
        body(
            TILDE,
            &invoice_body(&[&format!("B3**INV*PRO*PP**20240801*{secret}")]),
        ),
        body(
            TILDE,
            &invoice_body(&["B3**INV*PRO*PP**20240801*100", &format!("C3*{secret}")]),
        ),
        body(
            TILDE,
            &invoice_body(&["B3**INV*PRO*PP**20240801*100", &format!("L1*1***{secret}")]),
        ),
        body(TILDE, &[format!("{secret}*1")]),
    ];
    for bytes in bodies {
        for options in [Options::default(), strict()] {
            let error = inspect(&bytes, &options).unwrap_err();
            assert!(!error.to_string().contains(secret), "{error}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 214 statuses

/// (AT701, AT702, milestone, status, detail, raw_status)
type StatusCase = (
    &'static str,
    Option<&'static str>,
    Milestone,
    ShipmentStatus,
    &'static str,
    Option<&'static str>,
);

#[test]
fn status_codes_map_to_canonical_statuses_per_the_table() {
    use ShipmentStatus::*;
    let delivered = ShipmentStatus::Delivered;
    let cases: [StatusCase; 22] = [
        (
            "XB",
            Some("NS"),
            Milestone::Status(Booked),
            Booked,
            "shipment_acknowledged",
            Some("XB"),
        ),
        (
            "AF",
            None,
            Milestone::Status(PickedUp),
            PickedUp,
            "departed_pickup_location",
            None,
        ),
        (
            "CP",
            Some("NS"),
            Milestone::Status(PickedUp),
            PickedUp,
            "loading_completed_at_pickup",
            Some("CP"),
        ),
        (
            "AM",
            None,
            Milestone::Status(PickedUp),
            PickedUp,
            "loaded_on_truck",
            Some("AM"),
        ),
        (
            "L1",
            None,
            Milestone::Status(PickedUp),
            PickedUp,
            "loading",
            Some("L1"),
        ),
        (
            "X4",
            None,
            Milestone::Status(InTransit),
            InTransit,
            "arrived_at_terminal",
            Some("X4"),
        ),
        (
            "P1",
            None,
            Milestone::Status(InTransit),
            InTransit,
            "departed_terminal",
            Some("P1"),
        ),
        (
            "X6",
            None,
            Milestone::Status(InTransit),
            InTransit,
            "en_route_to_delivery_location",
            None,
        ),
        (
            "AJ",
            None,
            Milestone::Status(OutForDelivery),
            OutForDelivery,
            "tendered_for_delivery",
            Some("AJ"),
        ),
        (
            "AW",
            None,
            Milestone::Status(OutForDelivery),
            OutForDelivery,
            "available_for_pickup",
            Some("AW"),
        ),
        (
            "D1",
            Some("NS"),
            Milestone::Delivered,
            delivered,
            "completed_unloading_at_delivery_location",
            None,
        ),
        (
            "CB",
            None,
            Milestone::Delivered,
            delivered,
            "completed_shipment",
            Some("CB"),
        ),
        (
            "SD",
            None,
            Milestone::Status(Delayed),
            Delayed,
            "shipment_delayed",
            None,
        ),
        (
            "AH",
            Some("AG"),
            Milestone::Status(Exception),
            Exception,
            "delivery_attempted; consignee_related",
            Some("AH/AG"),
        ),
        (
            "A7",
            None,
            Milestone::Status(Exception),
            Exception,
            "refused_by_consignee",
            Some("A7"),
        ),
        (
            "A9",
            None,
            Milestone::Status(Exception),
            Exception,
            "shipment_damaged",
            Some("A9"),
        ),
        (
            "A3",
            None,
            Milestone::Status(Returned),
            Returned,
            "returned_to_shipper",
            None,
        ),
        (
            "CA",
            Some("BT"),
            Milestone::Status(Cancelled),
            Cancelled,
            "shipment_cancelled; returned_to_shipper",
            Some("CA/BT"),
        ),
        // A reason on a progress code: late.
        (
            "X6",
            Some("AO"),
            Milestone::Status(InTransit),
            Delayed,
            "en_route_to_delivery_location; weather_or_natural_disaster",
            Some("X6/AO"),
        ),
        (
            "AF",
            Some("ZZ"),
            Milestone::Status(PickedUp),
            Delayed,
            "departed_pickup_location; reason_ZZ",
            Some("AF/ZZ"),
        ),
        // Estimates: no status of their own.
        (
            "AG",
            Some("NS"),
            Milestone::Eta,
            InTransit,
            "estimated_delivery",
            Some("AG"),
        ),
        (
            "Q9",
            None,
            Milestone::Status(Exception),
            Exception,
            "unknown_status_code",
            Some("Q9"),
        ),
    ];
    for (code, reason, milestone, status, detail, raw) in cases {
        let mapping = map_status(code, reason);
        assert_eq!(
            mapping,
            StatusMapping {
                milestone,
                status,
                status_detail: detail.into(),
                raw_status: raw.map(str::to_owned),
            },
            "{code}/{reason:?}"
        );
    }
    assert_eq!(
        map_status("AG", Some("AI")).status,
        Delayed,
        "a late estimate"
    );
    assert_eq!(
        map_status("D1", Some("A1")).status,
        delivered,
        "delivered stays delivered"
    );
}

#[test]
fn estimates_report_in_transit_with_the_eta_and_the_group_time() {
    let transformed = lenient(&body(
        TILDE,
        &status_body(&["AT7*AG*NS***20240803*1700*CT", MS1_ATLANTA]),
    ));
    let event = &transformed.events[0];
    assert_eq!(event.occurred_at, time("2024-08-01T12:00:00Z"), "GS04/GS05");
    let change = status_change(event);
    assert_eq!(change.status, ShipmentStatus::InTransit);
    assert_eq!(change.eta, Some(time("2024-08-03T22:00:00Z")), "17:00 CDT");
    assert_eq!(change.raw_status.as_deref(), Some("AG"));
}

#[test]
fn appointment_statuses_keep_their_code() {
    let transformed = lenient(&body(
        TILDE,
        &status_body(&["AT7***AA*NS*20240801*0800*UT"]),
    ));
    let change = status_change(&transformed.events[0]);
    assert_eq!(change.status, ShipmentStatus::InTransit);
    assert_eq!(change.status_detail.as_deref(), Some("appointment"));
    assert_eq!(change.raw_status.as_deref(), Some("AA/NS"));
}

#[test]
fn reference_is_the_shipper_id_or_a_bill_of_lading() {
    let cases = [
        (vec!["B10*PRO1*LOAD77*ABCD"], Some("LOAD77")),
        (
            vec!["B10*PRO1*PRO1*ABCD", "L11*REF9*CR", "L11*BOL5*BM"],
            Some("BOL5"),
        ),
        (vec!["B10*PRO1**ABCD", "L11*PO3*PO"], Some("PO3")),
        (vec!["B10*PRO1**ABCD", "L11*X*97", "L11*PRO1*BM"], None),
    ];
    for (header, expected) in cases {
        let transformed = lenient(&body(TILDE, &status_body_with(&header, &[AT7_IN_TRANSIT])));
        let shipment = &transformed.events[0].shipment;
        assert_eq!(shipment.tracking_number, "PRO1");
        assert_eq!(shipment.reference.as_deref(), expected, "{header:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// 210 invoices

#[test]
fn invoice_defaults_fill_what_the_set_leaves_out() {
    let segments = invoice_body(&["B3**INV7**CC**240802*-250", "L1*1***-250"]);
    let transformed = transform(
        &webhook_for(&body(TILDE, &segments)),
        &body(TILDE, &segments),
        &Options {
            default_currency: "CAD".into(),
            ..Options::default()
        },
    )
    .unwrap();
    let event = &transformed.events[0];
    assert_eq!(
        event.shipment.tracking_number, "INV7",
        "no B303: the invoice number"
    );
    assert_eq!(
        event.shipment.carrier.as_deref(),
        Some("RELAY"),
        "no B311: ISA06"
    );
    let invoice = invoice(event);
    assert_eq!(invoice.issued_on, date("2024-08-02"), "YYMMDD");
    assert_eq!(invoice.currency, "CAD");
    assert_eq!(invoice.total, money("-2.50"));
    assert_eq!(invoice.delivered_on, None);
    assert_eq!(invoice.references, []);
    assert_eq!(
        invoice.lines,
        [ChargeLine {
            kind: ChargeKind::Discount,
            code: None,
            description: None,
            amount: money("-2.50"),
        }]
    );
}

#[test]
fn invoice_totals_that_disagree_warn_or_refuse() {
    let cases = [
        (
            "lines against L305",
            vec![
                "B3**INV*PRO*PP**20240801*1500",
                "L1*1***1000****400",
                "L1*2***400****FUE",
                "L3*****1500",
            ],
            vec!["L305"],
        ),
        (
            "L305 against B307",
            vec![
                "B3**INV*PRO*PP**20240801*1500",
                "L1*1***1400****400",
                "L3*****1400",
            ],
            vec!["B307"],
        ),
        (
            "lines against B307 without L3",
            vec!["B3**INV*PRO*PP**20240801*1500", "L1*1***1400****400"],
            vec!["B307"],
        ),
        (
            "line without a charge",
            vec![
                "B3**INV*PRO*PP**20240801*1500",
                "L1*1*15.00*FR",
                "L1*2***1500****400",
            ],
            vec!["L104"],
        ),
        (
            "all agree",
            vec![
                "B3**INV*PRO*PP**20240801*1500",
                "L1*1***1100****400",
                "L1*2***400****FUE",
                "L3*****1500",
            ],
            vec![],
        ),
    ];
    for (name, inner, checks) in cases {
        let bytes = body(TILDE, &invoice_body(&inner));
        let transformed = lenient(&bytes);
        assert_eq!(checks_of(&transformed.warnings), checks, "{name}");
        let strict = inspect(&bytes, &strict());
        match checks.first() {
            Some(check) => {
                let reason = malformed_reason(strict.unwrap_err());
                assert!(
                    reason.starts_with(&format!("{check} check failed")),
                    "{name}: {reason}"
                );
            }
            None => assert!(strict.is_ok(), "{name}"),
        }
    }
}

#[test]
fn charge_kinds_come_from_the_partner_table_then_the_defaults_then_the_sign() {
    let options = Options::from_table(
        &toml::from_str(
            r#"
            [charge_codes]
            "295" = "discount"
            "SAC" = "other"
            "400" = "accessorial"
            "#,
        )
        .unwrap(),
    )
    .unwrap();
    let cases = [
        (
            Some("400"),
            "10.00",
            ChargeKind::Accessorial,
            "the partner overrides a default",
        ),
        (Some("295"), "12.74", ChargeKind::Discount, "partner table"),
        (Some("SAC"), "1.00", ChargeKind::Other, "partner table"),
        (Some("FUE"), "25.48", ChargeKind::FuelSurcharge, "default"),
        (
            Some("FUE"),
            "-0.20",
            ChargeKind::FuelSurcharge,
            "a fuel credit is still fuel",
        ),
        (Some("405"), "4.00", ChargeKind::FuelSurcharge, "default"),
        (Some("TAX"), "3.10", ChargeKind::Tax, "default"),
        (
            Some("CDF"),
            "-167.88",
            ChargeKind::Discount,
            "unknown and negative",
        ),
        (
            Some("AAJ"),
            "5.00",
            ChargeKind::Accessorial,
            "unknown and positive",
        ),
        (
            Some("AAJ"),
            "0.00",
            ChargeKind::Accessorial,
            "zero is not a discount",
        ),
        (None, "5.00", ChargeKind::Other, "no code"),
        (None, "-5.00", ChargeKind::Discount, "no code, negative"),
    ];
    for (code, amount, kind, why) in cases {
        assert_eq!(
            options.charge_kind(code, money(amount)),
            kind,
            "{code:?} {amount}: {why}"
        );
    }
    assert_eq!(
        Options::default().charge_kind(Some("400"), money("1")),
        ChargeKind::BaseFreight
    );
}

// ---------------------------------------------------------------------------------------------
// Options and adapter wiring

#[test]
fn options_are_read_from_the_partners_file() {
    let file = PartnersFile::parse(
        r#"
        [[partner]]
        id = "relay"
        format = "x12"
        [partner.signature]
        scheme = "hmac-sha256"
        secrets = ["local-secret"]
        header = "x-signature"
        prefix = "sha256="
        [partner.options]
        strict = true
        default_currency = "cad"
        local_time_zone = "America/Chicago"
        [partner.options.charge_codes]
        "295" = "discount"
        "#,
    )
    .unwrap();
    let cfg = file.get("relay").unwrap();
    let options = Options::from_table(&cfg.options).unwrap();
    assert_eq!(
        options,
        Options {
            strict: true,
            default_currency: "CAD".into(),
            charge_codes: [("295".to_owned(), ChargeKind::Discount)].into(),
            local_time_zone: chrono_tz::Tz::America__Chicago,
        }
    );
    let adapter = Adapter::from_config(cfg).unwrap();
    assert_eq!(adapter.format(), Format::X12);
    // The partner is strict: the UPS miscount is refused at ingress and in the transform.
    assert!(adapter.inspect(UPS_210).is_err());
    assert!(adapter.to_canonical(&webhook_for(UPS_210)).is_err());
    assert!(
        Adapter::new(Format::X12).inspect(UPS_210).is_ok(),
        "default: lenient"
    );
    assert_eq!(
        adapter
            .to_canonical(&webhook_for(CANADAPOST_214))
            .unwrap()
            .len(),
        19
    );
}

#[test]
fn bad_options_are_configuration_errors() {
    let cases = [
        ("strcit = true", "unknown field"),
        ("strict = \"yes\"", "invalid x12 options"),
        ("default_currency = \"DOLLARS\"", "three-letter"),
        (
            "[charge_codes]\n\"400\" = \"freight\"",
            "invalid x12 options",
        ),
        ("[charge_codes]\n\" \" = \"tax\"", "empty code"),
        (
            "local_time_zone = \"Central\"",
            "not an IANA time zone name",
        ),
        (
            "local_time_zone = \"america/chicago\"",
            "not an IANA time zone name",
        ),
        ("local_time_zone = \"-06:00\"", "not an IANA time zone name"),
        ("local_time_zone = \"\"", "not an IANA time zone name"),
        ("local_time_zone = 6", "invalid x12 options"),
    ];
    for (text, expected) in cases {
        let table: toml::Table = toml::from_str(text).unwrap();
        let error = Options::from_table(&table).unwrap_err();
        assert!(error.contains(expected), "{text}: {error}");
    }
    assert_eq!(
        Options::from_table(&toml::Table::new()).unwrap(),
        Options::default()
    );
}

fn partner_with_options(options: &str) -> PartnersFile {
    PartnersFile::parse(&format!(
        r#"
        [[partner]]
        id = "relay"
        format = "x12"
        [partner.signature]
        scheme = "hmac-sha256"
        secrets = ["local-secret"]
        header = "x-signature"
        prefix = "sha256="
        [partner.options]
        {options}
        "#
    ))
    .unwrap()
}

#[test]
fn an_unknown_local_time_zone_is_refused_when_the_partners_file_is_loaded() {
    let file = partner_with_options("local_time_zone = \"US/Centrall\"");
    let error = Adapter::from_config(file.get("relay").unwrap()).unwrap_err();
    assert!(
        matches!(&error, crate::config::ConfigError::Partner { partner, .. } if partner == "relay"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "partner relay: local_time_zone \"US/Centrall\" is not an IANA time zone name such as \
         \"America/Chicago\""
    );
    let registry = crate::ingress::Registry::build(&file, crate::config::resolve_local);
    assert!(registry.is_err(), "the registry refuses it too");

    let file = partner_with_options("local_time_zone = \"America/Chicago\"");
    assert!(Adapter::from_config(file.get("relay").unwrap()).is_ok());
}

#[test]
fn local_times_use_the_partners_zone_and_zone_codes_their_own() {
    // (AT707, local_time_zone option, expected occurred_at) for AT7 on 2024-08-01 at 09:30.
    let cases = [
        ("LT", None, "2024-08-01T09:30:00Z"),
        ("", None, "2024-08-01T09:30:00Z"),
        ("LT", Some("America/Chicago"), "2024-08-01T14:30:00Z"),
        ("", Some("America/Chicago"), "2024-08-01T14:30:00Z"),
        ("LT", Some("America/New_York"), "2024-08-01T13:30:00Z"),
        ("ET", None, "2024-08-01T13:30:00Z"),
        ("ET", Some("America/Los_Angeles"), "2024-08-01T13:30:00Z"),
        ("ES", Some("America/Chicago"), "2024-08-01T14:30:00Z"),
        ("UT", Some("America/Chicago"), "2024-08-01T09:30:00Z"),
    ];
    for (code, zone, expected) in cases {
        let options = zone.map_or(String::new(), |zone| {
            format!("local_time_zone = \"{zone}\"")
        });
        let file = partner_with_options(&options);
        let adapter = Adapter::from_config(file.get("relay").unwrap()).unwrap();
        let at7 = format!("AT7*X6*NS***20240801*0930*{code}");
        let bytes = body(TILDE, &status_body(&[&at7, MS1_ATLANTA]));
        let events = adapter.to_canonical(&webhook_for(&bytes)).unwrap();
        assert_eq!(
            events[0].occurred_at,
            time(expected),
            "{code:?} in {zone:?}"
        );
    }
}

#[test]
fn the_group_time_of_an_estimate_is_read_in_the_partners_zone() {
    // GS04/GS05 is 2024-08-01 12:00 on the sender's clock; the estimate itself says CT.
    let bytes = body(
        TILDE,
        &status_body(&["AT7*AG*NS***20240803*1700*CT", MS1_ATLANTA]),
    );
    let options = Options {
        local_time_zone: chrono_tz::Tz::America__Denver,
        ..Options::default()
    };
    let event = &transform(&webhook_for(&bytes), &bytes, &options)
        .unwrap()
        .events[0];
    assert_eq!(event.occurred_at, time("2024-08-01T18:00:00Z"));
    assert_eq!(status_change(event).eta, Some(time("2024-08-03T22:00:00Z")));
}

#[test]
fn x12_is_a_configurable_format_with_edi_content_types() {
    assert_eq!(Format::parse("x12"), Some(Format::X12));
    assert_eq!(Format::X12.name(), "x12");
    assert_eq!(
        Format::X12.default_content_types(),
        ["application/edi-x12", "text/plain"]
    );
}

#[test]
fn bodies_without_214_or_210_sets_pass_ingress_but_give_no_events() {
    let segments = lines(&[
        "GS*FA*RELAY*RECEIVER*20240801*1200*9*X*004010",
        "ST*997*0001",
        "AK1*QM*7",
        "AK9*A*1*1*1",
        "SE*4*0001",
        "GE*1*9",
        "IEA*1*000000101",
    ]);
    let bytes = body(TILDE, &segments);
    assert!(inspect(&bytes, &strict()).is_ok());
    let error = transform(&webhook_for(&bytes), &bytes, &Options::default()).unwrap_err();
    assert_eq!(error.code(), "unsupported_event");
    assert!(
        error.to_string().contains("other than 214 and 210"),
        "{error}"
    );

    let empty = body(TILDE, &lines(&["IEA*0*000000101"]));
    assert!(inspect(&empty, &strict()).is_ok());
    let error = transform(&webhook_for(&empty), &empty, &Options::default()).unwrap_err();
    assert!(
        error.to_string().contains("without transaction sets"),
        "{error}"
    );
}

#[test]
fn a_replayed_body_gives_the_same_events() {
    let first = lenient(CANADAPOST_214).events;
    let again = lenient(CANADAPOST_214).events;
    assert_eq!(first, again);
    let ids: std::collections::HashSet<_> = first.iter().map(|e| e.event_id).collect();
    assert_eq!(ids.len(), first.len());
}

// ---------------------------------------------------------------------------------------------
// Demo samples and the local partner

const DEMO_PARTNERS: &str = include_str!("../../../../events/partners.local.toml");
const DEMO_214: &[u8] = include_bytes!("../../../../events/partners/x12-214-shipment-status.edi");
const DEMO_210: &[u8] = include_bytes!("../../../../events/partners/x12-210-freight-invoice.edi");

fn demo_partner() -> PartnersFile {
    let file = PartnersFile::parse(DEMO_PARTNERS).unwrap();
    PartnersFile {
        partner: vec![file.get("x12").unwrap().clone()],
    }
}

#[test]
fn demo_samples_are_signed_accepted_and_identified_at_ingress() {
    use crate::config::resolve_local;
    use crate::ingress::Registry;
    use crate::signature::{Scheme, sign};

    let partners = demo_partner();
    let cfg = &partners.partner[0];
    assert_eq!(cfg.signature.scheme, "hmac-sha256");
    let registry = Registry::build(&partners, resolve_local).unwrap();
    let scheme = Scheme::from_config(&cfg.signature).unwrap();
    let secret =
        resolve_local(&crate::config::SecretRef::parse(&cfg.signature.secrets[0]).unwrap())
            .unwrap();
    let now = time("2024-08-05T09:00:00Z");
    for (body, delivery_id) in [
        (DEMO_214, "x12:FBRELAY:000000501"),
        (DEMO_210, "x12:FBRELAY:000000502"),
    ] {
        let mut headers = http::HeaderMap::new();
        for (name, value) in sign(&scheme, &secret, body, now, "m").unwrap() {
            assert_eq!(name, "x-signature");
            assert!(value.starts_with("sha256="), "{value}");
            headers.insert(
                http::HeaderName::try_from(name).unwrap(),
                http::HeaderValue::try_from(value).unwrap(),
            );
        }
        headers.insert(
            "content-type",
            http::HeaderValue::from_static("application/edi-x12"),
        );
        let accepted = registry.evaluate("x12", &headers, None, body, now).unwrap();
        assert_eq!(accepted.format, Format::X12);
        assert_eq!(accepted.delivery_id, delivery_id);
    }
}

/// (status, raw status, occurred at, eta)
type StatusSummary<'a> = (
    ShipmentStatus,
    Option<&'a str>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

#[test]
fn demo_214_sample_reports_pickup_transit_estimate_and_weather_delay() {
    let adapter = Adapter::from_config(&demo_partner().partner[0]).unwrap();
    let events = adapter.to_canonical(&webhook_for(DEMO_214)).unwrap();
    let strict_ok = inspect(DEMO_214, &strict());
    assert!(strict_ok.is_ok(), "{strict_ok:?}");
    let summary: Vec<StatusSummary> = events
        .iter()
        .map(|e| {
            let change = status_change(e);
            (
                change.status,
                change.raw_status.as_deref(),
                e.occurred_at,
                change.eta,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                ShipmentStatus::PickedUp,
                None,
                time("2024-08-01T12:15:00Z"),
                None
            ),
            (
                ShipmentStatus::InTransit,
                None,
                time("2024-08-01T17:30:00Z"),
                None
            ),
            (
                ShipmentStatus::InTransit,
                Some("AG"),
                time("2024-08-02T10:05:00Z"),
                Some(time("2024-08-02T20:00:00Z"))
            ),
            (
                ShipmentStatus::Delayed,
                Some("X1/AO"),
                time("2024-08-02T13:30:00Z"),
                None
            ),
        ]
    );
    for event in &events {
        assert_eq!(event.shipment.tracking_number, "PRO7781234");
        assert_eq!(event.shipment.carrier.as_deref(), Some("ABCD"));
        assert_eq!(event.shipment.reference.as_deref(), Some("WH/OUT/00042"));
    }
}

#[test]
fn demo_210_sample_bills_freight_fuel_liftgate_and_a_discount() {
    let adapter = Adapter::from_config(&demo_partner().partner[0]).unwrap();
    let events = adapter.to_canonical(&webhook_for(DEMO_210)).unwrap();
    let strict_ok = inspect(DEMO_210, &strict());
    assert!(strict_ok.is_ok(), "{strict_ok:?}");
    let [event] = events.as_slice() else {
        panic!("{events:?}")
    };
    assert_eq!(event.shipment.tracking_number, "PRO7781234");
    assert_eq!(event.shipment.reference.as_deref(), Some("SO-00042"));
    let invoice = invoice(event);
    assert_eq!(invoice.number, "INV-20240805-17");
    assert_eq!(invoice.total, money("216.75"));
    assert_eq!(invoice.delivered_on, Some(date("2024-08-02")));
    let lines: Vec<(ChargeKind, &str, Option<&str>, Decimal)> = invoice
        .lines
        .iter()
        .map(|l| {
            (
                l.kind,
                l.code.as_deref().unwrap(),
                l.description.as_deref(),
                l.amount,
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            (ChargeKind::BaseFreight, "400", None, money("161.50")),
            (ChargeKind::FuelSurcharge, "FUE", None, money("28.26")),
            (
                ChargeKind::Accessorial,
                "LFT",
                Some("LIFTGATE DELIVERY"),
                money("45.00")
            ),
            (
                ChargeKind::Discount,
                "DSC",
                Some("CONTRACT DISCOUNT"),
                money("-18.01")
            ),
        ]
    );
}
