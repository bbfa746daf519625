//! White-box tests: corruption of chosen structures, and images seeded
//! with the inconsistencies fsck must find.

use std::sync::Arc;

use crate::format::BLOCK;
use crate::inode::{Body, ROOT_INO};
use crate::{fsck, Device, MemDevice, Options, Store, StoreError};

fn opts() -> Options {
    Options::default()
        .extent_size(16 * 1024)
        .commit_interval(None)
        .level(1)
}

fn flip(dev: &MemDevice, off: u64) {
    let mut b = [0u8; 1];
    dev.read_at(&mut b, off).unwrap();
    b[0] ^= 0x10;
    dev.write_at(&b, off).unwrap();
}

/// A store with one file of three distinct chunks, synced twice.
fn setup() -> (Arc<MemDevice>, Store, u64, Vec<u8>) {
    let dev = Arc::new(MemDevice::new(8 << 20));
    let s = Store::format(dev.clone(), opts()).unwrap();
    let f = s.create(ROOT_INO, b"f", 0o644, 0, 0).unwrap().ino;
    let data: Vec<u8> = (0..48 * 1024u32)
        .map(|i| (i / 7 % 256) as u8 ^ (i >> 14) as u8)
        .collect();
    s.write_at(f, 0, &data).unwrap();
    s.sync().unwrap();
    s.setxattr(f, b"user.x", b"1").unwrap();
    s.sync().unwrap();
    (dev, s, f, data)
}

fn extent_block(s: &Store, ino: u64, chunk: u64) -> u64 {
    match &s.state().inode(ino).unwrap().body {
        Body::File { chunks, .. } => chunks[&chunk].block,
        _ => unreachable!(),
    }
}

#[test]
fn data_bit_flip_fails_that_range_only() {
    let (dev, s, f, data) = setup();
    let b = extent_block(&s, f, 1);
    flip(&dev, b * BLOCK + 3);
    let mut buf = vec![0u8; 16 * 1024];
    assert_eq!(s.read_at(f, 0, &mut buf).unwrap(), buf.len());
    assert_eq!(buf, data[..16 * 1024]);
    let e = s.read_at(f, 16 * 1024 + 5, &mut buf).unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::Corrupt {
                what: "data extent",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.errno(), libc::EIO);
    s.read_at(f, 32 * 1024, &mut buf).unwrap();
    assert_eq!(buf, data[32 * 1024..]);
    // A write into the damaged chunk cannot load it either.
    assert!(s.write_at(f, 16 * 1024, b"x").is_err());
    s.crash();
    let rep = fsck(&*dev).unwrap();
    assert_eq!(rep.errors.len(), 1, "{rep:?}");
    assert!(rep.errors[0].contains("checksum"), "{rep:?}");
    assert_eq!(rep.exit_code(), 4);
}

#[test]
fn metadata_bit_flip_falls_back_to_the_previous_commit() {
    let (dev, s, f, data) = setup();
    let meta = s.state().meta.clone();
    s.crash();
    flip(&dev, meta[0].block * BLOCK + 1);
    let rep = fsck(&*dev).unwrap();
    assert!(rep.is_clean(), "{rep:?}");
    assert!(!rep.warnings.is_empty(), "the fallback is reported");
    let s = Store::mount(dev.clone(), opts()).unwrap();
    assert_eq!(
        s.getxattr(f, b"user.x").unwrap_err().errno(),
        libc::ENODATA,
        "previous commit"
    );
    let mut buf = vec![0u8; data.len()];
    s.read_at(f, 0, &mut buf).unwrap();
    assert_eq!(buf, data);
    s.crash();
}

#[test]
fn both_superblocks_damaged_is_a_clean_error() {
    let (dev, s, _, _) = setup();
    s.crash();
    flip(&dev, 20);
    flip(&dev, BLOCK + 20);
    let e = Store::mount(dev.clone(), opts()).unwrap_err();
    assert!(matches!(e, StoreError::BadImage(_)), "{e}");
    assert!(fsck(&*dev).is_err());
}

#[test]
fn random_bit_flips_never_panic_or_return_wrong_bytes() {
    let (dev, s, f, data) = setup();
    s.crash();
    let clean = dev.to_bytes();
    let used = 64 * BLOCK;
    let mut rng = crate::Rng::new(3);
    for _ in 0..300 {
        let d = Arc::new(MemDevice::from_bytes(clean.clone()));
        for _ in 0..1 + rng.below(3) {
            flip(&d, rng.below(used));
        }
        let _ = fsck(&*d);
        let Ok(s) = Store::mount(d.clone(), opts()) else {
            continue;
        };
        let mut buf = vec![0u8; data.len()];
        match s.read_at(f, 0, &mut buf) {
            Ok(n) => assert_eq!(&buf[..n], &data[..n], "wrong bytes returned"),
            Err(e) => assert_eq!(e.errno(), libc::EIO, "{e}"),
        }
        s.crash();
    }
}

#[test]
fn fsck_finds_seeded_link_count_and_leaked_space() {
    let (dev, s, f, _) = setup();
    {
        let mut st = s.state();
        st.inode_mut(f).unwrap().nlink = 3;
        st.changed = true;
    }
    s.sync().unwrap();
    let rep = fsck(&*dev).unwrap();
    assert!(
        rep.errors.iter().any(|e| e.contains("link count 3 but 1")),
        "{rep:?}"
    );

    // An inode with links and extents that no directory names: leaked.
    {
        let mut st = s.state();
        st.inode_mut(f).unwrap().nlink = 1;
        if let Body::Dir { entries, .. } = &mut st.inode_mut(ROOT_INO).unwrap().body {
            entries.remove(&b"f"[..]);
        }
        st.changed = true;
    }
    s.sync().unwrap();
    let rep = fsck(&*dev).unwrap();
    assert!(
        rep.errors
            .iter()
            .any(|e| e.contains("not reachable") && e.contains("leaked")),
        "{rep:?}"
    );

    // An extent past the end of its file: leaked.
    {
        let mut st = s.state();
        if let Body::Dir { entries, .. } = &mut st.inode_mut(ROOT_INO).unwrap().body {
            entries.insert(b"f".to_vec(), f);
        }
        if let Body::File { size, .. } = &mut st.inode_mut(f).unwrap().body {
            *size = 100;
        }
        st.changed = true;
    }
    s.sync().unwrap();
    let rep = fsck(&*dev).unwrap();
    assert!(
        rep.errors.iter().any(|e| e.contains("past the file's end")),
        "{rep:?}"
    );
    s.crash();
}

/// After a namespace-only commit (the ENOSPC path) recorded a truncation
/// whose chunk was not rewritten, the chunk's extent reaches past the end
/// of the file; growing the file again must show zeros there, not the old
/// bytes.
#[test]
fn growth_after_an_unrewritten_truncation_reads_zeros() {
    let dev = Arc::new(MemDevice::new(8 << 20));
    let s = Store::format(dev.clone(), opts()).unwrap();
    let f = s.create(ROOT_INO, b"f", 0o644, 0, 0).unwrap().ino;
    s.write_at(f, 0, &[7u8; 30_000]).unwrap();
    s.sync().unwrap();
    {
        // What the namespace-only commit records: the new size over the
        // old extents.
        let mut st = s.state();
        if let Body::File { size, .. } = &mut st.inode_mut(f).unwrap().body {
            *size = 20_000;
        }
        st.changed = true;
    }
    s.sync().unwrap();
    s.crash();
    for grow in [0, 1] {
        let s = Store::mount(dev.clone(), opts()).unwrap();
        if grow == 0 {
            s.truncate(f, 30_000).unwrap();
        } else {
            s.write_at(f, 29_000, b"x").unwrap();
        }
        let mut buf = vec![1u8; 9_000];
        s.read_at(f, 20_000, &mut buf).unwrap();
        assert!(
            buf.iter().all(|&b| b == 0),
            "stale bytes after growth {grow}"
        );
        s.sync().unwrap();
        let mut buf = vec![1u8; 9_000];
        s.read_at(f, 20_000, &mut buf).unwrap();
        assert!(
            buf.iter().all(|&b| b == 0),
            "stale bytes after growth {grow} and a commit"
        );
        s.crash();
        let s = Store::mount(dev.clone(), opts()).unwrap();
        s.truncate(f, 20_000).unwrap();
        s.sync().unwrap();
        s.crash();
    }
}

/// An image in format version 1 (no inline data) mounts, reads back, and
/// its next commit writes version 2 with inline data.
#[test]
fn version_1_image_mounts_and_upgrades() {
    use crate::format::{encode_inodes, MetaIndex, Superblock, META_PIECE};
    let (dev, s, f, data) = setup();
    {
        // Write a version-1 commit of the current namespace by hand.
        let mut st = s.state();
        let sh = &s.shared;
        let blob = encode_inodes(st.inodes.iter().filter(|(_, i)| i.nlink > 0), 1);
        let packed = zstd::bulk::compress(&blob, 1).unwrap();
        let mut index = MetaIndex {
            raw_len: blob.len() as u64,
            packed_len: packed.len() as u64,
            pieces: Vec::new(),
        };
        for piece in packed.chunks(META_PIECE) {
            index
                .pieces
                .push(super::commit::write_blob(&*sh.dev, &sh.alloc, piece).unwrap());
        }
        let ip = super::commit::write_blob(&*sh.dev, &sh.alloc, &index.encode()).unwrap();
        let sb = Superblock {
            version: 1,
            extent_size: sh.extent_size,
            gen: st.gen + 1,
            dev_blocks: dev.len() / BLOCK,
            next_ino: st.next_ino,
            index: ip,
        };
        let slot = 1 - st.sb_slot;
        dev.write_at(&sb.encode(), slot as u64 * BLOCK).unwrap();
        st.gen += 1;
    }
    s.crash();
    let mut b = vec![0u8; BLOCK as usize];
    let newest = (0..2u64)
        .filter_map(|k| {
            dev.read_at(&mut b, k * BLOCK).unwrap();
            Superblock::decode(&b).ok()
        })
        .max_by_key(|sb| sb.gen)
        .unwrap();
    assert_eq!(newest.version, 1);
    let s = Store::mount(dev.clone(), opts()).unwrap();
    let mut got = vec![0u8; data.len()];
    assert_eq!(s.read_at(f, 0, &mut got).unwrap(), data.len());
    assert_eq!(got, data);
    assert_eq!(s.getxattr(f, b"user.x").unwrap(), b"1");
    let small = s.create(ROOT_INO, b"small", 0o644, 0, 0).unwrap().ino;
    s.write_at(small, 0, b"inline now").unwrap();
    s.unmount().unwrap();
    let rep = fsck(&*dev).unwrap();
    assert!(rep.is_clean(), "{rep:?}");
    assert_eq!(rep.inline_files, 1);
    let s = Store::mount(dev.clone(), opts()).unwrap();
    let mut got = vec![0u8; 10];
    s.read_at(small, 0, &mut got).unwrap();
    assert_eq!(&got, b"inline now");
    s.crash();
}
