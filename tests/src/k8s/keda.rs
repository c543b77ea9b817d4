//! KEDA ScaledObjects: their triggers against the allow-list, the arithmetic of the HPA KEDA
//! creates from them, and the KEDA objects against KEDA's CRD schema.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::scaling::{cross_object_findings, scale_target};
use super::schema::Schema;
use super::{Manifests, ModelError, Object, Result};

/// A KEDA trigger type and its metadata keys: (required, optional).
pub const ALLOWED_TRIGGERS: [(&str, &[&str], &[&str]); 2] = [
    (
        "nats-jetstream",
        &[
            "natsServerMonitoringEndpoint",
            "account",
            "stream",
            "consumer",
            "lagThreshold",
        ],
        &["activationLagThreshold", "useHttps"],
    ),
    ("cpu", &["value"], &["containerName"]),
];

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub metric_type: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl Trigger {
    /// A metadata value as a number (`lagThreshold` and the like are strings in the CRD).
    pub fn number(&self, key: &str) -> Result<u64> {
        let v = self.metadata.get(key).map(String::as_str).unwrap_or("");
        v.parse().map_err(|_| {
            ModelError::invalid(
                format!("trigger {} {key}", self.kind),
                format!("{v:?} is not a number"),
            )
        })
    }
}

/// The parts of a ScaledObject this model reads.
#[derive(Clone, Debug)]
pub struct ScaledObject {
    pub name: String,
    pub target: String,
    pub min: u64,
    pub max: u64,
    pub triggers: Vec<Trigger>,
}

impl ScaledObject {
    pub fn of(o: &Object) -> Result<ScaledObject> {
        Ok(ScaledObject {
            name: o.name().to_string(),
            target: scale_target(o),
            // KEDA's defaults.
            min: o
                .typed::<Option<u64>>(&["spec", "minReplicaCount"])?
                .unwrap_or(0),
            max: o
                .typed::<Option<u64>>(&["spec", "maxReplicaCount"])?
                .unwrap_or(100),
            triggers: o
                .typed::<Option<Vec<Trigger>>>(&["spec", "triggers"])?
                .unwrap_or_default(),
        })
    }

    pub fn trigger(&self, kind: &str) -> Result<&Trigger> {
        self.triggers
            .iter()
            .find(|t| t.kind == kind)
            .ok_or_else(|| {
                ModelError::Missing(format!("ScaledObject/{} {kind} trigger", self.name))
            })
    }

    /// The replicas the HPA that KEDA creates wants for a lag (an AverageValue target of
    /// `lagThreshold` per replica; none below the activation threshold), within min and max.
    pub fn replicas_for_lag(&self, lag: u64) -> Result<u64> {
        let t = self.trigger("nats-jetstream")?;
        let (threshold, activation) = (
            t.number("lagThreshold")?,
            t.number("activationLagThreshold")?,
        );
        let wanted = if lag > activation {
            lag.div_ceil(threshold.max(1))
        } else {
            0
        };
        Ok(wanted.clamp(self.min, self.max))
    }
}

/// A ScaledObject's triggers against the allow-list ([`ALLOWED_TRIGGERS`]).
pub fn trigger_findings(so: &ScaledObject) -> Vec<String> {
    let mut out = Vec::new();
    for (i, t) in so.triggers.iter().enumerate() {
        let p = format!(".spec.triggers[{i}]");
        let Some((_, required, optional)) = ALLOWED_TRIGGERS.iter().find(|(k, ..)| *k == t.kind)
        else {
            let allowed: Vec<&str> = ALLOWED_TRIGGERS.iter().map(|(k, ..)| *k).collect();
            out.push(format!(
                "{p}.type: {:?} is not in the allow-list {allowed:?}",
                t.kind
            ));
            continue;
        };
        for k in required.iter().filter(|k| !t.metadata.contains_key(**k)) {
            out.push(format!(
                "{p}.metadata.{k}: required by the {} scaler",
                t.kind
            ));
        }
        for k in t
            .metadata
            .keys()
            .filter(|k| !required.contains(&k.as_str()) && !optional.contains(&k.as_str()))
        {
            out.push(format!(
                "{p}.metadata.{k}: not a {} scaler parameter",
                t.kind
            ));
        }
        if t.kind == "cpu"
            && !matches!(
                t.metric_type.as_deref(),
                Some("Utilization" | "AverageValue")
            )
        {
            out.push(format!(
                "{p}.metricType: the cpu trigger needs Utilization or AverageValue"
            ));
        }
    }
    out
}

/// The KEDA objects of `m` (only ScaledObjects are allowed) against KEDA's CRD schema and the
/// trigger allow-list, then the cross-object rules: (how many KEDA objects, findings).
pub fn keda_findings(m: &Manifests, schema: &Schema) -> Result<(usize, Vec<String>)> {
    let mut out = Vec::new();
    let keda: Vec<&Object> = m
        .objects
        .iter()
        .filter(|o| o.api_version().starts_with("keda.sh/"))
        .collect();
    for o in &keda {
        let mut errs = Vec::new();
        if o.kind() == "ScaledObject" {
            errs.extend(schema.validate(&o.value));
            match ScaledObject::of(o) {
                Ok(so) => errs.extend(trigger_findings(&so)),
                Err(e) => errs.push(e.to_string()),
            }
        } else {
            errs.push(format!(
                "kind {} is not allowed here (only ScaledObject)",
                o.kind()
            ));
        }
        out.extend(errs.into_iter().map(|e| format!("{}: {e}", o.id())));
    }
    if keda.is_empty() {
        out.push("no ScaledObject rendered (the processor must be scaled by KEDA)".into());
    }
    // An object the schema rejected may not be readable here: its findings stand.
    match cross_object_findings(m) {
        Ok(f) => out.extend(f),
        Err(e) => out.push(format!("cross-object rules not checked: {e}")),
    }
    Ok((keda.len(), out))
}
