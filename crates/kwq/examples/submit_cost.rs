//! Cost of the submit path alone: `queue_fn` of a zero-sized closure while
//! the pool's only worker is held (nothing is consumed, nothing allocated),
//! against a crossbeam-channel `send` of the same boxed closure with no
//! receiver running. Quoted in BENCHMARKS.md ("What is left on spawn").
//!
//!     cargo run --release -p kwq --example submit_cost
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
static C: AtomicUsize = AtomicUsize::new(0);
fn main() {
    let n = 1_000_000;
    for _ in 0..5 {
        let rt = kwq::RuntimeBuilder::new()
            .concurrency(1)
            .max_workers(2)
            .build()
            .unwrap();
        let wq = kwq::Workqueue::builder("s").runtime(&rt).build().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (stx, srx) = std::sync::mpsc::channel::<()>();
        wq.queue_fn(move || {
            stx.send(()).unwrap();
            rx.recv().unwrap();
        });
        srx.recv().unwrap();
        let t = Instant::now();
        for _ in 0..n {
            wq.queue_fn(|| {
                C.fetch_add(1, Ordering::Relaxed);
            });
        }
        let k = t.elapsed();
        tx.send(()).unwrap();
        wq.flush();
        let (ctx, crx) = crossbeam_channel::unbounded::<Box<dyn FnOnce() + Send>>();
        let t = Instant::now();
        for _ in 0..n {
            ctx.send(Box::new(|| {
                C.fetch_add(1, Ordering::Relaxed);
            }))
            .unwrap();
        }
        let c = t.elapsed();
        drop(crx);
        println!(
            "submit-only: kwq {:.1} ns/job   crossbeam send {:.1} ns/job",
            k.as_nanos() as f64 / n as f64,
            c.as_nanos() as f64 / n as f64
        );
    }
}
