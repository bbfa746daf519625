//! One-shot job executors behind one interface: kwq and its peers.

use crate::Failure;
use crossbeam_channel::{unbounded, Sender};
use std::thread::JoinHandle;

/// Something that runs `FnOnce` jobs on up to `threads` workers.
pub(crate) trait Spawner {
    fn spawn<F: FnOnce() + Send + 'static>(&self, f: F);
}

/// kwq: a dedicated runtime with `concurrency(T)` and one workqueue with the
/// default `max_active` (256).
pub(crate) struct Kwq {
    pub(crate) wq: kwq::Workqueue,
    pub(crate) rt: kwq::Runtime,
}

impl Kwq {
    pub(crate) fn new(threads: usize) -> Self {
        let rt = kwq::RuntimeBuilder::new()
            .concurrency(threads)
            .build()
            .expect("runtime");
        let wq = kwq::Workqueue::builder("bench")
            .runtime(&rt)
            .build()
            .expect("workqueue");
        Kwq { wq, rt }
    }
}

impl Spawner for Kwq {
    #[inline]
    fn spawn<F: FnOnce() + Send + 'static>(&self, f: F) {
        self.wq.queue_fn(f);
    }
}

/// rayon: `ThreadPool::spawn` on a pool of T threads.
pub(crate) struct Rayon(pub(crate) rayon::ThreadPool);

impl Rayon {
    pub(crate) fn new(threads: usize) -> Self {
        Rayon(
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("rayon pool"),
        )
    }
}

impl Spawner for Rayon {
    #[inline]
    fn spawn<F: FnOnce() + Send + 'static>(&self, f: F) {
        self.0.spawn(f);
    }
}

/// The `threadpool` crate.
pub(crate) struct ThreadPool(threadpool::ThreadPool);

impl ThreadPool {
    pub(crate) fn new(threads: usize) -> Self {
        ThreadPool(threadpool::ThreadPool::new(threads))
    }
}

impl Spawner for ThreadPool {
    #[inline]
    fn spawn<F: FnOnce() + Send + 'static>(&self, f: F) {
        self.0.execute(f);
    }
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The classic hand-rolled pool: T threads receiving boxed closures from one
/// unbounded crossbeam channel. With T = 1 it is the `handoff` floor: one
/// boxed closure handed to one other thread.
pub(crate) struct CrossbeamPool {
    tx: Option<Sender<Job>>,
    handles: Vec<JoinHandle<()>>,
}

impl CrossbeamPool {
    pub(crate) fn new(threads: usize) -> Self {
        let (tx, rx) = unbounded::<Job>();
        let handles = (0..threads)
            .map(|i| {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("cb-pool:{i}"))
                    .spawn(move || {
                        for job in rx {
                            job();
                        }
                    })
                    .expect("spawn")
            })
            .collect();
        CrossbeamPool {
            tx: Some(tx),
            handles,
        }
    }
}

impl Spawner for CrossbeamPool {
    #[inline]
    fn spawn<F: FnOnce() + Send + 'static>(&self, f: F) {
        let _ = self.tx.as_ref().expect("live").send(Box::new(f));
    }
}

impl Drop for CrossbeamPool {
    fn drop(&mut self) {
        self.tx.take();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

/// tokio `spawn_blocking` on a runtime with `max_blocking_threads(T)` (and
/// one, idle, async worker).
pub(crate) struct TokioBlocking(tokio::runtime::Runtime);

impl TokioBlocking {
    pub(crate) fn new(threads: usize) -> Self {
        TokioBlocking(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .max_blocking_threads(threads)
                .build()
                .expect("tokio runtime"),
        )
    }
}

impl Spawner for TokioBlocking {
    #[inline]
    fn spawn<F: FnOnce() + Send + 'static>(&self, f: F) {
        drop(self.0.spawn_blocking(f));
    }
}

/// Names of the one-shot executors [`with_spawner`] knows.
pub(crate) const SPAWNERS: [&str; 6] = [
    "kwq",
    "rayon",
    "threadpool",
    "crossbeam-pool",
    "tokio-spawn-blocking",
    "handoff",
];

/// Calls `body` with the executor named `imp`; returns the thread count it
/// really uses (the handoff floor always uses one worker).
pub(crate) fn with_spawner<R>(
    imp: &str,
    threads: usize,
    body: impl SpawnerFn<R>,
) -> Result<(R, usize), Failure> {
    Ok(match imp {
        "kwq" => (body.call(&Kwq::new(threads)), threads),
        "rayon" => (body.call(&Rayon::new(threads)), threads),
        "threadpool" => (body.call(&ThreadPool::new(threads)), threads),
        "crossbeam-pool" => (body.call(&CrossbeamPool::new(threads)), threads),
        "tokio-spawn-blocking" => (body.call(&TokioBlocking::new(threads)), threads),
        "handoff" => (body.call(&CrossbeamPool::new(1)), 1),
        _ => {
            return Err(Failure::Usage(format!(
                "unknown impl {imp:?} (one of: {})",
                SPAWNERS.join(", ")
            )))
        }
    })
}

/// A generic callback (closures cannot be generic over `S`).
pub(crate) trait SpawnerFn<R> {
    fn call<S: Spawner>(self, s: &S) -> R;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Nothing;

    impl SpawnerFn<()> for Nothing {
        fn call<S: Spawner>(self, s: &S) {
            let (tx, rx) = crossbeam_channel::bounded(1);
            s.spawn(move || {
                let _ = tx.send(());
            });
            rx.recv().expect("the spawned job runs");
        }
    }

    #[test]
    fn every_listed_spawner_exists_and_the_impl_lists_name_them() {
        for name in SPAWNERS {
            let (_, threads) = with_spawner(name, 2, Nothing).expect(name);
            assert_eq!(threads, if name == "handoff" { 1 } else { 2 });
            assert!(crate::spawn::IMPLS.contains(&name), "spawn lacks {name}");
            assert!(
                crate::latency::IMPLS.contains(&name),
                "latency lacks {name}"
            );
        }
        assert!(matches!(
            with_spawner("nope", 1, Nothing),
            Err(Failure::Usage(_))
        ));
    }
}
