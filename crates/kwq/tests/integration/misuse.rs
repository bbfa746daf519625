//! Self-deadlocking misuse is reported as a panic naming the item and the
//! queue (delivered through the runtime's panic handler, since work
//! functions run under the worker's panic guard), never a silent hang.

use crate::*;
use std::sync::{mpsc, Arc, Mutex};

type Slot<T> = Arc<Mutex<Option<T>>>;

/// Queues an item that runs `body(self)` once, and returns the single panic
/// report it must produce.
fn misuse_report(
    wq_builder: impl FnOnce(&kwq::Runtime) -> kwq::Workqueue,
    item: &str,
    body: impl Fn(&kwq::Work, &kwq::Workqueue) + Send + Sync + 'static,
) -> Report {
    let (rt, reports) = Reports::runtime(2);
    let wq = Arc::new(wq_builder(&rt));
    let me: Slot<kwq::Work> = Arc::new(Mutex::new(None));
    let (m, q) = (me.clone(), wq.clone());
    let w = kwq::Work::new(item, move || {
        let this = m.lock().unwrap().clone().unwrap();
        body(&this, &q);
    });
    *me.lock().unwrap() = Some(w.clone());
    assert!(wq.queue(&w));
    let all = reports.wait_for(1);
    me.lock().unwrap().take();
    // The worker survived and the queue is usable.
    let (tx, rx) = mpsc::channel();
    wq.queue_fn(move || tx.send(()).unwrap());
    rx.recv_timeout(TIMEOUT)
        .expect("worker did not survive the misuse");
    let q = wq.clone();
    within(TIMEOUT, "flush after misuse", move || q.flush());
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].clone()
}

fn assert_names(r: &Report, item: &str, queue: &str) {
    assert_eq!(r.work, item, "{r:?}");
    assert_eq!(r.workqueue, queue, "{r:?}");
    assert!(
        r.message.contains(&format!("'{item}'")),
        "message must name the item: {r:?}"
    );
    assert!(
        r.message.contains(&format!("'{queue}'")),
        "message must name the queue: {r:?}"
    );
}

#[test]
fn work_flush_of_itself_from_inside_panics() {
    let r = misuse_report(
        |rt| wq_on(rt, "self-flush-q").build().unwrap(),
        "self-flusher",
        |me, _| {
            me.flush();
        },
    );
    assert_names(&r, "self-flusher", "self-flush-q");
    assert!(r.message.contains("flush"), "{r:?}");
}

#[test]
fn work_cancel_sync_of_itself_from_inside_panics() {
    let r = misuse_report(
        |rt| wq_on(rt, "self-cancel-q").build().unwrap(),
        "self-canceller",
        |me, _| {
            me.cancel_sync();
        },
    );
    assert_names(&r, "self-canceller", "self-cancel-q");
    assert!(r.message.contains("cancel_sync"), "{r:?}");
}

/// `flush` of itself while an instance of itself is *pending* (requeued from
/// inside) is still a self-wait.
#[test]
fn work_flush_of_itself_after_requeue_panics() {
    let r = misuse_report(
        |rt| wq_on(rt, "self-flush2-q").build().unwrap(),
        "requeue-then-flush",
        {
            let first = std::sync::atomic::AtomicBool::new(true);
            move |me, q| {
                if first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                    assert!(q.queue(me));
                    me.flush();
                }
            }
        },
    );
    assert_names(&r, "requeue-then-flush", "self-flush2-q");
}

#[test]
fn workqueue_flush_from_own_item_panics() {
    let r = misuse_report(
        |rt| wq_on(rt, "own-flush-q").build().unwrap(),
        "wq-flusher",
        |_, q| q.flush(),
    );
    assert_names(&r, "wq-flusher", "own-flush-q");
}

#[test]
fn workqueue_drain_from_own_item_panics() {
    let r = misuse_report(
        |rt| wq_on(rt, "own-drain-q").build().unwrap(),
        "wq-drainer",
        |_, q| q.drain(),
    );
    assert_names(&r, "wq-drainer", "own-drain-q");
}

/// A one-shot job flushing its own queue is reported as `<job>`.
#[test]
fn workqueue_flush_from_own_job_panics() {
    let (rt, reports) = Reports::runtime(2);
    let wq = Arc::new(wq_on(&rt, "job-flush-q").build().unwrap());
    let q = wq.clone();
    wq.queue_fn(move || q.flush());
    let all = reports.wait_for(1);
    assert_eq!(all[0].work, "<job>");
    assert_eq!(all[0].workqueue, "job-flush-q");
    assert!(all[0].message.contains("'job-flush-q'"), "{all:?}");
}

/// On an ordered (or max_active(1)) queue, flushing an item that is pending
/// on the same queue from one of its items would wait forever.
#[test]
fn flush_of_item_pending_behind_caller_on_ordered_queue_panics() {
    for ordered in [true, false] {
        let (rt, reports) = Reports::runtime(2);
        let b = wq_on(&rt, "ord-q");
        let wq = Arc::new(
            if ordered {
                b.ordered()
            } else {
                b.max_active(1)
            }
            .build()
            .unwrap(),
        );
        let later = kwq::Work::new("behind", || {});
        let (q, l) = (wq.clone(), later.clone());
        let first = kwq::Work::new("in-front", move || {
            assert!(q.queue(&l));
            l.flush();
        });
        assert!(wq.queue(&first));
        let all = reports.wait_for(1);
        let r = &all[0];
        assert_eq!(r.work, "in-front");
        assert_eq!(r.workqueue, "ord-q");
        assert!(r.message.contains("'behind'"), "{r:?}");
        assert!(r.message.contains("'ord-q'"), "{r:?}");
        let w = wq.clone();
        within(TIMEOUT, "flush after ordered misuse", move || w.flush());
        assert!(!later.is_pending());
    }
}

#[test]
fn delayed_work_self_flush_and_cancel_sync_panic() {
    for cancel in [false, true] {
        let (rt, reports) = Reports::runtime(2);
        let wq = wq_on(&rt, "dself-q").build().unwrap();
        let me: Slot<kwq::DelayedWork> = Arc::new(Mutex::new(None));
        let m = me.clone();
        let d = kwq::DelayedWork::new("dself", move || {
            let this = m.lock().unwrap().clone().unwrap();
            if cancel {
                this.cancel_sync();
            } else {
                this.flush();
            }
        });
        *me.lock().unwrap() = Some(d.clone());
        assert!(wq.queue_delayed(&d, std::time::Duration::from_millis(1)));
        let all = reports.wait_for(1);
        me.lock().unwrap().take();
        assert_names(&all[0], "dself", "dself-q");
    }
}

/// No false positives: waiting on *other* items and queues from inside an
/// item is legal and works.
#[test]
fn legal_waits_from_inside_items_are_not_reported() {
    let (rt, reports) = Reports::runtime(2);
    let wq = Arc::new(wq_on(&rt, "legal-q").build().unwrap());
    let other = Arc::new(wq_on(&rt, "legal-other").build().unwrap());
    let ord = Arc::new(wq_on(&rt, "legal-ord").ordered().build().unwrap());
    let runs = Counter::new();
    let r = runs.clone();
    let target = kwq::Work::new("target", move || {
        r.inc();
        std::thread::sleep(std::time::Duration::from_millis(2));
    });
    let (tx, rx) = mpsc::channel();
    let (t, o, q, d) = (target.clone(), other.clone(), ord.clone(), wq.clone());
    let waiter = kwq::Work::new("waiter", move || {
        // Flush another item queued on another queue.
        assert!(o.queue(&t));
        assert!(t.flush());
        // Flush another queue.
        o.queue(&t);
        o.flush();
        // Cancel another item.
        o.queue(&t);
        t.cancel_sync();
        // From a non-ordered queue, flush an item pending on an ordered queue.
        q.queue(&t);
        q.flush();
        let _ = &d;
        tx.send(()).unwrap();
    });
    assert!(wq.queue(&waiter));
    rx.recv_timeout(TIMEOUT)
        .expect("legal waits inside an item hung");
    wq.flush();
    assert!(reports.all().is_empty(), "{:?}", reports.all());
    assert!(runs.get() >= 3);
}
