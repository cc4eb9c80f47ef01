//! The published JSON Schema (`schema/freightbridge.canonical.v1.schema.json`) must accept every
//! event the adapters produce and refuse anything the model cannot produce, so that the document
//! consumers read and the Rust types cannot drift apart unnoticed.

use std::path::PathBuf;

use jsonschema::Validator;
use serde_json::{Value, json};

use crate::canonical::{
    self, CanonicalEvent, Delivery, EventBody, Location, Money, ProofOfDelivery, ShipmentRef,
    ShipmentStatus, StatusChange,
};
use crate::partners::{self, Format};
use crate::webhook::{ReceivedWebhook, WebhookBody, ingress_id};

fn schema() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../schema/freightbridge.canonical.v1.schema.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn validator() -> Validator {
    jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema())
        .unwrap()
}

fn assert_valid(validator: &Validator, event: &Value) {
    let errors: Vec<String> = validator
        .iter_errors(event)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}\nin {event:#}");
}

fn every_status() -> Vec<ShipmentStatus> {
    use ShipmentStatus::*;
    let all = ShipmentStatus::ALL.to_vec();
    // A new status fails to compile here: add it to `ShipmentStatus::ALL` and the schema too.
    for status in &all {
        match status {
            Booked | PickedUp | InTransit | Delayed | OutForDelivery | Delivered | Exception
            | Returned | Cancelled => {}
        }
    }
    all
}

fn easypost_events(body: &[u8]) -> Vec<CanonicalEvent> {
    let webhook = ReceivedWebhook {
        ingress_id: ingress_id("easypost", "evt_schema"),
        partner: "easypost".into(),
        format: "easypost".into(),
        delivery_id: "evt_schema".into(),
        received_at: "2024-08-02T19:26:53.123456Z".parse().unwrap(),
        content_type: Some("application/json".into()),
        body: WebhookBody::from_bytes(body),
    };
    partners::to_canonical(Format::EasyPost, &webhook).unwrap()
}

/// Events from the partner fixtures and demo samples, plus edited variants for every branch of
/// the EasyPost status table.
fn produced_events() -> Vec<Value> {
    let in_transit: Value = serde_json::from_str(include_str!(
        "../../tests/fixtures/partners/easypost-tracker-updated-in-transit.json"
    ))
    .unwrap();
    let tracker: Value = serde_json::from_str(include_str!(
        "../../tests/fixtures/partners/easypost-tracker-object-pre-transit.json"
    ))
    .unwrap();
    let pre_transit = json!({
        "id": "evt_pre",
        "object": "Event",
        "description": "tracker.created",
        "result": tracker,
    });
    let delivered_sample = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../events/partners/easypost-tracker-delivered.json"),
    )
    .unwrap();

    let mut bodies = vec![in_transit.clone(), pre_transit];
    for status in [
        "out_for_delivery",
        "available_for_pickup",
        "delivered",
        "return_to_sender",
        "failure",
        "cancelled",
        "error",
        "unknown",
        "lost_in_space",
    ] {
        let mut body = in_transit.clone();
        body["result"]["status"] = json!(status);
        bodies.push(body);
    }
    let mut without_place = in_transit.clone();
    without_place["result"]["tracking_details"] = json!([]);
    without_place["result"]["est_delivery_date"] = Value::Null;
    without_place["result"]["carrier"] = Value::Null;
    bodies.push(without_place);

    let mut events: Vec<CanonicalEvent> = bodies
        .iter()
        .flat_map(|body| easypost_events(&serde_json::to_vec(body).unwrap()))
        .collect();
    events.extend(easypost_events(&delivered_sample));
    events
        .iter()
        .map(|event| serde_json::to_value(event).unwrap())
        .collect()
}

#[test]
fn schema_is_a_valid_draft_2020_12_schema() {
    let schema = schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    jsonschema::draft202012::meta::validator()
        .validate(&schema)
        .unwrap();
}

#[test]
fn every_event_produced_from_the_fixtures_conforms() {
    let validator = validator();
    let events = produced_events();
    let types: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(types.contains(&"shipment.status_changed") && types.contains(&"shipment.delivered"));
    for event in &events {
        assert_valid(&validator, event);
    }
}

fn status_change_with(status: ShipmentStatus) -> CanonicalEvent {
    CanonicalEvent {
        schema: canonical::SCHEMA.into(),
        event_id: canonical::event_id("acme", "m-1", 3),
        partner: "acme".into(),
        source_event_id: "m-1".into(),
        correlation_id: "corr-1".into(),
        occurred_at: "2024-08-02T18:50:00Z".parse().unwrap(),
        received_at: "2024-08-02T18:50:01.5Z".parse().unwrap(),
        shipment: ShipmentRef {
            tracking_number: "T1".into(),
            carrier: None,
            reference: Some("WH/OUT/00012".into()),
        },
        body: EventBody::StatusChanged(StatusChange {
            status,
            status_detail: None,
            raw_status: None,
            location: Some(Location {
                country: Some("DE".into()),
                ..Location::default()
            }),
            message: None,
            eta: None,
        }),
    }
}

#[test]
fn every_status_the_model_has_is_in_the_schema_and_nothing_else() {
    let schema = schema();
    let listed: Vec<&str> = schema["$defs"]["shipment_status"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let model: Vec<&str> = every_status()
        .into_iter()
        .map(ShipmentStatus::as_str)
        .collect();
    assert_eq!(listed, model);

    let validator = validator();
    for status in every_status() {
        assert_valid(
            &validator,
            &serde_json::to_value(status_change_with(status)).unwrap(),
        );
    }
}

#[test]
fn every_event_type_the_model_has_is_in_the_schema() {
    let delivery = EventBody::Delivered(Delivery {
        status: ShipmentStatus::Delivered,
        status_detail: None,
        location: None,
        message: None,
        pod: ProofOfDelivery {
            signed_by: None,
            delivered_at: "2024-08-02T18:50:00Z".parse().unwrap(),
            document_url: Some("https://example.com/pod/1.pdf".into()),
        },
    });
    let change = status_change_with(ShipmentStatus::Booked).body;
    let mut model = Vec::new();
    for body in [&change, &delivery] {
        // A new body type fails to compile here until it is listed (and added to the schema).
        match body {
            EventBody::StatusChanged(_)
            | EventBody::Delivered(_)
            | EventBody::CostEstimated(_)
            | EventBody::InvoiceReceived(_)
            | EventBody::ChargeAdded(_)
            | EventBody::InvoiceMatched(_)
            | EventBody::InvoiceDisputed(_)
            | EventBody::InvoiceSettled(_) => {}
        }
        model.push(body.event_type());
    }
    let schema = schema();
    let listed: Vec<&str> = schema["properties"]["type"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    // The finance bodies are checked by `finance_events_validate` below.
    model.extend([
        "freight_cost.estimated",
        "freight_invoice.received",
        "freight_charge.added",
        "freight_invoice.matched",
        "freight_invoice.disputed",
        "freight_invoice.settled",
    ]);
    assert_eq!(listed, model);
    assert_eq!(listed, EventBody::TYPES);

    let mut event = status_change_with(ShipmentStatus::Delivered);
    event.body = delivery;
    assert_valid(&validator(), &serde_json::to_value(event).unwrap());
}

/// A change made to a valid event to break it.
type Edit<'a> = Box<dyn Fn(&mut Value) + 'a>;

#[test]
fn schema_refuses_what_the_model_cannot_produce() {
    let validator = validator();
    let change = serde_json::to_value(status_change_with(ShipmentStatus::InTransit)).unwrap();
    let mut delivered = status_change_with(ShipmentStatus::Delivered);
    delivered.body = EventBody::Delivered(Delivery {
        status: ShipmentStatus::Delivered,
        status_detail: None,
        location: None,
        message: None,
        pod: ProofOfDelivery {
            signed_by: Some("John Tester".into()),
            delivered_at: "2024-08-02T18:50:00Z".parse().unwrap(),
            document_url: None,
        },
    });
    let delivered = serde_json::to_value(delivered).unwrap();
    assert_valid(&validator, &change);
    assert_valid(&validator, &delivered);

    let remove =
        |key: &'static str| move |e: &mut Value| drop(e.as_object_mut().unwrap().remove(key));
    let cases: Vec<(&str, &Value, Edit)> = vec![
        (
            "unknown top-level key",
            &change,
            Box::new(|e| e["extra"] = json!(1)),
        ),
        (
            "missing occurred_at",
            &change,
            Box::new(remove("occurred_at")),
        ),
        (
            "missing nullable raw_status",
            &change,
            Box::new(remove("raw_status")),
        ),
        ("missing type", &change, Box::new(remove("type"))),
        (
            "other schema version",
            &change,
            Box::new(|e| e["schema"] = json!("freightbridge.canonical/v2")),
        ),
        (
            "unknown type",
            &change,
            Box::new(|e| e["type"] = json!("shipment.teleported")),
        ),
        (
            "unknown status",
            &change,
            Box::new(|e| e["status"] = json!("lost")),
        ),
        (
            "random (v4) event id",
            &change,
            Box::new(|e| e["event_id"] = json!("9f1c2a8e-53d4-4b0f-9a37-c2e10d5b7e42")),
        ),
        (
            "event id not a uuid",
            &change,
            Box::new(|e| e["event_id"] = json!("evt_1")),
        ),
        (
            "time with an offset",
            &change,
            Box::new(|e| e["occurred_at"] = json!("2024-08-02T20:50:00+02:00")),
        ),
        (
            "time without a zone",
            &change,
            Box::new(|e| e["received_at"] = json!("2024-08-02T18:50:00")),
        ),
        (
            "impossible date",
            &change,
            Box::new(|e| e["occurred_at"] = json!("2024-02-30T18:50:00Z")),
        ),
        (
            "eta as a number",
            &change,
            Box::new(|e| e["eta"] = json!(1722624600)),
        ),
        (
            "carrier as a number",
            &change,
            Box::new(|e| e["shipment"]["carrier"] = json!(7)),
        ),
        (
            "empty tracking number",
            &change,
            Box::new(|e| e["shipment"]["tracking_number"] = json!("")),
        ),
        (
            "all-unknown location",
            &change,
            Box::new(|e| {
                e["location"] =
                    json!({"city": null, "state": null, "country": null, "postal_code": null})
            }),
        ),
        (
            "location with a street",
            &change,
            Box::new(|e| e["location"]["street"] = json!("1 Main St")),
        ),
        (
            "pod on a status change",
            &change,
            Box::new(|e| e["pod"] = delivered["pod"].clone()),
        ),
        (
            "delivery that is not delivered",
            &delivered,
            Box::new(|e| e["status"] = json!("in_transit")),
        ),
        (
            "delivery without its time",
            &delivered,
            Box::new(|e| drop(e["pod"].as_object_mut().unwrap().remove("delivered_at"))),
        ),
        (
            "eta on a delivery",
            &delivered,
            Box::new(|e| e["eta"] = Value::Null),
        ),
        (
            "raw_status on a delivery",
            &delivered,
            Box::new(|e| e["raw_status"] = Value::Null),
        ),
        (
            "delivery typed as a status change",
            &delivered,
            Box::new(|e| e["type"] = json!("shipment.status_changed")),
        ),
    ];
    for (case, valid, edit) in cases {
        let mut event = valid.clone();
        edit(&mut event);
        assert!(
            !validator.is_valid(&event),
            "schema accepted {case}: {event:#}"
        );
    }
}

#[test]
fn money_definition_accepts_serialised_money_and_refuses_floats() {
    let money_schema = schema()["$defs"]["money"].clone();
    let validator = jsonschema::draft202012::new(&money_schema).unwrap();
    for (amount, currency) in [
        ("51.65", "USD"),
        ("-12.5", "EUR"),
        ("0", "JPY"),
        ("1000000.0001", "USD"),
    ] {
        let money = Money {
            amount: amount.parse().unwrap(),
            currency: currency.into(),
        };
        assert_valid(&validator, &serde_json::to_value(&money).unwrap());
    }
    for bad in [
        json!({"amount": 51.65, "currency": "USD"}),
        json!({"amount": "51,65", "currency": "USD"}),
        json!({"amount": "1e3", "currency": "USD"}),
        json!({"amount": "51.65", "currency": "usd"}),
        json!({"amount": "51.65"}),
    ] {
        assert!(!validator.is_valid(&bad), "accepted {bad}");
    }
}

#[test]
fn finance_events_validate() {
    use crate::canonical::{
        ChargeAdded, ChargeKind, ChargeLine, CostEstimate, DisputeCode, DisputeReason, Estimate,
        EstimateKind, Invoice, InvoiceDisputed, InvoiceMatched, InvoiceReceived, Party, Reference,
    };
    let line = |kind, amount: &str| ChargeLine {
        kind,
        code: Some("400".into()),
        description: None,
        amount: amount.parse().unwrap(),
    };
    let bodies = [
        EventBody::CostEstimated(CostEstimate {
            estimate: Estimate {
                kind: EstimateKind::Booking,
                currency: "USD".into(),
                total: "100.00".parse().unwrap(),
                lines: vec![line(ChargeKind::BaseFreight, "100.00")],
            },
        }),
        EventBody::InvoiceReceived(InvoiceReceived {
            invoice: Invoice {
                number: "3410889".into(),
                issued_on: "2007-10-31".parse().unwrap(),
                currency: "USD".into(),
                total: "51.65".parse().unwrap(),
                lines: vec![
                    line(ChargeKind::BaseFreight, "64.59"),
                    line(ChargeKind::Discount, "-12.94"),
                ],
                references: vec![Reference {
                    qualifier: "BM".into(),
                    value: "545930791T".into(),
                }],
                parties: vec![Party {
                    name: Some("ACME".into()),
                    postal_code: Some("07960".into()),
                    country: Some("US".into()),
                    ..Party::new("SH")
                }],
                delivered_on: Some("2007-10-29".parse().unwrap()),
                weight: None,
            },
        }),
        EventBody::ChargeAdded(ChargeAdded {
            invoice_number: Some("3410889".into()),
            currency: "USD".into(),
            charge: line(ChargeKind::FuelSurcharge, "4.10"),
        }),
        EventBody::InvoiceMatched(InvoiceMatched {
            invoice_number: "3410889".into(),
            currency: "USD".into(),
            invoiced_total: "51.65".parse().unwrap(),
            expected_total: Some("50.00".parse().unwrap()),
        }),
        EventBody::InvoiceDisputed(InvoiceDisputed {
            invoice_number: "3410889".into(),
            currency: "USD".into(),
            invoiced_total: "51.65".parse().unwrap(),
            expected_total: None,
            reasons: vec![DisputeReason {
                code: DisputeCode::UnknownShipment,
                message: "no booking for this tracking number".into(),
            }],
        }),
        EventBody::InvoiceSettled(crate::canonical::InvoiceSettled {
            invoice_number: "3410889".into(),
            currency: "USD".into(),
            amount_total: "51.65".parse().unwrap(),
            bill_id: 42,
            bill_name: Some("BILL/2026/11/0001".into()),
            payment_state: "paid".into(),
        }),
    ];
    let validator = validator();
    for body in bodies {
        let mut event = status_change_with(ShipmentStatus::Booked);
        event.body = body;
        let value = serde_json::to_value(&event).unwrap();
        assert_valid(&validator, &value);
        // A float amount is refused: money is a decimal string.
        let mut float = value.clone();
        let amount = match event.body {
            EventBody::CostEstimated(_) => &mut float["estimate"]["total"],
            EventBody::InvoiceReceived(_) => &mut float["invoice"]["total"],
            EventBody::InvoiceMatched(_) | EventBody::InvoiceDisputed(_) => {
                &mut float["invoiced_total"]
            }
            EventBody::InvoiceSettled(_) => &mut float["amount_total"],
            _ => &mut float["charge"]["amount"],
        };
        *amount = serde_json::json!(51.65);
        assert!(!validator.is_valid(&float), "{}", event.event_type());
    }
}

#[test]
fn every_dispute_code_the_model_has_is_in_the_schema_and_a_dispute_needs_a_reason() {
    use crate::canonical::{DisputeCode, DisputeReason, InvoiceDisputed};
    let schema = schema();
    let listed: Vec<&str> = schema["$defs"]["dispute_code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let model: Vec<&str> = DisputeCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(listed, model);
    for code in DisputeCode::ALL {
        // `as_str` and serde agree.
        assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
    }

    let validator = validator();
    let mut event = status_change_with(ShipmentStatus::Booked);
    event.body = EventBody::InvoiceDisputed(InvoiceDisputed {
        invoice_number: "0000001808WW308".into(),
        currency: "USD".into(),
        invoiced_total: "17.00".parse().unwrap(),
        expected_total: Some("12.00".parse().unwrap()),
        reasons: vec![DisputeReason {
            code: DisputeCode::AmountOverTolerance,
            message: "invoiced 17.00, expected 12.00".into(),
        }],
    });
    let valid = serde_json::to_value(&event).unwrap();
    assert_valid(&validator, &valid);
    let cases: Vec<(&str, Edit)> = vec![
        ("no reasons", Box::new(|e| e["reasons"] = json!([]))),
        (
            "unknown reason code",
            Box::new(|e| e["reasons"][0]["code"] = json!("too_expensive")),
        ),
        (
            "reason without message",
            Box::new(|e| drop(e["reasons"][0].as_object_mut().unwrap().remove("message"))),
        ),
        (
            "missing expected_total",
            Box::new(|e| drop(e.as_object_mut().unwrap().remove("expected_total"))),
        ),
        (
            "matched typed with reasons",
            Box::new(|e| e["type"] = json!("freight_invoice.matched")),
        ),
    ];
    for (case, edit) in cases {
        let mut bad = valid.clone();
        edit(&mut bad);
        assert!(!validator.is_valid(&bad), "schema accepted {case}: {bad:#}");
    }
}

#[test]
fn reconciler_judgements_become_bodies_the_schema_accepts_for_every_reason() {
    use std::collections::BTreeSet;

    use crate::canonical::{ChargeKind, ChargeLine, Estimate, EstimateKind, Invoice};
    use crate::reconcile::{
        InvoiceSighting, JudgeContext, Pod, ReasonCode, Receipt, ReconcileConfig, ShipmentFacts,
        judge,
    };

    let config = ReconcileConfig::from_toml(
        r#"
        [carrier.UPS]
        currency = "USD"
        tolerance = { absolute = "5.00", percent = "2" }
        surcharges = [{ code = "LFG", cap = "75.00" }]
        "#,
    )
    .unwrap();
    let receipt = |minute: u32, id: u128| Receipt {
        received_at: format!("2024-08-05T09:{minute:02}:00Z").parse().unwrap(),
        event_id: uuid::Uuid::from_u128(id),
    };
    let delivered = ShipmentFacts {
        status: Some(ShipmentStatus::Delivered),
        pod: Some(Pod {
            reference: "https://pod.example/1Z999.pdf".into(),
            delivered_at: "2024-08-02T18:50:00Z".parse().unwrap(),
            signed_by: None,
        }),
        estimate: Some(Estimate {
            kind: EstimateKind::Booking,
            currency: "USD".into(),
            total: "210.00".parse().unwrap(),
            lines: vec![],
        }),
        ..ShipmentFacts::new("UPS", "1Z999")
    };
    let invoice = |currency: &str, total: &str, extra: &[(&str, &str)]| Invoice {
        number: "INV-1".into(),
        issued_on: "2024-08-05".parse().unwrap(),
        currency: currency.into(),
        total: total.parse().unwrap(),
        lines: extra
            .iter()
            .map(|(code, amount)| ChargeLine {
                kind: ChargeKind::Accessorial,
                code: Some(code.to_string()),
                description: None,
                amount: amount.parse().unwrap(),
            })
            .collect(),
        references: vec![],
        parties: vec![],
        delivered_on: None,
        weight: None,
    };
    let unknown = ShipmentFacts {
        invoices: vec![InvoiceSighting {
            carrier: "UPS".into(),
            tracking_number: "1Z000".into(),
            number: "INV-1".into(),
            currency: "USD".into(),
            total: "1.00".parse().unwrap(),
            receipt: receipt(0, 1),
        }],
        ..ShipmentFacts::new("UPS", "1Z000")
    };
    let cases = [
        (delivered.clone(), invoice("USD", "212.00", &[])),
        (
            unknown,
            invoice("USD", "300.00", &[("RES", "10.00"), ("LFG", "80.00")]),
        ),
        (
            ShipmentFacts {
                pod: None,
                ..delivered.clone()
            },
            invoice("USD", "250.00", &[]),
        ),
        (delivered.clone(), invoice("USD", "150.00", &[])),
        (delivered.clone(), invoice("EUR", "210.00", &[])),
        (
            ShipmentFacts {
                estimate: None,
                ..delivered
            },
            invoice("USD", "210.00", &[]),
        ),
    ];
    let validator = validator();
    let mut seen = BTreeSet::new();
    let mut matched = 0;
    for (facts, invoice) in cases {
        let context = JudgeContext {
            receipt: receipt(30, 9),
            fuel_price: None,
            history: None,
        };
        let judgement = judge(&facts, &invoice, &config, &context);
        seen.extend(judgement.reasons.iter().map(|r| r.code));
        matched += usize::from(judgement.is_matched());
        let mut event = status_change_with(ShipmentStatus::Delivered);
        event.body = judgement.canonical_body();
        assert_valid(&validator, &serde_json::to_value(&event).unwrap());
    }
    assert_eq!(matched, 1);
    assert_eq!(seen, ReasonCode::ALL.into_iter().collect::<BTreeSet<_>>());
}
