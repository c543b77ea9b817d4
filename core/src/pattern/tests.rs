//! The masking's tests, with the former masking kept as the oracle the faster one is compared with.

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
    // An id of dashed hex groups is one id, whatever its groups hold.
    assert_eq!(
        mask("payment 1a2b3c4d-0e0f declined"),
        "payment <hex> declined"
    );
    assert_eq!(
        mask("payment 99aa0012-4321 declined"),
        "payment <hex> declined"
    );
    assert_eq!(mask("txn=7f3a-9c21-04e7,"), "txn=<hex>,");
    // Not ids: a date, words, too few digits.
    assert_eq!(mask("on 2024-01-15"), "on <num>-<num>-<num>");
    assert_eq!(mask("dead-beef-cafe"), "dead-beef-cafe");
    assert_eq!(mask("a1-b2"), "a1-b2");
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

/// The masking as it was before it worked on bytes, to compare with.
mod reference {
    use super::super::*;

    pub(super) fn is_ip(s: &str) -> bool {
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

    pub(super) fn is_number(s: &str) -> bool {
        let s = s.strip_prefix(['-', '+']).unwrap_or(s);
        let s = s.strip_suffix('%').unwrap_or(s);
        !s.is_empty()
            && s.bytes().next().is_some_and(|c| c.is_ascii_digit())
            && s.bytes()
                .all(|c| c.is_ascii_digit() || c == b'.' || c == b',')
            && s.matches('.').count() <= 1
    }

    pub(super) fn mask(message: &str) -> String {
        let mut out = String::new();
        mask_into(message, &mut out);
        out
    }

    fn mask_into(message: &str, out: &mut String) {
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
        } else if core.split('-').count() >= 2
            && core
                .split('-')
                .all(|g| !g.is_empty() && g.chars().all(|c| c.is_ascii_hexdigit()))
            && core.chars().filter(char::is_ascii_hexdigit).count() >= 8
            && core.chars().any(|c| c.is_ascii_digit())
            && core.chars().any(|c| c.is_ascii_alphabetic())
        {
            out.push_str(HEX);
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

    pub(super) fn classify(s: &str) -> Option<&'static str> {
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
}

#[test]
fn words_end_where_str_finds_whitespace() {
    let alphabet: Vec<char> = "a0:9 \t\n\u{b}\u{c}\r\u{1f}\u{20}\u{21}/;é\u{a0}\u{2003}\u{85}µ"
        .chars()
        .collect();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let mut w = String::new();
        for _ in 0..next() % 30 {
            // Mostly word characters, so words reach past eight bytes.
            let r = next();
            let c = alphabet[((r >> 8) % alphabet.len() as u64) as usize];
            w.push(if r % 3 == 0 { c } else { 'k' });
        }
        let end = w.find(char::is_whitespace).unwrap_or(w.len());
        let plain = !w[..end].bytes().any(|c| c.is_ascii_digit() || c == b':');
        assert_eq!(find_ws(&w), (end, plain), "{w:?}");
        assert_eq!(trim_ws_start(&w), w.trim_start(), "{w:?}");
    }
}

#[test]
fn masks_as_the_reference_does() {
    let mut messages: Vec<String> = [
        "GET /api/v1/orders/12345 completed in 1234.5ms for 10.1.2.3",
        "rate limit exceeded for client 10.2.3.4 on /api/v2/payments/7, retry after 12s",
        "upstream connect error to 10.9.1.2:8123 after 5.5ms: connection reset by peer",
        "cache miss for key session:0123456789ab, loaded 12 rows in 0.5ms",
        "payment 1a2b3c4d-0e0f declined for user u-123456: insufficient funds (order 7654321)",
        "took 3µs and 1h30m and 2m3.5s, +5 -3.5 99% 1,000 0x7ffe12 0xZZ dead::beef fe80::1",
        "+1.2.3.4 1.2.3.4:+80 1.2.3.4:99999 256.1.1.1 1.2.3 a.b.c.d 123e4567-e89b-12d3-a456-426614174000",
        "'quoted value' \"double quoted\": \"open quote, user_id=7&x=[1,2];y=(3)|z<4>@5#6?",
        "spaced\u{a0}by\u{2003}unicode\u{3000}spaces\tand\x0Bvertical\x0Cfeeds",
        "trailing. punctuation: 42! \"5ms\". '7':",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    messages.push("x ".repeat(100));
    messages.push("é1 ".repeat(600));
    // Pseudo-random messages over the characters masking cares about.
    let alphabet: Vec<char> = "aZf09-_.:,;=/()[]{}<>@#&?|%+!'\" xsmhdnuµ\u{a0}\u{2003}\t\u{b}é0x"
        .chars()
        .collect();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    // And over pieces of numbers, addresses, durations and ids, which single characters
    // rarely assemble.
    let pieces = [
        "10", "255", "256", "0", "7", ".", ".", ":", "::", "80", "ms", "s", "h", "m", "µs", "0x",
        "ff", "e89b", "deadbeef", "-", "_", "+", "%", ",", " ", "/", "=", "\"", "'", "x", "1a2b",
        "0e0f",
    ];
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for round in 0..40_000 {
        let mut m = String::new();
        for _ in 0..(next() % 24) {
            if round % 2 == 0 {
                m.push(alphabet[(next() % alphabet.len() as u64) as usize]);
            } else {
                m.push_str(pieces[(next() % pieces.len() as u64) as usize]);
            }
        }
        messages.push(m);
    }
    for m in &messages {
        assert_eq!(mask(m), reference::mask(m), "{m:?}");
        // And piece by piece, for the tests that the classes' byte sets often skip.
        for piece in m.split(' ') {
            assert_eq!(is_ip(piece), reference::is_ip(piece), "{piece:?}");
            assert_eq!(is_number(piece), reference::is_number(piece), "{piece:?}");
            assert_eq!(classify(piece), reference::classify(piece), "{piece:?}");
        }
    }
    // The comparison covers every class.
    let all: String = messages[..10].iter().map(|m| mask(m)).collect();
    for class in [NUM, HEX, UUID, IP, DURATION, QUOTED] {
        assert!(all.contains(class), "{class} in {all}");
    }
}
