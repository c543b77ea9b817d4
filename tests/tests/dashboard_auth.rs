//! The dashboard asks who you are (docs/security.md): sign-in with an API key of query scope for
//! a server-side session, or a trusted authenticating proxy's identity header; over HTTP and in
//! headless Chromium. Real NATS, Redis, ingest, a processor, a query service with API keys on,
//! and the dashboard server.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::time::{Duration, Instant};

use fantoccini::Locator;
use logjet_core::auth::key_line;
use logjet_core::config::{ApiSettings, AuthSetting, DashboardAuth, DashboardConfig};
use logjet_tests::browser::Browser;
use logjet_tests::dashboard;
use logjet_tests::platform::{self, Platform, Svc};
use reqwest::StatusCode;
use reqwest::header::{LOCATION, SET_COOKIE};
use serde_json::Value;

const QUERY_KEY: &str = "lj_dash_reader_5b0c8e2a7d41f9";
const INGEST_KEY: &str = "lj_dash_shipper_93e1a7c4b2d066";
const WAIT: Duration = Duration::from_secs(15);
const COOKIE: &str = "__Host-logjet-session";

struct Setup {
    p: Platform,
    query: Svc,
    _keys: tempfile::NamedTempFile,
    /// Events sent (and processed) before the dashboard was opened.
    total: u64,
}

/// The platform, three events processed, and a query service that checks API keys.
async fn setup() -> Setup {
    let mut keys = tempfile::NamedTempFile::new().unwrap();
    for (name, scopes, key) in [
        ("reader", "query", QUERY_KEY),
        ("shipper", "ingest", INGEST_KEY),
    ] {
        writeln!(keys, "{}", key_line(name, scopes, key)).unwrap();
    }
    let p = Platform::start(1).await;
    let mut qcfg = platform::query_config(&p.nats.url(), &p.redis.url());
    qcfg.api = ApiSettings {
        auth: AuthSetting::On,
        api_keys_file: Some(keys.path().to_path_buf()),
        rate_limit_per_second: 0,
        ..ApiSettings::default()
    };
    let query = platform::start_query(qcfg).await;
    p.wait_ready(&query.url()).await;
    let body = "{\"service\":\"api\",\"level\":\"error\",\"message\":\"boom 1\"}\n\
                {\"service\":\"api\",\"level\":\"info\",\"message\":\"ok 2\"}\n\
                {\"service\":\"web\",\"level\":\"warn\",\"message\":\"slow 3\"}\n";
    let r = p.post("application/x-ndjson", body.to_string()).await;
    assert_eq!(r.status(), 202);
    p.wait_for_total(3, WAIT).await;
    Setup {
        p,
        query,
        _keys: keys,
        total: 3,
    }
}

async fn start_dashboard(cfg: DashboardConfig) -> (Svc, String) {
    let dash = dashboard::start(cfg).await;
    let url = format!("http://{}", dash.addr);
    (dash, url)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn sign_in(http: &reqwest::Client, url: &str, key: &str) -> reqwest::Response {
    http.post(format!("{url}/signin"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("key={key}"))
        .send()
        .await
        .unwrap()
}

/// `name=value` of the session cookie a response set.
fn session_cookie(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(COOKIE))
        .and_then(|v| v.split(';').next())
        .map(str::to_string)
}

async fn get(http: &reqwest::Client, url: &str, cookie: Option<&str>) -> reqwest::Response {
    let mut r = http.get(url);
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    r.send().await.unwrap()
}

/// The session lifetime in the HTTP test: long enough to tell a revoked key from an expiry.
const TTL: Duration = Duration::from_secs(8);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_over_http_gives_a_session_that_reads_with_the_users_own_key() {
    let s = setup().await;
    let dist = dashboard::dist_dir();
    let mut cfg = dashboard::signed_in_config(&s.query.url(), &dist);
    cfg.session_ttl = TTL;
    let (_dash, url) = start_dashboard(cfg).await;
    let http = http();

    // Nobody signed in: pages go to the sign-in page, the API and /auth/me answer 401.
    let r = get(&http, &format!("{url}/"), None).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/signin");
    let r = get(&http, &format!("{url}/?view=explore"), None).await;
    assert_eq!(r.headers()[LOCATION], "/signin");
    for path in ["/api/stats/summary", "/api/logs/tail", "/auth/me"] {
        let r = get(&http, &format!("{url}{path}"), None).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // A key sent the way the query service takes it counts for nothing here.
    let r = http
        .get(format!("{url}/api/stats/summary"))
        .bearer_auth(QUERY_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // So does a forged session cookie.
    let forged = format!("{COOKIE}={}", "0".repeat(64));
    let r = get(&http, &format!("{url}/api/stats/summary"), Some(&forged)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Health stays open (probes).
    assert_eq!(
        get(&http, &format!("{url}/healthz"), None).await.status(),
        200
    );

    // The sign-in page: a form, no script allowed.
    let r = get(&http, &format!("{url}/signin"), None).await;
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    let html = r.text().await.unwrap();
    assert!(html.contains("data-testid=\"signin-form\""), "{html}");

    // Wrong key, a key without the query scope, an empty one, another site's form: refused,
    // and no session.
    for (key, status) in [
        ("lj_not_a_key", StatusCode::UNAUTHORIZED),
        (INGEST_KEY, StatusCode::UNAUTHORIZED),
        ("", StatusCode::BAD_REQUEST),
    ] {
        let r = sign_in(&http, &url, key).await;
        assert_eq!(r.status(), status, "key {key:?}");
        assert!(session_cookie(&r).is_none());
        let html = r.text().await.unwrap();
        assert!(html.contains("signin-error"), "{html}");
        assert!(key.is_empty() || !html.contains(key), "the key is echoed");
    }
    let r = http
        .post(format!("{url}/signin"))
        .header("origin", "http://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("key={QUERY_KEY}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(session_cookie(&r).is_none());

    // The right key: a session cookie (HttpOnly, Secure, SameSite=Strict, Max-Age) and back to
    // the app. Nothing sent back holds the key.
    let r = sign_in(&http, &url, QUERY_KEY).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/");
    let set = r.headers()[SET_COOKIE].to_str().unwrap().to_string();
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=8",
    ] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    assert!(!set.contains(QUERY_KEY));
    let cookie = session_cookie(&r).unwrap();
    assert!(!format!("{:?}", r.headers()).contains(QUERY_KEY));

    // The dashboard has no key of its own (sign-in mode refuses one) and query checks keys:
    // data through the proxy means the user's own key was sent.
    let r = get(&http, &format!("{url}/api/stats/summary"), Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    let summary: Value = r.json().await.unwrap();
    assert_eq!(summary["total"], s.total);
    let me: Value = get(&http, &format!("{url}/auth/me"), Some(&cookie))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"], "reader");
    assert_eq!(me["signout"], "/signout");
    let r = get(&http, &format!("{url}/"), Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    // Signed in already: the sign-in page sends you on.
    let r = get(&http, &format!("{url}/signin"), Some(&cookie)).await;
    assert_eq!(r.headers()[LOCATION], "/");

    // Sign-out ends the session here, not only in the browser.
    let r = http
        .post(format!("{url}/signout"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[LOCATION], "/signin");
    assert!(
        r.headers()[SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let r = get(&http, &format!("{url}/api/stats/summary"), Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Expiry: the server ends a session after session_ttl whatever the browser keeps.
    let r = sign_in(&http, &url, QUERY_KEY).await;
    let cookie = session_cookie(&r).unwrap();
    let signed_in = Instant::now();
    let r = get(&http, &format!("{url}/api/stats/summary"), Some(&cookie)).await;
    assert_eq!(r.status(), 200);
    tokio::time::sleep(TTL.saturating_sub(signed_in.elapsed())).await;
    let r = get(&http, &format!("{url}/api/stats/summary"), Some(&cookie)).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A key revoked in the keys file (re-read by query without a restart): the session
    // signed in with it ends at its next request, and stays ended when the key comes back.
    let r = sign_in(&http, &url, QUERY_KEY).await;
    let cookie = session_cookie(&r).unwrap();
    let keys_path = s._keys.path().to_path_buf();
    let write_keys = |lines: &[String]| {
        let tmp = keys_path.with_extension("tmp");
        std::fs::write(&tmp, lines.join("\n")).unwrap();
        std::fs::rename(&tmp, &keys_path).unwrap();
    };
    write_keys(&[key_line("shipper", "ingest", INGEST_KEY)]);
    let revoked = Instant::now();
    // Well before the session's own expiry (TTL), so the 401 is the revocation's.
    loop {
        let r = get(&http, &format!("{url}/api/stats/summary"), Some(&cookie)).await;
        if r.status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            revoked.elapsed() < Duration::from_secs(4),
            "the revoked key still reads after {:?}",
            revoked.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    write_keys(&[key_line("reader", "query", QUERY_KEY)]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = get(&http, &format!("{url}/api/stats/summary"), Some(&cookie)).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "the session outlived its key"
    );
    drop(s.p);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_identity_header_counts_only_from_trusted_addresses() {
    let s = setup().await;
    let dist = dashboard::dist_dir();
    let proxied = |cidrs: &str| DashboardConfig {
        dashboard_auth: DashboardAuth::Proxy,
        proxy_trusted_cidrs: cidrs.into(),
        proxy_signout_url: Some("/oauth2/sign_out".into()),
        query_api_key: Some(QUERY_KEY.into()),
        ..dashboard::signed_in_config(&s.query.url(), &dist)
    };
    let http = http();

    // The test connects from 127.0.0.1: trusted.
    let (_dash, url) = start_dashboard(proxied("10.0.0.0/8, 127.0.0.1/32")).await;
    let with_user = |path: &str, header: &'static str, who: &'static str| {
        http.get(format!("{url}{path}")).header(header, who).send()
    };
    let r = with_user("/api/stats/summary", "x-forwarded-user", "alice")
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["total"], s.total);
    let me: Value = with_user("/auth/me", "x-forwarded-email", "bob@example.com")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["user"], "bob@example.com");
    assert_eq!(me["signout"], "/oauth2/sign_out");
    assert_eq!(me["signout_post"], false);
    let r = with_user("/", "x-forwarded-user", "alice").await.unwrap();
    assert_eq!(r.status(), 200);
    // No header: refused (no sign-in form in this mode).
    let r = get(&http, &format!("{url}/api/stats/summary"), None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = get(&http, &format!("{url}/"), None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // The same header from an address outside the configured ranges: refused.
    let (_dash2, url2) = start_dashboard(proxied("10.0.0.0/8")).await;
    let r = http
        .get(format!("{url2}/api/stats/summary"))
        .header("x-forwarded-user", "alice")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    drop(s.p);
}

/// The app in Chromium: sign-in page first, a wrong key refused, the app with data after
/// signing in, nothing secret visible to page scripts, sign-out, and a session that expires
/// while the app is open.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chromium_signs_in_reads_signs_out_and_is_sent_back_when_the_session_expires() {
    let s = setup().await;
    let dist = dashboard::dist_dir();
    let mut cfg = dashboard::signed_in_config(&s.query.url(), &dist);
    cfg.session_ttl = Duration::from_secs(6);
    let (_dash, url) = start_dashboard(cfg).await;
    let b = Browser::start(1280, 800).await;

    // Unauthenticated: the sign-in page.
    b.goto(&format!("{url}/")).await;
    let on_signin = "return location.pathname === '/signin' && document.querySelector('[data-testid=signin-form]') !== null;";
    b.wait_js("the sign-in page", on_signin, WAIT).await;
    b.screenshot("dashboard-signin").await;

    let submit = |key: &'static str| {
        let b = &b;
        async move {
            let input = b.client.find(Locator::Css("#key")).await.unwrap();
            input.clear().await.unwrap();
            input.send_keys(key).await.unwrap();
            b.click("[data-testid=signin-submit]").await;
        }
    };

    // A wrong key: refused, still on the sign-in page, no cookie.
    submit("lj_wrong_key_0000").await;
    b.wait_js(
        "the refusal",
        "return document.querySelector('[data-testid=signin-error]') !== null;",
        WAIT,
    )
    .await;
    let err = b.text("[data-testid=signin-error]").await.unwrap();
    assert!(err.contains("not accepted"), "{err}");
    assert!(
        b.client.get_all_cookies().await.unwrap().is_empty(),
        "a refused sign-in left a cookie"
    );

    // The right key: the app, with the data that was sent.
    submit(QUERY_KEY).await;
    b.wait_attr(
        "[data-testid=card-hour]",
        "data-value",
        &s.total.to_string(),
        WAIT,
    )
    .await;
    b.wait_js(
        "who is signed in",
        "return document.querySelector('[data-testid=user]') !== null;",
        WAIT,
    )
    .await;
    assert_eq!(b.text("[data-testid=user]").await.unwrap(), "reader");
    b.screenshot("dashboard-signed-in").await;

    // Chromium kept the Secure cookie over http://127.0.0.1 (a potentially trustworthy
    // origin), HttpOnly and SameSite=Strict.
    let cookies = b.client.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == COOKIE)
        .unwrap_or_else(|| panic!("no session cookie in {cookies:?}"));
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(session.secure(), Some(true));
    assert_eq!(session.same_site(), Some(cookie::SameSite::Strict));
    assert!(!session.value().contains(QUERY_KEY));

    // Nothing a page script can read holds the key or the session.
    let exposed = b
        .eval(&format!(
            "const key = {QUERY_KEY:?}, sid = {sid:?};
             const stores = [];
             for (const s of [localStorage, sessionStorage])
               for (let i = 0; i < s.length; i++) stores.push(s.key(i) + '=' + s.getItem(s.key(i)));
             const all = [document.cookie, document.documentElement.outerHTML, location.href,
                          stores.join(';')].join('\\n');
             return {{ cookie: document.cookie, hasKey: all.includes(key),
                      hasSession: all.includes(sid), stores: stores.length }};",
            sid = session.value()
        ))
        .await;
    assert_eq!(exposed["cookie"], "", "{exposed}");
    assert_eq!(exposed["hasKey"], false, "{exposed}");
    assert_eq!(exposed["hasSession"], false, "{exposed}");

    // Sign-out: back to the sign-in page, and the app is not reachable any more.
    b.click("[data-testid=signout]").await;
    b.wait_js("the sign-in page after sign-out", on_signin, WAIT)
        .await;
    b.goto(&format!("{url}/?view=explore")).await;
    b.wait_js("the sign-in page again", on_signin, WAIT).await;

    // A session that expires while the app is open: the app's next poll gets 401 and the
    // sign-in page takes over by itself.
    let submitted = Instant::now();
    submit(QUERY_KEY).await;
    b.wait_js(
        "the app",
        "return document.querySelector('[data-testid=card-hour]') !== null;",
        WAIT,
    )
    .await;
    b.wait_js(
        "the sign-in page after expiry",
        on_signin,
        Duration::from_secs(20),
    )
    .await;
    let after = submitted.elapsed();
    assert!(
        after >= Duration::from_secs(6),
        "sent to sign-in after {after:?}, before the 6 s session ended"
    );
    b.screenshot("dashboard-session-expired").await;
    b.close().await;
    drop(s.p);
}
