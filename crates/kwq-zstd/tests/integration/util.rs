//! Shared helpers.

use std::io::{Read, Write};

/// Deterministic data mixing text-like runs, repeats and noise, so frames
/// compress but not trivially.
pub fn sample(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let words: [&[u8]; 8] = [
        b"workqueue ",
        b"ordered ",
        b"btrfs ",
        b"frame ",
        b"zstd ",
        b"kernel ",
        b"\n",
        b"compress ",
    ];
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        match x % 10 {
            0 => out.extend_from_slice(&x.to_le_bytes()),
            1 => {
                let back = (x >> 8) as usize % 4096 + 1;
                if out.len() > back {
                    let start = out.len() - back;
                    let n = back.min(64);
                    for i in 0..n {
                        out.push(out[start + i]);
                    }
                }
            }
            k => out.extend_from_slice(words[k as usize % 8]),
        }
    }
    out.truncate(len);
    out
}

pub fn encode(data: &[u8], params: kwq_zstd::Params, threads: usize) -> Vec<u8> {
    let mut enc = kwq_zstd::EncoderBuilder::new()
        .params(params)
        .threads(threads)
        .build(Vec::new())
        .unwrap();
    // Uneven writes exercise the frame-boundary logic.
    let mut rest = data;
    let mut step = 1usize;
    while !rest.is_empty() {
        let n = step.min(rest.len());
        enc.write_all(&rest[..n]).unwrap();
        rest = &rest[n..];
        step = step * 7 % 100_003 + 1;
    }
    enc.finish().unwrap()
}

pub fn decode(z: &[u8]) -> Result<Vec<u8>, kwq_zstd::Error> {
    let mut d = kwq_zstd::DecoderBuilder::new().threads(2).build(z)?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 7000];
    loop {
        let n = d.read_checked(&mut buf)?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Whether the zstd CLI is installed. Under `CI=true` its absence is a
/// failure; elsewhere the test skips, saying why.
pub fn have_cli(name: &str) -> bool {
    let ok = std::process::Command::new(name)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("`{name}` is not installed; CI must install the Debian package zstd");
        }
        eprintln!("skipping: `{name}` (Debian package zstd) is not installed");
    }
    ok
}

pub fn run(cmd: &str, args: &[&str], stdin: &[u8]) -> (bool, Vec<u8>, String) {
    let mut c = std::process::Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut sin = c.stdin.take().unwrap();
    let input = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = sin.write_all(&input);
    });
    let mut out = Vec::new();
    c.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let mut err = String::new();
    c.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    feeder.join().unwrap();
    let st = c.wait().unwrap();
    (st.success(), out, err)
}
