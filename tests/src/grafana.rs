//! Grafana dashboards: the PromQL of every panel query, for the live observability tests and for
//! the rules file with which scripts/observability-test.sh has promtool parse each one.

use serde_json::Value;

/// One query of one panel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PanelQuery {
    pub title: String,
    pub ref_id: String,
    /// Its expression, Grafana's interval variables replaced ([`grafana_to_promql`]).
    pub expr: String,
}

/// Grafana's interval variables, replaced by a duration Prometheus accepts.
pub fn grafana_to_promql(expr: &str) -> String {
    [
        "$__rate_interval",
        "${__rate_interval}",
        "$__interval",
        "$__range",
    ]
    .iter()
    .fold(expr.to_string(), |e, v| e.replace(v, "1m"))
}

/// Whether a target queries a Loki data source (LogQL, not PromQL), by its own data source or
/// its panel's.
pub fn is_loki(panel: &Value, target: &Value) -> bool {
    target["datasource"]["type"]
        .as_str()
        .or(panel["datasource"]["type"].as_str())
        == Some("loki")
}

/// Every PromQL query (an `expr` of a target that is not Loki's) of every panel of a dashboard,
/// rows' panels included.
pub fn panel_queries(dashboard: &Value) -> Vec<PanelQuery> {
    fn walk(panels: &Value, out: &mut Vec<PanelQuery>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if is_loki(p, t) {
                    continue;
                }
                if let Some(e) = t["expr"].as_str() {
                    out.push(PanelQuery {
                        title: p["title"].as_str().unwrap_or("?").to_string(),
                        ref_id: t["refId"].as_str().unwrap_or("?").to_string(),
                        expr: grafana_to_promql(e),
                    });
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// A Prometheus rules file with each query as a recording rule (`panel_<i>`), preceded by a
/// comment naming where it comes from: `promtool check rules` parses every expression.
pub fn recording_rules(queries: &[(String, PanelQuery)]) -> String {
    let mut out = String::from("groups:\n  - name: panels\n    rules:\n");
    for (i, (origin, q)) in queries.iter().enumerate() {
        let comment = format!("{origin}: {} {}", q.title, q.ref_id).replace('\n', " ");
        let expr = serde_json::to_string(&q.expr).unwrap_or_default();
        out.push_str(&format!(
            "      # {comment}\n      - record: panel_{i}\n        expr: {expr}\n"
        ));
    }
    out
}

/// Every LogQL query (an `expr` of a Loki target) of every panel of a dashboard, Grafana's
/// interval variables replaced by `1m`.
pub fn loki_panel_queries(dashboard: &Value) -> Vec<PanelQuery> {
    fn walk(panels: &Value, out: &mut Vec<PanelQuery>) {
        for p in panels.as_array().into_iter().flatten() {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let (true, Some(e)) = (is_loki(p, t), t["expr"].as_str()) {
                    out.push(PanelQuery {
                        title: p["title"].as_str().unwrap_or("?").to_string(),
                        ref_id: t["refId"].as_str().unwrap_or("?").to_string(),
                        expr: grafana_to_promql(&e.replace("$__auto", "1m")),
                    });
                }
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn queries_of_rows_too_and_rules_that_yaml_reads_back() {
        let dash = json!({"panels": [
            {"title": "a", "targets": [{"refId": "A", "expr": "rate(x[$__rate_interval])"}, {"refId": "B"}]},
            {"title": "row", "panels": [{"title": "b", "targets": [{"refId": "A", "expr": "sum(y{l=\"v\"})"}]}]}
        ]});
        let q = panel_queries(&dash);
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].expr, "rate(x[1m])");
        assert_eq!(q[1].title, "b");
        let rules = recording_rules(
            &q.into_iter()
                .map(|q| ("d.json".to_string(), q))
                .collect::<Vec<_>>(),
        );
        let parsed: Value = serde_yaml_ng::from_str(&rules).unwrap();
        assert_eq!(parsed["groups"][0]["rules"][1]["expr"], "sum(y{l=\"v\"})");
        assert_eq!(parsed["groups"][0]["rules"][0]["record"], "panel_0");
    }
}
