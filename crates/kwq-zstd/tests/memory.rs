//! Peak memory while streaming 1 GiB through the encoder: at most
//! `(in_flight + threads) × 2 × frame size + 16 MiB` above what the
//! process held before. Its own test binary, so the peak is its own.
//! Linux only (reads `/proc/self/status`).

use std::io::Write;

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Checks the stream as it arrives: decodes it with libzstd's own
/// streaming decoder (frame checksums verified) and checks that every
/// 64 KiB block carries its own index, so frames out of order fail too.
struct Verify {
    at: u64,
    stamp: [u8; 8],
}

impl Write for Verify {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let mut i = 0;
        while i < b.len() {
            let off = (self.at % BLOCK as u64) as usize;
            let step = if off < 8 {
                self.stamp[off] = b[i];
                if off == 7 {
                    let want = self.at / BLOCK as u64;
                    assert_eq!(
                        u64::from_le_bytes(self.stamp),
                        want,
                        "block {want} out of order"
                    );
                }
                1
            } else {
                (BLOCK - off).min(b.len() - i)
            };
            i += step;
            self.at += step as u64;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

const BLOCK: usize = 64 << 10;
const TOTAL: u64 = 1 << 30;

#[test]
fn streaming_1_gib_stays_bounded() {
    if !cfg!(target_os = "linux") {
        eprintln!("skipping: needs /proc/self/status (Linux)");
        return;
    }
    let frame = 1 << 20;
    let threads = 2;
    let in_flight = 4;
    // A 1 MiB pattern of text-like bytes, each 64 KiB block stamped with
    // its index.
    let mut pattern = vec![0u8; BLOCK];
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for b in pattern.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = b"etaoin shrdlu\n"[(x % 14) as usize];
    }
    let before = status_kib("VmRSS:");
    let verify = zstd::stream::write::Decoder::new(Verify {
        at: 0,
        stamp: [0; 8],
    })
    .unwrap();
    let mut enc = kwq_zstd::EncoderBuilder::new()
        .params(kwq_zstd::Params::new().frame_size(frame).level(1))
        .threads(threads)
        .in_flight(in_flight)
        .build(verify)
        .unwrap();
    let mut block = pattern.clone();
    for i in 0..TOTAL / BLOCK as u64 {
        block[..8].copy_from_slice(&i.to_le_bytes());
        enc.write_all(&block).unwrap();
    }
    let mut verify = enc.finish().unwrap();
    verify.flush().unwrap();
    assert_eq!(verify.get_ref().at, TOTAL);
    let peak = status_kib("VmHWM:");
    let bound_kib = ((in_flight + threads) * 2 * frame) as u64 / 1024 + 16 * 1024;
    eprintln!("peak RSS {peak} KiB, {before} KiB before, bound {bound_kib} KiB above that");
    assert!(
        peak.saturating_sub(before) <= bound_kib,
        "peak RSS {peak} KiB, {before} KiB before: over the bound of {bound_kib} KiB"
    );
}
