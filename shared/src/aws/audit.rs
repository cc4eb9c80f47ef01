//! The audit trail on DynamoDB: one item per record and subject key (partition key `subject`,
//! sort key `sk` = the record's time and id), so a trace reads a subject's records in order with
//! one Query, as the local store reads one index range. Items expire through the table's TTL on
//! `expires_at`; TTL deletes lazily, so reads skip what has expired but is still there.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chrono::Utc;
use futures::future::BoxFuture;

use super::render_error;
use crate::audit::{AuditError, AuditLog, AuditRecord};

/// Attribute names of an audit item.
pub mod attr {
    /// Partition key (S): a subject key, `shipment#1Z…`, `event#<uuid>`, `delivery#…`, `invoice#…`.
    pub const SUBJECT: &str = "subject";
    /// Sort key (S): `AuditRecord::sort_key`, the record's time then its id.
    pub const SORT_KEY: &str = "sk";
    /// The record's JSON (S).
    pub const RECORD: &str = "record";
    /// Unix seconds (N); the table's TTL attribute.
    pub const EXPIRES_AT: &str = "expires_at";
}

/// Most write requests BatchWriteItem takes at once.
pub const BATCH_WRITE_MAX: usize = 25;
/// BatchWriteItem calls per chunk before items DynamoDB keeps leaving unprocessed are an error.
pub const MAX_WRITE_ATTEMPTS: u32 = 6;
/// The first wait before items left unprocessed are sent again; it doubles per attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Most items one Query page is asked for.
const MAX_PAGE: usize = 1_000;

pub type Item = HashMap<String, AttributeValue>;

/// The trail in a DynamoDB table, each record kept `ttl` after its time.
#[derive(Debug, Clone)]
pub struct DynamoAuditLog {
    client: Client,
    table: String,
    ttl: chrono::Duration,
}

impl DynamoAuditLog {
    pub fn new(client: Client, table: impl Into<String>, ttl: chrono::Duration) -> Self {
        Self {
            client,
            table: table.into(),
            ttl,
        }
    }

    pub fn from_config(
        config: &aws_config::SdkConfig,
        table: impl Into<String>,
        ttl: chrono::Duration,
    ) -> Self {
        Self::new(Client::new(config), table, ttl)
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    fn unavailable<E: std::error::Error>(&self, operation: &str, error: &E) -> AuditError {
        AuditError::Unavailable(format!(
            "DynamoDB {operation} on table {}: {}",
            self.table,
            render_error(error)
        ))
    }

    /// One BatchWriteItem call; answers the requests DynamoDB left unprocessed.
    async fn batch_write(
        &self,
        requests: Vec<WriteRequest>,
    ) -> Result<Vec<WriteRequest>, AuditError> {
        let output = self
            .client
            .batch_write_item()
            .request_items(&self.table, requests)
            .send()
            .await
            .map_err(|e| self.unavailable("BatchWriteItem", &e))?;
        Ok(output
            .unprocessed_items
            .and_then(|mut left| left.remove(&self.table))
            .unwrap_or_default())
    }

    async fn query(&self, key: &str, limit: usize) -> Result<Vec<AuditRecord>, AuditError> {
        let now = Utc::now().timestamp();
        let mut records = Vec::new();
        let mut start: Option<Item> = None;
        while records.len() < limit {
            let page_size = (limit - records.len()).min(MAX_PAGE);
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#subject = :subject")
                .projection_expression("#record, #expires_at")
                .expression_attribute_names("#subject", attr::SUBJECT)
                .expression_attribute_names("#record", attr::RECORD)
                .expression_attribute_names("#expires_at", attr::EXPIRES_AT)
                .expression_attribute_values(":subject", AttributeValue::S(key.to_owned()))
                .scan_index_forward(true)
                .limit(i32::try_from(page_size).unwrap_or(i32::MAX))
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|e| self.unavailable("Query", &e))?;
            for item in page.items() {
                if records.len() == limit {
                    break;
                }
                if let Some(record) = item_to_record(item, now)? {
                    records.push(record);
                }
            }
            match page.last_evaluated_key {
                Some(next) if !next.is_empty() => start = Some(next),
                _ => break,
            }
        }
        Ok(records)
    }
}

impl AuditLog for DynamoAuditLog {
    fn write<'a>(&'a self, records: &'a [AuditRecord]) -> BoxFuture<'a, Result<(), AuditError>> {
        Box::pin(async move {
            let items = items(records, self.ttl)?;
            for chunk in items.chunks(BATCH_WRITE_MAX) {
                let requests = chunk
                    .iter()
                    .map(|item| put_request(item.clone()))
                    .collect::<Result<Vec<_>, _>>()?;
                write_until_processed(requests, |pending| self.batch_write(pending), backoff)
                    .await?;
            }
            Ok(())
        })
    }

    fn by_subject<'a>(
        &'a self,
        key: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<AuditRecord>, AuditError>> {
        Box::pin(self.query(key, limit))
    }
}

/// The items `records` are stored as: one per record and subject key, each (subject, sort key)
/// once, since BatchWriteItem refuses a request naming one key twice (a record passed twice).
/// A record with no subject cannot be found by any trace and is not stored.
pub fn items(records: &[AuditRecord], ttl: chrono::Duration) -> Result<Vec<Item>, AuditError> {
    let mut seen = HashSet::new();
    let mut items = Vec::new();
    for record in records {
        let json = serde_json::to_string(record)
            .map_err(|e| AuditError::Corrupt(format!("record {}: {e}", record.id)))?;
        let sort_key = record.sort_key();
        let expires_at = (record.at + ttl).timestamp();
        for subject in record.subjects.keys() {
            if !seen.insert((subject.clone(), sort_key.clone())) {
                continue;
            }
            items.push(HashMap::from([
                (attr::SUBJECT.to_owned(), AttributeValue::S(subject)),
                (
                    attr::SORT_KEY.to_owned(),
                    AttributeValue::S(sort_key.clone()),
                ),
                (attr::RECORD.to_owned(), AttributeValue::S(json.clone())),
                (
                    attr::EXPIRES_AT.to_owned(),
                    AttributeValue::N(expires_at.to_string()),
                ),
            ]));
        }
    }
    Ok(items)
}

fn put_request(item: Item) -> Result<WriteRequest, AuditError> {
    let put = PutRequest::builder()
        .set_item(Some(item))
        .build()
        .map_err(|e| AuditError::Unavailable(format!("audit item: {e}")))?;
    Ok(WriteRequest::builder().put_request(put).build())
}

/// The record an item holds, or `None` when it expired by `now` (Unix seconds) and TTL has not
/// removed it yet. An item without `expires_at` never expires.
pub fn item_to_record(item: &Item, now: i64) -> Result<Option<AuditRecord>, AuditError> {
    let expires_at = match item.get(attr::EXPIRES_AT) {
        None => None,
        Some(AttributeValue::N(text)) => Some(text.parse::<i64>().map_err(|_| {
            AuditError::Corrupt(format!(
                "`{}` is not a whole number: {text}",
                attr::EXPIRES_AT
            ))
        })?),
        Some(_) => {
            return Err(AuditError::Corrupt(format!(
                "`{}` is not a number",
                attr::EXPIRES_AT
            )));
        }
    };
    if expires_at.is_some_and(|at| at <= now) {
        return Ok(None);
    }
    let Some(AttributeValue::S(json)) = item.get(attr::RECORD) else {
        return Err(AuditError::Corrupt(format!(
            "`{}` is missing or not a string",
            attr::RECORD
        )));
    };
    serde_json::from_str(json)
        .map(Some)
        .map_err(|e| AuditError::Corrupt(format!("`{}`: {e}", attr::RECORD)))
}

/// Sends `pending` with `send` until nothing is left unprocessed, waiting `backoff(attempt)`
/// before each retry; after `MAX_WRITE_ATTEMPTS` calls what is still left is an error.
async fn write_until_processed<S, F>(
    mut pending: Vec<WriteRequest>,
    mut send: S,
    backoff: fn(u32) -> Duration,
) -> Result<(), AuditError>
where
    S: FnMut(Vec<WriteRequest>) -> F,
    F: Future<Output = Result<Vec<WriteRequest>, AuditError>>,
{
    for attempt in 1..=MAX_WRITE_ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(backoff(attempt - 1)).await;
        }
        pending = send(pending).await?;
        if pending.is_empty() {
            return Ok(());
        }
    }
    Err(AuditError::Unavailable(format!(
        "DynamoDB left {} audit item(s) unprocessed after {MAX_WRITE_ATTEMPTS} attempts",
        pending.len()
    )))
}

/// The wait before retry `n` (1, 2, …): exponential from `FIRST_BACKOFF`, capped at
/// `MAX_BACKOFF`, the upper half jittered so concurrent writers spread out.
fn backoff(n: u32) -> Duration {
    let exponential = FIRST_BACKOFF.saturating_mul(2u32.saturating_pow(n.saturating_sub(1)));
    let ceiling = exponential.min(MAX_BACKOFF);
    let half = ceiling / 2;
    half + half.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use chrono::{DateTime, TimeZone};
    use uuid::Uuid;

    use super::*;
    use crate::audit::{Actor, Outcome, Stage, Subjects};

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, second)
            .single()
            .expect("valid time")
    }

    fn record(second: u32, subjects: Subjects) -> AuditRecord {
        AuditRecord::new(
            Stage::Poster,
            Actor::default(),
            "milestone_noted",
            at(second),
            Outcome::Done,
        )
        .subjects(subjects)
    }

    fn shipment(tracking: &str) -> Subjects {
        Subjects {
            shipments: vec![tracking.into()],
            events: vec![Uuid::from_u128(9)],
            ..Subjects::default()
        }
    }

    fn string(item: &Item, name: &str) -> String {
        match item.get(name) {
            Some(AttributeValue::S(s)) => s.clone(),
            other => panic!("{name} is {other:?}"),
        }
    }

    #[test]
    fn a_record_is_one_item_per_subject_key_expiring_ttl_after_its_time() {
        let r = record(1, shipment("1Z"));
        let items = items(std::slice::from_ref(&r), chrono::Duration::days(400)).expect("items");
        let subjects: Vec<String> = items.iter().map(|i| string(i, attr::SUBJECT)).collect();
        assert_eq!(subjects, r.subjects.keys());
        for item in &items {
            assert_eq!(string(item, attr::SORT_KEY), r.sort_key());
            assert_eq!(
                item[attr::EXPIRES_AT],
                AttributeValue::N(
                    (at(1) + chrono::Duration::days(400))
                        .timestamp()
                        .to_string()
                )
            );
            let back = item_to_record(item, at(1).timestamp()).expect("parses");
            assert_eq!(back.as_ref(), Some(&r));
        }
    }

    #[test]
    fn a_record_passed_twice_is_written_once_and_one_without_subjects_not_at_all() {
        let r = record(1, shipment("1Z"));
        let lonely = record(2, Subjects::default());
        let items =
            items(&[r.clone(), r.clone(), lonely], chrono::Duration::days(1)).expect("items");
        assert_eq!(items.len(), r.subjects.keys().len());
    }

    #[test]
    fn an_expired_item_is_skipped_and_a_broken_one_is_corrupt() {
        let r = record(1, shipment("1Z"));
        let item = items(&[r], chrono::Duration::seconds(10))
            .expect("items")
            .remove(0);
        let expiry = at(11).timestamp();
        assert!(item_to_record(&item, expiry - 1).expect("ok").is_some());
        assert!(item_to_record(&item, expiry).expect("ok").is_none());

        let mut no_record = item.clone();
        no_record.remove(attr::RECORD);
        assert!(matches!(
            item_to_record(&no_record, 0),
            Err(AuditError::Corrupt(_))
        ));
        let mut bad_json = item.clone();
        bad_json.insert(attr::RECORD.into(), AttributeValue::S("{".into()));
        assert!(matches!(
            item_to_record(&bad_json, 0),
            Err(AuditError::Corrupt(_))
        ));
        let mut bad_expiry = item;
        bad_expiry.insert(attr::EXPIRES_AT.into(), AttributeValue::N("soon".into()));
        assert!(matches!(
            item_to_record(&bad_expiry, 0),
            Err(AuditError::Corrupt(_))
        ));
    }

    #[test]
    fn sort_keys_order_records_by_time() {
        let keys: Vec<String> = [59, 1, 30]
            .into_iter()
            .map(|s| record(s, shipment("1Z")).sort_key())
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            vec![keys[1].clone(), keys[2].clone(), keys[0].clone()]
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        for n in 1..=10 {
            let ceiling = FIRST_BACKOFF
                .saturating_mul(2u32.saturating_pow(n - 1))
                .min(MAX_BACKOFF);
            let wait = backoff(n);
            assert!(wait >= ceiling / 2 && wait <= ceiling, "{n}: {wait:?}");
        }
        assert!(backoff(u32::MAX) <= MAX_BACKOFF);
    }

    fn requests(n: usize) -> Vec<WriteRequest> {
        (0..n)
            .map(|i| {
                let item = HashMap::from([(
                    attr::SUBJECT.to_owned(),
                    AttributeValue::S(format!("shipment#{i}")),
                )]);
                put_request(item).expect("request")
            })
            .collect()
    }

    /// A fake BatchWriteItem that leaves the last request of each call unprocessed for the
    /// first `stubborn` calls, recording how many it was sent each time.
    fn fake(
        stubborn: usize,
        sent: &Mutex<Vec<usize>>,
    ) -> impl FnMut(Vec<WriteRequest>) -> std::future::Ready<Result<Vec<WriteRequest>, AuditError>> + '_
    {
        move |mut pending| {
            let mut calls = sent.lock().expect("lock");
            calls.push(pending.len());
            let left = if calls.len() <= stubborn {
                pending.split_off(pending.len() - 1)
            } else {
                Vec::new()
            };
            std::future::ready(Ok(left))
        }
    }

    #[tokio::test(start_paused = true)]
    async fn unprocessed_items_are_sent_again_until_written() {
        let sent = Mutex::new(Vec::new());
        write_until_processed(requests(3), fake(2, &sent), backoff)
            .await
            .expect("written");
        assert_eq!(*sent.lock().expect("lock"), vec![3, 1, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn items_left_unprocessed_attempt_after_attempt_are_an_error() {
        let sent = Mutex::new(Vec::new());
        let started = tokio::time::Instant::now();
        let error = write_until_processed(requests(2), fake(usize::MAX, &sent), backoff)
            .await
            .expect_err("never written");
        assert!(
            error.to_string().contains("1 audit item(s) unprocessed"),
            "{error}"
        );
        assert_eq!(
            sent.lock().expect("lock").len(),
            MAX_WRITE_ATTEMPTS as usize
        );
        // It waited between attempts instead of hammering the table.
        assert!(started.elapsed() >= FIRST_BACKOFF / 2);
    }
}
