//! Which rows of a batch may hold a search's tokens, before any row is decoded into an event.
//!
//! A search for a needle decodes the row groups whose token filter may hold it; most of their
//! rows do not. Every token a matching event holds (`EventQuery::index_tokens`: the lower-cased
//! identifiers the token filters are probed with) is a run of token characters of the event's
//! canonical line, and so a substring of one of its stored strings: `service`, `message`,
//! `fields` (stored as the line's JSON text), `trace_id` or `host` (escapes are separators for
//! the tokenizer, see [`crate::tokens::json_line_tokens`], so a token never spans one). Rows
//! lacking a token, case-insensitively, cannot match and are skipped without building an event:
//! one substring search per token over each string column's whole value buffer.

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;

/// The columns a token can be found in.
const TEXT_COLUMNS: [&str; 5] = ["service", "message", "fields", "trace_id", "host"];

/// `mask[i]`: row `i` holds every one of `tokens` (lower-case) in one of its strings. `None`
/// without tokens (every row may match). A column missing from the batch makes every row a
/// candidate (the decoder reports it).
pub(super) fn rows_holding(batch: &RecordBatch, tokens: &[String]) -> Option<Vec<bool>> {
    if tokens.is_empty() {
        return None;
    }
    let n = batch.num_rows();
    let mut columns = Vec::with_capacity(TEXT_COLUMNS.len());
    for name in TEXT_COLUMNS {
        let col = batch
            .column_by_name(name)
            .and_then(|c| c.as_string_opt::<i32>())?;
        let offsets = col.value_offsets();
        let (start, end) = (offsets[0] as usize, offsets[n] as usize);
        let lower = col.values()[start..end].to_ascii_lowercase();
        columns.push((offsets, start, lower));
    }
    let mut all = vec![true; n];
    let mut hit = vec![false; n];
    for token in tokens {
        let token = token.to_ascii_lowercase();
        let finder = memchr::memmem::Finder::new(token.as_bytes());
        hit.fill(false);
        for (offsets, base, lower) in &columns {
            for at in finder.find_iter(lower) {
                let at = at + base;
                // The row whose value holds byte `at`; a match across two values is none.
                let row = offsets
                    .partition_point(|&o| o as usize <= at)
                    .saturating_sub(1);
                if row < n && at + token.len() <= offsets[row + 1] as usize {
                    hit[row] = true;
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
