//! Custom resources against the JSON Schema of their CRD, strictly: a key that the schema does not
//! declare is an error (the API server would prune it silently, so a misplaced or misspelt field
//! would otherwise go unnoticed).
//!
//! The schemas are the JSON Schemas of the pinned CRD models (PyPI `cloudcoil-models-keda`,
//! `cloudcoil-models-prometheus-operator`), exported by scripts/k8s-validate.sh with pydantic's
//! `model_json_schema()`. This validates the subset of JSON Schema those use: `$ref` into
//! `$defs`, `anyOf`, `type`, `const`, `enum`, `properties`, `required`, `additionalProperties`,
//! `items`, `minimum`, `maximum`, `minLength` and `pattern` (`format` is not checked).

use std::path::Path;

use serde_json::Value;

use super::{ModelError, Result};

/// One object kind's schema.
pub struct Schema {
    root: Value,
}

impl Schema {
    pub fn new(root: Value) -> Schema {
        Schema { root }
    }

    pub fn read(path: &Path) -> Result<Schema> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ModelError::Io(path.display().to_string(), e))?;
        let root = serde_json::from_str(&text)
            .map_err(|e| ModelError::invalid(path.display().to_string(), e.to_string()))?;
        Ok(Schema::new(root))
    }

    /// Every way `value` breaks the schema, one line each with its path (`.spec.triggers[0]...`).
    pub fn validate(&self, value: &Value) -> Vec<String> {
        let mut errors = Vec::new();
        self.check(&self.root, value, "", &mut errors);
        errors
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema["$ref"]
            .as_str()
            .and_then(|r| r.strip_prefix("#/$defs/"))
        {
            Some(name) => self.resolve(&self.root["$defs"][name]),
            None => schema,
        }
    }

    fn check(&self, schema: &Value, value: &Value, path: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        if let Some(branches) = schema["anyOf"].as_array() {
            let mut best: Option<Vec<String>> = None;
            for b in branches {
                let mut errs = Vec::new();
                self.check(b, value, path, &mut errs);
                if errs.is_empty() {
                    return;
                }
                // Report the branch of the value's own type (the object, not the `null`).
                if best.is_none() && self.type_fits(b, value) {
                    best = Some(errs);
                }
            }
            let types: Vec<String> = branches.iter().map(|b| self.describe(b)).collect();
            errors.extend(best.unwrap_or_else(|| {
                vec![format!(
                    "{}: {} is none of {}",
                    at(path),
                    kind_of(value),
                    types.join(", ")
                )]
            }));
            return;
        }
        if !self.type_fits(schema, value) {
            errors.push(format!(
                "{}: {} where the schema wants {}",
                at(path),
                kind_of(value),
                self.describe(schema)
            ));
            return;
        }
        if let Some(c) = schema.get("const")
            && c != value
        {
            errors.push(format!("{}: {value} is not {c}", at(path)));
        }
        if let Some(e) = schema["enum"].as_array()
            && !e.contains(value)
        {
            errors.push(format!(
                "{}: {value} is not one of {}",
                at(path),
                Value::Array(e.clone())
            ));
        }
        match value {
            Value::Object(map) => self.check_object(schema, map, path, errors),
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    if let Some(item) = schema.get("items") {
                        self.check(item, v, &format!("{path}[{i}]"), errors);
                    }
                }
            }
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(0.0);
                if schema["minimum"].as_f64().is_some_and(|m| x < m)
                    || schema["maximum"].as_f64().is_some_and(|m| x > m)
                {
                    errors.push(format!("{}: {n} is out of range", at(path)));
                }
            }
            Value::String(s) => {
                if schema["minLength"]
                    .as_u64()
                    .is_some_and(|m| (s.chars().count() as u64) < m)
                {
                    errors.push(format!("{}: {s:?} is too short", at(path)));
                }
                if let Some(p) = schema["pattern"].as_str() {
                    match regex::Regex::new(p) {
                        Ok(re) if !re.is_match(s) => {
                            errors.push(format!("{}: {s:?} does not match {p}", at(path)))
                        }
                        Ok(_) => {}
                        Err(e) => errors.push(format!(
                            "{}: the schema's pattern {p} does not compile: {e}",
                            at(path)
                        )),
                    }
                }
            }
            _ => {}
        }
    }

    fn check_object(
        &self,
        schema: &Value,
        map: &serde_json::Map<String, Value>,
        path: &str,
        errors: &mut Vec<String>,
    ) {
        let properties = schema["properties"].as_object();
        let additional = schema.get("additionalProperties");
        for (k, v) in map {
            let sub = format!("{path}.{k}");
            match (properties.and_then(|p| p.get(k)), additional) {
                (Some(s), _) => self.check(s, v, &sub, errors),
                (None, Some(Value::Bool(true))) => {}
                (None, Some(a)) if a.is_object() => self.check(a, v, &sub, errors),
                // Without declared properties the object is free-form.
                (None, _) if properties.is_none() => {}
                (None, _) => {
                    let title = schema["title"].as_str().unwrap_or("object");
                    errors.push(format!("{sub}: unknown field (not in the {title} schema)"));
                }
            }
        }
        for r in schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !map.contains_key(r) {
                errors.push(format!("{path}.{r}: required"));
            }
        }
    }

    /// Whether the value is of the schema's `type` (a schema without one takes any).
    fn type_fits(&self, schema: &Value, value: &Value) -> bool {
        let schema = self.resolve(schema);
        let Some(t) = schema["type"].as_str() else {
            return schema["anyOf"]
                .as_array()
                .is_none_or(|bs| bs.iter().any(|b| self.type_fits(b, value)));
        };
        match t {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => true,
        }
    }

    fn describe(&self, schema: &Value) -> String {
        let schema = self.resolve(schema);
        schema["title"]
            .as_str()
            .filter(|_| schema["type"] == "object")
            .or_else(|| schema["type"].as_str())
            .unwrap_or("a value")
            .to_string()
    }
}

fn at(path: &str) -> &str {
    if path.is_empty() { "." } else { path }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Schema {
        Schema::new(json!({
            "$defs": {
                "Spec": {"title": "Spec", "type": "object", "required": ["name"], "properties": {
                    "name": {"type": "string", "minLength": 1, "pattern": "^[a-z]+$"},
                    "replicas": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]},
                    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                    "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}},
                    "free": {"type": "object"}
                }},
                "Item": {"title": "Item", "type": "object", "properties": {
                    "mode": {"enum": ["a", "b"]}, "kind": {"const": "X", "type": "string"}
                }}
            },
            "title": "Thing", "type": "object", "required": ["spec"],
            "properties": {"spec": {"anyOf": [{"$ref": "#/$defs/Spec"}, {"type": "null"}]}}
        }))
    }

    #[test]
    fn accepts_a_valid_document() {
        let doc = json!({"spec": {"name": "ok", "replicas": 2, "labels": {"a": "b"},
            "items": [{"mode": "a", "kind": "X"}], "free": {"anything": [1]}}});
        assert_eq!(schema().validate(&doc), Vec::<String>::new());
    }

    #[test]
    fn names_every_problem_with_its_path() {
        let doc = json!({"spek": 1, "spec": {"replicas": -1, "labels": {"a": 1},
            "items": [{"mode": "c", "kind": "Y", "extra": true}], "name": "Upper"}});
        let errors = schema().validate(&doc);
        for want in [
            ".spek: unknown field (not in the Thing schema)",
            ".spec.replicas: -1 is out of range",
            ".spec.labels.a: a number where the schema wants string",
            ".spec.items[0].mode: \"c\" is not one of [\"a\",\"b\"]",
            ".spec.items[0].kind: \"Y\" is not \"X\"",
            ".spec.items[0].extra: unknown field (not in the Item schema)",
            ".spec.name: \"Upper\" does not match ^[a-z]+$",
        ] {
            assert!(
                errors.iter().any(|e| e == want),
                "{want} not in {errors:#?}"
            );
        }
        assert_eq!(schema().validate(&json!({})), vec![".spec: required"]);
        assert_eq!(
            schema().validate(&json!({"spec": {}})),
            vec![".spec.name: required"]
        );
    }
}
