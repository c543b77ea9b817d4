//! OTLP/HTTP logs: `POST /v1/logs`, as the OpenTelemetry SDKs' OTLP/HTTP exporters and the
//! OpenTelemetry Collector's `otlphttp` exporter send it.
//!
//! Both encodings of `ExportLogsServiceRequest` (`ingest/proto/opentelemetry/…`):
//! `application/x-protobuf`, and `application/json` (OTLP/JSON: lowerCamelCase names, trace and
//! span ids as hex, 64-bit integers as strings or numbers, enums as numbers; the protobuf field
//! names and enum names are accepted too). Gzip via `Content-Encoding`.
//!
//! Each log record becomes a record for the normaliser:
//! - resource `service.name` → service (else `?service=`); the other resource attributes, the
//!   scope's name and version (`scope.name`, `scope.version`) and the record's attributes →
//!   fields (a record's attribute wins over a resource attribute of the same name);
//! - `time_unix_nano` (else `observed_time_unix_nano`, else the time of receipt) → ts;
//! - `severity_number` → level by OpenTelemetry's ranges (1–4 trace … 21–24 fatal), else
//!   `severity_text` when it names a level, else detected from the message (an unknown
//!   `severity_text` is kept as the field `severity_text`);
//! - a string `body` → message; a map `body` is merged into the record (its `message`/`msg` is
//!   the message, the rest fields); other bodies → their text;
//! - `trace_id` → trace_id (hex), `span_id` → the field `span_id` (hex), `event_name` → the field
//!   `event.name`.
//!
//! Results follow the OTLP/HTTP specification: 200 with an `ExportLogsServiceResponse` in the
//! request's encoding; when some records were refused, its `partial_success` carries
//! `rejected_log_records` and an `error_message` naming them (the others were accepted; the
//! exporter must not retry). A request that cannot be decoded is a 400 and JetStream being
//! unavailable a 503 with `Retry-After` (retryable), both with a `google.rpc.Status` body.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use logjet_core::parse::{ParseOptions, Reject};
use logjet_core::{Level, LogEvent};
use prost::Message;
use serde_json::{Number, Value};

use super::proto::{otlp_collector as col, otlp_common as common, otlp_logs as logs};
use super::{Record, normalize, record_size, summarize};
use crate::{AppState, IngestError, IngestRequest, LogsParams, publish_events};

mod json;
use json::from_json;

/// How the request (and so the response) is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub fn from_content_type(ct: Option<&str>) -> Option<Encoding> {
        let mime = ct?.split(';').next()?.trim().to_ascii_lowercase();
        match mime.as_str() {
            "application/x-protobuf" | "application/protobuf" => Some(Encoding::Protobuf),
            "application/json" => Some(Encoding::Json),
            _ => None,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// The request's encoding, from `Content-Type`, or the content type that names none. Every
/// answer, errors included, is in the request's encoding, so the handler reads it first.
pub struct RequestEncoding(pub Result<Encoding, String>);

impl<S: Send + Sync> FromRequestParts<S> for RequestEncoding {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        Ok(RequestEncoding(
            Encoding::from_content_type(content_type)
                .ok_or_else(|| content_type.unwrap_or("").to_string()),
        ))
    }
}

/// Decodes an `ExportLogsServiceRequest`.
pub fn decode(body: &[u8], enc: Encoding) -> Result<col::ExportLogsServiceRequest, String> {
    match enc {
        Encoding::Protobuf => col::ExportLogsServiceRequest::decode(body)
            .map_err(|e| format!("invalid protobuf ExportLogsServiceRequest: {e}")),
        Encoding::Json => {
            from_json(body).map_err(|e| format!("invalid JSON ExportLogsServiceRequest: {e}"))
        }
    }
}

/// Normalises every log record; a reject's `line` is the record's 1-based position in the
/// request, counted over all resources and scopes.
pub fn normalize_request(
    req: col::ExportLogsServiceRequest,
    opts: &ParseOptions,
) -> (Vec<LogEvent>, Vec<Reject>) {
    let mut events = Vec::new();
    let mut rejects = Vec::new();
    let mut position = 0;
    for rl in req.resource_logs {
        let mut service = None;
        let mut resource = Vec::new();
        for kv in rl.resource.map(|r| r.attributes).unwrap_or_default() {
            let v = any_to_json(kv.value);
            if kv.key == "service.name" {
                service = Some(v);
            } else {
                resource.push((kv.key, v));
            }
        }
        for sl in rl.scope_logs {
            let mut scope = Vec::new();
            if let Some(s) = &sl.scope {
                if !s.name.is_empty() {
                    scope.push(("scope.name".to_string(), Value::String(s.name.clone())));
                }
                if !s.version.is_empty() {
                    scope.push((
                        "scope.version".to_string(),
                        Value::String(s.version.clone()),
                    ));
                }
            }
            for lr in sl.log_records {
                position += 1;
                let record = log_record(&resource, &scope, service.as_ref(), lr, opts);
                let size = record_size(&record);
                match normalize(record, size, position, opts) {
                    Ok(ev) => events.push(ev),
                    Err(r) => rejects.push(r),
                }
            }
        }
    }
    (events, rejects)
}

/// The level name of an OpenTelemetry severity number.
pub fn severity_level(n: i32) -> Option<Level> {
    Some(match n {
        1..=4 => Level::Trace,
        5..=8 => Level::Debug,
        9..=12 => Level::Info,
        13..=16 => Level::Warn,
        17..=20 => Level::Error,
        21..=24 => Level::Fatal,
        _ => return None,
    })
}

fn log_record(
    resource: &[(String, Value)],
    scope: &[(String, Value)],
    service: Option<&Value>,
    lr: logs::LogRecord,
    opts: &ParseOptions,
) -> Record {
    let mut r = Record::new();
    for (k, v) in resource.iter().chain(scope) {
        r.insert(k.clone(), v.clone());
    }
    let mut message = None;
    match lr.body.and_then(|b| b.value) {
        Some(common::any_value::Value::StringValue(s)) => message = Some(s),
        Some(common::any_value::Value::KvlistValue(kv)) => {
            for e in kv.values {
                r.insert(e.key, any_to_json(e.value));
            }
        }
        Some(other) => {
            message = Some(match any_value_to_json(other) {
                Value::String(s) => s,
                v => v.to_string(),
            })
        }
        None => {}
    }
    for kv in lr.attributes {
        r.insert(kv.key, any_to_json(kv.value));
    }
    if let Some(s) = service {
        r.insert("service".into(), s.clone());
    }
    let ts = [lr.time_unix_nano, lr.observed_time_unix_nano]
        .into_iter()
        .find(|t| *t > 0)
        .unwrap_or_else(|| opts.received_at.timestamp_nanos_opt().unwrap_or_default() as u64);
    r.insert("ts".into(), Value::from(ts));
    if let Some(level) = severity_level(lr.severity_number) {
        r.insert("level".into(), Value::String(level.as_str().into()));
    } else if !lr.severity_text.is_empty() {
        if Level::from_name(&lr.severity_text).is_some() {
            r.insert("level".into(), Value::String(lr.severity_text));
        } else {
            r.insert("severity_text".into(), Value::String(lr.severity_text));
        }
    }
    if let Some(m) = message {
        r.insert("message".into(), Value::String(m));
    }
    if lr.trace_id.iter().any(|b| *b != 0) {
        r.insert("trace_id".into(), Value::String(hex::encode(&lr.trace_id)));
    }
    if lr.span_id.iter().any(|b| *b != 0) {
        r.insert("span_id".into(), Value::String(hex::encode(&lr.span_id)));
    }
    if !lr.event_name.is_empty() {
        r.insert("event.name".into(), Value::String(lr.event_name));
    }
    r
}

fn any_to_json(v: Option<common::AnyValue>) -> Value {
    v.and_then(|v| v.value)
        .map_or(Value::Null, any_value_to_json)
}

fn any_value_to_json(v: common::any_value::Value) -> Value {
    use common::any_value::Value as V;
    match v {
        V::StringValue(s) => Value::String(s),
        V::BoolValue(b) => Value::Bool(b),
        V::IntValue(i) => Value::from(i),
        V::DoubleValue(d) => Number::from_f64(d).map_or(Value::Null, Value::Number),
        V::ArrayValue(a) => {
            Value::Array(a.values.into_iter().map(|v| any_to_json(Some(v))).collect())
        }
        V::KvlistValue(kv) => Value::Object(
            kv.values
                .into_iter()
                .map(|e| (e.key, any_to_json(e.value)))
                .collect(),
        ),
        V::BytesValue(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        // An index into a profiles string table: meaningless in logs.
        V::StringValueStrindex(_) => Value::Null,
    }
}

// ---------------------------------------------------------------------------------------------
// Responses.

/// `google.rpc.Status`: the body of OTLP/HTTP error responses.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// OTLP/JSON `google.rpc.Status`.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct OtlpStatus {
    /// gRPC status code (3 invalid argument, 8 resource exhausted, 14 unavailable).
    pub code: i32,
    pub message: String,
}

/// OTLP/JSON `ExportLogsServiceResponse`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OtlpExportResponse {
    /// Set only when some log records were refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_success: Option<OtlpPartialSuccess>,
}

/// OTLP/JSON `ExportLogsPartialSuccess`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OtlpPartialSuccess {
    /// Refused log records (an int64, written as a string as OTLP/JSON does).
    pub rejected_log_records: String,
    pub error_message: String,
}

/// 200 with an `ExportLogsServiceResponse`.
pub fn success(enc: Encoding, rejected: usize, error_message: String) -> Response {
    let body = match enc {
        Encoding::Protobuf => col::ExportLogsServiceResponse {
            partial_success: (rejected > 0).then_some(col::ExportLogsPartialSuccess {
                rejected_log_records: rejected as i64,
                error_message,
            }),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&OtlpExportResponse {
            partial_success: (rejected > 0).then(|| OtlpPartialSuccess {
                rejected_log_records: rejected.to_string(),
                error_message,
            }),
        })
        .expect("serialisable"),
    };
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, enc.content_type())],
        body,
    )
        .into_response()
}

/// An error with a `google.rpc.Status` body in `enc` (JSON when the request's is unknown).
pub fn failure(
    enc: Encoding,
    status: StatusCode,
    message: String,
    retry_after: Option<u64>,
) -> Response {
    let code = match status {
        StatusCode::SERVICE_UNAVAILABLE => 14,
        StatusCode::PAYLOAD_TOO_LARGE => 8,
        _ => 3,
    };
    let body = match enc {
        Encoding::Protobuf => Status { code, message }.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&OtlpStatus { code, message }).expect("serialisable"),
    };
    let mut resp = (status, [(header::CONTENT_TYPE, enc.content_type())], body).into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

fn ingest_failure(enc: Encoding, e: IngestError) -> Response {
    failure(enc, e.status(), e.to_string(), e.retry_after())
}

/// Binary protobuf, for the OpenAPI document.
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Protobuf(#[allow(dead_code)] Vec<u8>);

/// Export logs over OTLP/HTTP (OpenTelemetry SDKs, the Collector's `otlphttp` exporter).
#[utoipa::path(
    post,
    path = "/v1/logs",
    tag = "shippers",
    params(
        LogsParams,
        ("Idempotency-Key" = Option<String>, Header, description = "A retried request with the same key is counted once (within 2 minutes)."),
    ),
    request_body(
        description = "An OTLP `ExportLogsServiceRequest`, protobuf or OTLP/JSON.",
        content(
            (Protobuf = "application/x-protobuf"),
            (Object = "application/json")
        )
    ),
    responses(
        (status = 200, description = "Processed: every record accepted, or `partialSuccess` counts and names the refused ones (the others were accepted)",
            content((OtlpExportResponse = "application/json"), (Protobuf = "application/x-protobuf"))),
        (status = 400, description = "The request could not be decoded, or a bad parameter or header",
            content((OtlpStatus = "application/json"), (Protobuf = "application/x-protobuf"))),
        (status = 413, description = "Body over the limit (after decompression)",
            content((OtlpStatus = "application/json"), (Protobuf = "application/x-protobuf"))),
        (status = 415, description = "Unsupported content type or encoding",
            body = OtlpStatus),
        (status = 503, description = "JetStream unavailable, nothing accepted; retry after the given seconds",
            content((OtlpStatus = "application/json"), (Protobuf = "application/x-protobuf")),
            headers(("Retry-After" = u64, description = "Seconds to wait")))
    )
)]
pub async fn export(
    State(st): State<AppState>,
    RequestEncoding(enc): RequestEncoding,
    req: Result<IngestRequest, IngestError>,
) -> Response {
    let enc = match enc {
        Ok(enc) => enc,
        Err(content_type) => {
            return failure(
                Encoding::Json,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "unsupported content type {content_type:?}: send application/x-protobuf or application/json"
                ),
                None,
            );
        }
    };
    let result = async {
        let req = req?;
        let export = match decode(&req.body, enc) {
            Ok(r) => r,
            Err(e) => {
                super::count_undecodable(&st.metrics);
                return Err(IngestError::BadBody(e));
            }
        };
        let (events, rejects) = normalize_request(export, &req.options);
        publish_events(&st, events, &rejects, &req.headers, req.received_at).await?;
        Ok(rejects)
    }
    .await;
    match result {
        Ok(rejects) => {
            let message = if rejects.is_empty() {
                String::new()
            } else {
                format!(
                    "{} log records refused, the others were accepted: {}",
                    rejects.len(),
                    summarize(&rejects, "log record")
                )
            };
            success(enc, rejects.len(), message)
        }
        Err(e) => ingest_failure(enc, e),
    }
}

#[cfg(test)]
mod tests {
    use super::json::severity_name;
    use super::*;
    use chrono::{TimeZone, Utc};
    use std::time::Duration;

    fn opts() -> ParseOptions {
        ParseOptions::new(Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap())
            .with_max_age(Some(Duration::from_secs(24 * 3600)))
    }

    fn now_ns(secs_ago: u64) -> u64 {
        (opts().received_at.timestamp() as u64 - secs_ago) * 1_000_000_000 + 7
    }

    fn kv(key: &str, v: common::any_value::Value) -> common::KeyValue {
        common::KeyValue {
            key: key.into(),
            value: Some(common::AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn s(v: &str) -> common::any_value::Value {
        common::any_value::Value::StringValue(v.into())
    }

    fn request() -> col::ExportLogsServiceRequest {
        col::ExportLogsServiceRequest {
            resource_logs: vec![logs::ResourceLogs {
                resource: Some(crate::protocols::proto::otlp_resource::Resource {
                    attributes: vec![
                        kv("service.name", s("Checkout")),
                        kv("host.name", s("node-1")),
                        kv("deployment.environment", s("prod")),
                    ],
                    ..Default::default()
                }),
                scope_logs: vec![logs::ScopeLogs {
                    scope: Some(common::InstrumentationScope {
                        name: "payments".into(),
                        ..Default::default()
                    }),
                    log_records: vec![
                        logs::LogRecord {
                            time_unix_nano: now_ns(3),
                            severity_number: 5, // DEBUG: not syslog's 5
                            severity_text: "DEBUG".into(),
                            body: Some(common::AnyValue {
                                value: Some(s("cache miss")),
                            }),
                            attributes: vec![
                                kv("order.id", s("A-17")),
                                kv("attempt", common::any_value::Value::IntValue(2)),
                            ],
                            trace_id: vec![0xab; 16],
                            span_id: vec![0xcd; 8],
                            ..Default::default()
                        },
                        logs::LogRecord {
                            observed_time_unix_nano: now_ns(2),
                            severity_text: "Warning".into(),
                            body: Some(common::AnyValue {
                                value: Some(common::any_value::Value::KvlistValue(
                                    common::KeyValueList {
                                        values: vec![
                                            kv("msg", s("slow")),
                                            kv("ms", common::any_value::Value::IntValue(900)),
                                        ],
                                    },
                                )),
                            }),
                            ..Default::default()
                        },
                        logs::LogRecord {
                            // Three days old: refused.
                            time_unix_nano: now_ns(3 * 86400),
                            severity_number: 17,
                            body: Some(common::AnyValue {
                                value: Some(s("ancient")),
                            }),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn records_map_service_level_message_fields_and_ids() {
        let (events, rejects) = normalize_request(request(), &opts());
        assert_eq!(events.len(), 2);
        let e = &events[0];
        assert_eq!(
            (e.service.as_str(), e.level.as_str(), e.message.as_str()),
            ("checkout", "debug", "cache miss")
        );
        assert_eq!(e.ts_nanos(), now_ns(3) as i64);
        assert_eq!(e.host.as_deref(), Some("node-1"));
        assert_eq!(
            e.trace_id.as_deref(),
            Some("abababababababababababababababab")
        );
        assert_eq!(e.fields["span_id"].to_text(), "cdcdcdcdcdcdcdcd");
        assert_eq!(e.fields["order.id"].to_text(), "A-17");
        assert_eq!(e.fields["attempt"].to_text(), "2");
        assert_eq!(e.fields["deployment.environment"].to_text(), "prod");
        assert_eq!(e.fields["scope.name"].to_text(), "payments");
        assert!(!e.fields.contains_key("service.name"));
        let e = &events[1];
        assert_eq!((e.level.as_str(), e.message.as_str()), ("warn", "slow"));
        assert_eq!(e.fields["ms"].to_text(), "900");
        assert_eq!(e.ts_nanos(), now_ns(2) as i64);
        assert_eq!(rejects.len(), 1);
        assert_eq!(rejects[0].line, 3);
    }

    #[test]
    fn otlp_json_decodes_to_the_same_request() {
        let json = serde_json::json!({"resourceLogs": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "Checkout"}},
            {"key": "host.name", "value": {"stringValue": "node-1"}},
            {"key": "deployment.environment", "value": {"stringValue": "prod"}}]},
        "scopeLogs": [{"scope": {"name": "payments"}, "logRecords": [
            {"timeUnixNano": now_ns(3).to_string(), "severityNumber": 5, "severityText": "DEBUG",
             "body": {"stringValue": "cache miss"},
             "attributes": [{"key": "order.id", "value": {"stringValue": "A-17"}}, {"key": "attempt", "value": {"intValue": "2"}}],
             "traceId": "ABABABABABABABABABABABABABABABAB", "spanId": "cdcdcdcdcdcdcdcd"},
            {"observed_time_unix_nano": now_ns(2), "severityText": "Warning",
             "body": {"kvlistValue": {"values": [{"key": "msg", "value": {"stringValue": "slow"}}, {"key": "ms", "value": {"intValue": 900}}]}}},
            {"timeUnixNano": now_ns(3 * 86400).to_string(), "severityNumber": "SEVERITY_NUMBER_ERROR", "body": {"stringValue": "ancient"}}
        ]}]}]});
        let req = decode(json.to_string().as_bytes(), Encoding::Json).unwrap();
        assert_eq!(req, request());
        let pb = request().encode_to_vec();
        assert_eq!(decode(&pb, Encoding::Protobuf).unwrap(), request());
    }

    #[test]
    fn bad_requests() {
        assert!(decode(b"\xff\xff\xff", Encoding::Protobuf).is_err());
        assert!(decode(b"[1]", Encoding::Json).is_err());
        assert!(decode(br#"{"resourceLogs": 5}"#, Encoding::Json).is_err());
        assert!(
            decode(
                br#"{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz"}]}]}]}"#,
                Encoding::Json
            )
            .is_err()
        );
        assert_eq!(
            decode(b"{}", Encoding::Json).unwrap(),
            col::ExportLogsServiceRequest::default()
        );
    }

    #[test]
    fn severity_names_and_numbers() {
        assert_eq!(severity_name("SEVERITY_NUMBER_WARN"), Some(13));
        assert_eq!(severity_name("SEVERITY_NUMBER_ERROR3"), Some(19));
        assert_eq!(severity_name("9"), Some(9));
        assert_eq!(severity_name("SEVERITY_NUMBER_LOUD"), None);
        assert_eq!(severity_level(5), Some(Level::Debug));
        assert_eq!(severity_level(24), Some(Level::Fatal));
        assert_eq!(severity_level(0), None);
    }

    #[test]
    fn responses_in_the_request_encoding() {
        let r = success(Encoding::Protobuf, 2, "x".into());
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/x-protobuf");
        let r = success(Encoding::Json, 0, String::new());
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let r = failure(
            Encoding::Protobuf,
            StatusCode::SERVICE_UNAVAILABLE,
            "down".into(),
            Some(2),
        );
        assert_eq!(r.status(), 503);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
    }
}
