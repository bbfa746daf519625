//! The library never writes to stdout or stderr.
//!
//! This test binary has no libtest harness (`harness = false`): its `main`
//! re-runs itself as a child with `KWQ_SILENT_CHILD=1`, a silent std panic
//! hook and both output descriptors captured. The child drives every kind
//! of event the runtime reports — panics in work items, jobs and ordered
//! stages, a panicking hook, a lockup, refused queueing, a delayed item
//! firing into a dropped queue, a queue dropped from its own item, an
//! ordered queue dropped with uncollected panics, a refused job whose
//! destructor panics, a bad `KWQ_*` variable — checks through the hooks and
//! a counting `tracing` subscriber that each of them really happened, and
//! exits. The parent then requires both captured streams to be empty.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

fn main() {
    if std::env::var_os("KWQ_SILENT_CHILD").is_some() {
        std::panic::set_hook(Box::new(|_| {}));
        std::process::exit(child());
    }
    let exe = std::env::current_exe().expect("own path");
    let report = std::env::temp_dir().join(format!("kwq-silent-{}.txt", std::process::id()));
    let mut cmd = Command::new(exe);
    cmd.env("KWQ_SILENT_CHILD", "1")
        .env("KWQ_SILENT_REPORT", &report)
        // Unparsable on purpose: the global runtime must report it silently.
        .env("KWQ_CONCURRENCY", "lots")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("spawn the child");
    let deadline = Instant::now() + Duration::from_secs(120);
    let out = wait_with_deadline(child, deadline);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let detail = std::fs::read_to_string(&report).unwrap_or_default();
    let _ = std::fs::remove_file(&report);
    assert!(
        out.status.success(),
        "child failed ({:?}): {detail}; stdout: {stdout:?}; stderr: {stderr:?}",
        out.status
    );
    assert!(stdout.is_empty(), "kwq wrote to stdout: {stdout:?}");
    assert!(stderr.is_empty(), "kwq wrote to stderr: {stderr:?}");
    println!("test library_never_prints ... ok");
    println!("1 passed, 0 failed");
}

fn wait_with_deadline(mut child: std::process::Child, deadline: Instant) -> std::process::Output {
    loop {
        if child.try_wait().expect("wait").is_some() {
            return child.wait_with_output().expect("collect output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("collect output");
            panic!(
                "child hung; stdout: {:?}; stderr: {:?}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Counts `tracing` events by level.
#[derive(Default)]
struct Counting {
    errors: AtomicUsize,
    warnings: AtomicUsize,
}

impl tracing::Subscriber for Counting {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        if e.metadata().target() != "kwq" {
            return;
        }
        match *e.metadata().level() {
            tracing::Level::ERROR => self.errors.fetch_add(1, SeqCst),
            tracing::Level::WARN => self.warnings.fetch_add(1, SeqCst),
            _ => 0,
        };
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A value whose destructor panics.
struct Grenade;
impl Drop for Grenade {
    fn drop(&mut self) {
        panic!("grenade");
    }
}

fn child() -> i32 {
    let counting = Arc::new(Counting::default());
    tracing::subscriber::set_global_default(CountingRef(counting.clone())).expect("subscriber");

    let panics = Arc::new(AtomicUsize::new(0));
    let lockups = Arc::new(AtomicUsize::new(0));
    let kinds = Arc::new(Mutex::new(Vec::new()));
    let (p, l, k) = (panics.clone(), lockups.clone(), kinds.clone());
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(1)
        .watchdog(Some(Duration::from_millis(100)))
        // The lockup below must stand: no monitor to unstick it.
        .detect_blocking(false)
        .on_panic(move |r| {
            if p.fetch_add(1, SeqCst) == 0 {
                // A panicking hook is contained too.
                panic!("hook exploded on {}", r.work());
            }
        })
        .on_lockup(move |_| {
            l.fetch_add(1, SeqCst);
        })
        .on_warning(move |w| k.lock().unwrap().push(w.kind()))
        .build()
        .expect("runtime");

    // Panics: a work item, a job, both ordered stages.
    let wq = kwq::Workqueue::builder("silent")
        .runtime(&rt)
        .build()
        .unwrap();
    let w = kwq::Work::new("boom", || panic!("work item"));
    wq.queue(&w);
    wq.queue_fn(|| panic!("job"));
    wq.queue_fn(|| std::panic::panic_any(42u32));
    wq.flush();
    let oq: kwq::ordered::BoxedOrderedWorkqueue<u32> =
        kwq::ordered::OrderedWorkqueue::builder("silent-ordered")
            .runtime(&rt)
            .build()
            .unwrap();
    oq.queue(Box::new(|| -> u32 { panic!("func") }), Box::new(|_| {}));
    oq.queue(Box::new(|| 1), Box::new(|_| panic!("ordered")));
    // Dropped without flush: the panics are uncollected.
    drop(oq);

    // A lockup: the only running worker blocks without kwq::blocking.
    let (release_tx, release_rx) = mpsc::channel::<()>();
    wq.queue_fn(move || {
        let _ = release_rx.recv_timeout(Duration::from_secs(10));
    });
    wq.queue_fn(|| {});
    let until = Instant::now() + Duration::from_secs(10);
    while lockups.load(SeqCst) == 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
    release_tx.send(()).ok();
    wq.flush();

    // A workqueue dropped from one of its own items.
    let own = kwq::Workqueue::builder("own").runtime(&rt).build().unwrap();
    let slot = Arc::new(Mutex::new(None::<kwq::Workqueue>));
    let s2 = slot.clone();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    own.queue_fn(move || {
        let _ = go_rx.recv_timeout(Duration::from_secs(10));
        drop(s2.lock().unwrap().take());
    });
    *slot.lock().unwrap() = Some(own);
    go_tx.send(()).ok();
    let until = Instant::now() + Duration::from_secs(10);
    while slot.lock().unwrap().is_some() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
    }

    // A delayed item whose queue is gone when it fires.
    let gone = kwq::Workqueue::builder("gone")
        .runtime(&rt)
        .build()
        .unwrap();
    let late = kwq::DelayedWork::new("late", || {});
    gone.queue_delayed(&late, Duration::from_millis(30));
    drop(gone);

    // Refused queueing while a drain runs, with a job whose destructor
    // panics.
    let draining = Arc::new(
        kwq::Workqueue::builder("draining")
            .runtime(&rt)
            .build()
            .unwrap(),
    );
    let (hold_tx, hold_rx) = mpsc::channel::<()>();
    draining.queue_fn(move || {
        let _ = hold_rx.recv_timeout(Duration::from_secs(10));
    });
    let d2 = draining.clone();
    let drainer = std::thread::spawn(move || d2.drain());
    let until = Instant::now() + Duration::from_secs(10);
    while Instant::now() < until {
        match draining.try_queue_fn(|| {}) {
            Err(e) if e.error().is_draining() => break,
            _ => std::thread::sleep(Duration::from_millis(1)),
        }
    }
    let g = Grenade;
    draining.queue_fn(move || {
        let _keep = &g;
    });
    draining.queue(&kwq::Work::new("refused", || {}));
    hold_tx.send(()).ok();
    drainer.join().unwrap();
    std::thread::sleep(Duration::from_millis(100));

    // The global runtime, with KWQ_CONCURRENCY=lots in the environment.
    let _ = kwq::Runtime::global().concurrency();

    let kinds = kinds.lock().unwrap().clone();
    let has = |k: kwq::WarningKind| kinds.contains(&k);
    let mut failed = Vec::new();
    let mut check = |ok: bool, what: &str| {
        if !ok {
            failed.push(what.to_string());
        }
    };
    check(panics.load(SeqCst) >= 3, "panic reports");
    check(lockups.load(SeqCst) >= 1, "a lockup report");
    check(has(kwq::WarningKind::UncollectedPanic), "UncollectedPanic");
    check(has(kwq::WarningKind::QueueRefused), "QueueRefused");
    check(has(kwq::WarningKind::DelayedDropped), "DelayedDropped");
    check(
        has(kwq::WarningKind::DroppedFromOwnItem),
        "DroppedFromOwnItem",
    );
    check(counting.errors.load(SeqCst) >= 4, "tracing errors");
    check(counting.warnings.load(SeqCst) >= 6, "tracing warnings");
    if failed.is_empty() {
        0
    } else {
        // The child's output must stay empty: the parent reads the
        // failure from a file it named.
        if let Some(path) = std::env::var_os("KWQ_SILENT_REPORT") {
            let _ = std::fs::write(path, format!("missing {failed:?}; warnings seen {kinds:?}"));
        }
        3
    }
}

/// `set_global_default` takes the subscriber by value.
struct CountingRef(Arc<Counting>);

impl tracing::Subscriber for CountingRef {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        self.0.enabled(m)
    }
    fn new_span(&self, a: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        self.0.new_span(a)
    }
    fn record(&self, s: &tracing::span::Id, r: &tracing::span::Record<'_>) {
        self.0.record(s, r)
    }
    fn record_follows_from(&self, a: &tracing::span::Id, b: &tracing::span::Id) {
        self.0.record_follows_from(a, b)
    }
    fn event(&self, e: &tracing::Event<'_>) {
        self.0.event(e)
    }
    fn enter(&self, s: &tracing::span::Id) {
        self.0.enter(s)
    }
    fn exit(&self, s: &tracing::span::Id) {
        self.0.exit(s)
    }
}
