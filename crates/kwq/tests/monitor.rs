//! The pool monitor: work functions that block *without* `kwq::blocking`
//! (std `Mutex`/`Condvar`, a pipe `read`, `thread::sleep`) do not stall a
//! concurrency-managed pool; CPU-bound items are never taken for blocked;
//! with the monitor off, the stall the monitor prevents is real.

mod common;
use common::Gate;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

fn rt(name: &str, detect: bool) -> (kwq::Runtime, Arc<Mutex<Vec<kwq::WarningKind>>>) {
    let kinds = Arc::new(Mutex::new(Vec::new()));
    let k = kinds.clone();
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(1)
        .max_workers(16)
        .thread_name(name)
        .detect_blocking(detect)
        .on_warning(move |w| k.lock().unwrap().push(w.kind()))
        .build()
        .unwrap();
    (rt, kinds)
}

/// Item A waits (unannotated) for item B, queued behind it on a
/// concurrency-1 pool: only a worker the monitor adds can run B.
fn dependent_pair(wait: impl FnOnce(Gate) + Send + 'static, detect: bool) -> bool {
    let (rt, kinds) = rt("kwq-mon", detect);
    let wq = kwq::Workqueue::builder("pair")
        .runtime(&rt)
        .build()
        .unwrap();
    let gate = Gate::default();
    let done = Gate::default();
    let (g, d) = (gate.clone(), done.clone());
    wq.queue_fn(move || {
        wait(g);
        d.open();
    });
    let g2 = gate.clone();
    wq.queue_fn(move || g2.open());
    let ok = done.wait(Duration::from_secs(if detect { 20 } else { 1 }));
    if !ok {
        gate.open(); // let the stuck item finish so the queue can drain
    }
    wq.flush();
    if detect {
        assert!(
            kinds
                .lock()
                .unwrap()
                .contains(&kwq::WarningKind::BlockedWorker),
            "the detection was not reported"
        );
    }
    ok
}

#[test]
fn unannotated_condvar_wait_is_unstuck() {
    assert!(dependent_pair(
        |g| assert!(g.wait(Duration::from_secs(30))),
        true
    ));
}

#[test]
fn unannotated_sleep_poll_is_unstuck() {
    assert!(dependent_pair(
        |g| {
            let deadline = Instant::now() + Duration::from_secs(30);
            while !g.wait(Duration::ZERO) && Instant::now() < deadline {
                // Short sleeps: the thread wakes (and runs a little) far
                // more often than the monitor looks.
                std::thread::sleep(Duration::from_micros(100));
            }
        },
        true
    ));
}

#[test]
fn unannotated_pipe_read_is_unstuck() {
    let (mut rd, wr) = pipe();
    let wr = Arc::new(Mutex::new(wr));
    let w2 = wr.clone();
    assert!(dependent_pair(
        move |g| {
            // Forward the gate to the pipe from a helper thread, then block
            // in read() on the worker.
            std::thread::spawn(move || {
                g.wait(Duration::from_secs(30));
                let _ = w2.lock().unwrap().write_all(b"x");
            });
            let mut b = [0u8; 1];
            rd.read_exact(&mut b).unwrap();
        },
        true
    ));
    drop(wr);
}

#[test]
fn without_the_monitor_the_pair_stalls() {
    // The control: the same program, detection off, does not finish.
    assert!(!dependent_pair(
        |g| assert!(g.wait(Duration::from_secs(30))),
        false
    ));
}

#[test]
fn a_cpu_bound_item_adds_no_worker() {
    let (rt, kinds) = rt("kwq-cpu", true);
    let wq = kwq::Workqueue::builder("cpu").runtime(&rt).build().unwrap();
    let spin_end = Arc::new(Mutex::new(None::<Instant>));
    let s = spin_end.clone();
    wq.queue_fn(move || {
        let until = Instant::now() + Duration::from_millis(200);
        let mut x = 0u64;
        while Instant::now() < until {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        *s.lock().unwrap() = Some(Instant::now());
    });
    let starts = Arc::new(Mutex::new(Vec::new()));
    for _ in 0..10 {
        let st = starts.clone();
        wq.queue_fn(move || st.lock().unwrap().push(Instant::now()));
    }
    wq.flush();
    let end = spin_end.lock().unwrap().expect("spinner ran");
    for t in starts.lock().unwrap().iter() {
        assert!(
            *t >= end,
            "a job ran beside the CPU-bound item: the monitor took it for blocked"
        );
    }
    assert!(!kinds
        .lock()
        .unwrap()
        .contains(&kwq::WarningKind::BlockedWorker));
}

#[test]
fn blocked_workers_show_in_the_dump() {
    let (rt, _) = rt("kwq-dump", true);
    let wq = kwq::Workqueue::builder("dumped")
        .runtime(&rt)
        .build()
        .unwrap();
    let gate = Gate::default();
    let g = gate.clone();
    wq.queue_fn(move || {
        g.wait(Duration::from_secs(30));
    });
    wq.queue_fn(|| {});
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut dump = rt.dump();
    while !dump.contains("blocked outside kwq::blocking") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
        dump = rt.dump();
    }
    gate.open();
    wq.flush();
    assert!(dump.contains("blocked outside kwq::blocking"), "{dump}");
}

/// Upper ordered stages wait — unannotated — for items of a lower ordered
/// queue on the same runtime (the stacked filesystem's shape), with a
/// small in-flight bound, on a concurrency-managed pool. Every wait kind
/// the issue names is used. The pool's threads stay within its cap.
#[test]
fn stacked_ordered_queues_with_unannotated_waits_complete() {
    let items: usize = std::env::var("KWQ_STACKED_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let cap = 16;
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(2)
        .max_workers(cap)
        .thread_name("kwq-stk")
        .build()
        .unwrap();
    type Q = kwq::ordered::BoxedOrderedWorkqueue<u64>;
    let lower: Arc<Q> = Arc::new(
        kwq::ordered::OrderedWorkqueue::builder("lower")
            .runtime(&rt)
            .max_in_flight(8)
            .build()
            .unwrap(),
    );
    let upper: Q = kwq::ordered::OrderedWorkqueue::builder("upper")
        .runtime(&rt)
        .max_in_flight(8)
        .build()
        .unwrap();
    let (pipe_rd, pipe_wr) = pipe();
    let pipe_rd = Arc::new(Mutex::new(pipe_rd));
    let pipe_wr = Arc::new(Mutex::new(pipe_wr));
    let sum = Arc::new(AtomicUsize::new(0));
    let max_threads = Arc::new(AtomicUsize::new(0));
    for i in 0..items {
        let (rd, wr) = (pipe_rd.clone(), pipe_wr.clone());
        let sum = sum.clone();
        let mt = max_threads.clone();
        // Both stages wait, without telling kwq, for an item of the lower
        // queue: the parallel stage (so every runner of the upper queue can
        // be blocked at once) and the ordered stage (the Btrfs shape).
        let wait_for_lower = {
            let lower = lower.clone();
            move |v: u64, kind: usize, rd: &Mutex<std::fs::File>, wr: Arc<Mutex<std::fs::File>>| {
                let gate = Gate::default();
                let g = gate.clone();
                let (tx, rx) = mpsc::channel::<u64>();
                lower.queue(
                    Box::new(move || v + 1),
                    Box::new(move |w| match kind {
                        0 | 3 => g.open(),
                        1 => {
                            let _ = wr.lock().unwrap().write_all(&[1]);
                        }
                        _ => {
                            let _ = tx.send(w);
                        }
                    }),
                );
                match kind {
                    0 => assert!(gate.wait(Duration::from_secs(60)), "condvar wait timed out"),
                    1 => {
                        let mut b = [0u8; 1];
                        rd.lock().unwrap().read_exact(&mut b).unwrap();
                    }
                    2 => {
                        rx.recv_timeout(Duration::from_secs(60))
                            .expect("channel wait timed out");
                    }
                    _ => {
                        let deadline = Instant::now() + Duration::from_secs(60);
                        while !gate.wait(Duration::ZERO) {
                            assert!(Instant::now() < deadline, "sleep-poll timed out");
                            std::thread::sleep(Duration::from_micros(200));
                        }
                    }
                }
            }
        };
        let w2 = wait_for_lower.clone();
        let (rd2, wr2) = (rd.clone(), wr.clone());
        upper.queue(
            Box::new(move || {
                // The pipe is shared: its reads must pair with its writes,
                // so only the ordered stage (one at a time) uses it.
                let kind = [0, 2, 3][i % 3];
                w2(i as u64, kind, &rd2, wr2);
                i as u64 * 3
            }),
            Box::new(move |v| {
                wait_for_lower(v, i % 4, &rd, wr);
                sum.fetch_add(1, SeqCst);
                if i % 256 == 0 {
                    mt.fetch_max(threads_named("kwq-stk/"), SeqCst);
                }
            }),
        );
    }
    upper.flush().expect("no upper stage panicked");
    lower.flush().expect("no lower stage panicked");
    assert_eq!(sum.load(SeqCst), items);
    let seen = max_threads.load(SeqCst).max(threads_named("kwq-stk/"));
    // Workers only (the monitor and watchdog are named kwq-stk/monitor and
    // kwq-stk/watchdog and counted separately).
    assert!(seen <= cap + 2, "{seen} threads for a cap of {cap}");
}

/// "The monitor does nothing while no work waits": once a runtime's pools
/// are idle, its monitor thread sleeps until a worker wakes it (at most one
/// safety-net look a second), instead of ticking. Also: a pool that is
/// idle between jobs does not keep it awake. Linux (reads the thread's
/// context-switch count).
#[cfg(target_os = "linux")]
#[test]
fn an_idle_runtime_leaves_the_monitor_asleep() {
    let (rt, kinds) = rt("idlemon", true);
    let wq = kwq::Workqueue::builder("idlemon")
        .runtime(&rt)
        .build()
        .unwrap();
    // Jobs 2 ms apart, then quiet: the monitor's grace looks (about 100 ms)
    // end and it goes to sleep.
    for _ in 0..50 {
        wq.queue_fn(|| {});
        std::thread::sleep(Duration::from_millis(2));
    }
    wq.flush();
    std::thread::sleep(Duration::from_millis(400));
    let tid = thread_id_named("idlemon/monitor").expect("the monitor thread runs");
    let before = switches(&tid);
    std::thread::sleep(Duration::from_millis(1500));
    let after = switches(&tid);
    // One safety-net look a second: at most 2 in 1.5 s (a ticking monitor
    // would have made about 150).
    assert!(
        after - before <= 3,
        "the monitor of an idle runtime woke {} times in 1.5 s",
        after - before
    );
    assert!(
        kinds.lock().unwrap().is_empty(),
        "{:?}",
        kinds.lock().unwrap()
    );
    drop(wq);
}

/// The kernel id of this process's thread named `name` (at most 15 bytes).
#[cfg(target_os = "linux")]
fn thread_id_named(name: &str) -> Option<String> {
    std::fs::read_dir("/proc/self/task")
        .ok()?
        .filter_map(Result::ok)
        .find(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim_end() == name)
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
}

/// Voluntary plus involuntary context switches of thread `tid` so far.
#[cfg(target_os = "linux")]
fn switches(tid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/self/task/{tid}/status")).unwrap();
    status
        .lines()
        .filter(|l| l.contains("ctxt_switches"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// Threads of this process whose name starts with `prefix` (Linux).
fn threads_named(prefix: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm"))
                .map(|c| c.trim_end().starts_with(&prefix[..prefix.len().min(15)]))
                .unwrap_or(false)
        })
        .count()
}

fn pipe() -> (std::fs::File, std::fs::File) {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors pipe(2) writes.
    let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
    assert_eq!(rc, 0, "pipe(2) failed");
    use std::os::fd::FromRawFd;
    // SAFETY: both descriptors were just created and are owned by nobody else.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            std::fs::File::from_raw_fd(fds[1]),
        )
    }
}
