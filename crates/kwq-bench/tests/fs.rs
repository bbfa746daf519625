//! W5 `fs` end to end on the kwq-store impls (no root needed): a few MiB
//! of generated text as one file and as a tar of nested members, written,
//! synced, unmounted, mounted again and read back by the binary itself.
//! The kernel impls need root, loop devices and btrfs-progs; they are
//! measured by `fs-bench.sh`, not here.

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kwq-bench"))
        .args(args)
        .output()
        .expect("kwq-bench runs")
}

fn result(args: &[&str]) -> serde_json::Map<String, Value> {
    let o = bench(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
    let out = String::from_utf8(o.stdout).expect("UTF-8 stdout");
    let last = out.lines().last().expect("a result line");
    match serde_json::from_str(last) {
        Ok(Value::Object(m)) => m,
        other => panic!("{args:?}: last line {last:?} is not a JSON object: {other:?}"),
    }
}

/// Compressible but not trivial text: words from a pseudo-random stream.
fn text(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "queue", "worker", "extent", "commit", "the", "of", "btrfs", "zstd", "loop", "and", "pool",
        "inode",
    ];
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(WORDS[(x % 12) as usize].as_bytes());
        out.push(if x % 11 == 0 { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

fn write_tar(path: &Path) -> (usize, u64) {
    let mut b = tar::Builder::new(Vec::new());
    let sizes = [0usize, 1, 4095, 4096, 70_000, 300_000, 5 << 20];
    let mut total = 0;
    for (i, &len) in sizes.iter().enumerate() {
        let mut h = tar::Header::new_gnu();
        h.set_size(len as u64);
        h.set_mode(0o644);
        h.set_cksum();
        let name = format!("d{}/sub{}/f{i}.html", i % 2, i % 3);
        b.append_data(&mut h, &name, &text(len, i as u64 + 1)[..])
            .expect("tar member");
        total += len as u64;
    }
    std::fs::write(path, b.into_inner().expect("tar")).expect("write tar");
    (sizes.len(), total)
}

fn check_fields(m: &serde_json::Map<String, Value>, imp: &str, items: u64, in_bytes: u64) {
    assert_eq!(m["workload"], "fs");
    assert_eq!(m["impl"], imp);
    assert_eq!(m["items"], items);
    assert_eq!(m["threads"], 2);
    assert_eq!(m["in_bytes"], in_bytes);
    let stored = m["stored_bytes"].as_u64().expect("stored_bytes");
    assert!(
        stored > 0 && stored < in_bytes,
        "stored {stored} of {in_bytes}"
    );
    assert!(
        m["ratio"].as_f64().is_some_and(|r| r > 1.5),
        "{:?}",
        m["ratio"]
    );
    for k in [
        "seconds",
        "items_per_s",
        "write_mb_per_s",
        "read_mb_per_s",
        "seconds_write",
        "seconds_read",
    ] {
        assert!(m[k].as_f64().is_some_and(|x| x > 0.0), "{k}: {:?}", m[k]);
    }
    assert!(m["peak_rss_kib"].as_u64().is_some_and(|k| k > 0));
}

#[test]
fn one_file_and_a_tar_of_members_round_trip_through_both_store_impls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = dir.path().join("one.txt");
    std::fs::write(&one, text(6 << 20, 99)).expect("input");
    let tar = dir.path().join("tree.tar");
    let (members, member_bytes) = write_tar(&tar);
    let images = dir.path().join("images");
    std::fs::create_dir(&images).expect("images dir");
    let images_s = images.to_str().expect("UTF-8 path");
    for imp in ["kwq-store", "kwq-store-stacked"] {
        let m = result(&[
            "fs",
            "--impl",
            imp,
            "--input",
            one.to_str().unwrap(),
            "--threads",
            "2",
            "--dir",
            images_s,
        ]);
        check_fields(&m, imp, 1, 6 << 20);
        assert_eq!(m["mode"], "one-file");
        let m = result(&[
            "fs",
            "--impl",
            imp,
            "--input",
            tar.to_str().unwrap(),
            "--files",
            "--threads=2",
            "--extent-kib",
            "64",
            "--dir",
            images_s,
        ]);
        check_fields(&m, imp, members as u64, member_bytes);
        assert_eq!(
            (m["mode"].as_str(), m["extent_kib"].as_u64()),
            (Some("files"), Some(64))
        );
        assert_eq!(m["members_skipped"], 0);
    }
    // Every image went with its run.
    let left: Vec<_> = std::fs::read_dir(&images).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn bad_settings_exit_2_before_running() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("x");
    std::fs::write(&input, b"some bytes").unwrap();
    let input = input.to_str().unwrap();
    for args in [
        vec![
            "fs",
            "--impl",
            "kernel-btrfs",
            "--input",
            input,
            "--extent-kib",
            "64",
        ],
        vec![
            "fs",
            "--impl",
            "kwq-store",
            "--input",
            input,
            "--extent-kib",
            "6",
        ],
        vec!["fs", "--impl", "kwq-store", "--input", input, "--rep", "2"],
        vec![
            "fs",
            "--impl",
            "kwq-store",
            "--input",
            input,
            "--level",
            "0",
        ],
        vec!["fs", "--impl", "kwq-store", "--input", "/nonexistent/input"],
        vec!["fs", "--impl", "kwq-store", "--input", input, "--files"],
        vec!["fs", "--impl", "ext4", "--input", input],
    ] {
        let o = bench(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(!o.stderr.is_empty(), "{args:?}: no message");
    }
}
