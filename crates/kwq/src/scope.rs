//! Scoped jobs: one-shot closures that borrow from the caller's stack.
//!
//! Protocol (the soundness argument). [`scope`] hands its closure a
//! `&Scope` that cannot escape it (the `'scope` lifetime is chosen by the
//! callee, as in `std::thread::scope`). Each [`Scope::queue_fn`] increments
//! the scope's `pending` count, erases the job's lifetime to `'static` and
//! queues it wrapped in a `ScopedJob`, whose fields drop in order: first the
//! user closure (consumed by the call, or dropped unrun if the queue refused
//! it or its pool shut down), then the `Pending` guard, which decrements
//! `pending` and wakes the scope's owner. `scope` returns only after
//! `pending` reached zero — also when its closure panicked — so every
//! erased closure has been run or dropped, and nothing it borrowed is used
//! afterwards. If the runtime never ran nor dropped a job, `scope` would
//! wait forever: a hang, never a dangling borrow.
//!
//! A job's panic is caught on the worker, kept (the first one), and
//! re-raised by `scope` on the caller's thread after every job finished,
//! as `std::thread::scope` does; later payloads are dropped there.

use crate::sync::atomic::{AtomicUsize, Ordering::*};
use crate::sync::{Arc, Condvar, Mutex};
use crate::Workqueue;
use std::any::Any;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

struct Shared {
    pending: AtomicUsize,
    lock: Mutex<Vec<Box<dyn Any + Send + 'static>>>,
    zero: Condvar,
}

/// Decrements the scope's count when dropped (after the job's closure).
struct Pending(Arc<Shared>);

impl Drop for Pending {
    fn drop(&mut self) {
        // Under the lock, so the owner cannot miss the wake-up between its
        // check and its wait.
        let _g = self.0.lock.lock();
        if self.0.pending.fetch_sub(1, AcqRel) == 1 {
            self.0.zero.notify_all();
        }
    }
}

/// A queued scoped job. Field order matters: `f` drops before `pending`.
struct ScopedJob {
    f: Box<dyn FnOnce() + Send + 'static>,
    pending: Pending,
}

impl ScopedJob {
    fn run(self) {
        let ScopedJob { f, pending } = self;
        if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
            pending.0.lock.lock().push(p);
        }
        drop(pending);
    }
}

/// A scope in which jobs may borrow anything that outlives it; see
/// [`scope`].
pub struct Scope<'scope, 'env: 'scope> {
    shared: Arc<Shared>,
    // Invariant in both lifetimes, as `std::thread::Scope`.
    scope: PhantomData<&'scope mut &'scope ()>,
    env: PhantomData<&'env mut &'env ()>,
}

impl std::fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scope")
            .field("pending", &self.shared.pending.load(Relaxed))
            .finish()
    }
}

impl<'scope> Scope<'scope, '_> {
    /// Queues `f` on `wq`; `f` may borrow from outside the scope. Returns
    /// `false` (dropping `f` at once) if the queue refuses work, as
    /// [`Workqueue::queue_fn`] does.
    pub fn queue_fn<F>(&'scope self, wq: &Workqueue, f: F) -> bool
    where
        F: FnOnce() + Send + 'scope,
    {
        self.shared.pending.fetch_add(1, Relaxed);
        let f: Box<dyn FnOnce() + Send + 'scope> = Box::new(f);
        // SAFETY: only the lifetime changes. `scope` does not return before
        // this job's `Pending` guard dropped, which happens after `f` was
        // consumed or dropped (field order of `ScopedJob`; see the module
        // docs), so `f` is never used after `'scope` ends.
        let f: Box<dyn FnOnce() + Send + 'static> = unsafe { std::mem::transmute(f) };
        let job = ScopedJob {
            f,
            pending: Pending(self.shared.clone()),
        };
        wq.queue_fn(move || job.run())
    }
}

/// Runs `f` with a [`Scope`] on which it can queue one-shot jobs that
/// borrow from the caller (the kwq counterpart of `std::thread::scope` and
/// `rayon::scope`), and returns once every such job has finished.
///
/// Waiting counts as [`blocking`](crate::blocking) when called on a kwq
/// worker. If a job panicked, the first panic is re-raised here after all
/// jobs finished; a panic in `f` itself is re-raised after that.
///
/// ```
/// let wq = kwq::Workqueue::builder("sum").build()?;
/// let data = vec![1u64, 2, 3, 4, 5, 6];
/// let mut halves = [0u64; 2];
/// let (left, right) = halves.split_at_mut(1);
/// kwq::scope(|s| {
///     s.queue_fn(&wq, || left[0] = data[..3].iter().sum());
///     s.queue_fn(&wq, || right[0] = data[3..].iter().sum());
/// });
/// assert_eq!(halves, [6, 15]);
/// # Ok::<(), kwq::BuildError>(())
/// ```
///
/// # Panics
///
/// Re-raises the first panic of a job, or of `f`.
pub fn scope<'env, F, R>(f: F) -> R
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
{
    let scope = Scope {
        shared: Arc::new(Shared {
            pending: AtomicUsize::new(0),
            lock: Mutex::new(Vec::new()),
            zero: Condvar::new(),
        }),
        scope: PhantomData,
        env: PhantomData,
    };
    let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
    let shared = &scope.shared;
    let mut panics = crate::current::blocking(|| {
        let mut g = shared.lock.lock();
        while shared.pending.load(Acquire) != 0 {
            g = shared.zero.wait(g);
        }
        std::mem::take(&mut *g)
    });
    let first = (!panics.is_empty()).then(|| panics.remove(0));
    drop(panics);
    if let Some(p) = first {
        resume_unwind(p);
    }
    match result {
        Ok(r) => r,
        Err(p) => resume_unwind(p),
    }
}
