//! A log query compiled for evaluation: the stream selector and the pipeline stages applied to
//! one event at a time, with no I/O.
//!
//! logjet's mapping: an event's line is its `message`; its stream labels are `service`, `level`
//! and the configured field labels it has (`detected_level` is `level` under Grafana's name);
//! its other fields are structured metadata that label filters and `line_format` can read.
//! `| json` parses the message if it is a JSON object, else it extracts the event's fields (the
//! JSON logjet already parsed the event from); `| logfmt` parses the message.

use std::collections::BTreeMap;

use logjet_core::LogEvent;
use regex::{Regex, RegexBuilder};

use super::logql::{LabelPred, LineOp, LogExpr, MatchOp, Matcher, Stage};

/// Label set of a stream or series.
pub type Labels = BTreeMap<String, String>;

/// Longest accepted regular expression, bytes.
pub const MAX_REGEX_BYTES: usize = 1024;

/// A query that parses but cannot run (a bad regex, an unsupported template).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct CompileError(pub String);

pub fn build_regex(pattern: &str, anchored: bool) -> Result<Regex, CompileError> {
    if pattern.len() > MAX_REGEX_BYTES {
        return Err(CompileError(format!(
            "regular expression longer than {MAX_REGEX_BYTES} bytes"
        )));
    }
    let full = if anchored {
        format!("^(?:{pattern})$")
    } else {
        pattern.to_string()
    };
    RegexBuilder::new(&full)
        .size_limit(1 << 20)
        .dfa_size_limit(2 << 20)
        .nest_limit(64)
        .build()
        .map_err(|e| {
            CompileError(format!(
                "invalid regular expression {pattern:?}: {}",
                e.to_string().replace('\n', " ")
            ))
        })
}

/// A label name as Loki allows it: `http.status` → `http_status`.
pub fn sanitize_label(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

#[derive(Debug, Clone)]
pub struct LabelMatcher {
    pub name: String,
    pub op: MatchOp,
    pub value: String,
    re: Option<Regex>,
}

impl LabelMatcher {
    pub fn compile(m: &Matcher) -> Result<LabelMatcher, CompileError> {
        let re = match m.op {
            MatchOp::Re | MatchOp::Nre => Some(build_regex(&m.value, true)?),
            _ => None,
        };
        Ok(LabelMatcher {
            name: if m.name == "detected_level" {
                "level".into()
            } else {
                m.name.clone()
            },
            op: m.op,
            value: m.value.clone(),
            re,
        })
    }

    pub fn matches(&self, v: &str) -> bool {
        match (self.op, &self.re) {
            (MatchOp::Eq, _) => v == self.value,
            (MatchOp::Ne, _) => v != self.value,
            (MatchOp::Re, Some(re)) => re.is_match(v),
            (MatchOp::Nre, Some(re)) => !re.is_match(v),
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
enum Pred {
    Str(LabelMatcher),
    Num {
        name: String,
        op: super::logql::CmpOp,
        value: f64,
    },
    And(Box<Pred>, Box<Pred>),
    Or(Box<Pred>, Box<Pred>),
}

impl Pred {
    fn compile(p: &LabelPred) -> Result<Pred, CompileError> {
        Ok(match p {
            LabelPred::Str(m) => Pred::Str(LabelMatcher::compile(m)?),
            LabelPred::Num { name, op, value } => Pred::Num {
                name: if name == "detected_level" {
                    "level".into()
                } else {
                    name.clone()
                },
                op: *op,
                value: *value,
            },
            LabelPred::And(a, b) => {
                Pred::And(Box::new(Pred::compile(a)?), Box::new(Pred::compile(b)?))
            }
            LabelPred::Or(a, b) => {
                Pred::Or(Box::new(Pred::compile(a)?), Box::new(Pred::compile(b)?))
            }
        })
    }

    fn holds(&self, look: &dyn Fn(&str) -> Option<String>) -> bool {
        match self {
            Pred::Str(m) => m.matches(look(&m.name).as_deref().unwrap_or("")),
            // A missing or non-numeric value fails a numeric comparison.
            Pred::Num { name, op, value } => look(name)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .is_some_and(|v| op.holds(v, *value)),
            Pred::And(a, b) => a.holds(look) && b.holds(look),
            Pred::Or(a, b) => a.holds(look) || b.holds(look),
        }
    }
}

/// Pieces of a `line_format` template.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Label(String),
    Line,
}

fn compile_template(t: &str) -> Result<Vec<Piece>, CompileError> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            out.push(Piece::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 2..];
        let close = after
            .find("}}")
            .ok_or_else(|| CompileError("line_format: `{{` without `}}`".into()))?;
        let action = after[..close].trim();
        if action == "__line__" {
            out.push(Piece::Line);
        } else if let Some(name) = action.strip_prefix('.')
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            out.push(Piece::Label(name.to_string()));
        } else {
            return Err(CompileError(format!(
                "line_format: only `{{{{.label}}}}` and `{{{{__line__}}}}` are supported, not `{{{{{action}}}}}`"
            )));
        }
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    Ok(out)
}

#[derive(Debug, Clone)]
enum Step {
    Contains(String),
    NotContains(String),
    Match(Regex),
    NotMatch(Regex),
    Json,
    Logfmt,
    Filter(Pred),
    Format(Vec<Piece>),
    Drop(Vec<String>),
}

/// One line that came through the pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub ts_nanos: i64,
    pub labels: Labels,
    pub line: String,
}

/// A log query ready to run over events.
#[derive(Debug, Clone)]
pub struct CompiledLog {
    pub selector: Vec<LabelMatcher>,
    steps: Vec<Step>,
    /// Field names that are stream labels (sanitised), from configuration.
    field_labels: Vec<String>,
}

impl CompiledLog {
    pub fn compile(l: &LogExpr, field_labels: &[String]) -> Result<CompiledLog, CompileError> {
        let selector = l
            .selector
            .iter()
            .map(LabelMatcher::compile)
            .collect::<Result<Vec<_>, _>>()?;
        let steps = l
            .pipeline
            .iter()
            .map(|s| {
                Ok(match s {
                    Stage::Line { op, value } => match op {
                        LineOp::Contains => Step::Contains(value.clone()),
                        LineOp::NotContains => Step::NotContains(value.clone()),
                        LineOp::Match => Step::Match(build_regex(value, false)?),
                        LineOp::NotMatch => Step::NotMatch(build_regex(value, false)?),
                    },
                    Stage::Json => Step::Json,
                    Stage::Logfmt => Step::Logfmt,
                    Stage::Label(p) => Step::Filter(Pred::compile(p)?),
                    Stage::LineFormat(t) => Step::Format(compile_template(t)?),
                    Stage::Drop(names) => Step::Drop(names.clone()),
                })
            })
            .collect::<Result<Vec<_>, CompileError>>()?;
        Ok(CompiledLog {
            selector,
            steps,
            field_labels: field_labels.to_vec(),
        })
    }

    /// The value `service = "x"` selects, if the selector has one.
    pub fn selected(&self, label: &str) -> Option<&str> {
        self.selector
            .iter()
            .find(|m| m.name == label && m.op == MatchOp::Eq)
            .map(|m| m.value.as_str())
    }

    /// Whether every entry's labels are exactly its `service` and `level` and the query keeps or
    /// drops whole events by those two alone: then the per-minute counters (kept per service and
    /// level) count its entries without reading them. `| drop __error__` changes nothing here,
    /// as no parser runs.
    pub fn selects_by_service_and_level_only(&self) -> bool {
        let stream_label = |n: &str| n == "service" || n == "level";
        self.field_labels.is_empty()
            && self.selector.iter().all(|m| stream_label(&m.name))
            && self.steps.iter().all(|s| match s {
                Step::Drop(names) => !names
                    .iter()
                    .any(|n| stream_label(n) || n == "detected_level"),
                _ => false,
            })
    }

    /// Needles every matching line contains (the `|=` filters before any `line_format`).
    pub fn required_substrings(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for s in &self.steps {
            match s {
                Step::Contains(v) => out.push(v.as_str()),
                Step::Format(_) => break,
                _ => {}
            }
        }
        out
    }

    /// An event's stream labels.
    pub fn stream_labels(&self, ev: &LogEvent) -> Labels {
        let mut l = Labels::new();
        l.insert("service".into(), ev.service.clone());
        l.insert("level".into(), ev.level.as_str().to_string());
        for name in &self.field_labels {
            if let Some((_, v)) = ev.fields.iter().find(|(k, _)| sanitize_label(k) == *name) {
                l.insert(name.clone(), v.to_text());
            }
        }
        l
    }

    /// The event through the selector and the pipeline: the entry, or `None` if filtered out.
    pub fn process(&self, ev: &LogEvent) -> Option<Entry> {
        let mut labels = self.stream_labels(ev);
        if !self
            .selector
            .iter()
            .all(|m| m.matches(labels.get(&m.name).map_or("", String::as_str)))
        {
            return None;
        }
        let mut line = ev.message.clone();
        for step in &self.steps {
            match step {
                Step::Contains(v) => {
                    if !line.contains(v.as_str()) {
                        return None;
                    }
                }
                Step::NotContains(v) => {
                    if line.contains(v.as_str()) {
                        return None;
                    }
                }
                Step::Match(re) => {
                    if !re.is_match(&line) {
                        return None;
                    }
                }
                Step::NotMatch(re) => {
                    if re.is_match(&line) {
                        return None;
                    }
                }
                Step::Json => {
                    let parsed = match serde_json::from_str::<serde_json::Value>(&line) {
                        Ok(serde_json::Value::Object(o)) => {
                            let mut out = Vec::new();
                            flatten_json("", &serde_json::Value::Object(o), &mut out);
                            out
                        }
                        _ => ev
                            .fields
                            .iter()
                            .map(|(k, v)| (sanitize_label(k), v.to_text()))
                            .collect(),
                    };
                    for (k, v) in parsed {
                        add_parsed(&mut labels, k, v);
                    }
                }
                Step::Logfmt => {
                    for (k, v) in logfmt(&line) {
                        add_parsed(&mut labels, sanitize_label(&k), v);
                    }
                }
                Step::Filter(p) => {
                    let look = |name: &str| -> Option<String> {
                        labels.get(name).cloned().or_else(|| {
                            ev.fields
                                .iter()
                                .find(|(k, _)| sanitize_label(k) == name)
                                .map(|(_, v)| v.to_text())
                        })
                    };
                    if !p.holds(&look) {
                        return None;
                    }
                }
                Step::Format(pieces) => {
                    let mut out = String::new();
                    for p in pieces {
                        match p {
                            Piece::Text(t) => out.push_str(t),
                            Piece::Line => out.push_str(&line),
                            Piece::Label(name) => {
                                if let Some(v) = labels.get(name.as_str()) {
                                    out.push_str(v);
                                } else if name == "message" {
                                    out.push_str(&ev.message);
                                } else if let Some((_, v)) =
                                    ev.fields.iter().find(|(k, _)| sanitize_label(k) == *name)
                                {
                                    out.push_str(&v.to_text());
                                }
                            }
                        }
                    }
                    line = out;
                }
                Step::Drop(names) => {
                    for n in names {
                        labels.remove(n.as_str());
                    }
                }
            }
        }
        Some(Entry {
            ts_nanos: ev.ts_nanos(),
            labels,
            line,
        })
    }
}

/// A parsed label joins the set; one clashing with a stream label gets `_extracted`, as in Loki.
fn add_parsed(labels: &mut Labels, k: String, v: String) {
    if k.is_empty() {
        return;
    }
    if matches!(k.as_str(), "service" | "level") || labels.contains_key(&k) {
        labels.insert(format!("{k}_extracted"), v);
    } else {
        labels.insert(k, v);
    }
}

fn flatten_json(prefix: &str, v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    match v {
        serde_json::Value::Object(o) => {
            for (k, v) in o {
                let key = if prefix.is_empty() {
                    sanitize_label(k)
                } else {
                    format!("{prefix}_{}", sanitize_label(k))
                };
                flatten_json(&key, v, out);
            }
        }
        // Arrays are skipped, as Loki's json parser does without expressions.
        serde_json::Value::Array(_) => {}
        serde_json::Value::String(s) => out.push((prefix.to_string(), s.clone())),
        serde_json::Value::Null => out.push((prefix.to_string(), String::new())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// `key=value key2="quoted value"` pairs; bare words are skipped.
pub fn logfmt(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = line.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut key_end = start;
        while let Some(&(i, c)) = chars.peek() {
            if c.is_whitespace() || c == '=' {
                break;
            }
            key_end = i + c.len_utf8();
            chars.next();
        }
        let key = &line[start..key_end];
        if chars.peek().map(|(_, c)| *c) != Some('=') {
            continue;
        }
        chars.next();
        let mut value = String::new();
        if chars.peek().map(|(_, c)| *c) == Some('"') {
            chars.next();
            while let Some((_, c)) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            value.push(match e {
                                'n' => '\n',
                                't' => '\t',
                                other => other,
                            });
                        }
                    }
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        if !key.is_empty() {
            out.push((key.to_string(), value));
        }
    }
    out
}

/// Lower-cased tokens a line containing `needle` surely contains as whole tokens (for the
/// chunks' Bloom filters): the pieces the needle itself bounds on both sides.
pub fn bounded_tokens(needle: &str) -> Vec<String> {
    let is_tok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-');
    let pieces: Vec<(usize, &str)> = {
        let mut v = Vec::new();
        let mut start = None;
        for (i, c) in needle.char_indices() {
            match (is_tok(c), start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    v.push((s, &needle[s..i]));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            v.push((s, &needle[s..]));
        }
        v
    };
    pieces
        .into_iter()
        .filter(|(s, p)| *s > 0 && s + p.len() < needle.len())
        .filter_map(|(_, p)| {
            let mut it = logjet_core::tokens::identifier_tokens(p);
            let t = it.next()?;
            (it.next().is_none()).then(|| t.to_ascii_lowercase())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loki::logql::{Expr, parse};

    fn compile(q: &str) -> CompiledLog {
        let Expr::Log(l) = parse(q).unwrap() else {
            panic!()
        };
        CompiledLog::compile(&l, &["region".into()]).unwrap()
    }

    fn ev(json: serde_json::Value) -> LogEvent {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn selector_filters_parsers_and_format() {
        let e = ev(
            serde_json::json!({"ts": "2026-11-26T12:00:00Z", "service": "api", "level": "error",
            "message": "GET /x status=503 took=12.5 user=\"a b\"", "fields": {"region": "eu", "http.status": 503}}),
        );
        let c = compile(
            r#"{service="api", detected_level=~"err.*", region="eu"} |= "GET" | logfmt | status >= 500 and user="a b" | line_format "{{.region}} {{.took}} {{__line__}}""#,
        );
        let out = c.process(&e).unwrap();
        assert_eq!(out.line, "eu 12.5 GET /x status=503 took=12.5 user=\"a b\"");
        assert_eq!(out.labels["status"], "503");
        assert_eq!(out.labels["region"], "eu");
        // Structured metadata without a parser; missing labels fail numeric comparisons.
        assert!(
            compile(r#"{service="api"} | http_status = 503"#)
                .process(&e)
                .is_some()
        );
        assert!(
            compile(r#"{service="api"} | nope > 1"#)
                .process(&e)
                .is_none()
        );
        assert!(compile(r#"{service="api"} != "GET""#).process(&e).is_none());
        assert!(
            compile(r#"{service="api"} |~ "took=1\\d""#)
                .process(&e)
                .is_some()
        );
        assert!(
            compile(r#"{service="api"} !~ "took""#)
                .process(&e)
                .is_none()
        );
        assert!(
            compile(r#"{service=~"ap"}"#).process(&e).is_none(),
            "anchored"
        );
        // json falls back to the event's fields; a message that is JSON is parsed.
        let out = compile(r#"{service="api"} | json | drop level"#)
            .process(&e)
            .unwrap();
        assert_eq!(out.labels["http_status"], "503");
        assert!(!out.labels.contains_key("level"));
        let j = ev(
            serde_json::json!({"ts": "2026-11-26T12:00:00Z", "service": "api", "level": "info",
            "message": "{\"a\":{\"b\":1},\"level\":\"x\"}"}),
        );
        let out = compile(r#"{service="api"} | json"#).process(&j).unwrap();
        assert_eq!(out.labels["a_b"], "1");
        assert_eq!(out.labels["level_extracted"], "x");
    }

    #[test]
    fn bad_regexes_and_templates_are_refused() {
        let Expr::Log(l) = parse(r#"{service="a"} |~ "(""#).unwrap() else {
            panic!()
        };
        assert!(CompiledLog::compile(&l, &[]).is_err());
        let Expr::Log(l) = parse(&format!(r#"{{service="a"}} |~ "{}""#, "a".repeat(2000))).unwrap()
        else {
            panic!()
        };
        assert!(
            CompiledLog::compile(&l, &[])
                .unwrap_err()
                .0
                .contains("longer")
        );
        let Expr::Log(l) = parse(r#"{service="a"} | line_format "{{ printf .a }}""#).unwrap()
        else {
            panic!()
        };
        assert!(
            CompiledLog::compile(&l, &[])
                .unwrap_err()
                .0
                .contains("line_format")
        );
    }

    #[test]
    fn index_tokens_only_where_the_needle_bounds_them() {
        assert_eq!(bounded_tokens("declined req-42a9 now"), vec!["req-42a9"]);
        assert!(bounded_tokens("req-42a9").is_empty());
        assert!(bounded_tokens("x req-42a9").is_empty());
        assert_eq!(bounded_tokens(" Order-991 "), vec!["order-991"]);
    }
}
