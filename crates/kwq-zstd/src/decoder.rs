//! The parallel decoder: frames decompressed on a kwq ordered queue,
//! output in order, with a sequential path for frames that cannot be
//! split off.
//!
//! # Protocol
//!
//! The caller's thread reads the input frame by frame (walking block
//! headers, [`crate::frame`], through a 256 KiB buffer) and decides per
//! frame:
//!
//! * **parallel** — the header records a content size of at most
//!   [`PARALLEL_FRAME_MAX`] (and within the memory limit): the whole frame
//!   is read into memory and queued; a worker decompresses it with a
//!   pooled context into a recycled buffer of at least that size; the
//!   ordered stage appends the result to the `done` list. Up to
//!   `in_flight` frames (and at most the memory limit of content) are read
//!   ahead. Compressed and decoded frame buffers both go back to pools
//!   (no fresh pages per frame). The caller does not decode: its share
//!   (reading some 5% of the output's size, handing frames on) is small,
//!   and a third decoding thread on T cores only time-slices against the
//!   runners (measured: no gain, `docs/zstd.md`).
//! * **sequential** — no content size, or a larger one (an ordinary
//!   single-frame `.zst`): the decoder first drains every queued frame,
//!   then streams this one through libzstd block by block, with the
//!   window capped at the memory limit.
//! * **skippable** — read past and dropped (a seek table among them).
//!
//! # Bad input
//!
//! Every refusal is an [`Error`] with the byte offset of the frame: a
//! window or content size over the memory limit is [`Error::MemoryLimit`]
//! before anything is allocated; libzstd's refusals (bit flips, checksum
//! mismatches) are [`Error::Zstd`]; a frame that decodes to a size other
//! than its header's is [`Error::Corrupt`]. After an error the decoder
//! returns the same error forever. Through `io::Read`, errors arrive as
//! `io::Error`s whose inner error is this crate's [`Error`].

use crate::error::{Error, Result};
use crate::frame::{max_frame_len, FrameHeader, FrameReader, Start};
use kwq::ordered::{BoxedOrderedWorkqueue, OrderedWorkqueue};
use kwq::Runtime;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use zstd::stream::raw::{InBuffer, Operation, OutBuffer};
use zstd::zstd_safe::DParameter;

/// Default memory limit: 128 MiB, the window `zstd -d` accepts without
/// `--memory`.
pub const DEFAULT_MEMORY_LIMIT: u64 = 128 << 20;
/// Frames with a recorded content size up to this are decoded in
/// parallel; larger ones are streamed.
pub const PARALLEL_FRAME_MAX: u64 = 64 << 20;
/// Output produced per step of a streamed frame.
const STREAM_CHUNK: usize = 256 << 10;
/// The input is read through a buffer this large: frame and block headers
/// are a few bytes each, and a read per header would cost a system call.
const READ_BUF: usize = 256 << 10;

type Outcome = Result<Vec<u8>>;

struct Shared {
    done: Mutex<VecDeque<Outcome>>,
    ready: Condvar,
    cancelled: AtomicBool,
    contexts: Mutex<Vec<zstd::bulk::Decompressor<'static>>>,
    /// Decoded-frame buffers handed back by the caller, for reuse.
    buffers: Mutex<Vec<Vec<u8>>>,
    /// Compressed-frame buffers handed back by the workers, for reuse.
    inputs: Mutex<Vec<Vec<u8>>>,
    dict: Option<Arc<[u8]>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn decompress(&self, offset: u64, frame: &[u8], size: usize) -> Outcome {
        let mut ctx = match lock(&self.contexts).pop() {
            Some(c) => c,
            None => {
                let d: &[u8] = self.dict.as_deref().unwrap_or(&[]);
                zstd::bulk::Decompressor::with_dictionary(d).map_err(|e| Error::zstd(offset, &e))?
            }
        };
        let mut out = lock(&self.buffers).pop().unwrap_or_default();
        out.clear();
        out.reserve_exact(size);
        let r = catch_unwind(AssertUnwindSafe(|| {
            ctx.decompress_to_buffer(frame, &mut out)
        }));
        lock(&self.contexts).push(ctx);
        match r {
            Ok(Ok(n)) if n == size => Ok(out),
            Ok(Ok(n)) => Err(Error::corrupt(
                offset,
                format!("frame decodes to {n} bytes but its header says {size}"),
            )),
            Ok(Err(e)) => Err(Error::zstd(offset, &e)),
            Err(_) => Err(Error::Zstd {
                offset,
                message: "libzstd binding panicked".into(),
            }),
        }
    }
}

/// Settings for a [`Decoder`].
#[derive(Debug, Clone)]
pub struct DecoderBuilder {
    threads: Option<usize>,
    in_flight: Option<usize>,
    memory_limit: u64,
    dict: Option<Arc<[u8]>>,
    runtime: Option<Runtime>,
}

impl Default for DecoderBuilder {
    fn default() -> Self {
        DecoderBuilder {
            threads: None,
            in_flight: None,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            dict: None,
            runtime: None,
        }
    }
}

impl DecoderBuilder {
    /// Defaults: threads = the runtime's concurrency, `in_flight` = 2 ×
    /// threads + 1, [`DEFAULT_MEMORY_LIMIT`], no dictionary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Frames decompressed at once (1 to 64).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = Some(n);
        self
    }

    /// Frames read ahead of the one being returned.
    pub fn in_flight(mut self, n: usize) -> Self {
        self.in_flight = Some(n);
        self
    }

    /// The most memory one frame may need (window for a streamed frame,
    /// content for a parallel one) and the most content read ahead.
    pub fn memory_limit(mut self, bytes: u64) -> Self {
        self.memory_limit = bytes;
        self
    }

    /// Decode with this dictionary.
    pub fn dictionary(mut self, dict: impl Into<Vec<u8>>) -> Self {
        let d: Vec<u8> = dict.into();
        self.dict = Some(d.into());
        self
    }

    /// Run on this runtime (default: kwq's global one).
    pub fn runtime(mut self, rt: &Runtime) -> Self {
        self.runtime = Some(rt.clone());
        self
    }

    /// Creates the decoder reading from `src`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidParameter`] for bad settings, [`Error::Kwq`] if the
    /// queue cannot be built.
    pub fn build<R: Read>(self, src: R) -> Result<Decoder<R>> {
        let rt = self.runtime.unwrap_or_else(|| Runtime::global().clone());
        if self.threads.is_some_and(|t| !(1..=64).contains(&t)) {
            return Err(Error::InvalidParameter("threads outside 1..=64".into()));
        }
        if self.memory_limit < 1 << 10 {
            return Err(Error::InvalidParameter("memory limit under 1 KiB".into()));
        }
        let threads = self
            .threads
            .unwrap_or_else(|| rt.concurrency())
            .clamp(1, 64);
        let in_flight = self.in_flight.unwrap_or(2 * threads + 1).max(1);
        let queue = OrderedWorkqueue::builder("kwq-zstd-decode")
            .runtime(&rt)
            .max_active(threads)
            .max_in_flight(in_flight)
            .build()
            .map_err(|e| Error::Kwq(e.to_string()))?;
        Ok(Decoder {
            frames: FrameReader::new(io::BufReader::with_capacity(READ_BUF, src)),
            queue,
            shared: Arc::new(Shared {
                done: Mutex::new(VecDeque::new()),
                ready: Condvar::new(),
                cancelled: AtomicBool::new(false),
                contexts: Mutex::new(Vec::new()),
                buffers: Mutex::new(Vec::new()),
                inputs: Mutex::new(Vec::new()),
                dict: self.dict,
            }),
            queued: VecDeque::new(),
            queued_bytes: 0,
            in_flight,
            limit: self.memory_limit,
            cur: Vec::new(),
            pos: 0,
            stream: None,
            lookahead: None,
            hdr_buf: Vec::new(),
            eof: false,
            seen_frame: false,
            error: None,
        })
    }
}

/// A frame being streamed sequentially.
struct Stream {
    dec: zstd::stream::raw::Decoder<'static>,
    hdr: FrameHeader,
    offset: u64,
    input: Vec<u8>,
    used: usize,
    last_block: bool,
    all_read: bool,
}

/// A parallel zstd decoder over any `Read`: multi-frame input is
/// decompressed frames-in-parallel, output in order; single-frame files,
/// concatenated frames and skippable frames decode as with `zstd -d`.
///
/// ```
/// use std::io::{Read, Write};
/// let mut enc = kwq_zstd::Encoder::new(Vec::new()).unwrap();
/// enc.write_all(&[7u8; 100_000]).unwrap();
/// let z = enc.finish().unwrap();
/// let mut out = Vec::new();
/// kwq_zstd::Decoder::new(&z[..]).unwrap().read_to_end(&mut out).unwrap();
/// assert_eq!(out, vec![7u8; 100_000]);
/// ```
///
/// See the [module docs](self) for the protocol.
pub struct Decoder<R: Read> {
    frames: FrameReader<io::BufReader<R>>,
    queue: BoxedOrderedWorkqueue<Outcome>,
    shared: Arc<Shared>,
    /// Content sizes of the frames queued and not yet returned.
    queued: VecDeque<u64>,
    queued_bytes: u64,
    in_flight: usize,
    limit: u64,
    cur: Vec<u8>,
    pos: usize,
    stream: Option<Box<Stream>>,
    lookahead: Option<(u64, FrameHeader)>,
    hdr_buf: Vec<u8>,
    eof: bool,
    seen_frame: bool,
    error: Option<Arc<Error>>,
}

impl<R: Read> std::fmt::Debug for Decoder<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder")
            .field("offset", &self.frames.offset())
            .field("queued", &self.queued.len())
            .finish_non_exhaustive()
    }
}

impl<R: Read> Decoder<R> {
    /// A decoder with default settings.
    ///
    /// # Errors
    ///
    /// As [`DecoderBuilder::build`].
    pub fn new(src: R) -> Result<Self> {
        DecoderBuilder::new().build(src)
    }

    /// Bytes of compressed input consumed so far.
    pub fn input_offset(&self) -> u64 {
        self.frames.offset()
    }

    /// Reads frame starts and queues parallel frames until the read-ahead
    /// is full, the input ends, or a frame must be streamed.
    fn pump(&mut self) -> Result<()> {
        while !self.eof && self.lookahead.is_none() && self.queued.len() < self.in_flight {
            let Some((at, start)) = self.frames.next_start(&mut self.hdr_buf)? else {
                self.eof = true;
                if !self.seen_frame {
                    return Err(Error::Empty);
                }
                break;
            };
            self.seen_frame = true;
            let hdr = match start {
                Start::Skippable { len, .. } => {
                    let mut sink = std::mem::take(&mut self.hdr_buf);
                    self.frames.read_skippable(len, at, &mut sink, 0)?;
                    self.hdr_buf = sink;
                    continue;
                }
                Start::Zstd(h) => h,
            };
            let par = match hdr.content_size {
                Some(cs) if cs <= PARALLEL_FRAME_MAX && cs <= self.limit => Some(cs),
                _ => None,
            };
            let Some(cs) = par else {
                if hdr.window_size > self.limit {
                    return Err(Error::MemoryLimit {
                        offset: at,
                        needed: hdr.window_size,
                        limit: self.limit,
                    });
                }
                self.lookahead = Some((at, hdr));
                break;
            };
            if !self.queued.is_empty() && self.queued_bytes + cs > self.limit {
                // Read ahead no further than the memory limit: wait for
                // the queue to drain before reading this frame's body.
                self.lookahead = Some((at, hdr));
                break;
            }
            self.queue_frame(at, hdr, cs)?;
        }
        Ok(())
    }

    fn queue_frame(&mut self, at: u64, hdr: FrameHeader, cs: u64) -> Result<()> {
        let next = lock(&self.shared.inputs).pop().unwrap_or_default();
        let mut frame = std::mem::replace(&mut self.hdr_buf, next);
        self.frames
            .read_blocks(&hdr, at, &mut frame, max_frame_len(cs))?;
        let shared = self.shared.clone();
        let shared2 = self.shared.clone();
        self.queue.queue(
            Box::new(move || {
                let r = if shared.cancelled.load(Ordering::Relaxed) {
                    Ok(Vec::new())
                } else {
                    shared.decompress(at, &frame, cs as usize)
                };
                frame.clear();
                lock(&shared.inputs).push(frame);
                r
            }),
            Box::new(move |r: Outcome| {
                lock(&shared2.done).push_back(r);
                shared2.ready.notify_one();
            }),
        );
        self.queued.push_back(cs);
        self.queued_bytes += cs;
        Ok(())
    }

    /// Starts streaming the frame in `lookahead` (its header is in
    /// `hdr_buf`).
    fn start_stream(&mut self, at: u64, hdr: FrameHeader) -> Result<()> {
        tracing::debug!(
            offset = at,
            content_size = ?hdr.content_size,
            window = hdr.window_size,
            "kwq-zstd: streaming a frame sequentially"
        );
        let d: &[u8] = self.shared.dict.as_deref().unwrap_or(&[]);
        let mut dec =
            zstd::stream::raw::Decoder::with_dictionary(d).map_err(|e| Error::zstd(at, &e))?;
        let wlog = 63 - self.limit.leading_zeros();
        dec.set_parameter(DParameter::WindowLogMax(wlog.clamp(10, 31)))
            .map_err(|e| Error::zstd(at, &e))?;
        let input = std::mem::take(&mut self.hdr_buf);
        self.stream = Some(Box::new(Stream {
            dec,
            hdr,
            offset: at,
            input,
            used: 0,
            last_block: false,
            all_read: false,
        }));
        Ok(())
    }

    /// Produces the next piece of a streamed frame into `cur`.
    fn stream_step(&mut self) -> Result<()> {
        let Some(st) = self.stream.as_mut() else {
            return Ok(());
        };
        self.cur.clear();
        self.pos = 0;
        if self.cur.capacity() < STREAM_CHUNK {
            self.cur.reserve(STREAM_CHUNK);
        }
        loop {
            if st.used == st.input.len() && !st.all_read {
                st.input.clear();
                st.used = 0;
                if st.last_block {
                    if st.hdr.checksum {
                        self.frames.read_exact_into(&mut st.input, 4, st.offset)?;
                    }
                    st.all_read = true;
                } else {
                    let at = self.frames.offset();
                    self.frames.read_exact_into(&mut st.input, 3, st.offset)?;
                    let (last, payload) =
                        crate::frame::parse_block([st.input[0], st.input[1], st.input[2]], at)?;
                    st.last_block = last;
                    self.frames
                        .read_exact_into(&mut st.input, payload as usize, st.offset)?;
                    st.all_read = last && !st.hdr.checksum;
                }
            }
            let mut inb = InBuffer::around(&st.input[st.used..]);
            let mut outb = OutBuffer::around(&mut self.cur);
            let hint = st
                .dec
                .run(&mut inb, &mut outb)
                .map_err(|e| Error::zstd(st.offset, &e))?;
            let produced = outb.pos();
            st.used += inb.pos();
            if hint == 0 {
                if !(st.all_read && st.used == st.input.len()) {
                    return Err(Error::corrupt(
                        st.offset,
                        "frame ends before its last block",
                    ));
                }
                self.stream = None;
                return Ok(());
            }
            if produced > 0 {
                return Ok(());
            }
            if st.all_read && st.used == st.input.len() {
                return Err(Error::corrupt(
                    st.offset,
                    "frame's blocks end before its content does",
                ));
            }
        }
    }

    /// Moves to the next piece of output; `false` at the end.
    fn refill(&mut self) -> Result<bool> {
        loop {
            if self.stream.is_some() {
                self.stream_step()?;
                if self.pos < self.cur.len() {
                    return Ok(true);
                }
                continue;
            }
            self.pump()?;
            if let Some(cs) = self.queued.pop_front() {
                let out = {
                    let mut g = lock(&self.shared.done);
                    loop {
                        if let Some(r) = g.pop_front() {
                            break r;
                        }
                        g = self
                            .shared
                            .ready
                            .wait(g)
                            .unwrap_or_else(PoisonError::into_inner);
                    }
                };
                self.queued_bytes -= cs;
                let old = std::mem::replace(&mut self.cur, out?);
                lock(&self.shared.buffers).push(old);
                self.pos = 0;
                if !self.cur.is_empty() {
                    return Ok(true);
                }
                continue;
            }
            if let Some((at, hdr)) = self.lookahead.take() {
                match hdr.content_size {
                    Some(cs) if cs <= PARALLEL_FRAME_MAX && cs <= self.limit => {
                        self.queue_frame(at, hdr, cs)?
                    }
                    _ => self.start_stream(at, hdr)?,
                }
                continue;
            }
            if self.eof {
                return Ok(false);
            }
        }
    }

    /// Reads into `buf`, returning this crate's error type.
    ///
    /// # Errors
    ///
    /// Any [`Error`] from the input; the same error again on every later
    /// call.
    pub fn read_checked(&mut self, buf: &mut [u8]) -> Result<usize> {
        if let Some(e) = &self.error {
            return Err(clone_error(e));
        }
        if self.pos == self.cur.len() {
            match self.refill() {
                Ok(true) => {}
                Ok(false) => return Ok(0),
                Err(e) => {
                    let e = Arc::new(e);
                    self.error = Some(e.clone());
                    return Err(clone_error(&e));
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl<R: Read> Decoder<R> {
    /// Writes everything that is left to `w`, whole decoded frames at a
    /// time (no copy through a caller's buffer, unlike `io::copy`).
    /// Returns the bytes written.
    ///
    /// # Errors
    ///
    /// The input's [`Error`]s as [`read_checked`](Self::read_checked);
    /// [`Error::Io`] if `w` fails (that does not poison the decoder).
    pub fn copy_to<W: Write + ?Sized>(&mut self, w: &mut W) -> Result<u64> {
        let mut total = 0u64;
        loop {
            if let Some(e) = &self.error {
                return Err(clone_error(e));
            }
            if self.pos == self.cur.len() {
                match self.refill() {
                    Ok(true) => {}
                    Ok(false) => return Ok(total),
                    Err(e) => {
                        let e = Arc::new(e);
                        self.error = Some(e.clone());
                        return Err(clone_error(&e));
                    }
                }
            }
            w.write_all(&self.cur[self.pos..])?;
            total += (self.cur.len() - self.pos) as u64;
            self.pos = self.cur.len();
        }
    }
}

fn clone_error(e: &Error) -> Error {
    match e {
        Error::Io(io) => Error::Io(io::Error::new(io.kind(), io.to_string())),
        Error::Truncated {
            frame_offset,
            offset,
        } => Error::Truncated {
            frame_offset: *frame_offset,
            offset: *offset,
        },
        Error::Empty => Error::Empty,
        Error::Corrupt { offset, reason } => Error::Corrupt {
            offset: *offset,
            reason: reason.clone(),
        },
        Error::Zstd { offset, message } => Error::Zstd {
            offset: *offset,
            message: message.clone(),
        },
        Error::MemoryLimit {
            offset,
            needed,
            limit,
        } => Error::MemoryLimit {
            offset: *offset,
            needed: *needed,
            limit: *limit,
        },
        Error::SeekTable(m) => Error::SeekTable(m.clone()),
        Error::InvalidParameter(m) => Error::InvalidParameter(m.clone()),
        Error::Kwq(m) => Error::Kwq(m.clone()),
    }
}

impl<R: Read> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_checked(buf).map_err(io::Error::from)
    }
}

impl<R: Read> Drop for Decoder<R> {
    fn drop(&mut self) {
        self.shared.cancelled.store(true, Ordering::Relaxed);
        let _ = self.queue.flush();
    }
}
