//! Inbound freight as a landed cost: when a matched invoice is for a receipt (goods coming in),
//! its charges are added to the cost of the received goods with a `stock.landed.cost` on the
//! receipt, split as configured, and validated once. The landed cost is tied to the vendor bill
//! (`vendor_bill_id`), which is how a retry finds it. Odoo refuses this unless the products use
//! FIFO or average costing (reference §8.5); that refusal is reported, not worked around.

use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use crate::canonical::CanonicalEvent;

use super::bills::Bill;
use super::finance::{Finance, FinanceError, one_line};
use super::milestones::find_picking;
use super::money;
use super::reference::Kind;
use super::values::{created_id, record_id, records, text};
use super::{OdooCall, OdooPort};

/// What was done for the receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandedCost {
    pub landed_cost_id: i64,
    pub receipt_id: i64,
    /// The landed cost was validated by an earlier attempt.
    pub already_validated: bool,
}

/// Allocates the bill's charges to the shipment's receipt. `None` when landed costs are not
/// enabled, the shipment is not a receipt, or the bill has nothing to allocate.
pub async fn allocate(
    odoo: &impl OdooPort,
    finance: &Finance,
    event: &CanonicalEvent,
    bill: &Bill,
    invoice_number: &str,
) -> Result<Option<LandedCost>, FinanceError> {
    let settings = &finance.config().landed_costs;
    if !settings.enabled {
        return Ok(None);
    }
    let picking = match find_picking(odoo, event).await {
        Ok(picking) => picking,
        // No transfer in Odoo carries the shipment: nothing to allocate to (a drop shipment,
        // or freight Odoo does not track). The match itself stands.
        Err(e) if e.code == Some("odoo_picking_not_found") => {
            tracing::warn!(event_id = %event.event_id, "no picking for the shipment; no landed cost");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    if picking.type_code.as_deref() != Some("incoming") {
        // Outbound freight is a selling expense, not part of the goods' cost.
        return Ok(None);
    }
    if picking.state.as_deref() != Some("done") {
        return Err(FinanceError::Refused {
            code: "receipt_not_done",
            message: format!(
                "receipt {} is not validated yet; landed costs apply to received goods",
                picking.name
            ),
        });
    }

    let existing = OdooCall::new("stock.landed.cost", "search_read")
        .with_arg(
            "domain",
            json!([["vendor_bill_id", "=", bill.id], ["state", "!=", "cancel"]]),
        )
        .with_arg("fields", json!(["state"]))
        .with_arg("order", "id asc")
        .with_arg("limit", 1)
        .assuming(json!([]));
    if let Some(found) = records(odoo.execute(&existing).await?)?.first() {
        let landed_cost_id = record_id(found).unwrap_or_default();
        let done = text(found.get("state")) == Some("done");
        if !done {
            validate(odoo, landed_cost_id).await?;
        }
        return Ok(Some(LandedCost {
            landed_cost_id,
            receipt_id: picking.id,
            already_validated: done,
        }));
    }

    // The bill's charges in the company currency (its product lines' balance): landed costs
    // are valued in the company currency.
    let lines = OdooCall::new("account.move.line", "search_read")
        .with_arg(
            "domain",
            json!([["move_id", "=", bill.id], ["display_type", "=", "product"]]),
        )
        .with_arg("fields", json!(["balance"]))
        .assuming(json!([{"id": 0, "balance": 0.0}]));
    let total: Decimal = records(odoo.execute(&lines).await?)?
        .iter()
        .filter_map(|l| money::from_wire(l.get("balance")))
        .sum();
    if total <= Decimal::ZERO {
        return Ok(None);
    }
    let product = settings.product.as_ref().ok_or_else(|| {
        FinanceError::missing("landed_costs.product", "landed costs need a product")
    })?;
    let product_id = finance
        .reference()
        .record(odoo, Kind::Product, product, "landed_costs.product")
        .await?;
    let mut cost_line = Map::new();
    cost_line.insert("product_id".into(), json!(product_id));
    cost_line.insert(
        "name".into(),
        json!(one_line(
            &format!(
                "Inbound freight, carrier invoice {invoice_number}, shipment {}",
                event.shipment.tracking_number.trim()
            ),
            200
        )),
    );
    cost_line.insert("price_unit".into(), money::to_wire(total)?);
    cost_line.insert("split_method".into(), json!(settings.split_method.as_str()));
    let mut vals = Map::new();
    vals.insert(
        "date".into(),
        json!(event.occurred_at.date_naive().to_string()),
    );
    vals.insert("picking_ids".into(), json!([[6, 0, [picking.id]]]));
    vals.insert("vendor_bill_id".into(), json!(bill.id));
    vals.insert(
        "cost_lines".into(),
        Value::Array(vec![json!([0, 0, cost_line])]),
    );
    if let Some(journal) = &settings.journal {
        let journal_id = finance
            .journal(odoo, journal, "landed_costs.journal")
            .await?;
        vals.insert("account_journal_id".into(), json!(journal_id));
    }
    let create = OdooCall::new("stock.landed.cost", "create")
        .with_arg("vals_list", Value::Array(vec![Value::Object(vals)]))
        .assuming(json!([0]));
    let landed_cost_id = created_id(&odoo.execute(&create).await?, "stock.landed.cost.create")?;
    let compute = OdooCall::new("stock.landed.cost", "compute_landed_cost")
        .with_ids([landed_cost_id])
        .assuming(json!(true));
    odoo.execute(&compute).await?;
    validate(odoo, landed_cost_id).await?;
    tracing::info!(event_id = %event.event_id, landed_cost_id, receipt = %picking.name, "landed cost validated");
    Ok(Some(LandedCost {
        landed_cost_id,
        receipt_id: picking.id,
        already_validated: false,
    }))
}

async fn validate(odoo: &impl OdooPort, landed_cost_id: i64) -> Result<(), FinanceError> {
    let validate = OdooCall::new("stock.landed.cost", "button_validate")
        .with_ids([landed_cost_id])
        .assuming(json!(true));
    odoo.execute(&validate).await?;
    Ok(())
}
