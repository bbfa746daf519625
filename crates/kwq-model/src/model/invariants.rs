//! Safety invariants, one named function per guaranteed property of
//! docs/kernel.md §5. Each returns `Err(Violation)` with a sentence
//! saying what is wrong. The explorers evaluate [`check_all`] on every state
//! they reach; liveness (BT-6) is checked by [`crate::model::waitfor`] and by
//! the explorers' terminal-state test.

use super::state::{
    ItemId, Origin, Pc, State, DONE, INACTIVE, ORDERED_COMPLETE, ORDER_DONE, PARKED, PENDING,
    RUNNING,
};
use std::fmt;

/// A broken invariant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Violation {
    /// The property, as named in §5 (`"WQ-3"`, `"BT-1"`, …).
    pub property: &'static str,
    /// What is wrong, in the trace's vocabulary.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} violated: {}", self.property, self.detail)
    }
}

type Check = fn(&State) -> Result<(), Violation>;

/// Every invariant, with its property name.
pub const ALL: [(&str, Check); 9] = [
    ("WQ-3", wq3_non_reentrancy),
    ("WQ-4", wq4_collision_parking),
    ("WQ-5", wq5_collision_key),
    ("WQ-6", wq6_freed_items_unlisted),
    ("WQ-7", wq7_max_active),
    ("BT-1", bt1_ordered_fifo),
    ("BT-3", bt3_no_touch_after_done),
    ("BT-4", bt4_deferred_self_free),
    ("BT-7", bt7_worker_holds_its_item),
];

/// Evaluates every invariant; the first violation wins.
///
/// # Errors
///
/// The first [`Violation`] found.
pub fn check_all(s: &State) -> Result<(), Violation> {
    ALL.iter().try_for_each(|(_, f)| f(s))
}

fn fail(property: &'static str, detail: String) -> Result<(), Violation> {
    Err(Violation { property, detail })
}

/// **WQ-3 non-reentrancy**: no two workers of the pool hold the same busy
/// key at once — (address, function) in the kernel, the item itself in kwq —
/// so no item ever executes on two workers.
///
/// # Errors
///
/// A [`Violation`] describing the first offending item or worker.
pub fn wq3_non_reentrancy(s: &State) -> Result<(), Violation> {
    let by_item = s.setup.version.identity_by_item();
    for (i, a) in s.workers.iter().enumerate() {
        for (j, b) in s.workers.iter().enumerate().skip(i + 1) {
            if let (Some(x), Some(y)) = (a.current, b.current) {
                let same = if by_item {
                    x.item == y.item
                } else {
                    x.slot == y.slot && x.func == y.func
                };
                if same {
                    return fail(
                        "WQ-3",
                        format!(
                            "workers {} and {} both execute {}/{}",
                            (b'A' + i as u8) as char,
                            (b'A' + j as u8) as char,
                            x.slot,
                            x.func.as_str()
                        ),
                    );
                }
            }
        }
    }
    Ok(())
}

/// **WQ-4 collision parking**: an item parked on a worker's scheduled list
/// is still pending (PENDING|PARKED, not running), is on exactly one
/// scheduled list and no other list, and its worker is still busy — it will
/// start on that worker when the current execution returns.
///
/// # Errors
///
/// A [`Violation`] describing the first offending item or worker.
pub fn wq4_collision_parking(s: &State) -> Result<(), Violation> {
    for (i, it) in s.items.iter().enumerate() {
        let id = ItemId(i as u8);
        let parkers = s
            .workers
            .iter()
            .filter(|w| w.scheduled.contains(&id))
            .count();
        let parked = it.work & PARKED != 0;
        if parked != (parkers == 1) || parkers > 1 {
            return fail(
                "WQ-4",
                format!(
                    "{} has PARKED={} but is on {} scheduled lists",
                    s.item_name(id),
                    parked,
                    parkers
                ),
            );
        }
        if parked && (it.work & PENDING == 0 || it.work & RUNNING != 0 || s.worklist.contains(&id))
        {
            return fail(
                "WQ-4",
                format!("parked {} is not exactly pending", s.item_name(id)),
            );
        }
    }
    for w in &s.workers {
        if !w.scheduled.is_empty() && w.current.is_none() {
            return fail(
                "WQ-4",
                "a worker with parked items is not executing".to_string(),
            );
        }
    }
    Ok(())
}

/// **WQ-5 collision key**: every parked item matches its worker's busy entry
/// on (address, function) — not on the workqueue, so an item of another
/// workqueue (the bottom filesystem's) can be parked behind a top worker.
///
/// # Errors
///
/// A [`Violation`] describing the first offending item or worker.
pub fn wq5_collision_key(s: &State) -> Result<(), Violation> {
    let by_item = s.setup.version.identity_by_item();
    for w in &s.workers {
        let Some(c) = w.current else { continue };
        for &p in &w.scheduled {
            let it = s.item(p);
            let ok = if by_item {
                c.item == p
            } else {
                it.slot == c.slot && it.func == c.func
            };
            if !ok {
                return fail(
                    "WQ-5",
                    format!(
                        "{} ({}/{}) parked behind a worker busy on {}/{}",
                        s.item_name(p),
                        it.slot,
                        it.func.as_str(),
                        c.slot,
                        c.func.as_str()
                    ),
                );
            }
        }
    }
    Ok(())
}

/// **WQ-6 self-free safety**, model side: a freed item is on no list
/// (worklist, inactive, ordered, scheduled) and not pending — freeing a
/// queued item would be a use-after-free (debugobjects' `work_fixup_free`).
///
/// # Errors
///
/// A [`Violation`] describing the first offending item or worker.
pub fn wq6_freed_items_unlisted(s: &State) -> Result<(), Violation> {
    for (i, it) in s.items.iter().enumerate() {
        let id = ItemId(i as u8);
        if !it.is_freed() {
            continue;
        }
        let listed = s.worklist.contains(&id)
            || s.pwqs.iter().any(|p| p.inactive.contains(&id))
            || s.ordered.iter().any(|o| o.contains(&id))
            || s.workers.iter().any(|w| w.scheduled.contains(&id));
        if listed || it.work & (PENDING | PARKED | INACTIVE) != 0 {
            return fail(
                "WQ-6",
                format!("{} was freed while still queued", s.item_name(id)),
            );
        }
    }
    Ok(())
}

/// **WQ-7 max_active**: every pwq has `nr_active <= max_active`, and
/// `nr_active` counts exactly its items on the worklist, parked, or
/// executing (collided items count as active).
///
/// # Errors
///
/// A [`Violation`] describing the first offending item or worker.
pub fn wq7_max_active(s: &State) -> Result<(), Violation> {
    for (wq, pwq) in s.pwqs.iter().enumerate() {
        let wq8 = wq as u8;
        let on_list = s
            .worklist
            .iter()
            .chain(s.workers.iter().flat_map(|w| w.scheduled.iter()))
            .filter(|&&i| s.item(i).wq == wq8)
            .count();
        let running = s
            .workers
            .iter()
            .filter(|w| w.current.is_some_and(|c| c.wq == wq8))
            .count();
        if pwq.nr_active > s.setup.max_active || pwq.nr_active as usize != on_list + running {
            return fail(
                "WQ-7",
                format!(
                    "{}: nr_active {} (max {}) but {} active items",
                    s.wq_name(wq8),
                    pwq.nr_active,
                    s.setup.max_active,
                    on_list + running
                ),
            );
        }
    }
    Ok(())
}

/// **BT-1 FIFO ordered phase**: each ordered list is in queueing order; only
/// its head may be claimed; a claimed item finished its first phase; and
/// every item whose ordered phase completed was queued before every item
/// still on the list (ordered phases run in `btrfs_queue_work` order, one
/// at a time).
///
/// # Errors
///
/// A [`Violation`] describing the first offending item or worker.
pub fn bt1_ordered_fifo(s: &State) -> Result<(), Violation> {
    for (wq, list) in s.ordered.iter().enumerate() {
        if list.windows(2).any(|p| p[0] >= p[1]) {
            return fail(
                "BT-1",
                format!("{} ordered list out of order", s.wq_name(wq as u8)),
            );
        }
        for (pos, &id) in list.iter().enumerate() {
            let b = s.item(id).btrfs;
            if b & ORDERED_COMPLETE != 0
                || (pos > 0 && b & ORDER_DONE != 0)
                || (b & ORDER_DONE != 0 && b & DONE == 0)
            {
                return fail("BT-1", format!("{} claimed out of turn", s.item_name(id)));
            }
        }
        if let Some(&first) = list.first() {
            let overtook = s.items.iter().enumerate().any(|(i, it)| {
                it.wq as usize == wq && it.btrfs & ORDERED_COMPLETE != 0 && i > first.0 as usize
            });
            if overtook {
                return fail(
                    "BT-1",
                    format!("an ordered phase overtook {}", s.item_name(first)),
                );
            }
        }
    }
    Ok(())
}

/// **BT-3 no touch after DONE**: a worker never holds a reference it will
/// dereference to a freed item: the head whose ordered phase it runs is
/// live, and if it will free its own item later (`free_self`) nobody else
/// has freed it. (Workers keep the workqueue snapshot taken before `func`,
/// never `self->wq`, so the v1-patch use-after-free cannot be expressed.)
///
/// # Errors
///
/// A [`Violation`] describing the first offending item or worker.
pub fn bt3_no_touch_after_done(s: &State) -> Result<(), Violation> {
    for (i, w) in s.workers.iter().enumerate() {
        let name = (b'A' + i as u8) as char;
        if let Pc::Ordered(h) | Pc::Blocked(h, _) = w.pc {
            if s.item(h).is_freed() {
                return fail(
                    "BT-3",
                    format!(
                        "worker {name} runs the ordered phase of freed {}",
                        s.item_name(h)
                    ),
                );
            }
        }
        let holds_own = w.pc == Pc::FreeSelf && s.setup.version.freed_by_last_reference();
        if w.free_self || holds_own {
            let me = w.current.map(|c| c.item);
            if me.is_none_or(|me| s.item(me).is_freed()) {
                return fail(
                    "BT-3",
                    format!("worker {name} will free an item that is already freed"),
                );
            }
        }
    }
    Ok(())
}

/// **BT-7 the worker holds its item** (`v6-fix` only; the property the
/// candidate fix adds): while a worker is anywhere in the Btrfs helper (first
/// phase, `run_ordered_work`, blocked in an ordered phase, or about to drop
/// its reference), the item it executes has not been freed, by anyone. This
/// is what makes a recycled address impossible behind a worker that can
/// still block.
///
/// # Errors
///
/// A [`Violation`] describing the first offending item or worker.
pub fn bt7_worker_holds_its_item(s: &State) -> Result<(), Violation> {
    if !s.setup.version.freed_by_last_reference() {
        return Ok(());
    }
    for (i, w) in s.workers.iter().enumerate() {
        let Some(c) = w.current else { continue };
        let inside = matches!(
            w.pc,
            Pc::Func | Pc::Lock | Pc::Ordered(_) | Pc::Blocked(..) | Pc::FreeSelf
        );
        let it = s.item(c.item);
        if inside && it.origin != Origin::EndIo && it.is_freed() {
            return fail(
                "BT-7",
                format!(
                    "{} was freed while worker {} is still inside the helper",
                    s.item_name(c.item),
                    (b'A' + i as u8) as char
                ),
            );
        }
    }
    Ok(())
}

/// **BT-4 deferred self-free** (v5.5 versions only): while a worker is
/// inside `run_ordered_work`, the item it executes has not been freed *by
/// that worker*.
///
/// # Errors
///
/// A [`Violation`] describing the first offending item or worker.
pub fn bt4_deferred_self_free(s: &State) -> Result<(), Violation> {
    if !s.setup.version.deferred_self_free() {
        return Ok(());
    }
    for (i, w) in s.workers.iter().enumerate() {
        let in_loop = matches!(w.pc, Pc::Lock | Pc::Ordered(_) | Pc::Blocked(..));
        let Some(c) = w.current else { continue };
        let it = s.item(c.item);
        if in_loop && it.origin != Origin::EndIo && w.freed_own {
            return fail(
                "BT-4",
                format!(
                    "worker {} freed its own {} inside run_ordered_work",
                    (b'A' + i as u8) as char,
                    s.item_name(c.item)
                ),
            );
        }
    }
    Ok(())
}
