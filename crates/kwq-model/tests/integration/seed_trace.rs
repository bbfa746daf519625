//! The 2019 trace under v4 contains the seven steps of Omar's report, in
//! order, both as structured events and as rendered text.

use kwq_model::model::{Event, Origin, Wait};
use kwq_model::{FindingKind, Scenario, Version};

#[test]
fn v4_2019_trace_has_the_seeds_seven_steps_in_order() {
    let o = super::bfs(Version::V4, Scenario::Y2019);
    let f = o.finding.expect("v4 × 2019 deadlocks");
    assert!(matches!(
        f.kind,
        FindingKind::Deadlock { cycle: Some(_), .. }
    ));
    let r = f.trace.replay().unwrap();
    let last = *r.last();
    let events: Vec<Event> = r.events.iter().flatten().copied().collect();

    // Identify X (the first top item) and worker A (who runs it).
    let x = events
        .iter()
        .find_map(|e| match *e {
            Event::Queued { item, .. } => Some(item),
            _ => None,
        })
        .unwrap();
    assert_eq!(last.item_name(x), "X");
    let a = events
        .iter()
        .find_map(|e| match *e {
            Event::Started { worker, item } if item == x => Some(worker),
            _ => None,
        })
        .unwrap();
    assert_eq!(a.to_string(), "A");
    let x_slot = last.item(x).slot;

    let seven: [&dyn Fn(&Event) -> bool; 7] = [
        &|e| matches!(*e, Event::Queued { item, .. } if item == x),
        &|e| matches!(*e, Event::Started { worker, item } if worker == a && item == x),
        &|e| matches!(*e, Event::Claimed { worker, item } if worker == a && item == x),
        &|e| matches!(*e, Event::Freed { item, by, .. } if item == x && by == a),
        &|e| {
            matches!(*e, Event::Blocked { worker, wait: Wait::Lower(_), item }
                if worker == a && item != x)
        },
        &|e| matches!(*e, Event::Allocated { slot, origin: Origin::Lower, .. } if slot == x_slot),
        &|e| matches!(*e, Event::Parked { behind, item, .. } if behind == a && item != x),
    ];
    let mut at = 0;
    for (k, want) in seven.iter().enumerate() {
        let found = events[at..]
            .iter()
            .position(want)
            .unwrap_or_else(|| panic!("seed step {} missing after event {at}: {events:?}", k + 1));
        at += found + 1;
    }
    // The parked item is the one allocated at X's slot: X′.
    let parked = events.iter().rev().find_map(|e| match *e {
        Event::Parked { item, .. } => Some(item),
        _ => None,
    });
    assert_eq!(last.item_name(parked.unwrap()), "X′");
    assert_eq!(last.item(parked.unwrap()).slot, x_slot);
    // The search found the shortest: ten steps.
    assert_eq!(f.trace.actions.len(), 10);

    // The same seven steps in the rendered table, in order.
    let text = f.trace.render().unwrap();
    let phrases = [
        "queues X on btrfs-delalloc (top)",
        "worker A runs X (busy: s1 + btrfs_delalloc_helper)",
        "worker A runs ordered work: X's ordered phase",
        "X freed by worker A",
        "worker A blocked on lower-FS I/O",
        "lower FS allocates X′ at s1 (X's slot)",
        "X′ parked behind worker A (on A's scheduled list)",
    ];
    let mut pos = 0;
    for p in phrases {
        let k = text[pos..]
            .find(p)
            .unwrap_or_else(|| panic!("`{p}` missing (in order) in:\n{text}"));
        pos += k + p.len();
    }
    let full = kwq_model::report::render_outcome(&{
        let mut o2 = super::bfs(Version::V4, Scenario::Y2019);
        o2.strategy = "bfs";
        o2
    });
    assert!(full.contains(
        "wait-for cycle: worker A —waits for lower-FS I/O (W's ordered phase writes through the loop device)→ X′ —is parked on A's scheduled list→ worker A"
    ), "{full}");
    assert!(full.contains("replay: kwq1:v4:2019:coarse:lifo:i3:w4:a4:o2:"));
    assert!(full.contains("determinism self-check: ok"));
}

#[test]
fn the_2014_trace_under_v3_16_parks_the_endio_item_behind_the_freeing_worker() {
    let o = super::bfs(Version::V3_16, Scenario::Y2014);
    let f = o.finding.expect("v3.16 × 2014 deadlocks");
    let text = f.trace.render().unwrap();
    for p in [
        "X freed by worker A",
        "allocates end-io item E1 at s1 (X's slot)",
        "worker A blocked on a metadata read",
        "queues E1 on btrfs-endio-meta [fn normal_work_helper]",
        "E1 parked behind worker A",
    ] {
        assert!(text.contains(p), "`{p}` missing in:\n{text}");
    }
}

#[test]
fn r1_trace_frees_the_item_on_another_worker() {
    use kwq_model::{check, Bfs, Config, Granularity, Setup};
    let setup = Setup::new(Version::V5_5, Scenario::Y2019).with_granularity(Granularity::Fine);
    let o = check(setup, &Config::default(), &mut Bfs);
    let f = o.finding.expect("R1 is reachable at fine granularity");
    let r = f.trace.replay().unwrap();
    let events: Vec<Event> = r.events.iter().flatten().copied().collect();
    let parked = events.iter().find_map(|e| match *e {
        Event::Parked { behind, .. } => Some(behind),
        _ => None,
    });
    let victim = parked.expect("a collision");
    let own = r.last().worker(victim).current.unwrap().item;
    // The victim's own item was freed, but not by the victim.
    let freer = events.iter().find_map(|e| match *e {
        Event::Freed { item, by, .. } if item == own => Some(by),
        _ => None,
    });
    assert!(freer.is_some_and(|w| w != victim), "{events:?}");
    // And its DONE was set in a step of its own, before another worker claimed it.
    let done_at = events
        .iter()
        .position(|e| matches!(*e, Event::FirstPhaseDone { item, .. } if item == own))
        .unwrap();
    let claimed_at = events
        .iter()
        .position(
            |e| matches!(*e, Event::Claimed { item, worker } if item == own && worker != victim),
        )
        .unwrap();
    assert!(done_at < claimed_at);
}
