use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
fn main() {
    let wq = kwq::Workqueue::builder("smoke").build().unwrap();
    let n = Arc::new(AtomicUsize::new(0));
    let t = std::time::Instant::now();
    for _ in 0..1_000_000 { let n = n.clone(); wq.queue_fn(move || { n.fetch_add(1, Ordering::Relaxed); }); }
    wq.flush();
    println!("jobs {} in {:?}", n.load(Ordering::Relaxed), t.elapsed());
    let c = Arc::new(AtomicUsize::new(0));
    let c2 = c.clone();
    let w = kwq::Work::new("w", move || { c2.fetch_add(1, Ordering::Relaxed); });
    let mut q = 0;
    for _ in 0..100000 { if wq.queue(&w) { q += 1; } }
    w.flush(); wq.flush();
    println!("work queued {q} ran {}", c.load(Ordering::Relaxed));
    println!("{}", kwq::Runtime::global().dump());
}
