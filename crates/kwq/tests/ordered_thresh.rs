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
