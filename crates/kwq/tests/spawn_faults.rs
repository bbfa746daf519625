//! Fault injection: worker thread creation that fails on demand (through
//! `RuntimeBuilder::spawn_handler`). A failure is reported, never a panic
//! or a silent hang, and the pool recovers once creation works again.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// A spawn handler that fails while `fail` is set, counting attempts.
#[derive(Clone, Default)]
struct Faulty {
    fail: Arc<AtomicBool>,
    attempts: Arc<AtomicUsize>,
    started: Arc<AtomicUsize>,
}

impl Faulty {
    fn runtime(&self, name: &str, warnings: Arc<Mutex<Vec<String>>>) -> kwq::Runtime {
        let f = self.clone();
        kwq::RuntimeBuilder::new()
            .concurrency(1)
            .thread_name(name)
            .watchdog(None)
            .on_warning(move |w| {
                if w.kind() == kwq::WarningKind::WorkerSpawnFailed {
                    warnings.lock().unwrap().push(w.to_string());
                }
            })
            .spawn_handler(move |t| {
                f.attempts.fetch_add(1, SeqCst);
                if f.fail.load(SeqCst) {
                    return Err(std::io::Error::other("injected: no threads today"));
                }
                f.started.fetch_add(1, SeqCst);
                std::thread::Builder::new()
                    .name(t.name().to_string())
                    .spawn(move || t.run())
                    .map(drop)
            })
            .build()
            .unwrap()
    }
}

fn eventually(secs: u64, cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    true
}

#[test]
fn a_pool_that_cannot_create_its_first_worker_reports_and_recovers() {
    let faulty = Faulty::default();
    faulty.fail.store(true, SeqCst);
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let rt = faulty.runtime("kwq-nofirst", warnings.clone());
    let wq = kwq::Workqueue::builder("starved")
        .runtime(&rt)
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    wq.queue_fn(move || tx.send(()).unwrap());
    // Nothing can run it, and the program hears why.
    assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
    assert!(
        eventually(10, || !warnings.lock().unwrap().is_empty()),
        "no report"
    );
    assert!(
        warnings.lock().unwrap()[0].contains("injected"),
        "{:?}",
        warnings.lock().unwrap()
    );
    assert!(rt.dump().contains("worklist=1"), "{}", rt.dump());
    // Retries are backed off, not a busy loop.
    let tries = faulty.attempts.load(SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    let more = faulty.attempts.load(SeqCst) - tries;
    assert!(more <= 40, "{more} creation attempts in 300 ms");
    // Creation works again: the queued job runs without any further push.
    faulty.fail.store(false, SeqCst);
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the pool did not recover once threads could be created");
    wq.flush();
}

#[test]
fn a_blocked_worker_whose_replacement_cannot_start_recovers() {
    let faulty = Faulty::default();
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let rt = faulty.runtime("kwq-norepl", warnings.clone());
    let wq = kwq::Workqueue::builder("needs-two")
        .runtime(&rt)
        .build()
        .unwrap();
    // Let the first worker (and its reserve) start, then break creation.
    assert_eq!(wq.spawn(|| 1).join().unwrap(), 1);
    assert!(eventually(10, || faulty.started.load(SeqCst) >= 1));
    faulty.fail.store(true, SeqCst);
    // Item A waits (inside kwq::blocking) for item B; the pool needs one
    // worker per item, beyond any idle reserve it kept.
    let n = 6;
    let (tx, rx) = mpsc::channel::<usize>();
    let gates: Vec<_> = (0..n)
        .map(|_| Arc::new((Mutex::new(false), std::sync::Condvar::new())))
        .collect();
    for i in 0..n {
        let g = gates.clone();
        let tx = tx.clone();
        wq.queue_fn(move || {
            // Each item opens the gate of the one before it and waits for
            // its own, so all n must run at once.
            if i > 0 {
                let (m, c) = &*g[i - 1];
                *m.lock().unwrap() = true;
                c.notify_all();
            }
            if i + 1 < n {
                let (m, c) = &*g[i];
                kwq::blocking(|| {
                    let mut open = m.lock().unwrap();
                    while !*open {
                        open = c.wait(open).unwrap();
                    }
                });
            }
            tx.send(i).unwrap();
        });
    }
    drop(tx);
    // Not all can run: creation fails, and says so.
    assert!(
        eventually(10, || !warnings.lock().unwrap().is_empty()),
        "no report"
    );
    faulty.fail.store(false, SeqCst);
    let mut done: Vec<usize> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while done.len() < n && Instant::now() < deadline {
        if let Ok(i) = rx.recv_timeout(Duration::from_millis(50)) {
            done.push(i);
        }
    }
    assert_eq!(done.len(), n, "only {done:?} ran after creation recovered");
}

#[test]
fn a_panicking_spawn_handler_is_a_failed_creation() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let warnings = Arc::new(Mutex::new(Vec::new()));
    let w = warnings.clone();
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(1)
        .watchdog(None)
        .on_warning(move |x| w.lock().unwrap().push(x.to_string()))
        .spawn_handler(move |t| {
            if c.fetch_add(1, SeqCst) == 0 {
                panic!("handler exploded");
            }
            std::thread::Builder::new().spawn(move || t.run()).map(drop)
        })
        .build()
        .unwrap();
    let wq = kwq::Workqueue::builder("recovers")
        .runtime(&rt)
        .build()
        .unwrap();
    assert_eq!(wq.spawn(|| 7).join().unwrap(), 7);
    assert!(warnings
        .lock()
        .unwrap()
        .iter()
        .any(|m| m.contains("handler exploded")));
}
