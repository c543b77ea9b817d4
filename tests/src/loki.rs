//! Reading answers of logjet's Loki API in the system tests.

use serde_json::Value;

/// `labels → [(seconds, value)]` of a matrix result.
pub fn matrix(body: &Value) -> Vec<(Value, Vec<(i64, f64)>)> {
    assert_eq!(body["data"]["resultType"], "matrix", "{body}");
    body["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let pts = s["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p[0].as_i64().expect("whole-second sample times"),
                        p[1].as_str()
                            .expect("values are strings")
                            .parse::<f64>()
                            .unwrap(),
                    )
                })
                .collect();
            (s["metric"].clone(), pts)
        })
        .collect()
}
