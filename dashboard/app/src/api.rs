//! The query API as the browser sees it: `/api/*` on the dashboard's own origin, proxied to the
//! query service. Types mirror `query/src/{search,stats,patterns,pipeline}.rs`; every field the
//! app does not need is ignored, and missing ones default, so a newer query service still works.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Request, RequestInit, Response};

/// Levels, lowest first, as the API spells them.
pub const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Summary {
    pub total: u64,
    pub by_level: BTreeMap<String, u64>,
    pub by_service: BTreeMap<String, u64>,
    pub events_per_sec: f64,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Point {
    pub ts: String,
    pub total: u64,
    pub by_level: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Timeseries {
    pub step_secs: i64,
    pub points: Vec<Point>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ServiceInfo {
    pub name: String,
    pub last_seen: String,
    pub total: u64,
    pub by_level: BTreeMap<String, u64>,
    pub error_rate: f64,
}

impl ServiceInfo {
    pub fn errors(&self) -> u64 {
        self.by_level.get("error").copied().unwrap_or(0)
            + self.by_level.get("fatal").copied().unwrap_or(0)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ServicesResponse {
    pub services: Vec<ServiceInfo>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct ConsumerState {
    pub name: String,
    pub lag: u64,
    pub num_pending: u64,
    pub num_ack_pending: u64,
    pub num_waiting: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PipelineStats {
    pub consumer: Option<ConsumerState>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Pattern {
    pub template: String,
    pub count: u64,
    pub sample: String,
    pub last_seen: String,
    pub series: Vec<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct PatternsResponse {
    pub total: u64,
    pub patterns: Vec<Pattern>,
}

/// A canonical event; `fields` keeps the JSON values as they came.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct LogEvent {
    pub ts: String,
    pub service: String,
    pub level: String,
    pub message: String,
    pub fields: BTreeMap<String, serde_json::Value>,
    pub trace_id: Option<String>,
    pub host: Option<String>,
}

impl LogEvent {
    /// Identity for de-duplicating pages and keeping rows expanded across refreshes.
    pub fn key(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.ts,
            self.service,
            self.level,
            self.message.len()
        ) + &self.message.chars().take(64).collect::<String>()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct QueryResponse {
    pub events: Vec<LogEvent>,
    pub next_cursor: Option<String>,
    pub scanned: u64,
    pub truncated: bool,
    pub source: String,
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

pub async fn get<T: DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    let text = send("GET", path, None).await?;
    serde_json::from_str(&text).map_err(|e| ApiError::Decode(e.to_string()))
}

pub async fn post<T: DeserializeOwned>(
    path: &str,
    body: &serde_json::Value,
) -> Result<T, ApiError> {
    let text = send("POST", path, Some(body.to_string())).await?;
    serde_json::from_str(&text).map_err(|e| ApiError::Decode(e.to_string()))
}

/// `a=b&c=d` from pairs, skipping empty values.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    let params = web_sys::UrlSearchParams::new().expect("URLSearchParams");
    for (k, v) in pairs {
        if !v.is_empty() {
            params.append(k, v);
        }
    }
    String::from(params.to_string())
}
