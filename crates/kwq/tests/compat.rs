//! The 0.1.0 public names keep compiling and working (deprecated where a
//! better form exists). Code outside this repository is built against them:
//! this file is written the way such code was, and must not change when the
//! API grows.
#![allow(deprecated)]

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn old_builder_hooks_still_fire() {
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    let rt: kwq::Runtime = kwq::Runtime::builder()
        .concurrency(1)
        .panic_handler(move |p: &kwq::PanicReport| {
            assert_eq!(p.message(), "old");
            s.fetch_add(1, SeqCst);
        })
        .lockup_handler(|_r: &kwq::LockupReport| {})
        .build()
        .unwrap();
    let wq = kwq::Workqueue::builder("compat")
        .runtime(&rt)
        .build()
        .unwrap();
    wq.queue_fn(|| panic!("old"));
    wq.flush();
    assert_eq!(seen.load(SeqCst), 1);
}

#[test]
fn old_error_names_are_the_new_types() {
    fn takes_rejected(_: Option<kwq::Rejected<fn()>>) {}
    fn takes_new(r: Option<kwq::TryQueueFnError<fn()>>) {
        takes_rejected(r)
    }
    takes_new(None);

    let wq = kwq::Workqueue::builder("compat-stragglers")
        .build()
        .unwrap();
    let r: Result<(), kwq::Stragglers> = wq.shutdown_timeout(Duration::from_secs(5));
    assert!(r.is_ok());

    let e: kwq::ordered::BuildError = kwq::ordered::OrderedWorkqueue::builder("bad")
        .max_active(0)
        .build::<(), kwq::ordered::BoxedFunc<()>, kwq::ordered::BoxedOrdered<()>>()
        .unwrap_err();
    // The ordered layer's error is the crate's one BuildError now.
    let same: kwq::BuildError = e;
    assert_eq!(same.kind(), kwq::BuildErrorKind::MaxActive);
}

#[test]
fn old_ordered_names_work() {
    let q: kwq::ordered::BoxedOrderedWorkqueue<u32> =
        kwq::ordered::OrderedWorkqueue::builder("compat-ordered")
            .build()
            .unwrap();
    q.queue(Box::new(|| 7), Box::new(|_| panic!("in order")));
    let err = q.flush().unwrap_err();
    let p: &kwq::ordered::StagePanic = &err.panics()[0];
    assert_eq!(p.stage(), kwq::ordered::Stage::Ordered);

    let out: Vec<u64> = kwq::ordered::OrderedMapBuilder::new()
        .max_active(2)
        .map(0..100u64, |x| x * 2)
        .unwrap()
        .collect();
    assert_eq!(out, (0..100u64).map(|x| x * 2).collect::<Vec<_>>());
}
