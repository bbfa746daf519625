//! `max_active` bounds the parallel stages of an `OrderedWorkqueue` that
//! run at once, helpers included: a producer that finds the queue full
//! runs stages only in a free runner slot. The iterator front end's
//! consumer, and producers of a queue built with `caller_runs(true)`, are
//! the documented extra threads (one each).
//! (Before this rule a helping thread ran stages *beside* `max_active`
//! runners: `max_active(1)` ran two `func`s at once.)

mod common;
use common::{rt, spin_for, within};
use kwq::ordered::{OrderedMapBuilder, OrderedWorkqueue};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

/// Counts stages running at once and keeps the peak.
#[derive(Clone, Default)]
struct Gauge {
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Gauge {
    fn stage(&self, us: u64) {
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        spin_for(us);
        self.running.fetch_sub(1, SeqCst);
    }
    fn peak(&self) -> usize {
        self.peak.load(SeqCst)
    }
}

fn queue_peak(max_active: usize, concurrency: usize, in_flight: usize) -> usize {
    queue_peak_with(max_active, concurrency, in_flight, false)
}

fn queue_peak_with(
    max_active: usize,
    concurrency: usize,
    in_flight: usize,
    caller_runs: bool,
) -> usize {
    let rt = rt(concurrency);
    let q = OrderedWorkqueue::builder("max-active-bound")
        .runtime(&rt)
        .max_active(max_active)
        .max_in_flight(in_flight)
        .caller_runs(caller_runs)
        .build()
        .unwrap();
    let g = Gauge::default();
    let sum = Arc::new(AtomicUsize::new(0));
    for i in 0..400usize {
        let (g, s) = (g.clone(), sum.clone());
        // A small ring: the producer is full almost every time and would
        // help if it could.
        q.queue(
            move || {
                g.stage(100);
                i
            },
            move |v| {
                s.fetch_add(v, SeqCst);
            },
        );
    }
    q.flush().unwrap();
    assert_eq!(sum.load(SeqCst), (0..400).sum::<usize>());
    g.peak()
}

#[test]
fn full_producer_never_exceeds_max_active() {
    within(60, "max_active bound with a full producer", || {
        assert_eq!(
            queue_peak(1, 2, 4),
            1,
            "max_active(1) ran two funcs at once"
        );
        let p = queue_peak(2, 3, 4);
        assert!(p <= 2, "max_active(2) ran {p} funcs at once");
    });
}

/// The same bound holds when the producer *can* help: with one runner
/// slot free (a runtime of concurrency 1 and `max_active(2)`), the full
/// producer runs stages in that slot, and still never a third.
#[test]
fn helping_producer_takes_a_free_slot() {
    within(60, "helping producer in a free slot", || {
        let p = queue_peak(2, 1, 4);
        assert!(p <= 2, "max_active(2) ran {p} funcs at once");
    });
}

/// `caller_runs(true)` is the documented opt-out: the one producer may run
/// a stage beside the `max_active` runners, never more than that, and
/// every item still runs once, in order.
#[test]
fn caller_runs_adds_at_most_the_producer() {
    within(60, "caller_runs bound", || {
        let p = queue_peak_with(1, 2, 4, true);
        assert!(p <= 2, "max_active(1) + caller_runs ran {p} funcs at once");
    });
}

/// The iterator front end's consumer maps batches as the calling thread,
/// beside `max_active` runners (its `f` is `Fn + Sync`): never more than
/// one thread beyond `max_active`.
#[test]
fn ordered_map_runs_at_most_max_active_plus_the_caller() {
    within(60, "max_active bound of the iterator front end", || {
        for max_active in [1, 2] {
            let rt = rt(3);
            let g = Gauge::default();
            let g2 = g.clone();
            let out: Vec<u64> = OrderedMapBuilder::new()
                .runtime(&rt)
                .max_active(max_active)
                .max_in_flight(16)
                .map(0..300u64, move |i| {
                    g2.stage(100);
                    i * 3
                })
                .unwrap()
                .collect();
            assert_eq!(out, (0..300u64).map(|i| i * 3).collect::<Vec<_>>());
            assert!(
                g.peak() <= max_active + 1,
                "max_active({max_active}) ran {} funcs at once",
                g.peak()
            );
        }
    });
}
