//! How query reads the archive tier (query only; where the archive is comes from
//! [`super::ArchiveSettings`]).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, positive, positive_duration, validate_stream_name};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ArchiveReadSettings {
    /// The archivers' durable consumer: messages at or below its ack floor are archived, so a
    /// search reads them from the archive and only the ones above from the stream.
    pub archive_consumer: String,
    /// How often the catalog lists the last two commit hours for new segments.
    #[serde(with = "humantime_serde")]
    pub archive_refresh: Duration,
    /// How often the catalog lists everything again (forgetting segments retention deleted).
    #[serde(with = "humantime_serde")]
    pub archive_full_refresh: Duration,
    /// Segments one query reads at once.
    pub archive_read_concurrency: usize,
    /// Bytes of segment objects one query holds in memory at once (a larger segment is read
    /// alone).
    pub archive_read_budget_bytes: u64,
}

impl Default for ArchiveReadSettings {
    fn default() -> Self {
        ArchiveReadSettings {
            archive_consumer: "archiver".into(),
            archive_refresh: Duration::from_secs(15),
            archive_full_refresh: Duration::from_secs(600),
            archive_read_concurrency: 4,
            archive_read_budget_bytes: 256 << 20,
        }
    }
}

impl ArchiveReadSettings {
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_stream_name("archive_consumer", &self.archive_consumer)?;
        positive_duration("archive_refresh", self.archive_refresh)?;
        if self.archive_full_refresh < self.archive_refresh {
            return Err(ConfigError::invalid(
                "archive_full_refresh",
                "must be at least archive_refresh",
            ));
        }
        positive(
            "archive_read_concurrency",
            self.archive_read_concurrency as u64,
        )?;
        if self.archive_read_budget_bytes < 1 << 20 {
            return Err(ConfigError::invalid(
                "archive_read_budget_bytes",
                "must be at least 1 MiB",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{QueryConfig, load_from};

    fn load(pairs: &[(&str, &str)]) -> Result<QueryConfig, String> {
        let mut all = vec![("LOGJET_AUTH".to_string(), "off".to_string())];
        all.extend(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        load_from::<QueryConfig>(None, all).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_env_and_validation() {
        let c = load(&[]).unwrap();
        assert_eq!(c.archive_read.archive_consumer, "archiver");
        assert_eq!(c.archive_read.archive_read_concurrency, 4);
        let c = load(&[
            ("LOGJET_ARCHIVE_REFRESH", "2s"),
            ("LOGJET_ARCHIVE_READ_CONCURRENCY", "8"),
        ])
        .unwrap();
        assert_eq!(c.archive_read.archive_refresh.as_secs(), 2);
        assert_eq!(c.archive_read.archive_read_concurrency, 8);
        for (k, v) in [
            ("LOGJET_ARCHIVE_CONSUMER", "a.b"),
            ("LOGJET_ARCHIVE_REFRESH", "0s"),
            ("LOGJET_ARCHIVE_FULL_REFRESH", "1s"),
            ("LOGJET_ARCHIVE_READ_CONCURRENCY", "0"),
            ("LOGJET_ARCHIVE_READ_BUDGET_BYTES", "1000"),
        ] {
            let e = load(&[(k, v)]).unwrap_err();
            assert!(e.contains(k), "{k}: {e}");
        }
    }
}
