//! Measures what `fsync` costs when it commits the whole namespace (there
//! is no per-file log): a store holding a tar's members as files, then
//! small overwrites of one file each followed by `fsync`, against the same
//! overwrite in a store holding only that file. Reports device bytes
//! written and time per overwrite + fsync (medians of interleaved rounds).
//!
//! ```text
//! cargo run --release -p kwq-store --example fsync_cost -- INPUT.tar [ROUNDS]
//! ```

use std::io;
use std::sync::Arc;
use std::time::Instant;

#[path = "common/measure.rs"]
mod measure;

use kwq_store::{MemDevice, Options, Rng, Store, ROOT_INO};
use measure::{median, Counting};

/// Regular members of a (possibly truncated) ustar archive: (a unique
/// flat name, bytes).
fn members(tar: &[u8]) -> Vec<(String, &[u8])> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 512 <= tar.len() {
        let h = &tar[at..at + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let field = |r: std::ops::Range<usize>| {
            let f = &h[r];
            let end = f.iter().position(|&b| b == 0).unwrap_or(f.len());
            String::from_utf8_lossy(&f[..end]).into_owned()
        };
        let Ok(size) = usize::from_str_radix(field(124..136).trim(), 8) else {
            break;
        };
        let data = at + 512;
        if data + size > tar.len() {
            break;
        }
        if matches!(h[156], b'0' | 0) {
            // One flat directory: the member's number and base name.
            let path = field(0..100);
            let base = path.rsplit('/').next().unwrap_or("");
            let name: String = format!("{:06}-{base}", out.len())
                .chars()
                .take(200)
                .collect();
            out.push((name, &tar[data..data + size]));
        }
        at = data + size.div_ceil(512) * 512;
    }
    out
}

struct Sample {
    bytes: f64,
    us: f64,
}

/// Writes `files` into a fresh store, syncs, then times `n` overwrites of
/// 4 KiB (or the whole file) + fsync of random files.
fn run(files: &[(String, &[u8])], seed: u64, n: usize) -> (Sample, u64) {
    let total: u64 = files.iter().map(|(_, d)| d.len() as u64).sum();
    let dev = Arc::new(Counting::new(MemDevice::new(total * 2 + (256 << 20))));
    let opts = Options::default().commit_interval(None);
    let s = Store::format(dev.clone(), opts).expect("format");
    let mut inos = Vec::with_capacity(files.len());
    for (name, data) in files {
        let ino = s
            .create(ROOT_INO, name.as_bytes(), 0o644, 0, 0)
            .expect("create")
            .ino;
        s.write_at(ino, 0, data).expect("write");
        inos.push(ino);
    }
    s.sync().expect("sync");
    let mut rng = Rng::new(seed);
    let before = dev.written();
    let t = Instant::now();
    for _ in 0..n {
        let k = rng.below(files.len() as u64) as usize;
        let len = files[k].1.len().clamp(1, 4096);
        let patch: Vec<u8> = (0..len).map(|_| b'a' + rng.below(26) as u8).collect();
        s.write_at(inos[k], 0, &patch).expect("overwrite");
        s.fsync(inos[k]).expect("fsync");
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let bytes = (dev.written() - before) as f64 / n as f64;
    s.crash();
    (Sample { bytes, us }, files.len() as u64)
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: fsync_cost INPUT.tar [ROUNDS]");
        std::process::exit(2);
    };
    let tar = std::fs::read(path)?;
    let rounds: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(3);
    let all = members(&tar);
    if all.is_empty() {
        eprintln!("{path}: no regular members");
        std::process::exit(2);
    }
    // The same overwrites on a store of all members, of 1/10 of them, and
    // of one file.
    let sets: Vec<&[(String, &[u8])]> = vec![&all, &all[..all.len() / 10], &all[..1]];
    let mut samples: Vec<Vec<Sample>> = sets.iter().map(|_| Vec::new()).collect();
    let mut counts = vec![0u64; sets.len()];
    for r in 0..rounds {
        for (i, set) in sets.iter().enumerate() {
            let (smp, c) = run(set, r as u64, 50);
            samples[i].push(smp);
            counts[i] = c;
        }
    }
    println!("{rounds} interleaved rounds, 50 overwrites (4 KiB or the whole file) + fsync each; medians");
    println!("files_in_store  device_bytes_per_fsync  us_per_overwrite+fsync");
    for (i, s) in samples.iter().enumerate() {
        println!(
            "{:>14}  {:>22.0}  {:>22.0}",
            counts[i],
            median(s.iter().map(|x| x.bytes).collect()),
            median(s.iter().map(|x| x.us).collect())
        );
    }
    Ok(())
}
