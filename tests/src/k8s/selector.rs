//! Label selectors (`matchLabels` and `matchExpressions`), as every selecting object uses them.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{ModelError, Result};

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<Requirement>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl LabelSelector {
    /// A selector as written; `None` where the field is absent (which selects nothing for most
    /// objects, everything for a NetworkPolicy's `podSelector`: the caller decides).
    pub fn from_value(v: &Value) -> Result<Option<LabelSelector>> {
        if v.is_null() {
            return Ok(None);
        }
        serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| ModelError::invalid("label selector", e.to_string()))
    }

    /// Selects pods with exactly these labels set (the others may be anything).
    pub fn labels(pairs: &[(&str, &str)]) -> LabelSelector {
        LabelSelector {
            match_labels: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            match_expressions: Vec::new(),
        }
    }

    /// Whether it selects everything (`{}`).
    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// Every `matchLabels` pair and every expression holds (an empty selector matches all).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }
}

impl Requirement {
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(v)),
            // As in Kubernetes: a pod without the label is "not in" the set.
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn selector(yaml: &str) -> LabelSelector {
        let v: Value = serde_yaml_ng::from_str(yaml).unwrap();
        LabelSelector::from_value(&v).unwrap().unwrap()
    }

    #[test]
    fn match_labels_and_expressions() {
        let pod = labels(&[("app", "nats"), ("tier", "data")]);
        assert!(selector("{}").matches(&pod));
        assert!(selector("matchLabels: {app: nats}").matches(&pod));
        assert!(!selector("matchLabels: {app: redis}").matches(&pod));
        assert!(
            selector("matchExpressions: [{key: tier, operator: In, values: [data]}]").matches(&pod)
        );
        assert!(
            !selector("matchExpressions: [{key: tier, operator: NotIn, values: [data]}]")
                .matches(&pod)
        );
        assert!(
            selector("matchExpressions: [{key: zone, operator: NotIn, values: [a]}]").matches(&pod)
        );
        assert!(selector("matchExpressions: [{key: app, operator: Exists}]").matches(&pod));
        assert!(!selector("matchExpressions: [{key: app, operator: DoesNotExist}]").matches(&pod));
        assert!(
            !selector("{matchLabels: {app: nats}, matchExpressions: [{key: x, operator: Exists}]}")
                .matches(&pod)
        );
    }

    #[test]
    fn an_unknown_operator_or_field_is_an_error() {
        let v: Value =
            serde_yaml_ng::from_str("matchExpressions: [{key: a, operator: Near}]").unwrap();
        assert!(LabelSelector::from_value(&v).is_err());
        // A Service's plain label map is not a LabelSelector.
        let v: Value = serde_yaml_ng::from_str("{app: x}").unwrap();
        assert!(LabelSelector::from_value(&v).is_err());
        assert!(LabelSelector::from_value(&Value::Null).unwrap().is_none());
    }
}
