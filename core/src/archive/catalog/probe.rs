//! Reads of single index objects: token probes and seq lists.

use futures::StreamExt;

use super::{Catalog, SegmentMeta};
use crate::archive::ArchiveError;
use crate::archive::bloom::TokenFilter;
use crate::archive::index;

/// Which row groups of a segment a search must read, by its token filters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// The segment certainly holds none of the tokens' events.
    Absent,
    /// Every row group (no tokens, or an index object without row-group filters).
    AllRowGroups,
    /// Only these row groups (ascending) may hold them.
    RowGroups(Vec<usize>),
}

impl Catalog {
    /// Whether the segment may hold every one of `tokens` (lower- or mixed-case identifiers,
    /// as `tokens::as_single_identifier` gives them). Reads one 64-byte filter block per
    /// distinct block with ranged GETs; `false` means certainly not. No tokens: `true`.
    pub async fn probe(&self, meta: &SegmentMeta, tokens: &[&str]) -> Result<bool, ArchiveError> {
        if tokens.is_empty() {
            return Ok(true);
        }
        let f = meta.header.filter.unwrap_or_default();
        if f.blocks == 0 {
            return Ok(false);
        }
        let mut ranges: Vec<std::ops::Range<u64>> = tokens
            .iter()
            .map(|t| {
                let r = TokenFilter::block_range(f.blocks, t.as_bytes());
                f.offset + r.start..f.offset + r.end
            })
            .collect();
        ranges.sort_by_key(|r| r.start);
        ranges.dedup();
        let blocks = self.store().get_ranges(&meta.index_path, &ranges).await?;
        for t in tokens {
            let r = TokenFilter::block_range(f.blocks, t.as_bytes());
            let start = f.offset + r.start;
            let i = ranges
                .binary_search_by_key(&start, |r| r.start)
                .map_err(|_| ArchiveError::corrupt(&meta.index_path, "probe lost a block"))?;
            let block = blocks.get(i).ok_or_else(|| {
                ArchiveError::corrupt(&meta.index_path, "short filter block read")
            })?;
            if !TokenFilter::block_may_contain(block, f.k, t.as_bytes()) {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// [`Catalog::probe`], then, when the segment may hold every token and its index object has
    /// row-group filters, the same probe of each row group's filter (one more ranged read of a
    /// block per token and row group): which row groups a search must read.
    pub async fn probe_row_groups(
        &self,
        meta: &SegmentMeta,
        tokens: &[&str],
    ) -> Result<Probe, ArchiveError> {
        if !self.probe(meta, tokens).await? {
            return Ok(Probe::Absent);
        }
        let Some(rg) = meta.header.row_group_filters.as_ref() else {
            return Ok(Probe::AllRowGroups);
        };
        if tokens.is_empty() {
            return Ok(Probe::AllRowGroups);
        }
        // (row group, token) → the block's byte range; groups without blocks hold nothing.
        let mut wanted = Vec::new();
        for (g, &blocks) in rg.blocks.iter().enumerate() {
            let Some(at) = rg.range(g) else { continue };
            if blocks == 0 {
                continue;
            }
            for t in tokens {
                let r = TokenFilter::block_range(blocks, t.as_bytes());
                wanted.push((g, *t, at.start + r.start..at.start + r.end));
            }
        }
        let mut ranges: Vec<std::ops::Range<u64>> =
            wanted.iter().map(|(_, _, r)| r.clone()).collect();
        ranges.sort_by_key(|r| r.start);
        ranges.dedup();
        let blocks = self.store().get_ranges(&meta.index_path, &ranges).await?;
        let mut may: Vec<bool> = rg.blocks.iter().map(|&b| b > 0).collect();
        for (g, t, r) in &wanted {
            let i = ranges
                .binary_search_by_key(&r.start, |r| r.start)
                .map_err(|_| ArchiveError::corrupt(&meta.index_path, "probe lost a block"))?;
            let block = blocks.get(i).ok_or_else(|| {
                ArchiveError::corrupt(&meta.index_path, "short filter block read")
            })?;
            if !TokenFilter::block_may_contain(block, rg.k, t.as_bytes()) {
                may[*g] = false;
            }
        }
        Ok(Probe::RowGroups(
            (0..may.len()).filter(|&g| may[g]).collect(),
        ))
    }

    /// [`Catalog::probe_row_groups`] of many segments, `concurrency` at a time; results in the
    /// order given.
    pub async fn probe_all(
        &self,
        metas: Vec<SegmentMeta>,
        tokens: &[&str],
    ) -> Vec<(SegmentMeta, Result<Probe, ArchiveError>)> {
        futures::stream::iter(metas)
            .map(|m| async move {
                let r = self.probe_row_groups(&m, tokens).await;
                (m, r)
            })
            .buffered(self.inner.opts.concurrency.max(1))
            .collect()
            .await
    }

    /// A segment's message sequences, from its index object (one ranged GET).
    pub async fn seq_list(&self, meta: &SegmentMeta) -> Result<Vec<u64>, ArchiveError> {
        let f = meta.header.filter.unwrap_or_default();
        let bytes = self
            .store()
            .get_range(&meta.index_path, meta.header_end..f.offset)
            .await?;
        let seqs = index::decode_seqs(&bytes)
            .ok_or_else(|| ArchiveError::corrupt(&meta.index_path, "malformed seq list"))?;
        if seqs.len() as u64 != meta.header.messages {
            return Err(ArchiveError::corrupt(&meta.index_path, "seq list length"));
        }
        Ok(seqs)
    }

    /// Whether message `seq` of stream incarnation `incarnation` is already archived in a
    /// segment of `service`: the archiver's check for a redelivered message (published at
    /// `published_ms`). Reads the seq lists of the few segments whose `[first_seq, last_seq]`
    /// covers it and that were created after it was published (less the clock skew allowance).
    ///
    /// Answers from what the catalog holds: call [`Catalog::refresh_recent`] first (once per
    /// batch of redelivered messages) so commits by other replicas are known.
    pub async fn contains_seq(
        &self,
        service: &str,
        incarnation: u64,
        seq: u64,
        published_ms: i64,
    ) -> Result<bool, ArchiveError> {
        let skew = i64::try_from(self.inner.opts.clock_skew.as_millis()).unwrap_or(i64::MAX);
        let mut covering: Vec<SegmentMeta> = self
            .read()
            .segments
            .values()
            .filter(|m| {
                let h = &m.header;
                h.service == service
                    && h.incarnation == incarnation
                    && (h.first_seq..=h.last_seq).contains(&seq)
                    && h.created >= published_ms.saturating_sub(skew)
            })
            .cloned()
            .collect();
        covering.sort_by_key(|m| std::cmp::Reverse(m.header.created));
        for m in covering {
            if m.header.first_seq == seq || m.header.last_seq == seq {
                return Ok(true);
            }
            if self.seq_list(&m).await?.binary_search(&seq).is_ok() {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
