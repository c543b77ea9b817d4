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
    let mut rest = trim_ws_start(msg);
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
            let (stuck, plain) = find_ws(after);
            mask_word(&after[..stuck], plain, out);
            rest = trim_ws_start(&after[stuck..]);
            continue;
        }
        let (end, plain) = find_ws(rest);
        mask_word(&rest[..end], plain, out);
        rest = trim_ws_start(&rest[end..]);
    }
}

/// [`mask_token`], or the token as it is when `plain` says it holds no digit and no colon and it
/// is shorter than a UUID: then neither it nor any piece of it is variable (every class needs a
/// digit, but a UUID, 36 bytes, and an IPv6 address, colons), and masking returns it unchanged.
/// Most words of most messages are such.
// Inlined, with `find_ws` and `trim_ws_start`, into the loop over a message's words: ~400
// fewer instructions per event in the processor (callgrind), where the compiler would not.
#[inline(always)]
fn mask_word(token: &str, plain: bool, out: &mut String) {
    if plain && token.len() < 36 {
        out.push_str(token);
    } else {
        mask_token(token, out);
    }
}

/// What a byte is to [`find_ws`]: ASCII whitespace (as `char::is_whitespace` has it), a digit or
/// colon, or a byte of a non-ASCII character.
const WS: u8 = 1;
const DIGIT_OR_COLON: u8 = 2;
const NON_ASCII: u8 = 4;
const WORD_BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = if matches!(c, b' ' | b'\t'..=b'\r') {
            WS
        } else if c.is_ascii_digit() || c == b':' {
            DIGIT_OR_COLON
        } else if c >= 0x80 {
            NON_ASCII
        } else {
            0
        };
        i += 1;
    }
    t
};

/// `s.find(char::is_whitespace).unwrap_or(s.len())`, byte by byte while the text is ASCII, and
/// whether `s[..that]` is free of digits and colons.
#[inline(always)]
fn find_ws(s: &str) -> (usize, bool) {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    // Per byte, exact, no carries between bytes: the high bit is set iff lo < byte < hi and the
    // byte is ASCII ("has a byte between m and n", Bit Twiddling Hacks).
    let between = |x: u64, lo: u64, hi: u64| {
        let low = x & (ONES * 127);
        (ONES * (127 + hi) - low) & (low + ONES * (127 - lo)) & !x & HIGH
    };
    let b = s.as_bytes();
    let mut i = 0;
    let mut seen = 0;
    // Eight bytes at a time while they are ASCII and hold no whitespace.
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let ws = between(x, 8, 14) | between(x, 0x1f, 0x21);
        let digit_or_colon = between(x, 0x2f, 0x3b);
        let stop = ws | (x & HIGH);
        if stop == 0 {
            seen |= u8::from(digit_or_colon != 0) * DIGIT_OR_COLON;
            i += 8;
            continue;
        }
        // The bytes before the first stop, then that byte, the slow way.
        let at = stop.trailing_zeros() as usize / 8;
        let before = (1u64 << (8 * at)) - 1;
        seen |= u8::from(digit_or_colon & before != 0) * DIGIT_OR_COLON;
        i += at;
        break;
    }
    while let Some(&c) = b.get(i) {
        let kind = WORD_BYTES[c as usize];
        if kind & NON_ASCII == 0 {
            if kind == WS {
                return (i, seen == 0);
            }
            seen |= kind;
            i += 1;
        } else {
            // `i` is a character boundary: it only ever steps over whole characters.
            match s[i..].chars().next() {
                Some(ch) if ch.is_whitespace() => return (i, seen == 0),
                Some(ch) => i += ch.len_utf8(),
                None => break,
            }
        }
    }
    (b.len(), seen == 0)
}

/// `s.trim_start()`, byte by byte while the text is ASCII.
#[inline(always)]
fn trim_ws_start(s: &str) -> &str {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c < 0x80 {
            if !matches!(c, b' ' | b'\t'..=b'\r') {
                break;
            }
            i += 1;
        } else {
            match s[i..].chars().next() {
                Some(ch) if ch.is_whitespace() => i += ch.len_utf8(),
                _ => break,
            }
        }
    }
    &s[i..]
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
    // key=value, /a/b/42, host:port, (x), [y], a,b: mask each piece between delimiters (all
    // ASCII, so a byte equal to one is that character).
    let b = token.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        if matches!(
            c,
            b'=' | b'/'
                | b','
                | b';'
                | b'('
                | b')'
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b'<'
                | b'>'
                | b'@'
                | b'#'
                | b'&'
                | b'?'
                | b'|'
        ) {
            mask_piece(&token[start..i], out);
            out.push(char::from(c));
            start = i + 1;
        }
    }
    mask_piece(&token[start..], out);
}

#[inline]
fn mask_piece(piece: &str, out: &mut String) {
    if piece.is_empty() {
        return;
    }
    // Trailing punctuation stays outside the mask: "took 5ms." → "took <duration>.". The
    // characters trimmed are ASCII, so trimming bytes is trimming characters.
    let b = piece.as_bytes();
    let mut core_end = b.len();
    while core_end > 0 && matches!(b[core_end - 1], b'.' | b':' | b'!' | b'"' | b'\'') {
        core_end -= 1;
    }
    let mut core_start = 0;
    while core_start < core_end && matches!(b[core_start], b'"' | b'\'') {
        core_start += 1;
    }
    let (lead, core, tail) = (
        &piece[..core_start],
        &piece[core_start..core_end],
        &piece[core_end..],
    );
    out.push_str(lead);
    let cb = core.as_bytes();
    if let Some(m) = classify(core) {
        out.push_str(m);
    } else if is_dashed_hex(core) {
        out.push_str(HEX);
    } else if cb.iter().any(|c| matches!(c, b'-' | b'_' | b'.' | b':'))
        && cb.iter().any(u8::is_ascii_digit)
    {
        // req-8f3a2c, worker_12, v1.2.3: mask the variable sub-pieces.
        let mut s = 0;
        for (i, &c) in cb.iter().enumerate() {
            if matches!(c, b'-' | b'_' | b'.' | b':') {
                let sub = &core[s..i];
                out.push_str(classify(sub).unwrap_or(sub));
                out.push(char::from(c));
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
#[inline]
pub fn classify(s: &str) -> Option<&'static str> {
    let b = s.as_bytes();
    let last = *b.last()?;
    // One scan says which classes the piece could belong to: each test below runs only if every
    // byte is one its class can hold (what each test accepts is a subset of its set; see
    // `CLASS`), so a piece is settled in one pass over its bytes instead of five.
    let (mut all, mut any) = (u8::MAX, 0u8);
    for &c in b {
        let f = CLASS[c as usize];
        all &= f;
        any |= f;
    }
    // Every class but a UUID (36 bytes) and an IPv6 address (colons) holds a digit: most words
    // of most messages are settled here.
    if b.len() != 36 && any & (C_DIGIT | C_COLON) == 0 {
        return None;
    }
    if is_uuid(s) {
        Some(UUID)
    // IPv4 has dots, IPv6 colons.
    } else if all & C_IP != 0 && any & (C_DOT | C_COLON) != 0 && is_ip(s) {
        Some(IP)
    // Every unit ends in one of these.
    } else if all & C_DURATION != 0 && matches!(last, b's' | b'm' | b'h' | b'd') && is_duration(s) {
        Some(DURATION)
    } else if all & C_NUMBER != 0 && is_number(s) {
        Some(NUM)
    } else if (all & C_HEX != 0 || b.starts_with(b"0x")) && is_hex(s) {
        Some(HEX)
    } else {
        None
    }
}

const C_DIGIT: u8 = 1;
const C_COLON: u8 = 2;
const C_DOT: u8 = 4;
/// What `is_ip` accepts: digits, dots, colons, `+` (`str::parse::<u16>` takes a sign), hex.
const C_IP: u8 = 8;
/// What `is_duration` accepts: a number's bytes and the units' (`µ` is 0xC2 0xB5).
const C_DURATION: u8 = 16;
/// What `is_number` accepts: digits, `.`, `,`, a sign, `%`.
const C_NUMBER: u8 = 32;
const C_HEX: u8 = 64;

/// The classes a byte may belong to (flags above).
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let mut f = 0;
        if c.is_ascii_digit() {
            f |= C_DIGIT | C_IP | C_DURATION | C_NUMBER | C_HEX;
        }
        if c.is_ascii_hexdigit() {
            f |= C_IP | C_HEX;
        }
        match c {
            b':' => f |= C_COLON | C_IP,
            b'.' => f |= C_DOT | C_IP | C_DURATION | C_NUMBER,
            b'+' => f |= C_IP | C_DURATION | C_NUMBER,
            b',' | b'-' | b'%' => f |= C_DURATION | C_NUMBER,
            b'n' | b's' | b'u' | b'm' | b'h' | b'd' | 0xC2 | 0xB5 => f |= C_DURATION,
            _ => {}
        }
        t[i] = f;
        i += 1;
    }
    t
};

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_ip(s: &str) -> bool {
    let b = s.as_bytes();
    // IPv4, optionally with a port.
    // Pieces are short: a plain loop, not `memchr`'s set-up.
    let (addr, port) = match b.iter().rposition(|&c| c == b':') {
        Some(i) if b[..i].contains(&b'.') => (&b[..i], Some(&s[i + 1..])),
        _ => (b, None),
    };
    // Four dot-separated numbers up to 255 (`str::parse::<u16>`, which these bytes replace,
    // takes a leading `+`).
    let octet = |p: &[u8]| {
        let digits = p.strip_prefix(b"+").unwrap_or(p);
        (1..=3).contains(&p.len())
            && !digits.is_empty()
            && digits.iter().all(u8::is_ascii_digit)
            && digits
                .iter()
                .fold(0u16, |n, &c| n * 10 + u16::from(c - b'0'))
                <= 255
    };
    let mut parts = 0;
    let v4 = addr.split(|&c| c == b'.').all(|p| {
        parts += 1;
        parts <= 4 && octet(p)
    }) && parts == 4;
    if v4 {
        return port.is_none_or(|p| p.parse::<u16>().is_ok());
    }
    // IPv6: hex groups and colons, at least two colons.
    b.iter().filter(|&&c| c == b':').count() >= 2
        && s.len() >= 3
        && b.iter()
            .all(|c| c.is_ascii_hexdigit() || *c == b':' || *c == b'.')
        && b.iter().any(u8::is_ascii_hexdigit)
}

fn is_number(s: &str) -> bool {
    let b = s.as_bytes();
    let b = match b.first() {
        Some(b'-' | b'+') => &b[1..],
        _ => b,
    };
    let b = b.strip_suffix(b"%").unwrap_or(b);
    if !b.first().is_some_and(u8::is_ascii_digit) {
        return false;
    }
    let mut dots = 0;
    for &c in b {
        match c {
            b'0'..=b'9' | b',' => {}
            b'.' => dots += 1,
            _ => return false,
        }
    }
    dots <= 1
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

/// Hex groups joined by dashes, such as a transaction id `8f3a9c21-04e7`: one id, not a hex
/// number followed by a word. Each group alone may be too short to be hex (`04e7`), so its
/// pieces would stay literal and every id would be a template of its own. At least 8 hex digits
/// in all, with a digit and a letter among them (`2024-01-15` stays numbers, `dead-beef` words).
fn is_dashed_hex(s: &str) -> bool {
    let b = s.as_bytes();
    let (mut hex_digits, mut groups) = (0usize, 0usize);
    for group in b.split(|&c| c == b'-') {
        if group.is_empty() || !group.iter().all(u8::is_ascii_hexdigit) {
            return false;
        }
        groups += 1;
        hex_digits += group.len();
    }
    // Every byte but the dashes is a hex digit: a letter among them is one of a–f.
    groups >= 2
        && hex_digits >= 8
        && b.iter().any(u8::is_ascii_alphabetic)
        && b.iter().any(u8::is_ascii_digit)
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
mod tests;
