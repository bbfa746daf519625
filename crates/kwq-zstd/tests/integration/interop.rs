//! Interoperability with the reference tools: stock `zstd -d`/`-t` accept
//! our output, and we decode `zstd` and `pzstd` output.

use super::util::{decode, encode, have_cli, run, sample};
use kwq_zstd::{Params, SeekableReader};
use std::io::{Cursor, Read};

#[test]
fn stock_zstd_decodes_our_output() {
    if !have_cli("zstd") {
        return;
    }
    for (len, fs, level) in [
        (0, 1 << 10, 3),
        (1, 1 << 10, 1),
        (1_000_000, 64 << 10, 3),
        (3 << 20, 1 << 20, 19),
        (200_000, 4096, -3),
    ] {
        let data = sample(len, len as u64 + 1);
        let z = encode(&data, Params::new().frame_size(fs).level(level), 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.zst");
        std::fs::write(&path, &z).unwrap();
        let p = path.to_str().unwrap();
        let (ok, _, err) = run("zstd", &["-t", "-q", p], b"");
        assert!(ok, "zstd -t refused our output (len {len}): {err}");
        let (ok, out, err) = run("zstd", &["-d", "-c", "-q", p], b"");
        assert!(ok, "zstd -d refused our output (len {len}): {err}");
        assert_eq!(out, data, "zstd -d output differs (len {len})");
    }
}

#[test]
fn we_decode_zstd_and_pzstd_output() {
    if !have_cli("zstd") || !have_cli("pzstd") {
        return;
    }
    let data = sample(5 << 20, 77);
    // zstd from a pipe: one frame, no content size (the sequential path).
    let (ok, z, _) = run("zstd", &["-c", "-q", "-3"], &data);
    assert!(ok);
    assert_eq!(decode(&z).unwrap(), data);
    let mut r = SeekableReader::new(Cursor::new(&z[..])).unwrap();
    assert!(!r.has_seek_table());
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert_eq!(out, data);
    // zstd on a file: one frame with its content size.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in");
    std::fs::write(&path, &data).unwrap();
    let (ok, z, _) = run("zstd", &["-c", "-q", path.to_str().unwrap()], b"");
    assert!(ok);
    assert_eq!(decode(&z).unwrap(), data);
    // pzstd: many frames plus its own skippable frames.
    let (ok, zp, err) = run(
        "pzstd",
        &["-p", "2", "-c", "-q", "-1", path.to_str().unwrap()],
        b"",
    );
    assert!(ok, "{err}");
    assert_eq!(decode(&zp).unwrap(), data);
    let mut r = SeekableReader::new(Cursor::new(&zp[..])).unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert_eq!(out, data);
    // Concatenation of all three plus ours.
    let ours = encode(&data[..100_000], Params::new().frame_size(8192), 2);
    let mut cat = z.clone();
    cat.extend_from_slice(&zp);
    cat.extend_from_slice(&ours);
    let mut want = data.clone();
    want.extend_from_slice(&data);
    want.extend_from_slice(&data[..100_000]);
    assert_eq!(decode(&cat).unwrap(), want);
    let (ok, out, _) = run("zstd", &["-d", "-c", "-q"], &cat);
    assert!(ok);
    assert_eq!(out, want);
}
