//! A `tracing` subscriber is user code too: kwq emits its events on its
//! own threads (a worker reporting a panic, the timer reporting a dropped
//! instance). A subscriber that panics must not kill those threads.
//!
//! The subscriber is process-wide (`set_global_default`), so this file
//! holds one test and nothing else.

use kwq::{DelayedWork, RuntimeBuilder, Work, Workqueue};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// Panics on every `kwq` event (after counting it).
struct Hostile(Arc<AtomicUsize>);

impl tracing::Subscriber for Hostile {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, e: &tracing::Event<'_>) {
        if e.metadata().target() == "kwq" {
            self.0.fetch_add(1, SeqCst);
            panic!("hostile subscriber");
        }
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// Panics when dropped.
struct PanicOnDrop;
impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("hostile destructor");
        }
    }
}

fn fresh_job_runs(q: &Workqueue) -> bool {
    let (tx, rx) = mpsc::channel();
    q.queue_fn(move || tx.send(()).unwrap());
    rx.recv_timeout(Duration::from_secs(5)).is_ok()
}

#[test]
fn a_panicking_subscriber_stops_no_kwq_thread() {
    let events = Arc::new(AtomicUsize::new(0));
    tracing::subscriber::set_global_default(Hostile(events.clone())).unwrap();
    let rt = RuntimeBuilder::new()
        .concurrency(1)
        .watchdog(None)
        .thread_name("h-trace")
        .build()
        .unwrap();
    let q = Workqueue::builder("q").runtime(&rt).build().unwrap();
    // A worker reports a panic, then a panicking destructor.
    q.queue_fn(|| panic!("hostile job"));
    let bomb = PanicOnDrop;
    let w = Work::new("bomb", move || {
        let _ = &bomb;
    });
    q.queue(&w);
    drop(w);
    assert!(
        fresh_job_runs(&q),
        "a worker died reporting to the subscriber"
    );
    // The timer reports a panicking destructor of a cancelled item.
    let d = DelayedWork::new("bomb", {
        let b = PanicOnDrop;
        move || {
            let _ = &b;
        }
    });
    assert!(q.queue_delayed(&d, Duration::from_millis(5)));
    assert!(d.cancel());
    drop(d);
    std::thread::sleep(Duration::from_millis(50));
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let probe = DelayedWork::new("probe", move || {
        let _ = tx.lock().unwrap().send(());
    });
    assert!(q.queue_delayed(&probe, Duration::from_millis(5)));
    assert!(
        rx.recv_timeout(Duration::from_secs(5)).is_ok(),
        "the timer died reporting to the subscriber"
    );
    assert!(events.load(SeqCst) >= 3, "{} events", events.load(SeqCst));
}
