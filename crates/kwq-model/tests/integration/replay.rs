//! Replay strings round-trip and re-run to the same state; the determinism
//! self-check; a deadlock state really cannot complete.

use kwq_model::explore::StateSet;
use kwq_model::model::{enabled_actions, step};
use kwq_model::trace::self_check;
use kwq_model::{Scenario, State, Trace, Version};

#[test]
fn replay_string_round_trips_and_reaches_the_same_state() {
    for (v, s) in [
        (Version::V4, Scenario::Y2019),
        (Version::V3_16, Scenario::Y2014),
    ] {
        let o = super::bfs(v, s);
        let f = o.finding.expect("deadlock");
        let string = f.trace.replay_string();
        let parsed = Trace::parse(&string).unwrap();
        assert_eq!(parsed, f.trace);
        assert_eq!(parsed.replay_string(), string);
        let r = parsed.replay().unwrap();
        assert_eq!(r.last(), &f.state);
        assert!(self_check(&parsed, &f.state).is_ok());
    }
}

#[test]
fn replay_strategy_reports_the_same_deadlock() {
    let o = super::bfs(Version::V4, Scenario::Y2019);
    let f = o.finding.unwrap();
    let mut rep = kwq_model::Replay::new(f.trace.actions.clone());
    let o2 = kwq_model::check(f.trace.setup, &kwq_model::Config::default(), &mut rep);
    assert_eq!(rep.error(), None);
    assert_eq!(o2.deadlock_reachable(), Some(true));
    assert_eq!(o2.finding.unwrap().state, f.state);
}

#[test]
fn bad_replay_strings_are_rejected_with_a_reason() {
    assert!(Trace::parse("hello").is_err());
    let e = Trace::parse("kwq1:v9:2019:coarse:lifo:i2:w4:a4:o1:Q1").unwrap_err();
    assert!(e.to_string().contains("unknown version `v9`"), "{e}");
    let e = Trace::parse("kwq1:v4:2019:coarse:lifo:i2:w4:a4:o1:Q1.Z9").unwrap_err();
    assert!(e.to_string().contains("Z9"), "{e}");
    // Parses, but the second action is not enabled.
    let t = Trace::parse("kwq1:v4:2019:coarse:lifo:i2:w4:a4:o1:Q1.FA").unwrap();
    let e = t.replay().unwrap_err();
    assert!(
        e.to_string().contains("step 2: action FA is not enabled"),
        "{e}"
    );
}

#[test]
fn self_check_detects_a_wrong_end_state() {
    let o = super::bfs(Version::V4, Scenario::Y2019);
    let f = o.finding.unwrap();
    let initial = State::initial(f.trace.setup);
    assert!(self_check(&f.trace, &initial).is_err());
}

#[test]
fn write_new_refuses_to_overwrite() {
    let o = super::bfs(Version::V4, Scenario::Y2019);
    let f = o.finding.unwrap();
    let dir = std::env::temp_dir().join(format!("kwq-model-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trace.txt");
    let _ = std::fs::remove_file(&path);
    f.trace.write_new(&path).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("kwq1:v4:2019:"));
    assert!(text.contains("X′ parked behind worker A"));
    assert!(f.trace.write_new(&path).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Everything reachable from a reported deadlock state is stuck: the cycle
/// is stable and no run completes (the explorers' early report is sound).
#[test]
fn a_reported_deadlock_never_completes() {
    for (v, s) in [
        (Version::V4, Scenario::Y2019),
        (Version::V3_16, Scenario::Y2014),
    ] {
        let f = super::bfs(v, s).finding.unwrap();
        let mut seen = StateSet::default();
        let mut todo = vec![f.state];
        let mut terminals = 0;
        while let Some(st) = todo.pop() {
            if !seen.insert(st) {
                continue;
            }
            assert!(!st.is_complete());
            assert!(kwq_model::model::find_cycle(&st).is_some());
            let en = enabled_actions(&st);
            terminals += usize::from(en.is_empty());
            todo.extend(en.into_iter().map(|a| step(&st, a)));
        }
        assert!(terminals > 0 && seen.len() > 1);
    }
}
