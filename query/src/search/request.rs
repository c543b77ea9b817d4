//! The request body of `POST /logs/query`, validated into an [`EventQuery`].

use chrono::{DateTime, Utc};
use logjet_api::QueryRequest;
use logjet_core::parse::parse_timestamp_str;
use logjet_core::tokens;
use logjet_core::{Level, ServiceName};
use regex::{Regex, RegexBuilder};

use super::Cursor;
use super::matcher::TextMatcher;
use crate::error::QueryError;
use crate::filter::{self, Clause, Filter, Literal, Op, Target};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 1000;

/// A validated query.
#[derive(Debug, Clone)]
pub struct EventQuery {
    pub service: Option<ServiceName>,
    pub level: Option<Level>,
    pub min_level: Option<Level>,
    pub since_nanos: Option<i64>,
    pub until_nanos: Option<i64>,
    pub contains: Option<TextMatcher>,
    pub regex: Option<Regex>,
    pub filter: Option<Filter>,
    pub trace_id: Option<String>,
    pub limit: usize,
    pub cursor: Option<Cursor>,
    /// Lower-cased identifiers every matching event contains: chunks whose Bloom filter lacks
    /// one are skipped unread.
    pub index_tokens: Vec<String>,
}

/// Longest accepted regular expression.
pub const MAX_REGEX_BYTES: usize = 1024;

fn build_regex(pattern: &str) -> Result<Regex, QueryError> {
    if pattern.len() > MAX_REGEX_BYTES {
        return Err(QueryError::invalid(
            "regex",
            format!("longer than {MAX_REGEX_BYTES} bytes"),
        ));
    }
    RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .dfa_size_limit(2 << 20)
        .nest_limit(64)
        .build()
        .map_err(|e| QueryError::invalid("regex", e.to_string().replace('\n', " ")))
}

/// `{"order_id": "A-17", "status": 500}` → the filter `order_id = "A-17" and status = 500`.
fn fields_filter(
    fields: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<Vec<Clause>, QueryError> {
    fields
        .iter()
        .map(|(k, v)| {
            let value = match v {
                serde_json::Value::String(s) => Literal::Str(s.clone()),
                serde_json::Value::Number(n) => {
                    Literal::Num(n.as_f64().unwrap_or(f64::NAN), n.to_string())
                }
                serde_json::Value::Bool(b) => Literal::Str(b.to_string()),
                _ => {
                    return Err(QueryError::invalid(
                        &format!("fields.{k}"),
                        "must be a string, number or boolean",
                    ));
                }
            };
            Ok(Clause {
                target: Target::Field(k.strip_prefix("fields.").unwrap_or(k).to_string()),
                op: Op::Eq,
                value,
            })
        })
        .collect()
}

/// A point in time as users write it: RFC 3339, epoch, or a duration ago (`15m`).
pub fn parse_time(field: &str, raw: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, QueryError> {
    let raw = raw.trim();
    if let Ok(d) = humantime_parse(raw) {
        return Ok(now - d);
    }
    parse_timestamp_str(raw).map_err(|e| QueryError::invalid(field, e))
}

fn humantime_parse(s: &str) -> Result<chrono::Duration, ()> {
    if s.is_empty() || !s.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        return Err(());
    }
    // Bare numbers are epochs, not durations.
    if s.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(());
    }
    let d = humantime::parse_duration(s).map_err(|_| ())?;
    chrono::Duration::from_std(d).map_err(|_| ())
}

impl EventQuery {
    pub fn from_request(req: &QueryRequest, now: DateTime<Utc>) -> Result<EventQuery, QueryError> {
        let service = match req
            .service
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(s) => Some(ServiceName::sanitize(s).ok_or_else(|| {
                QueryError::invalid("service", format!("{s:?} is not a service name"))
            })?),
        };
        let level = parse_level("level", req.level.as_deref())?;
        let min_level = parse_level("min_level", req.min_level.as_deref())?;
        let since = req
            .since
            .as_deref()
            .map(|s| parse_time("since", s, now))
            .transpose()?;
        let until = req
            .until
            .as_deref()
            .map(|s| parse_time("until", s, now))
            .transpose()?;
        if let (Some(s), Some(u)) = (since, until)
            && s > u
        {
            return Err(QueryError::invalid("since", "is after `until`"));
        }
        let limit = req.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(QueryError::invalid(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        let contains = match req.contains.as_deref() {
            None | Some("") => None,
            Some(s) if s.len() > 1024 => {
                return Err(QueryError::invalid("contains", "longer than 1024 bytes"));
            }
            Some(s) => Some(TextMatcher::new(s)),
        };
        let regex = req
            .regex
            .as_deref()
            .filter(|r| !r.is_empty())
            .map(build_regex)
            .transpose()?;
        let mut filter = match req
            .filter
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty())
        {
            None => None,
            Some(f) => {
                Some(filter::parse(f).map_err(|e| QueryError::invalid("filter", e.to_string()))?)
            }
        };
        if let Some(fields) = &req.fields {
            let clauses = fields_filter(fields)?;
            if !clauses.is_empty() {
                filter
                    .get_or_insert_with(Filter::default)
                    .clauses
                    .extend(clauses);
            }
        }
        let trace_id = req
            .trace_id
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        let mut index_tokens: Vec<String> = Vec::new();
        if let Some(t) = contains.as_ref().and_then(|c| c.index_token()) {
            index_tokens.push(t.to_string());
        }
        if let Some(f) = &filter {
            index_tokens.extend(f.index_tokens());
        }
        if let Some(t) = trace_id.as_deref().and_then(tokens::as_single_identifier) {
            index_tokens.push(t);
        }
        index_tokens.sort();
        index_tokens.dedup();
        let cursor = match req.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(Cursor::decode(c).ok_or_else(|| {
                QueryError::invalid("cursor", "not a cursor this service issued")
            })?),
        };
        Ok(EventQuery {
            service,
            level,
            min_level,
            since_nanos: since.and_then(|t| t.timestamp_nanos_opt()),
            until_nanos: until.and_then(|t| t.timestamp_nanos_opt()),
            contains,
            regex,
            filter,
            trace_id,
            limit,
            cursor,
            index_tokens,
        })
    }
}

fn parse_level(field: &str, raw: Option<&str>) -> Result<Option<Level>, QueryError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => Level::from_name(s).map(Some).ok_or_else(|| {
            QueryError::invalid(
                field,
                format!("unknown level {s:?} (trace, debug, info, warn, error, fatal)"),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::test_support::now;

    #[test]
    fn request_validation_names_the_field() {
        let bad = |req: QueryRequest| {
            EventQuery::from_request(&req, now())
                .unwrap_err()
                .to_string()
        };
        assert!(
            bad(QueryRequest {
                level: Some("loud".into()),
                ..Default::default()
            })
            .contains("`level`")
        );
        assert!(
            bad(QueryRequest {
                limit: Some(0),
                ..Default::default()
            })
            .contains("`limit`")
        );
        assert!(
            bad(QueryRequest {
                limit: Some(1001),
                ..Default::default()
            })
            .contains("`limit`")
        );
        assert!(
            bad(QueryRequest {
                since: Some("yesterday-ish".into()),
                ..Default::default()
            })
            .contains("`since`")
        );
        assert!(
            bad(QueryRequest {
                cursor: Some("zzz".into()),
                ..Default::default()
            })
            .contains("`cursor`")
        );
        assert!(
            bad(QueryRequest {
                since: Some("1m".into()),
                until: Some("2h".into()),
                ..Default::default()
            })
            .contains("after")
        );
    }

    #[test]
    fn the_design_example_body_works() {
        let req: QueryRequest =
            serde_json::from_str(r#"{"service": "load-test", "limit": 10}"#).unwrap();
        let q = EventQuery::from_request(&req, now()).unwrap();
        assert_eq!(q.service.unwrap().as_str(), "load-test");
        assert_eq!(q.limit, 10);
    }

    #[test]
    fn relative_and_absolute_times() {
        let q = EventQuery::from_request(
            &QueryRequest {
                since: Some("15m".into()),
                until: Some("2026-11-26T12:00:00Z".into()),
                ..Default::default()
            },
            now(),
        )
        .unwrap();
        assert_eq!(
            q.since_nanos.unwrap(),
            (now() - chrono::Duration::minutes(15))
                .timestamp_nanos_opt()
                .unwrap()
        );
        assert_eq!(q.until_nanos.unwrap(), now().timestamp_nanos_opt().unwrap());
    }

    #[test]
    fn regex_filter_and_fields_build_index_tokens() {
        let q = EventQuery::from_request(
            &QueryRequest {
                contains: Some("Order-991".into()),
                filter: Some("http.status >= 500".into()),
                fields: Some([("customer".to_string(), serde_json::json!("C-77x"))].into()),
                trace_id: Some("4bf92f3577b34da6".into()),
                regex: Some("^GET /items/\\d+$".into()),
                ..Default::default()
            },
            now(),
        )
        .unwrap();
        assert_eq!(
            q.index_tokens,
            vec!["4bf92f3577b34da6", "c-77x", "order-991"]
        );
        assert!(q.regex.unwrap().is_match("GET /items/12"));
        let bad = |req: QueryRequest| {
            EventQuery::from_request(&req, now())
                .unwrap_err()
                .to_string()
        };
        assert!(
            bad(QueryRequest {
                regex: Some("(".into()),
                ..Default::default()
            })
            .contains("`regex`")
        );
        assert!(
            bad(QueryRequest {
                regex: Some("a".repeat(2000)),
                ..Default::default()
            })
            .contains("`regex`")
        );
        assert!(
            bad(QueryRequest {
                filter: Some("x >".into()),
                ..Default::default()
            })
            .contains("`filter`")
        );
        assert!(
            bad(QueryRequest {
                fields: Some([("a".to_string(), serde_json::json!([1]))].into()),
                ..Default::default()
            })
            .contains("`fields.a`")
        );
    }
}
