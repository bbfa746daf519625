//! How worker threads are created: `std::thread::Builder` by default, or a
//! handler the program sets ([`RuntimeBuilder::spawn_handler`], after
//! rayon's `ThreadPoolBuilder::spawn_handler`) — to run workers in a
//! thread pool of its own, pin them, or, in tests, make creation fail on
//! demand.
//!
//! A failure to create a worker is never a panic: the pool reports it
//! ([`WarningKind::WorkerSpawnFailed`](crate::WarningKind::WorkerSpawnFailed)),
//! carries on with the workers it has, and tries again the next time it
//! needs one (the pool monitor retries while work waits and no worker
//! runs); the watchdog reports a pool that makes no progress meanwhile.
//!
//! [`RuntimeBuilder::spawn_handler`]: crate::RuntimeBuilder::spawn_handler

use crate::sync::atomic::{AtomicBool, Ordering::*};
use crate::sync::Arc;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A worker thread to start, handed to a
/// [`spawn_handler`](crate::RuntimeBuilder::spawn_handler).
///
/// The handler starts a thread (its own way) that calls
/// [`run`](ThreadSpawn::run), and returns `Ok(())`; or returns an error
/// without calling `run`, and the pool goes on without that worker.
pub struct ThreadSpawn {
    name: String,
    stack_size: Option<usize>,
    main: Box<dyn FnOnce() + Send + 'static>,
}

impl ThreadSpawn {
    /// The name kwq gives the thread (`PREFIX/POOL:ID`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The stack size set with
    /// [`RuntimeBuilder::stack_size`](crate::RuntimeBuilder::stack_size),
    /// if any.
    pub fn stack_size(&self) -> Option<usize> {
        self.stack_size
    }

    /// Runs the worker on the calling thread until it exits.
    pub fn run(self) {
        (self.main)();
    }
}

impl std::fmt::Debug for ThreadSpawn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadSpawn")
            .field("name", &self.name)
            .field("stack_size", &self.stack_size)
            .finish_non_exhaustive()
    }
}

pub(crate) type SpawnHandler = Arc<dyn Fn(ThreadSpawn) -> io::Result<()> + Send + Sync + 'static>;

/// Starts `main` on a new thread, through `handler` if there is one.
pub(crate) fn spawn(
    handler: Option<&SpawnHandler>,
    name: String,
    stack_size: Option<usize>,
    main: impl FnOnce() + Send + 'static,
) -> io::Result<()> {
    let Some(handler) = handler else {
        let mut b = crate::sync::thread::Builder::new().name(name);
        if let Some(bytes) = stack_size {
            b = b.stack_size(bytes);
        }
        return b.spawn(main).map(drop);
    };
    // A handler that calls `run` and still returns an error has started the
    // worker all the same: believe the thread, not the result.
    let started = Arc::new(AtomicBool::new(false));
    let s = started.clone();
    let req = ThreadSpawn {
        name,
        stack_size,
        main: Box::new(move || {
            s.store(true, SeqCst);
            main();
        }),
    };
    let result = match catch_unwind(AssertUnwindSafe(|| handler(req))) {
        Ok(r) => r,
        Err(p) => {
            let msg = crate::report::panic_message(&*p);
            crate::report::drop_contained(p, "a spawn handler's panic payload");
            Err(io::Error::other(format!(
                "the spawn handler panicked: {msg}"
            )))
        }
    };
    match result {
        Err(_) if started.load(SeqCst) => Ok(()),
        r => r,
    }
}
