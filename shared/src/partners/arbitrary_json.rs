//! Test-only: arbitrary JSON for the adapters' property tests, biased towards each format's own
//! words (statuses, event names, times) and keys so generated bodies get past the first checks.

use proptest::prelude::*;
use serde_json::Value;

/// JSON values up to 4 levels deep whose strings are sometimes `words` and whose object keys
/// are drawn from `keys`.
pub(crate) fn json_with(
    words: &'static [&'static str],
    keys: &'static [&'static str],
) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
        prop::sample::select(words).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(keys).prop_map(str::to_owned),
                inner,
                0..6,
            )
            .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}
