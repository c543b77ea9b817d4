//! Sign-in, sign-out and the gate in front of the app and `/api/*` (docs/security.md).
//!
//! - `GET /signin`: a small form page served from here (no script), `POST /signin` with `key`:
//!   the key is checked with the query service (`GET /auth/whoami`), must have the `query`
//!   scope, and is exchanged for a session cookie; the key itself stays in this process.
//! - `POST /signout`: ends the session and clears the cookie.
//! - `GET /auth/me`: who the app is signed in as, and where "Sign out" goes.
//! - [`require_user`]: every other path but `/healthz`, `/readyz`, `/metrics` needs a user;
//!   without one `/api/*` and `/auth/*` answer 401 JSON, pages redirect to `/signin`.

use std::net::SocketAddr;
use std::time::Instant;

use axum::Form;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use logjet_core::http::ApiError;
use serde::Deserialize;

use crate::AppState;
use crate::identity::{Denied, Gate, User};
use crate::session;

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    key: String,
}

/// What the query service said about a key.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A key with the query scope: its name.
    Accepted(String),
    Refused(&'static str),
    QueryDown(String),
}

/// Judges the query service's answer to `GET /auth/whoami` (pure, for tests).
pub fn verdict(status: StatusCode, body: &[u8]) -> Verdict {
    if status == StatusCode::UNAUTHORIZED {
        return Verdict::Refused("That key was not accepted.");
    }
    if !status.is_success() {
        return Verdict::QueryDown(format!("the query service answered {status}"));
    }
    let Ok(who) = serde_json::from_slice::<logjet_api::WhoAmI>(body) else {
        return Verdict::QueryDown("the query service's answer was not understood".into());
    };
    if !who.authentication {
        // Every string would "work": sign-in would protect nothing.
        return Verdict::Refused(
            "The query service has authentication off (LOGJET_AUTH=off), so keys cannot be checked: set LOGJET_DASHBOARD_AUTH=off for local development.",
        );
    }
    if !who.scopes.iter().any(|s| s == "query") {
        return Verdict::Refused("That key may not read logs (it has no query scope).");
    }
    Verdict::Accepted(who.name)
}

/// A request from this site: the browser's `Sec-Fetch-Site` when it sends one (`same-origin`
/// yes, `cross-site`/`same-site` no; our pages' `Referrer-Policy: no-referrer` makes a browser
/// send `Origin: null` on its own form posts, so the header decides), else no `Origin` or one
/// naming this host. Keeps another site from signing a browser in with its own key (login
/// CSRF) or out.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let get = |h: header::HeaderName| headers.get(h).and_then(|v| v.to_str().ok());
    match get(header::HeaderName::from_static("sec-fetch-site")) {
        Some("same-origin") => return true,
        Some("cross-site" | "same-site") => return false,
        _ => {}
    }
    match (get(header::ORIGIN), get(header::HOST)) {
        (None, _) => true,
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(scheme, rest)| matches!(scheme, "http" | "https") && rest == host),
        (Some(_), None) => false,
    }
}

fn peer(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// Middleware: puts the [`User`] in the request, or refuses it.
pub async fn require_user(State(st): State<AppState>, mut req: Request, next: Next) -> Response {
    match st.gate.user(req.headers(), peer(&req), Instant::now()) {
        Ok(user) => {
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        Err(denied) => refuse(&st.gate, denied, req.uri().path()),
    }
}

/// The app bundle ([`crate::assets::serve`]), for a user only.
pub async fn bundle(State(st): State<AppState>, req: Request) -> Response {
    match st.gate.user(req.headers(), peer(&req), Instant::now()) {
        Ok(_) => crate::assets::serve(State(st), req).await,
        Err(denied) => refuse(&st.gate, denied, req.uri().path()),
    }
}

fn refuse(gate: &Gate, denied: Denied, path: &str) -> Response {
    let msg = match denied {
        Denied::NotSignedIn => "sign in first: /signin",
        Denied::NotFromProxy => {
            "sign in through the authenticating proxy in front of the dashboard"
        }
    };
    if path.starts_with("/api/") || path.starts_with("/auth/") {
        return ApiError::new(StatusCode::UNAUTHORIZED, msg).into_response();
    }
    match gate {
        Gate::SignIn(_) => redirect("/signin"),
        _ => page(StatusCode::UNAUTHORIZED, None, Some(msg)),
    }
}

fn redirect(to: &'static str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, HeaderValue::from_static(to)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
    )
        .into_response()
}

pub async fn signin_page(State(st): State<AppState>, req: Request) -> Response {
    match &st.gate {
        Gate::SignIn(_) => {
            if st
                .gate
                .user(req.headers(), peer(&req), Instant::now())
                .is_ok()
            {
                return redirect("/");
            }
            page(StatusCode::OK, Some(()), None)
        }
        // Nothing to sign in to here.
        _ => redirect("/"),
    }
}

pub async fn signin(
    State(st): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<SignInForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Some(store) = st.gate.sessions() else {
        return redirect("/");
    };
    if !same_origin(&headers) {
        st.signins.with_label_values(&["cross_site"]).inc();
        return page(
            StatusCode::FORBIDDEN,
            Some(()),
            Some("Sign-in from another site is refused."),
        );
    }
    let key = match form {
        Ok(Form(f)) => f.key.trim().to_string(),
        Err(_) => String::new(),
    };
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
        st.signins.with_label_values(&["refused"]).inc();
        return page(
            StatusCode::BAD_REQUEST,
            Some(()),
            Some("Enter an API key (printable characters, no spaces)."),
        );
    }
    let verdict = match st.proxy.whoami(&key).await {
        Ok((status, body)) => verdict(status, &body),
        Err(e) => Verdict::QueryDown(e),
    };
    match verdict {
        Verdict::Accepted(name) => match store.create(&name, &key, Instant::now()) {
            Some(id) => {
                st.signins.with_label_values(&["ok"]).inc();
                tracing::info!(user = %name, "signed in");
                let mut resp = redirect("/");
                resp.headers_mut()
                    .insert(header::SET_COOKIE, session::set_cookie(&id, store.ttl()));
                resp
            }
            None => page(
                StatusCode::BAD_REQUEST,
                Some(()),
                Some("That key cannot be used."),
            ),
        },
        Verdict::Refused(why) => {
            st.signins.with_label_values(&["refused"]).inc();
            tracing::info!(reason = why, "sign-in refused");
            page(StatusCode::UNAUTHORIZED, Some(()), Some(why))
        }
        Verdict::QueryDown(why) => {
            st.signins.with_label_values(&["unavailable"]).inc();
            tracing::warn!(error = %why, "sign-in: query service did not answer");
            page(
                StatusCode::BAD_GATEWAY,
                Some(()),
                Some("The query service did not answer; try again in a moment."),
            )
        }
    }
}

pub async fn signout(State(st): State<AppState>, headers: HeaderMap) -> Response {
    if !same_origin(&headers) {
        return ApiError::new(StatusCode::FORBIDDEN, "cross-site sign-out refused").into_response();
    }
    match &st.gate {
        Gate::SignIn(store) => {
            if let Some(id) = session::session_id(&headers) {
                store.remove(&id);
            }
            let mut resp = redirect("/signin");
            resp.headers_mut()
                .insert(header::SET_COOKIE, session::clear_cookie());
            resp
        }
        _ => redirect("/"),
    }
}

/// `GET /auth/me` (behind [`require_user`]).
pub async fn me(State(st): State<AppState>, req: Request) -> Response {
    let user = req.extensions().get::<User>().and_then(|u| u.name.clone());
    let (signout, signout_post) = match &st.gate {
        Gate::SignIn(_) => (Some("/signout".to_string()), true),
        Gate::Proxy { signout, .. } => (signout.clone(), false),
        Gate::Off { .. } => (None, false),
    };
    let mut resp = axum::Json(logjet_api::Me {
        user,
        signout,
        signout_post,
    })
    .into_response();
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// The sign-in page (`form` = `Some`) or a plain message page. Self-contained: no script, one
/// inline style sheet, and a Content-Security-Policy that allows nothing else.
fn page(status: StatusCode, form: Option<()>, error: Option<&str>) -> Response {
    let html = render(form.is_some(), error);
    (
        status,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
                ),
            ),
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        html,
    )
        .into_response()
}

fn render(form: bool, error: Option<&str>) -> String {
    let error = error
        .map(|e| {
            format!(
                r#"<p class="error" role="alert" data-testid="signin-error">{}</p>"#,
                escape(e)
            )
        })
        .unwrap_or_default();
    let form = if form {
        r#"<form method="post" action="/signin" data-testid="signin-form">
<label for="key">API key (query scope)</label>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus spellcheck="false">
<button type="submit" data-testid="signin-submit">Sign in</button>
</form>
<p class="hint">Keys are made with <code>scripts/new-api-key.sh</code>; the key stays on the dashboard server, your browser only gets a session cookie.</p>"#
    } else {
        ""
    };
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Sign in · logjet</title>
<style>{STYLE}</style></head>
<body><main><h1>logjet</h1>{error}{form}</main></body></html>"#
    )
}

const STYLE: &str = "body{font:16px system-ui,sans-serif;margin:0;display:flex;justify-content:center;background:#f6f7f9;color:#1b1f24}\
main{margin-top:12vh;width:min(360px,90vw);background:#fff;padding:24px;border-radius:8px;box-shadow:0 1px 4px #0002}\
h1{margin:0 0 16px;font-size:22px}label{display:block;margin-bottom:6px}\
input{box-sizing:border-box;width:100%;padding:8px;font:inherit;margin-bottom:12px}\
button{padding:8px 16px;font:inherit}.error{color:#b42318}.hint{font-size:13px;color:#57606a}\
@media (prefers-color-scheme:dark){body{background:#0d1117;color:#e6edf3}main{background:#161b22}.hint{color:#9da7b3}.error{color:#ff7b72}}";

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(name: &str, scopes: &[&str], authentication: bool) -> Vec<u8> {
        serde_json::to_vec(&logjet_api::WhoAmI {
            name: name.into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            authentication,
        })
        .unwrap()
    }

    #[test]
    fn only_a_query_key_checked_by_an_authenticating_query_service_signs_in() {
        assert_eq!(
            verdict(StatusCode::OK, &who("grafana", &["query"], true)),
            Verdict::Accepted("grafana".into())
        );
        assert!(matches!(
            verdict(StatusCode::OK, &who("shipper", &["ingest"], true)),
            Verdict::Refused(m) if m.contains("query scope")
        ));
        assert!(matches!(
            verdict(StatusCode::OK, &who("anonymous", &["ingest", "query"], false)),
            Verdict::Refused(m) if m.contains("LOGJET_AUTH=off")
        ));
        assert!(matches!(
            verdict(StatusCode::UNAUTHORIZED, b"{}"),
            Verdict::Refused(_)
        ));
        assert!(matches!(
            verdict(StatusCode::SERVICE_UNAVAILABLE, b""),
            Verdict::QueryDown(_)
        ));
        assert!(matches!(
            verdict(StatusCode::OK, b"<html>"),
            Verdict::QueryDown(_)
        ));
    }

    #[test]
    fn cross_site_posts_are_told_apart() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, HeaderValue::from_static(v));
            }
            m
        };
        assert!(same_origin(&h(&[("host", "localhost:3000")])));
        assert!(same_origin(&h(&[
            ("host", "localhost:3000"),
            ("origin", "http://localhost:3000")
        ])));
        assert!(same_origin(&h(&[
            ("host", "logs.example.com"),
            ("origin", "https://logs.example.com")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "localhost:3000"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&h(&[
            ("host", "localhost:3000"),
            ("origin", "null")
        ])));
        assert!(!same_origin(&h(&[("sec-fetch-site", "cross-site")])));
        assert!(!same_origin(&h(&[
            ("host", "localhost:3000"),
            ("origin", "http://localhost:3000"),
            ("sec-fetch-site", "same-site")
        ])));
        // A browser's own form post from a no-referrer page.
        assert!(same_origin(&h(&[
            ("host", "localhost:3000"),
            ("origin", "null"),
            ("sec-fetch-site", "same-origin")
        ])));
    }

    #[test]
    fn pages_escape_their_message_and_never_run_scripts() {
        let r = page(
            StatusCode::UNAUTHORIZED,
            Some(()),
            Some("<script>x</script>"),
        );
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap();
        assert!(csp.contains("default-src 'none'"));
        assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
        let html = render(true, Some("<script>x</script>"));
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<script"), "{html}");
        assert!(html.contains(r#"type="password""#));
        assert!(!render(false, None).contains("<form"));
    }
}
