//! Block devices under a store: the [`Device`] trait, an in-memory device
//! and a host file (or block device).
//!
//! A device is a flat byte array of fixed length with a volatile write
//! cache: a completed `write_at` may still be lost on power failure until
//! a later `flush` returns. The store relies on nothing else: it flushes
//! before every superblock write and after it.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

/// A byte-addressed device with a volatile write cache.
///
/// Implementations must be usable from many threads at once; the store
/// never issues overlapping writes concurrently.
pub trait Device: Send + Sync + fmt::Debug {
    /// Fills `buf` from byte offset `off`.
    ///
    /// # Errors
    ///
    /// An I/O error, or `UnexpectedEof` past the end of the device.
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()>;
    /// Writes all of `buf` at byte offset `off`. Durable only after the
    /// next successful [`flush`](Device::flush).
    ///
    /// # Errors
    ///
    /// An I/O error (`ENOSPC` when the device cannot grow into the range).
    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()>;
    /// Makes every completed write durable.
    ///
    /// # Errors
    ///
    /// An I/O error; then no write since the previous flush is known durable.
    fn flush(&self) -> io::Result<()>;
    /// The device's size in bytes.
    fn len(&self) -> u64;
    /// True for a zero-sized device.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub(crate) fn check_range(len: u64, off: u64, n: usize) -> io::Result<()> {
    match off.checked_add(n as u64) {
        Some(end) if end <= len => Ok(()),
        _ => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("I/O at {off}+{n} beyond the device's {len} bytes"),
        )),
    }
}

/// A device in memory: writes are durable at once (tests, and the base of
/// [`FaultyDevice`](crate::FaultyDevice)).
pub struct MemDevice {
    bytes: Mutex<Vec<u8>>,
}

impl MemDevice {
    /// A zero-filled device of `len` bytes.
    pub fn new(len: u64) -> Self {
        Self::from_bytes(vec![0; len as usize])
    }

    /// A device holding `bytes` (an image taken earlier).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self {
            bytes: Mutex::new(bytes),
        }
    }

    /// A copy of the device's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        lock(&self.bytes).clone()
    }
}

impl fmt::Debug for MemDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemDevice")
            .field("len", &self.len())
            .finish()
    }
}

impl Device for MemDevice {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let b = lock(&self.bytes);
        check_range(b.len() as u64, off, buf.len())?;
        buf.copy_from_slice(&b[off as usize..off as usize + buf.len()]);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        let mut b = lock(&self.bytes);
        check_range(b.len() as u64, off, buf.len())?;
        b[off as usize..off as usize + buf.len()].copy_from_slice(buf);
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        Ok(())
    }

    fn len(&self) -> u64 {
        lock(&self.bytes).len() as u64
    }
}

/// A host file or block device, accessed with `pread`/`pwrite`; `flush` is
/// `fdatasync`.
#[derive(Debug)]
pub struct FileDevice {
    file: File,
    len: u64,
}

impl FileDevice {
    /// Opens an existing file or block device read-write; its size is the
    /// device's size.
    ///
    /// # Errors
    ///
    /// Opening or sizing the file failed.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let len = file.metadata()?.len();
        let len = if len == 0 {
            // A block device reports its size through seeking, not stat.
            use std::io::Seek;
            (&file).seek(io::SeekFrom::End(0))?
        } else {
            len
        };
        Ok(Self { file, len })
    }

    /// Creates (or truncates) a regular file of `len` bytes (sparse).
    ///
    /// # Errors
    ///
    /// Creating or sizing the file failed.
    pub fn create(path: &Path, len: u64) -> io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        file.set_len(len)?;
        Ok(Self { file, len })
    }
}

impl Device for FileDevice {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        check_range(self.len, off, buf.len())?;
        self.file.read_exact_at(buf, off)
    }

    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        check_range(self.len, off, buf.len())?;
        self.file.write_all_at(buf, off)
    }

    fn flush(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    fn len(&self) -> u64 {
        self.len
    }
}

/// Locks a mutex, ignoring poison: every critical section in this crate
/// leaves its data consistent before any point that can panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
