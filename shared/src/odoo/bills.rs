//! Vendor bills for carrier invoices: one draft bill (`in_invoice`) per carrier and invoice
//! number, ever. The natural key (vendor + `ref` + `move_type`) is looked up before every create,
//! and each bill carries a fingerprint of the invoice it was made from, so a redelivered invoice
//! is recognised and a different invoice reusing the number is refused. Reconciler outcomes act
//! on the same bill: a match posts it (and settles the accrual), a dispute leaves it in draft with
//! an activity for accounts payable; late charges are added to it while it is still a draft.

use std::fmt::Write as _;

use chrono::Duration;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::canonical::{
    CanonicalEvent, ChargeAdded, ChargeKind, ChargeLine, Invoice, InvoiceDisputed, InvoiceMatched,
};

use super::finance::{ChargeBooking, Finance, FinanceError, carrier_key, event_tag, one_line};
use super::money::{self, Currency};
use super::reference::Kind;
use super::values::{created_id, many2one_id, record_id, records, single_id, text};
use super::{OdooCall, OdooPort, accruals, landed_costs};

/// Longest charge description kept in a bill line's label.
const MAX_DESCRIPTION: usize = 120;

/// Fields read back from a bill found by its natural key.
const BILL_FIELDS: [&str; 6] = [
    "name",
    "state",
    "ref",
    "narration",
    "amount_untaxed",
    "currency_id",
];

/// A vendor bill as the poster reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    pub id: i64,
    /// The sequence number (`BILL/2026/11/0001`), once posted.
    pub name: Option<String>,
    /// `draft`, `posted` or `cancel`.
    pub state: String,
    pub narration: Option<String>,
    pub amount_untaxed: Option<Decimal>,
    pub currency_id: Option<i64>,
}

impl Bill {
    fn from_record(record: &Map<String, Value>) -> Option<Bill> {
        Some(Bill {
            id: record_id(record)?,
            name: text(record.get("name")).map(str::to_owned),
            state: text(record.get("state")).unwrap_or("draft").to_owned(),
            narration: text(record.get("narration")).map(str::to_owned),
            amount_untaxed: money::from_wire(record.get("amount_untaxed")),
            currency_id: many2one_id(record.get("currency_id")),
        })
    }

    pub fn is_draft(&self) -> bool {
        self.state == "draft"
    }

    /// The fingerprint marker this bill was created with, if freightbridge created it.
    fn fingerprint(&self) -> Option<&str> {
        let narration = self.narration.as_deref()?;
        let start = narration.find(FINGERPRINT_OPEN)?;
        let rest = &narration[start..];
        rest.find(']').map(|end| &rest[..=end])
    }
}

const FINGERPRINT_OPEN: &str = "[freightbridge invoice ";

/// The marker written into a bill's narration: a digest of everything that makes the invoice
/// what it is (number, date, currency, total, lines), so the same invoice delivered again —
/// through any channel, under any event id — is recognised, and another one is not.
pub fn invoice_fingerprint(invoice: &Invoice) -> String {
    let mut canonical = String::new();
    let _ = write!(
        canonical,
        "{}\u{1f}{}\u{1f}{}\u{1f}{}",
        invoice.number.trim(),
        invoice.issued_on,
        invoice.currency,
        invoice.total.normalize()
    );
    for line in &invoice.lines {
        let _ = write!(
            canonical,
            "\u{1e}{}\u{1f}{}\u{1f}{}\u{1f}{}",
            line.kind.as_str(),
            line.code.as_deref().unwrap_or_default(),
            line.description.as_deref().unwrap_or_default(),
            line.amount.normalize()
        );
    }
    let digest = hex::encode(Sha256::digest(canonical.as_bytes()));
    format!("{FINGERPRINT_OPEN}sha256:{}]", &digest[..16])
}

/// What `freight_invoice.received` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillReceived {
    pub bill_id: i64,
    /// `false`: the bill existed already (a redelivery, or an earlier attempt that created it
    /// and could not record that it did).
    pub created: bool,
}

/// `freight_invoice.received` → one draft vendor bill. Round trips once reference data is
/// cached: the natural-key lookup and the create (2).
pub async fn receive_invoice(
    odoo: &impl OdooPort,
    finance: &Finance,
    event: &CanonicalEvent,
    invoice: &Invoice,
) -> Result<BillReceived, FinanceError> {
    let number = invoice.number.trim();
    if number.is_empty() {
        return Err(FinanceError::refused(
            "invoice_without_number",
            "the invoice has no number",
        ));
    }
    if invoice.lines.is_empty() {
        return Err(FinanceError::refused(
            "invoice_without_lines",
            format!("invoice {number} has no charge lines"),
        ));
    }
    if invoice.total.is_sign_negative() && !invoice.total.is_zero() {
        return Err(FinanceError::refused(
            "negative_invoice_total",
            format!(
                "invoice {number} is a credit of {} {}; credit notes are left to accounts payable",
                invoice.total, invoice.currency
            ),
        ));
    }
    let reference = finance.reference();
    let partner_id = finance.carrier_partner(odoo, event).await?;
    let currency = reference
        .currency(odoo, &invoice.currency, "the invoice's currency")
        .await?;
    let journal_id = finance
        .journal(
            odoo,
            &finance.config().journals.purchase,
            "journals.purchase",
        )
        .await?;
    // Every amount is checked before anything is sent: the lines must add up to the total.
    let amounts: Vec<Decimal> = invoice.lines.iter().map(|l| l.amount).collect();
    let amounts = money::check_total(&amounts, invoice.total, &currency)?;
    let mut lines = Vec::with_capacity(invoice.lines.len());
    for (line, amount) in invoice.lines.iter().zip(amounts) {
        let booking = finance.charge_booking(odoo, line.kind).await?;
        lines.push(line_command(&line_label(event, line), amount, &booking)?);
    }

    let fingerprint = invoice_fingerprint(invoice);
    let existing = find_bills(odoo, partner_id, number, json!([])).await?;
    if let Some(bill) = existing
        .iter()
        .find(|b| b.fingerprint() == Some(&fingerprint))
    {
        tracing::info!(
            event_id = %event.event_id,
            bill_id = bill.id,
            "invoice already has its vendor bill; not creating another"
        );
        return Ok(BillReceived {
            bill_id: bill.id,
            created: false,
        });
    }
    if let Some(bill) = existing.first() {
        return Err(match bill.fingerprint() {
            Some(_) => FinanceError::InvoiceNumberReused {
                carrier: carrier_key(event).to_owned(),
                number: number.to_owned(),
                bill_id: bill.id,
            },
            None => FinanceError::refused(
                "vendor_bill_exists",
                format!(
                    "a bill {number} of carrier {} exists in Odoo (id {}) that freightbridge did not create; not creating another",
                    carrier_key(event),
                    bill.id
                ),
            ),
        });
    }

    let mut vals = Map::new();
    vals.insert("move_type".into(), json!("in_invoice"));
    vals.insert("partner_id".into(), json!(partner_id));
    vals.insert("ref".into(), json!(number));
    vals.insert("invoice_date".into(), json!(invoice.issued_on.to_string()));
    vals.insert("journal_id".into(), json!(journal_id));
    vals.insert("currency_id".into(), json!(currency.id));
    vals.insert(
        "narration".into(),
        json!(format!(
            "{} {fingerprint}",
            describe_shipment(event, &format!("Carrier invoice {number}"))
        )),
    );
    vals.insert("invoice_line_ids".into(), Value::Array(lines));
    let bill_id = create_move(odoo, vals, "in_invoice").await?;
    tracing::info!(event_id = %event.event_id, bill_id, "draft vendor bill created");
    Ok(BillReceived {
        bill_id,
        created: true,
    })
}

/// What `freight_invoice.matched` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchSettled {
    pub bill_id: i64,
    /// `false`: the bill was posted already.
    pub posted_now: bool,
    pub accrual: accruals::Reversal,
    pub landed_cost: Option<landed_costs::LandedCost>,
}

/// `freight_invoice.matched` → post the vendor bill, reverse the shipment's accrual (once), and
/// allocate inbound freight to the receipt as a landed cost when configured. Only this outcome
/// ever posts a vendor bill.
pub async fn settle_matched(
    odoo: &impl OdooPort,
    finance: &Finance,
    event: &CanonicalEvent,
    matched: &InvoiceMatched,
) -> Result<MatchSettled, FinanceError> {
    let partner_id = finance.carrier_partner(odoo, event).await?;
    let bill = the_bill(odoo, event, partner_id, &matched.invoice_number).await?;
    if bill.state == "cancel" {
        return Err(FinanceError::refused(
            "vendor_bill_cancelled",
            format!(
                "vendor bill {} (id {}) was cancelled in Odoo; not posting it",
                matched.invoice_number, bill.id
            ),
        ));
    }
    let currency = finance
        .reference()
        .currency(odoo, &matched.currency, "the matched invoice's currency")
        .await?;
    check_same_currency(&bill, &currency)?;
    let posted_now = bill.is_draft();
    if posted_now {
        // `action_post` returns false (transcript 043); what matters is that it did not fail.
        let post = OdooCall::new("account.move", "action_post")
            .with_ids([bill.id])
            .assuming(json!(false));
        odoo.execute(&post).await?;
        tracing::info!(event_id = %event.event_id, bill_id = bill.id, "vendor bill posted");
    }
    let accrual =
        accruals::reverse_for_shipment(odoo, finance, event, event.occurred_at.date_naive())
            .await?;
    let landed_cost =
        landed_costs::allocate(odoo, finance, event, &bill, &matched.invoice_number).await?;
    Ok(MatchSettled {
        bill_id: bill.id,
        posted_now,
        accrual,
        landed_cost,
    })
}

/// What `freight_invoice.disputed` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisputeOpened {
    pub bill_id: i64,
    pub activity_id: Option<i64>,
    /// The activity of an earlier attempt was found; nothing was created this time.
    pub already_open: bool,
}

/// `freight_invoice.disputed` → an activity on the bill for the accounts-payable user, with the
/// reasons. The bill is not touched: it stays draft. Round trips once reference data is cached:
/// the bill lookup and the activity (2; 3 when checking for an earlier attempt's activity).
pub async fn open_dispute(
    odoo: &impl OdooPort,
    finance: &Finance,
    event: &CanonicalEvent,
    disputed: &InvoiceDisputed,
    check_existing: bool,
) -> Result<DisputeOpened, FinanceError> {
    let settings = &finance.config().bills;
    let Some(login) = settings.ap_user.as_deref() else {
        return Err(FinanceError::missing(
            "bills.ap_user",
            "disputes need the accounts-payable user's login",
        ));
    };
    let reference = finance.reference();
    let user_id = reference
        .resolve(odoo, Kind::User, login, "bills.ap_user")
        .await?;
    let partner_id = finance.carrier_partner(odoo, event).await?;
    let bill = the_bill(odoo, event, partner_id, &disputed.invoice_number).await?;
    let marker = format!("[freightbridge event {}]", event.event_id);

    if check_existing {
        let lookup = OdooCall::new("mail.activity", "search_read")
            .with_arg(
                "domain",
                json!([
                    ["res_model", "=", "account.move"],
                    ["res_id", "=", bill.id],
                    ["note", "ilike", marker],
                ]),
            )
            .with_arg("fields", json!(["id"]))
            .with_arg("limit", 1)
            // Done activities are archived in recent versions: they count too.
            .with_arg("context", json!({"active_test": false}))
            .assuming(json!([]));
        if let Some(activity_id) = records(odoo.execute(&lookup).await?)?
            .first()
            .and_then(record_id)
        {
            return Ok(DisputeOpened {
                bill_id: bill.id,
                activity_id: Some(activity_id),
                already_open: true,
            });
        }
    }

    let deadline =
        event.occurred_at.date_naive() + Duration::days(i64::from(settings.dispute_deadline_days));
    // `activity_schedule` resolves the activity type's external id and the model itself, so
    // the bot needs no read access to `ir.model` / `ir.model.data` (Internal User has none).
    let create = OdooCall::new("account.move", "activity_schedule")
        .with_ids([bill.id])
        .with_arg(
            "act_type_xmlid",
            settings
                .dispute_activity_type
                .as_deref()
                .unwrap_or_default(),
        )
        .with_arg("date_deadline", deadline.to_string())
        .with_arg(
            "summary",
            one_line(
                &format!(
                    "Disputed freight invoice {} ({})",
                    disputed.invoice_number,
                    carrier_key(event)
                ),
                100,
            ),
        )
        .with_arg("note", dispute_note(event, disputed, &marker))
        .with_arg("user_id", user_id)
        .assuming(json!([0]));
    let activity_id = single_id(&odoo.execute(&create).await?);
    tracing::info!(event_id = %event.event_id, bill_id = bill.id, ?activity_id, "dispute activity created");
    Ok(DisputeOpened {
        bill_id: bill.id,
        activity_id,
        already_open: false,
    })
}

/// The activity's text: the reasons, the amounts, and the marker a retry looks for.
fn dispute_note(event: &CanonicalEvent, disputed: &InvoiceDisputed, marker: &str) -> String {
    let reasons: Vec<String> = disputed
        .reasons
        .iter()
        .map(|r| format!("{} ({})", one_line(&r.message, 300), r.code.as_str()))
        .collect();
    let mut note = format!(
        "The reconciler could not approve invoice {} of {} for shipment {}: {}.",
        disputed.invoice_number,
        carrier_key(event),
        event.shipment.tracking_number,
        reasons.join("; ")
    );
    let _ = write!(
        note,
        " Invoiced {} {}",
        disputed.invoiced_total, disputed.currency
    );
    match disputed.expected_total {
        Some(expected) => {
            let _ = write!(note, ", expected {expected} {}.", disputed.currency);
        }
        None => note.push_str(", no estimate on record."),
    }
    note.push_str(" The bill stays in draft. ");
    note.push_str(marker);
    note
}

/// What `freight_charge.added` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeApplied {
    /// The bill the charge is on.
    pub bill_id: i64,
    /// `true`: the charge is a line on the invoice's own (draft) bill; `false`: a separate
    /// draft bill was made because the first was posted (or is not in Odoo).
    pub on_original_bill: bool,
    /// An earlier attempt had applied it; nothing was written this time.
    pub already_applied: bool,
}

/// `freight_charge.added` → a line on the invoice's draft bill, or, once that bill is posted, a
/// separate draft bill that refers to it. The line label carries the event's tag, which a retry
/// looks for; a separate bill has its own natural key (`<invoice>+<tag>`).
pub async fn add_charge(
    odoo: &impl OdooPort,
    finance: &Finance,
    event: &CanonicalEvent,
    added: &ChargeAdded,
    check_existing: bool,
) -> Result<ChargeApplied, FinanceError> {
    let partner_id = finance.carrier_partner(odoo, event).await?;
    let currency = finance
        .reference()
        .currency(odoo, &added.currency, "the charge's currency")
        .await?;
    let amount = currency.round(added.charge.amount);
    let booking = finance.charge_booking(odoo, added.charge.kind).await?;
    let tag = event_tag(event);
    let label = format!("{} [{tag}]", line_label(event, &added.charge));
    let line = line_command(&label, amount, &booking)?;

    let number = added
        .invoice_number
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty());
    let original = match number {
        Some(number) => {
            let assumed = json!([{"id": 0, "state": "draft", "ref": number}]);
            let bills = find_bills(odoo, partner_id, number, assumed).await?;
            pick_bill(bills)
        }
        None => None,
    };

    if let Some(bill) = original.as_ref().filter(|b| b.is_draft()) {
        check_same_currency(bill, &currency)?;
        if check_existing {
            let lookup = OdooCall::new("account.move.line", "search_read")
                .with_arg(
                    "domain",
                    json!([["move_id", "=", bill.id], ["name", "ilike", tag]]),
                )
                .with_arg("fields", json!(["id"]))
                .with_arg("limit", 1)
                .assuming(json!([]));
            if !records(odoo.execute(&lookup).await?)?.is_empty() {
                return Ok(ChargeApplied {
                    bill_id: bill.id,
                    on_original_bill: true,
                    already_applied: true,
                });
            }
        }
        let write = OdooCall::new("account.move", "write")
            .with_ids([bill.id])
            .with_arg("vals", json!({"invoice_line_ids": [line]}))
            .assuming(json!(true));
        odoo.execute(&write).await?;
        tracing::info!(event_id = %event.event_id, bill_id = bill.id, "late charge added to the draft bill");
        return Ok(ChargeApplied {
            bill_id: bill.id,
            on_original_bill: true,
            already_applied: false,
        });
    }

    // A separate draft bill, found again by its own natural key on a retry.
    let base = number.unwrap_or(event.shipment.tracking_number.trim());
    let separate_ref = format!("{base}+{tag}");
    let existing = find_bills(odoo, partner_id, &separate_ref, json!([])).await?;
    if let Some(bill) = existing.first() {
        return Ok(ChargeApplied {
            bill_id: bill.id,
            on_original_bill: false,
            already_applied: true,
        });
    }
    let journal_id = finance
        .journal(
            odoo,
            &finance.config().journals.purchase,
            "journals.purchase",
        )
        .await?;
    let first = match (&original, number) {
        (Some(bill), Some(number)) => format!(
            "Late charge to carrier invoice {number} (bill {}).",
            bill.name.as_deref().unwrap_or("in draft")
        ),
        (None, Some(number)) => {
            format!("Late charge to carrier invoice {number}, which has no bill in Odoo.")
        }
        (_, None) => "Late charge without an invoice number.".to_owned(),
    };
    let mut vals = Map::new();
    vals.insert("move_type".into(), json!("in_invoice"));
    vals.insert("partner_id".into(), json!(partner_id));
    vals.insert("ref".into(), json!(separate_ref));
    vals.insert(
        "invoice_date".into(),
        json!(event.occurred_at.date_naive().to_string()),
    );
    vals.insert("journal_id".into(), json!(journal_id));
    vals.insert("currency_id".into(), json!(currency.id));
    vals.insert("narration".into(), json!(describe_shipment(event, &first)));
    vals.insert("invoice_line_ids".into(), json!([line]));
    let bill_id = create_move(odoo, vals, "in_invoice").await?;
    tracing::info!(event_id = %event.event_id, bill_id, "late charge on a separate draft bill");
    Ok(ChargeApplied {
        bill_id,
        on_original_bill: false,
        already_applied: false,
    })
}

/// Bills of `partner_id` with `ref` = `reference`, oldest first. `assumed` is the dry-run
/// answer.
pub async fn find_bills(
    odoo: &impl OdooPort,
    partner_id: i64,
    reference: &str,
    assumed: Value,
) -> Result<Vec<Bill>, FinanceError> {
    let lookup = OdooCall::new("account.move", "search_read")
        .with_arg(
            "domain",
            json!([
                ["move_type", "=", "in_invoice"],
                ["partner_id", "=", partner_id],
                ["ref", "=", reference],
            ]),
        )
        .with_arg("fields", json!(BILL_FIELDS))
        .with_arg("order", "id asc")
        .assuming(assumed);
    Ok(records(odoo.execute(&lookup).await?)?
        .iter()
        .filter_map(Bill::from_record)
        .collect())
}

/// A vendor bill Odoo shows paid, as the settlement sweep reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaidBill {
    pub id: i64,
    pub name: Option<String>,
    /// The carrier's invoice number.
    pub reference: String,
    /// `paid` or `in_payment`.
    pub payment_state: String,
    pub amount_total: Option<Decimal>,
    /// The currency's ISO code, from the many2one's name.
    pub currency: Option<String>,
    narration: Option<String>,
}

impl PaidBill {
    /// Whether freightbridge drafted this bill from `invoice` (its fingerprint is in the
    /// narration): a bill typed by hand with the same number is not ours to settle.
    pub fn drafted_from(&self, invoice: &Invoice) -> bool {
        self.narration
            .as_deref()
            .is_some_and(|n| n.contains(&invoice_fingerprint(invoice)))
    }
}

/// The payment states that settle a bill: paid, or paid and waiting for its bank statement.
pub const SETTLED_PAYMENT_STATES: [&str; 2] = ["paid", "in_payment"];

/// Posted vendor bills with `ref` among `references` that Odoo shows paid: one `search_read`
/// for the lot (the caller pages the references), oldest first.
pub async fn paid_bills(
    odoo: &impl OdooPort,
    references: &[String],
) -> Result<Vec<PaidBill>, FinanceError> {
    if references.is_empty() {
        return Ok(Vec::new());
    }
    let lookup = OdooCall::new("account.move", "search_read")
        .with_arg(
            "domain",
            json!([
                ["move_type", "=", "in_invoice"],
                ["state", "=", "posted"],
                ["ref", "in", references],
                ["payment_state", "in", SETTLED_PAYMENT_STATES],
            ]),
        )
        .with_arg(
            "fields",
            json!([
                "name",
                "ref",
                "narration",
                "payment_state",
                "amount_total",
                "currency_id"
            ]),
        )
        .with_arg("order", "id asc")
        .assuming(json!([]));
    Ok(records(odoo.execute(&lookup).await?)?
        .iter()
        .filter_map(|record| {
            Some(PaidBill {
                id: record_id(record)?,
                name: text(record.get("name")).map(str::to_owned),
                reference: text(record.get("ref"))?.to_owned(),
                payment_state: text(record.get("payment_state"))?.to_owned(),
                amount_total: money::from_wire(record.get("amount_total")),
                currency: record
                    .get("currency_id")
                    .and_then(Value::as_array)
                    .and_then(|pair| pair.get(1))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                narration: text(record.get("narration")).map(str::to_owned),
            })
        })
        .collect())
}

/// The bill an outcome refers to; not there (yet) is retryable.
async fn the_bill(
    odoo: &impl OdooPort,
    event: &CanonicalEvent,
    partner_id: i64,
    number: &str,
) -> Result<Bill, FinanceError> {
    let number = number.trim();
    let assumed = json!([{"id": 0, "state": "draft", "ref": number}]);
    pick_bill(find_bills(odoo, partner_id, number, assumed).await?).ok_or_else(|| {
        FinanceError::BillNotFound {
            carrier: carrier_key(event).to_owned(),
            number: number.to_owned(),
        }
    })
}

/// Of several bills with one number, the one freightbridge created (else the oldest).
fn pick_bill(bills: Vec<Bill>) -> Option<Bill> {
    let ours = bills.iter().position(|b| b.fingerprint().is_some());
    let mut bills = bills;
    match ours {
        Some(index) => Some(bills.swap_remove(index)),
        None => bills.into_iter().next(),
    }
}

fn check_same_currency(bill: &Bill, currency: &Currency) -> Result<(), FinanceError> {
    match bill.currency_id {
        Some(id) if id != currency.id => Err(FinanceError::refused(
            "currency_mismatch",
            format!(
                "the event is in {} but bill id {} is in another currency",
                currency.code, bill.id
            ),
        )),
        _ => Ok(()),
    }
}

/// `create` of one `account.move`, returning its id (an int over JSON-RPC, `[id]` over JSON-2).
pub(crate) async fn create_move(
    odoo: &impl OdooPort,
    vals: Map<String, Value>,
    move_type: &str,
) -> Result<i64, FinanceError> {
    let create = OdooCall::new("account.move", "create")
        .with_arg("vals_list", Value::Array(vec![Value::Object(vals)]))
        .with_arg("context", json!({"default_move_type": move_type}))
        .assuming(json!([0]));
    Ok(created_id(
        &odoo.execute(&create).await?,
        "account.move.create",
    )?)
}

/// One invoice line as the `[0, 0, vals]` command: account and taxes always explicit
/// (reference §9.7), quantity one, the charge as the unit price.
fn line_command(
    label: &str,
    amount: Decimal,
    booking: &ChargeBooking,
) -> Result<Value, FinanceError> {
    let mut vals = Map::new();
    vals.insert("name".into(), json!(label));
    vals.insert("quantity".into(), json!(1));
    vals.insert("price_unit".into(), money::to_wire(amount)?);
    vals.insert("account_id".into(), json!(booking.account_id));
    if let Some(product_id) = booking.product_id {
        vals.insert("product_id".into(), json!(product_id));
    }
    vals.insert("tax_ids".into(), json!([[6, 0, booking.tax_ids]]));
    Ok(json!([0, 0, vals]))
}

/// "Base freight 400 — shipment 545930791T": what the charge is and which shipment it is for.
pub fn line_label(event: &CanonicalEvent, line: &ChargeLine) -> String {
    let mut label = kind_words(line.kind).to_owned();
    if let Some(description) = line
        .description
        .as_deref()
        .map(|d| one_line(d, MAX_DESCRIPTION))
        && !description.is_empty()
    {
        let _ = write!(label, ": {description}");
    }
    if let Some(code) = line
        .code
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
    {
        let _ = write!(label, " ({})", one_line(code, 20));
    }
    let _ = write!(
        label,
        " — shipment {}",
        event.shipment.tracking_number.trim()
    );
    label
}

fn kind_words(kind: ChargeKind) -> &'static str {
    match kind {
        ChargeKind::BaseFreight => "Base freight",
        ChargeKind::FuelSurcharge => "Fuel surcharge",
        ChargeKind::Accessorial => "Accessorial charge",
        ChargeKind::Tax => "Tax",
        ChargeKind::Discount => "Discount",
        ChargeKind::Other => "Other charge",
    }
}

/// "Carrier invoice 3410889 for shipment 545930791T (WH/IN/00001), received from ups-edi."
fn describe_shipment(event: &CanonicalEvent, what: &str) -> String {
    let mut text = format!(
        "{} for shipment {}",
        what.trim_end_matches('.'),
        event.shipment.tracking_number.trim()
    );
    if let Some(reference) = event
        .shipment
        .reference
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
    {
        let _ = write!(text, " ({})", one_line(reference, 60));
    }
    let _ = write!(text, ", received from {}.", event.partner);
    text
}

#[cfg(test)]
mod tests {
    use crate::canonical::{EventBody, InvoiceReceived, SCHEMA, ShipmentRef, event_id};

    use super::*;

    fn invoice() -> Invoice {
        Invoice {
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
        }
    }

    fn event() -> CanonicalEvent {
        CanonicalEvent {
            schema: SCHEMA.into(),
            event_id: event_id("edifabric", "000000263", 0),
            partner: "edifabric".into(),
            source_event_id: "000000263".into(),
            correlation_id: "000000263".into(),
            occurred_at: "2007-12-16T14:06:00Z".parse().unwrap(),
            received_at: "2007-12-16T14:06:00Z".parse().unwrap(),
            shipment: ShipmentRef {
                tracking_number: "545930791T".into(),
                carrier: Some("NLMI".into()),
                reference: Some("WH/IN/00001".into()),
            },
            body: EventBody::InvoiceReceived(InvoiceReceived { invoice: invoice() }),
        }
    }

    #[test]
    fn the_fingerprint_depends_on_the_invoice_not_on_how_it_arrived() {
        let a = invoice();
        let mut same = invoice();
        same.total = "51.650".parse().unwrap();
        same.references.push(crate::canonical::Reference {
            qualifier: "BM".into(),
            value: "x".into(),
        });
        assert_eq!(invoice_fingerprint(&a), invoice_fingerprint(&same));
        let mut other = invoice();
        other.lines[0].amount = "51.66".parse().unwrap();
        other.total = "51.66".parse().unwrap();
        assert_ne!(invoice_fingerprint(&a), invoice_fingerprint(&other));
        let fingerprint = invoice_fingerprint(&a);
        assert!(fingerprint.starts_with("[freightbridge invoice sha256:"));
        assert!(fingerprint.ends_with(']'));
    }

    #[test]
    fn a_paid_bill_is_ours_to_settle_only_with_the_invoices_fingerprint() {
        let invoice: Invoice = serde_json::from_value(json!({
            "number": "3410889", "issued_on": "2026-11-20", "currency": "USD", "total": "51.65",
            "lines": [{"kind": "base_freight", "amount": "51.65"}], "delivered_on": null
        }))
        .expect("invoice");
        let paid = |narration: Option<String>| PaidBill {
            id: 7,
            name: Some("BILL/2026/11/0001".into()),
            reference: "3410889".into(),
            payment_state: "paid".into(),
            amount_total: Some("51.65".parse().expect("decimal")),
            currency: Some("USD".into()),
            narration,
        };
        let ours = format!(
            "<p>Carrier invoice 3410889. {}</p>",
            invoice_fingerprint(&invoice)
        );
        assert!(paid(Some(ours)).drafted_from(&invoice));
        assert!(!paid(Some("<p>typed by hand</p>".into())).drafted_from(&invoice));
        assert!(!paid(None).drafted_from(&invoice));
        let mut other = invoice.clone();
        other.total = "60.00".parse().expect("decimal");
        let theirs = format!("<p>{}</p>", invoice_fingerprint(&other));
        assert!(!paid(Some(theirs)).drafted_from(&invoice));
    }

    #[test]
    fn a_bill_knows_its_fingerprint_inside_odoos_html_narration() {
        let fingerprint = invoice_fingerprint(&invoice());
        let bill = Bill {
            id: 1,
            name: None,
            state: "draft".into(),
            narration: Some(format!("<p>Carrier invoice 3410889. {fingerprint}</p>")),
            amount_untaxed: None,
            currency_id: None,
        };
        assert_eq!(bill.fingerprint(), Some(fingerprint.as_str()));
        let hand_made = Bill {
            narration: Some("<p>entered by hand</p>".into()),
            ..bill
        };
        assert_eq!(hand_made.fingerprint(), None);
    }

    #[test]
    fn line_labels_name_the_charge_and_the_shipment() {
        let e = event();
        let cases = [
            (
                ChargeLine {
                    kind: ChargeKind::BaseFreight,
                    code: Some("400".into()),
                    description: None,
                    amount: Decimal::ONE,
                },
                "Base freight (400) — shipment 545930791T",
            ),
            (
                ChargeLine {
                    kind: ChargeKind::FuelSurcharge,
                    code: None,
                    description: Some("Fuel\nsurcharge 9%".into()),
                    amount: Decimal::ONE,
                },
                "Fuel surcharge: Fuel surcharge 9% — shipment 545930791T",
            ),
        ];
        for (line, expected) in cases {
            assert_eq!(line_label(&e, &line), expected);
        }
        assert_eq!(
            describe_shipment(&e, "Carrier invoice 3410889"),
            "Carrier invoice 3410889 for shipment 545930791T (WH/IN/00001), received from edifabric."
        );
    }

    #[test]
    fn line_commands_send_account_and_taxes_explicitly() {
        let booking = ChargeBooking {
            account_id: 32,
            product_id: Some(2),
            tax_ids: vec![],
        };
        let command = line_command("x", "51.65".parse().unwrap(), &booking).unwrap();
        assert_eq!(
            command,
            json!([0, 0, {"name": "x", "quantity": 1, "price_unit": 51.65, "account_id": 32,
                          "product_id": 2, "tax_ids": [[6, 0, []]]}])
        );
    }

    #[test]
    fn our_bill_is_preferred_among_bills_sharing_a_number() {
        let bill = |id, narration: Option<&str>| Bill {
            id,
            name: None,
            state: "draft".into(),
            narration: narration.map(Into::into),
            amount_untaxed: None,
            currency_id: None,
        };
        let fingerprint = invoice_fingerprint(&invoice());
        let picked = pick_bill(vec![bill(2, None), bill(5, Some(&fingerprint))]).unwrap();
        assert_eq!(picked.id, 5);
        assert_eq!(pick_bill(vec![bill(2, None), bill(3, None)]).unwrap().id, 2);
        assert_eq!(pick_bill(vec![]), None);
    }

    #[test]
    fn the_dispute_note_lists_reasons_amounts_and_the_marker() {
        use crate::canonical::{DisputeCode, DisputeReason};
        let disputed = InvoiceDisputed {
            invoice_number: "3410889".into(),
            currency: "USD".into(),
            invoiced_total: "51.65".parse().unwrap(),
            expected_total: Some("40.00".parse().unwrap()),
            reasons: vec![
                DisputeReason {
                    code: DisputeCode::AmountOverTolerance,
                    message: "11.65 over the estimate".into(),
                },
                DisputeReason {
                    code: DisputeCode::NotDelivered,
                    message: "no proof of delivery".into(),
                },
            ],
        };
        assert_eq!(
            dispute_note(&event(), &disputed, "[m]"),
            "The reconciler could not approve invoice 3410889 of NLMI for shipment 545930791T: \
             11.65 over the estimate (amount_over_tolerance); no proof of delivery (not_delivered). \
             Invoiced 51.65 USD, expected 40.00 USD. The bill stays in draft. [m]"
        );
    }
}
