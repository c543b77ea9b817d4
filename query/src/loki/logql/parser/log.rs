//! Log queries: the stream selector and the pipeline stages (filters, parsers, label filters).

use winnow::combinator::{alt, cut_err, opt, preceded};
use winnow::error::ErrMode;
use winnow::prelude::*;
use winnow::token::literal;

use super::super::ast::*;
use super::lex::*;

pub(super) fn match_op(i: &mut &str) -> PResult<MatchOp> {
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

pub(super) fn matcher(i: &mut &str) -> PResult<Matcher> {
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

pub(super) fn selector(i: &mut &str) -> PResult<Vec<Matcher>> {
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

pub(super) const UNSUPPORTED_STAGES: &[&str] = &[
    "pattern",
    "regexp",
    "unpack",
    "unwrap",
    "label_format",
    "decolorize",
    "keep",
    "distinct",
];

pub(super) fn stage(i: &mut &str) -> PResult<Option<Stage>> {
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

pub(super) fn label_or(i: &mut &str) -> PResult<LabelPred> {
    let mut lhs = label_and(i)?;
    while peek_ident(i) == Some("or") {
        let _ = ident(i);
        let rhs = label_and(i)?;
        lhs = LabelPred::Or(Box::new(lhs), Box::new(rhs));
    }
    Ok(lhs)
}

pub(super) fn label_and(i: &mut &str) -> PResult<LabelPred> {
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

pub(super) fn cmp_op(i: &mut &str) -> PResult<CmpOp> {
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

pub(super) fn label_atom(i: &mut &str) -> PResult<LabelPred> {
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

pub(super) fn log_expr(i: &mut &str) -> PResult<LogExpr> {
    let selector = selector(i)?;
    let mut pipeline = Vec::new();
    while let Some(s) = stage(i)? {
        pipeline.push(s);
    }
    Ok(LogExpr { selector, pipeline })
}
