//! Each invariant holds on every reachable state of a small run and fires
//! on a deliberately broken state.

use kwq_model::explore::StateSet;
use kwq_model::model::invariants::{self, check_all};
use kwq_model::model::state::{Current, Pc, Slot, WorkerId, DONE, ORDER_DONE, PARKED};
use kwq_model::model::{enabled_actions, step, Wait};
use kwq_model::{FuncPtr, Granularity, Scenario, Setup, State, Version};

/// The v4 × 2019 deadlock state: A busy on s1 (X, freed) blocked in W's
/// ordered phase, X′ parked behind A, B busy on W.
fn deadlock_state() -> State {
    super::bfs(Version::V4, Scenario::Y2019)
        .finding
        .unwrap()
        .state
}

fn fires(s: &State, property: &str) {
    let (_, f) = invariants::ALL
        .iter()
        .find(|(n, _)| *n == property)
        .expect("known property");
    let v = f(s).expect_err(property);
    assert_eq!(v.property, property);
    assert!(check_all(s).is_err());
    assert!(v.to_string().starts_with(&format!("{property} violated: ")));
}

#[test]
fn invariants_hold_on_every_reachable_state() {
    for g in [Granularity::Coarse, Granularity::FineAll] {
        for v in [Version::V4, Version::V5_5, Version::Kwq] {
            let setup = Setup::new(v, Scenario::Y2019)
                .with_items(2)
                .with_granularity(g);
            let mut seen = StateSet::default();
            let mut todo = vec![State::initial(setup)];
            while let Some(s) = todo.pop() {
                if !seen.insert(s) {
                    continue;
                }
                if let Err(e) = check_all(&s) {
                    panic!("{setup}: {e}");
                }
                todo.extend(enabled_actions(&s).into_iter().map(|a| step(&s, a)));
            }
            assert!(seen.len() > 50);
        }
    }
}

#[test]
fn the_deadlock_state_itself_is_consistent() {
    let s = deadlock_state();
    assert_eq!(check_all(&s), Ok(()));
}

#[test]
fn wq3_fires_when_two_workers_share_a_busy_key() {
    let mut s = deadlock_state();
    let a = s.workers[0].current;
    s.workers[1].current = a;
    fires(&s, "WQ-3");
}

#[test]
fn wq4_fires_on_a_parked_item_that_is_not_pending() {
    let mut s = deadlock_state();
    let parked = s.workers[0].scheduled[0];
    s.items[parked.0 as usize].work = PARKED;
    fires(&s, "WQ-4");
    let mut s = deadlock_state();
    s.items[parked.0 as usize].work &= !PARKED;
    fires(&s, "WQ-4");
}

#[test]
fn wq5_fires_on_a_parked_item_with_another_function() {
    let mut s = deadlock_state();
    let parked = s.workers[0].scheduled[0];
    s.items[parked.0 as usize].func = FuncPtr::EndioMetaHelper;
    fires(&s, "WQ-5");
    let mut s = deadlock_state();
    s.items[parked.0 as usize].slot = Slot(7);
    fires(&s, "WQ-5");
}

#[test]
fn wq6_fires_when_a_queued_item_is_freed() {
    let mut s = deadlock_state();
    let parked = s.workers[0].scheduled[0];
    s.items[parked.0 as usize].freed = true;
    fires(&s, "WQ-6");
}

#[test]
fn wq7_fires_on_wrong_nr_active() {
    let mut s = deadlock_state();
    s.pwqs[1].nr_active += 1;
    fires(&s, "WQ-7");
    let mut s = deadlock_state();
    s.pwqs[0].nr_active = s.setup.max_active + 1;
    fires(&s, "WQ-7");
}

#[test]
fn bt1_fires_on_an_ordered_phase_claimed_out_of_turn() {
    // Three top items queued, none started: claim the second one.
    let setup = Setup::new(Version::V4, Scenario::Y2019);
    let mut s = State::initial(setup);
    for _ in 0..3 {
        let a = enabled_actions(&s)[0];
        s = step(&s, a);
    }
    assert_eq!(s.ordered[0].len(), 3);
    assert_eq!(check_all(&s), Ok(()));
    s.items[1].btrfs = DONE | ORDER_DONE;
    fires(&s, "BT-1");
    let mut s2 = s;
    s2.items[1].btrfs = 0;
    s2.ordered[0].swap(0, 1);
    fires(&s2, "BT-1");
}

#[test]
fn bt3_fires_when_a_worker_runs_the_ordered_phase_of_a_freed_item() {
    let mut s = deadlock_state();
    let Pc::Blocked(h, _) = s.workers[0].pc else {
        panic!("A is blocked")
    };
    s.items[h.0 as usize].freed = true;
    fires(&s, "BT-3");
    let mut s = deadlock_state();
    s.workers[0].free_self = true; // its own X is already freed
    fires(&s, "BT-3");
}

#[test]
fn bt4_fires_when_a_post_fix_worker_frees_its_own_item_inside_the_loop() {
    // The v4 deadlock state is exactly what v5.5 forbids: relabel it.
    let mut s = deadlock_state();
    assert!(invariants::bt4_deferred_self_free(&s).is_ok());
    s.setup.version = Version::V5_5;
    fires(&s, "BT-4");
}

#[test]
fn kwq_identity_never_parks_a_fresh_item() {
    // Put a fresh item at the busy slot of a worker, as the allocator would:
    // the kernel key matches it, kwq's identity does not.
    let mut s = deadlock_state();
    let parked = s.workers[0].scheduled[0];
    assert_eq!(s.find_executing(parked), Some(WorkerId(0)));
    s.setup.version = Version::Kwq;
    assert_eq!(s.find_executing(parked), None);
    let c: Current = s.workers[0].current.unwrap();
    assert_ne!(c.item, parked);
    assert!(matches!(s.workers[0].pc, Pc::Blocked(_, Wait::Lower(Some(b))) if b == parked));
}
