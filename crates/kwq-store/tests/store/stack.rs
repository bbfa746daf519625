//! Stacking: an upper store whose device is a file in a lower store, both
//! on one kwq runtime, both busy at once — the seed's setup in one
//! process. Every run ends with both levels verified and fsck'd. A
//! watchdog thread dumps the runtime and aborts if a run hangs.
//!
//! `KWQ_STORE_STACK_RUNS` (default 3 in debug builds, 1000 in release) and
//! `KWQ_STORE_STACK_MIB` (per level per run, default 8) set the size.

use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use kwq_store::{fsck, Device, MemDevice, Options, Rng, Store, StoreFileDevice, ROOT_INO};

use crate::common::{env_num, read_all};

fn level_opts(rt: &kwq::Runtime) -> Options {
    Options::default()
        .extent_size(64 * 1024)
        .level(1)
        .dirty_limit(2 << 20)
        .commit_interval(Some(Duration::from_millis(20)))
        .runtime(rt)
}

/// Writes `mib` MiB through `s` into two files (overwriting in place, so
/// space stays bounded), syncing now and then; returns the files' expected
/// contents.
fn busy(s: &Store, tag: &str, mib: u64, seed: u64) -> Vec<(u64, Vec<u8>)> {
    let mut rng = Rng::new(seed);
    let size = 1usize << 20;
    let mut files = Vec::new();
    for k in 0..2 {
        let ino = s
            .create(ROOT_INO, format!("{tag}{k}").as_bytes(), 0o644, 0, 0)
            .unwrap()
            .ino;
        s.truncate(ino, size as u64).unwrap();
        files.push((ino, vec![0u8; size]));
    }
    let mut moved = 0u64;
    let mut round = 0u64;
    while moved < mib << 20 {
        let (ino, model) = &mut files[(round % 2) as usize];
        let len = 4096 + rng.below(200_000) as usize;
        let off = rng.below((size - len) as u64) as usize;
        let fill = rng.next_u64() as u8;
        let data: Vec<u8> = (0..len).map(|i| fill ^ (i / 512) as u8).collect();
        let n = s.write_at(*ino, off as u64, &data).unwrap();
        assert_eq!(n, len, "{tag}: short write");
        model[off..off + len].copy_from_slice(&data);
        moved += len as u64;
        round += 1;
        if round % 16 == 0 {
            s.fsync(*ino).unwrap();
        }
    }
    files
}

fn one_run(rt: &kwq::Runtime, run: u64, mib: u64) {
    let lower_dev = Arc::new(MemDevice::new(64 << 20));
    let lower = Arc::new(Store::format(lower_dev.clone(), level_opts(rt)).unwrap());
    let loop_dev =
        Arc::new(StoreFileDevice::create(lower.clone(), ROOT_INO, b"upper.img", 24 << 20).unwrap());
    let upper = Store::format(loop_dev.clone() as Arc<dyn Device>, level_opts(rt)).unwrap();
    let (up, low) = thread::scope(|sc| {
        let u = sc.spawn(|| busy(&upper, "u", mib, run * 2));
        let l = sc.spawn(|| busy(&lower, "l", mib, run * 2 + 1));
        (u.join().unwrap(), l.join().unwrap())
    });
    for (ino, want) in &up {
        let got = read_all(&upper, *ino).unwrap();
        assert!(got == *want, "run {run}: upper file {ino}");
    }
    upper.unmount().unwrap();
    let rep = fsck(&*loop_dev).unwrap();
    assert!(rep.is_clean(), "run {run}: upper {rep:?}");
    // Remount the upper from the lower's file and check it again.
    let upper = Store::mount(loop_dev.clone() as Arc<dyn Device>, level_opts(rt)).unwrap();
    for (ino, want) in &up {
        assert!(
            read_all(&upper, *ino).unwrap() == *want,
            "run {run}: upper file {ino} after remount"
        );
    }
    upper.unmount().unwrap();
    drop(loop_dev);
    for (ino, want) in &low {
        assert!(
            read_all(&lower, *ino).unwrap() == *want,
            "run {run}: lower file {ino}"
        );
    }
    Arc::into_inner(lower)
        .expect("only owner")
        .unmount()
        .unwrap();
    let rep = fsck(&*lower_dev).unwrap();
    assert!(rep.is_clean(), "run {run}: lower {rep:?}");
}

/// Runs `f`, aborting the process with a runtime dump if it takes longer
/// than `limit` (a hang must fail CI, not stall it).
fn with_watchdog(rt: &kwq::Runtime, limit: Duration, what: &str, f: impl FnOnce()) {
    let (tx, rx) = mpsc::channel::<()>();
    let dump_rt = rt.clone();
    let what = what.to_string();
    let dog = thread::spawn(move || {
        if rx.recv_timeout(limit) == Err(mpsc::RecvTimeoutError::Timeout) {
            eprintln!(
                "watchdog: {what} still running after {limit:?}; runtime state:\n{}",
                dump_rt.dump()
            );
            std::process::abort();
        }
    });
    f();
    drop(tx);
    dog.join().unwrap();
}

#[test]
fn stacked_stores_under_load() {
    let default_runs = if cfg!(debug_assertions) { 3 } else { 1000 };
    let runs = env_num("KWQ_STORE_STACK_RUNS", default_runs);
    let mib = env_num("KWQ_STORE_STACK_MIB", 8);
    let rt = kwq::RuntimeBuilder::new().build().unwrap();
    for run in 0..runs {
        with_watchdog(
            &rt,
            Duration::from_secs(120),
            &format!("stacked run {run}"),
            || one_run(&rt, run, mib),
        );
    }
}

#[test]
fn full_lower_gives_enospc_at_the_upper_then_recovers() {
    let rt = kwq::RuntimeBuilder::new().build().unwrap();
    with_watchdog(&rt, Duration::from_secs(120), "enospc", || {
        let opts = || level_opts(&rt).commit_interval(None);
        let lower_dev = Arc::new(MemDevice::new(8 << 20));
        let lower = Arc::new(Store::format(lower_dev.clone(), opts()).unwrap());
        // Take most of the lower store with incompressible filler.
        let filler = lower.create(ROOT_INO, b"filler", 0o644, 0, 0).unwrap().ino;
        let mut rng = Rng::new(11);
        let noise: Vec<u8> = (0..5 << 20).map(|_| rng.next_u64() as u8).collect();
        lower.write_at(filler, 0, &noise).unwrap();
        lower.sync().unwrap();
        let loop_dev = Arc::new(
            StoreFileDevice::create(lower.clone(), ROOT_INO, b"up.img", 16 << 20).unwrap(),
        );
        let upper = Store::format(loop_dev.clone() as Arc<dyn Device>, opts()).unwrap();
        let f = upper.create(ROOT_INO, b"grow", 0o644, 0, 0).unwrap().ino;
        let mut written = 0usize;
        let mut err = None;
        for _ in 0..64 {
            let chunk: Vec<u8> = (0..256 * 1024).map(|_| rng.next_u64() as u8).collect();
            let r = upper
                .write_at(f, written as u64, &chunk)
                .and_then(|_| upper.sync());
            match r {
                Ok(()) => written += chunk.len(),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        let e = err.expect("the upper must run out of room in the lower");
        assert_eq!(e.errno(), libc::ENOSPC, "{e}");
        // Both levels are consistent at the failure.
        let size = upper.getattr(f).unwrap().size as usize;
        assert!(size >= written);
        // Free space in the lower: the upper's commit goes through.
        lower.unlink(ROOT_INO, b"filler").unwrap();
        // The first commit may still fail for the upper's dirty data, but
        // it commits the unlink, which releases the filler's space.
        let _ = lower.sync();
        lower
            .sync()
            .expect("the lower commits once the filler is gone");
        upper.sync().expect("the upper is usable again");
        upper.unmount().unwrap();
        let rep = fsck(&*loop_dev).unwrap();
        assert!(rep.is_clean(), "upper {rep:?}");
        let upper = Store::mount(loop_dev.clone() as Arc<dyn Device>, opts()).unwrap();
        assert_eq!(upper.getattr(f).unwrap().size as usize, size);
        upper.unmount().unwrap();
        drop(loop_dev);
        Arc::into_inner(lower)
            .expect("only owner")
            .unmount()
            .unwrap();
        let rep = fsck(&*lower_dev).unwrap();
        assert!(rep.is_clean(), "lower {rep:?}");
    });
}
