//! The lock-free core of ordered work: a ring of `capacity` slots, each
//! tagged with a *stamp* = sequence number + Btrfs state flags.
//!
//! This file depends only on `crate::sync` (and `crossbeam_utils`'s
//! `CachePadded`), so it is also compiled under `--cfg kwq_loom` and checked
//! by `src/tests/loom_ordered.rs`.
//!
//! # States
//!
//! Slot `i` holds, over time, the items with sequence numbers
//! `i, i + capacity, i + 2·capacity, …`. Its stamp is `seq << 3 | flags`:
//!
//! ```text
//!    FREE(s)  ──reserve──▶ QUEUED(s) ──func──▶ DONE(s) ──claim──▶ ORDER_DONE(s) ──release──▶ FREE(s + capacity)
//!   flags 000             flags 100           flags 101          flags 111
//! ```
//!
//! `DONE` and `ORDER_DONE` are the kernel's `WORK_DONE_BIT` and
//! `WORK_ORDER_DONE_BIT` (named in `kwq_policy::state`). Within one
//! sequence number flags are only ever *set*; the only transition that
//! clears them is the release, which moves the slot to the next sequence
//! number. A stamp value therefore never repeats: every compare on a stamp
//! is ABA-free, however stale the sequence number the comparer holds.
//!
//! # Fields and who may touch them
//!
//! Legend: `A:` atomic; `S(state):` owned by whoever moved the stamp into
//! that state, until it moves it on.
//!
//! * `tail` — A: next sequence number to reserve. Advanced by CAS by
//!   producers, only after they saw the slot `FREE(tail)`.
//! * `claim` — A: next sequence number whose parallel stage is unclaimed.
//!   Advanced by CAS by runners, only over slots seen `QUEUED`.
//! * `head` — A: next sequence number whose ordered stage is unclaimed *as
//!   published by the drain owner*. Written only by the drain owner.
//! * `released` — A: every item `< released` has been released. Progress
//!   counter for flushers; written only by the drain owner (or consumer).
//! * `slot.content` — S(FREE) between the reserving CAS and the `QUEUED`
//!   store: the producer writes the job. S(QUEUED) after the claim CAS: the
//!   claiming runner takes the job and writes the result. S(ORDER_DONE):
//!   the drain owner takes the result. Nobody else ever touches it.
//!
//! # Protocol
//!
//! 1. *Reserve* (`try_push`): see `FREE(t)` in slot `t`, CAS `tail` from
//!    `t` to `t + 1`, write the job, store `QUEUED(t)`.
//! 2. *Claim* (`claim`): count the run of `QUEUED` stamps from `claim`, CAS
//!    `claim` over them. The winner owns those items' parallel stage and
//!    gets one [`Ticket`] per item.
//! 3. *Complete* (`complete`): write the result, store `DONE(s)`. The
//!    completer never reads the slot again (BT-3: nothing of an item is
//!    read after its DONE bit is set).
//! 4. *Drain* (`try_drain`, run_ordered_work): read `head = h`, CAS slot
//!    `h` from `DONE(h)` to `ORDER_DONE(h)`. The winner is the *drain
//!    owner*; it runs `h`'s ordered stage, releases the slot (`FREE(h +
//!    capacity)`), and continues with `h + 1` while it is `DONE`. At the
//!    end it publishes `head` and retries the CAS on the new head, exactly
//!    once, so a `DONE` that raced with its exit is not stranded.
//!
//! Consumer mode (the iterator front end) replaces 4 with a single consumer
//! that takes `DONE(head)` results itself (`pop_done`).
//!
//! # Why this is correct
//!
//! * *Exactly once, in order, never two at once*: a drain owner exists only
//!   by winning the CAS `DONE(h) → ORDER_DONE(h)` on the published head, and
//!   `head` only moves when the owner publishes it; while it owns the drain,
//!   the items past the published head are reachable by nobody else, so it
//!   can take them with plain loads. The stamps are sequence-tagged, so a
//!   stale `head` read by a completer makes its CAS fail, never succeed on
//!   a reused slot.
//! * *No lost drain*: a completer stores `DONE(s)`, issues a SeqCst fence,
//!   reads `head`; the owner publishes `head`, issues a SeqCst fence, then
//!   tries the CAS on the slot at that head. This is a Dekker pair: either the
//!   completer reads the new head (and tries the CAS itself), or the owner's
//!   CAS sees `DONE`. One of them drains.
//!
//! ```text
//!   completer of item h                 drain owner (just finished h - 1)
//!   -------------------                 ---------------------------------
//!   store DONE(h)                       head.store(h)
//!   fence(SeqCst)                       fence(SeqCst)
//!   h' = head.load()                    CAS slot h: DONE(h) → ORDER_DONE(h)
//!   CAS slot h': DONE(h') → ORDER_DONE
//! ```
//!
//! * *Release rule*: a slot becomes `FREE(s + capacity)` only after the
//!   ordered stage of `s` returned and its result and closures were dropped
//!   by the drain owner — the only thread that still referred to it. Reuse
//!   is tied to the sequence number in the stamp, which only advances then.

use crate::sync::atomic::{fence, AtomicU64, Ordering::*};
use crossbeam_utils::CachePadded;
use kwq_policy::state as names;
use std::mem::ManuallyDrop;

/// How many slots ahead of its push a producer asks for a slot's line
/// (`Ring::prefetch_for_write`).
const PUSH_PREFETCH: u64 = 8;

/// Does this CPU report PREFETCHW (CPUID 8000_0001h, ECX bit 8: every
/// x86-64 AMD CPU, Intel's since Broadwell)? Asked once per process (a
/// CPUID exits to the hypervisor in a VM); `is_x86_feature_detected!` has
/// no name for it.
fn has_prefetchw() -> bool {
    #[cfg(all(target_arch = "x86_64", not(kwq_loom), not(miri)))]
    {
        static HAS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HAS.get_or_init(|| {
            use core::arch::x86_64::__cpuid;
            // SAFETY: CPUID exists on every x86-64 CPU; leaf 8000_0001h is
            // read only if the highest extended leaf reaches it.
            #[allow(unused_unsafe)]
            unsafe {
                __cpuid(0x8000_0000).eax >= 0x8000_0001 && __cpuid(0x8000_0001).ecx & (1 << 8) != 0
            }
        })
    }
    #[cfg(not(all(target_arch = "x86_64", not(kwq_loom), not(miri))))]
    {
        false
    }
}

/// Stamp flag: an item was reserved and its job written.
const QUEUED: u64 = 1 << 2;
/// Stamp flag: the parallel stage finished (kernel `WORK_DONE_BIT`).
const DONE: u64 = names::DONE as u64;
/// Stamp flag: the ordered stage was claimed (kernel `WORK_ORDER_DONE_BIT`).
const ORDER_DONE: u64 = names::ORDER_DONE as u64;
const FLAG_BITS: u32 = 3;

/// Items a drain owner may take past the published head before it
/// publishes again (bounds how stale `head` and flushers' view can get).
const PUBLISH_EVERY: u64 = 64;

fn free(seq: u64) -> u64 {
    seq << FLAG_BITS
}
fn queued(seq: u64) -> u64 {
    seq << FLAG_BITS | QUEUED
}
fn done(seq: u64) -> u64 {
    seq << FLAG_BITS | QUEUED | DONE
}
fn order_done(seq: u64) -> u64 {
    seq << FLAG_BITS | QUEUED | DONE | ORDER_DONE
}

/// A stamp, decoded for dumps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) seq: u64,
    pub(crate) phase: &'static str,
}

fn decode(stamp: u64) -> Stamp {
    let phase = match stamp & ((1 << FLAG_BITS) - 1) {
        0 => "FREE",
        QUEUED => "QUEUED",
        x if x == QUEUED | DONE => "DONE",
        x if x == QUEUED | DONE | ORDER_DONE => "ORDER_DONE",
        _ => "?",
    };
    Stamp {
        seq: stamp >> FLAG_BITS,
        phase,
    }
}

/// Interior mutability with loom's `with_mut` shape.
#[cfg(not(kwq_loom))]
mod cell {
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);
    impl<T> UnsafeCell<T> {
        pub(crate) fn new(t: T) -> Self {
            UnsafeCell(std::cell::UnsafeCell::new(t))
        }
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}
#[cfg(kwq_loom)]
mod cell {
    pub(crate) use loom::cell::UnsafeCell;
}
use cell::UnsafeCell;

/// What a slot holds. No tag of its own: the stamp says which field is
/// live — `FREE`: none; `QUEUED`: `job` (until the claimer takes it);
/// `DONE`: `done`; `ORDER_DONE`: none (the drain owner took `done` when it
/// set the flag). Leaving the tag out keeps a slot one stamp plus the
/// larger payload, which for small closures is half a cache line.
union Content<J, D> {
    none: (),
    job: ManuallyDrop<J>,
    done: ManuallyDrop<D>,
}

/// One ring slot. Aligned to 32 bytes so that a slot of up to 32 bytes
/// never straddles two cache lines (each slot moves between the
/// producer's, a runner's and the drain owner's caches once per lap).
#[repr(align(32))]
struct Slot<J, D> {
    stamp: AtomicU64,
    content: UnsafeCell<Content<J, D>>,
}

/// The ring (see the module docs).
pub(crate) struct Ring<J, D> {
    slots: Box<[Slot<J, D>]>,
    cap: u64,
    /// `cap - 1`; used instead of `%` when `pow2`.
    mask: u64,
    pow2: bool,
    /// Does a producer prefetch slots ahead ([`Ring::prefetch_for_write`])?
    /// Only where the CPU has PREFETCHW, and only on rings long enough that
    /// the slot ahead is not one somebody is still using.
    prefetch: bool,
    tail: CachePadded<AtomicU64>,
    claim: CachePadded<AtomicU64>,
    head: CachePadded<AtomicU64>,
    released: CachePadded<AtomicU64>,
}

// SAFETY: the contents are moved between threads (`J`, `D`: Send) and
// accessed by one thread at a time, as the stamp protocol in the module
// docs guarantees; the ring itself holds no thread-bound state.
unsafe impl<J: Send, D: Send> Send for Ring<J, D> {}
// SAFETY: as above — `&Ring` only gives access to a slot's content to the
// thread that owns the slot's current state.
unsafe impl<J: Send, D: Send> Sync for Ring<J, D> {}

/// Proof of owning the parallel stage of one item: handed out by
/// [`Ring::claim`], consumed by [`Ring::complete`]. Not `Clone`, and only
/// this module can make one, so the slot accesses it guards are exclusive.
#[derive(Debug)]
#[must_use = "a claimed item must be completed, or the sequence stalls"]
pub(crate) struct Ticket {
    seq: u64,
}

impl Ticket {
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }
}

/// A run of claimed items, yielded as [`Ticket`]s in sequence order.
#[derive(Debug)]
#[must_use = "claimed items must be completed, or the sequence stalls"]
pub(crate) struct Claim {
    next: u64,
    end: u64,
}

impl Claim {
    /// The sequence number of the claim's next item (its first, before
    /// iteration starts).
    pub(crate) fn first(&self) -> u64 {
        self.next
    }

    /// One past the sequence number of the claim's last item.
    pub(crate) fn end(&self) -> u64 {
        self.end
    }
}

impl Iterator for Claim {
    type Item = Ticket;
    fn next(&mut self) -> Option<Ticket> {
        if self.next == self.end {
            return None;
        }
        self.next += 1;
        Some(Ticket { seq: self.next - 1 })
    }
}

/// Why [`Ring::try_push`] refused.
pub(crate) struct Full<J>(pub(crate) J);

/// What a drain did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Drained {
    /// Ordered stages run.
    pub(crate) items: u64,
}

/// Aborts the process if a drain owner unwinds: it would leave the
/// sequence owned forever. Callers catch panics of user code, so this
/// only fires on a kwq bug. A drain may itself run while the thread is
/// already unwinding (a destructor queueing into a full queue helps, and so
/// drains), so it compares with the state at its start.
struct AbortOnUnwind {
    was_panicking: bool,
}
impl AbortOnUnwind {
    fn arm() -> AbortOnUnwind {
        AbortOnUnwind {
            was_panicking: crate::sync::thread::panicking(),
        }
    }
}
impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        if crate::sync::thread::panicking() && !self.was_panicking {
            tracing::error!(
                target: "kwq",
                "kwq bug: an ordered drain unwound; the sequence cannot continue"
            );
            std::process::abort();
        }
    }
}

impl<J, D> Ring<J, D> {
    /// A ring of `cap >= 1` slots, all `FREE` for sequence numbers `0..cap`.
    #[cfg(any(test, kwq_loom))]
    pub(crate) fn new(cap: usize) -> Self {
        Self::try_new(cap).expect("ring allocation")
    }

    /// Bytes per slot (for error messages).
    pub(crate) const SLOT_BYTES: usize = std::mem::size_of::<Slot<J, D>>();

    /// `Ring::new`, or an error if the slots cannot be allocated.
    pub(crate) fn try_new(cap: usize) -> Result<Self, std::collections::TryReserveError> {
        assert!(cap >= 1, "ring capacity must be at least 1");
        let mut slots = Vec::new();
        slots.try_reserve_exact(cap)?;
        let cap = cap as u64;
        slots.extend((0..cap).map(|i| Slot {
            stamp: AtomicU64::new(free(i)),
            content: UnsafeCell::new(Content { none: () }),
        }));
        Ok(Ring {
            slots: slots.into_boxed_slice(),
            cap,
            mask: cap - 1,
            pow2: cap.is_power_of_two(),
            prefetch: cap > 4 * PUSH_PREFETCH && has_prefetchw(),
            tail: CachePadded::new(AtomicU64::new(0)),
            claim: CachePadded::new(AtomicU64::new(0)),
            head: CachePadded::new(AtomicU64::new(0)),
            released: CachePadded::new(AtomicU64::new(0)),
        })
    }

    /// Asks for the line of `seq`'s slot in exclusive state, ahead of the
    /// store that will need it (a hint; nothing on other targets, under
    /// loom or Miri, or where [`Ring::prefetch`] is off).
    #[inline(always)]
    fn prefetch_for_write(&self, seq: u64) {
        #[cfg(all(target_arch = "x86_64", not(kwq_loom), not(miri)))]
        if self.prefetch {
            let p = self.slot(seq) as *const Slot<J, D>;
            // SAFETY: PREFETCHW is a hint: it never faults, writes no
            // memory and touches no flags, and `prefetch` is only set
            // where the CPU reports it (`has_prefetchw`). (`_mm_prefetch`
            // with `_MM_HINT_ET0` would need the `prfchw` target feature
            // at compile time.)
            unsafe {
                core::arch::asm!(
                    "prefetchw [{}]",
                    in(reg) p,
                    options(nostack, preserves_flags, readonly)
                )
            };
        }
        #[cfg(not(all(target_arch = "x86_64", not(kwq_loom), not(miri))))]
        let _ = seq;
    }

    #[inline]
    fn slot(&self, seq: u64) -> &Slot<J, D> {
        let i = if self.pow2 {
            seq & self.mask
        } else {
            seq % self.cap
        };
        &self.slots[i as usize]
    }

    pub(crate) fn capacity(&self) -> u64 {
        self.cap
    }

    /// Sequence numbers handed out so far.
    pub(crate) fn tail(&self) -> u64 {
        self.tail.load(SeqCst)
    }

    /// Items whose parallel stage was claimed so far.
    pub(crate) fn claimed(&self) -> u64 {
        self.claim.load(Relaxed)
    }

    /// Items released so far (ordered stage run and slot freed).
    pub(crate) fn released(&self) -> u64 {
        self.released.load(Acquire)
    }

    /// Decoded stamp of the slot that holds (or will hold) `seq`.
    pub(crate) fn stamp(&self, seq: u64) -> Stamp {
        decode(self.slot(seq).stamp.load(Acquire))
    }

    /// Protocol step 1. Returns the item's sequence number, or the job back
    /// if all `cap` slots are between reserve and release.
    pub(crate) fn try_push(&self, job: J) -> Result<u64, Full<J>> {
        let mut t = self.tail.load(Relaxed);
        loop {
            let slot = self.slot(t);
            let stamp = slot.stamp.load(Acquire);
            if stamp == free(t) {
                match self.tail.compare_exchange_weak(t, t + 1, Relaxed, Relaxed) {
                    Ok(_) => {
                        // SAFETY: we saw FREE(t) (Acquire: the previous
                        // owner's accesses happened before) and won the CAS
                        // for `t`, so we own the content until we store
                        // QUEUED(t).
                        slot.content.with_mut(|c| unsafe {
                            c.write(Content {
                                job: ManuallyDrop::new(job),
                            })
                        });
                        // SeqCst is load-bearing: it orders the producer's
                        // later SeqCst load of the idle bits (`Idle`). Loom
                        // cannot tell if this is weakened (it models the
                        // ordering with a fence: `sync::fence_after_seqcst_write`).
                        slot.stamp.store(queued(t), SeqCst);
                        self.prefetch_for_write(t + PUSH_PREFETCH);
                        return Ok(t);
                    }
                    Err(now) => t = now,
                }
            } else if stamp >> FLAG_BITS < t {
                // Still held by item `t - cap`: full, unless `tail` moved.
                let now = self.tail.load(Relaxed);
                if now == t {
                    return Err(Full(job));
                }
                t = now;
            } else {
                // Our `t` is stale (another producer got further).
                t = self.tail.load(Relaxed);
            }
        }
    }

    /// Has item `seq` been released? Reads the stamp (SeqCst), so it pairs
    /// with the release swap in `try_drain` for waiters.
    pub(crate) fn is_released(&self, seq: u64) -> bool {
        // Stamps of one slot only grow, and FREE(seq + cap) is the first
        // value after item `seq`'s lap.
        self.slot(seq).stamp.load(SeqCst) >= free(seq + self.cap)
    }

    /// Would `try_push` find room right now? (Advisory.)
    pub(crate) fn has_room(&self) -> bool {
        let t = self.tail.load(SeqCst);
        self.slot(t).stamp.load(SeqCst) == free(t)
    }

    /// Is there an item whose parallel stage nobody has claimed? (SeqCst:
    /// one side of the runners' idle handshake.)
    pub(crate) fn has_claimable(&self) -> bool {
        let c = self.claim.load(SeqCst);
        self.slot(c).stamp.load(SeqCst) == queued(c)
    }

    /// Protocol step 2: claims up to `max` consecutive queued items (the
    /// whole run; tests use it, the crew shares with [`Ring::claim_share`]).
    #[cfg(test)]
    pub(crate) fn claim(&self, max: u64) -> Option<Claim> {
        self.claim_share(max, 1)
    }

    /// Protocol step 2, sharing the backlog: claims about `1/spread` of the
    /// run of queued items at the claim cursor (at least one, at most
    /// `max`), so that a short backlog of slow items spreads over several
    /// claimers while a long one is taken `max` at a time.
    ///
    /// The backlog is estimated from the slots' stamps, never from `tail`:
    /// `tail` is the producers' hot line, and reading it on every claim
    /// costs each producer a cache miss on its next reservation. Past a
    /// full `max`-run it probes single far slots (`spread · m − 1` ahead,
    /// halving `m`), so the share is within a factor of two of
    /// `backlog / spread`. The claim itself only ever covers the verified
    /// contiguous run.
    pub(crate) fn claim_share(&self, max: u64, spread: u64) -> Option<Claim> {
        let spread = spread.max(1);
        let mut c = self.claim.load(Acquire);
        loop {
            let mut k = 0;
            while k < max && self.is_queued(c + k) {
                k += 1;
            }
            if k == 0 {
                return None;
            }
            let n = if spread == 1 {
                k
            } else if k < max {
                (k / spread).max(1)
            } else {
                // backlog ≥ max, so the share is at least max / spread.
                let floor = (max / spread).max(1);
                let mut m = max;
                while m > floor && !self.is_queued(c + spread * m - 1) {
                    m /= 2;
                }
                m.max(floor)
            };
            match self.claim.compare_exchange(c, c + n, AcqRel, Acquire) {
                Ok(_) => {
                    return Some(Claim {
                        next: c,
                        end: c + n,
                    })
                }
                Err(now) => c = now,
            }
        }
    }

    #[inline]
    fn is_queued(&self, seq: u64) -> bool {
        self.slot(seq).stamp.load(Acquire) == queued(seq)
    }

    /// Takes the job of a claimed item.
    pub(crate) fn take_job(&self, ticket: &Ticket) -> J {
        let slot = self.slot(ticket.seq);
        debug_assert_eq!(slot.stamp.load(Relaxed), queued(ticket.seq));
        // SAFETY: the ticket proves we won the claim CAS over QUEUED(seq)
        // (Acquire-loaded), so the producer's write happened before and
        // nobody else touches the content until we store DONE. QUEUED
        // means `job` is live, and the ticket is consumed only by
        // `complete`, so it is taken once.
        slot.content
            .with_mut(|c| unsafe { ManuallyDrop::take(&mut (*c).job) })
    }

    /// Protocol step 3: stores the result and sets DONE. The caller must
    /// call [`Ring::after_complete`] (once per batch) before it could
    /// block or return, so a concurrent drain owner's exit is not missed.
    pub(crate) fn complete(&self, ticket: Ticket, result: D) {
        let slot = self.slot(ticket.seq);
        // SAFETY: the ticket proves exclusive ownership of QUEUED(seq)
        // (see `take_job`); the DONE store below publishes the write.
        // The job was taken (`take_job`), so nothing live is overwritten.
        slot.content.with_mut(|c| unsafe {
            c.write(Content {
                done: ManuallyDrop::new(result),
            })
        });
        slot.stamp.store(done(ticket.seq), Release);
    }

    /// The completer's half of the Dekker pair (see the module docs).
    pub(crate) fn after_complete(&self) {
        fence(SeqCst);
    }

    /// Protocol step 4 (run_ordered_work): if the head item is DONE and
    /// nobody drains, become the drain owner and run `ordered(seq, result)`
    /// for the head and every following DONE item, in order, releasing each
    /// slot right after its `ordered` returned and calling
    /// `released(seq)` after each release. `ordered` must not unwind.
    #[cfg(test)]
    pub(crate) fn try_drain(
        &self,
        ordered: impl FnMut(u64, D),
        released: impl FnMut(u64),
    ) -> Drained {
        self.try_drain_owned(|| (), ordered, released)
    }

    /// `Ring::try_drain`, calling `own()` once on becoming the drain
    /// owner, before the first ordered stage, and keeping what it returns
    /// until the owner lets go (the crew marks a draining runner as
    /// possibly blocked for the whole session, see `ordered/idle.rs`).
    pub(crate) fn try_drain_owned<G>(
        &self,
        own: impl FnOnce() -> G,
        mut ordered: impl FnMut(u64, D),
        mut released: impl FnMut(u64),
    ) -> Drained {
        let mut out = Drained::default();
        let mut h = self.head.load(SeqCst);
        if !self.claim_head(h) {
            return out;
        }
        let guard = AbortOnUnwind::arm();
        let session = own();
        let mut since_publish = 0;
        loop {
            // We own `h`: its stamp is ORDER_DONE(h), set by us.
            let slot = self.slot(h);
            // SAFETY: ORDER_DONE(h) was set by this thread (CAS on the
            // published head, or a plain store on an unpublished one that
            // only the owner can reach); the completer's DONE store
            // (Release) was Acquire-loaded, so its write happened before.
            // DONE means `done` is live; ORDER_DONE (ours) means we take it
            // exactly once, here.
            let d = slot
                .content
                .with_mut(|c| unsafe { ManuallyDrop::take(&mut (*c).done) });
            ordered(h, d);
            // Everything the item owned is gone: the slot may be reused.
            // `released` first, so a flusher that sees the stamp sees it too.
            // The SeqCst swap (one locked instruction on x86) is also the
            // drain owner's half of the Dekker pair with `Waiters`: the
            // caller's `released(h)` may then read the waiter count.
            self.released.store(h + 1, Release);
            // SeqCst is load-bearing (loom cannot tell if it is weakened;
            // see `sync::fence_after_seqcst_write`).
            slot.stamp.swap(free(h + self.cap), SeqCst);
            out.items += 1;
            released(h);
            h += 1;
            since_publish += 1;
            if since_publish < PUBLISH_EVERY {
                let next = self.slot(h);
                if next.stamp.load(Acquire) == done(h) {
                    // Unpublished: nobody else can reach `h`.
                    next.stamp.store(order_done(h), Relaxed);
                    continue;
                }
            }
            since_publish = 0;
            self.head.store(h, SeqCst);
            fence(SeqCst);
            if !self.claim_head(h) {
                break;
            }
        }
        drop(session);
        drop(guard);
        out
    }

    fn claim_head(&self, h: u64) -> bool {
        self.slot(h)
            .stamp
            .compare_exchange(done(h), order_done(h), SeqCst, Relaxed)
            .is_ok()
    }

    /// Consumer mode: takes the head result if it is DONE. Only one thread
    /// (the consumer) may call this, and `try_drain` must never be used on
    /// the same ring.
    pub(crate) fn pop_done(&self) -> Option<D> {
        let h = self.head.load(Relaxed);
        let slot = self.slot(h);
        if slot.stamp.load(Acquire) != done(h) {
            return None;
        }
        // SAFETY: single consumer (caller's obligation); DONE(h) was
        // Acquire-loaded, so the completer's write happened before and it
        // never touches the slot again; DONE means `done` is live, and the
        // FREE store below makes sure it is taken once.
        let d = slot
            .content
            .with_mut(|c| unsafe { ManuallyDrop::take(&mut (*c).done) });
        slot.stamp.store(free(h + self.cap), Release);
        self.head.store(h + 1, Relaxed);
        self.released.store(h + 1, Release);
        Some(d)
    }

    /// Consumer mode: is the head DONE?
    pub(crate) fn head_done(&self) -> bool {
        let h = self.head.load(Relaxed);
        self.slot(h).stamp.load(SeqCst) == done(h)
    }

    /// The published head (next ordered stage to run).
    pub(crate) fn head(&self) -> u64 {
        self.head.load(Acquire)
    }
}

impl<J, D> Drop for Ring<J, D> {
    /// Drops what the slots still hold, by their stamps. With `&mut self`
    /// no stage can be running, so the only ambiguous slot is a `QUEUED`
    /// one below `claim` whose claimer unwound between taking the job and
    /// completing it (a kwq bug — stages run under `catch_unwind`): its
    /// job may be gone, so it is leaked rather than risk a double drop.
    /// A panicking destructor does not stop the others from running (as
    /// with a slice); the first panic is resumed at the end.
    fn drop(&mut self) {
        let claim = self.claim.load(Relaxed);
        let mut first_panic = None;
        for slot in self.slots.iter() {
            let stamp = slot.stamp.load(Relaxed);
            let seq = stamp >> FLAG_BITS;
            let flags = stamp & ((1 << FLAG_BITS) - 1);
            let dropped = slot.content.with_mut(|c| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // SAFETY: by the stamp protocol (module docs), QUEUED
                    // with `seq >= claim` holds an untaken job and DONE an
                    // untaken result; exclusive access through `&mut self`.
                    unsafe {
                        if flags == QUEUED && seq >= claim {
                            ManuallyDrop::drop(&mut (*c).job);
                        } else if flags == QUEUED | DONE {
                            ManuallyDrop::drop(&mut (*c).done);
                        }
                    }
                }))
            });
            if let Err(p) = dropped {
                first_panic.get_or_insert(p);
            }
        }
        if let Some(p) = first_panic {
            std::panic::resume_unwind(p);
        }
    }
}

#[cfg(all(test, not(kwq_loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    /// Counts its drops.
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Relaxed);
        }
    }

    fn push_n(ring: &Ring<u64, u64>, n: u64) {
        for i in 0..n {
            assert!(ring.try_push(i).is_ok(), "room for item {i}");
        }
    }

    fn claimed(c: Claim) -> u64 {
        let seqs: Vec<u64> = c.map(|t| t.seq()).collect();
        assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
        seqs.len() as u64
    }

    #[test]
    fn a_claim_takes_a_share_of_the_backlog() {
        // spread 4 (two active runners): a quarter of the queued run,
        // at least one, at most 32, within a factor of two past 32.
        let ring = Ring::<u64, u64>::new(512);
        push_n(&ring, 8);
        assert_eq!(claimed(ring.claim_share(32, 4).unwrap()), 2);
        assert_eq!(claimed(ring.claim_share(32, 4).unwrap()), 1);
        let ring = Ring::<u64, u64>::new(512);
        push_n(&ring, 200);
        assert_eq!(claimed(ring.claim_share(32, 4).unwrap()), 32);
        let ring = Ring::<u64, u64>::new(512);
        push_n(&ring, 70);
        assert_eq!(claimed(ring.claim_share(32, 4).unwrap()), 16);
        let ring = Ring::<u64, u64>::new(512);
        push_n(&ring, 40);
        assert_eq!(claimed(ring.claim_share(32, 4).unwrap()), 8);
        // spread 1 takes the whole run, up to max.
        let ring = Ring::<u64, u64>::new(512);
        push_n(&ring, 5);
        assert_eq!(claimed(ring.claim(32).unwrap()), 5);
        assert!(ring.claim(32).is_none());
    }

    #[test]
    fn a_claim_never_covers_a_reserved_but_unwritten_gap() {
        let ring = Ring::<u64, u64>::new(512);
        push_n(&ring, 100);
        // Fake a producer between its reserving CAS and its QUEUED store
        // at item 10: the slot goes back to FREE(10).
        ring.slot(10).stamp.store(free(10), SeqCst);
        assert_eq!(claimed(ring.claim_share(32, 1).unwrap()), 10);
        assert!(ring.claim_share(32, 4).is_none());
    }

    /// Panics in its destructor if told to, after counting.
    struct Bomb(Arc<AtomicUsize>, bool);
    impl Drop for Bomb {
        fn drop(&mut self) {
            self.0.fetch_add(1, Relaxed);
            if self.1 {
                panic!("bomb");
            }
        }
    }

    #[test]
    fn a_panicking_destructor_does_not_stop_the_ring_dropping_the_rest() {
        let drops = Arc::new(AtomicUsize::new(0));
        let ring = Ring::<Bomb, Bomb>::new(8);
        for i in 0..6 {
            assert!(ring.try_push(Bomb(drops.clone(), i % 2 == 0)).is_ok());
        }
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(ring)));
        assert_eq!(*r.unwrap_err().downcast::<&str>().unwrap(), "bomb");
        assert_eq!(drops.load(Relaxed), 6, "every held job was dropped");
    }

    #[test]
    fn dropping_the_ring_drops_every_job_and_result_it_still_holds_once() {
        let jobs = Arc::new(AtomicUsize::new(0));
        let results = Arc::new(AtomicUsize::new(0));
        let ring = Ring::<Counted, Counted>::new(8);
        for _ in 0..6 {
            assert!(ring.try_push(Counted(jobs.clone())).is_ok());
        }
        // Items 0 and 1: run and drained (released). Items 2 and 3: DONE,
        // not drained. Item 4: claimed and its job taken, never completed
        // (a claimer that unwound). Item 5: queued, unclaimed.
        for t in ring.claim(4).unwrap() {
            drop(ring.take_job(&t));
            ring.complete(t, Counted(results.clone()));
        }
        ring.after_complete();
        let mut ordered = 0;
        // Drain only items 0 and 1: mark 2 not DONE while draining.
        ring.slot(2).stamp.store(queued(2), SeqCst);
        ring.try_drain(
            |_, d| {
                ordered += 1;
                drop(d)
            },
            |_| {},
        );
        ring.slot(2).stamp.store(done(2), SeqCst);
        assert_eq!(ordered, 2);
        let t4 = ring.claim(1).unwrap().next().unwrap();
        let taken = ring.take_job(&t4);
        assert_eq!((jobs.load(Relaxed), results.load(Relaxed)), (4, 2));
        drop(ring);
        // Items 2, 3 (results) and 5 (job) dropped by the ring; item 4's
        // job is ours, not the ring's.
        assert_eq!((jobs.load(Relaxed), results.load(Relaxed)), (5, 4));
        drop(taken);
        assert_eq!(jobs.load(Relaxed), 6);
    }
}
