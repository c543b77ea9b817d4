//! Scaling: KEDA for the processor, CPU HPAs for ingest and query, PDBs that let nodes drain.

use std::collections::BTreeSet;

use logjet_tests::k8s::keda::{ScaledObject, trigger_findings};
use logjet_tests::k8s::scaling::{
    ProcessorFacts, cross_object_findings, min_replicas, pdb_allowed_disruptions, pdb_workloads,
    scale_target,
};

use super::overlays;

#[test]
fn scaling_is_keda_for_the_processor_and_hpa_for_the_rest() {
    for (overlay, m) in overlays() {
        let sos: Vec<ScaledObject> = m
            .of_kind("ScaledObject")
            .map(|o| ScaledObject::of(o).unwrap())
            .collect();
        let targets: BTreeSet<&str> = sos.iter().map(|s| s.target.as_str()).collect();
        assert_eq!(
            targets,
            BTreeSet::from(["processor", "archiver"]),
            "{overlay}: one ScaledObject each for the processor and the archiver"
        );
        assert_eq!(sos.len(), 2, "{overlay}");
        for so in &sos {
            let types: BTreeSet<&str> = so.triggers.iter().map(|t| t.kind.as_str()).collect();
            assert_eq!(
                types,
                BTreeSet::from(["nats-jetstream", "cpu"]),
                "{overlay}"
            );
            assert_eq!(trigger_findings(so), Vec::<String>::new(), "{overlay}");

            let nats = so.trigger("nats-jetstream").unwrap();
            let meta = |k: &str| nats.metadata.get(k).map(String::as_str);
            let facts = ProcessorFacts::of(&m, &so.target).unwrap();
            assert_eq!(
                meta("stream"),
                Some(facts.stream.as_str()),
                "{overlay}: stream"
            );
            assert_eq!(
                meta("consumer"),
                Some(facts.consumer.as_str()),
                "{overlay}: consumer"
            );
            assert_eq!(meta("consumer"), Some(so.target.as_str()), "{overlay}");
            assert_eq!(meta("account"), Some("LOGJET"), "{overlay}: account");
            // The headless service: its name resolves to every server, each asked by the scaler.
            assert_eq!(
                meta("natsServerMonitoringEndpoint"),
                Some("nats-headless.log-analytics.svc.cluster.local:8222"),
                "{overlay}: {}",
                so.name
            );
            // NATS monitoring unreadable: a fixed replica count, within the bounds, not a guess.
            let o = m.find("ScaledObject", &so.name).unwrap();
            let threshold = o
                .typed::<Option<u64>>(&["spec", "fallback", "failureThreshold"])
                .unwrap();
            let replicas = o
                .typed::<Option<u64>>(&["spec", "fallback", "replicas"])
                .unwrap()
                .unwrap_or_else(|| panic!("{overlay}: {} has no fallback", so.name));
            assert!(threshold.is_some_and(|t| t >= 1), "{overlay}: {}", so.name);
            assert!(
                (so.min.max(1)..=so.max).contains(&replicas),
                "{overlay}: {} fallback.replicas {replicas} outside [{}, {}]",
                so.name,
                so.min,
                so.max
            );
            // What one replica holds unacknowledged: a fetch for the processor; for the
            // archiver, its open segments' messages (it cuts at half of max_ack_pending).
            let window = if so.target == "archiver" {
                facts
                    .max_ack_pending
                    .expect("the archiver sets LOGJET_MAX_ACK_PENDING")
                    / 2
            } else {
                facts.fetch_batch
            };
            let lag = nats.number("lagThreshold").unwrap();
            assert!(
                lag > window,
                "{overlay}: {} lagThreshold {lag} must exceed one replica's in-flight window {window}",
                so.target
            );
            assert!(
                meta("activationLagThreshold").is_some(),
                "{overlay}: activation threshold"
            );
        }

        for hpa in m.of_kind("HorizontalPodAutoscaler") {
            let target = scale_target(hpa);
            assert!(
                target != "processor" && target != "archiver",
                "{overlay}: an HPA targets {target} beside KEDA"
            );
            assert!(
                ["ingest", "query"].contains(&target.as_str()),
                "{overlay}: unexpected HPA on {target}"
            );
            assert!(
                hpa.at(&["spec", "minReplicas"])
                    .and_then(|v| v.as_u64())
                    .unwrap()
                    >= 2
            );
            assert!(
                hpa.at(&[
                    "spec",
                    "behavior",
                    "scaleDown",
                    "stabilizationWindowSeconds"
                ])
                .is_some()
            );
        }
        let hpa_targets: BTreeSet<String> = m
            .of_kind("HorizontalPodAutoscaler")
            .map(scale_target)
            .collect();
        assert_eq!(
            hpa_targets,
            BTreeSet::from(["ingest".into(), "query".into()]),
            "{overlay}"
        );
        assert_eq!(
            cross_object_findings(&m).unwrap(),
            Vec::<String>::new(),
            "{overlay}"
        );
    }
}

#[test]
fn pdbs_never_block_every_eviction() {
    for (overlay, m) in overlays() {
        let pdbs: Vec<_> = m.of_kind("PodDisruptionBudget").collect();
        for w in m.workloads() {
            let covering: Vec<_> = pdbs
                .iter()
                .filter(|p| {
                    pdb_workloads(&m, p)
                        .unwrap()
                        .iter()
                        .any(|x| x.name() == w.name())
                })
                .collect();
            if covering.is_empty() {
                assert_eq!(w.name(), "redis", "{overlay}: {} has no PDB", w.name());
                continue;
            }
            let min = min_replicas(&m, w.name()).unwrap().max(1);
            for pdb in covering {
                let allowed = pdb_allowed_disruptions(pdb, min).unwrap();
                assert!(
                    allowed >= 1,
                    "{overlay}: PDB {} allows {allowed} evictions of {} at {min} replicas",
                    pdb.name(),
                    w.name()
                );
            }
        }
    }
}

/// The arithmetic itself, on the kind overlay's ScaledObject (threshold 1000, activation 10,
/// replicas 1..10).
#[test]
fn keda_wants_one_replica_per_threshold_of_lag_within_its_bounds() {
    let (_, m) = overlays().swap_remove(0);
    let so = ScaledObject::of(m.find("ScaledObject", "processor").unwrap()).unwrap();
    assert_eq!((so.min, so.max), (1, 10));
    for (lag, want) in [
        (0, 1),
        (10, 1),
        (11, 1),
        (1_000, 1),
        (1_001, 2),
        (3_500, 4),
        (25_000, 10),
    ] {
        assert_eq!(so.replicas_for_lag(lag).unwrap(), want, "lag {lag}");
    }
}
