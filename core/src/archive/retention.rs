//! `LOGJET_RETENTION_RULES`: how long each service's archived events are kept.
//!
//! `7d` keeps everything seven days; `payments=30d,debug-*=1d,7d` keeps `payments` thirty days,
//! every service starting with `debug-` one day and everything else seven. Rules are tried in
//! order and the first whose pattern matches wins; the default (a duration without `service=`)
//! is required and comes last. Patterns are service names where `*` matches any run of
//! characters. Durations are humantime's (`30d`, `36h`, `1w`, `90m`).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Parsed retention rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionRules {
    rules: Vec<Rule>,
    default: Duration,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Rule {
    pattern: String,
    keep: Duration,
}

/// Why retention rules were refused; the message names the rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RetentionError(String);

impl RetentionRules {
    /// Only a default.
    pub fn keep_all_for(default: Duration) -> RetentionRules {
        RetentionRules {
            rules: Vec::new(),
            default,
        }
    }

    /// How long events of `service` are kept.
    pub fn for_service(&self, service: &str) -> Duration {
        self.rules
            .iter()
            .find(|r| glob_match(r.pattern.as_bytes(), service.as_bytes()))
            .map_or(self.default, |r| r.keep)
    }

    /// The longest retention of any service: how far back a search can ever reach.
    pub fn max(&self) -> Duration {
        self.rules
            .iter()
            .map(|r| r.keep)
            .fold(self.default, Duration::max)
    }

    pub fn default_retention(&self) -> Duration {
        self.default
    }

    /// `(pattern, duration)` of each rule, in order, without the default.
    pub fn rules(&self) -> impl Iterator<Item = (&str, Duration)> {
        self.rules.iter().map(|r| (r.pattern.as_str(), r.keep))
    }
}

impl FromStr for RetentionRules {
    type Err = RetentionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let items: Vec<&str> = s.split(',').map(str::trim).collect();
        let mut rules = Vec::new();
        let mut default = None;
        for (i, item) in items.iter().enumerate() {
            if item.is_empty() {
                return Err(RetentionError(format!(
                    "rule {} is empty (rules are separated by single commas)",
                    i + 1
                )));
            }
            if default.is_some() {
                return Err(RetentionError(format!(
                    "rule {item:?} comes after the default; the default (a duration without `service=`) must be last"
                )));
            }
            match item.split_once('=') {
                Some((pattern, keep)) => {
                    let pattern = pattern.trim();
                    check_pattern(item, pattern)?;
                    rules.push(Rule {
                        pattern: pattern.to_string(),
                        keep: parse_keep(item, keep.trim())?,
                    });
                }
                None => default = Some(parse_keep(item, item)?),
            }
        }
        let Some(default) = default else {
            return Err(RetentionError(format!(
                "{s:?} has no default: end the rules with a duration for every other service, e.g. `{},7d`",
                s.trim()
            )));
        };
        Ok(RetentionRules { rules, default })
    }
}

fn check_pattern(rule: &str, pattern: &str) -> Result<(), RetentionError> {
    let ok = !pattern.is_empty()
        && pattern.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*')
        });
    if ok {
        Ok(())
    } else {
        Err(RetentionError(format!(
            "rule {rule:?}: {pattern:?} is not a service pattern (a-z 0-9 _ - and * for any run of characters)"
        )))
    }
}

fn parse_keep(rule: &str, text: &str) -> Result<Duration, RetentionError> {
    let keep = humantime::parse_duration(text).map_err(|e| {
        RetentionError(format!(
            "rule {rule:?}: {text:?} is not a duration ({e}; e.g. 7d, 36h)"
        ))
    })?;
    if keep < Duration::from_secs(60) {
        return Err(RetentionError(format!(
            "rule {rule:?}: keep events at least 1m"
        )));
    }
    Ok(keep)
}

/// `*` matches any run of characters (also none); everything else matches itself.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    // Iterative matcher with one backtrack point: linear in practice, no recursion.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

impl fmt::Display for RetentionRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.rules {
            write!(f, "{}={},", r.pattern, humantime::format_duration(r.keep))?;
        }
        write!(f, "{}", humantime::format_duration(self.default))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn a_default_alone() {
        let r: RetentionRules = "7d".parse().unwrap();
        assert_eq!(r.for_service("api"), 7 * DAY);
        assert_eq!(r.max(), 7 * DAY);
        assert_eq!(r.to_string(), "7days");
        assert_eq!(r, RetentionRules::keep_all_for(7 * DAY));
    }

    #[test]
    fn first_match_wins_and_the_default_catches_the_rest() {
        let r: RetentionRules = "payments=30d, debug-*=1d, *-audit=90d, debug-audit=2d, 7d"
            .parse()
            .unwrap();
        assert_eq!(r.for_service("payments"), 30 * DAY);
        assert_eq!(r.for_service("payments-eu"), 7 * DAY);
        assert_eq!(r.for_service("debug-api"), DAY);
        assert_eq!(r.for_service("debug-"), DAY);
        // `debug-*` comes first, so the later, more specific rule never applies.
        assert_eq!(r.for_service("debug-audit"), DAY);
        assert_eq!(r.for_service("billing-audit"), 90 * DAY);
        assert_eq!(r.for_service("api"), 7 * DAY);
        assert_eq!(r.max(), 90 * DAY);
        assert_eq!(r.default_retention(), 7 * DAY);
        assert_eq!(r.rules().count(), 4);
        let again: RetentionRules = r.to_string().parse().unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn globs() {
        assert!(glob_match(b"*", b""));
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"a*b*c", b"aXXbYYc"));
        assert!(glob_match(b"a*b*c", b"abc"));
        assert!(!glob_match(b"a*b*c", b"acb"));
        assert!(glob_match(b"*-eu", b"pay-eu"));
        assert!(!glob_match(b"*-eu", b"pay-eu-2"));
        assert!(!glob_match(b"api", b"api2"));
        assert!(glob_match(b"**x", b"x"));
    }

    #[test]
    fn errors_name_the_rule() {
        let e = |s: &str| s.parse::<RetentionRules>().unwrap_err().to_string();
        assert!(
            e("payments=30d").contains("no default"),
            "{}",
            e("payments=30d")
        );
        assert!(e("payments=30x,7d").contains("\"payments=30x\""));
        assert!(e("Pay=30d,7d").contains("\"Pay=30d\""));
        assert!(e("=30d,7d").contains("not a service pattern"));
        assert!(e("7d,api=1d").contains("\"api=1d\"") && e("7d,api=1d").contains("last"));
        assert!(e("api=1d,,7d").contains("rule 2 is empty"));
        assert!(e("").contains("empty"));
        assert!(e("api=10s,7d").contains("\"api=10s\"") && e("api=10s,7d").contains("1m"));
        assert!(e("soon").contains("\"soon\""));
    }
}
