//! JSON bodies read strictly: an object with the same key twice is refused instead of letting
//! the last one win. A signed body is what the partner signed; two values under one key mean
//! two readers may see two different payloads (the signature covers both), so neither is
//! trusted. serde_json's own limits still apply (nesting depth 128, numbers beyond f64).

use std::borrow::Cow;
use std::collections::HashSet;
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
                Entry::Occupied(seen) => return Err(duplicate_key(seen.key())),
            }
        }
        Ok(Value::Object(object))
    }
}

/// The refusal of a key seen twice in one object: its name, bounded and escaped, and nothing
/// else of the body.
pub(super) fn duplicate_key<E: de::Error>(key: &str) -> E {
    let shown: String = key
        .chars()
        .take(QUOTED_KEY)
        .flat_map(char::escape_debug)
        .collect();
    E::custom(format!("duplicate key `{shown}`"))
}

/// An object key, borrowed from the body unless it had to be unescaped.
pub(super) struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v))
    }
}

/// The keys of one object read so far, so that a second one of a name is refused. Objects are
/// small, so a list is searched; a large one gets a set, so that no body costs quadratic time.
#[derive(Default)]
pub(super) struct Keys<'de> {
    few: Vec<Cow<'de, str>>,
    many: HashSet<Cow<'de, str>>,
}

/// Keys kept in the list before they move to the set.
const FEW_KEYS: usize = 16;

impl<'de> Keys<'de> {
    /// Records `key`, or refuses it when the object already had it.
    pub(super) fn insert<E: de::Error>(&mut self, key: Cow<'de, str>) -> Result<(), E> {
        let seen = if self.many.is_empty() {
            self.few.contains(&key)
        } else {
            self.many.contains(&key)
        };
        if seen {
            return Err(duplicate_key(&key));
        }
        if self.many.is_empty() && self.few.len() < FEW_KEYS {
            self.few.push(key);
        } else {
            self.many.extend(self.few.drain(..));
            self.many.insert(key);
        }
        Ok(())
    }
}

/// One JSON value walked exactly as strictly as [`parse`] reads it (the same checks, in the
/// same order, so the same refusals with the same positions), keeping nothing of it.
pub(super) struct Skip;

impl<'de> DeserializeSeed<'de> for Skip {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<(), E> {
        check_finite(v)
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        skip_seq(seq)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        skip_map(map)
    }
}

/// What [`parse`] refuses of a number serde_json has read.
pub(super) fn check_finite<E: de::Error>(v: f64) -> Result<(), E> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(E::custom("a number that is not finite"))
    }
}

/// The rest of an array, walked as [`Skip`] walks a value.
pub(super) fn skip_seq<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element_seed(Skip)?.is_some() {}
    Ok(())
}

/// The rest of an object, walked as [`Skip`] walks a value, refusing a key seen twice.
pub(super) fn skip_map<'de, A: MapAccess<'de>>(mut map: A) -> Result<(), A::Error> {
    let mut keys = Keys::default();
    while let Some(key) = map.next_key_seed(Key)? {
        keys.insert(key)?;
        map.next_value_seed(Skip)?;
    }
    Ok(())
}

/// One JSON value read as [`parse`] reads it, for a caller walking the rest itself.
pub(super) fn value<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
    Strict.deserialize(deserializer)
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
