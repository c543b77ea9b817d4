//! The OpenAPI documents of ingest and query, fuzzed by schemathesis against the live services:
//! no 5xx, and every response conforms to the documented status codes, content types and schemas.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

use logjet_tests::platform::Platform;

fn schemathesis() -> PathBuf {
    if let Ok(p) = std::env::var("LOGJET_TEST_SCHEMATHESIS") {
        return PathBuf::from(p);
    }
    let p = logjet_tests::tools::tool_bin("schemathesis", "schemathesis");
    assert!(
        p.exists(),
        "schemathesis not installed: run ./scripts/test.sh (it installs it once per machine, see tests/src/tools.rs)"
    );
    p
}

fn fuzz(base: &str, extra: &[&str]) {
    // Its example database and crash cache go to a throwaway directory, so every run is fresh.
    let scratch = tempfile::tempdir().expect("temp dir");
    let out = Command::new(schemathesis())
        .current_dir(scratch.path())
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--url", base])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"])
        .args(["--max-examples", "60", "--seed", "7", "--workers", "2", "--no-color", "--request-timeout", "10"])
        .args(["--suppress-health-check", "all"])
        .args(extra)
        .output()
        .expect("schemathesis runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "schemathesis found problems against {base}:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ingest_and_query_survive_a_property_based_api_fuzzer() {
    let p = Platform::start(1).await;
    // Something to find, so successful responses have content to check against the schema.
    p.post("application/x-ndjson", "{\"service\":\"api\",\"level\":\"error\",\"message\":\"boom 1\"}\n{\"service\":\"web\",\"message\":\"GET / 200\"}\n").await;
    let ingest = p.ingest_url();
    let query = p.query_url();
    tokio::task::spawn_blocking(move || {
        fuzz(&ingest, &[]);
        // The live tail is an endless stream: it has its own tests.
        fuzz(&query, &["--exclude-path", "/logs/tail"]);
    })
    .await
    .unwrap();
}
