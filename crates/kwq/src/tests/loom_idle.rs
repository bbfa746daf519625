//! Loom model of the crew's idle handshake (`ordered/idle.rs`) with the
//! real ring: an item pushed while runners are leaving is never stranded —
//! either a runner's re-check claims it or the producer wakes a runner —
//! and a runner is never both continuing and woken (it would run twice);
//! also with a producer that helps while the ring is full.
//!
//! Run with `ci/loom.sh loom_idle`.

use crate::ordered_idle::Idle;
use crate::ordered_ring::Ring;
use crate::sync::atomic::{AtomicUsize, Ordering::*};
use crate::sync::Arc;
use loom::thread;

/// Runner `me`'s loop: claims and completes items until it may leave.
/// Returns how many items it claimed.
fn runner(ring: &Ring<u64, u64>, idle: &Idle, me: usize) -> usize {
    let mut n = 0;
    loop {
        if let Some(claim) = ring.claim(1) {
            for t in claim {
                let job = ring.take_job(&t);
                ring.complete(t, job);
                n += 1;
            }
            ring.after_complete();
            continue;
        }
        if !idle.leave(me, || ring.has_claimable()) {
            return n;
        }
    }
}

/// One producer racing `runners` active runners (of `limit`) that are about
/// to leave; afterwards every woken runner runs its loop once more (its
/// `Work` was queued). The item must be claimed exactly once.
fn check(limit: usize, active: &'static [usize], wake_backlog: u64) {
    loom::model(move || {
        let ring = Arc::new(Ring::<u64, u64>::new(2));
        let idle = Arc::new(Idle::all(limit));
        // Mark the active runners (the lowest indices) as woken.
        for &r in active {
            assert_eq!(idle.pick_if(limit, || true), Some(r));
        }
        let claimed = Arc::new(AtomicUsize::new(0));
        let woken = Arc::new(AtomicUsize::new(usize::MAX));
        let hs: Vec<_> = active
            .iter()
            .map(|&me| {
                let (ring, idle, claimed) = (ring.clone(), idle.clone(), claimed.clone());
                thread::spawn(move || {
                    claimed.fetch_add(runner(&ring, &idle, me), SeqCst);
                })
            })
            .collect();
        let producer = {
            let (ring, idle, woken) = (ring.clone(), idle.clone(), woken.clone());
            thread::spawn(move || {
                let seq = ring.try_push(1).ok().unwrap();
                let backlog = || (seq + 1).saturating_sub(ring.claimed());
                if let Some(i) = idle.pick_for_item(limit, || wake_backlog, backlog) {
                    woken.store(i, SeqCst);
                }
            })
        };
        producer.join().unwrap();
        for h in hs {
            h.join().unwrap();
        }
        // The woken runner's Work runs now (it was queued exactly once).
        // Until then its bit must stay clear: a runner that went on after
        // being woken would have set it again when it left, i.e. it would
        // have been running and queued at once.
        let w = woken.load(SeqCst);
        if w != usize::MAX {
            assert_eq!(idle.snapshot() & (1 << w), 0, "woken runner also went on");
            claimed.fetch_add(runner(&ring, &idle, w), SeqCst);
        }
        assert_eq!(claimed.load(SeqCst), 1, "item stranded or run twice");
        // Everybody is idle again.
        assert_eq!(idle.snapshot(), (1u64 << limit) - 1);
    });
}

#[test]
fn only_runner_leaving_races_the_producer() {
    check(1, &[0], 64);
}

#[test]
fn active_runner_with_short_backlog_must_take_it() {
    // Runner 1 idle, runner 0 active: the producer does not wake runner 1
    // (short backlog), so runner 0's re-check must claim the item.
    check(2, &[0], 64);
}

#[test]
fn producer_wakes_the_idle_runner_when_backlog_is_long() {
    check(2, &[0], 0);
}

/// The helper window (see `ordered/idle.rs`): a producer that finds the
/// ring full runs stages itself (`Crew::help_once`) and may claim and
/// complete an item between the leaving runner's two re-check loads. Every
/// item is still claimed, completed and released, because the helper goes
/// round its loop again (push, or help) and kicks after its push.
#[test]
fn helping_producer_and_leaving_runner_strand_nothing() {
    loom::model(|| {
        let ring = Arc::new(Ring::<u64, u64>::new(2));
        let idle = Arc::new(Idle::all(1));
        assert_eq!(idle.pick_if(1, || true), Some(0)); // runner 0 is active
        assert!(ring.try_push(0).is_ok());
        assert!(ring.try_push(1).is_ok()); // full
        let woken = Arc::new(AtomicUsize::new(usize::MAX));
        // Completes one claimed batch and drains, as `run_batch` does.
        fn stage(ring: &Ring<u64, u64>) -> bool {
            let Some(claim) = ring.claim(1) else {
                return false;
            };
            for t in claim {
                let job = ring.take_job(&t);
                ring.complete(t, job);
            }
            ring.after_complete();
            ring.try_drain(|_, _| {}, |_| {});
            true
        }
        let runner_loop = |ring: Arc<Ring<u64, u64>>, idle: Arc<Idle>| loop {
            if stage(&ring) {
                continue;
            }
            if !idle.leave(0, || ring.has_claimable()) {
                return;
            }
        };
        let runner = {
            let (ring, idle) = (ring.clone(), idle.clone());
            thread::spawn(move || runner_loop(ring, idle))
        };
        let producer = {
            let (ring, idle, woken) = (ring.clone(), idle.clone(), woken.clone());
            thread::spawn(move || {
                let mut job = 2;
                loop {
                    match ring.try_push(job) {
                        Ok(seq) => {
                            let backlog = || (seq + 1).saturating_sub(ring.claimed());
                            if let Some(i) = idle.pick_for_item(1, || 64, backlog) {
                                woken.store(i, SeqCst);
                            }
                            return;
                        }
                        Err(crate::ordered_ring::Full(j)) => {
                            job = j;
                            if !stage(&ring) {
                                thread::yield_now();
                            }
                        }
                    }
                }
            })
        };
        producer.join().unwrap();
        runner.join().unwrap();
        // A woken runner's Work runs now (it was queued).
        if woken.load(SeqCst) != usize::MAX {
            runner_loop(ring.clone(), idle.clone());
        }
        // Drain what a racing drain owner left (loom_ordered checks that no
        // drain is lost; here the question is whether every item ran).
        ring.try_drain(|_, _| {}, |_| {});
        assert_eq!(ring.released(), 3, "an item was stranded");
    });
}

/// Runner 0 (active, of two) stalls while a producer queues one item
/// whose backlog alone would wake nobody, with `current_active` runners
/// allowed. Runner 0 never claims while it is blocked, so the item runs only
/// if somebody wakes runner 1 — the producer (it saw the stall) or runner 0
/// itself (its check saw the item). Exactly one of them must; returns the
/// ring and idle set afterwards, runner 0 still stalled.
fn stall_races_an_item(current_active: usize) -> (Arc<Ring<u64, u64>>, Arc<Idle>) {
    let ring = Arc::new(Ring::<u64, u64>::new(2));
    let idle = Arc::new(Idle::all(2));
    assert_eq!(idle.pick_if(current_active, || true), Some(0)); // runner 0 is active
    let woken = Arc::new(AtomicUsize::new(0));
    let stalling = {
        let (ring, idle, woken) = (ring.clone(), idle.clone(), woken.clone());
        thread::spawn(move || {
            if let Some(i) = idle.stall(0, current_active, || ring.has_claimable()) {
                assert_eq!(i, 1);
                woken.fetch_add(1, SeqCst);
            }
        })
    };
    let producer = {
        let (ring, idle, woken) = (ring.clone(), idle.clone(), woken.clone());
        thread::spawn(move || {
            let seq = ring.try_push(7).ok().unwrap();
            let backlog = || (seq + 1).saturating_sub(ring.claimed());
            if let Some(i) = idle.pick_for_item(current_active, || 64, backlog) {
                assert_eq!(i, 1);
                woken.fetch_add(1, SeqCst);
            }
        })
    };
    stalling.join().unwrap();
    producer.join().unwrap();
    let n = woken.load(SeqCst);
    assert_eq!(n, 1, "runner 1 woken {n} times");
    (ring, idle)
}

/// The stall handshake (see `ordered/idle.rs`): runner 0 is about to block
/// (it owns the drain, or entered `kwq::blocking`) and runner 1 is idle.
#[test]
fn stalled_runner_or_producer_wakes_the_idle_runner() {
    loom::model(|| {
        let (ring, idle) = stall_races_an_item(2);
        // Runner 1's Work runs and claims the item; runner 0 is still blocked.
        assert_eq!(runner(&ring, &idle, 1), 1);
        idle.unstall(0);
    });
}

/// Overflow (see `ordered/idle.rs`): the same race with a threshold holding
/// `current_active` at 1 of 2, so runner 1 is above the limit and only
/// an overflow can reach it.
#[test]
fn stalled_only_slot_lends_to_a_runner_above_the_limit() {
    loom::model(|| {
        let (_ring, idle) = stall_races_an_item(1);
        idle.unstall(0);
        // Not stalled any more: nothing overflows.
        assert_eq!(idle.pick_for_item(1, || 64, || 1), None);
    });
}

/// The overflow's second Dekker pair (found by the session-7 review): with
/// `current_active` 1 of 2, runner 1 (above the limit, kept by an overflow slot
/// or finishing a batch) stands down while runner 0, the only runner below the
/// limit, stalls; an item is waiting that the producer woke nobody for.
/// Runner 1 sees no stalled slot (so it stands down), runner 0 sees nobody
/// idle — unless one of them re-checks after its mark. So `stand_down` must
/// overflow as `stall` does: somebody wakes runner 1 again.
#[test]
fn stand_down_racing_the_only_slot_stalling_strands_nothing() {
    loom::model(|| {
        let ring = Arc::new(Ring::<u64, u64>::new(2));
        let idle = Arc::new(Idle::all(2));
        assert_eq!(idle.pick_if(2, || true), Some(0));
        assert_eq!(idle.pick_if(2, || true), Some(1));
        let seq = ring.try_push(7).ok().unwrap();
        // Both runners active and none stalled: the producer wakes nobody.
        assert_eq!(idle.pick_for_item(1, || 64, || seq + 1), None);
        let woken = Arc::new(AtomicUsize::new(0));
        let stalling = {
            let (ring, idle, woken) = (ring.clone(), idle.clone(), woken.clone());
            thread::spawn(move || {
                if idle.stall(0, 1, || ring.has_claimable()).is_some() {
                    woken.fetch_add(1, SeqCst);
                }
            })
        };
        let standing_down = {
            let (ring, idle, woken) = (ring.clone(), idle.clone(), woken.clone());
            thread::spawn(move || {
                if idle.overflows_for(1, || ring.has_claimable()) {
                    // Keeps running: it will claim the item itself.
                    woken.fetch_add(1, SeqCst);
                } else if idle.stand_down(1, 1, || ring.has_claimable()).is_some() {
                    woken.fetch_add(1, SeqCst);
                }
            })
        };
        stalling.join().unwrap();
        standing_down.join().unwrap();
        assert_eq!(
            woken.load(SeqCst),
            1,
            "runners for the item: {}",
            woken.load(SeqCst)
        );
        idle.unstall(0);
    });
}
