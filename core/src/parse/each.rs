//! A body's events one at a time, borrowed where the fast path applies, for callers that only
//! write them out (ingest encodes them straight into JetStream payloads).

use std::io::{self, Write};

use super::borrowed::{BorrowedEvent, FlatFields, read_flat_line};
use super::framing::parse_json_line;
use super::{BodyFormat, LineError, ParseOptions, Parsed, Reject, parse_body};
use crate::event::LogEvent;

/// An event as [`parse_body_each`] hands it over.
pub enum AnyEvent<'s, 'a> {
    Borrowed(BorrowedEvent<'s, 'a>),
    Owned(LogEvent),
}

impl AnyEvent<'_, '_> {
    pub fn service(&self) -> &str {
        match self {
            AnyEvent::Borrowed(e) => e.service.as_ref(),
            AnyEvent::Owned(e) => e.service.as_str(),
        }
    }

    /// The canonical JSON of the event, without a newline.
    pub fn write_canonical<W: Write>(&self, w: W) -> io::Result<()> {
        match self {
            AnyEvent::Borrowed(e) => e.write_canonical(w),
            AnyEvent::Owned(e) => serde_json::to_writer(w, e).map_err(io::Error::other),
        }
    }
}

/// What [`parse_body`] gives, one event at a time and in the same order, with the same rejects;
/// NDJSON lines and one-line JSON objects that are flat take the borrowed fast path.
pub fn parse_body_each<'a>(
    body: &'a [u8],
    format: BodyFormat,
    opts: &'a ParseOptions,
    mut on_event: impl FnMut(&AnyEvent<'_, 'a>),
) -> Vec<Reject> {
    let mut scratch: FlatFields<'a> = Vec::with_capacity(16);
    let mut out = Parsed::default();
    let trimmed = body.trim_ascii();
    let one_line_object = format == BodyFormat::Json
        && trimmed.first() == Some(&b'{')
        && !trimmed.contains(&b'\n')
        && trimmed.len() <= opts.max_line_bytes;
    if one_line_object {
        json_line(trimmed, 1, opts, &mut scratch, &mut out, &mut on_event);
        return out.rejects;
    }
    if format != BodyFormat::Ndjson {
        let parsed = parse_body(body, format, opts);
        for ev in parsed.events {
            on_event(&AnyEvent::Owned(ev));
        }
        return parsed.rejects;
    }
    // NDJSON, line by line as `parse_body` reads it.
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
        if !line.is_empty() {
            json_line(line, line_no, opts, &mut scratch, &mut out, &mut on_event);
        }
    }
    out.rejects
}

fn json_line<'a>(
    line: &'a [u8],
    line_no: usize,
    opts: &'a ParseOptions,
    scratch: &mut FlatFields<'a>,
    out: &mut Parsed,
    on_event: &mut impl FnMut(&AnyEvent<'_, 'a>),
) {
    if line.first() == Some(&b'{')
        && let Some(ev) = read_flat_line(line, opts, scratch)
    {
        on_event(&AnyEvent::Borrowed(ev));
        return;
    }
    match parse_json_line(line, opts) {
        Ok(ev) => on_event(&AnyEvent::Owned(ev)),
        Err(e) => out.reject(line_no, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::test_support::opts;

    fn both(
        body: &str,
        format: BodyFormat,
    ) -> (Vec<String>, Vec<Reject>, Vec<String>, Vec<Reject>) {
        let o = opts();
        let general = parse_body(body.as_bytes(), format, &o);
        let want: Vec<String> = general
            .events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap())
            .collect();
        let mut got = Vec::new();
        let rejects = parse_body_each(body.as_bytes(), format, &o, |e| {
            let mut b = Vec::new();
            e.write_canonical(&mut b).unwrap();
            got.push(String::from_utf8(b).unwrap());
        });
        (got, rejects, want, general.rejects)
    }

    #[test]
    fn each_gives_what_parse_body_gives() {
        let body = "{\"message\":\"a\",\"n\":1}\r\n\n  {\"msg\":\"nested\",\"u\":{\"id\":7}}\n{bad\n\"a bare string\"\n[1]\n{\"level\":\"nope\"}\n{\"service\":\"Web App\",\"message\":\"x\"}";
        for format in [
            BodyFormat::Ndjson,
            BodyFormat::Json,
            BodyFormat::Auto,
            BodyFormat::Text,
        ] {
            let (got, rejects, want, want_rejects) = both(body, format);
            assert_eq!(got, want, "{format:?}");
            assert_eq!(rejects, want_rejects, "{format:?}");
        }
        for one in [
            "{\"message\":\"single\",\"k\":true}",
            "  {\"a\":{\"b\":1}}  ",
            "{}",
        ] {
            let (got, rejects, want, want_rejects) = both(one, BodyFormat::Json);
            assert_eq!((got, rejects), (want, want_rejects), "{one}");
        }
    }
}
