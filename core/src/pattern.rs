//! Message templates: the deterministic half of pattern mining.
//!
//! The processor masks the variable parts of every message (numbers, hex, UUIDs, IPs, durations,
//! quoted values) and counts the resulting template per minute, service and level. Masking is a
//! pure function, so every processor replica agrees on a template's id without sharing state,
//! and a redelivery counts nothing twice. The query service then clusters the masked templates
//! Drain-style (similar lines whose remaining differences are words, such as user names), which
//! needs no state in the processors at all.

use xxhash_rust::xxh3::xxh3_64;

pub const NUM: &str = "<num>";
pub const HEX: &str = "<hex>";
pub const UUID: &str = "<uuid>";
pub const IP: &str = "<ip>";
pub const DURATION: &str = "<duration>";
pub const QUOTED: &str = "<quoted>";
/// What Drain puts where clustered templates differ.
pub const WILDCARD: &str = "<*>";

/// Longest message prefix that is masked; the rest of a huge message does not change its shape.
const MAX_MASKED_BYTES: usize = 1024;
/// Most tokens in a template.
const MAX_TOKENS: usize = 64;

/// The template of a message: whitespace-separated tokens with variable parts masked.
pub fn mask(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(256));
    mask_into(message, &mut out);
    out
}

/// The id of a message's template, masked into `buf` (cleared first), which the caller reuses
/// from one message to the next: no allocation per message once `buf` has grown.
pub fn message_template_id(message: &str, buf: &mut String) -> u64 {
    buf.clear();
    mask_into(message, buf);
    template_id(buf)
}

/// [`mask`], appending to `out`.
pub fn mask_into(message: &str, out: &mut String) {
    // A message of at most MAX_MASKED_BYTES bytes has at most that many characters.
    let msg = match message.len() > MAX_MASKED_BYTES {
        true => match message.char_indices().nth(MAX_MASKED_BYTES) {
            Some((i, _)) => &message[..i],
            None => message,
        },
        false => message,
    };
    let base = out.len();
    let mut rest = msg.trim_start();
    let mut tokens = 0;
    while !rest.is_empty() && tokens < MAX_TOKENS {
        if out.len() > base {
            out.push(' ');
        }
        tokens += 1;
        // A quoted value, possibly with spaces inside.
        let first = rest.as_bytes()[0];
        if (first == b'"' || first == b'\'')
            && let Some(end) = rest[1..].find(first as char)
        {
            out.push_str(QUOTED);
            // What sticks to the closing quote (`"x":`, `"x",`) stays with it.
            let after = &rest[end + 2..];
            let stuck = after.find(char::is_whitespace).unwrap_or(after.len());
            mask_token(&after[..stuck], out);
            rest = after[stuck..].trim_start();
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        mask_token(&rest[..end], out);
        rest = rest[end..].trim_start();
    }
}

/// Stable id of a template.
pub fn template_id(template: &str) -> u64 {
    xxh3_64(template.as_bytes())
}

fn mask_token(token: &str, out: &mut String) {
    if let Some(m) = classify(token) {
        out.push_str(m);
        return;
    }
    // key=value, /a/b/42, host:port, (x), [y], a,b: mask each piece between delimiters.
    let mut start = 0;
    for (i, c) in token.char_indices() {
        if matches!(
            c,
            '=' | '/'
                | ','
                | ';'
                | '('
                | ')'
                | '['
                | ']'
                | '{'
                | '}'
                | '<'
                | '>'
                | '@'
                | '#'
                | '&'
                | '?'
                | '|'
        ) {
            mask_piece(&token[start..i], out);
            out.push(c);
            start = i + c.len_utf8();
        }
    }
    mask_piece(&token[start..], out);
}

fn mask_piece(piece: &str, out: &mut String) {
    if piece.is_empty() {
        return;
    }
    // Trailing punctuation stays outside the mask: "took 5ms." → "took <duration>."
    let core_end = piece.trim_end_matches(['.', ':', '!', '"', '\'']).len();
    let (core, tail) = piece.split_at(core_end);
    let core_start = core.len() - core.trim_start_matches(['"', '\'']).len();
    let (lead, core) = core.split_at(core_start);
    out.push_str(lead);
    if let Some(m) = classify(core) {
        out.push_str(m);
    } else if core.contains(['-', '_', '.', ':']) && core.bytes().any(|b| b.is_ascii_digit()) {
        // req-8f3a2c, worker_12, v1.2.3: mask the variable sub-pieces.
        let mut s = 0;
        for (i, c) in core.char_indices() {
            if matches!(c, '-' | '_' | '.' | ':') {
                let sub = &core[s..i];
                out.push_str(classify(sub).unwrap_or(sub));
                out.push(c);
                s = i + 1;
            }
        }
        let sub = &core[s..];
        out.push_str(classify(sub).unwrap_or(sub));
    } else {
        out.push_str(core);
    }
    out.push_str(tail);
}

/// The mask for a whole piece, if it is variable.
pub fn classify(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        return None;
    }
    // Every class but a UUID (36 bytes) and an IPv6 address (colons) holds a digit: most words
    // of most messages are settled by this one scan.
    if s.len() != 36 && !s.bytes().any(|b| b.is_ascii_digit() || b == b':') {
        return None;
    }
    if is_uuid(s) {
        Some(UUID)
    } else if is_ip(s) {
        Some(IP)
    } else if is_duration(s) {
        Some(DURATION)
    } else if is_number(s) {
        Some(NUM)
    } else if is_hex(s) {
        Some(HEX)
    } else {
        None
    }
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_ip(s: &str) -> bool {
    // IPv4, optionally with a port.
    let (addr, port) = match s.rsplit_once(':') {
        Some((a, p)) if a.contains('.') => (a, Some(p)),
        _ => (s, None),
    };
    // Four dot-separated numbers up to 255 (counted without collecting the pieces: this runs
    // for every piece of every message).
    let v4 = addr.split('.').count() == 4
        && addr
            .split('.')
            .all(|p| !p.is_empty() && p.len() <= 3 && p.parse::<u16>().is_ok_and(|n| n <= 255));
    if v4 {
        return port.is_none_or(|p| p.parse::<u16>().is_ok());
    }
    // IPv6: hex groups and colons, at least two colons.
    s.matches(':').count() >= 2
        && s.len() >= 3
        && s.bytes()
            .all(|c| c.is_ascii_hexdigit() || c == b':' || c == b'.')
        && s.bytes().any(|c| c.is_ascii_hexdigit())
}

fn is_number(s: &str) -> bool {
    let s = s.strip_prefix(['-', '+']).unwrap_or(s);
    let s = s.strip_suffix('%').unwrap_or(s);
    !s.is_empty()
        && s.bytes().next().is_some_and(|c| c.is_ascii_digit())
        && s.bytes()
            .all(|c| c.is_ascii_digit() || c == b'.' || c == b',')
        && s.matches('.').count() <= 1
}

fn is_duration(s: &str) -> bool {
    for unit in ["ns", "us", "µs", "ms", "s", "m", "h", "d"] {
        if let Some(n) = s.strip_suffix(unit)
            && is_number(n)
        {
            return true;
        }
    }
    // Go-style compound durations: 1h30m, 2m3.5s
    let mut rest = s;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ms", "h", "m", "s"]
            .into_iter()
            .find(|u| rest.starts_with(u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
        parts += 1;
    }
    parts >= 2
}

fn is_hex(s: &str) -> bool {
    let h = s.strip_prefix("0x").unwrap_or(s);
    if h.len() != s.len() {
        return !h.is_empty() && h.bytes().all(|c| c.is_ascii_hexdigit());
    }
    h.len() >= 6
        && h.bytes().all(|c| c.is_ascii_hexdigit())
        && h.bytes().any(|c| c.is_ascii_digit())
        && h.bytes().any(|c| c.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_each_token_class() {
        assert_eq!(mask("took 42 items"), "took <num> items");
        assert_eq!(mask("ratio -3.5 and 99%"), "ratio <num> and <num>");
        assert_eq!(mask("commit 3f9a2b7c pushed"), "commit <hex> pushed");
        assert_eq!(mask("addr 0x7ffe12"), "addr <hex>");
        assert_eq!(
            mask("order 123e4567-e89b-12d3-a456-426614174000 placed"),
            "order <uuid> placed"
        );
        assert_eq!(
            mask("from 10.0.0.17 and 192.168.1.1:8080"),
            "from <ip> and <ip>"
        );
        assert_eq!(mask("peer fe80::1ff:fe23:4567:890a"), "peer <ip>");
        assert_eq!(
            mask("took 350ms, then 1.5s, then 1h30m"),
            "took <duration>, then <duration>, then <duration>"
        );
        assert_eq!(
            mask(r#"file "/etc/a b.conf" missing"#),
            "file <quoted> missing"
        );
        assert_eq!(mask("user 'bob' denied"), "user <quoted> denied");
        assert_eq!(mask(r#"open "/a b": denied"#), "open <quoted>: denied");
    }

    #[test]
    fn masks_inside_tokens() {
        assert_eq!(
            mask("GET /api/items/42?x=7"),
            "GET /api/items/<num>?x=<num>"
        );
        assert_eq!(mask("user_id=123 status=200"), "user_id=<num> status=<num>");
        assert_eq!(mask("request req-8f3a2c done."), "request req-<hex> done.");
        assert_eq!(mask("worker_12 started"), "worker_<num> started");
        assert_eq!(mask("(attempt 3/5)"), "(attempt <num>/<num>)");
    }

    #[test]
    fn words_stay_words() {
        assert_eq!(mask("cache miss for decade"), "cache miss for decade");
        assert_eq!(mask("  spaced   out  "), "spaced out");
        assert_eq!(mask(""), "");
    }

    #[test]
    fn mask_into_a_reused_buffer_gives_the_same_ids() {
        let mut buf = String::from("left over");
        for m in [
            "took 5ms",
            "GET /a/42 from 10.0.0.1",
            "",
            "  x  ",
            "user 'bob' denied",
        ] {
            assert_eq!(message_template_id(m, &mut buf), template_id(&mask(m)));
            assert_eq!(buf, mask(m));
        }
    }

    #[test]
    fn words_without_digits_are_classified_as_before() {
        // The early exit of `classify` must not change a class: the letter-only UUID and IPv6
        // address still are ones, and digit-free words still are none.
        assert_eq!(classify("abcdefab-abcd-abcd-abcd-abcdefabcdef"), Some(UUID));
        assert_eq!(classify("fe80::abcd"), Some(IP));
        assert_eq!(classify("dead::beef"), Some(IP));
        assert_eq!(classify("ms"), None);
        assert_eq!(classify("0x"), None);
        assert_eq!(classify("0xab"), Some(HEX));
        assert_eq!(classify("h"), None);
        assert_eq!(classify("completed"), None);
        assert_eq!(classify("deadbeef"), None);
        assert_eq!(mask("é".repeat(2000).as_str()).chars().count(), 1024);
    }

    #[test]
    fn same_shape_same_id() {
        assert_eq!(
            template_id(&mask("took 5ms")),
            template_id(&mask("took 900ms"))
        );
        assert_ne!(
            template_id(&mask("took 5ms")),
            template_id(&mask("slept 5ms"))
        );
    }
}
