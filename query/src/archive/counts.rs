//! Counts beyond Redis's counters: the exact per-minute level counts every segment header carries
//! (`minutes`), shaped like Redis's counter hashes (`service|level` → count) so the statistics'
//! reducers read both tiers alike.
//!
//! Which tier counts what is decided by time alone, by the caller: Redis for buckets from its
//! horizon on, the archive for older ones, so an event both hold is counted once.

use std::collections::HashMap;

use logjet_core::Level;
use logjet_core::archive::{Catalog, SegmentMeta, TsRange};
use logjet_core::keys;

const MINUTE_S: i64 = 60;
const NS: i64 = 1_000_000_000;

/// Counter-hash shaped counts of the minutes starting in `[from_s, to_s)` (unix seconds), one
/// hash per bucket of `step_s` seconds from `first_s` (a bucket start): a minute goes to the
/// bucket holding its start, so buckets shorter than a minute get their minute's whole count.
/// `buckets` hashes are returned; minutes past the last one are left out.
pub fn bucket_hashes(
    metas: &[SegmentMeta],
    service: Option<&str>,
    first_s: i64,
    step_s: i64,
    buckets: usize,
    to_s: i64,
) -> Vec<HashMap<String, u64>> {
    let mut out = vec![HashMap::new(); buckets];
    let step_s = step_s.max(1);
    for m in metas {
        let h = &m.header;
        if service.is_some_and(|s| s != h.service) {
            continue;
        }
        for (minute_ms, counts) in &h.minutes {
            let minute_s = minute_ms.div_euclid(1000);
            if minute_s < first_s || minute_s >= to_s {
                continue;
            }
            let Ok(i) = usize::try_from((minute_s - first_s) / step_s) else {
                continue;
            };
            let Some(hash) = out.get_mut(i) else {
                continue;
            };
            for (level, n) in Level::ALL.iter().zip(counts) {
                if *n > 0 {
                    *hash
                        .entry(keys::counter_field(&h.service, *level))
                        .or_default() += n;
                }
            }
        }
    }
    out
}

/// The segments whose minutes may fall in `[from_s, to_s)`: those with events in that range
/// (pruned by their headers' per-minute counts).
pub fn segments_between(
    catalog: &Catalog,
    service: Option<&str>,
    from_s: i64,
    to_s: i64,
) -> Vec<SegmentMeta> {
    if to_s <= from_s {
        return Vec::new();
    }
    let since = from_s.saturating_mul(NS);
    // The last minute starting before `to_s` ends a minute later.
    let until = to_s
        .saturating_add(MINUTE_S)
        .saturating_mul(NS)
        .saturating_sub(1);
    catalog.candidates(service, TsRange::new(Some(since), Some(until)), None)
}

/// One counter-shaped hash of the archive's minutes starting in `[from_s, to_s)`.
pub fn hash_between(
    catalog: &Catalog,
    service: Option<&str>,
    from_s: i64,
    to_s: i64,
) -> HashMap<String, u64> {
    let metas = segments_between(catalog, service, from_s, to_s);
    bucket_hashes(&metas, service, from_s, to_s - from_s, 1, to_s)
        .pop()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use logjet_core::archive::SegmentHeader;

    use super::*;

    fn meta(service: &str, minutes: Vec<(i64, [u64; 6])>) -> SegmentMeta {
        let header = SegmentHeader {
            version: 1,
            segment: format!("segments/{service}/x.parquet"),
            service: service.into(),
            min_ts: minutes.first().map_or(0, |m| m.0 * 1_000_000),
            max_ts: minutes.last().map_or(0, |m| m.0 * 1_000_000 + 59 * NS),
            rows: minutes.iter().map(|m| m.1.iter().sum::<u64>()).sum(),
            bytes: 1,
            raw_bytes: 1,
            levels: [0; 6],
            minutes,
            incarnation: 1,
            first_seq: 1,
            last_seq: 1,
            messages: 1,
            seqhash: "0000000000000000".into(),
            created: 0,
            checksum: None,
            filter: None,
            row_group_filters: None,
        };
        SegmentMeta {
            header: Arc::new(header),
            index_path: "index/x.idx".into(),
            header_end: 0,
        }
    }

    #[test]
    fn minutes_land_in_their_buckets_once() {
        let hour = 3600i64;
        let metas = vec![
            // 00:00 and 00:59 in the first hour, 01:00 in the second, 02:00 past the end.
            meta(
                "api",
                vec![
                    (0, [0, 0, 2, 0, 1, 0]),
                    (59 * 60_000, [0, 0, 1, 0, 0, 0]),
                    (hour * 1000, [0, 0, 0, 3, 0, 0]),
                    (2 * hour * 1000, [0, 0, 7, 0, 0, 0]),
                ],
            ),
            meta("web", vec![(30 * 60_000, [0, 0, 0, 0, 0, 4])]),
        ];
        let h = bucket_hashes(&metas, None, 0, hour, 2, 2 * hour);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0]["api|info"], 3);
        assert_eq!(h[0]["api|error"], 1);
        assert_eq!(h[0]["web|fatal"], 4);
        assert!(!h[0].contains_key("api|warn"), "zero counts are left out");
        assert_eq!(h[1]["api|warn"], 3);
        assert_eq!(h[1].len(), 1, "02:00 is past `to`: {:?}", h[1]);

        let api = bucket_hashes(&metas, Some("api"), 0, hour, 2, 2 * hour);
        assert!(!api[0].contains_key("web|fatal"));
        // `to` cuts inside a bucket: 00:59 is left out.
        let cut = bucket_hashes(&metas, None, 0, hour, 1, 59 * 60);
        assert_eq!(cut[0]["api|info"], 2);
        // A 10 s bucket gets its minute's whole count; later buckets of that minute nothing.
        let fine = bucket_hashes(&metas, Some("web"), 30 * 60, 10, 3, 31 * 60);
        assert_eq!(fine[0]["web|fatal"], 4);
        assert!(fine[1].is_empty() && fine[2].is_empty());
    }
}
