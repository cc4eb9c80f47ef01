//! freightctl: the local chain (`serve`, `demo`), partner tools (`send`, `transform`) and the
//! Odoo onboarding check (`odoo check`).
//! The chain runs the real function handlers in process, wired by in-memory adapters.

pub mod chain;
pub mod demo;
pub mod durable;
pub mod odoo_check;
pub mod ops;
pub mod report;
pub mod send;
pub mod sweeper;

use std::path::Path;

use chrono::Utc;
use freightbridge::canonical::CanonicalEvent;
use freightbridge::config::PartnersFile;
use freightbridge::odoo::{DryRunJournal, OdooClient, OdooConfig};
use freightbridge::partners::Adapter;
use freightbridge::webhook::{self, ReceivedWebhook, WebhookBody};

/// Odoo from `ODOO_URL` & co. when set, else a dry-run journal at `journal`.
pub async fn odoo_from_env(journal: &Path) -> Result<OdooClient, String> {
    match OdooConfig::from_env().map_err(|e| e.to_string())? {
        Some(config) => OdooClient::connect(&config)
            .await
            .map_err(|e| e.to_string()),
        None => DryRunJournal::open(journal)
            .await
            .map(OdooClient::dry_run)
            .map_err(|e| e.to_string()),
    }
}

/// `freightctl transform`: the canonical events a partner body becomes (no signature check,
/// no side effects).
pub fn transform_body(
    partners: &PartnersFile,
    partner_id: &str,
    body: &[u8],
) -> Result<Vec<CanonicalEvent>, String> {
    let partner = partners
        .get(partner_id)
        .ok_or_else(|| format!("partner {partner_id:?} is not in the partners file"))?;
    let adapter = Adapter::from_config(partner).map_err(|e| e.to_string())?;
    let key = adapter.inspect(body).map_err(|e| e.to_string())?;
    let delivery_id = key
        .delivery_id
        .unwrap_or_else(|| freightbridge::idempotency::sha256_tag(body));
    let webhook = ReceivedWebhook {
        ingress_id: webhook::ingress_id(partner_id, &delivery_id),
        partner: partner_id.to_owned(),
        format: adapter.format().name().to_owned(),
        delivery_id,
        received_at: Utc::now(),
        content_type: None,
        body: WebhookBody::from_bytes(body),
    };
    adapter.to_canonical(&webhook).map_err(|e| e.to_string())
}
