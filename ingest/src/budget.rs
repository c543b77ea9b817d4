//! The memory budget: bytes held at once for request bodies, across every request.
//!
//! A request holds its body (compressed as received, and decompressed) and then the canonical
//! payload encoded from it, which is about as large: so it reserves [`with_payload`] of its body,
//! twice the body's bytes, but never more than the whole budget (a budget of one body takes one
//! body at a time). A [`Reservation`] is taken before a body is read (for its `Content-Length`, or
//! a first step when there is none) and grows while the body streams in and is decompressed; it
//! is given back when the request is answered (the events parsed from the body and the batches
//! published live no longer than that). Nothing waits: a reservation that does not fit is
//! refused at once and the request answered 503 with `Retry-After`, so a burst of large bodies
//! costs the clients a retry, never the process its memory.
//!
//! A `tokio::sync::Semaphore` with one permit per KiB holds the count.

use std::sync::Arc;

use prometheus::{IntCounterVec, IntGauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

const KIB: u64 = 1024;

/// Reservations grow in steps of at least this, so a streamed body takes the semaphore a few
/// times, not once per frame.
pub const GROWTH_STEP: u64 = 256 * KIB;

/// The reservation taken before a body of unknown length is read.
pub const FIRST_STEP: u64 = 64 * KIB;

/// The bytes a request with `body_bytes` of body holds at its peak: the body and the canonical
/// payload encoded from it, about as large. Counting the body alone let a 256 MiB container
/// holding four 16 MiB bodies reach 97 % of its limit (docs/operations.md).
pub fn with_payload(body_bytes: u64) -> u64 {
    body_bytes.saturating_mul(2)
}

/// Where a request was refused, the `stage` label of `logjet_ingest_memory_rejected_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Before any of the body was read.
    Admission,
    /// While the body was read or decompressed.
    Body,
}

impl Stage {
    pub const ALL: [Stage; 2] = [Stage::Admission, Stage::Body];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Admission => "admission",
            Stage::Body => "body",
        }
    }
}

/// A reservation did not fit: what was asked and what was free.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "ingest memory budget is full: {wanted} more bytes of request body do not fit in the {available} bytes free of {budget}"
)]
pub struct OverBudget {
    pub wanted: u64,
    pub available: u64,
    pub budget: u64,
    pub stage: Stage,
}

/// The metrics the budget keeps current.
#[derive(Clone)]
pub struct BudgetMetrics {
    pub in_flight: IntGauge,
    pub rejected: IntCounterVec,
}

/// The shared budget. Cloning shares it.
#[derive(Clone)]
pub struct MemoryBudget {
    sem: Arc<Semaphore>,
    total_kib: u64,
    metrics: Option<BudgetMetrics>,
}

impl MemoryBudget {
    /// A budget of `bytes` (rounded down to KiB, at least 1 KiB).
    pub fn new(bytes: u64, metrics: Option<BudgetMetrics>) -> MemoryBudget {
        let total_kib = (bytes / KIB).clamp(1, Semaphore::MAX_PERMITS as u64);
        MemoryBudget {
            sem: Arc::new(Semaphore::new(total_kib as usize)),
            total_kib,
            metrics,
        }
    }

    /// The budget in bytes.
    pub fn bytes(&self) -> u64 {
        self.total_kib * KIB
    }

    /// Bytes reserved now.
    pub fn in_flight(&self) -> u64 {
        (self.total_kib - self.sem.available_permits() as u64) * KIB
    }

    /// Reserves `bytes` (at least [`FIRST_STEP`], at most the whole budget) before a body is
    /// read, or refuses at once.
    pub fn reserve(&self, bytes: u64) -> Result<Reservation, OverBudget> {
        let mut r = Reservation {
            budget: self.clone(),
            permit: None,
            kib: 0,
        };
        r.grow_to(bytes.max(FIRST_STEP).min(self.bytes()), Stage::Admission)?;
        Ok(r)
    }

    fn refused(&self, wanted: u64, stage: Stage) -> OverBudget {
        if let Some(m) = &self.metrics {
            m.rejected.with_label_values(&[stage.as_str()]).inc();
        }
        OverBudget {
            wanted,
            available: self.sem.available_permits() as u64 * KIB,
            budget: self.bytes(),
            stage,
        }
    }

    fn update_gauge(&self) {
        if let Some(m) = &self.metrics {
            m.in_flight.set(self.in_flight() as i64);
        }
    }
}

/// Bytes held by one request; given back when dropped.
pub struct Reservation {
    budget: MemoryBudget,
    permit: Option<OwnedSemaphorePermit>,
    kib: u64,
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation")
            .field("bytes", &self.bytes())
            .finish()
    }
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.kib * KIB
    }

    /// Gives every byte back now (the request keeps going without a body).
    pub fn release(&mut self) {
        self.permit.take();
        self.kib = 0;
        self.budget.update_gauge();
    }

    /// Makes the reservation cover `bytes` in all (growing by at least [`GROWTH_STEP`]; more
    /// than the budget's size is the whole budget, as no request can hold more); refuses at once
    /// when that does not fit.
    pub fn ensure(&mut self, bytes: u64) -> Result<(), OverBudget> {
        let bytes = bytes.min(self.budget.bytes());
        if bytes <= self.bytes() {
            return Ok(());
        }
        let stepped = bytes
            .max(self.bytes() + GROWTH_STEP)
            .min(self.budget.bytes());
        self.grow_to(stepped, Stage::Body)
    }

    fn grow_to(&mut self, bytes: u64, stage: Stage) -> Result<(), OverBudget> {
        let want_kib = bytes.div_ceil(KIB);
        let more = want_kib.saturating_sub(self.kib);
        if more == 0 {
            return Ok(());
        }
        let refused = || self.budget.refused(bytes - self.bytes(), stage);
        let Ok(n) = u32::try_from(more) else {
            return Err(refused());
        };
        let permit = match self.budget.sem.clone().try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(_) => return Err(refused()),
        };
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        self.kib = want_kib;
        self.budget.update_gauge();
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // Give the permits back before the gauge is read.
        self.permit.take();
        self.budget.update_gauge();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    pub(crate) fn metrics() -> BudgetMetrics {
        let registry = prometheus::Registry::new();
        let in_flight = IntGauge::new("in_flight", "h").unwrap();
        let rejected =
            IntCounterVec::new(prometheus::Opts::new("rejected", "h"), &["stage"]).unwrap();
        registry.register(Box::new(in_flight.clone())).unwrap();
        registry.register(Box::new(rejected.clone())).unwrap();
        BudgetMetrics {
            in_flight,
            rejected,
        }
    }

    #[test]
    fn reservations_add_up_to_the_budget_and_no_further() {
        let m = metrics();
        let b = MemoryBudget::new(10 * MIB, Some(m.clone()));
        assert_eq!(b.bytes(), 10 * MIB);
        let r1 = b.reserve(4 * MIB).unwrap();
        let r2 = b.reserve(4 * MIB).unwrap();
        assert_eq!(b.in_flight(), 8 * MIB);
        assert_eq!(m.in_flight.get(), 8 * MIB as i64);
        let e = b.reserve(3 * MIB).unwrap_err();
        assert_eq!(e.stage, Stage::Admission);
        assert_eq!(
            (e.wanted, e.available, e.budget),
            (3 * MIB, 2 * MIB, 10 * MIB)
        );
        assert_eq!(m.rejected.with_label_values(&["admission"]).get(), 1);
        drop(r1);
        assert_eq!(b.in_flight(), 4 * MIB);
        assert_eq!(m.in_flight.get(), 4 * MIB as i64);
        let r3 = b.reserve(3 * MIB).unwrap();
        drop((r2, r3));
        assert_eq!(b.in_flight(), 0);
        assert_eq!(m.in_flight.get(), 0);
    }

    #[test]
    fn a_small_or_unknown_body_reserves_a_first_step() {
        let b = MemoryBudget::new(MIB, None);
        let r = b.reserve(0).unwrap();
        assert_eq!(r.bytes(), FIRST_STEP);
        let r = b.reserve(100).unwrap();
        assert_eq!(r.bytes(), FIRST_STEP);
        assert_eq!(b.in_flight(), 2 * FIRST_STEP);
    }

    #[test]
    fn a_reservation_grows_in_steps_and_is_refused_when_it_would_not_fit() {
        let m = metrics();
        let b = MemoryBudget::new(MIB, Some(m.clone()));
        let mut r = b.reserve(0).unwrap();
        r.ensure(FIRST_STEP + 1).unwrap();
        // One step, not one KiB.
        assert_eq!(r.bytes(), FIRST_STEP + GROWTH_STEP);
        r.ensure(FIRST_STEP + 2).unwrap();
        assert_eq!(r.bytes(), FIRST_STEP + GROWTH_STEP);
        let other = b.reserve(MIB - r.bytes()).unwrap();
        let e = r.ensure(r.bytes() + 1).unwrap_err();
        assert_eq!(e.stage, Stage::Body);
        assert_eq!(m.rejected.with_label_values(&["body"]).get(), 1);
        drop(other);
        // Steps stop at the budget's size: the whole budget can be one request's, and more
        // than the budget is the whole budget (a budget of one body and its payload's cap).
        r.ensure(MIB - 10).unwrap();
        assert_eq!(r.bytes(), MIB);
        r.ensure(with_payload(MIB)).unwrap();
        assert_eq!((r.bytes(), b.in_flight()), (MIB, MIB));
        drop(r);
        let whole = b.reserve(with_payload(MIB)).unwrap();
        assert_eq!(whole.bytes(), MIB);
        let e = b.reserve(0).unwrap_err();
        assert_eq!(e.stage, Stage::Admission);
    }

    #[tokio::test]
    async fn concurrent_reservations_never_exceed_the_budget() {
        let b = MemoryBudget::new(8 * MIB, None);
        let peak = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tasks = Vec::new();
        for i in 0..64u64 {
            let (b, peak) = (b.clone(), peak.clone());
            tasks.push(tokio::spawn(async move {
                let Ok(mut r) = b.reserve(MIB / 2) else {
                    return false;
                };
                for k in 1..=8 {
                    if r.ensure(MIB / 2 + k * (i % 4 + 1) * 64 * KIB).is_err() {
                        return false;
                    }
                    peak.fetch_max(b.in_flight(), std::sync::atomic::Ordering::SeqCst);
                    tokio::task::yield_now().await;
                }
                true
            }));
        }
        let mut done = 0;
        for t in tasks {
            done += t.await.unwrap() as usize;
        }
        assert!(done > 0 && done < 64, "{done} of 64 fit");
        assert!(peak.load(std::sync::atomic::Ordering::SeqCst) <= 8 * MIB);
        assert_eq!(b.in_flight(), 0);
    }
}
