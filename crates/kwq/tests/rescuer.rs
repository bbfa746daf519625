//! Rescuers (`WorkqueueBuilder::rescuer`, the kernel's `WQ_MEM_RECLAIM`):
//! a queue whose items others wait for still makes progress when its pool
//! cannot provide a worker — at its worker cap, or unable to create threads
//! — and the same setup without a rescuer stalls.

mod common;
use common::Gate;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Two upper items fill a pool capped at two workers, each waiting for an
/// item of the lower queue. Returns whether both finished in time.
fn upper_waits_for_lower_at_cap(rescuer: bool, escape: &Gate) -> (bool, Vec<kwq::WarningKind>) {
    let kinds = Arc::new(Mutex::new(Vec::new()));
    let k = kinds.clone();
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(2)
        .max_workers(2)
        .detect_blocking(false)
        .watchdog(None)
        .thread_name(if rescuer { "kwq-resc" } else { "kwq-nores" })
        .on_warning(move |w| k.lock().unwrap().push(w.kind()))
        .build()
        .unwrap();
    let mut lower = kwq::Workqueue::builder("lower").runtime(&rt);
    if rescuer {
        lower = lower.rescuer();
    }
    let lower = Arc::new(lower.build().unwrap());
    let upper = kwq::Workqueue::builder("upper")
        .runtime(&rt)
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..2 {
        let (lower, tx, escape) = (lower.clone(), tx.clone(), escape.clone());
        upper.queue_fn(move || {
            let done = Gate::default();
            let d = done.clone();
            lower.queue_fn(move || d.open());
            // Unannotated, and every worker of the capped pool does this.
            while !done.wait(Duration::from_millis(10)) {
                if escape.wait(Duration::ZERO) {
                    break;
                }
            }
            tx.send(i).unwrap();
        });
    }
    drop(tx);
    let ok = (0..2).all(|_| {
        rx.recv_timeout(Duration::from_secs(if rescuer { 20 } else { 1 }))
            .is_ok()
    });
    escape.open();
    upper.flush();
    lower.flush();
    let kinds = kinds.lock().unwrap().clone();
    (ok, kinds)
}

#[test]
fn a_rescuer_runs_its_queue_when_the_pool_is_at_its_cap() {
    let (ok, kinds) = upper_waits_for_lower_at_cap(true, &Gate::default());
    assert!(ok, "the rescuer did not run the lower items");
    assert!(kinds.contains(&kwq::WarningKind::Rescued), "{kinds:?}");
}

#[test]
fn without_a_rescuer_the_capped_pool_stalls() {
    let (ok, kinds) = upper_waits_for_lower_at_cap(false, &Gate::default());
    assert!(
        !ok,
        "the control finished: the test no longer shows a stall"
    );
    assert!(!kinds.contains(&kwq::WarningKind::Rescued));
}

#[test]
fn a_rescuer_runs_its_queue_when_threads_cannot_be_created() {
    let fail = Arc::new(AtomicBool::new(false));
    let f = fail.clone();
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(1)
        .watchdog(None)
        .detect_blocking(false)
        .spawn_handler(move |t| {
            if f.load(SeqCst) {
                return Err(std::io::Error::other("injected: no threads"));
            }
            std::thread::Builder::new()
                .name(t.name().to_string())
                .spawn(move || t.run())
                .map(drop)
        })
        .build()
        .unwrap();
    let lower = Arc::new(
        kwq::Workqueue::builder("lower")
            .runtime(&rt)
            .rescuer()
            .build()
            .unwrap(),
    );
    let upper = kwq::Workqueue::builder("upper")
        .runtime(&rt)
        .build()
        .unwrap();
    assert_eq!(upper.spawn(|| 0).join().unwrap(), 0);
    fail.store(true, SeqCst);
    let l = lower.clone();
    // The upper item blocks *inside* kwq::blocking: the pool wants another
    // worker for the lower item, and cannot create one.
    let h = upper.spawn(move || {
        let done = Gate::default();
        let d = done.clone();
        l.queue_fn(move || d.open());
        kwq::blocking(|| done.wait(Duration::from_secs(20)))
    });
    assert!(h.join().unwrap(), "the lower item never ran");
    fail.store(false, SeqCst);
    lower.flush();
}

#[test]
fn a_rescuer_queue_is_an_ordinary_queue_otherwise() {
    let rt = kwq::RuntimeBuilder::new().concurrency(2).build().unwrap();
    let wq = kwq::Workqueue::builder("r")
        .runtime(&rt)
        .rescuer()
        .max_active(4)
        .build()
        .unwrap();
    let hits = Arc::new(Mutex::new(Vec::new()));
    for i in 0..500 {
        let h = hits.clone();
        wq.queue_fn(move || h.lock().unwrap().push(i));
    }
    let w = kwq::Work::new("persistent", || {});
    for _ in 0..100 {
        wq.queue(&w);
    }
    wq.flush();
    assert_eq!(hits.lock().unwrap().len(), 500);
    let ordered = kwq::Workqueue::builder("ro")
        .runtime(&rt)
        .rescuer()
        .ordered()
        .build()
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    for i in 0..200 {
        let s = seen.clone();
        ordered.queue_fn(move || s.lock().unwrap().push(i));
    }
    ordered.drain();
    assert_eq!(*seen.lock().unwrap(), (0..200).collect::<Vec<_>>());
    drop(wq);
    drop(ordered);
}

#[test]
fn a_rescuer_that_cannot_be_created_fails_the_build() {
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(1)
        .spawn_handler(|t| {
            if t.name().contains("rescuer") {
                return Err(std::io::Error::other("injected"));
            }
            std::thread::Builder::new().spawn(move || t.run()).map(drop)
        })
        .build()
        .unwrap();
    let e = kwq::Workqueue::builder("r")
        .runtime(&rt)
        .rescuer()
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), kwq::BuildErrorKind::Rescuer);
    assert!(e.to_string().contains("injected"), "{e}");
}
