//! Loom models of `Presence` (`pool/sleep.rs`): the pool monitor presuming a
//! worker blocked, and releasing it, races with the worker going idle and
//! with the worker entering and leaving `kwq::blocking` on its own. The real
//! `Presence` runs against one `nr_running` counter.
//!
//! Properties: every uncount is undone exactly once (the counter ends where
//! the worker's final state says it must), and the counter never drops
//! below zero on the way (it would wrap: `checked_sub` below turns that into
//! a failure).
//!
//! Seeded bug it catches: a `release` that clears the presumption before
//! counting the worker back in lets a racing `go_idle` take the counter
//! below zero (the `release_counting_late` model runs that variant and
//! expects the underflow).

use crate::pool::sleep::Presence;
use crate::sync::atomic::{AtomicUsize, Ordering::*};
use crate::sync::{Arc, Mutex};
use loom::thread;

/// `fetch_sub` that fails the model instead of wrapping.
fn uncount(n: &AtomicUsize) {
    let before = n.fetch_sub(1, SeqCst);
    assert!(
        before.checked_sub(1).is_some(),
        "nr_running went below zero"
    );
}

struct Shared {
    nr_running: AtomicUsize,
    presence: Presence,
    /// Stands for the idle list: the worker lists itself under it, the
    /// monitor presumes only unlisted workers under it.
    listed: Mutex<bool>,
}

fn shared() -> Arc<Shared> {
    Arc::new(Shared {
        // One worker, counted, executing an item.
        nr_running: AtomicUsize::new(1),
        presence: Presence::new(),
        listed: Mutex::new(false),
    })
}

/// The worker goes idle, in `go_idle`'s order: under the idle lock, settle
/// the presumption (uncounting itself unless the monitor did), get listed.
fn go_idle(s: &Shared) {
    let mut listed = s.listed.lock();
    if s.presence.settle_for_idle() {
        uncount(&s.nr_running);
    }
    *listed = true;
}

/// The worker waits inside `kwq::blocking` (leave_running, rejoin_running).
fn blocking_wait(s: &Shared) {
    if s.presence.leave() {
        uncount(&s.nr_running);
    }
    s.nr_running.fetch_add(1, SeqCst);
    s.presence.rejoin();
}

fn monitor(s: &Shared) {
    let presumed = {
        let listed = s.listed.lock();
        !*listed && s.presence.presume(&s.nr_running)
    };
    if presumed {
        // The worker "makes progress": count it back in if still presumed.
        let _ = s.presence.release(&s.nr_running);
    }
}

#[test]
fn presume_and_release_race_with_go_idle() {
    loom::model(|| {
        let s = shared();
        let s2 = s.clone();
        let m = thread::spawn(move || monitor(&s2));
        // Worker: the item ended; go idle.
        go_idle(&s);
        m.join().unwrap();
        // Idle: not counted.
        assert_eq!(s.nr_running.load(SeqCst), 0);
    });
}

#[test]
fn presume_and_release_race_with_blocking() {
    loom::model(|| {
        let s = shared();
        let s2 = s.clone();
        let m = thread::spawn(move || monitor(&s2));
        // Worker: kwq::blocking around a wait (leave_running/rejoin_running).
        blocking_wait(&s);
        m.join().unwrap();
        // Back from blocking, still in the item: counted once.
        assert_eq!(s.nr_running.load(SeqCst), 1);
    });
}

#[test]
fn two_presumes_in_a_row_race_with_blocking_then_idle() {
    loom::model(|| {
        let s = shared();
        let s2 = s.clone();
        let m = thread::spawn(move || {
            monitor(&s2);
            monitor(&s2);
        });
        blocking_wait(&s);
        go_idle(&s);
        m.join().unwrap();
        assert_eq!(s.nr_running.load(SeqCst), 0);
    });
}

/// The seeded bug: release clears the presumption first and counts later.
#[test]
#[should_panic(expected = "nr_running went below zero")]
fn release_counting_late() {
    loom::model(|| {
        let s = shared();
        let s2 = s.clone();
        let m = thread::spawn(move || {
            let presumed = {
                let listed = s2.listed.lock();
                !*listed && s2.presence.presume(&s2.nr_running)
            };
            if presumed {
                // Wrong order: the state says "counted" before the count.
                let scratch = AtomicUsize::new(1);
                if s2.presence.release(&scratch) {
                    s2.nr_running.fetch_add(1, SeqCst);
                }
            }
        });
        go_idle(&s);
        m.join().unwrap();
    });
}
