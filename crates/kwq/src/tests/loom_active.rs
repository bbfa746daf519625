//! Loom checks of per-workqueue accounting (`workqueue/active.rs`).
//!
//! * Admission: with `max_active == 1`, tasks admitted by racing workers and
//!   retirers never exceed one at a time, none is stranded on the inactive
//!   list, and activation keeps FIFO order.
//! * Colours: a flush waits for a task counted before it and is not held up
//!   by one counted after it.

use crate::active::{Admission, Colors, Defer};
use crate::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use crate::sync::{Arc, Mutex};
use loom::thread;

/// Queueing task `t` (`WqInner::submit`), then running whatever it and the
/// retirements hand this thread (the worker side of `exec.rs`).
fn pop_and_run(adm: &Admission<u32>, t: u32, running: &AtomicUsize, order: &Mutex<Vec<u32>>) {
    let admitted = if adm.try_admit() {
        Some(t)
    } else {
        match adm.defer(t) {
            Defer::Admitted(t) => Some(t),
            Defer::Deferred => None,
        }
    };
    let mut next = admitted;
    while let Some(t) = next {
        assert_eq!(running.fetch_add(1, SeqCst), 0, "max_active exceeded");
        order.lock().push(t);
        running.fetch_sub(1, SeqCst);
        // retire; the activated task (already admitted) runs here too
        let mut act = adm.retire();
        assert!(act.len() <= 1);
        next = act.pop();
    }
}

#[test]
fn loom_admission_max_active_one() {
    loom::model(|| {
        let adm = Arc::new(Admission::<u32>::new(1));
        let running = Arc::new(AtomicUsize::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let (a2, r2, o2) = (adm.clone(), running.clone(), order.clone());
        let t = thread::spawn(move || pop_and_run(&a2, 1, &r2, &o2));
        pop_and_run(&adm, 0, &running, &order);
        t.join().unwrap();
        let mut ran = order.lock().clone();
        ran.sort();
        assert_eq!(ran, vec![0, 1], "a task was stranded");
        assert_eq!(adm.counts(), (0, 0));
    });
}

#[test]
fn loom_admission_fifo_after_deferral() {
    loom::model(|| {
        // Task 0 holds the slot; task 1 is deferred; then task 2 is popped
        // concurrently with 0 retiring. 1 must run before 2.
        let adm = Arc::new(Admission::<u32>::new(1));
        assert!(adm.try_admit()); // task 0 running
        assert!(matches!(adm.defer(1), Defer::Deferred));
        let running = Arc::new(AtomicUsize::new(0));
        let order = Arc::new(Mutex::new(Vec::new()));
        let (a2, r2, o2) = (adm.clone(), running.clone(), order.clone());
        let t = thread::spawn(move || pop_and_run(&a2, 2, &r2, &o2));
        // task 0 retires: runs whatever it activates
        let mut act = adm.retire();
        while let Some(x) = act.pop() {
            assert_eq!(running.fetch_add(1, SeqCst), 0);
            order.lock().push(x);
            running.fetch_sub(1, SeqCst);
            act = adm.retire();
        }
        t.join().unwrap();
        assert_eq!(*order.lock(), vec![1, 2]);
        assert_eq!(adm.counts(), (0, 0));
    });
}

#[test]
fn loom_flush_waits_for_earlier_tasks() {
    loom::model(|| {
        let c = Arc::new(Colors::new());
        let early = c.get();
        let done = Arc::new(AtomicUsize::new(0));
        let (c2, d2) = (c.clone(), done.clone());
        let retirer = thread::spawn(move || {
            d2.store(1, SeqCst);
            c2.put(early);
        });
        // A concurrent task that finishes on its own, possibly miscounted
        // for a moment (stale colour guess).
        let c3 = c.clone();
        let other = thread::spawn(move || {
            let k = c3.get();
            c3.put(k);
        });
        c.flush(|w| w());
        assert_eq!(
            done.load(SeqCst),
            1,
            "flush returned before an earlier task retired"
        );
        retirer.join().unwrap();
        other.join().unwrap();
        assert_eq!(c.in_flight(), 0);
    });
}

#[test]
fn loom_flush_not_held_up_by_later_tasks() {
    loom::model(|| {
        let c = Arc::new(Colors::new());
        let early = c.get();
        let c2 = c.clone();
        let flusher = thread::spawn(move || c2.flush(|w| w()));
        // Wait until the flush has started (flipped the colour), then queue
        // a task that stays in flight until the flusher has returned: if it
        // were counted in the flushed colour, this would deadlock.
        while c.in_flight() != 1 || !c.flipped() {
            thread::yield_now();
        }
        let late = c.get();
        c.put(early);
        flusher.join().unwrap();
        c.put(late);
        assert_eq!(c.in_flight(), 0);
    });
}
