//! `kwq stack`: the setup of the 2019 Btrfs deadlock in one process, on
//! built-in defaults, with no root — a compressing store on a host file, a
//! second one whose device is a file inside the first (the loop device),
//! both on one kwq runtime and both written at once.
//!
//! Steps: build a documentation-like corpus on the spot for each level
//! (`stack_corpus.rs`), write both at once (a progress bar on a terminal,
//! nothing when stderr is piped), sync, print each level's throughput and
//! compression ratio, then unmount each level, fsck its image, mount it
//! again and compare every byte with the corpus. Any mismatch or fsck
//! finding is an error (exit 1).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use kwq_store::{Device, FileDevice, Options, Store, StoreFileDevice, ROOT_INO};

use crate::stack_corpus::{build, CorpusFile};

/// Arguments of `kwq stack`.
#[derive(Debug, Args)]
pub struct StackArgs {
    /// MiB of corpus written through each level.
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

/// What one level's writer measured.
struct Written {
    bytes: u64,
    secs: f64,
}

/// Writes `files` into `s` in 256 KiB calls, syncing every 16 MiB and at
/// the end (the sync time counts).
fn fill(s: &Store, files: &[CorpusFile], bar: &ProgressBar) -> Result<Written> {
    let t = Instant::now();
    let mut since_sync = 0u64;
    let mut bytes = 0u64;
    for f in files {
        let ino = s.create(ROOT_INO, f.name.as_bytes(), 0o644, 0, 0)?.ino;
        for (i, piece) in f.data.chunks(256 << 10).enumerate() {
            s.write_at(ino, (i as u64) << 18, piece)?;
            bar.inc(piece.len() as u64);
        }
        bytes += f.data.len() as u64;
        since_sync += f.data.len() as u64;
        if since_sync >= 16 << 20 {
            s.sync()?;
            since_sync = 0;
        }
    }
    s.sync()?;
    Ok(Written {
        bytes,
        secs: t.elapsed().as_secs_f64(),
    })
}

/// Every file reads back byte for byte.
fn compare(s: &Store, files: &[CorpusFile], what: &str) -> Result<()> {
    let mut got = Vec::new();
    for f in files {
        let ino = s.resolve(&f.name)?;
        got.resize(f.data.len() + 1, 0);
        let n = s.read_at(ino, 0, &mut got)?;
        ensure!(
            n == f.data.len() && got[..n] == f.data[..],
            "{what}: {} reads back wrong",
            f.name
        );
    }
    Ok(())
}

/// Device bytes in use (space held until the next commit counts).
fn used(s: &Store) -> u64 {
    let st = s.statfs();
    (st.blocks - st.free_blocks) * u64::from(st.block_size)
}

fn progress(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{wide_bar}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Checks an unmounted image: fsck, then mount it again and compare
/// `files` byte for byte. Returns the generation fsck found.
fn verify(dev: Arc<dyn Device>, opts: Options, files: &[CorpusFile], what: &str) -> Result<u64> {
    let rep = kwq_store::fsck(&*dev)?;
    ensure!(
        rep.is_clean(),
        "{what}: fsck found {:?} {:?}",
        rep.errors,
        rep.warnings
    );
    let s = Store::mount(dev, opts.commit_interval(None))?;
    compare(&s, files, what)?;
    s.unmount()?;
    Ok(rep.generation)
}

/// Runs `kwq stack`.
pub fn run(a: StackArgs) -> Result<ExitCode> {
    let tmp = tempfile::tempdir().context("temporary directory")?;
    let dir = a.dir.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let lower_img = dir.join("lower.img");
    let mib = a.mib.max(1);
    let t = Instant::now();
    let (up_files, low_files) = std::thread::scope(|sc| {
        let u = sc.spawn(|| build(1, mib << 20));
        let l = build(2, mib << 20);
        (u.join(), l)
    });
    let up_files = up_files.map_err(|_| anyhow::anyhow!("corpus builder panicked"))?;
    println!(
        "corpus: {} + {} documentation-like files, {mib} MiB per level, built in {:.2} s",
        up_files.len(),
        low_files.len(),
        t.elapsed().as_secs_f64()
    );
    let rt = kwq::RuntimeBuilder::new().build()?;
    let opts = || {
        Options::default()
            .level(a.level)
            .dirty_limit(16 << 20)
            .commit_interval(Some(Duration::from_secs(5)))
            .runtime(&rt)
    };
    // Room for both levels' data (the corpus compresses well over 3x; the
    // upper's image is already compressed) plus copy-on-write slack.
    let lower_size = (mib * 2 + 64) << 20;
    let upper_size = (mib + 32) << 20;
    let lower_dev = Arc::new(FileDevice::create(&lower_img, lower_size)?);
    let lower = Arc::new(Store::format(lower_dev.clone(), opts())?);
    let loop_dev = Arc::new(StoreFileDevice::create(
        lower.clone(),
        ROOT_INO,
        b"upper.img",
        upper_size,
    )?);
    let image_ino = loop_dev.ino();
    let upper = Store::format(loop_dev.clone() as Arc<dyn Device>, opts())?;
    let (up_base, low_base) = (used(&upper), used(&lower));
    println!(
        "lower: {} ({} MiB host file); upper: lower.img:/upper.img ({} MiB); one kwq runtime, {} CPUs",
        lower_img.display(),
        lower_size >> 20,
        upper_size >> 20,
        rt.concurrency()
    );
    let bar = progress(2 * (mib << 20));
    let t = Instant::now();
    let (up, low) = std::thread::scope(|sc| {
        let u = sc.spawn(|| fill(&upper, &up_files, &bar));
        let l = fill(&lower, &low_files, &bar);
        (u.join(), l)
    });
    bar.finish_and_clear();
    let up = up.map_err(|_| anyhow::anyhow!("upper writer panicked"))??;
    let low = low?;
    let secs = t.elapsed().as_secs_f64();
    // The upper's commits reach the lower as writes into upper.img and
    // fsyncs of it; the lower's own sync makes them durable there too.
    lower.sync()?;
    let up_stored = used(&upper) - up_base;
    let image_stored = lower.getattr(image_ino)?.disk_bytes;
    let low_stored = (used(&lower) - low_base).saturating_sub(image_stored);
    println!(
        "wrote {:.1} MB through both levels at once in {secs:.2} s ({:.1} MB/s), synced",
        (up.bytes + low.bytes) as f64 / 1e6,
        (up.bytes + low.bytes) as f64 / 1e6 / secs
    );
    let line = |what: &str, w: &Written, stored: u64| {
        println!(
            "{what}: {:.1} MB in {:.2} s = {:.1} MB/s (write + sync); stored {} bytes, ratio {:.2}",
            w.bytes as f64 / 1e6,
            w.secs,
            w.bytes as f64 / 1e6 / w.secs,
            stored,
            w.bytes as f64 / stored.max(1) as f64
        );
    };
    line("upper", &up, up_stored);
    line("lower", &low, low_stored);
    println!(
        "lower also holds upper.img: {image_stored} bytes for the upper's {up_stored} (compressed already)"
    );
    upper.unmount()?;
    let g = verify(loop_dev.clone(), opts(), &up_files, "upper")?;
    println!("upper: fsck clean at generation {g}; remounted, every byte matches");
    drop(loop_dev);
    Arc::into_inner(lower)
        .context("the lower store is still shared")?
        .unmount()?;
    let g = verify(lower_dev, opts(), &low_files, "lower")?;
    println!("lower: fsck clean at generation {g}; remounted, every byte matches");
    if a.dir.is_some() {
        std::fs::remove_file(&lower_img).ok();
    }
    Ok(ExitCode::SUCCESS)
}
