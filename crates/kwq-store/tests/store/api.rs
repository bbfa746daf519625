//! Direct API tests.

use std::sync::Arc;

use kwq_store::{fsck, Device, MemDevice, SetAttr, Store, StoreError, ROOT_INO};

use crate::common::{mem_store, opts, read_all};

fn e<T: std::fmt::Debug>(r: Result<T, StoreError>) -> i32 {
    r.unwrap_err().errno()
}

#[test]
fn write_sync_remount_read() {
    let (dev, s) = mem_store(16);
    let f = s.create(ROOT_INO, b"a", 0o644, 1, 2).unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(s.write_at(f.ino, 0, &data).unwrap(), data.len());
    assert_eq!(read_all(&s, f.ino).unwrap(), data, "dirty read");
    s.sync().unwrap();
    assert_eq!(read_all(&s, f.ino).unwrap(), data, "clean read");
    s.write_at(f.ino, 50_000, b"hello").unwrap();
    s.crash();
    let s = Store::mount(dev.clone() as Arc<dyn Device>, opts()).unwrap();
    let ino = s.resolve("/a").unwrap();
    assert_eq!(ino, f.ino, "inode numbers are stable");
    assert_eq!(
        read_all(&s, ino).unwrap(),
        data,
        "the unsynced write is gone"
    );
    let a = s.getattr(ino).unwrap();
    assert_eq!((a.uid, a.gid, a.perm, a.nlink), (1, 2, 0o644, 1));
    assert!(
        a.disk_bytes < 100_000,
        "compressible data is compressed: {}",
        a.disk_bytes
    );
    drop(s);
    let rep = fsck(&*dev).unwrap();
    assert!(rep.is_clean(), "{rep:?}");
}

#[test]
fn holes_truncate_and_sparse_files() {
    let (_dev, s) = mem_store(16);
    let f = s.create(ROOT_INO, b"sparse", 0o644, 0, 0).unwrap().ino;
    s.write_at(f, 1 << 20, b"end").unwrap();
    s.sync().unwrap();
    let a = s.getattr(f).unwrap();
    assert_eq!(a.size, (1 << 20) + 3);
    assert_eq!(a.disk_bytes, 4096, "only the written chunk uses space");
    let mut buf = vec![1u8; 10];
    s.read_at(f, 5000, &mut buf).unwrap();
    assert_eq!(buf, vec![0; 10]);
    s.write_at(f, 0, &[7u8; 40_000]).unwrap();
    s.truncate(f, 20_000).unwrap();
    s.truncate(f, 30_000).unwrap();
    let all = read_all(&s, f).unwrap();
    assert_eq!(&all[..20_000], &[7u8; 20_000][..]);
    assert!(
        all[20_000..].iter().all(|&b| b == 0),
        "a shrink then grow reads zeros"
    );
    s.sync().unwrap();
    assert_eq!(read_all(&s, f).unwrap(), all);
}

#[test]
fn namespace_errors_map_to_errno() {
    let (_dev, s) = mem_store(8);
    let d = s.mkdir(ROOT_INO, b"d", 0o755, 0, 0).unwrap().ino;
    let f = s.create(d, b"f", 0o644, 0, 0).unwrap().ino;
    assert_eq!(e(s.create(d, b"f", 0o644, 0, 0)), libc::EEXIST);
    assert_eq!(e(s.lookup(d, b"nope")), libc::ENOENT);
    assert_eq!(e(s.create(f, b"x", 0o644, 0, 0)), libc::ENOTDIR);
    assert_eq!(e(s.rmdir(ROOT_INO, b"d")), libc::ENOTEMPTY);
    assert_eq!(e(s.unlink(ROOT_INO, b"d")), libc::EISDIR);
    assert_eq!(
        e(s.create(d, &[b'x'; 256], 0o644, 0, 0)),
        libc::ENAMETOOLONG
    );
    assert_eq!(e(s.create(d, b"a/b", 0o644, 0, 0)), libc::EINVAL);
    assert_eq!(e(s.rename(ROOT_INO, b"d", d, b"inside")), libc::EINVAL);
    assert_eq!(e(s.readlink(f)), libc::EINVAL);
    assert_eq!(e(s.getxattr(f, b"user.x")), libc::ENODATA);
    assert_eq!(s.getattr(ROOT_INO).unwrap().nlink, 3);
}

#[test]
fn unlink_of_open_file_keeps_data_until_release() {
    let (dev, s) = mem_store(8);
    let f = s.create(ROOT_INO, b"f", 0o644, 0, 0).unwrap().ino;
    s.write_at(f, 0, &[5u8; 50_000]).unwrap();
    s.sync().unwrap();
    let free_before = s.statfs().free_blocks;
    s.open(f).unwrap();
    s.unlink(ROOT_INO, b"f").unwrap();
    s.sync().unwrap();
    assert_eq!(
        read_all(&s, f).unwrap(),
        vec![5u8; 50_000],
        "still readable while open"
    );
    s.write_at(f, 0, b"more").unwrap();
    s.sync().unwrap();
    s.release(f);
    assert!(s.getattr(f).is_err(), "gone after the last release");
    s.sync().unwrap();
    s.sync().unwrap();
    assert!(s.statfs().free_blocks > free_before, "its space came back");
    drop(s);
    assert!(fsck(&*dev).unwrap().is_clean());
}

#[test]
fn rename_link_symlink_xattr_setattr() {
    let (dev, s) = mem_store(8);
    let a = s.mkdir(ROOT_INO, b"a", 0o755, 0, 0).unwrap().ino;
    let b = s.mkdir(ROOT_INO, b"b", 0o755, 0, 0).unwrap().ino;
    let f = s.create(a, b"f", 0o644, 0, 0).unwrap().ino;
    s.link(f, b, b"g").unwrap();
    assert_eq!(s.getattr(f).unwrap().nlink, 2);
    s.rename(ROOT_INO, b"a", b, b"a2").unwrap();
    assert_eq!(s.parent(a).unwrap(), b);
    assert_eq!(s.getattr(b).unwrap().nlink, 3);
    assert_eq!(s.getattr(ROOT_INO).unwrap().nlink, 3);
    let t = s.create(ROOT_INO, b"t", 0o644, 0, 0).unwrap().ino;
    s.rename(b, b"g", ROOT_INO, b"t").unwrap();
    assert!(s.getattr(t).is_err(), "the replaced file is gone");
    assert_eq!(s.resolve("/t").unwrap(), f);
    s.symlink(ROOT_INO, b"l", b"/t", 0, 0).unwrap();
    s.setxattr(f, b"user.k", b"v").unwrap();
    s.setattr(
        f,
        &SetAttr {
            perm: Some(0o600),
            size: Some(10),
            ..SetAttr::default()
        },
    )
    .unwrap();
    s.sync().unwrap();
    s.crash();
    let s = Store::mount(dev.clone() as Arc<dyn Device>, opts()).unwrap();
    let l = s.resolve("/l").unwrap();
    assert_eq!(s.readlink(l).unwrap(), b"/t");
    assert_eq!(s.getxattr(f, b"user.k").unwrap(), b"v");
    let at = s.getattr(f).unwrap();
    assert_eq!((at.perm, at.size, at.nlink), (0o600, 10, 2));
    let names: Vec<_> = s
        .readdir(ROOT_INO)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec![b"b".to_vec(), b"l".to_vec(), b"t".to_vec()]);
    drop(s);
    assert!(fsck(&*dev).unwrap().is_clean());
}

#[test]
fn enospc_is_clean_and_recoverable() {
    let (dev, s) = mem_store(1);
    let f = s.create(ROOT_INO, b"big", 0o644, 0, 0).unwrap().ino;
    // Incompressible data, more than the device holds.
    let mut rng = kwq_store::Rng::new(7);
    let data: Vec<u8> = (0..2 << 20).map(|_| rng.next_u64() as u8).collect();
    s.write_at(f, 0, &data).unwrap();
    let err = s.sync().unwrap_err();
    assert_eq!(err.errno(), libc::ENOSPC, "{err}");
    s.truncate(f, 100_000).unwrap();
    s.sync().expect("fits after the truncate");
    assert_eq!(read_all(&s, f).unwrap(), &data[..100_000]);
    drop(s);
    assert!(fsck(&*dev).unwrap().is_clean());
}

#[test]
fn format_rejects_bad_options_and_mount_rejects_garbage() {
    let dev = Arc::new(MemDevice::new(1 << 20));
    let bad = opts().extent_size(1000);
    assert!(Store::format(dev.clone(), bad).is_err());
    let e = Store::mount(dev.clone(), opts()).unwrap_err();
    assert!(matches!(e, StoreError::BadImage(_)), "{e}");
}

/// Regression (found by a 2000-case model run): reading a clean chunk past
/// the end of its extent — the file grew with a hole after the extent was
/// written — panicked on a slice index instead of reading zeros.
#[test]
fn read_past_a_short_extent_in_a_grown_file() {
    let (_dev, s) = mem_store(8);
    let f = s.create(ROOT_INO, b"f", 0o644, 0, 0).unwrap().ino;
    s.write_at(f, 0, &[9u8; 10]).unwrap();
    s.sync().unwrap();
    s.truncate(f, 15_000).unwrap();
    let mut buf = vec![1u8; 100];
    assert_eq!(s.read_at(f, 14_000, &mut buf).unwrap(), 100);
    assert_eq!(buf, vec![0u8; 100]);
    let all = read_all(&s, f).unwrap();
    assert_eq!(&all[..10], &[9u8; 10]);
    assert!(all[10..].iter().all(|&b| b == 0));
}

/// Small files live inline in the metadata: no data blocks, intact after a
/// remount and through fsck; a file that grows past the limit moves to an
/// extent, and back inline when it shrinks again; dirty memory is the
/// file's bytes, not a whole chunk.
#[test]
fn small_files_are_inline_and_move_to_extents_and_back() {
    let (dev, s) = mem_store(16);
    let used = |s: &Store| {
        let st = s.statfs();
        st.blocks - st.free_blocks
    };
    let before = used(&s);
    let mut files = Vec::new();
    for k in 0..200u32 {
        let name = format!("small{k}");
        let ino = s
            .create(ROOT_INO, name.as_bytes(), 0o644, 0, 0)
            .unwrap()
            .ino;
        let data: Vec<u8> =
            format!("file {k}: {}", "some text ".repeat(k as usize % 300)).into_bytes();
        s.write_at(ino, 0, &data).unwrap();
        files.push((ino, data));
    }
    let dirty: u64 = files.iter().map(|(_, d)| d.len() as u64).sum();
    assert_eq!(
        s.dirty_bytes(),
        dirty,
        "dirty buffers are as long as the data"
    );
    s.sync().unwrap();
    // 200 files of up to 3 KB: a few metadata blocks, not 200 data blocks.
    assert!(used(&s) - before < 20, "{} blocks", used(&s) - before);
    let (ino, data) = &files[150];
    assert_eq!(s.getattr(*ino).unwrap().disk_bytes, data.len() as u64);
    // Grows past the limit: an extent; shrinks: inline again.
    s.write_at(*ino, 5000, b"tail").unwrap();
    s.sync().unwrap();
    assert!(s.getattr(*ino).unwrap().disk_bytes >= 4096);
    s.truncate(*ino, 100).unwrap();
    s.write_at(*ino, 10, b"XY").unwrap();
    s.sync().unwrap();
    assert_eq!(s.getattr(*ino).unwrap().disk_bytes, 100);
    let mut want = data[..100].to_vec();
    want[10..12].copy_from_slice(b"XY");
    s.unmount().unwrap();
    let rep = fsck(&*dev).unwrap();
    assert!(rep.is_clean(), "{rep:?}");
    assert_eq!(rep.inline_files, 200);
    assert_eq!(
        rep.extents, 0,
        "the extent was freed when the file went inline"
    );
    let s = Store::mount(dev.clone() as Arc<dyn Device>, opts()).unwrap();
    for (k, (i, d)) in files.iter().enumerate() {
        let got = read_all(&s, *i).unwrap();
        if k == 150 {
            assert_eq!(got, want);
        } else {
            assert_eq!(&got, d, "file {k}");
        }
    }
    // Truncated to zero, then grown with a hole: reads as zeros.
    s.truncate(files[3].0, 0).unwrap();
    s.truncate(files[3].0, 50).unwrap();
    s.sync().unwrap();
    assert_eq!(read_all(&s, files[3].0).unwrap(), vec![0u8; 50]);
    s.crash();
}
