//! Reads of single index objects: token probes and seq lists.

use futures::StreamExt;

use super::{Catalog, SegmentMeta};
use crate::archive::ArchiveError;
use crate::archive::bloom::TokenFilter;
use crate::archive::index;

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

    /// [`Catalog::probe`] of many segments, `concurrency` at a time; results in the order given.
    pub async fn probe_all(
        &self,
        metas: Vec<SegmentMeta>,
        tokens: &[&str],
    ) -> Vec<(SegmentMeta, Result<bool, ArchiveError>)> {
        futures::stream::iter(metas)
            .map(|m| async move {
                let r = self.probe(&m, tokens).await;
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
