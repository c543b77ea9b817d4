//! Whether bytes are exactly one JSON value, as `serde_json::from_slice::<IgnoredAny>` decides,
//! at a fraction of its cost.
//!
//! The decoder reads a canonical line's head by position and must still refuse a line that is not
//! valid JSON (the forgiving parser gets it). `serde_json`'s `IgnoredAny` did that check for
//! ~16 instructions a byte, a sixth of the processor's work per event; this is the same walk
//! (its `ignore_value` and `end`, step for step: the same grammar, no recursion limit, strings
//! checked for escapes and control characters but not for UTF-8) written for a byte slice, with
//! strings skipped eight bytes at a time. A test compares both on many generated inputs.

/// `true` iff `b` is one JSON value, optionally surrounded by JSON whitespace. `stack` holds the
/// open brackets. The decoder needs only [`is_object_tail`]; this whole-value form is what the
/// tests compare with `serde_json`, walk for walk.
#[cfg(test)]
pub(crate) fn is_one_value(b: &[u8], stack: &mut Vec<u8>) -> bool {
    let mut w = Walk { b, i: 0 };
    stack.clear();
    w.walk(stack, false) && w.peek_ws().is_none()
}

/// `true` iff `b` completes a JSON object whose opening and members up to a value have been
/// read already, the last a string: whether `{"k":"v"` followed by `b` is one JSON value (`b` = `}`, or
/// `,"more":[…]}`, then only whitespace). The decoder reads a canonical line's head by position
/// and checks only the rest here; `stack` holds the open brackets, reused from line to line.
pub(crate) fn is_object_tail(b: &[u8], stack: &mut Vec<u8>) -> bool {
    let mut w = Walk { b, i: 0 };
    stack.clear();
    stack.push(b'{');
    w.walk(stack, true) && w.peek_ws().is_none()
}

struct Walk<'a> {
    b: &'a [u8],
    i: usize,
}

impl Walk<'_> {
    /// The next byte that is not whitespace, not consumed.
    #[inline]
    fn peek_ws(&mut self) -> Option<u8> {
        while let Some(&c) = self.b.get(self.i) {
            if !matches!(c, b' ' | b'\n' | b'\t' | b'\r') {
                return Some(c);
            }
            self.i += 1;
        }
        None
    }

    /// Values until the brackets on `stack` are closed (or one scalar if there are none);
    /// `after_value`: the walk starts right after a value inside the innermost bracket.
    fn walk(&mut self, stack: &mut Vec<u8>, mut after_value: bool) -> bool {
        loop {
            let c = if after_value {
                after_value = false;
                b'"'
            } else {
                let Some(c) = self.peek_ws() else {
                    return false;
                };
                self.i += 1;
                let read = match c {
                    b'n' => self.ident(b"ull"),
                    b't' => self.ident(b"rue"),
                    b'f' => self.ident(b"alse"),
                    b'-' => self.integer(),
                    b'0'..=b'9' => {
                        self.i -= 1;
                        self.integer()
                    }
                    b'"' => self.string(),
                    b'[' | b'{' => {
                        stack.push(c);
                        true
                    }
                    _ => false,
                };
                if !read {
                    return false;
                }
                c
            };
            // After a scalar a comma or a closer may follow; right after an opener, a closer or
            // the first member.
            let mut accept_comma = !matches!(c, b'[' | b'{');
            let Some(mut frame) = stack.last().copied() else {
                return true;
            };
            loop {
                match self.peek_ws() {
                    Some(b',') if accept_comma => {
                        self.i += 1;
                        break;
                    }
                    Some(b']') if frame == b'[' => {}
                    Some(b'}') if frame == b'{' => {}
                    Some(_) if accept_comma => return false,
                    Some(_) => break,
                    None => return false,
                }
                self.i += 1;
                stack.pop();
                match stack.last() {
                    Some(&f) => frame = f,
                    None => return true,
                }
                accept_comma = true;
            }
            if frame == b'{' {
                if self.peek_ws() != Some(b'"') {
                    return false;
                }
                self.i += 1;
                if !self.string() || self.peek_ws() != Some(b':') {
                    return false;
                }
                self.i += 1;
            }
        }
    }

    fn ident(&mut self, rest: &[u8]) -> bool {
        let ok = self.b[self.i..].starts_with(rest);
        self.i += rest.len();
        ok
    }

    /// `0` or `[1-9][0-9]*`, then an optional fraction and exponent.
    #[inline(always)]
    fn integer(&mut self) -> bool {
        match self.b.get(self.i) {
            Some(b'0') => {
                self.i += 1;
                if self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    return false;
                }
            }
            Some(b'1'..=b'9') => {
                self.i += 1;
                self.digits();
            }
            _ => return false,
        }
        if self.b.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return false;
            }
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return false;
            }
        }
        true
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    /// The rest of a string after its opening quote, through its closing quote.
    // A line holds ~15 strings: inlined into the walk, ~400 fewer instructions per line.
    #[inline(always)]
    fn string(&mut self) -> bool {
        loop {
            self.skip_plain();
            let Some(&c) = self.b.get(self.i) else {
                return false;
            };
            self.i += 1;
            match c {
                b'"' => return true,
                b'\\' => {
                    let Some(&e) = self.b.get(self.i) else {
                        return false;
                    };
                    self.i += 1;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                        b'u' => {
                            let Some(hex) = self.b.get(self.i..self.i + 4) else {
                                return false;
                            };
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return false;
                            }
                            self.i += 4;
                        }
                        _ => return false,
                    }
                }
                // A control character.
                _ => return false,
            }
        }
    }

    /// Skips to the next quote, backslash or control character (or the end).
    #[inline]
    fn skip_plain(&mut self) {
        const ONES: u64 = u64::MAX / 255;
        const HIGH: u64 = ONES << 7;
        while let Some(chunk) = self.b.get(self.i..self.i + 8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let x = u64::from_le_bytes(word);
            // A byte below 0x20, or equal to `"` or `\`, sets its high bit here (the classic
            // "has zero byte" test, exact for the lowest such byte, which is all we read).
            let ctrl = x.wrapping_sub(ONES * 0x20) & !x;
            let q = x ^ (ONES * u64::from(b'"'));
            let quote = q.wrapping_sub(ONES) & !q;
            let s = x ^ (ONES * u64::from(b'\\'));
            let slash = s.wrapping_sub(ONES) & !s;
            let found = (ctrl | quote | slash) & HIGH;
            if found != 0 {
                self.i += found.trailing_zeros() as usize / 8;
                return;
            }
            self.i += 8;
        }
        while let Some(&c) = self.b.get(self.i) {
            if c == b'"' || c == b'\\' || c < 0x20 {
                return;
            }
            self.i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IgnoredAny;

    fn serde_says(b: &[u8]) -> bool {
        serde_json::from_slice::<IgnoredAny>(b).is_ok()
    }

    #[test]
    fn agrees_with_serde_json_on_chosen_inputs() {
        let cases: &[&[u8]] = &[
            br#"{"ts":"2026-11-26T11:59:59Z","service":"api","level":"info","message":"m"}"#,
            br#"{"a":{"b":[1,2.5,-3e+7,0,-0.1E2,true,false,null,"x\u00e9\n\"",{}]},"c":[]}"#,
            b" {\"a\" : 1 }\r\n\t",
            b"{}",
            b"[]",
            b"1",
            b"\"s\"",
            b"",
            b"   ",
            b"{",
            b"}",
            b"{,}",
            b"[1,]",
            b"{\"a\":1,}",
            b"{\"a\":1 \"b\":2}",
            b"{\"a\"}",
            b"{\"a\":}",
            b"{1:2}",
            b"[1 2]",
            b"[1]]",
            b"{}x",
            b"{} {}",
            b"01",
            b"-",
            b"-0",
            b"1.",
            b"1.e5",
            b"1e",
            b"1e+",
            b"+1",
            b".5",
            b"nul",
            b"nulll",
            b"tru",
            b"\"\\x\"",
            b"\"\\u12\"",
            b"\"\\u12G4\"",
            b"\"\\uD800\"",
            b"\"a\x01b\"",
            b"\"a\x7fb\"",
            b"\"\xff\xfe\"",
            b"\"unterminated",
            b"\"ends with backslash\\",
            b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
            b"[{\"a\":[{}]}]",
            b"[{\"a\":[{}]]]",
            b"\"a string longer than eight bytes, with \\\"escapes\\\" and a \\u00e9 in it\"",
        ];
        let mut stack = Vec::new();
        for c in cases {
            assert_eq!(
                is_one_value(c, &mut stack),
                serde_says(c),
                "{}",
                String::from_utf8_lossy(c)
            );
        }
        // The check can fail both ways on these.
        assert!(is_one_value(cases[0], &mut stack));
        assert!(!is_one_value(b"{", &mut stack));
    }

    #[test]
    fn agrees_with_serde_json_on_generated_inputs() {
        // Pseudo-random mutations of valid lines, and random strings over JSON's alphabet.
        let base: &[u8] = br#"{"ts":"2026-11-26T11:59:59.5Z","service":"api","level":"info","message":"GET /a/42 in 5ms \"q\" \u00e9","fields":{"n":-12.5e3,"b":true,"z":null,"l":[1,{"k":"v"}],"s":"x\\y"}}"#;
        let alphabet = b"{}[]:,\"\\ \t\n01-+.eEtrufalsn9u\x01\x7fxA";
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let fields_at = base.windows(9).position(|w| w == b",\"fields\"").unwrap();
        let mut stack = Vec::new();
        let (mut valid, mut invalid) = (0, 0);
        let (mut tails_valid, mut tails_invalid) = (0, 0);
        for round in 0..20_000 {
            let input: Vec<u8> = if round % 3 != 1 {
                // Whole lines, and the rest of a line after its message (what the decoder checks).
                let mut l = match round % 3 {
                    0 => base.to_vec(),
                    _ => base[fields_at..].to_vec(),
                };
                for _ in 0..(1 + next() % 3) {
                    let at = (next() % l.len() as u64) as usize;
                    let c = alphabet[(next() % alphabet.len() as u64) as usize];
                    match next() % 3 {
                        0 => l[at] = c,
                        1 => l.insert(at, c),
                        _ => {
                            l.remove(at);
                        }
                    }
                }
                l
            } else {
                (0..next() % 24)
                    .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                    .collect()
            };
            // The same input as the rest of an object whose first member has been read.
            let mut object = b"{\"k\":\"v\"".to_vec();
            object.extend_from_slice(&input);
            let tail_ok = serde_says(&object);
            assert_eq!(
                is_object_tail(&input, &mut stack),
                tail_ok,
                "{}",
                String::from_utf8_lossy(&object)
            );
            if tail_ok {
                tails_valid += 1;
            } else {
                tails_invalid += 1;
            }
            let want = serde_says(&input);
            assert_eq!(
                is_one_value(&input, &mut stack),
                want,
                "{}",
                String::from_utf8_lossy(&input)
            );
            if want {
                valid += 1;
            } else {
                invalid += 1;
            }
        }
        // Both answers are exercised.
        assert!(
            valid > 1000 && invalid > 1000,
            "{valid} valid, {invalid} invalid"
        );
        assert!(
            tails_valid > 500 && tails_invalid > 500,
            "{tails_valid} valid, {tails_invalid} invalid tails"
        );
    }
}
