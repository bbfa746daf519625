//! A panicking work function is caught, reported with the item and queue
//! names, and its worker survives; flush and cancel still return.

use crate::*;
use std::sync::{mpsc, Arc};

#[test]
fn panicking_work_is_reported_and_worker_survives() {
    // Concurrency 1 and max_workers 2: if the panic killed the worker, the
    // following items would depend on the reserve alone; checking many
    // panics in a row would exhaust it.
    let reports = Reports::default();
    let r = reports.clone();
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(1)
        .max_workers(2)
        .thread_name("kwq-test")
        .on_panic(move |p: kwq::PanicReport| {
            r.0.lock().unwrap().push(Report {
                work: p.work().to_string(),
                workqueue: p.workqueue().to_string(),
                message: p.message().to_string(),
            })
        })
        .build()
        .unwrap();
    let wq = wq_on(&rt, "panicky-q").build().unwrap();
    let runs = Counter::new();
    let rr = runs.clone();
    let w = kwq::Work::new("panicky", move || {
        let n = rr.inc();
        panic!("boom #{n}");
    });
    for n in 1..=10 {
        assert!(wq.queue(&w));
        let w2 = w.clone();
        within(TIMEOUT, "flush of a panicking item", move || w2.flush());
        assert_eq!(runs.get(), n);
    }
    let all = reports.wait_for(10);
    for (k, r) in all.iter().enumerate() {
        assert_eq!(r.work, "panicky");
        assert_eq!(r.workqueue, "panicky-q");
        assert_eq!(r.message, format!("boom #{}", k + 1));
    }
    // The item is reusable and cancel works after panics.
    assert!(wq.queue(&w));
    let w2 = w.clone();
    within(TIMEOUT, "cancel_sync after panics", move || {
        w2.cancel_sync()
    });
    // Ordinary items still run on the surviving workers.
    let (tx, rx) = mpsc::channel();
    wq.queue_fn(move || tx.send(()).unwrap());
    rx.recv_timeout(TIMEOUT).unwrap();
    within(TIMEOUT, "Workqueue::flush after panics", move || wq.flush());
}

#[test]
fn panicking_job_is_reported_and_flush_returns() {
    let (rt, reports) = Reports::runtime(1);
    let wq = Arc::new(wq_on(&rt, "job-panic-q").build().unwrap());
    for k in 0..5 {
        wq.queue_fn(move || panic!("job {k} failed"));
    }
    wq.queue_fn(|| std::panic::panic_any(42u32));
    let q = wq.clone();
    within(TIMEOUT, "flush after panicking jobs", move || q.flush());
    let all = reports.wait_for(6);
    assert!(all
        .iter()
        .all(|r| r.work == "<job>" && r.workqueue == "job-panic-q"));
    let mut msgs: Vec<_> = all.iter().map(|r| r.message.clone()).collect();
    msgs.sort();
    assert!(msgs.contains(&"job 3 failed".to_string()), "{msgs:?}");
    assert!(
        msgs.iter().any(|m| m.contains("non-string")),
        "non-string payload: {msgs:?}"
    );
    let (tx, rx) = mpsc::channel();
    wq.queue_fn(move || tx.send(()).unwrap());
    rx.recv_timeout(TIMEOUT).unwrap();
}

/// A panicking *handler* must not take the worker down either (set through
/// the deprecated `panic_handler`, which must keep working).
#[test]
#[allow(deprecated)]
fn panicking_panic_handler_is_contained() {
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(1)
        .max_workers(2)
        .thread_name("kwq-test")
        .panic_handler(|_| panic!("handler exploded"))
        .build()
        .unwrap();
    let wq = wq_on(&rt, "handler-q").build().unwrap();
    for _ in 0..5 {
        wq.queue_fn(|| panic!("item"));
    }
    let runs = Counter::new();
    for _ in 0..5 {
        let r = runs.clone();
        wq.queue_fn(move || {
            r.inc();
        });
    }
    within(TIMEOUT, "flush after handler panics", move || wq.flush());
    assert_eq!(runs.get(), 5);
}

/// The panic of a parked-and-handed-over instance does not lose the
/// following instance (WQ-2 with a panicking first run).
#[test]
fn requeued_item_runs_again_after_its_run_panicked() {
    let (rt, reports) = Reports::runtime(2);
    let wq = wq_on(&rt, "panic-requeue-q").build().unwrap();
    let gate = Gate::new();
    let (tx, rx) = mpsc::channel();
    let g = gate.clone();
    let mut n = 0;
    let w = kwq::Work::new("panic-then-ok", move || {
        n += 1;
        tx.send(n).unwrap();
        if n == 1 {
            g.wait();
            panic!("first run fails");
        }
    });
    assert!(wq.queue(&w));
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), 1);
    assert!(wq.queue(&w));
    settle();
    gate.open();
    assert_eq!(rx.recv_timeout(TIMEOUT).unwrap(), 2);
    wq.flush();
    assert_eq!(reports.wait_for(1).len(), 1);
}
