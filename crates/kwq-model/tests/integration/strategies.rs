//! The strategies agree with each other.

use kwq_model::{check, Bfs, Config, Dfs, RandomWalk, Scenario, Setup, Version};

#[test]
fn bfs_trace_is_no_longer_than_dfs_trace() {
    for (v, s) in [
        (Version::V4, Scenario::Y2019),
        (Version::V3_16, Scenario::Y2014),
        (Version::V3_16, Scenario::Y2019),
    ] {
        let setup = Setup::new(v, s);
        let b = check(setup, &Config::default(), &mut Bfs);
        let d = check(setup, &Config::default(), &mut Dfs);
        let bl = b.finding.as_ref().unwrap().trace.actions.len();
        let dl = d.finding.as_ref().unwrap().trace.actions.len();
        assert!(bl <= dl, "{v} × {s}: bfs {bl} > dfs {dl}");
        assert_eq!(d.deadlock_reachable(), Some(true));
        assert!(d.self_check.is_ok());
    }
}

#[test]
fn dfs_and_bfs_count_the_same_states_when_nothing_is_found() {
    let setup = Setup::new(Version::Kwq, Scenario::Y2019).with_items(2);
    let b = check(setup, &Config::default(), &mut Bfs);
    let d = check(setup, &Config::default(), &mut Dfs);
    assert_eq!(b.deadlock_reachable(), Some(false));
    assert_eq!(d.deadlock_reachable(), Some(false));
    assert_eq!(b.stats.states, d.stats.states);
    assert!(b.stats.states > 100);
}

#[test]
fn random_walk_finds_the_2019_deadlock_and_is_seeded() {
    let setup = Setup::new(Version::V4, Scenario::Y2019);
    let mut cfg = Config::default();
    cfg.walks = 2000;
    let a = check(setup, &cfg, &mut RandomWalk::new(7));
    let b = check(setup, &cfg, &mut RandomWalk::new(7));
    assert_eq!(a.deadlock_reachable(), Some(true));
    assert!(!a.exhaustive);
    assert!(a.self_check.is_ok());
    assert_eq!(
        a.finding.unwrap().trace.replay_string(),
        b.finding.unwrap().trace.replay_string()
    );
}

#[test]
fn random_walk_on_kwq_is_inconclusive_not_unreachable() {
    let setup = Setup::new(Version::Kwq, Scenario::Y2019);
    let mut cfg = Config::default();
    cfg.walks = 200;
    let o = check(setup, &cfg, &mut RandomWalk::new(1));
    assert_eq!(o.deadlock_reachable(), None);
    assert!(o.finding.is_none());
    assert!(o.stats.complete > 0);
}

#[test]
fn max_states_bounds_a_search_and_says_so() {
    let setup = Setup::new(Version::V5_5, Scenario::Y2019);
    let mut cfg = Config::default();
    cfg.max_states = 500;
    let o = check(setup, &cfg, &mut Bfs);
    assert!(o.stats.truncated);
    assert_eq!(o.deadlock_reachable(), None);
    assert!(kwq_model::report::render_outcome(&o).contains("INCONCLUSIVE"));
}

#[test]
fn any_free_slot_allocator_keeps_the_coarse_answers() {
    // With LIFO reuse the deferred self-free hides the slot at coarse
    // granularity; letting the allocator pick any free slot does not help
    // either, because the worker's own slot is never free while it waits.
    let setup = Setup::new(Version::V5_5Generic, Scenario::Y2014)
        .with_items(2)
        .with_alloc(kwq_model::AllocPolicy::Any);
    let o = check(setup, &Config::default(), &mut Bfs);
    assert_eq!(o.deadlock_reachable(), Some(false));
    // Before the fix, any-slot reuse deadlocks as LIFO does.
    let setup = Setup::new(Version::V3_16, Scenario::Y2014).with_alloc(kwq_model::AllocPolicy::Any);
    let o = check(setup, &Config::default(), &mut Bfs);
    assert_eq!(o.deadlock_reachable(), Some(true));
}
