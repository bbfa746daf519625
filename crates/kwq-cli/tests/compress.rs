//! `kwq compress | decompress | test | list` end to end.

use std::path::Path;
use std::process::{Command, Output};

fn kwq(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kwq"))
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap()
}

fn text(len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    let mut i = 0u64;
    while v.len() < len {
        v.extend_from_slice(
            format!("line {i} of the kwq compress test, {} \n", i * i % 977).as_bytes(),
        );
        i += 1;
    }
    v.truncate(len);
    v
}

#[test]
fn round_trip_files_metadata_and_no_clobber() {
    let d = tempfile::tempdir().unwrap();
    let a = d.path().join("a.txt");
    let data = text(3 << 20);
    std::fs::write(&a, &data).unwrap();
    std::fs::write(d.path().join("b.txt"), b"second file").unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_500_000_000);
    std::fs::File::options()
        .write(true)
        .open(&a)
        .unwrap()
        .set_modified(old)
        .unwrap();

    let o = kwq(
        d.path(),
        &[
            "compress",
            "-q",
            "-5",
            "--frame-size",
            "256K",
            "a.txt",
            "b.txt",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let z = d.path().join("a.txt.zst");
    assert_eq!(std::fs::metadata(&z).unwrap().modified().unwrap(), old);
    // No temporaries left behind.
    let names: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");

    // Refuses to overwrite without -f, overwrites with it.
    let o = kwq(d.path(), &["compress", "-q", "a.txt"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("already exists"));
    assert!(kwq(d.path(), &["compress", "-q", "-f", "a.txt"])
        .status
        .success());

    let l = kwq(d.path(), &["list", "a.txt.zst"]);
    let out = String::from_utf8_lossy(&l.stdout);
    assert!(
        out.contains("yes") && out.contains(&data.len().to_string()),
        "{out}"
    );

    std::fs::remove_file(&a).unwrap();
    let o = kwq(d.path(), &["decompress", "-q", "--rm", "a.txt.zst"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(std::fs::read(&a).unwrap(), data);
    assert!(!z.exists());
}

#[test]
fn corrupt_input_names_the_offset() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("x"), text(1 << 20)).unwrap();
    assert!(
        kwq(d.path(), &["compress", "-q", "--frame-size", "64K", "x"])
            .status
            .success()
    );
    let mut z = std::fs::read(d.path().join("x.zst")).unwrap();
    z.truncate(z.len() / 2);
    std::fs::write(d.path().join("cut.zst"), &z).unwrap();
    let o = kwq(d.path(), &["test", "cut.zst"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("cut.zst") && err.contains("byte"), "{err}");
    let o = kwq(d.path(), &["decompress", "cut.zst"]);
    assert!(!o.status.success());
    // The failed output was not left under its final name.
    assert!(!d.path().join("cut").exists());
}

#[test]
fn stock_zstd_reads_our_files() {
    let have = Command::new("zstd")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI must install the Debian package zstd"
        );
        eprintln!("skipping: `zstd` (Debian package zstd) is not installed");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let data = text(2 << 20);
    std::fs::write(d.path().join("y"), &data).unwrap();
    assert!(
        kwq(d.path(), &["compress", "-q", "-T", "2", "y", "-o", "y.kz"])
            .status
            .success()
    );
    let o = Command::new("zstd")
        .current_dir(d.path())
        .args(["-d", "-c", "-q", "y.kz"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(o.stdout, data);
}

#[test]
fn sigterm_removes_the_temporary() {
    let d = tempfile::tempdir().unwrap();
    // Incompressible and at a slow level, so the run is still going.
    let mut x = 88172645463325252u64;
    let data: Vec<u8> = (0..64 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(d.path().join("big"), &data).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kwq"))
        .current_dir(d.path())
        .args(["compress", "-q", "-19", "-T", "1", "big"])
        .spawn()
        .unwrap();
    // Wait for the temporary to appear.
    let has_tmp = || {
        std::fs::read_dir(d.path())
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".tmp"))
    };
    let t = std::time::Instant::now();
    while !has_tmp() && t.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(has_tmp(), "no temporary appeared");
    let st = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(!has_tmp(), "temporary left behind");
    assert!(!d.path().join("big.zst").exists());
}
