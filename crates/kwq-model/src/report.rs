//! Human-readable reports of one run, shared by `kwq model check`,
//! `replay` and `reproduce`.

use crate::explore::{FindingKind, Outcome};
use crate::trace::{describe_workers, Trace};
use std::fmt::Write as _;

/// The full report of one outcome: verdict, step table, final state,
/// wait-for cycle, replay string, self-check, statistics and bounds.
#[must_use]
pub fn render_outcome(o: &Outcome) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", o.setup);
    match &o.finding {
        Some(f) => {
            let n = f.trace.actions.len();
            let shortest = if o.strategy == "bfs" {
                "shortest trace"
            } else {
                "trace"
            };
            match &f.kind {
                FindingKind::Deadlock { via, .. } => {
                    let _ = writeln!(
                        out,
                        "DEADLOCK reachable ({}): {shortest}, {n} steps ({})\n",
                        via.as_str(),
                        o.strategy
                    );
                }
                FindingKind::Violation(v) => {
                    let _ = writeln!(out, "INVARIANT VIOLATED: {v}: {shortest}, {n} steps\n");
                }
            }
            out.push_str(&render_trace_and_cycle(&f.trace, &f.kind));
            let _ = writeln!(
                out,
                "determinism self-check: {}",
                match &o.self_check {
                    Ok(()) => "ok (replayed twice; states and enabled actions equal at every step)"
                        .to_string(),
                    Err(e) => format!("FAILED: {e}"),
                }
            );
        }
        None if o.exhaustive => {
            let _ = writeln!(
                out,
                "deadlock NOT reachable: {} explored all {} reachable states",
                o.strategy, o.stats.states
            );
        }
        None => {
            let why = if o.stats.truncated {
                "stopped at max_states (KWQ_MODEL_MAX_STATES or --max-states)"
            } else if o.stats.depth_cut {
                "paths cut at max_depth (KWQ_MODEL_MAX_DEPTH)"
            } else {
                "the strategy is not exhaustive"
            };
            let _ = writeln!(
                out,
                "no deadlock found, INCONCLUSIVE: {why}; {} states visited",
                o.stats.states
            );
        }
    }
    let s = o.setup;
    let _ = writeln!(out, "{}", render_stats(o));
    let _ = writeln!(
        out,
        "bounds: {} upper items, at most {} I/O waits, at most {} workers, max_active {}, {} allocator, {} steps",
        s.items, s.waits, s.max_workers, s.max_active, s.alloc, s.granularity
    );
    out
}

/// The statistics line. A random walk counts steps, not transitions; a run
/// too short to time says so instead of printing a zero duration and rate.
fn render_stats(o: &Outcome) -> String {
    let st = &o.stats;
    let work = if o.strategy == "random" {
        format!("walked {} steps", st.states)
    } else {
        format!(
            "explored {} states, {} transitions",
            st.states, st.transitions
        )
    };
    let time = match elapsed(st.elapsed) {
        Some(t) => format!("in {t} ({:.0} states/s)", st.states_per_sec()),
        None => "in under 0.1 ms".to_string(),
    };
    format!(
        "{work} {time}; {} complete end states, {} worker-cap stalls",
        st.complete, st.cap_stalls
    )
}

/// A duration for people ("0.4 ms", "12.3 ms", "1.25 s"), or `None` below
/// 0.1 ms, too short to print a time or a rate from (never "0.000 s").
pub(crate) fn elapsed(d: std::time::Duration) -> Option<String> {
    let secs = d.as_secs_f64();
    if secs >= 1.0 {
        Some(format!("{secs:.2} s"))
    } else if secs >= 0.0001 {
        Some(format!("{:.1} ms", secs * 1e3))
    } else {
        None
    }
}

/// The step table, the final busy workers, the wait-for cycle and the
/// replay string of a finding.
#[must_use]
pub fn render_trace_and_cycle(trace: &Trace, kind: &FindingKind) -> String {
    let mut out = String::new();
    match trace.replay() {
        Ok(r) => {
            out.push_str(&trace.render().unwrap_or_default());
            let last = r.last();
            let _ = writeln!(out, "\nfinal state:\n{}", describe_workers(last));
            if let FindingKind::Deadlock { cycle, .. } = kind {
                match cycle {
                    Some(c) => {
                        let _ = writeln!(out, "wait-for cycle: {}", c.render(last));
                    }
                    None => {
                        let _ = writeln!(
                            out,
                            "no step is enabled and some item never completes (no wait-for cycle)"
                        );
                    }
                }
            }
        }
        Err(e) => {
            let _ = writeln!(out, "(trace does not replay: {e})");
        }
    }
    let _ = writeln!(out, "replay: {}", trace.replay_string());
    out
}
