//! Delayed work and the shared timer.
//!
//! A [`DelayedWork`] is a [`Work`] item that can also be queued *after a
//! delay* (kernel `struct delayed_work`). Its pending instance then sits on
//! one process-wide timer — a single thread sleeping until the earliest
//! deadline of a binary heap — instead of a worklist.
//!
//! # Protocol
//!
//! The timer stage of an instance is recorded in the item's slot
//! (`Slot::timer = Some((seq, workqueue))`), and every change to it happens
//! under the slot lock: arming (`queue_delayed`, `mod_delayed`), firing (the
//! timer thread), firing early (`flush`), and cancelling. So exactly one of
//! them moves the instance to the worklist, and a heap entry whose `seq` no
//! longer matches the slot is simply dropped when its deadline comes.
//! `mod_delayed` replaces the pending instance with a new `seq`, which makes
//! every older token — on the heap, on a worklist, or parked — stale.
//!
//! Superseded and cancelled entries stay on the heap (holding a reference
//! to the item, and so its closure) until their deadline or until the heap
//! is next pruned: whenever arming finds the heap at twice the size it had
//! after the last pruning (and at least [`PRUNE_MIN`] entries), it drops
//! every entry whose `seq` no longer matches its item's slot. Lock order:
//! heap, then slot (nobody takes the heap lock while holding a slot lock).
//! Memory stays proportional to the armed instances, at an amortised O(1)
//! per arm.
//!
//! # User code on the timer thread
//!
//! The timer thread runs no closure, but it may drop the last reference to
//! an item (a stale entry of a cancelled or re-armed item whose handles are
//! gone, or a fired one whose run already finished), and with it the
//! item's closure: user data. Every entry is handled and dropped under
//! `catch_unwind`; a panicking destructor is reported (`DropPanicked`,
//! through the hooks of the entry's runtime while it exists) and the thread
//! goes on. Entries hold their workqueue weakly, so a far-future deadline
//! keeps neither a dropped workqueue nor its runtime's workers alive; any
//! delay is accepted (a deadline past what `Instant` can represent
//! saturates to the farthest one it can).

use crate::error::QueueError;
use crate::report::{Hooks, Warning, WarningKind};
use crate::runtime::Config;
use crate::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use crate::sync::{downgrade, Arc, Condvar, Mutex, Weak};
use crate::work::state::TransitionToPending;
use crate::work::{Work, WorkInner};
use crate::workqueue::{Workqueue, WqInner};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

/// `now + delay`, saturated to the farthest `Instant` representable: any
/// delay is legal, and `queue_delayed` has no error to return.
fn deadline_after(delay: Duration) -> Instant {
    let now = Instant::now();
    let mut d = delay;
    loop {
        if let Some(t) = now.checked_add(d) {
            return t;
        }
        d /= 2;
    }
}

/// A work item that can be queued after a delay (kernel `delayed_work`).
///
/// ```
/// use std::time::{Duration, Instant};
/// let wq = kwq::Workqueue::builder("timers").build().unwrap();
/// let start = Instant::now();
/// let d = kwq::DelayedWork::new("later", move || {
///     assert!(start.elapsed() >= Duration::from_millis(20));
/// });
/// assert!(wq.queue_delayed(&d, Duration::from_millis(20)));
/// d.flush(); // fires it now, then waits for it
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DelayedWork {
    work: Work,
}

impl DelayedWork {
    /// Creates a delayed work item.
    pub fn new<F>(name: impl Into<String>, f: F) -> DelayedWork
    where
        F: FnMut() + Send + 'static,
    {
        DelayedWork {
            work: Work::new(name, f),
        }
    }

    /// The underlying work item; queueing it directly runs it without delay.
    pub fn work(&self) -> &Work {
        &self.work
    }

    /// The item's name.
    pub fn name(&self) -> &str {
        self.work.name()
    }

    /// Is an instance pending (on the timer or queued)?
    pub fn is_pending(&self) -> bool {
        self.work.is_pending()
    }

    /// Removes a pending instance (disarming the timer) without waiting for a
    /// running one (kernel `cancel_delayed_work`, WQ-13). Returns whether one
    /// was pending.
    pub fn cancel(&self) -> bool {
        self.work.cancel()
    }

    /// Removes a pending instance and waits for a running one (kernel
    /// `cancel_delayed_work_sync`). Returns whether one was pending.
    ///
    /// # Panics
    ///
    /// If called from the item's own function.
    pub fn cancel_sync(&self) -> bool {
        self.work.inner.cancel_sync("DelayedWork::cancel_sync")
    }

    /// If the instance is waiting on the timer, queues it now; then waits
    /// for it to finish (kernel `flush_delayed_work`). Returns `false` if the
    /// item was idle.
    ///
    /// # Panics
    ///
    /// Like [`Work::flush`].
    pub fn flush(&self) -> bool {
        let item = &self.work.inner;
        // What "pending at call time" means is fixed now, before firing: the
        // fired instance may finish before we get to wait for it.
        let at_call = item.state.load();
        let fire = {
            let mut slot = item.slot.lock();
            match slot.timer.take() {
                Some((seq, wq)) if item.state.load().is_live(seq) => Some((seq, wq)),
                _ => None,
            }
        };
        if let Some((seq, wq)) = fire {
            enqueue_or_abandon(&wq, item, seq, None);
        }
        item.flush_from(at_call, "DelayedWork::flush")
    }
}

/// Moves a delayed instance to its workqueue, or drops it (with a warning)
/// if the workqueue refuses work now or is gone (reported to `hooks`, the
/// runtime the instance was armed on, if it still exists).
fn enqueue_or_abandon(wq: &Weak<WqInner>, item: &Arc<WorkInner>, seq: u64, hooks: Option<&Hooks>) {
    let Some(wq) = wq.upgrade() else {
        let w = Warning::new(
            WarningKind::DelayedDropped,
            format!(
                "delayed work '{}' dropped: its workqueue was dropped",
                item.name()
            ),
        )
        .of_work(item.name());
        match hooks {
            Some(h) => h.warn(w),
            None => crate::report::trace_warning(&w),
        }
        if item.state.load().is_live(seq) {
            let _ = item.cancel();
        }
        return;
    };
    match wq.check_accepting() {
        Ok(()) => wq.enqueue_work(item.clone(), seq),
        Err(e) => {
            wq.warn(
                Warning::new(
                    WarningKind::DelayedDropped,
                    format!("delayed work '{}' dropped: {e}", item.name()),
                )
                .of_work(item.name()),
            );
            if item.state.load().is_live(seq) {
                let _ = item.cancel();
            }
        }
    }
}

struct Entry {
    deadline: Instant,
    order: u64,
    item: Arc<WorkInner>,
    seq: u64,
    /// The configuration of the runtime it was armed on: where problems
    /// are reported (weak, like the slot's workqueue).
    cfg: Weak<Config>,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Self) -> bool {
        (self.deadline, self.order) == (o.deadline, o.order)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Entry {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.deadline, self.order).cmp(&(o.deadline, o.order))
    }
}

struct Timer {
    heap: Mutex<BinaryHeap<Reverse<Entry>>>,
    cv: Condvar,
    order: AtomicU64,
    /// Heap size at which the next arm prunes stale entries (written under
    /// the heap lock).
    prune_at: AtomicUsize,
    /// The timer thread runs. Until it does (its creation failed), entries
    /// wait in the heap and every `arm` tries to start it again.
    started: AtomicBool,
    /// Serialises attempts to start the thread.
    starting: Mutex<()>,
}

/// The heap is never pruned below this size.
const PRUNE_MIN: usize = 1024;

impl Entry {
    /// Is this entry's instance still the one armed on its item?
    fn is_armed(&self) -> bool {
        matches!(&self.item.slot.lock().timer, Some((seq, _)) if *seq == self.seq)
    }
}

static TIMER: crate::sync::OnceLock<Arc<Timer>> = crate::sync::OnceLock::new();

crate::sync::thread_local! {
    /// Set on the timer thread, where user code (a hook, a destructor) must
    /// not wait for an instance armed on the timer: it would wait for the
    /// very thread it runs on.
    static ON_TIMER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Is the calling thread the timer thread?
pub(crate) fn on_timer_thread() -> bool {
    ON_TIMER.try_with(|t| t.get()).unwrap_or(false)
}

fn timer() -> &'static Arc<Timer> {
    TIMER.get_or_init(|| {
        Arc::new(Timer {
            heap: Mutex::new(BinaryHeap::new()),
            cv: Condvar::new(),
            order: AtomicU64::new(0),
            prune_at: AtomicUsize::new(PRUNE_MIN),
            started: AtomicBool::new(false),
            starting: Mutex::new(()),
        })
    })
}

/// Arms the process-wide timer, starting its thread if needed.
fn arm_timer(deadline: Instant, item: Arc<WorkInner>, seq: u64, wq: &Arc<WqInner>) {
    let t = timer();
    t.arm(deadline, item, seq, wq);
    ensure_timer_thread(t, wq);
}

/// Starts the process-wide timer thread unless it runs. A failure is never
/// a panic: it is reported on `wq`'s runtime, the entry waits in the heap,
/// and the next `arm` tries again.
fn ensure_timer_thread(t: &Arc<Timer>, wq: &WqInner) {
    if t.started.load(Acquire) {
        return;
    }
    let guard = t.starting.lock();
    if t.started.load(Acquire) {
        return;
    }
    let t2 = t.clone();
    match crate::sync::thread::Builder::new()
        .name("kwq/timer".into())
        .spawn(move || t2.run())
    {
        Ok(_) => t.started.store(true, Release),
        Err(e) => {
            drop(guard);
            wq.warn(Warning::new(
                WarningKind::ThreadSpawnFailed,
                format!(
                    "could not start the delayed-work timer thread ({e}); delayed items wait \
                     until a later queue_delayed can start it"
                ),
            ));
        }
    }
}

impl Timer {
    fn arm(&self, deadline: Instant, item: Arc<WorkInner>, seq: u64, wq: &Arc<WqInner>) {
        let order = self.order.fetch_add(1, Relaxed);
        let mut heap = self.heap.lock();
        let earliest = heap.peek().is_none_or(|Reverse(e)| deadline < e.deadline);
        heap.push(Reverse(Entry {
            deadline,
            order,
            item,
            seq,
            cfg: downgrade(&wq.pool.cfg),
        }));
        let stale = if heap.len() >= self.prune_at.load(Relaxed) {
            let (live, stale): (Vec<_>, Vec<_>) = std::mem::take(&mut *heap)
                .into_vec()
                .into_iter()
                .partition(|Reverse(e)| e.is_armed());
            *heap = BinaryHeap::from(live);
            self.prune_at
                .store((heap.len() * 2).max(PRUNE_MIN), Relaxed);
            stale
        } else {
            Vec::new()
        };
        drop(heap);
        if earliest {
            self.cv.notify_one();
        }
        // Outside the heap lock: a stale entry may hold an item's last
        // reference, and its closure's destructor is user code.
        for Reverse(e) in stale {
            drop_entry(e);
        }
    }

    fn run(&self) {
        ON_TIMER.with(|t| t.set(true));
        let mut heap = self.heap.lock();
        loop {
            let now = Instant::now();
            match heap.peek() {
                None => heap = self.cv.wait(heap),
                Some(Reverse(e)) if e.deadline > now => {
                    let d = e.deadline - now;
                    heap = self.cv.wait_timeout(heap, d);
                }
                Some(_) => {
                    let Reverse(e) = heap.pop().expect("peeked");
                    drop(heap);
                    fire_contained(e);
                    heap = self.heap.lock();
                }
            }
        }
    }
}

/// Fires `e` and drops it; the drop may be the item's last reference (a
/// stale entry, or a fired one whose run already ended), so it goes
/// through `drop_contained`, reported to the entry's runtime while it
/// exists (see the module docs). `fire` makes no other user drop outside
/// containment; a panic out of it would be a kwq bug, and is contained too
/// so that no other delayed item in the process stops firing.
fn fire_contained(e: Entry) {
    let hooks = e.cfg.upgrade().map(|cfg| cfg.hooks.clone());
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| fire(&e, hooks.as_ref()))) {
        crate::report::trace_warning(&Warning::new(
            WarningKind::DropPanicked,
            format!(
                "kwq bug: firing delayed work '{}' panicked: {}",
                e.item.name(),
                crate::report::panic_message(&*p)
            ),
        ));
        crate::report::drop_contained(p, "a panic payload");
    }
    drop_entry(e);
    // The runtime's hooks may own user data too (the last reference to the
    // runtime's configuration, if it was dropped meanwhile).
    crate::report::drop_contained(hooks, "a runtime's hooks");
}

/// Drops a heap entry (possibly the item's last reference) contained,
/// reporting to the runtime it was armed on while that exists.
fn drop_entry(e: Entry) {
    let hooks = e.cfg.upgrade().map(|cfg| cfg.hooks.clone());
    let what = "a delayed work item (dropped by the timer)";
    match &hooks {
        Some(h) => h.drop_contained(e, what),
        None => crate::report::drop_contained(e, what),
    }
    // The runtime's hooks may own user data too (the last reference to the
    // runtime's configuration, if it was dropped meanwhile).
    crate::report::drop_contained(hooks, "a runtime's hooks");
}

fn fire(e: &Entry, hooks: Option<&Hooks>) {
    let target = {
        let mut slot = e.item.slot.lock();
        match &slot.timer {
            Some((seq, _)) if *seq == e.seq && e.item.state.load().is_live(e.seq) => {
                slot.timer.take().map(|(_, wq)| wq)
            }
            _ => None,
        }
    };
    if let Some(wq) = target {
        enqueue_or_abandon(&wq, &e.item, e.seq, hooks);
    }
}

impl Workqueue {
    /// Queues `d` to run after `delay` (kernel `queue_delayed_work`, WQ-14).
    /// Returns `false` if an instance was already pending (the existing
    /// timer is left alone; see [`mod_delayed`](Workqueue::mod_delayed)).
    /// A zero delay queues immediately; any delay is accepted (one past
    /// what the clock can represent saturates to its farthest deadline).
    pub fn queue_delayed(&self, d: &DelayedWork, delay: Duration) -> bool {
        match self.try_queue_delayed(d, delay) {
            Ok(q) => q,
            Err(e) => {
                self.inner.warn(
                    Warning::new(
                        WarningKind::QueueRefused,
                        format!("delayed work '{}' not queued: {e}", d.name()),
                    )
                    .of_work(d.name()),
                );
                false
            }
        }
    }

    /// Like [`queue_delayed`](Workqueue::queue_delayed), reporting a
    /// refusing queue as an error.
    ///
    /// # Errors
    ///
    /// A [`QueueError`] if the workqueue is draining or destroyed; nothing
    /// was queued.
    pub fn try_queue_delayed(&self, d: &DelayedWork, delay: Duration) -> Result<bool, QueueError> {
        self.inner.check_accepting()?;
        let item = &d.work.inner;
        if delay.is_zero() {
            return self.try_queue(&d.work);
        }
        let deadline = deadline_after(delay);
        let seq = {
            let mut slot = item.slot.lock();
            match item.state.transition_to_pending() {
                TransitionToPending::Queued { seq } => {
                    slot.timer = Some((seq, downgrade(&self.inner)));
                    seq
                }
                _ => return Ok(false),
            }
        };
        item.last_wq.store(self.inner.id, Release);
        arm_timer(deadline, item.clone(), seq, &self.inner);
        Ok(true)
    }

    /// Re-arms `d` to run after `delay` from now, whether or not it was
    /// pending (kernel `mod_delayed_work`). Returns `true` if a pending
    /// instance was replaced, `false` if `d` was idle (and is now queued) or
    /// if a `cancel_sync` is in progress or the queue refuses work.
    pub fn mod_delayed(&self, d: &DelayedWork, delay: Duration) -> bool {
        if let Err(e) = self.inner.check_accepting() {
            self.inner.warn(
                Warning::new(
                    WarningKind::QueueRefused,
                    format!("delayed work '{}' not queued: {e}", d.name()),
                )
                .of_work(d.name()),
            );
            return false;
        }
        let item = &d.work.inner;
        let deadline = deadline_after(delay);
        let mut slot = item.slot.lock();
        let Some((seq, was_pending, was_parked)) = item.state.transition_to_repending() else {
            return false;
        };
        let parked = if was_parked { slot.parked.take() } else { None };
        if delay.is_zero() {
            slot.timer = None;
            drop(slot);
            self.inner.enqueue_work(item.clone(), seq);
        } else {
            slot.timer = Some((seq, downgrade(&self.inner)));
            drop(slot);
            item.last_wq.store(self.inner.id, Release);
            arm_timer(deadline, item.clone(), seq, &self.inner);
        }
        if let Some(t) = parked {
            t.wq.clone().retire(t);
        }
        was_pending
    }
}
