//! Field filters: a tiny expression language for `POST /logs/query`'s `filter`.
//!
//! ```text
//! fields.order_id = "A-17" and http.status >= 500 and message ~ "timeout" and level >= warn
//! ```
//!
//! A filter is clauses joined by `and` (`AND`, `&&`). A clause is `path op value`:
//! - path: `message`, `service`, `level`, `host`, `trace_id`, or a field (`fields.` is optional:
//!   `fields.http.status` and `http.status` are the same field);
//! - op: `=`, `!=`, `>`, `>=`, `<`, `<=` (numbers; `level` compares by severity), `~` (contains,
//!   case-insensitive), `!~`;
//! - value: a "double-quoted string" (with `\"` and `\\`), a number, or a bare word.
//!
//! Parsing is bounded (4 KiB, 32 clauses) and never panics; errors say where they are.

use logjet_core::tokens;
use logjet_core::{FieldValue, Level, LogEvent};

pub const MAX_FILTER_BYTES: usize = 4096;
pub const MAX_CLAUSES: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {pos}: {problem}")]
pub struct FilterError {
    pub pos: usize,
    pub problem: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Message,
    Service,
    Level,
    Host,
    TraceId,
    Field(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Contains,
    NotContains,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    /// A number, with the text it was written as.
    Num(f64, String),
}

impl Literal {
    fn text(&self) -> &str {
        match self {
            Literal::Str(s) => s,
            Literal::Num(_, t) => t,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    pub target: Target,
    pub op: Op,
    pub value: Literal,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    pub clauses: Vec<Clause>,
}

struct Lexer<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Lexer<'a> {
    fn err(&self, problem: impl Into<String>) -> FilterError {
        FilterError {
            pos: self.pos,
            problem: problem.into(),
        }
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.s[self.pos..].chars().next() {
            if !c.is_whitespace() {
                break;
            }
            self.pos += c.len_utf8();
        }
    }

    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }

    fn word(&mut self) -> &'a str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | ':' | '/' | '@' | '+') {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
        &self.s[start..self.pos]
    }

    fn op(&mut self) -> Result<Op, FilterError> {
        let rest = &self.s[self.pos..];
        for (text, op) in [
            ("!=", Op::Ne),
            ("!~", Op::NotContains),
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("==", Op::Eq),
            ("=", Op::Eq),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("~", Op::Contains),
        ] {
            if rest.starts_with(text) {
                self.pos += text.len();
                return Ok(op);
            }
        }
        Err(self.err("expected an operator (= != > >= < <= ~ !~)"))
    }

    fn quoted(&mut self) -> Result<String, FilterError> {
        let open = self.pos;
        self.pos += 1; // the opening quote
        let mut out = String::new();
        let mut chars = self.s[self.pos..].char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, e @ ('"' | '\\'))) => out.push(e),
                    Some((_, 'n')) => out.push('\n'),
                    Some((_, 't')) => out.push('\t'),
                    _ => {
                        self.pos += i;
                        return Err(self.err("unknown escape (use \\\" \\\\ \\n \\t)"));
                    }
                },
                c => out.push(c),
            }
        }
        self.pos = open;
        Err(self.err("unterminated string"))
    }

    fn literal(&mut self) -> Result<Literal, FilterError> {
        self.skip_ws();
        match self.peek() {
            None => Err(self.err("expected a value")),
            Some('"') => self.quoted().map(Literal::Str),
            Some(_) => {
                let w = self.word();
                if w.is_empty() {
                    return Err(self.err("expected a value"));
                }
                Ok(match w.parse::<f64>() {
                    Ok(n) if n.is_finite() => Literal::Num(n, w.to_string()),
                    _ => Literal::Str(w.to_string()),
                })
            }
        }
    }
}

fn target(path: &str) -> Target {
    match path {
        "message" | "msg" => Target::Message,
        "service" => Target::Service,
        "level" => Target::Level,
        "host" => Target::Host,
        "trace_id" => Target::TraceId,
        p => Target::Field(p.strip_prefix("fields.").unwrap_or(p).to_string()),
    }
}

/// Parses a filter expression.
pub fn parse(input: &str) -> Result<Filter, FilterError> {
    if input.len() > MAX_FILTER_BYTES {
        return Err(FilterError {
            pos: MAX_FILTER_BYTES,
            problem: format!("longer than {MAX_FILTER_BYTES} bytes"),
        });
    }
    let mut lx = Lexer { s: input, pos: 0 };
    let mut clauses = Vec::new();
    loop {
        lx.skip_ws();
        let path_pos = lx.pos;
        let path = lx.word();
        if path.is_empty() {
            return Err(lx.err(if lx.peek().is_none() {
                "expected a field name".to_string()
            } else {
                format!("unexpected {:?}", lx.peek().unwrap_or(' '))
            }));
        }
        let target = target(path);
        lx.skip_ws();
        let op = lx.op()?;
        let value = lx.literal()?;
        if target == Target::Level {
            let ok = Level::from_name(value.text()).is_some();
            if !ok {
                return Err(FilterError {
                    pos: path_pos,
                    problem: format!("unknown level {:?}", value.text()),
                });
            }
        }
        clauses.push(Clause { target, op, value });
        if clauses.len() > MAX_CLAUSES {
            return Err(lx.err(format!("more than {MAX_CLAUSES} clauses")));
        }
        lx.skip_ws();
        if lx.peek().is_none() {
            break;
        }
        let conj = lx.word();
        let conj = if conj.is_empty() && lx.s[lx.pos..].starts_with("&&") {
            lx.pos += 2;
            "and"
        } else {
            conj
        };
        if !conj.eq_ignore_ascii_case("and") {
            return Err(lx.err("expected `and` between clauses"));
        }
    }
    Ok(Filter { clauses })
}

impl Filter {
    pub fn matches(&self, ev: &LogEvent) -> bool {
        self.clauses.iter().all(|c| c.matches(ev))
    }

    /// Lower-cased identifiers the event must contain for the filter to match: what the chunk
    /// Bloom filters can rule out.
    pub fn index_tokens(&self) -> Vec<String> {
        self.clauses
            .iter()
            .filter(|c| c.op == Op::Eq && !matches!(c.target, Target::Level | Target::Service))
            .filter_map(|c| tokens::as_single_identifier(c.value.text()))
            .collect()
    }
}

impl Clause {
    fn matches(&self, ev: &LogEvent) -> bool {
        if self.target == Target::Level {
            let (Some(want), have) = (Level::from_name(self.value.text()), ev.level) else {
                return false;
            };
            return match self.op {
                Op::Eq => have == want,
                Op::Ne => have != want,
                Op::Gt => have > want,
                Op::Ge => have >= want,
                Op::Lt => have < want,
                Op::Le => have <= want,
                Op::Contains => have.as_str().contains(&self.value.text().to_lowercase()),
                Op::NotContains => !have.as_str().contains(&self.value.text().to_lowercase()),
            };
        }
        let field: Option<FieldValue> = match &self.target {
            Target::Message => Some(FieldValue::Str(ev.message.clone())),
            Target::Service => Some(FieldValue::Str(ev.service.clone())),
            Target::Host => ev.host.clone().map(FieldValue::Str),
            Target::TraceId => ev.trace_id.clone().map(FieldValue::Str),
            Target::Field(name) => ev.fields.get(name).cloned(),
            Target::Level => unreachable!("handled above"),
        };
        let Some(field) = field else {
            return matches!(self.op, Op::Ne | Op::NotContains);
        };
        let text = field.to_text();
        match self.op {
            Op::Eq => match (&self.value, field.as_f64()) {
                (Literal::Num(n, _), Some(f)) => f == *n,
                (v, _) => text == v.text(),
            },
            Op::Ne => match (&self.value, field.as_f64()) {
                (Literal::Num(n, _), Some(f)) => f != *n,
                (v, _) => text != v.text(),
            },
            Op::Gt | Op::Ge | Op::Lt | Op::Le => {
                let (Literal::Num(n, _), Some(f)) = (&self.value, field.as_f64()) else {
                    return false;
                };
                match self.op {
                    Op::Gt => f > *n,
                    Op::Ge => f >= *n,
                    Op::Lt => f < *n,
                    _ => f <= *n,
                }
            }
            Op::Contains => text
                .to_lowercase()
                .contains(&self.value.text().to_lowercase()),
            Op::NotContains => !text
                .to_lowercase()
                .contains(&self.value.text().to_lowercase()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn ev() -> LogEvent {
        LogEvent {
            ts: Utc::now(),
            service: "api".into(),
            level: Level::Error,
            message: "upstream Timeout after 3s".into(),
            fields: [
                ("order_id".to_string(), FieldValue::Str("A-17".into())),
                ("http.status".to_string(), FieldValue::Int(503)),
                ("latency".to_string(), FieldValue::Float(1.5)),
            ]
            .into(),
            trace_id: Some("abc123".into()),
            host: None,
        }
    }

    fn m(f: &str) -> bool {
        parse(f)
            .unwrap_or_else(|e| panic!("{f}: {e}"))
            .matches(&ev())
    }

    #[test]
    fn comparisons() {
        assert!(m(r#"fields.order_id = "A-17""#));
        assert!(m("order_id = A-17"));
        assert!(!m(r#"order_id = "A-18""#));
        assert!(m("http.status >= 500 and http.status < 600"));
        assert!(!m("http.status > 503"));
        assert!(m("latency <= 1.5 AND latency > 1"));
        assert!(m("message ~ timeout"));
        assert!(m("message !~ refused && service = api"));
        assert!(m("level >= warn"));
        assert!(!m("level = info"));
        assert!(m("missing != x"));
        assert!(!m("missing = x"));
        assert!(m("trace_id = abc123"));
        assert!(!m("order_id > 5"));
    }

    #[test]
    fn errors_say_where() {
        let e = parse("status >").unwrap_err();
        assert_eq!(e.problem, "expected a value");
        let e = parse("status 5").unwrap_err();
        assert_eq!(e.pos, 7);
        assert!(
            parse(r#"a = "open"#)
                .unwrap_err()
                .problem
                .contains("unterminated")
        );
        assert!(
            parse("a = 1 or b = 2")
                .unwrap_err()
                .problem
                .contains("`and`")
        );
        assert!(
            parse("level = loud")
                .unwrap_err()
                .problem
                .contains("unknown level")
        );
        assert!(parse("").is_err());
        assert!(parse("a = 1 and ".repeat(40).trim_end_matches(" and ")).is_err());
        assert!(parse(r#"a = "\q""#).is_err());
    }

    #[test]
    fn index_tokens_are_identifier_equalities() {
        let f = parse(
            r#"order_id = "A-17" and status = 503 and message ~ "x-1234" and service = api9"#,
        )
        .unwrap();
        assert_eq!(f.index_tokens(), vec!["a-17".to_string()]);
        let f = parse("request = 12345").unwrap();
        assert_eq!(f.index_tokens(), vec!["12345".to_string()]);
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "=",
            "a",
            "a =",
            "\"",
            "a = \"\\",
            "é = ü",
            "a ~ \"\u{0}\"",
            "&&",
            "a = 1 &&",
            "a = 1 and",
        ] {
            let _ = parse(s);
        }
    }
}
