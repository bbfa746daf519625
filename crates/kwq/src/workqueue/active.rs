//! Per-workqueue accounting: `max_active` admission and flush colours.
//!
//! # Admission (`max_active`, WQ-7, WQ-8)
//!
//! As in the kernel, an item is admitted (counted as active) when it is
//! queued, in queueing order: `WqInner::submit` asks [`Admission::try_admit`]
//! and puts a task that gets no slot on the workqueue's inactive FIFO
//! ([`Admission::defer`]); a retiring task hands its slot to the oldest
//! inactive one ([`Admission::retire`]), which is pushed onto the worklist
//! already admitted. (Admitting at *start* time instead would let two
//! workers that popped consecutive tasks of an ordered queue race for the
//! slot, starting the later one first.) When `max_active` cannot bind —
//! it is at least the pool's worker cap, the default — the word is skipped
//! altogether and the submit path never touches it.
//!
//! One atomic word holds both counters, so every decision sees a consistent
//! pair:
//!
//! ```text
//!   word = inactive << 32 | admitted
//! ```
//!
//! * `try_admit`: CAS `admitted += 1` only if `admitted < max_active` **and**
//!   `inactive == 0` — a task never overtakes an inactive one, which keeps
//!   FIFO order.
//! * `defer` (inactive lock held): CAS either `admitted += 1` (the slot freed
//!   up meanwhile: run it) or `inactive += 1` and push to the back.
//! * `retire`: `fetch_sub(1)` on `admitted`; if the old word showed inactive
//!   tasks, take the lock and move as many as fit to the worklist.
//!
//! Why no task is stranded on the inactive list: `defer` increments
//! `inactive` and pushes under the lock; `retire` decrements `admitted` and
//! then reads `inactive` from the same RMW. If `retire`'s RMW comes first,
//! `defer`'s CAS sees the freed slot and admits; if `defer`'s comes first,
//! `retire` sees `inactive > 0` and activates.
//!
//! A parked task (waiting for the previous run of its item) gives its slot
//! back and is admitted again when that run ends. The kernel counts a
//! collided item as active, so one item can hold two slots while its first
//! instance blocks — enough, with a small `max_active`, for a blocked item's
//! own requeue to starve the item it is waiting for.
//!
//! # Flush colours (WQ-10)
//!
//! `flush()` must wait for every task queued before it and must not be held
//! up by tasks queued after it. Each task is counted in one of two colours;
//! a flusher flips the current colour and waits for everything counted in
//! the old one. Flushers are serialised, and an *epoch* (the tasks queued
//! between two flips) ends only at a flush that waits for it to drain.
//!
//! The submit side and the worker side count on different cache lines, so
//! a stream of jobs does not bounce one line between the submitting thread
//! and the workers:
//!
//! ```text
//!   queued:      bit 63 = current colour | bits 0..62 = tasks ever queued   (submitters)
//!   retired[c]:  tasks of colour c ever retired                              (workers)
//! ```
//!
//! * Queueing: one `fetch_add(1)` on `queued`; the previous value gives the
//!   task's colour, atomically with its count.
//! * Flushing: `fetch_xor` the colour bit; the total at the flip, minus the
//!   total at the previous flip, is the size of the epoch that just ended,
//!   all of the old colour. Every earlier epoch of that colour was drained by
//!   its own flush, so the flusher waits for `retired[old]` to reach
//!   `expected[old]` — the running sum of those epoch sizes, kept under the
//!   flusher lock.
//! * Retiring: `fetch_add(1)` on `retired[c]`. A waiting flusher first
//!   stores its goal, then sets the `WAITING` bit of `retired[old]` with a
//!   `fetch_or` whose result tells whether the goal is already met; a
//!   retirement whose `fetch_add` returns a value with `WAITING` set (and so
//!   also sees the goal: release/acquire on the same word) wakes the flusher
//!   when it is the one that reaches the goal. Both sides are
//!   read-modify-writes of one location, totally ordered: no retirement can
//!   miss a flusher, and no flusher can miss the last retirement.
//!
//! Counters are 63 and 64 bits wide: they do not wrap in practice.

use crate::sync::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use crate::sync::{Condvar, Mutex};
use std::collections::VecDeque;

const ADMITTED_MASK: u64 = (1 << 32) - 1;
const INACTIVE_ONE: u64 = 1 << 32;

/// `max_active` bookkeeping of one workqueue.
#[derive(Debug)]
pub(crate) struct Admission<T> {
    word: AtomicU64,
    max_active: AtomicUsize,
    inactive: Mutex<VecDeque<T>>,
}

fn admitted(w: u64) -> u64 {
    w & ADMITTED_MASK
}

fn inactive(w: u64) -> u64 {
    w >> 32
}

#[must_use]
pub(crate) enum Defer<T> {
    /// A slot freed up: the caller runs the task.
    Admitted(T),
    /// The task waits on the inactive list.
    Deferred,
}

impl<T> Admission<T> {
    pub(crate) fn new(max_active: usize) -> Admission<T> {
        Admission {
            word: AtomicU64::new(0),
            max_active: AtomicUsize::new(max_active),
            inactive: Mutex::new(VecDeque::new()),
        }
    }

    pub(crate) fn max_active(&self) -> usize {
        self.max_active.load(Relaxed)
    }

    /// (admitted, inactive) right now.
    pub(crate) fn counts(&self) -> (usize, usize) {
        let w = self.word.load(Acquire);
        (admitted(w) as usize, inactive(w) as usize)
    }

    /// Claim a slot for a task popped from the worklist.
    pub(crate) fn try_admit(&self) -> bool {
        let max = self.max_active() as u64;
        let mut cur = self.word.load(Acquire);
        loop {
            if inactive(cur) != 0 || admitted(cur) >= max {
                return false;
            }
            match self
                .word
                .compare_exchange_weak(cur, cur + 1, AcqRel, Acquire)
            {
                Ok(_) => return true,
                Err(w) => cur = w,
            }
        }
    }

    /// Put a task that could not be admitted on the inactive list, unless a
    /// slot freed up meanwhile.
    pub(crate) fn defer(&self, task: T) -> Defer<T> {
        let mut list = self.inactive.lock();
        let max = self.max_active() as u64;
        let mut cur = self.word.load(Acquire);
        loop {
            let (next, admit) = if inactive(cur) == 0 && admitted(cur) < max {
                (cur + 1, true)
            } else {
                (cur + INACTIVE_ONE, false)
            };
            match self.word.compare_exchange_weak(cur, next, SeqCst, Acquire) {
                Ok(_) if admit => return Defer::Admitted(task),
                Ok(_) => {
                    list.push_back(task);
                    return Defer::Deferred;
                }
                Err(w) => cur = w,
            }
        }
    }

    /// Give back a slot. Returns tasks activated from the inactive list (in
    /// FIFO order, each now holding a slot) for the caller to push onto the
    /// worklist.
    pub(crate) fn retire(&self) -> Vec<T> {
        let prev = self.word.fetch_sub(1, SeqCst);
        debug_assert!(admitted(prev) > 0);
        if inactive(prev) == 0 {
            return Vec::new();
        }
        self.activate()
    }

    /// Move inactive tasks to admitted while slots are free.
    pub(crate) fn activate(&self) -> Vec<T> {
        let mut out = Vec::new();
        let mut list = self.inactive.lock();
        let max = self.max_active() as u64;
        let mut cur = self.word.load(Acquire);
        loop {
            if inactive(cur) == 0 || admitted(cur) >= max {
                return out;
            }
            match self
                .word
                .compare_exchange_weak(cur, cur + 1 - INACTIVE_ONE, SeqCst, Acquire)
            {
                Ok(_) => {
                    let t = list
                        .pop_front()
                        .expect("kwq bug: inactive count without inactive task");
                    out.push(t);
                    cur = self.word.load(Acquire);
                }
                Err(w) => cur = w,
            }
        }
    }

    /// Change `max_active`; returns newly activated tasks.
    pub(crate) fn set_max_active(&self, n: usize) -> Vec<T> {
        self.max_active.store(n, SeqCst);
        self.activate()
    }

    /// Descriptions of inactive tasks, for dumps.
    pub(crate) fn describe_inactive(&self, limit: usize, f: impl Fn(&T) -> String) -> Vec<String> {
        self.inactive.lock().iter().take(limit).map(f).collect()
    }
}

const COLOR_BIT: u64 = 1 << 63;
const TOTAL_MASK: u64 = COLOR_BIT - 1;
/// In `retired[c]`: a flusher waits for colour `c`.
const WAITING: u64 = 1 << 63;
const COUNT_MASK: u64 = WAITING - 1;

fn color_of(w: u64) -> usize {
    (w >> 63) as usize
}

/// What flushers remember between flushes (under `Colors::flusher`).
#[derive(Debug, Default)]
struct FlushBook {
    /// `queued` total at the last flip.
    last_flip_total: u64,
    /// Per colour: tasks of all ended epochs of that colour.
    expected: [u64; 2],
}

/// Flush-colour bookkeeping of one workqueue. `repr(C)`: `queued` first, so
/// it shares the `Arc` header's cache line, which the submit side also
/// writes (see `WqInner`).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Colors {
    queued: AtomicU64,
    /// Per colour: `WAITING` bit | tasks ever retired.
    retired: crossbeam_utils::CachePadded<[AtomicU64; 2]>,
    /// The count a flusher waits for (meaningful while `WAITING` is set).
    goal: [AtomicU64; 2],
    flusher: Mutex<FlushBook>,
    drained: (Mutex<()>, Condvar),
}

impl Colors {
    pub(crate) fn new() -> Colors {
        Colors {
            queued: AtomicU64::new(0),
            retired: crossbeam_utils::CachePadded::new([AtomicU64::new(0), AtomicU64::new(0)]),
            goal: [AtomicU64::new(0), AtomicU64::new(0)],
            flusher: Mutex::new(FlushBook::default()),
            drained: (Mutex::new(()), Condvar::new()),
        }
    }

    /// Count a newly queued task; returns its colour.
    pub(crate) fn get(&self) -> u8 {
        color_of(self.queued.fetch_add(1, SeqCst)) as u8
    }

    /// Uncount a retired task.
    #[inline(always)]
    pub(crate) fn put(&self, color: u8) {
        let c = color as usize;
        let prev = self.retired[c].fetch_add(1, AcqRel);
        if prev & WAITING != 0 && (prev & COUNT_MASK) + 1 == self.goal[c].load(Relaxed) {
            let _g = self.drained.0.lock();
            self.drained.1.notify_all();
        }
    }

    /// Has any flush flipped the colour? (Tests only.)
    #[cfg(kwq_loom)]
    pub(crate) fn flipped(&self) -> bool {
        self.queued.load(SeqCst) & COLOR_BIT != 0
    }

    /// Tasks counted and not yet retired (an upper bound while tasks are
    /// being queued and retired concurrently).
    pub(crate) fn in_flight(&self) -> u64 {
        let retired = (self.retired[0].load(SeqCst) & COUNT_MASK)
            + (self.retired[1].load(SeqCst) & COUNT_MASK);
        (self.queued.load(SeqCst) & TOTAL_MASK).saturating_sub(retired)
    }

    /// Wait until every task counted before this call has retired. `wait`
    /// wraps the sleeping part (a worker calls it inside `blocking`).
    pub(crate) fn flush(&self, wait: impl FnOnce(&dyn Fn())) {
        let mut book = self.flusher.lock();
        let prev = self.queued.fetch_xor(COLOR_BIT, SeqCst);
        let old = color_of(prev);
        let total = prev & TOTAL_MASK;
        book.expected[old] += total - book.last_flip_total;
        book.last_flip_total = total;
        let goal = book.expected[old];
        self.goal[old].store(goal, Relaxed);
        let now = self.retired[old].fetch_or(WAITING, AcqRel) & COUNT_MASK;
        if now < goal {
            wait(&|| {
                let mut g = self.drained.0.lock();
                while self.retired[old].load(Acquire) & COUNT_MASK < goal {
                    g = self.drained.1.wait(g);
                }
            });
        }
        self.retired[old].fetch_and(!WAITING, AcqRel);
        drop(book);
    }
}

#[cfg(all(test, not(kwq_loom)))]
mod tests {
    use super::*;

    #[test]
    fn colors_count_and_flip() {
        let c = std::sync::Arc::new(Colors::new());
        let a = c.get();
        assert_eq!(a, 0);
        assert_eq!(c.in_flight(), 1);
        let c2 = c.clone();
        let t = std::thread::spawn(move || c2.flush(|w| w()));
        // a task queued after the flip is not waited for
        while c.queued.load(SeqCst) & COLOR_BIT == 0 {
            std::thread::yield_now();
        }
        let b = c.get();
        assert_eq!(b, 1);
        c.put(a);
        t.join().unwrap();
        assert_eq!(c.in_flight(), 1);
        c.put(b);
        assert_eq!(c.in_flight(), 0);
    }

    #[test]
    fn epochs_of_one_colour_accumulate() {
        let c = Colors::new();
        for round in 0..5u64 {
            let k: Vec<u8> = (0..=round).map(|_| c.get()).collect();
            for x in k {
                c.put(x);
            }
            c.flush(|w| w()); // nothing in flight: returns at once
        }
        assert_eq!(c.in_flight(), 0);
        let book = c.flusher.lock();
        assert_eq!(book.expected[0] + book.expected[1], 15);
    }
}
