//! Request bodies and payloads in reused buffers.
//!
//! A batch request needs two buffers of about its body's size: the body as read, and the
//! canonical payload encoded from it, which lives until JetStream acknowledged it. Allocated
//! afresh per request, they cost page faults on every request (the allocator returns freed
//! memory to the system within milliseconds) and leave the allocator holding several times the
//! memory in use at the peak. The pool keeps a few of them: a buffer is handed back as soon as
//! its request is done with it, and taken again when its earlier contents (a payload still
//! being published shares the allocation) are gone.

use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};

/// Buffers kept at most: two per request of the usual number in flight.
const MAX_POOLED: usize = 16;
/// Smaller buffers are not worth keeping (the allocator serves them from its small pages).
const MIN_POOLED_BYTES: usize = 16 * 1024;
/// Buffers with more room than this are not kept.
const MAX_POOLED_BYTES: usize = 512 * 1024;

#[derive(Clone, Default)]
pub struct BufferPool {
    free: Arc<Mutex<Vec<BytesMut>>>,
}

impl BufferPool {
    /// An empty buffer with room for `capacity` bytes: a kept one whose allocation is free
    /// again and big enough when there is one, else a new one.
    pub fn take(&self, capacity: usize) -> BytesMut {
        if (MIN_POOLED_BYTES..=MAX_POOLED_BYTES).contains(&capacity) {
            let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(i) = free.iter_mut().position(|b| b.try_reclaim(capacity)) {
                return free.swap_remove(i);
            }
        }
        BytesMut::with_capacity(capacity)
    }

    /// Whether a buffer of `allocated` bytes is worth keeping.
    pub fn keeps(allocated: usize) -> bool {
        (MIN_POOLED_BYTES..=MAX_POOLED_BYTES).contains(&allocated)
    }

    /// Keeps `buf`'s allocation, of `allocated` bytes (parts split off it included: `buf` alone
    /// cannot tell), for a later [`take`](Self::take). `buf` may still share it with frozen
    /// parts split off it (a payload in flight): it is reused once they are dropped.
    pub fn give_back(&self, mut buf: BytesMut, allocated: usize) {
        buf.clear();
        if !Self::keeps(allocated) {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < MAX_POOLED {
            free.push(buf);
        }
    }

    /// Keeps a read body's allocation when nothing else refers to it any more.
    pub fn recycle(&self, body: Bytes) {
        // Never split, so its room is all of its allocation.
        if let Ok(buf) = body.try_into_mut() {
            let allocated = buf.capacity();
            self.give_back(buf, allocated);
        }
    }

    #[cfg(test)]
    pub(crate) fn pooled(&self) -> usize {
        self.free.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_given_back_is_taken_again_without_allocating() {
        let pool = BufferPool::default();
        let mut buf = pool.take(100_000);
        let at = buf.as_ptr();
        buf.extend_from_slice(&[b'x'; 100_000]);
        pool.recycle(buf.freeze());
        assert_eq!(pool.pooled(), 1);
        let again = pool.take(80_000);
        assert_eq!(again.as_ptr(), at);
        assert!(again.is_empty() && again.capacity() >= 80_000);
        assert_eq!(pool.pooled(), 0);
    }

    #[test]
    fn a_buffer_still_shared_with_a_payload_is_reused_only_once_the_payload_is_gone() {
        let pool = BufferPool::default();
        let mut buf = pool.take(100_000);
        let at = buf.as_ptr();
        buf.extend_from_slice(&[b'x'; 60_000]);
        let allocated = buf.capacity();
        let payload = buf.split().freeze();
        pool.give_back(buf, allocated);
        // The payload is in flight: a new buffer.
        let other = pool.take(100_000);
        assert_ne!(other.as_ptr(), at);
        assert_eq!(pool.pooled(), 1);
        drop(payload);
        let again = pool.take(100_000);
        assert_eq!(again.as_ptr(), at);
    }

    #[test]
    fn only_buffers_worth_keeping_are_kept_and_only_so_many() {
        let pool = BufferPool::default();
        pool.give_back(BytesMut::new(), MAX_POOLED_BYTES + 1);
        pool.give_back(BytesMut::new(), MIN_POOLED_BYTES - 1);
        // A big allocation with little room left after the payload split off it.
        let mut big = BytesMut::with_capacity(4 * MAX_POOLED_BYTES);
        big.extend_from_slice(&vec![b'x'; 4 * MAX_POOLED_BYTES - MIN_POOLED_BYTES]);
        let allocated = big.capacity();
        let _payload = big.split().freeze();
        assert!(BufferPool::keeps(big.capacity()));
        pool.give_back(big, allocated);
        let body = Bytes::from(vec![0u8; MIN_POOLED_BYTES]);
        let held = body.clone();
        pool.recycle(body);
        assert_eq!(pool.pooled(), 0);
        drop(held);
        for _ in 0..MAX_POOLED + 4 {
            pool.give_back(BytesMut::with_capacity(MIN_POOLED_BYTES), MIN_POOLED_BYTES);
        }
        assert_eq!(pool.pooled(), MAX_POOLED);
    }
}
