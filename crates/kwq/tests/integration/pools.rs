//! Pools: max_active (WQ-7), blocking, unbound, cpu_intensive, idle reaping.

use crate::*;
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// WQ-7: never more than `max_active` items of a workqueue execute at once,
/// even when the pool has many more running workers, for jobs and
/// persistent items (including requeues while running).
#[test]
fn wq7_max_active_bounds_concurrent_execution() {
    let rt = runtime(8);
    for max in [1usize, 3] {
        let wq = Arc::new(wq_on(&rt, "wq7").max_active(max).build().unwrap());
        let infl = InFlight::new();
        for _ in 0..60 {
            let i = infl.clone();
            wq.queue_fn(move || {
                i.enter();
                std::thread::sleep(Duration::from_micros(500));
                i.exit();
            });
        }
        let items: Vec<_> = (0..6)
            .map(|k| {
                let i = infl.clone();
                kwq::Work::new(format!("w{k}"), move || {
                    i.enter();
                    std::thread::sleep(Duration::from_micros(300));
                    i.exit();
                })
            })
            .collect();
        for _ in 0..10 {
            for w in &items {
                wq.queue(w);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        wq.flush();
        assert!(
            infl.max() <= max,
            "{} items of a max_active({max}) queue ran at once",
            infl.max()
        );
        if max > 1 {
            assert!(infl.max() >= 2, "no parallelism at all: {}", infl.max());
        }
    }
}

/// Blocking: on a concurrency-1 runtime, an item that waits inside
/// `kwq::blocking` for another item of the same pool completes: the pool
/// starts another worker.
#[test]
fn blocking_lets_the_pool_run_another_item() {
    let rt = runtime(1);
    let wq = wq_on(&rt, "blk").build().unwrap();
    let wq2 = Arc::new(wq_on(&rt, "blk2").build().unwrap());
    for queue_first in [false, true] {
        let (tx, rx) = mpsc::channel::<()>();
        let (res_tx, res) = mpsc::channel();
        let (started_tx, started) = mpsc::channel();
        let q2 = wq2.clone();
        let tx2 = tx.clone();
        wq.queue_fn(move || {
            if queue_first {
                let t = tx2.clone();
                q2.queue_fn(move || t.send(()).unwrap());
            }
            started_tx.send(()).unwrap();
            let r = kwq::blocking(|| rx.recv_timeout(TIMEOUT));
            res_tx.send(r.is_ok()).unwrap();
        });
        started.recv_timeout(TIMEOUT).unwrap();
        if !queue_first {
            // Queue the item the blocked one waits for only once it blocks.
            std::thread::sleep(Duration::from_millis(10));
            wq2.queue_fn(move || tx.send(()).unwrap());
        }
        assert!(
            res.recv_timeout(TIMEOUT * 2).unwrap(),
            "the blocked item's wait timed out: the pool did not run the other item"
        );
        wq.flush();
    }
}

/// Waits inside kwq (flush of another item, cancel_sync) go through
/// `blocking`, so a chain of items waiting on each other completes on a
/// concurrency-1 runtime.
#[test]
fn kwq_waits_inside_items_do_not_starve_a_concurrency_1_pool() {
    let rt = runtime(1);
    let wq = Arc::new(wq_on(&rt, "chain").build().unwrap());
    let leaf = kwq::Work::new("leaf", || std::thread::sleep(Duration::from_millis(1)));
    let mut prev = leaf.clone();
    let mut items = vec![leaf];
    for k in 0..6 {
        let (q, p) = (wq.clone(), prev.clone());
        let w = kwq::Work::new(format!("link{k}"), move || {
            q.queue(&p);
            p.flush();
        });
        prev = w.clone();
        items.push(w);
    }
    assert!(wq.queue(&prev));
    let q = wq.clone();
    within(
        TIMEOUT,
        "chain of flushes on a concurrency-1 pool",
        move || q.flush(),
    );
}

/// unbound(): every pending item (within max_active) gets a worker, so N
/// items that each wait for all N complete.
#[test]
fn unbound_gives_every_item_a_worker() {
    let rt = runtime(1);
    let wq = wq_on(&rt, "unbound").unbound().build().unwrap();
    for n in [8usize, 24] {
        let barrier = TimedBarrier::new(n);
        let ok = Counter::new();
        for _ in 0..n {
            let (b, ok) = (barrier.clone(), ok.clone());
            wq.queue_fn(move || {
                if b.wait() {
                    ok.inc();
                }
            });
        }
        wq.flush();
        assert_eq!(ok.get(), n, "not every unbound item got a worker");
    }
}

/// cpu_intensive(): a worker running a CPU-intensive item does not count
/// against the concurrency target, so on a concurrency-1 runtime a normal
/// item still runs while it spins.
#[test]
fn cpu_intensive_item_does_not_hold_back_the_pool() {
    let rt = runtime(1);
    let hog = wq_on(&rt, "hog").cpu_intensive().build().unwrap();
    let normal = wq_on(&rt, "normal").build().unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let (res_tx, res) = mpsc::channel();
    let (started_tx, started) = mpsc::channel();
    hog.queue_fn(move || {
        started_tx.send(()).unwrap();
        // Busy-wait (no kwq::blocking): only the CPU-intensive flag frees
        // the pool.
        let t0 = std::time::Instant::now();
        let mut ok = false;
        while t0.elapsed() < TIMEOUT {
            if rx.try_recv().is_ok() {
                ok = true;
                break;
            }
            std::hint::spin_loop();
        }
        res_tx.send(ok).unwrap();
    });
    started.recv_timeout(TIMEOUT).unwrap();
    normal.queue_fn(move || tx.send(()).unwrap());
    assert!(
        res.recv_timeout(TIMEOUT * 2).unwrap(),
        "a normal item never ran beside the CPU-intensive one"
    );
    hog.flush();
}

/// cpu_intensive() + blocking: a CPU-intensive item that waits inside
/// `kwq::blocking` (or any kwq wait: flush, cancel_sync) must not corrupt
/// the pool's running count; an item queued meanwhile must still get a
/// worker.
#[test]
fn cpu_intensive_item_calling_blocking_does_not_stall_the_pool() {
    let rt = runtime(1);
    let hog = wq_on(&rt, "hog-blk").cpu_intensive().build().unwrap();
    let normal = wq_on(&rt, "normal-blk").build().unwrap();
    let (tx, rx) = mpsc::channel::<()>();
    let (res_tx, res) = mpsc::channel();
    let (inside_tx, inside) = mpsc::channel();
    hog.queue_fn(move || {
        let r = kwq::blocking(|| {
            inside_tx.send(()).unwrap();
            rx.recv_timeout(Duration::from_secs(2))
        });
        res_tx.send(r.is_ok()).unwrap();
    });
    inside.recv_timeout(TIMEOUT).unwrap();
    std::thread::sleep(Duration::from_millis(10));
    normal.queue_fn(move || tx.send(()).unwrap());
    assert!(
        res.recv_timeout(TIMEOUT).unwrap(),
        "the item queued while a CPU-intensive item blocked never ran"
    );
    hog.flush();
    normal.flush();
}

/// Idle workers beyond the reserve are reaped after the idle timeout.
#[test]
fn idle_workers_are_reaped() {
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(1)
        .thread_name("kq-reap")
        .watchdog(None)
        .idle_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let wq = wq_on(&rt, "reap").unbound().build().unwrap();
    let n = 12;
    let barrier = TimedBarrier::new(n);
    let ok = Counter::new();
    for _ in 0..n {
        let (b, ok) = (barrier.clone(), ok.clone());
        wq.queue_fn(move || {
            if b.wait() {
                ok.inc();
            }
        });
    }
    wq.flush();
    assert_eq!(ok.get(), n, "{n} unbound items did not all run at once");
    eventually(Duration::from_secs(3), "idle workers reaped", || {
        // Workers only ("kq-reap/unbound0:N"; the monitor is
        // "kq-reap/monitor").
        threads_named("kq-reap/unb") <= 2
    });
    // The pool still works after reaping.
    let (tx, rx) = mpsc::channel();
    wq.queue_fn(move || tx.send(()).unwrap());
    rx.recv_timeout(TIMEOUT).unwrap();
}
