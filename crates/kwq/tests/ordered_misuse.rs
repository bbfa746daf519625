//! Bad input and resource bounds of `kwq::ordered` (review of session 5):
//! every odd argument gets a clear error or works, nothing aborts, and
//! memory stays bounded by `max_in_flight` where the docs say so.

mod common;

use common::{rt, spin_for, within};
use kwq::ordered::{OrderedMapBuilder, OrderedWorkqueue};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

// ---------------------------------------------------------------------------
// 4. Bad input.

/// Child half of `huge_max_in_flight_is_an_error_not_an_abort` (run in a
/// subprocess with a 4 GiB address-space limit).
#[test]
#[ignore = "run as a subprocess by huge_max_in_flight_is_an_error_not_an_abort"]
fn huge_max_in_flight_child() {
    let r = OrderedWorkqueue::builder("s5-huge")
        .max_active(1)
        .max_in_flight(1 << 32)
        .build::<(), fn(), fn(())>();
    println!("S5-CHILD-RESULT: is_err={}", r.is_err());
}

#[test]
fn huge_max_in_flight_is_an_error_not_an_abort() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 4194304; exec \"$0\" --ignored --exact huge_max_in_flight_child --nocapture --test-threads=1")
        .arg(&exe)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("S5-CHILD-RESULT"),
        "max_in_flight(1 << 32) (accepted by build) killed the process: status {:?}\nstderr: {}",
        out.status,
        stderr
            .lines()
            .filter(|l| !l.is_empty())
            .take(3)
            .collect::<Vec<_>>()
            .join(" | ")
    );
}

/// `OrderedMapBuilder::max_in_flight(n)` with n < 16 is rejected with the
/// ordered *queue's* message ("between 1 and 2^32"), which 8 satisfies.
#[test]
fn map_max_in_flight_error_message_matches_its_rule() {
    let e = OrderedMapBuilder::new()
        .max_in_flight(8)
        .map(0..1u32, |x| x)
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        !msg.contains("between 1 and 2^32"),
        "misleading message for the iterator's >= 16 rule: {msg:?}"
    );
}

/// The default threshold (32) with max_in_flight(32) used to pin
/// current_active at 1 forever (the backlog never exceeds max_in_flight):
/// silently serial, with max_active 4. The default is now lowered to half
/// the ring.
#[test]
fn default_thresh_with_small_max_in_flight_can_grow() {
    within(60, "thresh pinned", || {
        let rt = rt(2);
        let q = OrderedWorkqueue::builder("s5-thresh-pin")
            .runtime(&rt)
            .max_active(4)
            .thresh(0)
            .max_in_flight(32)
            .build()
            .unwrap();
        let mut max_seen = 0;
        for i in 0..3000u64 {
            q.queue(
                move || {
                    spin_for(30);
                    i
                },
                |_| {},
            );
            max_seen = max_seen.max(q.current_active());
        }
        q.flush().unwrap();
        assert!(
            max_seen > 1,
            "current_active never left 1 (thresh 32 >= max_in_flight 32): silently serial"
        );
    });
}

/// A threshold the backlog can never exceed (at or above max_in_flight)
/// would pin current_active at 1: refused with an error naming the rule.
#[test]
fn thresh_at_or_above_max_in_flight_is_refused() {
    for t in [64, 65, u64::MAX] {
        let e = OrderedWorkqueue::builder("thresh-refused")
            .max_active(2)
            .max_in_flight(64)
            .thresh(t)
            .build::<(), fn(), fn(())>()
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("thresh must be below max_in_flight (64)"),
            "{e}"
        );
    }
    let q = OrderedWorkqueue::builder("thresh-ok")
        .max_active(2)
        .max_in_flight(64)
        .thresh(63)
        .build::<(), fn(), fn(())>()
        .unwrap();
    assert!(!q.congested());
}

/// Odd but valid arguments: max_in_flight 1 and 3 (non power of two),
/// max_active 64 (all bits of the idle mask), zero-sized closures and
/// result; several producers on each.
#[test]
fn odd_valid_arguments_work() {
    within(60, "odd arguments", || {
        let rt = rt(2);
        for (cap, active) in [(1usize, 1usize), (3, 2), (5, 64), (64, 64)] {
            let q = Arc::new(
                OrderedWorkqueue::builder(format!("s5-odd-{cap}-{active}"))
                    .runtime(&rt)
                    .max_active(active)
                    .max_in_flight(cap)
                    .build::<(), fn(), fn(())>()
                    .unwrap(),
            );
            fn f() {}
            fn o(_: ()) {}
            let producers: Vec<_> = (0..3)
                .map(|_| {
                    let q = q.clone();
                    std::thread::spawn(move || {
                        for _ in 0..2000 {
                            q.queue(f, o);
                        }
                    })
                })
                .collect();
            for p in producers {
                p.join().unwrap();
            }
            q.flush().unwrap();
            assert_eq!(q.in_flight(), 0);
        }
        // ZST output through the iterator, max_in_flight exactly 16.
        let n = OrderedMapBuilder::new()
            .runtime(&rt)
            .max_in_flight(16)
            .map(0..10_000u32, |_| ())
            .unwrap()
            .count();
        assert_eq!(n, 10_000);
    });
}

// ---------------------------------------------------------------------------
// 6. Resource bounds.

/// The iterator never holds more than max_in_flight items between pulling
/// and yielding, for max_in_flight values that are not multiples of 16 and
/// a cheap `f` (large batches), with both `next` and `fold`.
#[test]
fn ordered_map_in_flight_bound_holds_for_odd_sizes() {
    within(60, "iterator bound", || {
        let rt = rt(2);
        for cap in [16usize, 17, 31, 100, 1000] {
            for use_fold in [false, true] {
                let pulled = Arc::new(AtomicUsize::new(0));
                let yielded = Arc::new(AtomicUsize::new(0));
                let worst = Arc::new(AtomicUsize::new(0));
                let (p, y, w) = (pulled.clone(), yielded.clone(), worst.clone());
                let input = (0..100_000u64).inspect(move |_| {
                    let now = p.fetch_add(1, SeqCst) + 1 - y.load(SeqCst);
                    w.fetch_max(now, SeqCst);
                });
                let it = OrderedMapBuilder::new()
                    .runtime(&rt)
                    .max_active(2)
                    .max_in_flight(cap)
                    .map(input, |x| x ^ 1)
                    .unwrap();
                let mut expect = 0u64;
                let mut check = |v: u64| {
                    assert_eq!(v, expect ^ 1);
                    expect += 1;
                    yielded.fetch_add(1, SeqCst);
                };
                if use_fold {
                    it.for_each(&mut check);
                } else {
                    for v in it {
                        check(v);
                    }
                }
                let worst = worst.load(SeqCst);
                assert!(worst <= cap, "cap {cap} fold {use_fold}: {worst} in flight");
            }
        }
    });
}

/// Every caught panic reaches `flush`, however many there are: the queue
/// keeps them all until collected (documented: memory grows with the
/// number of uncollected panics, not bounded by max_in_flight).
#[test]
fn every_uncollected_panic_reaches_flush() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let quiet = info
            .payload()
            .downcast_ref::<&str>()
            .is_some_and(|s| s.starts_with("s5-quiet"));
        if !quiet {
            prev(info);
        }
    }));
    let rt = rt(2);
    let q = OrderedWorkqueue::builder("s5-panics")
        .runtime(&rt)
        .max_active(2)
        .max_in_flight(4)
        .build()
        .unwrap();
    const N: usize = 5000;
    for _ in 0..N {
        q.queue(|| -> u8 { panic!("s5-quiet") }, |_| {});
    }
    let err = q.flush().unwrap_err();
    assert_eq!(err.panics().len(), N);
}
