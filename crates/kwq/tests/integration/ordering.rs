//! FIFO activation of inactive items (WQ-7) and ordered queues (WQ-8).

use crate::*;
use std::sync::{mpsc, Arc, Mutex};

/// WQ-7: items held back by `max_active` start in queueing order. Two
/// blockers hold both slots of a `max_active(2)` queue; once one is
/// released, the waiting items run one at a time through the freed slot,
/// so their start order is exactly the order of the inactive list.
#[test]
fn wq7_inactive_items_start_in_fifo_order() {
    let rt = runtime(4);
    for round in 0..5 {
        let wq = wq_on(&rt, "fifo").max_active(2).build().unwrap();
        let (g1, g2) = (Gate::new(), Gate::new());
        let (stx, started) = mpsc::channel();
        for g in [&g1, &g2] {
            let (g, s) = (g.clone(), stx.clone());
            wq.queue_fn(move || {
                s.send(()).unwrap();
                g.wait();
            });
        }
        started.recv_timeout(TIMEOUT).unwrap();
        started.recv_timeout(TIMEOUT).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        for k in 0..40 {
            let o = order.clone();
            wq.queue_fn(move || o.lock().unwrap().push(k));
        }
        settle();
        assert!(order.lock().unwrap().is_empty(), "max_active exceeded");
        g1.open();
        eventually(TIMEOUT, "waiting items ran", || {
            order.lock().unwrap().len() == 40
        });
        g2.open();
        wq.flush();
        let got = order.lock().unwrap().clone();
        assert_eq!(got, (0..40).collect::<Vec<_>>(), "round {round}");
    }
}

/// WQ-8: an ordered queue runs one item at a time, in queueing order, also
/// when several threads queue (their queueing order is made definite by a
/// lock) and the pool has several running workers.
#[test]
fn wq8_ordered_queue_one_at_a_time_in_queueing_order() {
    let rt = runtime(4);
    let wq = Arc::new(wq_on(&rt, "ordered").ordered().build().unwrap());
    let infl = InFlight::new();
    let log = Arc::new(Mutex::new(Vec::new()));
    let next = Arc::new(Mutex::new(0usize));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (wq, infl, log, next) = (wq.clone(), infl.clone(), log.clone(), next.clone());
            std::thread::spawn(move || {
                for _ in 0..500 {
                    let mut n = next.lock().unwrap();
                    let k = *n;
                    *n += 1;
                    let (i, l) = (infl.clone(), log.clone());
                    wq.queue_fn(move || {
                        i.enter();
                        l.lock().unwrap().push(k);
                        i.exit();
                    });
                    drop(n);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    wq.flush();
    assert_eq!(infl.max(), 1, "ordered queue ran items concurrently");
    let got = log.lock().unwrap().clone();
    let first_bad = got.windows(2).position(|w| w[0] > w[1]);
    assert_eq!(got.len(), 2000);
    assert!(
        first_bad.is_none(),
        "out of order at {first_bad:?}: {:?}",
        first_bad.map(|i| &got[i.saturating_sub(3)..(i + 4).min(got.len())])
    );
}

/// WQ-8 with persistent items: distinct items queued in order run in that
/// order; a requeue of a running item goes behind everything queued before.
#[test]
fn wq8_ordered_queue_with_work_items() {
    let rt = runtime(4);
    let wq = Arc::new(wq_on(&rt, "ordered-work").ordered().build().unwrap());
    let log = Arc::new(Mutex::new(Vec::new()));
    let infl = InFlight::new();
    let items: Vec<_> = (0..20)
        .map(|k| {
            let (l, i) = (log.clone(), infl.clone());
            kwq::Work::new(format!("o{k}"), move || {
                i.enter();
                l.lock().unwrap().push(k);
                i.exit();
            })
        })
        .collect();
    for round in 0..20 {
        log.lock().unwrap().clear();
        for w in &items {
            assert!(wq.queue(w), "round {round}");
        }
        wq.flush();
        assert_eq!(
            *log.lock().unwrap(),
            (0..20).collect::<Vec<_>>(),
            "round {round}"
        );
    }
    assert_eq!(infl.max(), 1);
}
