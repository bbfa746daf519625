//! Round trips: every decoder path gives back the input, for random data
//! and sizes, frame-size boundaries, levels and empty input.

use super::util::{decode, encode, sample};
use kwq_zstd::{Params, SeekableReader};
use proptest::prelude::*;
use std::io::{Cursor, Read, Seek, SeekFrom};

fn check_all(data: &[u8], z: &[u8]) {
    assert_eq!(decode(z).unwrap(), data, "kwq decoder");
    assert_eq!(
        zstd::decode_all(z).unwrap(),
        data,
        "libzstd streaming decoder"
    );
    let mut r = SeekableReader::new(Cursor::new(z)).unwrap();
    assert!(r.has_seek_table());
    assert_eq!(r.len(), data.len() as u64);
    let mut all = Vec::new();
    r.read_to_end(&mut all).unwrap();
    assert_eq!(all, data, "seekable reader, front to back");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_sizes_and_levels(
        len in 0usize..300_000,
        seed in any::<u64>(),
        frame_kib in 1usize..64,
        level in -5i32..=19,
        checksum in any::<bool>(),
        threads in 1usize..4,
    ) {
        let data = sample(len, seed);
        let p = Params::new().frame_size(frame_kib << 10).level(level).checksum(checksum);
        let z = encode(&data, p, threads);
        check_all(&data, &z);
    }

    #[test]
    fn random_seeks(len in 1usize..200_000, seed in any::<u64>(), seeks in prop::collection::vec((any::<u64>(), 0usize..20_000), 1..20)) {
        let data = sample(len, seed);
        let z = encode(&data, Params::new().frame_size(4096), 2);
        let mut r = SeekableReader::new(Cursor::new(&z[..])).unwrap();
        for (at, n) in seeks {
            let at = at % (len as u64 + 10);
            r.seek(SeekFrom::Start(at)).unwrap();
            let mut buf = vec![0u8; n];
            let mut got = 0;
            loop {
                let k = r.read(&mut buf[got..]).unwrap();
                if k == 0 { break; }
                got += k;
            }
            let lo = (at as usize).min(len);
            let hi = (lo + n).min(len);
            prop_assert_eq!(&buf[..got], &data[lo..hi]);
        }
    }
}

#[test]
fn every_frame_boundary() {
    let fs = 1024;
    for len in [
        0,
        1,
        fs - 1,
        fs,
        fs + 1,
        2 * fs - 1,
        2 * fs,
        2 * fs + 1,
        5 * fs,
    ] {
        let data = sample(len, len as u64);
        let z = encode(&data, Params::new().frame_size(fs), 2);
        check_all(&data, &z);
        let frames = SeekableReader::new(Cursor::new(&z[..]))
            .unwrap()
            .frames()
            .len();
        assert_eq!(frames, len.div_ceil(fs).max(1), "len {len}");
    }
}

#[test]
fn every_level() {
    let data = sample(50_000, 9);
    for level in (-7..=22).step_by(3).chain([22]) {
        let z = encode(&data, Params::new().frame_size(16 << 10).level(level), 2);
        check_all(&data, &z);
    }
}

#[test]
fn long_distance_and_dictionary() {
    let data = sample(200_000, 3);
    let z = encode(&data, Params::new().long_distance(Some(24)), 2);
    check_all(&data, &z);

    let dict = sample(20_000, 4);
    let p = Params::new().frame_size(8192).dictionary(dict.clone());
    let z = encode(&data, p, 2);
    let mut d = kwq_zstd::DecoderBuilder::new()
        .dictionary(dict.clone())
        .build(&z[..])
        .unwrap();
    let mut out = Vec::new();
    d.read_to_end(&mut out).unwrap();
    assert_eq!(out, data);
    // Without the dictionary, decoding fails with a typed error.
    assert!(matches!(decode(&z), Err(kwq_zstd::Error::Zstd { .. })));
    let mut r = SeekableReader::with_limit(Cursor::new(&z[..]), 1 << 27, Some(&dict)).unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    assert_eq!(out, data);
}

#[test]
fn bad_params_are_errors() {
    for p in [
        Params::new().level(23),
        Params::new().frame_size(10),
        Params::new().long_distance(Some(40)),
    ] {
        assert!(matches!(
            kwq_zstd::Encoder::with_params(Vec::new(), p),
            Err(kwq_zstd::Error::InvalidParameter(_))
        ));
    }
}

#[test]
fn chunk_api() {
    let chunks: Vec<Vec<u8>> = (0..40).map(|i| sample(1000 * i, i as u64)).collect();
    let frames: Vec<_> = kwq_zstd::compress_chunks(chunks.clone(), Params::new())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (c, f) in chunks.iter().zip(&frames) {
        assert_eq!(f.input_len, c.len());
        assert_eq!(&zstd::decode_all(&f.frame[..]).unwrap(), c);
    }
    // Incompressible input is reported as not smaller.
    let mut noise = vec![0u8; 10_000];
    let mut x = 12345u64;
    for b in &mut noise {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *b = (x >> 56) as u8;
    }
    let mut c = kwq_zstd::ChunkCompressor::new(&Params::new().checksum(false)).unwrap();
    let out = c.compress(&noise).unwrap();
    assert!(!out.is_smaller());
    assert_eq!(out.checksum(), None);
    let mut dst = Vec::new();
    assert!(c.compress_into(&sample(10_000, 1), &mut dst).unwrap());
}

#[test]
fn drop_without_finish_discards_and_returns() {
    let data = sample(3 << 20, 5);
    let mut enc = kwq_zstd::EncoderBuilder::new()
        .params(Params::new().frame_size(64 << 10))
        .build(Vec::new())
        .unwrap();
    std::io::Write::write_all(&mut enc, &data).unwrap();
    let t = std::time::Instant::now();
    drop(enc);
    // Only the stages already running finish; this is generous.
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn sink_errors_surface() {
    struct Failing(usize);
    impl std::io::Write for Failing {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("disk full"));
            }
            self.0 -= 1;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let data = sample(1 << 20, 6);
    let mut enc = kwq_zstd::EncoderBuilder::new()
        .params(Params::new().frame_size(4096))
        .build(Failing(3))
        .unwrap();
    let w = std::io::Write::write_all(&mut enc, &data);
    let f = enc.finish();
    assert!(w.is_err() || f.is_err());
    let e = w.err().or(f.err()).unwrap();
    assert!(e.to_string().contains("disk full"), "{e}");
}
