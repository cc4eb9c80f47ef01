//! The shipment ledger in DynamoDB: one item per shipment, `id` = `ledger#<tracking number>`,
//! the entry as JSON in `entry` and a `version` that every save checks with a conditional
//! PutItem, so two invocations racing on one shipment never lose an update. The documents beside
//! the shipments (`invoice#…`, `lane#…`) are items of the same table with their JSON in `doc`;
//! the sweeps' Scan reads only the `ledger#` items.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::AttributeValue;

use super::render_error;
use crate::idempotency::StoreError;
use crate::ledger::{LedgerDocs, LedgerEntry, LedgerStore, Versioned};

/// Item attributes.
pub mod attr {
    /// Partition key (S): `ledger#<tracking number>`.
    pub const ID: &str = "id";
    /// The entry's version (N), 1 on the first save.
    pub const VERSION: &str = "version";
    /// The entry as JSON (S).
    pub const ENTRY: &str = "entry";
    /// A document as JSON (S), on `invoice#…` and `lane#…` items.
    pub const DOC: &str = "doc";
}

/// The key prefix of shipment items (`crate::ledger::ledger_key`).
const SHIPMENT_PREFIX: &str = "ledger#";

#[derive(Debug, Clone)]
pub struct DynamoLedger {
    client: Client,
    table: String,
}

impl DynamoLedger {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
    }

    fn unavailable<E: std::error::Error>(&self, operation: &str, error: &E) -> StoreError {
        StoreError::Unavailable(format!(
            "DynamoDB {operation} on table {}: {}",
            self.table,
            render_error(error)
        ))
    }
}

fn corrupt(key: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        key: key.to_owned(),
        reason: reason.to_string(),
    }
}

fn version_of(item: &HashMap<String, AttributeValue>, key: &str) -> Result<u64, StoreError> {
    item.get(attr::VERSION)
        .and_then(|v| v.as_n().ok())
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| corrupt(key, "no numeric `version`"))
}

/// An item back as a key and its versioned entry.
fn from_item(item: &HashMap<String, AttributeValue>) -> Result<(String, Versioned), StoreError> {
    let key = item
        .get(attr::ID)
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| corrupt("a ledger item", "no `id`"))?
        .clone();
    let version = version_of(item, &key)?;
    let json = item
        .get(attr::ENTRY)
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| corrupt(&key, "no `entry`"))?;
    let entry = serde_json::from_str(json).map_err(|e| corrupt(&key, e))?;
    Ok((key, Versioned { entry, version }))
}

impl DynamoLedger {
    /// The item under `key`, read consistently.
    async fn get_item(
        &self,
        key: &str,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(attr::ID, AttributeValue::S(key.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.unavailable("GetItem", &e))?;
        Ok(output.item)
    }

    /// A conditional PutItem of `version` over `version - 1` (or of a new item at 1): `false`
    /// when the condition failed.
    async fn put_versioned(
        &self,
        key: &str,
        attribute: &str,
        json: String,
        version: u64,
    ) -> Result<bool, StoreError> {
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(attr::ID, AttributeValue::S(key.to_owned()))
            .item(attr::VERSION, AttributeValue::N(version.to_string()))
            .item(attribute, AttributeValue::S(json));
        let request = match version.checked_sub(1) {
            None => return Err(corrupt(key, "version 0 cannot be saved")),
            Some(0) => request
                .condition_expression("attribute_not_exists(#id)")
                .expression_attribute_names("#id", attr::ID),
            Some(previous) => request
                .condition_expression("#version = :previous")
                .expression_attribute_names("#version", attr::VERSION)
                .expression_attribute_values(":previous", AttributeValue::N(previous.to_string())),
        };
        match request.send().await {
            Ok(_) => Ok(true),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(false)
            }
            Err(err) => Err(self.unavailable("PutItem", &err)),
        }
    }
}

impl LedgerDocs for DynamoLedger {
    async fn load_doc(&self, key: &str) -> Result<Option<(String, u64)>, StoreError> {
        let Some(item) = self.get_item(key).await? else {
            return Ok(None);
        };
        let version = version_of(&item, key)?;
        let json = item
            .get(attr::DOC)
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| corrupt(key, "no `doc`"))?;
        Ok(Some((json.clone(), version)))
    }

    async fn save_doc(&self, key: &str, json: &str, version: u64) -> Result<bool, StoreError> {
        self.put_versioned(key, attr::DOC, json.to_owned(), version)
            .await
    }
}

impl LedgerStore for DynamoLedger {
    async fn load(&self, key: &str) -> Result<Option<Versioned>, StoreError> {
        self.get_item(key)
            .await?
            .as_ref()
            .map(|item| from_item(item).map(|(_, versioned)| versioned))
            .transpose()
    }

    async fn save(&self, key: &str, entry: &LedgerEntry, version: u64) -> Result<bool, StoreError> {
        let json = serde_json::to_string(entry).map_err(|e| corrupt(key, e))?;
        self.put_versioned(key, attr::ENTRY, json, version).await
    }

    /// A Scan page: in the table's own order, `after` the key the previous page ended with.
    async fn page(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, LedgerEntry)>, StoreError> {
        let mut entries = Vec::new();
        let mut start = after
            .map(|key| HashMap::from([(attr::ID.to_owned(), AttributeValue::S(key.to_owned()))]));
        while entries.len() < limit {
            let wanted = i32::try_from(limit - entries.len()).unwrap_or(i32::MAX);
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .limit(wanted)
                .filter_expression("begins_with(#id, :shipments)")
                .expression_attribute_names("#id", attr::ID)
                .expression_attribute_values(
                    ":shipments",
                    AttributeValue::S(SHIPMENT_PREFIX.to_owned()),
                )
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.unavailable("Scan", &e))?;
            for item in output.items() {
                let (key, versioned) = from_item(item)?;
                entries.push((key, versioned.entry));
            }
            match output.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => break,
            }
        }
        Ok(entries)
    }
}
