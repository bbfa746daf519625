//! Shared helpers.

use std::sync::Arc;

use kwq_store::{Device, MemDevice, Options, Store};

/// Options for tests: small extents so chunk boundaries are exercised,
/// no timer, and a dirty limit high enough that commits happen only when
/// the test asks (unless it sets one).
pub fn opts() -> Options {
    Options::default()
        .extent_size(16 * 1024)
        .commit_interval(None)
        .dirty_limit(1 << 40)
        .level(1)
}

/// A fresh store on a memory device of `mib` MiB.
pub fn mem_store(mib: u64) -> (Arc<MemDevice>, Store) {
    let dev = Arc::new(MemDevice::new(mib << 20));
    let s = Store::format(dev.clone() as Arc<dyn Device>, opts()).expect("format");
    (dev, s)
}

/// Reads a whole file.
pub fn read_all(s: &Store, ino: u64) -> kwq_store::Result<Vec<u8>> {
    let size = s.getattr(ino)?.size;
    let mut buf = vec![0u8; size as usize];
    let n = s.read_at(ino, 0, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

#[allow(dead_code)] // used by the soak-sized tests
/// Env var as a number, else `default`.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
