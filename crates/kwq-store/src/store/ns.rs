//! Namespace operations: lookup, create, mkdir, symlink, link, unlink,
//! rmdir, rename, readdir, readlink, attributes, xattrs, handles.
//!
//! Link counts: a file or symlink has one per name; a directory has 2 plus
//! one per subdirectory (its `..`). An inode whose count reaches 0 stays in
//! memory while it has lookups or open handles (unlink of an open file),
//! is never written to a commit, and is destroyed — its extents released
//! by the allocator rule — when the last of them goes.

use std::collections::BTreeMap;

use crate::error::{Result, StoreError};
use crate::inode::{Attr, Body, DirEntry, FileKind, Inode, SetAttr, Timestamp, ROOT_INO};
use crate::NAME_MAX;

use super::{State, Store};

fn check_name(name: &[u8]) -> Result<()> {
    if name.len() > NAME_MAX {
        return Err(StoreError::NameTooLong);
    }
    if name.is_empty() || name == b"." || name == b".." || name.iter().any(|&b| b == b'/' || b == 0)
    {
        return Err(StoreError::Invalid("bad file name"));
    }
    Ok(())
}

impl State {
    pub(crate) fn inode(&self, ino: u64) -> Result<&Inode> {
        self.inodes.get(&ino).ok_or(StoreError::NotFound)
    }

    pub(crate) fn inode_mut(&mut self, ino: u64) -> Result<&mut Inode> {
        self.inodes.get_mut(&ino).ok_or(StoreError::NotFound)
    }

    fn entries(&self, dir: u64) -> Result<&BTreeMap<Vec<u8>, u64>> {
        match &self.inode(dir)?.body {
            Body::Dir { entries, .. } => Ok(entries),
            _ => Err(StoreError::NotDir),
        }
    }

    /// A directory that may gain entries: it exists, is a directory, and
    /// has not been removed (an open, removed directory stays empty).
    fn live_dir(&self, dir: u64) -> Result<&BTreeMap<Vec<u8>, u64>> {
        let entries = self.entries(dir)?;
        if self.inode(dir)?.nlink == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(entries)
    }

    fn entries_mut(&mut self, dir: u64) -> Result<&mut BTreeMap<Vec<u8>, u64>> {
        match &mut self.inode_mut(dir)?.body {
            Body::Dir { entries, .. } => Ok(entries),
            _ => Err(StoreError::NotDir),
        }
    }

    pub(crate) fn attr(&self, ino: u64) -> Result<Attr> {
        let i = self.inode(ino)?;
        let disk_bytes = match &i.body {
            Body::File { chunks, inline, .. } => {
                chunks
                    .values()
                    .map(|e| crate::format::blocks_for(e.disk_len as u64) * crate::format::BLOCK)
                    .sum::<u64>()
                    + inline.len() as u64
            }
            _ => 0,
        };
        Ok(Attr {
            ino,
            kind: i.kind(),
            perm: i.perm,
            nlink: i.nlink,
            uid: i.uid,
            gid: i.gid,
            size: i.size(),
            disk_bytes,
            atime: i.atime,
            mtime: i.mtime,
            ctime: i.ctime,
        })
    }

    fn touch_dir(&mut self, dir: u64) {
        if let Some(d) = self.inodes.get_mut(&dir) {
            let now = Timestamp::now();
            d.mtime = now;
            d.ctime = now;
        }
    }

    /// Adds a new inode under `parent/name`.
    fn add(&mut self, parent: u64, name: &[u8], mut inode: Inode) -> Result<u64> {
        check_name(name)?;
        if self.live_dir(parent)?.contains_key(name) {
            return Err(StoreError::Exists);
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let is_dir = matches!(inode.body, Body::Dir { .. });
        if let Body::Dir { parent: p, .. } = &mut inode.body {
            *p = parent;
            inode.nlink = 2;
        }
        self.inodes.insert(ino, inode);
        self.entries_mut(parent)?.insert(name.to_vec(), ino);
        if is_dir {
            self.inode_mut(parent)?.nlink += 1;
        }
        self.touch_dir(parent);
        self.changed = true;
        Ok(ino)
    }

    /// Destroys `ino` if nothing refers to it any more.
    pub(crate) fn maybe_destroy(&mut self, store: &super::Shared, ino: u64) {
        let dead = self
            .inodes
            .get(&ino)
            .is_some_and(|i| i.nlink == 0 && i.lookups == 0 && i.opens == 0);
        if !dead {
            return;
        }
        let Some(inode) = self.inodes.remove(&ino) else {
            return;
        };
        if let Body::File { chunks, .. } = &inode.body {
            for e in chunks.values() {
                store.release_extent(self, e);
            }
        }
        self.drop_dirty(ino, 0);
        // Its space is released by the next commit.
        self.changed = true;
    }

    /// Drops dirty chunks of `ino` from chunk `from` on.
    pub(crate) fn drop_dirty(&mut self, ino: u64, from: u64) {
        let keys: Vec<_> = self
            .dirty
            .range((ino, from)..=(ino, u64::MAX))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            if let Some(b) = self.dirty.remove(&k) {
                self.dirty_bytes -= b.len() as u64;
            }
        }
    }

    /// Is `anc` equal to `ino` or one of its ancestors?
    fn is_ancestor(&self, anc: u64, mut ino: u64) -> bool {
        loop {
            if ino == anc {
                return true;
            }
            match self.inodes.get(&ino).map(|i| &i.body) {
                Some(Body::Dir { parent, .. }) if *parent != ino => ino = *parent,
                _ => return false,
            }
        }
    }

    /// Drops one name's link on `ino` (unlink, rmdir, rename-over).
    fn unlink_inode(&mut self, store: &super::Shared, parent: u64, ino: u64) {
        let now = Timestamp::now();
        let is_dir = matches!(
            self.inodes.get(&ino).map(|i| &i.body),
            Some(Body::Dir { .. })
        );
        if let Some(i) = self.inodes.get_mut(&ino) {
            i.nlink = if is_dir { 0 } else { i.nlink.saturating_sub(1) };
            i.ctime = now;
        }
        if is_dir {
            if let Some(p) = self.inodes.get_mut(&parent) {
                p.nlink -= 1;
            }
        }
        self.maybe_destroy(store, ino);
    }
}

impl Store {
    /// The attributes of `ino`.
    ///
    /// # Errors
    ///
    /// `NotFound`.
    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        self.state().attr(ino)
    }

    /// Looks `name` up in directory `parent` and counts one lookup on the
    /// result (FUSE semantics; see [`Store::forget`]). Use
    /// [`Store::resolve`] for uncounted path walks.
    ///
    /// # Errors
    ///
    /// `NotFound`, `NotDir`, `NameTooLong`.
    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr> {
        let mut st = self.state();
        let ino = lookup_in(&st, parent, name)?;
        st.inode_mut(ino)?.lookups += 1;
        st.attr(ino)
    }

    /// Forgets `n` lookups of `ino`; an unlinked inode is destroyed when its
    /// lookups and open handles are gone.
    pub fn forget(&self, ino: u64, n: u64) {
        let mut st = self.state();
        if let Some(i) = st.inodes.get_mut(&ino) {
            i.lookups = i.lookups.saturating_sub(n);
            st.maybe_destroy(&self.shared, ino);
        }
    }

    /// Opens `ino`: while open, it survives being unlinked.
    ///
    /// # Errors
    ///
    /// `NotFound`.
    pub fn open(&self, ino: u64) -> Result<()> {
        self.state().inode_mut(ino)?.opens += 1;
        Ok(())
    }

    /// Releases one open handle of `ino`.
    pub fn release(&self, ino: u64) {
        let mut st = self.state();
        if let Some(i) = st.inodes.get_mut(&ino) {
            i.opens = i.opens.saturating_sub(1);
            st.maybe_destroy(&self.shared, ino);
        }
    }

    /// Walks a `/`-separated path from the root without counting lookups;
    /// symlinks are not followed.
    ///
    /// # Errors
    ///
    /// `NotFound`, `NotDir`, `NameTooLong`.
    pub fn resolve(&self, path: &str) -> Result<u64> {
        let st = self.state();
        let mut ino = ROOT_INO;
        for c in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
            ino = lookup_in(&st, ino, c.as_bytes())?;
        }
        Ok(ino)
    }

    /// Creates an empty regular file.
    ///
    /// # Errors
    ///
    /// `Exists`, `NotDir`, `NotFound`, `NameTooLong`, `Invalid`.
    pub fn create(&self, parent: u64, name: &[u8], perm: u32, uid: u32, gid: u32) -> Result<Attr> {
        let mut st = self.state();
        let body = Body::File {
            size: 0,
            chunks: BTreeMap::new(),
            inline: Vec::new(),
        };
        let ino = st.add(parent, name, Inode::new(body, perm, uid, gid))?;
        st.attr(ino)
    }

    /// Creates a directory.
    ///
    /// # Errors
    ///
    /// As [`Store::create`].
    pub fn mkdir(&self, parent: u64, name: &[u8], perm: u32, uid: u32, gid: u32) -> Result<Attr> {
        let mut st = self.state();
        let body = Body::Dir {
            parent,
            entries: BTreeMap::new(),
        };
        let ino = st.add(parent, name, Inode::new(body, perm, uid, gid))?;
        st.attr(ino)
    }

    /// Creates a symbolic link to `target`.
    ///
    /// # Errors
    ///
    /// As [`Store::create`]; `Invalid` for an empty or over-long target.
    pub fn symlink(
        &self,
        parent: u64,
        name: &[u8],
        target: &[u8],
        uid: u32,
        gid: u32,
    ) -> Result<Attr> {
        if target.is_empty() || target.len() > 4096 {
            return Err(StoreError::Invalid("symlink target must be 1..=4096 bytes"));
        }
        let mut st = self.state();
        let body = Body::Symlink {
            target: target.to_vec(),
        };
        let ino = st.add(parent, name, Inode::new(body, 0o777, uid, gid))?;
        st.attr(ino)
    }

    /// The target of symlink `ino`.
    ///
    /// # Errors
    ///
    /// `NotFound`, `NotSymlink`.
    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        match &self.state().inode(ino)?.body {
            Body::Symlink { target } => Ok(target.clone()),
            _ => Err(StoreError::NotSymlink),
        }
    }

    /// Adds the name `newparent/newname` for the non-directory `ino`.
    ///
    /// # Errors
    ///
    /// `IsDir` for a directory (`EPERM` in POSIX; this store reports
    /// `EISDIR`), `Exists`, `NotDir`, `NotFound`.
    pub fn link(&self, ino: u64, newparent: u64, newname: &[u8]) -> Result<Attr> {
        let mut st = self.state();
        check_name(newname)?;
        let i = st.inode(ino)?;
        if i.kind() == FileKind::Dir {
            return Err(StoreError::IsDir);
        }
        if i.nlink == 0 {
            return Err(StoreError::NotFound);
        }
        if st.live_dir(newparent)?.contains_key(newname) {
            return Err(StoreError::Exists);
        }
        st.entries_mut(newparent)?.insert(newname.to_vec(), ino);
        let i = st.inode_mut(ino)?;
        i.nlink += 1;
        i.ctime = Timestamp::now();
        st.touch_dir(newparent);
        st.changed = true;
        st.attr(ino)
    }

    /// Removes a non-directory name.
    ///
    /// # Errors
    ///
    /// `NotFound`, `NotDir` (parent), `IsDir` (the name is a directory).
    pub fn unlink(&self, parent: u64, name: &[u8]) -> Result<()> {
        let mut st = self.state();
        let ino = lookup_in(&st, parent, name)?;
        if st.inode(ino)?.kind() == FileKind::Dir {
            return Err(StoreError::IsDir);
        }
        st.entries_mut(parent)?.remove(name);
        st.touch_dir(parent);
        st.unlink_inode(&self.shared, parent, ino);
        st.changed = true;
        Ok(())
    }

    /// Removes an empty directory.
    ///
    /// # Errors
    ///
    /// `NotFound`, `NotDir`, `NotEmpty`.
    pub fn rmdir(&self, parent: u64, name: &[u8]) -> Result<()> {
        let mut st = self.state();
        let ino = lookup_in(&st, parent, name)?;
        if !st.entries(ino)?.is_empty() {
            return Err(StoreError::NotEmpty);
        }
        st.entries_mut(parent)?.remove(name);
        st.touch_dir(parent);
        st.unlink_inode(&self.shared, parent, ino);
        st.changed = true;
        Ok(())
    }

    /// Renames `parent/name` to `newparent/newname`, replacing a target
    /// that exists (a non-directory by a non-directory, an empty directory
    /// by a directory). Renaming a name onto another name of the same inode
    /// does nothing.
    ///
    /// # Errors
    ///
    /// `NotFound`, `NotDir`, `IsDir`, `NotEmpty`, and `Invalid` when a
    /// directory would move into its own subtree.
    pub fn rename(&self, parent: u64, name: &[u8], newparent: u64, newname: &[u8]) -> Result<()> {
        let mut st = self.state();
        check_name(newname)?;
        let ino = lookup_in(&st, parent, name)?;
        st.live_dir(newparent)?;
        let src_dir = st.inode(ino)?.kind() == FileKind::Dir;
        if src_dir && st.is_ancestor(ino, newparent) {
            return Err(StoreError::Invalid("cannot move a directory into itself"));
        }
        let target = st.entries(newparent)?.get(newname).copied();
        if let Some(t) = target {
            if t == ino {
                return Ok(());
            }
            let t_dir = st.inode(t)?.kind() == FileKind::Dir;
            match (src_dir, t_dir) {
                (true, false) => return Err(StoreError::NotDir),
                (false, true) => return Err(StoreError::IsDir),
                (true, true) if !st.entries(t)?.is_empty() => return Err(StoreError::NotEmpty),
                _ => {}
            }
        }
        st.entries_mut(parent)?.remove(name);
        if let Some(t) = target {
            st.entries_mut(newparent)?.remove(newname);
            st.unlink_inode(&self.shared, newparent, t);
        }
        st.entries_mut(newparent)?.insert(newname.to_vec(), ino);
        if src_dir && parent != newparent {
            st.inode_mut(parent)?.nlink -= 1;
            st.inode_mut(newparent)?.nlink += 1;
            if let Body::Dir { parent: p, .. } = &mut st.inode_mut(ino)?.body {
                *p = newparent;
            }
        }
        st.inode_mut(ino)?.ctime = Timestamp::now();
        st.touch_dir(parent);
        st.touch_dir(newparent);
        st.changed = true;
        Ok(())
    }

    /// The entries of directory `ino`, in name order (`.` and `..` are not
    /// listed; the parent is [`Store::parent`]).
    ///
    /// # Errors
    ///
    /// `NotFound`, `NotDir`.
    pub fn readdir(&self, ino: u64) -> Result<Vec<DirEntry>> {
        let st = self.state();
        let entries = st.entries(ino)?;
        Ok(entries
            .iter()
            .map(|(name, &i)| DirEntry {
                name: name.clone(),
                ino: i,
                kind: st.inodes.get(&i).map_or(FileKind::File, |n| n.kind()),
            })
            .collect())
    }

    /// The parent of directory `ino` (the root is its own parent).
    ///
    /// # Errors
    ///
    /// `NotFound`, `NotDir`.
    pub fn parent(&self, ino: u64) -> Result<u64> {
        match &self.state().inode(ino)?.body {
            Body::Dir { parent, .. } => Ok(*parent),
            _ => Err(StoreError::NotDir),
        }
    }

    /// Changes attributes; a size change truncates or extends the file.
    ///
    /// # Errors
    ///
    /// `NotFound`; `IsDir` / `Invalid` for a size on a non-file.
    pub fn setattr(&self, ino: u64, set: &SetAttr) -> Result<Attr> {
        let mut st = self.state();
        st.inode(ino)?;
        if let Some(size) = set.size {
            self.truncate_locked(&mut st, ino, size)?;
        }
        let i = st.inode_mut(ino)?;
        if let Some(p) = set.perm {
            i.perm = p & 0o7777;
        }
        if let Some(u) = set.uid {
            i.uid = u;
        }
        if let Some(g) = set.gid {
            i.gid = g;
        }
        if let Some(t) = set.atime {
            i.atime = t;
        }
        if let Some(t) = set.mtime {
            i.mtime = t;
        }
        i.ctime = Timestamp::now();
        st.changed = true;
        st.attr(ino)
    }

    /// Sets extended attribute `name` of `ino`.
    ///
    /// # Errors
    ///
    /// `NotFound`; `Invalid` for an empty name or a value over 64 KiB;
    /// `NameTooLong`.
    pub fn setxattr(&self, ino: u64, name: &[u8], value: &[u8]) -> Result<()> {
        if name.is_empty() {
            return Err(StoreError::Invalid("empty xattr name"));
        }
        if name.len() > NAME_MAX {
            return Err(StoreError::NameTooLong);
        }
        if value.len() > 64 * 1024 {
            return Err(StoreError::Invalid("xattr value over 64 KiB"));
        }
        let mut st = self.state();
        let i = st.inode_mut(ino)?;
        i.xattrs.insert(name.to_vec(), value.to_vec());
        i.ctime = Timestamp::now();
        st.changed = true;
        Ok(())
    }

    /// Extended attribute `name` of `ino`.
    ///
    /// # Errors
    ///
    /// `NotFound`, `NoAttr`.
    pub fn getxattr(&self, ino: u64, name: &[u8]) -> Result<Vec<u8>> {
        self.state()
            .inode(ino)?
            .xattrs
            .get(name)
            .cloned()
            .ok_or(StoreError::NoAttr)
    }

    /// Names of `ino`'s extended attributes, sorted.
    ///
    /// # Errors
    ///
    /// `NotFound`.
    pub fn listxattr(&self, ino: u64) -> Result<Vec<Vec<u8>>> {
        Ok(self.state().inode(ino)?.xattrs.keys().cloned().collect())
    }

    /// Removes extended attribute `name` of `ino`.
    ///
    /// # Errors
    ///
    /// `NotFound`, `NoAttr`.
    pub fn removexattr(&self, ino: u64, name: &[u8]) -> Result<()> {
        let mut st = self.state();
        let i = st.inode_mut(ino)?;
        i.xattrs.remove(name).ok_or(StoreError::NoAttr)?;
        i.ctime = Timestamp::now();
        st.changed = true;
        Ok(())
    }
}

fn lookup_in(st: &State, parent: u64, name: &[u8]) -> Result<u64> {
    if name.len() > NAME_MAX {
        return Err(StoreError::NameTooLong);
    }
    st.entries(parent)?
        .get(name)
        .copied()
        .ok_or(StoreError::NotFound)
}
