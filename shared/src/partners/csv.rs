//! CSV status files as carrier portals export them: a header row, then one shipment status per
//! row, columns named in the partner's configuration. Each good row becomes one canonical event;
//! a bad row is reported with its line number while the good rows go through.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;

use super::mapping::{self, Field, Origin, Raw, Reading, Record, Source, StatusTable, TimeReader};
use super::{DeliveryKey, History, PartnerError, RejectedRow, Transformed};
use crate::canonical::ShipmentStatus;
use crate::idempotency::sha256_tag;
use crate::webhook::ReceivedWebhook;

/// The format name used in partner configuration and in `ReceivedWebhook::format`.
pub const FORMAT: &str = "csv";

/// A CSV partner's settings (`[partner.options]`).
#[derive(Debug, Clone)]
pub struct CsvOptions {
    delimiter: u8,
    /// Field → the header name(s) of its column(s); several columns are joined with a space
    /// (a date and a time column, say).
    columns: BTreeMap<Field, Source<Vec<String>>>,
    statuses: StatusTable,
    times: TimeReader,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OptionsFile {
    #[serde(default)]
    delimiter: Option<String>,
    #[serde(default)]
    time_format: Option<String>,
    #[serde(default)]
    timezone: Option<String>,
    columns: toml::Table,
    #[serde(default)]
    statuses: BTreeMap<String, ShipmentStatus>,
}

impl CsvOptions {
    pub fn from_table(table: &toml::Table) -> Result<CsvOptions, String> {
        let file: OptionsFile = toml::Value::Table(table.clone())
            .try_into()
            .map_err(|e: toml::de::Error| format!("[partner.options]: {}", e.message()))?;
        let delimiter = match file.delimiter.as_deref() {
            None => b',',
            Some(text) => match text.as_bytes() {
                [byte] if byte.is_ascii() && !matches!(byte, b'"' | b'\n' | b'\r') => *byte,
                _ => {
                    return Err(
                        "delimiter must be one ASCII character other than a quote or a line end"
                            .into(),
                    );
                }
            },
        };
        let columns = mapping::parse_fields(&file.columns, column_names)
            .map_err(|e| format!("columns: {e}"))?;
        Ok(CsvOptions {
            delimiter,
            columns,
            statuses: StatusTable::from_config(&file.statuses)?,
            times: TimeReader::from_config(file.time_format.as_deref(), file.timezone.as_deref())?,
        })
    }
}

/// A column is named by its header (`"Status"`) or by several headers joined in order
/// (`["Date", "Time"]`).
fn column_names(value: &toml::Value) -> Result<Vec<String>, String> {
    let names = match value {
        toml::Value::String(name) => vec![name.trim().to_owned()],
        toml::Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().map(|name| name.trim().to_owned()))
            .collect::<Option<Vec<_>>>()
            .ok_or("a list of columns must hold header names only")?,
        _ => {
            return Err(
                "expected a header name, a list of header names or { constant = \"…\" }".into(),
            );
        }
    };
    if names.is_empty() || names.iter().any(String::is_empty) {
        return Err("a header name is empty".into());
    }
    Ok(names)
}

pub(super) fn inspect(options: &CsvOptions, body: &[u8]) -> Result<DeliveryKey, PartnerError> {
    // Refuse at the door what the transform could make nothing of, so the portal hears about it.
    read(options, body)?;
    Ok(DeliveryKey {
        // A file has no id: ingress keys the delivery on the body's hash.
        delivery_id: None,
        payload_hash: None,
    })
}

pub(super) fn transform(
    options: &CsvOptions,
    webhook: &ReceivedWebhook,
    body: &[u8],
) -> Result<Transformed, PartnerError> {
    let sheet = read(options, body)?;
    // The body's hash, not the delivery id: whichever way the file was signed and however
    // often it is sent, the same file gives the same events.
    let source_event_id = sha256_tag(body);
    let mut transformed = Transformed::default();
    // Rows with their own id (`event_id` mapped) are history: a cumulative export repeats them.
    let mut own_ids = Vec::new();
    for row in sheet.rows {
        match row.reading {
            Ok(reading) => {
                own_ids.push(reading.event_id.is_some());
                transformed.events.push(reading.into_event(Origin {
                    partner: &webhook.partner,
                    source_event_id: &source_event_id,
                    correlation_id: &webhook.delivery_id,
                    position: row.position,
                    received_at: webhook.received_at,
                }));
            }
            Err(reason) => transformed.rejected.push(RejectedRow {
                line: row.line,
                reason,
            }),
        }
    }
    transformed.history = History::of_records(&webhook.partner, &transformed.events, |index| {
        own_ids.get(index).copied().unwrap_or(false)
    });
    Ok(transformed)
}

/// A file read through the column map.
struct Sheet {
    rows: Vec<Row>,
}

struct Row {
    /// Line of the file the row starts on (1 = the header's first line).
    line: u64,
    /// Index among the data rows, bad rows included (blank lines are not rows), so a row's
    /// position, and so its event id, does not depend on whether the rows before it were read.
    position: u32,
    reading: Result<Reading, String>,
}

fn malformed(reason: impl Into<String>) -> PartnerError {
    PartnerError::Malformed {
        format: FORMAT,
        reason: reason.into(),
    }
}

fn read(options: &CsvOptions, body: &[u8]) -> Result<Sheet, PartnerError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        malformed(format!(
            "body is not UTF-8 (invalid byte at offset {})",
            e.valid_up_to()
        ))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = ::csv::ReaderBuilder::new()
        .delimiter(options.delimiter)
        .has_headers(false)
        .flexible(true)
        .trim(::csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut records = reader.records();

    let header = loop {
        match records.next() {
            None => return Err(malformed("no header row")),
            Some(Err(e)) => return Err(malformed(format!("header row is not CSV ({})", kind(&e)))),
            Some(Ok(record)) if is_blank(&record) => continue,
            Some(Ok(record)) => break record,
        }
    };
    let columns = resolve_columns(options, &header)?;

    let mut rows = Vec::new();
    let mut position: u32 = 0;
    for record in records {
        let (line, reading) = match record {
            Ok(record) => {
                let line = record.position().map_or(0, ::csv::Position::line);
                if is_blank(&record) {
                    continue;
                }
                let reading = if record.len() != header.len() {
                    Err(format!(
                        "has {} fields, the header has {}",
                        record.len(),
                        header.len()
                    ))
                } else {
                    mapping::read_record(
                        &CsvRecord {
                            record: &record,
                            columns: &columns,
                        },
                        &options.times,
                        &options.statuses,
                    )
                };
                (line, reading)
            }
            Err(e) => {
                let line = e.position().map_or(0, ::csv::Position::line);
                (line, Err(format!("is not CSV ({})", kind(&e))))
            }
        };
        rows.push(Row {
            line,
            position,
            reading,
        });
        position = position
            .checked_add(1)
            .ok_or_else(|| malformed("more rows than can be numbered"))?;
    }
    if rows.is_empty() {
        return Err(malformed("no data rows after the header"));
    }
    if let Some(first) = rows.iter().find(|row| row.reading.is_err())
        && rows.iter().all(|row| row.reading.is_err())
    {
        // Nothing readable at all is a file (or a mapping) problem, not a few bad rows: one
        // refusal that says so beats a dead letter per row.
        let reason = first.reading.as_ref().err().cloned().unwrap_or_default();
        return Err(malformed(format!(
            "no row could be read; the first, line {}, {reason}",
            first.line
        )));
    }
    Ok(Sheet { rows })
}

fn is_blank(record: &::csv::StringRecord) -> bool {
    record.iter().all(str::is_empty)
}

/// The csv crate's error kind without the offending text.
fn kind(error: &::csv::Error) -> &'static str {
    match error.kind() {
        ::csv::ErrorKind::Utf8 { .. } => "invalid UTF-8",
        ::csv::ErrorKind::UnequalLengths { .. } => "unequal row lengths",
        _ => "unreadable record",
    }
}

/// A mapped field's column indexes in this file's header.
type Columns = BTreeMap<Field, (Source<Vec<usize>>, String)>;

fn resolve_columns(
    options: &CsvOptions,
    header: &::csv::StringRecord,
) -> Result<Columns, PartnerError> {
    let mut columns = BTreeMap::new();
    for (field, source) in &options.columns {
        let resolved = match source {
            Source::Constant(text) => (Source::Constant(text.clone()), "a constant".to_owned()),
            Source::Read(names) => {
                let mut indexes = Vec::new();
                for name in names {
                    let mut matches = header
                        .iter()
                        .enumerate()
                        .filter(|(_, heading)| heading.eq_ignore_ascii_case(name))
                        .map(|(index, _)| index);
                    let index = matches.next().ok_or_else(|| {
                        malformed(format!(
                            "the header has no column \"{name}\" (mapped to `{}`)",
                            field.name()
                        ))
                    })?;
                    if matches.next().is_some() {
                        return Err(malformed(format!(
                            "the header has column \"{name}\" twice (mapped to `{}`)",
                            field.name()
                        )));
                    }
                    indexes.push(index);
                }
                let described = names
                    .iter()
                    .map(|name| format!("\"{name}\""))
                    .collect::<Vec<_>>()
                    .join(" + ");
                (Source::Read(indexes), format!("column {described}"))
            }
        };
        columns.insert(*field, resolved);
    }
    Ok(columns)
}

struct CsvRecord<'a> {
    record: &'a ::csv::StringRecord,
    columns: &'a Columns,
}

impl Record for CsvRecord<'_> {
    fn raw(&self, field: Field) -> Result<Option<Raw<'_>>, String> {
        let Some((source, _)) = self.columns.get(&field) else {
            return Ok(None);
        };
        Ok(match source {
            Source::Constant(text) => Some(Raw::Text(Cow::Borrowed(text))),
            Source::Read(indexes) => {
                let parts: Vec<&str> = indexes
                    .iter()
                    .filter_map(|index| self.record.get(*index))
                    .filter(|part| !part.is_empty())
                    .collect();
                match parts.as_slice() {
                    [] => None,
                    [one] => Some(Raw::Text(Cow::Borrowed(one))),
                    many => Some(Raw::Text(Cow::Owned(many.join(" ")))),
                }
            }
        })
    }

    fn describe(&self, field: Field) -> String {
        self.columns.get(&field).map_or_else(
            || "not mapped".to_owned(),
            |(_, described)| described.clone(),
        )
    }
}

#[cfg(test)]
mod tests;
