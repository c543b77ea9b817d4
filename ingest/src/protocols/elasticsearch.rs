//! Elasticsearch's bulk API, as Filebeat, Fluent Bit's `es` output, Vector's `elasticsearch`
//! sink, Logstash and the Elasticsearch clients send it: `POST|PUT /_bulk`, `POST|PUT /{index}/_bulk`,
//! plus `GET /` (the version document clients read first) and `GET /_license` (Beats check it).
//!
//! The body is NDJSON: an action line (`{"index": {"_index": "…", "_id": "…"}}` or `{"create":
//! {…}}`), then the document. Each document goes through the normaliser as a line of
//! `POST /logs` would (ECS names such as `@timestamp`, `log.level`, `service.name`, `host.name`
//! are among its aliases). Its index becomes the field `_index` and, when the document names no
//! service and there is no `?service=`, the service: the dataset of a data stream
//! (`logs-nginx.access-default` → `nginx-access`), else the index without trailing date or
//! version parts (`filebeat-8.17.0-2026.11.26` → `filebeat`, `logstash-2026.11.26` → `logstash`).
//!
//! logjet is append-only: `delete` and `update` actions get a per-item 400.
//!
//! Results are Elasticsearch's: 200 with `{"took", "errors", "items": [{"index"|"create": {"_index",
//! "_id", "status": 201 | 400, "error": {"type", "reason"}}}]}` once the accepted documents are in
//! JetStream, so a shipper retries only the failed items (and 4xx items are not worth retrying);
//! a malformed action line fails the whole request with 400 (as in Elasticsearch, the pairing of
//! the lines after it is unknown); 503 with `Retry-After` when JetStream cannot take the documents
//! (nothing was accepted: retry everything). Every response carries `X-Elastic-Product:
//! Elasticsearch`, which the official clients require.

use std::time::Instant;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::UNSUPPORTED_ACTION;
use crate::{AppState, IngestError, IngestRequest, LogsParams, publish_events};

mod bulk;

/// The version logjet presents itself as.
pub const VERSION: &str = "8.19.0";

pub use bulk::{Bulk, Item, Malformed, parse, service_from_index};

// ---------------------------------------------------------------------------------------------
// Responses.

/// The bulk response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkResponse {
    /// Milliseconds spent on the request.
    pub took: u64,
    /// True when any item failed.
    pub errors: bool,
    /// One object per action, keyed by the action (`index` or `create`, …), in request order.
    #[schema(value_type = Vec<HashMap<String, BulkItem>>)]
    pub items: Vec<BulkEntry>,
}

/// `{"<action>": item}`.
#[derive(Debug)]
pub struct BulkEntry {
    pub action: String,
    pub item: BulkItem,
}

impl Serialize for BulkEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(1))?;
        m.serialize_entry(&self.action, &self.item)?;
        m.end()
    }
}

/// The result of one action: what shippers read (`status`, and `error` when it failed). The
/// `_version`, `_seq_no`, `_primary_term` and `_shards` of Elasticsearch's answer mean nothing
/// here and are left out (they would double the size of a bulk response).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BulkItem {
    #[serde(rename = "_index")]
    pub index: String,
    #[serde(rename = "_id")]
    pub id: String,
    /// 201 when accepted, 400 when refused.
    pub status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<EsCause>,
}

/// An Elasticsearch error cause.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EsCause {
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
}

/// An Elasticsearch error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EsErrorResponse {
    pub error: EsError,
    pub status: u16,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EsError {
    pub root_cause: Vec<EsCause>,
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
}

/// The items of a processed bulk request.
pub fn bulk_response(bulk: &Bulk, took: u64) -> BulkResponse {
    let items = bulk
        .items
        .iter()
        .map(|item| {
            let result = match &item.outcome {
                Ok(_) => BulkItem {
                    index: item.index.clone(),
                    id: item.id.clone(),
                    status: 201,
                    result: Some("created".into()),
                    error: None,
                },
                Err(r) => BulkItem {
                    index: item.index.clone(),
                    id: item.id.clone(),
                    status: 400,
                    result: None,
                    error: Some(EsCause {
                        kind: if r.reason == UNSUPPORTED_ACTION {
                            "illegal_argument_exception"
                        } else {
                            "document_parsing_exception"
                        }
                        .into(),
                        reason: r.error.clone(),
                    }),
                },
            };
            BulkEntry {
                action: item.action.clone(),
                item: result,
            }
        })
        .collect();
    BulkResponse {
        took,
        errors: bulk.items.iter().any(|i| i.outcome.is_err()),
        items,
    }
}

fn product_header(mut resp: Response) -> Response {
    resp.headers_mut().insert(
        "x-elastic-product",
        HeaderValue::from_static("Elasticsearch"),
    );
    resp
}

/// An Elasticsearch-shaped error.
pub fn es_error(
    status: StatusCode,
    kind: &str,
    reason: String,
    retry_after: Option<u64>,
) -> Response {
    let cause = EsCause {
        kind: kind.into(),
        reason: reason.clone(),
    };
    let body = EsErrorResponse {
        error: EsError {
            root_cause: vec![cause],
            kind: kind.into(),
            reason,
        },
        status: status.as_u16(),
    };
    let mut resp = (status, axum::Json(body)).into_response();
    if let Some(secs) = retry_after {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    product_header(resp)
}

fn ingest_error(e: IngestError) -> Response {
    let kind = match &e {
        IngestError::Unavailable { .. } => "unavailable_shards_exception",
        IngestError::OverBudget { .. } => "es_rejected_execution_exception",
        IngestError::TooLarge { .. } => "content_too_long_exception",
        _ => "illegal_argument_exception",
    };
    es_error(e.status(), kind, e.to_string(), e.retry_after())
}

/// Index documents in bulk (Filebeat, Fluent Bit `es`, Vector `elasticsearch`, Logstash, clients).
#[utoipa::path(
    method(post, put),
    path = "/_bulk",
    tag = "shippers",
    params(
        LogsParams,
        ("Idempotency-Key" = Option<String>, Header, description = "A retried request with the same key is counted once (within 2 minutes)."),
    ),
    request_body(
        description = "NDJSON: an action line (`{\"index\": {\"_index\": \"…\"}}` or `{\"create\": {…}}`), then the document.",
        content((String = "application/x-ndjson"), (String = "application/json"))
    ),
    responses(
        (status = 200, description = "Processed: the accepted documents are in JetStream; `items` has each action's status (201, or 400 with `error`)", body = BulkResponse,
            headers(("X-Elastic-Product" = String, description = "Always `Elasticsearch`"))),
        (status = 400, description = "Malformed action line, empty body, or a bad parameter or header", body = EsErrorResponse),
        (status = 413, description = "Body over the limit (after decompression)", body = EsErrorResponse),
        (status = 415, description = "Unsupported content encoding"),
        (status = 503, description = "JetStream unavailable, nothing accepted; retry after the given seconds", body = EsErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds to wait")))
    )
)]
pub async fn bulk(State(st): State<AppState>, req: Result<IngestRequest, IngestError>) -> Response {
    bulk_into(st, None, req).await
}

/// Index documents in bulk into `{index}` (the index of actions that name none).
#[utoipa::path(
    method(post, put),
    path = "/{index}/_bulk",
    tag = "shippers",
    params(
        ("index" = String, Path, description = "Index of the actions that name none"),
        LogsParams,
        ("Idempotency-Key" = Option<String>, Header, description = "A retried request with the same key is counted once (within 2 minutes)."),
    ),
    request_body(
        description = "NDJSON: an action line, then the document.",
        content((String = "application/x-ndjson"), (String = "application/json"))
    ),
    responses(
        (status = 200, description = "Processed; `items` has each action's status", body = BulkResponse,
            headers(("X-Elastic-Product" = String, description = "Always `Elasticsearch`"))),
        (status = 400, description = "Malformed action line, empty body, or a bad parameter or header", body = EsErrorResponse),
        (status = 413, description = "Body over the limit (after decompression)", body = EsErrorResponse),
        (status = 415, description = "Unsupported content encoding"),
        (status = 503, description = "JetStream unavailable, nothing accepted; retry after the given seconds", body = EsErrorResponse,
            headers(("Retry-After" = u64, description = "Seconds to wait")))
    )
)]
pub async fn bulk_index(
    State(st): State<AppState>,
    Path(index): Path<String>,
    req: Result<IngestRequest, IngestError>,
) -> Response {
    bulk_into(st, Some(index), req).await
}

async fn bulk_into(
    st: AppState,
    index: Option<String>,
    req: Result<IngestRequest, IngestError>,
) -> Response {
    let start = Instant::now();
    let result = async {
        let req = req?;
        if req.body.trim_ascii().is_empty() {
            return Ok(Err(es_error(
                StatusCode::BAD_REQUEST,
                "action_request_validation_exception",
                "Validation Failed: 1: no requests added;".into(),
                None,
            )));
        }
        let explicit_service = req.service.is_some();
        let mut bulk = match parse(&req.body, index.as_deref(), explicit_service, &req.options) {
            Ok(b) => b,
            Err(Malformed(reason)) => {
                super::count_undecodable(&st.metrics);
                return Ok(Err(es_error(
                    StatusCode::BAD_REQUEST,
                    "illegal_argument_exception",
                    reason,
                    None,
                )));
            }
        };
        let events = std::mem::take(&mut bulk.events);
        publish_events(&st, events, &bulk.rejects(), &req.headers, req.received_at).await?;
        Ok(Ok(bulk))
    }
    .await;
    match result {
        Ok(Ok(bulk)) => {
            let took = start.elapsed().as_millis() as u64;
            product_header((StatusCode::OK, axum::Json(bulk_response(&bulk, took))).into_response())
        }
        Ok(Err(resp)) => resp,
        Err(e) => ingest_error(e),
    }
}

/// The version document (`GET /`).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EsInfo {
    pub name: String,
    pub cluster_name: String,
    pub cluster_uuid: String,
    pub version: EsVersion,
    pub tagline: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EsVersion {
    pub number: String,
    pub build_flavor: String,
    pub build_type: String,
    pub build_hash: String,
    pub build_date: String,
    pub build_snapshot: bool,
    pub lucene_version: String,
    pub minimum_wire_compatibility_version: String,
    pub minimum_index_compatibility_version: String,
}

/// Elasticsearch's version document, so shippers and clients that read it first accept logjet.
#[utoipa::path(
    get,
    path = "/",
    tag = "shippers",
    responses(
        (status = 200, description = "An Elasticsearch 8 version document", body = EsInfo,
            headers(("X-Elastic-Product" = String, description = "Always `Elasticsearch`")))
    )
)]
pub async fn info() -> Response {
    let body = EsInfo {
        name: "logjet".into(),
        cluster_name: "logjet".into(),
        cluster_uuid: "bG9namV0LWluZ2VzdA".into(),
        version: EsVersion {
            number: VERSION.into(),
            build_flavor: "default".into(),
            build_type: "docker".into(),
            build_hash: "logjet".into(),
            build_date: "2026-01-01T00:00:00.000Z".into(),
            build_snapshot: false,
            lucene_version: "9.12.0".into(),
            minimum_wire_compatibility_version: "7.17.0".into(),
            minimum_index_compatibility_version: "7.0.0".into(),
        },
        tagline: "You Know, for Search".into(),
    };
    product_header((StatusCode::OK, axum::Json(body)).into_response())
}

/// `GET /_license`'s body.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EsLicenseResponse {
    pub license: EsLicense,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct EsLicense {
    pub status: String,
    pub uid: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub issue_date: String,
    pub issue_date_in_millis: i64,
    pub max_nodes: u32,
    pub issued_to: String,
    pub issuer: String,
    pub start_date_in_millis: i64,
}

/// An active basic license, which Beats check before sending.
#[utoipa::path(
    get,
    path = "/_license",
    tag = "shippers",
    responses(
        (status = 200, description = "An active basic license", body = EsLicenseResponse,
            headers(("X-Elastic-Product" = String, description = "Always `Elasticsearch`")))
    )
)]
pub async fn license() -> Response {
    let body = EsLicenseResponse {
        license: EsLicense {
            status: "active".into(),
            uid: "logjet".into(),
            kind: "basic".into(),
            issue_date: "2026-01-01T00:00:00.000Z".into(),
            issue_date_in_millis: 1_767_225_600_000,
            max_nodes: 1000,
            issued_to: "logjet".into(),
            issuer: "logjet".into(),
            start_date_in_millis: -1,
        },
    };
    product_header((StatusCode::OK, axum::Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use logjet_core::ServiceName;
    use logjet_core::parse::ParseOptions;
    use std::time::Duration;

    fn opts() -> ParseOptions {
        ParseOptions::new(Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap())
            .with_max_age(Some(Duration::from_secs(24 * 3600)))
    }

    #[test]
    fn bulk_items_map_to_events_and_per_item_errors() {
        let body = concat!(
            "{\"index\":{\"_index\":\"filebeat-8.17.0-2026.11.26\",\"_id\":\"a1\"}}\n",
            "{\"@timestamp\":\"2026-11-26T11:59:00Z\",\"message\":\"GET /\",\"log\":{\"level\":\"warn\"},\"host\":{\"name\":\"n1\"}}\n",
            "{\"create\":{\"_index\":\"logs-nginx.access-default\"}}\n",
            "{\"message\":\"ERROR upstream\",\"service\":{\"name\":\"Edge\"}}\n",
            "{\"index\":{}}\n",
            "{\"message\":\"bad\",\"level\":\"banana\"}\n",
            "{\"delete\":{\"_index\":\"x\",\"_id\":\"1\"}}\n",
            "{\"update\":{\"_index\":\"x\",\"_id\":\"1\"}}\n",
            "{\"doc\":{\"a\":1}}\n",
            "{\"index\":{}}\n",
            "not json\n",
        );
        let b = parse(body.as_bytes(), Some("myapp-2026.11.26"), false, &opts()).unwrap();
        assert_eq!(b.items.len(), 6);
        assert_eq!(b.events.len(), 2);
        let e = &b.events[0];
        assert_eq!(
            (e.service.as_str(), e.level.as_str(), e.message.as_str()),
            ("filebeat", "warn", "GET /")
        );
        assert_eq!(e.host.as_deref(), Some("n1"));
        assert_eq!(e.fields["_index"].to_text(), "filebeat-8.17.0-2026.11.26");
        assert_eq!(
            (b.events[1].service.as_str(), b.events[1].level.as_str()),
            ("edge", "error")
        );
        assert_eq!(b.items[0].id, "a1");
        assert_eq!(b.items[1].id.len(), 20);
        assert_ne!(b.items[1].id, b.items[2].id);
        assert_eq!(b.items[2].index, "myapp-2026.11.26");
        let r = bulk_response(&b, 3);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["errors"], true);
        assert_eq!(v["items"][0]["index"]["status"], 201);
        assert_eq!(v["items"][1]["create"]["status"], 201);
        assert_eq!(v["items"][2]["index"]["status"], 400);
        assert_eq!(
            v["items"][2]["index"]["error"]["type"],
            "document_parsing_exception"
        );
        assert!(
            v["items"][2]["index"]["error"]["reason"]
                .as_str()
                .unwrap()
                .contains("level")
        );
        assert_eq!(
            v["items"][3]["delete"]["error"]["type"],
            "illegal_argument_exception"
        );
        assert_eq!(v["items"][4]["update"]["status"], 400);
        assert_eq!(v["items"][5]["index"]["status"], 400);
        assert_eq!(
            b.rejects().iter().map(|r| r.line).collect::<Vec<_>>(),
            vec![3, 4, 5, 6]
        );
    }

    #[test]
    fn repeated_action_lines_are_read_once_but_each_item_is_its_own() {
        let body = "{\"create\":{\"_index\":\"logs-web-default\"}}\n{\"message\":\"a\"}\n"
            .repeat(3)
            + "{\"create\":{\"_index\":\"logs-web-default\",\"_id\":\"x\"}}\n{\"message\":\"b\"}\n"
            + "{\"create\":{\"_index\":\"logs-web-default\"}}\n{\"message\":\"c\"}\n";
        let b = parse(body.as_bytes(), None, false, &opts()).unwrap();
        let ids: std::collections::HashSet<&str> = b.items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids.len(), 5);
        assert_eq!(b.items[3].id, "x");
        assert!(
            b.items
                .iter()
                .all(|i| i.index == "logs-web-default" && i.action == "create")
        );
        assert!(b.events.iter().all(|e| e.service == "web"));
    }

    #[test]
    fn explicit_service_wins_over_the_index() {
        let body = b"{\"index\":{\"_index\":\"filebeat-8.17.0\"}}\n{\"message\":\"x\"}\n";
        let o = opts().with_default_service(ServiceName::sanitize("web"));
        let b = parse(body, None, true, &o).unwrap();
        assert_eq!(b.events[0].service, "web");
    }

    #[test]
    fn malformed_requests_fail_whole() {
        assert!(parse(b"{bad\n{}\n", None, false, &opts()).is_err());
        assert!(parse(b"{\"index\":{}}\n", None, false, &opts()).is_err());
        assert!(parse(b"{\"explode\":{}}\n{}\n", None, false, &opts()).is_err());
        assert!(parse(b"{\"index\":{},\"create\":{}}\n{}\n", None, false, &opts()).is_err());
    }

    #[test]
    fn services_from_index_names() {
        let s = |i: &str| service_from_index(i).map(|s| s.to_string());
        assert_eq!(
            s("logs-nginx.access-default").as_deref(),
            Some("nginx-access")
        );
        assert_eq!(s("filebeat-8.17.0-2026.11.26").as_deref(), Some("filebeat"));
        assert_eq!(s("logstash-2026.11.26").as_deref(), Some("logstash"));
        assert_eq!(s("fluent-bit").as_deref(), Some("fluent-bit"));
        assert_eq!(
            s(".ds-logs-app-default").as_deref(),
            Some("ds-logs-app-default")
        );
        assert_eq!(s("2026.11.26"), None);
    }
}
