//! The token filter of an index object: a blocked Bloom filter.
//!
//! Every token's bits lie in one 512-bit (64-byte) block, chosen by the token's hash, so a
//! reader that wants to know whether a segment may hold `req-42` fetches one 64-byte block with
//! a ranged GET ([`TokenFilter::block_range`]) instead of the whole filter.
//!
//! A token is hashed once, as the Redis tier hashes it ([`crate::tokens::token_hashes`], xxh3
//! of the lower-cased token, seed 0). The upper 32 bits pick the block (multiply-shift, so any
//! block count works); the lower 32 bits give the `k` bit positions inside the block: the top 9
//! bits of the value, which is then multiplied by the golden-ratio constant for the next
//! position (RocksDB's FastLocalBloom scheme). Writers keep only that one `u64` per distinct
//! token, and size the filter at [`BITS_PER_TOKEN`] bits per distinct token once they know how
//! many there are.

use std::ops::Range;

use crate::tokens;

pub const BLOCK_BYTES: usize = 64;
const BLOCK_BITS: u32 = 512;
/// About 1 % false positives at `k` = 7 (measured in the tests below: < 2 %).
pub const BITS_PER_TOKEN: usize = 10;
pub const DEFAULT_K: u8 = 7;
/// Most bit positions a block can take from 32 bits of hash without repeating itself.
pub const MAX_K: u8 = 16;

/// A token's hash, as the filter uses it.
pub fn token_hash(token: &[u8]) -> u64 {
    tokens::token_hashes(token).0
}

/// A blocked Bloom filter: `blocks` × 64 bytes, `k` bits per token in one block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenFilter {
    k: u8,
    bytes: Vec<u8>,
}

impl TokenFilter {
    /// A filter holding the given distinct token hashes, sized at [`BITS_PER_TOKEN`] each. No
    /// tokens: no blocks (and every probe answers "absent").
    pub fn from_hashes(hashes: &[u64]) -> TokenFilter {
        let bits = hashes.len() * BITS_PER_TOKEN;
        let blocks = bits.div_ceil(BLOCK_BITS as usize);
        let mut f = TokenFilter::with_blocks(blocks, DEFAULT_K);
        for &h in hashes {
            f.insert_hash(h);
        }
        f
    }

    pub fn with_blocks(blocks: usize, k: u8) -> TokenFilter {
        TokenFilter {
            k: k.clamp(1, MAX_K),
            bytes: vec![0; blocks * BLOCK_BYTES],
        }
    }

    /// A filter read back from an index object. `None` unless the length is whole blocks and
    /// `k` is in range.
    pub fn from_bytes(bytes: Vec<u8>, k: u8) -> Option<TokenFilter> {
        (bytes.len().is_multiple_of(BLOCK_BYTES) && (1..=MAX_K).contains(&k))
            .then_some(TokenFilter { k, bytes })
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn k(&self) -> u8 {
        self.k
    }

    pub fn blocks(&self) -> u64 {
        (self.bytes.len() / BLOCK_BYTES) as u64
    }

    pub fn insert_hash(&mut self, hash: u64) {
        let Some(block) = block_index(self.blocks(), hash) else {
            return;
        };
        let start = block as usize * BLOCK_BYTES;
        let block = &mut self.bytes[start..start + BLOCK_BYTES];
        for bit in bit_positions(hash, self.k) {
            block[(bit / 8) as usize] |= 1 << (bit % 8);
        }
    }

    pub fn insert(&mut self, token: &[u8]) {
        self.insert_hash(token_hash(token));
    }

    /// `false` means the token is certainly absent (case-insensitive).
    pub fn may_contain(&self, token: &[u8]) -> bool {
        self.may_contain_hash(token_hash(token))
    }

    pub fn may_contain_hash(&self, hash: u64) -> bool {
        let Some(block) = block_index(self.blocks(), hash) else {
            return false;
        };
        let start = block as usize * BLOCK_BYTES;
        block_has(&self.bytes[start..start + BLOCK_BYTES], hash, self.k)
    }

    /// Bytes of the filter, relative to its start, that hold `token`'s block; empty when the
    /// filter has no blocks. Add the filter's offset in its index object for a ranged GET.
    pub fn block_range(blocks: u64, token: &[u8]) -> Range<u64> {
        match block_index(blocks, token_hash(token)) {
            Some(b) => b * BLOCK_BYTES as u64..(b + 1) * BLOCK_BYTES as u64,
            None => 0..0,
        }
    }

    /// Whether `token` may be in a filter whose block [`TokenFilter::block_range`] fetched.
    /// `false` for anything but a whole block.
    pub fn block_may_contain(block: &[u8], k: u8, token: &[u8]) -> bool {
        block.len() == BLOCK_BYTES && block_has(block, token_hash(token), k.clamp(1, MAX_K))
    }
}

fn block_index(blocks: u64, hash: u64) -> Option<u64> {
    // Multiply-shift maps the upper 32 bits uniformly onto [0, blocks).
    (blocks > 0).then(|| ((hash >> 32) * blocks) >> 32)
}

fn bit_positions(hash: u64, k: u8) -> impl Iterator<Item = u32> {
    let mut h = hash as u32;
    (0..k).map(move |_| {
        let bit = h >> 23;
        h = h.wrapping_mul(0x9e37_79b9);
        bit
    })
}

fn block_has(block: &[u8], hash: u64, k: u8) -> bool {
    bit_positions(hash, k).all(|bit| block[(bit / 8) as usize] & (1 << (bit % 8)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter_of(n: usize) -> TokenFilter {
        let mut hashes: Vec<u64> = (0..n)
            .map(|i| token_hash(format!("req-{i:08x}").as_bytes()))
            .collect();
        hashes.sort_unstable();
        hashes.dedup();
        TokenFilter::from_hashes(&hashes)
    }

    #[test]
    fn no_false_negatives_and_under_two_percent_false_positives() {
        let n = 50_000;
        let f = filter_of(n);
        assert_eq!(f.blocks(), (n * BITS_PER_TOKEN).div_ceil(512) as u64);
        for i in 0..n {
            assert!(f.may_contain(format!("REQ-{i:08X}").as_bytes()), "{i}");
        }
        let probes = 200_000;
        let fp = (0..probes)
            .filter(|i| f.may_contain(format!("other-{i}").as_bytes()))
            .count();
        let rate = fp as f64 / probes as f64;
        println!(
            "blocked bloom, {BITS_PER_TOKEN} bits/token, k={DEFAULT_K}: FPR {:.3} %",
            rate * 100.0
        );
        assert!(rate < 0.02, "false positive rate {rate}");
    }

    #[test]
    fn one_block_answers_like_the_whole_filter() {
        let f = filter_of(5_000);
        for i in (0..5_000).step_by(7) {
            let tok = format!("req-{i:08x}");
            let r = TokenFilter::block_range(f.blocks(), tok.as_bytes());
            assert_eq!(r.end - r.start, BLOCK_BYTES as u64);
            let block = &f.as_bytes()[r.start as usize..r.end as usize];
            assert!(TokenFilter::block_may_contain(block, f.k(), tok.as_bytes()));
        }
        for i in 0..2_000 {
            let tok = format!("absent-{i}");
            let r = TokenFilter::block_range(f.blocks(), tok.as_bytes());
            let block = &f.as_bytes()[r.start as usize..r.end as usize];
            assert_eq!(
                TokenFilter::block_may_contain(block, f.k(), tok.as_bytes()),
                f.may_contain(tok.as_bytes())
            );
        }
        assert!(!TokenFilter::block_may_contain(&[0xff; 10], 7, b"req-1"));
    }

    #[test]
    fn empty_filters_hold_nothing() {
        let f = TokenFilter::from_hashes(&[]);
        assert_eq!(f.blocks(), 0);
        assert!(!f.may_contain(b"req-1"));
        assert_eq!(TokenFilter::block_range(0, b"req-1"), 0..0);
    }

    #[test]
    fn bytes_round_trip() {
        let f = filter_of(1000);
        let back = TokenFilter::from_bytes(f.as_bytes().to_vec(), f.k()).unwrap();
        assert_eq!(back, f);
        assert!(TokenFilter::from_bytes(vec![0; 65], 7).is_none());
        assert!(TokenFilter::from_bytes(vec![0; 64], 0).is_none());
        assert!(TokenFilter::from_bytes(vec![0; 64], 17).is_none());
    }
}
