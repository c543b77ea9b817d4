//! The benchmark's log lines.
//!
//! - [`realistic`]: what services really log: varied messages with request ids, IPs, paths,
//!   status codes and durations, distinct values in every line, 200–400 bytes, ~8 fields. The
//!   default: token indexing, pattern mining and parsing all work on high-cardinality values.
//! - [`padded`]: the bench's first lines, ~200 bytes padded with a repeated `"x":0` (one field
//!   survives), kept as a second row to compare with earlier runs.

/// Which lines a phase sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LineKind {
    Realistic,
    Padded,
}

impl LineKind {
    pub fn name(self) -> &'static str {
        match self {
            LineKind::Realistic => "realistic",
            LineKind::Padded => "padded",
        }
    }

    pub fn line(self, i: u64, service: &str) -> String {
        match self {
            LineKind::Realistic => realistic(i, service),
            LineKind::Padded => padded(i, service),
        }
    }

    /// A 1,000-line NDJSON body, lines `first..first + 1000`.
    pub fn body(self, first: u64, service: &str) -> bytes::Bytes {
        let mut s = String::with_capacity(400_000);
        for i in first..first + 1000 {
            s.push_str(&self.line(i, service));
            s.push('\n');
        }
        s.into()
    }
}

/// A deterministic pseudo-random number for line `i` and stream `k` (splitmix64).
fn rnd(i: u64, k: u64) -> u64 {
    let mut z = i
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(k.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

const PATHS: [&str; 8] = [
    "/api/v1/orders",
    "/api/v1/users",
    "/api/v2/payments",
    "/api/v1/items",
    "/checkout/cart",
    "/internal/health/deep",
    "/api/v1/search",
    "/auth/token/refresh",
];
const METHODS: [&str; 4] = ["GET", "GET", "POST", "PUT"];
const AGENTS: [&str; 4] = [
    "Mozilla/5.0 (X11; Linux x86_64) Firefox/131.0",
    "okhttp/4.12.0",
    "curl/8.5.0",
    "python-requests/2.32.3",
];

/// A realistic structured log line: 8 fields besides the timestamp-less head, a unique request
/// id and a client IP in every line, one of several message shapes. 200–400 bytes.
pub fn realistic(i: u64, service: &str) -> String {
    let r = |k| rnd(i, k);
    let ip = format!("10.{}.{}.{}", r(1) % 256, r(2) % 256, 1 + r(3) % 254);
    let req = format!("{:016x}{:08x}", r(4), r(5) as u32);
    let path = format!("{}/{}", PATHS[(r(6) % 8) as usize], r(7) % 100_000);
    let method = METHODS[(r(8) % 4) as usize];
    let ms = (r(9) % 250_000) as f64 / 100.0;
    let (level, status, message) = match r(10) % 10 {
        0..=5 => (
            "info",
            [200, 200, 201, 204, 304][(r(11) % 5) as usize],
            format!("{method} {path} completed in {ms}ms for {ip}"),
        ),
        6 => (
            "warn",
            429,
            format!(
                "rate limit exceeded for client {ip} on {path}, retry after {}s",
                r(12) % 60
            ),
        ),
        7 => (
            "error",
            502,
            format!(
                "upstream connect error to 10.9.{}.{}:{} after {ms}ms: connection reset by peer",
                r(13) % 256,
                r(14) % 256,
                8000 + r(15) % 1000
            ),
        ),
        8 => (
            "debug",
            200,
            format!(
                "cache miss for key session:{:012x}, loaded {} rows in {ms}ms",
                r(16),
                r(17) % 500
            ),
        ),
        _ => (
            "error",
            500,
            format!(
                "payment {:08x}-{:04x} declined for user u-{}: insufficient funds (order {})",
                r(18) as u32,
                r(19) as u16,
                r(20) % 1_000_000,
                r(21) % 10_000_000
            ),
        ),
    };
    format!(
        "{{\"service\":\"{service}\",\"level\":\"{level}\",\"message\":\"{message}\",\"request_id\":\"{req}\",\"client_ip\":\"{ip}\",\"method\":\"{method}\",\"path\":\"{path}\",\"status\":{status},\"duration_ms\":{ms},\"bytes\":{},\"user_agent\":\"{}\"}}",
        r(22) % 2_000_000,
        AGENTS[(r(23) % 4) as usize],
    )
}

/// The bench's first line: about 200 bytes, padded with a repeated `"x":0`.
pub fn padded(i: u64, service: &str) -> String {
    let levels = ["info", "info", "info", "warn", "error", "debug"];
    let mut l = format!(
        "{{\"service\":\"{service}\",\"level\":\"{}\",\"message\":\"GET /api/v1/items/{} completed\",\"status\":200,\"duration_ms\":{},\"user\":\"u-{}\"",
        levels[(i % 6) as usize],
        i % 1000,
        i % 250,
        i % 5000
    );
    while l.len() < 198 {
        l.push_str(",\"x\":0");
        if l.len() > 198 {
            break;
        }
    }
    l.push('}');
    l
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn realistic_lines_are_200_to_400_bytes_valid_and_distinct() {
        let mut ids = std::collections::HashSet::new();
        for i in 0..10_000 {
            let l = realistic(i, "svc-1");
            assert!((200..=400).contains(&l.len()), "{} bytes: {l}", l.len());
            let v: serde_json::Value = serde_json::from_str(&l).expect(&l);
            assert_eq!(v.as_object().unwrap().len(), 11);
            assert!(ids.insert(v["request_id"].as_str().unwrap().to_string()));
        }
    }

    /// Every line is distinct, yet there are only a few kinds of line: what `/patterns` is for.
    /// Masking that let a variable piece through would make each id a template of its own.
    #[test]
    fn realistic_lines_mask_to_a_few_templates() {
        let mut templates = std::collections::HashSet::new();
        for i in 0..50_000 {
            let v: serde_json::Value = serde_json::from_str(&realistic(i, "svc-1")).unwrap();
            templates.insert(logjet_core::pattern::mask(v["message"].as_str().unwrap()));
        }
        // 3 methods × 8 paths for completed requests, 8 paths rate-limited, and one or two shapes
        // of each other kind (an id whose hex happens to be all digits masks as a number).
        assert!(
            templates.len() <= 48,
            "{} templates: {:?}",
            templates.len(),
            templates.iter().take(20).collect::<Vec<_>>()
        );
    }
}
