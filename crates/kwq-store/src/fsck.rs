//! The checker: verifies an image without mounting it read-write.
//!
//! It picks the superblock a mount would pick, then checks: every
//! checksum (superblocks, metadata, every data extent, decompressed to its
//! logical length); the tree (every entry names an existing inode, every
//! directory has exactly one name and a correct parent, every linked inode
//! is reachable from the root, inode numbers below the superblock's next
//! number); link counts against the names found; and space — no block used
//! twice, no extent past its file's end (leaked space), no unreachable
//! inode holding extents (leaked space). Inline file data is covered by
//! the metadata's checksums; it must not reach past its file's end, and
//! (checked when decoding) is at most `INLINE_MAX` bytes and never shares
//! chunk 0 with an extent.

use std::collections::{BTreeMap, BTreeSet};

use crate::device::Device;
use crate::error::{Result, StoreError};
use crate::format::{blocks_for, Superblock, BLOCK};
use crate::inode::{Body, ROOT_INO};
use crate::store::load;

/// What [`fsck`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Generation of the superblock checked.
    pub generation: u64,
    /// Superblock slot checked.
    pub slot: usize,
    /// Inodes in the image.
    pub inodes: u64,
    /// Data extents verified.
    pub extents: u64,
    /// Logical bytes of file data in extents.
    pub data_bytes: u64,
    /// Files whose data (chunk 0) is stored inline in the metadata.
    pub inline_files: u64,
    /// Bytes of inline file data (covered by the metadata's checksums).
    pub inline_bytes: u64,
    /// Device blocks in use (superblocks, metadata, data).
    pub used_blocks: u64,
    /// Device blocks.
    pub blocks: u64,
    /// Problems that make the image inconsistent.
    pub errors: Vec<String>,
    /// Notes that do not (e.g. the newest superblock was unusable and an
    /// older one was taken, as a mount would).
    pub warnings: Vec<String>,
}

impl FsckReport {
    /// True when no error was found.
    pub fn is_clean(&self) -> bool {
        self.errors.is_empty()
    }

    /// An exit code in e2fsck's convention: 0 clean, 4 errors left
    /// uncorrected (this checker does not repair).
    pub fn exit_code(&self) -> i32 {
        if self.is_clean() {
            0
        } else {
            4
        }
    }
}

/// Checks the image on `dev` (read only).
///
/// # Errors
///
/// `BadImage` when no superblock leads to readable metadata (e2fsck exit
/// code 8: nothing to check), device errors.
pub fn fsck(dev: &dyn Device) -> Result<FsckReport> {
    let mut rep = FsckReport {
        blocks: dev.len() / BLOCK,
        ..FsckReport::default()
    };
    let mut cands = Vec::new();
    for slot in 0..2usize {
        let mut b = vec![0u8; BLOCK as usize];
        dev.read_at(&mut b, slot as u64 * BLOCK)?;
        match Superblock::decode(&b) {
            Ok(sb) => cands.push((slot, sb)),
            Err(e) => rep.warnings.push(format!("superblock slot {slot}: {e}")),
        }
    }
    cands.sort_by_key(|(_, sb)| std::cmp::Reverse(sb.gen));
    let mut why = Vec::new();
    let mut chosen = None;
    for (slot, sb) in cands {
        match load(dev, &sb) {
            Ok(x) => {
                chosen = Some((slot, sb, x));
                break;
            }
            Err(e) => {
                rep.warnings.push(format!(
                    "superblock slot {slot} generation {} unusable: {e}",
                    sb.gen
                ));
                why.push(e.to_string());
            }
        }
    }
    let Some((slot, sb, (inodes, _meta, alloc))) = chosen else {
        return Err(StoreError::BadImage(format!(
            "no usable superblock: {}",
            why.join("; ")
        )));
    };
    rep.slot = slot;
    rep.generation = sb.gen;
    rep.inodes = inodes.len() as u64;
    rep.used_blocks = alloc.used();

    // Data checksums and extents past the end.
    for (&ino, i) in &inodes {
        if ino >= sb.next_ino {
            rep.errors.push(format!(
                "inode {ino} at or above the next inode number {}",
                sb.next_ino
            ));
        }
        if let Body::File {
            size,
            chunks,
            inline,
        } = &i.body
        {
            if !inline.is_empty() {
                rep.inline_files += 1;
                rep.inline_bytes += inline.len() as u64;
                if inline.len() as u64 > *size {
                    rep.errors.push(format!(
                        "inode {ino}: {} inline bytes past the file's end ({size} bytes)",
                        inline.len()
                    ));
                }
            }
            for (&c, e) in chunks {
                rep.extents += 1;
                rep.data_bytes += e.logical_len as u64;
                let start = c.saturating_mul(sb.extent_size as u64);
                if start >= *size
                    || start + e.logical_len as u64 > size.saturating_add(sb.extent_size as u64)
                {
                    rep.errors.push(format!(
                        "inode {ino}: extent for chunk {c} lies past the file's end ({size} bytes): leaked space"
                    ));
                }
                if let Err(err) = crate::store::data_read_extent(dev, e) {
                    rep.errors.push(format!("inode {ino} chunk {c}: {err}"));
                }
            }
        }
    }

    // Tree walk from the root: names, parents, reachability, link counts.
    let mut names: BTreeMap<u64, u32> = BTreeMap::new();
    let mut subdirs: BTreeMap<u64, u32> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut stack = vec![ROOT_INO];
    seen.insert(ROOT_INO);
    while let Some(d) = stack.pop() {
        let Some(Body::Dir { entries, .. }) = inodes.get(&d).map(|i| &i.body) else {
            continue;
        };
        for (name, &child) in entries {
            let shown = String::from_utf8_lossy(name);
            let Some(ci) = inodes.get(&child) else {
                rep.errors.push(format!(
                    "directory {d}: entry {shown:?} names missing inode {child}"
                ));
                continue;
            };
            *names.entry(child).or_default() += 1;
            if let Body::Dir { parent, .. } = &ci.body {
                *subdirs.entry(d).or_default() += 1;
                if *parent != d {
                    rep.errors.push(format!(
                        "directory {child} ({shown:?}) records parent {parent}, found in {d}"
                    ));
                }
                if !seen.insert(child) {
                    rep.errors
                        .push(format!("directory {child} has more than one name"));
                    continue;
                }
                stack.push(child);
            } else {
                seen.insert(child);
            }
        }
    }
    for (&ino, i) in &inodes {
        if !seen.contains(&ino) {
            let held = match &i.body {
                Body::File { chunks, .. } => {
                    chunks.values().map(|e| blocks_for(e.disk_len as u64)).sum()
                }
                _ => 0,
            };
            rep.errors.push(format!(
                "inode {ino} is not reachable from the root (nlink {}, {held} blocks leaked)",
                i.nlink
            ));
            continue;
        }
        let expect = match i.body {
            Body::Dir { .. } => 2 + subdirs.get(&ino).copied().unwrap_or(0),
            _ => names.get(&ino).copied().unwrap_or(0),
        };
        if i.nlink != expect {
            rep.errors.push(format!(
                "inode {ino}: link count {} but {expect} found",
                i.nlink
            ));
        }
    }
    Ok(rep)
}
