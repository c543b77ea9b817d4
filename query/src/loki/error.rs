//! The Loki API's errors, in Loki's shape: `{"code": 400, "status": "error", "message": "…"}`
//! (Grafana's Loki data source shows `message`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::logql::ParseError;
use super::pipeline::CompileError;
use crate::error::QueryError;

#[derive(Debug, thiserror::Error)]
pub enum LokiError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error("{0}")]
    Bad(String),
    #[error(transparent)]
    Query(#[from] QueryError),
}

impl LokiError {
    pub fn bad(msg: impl Into<String>) -> LokiError {
        LokiError::Bad(msg.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            LokiError::Query(q) => q.status(),
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

impl IntoResponse for LokiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = serde_json::json!({
            "code": status.as_u16(),
            "status": "error",
            "message": self.to_string(),
        });
        let mut resp = (status, axum::Json(body)).into_response();
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        resp
    }
}
