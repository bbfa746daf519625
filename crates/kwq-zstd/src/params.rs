//! Compression settings, the per-chunk compressor and the pool of reused
//! compression contexts.
//!
//! A libzstd context holds megabytes of match tables; building one per
//! frame would cost more than small frames take to compress. Every
//! parallel stage therefore checks a [`ChunkCompressor`] out of a
//! [`ContextPool`] and returns it afterwards: the pool holds at most as
//! many contexts as stages ever ran at once.

use crate::error::{Error, Result};
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};
use zstd::zstd_safe::CParameter;

/// Default frame size: 4 MiB. See the crate docs for the measurements
/// behind it (ratio against frame size on a documentation tarball).
pub const DEFAULT_FRAME_SIZE: usize = 4 << 20;
/// Smallest frame size accepted.
pub const MIN_FRAME_SIZE: usize = 1 << 10;
/// Largest frame size accepted (the seek table stores sizes as `u32`;
/// 1 GiB leaves room for the compressed bound).
pub const MAX_FRAME_SIZE: usize = 1 << 30;

/// Compression settings shared by [`Encoder`](crate::Encoder),
/// [`compress_chunks`](crate::compress_chunks) and [`ChunkCompressor`].
#[derive(Clone, Debug)]
pub struct Params {
    pub(crate) level: i32,
    pub(crate) frame_size: usize,
    pub(crate) checksum: bool,
    pub(crate) long: Option<u32>,
    pub(crate) dict: Option<Arc<[u8]>>,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            level: 3,
            frame_size: DEFAULT_FRAME_SIZE,
            checksum: true,
            long: None,
            dict: None,
        }
    }
}

impl Params {
    /// Level 3, [`DEFAULT_FRAME_SIZE`], checksums on, no long-distance
    /// matching, no dictionary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compression level: negative (fastest) to 22 (see
    /// [`level_range`](Self::level_range)); 0 means libzstd's default (3).
    pub fn level(mut self, level: i32) -> Self {
        self.level = level;
        self
    }

    /// The levels libzstd accepts.
    pub fn level_range() -> std::ops::RangeInclusive<i32> {
        zstd::compression_level_range()
    }

    /// Bytes of input per frame (the unit of parallelism and of random
    /// access), [`MIN_FRAME_SIZE`] to [`MAX_FRAME_SIZE`].
    pub fn frame_size(mut self, bytes: usize) -> Self {
        self.frame_size = bytes;
        self
    }

    /// Whether each frame ends with a content checksum (default on).
    pub fn checksum(mut self, on: bool) -> Self {
        self.checksum = on;
        self
    }

    /// Long-distance matching with a window of `2^window_log` bytes (10 to
    /// 31; `zstd --long` uses 27), or `None` to turn it off. It only finds
    /// matches inside one frame, so it pays off with large frames.
    pub fn long_distance(mut self, window_log: Option<u32>) -> Self {
        self.long = window_log;
        self
    }

    /// Compress against this dictionary (raw content or one trained by
    /// `zstd --train`). Decoding then needs the same dictionary.
    pub fn dictionary(mut self, dict: impl Into<Vec<u8>>) -> Self {
        let d: Vec<u8> = dict.into();
        self.dict = Some(d.into());
        self
    }

    /// The configured frame size.
    pub fn get_frame_size(&self) -> usize {
        self.frame_size
    }

    /// The configured level.
    pub fn get_level(&self) -> i32 {
        self.level
    }

    /// Checks every setting.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] naming the first bad setting.
    pub fn validate(&self) -> Result<()> {
        if !Self::level_range().contains(&self.level) {
            return Err(Error::InvalidParameter(format!(
                "level {} outside {:?}",
                self.level,
                Self::level_range()
            )));
        }
        if !(MIN_FRAME_SIZE..=MAX_FRAME_SIZE).contains(&self.frame_size) {
            return Err(Error::InvalidParameter(format!(
                "frame size {} outside {MIN_FRAME_SIZE}..={MAX_FRAME_SIZE}",
                self.frame_size
            )));
        }
        if let Some(w) = self.long {
            if !(10..=31).contains(&w) {
                return Err(Error::InvalidParameter(format!(
                    "long-distance window log {w} outside 10..=31"
                )));
            }
        }
        Ok(())
    }
}

/// The outcome of compressing one chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompressedChunk {
    /// One complete zstd frame holding the chunk.
    pub frame: Vec<u8>,
    /// Bytes of input it holds.
    pub input_len: usize,
}

impl CompressedChunk {
    /// Whether the frame is smaller than the input (a store keeping
    /// incompressible data raw checks this, as Btrfs does).
    pub fn is_smaller(&self) -> bool {
        self.frame.len() < self.input_len
    }

    /// Low 32 bits of the XXH64 of the input, when the frame carries a
    /// checksum.
    pub fn checksum(&self) -> Option<u32> {
        crate::frame::trailing_checksum(&self.frame)
    }
}

/// One reusable libzstd compression context: compresses a buffer into one
/// standard frame (content size recorded, checksum as configured).
///
/// Keep one per worker: a kwq ordered stage can own one, or check one out
/// of a [`ContextPool`].
pub struct ChunkCompressor {
    inner: zstd::bulk::Compressor<'static>,
    checksum: bool,
}

impl std::fmt::Debug for ChunkCompressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkCompressor")
            .field("checksum", &self.checksum)
            .finish_non_exhaustive()
    }
}

fn param(c: &mut zstd::bulk::Compressor<'static>, p: CParameter) -> Result<()> {
    c.set_parameter(p)
        .map_err(|e| Error::InvalidParameter(format!("{p:?}: {e}")))
}

impl ChunkCompressor {
    /// A context for these settings (the frame size is not used here).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for settings libzstd refuses (or that
    /// [`Params::validate`] rejects).
    pub fn new(p: &Params) -> Result<Self> {
        p.validate()?;
        let dict: &[u8] = p.dict.as_deref().unwrap_or(&[]);
        let mut inner = zstd::bulk::Compressor::with_dictionary(p.level, dict)
            .map_err(|e| Error::InvalidParameter(format!("dictionary: {e}")))?;
        param(&mut inner, CParameter::ChecksumFlag(p.checksum))?;
        param(&mut inner, CParameter::ContentSizeFlag(true))?;
        if let Some(w) = p.long {
            param(&mut inner, CParameter::EnableLongDistanceMatching(true))?;
            param(&mut inner, CParameter::WindowLog(w))?;
        }
        Ok(ChunkCompressor {
            inner,
            checksum: p.checksum,
        })
    }

    /// Compresses `src` into one frame.
    ///
    /// # Errors
    ///
    /// [`Error::Zstd`] (offset 0) if libzstd fails, which it does only on
    /// allocation failure.
    pub fn compress(&mut self, src: &[u8]) -> Result<CompressedChunk> {
        let mut frame = Vec::new();
        self.compress_into(src, &mut frame)?;
        Ok(CompressedChunk {
            frame,
            input_len: src.len(),
        })
    }

    /// Like [`compress`](Self::compress), into a caller's buffer (cleared
    /// first, grown as needed) so a loop can reuse it. Returns whether the
    /// frame is smaller than `src`.
    ///
    /// # Errors
    ///
    /// As [`compress`](Self::compress).
    pub fn compress_into(&mut self, src: &[u8], dst: &mut Vec<u8>) -> Result<bool> {
        dst.clear();
        dst.reserve(zstd::zstd_safe::compress_bound(src.len()));
        let res = catch_unwind(AssertUnwindSafe(|| self.inner.compress_to_buffer(src, dst)));
        match res {
            Ok(Ok(n)) => Ok(n < src.len()),
            Ok(Err(e)) => Err(Error::zstd(0, &e)),
            Err(_) => Err(Error::Zstd {
                offset: 0,
                message: "libzstd binding panicked".into(),
            }),
        }
    }

    /// Whether frames carry a content checksum.
    pub fn has_checksum(&self) -> bool {
        self.checksum
    }
}

/// Reused compression contexts, shared by parallel stages: a stage takes
/// one (or builds one when none is free), uses it, and gives it back.
#[derive(Debug)]
pub struct ContextPool {
    params: Params,
    free: Mutex<Vec<ChunkCompressor>>,
}

impl ContextPool {
    /// An empty pool for these settings.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] if the settings are invalid.
    pub fn new(params: Params) -> Result<Self> {
        // Build one context now so bad settings fail here, not in a stage.
        let first = ChunkCompressor::new(&params)?;
        Ok(ContextPool {
            params,
            free: Mutex::new(vec![first]),
        })
    }

    /// The pool's settings.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Runs `f` with a context from the pool.
    ///
    /// # Errors
    ///
    /// Building a new context can fail ([`Error::InvalidParameter`]).
    pub fn with<R>(&self, f: impl FnOnce(&mut ChunkCompressor) -> R) -> Result<R> {
        let taken = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut c = match taken {
            Some(c) => c,
            None => ChunkCompressor::new(&self.params)?,
        };
        let r = f(&mut c);
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(c);
        Ok(r)
    }

    /// Compresses one chunk with a pooled context.
    ///
    /// # Errors
    ///
    /// As [`ChunkCompressor::compress`].
    pub fn compress(&self, src: &[u8]) -> Result<CompressedChunk> {
        self.with(|c| c.compress(src))?
    }

    /// Contexts currently idle in the pool.
    pub fn idle(&self) -> usize {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

pub(crate) fn io_err(e: Error) -> io::Error {
    e.into()
}
