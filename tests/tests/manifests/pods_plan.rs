//! The plan scripts/k8s-pods-test.sh runs under podman (`logjet-k8s plan-pods`), checked
//! without podman: each Deployment's pod spec as container options, and the local servers.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use logjet_tests::k8s::KIND_OVERLAY;
use logjet_tests::k8s::pods::{LocalPorts, Plan};

use super::render;

fn window<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
    args.windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].as_str())
        .collect()
}

#[test]
fn the_pods_run_as_declared_against_local_servers() {
    let m = render(KIND_OVERLAY);
    let work = tempfile::tempdir().unwrap();
    let services: Vec<String> = ["ingest", "processor", "query", "dashboard"]
        .map(String::from)
        .into();
    let ports: LocalPorts = [("nats", 41001), ("nats-monitor", 41002), ("redis", 41003)]
        .into_iter()
        .chain(
            services
                .iter()
                .enumerate()
                .map(|(i, s)| (s.as_str(), 42000 + i as u16)),
        )
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let plan = Plan::new(&m, work.path(), ports, "t", &services).unwrap();
    plan.write(work.path()).unwrap();

    let ingest = plan.pods.iter().find(|p| p.service == "ingest").unwrap();
    let a = &ingest.args;
    assert_eq!(window(a, "--user"), ["65532:65532"]);
    assert_eq!(window(a, "--group-add"), ["65532"]);
    assert_eq!(window(a, "--cap-drop"), ["ALL"]);
    assert!(a.iter().any(|x| x == "--read-only"));
    assert_eq!(window(a, "--security-opt"), ["no-new-privileges"]);
    assert_eq!(
        window(a, "--memory"),
        ["268435456"],
        "the kind overlay's 256Mi"
    );
    assert_eq!(window(a, "--cpus"), ["0.5"]);
    assert_eq!(window(a, "--tmpfs"), ["/tmp:rw,mode=1777,size=16777216"]);
    assert_eq!(
        a.last().map(String::as_str),
        Some("logjet/ingest:dev"),
        "the image last, no args"
    );
    assert_eq!(ingest.env["LOGJET_LISTEN"], "127.0.0.1:42000");
    let nats_url = &ingest.env["LOGJET_NATS_URL"];
    assert!(
        nats_url.starts_with("nats://ingest:") && nats_url.ends_with("@127.0.0.1:41001"),
        "{nats_url}"
    );
    assert_eq!(ingest.ready_url, "http://127.0.0.1:42000/readyz");
    assert_eq!(ingest.live_url, "http://127.0.0.1:42000/healthz");
    assert_eq!(ingest.budget_seconds, 60, "startupProbe 30 x 2 s");

    // The keys file as the Secret volume gives it: mode 0440, group fsGroup, mounted read-only.
    let volume = window(a, "--volume")[0];
    assert!(volume.ends_with(":/etc/logjet/auth:ro"), "{volume}");
    let keys = work.path().join("pods/ingest/vol/api-keys/api-keys");
    let meta = std::fs::metadata(&keys).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o440);
    assert_eq!(meta.gid(), 65532);

    let dashboard = plan.pods.iter().find(|p| p.service == "dashboard").unwrap();
    assert_eq!(
        dashboard.env["LOGJET_QUERY_URL"], "http://127.0.0.1:42002",
        "query's local port"
    );
    assert!(
        !dashboard.env.contains_key("LOGJET_QUERY_API_KEY"),
        "users sign in with their own keys"
    );

    let nats = plan.servers.iter().find(|s| s.name == "nats").unwrap();
    assert_eq!(nats.args[0], "--config");
    let conf = std::fs::read_to_string(&nats.args[1]).unwrap();
    assert!(
        conf.contains("listen: 127.0.0.1:41001") && conf.contains("http: 127.0.0.1:41002"),
        "{conf}"
    );
    assert!(nats.env["NATS_INGEST_PASSWORD"].len() >= 16);
    assert_eq!(nats.env["POD_NAME"], "nats-0");
    let redis = plan.servers.iter().find(|s| s.name == "redis").unwrap();
    let at = redis
        .args
        .iter()
        .position(|x| x == "--requirepass")
        .unwrap();
    assert!(!redis.args[at + 1].contains("$("), "requirepass expanded");
    let conf = std::fs::read_to_string(&redis.args[0]).unwrap();
    assert!(
        conf.contains("port 41003") && conf.contains("bind 127.0.0.1"),
        "{conf}"
    );

    // What the shell reads.
    let ports = std::fs::read_to_string(work.path().join("ports")).unwrap();
    assert!(ports.lines().any(|l| l == "nats 41001"), "{ports}");
    let env_file = std::fs::read_to_string(work.path().join("pods/ingest/env")).unwrap();
    assert!(
        env_file
            .lines()
            .any(|l| l == "LOGJET_LISTEN=127.0.0.1:42000")
    );
}
