//! A fault-injecting device: a volatile write cache that loses or reorders
//! writes on a simulated power cut, and I/Os that fail on demand.
//!
//! # Model
//!
//! The device keeps two images: `durable` (what survives a power cut) and
//! `current` (what reads see). A write updates `current` and is appended
//! to the *unflushed* list; `flush` copies `current` to `durable` and
//! clears the list. A power cut ([`FaultyDevice::crash_image`]) returns
//! `durable` plus an arbitrary subset of the unflushed writes, applied in
//! an arbitrary order and torn at 512-byte sector granularity — every
//! outcome a real disk with a volatile cache may produce.
//!
//! [`FaultyDevice::cut_after_writes`] arms a power cut: after that many
//! more writes, every I/O fails with `EIO` (the machine is "off"), so a
//! workload can run into the cut at a random point; the test then takes
//! the crash image and mounts it on a fresh device.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::sync::Mutex;

use crate::device::{check_range, lock, Device};

const SECTOR: usize = 512;

struct State {
    current: Vec<u8>,
    durable: Vec<u8>,
    unflushed: Vec<(u64, Vec<u8>)>,
    writes: u64,
    cut_at: Option<u64>,
    dead: bool,
    fail_writes: BTreeSet<u64>,
    fail_reads: Vec<(u64, u64)>,
}

/// A device that simulates power cuts and failing I/Os (see the module
/// docs for the model).
pub struct FaultyDevice {
    state: Mutex<State>,
}

impl fmt::Debug for FaultyDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.state);
        f.debug_struct("FaultyDevice")
            .field("len", &s.current.len())
            .field("writes", &s.writes)
            .field("unflushed", &s.unflushed.len())
            .field("dead", &s.dead)
            .finish()
    }
}

/// A small deterministic generator (xorshift64*), so crash images are
/// reproducible from a seed without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    /// The next value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

impl FaultyDevice {
    /// A zero-filled device of `len` bytes, everything durable.
    pub fn new(len: u64) -> Self {
        Self::from_bytes(vec![0; len as usize])
    }

    /// A device whose durable and current contents are `bytes`.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self {
            state: Mutex::new(State {
                durable: bytes.clone(),
                current: bytes,
                unflushed: Vec::new(),
                writes: 0,
                cut_at: None,
                dead: false,
                fail_writes: BTreeSet::new(),
                fail_reads: Vec::new(),
            }),
        }
    }

    /// After `n` more writes, the power goes off: the next I/O of any
    /// kind (read, write or flush) and every later one fail with `EIO`.
    /// Take [`crash_image`](Self::crash_image) to see what survived.
    pub fn cut_after_writes(&self, n: u64) {
        let mut s = lock(&self.state);
        s.cut_at = Some(s.writes + n);
    }

    /// True once an armed power cut happened.
    pub fn is_dead(&self) -> bool {
        lock(&self.state).dead
    }

    /// Makes the `n`-th write from now (0 = the next one) fail with `EIO`,
    /// leaving the device unchanged.
    pub fn fail_write(&self, n: u64) {
        let mut s = lock(&self.state);
        let at = s.writes + n;
        s.fail_writes.insert(at);
    }

    /// Makes every read overlapping `off..off + len` fail with `EIO`.
    pub fn fail_reads_in(&self, off: u64, len: u64) {
        lock(&self.state).fail_reads.push((off, off + len));
    }

    /// Writes counted so far (successful and failed).
    pub fn writes(&self) -> u64 {
        lock(&self.state).writes
    }

    /// The current contents (what reads see), ignoring power cuts.
    pub fn current_image(&self) -> Vec<u8> {
        lock(&self.state).current.clone()
    }

    /// What a power cut now leaves on the medium: the durable image plus a
    /// random subset of the unflushed writes, in random order, each torn
    /// at sector granularity (chosen by `seed`).
    pub fn crash_image(&self, seed: u64) -> Vec<u8> {
        let s = lock(&self.state);
        let mut img = s.durable.clone();
        let mut rng = Rng::new(seed);
        let mut order: Vec<usize> = (0..s.unflushed.len()).collect();
        for i in (1..order.len()).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        // One of four cuts keeps everything or nothing: the extremes matter.
        let mode = rng.below(4);
        for &i in &order {
            let (off, data) = &s.unflushed[i];
            for (k, sector) in data.chunks(SECTOR).enumerate() {
                let keep = match mode {
                    0 => false,
                    1 => true,
                    _ => rng.below(2) == 0,
                };
                if keep {
                    let at = *off as usize + k * SECTOR;
                    img[at..at + sector.len()].copy_from_slice(sector);
                }
            }
        }
        img
    }

    fn dead_error() -> io::Error {
        io::Error::from_raw_os_error(libc::EIO)
    }
}

impl State {
    /// Fails if the power is (now) off.
    fn check_power(&mut self) -> io::Result<()> {
        if self.cut_at.is_some_and(|c| self.writes >= c) {
            self.dead = true;
        }
        if self.dead {
            return Err(FaultyDevice::dead_error());
        }
        Ok(())
    }
}

impl Device for FaultyDevice {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.check_power()?;
        check_range(s.current.len() as u64, off, buf.len())?;
        let end = off + buf.len() as u64;
        if s.fail_reads.iter().any(|&(a, b)| off < b && a < end) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        buf.copy_from_slice(&s.current[off as usize..end as usize]);
        Ok(())
    }

    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.check_power()?;
        check_range(s.current.len() as u64, off, buf.len())?;
        let n = s.writes;
        s.writes += 1;
        if s.fail_writes.remove(&n) {
            return Err(io::Error::from_raw_os_error(libc::EIO));
        }
        s.current[off as usize..off as usize + buf.len()].copy_from_slice(buf);
        s.unflushed.push((off, buf.to_vec()));
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        let mut s = lock(&self.state);
        s.check_power()?;
        let State {
            current,
            durable,
            unflushed,
            ..
        } = &mut *s;
        for (off, data) in unflushed.drain(..) {
            durable[off as usize..off as usize + data.len()]
                .copy_from_slice(&current[off as usize..off as usize + data.len()]);
        }
        Ok(())
    }

    fn len(&self) -> u64 {
        lock(&self.state).current.len() as u64
    }
}
