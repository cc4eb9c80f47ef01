//! Delivery confirmation: the proof-of-delivery note on the picking and, when configured, the
//! release of the customer invoice — the sale order's draft invoices are posted. Only customer
//! invoices (`out_invoice`) are ever touched here: a delivery never posts a vendor bill (only a
//! reconciler match does, see `bills::settle_matched`).

use serde_json::json;

use crate::canonical::CanonicalEvent;
use crate::ordering::Placement;

use super::finance::{Finance, FinanceError};
use super::milestones::{NotePosted, post_placed_note};
use super::values::{id_list, record_id, records};
use super::{OdooCall, OdooPort};

/// What `shipment.delivered` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfirmed {
    pub note: NotePosted,
    /// Customer invoices posted now (empty when release is off or nothing was in draft).
    pub released_invoices: Vec<i64>,
}

/// The note (2 round trips, 3 with the retry check), then, when release applies to the
/// reporting partner, the sale orders of the picking (1), their draft customer invoices (1) and
/// one `action_post` for all of them (1). Posting only drafts makes a repeat harmless. A
/// delivery placed as history still releases: the goods were delivered all the same.
pub async fn confirm_delivery(
    odoo: &impl OdooPort,
    finance: Option<&Finance>,
    event: &CanonicalEvent,
    placement: Placement,
    check_existing: bool,
) -> Result<DeliveryConfirmed, FinanceError> {
    let note = post_placed_note(odoo, event, placement, check_existing).await?;
    let release = finance.is_some_and(|f| f.config().invoice_release.applies_to(&event.partner));
    if !release {
        return Ok(DeliveryConfirmed {
            note,
            released_invoices: Vec::new(),
        });
    }
    let orders = OdooCall::new("sale.order", "search_read")
        .with_arg("domain", json!([["picking_ids", "in", [note.picking_id]]]))
        .with_arg("fields", json!(["name", "invoice_ids"]))
        .assuming(json!([]));
    let mut invoice_ids: Vec<i64> = records(odoo.execute(&orders).await?)?
        .iter()
        .flat_map(|order| id_list(order.get("invoice_ids")))
        .collect();
    invoice_ids.sort_unstable();
    invoice_ids.dedup();
    if invoice_ids.is_empty() {
        tracing::info!(event_id = %event.event_id, picking_id = note.picking_id, "no customer invoice to release");
        return Ok(DeliveryConfirmed {
            note,
            released_invoices: Vec::new(),
        });
    }
    let drafts = OdooCall::new("account.move", "search_read")
        .with_arg(
            "domain",
            json!([
                ["id", "in", invoice_ids],
                ["move_type", "=", "out_invoice"],
                ["state", "=", "draft"],
            ]),
        )
        .with_arg("fields", json!(["name"]))
        .assuming(json!([]));
    let drafts: Vec<i64> = records(odoo.execute(&drafts).await?)?
        .iter()
        .filter_map(record_id)
        .collect();
    if !drafts.is_empty() {
        let post = OdooCall::new("account.move", "action_post")
            .with_ids(drafts.iter().copied())
            .assuming(json!(false));
        odoo.execute(&post).await?;
        tracing::info!(event_id = %event.event_id, invoices = ?drafts, "customer invoices released");
    }
    Ok(DeliveryConfirmed {
        note,
        released_invoices: drafts,
    })
}
