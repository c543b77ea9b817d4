//! Every way a request can fail, and the one place that turns them into HTTP responses.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use logjet_core::http::ApiError;
use logjet_core::parse::{Reject, UnsupportedContentType};

#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    UnsupportedContentType(#[from] UnsupportedContentType),
    #[error("request body is empty: send at least one log line")]
    EmptyBody,
    #[error("request body is larger than the limit of {limit} bytes (after decompression)")]
    TooLarge { limit: usize },
    #[error("could not read the request body: {0}")]
    BadBody(String),
    #[error("query parameter `service`: {0}")]
    BadService(String),
    #[error("header `Idempotency-Key`: {0}")]
    BadIdempotencyKey(String),
    #[error("no valid events in the request ({} rejected)", .0.len())]
    NothingValid(Vec<Reject>),
    #[error("JetStream is unavailable, retry later: {reason}")]
    Unavailable { reason: String, retry_after: u64 },
    #[error("unsupported Content-Encoding {0:?}: send gzip or no encoding")]
    UnsupportedEncoding(String),
    #[error("{reason}, retry later")]
    OverBudget { reason: String, retry_after: u64 },
}

impl IngestError {
    pub fn status(&self) -> StatusCode {
        match self {
            IngestError::UnsupportedContentType(_) | IngestError::UnsupportedEncoding(_) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            IngestError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::Unavailable { .. } | IngestError::OverBudget { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            IngestError::EmptyBody
            | IngestError::BadBody(_)
            | IngestError::BadService(_)
            | IngestError::BadIdempotencyKey(_)
            | IngestError::NothingValid(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// Seconds a client should wait before retrying (`Retry-After`), for the 503s.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            IngestError::Unavailable { retry_after, .. }
            | IngestError::OverBudget { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let mut err = ApiError::new(self.status(), self.to_string());
        if let IngestError::NothingValid(rejects) = &self {
            err = err.with_details(rejects);
        }
        if let Some(secs) = self.retry_after() {
            err = err.retry_after(secs);
        }
        err.into_response()
    }
}
