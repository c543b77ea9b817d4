//! NATS naming: subjects, stream and consumer names, headers.
//!
//! A service name becomes a subject token, a Redis key part and a Prometheus-safe label, so it is
//! sanitised once, here, to `[a-z0-9_-]{1,64}`. Nothing a user sends can inject NATS wildcards
//! (`*`, `>`), subject separators (`.`) or Redis key separators (`:`, `{`, `}`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Subjects of the LOGS stream.
pub const STREAM_SUBJECTS: &str = "logs.>";
/// Prefix of a service's subject: `logs.<service>`.
pub const SUBJECT_PREFIX: &str = "logs.";
/// Subjects of the dead-letter stream.
pub const DLQ_SUBJECTS: &str = "deadletter.logs.>";
pub const DLQ_SUBJECT_PREFIX: &str = "deadletter.logs.";

/// Service used when nothing names one.
pub const UNKNOWN_SERVICE: &str = "unknown";
pub const MAX_SERVICE_LEN: usize = 64;

/// Message headers logjet reads or writes.
pub mod headers {
    /// JetStream's de-duplication id.
    pub const MSG_ID: &str = "Nats-Msg-Id";
    /// Set by ingest on the batches it publishes: the payload is canonical NDJSON.
    pub const FORMAT: &str = "Logjet-Format";
    pub const FORMAT_CANONICAL: &str = "canonical-ndjson";
    /// Receipt time at ingest, Unix nanoseconds, for the end-to-end latency histogram.
    pub const RECEIVED_AT: &str = "Logjet-Received-At";
    /// W3C trace context carried from the HTTP request to the processor's log lines.
    pub const TRACEPARENT: &str = "traceparent";
    /// On dead letters: why the payload was refused, and where it came from.
    pub const DLQ_REASON: &str = "Logjet-Dlq-Reason";
    pub const DLQ_ORIGINAL_SUBJECT: &str = "Logjet-Dlq-Subject";
    pub const DLQ_ORIGINAL_SEQUENCE: &str = "Logjet-Dlq-Sequence";
}

/// A sanitised service name: `[a-z0-9_-]`, 1 to 64 bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServiceName(String);

impl ServiceName {
    /// Lower-cases, maps every other character to `-`, trims `-` at the ends and truncates.
    /// `None` when nothing usable is left (`"***"`, `""`).
    pub fn sanitize(raw: &str) -> Option<ServiceName> {
        let mut out = String::with_capacity(raw.len().min(MAX_SERVICE_LEN));
        for c in raw.trim().chars() {
            if out.len() >= MAX_SERVICE_LEN {
                break;
            }
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                out.push(c);
            } else if !out.ends_with('-') {
                out.push('-');
            }
        }
        let trimmed = out.trim_matches('-');
        if trimmed.is_empty() {
            None
        } else if trimmed.len() == out.len() {
            Some(ServiceName(out))
        } else {
            Some(ServiceName(trimmed.to_string()))
        }
    }

    /// Whether `raw` is already canonical (what [`ServiceName::parse_strict`] accepts), without
    /// allocating: 1 to 64 bytes of `[a-z0-9_-]`, not starting or ending with `-`.
    pub fn is_canonical(raw: &str) -> bool {
        let b = raw.as_bytes();
        (1..=MAX_SERVICE_LEN).contains(&b.len())
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'_' || *c == b'-')
    }

    /// Accepts only names that are already canonical.
    pub fn parse_strict(raw: &str) -> Result<ServiceName, String> {
        match ServiceName::sanitize(raw) {
            Some(s) if s.0 == raw => Ok(s),
            _ => Err(format!(
                "invalid service name {raw:?}: use 1 to {MAX_SERVICE_LEN} characters of [a-z0-9_-]"
            )),
        }
    }

    pub fn unknown() -> ServiceName {
        ServiceName(UNKNOWN_SERVICE.to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `logs.<service>`
    pub fn subject(&self) -> String {
        format!("{SUBJECT_PREFIX}{}", self.0)
    }

    /// `deadletter.logs.<service>`
    pub fn dlq_subject(&self) -> String {
        format!("{DLQ_SUBJECT_PREFIX}{}", self.0)
    }

    /// The service a `logs.<service>` subject names, sanitised (a user may publish to
    /// `logs.My.App`; everything after `logs.` is the name).
    pub fn from_subject(subject: &str) -> Option<ServiceName> {
        subject
            .strip_prefix(SUBJECT_PREFIX)
            .and_then(ServiceName::sanitize)
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ServiceName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ServiceName::parse_strict(&s)
    }
}

impl From<ServiceName> for String {
    fn from(s: ServiceName) -> String {
        s.0
    }
}

impl AsRef<str> for ServiceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitises_to_safe_tokens() {
        assert_eq!(ServiceName::sanitize("API").unwrap().as_str(), "api");
        assert_eq!(
            ServiceName::sanitize("my.app v2").unwrap().as_str(),
            "my-app-v2"
        );
        assert_eq!(ServiceName::sanitize("logs.>").unwrap().as_str(), "logs");
        assert_eq!(ServiceName::sanitize("a*b").unwrap().as_str(), "a-b");
        assert_eq!(ServiceName::sanitize("{lj}:x").unwrap().as_str(), "lj-x");
        assert_eq!(ServiceName::sanitize("***"), None);
        assert_eq!(ServiceName::sanitize(""), None);
        let long = "x".repeat(200);
        assert_eq!(
            ServiceName::sanitize(&long).unwrap().as_str().len(),
            MAX_SERVICE_LEN
        );
    }

    #[test]
    fn subjects_round_trip() {
        let s = ServiceName::sanitize("checkout").unwrap();
        assert_eq!(s.subject(), "logs.checkout");
        assert_eq!(ServiceName::from_subject("logs.checkout"), Some(s));
        assert_eq!(
            ServiceName::from_subject("logs.My.App").unwrap().as_str(),
            "my-app"
        );
        assert_eq!(ServiceName::from_subject("other.x"), None);
    }

    #[test]
    fn strict_parse_rejects_non_canonical() {
        assert!(ServiceName::parse_strict("api").is_ok());
        let long = "a".repeat(MAX_SERVICE_LEN);
        let longer = format!("{long}b");
        for raw in [
            "api",
            "API",
            "a.b",
            "-a",
            "a-",
            "a--b",
            "_a_",
            "",
            " a",
            "a b",
            "é",
            "0",
            long.as_str(),
            longer.as_str(),
        ] {
            assert_eq!(
                ServiceName::is_canonical(raw),
                ServiceName::parse_strict(raw).is_ok(),
                "{raw:?}"
            );
        }
        assert!(ServiceName::parse_strict("API").is_err());
        assert!(ServiceName::parse_strict("a.b").is_err());
    }
}
