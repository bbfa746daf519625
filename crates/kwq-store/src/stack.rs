//! A file inside a store used as another store's device: the loop device.
//!
//! Reads and writes go through the lower store's `read_at` / `write_at`,
//! `flush` is the lower store's `fsync` (a full lower commit). The file
//! is held open for the device's lifetime, so it survives an unlink. An
//! `ENOSPC` of the lower store reaches the upper store as an `io::Error`
//! carrying `ENOSPC`, which the upper store reports as
//! [`StoreError::NoSpace`](crate::StoreError::NoSpace).

use std::io;
use std::sync::Arc;

use crate::device::Device;
use crate::error::Result;
use crate::store::Store;

/// A regular file of a (lower) store, seen as a device of fixed length.
#[derive(Debug)]
pub struct StoreFileDevice {
    store: Arc<Store>,
    ino: u64,
    len: u64,
}

impl StoreFileDevice {
    /// Uses file `ino` of `store`, at its current size, as a device.
    ///
    /// # Errors
    ///
    /// `NotFound`, or `IsDir` / `Invalid` for a non-file.
    pub fn new(store: Arc<Store>, ino: u64) -> Result<Self> {
        let attr = store.getattr(ino)?;
        if attr.kind != crate::FileKind::File {
            return Err(crate::StoreError::Invalid(
                "a loop device needs a regular file",
            ));
        }
        store.open(ino)?;
        Ok(Self {
            store,
            ino,
            len: attr.size,
        })
    }

    /// Creates `name` in directory `parent` of `store`, `len` bytes long (a
    /// hole: no space used until written), and uses it as a device.
    ///
    /// # Errors
    ///
    /// As [`Store::create`] and [`Store::truncate`].
    pub fn create(store: Arc<Store>, parent: u64, name: &[u8], len: u64) -> Result<Self> {
        let attr = store.create(parent, name, 0o600, 0, 0)?;
        store.truncate(attr.ino, len)?;
        Self::new(store, attr.ino)
    }

    /// The lower store.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The file's inode number in the lower store.
    pub fn ino(&self) -> u64 {
        self.ino
    }
}

impl Device for StoreFileDevice {
    fn read_at(&self, buf: &mut [u8], off: u64) -> io::Result<()> {
        crate::device::check_range(self.len, off, buf.len())?;
        let n = self
            .store
            .read_at(self.ino, off, buf)
            .map_err(|e| e.into_io())?;
        if n != buf.len() {
            // The file shrank under the device: read as end of device.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "loop file shrank",
            ));
        }
        Ok(())
    }

    fn write_at(&self, buf: &[u8], off: u64) -> io::Result<()> {
        crate::device::check_range(self.len, off, buf.len())?;
        self.store
            .write_at(self.ino, off, buf)
            .map_err(|e| e.into_io())?;
        Ok(())
    }

    fn flush(&self) -> io::Result<()> {
        self.store.fsync(self.ino).map_err(|e| e.into_io())
    }

    fn len(&self) -> u64 {
        self.len
    }
}

impl Drop for StoreFileDevice {
    fn drop(&mut self) {
        self.store.release(self.ino);
    }
}
