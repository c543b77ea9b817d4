//! One JSON object into dotted keys, in one pass over the bytes.

use serde_json::Value;

use super::{LineError, json_error};

/// A JSON object as the normaliser reads it: nested objects as dotted keys, arrays as their JSON
/// text, nulls dropped, scalars kept; in document order.
pub type FlatRecord = Vec<(String, Value)>;

/// Reads one JSON object straight into a [`FlatRecord`], without building a `Value` tree and its
/// maps first: on ingest's hot path that tree was most of the cost of a line. The result is what
/// [`normalize_object`](super::normalize_object) would flatten the same object to (a repeated key keeps its last value),
/// in document order. Invalid UTF-8 is reported as such, with its position.
pub fn flatten_json_object(line: &[u8]) -> Result<FlatRecord, LineError> {
    let mut flat = FlatRecord::with_capacity(16);
    let mut de = serde_json::Deserializer::from_slice(line);
    let keys = serde::de::DeserializeSeed::deserialize(
        flat::Object {
            prefix: None,
            top: true,
            out: &mut flat,
        },
        &mut de,
    )
    .and_then(|keys| de.end().map(|()| keys))
    .map_err(|e| match std::str::from_utf8(line) {
        Err(u) => LineError::InvalidUtf8 {
            at: u.valid_up_to(),
        },
        Ok(_) => json_error(e),
    })?;
    if keys == 0 {
        return Err(LineError::EmptyObject);
    }
    drop_repeated_keys(&mut flat);
    Ok(flat)
}

/// An object that repeats a key means its last value, as a map would read it.
fn drop_repeated_keys(flat: &mut FlatRecord) {
    // Few fields (the common case): comparing pairs is cheaper than hashing, and most pairs
    // differ in length. Many fields: a set, so a hostile line cannot make this quadratic.
    if flat.len() <= 32 {
        let mut i = 0;
        while i < flat.len() {
            if flat[i + 1..].iter().any(|(k, _)| *k == flat[i].0) {
                flat.remove(i);
            } else {
                i += 1;
            }
        }
        return;
    }
    let mut seen = std::collections::HashSet::with_capacity(flat.len());
    let mut keep: Vec<bool> = flat
        .iter()
        .rev()
        .map(|(k, _)| seen.insert(k.clone()))
        .collect();
    keep.reverse();
    let mut keep = keep.into_iter();
    flat.retain(|_| keep.next().unwrap_or(true));
}

/// The serde visitors behind [`flatten_json_object`].
mod flat {
    use std::fmt;

    use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
    use serde_json::Value;

    /// An object whose keys go under `prefix`; yields its number of keys.
    pub(super) struct Object<'a> {
        pub prefix: Option<&'a str>,
        /// The event's top level, where `fields` holds fields already (no `fields.` prefix).
        pub top: bool,
        pub out: &'a mut Vec<(String, Value)>,
    }

    impl<'de> DeserializeSeed<'de> for Object<'_> {
        type Value = usize;
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<usize, D::Error> {
            d.deserialize_map(self)
        }
    }

    impl<'de> Visitor<'de> for Object<'_> {
        type Value = usize;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<usize, A::Error> {
            let mut keys = 0;
            while let Some(key) = map.next_key::<String>()? {
                keys += 1;
                let fields = self.top && key == "fields";
                let key = match self.prefix {
                    Some(p) => format!("{p}.{key}"),
                    None => key,
                };
                map.next_value_seed(Member {
                    key,
                    fields,
                    out: self.out,
                })?;
            }
            Ok(keys)
        }
    }

    /// The value of one member, stored under `key`.
    struct Member<'a> {
        key: String,
        fields: bool,
        out: &'a mut Vec<(String, Value)>,
    }

    impl<'de> DeserializeSeed<'de> for Member<'_> {
        type Value = ();
        fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    impl Member<'_> {
        fn push(self, v: Value) {
            self.out.push((self.key, v));
        }
    }

    impl<'de> Visitor<'de> for Member<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<(), E> {
            self.push(Value::Bool(v));
            Ok(())
        }
        fn visit_i64<E>(self, v: i64) -> Result<(), E> {
            self.push(Value::from(v));
            Ok(())
        }
        fn visit_u64<E>(self, v: u64) -> Result<(), E> {
            self.push(Value::from(v));
            Ok(())
        }
        fn visit_f64<E>(self, v: f64) -> Result<(), E> {
            self.push(Value::from(v));
            Ok(())
        }
        fn visit_str<E>(self, v: &str) -> Result<(), E> {
            self.push(Value::String(v.to_owned()));
            Ok(())
        }
        fn visit_string<E>(self, v: String) -> Result<(), E> {
            self.push(Value::String(v));
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_none<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element::<Value>()? {
                items.push(item);
            }
            let text = serde_json::to_string(&Value::Array(items)).unwrap_or_default();
            self.push(Value::String(text));
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
            let prefix = (!self.fields).then_some(self.key.as_str());
            Object {
                prefix,
                top: false,
                out: self.out,
            }
            .visit_map(map)
            .map(|_| ())
        }
    }
}

/// Nested objects become dotted keys; arrays are kept as their JSON text (indexing them would
/// let one event create unbounded field names); nulls are dropped. Depth is bounded by
/// serde_json's recursion limit (128), so this recursion is too.
pub(super) fn flatten_into(prefix: String, value: Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                flatten_into(format!("{prefix}.{k}"), v, out);
            }
        }
        Value::Null => {}
        Value::Array(items) => {
            let text = serde_json::to_string(&Value::Array(items)).unwrap_or_default();
            out.push((prefix, Value::String(text)));
        }
        scalar => out.push((prefix, scalar)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    use crate::event::FieldValue;
    use crate::parse::test_support::{one, opts, reject};
    use crate::parse::{BodyFormat, normalize_flat, normalize_object};

    #[test]
    fn arrays_become_json_text_and_nulls_vanish() {
        let ev = one(
            r#"{"message":"x","tags":["a",1],"gone":null}"#,
            BodyFormat::Json,
        );
        assert_eq!(ev.fields["tags"], FieldValue::Str(r#"["a",1]"#.into()));
        assert!(!ev.fields.contains_key("gone"));
    }

    #[test]
    fn reject_empty_object() {
        assert_eq!(reject(b"{}", BodyFormat::Json).error, "empty JSON object");
    }

    #[test]
    fn one_pass_flattening_reads_objects_as_the_map_normaliser_does() {
        let lines = [
            r#"{"ts":"2026-11-26T11:59:00Z","service":"api","level":"warn","message":"m","a":1}"#,
            r#"{"log":{"level":"ERROR"},"msg":"x","http":{"status":503,"path":"/a","ok":false}}"#,
            r#"{"message":"t","tags":["a",1,{"b":null}],"gone":null,"big":18446744073709551615}"#,
            r#"{"fields":{"order_id":"A-17","n":{"x":1.5}},"service.name":"Pay Svc","time":1764158340}"#,
            r#"{"severity":17,"body":{"k":"v"},"trace":{"id":"abc"},"host":{"name":"h1"}}"#,
            r#"{"msg":"esc \"q\" \u00e9 \ud83d\ude00","empty":{},"f":-0.25,"e":1e3}"#,
            r#"{"fields":"not an object","message":"m"}"#,
            r#"{"level":"nope"}"#,
            r#"{"ts":true}"#,
            r#"{"x":0,"level":"info","x":1,"msg":"a","level":"error","x":2}"#,
        ];
        for line in lines {
            let map: Map<String, Value> = serde_json::from_str(line).unwrap();
            let via_map = normalize_object(map, &opts());
            let one_pass =
                flatten_json_object(line.as_bytes()).and_then(|f| normalize_flat(f, &opts()));
            assert_eq!(one_pass, via_map, "{line}");
        }
    }

    #[test]
    fn repeated_keys_keep_their_last_value_without_quadratic_work() {
        let mut line = String::from("{\"message\":\"m\"");
        for i in 0..20_000 {
            line.push_str(&format!(",\"k{}\":{i}", i % 100));
        }
        line.push('}');
        let flat = flatten_json_object(line.as_bytes()).unwrap();
        assert_eq!(flat.len(), 101);
        assert!(flat.contains(&("k7".to_string(), Value::from(19_907))));
        let ev = normalize_flat(flat, &opts()).unwrap();
        assert_eq!(ev.fields.len(), 100);
    }

    #[test]
    fn one_pass_flattening_reports_errors_like_the_value_parser() {
        assert_eq!(flatten_json_object(b"{}"), Err(LineError::EmptyObject));
        assert_eq!(
            flatten_json_object(b"{\"a\":\"\xff\"}"),
            Err(LineError::InvalidUtf8 { at: 6 })
        );
        for bad in [&b"{\"a\":1"[..], b"{\"a\":1} x", b"{\"a\" 1}", b"{1:2}"] {
            let want = serde_json::from_slice::<Value>(bad)
                .unwrap_err()
                .to_string();
            assert_eq!(flatten_json_object(bad), Err(LineError::InvalidJson(want)));
        }
    }
}
