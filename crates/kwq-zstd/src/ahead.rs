//! Frame decoding for [`SeekableReader`](crate::SeekableReader), and its
//! parallel read-ahead for sequential reads.
//!
//! # Protocol
//!
//! The reader loads one frame at a time (the one a read touches). When a
//! load follows the previous one in order (frame `i` after frame `i - 1`),
//! the reader tops up a window of the next [`ReadAhead::depth`] frames:
//! on its own thread (the inner reader is neither `Send` nor shared) it
//! reads and checks each frame's compressed bytes, then spawns one decode
//! job per frame on kwq's system workqueue. A later load of frame `j`:
//!
//! * discards the jobs for frames before `j` (a short forward skip),
//! * takes the job for `j` if it is now first, waiting for it (the wait is
//!   a [`kwq::blocking`] section, so a reader used from a kwq worker does
//!   not starve its pool),
//! * otherwise (a seek backwards or far ahead) drops every job and decodes
//!   `j` on its own thread, as without read-ahead.
//!
//! # Invariants
//!
//! * The window holds jobs for consecutive frames in increasing order,
//!   and at most the memory limit of decoded content.
//! * Errors are never early: a job's error (corrupt frame, checksum,
//!   size) is returned by the load of that frame, exactly as the
//!   synchronous path would; an error while *reading* a frame ahead only
//!   stops the read-ahead, and the synchronous path reports it when the
//!   frame is reached.
//! * Dropped jobs run to completion in the background and their output is
//!   thrown away; they own everything they touch (the compressed bytes, a
//!   pooled decompression context), never the reader.

use crate::error::{Error, Result};
use crate::seekable::FrameInfo;
use kwq::JoinHandle;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use zstd::zstd_safe::DParameter;

/// Decompression contexts and output buffers, shared by the reader and its
/// read-ahead jobs.
pub(crate) struct DecodePool {
    dctxs: Mutex<Vec<zstd::bulk::Decompressor<'static>>>,
    buffers: Mutex<Vec<Vec<u8>>>,
    dict: Option<Arc<[u8]>>,
    window_log_max: u32,
}

impl DecodePool {
    /// A pool whose contexts use `dict` and accept windows up to
    /// `memory_limit`.
    pub(crate) fn new(dict: Option<&[u8]>, memory_limit: u64) -> Result<Self> {
        let pool = DecodePool {
            dctxs: Mutex::new(Vec::new()),
            buffers: Mutex::new(Vec::new()),
            dict: dict.map(Arc::from),
            window_log_max: (63 - memory_limit.max(1024).leading_zeros()).clamp(10, 31),
        };
        // Build one context now so a bad dictionary fails when opening.
        let first = pool.context()?;
        pool.give_back(first);
        Ok(pool)
    }

    fn context(&self) -> Result<zstd::bulk::Decompressor<'static>> {
        if let Some(d) = self
            .dctxs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
        {
            return Ok(d);
        }
        let dict: &[u8] = self.dict.as_deref().unwrap_or(&[]);
        let mut d = zstd::bulk::Decompressor::with_dictionary(dict)
            .map_err(|e| Error::InvalidParameter(format!("dictionary: {e}")))?;
        d.set_parameter(DParameter::WindowLogMax(self.window_log_max))
            .map_err(|e| Error::InvalidParameter(e.to_string()))?;
        Ok(d)
    }

    fn give_back(&self, d: zstd::bulk::Decompressor<'static>) {
        self.dctxs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(d);
    }

    /// Keeps a decoded-frame buffer for a later frame (a few at most).
    pub(crate) fn recycle(&self, buf: Vec<u8>) {
        let mut b = self.buffers.lock().unwrap_or_else(PoisonError::into_inner);
        if b.len() < 4 {
            b.push(buf);
        }
    }

    /// Decodes the frame `f` (its compressed bytes are `frame`) with a
    /// pooled context into a pooled buffer.
    ///
    /// # Errors
    ///
    /// [`Error::Zstd`] if libzstd refuses the frame, [`Error::Corrupt`] if
    /// it decodes to another size than the index says.
    pub(crate) fn decode(&self, f: &FrameInfo, frame: &[u8]) -> Result<Vec<u8>> {
        let mut out = self
            .buffers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        out.clear();
        out.reserve_exact(f.decompressed_len as usize);
        let mut d = self.context()?;
        let r = d.decompress_to_buffer(frame, &mut out);
        self.give_back(d);
        let n = r.map_err(|e| Error::zstd(f.compressed_offset, &e))?;
        if n as u64 != f.decompressed_len {
            return Err(Error::corrupt(
                f.compressed_offset,
                format!(
                    "frame decodes to {n} bytes, the index says {}",
                    f.decompressed_len
                ),
            ));
        }
        Ok(out)
    }
}

/// A decode job of the window: (frame, its content length, the job).
type Job = (usize, u64, JoinHandle<Result<Vec<u8>>>);

/// The read-ahead window: decode jobs for the frames after the one being
/// read. See the [module docs](self).
pub(crate) struct ReadAhead {
    /// Most frames decoded ahead (0: off).
    pub(crate) depth: usize,
    /// Jobs for consecutive frames, oldest first.
    jobs: VecDeque<Job>,
    /// Decoded content the jobs hold or will hold.
    bytes: u64,
    /// The frame loaded last, to tell sequential access.
    last: Option<usize>,
}

/// What [`ReadAhead::take`] found for a frame.
pub(crate) enum Taken {
    /// The job for the frame had run: its outcome.
    Done(Result<Vec<u8>>),
    /// No job for the frame: decode it now.
    Missing,
}

impl ReadAhead {
    /// A window of `depth` frames.
    pub(crate) fn new(depth: usize) -> Self {
        ReadAhead {
            depth,
            jobs: VecDeque::new(),
            bytes: 0,
            last: None,
        }
    }

    /// Whether loading `i` continues a sequential read.
    pub(crate) fn is_sequential(&self, i: usize) -> bool {
        self.last.is_some_and(|l| l + 1 == i)
    }

    /// Records that frame `i` was loaded.
    pub(crate) fn loaded(&mut self, i: usize) {
        self.last = Some(i);
    }

    /// The job for frame `i`, if the window has one; drops the jobs for
    /// the frames before it, or all of them if `i` is not in the window.
    pub(crate) fn take(&mut self, i: usize) -> Taken {
        while let Some(&(j, len, _)) = self.jobs.front() {
            if j >= i {
                break;
            }
            self.jobs.pop_front();
            self.bytes -= len;
        }
        match self.jobs.front() {
            Some(&(j, _, _)) if j == i => {}
            _ => {
                self.clear();
                return Taken::Missing;
            }
        }
        let Some((_, len, job)) = self.jobs.pop_front() else {
            return Taken::Missing;
        };
        self.bytes -= len;
        Taken::Done(job.join().unwrap_or_else(|e| {
            Err(Error::Zstd {
                offset: 0,
                message: format!("read-ahead decode failed: {e}"),
            })
        }))
    }

    /// Drops every job (their results are discarded when they finish).
    pub(crate) fn clear(&mut self) {
        self.jobs.clear();
        self.bytes = 0;
    }

    /// The next frame to read ahead after loading `i` (of `frames`), if
    /// the window is not full.
    pub(crate) fn next_frame(&self, i: usize, frames: usize) -> Option<usize> {
        let next = self.jobs.back().map_or(i + 1, |&(j, _, _)| j + 1);
        (self.jobs.len() < self.depth && next < frames).then_some(next)
    }

    /// Whether `len` more bytes of content fit in the window under
    /// `limit`.
    pub(crate) fn has_room(&self, len: u64, limit: u64) -> bool {
        self.bytes + len <= limit
    }

    /// Starts decoding frame `i` (`f`, compressed bytes `frame`) on kwq's
    /// system workqueue.
    pub(crate) fn spawn(&mut self, i: usize, f: FrameInfo, frame: Vec<u8>, pool: &Arc<DecodePool>) {
        let pool = pool.clone();
        let job = kwq::system().spawn(move || pool.decode(&f, &frame));
        self.jobs.push_back((i, f.decompressed_len, job));
        self.bytes += f.decompressed_len;
    }
}
