//! The query API as the browser sees it: `/api/*` on the dashboard's own origin, proxied to the
//! query service. The request and response types are the query service's own, from
//! `logjet-api`: a field renamed there breaks this build instead of a panel in the browser.

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestInit, Response};

pub(crate) use logjet_api::{
    FieldValue, Level, LogEvent, Me, Pattern, PatternParams, PatternsResponse, PipelineStats,
    QueryRequest, QueryResponse, ServiceInfo, ServicesResponse, Summary, TailParams, Timeseries,
    TimeseriesParams,
};

/// Identity of an event for de-duplicating pages and keeping rows expanded across refreshes.
pub(crate) fn event_key(ev: &LogEvent) -> String {
    format!(
        "{}|{}|{}|{}",
        event_ts(ev),
        ev.service,
        ev.level,
        ev.message.len()
    ) + &ev.message.chars().take(64).collect::<String>()
}

/// An event's time in milliseconds since the epoch, as the browser's clock counts.
pub(crate) fn event_ms(ev: &LogEvent) -> f64 {
    ev.ts.timestamp_micros() as f64 / 1000.0
}

/// An event's time as the API writes it (RFC 3339, nanoseconds, `Z`).
pub(crate) fn event_ts(ev: &LogEvent) -> String {
    logjet_api::event::format_ts(&ev.ts)
}

/// What went wrong with a request.
#[derive(Clone, Debug, PartialEq)]
pub enum ApiError {
    /// The dashboard server did not answer (the browser's fetch failed).
    Offline(String),
    /// The proxy could not reach the query service, or it is unavailable (502, 503, 504).
    Down { status: u16, message: String },
    /// The API answered with an error (a bad filter, say): shown as text where it belongs.
    Http { status: u16, message: String },
    /// The answer was not what the app expected.
    Decode(String),
}

impl ApiError {
    /// The query service (or the dashboard server) is not answering: the banner's business.
    pub fn is_down(&self) -> bool {
        matches!(self, ApiError::Offline(_) | ApiError::Down { .. })
    }

    /// The cause alone, for the banner (which says what is down).
    pub fn reason(&self) -> String {
        match self {
            ApiError::Offline(m) => format!("The dashboard server is not answering ({m})"),
            ApiError::Down { status, message } => format!("{status}: {message}"),
            other => other.to_string(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Offline(m) => write!(f, "the dashboard server is not answering ({m})"),
            ApiError::Down { status, message } => {
                write!(f, "the query service is unavailable ({status}: {message})")
            }
            ApiError::Http { status, message } => write!(f, "API error {status}: {message}"),
            ApiError::Decode(m) => write!(f, "unexpected answer from the API: {m}"),
        }
    }
}

fn js_err(v: JsValue) -> String {
    v.dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| v.as_string())
        .unwrap_or_else(|| "network error".into())
}

async fn send(method: &str, path: &str, body: Option<String>) -> Result<String, ApiError> {
    let init = RequestInit::new();
    init.set_method(method);
    if let Some(b) = &body {
        init.set_body(&JsValue::from_str(b));
    }
    let req =
        Request::new_with_str_and_init(path, &init).map_err(|e| ApiError::Offline(js_err(e)))?;
    let headers = req.headers();
    let _ = headers.set("accept", "application/json");
    if body.is_some() {
        let _ = headers.set("content-type", "application/json");
    }
    let window = web_sys::window().ok_or_else(|| ApiError::Offline("no window".into()))?;
    let resp: Response = JsFuture::from(window.fetch_with_request(&req))
        .await
        .map_err(|e| ApiError::Offline(js_err(e)))?
        .unchecked_into();
    let status = resp.status();
    let text = match resp.text() {
        Ok(p) => JsFuture::from(p)
            .await
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    if (200..300).contains(&status) {
        return Ok(text);
    }
    // Not signed in (any more): the session expired, was signed out elsewhere, or its key was
    // revoked. The dashboard server's sign-in page takes over.
    if status == 401 {
        let _ = window.location().replace("/signin");
    }
    // Errors are `{"error": "...", "details": [...]}`; anything else is shown as it came.
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            let e = v.get("error")?.as_str()?.to_string();
            let details: Vec<String> = v
                .get("details")
                .and_then(|d| d.as_array())
                .map(|a| {
                    a.iter()
                        .map(|d| match d {
                            serde_json::Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(if details.is_empty() {
                e
            } else {
                format!("{e}: {}", details.join("; "))
            })
        })
        .unwrap_or_else(|| {
            let t = text.trim();
            if t.is_empty() {
                resp.status_text()
            } else {
                t.chars().take(300).collect()
            }
        });
    Err(match status {
        502..=504 => ApiError::Down { status, message },
        _ => ApiError::Http { status, message },
    })
}

pub(crate) async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    let text = send("GET", path, None).await?;
    serde_json::from_str(&text).map_err(|e| ApiError::Decode(e.to_string()))
}

pub(crate) async fn post<T: DeserializeOwned>(
    path: &str,
    body: &impl Serialize,
) -> Result<T, ApiError> {
    let body = serde_json::to_string(body).map_err(|e| ApiError::Decode(e.to_string()))?;
    let text = send("POST", path, Some(body)).await?;
    serde_json::from_str(&text).map_err(|e| ApiError::Decode(e.to_string()))
}

/// `a=b&c=d` from one of the API's parameter types, skipping what is unset or empty.
pub(crate) fn params_query(params: &impl Serialize) -> String {
    let fields = match serde_json::to_value(params) {
        Ok(serde_json::Value::Object(fields)) => fields,
        _ => return String::new(),
    };
    let values: Vec<(String, String)> = fields
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some((k, s)),
            other => Some((k, other.to_string())),
        })
        .collect();
    let pairs: Vec<(&str, &str)> = values
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    query_string(&pairs)
}

/// Some(`s`) unless it is empty: a filter left blank is no filter.
pub(crate) fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

/// `a=b&c=d` from pairs, skipping empty values.
pub(crate) fn query_string(pairs: &[(&str, &str)]) -> String {
    let params = web_sys::UrlSearchParams::new().expect("URLSearchParams");
    for (k, v) in pairs {
        if !v.is_empty() {
            params.append(k, v);
        }
    }
    String::from(params.to_string())
}
