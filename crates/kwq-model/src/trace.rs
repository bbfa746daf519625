//! Counterexample traces: replay strings, step tables and the determinism
//! self-check.
//!
//! A replay string is self-contained:
//!
//! ```text
//! kwq1:v4:2019:coarse:lifo:i2:w4:a4:o1:Q1.Q2.PA.FA.PB.…
//! ^^^^ ^^^^^^^^^^^^^^^^^^^^^^^^^^^^ ^^^^^^^^^^^^^^^
//! format  setup (version, scenario,  action tokens
//!         granularity, allocator,    (see model::action)
//!         items, workers, max_active)
//! ```

use crate::model::action::{Event, LoopExit};
use crate::model::state::{Origin, Pc, Wait};
use crate::model::{enabled_actions, step_events, Action, State};
use crate::setup::{ParseSetupError, Setup};
use std::fmt::{self, Write as _};
use std::path::Path;

/// Format tag at the front of every replay string.
pub const FORMAT: &str = "kwq1";

/// A schedule from the initial state of `setup`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trace {
    /// What is being checked.
    pub setup: Setup,
    /// The actions, in order.
    pub actions: Vec<Action>,
}

/// A replay string that cannot be parsed, or a trace that does not replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceError {
    msg: String,
}

impl TraceError {
    fn new(msg: impl Into<String>) -> TraceError {
        TraceError { msg: msg.into() }
    }
}

impl fmt::Display for TraceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for TraceError {}

impl From<ParseSetupError> for TraceError {
    fn from(e: ParseSetupError) -> TraceError {
        TraceError::new(e.to_string())
    }
}

/// The states, events and enabled actions along a replayed trace.
#[derive(Clone, Debug)]
pub struct Replayed {
    /// `states[0]` is the initial state, `states[k]` the state after `k` steps.
    pub states: Vec<State>,
    /// `events[k]`: what step `k + 1` did.
    pub events: Vec<Vec<Event>>,
    /// `enabled[k]`: the actions enabled in `states[k]`.
    pub enabled: Vec<Vec<Action>>,
}

impl Replayed {
    /// The state the trace ends in.
    ///
    /// # Panics
    ///
    /// Never for a replay built by [`Trace::replay`], which always holds the
    /// initial state.
    #[must_use]
    pub fn last(&self) -> &State {
        self.states.last().expect("at least the initial state")
    }
}

impl Trace {
    /// The replay string.
    #[must_use]
    pub fn replay_string(&self) -> String {
        let tokens: Vec<String> = self.actions.iter().map(Action::to_string).collect();
        format!("{FORMAT}:{}:{}", self.setup.encode(), tokens.join("."))
    }

    /// Parses a replay string.
    ///
    /// # Errors
    ///
    /// A [`TraceError`] if the string is not a replay string of this format
    /// (prefix, setup or action token).
    pub fn parse(s: &str) -> Result<Trace, TraceError> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        if parts.len() != 10 || parts[0] != FORMAT {
            return Err(TraceError::new(format!(
                "not a {FORMAT} replay string (expected {FORMAT}:VERSION:SCENARIO:GRANULARITY:ALLOC:iN:wN:aN:oN:TOKENS)"
            )));
        }
        let size = |p: &str, tag: char| -> Result<u8, TraceError> {
            p.strip_prefix(tag)
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| TraceError::new(format!("bad size field `{p}` (want {tag}N)")))
        };
        let setup = Setup {
            version: parts[1].parse()?,
            scenario: parts[2].parse()?,
            granularity: parts[3].parse()?,
            alloc: parts[4].parse()?,
            items: size(parts[5], 'i')?,
            max_workers: size(parts[6], 'w')?,
            max_active: size(parts[7], 'a')?,
            waits: size(parts[8], 'o')?,
        };
        setup.validate()?;
        let actions = if parts[9].is_empty() {
            Vec::new()
        } else {
            parts[9]
                .split('.')
                .map(|t| t.parse().map_err(|e| TraceError::new(format!("{e}"))))
                .collect::<Result<_, _>>()?
        };
        Ok(Trace { setup, actions })
    }

    /// Replays the trace, checking each action is enabled.
    ///
    /// # Errors
    ///
    /// A [`TraceError`] at the first action that is not enabled.
    pub fn replay(&self) -> Result<Replayed, TraceError> {
        let mut s = State::initial(self.setup);
        let mut r = Replayed {
            states: vec![s],
            events: Vec::new(),
            enabled: Vec::new(),
        };
        for (k, &a) in self.actions.iter().enumerate() {
            let enabled = enabled_actions(&s);
            if !enabled.contains(&a) {
                let list: Vec<String> = enabled.iter().map(Action::to_string).collect();
                return Err(TraceError::new(format!(
                    "step {}: action {a} is not enabled (enabled: {})",
                    k + 1,
                    list.join(" ")
                )));
            }
            let (t, ev) = step_events(&s, a);
            r.enabled.push(enabled);
            r.events.push(ev);
            r.states.push(t);
            s = t;
        }
        r.enabled.push(enabled_actions(&s));
        Ok(r)
    }

    /// The human step table (see the module docs of [`crate`] for the vocabulary).
    ///
    /// # Errors
    ///
    /// As [`Trace::replay`].
    pub fn render(&self) -> Result<String, TraceError> {
        let r = self.replay()?;
        let mut out = String::new();
        let _ = writeln!(out, "{:>4}  {:<18}  what happens", "step", "actor");
        for (k, (&a, ev)) in self.actions.iter().zip(&r.events).enumerate() {
            let after = &r.states[k + 1];
            let actor = actor(after, a);
            for (j, e) in ev.iter().enumerate() {
                let text = describe(after, e);
                if j == 0 {
                    let _ = writeln!(out, "{:>4}  {:<18}  {text}", k + 1, actor);
                } else {
                    let _ = writeln!(out, "{:>4}  {:<18}  {text}", "", "");
                }
            }
        }
        Ok(out)
    }

    /// Writes the replay string and step table to a *new* file (fails if it exists).
    ///
    /// # Errors
    ///
    /// Any I/O error, including `AlreadyExists` if `path` exists.
    pub fn write_new(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)?;
        writeln!(f, "{}", self.replay_string())?;
        let table = self
            .render()
            .unwrap_or_else(|e| format!("(does not replay: {e})\n"));
        f.write_all(table.as_bytes())
    }
}

/// The determinism self-check: replays `trace` twice from scratch and
/// compares the states and the enabled-action lists at every step, then
/// checks the replay ends in `expected` (the state the explorer reached).
///
/// # Errors
///
/// A [`TraceError`] if a replay fails or the two replays, or the final
/// state, disagree.
pub fn self_check(trace: &Trace, expected: &State) -> Result<(), TraceError> {
    let a = trace.replay()?;
    let b = trace.replay()?;
    for k in 0..a.states.len() {
        if a.enabled[k] != b.enabled[k] || a.states[k] != b.states[k] {
            return Err(TraceError::new(format!(
                "nondeterminism: replays differ at step {k}"
            )));
        }
    }
    if a.last() != expected {
        return Err(TraceError::new(
            "nondeterminism: replay does not end in the state the search reached",
        ));
    }
    Ok(())
}

fn actor(s: &State, a: Action) -> String {
    match a {
        Action::Writeback { .. } if s.stacked() => "top FS writeback".into(),
        Action::Writeback { .. } => "writeback".into(),
        Action::CreateWorker => "manager".into(),
        Action::LowerWriteback { .. } => "lower FS writeback".into(),
        Action::ReadComplete(_) => "read completion".into(),
        _ => {
            let w = a.worker().expect("worker action");
            match s.worker(w).rescuer_of {
                Some(wq) => format!("rescuer {w} (wq {wq})"),
                None => format!("worker {w}"),
            }
        }
    }
}

/// One event as a sentence, naming items as of state `s` (names never change).
#[must_use]
pub fn describe(s: &State, e: &Event) -> String {
    let n = |i| s.item_name(i);
    let reuse = |i| {
        s.previous_occupant(i)
            .map(|p| format!(" ({}'s slot)", s.item_name(p)))
            .unwrap_or_default()
    };
    match *e {
        Event::Allocated { item, slot, origin } => match origin {
            Origin::Upper => format!("allocates {} at {slot}{}", n(item), reuse(item)),
            Origin::Lower => format!("lower FS allocates {} at {slot}{}", n(item), reuse(item)),
            Origin::EndIo => format!(
                "allocates end-io item {} at {slot}{} for the read bio",
                n(item),
                reuse(item)
            ),
        },
        Event::Queued { item, wq, inactive } => format!(
            "queues {} on {} [fn {}]{}",
            n(item),
            s.wq_name(wq),
            s.item(item).func.as_str(),
            if inactive {
                " → inactive list (max_active)"
            } else {
                ""
            }
        ),
        Event::Activated { item } => format!("{} activated: inactive list → worklist", n(item)),
        Event::WorkerCreated { worker } => format!("manager creates worker {worker}"),
        Event::Started { worker, item } => {
            let it = s.item(item);
            format!(
                "worker {worker} runs {} (busy: {} + {})",
                n(item),
                it.slot,
                it.func.as_str()
            )
        }
        Event::Parked {
            item,
            picker,
            behind,
        } => {
            let it = s.item(item);
            format!(
                "worker {picker} picks {}: {} + {} is busy on worker {behind} → {} parked behind worker {behind} (on {behind}'s scheduled list)",
                n(item),
                it.slot,
                it.func.as_str(),
                n(item)
            )
        }
        Event::FirstPhaseDone { item, .. } => format!("{}'s first phase done: DONE set", n(item)),
        Event::ReadDelivered { item, .. } => format!("{} runs: the read completes", n(item)),
        Event::Claimed { worker, item } => {
            format!("worker {worker} runs ordered work: {}'s ordered phase", n(item))
        }
        Event::LeftLoop { worker, why } => {
            let why = match why {
                LoopExit::Empty => "ordered list empty".to_string(),
                LoopExit::HeadNotDone(h) => format!("head {} not DONE", n(h)),
                LoopExit::HeadClaimed(h) => format!("head {} claimed by another worker", n(h)),
            };
            format!("worker {worker} leaves run_ordered_work ({why})")
        }
        Event::OrderedComplete { item, .. } => {
            format!("{}'s ordered phase done; {} unlinked", n(item), n(item))
        }
        Event::Freed { item, slot, by } => {
            let still = s.workers.iter().enumerate().find_map(|(i, w)| {
                let c = w.current?;
                (c.slot == slot && !s.setup.version.identity_by_item())
                    .then(|| (b'A' + i as u8) as char)
            });
            let mut t = format!("{} freed by worker {by}: {slot} back on the freelist", n(item));
            if let Some(v) = still {
                let _ = write!(t, "; worker {v}'s busy entry still says {slot}");
            }
            t
        }
        Event::FreeDeferred { worker, item } => {
            let how = match s.setup.version {
                crate::Version::V6Fix => "drops its reference (last reference frees)",
                crate::Version::V6DeferAll => "leaves run_ordered_work (deferred free)",
                _ => "leaves the loop (free_self)",
            };
            format!("{}'s free deferred until worker {worker} {how}", n(item))
        }
        Event::Blocked { worker, item, wait } => match wait {
            Wait::Lower(_) => format!(
                "worker {worker} blocked on lower-FS I/O ({}'s ordered phase writes through the loop device)",
                n(item)
            ),
            Wait::Read(e) => format!(
                "worker {worker} blocked on a metadata read ({}'s ordered phase reads the free-space cache; completion runs as {})",
                n(item),
                n(e)
            ),
        },
        Event::Woken { worker } => format!("worker {worker} wakes up"),
        Event::Returned { worker, item } => format!(
            "worker {worker} returns from {}: busy entry {} removed",
            n(item),
            s.item(item).slot
        ),
        Event::WentIdle { worker } => format!("worker {worker} goes idle"),
    }
}

/// A few lines describing the busy workers of `s` (for the end of a trace).
#[must_use]
pub fn describe_workers(s: &State) -> String {
    let mut out = String::new();
    for (i, w) in s.workers.iter().enumerate() {
        let name = (b'A' + i as u8) as char;
        let Some(c) = w.current else { continue };
        let freed = if s.item(c.item).is_freed() {
            ", freed"
        } else {
            ""
        };
        let _ = write!(
            out,
            "  worker {name}: busy on {} + {} ({}{freed})",
            c.slot,
            c.func.as_str(),
            s.item_name(c.item)
        );
        match w.pc {
            Pc::Blocked(h, Wait::Lower(_)) => {
                let _ = write!(
                    out,
                    "; blocked on lower-FS I/O in {}'s ordered phase",
                    s.item_name(h)
                );
            }
            Pc::Blocked(h, Wait::Read(_)) => {
                let _ = write!(
                    out,
                    "; blocked on a read in {}'s ordered phase",
                    s.item_name(h)
                );
            }
            _ => {}
        }
        if !w.scheduled.is_empty() {
            let names: Vec<String> = w.scheduled.iter().map(|&p| s.item_name(p)).collect();
            let _ = write!(out, "; scheduled: {}", names.join(", "));
        }
        out.push('\n');
    }
    out
}
