//! The store tools end to end: mkfs, put, ls, cat, stat, rm and fsck on a
//! host image and on an image nested in it; fsck's exit codes on a clean,
//! a damaged and a missing image.

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn kwq(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kwq"));
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    c.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut ch = c.spawn().expect("spawn kwq");
    if let Some(data) = stdin {
        ch.stdin
            .take()
            .expect("stdin")
            .write_all(data)
            .expect("write stdin");
    }
    ch.wait_with_output().expect("wait")
}

fn ok(args: &[&str], stdin: Option<&[u8]>) -> Vec<u8> {
    let o = kwq(args, stdin);
    assert!(
        o.status.success(),
        "kwq {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

#[test]
fn mkfs_put_cat_rm_fsck_nested() {
    let dir = tempfile::tempdir().unwrap();
    let low = dir.path().join("low.img");
    let low = low.to_str().unwrap();
    let up = format!("{low}:/up.img");
    ok(&["mkfs", low, "--size", "32M"], None);
    ok(&["mkfs", &up, "--size", "8M", "--extent-kib", "64"], None);
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 97) as u8).collect();
    ok(&["store", "put", &up, "/f"], Some(&data));
    ok(&["store", "mkdir", &up, "/d"], None);
    assert_eq!(ok(&["store", "cat", &up, "/f"], None), data);
    let ls = String::from_utf8(ok(&["store", "ls", &up, "/"], None)).unwrap();
    assert!(ls.contains(" f\n") && ls.contains(" d\n"), "{ls}");
    let ls = String::from_utf8(ok(&["store", "ls", low, "/"], None)).unwrap();
    assert!(ls.contains("up.img"), "{ls}");
    let st = String::from_utf8(ok(&["store", "stat", &up, "/f"], None)).unwrap();
    assert!(st.contains("size 300000"), "{st}");
    // A put that fails (missing source) leaves the previous contents.
    let o = kwq(
        &["store", "put", &up, "/f", "--from", "/nonexistent/file"],
        None,
    );
    assert!(!o.status.success());
    assert_eq!(ok(&["store", "cat", &up, "/f"], None), data);
    let ls = String::from_utf8(ok(&["store", "ls", &up, "/"], None)).unwrap();
    assert!(
        !ls.contains("kwq-put"),
        "a failed put left its temporary file: {ls}"
    );
    ok(&["store", "rm", &up, "/f"], None);
    assert!(!kwq(&["store", "cat", &up, "/f"], None).status.success());
    assert_eq!(kwq(&["fsck", &up], None).status.code(), Some(0));
    assert_eq!(kwq(&["fsck", low], None).status.code(), Some(0));
    // Both superblocks damaged: nothing to check.
    let mut img = std::fs::read(low).unwrap();
    img[100] ^= 1;
    img[4096 + 100] ^= 1;
    img[0] ^= 1;
    img[4096] ^= 1;
    std::fs::write(low, &img).unwrap();
    assert_eq!(kwq(&["fsck", low], None).status.code(), Some(8));
    assert_eq!(
        kwq(&["fsck", "/nonexistent.img"], None).status.code(),
        Some(8)
    );
}

/// `kwq stack` as the README runs it, at a small size: both levels are
/// written, measured, fsck'd and compared; piped, it draws no progress bar.
#[test]
fn stack_writes_measures_and_verifies_both_levels() {
    let o = kwq(&["stack", "--mib", "6"], None);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{out}\n{err}");
    for level in ["upper", "lower"] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{level}: ")) && l.contains("MB/s"))
            .unwrap_or_else(|| panic!("no {level} line in {out}"));
        let ratio: f64 = line
            .rsplit("ratio ")
            .next()
            .and_then(|r| r.trim().parse().ok())
            .unwrap_or_else(|| panic!("no ratio in {line}"));
        assert!((3.0..20.0).contains(&ratio), "{line}");
        assert!(
            out.contains(&format!("{level}: fsck clean"))
                && out.contains("remounted, every byte matches"),
            "{out}"
        );
    }
    assert!(
        !err.contains("MiB/s") && !err.contains('['),
        "progress bar on a pipe: {err}"
    );
}
