//! Chunk compression and decompression, behind one small interface.
//!
//! Compression goes through `kwq-zstd`'s per-chunk API
//! ([`kwq_zstd::ChunkCompressor`]): one context per worker thread, reused
//! for every chunk it compresses (a context is rebuilt only when the level
//! changes). Frames are standard zstd frames with the content size and no
//! zstd checksum (the store keeps a crc32c of every extent).
//! Decompression reuses one context per thread too, instead of building
//! one per extent.
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
    // One compression context per worker thread, keyed by level.
    static COMPRESSOR: RefCell<Option<(i32, kwq_zstd::ChunkCompressor)>> =
        const { RefCell::new(None) };
    // One decompression context per thread.
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Compresses `raw` into one zstd frame at `level` with this thread's
/// context; `None` if libzstd fails (or refuses the level).
pub(crate) fn compress(raw: &[u8], level: i32) -> Option<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().is_none_or(|(l, _)| *l != level) {
            let p = kwq_zstd::Params::new().level(level).checksum(false);
            *c = kwq_zstd::ChunkCompressor::new(&p).ok().map(|z| (level, z));
        }
        let (_, z) = c.as_mut()?;
        let mut out = Vec::new();
        z.compress_into(raw, &mut out).ok()?;
        Some(out)
    })
}

/// Compresses `raw` at `level`; returns it raw when compression does not
/// save a block (or fails).
pub(crate) fn pack(raw: &[u8], level: i32) -> Packed {
    match compress(raw, level) {
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

/// Decompresses a zstd frame that must hold exactly `len` bytes, with
/// this thread's context; `what` and `offset` name the place for the error.
pub(crate) fn unpack(frame: &[u8], len: usize, what: &'static str, offset: u64) -> Result<Vec<u8>> {
    let out = DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.is_none() {
            *d = zstd::bulk::Decompressor::new().ok();
        }
        d.as_mut().map(|d| d.decompress(frame, len))
    });
    match out {
        Some(Ok(v)) if v.len() == len => Ok(v),
        _ => Err(StoreError::Corrupt { what, offset }),
    }
}
