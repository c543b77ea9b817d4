//! `GET /patterns`: what kinds of lines are these?
//!
//! The processors count masked templates per minute ([`logjet_core::pattern`]). Here the
//! templates of the requested window are clustered Drain-style: templates of the same length
//! and first token whose tokens agree at least [`SIMILARITY`] of the time are one pattern, and
//! where they differ the pattern says `<*>`. Counts are sums of exact counts, so a pattern's
//! count is exact too.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use logjet_core::keys::{self, Bucket};
use logjet_core::pattern::WILDCARD;
use logjet_core::store::RedisConn;
use logjet_core::{Level, ServiceName};
use serde::Deserialize;

use crate::error::QueryError;
use crate::search::parse_time;

pub use logjet_api::{Pattern, PatternParams, PatternsResponse};

/// Share of equal tokens above which two templates are one pattern (Drain's `st`).
pub const SIMILARITY: f64 = 0.5;
/// Longest window, in minutes.
pub const MAX_MINUTES: i64 = 24 * 60;

/// A validated request.
#[derive(Debug)]
pub struct PatternQuery {
    pub service: Option<ServiceName>,
    pub level: Option<Level>,
    pub first_minute: i64,
    pub last_minute: i64,
    pub limit: usize,
}

impl PatternQuery {
    pub fn from_params(p: &PatternParams, now: DateTime<Utc>) -> Result<PatternQuery, QueryError> {
        let until = p
            .until
            .as_deref()
            .map(|u| parse_time("until", u, now))
            .transpose()?
            .unwrap_or(now);
        let since = p
            .since
            .as_deref()
            .map(|s| parse_time("since", s, now))
            .transpose()?
            .unwrap_or(until - chrono::Duration::hours(1));
        if since > until {
            return Err(QueryError::invalid("since", "is after `until`"));
        }
        let first_minute = Bucket::M1.start(since.timestamp());
        let last_minute = Bucket::M1.start(until.timestamp());
        if (last_minute - first_minute) / 60 + 1 > MAX_MINUTES {
            return Err(QueryError::invalid(
                "since",
                "the window may span at most 24 hours",
            ));
        }
        let service = match p.service.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(ServiceName::sanitize(s).ok_or_else(|| {
                QueryError::invalid("service", format!("{s:?} is not a service name"))
            })?),
        };
        let level = match p.level.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(l) => Some(
                Level::from_name(l)
                    .ok_or_else(|| QueryError::invalid("level", format!("unknown level {l:?}")))?,
            ),
        };
        let limit = p.limit.unwrap_or(50);
        if !(1..=1000).contains(&limit) {
            return Err(QueryError::invalid("limit", "must be between 1 and 1000"));
        }
        Ok(PatternQuery {
            service,
            level,
            first_minute,
            last_minute,
            limit,
        })
    }

    fn minutes(&self) -> usize {
        ((self.last_minute - self.first_minute) / 60 + 1) as usize
    }
}

/// Counts of one masked template in the window.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateCounts {
    pub id: String,
    pub template: String,
    pub sample: String,
    pub series: Vec<u64>,
}

impl TemplateCounts {
    fn count(&self) -> u64 {
        self.series.iter().sum()
    }
}

fn similarity(cluster: &[String], tokens: &[&str]) -> f64 {
    if cluster.is_empty() {
        return 1.0;
    }
    let same = cluster
        .iter()
        .zip(tokens)
        .filter(|(c, t)| c.as_str() != WILDCARD && c == *t)
        .count();
    same as f64 / cluster.len() as f64
}

/// Drain-style clustering of masked templates (largest first, so a pattern's shape comes from its
/// most common lines), then sorted by count.
pub fn cluster(mut templates: Vec<TemplateCounts>, minute0: i64) -> Vec<Pattern> {
    templates.sort_by(|a, b| {
        b.count()
            .cmp(&a.count())
            .then_with(|| a.template.cmp(&b.template))
    });
    struct Cluster {
        tokens: Vec<String>,
        sample: String,
        series: Vec<u64>,
        templates: usize,
    }
    // (token count, first token) → clusters
    let mut groups: HashMap<(usize, String), Vec<Cluster>> = HashMap::new();
    let mut order: Vec<(usize, String, usize)> = Vec::new();
    for t in templates {
        let tokens: Vec<&str> = t.template.split(' ').collect();
        let first = tokens.first().copied().unwrap_or("");
        let first = if first.starts_with('<') {
            WILDCARD
        } else {
            first
        };
        let key = (tokens.len(), first.to_string());
        let group = groups.entry(key.clone()).or_default();
        let best = group
            .iter()
            .enumerate()
            .map(|(i, c)| (i, similarity(&c.tokens, &tokens)))
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
        match best {
            Some((i, sim)) if sim >= SIMILARITY => {
                let c = &mut group[i];
                for (ct, t) in c.tokens.iter_mut().zip(&tokens) {
                    if ct != t {
                        *ct = WILDCARD.to_string();
                    }
                }
                for (a, b) in c.series.iter_mut().zip(&t.series) {
                    *a += b;
                }
                c.templates += 1;
            }
            _ => {
                group.push(Cluster {
                    tokens: tokens.iter().map(|s| s.to_string()).collect(),
                    sample: t.sample.clone(),
                    series: t.series.clone(),
                    templates: 1,
                });
                order.push((key.0, key.1, group.len() - 1));
            }
        }
    }
    let mut out: Vec<Pattern> = order
        .into_iter()
        .map(|(n, first, i)| {
            let c = &groups[&(n, first)][i];
            let first_i = c.series.iter().position(|n| *n > 0).unwrap_or(0);
            let last_i = c.series.iter().rposition(|n| *n > 0).unwrap_or(0);
            let at = |i: usize| {
                logjet_core::event::format_ts(
                    &DateTime::from_timestamp(minute0 + 60 * i as i64, 0).unwrap_or_default(),
                )
            };
            Pattern {
                template: c.tokens.join(" "),
                count: c.series.iter().sum(),
                sample: c.sample.clone(),
                first_seen: at(first_i),
                last_seen: at(last_i),
                series: c.series.clone(),
                templates: c.templates,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.template.cmp(&b.template))
    });
    out
}

#[derive(Deserialize)]
struct Def {
    t: String,
    s: String,
}

/// Reads the window's template counts and definitions from Redis.
pub async fn read_templates(
    conn: &RedisConn,
    q: &PatternQuery,
) -> redis::RedisResult<Vec<TemplateCounts>> {
    let minutes = q.minutes();
    let keys: Vec<String> = (0..minutes)
        .map(|i| keys::pattern_counts_key(q.first_minute + 60 * i as i64))
        .collect();
    let hashes = crate::stats::read_hashes(conn, &keys).await?;
    // id → (series, day of last appearance)
    let mut by_id: BTreeMap<String, (Vec<u64>, i64)> = BTreeMap::new();
    for (i, h) in hashes.iter().enumerate() {
        for (field, n) in h {
            let Some((service, level, id)) = keys::split_pattern_field(field) else {
                continue;
            };
            if q.service.as_ref().is_some_and(|s| s.as_str() != service)
                || q.level.is_some_and(|l| l != level)
            {
                continue;
            }
            let minute = q.first_minute + 60 * i as i64;
            let entry = by_id
                .entry(id.to_string())
                .or_insert_with(|| (vec![0; minutes], minute));
            entry.0[i] += n;
            entry.1 = entry.1.max(minute);
        }
    }
    // Definitions are written per day of appearance: look each up in the day it was last seen.
    let mut by_day: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (id, (_, last)) in &by_id {
        by_day
            .entry(last.div_euclid(86_400) * 86_400)
            .or_default()
            .push(id.clone());
    }
    let mut defs: HashMap<String, Def> = HashMap::new();
    let mut c = conn.clone();
    for (day, ids) in by_day {
        let values: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(keys::pattern_defs_key(day))
            .arg(&ids)
            .query_async(&mut c)
            .await?;
        for (id, v) in ids.into_iter().zip(values) {
            if let Some(d) = v.and_then(|v| serde_json::from_str::<Def>(&v).ok()) {
                defs.insert(id, d);
            }
        }
    }
    Ok(by_id
        .into_iter()
        .map(|(id, (series, _))| {
            let def = defs.remove(&id);
            TemplateCounts {
                template: def
                    .as_ref()
                    .map_or_else(|| format!("<unknown template {id}>"), |d| d.t.clone()),
                sample: def.map(|d| d.s).unwrap_or_default(),
                id,
                series,
            }
        })
        .collect())
}

pub async fn patterns(conn: &RedisConn, q: &PatternQuery) -> redis::RedisResult<PatternsResponse> {
    let templates = read_templates(conn, q).await?;
    let total = templates.iter().map(TemplateCounts::count).sum();
    let mut patterns = cluster(templates, q.first_minute);
    patterns.truncate(q.limit);
    let at =
        |t: i64| logjet_core::event::format_ts(&DateTime::from_timestamp(t, 0).unwrap_or_default());
    Ok(PatternsResponse {
        since: at(q.first_minute),
        until: at(q.last_minute + 59),
        step_secs: 60,
        total,
        patterns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(template: &str, series: Vec<u64>) -> TemplateCounts {
        TemplateCounts {
            id: template.into(),
            template: template.into(),
            sample: format!("sample of {template}"),
            series,
        }
    }

    #[test]
    fn words_that_vary_become_wildcards_and_counts_add_up() {
        let p = cluster(
            vec![
                t("User alice logged in from <ip>", vec![1, 2]),
                t("User bob logged in from <ip>", vec![3, 0]),
                t("Disk <num>% full on <quoted>", vec![5, 5]),
                t("GET /items/<num> took <duration>", vec![0, 7]),
            ],
            0,
        );
        assert_eq!(p.len(), 3);
        assert_eq!(p[0].template, "Disk <num>% full on <quoted>");
        assert_eq!(p[0].count, 10);
        let user = p.iter().find(|x| x.template.starts_with("User")).unwrap();
        assert_eq!(user.template, "User <*> logged in from <ip>");
        assert_eq!(user.count, 6);
        assert_eq!(user.series, vec![4, 2]);
        assert_eq!(user.templates, 2);
        assert_eq!(user.first_seen, "1970-01-01T00:00:00.000000000Z");
        let get = p.iter().find(|x| x.template.starts_with("GET")).unwrap();
        assert_eq!(get.first_seen, "1970-01-01T00:01:00.000000000Z");
    }

    #[test]
    fn different_lengths_or_first_words_never_merge() {
        let p = cluster(
            vec![
                t("cache miss for <hex>", vec![1]),
                t("cache miss for <hex> again", vec![1]),
                t("queue miss for <hex>", vec![1]),
            ],
            0,
        );
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn params_validation() {
        let now = Utc::now();
        let q = PatternQuery::from_params(&PatternParams::default(), now).unwrap();
        assert_eq!(q.minutes(), 61);
        let bad = |p: PatternParams| PatternQuery::from_params(&p, now).unwrap_err().to_string();
        assert!(
            bad(PatternParams {
                since: Some("3d".into()),
                ..Default::default()
            })
            .contains("24 hours")
        );
        assert!(
            bad(PatternParams {
                level: Some("x".into()),
                ..Default::default()
            })
            .contains("`level`")
        );
        assert!(
            bad(PatternParams {
                limit: Some(0),
                ..Default::default()
            })
            .contains("`limit`")
        );
    }
}
