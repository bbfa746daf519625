//! Crash safety with the fault-injecting device: power cuts at random
//! points during heavy writes. After each cut the crash image (durable
//! writes plus a random, torn subset of the unflushed ones) must mount,
//! pass fsck, and hold exactly the last synced state — or, when the cut
//! hit a sync, either that or the state the sync was committing.
//!
//! `KWQ_STORE_CRASH_ITERS` sets the number of power cuts (default 400).

use std::collections::BTreeMap;
use std::sync::Arc;

use kwq_store::{fsck, Device, FaultyDevice, Options, Rng, Store, ROOT_INO};

use crate::common::{env_num, opts, read_all};

type Files = BTreeMap<String, Vec<u8>>;

fn state_of(s: &Store) -> kwq_store::Result<Files> {
    let mut out = Files::new();
    for e in s.readdir(ROOT_INO)? {
        out.insert(
            String::from_utf8(e.name).expect("ascii"),
            read_all(s, e.ino)?,
        );
    }
    Ok(out)
}

fn data(rng: &mut Rng, len: usize) -> Vec<u8> {
    match rng.below(3) {
        0 => vec![rng.below(256) as u8; len],
        1 => {
            let k = rng.next_u64() as u8;
            (0..len).map(|i| (i / 64) as u8 ^ k).collect()
        }
        _ => (0..len).map(|_| rng.next_u64() as u8).collect(),
    }
}

/// Runs random operations until the device dies (or `n` ops). Returns the
/// model after the last successful op, and the model a sync in progress
/// at the cut was committing, if any.
fn workload(
    s: &Store,
    rng: &mut Rng,
    model: &mut Files,
    synced: &mut Files,
    n: usize,
) -> Option<Files> {
    for _ in 0..n {
        // A third of the ops are on small files ("s*", up to ~6 KB): their
        // data is inline in the metadata below 4096 bytes, in an extent above.
        let small = rng.below(3) == 0;
        let name = if small {
            format!("s{}", rng.below(4))
        } else {
            format!("f{}", rng.below(5))
        };
        let ok = match rng.below(10) {
            0..=4 => {
                let (off, len) = if small {
                    (rng.below(3_000), 1 + rng.below(3_000) as usize)
                } else {
                    (rng.below(120_000), 1 + rng.below(50_000) as usize)
                };
                let d = data(rng, len);
                let r = (|| {
                    let ino = match s.resolve(&name) {
                        Ok(i) => i,
                        Err(_) => s.create(ROOT_INO, name.as_bytes(), 0o644, 0, 0)?.ino,
                    };
                    model.entry(name.clone()).or_default();
                    s.write_at(ino, off, &d)
                })();
                if r.is_ok() {
                    let f = model.get_mut(&name).expect("created");
                    let end = off as usize + len;
                    if f.len() < end {
                        f.resize(end, 0);
                    }
                    f[off as usize..end].copy_from_slice(&d);
                }
                r.is_ok()
            }
            5 => {
                let size = rng.below(if small { 5_000 } else { 150_000 });
                match s.resolve(&name) {
                    Ok(ino) => {
                        let r = s.truncate(ino, size);
                        if r.is_ok() {
                            model
                                .get_mut(&name)
                                .expect("exists")
                                .resize(size as usize, 0);
                        }
                        r.is_ok()
                    }
                    Err(_) => true,
                }
            }
            6 => {
                let r = s.unlink(ROOT_INO, name.as_bytes());
                if r.is_ok() {
                    model.remove(&name);
                }
                r.is_ok() || !model.contains_key(&name)
            }
            _ => match s.sync() {
                Ok(()) => {
                    *synced = model.clone();
                    true
                }
                Err(_) => return Some(model.clone()),
            },
        };
        if !ok {
            return None;
        }
    }
    None
}

fn crash_opts() -> Options {
    opts().extent_size(32 * 1024)
}

#[test]
fn power_cuts_during_heavy_writes() {
    let iters = env_num("KWQ_STORE_CRASH_ITERS", 400);
    let seed = env_num("KWQ_STORE_CRASH_SEED", 0x5eed);
    let mut rng = Rng::new(seed);
    let dev = Arc::new(FaultyDevice::new(8 << 20));
    let mut s = Store::format(dev.clone() as Arc<dyn Device>, crash_opts()).unwrap();
    let mut dev = dev;
    let mut synced = Files::new();
    let mut model = Files::new();
    let mut in_flight_hits = 0;
    let mut inline_seen = 0;
    for it in 0..iters {
        dev.cut_after_writes(rng.below(40));
        let mut in_flight = workload(&s, &mut rng, &mut model, &mut synced, 60);
        if !dev.is_dead() {
            // The cut did not come during the ops: sync (it may come now).
            match s.sync() {
                Ok(()) => synced = model.clone(),
                Err(_) => in_flight = Some(model.clone()),
            }
        }
        s.crash();
        let img = dev.crash_image(rng.next_u64());
        dev = Arc::new(FaultyDevice::from_bytes(img));
        let rep = fsck(&*dev).unwrap_or_else(|e| panic!("iteration {it} (seed {seed}): fsck: {e}"));
        assert!(rep.is_clean(), "iteration {it} (seed {seed}): {rep:?}");
        inline_seen += rep.inline_files;
        s = Store::mount(dev.clone() as Arc<dyn Device>, crash_opts())
            .unwrap_or_else(|e| panic!("iteration {it} (seed {seed}): mount: {e}"));
        let got =
            state_of(&s).unwrap_or_else(|e| panic!("iteration {it} (seed {seed}): read: {e}"));
        if got == synced {
        } else if in_flight.as_ref() == Some(&got) {
            in_flight_hits += 1;
            synced = got.clone();
        } else {
            panic!(
                "iteration {it} (seed {seed}): state after the cut is not a committed one: \
                 files {:?}, synced {:?}, in flight {:?}",
                got.keys().collect::<Vec<_>>(),
                synced.keys().collect::<Vec<_>>(),
                in_flight.as_ref().map(|m| m.keys().collect::<Vec<_>>())
            );
        }
        model = synced.clone();
    }
    // Not an assertion on timing: the cut points are random, but with
    // hundreds of cuts some must land inside a commit after its superblock
    // was written.
    if iters >= 100 {
        assert!(in_flight_hits > 0, "no cut landed after a superblock write");
        assert!(inline_seen > 0, "no image after a cut held inline files");
    }
}

/// A write failing at each position of a commit (data, metadata, index,
/// superblock): the commit fails, the store stays usable, the retry
/// succeeds, and power cuts at any point afterwards leave a committed
/// state.
#[test]
fn failed_writes_at_every_step_of_a_commit() {
    let mut rng = Rng::new(77);
    for k in 0..12u64 {
        let dev = Arc::new(FaultyDevice::new(8 << 20));
        let s = Store::format(dev.clone() as Arc<dyn Device>, crash_opts()).unwrap();
        let f = s.create(ROOT_INO, b"f", 0o644, 0, 0).unwrap().ino;
        let v1 = data(&mut rng, 100_000);
        s.write_at(f, 0, &v1).unwrap();
        s.sync().unwrap();
        let v2 = data(&mut rng, 150_000);
        s.write_at(f, 0, &v2).unwrap();
        let before = dev.writes();
        dev.fail_write(k);
        let first = s.sync();
        let used = dev.writes() - before;
        // While the failure is pending in the commit, the data reads as
        // written; after a crash now, the state is v1 or v2 (a failed
        // superblock write may still have reached the disk).
        assert_eq!(read_all(&s, f).unwrap(), v2);
        if first.is_err() {
            let img = dev.crash_image(k);
            let d = Arc::new(FaultyDevice::from_bytes(img));
            assert!(fsck(&*d).unwrap().is_clean(), "k {k}");
            let t = Store::mount(d as Arc<dyn Device>, crash_opts()).unwrap();
            let got = read_all(&t, f).unwrap();
            assert!(got == v1 || got == v2, "k {k}: neither committed state");
            t.crash();
        } else {
            assert!(
                k >= used,
                "k {k}: the failing write was inside the commit ({used} writes)"
            );
        }
        s.sync().expect("the retry succeeds");
        for seed in 0..4 {
            let d = Arc::new(FaultyDevice::from_bytes(dev.crash_image(seed)));
            let rep = fsck(&*d).unwrap();
            assert!(rep.is_clean(), "k {k}: {rep:?}");
            let t = Store::mount(d as Arc<dyn Device>, crash_opts()).unwrap();
            assert_eq!(
                read_all(&t, f).unwrap(),
                v2,
                "k {k}: the retried commit is durable"
            );
            t.crash();
        }
        s.crash();
    }
}
