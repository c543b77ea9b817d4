//! Promoted fields: a segment's frequent field keys stored as typed columns of their own.
//!
//! A column of one key's values (request ids, durations, status codes) compresses much better
//! than the same values scattered through a JSON text column between other keys' values, where
//! zstd pays for a match and a literal run at every boundary, and typed columns are what a user
//! of DuckDB or Spark wants to filter and group on. So each segment promotes the keys that at
//! least [`MIN_SHARE`] (and [`MIN_VALUES`]) of its first row group's rows hold, nearly always
//! ([`MIN_KIND_SHARE`]) with one JSON type, up to [`MAX_PROMOTED`] of them, to columns
//! `fields.<key>` (Utf8, Int64, Float64 or Boolean, nullable: null where a row lacks the key).
//! Everything else stays in the `fields` column as JSON text: the other keys, and a promoted
//! key's value in a row where it has another type. A row whose fields name a promoted key
//! twice keeps all its fields in the JSON text.
//!
//! The choice is made once per file (the schema of a Parquet file is fixed) from the rows of its
//! first row group; files written before promotion existed simply have no `fields.*` columns.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow_array::StringArray;
use arrow_array::builder::{BooleanBuilder, Float64Builder, Int64Builder, StringBuilder};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch};
use arrow_schema::{DataType, Field};
use serde::Deserializer;
use serde::de::{MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::{FieldValue, Fields};

/// Prefix of a promoted field's column name.
pub const FIELD_COLUMN_PREFIX: &str = "fields.";

/// A key is promoted when at least this share of the sampled rows hold it with its type…
pub const MIN_SHARE: f64 = 0.01;

/// …and at least this many: a column costs a few hundred bytes of its own per file (chunk
/// and page headers, footer metadata), more than it saves over the JSON text in a small
/// segment (a quiet service's five minutes: docs/archive.md, *Small segments*).
pub const MIN_VALUES: usize = 500;

/// …and at least this share of the key's sampled values have the column's type (the others
/// stay in the JSON text).
pub const MIN_KIND_SHARE: f64 = 0.9;

/// By default at most this many keys are promoted per segment (the most frequent ones).
pub const MAX_PROMOTED: usize = 64;

/// A string column is dictionary-encoded when it has at most this share of distinct values.
const MAX_DICTIONARY_SHARE: f64 = 0.1;

/// The JSON type of a promoted key, and its column's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    Str,
    Int,
    Float,
    Bool,
}

impl FieldKind {
    const ALL: [FieldKind; 4] = [
        FieldKind::Str,
        FieldKind::Int,
        FieldKind::Float,
        FieldKind::Bool,
    ];

    pub fn data_type(self) -> DataType {
        match self {
            FieldKind::Str => DataType::Utf8,
            FieldKind::Int => DataType::Int64,
            FieldKind::Float => DataType::Float64,
            FieldKind::Bool => DataType::Boolean,
        }
    }

    pub fn of_type(t: &DataType) -> Option<FieldKind> {
        match t {
            DataType::Utf8 => Some(FieldKind::Str),
            DataType::Int64 => Some(FieldKind::Int),
            DataType::Float64 => Some(FieldKind::Float),
            DataType::Boolean => Some(FieldKind::Bool),
            _ => None,
        }
    }
}

/// One promoted key of a segment.
#[derive(Clone, Debug, PartialEq)]
pub struct PromotedField {
    pub key: String,
    pub kind: FieldKind,
    /// Few distinct values in the sample: dictionary-encode the column.
    pub dictionary: bool,
    /// Strings that are not dictionary-encoded and all had one length in the sample (ids):
    /// lengths and values stored apart (`DELTA_LENGTH_BYTE_ARRAY`), so zstd sees the values
    /// back to back instead of a length prefix between every two of them (−5 to −11 % on
    /// such columns, and worse on text of varying length, so only for these).
    pub one_length: bool,
}

impl PromotedField {
    pub fn column_name(&self) -> String {
        format!("{FIELD_COLUMN_PREFIX}{}", self.key)
    }

    pub fn arrow_field(&self) -> Field {
        Field::new(self.column_name(), self.kind.data_type(), true)
    }
}

/// A JSON string borrowed from the text unless it holds escapes (serde's own `Cow<str>`
/// always copies; its `borrow` attribute is what makes it borrow).
#[derive(serde::Deserialize)]
#[serde(transparent)]
struct JsonStr<'a>(#[serde(borrow)] Cow<'a, str>);

/// One value of a fields object, classified without allocating (strings stay borrowed unless
/// they hold escapes).
#[derive(Clone, Debug, PartialEq)]
enum Value<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Value<'_> {
    fn kind(&self) -> FieldKind {
        match self {
            Value::Str(_) => FieldKind::Str,
            Value::Int(_) => FieldKind::Int,
            Value::Float(_) => FieldKind::Float,
            Value::Bool(_) => FieldKind::Bool,
        }
    }

    /// As [`FieldValue`]'s untagged deserializer types it: an integer that fits `i64` is an
    /// `Int`, any other number a `Float`.
    fn parse(raw: &RawValue) -> Result<Value<'_>, serde_json::Error> {
        let text = raw.get();
        Ok(match text.as_bytes().first() {
            Some(b'"') => Value::Str(serde_json::from_str::<JsonStr<'_>>(text)?.0),
            Some(b't' | b'f') => Value::Bool(serde_json::from_str(text)?),
            _ => {
                let n: serde_json::Number = serde_json::from_str(text)?;
                match n.as_i64() {
                    Some(i) => Value::Int(i),
                    None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
                }
            }
        })
    }
}

/// The `(key, raw value)` pairs of a fields object, in order, keys unescaped.
fn entries(json: &str) -> Result<Vec<(Cow<'_, str>, &RawValue)>, serde_json::Error> {
    struct Entries;
    impl<'de> Visitor<'de> for Entries {
        type Value = Vec<(Cow<'de, str>, &'de RawValue)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(JsonStr(k)) = map.next_key::<JsonStr<'de>>()? {
                out.push((k, map.next_value::<&'de RawValue>()?));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(json);
    let out = (&mut de).deserialize_map(Entries)?;
    de.end()?;
    Ok(out)
}

/// Chooses the keys to promote (at most `max`) from the fields objects (JSON text) of a sample
/// of rows.
pub fn choose<'a>(fields: impl Iterator<Item = &'a str>, max: usize) -> Vec<PromotedField> {
    #[derive(Default)]
    struct Seen<'a> {
        /// Values seen of each kind, indexed by `FieldKind as usize`.
        kinds: [usize; 4],
        strings: std::collections::HashSet<Cow<'a, str>>,
        /// The byte length of every string value so far, while they have only one.
        length: Option<Option<usize>>,
    }
    let mut rows = 0usize;
    let mut keys: HashMap<Cow<'a, str>, Seen<'a>> = HashMap::new();
    for json in fields {
        rows += 1;
        // The writer only takes fields objects the canonical-line parser checked.
        let Ok(entries) = entries(json) else { continue };
        for (k, raw) in entries {
            let Ok(v) = Value::parse(raw) else { continue };
            let seen = keys.entry(k).or_default();
            seen.kinds[v.kind() as usize] += 1;
            if let Value::Str(s) = v {
                seen.length = match seen.length {
                    None => Some(Some(s.len())),
                    Some(l) => Some(l.filter(|&l| l == s.len())),
                };
                // Distinct strings are counted only as far as the dictionary decision needs.
                if (seen.strings.len() as f64) <= rows as f64 * MAX_DICTIONARY_SHARE {
                    seen.strings.insert(s);
                }
            }
        }
    }
    let min = ((rows as f64 * MIN_SHARE).ceil() as usize).max(MIN_VALUES);
    let mut chosen: Vec<(usize, PromotedField)> = keys
        .into_iter()
        .filter_map(|(key, seen)| {
            // The key's dominant type, when nearly all its values have it: numbers some
            // serialisers write `12` and others `12.5` are still one column, the odd value
            // kept in the JSON text; a key whose values really mix types stays there whole.
            let held: usize = seen.kinds.iter().sum();
            let kind = FieldKind::ALL
                .into_iter()
                .max_by_key(|&k| seen.kinds[k as usize])?;
            let count = seen.kinds[kind as usize];
            let dominant = count as f64 >= held as f64 * MIN_KIND_SHARE;
            (dominant && count >= min).then(|| {
                let dictionary = match kind {
                    FieldKind::Str => {
                        (seen.strings.len() as f64) <= count as f64 * MAX_DICTIONARY_SHARE
                    }
                    _ => false,
                };
                // (Only strings: a number key's odd string values may all have one length.)
                let one_length =
                    kind == FieldKind::Str && !dictionary && matches!(seen.length, Some(Some(_)));
                (
                    count,
                    PromotedField {
                        key: key.into_owned(),
                        kind,
                        dictionary,
                        one_length,
                    },
                )
            })
        })
        .collect();
    chosen.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.key.cmp(&b.1.key)));
    chosen.truncate(max);
    let mut out: Vec<PromotedField> = chosen.into_iter().map(|(_, f)| f).collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// Builds the promoted columns and the `fields` JSON text of the rest, row by row.
pub struct FieldsSplitter<'p> {
    promoted: &'p [PromotedField],
    /// The promoted keys, sorted, with their index in `promoted` (a binary search per key
    /// costs less than hashing it).
    index: Vec<(&'p str, usize)>,
    builders: Vec<Builder>,
    rest: StringBuilder,
    /// The JSON text of the fields not promoted of the row being split.
    rest_text: String,
}

/// Where a promoted key of the row being split is.
enum Slot<'j> {
    Empty,
    /// In the JSON text: its value has another type than the column's.
    Rest,
    Value(Value<'j>),
}

enum Builder {
    Str(StringBuilder),
    Int(Int64Builder),
    Float(Float64Builder),
    Bool(BooleanBuilder),
}

impl<'p> FieldsSplitter<'p> {
    pub fn new(promoted: &'p [PromotedField], rows: usize) -> FieldsSplitter<'p> {
        let builders = promoted
            .iter()
            .map(|p| match p.kind {
                FieldKind::Str => Builder::Str(StringBuilder::with_capacity(rows, rows * 16)),
                FieldKind::Int => Builder::Int(Int64Builder::with_capacity(rows)),
                FieldKind::Float => Builder::Float(Float64Builder::with_capacity(rows)),
                FieldKind::Bool => Builder::Bool(BooleanBuilder::with_capacity(rows)),
            })
            .collect();
        FieldsSplitter {
            promoted,
            index: {
                let mut index: Vec<(&str, usize)> = promoted
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (p.key.as_str(), i))
                    .collect();
                index.sort_unstable();
                index
            },
            builders,
            rest: StringBuilder::with_capacity(rows, rows * 16),
            rest_text: String::new(),
        }
    }

    /// Splits one row's fields object (JSON text, as the canonical line holds it).
    pub fn push(&mut self, json: &str) {
        let slots = if self.promoted.is_empty() {
            None
        } else {
            self.split(json)
        };
        match &slots {
            Some(_) => self.rest.append_value(&self.rest_text),
            None => self.rest.append_value(json),
        }
        for (i, b) in self.builders.iter_mut().enumerate() {
            let value = match slots.as_ref().and_then(|s| s.get(i)) {
                Some(Slot::Value(v)) => Some(v),
                _ => None,
            };
            match (value, b) {
                (Some(Value::Str(s)), Builder::Str(b)) => b.append_value(s),
                (Some(Value::Int(i)), Builder::Int(b)) => b.append_value(*i),
                (Some(Value::Float(f)), Builder::Float(b)) => b.append_value(*f),
                (Some(Value::Bool(v)), Builder::Bool(b)) => b.append_value(*v),
                (_, Builder::Str(b)) => b.append_null(),
                (_, Builder::Int(b)) => b.append_null(),
                (_, Builder::Float(b)) => b.append_null(),
                (_, Builder::Bool(b)) => b.append_null(),
            }
        }
    }

    /// The row's value of each promoted key, with `rest_text` set to the other fields;
    /// `None` when the row must stay whole (a promoted key twice, or text that is not an
    /// object of scalars).
    fn split<'j>(&mut self, json: &'j str) -> Option<Vec<Slot<'j>>> {
        let entries = entries(json).ok()?;
        let mut slots: Vec<Slot<'j>> = (0..self.promoted.len()).map(|_| Slot::Empty).collect();
        self.rest_text.clear();
        self.rest_text.push('{');
        for (k, raw) in entries {
            let found = self
                .index
                .binary_search_by(|(key, _)| (*key).cmp(k.as_ref()));
            let Some(&(_, i)) = found.ok().and_then(|at| self.index.get(at)) else {
                push_entry(&mut self.rest_text, &k, raw);
                continue;
            };
            let slot = slots.get_mut(i)?;
            if !matches!(slot, Slot::Empty) {
                return None;
            }
            let v = Value::parse(raw).ok()?;
            *slot = if v.kind() == self.promoted[i].kind {
                Slot::Value(v)
            } else {
                push_entry(&mut self.rest_text, &k, raw);
                Slot::Rest
            };
        }
        self.rest_text.push('}');
        Some(slots)
    }

    /// The promoted columns (in the order of the promoted fields) and the `fields` column.
    pub fn finish(mut self) -> (Vec<ArrayRef>, ArrayRef) {
        let columns = self
            .builders
            .iter_mut()
            .map(|b| -> ArrayRef {
                match b {
                    Builder::Str(b) => Arc::new(b.finish()),
                    Builder::Int(b) => Arc::new(b.finish()),
                    Builder::Float(b) => Arc::new(b.finish()),
                    Builder::Bool(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        (columns, Arc::new(self.rest.finish()))
    }
}

fn push_entry(out: &mut String, key: &str, raw: &RawValue) {
    if out.len() > 1 {
        out.push(',');
    }
    // A key serialises infallibly.
    out.push_str(&serde_json::to_string(key).unwrap_or_default());
    out.push(':');
    out.push_str(raw.get());
}

/// The promoted columns of a batch read back (owned: clones of the batch's arrays).
pub(super) struct PromotedColumns {
    columns: Vec<(String, Column)>,
}

enum Column {
    Str(StringArray),
    Int(Int64Array),
    Float(Float64Array),
    Bool(BooleanArray),
}

impl PromotedColumns {
    /// `None` when a `fields.*` column has a type no writer gives it.
    pub(super) fn new(batch: &RecordBatch) -> Option<PromotedColumns> {
        let schema = batch.schema_ref();
        let mut columns = Vec::new();
        for (i, field) in schema.fields().iter().enumerate() {
            let Some(key) = field.name().strip_prefix(FIELD_COLUMN_PREFIX) else {
                continue;
            };
            let col = batch.column(i);
            let column = match FieldKind::of_type(field.data_type())? {
                FieldKind::Str => Column::Str(col.as_string_opt::<i32>()?.clone()),
                FieldKind::Int => Column::Int(col.as_primitive_opt::<Int64Type>()?.clone()),
                FieldKind::Float => Column::Float(col.as_primitive_opt::<Float64Type>()?.clone()),
                FieldKind::Bool => Column::Bool(col.as_boolean_opt()?.clone()),
            };
            columns.push((key.to_string(), column));
        }
        Some(PromotedColumns { columns })
    }

    pub(super) fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// Adds row `i`'s promoted values to `fields`.
    pub(super) fn insert_into(&self, i: usize, fields: &mut Fields) {
        for (key, col) in &self.columns {
            let value = match col {
                Column::Str(a) => a.is_valid(i).then(|| FieldValue::Str(a.value(i).into())),
                Column::Int(a) => a.is_valid(i).then(|| FieldValue::Int(a.value(i))),
                Column::Float(a) => a.is_valid(i).then(|| FieldValue::Float(a.value(i))),
                Column::Bool(a) => a.is_valid(i).then(|| FieldValue::Bool(a.value(i))),
            };
            if let Some(v) = value {
                fields.insert(key.clone(), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(p: &[PromotedField]) -> Vec<(&str, FieldKind, bool, bool)> {
        p.iter()
            .map(|f| (f.key.as_str(), f.kind, f.dictionary, f.one_length))
            .collect()
    }

    #[test]
    fn frequent_keys_of_one_dominant_type_are_promoted() {
        let mut rows = Vec::new();
        // Enough rows for the share to bind (1 % of them is more than MIN_VALUES).
        for i in 0..60_000 {
            let mut r = format!(
                r#"{{"id":"req-{i}","n":{i},"ms":{}.5,"ok":true,"region":"eu-{}","span":"{i:08x}""#,
                i,
                i % 3
            );
            // `mixed` changes type, `rare` is in 0.5 % of the rows, `often` in 2 %.
            r.push_str(if i % 2 == 0 {
                r#","mixed":1"#
            } else {
                r#","mixed":"1""#
            });
            if i % 200 == 0 {
                r.push_str(r#","rare":1"#);
            }
            if i % 50 == 0 {
                r.push_str(r#","often":1"#);
            }
            // `dur` is a float written `12` when whole in 5 % of the rows (as many serialisers
            // do), `half` a float in 85 % of them only.
            r.push_str(&if i % 20 == 0 {
                format!(r#","dur":{i}"#)
            } else {
                format!(r#","dur":{i}.25"#)
            });
            // `code` an integer, written as a string of one length in 5 % of the rows.
            r.push_str(&if i % 20 == 0 {
                format!(r#","code":"{:03}""#, i % 1000)
            } else {
                format!(r#","code":{i}"#)
            });
            r.push_str(&if i % 100 < 85 {
                format!(r#","half":{i}.5"#)
            } else {
                format!(r#","half":{i}"#)
            });
            r.push('}');
            rows.push(r);
        }
        let chosen = choose(rows.iter().map(String::as_str), MAX_PROMOTED);
        assert_eq!(
            keys(&chosen),
            [
                ("code", FieldKind::Int, false, false),
                ("dur", FieldKind::Float, false, false),
                ("id", FieldKind::Str, false, false),
                ("ms", FieldKind::Float, false, false),
                ("n", FieldKind::Int, false, false),
                ("often", FieldKind::Int, false, false),
                ("ok", FieldKind::Bool, false, false),
                ("region", FieldKind::Str, true, false),
                // Ids of one length are stored lengths apart.
                ("span", FieldKind::Str, false, true),
            ]
        );
        // The most frequent first when capped (ties by name).
        let two = choose(rows.iter().map(String::as_str), 2);
        assert_eq!(
            two.iter().map(|f| f.key.as_str()).collect::<Vec<_>>(),
            ["id", "ms"]
        );
        assert!(choose(rows.iter().map(String::as_str), 0).is_empty());
        assert!(choose(["{}"].into_iter(), MAX_PROMOTED).is_empty());
    }

    /// In a small sample, a key needs MIN_VALUES values whatever its share.
    #[test]
    fn a_key_of_fewer_values_than_the_minimum_stays_in_the_json() {
        let rows: Vec<String> = (0..MIN_VALUES + 10)
            .map(|i| {
                let few = if i < MIN_VALUES - 1 {
                    r#","few":1"#
                } else {
                    ""
                };
                format!(r#"{{"all":{i}{few}}}"#)
            })
            .collect();
        let chosen = choose(rows.iter().map(String::as_str), MAX_PROMOTED);
        assert_eq!(keys(&chosen), [("all", FieldKind::Int, false, false)]);
        let fewer = choose(
            rows[..MIN_VALUES - 1].iter().map(String::as_str),
            MAX_PROMOTED,
        );
        assert!(fewer.is_empty(), "{fewer:?}");
    }

    #[test]
    fn strings_without_escapes_are_borrowed_from_the_line() {
        let json = r#"{"plain":"abc","esc\u0041":"a\nb"}"#;
        let e = entries(json).unwrap();
        assert!(matches!(e[0].0, Cow::Borrowed("plain")));
        assert!(matches!(e[1].0, Cow::Owned(ref k) if k == "escA"));
        assert!(matches!(
            Value::parse(e[0].1).unwrap(),
            Value::Str(Cow::Borrowed("abc"))
        ));
        assert!(
            matches!(Value::parse(e[1].1).unwrap(), Value::Str(Cow::Owned(ref v)) if v == "a\nb")
        );
    }

    fn split(promoted: &[PromotedField], rows: &[&str]) -> (Vec<ArrayRef>, Vec<String>) {
        let mut s = FieldsSplitter::new(promoted, rows.len());
        for r in rows {
            s.push(r);
        }
        let (cols, rest) = s.finish();
        let rest = rest
            .as_string::<i32>()
            .iter()
            .map(|v| v.unwrap().to_string());
        (cols, rest.collect())
    }

    fn field(key: &str, kind: FieldKind) -> PromotedField {
        PromotedField {
            key: key.into(),
            kind,
            dictionary: false,
            one_length: false,
        }
    }

    #[test]
    fn rows_split_into_columns_and_the_rest_exactly() {
        let promoted = [field("a\"b", FieldKind::Str), field("n", FieldKind::Int)];
        let rows = [
            r#"{"a\"b":"x\ny","m":1.5,"n":7,"z":"é"}"#,
            // `n` of another type stays in the text, as does a row with a promoted key twice.
            r#"{"n":7.5}"#,
            r#"{"n":1,"n":2}"#,
            r#"{}"#,
            r#"{"n":-9223372036854775808}"#,
            r#"{"n":9223372036854775808}"#,
        ];
        let (cols, rest) = split(&promoted, &rows);
        assert_eq!(
            rest,
            [
                r#"{"m":1.5,"z":"é"}"#,
                r#"{"n":7.5}"#,
                r#"{"n":1,"n":2}"#,
                "{}",
                "{}",
                r#"{"n":9223372036854775808}"#,
            ]
        );
        let s = cols[0].as_string::<i32>();
        assert_eq!(s.value(0), "x\ny");
        assert_eq!(s.null_count(), 5);
        let n = cols[1].as_primitive::<Int64Type>();
        assert_eq!(
            n.iter().collect::<Vec<_>>(),
            [Some(7), None, None, None, Some(i64::MIN), None]
        );
        // Read back, every row is the fields it was written with.
        let schema = arrow_schema::Schema::new(vec![
            Field::new("fields", DataType::Utf8, false),
            promoted[0].arrow_field(),
            promoted[1].arrow_field(),
        ]);
        let rest_col: ArrayRef = Arc::new(StringArray::from(rest.clone()));
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![rest_col, cols[0].clone(), cols[1].clone()],
        )
        .unwrap();
        let back = PromotedColumns::new(&batch).unwrap();
        for (i, row) in rows.iter().enumerate() {
            let want: Fields = serde_json::from_str(row).unwrap();
            let mut got: Fields = serde_json::from_str(&rest[i]).unwrap();
            back.insert_into(i, &mut got);
            assert_eq!(got, want, "row {i}: {row}");
        }
    }
}
