//! `GET /stats/summary`, `GET /stats/timeseries` and `GET /services`.
//!
//! Counts by level always carry every level (zeros included), so clients need no special cases.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET /stats/summary`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Summary {
    /// Events in the retained window.
    pub total: u64,
    pub by_level: BTreeMap<String, u64>,
    pub by_service: BTreeMap<String, u64>,
    /// Per service, per level.
    pub by_service_level: BTreeMap<String, BTreeMap<String, u64>>,
    /// Events per second over the last full minute.
    pub events_per_sec: f64,
    /// Start of the window covered (RFC 3339).
    pub since: String,
    pub until: String,
}

/// The query parameters of `GET /stats/summary`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct SummaryParams {
    /// Start: RFC 3339, epoch, or a duration ago (`7d`). Default: the query's `retention` (the
    /// stream's max age) ago. Older than that, the archive's per-minute counts answer, as far
    /// back as its retention.
    pub from: Option<String>,
}

/// The query parameters of `GET /stats/timeseries`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct TimeseriesParams {
    /// Only this service.
    pub service: Option<String>,
    /// Bucket width: `1s`, `10s`, `1m` or `1h` (default: chosen from the range).
    pub step: Option<String>,
    /// Start: RFC 3339, epoch, or a duration ago (`1h`). Default: one hour before `to`.
    pub from: Option<String>,
    /// End, same forms. Default: now.
    pub to: Option<String>,
}

/// One point of a time series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Point {
    /// Bucket start, RFC 3339.
    pub ts: String,
    pub total: u64,
    pub by_level: BTreeMap<String, u64>,
}

/// `GET /stats/timeseries`
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Timeseries {
    pub step_secs: i64,
    pub from: String,
    pub to: String,
    pub service: Option<String>,
    pub points: Vec<Point>,
}

/// One service as `GET /services` lists it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServiceInfo {
    pub name: String,
    /// Newest event time seen (RFC 3339).
    pub last_seen: String,
    /// Events in the retained window.
    pub total: u64,
    pub by_level: BTreeMap<String, u64>,
    /// Share of error and fatal events in the window, 0 to 1.
    pub error_rate: f64,
}

impl ServiceInfo {
    /// Error and fatal events in the window.
    pub fn errors(&self) -> u64 {
        self.by_level.get("error").copied().unwrap_or(0)
            + self.by_level.get("fatal").copied().unwrap_or(0)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServicesResponse {
    pub services: Vec<ServiceInfo>,
}
