//! NetworkPolicies: every pod under a default deny, and exactly the edges of the data flow open.

use std::collections::BTreeSet;

use logjet_tests::k8s::defaults;
use logjet_tests::k8s::netpol::{Peer, Policies};

use super::overlays;

/// An edge: source, destination, port, protocol (peers by a readable name).
type Edge = (String, String, u16, &'static str);

/// A service's port, from the code's defaults (the drift test holds the manifests to them).
fn port(service: &str) -> u16 {
    defaults::service(service)
        .unwrap_or_else(|| panic!("no service {service}"))
        .listen
        .port()
}

#[test]
fn every_pod_is_under_a_default_deny() {
    for (overlay, m) in overlays() {
        let policies = Policies::of(&m).unwrap();
        for w in m.workloads() {
            let pod = Peer::workload(w).unwrap();
            let denied = policies.policies.iter().any(|p| {
                p.is_default_deny() && p.selects(&pod, "Ingress") && p.selects(&pod, "Egress")
            });
            assert!(
                denied,
                "{overlay}: {} is not under a default-deny policy",
                w.name()
            );
        }
    }
}

#[test]
fn network_policies_allow_exactly_the_data_flow() {
    let outside_ns = ["keda", "monitoring", "ingress-nginx", "some-app"];
    for (overlay, m) in overlays() {
        let policies = Policies::of(&m).unwrap();
        let ours: Vec<(String, Peer)> = m
            .workloads()
            .map(|w| (w.name().to_string(), Peer::workload(w).unwrap()))
            .collect();
        let client = (
            "client".to_string(),
            Peer::External("203.0.113.10".parse().unwrap()),
        );
        let others: Vec<(String, Peer)> = outside_ns
            .iter()
            .map(|ns| (ns.to_string(), Peer::pod(ns, &[("app", "any")])))
            .chain([client.clone()])
            .collect();
        let mut targets: Vec<(String, Peer, u16, &'static str)> = Vec::new();
        for (name, peer) in &ours {
            let Peer::Pod { ports, .. } = peer else {
                unreachable!()
            };
            targets.extend(
                ports
                    .values()
                    .map(|p| (name.clone(), peer.clone(), *p, "TCP")),
            );
        }
        let dns = Peer::pod("kube-system", &[("k8s-app", "kube-dns")]);
        targets.push(("kube-system".into(), dns.clone(), 53, "UDP"));
        targets.push(("kube-system".into(), dns, 53, "TCP"));
        targets.push((
            "internet".into(),
            Peer::External("198.51.100.1".parse().unwrap()),
            443,
            "TCP",
        ));

        let mut expected: BTreeSet<Edge> = BTreeSet::new();
        let mut edge = |s: &str, d: &str, port: u16, proto: &'static str| {
            expected.insert((s.to_string(), d.to_string(), port, proto));
        };
        for (src, _) in &others {
            // Clients, from anywhere outside the namespace.
            edge(src, "ingest", port("ingest"), "TCP");
        }
        // Browsers reach the dashboard only through the ingress controller (docs/security.md).
        edge("ingress-nginx", "dashboard", port("dashboard"), "TCP");
        for (src, _) in &ours {
            // DNS for every pod.
            edge(src, "kube-system", 53, "UDP");
            edge(src, "kube-system", 53, "TCP");
        }
        edge("dashboard", "query", port("query"), "TCP");
        for s in ["ingest", "processor", "query", "archiver"] {
            edge(s, "nats", 4222, "TCP");
        }
        // The object store: a volume in kind (file://), S3 over HTTPS in prod.
        if overlay.contains("prod") {
            edge("archiver", "internet", 443, "TCP");
        }
        for s in ["processor", "query"] {
            edge(s, "redis", 6379, "TCP");
        }
        // Redis with Sentinel (prod): clients ask the Sentinels, Sentinels watch every Redis
        // and each other, replicas follow their master.
        if overlay.contains("prod") {
            for s in ["processor", "query", "redis"] {
                edge(s, "redis", 26379, "TCP");
            }
            edge("redis", "redis", 6379, "TCP");
        }
        edge("keda", "nats", 8222, "TCP");
        // NATS cluster routes (the prod overlay runs three servers).
        edge("nats", "nats", 6222, "TCP");
        // Prometheus: every service's port, NATS monitoring, the prometheus-nats-exporter sidecar.
        for (svc, port) in [
            ("ingest", port("ingest")),
            ("query", port("query")),
            ("processor", port("processor")),
            ("archiver", port("archiver")),
            ("dashboard", port("dashboard")),
            ("nats", 8222),
            ("nats", 7777),
        ] {
            edge("monitoring", svc, port, "TCP");
        }

        let mut actual: BTreeSet<Edge> = BTreeSet::new();
        for (src_name, src) in ours.iter().chain(&others) {
            for (dst_name, dst, port, proto) in &targets {
                // Traffic that never touches the namespace is not ours to police.
                let touches = ours.iter().any(|(_, p)| p == src || p == dst);
                if touches && policies.allows(src, dst, *port, proto) {
                    actual.insert((src_name.clone(), dst_name.clone(), *port, proto));
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
