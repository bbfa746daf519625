//! Chunk compression, behind one small interface so the store can switch
//! to `kwq-zstd`'s per-worker contexts by changing this file only.
//!
//! Compress-force semantics: every chunk is compressed; the result is kept
//! only when it saves at least one device block, else the chunk is stored
//! raw (Btrfs `compress-force`: always try, keep what is smaller).

use std::cell::RefCell;

use crate::error::{Result, StoreError};
use crate::format::blocks_for;

/// A chunk as it goes to the device.
#[derive(Debug)]
pub(crate) struct Packed {
    pub bytes: Vec<u8>,
    pub compressed: bool,
}

thread_local! {
    // One context per worker thread, reused for every chunk it compresses,
    // keyed by level.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
}

/// Compresses `raw` at `level`; returns it raw when compression does not
/// save a block (or fails).
pub(crate) fn pack(raw: &[u8], level: i32) -> Packed {
    let out = COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_none_or(|(l, _)| *l != level) {
            *c = zstd::bulk::Compressor::new(level).ok().map(|z| (level, z));
        }
        let (_, z) = c.as_mut()?;
        z.compress(raw).ok()
    });
    match out {
        Some(z) if blocks_for(z.len() as u64) < blocks_for(raw.len() as u64) => Packed {
            bytes: z,
            compressed: true,
        },
        _ => Packed {
            bytes: raw.to_vec(),
            compressed: false,
        },
    }
}

/// Decompresses a zstd frame that must hold exactly `len` bytes; `what`
/// and `offset` name the place for the error.
pub(crate) fn unpack(frame: &[u8], len: usize, what: &'static str, offset: u64) -> Result<Vec<u8>> {
    match zstd::bulk::decompress(frame, len) {
        Ok(v) if v.len() == len => Ok(v),
        _ => Err(StoreError::Corrupt { what, offset }),
    }
}
