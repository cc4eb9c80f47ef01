//! JSON bodies read strictly: an object with the same key twice is refused instead of letting
//! the last one win. A signed body is what the partner signed; two values under one key mean
//! two readers may see two different payloads (the signature covers both), so neither is
//! trusted. serde_json's own limits still apply (nesting depth 128, numbers beyond f64).

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

/// Longest key quoted in a refusal.
const QUOTED_KEY: usize = 64;

/// The body as a JSON value, or why it is not one (position and kind, never the body's text
/// other than a duplicated key's name).
pub fn parse(body: &[u8]) -> Result<Value, String> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = Strict
        .deserialize(&mut deserializer)
        .map_err(|e| e.to_string())?;
    deserializer.end().map_err(|e| e.to_string())?;
    Ok(value)
}

struct Strict;

impl<'de> DeserializeSeed<'de> for Strict {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("a number that is not finite"))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(item) = seq.next_element_seed(Strict)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // One lookup per key: the entry says whether it was seen and takes the value.
            match object.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(map.next_value_seed(Strict)?);
                }
                Entry::Occupied(seen) => {
                    let shown: String = seen
                        .key()
                        .chars()
                        .take(QUOTED_KEY)
                        .flat_map(char::escape_debug)
                        .collect();
                    return Err(de::Error::custom(format!("duplicate key `{shown}`")));
                }
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_what_serde_json_reads() {
        let body =
            br#"{"a": [1, -2, 3.5, true, null, "x"], "b": {"c": {}}, "d": 18446744073709551615}"#;
        assert_eq!(
            parse(body).unwrap(),
            serde_json::from_slice::<Value>(body).unwrap()
        );
    }

    #[test]
    fn a_key_twice_is_refused_at_any_depth() {
        for body in [
            &br#"{"event": "track_updated", "event": "other"}"#[..],
            br#"{"data": {"status": "DELIVERED", "status": "TRANSIT"}}"#,
            br#"{"list": [{"k": 1, "k": 1}]}"#,
        ] {
            let error = parse(body).unwrap_err();
            assert!(error.contains("duplicate key"), "{error}");
        }
        // The same key in two objects is fine.
        assert_eq!(
            parse(br#"[{"k": 1}, {"k": 2}]"#).unwrap(),
            json!([{"k": 1}, {"k": 2}])
        );
    }

    #[test]
    fn deep_nesting_huge_numbers_and_trailing_text_are_refused() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(
            parse(deep.as_bytes())
                .unwrap_err()
                .contains("recursion limit")
        );
        assert!(parse(b"{\"n\": 1e400}").is_err());
        assert!(parse(b"{} {}").is_err());
        let long_key = format!("{{\"{0}\": 1, \"{0}\": 2}}", "k".repeat(500));
        let error = parse(long_key.as_bytes()).unwrap_err();
        assert!(error.len() < 200, "{error}");
    }
}
