//! Cutting a body into lines or array elements, each judged on its own, and back again: the
//! original text of refused lines for a dead letter.

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::flatten::flatten_json_object;
use super::normalize::{normalize_flat, normalize_object, text_event};
use super::{LineError, ParseOptions, Parsed, Reject, json_error};
use crate::event::LogEvent;

/// How to read a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFormat {
    /// One JSON object or a JSON array of objects (or NDJSON sent as `application/json`).
    Json,
    /// One JSON object (or a bare JSON string) per line.
    Ndjson,
    /// One message per line.
    Text,
    /// Decide per line: a line starting with `{` is JSON, anything else is text. This is how
    /// raw `nats pub` payloads are read, since they carry no content type.
    Auto,
}

/// A content type logjet cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unsupported content type {0:?}: send application/json, application/x-ndjson or text/plain"
)]
pub struct UnsupportedContentType(pub String);

impl BodyFormat {
    /// Picks the format from a `Content-Type` header; a missing header means [`BodyFormat::Auto`].
    pub fn from_content_type(ct: Option<&str>) -> Result<BodyFormat, UnsupportedContentType> {
        let Some(ct) = ct else {
            return Ok(BodyFormat::Auto);
        };
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match mime.as_str() {
            "application/json" | "text/json" => Ok(BodyFormat::Json),
            "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/x-jsonlines"
            | "application/json-lines"
            | "application/jsonlines" => Ok(BodyFormat::Ndjson),
            "text/plain" => Ok(BodyFormat::Text),
            "" => Ok(BodyFormat::Auto),
            _ => Err(UnsupportedContentType(ct.to_string())),
        }
    }
}

/// Parses a whole body. Never panics and never fails as a whole: the worst outcome is no events
/// and one reject per line.
pub fn parse_body(body: &[u8], format: BodyFormat, opts: &ParseOptions) -> Parsed {
    let mut out = Parsed::default();
    let trimmed = body.trim_ascii();
    match format {
        BodyFormat::Json => {
            if trimmed.first() == Some(&b'[') {
                parse_json_array(trimmed, opts, &mut out);
            } else if trimmed.first() == Some(&b'{') && !has_inner_newline(trimmed) {
                if trimmed.len() > opts.max_line_bytes {
                    out.reject(
                        1,
                        LineError::TooLong {
                            len: trimmed.len(),
                            max: opts.max_line_bytes,
                        },
                    );
                } else {
                    out.push(1, parse_json_line(trimmed, opts));
                }
            } else if trimmed.first() == Some(&b'{') {
                // A pretty-printed object, or NDJSON sent as application/json: try the first,
                // fall back to the second.
                match serde_json::from_slice::<Map<String, Value>>(trimmed) {
                    Ok(map) if trimmed.len() <= opts.max_line_bytes => {
                        out.push(1, normalize_object(map, opts))
                    }
                    _ => parse_lines(body, LineMode::Json, opts, &mut out),
                }
            } else {
                parse_lines(body, LineMode::Json, opts, &mut out);
            }
        }
        BodyFormat::Ndjson => parse_lines(body, LineMode::Json, opts, &mut out),
        BodyFormat::Text => parse_lines(body, LineMode::Text, opts, &mut out),
        BodyFormat::Auto => {
            if trimmed.first() == Some(&b'[') {
                parse_json_array(trimmed, opts, &mut out);
            } else if trimmed.first() == Some(&b'{') && has_inner_newline(trimmed) {
                match serde_json::from_slice::<Map<String, Value>>(trimmed) {
                    Ok(map) if trimmed.len() <= opts.max_line_bytes => {
                        out.push(1, normalize_object(map, opts))
                    }
                    _ => parse_lines(body, LineMode::Auto, opts, &mut out),
                }
            } else {
                parse_lines(body, LineMode::Auto, opts, &mut out);
            }
        }
    }
    out
}

fn has_inner_newline(b: &[u8]) -> bool {
    memchr_newline(b).is_some()
}

fn memchr_newline(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum LineMode {
    Json,
    Text,
    Auto,
}

fn parse_lines(body: &[u8], mode: LineMode, opts: &ParseOptions, out: &mut Parsed) {
    for (i, raw) in crate::lines::split_lines(body).enumerate() {
        let line_no = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > opts.max_line_bytes {
            out.reject(
                line_no,
                LineError::TooLong {
                    len: raw.len(),
                    max: opts.max_line_bytes,
                },
            );
            continue;
        }
        let line = raw.trim_ascii();
        if line.is_empty() {
            continue;
        }
        let is_json = match mode {
            LineMode::Json => true,
            LineMode::Text => false,
            LineMode::Auto => line[0] == b'{',
        };
        if is_json {
            out.push(line_no, parse_json_line(line, opts));
        } else {
            match std::str::from_utf8(raw) {
                Ok(text) => out.events.push(text_event(text.trim_end(), opts)),
                Err(e) => out.reject(
                    line_no,
                    LineError::InvalidUtf8 {
                        at: e.valid_up_to(),
                    },
                ),
            }
        }
    }
}

pub(super) fn parse_json_line(line: &[u8], opts: &ParseOptions) -> Result<LogEvent, LineError> {
    if line.first() == Some(&b'{') {
        // The common case, read in one pass (see `flatten_json_object`).
        return normalize_flat(flatten_json_object(line)?, opts);
    }
    if let Err(e) = std::str::from_utf8(line) {
        return Err(LineError::InvalidUtf8 {
            at: e.valid_up_to(),
        });
    }
    let value: Value = serde_json::from_slice(line).map_err(json_error)?;
    value_to_event(value, opts)
}

fn value_to_event(value: Value, opts: &ParseOptions) -> Result<LogEvent, LineError> {
    match value {
        Value::Object(map) => normalize_object(map, opts),
        Value::String(s) => Ok(text_event(&s, opts)),
        Value::Array(_) => Err(LineError::NotAnObject("an array")),
        Value::Number(_) => Err(LineError::NotAnObject("a number")),
        Value::Bool(_) => Err(LineError::NotAnObject("a boolean")),
        Value::Null => Err(LineError::NotAnObject("null")),
    }
}

fn parse_json_array(body: &[u8], opts: &ParseOptions, out: &mut Parsed) {
    if let Err(e) = std::str::from_utf8(body) {
        out.reject(
            1,
            LineError::InvalidUtf8 {
                at: e.valid_up_to(),
            },
        );
        return;
    }
    // RawValue keeps each element separate, so one bad element does not sink the others.
    let elements: Vec<&RawValue> = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            out.reject(e.line().max(1), json_error(e));
            return;
        }
    };
    for (i, raw) in elements.into_iter().enumerate() {
        let pos = i + 1;
        let text = raw.get();
        if text.len() > opts.max_line_bytes {
            out.reject(
                pos,
                LineError::TooLong {
                    len: text.len(),
                    max: opts.max_line_bytes,
                },
            );
            continue;
        }
        let result = serde_json::from_str::<Value>(text)
            .map_err(json_error)
            .and_then(|v| value_to_event(v, opts));
        out.push(pos, result);
    }
}

/// The original text of rejected lines (or array elements), one per line: what a dead letter
/// carries, so that replaying it after a fix re-sends exactly what was refused and nothing that
/// was already counted.
pub fn extract_rejected(payload: &[u8], rejects: &[Reject]) -> Vec<u8> {
    let mut wanted: Vec<usize> = rejects.iter().map(|r| r.line).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let trimmed = payload.trim_ascii();
    let mut out = Vec::new();
    if trimmed.first() == Some(&b'[')
        && let Ok(elements) = serde_json::from_slice::<Vec<&RawValue>>(trimmed)
    {
        for n in wanted {
            if let Some(e) = elements.get(n.wrapping_sub(1)) {
                out.extend_from_slice(e.get().as_bytes());
                out.push(b'\n');
            }
        }
        return out;
    }
    let lines: Vec<&[u8]> = crate::lines::split_lines(payload).collect();
    for n in wanted {
        if let Some(l) = lines.get(n.wrapping_sub(1)) {
            out.extend_from_slice(l.strip_suffix(b"\r").unwrap_or(l));
            out.push(b'\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Level;
    use crate::parse::test_support::{one, opts, reject};

    #[test]
    fn json_array_keeps_good_elements() {
        let p = parse_body(
            br#"[{"message":"a"}, 42, "plain text", {"message":"b","level":"nope"}]"#,
            BodyFormat::Json,
            &opts(),
        );
        assert_eq!(p.events.len(), 2);
        assert_eq!(p.events[1].message, "plain text");
        assert_eq!(p.rejects.len(), 2);
        assert_eq!(p.rejects[0].line, 2);
        assert!(p.rejects[0].error.contains("a number"));
        assert_eq!(p.rejects[1].line, 4);
        assert!(
            p.rejects[1].error.contains("field `level`"),
            "{}",
            p.rejects[1].error
        );
    }

    #[test]
    fn ndjson_reports_the_bad_line_and_keeps_the_rest() {
        let body = b"{\"message\":\"a\"}\n{\"message\": oops}\n\n{\"message\":\"c\"}\r\n";
        let p = parse_body(body, BodyFormat::Ndjson, &opts());
        assert_eq!(p.events.len(), 2);
        assert_eq!(p.rejects.len(), 1);
        assert_eq!(p.rejects[0].line, 2);
        assert!(p.rejects[0].error.starts_with("invalid JSON"));
    }

    #[test]
    fn ndjson_sent_as_application_json_is_accepted() {
        let p = parse_body(
            b"{\"message\":\"a\"}\n{\"message\":\"b\"}",
            BodyFormat::Json,
            &opts(),
        );
        assert_eq!(p.events.len(), 2);
        assert!(p.rejects.is_empty());
    }

    #[test]
    fn pretty_printed_json_object() {
        let ev = one(
            "{\n  \"message\": \"a\",\n  \"level\": \"warn\"\n}\n",
            BodyFormat::Json,
        );
        assert_eq!(ev.level, Level::Warn);
    }

    #[test]
    fn text_lines_and_auto_mode() {
        let p = parse_body(b"disk full\nERROR boom\n", BodyFormat::Text, &opts());
        assert_eq!(p.events.len(), 2);
        assert_eq!(p.events[0].message, "disk full");
        assert_eq!(p.events[1].level, Level::Error);
        let p = parse_body(
            b"{\"level\":\"warn\",\"message\":\"j\"}\nplain\n",
            BodyFormat::Auto,
            &opts(),
        );
        assert_eq!(p.events[0].level, Level::Warn);
        assert_eq!(p.events[1].message, "plain");
        // In text mode a JSON-looking line is just text.
        let p = parse_body(b"{\"a\":1}", BodyFormat::Text, &opts());
        assert_eq!(p.events[0].message, "{\"a\":1}");
    }

    #[test]
    fn content_types() {
        assert_eq!(BodyFormat::from_content_type(None), Ok(BodyFormat::Auto));
        assert_eq!(
            BodyFormat::from_content_type(Some("application/json; charset=utf-8")),
            Ok(BodyFormat::Json)
        );
        assert_eq!(
            BodyFormat::from_content_type(Some("application/x-ndjson")),
            Ok(BodyFormat::Ndjson)
        );
        assert_eq!(
            BodyFormat::from_content_type(Some("text/plain")),
            Ok(BodyFormat::Text)
        );
        assert!(BodyFormat::from_content_type(Some("application/x-www-form-urlencoded")).is_err());
    }

    #[test]
    fn reject_line_too_long() {
        let mut o = opts();
        o.max_line_bytes = 10;
        let p = parse_body(b"short\nthis line is too long\n", BodyFormat::Text, &o);
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.rejects[0].line, 2);
        assert!(p.rejects[0].error.contains("over the limit"));
        let p = parse_body(br#"{"message":"0123456789"}"#, BodyFormat::Json, &o);
        assert!(p.rejects[0].error.contains("over the limit"));
    }

    #[test]
    fn reject_invalid_utf8() {
        let r = reject(b"ok?\xff\xfe", BodyFormat::Text);
        assert_eq!(r.error, "invalid UTF-8 at byte 3");
        let r = reject(b"{\"message\":\"\xff\"}", BodyFormat::Ndjson);
        assert!(r.error.contains("invalid UTF-8"));
    }

    #[test]
    fn reject_invalid_json() {
        let r = reject(b"{\"message\":", BodyFormat::Json);
        assert!(r.error.starts_with("invalid JSON"), "{}", r.error);
        let r = reject(b"[1,", BodyFormat::Json);
        assert!(r.error.starts_with("invalid JSON"), "{}", r.error);
    }

    #[test]
    fn reject_deep_nesting_without_overflowing_the_stack() {
        let body = format!("{}{}", "{\"a\":".repeat(10_000), "}".repeat(10_000));
        let r = reject(body.as_bytes(), BodyFormat::Json);
        assert!(r.error.contains("recursion limit"), "{}", r.error);
        let arr = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let r = reject(arr.as_bytes(), BodyFormat::Json);
        assert!(r.error.contains("recursion limit"), "{}", r.error);
    }

    #[test]
    fn reject_non_objects() {
        assert!(reject(b"42", BodyFormat::Ndjson).error.contains("a number"));
        assert!(
            reject(b"[1]\n", BodyFormat::Ndjson)
                .error
                .contains("an array")
        );
        assert!(reject(b"null", BodyFormat::Ndjson).error.contains("null"));
        assert!(
            reject(b"true", BodyFormat::Ndjson)
                .error
                .contains("a boolean")
        );
    }

    #[test]
    fn extract_rejected_lines_and_elements() {
        let body = b"{\"message\":\"ok\"}\n{bad\nfine\n{worse\n";
        let p = parse_body(body, BodyFormat::Auto, &opts());
        assert_eq!(extract_rejected(body, &p.rejects), b"{bad\n{worse\n");
        let arr = br#"[{"message":"ok"}, 5, {"message":"x","level":"nope"}]"#;
        let p = parse_body(arr, BodyFormat::Auto, &opts());
        assert_eq!(
            extract_rejected(arr, &p.rejects),
            b"5\n{\"message\":\"x\",\"level\":\"nope\"}\n"
        );
    }

    #[test]
    fn empty_bodies_give_nothing() {
        let p = parse_body(b"  \n\n", BodyFormat::Ndjson, &opts());
        assert!(p.events.is_empty() && p.rejects.is_empty());
    }
}
