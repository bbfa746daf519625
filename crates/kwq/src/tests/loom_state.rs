//! Loom checks of the work-item state word: queue vs start vs requeue vs
//! cancel, driven exactly as `work/mod.rs` drives it (start → park under the
//! slot lock → end → take the parked token under the slot lock; cancel under
//! the slot lock).
//!
//! Properties checked in every interleaving:
//! * never two runs of the item at once (WQ-3);
//! * every instance for which `transition_to_pending` returned `Queued` is
//!   either run exactly once or cancelled exactly once (WQ-1, WQ-2, WQ-12);
//! * nothing is left pending with no token when everyone is done.

use crate::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use crate::sync::{Arc, Mutex};
use crate::work::state::*;
use loom::thread;
use std::collections::VecDeque;

/// The item: its state word, its park slot, and bookkeeping.
struct Item {
    state: State,
    slot: Mutex<Option<u64>>,
    running: AtomicUsize,
    runs: Mutex<Vec<u64>>,
    canceled: Mutex<Vec<u64>>,
    queued: Mutex<Vec<u64>>,
}

impl Item {
    fn new() -> Arc<Item> {
        Arc::new(Item {
            state: State::new(),
            slot: Mutex::new(None),
            running: AtomicUsize::new(0),
            runs: Mutex::new(Vec::new()),
            canceled: Mutex::new(Vec::new()),
            queued: Mutex::new(Vec::new()),
        })
    }

    /// `Workqueue::queue`: returns the token to push, if any.
    fn queue(&self) -> Option<u64> {
        match self.state.transition_to_pending() {
            TransitionToPending::Queued { seq } => {
                self.queued.lock().push(seq);
                Some(seq)
            }
            _ => None,
        }
    }

    fn run_once(&self, seq: u64) {
        assert_eq!(self.running.fetch_add(1, SeqCst), 0, "concurrent run");
        self.runs.lock().push(seq);
        self.running.fetch_sub(1, SeqCst);
    }

    /// `process_one_work` for a popped token (`WorkInner::start` + run + `end`).
    /// `requeue` queues the item from inside its first run.
    fn process(&self, seq: u64, requeue: bool, worklist: &Mutex<VecDeque<u64>>) {
        let mut seq = match self.state.transition_to_running(seq) {
            TransitionToRunning::Run => seq,
            TransitionToRunning::Stale => return,
            TransitionToRunning::Busy => {
                let mut slot = self.slot.lock();
                match self.state.transition_to_parked(seq) {
                    TransitionToParked::Parked => {
                        assert!(slot.is_none());
                        *slot = Some(seq);
                        return;
                    }
                    TransitionToParked::Run => seq,
                    TransitionToParked::Stale => return,
                }
            }
        };
        let mut requeue = requeue;
        loop {
            self.run_once(seq);
            if std::mem::take(&mut requeue) {
                if let Some(s) = self.queue() {
                    worklist.lock().push_back(s);
                }
            }
            // `WorkInner::end`
            let next = loop {
                match self.state.transition_to_idle() {
                    TransitionToIdle::Idle { .. } => break None,
                    TransitionToIdle::Parked => {
                        let mut slot = self.slot.lock();
                        if slot.is_none() || !self.state.load().is_parked() {
                            continue;
                        }
                        let s = self.state.transition_parked_to_running(true);
                        let parked = slot.take().unwrap();
                        assert_eq!(s, parked);
                        break Some(parked);
                    }
                }
            };
            match next {
                Some(s) => seq = s,
                None => return,
            }
        }
    }

    /// `WorkInner::cancel`.
    fn cancel(&self) {
        let mut slot = self.slot.lock();
        if let TransitionToCanceled::Canceled { was_parked, .. } =
            self.state.transition_to_canceled()
        {
            let seq = self.state.load().seq();
            if was_parked {
                let parked = slot.take().expect("PARKED without a token");
                assert_eq!(parked, seq);
            }
            self.canceled.lock().push(seq);
        }
    }

    fn check_accounting(&self) {
        let queued = self.queued.lock().clone();
        let runs = self.runs.lock().clone();
        let canceled = self.canceled.lock().clone();
        for q in &queued {
            let r = runs.iter().filter(|s| *s == q).count();
            let c = canceled.iter().filter(|s| *s == q).count();
            assert_eq!(
                r + c,
                1,
                "instance {q}: {r} runs, {c} cancels ({queued:?} {runs:?} {canceled:?})"
            );
        }
        let s = self.state.load();
        assert!(!s.is_running() && !s.is_parked(), "{s:?}");
        assert!(self.slot.lock().is_none());
    }
}

/// Drains the worklist.
fn worker(item: &Item, worklist: &Mutex<VecDeque<u64>>, requeue_first: bool) {
    let mut requeue = requeue_first;
    loop {
        let Some(seq) = worklist.lock().pop_front() else {
            return;
        };
        item.process(seq, std::mem::take(&mut requeue), worklist);
    }
}

#[test]
fn loom_requeue_while_running_never_overlaps() {
    loom::model(|| {
        let item = Item::new();
        let wl = Arc::new(Mutex::new(VecDeque::new()));
        let s = item.queue().unwrap();
        wl.lock().push_back(s);
        // two workers race; the first run requeues from inside
        let (i2, w2) = (item.clone(), wl.clone());
        let t = thread::spawn(move || worker(&i2, &w2, true));
        worker(&item, &wl, false);
        t.join().unwrap();
        // whoever is left drains
        worker(&item, &wl, false);
        let s = item.state.load();
        assert!(!s.is_pending(), "pending with no token: {s:?}");
        item.check_accounting();
    });
}

#[test]
fn loom_queue_races_with_run_end() {
    loom::model(|| {
        let item = Item::new();
        let wl = Arc::new(Mutex::new(VecDeque::new()));
        let s = item.queue().unwrap();
        wl.lock().push_back(s);
        let (i2, w2) = (item.clone(), wl.clone());
        // an outside queuer races with the worker's run and end
        let t = thread::spawn(move || {
            if let Some(s) = i2.queue() {
                w2.lock().push_back(s);
            }
        });
        let (i3, w3) = (item.clone(), wl.clone());
        let t2 = thread::spawn(move || worker(&i3, &w3, false));
        worker(&item, &wl, false);
        t.join().unwrap();
        t2.join().unwrap();
        worker(&item, &wl, false);
        assert!(!item.state.load().is_pending());
        item.check_accounting();
    });
}

#[test]
fn loom_cancel_races_with_park_and_end() {
    loom::model(|| {
        let item = Item::new();
        let wl = Arc::new(Mutex::new(VecDeque::new()));
        let s = item.queue().unwrap();
        wl.lock().push_back(s);
        let (i2, w2) = (item.clone(), wl.clone());
        let t = thread::spawn(move || worker(&i2, &w2, true));
        let i3 = item.clone();
        let c = thread::spawn(move || i3.cancel());
        worker(&item, &wl, false);
        t.join().unwrap();
        c.join().unwrap();
        worker(&item, &wl, false);
        assert!(!item.state.load().is_pending());
        item.check_accounting();
    });
}

#[test]
fn loom_pending_is_exclusive() {
    loom::model(|| {
        let item = Item::new();
        let i2 = item.clone();
        let t = thread::spawn(move || i2.queue().is_some());
        let mine = item.queue().is_some();
        let theirs = t.join().unwrap();
        assert!(mine ^ theirs, "exactly one queue() wins");
    });
}
