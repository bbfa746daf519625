//! The crate's error type: every way a stream can be refused, with the
//! byte offset (in the compressed input) where it went wrong.

use std::io;

/// What went wrong while compressing, decompressing or seeking.
///
/// Bad input is an expected outcome, not a bug: truncated frames, bit
/// flips, lying seek tables and decompression bombs each map to a variant
/// here, never to a panic. Offsets are byte positions in the *compressed*
/// input, counted from where the reader started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The underlying reader or writer failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The input ended inside a frame.
    #[error("truncated input: the frame starting at byte {frame_offset} ends early (input stops at byte {offset})")]
    Truncated {
        /// Start of the unfinished frame.
        frame_offset: u64,
        /// Where the input stopped.
        offset: u64,
    },
    /// The input holds no frame at all (`zstd -d` refuses it too).
    #[error("empty input: no zstd frame")]
    Empty,
    /// The bytes at `offset` are not a valid zstd or skippable frame.
    #[error("corrupt input at byte {offset}: {reason}")]
    Corrupt {
        /// Position of the offending bytes.
        offset: u64,
        /// What was wrong with them.
        reason: String,
    },
    /// libzstd refused the frame starting at `offset` (bad data,
    /// checksum mismatch, wrong dictionary...).
    #[error("zstd error in the frame at byte {offset}: {message}")]
    Zstd {
        /// Start of the frame.
        offset: u64,
        /// libzstd's explanation.
        message: String,
    },
    /// Decoding the frame at `offset` would need more memory than allowed
    /// (a huge window or content size: possibly a decompression bomb).
    #[error("the frame at byte {offset} needs {needed} bytes of memory, over the limit of {limit} (raise it with a memory limit setting)")]
    MemoryLimit {
        /// Start of the frame.
        offset: u64,
        /// Memory the frame asks for.
        needed: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The seek table is malformed or disagrees with the frames it
    /// describes.
    #[error("bad seek table: {0}")]
    SeekTable(String),
    /// A parameter given to a builder is out of range.
    #[error("invalid parameter: {0}")]
    InvalidParameter(String),
    /// The work could not be scheduled on kwq.
    #[error("kwq: {0}")]
    Kwq(String),
}

impl Error {
    pub(crate) fn corrupt(offset: u64, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            offset,
            reason: reason.into(),
        }
    }

    pub(crate) fn zstd(offset: u64, e: &io::Error) -> Self {
        Error::Zstd {
            offset,
            message: e.to_string(),
        }
    }

    /// The byte offset in the compressed input this error points at, if
    /// it has one.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Error::Truncated { frame_offset, .. } => Some(*frame_offset),
            Error::Corrupt { offset, .. }
            | Error::Zstd { offset, .. }
            | Error::MemoryLimit { offset, .. } => Some(*offset),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        match e {
            Error::Io(io) => io,
            Error::Truncated { .. } => io::Error::new(io::ErrorKind::UnexpectedEof, e),
            Error::InvalidParameter(_) => io::Error::new(io::ErrorKind::InvalidInput, e),
            Error::Kwq(_) => io::Error::other(e),
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
