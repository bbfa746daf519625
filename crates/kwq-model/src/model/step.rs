//! The transition relation: [`enabled_actions`] and the pure [`step`].
//!
//! Every function here is a pure function of its arguments: no threads, no
//! clocks, no randomness, no iteration over hash maps. Enabled actions are
//! listed in a fixed order (environment actors first, then the pool, then
//! workers by index), which the explorers and the determinism self-check
//! rely on.

use super::action::{Action, Event, LoopExit};
use super::state::{
    Current, Item, ItemId, Origin, Pc, Slot, State, Wait, Worker, WorkerId, DONE, HELD, INACTIVE,
    ORDERED_COMPLETE, ORDER_DONE, PARKED, PENDING, RUNNING,
};
use crate::setup::{AllocPolicy, Scenario, WorkType};
use std::fmt;

/// The slots an allocation may get now: the most recently freed one (LIFO)
/// or, under `Any`, every free slot and a fresh one.
#[must_use]
pub fn alloc_choices(s: &State) -> Vec<Slot> {
    let fresh = Slot(s.next_slot);
    match s.setup.alloc {
        AllocPolicy::Lifo => vec![s.free.last().copied().unwrap_or(fresh)],
        AllocPolicy::Any => s.free.iter().copied().chain([fresh]).collect(),
    }
}

/// Every action enabled in `s`, in a fixed order.
#[must_use]
pub fn enabled_actions(s: &State) -> Vec<Action> {
    let mut v = Vec::new();
    if s.queued < s.setup.items {
        for slot in alloc_choices(s) {
            v.push(Action::Writeback { slot });
        }
    }
    for (i, it) in s.items.iter().enumerate() {
        if it.origin == Origin::EndIo && it.work == 0 && it.btrfs & DONE == 0 && !it.is_freed() {
            v.push(Action::ReadComplete(ItemId(i as u8)));
        }
    }
    for (i, w) in s.workers.iter().enumerate() {
        if let Pc::Blocked(_, Wait::Lower(None)) = w.pc {
            for slot in alloc_choices(s) {
                v.push(Action::LowerWriteback {
                    waiter: WorkerId(i as u8),
                    slot,
                });
            }
        }
    }
    let snap = s.snapshot();
    if kwq_policy::need_to_create_worker(&snap) {
        v.push(Action::CreateWorker);
    }
    // The mayday timer fires while the pool needs a worker and has no idle
    // one (the kernel's `need_to_create_worker`, which has no cap: creation
    // is what fails). The rescuer of each workqueue with an item on the
    // worklist may then act. Time is not modelled, so it may act at once.
    if kwq_policy::need_more_worker(&snap) && !kwq_policy::may_start_working(&snap) {
        for (i, w) in s.workers.iter().enumerate() {
            let Some(wq) = w.rescuer_of else { continue };
            if w.pc == Pc::Idle && s.worklist.iter().any(|&id| s.item(id).wq == wq) {
                v.push(Action::Mayday(WorkerId(i as u8)));
            }
        }
    }
    if kwq_policy::need_more_worker(&snap) {
        // Only the idle-list head wakes: idle workers are interchangeable
        // (see explore/mod.rs, "Symmetry"), and the kernel wakes the first.
        if let Some(&w) = s.idle.last() {
            v.push(Action::Pick(w));
        }
    }
    for (i, w) in s.workers.iter().enumerate() {
        let id = WorkerId(i as u8);
        match w.pc {
            Pc::Idle => {}
            Pc::Func => v.push(Action::Func(id)),
            Pc::Lock => v.push(Action::Lock(id)),
            Pc::Ordered(h) => {
                v.push(Action::OrderedDone(id));
                if s.item(h).origin == Origin::Upper && s.waits < s.setup.waits {
                    if s.stacked() {
                        v.push(Action::OrderedWait {
                            worker: id,
                            slot: None,
                        });
                    } else {
                        for slot in alloc_choices(s) {
                            v.push(Action::OrderedWait {
                                worker: id,
                                slot: Some(slot),
                            });
                        }
                    }
                }
            }
            Pc::Blocked(_, wait) => {
                if wait_satisfied(s, wait) {
                    v.push(Action::Wake(id));
                }
            }
            Pc::FreeSelf => v.push(Action::FreeSelf(id)),
            Pc::Return => v.push(Action::Return(id)),
        }
    }
    v
}

/// Has the thing a blocked ordered phase waits for happened?
#[must_use]
pub fn wait_satisfied(s: &State, wait: Wait) -> bool {
    match wait {
        Wait::Lower(None) => false,
        Wait::Lower(Some(b)) => s.item(b).btrfs & ORDERED_COMPLETE != 0,
        Wait::Read(e) => s.item(e).btrfs & DONE != 0,
    }
}

/// The successor of `s` under `a`. `a` must be enabled in `s`
/// (see [`try_step`] for a checked version).
#[must_use]
pub fn step(s: &State, a: Action) -> State {
    step_events(s, a).0
}

/// An action that is not enabled in the state it was applied to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotEnabled {
    /// The action.
    pub action: Action,
    /// What was enabled instead.
    pub enabled: Vec<Action>,
}

impl fmt::Display for NotEnabled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "action {} is not enabled (enabled:", self.action)?;
        for a in &self.enabled {
            write!(f, " {a}")?;
        }
        write!(f, ")")
    }
}

impl std::error::Error for NotEnabled {}

/// [`step_events`] after checking that `a` is enabled.
///
/// # Errors
///
/// [`NotEnabled`] if `a` is not enabled in `s`.
pub fn try_step(s: &State, a: Action) -> Result<(State, Vec<Event>), NotEnabled> {
    let enabled = enabled_actions(s);
    if enabled.contains(&a) {
        Ok(step_events(s, a))
    } else {
        Err(NotEnabled { action: a, enabled })
    }
}

/// The successor of `s` under the enabled action `a`, and what happened.
///
/// # Panics
///
/// If `a` is not enabled in `s` (use [`try_step`] to check first).
#[must_use]
pub fn step_events(s: &State, a: Action) -> (State, Vec<Event>) {
    let mut t = Tx {
        s: *s,
        ev: Vec::new(),
    };
    match a {
        Action::Writeback { slot } => {
            let func = t.s.setup.version.func_for(WorkType::Delalloc);
            let id = t.alloc(slot, Origin::Upper, func, 0);
            t.s.queued += 1;
            t.queue(id);
        }
        Action::CreateWorker => t.create_worker(),
        Action::Pick(w) => t.pick(w),
        Action::Func(w) => t.func(w),
        Action::Lock(w) => t.lock_step(w),
        Action::OrderedDone(w) => {
            let h = t.claimed(w);
            t.complete_ordered(w, h);
        }
        Action::OrderedWait { worker, slot } => {
            let h = t.claimed(worker);
            t.s.waits += 1;
            let wait = match (t.s.setup.scenario, slot) {
                (Scenario::Y2014, Some(slot)) => {
                    let func = t.s.setup.version.func_for(WorkType::EndioMeta);
                    Wait::Read(t.alloc(slot, Origin::EndIo, func, 1))
                }
                _ => Wait::Lower(None),
            };
            t.w(worker).pc = Pc::Blocked(h, wait);
            t.ev.push(Event::Blocked {
                worker,
                item: h,
                wait,
            });
        }
        Action::Wake(w) => {
            let Pc::Blocked(h, _) = t.s.worker(w).pc else {
                unreachable!("Wake of a worker that is not blocked")
            };
            t.ev.push(Event::Woken { worker: w });
            t.complete_ordered(w, h);
        }
        Action::FreeSelf(w) => t.leave_loop(w),
        Action::Return(w) => t.ret(w),
        Action::LowerWriteback { waiter, slot } => {
            let Pc::Blocked(h, Wait::Lower(None)) = t.s.worker(waiter).pc else {
                unreachable!("LowerWriteback without a waiting top worker")
            };
            let func = t.s.setup.version.func_for(WorkType::Delalloc);
            let b = t.alloc(slot, Origin::Lower, func, 1);
            t.w(waiter).pc = Pc::Blocked(h, Wait::Lower(Some(b)));
            t.queue(b);
        }
        Action::ReadComplete(e) => t.queue(e),
        Action::Mayday(r) => {
            let Some(wq) = t.s.worker(r).rescuer_of else {
                unreachable!("Mayday for a worker that is not a rescuer")
            };
            let pos = t.s.worklist.iter().position(|&id| t.s.item(id).wq == wq);
            let id =
                t.s.worklist
                    .remove(pos.expect("rescuer's workqueue has work"));
            t.start_or_park(r, id);
        }
    }
    (t.s, t.ev)
}

/// A transition under construction.
struct Tx {
    s: State,
    ev: Vec<Event>,
}

impl Tx {
    fn w(&mut self, w: WorkerId) -> &mut Worker {
        &mut self.s.workers[w.0 as usize]
    }

    fn it(&mut self, id: ItemId) -> &mut Item {
        &mut self.s.items[id.0 as usize]
    }

    fn cur(&self, w: WorkerId) -> Current {
        self.s.worker(w).current.expect("worker has a current item")
    }

    fn claimed(&self, w: WorkerId) -> ItemId {
        match self.s.worker(w).pc {
            Pc::Ordered(h) => h,
            pc => unreachable!("worker {w} has not claimed an ordered phase ({pc:?})"),
        }
    }

    /// Slab allocation at `slot` (which `alloc_choices` offered).
    fn alloc(&mut self, slot: Slot, origin: Origin, func: crate::FuncPtr, wq: u8) -> ItemId {
        if slot.0 == self.s.next_slot {
            self.s.next_slot += 1;
        } else {
            let pos = self.s.free.iter().position(|&f| f == slot);
            self.s.free.remove(pos.expect("allocated slot is free"));
        }
        let id = ItemId(self.s.items.len() as u8);
        self.s.items.push(Item {
            origin,
            slot,
            func,
            wq,
            work: 0,
            btrfs: 0,
            freed: false,
        });
        self.ev.push(Event::Allocated {
            item: id,
            slot,
            origin,
        });
        id
    }

    /// kfree: the slot goes back on the freelist.
    fn free(&mut self, id: ItemId, by: WorkerId) {
        let slot = self.s.items[id.0 as usize].slot;
        self.it(id).freed = true;
        if self.s.worker(by).current.is_some_and(|c| c.item == id) {
            self.w(by).freed_own = true;
        }
        match self.s.setup.alloc {
            AllocPolicy::Lifo => self.s.free.push(slot),
            AllocPolicy::Any => {
                let pos = self.s.free.partition_point(|&f| f < slot);
                self.s.free.insert(pos, slot);
            }
        }
        self.ev.push(Event::Freed { item: id, slot, by });
    }

    /// `btrfs_queue_work` (ordered list first) then `queue_work`/`__queue_work`.
    fn queue(&mut self, id: ItemId) {
        let it = *self.s.item(id);
        if it.origin.has_ordered_phase() {
            self.s.ordered[it.wq as usize].push(id);
        }
        self.it(id).work |= PENDING;
        let max = self.s.setup.max_active;
        let pwq = &mut self.s.pwqs[it.wq as usize];
        let inactive = pwq.nr_active >= max;
        if inactive {
            pwq.inactive.push(id);
            self.it(id).work |= INACTIVE;
        } else {
            pwq.nr_active += 1;
            self.s.worklist.push(id);
        }
        self.ev.push(Event::Queued {
            item: id,
            wq: it.wq,
            inactive,
        });
    }

    fn create_worker(&mut self) {
        let id = WorkerId(self.s.workers.len() as u8);
        self.s.workers.push(Worker::default());
        self.idle_push(id);
        self.ev.push(Event::WorkerCreated { worker: id });
    }

    /// Puts `w` on the idle list. Idle workers are interchangeable (no busy
    /// entry, empty scheduled list, no ghost flags), so the list is kept in
    /// a canonical order — sorted, lowest index at the head — instead of the
    /// kernel's LIFO order: a symmetry reduction (explore/mod.rs).
    fn idle_push(&mut self, w: WorkerId) {
        let pos = self.s.idle.partition_point(|&x| x > w);
        self.s.idle.insert(pos, w);
    }

    /// `worker_thread`: leave idle; if no idle worker would remain, act as
    /// manager and create one (`may_start_working`/`need_to_create_worker`);
    /// then take the worklist head into `process_one_work`.
    fn pick(&mut self, w: WorkerId) {
        let popped = self.s.idle.pop();
        debug_assert_eq!(popped, Some(w));
        let snap = self.s.snapshot();
        if !kwq_policy::may_start_working(&snap) && kwq_policy::need_to_create_worker(&snap) {
            self.create_worker();
        }
        let id = self.s.worklist.remove(0);
        if !self.start_or_park(w, id) {
            self.idle_push(w);
        }
    }

    /// The collision check of `process_one_work`, then either park the item
    /// on the matching worker's scheduled list or start it on `w`.
    fn start_or_park(&mut self, w: WorkerId, id: ItemId) -> bool {
        if let Some(v) = self.s.find_executing(id) {
            self.w(v).scheduled.push(id);
            self.it(id).work |= PARKED;
            self.ev.push(Event::Parked {
                item: id,
                picker: w,
                behind: v,
            });
            return false;
        }
        let it = *self.s.item(id);
        self.it(id).work = (it.work & !(PENDING | PARKED)) | RUNNING;
        if self.s.setup.version.freed_by_last_reference() && it.origin.has_ordered_phase() {
            self.it(id).btrfs |= HELD;
        }
        let wk = self.w(w);
        wk.current = Some(Current {
            item: id,
            slot: it.slot,
            func: it.func,
            wq: it.wq,
        });
        wk.pc = Pc::Func;
        wk.free_self = false;
        wk.freed_own = false;
        self.ev.push(Event::Started {
            worker: w,
            item: id,
        });
        true
    }

    /// The Btrfs helper: run `func`, set DONE, enter `run_ordered_work`.
    fn func(&mut self, w: WorkerId) {
        let me = self.cur(w).item;
        self.it(me).btrfs |= DONE;
        if self.s.item(me).origin == Origin::EndIo {
            // end_workqueue_fn: deliver the read, free the end-io struct.
            self.ev.push(Event::ReadDelivered {
                worker: w,
                item: me,
            });
            self.free(me, w);
            self.w(w).pc = Pc::Return;
            return;
        }
        self.ev.push(Event::FirstPhaseDone {
            worker: w,
            item: me,
        });
        if self.s.setup.granularity.split_first_lock() {
            self.w(w).pc = Pc::Lock;
        } else {
            self.lock_step(w);
        }
    }

    /// One `list_lock` section of `run_ordered_work`: claim the head or leave.
    fn lock_step(&mut self, w: WorkerId) {
        let wq = self.cur(w).wq as usize;
        let why = match self.s.ordered[wq].first().copied() {
            None => Some(LoopExit::Empty),
            Some(h) if self.s.item(h).btrfs & DONE == 0 => Some(LoopExit::HeadNotDone(h)),
            Some(h) if self.s.item(h).btrfs & ORDER_DONE != 0 => Some(LoopExit::HeadClaimed(h)),
            Some(h) => {
                self.it(h).btrfs |= ORDER_DONE;
                self.w(w).pc = Pc::Ordered(h);
                self.ev.push(Event::Claimed { worker: w, item: h });
                None
            }
        };
        if let Some(why) = why {
            let by_ref = self.s.setup.version.freed_by_last_reference();
            let wk = self.w(w);
            wk.pc = if wk.free_self || by_ref || !wk.to_free.is_empty() {
                Pc::FreeSelf
            } else {
                Pc::Return
            };
            self.ev.push(Event::LeftLoop { worker: w, why });
        }
    }

    /// After `run_ordered_work` has dropped `list_lock` for the last time:
    /// the deferred frees. v5.5/v6: free the worker's own item if it
    /// unlinked it (`free_self`). `v6-defer-all`: also every other item it
    /// deferred. `v6-fix`: drop the worker's reference to its own item and
    /// free it if its ordered phase has completed (else the worker that
    /// completes it frees it).
    fn leave_loop(&mut self, w: WorkerId) {
        let me = self.cur(w).item;
        while !self.s.worker(w).to_free.is_empty() {
            let h = self.w(w).to_free.remove(0);
            self.free(h, w);
        }
        if self.s.setup.version.freed_by_last_reference() {
            self.it(me).btrfs &= !HELD;
            if self.s.item(me).btrfs & ORDERED_COMPLETE != 0 {
                self.free(me, w);
            }
        } else if self.s.worker(w).free_self {
            self.w(w).free_self = false;
            self.free(me, w);
        }
        self.w(w).pc = Pc::Return;
    }

    /// End of an ordered phase: unlink the head, free it (or defer the free
    /// of the worker's own item), go round the loop.
    fn complete_ordered(&mut self, w: WorkerId, h: ItemId) {
        let c = self.cur(w);
        self.it(h).btrfs |= ORDERED_COMPLETE;
        self.ev.push(Event::OrderedComplete { worker: w, item: h });
        let list = &mut self.s.ordered[c.wq as usize];
        debug_assert_eq!(list.first(), Some(&h));
        list.remove(0);
        let version = self.s.setup.version;
        if version.freed_by_last_reference() {
            // The ordered phase's reference goes; the item's own worker may
            // still hold the other one.
            if self.s.item(h).btrfs & HELD != 0 {
                let owner = self.s.runner_of(h).expect("a held item has its worker");
                self.ev.push(Event::FreeDeferred {
                    worker: owner,
                    item: h,
                });
            } else {
                self.free(h, w);
            }
        } else if version.deferred_self_free() && h == c.item {
            self.w(w).free_self = true;
            self.ev.push(Event::FreeDeferred { worker: w, item: h });
        } else if version.defers_every_free() {
            self.w(w).to_free.push(h);
            self.ev.push(Event::FreeDeferred { worker: w, item: h });
        } else {
            self.free(h, w);
        }
        if self.s.setup.granularity.split_every_lock() {
            self.w(w).pc = Pc::Lock;
        } else {
            self.lock_step(w);
        }
    }

    /// End of `process_one_work`, then `process_scheduled_works`, then idle.
    fn ret(&mut self, w: WorkerId) {
        let c = self.w(w).current.take().expect("returning worker is busy");
        self.w(w).freed_own = false;
        self.it(c.item).work &= !RUNNING;
        self.ev.push(Event::Returned {
            worker: w,
            item: c.item,
        });
        let max = self.s.setup.max_active;
        let pwq = &mut self.s.pwqs[c.wq as usize];
        pwq.nr_active -= 1;
        if pwq.nr_active < max && !pwq.inactive.is_empty() {
            let next = pwq.inactive.remove(0);
            pwq.nr_active += 1;
            self.s.worklist.push(next);
            self.it(next).work &= !INACTIVE;
            self.ev.push(Event::Activated { item: next });
        }
        while !self.s.worker(w).scheduled.is_empty() {
            let next = self.w(w).scheduled.remove(0);
            self.it(next).work &= !PARKED;
            if self.start_or_park(w, next) {
                return;
            }
        }
        self.w(w).pc = Pc::Idle;
        if self.s.worker(w).in_pool() {
            self.idle_push(w);
        }
        self.ev.push(Event::WentIdle { worker: w });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::invariants::check_all;
    use crate::setup::{Version, MAX_WORKERS};
    use crate::Setup;

    fn run_all(setup: Setup, mut each: impl FnMut(&State)) -> usize {
        let mut seen = crate::explore::StateSet::default();
        let mut todo = vec![State::initial(setup)];
        while let Some(s) = todo.pop() {
            if !seen.insert(s) {
                continue;
            }
            each(&s);
            todo.extend(enabled_actions(&s).into_iter().map(|a| step(&s, a)));
        }
        seen.len()
    }

    #[test]
    fn max_active_one_uses_the_inactive_list_and_still_completes() {
        let mut setup = Setup::new(Version::Kwq, Scenario::Y2019).with_items(2);
        setup.max_active = 1;
        let (mut inactive, mut complete) = (false, false);
        run_all(setup, |s| {
            check_all(s).unwrap();
            assert!(s.pwqs.iter().all(|p| p.nr_active <= 1));
            inactive |= s.items.iter().any(|i| i.work & INACTIVE != 0);
            complete |= s.is_complete();
        });
        assert!(inactive, "the second item must wait on the inactive list");
        assert!(complete);
    }

    #[test]
    fn allocator_choices() {
        let mut s = State::initial(Setup::new(Version::V4, Scenario::Y2019));
        assert_eq!(alloc_choices(&s), vec![Slot(0)]);
        s.next_slot = 3;
        s.free = [Slot(2), Slot(0)].into_iter().collect();
        assert_eq!(alloc_choices(&s), vec![Slot(0)], "LIFO: last freed first");
        s.setup.alloc = AllocPolicy::Any;
        assert_eq!(alloc_choices(&s), vec![Slot(2), Slot(0), Slot(3)]);
    }

    #[test]
    fn pool_keeps_an_idle_reserve_below_the_cap_only() {
        // need_to_create_worker/may_start_working: picking with no other
        // idle worker creates one, unless the pool is at its cap.
        let setup = Setup::new(Version::V4, Scenario::Y2019).with_workers(2);
        let mut max_workers = 0;
        let n = run_all(setup, |s| {
            max_workers = max_workers.max(s.workers.len());
            if s.workers.len() < 2 && s.workers.iter().any(|w| w.current.is_some()) {
                assert!(
                    !s.idle.is_empty(),
                    "a busy pool below its cap has a reserve"
                );
            }
        });
        assert_eq!(max_workers, 2);
        assert!(n > 10);
        assert!(usize::from(MAX_WORKERS) >= max_workers);
    }

    #[test]
    fn early_and_deferred_self_free_differ_only_in_when() {
        // One item, one worker: v4 frees X inside the loop, v5.5 after it.
        for (v, expect_deferred) in [(Version::V4, false), (Version::V5_5, true)] {
            let mut s = State::initial(Setup::new(v, Scenario::Y2019).with_items(1));
            let mut evs = Vec::new();
            while let Some(&a) = enabled_actions(&s)
                .iter()
                .find(|a| !matches!(a, Action::OrderedWait { .. }))
            {
                let (t, e) = step_events(&s, a);
                evs.extend(e);
                s = t;
            }
            assert!(s.is_complete());
            let deferred = evs.iter().any(|e| matches!(e, Event::FreeDeferred { .. }));
            assert_eq!(deferred, expect_deferred, "{v}");
            let freed = evs
                .iter()
                .filter(|e| matches!(e, Event::Freed { .. }))
                .count();
            assert_eq!(freed, 1);
        }
    }
}
