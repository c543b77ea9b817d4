//! The query API's HTTP handlers: thin, over [`crate::search`], [`crate::stats`],
//! [`crate::patterns`] and [`crate::tail`]; the router and the OpenAPI document are in lib.rs.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use std::time::Duration;

use crate::search::{Budget, EventQuery, QueryRequest, QueryResponse};
use crate::stats::{self, Summary, SummaryParams, Timeseries};
use crate::{
    AppState, QueryError, TimeseriesParams, patterns, pipeline, plan_timeseries, retry_once,
    search, tail,
};
use logjet_core::http as lhttp;

/// Search recent events, newest first.
#[utoipa::path(
    post,
    path = "/logs/query",
    request_body = QueryRequest,
    responses(
        (status = 200, description = "A page of events", body = QueryResponse),
        (status = 400, description = "Invalid request; the error names the field", body = logjet_core::http::ErrorBody),
        (status = 413, description = "Body over `max_body_bytes`", body = logjet_core::http::ErrorBody),
        (status = 503, description = "Redis or NATS unavailable", body = logjet_core::http::ErrorBody, headers(("Retry-After" = u64)))
    )
)]
pub(crate) async fn query_logs(
    State(st): State<AppState>,
    body: Result<axum::Json<QueryRequest>, JsonRejection>,
) -> Result<axum::Json<QueryResponse>, QueryError> {
    let axum::Json(req) = body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            QueryError::TooLarge {
                limit: st.cfg.max_body_bytes,
            }
        } else {
            QueryError::BadBody(e.body_text())
        }
    })?;
    let now = Utc::now();
    let q = EventQuery::from_request(&req, now)?;
    let budget = Budget {
        max_events: st.cfg.max_scan_events as u64,
        max_time: st.cfg.query_timeout / 2,
    };
    let resp = retry_once(&st.redis, || {
        search::search_all(&st.redis.conn, &st.tiers, &q, budget, now)
    })
    .await?;
    Ok(axum::Json(resp))
}

/// Totals over the retained window (or from `from`), and the current rate.
#[utoipa::path(
    get,
    path = "/stats/summary",
    params(SummaryParams),
    responses(
        (status = 200, body = Summary),
        (status = 400, description = "Invalid parameter", body = logjet_core::http::ErrorBody),
        (status = 503, description = "Redis unavailable", body = logjet_core::http::ErrorBody, headers(("Retry-After" = u64)))
    )
)]
pub(crate) async fn summary(
    State(st): State<AppState>,
    params: Result<Query<SummaryParams>, QueryRejection>,
) -> Result<axum::Json<Summary>, QueryError> {
    let Query(p) = params.map_err(|e| QueryError::BadBody(e.body_text()))?;
    let now = Utc::now();
    let counts = StatsTiers::of(&st, None);
    let from = match &p.from {
        Some(f) => search::parse_time("from", f, now)?,
        None => now - chrono::Duration::from_std(st.cfg.retention).unwrap_or_default(),
    }
    .max(now - chrono::Duration::from_std(counts.keep).unwrap_or_default());
    let s = retry_once(&st.redis, || async {
        Ok(stats::summary(
            &st.redis.conn,
            now,
            from,
            st.cfg.retention,
            logjet_core::parse::DEFAULT_MAX_FUTURE,
            counts.catalog,
        )
        .await?)
    })
    .await?;
    Ok(axum::Json(s))
}

/// What the statistics can read: Redis's counters for `retention`, and the archive's catalog
/// (once loaded) for as long as it keeps the service's events.
pub(crate) struct StatsTiers<'a> {
    catalog: Option<&'a logjet_core::archive::Catalog>,
    /// How far back counts reach.
    keep: Duration,
}

impl<'a> StatsTiers<'a> {
    pub(crate) fn of(st: &'a AppState, service: Option<&str>) -> StatsTiers<'a> {
        let archive = st.tiers.archive.as_ref();
        let catalog = archive.and_then(|a| a.loaded_catalog());
        let keep = match (archive, catalog) {
            (Some(a), Some(_)) => a.keeps(service).max(st.cfg.retention),
            _ => st.cfg.retention,
        };
        StatsTiers { catalog, keep }
    }

    /// The archive's part of a statistic at `now`: the buckets older than Redis's retention.
    pub(crate) fn archive(
        &self,
        st: &AppState,
        now: chrono::DateTime<Utc>,
    ) -> Option<stats::ArchiveCounts<'a>> {
        self.catalog.map(|catalog| stats::ArchiveCounts {
            catalog,
            horizon: now.timestamp() - st.cfg.retention.as_secs() as i64,
        })
    }
}

/// Live tail as Server-Sent Events: `event: log` with a canonical event per message, and a final
/// `event: dropped` if the client does not keep up.
#[utoipa::path(
    get,
    path = "/logs/tail",
    params(tail::TailParams),
    responses(
        (status = 200, description = "An SSE stream of events", content_type = "text/event-stream"),
        (status = 400, description = "Invalid parameter", body = logjet_core::http::ErrorBody),
        (status = 503, description = "Too many tails, or NATS unavailable", body = logjet_core::http::ErrorBody, headers(("Retry-After" = u64)))
    )
)]
pub(crate) async fn tail_logs(
    State(st): State<AppState>,
    params: Result<Query<tail::TailParams>, QueryRejection>,
) -> Result<Response, QueryError> {
    let Query(p) = params.map_err(|e| QueryError::BadBody(e.body_text()))?;
    Ok(st.tails.open(p, Utc::now()).await?.into_response())
}

/// The API key presented as `Authorization: Bearer`: its name and scopes (never the key), so
/// the dashboard can check a key at sign-in. Answers any valid key, whatever its scopes.
#[utoipa::path(
    get,
    path = "/auth/whoami",
    responses(
        (status = 200, body = logjet_api::WhoAmI),
        (status = 401, description = "no key, or an unknown one", body = logjet_core::http::ErrorBody)
    )
)]
pub(crate) async fn whoami(State(st): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match st.guard.auth.identify(authorization) {
        Some(id) => axum::Json(logjet_api::WhoAmI {
            name: id.name,
            scopes: id.scopes.iter().map(|s| s.as_str().to_string()).collect(),
            authentication: id.authentication,
        })
        .into_response(),
        None => {
            let mut resp = lhttp::ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "missing or unknown API key: send `Authorization: Bearer <key>`",
            )
            .into_response();
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"logjet\""),
            );
            resp
        }
    }
}

/// The stream and the processors' consumer: lag (as KEDA computes it), pending, redelivered.
#[utoipa::path(
    get,
    path = "/stats/pipeline",
    responses(
        (status = 200, body = pipeline::PipelineStats),
        (status = 503, description = "NATS unavailable", body = logjet_core::http::ErrorBody, headers(("Retry-After" = u64)))
    )
)]
pub(crate) async fn pipeline_stats(
    State(st): State<AppState>,
) -> Result<axum::Json<pipeline::PipelineStats>, QueryError> {
    Ok(axum::Json(
        pipeline::pipeline(&st.tails.client, &st.cfg.stream, &st.cfg.consumer).await?,
    ))
}

/// Services seen, most recently active first, with volume, levels and error rate.
#[utoipa::path(
    get,
    path = "/services",
    responses(
        (status = 200, body = stats::ServicesResponse),
        (status = 503, description = "Redis unavailable", body = logjet_core::http::ErrorBody, headers(("Retry-After" = u64)))
    )
)]
pub(crate) async fn services(
    State(st): State<AppState>,
) -> Result<axum::Json<stats::ServicesResponse>, QueryError> {
    Ok(axum::Json(
        retry_once(&st.redis, || async {
            Ok(stats::services(
                &st.redis.conn,
                Utc::now(),
                st.cfg.retention,
                logjet_core::parse::DEFAULT_MAX_FUTURE,
            )
            .await?)
        })
        .await?,
    ))
}

/// Message patterns: templates with counts, a sample, first/last seen and a per-minute series.
#[utoipa::path(
    get,
    path = "/patterns",
    params(patterns::PatternParams),
    responses(
        (status = 200, body = patterns::PatternsResponse),
        (status = 400, description = "Invalid parameter", body = logjet_core::http::ErrorBody),
        (status = 503, description = "Redis unavailable", body = logjet_core::http::ErrorBody, headers(("Retry-After" = u64)))
    )
)]
pub(crate) async fn get_patterns(
    State(st): State<AppState>,
    params: Result<Query<patterns::PatternParams>, QueryRejection>,
) -> Result<axum::Json<patterns::PatternsResponse>, QueryError> {
    let Query(p) = params.map_err(|e| QueryError::BadBody(e.body_text()))?;
    let q = patterns::PatternQuery::from_params(&p, Utc::now())?;
    Ok(axum::Json(
        retry_once(&st.redis, || async {
            Ok(patterns::patterns(&st.redis.conn, &q).await?)
        })
        .await?,
    ))
}

/// Event counts per time bucket and level.
#[utoipa::path(
    get,
    path = "/stats/timeseries",
    params(TimeseriesParams),
    responses(
        (status = 200, body = Timeseries),
        (status = 400, description = "Invalid parameter", body = logjet_core::http::ErrorBody),
        (status = 503, description = "Redis unavailable", body = logjet_core::http::ErrorBody, headers(("Retry-After" = u64)))
    )
)]
pub(crate) async fn timeseries(
    State(st): State<AppState>,
    params: Result<Query<TimeseriesParams>, QueryRejection>,
) -> Result<axum::Json<Timeseries>, QueryError> {
    let Query(p) = params.map_err(|e| QueryError::BadBody(e.body_text()))?;
    let now = Utc::now();
    let counts = StatsTiers::of(&st, p.service.as_deref().filter(|s| !s.is_empty()));
    let plan = plan_timeseries(&p, now, counts.keep)?;
    let archive = counts.archive(&st, now);
    let ts = retry_once(&st.redis, || async {
        Ok(stats::timeseries(
            &st.redis.conn,
            plan.step,
            plan.from,
            plan.to,
            plan.service.as_ref().map(|s| s.as_str()),
            archive,
        )
        .await?)
    })
    .await?;
    Ok(axum::Json(ts))
}
