//! A compact byte encoding of a [`State`], for visited sets that must hold
//! tens of millions of states.
//!
//! # Invariant
//!
//! Within one search (one [`Setup`](crate::Setup)), two states have equal
//! encodings if and only if they are equal: every field is written, with a
//! fixed width or after its length, and every enum after a distinct tag.
//! The setup itself is *not* written, because it is the same for every
//! state of a search; encodings of states of different setups must not be
//! compared. Only the used prefix of each inline list is written, exactly
//! the part that `State`'s equality compares.

use super::bounded::Bounded;
use super::state::{Pc, State, Wait};

fn list<T: Copy + Default, const N: usize>(
    out: &mut Vec<u8>,
    l: &Bounded<T, N>,
    f: impl Fn(&T) -> u8,
) {
    out.push(l.len() as u8);
    out.extend(l.iter().map(f));
}

fn opt(out: &mut Vec<u8>, v: Option<u8>) {
    match v {
        None => out.push(0),
        Some(x) => out.extend([1, x]),
    }
}

fn wait(out: &mut Vec<u8>, w: Wait) {
    match w {
        Wait::Lower(b) => {
            out.push(0);
            opt(out, b.map(|b| b.0));
        }
        Wait::Read(e) => out.extend([1, e.0]),
    }
}

fn pc(out: &mut Vec<u8>, p: Pc) {
    match p {
        Pc::Idle => out.push(0),
        Pc::Func => out.push(1),
        Pc::Lock => out.push(2),
        Pc::Ordered(h) => out.extend([3, h.0]),
        Pc::Blocked(h, w) => {
            out.extend([4, h.0]);
            wait(out, w);
        }
        Pc::FreeSelf => out.push(5),
        Pc::Return => out.push(6),
    }
}

/// Appends the encoding of `s` (without its setup) to `out`.
pub fn encode(s: &State, out: &mut Vec<u8>) {
    out.push(s.items.len() as u8);
    for it in &s.items {
        out.extend([
            it.origin as u8,
            it.slot.0,
            it.func as u8,
            it.wq,
            it.work,
            it.btrfs,
            u8::from(it.freed),
        ]);
    }
    out.push(s.workers.len() as u8);
    for w in &s.workers {
        match w.current {
            None => out.push(0),
            Some(c) => out.extend([1, c.item.0, c.slot.0, c.func as u8, c.wq]),
        }
        pc(out, w.pc);
        out.extend([u8::from(w.free_self), u8::from(w.freed_own)]);
        list(out, &w.scheduled, |i| i.0);
        opt(out, w.rescuer_of);
        list(out, &w.to_free, |i| i.0);
    }
    list(out, &s.idle, |w| w.0);
    list(out, &s.worklist, |i| i.0);
    for p in &s.pwqs {
        out.push(p.nr_active);
        list(out, &p.inactive, |i| i.0);
    }
    for o in &s.ordered {
        list(out, o, |i| i.0);
    }
    list(out, &s.free, |f| f.0);
    out.extend([s.next_slot, s.queued, s.waits]);
}

/// The encoding of `s` as an owned, exactly sized buffer.
#[must_use]
pub fn encoded(s: &State) -> Box<[u8]> {
    let mut v = Vec::with_capacity(128);
    encode(s, &mut v);
    v.into_boxed_slice()
}

#[cfg(test)]
mod tests {
    use super::encoded;
    use crate::explore::StateSet;
    use crate::model::{enabled_actions, step};
    use crate::{Granularity, Scenario, Setup, State, Version};
    use std::collections::HashMap;

    /// Equal encodings exactly for equal states, over every reachable state
    /// of small setups of every version and scenario.
    #[test]
    fn encoding_is_injective_on_reachable_states() {
        for v in Version::ALL {
            for sc in Scenario::ALL {
                let setup = Setup::new(v, sc)
                    .with_items(2)
                    .with_workers(3)
                    .with_granularity(Granularity::FineAll);
                let mut seen = StateSet::default();
                let mut by_code: HashMap<Box<[u8]>, State> = HashMap::new();
                let mut todo = vec![State::initial(setup)];
                while let Some(s) = todo.pop() {
                    if !seen.insert(s) {
                        continue;
                    }
                    if let Some(old) = by_code.insert(encoded(&s), s) {
                        assert_eq!(old, s, "{setup}: two states, one encoding");
                    }
                    todo.extend(enabled_actions(&s).into_iter().map(|a| step(&s, a)));
                }
                assert_eq!(by_code.len(), seen.len(), "{setup}");
            }
        }
    }
}
