//! Many threads at once, the periodic commit timer, and the dirty-memory
//! throttle.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kwq_store::{fsck, Device, MemDevice, Rng, Store, ROOT_INO};

use crate::common::{opts, read_all};

#[test]
fn periodic_commit_makes_data_durable_without_sync() {
    let dev = Arc::new(MemDevice::new(8 << 20));
    let o = opts().commit_interval(Some(Duration::from_millis(30)));
    let s = Store::format(dev.clone() as Arc<dyn Device>, o.clone()).unwrap();
    let f = s.create(ROOT_INO, b"t", 0o644, 0, 0).unwrap().ino;
    s.write_at(f, 0, b"timer").unwrap();
    let gen0 = s.statfs().generation;
    let deadline = Instant::now() + Duration::from_secs(20);
    while s.statfs().generation == gen0 {
        assert!(Instant::now() < deadline, "no periodic commit within 20 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    s.crash();
    let s = Store::mount(dev.clone() as Arc<dyn Device>, opts()).unwrap();
    assert_eq!(read_all(&s, f).unwrap(), b"timer");
}

#[test]
fn throttle_keeps_dirty_memory_bounded() {
    let dev = Arc::new(MemDevice::new(64 << 20));
    let limit = 1u64 << 20;
    let s = Store::format(dev.clone() as Arc<dyn Device>, opts().dirty_limit(limit)).unwrap();
    let f = s.create(ROOT_INO, b"big", 0o644, 0, 0).unwrap().ino;
    let piece = vec![0x5au8; 300_000];
    let gen0 = s.statfs().generation;
    for k in 0..100u64 {
        s.write_at(f, k * piece.len() as u64, &piece).unwrap();
        let dirty = s.dirty_bytes();
        assert!(
            dirty <= limit + s.extent_size() as u64 + piece.len() as u64,
            "dirty {dirty} above the limit"
        );
    }
    assert!(
        s.statfs().generation > gen0 + 10,
        "writers committed on their own"
    );
    s.sync().unwrap();
    assert_eq!(read_all(&s, f).unwrap().len(), 100 * piece.len());
}

#[test]
fn many_threads_at_once() {
    let dev = Arc::new(MemDevice::new(64 << 20));
    let s = Arc::new(
        Store::format(dev.clone() as Arc<dyn Device>, opts().dirty_limit(2 << 20)).unwrap(),
    );
    let shared = s.mkdir(ROOT_INO, b"shared", 0o755, 0, 0).unwrap().ino;
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                let mut rng = Rng::new(t);
                let name = format!("own{t}");
                let f = s
                    .create(ROOT_INO, name.as_bytes(), 0o644, 0, 0)
                    .unwrap()
                    .ino;
                let mut model = Vec::new();
                for i in 0..200u64 {
                    let len = 1 + rng.below(20_000) as usize;
                    let off = rng.below(100_000) as usize;
                    let data = vec![(t * 31 + i) as u8; len];
                    s.write_at(f, off as u64, &data).unwrap();
                    if model.len() < off + len {
                        model.resize(off + len, 0);
                    }
                    model[off..off + len].copy_from_slice(&data);
                    // Contended namespace work in one directory.
                    let n = format!("x{}", rng.below(6));
                    match rng.below(4) {
                        0 => drop(s.create(shared, n.as_bytes(), 0o644, 0, 0)),
                        1 => drop(s.unlink(shared, n.as_bytes())),
                        2 => drop(s.rename(
                            shared,
                            n.as_bytes(),
                            shared,
                            format!("x{}", rng.below(6)).as_bytes(),
                        )),
                        _ => drop(s.readdir(shared).unwrap()),
                    }
                    if i % 50 == 0 {
                        s.fsync(f).unwrap();
                    }
                }
                (f, model)
            })
        })
        .collect();
    let results: Vec<_> = threads.into_iter().map(|h| h.join().unwrap()).collect();
    for (f, model) in &results {
        assert!(read_all(&s, *f).unwrap() == *model);
    }
    Arc::into_inner(s).unwrap().unmount().unwrap();
    let rep = fsck(&*dev).unwrap();
    assert!(rep.is_clean(), "{rep:?}");
    let s = Store::mount(dev.clone() as Arc<dyn Device>, opts()).unwrap();
    for (f, model) in &results {
        assert!(read_all(&s, *f).unwrap() == *model);
    }
}
