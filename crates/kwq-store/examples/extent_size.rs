//! Measures what the extent size costs and buys: compression ratio of a
//! real corpus, write throughput, and the cost of a small overwrite inside
//! a large extent (device bytes written and time per 4 KiB overwrite +
//! sync). Runs are interleaved across sizes; medians are reported.
//!
//! ```text
//! cargo run --release -p kwq-store --example extent_size -- INPUT [ROUNDS] [KIB,KIB,...]
//! ```

use std::io;
use std::sync::Arc;
use std::time::Instant;

#[path = "common/measure.rs"]
mod measure;

use kwq_store::{MemDevice, Options, Rng, Store, ROOT_INO};
use measure::{median, Counting};

struct Sample {
    stored: u64,
    write_mb_s: f64,
    overwrite_bytes: f64,
    overwrite_us: f64,
}

fn run(input: &[u8], kib: u32, seed: u64) -> Sample {
    let dev = Arc::new(Counting::new(MemDevice::new(
        input.len() as u64 * 2 + (64 << 20),
    )));
    let opts = Options::default()
        .extent_size(kib * 1024)
        .commit_interval(None)
        .dirty_limit(256 << 20);
    let s = Store::format(dev.clone(), opts).expect("format");
    let f = s
        .create(ROOT_INO, b"input", 0o644, 0, 0)
        .expect("create")
        .ino;
    let t = Instant::now();
    for (i, piece) in input.chunks(1 << 20).enumerate() {
        s.write_at(f, (i << 20) as u64, piece).expect("write");
    }
    s.sync().expect("sync");
    let secs = t.elapsed().as_secs_f64();
    let stored = s.getattr(f).expect("stat").disk_bytes;
    // Small overwrites, each made durable on its own.
    let mut rng = Rng::new(seed);
    let n = 64;
    let before = dev.written();
    let t = Instant::now();
    for _ in 0..n {
        let off = rng.below(input.len() as u64 - 4096);
        let patch: Vec<u8> = (0..4096).map(|_| rng.next_u64() as u8).collect();
        s.write_at(f, off, &patch).expect("overwrite");
        s.sync().expect("sync");
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let bytes = (dev.written() - before) as f64 / n as f64;
    s.crash();
    Sample {
        stored,
        write_mb_s: input.len() as f64 / 1e6 / secs,
        overwrite_bytes: bytes,
        overwrite_us: us,
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: extent_size INPUT [ROUNDS] [KIB,KIB,...]");
        std::process::exit(2);
    };
    let input = std::fs::read(path)?;
    let rounds: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(3);
    let sizes: Vec<u32> = args
        .get(3)
        .map(|s| s.split(',').filter_map(|k| k.parse().ok()).collect())
        .unwrap_or_else(|| vec![64, 128, 256, 512, 1024]);
    let mut samples: Vec<Vec<Sample>> = sizes.iter().map(|_| Vec::new()).collect();
    for r in 0..rounds {
        for (i, &kib) in sizes.iter().enumerate() {
            samples[i].push(run(&input, kib, r as u64));
        }
    }
    println!(
        "input {} bytes, {rounds} interleaved rounds, zstd level 3; medians",
        input.len()
    );
    println!("extent_kib  stored_bytes  ratio  write_MB/s  overwrite_dev_bytes  overwrite+sync_us");
    for (i, &kib) in sizes.iter().enumerate() {
        let s = &samples[i];
        let stored = median(s.iter().map(|x| x.stored as f64).collect());
        println!(
            "{kib:>10}  {stored:>12.0}  {:>5.3}  {:>10.1}  {:>19.0}  {:>17.0}",
            input.len() as f64 / stored,
            median(s.iter().map(|x| x.write_mb_s).collect()),
            median(s.iter().map(|x| x.overwrite_bytes).collect()),
            median(s.iter().map(|x| x.overwrite_us).collect()),
        );
    }
    Ok(())
}
