//! `count_over_time` and `rate` of a query that selects by `service` and `level` only, answered
//! from the per-minute counters (Redis's, and the archive segments' beyond them) instead of
//! reading every event: Grafana's log-volume query over a day is 1,441 hash reads, not a
//! million decoded events.
//!
//! The counters count an event in the minute `[m, m + 60 s)` holding its timestamp, so a window
//! `(t - range, t]` is the minutes `[t - range, t)`: only when `t` and `range` are whole minutes,
//! and then an event stamped exactly on a minute falls in the window after the one Loki would
//! give it (the scan answers every other query, exactly).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use logjet_core::keys;

use super::logql::RangeFn;
use super::pipeline::{CompiledLog, LabelMatcher, Labels};

const NS_PER_SEC: i64 = 1_000_000_000;
const MINUTE: i64 = 60;

/// A range aggregation the counters can answer.
#[derive(Debug, Clone)]
pub struct CounterPlan {
    selector: Vec<LabelMatcher>,
    func: RangeFn,
    range_secs: i64,
}

impl CounterPlan {
    /// The plan for `func(log[range])` at `steps` (ns), or `None` when the events must be read:
    /// bytes are not counted, labels other than service and level, a line filter or parser,
    /// or a range or step that is not a whole minute.
    pub fn new(
        func: RangeFn,
        log: &CompiledLog,
        range: Duration,
        steps: &[i64],
    ) -> Option<CounterPlan> {
        if !matches!(func, RangeFn::CountOverTime | RangeFn::Rate) {
            return None;
        }
        if !log.selects_by_service_and_level_only() {
            return None;
        }
        let range_ns = i64::try_from(range.as_nanos()).ok()?;
        let whole_minutes = |ns: i64| ns.rem_euclid(MINUTE * NS_PER_SEC) == 0;
        if range_ns == 0 || !whole_minutes(range_ns) || !steps.iter().all(|t| whole_minutes(*t)) {
            return None;
        }
        Some(CounterPlan {
            selector: log.selector.clone(),
            func,
            range_secs: range_ns / NS_PER_SEC,
        })
    }

    /// The service the selector names with `=`, to narrow the archive's read.
    pub fn service(&self) -> Option<&str> {
        self.selector
            .iter()
            .find(|m| m.name == "service" && m.op == super::logql::MatchOp::Eq)
            .map(|m| m.value.as_str())
    }

    /// The minute starts (unix seconds) the steps' windows cover, oldest first.
    pub fn minutes(&self, steps: &[i64]) -> Vec<i64> {
        let (Some(first), Some(last)) = (steps.first(), steps.last()) else {
            return Vec::new();
        };
        let (from, to) = (first / NS_PER_SEC - self.range_secs, last / NS_PER_SEC);
        (0..)
            .map(|i| from + i * MINUTE)
            .take_while(|m| *m < to)
            .collect()
    }

    /// The aggregation's series, and the events the minutes hold: `hashes[i]` are the counters
    /// (`service|level` → events) of minute `minutes[i]`. A step whose window holds no event
    /// has no value, as in the scan.
    pub fn series(
        &self,
        steps: &[i64],
        minutes: &[i64],
        hashes: &[HashMap<String, u64>],
    ) -> (u64, BTreeMap<Labels, Vec<Option<f64>>>) {
        let Some(&first) = minutes.first() else {
            return (0, BTreeMap::new());
        };
        // Events per series per minute, as running totals: prefix[i] = minutes before i.
        let mut prefix: BTreeMap<Labels, Vec<u64>> = BTreeMap::new();
        for (i, hash) in hashes.iter().enumerate().take(minutes.len()) {
            for (field, n) in hash {
                let Some((service, level)) = keys::split_counter_field(field) else {
                    continue;
                };
                let labels: Labels = [
                    ("service".to_string(), service.to_string()),
                    ("level".to_string(), level.as_str().to_string()),
                ]
                .into();
                if !self
                    .selector
                    .iter()
                    .all(|m| m.matches(labels.get(&m.name).map_or("", String::as_str)))
                {
                    continue;
                }
                prefix
                    .entry(labels)
                    .or_insert_with(|| vec![0; minutes.len() + 1])[i + 1] += n;
            }
        }
        let index = |secs: i64| ((secs - first) / MINUTE).clamp(0, minutes.len() as i64) as usize;
        let mut out = BTreeMap::new();
        let mut events = 0;
        for (labels, mut running) in prefix {
            for i in 1..running.len() {
                running[i] += running[i - 1];
            }
            events += running.last().copied().unwrap_or(0);
            let values: Vec<Option<f64>> = steps
                .iter()
                .map(|t| {
                    let end = t / NS_PER_SEC;
                    let n = running[index(end)] - running[index(end - self.range_secs)];
                    (n > 0).then(|| match self.func {
                        RangeFn::Rate => n as f64 / self.range_secs as f64,
                        _ => n as f64,
                    })
                })
                .collect();
            if values.iter().any(Option::is_some) {
                out.insert(labels, values);
            }
        }
        (events, out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loki::eval::{self, RangeInput, Steps};
    use crate::loki::logql::{self, Expr, MetricExpr};
    use crate::loki::pipeline::Entry;

    const M: i64 = 60 * NS_PER_SEC;

    fn metric(q: &str) -> MetricExpr {
        match logql::parse(q).unwrap() {
            Expr::Metric(m) => m,
            Expr::Log(_) => panic!("not a metric query"),
        }
    }

    fn plan(q: &str, steps: &[i64], field_labels: &[String]) -> Option<CounterPlan> {
        let m = metric(q);
        let (func, log, range) = m.range_inputs()[0];
        let log = CompiledLog::compile(log, field_labels).unwrap();
        CounterPlan::new(func, &log, range, steps)
    }

    #[test]
    fn only_selector_queries_at_whole_minutes_use_the_counters() {
        let steps = [10 * M, 11 * M];
        for q in [
            r#"count_over_time({service="x"}[1m])"#,
            r#"sum by (level) (rate({service=~"x|y", level!="debug"} | drop __error__ [5m]))"#,
            r#"count_over_time({detected_level="error"}[2m])"#,
        ] {
            assert!(plan(q, &steps, &[]).is_some(), "{q}");
        }
        for q in [
            r#"bytes_over_time({service="x"}[1m])"#,
            r#"count_over_time({service="x"} |= "a" [1m])"#,
            r#"count_over_time({service="x"} | json [1m])"#,
            r#"count_over_time({service="x", region="eu"}[1m])"#,
            r#"count_over_time({service="x"} | drop level [1m])"#,
            r#"count_over_time({service="x"}[90s])"#,
        ] {
            assert!(plan(q, &steps, &[]).is_none(), "{q}");
        }
        let q = r#"count_over_time({service="x"}[1m])"#;
        assert!(
            plan(q, &[10 * M + 1], &[]).is_none(),
            "a step inside a minute"
        );
        assert!(
            plan(q, &steps, &["region".into()]).is_none(),
            "field labels"
        );
    }

    /// The counters' answer equals the scan's for events that are not on a minute boundary.
    #[test]
    fn counters_agree_with_the_scan() {
        let events: Vec<(i64, &str, &str)> = vec![
            (9 * M + 5, "x", "info"),
            (10 * M + 1, "x", "info"),
            (10 * M + 59 * NS_PER_SEC, "x", "error"),
            (11 * M + 30 * NS_PER_SEC, "x", "info"),
            (11 * M + 31 * NS_PER_SEC, "y", "info"),
            (12 * M + 7, "x", "debug"),
            (14 * M + 7, "x", "info"),
        ];
        let steps: Vec<i64> = (10..=15).map(|m| m * M).collect();
        for q in [
            r#"count_over_time({service="x"}[1m])"#,
            r#"sum by (level) (count_over_time({service="x"}[2m]))"#,
            r#"sum(rate({service=~".+", level!="debug"}[3m]))"#,
            r#"count_over_time({service=~"x|y", level="info"}[1m])"#,
        ] {
            let m = metric(q);
            let (func, log_expr, range) = m.range_inputs()[0];
            let log = CompiledLog::compile(log_expr, &[]).unwrap();
            let entries: Vec<Entry> = events
                .iter()
                .filter_map(|(ts, svc, lvl)| {
                    let labels: Labels = [
                        ("service".to_string(), svc.to_string()),
                        ("level".to_string(), lvl.to_string()),
                    ]
                    .into();
                    log.selector
                        .iter()
                        .all(|m| m.matches(&labels[&m.name]))
                        .then(|| Entry {
                            ts_nanos: *ts,
                            labels,
                            line: "l".into(),
                        })
                })
                .collect();
            let p = CounterPlan::new(func, &log, range, &steps).unwrap();
            let minutes = p.minutes(&steps);
            let hashes: Vec<HashMap<String, u64>> = minutes
                .iter()
                .map(|start| {
                    let mut h = HashMap::new();
                    for (ts, svc, lvl) in &events {
                        if ts / NS_PER_SEC / MINUTE * MINUTE == *start {
                            *h.entry(format!("{svc}|{lvl}")).or_default() += 1;
                        }
                    }
                    h
                })
                .collect();
            let by_scan = eval::eval(
                &m,
                &Steps(steps.clone()),
                &mut vec![RangeInput::Entries(entries)].into_iter(),
            );
            let (counted, series) = p.series(&steps, &minutes, &hashes);
            let by_counters = eval::eval(
                &m,
                &Steps(steps.clone()),
                &mut vec![RangeInput::Series(series)].into_iter(),
            );
            assert_eq!(by_counters, by_scan, "{q}");
            assert_ne!(
                by_scan,
                eval::Value::Vector(BTreeMap::new()),
                "{q} found nothing"
            );
            let in_minutes = entries_in(&events, &log, minutes[0] * NS_PER_SEC, steps[5]);
            assert_eq!(counted, in_minutes, "{q}: events the minutes hold");
        }
    }

    /// Events `log` selects stamped in `[from, to)`.
    fn entries_in(events: &[(i64, &str, &str)], log: &CompiledLog, from: i64, to: i64) -> u64 {
        events
            .iter()
            .filter(|(ts, svc, lvl)| {
                *ts >= from
                    && *ts < to
                    && log.selector.iter().all(|m| match m.name.as_str() {
                        "service" => m.matches(svc),
                        _ => m.matches(lvl),
                    })
            })
            .count() as u64
    }

    #[test]
    fn minutes_cover_the_first_window_to_the_last_step() {
        let p = plan(r#"count_over_time({service="x"}[2m])"#, &[10 * M], &[]).unwrap();
        assert_eq!(p.minutes(&[10 * M, 11 * M]), vec![480, 540, 600]);
        assert_eq!(p.service(), Some("x"));
    }
}
