//! The parallel encoder: `io::Write` in, independent frames out, in order,
//! then a seek table.
//!
//! # Protocol
//!
//! ```text
//!   caller (write)                 kwq ordered queue                  caller (write/finish)
//!   fill `cur` to frame_size ─▶ func: compress on a pooled context ─▶ ordered: push to `done`
//!                                (the caller too, when the ring is    pop `done` in order,
//!                                 full: `caller_runs`)                write to the sink
//! ```
//!
//! 1. `write` copies input into the current frame buffer (`write_from`
//!    reads into it directly, asking for the whole room left, so a file is
//!    read in frame-sized reads); a full buffer is queued (a parallel
//!    `func` that compresses it, an `ordered` stage that appends the
//!    result to the `done` list).
//! 2. Before queueing, the caller writes every finished frame to the sink;
//!    when `in_flight` frames are queued and not yet written it waits for
//!    the oldest. The sink is only ever touched by the caller's thread.
//! 3. `threads` counts the caller: the queue has `threads - 1` kwq
//!    runners (one when `threads` is 1) and is built with `caller_runs`,
//!    and its ring holds `threads` fewer frames than `in_flight` (see
//!    `ring_len`). Reading is much faster than compressing, so the ring
//!    fills, and from then on the caller, finding it full, compresses a
//!    frame no runner has claimed instead of sleeping: T threads keep T
//!    cores busy, with no third thread time-slicing against them and no
//!    hand-off to wait for. The ring keeps unclaimed frames for the
//!    runners while the caller is busy.
//! 4. `finish` queues the last partial frame (or one empty frame for an
//!    empty input, so the output is a valid zstd file), writes every frame,
//!    the seek table, flushes and returns the sink.
//!
//! # Invariants
//!
//! * Memory: at most `in_flight` frames exist between queueing and
//!   writing, each holding its input buffer and then its output buffer,
//!   plus the frame being filled; buffers are recycled, not reallocated,
//!   and a fresh one comes zeroed from the allocator (untouched pages), so
//!   each page is faulted in once per encoder, by the read that fills it.
//! * Order: `ordered` stages run in queueing order, so `done` is in input
//!   order; the caller writes it front to back.
//! * Errors: the first sink or compression error is kept and returned by
//!   every later `write`/`flush`/`finish`; nothing more reaches the sink.
//!
//! # Drop
//!
//! Dropping an encoder without `finish` discards the frames not yet
//! written: it raises a cancel flag (queued compressions return at once),
//! waits only for the stages already running, never writes to the sink
//! and never panics. The sink then holds a prefix of whole frames and no
//! seek table.

use crate::error::Error;
use crate::params::{io_err, ContextPool, Params};
use crate::seektable::{write_table, Entry};
use kwq::ordered::{BoxedOrderedWorkqueue, OrderedWorkqueue};
use kwq::Runtime;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// A compressed frame on its way to the sink, with its recycled buffers.
/// `input` is a whole frame buffer; `len` of its bytes were the frame's.
struct Done {
    out: Result<Vec<u8>, Error>,
    input: Vec<u8>,
    len: usize,
}

#[derive(Default)]
struct Shared {
    done: Mutex<VecDeque<Done>>,
    ready: Condvar,
    cancelled: AtomicBool,
}

/// Settings for an [`Encoder`] beyond the compression [`Params`].
#[derive(Debug, Clone, Default)]
pub struct EncoderBuilder {
    params: Params,
    threads: Option<usize>,
    in_flight: Option<usize>,
    runtime: Option<Runtime>,
    seek_table: Option<bool>,
}

impl EncoderBuilder {
    /// Defaults: [`Params::default`], threads = the runtime's concurrency,
    /// `in_flight` = 3 × threads + 1 (room for frames that finish out of
    /// order while the oldest is still compressing, and for unclaimed
    /// frames the caller can compress when it would otherwise wait), seek
    /// table on.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compression settings.
    pub fn params(mut self, p: Params) -> Self {
        self.params = p;
        self
    }

    /// Threads compressing at once (1 to 64), the calling thread included:
    /// `threads - 1` kwq runners plus the caller, which compresses whenever
    /// the queue is full (module docs). With 1, one runner compresses and
    /// the caller only reads and writes.
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n);
        self
    }

    /// Frames allowed between queueing and writing (raised to at least
    /// `threads + 1`). Memory is about `(in_flight + threads + 1) × 2 ×
    /// frame size`.
    pub fn in_flight(mut self, n: usize) -> Self {
        self.in_flight = Some(n);
        self
    }

    /// Run the compressions on this runtime's pools (default: kwq's global
    /// runtime).
    pub fn runtime(mut self, rt: &Runtime) -> Self {
        self.runtime = Some(rt.clone());
        self
    }

    /// Whether to end the output with a seek table (default on).
    pub fn seek_table(mut self, on: bool) -> Self {
        self.seek_table = Some(on);
        self
    }

    /// Creates the encoder writing to `sink`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for bad settings, [`Error::Kwq`] if the
    /// queue cannot be built.
    pub fn build<W: Write>(self, sink: W) -> Result<Encoder<W>, Error> {
        let rt = self.runtime.unwrap_or_else(|| Runtime::global().clone());
        let threads = self
            .threads
            .unwrap_or_else(|| rt.concurrency())
            .clamp(1, 64);
        if self.threads.is_some_and(|t| !(1..=64).contains(&t)) {
            return Err(Error::InvalidParameter(format!(
                "threads {} outside 1..=64",
                self.threads.unwrap_or(0)
            )));
        }
        let in_flight = self.in_flight.unwrap_or(3 * threads + 1).max(threads + 1);
        let pool = Arc::new(ContextPool::new(self.params.clone())?);
        let queue = OrderedWorkqueue::builder("kwq-zstd-encode")
            .runtime(&rt)
            .max_active(runners(threads))
            .max_in_flight(ring_len(in_flight, threads))
            .caller_runs(threads >= 2)
            .build()
            .map_err(|e| Error::Kwq(e.to_string()))?;
        let frame_size = self.params.frame_size;
        Ok(Encoder {
            sink: Some(sink),
            cur: Vec::new(),
            fill: 0,
            spare_in: Vec::new(),
            spare_out: Vec::new(),
            queue,
            shared: Arc::new(Shared::default()),
            pool,
            pending: 0,
            in_flight,
            entries: Vec::new(),
            frames: 0,
            error: None,
            frame_size,
            seek_table: self.seek_table.unwrap_or(true),
            checksum: self.params.checksum,
        })
    }
}

/// A parallel zstd encoder: independent frames of
/// [`frame_size`](Params::frame_size) bytes, compressed on a kwq ordered
/// queue, written in input order, followed by a seek table.
///
/// ```
/// use std::io::Write;
/// let mut enc = kwq_zstd::Encoder::new(Vec::new()).unwrap();
/// enc.write_all(b"hello hello hello").unwrap();
/// let compressed = enc.finish().unwrap();
/// assert_eq!(zstd::decode_all(&compressed[..]).unwrap(), b"hello hello hello");
/// ```
///
/// See the [module docs](self) for the protocol and what `Drop` does.
pub struct Encoder<W: Write> {
    sink: Option<W>,
    /// The frame being filled: empty until the first byte arrives, then
    /// `frame_size` long; `fill` of its bytes are input.
    cur: Vec<u8>,
    fill: usize,
    spare_in: Vec<Vec<u8>>,
    spare_out: Vec<Vec<u8>>,
    queue: BoxedOrderedWorkqueue<Done>,
    shared: Arc<Shared>,
    pool: Arc<ContextPool>,
    pending: usize,
    in_flight: usize,
    entries: Vec<Entry>,
    frames: u64,
    error: Option<(io::ErrorKind, String)>,
    frame_size: usize,
    seek_table: bool,
    checksum: bool,
}

impl<W: Write> std::fmt::Debug for Encoder<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("frame_size", &self.frame_size)
            .field("pending", &self.pending)
            .field("frames", &self.frames)
            .finish_non_exhaustive()
    }
}

impl<W: Write> Encoder<W> {
    /// An encoder with default settings.
    ///
    /// # Errors
    ///
    /// As [`EncoderBuilder::build`].
    pub fn new(sink: W) -> Result<Self, Error> {
        EncoderBuilder::new().build(sink)
    }

    /// An encoder with these compression settings.
    ///
    /// # Errors
    ///
    /// As [`EncoderBuilder::build`].
    pub fn with_params(sink: W, params: Params) -> Result<Self, Error> {
        EncoderBuilder::new().params(params).build(sink)
    }

    /// Frames written to the sink so far.
    pub fn frames_written(&self) -> u64 {
        self.frames
    }

    fn sticky(&self) -> io::Result<()> {
        match &self.error {
            Some((k, m)) => Err(io::Error::new(*k, m.clone())),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: io::Error) -> io::Error {
        if self.error.is_none() {
            self.error = Some((e.kind(), e.to_string()));
        }
        e
    }

    /// Makes `cur` a whole frame buffer (a recycled one if any). Fresh
    /// buffers are zeroed by the allocator (`calloc`: untouched pages), so
    /// reads can go straight into them and nothing is initialised twice.
    fn ensure_cur(&mut self) {
        if self.cur.is_empty() {
            self.cur = self
                .spare_in
                .pop()
                .unwrap_or_else(|| vec![0; self.frame_size]);
        }
    }

    /// Queues the current buffer (its first `fill` bytes) as one frame.
    fn submit(&mut self) -> io::Result<()> {
        self.write_ready(false)?;
        while self.pending >= self.in_flight {
            self.write_ready(true)?;
        }
        self.ensure_cur();
        let input = std::mem::take(&mut self.cur);
        let len = std::mem::take(&mut self.fill);
        let mut out = self.spare_out.pop().unwrap_or_default();
        let pool = self.pool.clone();
        let shared = self.shared.clone();
        let shared2 = self.shared.clone();
        // With `caller_runs`, a full ring makes this thread compress a
        // queued frame itself instead of sleeping (module docs).
        self.queue.queue(
            Box::new(move || {
                if shared.cancelled.load(Ordering::Relaxed) {
                    return Done {
                        out: Ok(Vec::new()),
                        input,
                        len,
                    };
                }
                let r = catch_unwind(AssertUnwindSafe(|| {
                    pool.with(|c| c.compress_into(&input[..len], &mut out))
                }));
                let out = match r {
                    Ok(Ok(Ok(_))) => Ok(out),
                    Ok(Ok(Err(e)) | Err(e)) => Err(e),
                    Err(_) => Err(Error::Zstd {
                        offset: 0,
                        message: "compression panicked".into(),
                    }),
                };
                Done { out, input, len }
            }),
            Box::new(move |d: Done| {
                shared2
                    .done
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_back(d);
                shared2.ready.notify_one();
            }),
        );
        self.pending += 1;
        Ok(())
    }

    /// Writes finished frames to the sink, in order. With `wait`, first
    /// waits until at least one is finished.
    fn write_ready(&mut self, wait: bool) -> io::Result<()> {
        let batch: Vec<Done> = {
            let mut g = self
                .shared
                .done
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if wait {
                while g.is_empty() {
                    g = self
                        .shared
                        .ready
                        .wait(g)
                        .unwrap_or_else(PoisonError::into_inner);
                }
            }
            g.drain(..).collect()
        };
        for d in batch {
            self.pending -= 1;
            let raw_len = d.len;
            self.spare_in.push(d.input);
            let frame = match d.out {
                Ok(f) => f,
                Err(e) => return Err(self.fail(io_err(e))),
            };
            if self.error.is_none() {
                let sink = self.sink.as_mut().expect("sink present until finish");
                if let Err(e) = sink.write_all(&frame) {
                    return Err(self.fail(e));
                }
                self.frames += 1;
                if self.seek_table {
                    self.entries.push(Entry {
                        compressed: frame.len() as u32,
                        decompressed: raw_len as u32,
                        checksum: crate::frame::trailing_checksum(&frame),
                    });
                }
            }
            self.spare_out.push(frame);
        }
        Ok(())
    }

    /// Compresses what is left, writes every frame and the seek table,
    /// flushes the sink and returns it. The only way to a complete output.
    ///
    /// # Errors
    ///
    /// The first error of the sink or of a compression (also any error an
    /// earlier `write` returned).
    pub fn finish(mut self) -> io::Result<W> {
        self.sticky()?;
        if self.fill > 0 || self.frames + self.pending as u64 == 0 {
            self.submit()?;
        }
        while self.pending > 0 {
            self.write_ready(true)?;
        }
        if let Err(e) = self.queue.flush() {
            return Err(self.fail(io::Error::other(format!("compression stage panicked: {e}"))));
        }
        let table = self
            .seek_table
            .then(|| write_table(&self.entries, self.checksum));
        tracing::debug!(
            frames = self.frames,
            frame_size = self.frame_size,
            "kwq-zstd: encoder finished"
        );
        let Some(mut sink) = self.sink.take() else {
            // `finish` consumes the encoder, and nothing else takes the sink.
            unreachable!("the sink is present until finish")
        };
        if let Some(t) = table {
            sink.write_all(&t)?;
        }
        sink.flush()?;
        Ok(sink)
    }

    /// Reads `src` to its end straight into the frame buffers (one copy
    /// fewer than `io::copy` into [`Write`]; each `read` asks for all the
    /// room left in the frame, so a file is read in whole frames),
    /// queueing each full frame. Returns the bytes read. Call
    /// [`finish`](Self::finish) afterwards.
    ///
    /// # Errors
    ///
    /// The first error of `src`, of the sink or of a compression.
    pub fn write_from<R: Read + ?Sized>(&mut self, src: &mut R) -> io::Result<u64> {
        let mut total = 0u64;
        loop {
            self.sticky()?;
            self.ensure_cur();
            let n = match src.read(&mut self.cur[self.fill..]) {
                Ok(0) => return Ok(total),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            total += n as u64;
            self.fill += n;
            if self.fill == self.frame_size {
                self.submit()?;
            }
        }
    }

    /// The sink (writing to it directly corrupts the output).
    pub fn get_ref(&self) -> &W {
        match self.sink.as_ref() {
            Some(s) => s,
            // Only `finish` (which consumes the encoder) takes the sink.
            None => unreachable!("the sink is present until finish"),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sticky()?;
        if buf.is_empty() {
            return Ok(0);
        }
        self.ensure_cur();
        let n = (self.frame_size - self.fill).min(buf.len());
        self.cur[self.fill..self.fill + n].copy_from_slice(&buf[..n]);
        self.fill += n;
        if self.fill == self.frame_size {
            self.submit()?;
        }
        Ok(n)
    }

    /// Writes the frames finished so far (without waiting for running
    /// compressions; a partial frame stays buffered) and flushes the sink.
    fn flush(&mut self) -> io::Result<()> {
        self.sticky()?;
        self.write_ready(false)?;
        match self.sink.as_mut() {
            Some(s) => s.flush().map_err(|e| self.fail(e)),
            None => Ok(()),
        }
    }
}

/// kwq runners for `threads` compressing threads: the caller is one of
/// them (it compresses whenever the ring is full), so `threads - 1`, and
/// one for a single thread (the caller then only reads and writes).
fn runners(threads: usize) -> usize {
    threads.saturating_sub(1).max(1)
}

/// Slots of the kwq ring for an encoder allowing `in_flight` frames
/// between queueing and writing. With a helping caller (`threads` ≥ 2) the
/// ring must be shorter than `in_flight`, or the caller would wait for a
/// written frame before it ever found the ring full; aim for `threads`
/// fewer, so frames waiting in `done` leave room for the ring to fill and a
/// full ring holds unclaimed frames for the runners while the caller
/// compresses one; and never under one frame per runner plus one for the
/// caller.
fn ring_len(in_flight: usize, threads: usize) -> usize {
    if threads < 2 {
        return in_flight;
    }
    in_flight
        .saturating_sub(threads)
        .max(runners(threads) + 1)
        .min(in_flight - 1)
        .max(1)
}

impl<W: Write> Drop for Encoder<W> {
    fn drop(&mut self) {
        self.shared.cancelled.store(true, Ordering::Relaxed);
        // The queue's own drop waits for the stages in flight; cancelled
        // ones return at once. Collect their panics so nothing is printed.
        let _ = self.queue.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::{ring_len, runners};

    #[test]
    fn the_caller_can_always_find_the_ring_full() {
        for threads in 1..=64 {
            for in_flight in threads + 1..=4 * threads + 8 {
                let ring = ring_len(in_flight, threads);
                assert!(ring >= 1 && ring <= in_flight, "{threads} {in_flight}");
                if threads >= 2 {
                    assert!(ring < in_flight, "{threads} {in_flight}: {ring}");
                    assert!(
                        ring >= (runners(threads) + 1).min(in_flight - 1),
                        "{threads} {in_flight}: {ring}"
                    );
                }
            }
        }
        assert_eq!(ring_len(7, 2), 5);
        assert_eq!(runners(1), 1);
        assert_eq!(runners(2), 1);
        assert_eq!(runners(8), 7);
    }
}
