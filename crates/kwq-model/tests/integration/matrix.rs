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
}

#[test]
fn every_cell_has_a_test_and_the_table_is_section_4_4() {
    assert_eq!(EXPECTED.len(), 17);
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
