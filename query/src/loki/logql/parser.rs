//! The LogQL grammar (the supported subset), with `winnow`. Anything outside the subset fails
//! with a message naming it at its position, never silently.

use winnow::combinator::{cut_err, opt};
use winnow::error::ErrMode;
use winnow::prelude::*;

use super::ast::*;

mod lex;
mod log;

use lex::*;
use log::*;

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
