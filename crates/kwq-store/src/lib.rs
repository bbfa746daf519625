//! A copy-on-write, compressing filesystem core on kwq workqueues: the
//! write path of a Btrfs-like store with `compress-force=zstd`, as a
//! library, so a whole stack of stores runs in one process.
//!
//! # Mental model
//!
//! * A [`Store`] holds inodes — files, directories, symlinks, hard links,
//!   xattrs — on a [`Device`]. Its API is a VFS: inode numbers, `lookup`,
//!   `create`, `read_at`, `write_at`, `rename`, ... (one call per FUSE
//!   request).
//! * Writes land in a dirty cache of whole chunks. A *commit* writes them
//!   back (compressing chunks in parallel and writing them in order on a
//!   kwq [`OrderedWorkqueue`](kwq::ordered::OrderedWorkqueue)), then the
//!   metadata, then a superblock. Nothing live is overwritten: every commit
//!   writes to fresh blocks.
//! * A device can be a host file ([`FileDevice`]), memory ([`MemDevice`]),
//!   a power-cut simulator ([`FaultyDevice`]), or a file in another store
//!   ([`StoreFileDevice`]) — the loop device that stacks stores.
//!
//! # Guarantees
//!
//! | | guarantee |
//! |---|---|
//! | ST-1 | after a power cut, the store mounts as of its last durable commit, exactly (`sync`/`fsync` return only once it is durable) |
//! | ST-2 | a block reachable from a durable superblock is never overwritten; freed space is reused only after the superblock that frees it is durable |
//! | ST-3 | every data extent, metadata piece and superblock carries a crc32c; a mismatch is an error on that read (`EIO`), never other bytes, never a panic |
//! | ST-4 | a failed commit (`ENOSPC`, `EIO`) leaves the previous commit durable and the changes in memory; the store stays usable |
//! | ST-5 | operations are linearizable: each takes the store's state lock for its whole duration, except that a read decompresses after dropping it (linearized at its snapshot; a read pin keeps its blocks from reuse) |
//! | ST-6 | inode numbers are never reused; an unlinked inode lives while looked up or open |
//!
//! The on-disk format is in `format.rs`; the commit protocol in
//! `store/commit.rs`; the allocator rule in `alloc.rs`; design notes and
//! measurements in `docs/store.md`.
//!
//! # What this is not (yet)
//!
//! Not a B-tree: each commit rewrites the whole (compressed) namespace,
//! which is fine to about 10⁵ inodes. There is no per-file log, so `fsync`
//! commits everything. Writes are serialized by the state lock, and a
//! commit holds it throughout (writers wait: that is the throttle); reads
//! take it only to find their chunks, and decompress outside it.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod alloc;
mod compress;
mod device;
mod error;
mod faulty;
mod format;
mod fsck;
mod inode;
mod stack;
mod store;

pub use device::{Device, FileDevice, MemDevice};
pub use error::{Result, StoreError};
pub use faulty::{FaultyDevice, Rng};
pub use format::{BLOCK, VERSION};
pub use fsck::{fsck, FsckReport};
pub use inode::{Attr, DirEntry, FileKind, SetAttr, StatFs, Timestamp, INLINE_MAX, ROOT_INO};
pub use stack::StoreFileDevice;
pub use store::{Options, Store, DEFAULT_EXTENT_SIZE, MAX_FILE_SIZE};

/// Longest file or xattr name, in bytes.
pub const NAME_MAX: usize = 255;
