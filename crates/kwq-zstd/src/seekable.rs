//! Random access over a compressed file: `Read + Seek` on the decompressed
//! bytes, decoding only the frames a read touches.
//!
//! # Index
//!
//! [`SeekableReader::new`] looks for a seek table at the end of the file
//! (the zstd seekable format, [`crate::seektable`]). If there is none, it
//! scans the file frame by frame (block headers only; a frame without a
//! recorded content size is decompressed once to measure it). Either way
//! the index is a list of `(compressed offset, compressed length,
//! decompressed offset, decompressed length)`.
//!
//! # Trust
//!
//! A seek table can lie. The table must tile the file exactly (checked
//! when opening), every frame it points at must start with a zstd frame
//! header, decode to exactly the size the table gives and, when both carry
//! one, end with the checksum the table gives; the first disagreement is
//! an [`Error`], never wrong data. A frame over the memory limit is
//! [`Error::MemoryLimit`] when read.
//!
//! # Read-ahead
//!
//! Sequential reads (each frame loaded right after the one before it)
//! decode the next frames in parallel on kwq's system workqueue, by
//! default as many as the global runtime's concurrency, within the memory
//! limit; any other access decodes only the frame it touches. Errors are
//! reported when the frame that has them is read, never earlier
//! ([`SeekableReader::read_ahead`]; protocol in `src/ahead.rs`).

use crate::ahead::{DecodePool, ReadAhead, Taken};
use crate::decoder::DEFAULT_MEMORY_LIMIT;
use crate::error::{Error, Result};
use crate::frame::{max_frame_len, trailing_checksum, FrameReader, Start};
use crate::seektable::{parse_footer, parse_table, table_len, FOOTER_LEN};
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::Arc;

/// Where one frame sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Offset of the frame in the compressed file.
    pub compressed_offset: u64,
    /// Its length in the compressed file.
    pub compressed_len: u64,
    /// Offset of its content in the decompressed stream.
    pub decompressed_offset: u64,
    /// Its content length.
    pub decompressed_len: u64,
    /// Checksum from the seek table, if any.
    pub checksum: Option<u32>,
}

/// `Read + Seek` over the decompressed content of a zstd file. See the
/// [module docs](self).
///
/// ```
/// use std::io::{Cursor, Read, Seek, SeekFrom, Write};
/// let params = kwq_zstd::Params::new().frame_size(4096);
/// let mut enc = kwq_zstd::Encoder::with_params(Vec::new(), params).unwrap();
/// let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
/// enc.write_all(&data).unwrap();
/// let z = enc.finish().unwrap();
/// let mut r = kwq_zstd::SeekableReader::new(Cursor::new(z)).unwrap();
/// r.seek(SeekFrom::Start(50_000)).unwrap();
/// let mut buf = [0u8; 10];
/// r.read_exact(&mut buf).unwrap();
/// assert_eq!(&buf[..], &data[50_000..50_010]);
/// ```
pub struct SeekableReader<R> {
    inner: R,
    index: Vec<FrameInfo>,
    has_table: bool,
    total: u64,
    pos: u64,
    cached: Option<(usize, Vec<u8>)>,
    pool: Arc<DecodePool>,
    ahead: ReadAhead,
    limit: u64,
    frame_buf: Vec<u8>,
}

impl<R> std::fmt::Debug for SeekableReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeekableReader")
            .field("frames", &self.index.len())
            .field("has_table", &self.has_table)
            .field("len", &self.total)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl<R: Read + Seek> SeekableReader<R> {
    /// Opens `inner` with the default memory limit.
    ///
    /// # Errors
    ///
    /// See [`with_limit`](Self::with_limit).
    pub fn new(inner: R) -> Result<Self> {
        Self::with_limit(inner, DEFAULT_MEMORY_LIMIT, None)
    }

    /// Opens `inner`: reads its seek table or scans its frames. Frames
    /// over `memory_limit` bytes of content are refused when read;
    /// `dict` is the dictionary the frames were compressed with, if any.
    ///
    /// # Errors
    ///
    /// [`Error::SeekTable`] for a malformed table, the scan's errors
    /// ([`Error::Corrupt`], [`Error::Truncated`], [`Error::Empty`]...)
    /// without one, [`Error::Io`] from `inner`.
    pub fn with_limit(mut inner: R, memory_limit: u64, dict: Option<&[u8]>) -> Result<Self> {
        let file_len = inner.seek(SeekFrom::End(0))?;
        let (index, has_table) = match read_table(&mut inner, file_len, memory_limit)? {
            Some(ix) => (ix, true),
            None => (scan(&mut inner, memory_limit)?, false),
        };
        let total = index
            .last()
            .map_or(0, |f| f.decompressed_offset + f.decompressed_len);
        let pool = Arc::new(DecodePool::new(dict, memory_limit)?);
        Ok(SeekableReader {
            inner,
            index,
            has_table,
            total,
            pos: 0,
            cached: None,
            pool,
            ahead: ReadAhead::new(kwq::Runtime::global().concurrency()),
            limit: memory_limit,
            frame_buf: Vec::new(),
        })
    }

    /// Decompressed length.
    pub fn len(&self) -> u64 {
        self.total
    }

    /// Whether the content is empty.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The frames, in order.
    pub fn frames(&self) -> &[FrameInfo] {
        &self.index
    }

    /// Whether the index came from a seek table (else from a scan).
    pub fn has_seek_table(&self) -> bool {
        self.has_table
    }

    /// The underlying reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Frames decoded ahead, in parallel, while reading sequentially
    /// (default: the global kwq runtime's concurrency; 0 turns it off).
    /// The frames ahead hold at most the memory limit of content.
    pub fn read_ahead(&mut self, frames: usize) -> &mut Self {
        self.ahead.depth = frames;
        if frames == 0 {
            self.ahead.clear();
        }
        self
    }

    /// Reads frame `i`'s compressed bytes into `buf`, checking them
    /// against the index.
    fn read_frame(&mut self, i: usize, buf: &mut Vec<u8>) -> Result<FrameInfo> {
        let f = self.index[i];
        if f.decompressed_len > self.limit {
            return Err(Error::MemoryLimit {
                offset: f.compressed_offset,
                needed: f.decompressed_len,
                limit: self.limit,
            });
        }
        if f.compressed_len > max_frame_len(f.decompressed_len) {
            return Err(Error::SeekTable(format!(
                "frame at byte {} is {} bytes for {} bytes of content",
                f.compressed_offset, f.compressed_len, f.decompressed_len
            )));
        }
        self.inner.seek(SeekFrom::Start(f.compressed_offset))?;
        buf.clear();
        buf.resize(f.compressed_len as usize, 0);
        self.inner.read_exact(buf).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::Truncated {
                    frame_offset: f.compressed_offset,
                    offset: f.compressed_offset + f.compressed_len,
                }
            } else {
                Error::Io(e)
            }
        })?;
        if let (Some(want), Some(have)) = (f.checksum, trailing_checksum(buf)) {
            if want != have {
                return Err(Error::SeekTable(format!(
                    "frame at byte {}: table checksum {want:#010x}, frame checksum {have:#010x}",
                    f.compressed_offset
                )));
            }
        }
        Ok(f)
    }

    fn load(&mut self, i: usize) -> Result<()> {
        if self.cached.as_ref().is_some_and(|(c, _)| *c == i) {
            return Ok(());
        }
        let sequential = self.ahead.is_sequential(i);
        self.ahead.loaded(i);
        let out = match self.ahead.take(i) {
            Taken::Done(r) => r?,
            Taken::Missing => {
                let mut buf = std::mem::take(&mut self.frame_buf);
                let r = self
                    .read_frame(i, &mut buf)
                    .and_then(|f| self.pool.decode(&f, &buf));
                self.frame_buf = buf;
                r?
            }
        };
        if let Some((_, old)) = self.cached.replace((i, out)) {
            self.pool.recycle(old);
        }
        if sequential {
            self.fill_ahead(i);
        }
        Ok(())
    }

    /// Starts decoding the frames after `i` that the window has room for.
    /// A frame that cannot be read here stops the read-ahead; reading it
    /// later reports the error.
    fn fill_ahead(&mut self, i: usize) {
        while let Some(j) = self.ahead.next_frame(i, self.index.len()) {
            let f = self.index[j];
            if !self.ahead.has_room(f.decompressed_len, self.limit) {
                break;
            }
            let mut buf = Vec::new();
            match self.read_frame(j, &mut buf) {
                Ok(f) => self.ahead.spawn(j, f, buf, &self.pool),
                Err(e) => {
                    tracing::debug!(frame = j, error = %e, "kwq-zstd: read-ahead stopped");
                    break;
                }
            }
        }
    }

    /// Reads at the current position, returning this crate's error type.
    ///
    /// # Errors
    ///
    /// As [`with_limit`](Self::with_limit), for the frame being read.
    pub fn read_checked(&mut self, buf: &mut [u8]) -> Result<usize> {
        if self.pos >= self.total || buf.is_empty() {
            return Ok(0);
        }
        let i = self
            .index
            .partition_point(|f| f.decompressed_offset + f.decompressed_len <= self.pos);
        self.load(i)?;
        let f = self.index[i];
        let data = &self.cached.as_ref().map_or(&[][..], |(_, v)| &v[..]);
        let start = (self.pos - f.decompressed_offset) as usize;
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Read for SeekableReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_checked(buf).map_err(io::Error::from)
    }
}

impl<R: Read + Seek> Seek for SeekableReader<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let (base, delta) = match to {
            SeekFrom::Start(p) => {
                self.pos = p;
                return Ok(p);
            }
            SeekFrom::End(d) => (self.total, d),
            SeekFrom::Current(d) => (self.pos, d),
        };
        match base.checked_add_signed(delta) {
            Some(p) => {
                self.pos = p;
                Ok(p)
            }
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start or past u64",
            )),
        }
    }
}

/// The index from a seek table, `None` if the file has none.
fn read_table<R: Read + Seek>(
    r: &mut R,
    file_len: u64,
    limit: u64,
) -> Result<Option<Vec<FrameInfo>>> {
    if file_len < FOOTER_LEN + 8 {
        return Ok(None);
    }
    let mut footer = [0u8; 9];
    r.seek(SeekFrom::Start(file_len - FOOTER_LEN))?;
    r.read_exact(&mut footer)?;
    let Some((n, checksums)) = parse_footer(&footer)? else {
        return Ok(None);
    };
    let len = table_len(n, checksums);
    if len > file_len {
        return Err(Error::SeekTable(format!(
            "{n} frames need {len} bytes, the file has {file_len}"
        )));
    }
    if len > limit {
        // A table this big (and the index built from it) would pass the
        // memory limit: refuse before allocating.
        return Err(Error::MemoryLimit {
            offset: file_len - len,
            needed: len,
            limit,
        });
    }
    let mut bytes = vec![0u8; len as usize];
    r.seek(SeekFrom::Start(file_len - len))?;
    r.read_exact(&mut bytes)?;
    let entries = parse_table(&bytes, file_len)?;
    let (mut c, mut d) = (0u64, 0u64);
    let mut index = Vec::with_capacity(entries.len());
    for e in entries {
        index.push(FrameInfo {
            compressed_offset: c,
            compressed_len: u64::from(e.compressed),
            decompressed_offset: d,
            decompressed_len: u64::from(e.decompressed),
            checksum: e.checksum,
        });
        c += u64::from(e.compressed);
        d += u64::from(e.decompressed);
    }
    Ok(Some(index))
}

/// The index from walking every frame.
fn scan<R: Read + Seek>(r: &mut R, limit: u64) -> Result<Vec<FrameInfo>> {
    r.seek(SeekFrom::Start(0))?;
    let mut index = Vec::new();
    let mut unknown = Vec::new();
    {
        let mut fr = FrameReader::new(io::BufReader::new(&mut *r));
        let mut buf = Vec::new();
        let mut any = false;
        while let Some((at, start)) = fr.next_start(&mut buf)? {
            any = true;
            let hdr = match start {
                Start::Skippable { len, .. } => {
                    fr.read_skippable(len, at, &mut buf, 0)?;
                    continue;
                }
                Start::Zstd(h) => h,
            };
            fr.skip_blocks(&hdr, at)?;
            let index_bytes = (index.len() as u64 + 1) * std::mem::size_of::<FrameInfo>() as u64;
            if index_bytes > limit {
                // Millions of tiny frames: the index itself would pass
                // the memory limit.
                return Err(Error::MemoryLimit {
                    offset: at,
                    needed: index_bytes,
                    limit,
                });
            }
            if hdr.content_size.is_none() {
                unknown.push(index.len());
            }
            index.push(FrameInfo {
                compressed_offset: at,
                compressed_len: fr.offset() - at,
                decompressed_offset: 0,
                decompressed_len: hdr.content_size.unwrap_or(0),
                checksum: None,
            });
        }
        if !any {
            return Err(Error::Empty);
        }
    }
    for i in unknown {
        let f = index[i];
        r.seek(SeekFrom::Start(f.compressed_offset))?;
        index[i].decompressed_len = measure(&mut *r, f.compressed_offset, f.compressed_len, limit)?;
    }
    let mut d = 0u64;
    for f in &mut index {
        f.decompressed_offset = d;
        d += f.decompressed_len;
    }
    Ok(index)
}

/// Decompresses one frame (`len` bytes at the reader's position) to count
/// its bytes; memory is bounded by the window limit.
fn measure<R: Read>(r: R, at: u64, len: u64, limit: u64) -> Result<u64> {
    let mut dec = zstd::stream::read::Decoder::new(r.take(len)).map_err(|e| Error::zstd(at, &e))?;
    let wlog = (63 - limit.max(1024).leading_zeros()).clamp(10, 31);
    dec.window_log_max(wlog).map_err(|e| Error::zstd(at, &e))?;
    io::copy(&mut dec.single_frame(), &mut io::sink()).map_err(|e| Error::zstd(at, &e))
}
