//! Writeback and commit: dirty chunks → parallel compression → in-order
//! allocation and device writes → metadata → superblock.
//!
//! # Protocol (one commit, generation `g = durable + 1`)
//!
//! 1. Under the state lock, take every dirty chunk (the buffers are shared
//!    `Arc`s, so a failed commit can put them back untouched).
//! 2. Queue one item per chunk on the store's [`OrderedWorkqueue`]: the
//!    parallel stage compresses (or finds an all-zero chunk, which becomes
//!    a hole); the ordered stage, in chunk order, allocates blocks and
//!    writes them, waiting on the device inside [`kwq::blocking`]. This is
//!    Btrfs's `async_cow`: compress on any worker, submit in order.
//! 3. If any item failed (`ENOSPC`, `EIO`), free every block written in
//!    step 2, restore the dirty chunks, and return the error: nothing
//!    durable changed.
//! 4. Install the new extents in the live inodes; replaced extents are
//!    released by the allocator's rule (freed now if written by `g`,
//!    pending otherwise).
//! 5. Encode the namespace, compress it, write it as pieces plus an index
//!    to fresh blocks, then flush the device. A failure here frees the new
//!    metadata blocks and returns the error.
//! 6. Move the previous metadata's blocks to the pending list, write the
//!    superblock of `g` into the slot that does *not* hold the newest one,
//!    flush. Once the write has started, `g` may be on disk: the store
//!    counts `g` as used (later commits are `g + 1`, still written to the
//!    same spare slot) but releases nothing.
//! 7. On success, the spare slot becomes the newest, and the pending list
//!    is released: the superblock that frees those blocks is durable.
//!
//! When step 2 runs out of space and the namespace changed since the last
//! commit, steps 5–7 still run, without the data (then `ENOSPC` is
//! returned): an unlink or truncate that frees space must be able to
//! commit while the dirty data that needs the space cannot. Such a commit
//! records the live namespace and sizes over the previous extents, so
//! after a crash the unwritten ranges read as their previous contents or
//! as holes — the one case where a durable state is not an exact snapshot
//! (it is what POSIX allows for data that was not `fsync`ed).
//!
//! [`OrderedWorkqueue`]: kwq::ordered::OrderedWorkqueue

use std::sync::{Arc, Mutex};

use crate::alloc::Allocator;
use crate::compress::{pack, Packed};
use crate::device::{lock, Device};
use crate::error::{Result, StoreError};
use crate::format::{blocks_for, encode_inodes, BlobPtr, MetaIndex, Superblock, BLOCK, META_PIECE};
use crate::inode::{Body, Extent};

use super::{Shared, State};

type Key = (u64, u64);
/// Per queued chunk: `None` until its ordered stage ran, then the extent
/// written (`None` for a hole) or the error.
type Slots = Arc<Mutex<Vec<Option<Result<Option<Extent>>>>>>;

/// Writes `bytes` padded to whole blocks into freshly allocated blocks.
pub(crate) fn write_blob(
    dev: &dyn Device,
    alloc: &Mutex<Allocator>,
    bytes: &[u8],
) -> Result<BlobPtr> {
    let n = blocks_for(bytes.len() as u64).max(1);
    let block = lock(alloc).alloc(n).ok_or(StoreError::NoSpace)?;
    let mut padded = bytes.to_vec();
    padded.resize((n * BLOCK) as usize, 0);
    let r = kwq::blocking(|| dev.write_at(&padded, block * BLOCK));
    if let Err(e) = r {
        lock(alloc).free_now(block, n);
        return Err(e.into());
    }
    Ok(BlobPtr {
        block,
        len: bytes.len() as u32,
        crc: crc32c::crc32c(bytes),
    })
}

/// Reads a blob and checks its checksum.
pub(crate) fn read_blob(dev: &dyn Device, p: BlobPtr, what: &'static str) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; p.len as usize];
    kwq::blocking(|| dev.read_at(&mut buf, p.block * BLOCK))?;
    if crc32c::crc32c(&buf) != p.crc {
        return Err(StoreError::Corrupt {
            what,
            offset: p.block * BLOCK,
        });
    }
    Ok(buf)
}

impl Shared {
    /// Releases an extent dropped by the live state (allocator rule).
    pub(crate) fn release_extent(&self, st: &State, e: &Extent) {
        let n = blocks_for(e.disk_len as u64);
        let mut a = lock(&self.alloc);
        if e.gen > st.gen {
            a.free_now(e.block, n);
        } else {
            a.defer_free(e.block, n);
        }
    }

    /// Runs one commit (see the module docs). The caller holds the state
    /// lock, so writers wait: this is also the dirty-memory throttle.
    pub(crate) fn commit_locked(&self, st: &mut State) -> Result<()> {
        if !st.changed && st.dirty.is_empty() {
            return Ok(());
        }
        // Wait for readers still decompressing extents they found before
        // this commit (they hold no state lock, so they finish).
        let _pin = match self.pin.try_write() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => kwq::blocking(|| {
                self.pin
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            }),
        };
        let txn = st.gen + 1;
        match self.write_back(st, txn) {
            Ok(()) => self.commit_meta(st, txn),
            Err(e) if e.is_no_space() && st.changed => {
                // The data does not fit, but the namespace may free space
                // (an unlink, a truncate): commit it without the data, so
                // the space comes back (see the module docs).
                tracing::warn!(
                    txn,
                    "no room for the dirty data; committing the namespace alone"
                );
                self.commit_meta(st, txn)?;
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    /// Steps 1–4: writes every dirty chunk and installs the extents.
    fn write_back(&self, st: &mut State, txn: u64) -> Result<()> {
        let es = self.extent_size as u64;

        // 1–2: data. A small file's only chunk becomes inline bytes in the
        // metadata (installed in step 4, written in step 5) instead of an
        // extent; its trailing zeros are dropped (they read back as zeros).
        let dirty = std::mem::take(&mut st.dirty);
        let mut jobs: Vec<(Key, u32)> = Vec::new();
        let mut inline_jobs: Vec<(u64, Vec<u8>)> = Vec::new();
        let results: Slots = Arc::default();
        for (&(ino, chunk), buf) in &dirty {
            let size = match st.inodes.get(&ino).map(|i| &i.body) {
                Some(Body::File { size, .. }) => *size,
                _ => continue,
            };
            let start = chunk * es;
            if start >= size {
                continue;
            }
            // The buffer may end before the file's size in this chunk
            // (the file grew with a hole): the extent ends with it.
            let logical = (size - start).min(es).min(buf.len() as u64) as u32;
            if chunk == 0 && size <= crate::INLINE_MAX {
                let end = buf[..logical as usize]
                    .iter()
                    .rposition(|&b| b != 0)
                    .map_or(0, |i| i + 1);
                inline_jobs.push((ino, buf[..end].to_vec()));
                continue;
            }
            let idx = jobs.len();
            jobs.push(((ino, chunk), logical));
            lock(&results).push(None);
            let buf = Arc::clone(buf);
            let level = self.opts.level;
            let dev = Arc::clone(&self.dev);
            let alloc = Arc::clone(&self.alloc);
            let out = Arc::clone(&results);
            self.queue.queue(
                Box::new(move || {
                    let raw = &buf[..logical as usize];
                    if raw.iter().all(|&b| b == 0) {
                        None
                    } else {
                        Some(pack(raw, level))
                    }
                }),
                Box::new(move |packed: Option<Packed>| {
                    let r = match packed {
                        None => Ok(None),
                        Some(p) => write_blob(&*dev, &alloc, &p.bytes).map(|ptr| {
                            Some(Extent {
                                block: ptr.block,
                                disk_len: ptr.len,
                                logical_len: logical,
                                compressed: p.compressed,
                                crc: ptr.crc,
                                gen: txn,
                            })
                        }),
                    };
                    lock(&out)[idx] = Some(r);
                }),
            );
        }
        let flushed = self.queue.flush();
        let results = std::mem::take(&mut *lock(&results));

        // 3: any failure undoes the data phase.
        let mut first_err = flushed
            .err()
            .map(|e| StoreError::Io(std::io::Error::other(e.to_string())));
        let mut written = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Some(Ok(e)) => written.push(e),
                Some(Err(e)) => {
                    first_err.get_or_insert(e);
                    written.push(None);
                }
                None => {
                    first_err.get_or_insert(StoreError::Io(std::io::Error::other(
                        "a writeback stage did not run",
                    )));
                    written.push(None);
                }
            }
        }
        if let Some(e) = first_err {
            let mut a = lock(&self.alloc);
            for ext in written.iter().flatten() {
                a.free_now(ext.block, blocks_for(ext.disk_len as u64));
            }
            drop(a);
            st.dirty = dirty;
            tracing::warn!(error = %e, txn, "writeback failed; dirty data kept");
            return Err(e);
        }

        // 4: install.
        drop(dirty);
        st.dirty_bytes = 0;
        for (((ino, chunk), _), new) in jobs.into_iter().zip(written) {
            let old = match st.inodes.get_mut(&ino).map(|i| &mut i.body) {
                Some(Body::File { chunks, inline, .. }) => {
                    if chunk == 0 {
                        inline.clear();
                    }
                    match new {
                        Some(e) => chunks.insert(chunk, e),
                        None => chunks.remove(&chunk),
                    }
                }
                _ => None,
            };
            if let Some(old) = old {
                self.release_extent(st, &old);
            }
        }
        for (ino, bytes) in inline_jobs {
            let old = match st.inodes.get_mut(&ino).map(|i| &mut i.body) {
                Some(Body::File { chunks, inline, .. }) => {
                    *inline = bytes;
                    chunks.remove(&0)
                }
                _ => None,
            };
            if let Some(old) = old {
                self.release_extent(st, &old);
            }
        }
        Ok(())
    }

    /// Steps 5–7: writes the namespace and the superblock.
    fn commit_meta(&self, st: &mut State, txn: u64) -> Result<()> {
        // 5: metadata.
        let blob = encode_inodes(
            st.inodes.iter().filter(|(_, i)| i.nlink > 0),
            crate::format::VERSION,
        );
        let packed = crate::compress::compress(&blob, self.opts.level)
            .ok_or_else(|| StoreError::Io(std::io::Error::other("metadata compression failed")))?;
        let mut index = MetaIndex {
            raw_len: blob.len() as u64,
            packed_len: packed.len() as u64,
            pieces: Vec::new(),
        };
        let mut new_meta = Vec::new();
        let meta_result = (|| {
            for piece in packed.chunks(META_PIECE) {
                let p = write_blob(&*self.dev, &self.alloc, piece)?;
                new_meta.push(p);
                index.pieces.push(p);
            }
            let ip = write_blob(&*self.dev, &self.alloc, &index.encode())?;
            new_meta.push(ip);
            kwq::blocking(|| self.dev.flush())?;
            Ok::<_, StoreError>(ip)
        })();
        let index_ptr = match meta_result {
            Ok(ip) => ip,
            Err(e) => {
                let mut a = lock(&self.alloc);
                for p in &new_meta {
                    a.free_now(p.block, p.blocks());
                }
                tracing::warn!(error = %e, txn, "metadata write failed");
                return Err(e);
            }
        };

        // 6: superblock; from here `txn` may be durable.
        {
            let mut a = lock(&self.alloc);
            for p in std::mem::replace(&mut st.meta, new_meta) {
                a.defer_free(p.block, p.blocks());
            }
        }
        st.gen = txn;
        st.changed = false;
        let sb = Superblock {
            version: crate::format::VERSION,
            extent_size: self.extent_size,
            gen: txn,
            dev_blocks: lock(&self.alloc).blocks(),
            next_ino: st.next_ino,
            index: index_ptr,
        };
        let slot = 1 - st.sb_slot;
        let r = kwq::blocking(|| {
            self.dev.write_at(&sb.encode(), slot as u64 * BLOCK)?;
            self.dev.flush()
        });
        if let Err(e) = r {
            // `txn` may or may not be on disk: keep everything it and its
            // predecessor reference, and write the same spare slot next time.
            st.changed = true;
            tracing::warn!(error = %e, txn, "superblock write failed");
            return Err(e.into());
        }
        // 7: durable.
        st.sb_slot = slot;
        lock(&self.alloc).release_pending();
        tracing::debug!(txn, "commit durable");
        Ok(())
    }
}
