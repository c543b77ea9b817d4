//! Identifier-like tokens and the per-chunk Bloom filter that indexes them.
//!
//! Finding one request id among a million events must not mean decoding a million events. The
//! processor writes, beside every chunk, a Bloom filter of the chunk's identifier-like tokens
//! (request ids, trace ids, IPs, order numbers: anything with a digit, 4 to 128 characters). A
//! search for such a token reads the filters (a few KiB per 2,000 events) and decodes only the
//! chunks whose filter says "maybe". The byte layout is part of the Redis contract, so it is
//! defined here, with a fixed hash (xxh3), and not left to a crate's internal format.

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Characters that make up a token; anything else separates tokens.
fn is_token_char(c: u8) -> bool {
    TOKEN_CHARS[c as usize] != 0
}

/// What a byte is to the tokenizer: 0 a separator, 1 a token character, 2 a digit (which is a
/// token character too). One load per byte of every line the processor indexes.
const TOKEN_CHARS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = if b.is_ascii_digit() {
            2
        } else if b.is_ascii_alphabetic() || matches!(b, b'_' | b'.' | b':' | b'-') {
            1
        } else {
            0
        };
        c += 1;
    }
    t
};

/// Separator-like characters trimmed from a token's ends (`order-17.` → `order-17`).
#[inline(always)]
fn trim_token(t: &[u8]) -> &[u8] {
    let is_trim = |c: &u8| matches!(c, b'.' | b':' | b'-' | b'_');
    let start = t.iter().position(|c| !is_trim(c)).unwrap_or(t.len());
    let end = t.iter().rposition(|c| !is_trim(c)).map_or(start, |e| e + 1);
    &t[start..end]
}

pub const MIN_TOKEN: usize = 4;
pub const MAX_TOKEN: usize = 128;

/// Whether a token is worth indexing: long enough and containing a digit.
#[inline(always)]
pub fn is_identifier(t: &[u8]) -> bool {
    (MIN_TOKEN..=MAX_TOKEN).contains(&t.len()) && t.iter().any(u8::is_ascii_digit)
}

/// The identifier-like tokens of a text, as they appear (not lower-cased).
pub fn identifier_tokens(text: &str) -> impl Iterator<Item = &str> {
    text.as_bytes()
        .split(|c| !is_token_char(*c))
        .map(trim_token)
        .filter(|t| is_identifier(t))
        // Tokens are ASCII by construction.
        .map(|t| std::str::from_utf8(t).unwrap_or_default())
}

/// Whether `text`, as a search needle, is a single identifier: then a match means "this token
/// occurs", and the Bloom filters can answer it.
pub fn as_single_identifier(text: &str) -> Option<String> {
    let t = text.trim();
    let b = t.as_bytes();
    (b.iter().all(|c| is_token_char(*c)) && trim_token(b) == b && is_identifier(b))
        .then(|| t.to_ascii_lowercase())
}

/// Calls `f` with the identifier-like tokens of a canonical JSON line, as bytes in their
/// original case. Works on the raw line (no JSON parse): a JSON escape (`\n`, `\"`, `\u00e9`) is
/// a separator, so a message `"a\nreq-42"` yields `req-42`, as the decoded text would. Keys and
/// the timestamp yield tokens too; the index may hold more than a search looks for, never less.
pub fn json_line_tokens(line: &[u8], mut f: impl FnMut(&[u8])) {
    // Only a backslash makes a token depend on what precedes it (an escape is skipped whole);
    // most lines have none and take the quicker walk.
    if memchr::memchr(b'\\', line).is_none() {
        return plain_line_tokens(line, f);
    }
    let mut i = 0;
    let mut start = 0;
    // Whether line[start..i] holds a digit: trimming only takes separators off the ends, so a
    // piece without one (a key, a word) can never be an identifier and is skipped unexamined.
    let mut digit = false;
    while i < line.len() {
        let c = line[i];
        match TOKEN_CHARS[c as usize] {
            0 => {}
            kind => {
                digit |= kind == 2;
                i += 1;
                continue;
            }
        }
        if digit {
            emit_token(&line[start..i], &mut f);
            digit = false;
        }
        i += match (c, line.get(i + 1)) {
            (b'\\', Some(b'u')) => 6,
            (b'\\', Some(_)) => 2,
            _ => 1,
        };
        start = i;
    }
    if digit && start < line.len() {
        emit_token(&line[start..], &mut f);
    }
}

/// [`json_line_tokens`] of a line without a backslash, where a token is simply a maximal run of
/// token characters: only runs holding a digit can be identifiers, so it jumps from digit to
/// digit (eight bytes at a time) and widens each to its run, instead of walking every byte
/// through the tokenizer.
fn plain_line_tokens(line: &[u8], mut f: impl FnMut(&[u8])) {
    let mut i = 0;
    while let Some(d) = next_digit(line, i) {
        // `i` is the end of the previous run (a separator) or 0: no run reaches back past it.
        let mut start = d;
        while start > i && is_token_char(line[start - 1]) {
            start -= 1;
        }
        let mut end = d + 1;
        while end < line.len() && is_token_char(line[end]) {
            end += 1;
        }
        emit_token(&line[start..end], &mut f);
        i = end;
    }
}

/// Position of the first ASCII digit at or after `from`.
// This and the two checks below run per digit run of every indexed line: inlined, the token
// scan takes ~200 fewer instructions per event (callgrind).
#[inline(always)]
fn next_digit(b: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::MAX / 255;
    let mut i = from;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // Per byte, no carries between bytes: the high bit is set iff b'0' <= byte <= b'9'
        // ("has a byte between m and n", Bit Twiddling Hacks).
        let low = x & (ONES * 127);
        let below_colon = (ONES * (127 + u64::from(b':'))) - low;
        let above_slash = low + ONES * (127 - u64::from(b'/'));
        let found = below_colon & above_slash & !x & (ONES << 7);
        if found != 0 {
            return Some(i + found.trailing_zeros() as usize / 8);
        }
        i += 8;
    }
    b.get(i..)?
        .iter()
        .position(u8::is_ascii_digit)
        .map(|p| i + p)
}

fn emit_token(raw: &[u8], f: &mut impl FnMut(&[u8])) {
    if raw.len() < MIN_TOKEN {
        return;
    }
    let t = trim_token(raw);
    if is_identifier(t) {
        f(t);
    }
}

/// [`json_line_tokens`] of a canonical line, without its leading `"ts"` value: a timestamp is
/// unique per event and nobody searches for one by token, so indexing it would only double the
/// size of every filter.
// Kept out of its caller: inlined into the processor's planner, it crowded out the planner's
// own map lookups (more instructions per event in all, by callgrind).
#[inline(never)]
pub fn canonical_line_tokens(line: &[u8], f: impl FnMut(&[u8])) {
    const TS: &[u8] = b"{\"ts\":\"";
    let rest = line
        .strip_prefix(TS)
        .and_then(|r| r.iter().position(|&c| c == b'"').map(|end| &r[end + 1..]))
        .unwrap_or(line);
    json_line_tokens(rest, f)
}

/// The two base hashes of a token, lower-cased.
#[inline]
pub fn token_hashes(token: &[u8]) -> (u64, u64) {
    let n = token.len().min(MAX_TOKEN);
    // Most tokens (hex ids, IPs, numbers) are lower-case already: hash them where they are.
    if !token[..n].iter().any(u8::is_ascii_uppercase) {
        let t = &token[..n];
        return (xxh3_64_with_seed(t, 0), xxh3_64_with_seed(t, 1) | 1);
    }
    let mut buf = [0u8; MAX_TOKEN];
    for (d, s) in buf.iter_mut().zip(&token[..n]) {
        *d = s.to_ascii_lowercase();
    }
    let t = &buf[..n];
    (xxh3_64_with_seed(t, 0), xxh3_64_with_seed(t, 1) | 1)
}

/// Hash functions per token.
const K: u32 = 7;
/// Bits per expected token, for about 1 % false positives at K = 7.
const BITS_PER_TOKEN: usize = 10;

/// A Bloom filter over lower-cased tokens. Layout: `[K][bits...]`, bits little-endian within
/// each byte; positions by double hashing of xxh3 with seeds 0 and 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bloom {
    bytes: Vec<u8>,
}

impl Bloom {
    /// A filter sized for `expected` tokens.
    pub fn with_capacity(expected: usize) -> Bloom {
        let bits = (expected.max(8) * BITS_PER_TOKEN).next_power_of_two();
        let mut bytes = vec![0u8; 1 + bits / 8];
        bytes[0] = K as u8;
        Bloom { bytes }
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Option<Bloom> {
        let bits = (bytes.len().checked_sub(1)?) * 8;
        (bytes.first().is_some_and(|k| (1..=16).contains(k)) && bits.is_power_of_two())
            .then_some(Bloom { bytes })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// log2 of the number of bits (the filter's size is always a power of two).
    pub fn bits_log2(&self) -> u8 {
        ((self.bytes.len() - 1) * 8).trailing_zeros() as u8
    }

    /// Redis bit offsets (`GETBIT`/`BITFIELD` numbering: most significant bit first) of the bits
    /// `token` sets in a filter of `2^bits_log2` bits stored as [`Bloom::as_bytes`]. A reader can
    /// ask Redis for these few bits instead of fetching the whole filter.
    pub fn redis_bit_offsets(bits_log2: u8, token: &str) -> Vec<u64> {
        let mask = (1u64 << bits_log2) - 1;
        let (h1, h2) = token_hashes(token.as_bytes());
        (0..u64::from(K))
            .map(|i| {
                let p = h1.wrapping_add(i.wrapping_mul(h2)) & mask;
                (1 + p / 8) * 8 + (7 - p % 8)
            })
            .collect()
    }

    fn positions(&self, (h1, h2): (u64, u64)) -> impl Iterator<Item = usize> + use<> {
        let mask = (self.bytes.len() - 1) * 8 - 1;
        let k = u64::from(self.bytes[0]);
        (0..k).map(move |i| (h1.wrapping_add(i.wrapping_mul(h2)) as usize) & mask)
    }

    /// Adds a token by its [`token_hashes`].
    pub fn insert_hashes(&mut self, hashes: (u64, u64)) {
        for p in self.positions(hashes) {
            self.bytes[1 + p / 8] |= 1 << (p % 8);
        }
    }

    pub fn insert(&mut self, token: &str) {
        self.insert_hashes(token_hashes(token.as_bytes()));
    }

    /// `false` means certainly absent (case-insensitive).
    pub fn may_contain(&self, token: &str) -> bool {
        self.positions(token_hashes(token.as_bytes()))
            .all(|p| self.bytes[1 + p / 8] & (1 << (p % 8)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_tokens_are_ids_not_words() {
        let toks: Vec<&str> = identifier_tokens(
            "GET /api/items/42 from 10.0.0.17 req=4bf92f35-77b3 user alice order A-17. took 350ms",
        )
        .collect();
        assert_eq!(toks, vec!["10.0.0.17", "4bf92f35-77b3", "A-17", "350ms"]);
    }

    #[test]
    fn single_identifier_needles() {
        assert_eq!(as_single_identifier(" Req-8F3A "), Some("req-8f3a".into()));
        assert_eq!(as_single_identifier("timeout"), None);
        assert_eq!(as_single_identifier("A-17 failed"), None);
        assert_eq!(as_single_identifier("-A17"), None);
        assert_eq!(as_single_identifier("abc"), None);
    }

    #[test]
    fn json_lines_tokenise_like_their_decoded_text() {
        let line = br#"{"ts":"2026-11-26T11:48:35Z","message":"a\nreq-42 \"ID-9001\" caf\u00e9A1B2","fields":{"ip":"10.1.2.3","n":12345}}"#;
        let mut toks = Vec::new();
        json_line_tokens(line, |t| toks.push(String::from_utf8(t.to_vec()).unwrap()));
        for want in ["req-42", "ID-9001", "A1B2", "10.1.2.3", "12345"] {
            assert!(
                toks.iter().any(|t| t == want),
                "{want} missing from {toks:?}"
            );
        }
        assert!(!toks.iter().any(|t| t.starts_with("nreq")), "{toks:?}");
    }

    /// The tokenizer as first written (no table, no digit tracking), to compare with.
    fn reference_tokens(line: &[u8]) -> Vec<Vec<u8>> {
        let is_tc = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'-');
        let mut out = Vec::new();
        let mut emit = |raw: &[u8]| {
            let t = trim_token(raw);
            if is_identifier(t) {
                out.push(t.to_vec());
            }
        };
        let (mut i, mut start) = (0, 0);
        while i < line.len() {
            let c = line[i];
            if is_tc(c) {
                i += 1;
                continue;
            }
            emit(&line[start..i]);
            i += match (c, line.get(i + 1)) {
                (b'\\', Some(b'u')) => 6,
                (b'\\', Some(_)) => 2,
                _ => 1,
            };
            start = i;
        }
        if start < line.len() {
            emit(&line[start..]);
        }
        out
    }

    #[test]
    fn the_tokenizer_finds_what_the_reference_finds() {
        let mut lines: Vec<Vec<u8>> = vec![
            br#"{"ts":"2026-11-26T11:48:35Z","message":"a\nreq-42 \"ID-9001\" caf\u00e9A1B2","fields":{"ip":"10.1.2.3","n":12345}}"#.to_vec(),
            b"-1-2-3- __a9__ ..:: abc1 ab1 x\\u1234 tail9".to_vec(),
            b"\\u12".to_vec(),
            b"abc\\".to_vec(),
            b"".to_vec(),
        ];
        // Pseudo-random lines over an alphabet of token characters, separators and escapes.
        let alphabet = b"aZ09-_.:\\u \",{}";
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2000 {
            let mut l = Vec::new();
            // A step per line too: a line of length 0 must not freeze the generator.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for _ in 0..(x % 64) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                l.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            lines.push(l);
        }
        // Without backslashes (the quicker walk), over every byte value too.
        let plain = b"aZ09-_.:/ \",{}";
        for round in 0..4000 {
            let mut l = Vec::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for _ in 0..(x % 80) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                l.push(match round % 2 {
                    0 => plain[(x % plain.len() as u64) as usize],
                    _ => (x % 256) as u8,
                });
            }
            l.retain(|&c| c != b'\\');
            lines.push(l);
        }
        for l in &lines {
            let mut got = Vec::new();
            json_line_tokens(l, |t| got.push(t.to_vec()));
            assert_eq!(got, reference_tokens(l), "{}", String::from_utf8_lossy(l));
        }
    }

    #[test]
    fn redis_offsets_point_at_the_set_bits() {
        let mut b = Bloom::with_capacity(100);
        b.insert("req-123");
        let bytes = b.as_bytes();
        for off in Bloom::redis_bit_offsets(b.bits_log2(), "REQ-123") {
            let byte = bytes[(off / 8) as usize];
            assert_eq!((byte >> (7 - off % 8)) & 1, 1, "offset {off}");
        }
        assert!(Bloom::redis_bit_offsets(b.bits_log2(), "other-999").len() == 7);
    }

    #[test]
    fn canonical_lines_skip_the_timestamp() {
        let mut toks = Vec::new();
        canonical_line_tokens(
            br#"{"ts":"2026-11-26T11:48:35.123Z","service":"api","message":"req-42"}"#,
            |t| toks.push(String::from_utf8(t.to_vec()).unwrap()),
        );
        assert_eq!(toks, vec!["req-42"]);
    }

    #[test]
    fn token_hashes_are_of_the_lower_cased_token() {
        for t in [
            &b"req-42"[..],
            b"REQ-42",
            b"Req-42",
            b"10.0.0.1",
            &[b'A'; 200],
        ] {
            let lower = t.to_ascii_lowercase();
            let lower = &lower[..lower.len().min(MAX_TOKEN)];
            assert_eq!(
                token_hashes(t),
                (xxh3_64_with_seed(lower, 0), xxh3_64_with_seed(lower, 1) | 1)
            );
        }
        assert_eq!(token_hashes(b"ABC1"), token_hashes(b"abc1"));
    }

    #[test]
    fn bloom_is_case_insensitive() {
        let mut b = Bloom::with_capacity(10);
        b.insert_hashes(token_hashes(b"Req-ABC1"));
        assert!(b.may_contain("req-abc1"));
    }

    #[test]
    fn bloom_has_no_false_negatives_and_few_false_positives() {
        let mut b = Bloom::with_capacity(2000);
        for i in 0..2000 {
            b.insert(&format!("req-{i}"));
        }
        for i in 0..2000 {
            assert!(b.may_contain(&format!("req-{i}")));
        }
        let fp = (0..10_000)
            .filter(|i| b.may_contain(&format!("other-{i}")))
            .count();
        assert!(fp < 300, "{fp} false positives in 10,000");
        let round = Bloom::from_bytes(b.as_bytes().to_vec()).unwrap();
        assert!(round.may_contain("req-7"));
        assert!(Bloom::from_bytes(vec![0, 1, 2]).is_none());
    }
}
