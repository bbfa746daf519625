//! The store's error type and its errno mapping (for the FUSE front end).

use std::io;

/// An error from a store operation.
///
/// Each variant maps onto one POSIX errno ([`StoreError::errno`]), so a
/// FUSE front end can answer a kernel request with it directly.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No such file, directory or inode (`ENOENT`).
    #[error("no such file or directory")]
    NotFound,
    /// The name already exists (`EEXIST`).
    #[error("file exists")]
    Exists,
    /// A path component or the parent is not a directory (`ENOTDIR`).
    #[error("not a directory")]
    NotDir,
    /// The operation needs a non-directory (`EISDIR`).
    #[error("is a directory")]
    IsDir,
    /// The directory still has entries (`ENOTEMPTY`).
    #[error("directory not empty")]
    NotEmpty,
    /// The device has no room for the data or the commit (`ENOSPC`).
    #[error("no space left on device")]
    NoSpace,
    /// A bad argument (`EINVAL`); the text says which.
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    /// A name longer than [`crate::NAME_MAX`] bytes (`ENAMETOOLONG`).
    #[error("file name too long")]
    NameTooLong,
    /// The inode is not a symlink (`EINVAL` from `readlink`).
    #[error("not a symbolic link")]
    NotSymlink,
    /// No such extended attribute (`ENODATA`).
    #[error("no such extended attribute")]
    NoAttr,
    /// A checksum did not match: the bytes at `offset` (device byte offset)
    /// are not what the store wrote (`EIO`). Reads of the affected range
    /// fail; nothing else is returned in their place.
    #[error("checksum mismatch in {what} at device offset {offset}")]
    Corrupt {
        /// What was being read: "data extent", "metadata", "superblock".
        what: &'static str,
        /// Byte offset on the device.
        offset: u64,
    },
    /// The device or image is not a valid store (`EINVAL` at mount).
    #[error("not a usable kwq-store image: {0}")]
    BadImage(String),
    /// An earlier commit failed after its superblock write began; the
    /// store refuses further changes until remounted (`EIO`).
    #[error("the store is read-only after a failed commit: {0}")]
    ReadOnly(String),
    /// A device error (`EIO`, or the device's own errno).
    #[error("device I/O error: {0}")]
    Io(#[source] io::Error),
}

impl StoreError {
    /// The POSIX errno for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Self::NotFound => libc::ENOENT,
            Self::Exists => libc::EEXIST,
            Self::NotDir => libc::ENOTDIR,
            Self::IsDir => libc::EISDIR,
            Self::NotEmpty => libc::ENOTEMPTY,
            Self::NoSpace => libc::ENOSPC,
            Self::Invalid(_) | Self::NotSymlink | Self::BadImage(_) => libc::EINVAL,
            Self::NameTooLong => libc::ENAMETOOLONG,
            Self::NoAttr => libc::ENODATA,
            Self::Corrupt { .. } | Self::ReadOnly(_) => libc::EIO,
            Self::Io(e) => e.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    /// True for [`StoreError::NoSpace`], including a device that ran out of
    /// room (a loop device whose lower store is full).
    pub fn is_no_space(&self) -> bool {
        self.errno() == libc::ENOSPC
    }

    /// Converts the error into an [`io::Error`] carrying its errno, as a
    /// device built on a store ([`crate::StoreFileDevice`]) reports it.
    pub fn into_io(self) -> io::Error {
        match self {
            Self::Io(e) => e,
            other => io::Error::from_raw_os_error(other.errno()),
        }
    }
}

impl From<io::Error> for StoreError {
    fn from(e: io::Error) -> Self {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            Self::NoSpace
        } else {
            Self::Io(e)
        }
    }
}

/// Result alias of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
