//! The alert rules (infra/prometheus/rules/) and the Grafana dashboard (infra/grafana/dashboards/)
//! against a real Prometheus scraping the running services:
//! - `promtool check metrics` is clean on every service's live /metrics;
//! - every metric name used by a rule or a dashboard panel exists in the live scrape, and every
//!   expression parses and evaluates on that Prometheus;
//! - with the processors stopped while ingest goes on, the "pipeline stalled" expression becomes
//!   true (and the loaded alert goes pending); it is false while they run;
//! - the Kubernetes copies (PrometheusRule, dashboard ConfigMap source) do not drift from these.
//!
//! Needs `prometheus` and `promtool` on PATH (Debian package `prometheus`; ./scripts/test.sh and
//! ./scripts/observability-test.sh install it).

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use logjet_tests::grafana::panel_queries;
use logjet_tests::platform::Platform;
use logjet_tests::process::ServiceProcess;
use logjet_tests::servers::free_port;
use serde_json::Value;
use tempfile::TempDir;
use tokio::io::AsyncWriteExt;
use tokio::process::{Child, Command};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const RULES: &str = "infra/prometheus/rules/logjet.rules.yml";
const DASHBOARD: &str = "infra/grafana/dashboards/logjet-pipeline.json";
const STALLED: &str = "LogjetPipelineStalled";

/// A program from PATH, or a failure that says how to get it.
fn tool(name: &str) -> PathBuf {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "`{name}` is not on PATH: run ./scripts/test.sh (or ./scripts/observability-test.sh), \
                 it installs prometheus (the Debian package `prometheus` provides prometheus and promtool)"
            )
        })
}

/// (alert name, expression) of every rule in the rules file.
fn rules() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join(RULES)).unwrap();
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).unwrap();
    let mut out = Vec::new();
    for group in doc["groups"].as_sequence().unwrap() {
        for rule in group["rules"].as_sequence().unwrap() {
            let name = rule["alert"]
                .as_str()
                .or(rule["record"].as_str())
                .unwrap()
                .to_string();
            out.push((name, rule["expr"].as_str().unwrap().trim().to_string()));
        }
    }
    assert!(out.len() >= 8, "rules not found in {RULES}");
    out
}

/// (panel title, expression) of every query of every panel, rows included.
fn panel_exprs() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join(DASHBOARD)).unwrap();
    let dash: Value = serde_json::from_str(&text).unwrap();
    let out: Vec<(String, String)> = panel_queries(&dash)
        .into_iter()
        .map(|q| (q.title, q.expr))
        .collect();
    assert!(out.len() >= 20, "panel queries not found in {DASHBOARD}");
    out
}

// --- metric names out of PromQL -------------------------------------------------------------

const FUNCTIONS_AND_AGGREGATIONS: &[&str] = &[
    "abs",
    "absent",
    "absent_over_time",
    "avg",
    "avg_over_time",
    "bottomk",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "count",
    "count_over_time",
    "count_values",
    "day_of_month",
    "day_of_week",
    "days_in_month",
    "delta",
    "deriv",
    "exp",
    "floor",
    "group",
    "histogram_quantile",
    "holt_winters",
    "hour",
    "idelta",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "max",
    "max_over_time",
    "min",
    "min_over_time",
    "minute",
    "month",
    "predict_linear",
    "present_over_time",
    "quantile",
    "quantile_over_time",
    "rate",
    "resets",
    "round",
    "scalar",
    "sgn",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev",
    "stddev_over_time",
    "stdvar",
    "stdvar_over_time",
    "sum",
    "sum_over_time",
    "time",
    "timestamp",
    "topk",
    "vector",
    "year",
];
const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "bool", "offset", "inf", "nan", "start", "end", "atan2",
];
const LABEL_LIST_KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression selects: every identifier that is not a function,
/// aggregation, keyword, label list, label matcher, string, duration or number.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let c: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    // Skips a quoted string starting at c[i]; returns the index after it.
    let skip_string = |mut i: usize| -> usize {
        let q = c[i];
        i += 1;
        while i < c.len() && c[i] != q {
            if c[i] == '\\' && q != '`' {
                i += 1;
            }
            i += 1;
        }
        i + 1
    };
    // Skips from an opening bracket to after its closing one (strings inside respected).
    let skip_group = |mut i: usize, open: char, close: char| -> usize {
        let mut depth = 0;
        while i < c.len() {
            match c[i] {
                '"' | '\'' | '`' => {
                    i = skip_string(i);
                    continue;
                }
                ch if ch == open => depth += 1,
                ch if ch == close => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        i
    };
    let next_non_space = |mut i: usize| -> usize {
        while i < c.len() && c[i].is_whitespace() {
            i += 1;
        }
        i
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '"' || ch == '\'' || ch == '`' {
            i = skip_string(i);
        } else if ch == '{' {
            i = skip_group(i, '{', '}');
        } else if ch == '[' {
            i = skip_group(i, '[', ']');
        } else if ch == '#' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch.is_ascii_digit()
            || (ch == '.' && c.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // A number or a duration (5m, 1e3, 0x1f): letters and dots belong to it.
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.' || c[i] == '_') {
                i += 1;
            }
        } else if ch.is_ascii_alphabetic() || ch == '_' || ch == ':' {
            let start = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == ':') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let after = next_non_space(i);
            let lower = word.to_ascii_lowercase();
            if LABEL_LIST_KEYWORDS.contains(&lower.as_str()) {
                if c.get(after) == Some(&'(') {
                    i = skip_group(after, '(', ')');
                }
            } else if KEYWORDS.contains(&lower.as_str())
                || FUNCTIONS_AND_AGGREGATIONS.contains(&word.as_str())
                || c.get(after) == Some(&'(')
            {
                // Not a selector.
            } else {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn metric_names_are_parsed_out_of_promql() {
    let names = |e: &str| -> Vec<String> { metric_names(e).into_iter().collect() };
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (le, service) (rate(a_bucket{route!="/x{y}",s=~"a|b"}[5m] offset 1m)))"#
        ),
        ["a_bucket"]
    );
    assert_eq!(
        names(
            "max(lag) > 0 and on() max(deriv(lag[5m])) > 0 and on() (sum(rate(b_total[5m])) == 0 \
             or on() absent(c{service=\"p\"}))"
        ),
        ["b_total", "c", "lag"]
    );
    assert_eq!(
        names("sum without (x) (d) / ignoring (y) group_left (z) e * 1e3 + count(f) or vector(0)"),
        ["d", "e", "f"]
    );
    assert_eq!(names("up{service=~'a|b'} == 0"), ["up"]);
    assert_eq!(
        names("sum(g) by (h) + sum by(i)(j) + k:recorded:rate5m"),
        ["g", "j", "k:recorded:rate5m"]
    );
}

// --- a real Prometheus ------------------------------------------------------------------------

struct Prometheus {
    url: String,
    http: reqwest::Client,
    _child: Child,
    _dir: TempDir,
}

/// Percent-encodes a query parameter value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Prometheus {
    /// Scrapes `targets` (service label, host:port) every second, with the project's rules.
    async fn start(targets: &[(&str, String)]) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 900ms\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\nscrape_configs:\n",
            root().join(RULES).canonicalize().unwrap().display()
        );
        for (service, addr) in targets {
            config.push_str(&format!(
                "  - job_name: {service}\n    honor_labels: true\n    static_configs:\n      \
                 - targets: [\"{addr}\"]\n        labels:\n          service: {service}\n"
            ));
        }
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(tool("prometheus"))
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus starts");
        let p = Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            http: logjet_tests::http_client(),
            _child: child,
            _dir: dir,
        };
        let start = Instant::now();
        loop {
            if let Ok(r) = p.http.get(format!("{}/-/ready", p.url)).send().await
                && r.status().is_success()
            {
                break;
            }
            if start.elapsed() > Duration::from_secs(20) {
                let log = std::fs::read_to_string(p._dir.path().join("prometheus.log"));
                panic!("prometheus not ready after 20 s: {log:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        p
    }

    async fn get(&self, path_and_query: &str) -> Value {
        let r = self
            .http
            .get(format!("{}{path_and_query}", self.url))
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    /// An instant query: Ok(result vector) or Err(Prometheus' error).
    async fn query(&self, expr: &str) -> Result<Vec<Value>, String> {
        let v = self
            .get(&format!("/api/v1/query?query={}", encode(expr)))
            .await;
        if v["status"] == "success" {
            Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
        } else {
            Err(format!("{}: {}", v["errorType"], v["error"]))
        }
    }

    /// Every metric name Prometheus holds.
    async fn names(&self) -> BTreeSet<String> {
        let v = self.get("/api/v1/label/__name__/values").await;
        v["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    }

    /// The state of an alert rule: "inactive", "pending" or "firing".
    async fn alert_state(&self, name: &str) -> String {
        let v = self.get("/api/v1/rules?type=alert").await;
        for g in v["data"]["groups"].as_array().unwrap() {
            for r in g["rules"].as_array().unwrap() {
                if r["name"] == name {
                    assert_eq!(r["health"], "ok", "{name}: {}", r["lastError"]);
                    return r["state"].as_str().unwrap().to_string();
                }
            }
        }
        panic!("rule {name} is not loaded")
    }
}

async fn metrics_text(p: &Platform, base: &str) -> String {
    p.http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Touches every path that makes a series appear: accepted, rejected and duplicate events, a
/// dead letter, a query, a tail.
async fn workload(p: &Platform) -> reqwest::Response {
    let body = "{\"service\":\"api\",\"level\":\"error\",\"message\":\"boom\"}\n{oops\n";
    for _ in 0..2 {
        let r = p
            .http
            .post(format!("{}/logs", p.ingest_url()))
            .header("content-type", "application/x-ndjson")
            .header("idempotency-key", "observability-1")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    let nc = p.nats_client().await;
    nc.publish("logs.api", "{\"broken".into()).await.unwrap();
    nc.flush().await.unwrap();
    p.wait_for_total(1, Duration::from_secs(10)).await;
    p.query(serde_json::json!({"contains": "boom"})).await;
    let tail = p
        .http
        .get(format!("{}/logs/tail", p.query_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), 200);
    tail
}

/// An archiver process on the platform's NATS, archiving to a local directory (its metrics are
/// part of the contract, the rules and the dashboard's archive row). Needs
/// `cargo build --bins -p logjet-archiver`.
struct Archiver {
    process: ServiceProcess,
    _dirs: (TempDir, TempDir),
}

async fn start_archiver(p: &Platform) -> Archiver {
    let (archive, spool) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let process = ServiceProcess::spawn(
        "logjet-archiver",
        &[
            ("LOGJET_NATS_URL", p.nats.url()),
            (
                "LOGJET_ARCHIVE_URL",
                format!("file://{}", archive.path().display()),
            ),
            ("LOGJET_SPOOL_DIR", spool.path().display().to_string()),
            ("LOGJET_SEGMENT_MAX_AGE", "1s".into()),
        ],
    );
    process.wait_ready().await;
    Archiver {
        process,
        _dirs: (archive, spool),
    }
}

fn targets(p: &Platform, archiver: Option<&Archiver>) -> Vec<(&'static str, String)> {
    let mut t = vec![
        ("ingest", p.ingest.addr.to_string()),
        ("query", p.query.addr.to_string()),
    ];
    if let Some(a) = archiver {
        t.push(("archiver", format!("127.0.0.1:{}", a.process.port)));
    }
    for svc in &p.processors {
        t.push(("processor", svc.addr.to_string()));
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn promtool_check_metrics_is_clean_on_every_service() {
    let promtool = tool("promtool");
    let p = Platform::start(1).await;
    let archiver = start_archiver(&p).await;
    let _tail = workload(&p).await;
    for (service, addr) in targets(&p, Some(&archiver)) {
        let text = metrics_text(&p, &format!("http://{addr}")).await;
        let mut child = Command::new(&promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(text.as_bytes()).await.unwrap();
        drop(stdin);
        let out = child.wait_with_output().await.unwrap();
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && report.trim().is_empty(),
            "promtool check metrics on {service}'s /metrics ({}):\n{report}",
            out.status
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_metric_of_the_rules_and_panels_exists_in_a_live_scrape() {
    let p = Platform::start(1).await;
    let archiver = start_archiver(&p).await;
    let prom = Prometheus::start(&targets(&p, Some(&archiver))).await;
    let _tail = workload(&p).await;

    let mut wanted: Vec<(String, String, String)> = Vec::new(); // (where, expr, name)
    let exprs: Vec<(String, String)> = rules()
        .into_iter()
        .map(|(n, e)| (format!("rule {n}"), e))
        .chain(
            panel_exprs()
                .into_iter()
                .map(|(t, e)| (format!("panel \"{t}\""), e)),
        )
        .collect();
    for (place, expr) in &exprs {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{place}: no metric in {expr}");
        for n in names {
            wanted.push((place.clone(), expr.clone(), n));
        }
    }
    let all: BTreeSet<&str> = wanted.iter().map(|w| w.2.as_str()).collect();

    // Scrapes after the workload make every series appear; wait for them, then list what is
    // still unknown.
    let start = Instant::now();
    let missing = loop {
        let have = prom.names().await;
        let missing: BTreeSet<&str> = all.iter().copied().filter(|n| !have.contains(*n)).collect();
        if missing.is_empty() || start.elapsed() > Duration::from_secs(20) {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let unknown: Vec<String> = wanted
        .iter()
        .filter(|w| missing.contains(w.2.as_str()))
        .map(|(place, _, n)| format!("{place}: {n}"))
        .collect();
    assert!(
        unknown.is_empty(),
        "metrics used by rules or panels but absent from the live scrape:\n  {}",
        unknown.join("\n  ")
    );

    // Each expression parses and evaluates on this Prometheus.
    for (place, expr) in &exprs {
        if let Err(e) = prom.query(expr).await {
            panic!("{place} does not evaluate: {e}\n{expr}");
        }
    }
    // And every loaded rule evaluates without error.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (name, _) in rules() {
        prom.alert_state(&name).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipeline_stalled_fires_when_the_processors_stop_while_ingest_goes_on() {
    let mut p = Platform::start(1).await;
    let prom = Prometheus::start(&targets(&p, None)).await;
    let expr = rules()
        .into_iter()
        .find(|(n, _)| n == STALLED)
        .map(|(_, e)| e)
        .unwrap();

    // Ingest goes on the whole time: a small batch every 100 ms.
    let http = p.http.clone();
    let url = format!("{}/logs", p.ingest_url());
    let feeder = tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            let body: String = (0..20)
                .map(|i| format!("{{\"service\":\"feed\",\"message\":\"event {n} {i}\"}}\n"))
                .collect();
            let r = http
                .post(&url)
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
            n += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    // Once a scrape shows the processor applying: false at every evaluation while it runs.
    let start = Instant::now();
    while prom
        .query("sum(logjet_processor_events_applied_total) > 0")
        .await
        .unwrap()
        .is_empty()
    {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no scrape shows the processor applying events"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(8) {
        let r = prom.query(&expr).await.unwrap();
        assert!(r.is_empty(), "{STALLED} true while processors run: {r:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(prom.alert_state(STALLED).await, "inactive");

    // Stop every processor; ingest continues.
    for svc in p.processors.drain(..) {
        svc.stop().await;
    }
    let stopped = Instant::now();
    let value = loop {
        let r = prom.query(&expr).await.unwrap();
        if let Some(v) = r.first() {
            break v["value"][1].as_str().unwrap().to_string();
        }
        assert!(
            stopped.elapsed() < Duration::from_secs(30),
            "{STALLED} still false 30 s after the processors stopped"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let lag: f64 = value.parse().unwrap();
    assert!(lag > 0.0, "the alert's value is the lag: {value}");
    // The loaded rule sees it too (pending: its `for` is minutes long).
    let start = Instant::now();
    loop {
        let state = prom.alert_state(STALLED).await;
        if state == "pending" || state == "firing" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{STALLED} rule is {state}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!(
        "{STALLED}: true {:.1} s after the processors stopped, lag {lag}",
        stopped.elapsed().as_secs_f64()
    );
    feeder.abort();
}

// --- the Kubernetes copies ------------------------------------------------------------------

/// kustomize cannot read files outside a kustomization's directory, so
/// scripts/observability-gen.sh copies the rules and the dashboard into the monitoring
/// component. The copies must be what the sources say.
#[test]
fn the_kubernetes_monitoring_component_carries_the_same_rules_and_dashboard() {
    let component = root().join("kustomize/components/monitoring");
    let rules_src: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(root().join(RULES)).unwrap()).unwrap();
    let rule: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(component.join("prometheusrule.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(rule["kind"].as_str(), Some("PrometheusRule"));
    assert_eq!(
        rule["spec"], rules_src,
        "kustomize/components/monitoring/prometheusrule.yaml drifted from {RULES}: \
         run ./scripts/observability-gen.sh"
    );
    for name in ["logjet-pipeline.json", "logjet-logs.json"] {
        let dash_copy = std::fs::read(component.join("dashboards").join(name)).unwrap();
        let dash_src = std::fs::read(root().join("infra/grafana/dashboards").join(name)).unwrap();
        assert!(
            dash_copy == dash_src,
            "kustomize/components/monitoring/dashboards/{name} drifted from \
             infra/grafana/dashboards/{name}: run ./scripts/observability-gen.sh"
        );
    }
}

/// Grafana's Loki data source "logjet": provisioned by the monitoring component for the
/// datasource sidecar, pointing at the query service, its key read from the Secret that the
/// kube-prometheus-stack values mount (and that the kind-monitoring overlay generates); the
/// logs dashboard's panels use it.
#[test]
fn the_monitoring_component_provisions_logjet_as_a_loki_data_source() {
    let component = root().join("kustomize/components/monitoring");
    let kustomization = std::fs::read_to_string(component.join("kustomization.yaml")).unwrap();
    assert!(kustomization.contains("- grafana-datasource.yaml"));
    assert!(kustomization.contains("- dashboards/logjet-logs.json"));
    let cm: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(component.join("grafana-datasource.yaml")).unwrap(),
    )
    .unwrap();
    assert_eq!(cm["kind"].as_str(), Some("ConfigMap"));
    assert_eq!(cm["metadata"]["namespace"].as_str(), Some("monitoring"));
    assert_eq!(
        cm["metadata"]["labels"]["grafana_datasource"].as_str(),
        Some("1")
    );
    let file = cm["data"]["logjet-loki.yaml"].as_str().unwrap();
    let prov: serde_yaml_ng::Value = serde_yaml_ng::from_str(file).unwrap();
    let ds = &prov["datasources"][0];
    assert_eq!(ds["name"].as_str(), Some("logjet"));
    assert_eq!(ds["uid"].as_str(), Some("logjet"));
    assert_eq!(ds["type"].as_str(), Some("loki"));
    // The query Service of kustomize/base, on its port.
    assert_eq!(
        ds["url"].as_str(),
        Some("http://query.log-analytics.svc.cluster.local:8001")
    );
    assert_eq!(
        ds["jsonData"]["httpHeaderName1"].as_str(),
        Some("Authorization")
    );
    let header = ds["secureJsonData"]["httpHeaderValue1"].as_str().unwrap();
    let path = header
        .strip_prefix("Bearer $__file{")
        .and_then(|p| p.strip_suffix('}'))
        .unwrap_or_else(|| panic!("the key is read from a file: {header}"));
    // Grafana mounts the Secret there, and the overlay creates it with that key.
    let values: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root().join("infra/kind/kube-prometheus-stack.values.yaml"))
            .unwrap(),
    )
    .unwrap();
    let mount = values["grafana"]["extraSecretMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|m| m["secretName"].as_str() == Some("logjet-grafana-query-key"))
        .expect("the key Secret is mounted into Grafana");
    let dir = mount["mountPath"].as_str().unwrap();
    assert_eq!(path, format!("{dir}/query-api-key"));
    let overlay = std::fs::read_to_string(
        root().join("kustomize/overlays/kind-monitoring/kustomization.yaml"),
    )
    .unwrap();
    assert!(overlay.contains("name: logjet-grafana-query-key"));
    let env = std::fs::read_to_string(
        root().join("kustomize/overlays/kind-monitoring/secrets/grafana.env"),
    )
    .unwrap();
    let dev_key =
        std::fs::read_to_string(root().join("kustomize/overlays/kind/secrets/dashboard.env"))
            .unwrap();
    let key = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("query-api-key="))
            .map(str::to_string)
    };
    assert!(key(&env).is_some());
    assert_eq!(
        key(&env),
        key(&dev_key),
        "the development key of scope query"
    );
    // Every panel of the logs dashboard queries the data source by its uid.
    let dash: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("infra/grafana/dashboards/logjet-logs.json")).unwrap(),
    )
    .unwrap();
    let panels = dash["panels"].as_array().unwrap();
    assert!(panels.iter().any(|p| p["type"] == "logs"));
    for p in panels {
        assert_eq!(p["datasource"]["uid"], "logjet", "{}", p["title"]);
        assert_eq!(p["datasource"]["type"], "loki", "{}", p["title"]);
    }
}
