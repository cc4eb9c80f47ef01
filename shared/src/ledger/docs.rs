//! Documents the ledger keeps beside its shipments, in the same store: the invoice-number index
//! (every receipt of one carrier's invoice number, whichever shipment it billed, so a number
//! reused on another shipment is a duplicate) and the lane cost histories (what shipments on a
//! carrier's lane cost, for the anomaly flag). Each is JSON under its own key with a version
//! that every save checks, as the shipments' entries are.

use std::future::Future;

use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::idempotency::StoreError;
use crate::reconcile::{InvoiceSighting, LaneFacts, LaneHistory, baseline};

use super::{FIRST_PAUSE_MS, LONGEST_PAUSE_MS, RECORD_ATTEMPTS};

/// Receipts kept per invoice number: more copies than this are all duplicates anyway.
pub const SIGHTINGS_KEPT: usize = 20;

/// Costs kept per lane: the newest, a baseline of recent months on a busy lane.
pub const LANE_COSTS_KEPT: usize = 250;

/// Where the documents live: DynamoDB's ledger table in AWS (keys that cannot be a shipment's),
/// the embedded database locally, memory in tests.
pub trait LedgerDocs: Send + Sync {
    /// The document's JSON and version.
    fn load_doc(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<(String, u64)>, StoreError>> + Send;

    /// Saves `json` as version `version` if the stored one is still `version - 1` (or absent when
    /// `version` is 1). Answers `false` when another writer got there first.
    fn save_doc(
        &self,
        key: &str,
        json: &str,
        version: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

impl<T: LedgerDocs> LedgerDocs for std::sync::Arc<T> {
    fn load_doc(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<(String, u64)>, StoreError>> + Send {
        (**self).load_doc(key)
    }

    fn save_doc(
        &self,
        key: &str,
        json: &str,
        version: u64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        (**self).save_doc(key, json, version)
    }
}

fn parse<T: DeserializeOwned>(key: &str, json: &str) -> Result<T, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt {
        key: key.to_owned(),
        reason: e.to_string(),
    })
}

/// The document under `key`, or its default when there is none yet.
pub async fn read_doc<S: LedgerDocs, T: DeserializeOwned + Default>(
    store: &S,
    key: &str,
) -> Result<T, StoreError> {
    match store.load_doc(key).await? {
        Some((json, _)) => parse(key, &json),
        None => Ok(T::default()),
    }
}

/// Reads the document under `key` (its default when absent), lets `change` change it (answering
/// whether it did), and saves it with a version check, from a fresh read when another writer got
/// there first. Answers the document as it stands.
pub async fn update_doc<S, T, F>(store: &S, key: &str, mut change: F) -> Result<T, StoreError>
where
    S: LedgerDocs,
    T: Serialize + DeserializeOwned + Default,
    F: FnMut(&mut T) -> bool,
{
    for attempt in 0..RECORD_ATTEMPTS {
        if attempt > 0 {
            let ceiling = (FIRST_PAUSE_MS << attempt.min(8)).min(LONGEST_PAUSE_MS);
            tokio::time::sleep(std::time::Duration::from_millis(fastrand::u64(1..=ceiling))).await;
        }
        let (mut doc, version) = match store.load_doc(key).await? {
            Some((json, version)) => (parse::<T>(key, &json)?, version),
            None => (T::default(), 0),
        };
        if !change(&mut doc) {
            return Ok(doc);
        }
        let json = serde_json::to_string(&doc).map_err(|e| StoreError::Corrupt {
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
        if store.save_doc(key, &json, version + 1).await? {
            return Ok(doc);
        }
    }
    Err(StoreError::Unavailable(format!(
        "ledger document {key} kept changing under {RECORD_ATTEMPTS} attempts"
    )))
}

/// Identifiers as the documents key them: trimmed, without case.
fn key_part(text: &str) -> String {
    text.trim().to_uppercase()
}

/// The index key of a carrier's invoice number.
pub fn invoice_key(carrier: &str, number: &str) -> String {
    format!("invoice#{}#{}", key_part(carrier), key_part(number))
}

/// Every receipt of one carrier's invoice number, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceIndex {
    pub sightings: Vec<InvoiceSighting>,
}

impl InvoiceIndex {
    /// Adds a receipt unless its event is there already (or the index is full); answers whether
    /// it changed.
    pub fn add(&mut self, sighting: InvoiceSighting) -> bool {
        let known = self
            .sightings
            .iter()
            .any(|s| s.receipt.event_id == sighting.receipt.event_id);
        if known || self.sightings.len() >= SIGHTINGS_KEPT {
            return false;
        }
        self.sightings.push(sighting);
        self.sightings.sort_by_key(|s| s.receipt);
        true
    }
}

/// A lane as its cost history is kept: the carrier and the first three characters of each end's
/// postal code (a US ZIP3 or the like; carriers price by such prefixes). `None` when either end
/// has no postal code.
pub fn lane_key(carrier: &str, lane: &LaneFacts) -> Option<String> {
    let prefix = |code: Option<&str>| {
        let code = key_part(code?);
        let prefix: String = code
            .chars()
            .filter(|c| !c.is_whitespace())
            .take(3)
            .collect();
        (!prefix.is_empty()).then_some(prefix)
    };
    Some(format!(
        "lane#{}#{}#{}",
        key_part(carrier),
        prefix(lane.origin.postal_code.as_deref())?,
        prefix(lane.destination.postal_code.as_deref())?
    ))
}

/// One matched shipment's cost on a lane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneCost {
    /// The invoice's `freight_invoice.received` event: a cost is counted once.
    pub event_id: Uuid,
    pub currency: String,
    pub total: Decimal,
}

/// What shipments on one lane cost, newest last.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaneCosts {
    pub costs: Vec<LaneCost>,
}

impl LaneCosts {
    /// Adds a cost unless its invoice is counted already, keeping the newest
    /// [`LANE_COSTS_KEPT`]; answers whether it changed.
    pub fn add(&mut self, cost: LaneCost) -> bool {
        if self.costs.iter().any(|c| c.event_id == cost.event_id) {
            return false;
        }
        self.costs.push(cost);
        if self.costs.len() > LANE_COSTS_KEPT {
            let excess = self.costs.len() - LANE_COSTS_KEPT;
            self.costs.drain(..excess);
        }
        true
    }

    /// The baseline of the costs in `currency` (other currencies are not compared), leaving out
    /// the invoice being judged (`except`) so that it is not measured against itself.
    pub fn history(&self, currency: &str, except: Uuid) -> Option<LaneHistory> {
        let costs: Vec<Decimal> = self
            .costs
            .iter()
            .filter(|c| c.event_id != except && c.currency.eq_ignore_ascii_case(currency.trim()))
            .map(|c| c.total)
            .collect();
        Some(LaneHistory {
            currency: currency.trim().to_uppercase(),
            baseline: baseline(&costs)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::*;
    use crate::ledger::MemoryLedger;
    use crate::reconcile::{Place, Receipt};

    fn sighting(tracking: &str, event: u128, minute: i64) -> InvoiceSighting {
        InvoiceSighting {
            carrier: "UPS".into(),
            tracking_number: tracking.into(),
            number: "INV-1".into(),
            currency: "USD".into(),
            total: Decimal::from(100),
            receipt: Receipt {
                received_at: DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(minute),
                event_id: Uuid::from_u128(event),
            },
        }
    }

    #[test]
    fn an_invoice_number_is_keyed_by_carrier_and_number_without_case_or_blanks() {
        assert_eq!(invoice_key(" ups", "inv-1 "), invoice_key("UPS", "INV-1"));
        assert_ne!(invoice_key("UPS", "INV-1"), invoice_key("FedEx", "INV-1"));
        assert!(!invoice_key("UPS", "INV-1").starts_with("ledger#"));
    }

    #[test]
    fn the_index_keeps_each_receipt_once_oldest_first() {
        let mut index = InvoiceIndex::default();
        assert!(index.add(sighting("1Z2", 2, 10)));
        assert!(index.add(sighting("1Z1", 1, 5)));
        assert!(!index.add(sighting("1Z2", 2, 10)), "the same event again");
        let order: Vec<&str> = index
            .sightings
            .iter()
            .map(|s| s.tracking_number.as_str())
            .collect();
        assert_eq!(order, ["1Z1", "1Z2"]);
        for event in 3..=u128::try_from(SIGHTINGS_KEPT + 5).unwrap() {
            index.add(sighting("1Z3", event, 20));
        }
        assert_eq!(index.sightings.len(), SIGHTINGS_KEPT);
    }

    fn lane(origin: Option<&str>, destination: Option<&str>) -> LaneFacts {
        let place = |code: Option<&str>| Place {
            postal_code: code.map(Into::into),
            zone: None,
        };
        LaneFacts {
            origin: place(origin),
            destination: place(destination),
            weight: None,
        }
    }

    #[test]
    fn a_lane_is_keyed_by_carrier_and_three_character_postal_prefixes() {
        assert_eq!(
            lane_key("ups", &lane(Some("07960"), Some("90012"))).as_deref(),
            Some("lane#UPS#079#900")
        );
        assert_eq!(
            lane_key("UPS", &lane(Some("079 60"), Some("900-12"))),
            lane_key("UPS", &lane(Some("07999"), Some("900")))
        );
        assert_eq!(
            lane_key("UPS", &lane(Some("sw1a 1aa"), Some("BT170"))).as_deref(),
            Some("lane#UPS#SW1#BT1")
        );
        assert_eq!(lane_key("UPS", &lane(None, Some("90012"))), None);
        assert_eq!(lane_key("UPS", &lane(Some("07960"), Some("  "))), None);
    }

    fn cost(event: u128, currency: &str, total: i64) -> LaneCost {
        LaneCost {
            event_id: Uuid::from_u128(event),
            currency: currency.into(),
            total: Decimal::from(total),
        }
    }

    #[test]
    fn a_lane_baseline_counts_each_invoice_once_in_its_currency_and_never_the_judged_one() {
        let mut costs = LaneCosts::default();
        for (event, total) in [(1, 100), (2, 110), (3, 90), (4, 105)] {
            assert!(costs.add(cost(event, "USD", total)));
        }
        assert!(!costs.add(cost(2, "USD", 110)), "counted once");
        assert!(costs.add(cost(5, "CAD", 5000)));
        let history = costs
            .history("usd", Uuid::from_u128(4))
            .expect("a baseline");
        assert_eq!(history.currency, "USD");
        assert_eq!(
            history.baseline.n, 3,
            "USD only, without the judged invoice"
        );
        assert_eq!(history.baseline.median, Decimal::from(100));
        assert!(costs.history("EUR", Uuid::nil()).is_none());
        for event in 10..10 + u128::try_from(LANE_COSTS_KEPT).unwrap() {
            costs.add(cost(event, "USD", 100));
        }
        assert_eq!(costs.costs.len(), LANE_COSTS_KEPT);
        assert_eq!(
            costs.costs[0].event_id,
            Uuid::from_u128(10),
            "the newest kept"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn updates_of_one_document_racing_lose_nothing() {
        let store = std::sync::Arc::new(MemoryLedger::new());
        let key = invoice_key("UPS", "INV-1");
        let writers: Vec<_> = (0..12u128)
            .map(|n| {
                let store = store.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    update_doc(&store, &key, |index: &mut InvoiceIndex| {
                        index.add(sighting(&format!("1Z{n}"), n, i64::try_from(n).unwrap()))
                    })
                    .await
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap().unwrap();
        }
        let index: InvoiceIndex = read_doc(&store, &key).await.unwrap();
        assert_eq!(index.sightings.len(), 12);
        let absent: InvoiceIndex = read_doc(&store, "invoice#UPS#NONE").await.unwrap();
        assert!(absent.sightings.is_empty());
    }
}
