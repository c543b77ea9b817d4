//! Loki's response shapes: `{"status": "success", "data": {"resultType": …, "result": …}}`,
//! log lines as `["<ns>", "<line>"]`, samples as `[<seconds>, "<value>"]`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value as Json, json};

use super::eval::Value;
use super::pipeline::{Entry, Labels};

/// `{"status": "success", "data": …}`
pub fn success(data: impl Serialize) -> Json {
    json!({"status": "success", "data": data})
}

/// A sample value as Prometheus and Loki print it: `2`, `0.5`, `NaN`, `+Inf`.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

/// A sample time: seconds, as a JSON number with up to millisecond precision.
pub fn seconds(ns: i64) -> Json {
    let ms = ns.div_euclid(1_000_000);
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

/// Query statistics, in the part of Loki's shape Grafana shows.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    pub lines: u64,
    pub bytes: u64,
    pub returned: u64,
    pub secs: f64,
}

impl Stats {
    pub fn to_json(self) -> Json {
        let per_sec = |n: u64| {
            if self.secs > 0.0 {
                (n as f64 / self.secs) as u64
            } else {
                n
            }
        };
        json!({"summary": {
            "bytesProcessedPerSecond": per_sec(self.bytes),
            "linesProcessedPerSecond": per_sec(self.lines),
            "totalBytesProcessed": self.bytes,
            "totalLinesProcessed": self.lines,
            "execTime": self.secs,
            "queueTime": 0,
            "subqueries": 0,
            "totalEntriesReturned": self.returned,
            "splits": 0,
            "shards": 0,
        }})
    }
}

fn query_data(result_type: &str, result: Json, stats: Stats) -> Json {
    success(json!({"resultType": result_type, "result": result, "stats": stats.to_json()}))
}

/// Entries (already in the requested order) grouped into streams, each keeping that order.
pub fn streams(entries: &[Entry], stats: Stats) -> Json {
    let mut order: Vec<&Labels> = Vec::new();
    let mut by: BTreeMap<&Labels, Vec<[String; 2]>> = BTreeMap::new();
    for e in entries {
        let values = by.entry(&e.labels).or_insert_with(|| {
            order.push(&e.labels);
            Vec::new()
        });
        values.push([e.ts_nanos.to_string(), e.line.clone()]);
    }
    let result: Vec<Json> = order
        .into_iter()
        .map(|l| json!({"stream": l, "values": by[l]}))
        .collect();
    query_data("streams", Json::Array(result), stats)
}

/// A range query's value: `matrix` (a scalar is one series without labels).
pub fn matrix(v: &Value, steps: &[i64], stats: Stats) -> Json {
    let series: Vec<(Labels, Vec<Option<f64>>)> = match v {
        Value::Scalar(s) => vec![(Labels::new(), vec![Some(*s); steps.len()])],
        Value::Vector(m) => m.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    };
    let result: Vec<Json> = series
        .into_iter()
        .filter(|(_, vals)| vals.iter().any(Option::is_some))
        .map(|(labels, vals)| {
            let values: Vec<Json> = vals
                .iter()
                .zip(steps)
                .filter_map(|(v, t)| v.map(|v| json!([seconds(*t), number(v)])))
                .collect();
            json!({"metric": labels, "values": values})
        })
        .collect();
    query_data("matrix", Json::Array(result), stats)
}

/// An instant query's value: `vector`, or `scalar` for a plain number.
pub fn instant(v: &Value, t: i64, stats: Stats) -> Json {
    match v {
        Value::Scalar(s) => query_data("scalar", json!([seconds(t), number(*s)]), stats),
        Value::Vector(m) => {
            let result: Vec<Json> = m
                .iter()
                .filter_map(|(labels, vals)| {
                    vals.first()
                        .copied()
                        .flatten()
                        .map(|v| json!({"metric": labels, "value": [seconds(t), number(v)]}))
                })
                .collect();
            query_data("vector", Json::Array(result), stats)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_times_as_loki_prints_them() {
        assert_eq!(number(2.0), "2");
        assert_eq!(number(0.25), "0.25");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(seconds(4_000_000_000).to_string(), "4");
        assert_eq!(
            seconds(1_700_000_000_250_000_000).to_string(),
            "1700000000.25"
        );
    }

    #[test]
    fn health_check_shape() {
        let v = Value::Vector([(Labels::new(), vec![Some(2.0)])].into());
        let j = instant(&v, 4_000_000_000, Stats::default());
        assert_eq!(j["status"], "success");
        assert_eq!(j["data"]["resultType"], "vector");
        assert_eq!(
            j["data"]["result"],
            json!([{"metric": {}, "value": [4, "2"]}])
        );
    }

    #[test]
    fn streams_keep_the_order_and_use_ns_strings() {
        let l: Labels = [("service".to_string(), "api".to_string())].into();
        let e = |ts: i64, line: &str| Entry {
            ts_nanos: ts,
            labels: l.clone(),
            line: line.into(),
        };
        let j = streams(&[e(2, "b"), e(1, "a")], Stats::default());
        assert_eq!(
            j["data"]["result"],
            json!([{"stream": {"service": "api"}, "values": [["2", "b"], ["1", "a"]]}])
        );
    }
}
