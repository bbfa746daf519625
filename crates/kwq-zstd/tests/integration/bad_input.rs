//! Bad input: truncation, bit flips, lying seek tables, bombs, empty
//! input. Each is a typed error (or, where the damage is harmless, the
//! right data); nothing panics and memory stays bounded.

use super::util::{decode, encode, sample};
use kwq_zstd::{Error, Params, SeekableReader};
use std::io::{Cursor, Read};

fn small() -> (Vec<u8>, Vec<u8>) {
    let data = sample(20_000, 11);
    let z = encode(&data, Params::new().frame_size(4096), 2);
    (data, z)
}

fn seekable_read(z: &[u8]) -> Result<Vec<u8>, Error> {
    let mut r = SeekableReader::new(Cursor::new(z))?;
    let mut out = Vec::new();
    let mut buf = [0u8; 5000];
    loop {
        let n = r.read_checked(&mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

#[test]
fn empty_input() {
    assert!(matches!(decode(b""), Err(Error::Empty)));
    assert!(matches!(seekable_read(b""), Err(Error::Empty)));
}

#[test]
fn empty_content_round_trips() {
    let z = encode(b"", Params::new(), 1);
    assert_eq!(decode(&z).unwrap(), b"");
    assert_eq!(seekable_read(&z).unwrap(), b"");
}

#[test]
fn every_truncation_is_an_error_or_a_frame_prefix() {
    let (data, z) = small();
    for cut in 0..z.len() {
        match decode(&z[..cut]) {
            Err(_) => {}
            // Cut exactly after a whole frame: a valid, shorter stream.
            Ok(out) => assert!(data.starts_with(&out) && cut > 0, "cut {cut}"),
        }
        // Truncation breaks the seek table; a scan then finds a partial frame.
        if let Ok(out) = seekable_read(&z[..cut]) {
            assert!(data.starts_with(&out), "cut {cut}");
        }
    }
}

#[test]
fn every_bit_flip_is_an_error_or_the_right_data() {
    let (data, z) = small();
    for i in 0..z.len() {
        for bit in [0, 3, 7] {
            let mut bad = z.clone();
            bad[i] ^= 1 << bit;
            if let Ok(out) = decode(&bad) {
                assert_eq!(out, data, "flip at byte {i} bit {bit} gave wrong data");
            }
            if let Ok(out) = seekable_read(&bad) {
                assert_eq!(
                    out, data,
                    "seekable: flip at byte {i} bit {bit} gave wrong data"
                );
            }
        }
    }
}

#[test]
fn errors_carry_offsets() {
    let (_, z) = small();
    let mut bad = z.clone();
    let second = {
        let r = SeekableReader::new(Cursor::new(&z[..])).unwrap();
        r.frames()[1].compressed_offset
    };
    bad[second as usize + 20] ^= 0xFF;
    let e = decode(&bad).unwrap_err();
    assert_eq!(e.offset(), Some(second), "{e}");
    assert!(e.to_string().contains(&second.to_string()), "{e}");
}

#[test]
fn lying_seek_tables() {
    let (data, z) = small();
    let n = z.len();
    // Footer frame count off by one: table no longer fits.
    let mut bad = z.clone();
    bad[n - 9] ^= 1;
    assert!(matches!(
        SeekableReader::new(Cursor::new(&bad[..])),
        Err(Error::SeekTable(_))
    ));
    // Reserved descriptor bit.
    let mut bad = z.clone();
    bad[n - 5] |= 0x04;
    assert!(matches!(
        SeekableReader::new(Cursor::new(&bad[..])),
        Err(Error::SeekTable(_))
    ));
    // Decompressed size of the first frame changed: open works, reading
    // that frame fails, never returns wrong data.
    let first_entry = {
        let frames = SeekableReader::new(Cursor::new(&z[..]))
            .unwrap()
            .frames()
            .len();
        n - 9 - frames * 12
    };
    let mut bad = z.clone();
    bad[first_entry + 4] ^= 0x10;
    let r = seekable_read(&bad);
    assert!(
        matches!(r, Err(Error::Corrupt { .. }) | Err(Error::Zstd { .. })),
        "{r:?}"
    );
    // Compressed sizes swapped between two frames: tiling holds, data
    // does not.
    let mut bad = z.clone();
    let (a, b) = (first_entry, first_entry + 12);
    for k in 0..4 {
        bad.swap(a + k, b + k);
    }
    if let Ok(out) = seekable_read(&bad) {
        assert_eq!(out, data);
    }
    // Checksum in the table wrong.
    let mut bad = z.clone();
    bad[first_entry + 8] ^= 1;
    assert!(matches!(seekable_read(&bad), Err(Error::SeekTable(_))));
    // A table claiming 2^32-1 frames in a tiny file.
    let mut bad = z.clone();
    bad[n - 9..n - 5].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        SeekableReader::new(Cursor::new(&bad[..])),
        Err(Error::SeekTable(_))
    ));
    // The stream decoder ignores the table, as zstd -d does.
    assert_eq!(decode(&bad).unwrap(), data);
}

/// A frame header claiming `content` bytes (single segment: the window is
/// the content size), followed by one empty last raw block.
fn bomb(content: u64) -> Vec<u8> {
    let mut f = 0xFD2F_B528u32.to_le_bytes().to_vec();
    f.push(0xE0); // FCS 8 bytes, single segment
    f.extend_from_slice(&content.to_le_bytes());
    f.extend_from_slice(&[0x01, 0, 0]); // last, raw, size 0
    f
}

#[test]
fn decompression_bombs() {
    let e = decode(&bomb(1 << 40)).unwrap_err();
    assert!(
        matches!(e, Error::MemoryLimit { needed, .. } if needed == 1 << 40),
        "{e}"
    );
    // A window descriptor asking for 2^41 bytes, no content size.
    let mut f = 0xFD2F_B528u32.to_le_bytes().to_vec();
    f.push(0x00);
    f.push(31 << 3);
    f.extend_from_slice(&[0x01, 0, 0]);
    assert!(matches!(decode(&f), Err(Error::MemoryLimit { .. })));
    // Content size within the parallel range but lying: an error, not a
    // 64 MiB allocation that gets returned.
    let e = decode(&bomb(32 << 20)).unwrap_err();
    assert!(
        matches!(e, Error::Zstd { .. } | Error::Corrupt { .. }),
        "{e}"
    );
    // A lowered limit refuses a 2 MiB claim before allocating it.
    let b = bomb(2 << 20);
    let mut d = kwq_zstd::DecoderBuilder::new()
        .memory_limit(1 << 20)
        .build(&b[..])
        .unwrap();
    let mut out = Vec::new();
    let e = d.read_to_end(&mut out).unwrap_err();
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<Error>());
    assert!(matches!(inner, Some(Error::MemoryLimit { .. })), "{e}");
}

#[test]
fn zero_length_frames_and_skippable_frames() {
    let mut z = zstd::encode_all(&b""[..], 3).unwrap();
    z.extend_from_slice(&0x184D_2A53u32.to_le_bytes());
    z.extend_from_slice(&3u32.to_le_bytes());
    z.extend_from_slice(b"abc");
    z.extend_from_slice(&zstd::encode_all(&b"xyz"[..], 3).unwrap());
    assert_eq!(decode(&z).unwrap(), b"xyz");
    assert_eq!(seekable_read(&z).unwrap(), b"xyz");
    // A skippable frame cut short.
    let mut cut = 0x184D_2A50u32.to_le_bytes().to_vec();
    cut.extend_from_slice(&100u32.to_le_bytes());
    cut.extend_from_slice(b"short");
    assert!(matches!(decode(&cut), Err(Error::Truncated { .. })));
    // Garbage after valid frames.
    let mut g = zstd::encode_all(&b"ok"[..], 3).unwrap();
    g.extend_from_slice(b"garbage!");
    let e = decode(&g).unwrap_err();
    assert!(
        matches!(e, Error::Corrupt { offset, .. } if offset > 0),
        "{e}"
    );
}

/// Reads `z` front to back through a `SeekableReader` with `ahead` frames
/// of read-ahead, in small reads; returns what came out before the first
/// error, and the error.
fn seekable_until_error(z: &[u8], ahead: usize) -> (Vec<u8>, Option<Error>) {
    let mut r = SeekableReader::new(Cursor::new(z)).unwrap();
    r.read_ahead(ahead);
    let mut out = Vec::new();
    let mut buf = [0u8; 1500];
    loop {
        match r.read_checked(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(e)),
        }
    }
}

#[test]
fn read_ahead_reports_an_error_at_its_frame_not_before() {
    let (data, z) = small();
    let frames = SeekableReader::new(Cursor::new(&z[..]))
        .unwrap()
        .frames()
        .to_vec();
    assert!(frames.len() >= 5, "{} frames", frames.len());
    let third = frames[3];
    let mut bad = z.clone();
    bad[third.compressed_offset as usize + 20] ^= 0xFF;
    for ahead in [0, 1, 4, 64] {
        let (out, e) = seekable_until_error(&bad, ahead);
        assert_eq!(
            out,
            &data[..third.decompressed_offset as usize],
            "read-ahead {ahead}: the frames before the bad one come out whole"
        );
        let e = e.unwrap_or_else(|| panic!("read-ahead {ahead}: no error"));
        assert_eq!(e.offset(), Some(third.compressed_offset), "{e}");
    }
    // Undamaged: every depth gives the data, with seeks back and forth.
    for ahead in [0, 1, 4, 64] {
        let (out, e) = seekable_until_error(&z, ahead);
        assert!(e.is_none(), "ahead {ahead}: {e:?}");
        assert_eq!(out, data, "ahead {ahead}");
        let mut r = SeekableReader::new(Cursor::new(&z[..])).unwrap();
        r.read_ahead(ahead);
        let mut got = vec![0u8; 3000];
        for start in [0usize, 9000, 2000, 12000, 12000, 4096, 15000] {
            std::io::Seek::seek(&mut r, std::io::SeekFrom::Start(start as u64)).unwrap();
            r.read_exact(&mut got).unwrap();
            assert_eq!(got, &data[start..start + 3000], "ahead {ahead} at {start}");
        }
    }
}
