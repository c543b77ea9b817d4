//! Kubernetes resource quantities (`512Mi`, `500m`, `"1"`).

use serde_json::Value;

use super::{ModelError, Result};

const SUFFIXES: [(&str, f64); 13] = [
    ("Ki", 1024.0),
    ("Mi", 1024.0 * 1024.0),
    ("Gi", 1024.0 * 1024.0 * 1024.0),
    ("Ti", 1024.0 * 1024.0 * 1024.0 * 1024.0),
    ("Pi", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
    ("Ei", 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0),
    ("k", 1e3),
    ("M", 1e6),
    ("G", 1e9),
    ("T", 1e12),
    ("P", 1e15),
    ("E", 1e18),
    ("m", 1e-3),
];

/// A quantity's value: bytes for memory, cores for CPU.
pub fn parse(q: &Value) -> Result<f64> {
    let text = match q {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        other => return Err(ModelError::invalid("quantity", format!("{other}"))),
    };
    let (number, factor) = SUFFIXES
        .iter()
        .find_map(|(s, f)| text.strip_suffix(s).map(|n| (n, *f)))
        .unwrap_or((text.as_str(), 1.0));
    number
        .parse::<f64>()
        .map(|n| n * factor)
        .map_err(|_| ModelError::invalid("quantity", format!("{text:?}")))
}

/// A number as podman takes it: no fraction when there is none (`1`, `0.5`).
pub fn plain(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{}", x as i64)
    } else {
        format!("{x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn memory_and_cpu() {
        assert_eq!(parse(&json!("512Mi")).unwrap(), 536_870_912.0);
        assert_eq!(parse(&json!("16Mi")).unwrap(), 16_777_216.0);
        assert_eq!(parse(&json!("1G")).unwrap(), 1e9);
        assert_eq!(parse(&json!("500m")).unwrap(), 0.5);
        assert_eq!(parse(&json!("1")).unwrap(), 1.0);
        assert_eq!(parse(&json!(2)).unwrap(), 2.0);
        assert!(parse(&json!("lots")).is_err());
        assert_eq!(plain(0.5), "0.5");
        assert_eq!(plain(2.0), "2");
    }
}
