//! Index objects: a segment's catalog entry, whose existence commits the segment.
//!
//! ```text
//! "LJIX"  u8 version (1)  u32le header_len  header (JSON)  seq list  token filter
//!         [row-group token filters]
//! ```
//!
//! The seq list runs from the end of the header to `header.filter.offset`: the message
//! sequences, ascending, as LEB128 varints of the first value and then of each difference. The
//! token filter ([`TokenFilter`]) runs from `filter.offset`, `filter.blocks` × 64 bytes; then,
//! when the header has `row_group_filters`, one filter per row group of the segment, back to
//! back to the end of the object (older index objects end after the token filter). A reader needing only the header fetches the first
//! [`HEADER_PROBE_BYTES`]; one needing one filter block fetches 64 bytes at
//! `filter.offset + block_range`.

use super::bloom::{BLOCK_BYTES, TokenFilter};
use super::header::{FilterInfo, HEADER_VERSION, RowGroupFilters, SegmentHeader};
use super::{ArchiveError, layout};

pub const MAGIC: &[u8; 4] = b"LJIX";
pub const VERSION: u8 = 1;
/// Magic, version and header length.
pub const PREFIX_BYTES: usize = 9;
/// What a catalog fetches first; headers are a few hundred bytes unless a segment spans many
/// minutes.
pub const HEADER_PROBE_BYTES: u64 = 4096;
/// A header longer than this is refused as corrupt (a day of minutes is ~60 KiB).
pub const MAX_HEADER_BYTES: u32 = 4 << 20;

/// A decoded index object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexObject {
    pub header: SegmentHeader,
    /// Byte offset where the seq list starts (the end of the header).
    pub header_end: u64,
    pub seqs: Vec<u64>,
    pub filter: TokenFilter,
    /// One per row group (empty when the object predates them).
    pub row_group_filters: Vec<TokenFilter>,
}

/// Encodes an index object. `header.filter` is filled in here (where the filter starts, its
/// blocks and `k`); the header's other fields are written as given. `seqs` must be the
/// segment's sorted sequence list (its `first_seq`, `last_seq`, `messages` and `seqhash` are
/// checked against it). `row_group_filters` (one per row group of the segment, in file order)
/// follow the token filter; `header.row_group_filters` is filled in to say where.
pub fn encode(
    header: &SegmentHeader,
    seqs: &[u64],
    filter: &TokenFilter,
    row_group_filters: &[TokenFilter],
) -> Result<Vec<u8>, ArchiveError> {
    check_seqs(header, seqs)?;
    let seq_bytes = encode_seqs(seqs);
    let mut header = header.clone();
    // The filter's offset is written inside the header whose length it depends on: settle it
    // by iterating (the digits of the offset change its length at most a few times).
    let mut offset = 0u64;
    let json = loop {
        header.filter = Some(FilterInfo {
            offset,
            blocks: filter.blocks(),
            k: filter.k(),
        });
        header.row_group_filters = (!row_group_filters.is_empty()).then(|| RowGroupFilters {
            offset: offset + filter.as_bytes().len() as u64,
            k: row_group_filters[0].k(),
            blocks: row_group_filters.iter().map(TokenFilter::blocks).collect(),
        });
        let json = serde_json::to_vec(&header)
            .map_err(|e| ArchiveError::corrupt(&header.segment, format!("header: {e}")))?;
        let want = (PREFIX_BYTES + json.len() + seq_bytes.len()) as u64;
        if want == offset {
            break json;
        }
        offset = want;
    };
    if row_group_filters.iter().any(|f| f.k() != filter.k()) {
        return Err(ArchiveError::corrupt(
            &header.segment,
            "row group filters with another k",
        ));
    }
    let rg_bytes: usize = row_group_filters.iter().map(|f| f.as_bytes().len()).sum();
    let mut out = Vec::with_capacity(offset as usize + filter.as_bytes().len() + rg_bytes);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(json.len() as u32).to_le_bytes());
    out.extend_from_slice(&json);
    out.extend_from_slice(&seq_bytes);
    out.extend_from_slice(filter.as_bytes());
    for f in row_group_filters {
        out.extend_from_slice(f.as_bytes());
    }
    Ok(out)
}

/// What the first bytes of an index object tell.
#[derive(Debug)]
pub enum HeaderProbe {
    Complete {
        header: Box<SegmentHeader>,
        header_end: u64,
    },
    /// The header ends at this offset: fetch up to there.
    NeedBytes(u64),
}

/// Reads the header from the first bytes of an index object (`name` is for errors).
pub fn decode_header(name: &str, prefix: &[u8]) -> Result<HeaderProbe, ArchiveError> {
    if prefix.len() < PREFIX_BYTES {
        return Err(ArchiveError::corrupt(name, "shorter than the index prefix"));
    }
    if &prefix[..4] != MAGIC {
        return Err(ArchiveError::corrupt(
            name,
            "not an index object (no LJIX magic)",
        ));
    }
    if prefix[4] != VERSION {
        return Err(ArchiveError::corrupt(
            name,
            format!("index version {} (this build reads {VERSION})", prefix[4]),
        ));
    }
    let len = u32::from_le_bytes([prefix[5], prefix[6], prefix[7], prefix[8]]);
    if len > MAX_HEADER_BYTES {
        return Err(ArchiveError::corrupt(
            name,
            format!("header of {len} bytes"),
        ));
    }
    let end = PREFIX_BYTES as u64 + u64::from(len);
    if (prefix.len() as u64) < end {
        return Ok(HeaderProbe::NeedBytes(end));
    }
    let header: SegmentHeader = serde_json::from_slice(&prefix[PREFIX_BYTES..end as usize])
        .map_err(|e| ArchiveError::corrupt(name, format!("header: {e}")))?;
    check_header(name, &header, end)?;
    Ok(HeaderProbe::Complete {
        header: Box::new(header),
        header_end: end,
    })
}

/// Decodes a whole index object and checks every part against the header.
pub fn decode(name: &str, bytes: &[u8]) -> Result<IndexObject, ArchiveError> {
    let HeaderProbe::Complete { header, header_end } = decode_header(name, bytes)? else {
        return Err(ArchiveError::corrupt(name, "truncated inside the header"));
    };
    let filter_info = header.filter.unwrap_or_default();
    let filter_end = filter_end(&header);
    if object_len(&header) != Some(bytes.len() as u64) {
        return Err(ArchiveError::corrupt(
            name,
            format!("{} bytes, not what the header says", bytes.len()),
        ));
    }
    let seqs = decode_seqs(&bytes[header_end as usize..filter_info.offset as usize])
        .ok_or_else(|| ArchiveError::corrupt(name, "malformed seq list"))?;
    check_seqs(&header, &seqs).map_err(|e| ArchiveError::corrupt(name, e.to_string()))?;
    let filter_end = filter_end.unwrap_or_default() as usize;
    let filter = TokenFilter::from_bytes(
        bytes[filter_info.offset as usize..filter_end].to_vec(),
        filter_info.k,
    )
    .ok_or_else(|| ArchiveError::corrupt(name, "malformed token filter"))?;
    let mut row_group_filters = Vec::new();
    if let Some(rg) = &header.row_group_filters {
        for i in 0..rg.blocks.len() {
            let r = rg.range(i).unwrap_or_default();
            let f = TokenFilter::from_bytes(bytes[r.start as usize..r.end as usize].to_vec(), rg.k)
                .ok_or_else(|| ArchiveError::corrupt(name, "malformed row group filter"))?;
            row_group_filters.push(f);
        }
    }
    Ok(IndexObject {
        header: *header,
        header_end,
        seqs,
        filter,
        row_group_filters,
    })
}

/// Where the token filter ends, by the header (`None` when it says nonsense).
fn filter_end(h: &SegmentHeader) -> Option<u64> {
    let f = h.filter.unwrap_or_default();
    f.blocks
        .checked_mul(BLOCK_BYTES as u64)
        .and_then(|b| b.checked_add(f.offset))
}

/// The size of the whole index object its header describes: to the end of the token filter,
/// or of the row-group filters when it has them. `None` when the header says nonsense.
pub fn object_len(h: &SegmentHeader) -> Option<u64> {
    let end = filter_end(h);
    match &h.row_group_filters {
        None => end,
        Some(rg) if Some(rg.offset) == end => rg.offset.checked_add(rg.bytes()),
        Some(_) => None,
    }
}

/// What must hold for any header a catalog accepts.
fn check_header(name: &str, h: &SegmentHeader, header_end: u64) -> Result<(), ArchiveError> {
    let bad = |p: String| Err(ArchiveError::corrupt(name, p));
    if h.version != HEADER_VERSION {
        return bad(format!("header version {}", h.version));
    }
    let Some(f) = h.filter else {
        return bad("header without a filter".into());
    };
    if f.offset < header_end || !(1..=super::bloom::MAX_K).contains(&f.k) {
        return bad(format!("filter at {} with k={}", f.offset, f.k));
    }
    if let Some(rg) = &h.row_group_filters
        && (Some(rg.offset) != filter_end(h) || !(1..=super::bloom::MAX_K).contains(&rg.k))
    {
        return bad(format!(
            "row group filters at {} with k={}",
            rg.offset, rg.k
        ));
    }
    let Some(seg) = layout::parse_segment_path(&h.segment) else {
        return bad(format!("segment path {:?}", h.segment));
    };
    let consistent = seg.service == h.service
        && seg.name.incarnation == h.incarnation
        && seg.name.first_seq == h.first_seq
        && seg.name.last_seq == h.last_seq
        && format!("{:016x}", seg.name.seqhash) == h.seqhash
        && h.min_ts <= h.max_ts
        && h.rows == h.levels.iter().sum::<u64>()
        && h.messages >= 1;
    if !consistent {
        return bad("header disagrees with its segment path or its counts".into());
    }
    Ok(())
}

fn check_seqs(h: &SegmentHeader, seqs: &[u64]) -> Result<(), ArchiveError> {
    let ok = seqs.windows(2).all(|w| w[0] < w[1])
        && seqs.first() == Some(&h.first_seq)
        && seqs.last() == Some(&h.last_seq)
        && seqs.len() as u64 == h.messages
        && format!("{:016x}", layout::seq_hash(seqs)) == h.seqhash;
    if ok {
        Ok(())
    } else {
        Err(ArchiveError::corrupt(
            &h.segment,
            "seq list disagrees with the header (first/last/messages/seqhash)",
        ))
    }
}

/// Ascending sequences as LEB128 varints: the first value, then each difference.
pub fn encode_seqs(seqs: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(seqs.len() * 2);
    let mut prev = 0u64;
    for &s in seqs {
        let mut v = s.wrapping_sub(prev);
        prev = s;
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    out
}

/// The inverse of [`encode_seqs`]; `None` on a truncated or overlong varint or a sequence that
/// does not increase.
pub fn decode_seqs(mut bytes: &[u8]) -> Option<Vec<u64>> {
    let mut out = Vec::new();
    let mut prev: Option<u64> = None;
    while !bytes.is_empty() {
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let (&b, rest) = bytes.split_first()?;
            bytes = rest;
            if shift == 63 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
            if shift > 63 {
                return None;
            }
        }
        let s = match prev {
            None => v,
            Some(p) if v > 0 => p.checked_add(v)?,
            Some(_) => return None,
        };
        out.push(s);
        prev = Some(s);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::bloom::token_hash;
    use crate::archive::header::HEADER_VERSION;
    use crate::archive::layout::SegmentName;

    fn sample(seqs: &[u64], tokens: usize) -> (SegmentHeader, TokenFilter) {
        let name = SegmentName::for_seqs(1_700_000_000_000, seqs).unwrap();
        let mut hashes: Vec<u64> = (0..tokens)
            .map(|i| token_hash(format!("id-{i}").as_bytes()))
            .collect();
        hashes.sort_unstable();
        hashes.dedup();
        let header = SegmentHeader {
            version: HEADER_VERSION,
            segment: name.segment_path("api", 1_700_000_000_000_000_000),
            service: "api".into(),
            min_ts: 1_700_000_000_000_000_000,
            max_ts: 1_700_000_060_000_000_000,
            rows: 10,
            bytes: 4096,
            raw_bytes: 3000,
            levels: [0, 0, 9, 0, 1, 0],
            minutes: vec![(1_700_000_000_000 / 60_000 * 60_000, [0, 0, 9, 0, 1, 0])],
            incarnation: name.incarnation,
            first_seq: name.first_seq,
            last_seq: name.last_seq,
            messages: seqs.len() as u64,
            seqhash: format!("{:016x}", name.seqhash),
            created: 1_700_000_100_000,
            checksum: Some("0000000000000001".into()),
            filter: None,
            row_group_filters: None,
        };
        (header, TokenFilter::from_hashes(&hashes))
    }

    #[test]
    fn round_trips_and_places_the_filter() {
        let seqs = [3, 4, 200, 201, 70_000, u64::MAX - 1];
        let (header, filter) = sample(&seqs, 1000);
        let bytes = encode(&header, &seqs, &filter, &[]).unwrap();
        let obj = decode("x", &bytes).unwrap();
        assert_eq!(obj.seqs, seqs);
        assert_eq!(obj.filter, filter);
        let info = obj.header.filter.unwrap();
        assert_eq!(info.blocks, filter.blocks());
        assert_eq!(
            &bytes[info.offset as usize..info.offset as usize + 64],
            &filter.as_bytes()[..64]
        );
        assert_eq!(
            SegmentHeader {
                filter: None,
                row_group_filters: None,
                ..obj.header.clone()
            },
            header
        );
        // A short prefix asks for the rest of the header.
        match decode_header("x", &bytes[..20]).unwrap() {
            HeaderProbe::NeedBytes(end) => assert_eq!(end, obj.header_end),
            other => panic!("{other:?}"),
        }
        match decode_header("x", &bytes[..obj.header_end as usize]).unwrap() {
            HeaderProbe::Complete { header, .. } => assert_eq!(*header, obj.header),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn row_group_filters_follow_the_token_filter() {
        let seqs = [5, 6, 7];
        let (header, filter) = sample(&seqs, 300);
        let groups: Vec<TokenFilter> = [10u64, 0, 200]
            .iter()
            .enumerate()
            .map(|(g, &n)| {
                let hashes: Vec<u64> = (0..n)
                    .map(|i| token_hash(format!("g{g}-{i}x1").as_bytes()))
                    .collect();
                TokenFilter::from_hashes(&hashes)
            })
            .collect();
        let bytes = encode(&header, &seqs, &filter, &groups).unwrap();
        let obj = decode("x", &bytes).unwrap();
        assert_eq!(obj.filter, filter);
        assert_eq!(obj.row_group_filters, groups);
        let rg = obj.header.row_group_filters.clone().unwrap();
        let f = obj.header.filter.unwrap();
        assert_eq!(rg.offset, f.offset + f.blocks * 64);
        assert_eq!(rg.blocks, vec![1, 0, 4]);
        let r2 = rg.range(2).unwrap();
        assert_eq!(r2.end, bytes.len() as u64);
        assert_eq!(
            &bytes[r2.start as usize..r2.end as usize],
            groups[2].as_bytes()
        );
        assert!(rg.range(3).is_none());
        // Truncated or extended, the object is refused.
        assert!(decode("x", &bytes[..bytes.len() - 64]).is_err());
        let mut extra = bytes.clone();
        extra.extend_from_slice(&[0; 64]);
        assert!(decode("x", &extra).is_err());
        // An object without them (written before they existed) still reads.
        let old = encode(&header, &seqs, &filter, &[]).unwrap();
        let obj = decode("x", &old).unwrap();
        assert!(obj.header.row_group_filters.is_none() && obj.row_group_filters.is_empty());
    }

    #[test]
    fn an_empty_filter_is_fine() {
        let (header, filter) = sample(&[9], 0);
        let bytes = encode(&header, &[9], &filter, &[]).unwrap();
        let obj = decode("x", &bytes).unwrap();
        assert_eq!(obj.filter.blocks(), 0);
        assert_eq!(obj.header.filter.unwrap().offset, bytes.len() as u64);
    }

    #[test]
    fn corruption_is_an_error_never_a_panic() {
        let seqs = [1, 2, 3, 10];
        let (header, filter) = sample(&seqs, 50);
        let bytes = encode(&header, &seqs, &filter, &[]).unwrap();
        for cut in [0, 3, 8, 9, 30, bytes.len() - 64, bytes.len() - 1] {
            assert!(decode("x", &bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut extra = bytes.clone();
        extra.push(0);
        assert!(decode("x", &extra).is_err());
        // Flip every byte of the prefix, header and seq list in turn: each is either caught or
        // leaves a valid object (a flipped bit inside a JSON string the checks do not cover).
        let seq_end = decode("x", &bytes).unwrap().header.filter.unwrap().offset as usize;
        for i in 0..seq_end {
            let mut b = bytes.clone();
            b[i] ^= 0x55;
            let _ = decode("x", &b);
        }
        let e = encode(&header, &[1, 2, 3], &filter, &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("seq list"), "{e}");
    }

    #[test]
    fn seq_varints() {
        for seqs in [
            vec![],
            vec![0],
            vec![127, 128, 16_383, 16_384],
            vec![1, u64::MAX],
        ] {
            assert_eq!(decode_seqs(&encode_seqs(&seqs)).unwrap(), seqs);
        }
        assert_eq!(encode_seqs(&[5, 6, 8]), vec![5, 1, 2]);
        assert_eq!(decode_seqs(&[0x80]), None);
        assert_eq!(decode_seqs(&[5, 0]), None);
        assert_eq!(decode_seqs(&[0xff; 11]), None);
    }
}
