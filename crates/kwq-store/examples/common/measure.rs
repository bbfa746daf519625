//! Shared by the examples that measure write amplification: a memory
//! device that counts the bytes written to it, and a median.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use kwq_store::{Device, MemDevice};

/// A memory device that counts the bytes written to it.
#[derive(Debug)]
pub struct Counting {
    inner: MemDevice,
    written: AtomicU64,
}

impl Counting {
    /// Wraps `inner`, with the count at zero.
    pub fn new(inner: MemDevice) -> Counting {
        Counting {
            inner,
            written: AtomicU64::new(0),
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }
}

impl Device for Counting {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        self.inner.read_at(buf, off)
    }
    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        self.written.fetch_add(buf.len() as u64, Ordering::Relaxed);
        self.inner.write_at(buf, off)
    }
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    fn len(&self) -> u64 {
        self.inner.len()
    }
}

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}
