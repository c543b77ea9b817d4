//! One dependency's availability as a service sees it, and the one place its outages are logged.
//!
//! An outage is said twice, not once per failed attempt: one WARN when the dependency is lost
//! (or cannot be reached at start-up), with its URL (credentials redacted) and the error, and one
//! INFO when it is back, with how long it was away. While it stays away, a reminder at most once
//! a minute. NATS (fed by the client's connection events), Redis (fed by every command's result
//! and a periodic ping), JetStream streams and the dashboard's query service all go through
//! [`OutageTracker`]; `/readyz` and the `logjet_*_up`/`connected` gauges say the rest.
//!
//! [`OutageLog`] is the decision alone (pure, tested with explicit instants); [`OutageTracker`]
//! feeds it the clock, writes the log lines and tells waiters about losses.

use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// How often a continuing outage is mentioned again.
pub const REMINDER_EVERY: Duration = Duration::from_secs(60);

/// What one observation means for the log.
#[derive(Debug, Clone, PartialEq)]
pub enum Report {
    /// The first success ever, with no failure before it.
    Available,
    /// The first failure of an outage. `at_start_up`: it was never available yet.
    Lost { at_start_up: bool },
    /// The outage goes on; `failures` since it began.
    StillDown { down_for: Duration, failures: u64 },
    /// The first success after an outage.
    Back {
        down_for: Duration,
        failures: u64,
        at_start_up: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Starting,
    Up,
    Down {
        since: Instant,
        last_report: Instant,
        failures: u64,
        at_start_up: bool,
    },
}

/// The decision of what to log, one observation at a time.
#[derive(Debug, Clone)]
pub struct OutageLog {
    phase: Phase,
    reminder_every: Duration,
}

impl OutageLog {
    pub fn new(reminder_every: Duration) -> OutageLog {
        OutageLog {
            phase: Phase::Starting,
            reminder_every,
        }
    }

    pub fn is_up(&self) -> bool {
        self.phase == Phase::Up
    }

    /// An attempt failed at `now`.
    pub fn failure(&mut self, now: Instant) -> Option<Report> {
        match &mut self.phase {
            Phase::Starting | Phase::Up => {
                let at_start_up = self.phase == Phase::Starting;
                self.phase = Phase::Down {
                    since: now,
                    last_report: now,
                    failures: 1,
                    at_start_up,
                };
                Some(Report::Lost { at_start_up })
            }
            Phase::Down {
                since,
                last_report,
                failures,
                ..
            } => {
                *failures += 1;
                if now.saturating_duration_since(*last_report) < self.reminder_every {
                    return None;
                }
                *last_report = now;
                Some(Report::StillDown {
                    down_for: now.saturating_duration_since(*since),
                    failures: *failures,
                })
            }
        }
    }

    /// An attempt succeeded at `now`.
    pub fn success(&mut self, now: Instant) -> Option<Report> {
        let report = match self.phase {
            Phase::Up => None,
            Phase::Starting => Some(Report::Available),
            Phase::Down {
                since,
                failures,
                at_start_up,
                ..
            } => Some(Report::Back {
                down_for: now.saturating_duration_since(since),
                failures,
                at_start_up,
            }),
        };
        self.phase = Phase::Up;
        report
    }
}

struct Inner {
    /// Short name for the `dependency` field: `nats`, `redis`, `stream`, `query`.
    dependency: &'static str,
    /// What people read: `NATS at nats://nats:4222`, credentials redacted.
    what: String,
    log: Mutex<OutageLog>,
    /// Bumped at every loss, for [`OutageTracker::next_loss`].
    losses: watch::Sender<u64>,
}

/// A dependency's availability, shared by everything in a service that uses it.
#[derive(Clone)]
pub struct OutageTracker {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for OutageTracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutageTracker")
            .field("what", &self.inner.what)
            .field("up", &self.is_up())
            .finish()
    }
}

impl OutageTracker {
    /// `name` as people say it (`NATS`, `Redis`, `query service`) and its URL, redacted here.
    pub fn new(dependency: &'static str, name: &str, url: &str) -> OutageTracker {
        OutageTracker::describing(
            dependency,
            format!("{name} at {}", crate::config::redact_url(url)),
        )
    }

    /// A tracker for something that is not a URL (`stream LOGS`).
    pub fn describing(dependency: &'static str, what: String) -> OutageTracker {
        OutageTracker {
            inner: Arc::new(Inner {
                dependency,
                what,
                log: Mutex::new(OutageLog::new(REMINDER_EVERY)),
                losses: watch::Sender::new(0),
            }),
        }
    }

    /// What the log lines name: `NATS at nats://nats:4222`.
    pub fn what(&self) -> &str {
        &self.inner.what
    }

    /// Whether the last observation was a success.
    pub fn is_up(&self) -> bool {
        self.lock().is_up()
    }

    /// An attempt to use the dependency failed because it is not available.
    pub fn failed(&self, error: &dyn Display) {
        let report = self.lock().failure(Instant::now());
        if let Some(report) = report {
            if matches!(report, Report::Lost { .. }) {
                self.inner.losses.send_modify(|n| *n += 1);
            }
            self.emit(&report, Some(error));
        }
    }

    /// An attempt to use the dependency succeeded.
    pub fn succeeded(&self) {
        let report = self.lock().success(Instant::now());
        if let Some(report) = report {
            self.emit(&report, None);
        }
    }

    /// Resolves at the next loss after the call (not for an outage already under way): what a
    /// request waiting on the dependency selects on to answer at once instead of at its timeout.
    /// It starts watching when called, not when first polled, so a loss between the call and a
    /// check of the connection is not missed.
    pub fn next_loss(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.losses.subscribe();
        async move {
            if rx.changed().await.is_err() {
                // The sender lives in the tracker; a tracker dropped means no more losses.
                std::future::pending::<()>().await;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, OutageLog> {
        // A panic while holding this lock cannot leave the small state machine half-updated in
        // a way that matters more than losing the log line: keep going.
        self.inner
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn emit(&self, report: &Report, error: Option<&dyn Display>) {
        let dependency = self.inner.dependency;
        let what = &self.inner.what;
        let error = error.map(ToString::to_string).unwrap_or_default();
        match report {
            Report::Available => {
                tracing::info!(dependency, "{what} is available");
            }
            Report::Lost { at_start_up: true } => tracing::warn!(
                dependency,
                error = %error,
                "{what} is not available yet ({error}); retrying, next reminder in {}",
                humantime::format_duration(REMINDER_EVERY)
            ),
            Report::Lost { at_start_up: false } => tracing::warn!(
                dependency,
                error = %error,
                "{what} is unavailable ({error}); retrying, next reminder in {}",
                humantime::format_duration(REMINDER_EVERY)
            ),
            Report::StillDown { down_for, failures } => tracing::warn!(
                dependency,
                error = %error,
                down_secs = down_for.as_secs(),
                failures,
                "{what} is still unavailable after {} ({error}; {failures} failed attempts)",
                seconds(*down_for)
            ),
            Report::Back {
                down_for,
                failures,
                at_start_up,
            } => tracing::info!(
                dependency,
                down_secs = down_for.as_secs_f64(),
                failures,
                "{what} is available {} after {}",
                if *at_start_up { "now" } else { "again" },
                seconds(*down_for)
            ),
        }
    }
}

/// At most one log line per period for something that can happen on every request (a NATS
/// server error, a publish timeout): [`Throttle::allow`] says whether to log now, and how many
/// were left unsaid since the last line.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(suppressed)` when this occurrence is to be logged.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&self, now: Instant) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (last, suppressed) = &mut *state;
        match last {
            Some(t) if now.saturating_duration_since(*t) < self.every => {
                *suppressed += 1;
                None
            }
            _ => {
                *last = Some(now);
                Some(std::mem::take(suppressed))
            }
        }
    }
}

/// `12.3s`, `4m 5s`: precise enough for a log line.
fn seconds(d: Duration) -> String {
    if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(start: Instant, secs: f64) -> Instant {
        start + Duration::from_secs_f64(secs)
    }

    #[test]
    fn an_outage_is_reported_once_then_reminded_once_a_minute_then_once_back() {
        let t0 = Instant::now();
        let mut log = OutageLog::new(Duration::from_secs(60));
        assert_eq!(log.success(t0), Some(Report::Available));
        assert_eq!(log.success(at(t0, 1.0)), None);
        assert_eq!(
            log.failure(at(t0, 10.0)),
            Some(Report::Lost { at_start_up: false })
        );
        // A reconnect attempt a second for a minute and a half: one reminder.
        let reports: Vec<Report> = (1..=90)
            .filter_map(|s| log.failure(at(t0, 10.0 + s as f64)))
            .collect();
        assert_eq!(
            reports,
            vec![Report::StillDown {
                down_for: Duration::from_secs(60),
                failures: 61
            }]
        );
        assert!(!log.is_up());
        assert_eq!(
            log.success(at(t0, 102.5)),
            Some(Report::Back {
                down_for: Duration::from_secs_f64(92.5),
                failures: 91,
                at_start_up: false
            })
        );
        assert!(log.is_up());
        assert_eq!(log.success(at(t0, 103.0)), None);
        // The next outage starts afresh.
        assert_eq!(
            log.failure(at(t0, 200.0)),
            Some(Report::Lost { at_start_up: false })
        );
    }

    #[test]
    fn a_dependency_missing_at_start_up_says_so_once() {
        let t0 = Instant::now();
        let mut log = OutageLog::new(Duration::from_secs(60));
        assert_eq!(log.failure(t0), Some(Report::Lost { at_start_up: true }));
        for s in 1..30 {
            assert_eq!(log.failure(at(t0, s as f64)), None);
        }
        assert_eq!(
            log.success(at(t0, 30.0)),
            Some(Report::Back {
                down_for: Duration::from_secs(30),
                failures: 30,
                at_start_up: true
            })
        );
    }

    #[tokio::test]
    async fn next_loss_wakes_on_the_next_loss_only() {
        let tracker = OutageTracker::new("nats", "NATS", "nats://app:secret@nats:4222");
        assert_eq!(tracker.what(), "NATS at nats://app:***@nats:4222");
        tracker.succeeded();
        assert!(tracker.is_up());
        let waiter = tokio::spawn(tracker.next_loss());
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        tracker.failed(&"connection reset");
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the loss")
            .unwrap();
        assert!(!tracker.is_up());
        // Further failures of the same outage are not new losses.
        let again = tokio::spawn(tracker.next_loss());
        tokio::task::yield_now().await;
        tracker.failed(&"connection refused");
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!again.is_finished());
        again.abort();
    }

    #[test]
    fn a_throttle_lets_one_through_per_period_and_counts_the_rest() {
        let t0 = Instant::now();
        let throttle = Throttle::new(Duration::from_secs(60));
        assert_eq!(throttle.allow_at(t0), Some(0));
        for s in 1..60 {
            assert_eq!(throttle.allow_at(at(t0, s as f64)), None);
        }
        assert_eq!(throttle.allow_at(at(t0, 60.0)), Some(59));
        assert_eq!(throttle.allow_at(at(t0, 61.0)), None);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(seconds(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(seconds(Duration::from_millis(245_900)), "4m 5s");
    }
}
