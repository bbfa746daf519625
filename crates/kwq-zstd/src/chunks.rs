//! Compressing buffers the caller already has: a sequence of chunks in,
//! one frame per chunk out, in order.
//!
//! This is [`kwq::ordered::OrderedMapBuilder`] with a compression function
//! that checks a context out of a shared [`ContextPool`]: chunks are
//! pulled lazily from the caller's iterator, compressed on kwq's pools,
//! and yielded in input order. At most `in_flight` chunks (and their
//! frames) exist between pulling and yielding.

use crate::error::{Error, Result};
use crate::params::{CompressedChunk, ContextPool, Params};
use kwq::ordered::OrderedMapBuilder;
use kwq::Runtime;
use std::sync::Arc;

/// Settings for [`compress_chunks_with`].
#[derive(Debug, Clone)]
pub struct ChunksBuilder {
    params: Params,
    threads: Option<usize>,
    in_flight: usize,
    runtime: Option<Runtime>,
}

impl Default for ChunksBuilder {
    fn default() -> Self {
        ChunksBuilder {
            params: Params::default(),
            threads: None,
            in_flight: 16,
            runtime: None,
        }
    }
}

impl ChunksBuilder {
    /// Default params, threads = the runtime's concurrency, 16 chunks in
    /// flight.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compression settings (the frame size is not used: each chunk is a
    /// frame).
    pub fn params(mut self, p: Params) -> Self {
        self.params = p;
        self
    }

    /// Chunks compressed at once.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n);
        self
    }

    /// Chunks between pulling and yielding (at least 16).
    pub fn in_flight(mut self, n: usize) -> Self {
        self.in_flight = n;
        self
    }

    /// Run on this runtime (default: kwq's global one).
    pub fn runtime(mut self, rt: &Runtime) -> Self {
        self.runtime = Some(rt.clone());
        self
    }
}

/// Compresses each chunk of `chunks` into one frame, in parallel, and
/// yields the frames in order, with default settings and `params`.
///
/// ```
/// let chunks = vec![vec![1u8; 10_000], vec![2u8; 5_000]];
/// let params = kwq_zstd::Params::new().level(1);
/// let frames: Vec<_> = kwq_zstd::compress_chunks(chunks, params)
///     .unwrap()
///     .collect::<Result<_, _>>()
///     .unwrap();
/// assert_eq!(frames.len(), 2);
/// assert!(frames[0].is_smaller());
/// ```
///
/// # Errors
///
/// [`Error::InvalidParameter`] for bad settings; each item is `Err` if
/// its compression failed.
pub fn compress_chunks<I>(
    chunks: I,
    params: Params,
) -> Result<impl Iterator<Item = Result<CompressedChunk>>>
where
    I: IntoIterator,
    I::Item: AsRef<[u8]> + Send + 'static,
{
    compress_chunks_with(chunks, ChunksBuilder::new().params(params))
}

/// [`compress_chunks`] with every setting.
///
/// # Errors
///
/// As [`compress_chunks`]; [`Error::Kwq`] if kwq refuses the settings.
pub fn compress_chunks_with<I>(
    chunks: I,
    b: ChunksBuilder,
) -> Result<impl Iterator<Item = Result<CompressedChunk>>>
where
    I: IntoIterator,
    I::Item: AsRef<[u8]> + Send + 'static,
{
    let pool = Arc::new(ContextPool::new(b.params)?);
    let mut mb = OrderedMapBuilder::new()
        .name("kwq-zstd-chunks")
        .max_in_flight(b.in_flight.max(16));
    if let Some(t) = b.threads {
        mb = mb.max_active(t);
    }
    if let Some(rt) = &b.runtime {
        mb = mb.runtime(rt);
    }
    mb.map(chunks, move |c: I::Item| pool.compress(c.as_ref()))
        .map_err(|e| Error::Kwq(e.to_string()))
}
