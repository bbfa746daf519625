//! The on-disk format, version 2. All integers little-endian.
//!
//! # Layout
//!
//! ```text
//! block 0        superblock slot 0
//! block 1        superblock slot 1
//! block 2..      data extents, metadata pieces and metadata indexes,
//!                anywhere, never overwritten while a durable superblock
//!                (or the commit being written) references them
//! ```
//!
//! Blocks are [`BLOCK`] bytes.
//!
//! Version 2 added inline file data; version 1 images mount (their files
//! have none) and are written as version 2 by their next commit.
//!
//! # Superblock (first 96 bytes of its block, rest zero)
//!
//! | off | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `KWQSTOR\x01` |
//! | 8 | 4 | format version (2; 1 is read too) |
//! | 12 | 4 | block size |
//! | 16 | 4 | extent size (bytes of file data per chunk) |
//! | 20 | 4 | reserved, 0 |
//! | 24 | 8 | generation (commit number, 1 = mkfs) |
//! | 32 | 8 | device blocks at mkfs |
//! | 40 | 8 | next inode number |
//! | 48 | 8 | metadata index: first block |
//! | 56 | 4 | metadata index: bytes |
//! | 60 | 4 | metadata index: crc32c |
//! | 64 | 28 | reserved, 0 |
//! | 92 | 4 | crc32c of bytes 0..92 |
//!
//! Generation `g` is written to slot `g mod 2`... unless the previous
//! attempt at `g - 1` may have reached the disk; the store always writes
//! to the slot that does *not* hold the newest superblock it mounted or
//! committed, so one intact older superblock survives any torn write. A
//! mount takes the valid slot of highest generation whose metadata reads
//! back intact, else the other.
//!
//! # Metadata
//!
//! The whole namespace is one *metadata blob* (below), zstd-compressed,
//! cut into pieces of at most [`META_PIECE`] bytes, each stored in its own
//! run of blocks. The *index* lists them: `u64 blob length (uncompressed),
//! u64 compressed length, u32 piece count`, then per piece `u64 block,
//! u32 bytes, u32 crc32c`. The superblock points at the index.
//!
//! The blob: `u64 inode count`, then per inode `u64 ino, u8 kind (1 file,
//! 2 dir, 3 symlink), u32 perm, u32 uid, u32 gid, u32 nlink`, three
//! timestamps `i64 secs, u32 nanos` (atime, mtime, ctime), `u32 xattr
//! count` then per xattr `u16 name len, name, u32 value len, value`, then
//! by kind:
//!
//! * file: `u64 size, u32 extent count`, per extent `u64 chunk, u64 block,
//!   u32 disk bytes, u32 logical bytes, u8 flags (bit 0 = zstd), u32
//!   crc32c, u64 generation`; then (version 2) `u32 inline len, inline
//!   bytes`: chunk 0's data kept in the metadata (at most `INLINE_MAX`
//!   bytes, never together with an extent for chunk 0; zero length = none);
//! * dir: `u64 parent, u32 entry count`, per entry `u16 name len, name,
//!   u64 ino`;
//! * symlink: `u32 len, target`.

use std::collections::BTreeMap;

use crate::error::{Result, StoreError};
use crate::inode::{Body, Extent, Inode, Timestamp, INLINE_MAX};

/// Device block size in bytes.
pub const BLOCK: u64 = 4096;
/// Largest metadata piece in bytes.
pub const META_PIECE: usize = 256 * 1024;
/// Format version written by this crate.
pub const VERSION: u32 = 2;
/// Oldest format version this crate mounts (version 1 has no inline data).
pub const OLDEST_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"KWQSTOR\x01";
const SB_CRC_AT: usize = 92;

/// A pointer to a run of bytes on the device, with its checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct BlobPtr {
    pub block: u64,
    pub len: u32,
    pub crc: u32,
}

impl BlobPtr {
    pub(crate) fn blocks(&self) -> u64 {
        blocks_for(self.len as u64)
    }
}

/// Blocks needed for `bytes`.
pub(crate) fn blocks_for(bytes: u64) -> u64 {
    bytes.div_ceil(BLOCK)
}

/// A decoded superblock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Superblock {
    /// Format version (written: [`VERSION`]; read: any from
    /// [`OLDEST_VERSION`]).
    pub version: u32,
    pub extent_size: u32,
    pub gen: u64,
    pub dev_blocks: u64,
    pub next_ino: u64,
    pub index: BlobPtr,
}

impl Superblock {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; BLOCK as usize];
        b[0..8].copy_from_slice(MAGIC);
        b[8..12].copy_from_slice(&self.version.to_le_bytes());
        b[12..16].copy_from_slice(&(BLOCK as u32).to_le_bytes());
        b[16..20].copy_from_slice(&self.extent_size.to_le_bytes());
        b[24..32].copy_from_slice(&self.gen.to_le_bytes());
        b[32..40].copy_from_slice(&self.dev_blocks.to_le_bytes());
        b[40..48].copy_from_slice(&self.next_ino.to_le_bytes());
        b[48..56].copy_from_slice(&self.index.block.to_le_bytes());
        b[56..60].copy_from_slice(&self.index.len.to_le_bytes());
        b[60..64].copy_from_slice(&self.index.crc.to_le_bytes());
        let crc = crc32c::crc32c(&b[..SB_CRC_AT]);
        b[SB_CRC_AT..SB_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes a slot; `Err` says why it is not a valid superblock.
    pub(crate) fn decode(b: &[u8]) -> Result<Self, String> {
        if b.len() < BLOCK as usize {
            return Err("short superblock".into());
        }
        if &b[0..8] != MAGIC {
            return Err("bad magic".into());
        }
        let crc = u32::from_le_bytes(b[SB_CRC_AT..SB_CRC_AT + 4].try_into().expect("4 bytes"));
        if crc != crc32c::crc32c(&b[..SB_CRC_AT]) {
            return Err("superblock checksum mismatch".into());
        }
        let mut d = Decoder::new(&b[8..SB_CRC_AT]);
        let mut field = || d.u32().map_err(|e| e.to_string());
        let version = field()?;
        let bs = field()?;
        let extent_size = field()?;
        if !(OLDEST_VERSION..=VERSION).contains(&version) {
            return Err(format!(
                "format version {version}, this build reads {OLDEST_VERSION} to {VERSION}"
            ));
        }
        if bs as u64 != BLOCK {
            return Err(format!("block size {bs}, expected {BLOCK}"));
        }
        if extent_size == 0 || extent_size % BLOCK as u32 != 0 || extent_size > 16 << 20 {
            return Err(format!("bad extent size {extent_size}"));
        }
        let mut d = Decoder::new(&b[24..64]);
        let err = |e: StoreError| e.to_string();
        Ok(Self {
            version,
            extent_size,
            gen: d.u64().map_err(err)?,
            dev_blocks: d.u64().map_err(err)?,
            next_ino: d.u64().map_err(err)?,
            index: BlobPtr {
                block: d.u64().map_err(err)?,
                len: d.u32().map_err(err)?,
                crc: d.u32().map_err(err)?,
            },
        })
    }
}

/// Little-endian writer.
#[derive(Debug, Default)]
pub(crate) struct Encoder(pub Vec<u8>);

impl Encoder {
    pub(crate) fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    pub(crate) fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn time(&mut self, t: Timestamp) {
        self.u64(t.secs as u64);
        self.u32(t.nanos);
    }
    fn bytes16(&mut self, b: &[u8]) {
        self.u16(b.len() as u16);
        self.0.extend_from_slice(b);
    }
    fn bytes32(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
}

/// Little-endian reader; running off the end is an error, never a panic.
#[derive(Debug)]
pub(crate) struct Decoder<'a> {
    b: &'a [u8],
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Self { b }
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.b.len() < n {
            return Err(StoreError::BadImage("metadata ends early".into()));
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    pub(crate) fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().expect("2")))
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn time(&mut self) -> Result<Timestamp> {
        Ok(Timestamp {
            secs: self.u64()? as i64,
            nanos: self.u32()?,
        })
    }
    fn bytes16(&mut self) -> Result<Vec<u8>> {
        let n = self.u16()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    fn bytes32(&mut self) -> Result<Vec<u8>> {
        let n = self.u32()? as usize;
        Ok(self.take(n)?.to_vec())
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
}

fn bad(msg: &str) -> StoreError {
    StoreError::BadImage(msg.to_string())
}

/// Encodes the inodes that belong in a commit (those with links), in
/// format `version` (the store writes [`VERSION`]; version 1, which has no
/// inline data, is written only by tests of the upgrade path).
pub(crate) fn encode_inodes<'a>(
    inodes: impl Iterator<Item = (&'a u64, &'a Inode)>,
    version: u32,
) -> Vec<u8> {
    let mut body = Encoder::default();
    let mut count = 0u64;
    for (&ino, i) in inodes {
        count += 1;
        body.u64(ino);
        body.u8(i.kind().code());
        body.u32(i.perm);
        body.u32(i.uid);
        body.u32(i.gid);
        body.u32(i.nlink);
        body.time(i.atime);
        body.time(i.mtime);
        body.time(i.ctime);
        body.u32(i.xattrs.len() as u32);
        for (k, v) in &i.xattrs {
            body.bytes16(k);
            body.bytes32(v);
        }
        match &i.body {
            Body::File {
                size,
                chunks,
                inline,
            } => {
                body.u64(*size);
                body.u32(chunks.len() as u32);
                for (&c, e) in chunks {
                    body.u64(c);
                    body.u64(e.block);
                    body.u32(e.disk_len);
                    body.u32(e.logical_len);
                    body.u8(e.compressed as u8);
                    body.u32(e.crc);
                    body.u64(e.gen);
                }
                if version >= 2 {
                    body.bytes32(inline);
                }
            }
            Body::Dir { parent, entries } => {
                body.u64(*parent);
                body.u32(entries.len() as u32);
                for (name, &ino) in entries {
                    body.bytes16(name);
                    body.u64(ino);
                }
            }
            Body::Symlink { target } => body.bytes32(target),
        }
    }
    let mut out = Encoder::default();
    out.u64(count);
    out.0.extend_from_slice(&body.0);
    out.0
}

/// Decodes a metadata blob. Structural checks only (fsck checks the rest).
pub(crate) fn decode_inodes(
    blob: &[u8],
    extent_size: u32,
    version: u32,
) -> Result<BTreeMap<u64, Inode>> {
    let mut d = Decoder::new(blob);
    let n = d.u64()?;
    let mut out = BTreeMap::new();
    for _ in 0..n {
        let ino = d.u64()?;
        let kind = d.u8()?;
        let perm = d.u32()?;
        let uid = d.u32()?;
        let gid = d.u32()?;
        let nlink = d.u32()?;
        let atime = d.time()?;
        let mtime = d.time()?;
        let ctime = d.time()?;
        let nx = d.u32()?;
        let mut xattrs = BTreeMap::new();
        for _ in 0..nx {
            let k = d.bytes16()?;
            let v = d.bytes32()?;
            xattrs.insert(k, v);
        }
        let body = match kind {
            1 => {
                let size = d.u64()?;
                let ne = d.u32()?;
                let mut chunks = BTreeMap::new();
                for _ in 0..ne {
                    let c = d.u64()?;
                    let e = Extent {
                        block: d.u64()?,
                        disk_len: d.u32()?,
                        logical_len: d.u32()?,
                        compressed: d.u8()? & 1 == 1,
                        crc: d.u32()?,
                        gen: d.u64()?,
                    };
                    if e.logical_len == 0
                        || e.logical_len > extent_size
                        || e.disk_len == 0
                        || (!e.compressed && e.disk_len != e.logical_len)
                    {
                        return Err(bad("bad extent record"));
                    }
                    chunks.insert(c, e);
                }
                let inline = if version >= 2 {
                    d.bytes32()?
                } else {
                    Vec::new()
                };
                if inline.len() as u64 > INLINE_MAX
                    || (!inline.is_empty() && chunks.contains_key(&0))
                {
                    return Err(bad("bad inline data record"));
                }
                Body::File {
                    size,
                    chunks,
                    inline,
                }
            }
            2 => {
                let parent = d.u64()?;
                let ne = d.u32()?;
                let mut entries = BTreeMap::new();
                for _ in 0..ne {
                    let name = d.bytes16()?;
                    entries.insert(name, d.u64()?);
                }
                Body::Dir { parent, entries }
            }
            3 => Body::Symlink {
                target: d.bytes32()?,
            },
            _ => return Err(bad("unknown inode kind")),
        };
        let inode = Inode {
            perm,
            uid,
            gid,
            nlink,
            atime,
            mtime,
            ctime,
            xattrs,
            body,
            lookups: 0,
            opens: 0,
        };
        if out.insert(ino, inode).is_some() {
            return Err(bad("duplicate inode number"));
        }
    }
    if !d.is_empty() {
        return Err(bad("trailing bytes after the inodes"));
    }
    Ok(out)
}

/// The metadata index: where the compressed blob's pieces are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MetaIndex {
    pub raw_len: u64,
    pub packed_len: u64,
    pub pieces: Vec<BlobPtr>,
}

impl MetaIndex {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Encoder::default();
        e.u64(self.raw_len);
        e.u64(self.packed_len);
        e.u32(self.pieces.len() as u32);
        for p in &self.pieces {
            e.u64(p.block);
            e.u32(p.len);
            e.u32(p.crc);
        }
        e.0
    }

    pub(crate) fn decode(b: &[u8]) -> Result<Self> {
        let mut d = Decoder::new(b);
        let raw_len = d.u64()?;
        let packed_len = d.u64()?;
        let n = d.u32()?;
        let mut pieces = Vec::new();
        for _ in 0..n {
            pieces.push(BlobPtr {
                block: d.u64()?,
                len: d.u32()?,
                crc: d.u32()?,
            });
        }
        if !d.is_empty() || pieces.iter().map(|p| p.len as u64).sum::<u64>() != packed_len {
            return Err(bad("inconsistent metadata index"));
        }
        Ok(Self {
            raw_len,
            packed_len,
            pieces,
        })
    }
}
