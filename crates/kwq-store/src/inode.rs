//! Inodes as the store keeps them in memory and on disk, and the
//! attribute types of the public API.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// The root directory's inode number.
pub const ROOT_INO: u64 = 1;

/// Largest file whose data is stored *inline*: inside the metadata, which
/// is compressed as one stream, instead of in an extent of whole blocks
/// (Btrfs inlines small files into its metadata too). A file is inlined
/// when it is at most this size as its first chunk is written back.
pub const INLINE_MAX: u64 = 4095;

/// The kind of an inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link.
    Symlink,
}

impl FileKind {
    pub(crate) fn code(self) -> u8 {
        match self {
            Self::File => 1,
            Self::Dir => 2,
            Self::Symlink => 3,
        }
    }
}

/// A point in time, seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Timestamp {
    /// Whole seconds since the epoch (negative before it).
    pub secs: i64,
    /// Nanoseconds within the second, `0..1_000_000_000`.
    pub nanos: u32,
}

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => Self {
                secs: d.as_secs() as i64,
                nanos: d.subsec_nanos(),
            },
            Err(_) => Self::default(),
        }
    }
}

/// A data extent: one chunk of a file, stored (possibly compressed) in
/// `blocks` consecutive device blocks from `block`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Extent {
    /// First device block.
    pub block: u64,
    /// Bytes stored on the device (compressed or raw); `blocks` is this
    /// rounded up to the block size.
    pub disk_len: u32,
    /// Bytes of file data the extent holds (≤ the image's extent size).
    pub logical_len: u32,
    /// True when the stored bytes are a zstd frame.
    pub compressed: bool,
    /// crc32c of the `disk_len` stored bytes.
    pub crc: u32,
    /// Generation of the commit that wrote it.
    pub gen: u64,
}

/// What an inode holds, by kind.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    File {
        size: u64,
        /// Chunk index (file offset / extent size) → extent. A missing
        /// chunk is a hole.
        chunks: BTreeMap<u64, Extent>,
        /// Chunk 0's bytes kept in the metadata instead of an extent (a
        /// file of at most [`INLINE_MAX`] bytes at its last write-back);
        /// bytes past its end read as zeros. Empty: none. Never together
        /// with an extent for chunk 0.
        inline: Vec<u8>,
    },
    Dir {
        parent: u64,
        entries: BTreeMap<Vec<u8>, u64>,
    },
    Symlink {
        target: Vec<u8>,
    },
}

/// An inode.
#[derive(Debug, Clone)]
pub(crate) struct Inode {
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
    pub body: Body,
    /// In memory only: outstanding `lookup`s not yet forgotten.
    pub lookups: u64,
    /// In memory only: open handles.
    pub opens: u64,
}

impl Inode {
    pub(crate) fn new(body: Body, perm: u32, uid: u32, gid: u32) -> Self {
        let now = Timestamp::now();
        Self {
            perm: perm & 0o7777,
            uid,
            gid,
            nlink: 1,
            atime: now,
            mtime: now,
            ctime: now,
            xattrs: BTreeMap::new(),
            body,
            lookups: 0,
            opens: 0,
        }
    }

    pub(crate) fn kind(&self) -> FileKind {
        match self.body {
            Body::File { .. } => FileKind::File,
            Body::Dir { .. } => FileKind::Dir,
            Body::Symlink { .. } => FileKind::Symlink,
        }
    }

    pub(crate) fn size(&self) -> u64 {
        match &self.body {
            Body::File { size, .. } => *size,
            Body::Dir { entries, .. } => entries.len() as u64,
            Body::Symlink { target } => target.len() as u64,
        }
    }
}

/// Attributes of an inode (`stat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Inode number; stable for the inode's lifetime, never reused.
    pub ino: u64,
    /// File kind.
    pub kind: FileKind,
    /// Permission bits (`mode & 0o7777`).
    pub perm: u32,
    /// Hard links (directories: 2 + subdirectories).
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (directories: entry count; symlinks: target length).
    pub size: u64,
    /// Device bytes used by the inode's committed extents (whole blocks),
    /// plus its inline bytes (stored in the metadata, compressed with it,
    /// so this counts them before compression).
    pub disk_bytes: u64,
    /// Last access.
    pub atime: Timestamp,
    /// Last data change.
    pub mtime: Timestamp,
    /// Last inode change.
    pub ctime: Timestamp,
}

/// Changes for [`Store::setattr`](crate::Store::setattr); `None` leaves a
/// field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// New permission bits.
    pub perm: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (regular files only): truncates or extends with a hole.
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<Timestamp>,
    /// New modification time.
    pub mtime: Option<Timestamp>,
}

/// One directory entry from [`Store::readdir`](crate::Store::readdir).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Entry name (bytes, no `/` or NUL).
    pub name: Vec<u8>,
    /// Inode the entry names.
    pub ino: u64,
    /// Its kind.
    pub kind: FileKind,
}

/// File-system statistics (`statfs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatFs {
    /// Block size in bytes.
    pub block_size: u32,
    /// Blocks on the device.
    pub blocks: u64,
    /// Free blocks (space held until the next commit counts as used).
    pub free_blocks: u64,
    /// Inodes in use.
    pub files: u64,
    /// Longest name.
    pub name_max: u32,
    /// Generation of the last durable commit.
    pub generation: u64,
}
