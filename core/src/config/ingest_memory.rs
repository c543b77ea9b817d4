//! Ingest's memory budget: how many bytes of request bodies (compressed as received and
//! decompressed) may be held at once. A request that would go over it is answered 503 with
//! `Retry-After` before its body is read (docs/operations.md, "Ingest memory budget").
//!
//! `ingest_memory_budget` is `auto` (the default) or a size (`192MiB`, `1GiB`, `500MB`, bytes).
//! `auto` takes `ingest_memory_budget_percent` of the container's memory limit (the cgroup's,
//! see [`crate::cgroup`]), or of the machine's memory when the container has no limit.

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::cgroup::MemoryLimits;

/// Used when neither a cgroup limit nor the machine's memory can be read.
pub(super) const FALLBACK_BUDGET: u64 = 256 * 1024 * 1024;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestMemorySettings {
    /// `auto` or a size: bytes of request bodies in flight.
    pub ingest_memory_budget: String,
    /// With `auto`: this share (1 to 90 %) of the container's memory limit.
    pub ingest_memory_budget_percent: u64,
}

impl Default for IngestMemorySettings {
    fn default() -> Self {
        IngestMemorySettings {
            ingest_memory_budget: "auto".into(),
            ingest_memory_budget_percent: 25,
        }
    }
}

/// Where the budget came from, for the start-up log line and the docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BudgetSource {
    /// `ingest_memory_budget` set to a size.
    Explicit,
    /// A share of the cgroup memory limit.
    Container { limit: u64, percent: u64 },
    /// A share of the machine's memory (the container has no limit).
    Host { memory: u64, percent: u64 },
    /// Nothing readable: [`FALLBACK_BUDGET`].
    Fallback,
}

/// The budget in bytes and how it was derived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemoryBudget {
    pub bytes: u64,
    pub source: BudgetSource,
}

impl IngestMemorySettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.explicit()?;
        if !(1..=90).contains(&self.ingest_memory_budget_percent) {
            return Err(ConfigError::invalid(
                "ingest_memory_budget_percent",
                format!(
                    "{} is not a share from 1 to 90 (percent of the container's memory limit)",
                    self.ingest_memory_budget_percent
                ),
            ));
        }
        Ok(())
    }

    /// The size given, `None` for `auto`.
    pub fn explicit(&self) -> Result<Option<u64>, ConfigError> {
        let raw = self.ingest_memory_budget.trim();
        if raw.eq_ignore_ascii_case("auto") {
            return Ok(None);
        }
        match parse_size(raw) {
            Some(n) if n > 0 => Ok(Some(n)),
            _ => Err(ConfigError::invalid(
                "ingest_memory_budget",
                format!(
                    "{raw:?} is neither `auto` nor a size such as 256MiB, 1GiB, 500MB or a number of bytes"
                ),
            )),
        }
    }

    /// The budget for these limits. It must hold at least one body of `max_body_bytes`, or such
    /// a body could never be taken: that is an error naming the key.
    pub fn resolve(
        &self,
        limits: &MemoryLimits,
        max_body_bytes: usize,
    ) -> Result<MemoryBudget, ConfigError> {
        let percent = self.ingest_memory_budget_percent;
        let share = |n: u64| n / 100 * percent + n % 100 * percent / 100;
        let budget = match (self.explicit()?, &limits.cgroup, limits.host_bytes) {
            (Some(bytes), _, _) => MemoryBudget {
                bytes,
                source: BudgetSource::Explicit,
            },
            (None, Some(limit), _) => MemoryBudget {
                bytes: share(limit.bytes),
                source: BudgetSource::Container {
                    limit: limit.bytes,
                    percent,
                },
            },
            (None, None, Some(memory)) => MemoryBudget {
                bytes: share(memory),
                source: BudgetSource::Host { memory, percent },
            },
            (None, None, None) => MemoryBudget {
                bytes: FALLBACK_BUDGET,
                source: BudgetSource::Fallback,
            },
        };
        if budget.bytes < max_body_bytes as u64 {
            let key = match budget.source {
                BudgetSource::Explicit => "ingest_memory_budget",
                _ => "ingest_memory_budget_percent",
            };
            return Err(ConfigError::invalid(
                key,
                format!(
                    "the memory budget ({} bytes, {}) is smaller than max_body_bytes ({max_body_bytes}): \
                     raise the container's memory limit, the budget, or lower max_body_bytes",
                    budget.bytes,
                    budget.source.describe()
                ),
            ));
        }
        Ok(budget)
    }
}

impl BudgetSource {
    /// For log lines and errors.
    pub fn describe(&self) -> String {
        match self {
            BudgetSource::Explicit => "set by ingest_memory_budget".into(),
            BudgetSource::Container { limit, percent } => {
                format!("{percent}% of the container memory limit of {limit} bytes")
            }
            BudgetSource::Host { memory, percent } => {
                format!("{percent}% of the machine's {memory} bytes (no container memory limit)")
            }
            BudgetSource::Fallback => "fallback: no memory limit could be read".into(),
        }
    }
}

/// `256MiB`, `1GiB`, `500MB`, `64k`, `1048576`: binary units (KiB, MiB, GiB; K, M, G as in
/// Kubernetes' Ki/Mi/Gi too) and decimal ones (KB, MB, GB). Whitespace between number and unit
/// is allowed; case is not significant.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "ki" | "kib" => 1 << 10,
        "m" | "mi" | "mib" => 1 << 20,
        "g" | "gi" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::{LimitSource, MemoryLimit};

    const MIB: u64 = 1 << 20;

    fn limits(cgroup: Option<u64>, host: Option<u64>) -> MemoryLimits {
        MemoryLimits {
            cgroup: cgroup.map(|bytes| MemoryLimit {
                bytes,
                source: LimitSource::V1("/x".into()),
            }),
            host_bytes: host,
        }
    }

    fn settings(budget: &str, percent: u64) -> IngestMemorySettings {
        IngestMemorySettings {
            ingest_memory_budget: budget.into(),
            ingest_memory_budget_percent: percent,
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256MiB"), Some(256 * MIB));
        assert_eq!(parse_size("1 GiB"), Some(1 << 30));
        assert_eq!(parse_size("512Mi"), Some(512 * MIB));
        assert_eq!(parse_size("500MB"), Some(500_000_000));
        assert_eq!(parse_size("64k"), Some(64 * 1024));
        assert_eq!(parse_size("1048576"), Some(MIB));
        for bad in [
            "",
            "MiB",
            "1.5GiB",
            "-1",
            "12 parsecs",
            "99999999999999999999",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn auto_takes_a_share_of_the_container_limit_else_of_the_machine() {
        let s = IngestMemorySettings::default();
        let b = s
            .resolve(&limits(Some(256 * MIB), Some(24 << 30)), 16 * MIB as usize)
            .unwrap();
        assert_eq!(b.bytes, 64 * MIB);
        assert_eq!(
            b.source,
            BudgetSource::Container {
                limit: 256 * MIB,
                percent: 25
            }
        );
        let b = s.resolve(&limits(None, Some(1 << 30)), 1024).unwrap();
        assert_eq!(b.bytes, 256 * MIB);
        assert!(matches!(b.source, BudgetSource::Host { .. }));
        let b = s.resolve(&limits(None, None), 1024).unwrap();
        assert_eq!(
            (b.bytes, b.source),
            (FALLBACK_BUDGET, BudgetSource::Fallback)
        );
        let b = settings("auto", 50)
            .resolve(&limits(Some(1000), None), 10)
            .unwrap();
        assert_eq!(b.bytes, 500);
    }

    #[test]
    fn an_explicit_budget_wins() {
        let b = settings("96MiB", 25)
            .resolve(&limits(Some(256 * MIB), None), 16 * MIB as usize)
            .unwrap();
        assert_eq!((b.bytes, b.source), (96 * MIB, BudgetSource::Explicit));
    }

    #[test]
    fn bad_values_name_their_key() {
        let e = settings("lots", 25).validate().unwrap_err().to_string();
        assert!(
            e.contains("LOGJET_INGEST_MEMORY_BUDGET") && e.contains("lots"),
            "{e}"
        );
        let e = settings("0", 25).validate().unwrap_err().to_string();
        assert!(e.contains("ingest_memory_budget"), "{e}");
        let e = settings("auto", 95).validate().unwrap_err().to_string();
        assert!(e.contains("LOGJET_INGEST_MEMORY_BUDGET_PERCENT"), "{e}");
        // A budget that cannot hold one body of max_body_bytes.
        let e = settings("8MiB", 25)
            .resolve(&limits(None, None), 16 * MIB as usize)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`ingest_memory_budget`") && e.contains("max_body_bytes"),
            "{e}"
        );
        let e = IngestMemorySettings::default()
            .resolve(&limits(Some(32 * MIB), None), 16 * MIB as usize)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ingest_memory_budget_percent") && e.contains("container"),
            "{e}"
        );
    }

    #[test]
    fn loaded_from_the_environment_and_checked_at_load() {
        use crate::config::{IngestConfig, load_from};
        let env = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        let c: IngestConfig = load_from(
            None,
            env(&[
                ("LOGJET_AUTH", "off"),
                ("LOGJET_INGEST_MEMORY_BUDGET", "192MiB"),
                ("LOGJET_INGEST_MEMORY_BUDGET_PERCENT", "40"),
            ]),
        )
        .unwrap();
        assert_eq!(c.memory.explicit().unwrap(), Some(192 * MIB));
        assert_eq!(c.memory.ingest_memory_budget_percent, 40);
        let e = load_from::<IngestConfig>(
            None,
            env(&[
                ("LOGJET_AUTH", "off"),
                ("LOGJET_INGEST_MEMORY_BUDGET", "huge"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("LOGJET_INGEST_MEMORY_BUDGET"), "{e}");
        let e = load_from::<IngestConfig>(
            None,
            env(&[
                ("LOGJET_AUTH", "off"),
                ("LOGJET_INGEST_MEMORY_BUDGET_PERCENT", "lots"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("ingest_memory_budget_percent"), "{e}");
    }
}
