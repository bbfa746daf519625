//! Randomized "hostile user" stress (issue 17).
//!
//! A seeded random mix of legal but hostile operations — panicking
//! closures, closures and panic payloads whose destructors panic, handles
//! dropped inside items, workqueues torn down by items (from their own
//! item, from another queue's item, by the drop of an item's closure),
//! delayed items cancelled or re-armed and dropped, cancels, flushes and
//! drains — on a concurrency-1 and a concurrency-2 runtime. Afterwards
//! every hostile value must have been dropped exactly once (nothing
//! leaked), every item queued on a torn-down queue must have run, the
//! pools must still run a fresh job, and the runtime's worker count must
//! return to its idle baseline.
//!
//! `KWQ_HOSTILE_ITERS` (default 10,000 per runtime) and `KWQ_HOSTILE_SEED`
//! (default: from the clock) control a run; every failure message names
//! the seed, and `KWQ_HOSTILE_SEED=<seed>` replays it. A watchdog thread
//! turns a hang into a failure: after 60 s without progress it prints the
//! seed, the operation and `Runtime::dump`, and exits the process.

mod common;

use kwq::{DelayedWork, Runtime, RuntimeBuilder, WarningKind, Work, Workqueue};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counts hostile values created and dropped.
#[derive(Default)]
struct Ledger {
    bombs: AtomicUsize,
    defused: AtomicUsize,
    side_queued: AtomicUsize,
    side_ran: AtomicUsize,
}

/// Panics when dropped (after counting the drop).
struct Bomb(Arc<Ledger>);
impl Bomb {
    fn new(l: &Arc<Ledger>) -> Bomb {
        l.bombs.fetch_add(1, SeqCst);
        Bomb(l.clone())
    }
}
impl Drop for Bomb {
    fn drop(&mut self) {
        self.0.defused.fetch_add(1, SeqCst);
        if !std::thread::panicking() {
            panic!("hostile: bomb destructor");
        }
    }
}

/// splitmix64: small, seedable, good enough to pick operations.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    PanicJob,
    BombJob,
    BombPayload,
    PanicWork,
    BombWorkDropped,
    BombCancelledDropped,
    HandleDroppedInItem,
    TeardownByDestructor,
    TeardownInOtherItem,
    TeardownFromOwnItem,
    Cancel,
    Flush,
    DelayedBomb,
}

const OPS: [Op; 13] = [
    Op::PanicJob,
    Op::BombJob,
    Op::BombPayload,
    Op::PanicWork,
    Op::BombWorkDropped,
    Op::BombCancelledDropped,
    Op::HandleDroppedInItem,
    Op::TeardownByDestructor,
    Op::TeardownInOtherItem,
    Op::TeardownFromOwnItem,
    Op::Cancel,
    Op::Flush,
    Op::DelayedBomb,
];

/// What a run reports through the runtime's hooks.
#[derive(Default)]
struct Hooked {
    panics: AtomicUsize,
    drop_panics: AtomicUsize,
}

fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|d| {
            d.filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|c| c.starts_with(prefix))
                .count()
        })
        .unwrap_or(0)
}

/// Progress the watchdog checks: iteration number and current operation.
struct Progress {
    step: AtomicU64,
    op: Mutex<String>,
    stop: AtomicBool,
}

fn watchdog(seed: u64, rt: Runtime, p: Arc<Progress>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut last = (p.step.load(SeqCst), Instant::now());
        while !p.stop.load(SeqCst) {
            std::thread::sleep(Duration::from_millis(50));
            let now = p.step.load(SeqCst);
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(60) {
                eprintln!(
                    "hostile stress: no progress for 60 s at step {now} ({}); replay with \
                     KWQ_HOSTILE_SEED={seed}\n{}",
                    p.op.lock().unwrap(),
                    rt.dump()
                );
                std::process::exit(3);
            }
        }
    })
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

/// One seeded run on a runtime of `concurrency` workers per pool.
fn run(concurrency: usize, seed: u64, iters: usize) {
    let prefix = format!("hs{concurrency}");
    let hooked = Arc::new(Hooked::default());
    let (h1, h2) = (hooked.clone(), hooked.clone());
    let rt = RuntimeBuilder::new()
        .concurrency(concurrency)
        .watchdog(None)
        .idle_timeout(Duration::from_millis(100))
        .thread_name(prefix.clone())
        .on_panic(move |_| {
            h1.panics.fetch_add(1, SeqCst);
        })
        .on_warning(move |w| {
            if w.kind() == WarningKind::DropPanicked {
                h2.drop_panics.fetch_add(1, SeqCst);
            }
        })
        .build()
        .unwrap();
    let mk = |name: &str| Workqueue::builder(name).runtime(&rt);
    let queues: Vec<Arc<Workqueue>> = vec![
        Arc::new(mk("plain").build().unwrap()),
        Arc::new(mk("ordered").ordered().build().unwrap()),
        Arc::new(mk("two").max_active(2).build().unwrap()),
    ];
    // Baseline: every queue has run a job, and the pool has gone idle.
    for q in &queues {
        let (tx, rx) = std::sync::mpsc::channel();
        q.queue_fn(move || tx.send(()).unwrap());
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
    }
    std::thread::sleep(Duration::from_millis(500));
    let baseline = threads_named(&prefix);

    let progress = Arc::new(Progress {
        step: AtomicU64::new(0),
        op: Mutex::new(String::new()),
        stop: AtomicBool::new(false),
    });
    let dog = watchdog(seed, rt.clone(), progress.clone());
    let ledger = Arc::new(Ledger::default());
    let mut rng = Rng(seed ^ concurrency as u64);
    let mut live: Vec<Work> = Vec::new();
    let mut counts = [0usize; OPS.len()];
    let mut expected_panics = 0usize;

    for i in 0..iters {
        let k = rng.below(OPS.len());
        counts[k] += 1;
        let op = OPS[k];
        let q = queues[rng.below(queues.len())].clone();
        *progress.op.lock().unwrap() = format!("iteration {i}: {op:?} on '{}'", q.name());
        progress.step.fetch_add(1, SeqCst);
        match op {
            Op::PanicJob => {
                expected_panics += 1;
                q.queue_fn(|| panic!("hostile: job"));
            }
            Op::BombJob => {
                // The capture's destructor panics at the end of the job.
                expected_panics += 1;
                let b = Bomb::new(&ledger);
                q.queue_fn(move || drop(b));
            }
            Op::BombPayload => {
                expected_panics += 1;
                let l = ledger.clone();
                q.queue_fn(move || std::panic::panic_any(Bomb::new(&l)));
            }
            Op::PanicWork => {
                let w = Work::new("panicky", || panic!("hostile: work"));
                q.queue(&w);
                live.push(w);
                if live.len() > 32 {
                    let j = rng.below(live.len());
                    live.swap_remove(j);
                }
            }
            Op::BombWorkDropped | Op::BombCancelledDropped => {
                let b = Bomb::new(&ledger);
                let w = Work::new("bomb", move || {
                    let _ = &b;
                });
                q.queue(&w);
                if op == Op::BombCancelledDropped {
                    w.cancel();
                }
                // If the item already ran (or was cancelled and retired),
                // this handle is the last one and the bomb goes off here,
                // on the test's own thread: user code on a user thread.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(w)));
            }
            Op::HandleDroppedInItem => {
                let b = Bomb::new(&ledger);
                let y = Work::new("victim", move || {
                    let _ = &b;
                });
                queues[rng.below(queues.len())].queue(&y);
                let slot = Mutex::new(Some(y));
                let x = Work::new("dropper", move || drop(slot.lock().unwrap().take()));
                q.queue(&x);
            }
            Op::TeardownByDestructor | Op::TeardownInOtherItem | Op::TeardownFromOwnItem => {
                let side = if rng.below(2) == 0 {
                    mk("side").build().unwrap()
                } else {
                    mk("side-ordered").ordered().build().unwrap()
                };
                let l = ledger.clone();
                l.side_queued.fetch_add(1, SeqCst);
                let side_job = move || {
                    l.side_ran.fetch_add(1, SeqCst);
                };
                match op {
                    Op::TeardownByDestructor => {
                        // Queued first so the side job is likely still in
                        // flight when the worker drops the closure.
                        let side = Arc::new(side);
                        let keep = side.clone();
                        let w = Work::new("owner", move || {
                            let _ = &keep;
                        });
                        q.queue(&w);
                        side.queue_fn(side_job);
                    }
                    Op::TeardownInOtherItem => {
                        side.queue_fn(side_job);
                        q.queue_fn(move || drop(side));
                    }
                    _ => {
                        let slot = Arc::new(Mutex::new(None::<Workqueue>));
                        let s = slot.clone();
                        side.queue_fn(move || {
                            side_job();
                            let own = s.lock().unwrap().take();
                            drop(own);
                        });
                        *slot.lock().unwrap() = Some(side);
                    }
                }
            }
            Op::Cancel => {
                if !live.is_empty() {
                    let w = &live[rng.below(live.len())];
                    if rng.below(4) == 0 {
                        w.cancel_sync();
                    } else {
                        w.cancel();
                    }
                }
            }
            Op::Flush => match rng.below(4) {
                0 => q.drain(),
                1 if !live.is_empty() => {
                    live[rng.below(live.len())].flush();
                }
                _ => q.flush(),
            },
            Op::DelayedBomb => {
                let b = Bomb::new(&ledger);
                let d = DelayedWork::new("delayed-bomb", move || {
                    let _ = &b;
                });
                let ms = rng.below(3) as u64;
                q.queue_delayed(&d, Duration::from_millis(ms));
                match rng.below(3) {
                    0 => {
                        d.cancel();
                    }
                    1 => {
                        q.mod_delayed(&d, Duration::from_millis(ms + 1));
                    }
                    _ => {}
                }
                // The last handle may be this one (cancelled, or already
                // fired): then the bomb goes off on the test's own thread.
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(d)));
            }
        }
    }

    let fail = |what: &str| -> ! {
        panic!("{what} (concurrency {concurrency}; replay with KWQ_HOSTILE_SEED={seed})")
    };
    *progress.op.lock().unwrap() = "final flushes".to_string();
    progress.step.fetch_add(1, SeqCst);
    drop(live);
    for q in &queues {
        q.flush();
    }
    let settled = |cond: &dyn Fn() -> bool| common::eventually(20, cond);
    if !settled(&|| ledger.defused.load(SeqCst) == ledger.bombs.load(SeqCst)) {
        fail(&format!(
            "{} of {} hostile values were never dropped",
            ledger.bombs.load(SeqCst) - ledger.defused.load(SeqCst),
            ledger.bombs.load(SeqCst)
        ));
    }
    if !settled(&|| ledger.side_ran.load(SeqCst) == ledger.side_queued.load(SeqCst)) {
        fail(&format!(
            "{} of {} items of torn-down queues never ran",
            ledger.side_queued.load(SeqCst) - ledger.side_ran.load(SeqCst),
            ledger.side_queued.load(SeqCst)
        ));
    }
    if hooked.panics.load(SeqCst) < expected_panics {
        fail(&format!(
            "{} panics reported, at least {expected_panics} expected",
            hooked.panics.load(SeqCst)
        ));
    }
    if hooked.drop_panics.load(SeqCst) == 0 {
        fail("no panicking destructor was reported");
    }
    for (op, n) in OPS.iter().zip(counts) {
        if n < 500 * iters / 10_000 {
            fail(&format!("{op:?} ran only {n} times"));
        }
    }
    // The pools still serve.
    for q in &queues {
        let (tx, rx) = std::sync::mpsc::channel();
        q.queue_fn(move || tx.send(()).unwrap());
        if rx.recv_timeout(Duration::from_secs(10)).is_err() {
            fail(&format!("queue '{}' no longer runs a fresh job", q.name()));
        }
    }
    progress.stop.store(true, SeqCst);
    dog.join().unwrap();
    drop(queues);
    if std::path::Path::new("/proc/self/task").exists() {
        if !settled(&|| threads_named(&prefix) <= baseline) {
            fail(&format!(
                "{} workers left, baseline {baseline}",
                threads_named(&prefix)
            ));
        }
    } else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must provide /proc/self/task"
        );
    }
    println!(
        "concurrency {concurrency}: {iters} operations, {} hostile values, {} panics and {} \
         panicking destructors reported; per op {:?}",
        ledger.bombs.load(SeqCst),
        hooked.panics.load(SeqCst),
        hooked.drop_panics.load(SeqCst),
        OPS.iter().zip(counts).collect::<Vec<_>>()
    );
}

#[test]
fn hostile_user_stress() {
    // Hostile panics are expected by the thousand: keep them quiet, report
    // every other panic as usual.
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| info.payload().downcast_ref::<String>().map(|s| s.as_str()));
        let hostile = msg.is_some_and(|m| m.starts_with("hostile"))
            || info.payload().downcast_ref::<Bomb>().is_some();
        if !hostile {
            default(info);
        }
    }));
    let seed = env_u64("KWQ_HOSTILE_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    });
    let iters = env_u64("KWQ_HOSTILE_ITERS").unwrap_or(10_000) as usize;
    println!("hostile stress: seed {seed} (replay with KWQ_HOSTILE_SEED={seed})");
    let start = Instant::now();
    run(1, seed, iters);
    run(2, seed, iters);
    println!("hostile stress: {:?}", start.elapsed());
}
