//! `kwq stack`: the seed's setup in one process, on built-in defaults — a
//! compressing store on a host file, a second one whose device is a file
//! inside the first, both on one kwq runtime and both written at once;
//! then every byte is read back and both images are checked.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use clap::Args;
use kwq_store::{Device, FileDevice, Options, Rng, Store, StoreFileDevice, ROOT_INO};

/// Arguments of `kwq stack`.
#[derive(Debug, Args)]
pub struct StackArgs {
    /// MiB written through each level.
    #[arg(long, default_value_t = 64)]
    mib: u64,
    /// Directory for the lower image (default: a temporary directory);
    /// the image is removed afterwards.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// zstd level.
    #[arg(long, default_value_t = 3)]
    level: i32,
}

/// Text-like data (words from a small vocabulary), so compression has
/// something to do.
fn text(rng: &mut Rng, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "work",
        "queue",
        "pool",
        "worker",
        "flush",
        "ordered",
        "extent",
        "commit",
        "the",
        "a",
        "of",
        "compress",
        "btrfs",
        "loop",
        "device",
        "superblock",
        "inode",
        "and",
        "in",
        "to",
    ];
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
        out.push(if rng.below(12) == 0 { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

/// Writes `mib` MiB as files of 4 MiB into `s`, syncing after each;
/// returns (name, contents) for the check.
fn fill(s: &Store, tag: &str, mib: u64, seed: u64) -> Result<Vec<(String, Vec<u8>)>> {
    let mut rng = Rng::new(seed);
    let mut files = Vec::new();
    for k in 0..mib.div_ceil(4) {
        let name = format!("{tag}-{k}");
        let ino = s.create(ROOT_INO, name.as_bytes(), 0o644, 0, 0)?.ino;
        let data = text(&mut rng, (4usize << 20).min(((mib - k * 4) << 20) as usize));
        for (i, piece) in data.chunks(256 << 10).enumerate() {
            s.write_at(ino, (i << 18) as u64, piece)?;
        }
        s.fsync(ino)?;
        files.push((name, data));
    }
    Ok(files)
}

fn check(s: &Store, files: &[(String, Vec<u8>)], what: &str) -> Result<()> {
    for (name, want) in files {
        let ino = s.resolve(name)?;
        let mut got = vec![0u8; want.len()];
        let n = s.read_at(ino, 0, &mut got)?;
        ensure!(
            n == want.len() && got == *want,
            "{what}: {name} reads back wrong"
        );
    }
    Ok(())
}

/// Runs the demo.
pub fn run(a: StackArgs) -> Result<ExitCode> {
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let lower_img = dir.join("lower.img");
    let mib = a.mib.max(1);
    let rt = kwq::RuntimeBuilder::new().build()?;
    let opts = || {
        Options::default()
            .level(a.level)
            .dirty_limit(16 << 20)
            .commit_interval(Some(Duration::from_secs(5)))
            .runtime(&rt)
    };
    // Room for both levels' data (text compresses ~3x) plus copy-on-write slack.
    let lower_size = (mib * 3 + 64) << 20;
    let upper_size = (mib * 2 + 32) << 20;
    let lower_dev = Arc::new(FileDevice::create(&lower_img, lower_size)?);
    let lower = Arc::new(Store::format(lower_dev.clone(), opts())?);
    let loop_dev = Arc::new(StoreFileDevice::create(
        lower.clone(),
        ROOT_INO,
        b"upper.img",
        upper_size,
    )?);
    let upper = Store::format(loop_dev.clone() as Arc<dyn Device>, opts())?;
    println!(
        "lower: {} ({} MiB host file); upper: lower.img:/upper.img ({} MiB); one kwq runtime, {} CPUs",
        lower_img.display(),
        lower_size >> 20,
        upper_size >> 20,
        rt.concurrency()
    );
    let t = Instant::now();
    let (up, low) = std::thread::scope(|sc| {
        let u = sc.spawn(|| fill(&upper, "up", mib, 1));
        let l = sc.spawn(|| fill(&lower, "low", mib, 2));
        (u.join(), l.join())
    });
    let up = up.map_err(|_| anyhow::anyhow!("upper writer panicked"))??;
    let low = low.map_err(|_| anyhow::anyhow!("lower writer panicked"))??;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "wrote {mib} MiB through each level at once in {secs:.2} s ({:.1} MB/s total), every file fsync'd",
        ((2 * mib) << 20) as f64 / 1e6 / secs
    );
    check(&upper, &up, "upper")?;
    let stored: u64 = up
        .iter()
        .map(|(n, _)| {
            upper
                .resolve(n)
                .and_then(|i| upper.getattr(i))
                .map(|a| a.disk_bytes)
        })
        .sum::<kwq_store::Result<u64>>()?;
    upper.unmount()?;
    let rep = kwq_store::fsck(&*loop_dev)?;
    ensure!(rep.is_clean(), "upper fsck: {:?}", rep.errors);
    println!(
        "upper: read back intact; {} bytes stored for {} (ratio {:.2}); fsck clean at generation {}",
        stored,
        mib << 20,
        (mib << 20) as f64 / stored.max(1) as f64,
        rep.generation
    );
    drop(loop_dev);
    check(&lower, &low, "lower")?;
    Arc::into_inner(lower)
        .context("the lower store is still shared")?
        .unmount()?;
    let rep = kwq_store::fsck(&*lower_dev)?;
    ensure!(rep.is_clean(), "lower fsck: {:?}", rep.errors);
    println!(
        "lower: read back intact; {} of {} blocks used; fsck clean at generation {}",
        rep.used_blocks, rep.blocks, rep.generation
    );
    if a.dir.is_some() {
        std::fs::remove_file(&lower_img).ok();
    }
    Ok(ExitCode::SUCCESS)
}
