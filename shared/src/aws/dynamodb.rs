//! The idempotency store on DynamoDB, in the item layout Powertools uses (so a table can be shared
//! with, or inspected by, Powertools tooling). One conditional PutItem takes a key; when it is
//! refused the blocking item comes back in the error (ALL_OLD), so no second read is needed.
//! Seen sets, latest milestones and the Odoo circuit breaker live in the same table, each under
//! its own `<kind>#` key.

use std::collections::{HashMap, HashSet};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};
use chrono::{DateTime, Utc};

use super::render_error;
use crate::breaker::{BreakerState, BreakerStore, Versioned};
use crate::canonical::ShipmentStatus;
use crate::idempotency::{
    IdempotencyRecord, IdempotencyStore, PutOutcome, Status, StoreError, scoped_key,
};
use crate::ordering::{LatestMilestones, Milestone, Placement};
use crate::seen::SeenStore;

/// Attribute names (Powertools' defaults).
pub mod attr {
    /// Partition key (S).
    pub const ID: &str = "id";
    /// `INPROGRESS` | `COMPLETED` (S).
    pub const STATUS: &str = "status";
    /// Unix seconds (N); the table's TTL attribute.
    pub const EXPIRATION: &str = "expiration";
    /// Unix milliseconds (N) after which an `INPROGRESS` item stops blocking.
    pub const IN_PROGRESS_EXPIRATION: &str = "in_progress_expiration";
    /// Payload hash (S).
    pub const VALIDATION: &str = "validation";
    /// Stored result (S).
    pub const DATA: &str = "data";
    /// Published entries of a seen scan history (SS); not a Powertools attribute.
    pub const ENTRIES: &str = "entries";
    /// A shipment's latest milestone (not Powertools attributes): partner time in Unix
    /// microseconds (N), status (S), whether it ends the shipment (BOOL), event id (S).
    pub const LATEST_AT: &str = "latest_at";
    pub const LATEST_STATUS: &str = "latest_status";
    pub const LATEST_TERMINAL: &str = "latest_terminal";
    pub const LATEST_EVENT: &str = "latest_event";
    /// A circuit breaker's state (not Powertools attributes), one number per `BreakerState`
    /// field: the failure count, the open and probe deadlines in Unix milliseconds (left out
    /// while unset) and the trip count; `VERSION` is the compare-and-swap counter (N).
    pub const BREAKER_FAILURES: &str = "consecutive_failures";
    pub const BREAKER_OPEN_UNTIL: &str = "open_until";
    pub const BREAKER_PROBE_UNTIL: &str = "probe_until";
    pub const BREAKER_TRIPS: &str = "trips";
    pub const VERSION: &str = "version";
}

/// The conditional put's condition: the same rule as `IdempotencyRecord::is_replaceable`
/// (an item whose expiry equals `now` is already expired, as in the in-memory store).
const TAKE_KEY_CONDITION: &str = "attribute_not_exists(#id) OR #expiration <= :now \
     OR (#status = :inprogress AND #in_progress_expiration <= :now_ms)";

pub type Item = HashMap<String, AttributeValue>;

#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    pub fn from_config(config: &aws_config::SdkConfig, table: impl Into<String>) -> Self {
        Self::new(Client::new(config), table)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn key(key: &str) -> Item {
        HashMap::from([(attr::ID.to_owned(), AttributeValue::S(key.to_owned()))])
    }

    /// The item under `key`, read consistently (a write just before must be seen).
    async fn read_item(&self, key: &str) -> Result<Option<Item>, StoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.unavailable("GetItem", &e))?;
        Ok(output.item)
    }

    fn unavailable<E: std::error::Error>(&self, operation: &str, error: &E) -> StoreError {
        StoreError::Unavailable(format!(
            "DynamoDB {operation} on table {}: {}",
            self.table,
            render_error(error)
        ))
    }

    /// Only when the service refused the put without sending the old item back (an emulator
    /// without ALL_OLD support): read it instead.
    async fn blocking_record(&self, key: &str) -> Result<PutOutcome, StoreError> {
        match self.get(key).await? {
            Some(existing) => Ok(PutOutcome::Exists(existing)),
            None => Err(StoreError::Unavailable(format!(
                "idempotency record for {key} changed while it was being taken; retry"
            ))),
        }
    }
}

impl IdempotencyStore for DynamoStore {
    async fn put_in_progress(
        &self,
        record: &IdempotencyRecord,
        now: DateTime<Utc>,
    ) -> Result<PutOutcome, StoreError> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(record_to_item(record)))
            .condition_expression(TAKE_KEY_CONDITION)
            .expression_attribute_names("#id", attr::ID)
            .expression_attribute_names("#expiration", attr::EXPIRATION)
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#in_progress_expiration", attr::IN_PROGRESS_EXPIRATION)
            .expression_attribute_values(":now", number(now.timestamp()))
            .expression_attribute_values(":now_ms", number(now.timestamp_millis()))
            .expression_attribute_values(
                ":inprogress",
                AttributeValue::S(Status::InProgress.as_str().to_owned()),
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            // On success too: whether an earlier record was overwritten tells the caller that
            // an earlier attempt existed.
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match result {
            Ok(output) => Ok(PutOutcome::Acquired {
                replaced: output.attributes().is_some_and(|old| !old.is_empty()),
            }),
            Err(err) => match err.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(refused)) => {
                    match refused.item() {
                        Some(item) => Ok(PutOutcome::Exists(item_to_record(item)?)),
                        None => self.blocking_record(&record.key).await,
                    }
                }
                _ => Err(self.unavailable("PutItem", &err)),
            },
        }
    }

    async fn complete(&self, key: &str, result: &str, expires_at: i64) -> Result<(), StoreError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression(
                "SET #status = :completed, #data = :data, #expiration = :expiration \
                 REMOVE #in_progress_expiration",
            )
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#data", attr::DATA)
            .expression_attribute_names("#expiration", attr::EXPIRATION)
            .expression_attribute_names("#in_progress_expiration", attr::IN_PROGRESS_EXPIRATION)
            .expression_attribute_values(
                ":completed",
                AttributeValue::S(Status::Completed.as_str().to_owned()),
            )
            .expression_attribute_values(":data", AttributeValue::S(result.to_owned()))
            .expression_attribute_values(":expiration", number(expires_at))
            .send()
            .await
            .map_err(|e| self.unavailable("UpdateItem", &e))?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .send()
            .await
            .map_err(|e| self.unavailable("DeleteItem", &e))?;
        Ok(())
    }

    async fn lapse(&self, key: &str) -> Result<(), StoreError> {
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression("SET #in_progress_expiration = :zero")
            .condition_expression("#status = :inprogress")
            .expression_attribute_names("#status", attr::STATUS)
            .expression_attribute_names("#in_progress_expiration", attr::IN_PROGRESS_EXPIRATION)
            .expression_attribute_values(":zero", number(0))
            .expression_attribute_values(
                ":inprogress",
                AttributeValue::S(Status::InProgress.as_str().to_owned()),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            // Completed or gone: nothing holds a lock to lapse.
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(self.unavailable("UpdateItem", &err)),
        }
    }

    async fn get(&self, key: &str) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.read_item(key)
            .await?
            .as_ref()
            .map(item_to_record)
            .transpose()
    }
}

/// Seen scan histories share the idempotency table (and its TTL): one item per shipment,
/// `id` = `seen#<scope>`, the published entries in a string set.
impl SeenStore for DynamoStore {
    async fn seen(&self, scope: &str, now: i64) -> Result<HashSet<String>, StoreError> {
        let Some(item) = self.read_item(&seen_key(scope)).await? else {
            return Ok(HashSet::new());
        };
        // TTL removes expired items lazily: one still there has expired all the same.
        let expired = match item.get(attr::EXPIRATION) {
            Some(AttributeValue::N(text)) => text.parse::<i64>().map_or(true, |at| at <= now),
            _ => true,
        };
        if expired {
            return Ok(HashSet::new());
        }
        Ok(match item.get(attr::ENTRIES) {
            Some(AttributeValue::Ss(entries)) => entries.iter().cloned().collect(),
            _ => HashSet::new(),
        })
    }

    async fn mark(
        &self,
        scope: &str,
        entries: &[String],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        // A string set cannot be empty.
        if entries.is_empty() {
            return Ok(());
        }
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(&seen_key(scope))))
            .update_expression("ADD #entries :entries SET #expiration = :expiration")
            .expression_attribute_names("#entries", attr::ENTRIES)
            .expression_attribute_names("#expiration", attr::EXPIRATION)
            .expression_attribute_values(":entries", AttributeValue::Ss(entries.to_vec()))
            .expression_attribute_values(":expiration", number(expires_at))
            .send()
            .await
            .map_err(|e| self.unavailable("UpdateItem", &e))?;
        Ok(())
    }
}

/// `ordering::place` as an update condition. The record moves when it is absent or expired
/// (TTL deletes lazily), when it was set by this very event (a retry), or when the incoming
/// milestone is not older and does not reopen an ended shipment.
fn advance_condition(incoming_terminal: bool) -> &'static str {
    if incoming_terminal {
        "attribute_not_exists(#latest_at) OR #expiration <= :now OR #latest_event = :event \
         OR #latest_at <= :new"
    } else {
        "attribute_not_exists(#latest_at) OR #expiration <= :now OR #latest_event = :event \
         OR (#latest_at <= :new AND #latest_terminal = :false)"
    }
}

/// Shipments' latest milestones share the idempotency table (and its TTL): one item per
/// shipment, `id` = `latest#<carrier or partner>#<tracking number>`, moved by one conditional
/// UpdateItem, so two racing milestones cannot both win against what they read.
impl LatestMilestones for DynamoStore {
    async fn advance(
        &self,
        key: &str,
        incoming: &Milestone,
        now: DateTime<Utc>,
        expires_at: i64,
    ) -> Result<Placement, StoreError> {
        let terminal = incoming.status.is_terminal();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(key)))
            .update_expression(
                "SET #latest_at = :new, #latest_status = :status, #latest_terminal = :terminal, \
                 #latest_event = :event, #expiration = :expiration",
            )
            .condition_expression(advance_condition(terminal))
            .expression_attribute_names("#latest_at", attr::LATEST_AT)
            .expression_attribute_names("#latest_status", attr::LATEST_STATUS)
            .expression_attribute_names("#latest_terminal", attr::LATEST_TERMINAL)
            .expression_attribute_names("#latest_event", attr::LATEST_EVENT)
            .expression_attribute_names("#expiration", attr::EXPIRATION)
            .expression_attribute_values(":new", number(incoming.occurred_at.timestamp_micros()))
            .expression_attribute_values(
                ":status",
                AttributeValue::S(incoming.status.as_str().to_owned()),
            )
            .expression_attribute_values(":terminal", AttributeValue::Bool(terminal))
            .expression_attribute_values(":event", AttributeValue::S(incoming.event_id.to_string()))
            .expression_attribute_values(":expiration", number(expires_at))
            .expression_attribute_values(":now", number(now.timestamp()));
        if !terminal {
            update = update.expression_attribute_values(":false", AttributeValue::Bool(false));
        }
        match update.send().await {
            Ok(_) => Ok(Placement::Current),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(UpdateItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Ok(Placement::History)
            }
            Err(err) => Err(self.unavailable("UpdateItem", &err)),
        }
    }

    async fn latest(&self, key: &str, now: DateTime<Utc>) -> Result<Option<Milestone>, StoreError> {
        let Some(item) = self.read_item(key).await? else {
            return Ok(None);
        };
        let corrupt = |reason: String| StoreError::Corrupt {
            key: key.to_owned(),
            reason,
        };
        let expires_at = number_attr(&item, attr::EXPIRATION).map_err(&corrupt)?;
        if expires_at.is_none_or(|at| at <= now.timestamp()) {
            return Ok(None);
        }
        item_to_milestone(&item).map_err(corrupt)
    }
}

/// A latest-milestone item read back; `None` when the item holds none.
fn item_to_milestone(item: &Item) -> Result<Option<Milestone>, String> {
    let Some(micros) = number_attr(item, attr::LATEST_AT)? else {
        return Ok(None);
    };
    let occurred_at = DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| format!("`{}` is out of range", attr::LATEST_AT))?;
    let status_text = string_attr(item, attr::LATEST_STATUS)?
        .ok_or_else(|| format!("`{}` is missing", attr::LATEST_STATUS))?;
    let status: ShipmentStatus =
        serde_json::from_value(serde_json::Value::String(status_text.clone()))
            .map_err(|_| format!("unknown status `{status_text}`"))?;
    let event_text = string_attr(item, attr::LATEST_EVENT)?
        .ok_or_else(|| format!("`{}` is missing", attr::LATEST_EVENT))?;
    let event_id = event_text
        .parse()
        .map_err(|_| format!("`{}` is not a UUID", attr::LATEST_EVENT))?;
    Ok(Some(Milestone {
        status,
        occurred_at,
        event_id,
    }))
}

/// Circuit breakers share the idempotency table but not its TTL: one item per breaker,
/// `id` = `breaker#<name>`, with no `expiration`, because a breaker that expired while open
/// would silently close on a server that is still down. Each swap is one conditional PutItem on
/// the version, and it writes the whole item, so a deadline that was cleared is removed too.
impl BreakerStore for DynamoStore {
    async fn load(&self, name: &str) -> Result<Versioned, StoreError> {
        match self.read_item(&breaker_key(name)).await? {
            Some(item) => item_to_breaker(&item),
            None => Ok(Versioned::default()),
        }
    }

    async fn swap(
        &self,
        name: &str,
        expected: u64,
        state: &BreakerState,
    ) -> Result<bool, StoreError> {
        let key = breaker_key(name);
        let next = Versioned {
            state: *state,
            version: expected.checked_add(1).ok_or_else(|| StoreError::Corrupt {
                key: key.clone(),
                reason: format!("`{}` {expected} cannot be incremented", attr::VERSION),
            })?,
        };
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(breaker_to_item(&key, &next)));
        // Version 0 is "nothing stored": only the first writer may create the item. DynamoDB
        // refuses names the condition does not use, so each branch names only its own.
        let request = if expected == 0 {
            request
                .condition_expression("attribute_not_exists(#id)")
                .expression_attribute_names("#id", attr::ID)
        } else {
            request
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", attr::VERSION)
                .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
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

/// The item key of a circuit breaker: `breaker#<name>`.
pub fn breaker_key(name: &str) -> String {
    scoped_key("breaker", name)
}

/// The item a breaker's state is stored as under `key`. Unset deadlines are left out.
pub fn breaker_to_item(key: &str, stored: &Versioned) -> Item {
    let state = &stored.state;
    let mut item = HashMap::from([
        (attr::ID.to_owned(), AttributeValue::S(key.to_owned())),
        (
            attr::BREAKER_FAILURES.to_owned(),
            number(i64::from(state.consecutive_failures)),
        ),
        (
            attr::BREAKER_TRIPS.to_owned(),
            number(i64::from(state.trips)),
        ),
        (
            attr::VERSION.to_owned(),
            AttributeValue::N(stored.version.to_string()),
        ),
    ]);
    if let Some(until) = state.open_until {
        item.insert(attr::BREAKER_OPEN_UNTIL.to_owned(), number(until));
    }
    if let Some(until) = state.probe_until {
        item.insert(attr::BREAKER_PROBE_UNTIL.to_owned(), number(until));
    }
    item
}

/// Read a breaker item back. Anything we could not have written is `Corrupt`, version 0
/// included: no swap writes it, and a stored 0 would make every later swap fail its condition.
pub fn item_to_breaker(item: &Item) -> Result<Versioned, StoreError> {
    let key = match item.get(attr::ID) {
        Some(AttributeValue::S(key)) => key.clone(),
        _ => {
            return Err(StoreError::Corrupt {
                key: "<unknown>".into(),
                reason: format!("`{}` is missing or not a string", attr::ID),
            });
        }
    };
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.clone(),
        reason,
    };
    let required = |name: &str| {
        number_attr(item, name)
            .map_err(&corrupt)?
            .ok_or_else(|| corrupt(format!("`{name}` is missing")))
    };
    let count = |name: &str| {
        let n = required(name)?;
        u32::try_from(n).map_err(|_| corrupt(format!("`{name}` {n} is not a count")))
    };
    let version = required(attr::VERSION)?;
    let version = u64::try_from(version)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| corrupt(format!("`{}` {version} is not positive", attr::VERSION)))?;
    Ok(Versioned {
        state: BreakerState {
            consecutive_failures: count(attr::BREAKER_FAILURES)?,
            open_until: number_attr(item, attr::BREAKER_OPEN_UNTIL).map_err(&corrupt)?,
            probe_until: number_attr(item, attr::BREAKER_PROBE_UNTIL).map_err(&corrupt)?,
            trips: count(attr::BREAKER_TRIPS)?,
        },
        version,
    })
}

/// The item key of a seen set: `seen#<scope>`.
pub fn seen_key(scope: &str) -> String {
    scoped_key("seen", scope)
}

fn number(n: i64) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// The item a record is stored as. Absent optional fields are left out, not written as nulls.
pub fn record_to_item(record: &IdempotencyRecord) -> Item {
    let mut item = HashMap::from([
        (attr::ID.to_owned(), AttributeValue::S(record.key.clone())),
        (
            attr::STATUS.to_owned(),
            AttributeValue::S(record.status.as_str().to_owned()),
        ),
        (attr::EXPIRATION.to_owned(), number(record.expires_at)),
    ]);
    if let Some(until) = record.in_progress_expires_at {
        item.insert(attr::IN_PROGRESS_EXPIRATION.to_owned(), number(until));
    }
    if let Some(hash) = &record.payload_hash {
        item.insert(attr::VALIDATION.to_owned(), AttributeValue::S(hash.clone()));
    }
    if let Some(result) = &record.result {
        item.insert(attr::DATA.to_owned(), AttributeValue::S(result.clone()));
    }
    item
}

/// Read an item back. Anything that is not a record we could have written is `Corrupt`.
pub fn item_to_record(item: &Item) -> Result<IdempotencyRecord, StoreError> {
    let key = match item.get(attr::ID) {
        Some(AttributeValue::S(key)) => key.clone(),
        _ => {
            return Err(StoreError::Corrupt {
                key: "<unknown>".into(),
                reason: format!("`{}` is missing or not a string", attr::ID),
            });
        }
    };
    let corrupt = |reason: String| StoreError::Corrupt {
        key: key.clone(),
        reason,
    };
    let status_text = string_attr(item, attr::STATUS)
        .map_err(&corrupt)?
        .ok_or_else(|| corrupt(format!("`{}` is missing", attr::STATUS)))?;
    let status = Status::parse(&status_text)
        .ok_or_else(|| corrupt(format!("unknown status `{status_text}`")))?;
    let expires_at = number_attr(item, attr::EXPIRATION)
        .map_err(&corrupt)?
        .ok_or_else(|| corrupt(format!("`{}` is missing", attr::EXPIRATION)))?;
    Ok(IdempotencyRecord {
        status,
        expires_at,
        in_progress_expires_at: number_attr(item, attr::IN_PROGRESS_EXPIRATION)
            .map_err(&corrupt)?,
        payload_hash: string_attr(item, attr::VALIDATION).map_err(&corrupt)?,
        result: string_attr(item, attr::DATA).map_err(&corrupt)?,
        key,
    })
}

fn string_attr(item: &Item, name: &str) -> Result<Option<String>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(true)) => Ok(None),
        Some(AttributeValue::S(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("`{name}` is not a string")),
    }
}

fn number_attr(item: &Item, name: &str) -> Result<Option<i64>, String> {
    match item.get(name) {
        None | Some(AttributeValue::Null(true)) => Ok(None),
        Some(AttributeValue::N(n)) => n
            .parse::<i64>()
            .map(Some)
            .map_err(|_| format!("`{name}` is not a whole number")),
        Some(_) => Err(format!("`{name}` is not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full_record() -> IdempotencyRecord {
        IdempotencyRecord {
            key: "easypost:evt_1".into(),
            status: Status::InProgress,
            expires_at: 1_795_000_000,
            in_progress_expires_at: Some(1_794_395_230_000),
            payload_hash: Some("sha256:ab".into()),
            result: None,
        }
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.into())
    }

    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.into())
    }

    #[test]
    fn record_is_written_with_powertools_attribute_names_and_types() {
        let item = record_to_item(&full_record());
        let expected = HashMap::from([
            ("id".to_owned(), s("easypost:evt_1")),
            ("status".to_owned(), s("INPROGRESS")),
            ("expiration".to_owned(), n("1795000000")),
            ("in_progress_expiration".to_owned(), n("1794395230000")),
            ("validation".to_owned(), s("sha256:ab")),
        ]);
        assert_eq!(item, expected);
    }

    #[test]
    fn records_survive_the_round_trip_through_an_item() {
        let completed = IdempotencyRecord {
            status: Status::Completed,
            in_progress_expires_at: None,
            payload_hash: None,
            result: Some(r#"{"event_id":"e1"}"#.into()),
            ..full_record()
        };
        for record in [full_record(), completed] {
            assert_eq!(item_to_record(&record_to_item(&record)).unwrap(), record);
        }
    }

    #[test]
    fn items_we_could_not_have_written_are_corrupt() {
        let base = record_to_item(&full_record());
        let cases: Vec<(&str, Item)> = vec![
            ("missing id", {
                let mut i = base.clone();
                i.remove("id");
                i
            }),
            ("numeric id", {
                let mut i = base.clone();
                i.insert("id".into(), n("1"));
                i
            }),
            ("unknown status", {
                let mut i = base.clone();
                i.insert("status".into(), s("EXPIRED"));
                i
            }),
            ("missing status", {
                let mut i = base.clone();
                i.remove("status");
                i
            }),
            ("missing expiration", {
                let mut i = base.clone();
                i.remove("expiration");
                i
            }),
            ("fractional expiration", {
                let mut i = base.clone();
                i.insert("expiration".into(), n("17.5"));
                i
            }),
            ("string lock expiry", {
                let mut i = base.clone();
                i.insert("in_progress_expiration".into(), s("soon"));
                i
            }),
            ("numeric data", {
                let mut i = base.clone();
                i.insert("data".into(), n("3"));
                i
            }),
        ];
        for (name, item) in cases {
            let err = item_to_record(&item).unwrap_err();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{name}: {err}");
        }
    }

    #[test]
    fn explicit_nulls_read_as_absent_fields() {
        let mut item = record_to_item(&full_record());
        item.insert("data".into(), AttributeValue::Null(true));
        item.insert("in_progress_expiration".into(), AttributeValue::Null(true));
        let record = item_to_record(&item).unwrap();
        assert_eq!(record.result, None);
        assert_eq!(record.in_progress_expires_at, None);
    }

    fn open_breaker() -> Versioned {
        Versioned {
            state: BreakerState {
                consecutive_failures: 5,
                open_until: Some(1_794_395_230_000),
                probe_until: Some(1_794_395_290_000),
                trips: 2,
            },
            version: 7,
        }
    }

    #[test]
    fn breaker_is_one_numeric_item_under_its_own_key_without_a_ttl() {
        let item = breaker_to_item(&breaker_key("odoo"), &open_breaker());
        let expected = HashMap::from([
            ("id".to_owned(), s("breaker#odoo")),
            ("consecutive_failures".to_owned(), n("5")),
            ("open_until".to_owned(), n("1794395230000")),
            ("probe_until".to_owned(), n("1794395290000")),
            ("trips".to_owned(), n("2")),
            ("version".to_owned(), n("7")),
        ]);
        assert_eq!(item, expected);

        let closed = breaker_to_item(
            "breaker#odoo",
            &Versioned {
                state: BreakerState::default(),
                version: 8,
            },
        );
        assert!(!closed.contains_key("open_until"));
        assert!(!closed.contains_key("probe_until"));
        assert!(!closed.contains_key("expiration"));
    }

    #[test]
    fn breaker_states_survive_the_round_trip_through_an_item() {
        let half_open = Versioned {
            state: BreakerState {
                probe_until: None,
                ..open_breaker().state
            },
            version: 1,
        };
        let closed = Versioned {
            state: BreakerState::default(),
            version: u64::try_from(i64::MAX).unwrap(),
        };
        for stored in [open_breaker(), half_open, closed] {
            let item = breaker_to_item("breaker#odoo", &stored);
            assert_eq!(item_to_breaker(&item).unwrap(), stored);
        }
    }

    #[test]
    fn breaker_items_we_could_not_have_written_are_corrupt() {
        let base = breaker_to_item("breaker#odoo", &open_breaker());
        let with = |name: &str, value: Option<AttributeValue>| {
            let mut item = base.clone();
            match value {
                Some(value) => item.insert(name.into(), value),
                None => item.remove(name),
            };
            item
        };
        let cases: Vec<(&str, Item)> = vec![
            ("missing id", with("id", None)),
            ("missing version", with("version", None)),
            ("zero version", with("version", Some(n("0")))),
            ("negative version", with("version", Some(n("-1")))),
            ("string version", with("version", Some(s("7")))),
            ("missing failures", with("consecutive_failures", None)),
            (
                "negative failures",
                with("consecutive_failures", Some(n("-1"))),
            ),
            (
                "failures past u32",
                with("consecutive_failures", Some(n("4294967296"))),
            ),
            ("fractional trips", with("trips", Some(n("1.5")))),
            ("missing trips", with("trips", None)),
            ("string deadline", with("open_until", Some(s("soon")))),
            (
                "boolean lease",
                with("probe_until", Some(AttributeValue::Bool(true))),
            ),
        ];
        for (name, item) in cases {
            let err = item_to_breaker(&item).unwrap_err();
            assert!(matches!(err, StoreError::Corrupt { .. }), "{name}: {err}");
        }
    }
}
