//! Parallel zstd on kwq: the input cut into independent frames,
//! compressed on a kwq ordered workqueue, written in input order, with a
//! seek table for random access — the shape of Btrfs `compress-force=zstd`
//! (Linux `fs/btrfs/inode.c`, `async_cow`: compress chunks in parallel,
//! submit them in order).
//!
//! ```
//! use std::io::{Read, Write};
//!
//! let mut enc = kwq_zstd::EncoderBuilder::new()
//!     .params(kwq_zstd::Params::new().level(3)) // 4 MiB frames by default
//!     .threads(2)
//!     .build(Vec::new())?;
//! enc.write_all(b"some data, some data, some data")?;
//! let z = enc.finish()?; // the only way to a complete output
//!
//! let mut out = Vec::new();
//! kwq_zstd::Decoder::new(&z[..])?.read_to_end(&mut out)?;
//! assert_eq!(out, b"some data, some data, some data");
//! // Random access: kwq_zstd::SeekableReader (Read + Seek); buffers you
//! // already have: kwq_zstd::compress_chunks / ChunkCompressor.
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What the output is
//!
//! Standard zstd frames, one per [`frame_size`](Params::frame_size) bytes
//! of input, each recording its content size and (by default) a content
//! checksum, followed by a seek table in the zstd *seekable format* — a
//! skippable frame, so stock `zstd -d` and `zstd -t` decode the output as
//! any `.zst` and ignore the table.
//!
//! # Pieces
//!
//! * [`Encoder`] — `io::Write` in; bounded memory; `finish()` is the only
//!   way to a complete output; dropping it discards unwritten frames.
//! * [`Decoder`] — `io::Read` out; multi-frame input decoded
//!   frames-in-parallel; any zstd file (single frame, concatenated,
//!   skippable frames) decodes as with `zstd -d`.
//! * [`SeekableReader`] — `Read + Seek` over the decompressed bytes,
//!   decoding only the frames a read touches.
//! * [`compress_chunks`] — buffers in, frames out, in order.
//! * [`ChunkCompressor`] / [`ContextPool`] — one buffer to one frame with a
//!   reused context, for a caller's own kwq ordered stage; says whether the
//!   frame is smaller than the input.
//!
//! # Frame size
//!
//! Independent frames cannot refer to each other's bytes, so small frames
//! cost ratio; large ones cost memory, random-access granularity, and
//! parallelism on short inputs. Measured on a 256 MiB tar of
//! documentation (HTML and text; see `crates/kwq-bench/make-corpus.sh`),
//! level 3, `kwq-bench compress --chunk-kib K`:
//!
//! | frame size | ratio | vs. one stream |
//! |---|---|---|
//! | 128 KiB | 12.13 | 0.64 |
//! | 1 MiB | 16.68 | 0.88 |
//! | 2 MiB | 17.72 | 0.94 |
//! | **4 MiB (default)** | **18.59** | **0.98** |
//! | 8 MiB | 18.83 | 0.99 |
//! | 16 MiB | 18.99 | 1.00 |
//! | `pzstd -p 2 -3` (33 frames) | 18.69 | 0.99 |
//! | `zstd -3` (one stream) | 18.90 | 1.00 |
//!
//! The default, [`DEFAULT_FRAME_SIZE`] (4 MiB), is within 1% of `pzstd`'s
//! ratio (0.995×; its frames are about 8 MiB at level 3) while keeping a
//! 2-thread encoder (7 frames in flight) near 53 MiB of peak RSS and giving 64 frames per
//! 256 MiB to spread over threads and to seek in.
//!
//! # Memory
//!
//! An encoder holds at most `in_flight` frames between queueing and
//! writing (input, then output) plus the one being filled, and one
//! compression context per running stage (`threads` of them, the calling
//! thread included, which compresses when the queue is full): about
//! `(in_flight + threads + 1) × 2 × frame size` plus the contexts. The decoder reads ahead at most
//! `in_flight` frames and at most its memory limit of content.
//!
//! # Bad input
//!
//! Decoding never trusts lengths: every failure is an [`Error`] carrying
//! the byte offset of the offending frame, memory is bounded by a limit
//! ([`DEFAULT_MEMORY_LIMIT`], [`DecoderBuilder::memory_limit`]), and
//! nothing panics.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ahead;
mod chunks;
pub mod decoder;
pub mod encoder;
mod error;
pub mod frame;
mod params;
pub mod seekable;
pub mod seektable;

pub use chunks::{compress_chunks, compress_chunks_with, ChunksBuilder};
pub use decoder::{Decoder, DecoderBuilder, DEFAULT_MEMORY_LIMIT, PARALLEL_FRAME_MAX};
pub use encoder::{Encoder, EncoderBuilder};
pub use error::{Error, Result};
pub use params::{
    ChunkCompressor, CompressedChunk, ContextPool, Params, DEFAULT_FRAME_SIZE, MAX_FRAME_SIZE,
    MIN_FRAME_SIZE,
};
pub use seekable::{FrameInfo, SeekableReader};
