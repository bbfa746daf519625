//! File data: reads, writes and truncation over the chunk grid.
//!
//! A file is cut into chunks of `extent_size` bytes; chunk `c` covers file
//! bytes `c * extent_size ..`. A chunk is a hole (no extent: zeros), a
//! committed extent, chunk 0's inline bytes (kept in the metadata, see
//! [`INLINE_MAX`](crate::INLINE_MAX)), or a dirty buffer in memory (which
//! wins). A write into a clean chunk first loads the chunk
//! (read-modify-write), so the cost of a small overwrite is bounded by one
//! extent: one read and decompression now, one compression and write at
//! the next commit.
//!
//! Invariants: every stored form of a chunk (dirty buffer, extent, inline
//! bytes) may be shorter than the chunk; the bytes it lacks read as zeros.
//! A dirty buffer is only as long as the file's data in that chunk has
//! been (so a 1 KiB file holds 1 KiB of dirty memory, not a whole chunk),
//! and `dirty_bytes` is the sum of the buffers' lengths. The bytes of a
//! chunk beyond the file's size are zero, in a dirty buffer, an extent
//! (whose `logical_len` stops at the size it was written with) and inline
//! bytes (cut at once by a truncation). Truncation keeps it by cutting the
//! tail.

use std::sync::Arc;

use crate::error::{Result, StoreError};
use crate::format::BLOCK;
use crate::inode::{Body, Extent, Timestamp};

use super::{read_blob, State, Store};

/// Largest file size: chunk indexes and offsets stay far from overflow.
pub const MAX_FILE_SIZE: u64 = 1 << 50;

impl Store {
    /// Reads up to `buf.len()` bytes of file `ino` at `off`; returns how
    /// many (0 at or past the end). Holes read as zeros.
    ///
    /// # Errors
    ///
    /// `NotFound`, `IsDir` / `Invalid` for a non-file, `Corrupt` when an
    /// extent in the range fails its checksum, device errors.
    pub fn read_at(&self, ino: u64, off: u64, buf: &mut [u8]) -> Result<usize> {
        // Under the state lock: a snapshot of where each chunk's bytes are
        // (dirty buffers are shared, not copied). Then, holding only the
        // read pin, read and decompress extents: other operations run
        // meanwhile, and the read is linearized at the snapshot.
        let (n, parts, _pin) = {
            let st = self.state();
            let size = file_size(&st, ino)?;
            if off >= size || buf.is_empty() {
                return Ok(0);
            }
            let n = (size - off).min(buf.len() as u64) as usize;
            let es = self.shared.extent_size as u64;
            let mut parts = Vec::new();
            let mut done = 0usize;
            while done < n {
                let pos = off + done as u64;
                let (chunk, within) = (pos / es, (pos % es) as usize);
                let take = (es as usize - within).min(n - done);
                let part = match st.dirty.get(&(ino, chunk)) {
                    Some(d) => Part::Dirty(Arc::clone(d)),
                    None => match st.inodes.get(&ino).map(|i| &i.body) {
                        Some(Body::File { chunks, inline, .. }) => match chunks.get(&chunk) {
                            Some(e) => Part::Extent(*e),
                            None if chunk == 0 => Part::Bytes(inline.clone()),
                            None => Part::Bytes(Vec::new()),
                        },
                        _ => Part::Bytes(Vec::new()),
                    },
                };
                parts.push((within, take, part));
                done += take;
            }
            let pin = self
                .shared
                .pin
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            (n, parts, pin)
        };
        let mut done = 0usize;
        for (within, take, part) in parts {
            let loaded;
            let have: &[u8] = match &part {
                Part::Dirty(d) => d,
                Part::Bytes(b) => b,
                Part::Extent(e) => {
                    loaded = self.read_extent(e)?;
                    &loaded
                }
            };
            // Every form of the chunk may end before `within` (the file
            // grew past it with a hole): what it lacks reads as zeros.
            let dst = &mut buf[done..done + take];
            let avail = have.get(within..).unwrap_or(&[]);
            let k = avail.len().min(take);
            dst[..k].copy_from_slice(&avail[..k]);
            dst[k..].fill(0);
            done += take;
        }
        Ok(n)
    }

    /// Writes `data` into file `ino` at `off`, growing it as needed. The
    /// data is durable after the next commit. A writer that takes dirty
    /// memory over [`Options::dirty_limit`](super::Options::dirty_limit)
    /// runs a commit first (throttling).
    ///
    /// # Errors
    ///
    /// `NotFound`, `IsDir` / `Invalid` for a non-file, `Invalid` past
    /// [`MAX_FILE_SIZE`], `Corrupt` / device errors while loading a chunk,
    /// and the error of a throttling commit (`NoSpace`) that failed before
    /// any byte was written. If it fails later, the write is short: the
    /// returned count says how many bytes were applied (they stay dirty).
    pub fn write_at(&self, ino: u64, off: u64, data: &[u8]) -> Result<usize> {
        let mut st = self.state();
        let old_size = file_size(&st, ino)?;
        let end = off
            .checked_add(data.len() as u64)
            .filter(|&e| e <= MAX_FILE_SIZE)
            .ok_or(StoreError::Invalid("write past the largest file size"))?;
        if data.is_empty() {
            return Ok(0);
        }
        if end > old_size {
            self.zero_stale_tail(&mut st, ino, old_size)?;
        }
        let es = self.shared.extent_size as u64;
        let mut done = 0usize;
        while done < data.len() {
            if st.dirty_bytes >= self.shared.opts.dirty_limit {
                if let Err(e) = kwq::blocking(|| self.shared.commit_locked(&mut st)) {
                    if done == 0 {
                        return Err(e);
                    }
                    break; // a short write, as POSIX reports a partial one
                }
            }
            let pos = off + done as u64;
            let (chunk, within) = (pos / es, (pos % es) as usize);
            let take = (es as usize - within).min(data.len() - done);
            let buf = self.dirty_chunk(&mut st, ino, chunk, within + take)?;
            buf[within..within + take].copy_from_slice(&data[done..done + take]);
            done += take;
            if let Some(Body::File { size, .. }) = st.inodes.get_mut(&ino).map(|i| &mut i.body) {
                *size = (*size).max(pos + take as u64);
            }
        }
        let i = st.inode_mut(ino)?;
        let now = Timestamp::now();
        i.mtime = now;
        i.ctime = now;
        debug_assert!(done < data.len() || i.size() >= end);
        st.changed = true;
        Ok(done)
    }

    /// Sets file `ino`'s size: shrinking drops the data past it, growing
    /// adds a hole.
    ///
    /// # Errors
    ///
    /// As [`Store::write_at`].
    pub fn truncate(&self, ino: u64, size: u64) -> Result<()> {
        let mut st = self.state();
        self.truncate_locked(&mut st, ino, size)
    }

    pub(crate) fn truncate_locked(&self, st: &mut State, ino: u64, new: u64) -> Result<()> {
        let old = file_size(st, ino)?;
        if new > MAX_FILE_SIZE {
            return Err(StoreError::Invalid("size past the largest file size"));
        }
        let es = self.shared.extent_size as u64;
        if new < old {
            // The chunk holding the new end keeps its head; cut its tail.
            let within = (new % es) as usize;
            if within != 0 {
                let buf = self.dirty_chunk(st, ino, new / es, 0)?;
                let cut = buf.len().saturating_sub(within);
                buf.truncate(within);
                st.dirty_bytes -= cut as u64;
            }
            let first_gone = new.div_ceil(es);
            st.drop_dirty(ino, first_gone);
            let gone: Vec<Extent> = match st.inodes.get_mut(&ino).map(|i| &mut i.body) {
                Some(Body::File { chunks, inline, .. }) => {
                    // Inline bytes are metadata: cut now, committed with
                    // the new size.
                    inline.truncate(new.min(inline.len() as u64) as usize);
                    let tail = chunks.split_off(&first_gone);
                    tail.into_values().collect()
                }
                _ => Vec::new(),
            };
            for e in &gone {
                self.shared.release_extent(st, e);
            }
        }
        if new > old {
            self.zero_stale_tail(st, ino, old)?;
        }
        if let Some(Body::File { size, .. }) = st.inodes.get_mut(&ino).map(|i| &mut i.body) {
            *size = new;
        }
        let i = st.inode_mut(ino)?;
        let now = Timestamp::now();
        i.mtime = now;
        i.ctime = now;
        st.changed = true;
        Ok(())
    }

    /// Before a file grows from `old` bytes: if the chunk holding its end
    /// has an extent reaching past `old` (possible only after a
    /// namespace-only commit recorded a truncation whose chunk was not
    /// rewritten, see `commit.rs`), load it, so the bytes past `old` are
    /// zero before the growth makes them visible.
    fn zero_stale_tail(&self, st: &mut State, ino: u64, old: u64) -> Result<()> {
        let es = self.shared.extent_size as u64;
        let within = (old % es) as u32;
        let stale = within != 0
            && !st.dirty.contains_key(&(ino, old / es))
            && clean_len(st, ino, old / es) > within;
        if stale {
            self.dirty_chunk(st, ino, old / es, 0)?;
        }
        Ok(())
    }

    /// The dirty buffer of a chunk, at least `need` bytes long, loading it
    /// from its extent or inline bytes first. Only the bytes below the
    /// file's size are loaded: the buffer is zero past the end of the file.
    fn dirty_chunk<'s>(
        &self,
        st: &'s mut State,
        ino: u64,
        chunk: u64,
        need: usize,
    ) -> Result<&'s mut Vec<u8>> {
        let es = self.shared.extent_size as u64;
        if !st.dirty.contains_key(&(ino, chunk)) {
            let mut buf = self.load_clean(st, ino, chunk)?;
            let below_eof = file_size(st, ino)?.saturating_sub(chunk * es);
            buf.truncate(below_eof.min(es) as usize);
            st.dirty_bytes += buf.len() as u64;
            st.dirty.insert((ino, chunk), Arc::new(buf));
        }
        let b = Arc::make_mut(st.dirty.get_mut(&(ino, chunk)).expect("inserted above"));
        if b.len() < need {
            st.dirty_bytes += (need - b.len()) as u64;
            b.resize(need, 0);
        }
        Ok(b)
    }

    /// A clean chunk's bytes: its extent's (read, verified, decompressed),
    /// its inline bytes, or nothing for a hole. May be shorter than the
    /// chunk.
    fn load_clean(&self, st: &State, ino: u64, chunk: u64) -> Result<Vec<u8>> {
        match st.inodes.get(&ino).map(|i| &i.body) {
            Some(Body::File { chunks, inline, .. }) => match chunks.get(&chunk) {
                Some(e) => self.read_extent(e),
                None if chunk == 0 => Ok(inline.clone()),
                None => Ok(Vec::new()),
            },
            _ => Ok(Vec::new()),
        }
    }

    /// Reads, verifies and decompresses an extent.
    pub(crate) fn read_extent(&self, e: &Extent) -> Result<Vec<u8>> {
        read_extent(&*self.shared.dev, e)
    }
}

/// Reads, verifies and decompresses an extent from `dev`.
pub(crate) fn read_extent(dev: &dyn crate::Device, e: &Extent) -> Result<Vec<u8>> {
    let ptr = crate::format::BlobPtr {
        block: e.block,
        len: e.disk_len,
        crc: e.crc,
    };
    let raw = read_blob(dev, ptr, "data extent")?;
    if e.compressed {
        crate::compress::unpack(&raw, e.logical_len as usize, "data extent", e.block * BLOCK)
    } else if raw.len() == e.logical_len as usize {
        Ok(raw)
    } else {
        Err(StoreError::Corrupt {
            what: "data extent",
            offset: e.block * BLOCK,
        })
    }
}

fn file_size(st: &State, ino: u64) -> Result<u64> {
    match &st.inode(ino)?.body {
        Body::File { size, .. } => Ok(*size),
        Body::Dir { .. } => Err(StoreError::IsDir),
        Body::Symlink { .. } => Err(StoreError::Invalid("not a regular file")),
    }
}

/// Where a chunk's bytes are, as a read found them under the state lock.
enum Part {
    /// A dirty buffer (shared: a later write copies it first).
    Dirty(Arc<Vec<u8>>),
    /// Inline bytes (copied) or a hole (empty).
    Bytes(Vec<u8>),
    /// A committed extent, read after the state lock is dropped.
    Extent(Extent),
}

/// Bytes a clean chunk holds (its extent's logical length, its inline
/// bytes, 0 for a hole).
fn clean_len(st: &State, ino: u64, chunk: u64) -> u32 {
    match st.inodes.get(&ino).map(|i| &i.body) {
        Some(Body::File { chunks, inline, .. }) => match chunks.get(&chunk) {
            Some(e) => e.logical_len,
            None if chunk == 0 => inline.len() as u32,
            None => 0,
        },
        _ => 0,
    }
}
