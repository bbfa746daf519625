//! Edges of the session-5 ordered changes, from a second independent
//! review: a thread-local destructor using a queue, a retiring runner that
//! a stalled drain owner needs, a NUL in a queue name at a finisher drop,
//! balanced stall counters, finisher drops, threshold validation. (The
//! documented `current_active` = 1 limitation is stated in the `thresh`
//! docs, not tested as a failure.)

use kwq::ordered::{BoxedOrderedWorkqueue, OrderedWorkqueue};
use kwq::Workqueue;
mod common;

use common::{eventually, rt, within, Latch};
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Q = BoxedOrderedWorkqueue<()>;

fn sleep_until(l: &Latch) {
    // Not kwq::blocking: the pool keeps counting the worker as running.
    while !l.is_set() {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits (plain sleep) up to `secs` for `l`; true if it was set.
fn sleep_wait(l: &Latch, secs: u64) -> bool {
    eventually(secs, || l.is_set())
}

// ---------------------------------------------------------------------
// Finding 1: FRAMES has a destructor (RefCell<Vec<Frame>>), IN_STAGE (a
// const Cell<u64>) had none. `crew::inside` uses `FRAMES.with`, so an
// ordered queue used from a thread-local destructor that runs after FRAMES
// was destroyed panics ("cannot access a Thread Local Storage value during
// or after destruction"); uncaught, that is an abort.
// ---------------------------------------------------------------------

static TLS_RESULT: AtomicUsize = AtomicUsize::new(0); // 0 not run, 1 ok, 2 panicked

struct FlushOnExit(Option<Arc<Q>>);
impl Drop for FlushOnExit {
    fn drop(&mut self) {
        if let Some(q) = self.0.take() {
            let r = catch_unwind(AssertUnwindSafe(|| q.flush()));
            TLS_RESULT.store(if matches!(r, Ok(Ok(()))) { 1 } else { 2 }, SeqCst);
        }
    }
}

thread_local! {
    static FLUSH_ON_EXIT: RefCell<FlushOnExit> = const { RefCell::new(FlushOnExit(None)) };
}

#[test]
fn flush_of_an_idle_queue_from_a_thread_local_destructor() {
    let rt = rt(2);
    let q: Arc<Q> = Arc::new(
        OrderedWorkqueue::builder("s5b-tls")
            .runtime(&rt)
            .max_active(1)
            .max_in_flight(4)
            .build()
            .unwrap(),
    );
    let q2 = q.clone();
    std::thread::spawn(move || {
        // Registered first, so destroyed last.
        FLUSH_ON_EXIT.with(|g| g.borrow_mut().0 = Some(q2.clone()));
        // Any ordered-queue call that consults the stage frames registers
        // FRAMES' destructor after ours (flush -> crew::inside).
        q2.flush().unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(
        TLS_RESULT.load(SeqCst),
        1,
        "OrderedWorkqueue::flush() of an idle queue panicked in a thread-local destructor \
         (FRAMES already destroyed; f44c24a's IN_STAGE had no destructor)"
    );
}

// ---------------------------------------------------------------------
// Finding 2: a runner above a lowered `current_active` retires even when
// the only runner below the limit is stalled (drain owner blocked), so an
// item queued meanwhile is stranded next to it. Before the change runner 1
// kept claiming until the ring was empty.
// ---------------------------------------------------------------------

#[test]
fn lowered_limit_retires_the_runner_a_blocked_drain_owner_needs() {
    within(30, "retire scenario", || {
        let rt = rt(2);
        let q: Q = OrderedWorkqueue::builder("s5b-retire")
            .runtime(&rt)
            .max_active(2)
            .thresh(1)
            .max_in_flight(8)
            .build()
            .unwrap();
        // Occupy both workers of the pool, so that runner 0 starts only after
        // items A and B are both queued (its claim of A then sees B pending
        // and grows current_active to 2).
        let blockers = Workqueue::builder("s5b-blockers")
            .runtime(&rt)
            .build()
            .unwrap();
        let (go, started) = (Latch::default(), Arc::new(AtomicUsize::new(0)));
        for _ in 0..2 {
            let (go, started) = (go.clone(), started.clone());
            blockers.queue_fn(move || {
                started.fetch_add(1, SeqCst);
                while !go.is_set() {
                    std::hint::spin_loop();
                }
            });
        }
        assert!(eventually(5, || started.load(SeqCst) == 2));

        let (gate_a, gate_b) = (Latch::default(), Latch::default());
        let (a_running, b_running) = (Latch::default(), Latch::default());
        let (ordered_a, x_done, a_saw_x) = (Latch::default(), Latch::default(), Latch::default());
        {
            let (gate_a, a_running) = (gate_a.clone(), a_running.clone());
            let (ordered_a, x_done, a_saw_x) = (ordered_a.clone(), x_done.clone(), a_saw_x.clone());
            q.queue(
                Box::new(move || {
                    a_running.set();
                    sleep_until(&gate_a);
                }),
                Box::new(move |()| {
                    ordered_a.set();
                    // The ordered stage waits for a *later item's func*
                    // (allowed: only waiting for a later ordered stage is not).
                    if sleep_wait(&x_done, 3) {
                        a_saw_x.set();
                    }
                }),
            );
        }
        {
            let (gate_b, b_running) = (gate_b.clone(), b_running.clone());
            q.queue(
                Box::new(move || {
                    b_running.set();
                    sleep_until(&gate_b);
                }),
                Box::new(|()| {}),
            );
        }
        go.set();
        assert!(eventually(5, || a_running.is_set() && b_running.is_set()));
        // Runner 0 grew the limit to 2 claiming A, runner 1 lowered it to 1
        // claiming B (nothing pending behind it).
        assert!(
            eventually(5, || q.current_active() == 1),
            "setup: expected current_active 1, got {}",
            q.current_active()
        );
        // Runner 0 finishes A and blocks in A's ordered stage (stalled).
        gate_a.set();
        assert!(eventually(5, || ordered_a.is_set()));
        // X is queued: runner 0 busy (stalled), runner 1 busy -> nobody woken.
        {
            let x_done = x_done.clone();
            q.queue(Box::new(move || x_done.set()), Box::new(|()| {}));
        }
        // Runner 1 finishes B and, being above current_active, retires.
        gate_b.set();
        std::thread::sleep(Duration::from_millis(500));
        let stuck = q.dump();
        q.flush().unwrap();
        assert!(
            a_saw_x.is_set(),
            "item X stayed claimable for 3 s next to a retired runner while the drain owner \
             waited for it; state 0.5 s after B finished: {stuck}"
        );
    });
}

// ---------------------------------------------------------------------
// Finding 4: the finisher thread is named `kwq-finish:<name>`; a queue
// name with an interior NUL (accepted by the builder) makes
// `thread::Builder::spawn` panic inside `drop` (while unwinding: abort).
// ---------------------------------------------------------------------

#[test]
fn drop_inside_own_stage_with_nul_in_name() {
    within(30, "nul name", || {
        let rt = rt(2);
        let q: Q = OrderedWorkqueue::builder("s5b\0nul")
            .runtime(&rt)
            .max_active(1)
            .max_in_flight(4)
            .build()
            .unwrap();
        let slot: Arc<Mutex<Option<Q>>> = Arc::new(Mutex::new(None));
        let (done, drop_panicked) = (Latch::default(), Latch::default());
        {
            let (slot, done, drop_panicked) = (slot.clone(), done.clone(), drop_panicked.clone());
            q.queue(
                Box::new(|| {}),
                Box::new(move |()| {
                    while slot.lock().unwrap().is_none() {
                        std::thread::yield_now();
                    }
                    let q = slot.lock().unwrap().take();
                    if catch_unwind(AssertUnwindSafe(move || drop(q))).is_err() {
                        drop_panicked.set();
                    }
                    done.set();
                }),
            );
        }
        *slot.lock().unwrap() = Some(q);
        assert!(eventually(10, || done.is_set()));
        assert!(
            !drop_panicked.is_set(),
            "OrderedWorkqueue::drop panicked (finisher thread name with NUL)"
        );
    });
}

// ---------------------------------------------------------------------
// Checks of things found correct.
// ---------------------------------------------------------------------

fn stalled_mask_is_zero(q: &Q) -> bool {
    q.dump().contains("stalled=0x0 ")
}

/// A func that blocks inside kwq::blocking makes room for another runner
/// (the new feature), and a kwq::blocking whose closure unwinds, nested
/// blocking calls, and blocking inside ordered stages (drain sessions) all
/// leave the stalled mask clear.
#[test]
fn stall_counters_balance_even_when_blocking_unwinds() {
    within(30, "stall balance", || {
        let rt = rt(4);
        let q: Q = OrderedWorkqueue::builder("s5b-stall")
            .runtime(&rt)
            .max_active(2)
            .max_in_flight(16)
            .build()
            .unwrap();
        // func 0 blocks (inside kwq::blocking) until func 1 ran: needs a
        // second runner although the backlog is one item.
        let one_ran = Latch::default();
        let saw = Latch::default();
        {
            let (one_ran, saw) = (one_ran.clone(), saw.clone());
            q.queue(
                Box::new(move || {
                    if one_ran.wait(5) {
                        saw.set();
                    }
                }),
                Box::new(|()| {}),
            );
        }
        std::thread::sleep(Duration::from_millis(20));
        {
            let one_ran = one_ran.clone();
            q.queue(Box::new(move || one_ran.set()), Box::new(|()| {}));
        }
        q.flush().unwrap();
        assert!(saw.is_set(), "blocked func did not make room: {}", q.dump());

        for i in 0..200u64 {
            q.queue(
                Box::new(move || {
                    if i % 3 == 0 {
                        kwq::blocking(|| kwq::blocking(|| panic!("unwinding blocking {i}")));
                    }
                }),
                Box::new(move |()| {
                    if i % 5 == 0 {
                        let _ = catch_unwind(|| kwq::blocking(|| panic!("in ordered")));
                        kwq::blocking(|| std::thread::sleep(Duration::from_micros(50)));
                    }
                }),
            );
        }
        let err = q.flush().unwrap_err();
        assert_eq!(err.panics().len(), 67);
        assert!(eventually(5, || stalled_mask_is_zero(&q)), "{}", q.dump());
    });
}

/// Dropping while unwinding hands the crew to a finisher: every item still
/// runs, even if the caller also drops its Runtime handle.
#[test]
fn drop_while_unwinding_still_runs_everything() {
    within(30, "unwinding drop", || {
        let rt = rt(2);
        let gate = Latch::default();
        let ran = Arc::new(AtomicUsize::new(0));
        let (gate2, ran2) = (gate.clone(), ran.clone());
        let rt2 = rt.clone();
        let r = std::thread::spawn(move || {
            let q: Q = OrderedWorkqueue::builder("s5b-unwind")
                .runtime(&rt2)
                .max_active(2)
                .max_in_flight(32)
                .build()
                .unwrap();
            for _ in 0..20 {
                let (g, r1, r2) = (gate2.clone(), ran2.clone(), ran2.clone());
                q.queue(
                    Box::new(move || {
                        g.wait(10);
                        r1.fetch_add(1, SeqCst);
                    }),
                    Box::new(move |()| {
                        r2.fetch_add(1, SeqCst);
                    }),
                );
            }
            drop(rt2);
            panic!("unwind with the queue alive");
        })
        .join();
        assert!(r.is_err());
        drop(rt);
        gate.set();
        assert!(
            eventually(10, || ran.load(SeqCst) == 40),
            "ran {}",
            ran.load(SeqCst)
        );
    });
}

/// Dropped from inside its own func (on a runner) and from its own ordered
/// stage: the finisher waits, the caller returns, every item runs.
#[test]
fn drop_inside_own_stages_runs_everything() {
    for in_ordered in [false, true] {
        within(30, "drop inside", move || {
            let rt = rt(2);
            let q: Q = OrderedWorkqueue::builder("s5b-inside")
                .runtime(&rt)
                .max_active(2)
                .max_in_flight(8)
                .build()
                .unwrap();
            let slot: Arc<Mutex<Option<Q>>> = Arc::new(Mutex::new(None));
            let ran = Arc::new(AtomicUsize::new(0));
            let dropper = {
                let slot = slot.clone();
                move || {
                    let q = loop {
                        if let Some(q) = slot.lock().unwrap().take() {
                            break q;
                        }
                        std::thread::yield_now();
                    };
                    drop(q);
                }
            };
            let mut dropper = Some(dropper);
            for i in 0..8 {
                let (r1, r2) = (ran.clone(), ran.clone());
                let d = if i == 2 { dropper.take() } else { None };
                let (df, dord) = if in_ordered { (None, d) } else { (d, None) };
                q.queue(
                    Box::new(move || {
                        if let Some(d) = df {
                            d();
                        }
                        r1.fetch_add(1, SeqCst);
                    }),
                    Box::new(move |()| {
                        if let Some(d) = dord {
                            d();
                        }
                        r2.fetch_add(1, SeqCst);
                    }),
                );
            }
            *slot.lock().unwrap() = Some(q);
            assert!(
                eventually(10, || ran.load(SeqCst) == 16),
                "ran {}",
                ran.load(SeqCst)
            );
        });
    }
}

/// Threshold validation: thresh >= max_in_flight is refused, thresh(0) on a
/// small ring is lowered, and a full ring grows current_active.
#[test]
fn threshold_validation() {
    let rt = rt(2);
    let e = OrderedWorkqueue::builder("s5b-th")
        .runtime(&rt)
        .thresh(8)
        .max_in_flight(8)
        .build::<(), fn(), fn(())>();
    assert!(e.is_err());
    let q: Q = OrderedWorkqueue::builder("s5b-th2")
        .runtime(&rt)
        .max_active(2)
        .thresh(0)
        .max_in_flight(4)
        .build()
        .unwrap();
    for _ in 0..200 {
        q.queue(Box::new(|| common::spin_for(200)), Box::new(|()| {}));
    }
    q.flush().unwrap();
    assert_eq!(q.workqueue_max_active(), q.current_active());
}
