//! What matches: text needles, and the head (time, level) and content filters of a query,
//! applied to a chunk's lines as cheaply as each allows.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};
use chrono::DateTime;
use logjet_core::keys::ChunkRef;
use logjet_core::tokens;
use logjet_core::{Level, LogEvent};
use serde::Deserialize;

use super::EventQuery;
use super::merge::{Candidate, Position};

/// Case-insensitive matching: substrings, or whole tokens when the needle is an identifier.
#[derive(Debug, Clone)]
pub struct TextMatcher {
    needle_lower: String,
    ascii: Option<AhoCorasick>,
    /// Whether the needle looks the same inside a JSON string, so raw lines can be pre-filtered.
    json_safe: bool,
    /// Set when the needle is a single identifier: match whole tokens only.
    token: Option<String>,
}

impl TextMatcher {
    pub fn new(needle: &str) -> TextMatcher {
        let token = tokens::as_single_identifier(needle);
        let ascii = needle.is_ascii().then(|| {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .build([needle])
                .expect("a single literal pattern always builds")
        });
        TextMatcher {
            needle_lower: needle.to_lowercase(),
            json_safe: !needle
                .chars()
                .any(|c| c == '"' || c == '\\' || c.is_control() || c == '/'),
            ascii,
            token,
        }
    }

    /// The identifier to look up in the token index, if the needle is one.
    pub fn index_token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub fn is_match(&self, hay: &str) -> bool {
        if let Some(t) = &self.token {
            return tokens::identifier_tokens(hay).any(|h| h.eq_ignore_ascii_case(t));
        }
        match &self.ascii {
            Some(ac) => ac.is_match(hay),
            None => hay.to_lowercase().contains(&self.needle_lower),
        }
    }

    /// `false` only when the raw line certainly cannot match.
    pub fn may_match_raw(&self, raw: &[u8]) -> bool {
        if !self.json_safe {
            return true;
        }
        match &self.ascii {
            Some(ac) => ac.is_match(raw),
            None => true,
        }
    }

    pub fn matches_event(&self, ev: &LogEvent) -> bool {
        self.is_match(&ev.message)
            || ev.fields.values().any(|v| self.is_match(&v.to_text()))
            || ev.trace_id.as_deref().is_some_and(|t| self.is_match(t))
            || ev.host.as_deref().is_some_and(|h| self.is_match(h))
    }
}

impl EventQuery {
    /// The cursor's place in Redis, when the cursor is there.
    pub fn recent_cursor(&self) -> Option<Position> {
        self.cursor.and_then(|c| c.recent())
    }

    /// Whether an event passes every filter (service, level, time, content).
    pub fn matches(&self, ev: &LogEvent) -> bool {
        self.service
            .as_ref()
            .is_none_or(|s| s.as_str() == ev.service)
            && self.head_matches(ev.ts_nanos(), ev.level)
            && self.content_matches(ev)
    }

    /// Whether a decoded event passes the content filters (time and level are checked earlier).
    fn content_matches(&self, ev: &LogEvent) -> bool {
        self.contains.as_ref().is_none_or(|m| m.matches_event(ev))
            && self.regex.as_ref().is_none_or(|r| r.is_match(&ev.message))
            && self
                .trace_id
                .as_ref()
                .is_none_or(|t| ev.trace_id.as_deref() == Some(t.as_str()))
            && self.filter.as_ref().is_none_or(|f| f.matches(ev))
    }

    /// Whether a chunk can hold a matching event, from its index entry alone.
    pub fn chunk_may_match(&self, c: &ChunkRef) -> bool {
        if let Some(l) = self.level
            && !c.has_level(l)
        {
            return false;
        }
        if let Some(l) = self.min_level
            && !c.has_level_at_least(l)
        {
            return false;
        }
        if let Some(u) = self.until_nanos
            && c.min_ms.saturating_mul(1_000_000) > u
        {
            return false;
        }
        if let Some(cur) = self.recent_cursor()
            && c.min_ms.saturating_mul(1_000_000) > cur.ts_nanos
        {
            return false;
        }
        true
    }

    fn head_matches(&self, ts_nanos: i64, level: Level) -> bool {
        if self.level.is_some_and(|l| l != level) || self.min_level.is_some_and(|l| level < l) {
            return false;
        }
        if self.since_nanos.is_some_and(|s| ts_nanos < s)
            || self.until_nanos.is_some_and(|u| ts_nanos > u)
        {
            return false;
        }
        true
    }
}

#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    ts: std::borrow::Cow<'a, str>,
    level: Level,
}

/// Decodes one chunk's events that match, pushing them as candidates. Returns events decoded.
pub(super) fn scan_chunk(
    q: &EventQuery,
    chunk: u64,
    data: &[u8],
    out: &mut impl Extend<Candidate>,
) -> u64 {
    let mut scanned = 0;
    for (idx, line) in logjet_core::lines::split_lines(data).enumerate() {
        if line.is_empty() {
            continue;
        }
        scanned += 1;
        let Ok(head) = serde_json::from_slice::<Head<'_>>(line) else {
            continue;
        };
        let Some(ts_nanos) = DateTime::parse_from_rfc3339(&head.ts)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt())
        else {
            continue;
        };
        let pos = Position {
            ts_nanos,
            chunk,
            idx: idx as u32,
        };
        if q.recent_cursor().is_some_and(|c| pos >= c) || !q.head_matches(ts_nanos, head.level) {
            continue;
        }
        if let Some(m) = &q.contains
            && !m.may_match_raw(line)
        {
            continue;
        }
        let Ok(event) = serde_json::from_slice::<LogEvent>(line) else {
            continue;
        };
        if q.content_matches(&event) {
            out.extend([Candidate { pos, event }]);
        }
    }
    scanned
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BinaryHeap;

    use chrono::DateTime;

    use crate::search::QueryRequest;
    use crate::search::test_support::now;

    #[test]
    fn matcher_is_case_insensitive_and_prefilters_safely() {
        let m = TextMatcher::new("TimeOut");
        assert!(m.is_match("upstream timeout after 3s"));
        assert!(!m.may_match_raw(br#"{"message":"all good"}"#));
        let q = TextMatcher::new("say \"hi\"");
        assert!(q.may_match_raw(b"anything")); // quotes are escaped in JSON: no prefilter
        let u = TextMatcher::new("ÜBER");
        assert!(u.is_match("das ist über alles"));
    }

    #[test]
    fn scan_chunk_applies_filters_and_cursor() {
        let lines = [
            r#"{"ts":"2026-11-26T11:59:59.100Z","service":"api","level":"info","message":"hello"}"#,
            r#"{"ts":"2026-11-26T11:59:59.200Z","service":"api","level":"error","message":"boom"}"#,
            r#"{"ts":"2026-11-26T11:59:59.300Z","service":"api","level":"warn","message":"slow","fields":{"order":"A-17"}}"#,
        ]
        .join("\n");
        let mut q = EventQuery::from_request(
            &QueryRequest {
                min_level: Some("warn".into()),
                ..Default::default()
            },
            now(),
        )
        .unwrap();
        let mut heap = BinaryHeap::new();
        assert_eq!(scan_chunk(&q, 1, lines.as_bytes(), &mut heap), 3);
        assert_eq!(heap.len(), 2);
        assert_eq!(heap.peek().unwrap().event.message, "slow");
        q.min_level = None;
        q.contains = Some(TextMatcher::new("a-17"));
        let mut heap = BinaryHeap::new();
        scan_chunk(&q, 1, lines.as_bytes(), &mut heap);
        assert_eq!(heap.len(), 1);
        q.contains = None;
        q.cursor = Some(crate::search::Cursor::Recent(Position {
            ts_nanos: DateTime::parse_from_rfc3339("2026-11-26T11:59:59.300Z")
                .unwrap()
                .timestamp_nanos_opt()
                .unwrap(),
            chunk: 1,
            idx: 2,
        }));
        let mut heap = BinaryHeap::new();
        scan_chunk(&q, 1, lines.as_bytes(), &mut heap);
        assert_eq!(heap.len(), 2);
    }

    #[test]
    fn identifier_needles_match_whole_tokens() {
        let m = TextMatcher::new("req-42");
        assert_eq!(m.index_token(), Some("req-42"));
        assert!(m.is_match("failed REQ-42 twice"));
        assert!(!m.is_match("failed req-420"));
        assert!(TextMatcher::new("time").is_match("timeout"));
    }
}
