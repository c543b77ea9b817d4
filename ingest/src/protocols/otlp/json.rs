//! OTLP/JSON → the protobuf types, so both encodings share one mapping. Typed serde structs
//! (lowerCamelCase names, the protobuf names as aliases), not a `serde_json::Value` tree: a
//! request of a thousand records parses about twice as fast.

use base64::Engine as _;

use super::super::proto::{otlp_collector as col, otlp_common as common, otlp_logs as logs};

mod wire {
    use serde::Deserialize;
    use serde::de::{self, Deserializer, Visitor};

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub(super) struct Request {
        #[serde(rename = "resourceLogs", alias = "resource_logs")]
        pub resource_logs: Vec<ResourceLogs>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub(super) struct ResourceLogs {
        pub resource: Option<Resource>,
        #[serde(rename = "scopeLogs", alias = "scope_logs")]
        pub scope_logs: Vec<ScopeLogs>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub(super) struct Resource {
        pub attributes: Vec<KeyValue>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub(super) struct ScopeLogs {
        pub scope: Option<Scope>,
        #[serde(rename = "logRecords", alias = "log_records")]
        pub log_records: Vec<LogRecord>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub(super) struct Scope {
        pub name: String,
        pub version: String,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub(super) struct LogRecord {
        #[serde(rename = "timeUnixNano", alias = "time_unix_nano")]
        pub time_unix_nano: Int64,
        #[serde(rename = "observedTimeUnixNano", alias = "observed_time_unix_nano")]
        pub observed_time_unix_nano: Int64,
        #[serde(rename = "severityNumber", alias = "severity_number")]
        pub severity_number: Severity,
        #[serde(rename = "severityText", alias = "severity_text")]
        pub severity_text: Option<String>,
        pub body: Option<AnyValue>,
        pub attributes: Vec<KeyValue>,
        #[serde(rename = "traceId", alias = "trace_id")]
        pub trace_id: Option<String>,
        #[serde(rename = "spanId", alias = "span_id")]
        pub span_id: Option<String>,
        #[serde(rename = "eventName", alias = "event_name")]
        pub event_name: Option<String>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub(super) struct KeyValue {
        pub key: String,
        pub value: Option<AnyValue>,
    }

    #[derive(Deserialize, Default)]
    #[serde(default)]
    pub(super) struct AnyValue {
        #[serde(rename = "stringValue", alias = "string_value")]
        pub string_value: Option<String>,
        #[serde(rename = "boolValue", alias = "bool_value")]
        pub bool_value: Option<bool>,
        #[serde(rename = "intValue", alias = "int_value")]
        pub int_value: Option<Int64>,
        #[serde(rename = "doubleValue", alias = "double_value")]
        pub double_value: Option<Double>,
        #[serde(rename = "arrayValue", alias = "array_value")]
        pub array_value: Option<Values<AnyValue>>,
        #[serde(rename = "kvlistValue", alias = "kvlist_value")]
        pub kvlist_value: Option<Values<KeyValue>>,
        #[serde(rename = "bytesValue", alias = "bytes_value")]
        pub bytes_value: Option<String>,
    }

    #[derive(Deserialize)]
    pub(super) struct Values<T> {
        #[serde(default = "Vec::new")]
        pub values: Vec<T>,
    }

    /// A 64-bit integer written as a JSON number or a decimal string.
    #[derive(Default, Clone, Copy)]
    pub(super) struct Int64(pub i128);

    impl<'de> Deserialize<'de> for Int64 {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Int64, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Int64;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an integer or a decimal string")
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Int64, E> {
                    Ok(Int64(v.into()))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Int64, E> {
                    Ok(Int64(v.into()))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Int64, E> {
                    v.trim().parse().map(Int64).map_err(E::custom)
                }
                fn visit_unit<E: de::Error>(self) -> Result<Int64, E> {
                    Ok(Int64(0))
                }
            }
            d.deserialize_any(V)
        }
    }

    /// A double written as a JSON number or a string (`"NaN"`, `"Infinity"`, `"1.5"`).
    #[derive(Default, Clone, Copy)]
    pub(super) struct Double(pub f64);

    impl<'de> Deserialize<'de> for Double {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Double, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Double;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a number")
                }
                fn visit_f64<E: de::Error>(self, v: f64) -> Result<Double, E> {
                    Ok(Double(v))
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Double, E> {
                    Ok(Double(v as f64))
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Double, E> {
                    Ok(Double(v as f64))
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Double, E> {
                    v.trim().parse().map(Double).map_err(E::custom)
                }
            }
            d.deserialize_any(V)
        }
    }

    /// `severityNumber`: a number, or the enum's name (`SEVERITY_NUMBER_WARN`).
    #[derive(Default, Clone, Copy)]
    pub(super) struct Severity(pub i32);

    impl<'de> Deserialize<'de> for Severity {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Severity, D::Error> {
            struct V;
            impl Visitor<'_> for V {
                type Value = Severity;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("a severity number or SEVERITY_NUMBER_* name")
                }
                fn visit_i64<E: de::Error>(self, v: i64) -> Result<Severity, E> {
                    i32::try_from(v).map(Severity).map_err(E::custom)
                }
                fn visit_u64<E: de::Error>(self, v: u64) -> Result<Severity, E> {
                    i32::try_from(v).map(Severity).map_err(E::custom)
                }
                fn visit_str<E: de::Error>(self, v: &str) -> Result<Severity, E> {
                    super::severity_name(v)
                        .map(Severity)
                        .ok_or_else(|| E::custom(format!("unknown severityNumber {v:?}")))
                }
                fn visit_unit<E: de::Error>(self) -> Result<Severity, E> {
                    Ok(Severity(0))
                }
            }
            d.deserialize_any(V)
        }
    }
}

/// The number of a `SEVERITY_NUMBER_*` name (or of a number written as a string).
pub(super) fn severity_name(name: &str) -> Option<i32> {
    let Some(rest) = name.strip_prefix("SEVERITY_NUMBER_") else {
        return name.trim().parse().ok();
    };
    let (base, nth) = rest.split_at(
        rest.find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len()),
    );
    let first = match base {
        "UNSPECIFIED" => return Some(0),
        "TRACE" => 1,
        "DEBUG" => 5,
        "INFO" => 9,
        "WARN" => 13,
        "ERROR" => 17,
        "FATAL" => 21,
        _ => return None,
    };
    let nth: i32 = if nth.is_empty() { 1 } else { nth.parse().ok()? };
    Some(first + nth.clamp(1, 4) - 1)
}

fn json_any(v: wire::AnyValue) -> Result<Option<common::AnyValue>, String> {
    use common::any_value::Value as V;
    let value = if let Some(s) = v.string_value {
        V::StringValue(s)
    } else if let Some(b) = v.bool_value {
        V::BoolValue(b)
    } else if let Some(i) = v.int_value {
        V::IntValue(i64::try_from(i.0).map_err(|_| "intValue is out of range")?)
    } else if let Some(d) = v.double_value {
        V::DoubleValue(d.0)
    } else if let Some(a) = v.array_value {
        V::ArrayValue(common::ArrayValue {
            values: a
                .values
                .into_iter()
                .map(|v| json_any(v).map(Option::unwrap_or_default))
                .collect::<Result<_, _>>()?,
        })
    } else if let Some(kv) = v.kvlist_value {
        V::KvlistValue(common::KeyValueList {
            values: json_key_values(kv.values)?,
        })
    } else if let Some(b) = v.bytes_value {
        V::BytesValue(
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|_| "bytesValue must be base64")?,
        )
    } else {
        return Ok(None);
    };
    Ok(Some(common::AnyValue { value: Some(value) }))
}

fn json_key_values(kvs: Vec<wire::KeyValue>) -> Result<Vec<common::KeyValue>, String> {
    kvs.into_iter()
        .map(|kv| {
            Ok(common::KeyValue {
                key: kv.key,
                value: match kv.value {
                    Some(v) => json_any(v)?,
                    None => None,
                },
                ..Default::default()
            })
        })
        .collect()
}

fn hex_id(id: Option<String>, name: &str) -> Result<Vec<u8>, String> {
    match id {
        None => Ok(Vec::new()),
        Some(s) => hex::decode(s.trim()).map_err(|_| format!("{name} must be hex")),
    }
}

fn nanos(v: wire::Int64, name: &str) -> Result<u64, String> {
    u64::try_from(v.0).map_err(|_| format!("{name} is out of range"))
}

/// Reads OTLP/JSON into the protobuf types.
pub(super) fn from_json(body: &[u8]) -> Result<col::ExportLogsServiceRequest, String> {
    let req: wire::Request = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut out = col::ExportLogsServiceRequest::default();
    for rl in req.resource_logs {
        let resource = match rl.resource {
            Some(r) => Some(crate::protocols::proto::otlp_resource::Resource {
                attributes: json_key_values(r.attributes)?,
                ..Default::default()
            }),
            None => None,
        };
        let mut scope_logs = Vec::with_capacity(rl.scope_logs.len());
        for sl in rl.scope_logs {
            let scope = sl.scope.map(|s| common::InstrumentationScope {
                name: s.name,
                version: s.version,
                ..Default::default()
            });
            let mut log_records = Vec::with_capacity(sl.log_records.len());
            for lr in sl.log_records {
                log_records.push(logs::LogRecord {
                    time_unix_nano: nanos(lr.time_unix_nano, "timeUnixNano")?,
                    observed_time_unix_nano: nanos(
                        lr.observed_time_unix_nano,
                        "observedTimeUnixNano",
                    )?,
                    severity_number: lr.severity_number.0,
                    severity_text: lr.severity_text.unwrap_or_default(),
                    body: match lr.body {
                        Some(b) => json_any(b)?,
                        None => None,
                    },
                    attributes: json_key_values(lr.attributes)?,
                    trace_id: hex_id(lr.trace_id, "traceId")?,
                    span_id: hex_id(lr.span_id, "spanId")?,
                    event_name: lr.event_name.unwrap_or_default(),
                    ..Default::default()
                });
            }
            scope_logs.push(logs::ScopeLogs {
                scope,
                log_records,
                ..Default::default()
            });
        }
        out.resource_logs.push(logs::ResourceLogs {
            resource,
            scope_logs,
            ..Default::default()
        });
    }
    Ok(out)
}
