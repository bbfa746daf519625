//! The lockup watchdog reports a stalled pool (WQ-19), and only that.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

#[test]
fn reports_a_pool_stalled_by_unannotated_blocking() {
    let (tx, rx) = mpsc::channel();
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(1)
        .watchdog(Some(Duration::from_millis(200)))
        // Without the pool monitor, which would unstick this stall.
        .detect_blocking(false)
        .on_lockup(move |r| {
            let _ = tx.send(r.clone());
        })
        .build()
        .unwrap();
    let wq = kwq::Workqueue::builder("stall")
        .runtime(&rt)
        .build()
        .unwrap();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    // Blocks without kwq::blocking: the pool still counts it as running, so
    // with a concurrency of 1 the next item waits on the worklist.
    wq.queue_fn(move || {
        started_tx.send(()).unwrap();
        release_rx.recv().unwrap();
    });
    started_rx.recv().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    wq.queue_fn(move || {
        r.fetch_add(1, SeqCst);
    });
    let report = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the watchdog did not report the stall");
    assert_eq!(report.pool(), "normal0");
    assert!(report.waiting() >= 1);
    assert!(report.stuck_for() >= Duration::from_millis(200));
    assert!(
        report.dump().contains("<job> on 'stall'"),
        "{}",
        report.dump()
    );
    assert!(report
        .to_string()
        .starts_with("BUG: kwq lockup - pool normal0"));
    assert_eq!(ran.load(SeqCst), 0);
    release_tx.send(()).unwrap();
    wq.flush();
    assert_eq!(ran.load(SeqCst), 1);
    // Reported once per stall, not on every tick.
    assert!(rx.recv_timeout(Duration::from_millis(300)).is_err());
}

#[test]
fn a_busy_pool_that_makes_progress_is_not_reported() {
    let reports = Arc::new(AtomicUsize::new(0));
    let r = reports.clone();
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(1)
        .watchdog(Some(Duration::from_millis(100)))
        .on_lockup(move |_| {
            r.fetch_add(1, SeqCst);
        })
        .build()
        .unwrap();
    let wq = kwq::Workqueue::builder("busy")
        .runtime(&rt)
        .build()
        .unwrap();
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(500) {
        for _ in 0..50 {
            wq.queue_fn(|| std::thread::sleep(Duration::from_micros(200)));
        }
        wq.flush();
    }
    assert_eq!(reports.load(SeqCst), 0);
}
