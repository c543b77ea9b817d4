//! The tokens of LogQL: blanks, symbols, identifiers, strings, numbers, durations; and the
//! two ways a parser fails (a committed error, or a backtrack the caller may try past).

use std::time::Duration;

use winnow::ascii::{digit1, multispace0};
use winnow::combinator::{opt, preceded};
use winnow::error::{ContextError, ErrMode};
use winnow::prelude::*;
use winnow::stream::Stream;
use winnow::token::{any, literal, one_of, take_while};

pub(super) type PErr = ContextError<String>;
pub(super) type PResult<T> = Result<T, ErrMode<PErr>>;

/// A cut error: parsing stops here with this message.
pub(super) fn fail_with<T>(msg: impl Into<String>) -> PResult<T> {
    let mut e = PErr::new();
    e.push(msg.into());
    Err(ErrMode::Cut(e))
}

/// A backtracking error: another alternative may still match.
pub(super) fn backtrack<T>(msg: impl Into<String>) -> PResult<T> {
    let mut e = PErr::new();
    e.push(msg.into());
    Err(ErrMode::Backtrack(e))
}

pub(super) fn ws(i: &mut &str) -> PResult<()> {
    multispace0.void().parse_next(i)
}

/// A symbol after optional whitespace.
pub(super) fn sym<'a>(s: &'static str) -> impl Parser<&'a str, &'a str, ErrMode<PErr>> {
    preceded(ws, literal(s))
}

/// `s`, or a cut error saying it was expected.
pub(super) fn expect(i: &mut &str, s: &'static str) -> PResult<()> {
    ws(i)?;
    if i.starts_with(s) {
        *i = &i[s.len()..];
        Ok(())
    } else {
        fail_with(format!("expected `{s}`{}", found(i)))
    }
}

pub(super) fn found(i: &str) -> String {
    match i.chars().next() {
        None => ", found the end of the query".into(),
        Some(_) => {
            let tok: String = i.chars().take(12).collect();
            format!(", found `{tok}`")
        }
    }
}

pub(super) fn ident<'a>(i: &mut &'a str) -> PResult<&'a str> {
    preceded(
        ws,
        (
            one_of(|c: char| c.is_ascii_alphabetic() || c == '_'),
            take_while(0.., |c: char| c.is_ascii_alphanumeric() || c == '_'),
        )
            .take(),
    )
    .parse_next(i)
}

/// The next identifier, without consuming it.
pub(super) fn peek_ident<'a>(i: &&'a str) -> Option<&'a str> {
    let mut probe = *i;
    ident(&mut probe).ok()
}

/// A quoted string: `"…"` with Go escapes, or a raw `` `…` ``.
pub(super) fn string(i: &mut &str) -> PResult<String> {
    ws(i)?;
    if let Some(rest) = i.strip_prefix('`') {
        return match rest.find('`') {
            Some(end) => {
                let s = rest[..end].to_string();
                *i = &rest[end + 1..];
                Ok(s)
            }
            None => fail_with("unterminated raw string"),
        };
    }
    literal('"').parse_next(i)?;
    let mut out = String::new();
    loop {
        let c = match any::<&str, PErr>.parse_next(i) {
            Ok(c) => c,
            Err(_) => return fail_with("unterminated string"),
        };
        match c {
            '"' => return Ok(out),
            '\\' => {
                let e = match any::<&str, PErr>.parse_next(i) {
                    Ok(e) => e,
                    Err(_) => return fail_with("unterminated string"),
                };
                match e {
                    '"' | '\\' | '\'' => out.push(e),
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\x07'),
                    'b' => out.push('\x08'),
                    'f' => out.push('\x0c'),
                    'v' => out.push('\x0b'),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let hex: String = i.chars().take(n).collect();
                        let ch = (hex.len() == n)
                            .then(|| u32::from_str_radix(&hex, 16).ok())
                            .flatten()
                            .and_then(char::from_u32);
                        match ch {
                            Some(ch) => {
                                out.push(ch);
                                *i = &i[n..];
                            }
                            None => return fail_with(format!("invalid escape `\\{e}{hex}`")),
                        }
                    }
                    other => return fail_with(format!("invalid escape `\\{other}`")),
                }
            }
            c => out.push(c),
        }
    }
}

pub(super) fn number(i: &mut &str) -> PResult<f64> {
    ws(i)?;
    let start = *i;
    let text = (
        opt(one_of(['-', '+'])),
        digit1,
        opt(('.', digit1)),
        opt((one_of(['e', 'E']), opt(one_of(['-', '+'])), digit1)),
    )
        .take()
        .parse_next(i)?;
    // A number glued to letters is a duration or a byte size, which label filters here lack.
    if i.starts_with(|c: char| c.is_ascii_alphabetic()) {
        *i = start;
        return fail_with(format!(
            "`{text}…`: durations and byte sizes are not supported in label filters"
        ));
    }
    text.parse::<f64>()
        .or_else(|_| fail_with(format!("`{text}` is not a number")))
}

/// `5m`, `1h30m`, `250ms`, `1d`: Prometheus durations.
pub(super) fn duration(i: &mut &str) -> PResult<Duration> {
    ws(i)?;
    let start = *i;
    let mut total = Duration::ZERO;
    let mut parts = 0;
    loop {
        let checkpoint = i.checkpoint();
        let Ok(n) = digit1::<&str, PErr>.parse_next(i) else {
            i.reset(&checkpoint);
            break;
        };
        let unit: PResult<&str> = take_while(1.., |c: char| c.is_ascii_alphabetic()).parse_next(i);
        let secs: f64 = match unit.unwrap_or("") {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "w" => 7.0 * 86_400.0,
            "y" => 365.0 * 86_400.0,
            _ => {
                *i = start;
                return fail_with("expected a duration such as `5m`, `30s` or `1h`");
            }
        };
        let n: u64 = n.parse().unwrap_or(u64::MAX);
        total = total.saturating_add(Duration::from_secs_f64((n as f64 * secs).min(1e12)));
        parts += 1;
    }
    if parts == 0 {
        *i = start;
        return fail_with("expected a duration such as `5m`, `30s` or `1h`");
    }
    Ok(total)
}
