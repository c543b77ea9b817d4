//! The dashboard in real headless Chromium: NATS, Redis, ingest, a processor, query and the
//! dashboard server, with the WebAssembly bundle from `dashboard/dist`
//! (`scripts/build-dashboard.sh`). Screenshots of each view go to `target/screenshots/`.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use logjet_tests::browser::Browser;
use logjet_tests::dashboard;
use logjet_tests::platform::{self, Platform};
use serde_json::{Value, json};

const PLANTED: &str = "ORD-7Q41ZX93";
const WAIT: Duration = Duration::from_secs(15);

/// What is sent: per service, per level, a count.
fn plan() -> BTreeMap<&'static str, BTreeMap<&'static str, u64>> {
    let mut m = BTreeMap::new();
    m.insert(
        "api",
        BTreeMap::from([("info", 20), ("warn", 4), ("error", 5), ("fatal", 1)]),
    );
    m.insert(
        "billing",
        BTreeMap::from([("debug", 2), ("info", 10), ("error", 4)]),
    );
    m.insert(
        "worker",
        BTreeMap::from([("info", 7), ("warn", 1), ("error", 2)]),
    );
    m
}

fn ndjson(service: &str, levels: &BTreeMap<&str, u64>) -> String {
    let mut out = String::new();
    for (level, n) in levels {
        for i in 0..*n {
            let mut ev = json!({
                "service": service,
                "level": level,
                "message": format!("{service} {level} event number {i}"),
                "n": i,
            });
            if service == "api" && *level == "error" && i == 0 {
                ev["message"] = json!(format!("charge failed for order {PLANTED}"));
                ev["order_id"] = json!(PLANTED);
            }
            out.push_str(&ev.to_string());
            out.push('\n');
        }
    }
    out
}

fn percent(part: u64, whole: u64) -> String {
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}

fn errors(levels: &BTreeMap<&str, u64>) -> u64 {
    levels.get("error").copied().unwrap_or(0) + levels.get("fatal").copied().unwrap_or(0)
}

/// Sum of `data-count` of the chart's bars, per `data-level`.
async fn chart_bars(b: &Browser) -> BTreeMap<String, u64> {
    let v = b
        .eval(
            "const out = {};
             for (const r of document.querySelectorAll('#chart-svg rect.bar')) {
               const l = r.getAttribute('data-level');
               out[l] = (out[l] || 0) + Number(r.getAttribute('data-count'));
             }
             return out;",
        )
        .await;
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_chart(b: &Browser, expected: &BTreeMap<String, u64>) {
    let start = Instant::now();
    loop {
        let got = chart_bars(b).await;
        if &got == expected {
            return;
        }
        assert!(
            start.elapsed() < WAIT,
            "chart bars by level: {got:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dashboard_shows_the_platform_live_in_chromium() {
    let dist = dashboard::dist_dir();
    let p = Platform::start(1).await;
    // A query service of our own on a fixed address, so it can be stopped and started again.
    let qcfg = platform::query_config(&p.nats.url(), &p.redis.url());
    let query = platform::start_query(qcfg.clone()).await;
    let qaddr = query.addr;
    p.wait_ready(&query.url()).await;
    let dash = dashboard::start(dashboard::config(&query.url(), &dist)).await;
    let url = format!("http://{}", dash.addr);
    p.wait_ready(&url).await;

    let b = Browser::start(1280, 800).await;

    // --- before the first log: the empty state says how to send one -------------------------
    b.goto(&format!("{url}/")).await;
    b.wait_js(
        "the empty state",
        "return document.querySelector('[data-testid=empty-state]') !== null;",
        WAIT,
    )
    .await;
    let empty = b
        .text("[data-testid=empty-state]")
        .await
        .unwrap_or_default();
    assert!(
        empty.contains("curl") && empty.contains("/logs"),
        "empty state: {empty}"
    );
    b.screenshot("dashboard-empty").await;

    // --- three services with errors, sent while the page is open ----------------------------
    let plan = plan();
    let mut total = 0;
    let mut total_errors = 0;
    let mut by_level: BTreeMap<String, u64> = BTreeMap::new();
    for (service, levels) in &plan {
        let r = p
            .post("application/x-ndjson", ndjson(service, levels))
            .await;
        assert_eq!(r.status(), 202, "{}", r.text().await.unwrap_or_default());
        total += levels.values().sum::<u64>();
        total_errors += errors(levels);
        for (l, n) in levels {
            *by_level.entry(l.to_string()).or_default() += n;
        }
    }
    p.wait_for_total(total, WAIT).await;

    // --- overview: it updates by itself (no reload) to what was sent ------------------------
    b.wait_attr(
        "[data-testid=card-hour]",
        "data-value",
        &total.to_string(),
        WAIT,
    )
    .await;
    assert_eq!(
        b.text("[data-testid=card-hour] .value").await.unwrap(),
        total.to_string()
    );
    assert_eq!(
        b.text("[data-testid=card-errors] .value").await.unwrap(),
        percent(total_errors, total)
    );
    assert_eq!(
        b.text("[data-testid=card-services] .value").await.unwrap(),
        "3"
    );
    let rate: f64 = b
        .attr("[data-testid=card-rate]", "data-value")
        .await
        .unwrap()
        .parse()
        .unwrap();
    assert!(rate > 0.0, "events/s card shows {rate}");
    // Everything was processed: the processors' lag (from /stats/pipeline) comes down to 0.
    b.wait_attr("[data-testid=card-lag]", "data-value", "0", WAIT)
        .await;

    // The chart's bars add up, level by level, to what was sent; so does its legend.
    wait_chart(&b, &by_level).await;
    for level in ["trace", "debug", "info", "warn", "error", "fatal"] {
        let want = by_level.get(level).copied().unwrap_or(0).to_string();
        assert_eq!(
            b.attr(&format!("[data-testid=legend-{level}]"), "data-count")
                .await
                .unwrap(),
            want,
            "legend for {level}"
        );
    }
    // The chart has axis labels, and pointing at a bar reads out its time step.
    let labels = b
        .eval("return document.querySelectorAll('#chart-svg text.axis').length;")
        .await;
    assert!(labels.as_u64().unwrap() >= 4, "axis labels: {labels}");
    let tallest = b
        .eval(
            "let best = null, h = -1;
             for (const r of document.querySelectorAll('#chart-svg rect.bar')) {
               const v = Number(r.getAttribute('height'));
               if (v > h) { h = v; best = r; }
             }
             best.setAttribute('data-probe', '1');
             return best.getAttribute('data-ts');",
        )
        .await;
    let probe_ts = tallest.as_str().unwrap().to_string();
    b.hover("#chart-svg rect[data-probe='1']").await;
    let step_total: u64 = b
        .eval(&format!(
            "let s = 0; for (const r of document.querySelectorAll('#chart-svg rect.bar[data-ts=\"{probe_ts}\"]')) s += Number(r.getAttribute('data-count')); return s;"
        ))
        .await
        .as_u64()
        .unwrap();
    let readout = b
        .wait_js(
            "the chart's hover read-out",
            "const t = document.querySelector('[data-testid=chart-readout]').textContent; return t.includes('events') ? t : null;",
            WAIT,
        )
        .await;
    assert!(
        readout
            .as_str()
            .unwrap()
            .contains(&format!("— {step_total} events")),
        "read-out {readout} for a step with {step_total} events"
    );

    // The services table: volume, errors and error rate per service, as sent.
    for (service, levels) in &plan {
        let sent: u64 = levels.values().sum();
        let row = format!("[data-testid=services-table] tr[data-service={service}]");
        let start = Instant::now();
        loop {
            let got = b.text(&format!("{row} td[data-col=total]")).await;
            if got.as_deref() == Some(sent.to_string().as_str()) {
                break;
            }
            assert!(
                start.elapsed() < WAIT,
                "{service}: total {got:?}, sent {sent}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            b.text(&format!("{row} td[data-col=errors]")).await.unwrap(),
            errors(levels).to_string(),
            "{service} errors"
        );
        assert_eq!(
            b.text(&format!("{row} td[data-col=error-rate]"))
                .await
                .unwrap(),
            percent(errors(levels), sent),
            "{service} error rate"
        );
    }
    // Top patterns are listed with counts and sparklines.
    b.wait_js(
        "top patterns",
        "return document.querySelectorAll('[data-testid=patterns] li svg.spark polyline').length > 0;",
        WAIT,
    )
    .await;
    // Light, as the (headless) OS asks.
    assert_eq!(
        b.eval("return getComputedStyle(document.body).backgroundColor;")
            .await,
        json!("rgb(246, 247, 249)")
    );
    b.screenshot("dashboard-overview").await;

    // --- clicking a service filters every view, and the filter lives in the URL -------------
    b.click("[data-testid=service-billing]").await;
    let billing: u64 = plan["billing"].values().sum();
    b.wait_attr(
        "[data-testid=card-hour]",
        "data-value",
        &billing.to_string(),
        WAIT,
    )
    .await;
    let current = b.client.current_url().await.unwrap();
    assert!(
        current.as_str().contains("service=billing"),
        "URL after the click: {current}"
    );
    let billing_levels: BTreeMap<String, u64> = plan["billing"]
        .iter()
        .map(|(l, n)| (l.to_string(), *n))
        .collect();
    wait_chart(&b, &billing_levels).await;
    // A reload keeps the view.
    b.client.refresh().await.unwrap();
    b.wait_attr(
        "[data-testid=card-hour]",
        "data-value",
        &billing.to_string(),
        WAIT,
    )
    .await;
    assert_eq!(
        b.eval("return document.getElementById('filter-service').value;")
            .await,
        json!("billing")
    );
    b.screenshot("dashboard-overview-billing").await;
    b.click("[data-testid=service-billing]").await;
    b.wait_attr(
        "[data-testid=card-hour]",
        "data-value",
        &total.to_string(),
        WAIT,
    )
    .await;

    // --- a phone-sized screen: nothing runs off the side -------------------------------------
    b.resize(390, 844).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let overflow = b
        .eval("return document.documentElement.scrollWidth - window.innerWidth;")
        .await;
    assert!(
        overflow.as_i64().unwrap() <= 0,
        "at 390 px the page is {overflow} px wider than the screen"
    );
    b.screenshot("dashboard-overview-phone").await;
    b.resize(1280, 800).await;

    // --- explorer: search finds the planted id; the keyboard opens its fields ----------------
    b.click("[data-testid=tab-explore]").await;
    let q = b.find("#search-q").await;
    q.send_keys(PLANTED).await.unwrap();
    b.click("[data-testid=search-submit]").await;
    b.wait_js(
        "the search result",
        &format!(
            "const rows = document.querySelectorAll('[data-testid=event-row]');
             return rows.length === 1 && rows[0].textContent.includes('{PLANTED}');"
        ),
        WAIT,
    )
    .await;
    let current = b.client.current_url().await.unwrap();
    assert!(
        current.as_str().contains(&format!("q={PLANTED}"))
            && current.as_str().contains("view=explore"),
        "URL of the search: {current}"
    );
    // Keyboard: focus the first row, Enter opens it.
    b.eval("document.getElementById('row-0').focus();").await;
    b.press('\u{e007}').await;
    let detail = b
        .wait_js(
            "the expanded event",
            "const d = document.querySelector('[data-testid=event-detail]'); return d ? d.textContent : null;",
            WAIT,
        )
        .await;
    let detail = detail.as_str().unwrap();
    assert!(
        detail.contains("order_id") && detail.contains(PLANTED),
        "fields: {detail}"
    );
    assert_eq!(
        b.attr("#row-0 .lvl", "class").await.unwrap(),
        "lvl lvl-error"
    );
    b.screenshot("dashboard-explorer").await;

    // An API error (an invalid regex) is shown as text.
    b.find("#search-q").await.clear().await.unwrap();
    b.find("#search-q")
        .await
        .send_keys("(unclosed")
        .await
        .unwrap();
    b.click("[data-testid=search-regex]").await;
    b.click("[data-testid=search-submit]").await;
    let err = b
        .wait_js(
            "the API error",
            "const e = document.querySelector('[data-testid=api-error]'); return e ? e.textContent : null;",
            WAIT,
        )
        .await;
    assert!(err.as_str().unwrap().contains("400"), "error text: {err}");
    b.screenshot("dashboard-explorer-error").await;
    b.click("[data-testid=clear-filters]").await;

    // --- live tail: a new line shows up within 2 s -------------------------------------------
    b.click("[data-testid=tab-tail]").await;
    b.wait_attr("[data-testid=tail-status]", "data-state", "streaming", WAIT)
        .await;
    // The server binds its consumer when the stream opens; give it a moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let line = "tail line 9b1f04 from the browser test";
    let sent = Instant::now();
    let r = p
        .post(
            "application/json",
            json!({"service": "worker", "level": "warn", "message": line}).to_string(),
        )
        .await;
    assert_eq!(r.status(), 202);
    b.wait_js(
        "the new line in the tail",
        &format!("return document.getElementById('tail-list').textContent.includes('{line}');"),
        Duration::from_secs(5),
    )
    .await;
    let took = sent.elapsed();
    assert!(took < Duration::from_secs(2), "the line took {took:?}");
    b.screenshot("dashboard-tail").await;
    // Pause stops the stream (state says so), Start resumes it.
    b.click("[data-testid=tail-toggle]").await;
    b.wait_attr("[data-testid=tail-status]", "data-state", "paused", WAIT)
        .await;
    b.click("[data-testid=tail-toggle]").await;
    b.wait_attr("[data-testid=tail-status]", "data-state", "streaming", WAIT)
        .await;

    // --- "load more" pages through results by cursor ----------------------------------------
    let bulk: String = (0..130)
        .map(|i| {
            json!({"service": "bulk", "level": "info", "message": format!("bulk line {i}")})
                .to_string()
                + "\n"
        })
        .collect();
    assert_eq!(p.post("application/x-ndjson", bulk).await.status(), 202);
    p.wait_for_total(total + 1 + 130, WAIT).await;
    b.goto(&format!("{url}/?view=explore&service=bulk")).await;
    b.wait_js(
        "the first page",
        "return document.querySelectorAll('[data-testid=event-row]').length === 100;",
        WAIT,
    )
    .await;
    b.click("[data-testid=load-more]").await;
    b.wait_js(
        "the second page",
        "return document.querySelectorAll('[data-testid=event-row]').length === 130;",
        WAIT,
    )
    .await;

    // The service filter followed to the overview, as it should: one click clears it.
    b.click("[data-testid=tab-overview]").await;
    b.wait_attr("[data-testid=card-hour]", "data-value", "130", WAIT)
        .await;
    b.click("[data-testid=clear-filters]").await;

    // --- the query service goes down: a banner; it comes back: recovery, no reload ----------
    b.wait_attr(
        "[data-testid=card-hour]",
        "data-value",
        &(total + 131).to_string(),
        WAIT,
    )
    .await;
    let stopping = tokio::spawn(query.stop());
    let banner = b
        .wait_js(
            "the query-down banner",
            "const e = document.querySelector('[data-testid=banner-down]'); return e ? e.textContent : null;",
            WAIT,
        )
        .await;
    assert!(
        banner
            .as_str()
            .unwrap()
            .contains("Query service unavailable"),
        "banner: {banner}"
    );
    assert_eq!(
        b.text("[data-testid=status]").await.unwrap().trim(),
        "Offline"
    );
    // The data from before stays on screen under the banner.
    assert_eq!(
        b.attr("[data-testid=card-hour]", "data-value")
            .await
            .unwrap(),
        (total + 131).to_string()
    );
    b.screenshot("dashboard-query-down").await;
    let _ = stopping.await;

    let query = platform::start_query(logjet_core::config::QueryConfig {
        listen: qaddr,
        ..qcfg
    })
    .await;
    b.wait_js(
        "recovery",
        "return document.querySelector('[data-testid=banner-down]') === null;",
        WAIT,
    )
    .await;
    assert_eq!(b.text("[data-testid=status]").await.unwrap().trim(), "Live");
    // New data flows again.
    let r = p
        .post(
            "application/json",
            json!({"service": "api", "level": "error", "message": "after the restart"}).to_string(),
        )
        .await;
    assert_eq!(r.status(), 202);
    b.wait_attr(
        "[data-testid=card-hour]",
        "data-value",
        &(total + 132).to_string(),
        WAIT,
    )
    .await;
    b.screenshot("dashboard-recovered").await;

    b.close().await;

    // --- the OS asks for dark: the dashboard is dark -----------------------------------------
    let dark = Browser::start_with(1280, 800, &["--force-dark-mode"]).await;
    dark.goto(&format!("{url}/")).await;
    dark.wait_attr(
        "[data-testid=card-hour]",
        "data-value",
        &(total + 132).to_string(),
        WAIT,
    )
    .await;
    let scheme = dark
        .eval(
            "return [matchMedia('(prefers-color-scheme: dark)').matches, getComputedStyle(document.body).backgroundColor];",
        )
        .await;
    assert_eq!(scheme, json!([true, "rgb(15, 17, 21)"]), "dark theme");
    dark.screenshot("dashboard-overview-dark").await;
    dark.close().await;

    dash.stop().await;
    query.stop().await;
}

/// The server part without a browser: bundle caching and compression, the proxy (SSE streams
/// through unbuffered, the API key goes to the query service only), health and metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_server_serves_the_bundle_and_proxies_the_api() {
    let dist = dashboard::dist_dir();
    let p = Platform::start(1).await;
    let dash = dashboard::start(dashboard::config(&p.query_url(), &dist)).await;
    let url = format!("http://{}", dash.addr);
    let http = logjet_tests::http_client();

    // index.html: no-cache; names the hashed files, which are immutable and gzip'ed.
    let r = http
        .get(format!("{url}/"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-cache");
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let mut html = String::new();
    {
        use std::io::Read;
        let body = r.bytes().await.unwrap();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut html)
            .unwrap();
    }
    let wasm = html
        .split('"')
        .find(|s| s.ends_with(".wasm"))
        .expect("index.html names the wasm file")
        .trim_start_matches("./")
        .to_string();
    let r = http
        .get(format!("{url}/{wasm}"))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(r.headers()["content-type"], "application/wasm");
    let r = http.get(format!("{url}/{wasm}")).send().await.unwrap();
    assert!(r.headers().get("content-encoding").is_none());
    assert_eq!(&r.bytes().await.unwrap()[..4], b"\0asm");
    // Unknown files are 404; paths cannot leave the bundle.
    assert_eq!(
        http.get(format!("{url}/nope.js"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        http.get(format!("{url}/%2e%2e/Cargo.toml"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // The API is proxied with /api stripped.
    let r = http
        .get(format!("{url}/api/stats/summary"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let s: Value = r.json().await.unwrap();
    assert!(s["total"].is_u64(), "{s}");
    let r = http
        .post(format!("{url}/api/logs/query"))
        .json(&json!({"limit": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Errors from the query service come through as they are.
    let r = http
        .get(format!("{url}/api/stats/timeseries?step=5s"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("step"));

    // The SSE tail streams through: an event posted after the stream opened arrives promptly.
    let resp = http
        .get(format!("{url}/api/logs/tail?service=proxied"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    p.post(
        "application/json",
        json!({"service": "proxied", "message": "through the proxy"}).to_string(),
    )
    .await;
    let mut stream = resp.bytes_stream();
    let mut buf = String::new();
    use futures::StreamExt;
    while !buf.contains("through the proxy") {
        let chunk = tokio::time::timeout(Duration::from_secs(2), stream.next())
            .await
            .expect("an SSE chunk within 2 s")
            .expect("stream open")
            .unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(sent.elapsed() < Duration::from_secs(2));
    assert!(buf.contains("event: log"), "{buf}");
    drop(stream);

    // Health, readiness, metrics.
    assert_eq!(
        http.get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        http.get(format!("{url}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "logjet_dashboard_upstream_up{service=\"dashboard\"} 1"),
        "{metrics}"
    );
    check_metrics_contract(&metrics);
    dash.stop().await;

    // The query service unreachable: 502 with a JSON error, and the key stays server-side.
    let down = dashboard::start(logjet_core::config::DashboardConfig {
        query_api_key: Some("s3cret-dashboard-key".into()),
        ..dashboard::config(
            &format!("http://127.0.0.1:{}", logjet_tests::servers::free_port()),
            &dist,
        )
    })
    .await;
    let r = http
        .get(format!("http://{}/api/stats/summary", down.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let text = r.text().await.unwrap();
    let e: Value = serde_json::from_str(&text).unwrap();
    assert!(
        e["error"].as_str().unwrap().contains("did not answer"),
        "{e}"
    );
    assert!(!text.contains("s3cret"));
    let metrics = http
        .get(format!("http://{}/metrics", down.addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for series in [
        "logjet_dashboard_upstream_up{service=\"dashboard\"} 0",
        "logjet_dashboard_upstream_errors_total{kind=\"connect\",service=\"dashboard\"} 1",
    ] {
        assert!(metrics.lines().any(|l| l == series), "{series}:\n{metrics}");
    }
    // Still ready: the page must load to show the banner.
    assert_eq!(
        http.get(format!("http://{}/readyz", down.addr))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    down.stop().await;
}

/// The dashboard's part of docs/metrics.md: every metric listed for `dashboard` is exported with
/// its type, every exported family is listed, and every series carries `service="dashboard"`.
fn check_metrics_contract(exposition: &str) {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md"))
        .unwrap();
    let mut listed = BTreeMap::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let line = line.replace("\\|", "/");
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        if cells[3].split(',').any(|s| s.trim() == "dashboard") {
            listed.insert(cells[0].trim_matches('`').to_string(), cells[1].to_string());
        }
    }
    assert!(
        listed.len() >= 5,
        "docs/metrics.md lists no dashboard metrics"
    );
    let mut exported = BTreeMap::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            exported.insert(name.to_string(), kind.to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            assert!(
                line.contains("service=\"dashboard\""),
                "series without service=\"dashboard\": {line}"
            );
        }
    }
    for (name, kind) in &listed {
        assert_eq!(
            exported.get(name),
            Some(kind),
            "{name} ({kind}) is listed for the dashboard in docs/metrics.md"
        );
    }
    // As for the other services: every logjet_* family is in the contract (the process
    // collector exports a few more process_* than the contract promises).
    for name in exported.keys().filter(|n| n.starts_with("logjet_")) {
        assert!(
            listed.contains_key(name),
            "the dashboard exports {name}, which docs/metrics.md does not list for it"
        );
    }
}

/// The proxy adds `Authorization: Bearer <query_api_key>` towards the query service.
#[tokio::test]
async fn dashboard_proxy_sends_the_api_key_upstream() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dist = dashboard::dist_dir();
    // A fake query service that records the request head.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap();
    let seen = tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 8192];
        let mut n = 0;
        while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
            n += sock.read(&mut buf[n..]).await.unwrap();
        }
        let body = r#"{"total":0}"#;
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(resp.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&buf[..n]).to_string()
    });
    let dash = dashboard::start(logjet_core::config::DashboardConfig {
        query_api_key: Some("k3y-for-query".into()),
        ..dashboard::config(&format!("http://{upstream}"), &dist)
    })
    .await;
    let r = logjet_tests::http_client()
        .get(format!("http://{}/api/stats/summary?x=1", dash.addr))
        .header("cookie", "session=browser-only")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(!format!("{:?}", r.headers()).contains("k3y"));
    let head = seen.await.unwrap();
    assert!(head.starts_with("GET /stats/summary?x=1 "), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("authorization: bearer k3y-for-query"),
        "{head}"
    );
    assert!(!head.contains("session=browser-only"), "{head}");
    dash.stop().await;
}
