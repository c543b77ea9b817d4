//! A reader of its own for the common line: a JSON object of strings without escapes, integers,
//! booleans and nulls. It gives exactly what `serde_json` and the flat-object visitor give for
//! such a line (the tests compare them on generated lines) in a fraction of the instructions: no
//! visitor call per member, a string's end found by one loop over its bytes. Anything else it
//! meets (an escape, a nested value, a syntax error) gives `None`, and the visitor reads the
//! line from the start; a fraction or an exponent is read by `serde_json`'s own number parser.

use std::borrow::Cow;

use serde::de::DeserializeSeed;

use super::{FlatFields, Member, Scalar};

/// The members of a flat object, in document order, nulls dropped, into `out` (which the caller
/// has cleared); the number of members read (nulls included), or `None` to leave the line to
/// the visitor.
pub(super) fn flat_object<'a>(line: &'a [u8], out: &mut FlatFields<'a>) -> Option<usize> {
    // Valid UTF-8 once for the whole line: every string then starts and ends at a quote, an
    // ASCII byte, so slicing `text` there cannot fail.
    let text = std::str::from_utf8(line).ok()?;
    let b = line;
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let mut members = 0;
    if b.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let (key, next) = string(text, i)?;
            i = skip_ws(b, next);
            if b.get(i) != Some(&b':') {
                return None;
            }
            i = skip_ws(b, i + 1);
            let (value, next) = value(text, i)?;
            members += 1;
            if let Some(v) = value {
                out.push((key, v));
            }
            i = skip_ws(b, next);
            match b.get(i) {
                Some(b',') => i = skip_ws(b, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_ws(b, i) == b.len()).then_some(members)
}

/// JSON's whitespace from `i` on; the index of the first other byte (or the end).
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        i += 1;
    }
    i
}

/// The string whose opening quote is at `open`, and the index after its closing quote; `None`
/// at an escape (the visitor unescapes) or a control character (invalid JSON).
fn string(text: &str, open: usize) -> Option<(Cow<'_, str>, usize)> {
    let start = open + 1;
    let end = start + plain_len(&text.as_bytes()[start..]);
    (text.as_bytes().get(end) == Some(&b'"')).then(|| (Cow::Borrowed(&text[start..end]), end + 1))
}

/// How many bytes from the start JSON takes as they are inside a string: up to the first quote,
/// backslash or control character (what `serde_json` escapes when it writes, and what ends or
/// breaks a string when it reads). Eight bytes at a time.
pub(super) fn plain_len(b: &[u8]) -> usize {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    // Per byte, the high bit set where the byte is zero / below 0x20; exact for the lowest such
    // byte (borrows only run upwards), which is the only one used.
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let mut i = 0;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let stop = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
        if stop != 0 {
            return i + stop.trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    i + b[i..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .unwrap_or(b.len() - i)
}

/// The value at `i` (`None` inside for null) and the index after it.
// Inlined: returned through memory, its result stalled the loads that read it (perf annotate).
#[inline(always)]
fn value(text: &str, i: usize) -> Option<(Option<Scalar<'_>>, usize)> {
    let b = text.as_bytes();
    let literal = |word: &[u8], v: Option<Scalar<'static>>| {
        b[i..].starts_with(word).then(|| (v, i + word.len()))
    };
    match *b.get(i)? {
        b'"' => string(text, i).map(|(s, next)| (Some(Scalar::Str(s)), next)),
        b't' => literal(b"true", Some(Scalar::Bool(true))),
        b'f' => literal(b"false", Some(Scalar::Bool(false))),
        b'n' => literal(b"null", None),
        b'-' | b'0'..=b'9' => number(b, i),
        _ => None,
    }
}

/// The number at `i`: an integer of up to 18 digits here (it fits an `i64`, as `serde_json`
/// reads it), anything else (a fraction, an exponent, more digits, `-0`, a leading zero) by
/// `serde_json`'s own parser, so a float is the same to the last bit.
fn number(b: &[u8], i: usize) -> Option<(Option<Scalar<'_>>, usize)> {
    let len = b[i..]
        .iter()
        .position(|&c| !matches!(c, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
        .unwrap_or(b.len() - i);
    let token = &b[i..i + len];
    let digits = token.strip_prefix(b"-").unwrap_or(token);
    let plain = (1..=18).contains(&digits.len())
        && digits.iter().all(u8::is_ascii_digit)
        && (digits[0] != b'0' || token == b"0");
    if plain {
        let n = digits
            .iter()
            .fold(0i64, |n, &d| n * 10 + i64::from(d - b'0'));
        let n = if digits.len() < token.len() { -n } else { n };
        return Some((Some(Scalar::Int(n)), i + len));
    }
    let mut de = serde_json::Deserializer::from_slice(token);
    let v = Member.deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some((v, i + len))
}

#[cfg(test)]
mod tests {
    use super::super::visit_members;
    use super::*;

    /// Both readers on one line: whenever this one answers, the visitor answers the same.
    fn check(line: &str) -> bool {
        let mut ours = FlatFields::new();
        let mut theirs = FlatFields::new();
        let scanned = flat_object(line.as_bytes(), &mut ours);
        let visited = visit_members(line.as_bytes(), &mut theirs);
        if let Some(n) = scanned {
            assert_eq!(Some(n), visited, "{line:?}");
            assert_eq!(ours, theirs, "{line:?}");
        }
        scanned.is_some()
    }

    #[test]
    fn plain_len_stops_where_json_escapes() {
        let stops = [b'"', b'\\', 0, 0x1f, b'\n'];
        let others = [
            b'a', b' ', 0x20, 0x7f, 0x80, 0xff, b'!', b'#', b'[', b']', b'/', 0x21,
        ];
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let mut b: Vec<u8> = (0..len)
                .map(|k| others[((x >> (k % 50)) as usize + k) % others.len()])
                .collect();
            if len > 0 && !x.is_multiple_of(3) {
                let at = (x >> 20) as usize % len;
                b[at] = stops[(x >> 40) as usize % stops.len()];
                if x.is_multiple_of(5) {
                    b[(at + 1).min(len - 1)] = stops[(x >> 44) as usize % stops.len()];
                }
            }
            let want = b
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                .unwrap_or(b.len());
            assert_eq!(plain_len(&b), want, "{b:?}");
        }
    }

    #[test]
    fn reads_the_common_line_itself() {
        for line in [
            r#"{"service":"api","level":"info","message":"GET /a/1 took 5ms","status":200,"ok":true,"x":null,"d":12.5}"#,
            r#" { "a" : "b" , "n" : -42 , "z" : 0 , "e" : 1e3 , "f" : false , "m" : -0 } "#,
            r#"{"unicode":"héllo ✓ 日本","big":123456789012345678,"neg":-123456789012345678}"#,
            "{}",
        ] {
            assert!(check(line), "not read by the scanner: {line}");
        }
    }

    #[test]
    fn leaves_what_it_does_not_handle_to_the_visitor() {
        for line in [
            r#"{"m":"say \"hi\""}"#,
            r#"{"nested":{"a":1}}"#,
            r#"{"arr":[1]}"#,
            r#"{"a":1,}"#,
            r#"{"a":1"#,
            r#"{"a":1} x"#,
            r#"{"a":tru}"#,
            "{\"a\":\"tab\there\"}",
            r#"{"a":01}"#,
            r#"{"a":1.5.5}"#,
            r#"{"a":1e999}"#,
            r#"["a"]"#,
            "",
        ] {
            assert!(!check(line), "read by the scanner: {line}");
        }
    }

    /// Lines put together from pieces of JSON and of not-quite JSON: the scanner either gives
    /// way or agrees with the visitor to the bit.
    #[test]
    fn agrees_with_the_visitor_on_generated_lines() {
        let keys = [
            "\"a\"",
            "\"message\"",
            "\"k é\"",
            "\"\"",
            "\"a\"",
            "\"x\\\"y\"",
            "a",
            "\"b",
        ];
        let values = [
            "\"v\"",
            "\"\"",
            "\"é ✓\"",
            "\"a\\nb\"",
            "0",
            "-0",
            "7",
            "-7",
            "01",
            "1.5",
            "-2.25e-3",
            "1E5",
            "1e",
            "123456789012345678",
            "1234567890123456789",
            "-9223372036854775808",
            "18446744073709551615",
            "18446744073709551616",
            "1.7976931348623157e308",
            "1e999",
            "0.1",
            ".5",
            "5.",
            "true",
            "false",
            "null",
            "tru",
            "nul",
            "{}",
            "[]",
            "{\"a\":1}",
            "\"\u{1}\"",
            "--1",
            "1-2",
            "+1",
        ];
        let ws = ["", " ", "\t", "\n", "\r\n", "\u{a0}"];
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let (mut read, mut total) = (0, 0);
        for _ in 0..30_000 {
            let mut line = String::from(ws[next(ws.len())]);
            line.push('{');
            for m in 0..next(6) {
                if m > 0 {
                    line.push_str(if next(40) == 0 { ";" } else { "," });
                }
                line.push_str(ws[next(ws.len())]);
                line.push_str(keys[next(keys.len())]);
                line.push_str(ws[next(ws.len())]);
                line.push(if next(40) == 0 { '=' } else { ':' });
                line.push_str(ws[next(ws.len())]);
                line.push_str(values[next(values.len())]);
                line.push_str(ws[next(ws.len())]);
            }
            if next(30) != 0 {
                line.push('}');
            }
            line.push_str(ws[next(ws.len())]);
            if next(50) == 0 {
                line.push('x');
            }
            total += 1;
            read += usize::from(check(&line));
        }
        // Both sides are exercised: many lines read here, many left to the visitor.
        assert!(
            read > total / 10 && read < total * 9 / 10,
            "{read} of {total}"
        );
    }
}
