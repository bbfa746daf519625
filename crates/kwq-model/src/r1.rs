//! `kwq model report`: one self-contained Markdown document about residual
//! window R1 in today's Btrfs, written for a Btrfs maintainer with ten
//! minutes.
//!
//! # Protocol
//!
//! [`render`] runs the matrix cells it quotes (BFS, at the matrix bounds),
//! and quotes the recorded larger proof runs of [`crate::proof`] without
//! running them. Everything it prints is a pure function of the model: no
//! timings, no dates, no paths. `docs/report-r1.md` is its output, and a
//! test regenerates it and fails if the file drifts.

use crate::explore::{FindingKind, Outcome};
use crate::matrix::{Cell, Expect, BOUNDS, EXPECTED, STARVE_BOUNDS};
use crate::model::waitfor::Via;
use crate::model::{enabled_actions, step, Action, State};
use crate::proof::PROOF;
use crate::report::render_trace_and_cycle;
use crate::setup::{Granularity, Scenario, Setup, Version, V6_SOURCE};
use crate::trace::Trace;
use std::fmt::Write as _;

fn cell(v: Version, s: Scenario, g: Granularity) -> Cell {
    *EXPECTED
        .iter()
        .find(|c| c.version == v && c.scenario == s && c.granularity == g)
        .expect("the report quotes only matrix cells")
}

fn run(v: Version, s: Scenario, g: Granularity) -> Outcome {
    cell(v, s, g).run().outcome
}

/// `not reachable (N states, exhaustive)` or `reachable (via), N-step trace`.
fn verdict(o: &Outcome) -> String {
    match (&o.finding, o.exhaustive) {
        (Some(f), _) => match &f.kind {
            FindingKind::Deadlock { via, .. } => format!(
                "**reachable** ({}), shortest trace {} steps ({} states explored)",
                via.as_str(),
                f.trace.actions.len(),
                o.stats.states
            ),
            FindingKind::Violation(v) => format!("**invariant violated**: {v}"),
        },
        (None, true) => format!(
            "not reachable: all {} states explored, {} complete end states",
            o.stats.states, o.stats.complete
        ),
        (None, false) => format!("inconclusive ({} states, bounded)", o.stats.states),
    }
}

fn trace_block(out: &mut String, o: &Outcome) {
    let Some(f) = &o.finding else {
        out.push_str("(no trace: not reachable)\n");
        return;
    };
    out.push_str("```text\n");
    out.push_str(&render_trace_and_cycle(&f.trace, &f.kind));
    out.push_str("```\n");
}

/// Follows `trace`'s schedule under another code version, as far as it
/// goes: each action is taken if enabled; an allocation whose slot is not
/// offered takes the slot the allocator offers instead (same actor); any
/// other action that is not enabled ends the schedule.
#[must_use]
pub fn follow_under(trace: &Trace, version: Version) -> Trace {
    let setup = Setup {
        version,
        ..trace.setup
    };
    let mut s = State::initial(setup);
    let mut actions = Vec::new();
    for &a in &trace.actions {
        let enabled = enabled_actions(&s);
        let same_actor = |b: &Action| match (a, *b) {
            (Action::Writeback { .. }, Action::Writeback { .. }) => true,
            (
                Action::LowerWriteback { waiter: x, .. },
                Action::LowerWriteback { waiter: y, .. },
            ) => x == y,
            _ => false,
        };
        let Some(&b) = enabled
            .iter()
            .find(|&&b| b == a)
            .or_else(|| enabled.iter().find(|b| same_actor(b)))
        else {
            break;
        };
        s = step(&s, b);
        actions.push(b);
    }
    Trace { setup, actions }
}

fn replay_of(o: &Outcome) -> String {
    o.finding
        .as_ref()
        .map_or_else(String::new, |f| f.trace.replay_string())
}

/// The whole report.
#[must_use]
pub fn render() -> String {
    let mut out = String::new();
    let bug = run(Version::V4, Scenario::Y2019, Granularity::Coarse);
    let r1 = run(Version::V6, Scenario::Y2019, Granularity::Fine);
    let r1_2014 = run(Version::V6, Scenario::Y2014, Granularity::Fine);
    let r1_all = run(Version::V6, Scenario::Y2019, Granularity::FineAll);
    let v6_coarse = run(Version::V6, Scenario::Y2019, Granularity::Coarse);
    let alt = run(Version::V6DeferAll, Scenario::Y2019, Granularity::Fine);
    let starve = run(Version::V6, Scenario::Starve, Granularity::Coarse);
    let rescued = run(Version::V6, Scenario::StarveRescuer, Granularity::Coarse);
    let fix: Vec<(Cell, Outcome)> = EXPECTED
        .iter()
        .filter(|c| c.version == Version::V6Fix)
        .map(|c| (*c, c.run().outcome))
        .collect();

    intro(&mut out, &r1, &fix);
    source(&mut out);
    let _ = writeln!(
        out,
        "## 1. The 2019 deadlock, as the thread told it (kernels 2014 to v5.4)\n\n\
         Model `v4`: one `btrfs_<type>_helper` per work type, and\n\
         `run_ordered_work` frees every item right after its ordered phase,\n\
         the worker's own included. Breadth-first search finds this trace and\n\
         proves no shorter one exists: {}.\n\n\
         X and W are the top filesystem's `async_cow` items, X′ is the bottom\n\
         filesystem's item that lands at X's address. Slots stand for\n\
         addresses.\n",
        verdict(&bug)
    );
    trace_block(&mut out, &bug);

    let _ = writeln!(
        out,
        "\n## 2. R1 in today's code\n\n\
         The 2019 fix defers the free of the worker's *own* item until it\n\
         leaves `run_ordered_work`. It does not stop *another* worker from\n\
         freeing that item. Worker A sets DONE on its X and, before it takes\n\
         `list_lock`, worker C (already in the loop for its own Y) runs X's\n\
         ordered phase and frees X, because X is not C's `self`. A then\n\
         claims W's ordered phase, which writes through the loop device and\n\
         blocks, while A's busy entry still names X's address and\n\
         `btrfs_work_helper`. The bottom filesystem's next `async_cow` item\n\
         is allocated there and is parked behind A.\n\n\
         `v6` × 2019, `fine` steps (DONE and the first `list_lock`\n\
         acquisition are two steps): {}.\n",
        verdict(&r1)
    );
    trace_block(&mut out, &r1);
    let _ = writeln!(
        out,
        "\nThe same hazard at other granularities and scenarios, same bounds:\n\n\
         | `v6` | steps | answer |\n|---|---|---|\n\
         | 2019 (stacked filesystems) | coarse | {} |\n\
         | 2019 | fine | {} |\n\
         | 2019 | fine-all | {} |\n\
         | 2014 (end-io item of one filesystem) | fine | {} |\n\n\
         `coarse` glues setting DONE to the first `list_lock` section; there\n\
         nobody can free A's item in between, and the fix holds. The 2014\n\
         row is reachable today because every Btrfs item now carries the\n\
         same `btrfs_work_helper`, so an end-io item recycled at X's address\n\
         matches A's busy entry too. With `fine-all` (every lock acquisition\n\
         its own step) two items suffice.\n\n\
         - 2019, fine-all: `{}`\n\
         - 2014, fine: `{}`\n",
        verdict(&v6_coarse),
        verdict(&r1),
        verdict(&r1_all),
        verdict(&r1_2014),
        replay_of(&r1_all),
        replay_of(&r1_2014)
    );

    let r1_trace = r1.finding.as_ref().map(|f| f.trace.clone());
    fix_section(&mut out, &fix, &alt, r1_trace.as_ref());
    starvation(&mut out, &starve, &rescued);
    assumptions(&mut out);
    reproduce(&mut out);
    out
}

fn intro(out: &mut String, r1: &Outcome, fix: &[(Cell, Outcome)]) {
    let fix_states: u64 = fix.iter().map(|(_, o)| o.stats.states).sum();
    let all_fixed = fix
        .iter()
        .all(|(c, o)| o.deadlock_reachable() == Some(false) && c.expect == Expect::NotReachable);
    let _ = writeln!(
        out,
        "# R1: the 2019 Btrfs workqueue deadlock is still reachable in today's code\n\n\
         Generated by `kwq model report` (crate `kwq-model`). Every number\n\
         below comes from an exhaustive or breadth-first search of a small\n\
         model of `kernel/workqueue.c` and `fs/btrfs/async-thread.c`; how to\n\
         repeat each one is in the last section.\n\n\
         **In short.**\n\n\
         - The 2019 fix (free the worker's own item only after\n\
           `run_ordered_work`) closed the path the thread described. It left\n\
           a narrower one, R1: *another* worker frees the item while the\n\
           item's own worker is between setting DONE and taking\n\
           `list_lock`, and the address is recycled behind that worker,\n\
           which then blocks in a later item's ordered phase.\n\
         - Today's `async-thread.c` takes the same steps as v5.5 here. With\n\
           DONE and the first `list_lock` as separate steps, R1 in it is {}.\n\
         - A small Btrfs-side change closes it: free an item when *both* its\n\
           ordered phase has run and its own worker has left the helper,\n\
           whichever comes last. In the model it is not reachable at any\n\
           granularity in either scenario ({}; {} states in all, matrix\n\
           bounds), and not in four larger exhaustive runs (section 3).\n\
         - The window lies between two adjacent statements of\n\
           `btrfs_work_helper` (setting DONE, then the call that takes\n\
           `list_lock`) and must stay open for a whole ordered phase on\n\
           another CPU. The model says it is\n\
           *possible*, not how likely it is.\n",
        verdict(r1),
        if all_fixed {
            "six cells, all exhaustive"
        } else {
            "NOT ALL CELLS HOLD"
        },
        fix_states
    );
}

fn source(out: &mut String) {
    let _ = writeln!(
        out,
        "## 0. Which code\n\n\
         `v6` is today's code, read from these stored trees (the label stays\n\
         `v6` whatever the tag):\n"
    );
    for (tree, commit, file) in V6_SOURCE {
        let _ = writeln!(out, "- `{file}`: {tree} at commit `{commit}`");
    }
    let _ = writeln!(
        out,
        "\nWhat changed since v5.5 that matters here: nothing in the steps.\n\
         `btrfs_work_helper` still sets DONE and then calls\n\
         `run_ordered_work(wq, work)`; the loop still claims the head under\n\
         `list_lock`, runs its ordered phase unlocked, unlinks it under the\n\
         lock, and frees it after dropping the lock unless it is `self`.\n\
         What did change: a full barrier before DONE and a read barrier after\n\
         testing it (ordering of the first phase's writes; the model is\n\
         sequentially consistent anyway), `ordered_free` became\n\
         `ordered_func(work, true)`, the high-priority sub-queue is gone, and\n\
         unbound pools are now per affinity scope (pod) instead of per NUMA\n\
         node. The busy-table match is unchanged: same address and same\n\
         function, now checked in `assign_work`. Two filesystems' items\n\
         still collide when they are queued to the same pod's pool, which is\n\
         every queueing on a machine with one last-level cache.\n"
    );
}

fn fix_section(out: &mut String, fix: &[(Cell, Outcome)], alt: &Outcome, r1: Option<&Trace>) {
    let _ = writeln!(
        out,
        "## 3. A candidate fix, and one that does not work\n\n\
         **The fix (`v6-fix`).** Give each ordered item two references: one\n\
         for its ordered phase and one for the worker that executes it. The\n\
         worker that completes the ordered phase drops the first; the\n\
         executing worker drops the second when it leaves\n\
         `run_ordered_work`. Whoever drops the last one frees the item. So\n\
         the item whose address is in a worker's busy entry is never freed\n\
         while that worker can still block; it is freed at the earliest\n\
         when the worker is about to return to the workqueue core, the\n\
         \"tiny window\" that the 2019 fix already accepted, where a\n\
         colliding item is simply run next by a worker that waits for\n\
         nothing.\n\n\
         ```text\n\
         queue(work):       work.refs = 2; append to ordered list; queue_work\n\
         helper(work):      func(work); set DONE; run_ordered(wq, work)\n\
         \x20                  put(work)                # the executing worker's reference\n\
         run_ordered(wq, self):\n\
         \x20 loop: lock; head not DONE or already claimed -> unlock, return\n\
         \x20       claim head; unlock; ordered phase of head\n\
         \x20       lock; unlink head; unlock\n\
         \x20       put(head)                          # the ordered phase's reference\n\
         put(w):            if atomic decrement of w.refs reaches 0: free(w)\n\
         ```\n\n\
         It replaces `free_self`: for `self` the ordered phase's put never\n\
         frees, because the executing worker still holds its reference. No\n\
         item outlives both events, so nothing leaks, and nothing is freed\n\
         twice, because the decrement is atomic.\n\n\
         Results at the matrix bounds ({} upper items, at most {} I/O waits,\n\
         at most {} workers, max_active {}, LIFO allocator), BFS, every\n\
         invariant checked on every state (including BT-7: no item is freed\n\
         while its own worker is inside the helper), and every terminal\n\
         state complete (every item freed, so no item is lost):\n\n\
         | scenario | steps | answer |\n|---|---|---|",
        BOUNDS.items, BOUNDS.waits, BOUNDS.workers, BOUNDS.max_active
    );
    for (c, o) in fix {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            c.scenario,
            c.granularity,
            verdict(o)
        );
    }
    if let Some(t) = r1 {
        let f = follow_under(t, Version::V6Fix);
        let _ = writeln!(
            out,
            "\nThe R1 schedule of section 2 under the fix: C completes X's\n\
             ordered phase but leaves the free to A; the bottom filesystem's\n\
             item gets a fresh address and runs.\n\n```text"
        );
        out.push_str(&f.render().unwrap_or_default());
        let _ = writeln!(out, "replay: {}\n```", f.replay_string());
    }
    let _ = writeln!(
        out,
        "\nLarger exhaustive runs (depth-first; the recorded state counts are\n\
         checked by the test `larger_proof_v6_fix`):\n\n\
         | setup | answer |\n|---|---|"
    );
    for p in &PROOF {
        let _ = writeln!(
            out,
            "| {} | not reachable: all {} states explored |",
            p.setup, p.states
        );
    }
    let _ = writeln!(
        out,
        "\n**The alternative that does not work (`v6-defer-all`).** Extend\n\
         `free_self` to every item: a worker collects the items whose ordered\n\
         phase it ran and frees them all when it leaves `run_ordered_work`.\n\
         It only moves the free to the end of the *freeing* worker's loop,\n\
         which can still come before the item's own worker takes\n\
         `list_lock`: {}.\n",
        verdict(alt)
    );
    trace_block(out, alt);
    let _ = writeln!(
        out,
        "\nThe other alternative is on the workqueue side: identify a running\n\
         item by something that is never recycled while it runs instead of\n\
         its address (kwq's busy table does, by item). The `kwq` rows of the\n\
         matrix show that identity alone removes every path, even with the\n\
         pre-2019 early free; in the kernel it would touch every workqueue\n\
         user, while the fix above stays inside `async-thread.c`.\n"
    );
}

fn starvation(out: &mut String, starve: &Outcome, rescued: &Outcome) {
    let _ = writeln!(
        out,
        "## 4. Pool starvation and the rescuer\n\n\
         A different way for stacked filesystems to hang on one pool: every\n\
         worker is blocked and no new one can be created (kthread creation\n\
         waits for memory reclaim). The model's starvation scenarios use a bound,\n\
         concurrency-managed pool (one running worker at a time) that cannot\n\
         grow beyond {} worker, {} upper items, at most {} I/O waits. Without\n\
         rescuers: {}.\n",
        STARVE_BOUNDS.workers,
        STARVE_BOUNDS.items,
        STARVE_BOUNDS.waits,
        verdict(starve)
    );
    trace_block(out, starve);
    let _ = writeln!(
        out,
        "\nWith the mayday path (every Btrfs workqueue is `WQ_MEM_RECLAIM`, so\n\
         each has a rescuer that may take its own workqueue's items from the\n\
         worklist while the pool needs a worker it cannot create):\n\
         {}. The bottom filesystem's rescuer runs the bottom item, whose\n\
         ordered phase completes the top worker's write. A rescuer cannot\n\
         help against R1 (reasoning, not a model run): it only takes items\n\
         from the worklist, and a recycled item parked on a blocked worker's\n\
         scheduled list is not there. With a\n\
         cap of two workers the pool does not starve in this scenario at all:\n\
         only the head of an ordered list runs its ordered phase, so at most\n\
         one top worker is ever blocked.\n",
        verdict(rescued)
    );
}

fn assumptions(out: &mut String) {
    let _ = writeln!(
        out,
        "## 5. Assumptions behind these answers\n\n\
         1. **Bounds.** Answers hold at the stated numbers of items, I/O\n\
            waits and workers. R1 needs three upper items at `fine` (X, W and\n\
            the freeing worker's Y) and four workers; two items at `fine-all`.\n\
         2. **LIFO allocation in one size class.** The bottom filesystem's\n\
            next item gets the most recently freed address (a SLUB per-CPU\n\
            freelist, all on one CPU), and top items, bottom items and end-io\n\
            items share a size class. Not verified for real slab caches.\n\
         3. **One pool.** Top and bottom items are queued to the same unbound\n\
            pool (same attributes, same affinity pod).\n\
         4. **The blocking write** of W's ordered phase is served by one new\n\
            bottom `async_cow` item, whose ordered phase completing ends the\n\
            wait. The loop device's own thread is folded into that.\n\
         5. **The stall.** The victim stops between setting DONE and taking\n\
            `list_lock` for a whole ordered phase on another worker\n\
            (preemption or an interrupt can do it). The model has no time or\n\
            probability: this is possibility, not likelihood.\n\
         6. **Sequential consistency.** Memory barriers are not modelled. A\n\
            weaker memory order can only add behaviours, so the reachable\n\
            answers stand; the fix's answers assume its reference count is\n\
            an atomic decrement with the usual release/acquire ordering.\n\
         7. **Not modelled:** flush and cancel, delayed work, worker\n\
            retirement, Btrfs thresholds (`max_active` is fixed), NUMA and\n\
            several pods, the rescuer's batch of up to 16 items (here it takes\n\
            one item per mayday).\n"
    );
}

fn reproduce(out: &mut String) {
    let _ = writeln!(
        out,
        "## 6. Reproduce every number\n\n\
         Build once: `cargo build --release -p kwq-cli`, then with\n\
         `K=target/release/kwq`:\n\n\
         | what | command |\n|---|---|\n\
         | this report | `$K model report` |\n\
         | every matrix cell (exit 1 on a mismatch) | `$K model matrix` |\n\
         | section 1 | `$K model check --code v4 --scenario 2019` |\n\
         | section 2 | `$K model check --code v6 --scenario 2019 --granularity fine` |\n\
         | section 3, fix, one cell | `$K model check --code v6-fix --scenario 2019 --granularity fine-all` |\n\
         | section 3, alternative | `$K model check --code v6-defer-all --scenario 2019 --granularity fine` |\n\
         | section 4 | `$K model check --code v6 --scenario starve --items 2 --waits 2 --workers 1` |\n\
         | section 4, rescuer | `$K model check --code v6 --scenario starve-rescuer --items 2 --waits 2 --workers 1` |"
    );
    for p in &PROOF {
        let _ = writeln!(
            out,
            "| section 3, larger run | `$K {}` |",
            &p.command()[4..]
        );
    }
    let _ = writeln!(
        out,
        "| a trace, step by step | `$K model replay '<replay string>'` |\n\
         | the tests | `cargo test -p kwq-model --release -- --include-ignored` |"
    );
    let _ = Via::NoCollision;
}
