//! The canonical freight event model (`freightbridge.canonical/v1`): what every partner format
//! becomes, and what the poster and the reconciler consume. Money is a decimal string plus an
//! ISO 4217 code, times are UTC RFC 3339, and event ids are deterministic so replays converge.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Schema identifier carried by every canonical event.
pub const SCHEMA: &str = "freightbridge.canonical/v1";

/// EventBridge `source` of canonical events.
pub const BUS_SOURCE: &str = "freightbridge.canonical";

/// EventBridge `source` of the reconciler's outcomes (`freight_invoice.matched`, `.disputed`),
/// which are canonical events too (DESIGN §1).
pub const RECONCILIATION_SOURCE: &str = "freightbridge.reconciliation";

/// Namespace of the UUIDv5 event ids. Never change it: replays rely on it.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a8e_53d4_4b0f_9a37_c2e1_0d5b_7e42);

/// Deterministic event id: the same partner, source event and position always give the same id.
pub fn event_id(partner: &str, source_event_id: &str, position: u32) -> Uuid {
    let name = format!("{partner}\u{1f}{source_event_id}\u{1f}{position}");
    Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes())
}

/// One canonical event: the common header plus the type-specific body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanonicalEvent {
    pub schema: String,
    pub event_id: Uuid,
    pub partner: String,
    pub source_event_id: String,
    pub correlation_id: String,
    pub occurred_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub shipment: ShipmentRef,
    #[serde(flatten)]
    pub body: EventBody,
}

impl CanonicalEvent {
    /// The `type` string, also used as the EventBridge `detail-type`.
    pub fn event_type(&self) -> &'static str {
        self.body.event_type()
    }

    /// What two events with one id must agree on to be the same fact: the event without how we
    /// heard of it (`received_at`, and the delivery it came in, `correlation_id`) and without a
    /// status change's delivery estimate. A scan that a later delivery repeats keeps its id but
    /// arrives at another time, in another delivery, with a revised estimate; it is still the
    /// same scan.
    pub fn fact(&self) -> CanonicalEvent {
        let mut fact = self.clone();
        fact.received_at = DateTime::UNIX_EPOCH;
        fact.correlation_id.clear();
        if let EventBody::StatusChanged(change) = &mut fact.body {
            change.eta = None;
        }
        fact
    }
}

/// Which shipment an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentRef {
    pub tracking_number: String,
    pub carrier: Option<String>,
    /// Odoo picking name or order reference, when the partner knows it.
    pub reference: Option<String>,
}

/// The shipment a bus envelope of a canonical event is about (its tracking number), read
/// without parsing the rest of the event: the key the poster and the reconciler group a batch's
/// records by ([`crate::batch::BatchConfig::group_by`]). `None` for anything else.
pub fn envelope_shipment(body: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        detail: Detail<'a>,
    }
    #[derive(Deserialize)]
    struct Detail<'a> {
        #[serde(borrow)]
        shipment: Shipment<'a>,
    }
    #[derive(Deserialize)]
    struct Shipment<'a> {
        #[serde(borrow)]
        tracking_number: std::borrow::Cow<'a, str>,
    }
    let envelope: Envelope<'_> = serde_json::from_str(body).ok()?;
    Some(envelope.detail.shipment.tracking_number.into_owned())
}

impl ShipmentRef {
    /// The Odoo reference, trimmed, when it says anything.
    pub fn reference(&self) -> Option<&str> {
        self.reference
            .as_deref()
            .map(str::trim)
            .filter(|r| !r.is_empty())
    }
}

/// The type-specific part of an event, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventBody {
    #[serde(rename = "shipment.status_changed")]
    StatusChanged(StatusChange),
    #[serde(rename = "shipment.delivered")]
    Delivered(Delivery),
    /// A booking or quote: what the shipment is expected to cost (→ accrual).
    #[serde(rename = "freight_cost.estimated")]
    CostEstimated(CostEstimate),
    /// A carrier's freight invoice (→ draft vendor bill).
    #[serde(rename = "freight_invoice.received")]
    InvoiceReceived(InvoiceReceived),
    /// A charge that arrives after the invoice or delivery (late surcharge).
    #[serde(rename = "freight_charge.added")]
    ChargeAdded(ChargeAdded),
    /// From the reconciler: the invoice agrees with the expected cost and the delivery
    /// (→ post the vendor bill, reverse the accrual).
    #[serde(rename = "freight_invoice.matched")]
    InvoiceMatched(InvoiceMatched),
    /// From the reconciler: the invoice needs a person (→ activity on the draft bill).
    #[serde(rename = "freight_invoice.disputed")]
    InvoiceDisputed(InvoiceDisputed),
    /// From the reconciler's sweep: Odoo shows the vendor bill freightbridge drafted for the
    /// invoice paid (→ the shipment's ledger entry is closed once all its invoices are).
    #[serde(rename = "freight_invoice.settled")]
    InvoiceSettled(InvoiceSettled),
}

impl EventBody {
    /// A shipment milestone as an adapter read it: a delivery with its proof (`signed_by`, at
    /// `occurred_at`) when the status is delivered, else the status change itself. A delivery
    /// keeps no raw status or estimate: its proof is what it adds.
    pub fn milestone(
        change: StatusChange,
        occurred_at: DateTime<Utc>,
        signed_by: Option<String>,
    ) -> EventBody {
        if change.status != ShipmentStatus::Delivered {
            return EventBody::StatusChanged(change);
        }
        EventBody::Delivered(Delivery {
            status: ShipmentStatus::Delivered,
            status_detail: change.status_detail,
            location: change.location,
            message: change.message,
            pod: ProofOfDelivery {
                signed_by,
                delivered_at: occurred_at,
                document_url: None,
            },
        })
    }

    pub fn event_type(&self) -> &'static str {
        match self {
            EventBody::StatusChanged(_) => "shipment.status_changed",
            EventBody::Delivered(_) => "shipment.delivered",
            EventBody::CostEstimated(_) => "freight_cost.estimated",
            EventBody::InvoiceReceived(_) => "freight_invoice.received",
            EventBody::ChargeAdded(_) => "freight_charge.added",
            EventBody::InvoiceMatched(_) => "freight_invoice.matched",
            EventBody::InvoiceDisputed(_) => "freight_invoice.disputed",
            EventBody::InvoiceSettled(_) => "freight_invoice.settled",
        }
    }

    /// Every canonical event type, as published on the bus.
    pub const TYPES: [&'static str; 8] = [
        "shipment.status_changed",
        "shipment.delivered",
        "freight_cost.estimated",
        "freight_invoice.received",
        "freight_charge.added",
        "freight_invoice.matched",
        "freight_invoice.disputed",
        "freight_invoice.settled",
    ];
}

/// Canonical shipment statuses (DESIGN §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentStatus {
    Booked,
    PickedUp,
    InTransit,
    Delayed,
    OutForDelivery,
    Delivered,
    Exception,
    Returned,
    Cancelled,
}

impl ShipmentStatus {
    /// Every status, in the lifecycle's order.
    pub const ALL: [ShipmentStatus; 9] = [
        ShipmentStatus::Booked,
        ShipmentStatus::PickedUp,
        ShipmentStatus::InTransit,
        ShipmentStatus::Delayed,
        ShipmentStatus::OutForDelivery,
        ShipmentStatus::Delivered,
        ShipmentStatus::Exception,
        ShipmentStatus::Returned,
        ShipmentStatus::Cancelled,
    ];

    /// Statuses after which the shipment does not move again. An exception is not one:
    /// carriers resolve most of them and the shipment goes on.
    pub fn is_terminal(self) -> bool {
        match self {
            ShipmentStatus::Delivered | ShipmentStatus::Returned | ShipmentStatus::Cancelled => {
                true
            }
            ShipmentStatus::Booked
            | ShipmentStatus::PickedUp
            | ShipmentStatus::InTransit
            | ShipmentStatus::Delayed
            | ShipmentStatus::OutForDelivery
            | ShipmentStatus::Exception => false,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ShipmentStatus::Booked => "booked",
            ShipmentStatus::PickedUp => "picked_up",
            ShipmentStatus::InTransit => "in_transit",
            ShipmentStatus::Delayed => "delayed",
            ShipmentStatus::OutForDelivery => "out_for_delivery",
            ShipmentStatus::Delivered => "delivered",
            ShipmentStatus::Exception => "exception",
            ShipmentStatus::Returned => "returned",
            ShipmentStatus::Cancelled => "cancelled",
        }
    }
}

/// A milestone that is not the final delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChange {
    pub status: ShipmentStatus,
    /// The partner's finer-grained detail (e.g. EasyPost `status_detail`).
    pub status_detail: Option<String>,
    /// The partner's own status word, kept whenever the mapping was not exact
    /// (always for `exception` produced from an unknown status).
    pub raw_status: Option<String>,
    pub location: Option<Location>,
    pub message: Option<String>,
    /// Estimated delivery time, when the partner gives one.
    pub eta: Option<DateTime<Utc>>,
}

/// Final delivery, with its proof.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub status: ShipmentStatus,
    pub status_detail: Option<String>,
    pub location: Option<Location>,
    pub message: Option<String>,
    pub pod: ProofOfDelivery,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofOfDelivery {
    pub signed_by: Option<String>,
    pub delivered_at: DateTime<Utc>,
    pub document_url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub city: Option<String>,
    pub state: Option<String>,
    pub country: Option<String>,
    pub postal_code: Option<String>,
}

impl Location {
    /// `None` when every part is empty, so events do not carry empty objects.
    pub fn non_empty(self) -> Option<Location> {
        let empty = self.city.is_none()
            && self.state.is_none()
            && self.country.is_none()
            && self.postal_code.is_none();
        (!empty).then_some(self)
    }

    /// "ORLANDO, FL 32809, US" — for human-facing notes.
    pub fn display(&self) -> String {
        let city_state = [self.city.as_deref(), self.state.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
        [
            Some(city_state.as_str()).filter(|s| !s.is_empty()),
            self.postal_code.as_deref(),
            self.country.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(" ")
    }
}

/// What kind of charge a line is. Partners' own codes (X12 L108, …) map to these through
/// per-partner tables; the code itself is kept on the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeKind {
    BaseFreight,
    FuelSurcharge,
    Accessorial,
    Tax,
    Discount,
    Other,
}

impl ChargeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChargeKind::BaseFreight => "base_freight",
            ChargeKind::FuelSurcharge => "fuel_surcharge",
            ChargeKind::Accessorial => "accessorial",
            ChargeKind::Tax => "tax",
            ChargeKind::Discount => "discount",
            ChargeKind::Other => "other",
        }
    }
}

/// One charge on an estimate or invoice. Negative amounts are credits or discounts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeLine {
    pub kind: ChargeKind,
    /// The partner's charge code (X12 L108 `400`, `FUE`, …).
    pub code: Option<String>,
    pub description: Option<String>,
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
}

/// Whether an estimate is a quote (before booking) or the booked cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EstimateKind {
    Quote,
    Booking,
}

/// `freight_cost.estimated`: a later estimate for the same shipment revises the earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CostEstimate {
    pub estimate: Estimate,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Estimate {
    pub kind: EstimateKind,
    /// ISO 4217.
    pub currency: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    pub lines: Vec<ChargeLine>,
}

/// `freight_invoice.received`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceReceived {
    pub invoice: Invoice,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    /// The carrier's invoice number (X12 B302).
    pub number: String,
    pub issued_on: InvoiceDate,
    /// ISO 4217.
    pub currency: String,
    /// Amount due as the carrier states it (X12 B307).
    #[serde(with = "rust_decimal::serde::str")]
    pub total: Decimal,
    pub lines: Vec<ChargeLine>,
    /// Other references the carrier gives (bill of lading, PO, …), by qualifier.
    #[serde(default)]
    pub references: Vec<Reference>,
    /// Parties named on the invoice (shipper, consignee, bill-to, …).
    #[serde(default)]
    pub parties: Vec<Party>,
    pub delivered_on: Option<InvoiceDate>,
    /// The billed weight (X12 L301 with the unit of B305 or L312), which with the shipper's and
    /// consignee's postal codes prices the shipment on the rate card when no estimate arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<Weight>,
}

/// `freight_charge.added`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeAdded {
    /// The invoice the charge belongs to, when the partner says.
    pub invoice_number: Option<String>,
    /// ISO 4217.
    pub currency: String,
    pub charge: ChargeLine,
}

/// `freight_invoice.matched`: the reconciler found the carrier's invoice consistent with the
/// expected cost and the proof of delivery, within the carrier's tolerances.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceMatched {
    /// The carrier's invoice number, as on `freight_invoice.received`.
    pub invoice_number: String,
    /// ISO 4217.
    pub currency: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub invoiced_total: Decimal,
    /// What the shipment was expected to cost (the latest estimate), when there was one.
    #[serde(with = "optional_decimal")]
    pub expected_total: Option<Decimal>,
}

/// `freight_invoice.disputed`: the invoice cannot be approved as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceDisputed {
    pub invoice_number: String,
    /// ISO 4217.
    pub currency: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub invoiced_total: Decimal,
    #[serde(with = "optional_decimal")]
    pub expected_total: Option<Decimal>,
    /// At least one.
    pub reasons: Vec<DisputeReason>,
}

/// `freight_invoice.settled`: the vendor bill drafted for the invoice is paid in Odoo
/// (`payment_state` `paid`, or `in_payment` while the payment awaits its bank statement).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceSettled {
    pub invoice_number: String,
    /// ISO 4217: the bill's.
    pub currency: String,
    /// The bill's total as Odoo shows it.
    #[serde(with = "rust_decimal::serde::str")]
    pub amount_total: Decimal,
    /// The bill (`account.move`) id.
    pub bill_id: i64,
    /// The bill's sequence number (`BILL/2026/11/0001`), when Odoo shows one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bill_name: Option<String>,
    /// `paid` or `in_payment`.
    pub payment_state: String,
}

/// Why an invoice is disputed (DESIGN §3.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DisputeReason {
    pub code: DisputeCode,
    /// For the person who resolves it.
    pub message: String,
}

/// The codes after `Other` are the reconciler's (`freightbridge::reconcile::judge`); the ones
/// before are kept, names and all, for events already published and their readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisputeCode {
    /// The invoiced amount differs from the expected cost by more than the tolerance. The
    /// reconciler says which way: `over_tolerance` or `under_tolerance`.
    AmountOverTolerance,
    /// A charge that arrived after delivery and was not expected.
    SurchargeAfterDelivery,
    /// The same invoice (or invoice number) was received before.
    DuplicateInvoice,
    /// No shipment is known for the invoice.
    UnknownShipment,
    /// The shipment has no proof of delivery. The reconciler says `no_pod`.
    NotDelivered,
    /// The invoice is in another currency than the expected cost (or a surcharge cap).
    CurrencyMismatch,
    Other,
    /// The shipment has no proof of delivery.
    NoPod,
    /// The invoice asks for more than the expected cost plus the carrier's tolerance.
    OverTolerance,
    /// The invoice asks for less than the expected cost less the carrier's tolerance.
    UnderTolerance,
    /// A surcharge or accessorial line that the carrier's allow-list does not cover.
    SurchargeNotAllowed,
    /// Surcharge lines adding up to more than their allow-list cap.
    SurchargeOverCap,
    /// No estimate arrived and the carrier's rate card cannot price the shipment.
    NoExpectedCost,
}

impl DisputeCode {
    pub fn as_str(self) -> &'static str {
        match self {
            DisputeCode::AmountOverTolerance => "amount_over_tolerance",
            DisputeCode::SurchargeAfterDelivery => "surcharge_after_delivery",
            DisputeCode::DuplicateInvoice => "duplicate_invoice",
            DisputeCode::UnknownShipment => "unknown_shipment",
            DisputeCode::NotDelivered => "not_delivered",
            DisputeCode::CurrencyMismatch => "currency_mismatch",
            DisputeCode::Other => "other",
            DisputeCode::NoPod => "no_pod",
            DisputeCode::OverTolerance => "over_tolerance",
            DisputeCode::UnderTolerance => "under_tolerance",
            DisputeCode::SurchargeNotAllowed => "surcharge_not_allowed",
            DisputeCode::SurchargeOverCap => "surcharge_over_cap",
            DisputeCode::NoExpectedCost => "no_expected_cost",
        }
    }

    /// Every code, in the order the JSON Schema lists them.
    pub const ALL: [DisputeCode; 13] = [
        DisputeCode::AmountOverTolerance,
        DisputeCode::SurchargeAfterDelivery,
        DisputeCode::DuplicateInvoice,
        DisputeCode::UnknownShipment,
        DisputeCode::NotDelivered,
        DisputeCode::CurrencyMismatch,
        DisputeCode::Other,
        DisputeCode::NoPod,
        DisputeCode::OverTolerance,
        DisputeCode::UnderTolerance,
        DisputeCode::SurchargeNotAllowed,
        DisputeCode::SurchargeOverCap,
        DisputeCode::NoExpectedCost,
    ];
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// The partner's qualifier (X12 `BM` bill of lading, `PO`, …).
    pub qualifier: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    /// The partner's role code (X12 N101 `SH` shipper, `CN` consignee, `BT` bill-to, …).
    pub role: String,
    pub name: Option<String>,
    /// The partner's identifier for the party, when given.
    pub id: Option<String>,
    /// The party's postal code (X12 N403), which prices the lane on the carrier's rate card.
    /// No street address is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postal_code: Option<String>,
    /// ISO 3166 country code (X12 N404), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

impl Party {
    /// A party known by its role alone.
    pub fn new(role: impl Into<String>) -> Party {
        Party {
            role: role.into(),
            name: None,
            id: None,
            postal_code: None,
            country: None,
        }
    }
}

/// A shipment's weight as the carrier bills it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weight {
    #[serde(with = "rust_decimal::serde::str")]
    pub value: Decimal,
    pub unit: WeightUnit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WeightUnit {
    Kg,
    Lb,
}

impl WeightUnit {
    /// The international avoirdupois pound, exactly.
    const KG_PER_LB: Decimal = Decimal::from_parts(45_359_237, 0, 0, false, 8);

    pub fn as_str(self) -> &'static str {
        match self {
            WeightUnit::Kg => "kg",
            WeightUnit::Lb => "lb",
        }
    }
}

impl Weight {
    /// The weight in `unit` (kg ↔ lb at 0.45359237 kg per lb). `None` only when the value is
    /// too large to convert.
    pub fn in_unit(self, unit: WeightUnit) -> Option<Decimal> {
        match (self.unit, unit) {
            (WeightUnit::Kg, WeightUnit::Kg) | (WeightUnit::Lb, WeightUnit::Lb) => Some(self.value),
            (WeightUnit::Lb, WeightUnit::Kg) => self.value.checked_mul(WeightUnit::KG_PER_LB),
            (WeightUnit::Kg, WeightUnit::Lb) => self.value.checked_div(WeightUnit::KG_PER_LB),
        }
    }
}

/// An amount of money: decimal, never a float, with its ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    #[serde(with = "rust_decimal::serde::str")]
    pub amount: Decimal,
    pub currency: String,
}

/// A calendar date as carriers print them on invoices (no time zone).
pub type InvoiceDate = NaiveDate;

/// An optional decimal string (`"51.65"` or `null`). rust_decimal's own `str_option` cannot
/// read `null` through the buffered content serde uses for flattened, tagged bodies.
mod optional_decimal {
    use std::str::FromStr;

    use rust_decimal::Decimal;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<Decimal>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(d) => s.serialize_str(&d.to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| Decimal::from_str(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CanonicalEvent {
        CanonicalEvent {
            schema: SCHEMA.into(),
            event_id: event_id("easypost", "evt_1", 0),
            partner: "easypost".into(),
            source_event_id: "evt_1".into(),
            correlation_id: "evt_1".into(),
            occurred_at: "2024-08-02T18:50:00Z".parse().unwrap(),
            received_at: "2024-08-02T19:26:52Z".parse().unwrap(),
            shipment: ShipmentRef {
                tracking_number: "1".into(),
                carrier: Some("FedEx".into()),
                reference: None,
            },
            body: EventBody::StatusChanged(StatusChange {
                status: ShipmentStatus::InTransit,
                status_detail: Some("arrived_at_facility".into()),
                raw_status: None,
                location: None,
                message: None,
                eta: None,
            }),
        }
    }

    #[test]
    fn an_envelopes_shipment_is_read_without_the_rest_of_the_event() {
        let mut event = sample();
        event.shipment.tracking_number = "1Z\"999".into();
        let envelope = crate::bus::Envelope {
            version: Some("0".into()),
            id: "e1".into(),
            detail_type: event.event_type().into(),
            source: BUS_SOURCE.into(),
            account: None,
            time: event.received_at,
            region: None,
            resources: vec![],
            detail: &event,
        };
        let body = serde_json::to_string(&envelope).unwrap();
        assert_eq!(envelope_shipment(&body).as_deref(), Some("1Z\"999"));
        assert_eq!(envelope_shipment(r#"{"detail":{"x":1}}"#), None);
        assert_eq!(envelope_shipment("not json"), None);
    }

    #[test]
    fn the_fact_leaves_out_how_we_heard_of_it_and_nothing_else() {
        let event = sample();
        let mut heard_again = event.clone();
        heard_again.received_at = "2024-08-03T08:00:00Z".parse().unwrap();
        heard_again.correlation_id = "evt_2".into();
        if let EventBody::StatusChanged(change) = &mut heard_again.body {
            change.eta = Some("2024-08-05T00:00:00Z".parse().unwrap());
        }
        assert_ne!(heard_again, event);
        assert_eq!(heard_again.fact(), event.fact());

        let edits: [fn(&mut CanonicalEvent); 5] = [
            |e| e.occurred_at = "2024-08-02T18:51:00Z".parse().unwrap(),
            |e| e.shipment.tracking_number = "2".into(),
            |e| e.source_event_id = "evt_9".into(),
            |e| {
                if let EventBody::StatusChanged(change) = &mut e.body {
                    change.status = ShipmentStatus::Delayed;
                }
            },
            |e| {
                if let EventBody::StatusChanged(change) = &mut e.body {
                    change.message = Some("Arrived".into());
                }
            },
        ];
        for edit in edits {
            let mut other = event.clone();
            edit(&mut other);
            assert_ne!(other.fact(), event.fact(), "{other:?}");
        }
    }

    #[test]
    fn a_delivered_milestone_is_a_delivery_with_its_proof_and_any_other_a_status_change() {
        let at: DateTime<Utc> = "2024-08-02T18:50:00Z".parse().unwrap();
        let change = |status| StatusChange {
            status,
            status_detail: Some("detail".into()),
            raw_status: Some("RAW".into()),
            location: Some(Location {
                city: Some("EDISON".into()),
                ..Location::default()
            }),
            message: Some("text".into()),
            eta: Some(at),
        };
        let delivered =
            EventBody::milestone(change(ShipmentStatus::Delivered), at, Some("J. DOE".into()));
        assert_eq!(
            delivered,
            EventBody::Delivered(Delivery {
                status: ShipmentStatus::Delivered,
                status_detail: Some("detail".into()),
                location: change(ShipmentStatus::Delivered).location,
                message: Some("text".into()),
                pod: ProofOfDelivery {
                    signed_by: Some("J. DOE".into()),
                    delivered_at: at,
                    document_url: None,
                },
            })
        );
        for status in [ShipmentStatus::InTransit, ShipmentStatus::Returned] {
            assert_eq!(
                EventBody::milestone(change(status), at, Some("J. DOE".into())),
                EventBody::StatusChanged(change(status))
            );
        }
    }

    #[test]
    fn event_ids_are_deterministic_and_position_sensitive() {
        assert_eq!(event_id("p", "e", 0), event_id("p", "e", 0));
        assert_ne!(event_id("p", "e", 0), event_id("p", "e", 1));
        assert_ne!(event_id("p", "e", 0), event_id("q", "e", 0));
        assert_eq!(event_id("p", "e", 0).get_version_num(), 5);
    }

    #[test]
    fn event_serialises_with_type_tag_and_round_trips() {
        let event = sample();
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "shipment.status_changed");
        assert_eq!(json["schema"], SCHEMA);
        assert_eq!(json["status"], "in_transit");
        assert_eq!(json["occurred_at"], "2024-08-02T18:50:00Z");
        let back: CanonicalEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn invoice_event_round_trips_with_decimal_strings() {
        let mut event = sample();
        event.body = EventBody::InvoiceReceived(InvoiceReceived {
            invoice: Invoice {
                number: "3410889".into(),
                issued_on: "2007-10-31".parse().unwrap(),
                currency: "USD".into(),
                total: "51.65".parse().unwrap(),
                lines: vec![ChargeLine {
                    kind: ChargeKind::BaseFreight,
                    code: Some("400".into()),
                    description: None,
                    amount: "51.65".parse().unwrap(),
                }],
                references: vec![],
                parties: vec![],
                delivered_on: None,
                weight: None,
            },
        });
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "freight_invoice.received");
        assert_eq!(json["invoice"]["total"], "51.65");
        assert_eq!(json["invoice"]["lines"][0]["kind"], "base_freight");
        assert_eq!(json["invoice"]["issued_on"], "2007-10-31");
        let back: CanonicalEvent = serde_json::from_value(json).unwrap();
        assert_eq!(back, event);
        assert!(EventBody::TYPES.contains(&event.event_type()));
    }

    #[test]
    fn reconciler_outcomes_round_trip() {
        let mut event = sample();
        event.body = EventBody::InvoiceMatched(InvoiceMatched {
            invoice_number: "3410889".into(),
            currency: "USD".into(),
            invoiced_total: "51.65".parse().unwrap(),
            expected_total: None,
        });
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "freight_invoice.matched");
        assert_eq!(json["invoiced_total"], "51.65");
        assert_eq!(json["expected_total"], serde_json::Value::Null);
        assert_eq!(
            serde_json::from_value::<CanonicalEvent>(json).unwrap(),
            event
        );

        event.body = EventBody::InvoiceDisputed(InvoiceDisputed {
            invoice_number: "3410889".into(),
            currency: "USD".into(),
            invoiced_total: "51.65".parse().unwrap(),
            expected_total: Some("40".parse().unwrap()),
            reasons: vec![DisputeReason {
                code: DisputeCode::AmountOverTolerance,
                message: "11.65 over the estimate".into(),
            }],
        });
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["type"], "freight_invoice.disputed");
        assert_eq!(json["expected_total"], "40");
        assert_eq!(json["reasons"][0]["code"], "amount_over_tolerance");
        assert_eq!(
            serde_json::from_value::<CanonicalEvent>(json).unwrap(),
            event
        );
        for kind in EventBody::TYPES {
            assert_eq!(EventBody::TYPES.iter().filter(|t| **t == kind).count(), 1);
        }
    }

    #[test]
    fn money_is_a_decimal_string() {
        let m = Money {
            amount: "51.65".parse().unwrap(),
            currency: "USD".into(),
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"amount":"51.65","currency":"USD"}"#
        );
    }

    #[test]
    fn location_display_skips_missing_parts() {
        let loc = Location {
            city: Some("ORLANDO".into()),
            state: Some("FL".into()),
            country: Some("US".into()),
            postal_code: Some("32809".into()),
        };
        assert_eq!(loc.display(), "ORLANDO, FL 32809 US");
        assert_eq!(Location::default().non_empty(), None);
    }
}
