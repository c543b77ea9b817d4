//! KEDA's arithmetic against a live nats-server configured like the StatefulSet.

use std::time::Duration;

use logjet_core::config::ProcessorConfig;
use logjet_tests::k8s::KIND_OVERLAY;
use logjet_tests::k8s::keda::ScaledObject;
use logjet_tests::k8s::nats_conf::{LocalNats, localize};

use super::credentials::url_credentials;
use super::{env_of, render};

/// What KEDA's nats-jetstream scaler reads: `/jsz?acc=<account>&consumers=true&config=true`, the
/// account, the stream, the consumer, and `num_pending + num_ack_pending` (the stream's last
/// sequence when the consumer is missing).
async fn keda_lag(monitor: &str, account: &str, stream: &str, consumer: &str) -> u64 {
    let url = format!("{monitor}/jsz?acc={account}&consumers=true&config=true");
    let v: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    for acc in v["account_details"].as_array().into_iter().flatten() {
        if acc["name"] != account {
            continue;
        }
        for st in acc["stream_detail"].as_array().into_iter().flatten() {
            if st["name"] != stream {
                continue;
            }
            for c in st["consumer_detail"].as_array().into_iter().flatten() {
                if c["name"] == consumer {
                    return c["num_pending"].as_u64().unwrap()
                        + c["num_ack_pending"].as_u64().unwrap();
                }
            }
            return st["state"]["last_seq"].as_u64().unwrap();
        }
    }
    panic!("stream {stream} not in {url}: {v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_would_scale_the_processor_by_lag_as_configured() {
    // Before any HTTP client (an archive-enabled build: `archive::install_tls_provider`).
    logjet_core::archive::install_tls_provider();
    let m = render(KIND_OVERLAY);
    let so = ScaledObject::of(m.find("ScaledObject", "processor").unwrap()).unwrap();
    let trigger = so.trigger("nats-jetstream").unwrap();
    let meta = |k: &str| trigger.metadata[k].clone();

    // nats-server with the StatefulSet's own config file, ports and paths made local, and the
    // StatefulSet's environment: the users' passwords from the development Secrets.
    let dir = tempfile::tempdir().unwrap();
    let (port, mport) = (
        logjet_tests::servers::free_port(),
        logjet_tests::servers::free_port(),
    );
    let conf = localize(
        m.config_file("nats.conf").unwrap(),
        &LocalNats {
            client_port: port,
            monitor_port: mport,
            pid_file: &dir.path().join("nats.pid"),
            store_dir: dir.path(),
        },
    );
    let conf_path = dir.path().join("nats.conf");
    std::fs::write(&conf_path, conf).unwrap();
    // Included by nats.conf: the users and their permissions.
    std::fs::write(
        dir.path().join("nats-auth.conf"),
        m.config_file("nats-auth.conf").unwrap(),
    )
    .unwrap();
    let mut server = tokio::process::Command::new(logjet_tests::servers::nats_server_bin());
    server.arg("--config").arg(&conf_path);
    for (k, v) in env_of(&m, "nats", Some("nats")).values() {
        if k.starts_with("NATS_") || k == "POD_NAME" {
            server.env(k, v);
        }
    }
    let mut child = server.kill_on_drop(true).spawn().unwrap();
    let monitor = format!("http://127.0.0.1:{mport}");
    for _ in 0..200 {
        if reqwest::get(format!("{monitor}/healthz"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let varz: serde_json::Value = reqwest::get(format!("{monitor}/varz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(varz["server_name"], "nats-0", "server_name is the pod name");

    // The stream and the consumer exactly as the processor creates them, with the processor's
    // configuration from the manifests: its LOGJET_NATS_URL (user processor, password from the
    // Secret) with the host made local.
    let env: Vec<(String, String)> = env_of(&m, "processor", None)
        .values()
        .into_iter()
        .map(|(k, v)| (k, v.replace("@nats:4222", &format!("@127.0.0.1:{port}"))))
        .collect();
    let pcfg: ProcessorConfig =
        logjet_core::config::load_from(None, env).expect("the manifest's config loads");
    assert!(
        pcfg.nats_url.starts_with("nats://processor:"),
        "{}",
        logjet_core::config::redact_url(&pcfg.nats_url)
    );
    // The user and password of the URL, given to the client explicitly (async-nats 0.51 does not
    // read credentials embedded in a URL).
    let (user, pass, _) = url_credentials(&pcfg.nats_url);
    let plain = format!("nats://127.0.0.1:{port}");
    // Without credentials, or with a wrong password, the server refuses.
    assert!(
        async_nats::connect(&plain).await.is_err(),
        "NATS accepted a client without credentials"
    );
    assert!(
        async_nats::ConnectOptions::with_user_and_password(user.clone(), "wrong-password".into())
            .connect(&plain)
            .await
            .is_err(),
        "NATS accepted a wrong password"
    );
    // Its replies on its own inbox prefix, the only one its permissions allow (nats-auth.conf).
    let client = async_nats::ConnectOptions::with_user_and_password(user.clone(), pass)
        .custom_inbox_prefix(logjet_core::jetstream::inbox_prefix(&user))
        .connect(&plain)
        .await
        .expect("the processor's NATS user and password from the manifests");
    let js = logjet_core::jetstream::context(client.clone(), Duration::from_secs(5));
    logjet_core::jetstream::ensure_stream(
        &js,
        logjet_core::jetstream::logs_stream_config(&pcfg.stream),
    )
    .await
    .unwrap();
    let mut consumer = logjet_core::jetstream::ensure_processor_consumer(&js, &pcfg)
        .await
        .unwrap();

    let mut published = 0u64;
    for (target_lag, want) in [(5u64, so.min), (3_500, 4), (25_000, so.max)] {
        while published < target_lag {
            js.publish("logs.keda", "unprocessed".into())
                .await
                .unwrap()
                .await
                .unwrap();
            published += 1;
        }
        let lag = keda_lag(
            &monitor,
            &meta("account"),
            &meta("stream"),
            &meta("consumer"),
        )
        .await;
        let info = consumer.info().await.unwrap();
        assert_eq!(
            lag,
            info.num_pending + info.num_ack_pending as u64,
            "KEDA and the consumer agree"
        );
        assert_eq!(lag, target_lag);
        assert_eq!(so.replicas_for_lag(lag).unwrap(), want, "lag {lag}");
    }
    // In-flight messages count too: a replica holding a batch is still lag.
    let batch = consumer.fetch().max_messages(100).messages().await.unwrap();
    let held: Vec<_> = futures::StreamExt::collect::<Vec<_>>(batch).await;
    assert_eq!(held.len(), 100);
    let lag = keda_lag(&monitor, "LOGJET", "LOGS", "processor").await;
    assert_eq!(
        lag, 25_000,
        "num_pending fell by 100, num_ack_pending rose by 100"
    );
    let _ = child.kill().await;
}
