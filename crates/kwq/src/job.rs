//! One-shot jobs without a heap allocation per job.
//!
//! [`Workqueue::queue_fn`](crate::Workqueue::queue_fn) takes any
//! `FnOnce() + Send + 'static`. Boxing it would cost a `malloc` on the
//! submitting thread and a `free` on the worker for every job — and since
//! the two are different threads, glibc's per-thread caches never recycle
//! the chunk: profiling the spawn benchmark showed the allocator taking
//! about half of the submitter's time. Most closures handed to a workqueue
//! capture a pointer or two (an `Arc`, a reference, an index), so [`Job`]
//! stores closures of up to [`INLINE_WORDS`] machine words *inline*, in the
//! worklist slot itself, and boxes only bigger or over-aligned ones.
//!
//! # Representation and invariants
//!
//! A `Job` is a pointer to a per-closure-type [`VTable`] plus a buffer of
//! [`INLINE_WORDS`] `usize`s (so the buffer is word-aligned). Invariants:
//!
//! 1. `buf` holds exactly one initialised value of the type `F` that
//!    `vtable` was made for, at offset 0; `size_of::<F>() <= size_of(buf)`
//!    and `align_of::<F>() <= align_of::<usize>()`. (A closure that does
//!    not fit is stored as `Box<F>`, a single word, and `F` above *is*
//!    `Box<F>`.)
//! 2. That value is consumed exactly once: by [`Job::run`], which forgets
//!    the `Job` before moving the value out, or by `Drop`.
//! 3. `Job: Send` because `F: Send` is required by every constructor (a
//!    `PhantomData<*mut ()>` field removes the auto traits, so the
//!    `unsafe impl Send` is what carries that proof). `Job` is not `Sync`.
//!
//! 4. Except the *marker* ([`Job::marker`]): a job with an uninitialised
//!    buffer and a vtable of its own whose functions touch nothing. A
//!    worker tells it apart by that vtable's address
//!    ([`Job::is_marker`]) and never runs it as a closure: it stands for a
//!    rescuer queue's pull token (`task.rs`), which thereby needs no third
//!    `Payload` variant — a third variant would break the niche in the
//!    vtable pointer and make every worklist slot 8 bytes bigger (measured:
//!    15% of `spawn` throughput on 2 CPUs).
//!
//! All `unsafe` in kwq's job path is in this file.

use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};

/// Closures of at most this many words are stored inline.
pub(crate) const INLINE_WORDS: usize = 3;

type Buf = [MaybeUninit<usize>; INLINE_WORDS];

/// What a `Job` knows about the closure type it holds.
struct VTable {
    /// Moves the closure out of the buffer and calls it.
    call: unsafe fn(*mut Buf),
    /// Drops the closure in place without calling it.
    drop: unsafe fn(*mut Buf),
}

/// Per-type vtable; `&VTableFor::<F>::VTABLE` is promoted to a `'static`.
struct VTableFor<F>(std::marker::PhantomData<F>);

impl<F: FnOnce()> VTableFor<F> {
    const VTABLE: VTable = VTable {
        call: call_inline::<F>,
        drop: drop_inline::<F>,
    };
}

/// # Safety
/// `buf` holds an initialised `F` (invariant 1) that is never used again.
unsafe fn call_inline<F: FnOnce()>(buf: *mut Buf) {
    // SAFETY: by the caller's contract the buffer starts with a live,
    // suitably aligned `F` which this read takes ownership of.
    let f = unsafe { buf.cast::<F>().read() };
    f();
}

/// # Safety
/// As for [`call_inline`].
unsafe fn drop_inline<F>(buf: *mut Buf) {
    // SAFETY: by the caller's contract the buffer starts with a live,
    // suitably aligned `F` which is dropped exactly once here.
    unsafe { buf.cast::<F>().drop_in_place() }
}

/// The marker's vtable (invariant 4): a `static`, so its address is unique.
static MARKER: VTable = VTable {
    call: touch_nothing,
    drop: touch_nothing,
};

/// # Safety
/// Always safe: the marker's buffer holds nothing and nothing is read.
unsafe fn touch_nothing(_: *mut Buf) {}

/// Whether `F` can live in the inline buffer.
const fn fits<F>() -> bool {
    size_of::<F>() <= size_of::<Buf>() && align_of::<F>() <= align_of::<Buf>()
}

/// A type-erased `FnOnce() + Send + 'static`, inline when small.
pub(crate) struct Job {
    vtable: &'static VTable,
    buf: Buf,
    /// Opts out of the auto traits: the buffer's contents are only known to
    /// be `Send` because every constructor demands it (invariant 3), so
    /// `Send` is asserted below and `Sync` is not implemented at all.
    _not_auto: std::marker::PhantomData<*mut ()>,
}

// SAFETY: every constructor requires `F: Send` (invariant 3); the buffer is
// only touched through `&mut self` / by value.
unsafe impl Send for Job {}

impl Job {
    /// Wraps `f`, inline if it fits, else boxed.
    #[inline]
    pub(crate) fn new<F: FnOnce() + Send + 'static>(f: F) -> Job {
        if fits::<F>() {
            Job::inline(f)
        } else {
            Job::inline(Box::new(f))
        }
    }

    /// The marker job (invariant 4): runs nothing, drops nothing.
    pub(crate) fn marker() -> Job {
        Job {
            vtable: &MARKER,
            buf: [MaybeUninit::uninit(); INLINE_WORDS],
            _not_auto: std::marker::PhantomData,
        }
    }

    /// Is this the marker job?
    #[inline]
    pub(crate) fn is_marker(&self) -> bool {
        std::ptr::eq(self.vtable, &MARKER)
    }

    /// Whether a closure of type `F` is stored without an allocation.
    #[cfg(test)]
    pub(crate) const fn is_inline<F>() -> bool {
        fits::<F>()
    }

    #[inline]
    fn inline<F: FnOnce() + Send + 'static>(f: F) -> Job {
        assert!(fits::<F>(), "job closure does not fit inline");
        let mut buf: Buf = [MaybeUninit::uninit(); INLINE_WORDS];
        // SAFETY: `fits::<F>()` was just checked, so `F` fits in `buf` at
        // offset 0 with its alignment; the buffer is uninitialised, so
        // nothing is overwritten. This establishes invariant 1.
        unsafe { buf.as_mut_ptr().cast::<F>().write(f) };
        Job {
            vtable: &VTableFor::<F>::VTABLE,
            buf,
            _not_auto: std::marker::PhantomData,
        }
    }

    /// Calls the closure, consuming it.
    #[inline]
    pub(crate) fn run(self) {
        let mut this = ManuallyDrop::new(self);
        let call = this.vtable.call;
        // SAFETY: `this` is never dropped (ManuallyDrop) nor used again, so
        // the closure in `buf` is consumed exactly once, here (invariant 2).
        // If the closure panics, it has already been moved out of `buf`, so
        // unwinding drops it once, from `call_inline`'s frame.
        unsafe { call(&mut this.buf) }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        // SAFETY: a `Job` that is dropped was never `run` (which forgets
        // it), so `buf` still holds its live closure (invariants 1, 2).
        unsafe { (self.vtable.drop)(&mut self.buf) }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;

    /// Counts drops of whatever captures it.
    struct Token(Arc<AtomicUsize>);
    impl Drop for Token {
        fn drop(&mut self) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    #[test]
    fn only_the_marker_is_a_marker() {
        let m = Job::marker();
        assert!(m.is_marker());
        m.run();
        drop(Job::marker());
        assert!(!Job::new(|| {}).is_marker());
        assert!(!Job::new(move || drop(String::from("boxed? no: one word"))).is_marker());
    }

    #[test]
    fn sizes_decide_inline_or_boxed() {
        assert!(Job::is_inline::<fn()>());
        assert!(Job::is_inline::<[u64; 3]>());
        assert!(!Job::is_inline::<[u64; 4]>());
        #[repr(align(16))]
        struct Wide(#[allow(dead_code)] u8);
        assert!(!Job::is_inline::<Wide>());
        assert_eq!(size_of::<Job>(), (INLINE_WORDS + 1) * size_of::<usize>());
    }

    /// Runs a job capturing `payload` and checks that the closure ran once
    /// and every capture was dropped exactly once.
    fn run_once_drop_once<P: Send + 'static>(payload: P) {
        let drops = Arc::new(AtomicUsize::new(0));
        let ran = Arc::new(AtomicUsize::new(0));
        let t = Token(drops.clone());
        let r = ran.clone();
        let job = Job::new(move || {
            std::hint::black_box((&t, &payload));
            r.fetch_add(1, SeqCst);
        });
        assert_eq!(drops.load(SeqCst), 0);
        job.run();
        assert_eq!(ran.load(SeqCst), 1);
        assert_eq!(drops.load(SeqCst), 1);
    }

    #[test]
    fn runs_once_and_drops_captures_once_at_every_size() {
        run_once_drop_once(());
        run_once_drop_once(7u8);
        run_once_drop_once([1u64; 1]);
        run_once_drop_once([1u64; 8]);
        run_once_drop_once(String::from("captured"));
        #[repr(align(32))]
        struct Aligned(u64);
        let a = Aligned(5);
        assert_eq!(&a as *const Aligned as usize % 32, 0);
        let drops = Arc::new(AtomicUsize::new(0));
        let t = Token(drops.clone());
        Job::new(move || {
            std::hint::black_box(&t);
            // An over-aligned capture must still be aligned where it lives.
            assert_eq!(&a as *const Aligned as usize % 32, 0);
            assert_eq!(a.0, 5);
        })
        .run();
        assert_eq!(drops.load(SeqCst), 1);
    }

    #[test]
    fn dropping_unrun_job_drops_captures_once() {
        for big in [false, true] {
            let drops = Arc::new(AtomicUsize::new(0));
            let t = Token(drops.clone());
            let pad = [0u64; 6];
            let job = if big {
                Job::new(move || {
                    std::hint::black_box((&t, &pad));
                    unreachable!("never run")
                })
            } else {
                Job::new(move || {
                    std::hint::black_box(&t);
                    unreachable!("never run")
                })
            };
            drop(job);
            assert_eq!(drops.load(SeqCst), 1, "big = {big}");
        }
    }

    #[test]
    fn panicking_job_drops_captures_once() {
        for big in [false, true] {
            let drops = Arc::new(AtomicUsize::new(0));
            let t = Token(drops.clone());
            let pad = [0u64; 6];
            let job = Job::new(move || {
                std::hint::black_box(&t);
                if big {
                    std::hint::black_box(&pad);
                }
                panic!("job panics");
            });
            let r = catch_unwind(AssertUnwindSafe(|| job.run()));
            assert!(r.is_err());
            assert_eq!(drops.load(SeqCst), 1, "big = {big}");
        }
    }

    #[test]
    fn jobs_cross_threads() {
        let sum = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<Job> = (0..100)
            .map(|i| {
                let s = sum.clone();
                Job::new(move || {
                    s.fetch_add(i, SeqCst);
                })
            })
            .collect();
        std::thread::spawn(move || jobs.into_iter().for_each(Job::run))
            .join()
            .unwrap();
        assert_eq!(sum.load(SeqCst), (0..100).sum());
    }
}
