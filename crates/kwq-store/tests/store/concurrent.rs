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

/// A memory device whose reads take a while, so a reader's window (after
/// it left the state lock) spans several commits.
#[derive(Debug)]
struct SlowReads(MemDevice);

impl Device for SlowReads {
    fn read_at(&self, buf: &mut [u8], off: u64) -> std::io::Result<()> {
        if off >= 2 * 4096 {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.0.read_at(buf, off)
    }
    fn write_at(&self, buf: &[u8], off: u64) -> std::io::Result<()> {
        self.0.write_at(buf, off)
    }
    fn flush(&self) -> std::io::Result<()> {
        Ok(())
    }
    fn len(&self) -> u64 {
        self.0.len()
    }
}

/// Reads decompress extents after leaving the state lock; commits that
/// replace those extents, free their blocks and reuse them (a device of
/// 20 blocks wraps around every commit or two) run meanwhile. Every read
/// must see one whole version of the file, never an error or a mix.
#[test]
fn reads_outside_the_lock_race_commits_that_reuse_blocks() {
    let dev = Arc::new(SlowReads(MemDevice::new(20 * 4096)));
    let s = Arc::new(Store::format(dev.clone() as Arc<dyn Device>, opts()).unwrap());
    let f = s.create(ROOT_INO, b"f", 0o644, 0, 0).unwrap().ino;
    let len = 32 << 10;
    // Version v: byte i is (v + i / 7) mod 251.
    let version =
        |v: u64| -> Vec<u8> { (0..len).map(|i| ((v + i as u64 / 7) % 251) as u8).collect() };
    s.write_at(f, 0, &version(0)).unwrap();
    s.sync().unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (s, stop) = (s.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut reads = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let got = read_all(&s, f).expect("a read during commits");
                    if got.is_empty() {
                        continue; // between the writer's truncate and write
                    }
                    assert_eq!(got.len(), len);
                    let v = got[0] as u64;
                    let ok = got
                        .iter()
                        .enumerate()
                        .all(|(i, &b)| b as u64 == (v + i as u64 / 7) % 251);
                    assert!(ok, "a read mixed versions");
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for v in 1..=400u64 {
        // Truncating first spares the writer from loading the old extents.
        s.truncate(f, 0).unwrap();
        s.write_at(f, 0, &version(v)).unwrap();
        s.sync().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads: u64 = readers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(reads > 0);
    assert_eq!(read_all(&s, f).unwrap(), version(400));
}
