//! Rule files: Prometheus/Loki ruler format (`groups` → `rules`), loaded from a file or a
//! directory and validated at start; a bad rule is an error naming its file, group and rule.
//!
//! Two kinds of alerting rule:
//! - `expr`: a LogQL metric query; every series it returns is an active alert.
//! - `pattern: new`: a message template (the processors' Drain templates) seen in `service`
//!   within the last `window` and not in the `baseline` before it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use logjet_core::{Level, ServiceName};
use regex::Regex;
use serde::Deserialize;

use crate::loki::logql::{self, Expr, MetricExpr};

/// Longest `window + baseline` of a pattern rule: what the pattern counts can cover at most.
pub const MAX_PATTERN_SPAN: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("alert rules {path}: {problem}")]
    Read { path: PathBuf, problem: String },
    #[error("alert rules {path}: group {group:?}, rule {rule:?}: {problem}")]
    Rule {
        path: PathBuf,
        group: String,
        rule: String,
        problem: String,
    },
    #[error("alert rules {path}: group {group:?}: {problem}")]
    Group {
        path: PathBuf,
        group: String,
        problem: String,
    },
}

/// A rule file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    groups: Vec<GroupDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupDoc {
    name: String,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    limit: Option<u64>,
    rules: Vec<serde_yaml_ng::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleDoc {
    alert: Option<String>,
    record: Option<String>,
    expr: Option<String>,
    pattern: Option<String>,
    service: Option<String>,
    level: Option<String>,
    window: Option<String>,
    baseline: Option<String>,
    #[serde(rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// A loaded group.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    pub file: String,
    pub interval: Duration,
    pub rules: Vec<Rule>,
}

/// A loaded alerting rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub kind: RuleKind,
    pub for_: Duration,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub enum RuleKind {
    LogQl {
        query: String,
        expr: MetricExpr,
    },
    NewPattern {
        service: ServiceName,
        level: Option<Level>,
        window: Duration,
        baseline: Duration,
    },
}

impl Rule {
    /// The rule's query as `/api/v1/rules` shows it.
    pub fn query(&self) -> String {
        match &self.kind {
            RuleKind::LogQl { query, .. } => query.clone(),
            RuleKind::NewPattern {
                service,
                level,
                window,
                baseline,
            } => format!(
                "pattern: new, service: {service}{}, window: {}, baseline: {}",
                level
                    .map(|l| format!(", level: {}", l.as_str()))
                    .unwrap_or_default(),
                humantime::format_duration(*window),
                humantime::format_duration(*baseline)
            ),
        }
    }
}

/// Loads every rule file under `path` (a file, or a directory's `*.yml`/`*.yaml`, sorted).
pub fn load(path: &Path, default_interval: Duration) -> Result<Vec<Group>, RulesError> {
    let read_err = |p: &Path, e: std::io::Error| RulesError::Read {
        path: p.to_path_buf(),
        problem: e.to_string(),
    };
    let files = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| read_err(path, e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "yml" || x == "yaml"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut groups = Vec::new();
    let mut seen = BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).map_err(|e| read_err(&f, e))?;
        for g in parse_file(&f, &text, default_interval)? {
            if !seen.insert(g.name.clone()) {
                return Err(RulesError::Group {
                    path: f,
                    group: g.name,
                    problem:
                        "a group of this name is already loaded (names are unique across files)"
                            .into(),
                });
            }
            groups.push(g);
        }
    }
    Ok(groups)
}

/// Parses and validates one rule file's text.
pub fn parse_file(
    path: &Path,
    text: &str,
    default_interval: Duration,
) -> Result<Vec<Group>, RulesError> {
    let doc: FileDoc = serde_yaml_ng::from_str(text).map_err(|e| RulesError::Read {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })?;
    let mut out = Vec::new();
    for g in doc.groups {
        let group_err = |problem: String| RulesError::Group {
            path: path.to_path_buf(),
            group: g.name.clone(),
            problem,
        };
        if g.name.trim().is_empty() {
            return Err(group_err("`name` is empty".into()));
        }
        if g.limit.is_some_and(|l| l > 0) {
            return Err(group_err("`limit` is not supported".into()));
        }
        let interval = match &g.interval {
            None => default_interval,
            Some(i) => duration(i).map_err(|p| group_err(format!("`interval`: {p}")))?,
        };
        if interval < Duration::from_secs(1) {
            return Err(group_err("`interval` must be at least 1s".into()));
        }
        let mut rules = Vec::new();
        let mut names = BTreeSet::new();
        for (i, value) in g.rules.into_iter().enumerate() {
            let label = value
                .get("alert")
                .or_else(|| value.get("record"))
                .and_then(|v| v.as_str())
                .map_or_else(|| format!("#{}", i + 1), str::to_string);
            let rule_err = |problem: String| RulesError::Rule {
                path: path.to_path_buf(),
                group: g.name.clone(),
                rule: label.clone(),
                problem,
            };
            let doc: RuleDoc =
                serde_yaml_ng::from_value(value).map_err(|e| rule_err(e.to_string()))?;
            let rule = rule(doc).map_err(rule_err)?;
            if !names.insert(rule.name.clone()) {
                return Err(rule_err("another rule of this group has this name".into()));
            }
            rules.push(rule);
        }
        out.push(Group {
            name: g.name,
            file: path.display().to_string(),
            interval,
            rules,
        });
    }
    Ok(out)
}

fn duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration ({e})"))
}

fn rule(d: RuleDoc) -> Result<Rule, String> {
    if d.record.is_some() {
        return Err("recording rules are not supported; only `alert` rules".into());
    }
    let name = d.alert.ok_or("`alert` (the alert's name) is missing")?;
    if !label_name(&name) {
        return Err(format!("`alert`: {name:?} is not a valid alert name"));
    }
    let for_ = d
        .for_
        .as_deref()
        .map(duration)
        .transpose()?
        .unwrap_or_default();
    for k in d.labels.keys() {
        if !label_name(k) || k.starts_with("__") {
            return Err(format!("`labels`: {k:?} is not a valid label name"));
        }
    }
    for k in d.annotations.keys() {
        if !label_name(k) {
            return Err(format!(
                "`annotations`: {k:?} is not a valid annotation name"
            ));
        }
    }
    for (k, v) in d.labels.iter().chain(&d.annotations) {
        check_template(v).map_err(|p| format!("`{k}`: {p}"))?;
    }
    let kind = match (d.expr, d.pattern) {
        (Some(_), Some(_)) => return Err("set `expr` or `pattern`, not both".into()),
        (None, None) => {
            return Err("`expr` (a LogQL metric query) or `pattern: new` is missing".into());
        }
        (Some(query), None) => {
            if d.service.is_some()
                || d.level.is_some()
                || d.window.is_some()
                || d.baseline.is_some()
            {
                return Err(
                    "`service`, `level`, `window` and `baseline` belong to `pattern: new` rules"
                        .into(),
                );
            }
            match logql::parse(&query).map_err(|e| format!("`expr`: {e}"))? {
                Expr::Metric(expr) => RuleKind::LogQl { query, expr },
                Expr::Log(_) => {
                    return Err("`expr` is a log query; an alert needs a metric query such as `count_over_time({…}[5m]) > 10`".into());
                }
            }
        }
        (None, Some(p)) => {
            if p != "new" {
                return Err(format!(
                    "`pattern`: {p:?} is not a pattern rule type (only `new`)"
                ));
            }
            let s = d
                .service
                .ok_or("`service` is missing (the service whose patterns to watch)")?;
            let service = ServiceName::sanitize(&s)
                .filter(|n| n.as_str() == s)
                .ok_or_else(|| format!("`service`: {s:?} is not a service name"))?;
            let level = d
                .level
                .map(|l| {
                    Level::from_name(&l).ok_or_else(|| format!("`level`: unknown level {l:?}"))
                })
                .transpose()?;
            let window = d
                .window
                .as_deref()
                .map(duration)
                .transpose()?
                .unwrap_or(DEFAULT_WINDOW);
            let baseline = d
                .baseline
                .as_deref()
                .map(duration)
                .transpose()?
                .unwrap_or(DEFAULT_BASELINE);
            if window < Duration::from_secs(60) {
                return Err(
                    "`window` must be at least 1m (patterns are counted per minute)".into(),
                );
            }
            if baseline < Duration::from_secs(60) {
                return Err("`baseline` must be at least 1m".into());
            }
            if window + baseline > MAX_PATTERN_SPAN {
                return Err("`window` + `baseline` may span at most 24h".into());
            }
            RuleKind::NewPattern {
                service,
                level,
                window,
                baseline,
            }
        }
    };
    Ok(Rule {
        name,
        kind,
        for_,
        labels: d.labels,
        annotations: d.annotations,
    })
}

/// Default `window` of a `pattern: new` rule.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(600);
/// Default `baseline` of a `pattern: new` rule.
pub const DEFAULT_BASELINE: Duration = Duration::from_secs(6 * 3600);

fn label_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

static TEMPLATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\{\{\s*([^}]*?)\s*\}\}").expect("static regex"));

/// What `{{ … }}` may say: `$value`, `$labels.<name>`, and for pattern rules `$template` and
/// `$sample` (empty elsewhere).
fn template_var(var: &str) -> Option<TemplateVar<'_>> {
    match var {
        "$value" => Some(TemplateVar::Value),
        "$template" => Some(TemplateVar::Template),
        "$sample" => Some(TemplateVar::Sample),
        v => v
            .strip_prefix("$labels.")
            .filter(|n| label_name(n))
            .map(TemplateVar::Label),
    }
}

enum TemplateVar<'a> {
    Value,
    Template,
    Sample,
    Label(&'a str),
}

fn check_template(s: &str) -> Result<(), String> {
    for c in TEMPLATE.captures_iter(s) {
        let var = c.get(1).map_or("", |m| m.as_str());
        if template_var(var).is_none() {
            return Err(format!(
                "{{{{ {var} }}}} is not supported (use $value, $labels.<name>, $template, $sample)"
            ));
        }
    }
    Ok(())
}

/// What a template is expanded with.
pub struct TemplateData<'a> {
    pub labels: &'a BTreeMap<String, String>,
    pub value: f64,
    pub template: &'a str,
    pub sample: &'a str,
}

/// Expands `{{ $value }}`, `{{ $labels.x }}`, `{{ $template }}`, `{{ $sample }}`.
pub fn expand(s: &str, d: &TemplateData<'_>) -> String {
    TEMPLATE
        .replace_all(s, |c: &regex::Captures<'_>| {
            match template_var(c.get(1).map_or("", |m| m.as_str())) {
                Some(TemplateVar::Value) => format_value(d.value),
                Some(TemplateVar::Template) => d.template.to_string(),
                Some(TemplateVar::Sample) => d.sample.to_string(),
                Some(TemplateVar::Label(n)) => d.labels.get(n).cloned().unwrap_or_default(),
                None => String::new(),
            }
        })
        .into_owned()
}

/// A value as Prometheus prints it in templates: integers without a fraction.
pub fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Group>, String> {
        parse_file(Path::new("rules.yml"), text, Duration::from_secs(60)).map_err(|e| e.to_string())
    }

    #[test]
    fn ruler_format_with_both_rule_kinds() {
        let g = parse(
            r#"
groups:
  - name: checkout
    interval: 30s
    rules:
      - alert: ErrorBurst
        expr: sum by (service) (count_over_time({service="checkout", level="error"}[1m])) > 10
        for: 2m
        labels: {severity: page}
        annotations:
          summary: "{{ $value }} errors in {{ $labels.service }}"
      - alert: NewPattern
        pattern: new
        service: checkout
        level: error
        window: 5m
"#,
        )
        .unwrap();
        assert_eq!(g[0].interval, Duration::from_secs(30));
        let r = &g[0].rules;
        assert_eq!(r[0].for_, Duration::from_secs(120));
        assert_eq!(r[0].labels["severity"], "page");
        assert!(matches!(r[0].kind, RuleKind::LogQl { .. }));
        match &r[1].kind {
            RuleKind::NewPattern {
                window,
                baseline,
                level,
                ..
            } => {
                assert_eq!(*window, Duration::from_secs(300));
                assert_eq!(*baseline, DEFAULT_BASELINE);
                assert_eq!(*level, Some(Level::Error));
            }
            k => panic!("{k:?}"),
        }
        let labels = [("service".to_string(), "checkout".to_string())].into();
        let d = TemplateData {
            labels: &labels,
            value: 12.0,
            template: "",
            sample: "",
        };
        assert_eq!(
            expand(&r[0].annotations["summary"], &d),
            "12 errors in checkout"
        );
    }

    #[test]
    fn bad_rules_name_file_group_and_rule() {
        let bad = |rule: &str| {
            parse(&format!(
                "groups:\n  - name: g1\n    rules:\n      - {rule}\n"
            ))
            .unwrap_err()
        };
        let e = bad(r#"{alert: A, expr: 'count_over_time({service="x"}[1m]'}"#);
        assert!(
            e.contains("rules.yml")
                && e.contains("\"g1\"")
                && e.contains("\"A\"")
                && e.contains("`expr`"),
            "{e}"
        );
        assert!(bad(r#"{alert: A, expr: '{service="x"}'}"#).contains("log query"));
        assert!(bad(r#"{record: r, expr: 'vector(1)'}"#).contains("recording rules"));
        assert!(bad(r#"{alert: A, expr: 'vector(1)', for: soon}"#).contains("duration"));
        assert!(bad(r#"{alert: A, expr: 'vector(1)', lables: {}}"#).contains("lables"));
        assert!(bad(r#"{alert: A, pattern: new}"#).contains("`service`"));
        assert!(bad(r#"{alert: A, pattern: old, service: x}"#).contains("pattern"));
        assert!(bad(r#"{alert: A, pattern: new, service: x, window: 10s}"#).contains("`window`"));
        assert!(bad(r#"{alert: A, pattern: new, service: x, baseline: 30h}"#).contains("24h"));
        assert!(
            bad(r#"{alert: A, expr: 'vector(1)', annotations: {s: '{{ .Value }}'}}"#)
                .contains("not supported")
        );
        let e = parse("groups:\n  - name: g\n    rules:\n      - {alert: A, expr: 'vector(1)'}\n      - {alert: A, expr: 'vector(2)'}\n").unwrap_err();
        assert!(e.contains("another rule"), "{e}");
        assert!(
            parse("groups:\n  - name: g\n    interval: 10ms\n    rules: []\n")
                .unwrap_err()
                .contains("interval")
        );
    }

    #[test]
    fn the_kubernetes_example_rules_load() {
        let text = include_str!("../../../kustomize/base/config/alert-rules.yml");
        let g = parse(text).unwrap();
        assert_eq!(g.iter().map(|g| g.rules.len()).sum::<usize>(), 3);
    }

    #[test]
    fn loads_a_directory_and_refuses_duplicate_groups() {
        let dir = tempfile::tempdir().unwrap();
        let rule = "groups:\n  - name: g\n    rules:\n      - {alert: A, expr: 'vector(1)'}\n";
        std::fs::write(dir.path().join("a.yml"), rule).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not rules").unwrap();
        let g = load(dir.path(), Duration::from_secs(60)).unwrap();
        assert_eq!(g.len(), 1);
        std::fs::write(dir.path().join("b.yaml"), rule).unwrap();
        let e = load(dir.path(), Duration::from_secs(60))
            .unwrap_err()
            .to_string();
        assert!(e.contains("b.yaml") && e.contains("already loaded"), "{e}");
    }
}
