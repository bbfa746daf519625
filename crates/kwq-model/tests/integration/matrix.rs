//! Every cell of the expected matrix, at the matrix's own bounds.

use kwq_model::matrix::{Cell, Expect, BOUNDS, EXPECTED};
use kwq_model::model::Via;
use kwq_model::{Granularity, Scenario, Version};

fn run(v: Version, s: Scenario, g: Granularity) {
    let cell: Cell = *EXPECTED
        .iter()
        .find(|c| c.version == v && c.scenario == s && c.granularity == g)
        .expect("cell is in the expected table");
    let r = cell.run();
    assert_eq!(
        r.found(),
        Some(cell.expect),
        "{v} × {s} ({g}): states {}, bounded {}",
        r.outcome.stats.states,
        r.outcome.stats.bounded()
    );
    assert!(r.matches());
    assert_eq!(r.outcome.self_check, Ok(()));
    match cell.expect {
        Expect::NotReachable => {
            assert!(
                r.outcome.exhaustive,
                "an unreachable cell must be exhaustive"
            );
            assert!(!r.outcome.stats.bounded());
            assert!(r.outcome.stats.complete > 0, "some runs must complete");
        }
        Expect::Reachable(_) => {
            let f = r.outcome.finding.as_ref().expect("a trace");
            assert!(f.trace.replay().is_ok());
            assert!(r
                .json()
                .contains(&format!("\"trace_len\":{}", f.trace.actions.len())));
        }
    }
}

macro_rules! cells {
    ($($name:ident: $v:ident $s:ident $g:ident $($heavy:ident)?;)*) => {$(
        #[test]
        $(#[cfg_attr(debug_assertions, ignore = concat!(stringify!($heavy), ": run with --release"))])?
        fn $name() {
            run(Version::$v, Scenario::$s, Granularity::$g);
        }
    )*};
}

cells! {
    v3_16_2014_coarse: V3_16 Y2014 Coarse;
    v3_16_2019_coarse: V3_16 Y2019 Coarse;
    v4_2014_coarse: V4 Y2014 Coarse;
    v4_2019_coarse: V4 Y2019 Coarse;
    v5_5_2014_coarse: V5_5 Y2014 Coarse heavy;
    v5_5_2019_coarse: V5_5 Y2019 Coarse heavy;
    v5_5_generic_2014_coarse: V5_5Generic Y2014 Coarse;
    v5_5_generic_2019_coarse: V5_5Generic Y2019 Coarse heavy;
    kwq_2014_coarse: Kwq Y2014 Coarse;
    kwq_2019_coarse: Kwq Y2019 Coarse;
    v5_5_2014_fine: V5_5 Y2014 Fine heavy;
    v5_5_2019_fine_r1: V5_5 Y2019 Fine;
    v5_5_generic_2014_fine_r1: V5_5Generic Y2014 Fine;
    v5_5_generic_2019_fine_r1: V5_5Generic Y2019 Fine;
    kwq_2014_fine: Kwq Y2014 Fine heavy;
    kwq_2019_fine: Kwq Y2019 Fine heavy;
    v5_5_2019_fine_all: V5_5 Y2019 FineAll;
    v6_2014_coarse: V6 Y2014 Coarse;
    v6_2019_coarse: V6 Y2019 Coarse heavy;
    v6_2014_fine_r1: V6 Y2014 Fine;
    v6_2019_fine_r1: V6 Y2019 Fine;
    v6_2014_fine_all_r1: V6 Y2014 FineAll;
    v6_2019_fine_all_r1: V6 Y2019 FineAll;
    v6_fix_2014_coarse: V6Fix Y2014 Coarse;
    v6_fix_2019_coarse: V6Fix Y2019 Coarse heavy;
    v6_fix_2014_fine: V6Fix Y2014 Fine heavy;
    v6_fix_2019_fine: V6Fix Y2019 Fine heavy;
    v6_fix_2014_fine_all: V6Fix Y2014 FineAll heavy;
    v6_fix_2019_fine_all: V6Fix Y2019 FineAll heavy;
    v6_defer_all_2019_fine: V6DeferAll Y2019 Fine;
    v6_defer_all_2019_fine_all: V6DeferAll Y2019 FineAll;
    v6_starve: V6 Starve Coarse;
    v6_starve_rescuer: V6 StarveRescuer Coarse;
}

/// The `v6` rows say what the source says: today's helper takes the same
/// steps as mainline v5.5 with the single `btrfs_work_helper`, so every
/// `v6` cell expects what the `v5.5-generic` cell of the same scenario and
/// granularity expects, and where both versions are in the matrix they
/// explore the same number of states.
#[test]
fn v6_rows_match_v5_5_generic() {
    let mut compared = 0;
    for c in EXPECTED.iter().filter(|c| c.version == Version::V6) {
        if let Some(g) = EXPECTED.iter().find(|x| {
            x.version == Version::V5_5Generic
                && x.scenario == c.scenario
                && x.granularity == c.granularity
        }) {
            assert_eq!(c.expect, g.expect, "{:?}", c);
            if c.granularity != Granularity::Coarse || cfg!(not(debug_assertions)) {
                let (a, b) = (c.run().outcome, g.run().outcome);
                assert_eq!(a.stats.states, b.stats.states, "{:?}", c);
                assert_eq!(
                    a.finding.map(|f| f.trace.actions),
                    b.finding.map(|f| f.trace.actions)
                );
            }
            compared += 1;
        }
    }
    assert_eq!(
        compared, 4,
        "v6 vs v5.5-generic: coarse and fine, 2014 and 2019"
    );
}

/// The candidate fix is expected to close every path, and the alternative
/// to leave R1 open.
#[test]
fn v6_fix_rows_are_all_not_reachable() {
    let fix: Vec<_> = EXPECTED
        .iter()
        .filter(|c| c.version == Version::V6Fix)
        .collect();
    assert_eq!(fix.len(), 6, "coarse, fine and fine-all × 2014 and 2019");
    assert!(fix.iter().all(|c| c.expect == Expect::NotReachable));
    for g in [Granularity::Coarse, Granularity::Fine, Granularity::FineAll] {
        for s in [Scenario::Y2014, Scenario::Y2019] {
            assert!(fix.iter().any(|c| c.granularity == g && c.scenario == s));
        }
    }
    assert!(EXPECTED
        .iter()
        .any(|c| c.version == Version::V6DeferAll
            && c.expect == Expect::Reachable(Via::OtherWorkerFree)));
}

#[test]
fn every_cell_has_a_test_and_the_table_is_section_4_4() {
    assert_eq!(EXPECTED.len(), 33);
    let get = |v, s, g| {
        EXPECTED
            .iter()
            .find(|c| c.version == v && c.scenario == s && c.granularity == g)
            .map(|c| c.expect)
    };
    use Granularity::Coarse;
    use Scenario::{Y2014, Y2019};
    // §4.4, as the issue states it.
    assert_eq!(
        get(Version::V3_16, Y2014, Coarse),
        Some(Expect::Reachable(Via::SelfFree))
    );
    assert_eq!(
        get(Version::V3_16, Y2019, Coarse),
        Some(Expect::Reachable(Via::SelfFree))
    );
    assert_eq!(get(Version::V4, Y2014, Coarse), Some(Expect::NotReachable));
    assert_eq!(
        get(Version::V4, Y2019, Coarse),
        Some(Expect::Reachable(Via::SelfFree))
    );
    assert_eq!(
        get(Version::V5_5, Y2014, Coarse),
        Some(Expect::NotReachable)
    );
    assert_eq!(
        get(Version::V5_5, Y2019, Coarse),
        Some(Expect::NotReachable)
    );
    assert_eq!(
        get(Version::V5_5Generic, Y2014, Coarse),
        Some(Expect::NotReachable)
    );
    for s in [Y2014, Y2019] {
        for g in [Coarse, Granularity::Fine] {
            assert_eq!(get(Version::Kwq, s, g), Some(Expect::NotReachable));
        }
    }
    // Whatever is reachable before the fix is reachable with finer steps.
    assert_eq!(BOUNDS.items, 3, "R1 needs three upper items");
}

#[test]
fn json_line_has_the_issue_fields() {
    let cell = EXPECTED[3]; // v4 × 2019
    assert_eq!(
        (cell.version, cell.scenario),
        (Version::V4, Scenario::Y2019)
    );
    let j = cell.run().json();
    for key in [
        "\"version\":\"v4\"",
        "\"scenario\":\"2019\"",
        "\"deadlock\":true",
        "\"states\":",
        "\"trace_len\":10",
        "\"replay\":\"kwq1:v4:2019:",
        "\"granularity\":\"coarse\"",
        "\"seconds\":",
    ] {
        assert!(j.contains(key), "{key} missing in {j}");
    }
    assert!(j.starts_with('{') && j.ends_with('}') && !j.contains('\n'));
}
