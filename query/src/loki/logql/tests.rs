use std::time::Duration;

use super::*;

fn ok(q: &str) -> Expr {
    parse(q).unwrap_or_else(|e| panic!("{q}: {e}"))
}

fn err(q: &str) -> ParseError {
    match parse(q) {
        Ok(e) => panic!("{q} parsed as {e:?}"),
        Err(e) => e,
    }
}

fn m(name: &str, op: MatchOp, value: &str) -> Matcher {
    Matcher {
        name: name.into(),
        op,
        value: value.into(),
    }
}

#[test]
fn selectors_and_line_filters() {
    let Expr::Log(l) = ok(
        r#"{service="api", level=~"err.*", host!="a", x!~"b"} |= "boom" != `x\y` |~ "t(o)+" !~ "z""#,
    ) else {
        panic!()
    };
    assert_eq!(
        l.selector,
        vec![
            m("service", MatchOp::Eq, "api"),
            m("level", MatchOp::Re, "err.*"),
            m("host", MatchOp::Ne, "a"),
            m("x", MatchOp::Nre, "b"),
        ]
    );
    assert_eq!(
        l.pipeline,
        vec![
            Stage::Line {
                op: LineOp::Contains,
                value: "boom".into()
            },
            Stage::Line {
                op: LineOp::NotContains,
                value: "x\\y".into()
            },
            Stage::Line {
                op: LineOp::Match,
                value: "t(o)+".into()
            },
            Stage::Line {
                op: LineOp::NotMatch,
                value: "z".into()
            },
        ]
    );
}

#[test]
fn parsers_label_filters_and_formatting() {
    let Expr::Log(l) = ok(
        r#"{service="api"} | json | status >= 500 and path="/x", method=~"GET|PUT" or took < 1.5e3 | logfmt | line_format "{{.message}} \"q\"\n" | drop __error__, __error_details__"#,
    ) else {
        panic!()
    };
    assert_eq!(l.pipeline[0], Stage::Json);
    let Stage::Label(p) = &l.pipeline[1] else {
        panic!("{:?}", l.pipeline[1])
    };
    let status = LabelPred::Num {
        name: "status".into(),
        op: CmpOp::Ge,
        value: 500.0,
    };
    let path = LabelPred::Str(m("path", MatchOp::Eq, "/x"));
    let method = LabelPred::Str(m("method", MatchOp::Re, "GET|PUT"));
    let took = LabelPred::Num {
        name: "took".into(),
        op: CmpOp::Lt,
        value: 1500.0,
    };
    let and = |a: LabelPred, b: LabelPred| LabelPred::And(Box::new(a), Box::new(b));
    assert_eq!(
        *p,
        LabelPred::Or(Box::new(and(and(status, path), method)), Box::new(took))
    );
    assert_eq!(l.pipeline[2], Stage::Logfmt);
    assert_eq!(
        l.pipeline[3],
        Stage::LineFormat("{{.message}} \"q\"\n".into())
    );
    assert_eq!(
        l.pipeline[4],
        Stage::Drop(vec!["__error__".into(), "__error_details__".into()])
    );
}

#[test]
fn metric_queries() {
    // Grafana's log-volume query, as it sends it once `$__auto` is replaced.
    let Expr::Metric(e) = ok(
        r#"sum by (level, detected_level) (count_over_time({service="api"} |= "x" | drop __error__[1m]))"#,
    ) else {
        panic!()
    };
    let MetricExpr::Agg {
        op: AggOp::Sum,
        grouping: Some(g),
        inner,
        param: None,
    } = e
    else {
        panic!("{e:?}")
    };
    assert_eq!(g.labels, vec!["level", "detected_level"]);
    assert!(!g.without);
    let MetricExpr::Range { func, log, range } = *inner else {
        panic!()
    };
    assert_eq!(func, RangeFn::CountOverTime);
    assert_eq!(range, Duration::from_secs(60));
    assert_eq!(log.pipeline.len(), 2);

    let Expr::Metric(e) = ok(r#"topk(3, sum(rate({service=~".+"}[5m])) without (host))"#) else {
        panic!()
    };
    let MetricExpr::Agg {
        op: AggOp::Topk,
        param: Some(k),
        inner,
        ..
    } = e
    else {
        panic!()
    };
    assert_eq!(k, 3.0);
    let MetricExpr::Agg {
        grouping: Some(g), ..
    } = *inner
    else {
        panic!()
    };
    assert!(g.without);

    for q in [
        r#"bytes_over_time({service="a"}[1h30m])"#,
        r#"bytes_rate({service="a"}[250ms])"#,
        r#"avg(rate({service="a"}[1m])) by (service)"#,
        r#"min(count_over_time({service="a"}[1m]))"#,
        r#"max(count_over_time({service="a"}[1m]))"#,
        r#"count(count_over_time({service="a"}[1m]))"#,
        r#"bottomk(2, count_over_time({service="a"}[1m]))"#,
    ] {
        assert!(matches!(ok(q), Expr::Metric(_)), "{q}");
    }
}

#[test]
fn arithmetic_precedence_and_comparisons() {
    let Expr::Metric(e) = ok("vector(1)+vector(1)") else {
        panic!()
    };
    assert_eq!(
        e,
        MetricExpr::Binary {
            op: BinOp::Add,
            return_bool: false,
            lhs: Box::new(MetricExpr::Vector(1.0)),
            rhs: Box::new(MetricExpr::Vector(1.0)),
        }
    );
    let Expr::Metric(e) = ok("1 + 2 * 3 ^ 2 ^ 1 > bool 4") else {
        panic!()
    };
    let MetricExpr::Binary {
        op: BinOp::Cmp(CmpOp::Gt),
        return_bool: true,
        lhs,
        ..
    } = e
    else {
        panic!("{e:?}")
    };
    let MetricExpr::Binary {
        op: BinOp::Add,
        rhs,
        ..
    } = *lhs
    else {
        panic!()
    };
    let MetricExpr::Binary {
        op: BinOp::Mul,
        rhs,
        ..
    } = *rhs
    else {
        panic!()
    };
    assert!(matches!(*rhs, MetricExpr::Binary { op: BinOp::Pow, .. }));
    assert!(matches!(
        ok(r#"sum(rate({service="a"}[1m])) / 60 * 100 > 5"#),
        Expr::Metric(MetricExpr::Binary {
            op: BinOp::Cmp(CmpOp::Gt),
            ..
        })
    ));
    assert!(matches!(
        ok(r#"-count_over_time({service="a"}[1m])"#),
        Expr::Metric(MetricExpr::Binary { .. })
    ));
}

#[test]
fn refusals_name_the_problem_and_its_position() {
    let cases: &[(&str, usize, &str)] = &[
        (
            r#"{service="api"} | pattern "<a> <b>""#,
            19,
            "`pattern` stage",
        ),
        (r#"{service="api"} | unwrap bytes"#, 19, "`unwrap` stage"),
        (
            r#"quantile_over_time(0.9, {a="b"}[1m])"#,
            1,
            "`quantile_over_time`",
        ),
        (r#"{a="b"} |= "x" or "y""#, 16, "`or` between line filters"),
        (r#"{service="api"} | json foo="bar""#, 24, "parameters"),
        (r#"{service="api"}[5m]"#, 16, "range"),
        (r#"count_over_time({a="b"}[5m]) or vector(0)"#, 30, "`or`"),
        (
            r#"sum(count_over_time({a="b"}[5m])) by (x) + on (x) vector(1)"#,
            44,
            "`on`",
        ),
        (r#"{a="b"} | took > 10s"#, 18, "durations"),
        (r#"{a=b}"#, 4, "quoted string"),
        (r#"{a="b""#, 7, "`}`"),
        (r#"{}"#, 3, "at least one"),
        (r#"{a!="b"}"#, 9, "at least one"),
        (r#"count_over_time({a="b"}[5q])"#, 25, "duration"),
        (r#"rate({a="b"})"#, 13, "`[`"),
        (r#"sum({a="b"})"#, 5, "log query is not allowed"),
        (r#"{a="b"} + 1"#, 9, "numbers on both sides"),
        (r#"{a="\q"}"#, 7, "escape"),
        (r#"topk(x, rate({a="b"}[1m]))"#, 6, "number k"),
        (r#"foo(1)"#, 1, "unexpected identifier `foo`"),
        (r#"count_over_time({a="b"}[5m] offset 1h)"#, 29, "`offset`"),
        ("{a=\"b\"}\n  | regexp \"x\"", 5, "`regexp`"),
    ];
    let mut wrong = Vec::new();
    for (q, col, needle) in cases {
        let e = err(q);
        if !e.message.contains(needle) || e.col != *col {
            wrong.push(format!("{q}: {e} (expected col {col}, {needle})"));
        }
        assert!(e.to_string().starts_with("parse error at line "), "{e}");
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(err("{a=\"b\"}\n  | regexp \"x\"").line, 2);
    assert!(err("").message.contains("empty"));
    assert!(
        err(&"{a=\"b\"} |= \"x\"".repeat(10_000))
            .message
            .contains("longer")
    );
}

#[test]
fn durations() {
    for (q, secs) in [
        ("1m", 60.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
        ("2d", 172_800.0),
        ("1w", 604_800.0),
    ] {
        let Expr::Metric(MetricExpr::Range { range, .. }) = ok(&format!(r#"rate({{a="b"}}[{q}])"#))
        else {
            panic!()
        };
        assert_eq!(range.as_secs_f64(), secs, "{q}");
    }
}

#[test]
fn never_panics_on_prefixes_of_valid_queries() {
    let q = r#"topk(3, sum by (level) (rate({service="api", level=~"e.*"} |= "x" | json | a >= 1.5 or b="c" | line_format "{{.a}}" [5m]))) * 2 >= bool 1"#;
    ok(q);
    for (i, _) in q.char_indices() {
        let _ = parse(&q[..i]);
    }
}

/// The corpus Grafana's grammar also checks (tests/tests/loki.rs): all of it parses here.
const CORPUS: &str = include_str!("corpus.logql");

#[test]
fn the_corpus_parses() {
    let mut n = 0;
    for q in CORPUS
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        ok(q);
        n += 1;
    }
    assert!(n >= 30);
}
