//! `kwq mkfs`, `kwq fsck` and `kwq store ls|cat|put|rm|stat|mkdir`:
//! kwq-store images without a mount.
//!
//! An IMAGE is a host path, or an image inside another image:
//! `LOWER.img:/dir/upper.img` (any depth: `a.img:/b.img:/c.img`). Opening
//! one mounts every level; read-only commands commit nothing, and commands
//! that change the image commit once, at the end, so an interrupted one
//! leaves the previous state.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use kwq_store::{Device, FileDevice, FileKind, Options, Store, StoreFileDevice, ROOT_INO};

/// Arguments of `kwq mkfs`.
#[derive(Debug, Args)]
pub struct MkfsArgs {
    /// Image to create (host path, or `LOWER.img:/path` inside another image).
    image: String,
    /// Size, with an optional K/M/G suffix (powers of 1024).
    #[arg(long)]
    size: String,
    /// Bytes of file data per extent, in KiB.
    #[arg(long, default_value_t = kwq_store::DEFAULT_EXTENT_SIZE / 1024)]
    extent_kib: u32,
}

/// Arguments of `kwq fsck`.
#[derive(Debug, Args)]
pub struct FsckArgs {
    /// Image to check.
    image: String,
}

/// Arguments of `kwq store`.
#[derive(Debug, Args)]
pub struct StoreArgs {
    #[command(subcommand)]
    cmd: StoreCmd,
}

#[derive(Debug, Subcommand)]
enum StoreCmd {
    /// List a directory.
    Ls { image: String, path: String },
    /// Write a file's contents to stdout.
    Cat { image: String, path: String },
    /// Store stdin (or --from FILE) as PATH, replacing it atomically.
    Put {
        image: String,
        path: String,
        /// Read this host file instead of stdin.
        #[arg(long)]
        from: Option<std::path::PathBuf>,
    },
    /// Remove a file, symlink or empty directory.
    Rm { image: String, path: String },
    /// Create a directory.
    Mkdir { image: String, path: String },
    /// Show an inode's attributes.
    Stat { image: String, path: String },
}

/// A mounted image and the stores under it (outermost last).
struct Mounted {
    top: Option<Store>,
    lowers: Vec<Arc<Store>>,
}

impl Mounted {
    fn store(&self) -> &Store {
        self.top.as_ref().expect("present until close")
    }

    /// Commits every level, top first.
    fn close(mut self) -> Result<()> {
        if let Some(top) = self.top.take() {
            top.unmount().context("commit")?;
        }
        while let Some(l) = self.lowers.pop() {
            match Arc::into_inner(l) {
                Some(s) => s.unmount().context("commit of a lower image")?,
                None => bail!("a lower image is still in use"),
            }
        }
        Ok(())
    }
}

impl Drop for Mounted {
    /// Without [`Mounted::close`] (an error on the way), nothing of the
    /// command is committed: every level is dropped as after a power cut.
    fn drop(&mut self) {
        if let Some(top) = self.top.take() {
            top.crash();
        }
        while let Some(l) = self.lowers.pop() {
            if let Some(s) = Arc::into_inner(l) {
                s.crash();
            }
        }
    }
}

fn opts() -> Options {
    // One commit at the end: nothing partial is ever committed (the
    // command's data stays in memory until then).
    Options::default()
        .commit_interval(None)
        .dirty_limit(u64::MAX)
}

fn parse_size(s: &str) -> Result<u64> {
    let (num, mul) = match s.chars().last().map(|c| c.to_ascii_uppercase()) {
        Some('K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M') => (&s[..s.len() - 1], 1 << 20),
        Some('G') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let n: u64 = num.parse().with_context(|| format!("bad size {s:?}"))?;
    n.checked_mul(mul).context("size too large")
}

/// Splits `a.img:/x/b.img:/c.img` into the host path and inner paths.
fn split_spec(spec: &str) -> (String, Vec<String>) {
    let mut parts = spec.split(":/");
    let host = parts.next().unwrap_or_default().to_string();
    (host, parts.map(|p| format!("/{p}")).collect())
}

/// The device of the image `spec`: a host file, or a file in the mounted
/// lower levels (pushed onto `lowers`). With `create`, the innermost file
/// is created at `create` bytes.
fn device(
    spec: &str,
    lowers: &mut Vec<Arc<Store>>,
    create: Option<u64>,
) -> Result<Arc<dyn Device>> {
    let (host, inner) = split_spec(spec);
    if inner.is_empty() {
        let dev = match create {
            Some(size) => FileDevice::create(Path::new(&host), size),
            None => FileDevice::open(Path::new(&host)),
        }
        .with_context(|| format!("open {host}"))?;
        return Ok(Arc::new(dev));
    }
    let mut dev: Arc<dyn Device> =
        Arc::new(FileDevice::open(Path::new(&host)).with_context(|| format!("open {host}"))?);
    for (k, path) in inner.iter().enumerate() {
        let lower = Arc::new(
            Store::mount(dev, opts()).with_context(|| format!("mount the image holding {path}"))?,
        );
        lowers.push(lower.clone());
        let last = k + 1 == inner.len();
        dev = match (last, create) {
            (true, Some(size)) => {
                let (dir, name) = parent_and_name(&lower, path)?;
                if lower.resolve(path).is_ok() {
                    bail!("{path} already exists in {host}");
                }
                Arc::new(StoreFileDevice::create(lower, dir, name.as_bytes(), size)?)
            }
            _ => {
                let ino = lower.resolve(path).with_context(|| path.to_string())?;
                Arc::new(StoreFileDevice::new(lower, ino)?)
            }
        };
    }
    Ok(dev)
}

fn mount(spec: &str) -> Result<Mounted> {
    let mut lowers = Vec::new();
    let dev = device(spec, &mut lowers, None)?;
    let top = Store::mount(dev, opts()).with_context(|| format!("mount {spec}"))?;
    Ok(Mounted {
        top: Some(top),
        lowers,
    })
}

fn parent_and_name(s: &Store, path: &str) -> Result<(u64, String)> {
    let path = path.trim_end_matches('/');
    let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
    if name.is_empty() {
        bail!("{path:?} names no entry");
    }
    let ino = s.resolve(dir).with_context(|| format!("{dir:?}"))?;
    Ok((ino, name.to_string()))
}

/// `kwq mkfs`.
pub fn mkfs(a: MkfsArgs) -> Result<ExitCode> {
    let size = parse_size(&a.size)?;
    let mut lowers = Vec::new();
    let dev = device(&a.image, &mut lowers, Some(size))?;
    let o = opts().extent_size(a.extent_kib.saturating_mul(1024));
    let s = Store::format(dev, o).with_context(|| format!("mkfs {}", a.image))?;
    let st = s.statfs();
    Mounted {
        top: Some(s),
        lowers,
    }
    .close()?;
    println!(
        "{}: {} blocks of {} bytes, extent size {} KiB",
        a.image, st.blocks, st.block_size, a.extent_kib
    );
    Ok(ExitCode::SUCCESS)
}

/// `kwq fsck`: e2fsck's exit codes (0 clean, 4 errors left, 8 operational error).
pub fn fsck(a: FsckArgs) -> Result<ExitCode> {
    let mut lowers = Vec::new();
    let dev = match device(&a.image, &mut lowers, None) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("kwq fsck: {e:#}");
            return Ok(ExitCode::from(8));
        }
    };
    let rep = match kwq_store::fsck(&*dev) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("kwq fsck: {}: {e}", a.image);
            return Ok(ExitCode::from(8));
        }
    };
    for w in &rep.warnings {
        println!("warning: {w}");
    }
    for e in &rep.errors {
        println!("error: {e}");
    }
    println!(
        "{}: generation {} (slot {}), {} inodes, {} extents, {} data bytes, {} inline files ({} bytes), {}/{} blocks used: {}",
        a.image,
        rep.generation,
        rep.slot,
        rep.inodes,
        rep.extents,
        rep.data_bytes,
        rep.inline_files,
        rep.inline_bytes,
        rep.used_blocks,
        rep.blocks,
        if rep.is_clean() { "clean" } else { "ERRORS" }
    );
    Ok(ExitCode::from(rep.exit_code() as u8))
}

/// `kwq store ...`.
pub fn run(a: StoreArgs) -> Result<ExitCode> {
    match a.cmd {
        StoreCmd::Ls { image, path } => {
            let m = mount(&image)?;
            let s = m.store();
            let ino = s.resolve(&path).with_context(|| path.clone())?;
            let mut out = std::io::stdout().lock();
            for e in s.readdir(ino)? {
                let at = s.getattr(e.ino)?;
                writeln!(
                    out,
                    "{:>8} {} {:o} {:>12} {}",
                    e.ino,
                    kind_char(e.kind),
                    at.perm,
                    at.size,
                    String::from_utf8_lossy(&e.name)
                )?;
            }
            drop(out);
            m.close()?;
        }
        StoreCmd::Cat { image, path } => {
            let m = mount(&image)?;
            let s = m.store();
            let ino = s.resolve(&path).with_context(|| path.clone())?;
            let mut out = std::io::stdout().lock();
            let mut off = 0u64;
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = s
                    .read_at(ino, off, &mut buf)
                    .with_context(|| path.clone())?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n])?;
                off += n as u64;
            }
            out.flush()?;
            drop(out);
            m.close()?;
        }
        StoreCmd::Put { image, path, from } => {
            let m = mount(&image)?;
            let s = m.store();
            let (dir, name) = parent_and_name(s, &path)?;
            let tmp = format!(".{name}.kwq-put.{}", std::process::id());
            let ino = s.create(dir, tmp.as_bytes(), 0o644, 0, 0)?.ino;
            let mut input: Box<dyn Read> = match &from {
                Some(p) => Box::new(
                    std::fs::File::open(p).with_context(|| format!("open {}", p.display()))?,
                ),
                None => Box::new(std::io::stdin().lock()),
            };
            let mut buf = vec![0u8; 1 << 20];
            let mut off = 0u64;
            loop {
                let n = input.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                s.write_at(ino, off, &buf[..n])?;
                off += n as u64;
            }
            s.rename(dir, tmp.as_bytes(), dir, name.as_bytes())?;
            m.close()?;
            eprintln!("{path}: {off} bytes committed");
        }
        StoreCmd::Rm { image, path } => {
            let m = mount(&image)?;
            let s = m.store();
            let (dir, name) = parent_and_name(s, &path)?;
            let ino = s.resolve(&path).with_context(|| path.clone())?;
            if s.getattr(ino)?.kind == FileKind::Dir {
                s.rmdir(dir, name.as_bytes())?;
            } else {
                s.unlink(dir, name.as_bytes())?;
            }
            m.close()?;
        }
        StoreCmd::Mkdir { image, path } => {
            let m = mount(&image)?;
            let (dir, name) = parent_and_name(m.store(), &path)?;
            m.store().mkdir(dir, name.as_bytes(), 0o755, 0, 0)?;
            m.close()?;
        }
        StoreCmd::Stat { image, path } => {
            let m = mount(&image)?;
            let s = m.store();
            let ino = if path.trim_matches('/').is_empty() {
                ROOT_INO
            } else {
                s.resolve(&path)?
            };
            let a = s.getattr(ino)?;
            println!(
                "inode {}  kind {:?}  perm {:o}  links {}",
                a.ino, a.kind, a.perm, a.nlink
            );
            println!(
                "uid {}  gid {}  size {}  stored {}",
                a.uid, a.gid, a.size, a.disk_bytes
            );
            println!(
                "mtime {}.{:09}  ctime {}.{:09}",
                a.mtime.secs, a.mtime.nanos, a.ctime.secs, a.ctime.nanos
            );
            if a.kind == FileKind::Symlink {
                println!("target {}", String::from_utf8_lossy(&s.readlink(ino)?));
            }
            m.close()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn kind_char(k: FileKind) -> char {
    match k {
        FileKind::Dir => 'd',
        FileKind::Symlink => 'l',
        _ => '-',
    }
}
