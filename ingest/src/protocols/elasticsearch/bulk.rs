//! The NDJSON body of a bulk request: action lines paired with their documents, each document
//! normalised as a line of `POST /logs` would be, its index made the service when none is named.

use std::collections::HashMap;

use base64::Engine as _;
use logjet_core::parse::{LineError, ParseOptions, Reject, flatten_json_object, normalize_flat};
use logjet_core::{LogEvent, ServiceName};
use serde_json::Value;

use super::super::{UNSUPPORTED_ACTION, reject, reject_with};

/// One item of a bulk request, in order.
#[derive(Debug)]
pub struct Item {
    pub action: String,
    pub index: String,
    pub id: String,
    /// `Ok(n)`: the n-th event of [`Bulk::events`]; `Err`: why the document was refused.
    pub outcome: Result<usize, Reject>,
}

/// A parsed bulk request.
#[derive(Debug, Default)]
pub struct Bulk {
    pub items: Vec<Item>,
    pub events: Vec<LogEvent>,
}

impl Bulk {
    pub fn rejects(&self) -> Vec<Reject> {
        self.items
            .iter()
            .filter_map(|i| i.outcome.as_ref().err().cloned())
            .collect()
    }
}

/// A request Elasticsearch would refuse as a whole.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct Malformed(pub String);

/// Parses a bulk body. `path_index` is the `{index}` of `POST /{index}/_bulk`.
pub fn parse(
    body: &[u8],
    path_index: Option<&str>,
    explicit_service: bool,
    opts: &ParseOptions,
) -> Result<Bulk, Malformed> {
    let mut out = Bulk::default();
    let mut ids = Ids::new();
    // Parse options per index: the index may name the default service.
    let mut per_index: HashMap<String, ParseOptions> = HashMap::new();
    let mut lines = logjet_core::lines::split_lines(body)
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l)))
        .filter(|(_, l)| !l.trim_ascii().is_empty());
    // Shippers repeat the same action line (`{"create":{"_index":"…"}}`) for every document of a
    // batch: one without an `_id` is parsed once and then recognised by its bytes.
    let mut last: Option<(&[u8], String, String)> = None;
    while let Some((n, line)) = lines.next() {
        let (action, index, id) = match &last {
            Some((bytes, action, index)) if *bytes == line => {
                (action.clone(), index.clone(), ids.next())
            }
            _ => {
                let (action, meta) = action_line(n, line)?;
                let index = match meta.index {
                    Some(s) => s,
                    None => path_index.unwrap_or("logs").to_string(),
                };
                let id = match meta.id {
                    Some(Value::String(s)) => s,
                    Some(Value::Number(n)) => n.to_string(),
                    Some(_) | None => {
                        if meta.id.is_none() {
                            last = Some((line, action.clone(), index.clone()));
                        }
                        ids.next()
                    }
                };
                (action, index, id)
            }
        };
        let position = out.items.len() + 1;
        let outcome = match action.as_str() {
            "index" | "create" => {
                let Some((_, source)) = lines.next() else {
                    return Err(Malformed(format!(
                        "the {action} action on line {n} has no document line after it"
                    )));
                };
                if !per_index.contains_key(&index) {
                    let mut o = opts.clone();
                    if !explicit_service {
                        o.default_service = service_from_index(&index);
                    }
                    per_index.insert(index.clone(), o);
                }
                let opts = &per_index[&index];
                document(source, &index, position, opts).map(|ev| {
                    out.events.push(ev);
                    out.events.len() - 1
                })
            }
            "update" => {
                let _ = lines.next();
                Err(append_only(position, &action))
            }
            "delete" => Err(append_only(position, &action)),
            other => {
                return Err(Malformed(format!(
                    "Malformed action/metadata line [{n}], expected one of [create, delete, index, update] but found [{other}]"
                )));
            }
        };
        out.items.push(Item {
            action,
            index,
            id,
            outcome,
        });
    }
    Ok(out)
}

fn append_only(position: usize, action: &str) -> Reject {
    reject_with(
        position,
        UNSUPPORTED_ACTION,
        format!(
            "logjet is append-only: the {action} action is not supported (use index or create)"
        ),
    )
}

/// The metadata of an action; other keys (`routing`, `pipeline`, `require_alias`, …) are ignored.
#[derive(serde::Deserialize)]
struct ActionMeta {
    #[serde(rename = "_index")]
    index: Option<String>,
    #[serde(rename = "_id")]
    id: Option<Value>,
}

fn action_line(n: usize, line: &[u8]) -> Result<(String, ActionMeta), Malformed> {
    let malformed = |why: &str| {
        Malformed(format!(
            "Malformed action/metadata line [{n}], expected START_OBJECT with one action: {why}"
        ))
    };
    let map: std::collections::BTreeMap<String, ActionMeta> =
        serde_json::from_slice(line).map_err(|e| malformed(&e.to_string()))?;
    let mut entries = map.into_iter();
    match (entries.next(), entries.next()) {
        (Some(one), None) => Ok(one),
        _ => Err(malformed("expected exactly one action")),
    }
}

fn document(
    source: &[u8],
    index: &str,
    position: usize,
    opts: &ParseOptions,
) -> Result<LogEvent, Reject> {
    if source.len() > opts.max_line_bytes {
        return Err(reject(
            position,
            &LineError::TooLong {
                len: source.len(),
                max: opts.max_line_bytes,
            },
        ));
    }
    if source.trim_ascii_start().first() == Some(&b'{') {
        // The common case, read in one pass without a `Value` tree (as `POST /logs` lines are).
        let mut flat = flatten_json_object(source).map_err(|e| reject(position, &e))?;
        if !flat.iter().any(|(k, _)| k == "_index") {
            flat.push(("_index".to_string(), Value::String(index.to_string())));
        }
        return normalize_flat(flat, opts).map_err(|e| reject(position, &e));
    }
    // Not an object: say what it is instead.
    let err = match serde_json::from_slice::<Value>(source) {
        Ok(Value::Array(_)) => LineError::NotAnObject("an array"),
        Ok(Value::String(_)) => LineError::NotAnObject("a string"),
        Ok(Value::Number(_)) => LineError::NotAnObject("a number"),
        Ok(Value::Bool(_)) => LineError::NotAnObject("a boolean"),
        Ok(_) => LineError::NotAnObject("null"),
        Err(_) if std::str::from_utf8(source).is_err() => LineError::InvalidUtf8 { at: 0 },
        Err(e) => LineError::InvalidJson(e.to_string()),
    };
    Err(reject(position, &err))
}

/// The service an index names: a data stream's dataset, else the index without trailing date or
/// version parts.
pub fn service_from_index(index: &str) -> Option<ServiceName> {
    let index = index.trim_start_matches(['.', '-', '_']);
    let parts: Vec<&str> = index.split('-').collect();
    let name = if parts.len() == 3 && parts[0] == "logs" {
        parts[1].to_string()
    } else {
        let keep = parts
            .iter()
            .rposition(|p| !p.chars().all(|c| c.is_ascii_digit() || c == '.'))
            .map_or(0, |i| i + 1);
        parts[..keep].join("-")
    };
    ServiceName::sanitize(&name)
}

/// Ids of documents that bring none: 20 URL-safe characters like Elasticsearch's own, a random
/// per-request prefix and a counter.
struct Ids {
    prefix: [u8; 15],
    n: u32,
}

impl Ids {
    fn new() -> Ids {
        let mut prefix = [0u8; 15];
        prefix.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..15]);
        Ids { prefix, n: 0 }
    }

    fn next(&mut self) -> String {
        let mut b = self.prefix;
        let n = self.n.to_be_bytes();
        for (i, byte) in n.iter().enumerate() {
            b[11 + i] ^= byte;
        }
        self.n += 1;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
    }
}
