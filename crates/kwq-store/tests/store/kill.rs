//! `kill -9` of a child process writing to a file-backed image. The child
//! (this test binary, re-run with `KWQ_STORE_KILL_CHILD` set) runs a
//! seeded workload and reports each completed sync over its stdout pipe;
//! the parent kills it at a random moment, replays the same seeded
//! workload on a reference model to the last reported sync (and the one
//! after, which may have completed unreported), and checks the image:
//! fsck clean, and exactly one of those two states.
//!
//! `KWQ_STORE_KILL_ITERS` sets the number of kills (default 200).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use kwq_store::{fsck, Device, FileDevice, Rng, Store, ROOT_INO};

use crate::common::{env_num, opts, read_all};

type Files = BTreeMap<String, Vec<u8>>;

enum Step {
    Write(String, u64, Vec<u8>),
    Truncate(String, u64),
    Unlink(String),
    Sync,
}

/// The seeded workload: the same sequence in the child and the parent.
fn next_step(rng: &mut Rng) -> Step {
    let name = format!("k{}", rng.below(4));
    match rng.below(8) {
        0..=3 => {
            let len = 1 + rng.below(70_000) as usize;
            let off = rng.below(100_000);
            let b = rng.next_u64() as u8;
            let data = if rng.below(2) == 0 {
                vec![b; len]
            } else {
                (0..len).map(|_| rng.next_u64() as u8).collect()
            };
            Step::Write(name, off, data)
        }
        4 => Step::Truncate(name, rng.below(120_000)),
        5 => Step::Unlink(name),
        _ => Step::Sync,
    }
}

fn apply_model(m: &mut Files, s: &Step) {
    match s {
        Step::Write(n, off, d) => {
            let f = m.entry(n.clone()).or_default();
            let end = *off as usize + d.len();
            if f.len() < end {
                f.resize(end, 0);
            }
            f[*off as usize..end].copy_from_slice(d);
        }
        Step::Truncate(n, size) => {
            if let Some(f) = m.get_mut(n) {
                f.resize(*size as usize, 0);
            }
        }
        Step::Unlink(n) => {
            m.remove(n);
        }
        Step::Sync => {}
    }
}

/// The states after sync number `k` and `k + 1` (sync 0 = mkfs).
fn expected(seed: u64, k: u64) -> (Files, Files) {
    let mut rng = Rng::new(seed);
    let mut m = Files::new();
    let mut syncs = 0;
    let mut at_k = if k == 0 { Some(Files::new()) } else { None };
    loop {
        let s = next_step(&mut rng);
        apply_model(&mut m, &s);
        if matches!(s, Step::Sync) {
            syncs += 1;
            if syncs == k {
                at_k = Some(m.clone());
            } else if syncs == k + 1 {
                return (at_k.expect("k reached first"), m);
            }
        }
    }
}

fn child(path: &str, seed: u64) -> ! {
    let dev = Arc::new(FileDevice::open(path.as_ref()).unwrap());
    let s = Store::mount(dev as Arc<dyn Device>, opts()).unwrap();
    let mut rng = Rng::new(seed);
    let mut out = std::io::stdout().lock();
    let mut syncs = 0u64;
    loop {
        match next_step(&mut rng) {
            Step::Write(n, off, d) => {
                let ino = match s.resolve(&n) {
                    Ok(i) => i,
                    Err(_) => s.create(ROOT_INO, n.as_bytes(), 0o644, 0, 0).unwrap().ino,
                };
                s.write_at(ino, off, &d).unwrap();
            }
            Step::Truncate(n, size) => {
                if let Ok(ino) = s.resolve(&n) {
                    s.truncate(ino, size).unwrap();
                }
            }
            Step::Unlink(n) => {
                let _ = s.unlink(ROOT_INO, n.as_bytes());
            }
            Step::Sync => {
                s.sync().unwrap();
                syncs += 1;
                writeln!(out, "synced {syncs}").unwrap();
                out.flush().unwrap();
            }
        }
    }
}

fn state_of(s: &Store) -> Files {
    s.readdir(ROOT_INO)
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                String::from_utf8(e.name).unwrap(),
                read_all(s, e.ino).unwrap(),
            )
        })
        .collect()
}

#[test]
fn kill_9_during_writes() {
    if let Ok(spec) = std::env::var("KWQ_STORE_KILL_CHILD") {
        let (path, seed) = spec.split_once(',').expect("path,seed");
        child(path, seed.parse().expect("seed"));
    }
    let iters = env_num("KWQ_STORE_KILL_ITERS", 200);
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("kill.img");
    let me = std::env::current_exe().unwrap();
    let mut rng = Rng::new(env_num("KWQ_STORE_KILL_SEED", 9));
    let mut mid_sync = 0;
    for it in 0..iters {
        let seed = rng.next_u64();
        {
            let dev = Arc::new(FileDevice::create(&img, 16 << 20).unwrap());
            Store::format(dev as Arc<dyn Device>, opts())
                .unwrap()
                .unmount()
                .unwrap();
        }
        let mut ch = Command::new(&me)
            .args([
                "--exact",
                "kill::kill_9_during_writes",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("KWQ_STORE_KILL_CHILD", format!("{},{seed}", img.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(5 + rng.below(60)));
        ch.kill().unwrap(); // SIGKILL
        ch.wait().unwrap();
        let mut last = 0u64;
        for line in BufReader::new(ch.stdout.take().unwrap()).lines() {
            // The harness's "test ... " banner has no newline: the first
            // report shares its line.
            let line = line.unwrap();
            if let Some((_, n)) = line.split_once("synced ") {
                last = n.trim().parse().unwrap();
            }
        }
        let dev = Arc::new(FileDevice::open(&img).unwrap());
        let rep = fsck(&*dev).unwrap_or_else(|e| panic!("kill {it} (seed {seed}): fsck: {e}"));
        assert!(rep.is_clean(), "kill {it} (seed {seed}): {rep:?}");
        let s = Store::mount(dev as Arc<dyn Device>, opts()).unwrap();
        let got = state_of(&s);
        s.crash();
        let (at, next) = expected(seed, last);
        if got == next {
            mid_sync += 1;
        } else {
            assert!(
                got == at,
                "kill {it} (seed {seed}): not the state of sync {last} or {}",
                last + 1
            );
        }
    }
    eprintln!("{iters} kills, {mid_sync} found the next sync durable before it was reported");
}
