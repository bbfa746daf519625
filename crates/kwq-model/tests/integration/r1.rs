//! Today's code (`v6`), the candidate fix (`v6-fix`), the §4.5 starvation
//! scenarios, the committed report and the larger proof runs.

use kwq_model::matrix::{Expect, EXPECTED};
use kwq_model::model::state::{Pc, HELD};
use kwq_model::model::{enabled_actions, invariants, step, step_events, Action, Event, Via};
use kwq_model::proof::PROOF;
use kwq_model::{check, Bfs, Config, Granularity, Scenario, Setup, State, Trace, Version};

fn bfs(setup: Setup) -> kwq_model::Outcome {
    check(setup, &Config::default(), &mut Bfs)
}

/// The R1 trace under `v6`: the victim's own item is freed by another
/// worker while the victim is between DONE and its first `list_lock`.
fn r1_trace() -> Trace {
    let setup = Setup::new(Version::V6, Scenario::Y2019).with_granularity(Granularity::Fine);
    let o = bfs(setup);
    assert_eq!(o.via(), Some(Via::OtherWorkerFree));
    assert_eq!(o.self_check, Ok(()));
    o.finding.expect("R1 is reachable under v6").trace
}

#[test]
fn r1_under_v6_frees_the_victims_item_from_another_worker() {
    let t = r1_trace();
    let r = t.replay().unwrap();
    let freed_behind = r.events.iter().enumerate().any(|(k, ev)| {
        ev.iter().any(|e| match *e {
            Event::Freed { item, by, .. } => {
                let s = &r.states[k + 1];
                s.workers.iter().enumerate().any(|(i, w)| {
                    i != by.0 as usize
                        && w.pc == Pc::Lock
                        && w.current.is_some_and(|c| c.item == item)
                })
            }
            _ => false,
        })
    });
    assert!(freed_behind, "{}", t.render().unwrap());
}

#[test]
fn the_r1_schedule_does_not_deadlock_under_the_fix() {
    // Follow the v6 R1 schedule under v6-fix: every step still happens
    // (the bottom allocation just gets another slot), the completing
    // worker leaves X's free to X's own worker, and X′ runs instead of
    // being parked.
    let t = r1_trace();
    let f = kwq_model::r1::follow_under(&t, Version::V6Fix);
    assert_eq!(f.actions.len(), t.actions.len(), "{}", f.replay_string());
    let r = f.replay().unwrap();
    for s in &r.states {
        invariants::check_all(s).unwrap();
        assert!(kwq_model::model::find_cycle(s).is_none());
    }
    let deferred_to_owner = f.actions.iter().zip(&r.events).any(|(a, ev)| {
        ev.iter()
            .any(|e| matches!(*e, Event::FreeDeferred { worker, .. } if Some(worker) != a.worker()))
    });
    assert!(deferred_to_owner, "{}", f.render().unwrap());
    let last = r.last();
    assert!(last.workers.iter().all(|w| w.scheduled.is_empty()));
    assert!(matches!(f.actions.last(), Some(Action::Pick(_))));
}

#[test]
fn bt7_fires_when_a_held_item_is_freed() {
    let setup = Setup::new(Version::V6Fix, Scenario::Y2019).with_items(1);
    let mut s = State::initial(setup);
    // Queue X, start it: the worker is in the helper and holds X.
    for _ in 0..2 {
        let a = enabled_actions(&s)[0];
        s = step(&s, a);
    }
    let w = s.workers.iter().position(|w| w.current.is_some()).unwrap();
    let me = s.workers[w].current.unwrap().item;
    assert_ne!(s.item(me).btrfs & HELD, 0);
    assert_eq!(invariants::check_all(&s), Ok(()));
    s.items[me.0 as usize].freed = true;
    let v = invariants::bt7_worker_holds_its_item(&s).unwrap_err();
    assert_eq!(v.property, "BT-7");
}

#[test]
fn starvation_needs_a_pool_that_cannot_grow_and_the_rescuer_unsticks_it() {
    let base = Setup::new(Version::V6, Scenario::Starve)
        .with_items(2)
        .with_waits(2)
        .with_workers(1);
    let o = bfs(base);
    assert_eq!(o.via(), Some(Via::Starvation));
    assert_eq!(o.self_check, Ok(()));
    let f = o.finding.unwrap();
    assert!(f.trace.actions.len() <= 6, "{}", f.trace.replay_string());
    assert!(!f.state.worklist.is_empty());
    // Two workers: only an ordered list's head runs its ordered phase, so
    // at most one top worker is blocked and the other runs the bottom item.
    assert_eq!(bfs(base.with_workers(2)).deadlock_reachable(), Some(false));
    // With rescuers: not reachable, and some rescuer does run an item.
    let rescued = Setup {
        scenario: Scenario::StarveRescuer,
        ..base
    };
    let o = bfs(rescued);
    assert_eq!(o.deadlock_reachable(), Some(false));
    assert!(o.stats.complete > 0);
    let mut seen = kwq_model::explore::StateSet::default();
    let mut todo = vec![State::initial(rescued)];
    let mut mayday_started = false;
    while let Some(s) = todo.pop() {
        if !seen.insert(s) {
            continue;
        }
        for a in enabled_actions(&s) {
            let (n, ev) = step_events(&s, a);
            if matches!(a, Action::Mayday(_)) {
                mayday_started |= ev.iter().any(|e| matches!(e, Event::Started { .. }));
            }
            todo.push(n);
        }
    }
    assert!(mayday_started, "a rescuer must take an item somewhere");
}

#[test]
fn the_starvation_cells_are_in_the_matrix() {
    let get = |s| {
        EXPECTED
            .iter()
            .find(|c| c.version == Version::V6 && c.scenario == s)
            .map(|c| c.expect)
    };
    assert_eq!(
        get(Scenario::Starve),
        Some(Expect::Reachable(Via::Starvation))
    );
    assert_eq!(get(Scenario::StarveRescuer), Some(Expect::NotReachable));
}

/// `docs/report-r1.md` is exactly what `kwq model report` prints. Set
/// `KWQ_MODEL_BLESS=1` to rewrite it after a deliberate change.
#[test]
#[cfg_attr(debug_assertions, ignore = "heavy: run with --release")]
fn committed_report_matches_the_model() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/report-r1.md");
    let now = kwq_model::r1::render();
    assert!(!now.contains("NOT ALL CELLS HOLD"));
    if std::env::var_os("KWQ_MODEL_BLESS").is_some() {
        std::fs::write(path, &now).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == now,
        "docs/report-r1.md drifted from the model: regenerate it with \
         `kwq model report > docs/report-r1.md` (or KWQ_MODEL_BLESS=1)"
    );
}

/// The larger exhaustive runs of `v6-fix` quoted in the report. Minutes and
/// gigabytes: run with
/// `cargo test -p kwq-model --release --test integration larger_proof_v6_fix -- --ignored`.
#[test]
#[ignore = "larger proof: minutes; run explicitly (see docs/model.md)"]
fn larger_proof_v6_fix() {
    for p in &PROOF {
        let o = p.run();
        assert!(
            p.confirms(&o),
            "{}: exhaustive {}, finding {:?}, states {} (recorded {})",
            p.setup,
            o.exhaustive,
            o.finding.as_ref().map(|f| f.trace.replay_string()),
            o.stats.states,
            p.states
        );
    }
}
