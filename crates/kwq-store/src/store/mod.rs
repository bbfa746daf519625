//! The store: namespace, dirty cache and commits over one [`Device`].
//!
//! # Fields and who may touch them
//!
//! * `State` (inodes, dirty chunks, generation, metadata pointers) — behind
//!   the state mutex. Every public operation takes it for its whole
//!   duration, commits included: operations are linearizable, and a
//!   commit is a consistent snapshot of the namespace.
//! * the read pin — a reader of committed extents takes it shared while
//!   it still holds the state lock, then drops the state lock and reads
//!   and decompresses without it; a commit takes it exclusively (after the
//!   state lock), so the blocks a reader was pointed at cannot be freed
//!   and rewritten under it. Only commits write blocks.
//! * the allocator — behind its own mutex, taken briefly by the commit's
//!   ordered stage (which runs on kwq workers while the committing thread
//!   holds the state lock) and by operations that drop extents.
//! * the device, extent size, options, the ordered workqueue and the
//!   periodic commit timer — immutable after open.
//!
//! # Commits
//!
//! A commit (`commit.rs`) happens on [`Store::sync`] / [`Store::fsync`],
//! when dirty chunks exceed [`Options::dirty_limit`] (the writer that
//! crosses it runs the commit: writers are throttled, memory is bounded),
//! on a periodic [`kwq::DelayedWork`] ([`Options::commit_interval`], like
//! Btrfs's commit interval), and on drop. After a power cut the store
//! mounts as of the last durable commit, exactly.

mod commit;
mod data;
mod ns;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, TryLockError, Weak};
use std::time::Duration;

use kwq::ordered::{BoxedOrderedWorkqueue, OrderedWorkqueue};

use crate::alloc::Allocator;
use crate::compress::Packed;
use crate::device::{lock, Device};
use crate::error::{Result, StoreError};
use crate::format::{decode_inodes, BlobPtr, MetaIndex, Superblock, BLOCK};
use crate::inode::{Body, Inode, StatFs, ROOT_INO};
use crate::NAME_MAX;

pub(crate) use commit::read_blob;
pub(crate) use data::read_extent as data_read_extent;
pub use data::MAX_FILE_SIZE;

/// Default bytes of file data per extent (see `docs/store.md` for why).
pub const DEFAULT_EXTENT_SIZE: u32 = 512 * 1024;

/// Options for [`Store::format`] and [`Store::mount`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Options {
    /// Bytes of file data per extent (a multiple of 4096, at most 16 MiB).
    /// Fixed at format time; `mount` takes it from the image.
    pub extent_size: u32,
    /// zstd level for data and metadata.
    pub level: i32,
    /// Dirty bytes (whole chunks) above which a writer commits.
    pub dirty_limit: u64,
    /// Period of the background commit; `None` commits only on demand.
    pub commit_interval: Option<Duration>,
    /// Items in flight on the writeback queue.
    pub max_in_flight: usize,
    /// The kwq runtime whose pools run writeback (default: the global one).
    pub runtime: Option<kwq::Runtime>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            extent_size: DEFAULT_EXTENT_SIZE,
            level: 3,
            dirty_limit: 64 << 20,
            commit_interval: Some(Duration::from_secs(30)),
            max_in_flight: 64,
            runtime: None,
        }
    }
}

impl Options {
    /// Sets [`extent_size`](Self::extent_size).
    pub fn extent_size(mut self, n: u32) -> Self {
        self.extent_size = n;
        self
    }
    /// Sets [`level`](Self::level).
    pub fn level(mut self, l: i32) -> Self {
        self.level = l;
        self
    }
    /// Sets [`dirty_limit`](Self::dirty_limit).
    pub fn dirty_limit(mut self, n: u64) -> Self {
        self.dirty_limit = n;
        self
    }
    /// Sets [`commit_interval`](Self::commit_interval).
    pub fn commit_interval(mut self, d: Option<Duration>) -> Self {
        self.commit_interval = d;
        self
    }
    /// Sets [`runtime`](Self::runtime).
    pub fn runtime(mut self, rt: &kwq::Runtime) -> Self {
        self.runtime = Some(rt.clone());
        self
    }
}

pub(crate) struct State {
    pub(crate) inodes: BTreeMap<u64, Inode>,
    pub(crate) next_ino: u64,
    /// Newest generation that is (or may be) on disk.
    pub(crate) gen: u64,
    /// (ino, chunk) → the chunk's full buffer (`extent_size` bytes; bytes
    /// past the file size are zero).
    pub(crate) dirty: BTreeMap<(u64, u64), Arc<Vec<u8>>>,
    pub(crate) dirty_bytes: u64,
    /// Blocks of the newest metadata (pieces + index).
    pub(crate) meta: Vec<BlobPtr>,
    /// Slot holding the newest durable superblock.
    pub(crate) sb_slot: usize,
    /// Something changed since the last commit.
    pub(crate) changed: bool,
}

pub(crate) struct Shared {
    pub(crate) dev: Arc<dyn Device>,
    pub(crate) extent_size: u32,
    pub(crate) opts: Options,
    pub(crate) state: Mutex<State>,
    /// Readers of committed extents hold it shared after they leave the
    /// state lock; a commit (the only writer of blocks) holds it
    /// exclusively, so no block is reused under a reader. Order: state
    /// lock, then pin.
    pub(crate) pin: RwLock<()>,
    pub(crate) alloc: Arc<Mutex<Allocator>>,
    pub(crate) queue: BoxedOrderedWorkqueue<Option<Packed>>,
    timer: Option<(kwq::Workqueue, kwq::DelayedWork)>,
}

/// A mounted store. Every method may be called from many threads at once.
///
/// # Drop
///
/// Dropping the store stops its timer and commits (errors are logged with
/// `tracing`); [`Store::unmount`] does the same and returns the error, and
/// [`Store::crash`] drops everything uncommitted, as a power cut would.
pub struct Store {
    shared: Arc<Shared>,
    crashed: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.shared.state.try_lock();
        let mut d = f.debug_struct("Store");
        d.field("dev", &self.shared.dev)
            .field("extent_size", &self.shared.extent_size);
        if let Ok(st) = st {
            d.field("gen", &st.gen)
                .field("inodes", &st.inodes.len())
                .field("dirty_bytes", &st.dirty_bytes);
        }
        d.finish()
    }
}

impl Store {
    /// Formats `dev` (mkfs): an empty root directory at generation 1. Any
    /// previous superblocks are overwritten, so the old contents are gone.
    ///
    /// # Errors
    ///
    /// `Invalid` for a bad extent size, a zstd level libzstd does not
    /// accept, or a device too small; device errors.
    pub fn format(dev: Arc<dyn Device>, opts: Options) -> Result<Store> {
        check_level(opts.level)?;
        let es = opts.extent_size;
        if es == 0 || es % BLOCK as u32 != 0 || es > 16 << 20 {
            return Err(StoreError::Invalid(
                "extent size must be a multiple of 4096, at most 16 MiB",
            ));
        }
        let blocks = dev.len() / BLOCK;
        if blocks < 16 {
            return Err(StoreError::Invalid("device smaller than 64 KiB"));
        }
        let mut inodes = BTreeMap::new();
        let mut root = Inode::new(
            Body::Dir {
                parent: ROOT_INO,
                entries: BTreeMap::new(),
            },
            0o755,
            0,
            0,
        );
        root.nlink = 2;
        inodes.insert(ROOT_INO, root);
        dev.write_at(&vec![0u8; 2 * BLOCK as usize], 0)?;
        let st = State {
            inodes,
            next_ino: ROOT_INO + 1,
            gen: 0,
            dirty: BTreeMap::new(),
            dirty_bytes: 0,
            meta: Vec::new(),
            sb_slot: 0,
            changed: true,
        };
        let store = Self::assemble(dev, Allocator::new(blocks, 2), st, es, opts)?;
        store.sync()?;
        Ok(store)
    }

    /// Mounts the store on `dev`: the valid superblock of highest
    /// generation whose metadata reads back intact (else the other one).
    ///
    /// # Errors
    ///
    /// `BadImage` when neither superblock leads to intact metadata (the
    /// reasons for both are in the message); `Invalid` for a zstd level
    /// libzstd does not accept; device errors.
    pub fn mount(dev: Arc<dyn Device>, opts: Options) -> Result<Store> {
        check_level(opts.level)?;
        let mut cands = Vec::new();
        let mut why = Vec::new();
        for slot in 0..2usize {
            let mut b = vec![0u8; BLOCK as usize];
            dev.read_at(&mut b, slot as u64 * BLOCK)?;
            match Superblock::decode(&b) {
                Ok(sb) => cands.push((slot, sb)),
                Err(e) => why.push(format!("slot {slot}: {e}")),
            }
        }
        cands.sort_by_key(|(_, sb)| std::cmp::Reverse(sb.gen));
        for (slot, sb) in cands {
            match load(&*dev, &sb) {
                Ok((inodes, meta, alloc)) => {
                    if !why.is_empty() || slot != (sb.gen % 2) as usize {
                        tracing::info!(slot, gen = sb.gen, "mounted; other slot: {why:?}");
                    }
                    let st = State {
                        inodes,
                        next_ino: sb.next_ino,
                        gen: sb.gen,
                        dirty: BTreeMap::new(),
                        dirty_bytes: 0,
                        meta,
                        sb_slot: slot,
                        changed: false,
                    };
                    return Self::assemble(dev, alloc, st, sb.extent_size, opts);
                }
                Err(e) => {
                    tracing::warn!(slot, gen = sb.gen, error = %e, "superblock unusable");
                    why.push(format!("slot {slot} (generation {}): {e}", sb.gen));
                }
            }
        }
        Err(StoreError::BadImage(why.join("; ")))
    }

    fn assemble(
        dev: Arc<dyn Device>,
        alloc: Allocator,
        st: State,
        extent_size: u32,
        opts: Options,
    ) -> Result<Store> {
        let mut qb =
            OrderedWorkqueue::builder("kwq-store-writeback").max_in_flight(opts.max_in_flight);
        if let Some(rt) = &opts.runtime {
            qb = qb.runtime(rt);
        }
        let queue = qb
            .build()
            .map_err(|_| StoreError::Invalid("bad writeback queue settings"))?;
        let shared = Arc::new_cyclic(|weak: &Weak<Shared>| {
            let timer = opts.commit_interval.and_then(|period| {
                let mut wb = kwq::Workqueue::builder("kwq-store-commit");
                if let Some(rt) = &opts.runtime {
                    wb = wb.runtime(rt);
                }
                let wq = wb.build().ok()?;
                let weak = weak.clone();
                let dw = kwq::DelayedWork::new("kwq-store-periodic-commit", move || {
                    let Some(sh) = weak.upgrade() else { return };
                    let mut st = sh.lock_state();
                    if let Err(e) = kwq::blocking(|| sh.commit_locked(&mut st)) {
                        tracing::warn!(error = %e, "periodic commit failed");
                    }
                    drop(st);
                    if let Some((wq, dw)) = &sh.timer {
                        wq.queue_delayed(dw, period);
                    }
                });
                wq.queue_delayed(&dw, period);
                Some((wq, dw))
            });
            Shared {
                dev,
                extent_size,
                opts,
                state: Mutex::new(st),
                pin: RwLock::new(()),
                alloc: Arc::new(Mutex::new(alloc)),
                queue,
                timer,
            }
        });
        Ok(Store {
            shared,
            crashed: false,
        })
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.shared.lock_state()
    }

    /// Commits everything: on return, every change made before the call
    /// is durable.
    ///
    /// # Errors
    ///
    /// `NoSpace` or device errors; then the previous commit stays the
    /// durable state and the changes stay in memory for a later retry.
    pub fn sync(&self) -> Result<()> {
        let mut st = self.state();
        kwq::blocking(|| self.shared.commit_locked(&mut st))
    }

    /// Makes `ino`'s data and attributes durable. This commits the whole
    /// store (there is no per-file log yet).
    ///
    /// # Errors
    ///
    /// `NotFound` for an unknown inode; as [`Store::sync`].
    pub fn fsync(&self, ino: u64) -> Result<()> {
        let mut st = self.state();
        if !st.inodes.contains_key(&ino) {
            return Err(StoreError::NotFound);
        }
        kwq::blocking(|| self.shared.commit_locked(&mut st))
    }

    /// File-system statistics.
    pub fn statfs(&self) -> StatFs {
        let st = self.state();
        let a = lock(&self.shared.alloc);
        StatFs {
            block_size: BLOCK as u32,
            blocks: a.blocks(),
            free_blocks: a.free(),
            files: st.inodes.len() as u64,
            name_max: NAME_MAX as u32,
            generation: st.gen,
        }
    }

    /// The image's extent size.
    pub fn extent_size(&self) -> u32 {
        self.shared.extent_size
    }

    /// Bytes of dirty (uncommitted) file data held in memory.
    pub fn dirty_bytes(&self) -> u64 {
        self.state().dirty_bytes
    }

    /// Commits and unmounts.
    ///
    /// # Errors
    ///
    /// As [`Store::sync`]; the store is unmounted anyway.
    pub fn unmount(mut self) -> Result<()> {
        self.stop_timer();
        let r = self.sync();
        self.crashed = true;
        r
    }

    /// Drops the store without committing: the device keeps the last
    /// durable commit, as after a power cut (for tests and tools).
    pub fn crash(mut self) {
        self.stop_timer();
        self.crashed = true;
    }

    fn stop_timer(&self) {
        if let Some((_, dw)) = &self.shared.timer {
            dw.cancel_sync();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.stop_timer();
        if !self.crashed {
            if let Err(e) = self.sync() {
                tracing::warn!(error = %e, "commit at unmount failed");
            }
        }
    }
}

impl Shared {
    /// Takes the state lock. Waiting for it is announced to kwq
    /// ([`kwq::blocking`]): callers run on kwq workers too (the periodic
    /// commit; an upper store's writeback calling into this one), and a
    /// worker that sleeps on a mutex unannounced still counts as running,
    /// so the pool would not start the workers that the lock holder's
    /// commit waits for — a pool-starvation deadlock that the stacked
    /// test found.
    pub(crate) fn lock_state(&self) -> MutexGuard<'_, State> {
        match self.state.try_lock() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => kwq::blocking(|| lock(&self.state)),
        }
    }
}

fn check_level(level: i32) -> Result<()> {
    if kwq_zstd::Params::level_range().contains(&level) {
        Ok(())
    } else {
        Err(StoreError::Invalid("zstd level out of range"))
    }
}

/// Reads the metadata a superblock points at and rebuilds the allocator.
pub(crate) fn load(
    dev: &dyn Device,
    sb: &Superblock,
) -> Result<(BTreeMap<u64, Inode>, Vec<BlobPtr>, Allocator)> {
    let blocks = dev.len() / BLOCK;
    if sb.dev_blocks > blocks {
        return Err(StoreError::BadImage(format!(
            "image has {} blocks, device {blocks}",
            sb.dev_blocks
        )));
    }
    let mut alloc = Allocator::new(sb.dev_blocks, 2);
    let cross =
        |what: &str| StoreError::BadImage(format!("{what} outside the device or cross-linked"));
    if !alloc.mark(sb.index.block, sb.index.blocks()) {
        return Err(cross("metadata index"));
    }
    let index = MetaIndex::decode(&read_blob(dev, sb.index, "metadata index")?)?;
    // Sizes a valid writer never produces: refuse before allocating them.
    if index.raw_len > 1 << 32
        || index
            .pieces
            .iter()
            .any(|p| p.len as usize > crate::format::META_PIECE)
    {
        return Err(StoreError::BadImage("metadata sizes out of range".into()));
    }
    let mut packed = Vec::with_capacity(index.packed_len as usize);
    let mut meta = Vec::new();
    for p in &index.pieces {
        if !alloc.mark(p.block, p.blocks()) {
            return Err(cross("metadata piece"));
        }
        packed.extend_from_slice(&read_blob(dev, *p, "metadata")?);
        meta.push(*p);
    }
    meta.push(sb.index);
    let blob = crate::compress::unpack(
        &packed,
        index.raw_len as usize,
        "metadata",
        sb.index.block * BLOCK,
    )?;
    let inodes = decode_inodes(&blob, sb.extent_size, sb.version)?;
    for i in inodes.values() {
        if let Body::File { chunks, .. } = &i.body {
            for e in chunks.values() {
                if !alloc.mark(e.block, crate::format::blocks_for(e.disk_len as u64)) {
                    return Err(cross("data extent"));
                }
            }
        }
    }
    match inodes.get(&ROOT_INO) {
        Some(r) if matches!(r.body, Body::Dir { .. }) => {}
        _ => return Err(StoreError::BadImage("no root directory".into())),
    }
    Ok((inodes, meta, alloc))
}
