//! Thresholds and a blocked runner. With `thresh`, `current_active` may
//! sit below `max_active`; when every runner among the first
//! `current_active` is stalled (here: the drain owner, waiting inside
//! `kwq::blocking` for a later item's `func`), the crew wakes one more
//! runner and raises `current_active` to include it ("Lending" in
//! `ordered/idle.rs`). A fixed `max_active` has no runner to lend.
//!
//! Before session 7 the threshold grew only when a runner claimed a batch,
//! so with `current_active` 1 and that runner blocked nothing grew it: a
//! producer that found the ring full ran stages beside the busy runner (and
//! so claimed, and so grew it) until `max_active` bounded helpers too
//! (session 6), and then the full-ring case hung as well. The three
//! `stalled_head_reaches_*` tests fail (wait the full 5 s) without lending.

mod common;
use common::{eventually, rt, within, Latch};
use kwq::ordered::OrderedWorkqueue;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

struct Case {
    max_active: usize,
    thresh: Option<u64>,
    in_flight: usize,
    caller_runs: bool,
    later: usize,
    rest: usize,
    /// How long item 0 waits for item `later` before it gives up.
    patience: u64,
}

impl Case {
    fn new(
        max_active: usize,
        thresh: Option<u64>,
        in_flight: usize,
        later: usize,
        rest: usize,
    ) -> Case {
        Case {
            max_active,
            thresh,
            in_flight,
            caller_runs: false,
            later,
            rest,
            patience: 5,
        }
    }

    /// Queues item 0, waits until it is blocked (so the only active runner
    /// is), then queues `rest` more. Returns whether item 0 saw item
    /// `later` run; checks that every ordered stage ran.
    fn run(&self) -> bool {
        let rt = rt(2);
        let mut b = OrderedWorkqueue::builder("thresh-blocked-head")
            .runtime(&rt)
            .max_active(self.max_active)
            .max_in_flight(self.in_flight)
            .caller_runs(self.caller_runs);
        if let Some(t) = self.thresh {
            b = b.thresh(t);
        }
        let q = b.build().unwrap();
        let (blocked, later_ran) = (Latch::default(), Latch::default());
        let saw = Arc::new(AtomicUsize::new(0));
        let sum = Arc::new(AtomicUsize::new(0));
        let (later, patience) = (self.later, self.patience);
        for i in 0..=self.rest {
            let (on_head, seen_ran, saw) = (blocked.clone(), later_ran.clone(), saw.clone());
            let (later_ran, sum) = (later_ran.clone(), sum.clone());
            q.queue(
                move || {
                    if i == later {
                        later_ran.set();
                    }
                    i
                },
                move |v| {
                    if v == 0 {
                        on_head.set();
                        // Inside kwq::blocking: the drain owner is stalled.
                        if seen_ran.wait(patience) {
                            saw.store(1, SeqCst);
                        }
                    }
                    sum.fetch_add(v, SeqCst);
                },
            );
            if i == 0 {
                // Item 0 is blocked before anything else is queued.
                assert!(eventually(5, || blocked.is_set()));
            }
        }
        q.flush().unwrap();
        assert_eq!(
            sum.load(SeqCst),
            (0..=self.rest).sum::<usize>(),
            "ordered stages lost"
        );
        saw.load(SeqCst) == 1
    }
}

/// The review's case: the ring fills behind the blocked head.
#[test]
fn stalled_head_reaches_a_later_item_with_a_full_ring() {
    within(60, "thresh, full ring", || {
        assert!(
            Case::new(2, Some(4), 16, 12, 40).run(),
            "waited 5 s for item 12"
        );
    });
}

/// The very next item, far below the threshold: the stalled slot is lent
/// anyway (a backlog rule alone would leave it next to an idle runner).
#[test]
fn stalled_head_reaches_the_next_item_below_the_threshold() {
    within(60, "thresh, one item behind", || {
        assert!(
            Case::new(2, Some(4), 64, 1, 1).run(),
            "waited 5 s for item 1"
        );
    });
}

/// The default threshold (Btrfs's 32), a longer backlog, four runners.
#[test]
fn stalled_head_reaches_a_later_item_with_the_default_threshold() {
    within(60, "thresh(0), long backlog", || {
        assert!(
            Case::new(4, Some(0), 64, 50, 60).run(),
            "waited 5 s for item 50"
        );
    });
}

/// `max_active(1)` has no slot to lend: the head waits (documented; it
/// gives up after 1 s and the queue goes on).
#[test]
fn stalled_head_under_max_active_1_waits() {
    within(60, "max_active(1)", || {
        let mut c = Case::new(1, None, 16, 1, 1);
        c.patience = 1;
        assert!(
            !c.run(),
            "max_active(1) ran a second func beside a blocked one"
        );
    });
}

/// `caller_runs(true)` is the documented way out under `max_active(1)`:
/// the full producer runs the later func itself.
#[test]
fn caller_runs_reaches_a_later_func_under_max_active_1() {
    within(60, "max_active(1) with caller_runs", || {
        let mut c = Case::new(1, None, 16, 5, 20);
        c.caller_runs = true;
        assert!(c.run(), "waited 5 s for item 5");
    });
}

/// Stress (from the session-7 review): thresholded queues, three
/// producers, `func`s that block briefly inside `kwq::blocking`, and every
/// fifth item's ordered stage — a stalled drain owner — waiting for the
/// `func` of its producer's next item whenever that item is already queued
/// (if it is not, waiting could need room the drain holds: not counted).
/// With `max_active >= 2` lending must always reach that item. Before
/// `Crew::wake` raised past every non-idle runner and queued under the
/// threshold lock, a runner above `current_active` that stalled woke a
/// runner the workqueue then parked behind it (dump: `idle=0x0
/// stalled=0x2 active=1/2`), and `Idle::retire` did not lend.
#[test]
fn stress_lending_with_blocking_stages_and_producers() {
    use std::sync::atomic::AtomicBool;
    use std::time::{Duration, Instant};
    within(300, "lending stress", || {
        for (max_active, thresh, cap) in [(2, 1, 4), (2, 2, 8), (3, 1, 6), (4, 2, 16), (2, 4, 32)] {
            const PRODUCERS: usize = 3;
            const PER: usize = 400;
            let rt = rt(2);
            let q = Arc::new(
                OrderedWorkqueue::builder("lending-stress")
                    .runtime(&rt)
                    .max_active(max_active)
                    .thresh(thresh)
                    .max_in_flight(cap)
                    .build()
                    .unwrap(),
            );
            let flags = |n| Arc::new((0..n).map(|_| AtomicBool::new(false)).collect::<Vec<_>>());
            let (ran, queued) = (flags(PRODUCERS * PER), flags(PRODUCERS * PER));
            let (timeouts, done) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
            let producers: Vec<_> = (0..PRODUCERS)
                .map(|p| {
                    let (q, ran, queued) = (q.clone(), ran.clone(), queued.clone());
                    let (timeouts, done) = (timeouts.clone(), done.clone());
                    std::thread::spawn(move || {
                        for i in 0..PER {
                            let id = p * PER + i;
                            let (ran_f, ran_o, queued_o) =
                                (ran.clone(), ran.clone(), queued.clone());
                            let (timeouts, done) = (timeouts.clone(), done.clone());
                            q.queue(
                                move || {
                                    if id % 3 == 0 {
                                        kwq::blocking(|| {
                                            std::thread::sleep(Duration::from_micros(20))
                                        });
                                    }
                                    ran_f[id].store(true, SeqCst);
                                    id
                                },
                                move |id| {
                                    if id % 5 == 0 && i + 1 < PER && queued_o[id + 1].load(SeqCst) {
                                        let t0 = Instant::now();
                                        let ok = kwq::blocking(|| {
                                            while !ran_o[id + 1].load(SeqCst) {
                                                if t0.elapsed() > Duration::from_secs(2) {
                                                    return false;
                                                }
                                                std::thread::sleep(Duration::from_micros(50));
                                            }
                                            true
                                        });
                                        if !ok {
                                            timeouts.fetch_add(1, SeqCst);
                                        }
                                    }
                                    done.fetch_add(1, SeqCst);
                                },
                            );
                            queued[id].store(true, SeqCst);
                            if i % 97 == 0 {
                                // Let the backlog drain and the threshold fall.
                                std::thread::sleep(Duration::from_micros(200));
                            }
                        }
                    })
                })
                .collect();
            for p in producers {
                p.join().unwrap();
            }
            q.flush().unwrap();
            assert_eq!(done.load(SeqCst), PRODUCERS * PER);
            assert_eq!(q.current_active(), q.workqueue_max_active(), "BT-5 at rest");
            assert_eq!(
                timeouts.load(SeqCst),
                0,
                "max_active({max_active}) thresh({thresh}) cap {cap}: a stalled drain owner \
                 waited 2 s for a queued later item; {}",
                q.dump()
            );
        }
    });
}
