//! The Kubernetes manifests against the code, offline: `kubectl kustomize` renders every overlay
//! and these tests fail on any drift between what the manifests declare and what the services
//! do (ports, probe paths, config keys, stream/consumer names, scaling, network edges, PDBs), and
//! check KEDA's lag arithmetic against a live nats-server configured like the StatefulSet.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use logjet_core::config::{
    IngestConfig, ProcessorConfig, QueryConfig, ServiceConfig, known_env_vars,
};
use serde_yaml_ng::Value;

const NS: &str = "log-analytics";
const OVERLAYS: [&str; 2] = ["kustomize/overlays/kind", "kustomize/overlays/prod"];

fn render(overlay: &str) -> Vec<Value> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new("kubectl")
        .args(["kustomize", &format!("{root}/{overlay}")])
        .output()
        .expect("kubectl runs (it is preinstalled on this kind of machine)");
    assert!(
        out.status.success(),
        "{overlay} does not render: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml_ng::Deserializer::from_slice(&out.stdout)
        .map(|d| <Value as serde::Deserialize>::deserialize(d).expect("valid YAML"))
        .filter(|v| !v.is_null())
        .collect()
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn kind(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or("")
}

fn name(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or("")
}

fn of_kind<'a>(docs: &'a [Value], k: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == k).collect()
}

fn find<'a>(docs: &'a [Value], k: &str, n: &str) -> &'a Value {
    docs.iter()
        .find(|d| kind(d) == k && name(d) == n)
        .unwrap_or_else(|| panic!("{k}/{n} missing"))
}

/// Every environment variable a workload's first container gets: envFrom ConfigMaps, then env.
fn container_env(docs: &[Value], workload: &Value) -> BTreeMap<String, String> {
    let c = &workload["spec"]["template"]["spec"]["containers"][0];
    let mut env = BTreeMap::new();
    for from in c["envFrom"].as_sequence().into_iter().flatten() {
        if let Some(cm) = from["configMapRef"]["name"].as_str() {
            let cm = find(docs, "ConfigMap", cm);
            for (k, v) in cm["data"].as_mapping().into_iter().flatten() {
                env.insert(
                    k.as_str().unwrap().to_string(),
                    v.as_str().unwrap_or("").to_string(),
                );
            }
        }
    }
    for e in c["env"].as_sequence().into_iter().flatten() {
        env.insert(
            e["name"].as_str().unwrap().to_string(),
            e["value"].as_str().unwrap_or("").to_string(),
        );
    }
    env
}

fn container_ports(workload: &Value) -> BTreeMap<String, u16> {
    workload["spec"]["template"]["spec"]["containers"]
        .as_sequence()
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_sequence().into_iter().flatten())
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_string(),
                p["containerPort"].as_u64().unwrap() as u16,
            )
        })
        .collect()
}

/// Defaults (port) and known variables of each of our services' config.
fn service_contract(service: &str) -> Option<(u16, Vec<String>)> {
    fn of<T: ServiceConfig>(port: u16) -> (u16, Vec<String>) {
        (port, known_env_vars::<T>())
    }
    Some(match service {
        "ingest" => of::<IngestConfig>(IngestConfig::default().listen.port()),
        "processor" => of::<ProcessorConfig>(ProcessorConfig::default().listen.port()),
        "query" => of::<QueryConfig>(QueryConfig::default().listen.port()),
        _ => return None,
    })
}

#[test]
fn ports_probes_and_env_match_the_code() {
    for overlay in OVERLAYS {
        let docs = render(overlay);
        for d in of_kind(&docs, "Deployment") {
            let svc = name(d);
            let env = container_env(&docs, d);
            let ports = container_ports(d);
            let listen = env
                .get("LOGJET_LISTEN")
                .unwrap_or_else(|| panic!("{overlay}: {svc} has no LOGJET_LISTEN"));
            let listen_port: u16 = listen.rsplit(':').next().unwrap().parse().unwrap();
            assert!(
                ports.values().any(|p| *p == listen_port),
                "{overlay}: {svc} listens on {listen_port} but declares {ports:?}"
            );
            if let Some((default_port, known)) = service_contract(svc) {
                assert_eq!(
                    listen_port, default_port,
                    "{overlay}: {svc}'s port differs from the code's default"
                );
                for var in env.keys().filter(|k| k.starts_with("LOGJET_")) {
                    assert!(
                        known.contains(var),
                        "{overlay}: {svc} sets {var}, which its config does not know"
                    );
                }
            }
            let c = &d["spec"]["template"]["spec"]["containers"][0];
            for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
                let get = s(c, &[probe, "httpGet"])
                    .unwrap_or_else(|| panic!("{overlay}: {svc} has no {probe}"));
                let path = get["path"].as_str().unwrap();
                let want = if probe == "readinessProbe" {
                    "/readyz"
                } else {
                    "/healthz"
                };
                assert_eq!(path, want, "{overlay}: {svc} {probe}");
                let port = match &get["port"] {
                    Value::Number(n) => n.as_u64().unwrap() as u16,
                    Value::String(named) => ports[named],
                    other => panic!("{svc}: probe port {other:?}"),
                };
                assert_eq!(port, listen_port, "{overlay}: {svc} {probe} port");
            }
            // The Service in front of it targets the same port.
            let service = find(&docs, "Service", svc);
            for p in service["spec"]["ports"].as_sequence().unwrap() {
                let target = match &p["targetPort"] {
                    Value::Number(n) => n.as_u64().unwrap() as u16,
                    Value::String(named) => ports[named],
                    _ => p["port"].as_u64().unwrap() as u16,
                };
                assert_eq!(target, listen_port, "{overlay}: Service {svc}");
            }
        }
    }
}

/// The probe paths the manifests declare are routes the services answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_paths_are_real_routes() {
    let p = logjet_tests::platform::Platform::start(1).await;
    for base in [p.ingest_url(), p.query_url(), p.processors[0].url()] {
        for path in ["/healthz", "/readyz", "/metrics"] {
            let r = p.http.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(r.status(), 200, "{base}{path}");
        }
    }
}

#[test]
fn scaling_is_keda_for_the_processor_and_hpa_for_the_rest() {
    for overlay in OVERLAYS {
        let docs = render(overlay);
        let sos = of_kind(&docs, "ScaledObject");
        assert_eq!(sos.len(), 1, "{overlay}: exactly one ScaledObject");
        let so = sos[0];
        assert_eq!(so["spec"]["scaleTargetRef"]["name"], "processor");
        let triggers = so["spec"]["triggers"].as_sequence().unwrap();
        let types: BTreeSet<&str> = triggers
            .iter()
            .map(|t| t["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            BTreeSet::from(["nats-jetstream", "cpu"]),
            "{overlay}"
        );
        let nats = triggers
            .iter()
            .find(|t| t["type"] == "nats-jetstream")
            .unwrap();
        let m = &nats["metadata"];
        let pcfg = ProcessorConfig::default();
        let processor = find(&docs, "Deployment", "processor");
        let env = container_env(&docs, processor);
        let stream = env
            .get("LOGJET_STREAM")
            .cloned()
            .unwrap_or(pcfg.stream.stream.clone());
        let consumer = env
            .get("LOGJET_CONSUMER")
            .cloned()
            .unwrap_or(pcfg.consumer.clone());
        assert_eq!(
            m["stream"].as_str(),
            Some(stream.as_str()),
            "{overlay}: stream"
        );
        assert_eq!(
            m["consumer"].as_str(),
            Some(consumer.as_str()),
            "{overlay}: consumer"
        );
        assert_eq!(m["account"].as_str(), Some("$G"), "{overlay}: account");
        assert!(
            m["natsServerMonitoringEndpoint"]
                .as_str()
                .unwrap()
                .ends_with(":8222")
        );
        let lag: u64 = m["lagThreshold"].as_str().unwrap().parse().unwrap();
        let window: u64 = env
            .get("LOGJET_FETCH_BATCH")
            .map_or(pcfg.fetch_batch as u64, |v| v.parse().unwrap());
        assert!(
            lag > window,
            "{overlay}: lagThreshold {lag} must exceed one replica's in-flight window {window}"
        );
        assert!(
            m["activationLagThreshold"].as_str().is_some(),
            "{overlay}: activation threshold"
        );

        for hpa in of_kind(&docs, "HorizontalPodAutoscaler") {
            let target = hpa["spec"]["scaleTargetRef"]["name"].as_str().unwrap();
            assert_ne!(
                target, "processor",
                "{overlay}: an HPA targets the processor beside KEDA"
            );
            assert!(
                ["ingest", "query"].contains(&target),
                "{overlay}: unexpected HPA on {target}"
            );
            assert!(hpa["spec"]["minReplicas"].as_u64().unwrap() >= 2);
            assert!(
                s(
                    hpa,
                    &[
                        "spec",
                        "behavior",
                        "scaleDown",
                        "stabilizationWindowSeconds"
                    ]
                )
                .is_some()
            );
        }
        let hpa_targets: BTreeSet<&str> = of_kind(&docs, "HorizontalPodAutoscaler")
            .iter()
            .map(|h| h["spec"]["scaleTargetRef"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            hpa_targets,
            BTreeSet::from(["ingest", "query"]),
            "{overlay}"
        );
    }
}

/// Fewest replicas a workload can run with.
fn min_replicas(docs: &[Value], workload: &str) -> u64 {
    if let Some(h) = of_kind(docs, "HorizontalPodAutoscaler")
        .into_iter()
        .find(|h| h["spec"]["scaleTargetRef"]["name"] == workload)
    {
        return h["spec"]["minReplicas"].as_u64().unwrap_or(1);
    }
    if let Some(so) = of_kind(docs, "ScaledObject")
        .into_iter()
        .find(|so| so["spec"]["scaleTargetRef"]["name"] == workload)
    {
        return so["spec"]["minReplicaCount"].as_u64().unwrap_or(0);
    }
    docs.iter()
        .find(|d| ["Deployment", "StatefulSet"].contains(&kind(d)) && name(d) == workload)
        .map(|d| d["spec"]["replicas"].as_u64().unwrap_or(1))
        .unwrap_or_else(|| panic!("no workload {workload}"))
}

#[test]
fn pdbs_never_block_every_eviction() {
    for overlay in OVERLAYS {
        let docs = render(overlay);
        let workloads: Vec<&str> = docs
            .iter()
            .filter(|d| ["Deployment", "StatefulSet"].contains(&kind(d)))
            .map(name)
            .collect();
        let pdbs = of_kind(&docs, "PodDisruptionBudget");
        for w in &workloads {
            let pdb = pdbs
                .iter()
                .find(|p| p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == *w);
            let Some(pdb) = pdb else {
                assert_eq!(*w, "redis", "{overlay}: {w} has no PDB");
                continue;
            };
            let min = min_replicas(&docs, w);
            if let Some(ma) = pdb["spec"]["minAvailable"].as_u64() {
                assert!(
                    ma < min.max(1),
                    "{overlay}: PDB {w} minAvailable {ma} blocks evictions at {min} replicas"
                );
            }
            match &pdb["spec"]["maxUnavailable"] {
                Value::Number(n) => assert!(n.as_u64().unwrap() >= 1, "{overlay}: {w}"),
                Value::String(p) => assert!(
                    p.trim_end_matches('%').parse::<u64>().unwrap() > 0,
                    "{overlay}: {w}"
                ),
                Value::Null => assert!(pdb["spec"]["minAvailable"].is_number(), "{overlay}: {w}"),
                other => panic!("{other:?}"),
            }
        }
    }
}

// --- network policies ----------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Peer {
    /// A pod of ours, by its app.kubernetes.io/name.
    Pod(String),
    /// Something in another namespace (by name), or outside the cluster ("").
    Outside(String),
}

fn labels_match(selector: &Value, labels: &BTreeMap<String, String>) -> bool {
    let Some(m) = selector["matchLabels"].as_mapping() else {
        return selector.as_mapping().is_none_or(|m| m.is_empty())
            || selector["matchExpressions"].is_null();
    };
    m.iter()
        .all(|(k, v)| labels.get(k.as_str().unwrap()).map(String::as_str) == v.as_str())
}

fn pod_labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([("app.kubernetes.io/name".to_string(), app.to_string())])
}

/// Whether a NetworkPolicy peer (`from`/`to` entry) matches.
fn peer_matches(entry: &Value, peer: &Peer) -> bool {
    let ns_sel = &entry["namespaceSelector"];
    let pod_sel = &entry["podSelector"];
    match peer {
        Peer::Pod(app) => {
            if !ns_sel.is_null() {
                // Our own namespace, selected by its name label.
                let ns =
                    BTreeMap::from([("kubernetes.io/metadata.name".to_string(), NS.to_string())]);
                return labels_match(ns_sel, &ns)
                    && (pod_sel.is_null() || labels_match(pod_sel, &pod_labels(app)));
            }
            !pod_sel.is_null() && labels_match(pod_sel, &pod_labels(app))
        }
        Peer::Outside(ns) => {
            if ns.is_empty() {
                return !entry["ipBlock"].is_null();
            }
            let l = BTreeMap::from([("kubernetes.io/metadata.name".to_string(), ns.clone())]);
            !ns_sel.is_null() && labels_match(ns_sel, &l)
        }
    }
}

fn rule_allows(rule: &Value, peer_key: &str, peer: &Peer, port: u16) -> bool {
    let ports_ok = rule["ports"].as_sequence().is_none_or(|ps| {
        ps.iter()
            .any(|p| p["port"].as_u64().is_none_or(|n| n == u64::from(port)))
    });
    let peers_ok = rule[peer_key]
        .as_sequence()
        .is_none_or(|ps| ps.iter().any(|e| peer_matches(e, peer)));
    ports_ok && peers_ok
}

/// Whether traffic from `src` to `dst` on `port` is allowed by every policy that applies.
fn allowed(policies: &[&Value], src: &Peer, dst: &Peer, port: u16) -> bool {
    let applies = |p: &Value, who: &Peer, ty: &str| -> bool {
        let Peer::Pod(app) = who else { return false };
        labels_match(&p["spec"]["podSelector"], &pod_labels(app))
            && p["spec"]["policyTypes"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|t| t == ty)
    };
    let egress = {
        let ps: Vec<&&Value> = policies
            .iter()
            .filter(|p| applies(p, src, "Egress"))
            .collect();
        ps.is_empty() && matches!(src, Peer::Outside(_))
            || ps.iter().any(|p| {
                p["spec"]["egress"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .any(|r| rule_allows(r, "to", dst, port))
            })
    };
    let ingress = {
        let ps: Vec<&&Value> = policies
            .iter()
            .filter(|p| applies(p, dst, "Ingress"))
            .collect();
        ps.is_empty() && matches!(dst, Peer::Outside(_))
            || ps.iter().any(|p| {
                p["spec"]["ingress"]
                    .as_sequence()
                    .into_iter()
                    .flatten()
                    .any(|r| rule_allows(r, "from", src, port))
            })
    };
    egress && ingress
}

#[test]
fn network_policies_allow_exactly_the_data_flow() {
    for overlay in OVERLAYS {
        let docs = render(overlay);
        let policies = of_kind(&docs, "NetworkPolicy");
        let workloads: Vec<(&str, Vec<u16>)> = docs
            .iter()
            .filter(|d| ["Deployment", "StatefulSet"].contains(&kind(d)))
            .map(|d| (name(d), container_ports(d).into_values().collect()))
            .collect();
        // Default deny for every pod, both directions.
        for (w, _) in &workloads {
            let denied = policies.iter().any(|p| {
                labels_match(&p["spec"]["podSelector"], &pod_labels(w))
                    && p["spec"]["podSelector"]
                        .as_mapping()
                        .is_none_or(|m| m.is_empty() || m.get("matchLabels").is_none())
                    && p["spec"]["ingress"].is_null()
                    && p["spec"]["egress"].is_null()
                    && p["spec"]["policyTypes"].as_sequence().unwrap().len() == 2
            });
            assert!(denied, "{overlay}: {w} is not under a default-deny policy");
        }
        let sources: Vec<Peer> = workloads
            .iter()
            .map(|(w, _)| Peer::Pod(w.to_string()))
            .chain(["", "keda", "monitoring", "some-app"].map(|n| Peer::Outside(n.to_string())))
            .collect();
        let mut targets: Vec<(Peer, u16)> = workloads
            .iter()
            .flat_map(|(w, ports)| ports.iter().map(move |p| (Peer::Pod(w.to_string()), *p)))
            .collect();
        targets.push((Peer::Outside("kube-system".into()), 53));
        targets.push((Peer::Outside("".into()), 443));

        let pod = |s: &str| Peer::Pod(s.to_string());
        let outside = |s: &str| Peer::Outside(s.to_string());
        let mut expected: BTreeSet<(Peer, Peer, u16)> = BTreeSet::new();
        for src in &sources {
            if let Peer::Outside(_) = src {
                // Clients, from anywhere outside the namespace.
                expected.insert((src.clone(), pod("ingest"), 8000));
                expected.insert((src.clone(), pod("dashboard"), 3000));
            } else {
                // DNS for every pod.
                expected.insert((src.clone(), outside("kube-system"), 53));
            }
        }
        expected.insert((pod("dashboard"), pod("query"), 8001));
        for s in ["ingest", "processor", "query"] {
            expected.insert((pod(s), pod("nats"), 4222));
        }
        for s in ["processor", "query"] {
            expected.insert((pod(s), pod("redis"), 6379));
        }
        expected.insert((outside("keda"), pod("nats"), 8222));
        // NATS cluster routes (the prod overlay runs three servers).
        expected.insert((pod("nats"), pod("nats"), 6222));
        for (svc, port) in [
            ("ingest", 8000),
            ("query", 8001),
            ("processor", 9100),
            ("dashboard", 3000),
            ("nats", 8222),
            // The prometheus-nats-exporter sidecar.
            ("nats", 7777),
        ] {
            expected.insert((outside("monitoring"), pod(svc), port));
        }

        let mut actual = BTreeSet::new();
        for src in &sources {
            for (dst, port) in &targets {
                // Traffic that never touches the namespace is not ours to police.
                let ours = matches!(src, Peer::Pod(_)) || matches!(dst, Peer::Pod(_));
                if ours && allowed(&policies, src, dst, *port) {
                    actual.insert((src.clone(), dst.clone(), *port));
                }
            }
        }
        let unexpected: Vec<_> = actual.difference(&expected).collect();
        let missing: Vec<_> = expected.difference(&actual).collect();
        assert!(
            unexpected.is_empty() && missing.is_empty(),
            "{overlay}:\nallowed but not a data-flow edge: {unexpected:#?}\nmissing edges: {missing:#?}"
        );
    }
}

// --- KEDA's arithmetic against a live nats-server ------------------------------------------

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

/// The replicas the HPA that KEDA creates would want for this lag (AverageValue target).
fn keda_replicas(lag: u64, threshold: u64, activation: u64, min: u64, max: u64) -> u64 {
    let active = lag > activation;
    let wanted = if active { lag.div_ceil(threshold) } else { 0 };
    wanted.clamp(min, max)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keda_would_scale_the_processor_by_lag_as_configured() {
    let docs = render("kustomize/overlays/kind");
    let so = find(&docs, "ScaledObject", "processor");
    let m = &so["spec"]["triggers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|t| t["type"] == "nats-jetstream")
        .unwrap()["metadata"];
    let threshold: u64 = m["lagThreshold"].as_str().unwrap().parse().unwrap();
    let activation: u64 = m["activationLagThreshold"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let min = so["spec"]["minReplicaCount"].as_u64().unwrap();
    let max = so["spec"]["maxReplicaCount"].as_u64().unwrap();

    // nats-server with the StatefulSet's own config file, paths and ports made local.
    let cm = docs
        .iter()
        .find(|d| kind(d) == "ConfigMap" && d["data"]["nats.conf"].is_string())
        .expect("the NATS ConfigMap");
    let conf = cm["data"]["nats.conf"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (port, mport) = (
        logjet_tests::servers::free_port(),
        logjet_tests::servers::free_port(),
    );
    let local: String = conf
        .lines()
        .map(|l| match l.trim_start().split(':').next().unwrap_or("") {
            "listen" => format!("listen: 127.0.0.1:{port}"),
            "http_port" => format!("http_port: {mport}"),
            "pid_file" => format!("pid_file: {}/nats.pid", dir.path().display()),
            "store_dir" => format!("store_dir: {}", dir.path().display()),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let conf_path = dir.path().join("nats.conf");
    std::fs::write(&conf_path, local).unwrap();
    let mut child = tokio::process::Command::new(logjet_tests::servers::nats_server_bin())
        .arg("--config")
        .arg(&conf_path)
        .env("POD_NAME", "nats-0")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
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
    // configuration from the manifests.
    let processor = find(&docs, "Deployment", "processor");
    let mut env: Vec<(String, String)> = container_env(&docs, processor).into_iter().collect();
    env.push(("LOGJET_NATS_URL".into(), format!("nats://127.0.0.1:{port}")));
    let pcfg: ProcessorConfig =
        logjet_core::config::load_from(None, env).expect("the manifest's config loads");
    let client = async_nats::connect(&pcfg.nats_url).await.unwrap();
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
    for (target_lag, want) in [(5u64, min), (3_500, 4), (25_000, max)] {
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
            m["account"].as_str().unwrap(),
            m["stream"].as_str().unwrap(),
            m["consumer"].as_str().unwrap(),
        )
        .await;
        let info = consumer.info().await.unwrap();
        assert_eq!(
            lag,
            info.num_pending + info.num_ack_pending as u64,
            "KEDA and the consumer agree"
        );
        assert_eq!(lag, target_lag);
        assert_eq!(
            keda_replicas(lag, threshold, activation, min, max),
            want,
            "lag {lag}"
        );
    }
    // In-flight messages count too: a replica holding a batch is still lag.
    let batch = consumer.fetch().max_messages(100).messages().await.unwrap();
    let held: Vec<_> = futures::StreamExt::collect::<Vec<_>>(batch).await;
    assert_eq!(held.len(), 100);
    let lag = keda_lag(&monitor, "$G", "LOGS", "processor").await;
    assert_eq!(
        lag, 25_000,
        "num_pending fell by 100, num_ack_pending rose by 100"
    );
    let _ = child.kill().await;
}
