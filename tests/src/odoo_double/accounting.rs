//! Accounting in the Odoo double, as the transcripts show it (reference §8.3–8.9): journal
//! entries and vendor bills with their computed lines (taxes, payable), posting with sequence
//! numbers, Odoo's own balance check (with 18's and 19's messages), `duplicated_ref_ids` that warn
//! but do not stop a duplicate bill, the reversal wizard, landed costs (direct and from a bill),
//! activities, sale orders with customer invoices, and the reference data of a fresh database
//! with the generic chart of accounts. Amounts are floats rounded to the currency, as in Odoo.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde_json::{Map, Value, json};

use super::{DoubleState, Fault, as_map};

const MOVE_FIELDS: &[&str] = &[
    "id",
    "name",
    "display_name",
    "move_type",
    "state",
    "payment_state",
    "ref",
    "narration",
    "invoice_date",
    "date",
    "partner_id",
    "journal_id",
    "currency_id",
    "invoice_line_ids",
    "line_ids",
    "amount_untaxed",
    "amount_tax",
    "amount_total",
    "amount_residual",
    "invoice_origin",
    "payment_reference",
    "auto_post",
    "reversed_entry_id",
    "reversal_move_ids",
    "duplicated_ref_ids",
];
const LINE_FIELDS: &[&str] = &[
    "id",
    "display_name",
    "move_id",
    "move_name",
    "account_id",
    "name",
    "debit",
    "credit",
    "balance",
    "amount_currency",
    "currency_id",
    "partner_id",
    "product_id",
    "quantity",
    "price_unit",
    "price_subtotal",
    "tax_ids",
    "display_type",
    "ref",
    "parent_state",
    "date",
    "journal_id",
    "is_landed_costs_line",
];
const REVERSAL_FIELDS: &[&str] = &[
    "id",
    "move_ids",
    "date",
    "reason",
    "journal_id",
    "new_move_ids",
];
const ACCOUNT_FIELDS: &[&str] = &["id", "code", "name", "display_name", "account_type"];
const JOURNAL_FIELDS: &[&str] = &["id", "name", "code", "type", "display_name", "sequence"];
const TAX_FIELDS: &[&str] = &["id", "name", "display_name", "amount", "type_tax_use"];
const CURRENCY_FIELDS: &[&str] = &[
    "id",
    "name",
    "display_name",
    "symbol",
    "decimal_places",
    "rounding",
    "active",
];
const PRODUCT_FIELDS: &[&str] = &[
    "id",
    "name",
    "display_name",
    "default_code",
    "type",
    "is_storable",
    "landed_cost_ok",
    "supplier_taxes_id",
    "property_account_expense_id",
    "standard_price",
    "weight",
    "volume",
];
const MODEL_FIELDS: &[&str] = &["id", "model", "name", "display_name"];
const XMLID_FIELDS: &[&str] = &[
    "id",
    "module",
    "name",
    "model",
    "res_id",
    "noupdate",
    "complete_name",
];
const ACTIVITY_FIELDS: &[&str] = &[
    "id",
    "display_name",
    "res_model_id",
    "res_model",
    "res_id",
    "activity_type_id",
    "summary",
    "note",
    "user_id",
    "date_deadline",
    "active",
];
const SALE_FIELDS: &[&str] = &[
    "id",
    "name",
    "display_name",
    "partner_id",
    "state",
    "origin",
    "picking_ids",
    "invoice_ids",
    "invoice_status",
];
const LANDED_COST_FIELDS: &[&str] = &[
    "id",
    "name",
    "display_name",
    "date",
    "state",
    "description",
    "target_model",
    "picking_ids",
    "cost_lines",
    "valuation_adjustment_lines",
    "account_journal_id",
    "account_move_id",
    "vendor_bill_id",
    "amount_total",
];
const COST_LINE_FIELDS: &[&str] = &[
    "id",
    "cost_id",
    "product_id",
    "name",
    "price_unit",
    "split_method",
    "account_id",
];
const ADJUSTMENT_FIELDS: &[&str] = &[
    "id",
    "cost_id",
    "cost_line_id",
    "product_id",
    "move_id",
    "quantity",
    "former_cost",
    "additional_landed_cost",
    "final_cost",
];
const STOCK_MOVE_FIELDS: &[&str] = &[
    "id",
    "display_name",
    "picking_id",
    "product_id",
    "quantity",
    "state",
];

pub(super) const MODELS: [(&str, &[&str]); 17] = [
    ("account.move", MOVE_FIELDS),
    ("account.move.line", LINE_FIELDS),
    ("account.move.reversal", REVERSAL_FIELDS),
    ("account.account", ACCOUNT_FIELDS),
    ("account.journal", JOURNAL_FIELDS),
    ("account.tax", TAX_FIELDS),
    ("res.currency", CURRENCY_FIELDS),
    ("product.product", PRODUCT_FIELDS),
    ("ir.model", MODEL_FIELDS),
    ("ir.model.data", XMLID_FIELDS),
    ("mail.activity", ACTIVITY_FIELDS),
    ("sale.order", SALE_FIELDS),
    ("stock.landed.cost", LANDED_COST_FIELDS),
    ("stock.landed.cost.lines", COST_LINE_FIELDS),
    ("stock.valuation.adjustment.lines", ADJUSTMENT_FIELDS),
    ("stock.move", STOCK_MOVE_FIELDS),
    ("mail.activity.type", &["id", "name", "display_name"]),
];

/// How a relational field is written and read.
#[derive(Clone, Copy)]
enum Rel {
    /// many2one: written as an id, read as `[id, display name]`.
    One(&'static str),
    /// many2many (and one2many linked by id): commands or a list of ids, read as ids.
    Many(&'static str),
    /// one2many of owned lines: `[0, 0, vals]` creates a line whose inverse points back.
    Lines(&'static str, &'static str),
}

const RELATIONS: &[(&str, &str, Rel)] = &[
    ("account.move", "partner_id", Rel::One("res.partner")),
    ("account.move", "journal_id", Rel::One("account.journal")),
    ("account.move", "currency_id", Rel::One("res.currency")),
    (
        "account.move",
        "reversed_entry_id",
        Rel::One("account.move"),
    ),
    (
        "account.move",
        "invoice_line_ids",
        Rel::Lines("account.move.line", "move_id"),
    ),
    (
        "account.move",
        "line_ids",
        Rel::Lines("account.move.line", "move_id"),
    ),
    ("account.move.line", "move_id", Rel::One("account.move")),
    (
        "account.move.line",
        "account_id",
        Rel::One("account.account"),
    ),
    ("account.move.line", "partner_id", Rel::One("res.partner")),
    (
        "account.move.line",
        "product_id",
        Rel::One("product.product"),
    ),
    ("account.move.line", "currency_id", Rel::One("res.currency")),
    (
        "account.move.line",
        "journal_id",
        Rel::One("account.journal"),
    ),
    ("account.move.line", "tax_ids", Rel::Many("account.tax")),
    (
        "account.move.reversal",
        "move_ids",
        Rel::Many("account.move"),
    ),
    (
        "account.move.reversal",
        "journal_id",
        Rel::One("account.journal"),
    ),
    ("mail.activity", "res_model_id", Rel::One("ir.model")),
    ("mail.activity", "user_id", Rel::One("res.users")),
    (
        "mail.activity",
        "activity_type_id",
        Rel::One("mail.activity.type"),
    ),
    ("sale.order", "partner_id", Rel::One("res.partner")),
    ("sale.order", "picking_ids", Rel::Many("stock.picking")),
    ("sale.order", "invoice_ids", Rel::Many("account.move")),
    (
        "stock.landed.cost",
        "picking_ids",
        Rel::Many("stock.picking"),
    ),
    (
        "stock.landed.cost",
        "cost_lines",
        Rel::Lines("stock.landed.cost.lines", "cost_id"),
    ),
    (
        "stock.landed.cost",
        "account_journal_id",
        Rel::One("account.journal"),
    ),
    (
        "stock.landed.cost",
        "account_move_id",
        Rel::One("account.move"),
    ),
    (
        "stock.landed.cost",
        "vendor_bill_id",
        Rel::One("account.move"),
    ),
    (
        "stock.landed.cost.lines",
        "cost_id",
        Rel::One("stock.landed.cost"),
    ),
    (
        "stock.landed.cost.lines",
        "product_id",
        Rel::One("product.product"),
    ),
    (
        "stock.landed.cost.lines",
        "account_id",
        Rel::One("account.account"),
    ),
    (
        "product.product",
        "supplier_taxes_id",
        Rel::Many("account.tax"),
    ),
    (
        "product.product",
        "property_account_expense_id",
        Rel::One("account.account"),
    ),
];

/// Models whose writes go through relation handling (the older models keep their plain writes).
pub(super) fn has_relations(model: &str) -> bool {
    RELATIONS.iter().any(|(m, _, _)| *m == model)
}

fn relation(model: &str, field: &str) -> Option<Rel> {
    RELATIONS
        .iter()
        .find(|(m, f, _)| *m == model && *f == field)
        .map(|(_, _, rel)| *rel)
}

const MOVE_TYPES: &[&str] = &[
    "entry",
    "out_invoice",
    "out_refund",
    "in_invoice",
    "in_refund",
    "out_receipt",
    "in_receipt",
];

/// Chart-of-accounts ids of the seeded database, by version (the 18 database numbers its
/// accounts one higher: 211100 is 17 and 600000 is 33 in odoo18/15).
struct Chart {
    tax_paid: i64,
    current_liabilities: i64,
    payable: i64,
    bills_to_receive: i64,
    receivable: i64,
    stock_valuation: i64,
    income: i64,
    expenses: i64,
}

impl Chart {
    fn for_version(version: u8) -> Chart {
        let shift = if version >= 19 { 0 } else { 1 };
        Chart {
            tax_paid: 9 + shift,
            current_liabilities: 14 + shift,
            payable: 15 + shift,
            bills_to_receive: 16 + shift,
            receivable: 6 + shift,
            stock_valuation: 26 + shift,
            income: 28 + shift,
            expenses: 32 + shift,
        }
    }
}

const PURCHASE_JOURNAL: i64 = 2;
const SALE_JOURNAL: i64 = 1;
const MISC_JOURNAL: i64 = 3;
const STOCK_JOURNAL: i64 = 7;
const COMPANY_CURRENCY: i64 = 1;
/// `ir.model` id of `account.move` in the seeded database.
pub const ACCOUNT_MOVE_MODEL_ID: i64 = 295;
/// `mail.mail_activity_data_todo`.
pub const TODO_ACTIVITY_TYPE: i64 = 4;

/// Odoo's HALF-UP rounding at `digits` decimals (floats, as Odoo computes).
fn round(value: f64, digits: u32) -> f64 {
    let factor = 10f64.powi(digits as i32);
    let scaled = (value * factor).abs();
    // Odoo nudges by an epsilon before rounding so 2.675 rounds up despite its binary value.
    let rounded = (scaled + scaled * f64::EPSILON * 4.0 + 1e-9).round() / factor;
    if value < 0.0 { -rounded } else { rounded }
}

fn num(value: Option<&Value>) -> f64 {
    value.and_then(Value::as_f64).unwrap_or(0.0)
}

fn user_error(message: impl Into<String>) -> Fault {
    Fault::new("odoo.exceptions.UserError", 422, message)
}

fn m2o_id(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Array(pair) if !pair.is_empty() => pair[0].as_i64(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn ids_of(value: Option<&Value>) -> Vec<i64> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

fn text<'a>(record: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    record
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// A receipt line to seed: what the landed cost is split over.
#[derive(Debug, Clone)]
pub struct ReceiptLine {
    pub product_id: i64,
    pub quantity: f64,
    /// Valuation per unit before landed costs.
    pub unit_cost: f64,
    /// The stock move's display name, e.g. `P00001/PAL-WID: Vendors>Stock`.
    pub move_name: String,
}

impl DoubleState {
    /// A fresh database with the generic chart of accounts (transcripts 040, 041), USD as the
    /// company currency, the default purchase tax, the FREIGHT service product and the stock
    /// product of the captures.
    pub(super) fn seed_chart_of_accounts(&mut self) {
        let chart = Chart::for_version(self.cfg.version);
        for (id, name, symbol, places, active) in [
            (COMPANY_CURRENCY, "USD", "$", 2, true),
            (125, "EUR", "€", 2, false),
            (25, "JPY", "¥", 0, false),
        ] {
            let rounding = 10f64.powi(-places);
            self.insert(
                "res.currency",
                Some(id),
                as_map(json!({"name": name, "display_name": name, "symbol": symbol,
                              "decimal_places": places, "rounding": rounding, "active": active})),
            );
        }
        for (id, code, name, kind) in [
            (
                chart.receivable,
                "121000",
                "Account Receivable",
                "asset_receivable",
            ),
            (chart.tax_paid, "131000", "Tax Paid", "asset_current"),
            (
                chart.current_liabilities,
                "201000",
                "Current Liabilities",
                "liability_current",
            ),
            (
                chart.payable,
                "211000",
                "Account Payable",
                "liability_payable",
            ),
            (
                chart.bills_to_receive,
                "211100",
                "Bills to receive",
                "liability_current",
            ),
            (
                chart.stock_valuation,
                "110100",
                "Stock Valuation",
                "asset_current",
            ),
            (chart.income, "400000", "Product Sales", "income"),
            (chart.expenses, "600000", "Expenses", "expense"),
        ] {
            self.insert(
                "account.account",
                Some(id),
                as_map(json!({"code": code, "name": name, "display_name": name,
                              "account_type": kind})),
            );
        }
        // `sequence` gives the list order of transcript 041.
        for (id, name, code, kind, sequence) in [
            (SALE_JOURNAL, "Sales", "INV", "sale", 5),
            (PURCHASE_JOURNAL, "Purchases", "BILL", "purchase", 6),
            (
                MISC_JOURNAL,
                "Miscellaneous Operations",
                "MISC",
                "general",
                9,
            ),
            (4, "Exchange Difference", "EXCH", "general", 11),
            (5, "Cash Basis Taxes", "CABA", "general", 10),
            (6, "Bank", "BNK1", "bank", 7),
            (STOCK_JOURNAL, "Inventory Valuation", "STJ", "general", 12),
        ] {
            self.insert(
                "account.journal",
                Some(id),
                as_map(
                    json!({"name": name, "code": code, "type": kind, "display_name": name,
                              "sequence": sequence}),
                ),
            );
        }
        for (id, kind) in [(1, "sale"), (2, "purchase")] {
            self.insert(
                "account.tax",
                Some(id),
                as_map(json!({"name": "15%", "display_name": "15%", "amount": 15.0,
                              "type_tax_use": kind})),
            );
        }
        self.insert(
            "product.product",
            Some(1),
            as_map(
                json!({"name": "Standard delivery", "display_name": "Standard delivery",
                          "type": "service", "supplier_taxes_id": [], "standard_price": 0.0,
                          "weight": 0.0, "volume": 0.0}),
            ),
        );
        self.insert(
            "product.product",
            Some(2),
            as_map(
                json!({"name": "Freight charge", "display_name": "[FREIGHT] Freight charge",
                          "default_code": "FREIGHT", "type": "service", "landed_cost_ok": true,
                          "supplier_taxes_id": [2], "standard_price": 0.0, "weight": 0.0,
                          "volume": 0.0}),
            ),
        );
        self.insert(
            "product.product",
            Some(3),
            as_map(
                json!({"name": "Pallet of widgets", "display_name": "[PAL-WID] Pallet of widgets",
                          "default_code": "PAL-WID", "type": "consu", "is_storable": true,
                          "supplier_taxes_id": [2], "standard_price": 80.0, "weight": 250.0,
                          "volume": 1.2}),
            ),
        );
        for (id, model, name) in [
            (85, "res.partner", "Contact"),
            (ACCOUNT_MOVE_MODEL_ID, "account.move", "Journal Entry"),
            (360, "stock.picking", "Transfer"),
            (410, "sale.order", "Sales Order"),
        ] {
            self.insert(
                "ir.model",
                Some(id),
                as_map(json!({"model": model, "name": name, "display_name": name})),
            );
        }
        self.insert(
            "mail.activity.type",
            Some(TODO_ACTIVITY_TYPE),
            as_map(json!({"name": "To-Do", "display_name": "To-Do"})),
        );
        self.insert(
            "ir.model.data",
            None,
            as_map(json!({"module": "mail", "name": "mail_activity_data_todo",
                          "model": "mail.activity.type", "res_id": TODO_ACTIVITY_TYPE,
                          "noupdate": true, "complete_name": "mail.mail_activity_data_todo"})),
        );
    }

    fn display_name(&self, model: &str, id: i64) -> Option<String> {
        let record = self.models.get(model)?.records.get(&id)?;
        Some(
            text(record, "display_name")
                .or_else(|| text(record, "name"))
                .unwrap_or_default()
                .to_owned(),
        )
    }

    fn many2one(&self, target: &str, id: i64) -> Result<Value, Fault> {
        match self.display_name(target, id) {
            Some(name) => Ok(json!([id, name])),
            None => Err(Fault::missing(target, &[id])),
        }
    }

    /// Applies x2many commands to the current ids (`[6, 0, ids]`, `[4, id, 0]`, `[3, id, 0]`,
    /// `[5, 0, 0]`; a plain list of ids acts as "set", as the 19 server accepted).
    fn apply_many(current: Vec<i64>, value: &Value) -> Result<Vec<i64>, Fault> {
        let Value::Array(commands) = value else {
            return Ok(if value == &Value::Bool(false) {
                Vec::new()
            } else {
                current
            });
        };
        if commands.iter().all(Value::is_i64) {
            return Ok(commands.iter().filter_map(Value::as_i64).collect());
        }
        let mut ids = current;
        for command in commands {
            let parts = command.as_array().cloned().unwrap_or_default();
            match (
                parts.first().and_then(Value::as_i64),
                parts.get(1),
                parts.get(2),
            ) {
                (Some(6), _, Some(list)) => ids = ids_of(Some(list)),
                (Some(4), Some(id), _) => {
                    if let Some(id) = id.as_i64()
                        && !ids.contains(&id)
                    {
                        ids.push(id);
                    }
                }
                (Some(3), Some(id), _) => ids.retain(|i| Some(*i) != id.as_i64()),
                (Some(5), _, _) => ids.clear(),
                _ => {
                    return Err(Fault::value_error(format!(
                        "Invalid x2many command {}",
                        super::py_repr(command)
                    )));
                }
            }
        }
        Ok(ids)
    }

    /// Writes `vals` onto `record` with relations converted to their stored shapes. One2many
    /// line commands are returned for the caller to create once the parent exists.
    fn normalize(
        &self,
        model: &str,
        record: &mut Map<String, Value>,
        vals: Map<String, Value>,
    ) -> Result<Vec<(String, Vec<Value>)>, Fault> {
        let mut lines = Vec::new();
        for (field, value) in vals {
            match relation(model, &field) {
                Some(Rel::One(target)) => {
                    let stored = match &value {
                        Value::Number(n) => match n.as_i64() {
                            Some(id) => self.many2one(target, id)?,
                            None => Value::Bool(false),
                        },
                        Value::Array(_) => value.clone(),
                        _ => Value::Bool(false),
                    };
                    record.insert(field, stored);
                }
                Some(Rel::Many(target)) => {
                    let current = ids_of(record.get(&field));
                    let ids = Self::apply_many(current, &value)?;
                    // A link to a record that does not exist fails its foreign key.
                    self.ensure_exist(target, &ids)?;
                    record.insert(field, json!(ids));
                }
                Some(Rel::Lines(_, _)) => {
                    let commands = value.as_array().cloned().unwrap_or_default();
                    record.entry(field.clone()).or_insert(json!([]));
                    lines.push((field, commands));
                }
                None => {
                    record.insert(field, value);
                }
            }
        }
        Ok(lines)
    }

    /// `create` of one record.
    pub(super) fn create_record(
        &mut self,
        model: &str,
        mut vals: Map<String, Value>,
    ) -> Result<i64, Fault> {
        match model {
            "account.move" => self.create_move(vals),
            "mail.activity" => self.create_activity(vals),
            "stock.landed.cost" => self.create_landed_cost(vals),
            _ if has_relations(model) => self.create_plain(model, vals, Map::new()),
            _ => {
                if let Some(name) = vals.get("name").cloned() {
                    vals.insert("display_name".into(), name);
                }
                Ok(self.insert(model, None, vals))
            }
        }
    }

    /// A record with relations, and its owned lines.
    fn create_plain(
        &mut self,
        model: &str,
        vals: Map<String, Value>,
        defaults: Map<String, Value>,
    ) -> Result<i64, Fault> {
        let mut record = defaults;
        let lines = self.normalize(model, &mut record, vals)?;
        if let Some(name) = record.get("name").cloned()
            && !record.contains_key("display_name")
        {
            record.insert("display_name".into(), name);
        }
        let id = self.insert(model, None, record);
        for (field, commands) in lines {
            self.line_commands(model, id, &field, &commands)?;
        }
        Ok(id)
    }

    /// `[0, 0, vals]` / `[1, id, vals]` / `[2, id, 0]` on owned lines of `parent`.
    fn line_commands(
        &mut self,
        model: &str,
        parent: i64,
        field: &str,
        commands: &[Value],
    ) -> Result<(), Fault> {
        let Some(Rel::Lines(child, inverse)) = relation(model, field) else {
            return Ok(());
        };
        for command in commands {
            let parts = command.as_array().cloned().unwrap_or_default();
            match (
                parts.first().and_then(Value::as_i64),
                parts.get(1),
                parts.get(2),
            ) {
                (Some(0), _, Some(Value::Object(vals))) => {
                    self.check_vals(child, vals)?;
                    let mut vals = vals.clone();
                    vals.insert(inverse.into(), json!(parent));
                    if child == "account.move.line" {
                        self.create_move_line(parent, field, vals)?;
                    } else {
                        let id = self.create_plain(child, vals, Map::new())?;
                        self.link(model, parent, field, id);
                    }
                }
                (Some(1), Some(id), Some(Value::Object(vals))) => {
                    let id = id.as_i64().unwrap_or_default();
                    self.ensure_exist(child, &[id])?;
                    let mut record = self.models[child].records[&id].clone();
                    self.normalize(child, &mut record, vals.clone())?;
                    if let Some(table) = self.models.get_mut(child) {
                        table.records.insert(id, record);
                    }
                }
                (Some(2), Some(id), _) => {
                    let id = id.as_i64().unwrap_or_default();
                    if let Some(table) = self.models.get_mut(child) {
                        table.records.remove(&id);
                    }
                    self.unlink_from(model, parent, id);
                }
                _ => {
                    return Err(Fault::value_error(format!(
                        "Invalid one2many command {}",
                        super::py_repr(command)
                    )));
                }
            }
        }
        if model == "account.move" {
            self.recompute_move(parent)?;
        }
        if model == "stock.landed.cost" {
            self.recompute_landed_cost(parent);
        }
        Ok(())
    }

    fn link(&mut self, model: &str, parent: i64, field: &str, id: i64) {
        if let Some(record) = self
            .models
            .get_mut(model)
            .and_then(|t| t.records.get_mut(&parent))
        {
            let mut ids = ids_of(record.get(field));
            ids.push(id);
            record.insert(field.into(), json!(ids));
        }
    }

    fn unlink_from(&mut self, model: &str, parent: i64, id: i64) {
        if let Some(record) = self
            .models
            .get_mut(model)
            .and_then(|t| t.records.get_mut(&parent))
        {
            for (_, value) in record.iter_mut() {
                if let Value::Array(items) = value
                    && items.iter().all(Value::is_i64)
                {
                    items.retain(|v| v.as_i64() != Some(id));
                }
            }
        }
    }

    /// `write` on models with relations.
    pub(super) fn write_records(
        &mut self,
        model: &str,
        ids: &[i64],
        vals: Map<String, Value>,
    ) -> Result<Value, Fault> {
        for id in ids {
            if model == "account.move" {
                self.write_move(*id, vals.clone())?;
                continue;
            }
            let mut record = self.models[model].records[id].clone();
            let lines = self.normalize(model, &mut record, vals.clone())?;
            if let Some(table) = self.models.get_mut(model) {
                table.records.insert(*id, record);
            }
            for (field, commands) in lines {
                self.line_commands(model, *id, &field, &commands)?;
            }
        }
        Ok(json!(true))
    }

    pub(super) fn before_unlink(&mut self, model: &str, ids: &[i64]) -> Result<(), Fault> {
        if model != "account.move" {
            return Ok(());
        }
        for id in ids {
            if text(&self.models[model].records[id], "state") == Some("posted") {
                // Transcripts 071 / 117.
                return Err(user_error(
                    "You can't delete a posted journal item. Don\u{2019}t play games with your accounting records; reset the journal entry to draft before deleting it.",
                ));
            }
        }
        let lines: Vec<i64> = self.models["account.move.line"]
            .records
            .values()
            .filter(|l| m2o_id(l.get("move_id")).is_some_and(|m| ids.contains(&m)))
            .filter_map(|l| l["id"].as_i64())
            .collect();
        if let Some(table) = self.models.get_mut("account.move.line") {
            for line in lines {
                table.records.remove(&line);
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Journal entries and invoices.

    fn create_move(&mut self, vals: Map<String, Value>) -> Result<i64, Fault> {
        let move_type = match vals.get("move_type") {
            None => "entry".to_owned(),
            Some(Value::String(t)) if MOVE_TYPES.contains(&t.as_str()) => t.clone(),
            Some(other) => {
                return Err(Fault::value_error(format!(
                    "Wrong value for account.move.move_type: {}",
                    super::py_repr(other)
                )));
            }
        };
        let journal = match move_type.as_str() {
            "in_invoice" | "in_refund" | "in_receipt" => PURCHASE_JOURNAL,
            "out_invoice" | "out_refund" | "out_receipt" => SALE_JOURNAL,
            _ => MISC_JOURNAL,
        };
        let today = self.today().to_string();
        let defaults = as_map(json!({
            "move_type": move_type,
            "state": "draft",
            "name": false,
            "payment_state": "not_paid",
            "auto_post": "no",
            "journal_id": self.many2one("account.journal", journal)?,
            "currency_id": self.many2one("res.currency", COMPANY_CURRENCY)?,
            "date": today,
            "invoice_line_ids": [],
            "line_ids": [],
            "amount_untaxed": 0.0,
            "amount_tax": 0.0,
            "amount_total": 0.0,
            "amount_residual": 0.0,
            "reversal_move_ids": [],
            "duplicated_ref_ids": [],
        }));
        let id = self.create_plain("account.move", vals, defaults)?;
        self.update_move(id, Map::new());
        // Lines with nothing to recompute (a move without lines) still get their totals.
        self.recompute_move(id)?;
        self.check_balanced(id)?;
        self.refresh_move_links();
        Ok(id)
    }

    fn write_move(&mut self, id: i64, vals: Map<String, Value>) -> Result<(), Fault> {
        let record = self.models["account.move"].records[&id].clone();
        let touches_lines = vals.contains_key("invoice_line_ids") || vals.contains_key("line_ids");
        if touches_lines && text(&record, "state") != Some("draft") {
            // Not from a transcript: the client never writes lines on a posted move.
            return Err(user_error(
                "You cannot modify the lines of a posted entry; reset it to draft first.",
            ));
        }
        let mut updated = record;
        let lines = self.normalize("account.move", &mut updated, vals)?;
        if let Some(table) = self.models.get_mut("account.move") {
            table.records.insert(id, updated);
        }
        for (field, commands) in lines {
            self.line_commands("account.move", id, &field, &commands)?;
        }
        self.recompute_move(id)?;
        self.check_balanced(id)?;
        self.refresh_move_links();
        Ok(())
    }

    fn move_record(&self, id: i64) -> &Map<String, Value> {
        &self.models["account.move"].records[&id]
    }

    fn move_lines(&self, id: i64) -> Vec<Map<String, Value>> {
        self.models["account.move.line"]
            .records
            .values()
            .filter(|l| m2o_id(l.get("move_id")) == Some(id))
            .cloned()
            .collect()
    }

    fn currency_digits(&self, move_id: i64) -> u32 {
        m2o_id(self.move_record(move_id).get("currency_id"))
            .and_then(|c| self.models["res.currency"].records.get(&c))
            .and_then(|c| c.get("decimal_places").and_then(Value::as_u64))
            .map_or(2, |d| d as u32)
    }

    /// Sign of a product line's balance: bills and customer refunds debit their lines.
    fn product_sign(move_type: &str) -> f64 {
        match move_type {
            "in_invoice" | "in_receipt" | "out_refund" => 1.0,
            _ => -1.0,
        }
    }

    fn create_move_line(
        &mut self,
        move_id: i64,
        field: &str,
        vals: Map<String, Value>,
    ) -> Result<i64, Fault> {
        let parent = self.move_record(move_id).clone();
        let move_type = text(&parent, "move_type").unwrap_or("entry").to_owned();
        let digits = self.currency_digits(move_id);
        let mut record = as_map(json!({
            "display_type": "product",
            "quantity": 1.0,
            "price_unit": 0.0,
            "tax_ids": [],
            "debit": 0.0,
            "credit": 0.0,
            "partner_id": parent.get("partner_id").cloned().unwrap_or(Value::Bool(false)),
            "currency_id": parent.get("currency_id").cloned().unwrap_or(Value::Bool(false)),
            "journal_id": parent.get("journal_id").cloned().unwrap_or(Value::Bool(false)),
            "is_landed_costs_line": false,
        }));
        let given_taxes = vals.contains_key("tax_ids");
        let given_account = vals.contains_key("account_id");
        let given_name = vals.contains_key("name");
        let is_invoice = move_type != "entry";
        self.normalize("account.move.line", &mut record, vals.clone())?;
        // Odoo's float fields read back as floats whatever number was written.
        for field in ["quantity", "price_unit"] {
            let value = num(record.get(field));
            record.insert(field.into(), json!(value));
        }
        let product = m2o_id(record.get("product_id"));
        if let Some(product) = product {
            let product = self.models["product.product"].records[&product].clone();
            if !given_taxes && move_type.starts_with("in_") {
                record.insert(
                    "tax_ids".into(),
                    json!(ids_of(product.get("supplier_taxes_id"))),
                );
            }
            if !given_name {
                record.insert(
                    "name".into(),
                    json!(text(&product, "display_name").unwrap_or_default()),
                );
            }
            if !given_account {
                let chart = Chart::for_version(self.cfg.version);
                let account = m2o_id(product.get("property_account_expense_id")).unwrap_or(
                    if move_type.starts_with("in_") {
                        chart.expenses
                    } else {
                        chart.income
                    },
                );
                record.insert(
                    "account_id".into(),
                    self.many2one("account.account", account)?,
                );
            }
        }
        if is_invoice && (field == "invoice_line_ids" || vals.contains_key("price_unit")) {
            let subtotal = round(
                num(record.get("quantity")) * num(record.get("price_unit")),
                digits,
            );
            let balance = Self::product_sign(&move_type) * subtotal;
            record.insert("price_subtotal".into(), json!(subtotal));
            record.insert("balance".into(), json!(balance));
            record.insert("debit".into(), json!(balance.max(0.0)));
            record.insert("credit".into(), json!((-balance).max(0.0)));
        } else {
            let debit = round(num(record.get("debit")), digits);
            let credit = round(num(record.get("credit")), digits);
            record.insert("debit".into(), json!(debit));
            record.insert("credit".into(), json!(credit));
            record.insert("balance".into(), json!(round(debit - credit, digits)));
            record.insert(
                "price_subtotal".into(),
                json!(round(debit - credit, digits)),
            );
        }
        let balance = record["balance"].clone();
        record.insert("amount_currency".into(), balance);
        record.insert("move_id".into(), self.many2one("account.move", move_id)?);
        self.copy_move_fields(&parent, &mut record);
        record.entry("name").or_insert(Value::Bool(false));
        let id = self.insert("account.move.line", None, record);
        Ok(id)
    }

    fn copy_move_fields(&self, parent: &Map<String, Value>, line: &mut Map<String, Value>) {
        line.insert(
            "ref".into(),
            parent.get("ref").cloned().unwrap_or(json!(false)),
        );
        line.insert(
            "date".into(),
            parent.get("date").cloned().unwrap_or(json!(false)),
        );
        line.insert(
            "parent_state".into(),
            parent.get("state").cloned().unwrap_or(json!("draft")),
        );
        line.insert(
            "move_name".into(),
            parent.get("name").cloned().unwrap_or(json!(false)),
        );
    }

    /// Tax and payable lines, totals and line lists of a move, as Odoo's dynamic lines.
    fn recompute_move(&mut self, id: i64) -> Result<(), Fault> {
        let parent = self.move_record(id).clone();
        let move_type = text(&parent, "move_type").unwrap_or("entry").to_owned();
        let digits = self.currency_digits(id);
        let chart = Chart::for_version(self.cfg.version);
        let mut lines = self.move_lines(id);
        if move_type != "entry" {
            // The computed lines are updated in place (their ids stay, as in Odoo), made when
            // missing and dropped when no longer needed.
            let mut computed: BTreeMap<String, i64> = lines
                .iter()
                .filter(|l| matches!(text(l, "display_type"), Some("tax" | "payment_term")))
                .filter_map(|l| Some((text(l, "_key")?.to_owned(), l["id"].as_i64()?)))
                .collect();
            lines.retain(|l| text(l, "display_type") == Some("product"));
            let sign = Self::product_sign(&move_type);
            let mut per_tax: BTreeMap<i64, f64> = BTreeMap::new();
            for line in &lines {
                for tax in ids_of(line.get("tax_ids")) {
                    *per_tax.entry(tax).or_default() += num(line.get("price_subtotal"));
                }
            }
            let untaxed: f64 = lines.iter().map(|l| num(l.get("price_subtotal"))).sum();
            let mut tax_total = 0.0;
            for (tax, base) in per_tax {
                let tax_record = self.models["account.tax"].records[&tax].clone();
                let amount = round(base * num(tax_record.get("amount")) / 100.0, digits);
                tax_total += amount;
                let balance = sign * amount;
                let mut line = as_map(json!({
                    "display_type": "tax",
                    "name": text(&tax_record, "name").unwrap_or_default(),
                    "account_id": self.many2one("account.account", if move_type.starts_with("in_") { chart.tax_paid } else { chart.current_liabilities })?,
                    "quantity": 0.0, "price_unit": 0.0, "price_subtotal": 0.0, "tax_ids": [],
                    "debit": balance.max(0.0), "credit": (-balance).max(0.0), "balance": balance,
                    "amount_currency": balance,
                    "partner_id": parent.get("partner_id").cloned().unwrap_or(json!(false)),
                    "currency_id": parent.get("currency_id").cloned().unwrap_or(json!(false)),
                    "journal_id": parent.get("journal_id").cloned().unwrap_or(json!(false)),
                    "move_id": self.many2one("account.move", id)?,
                    "is_landed_costs_line": false,
                    "_key": format!("tax {tax}"),
                }));
                self.copy_move_fields(&parent, &mut line);
                self.put_computed_line(&mut computed, line);
            }
            let total = round(untaxed + tax_total, digits);
            let balance = -sign * total;
            let counterpart = if move_type.starts_with("in_") {
                chart.payable
            } else {
                chart.receivable
            };
            let mut line = as_map(json!({
                "display_type": "payment_term",
                "name": false,
                "account_id": self.many2one("account.account", counterpart)?,
                "quantity": 0.0, "price_unit": 0.0, "price_subtotal": 0.0, "tax_ids": [],
                "debit": balance.max(0.0), "credit": (-balance).max(0.0), "balance": balance,
                "amount_currency": balance,
                "partner_id": parent.get("partner_id").cloned().unwrap_or(json!(false)),
                "currency_id": parent.get("currency_id").cloned().unwrap_or(json!(false)),
                "journal_id": parent.get("journal_id").cloned().unwrap_or(json!(false)),
                "move_id": self.many2one("account.move", id)?,
                "is_landed_costs_line": false,
                "_key": "payment term",
            }));
            self.copy_move_fields(&parent, &mut line);
            self.put_computed_line(&mut computed, line);
            if let Some(table) = self.models.get_mut("account.move.line") {
                for stale in computed.values() {
                    table.records.remove(stale);
                }
            }
            let record = self
                .models
                .get_mut("account.move")
                .and_then(|t| t.records.get_mut(&id))
                .expect("the move exists");
            record.insert("amount_untaxed".into(), json!(round(untaxed, digits)));
            record.insert("amount_tax".into(), json!(round(tax_total, digits)));
            record.insert("amount_total".into(), json!(total));
            record.insert("amount_residual".into(), json!(total));
        } else {
            let debits: f64 = lines.iter().map(|l| num(l.get("debit"))).sum();
            let record = self
                .models
                .get_mut("account.move")
                .and_then(|t| t.records.get_mut(&id))
                .expect("the move exists");
            record.insert("amount_total".into(), json!(round(debits, digits)));
        }
        let all = self.move_lines(id);
        let product: Vec<i64> = all
            .iter()
            .filter(|l| move_type != "entry" && text(l, "display_type") == Some("product"))
            .filter_map(|l| l["id"].as_i64())
            .collect();
        let every: Vec<i64> = all.iter().filter_map(|l| l["id"].as_i64()).collect();
        let record = self
            .models
            .get_mut("account.move")
            .and_then(|t| t.records.get_mut(&id))
            .expect("the move exists");
        record.insert("invoice_line_ids".into(), json!(product));
        record.insert("line_ids".into(), json!(every));
        Ok(())
    }

    /// Writes a computed line over the one with the same key, or adds it.
    fn put_computed_line(
        &mut self,
        existing: &mut BTreeMap<String, i64>,
        line: Map<String, Value>,
    ) {
        let key = text(&line, "_key").unwrap_or_default().to_owned();
        match existing.remove(&key) {
            Some(id) => {
                let mut line = line;
                line.insert("id".into(), json!(id));
                if let Some(table) = self.models.get_mut("account.move.line") {
                    table.records.insert(id, line);
                }
            }
            None => {
                self.insert("account.move.line", None, line);
            }
        }
    }

    /// Odoo refuses an unbalanced entry already at `create()` (070/116), with a longer message
    /// naming the totals in 18 (odoo18/20).
    fn check_balanced(&self, id: i64) -> Result<(), Fault> {
        let lines = self.move_lines(id);
        let debit: f64 = lines.iter().map(|l| num(l.get("debit"))).sum();
        let credit: f64 = lines.iter().map(|l| num(l.get("credit"))).sum();
        if (debit - credit).abs() < 0.005 {
            return Ok(());
        }
        let message = if self.cfg.version >= 19 {
            "The entry is not balanced.".to_owned()
        } else {
            let record = self.move_record(id);
            let journal = m2o_id(record.get("journal_id"))
                .and_then(|j| self.display_name("account.journal", j))
                .unwrap_or_default();
            format!(
                "An error has occurred.\n\nThe move (Draft Entry) is not balanced.\nThe total of debits equals $\u{a0}{debit:.2} and the total of credits equals $\u{a0}{credit:.2}.\nYou might want to specify a default account on journal \"{journal}\" to automatically balance each move."
            )
        };
        Err(user_error(message))
    }

    /// Computed links between moves: reversals and duplicated vendor references.
    fn refresh_move_links(&mut self) {
        let moves: Vec<Map<String, Value>> = self.models["account.move"]
            .records
            .values()
            .cloned()
            .collect();
        let mut updates: Vec<(i64, Vec<i64>, Vec<i64>)> = Vec::new();
        for record in &moves {
            let id = record["id"].as_i64().unwrap_or_default();
            let reversals: Vec<i64> = moves
                .iter()
                .filter(|m| m2o_id(m.get("reversed_entry_id")) == Some(id))
                .filter_map(|m| m["id"].as_i64())
                .collect();
            // A second bill with the same vendor and reference only gets a warning (139–142).
            let duplicates: Vec<i64> = match (text(record, "move_type"), text(record, "ref")) {
                (Some(kind @ ("in_invoice" | "in_refund")), Some(reference)) => moves
                    .iter()
                    .filter(|m| m["id"] != record["id"])
                    .filter(|m| text(m, "move_type") == Some(kind))
                    .filter(|m| text(m, "ref") == Some(reference))
                    .filter(|m| m2o_id(m.get("partner_id")) == m2o_id(record.get("partner_id")))
                    .filter(|m| m.get("invoice_date") == record.get("invoice_date"))
                    .filter_map(|m| m["id"].as_i64())
                    .collect(),
                _ => Vec::new(),
            };
            updates.push((id, reversals, duplicates));
        }
        if let Some(table) = self.models.get_mut("account.move") {
            for (id, reversals, duplicates) in updates {
                if let Some(record) = table.records.get_mut(&id) {
                    record.insert("reversal_move_ids".into(), json!(reversals));
                    record.insert("duplicated_ref_ids".into(), json!(duplicates));
                }
            }
        }
    }

    /// Sets fields of a move and mirrors what its lines relate (state, name, ref, date).
    fn update_move(&mut self, id: i64, changes: Map<String, Value>) {
        if let Some(record) = self
            .models
            .get_mut("account.move")
            .and_then(|t| t.records.get_mut(&id))
        {
            for (k, v) in changes {
                record.insert(k, v);
            }
            let name = text(record, "name").map(str::to_owned);
            let display = match (&name, text(record, "ref")) {
                (Some(name), Some(reference)) => format!("{name} ({reference})"),
                (Some(name), None) => name.clone(),
                (None, _) => "/".to_owned(),
            };
            record.insert("display_name".into(), json!(display));
        }
        let parent = self.move_record(id).clone();
        let display = json!([id, parent["display_name"].clone()]);
        let lines: Vec<i64> = self
            .move_lines(id)
            .iter()
            .filter_map(|l| l["id"].as_i64())
            .collect();
        for line in lines {
            let mut record = self.models["account.move.line"].records[&line].clone();
            self.copy_move_fields(&parent, &mut record);
            record.insert("move_id".into(), display.clone());
            if let Some(table) = self.models.get_mut("account.move.line") {
                table.records.insert(line, record);
            }
        }
    }

    fn next_in_sequence(&mut self, prefix: String, width: usize) -> String {
        let counter = self.sequences.entry(prefix.clone()).or_default();
        *counter += 1;
        format!("{prefix}/{:0width$}", *counter)
    }

    pub(super) fn action_post(&mut self, ids: &[i64]) -> Result<Value, Fault> {
        self.ensure_exist("account.move", ids)?;
        for id in ids {
            let record = self.move_record(*id).clone();
            if text(&record, "state") == Some("posted") {
                // Not from a transcript (the client posts drafts only).
                return Err(user_error(format!(
                    "The entry {} (id {id}) is already posted.",
                    text(&record, "name").unwrap_or("/")
                )));
            }
            let move_type = text(&record, "move_type").unwrap_or("entry");
            if move_type != "entry" && record.get("invoice_date") == Some(&json!(false)) {
                return Err(user_error(
                    "The Bill/Refund date is required to validate this document.",
                ));
            }
            // A draft Odoo will post on its date refuses a manual post before then.
            let date: Option<NaiveDate> = text(&record, "date").and_then(|d| d.parse().ok());
            if text(&record, "auto_post").is_some_and(|a| a != "no")
                && let Some(date) = date.filter(|d| *d > self.today())
            {
                return Err(user_error(format!(
                    "This move is configured to be auto-posted on {}",
                    date.format("%m/%d/%Y")
                )));
            }
            self.check_balanced(*id)?;
            let name = match text(&record, "name") {
                // Reset to draft keeps its number (059) and posting again reuses it.
                Some(name) => name.to_owned(),
                None => {
                    let journal = m2o_id(record.get("journal_id")).unwrap_or(MISC_JOURNAL);
                    let code = self.models["account.journal"].records[&journal]["code"]
                        .as_str()
                        .unwrap_or("MISC")
                        .to_owned();
                    let date: NaiveDate = text(&record, "date")
                        .and_then(|d| d.parse().ok())
                        .unwrap_or_else(|| self.today());
                    self.next_in_sequence(format!("{code}/{}", date.format("%Y/%m")), 4)
                }
            };
            let mut changes = Map::new();
            changes.insert("state".into(), json!("posted"));
            changes.insert("name".into(), json!(name));
            self.update_move(*id, changes);
        }
        self.refresh_move_links();
        Ok(json!(false))
    }

    /// Returns `None`, which JSON-RPC sends as an envelope without `result` (058).
    pub(super) fn button_draft(&mut self, ids: &[i64]) -> Result<Value, Fault> {
        self.ensure_exist("account.move", ids)?;
        for id in ids {
            let mut changes = Map::new();
            changes.insert("state".into(), json!("draft"));
            self.update_move(*id, changes);
        }
        Ok(Value::Null)
    }

    pub(super) fn button_cancel(&mut self, ids: &[i64]) -> Result<Value, Fault> {
        self.ensure_exist("account.move", ids)?;
        for id in ids {
            if text(self.move_record(*id), "state") == Some("posted") {
                return Err(user_error("Only draft journal entries can be cancelled."));
            }
            let mut changes = Map::new();
            changes.insert("state".into(), json!("cancel"));
            self.update_move(*id, changes);
        }
        Ok(Value::Null)
    }

    /// The reversal wizard (055–057): one reversing move per move, `ref` "Reversal of: <name>,
    /// <reason>", debits and credits swapped. An entry dated up to today is posted; a later date
    /// leaves a draft to be posted by the scheduler (`auto_post = at_date`).
    pub(super) fn reverse_moves(&mut self, ids: &[i64]) -> Result<Value, Fault> {
        self.ensure_exist("account.move.reversal", ids)?;
        let [wizard] = ids else {
            return Err(Fault::value_error(format!(
                "Expected singleton: account.move.reversal{}",
                super::py_tuple(ids)
            )));
        };
        let wizard = self.models["account.move.reversal"].records[wizard].clone();
        let moves = ids_of(wizard.get("move_ids"));
        let date: NaiveDate = text(&wizard, "date")
            .and_then(|d| d.parse().ok())
            .unwrap_or_else(|| self.today());
        let reason = text(&wizard, "reason").map(str::to_owned);
        let journal = m2o_id(wizard.get("journal_id"));
        // Odoo cancels (posts and reconciles) the originals only when the wizard holds one
        // journal entry dated up to today (`move_type` is computed for a single move); with
        // several moves, or a later date, the reversals stay draft and unreconciled.
        let cancel = moves.len() == 1
            && date <= self.today()
            && moves
                .first()
                .is_some_and(|m| text(self.move_record(*m), "move_type") == Some("entry"));
        let mut created = Vec::new();
        for original in &moves {
            let record = self.move_record(*original).clone();
            if text(&record, "state") != Some("posted") {
                return Err(user_error("You can only reverse posted moves."));
            }
            let name = text(&record, "name").unwrap_or("/").to_owned();
            let move_type = text(&record, "move_type").unwrap_or("entry").to_owned();
            let reversed_type = match move_type.as_str() {
                "in_invoice" => "in_refund",
                "out_invoice" => "out_refund",
                "in_refund" => "in_invoice",
                "out_refund" => "out_invoice",
                other => other,
            };
            let reference = match &reason {
                Some(reason) => format!("Reversal of: {name}, {reason}"),
                None => format!("Reversal of: {name}"),
            };
            let future = date > self.today();
            let lines: Vec<Value> = self
                .move_lines(*original)
                .iter()
                .filter(|l| move_type == "entry" || text(l, "display_type") == Some("product"))
                .map(|l| {
                    let mut vals = Map::new();
                    vals.insert(
                        "name".into(),
                        l.get("name").cloned().unwrap_or(json!(false)),
                    );
                    if let Some(account) = m2o_id(l.get("account_id")) {
                        vals.insert("account_id".into(), json!(account));
                    }
                    if let Some(partner) = m2o_id(l.get("partner_id")) {
                        vals.insert("partner_id".into(), json!(partner));
                    }
                    if move_type == "entry" {
                        vals.insert("debit".into(), l["credit"].clone());
                        vals.insert("credit".into(), l["debit"].clone());
                    } else {
                        vals.insert("quantity".into(), l["quantity"].clone());
                        vals.insert("price_unit".into(), l["price_unit"].clone());
                        vals.insert("tax_ids".into(), json!([[6, 0, ids_of(l.get("tax_ids"))]]));
                    }
                    json!([0, 0, vals])
                })
                .collect();
            let lines_field = if move_type == "entry" {
                "line_ids"
            } else {
                "invoice_line_ids"
            };
            let mut vals = Map::new();
            vals.insert("move_type".into(), json!(reversed_type));
            vals.insert("ref".into(), json!(reference));
            vals.insert("date".into(), json!(date.to_string()));
            vals.insert(
                "journal_id".into(),
                json!(journal.or(m2o_id(record.get("journal_id")))),
            );
            if let Some(partner) = m2o_id(record.get("partner_id")) {
                vals.insert("partner_id".into(), json!(partner));
            }
            vals.insert("reversed_entry_id".into(), json!(original));
            vals.insert(
                "invoice_date".into(),
                record.get("invoice_date").cloned().unwrap_or(json!(false)),
            );
            vals.insert(
                "auto_post".into(),
                json!(if future { "at_date" } else { "no" }),
            );
            vals.insert(lines_field.into(), Value::Array(lines));
            let reversal = self.create_move(vals)?;
            if cancel {
                self.action_post(&[reversal])?;
            }
            created.push(reversal);
        }
        self.refresh_move_links();
        Ok(match created[..] {
            [single] => json!({"name": "Reverse Moves", "type": "ir.actions.act_window",
                               "res_model": "account.move", "view_mode": "form",
                               "res_id": single, "context": {"default_move_type": "entry"}}),
            _ => json!({"name": "Reverse Moves", "type": "ir.actions.act_window",
                        "res_model": "account.move", "view_mode": "list,form",
                        "domain": [["id", "in", created]],
                        "context": {"default_move_type": "entry"}}),
        })
    }

    // -----------------------------------------------------------------------------------------
    // Activities.

    fn create_activity(&mut self, vals: Map<String, Value>) -> Result<i64, Fault> {
        for required in ["res_model_id", "res_id", "date_deadline"] {
            if !vals.get(required).is_some_and(|v| v != &json!(false)) {
                // Not from a transcript: Odoo refuses a missing required field.
                return Err(Fault::new(
                    "odoo.exceptions.ValidationError",
                    422,
                    format!("Missing required field {required} on Activity"),
                ));
            }
        }
        let model = m2o_id(vals.get("res_model_id"))
            .and_then(|m| self.models["ir.model"].records.get(&m))
            .and_then(|m| text(m, "model"))
            .map(str::to_owned)
            .unwrap_or_default();
        let res_id = vals
            .get("res_id")
            .and_then(Value::as_i64)
            .unwrap_or_default();
        if let Some(table) = self.models.get(model.as_str())
            && !table.records.contains_key(&res_id)
        {
            return Err(Fault::missing(&model, &[res_id]));
        }
        let summary = vals.get("summary").cloned().unwrap_or(json!(false));
        let defaults = as_map(json!({"res_model": model, "active": true,
                                     "display_name": summary}));
        self.create_plain("mail.activity", vals, defaults)
    }

    /// `mail.activity.mixin.activity_schedule`: one activity per record, the type from an
    /// external id (resolved without the caller's access to `ir.model.data`; an unknown one
    /// falls back to the default type, as Odoo does), `res_model_id` from the record's model.
    pub(super) fn activity_schedule(
        &mut self,
        model: &str,
        ids: &[i64],
        kwargs: &Map<String, Value>,
    ) -> Result<Value, Fault> {
        self.ensure_exist(model, ids)?;
        let model_id = self.models["ir.model"]
            .records
            .iter()
            .find(|(_, m)| text(m, "model") == Some(model))
            .map(|(id, _)| *id);
        let xmlid = kwargs
            .get("act_type_xmlid")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let activity_type = xmlid
            .split_once('.')
            .and_then(|(module, name)| {
                self.models["ir.model.data"]
                    .records
                    .values()
                    .find(|r| text(r, "module") == Some(module) && text(r, "name") == Some(name))
            })
            .and_then(|r| r.get("res_id").and_then(Value::as_i64))
            .or_else(|| kwargs.get("activity_type_id").and_then(Value::as_i64))
            .unwrap_or(TODO_ACTIVITY_TYPE);
        let deadline = kwargs
            .get("date_deadline")
            .filter(|d| d.is_string())
            .cloned()
            .unwrap_or_else(|| json!(self.today().to_string()));
        let mut created = Vec::new();
        for id in ids {
            let mut vals = Map::new();
            vals.insert("res_model_id".into(), json!(model_id));
            vals.insert("res_id".into(), json!(id));
            vals.insert("activity_type_id".into(), json!(activity_type));
            vals.insert("date_deadline".into(), deadline.clone());
            for field in ["summary", "note", "user_id"] {
                if let Some(value) = kwargs.get(field) {
                    vals.insert(field.into(), value.clone());
                }
            }
            created.push(self.create_activity(vals)?);
        }
        Ok(json!(created))
    }

    // -----------------------------------------------------------------------------------------
    // Landed costs (034–038 direct, 049–054 from a bill).

    fn create_landed_cost(&mut self, vals: Map<String, Value>) -> Result<i64, Fault> {
        let defaults = as_map(json!({
            "name": "New",
            "state": "draft",
            "target_model": "picking",
            "date": self.today().to_string(),
            "account_journal_id": self.many2one("account.journal", STOCK_JOURNAL)?,
            "picking_ids": [],
            "cost_lines": [],
            "valuation_adjustment_lines": [],
            "amount_total": 0.0,
        }));
        let id = self.create_plain("stock.landed.cost", vals, defaults)?;
        self.recompute_landed_cost(id);
        Ok(id)
    }

    fn recompute_landed_cost(&mut self, id: i64) {
        let lines = ids_of(self.models["stock.landed.cost"].records[&id].get("cost_lines"));
        let total: f64 = lines
            .iter()
            .filter_map(|l| self.models["stock.landed.cost.lines"].records.get(l))
            .map(|l| num(l.get("price_unit")))
            .sum();
        if let Some(record) = self
            .models
            .get_mut("stock.landed.cost")
            .and_then(|t| t.records.get_mut(&id))
        {
            record.insert("amount_total".into(), json!(round(total, 2)));
        }
    }

    /// Splits each cost line over the receipts' moves and stores the adjustment lines.
    pub(super) fn compute_landed_cost(&mut self, ids: &[i64]) -> Result<Value, Fault> {
        self.ensure_exist("stock.landed.cost", ids)?;
        for id in ids {
            let cost = self.models["stock.landed.cost"].records[id].clone();
            let old = ids_of(cost.get("valuation_adjustment_lines"));
            if let Some(table) = self.models.get_mut("stock.valuation.adjustment.lines") {
                for line in old {
                    table.records.remove(&line);
                }
            }
            let pickings = ids_of(cost.get("picking_ids"));
            let moves: Vec<Map<String, Value>> = self.models["stock.move"]
                .records
                .values()
                .filter(|m| m2o_id(m.get("picking_id")).is_some_and(|p| pickings.contains(&p)))
                .cloned()
                .collect();
            let mut created = Vec::new();
            for line_id in ids_of(cost.get("cost_lines")) {
                let line = self.models["stock.landed.cost.lines"].records[&line_id].clone();
                let amount = num(line.get("price_unit"));
                let method = text(&line, "split_method").unwrap_or("equal").to_owned();
                let weight_of = |m: &Map<String, Value>| -> f64 {
                    let quantity = num(m.get("quantity"));
                    let product = m2o_id(m.get("product_id"))
                        .and_then(|p| self.models["product.product"].records.get(&p));
                    match method.as_str() {
                        "by_quantity" => quantity,
                        "by_current_cost_price" => num(m.get("_value")),
                        "by_weight" => quantity * num(product.and_then(|p| p.get("weight"))),
                        "by_volume" => quantity * num(product.and_then(|p| p.get("volume"))),
                        _ => 1.0,
                    }
                };
                let weights: Vec<f64> = moves.iter().map(weight_of).collect();
                let total_weight: f64 = weights.iter().sum();
                for (stock_move, weight) in moves.iter().zip(weights) {
                    let share = if total_weight > 0.0 {
                        round(amount * weight / total_weight, 2)
                    } else {
                        0.0
                    };
                    let former = num(stock_move.get("_value"));
                    let adjustment = as_map(json!({
                        "cost_id": [id, cost["name"].clone()],
                        "cost_line_id": [line_id, line["name"].clone()],
                        "product_id": stock_move["product_id"].clone(),
                        "move_id": [stock_move["id"].clone(), stock_move["display_name"].clone()],
                        "quantity": num(stock_move.get("quantity")),
                        "former_cost": former,
                        "additional_landed_cost": share,
                        "final_cost": round(former + share, 2),
                    }));
                    created.push(self.insert("stock.valuation.adjustment.lines", None, adjustment));
                }
            }
            if let Some(record) = self
                .models
                .get_mut("stock.landed.cost")
                .and_then(|t| t.records.get_mut(id))
            {
                record.insert("valuation_adjustment_lines".into(), json!(created));
            }
        }
        Ok(json!(true))
    }

    /// Validation: a draft with receipts whose products use FIFO or average costing; computes
    /// first when needed (as Odoo does), numbers the landed cost and posts its stock entry.
    pub(super) fn validate_landed_cost(&mut self, ids: &[i64]) -> Result<Value, Fault> {
        self.ensure_exist("stock.landed.cost", ids)?;
        for id in ids {
            let cost = self.models["stock.landed.cost"].records[id].clone();
            if text(&cost, "state") != Some("draft") {
                return Err(user_error("Only draft landed costs can be validated"));
            }
            let pickings = ids_of(cost.get("picking_ids"));
            if pickings.is_empty() {
                return Err(user_error(
                    "Please define the transfers on which those additional costs should apply.",
                ));
            }
            for picking in &pickings {
                if !matches!(
                    self.costing.get(picking).map(String::as_str),
                    Some("fifo" | "average")
                ) {
                    // Seen while preparing the captures (reference §8.5).
                    return Err(user_error(
                        "Landed costs can only be applied for products with FIFO or average costing method.",
                    ));
                }
            }
            if ids_of(cost.get("valuation_adjustment_lines")).is_empty() {
                self.compute_landed_cost(&[*id])?;
            }
            let date: NaiveDate = text(&cost, "date")
                .and_then(|d| d.parse().ok())
                .unwrap_or_else(|| self.today());
            let name = self.next_in_sequence(format!("LC/{}", date.format("%Y")), 4);
            let chart = Chart::for_version(self.cfg.version);
            let amount = num(cost.get("amount_total"));
            let journal = m2o_id(cost.get("account_journal_id")).unwrap_or(STOCK_JOURNAL);
            let entry = as_map(json!({
                "move_type": "entry",
                "ref": name,
                "date": date.to_string(),
                "journal_id": journal,
                "line_ids": [
                    [0, 0, {"account_id": chart.stock_valuation, "name": name, "debit": amount, "credit": 0.0}],
                    [0, 0, {"account_id": chart.expenses, "name": name, "debit": 0.0, "credit": amount}],
                ],
            }));
            let entry = self.create_move(entry)?;
            self.action_post(&[entry])?;
            let account_move = self.many2one("account.move", entry)?;
            if let Some(record) = self
                .models
                .get_mut("stock.landed.cost")
                .and_then(|t| t.records.get_mut(id))
            {
                record.insert("state".into(), json!("done"));
                record.insert("name".into(), json!(name));
                record.insert("display_name".into(), json!(name));
                record.insert("account_move_id".into(), account_move);
            }
        }
        Ok(json!(true))
    }
}

impl DoubleState {
    /// Many2one display names as they are now (Odoo computes them on read).
    pub(super) fn refresh_display(&self, model: &str, row: &mut Map<String, Value>) {
        for (field, value) in row.iter_mut() {
            if let Some(Rel::One(target)) = relation(model, field)
                && let Some(id) = m2o_id(Some(value))
                && let Some(name) = self.display_name(target, id)
            {
                *value = json!([id, name]);
            }
        }
    }
}

/// What `button_create_landed_costs` answers (051): the landed-cost form action.
pub(super) fn landed_cost_action(res_id: i64) -> Value {
    json!({"id": 475, "display_name": "Landed Costs", "name": "Landed Costs",
           "type": "ir.actions.act_window", "xml_id": "stock_landed_costs.action_stock_landed_cost",
           "path": "landed-costs",
           "help": "<p class=\"o_view_nocontent_smiling_face\">\n                    Create a new landed cost\n                </p><p>\n                    Landed costs allow you to include additional costs (shipment, insurance, customs duties, etc) into the cost of the product.\n                </p>\n            ",
           "binding_model_id": false, "binding_type": "action", "binding_view_types": "list,form",
           "view_id": false, "domain": false, "context": "{}", "res_id": res_id,
           "res_model": "stock.landed.cost", "target": "current", "view_mode": "form",
           "mobile_view_mode": "kanban", "views": [[false, "form"]], "limit": 80, "group_ids": [],
           "search_view_id": false, "embedded_action_ids": [], "filter": false, "cache": true})
}

impl DoubleState {
    /// From a posted bill's landed-cost lines (051): a draft landed cost tied to the bill.
    pub(super) fn button_create_landed_costs(&mut self, ids: &[i64]) -> Result<Value, Fault> {
        self.ensure_exist("account.move", ids)?;
        let [bill] = ids else {
            return Err(Fault::value_error("Expected singleton: account.move"));
        };
        let lines: Vec<Value> = self
            .move_lines(*bill)
            .iter()
            .filter(|l| l.get("is_landed_costs_line") == Some(&json!(true)))
            .map(|l| {
                json!([0, 0, {
                    "product_id": m2o_id(l.get("product_id")),
                    "name": l.get("name").cloned().unwrap_or(json!(false)),
                    "price_unit": num(l.get("price_subtotal")),
                    "split_method": "equal",
                }])
            })
            .collect();
        let vals = as_map(json!({"vendor_bill_id": bill, "cost_lines": lines}));
        let id = self.create_landed_cost(vals)?;
        Ok(landed_cost_action(id))
    }

    /// The stock moves of a receipt and how its products are valued.
    pub(super) fn seed_receipt(&mut self, picking: i64, costing: &str, lines: &[ReceiptLine]) {
        self.costing.insert(picking, costing.to_owned());
        let picking_name = self
            .display_name("stock.picking", picking)
            .unwrap_or_default();
        for line in lines {
            let product = self
                .display_name("product.product", line.product_id)
                .unwrap_or_default();
            let record = as_map(json!({
                "display_name": line.move_name,
                "picking_id": [picking, picking_name],
                "product_id": [line.product_id, product],
                "quantity": line.quantity,
                "state": "done",
                "_value": round(line.quantity * line.unit_cost, 2),
            }));
            self.insert("stock.move", None, record);
        }
    }

    /// A draft customer invoice of `order` for `amount` (no tax), linked to the order.
    pub(super) fn seed_customer_invoice(&mut self, order: i64, amount: f64) -> i64 {
        let order_record = self.models["sale.order"].records[&order].clone();
        let partner = m2o_id(order_record.get("partner_id"));
        let vals = as_map(json!({
            "move_type": "out_invoice",
            "partner_id": partner,
            "invoice_date": self.today().to_string(),
            "invoice_origin": order_record.get("name").cloned().unwrap_or(json!(false)),
            "invoice_line_ids": [[0, 0, {"name": "Goods", "quantity": 1, "price_unit": amount,
                                         "tax_ids": [[6, 0, []]]}]],
        }));
        let id = self
            .create_move(vals)
            .expect("a seeded customer invoice is valid");
        self.link("sale.order", order, "invoice_ids", id);
        id
    }

    /// Reference values of the version's chart, for tests.
    pub(super) fn chart_account(&self, code: &str) -> Option<i64> {
        self.models["account.account"]
            .records
            .values()
            .find(|a| text(a, "code") == Some(code))
            .and_then(|a| a["id"].as_i64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_up_like_odoo() {
        assert_eq!(round(12.825, 2), 12.83);
        assert_eq!(round(2.675, 2), 2.68);
        assert_eq!(round(-12.825, 2), -12.83);
        assert_eq!(round(100.5, 0), 101.0);
        assert_eq!(round(0.1 + 0.2, 2), 0.3);
    }

    #[test]
    fn x2many_commands_set_link_and_unlink() {
        let set = DoubleState::apply_many(vec![1], &json!([[6, 0, [3, 4]]])).unwrap();
        assert_eq!(set, vec![3, 4]);
        let linked = DoubleState::apply_many(set, &json!([[4, 5, 0], [3, 3, 0]])).unwrap();
        assert_eq!(linked, vec![4, 5]);
        assert_eq!(
            DoubleState::apply_many(linked, &json!([7])).unwrap(),
            vec![7]
        );
        assert!(DoubleState::apply_many(vec![], &json!([[9, 0, 0]])).is_err());
    }
}
