//! The LogQL parser never panics; a parsed log query compiles or is refused, and runs over an
//! event without panicking; a parsed metric query evaluates over a few steps, and where the
//! per-minute counters could answer it their series is computed too.
#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use logjet_query::loki::counts::CounterPlan;
use logjet_query::loki::eval::{RangeInput, Steps, eval};
use logjet_query::loki::logql::{Expr, parse};
use logjet_query::loki::pipeline::CompiledLog;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let ev = logjet_core::LogEvent {
        ts: chrono::DateTime::from_timestamp(60, 0).unwrap(),
        service: "api".into(),
        level: logjet_core::Level::Error,
        message: "method=GET status=503 took=12 {\"a\":1}".into(),
        fields: [("http.status".to_string(), logjet_core::FieldValue::Int(503))].into(),
        trace_id: None,
        host: None,
    };
    match parse(text) {
        Ok(Expr::Log(l)) => {
            if let Ok(c) = CompiledLog::compile(&l, &["region".into()]) {
                let _ = c.process(&ev);
            }
        }
        Ok(Expr::Metric(m)) => {
            let steps = Steps(vec![0, 60_000_000_000, 120_000_000_000]);
            let mut inputs = Vec::new();
            for (func, l, range) in m.range_inputs() {
                let Ok(c) = CompiledLog::compile(l, &[]) else {
                    return;
                };
                // Where the counters could answer, both ways: the scan's input goes to eval.
                if let Some(plan) = CounterPlan::new(func, &c, range, &steps.0) {
                    let minutes = plan.minutes(&steps.0);
                    let hashes: Vec<HashMap<String, u64>> = minutes
                        .iter()
                        .map(|_| [("api|error".to_string(), 3)].into())
                        .collect();
                    let _ = plan.series(&steps.0, &minutes, &hashes);
                }
                inputs.push(RangeInput::Entries(c.process(&ev).into_iter().collect()));
            }
            let _ = eval(&m, &steps, &mut inputs.into_iter());
        }
        Err(_) => {}
    }
});
