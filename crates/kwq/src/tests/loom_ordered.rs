//! Loom model of the ordered ring's DONE → ordered-drain hand-off
//! (`ordered/ring.rs`): workers racing to complete and drain run every
//! ordered stage exactly once, in order, never two at once, and when all
//! have returned no DONE item is left undrained (no lost drain). Also the
//! release rule: a slot is reused only after its previous item's ordered
//! stage returned and its result was dropped.
//!
//! Run with `RUSTFLAGS="--cfg kwq_loom" cargo test -p kwq --lib --release loom_ordered`.

use crate::ordered_ring::Ring;
use crate::sync::atomic::{AtomicUsize, Ordering::*};
use crate::sync::{Arc, Mutex};
use loom::thread;

/// Completes and drains whatever this worker can claim, one item at a time.
fn worker(ring: &Ring<u64, u64>, order: &Mutex<Vec<u64>>, in_ordered: &AtomicUsize) {
    while let Some(claim) = ring.claim(1) {
        for t in claim {
            let job = ring.take_job(&t);
            ring.complete(t, job * 10);
        }
        ring.after_complete();
        ring.try_drain(
            |seq, result| {
                assert_eq!(
                    in_ordered.fetch_add(1, SeqCst),
                    0,
                    "two ordered stages at once"
                );
                assert_eq!(result, seq * 10, "result of another item");
                order.lock().push(seq);
                in_ordered.fetch_sub(1, SeqCst);
            },
            |_| {},
        );
    }
}

#[test]
fn two_workers_race_to_drain() {
    loom::model(|| {
        let ring = Arc::new(Ring::<u64, u64>::new(2));
        for i in 0..2 {
            assert!(ring.try_push(i).is_ok());
        }
        let order = Arc::new(Mutex::new(Vec::new()));
        let in_ordered = Arc::new(AtomicUsize::new(0));
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let (r, o, g) = (ring.clone(), order.clone(), in_ordered.clone());
                thread::spawn(move || worker(&r, &o, &g))
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        // No lost drain: everything DONE was drained by somebody.
        assert_eq!(*order.lock(), vec![0, 1]);
        assert_eq!(ring.released(), 2);
    });
}

#[test]
fn completer_races_owner_exit() {
    // Item 0 is completed and drained by worker A while worker B completes
    // item 1: B's DONE store races with A's exit from the drain (head
    // publication + re-check). Exactly one of them must drain item 1.
    loom::model(|| {
        let ring = Arc::new(Ring::<u64, u64>::new(4));
        assert!(ring.try_push(0).is_ok());
        assert!(ring.try_push(1).is_ok());
        let c0 = ring.claim(1).unwrap();
        let c1 = ring.claim(1).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        let drains = Arc::new(AtomicUsize::new(0));
        let spawn = |claim: crate::ordered_ring::Claim| {
            let (r, o, d) = (ring.clone(), order.clone(), drains.clone());
            thread::spawn(move || {
                for t in claim {
                    let job = r.take_job(&t);
                    r.complete(t, job);
                }
                r.after_complete();
                let n = r.try_drain(|seq, _| o.lock().push(seq), |_| {});
                if n.items > 0 {
                    d.fetch_add(1, SeqCst);
                }
            })
        };
        let a = spawn(c0);
        let b = spawn(c1);
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(*order.lock(), vec![0, 1]);
        assert!(drains.load(SeqCst) >= 1);
    });
}

#[test]
fn slot_reused_only_after_release() {
    // One slot: the producer's second item can only be reserved after the
    // first item's ordered stage returned and its result was dropped.
    loom::model(|| {
        let ring = Arc::new(Ring::<u64, Arc<()>>::new(1));
        let token = Arc::new(());
        let weak_count = Arc::new(AtomicUsize::new(0));
        assert!(ring.try_push(0).is_ok());
        let producer = {
            let ring = ring.clone();
            let wc = weak_count.clone();
            thread::spawn(move || {
                let mut job = 1;
                loop {
                    match ring.try_push(job) {
                        Ok(seq) => {
                            assert_eq!(seq, 1);
                            // The first item's ordered stage ended, and its
                            // result was dropped, before we got the slot.
                            assert!(wc.load(SeqCst) >= 1);
                            return;
                        }
                        Err(crate::ordered_ring::Full(j)) => {
                            job = j;
                            thread::yield_now();
                        }
                    }
                }
            })
        };
        let consumer = {
            let ring = ring.clone();
            let wc = weak_count.clone();
            let token = token.clone();
            thread::spawn(move || {
                let mut drained = 0;
                while drained < 2 {
                    if let Some(claim) = ring.claim(1) {
                        for t in claim {
                            let _ = ring.take_job(&t);
                            ring.complete(t, token.clone());
                        }
                        ring.after_complete();
                        let d = ring.try_drain(
                            |_, result| {
                                drop(result);
                                wc.fetch_add(1, SeqCst);
                            },
                            |_| {},
                        );
                        drained += d.items;
                    } else {
                        thread::yield_now();
                    }
                }
            })
        };
        producer.join().unwrap();
        consumer.join().unwrap();
        assert_eq!(weak_count.load(SeqCst), 2);
        drop(ring);
        assert_eq!(Arc::strong_count(&token), 1);
    });
}
