//! `POST /logs/query` and `GET /logs/tail`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::LogEvent;

/// The request body of `POST /logs/query`. Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QueryRequest {
    /// Only this service.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Only this level.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// This level and above (`warn` → warn, error, fatal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_level: Option<String>,
    /// Oldest event time: RFC 3339, epoch, or a duration ago (`15m`, `2h`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Newest event time, same forms as `since`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
    /// Case-insensitive text to find in the message or a field value. A single identifier (a
    /// digit, 4 to 128 of `[A-Za-z0-9_.:-]`, e.g. a request id or an IP) matches whole tokens and
    /// is answered from the token index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// A regular expression the message must match (linear-time engine, at most 1 KiB).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Field filters, e.g. `fields.order_id = "A-17" and http.status >= 500`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// Only events with this trace id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Shorthand for equality filters: `{"order_id": "A-17"}`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, serde_json::Value>>,
    /// Events per page, 1 to 1000 (default 100).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// The answer of `POST /logs/query`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueryResponse {
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub events: Vec<LogEvent>,
    /// Pass back as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
    /// Events decoded to answer this page.
    pub scanned: u64,
    /// True when the scan budget ran out before the page was full; continue with the cursor.
    pub truncated: bool,
    /// The tiers that answered, newest first, joined with `+`: `redis` (recent events),
    /// `stream` (older than Redis holds, not archived yet, read from JetStream), `archive`
    /// (Parquet segments in object storage); e.g. `redis+stream+archive`.
    pub source: String,
    /// What the answer may lack and why: a segment that could not be read (named, skipped),
    /// `since` reaching before retention, an archive catalog not loaded yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Milliseconds each tier read took for this page, by tier name (`redis`, `stream`,
    /// `archive`): where a slow search spends its time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tier_ms: BTreeMap<String, f64>,
}

/// The query parameters of `GET /logs/tail`, a Server-Sent Events stream whose `log` events are
/// canonical [`LogEvent`]s.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
pub struct TailParams {
    pub service: Option<String>,
    pub level: Option<String>,
    pub min_level: Option<String>,
    pub contains: Option<String>,
    pub regex: Option<String>,
    pub filter: Option<String>,
    pub trace_id: Option<String>,
    /// Start here (RFC 3339, epoch, or a duration ago) instead of now.
    pub since: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_leaves_out_what_is_unset_and_reads_back_the_same() {
        let req = QueryRequest {
            service: Some("api".into()),
            min_level: Some("warn".into()),
            limit: Some(100),
            ..QueryRequest::default()
        };
        let json = serde_json::to_string(&req).unwrap();
        assert_eq!(json, r#"{"service":"api","min_level":"warn","limit":100}"#);
        assert_eq!(serde_json::from_str::<QueryRequest>(&json).unwrap(), req);
        // The body of the design notes works as is; an unknown field is refused.
        let design: QueryRequest =
            serde_json::from_str(r#"{"service": "load-test", "limit": 10}"#).unwrap();
        assert_eq!(design.limit, Some(10));
        assert!(serde_json::from_str::<QueryRequest>(r#"{"servce": "api"}"#).is_err());
    }

    #[test]
    fn a_response_carries_canonical_events() {
        let body = r#"{"events":[{"ts":"2026-11-26T11:48:35.123456789Z","service":"api","level":"error","message":"boom","fields":{"http.status":500}}],"next_cursor":null,"scanned":3,"truncated":false,"source":"redis"}"#;
        let resp: QueryResponse = serde_json::from_str(body).unwrap();
        assert_eq!(resp.events[0].level, crate::Level::Error);
        assert_eq!(resp.events[0].ts.timestamp_subsec_nanos(), 123_456_789);
        assert_eq!(serde_json::to_string(&resp).unwrap(), body);
    }
}
