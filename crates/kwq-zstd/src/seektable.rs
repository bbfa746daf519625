//! The zstd *seekable format* seek table (zstd `contrib/seekable_format`):
//! a skippable frame at the end of the file listing every frame's
//! compressed and decompressed size.
//!
//! ```text
//!   skippable frame header  magic 0x184D2A5E (u32 LE), content length (u32 LE)
//!   entries, one per frame  compressed size (u32), decompressed size (u32),
//!                           [checksum (u32): low 32 bits of the frame's XXH64]
//!   footer (9 bytes)        number of frames (u32), descriptor (u8: bit 7 =
//!                           checksums present, bits 6..2 reserved = 0),
//!                           seekable magic 0x8F92EAB1 (u32 LE)
//! ```
//!
//! Stock `zstd -d` skips the table like any skippable frame. The parser
//! trusts nothing: the footer, the header, the length and the entries must
//! agree with each other and with the file size; sizes are checked before
//! any allocation.

use crate::error::{Error, Result};

/// Magic number of the skippable frame that holds the table.
pub const SEEK_TABLE_MAGIC: u32 = 0x184D_2A5E;
/// Magic number ending the footer.
pub const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
/// Footer length.
pub const FOOTER_LEN: u64 = 9;
/// The largest frame (either size) the format can describe.
pub const MAX_FRAME_SIZE: u64 = u32::MAX as u64;

/// One frame as the table describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// Bytes of the frame in the file.
    pub compressed: u32,
    /// Bytes it decompresses to.
    pub decompressed: u32,
    /// Low 32 bits of the XXH64 of the decompressed bytes, if recorded.
    pub checksum: Option<u32>,
}

/// Serialises a table (the whole skippable frame).
pub fn write_table(entries: &[Entry], checksums: bool) -> Vec<u8> {
    let per = if checksums { 12 } else { 8 };
    let body = entries.len() * per + FOOTER_LEN as usize;
    let mut out = Vec::with_capacity(8 + body);
    out.extend_from_slice(&SEEK_TABLE_MAGIC.to_le_bytes());
    out.extend_from_slice(&(body as u32).to_le_bytes());
    for e in entries {
        out.extend_from_slice(&e.compressed.to_le_bytes());
        out.extend_from_slice(&e.decompressed.to_le_bytes());
        if checksums {
            out.extend_from_slice(&e.checksum.unwrap_or(0).to_le_bytes());
        }
    }
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    out.push(if checksums { 0x80 } else { 0 });
    out.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
    out
}

/// What the footer says: `(frames, checksums)`; `None` if the 9 bytes are
/// not a seekable footer at all (a file without a table).
///
/// # Errors
///
/// [`Error`](crate::Error) if the footer has the seekable magic number but
/// reserved bits set.
pub fn parse_footer(footer: &[u8; 9]) -> Result<Option<(u32, bool)>> {
    let magic = u32::from_le_bytes([footer[5], footer[6], footer[7], footer[8]]);
    if magic != SEEKABLE_MAGIC {
        return Ok(None);
    }
    let desc = footer[4];
    if desc & 0x7C != 0 {
        return Err(Error::SeekTable(
            "reserved bits set in the descriptor".into(),
        ));
    }
    let n = u32::from_le_bytes([footer[0], footer[1], footer[2], footer[3]]);
    Ok(Some((n, desc & 0x80 != 0)))
}

/// Bytes of the whole table frame for `frames` entries.
pub fn table_len(frames: u32, checksums: bool) -> u64 {
    let per = if checksums { 12 } else { 8 };
    8 + u64::from(frames) * per + FOOTER_LEN
}

/// Parses a whole table frame (`bytes` = exactly [`table_len`] bytes
/// ending with the footer) for a file of `file_len` bytes. Checks that the
/// frames it lists tile the file up to the table exactly.
///
/// # Errors
///
/// [`Error`](crate::Error) if the table is malformed or its frames do not
/// tile the file exactly.
pub fn parse_table(bytes: &[u8], file_len: u64) -> Result<Vec<Entry>> {
    let bad = |m: String| Err(Error::SeekTable(m));
    if bytes.len() < (8 + FOOTER_LEN) as usize {
        return bad(format!(
            "{} bytes is too short for a seek table",
            bytes.len()
        ));
    }
    let mut footer = [0u8; 9];
    footer.copy_from_slice(&bytes[bytes.len() - 9..]);
    let Some((n, checksums)) = parse_footer(&footer)? else {
        return bad("no seekable magic number in the footer".into());
    };
    if table_len(n, checksums) != bytes.len() as u64 {
        return bad(format!(
            "{n} frames do not fit a table of {} bytes",
            bytes.len()
        ));
    }
    let magic = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != SEEK_TABLE_MAGIC {
        return bad(format!(
            "table frame magic {magic:#010x}, expected {SEEK_TABLE_MAGIC:#010x}"
        ));
    }
    let len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if u64::from(len) + 8 != bytes.len() as u64 {
        return bad(format!(
            "table frame says {len} bytes, footer implies {}",
            bytes.len() - 8
        ));
    }
    let per = if checksums { 12 } else { 8 };
    let mut entries = Vec::with_capacity(n as usize);
    let mut total = 0u64;
    for chunk in bytes[8..bytes.len() - 9].chunks_exact(per) {
        let c = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        let d = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]);
        let sum = checksums.then(|| u32::from_le_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]));
        if c == 0 {
            return bad(format!(
                "frame {} has a compressed size of 0",
                entries.len()
            ));
        }
        total += u64::from(c);
        entries.push(Entry {
            compressed: c,
            decompressed: d,
            checksum: sum,
        });
    }
    if total + bytes.len() as u64 != file_len {
        return bad(format!(
            "frames total {total} bytes plus a {}-byte table, but the file has {file_len}",
            bytes.len()
        ));
    }
    Ok(entries)
}
