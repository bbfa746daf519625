//! The kernel targets of W5: Btrfs mounted with `compress-force=zstd:L` on
//! a loop device over a sparse image file; stacked, the upper image file is
//! a normal (copy-on-write, compressed) file inside a lower such Btrfs.
//!
//! Root only: loop devices and mounts need it. The guard detaches what it
//! set up in `Drop` (unmount, then `losetup -d`, upper level first), so a
//! failed run leaves no mount or loop device behind.

use super::Target;
use crate::{Failure, Report};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `cmd args`; its stdout, or a failure carrying its stderr.
fn run(cmd: &str, args: &[&str]) -> Result<String, Failure> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| Failure::Check(format!("cannot run {cmd}: {e}")))?;
    if !out.status.success() {
        return Err(Failure::Check(format!(
            "{cmd} {}: {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Whether `prog` is on `PATH` (or in an sbin directory).
fn have(prog: &str) -> bool {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/sbin", "/usr/sbin"])
        .any(|d| Path::new(d).join(prog).is_file());
    found
}

/// Refuses (exit 2) unless this process is root and loop devices exist;
/// installs `btrfs-progs` with apt-get when `mkfs.btrfs` is missing.
pub(super) fn check_capability() -> Result<(), Failure> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .unwrap_or("");
    if euid != "0" {
        return Err(Failure::Usage(
            "the kernel-btrfs impls need root (loop devices and mounts)".into(),
        ));
    }
    if !Path::new("/dev/loop-control").exists() {
        return Err(Failure::Usage(
            "the kernel-btrfs impls need loop devices, and /dev/loop-control is missing".into(),
        ));
    }
    if !have("mkfs.btrfs") {
        let installed = run("apt-get", &["update", "-qq"])
            .and_then(|_| run("apt-get", &["install", "-y", "-qq", "btrfs-progs"]));
        if let Err(Failure::Check(e)) | Err(Failure::Usage(e)) = installed {
            return Err(Failure::Usage(format!(
                "mkfs.btrfs is missing and installing btrfs-progs failed: {e}"
            )));
        }
    }
    Ok(())
}

/// One Btrfs: its image file, loop device and mount point.
#[derive(Debug)]
struct Level {
    mnt: PathBuf,
    dev: Option<String>,
    mounted: bool,
}

impl Level {
    /// Creates a sparse image of `len` bytes at `img`, attaches it, makes a
    /// Btrfs on it and mounts that at `mnt`. On failure, `levels` holds
    /// what must be undone.
    fn set_up(
        levels: &mut Vec<Level>,
        img: &Path,
        len: u64,
        mnt: PathBuf,
        level: i32,
    ) -> Result<(), Failure> {
        File::create(img)
            .and_then(|f| f.set_len(len))
            .map_err(|e| Failure::Check(format!("image {}: {e}", img.display())))?;
        std::fs::create_dir_all(&mnt)
            .map_err(|e| Failure::Check(format!("mount point {}: {e}", mnt.display())))?;
        levels.push(Level {
            mnt,
            dev: None,
            mounted: false,
        });
        let l = levels.last_mut().expect("just pushed");
        let img_s = img.to_string_lossy();
        let dev = run("losetup", &["--find", "--show", &img_s])?
            .trim()
            .to_string();
        l.dev = Some(dev.clone());
        run("mkfs.btrfs", &["-q", "-f", &dev])?;
        let opt = format!("compress-force=zstd:{level}");
        let mnt_s = l.mnt.to_string_lossy().into_owned();
        run("mount", &["-o", &opt, &dev, &mnt_s])?;
        l.mounted = true;
        Ok(())
    }

    /// Unmounts and detaches; returns the first problem.
    fn tear_down(&mut self) -> Result<(), Failure> {
        let mnt = self.mnt.to_string_lossy().into_owned();
        let mut first = Ok(());
        if self.mounted {
            let r = run("umount", &[&mnt]).or_else(|_| run("umount", &["-l", &mnt]));
            self.mounted = r.is_err();
            first = r.map(drop);
        }
        if let Some(dev) = self.dev.take() {
            let r = run("losetup", &["-d", &dev]).map(drop);
            if first.is_ok() {
                first = r;
            }
        }
        first
    }
}

/// W5's kernel-btrfs and kernel-btrfs-stacked.
#[derive(Debug)]
pub(crate) struct BtrfsTarget {
    /// Lower first; the corpus goes into the last.
    levels: Vec<Level>,
    upper_len: u64,
    metadata_used: u64,
}

impl BtrfsTarget {
    /// Sets up the filesystem(s) under `dir`, sized for `in_bytes` of
    /// input that might not compress.
    pub(crate) fn new(
        dir: &Path,
        stacked: bool,
        in_bytes: u64,
        level: i32,
    ) -> Result<Self, Failure> {
        // At least 1 GiB, so mkfs does not pick mixed data+metadata groups.
        let upper_len = (in_bytes + in_bytes / 2 + (512 << 20)).max(1 << 30);
        let lower_len = if stacked {
            upper_len + in_bytes + (512 << 20)
        } else {
            upper_len
        };
        let mut t = BtrfsTarget {
            levels: Vec::new(),
            upper_len,
            metadata_used: 0,
        };
        Level::set_up(
            &mut t.levels,
            &dir.join("lower.img"),
            lower_len,
            dir.join("lower-mnt"),
            level,
        )?;
        if stacked {
            let img = dir.join("lower-mnt").join("upper.img");
            Level::set_up(&mut t.levels, &img, upper_len, dir.join("upper-mnt"), level)?;
        }
        Ok(t)
    }

    fn top(&self) -> &Path {
        &self.levels.last().expect("at least one level").mnt
    }

    /// `btrfs filesystem df -b`'s used bytes of the line starting `kind`.
    fn df_used(&self, kind: &str) -> Result<u64, Failure> {
        let top = self.top().to_string_lossy().into_owned();
        let out = run("btrfs", &["filesystem", "df", "-b", &top])?;
        out.lines()
            .filter(|l| l.starts_with(kind))
            .filter_map(|l| l.split("used=").nth(1))
            .map(|v| v.trim().parse::<u64>())
            .try_fold(0u64, |acc, v| v.map(|v| acc + v))
            .map_err(|e| Failure::Check(format!("btrfs filesystem df: {e}: {out}")))
    }
}

impl Target for BtrfsTarget {
    fn mkdir(&mut self, path: &str) -> Result<(), Failure> {
        let p = self.top().join(path);
        std::fs::create_dir(&p).map_err(|e| Failure::Check(format!("mkdir {}: {e}", p.display())))
    }

    fn create(&mut self, path: &str) -> Result<(), Failure> {
        let p = self.top().join(path);
        File::create(&p)
            .map(drop)
            .map_err(|e| Failure::Check(format!("create {}: {e}", p.display())))
    }

    fn write(&self, path: &str, create: bool, off: u64, data: &[u8]) -> Result<(), Failure> {
        let p = self.top().join(path);
        OpenOptions::new()
            .write(true)
            .create(create)
            .truncate(create)
            .open(&p)
            .and_then(|f| f.write_all_at(data, off))
            .map_err(|e| Failure::Check(format!("write {}: {e}", p.display())))
    }

    fn sync(&mut self) -> Result<(), Failure> {
        // syncfs of the upper filesystem flushes its loop device, whose
        // backing file lives in the lower one; then sync the lower too.
        for l in self.levels.iter().rev() {
            run("sync", &["-f", &l.mnt.to_string_lossy()])?;
        }
        Ok(())
    }

    fn stored_bytes(&mut self) -> Result<u64, Failure> {
        // Small files inline into metadata, which "Data" does not count:
        // report it next to it.
        self.metadata_used = self.df_used("Metadata,")?;
        self.df_used("Data,")
    }

    fn uncounted_bytes(&self) -> u64 {
        self.metadata_used
    }

    fn unmount(&mut self) -> Result<(), Failure> {
        // The caller syncs and drops the page cache: Btrfs stays mounted.
        Ok(())
    }

    fn mount(&mut self) -> Result<(), Failure> {
        Ok(())
    }

    fn read(&self, path: &str, off: u64, buf: &mut [u8]) -> Result<(), Failure> {
        let p = self.top().join(path);
        File::open(&p)
            .and_then(|f| f.read_exact_at(buf, off))
            .map_err(|e| Failure::Check(format!("read {}: {e}", p.display())))
    }

    fn describe(&self, r: &mut Report) {
        r.int("image_bytes", self.upper_len);
    }
}

impl Drop for BtrfsTarget {
    fn drop(&mut self) {
        while let Some(mut l) = self.levels.pop() {
            if let Err(Failure::Check(e)) = l.tear_down() {
                eprintln!("kwq-bench: warning: cleaning up {}: {e}", l.mnt.display());
            }
        }
    }
}
