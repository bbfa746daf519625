//! Stacked ordered queues with aggressive slot recycling (issue 3,
//! requirement 2) — the userspace shape of the 2019 Btrfs deadlock.
//!
//! Two ordered queues share one pool (one `Runtime`): UPPER plays the top
//! filesystem's delalloc queue, LOWER the bottom one's. Every UPPER ordered
//! stage queues items on LOWER and blocks (inside `kwq::blocking`) until
//! their ordered stages have completed — the top filesystem waiting for I/O
//! on the bottom one. Both queues have `max_in_flight = 2`, so slots are
//! recycled constantly, while the UPPER ordered stage still runs; delays
//! are randomized. In Btrfs before c495dcd6fbe1 this shape deadlocks when a
//! recycled item collides with the blocked worker's "current work"; in kwq
//! nothing keys on a slot, so it must always finish.
//!
//! A watchdog thread fails the test (with `Runtime::dump()` and both
//! queues' state) if progress stops for 20 s, instead of hanging CI.

use kwq::ordered::{BoxedOrderedWorkqueue, OrderedWorkqueue};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

const ITERATIONS: u64 = 30_000;
const STALL: Duration = Duration::from_secs(20);

/// xorshift, per item, for reproducible random delays.
fn rand(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn jitter(seed: &mut u64) {
    match rand(seed) % 8 {
        0 => std::thread::yield_now(),
        1 => {
            let end = Instant::now() + Duration::from_micros(rand(seed) % 30);
            while Instant::now() < end {
                std::hint::spin_loop();
            }
        }
        2 if rand(seed) % 16 == 0 => std::thread::sleep(Duration::from_micros(50)),
        _ => {}
    }
}

/// Counts completions of one UPPER item's LOWER items.
struct Latch {
    left: Mutex<u32>,
    cv: Condvar,
}

#[test]
fn stacked_ordered_queues_with_recycling_never_hang() {
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(2)
        .thread_name("stress")
        .build()
        .unwrap();
    let lower: Arc<BoxedOrderedWorkqueue<u64>> = Arc::new(
        OrderedWorkqueue::builder("lower")
            .runtime(&rt)
            .max_active(2)
            .max_in_flight(2)
            .build()
            .unwrap(),
    );
    let upper: Arc<BoxedOrderedWorkqueue<u64>> = Arc::new(
        OrderedWorkqueue::builder("upper")
            .runtime(&rt)
            .max_active(2)
            .max_in_flight(2)
            .build()
            .unwrap(),
    );
    let progress = Arc::new(AtomicU64::new(0));
    let lower_done = Arc::new(AtomicU64::new(0));
    let upper_order = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicBool::new(false));

    // Watchdog: no progress for STALL → print everything and fail.
    let watchdog = {
        let (rt, lower, upper) = (rt.clone(), Arc::downgrade(&lower), Arc::downgrade(&upper));
        let (progress, finished) = (progress.clone(), finished.clone());
        std::thread::spawn(move || {
            let mut last = (progress.load(SeqCst), Instant::now());
            while !finished.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(100));
                let p = progress.load(SeqCst);
                if p != last.0 {
                    last = (p, Instant::now());
                } else if last.1.elapsed() > STALL {
                    eprintln!("stacked ordered stress: no progress for {STALL:?} at {p} items");
                    eprintln!("{}", rt.dump());
                    if let Some(u) = upper.upgrade() {
                        eprintln!("upper: {}", u.dump());
                    }
                    if let Some(l) = lower.upgrade() {
                        eprintln!("lower: {}", l.dump());
                    }
                    std::process::exit(101);
                }
            }
        })
    };

    let start = Instant::now();
    for i in 0..ITERATIONS {
        let (lower, progress, lower_done, upper_order) = (
            lower.clone(),
            progress.clone(),
            lower_done.clone(),
            upper_order.clone(),
        );
        let mut seed = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let mut seed2 = seed.rotate_left(7) | 1;
        upper.queue(
            Box::new(move || {
                jitter(&mut seed);
                i
            }),
            Box::new(move |v| {
                assert_eq!(upper_order.fetch_add(1, SeqCst), v, "upper out of order");
                // Like the top FS submitting I/O to the bottom one and
                // waiting for it: queue on LOWER, block until its ordered
                // stages ran.
                let k = 1 + (rand(&mut seed2) % 3) as u32;
                let latch = Arc::new(Latch {
                    left: Mutex::new(k),
                    cv: Condvar::new(),
                });
                for j in 0..k {
                    let l = latch.clone();
                    let ld = lower_done.clone();
                    let mut s = seed2.wrapping_add(u64::from(j)) | 1;
                    lower.queue(
                        Box::new(move || {
                            jitter(&mut s);
                            u64::from(j)
                        }),
                        Box::new(move |_| {
                            ld.fetch_add(1, SeqCst);
                            let mut left = l.left.lock().unwrap();
                            *left -= 1;
                            if *left == 0 {
                                l.cv.notify_all();
                            }
                        }),
                    );
                }
                kwq::blocking(|| {
                    let mut left = latch.left.lock().unwrap();
                    while *left > 0 {
                        left = latch.cv.wait(left).unwrap();
                    }
                });
                jitter(&mut seed2);
                progress.fetch_add(1, SeqCst);
            }),
        );
    }
    upper.flush().unwrap();
    lower.flush().unwrap();
    finished.store(true, SeqCst);
    watchdog.join().unwrap();
    assert_eq!(progress.load(SeqCst), ITERATIONS);
    assert_eq!(upper_order.load(SeqCst), ITERATIONS);
    eprintln!(
        "stacked stress: {ITERATIONS} upper items, {} lower items in {:?}",
        lower_done.load(SeqCst),
        start.elapsed()
    );
}
