//! The seek-table parser and the seekable reader on arbitrary bytes:
//! opening, reading everything and seeking never panic, and data read
//! after seeks agrees with data read front to back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::io::{Cursor, Read, Seek, SeekFrom};

fuzz_target!(|data: &[u8]| {
    let _ = kwq_zstd::seektable::parse_table(data, data.len() as u64);
    let Ok(mut r) = kwq_zstd::SeekableReader::with_limit(Cursor::new(data), 8 << 20, None) else {
        return;
    };
    let len = r.len();
    let mut all = Vec::new();
    let whole = r.read_to_end(&mut all).is_ok();
    if whole {
        assert_eq!(all.len() as u64, len);
        // Re-read a window from the middle through a seek.
        let at = len / 3;
        if r.seek(SeekFrom::Start(at)).is_ok() {
            let mut b = vec![0u8; (len - at).min(1000) as usize];
            if r.read_exact(&mut b).is_ok() {
                assert_eq!(&b[..], &all[at as usize..at as usize + b.len()]);
            }
        }
    }
});
