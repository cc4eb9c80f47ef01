//! Reading a partner's JSON body field by field, for the aggregator adapters. Every error names
//! the field's path in the body (`data.tracking_status.status`), never its value, so a reason is
//! safe to log and to put in a dead letter.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use super::PartnerError;

/// The body as a JSON object, or a malformed-payload error for `format`.
pub(super) fn parse_object(
    format: &'static str,
    body: &[u8],
) -> Result<Map<String, Value>, PartnerError> {
    // serde_json's messages give position and kind only, never the offending text.
    let value = super::strict_json::parse(body)
        .map_err(|e| malformed(format, format!("body is not JSON ({e})")))?;
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(malformed(format, "body is not a JSON object")),
    }
}

pub(super) fn malformed(format: &'static str, reason: impl Into<String>) -> PartnerError {
    PartnerError::Malformed {
        format,
        reason: reason.into(),
    }
}

/// A JSON object with its path in the body and the format it belongs to.
#[derive(Clone)]
pub(super) struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: String,
    format: &'static str,
}

impl<'a> Fields<'a> {
    pub(super) fn root(format: &'static str, map: &'a Map<String, Value>) -> Self {
        Fields {
            map,
            path: String::new(),
            format,
        }
    }

    pub(super) fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub(super) fn malformed(&self, reason: impl Into<String>) -> PartnerError {
        malformed(self.format, reason)
    }

    fn wrong_type(&self, key: &str, expected: &str) -> PartnerError {
        self.malformed(format!("`{}` is not {expected}", self.path_of(key)))
    }

    /// Missing and `null` both mean absent: aggregators write `null` where they have no value.
    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|value| !value.is_null())
    }

    /// A string field; blank counts as absent. Any other type means the format has changed
    /// under us, which is reported rather than guessed around.
    pub(super) fn text(&self, key: &str) -> Result<Option<&'a str>, PartnerError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.trim()).filter(|text| !text.is_empty())),
            Some(_) => Err(self.wrong_type(key, "a string")),
        }
    }

    pub(super) fn required_text(&self, key: &str) -> Result<&'a str, PartnerError> {
        self.text(key)?
            .ok_or_else(|| self.malformed(format!("missing `{}`", self.path_of(key))))
    }

    pub(super) fn bool(&self, key: &str) -> Result<Option<bool>, PartnerError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(flag)) => Ok(Some(*flag)),
            Some(_) => Err(self.wrong_type(key, "a boolean")),
        }
    }

    pub(super) fn integer(&self, key: &str) -> Result<Option<i64>, PartnerError> {
        match self.get(key) {
            None => Ok(None),
            Some(value) => value
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, "an integer")),
        }
    }

    /// A string read with `parse`; text `parse` refuses is malformed, named `what`.
    pub(super) fn parsed<T>(
        &self,
        key: &str,
        what: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, PartnerError> {
        match self.text(key)? {
            None => Ok(None),
            Some(text) => parse(text)
                .map(Some)
                .ok_or_else(|| self.wrong_type(key, what)),
        }
    }

    pub(super) fn rfc3339(&self, key: &str) -> Result<Option<DateTime<Utc>>, PartnerError> {
        self.parsed(key, "an RFC 3339 date-time", |text| {
            DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|time| time.with_timezone(&Utc))
        })
    }

    /// An optional estimate (an ETA): read leniently (`lenient_time`), and when it is still
    /// unreadable it is dropped with a warning. A cosmetic flaw in a field the milestone does not
    /// need must never cost the milestone.
    pub(super) fn estimate_time(&self, key: &str) -> Option<DateTime<Utc>> {
        let value = self.get(key)?;
        let read = value.as_str().and_then(lenient_time);
        if read.is_none() && !value.is_null() {
            tracing::warn!(field = %self.path_of(key), format = self.format, "unreadable estimate ignored");
        }
        read
    }

    pub(super) fn object(&self, key: &str) -> Result<Option<Fields<'a>>, PartnerError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(map)) => Ok(Some(Fields {
                map,
                path: self.path_of(key),
                format: self.format,
            })),
            Some(_) => Err(self.wrong_type(key, "an object")),
        }
    }

    pub(super) fn required_object(&self, key: &str) -> Result<Fields<'a>, PartnerError> {
        self.object(key)?
            .ok_or_else(|| self.malformed(format!("missing `{}`", self.path_of(key))))
    }

    /// The objects of an array field (absent = empty); each element must be an object.
    pub(super) fn objects(&self, key: &str) -> Result<Vec<Fields<'a>>, PartnerError> {
        let items = match self.get(key) {
            None => return Ok(Vec::new()),
            Some(Value::Array(items)) => items,
            Some(_) => return Err(self.wrong_type(key, "an array")),
        };
        let list_path = self.path_of(key);
        items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let path = format!("{list_path}[{index}]");
                match item {
                    Value::Object(map) => Ok(Fields {
                        map,
                        path,
                        format: self.format,
                    }),
                    _ => Err(self.malformed(format!("`{path}` is not an object"))),
                }
            })
            .collect()
    }
}

/// A time as partners write it: RFC 3339, an offset without a colon, a local date-time with
/// no zone at all, or a bare date. AfterShip's `checkpoint_time` is in the carrier's local time
/// and often has no zone, and Shippo's test-mode `eta` has none either
/// (`2018-08-02T18:49:42.566`); the offset cannot be known then, so it is read as UTC (off by at
/// most a day's hours, and never reordering one tracking's scans within one time zone). A bare
/// date is midnight UTC.
pub fn lenient_time(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    if let Ok(time) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(time.with_timezone(&Utc));
    }
    if let Ok(local) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(local.and_utc());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|midnight| midnight.and_utc())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn reason(error: PartnerError) -> String {
        match error {
            PartnerError::Malformed { format, reason } => {
                assert_eq!(format, "test");
                reason
            }
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_nested_path_and_not_the_value() {
        let body = json!({
            "data": {"items": [{"when": "soon-ish secret"}, 5], "flag": "yes", "n": 1.5},
        });
        let map = body.as_object().unwrap();
        let root = Fields::root("test", map);
        let data = root.required_object("data").unwrap();
        let cases = [
            (
                data.objects("items").err().unwrap(),
                "`data.items[1]` is not an object",
            ),
            (
                data.bool("flag").unwrap_err(),
                "`data.flag` is not a boolean",
            ),
            (data.integer("n").unwrap_err(), "`data.n` is not an integer"),
            (
                data.text("items").unwrap_err(),
                "`data.items` is not a string",
            ),
            (root.required_text("id").unwrap_err(), "missing `id`"),
            (
                data.required_object("missing").err().unwrap(),
                "missing `data.missing`",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(reason(error), expected);
        }
        let first = json!({"when": "soon-ish secret"});
        let first = Fields::root("test", first.as_object().unwrap());
        let shown = reason(first.rfc3339("when").unwrap_err());
        assert_eq!(shown, "`when` is not an RFC 3339 date-time");
    }

    #[test]
    fn null_and_blank_text_are_absent() {
        let body = json!({"a": null, "b": "  ", "c": " x ", "d": []});
        let root = Fields::root("test", body.as_object().unwrap());
        assert_eq!(root.text("a").unwrap(), None);
        assert_eq!(root.text("b").unwrap(), None);
        assert_eq!(root.text("c").unwrap(), Some("x"));
        assert_eq!(root.text("zz").unwrap(), None);
        assert!(root.objects("a").unwrap().is_empty());
        assert!(root.objects("d").unwrap().is_empty());
        assert!(root.object("a").unwrap().is_none());
    }

    #[test]
    fn bodies_that_are_not_objects_are_malformed() {
        for body in [&b""[..], b"[]", b"1", b"{\"a\":", b"\xff"] {
            assert!(parse_object("test", body).is_err(), "{body:?}");
        }
        assert!(parse_object("test", b"{}").is_ok());
    }
}
