//! Reading Odoo's values: empty fields are `false`, many2ones are `[id, name]`, and a recordset
//! comes back as `[id]` in 19 but as a bare id in 18 for the same method (`message_post`).

use serde_json::{Map, Value};

use super::error::{OdooError, OdooErrorKind};

/// One id from `id` or `[id]` (19 returns recordsets as lists, 18 a single int).
pub fn single_id(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::Array(items) if items.len() == 1 => items[0].as_i64(),
        _ => None,
    }
}

/// The id a `create` answered (`id` or `[id]`); `what` names the call in the error.
pub fn created_id(answer: &Value, what: &str) -> Result<i64, OdooError> {
    single_id(answer).ok_or_else(|| OdooError::protocol(format!("{what} returned no id")))
}

/// A char/text field: `None` for `false`, null or an empty string.
pub fn text(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// The records of a `search_read` / `read` answer.
pub fn records(value: Value) -> Result<Vec<Map<String, Value>>, OdooError> {
    let Value::Array(items) = value else {
        return Err(OdooError::new(
            OdooErrorKind::Protocol,
            "expected a list of records from Odoo",
        ));
    };
    items
        .into_iter()
        .map(|item| match item {
            Value::Object(record) => Ok(record),
            _ => Err(OdooError::new(
                OdooErrorKind::Protocol,
                "expected a record (object) in Odoo's list",
            )),
        })
        .collect()
}

/// The id of a many2one (`[id, "name"]`), `None` for `false`.
pub fn many2one_id(value: Option<&Value>) -> Option<i64> {
    match value? {
        Value::Array(pair) if pair.len() == 2 => pair[0].as_i64(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// The ids of a one2many / many2many (`[3, 4]`).
pub fn id_list(value: Option<&Value>) -> Vec<i64> {
    value
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_i64).collect())
        .unwrap_or_default()
}

/// The `id` of a record.
pub fn record_id(record: &Map<String, Value>) -> Option<i64> {
    record.get("id").and_then(Value::as_i64)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn single_ids_come_bare_or_in_a_list() {
        assert_eq!(single_id(&json!(16)), Some(16));
        assert_eq!(single_id(&json!([135])), Some(135));
        assert_eq!(single_id(&json!([1, 2])), None);
        assert_eq!(single_id(&json!(false)), None);
        assert_eq!(single_id(&Value::Null), None);
    }

    #[test]
    fn false_and_empty_text_are_none() {
        assert_eq!(text(Some(&json!(false))), None);
        assert_eq!(text(Some(&json!(""))), None);
        assert_eq!(text(None), None);
        assert_eq!(text(Some(&json!("WH/OUT/00001"))), Some("WH/OUT/00001"));
    }

    #[test]
    fn relations_are_read_from_their_odoo_shapes() {
        assert_eq!(
            many2one_id(Some(&json!([6, "Oceanic Freight Lines Ltd"]))),
            Some(6)
        );
        assert_eq!(many2one_id(Some(&json!(false))), None);
        assert_eq!(many2one_id(None), None);
        assert_eq!(id_list(Some(&json!([3, 4]))), vec![3, 4]);
        assert_eq!(id_list(Some(&json!(false))), Vec::<i64>::new());
    }

    #[test]
    fn records_must_be_a_list_of_objects() {
        assert_eq!(records(json!([{"id": 2}])).unwrap().len(), 1);
        assert!(records(json!([])).unwrap().is_empty());
        assert!(records(json!({"id": 2})).is_err());
        assert!(records(json!([2])).is_err());
    }
}
