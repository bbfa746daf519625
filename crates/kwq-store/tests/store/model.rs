//! Model-based test: random operation sequences — every namespace and
//! data operation, plus sync, crash (drop without commit) and remount —
//! run against the store and against a plain in-memory reference model.
//! Results (values and errnos), file contents and whole trees must agree;
//! after a crash both sides return to the last synced state.
//!
//! `KWQ_STORE_MODEL_CASES` sets the number of sequences (default 48).

use std::collections::BTreeMap;
use std::sync::Arc;

use kwq_store::{Device, FileKind, MemDevice, SetAttr, Store, StoreError, ROOT_INO};
use proptest::prelude::*;

use crate::common::{env_num, opts, read_all};

#[derive(Debug, Clone)]
enum Node {
    File(Vec<u8>),
    Dir {
        parent: u64,
        entries: BTreeMap<Vec<u8>, u64>,
    },
    Sym(Vec<u8>),
}

#[derive(Debug, Clone)]
struct MInode {
    node: Node,
    perm: u32,
    nlink: u32,
    opens: u32,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// The reference: the same semantics, written as plainly as possible.
#[derive(Debug, Clone)]
struct Model {
    inodes: BTreeMap<u64, MInode>,
    next: u64,
}

type R<T> = Result<T, i32>;
const ENOENT: i32 = libc::ENOENT;

impl Model {
    fn new() -> Self {
        let mut inodes = BTreeMap::new();
        inodes.insert(
            ROOT_INO,
            MInode {
                node: Node::Dir {
                    parent: ROOT_INO,
                    entries: BTreeMap::new(),
                },
                perm: 0o755,
                nlink: 2,
                opens: 0,
                xattrs: BTreeMap::new(),
            },
        );
        Self { inodes, next: 2 }
    }

    fn entries(&self, d: u64) -> R<&BTreeMap<Vec<u8>, u64>> {
        match &self.inodes.get(&d).ok_or(ENOENT)?.node {
            Node::Dir { entries, .. } => Ok(entries),
            _ => Err(libc::ENOTDIR),
        }
    }

    /// A directory that may gain entries (not removed).
    fn live_dir(&self, d: u64) -> R<&BTreeMap<Vec<u8>, u64>> {
        let e = self.entries(d)?;
        if self.inodes[&d].nlink == 0 {
            return Err(ENOENT);
        }
        Ok(e)
    }

    /// What a remount leaves: no open handles, no unlinked inodes.
    fn remounted(&self) -> Self {
        let mut m = self.clone();
        m.inodes.retain(|_, i| i.nlink > 0);
        for i in m.inodes.values_mut() {
            i.opens = 0;
        }
        m
    }

    fn entries_mut(&mut self, d: u64) -> &mut BTreeMap<Vec<u8>, u64> {
        match &mut self.inodes.get_mut(&d).expect("checked").node {
            Node::Dir { entries, .. } => entries,
            _ => unreachable!("checked"),
        }
    }

    fn is_dir(&self, i: u64) -> bool {
        matches!(self.inodes.get(&i).map(|n| &n.node), Some(Node::Dir { .. }))
    }

    fn add(&mut self, p: u64, name: &[u8], node: Node, perm: u32) -> R<u64> {
        if self.live_dir(p)?.contains_key(name) {
            return Err(libc::EEXIST);
        }
        let ino = self.next;
        self.next += 1;
        let dir = matches!(node, Node::Dir { .. });
        let node = match node {
            Node::Dir { entries, .. } => Node::Dir { parent: p, entries },
            n => n,
        };
        self.inodes.insert(
            ino,
            MInode {
                node,
                perm,
                nlink: if dir { 2 } else { 1 },
                opens: 0,
                xattrs: BTreeMap::new(),
            },
        );
        self.entries_mut(p).insert(name.to_vec(), ino);
        if dir {
            self.inodes.get_mut(&p).expect("parent").nlink += 1;
        }
        Ok(ino)
    }

    fn drop_link(&mut self, parent: u64, ino: u64) {
        let dir = self.is_dir(ino);
        let i = self.inodes.get_mut(&ino).expect("linked");
        i.nlink = if dir { 0 } else { i.nlink - 1 };
        if i.nlink == 0 && i.opens == 0 {
            self.inodes.remove(&ino);
        }
        if dir {
            self.inodes.get_mut(&parent).expect("parent").nlink -= 1;
        }
    }

    fn lookup(&self, p: u64, name: &[u8]) -> R<u64> {
        self.entries(p)?.get(name).copied().ok_or(ENOENT)
    }

    fn file(&mut self, ino: u64) -> R<&mut Vec<u8>> {
        match &mut self.inodes.get_mut(&ino).ok_or(ENOENT)?.node {
            Node::File(d) => Ok(d),
            Node::Dir { .. } => Err(libc::EISDIR),
            Node::Sym(_) => Err(libc::EINVAL),
        }
    }

    fn is_ancestor(&self, anc: u64, mut i: u64) -> bool {
        loop {
            if i == anc {
                return true;
            }
            match self.inodes.get(&i).map(|n| &n.node) {
                Some(Node::Dir { parent, .. }) if *parent != i => i = *parent,
                _ => return false,
            }
        }
    }

    fn apply(&mut self, op: &Op) -> R<Out> {
        match *op {
            Op::Create(d, ref n) => self
                .add(self.dir(d), n, Node::File(Vec::new()), 0o644)
                .map(Out::Ino),
            Op::Mkdir(d, ref n) => self
                .add(
                    self.dir(d),
                    n,
                    Node::Dir {
                        parent: 0,
                        entries: BTreeMap::new(),
                    },
                    0o755,
                )
                .map(Out::Ino),
            Op::Symlink(d, ref n, ref t) => self
                .add(self.dir(d), n, Node::Sym(t.clone()), 0o777)
                .map(Out::Ino),
            Op::Link(i, d, ref n) => {
                let (ino, dir) = (self.any(i), self.dir(d));
                let node = self.inodes.get(&ino).ok_or(ENOENT)?;
                if matches!(node.node, Node::Dir { .. }) {
                    return Err(libc::EISDIR);
                }
                if node.nlink == 0 {
                    return Err(ENOENT);
                }
                if self.live_dir(dir)?.contains_key(n) {
                    return Err(libc::EEXIST);
                }
                self.entries_mut(dir).insert(n.clone(), ino);
                self.inodes.get_mut(&ino).expect("exists").nlink += 1;
                Ok(Out::Ino(ino))
            }
            Op::Unlink(d, ref n) => {
                let p = self.dir(d);
                let ino = self.lookup(p, n)?;
                if self.is_dir(ino) {
                    return Err(libc::EISDIR);
                }
                self.entries_mut(p).remove(n);
                self.drop_link(p, ino);
                Ok(Out::Unit)
            }
            Op::Rmdir(d, ref n) => {
                let p = self.dir(d);
                let ino = self.lookup(p, n)?;
                if !self.entries(ino)?.is_empty() {
                    return Err(libc::ENOTEMPTY);
                }
                self.entries_mut(p).remove(n);
                self.drop_link(p, ino);
                Ok(Out::Unit)
            }
            Op::Rename(d1, ref n1, d2, ref n2) => {
                let (p, np) = (self.dir(d1), self.dir(d2));
                let ino = self.lookup(p, n1)?;
                self.live_dir(np)?;
                let src_dir = self.is_dir(ino);
                if src_dir && self.is_ancestor(ino, np) {
                    return Err(libc::EINVAL);
                }
                let target = self.entries(np)?.get(n2).copied();
                if let Some(t) = target {
                    if t == ino {
                        return Ok(Out::Unit);
                    }
                    match (src_dir, self.is_dir(t)) {
                        (true, false) => return Err(libc::ENOTDIR),
                        (false, true) => return Err(libc::EISDIR),
                        (true, true) if !self.entries(t)?.is_empty() => {
                            return Err(libc::ENOTEMPTY)
                        }
                        _ => {}
                    }
                }
                self.entries_mut(p).remove(n1);
                if let Some(t) = target {
                    self.entries_mut(np).remove(n2);
                    self.drop_link(np, t);
                }
                self.entries_mut(np).insert(n2.clone(), ino);
                if src_dir && p != np {
                    self.inodes.get_mut(&p).expect("p").nlink -= 1;
                    self.inodes.get_mut(&np).expect("np").nlink += 1;
                    if let Node::Dir { parent, .. } =
                        &mut self.inodes.get_mut(&ino).expect("ino").node
                    {
                        *parent = np;
                    }
                }
                Ok(Out::Unit)
            }
            Op::Write(i, off, len, seed) => {
                let f = self.file(self.any(i))?;
                let data = pattern(len, seed);
                if f.len() < off as usize + len {
                    f.resize(off as usize + len, 0);
                }
                f[off as usize..off as usize + len].copy_from_slice(&data);
                Ok(Out::Size(len as u64))
            }
            Op::Truncate(i, size) => {
                self.file(self.any(i))?.resize(size as usize, 0);
                Ok(Out::Unit)
            }
            Op::Read(i, off, len) => {
                let f = self.file(self.any(i))?;
                let s = (off as usize).min(f.len());
                let e = (off as usize + len).min(f.len());
                Ok(Out::Bytes(f[s..e].to_vec()))
            }
            Op::Chmod(i, perm) => {
                let n = self.inodes.get_mut(&self.any(i)).ok_or(ENOENT)?;
                n.perm = perm;
                Ok(Out::Unit)
            }
            Op::SetXattr(i, ref k, ref v) => {
                let n = self.inodes.get_mut(&self.any(i)).ok_or(ENOENT)?;
                n.xattrs.insert(k.clone(), v.clone());
                Ok(Out::Unit)
            }
            Op::RemoveXattr(i, ref k) => {
                let n = self.inodes.get_mut(&self.any(i)).ok_or(ENOENT)?;
                n.xattrs.remove(k).map(|_| Out::Unit).ok_or(libc::ENODATA)
            }
            Op::Readdir(d) => {
                let e = self.entries(self.dir(d))?;
                Ok(Out::Names(e.iter().map(|(n, &i)| (n.clone(), i)).collect()))
            }
            Op::Readlink(i) => match &self.inodes.get(&self.any(i)).ok_or(ENOENT)?.node {
                Node::Sym(t) => Ok(Out::Bytes(t.clone())),
                _ => Err(libc::EINVAL),
            },
            Op::Open(i) => {
                self.inodes.get_mut(&self.any(i)).ok_or(ENOENT)?.opens += 1;
                Ok(Out::Unit)
            }
            Op::Release(i) => {
                let ino = self.any(i);
                if let Some(n) = self.inodes.get_mut(&ino) {
                    n.opens = n.opens.saturating_sub(1);
                    if n.nlink == 0 && n.opens == 0 {
                        self.inodes.remove(&ino);
                    }
                }
                Ok(Out::Unit)
            }
            Op::Sync | Op::Crash | Op::Remount => Ok(Out::Unit),
        }
    }

    /// The i-th directory (by inode order) — both sides pick the same.
    fn dir(&self, i: usize) -> u64 {
        let dirs: Vec<u64> = self
            .inodes
            .iter()
            .filter(|(_, n)| matches!(n.node, Node::Dir { .. }))
            .map(|(&k, _)| k)
            .collect();
        dirs[i % dirs.len()]
    }

    /// The i-th inode, or (1 in 8) one that does not exist.
    fn any(&self, i: usize) -> u64 {
        if i % 8 == 7 {
            return 1 << 40;
        }
        let all: Vec<u64> = self.inodes.keys().copied().collect();
        all[i % all.len()]
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Out {
    Unit,
    Ino(u64),
    Size(u64),
    Bytes(Vec<u8>),
    Names(Vec<(Vec<u8>, u64)>),
}

#[derive(Debug, Clone)]
enum Op {
    Create(usize, Vec<u8>),
    Mkdir(usize, Vec<u8>),
    Symlink(usize, Vec<u8>, Vec<u8>),
    Link(usize, usize, Vec<u8>),
    Unlink(usize, Vec<u8>),
    Rmdir(usize, Vec<u8>),
    Rename(usize, Vec<u8>, usize, Vec<u8>),
    Write(usize, u64, usize, u64),
    Truncate(usize, u64),
    Read(usize, u64, usize),
    Chmod(usize, u32),
    SetXattr(usize, Vec<u8>, Vec<u8>),
    RemoveXattr(usize, Vec<u8>),
    Readdir(usize),
    Readlink(usize),
    Open(usize),
    Release(usize),
    Sync,
    Crash,
    Remount,
}

/// Data for a write: compressible runs or noise, by seed.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = kwq_store::Rng::new(seed);
    match seed % 3 {
        0 => vec![(seed >> 8) as u8; len],
        1 => (0..len).map(|i| (i / 100) as u8 ^ seed as u8).collect(),
        _ => (0..len).map(|_| rng.next_u64() as u8).collect(),
    }
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(b"a".to_vec()),
        Just(b"b".to_vec()),
        Just(b"c".to_vec()),
        Just(b"dd".to_vec())
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let ix = 0usize..16;
    prop_oneof![
        4 => (ix.clone(), name()).prop_map(|(d, n)| Op::Create(d, n)),
        3 => (ix.clone(), name()).prop_map(|(d, n)| Op::Mkdir(d, n)),
        1 => (ix.clone(), name(), name()).prop_map(|(d, n, t)| Op::Symlink(d, n, t)),
        2 => (ix.clone(), ix.clone(), name()).prop_map(|(i, d, n)| Op::Link(i, d, n)),
        2 => (ix.clone(), name()).prop_map(|(d, n)| Op::Unlink(d, n)),
        2 => (ix.clone(), name()).prop_map(|(d, n)| Op::Rmdir(d, n)),
        3 => (ix.clone(), name(), ix.clone(), name()).prop_map(|(a, n, b, m)| Op::Rename(a, n, b, m)),
        8 => (ix.clone(), 0u64..80_000, 1usize..40_000, any::<u64>()).prop_map(|(i, o, l, s)| Op::Write(i, o, l, s)),
        // Small files, around the inline limit (4095 bytes): inline data,
        // and the moves between inline and an extent as files grow and shrink.
        6 => (ix.clone(), 0u64..3_000, 1usize..2_500, any::<u64>()).prop_map(|(i, o, l, s)| Op::Write(i, o, l, s)),
        3 => (ix.clone(), 0u64..90_000).prop_map(|(i, s)| Op::Truncate(i, s)),
        2 => (ix.clone(), 0u64..6_000).prop_map(|(i, s)| Op::Truncate(i, s)),
        3 => (ix.clone(), 0u64..90_000, 1usize..50_000).prop_map(|(i, o, l)| Op::Read(i, o, l)),
        1 => (ix.clone(), 0u32..0o777).prop_map(|(i, p)| Op::Chmod(i, p)),
        1 => (ix.clone(), name(), name()).prop_map(|(i, k, v)| Op::SetXattr(i, k, v)),
        1 => (ix.clone(), name()).prop_map(|(i, k)| Op::RemoveXattr(i, k)),
        1 => ix.clone().prop_map(Op::Readdir),
        1 => ix.clone().prop_map(Op::Readlink),
        2 => ix.clone().prop_map(Op::Open),
        2 => ix.clone().prop_map(Op::Release),
        2 => Just(Op::Sync),
        2 => Just(Op::Crash),
        1 => Just(Op::Remount),
    ]
}

fn err(e: StoreError) -> i32 {
    e.errno()
}

fn run_store(s: &Store, m: &Model, op: &Op) -> R<Out> {
    match *op {
        Op::Create(d, ref n) => s
            .create(m.dir(d), n, 0o644, 0, 0)
            .map(|a| Out::Ino(a.ino))
            .map_err(err),
        Op::Mkdir(d, ref n) => s
            .mkdir(m.dir(d), n, 0o755, 0, 0)
            .map(|a| Out::Ino(a.ino))
            .map_err(err),
        Op::Symlink(d, ref n, ref t) => s
            .symlink(m.dir(d), n, t, 0, 0)
            .map(|a| Out::Ino(a.ino))
            .map_err(err),
        Op::Link(i, d, ref n) => s
            .link(m.any(i), m.dir(d), n)
            .map(|a| Out::Ino(a.ino))
            .map_err(err),
        Op::Unlink(d, ref n) => s.unlink(m.dir(d), n).map(|_| Out::Unit).map_err(err),
        Op::Rmdir(d, ref n) => s.rmdir(m.dir(d), n).map(|_| Out::Unit).map_err(err),
        Op::Rename(a, ref n, b, ref nn) => s
            .rename(m.dir(a), n, m.dir(b), nn)
            .map(|_| Out::Unit)
            .map_err(err),
        Op::Write(i, off, len, seed) => s
            .write_at(m.any(i), off, &pattern(len, seed))
            .map(|n| Out::Size(n as u64))
            .map_err(err),
        Op::Truncate(i, size) => s.truncate(m.any(i), size).map(|_| Out::Unit).map_err(err),
        Op::Read(i, off, len) => {
            let mut buf = vec![0u8; len];
            s.read_at(m.any(i), off, &mut buf)
                .map(|n| Out::Bytes(buf[..n].to_vec()))
                .map_err(err)
        }
        Op::Chmod(i, perm) => s
            .setattr(
                m.any(i),
                &SetAttr {
                    perm: Some(perm),
                    ..SetAttr::default()
                },
            )
            .map(|_| Out::Unit)
            .map_err(err),
        Op::SetXattr(i, ref k, ref v) => s.setxattr(m.any(i), k, v).map(|_| Out::Unit).map_err(err),
        Op::RemoveXattr(i, ref k) => s.removexattr(m.any(i), k).map(|_| Out::Unit).map_err(err),
        Op::Readdir(d) => s
            .readdir(m.dir(d))
            .map(|v| Out::Names(v.into_iter().map(|e| (e.name, e.ino)).collect()))
            .map_err(err),
        Op::Readlink(i) => s.readlink(m.any(i)).map(Out::Bytes).map_err(err),
        Op::Open(i) => s.open(m.any(i)).map(|_| Out::Unit).map_err(err),
        Op::Release(i) => {
            s.release(m.any(i));
            Ok(Out::Unit)
        }
        Op::Sync | Op::Crash | Op::Remount => Ok(Out::Unit),
    }
}

/// Every inode of the model, compared with the store.
fn compare(s: &Store, m: &Model) -> Result<(), TestCaseError> {
    for (&ino, mi) in &m.inodes {
        let a = s
            .getattr(ino)
            .map_err(|e| TestCaseError::fail(format!("inode {ino}: {e}")))?;
        prop_assert_eq!(a.perm, mi.perm, "perm of {}", ino);
        prop_assert_eq!(a.nlink, mi.nlink, "nlink of {}", ino);
        prop_assert_eq!(
            s.listxattr(ino).unwrap(),
            mi.xattrs.keys().cloned().collect::<Vec<_>>()
        );
        for (k, v) in &mi.xattrs {
            prop_assert_eq!(&s.getxattr(ino, k).unwrap(), v);
        }
        match &mi.node {
            Node::File(d) => {
                prop_assert_eq!(a.kind, FileKind::File);
                prop_assert_eq!(a.size, d.len() as u64);
                prop_assert!(&read_all(s, ino).unwrap() == d, "contents of {}", ino);
            }
            Node::Dir { parent, entries } => {
                prop_assert_eq!(a.kind, FileKind::Dir);
                prop_assert_eq!(s.parent(ino).unwrap(), *parent);
                let got: BTreeMap<Vec<u8>, u64> = s
                    .readdir(ino)
                    .unwrap()
                    .into_iter()
                    .map(|e| (e.name, e.ino))
                    .collect();
                prop_assert_eq!(&got, entries);
            }
            Node::Sym(t) => prop_assert_eq!(&s.readlink(ino).unwrap(), t),
        }
    }
    prop_assert_eq!(s.statfs().files, m.inodes.len() as u64);
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dev = Arc::new(MemDevice::new(16 << 20));
    let mount = |d: &Arc<MemDevice>| Store::mount(d.clone() as Arc<dyn Device>, opts()).unwrap();
    let mut s = Store::format(dev.clone() as Arc<dyn Device>, opts()).unwrap();
    let mut m = Model::new();
    let mut committed = m.clone();
    for (k, op) in ops.iter().enumerate() {
        // Both sides pick their targets from the state before the op.
        let got = run_store(&s, &m, op);
        let mut m2 = m.clone();
        let want = m2.apply(op);
        if want.is_ok() {
            m = m2;
        }
        prop_assert_eq!(&got, &want, "op {} {:?}", k, op);
        match op {
            Op::Sync => {
                s.sync().unwrap();
                committed = m.clone();
            }
            Op::Crash => {
                s.crash();
                s = mount(&dev);
                m = committed.remounted();
                compare(&s, &m)?;
            }
            Op::Remount => {
                s.unmount().unwrap();
                s = mount(&dev);
                m = m.remounted();
                committed = m.clone();
                compare(&s, &m)?;
            }
            _ => {}
        }
    }
    compare(&s, &m)?;
    s.unmount().unwrap();
    let rep = kwq_store::fsck(&*dev).unwrap();
    prop_assert!(rep.is_clean(), "{:?}", rep);
    INLINE_FILES_SEEN.fetch_add(rep.inline_files, std::sync::atomic::Ordering::Relaxed);
    Ok(())
}

/// Inline files found by the final fsck of every case, so the test can
/// tell that the generator reaches them.
static INLINE_FILES_SEEN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[test]
fn store_matches_model() {
    let cases = env_num("KWQ_STORE_MODEL_CASES", 48) as u32;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases,
        ..ProptestConfig::default()
    });
    runner
        .run(&proptest::collection::vec(op(), 1..80), run)
        .unwrap();
    if cases >= 16 {
        assert!(
            INLINE_FILES_SEEN.load(std::sync::atomic::Ordering::Relaxed) > 0,
            "no case ended with an inline file"
        );
    }
}
