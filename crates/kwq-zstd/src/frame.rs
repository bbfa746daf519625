//! Frame boundaries without decompressing: the zstd frame header and block
//! headers (RFC 8878 §3.1), and skippable frames.
//!
//! The decoder needs each frame's extent before decompressing it (to hand
//! whole frames to workers), and the seekable reader needs it to index a
//! file without a seek table. Walking block headers finds the extent while
//! reading only 3 bytes per block of metadata; the payload is copied (for
//! decoding) or skipped (for indexing).
//!
//! Every length read from the input is checked before it is used: a block
//! longer than the format's 128 KiB maximum, a reserved block type or a
//! reserved header bit is `Corrupt` at its byte offset, and the end of the
//! input inside a frame is `Truncated`.

use crate::error::{Error, Result};
use std::io::{self, Read};

/// Magic number of a zstd frame.
pub const ZSTD_MAGIC: u32 = 0xFD2F_B528;
/// Skippable frames use the 16 magic numbers `0x184D2A50..=0x184D2A5F`.
pub const SKIPPABLE_MAGIC_MASK: u32 = 0xFFFF_FFF0;
/// The first skippable magic number.
pub const SKIPPABLE_MAGIC: u32 = 0x184D_2A50;
/// The largest block a frame may contain (RFC 8878 `Block_Maximum_Size`).
pub const MAX_BLOCK: u32 = 128 * 1024;

/// What a zstd frame header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Bytes of the header, magic included.
    pub header_len: usize,
    /// Decompressed size, when the frame records it.
    pub content_size: Option<u64>,
    /// The window the decoder must keep.
    pub window_size: u64,
    /// The frame ends with a 4-byte checksum.
    pub checksum: bool,
    /// Dictionary the frame needs (0: none).
    pub dict_id: u32,
}

/// The first bytes of a frame: a zstd frame or a skippable one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A zstd frame with this header.
    Zstd(FrameHeader),
    /// A skippable frame whose content is this long (after 8 header bytes).
    Skippable {
        /// The magic number's low nibble.
        variant: u8,
        /// Content length.
        len: u32,
    },
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Header bytes needed once the first 5 are known (magic + descriptor);
/// `None` if the magic is not a frame magic.
pub fn header_len(first5: &[u8; 5]) -> Option<usize> {
    let magic = le32(first5);
    if magic & SKIPPABLE_MAGIC_MASK == SKIPPABLE_MAGIC {
        return Some(8);
    }
    if magic != ZSTD_MAGIC {
        return None;
    }
    let fhd = first5[4];
    let single = fhd & 0x20 != 0;
    let fcs = match fhd >> 6 {
        0 => usize::from(single),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let did = [0, 1, 2, 4][usize::from(fhd & 3)];
    Some(5 + usize::from(!single) + did + fcs)
}

/// Parses a frame start (`bytes` holds exactly `header_len` bytes).
/// `offset` is where the frame starts, for errors.
///
/// # Errors
///
/// [`Error`](crate::Error) if `bytes` is not a zstd or skippable frame
/// start, naming `offset`.
pub fn parse_start(bytes: &[u8], offset: u64) -> Result<Start> {
    let magic = le32(bytes);
    if magic & SKIPPABLE_MAGIC_MASK == SKIPPABLE_MAGIC {
        return Ok(Start::Skippable {
            variant: (magic & 0xF) as u8,
            len: le32(&bytes[4..]),
        });
    }
    if magic != ZSTD_MAGIC {
        return Err(Error::corrupt(
            offset,
            format!("not a zstd frame (magic number {magic:#010x})"),
        ));
    }
    let fhd = bytes[4];
    if fhd & 0x08 != 0 {
        return Err(Error::corrupt(
            offset + 4,
            "reserved bit set in the frame header",
        ));
    }
    let single = fhd & 0x20 != 0;
    let mut at = 5;
    let mut window = 0u64;
    if !single {
        let wd = bytes[at];
        at += 1;
        let exp = u32::from(wd >> 3);
        let base = 1u64 << (10 + exp);
        window = base + (base / 8) * u64::from(wd & 7);
    }
    let did_len = [0, 1, 2, 4][usize::from(fhd & 3)];
    let mut dict_id = 0u32;
    for i in 0..did_len {
        dict_id |= u32::from(bytes[at + i]) << (8 * i);
    }
    at += did_len;
    let fcs_len = match fhd >> 6 {
        0 => usize::from(single),
        1 => 2,
        2 => 4,
        _ => 8,
    };
    let content_size = if fcs_len == 0 {
        None
    } else {
        let mut v = 0u64;
        for i in 0..fcs_len {
            v |= u64::from(bytes[at + i]) << (8 * i);
        }
        if fcs_len == 2 {
            v += 256;
        }
        Some(v)
    };
    at += fcs_len;
    if single {
        window = content_size.unwrap_or(0);
    }
    Ok(Start::Zstd(FrameHeader {
        header_len: at,
        content_size,
        window_size: window,
        checksum: fhd & 0x04 != 0,
        dict_id,
    }))
}

/// A decoded block header: `(last, bytes of payload that follow)`.
///
/// # Errors
///
/// [`Error`](crate::Error) for a reserved block type or a block larger
/// than the format allows, naming `offset`.
pub fn parse_block(b: [u8; 3], offset: u64) -> Result<(bool, u32)> {
    let v = u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
    let last = v & 1 != 0;
    let size = v >> 3;
    let payload = match (v >> 1) & 3 {
        0 | 2 => size,
        1 => 1,
        _ => return Err(Error::corrupt(offset, "reserved block type")),
    };
    if size > MAX_BLOCK {
        return Err(Error::corrupt(
            offset,
            format!("block of {size} bytes, over the 128 KiB maximum"),
        ));
    }
    Ok((last, payload))
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` if the input ended first
/// (after `*got` bytes).
pub(crate) fn read_full<R: Read + ?Sized>(
    r: &mut R,
    buf: &mut [u8],
    got: &mut usize,
) -> io::Result<bool> {
    *got = 0;
    while *got < buf.len() {
        match r.read(&mut buf[*got..]) {
            Ok(0) => return Ok(false),
            Ok(n) => *got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// One frame read whole from a stream.
#[derive(Debug)]
pub enum RawFrame {
    /// A zstd frame: its header and all its bytes.
    Zstd(FrameHeader, Vec<u8>),
    /// A skippable frame, with its content.
    Skippable(u8, Vec<u8>),
}

/// Reads frames one at a time from a byte stream, tracking the offset.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    offset: u64,
}

impl<R: Read> FrameReader<R> {
    /// Reads from `inner`, whose first byte is at offset 0.
    pub fn new(inner: R) -> Self {
        FrameReader { inner, offset: 0 }
    }

    /// Offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The underlying reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    fn fill(&mut self, out: &mut Vec<u8>, n: usize, frame_offset: u64) -> Result<()> {
        let start = out.len();
        out.resize(start + n, 0);
        let mut got = 0;
        let ok = read_full(&mut self.inner, &mut out[start..], &mut got)?;
        self.offset += got as u64;
        if !ok {
            return Err(Error::Truncated {
                frame_offset,
                offset: self.offset,
            });
        }
        Ok(())
    }

    /// Reads a frame start. `Ok(None)` at a clean end of input.
    ///
    /// # Errors
    ///
    /// An I/O error of the input, or a corrupt frame start.
    pub fn next_start(&mut self, out: &mut Vec<u8>) -> Result<Option<(u64, Start)>> {
        let at = self.offset;
        out.clear();
        let mut first = [0u8; 5];
        let mut got = 0;
        let ok = read_full(&mut self.inner, &mut first[..4], &mut got)?;
        self.offset += got as u64;
        if !ok {
            if got == 0 {
                return Ok(None);
            }
            return Err(Error::Truncated {
                frame_offset: at,
                offset: self.offset,
            });
        }
        out.extend_from_slice(&first[..4]);
        let magic = le32(&first);
        let total = if magic & SKIPPABLE_MAGIC_MASK == SKIPPABLE_MAGIC {
            8
        } else if magic == ZSTD_MAGIC {
            self.fill(out, 1, at)?;
            first[4] = out[4];
            header_len(&first).unwrap_or(5)
        } else {
            return Err(Error::corrupt(
                at,
                format!("not a zstd frame (magic number {magic:#010x})"),
            ));
        };
        let have = out.len();
        self.fill(out, total - have, at)?;
        Ok(Some((at, parse_start(out, at)?)))
    }

    /// Reads the rest of a zstd frame whose header is already in `out`,
    /// appending every byte. `max_len` bounds the frame's total size.
    ///
    /// # Errors
    ///
    /// An I/O error, a truncated or corrupt block, or a frame longer than
    /// `max_len`.
    pub fn read_blocks(
        &mut self,
        hdr: &FrameHeader,
        frame_offset: u64,
        out: &mut Vec<u8>,
        max_len: u64,
    ) -> Result<()> {
        loop {
            let at = self.offset;
            self.fill(out, 3, frame_offset)?;
            let n = out.len();
            let (last, payload) = parse_block([out[n - 3], out[n - 2], out[n - 1]], at)?;
            if out.len() as u64 + u64::from(payload) > max_len {
                return Err(Error::corrupt(
                    frame_offset,
                    format!("frame longer than {max_len} bytes for its declared content size"),
                ));
            }
            self.fill(out, payload as usize, frame_offset)?;
            if last {
                break;
            }
        }
        if hdr.checksum {
            self.fill(out, 4, frame_offset)?;
        }
        Ok(())
    }

    /// Reads the content of a skippable frame (`len` bytes) into `out`,
    /// at most `keep` of them; the rest is read and dropped.
    ///
    /// # Errors
    ///
    /// An I/O error, or input that ends inside the frame.
    pub fn read_skippable(
        &mut self,
        len: u32,
        frame_offset: u64,
        out: &mut Vec<u8>,
        keep: usize,
    ) -> Result<()> {
        out.clear();
        let mut left = u64::from(len);
        let mut scratch = [0u8; 8192];
        while left > 0 {
            let n = left.min(scratch.len() as u64) as usize;
            let mut got = 0;
            let ok = read_full(&mut self.inner, &mut scratch[..n], &mut got)?;
            self.offset += got as u64;
            if out.len() < keep {
                let k = got.min(keep - out.len());
                out.extend_from_slice(&scratch[..k]);
            }
            if !ok {
                return Err(Error::Truncated {
                    frame_offset,
                    offset: self.offset,
                });
            }
            left -= n as u64;
        }
        Ok(())
    }
}

/// The most bytes accepted for a frame of `content` decompressed bytes:
/// twice libzstd's worst case plus 1 MiB. It only bounds the memory a frame
/// can take while it is read whole; a frame beyond it is refused as
/// corrupt (libzstd never writes one).
pub fn max_frame_len(content: u64) -> u64 {
    let bound = content + content / 256 + 128 * 1024;
    2 * bound + (1 << 20)
}

/// The last 4 bytes of a frame that carries a checksum (else `None`).
pub fn trailing_checksum(frame: &[u8]) -> Option<u32> {
    let mut first = [0u8; 5];
    first.copy_from_slice(frame.get(..5)?);
    if u32::from_le_bytes([first[0], first[1], first[2], first[3]]) != ZSTD_MAGIC
        || first[4] & 0x04 == 0
    {
        return None;
    }
    let t = frame.get(frame.len().checked_sub(4)?..)?;
    Some(u32::from_le_bytes([t[0], t[1], t[2], t[3]]))
}

impl<R: Read> FrameReader<R> {
    /// Appends exactly `n` more bytes of the frame at `frame_offset`.
    ///
    /// # Errors
    ///
    /// An I/O error, or input that ends before `n` bytes.
    pub fn read_exact_into(
        &mut self,
        out: &mut Vec<u8>,
        n: usize,
        frame_offset: u64,
    ) -> Result<()> {
        self.fill(out, n, frame_offset)
    }
}

impl<R: Read> FrameReader<R> {
    /// Walks the rest of a zstd frame whose header was read, discarding
    /// its bytes (an index scan).
    ///
    /// # Errors
    ///
    /// As [`FrameReader::read_blocks`].
    pub fn skip_blocks(&mut self, hdr: &FrameHeader, frame_offset: u64) -> Result<()> {
        let mut scratch = Vec::with_capacity(MAX_BLOCK as usize + 3);
        loop {
            let at = self.offset;
            scratch.clear();
            self.fill(&mut scratch, 3, frame_offset)?;
            let (last, payload) = parse_block([scratch[0], scratch[1], scratch[2]], at)?;
            scratch.clear();
            self.fill(&mut scratch, payload as usize, frame_offset)?;
            if last {
                break;
            }
        }
        if hdr.checksum {
            scratch.clear();
            self.fill(&mut scratch, 4, frame_offset)?;
        }
        Ok(())
    }
}
