//! Scaling facts: the fewest replicas of a workload (HPA, KEDA ScaledObject, replicas), what a
//! PodDisruptionBudget allows at that count, what the processor runs with, and the rules across
//! them (what scripts/k8s-validate.sh's `keda` step and the drift tests check).

use logjet_core::config::ProcessorConfig;

use super::env::{Environment, PodIdentity};
use super::keda::ScaledObject;
use super::pod::IntOrString;
use super::selector::LabelSelector;
use super::{Manifests, ModelError, Object, Result};

/// The name of the workload an HPA or a ScaledObject scales.
pub fn scale_target(o: &Object) -> String {
    o.value["spec"]["scaleTargetRef"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// The fewest replicas a workload runs with: its HPA's `minReplicas`, its ScaledObject's
/// `minReplicaCount`, else its own `replicas` (Kubernetes' and KEDA's defaults where unset).
pub fn min_replicas(m: &Manifests, workload: &str) -> Result<u64> {
    if let Some(so) = m
        .of_kind("ScaledObject")
        .find(|o| scale_target(o) == workload)
    {
        return Ok(ScaledObject::of(so)?.min);
    }
    if let Some(h) = m
        .of_kind("HorizontalPodAutoscaler")
        .find(|o| scale_target(o) == workload)
    {
        return Ok(h
            .typed::<Option<u64>>(&["spec", "minReplicas"])?
            .unwrap_or(1));
    }
    Ok(m.workload(workload)?
        .typed::<Option<u64>>(&["spec", "replicas"])?
        .unwrap_or(1))
}

/// How many of `replicas` pods a PDB lets be evicted at once (the disruption controller's
/// arithmetic: percentages of the replicas rounded up).
pub fn pdb_allowed_disruptions(pdb: &Object, replicas: u64) -> Result<i64> {
    let count = |v: &IntOrString| -> Result<i64> {
        match v {
            IntOrString::Int(n) => Ok(*n),
            IntOrString::String(p) => {
                let pct: i64 = p.trim_end_matches('%').parse().map_err(|_| {
                    ModelError::invalid(
                        pdb.id(),
                        format!("{p:?} is neither a number nor a percentage"),
                    )
                })?;
                Ok((replicas as i64 * pct + 99) / 100)
            }
        }
    };
    let n = replicas as i64;
    if let Some(min) = pdb.typed::<Option<IntOrString>>(&["spec", "minAvailable"])? {
        return Ok(n - count(&min)?);
    }
    match pdb.typed::<Option<IntOrString>>(&["spec", "maxUnavailable"])? {
        Some(max) => count(&max),
        None => Ok(n),
    }
}

/// The workloads whose pods a PDB selects.
pub fn pdb_workloads<'a>(m: &'a Manifests, pdb: &Object) -> Result<Vec<&'a Object>> {
    let Some(sel) = LabelSelector::from_value(&pdb.value["spec"]["selector"])? else {
        return Ok(Vec::new());
    };
    Ok(m.workloads()
        .filter(|w| sel.matches(&w.pod_labels()))
        .collect())
}

/// What the processor runs with: its rendered environment over `ProcessorConfig::default()`.
pub struct ProcessorFacts {
    pub stream: String,
    pub consumer: String,
    /// One replica's in-flight window (`LOGJET_FETCH_BATCH`).
    pub fetch_batch: u64,
    /// `LOGJET_MAX_ACK_PENDING`, when set: an archiver replica holds up to half of it.
    pub max_ack_pending: Option<u64>,
}

impl ProcessorFacts {
    pub fn of(m: &Manifests, deployment: &str) -> Result<ProcessorFacts> {
        let d = m.find("Deployment", deployment)?;
        let spec = d.pod_spec()?;
        let env = Environment::of(m, spec.main_container()?, &PodIdentity::local(deployment))?;
        let defaults = ProcessorConfig::default();
        let fetch_batch = match env.value("LOGJET_FETCH_BATCH") {
            Some(v) => v
                .parse()
                .map_err(|_| ModelError::invalid("LOGJET_FETCH_BATCH", format!("{v:?}")))?,
            None => defaults.fetch_batch as u64,
        };
        Ok(ProcessorFacts {
            stream: env
                .value("LOGJET_STREAM")
                .map_or(defaults.stream.stream, str::to_string),
            consumer: env
                .value("LOGJET_CONSUMER")
                .map_or(defaults.consumer, str::to_string),
            fetch_batch,
            max_ack_pending: env
                .value("LOGJET_MAX_ACK_PENDING")
                .and_then(|v| v.parse().ok()),
        })
    }
}

/// The rules across scaling objects; each finding is one line naming the object.
pub fn cross_object_findings(m: &Manifests) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let hpas: Vec<&Object> = m.of_kind("HorizontalPodAutoscaler").collect();
    for so in m.of_kind("ScaledObject").map(ScaledObject::of) {
        let so = so?;
        if m.get("Deployment", &so.target).is_none() {
            out.push(format!(
                "ScaledObject/{}: target Deployment {} is not rendered",
                so.name, so.target
            ));
            continue;
        }
        for h in hpas.iter().filter(|h| scale_target(h) == so.target) {
            out.push(format!(
                "HPA/{} also scales {}: KEDA owns its HPA",
                h.name(),
                so.target
            ));
        }
        let p = ProcessorFacts::of(m, &so.target)?;
        for t in so.triggers.iter().filter(|t| t.kind == "nats-jetstream") {
            let lag = t.number("lagThreshold").unwrap_or(0);
            if lag <= p.fetch_batch {
                out.push(format!(
                    "ScaledObject/{}: lagThreshold {lag} must exceed one replica's in-flight window \
                     LOGJET_FETCH_BATCH={}",
                    so.name, p.fetch_batch
                ));
            }
            for (key, var, want) in [
                ("stream", "LOGJET_STREAM", &p.stream),
                ("consumer", "LOGJET_CONSUMER", &p.consumer),
            ] {
                let got = t.metadata.get(key).map(String::as_str).unwrap_or("");
                if got != want.as_str() {
                    out.push(format!(
                        "ScaledObject/{}: {key} {got:?} but {} uses {var}={want:?}",
                        so.name, so.target
                    ));
                }
            }
        }
    }
    for pdb in m.of_kind("PodDisruptionBudget") {
        for w in pdb_workloads(m, pdb)? {
            // A PDB at zero replicas has nothing to protect: judge it at one at least.
            let n = min_replicas(m, w.name())?.max(1);
            if pdb_allowed_disruptions(pdb, n)? < 1 {
                out.push(format!(
                    "PDB/{} blocks every eviction of {} at its minimum of {n} replica(s)",
                    pdb.name(),
                    w.name()
                ));
            }
        }
    }
    Ok(out)
}
