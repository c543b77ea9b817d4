//! The prologue every ingest route shares, as one extractor: [`IngestRequest`] reads `?service=`,
//! the body (within the limit and the memory budget, decompressed as it streams in) and the
//! headers, and builds the parse options. Its rejection is a protocol-neutral [`IngestError`];
//! each protocol's handler takes `Result<IngestRequest, IngestError>` and answers it in its own
//! error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, Query, Request};
use axum::http::HeaderMap;
use axum::http::header;
use chrono::{DateTime, Utc};
use logjet_core::ServiceName;
use logjet_core::config::IngestConfig;
use logjet_core::parse::ParseOptions;
use serde::Deserialize;

use crate::body::{self, BodyError, Encoding};
use crate::budget::{self, OverBudget, Reservation};
use crate::{AppState, IngestError};

/// Query parameters of every ingest route.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsParams {
    /// Service for events that do not name one.
    pub service: Option<String>,
}

/// A request to an ingest route, read and checked up to the protocol's own decoding.
#[derive(Debug)]
pub struct IngestRequest {
    /// When the body had arrived: the timestamp of events without one, and the publish context.
    pub received_at: DateTime<Utc>,
    /// `?service=`, sanitised: the service of events that name none.
    pub service: Option<ServiceName>,
    /// Parse options: `received_at`, `service` as the default, the configured limits.
    pub options: ParseOptions,
    pub headers: HeaderMap,
    /// The whole body, decompressed, at most `max_body_bytes`.
    pub body: Bytes,
    /// The body's share of the memory budget, held until the request is answered; a handler
    /// that decompresses further (Loki's snappy) grows it first.
    pub reservation: Reservation,
}

impl IngestRequest {
    /// `Content-Type`, when it is text.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
    }
}

/// The 503 of a full memory budget.
pub fn over_budget(e: OverBudget, cfg: &IngestConfig) -> IngestError {
    IngestError::OverBudget {
        reason: e.to_string(),
        retry_after: cfg.retry_after_secs,
    }
}

impl FromRequest<AppState> for IngestRequest {
    type Rejection = IngestError;

    /// The budget is asked before any of the body is read: `Content-Length` bytes (capped at
    /// the body limit) and the payload to be encoded from them, or a first step when the length
    /// is unknown; a full budget is a 503 at once (the body is then read only to be dropped,
    /// frame by frame, unless the client sent `Expect: 100-continue`). Otherwise the body is
    /// read even when a parameter is bad (the parameter's error is the answer), so the
    /// connection stays usable.
    async fn from_request(req: Request, st: &AppState) -> Result<Self, IngestError> {
        let cfg = &st.cfg;
        let params = Query::<LogsParams>::try_from_uri(req.uri());
        let (parts, body) = req.into_parts();
        let headers = parts.headers;
        let encoding = Encoding::from_headers(&headers).map_err(body_error(cfg))?;
        let length = body::content_length(&headers);
        let limit = cfg.max_body_bytes;
        let discard_rest = body::should_discard(&headers);
        if encoding == Encoding::Identity && length.is_some_and(|n| n > limit as u64) {
            // Refused before reading; read and dropped (see `discard`) so the client gets the 413:
            // all of the declared length when it is at most a few times the limit.
            if discard_rest {
                let declared = length.unwrap_or(0).min(4 * limit as u64);
                body::discard(&mut body.into_data_stream(), declared).await;
            }
            return Err(IngestError::TooLarge { limit });
        }
        let stated = length.unwrap_or(0).min(limit as u64);
        let mut reservation = match st.budget.reserve(budget::with_payload(stated)) {
            Ok(r) => r,
            Err(e) => {
                // Decided before reading: the body is only read to be dropped (see `discard`).
                if discard_rest {
                    body::discard(&mut body.into_data_stream(), limit as u64).await;
                }
                return Err(over_budget(e, cfg));
            }
        };
        let body = body::read(
            body,
            encoding,
            limit,
            st.buffers.take(body::capacity(encoding, length, limit)),
            &mut reservation,
            discard_rest,
        )
        .await
        .map_err(body_error(cfg))?;
        let received_at = Utc::now();
        let Query(params) = params.map_err(|e| IngestError::BadService(e.body_text()))?;
        let service = sanitize_service(params.service.as_deref())?;
        let options = request_options(service.clone(), received_at, cfg);
        Ok(IngestRequest {
            received_at,
            service,
            options,
            headers,
            body,
            reservation,
        })
    }
}

fn body_error(cfg: &IngestConfig) -> impl Fn(BodyError) -> IngestError + '_ {
    move |e| match e {
        BodyError::UnsupportedEncoding(enc) => IngestError::UnsupportedEncoding(enc),
        BodyError::TooLarge { limit } => IngestError::TooLarge { limit },
        BodyError::OverBudget(o) => over_budget(o, cfg),
        BodyError::Read(reason) => IngestError::BadBody(reason),
    }
}

/// `?service=` as a service name; a value with no usable character is an error, not ignored.
pub fn sanitize_service(raw: Option<&str>) -> Result<Option<ServiceName>, IngestError> {
    match raw {
        None => Ok(None),
        Some(raw) => ServiceName::sanitize(raw).map(Some).ok_or_else(|| {
            IngestError::BadService(format!(
                "{raw:?} has no usable characters (allowed: a-z 0-9 _ -)"
            ))
        }),
    }
}

/// Parse options of a request: its time of receipt, `?service=` as the default service, and the
/// configured limits.
pub fn request_options(
    service: Option<ServiceName>,
    received_at: DateTime<Utc>,
    cfg: &IngestConfig,
) -> ParseOptions {
    let mut opts = ParseOptions::new(received_at)
        .with_default_service(service)
        .with_max_age(Some(cfg.stream.stream_max_age));
    opts.max_line_bytes = cfg.max_line_bytes;
    opts
}

/// `Idempotency-Key`: 1 to 255 visible ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, IngestError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .map_err(|_| IngestError::BadIdempotencyKey("must be visible ASCII".into()))?
        .trim();
    if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(IngestError::BadIdempotencyKey(
            "must be 1 to 255 visible ASCII characters".into(),
        ));
    }
    Ok(Some(s.to_string()))
}

/// A W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), passed on only when well-formed.
pub fn traceparent(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("traceparent")?.to_str().ok()?.trim();
    let parts: Vec<&str> = v.split('-').collect();
    let well_formed = parts.len() == 4
        && [2usize, 32, 16, 2]
            .iter()
            .zip(&parts)
            .all(|(n, p)| p.len() == *n && p.bytes().all(|b| b.is_ascii_hexdigit()));
    well_formed.then(|| v.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_sanitised_and_unusable_ones_refused() {
        assert_eq!(sanitize_service(None).unwrap(), None);
        assert_eq!(
            sanitize_service(Some("Web API")).unwrap().unwrap().as_str(),
            "web-api"
        );
        assert!(matches!(
            sanitize_service(Some("***")),
            Err(IngestError::BadService(m)) if m.contains("no usable characters")
        ));
    }

    #[test]
    fn idempotency_keys_and_traceparents_are_validated() {
        let mut h = HeaderMap::new();
        assert_eq!(idempotency_key(&h).unwrap(), None);
        h.insert("idempotency-key", "abc-123".parse().unwrap());
        assert_eq!(idempotency_key(&h).unwrap().as_deref(), Some("abc-123"));
        h.insert("idempotency-key", "has space".parse().unwrap());
        assert!(idempotency_key(&h).is_err());
        h.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        assert!(traceparent(&h).is_some());
        h.insert("traceparent", "garbage".parse().unwrap());
        assert!(traceparent(&h).is_none());
    }
}
