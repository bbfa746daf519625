//! The kwq-store targets of W5: one store on a host file, or an upper
//! store whose device is a file inside a lower store (both on one kwq
//! runtime whose concurrency is `--threads`).
//!
//! Dropping caches unmounts both stores (upper first, each commits); the
//! read phase mounts them again from their images, so every extent is read
//! from the device and decompressed again.

use super::Target;
use crate::{Failure, Report};
use kwq_store::{Device, FileDevice, Options, Store, StoreError, StoreFileDevice, ROOT_INO};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Name of the upper image inside the lower store.
const UPPER_IMG: &[u8] = b"upper.img";

fn err(what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::Check(format!("kwq-store: {what}: {e}"))
}

/// The mounted stores.
struct Mounted {
    lower: Arc<Store>,
    /// Stacked only: the loop device (a file of `lower`) and the store on it.
    upper: Option<Store>,
}

impl Mounted {
    /// The store the corpus is written into.
    fn top(&self) -> &Store {
        self.upper.as_ref().unwrap_or(&self.lower)
    }

    /// Unmounts upper then lower, each with a final commit.
    fn unmount(self) -> Result<(), Failure> {
        if let Some(up) = self.upper {
            up.unmount()
                .map_err(|e| err("unmounting the upper store", e))?;
        }
        // The upper store held the loop device, which held the lower store.
        let lower = Arc::try_unwrap(self.lower)
            .map_err(|_| Failure::Check("kwq-store: the lower store is still in use".into()))?;
        lower
            .unmount()
            .map_err(|e| err("unmounting the lower store", e))
    }
}

/// W5's kwq-store and kwq-store-stacked.
pub(crate) struct StoreTarget {
    image: PathBuf,
    stacked: bool,
    lower_len: u64,
    upper_len: u64,
    opts: Options,
    stores: Option<Mounted>,
    /// Directory and multi-piece file inodes by path, filled while setting up.
    inos: HashMap<String, u64>,
    empty_used: u64,
    seconds_mount: f64,
}

impl StoreTarget {
    /// Formats the store(s) in `dir`, sized for `in_bytes` of input that
    /// might not compress at all.
    pub(crate) fn new(
        dir: &Path,
        stacked: bool,
        in_bytes: u64,
        level: i32,
        extent: Option<u32>,
        threads: usize,
    ) -> Result<Self, Failure> {
        let rt = kwq::RuntimeBuilder::new()
            .concurrency(threads)
            .build()
            .map_err(|e| err("building the kwq runtime", e))?;
        let mut opts = Options::default().level(level).runtime(&rt);
        if let Some(e) = extent {
            opts = opts.extent_size(e);
        }
        // Incompressible input plus copy-on-write slack; the images are
        // sparse, so unused room costs nothing.
        let upper_len = round_up(in_bytes + in_bytes / 2 + (256 << 20));
        let lower_len = round_up(upper_len + in_bytes / 2 + (256 << 20));
        let image = dir.join("lower.img");
        let dev = FileDevice::create(&image, lower_len).map_err(|e| err("lower image", e))?;
        let lower =
            Arc::new(Store::format(Arc::new(dev), opts.clone()).map_err(|e| err("format", e))?);
        let upper = if stacked {
            let lo = StoreFileDevice::create(lower.clone(), ROOT_INO, UPPER_IMG, upper_len)
                .map_err(|e| err("upper image file", e))?;
            let up = Store::format(Arc::new(lo) as Arc<dyn Device>, opts.clone())
                .map_err(|e| err("format upper", e))?;
            Some(up)
        } else {
            None
        };
        let stores = Mounted { lower, upper };
        stores.top().sync().map_err(|e| err("sync", e))?;
        let empty_used = used_bytes(stores.top());
        Ok(Self {
            image,
            stacked,
            lower_len,
            upper_len,
            opts,
            stores: Some(stores),
            inos: HashMap::new(),
            empty_used,
            seconds_mount: 0.0,
        })
    }

    fn top(&self) -> Result<&Store, Failure> {
        self.stores
            .as_ref()
            .map(Mounted::top)
            .ok_or_else(|| Failure::Check("kwq-store: not mounted".into()))
    }

    /// The inode of `path`'s parent directory and its last component.
    fn parent<'p>(&self, path: &'p str) -> Result<(u64, &'p str), Failure> {
        match path.rsplit_once('/') {
            Some((dir, name)) => {
                let ino =
                    self.inos.get(dir).copied().ok_or_else(|| {
                        Failure::Check(format!("kwq-store: {dir} was not created"))
                    })?;
                Ok((ino, name))
            }
            None => Ok((ROOT_INO, path)),
        }
    }

    /// Mounts the image(s) again.
    fn mount_images(&self) -> Result<Mounted, Failure> {
        let dev = FileDevice::open(&self.image).map_err(|e| err("opening the image", e))?;
        let lower =
            Arc::new(Store::mount(Arc::new(dev), self.opts.clone()).map_err(|e| err("mount", e))?);
        let upper = if self.stacked {
            let ino = lower
                .resolve(std::str::from_utf8(UPPER_IMG).unwrap_or("upper.img"))
                .map_err(|e| err("finding the upper image", e))?;
            let lo = StoreFileDevice::new(lower.clone(), ino).map_err(|e| err("loop file", e))?;
            let up = Store::mount(Arc::new(lo) as Arc<dyn Device>, self.opts.clone())
                .map_err(|e| err("mount upper", e))?;
            Some(up)
        } else {
            None
        };
        Ok(Mounted { lower, upper })
    }
}

/// Bytes in used blocks (space held until the next commit counts).
fn used_bytes(s: &Store) -> u64 {
    let st = s.statfs();
    (st.blocks - st.free_blocks) * u64::from(st.block_size)
}

fn round_up(n: u64) -> u64 {
    n.div_ceil(1 << 20) << 20
}

fn write_all(s: &Store, ino: u64, off: u64, data: &[u8]) -> Result<(), StoreError> {
    let mut done = 0;
    while done < data.len() {
        let n = s.write_at(ino, off + done as u64, &data[done..])?;
        if n == 0 {
            return Err(StoreError::Invalid("a write made no progress"));
        }
        done += n;
    }
    Ok(())
}

impl Target for StoreTarget {
    fn mkdir(&mut self, path: &str) -> Result<(), Failure> {
        let (parent, name) = self.parent(path)?;
        let ino = self
            .top()?
            .mkdir(parent, name.as_bytes(), 0o755, 0, 0)
            .map_err(|e| err(&format!("mkdir {path}"), e))?
            .ino;
        self.inos.insert(path.to_string(), ino);
        Ok(())
    }

    fn create(&mut self, path: &str) -> Result<(), Failure> {
        let (parent, name) = self.parent(path)?;
        let ino = self
            .top()?
            .create(parent, name.as_bytes(), 0o644, 0, 0)
            .map_err(|e| err(&format!("create {path}"), e))?
            .ino;
        self.inos.insert(path.to_string(), ino);
        Ok(())
    }

    fn write(&self, path: &str, create: bool, off: u64, data: &[u8]) -> Result<(), Failure> {
        let s = self.top()?;
        let ino = if create {
            let (parent, name) = self.parent(path)?;
            s.create(parent, name.as_bytes(), 0o644, 0, 0)
                .map_err(|e| err(&format!("create {path}"), e))?
                .ino
        } else {
            self.inos
                .get(path)
                .copied()
                .ok_or_else(|| Failure::Check(format!("kwq-store: {path} was not created")))?
        };
        write_all(s, ino, off, data).map_err(|e| err(&format!("write {path}"), e))
    }

    fn sync(&mut self) -> Result<(), Failure> {
        let m = self
            .stores
            .as_ref()
            .ok_or_else(|| Failure::Check("kwq-store: not mounted".into()))?;
        // The upper commit flushes its device, which commits the lower store;
        // the lower sync then finds nothing left unless the lower changed.
        m.top().sync().map_err(|e| err("sync", e))?;
        m.lower.sync().map_err(|e| err("sync lower", e))
    }

    fn stored_bytes(&mut self) -> Result<u64, Failure> {
        Ok(used_bytes(self.top()?).saturating_sub(self.empty_used))
    }

    fn unmount(&mut self) -> Result<(), Failure> {
        if let Some(m) = self.stores.take() {
            m.unmount()?;
        }
        self.inos.clear();
        Ok(())
    }

    fn mount(&mut self) -> Result<(), Failure> {
        let t = Instant::now();
        self.stores = Some(self.mount_images()?);
        self.seconds_mount = t.elapsed().as_secs_f64();
        Ok(())
    }

    fn read(&self, path: &str, off: u64, buf: &mut [u8]) -> Result<(), Failure> {
        let s = self.top()?;
        let ino = s
            .resolve(path)
            .map_err(|e| err(&format!("lookup {path}"), e))?;
        let n = s
            .read_at(ino, off, buf)
            .map_err(|e| err(&format!("read {path}"), e))?;
        if n != buf.len() {
            return Err(Failure::Check(format!(
                "kwq-store: {path}: short read at {off} ({n} of {} bytes)",
                buf.len()
            )));
        }
        Ok(())
    }

    fn describe(&self, r: &mut Report) {
        if let Ok(s) = self.top() {
            r.int("extent_kib", u64::from(s.extent_size() / 1024));
        }
        r.int(
            "image_bytes",
            if self.stacked {
                self.upper_len
            } else {
                self.lower_len
            },
        )
        .float("seconds_mount", self.seconds_mount);
        if let Ok(meta) = std::fs::metadata(&self.image) {
            use std::os::unix::fs::MetadataExt as _;
            r.int("host_image_bytes", meta.blocks() * 512);
        }
    }
}

impl Drop for StoreTarget {
    fn drop(&mut self) {
        // Unmount before the temporary directory goes. A failed final
        // commit only matters to a run that already failed; say so anyway.
        if let Some(m) = self.stores.take() {
            if let Err(Failure::Check(e) | Failure::Usage(e)) = m.unmount() {
                eprintln!("kwq-bench: warning: {e}");
            }
        }
    }
}
