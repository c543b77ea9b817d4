//! TLS to NATS (`tls://`) and Redis (`rediss://`): the pipeline works end to end over encrypted
//! connections, trusting a private CA given the standard way (`SSL_CERT_FILE`).
//!
//! Its own test binary, because it sets `SSL_CERT_FILE` for the whole process.

// The system tests and their tools: an unwrap here is an assertion (the workspace denies it in services).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use logjet_tests::platform;
use logjet_tests::servers::{free_port, nats_server_bin, redis_server_bin};

fn openssl(dir: &Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl runs")
        .success();
    assert!(ok, "openssl {args:?}");
}

/// A private CA and a server certificate for 127.0.0.1, signed by it.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=logjet test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
}

async fn wait_tcp(port: u16) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing listens on {port}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pipeline_runs_over_tls_to_nats_and_redis() {
    logjet_tests::init_logging();
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let file = |n: &str| dir.path().join(n).display().to_string();
    // std::env::set_var is unsafe in edition 2024; a test sets it before its threads start.
    #[allow(unsafe_code)]
    // SAFETY: set once, before any thread of this test binary reads the environment for TLS.
    unsafe {
        std::env::set_var("SSL_CERT_FILE", file("ca.pem"))
    };

    let nats_port = free_port();
    let _nats = tokio::process::Command::new(nats_server_bin())
        .args([
            "-a",
            "127.0.0.1",
            "-p",
            &nats_port.to_string(),
            "-js",
            "-sd",
            &file("js"),
        ])
        .args([
            "--tls",
            "--tlscert",
            &file("server.pem"),
            "--tlskey",
            &file("server.key"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let redis_port = free_port();
    let _redis = tokio::process::Command::new(redis_server_bin())
        .args([
            "--port",
            "0",
            "--tls-port",
            &redis_port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ])
        .args([
            "--tls-cert-file",
            &file("server.pem"),
            "--tls-key-file",
            &file("server.key"),
        ])
        .args([
            "--tls-ca-cert-file",
            &file("ca.pem"),
            "--tls-auth-clients",
            "no",
            "--dir",
            &file(""),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_tcp(nats_port).await;
    wait_tcp(redis_port).await;

    let nats = format!("tls://127.0.0.1:{nats_port}");
    let redis = format!("rediss://127.0.0.1:{redis_port}");
    let ingest = platform::start_ingest(platform::ingest_config(&nats)).await;
    let processor = platform::start_processor(platform::processor_config(&nats, &redis)).await;
    let query = platform::start_query(platform::query_config(&nats, &redis)).await;
    let http = logjet_tests::http_client();
    for svc in [&ingest, &processor, &query] {
        let mut ready = false;
        for _ in 0..200 {
            if http
                .get(format!("{}/readyz", svc.url()))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                ready = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(ready, "{} not ready over TLS", svc.url());
    }
    let r = http
        .post(format!("{}/logs", ingest.url()))
        .header("content-type", "text/plain")
        .body("ERROR over tls one\nover tls two\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let mut total = 0;
    for _ in 0..100 {
        let s: serde_json::Value = http
            .get(format!("{}/stats/summary", query.url()))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        total = s["total"].as_u64().unwrap();
        if total == 2 {
            assert_eq!(s["by_level"]["error"], 1);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(total, 2, "events did not make it through TLS");
}
