//! Alert rules evaluated by query, firing to a real Alertmanager (Debian's
//! `prometheus-alertmanager`): an error burst fires after `for` with the rule's labels and
//! annotations and resolves after the burst; a new message pattern fires its alert; an evaluator
//! killed and restarted neither duplicates an alert nor loses its resolve; of two evaluators one
//! fires. The evaluators are `logjet-query` processes (so one can be SIGKILLed), on the
//! platform's NATS and Redis; alerts are read back through Alertmanager's `GET /api/v2/alerts`.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use logjet_tests::alertmanager::Alertmanager;
use logjet_tests::platform::{Platform, metric};
use logjet_tests::process::ServiceProcess;
use serde_json::{Value, json};

const RULES: &str = r#"
groups:
  - name: burst
    interval: 1s
    rules:
      - alert: PayErrorBurst
        expr: sum by (service) (count_over_time({service="pay", level="error"}[4s])) > 5
        for: 3s
        labels:
          severity: page
          team: payments
        annotations:
          summary: "{{ $labels.service }}: {{ $value }} errors in 4s"
  - name: patterns
    interval: 1s
    rules:
      - alert: NewShopPattern
        pattern: new
        service: shop
        window: 2m
        baseline: 1h
        labels:
          severity: info
        annotations:
          summary: "new in {{ $labels.service }}: {{ $template }}"
"#;

struct Setup {
    p: Platform,
    am: Alertmanager,
    rules: tempfile::TempDir,
}

impl Setup {
    async fn start() -> Setup {
        let am = Alertmanager::start().await;
        let p = Platform::start(1).await;
        let rules = tempfile::tempdir().unwrap();
        std::fs::write(rules.path().join("rules.yml"), RULES).unwrap();
        Setup { p, am, rules }
    }

    /// A query process that evaluates the rules (when it holds the lease).
    async fn evaluator(&self, resend: &str) -> ServiceProcess {
        let env = [
            ("LOGJET_NATS_URL", self.p.nats.url()),
            ("LOGJET_REDIS_URL", self.p.redis.url()),
            ("LOGJET_ARCHIVE_URL", "off".to_string()),
            (
                "LOGJET_ALERT_RULES",
                self.rules.path().display().to_string(),
            ),
            ("LOGJET_ALERTMANAGER_URL", self.am.url()),
            ("LOGJET_ALERT_RESEND_DELAY", resend.to_string()),
            ("LOGJET_ALERT_LEASE_TTL", "3s".to_string()),
        ];
        let q = ServiceProcess::spawn("logjet-query", &env);
        q.wait_ready().await;
        q
    }

    async fn send(&self, events: &[Value]) {
        let body: String = events.iter().map(|e| e.to_string() + "\n").collect();
        assert_eq!(
            self.p.post("application/x-ndjson", body).await.status(),
            202
        );
    }

    /// Posts 3 `pay` errors every 300 ms (about 40 in the rule's 4 s window) until stopped.
    fn burst(&self) -> Burst {
        let stop = Arc::new(AtomicBool::new(false));
        let (http, url, flag) = (self.p.http.clone(), self.p.ingest_url(), stop.clone());
        let task = tokio::spawn(async move {
            let mut n = 0;
            while !flag.load(Ordering::SeqCst) {
                let body: String = (0..3)
                    .map(|_| {
                        n += 1;
                        json!({"ts": Utc::now().to_rfc3339(), "service": "pay", "level": "error",
                               "message": format!("payment declined code=51 order=o-{n}")})
                        .to_string()
                            + "\n"
                    })
                    .collect();
                let _ = http
                    .post(format!("{url}/logs"))
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
        Burst { stop, task }
    }
}

struct Burst {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Burst {
    async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
    }
}

async fn until<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(start.elapsed() < timeout, "{what}: not after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `GET url` as JSON; `None` on a 503 (the alert state is not readable yet, as under a loaded
/// machine right after start: a poller asks again).
async fn get_json_when_ready(http: &reqwest::Client, url: String) -> Option<Value> {
    let r = http.get(&url).send().await.expect("request");
    if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
        return None;
    }
    assert!(r.status().is_success(), "{url}: {}", r.status());
    Some(r.json().await.expect("json"))
}

async fn get_json(http: &reqwest::Client, url: String) -> Value {
    let r = http.get(&url).send().await.expect("request");
    assert!(r.status().is_success(), "{url}: {}", r.status());
    r.json().await.expect("json")
}

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
        .unwrap()
        .to_utc()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_error_burst_fires_after_for_with_its_labels_and_resolves_after_it() {
    let s = Setup::start().await;
    let q = s.evaluator("1s").await;
    let http = s.p.http.clone();
    let burst = s.burst();

    // Pending first (Alertmanager has nothing yet), then firing.
    let pending = until(
        "pending in /api/v1/alerts",
        Duration::from_secs(30),
        || async {
            let v = get_json_when_ready(&http, format!("{}/api/v1/alerts", q.url)).await?;
            let a = v["data"]["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["labels"]["alertname"] == "PayErrorBurst")
                .cloned()?;
            (a["state"] == "pending").then_some(a)
        },
    )
    .await;
    assert!(
        s.am.alerts_named("PayErrorBurst").await.is_empty(),
        "not sent while pending"
    );
    assert_eq!(pending["labels"]["service"], "pay");
    let active_at = time(&pending["activeAt"]);

    let fired = until(
        "PayErrorBurst in Alertmanager",
        Duration::from_secs(30),
        || async { s.am.alerts_named("PayErrorBurst").await.into_iter().next() },
    )
    .await;
    let starts_at = time(&fired["startsAt"]);
    // Alertmanager is sent milliseconds, the API says nanoseconds: compare at the coarser one.
    let active_at = active_at.trunc_subsecs(3);
    assert!(
        starts_at - active_at >= chrono::Duration::seconds(3),
        "fired {starts_at} less than `for` (3s) after it became active {active_at}"
    );
    assert_eq!(fired["labels"]["alertname"], "PayErrorBurst");
    assert_eq!(fired["labels"]["service"], "pay");
    assert_eq!(fired["labels"]["severity"], "page");
    assert_eq!(fired["labels"]["team"], "payments");
    let summary = fired["annotations"]["summary"].as_str().unwrap();
    let n: f64 = summary
        .strip_prefix("pay: ")
        .and_then(|r| r.strip_suffix(" errors in 4s"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("summary {summary:?}"));
    assert!(n > 5.0, "{summary}");
    assert!(
        fired["generatorURL"]
            .as_str()
            .unwrap()
            .ends_with("/api/v1/rules"),
        "{fired}"
    );

    // Re-sent while firing: Alertmanager's updatedAt moves on (resend delay 1s).
    let updated = time(&fired["updatedAt"]);
    until("re-sent while firing", Duration::from_secs(10), || async {
        let a =
            s.am.alerts_named("PayErrorBurst")
                .await
                .into_iter()
                .next()?;
        (time(&a["updatedAt"]) > updated + chrono::Duration::seconds(1)).then_some(())
    })
    .await;
    assert_eq!(metric(&http, &q.url, "logjet_alerts_firing").await, 1);
    assert_eq!(
        metric(&http, &q.url, "logjet_alert_evaluator_leader").await,
        1
    );

    // The rules in Prometheus's shape.
    let rules = get_json(&http, format!("{}/api/v1/rules", q.url)).await;
    assert_eq!(rules["status"], "success");
    let g = &rules["data"]["groups"][0];
    assert_eq!(
        (g["name"].as_str(), g["interval"].as_f64()),
        (Some("burst"), Some(1.0))
    );
    let r = &g["rules"][0];
    assert_eq!(r["type"], "alerting");
    assert_eq!(r["state"], "firing");
    assert_eq!(r["health"], "ok");
    assert_eq!(r["duration"], 3.0);
    assert_eq!(r["labels"]["team"], "payments");
    assert!(r["query"].as_str().unwrap().starts_with("sum by (service)"));
    assert_eq!(r["alerts"][0]["state"], "firing");
    assert!(r["alerts"][0]["value"].as_str().unwrap().contains("e+"));

    // After the burst the window empties: resolved in Alertmanager and in /api/v1/alerts.
    burst.stop().await;
    until(
        "resolved in Alertmanager",
        Duration::from_secs(30),
        || async {
            s.am.alerts_named("PayErrorBurst")
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await;
    let v = get_json(&http, format!("{}/api/v1/alerts", q.url)).await;
    assert!(
        !v["data"]["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["labels"]["alertname"] == "PayErrorBurst"),
        "{v}"
    );
    assert_eq!(metric(&http, &q.url, "logjet_alerts_firing").await, 0);
    assert!(metric(&http, &q.url, "logjet_alert_evaluations_total").await > 5);
    assert!(metric(&http, &q.url, "logjet_alert_notifications_total").await >= 3);
    assert_eq!(
        metric(&http, &q.url, "logjet_alert_evaluation_failures_total").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_message_pattern_fires_its_alert() {
    let s = Setup::start().await;
    // A template the service has had for a while: in the baseline, so not new.
    let old = Utc::now() - chrono::Duration::minutes(20);
    let known: Vec<Value> = (0..20)
        .map(|i| {
            json!({"ts": (old + chrono::Duration::seconds(i)).to_rfc3339(), "service": "shop",
                   "level": "info", "message": format!("cart {i} loaded in {}ms", 10 + i)})
        })
        .collect();
    s.send(&known).await;
    s.p.wait_for_total(20, Duration::from_secs(30)).await;
    let q = s.evaluator("1s").await;
    let http = s.p.http.clone();
    // Evaluated several times, and nothing new.
    until("evaluations", Duration::from_secs(30), || async {
        (metric(&http, &q.url, "logjet_alert_evaluations_total").await >= 10).then_some(())
    })
    .await;
    assert!(s.am.alerts_named("NewShopPattern").await.is_empty());

    s.send(&[
        json!({"ts": Utc::now().to_rfc3339(), "service": "shop", "level": "error",
                    "message": "payment gateway timeout after 30s for order o-77"}),
    ])
    .await;
    let a = until(
        "NewShopPattern in Alertmanager",
        Duration::from_secs(30),
        || async { s.am.alerts_named("NewShopPattern").await.into_iter().next() },
    )
    .await;
    assert_eq!(a["labels"]["service"], "shop");
    assert_eq!(a["labels"]["severity"], "info");
    assert!(!a["labels"]["pattern_id"].as_str().unwrap().is_empty());
    let template = a["annotations"]["template"].as_str().unwrap();
    assert!(template.starts_with("payment gateway timeout"), "{a}");
    assert_eq!(
        a["annotations"]["sample"],
        "payment gateway timeout after 30s for order o-77"
    );
    assert_eq!(
        a["annotations"]["summary"].as_str().unwrap(),
        format!("new in shop: {template}")
    );
    // Only the new template.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(s.am.alerts_named("NewShopPattern").await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_evaluator_restarted_neither_duplicates_nor_loses_the_resolve() {
    let s = Setup::start().await;
    // Resend 10s: a firing alert is valid in Alertmanager for 40s, so an alert that disappears
    // sooner was resolved by an explicit `endsAt`, not by timing out.
    let mut q = s.evaluator("10s").await;
    let burst = s.burst();
    let fired = until("fired", Duration::from_secs(30), || async {
        s.am.alerts_named("PayErrorBurst").await.into_iter().next()
    })
    .await;
    let ends_at = time(&fired["endsAt"]);
    assert!(
        ends_at - Utc::now() > chrono::Duration::seconds(30),
        "{fired}"
    );
    let http = s.p.http.clone();
    let firing_since = |url: String| {
        let http = http.clone();
        async move {
            let v = get_json(&http, format!("{url}/api/v1/alerts")).await;
            let a: Vec<Value> = v["data"]["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|a| a["labels"]["alertname"] == "PayErrorBurst")
                .cloned()
                .collect();
            assert_eq!(a.len(), 1, "{v}");
            (a[0]["state"].clone(), a[0]["activeAt"].clone())
        }
    };
    let (state, active_at) = firing_since(q.url.clone()).await;
    assert_eq!(state, "firing");

    // Killed while firing, restarted while still firing: the same alert, no second one.
    q.signal(9);
    let _ = q.wait_exit(Instant::now(), Duration::from_secs(10)).await;
    let q = s.evaluator("10s").await;
    until(
        "the restarted evaluator holds the lease",
        Duration::from_secs(20),
        || async {
            (metric(&http, &q.url, "logjet_alert_evaluations_total").await >= 3).then_some(())
        },
    )
    .await;
    let now = s.am.alerts_named("PayErrorBurst").await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(
        now[0]["startsAt"], fired["startsAt"],
        "the same alert, not a new one"
    );
    // The evaluator's own state carried over: still firing (not pending again for `for`),
    // active since the same time. (Alertmanager alone could not tell: it keeps the earliest
    // `startsAt` of a label set it still holds.)
    assert_eq!(
        firing_since(q.url.clone()).await,
        (state, active_at),
        "state survived the restart"
    );

    // Killed again; the burst ends while no evaluator runs; the restarted one sends the resolve.
    let mut q = q;
    q.signal(9);
    let _ = q.wait_exit(Instant::now(), Duration::from_secs(10)).await;
    burst.stop().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let held = s.am.alerts_named("PayErrorBurst").await;
    assert_eq!(held.len(), 1, "still firing in Alertmanager");
    let last_ends_at = time(&held[0]["endsAt"]);
    let _q = s.evaluator("10s").await;
    until(
        "resolved by the restarted evaluator",
        Duration::from_secs(20),
        || async {
            s.am.alerts_named("PayErrorBurst")
                .await
                .is_empty()
                .then_some(())
        },
    )
    .await;
    assert!(
        Utc::now() < last_ends_at,
        "resolved before the alert could time out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_two_evaluators_one_fires_and_the_other_takes_over() {
    let s = Setup::start().await;
    let a = s.evaluator("1s").await;
    let b = s.evaluator("1s").await;
    let http = s.p.http.clone();
    let burst = s.burst();
    let fired = until("fired", Duration::from_secs(30), || async {
        s.am.alerts_named("PayErrorBurst").await.into_iter().next()
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let leader = |url: String| {
        let http = http.clone();
        async move { metric(&http, &url, "logjet_alert_evaluator_leader").await }
    };
    let evals = |url: String| {
        let http = http.clone();
        async move { metric(&http, &url, "logjet_alert_evaluations_total").await }
    };
    let (la, lb) = (leader(a.url.clone()).await, leader(b.url.clone()).await);
    assert_eq!(la + lb, 1, "exactly one leader: {la} {lb}");
    let (ea, eb) = (evals(a.url.clone()).await, evals(b.url.clone()).await);
    let (nf_a, nf_b) = (
        metric(&http, &a.url, "logjet_alert_notifications_total").await,
        metric(&http, &b.url, "logjet_alert_notifications_total").await,
    );
    if la == 1 {
        assert!(
            ea > 0 && eb == 0 && nf_b == 0,
            "only the leader evaluates: {ea} {eb} {nf_b}"
        );
    } else {
        assert!(
            eb > 0 && ea == 0 && nf_a == 0,
            "only the leader evaluates: {ea} {eb} {nf_a}"
        );
    }
    assert_eq!(s.am.alerts_named("PayErrorBurst").await.len(), 1);

    // The leader dies: the other takes over the lease and the state, the alert goes on.
    let (mut dead, alive) = if la == 1 { (a, b) } else { (b, a) };
    let alert_of = |url: String| {
        let http = http.clone();
        async move {
            let v = get_json(&http, format!("{url}/api/v1/alerts")).await;
            v["data"]["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["labels"]["alertname"] == "PayErrorBurst")
                .map(|a| (a["state"].clone(), a["activeAt"].clone()))
        }
    };
    let before = alert_of(dead.url.clone())
        .await
        .expect("firing on the leader");
    assert_eq!(before.0, "firing");
    dead.signal(9);
    let _ = dead
        .wait_exit(Instant::now(), Duration::from_secs(10))
        .await;
    until("the other takes over", Duration::from_secs(20), || async {
        (metric(&http, &alive.url, "logjet_alert_evaluator_leader").await == 1).then_some(())
    })
    .await;
    until("the survivor re-sends", Duration::from_secs(10), || async {
        let x =
            s.am.alerts_named("PayErrorBurst")
                .await
                .into_iter()
                .next()?;
        (time(&x["updatedAt"]) > Utc::now() - chrono::Duration::seconds(2)).then_some(())
    })
    .await;
    let now = s.am.alerts_named("PayErrorBurst").await;
    assert_eq!(now.len(), 1);
    assert_eq!(now[0]["startsAt"], fired["startsAt"]);
    // The survivor went on from the state the dead leader left: same alert, still firing.
    assert!(metric(&http, &alive.url, "logjet_alert_evaluations_total").await > 0);
    assert_eq!(alert_of(alive.url.clone()).await, Some(before));
    burst.stop().await;
    until("resolved", Duration::from_secs(30), || async {
        s.am.alerts_named("PayErrorBurst")
            .await
            .is_empty()
            .then_some(())
    })
    .await;
    assert_eq!(metric(&http, &alive.url, "logjet_alerts_firing").await, 0);
}
