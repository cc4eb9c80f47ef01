//! Every Odoo operation of the poster against real Odoo Community servers: 19 over JSON-2, 19
//! over JSON-RPC (each on its own database) and 18 over JSON-RPC. The servers are started once
//! for this binary from `../shared/odoo` (or named by `FREIGHTBRIDGE_TEST_ODOO`) and stopped at
//! the end; see `freightbridge_tests::real_odoo`. Results are checked with the suite's own
//! JSON-RPC queries (states, counts, balances to the cent), never with the poster's answers.
//!
//! A custom harness (`harness = false`, libtest-mimic): one trial per operation and site, so the
//! servers outlive every trial and are stopped after the last.

use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Datelike, Duration as Span, NaiveDate, Utc};
use freightbridge::canonical::{
    CanonicalEvent, ChargeKind, EventBody, Invoice, InvoiceReceived, ShipmentStatus, StatusChange,
};
use freightbridge::config::{PartnersFile, Secret};
use freightbridge::failure::FailureReason;
use freightbridge::idempotency::memory::MemoryStore;
use freightbridge::idempotency::{Idempotency, Policy};
use freightbridge::odoo::{Finance, FinanceConfig, OdooClient, OdooConfig, Transport};
use freightbridge_tests::freight_events::{self, dec, line};
use freightbridge_tests::poster_input;
use freightbridge_tests::real_odoo::{Admin, OdooServer, RealOdoo, m2o};
use freightctl::demo::CountingOdoo;
use libtest_mimic::{Arguments, Failed, Trial};
use odoo_poster::Poster;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------------------------
// Sites: a server, a transport and the reference data seeded into its database.

#[derive(Debug, Clone)]
struct Site {
    name: String,
    server: OdooServer,
    transport: Transport,
    seed: Seed,
}

/// Reference records every operation needs, created once per database.
#[derive(Debug, Clone)]
struct Seed {
    ofl: i64,
    ups: i64,
    nlmi: i64,
    customer: i64,
    ap_user: i64,
    freight: i64,
    /// Storable, FIFO-costed: receipts get landed costs.
    pallet: i64,
    widget: i64,
}

/// Finance settings of the suite: what a fresh Odoo with the generic chart has (600000
/// expenses, 211100 bills to receive, BILL and MISC journals) plus the seeded carriers and
/// product.
const SETTINGS: &str = r#"
[company]
currency = "USD"

[journals]
purchase = "BILL"
accrual = "MISC"

[accrual]
expense_account = "600000"
liability_account = "211100"

[bills]
ap_user = "fb.ap.clerk"
dispute_activity_type = "mail.mail_activity_data_todo"
dispute_deadline_days = 3

[carriers.OFL]
ref = "FB-CARRIER-OFL"

[carriers.UPSN]
ref = "FB-CARRIER-UPS"

[carriers.NLMI]
xmlid = "freight_sync.carrier_nlmi"

[charges.base_freight]
account = "600000"
product = "FB-FREIGHT"
taxes = []

[charges.fuel_surcharge]
account = "600000"
product = "FB-FREIGHT"
taxes = []

[charges.accessorial]
account = "600000"
taxes = []

[charges.discount]
account = "600000"
taxes = []

# A carrier's tax line is a cost line of its own (the carrier charged it), not an Odoo tax.
[charges.tax]
account = "600000"
taxes = []

[charges.other]
account = "600000"
taxes = []

[landed_costs]
enabled = true
product = "FB-FREIGHT"
split_method = "by_quantity"

[invoice_release]
enabled = true
"#;

/// The least-privileged poster user (JSON-RPC with its password).
const BOT_LOGIN: &str = "fb.bot";
const BOT_PASSWORD: &str = "fb-bot-password-for-tests";

async fn seed(admin: &Admin) -> Seed {
    let vendor = |name: &str, reference: &str| json!({"name": name, "ref": reference, "is_company": true, "supplier_rank": 1});
    let ofl = admin
        .ensure(
            "res.partner",
            json!([["ref", "=", "FB-CARRIER-OFL"]]),
            vendor("Oceanic Freight Lines Ltd", "FB-CARRIER-OFL"),
        )
        .await;
    let ups = admin
        .ensure(
            "res.partner",
            json!([["ref", "=", "FB-CARRIER-UPS"]]),
            vendor("UPS Supply Chain", "FB-CARRIER-UPS"),
        )
        .await;
    let nlmi = match admin.xmlid("freight_sync.carrier_nlmi").await {
        Some(id) => id,
        None => {
            let id = admin
                .create(
                    "res.partner",
                    vendor("National Logistics Management", "FB-NLMI"),
                )
                .await;
            admin
                .create(
                    "ir.model.data",
                    json!({"module": "freight_sync", "name": "carrier_nlmi",
                           "model": "res.partner", "res_id": id, "noupdate": true}),
                )
                .await;
            id
        }
    };
    let customer = admin
        .ensure(
            "res.partner",
            json!([["ref", "=", "FB-CUSTOMER"]]),
            json!({"name": "Blue Harbor Retail GmbH", "ref": "FB-CUSTOMER", "is_company": true}),
        )
        .await;
    // Accounts payable needs Billing rights, or Odoo refuses to assign it a bill's activity.
    let billing = admin
        .xmlid("account.group_account_invoice")
        .await
        .expect("account.group_account_invoice");
    let groups = if admin.version >= 19 {
        "group_ids"
    } else {
        "groups_id"
    };
    let ap_user = admin
        .ensure(
            "res.users",
            json!([["login", "=", "fb.ap.clerk"]]),
            json!({"name": "Accounts Payable Clerk", "login": "fb.ap.clerk",
                   groups: [[4, billing]]}),
        )
        .await;
    // The poster's own bot, with exactly the groups docs/odoo.md §5 gives it.
    let mut bot_groups = Vec::new();
    for group in [
        "base.group_user",
        "stock.group_stock_user",
        "account.group_account_invoice",
        "sales_team.group_sale_salesman_all_leads",
        "stock.group_stock_manager",
    ] {
        let id = admin
            .xmlid(group)
            .await
            .unwrap_or_else(|| panic!("{group}"));
        bot_groups.push(json!([4, id]));
    }
    admin
        .ensure(
            "res.users",
            json!([["login", "=", BOT_LOGIN]]),
            // An email address: assigning an activity to someone notifies them from the bot, and
            // Odoo 18 refuses to send without a sender address.
            json!({"name": "freightbridge bot", "login": BOT_LOGIN, "password": BOT_PASSWORD,
                   "email": "freightbridge-bot@example.com", groups: bot_groups}),
        )
        .await;
    let freight = admin
        .ensure(
            "product.product",
            json!([["default_code", "=", "FB-FREIGHT"]]),
            json!({"name": "Freight", "default_code": "FB-FREIGHT", "type": "service",
                   "landed_cost_ok": true, "purchase_ok": true, "sale_ok": false}),
        )
        .await;
    let fifo = admin
        .ensure(
            "product.category",
            json!([["name", "=", "FB FIFO goods"]]),
            json!({"name": "FB FIFO goods", "property_cost_method": "fifo",
                   "property_valuation": "real_time"}),
        )
        .await;
    let storable = |name: &str, code: &str, cost: f64| {
        json!({"name": name, "default_code": code, "type": "consu", "is_storable": true,
               "categ_id": fifo, "standard_price": cost, "list_price": cost * 3.0,
               "invoice_policy": "order"})
    };
    let pallet = admin
        .ensure(
            "product.product",
            json!([["default_code", "=", "FB-PAL"]]),
            storable("Pallet of widgets", "FB-PAL", 80.0),
        )
        .await;
    let widget = admin
        .ensure(
            "product.product",
            json!([["default_code", "=", "FB-WID"]]),
            storable("Small widget", "FB-WID", 5.0),
        )
        .await;
    // One UPS invoice of the 210 sample is in CAD: a site billing it activates the currency.
    let cad = admin
        .call(
            "res.currency",
            "search",
            json!([[["name", "=", "CAD"]]]),
            json!({"context": {"active_test": false}}),
        )
        .await
        .expect("CAD");
    let cad: Vec<i64> = cad
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_i64)
        .collect();
    admin
        .write("res.currency", &cad, json!({"active": true}))
        .await;
    Seed {
        ofl,
        ups,
        nlmi,
        customer,
        ap_user,
        freight,
        pallet,
        widget,
    }
}

// ---------------------------------------------------------------------------------------------
// One operation's world: a poster on the site, the suite's own admin view, unique names.

struct World {
    site: Site,
    admin: Admin,
    store: Arc<MemoryStore>,
    poster: Poster<CountingOdoo<OdooClient>, Arc<MemoryStore>>,
    /// Unique per trial and run: tracking numbers and invoice numbers end with it.
    tag: String,
}

/// The poster's connection settings for the site, as an integration engineer would set them.
fn odoo_config(site: &Site) -> OdooConfig {
    let server = &site.server;
    let mut config = OdooConfig::new(&server.url);
    config.db = Some(server.db.clone());
    config.user = Some(server.login.clone());
    config.api_key = Some(Secret::new(match site.transport {
        Transport::Json2 => server.api_key.as_deref().expect("JSON-2 needs an API key"),
        Transport::JsonRpc => server.api_key.as_deref().unwrap_or(&server.password),
    }));
    config.transport = Some(site.transport);
    config.timeout = std::time::Duration::from_secs(60);
    config
}

impl World {
    async fn new(site: &Site, case: &str) -> World {
        let config = odoo_config(site);
        let client = OdooClient::connect(&config).await.expect("connect");
        let store = Arc::new(MemoryStore::new());
        let finance = Finance::new(FinanceConfig::parse(SETTINGS).expect("settings"));
        let poster = Poster::new(
            CountingOdoo::new(client),
            Idempotency::new(store.clone(), Policy::default()),
        )
        .with_finance(finance);
        let admin = Admin::connect(&site.server).await.expect("admin login");
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        World {
            site: site.clone(),
            admin,
            store,
            poster,
            tag: format!("{case}-{}", &nonce[..8]).to_uppercase(),
        }
    }

    fn tracking(&self) -> String {
        format!("FBT-{}", self.tag)
    }

    fn number(&self, n: u8) -> String {
        format!("INV{n}-{}", self.tag)
    }

    fn round_trips(&self) -> usize {
        self.poster.odoo().calls().values().sum()
    }

    async fn handle(&self, event: &CanonicalEvent) -> Result<(), FailureReason> {
        self.handle_as(event, 1).await
    }

    async fn handle_as(
        &self,
        event: &CanonicalEvent,
        receive_count: u32,
    ) -> Result<(), FailureReason> {
        let now = Utc::now();
        self.poster
            .handle_record(
                poster_input::record(event, receive_count),
                now,
                now + Span::seconds(120),
            )
            .await
    }

    /// Handles the event and reports how many Odoo round trips it took.
    async fn measured(&self, operation: &str, event: &CanonicalEvent) -> usize {
        let before = self.round_trips();
        self.handle(event)
            .await
            .unwrap_or_else(|e| panic!("{operation}: {e:?}"));
        let trips = self.round_trips() - before;
        record_trips(&self.site.name, operation, trips);
        trips
    }

    /// An attempt that wrote to Odoo and died before completing its record: the next delivery
    /// looks for its own earlier write.
    async fn crashed_attempt(&self, event: &CanonicalEvent) {
        poster_input::crashed_attempt(&self.store, event).await;
    }

    // ---- the suite's own view of Odoo ----

    async fn bills(&self, number_prefix: &str) -> Vec<Map<String, Value>> {
        self.admin
            .search_read(
                "account.move",
                json!([
                    ["move_type", "=", "in_invoice"],
                    ["ref", "=like", format!("{number_prefix}%")]
                ]),
                &[
                    "name",
                    "state",
                    "ref",
                    "partner_id",
                    "journal_id",
                    "date",
                    "invoice_date",
                    "amount_untaxed",
                    "amount_tax",
                    "amount_total",
                    "narration",
                ],
            )
            .await
    }

    async fn bill(&self, number: &str) -> Map<String, Value> {
        let mut bills = self.bills(number).await;
        bills.retain(|b| b["ref"] == number);
        assert_eq!(
            bills.len(),
            1,
            "{}: bills numbered {number}",
            self.site.name
        );
        bills.remove(0)
    }

    async fn lines(&self, move_id: i64) -> Vec<Map<String, Value>> {
        self.admin
            .search_read(
                "account.move.line",
                json!([["move_id", "=", move_id]]),
                &[
                    "name",
                    "display_type",
                    "account_id",
                    "product_id",
                    "price_unit",
                    "quantity",
                    "debit",
                    "credit",
                    "balance",
                    "tax_ids",
                    "partner_id",
                ],
            )
            .await
    }

    async fn product_lines(&self, move_id: i64) -> Vec<Map<String, Value>> {
        let mut lines = self.lines(move_id).await;
        lines.retain(|l| l["display_type"] == "product");
        lines
    }

    /// Debits equal credits to the cent, and the entry has lines.
    async fn assert_balanced(&self, move_id: i64) {
        let lines = self.lines(move_id).await;
        assert!(
            !lines.is_empty(),
            "{}: move {move_id} has no lines",
            self.site.name
        );
        let debit: Decimal = lines.iter().map(|l| money(&l["debit"])).sum();
        let credit: Decimal = lines.iter().map(|l| money(&l["credit"])).sum();
        assert_eq!(
            debit, credit,
            "{}: move {move_id} unbalanced",
            self.site.name
        );
    }

    /// The shipment's accrual entries and their reversals (`ref` holds `FB-ACR/<tracking>/`).
    async fn accrual_moves(&self) -> Vec<Map<String, Value>> {
        self.admin
            .search_read(
                "account.move",
                json!([["ref", "ilike", format!("FB-ACR/{}/", self.tracking())]]),
                &[
                    "name",
                    "state",
                    "ref",
                    "date",
                    "reversed_entry_id",
                    "journal_id",
                ],
            )
            .await
    }

    /// What is accrued for the shipment: credit minus debit of its posted items on 211100.
    async fn accrued(&self) -> Decimal {
        let liability = self
            .admin
            .search_read("account.account", json!([["code", "=", "211100"]]), &["id"])
            .await[0]["id"]
            .clone();
        -self
            .admin
            .search_read(
                "account.move.line",
                json!([
                    ["account_id", "=", liability],
                    ["ref", "ilike", format!("FB-ACR/{}/", self.tracking())],
                    ["parent_state", "=", "posted"],
                ]),
                &["balance"],
            )
            .await
            .iter()
            .map(|l| money(&l["balance"]))
            .sum::<Decimal>()
    }

    /// Notes on a picking that carry the event's marker.
    async fn notes(&self, picking: i64, event: &CanonicalEvent) -> usize {
        self.admin
            .search_read(
                "mail.message",
                json!([
                    ["model", "=", "stock.picking"],
                    ["res_id", "=", picking],
                    [
                        "body",
                        "ilike",
                        format!("[freightbridge event {}]", event.event_id)
                    ],
                ]),
                &["id"],
            )
            .await
            .len()
    }

    // ---- business documents the operations act on ----

    /// A confirmed sale order whose delivery carries `tracking`: (order, picking).
    async fn sale_with_delivery(&self, tracking: &str) -> (i64, i64) {
        let seed = &self.site.seed;
        let order = self
            .admin
            .create(
                "sale.order",
                json!({"partner_id": seed.customer, "client_order_ref": tracking,
                       "order_line": [[0, 0, {"product_id": seed.pallet, "product_uom_qty": 2,
                                              "price_unit": 250.0}]]}),
            )
            .await;
        self.admin
            .act("sale.order", "action_confirm", &[order], json!({}))
            .await;
        let read = self
            .admin
            .search_read("sale.order", json!([["id", "=", order]]), &["picking_ids"])
            .await;
        let picking = read[0]["picking_ids"][0]
            .as_i64()
            .expect("delivery picking");
        self.admin
            .write(
                "stock.picking",
                &[picking],
                json!({"carrier_tracking_ref": tracking}),
            )
            .await;
        (order, picking)
    }

    /// The order's draft customer invoice, made by Odoo's own invoicing wizard.
    async fn customer_invoice(&self, order: i64) -> i64 {
        let context = json!({"active_model": "sale.order", "active_ids": [order]});
        let wizard = self
            .admin
            .call(
                "sale.advance.payment.inv",
                "create",
                json!([{"advance_payment_method": "delivered"}]),
                json!({"context": context}),
            )
            .await
            .expect("invoicing wizard")
            .as_i64()
            .expect("wizard id");
        self.admin
            .act(
                "sale.advance.payment.inv",
                "create_invoices",
                &[wizard],
                context,
            )
            .await;
        let read = self
            .admin
            .search_read("sale.order", json!([["id", "=", order]]), &["invoice_ids"])
            .await;
        read[0]["invoice_ids"][0]
            .as_i64()
            .expect("customer invoice")
    }

    /// A validated receipt of 10 pallets at 80 and 30 widgets at 5 carrying `tracking`.
    async fn receipt(&self, tracking: &str) -> i64 {
        let seed = &self.site.seed;
        let order = self
            .admin
            .create(
                "purchase.order",
                json!({"partner_id": seed.ofl, "partner_ref": tracking, "order_line": [
                    [0, 0, {"product_id": seed.pallet, "product_qty": 10, "price_unit": 80.0}],
                    [0, 0, {"product_id": seed.widget, "product_qty": 30, "price_unit": 5.0}]]}),
            )
            .await;
        self.admin
            .act("purchase.order", "button_confirm", &[order], json!({}))
            .await;
        let read = self
            .admin
            .search_read(
                "purchase.order",
                json!([["id", "=", order]]),
                &["picking_ids"],
            )
            .await;
        let picking = read[0]["picking_ids"][0].as_i64().expect("receipt");
        for line in self
            .admin
            .search_read(
                "stock.move",
                json!([["picking_id", "=", picking]]),
                &["product_uom_qty"],
            )
            .await
        {
            let id = line["id"].as_i64().unwrap_or_default();
            self.admin
                .write(
                    "stock.move",
                    &[id],
                    json!({"quantity": line["product_uom_qty"], "picked": true}),
                )
                .await;
        }
        self.admin
            .write(
                "stock.picking",
                &[picking],
                json!({"carrier_tracking_ref": tracking}),
            )
            .await;
        let validated = self
            .admin
            .act("stock.picking", "button_validate", &[picking], json!({}))
            .await;
        assert_eq!(validated, json!(true), "receipt validation opened a wizard");
        picking
    }
}

fn money(value: &Value) -> Decimal {
    let text = match value {
        Value::Number(n) => n.to_string(),
        _ => "0".into(),
    };
    let parsed: Decimal = text.parse().unwrap_or_else(|_| {
        // Floats such as 1e-05 come back in exponent form.
        Decimal::from_scientific(&text).unwrap_or_default()
    });
    parsed.round_dp(2)
}

fn id(record: &Map<String, Value>) -> i64 {
    record["id"].as_i64().expect("id")
}

// ---------------------------------------------------------------------------------------------
// Events, dated so that Odoo never sees a future date.

fn days_ago(days: i64) -> DateTime<Utc> {
    Utc::now() - Span::days(days)
}

fn event(w: &World, partner: &str, source: &str, carrier: &str, body: EventBody) -> CanonicalEvent {
    let source = format!("{source}-{}", w.tag);
    freight_events::event(partner, &source, carrier, &w.tracking(), days_ago(1), body)
}

/// The carrier's invoice for the shipment: freight and fuel 85.50, issued on the 20th of last
/// month.
fn ofl_invoice(number: &str, total: &str) -> Invoice {
    let today = Utc::now().date_naive();
    let last_month = today.with_day(1).expect("day 1") - Span::days(1);
    let freight = dec(total) - dec("85.50");
    freight_events::invoice(
        number,
        last_month.with_day(20).expect("day 20"),
        dec(total),
        vec![
            line(ChargeKind::BaseFreight, "400", freight),
            line(ChargeKind::FuelSurcharge, "FUE", dec("85.50")),
        ],
    )
}

fn invoice_event(w: &World, source: &str, invoice: Invoice) -> CanonicalEvent {
    event(
        w,
        "ofl-edi",
        source,
        "OFL",
        EventBody::InvoiceReceived(InvoiceReceived { invoice }),
    )
}

fn estimate_event(w: &World, source: &str, hours_ago: i64, total: &str) -> CanonicalEvent {
    let mut e = event(w, "ofl-tms", source, "OFL", freight_events::estimate(total));
    e.occurred_at = Utc::now() - Span::hours(hours_ago);
    e
}

fn matched_event(w: &World, source: &str, number: &str) -> CanonicalEvent {
    event(
        w,
        "reconciler",
        source,
        "OFL",
        freight_events::matched(number),
    )
}

fn disputed_event(w: &World, source: &str, number: &str) -> CanonicalEvent {
    event(
        w,
        "reconciler",
        source,
        "OFL",
        freight_events::disputed(number),
    )
}

fn charge_event(w: &World, source: &str, number: &str, amount: &str) -> CanonicalEvent {
    event(
        w,
        "ofl-edi",
        source,
        "OFL",
        freight_events::detention(Some(number), amount),
    )
}

fn in_transit_event(w: &World, source: &str) -> CanonicalEvent {
    event(
        w,
        "easypost",
        source,
        "OFL",
        EventBody::StatusChanged(StatusChange {
            status: ShipmentStatus::InTransit,
            status_detail: None,
            raw_status: None,
            location: None,
            message: Some("Departed the facility".into()),
            eta: None,
        }),
    )
}

fn delivered_event(w: &World, source: &str) -> CanonicalEvent {
    event(
        w,
        "easypost",
        source,
        "OFL",
        freight_events::delivered(days_ago(1), None),
    )
}

// ---------------------------------------------------------------------------------------------
// The operations.

async fn milestone_note(w: World) {
    let (_, picking) = w.sale_with_delivery(&w.tracking()).await;
    let transit = in_transit_event(&w, "transit");
    let trips = w.measured("milestone note", &transit).await;
    assert_eq!(w.notes(picking, &transit).await, 1, "{}", w.site.name);
    assert!(trips <= 2, "{}: {trips} round trips", w.site.name);
    // Redelivered by SQS: the poster looks for its note first and posts nothing.
    w.crashed_attempt(&transit).await;
    w.handle_as(&transit, 2).await.unwrap();
    assert_eq!(w.notes(picking, &transit).await, 1, "{}", w.site.name);
}

async fn proof_of_delivery_releases_the_customer_invoice(w: World) {
    let (order, picking) = w.sale_with_delivery(&w.tracking()).await;
    let invoice = w.customer_invoice(order).await;
    let (other_order, _) = w
        .sale_with_delivery(&format!("{}-OTHER", w.tracking()))
        .await;
    let untouched = w.customer_invoice(other_order).await;
    let delivered = delivered_event(&w, "delivered");
    w.measured("delivery note + invoice release", &delivered)
        .await;
    assert_eq!(w.notes(picking, &delivered).await, 1, "{}", w.site.name);
    let states = |ids: Vec<i64>| {
        let admin = &w.admin;
        async move {
            admin
                .search_read(
                    "account.move",
                    json!([["id", "in", ids]]),
                    &["state", "move_type"],
                )
                .await
        }
    };
    let released = states(vec![invoice]).await;
    assert_eq!(released[0]["state"], "posted", "{}", w.site.name);
    assert_eq!(released[0]["move_type"], "out_invoice");
    w.assert_balanced(invoice).await;
    assert_eq!(
        states(vec![untouched]).await[0]["state"],
        "draft",
        "{}",
        w.site.name
    );
    // Again: no second note, nothing else posted, never a vendor bill.
    w.crashed_attempt(&delivered).await;
    w.handle_as(&delivered, 2).await.unwrap();
    assert_eq!(w.notes(picking, &delivered).await, 1, "{}", w.site.name);
    assert_eq!(states(vec![untouched]).await[0]["state"], "draft");
}

async fn accrual_and_revised_accrual(w: World) {
    let first = estimate_event(&w, "est-1", 30, "900.00");
    let trips = w.measured("accrual", &first).await;
    assert!(trips <= 7, "{}: {trips}", w.site.name);
    let moves = w.accrual_moves().await;
    assert_eq!(moves.len(), 1, "{}", w.site.name);
    assert_eq!(moves[0]["state"], "posted");
    w.assert_balanced(id(&moves[0])).await;
    assert_eq!(w.accrued().await, dec("900.00"), "{}", w.site.name);

    let revised = estimate_event(&w, "est-2", 20, "1300.00");
    w.measured("accrual revision", &revised).await;
    let moves = w.accrual_moves().await;
    assert_eq!(
        moves.len(),
        2,
        "{}: the revision books the difference",
        w.site.name
    );
    for m in &moves {
        assert_eq!(m["state"], "posted");
        w.assert_balanced(id(m)).await;
    }
    assert_eq!(w.accrued().await, dec("1300.00"), "{}", w.site.name);

    // An older estimate arriving late, and a redelivery, change nothing.
    w.handle(&estimate_event(&w, "est-0", 40, "1100.00"))
        .await
        .unwrap();
    w.crashed_attempt(&revised).await;
    w.handle_as(&revised, 2).await.unwrap();
    assert_eq!(w.accrual_moves().await.len(), 2, "{}", w.site.name);
    assert_eq!(w.accrued().await, dec("1300.00"));

    // A lower estimate releases part of it.
    w.handle(&estimate_event(&w, "est-3", 10, "1250.00"))
        .await
        .unwrap();
    assert_eq!(w.accrued().await, dec("1250.00"), "{}", w.site.name);
}

/// The two sample 210 interchanges through the X12 adapter, with invoice numbers made unique.
async fn vendor_bills_from_x12_210(w: World) {
    let partners = PartnersFile::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../events/partners.local.toml"
    )))
    .expect("partners file");
    // (file, invoice number, total in the document, product lines)
    let documents = [
        (
            "edi-210-edifabric-truckload-invoice.edi",
            "3410889",
            "51.65",
            1,
        ),
        (
            "edi-210-ups-multi-invoice.edi",
            "0000001808WW308",
            "17.00",
            7,
        ),
        (
            "edi-210-ups-multi-invoice.edi",
            "0000001502WW308",
            "94.15",
            19,
        ),
    ];
    let suffix = &w.tag[w.tag.len() - 8..];
    let mut events = Vec::new();
    for file in [
        "edi-210-edifabric-truckload-invoice.edi",
        "edi-210-ups-multi-invoice.edi",
    ] {
        let path = format!("{}/fixtures/partners/{file}", env!("CARGO_MANIFEST_DIR"));
        let mut text =
            String::from_utf8_lossy(&std::fs::read(&path).expect("fixture")).into_owned();
        text = unique_invoice_numbers(&text, suffix);
        events.extend(freightctl::transform_body(&partners, "x12", text.as_bytes()).expect("210"));
    }
    let invoices: Vec<&CanonicalEvent> = events
        .iter()
        .filter(|e| matches!(e.body, EventBody::InvoiceReceived(_)))
        .collect();
    assert!(invoices.len() >= documents.len(), "{}", w.site.name);
    for e in &invoices {
        w.measured("vendor bill", e).await;
        // Every invoice of the interchanges is one bill with the invoice's total.
        let EventBody::InvoiceReceived(received) = &e.body else {
            continue;
        };
        let bill = w.bill(&received.invoice.number).await;
        assert_eq!(
            money(&bill["amount_total"]),
            received.invoice.total.round_dp(2),
            "{}: {}",
            w.site.name,
            received.invoice.number
        );
        w.assert_balanced(id(&bill)).await;
    }
    let seed = &w.site.seed;
    for (_, number, total, line_count) in documents {
        let number = format!("{number}{suffix}");
        let bill = w.bill(&number).await;
        assert_eq!(bill["state"], "draft", "{}", w.site.name);
        assert_eq!(
            money(&bill["amount_total"]),
            dec(total),
            "{}: {number}",
            w.site.name
        );
        assert_eq!(money(&bill["amount_untaxed"]), dec(total));
        assert_eq!(money(&bill["amount_tax"]), Decimal::ZERO);
        let vendor = m2o(&bill, "partner_id").unwrap_or_default();
        let expected_vendor = if number.starts_with("3410889") {
            seed.nlmi
        } else {
            seed.ups
        };
        assert_eq!(vendor, expected_vendor, "{}: {number}", w.site.name);
        let lines = w.product_lines(id(&bill)).await;
        assert_eq!(lines.len(), line_count, "{}: {number}", w.site.name);
        let sum: Decimal = lines.iter().map(|l| money(&l["price_unit"])).sum();
        assert_eq!(sum, dec(total), "{}: lines of {number}", w.site.name);
        w.assert_balanced(id(&bill)).await;
    }
}

/// Every B3 invoice number (B302) with `suffix` appended, so that each run bills anew.
fn unique_invoice_numbers(document: &str, suffix: &str) -> String {
    let mut out = String::with_capacity(document.len() + 64);
    let mut rest = document;
    while let Some(at) = rest.find("B3**") {
        let number_start = at + 4;
        let number_len = rest[number_start..].find('*').unwrap_or(0);
        out.push_str(&rest[..number_start + number_len]);
        out.push_str(suffix);
        rest = &rest[number_start + number_len..];
    }
    out.push_str(rest);
    out
}

async fn redelivered_and_reused_invoice_numbers(w: World) {
    let number = w.number(1);
    let first = invoice_event(&w, "inv-1", ofl_invoice(&number, "1335.50"));
    w.handle(&first).await.unwrap();
    // The same event again (SQS), after a crash, and the same invoice in another delivery.
    w.handle_as(&first, 2).await.unwrap();
    w.crashed_attempt(&first).await;
    w.handle_as(&first, 3).await.unwrap();
    w.handle(&invoice_event(
        &w,
        "inv-1-again",
        ofl_invoice(&number, "1335.50"),
    ))
    .await
    .unwrap();
    let bill = w.bill(&number).await;
    assert_eq!(
        money(&bill["amount_total"]),
        dec("1335.50"),
        "{}",
        w.site.name
    );
    let lines = w.product_lines(id(&bill)).await;
    assert_eq!(lines.len(), 2);
    assert!(
        lines
            .iter()
            .all(|l| m2o(l, "product_id") == Some(w.site.seed.freight)),
        "{}: freight and fuel are billed with the configured product",
        w.site.name
    );

    // Another invoice under the same number is refused, not billed.
    let reused = invoice_event(&w, "inv-1-other", ofl_invoice(&number, "1400.00"));
    let error = w
        .handle(&reused)
        .await
        .expect_err("a reused number is refused");
    assert_eq!(
        error.code, "invoice_number_reused",
        "{}: {error:?}",
        w.site.name
    );
    let bill = w.bill(&number).await;
    assert_eq!(
        money(&bill["amount_total"]),
        dec("1335.50"),
        "{}",
        w.site.name
    );
}

async fn match_posts_the_bill_and_reverses_every_accrual_once(w: World) {
    let number = w.number(1);
    w.measured("accrual", &estimate_event(&w, "est-1", 30, "900.00"))
        .await;
    w.measured(
        "accrual revision",
        &estimate_event(&w, "est-2", 20, "1300.00"),
    )
    .await;
    w.measured(
        "vendor bill",
        &invoice_event(&w, "inv-1", ofl_invoice(&number, "1335.50")),
    )
    .await;
    let matched = matched_event(&w, "match-1", &number);
    w.measured("match: post bill + reverse 2 accrual entries", &matched)
        .await;

    let bill = w.bill(&number).await;
    assert_eq!(bill["state"], "posted", "{}", w.site.name);
    assert!(
        bill["name"]
            .as_str()
            .unwrap_or_default()
            .starts_with("BILL/")
    );
    w.assert_balanced(id(&bill)).await;
    // Odoo dates a vendor bill of a past month on that month's last day (monthly sequence,
    // no lock date); docs/odoo.md says so.
    let issued: NaiveDate = bill["invoice_date"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .unwrap();
    let month_end = (issued.with_day(1).unwrap() + Span::days(32))
        .with_day(1)
        .unwrap()
        - Span::days(1);
    assert_eq!(
        bill["date"],
        json!(month_end.to_string()),
        "{}",
        w.site.name
    );

    let moves = w.accrual_moves().await;
    let accruals: Vec<_> = moves
        .iter()
        .filter(|m| m["reversed_entry_id"] == false)
        .collect();
    let reversals: Vec<_> = moves
        .iter()
        .filter(|m| m["reversed_entry_id"] != false)
        .collect();
    assert_eq!(accruals.len(), 2, "{}", w.site.name);
    assert_eq!(
        reversals.len(),
        2,
        "{}: one reversal per accrual entry",
        w.site.name
    );
    for accrual in &accruals {
        let of_it: Vec<_> = reversals
            .iter()
            .filter(|r| m2o(r, "reversed_entry_id") == Some(id(accrual)))
            .collect();
        assert_eq!(
            of_it.len(),
            1,
            "{}: reversals of {}",
            w.site.name,
            accrual["name"]
        );
        assert_eq!(of_it[0]["state"], "posted", "{}", w.site.name);
        w.assert_balanced(id(of_it[0])).await;
    }
    assert_eq!(w.accrued().await, Decimal::ZERO, "{}", w.site.name);

    // The reconciler says it again, and a late estimate comes: nothing more in Odoo.
    w.handle(&matched_event(&w, "match-2", &number))
        .await
        .unwrap();
    w.crashed_attempt(&matched).await;
    w.handle_as(&matched, 2).await.unwrap();
    w.handle(&estimate_event(&w, "est-3", 1, "1400.00"))
        .await
        .unwrap();
    assert_eq!(w.accrual_moves().await.len(), 4, "{}", w.site.name);
    assert_eq!(w.accrued().await, Decimal::ZERO);
    assert_eq!(w.bills(&number).await.len(), 1);
}

/// Odoo's wizard leaves draft reversals when it holds several entries (what the poster did
/// before each entry got its own wizard), and a draft that Odoo schedules for its date when the
/// date is after today. A match finishes both kinds: posted, not doubled.
async fn draft_reversals_are_posted_not_doubled(w: World) {
    let number = w.number(1);
    w.handle(&estimate_event(&w, "est-1", 30, "900.00"))
        .await
        .unwrap();
    w.handle(&estimate_event(&w, "est-2", 20, "1300.00"))
        .await
        .unwrap();
    w.handle(&invoice_event(&w, "inv-1", ofl_invoice(&number, "1335.50")))
        .await
        .unwrap();
    let accruals: Vec<i64> = w.accrual_moves().await.iter().map(id).collect();
    assert_eq!(accruals.len(), 2);
    let journal = m2o(&w.accrual_moves().await[0], "journal_id");
    let reverse = async |moves: &[i64], date: NaiveDate, reason: &str| {
        let context = json!({"active_model": "account.move", "active_ids": moves});
        let wizard = w
            .admin
            .call(
                "account.move.reversal",
                "create",
                json!([{"move_ids": [[6, 0, moves]], "date": date.to_string(),
                        "reason": format!("FB-ACR/{}/REV/{reason}", w.tracking()),
                        "journal_id": journal}]),
                json!({"context": context}),
            )
            .await
            .expect("wizard")
            .as_i64()
            .expect("wizard id");
        w.admin
            .act("account.move.reversal", "reverse_moves", &[wizard], context)
            .await;
    };
    let reversals = async || -> Vec<Map<String, Value>> {
        let mut moves = w.accrual_moves().await;
        moves.retain(|m| m["reversed_entry_id"] != false);
        moves
    };
    let today = Utc::now().date_naive();
    // Both entries in one wizard, dated today: Odoo leaves both reversals draft.
    reverse(&accruals, today, "both").await;
    let drafts = reversals().await;
    assert_eq!(drafts.len(), 2, "{}", w.site.name);
    assert!(
        drafts.iter().all(|r| r["state"] == "draft"),
        "{}: {drafts:?}",
        w.site.name
    );
    // Delete one and reverse that entry alone, dated after today: Odoo schedules it.
    let first = drafts
        .iter()
        .find(|r| m2o(r, "reversed_entry_id") == Some(accruals[0]))
        .expect("reversal of the first entry");
    w.admin
        .call("account.move", "unlink", json!([[id(first)]]), json!({}))
        .await
        .expect("unlink a draft");
    reverse(&accruals[..1], today + Span::days(2), "later").await;
    let scheduled = w
        .admin
        .search_read(
            "account.move",
            json!([["reversed_entry_id", "=", accruals[0]]]),
            &["state", "auto_post"],
        )
        .await;
    assert_eq!(scheduled[0]["state"], "draft");
    assert_eq!(scheduled[0]["auto_post"], "at_date", "{}", w.site.name);

    w.measured(
        "match: finish 2 draft reversals",
        &matched_event(&w, "match-1", &number),
    )
    .await;
    let done = reversals().await;
    assert_eq!(
        done.len(),
        2,
        "{}: the drafts are finished, not doubled",
        w.site.name
    );
    assert!(
        done.iter().all(|r| r["state"] == "posted"),
        "{}: {done:?}",
        w.site.name
    );
    assert_eq!(w.accrued().await, Decimal::ZERO, "{}", w.site.name);
    assert_eq!(w.bill(&number).await["state"], "posted");
}

async fn dispute_leaves_the_bill_draft_with_one_activity(w: World) {
    let number = w.number(1);
    w.handle(&invoice_event(&w, "inv-1", ofl_invoice(&number, "1335.50")))
        .await
        .unwrap();
    let dispute = disputed_event(&w, "dispute-1", &number);
    w.measured("dispute activity", &dispute).await;
    let bill = w.bill(&number).await;
    assert_eq!(bill["state"], "draft", "{}", w.site.name);
    let activities = || async {
        w.admin
            .search_read(
                "mail.activity",
                json!([
                    ["res_model", "=", "account.move"],
                    ["res_id", "=", id(&bill)]
                ]),
                &["user_id", "note", "date_deadline", "activity_type_id"],
            )
            .await
    };
    let found = activities().await;
    assert_eq!(found.len(), 1, "{}", w.site.name);
    assert_eq!(m2o(&found[0], "user_id"), Some(w.site.seed.ap_user));
    let note = found[0]["note"].as_str().unwrap_or_default();
    assert!(
        note.contains("amount_over_tolerance"),
        "{}: {note}",
        w.site.name
    );
    assert!(note.contains("435.50 over the booked cost"), "{note}");
    let deadline = (Utc::now().date_naive() + Span::days(3)).to_string();
    let today = Utc::now().date_naive();
    assert!(
        found[0]["date_deadline"] == json!(deadline)
            || found[0]["date_deadline"] == json!((today + Span::days(2)).to_string()),
        "{}: {}",
        w.site.name,
        found[0]["date_deadline"]
    );
    w.crashed_attempt(&dispute).await;
    w.handle_as(&dispute, 2).await.unwrap();
    assert_eq!(activities().await.len(), 1, "{}", w.site.name);
}

/// The reconciler beside a world's poster, on an in-memory ledger and bus; OFL's contract: 3 %
/// or 5.00 either way.
struct Reconciling {
    reconciler: reconciler::Reconciler<
        Arc<freightbridge::ledger::MemoryLedger>,
        Arc<freightbridge::bus::memory::MemoryBus>,
    >,
    bus: Arc<freightbridge::bus::memory::MemoryBus>,
}

impl Reconciling {
    fn new() -> Reconciling {
        let bus = Arc::new(freightbridge::bus::memory::MemoryBus::new());
        let settings = "[default]\ntolerance = { absolute = \"5.00\", percent = \"3\" }\n";
        let config =
            freightbridge::reconcile::ReconcileConfig::from_toml(settings).expect("settings");
        Reconciling {
            reconciler: reconciler::Reconciler::new(
                Arc::new(freightbridge::ledger::MemoryLedger::new()),
                bus.clone(),
                Arc::new(config),
            ),
            bus,
        }
    }

    /// `event` to the poster (unless `to_poster` is false: a delivery's note needs a picking
    /// these cases do not make; the ledger needs only the fact) and to the reconciler, whose
    /// outcomes go on to the poster; answers them.
    async fn both(&self, w: &World, event: CanonicalEvent, to_poster: bool) -> Vec<CanonicalEvent> {
        if to_poster {
            w.handle(&event).await.unwrap();
        }
        let before = self.bus.published().len();
        self.reconciler
            .handle_record(freightbridge_tests::poster_input::record(&event, 1))
            .await
            .unwrap();
        let outcomes: Vec<CanonicalEvent> = self.bus.published()[before..]
            .iter()
            .map(|e| serde_json::from_value(e.detail.clone()).unwrap())
            .collect();
        for outcome in &outcomes {
            w.handle(outcome).await.unwrap();
        }
        outcomes
    }
}

/// The reconciler decides, not a hand-made event: facts go to the poster and the reconciler as
/// the rules route them, the reconciler's outcomes on to the poster. Within tolerance: the bill
/// is posted and the accrual reversed; a second invoice 15 % over: draft, one activity listing
/// `over_tolerance`.
async fn reconciler_matches_disputes_and_settles_a_paid_bill(w: World) {
    let r = Reconciling::new();
    let (reconciler, bus) = (&r.reconciler, &r.bus);
    let both = |event: CanonicalEvent, to_poster: bool| r.both(&w, event, to_poster);
    let first = w.number(1);
    both(estimate_event(&w, "est-1", 30, "1300.00"), true).await;
    both(delivered_event(&w, "pod-1"), false).await;
    let outcomes = both(
        invoice_event(&w, "inv-1", ofl_invoice(&first, "1335.50")),
        true,
    )
    .await;
    assert_eq!(outcomes.len(), 1, "{}", w.site.name);
    assert_eq!(
        outcomes[0].event_type(),
        "freight_invoice.matched",
        "{}",
        w.site.name
    );
    let bill = w.bill(&first).await;
    assert_eq!(bill["state"], "posted", "{}", w.site.name);
    assert_eq!(w.accrued().await, Decimal::ZERO, "{}", w.site.name);

    let second = w.number(2);
    let outcomes = both(
        invoice_event(&w, "inv-2", ofl_invoice(&second, "1495.00")),
        true,
    )
    .await;
    assert_eq!(outcomes.len(), 1, "{}", w.site.name);
    assert_eq!(
        outcomes[0].event_type(),
        "freight_invoice.disputed",
        "{}",
        w.site.name
    );
    let bill = w.bill(&second).await;
    assert_eq!(bill["state"], "draft", "{}", w.site.name);
    let activities = w
        .admin
        .search_read(
            "mail.activity",
            json!([
                ["res_model", "=", "account.move"],
                ["res_id", "=", id(&bill)]
            ]),
            &["note"],
        )
        .await;
    assert_eq!(activities.len(), 1, "{}", w.site.name);
    let note = activities[0]["note"].as_str().unwrap_or_default();
    assert!(note.contains("over_tolerance"), "{}: {note}", w.site.name);

    // Accounts payable pays the matched bill in Odoo (the payment wizard, as a person would):
    // the settlement sweep finds it paid and settles it; the disputed draft stays open.
    let paid_bill = id(&w.bill(&first).await);
    let context = json!({"active_model": "account.move", "active_ids": [paid_bill]});
    let wizard = w
        .admin
        .call(
            "account.payment.register",
            "create",
            json!([{}]),
            json!({"context": context}),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", w.site.name));
    let wizard = freightbridge::odoo::values::single_id(&wizard).expect("wizard id");
    w.admin
        .act(
            "account.payment.register",
            "action_create_payments",
            &[wizard],
            context,
        )
        .await;
    let state = w
        .admin
        .search_read(
            "account.move",
            json!([["id", "=", paid_bill]]),
            &["payment_state"],
        )
        .await;
    let payment_state = state[0]["payment_state"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        ["paid", "in_payment"].contains(&payment_state.as_str()),
        "{}: a registered payment leaves the bill {payment_state}",
        w.site.name
    );
    let client = OdooClient::connect(&odoo_config(&w.site))
        .await
        .expect("connect");
    let before = bus.published().len();
    let run = reconciler
        .settle(&client, Utc::now(), "odoo_real")
        .await
        .unwrap_or_else(|e| panic!("{}: settle: {e:?}", w.site.name));
    assert_eq!(
        (
            run.invoices_checked,
            run.settled.len(),
            run.shipments_closed
        ),
        (2, 1, 0),
        "{}: {run:?}",
        w.site.name
    );
    assert_eq!(run.settled[0].bill_id, paid_bill);
    assert_eq!(run.settled[0].payment_state, payment_state);
    assert_eq!(run.settled[0].invoice_number, first);
    let settled: Vec<CanonicalEvent> = bus.published()[before..]
        .iter()
        .map(|e| serde_json::from_value(e.detail.clone()).unwrap())
        .collect();
    assert_eq!(settled.len(), 1, "{}", w.site.name);
    assert_eq!(settled[0].event_type(), "freight_invoice.settled");
    // Swept again: already settled, nothing published twice.
    let again = reconciler
        .settle(&client, Utc::now(), "odoo_real")
        .await
        .expect("settle again");
    assert_eq!((again.invoices_checked, again.settled.len()), (1, 0));
    assert_eq!(bus.published().len(), before + 1, "{}", w.site.name);
    eprintln!(
        "{}: a registered payment left the bill {payment_state}; settled",
        w.site.name
    );
}

/// Carriers invoice at delivery: the invoice before its proof of delivery is drafted and waits
/// (nothing published, the bill stays draft); the POD's arrival matches it, and the poster posts
/// the bill and reverses the accrual.
async fn reconciler_waits_for_the_pod_then_matches(w: World) {
    let r = Reconciling::new();
    let both = |event: CanonicalEvent, to_poster: bool| r.both(&w, event, to_poster);
    let number = w.number(1);
    both(estimate_event(&w, "est-1", 30, "1300.00"), true).await;
    let waiting = both(
        invoice_event(&w, "inv-1", ofl_invoice(&number, "1335.50")),
        true,
    )
    .await;
    assert!(waiting.is_empty(), "{}: waits for its POD", w.site.name);
    assert_eq!(w.bill(&number).await["state"], "draft", "{}", w.site.name);
    assert!(w.accrued().await > Decimal::ZERO, "{}", w.site.name);

    let outcomes = both(delivered_event(&w, "pod-1"), false).await;
    assert_eq!(
        outcomes
            .iter()
            .map(CanonicalEvent::event_type)
            .collect::<Vec<_>>(),
        ["freight_invoice.matched"],
        "{}",
        w.site.name
    );
    assert_eq!(w.bill(&number).await["state"], "posted", "{}", w.site.name);
    assert_eq!(w.accrued().await, Decimal::ZERO, "{}", w.site.name);
}

/// The bot with only the documented groups (no Administration rights, so no read on `ir.model`
/// or `ir.model.data`) opens a dispute: the activity is created through `activity_schedule`.
async fn dispute_as_the_least_privileged_bot(w: World) {
    let number = w.number(1);
    w.handle(&invoice_event(&w, "inv-1", ofl_invoice(&number, "1335.50")))
        .await
        .unwrap();
    let mut config = odoo_config(&w.site);
    config.user = Some(BOT_LOGIN.into());
    config.api_key = Some(Secret::new(BOT_PASSWORD));
    config.transport = Some(Transport::JsonRpc);
    let client = OdooClient::connect(&config).await.expect("bot login");
    let store = Arc::new(MemoryStore::new());
    let bot = Poster::new(client, Idempotency::new(store, Policy::default())).with_finance(
        Finance::new(FinanceConfig::parse(SETTINGS).expect("settings")),
    );
    let dispute = disputed_event(&w, "dispute-bot", &number);
    let now = Utc::now();
    bot.handle_record(
        poster_input::record(&dispute, 1),
        now,
        now + Span::seconds(120),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: the bot's dispute: {e:?}", w.site.name));
    let bill = w.bill(&number).await;
    let activities = w
        .admin
        .search_read(
            "mail.activity",
            json!([
                ["res_model", "=", "account.move"],
                ["res_id", "=", id(&bill)]
            ]),
            &["user_id", "activity_type_id"],
        )
        .await;
    assert_eq!(activities.len(), 1, "{}", w.site.name);
    assert_eq!(m2o(&activities[0], "user_id"), Some(w.site.seed.ap_user));
    let todo = w.admin.xmlid("mail.mail_activity_data_todo").await;
    assert_eq!(
        m2o(&activities[0], "activity_type_id"),
        todo,
        "{}",
        w.site.name
    );
    // It really lacks the rights it no longer needs.
    let denied = w
        .admin
        .call(
            "res.users",
            "search_read",
            json!([[["login", "=", BOT_LOGIN]]]),
            json!({"fields": ["id"]}),
        )
        .await
        .expect("bot");
    assert_eq!(denied.as_array().map(Vec::len), Some(1));
}

async fn late_charge_on_the_draft_bill(w: World) {
    let number = w.number(1);
    w.handle(&invoice_event(&w, "inv-1", ofl_invoice(&number, "1335.50")))
        .await
        .unwrap();
    let late = charge_event(&w, "chg-1", &number, "45.00");
    w.measured("late charge on the draft bill", &late).await;
    let bill = w.bill(&number).await;
    assert_eq!(
        money(&bill["amount_total"]),
        dec("1380.50"),
        "{}",
        w.site.name
    );
    w.crashed_attempt(&late).await;
    w.handle_as(&late, 2).await.unwrap();
    let bill = w.bill(&number).await;
    assert_eq!(
        money(&bill["amount_total"]),
        dec("1380.50"),
        "{}",
        w.site.name
    );
    assert_eq!(w.product_lines(id(&bill)).await.len(), 3);
    w.assert_balanced(id(&bill)).await;
}

async fn late_charge_on_a_posted_bill(w: World) {
    let number = w.number(1);
    w.handle(&invoice_event(&w, "inv-1", ofl_invoice(&number, "1335.50")))
        .await
        .unwrap();
    w.handle(&matched_event(&w, "match-1", &number))
        .await
        .unwrap();
    let late = charge_event(&w, "chg-1", &number, "45.00");
    w.measured("late charge after posting (separate bill)", &late)
        .await;
    let bills = w.bills(&number).await;
    assert_eq!(bills.len(), 2, "{}", w.site.name);
    let posted = bills
        .iter()
        .find(|b| b["state"] == "posted")
        .expect("posted bill");
    let separate = bills
        .iter()
        .find(|b| b["state"] == "draft")
        .expect("separate bill");
    assert_eq!(
        money(&posted["amount_total"]),
        dec("1335.50"),
        "{}",
        w.site.name
    );
    assert_eq!(
        money(&separate["amount_total"]),
        dec("45.00"),
        "{}",
        w.site.name
    );
    assert!(
        separate["ref"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("{number}+fb:"))
    );
    let narration = separate["narration"].as_str().unwrap_or_default();
    assert!(
        narration.contains(posted["name"].as_str().unwrap_or("?")),
        "{narration}"
    );
    w.crashed_attempt(&late).await;
    w.handle_as(&late, 2).await.unwrap();
    assert_eq!(w.bills(&number).await.len(), 2, "{}", w.site.name);
}

async fn landed_cost_on_a_receipt(w: World) {
    let receipt = w.receipt(&w.tracking()).await;
    let number = w.number(1);
    w.handle(&invoice_event(&w, "inv-1", ofl_invoice(&number, "1335.50")))
        .await
        .unwrap();
    let matched = matched_event(&w, "match-1", &number);
    w.measured("match: post bill + landed cost on the receipt", &matched)
        .await;
    let bill = w.bill(&number).await;
    let costs = w
        .admin
        .search_read(
            "stock.landed.cost",
            json!([["picking_ids", "in", [receipt]]]),
            &["state", "vendor_bill_id", "amount_total", "account_move_id"],
        )
        .await;
    assert_eq!(costs.len(), 1, "{}", w.site.name);
    assert_eq!(costs[0]["state"], "done", "{}", w.site.name);
    assert_eq!(m2o(&costs[0], "vendor_bill_id"), Some(id(&bill)));
    assert_eq!(money(&costs[0]["amount_total"]), dec("1335.50"));
    if let Some(entry) = m2o(&costs[0], "account_move_id") {
        w.assert_balanced(entry).await;
    }
    // Split by quantity: 10 pallets and 30 widgets share 1335.50 as 1 : 3, to the cent.
    let shares: Vec<Decimal> = w
        .admin
        .search_read(
            "stock.valuation.adjustment.lines",
            json!([["cost_id", "=", id(&costs[0])]]),
            &["quantity", "additional_landed_cost"],
        )
        .await
        .iter()
        .map(|l| money(&l["additional_landed_cost"]))
        .collect();
    assert_eq!(shares.len(), 2, "{}", w.site.name);
    assert_eq!(
        shares.iter().copied().sum::<Decimal>(),
        dec("1335.50"),
        "{}: {shares:?}",
        w.site.name
    );
    w.crashed_attempt(&matched).await;
    w.handle_as(&matched, 2).await.unwrap();
    let again = w
        .admin
        .search_read(
            "stock.landed.cost",
            json!([["picking_ids", "in", [receipt]]]),
            &["id"],
        )
        .await;
    assert_eq!(again.len(), 1, "{}", w.site.name);
}

/// `freightctl odoo check`: the suite's settings resolve on a seeded database; settings naming
/// a carrier and a product the database lacks fail (exit 1) with those rows MISSING;
/// `--create-missing` creates them (and nothing else) and the check then passes.
async fn onboarding_check(w: World) {
    use freightctl::odoo_check::{AccessMethod, Status, check_config};
    let config = odoo_config(&w.site);
    let seeded = FinanceConfig::parse(SETTINGS).expect("settings");
    let report = check_config(&config, &seeded, false).await;
    assert!(report.passed(), "{}:\n{}", w.site.name, report.table());
    assert_eq!(report.exit_code(), 0);
    let expected_method = match w.site.transport {
        Transport::Json2 => AccessMethod::HasAccess,
        Transport::JsonRpc => AccessMethod::CheckAccessRights,
    };
    assert_eq!(
        report.access_method,
        Some(expected_method),
        "{}",
        w.site.name
    );
    let version = report.server.server_version.clone().unwrap_or_default();
    assert!(
        version.starts_with(&format!("{}.", w.site.server.version)),
        "{version}"
    );

    let carrier = format!("FBC-{}", w.tag);
    let product = format!("FBP-{}", w.tag);
    let fresh = SETTINGS
        .replace("FB-CARRIER-UPS", &carrier)
        .replace("\"FB-FREIGHT\"", &format!("\"{product}\""));
    let fresh = FinanceConfig::parse(&fresh).expect("fresh settings");
    let report = check_config(&config, &fresh, false).await;
    assert!(!report.passed(), "{}:\n{}", w.site.name, report.table());
    assert_eq!(report.exit_code(), 1);
    let missing: Vec<&str> = report
        .with_status(Status::Missing)
        .map(|r| r.what.as_str())
        .collect();
    assert!(
        missing.iter().any(|m| m.contains(&carrier)),
        "{}: {missing:?}",
        w.site.name
    );
    assert!(
        missing.iter().any(|m| m.contains(&product)),
        "{}: {missing:?}",
        w.site.name
    );
    assert!(report.created.is_empty());

    let report = check_config(&config, &fresh, true).await;
    assert!(report.passed(), "{}:\n{}", w.site.name, report.table());
    assert_eq!(
        report.created.len(),
        2,
        "{}: {:?}",
        w.site.name,
        report.created
    );
    let vendor = w
        .admin
        .search_read(
            "res.partner",
            json!([["ref", "=", carrier]]),
            &["supplier_rank", "is_company"],
        )
        .await;
    assert_eq!(vendor.len(), 1, "{}", w.site.name);
    assert!(vendor[0]["supplier_rank"].as_i64().unwrap_or_default() > 0);
    let made = w
        .admin
        .search_read(
            "product.product",
            json!([["default_code", "=", product]]),
            &["type", "landed_cost_ok"],
        )
        .await;
    assert_eq!(made.len(), 1, "{}", w.site.name);
    assert_eq!(made[0]["type"], "service");
    assert_eq!(made[0]["landed_cost_ok"], true, "the landed-cost product");

    let again = check_config(&config, &fresh, false).await;
    assert!(
        again.passed() && again.created.is_empty(),
        "{}:\n{}",
        w.site.name,
        again.table()
    );
}

// ---------------------------------------------------------------------------------------------
// The double refuses what real Odoo refuses: the same bad requests to both, the same answer.

/// Where a raw request goes: a real server or the double.
struct Target {
    url: String,
    db: String,
    secret: String,
    api_key: Option<String>,
}

/// What Odoo answered: the HTTP status (JSON-2; 200 for JSON-RPC) and the error's name and
/// message, or `ok`.
async fn raw_call(
    target: &Target,
    transport: Transport,
    model: &str,
    method: &str,
    args: &Value,
    kwargs: &Value,
) -> (u16, String, String) {
    let http = reqwest::Client::new();
    let response = match transport {
        Transport::JsonRpc => {
            let body = json!({"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
                "service": "object", "method": "execute_kw",
                "args": [target.db, 2, target.secret, model, method, args, kwargs]}});
            http.post(format!("{}/jsonrpc", target.url))
                .json(&body)
                .send()
                .await
        }
        Transport::Json2 => {
            http.post(format!("{}/json/2/{model}/{method}", target.url))
                .header(
                    "Authorization",
                    format!("bearer {}", target.api_key.as_deref().unwrap_or_default()),
                )
                .header("X-Odoo-Database", &target.db)
                .json(kwargs)
                .send()
                .await
        }
    }
    .expect("request");
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let error = match transport {
        Transport::JsonRpc => body.get("error").map(|e| e["data"].clone()),
        Transport::Json2 => (status >= 400).then_some(body),
    };
    match error {
        Some(e) => (
            status,
            e["name"].as_str().unwrap_or_default().to_owned(),
            e["message"].as_str().unwrap_or_default().to_owned(),
        ),
        None => (status, "ok".into(), String::new()),
    }
}

async fn double_refuses_what_odoo_refuses(site: &Site) {
    use freightbridge_tests::odoo_double::{OdooDouble, OdooDoubleConfig};
    let double = OdooDouble::start(OdooDoubleConfig::version(site.server.version)).await;
    let d = double.config().clone();
    let server = &site.server;
    let real = Target {
        url: server.url.clone(),
        db: server.db.clone(),
        secret: server.password.clone(),
        api_key: server.api_key.clone(),
    };
    let fake = Target {
        url: double.url(),
        db: d.db.clone(),
        secret: d.password.clone(),
        api_key: Some(d.api_key.clone()),
    };
    let missing = 999_999;
    // (what, model, method, JSON-RPC args and kwargs, JSON-2 body)
    let cases: Vec<(&str, &str, &str, Value, Value, Value)> = vec![
        (
            "vals_list by name",
            "res.partner",
            "create",
            json!([]),
            json!({"vals_list": [{"name": "FB x"}]}),
            Value::Null,
        ),
        (
            "no vals_list",
            "res.partner",
            "create",
            json!([]),
            json!({}),
            json!({}),
        ),
        (
            "unknown field in vals",
            "res.partner",
            "create",
            json!([[{"name": "FB x", "fb_no_such": 1}]]),
            json!({}),
            json!({"vals_list": [{"name": "FB x", "fb_no_such": 1}]}),
        ),
        (
            "unknown field read",
            "res.partner",
            "search_read",
            json!([[]]),
            json!({"fields": ["fb_no_such"], "limit": 1}),
            json!({"domain": [], "fields": ["fb_no_such"], "limit": 1}),
        ),
        (
            "unknown field in domain",
            "res.partner",
            "search_read",
            json!([[["fb_no_such", "=", 1]]]),
            json!({"fields": ["name"]}),
            json!({"domain": [["fb_no_such", "=", 1]], "fields": ["name"]}),
        ),
        (
            "bad selection value",
            "res.partner",
            "create",
            json!([[{"name": "FB x", "type": "fb_bogus"}]]),
            json!({}),
            json!({"vals_list": [{"name": "FB x", "type": "fb_bogus"}]}),
        ),
        (
            "write without vals",
            "res.partner",
            "write",
            json!([[1]]),
            json!({}),
            json!({"ids": [1]}),
        ),
        (
            "write on a missing record",
            "res.partner",
            "write",
            json!([[missing], {"name": "FB y"}]),
            json!({}),
            json!({"ids": [missing], "vals": {"name": "FB y"}}),
        ),
        (
            "unknown method",
            "res.partner",
            "fb_nope",
            json!([[1]]),
            json!({}),
            json!({"ids": [1]}),
        ),
        (
            "unknown model",
            "fb.nomodel",
            "search_read",
            json!([[]]),
            json!({}),
            json!({}),
        ),
        (
            "ids on a model method",
            "res.partner",
            "create",
            Value::Null,
            Value::Null,
            json!({"ids": [1], "vals_list": [{"name": "FB x"}]}),
        ),
        (
            "positional args",
            "res.partner",
            "search_read",
            Value::Null,
            Value::Null,
            json!({"args": [[]]}),
        ),
    ];
    let mut differences = Vec::new();
    for (what, model, method, args, kwargs, body) in &cases {
        let (transport, a, k) = match site.transport {
            Transport::JsonRpc if !args.is_null() => (Transport::JsonRpc, args, kwargs),
            Transport::Json2 if !body.is_null() => (Transport::Json2, &Value::Null, body),
            _ => continue,
        };
        let odoo = raw_call(&real, transport, model, method, a, k).await;
        let ours = raw_call(&fake, transport, model, method, a, k).await;
        assert_ne!(odoo.1, "ok", "{}: Odoo accepted {what}", site.name);
        if odoo != ours {
            differences.push(format!("{what}: Odoo {odoo:?}, double {ours:?}"));
        }
    }
    assert!(
        differences.is_empty(),
        "{}: the double answers otherwise than Odoo:\n{}",
        site.name,
        differences.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Round trips measured per site and operation, printed after the trials.

static TRIPS: Mutex<Vec<(String, String, usize)>> = Mutex::new(Vec::new());

fn record_trips(site: &str, operation: &str, trips: usize) {
    TRIPS.lock().unwrap_or_else(|p| p.into_inner()).push((
        site.to_owned(),
        operation.to_owned(),
        trips,
    ));
}

type Case = fn(World) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

macro_rules! cases {
    ($($name:ident),* $(,)?) => {
        vec![$((stringify!($name), (|w| Box::pin($name(w))) as Case)),*]
    };
}

fn main() -> ExitCode {
    let args = Arguments::from_args();
    if args.list {
        // Listing needs no server.
        let trials: Vec<Trial> = all_cases()
            .into_iter()
            .map(|(case, _)| case)
            .chain(["double_refuses_what_odoo_refuses"])
            .flat_map(|case| {
                ["odoo19-json2", "odoo19-jsonrpc", "odoo18-jsonrpc"]
                    .map(|site| Trial::test(format!("{site}::{case}"), || Ok(())))
            })
            .collect();
        return libtest_mimic::run(&args, trials).exit_code();
    }
    let mut odoo = match RealOdoo::provide(&[(19, 2), (18, 1)]) {
        Ok(odoo) => odoo,
        Err(why) if RealOdoo::required() => {
            eprintln!(
                "real-Odoo suite cannot run and {}=1: {}",
                freightbridge_tests::real_odoo::REQUIRE_ENV,
                why.0
            );
            return ExitCode::FAILURE;
        }
        Err(why) => {
            println!("real-Odoo suite SKIPPED: {}", why.0);
            println!("0 passed, 0 failed, 1 skipped");
            return ExitCode::SUCCESS;
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio");
    let sites = match runtime.block_on(sites(&odoo.servers)) {
        Ok(sites) => sites,
        Err(e) => {
            eprintln!("real-Odoo suite: {e}");
            odoo.stop();
            return ExitCode::FAILURE;
        }
    };
    for site in &sites {
        println!(
            "site {}: {} db {} ({:?})",
            site.name, site.server.url, site.server.db, site.transport
        );
    }
    let mut trials = Vec::new();
    for (case, run) in all_cases() {
        for site in &sites {
            let site = site.clone();
            let case_tag: String = case.split('_').filter_map(|w| w.chars().next()).collect();
            trials.push(Trial::test(format!("{}::{case}", site.name), move || {
                on_own_runtime(async {
                    let world = World::new(&site, &case_tag).await;
                    run(world).await;
                })
            }));
        }
    }
    for site in &sites {
        let site = site.clone();
        trials.push(Trial::test(
            format!("{}::double_refuses_what_odoo_refuses", site.name),
            move || on_own_runtime(double_refuses_what_odoo_refuses(&site)),
        ));
    }
    let conclusion = libtest_mimic::run(&args, trials);
    let mut trips = TRIPS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    trips.sort();
    trips.dedup();
    if !trips.is_empty() {
        println!("Odoo round trips per operation (real servers):");
        for (site, operation, count) in trips {
            println!("  {site:15} {operation:50} {count}");
        }
    }
    drop(runtime);
    odoo.stop();
    conclusion.exit_code()
}

/// Each trial runs on a runtime of its own (trials run on libtest-mimic's threads).
fn on_own_runtime(trial: impl std::future::Future<Output = ()>) -> Result<(), Failed> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failed::from(e.to_string()))?;
    runtime.block_on(trial);
    Ok(())
}

fn all_cases() -> Vec<(&'static str, Case)> {
    cases![
        milestone_note,
        proof_of_delivery_releases_the_customer_invoice,
        accrual_and_revised_accrual,
        vendor_bills_from_x12_210,
        redelivered_and_reused_invoice_numbers,
        match_posts_the_bill_and_reverses_every_accrual_once,
        draft_reversals_are_posted_not_doubled,
        dispute_leaves_the_bill_draft_with_one_activity,
        dispute_as_the_least_privileged_bot,
        reconciler_matches_disputes_and_settles_a_paid_bill,
        reconciler_waits_for_the_pod_then_matches,
        late_charge_on_the_draft_bill,
        late_charge_on_a_posted_bill,
        landed_cost_on_a_receipt,
        onboarding_check,
    ]
}

/// 19: JSON-2 on the first database, JSON-RPC on the second (or the same one when only one 19
/// is given); 18 and older: JSON-RPC.
async fn sites(servers: &[OdooServer]) -> Result<Vec<Site>, String> {
    let mut sites = Vec::new();
    let nineteens: Vec<&OdooServer> = servers.iter().filter(|s| s.version >= 19).collect();
    let mut plan: Vec<(&OdooServer, Transport, String)> = Vec::new();
    if let Some(first) = nineteens.first() {
        if first.api_key.is_some() {
            plan.push((
                first,
                Transport::Json2,
                format!("odoo{}-json2", first.version),
            ));
        }
        let rpc = nineteens.get(1).unwrap_or(first);
        plan.push((
            rpc,
            Transport::JsonRpc,
            format!("odoo{}-jsonrpc", rpc.version),
        ));
    }
    for server in servers.iter().filter(|s| s.version < 19) {
        plan.push((
            server,
            Transport::JsonRpc,
            format!("odoo{}-jsonrpc", server.version),
        ));
    }
    for (server, transport, name) in plan {
        let admin = Admin::connect(server).await?;
        let seed = seed(&admin).await;
        sites.push(Site {
            name,
            server: server.clone(),
            transport,
            seed,
        });
    }
    Ok(sites)
}
