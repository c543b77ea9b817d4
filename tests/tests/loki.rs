//! Loki's read API as Grafana's Loki data source calls it, against real nats and redis.
//!
//! The requests are reconstructed from Grafana's source:
//! - `pkg/tsdb/loki/healthcheck.go`: instant `vector(1)+vector(1)`, `time` = 4 s in ns, expects
//!   one frame whose value is 2.
//! - `pkg/tsdb/loki/api.go` (`makeDataRequest`): `query_range` with `query`, `direction`,
//!   `limit`, `start`/`end` in ns and `step` as `<n>ms`; `query` with `time`; `X-Query-Tags:
//!   Source=logvolhist|logsample` on supporting queries; errors read from `message`.
//! - `public/app/plugins/datasource/loki/datasource.ts` (`getSupplementaryQuery`): log volume
//!   `sum by (level, detected_level) (count_over_time(<expr> | drop __error__[$__auto]))`, and
//!   the logs sample of a metric query (its log query, `maxLines` lines).
//! - `LanguageProvider.ts`: `labels`, `label/<name>/values`, `series` (`match[]`),
//!   `detected_fields`, `index/stats`, `index/volume`, `patterns` (all with `start`/`end` ns).
//!
//! Expected counts are computed here from the events the test sends, not by the code under test.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use logjet_tests::loki::matrix;
use logjet_tests::platform::Platform;
use serde_json::{Value, json};

const SEC: i64 = 1_000_000_000;

#[derive(Clone)]
struct Sent {
    ts: i64,
    service: &'static str,
    level: &'static str,
    message: String,
    region: &'static str,
}

fn events(t0: i64) -> Vec<Sent> {
    (0..600)
        .map(|i| {
            let service = if i % 3 == 0 { "auth" } else { "checkout" };
            let level = ["info", "info", "warn", "error", "debug"][i % 5];
            let status = [200, 200, 404, 500, 503][(i / 2) % 5];
            let message = if i % 2 == 0 {
                format!(
                    "method=GET status={status} took={} path=/pay order=ord-{i:05}",
                    (i * 37) % 400
                )
            } else {
                format!("payment step {} done for ord-{i:05}", i % 11)
            };
            Sent {
                ts: t0 + i as i64 * SEC,
                service,
                level,
                message,
                region: if i % 4 == 0 { "eu" } else { "us" },
            }
        })
        .collect()
}

fn logfmt_num(msg: &str, key: &str) -> Option<f64> {
    msg.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
}

/// Percent-encodes a query string component.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

struct Loki<'a> {
    p: &'a Platform,
}

impl Loki<'_> {
    async fn get_raw(
        &self,
        path: &str,
        params: &[(&str, String)],
        tags: Option<&str>,
    ) -> (u16, Value) {
        let qs: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let mut req = self
            .p
            .http
            .get(format!("{}{path}?{}", self.p.query_url(), qs.join("&")));
        if let Some(t) = tags {
            req = req.header("X-Query-Tags", t);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let text = r.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str, params: &[(&str, String)]) -> Value {
        let (status, body) = self.get_raw(path, params, None).await;
        assert_eq!(status, 200, "{path} {params:?}: {body}");
        body
    }

    /// A range query as Grafana's backend sends it.
    async fn range(
        &self,
        q: &str,
        start: i64,
        end: i64,
        step_ms: i64,
        limit: usize,
        dir: &str,
    ) -> Value {
        let body = self
            .get(
                "/loki/api/v1/query_range",
                &[
                    ("query", q.to_string()),
                    ("direction", dir.to_string()),
                    ("limit", limit.to_string()),
                    ("start", start.to_string()),
                    ("end", end.to_string()),
                    ("step", format!("{step_ms}ms")),
                ],
            )
            .await;
        assert_eq!(body["status"], "success", "{body}");
        body
    }
}

/// Every line of a streams result, `(ts, line)` in answer order.
fn lines(body: &Value) -> Vec<(i64, String)> {
    assert_eq!(body["data"]["resultType"], "streams", "{body}");
    let mut out = Vec::new();
    for s in body["data"]["result"].as_array().unwrap() {
        for v in s["values"].as_array().unwrap() {
            let ts = v[0].as_str().expect("ns timestamps are strings");
            out.push((
                ts.parse::<i64>().unwrap(),
                v[1].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grafana_reads_logjet_as_loki() {
    let p = Platform::start(1).await;
    let now = chrono::Utc::now().timestamp();
    // Whole minutes, 30 minutes ago: inside Redis's recent window.
    let t0 = (now - 1800) / 60 * 60 * SEC;
    let sent = events(t0);
    let body: String = sent
        .iter()
        .map(|e| {
            json!({"ts": chrono::DateTime::from_timestamp_nanos(e.ts).to_rfc3339(), "service": e.service,
                   "level": e.level, "message": e.message, "region": e.region})
            .to_string()
                + "\n"
        })
        .collect();
    assert_eq!(p.post("application/x-ndjson", body).await.status(), 202);
    p.wait_for_total(sent.len() as u64, Duration::from_secs(60))
        .await;
    let loki = Loki { p: &p };
    let (start, end) = (t0 - 60 * SEC, t0 + 660 * SEC);

    // Save & test: the health check first, exactly as Grafana parses it.
    let h = loki
        .get(
            "/loki/api/v1/query",
            &[
                ("query", "vector(1)+vector(1)".into()),
                ("direction", "backward".into()),
                ("time", (4 * SEC).to_string()),
            ],
        )
        .await;
    assert_eq!(h["status"], "success");
    assert_eq!(h["data"]["resultType"], "vector");
    // `4000000000` has 10 digits: Loki (and so logjet) reads it as seconds, not ns.
    assert_eq!(
        h["data"]["result"],
        json!([{"metric": {}, "value": [4_000_000_000i64, "2"]}])
    );

    // A log query, newest first, with a line filter.
    let r = loki
        .range(
            r#"{service="checkout"} |= "status=500""#,
            start,
            end,
            2000,
            1000,
            "backward",
        )
        .await;
    let got = lines(&r);
    let want: Vec<&Sent> = sent
        .iter()
        .filter(|e| e.service == "checkout" && e.message.contains("status=500"))
        .collect();
    assert_eq!(got.len(), want.len());
    assert!(!got.is_empty());
    let mut all: Vec<i64> = got.iter().map(|(t, _)| *t).collect();
    assert!(
        all.windows(2).all(|w| w[0] >= w[1]),
        "backward is newest first"
    );
    assert_eq!(all[0], want.iter().map(|e| e.ts).max().unwrap());
    // Forward: oldest first; the limit keeps the oldest.
    let r = loki
        .range(
            r#"{service="checkout"} |= "status=500""#,
            start,
            end,
            2000,
            5,
            "forward",
        )
        .await;
    all = lines(&r).iter().map(|(t, _)| *t).collect();
    let mut oldest: Vec<i64> = want.iter().map(|e| e.ts).collect();
    oldest.sort();
    assert_eq!(all, oldest[..5].to_vec());
    // Logs sample of a metric query (Grafana's `logsample`): its log query, maxLines lines.
    let (status, r) = loki
        .get_raw(
            "/loki/api/v1/query_range",
            &[
                ("query", r#"{service="auth"}"#.into()),
                ("limit", "10".into()),
                ("start", start.to_string()),
                ("end", end.to_string()),
                ("step", "2000ms".into()),
                ("direction", "backward".into()),
            ],
            Some("Source=logsample"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(lines(&r).len(), 10);

    // Line filters chained, regex, parsers and label filters: counted independently.
    type Pick = Box<dyn Fn(&Sent) -> bool>;
    let cases: Vec<(&str, Pick)> = vec![
        (
            r#"{service=~"check.*", level!="debug"} |= "ord-" != "status=200" |~ "took=[0-9]{3}""#,
            Box::new(|e: &Sent| {
                e.service == "checkout"
                    && e.level != "debug"
                    && e.message.contains("ord-")
                    && !e.message.contains("status=200")
                    && logfmt_num(&e.message, "took").is_some_and(|t| t >= 100.0)
            }),
        ),
        (
            r#"{service="checkout"} | logfmt | status >= 500 and took < 200"#,
            Box::new(|e: &Sent| {
                e.service == "checkout"
                    && logfmt_num(&e.message, "status").is_some_and(|s| s >= 500.0)
                    && logfmt_num(&e.message, "took").is_some_and(|t| t < 200.0)
            }),
        ),
        (
            r#"{service="auth"} | json | region="eu" | line_format "{{.region}} {{__line__}}""#,
            Box::new(|e: &Sent| e.service == "auth" && e.region == "eu"),
        ),
        (
            r#"{detected_level="error"} !~ "payment""#,
            Box::new(|e: &Sent| e.level == "error" && !e.message.contains("payment")),
        ),
    ];
    for (q, f) in &cases {
        let r = loki.range(q, start, end, 2000, 5000, "backward").await;
        let n = sent.iter().filter(|e| f(e)).count();
        assert!(n > 0, "{q} selects nothing");
        assert_eq!(lines(&r).len(), n, "{q}");
    }
    let r = loki
        .range(cases[2].0, start, end, 2000, 1, "backward")
        .await;
    assert!(lines(&r)[0].1.starts_with("eu "), "{r}");

    // Metric queries: points at multiples of `step`, left-open windows, every aggregation.
    let step = 60 * SEC;
    let window_count = |t: i64, f: &dyn Fn(&Sent) -> bool| {
        sent.iter()
            .filter(|e| e.ts > t - step && e.ts <= t && f(e))
            .count() as f64
    };
    let r = loki
        .range(
            r#"sum by (level) (count_over_time({service="checkout"}[1m]))"#,
            start + 7 * SEC,
            end,
            60_000,
            100,
            "backward",
        )
        .await;
    let m = matrix(&r);
    assert_eq!(m.len(), 4, "one series per level: {r}");
    for (labels, pts) in &m {
        let level = labels["level"].as_str().unwrap().to_string();
        assert_eq!(labels.as_object().unwrap().len(), 1);
        for (t, v) in pts {
            assert_eq!(t % 60, 0, "aligned to step");
            let want = window_count(t * SEC, &|e| e.service == "checkout" && e.level == level);
            assert_eq!(*v, want, "{level} at {t}");
        }
        let total: f64 = pts.iter().map(|p| p.1).sum();
        let want = sent
            .iter()
            .filter(|e| e.service == "checkout" && e.level == level)
            .count() as f64;
        assert_eq!(total, want, "{level}: every event in exactly one window");
    }
    // Grafana's log-volume query, tagged.
    let vol_q = r#"sum by (level, detected_level) (count_over_time({service="checkout"} |= "ord-" | drop __error__[1m]))"#;
    let (status, r) = loki
        .get_raw(
            "/loki/api/v1/query_range",
            &[
                ("query", vol_q.into()),
                ("start", start.to_string()),
                ("end", end.to_string()),
                ("step", "60000ms".into()),
                ("direction", "backward".into()),
            ],
            Some("Source=logvolhist"),
        )
        .await;
    assert_eq!(status, 200, "{r}");
    let total: f64 = matrix(&r)
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .sum();
    assert_eq!(
        total,
        sent.iter().filter(|e| e.service == "checkout").count() as f64
    );
    // One step, every range aggregation and arithmetic.
    let t = t0 + 300 * SEC;
    let in_window = |e: &Sent| e.service == "checkout" && e.ts > t - step && e.ts <= t;
    let n = sent.iter().filter(|e| in_window(e)).count() as f64;
    let bytes: usize = sent
        .iter()
        .filter(|e| in_window(e))
        .map(|e| e.message.len())
        .sum();
    for (q, want) in [
        (r#"sum(count_over_time({service="checkout"}[1m]))"#, n),
        (r#"sum(rate({service="checkout"}[1m]))"#, n / 60.0),
        (
            r#"sum(bytes_over_time({service="checkout"}[1m]))"#,
            bytes as f64,
        ),
        (
            r#"sum(bytes_rate({service="checkout"}[1m]))"#,
            bytes as f64 / 60.0,
        ),
        (
            r#"sum(count_over_time({service="checkout"}[1m])) * 2 + 1"#,
            n * 2.0 + 1.0,
        ),
        (r#"count(count_over_time({service="checkout"}[1m]))"#, {
            let mut lv: Vec<&str> = sent
                .iter()
                .filter(|e| in_window(e))
                .map(|e| e.level)
                .collect();
            lv.sort();
            lv.dedup();
            lv.len() as f64
        }),
    ] {
        let r = loki
            .get(
                "/loki/api/v1/query",
                &[("query", q.to_string()), ("time", t.to_string())],
            )
            .await;
        assert_eq!(r["data"]["resultType"], "vector", "{q}: {r}");
        let v: f64 = r["data"]["result"][0]["value"][1]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((v - want).abs() < 1e-9, "{q}: {v} != {want}");
        assert_eq!(r["data"]["result"][0]["value"][0], json!(t / SEC));
    }
    let r = loki
        .get(
            "/loki/api/v1/query",
            &[
                (
                    "query",
                    r#"topk(2, sum by (level) (count_over_time({service="checkout"}[10m])))"#
                        .into(),
                ),
                ("time", (t0 + 600 * SEC).to_string()),
            ],
        )
        .await;
    assert_eq!(r["data"]["result"].as_array().unwrap().len(), 2, "{r}");

    // Metadata endpoints.
    let r = loki
        .get(
            "/loki/api/v1/labels",
            &[("start", start.to_string()), ("end", end.to_string())],
        )
        .await;
    assert_eq!(
        r,
        json!({"status": "success", "data": ["level", "service"]})
    );
    let r = loki
        .get(
            "/loki/api/v1/label/service/values",
            &[("start", start.to_string()), ("end", end.to_string())],
        )
        .await;
    assert_eq!(
        r,
        json!({"status": "success", "data": ["auth", "checkout"]})
    );
    let r = loki
        .get(
            "/loki/api/v1/label/level/values",
            &[
                ("query", r#"{service="auth"}"#.into()),
                ("start", start.to_string()),
                ("end", end.to_string()),
            ],
        )
        .await;
    assert_eq!(r["data"], json!(["debug", "error", "info", "warn"]));
    let r = loki
        .get(
            "/loki/api/v1/series",
            &[
                ("match[]", r#"{service="auth", level="error"}"#.into()),
                ("start", start.to_string()),
                ("end", end.to_string()),
            ],
        )
        .await;
    assert_eq!(
        r,
        json!({"status": "success", "data": [{"level": "error", "service": "auth"}]})
    );
    let r = loki
        .get(
            "/loki/api/v1/index/stats",
            &[
                ("query", r#"{service="auth"}"#.into()),
                ("start", start.to_string()),
                ("end", end.to_string()),
            ],
        )
        .await;
    let auth: Vec<&Sent> = sent.iter().filter(|e| e.service == "auth").collect();
    assert_eq!(r["entries"], json!(auth.len()));
    assert_eq!(r["streams"], json!(4));
    assert_eq!(
        r["bytes"],
        json!(auth.iter().map(|e| e.message.len()).sum::<usize>())
    );
    let r = loki
        .get(
            "/loki/api/v1/index/volume",
            &[
                ("query", r#"{service=~".+"}"#.into()),
                ("start", start.to_string()),
                ("end", end.to_string()),
            ],
        )
        .await;
    assert_eq!(r["data"]["resultType"], "vector");
    let vols = r["data"]["result"].as_array().unwrap();
    assert_eq!(vols.len(), 2);
    let checkout_bytes: usize = sent
        .iter()
        .filter(|e| e.service == "checkout")
        .map(|e| e.message.len())
        .sum();
    assert_eq!(vols[0]["metric"], json!({"service": "checkout"}));
    assert_eq!(vols[0]["value"][1], json!(checkout_bytes.to_string()));
    let r = loki
        .get(
            "/loki/api/v1/detected_fields",
            &[
                ("query", r#"{service="auth"}"#.into()),
                ("start", start.to_string()),
                ("end", end.to_string()),
            ],
        )
        .await;
    assert_eq!(
        r["fields"],
        json!([{"label": "region", "type": "string", "cardinality": 2, "parsers": ["json"]}])
    );
    let r = loki
        .get(
            "/loki/api/v1/patterns",
            &[
                ("query", r#"{service="checkout"}"#.into()),
                ("start", start.to_string()),
                ("end", end.to_string()),
            ],
        )
        .await;
    let pats = r["data"].as_array().unwrap();
    assert!(!pats.is_empty(), "{r}");
    let counted: i64 = pats
        .iter()
        .flat_map(|p| {
            p["samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s[1].as_i64().unwrap())
        })
        .sum();
    assert_eq!(
        counted as usize,
        sent.iter().filter(|e| e.service == "checkout").count()
    );
    let r = loki.get("/loki/api/v1/status/buildinfo", &[]).await;
    assert!(r["version"].as_str().unwrap().starts_with('3'));
    let (status, body) = loki.get_raw("/ready", &[], None).await;
    assert_eq!((status, body), (200, Value::String("ready\n".into())));

    // Bad input: Loki's error shape, 400, with the position.
    for (params, needle) in [
        (
            vec![(
                "query",
                r#"{service="checkout"} | pattern "<_>""#.to_string(),
            )],
            "col 24",
        ),
        (
            vec![("query", "sum(".to_string())],
            "parse error at line 1, col 5",
        ),
        (
            vec![(
                "query",
                format!(r#"{{service="a"}} |~ "{}""#, "a|".repeat(1000)),
            )],
            "longer than 1024",
        ),
        (
            vec![
                ("query", r#"count_over_time({service="a"}[1m])"#.into()),
                ("start", "1600000000".into()),
                ("end", "1600086400".into()),
                ("step", "1".into()),
            ],
            "11,000 points",
        ),
        (
            vec![
                ("query", r#"{service="a"}"#.into()),
                ("start", "1500000000".into()),
                ("end", "1600000000".into()),
            ],
            "721h",
        ),
        (
            vec![
                ("query", r#"{service="a"}"#.into()),
                ("limit", "100000".into()),
            ],
            "max_entries_limit",
        ),
    ] {
        let (status, body) = loki
            .get_raw("/loki/api/v1/query_range", &params, None)
            .await;
        assert_eq!(status, 400, "{params:?}: {body}");
        assert_eq!(body["status"], "error");
        assert_eq!(body["code"], 400);
        assert!(body["message"].as_str().unwrap().contains(needle), "{body}");
    }
}

/// The LogQL corpus of logjet's parser tests and the dashboard's Loki queries parse with
/// Grafana's own grammar (npm `@grafana/lezer-logql`, run with node) as well as with logjet's.
#[test]
fn the_logql_corpus_parses_with_grafanas_grammar() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut queries: Vec<String> =
        std::fs::read_to_string(root.join("query/src/loki/logql/corpus.logql"))
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect();
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("infra/grafana/dashboards/logjet-logs.json")).unwrap(),
    )
    .unwrap();
    let panels = logjet_tests::grafana::loki_panel_queries(&dash);
    assert_eq!(panels.len(), 4, "the logs dashboard's Loki queries");
    for p in panels {
        let q = p.expr.replace("$service", ".+").replace("$search", "");
        logjet_query::loki::logql::parse(&q).unwrap_or_else(|e| panic!("{}: {q}: {e}", p.title));
        queries.push(q);
    }
    let dir = logjet_tests::tools::tools_dir().join("lezer-logql");
    assert!(
        dir.join("node_modules/@grafana/lezer-logql").is_dir(),
        "{} is missing: run ./scripts/test.sh (its setup installs @grafana/lezer-logql with npm)",
        dir.display()
    );
    let mut child = Command::new("node")
        .arg(root.join("scripts/lezer-logql-check.cjs"))
        .env("LEZER_LOGQL_DIR", &dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node (Debian nodejs) on PATH");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(queries.join("\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("{0}/{0} queries", queries.len())),
        "{text}"
    );
}
