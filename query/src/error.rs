//! Query's errors and their one mapping to HTTP.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use logjet_core::http::ApiError;

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("field `{field}`: {problem}")]
    Invalid { field: String, problem: String },
    #[error("invalid request body: {0}")]
    BadBody(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    #[error("Redis is unavailable, retry later: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the query took longer than {0:?}")]
    Timeout(std::time::Duration),
    #[error("too many requests in progress, retry later")]
    Overloaded,
    #[error("too many live tails are open, retry later")]
    TooManyTails,
    #[error("unavailable, retry later: {0}")]
    Unavailable(String),
}

impl QueryError {
    pub fn invalid(field: &str, problem: impl Into<String>) -> QueryError {
        QueryError::Invalid {
            field: field.to_string(),
            problem: problem.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            QueryError::Invalid { .. } | QueryError::BadBody(_) => StatusCode::BAD_REQUEST,
            QueryError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            QueryError::Redis(_)
            | QueryError::Overloaded
            | QueryError::TooManyTails
            | QueryError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            QueryError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        }
    }
}

impl IntoResponse for QueryError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut err = ApiError::new(status, self.to_string());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            err = err.retry_after(1);
        }
        err.into_response()
    }
}
