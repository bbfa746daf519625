//! Stress test: a few work items requeued over a million times, from outside
//! and from inside themselves, on a runtime with 8 running workers. Each
//! item detects concurrent execution of itself with an in-flight counter.
//!
//! Checks: zero overlaps (WQ-3); every successful queue is exactly one
//! execution (WQ-1/WQ-2: no cancels here, so `executed == queued`); and
//! every item ran after its last successful queue.
//!
//! Volume: at least `KWQ_STRESS_REQUEUES` (default 1,000,000) *successful*
//! queueings, each one an execution, from outside and from inside the
//! items (many more queue calls coalesce).

#![allow(clippy::disallowed_types)]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

const ITEMS: usize = 4;
const OUTSIDE_THREADS: usize = 2;

fn requeues() -> u64 {
    std::env::var("KWQ_STRESS_REQUEUES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

#[derive(Default)]
struct Item {
    in_flight: AtomicUsize,
    overlaps: AtomicUsize,
    executed: AtomicU64,
    queued: AtomicU64,
    /// Tick taken before the newest successful queue call.
    last_queued_tick: AtomicU64,
    /// Tick taken at the start of the newest run.
    last_run_tick: AtomicU64,
}

#[test]
fn million_requeues_never_overlap() {
    let total = requeues();
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(8)
        .thread_name("kwq-stress")
        .build()
        .unwrap();
    // Two queues over two pools: instances of one item collide across
    // pools as well as within one.
    let wqs = Arc::new([
        kwq::Workqueue::builder("stress-a")
            .runtime(&rt)
            .max_active(8)
            .build()
            .unwrap(),
        kwq::Workqueue::builder("stress-b")
            .runtime(&rt)
            .unbound()
            .max_active(8)
            .build()
            .unwrap(),
    ]);
    let tick = Arc::new(AtomicU64::new(1));
    let calls = Arc::new(AtomicU64::new(0));
    let queued_ok = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let state: Arc<Vec<Item>> = Arc::new((0..ITEMS).map(|_| Item::default()).collect());
    let handles: Arc<Mutex<Vec<kwq::Work>>> = Arc::new(Mutex::new(Vec::new()));
    // Handles reachable from inside the items without a lock.
    let slots: Arc<Vec<std::sync::OnceLock<kwq::Work>>> =
        Arc::new((0..ITEMS).map(|_| std::sync::OnceLock::new()).collect());

    let queue = {
        let (wqs, tick, calls, state, ok) = (
            wqs.clone(),
            tick.clone(),
            calls.clone(),
            state.clone(),
            queued_ok.clone(),
        );
        move |k: usize, q: usize, w: &kwq::Work| -> bool {
            let t = tick.fetch_add(1, SeqCst);
            calls.fetch_add(1, SeqCst);
            let queued = wqs[q].queue(w);
            if queued {
                ok.fetch_add(1, SeqCst);
                state[k].queued.fetch_add(1, SeqCst);
                state[k].last_queued_tick.fetch_max(t, SeqCst);
            }
            queued
        }
    };

    for k in 0..ITEMS {
        let (st, tick, stop, sl, queue) = (
            state.clone(),
            tick.clone(),
            stop.clone(),
            slots.clone(),
            queue.clone(),
        );
        let mut runs = 0u64;
        let w = kwq::Work::new(format!("stress{k}"), move || {
            let me = &st[k];
            if me.in_flight.fetch_add(1, SeqCst) != 0 {
                me.overlaps.fetch_add(1, SeqCst);
            }
            me.last_run_tick
                .fetch_max(tick.fetch_add(1, SeqCst), SeqCst);
            me.executed.fetch_add(1, SeqCst);
            runs += 1;
            if !stop.load(SeqCst) {
                // Requeue itself (always) and a neighbour (sometimes) from
                // inside, alternating queues.
                if let Some(this) = sl[k].get() {
                    queue(k, (runs % 2) as usize, this);
                }
                if runs % 3 == 0 {
                    let n = (k + 1) % ITEMS;
                    if let Some(next) = sl[n].get() {
                        queue(n, ((runs / 3) % 2) as usize, next);
                    }
                }
            }
            me.in_flight.fetch_sub(1, SeqCst);
        });
        slots[k].set(w.clone()).ok().unwrap();
        handles.lock().unwrap().push(w);
    }

    let start = Arc::new(Barrier::new(OUTSIDE_THREADS));
    let t0 = Instant::now();
    let threads: Vec<_> = (0..OUTSIDE_THREADS)
        .map(|id| {
            let (slots, ok, queue, start) = (
                slots.clone(),
                queued_ok.clone(),
                queue.clone(),
                start.clone(),
            );
            std::thread::spawn(move || {
                start.wait();
                let mut n = id;
                while ok.load(SeqCst) < total {
                    let k = n % ITEMS;
                    if !queue(k, (n / ITEMS) % 2, slots[k].get().unwrap()) {
                        // Coalesced: leave the CPU to the workers.
                        std::thread::yield_now();
                    }
                    n += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    stop.store(true, SeqCst);
    // Quiesce: flush until every item is idle.
    let items = handles.lock().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(20);
    for w in &items {
        while w.is_pending() || w.is_running() {
            w.flush();
            assert!(Instant::now() < deadline, "{w:?} never idles");
        }
    }
    for q in wqs.iter() {
        q.flush();
        assert_eq!(q.in_flight(), 0);
    }
    let elapsed = t0.elapsed();
    let calls = calls.load(SeqCst);
    let mut executed_total = 0;
    for (k, it) in state.iter().enumerate() {
        let (q, e) = (it.queued.load(SeqCst), it.executed.load(SeqCst));
        executed_total += e;
        assert_eq!(
            it.overlaps.load(SeqCst),
            0,
            "item {k} ran concurrently with itself"
        );
        assert_eq!(q, e, "item {k}: {q} successful queues but {e} executions");
        assert!(q >= 1);
        assert!(
            it.last_run_tick.load(SeqCst) > it.last_queued_tick.load(SeqCst),
            "item {k} did not run after its last successful queue"
        );
    }
    let queued_ok = queued_ok.load(SeqCst);
    assert!(queued_ok >= total, "only {queued_ok} successful queues");
    eprintln!(
        "stress: {calls} queue calls, {queued_ok} successful, {executed_total} executions of {ITEMS} items in {elapsed:?}"
    );
    // Break the handle cycles (items hold their own handles).
    drop(items);
    handles.lock().unwrap().clear();
}

/// The pool's sleep/wake handshake (`pool/mod.rs`: a submitter's push and
/// `nr_running` check against a worker's `nr_running -= 1` and re-check of
/// the worklist) is only exercised where a worker is *going idle* when the
/// task arrives. Dense stress never gets there, so this test submits single
/// jobs separated by gaps of 0–150 µs — around the length of a worker's
/// spin before it parks — and fails, with a runtime dump, if any job is not
/// run within 10 s (a lost wake-up would strand it until the next submit).
#[test]
fn sparse_submissions_never_lose_a_wakeup() {
    let rounds: u64 = std::env::var("KWQ_STRESS_WAKEUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    for concurrency in [1, 2] {
        let rt = kwq::RuntimeBuilder::new()
            .concurrency(concurrency)
            .thread_name("kwq-wake")
            .build()
            .expect("runtime");
        let wq = kwq::Workqueue::builder("sparse")
            .runtime(&rt)
            .build()
            .expect("workqueue");
        let done = Arc::new(AtomicU64::new(0));
        // xorshift: a cheap, reproducible spread of gaps.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 1..=rounds {
            let d = done.clone();
            assert!(wq.queue_fn(move || {
                d.store(i, SeqCst);
            }));
            let deadline = Instant::now() + Duration::from_secs(10);
            while done.load(SeqCst) != i {
                assert!(
                    Instant::now() < deadline,
                    "job {i} of {rounds} (concurrency {concurrency}) not run within 10 s: \
                     lost wake-up?\n{}",
                    rt.dump()
                );
                std::hint::spin_loop();
            }
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let gap = Duration::from_micros(x % 150);
            let start = Instant::now();
            while start.elapsed() < gap {
                std::hint::spin_loop();
            }
        }
    }
}
