//! Loom model of the waiters' handshake (`ordered/waiters.rs`) against the
//! ordered ring's real state changes: a producer waiting for room, a
//! flusher waiting for a release and the iterator's consumer waiting for a
//! DONE head are always woken — a lost wake-up shows up as a loom deadlock
//! (every thread blocked).
//!
//! Run with `ci/loom.sh loom_waiters`.

use crate::ordered_ring::{Claim, Ring};
use crate::ordered_waiters::Waiters;
use crate::sync::Arc;
use loom::thread;

/// A ring of one slot whose only item is DONE, waiting for its drain.
fn done_ring() -> Arc<Ring<u64, u64>> {
    let ring = Arc::new(Ring::<u64, u64>::new(1));
    assert!(ring.try_push(7).is_ok());
    let claim = ring.claim(1).unwrap();
    for t in claim {
        let job = ring.take_job(&t);
        ring.complete(t, job);
    }
    ring.after_complete();
    ring
}

/// The drain releases the slot and notifies (as `ordered::queue::drain`
/// does after every release).
fn spawn_drainer(ring: &Arc<Ring<u64, u64>>, w: &Arc<Waiters>) -> thread::JoinHandle<()> {
    let (ring, w) = (ring.clone(), w.clone());
    thread::spawn(move || {
        let d = ring.try_drain(|_, _| {}, |seq| w.notify_released(seq));
        assert_eq!(d.items, 1);
    })
}

#[test]
fn producer_waiting_for_room_is_woken_by_the_release() {
    loom::model(|| {
        let ring = done_ring();
        let w = Arc::new(Waiters::default());
        let producer = {
            let (ring, w) = (ring.clone(), w.clone());
            thread::spawn(move || {
                w.wait_until(|| ring.has_room());
                assert!(ring.try_push(8).is_ok(), "woken without room");
            })
        };
        let drainer = spawn_drainer(&ring, &w);
        producer.join().unwrap();
        drainer.join().unwrap();
    });
}

#[test]
fn flusher_waiting_for_a_release_is_woken() {
    // The flusher names its target (item 1, the second release), as
    // `OrderedWorkqueue::flush` does: the release of item 0 need not wake
    // it, the release of item 1 must.
    loom::model(|| {
        let (ring, _claim) = full_ring_of_two(2);
        let w = Arc::new(Waiters::default());
        let flusher = spawn_flusher(&ring, &w, 1);
        let drainer = spawn_draining(&ring, &w, 2);
        flusher.join().unwrap();
        drainer.join().unwrap();
    });
}

#[test]
fn consumer_waiting_for_its_head_is_woken_by_the_completion() {
    // The iterator front end: a runner completes the head batch, fences
    // (`after_complete`) and notifies (`after_batch`); the calling thread
    // waits for `head_done` and pops it.
    loom::model(|| {
        let ring = Arc::new(Ring::<u64, u64>::new(2));
        assert!(ring.try_push(3).is_ok());
        let w = Arc::new(Waiters::default());
        let runner = {
            let (ring, w) = (ring.clone(), w.clone());
            thread::spawn(move || {
                let claim = ring.claim(1).unwrap();
                for t in claim {
                    let job = ring.take_job(&t);
                    ring.complete(t, job * 2);
                }
                ring.after_complete();
                w.notify();
            })
        };
        w.wait_until(|| ring.head_done());
        assert_eq!(ring.pop_done(), Some(6));
        runner.join().unwrap();
    });
}

/// A flusher waiting (with its target named, as `OrderedWorkqueue::flush`
/// does) for the release of item `seq`.
fn spawn_flusher(ring: &Arc<Ring<u64, u64>>, w: &Arc<Waiters>, seq: u64) -> thread::JoinHandle<()> {
    let (ring, w) = (ring.clone(), w.clone());
    thread::spawn(move || {
        w.wait_released(seq, || ring.is_released(seq));
        assert!(ring.released() > seq, "woken before its release");
    })
}

/// A full ring of two items of which the first `done` are DONE (the
/// other's `func` never finishes: its claim is returned, to keep).
fn full_ring_of_two(done: usize) -> (Arc<Ring<u64, u64>>, Claim) {
    let ring = Arc::new(Ring::<u64, u64>::new(2));
    for j in [1, 2] {
        assert!(ring.try_push(j).is_ok());
    }
    let mut claim = ring.claim(2).unwrap();
    for t in claim.by_ref().take(done) {
        let job = ring.take_job(&t);
        ring.complete(t, job);
    }
    ring.after_complete();
    (ring, claim)
}

/// A full producer waiting for the release of item 1 (its batch of room),
/// then pushing `then_push` items.
fn spawn_batch_producer(
    ring: &Arc<Ring<u64, u64>>,
    w: &Arc<Waiters>,
    then_push: usize,
) -> thread::JoinHandle<()> {
    let (ring, w) = (ring.clone(), w.clone());
    thread::spawn(move || {
        w.sleep_until_released(
            1,
            || ring.is_released(1),
            std::time::Duration::from_millis(1),
            || ring.released(),
            || ring.has_room(),
        );
        for j in 0..then_push {
            assert!(ring.try_push(10 + j as u64).is_ok(), "woken without room");
        }
    })
}

/// The drain releases what it can and notifies after every release.
fn spawn_draining(
    ring: &Arc<Ring<u64, u64>>,
    w: &Arc<Waiters>,
    items: u64,
) -> thread::JoinHandle<()> {
    let (ring, w) = (ring.clone(), w.clone());
    thread::spawn(move || {
        let d = ring.try_drain(|_, _| {}, |seq| w.notify_released(seq));
        assert_eq!(d.items, items);
    })
}

#[test]
fn producer_waiting_for_a_batch_of_room_is_woken_by_its_target_release() {
    // A full ring of two DONE items; the producer sleeps until item 1 (the
    // second release) frees its batch of two slots. The release of item 0
    // does not satisfy it; the release of item 1 must wake it. (Loom has
    // no clock, so the patience never runs out here.)
    loom::model(|| {
        let (ring, _claim) = full_ring_of_two(2);
        let w = Arc::new(Waiters::default());
        let producer = spawn_batch_producer(&ring, &w, 2);
        let drainer = spawn_draining(&ring, &w, 2);
        producer.join().unwrap();
        drainer.join().unwrap();
    });
}

/// The patience's way out (`Waiters::sleep_until_released`): a producer
/// waits for the release of item 1, which never comes (its `func` never
/// finishes here, as when the drain blocks on something the producer does
/// next), while the drain releases item 0 at any point. Its patience runs
/// out at every check (`Waiters::impatient`), whether or not releases moved
/// since the last one, so loom explores waiting on and settling for the
/// room there is; the producer must always end up with item 0's slot.
#[test]
fn producer_whose_target_never_comes_takes_the_room_there_is() {
    loom::model(|| {
        let (ring, _claim) = full_ring_of_two(1);
        let w = Arc::new(Waiters::impatient());
        let producer = spawn_batch_producer(&ring, &w, 1);
        let drainer = spawn_draining(&ring, &w, 1);
        producer.join().unwrap();
        drainer.join().unwrap();
    });
}

/// Two waiters with different targets at once — a flusher waiting for
/// item 0, a full producer for item 1 — against a drain that releases
/// both. A waiter that leaves withdraws its target only when it is the
/// one registered (`Waiters::drop_target`); loom checks that the flusher
/// leaving can never withdraw the producer's target (or the reverse), so
/// both are always woken.
#[test]
fn two_waiters_with_different_targets_are_both_woken() {
    loom::model(|| {
        let (ring, _claim) = full_ring_of_two(2);
        let w = Arc::new(Waiters::default());
        let flusher = spawn_flusher(&ring, &w, 0);
        let producer = spawn_batch_producer(&ring, &w, 2);
        let drainer = spawn_draining(&ring, &w, 2);
        flusher.join().unwrap();
        producer.join().unwrap();
        drainer.join().unwrap();
    });
}
