//! The command-line contract every workload keeps: `--flag VALUE` and
//! `--flag=VALUE`, exit 2 with a message on stderr for anything unknown or
//! malformed, and one JSON object with the required fields as the last line
//! of stdout. Sizes are tiny: this checks the contract, not speed.

use serde_json::Value;
use std::process::{Command, Output};

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kwq-bench"))
        .args(args)
        .env_remove("KWQ_BENCH_TBB")
        .output()
        .expect("kwq-bench runs")
}

/// The last stdout line, parsed, after checking the run succeeded.
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

fn assert_fields(m: &serde_json::Map<String, Value>, workload: &str, imp: &str) {
    assert_eq!(m["workload"], workload);
    assert_eq!(m["impl"], imp);
    for k in ["items", "threads"] {
        assert!(m[k].as_u64().is_some_and(|n| n > 0), "{k}: {:?}", m[k]);
    }
    for k in ["seconds", "items_per_s"] {
        assert!(m[k].as_f64().is_some_and(|x| x > 0.0), "{k}: {:?}", m[k]);
    }
}

fn assert_usage_error(args: &[&str], needle: &str) {
    let o = bench(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {needle:?} not in {err}");
    assert!(o.stdout.is_empty(), "{args:?} printed a result");
}

#[test]
fn every_workload_prints_one_json_object_last() {
    let m = result(&[
        "spawn",
        "--impl",
        "kwq",
        "--items",
        "2000",
        "--threads",
        "2",
    ]);
    assert_fields(&m, "spawn", "kwq");
    assert_eq!(m["items"], 2000);
    let m = result(&[
        "spawn",
        "--impl=kwq-work",
        "--items=3000",
        "--threads=2",
        "--rep=3",
    ]);
    assert_fields(&m, "spawn", "kwq-work");
    assert_eq!(m["reps"], 3);
    assert_eq!(m["runs_s"].as_array().map(Vec::len), Some(3));
    assert_eq!(
        m["executions"].as_u64().unwrap() + m["coalesced"].as_u64().unwrap(),
        3000
    );
    let m = result(&[
        "latency",
        "--impl",
        "kwq",
        "--items",
        "20",
        "--warmup",
        "2",
        "--interval-us=100",
        "--threads",
        "2",
    ]);
    assert_fields(&m, "latency", "kwq");
    for k in ["p50_us", "p99_us", "p999_us"] {
        assert!(m[k].as_f64().is_some(), "{k}");
    }
    let m = result(&[
        "ordered",
        "--impl",
        "kwq",
        "--items",
        "1_000",
        "--rounds",
        "3",
        "--inflight",
        "16",
        "--threads",
        "2",
    ]);
    assert_fields(&m, "ordered", "kwq");
    let sum = m["checksum"].as_str().unwrap();
    assert!(sum.starts_with("0x") && sum.len() == 18, "{sum}");
    // The same checksum given as --expect passes; a wrong one fails the check.
    let ok = result(&[
        "ordered", "--impl", "seq", "--items", "1000", "--rounds", "3", "--expect", sum,
    ]);
    assert_eq!(ok["checksum"], sum);
    let o = bench(&[
        "ordered", "--impl", "seq", "--items", "1000", "--rounds", "3", "--expect", "0x1",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("checksum"));
}

#[test]
fn bad_command_lines_exit_2_before_running() {
    assert_usage_error(&["spawn", "--impl", "kwq", "--bogus", "1"], "--bogus");
    assert_usage_error(&["spawn", "--impl", "nope"], "nope");
    assert_usage_error(&["spawn"], "--impl");
    assert_usage_error(&["fly", "--impl", "kwq"], "fly");
    assert_usage_error(&[], "Usage");
    assert_usage_error(&["spawn", "--impl", "kwq", "--items", "0"], "at least 1");
    assert_usage_error(
        &["spawn", "--impl", "kwq", "--threads", "x"],
        "not a whole number",
    );
    assert_usage_error(&["ordered", "--impl", "kwq", "--expect", "0xzz"], "hex");
    // A flag of another workload is unknown here.
    assert_usage_error(&["spawn", "--impl", "kwq", "--rounds", "5"], "--rounds");
    assert_usage_error(
        &["latency", "--impl", "kwq", "--interval-us", "0"],
        "at least 1",
    );
    // Found by the workload, reported the same way.
    assert_usage_error(
        &[
            "ordered",
            "--impl",
            "tbb",
            "--items",
            "10",
            "--tbb-bin",
            "/nonexistent/tbb",
        ],
        "oneTBB program not found",
    );
    let o = bench(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
}
