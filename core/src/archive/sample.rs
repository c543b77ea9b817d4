//! Realistic log events, for tests and benchmarks (compression, search, throughput).
//!
//! One service's traffic: HTTP requests, each logging a few lines over a few milliseconds
//! (start, database or cache or upstream call, completion) that share a request id, a trace id,
//! a user and the user's address; between them, background lines (GC pauses, consumer lag,
//! slow queries) and now and then an error with a stack trace. Identifiers are what makes logs
//! hard to compress, so their entropy is modelled on purpose:
//!
//! - [`Entropy::Realistic`]: request and trace ids are random (64 and 128 bits) but shared by
//!   the 2–6 lines of a request; users come from a population of 50,000 (a few are very
//!   active), each with a fixed IP; order ids, SKUs and amounts are random; durations are
//!   log-normal.
//! - [`Entropy::Unique`]: the worst case: every line gets its own request id, trace id, user
//!   and address.
//!
//! Timestamps have microsecond precision, Kafka offsets only grow. Canonical lines are 200–400
//! bytes (about 340 on average). The generator is deterministic
//! for a seed.

use std::fmt::Write;

use chrono::DateTime;

use crate::{FieldValue, Fields, Level, LogEvent};

/// How identifiers repeat; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entropy {
    Realistic,
    Unique,
}

/// An endless, deterministic stream of one service's events.
pub struct SampleLogs {
    rng: Rng,
    service: String,
    entropy: Entropy,
    ts: i64,
    mean_gap_ns: f64,
    pods: Vec<String>,
    active: Vec<Request>,
    /// Committed offset per Kafka partition (they only grow).
    offsets: [u64; 12],
}

struct Request {
    id: String,
    trace: String,
    user: u32,
    method: &'static str,
    path: String,
    status: i64,
    lines_left: u32,
    step: u32,
}

const METHODS: [&str; 4] = ["GET", "GET", "POST", "PUT"];
const REGIONS: [&str; 3] = ["eu-west-1", "eu-central-1", "us-east-1"];
const AGENTS: [&str; 5] = [
    "Mozilla/5.0 Chrome/131.0",
    "Mozilla/5.0 (iPhone) Safari/604.1",
    "okhttp/4.12.0",
    "python-requests/2.32.3",
    "Go-http-client/2.0",
];
const TABLES: [&str; 4] = ["orders", "order_items", "customers", "inventory"];
const UPSTREAMS: [&str; 3] = ["inventory", "pricing", "fraud-check"];

impl SampleLogs {
    /// Events of `service` from `start_nanos` on, `events_per_sec` on average.
    pub fn new(
        seed: u64,
        service: &str,
        start_nanos: i64,
        events_per_sec: u32,
        entropy: Entropy,
    ) -> SampleLogs {
        let mut rng = Rng(seed ^ 0x5eed_1095_0000_0001);
        let pods = (0..12)
            .map(|_| {
                let rs = rng.alnum(10);
                let pod = rng.alnum(5);
                format!("{service}-{rs}-{pod}")
            })
            .collect();
        SampleLogs {
            rng,
            service: service.to_string(),
            entropy,
            ts: start_nanos,
            mean_gap_ns: 1e9 / f64::from(events_per_sec.max(1)),
            pods,
            active: Vec::new(),
            offsets: [1_048_576_000; 12],
        }
    }

    fn new_request(&mut self) -> Request {
        let r = &mut self.rng;
        let method = METHODS[r.below(4) as usize];
        let user = self_user(r);
        let path = match r.below(6) {
            0 => format!("/api/v1/orders/{}", r.below(90_000_000) + 10_000_000),
            1 => format!("/api/v1/users/{user}/cart"),
            2 => format!("/api/v1/products/SKU-{:06}", r.below(40_000)),
            3 => "/api/v1/checkout".to_string(),
            4 => format!("/api/v1/orders/{}/items", r.below(90_000_000) + 10_000_000),
            _ => "/healthz".to_string(),
        };
        let status = match r.below(100) {
            0..=84 => 200,
            85..=89 => 201,
            90..=92 => 404,
            93..=94 => 400,
            95 => 401,
            96 => 429,
            97..=98 => 500,
            _ => 503,
        };
        Request {
            id: r.hex(16),
            trace: r.hex(32),
            user,
            method,
            path,
            status,
            lines_left: 2 + r.below(5) as u32,
            step: 0,
        }
    }

    fn ip_of(user: u32) -> String {
        let h = (u64::from(user)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        format!("10.{}.{}.{}", (h >> 16) & 0xff, (h >> 8) & 0xff, h & 0xff)
    }

    /// The next event.
    pub fn next_event(&mut self) -> LogEvent {
        // Exponential gaps, at microsecond precision (what most loggers and shippers emit).
        let gap = -self.mean_gap_ns * (1.0 - self.rng.unit()).ln();
        self.ts += (gap as i64 / 1000 * 1000).max(1000);
        let pod = self.rng.below(self.pods.len() as u64) as usize;
        let host = self.pods[pod].clone();
        let mut fields = Fields::new();
        fields.insert("region".into(), FieldValue::Str(REGIONS[pod % 3].into()));
        if self.rng.below(100) < 8 {
            let (level, message) = self.background(&mut fields);
            return self.event(level, message, fields, None, host);
        }
        if self.active.len() < 16 || self.rng.below(4) == 0 {
            let req = self.new_request();
            self.active.push(req);
        }
        let i = self.rng.below(self.active.len() as u64) as usize;
        let mut req = self.active.swap_remove(i);
        if self.entropy == Entropy::Unique {
            let fresh = self.new_request();
            (req.id, req.trace, req.user) = (fresh.id, fresh.trace, fresh.user);
        }
        let (level, message) = self.request_line(&mut req, &mut fields);
        let trace = Some(req.trace.clone());
        req.step += 1;
        req.lines_left -= 1;
        if req.lines_left > 0 {
            self.active.push(req);
        }
        self.event(level, message, fields, trace, host)
    }

    fn event(
        &self,
        level: Level,
        message: String,
        fields: Fields,
        trace_id: Option<String>,
        host: String,
    ) -> LogEvent {
        LogEvent {
            ts: DateTime::from_timestamp_nanos(self.ts),
            service: self.service.clone(),
            level,
            message,
            fields,
            trace_id,
            host: Some(host),
        }
    }

    fn request_line(&mut self, req: &mut Request, fields: &mut Fields) -> (Level, String) {
        let r = &mut self.rng;
        let ip = Self::ip_of(req.user);
        fields.insert("request_id".into(), FieldValue::Str(req.id.clone()));
        fields.insert("user_id".into(), FieldValue::Int(i64::from(req.user)));
        let dur = r.log_normal_ms();
        if req.step == 0 {
            let agent = AGENTS[(req.user % AGENTS.len() as u32) as usize];
            fields.insert("user_agent".into(), FieldValue::Str(agent.into()));
            return (
                Level::Info,
                format!("request started: {} {} from {ip}", req.method, req.path),
            );
        }
        if req.lines_left == 1 {
            fields.insert("http.method".into(), FieldValue::Str(req.method.into()));
            fields.insert("http.status".into(), FieldValue::Int(req.status));
            fields.insert("duration_ms".into(), FieldValue::Float(dur));
            let level = match req.status {
                500.. => Level::Error,
                400.. => Level::Warn,
                _ => Level::Info,
            };
            let mut m = format!(
                "{} {} {} {:.1}ms user={} ip={ip}",
                req.method, req.path, req.status, dur, req.user
            );
            if req.status >= 500 && r.below(3) == 0 {
                let order = r.below(90_000_000) + 10_000_000;
                let _ = write!(
                    m,
                    "\njava.lang.IllegalStateException: order {order} is in state CANCELLED\n\tat com.acme.orders.OrderService.ship(OrderService.java:212)\n\tat com.acme.orders.OrderController.post(OrderController.java:88)"
                );
            }
            return (level, m);
        }
        fields.insert("duration_ms".into(), FieldValue::Float(dur));
        match r.below(4) {
            0 => {
                let table = TABLES[r.below(4) as usize];
                let rows = r.below(40);
                (
                    if dur > 500.0 {
                        Level::Warn
                    } else {
                        Level::Debug
                    },
                    format!(
                        "SELECT * FROM {table} WHERE customer_id = {} AND status = 'pending' took {dur:.2}ms rows={rows}",
                        req.user
                    ),
                )
            }
            1 => {
                let kind = ["session", "cart", "price"][r.below(3) as usize];
                (
                    Level::Debug,
                    format!("cache miss for key {kind}:{}:{}", req.user, r.hex(8)),
                )
            }
            2 => {
                let up = UPSTREAMS[r.below(3) as usize];
                let attempt = 1 + r.below(3);
                (
                    Level::Info,
                    format!(
                        "upstream http://{up}.svc.cluster.local:8080 responded 200 after {dur:.1}ms (attempt {attempt}/3)"
                    ),
                )
            }
            _ => {
                let pay = r.hex(12);
                let cents = r.below(50_000) + 100;
                fields.insert("payment_id".into(), FieldValue::Str(format!("pay_{pay}")));
                (
                    Level::Info,
                    format!(
                        "payment pay_{pay} authorized for order {}: amount={}.{:02} EUR",
                        r.below(90_000_000) + 10_000_000,
                        cents / 100,
                        cents % 100
                    ),
                )
            }
        }
    }

    fn background(&mut self, fields: &mut Fields) -> (Level, String) {
        let r = &mut self.rng;
        match r.below(3) {
            0 => {
                let pause = r.log_normal_ms() / 4.0;
                let used = 600 + r.below(1400);
                fields.insert(
                    "gc.pause_ms".into(),
                    FieldValue::Float((pause * 100.0).round() / 100.0),
                );
                (
                    Level::Debug,
                    format!("GC pause {pause:.2}ms, heap {used}MB/2048MB after young collection"),
                )
            }
            1 => {
                let partition = r.below(12);
                let lag = r.below(5000);
                self.offsets[partition as usize] += 1 + r.below(400);
                fields.insert("kafka.partition".into(), FieldValue::Int(partition as i64));
                (
                    if lag > 4000 { Level::Warn } else { Level::Info },
                    format!(
                        "consumer group order-events partition {partition} lag {lag} committed offset {}",
                        self.offsets[partition as usize]
                    ),
                )
            }
            _ => {
                let ms = 500.0 + r.log_normal_ms() * 10.0;
                let table = TABLES[r.below(4) as usize];
                (
                    Level::Warn,
                    format!(
                        "slow query detected: {ms:.0}ms > 500ms threshold on table {table} (plan=seq_scan)"
                    ),
                )
            }
        }
    }
}

fn self_user(r: &mut Rng) -> u32 {
    // A few very active users, a long tail of occasional ones.
    if r.below(10) < 3 {
        100_000 + r.below(200) as u32
    } else {
        100_000 + r.below(50_000) as u32
    }
}

impl Iterator for SampleLogs {
    type Item = LogEvent;
    fn next(&mut self) -> Option<LogEvent> {
        Some(self.next_event())
    }
}

/// SplitMix64: small, fast, deterministic.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n.max(1))) >> 64) as u64
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn hex(&mut self, digits: usize) -> String {
        let mut s = String::with_capacity(digits);
        while s.len() < digits {
            let _ = write!(s, "{:016x}", self.next());
        }
        s.truncate(digits);
        s
    }

    fn alnum(&mut self, n: usize) -> String {
        const A: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        (0..n)
            .map(|_| A[self.below(A.len() as u64) as usize] as char)
            .collect()
    }

    /// Log-normal milliseconds around 12 ms, rounded to 0.01.
    fn log_normal_ms(&mut self) -> f64 {
        let (u1, u2) = (self.unit().max(1e-12), self.unit());
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        ((2.5 + 1.1 * z).exp() * 100.0).round() / 100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_realistic_and_deterministic() {
        let a: Vec<LogEvent> = SampleLogs::new(7, "api", 0, 10_000, Entropy::Realistic)
            .take(20_000)
            .collect();
        let b: Vec<LogEvent> = SampleLogs::new(7, "api", 0, 10_000, Entropy::Realistic)
            .take(20_000)
            .collect();
        assert_eq!(a, b);
        let sizes: Vec<usize> = a
            .iter()
            .map(|e| serde_json::to_vec(e).unwrap().len())
            .collect();
        let mean = sizes.iter().sum::<usize>() / sizes.len();
        let within = sizes.iter().filter(|s| (200..=400).contains(*s)).count();
        assert!((280..=380).contains(&mean), "mean line {mean} bytes");
        assert!(
            within * 100 / sizes.len() >= 95,
            "{within} of {} in 200..=400",
            sizes.len()
        );
        let levels: std::collections::BTreeSet<Level> = a.iter().map(|e| e.level).collect();
        assert!(levels.len() >= 4, "{levels:?}");
        assert!(a.windows(2).all(|w| w[0].ts < w[1].ts));
        // ~10,000 events per second.
        let span = (a.last().unwrap().ts - a[0].ts).num_milliseconds();
        assert!((1500..=2500).contains(&span), "{span} ms for 20,000 events");
    }
}
