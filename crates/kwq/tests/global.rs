//! `RuntimeBuilder::build_global` (its own test binary: the global runtime
//! is process-wide, and this must run before anything else touches it).

#[test]
fn build_global_installs_the_runtime_once() {
    let rt = kwq::RuntimeBuilder::new()
        .concurrency(3)
        .thread_name("kwq-global")
        .build_global()
        .expect("first build_global wins");
    assert_eq!(rt.concurrency(), 3);
    assert!(std::ptr::eq(rt, kwq::Runtime::global()));
    // Builders without an explicit runtime use it.
    let wq = kwq::Workqueue::builder("on-global").build().unwrap();
    assert_eq!(wq.spawn(|| 9).join().unwrap(), 9);

    let e = kwq::RuntimeBuilder::new().build_global().unwrap_err();
    assert_eq!(e.kind(), kwq::BuildErrorKind::GlobalAlreadyBuilt);
    // Once the global runtime exists, that is what every later call hears.
    let e = kwq::RuntimeBuilder::new()
        .concurrency(0)
        .build_global()
        .unwrap_err();
    assert_eq!(e.kind(), kwq::BuildErrorKind::GlobalAlreadyBuilt);
}
