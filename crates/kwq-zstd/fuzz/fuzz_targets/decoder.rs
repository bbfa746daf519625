//! The stream decoder on arbitrary bytes: never panics, never allocates
//! past its memory limit (libFuzzer's -rss_limit_mb catches that), and
//! output it accepts matches libzstd's when libzstd accepts it too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::Read;

const LIMIT: u64 = 8 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(mut d) = kwq_zstd::DecoderBuilder::new()
        .threads(1)
        .in_flight(2)
        .memory_limit(LIMIT)
        .build(data)
    else {
        return;
    };
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let ours = loop {
        match d.read_checked(&mut buf) {
            Ok(0) => break true,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.len() > 64 << 20 {
                    break false;
                }
            }
            Err(_) => break false,
        }
    };
    if ours {
        let mut theirs = Vec::new();
        let mut z = match zstd_ref(data) {
            Some(z) => z,
            None => return,
        };
        if z.read_to_end(&mut theirs).is_ok() {
            assert_eq!(out, theirs, "kwq and libzstd disagree");
        }
    }
});

fn zstd_ref(data: &[u8]) -> Option<impl Read + '_> {
    let mut z = zstd::stream::read::Decoder::with_buffer(data).ok()?;
    z.window_log_max(23).ok()?;
    Some(z)
}
