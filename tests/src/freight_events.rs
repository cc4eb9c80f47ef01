//! Canonical events the finance suites send the poster: the same shipment's facts against the
//! Odoo double (`tests/finance.rs`) and against real Odoo (`tests/odoo_real.rs`). Amounts are
//! the ones both suites assert: freight 1250.00 + fuel 85.50 invoiced, 900.00 estimated at first.

use chrono::{DateTime, NaiveDate, Utc};
use freightbridge::canonical::{
    CanonicalEvent, ChargeAdded, ChargeKind, ChargeLine, CostEstimate, Delivery, DisputeCode,
    DisputeReason, Estimate, EstimateKind, EventBody, Invoice, InvoiceDisputed, InvoiceMatched,
    ProofOfDelivery, SCHEMA, ShipmentRef, ShipmentStatus, event_id,
};
use rust_decimal::Decimal;

pub fn dec(s: &str) -> Decimal {
    s.parse().expect("a decimal")
}

/// An event of `partner` about shipment `tracking` of `carrier`, at `when`.
pub fn event(
    partner: &str,
    source: &str,
    carrier: &str,
    tracking: &str,
    when: DateTime<Utc>,
    body: EventBody,
) -> CanonicalEvent {
    CanonicalEvent {
        schema: SCHEMA.into(),
        event_id: event_id(partner, source, 0),
        partner: partner.into(),
        source_event_id: source.into(),
        correlation_id: source.into(),
        occurred_at: when,
        received_at: when,
        shipment: ShipmentRef {
            tracking_number: tracking.into(),
            carrier: Some(carrier.into()),
            reference: None,
        },
        body,
    }
}

pub fn line(kind: ChargeKind, code: &str, amount: Decimal) -> ChargeLine {
    ChargeLine {
        kind,
        code: Some(code.into()),
        description: None,
        amount,
    }
}

/// A USD invoice with its lines.
pub fn invoice(
    number: &str,
    issued_on: NaiveDate,
    total: Decimal,
    lines: Vec<ChargeLine>,
) -> Invoice {
    Invoice {
        number: number.into(),
        issued_on,
        currency: "USD".into(),
        total,
        lines,
        references: vec![],
        parties: vec![],
        delivered_on: None,
        weight: None,
    }
}

/// The carrier's booking estimate.
pub fn estimate(total: &str) -> EventBody {
    EventBody::CostEstimated(CostEstimate {
        estimate: Estimate {
            kind: EstimateKind::Booking,
            currency: "USD".into(),
            total: dec(total),
            lines: vec![],
        },
    })
}

/// The reconciler's match of invoice `number` (1335.50 against 1300.00 expected).
pub fn matched(number: &str) -> EventBody {
    EventBody::InvoiceMatched(InvoiceMatched {
        invoice_number: number.into(),
        currency: "USD".into(),
        invoiced_total: dec("1335.50"),
        expected_total: Some(dec("1300.00")),
    })
}

/// The reconciler's dispute of invoice `number`: 435.50 over the 900.00 booked.
pub fn disputed(number: &str) -> EventBody {
    EventBody::InvoiceDisputed(InvoiceDisputed {
        invoice_number: number.into(),
        currency: "USD".into(),
        invoiced_total: dec("1335.50"),
        expected_total: Some(dec("900.00")),
        reasons: vec![DisputeReason {
            code: DisputeCode::AmountOverTolerance,
            message: "435.50 over the booked cost (tolerance 5%)".into(),
        }],
    })
}

/// A detention charge after the invoice.
pub fn detention(number: Option<&str>, amount: &str) -> EventBody {
    EventBody::ChargeAdded(ChargeAdded {
        invoice_number: number.map(Into::into),
        currency: "USD".into(),
        charge: ChargeLine {
            kind: ChargeKind::Accessorial,
            code: Some("DET".into()),
            description: Some("Detention at consignee".into()),
            amount: dec(amount),
        },
    })
}

/// Delivered at `at`, signed by J. Smith.
pub fn delivered(at: DateTime<Utc>, document_url: Option<&str>) -> EventBody {
    EventBody::Delivered(Delivery {
        status: ShipmentStatus::Delivered,
        status_detail: None,
        location: None,
        message: None,
        pod: ProofOfDelivery {
            signed_by: Some("J. Smith".into()),
            delivered_at: at,
            document_url: document_url.map(Into::into),
        },
    })
}
