//! The LogQL grammar (the supported subset), with `winnow`. Anything outside the subset fails
//! with a message naming it at its position, never silently.

use std::time::Duration;

use winnow::ascii::{digit1, multispace0};
use winnow::combinator::{alt, cut_err, opt, preceded};
use winnow::error::{ContextError, ErrMode};
use winnow::prelude::*;
use winnow::stream::Stream;
use winnow::token::{any, literal, one_of, take_while};

use super::ast::*;

pub(super) type PErr = ContextError<String>;
pub(super) type PResult<T> = Result<T, ErrMode<PErr>>;

/// A cut error: parsing stops here with this message.
fn fail_with<T>(msg: impl Into<String>) -> PResult<T> {
    let mut e = PErr::new();
    e.push(msg.into());
    Err(ErrMode::Cut(e))
}

/// A backtracking error: another alternative may still match.
fn backtrack<T>(msg: impl Into<String>) -> PResult<T> {
    let mut e = PErr::new();
    e.push(msg.into());
    Err(ErrMode::Backtrack(e))
}

fn ws(i: &mut &str) -> PResult<()> {
    multispace0.void().parse_next(i)
}

/// A symbol after optional whitespace.
fn sym<'a>(s: &'static str) -> impl Parser<&'a str, &'a str, ErrMode<PErr>> {
    preceded(ws, literal(s))
}

/// `s`, or a cut error saying it was expected.
fn expect(i: &mut &str, s: &'static str) -> PResult<()> {
    ws(i)?;
    if i.starts_with(s) {
        *i = &i[s.len()..];
        Ok(())
    } else {
        fail_with(format!("expected `{s}`{}", found(i)))
    }
}

fn found(i: &str) -> String {
    match i.chars().next() {
        None => ", found the end of the query".into(),
        Some(_) => {
            let tok: String = i.chars().take(12).collect();
            format!(", found `{tok}`")
        }
    }
}

fn ident<'a>(i: &mut &'a str) -> PResult<&'a str> {
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
fn peek_ident<'a>(i: &&'a str) -> Option<&'a str> {
    let mut probe = *i;
    ident(&mut probe).ok()
}

/// A quoted string: `"…"` with Go escapes, or a raw `` `…` ``.
fn string(i: &mut &str) -> PResult<String> {
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

fn number(i: &mut &str) -> PResult<f64> {
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

fn match_op(i: &mut &str) -> PResult<MatchOp> {
    preceded(
        ws,
        alt((
            literal("=~").value(MatchOp::Re),
            literal("!~").value(MatchOp::Nre),
            literal("!=").value(MatchOp::Ne),
            literal("=").value(MatchOp::Eq),
        )),
    )
    .parse_next(i)
}

fn matcher(i: &mut &str) -> PResult<Matcher> {
    let name = match ident(i) {
        Ok(n) => n.to_string(),
        Err(_) => return fail_with(format!("expected a label name{}", found(i))),
    };
    let op = match match_op(i) {
        Ok(op) => op,
        Err(_) => return fail_with(format!("expected `=`, `!=`, `=~` or `!~`{}", found(i))),
    };
    ws(i)?;
    let value = match string(i) {
        Ok(v) => v,
        Err(ErrMode::Backtrack(_)) => {
            return fail_with(format!("expected a quoted string{}", found(i)));
        }
        Err(e) => return Err(e),
    };
    Ok(Matcher { name, op, value })
}

fn selector(i: &mut &str) -> PResult<Vec<Matcher>> {
    sym("{").parse_next(i)?;
    let mut out = Vec::new();
    ws(i)?;
    if !i.starts_with('}') {
        loop {
            out.push(matcher(i)?);
            if opt(sym(",")).parse_next(i)?.is_none() {
                break;
            }
        }
    }
    expect(i, "}")?;
    if !out
        .iter()
        .any(|m| matches!(m.op, MatchOp::Eq | MatchOp::Re) && !m.value.is_empty())
    {
        return fail_with(
            "queries require at least one regexp or equality matcher that does not have an empty-compatible value",
        );
    }
    Ok(out)
}

const UNSUPPORTED_STAGES: &[&str] = &[
    "pattern",
    "regexp",
    "unpack",
    "unwrap",
    "label_format",
    "decolorize",
    "keep",
    "distinct",
];

fn stage(i: &mut &str) -> PResult<Option<Stage>> {
    ws(i)?;
    for (tok, op) in [
        ("|=", LineOp::Contains),
        ("!=", LineOp::NotContains),
        ("|~", LineOp::Match),
        ("!~", LineOp::NotMatch),
    ] {
        if let Some(rest) = i.strip_prefix(tok) {
            *i = rest;
            ws(i)?;
            if i.starts_with("ip(") {
                return fail_with("`ip(…)` line filters are not supported");
            }
            let value = match string(i) {
                Ok(v) => v,
                Err(ErrMode::Backtrack(_)) => {
                    return fail_with(format!("expected a quoted string{}", found(i)));
                }
                Err(e) => return Err(e),
            };
            ws(i)?;
            if peek_ident(i) == Some("or") {
                return fail_with("`or` between line filters is not supported: use `|~ \"a|b\"`");
            }
            return Ok(Some(Stage::Line { op, value }));
        }
    }
    if !i.starts_with('|') {
        return Ok(None);
    }
    *i = &i[1..];
    ws(i)?;
    let at = *i;
    let Some(word) = peek_ident(i) else {
        return fail_with(format!("expected a pipeline stage after `|`{}", found(i)));
    };
    let keyword = |i: &mut &str| {
        let _ = ident(i);
    };
    match word {
        "json" | "logfmt" => {
            keyword(i);
            ws(i)?;
            if i.starts_with("--") || peek_ident(i).is_some_and(|w| w != "and" && w != "or") {
                return fail_with(format!(
                    "`{word}` with parameters or flags is not supported"
                ));
            }
            Ok(Some(if word == "json" {
                Stage::Json
            } else {
                Stage::Logfmt
            }))
        }
        "line_format" => {
            keyword(i);
            Ok(Some(Stage::LineFormat(cut_err(string).parse_next(i)?)))
        }
        "drop" => {
            keyword(i);
            let mut names = Vec::new();
            loop {
                let n = match ident(i) {
                    Ok(n) => n,
                    Err(_) => return fail_with(format!("expected a label name{}", found(i))),
                };
                ws(i)?;
                if i.starts_with('=') || i.starts_with("!=") {
                    return fail_with("`drop` with label matchers is not supported");
                }
                names.push(n.to_string());
                if opt(sym(",")).parse_next(i)?.is_none() {
                    break;
                }
            }
            Ok(Some(Stage::Drop(names)))
        }
        w if UNSUPPORTED_STAGES.contains(&w) => {
            *i = at;
            fail_with(format!("the `{w}` stage is not supported"))
        }
        _ => Ok(Some(Stage::Label(label_or(i)?))),
    }
}

fn label_or(i: &mut &str) -> PResult<LabelPred> {
    let mut lhs = label_and(i)?;
    while peek_ident(i) == Some("or") {
        let _ = ident(i);
        let rhs = label_and(i)?;
        lhs = LabelPred::Or(Box::new(lhs), Box::new(rhs));
    }
    Ok(lhs)
}

fn label_and(i: &mut &str) -> PResult<LabelPred> {
    let mut lhs = label_atom(i)?;
    loop {
        ws(i)?;
        if i.starts_with(',') {
            *i = &i[1..];
        } else if peek_ident(i) == Some("and") {
            let _ = ident(i);
        } else {
            break;
        }
        let rhs = label_atom(i)?;
        lhs = LabelPred::And(Box::new(lhs), Box::new(rhs));
    }
    Ok(lhs)
}

fn cmp_op(i: &mut &str) -> PResult<CmpOp> {
    preceded(
        ws,
        alt((
            literal("==").value(CmpOp::Eq),
            literal("!=").value(CmpOp::Ne),
            literal(">=").value(CmpOp::Ge),
            literal("<=").value(CmpOp::Le),
            literal(">").value(CmpOp::Gt),
            literal("<").value(CmpOp::Lt),
            literal("=").value(CmpOp::Eq),
        )),
    )
    .parse_next(i)
}

fn label_atom(i: &mut &str) -> PResult<LabelPred> {
    ws(i)?;
    if i.starts_with('(') {
        *i = &i[1..];
        let p = label_or(i)?;
        expect(i, ")")?;
        return Ok(p);
    }
    let name = match ident(i) {
        Ok(n) => n.to_string(),
        Err(_) => return fail_with(format!("expected a label filter{}", found(i))),
    };
    ws(i)?;
    let checkpoint = i.checkpoint();
    if let Ok(op) = alt::<_, _, ErrMode<PErr>, _>((
        literal("=~").value(MatchOp::Re),
        literal("!~").value(MatchOp::Nre),
    ))
    .parse_next(i)
    {
        let value = cut_err(string).parse_next(i)?;
        return Ok(LabelPred::Str(Matcher { name, op, value }));
    }
    i.reset(&checkpoint);
    let op = match cmp_op(i) {
        Ok(op) => op,
        Err(_) => return fail_with(format!("expected a comparison after `{name}`{}", found(i))),
    };
    ws(i)?;
    if i.starts_with('"') || i.starts_with('`') {
        let mop = match op {
            CmpOp::Eq => MatchOp::Eq,
            CmpOp::Ne => MatchOp::Ne,
            _ => return fail_with("strings compare only with `=`, `!=`, `=~` and `!~`"),
        };
        let value = string(i)?;
        return Ok(LabelPred::Str(Matcher {
            name,
            op: mop,
            value,
        }));
    }
    if peek_ident(i) == Some("ip") {
        return fail_with("`ip(…)` label filters are not supported");
    }
    match number(i) {
        Ok(value) => Ok(LabelPred::Num { name, op, value }),
        Err(ErrMode::Backtrack(_)) => {
            fail_with(format!("expected a string or a number{}", found(i)))
        }
        Err(e) => Err(e),
    }
}

fn log_expr(i: &mut &str) -> PResult<LogExpr> {
    let selector = selector(i)?;
    let mut pipeline = Vec::new();
    while let Some(s) = stage(i)? {
        pipeline.push(s);
    }
    Ok(LogExpr { selector, pipeline })
}

/// A parsed operand: a log query can only stand alone or inside a range aggregation.
enum Node {
    Log(LogExpr),
    Metric(MetricExpr),
}

const RANGE_FNS: &[(&str, RangeFn)] = &[
    ("count_over_time", RangeFn::CountOverTime),
    ("rate", RangeFn::Rate),
    ("bytes_over_time", RangeFn::BytesOverTime),
    ("bytes_rate", RangeFn::BytesRate),
];

const AGG_OPS: &[(&str, AggOp)] = &[
    ("sum", AggOp::Sum),
    ("avg", AggOp::Avg),
    ("min", AggOp::Min),
    ("max", AggOp::Max),
    ("count", AggOp::Count),
    ("topk", AggOp::Topk),
    ("bottomk", AggOp::Bottomk),
];

const UNSUPPORTED_FNS: &[&str] = &[
    "quantile_over_time",
    "sum_over_time",
    "avg_over_time",
    "max_over_time",
    "min_over_time",
    "first_over_time",
    "last_over_time",
    "stdvar_over_time",
    "stddev_over_time",
    "absent_over_time",
    "rate_counter",
    "stddev",
    "stdvar",
    "sort",
    "sort_desc",
    "approx_topk",
    "label_replace",
];

fn grouping(i: &mut &str) -> PResult<Option<Grouping>> {
    let without = match peek_ident(i) {
        Some("by") => false,
        Some("without") => true,
        _ => return Ok(None),
    };
    let _ = ident(i);
    expect(i, "(")?;
    let mut labels = Vec::new();
    ws(i)?;
    if !i.starts_with(')') {
        loop {
            match ident(i) {
                Ok(l) => labels.push(l.to_string()),
                Err(_) => return fail_with(format!("expected a label name{}", found(i))),
            }
            if opt(sym(",")).parse_next(i)?.is_none() {
                break;
            }
        }
    }
    expect(i, ")")?;
    Ok(Some(Grouping { without, labels }))
}

fn metric_call(i: &mut &str) -> PResult<Node> {
    let at = *i;
    let name = ident(i)?;
    if let Some((_, func)) = RANGE_FNS.iter().find(|(n, _)| *n == name) {
        expect(i, "(")?;
        ws(i)?;
        if !i.starts_with('{') {
            return fail_with(format!(
                "expected a log query such as `{{service=\"api\"}}` in `{name}`{}",
                found(i)
            ));
        }
        let log = log_expr(i)?;
        expect(i, "[")?;
        let range = duration(i)?;
        if range.is_zero() {
            return fail_with("the range must be above zero");
        }
        expect(i, "]")?;
        ws(i)?;
        if peek_ident(i) == Some("offset") {
            return fail_with("`offset` is not supported");
        }
        expect(i, ")")?;
        if matches!(peek_ident(i), Some("by" | "without")) {
            return fail_with(format!(
                "grouping is not allowed on `{name}`: use `sum by (…) ({name}(…))`"
            ));
        }
        return Ok(Node::Metric(MetricExpr::Range {
            func: *func,
            log,
            range,
        }));
    }
    if let Some((_, op)) = AGG_OPS.iter().find(|(n, _)| *n == name) {
        let before = grouping(i)?;
        expect(i, "(")?;
        let param = if matches!(op, AggOp::Topk | AggOp::Bottomk) {
            let k = match number(i) {
                Ok(k) if k >= 1.0 && k.fract() == 0.0 => k,
                Ok(_) => {
                    return fail_with(format!("`{name}` needs a whole number k of at least 1"));
                }
                Err(ErrMode::Backtrack(_)) => {
                    return fail_with(format!("`{name}` needs a number k first{}", found(i)));
                }
                Err(e) => return Err(e),
            };
            expect(i, ",")?;
            Some(k)
        } else {
            None
        };
        let inner = metric(i, "an aggregation")?;
        expect(i, ")")?;
        let after = grouping(i)?;
        if before.is_some() && after.is_some() {
            return fail_with("grouping given twice");
        }
        return Ok(Node::Metric(MetricExpr::Agg {
            op: *op,
            param,
            grouping: before.or(after),
            inner: Box::new(inner),
        }));
    }
    if name == "vector" {
        expect(i, "(")?;
        let v = cut_err(number).parse_next(i)?;
        expect(i, ")")?;
        return Ok(Node::Metric(MetricExpr::Vector(v)));
    }
    *i = at;
    ws(i)?;
    if UNSUPPORTED_FNS.contains(&name) {
        return fail_with(format!("the function `{name}` is not supported"));
    }
    fail_with(format!("unexpected identifier `{name}`"))
}

/// A metric operand (a log query here is an error).
fn metric(i: &mut &str, context: &str) -> PResult<MetricExpr> {
    ws(i)?;
    let at = *i;
    match expr_prec(i, 0)? {
        Node::Metric(m) => Ok(m),
        Node::Log(_) => {
            *i = at;
            fail_with(format!(
                "a log query is not allowed in {context}: wrap it in a range aggregation such as `count_over_time(…[5m])`"
            ))
        }
    }
}

fn primary(i: &mut &str) -> PResult<Node> {
    ws(i)?;
    match i.chars().next() {
        Some('{') => Ok(Node::Log(log_expr(i)?)),
        Some('(') => {
            *i = &i[1..];
            let inner = expr_prec(i, 0)?;
            expect(i, ")")?;
            Ok(inner)
        }
        Some('-')
            if !i[1..]
                .trim_start()
                .starts_with(|c: char| c.is_ascii_digit()) =>
        {
            *i = &i[1..];
            let inner = metric(i, "a negation")?;
            Ok(Node::Metric(MetricExpr::Binary {
                op: BinOp::Mul,
                return_bool: false,
                lhs: Box::new(MetricExpr::Scalar(-1.0)),
                rhs: Box::new(inner),
            }))
        }
        Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => Ok(Node::Metric(
            MetricExpr::Scalar(cut_err(number).parse_next(i)?),
        )),
        Some(c) if c.is_ascii_alphabetic() || c == '_' => metric_call(i),
        _ => backtrack(format!("expected a query{}", found(i))),
    }
}

fn bin_op(i: &mut &str) -> Option<(BinOp, u8, &'static str)> {
    let s = i.trim_start();
    let ops: &[(&str, BinOp, u8)] = &[
        ("==", BinOp::Cmp(CmpOp::Eq), 3),
        ("!=", BinOp::Cmp(CmpOp::Ne), 3),
        (">=", BinOp::Cmp(CmpOp::Ge), 3),
        ("<=", BinOp::Cmp(CmpOp::Le), 3),
        (">", BinOp::Cmp(CmpOp::Gt), 3),
        ("<", BinOp::Cmp(CmpOp::Lt), 3),
        ("+", BinOp::Add, 4),
        ("-", BinOp::Sub, 4),
        ("*", BinOp::Mul, 5),
        ("/", BinOp::Div, 5),
        ("%", BinOp::Mod, 5),
        ("^", BinOp::Pow, 6),
    ];
    ops.iter()
        .find(|(t, _, _)| s.starts_with(t))
        .map(|(t, op, p)| (*op, *p, *t))
}

fn expr_prec(i: &mut &str, min_prec: u8) -> PResult<Node> {
    let mut lhs = primary(i)?;
    loop {
        ws(i)?;
        if let Some(w @ ("and" | "or" | "unless")) = peek_ident(i) {
            return fail_with(format!("the set operator `{w}` is not supported"));
        }
        let Some((op, prec, tok)) = bin_op(i) else {
            break;
        };
        if prec < min_prec {
            break;
        }
        let op_at = *i;
        *i = &i[tok.len()..];
        let return_bool = if matches!(op, BinOp::Cmp(_)) && peek_ident(i) == Some("bool") {
            let _ = ident(i);
            true
        } else {
            false
        };
        ws(i)?;
        for w in ["on", "ignoring", "group_left", "group_right"] {
            if peek_ident(i) == Some(w) {
                return fail_with(format!("vector matching with `{w}` is not supported"));
            }
        }
        let next_min = if op == BinOp::Pow { prec } else { prec + 1 };
        let rhs = expr_prec(i, next_min)?;
        let (Node::Metric(l), Node::Metric(r)) = (lhs, rhs) else {
            *i = op_at;
            return fail_with(format!(
                "`{tok}` needs numbers on both sides: wrap log queries in a range aggregation such as `count_over_time(…[5m])`"
            ));
        };
        lhs = Node::Metric(MetricExpr::Binary {
            op,
            return_bool,
            lhs: Box::new(l),
            rhs: Box::new(r),
        });
    }
    Ok(lhs)
}

pub(super) fn query(i: &mut &str) -> PResult<Expr> {
    let node = match expr_prec(i, 0) {
        Err(ErrMode::Backtrack(e)) => return Err(ErrMode::Cut(e)),
        other => other?,
    };
    ws(i)?;
    if !i.is_empty() {
        if i.starts_with('[') {
            return fail_with(
                "a range `[…]` is only allowed inside a range aggregation such as `count_over_time`",
            );
        }
        return fail_with(format!(
            "unexpected `{}`",
            i.chars().take(12).collect::<String>()
        ));
    }
    Ok(match node {
        Node::Log(l) => Expr::Log(l),
        Node::Metric(m) => Expr::Metric(m),
    })
}
