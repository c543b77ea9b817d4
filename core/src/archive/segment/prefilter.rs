//! Which rows of a batch may hold a search's tokens, before any row is decoded into an event.
//!
//! A search for a needle decodes the row groups whose token filter may hold it; most of their
//! rows do not. Every token a matching event holds (`EventQuery::index_tokens`: the lower-cased
//! identifiers the token filters are probed with) is a run of token characters of the event's
//! canonical line, and so a substring of one of its stored strings: `service`, `message`,
//! `fields` (the JSON text of the fields not promoted), `trace_id`, `host`, a promoted field's
//! value (its text in the line: the string, or the number as JSON writes it) or a promoted
//! field's key (escapes are separators for the tokenizer, see
//! [`crate::tokens::json_line_tokens`], so a token never spans one). Rows lacking a token,
//! case-insensitively, cannot match and are skipped without building an event: one substring
//! search per token over each text column's whole value buffer.

use std::borrow::Cow;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::DataType;

use super::promoted::FIELD_COLUMN_PREFIX;

/// The columns a token can be found in, besides the promoted fields.
const TEXT_COLUMNS: [&str; 5] = ["service", "message", "fields", "trace_id", "host"];

/// One column's values as lower-case text, back to back: row `i` is
/// `lower[offsets[i] - base..offsets[i + 1] - base]`.
struct Text<'a> {
    offsets: Cow<'a, [i32]>,
    base: usize,
    lower: Vec<u8>,
}

impl Text<'_> {
    fn of_strings(col: &dyn Array, n: usize) -> Option<Text<'_>> {
        let col = col.as_string_opt::<i32>()?;
        let offsets = col.value_offsets();
        let (start, end) = (offsets[0] as usize, offsets[n] as usize);
        Some(Text {
            offsets: Cow::Borrowed(offsets),
            base: start,
            lower: col.values()[start..end].to_ascii_lowercase(),
        })
    }

    /// A numeric column as the canonical line writes its values (nulls as empty text).
    fn of_numbers(col: &ArrayRef) -> Option<Text<'static>> {
        if let Some(a) = col.as_primitive_opt::<Int64Type>() {
            Some(Text::written(a.len(), |i| {
                a.is_valid(i).then(|| a.value(i))
            }))
        } else {
            let a = col.as_primitive_opt::<Float64Type>()?;
            Some(Text::written(a.len(), |i| {
                a.is_valid(i).then(|| a.value(i))
            }))
        }
    }

    fn written<T: serde::Serialize>(n: usize, value: impl Fn(usize) -> Option<T>) -> Text<'static> {
        let mut lower = Vec::with_capacity(n * 8);
        let mut offsets = Vec::with_capacity(n + 1);
        offsets.push(0i32);
        for i in 0..n {
            if let Some(v) = value(i) {
                // Writing a number into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut lower, &v);
            }
            offsets.push(i32::try_from(lower.len()).unwrap_or(i32::MAX));
        }
        lower.make_ascii_lowercase();
        Text {
            offsets: Cow::Owned(offsets),
            base: 0,
            lower,
        }
    }

    /// Marks in `hit` the rows whose text holds `finder`'s needle (of `len` bytes).
    fn mark(&self, finder: &memchr::memmem::Finder<'_>, len: usize, hit: &mut [bool]) {
        let n = hit.len();
        for at in finder.find_iter(&self.lower) {
            let at = at + self.base;
            // The row whose value holds byte `at`; a match across two values is none.
            let row = self
                .offsets
                .partition_point(|&o| o as usize <= at)
                .saturating_sub(1);
            if row < n && at + len <= self.offsets[row + 1] as usize {
                hit[row] = true;
            }
        }
    }
}

/// Whether a (lower-case) token could be a substring of a number's JSON text.
fn numeric(token: &[u8]) -> bool {
    token
        .iter()
        .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'+' | b'e'))
}

/// `mask[i]`: row `i` holds every one of `tokens` (lower-case) in one of its strings. `None`
/// without tokens (every row may match). A column missing from the batch makes every row a
/// candidate (the decoder reports it).
pub(super) fn rows_holding(batch: &RecordBatch, tokens: &[String]) -> Option<Vec<bool>> {
    if tokens.is_empty() {
        return None;
    }
    let n = batch.num_rows();
    let tokens: Vec<String> = tokens.iter().map(|t| t.to_ascii_lowercase()).collect();
    let mut texts = Vec::with_capacity(TEXT_COLUMNS.len());
    for name in TEXT_COLUMNS {
        texts.push(Text::of_strings(batch.column_by_name(name)?.as_ref(), n)?);
    }
    // Promoted fields: string values as they are, numbers written out only when a token
    // could be one, and the key itself, which every row holding a value has in its line.
    let any_numeric = tokens.iter().any(|t| numeric(t.as_bytes()));
    let mut keys: Vec<(String, &ArrayRef)> = Vec::new();
    for (field, col) in batch.schema_ref().fields().iter().zip(batch.columns()) {
        let Some(key) = field.name().strip_prefix(FIELD_COLUMN_PREFIX) else {
            continue;
        };
        keys.push((key.to_ascii_lowercase(), col));
        match field.data_type() {
            DataType::Utf8 => texts.push(Text::of_strings(col.as_ref(), n)?),
            DataType::Int64 | DataType::Float64 if any_numeric => {
                texts.push(Text::of_numbers(col)?)
            }
            _ => {}
        }
    }
    let mut all = vec![true; n];
    let mut hit = vec![false; n];
    for token in &tokens {
        let finder = memchr::memmem::Finder::new(token.as_bytes());
        hit.fill(false);
        for text in &texts {
            text.mark(&finder, token.len(), &mut hit);
        }
        for (key, col) in &keys {
            if key.contains(token.as_str()) {
                for (i, h) in hit.iter_mut().enumerate() {
                    *h |= col.is_valid(i);
                }
            }
        }
        for (a, h) in all.iter_mut().zip(&hit) {
            *a &= *h;
        }
    }
    Some(all)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, StringArray};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn batch(messages: &[&str], fields: &[&str]) -> RecordBatch {
        let n = messages.len();
        let col = |v: Vec<Option<&str>>| Arc::new(StringArray::from(v)) as ArrayRef;
        let schema = Schema::new(
            TEXT_COLUMNS
                .iter()
                .map(|c| Field::new(*c, DataType::Utf8, true))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                col(vec![Some("api"); n]),
                col(messages.iter().map(|m| Some(*m)).collect()),
                col(fields.iter().map(|f| Some(*f)).collect()),
                col(vec![None; n]),
                col(vec![Some("Host-1"); n]),
            ],
        )
        .unwrap()
    }

    #[test]
    fn rows_lacking_a_token_are_ruled_out_case_insensitively() {
        let b = batch(
            &[
                "paid ORD-4711 ok",
                "nothing here",
                "ord-4711",
                "ord-47",
                "11 ord-47",
            ],
            &["{}", r#"{"order":"Ord-4711"}"#, "{}", "{}", "{}"],
        );
        let mask = rows_holding(&b, &["ord-4711".into()]).unwrap();
        assert_eq!(mask, [true, true, true, false, false]);
        // Every token must be there; one in the host column counts.
        let mask = rows_holding(&b, &["ord-4711".into(), "host-1".into()]).unwrap();
        assert_eq!(mask, [true, true, true, false, false]);
        let mask = rows_holding(&b, &["ord-4711".into(), "paid".into()]).unwrap();
        assert_eq!(mask, [true, false, false, false, false]);
        assert_eq!(rows_holding(&b, &[]), None);
    }

    #[test]
    fn a_match_across_two_values_is_none_and_slices_are_respected() {
        // "ab12" + "34cd" are adjacent in the value buffer: "1234" spans them.
        let b = batch(&["xx ab12", "34cd yy", "1234"], &["{}", "{}", "{}"]);
        let mask = rows_holding(&b, &["1234".into()]).unwrap();
        assert_eq!(mask, [false, false, true]);
        let sliced = b.slice(1, 2);
        assert_eq!(
            rows_holding(&sliced, &["1234".into()]).unwrap(),
            [false, true]
        );
        assert_eq!(
            rows_holding(&sliced, &["ab12".into()]).unwrap(),
            [false, false]
        );
    }
}
