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
//! a flusher flips the current colour and waits for the old colour's count
//! to reach zero. Flushers are serialised, so a colour is only reused once
//! its previous flusher has seen it drain. Colour and both counts share one
//! word:
//!
//! ```text
//!   bit 63: current colour | bits 32..62: count of colour 1 | bits 0..31: count of colour 0
//! ```
//!
//! Queueing adds one to the count of the colour it *guesses* is current (a
//! read-mostly hint) with a single `fetch_add`; the previous value tells the
//! real colour, and a wrong guess is corrected by a second `fetch_add` that
//! moves the unit across. In between, the old colour is over-counted by one,
//! which can only make a flusher wait a moment longer, never return early.

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
const COUNT_ONE: [u64; 2] = [1, 1 << 32];
const COUNT_MASK: [u64; 2] = [(1 << 32) - 1, ((1 << 31) - 1) << 32];

fn color_of(w: u64) -> usize {
    (w >> 63) as usize
}

fn count_of(w: u64, c: usize) -> u64 {
    (w & COUNT_MASK[c]) >> (32 * c as u32)
}

/// Flush-colour bookkeeping of one workqueue. `repr(C)`: `word` first (see
/// `WqInner`).
#[derive(Debug)]
#[repr(C)]
pub(crate) struct Colors {
    word: AtomicU64,
    /// Read-mostly copy of the current colour (only flushers write it).
    hint: AtomicUsize,
    /// Serialises flushers.
    flusher: Mutex<()>,
    /// Where flushers sleep; notified when a non-current colour drains.
    drained: (Mutex<()>, Condvar),
}

impl Colors {
    pub(crate) fn new() -> Colors {
        Colors {
            word: AtomicU64::new(0),
            hint: AtomicUsize::new(0),
            flusher: Mutex::new(()),
            drained: (Mutex::new(()), Condvar::new()),
        }
    }

    /// Count a newly queued task; returns its colour.
    pub(crate) fn get(&self) -> u8 {
        let guess = self.hint.load(Relaxed) & 1;
        let prev = self.word.fetch_add(COUNT_ONE[guess], SeqCst);
        let real = color_of(prev);
        if real != guess {
            self.word
                .fetch_add(COUNT_ONE[real].wrapping_sub(COUNT_ONE[guess]), SeqCst);
            // The unit sat in the old colour for a moment; if a flusher was
            // waiting for that colour to drain, it may have just drained.
            self.notify();
        }
        real as u8
    }

    /// Uncount a retired task.
    pub(crate) fn put(&self, color: u8) {
        let c = color as usize;
        let prev = self.word.fetch_sub(COUNT_ONE[c], SeqCst);
        debug_assert!(count_of(prev, c) > 0);
        if count_of(prev, c) == 1 && color_of(prev) != c {
            self.notify();
        }
    }

    fn notify(&self) {
        let _g = self.drained.0.lock();
        self.drained.1.notify_all();
    }

    /// Has any flush flipped the colour since creation? (Tests only.)
    #[cfg(kwq_loom)]
    pub(crate) fn flipped(&self) -> bool {
        self.hint.load(SeqCst) == 1
    }

    /// Tasks counted and not yet retired, both colours.
    pub(crate) fn in_flight(&self) -> u64 {
        let w = self.word.load(SeqCst);
        count_of(w, 0) + count_of(w, 1)
    }

    /// Wait until every task counted before this call has retired. `wait`
    /// wraps the sleeping part (a worker calls it inside `blocking`).
    pub(crate) fn flush(&self, wait: impl FnOnce(&dyn Fn())) {
        let _serial = self.flusher.lock();
        let prev = self.word.fetch_xor(COLOR_BIT, SeqCst);
        let old = color_of(prev);
        self.hint.store(old ^ 1, Relaxed);
        if count_of(prev, old) == 0 {
            return;
        }
        wait(&|| {
            let mut g = self.drained.0.lock();
            while count_of(self.word.load(SeqCst), old) != 0 {
                g = self.drained.1.wait(g);
            }
        });
    }
}

#[cfg(all(test, not(kwq_loom)))]
mod tests {
    use super::*;

    #[test]
    fn colors_count_and_flip() {
        let c = Colors::new();
        let a = c.get();
        assert_eq!(a, 0);
        assert_eq!(c.in_flight(), 1);
        // flip with a task outstanding; flush must wait, so do it on a thread
        let c = std::sync::Arc::new(c);
        let c2 = c.clone();
        let t = std::thread::spawn(move || c2.flush(|w| w()));
        // a task queued after the flip is not waited for
        while c.hint.load(Relaxed) == 0 {
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
    fn stale_guess_is_corrected() {
        let c = Colors::new();
        c.flush(|w| w()); // current colour is now 1, hint too
        c.hint.store(0, Relaxed); // force a wrong guess
        let k = c.get();
        assert_eq!(k, 1);
        let w = c.word.load(SeqCst);
        assert_eq!(count_of(w, 0), 0);
        assert_eq!(count_of(w, 1), 1);
    }
}
