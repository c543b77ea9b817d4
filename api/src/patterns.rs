//! `GET /patterns`.

use serde::{Deserialize, Serialize};

/// The query parameters of `GET /patterns`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct PatternParams {
    /// Only this service.
    pub service: Option<String>,
    /// Start: RFC 3339, epoch, or a duration ago (`1h`). Default: one hour ago.
    pub since: Option<String>,
    /// End. Default: now.
    pub until: Option<String>,
    /// Only this level.
    pub level: Option<String>,
    /// Most patterns returned (default 50, at most 1000).
    pub limit: Option<usize>,
}

/// One pattern.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pattern {
    /// Tokens with variable parts masked (`<num>`, `<ip>`, …) and `<*>` where lines differ.
    pub template: String,
    pub count: u64,
    /// One real line of this pattern.
    pub sample: String,
    pub first_seen: String,
    pub last_seen: String,
    /// Count per minute from the response's `since`, one entry per minute.
    pub series: Vec<u64>,
    /// Masked templates merged into this pattern.
    pub templates: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PatternsResponse {
    pub since: String,
    pub until: String,
    pub step_secs: i64,
    /// Events in the window matching the service/level filters.
    pub total: u64,
    pub patterns: Vec<Pattern>,
}
