//! A W3C `traceparent` on an ingest request travels in the NATS message headers and shows up in
//! the processor's structured (JSON) log line for the batch that applied it.
//!
//! This file is its own test binary, so it can install a JSON subscriber that captures every log
//! line of the services running in-process.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logjet_tests::platform::Platform;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn traceparent_reaches_the_processor_logs() {
    let logs = Captured::default();
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(EnvFilter::new("warn,logjet_processor=info"))
        .with_writer(logs.clone())
        .init();
    let p = Platform::start(1).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = p
        .http
        .post(format!("{}/logs", p.ingest_url()))
        .header("content-type", "application/json")
        .header("traceparent", tp)
        .body(r#"{"service":"checkout","message":"traced"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    p.wait_for_total(1, Duration::from_secs(10)).await;

    // In the stream: the header is on the message.
    let js = async_nats::jetstream::new(p.nats_client().await);
    let stream = js.get_stream("LOGS").await.unwrap();
    let msg = stream.get_raw_message(1).await.unwrap();
    assert_eq!(msg.headers.get("traceparent").map(|v| v.as_str()), Some(tp));

    // In the processor's log: a JSON line for the batch, carrying the trace context.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        let line = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| {
                v["message"] == "batch applied"
                    && v["traceparent"].as_str().is_some_and(|t| t.contains(tp))
            });
        if let Some(line) = line {
            assert_eq!(line["target"], "logjet_processor::consume");
            assert_eq!(line["level"], "INFO");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no processor log line with the traceparent:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
