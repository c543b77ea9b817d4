//! Metric queries evaluated over entries already read and piped: range aggregations, vector
//! aggregations and arithmetic, at every step of a range query (or the one step of an instant
//! query). No I/O: the caller hands in each log query's entries.

use std::collections::BTreeMap;

use super::logql::{AggOp, BinOp, CmpOp, MetricExpr, RangeFn};
use super::pipeline::{Entry, Labels};

/// A value over the steps: a plain number, or series with a value (or none) per step.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    Vector(BTreeMap<Labels, Vec<Option<f64>>>),
}

/// Evaluation times, ns, ascending.
#[derive(Debug, Clone)]
pub struct Steps(pub Vec<i64>);

/// What one range aggregation is computed from.
#[derive(Debug, Clone, PartialEq)]
pub enum RangeInput {
    /// The log query's entries from `steps[0] - range` to the last step.
    Entries(Vec<Entry>),
    /// The aggregation's values already computed at every step (from the per-minute counters,
    /// [`super::counts`]).
    Series(BTreeMap<Labels, Vec<Option<f64>>>),
}

/// Evaluates `e`. `inputs` holds, in the order of [`MetricExpr::range_inputs`], what each range
/// aggregation is computed from.
pub fn eval(e: &MetricExpr, steps: &Steps, inputs: &mut std::vec::IntoIter<RangeInput>) -> Value {
    match e {
        MetricExpr::Scalar(v) => Value::Scalar(*v),
        MetricExpr::Vector(v) => {
            Value::Vector([(Labels::new(), vec![Some(*v); steps.0.len()])].into())
        }
        MetricExpr::Range { func, range, .. } => Value::Vector(match inputs.next() {
            Some(RangeInput::Series(s)) => s,
            Some(RangeInput::Entries(list)) => {
                range_agg(*func, range.as_nanos() as i64, &list, steps)
            }
            None => BTreeMap::new(),
        }),
        MetricExpr::Agg {
            op,
            param,
            grouping,
            inner,
        } => {
            let v = match eval(inner, steps, inputs) {
                Value::Scalar(s) => [(Labels::new(), vec![Some(s); steps.0.len()])].into(),
                Value::Vector(v) => v,
            };
            let key = |l: &Labels| -> Labels {
                match grouping {
                    None => Labels::new(),
                    Some(g) if g.without => l
                        .iter()
                        .filter(|(k, _)| !g.labels.contains(k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    Some(g) => l
                        .iter()
                        .filter(|(k, _)| {
                            g.labels.contains(k)
                                // Grafana's `by (level, detected_level)`: logjet's level is both.
                                || (k.as_str() == "level"
                                    && g.labels.iter().any(|n| n == "detected_level"))
                        })
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                }
            };
            Value::Vector(match op {
                AggOp::Topk | AggOp::Bottomk => select_k(
                    *op == AggOp::Topk,
                    param.unwrap_or(1.0) as usize,
                    &v,
                    key,
                    steps,
                ),
                _ => aggregate(*op, &v, key, steps),
            })
        }
        MetricExpr::Binary {
            op,
            return_bool,
            lhs,
            rhs,
        } => {
            let l = eval(lhs, steps, inputs);
            let r = eval(rhs, steps, inputs);
            binary(*op, *return_bool, l, r)
        }
    }
}

fn range_agg(
    func: RangeFn,
    range_ns: i64,
    entries: &[Entry],
    steps: &Steps,
) -> BTreeMap<Labels, Vec<Option<f64>>> {
    let mut by_series: BTreeMap<&Labels, Vec<(i64, usize)>> = BTreeMap::new();
    for e in entries {
        by_series
            .entry(&e.labels)
            .or_default()
            .push((e.ts_nanos, e.line.len()));
    }
    let secs = range_ns as f64 / 1e9;
    let mut out = BTreeMap::new();
    for (labels, mut pts) in by_series {
        pts.sort_unstable_by_key(|p| p.0);
        let mut values = Vec::with_capacity(steps.0.len());
        let (mut lo, mut hi) = (0usize, 0usize);
        let (mut count, mut bytes) = (0u64, 0u64);
        for &t in &steps.0 {
            // The window is (t - range, t].
            while hi < pts.len() && pts[hi].0 <= t {
                count += 1;
                bytes += pts[hi].1 as u64;
                hi += 1;
            }
            while lo < hi && pts[lo].0 <= t - range_ns {
                count -= 1;
                bytes -= pts[lo].1 as u64;
                lo += 1;
            }
            values.push((count > 0).then(|| match func {
                RangeFn::CountOverTime => count as f64,
                RangeFn::Rate => count as f64 / secs,
                RangeFn::BytesOverTime => bytes as f64,
                RangeFn::BytesRate => bytes as f64 / secs,
            }));
        }
        if values.iter().any(Option::is_some) {
            out.insert(labels.clone(), values);
        }
    }
    out
}

fn aggregate(
    op: AggOp,
    v: &BTreeMap<Labels, Vec<Option<f64>>>,
    key: impl Fn(&Labels) -> Labels,
    steps: &Steps,
) -> BTreeMap<Labels, Vec<Option<f64>>> {
    let n = steps.0.len();
    // Per group and step: (sum, count, min, max).
    type Moments = (f64, f64, f64, f64);
    let mut acc: BTreeMap<Labels, Vec<Option<Moments>>> = BTreeMap::new();
    for (labels, values) in v {
        let slot = acc.entry(key(labels)).or_insert_with(|| vec![None; n]);
        for (i, x) in values.iter().enumerate() {
            if let Some(x) = *x {
                slot[i] = Some(match slot[i] {
                    None => (x, 1.0, x, x),
                    Some((s, c, lo, hi)) => (s + x, c + 1.0, lo.min(x), hi.max(x)),
                });
            }
        }
    }
    acc.into_iter()
        .map(|(k, vals)| {
            let vals = vals
                .into_iter()
                .map(|a| {
                    a.map(|(s, c, lo, hi)| match op {
                        AggOp::Sum => s,
                        AggOp::Avg => s / c,
                        AggOp::Min => lo,
                        AggOp::Max => hi,
                        _ => c,
                    })
                })
                .collect();
            (k, vals)
        })
        .collect()
}

fn select_k(
    top: bool,
    k: usize,
    v: &BTreeMap<Labels, Vec<Option<f64>>>,
    key: impl Fn(&Labels) -> Labels,
    steps: &Steps,
) -> BTreeMap<Labels, Vec<Option<f64>>> {
    let mut out: BTreeMap<Labels, Vec<Option<f64>>> = BTreeMap::new();
    for i in 0..steps.0.len() {
        let mut groups: BTreeMap<Labels, Vec<(&Labels, f64)>> = BTreeMap::new();
        for (labels, values) in v {
            if let Some(x) = values[i] {
                groups.entry(key(labels)).or_default().push((labels, x));
            }
        }
        for (_, mut members) in groups {
            members.sort_by(|a, b| {
                let o = a.1.total_cmp(&b.1);
                if top { o.reverse() } else { o }.then_with(|| a.0.cmp(b.0))
            });
            for (labels, x) in members.into_iter().take(k) {
                out.entry(labels.clone())
                    .or_insert_with(|| vec![None; steps.0.len()])[i] = Some(x);
            }
        }
    }
    out
}

fn apply(op: BinOp, return_bool: bool, a: f64, b: f64, keep: f64) -> Option<f64> {
    Some(match op {
        BinOp::Add => a + b,
        BinOp::Sub => a - b,
        BinOp::Mul => a * b,
        BinOp::Div => a / b,
        BinOp::Mod => a % b,
        BinOp::Pow => a.powf(b),
        BinOp::Cmp(c) => {
            let holds = cmp(c, a, b);
            if return_bool {
                holds as u8 as f64
            } else if holds {
                keep
            } else {
                return None;
            }
        }
    })
}

fn cmp(c: CmpOp, a: f64, b: f64) -> bool {
    c.holds(a, b)
}

fn binary(op: BinOp, return_bool: bool, l: Value, r: Value) -> Value {
    match (l, r) {
        (Value::Scalar(a), Value::Scalar(b)) => {
            // Between scalars a comparison needs `bool`; without it, the scalar stays if true.
            Value::Scalar(apply(op, true, a, b, a).unwrap_or(f64::NAN))
        }
        (Value::Vector(v), Value::Scalar(b)) => Value::Vector(
            v.into_iter()
                .map(|(k, vals)| {
                    let vals = vals
                        .into_iter()
                        .map(|a| a.and_then(|a| apply(op, return_bool, a, b, a)))
                        .collect();
                    (k, vals)
                })
                .filter(|(_, vals): &(Labels, Vec<Option<f64>>)| vals.iter().any(Option::is_some))
                .collect(),
        ),
        (Value::Scalar(a), Value::Vector(v)) => Value::Vector(
            v.into_iter()
                .map(|(k, vals)| {
                    let vals = vals
                        .into_iter()
                        .map(|b| b.and_then(|b| apply(op, return_bool, a, b, b)))
                        .collect();
                    (k, vals)
                })
                .filter(|(_, vals): &(Labels, Vec<Option<f64>>)| vals.iter().any(Option::is_some))
                .collect(),
        ),
        (Value::Vector(lv), Value::Vector(rv)) => Value::Vector(
            lv.into_iter()
                .filter_map(|(k, a)| {
                    let b = rv.get(&k)?;
                    let vals: Vec<Option<f64>> = a
                        .iter()
                        .zip(b)
                        .map(|(a, b)| match (a, b) {
                            (Some(a), Some(b)) => apply(op, return_bool, *a, *b, *a),
                            _ => None,
                        })
                        .collect();
                    vals.iter().any(Option::is_some).then_some((k, vals))
                })
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loki::logql::{Expr, parse};

    fn metric(q: &str) -> MetricExpr {
        match parse(q).unwrap() {
            Expr::Metric(m) => m,
            Expr::Log(_) => panic!(),
        }
    }

    fn entry(ts_s: i64, level: &str, line: &str) -> Entry {
        Entry {
            ts_nanos: ts_s * 1_000_000_000,
            labels: [
                ("service".to_string(), "api".to_string()),
                ("level".to_string(), level.to_string()),
            ]
            .into(),
            line: line.into(),
        }
    }

    fn run(q: &str, steps: &[i64], entries: Vec<Vec<Entry>>) -> Value {
        let steps = Steps(steps.iter().map(|s| s * 1_000_000_000).collect());
        eval(
            &metric(q),
            &steps,
            &mut entries
                .into_iter()
                .map(RangeInput::Entries)
                .collect::<Vec<_>>()
                .into_iter(),
        )
    }

    fn series(v: &Value) -> &BTreeMap<Labels, Vec<Option<f64>>> {
        match v {
            Value::Vector(v) => v,
            Value::Scalar(_) => panic!(),
        }
    }

    #[test]
    fn health_check_is_two() {
        let v = run("vector(1)+vector(1)", &[4], vec![]);
        assert_eq!(series(&v)[&Labels::new()], vec![Some(2.0)]);
        assert_eq!(run("1 + 2 * 3", &[4], vec![]), Value::Scalar(7.0));
    }

    #[test]
    fn range_aggregations_use_left_open_windows() {
        let es = vec![
            entry(1, "info", "aaaa"),
            entry(60, "info", "bb"),
            entry(61, "error", "c"),
            entry(119, "info", "dd"),
        ];
        let q = r#"count_over_time({service="api"}[1m])"#;
        let v = run(q, &[60, 120], vec![es.clone()]);
        let s = series(&v);
        let info: Labels = [("service", "api"), ("level", "info")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(s[&info], vec![Some(2.0), Some(1.0)]);
        let v = run(
            r#"bytes_over_time({service="api"}[1m])"#,
            &[60, 120],
            vec![es.clone()],
        );
        assert_eq!(series(&v)[&info], vec![Some(6.0), Some(2.0)]);
        let v = run(r#"rate({service="api"}[1m])"#, &[60], vec![es.clone()]);
        assert_eq!(series(&v)[&info], vec![Some(2.0 / 60.0)]);
        let v = run(
            r#"bytes_rate({service="api"}[1m])"#,
            &[60],
            vec![es.clone()],
        );
        assert_eq!(series(&v)[&info], vec![Some(0.1)]);
        // Grafana's volume query; then sum, max, count, topk and a threshold.
        let v = run(
            r#"sum by (level, detected_level) (count_over_time({service="api"}[1m]))"#,
            &[60, 120],
            vec![es.clone()],
        );
        let err: Labels = [("level".to_string(), "error".to_string())].into();
        assert_eq!(series(&v)[&err], vec![None, Some(1.0)]);
        let v = run(
            r#"sum(count_over_time({service="api"}[1m])) * 2"#,
            &[120],
            vec![es.clone()],
        );
        assert_eq!(series(&v)[&Labels::new()], vec![Some(4.0)]);
        let v = run(
            r#"count(count_over_time({service="api"}[2m]))"#,
            &[120],
            vec![es.clone()],
        );
        assert_eq!(series(&v)[&Labels::new()], vec![Some(2.0)]);
        let v = run(
            r#"topk(1, count_over_time({service="api"}[2m]))"#,
            &[120],
            vec![es.clone()],
        );
        assert_eq!(series(&v).len(), 1);
        assert_eq!(series(&v)[&info], vec![Some(3.0)]);
        let v = run(
            r#"count_over_time({service="api"}[2m]) > 1"#,
            &[120],
            vec![es.clone()],
        );
        assert_eq!(series(&v).keys().collect::<Vec<_>>(), vec![&info]);
        let v = run(
            r#"count_over_time({service="api"}[2m]) > bool 1"#,
            &[120],
            vec![es],
        );
        let mut api_err = info.clone();
        api_err.insert("level".into(), "error".into());
        assert_eq!(series(&v)[&api_err], vec![Some(0.0)]);
        assert_eq!(series(&v)[&info], vec![Some(1.0)]);
    }
}
