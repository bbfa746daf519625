//! Model-based test: random operation sequences run against the real
//! runtime and checked against a sequential reference of the PENDING bit.
//!
//! The reference is the bookkeeping identity the PENDING bit implies: every
//! successful queueing (`queue`, `queue_delayed`, `mod_delayed`, and requeues
//! from inside the item) starts exactly one instance, and every instance
//! either runs exactly once or is removed by exactly one successful cancel
//! (`cancel`, `cancel_sync`, or `mod_delayed` replacing a pending one).
//! So at quiescence, per item, `queued == executed + cancelled`. Along the
//! way the test checks the postconditions of each waiting operation
//! (WQ-9, WQ-10, WQ-12) against the same books, that an item never runs
//! concurrently with itself (WQ-3), and that its runs — including runs
//! queued from inside itself (WQ-2) — never overlap and follow each other.
//!
//! Books are updated under a per-item lock held across the queueing call,
//! so that the driver's snapshot and the runtime's state agree about which
//! successful queueing came last.

#![allow(clippy::disallowed_types)]

use proptest::prelude::*;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const ITEMS: usize = 3;
const QUEUES: usize = 3; // 0: normal max_active(2), 1: unbound, 2: ordered

#[derive(Debug, Clone)]
enum Op {
    Queue(usize, usize),
    QueueDelayed(usize, usize, u64),
    ModDelayed(usize, usize, u64),
    /// The item requeues itself from inside its next `n` runs.
    RequeueFromInside(usize, u32),
    Cancel(usize),
    CancelSync(usize),
    FlushWork(usize),
    FlushDelayed(usize),
    FlushWq(usize),
    Pause(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let i = 0..ITEMS;
    let q = 0..QUEUES;
    prop_oneof![
        6 => (i.clone(), q.clone()).prop_map(|(i, q)| Op::Queue(i, q)),
        2 => (i.clone(), q.clone(), 0..3u64).prop_map(|(i, q, d)| Op::QueueDelayed(i, q, d)),
        2 => (i.clone(), q.clone(), 0..3u64).prop_map(|(i, q, d)| Op::ModDelayed(i, q, d)),
        2 => (i.clone(), 1..4u32).prop_map(|(i, n)| Op::RequeueFromInside(i, n)),
        2 => i.clone().prop_map(Op::Cancel),
        1 => i.clone().prop_map(Op::CancelSync),
        2 => i.clone().prop_map(Op::FlushWork),
        1 => i.clone().prop_map(Op::FlushDelayed),
        2 => q.prop_map(Op::FlushWq),
        1 => (0..300u64).prop_map(Op::Pause),
    ]
}

/// What the driver knows about one item.
#[derive(Debug, Default, Clone, Copy)]
struct Books {
    queued: u64,
    cancelled: u64,
    /// Queue and kind (true: straight to the worklist) of the newest
    /// successful queueing, while that instance is not cancelled. Only the
    /// newest instance vouches for the older ones: it cannot start before
    /// they end. A cancelled one vouches for nothing — an older instance
    /// queued on another queue may still be running when a flush of this
    /// queue returns, and WQ-9 does not wait for it.
    last: Option<(usize, bool)>,
}

#[derive(Default)]
struct ItemState {
    books: Mutex<Books>,
    executed: AtomicU64,
    in_flight: AtomicUsize,
    overlaps: AtomicUsize,
    requeues_left: AtomicU64,
    /// (start, end) ticks of every run, in start order.
    runs: Mutex<Vec<(u64, u64)>>,
    me: Mutex<Option<kwq::DelayedWork>>,
}

struct World {
    _rt: kwq::Runtime,
    wqs: Arc<Vec<kwq::Workqueue>>,
    items: Vec<(kwq::DelayedWork, Arc<ItemState>)>,
}

fn world() -> World {
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(2)
        .thread_name("kwq-model")
        .watchdog(None)
        .build()
        .unwrap();
    let wqs = Arc::new(vec![
        kwq::Workqueue::builder("m-normal")
            .runtime(&rt)
            .max_active(2)
            .build()
            .unwrap(),
        kwq::Workqueue::builder("m-unbound")
            .runtime(&rt)
            .unbound()
            .build()
            .unwrap(),
        kwq::Workqueue::builder("m-ordered")
            .runtime(&rt)
            .ordered()
            .build()
            .unwrap(),
    ]);
    let tick = Arc::new(AtomicU64::new(0));
    let items = (0..ITEMS)
        .map(|i| {
            let st = Arc::new(ItemState::default());
            let (s, w, t) = (st.clone(), wqs.clone(), tick.clone());
            let d = kwq::DelayedWork::new(format!("item{i}"), move || {
                if s.in_flight.fetch_add(1, SeqCst) != 0 {
                    s.overlaps.fetch_add(1, SeqCst);
                }
                let start = t.fetch_add(1, SeqCst);
                s.executed.fetch_add(1, SeqCst);
                let budget = s
                    .requeues_left
                    .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1));
                if budget.is_ok() {
                    let me = s.me.lock().unwrap().clone();
                    if let Some(me) = me {
                        let q = i % QUEUES;
                        let mut b = s.books.lock().unwrap();
                        if w[q].queue(me.work()) {
                            b.queued += 1;
                            b.last = Some((q, true));
                        }
                    }
                }
                std::thread::yield_now();
                let end = t.fetch_add(1, SeqCst);
                s.runs.lock().unwrap().push((start, end));
                s.in_flight.fetch_sub(1, SeqCst);
            });
            *st.me.lock().unwrap() = Some(d.clone());
            (d, st)
        })
        .collect();
    World {
        _rt: rt,
        wqs,
        items,
    }
}

/// WQ-9 / WQ-10 postcondition: everything in `before` has run or been
/// cancelled.
fn check_done(st: &ItemState, before: Books, what: &str) -> Result<(), TestCaseError> {
    let executed = st.executed.load(SeqCst);
    prop_assert!(
        executed + before.cancelled >= before.queued,
        "{what}: returned with an instance outstanding: queued {} executed {} cancelled {}",
        before.queued,
        executed,
        before.cancelled
    );
    Ok(())
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let w = world();
    for op in ops {
        match *op {
            Op::Queue(i, q) => {
                let (d, st) = &w.items[i];
                let mut b = st.books.lock().unwrap();
                if w.wqs[q].queue(d.work()) {
                    b.queued += 1;
                    b.last = Some((q, true));
                }
            }
            Op::QueueDelayed(i, q, ms) => {
                let (d, st) = &w.items[i];
                let mut b = st.books.lock().unwrap();
                if w.wqs[q].queue_delayed(d, Duration::from_millis(ms)) {
                    b.queued += 1;
                    b.last = Some((q, ms == 0));
                }
            }
            Op::ModDelayed(i, q, ms) => {
                let (d, st) = &w.items[i];
                let mut b = st.books.lock().unwrap();
                // Always starts a new instance (no cancel_sync runs
                // concurrently); true means it replaced a pending one.
                if w.wqs[q].mod_delayed(d, Duration::from_millis(ms)) {
                    b.cancelled += 1;
                }
                b.queued += 1;
                b.last = Some((q, ms == 0));
            }
            Op::RequeueFromInside(i, n) => {
                w.items[i].1.requeues_left.store(u64::from(n), SeqCst);
            }
            Op::Cancel(i) => {
                let (d, st) = &w.items[i];
                let mut b = st.books.lock().unwrap();
                if d.cancel() {
                    b.cancelled += 1;
                    b.last = None;
                }
            }
            Op::CancelSync(i) => {
                let (d, st) = &w.items[i];
                // Not under the books lock: the item takes it to requeue.
                if d.cancel_sync() {
                    let mut b = st.books.lock().unwrap();
                    b.cancelled += 1;
                    b.last = None;
                }
                let wk = d.work();
                prop_assert!(
                    !wk.is_pending() && !wk.is_running(),
                    "after cancel_sync the item is pending or running"
                );
            }
            Op::FlushWork(i) | Op::FlushDelayed(i) => {
                let (d, st) = &w.items[i];
                let before = *st.books.lock().unwrap();
                if matches!(op, Op::FlushWork(_)) {
                    d.work().flush();
                } else {
                    d.flush();
                }
                check_done(st, before, &format!("{op:?}"))?;
            }
            Op::FlushWq(q) => {
                let before: Vec<Books> = w
                    .items
                    .iter()
                    .map(|(_, st)| *st.books.lock().unwrap())
                    .collect();
                w.wqs[q].flush();
                for ((d, st), b) in w.items.iter().zip(before) {
                    if b.last == Some((q, true)) {
                        check_done(
                            st,
                            b,
                            &format!("{op:?} of {:?} ({:?})\n{}", d.work(), b, w._rt.dump()),
                        )?;
                    }
                }
            }
            Op::Pause(us) => std::thread::sleep(Duration::from_micros(us)),
        }
    }
    // Quiesce: stop requeueing, then flush every item until it is idle.
    for (_, st) in &w.items {
        st.requeues_left.store(0, SeqCst);
    }
    for (d, _) in &w.items {
        let t0 = std::time::Instant::now();
        while d.is_pending() || d.work().is_running() {
            d.flush();
            prop_assert!(
                t0.elapsed() < Duration::from_secs(5),
                "item never idles: {:?}\n{}",
                d.work(),
                w._rt.dump()
            );
        }
    }
    for q in w.wqs.iter() {
        q.flush();
        prop_assert_eq!(q.in_flight(), 0);
    }
    for (d, st) in &w.items {
        let b = *st.books.lock().unwrap();
        let executed = st.executed.load(SeqCst);
        prop_assert_eq!(st.overlaps.load(SeqCst), 0, "{} ran concurrently", d.name());
        prop_assert_eq!(
            b.queued,
            executed + b.cancelled,
            "{}: queued != executed + cancelled",
            d.name()
        );
        let runs = st.runs.lock().unwrap();
        for pair in runs.windows(2) {
            prop_assert!(
                pair[1].0 > pair[0].1,
                "{}: a run started before the previous one ended: {:?}",
                d.name(),
                pair
            );
        }
        *st.me.lock().unwrap() = None; // break the handle cycle
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_operation_sequences_match_the_pending_model(
        ops in proptest::collection::vec(op(), 1..60)
    ) {
        run(&ops)?;
    }
}

/// A fixed long sequence exercising every operation, so a regression shows
/// up even with a lucky seed.
#[test]
fn fixed_sequence() {
    let mut ops = Vec::new();
    for k in 0..60 {
        let i = k % ITEMS;
        let q = (k / 3) % QUEUES;
        ops.push(match k % 10 {
            0 => Op::RequeueFromInside(i, 3),
            1 | 2 => Op::Queue(i, q),
            3 => Op::QueueDelayed(i, q, (k % 3) as u64),
            4 => Op::ModDelayed(i, q, (k % 2) as u64),
            5 => Op::Cancel(i),
            6 => Op::FlushWork(i),
            7 => Op::FlushWq(q),
            8 => Op::CancelSync(i),
            _ => Op::FlushDelayed(i),
        });
    }
    run(&ops).unwrap();
}
