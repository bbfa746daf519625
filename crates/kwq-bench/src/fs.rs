//! W5 `fs`: write a corpus into a compressing copy-on-write filesystem,
//! sync it, drop every cache, read it back and compare.
//!
//! # Protocol
//!
//! 1. The input is read into memory (outside the timings; `baseline_rss_kib`
//!    is the resident size right after). Without `--files` it is one file
//!    named after the input; with `--files` it is parsed as a tar and each
//!    regular member becomes one file at its path. A member cut off by the
//!    end of the input (a tar truncated to a size), or an unreadable header
//!    after at least one member, ends the list and counts 1 in
//!    `members_skipped`.
//! 2. Write phase (`seconds_write`): directories are created in path order,
//!    then `--threads` threads take pieces of at most [`PIECE`] bytes from
//!    one counter and write them (a file of one piece is created by the
//!    thread that writes it), then every level is synced, upper first.
//! 3. `stored_bytes` is read after the sync: for kwq-store, the upper
//!    store's used blocks minus those of the freshly formatted image; for
//!    Btrfs, `btrfs filesystem df`'s Data used of the upper filesystem.
//!    Btrfs keeps small files inline in its metadata, which Data leaves
//!    out, so `stored_total_bytes` adds Metadata used (one copy) for Btrfs;
//!    for kwq-store it equals `stored_bytes`, which counts everything.
//! 4. Caches are dropped, untimed (`seconds_drop_caches`): kwq stores are
//!    unmounted (upper, then lower), and as root the kernel's page cache is
//!    dropped (`sync`, then `3` into `/proc/sys/vm/drop_caches`;
//!    `page_cache_dropped` says whether it was). `sync` is system-wide, so
//!    on a busy machine it waits for others' dirty data: that is why it is
//!    not timed. Mounting the stores again is timed with the read phase
//!    (`seconds_mount` says how much of it), since Btrfs reloads its
//!    metadata inside its read phase too.
//! 5. Read phase (`seconds_read`): the same pieces are read by `--threads`
//!    threads and compared with the input; a mismatch exits 1.
//!
//! The standard fields: `items` is the number of files, `seconds` is
//! `seconds_write + seconds_read`. `--rep` and `--items` are refused: one
//! process is one run (`fs-bench.sh` repeats and interleaves).
//!
//! Images live in a fresh temporary directory (inside `--dir` if given),
//! removed afterwards; the kernel impls' guard unmounts and detaches its
//! loop devices in `Drop`, so a failure still cleans up.

mod kernel;
mod store;

use crate::cli::{between, Common};
use crate::{Failure, Report};
use clap::builder::PossibleValuesParser;
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Largest piece one thread writes or reads at a time.
pub(crate) const PIECE: usize = 4 << 20;

/// The `--impl` values of `fs`.
const IMPLS: [&str; 4] = [
    "kwq-store",
    "kwq-store-stacked",
    "kernel-btrfs",
    "kernel-btrfs-stacked",
];

/// Arguments of W5.
#[derive(Debug, clap::Args)]
pub(crate) struct FsArgs {
    #[command(flatten)]
    common: Common,
    /// Implementation.
    #[arg(long = "impl", value_name = "NAME", value_parser = PossibleValuesParser::new(IMPLS))]
    imp: String,
    /// The input: one file, or with --files a tar whose members are written.
    #[arg(long)]
    input: PathBuf,
    /// Write the tar's regular members as separate files.
    #[arg(long)]
    files: bool,
    /// zstd level (Btrfs accepts 1..=15).
    #[arg(long, default_value_t = 3, value_parser = between::<i32>(1, 15))]
    level: i32,
    /// kwq-store extent size in KiB (a multiple of 4, at most 16384)
    /// [default: the store's]; Btrfs' is fixed at 128.
    #[arg(long, value_parser = between::<u32>(4, 16384))]
    extent_kib: Option<u32>,
    /// Directory for temporary images [default: a temporary directory].
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// One file to write: its path (relative, `/`-separated) and its bytes in
/// the input buffer.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) path: String,
    pub(crate) start: usize,
    pub(crate) len: usize,
}

/// A piece of an entry: `[off, off + len)` of file `entry`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Piece {
    pub(crate) entry: usize,
    pub(crate) off: usize,
    pub(crate) len: usize,
    /// The entry has only this piece (the writer creates the file).
    pub(crate) whole: bool,
}

/// A filesystem under test, mounted.
pub(crate) trait Target: Sync {
    /// Creates directory `path` (its parent exists).
    fn mkdir(&mut self, path: &str) -> Result<(), Failure>;
    /// Creates the empty file `path` (for entries of several pieces).
    fn create(&mut self, path: &str) -> Result<(), Failure>;
    /// Writes `data` at `off` of `path`, creating it first if `create`.
    fn write(&self, path: &str, create: bool, off: u64, data: &[u8]) -> Result<(), Failure>;
    /// Makes everything durable on every level, upper first.
    fn sync(&mut self) -> Result<(), Failure>;
    /// Data bytes the upper filesystem accounts as used (after `sync`).
    fn stored_bytes(&mut self) -> Result<u64, Failure>;
    /// Used bytes `stored_bytes` leaves out: Btrfs' metadata (which holds
    /// small files inline); 0 where `stored_bytes` counts everything.
    fn uncounted_bytes(&self) -> u64 {
        0
    }
    /// Drops the target's own caches (unmounts, for kwq); the caller drops
    /// the kernel's page cache afterwards.
    fn unmount(&mut self) -> Result<(), Failure>;
    /// Mounts again what [`unmount`](Target::unmount) unmounted (timed
    /// with the read phase).
    fn mount(&mut self) -> Result<(), Failure>;
    /// Fills `buf` from `off` of `path`.
    fn read(&self, path: &str, off: u64, buf: &mut [u8]) -> Result<(), Failure>;
    /// Extra result fields (sizes, options).
    fn describe(&self, r: &mut Report);
}

impl FsArgs {
    pub(crate) fn run(&self) -> Result<Report, Failure> {
        if self.common.rep != 1 || self.common.items.is_some() {
            return Err(Failure::Usage(
                "fs takes neither --rep nor --items: one process is one run (fs-bench.sh repeats)"
                    .into(),
            ));
        }
        let kernel = self.imp.starts_with("kernel-");
        if kernel && self.extent_kib.is_some() {
            return Err(Failure::Usage(
                "--extent-kib is for the kwq-store impls (Btrfs compresses 128 KiB extents)".into(),
            ));
        }
        let extent = match self.extent_kib {
            Some(k) if k % 4 != 0 => {
                return Err(Failure::Usage(
                    "--extent-kib must be a multiple of 4".into(),
                ))
            }
            Some(k) => Some(k * 1024),
            None => None,
        };
        if kernel {
            kernel::check_capability()?;
        }
        let data = std::fs::read(&self.input)
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", self.input.display())))?;
        let (entries, skipped) = if self.files {
            tar_entries(&data)?
        } else {
            let name = self
                .input
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "input".into());
            (
                vec![Entry {
                    path: name,
                    start: 0,
                    len: data.len(),
                }],
                0,
            )
        };
        let in_bytes: u64 = entries.iter().map(|e| e.len as u64).sum();
        let baseline_rss = current_rss_kib();
        let parent = match &self.dir {
            Some(d) => d.clone(),
            None => std::env::temp_dir(),
        };
        let tmp = tempfile::Builder::new()
            .prefix("kwq-bench-fs.")
            .tempdir_in(&parent)
            .map_err(|e| Failure::Usage(format!("temporary directory in {parent:?}: {e}")))?;
        let threads = self.common.threads;
        let mut target: Box<dyn Target> = match self.imp.as_str() {
            "kwq-store" | "kwq-store-stacked" => Box::new(store::StoreTarget::new(
                tmp.path(),
                self.imp == "kwq-store-stacked",
                in_bytes,
                self.level,
                extent,
                threads,
            )?),
            _ => Box::new(kernel::BtrfsTarget::new(
                tmp.path(),
                self.imp == "kernel-btrfs-stacked",
                in_bytes,
                self.level,
            )?),
        };
        let pieces = pieces(&entries);

        // Phase 1: write, then sync every level.
        let t = Instant::now();
        make_dirs(target.as_mut(), &entries)?;
        for p in pieces.iter().filter(|p| !p.whole && p.off == 0) {
            target.create(&entries[p.entry].path)?;
        }
        parallel(&pieces, threads, |p| {
            let e = &entries[p.entry];
            let src = &data[e.start + p.off..e.start + p.off + p.len];
            target.write(&e.path, p.whole, p.off as u64, src)
        })?;
        target.sync()?;
        let seconds_write = t.elapsed().as_secs_f64();
        let stored = target.stored_bytes()?;
        let total = stored + target.uncounted_bytes();

        // Phase 2: drop caches, read back, compare.
        let t = Instant::now();
        target.unmount()?;
        let dropped = drop_page_cache();
        let seconds_drop = t.elapsed().as_secs_f64();
        let t = Instant::now();
        target.mount()?;
        parallel(&pieces, threads, |p| {
            let e = &entries[p.entry];
            let want = &data[e.start + p.off..e.start + p.off + p.len];
            let mut got = vec![0u8; p.len];
            target.read(&e.path, p.off as u64, &mut got)?;
            if got != want {
                return Err(Failure::Check(format!(
                    "{}: bytes {}..{} read back differently",
                    e.path,
                    p.off,
                    p.off + p.len
                )));
            }
            Ok(())
        })?;
        let seconds_read = t.elapsed().as_secs_f64();
        let peak = crate::peak_rss_kib();

        let mut r = Report::new("fs", &self.imp);
        r.timing(
            entries.len() as u64,
            threads,
            &[seconds_write + seconds_read],
        );
        let mb = in_bytes as f64 / 1e6;
        r.int("in_bytes", in_bytes)
            .int("stored_bytes", stored)
            .float("ratio", in_bytes as f64 / stored.max(1) as f64)
            .int("stored_total_bytes", total)
            .float("ratio_total", in_bytes as f64 / total.max(1) as f64)
            .float("seconds_write", seconds_write)
            .float("seconds_read", seconds_read)
            .float("seconds_drop_caches", seconds_drop)
            .float("write_mb_per_s", mb / seconds_write)
            .float("read_mb_per_s", mb / seconds_read)
            .int("peak_rss_kib", peak)
            .int("baseline_rss_kib", baseline_rss)
            .int("level", self.level as u64)
            .str("mode", if self.files { "files" } else { "one-file" })
            .int("members_skipped", skipped)
            .str("page_cache_dropped", if dropped { "yes" } else { "no" });
        target.describe(&mut r);
        drop(target);
        tmp.close()
            .map_err(|e| Failure::Check(format!("removing the temporary directory: {e}")))?;
        Ok(r)
    }
}

/// The regular members of the tar in `data`, as entries over `data`, and
/// how many members the end of `data` cut off.
///
/// # Errors
///
/// [`Failure::Usage`] for an unreadable tar or a member path that leaves
/// the tree (absolute, or with `..`).
fn tar_entries(data: &[u8]) -> Result<(Vec<Entry>, u64), Failure> {
    let mut archive = tar::Archive::new(data);
    let iter = archive
        .entries()
        .map_err(|e| Failure::Usage(format!("not a tar: {e}")))?;
    let mut out = Vec::new();
    let mut skipped = 0;
    for entry in iter {
        let entry = match entry {
            Ok(e) => e,
            // A tar cut to a size ends in a partial header or member.
            Err(e) if out.is_empty() => {
                return Err(Failure::Usage(format!("not a tar: {e}")));
            }
            Err(_) => {
                skipped += 1;
                break;
            }
        };
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_contiguous()) {
            continue;
        }
        let path = entry
            .path()
            .map_err(|e| Failure::Usage(format!("tar member path: {e}")))?;
        let mut parts = Vec::new();
        for c in path.components() {
            match c {
                Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
                Component::CurDir => {}
                _ => {
                    return Err(Failure::Usage(format!(
                        "tar member {path:?} leaves the tree"
                    )))
                }
            }
        }
        if parts.is_empty() {
            continue;
        }
        let start = entry.raw_file_position() as usize;
        let len = entry.size() as usize;
        if start.checked_add(len).is_none_or(|end| end > data.len()) {
            skipped += 1;
            break;
        }
        out.push(Entry {
            path: parts.join("/"),
            start,
            len,
        });
    }
    if out.is_empty() {
        return Err(Failure::Usage("the tar has no regular member".into()));
    }
    Ok((out, skipped))
}

/// Every entry cut into pieces of at most [`PIECE`] bytes, in entry order.
fn pieces(entries: &[Entry]) -> Vec<Piece> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let n = e.len.div_ceil(PIECE).max(1);
        for k in 0..n {
            let off = k * PIECE;
            out.push(Piece {
                entry: i,
                off,
                len: (e.len - off).min(PIECE),
                whole: n == 1,
            });
        }
    }
    out
}

/// Creates every parent directory of every entry, parents first.
fn make_dirs(target: &mut dyn Target, entries: &[Entry]) -> Result<(), Failure> {
    let mut dirs = BTreeSet::new();
    for e in entries {
        let mut p = Path::new(&e.path).parent();
        while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
            if !dirs.insert(d.to_string_lossy().into_owned()) {
                break;
            }
            p = d.parent();
        }
    }
    // BTreeSet order puts "a" before "a/b": parents first.
    for d in &dirs {
        target.mkdir(d)?;
    }
    Ok(())
}

/// Runs `f` on every piece from `threads` scoped threads sharing one
/// counter; the first error wins and stops the others.
fn parallel<F>(pieces: &[Piece], threads: usize, f: F) -> Result<(), Failure>
where
    F: Fn(&Piece) -> Result<(), Failure> + Sync,
{
    let next = AtomicUsize::new(0);
    let failed = std::sync::Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(p) = pieces.get(i) else { break };
                if let Err(e) = f(p) {
                    next.store(pieces.len(), Ordering::Relaxed);
                    let mut slot = failed.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(e);
                    break;
                }
            });
        }
    });
    match failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Resident set size of this process now (`VmRSS`), in KiB.
fn current_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// As root: `sync`, then drops the kernel's page, dentry and inode caches.
/// Returns whether it could.
fn drop_page_cache() -> bool {
    let synced = std::process::Command::new("sync")
        .status()
        .is_ok_and(|s| s.success());
    synced && std::fs::write("/proc/sys/vm/drop_caches", b"3\n").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, usize)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (i, (name, len)) in files.iter().enumerate() {
            let body: Vec<u8> = (0..*len).map(|k| (k * 7 + i) as u8).collect();
            let mut h = tar::Header::new_gnu();
            h.set_size(*len as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, &body[..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn tar_members_point_into_the_buffer_and_a_cut_tail_is_skipped() {
        let data = tar_of(&[("a/b.txt", 1000), ("a/c/d.txt", 5000), ("e", 0)]);
        let (entries, skipped) = tar_entries(&data).unwrap();
        assert_eq!(skipped, 0);
        let paths: Vec<_> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a/b.txt", "a/c/d.txt", "e"]);
        let d = &entries[1];
        let want: Vec<u8> = (0..5000).map(|k| (k * 7 + 1) as u8).collect();
        assert_eq!(&data[d.start..d.start + d.len], &want[..]);
        // Cut inside the second member's data.
        let cut = &data[..d.start + 100];
        let (entries, skipped) = tar_entries(cut).unwrap();
        assert_eq!((entries.len(), skipped), (1, 1));
        assert!(tar_entries(b"not a tar at all").is_err());
    }

    #[test]
    fn parallel_runs_every_piece_once_and_stops_at_the_first_failure() {
        let entries: Vec<Entry> = (0..50)
            .map(|i| Entry {
                path: format!("f{i}"),
                start: 0,
                len: i,
            })
            .collect();
        let p = pieces(&entries);
        let seen: Vec<AtomicUsize> = (0..p.len()).map(|_| AtomicUsize::new(0)).collect();
        parallel(&p, 3, |piece| {
            seen[piece.entry].fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
        assert!(seen.iter().all(|n| n.load(Ordering::Relaxed) == 1));
        let r = parallel(&p, 2, |piece| {
            if piece.entry == 3 {
                return Err(Failure::Check("piece 3".into()));
            }
            Ok(())
        });
        assert!(matches!(r, Err(Failure::Check(m)) if m == "piece 3"));
    }

    #[test]
    fn pieces_cover_every_byte_once() {
        let entries = [
            Entry {
                path: "x".into(),
                start: 0,
                len: 2 * PIECE + 5,
            },
            Entry {
                path: "y".into(),
                start: 0,
                len: 0,
            },
        ];
        let p = pieces(&entries);
        assert_eq!(p.len(), 4);
        assert_eq!(
            p.iter()
                .filter(|p| p.entry == 0)
                .map(|p| p.len)
                .sum::<usize>(),
            2 * PIECE + 5
        );
        assert!(!p[0].whole && p[3].whole && p[3].len == 0);
    }
}
