//! The file plumbing of `kwq compress`/`decompress`: output written to a
//! temporary file next to the final name and renamed only when complete,
//! the temporary removed on SIGINT/SIGTERM/SIGHUP, mode and times copied
//! from the input (as `zstd` does), a progress bar on a terminal.

use anyhow::{bail, Context as _};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

/// Temporary files to remove if a signal ends the process.
static TEMPS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Starts the thread that removes temporaries on SIGINT, SIGTERM and
/// SIGHUP, then exits with 128 + the signal number.
pub fn install_signal_cleanup() -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("kwq-signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                for p in TEMPS
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .drain(..)
                {
                    let _ = std::fs::remove_file(p);
                }
                std::process::exit(128 + sig);
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// An output file under construction: a temporary next to `dest`,
/// renamed over it by [`commit`](Self::commit), removed on drop.
pub struct Staged {
    tmp: PathBuf,
    dest: PathBuf,
    file: Option<File>,
}

impl Staged {
    /// Creates the temporary for `dest`. Refuses an existing `dest`
    /// unless `force`.
    pub fn create(dest: &Path, force: bool) -> anyhow::Result<Self> {
        if !force && dest.symlink_metadata().is_ok() {
            bail!("{} already exists (use -f to overwrite)", dest.display());
        }
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .context("output has no file name")?
            .to_string_lossy();
        for i in 0..100u32 {
            let tmp = dir.join(format!(".{name}.kwq-{}-{i}.tmp", std::process::id()));
            // Registered before creation, so a signal in between cannot
            // leave it behind.
            TEMPS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(tmp.clone());
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(file) => {
                    return Ok(Staged {
                        tmp,
                        dest: dest.to_path_buf(),
                        file: Some(file),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => unregister(&tmp),
                Err(e) => {
                    unregister(&tmp);
                    return Err(e).with_context(|| format!("creating {}", tmp.display()));
                }
            }
        }
        bail!("could not create a temporary file in {}", dir.display())
    }

    /// The file to write to.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("file present until commit")
    }

    /// Syncs, copies `meta`'s mode and times, renames over the final name.
    pub fn commit(mut self, meta: Option<&std::fs::Metadata>, force: bool) -> anyhow::Result<()> {
        let file = self.file.take().expect("file present until commit");
        if let Some(m) = meta {
            let _ = file.set_permissions(m.permissions());
            let mut t = std::fs::FileTimes::new();
            if let Ok(a) = m.accessed() {
                t = t.set_accessed(a);
            }
            if let Ok(w) = m.modified() {
                t = t.set_modified(w);
            }
            let _ = file.set_times(t);
        }
        file.sync_all()
            .with_context(|| format!("syncing {}", self.tmp.display()))?;
        drop(file);
        if !force && self.dest.symlink_metadata().is_ok() {
            bail!(
                "{} appeared while writing (use -f to overwrite)",
                self.dest.display()
            );
        }
        std::fs::rename(&self.tmp, &self.dest).with_context(|| {
            format!("renaming {} to {}", self.tmp.display(), self.dest.display())
        })?;
        unregister(&self.tmp);
        Ok(())
    }
}

fn unregister(p: &Path) {
    TEMPS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|t| t != p);
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
            unregister(&self.tmp);
        }
    }
}

/// A reader that advances a progress bar.
pub struct Progress<R> {
    inner: R,
    bar: Option<ProgressBar>,
}

impl<R: Read> Progress<R> {
    /// Shows a bar on stderr only if it is a terminal and not `quiet`.
    pub fn new(inner: R, len: Option<u64>, label: &str, quiet: bool) -> Self {
        let bar = (!quiet && io::stderr().is_terminal()).then(|| {
            let b = match len {
                Some(n) => ProgressBar::new(n),
                None => ProgressBar::new_spinner(),
            };
            let style = ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            b.set_style(style);
            b.set_message(label.to_string());
            b
        });
        Progress { inner, bar }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(b) = &self.bar {
            b.inc(n as u64);
        }
        Ok(n)
    }
}

/// Where output goes.
pub enum Sink {
    /// Standard output.
    Stdout(io::StdoutLock<'static>),
    /// A staged file.
    File(Staged),
}

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Stdout(s) => s.write(b),
            Sink::File(f) => f.file().write(b),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(s) => s.flush(),
            Sink::File(f) => f.file().flush(),
        }
    }
}

/// Parses a size such as `4096`, `128K`, `4M`, `4MiB`, `1G`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num.parse().map_err(|_| format!("not a size: {s:?}"))?;
    let mult: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(format!("unknown unit in {s:?} (use K, M or G)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} overflows"))
}
