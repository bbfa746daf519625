//! The `kwq` binary's command-line contract: bad arguments (and bad
//! `KWQ_MODEL_*` variables) exit 2 with clap's message before any work,
//! failed checks and runtime errors exit 1, and the model's reports carry no
//! zero-valued placeholders.

use std::path::Path;
use std::process::{Command, Output};

fn kwq(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kwq"));
    c.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("KWQ_MODEL_") {
            c.env_remove(k);
        }
    }
    c.envs(env.iter().copied());
    c.output().expect("the kwq binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A usage error: exit 2, clap's `error: ` style, nothing on stdout.
fn assert_usage_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(2), "stderr: {err}");
    assert!(err.starts_with("error: "), "not clap's style: {err}");
    assert!(err.contains(needle), "{needle:?} not in: {err}");
    assert!(o.stdout.is_empty(), "work was done: {}", stdout(o));
}

#[test]
fn empty_or_unfitting_replay_strings_are_usage_errors() {
    assert_usage_error(&kwq(&["model", "replay", ""], &[]), "empty replay string");
    assert_usage_error(&kwq(&["model", "replay", "  "], &[]), "empty replay string");
    assert_usage_error(&kwq(&["model", "replay", "kwq1:nonsense"], &[]), "<TRACE>");
    // Parses, but the second step is not enabled in that state.
    let o = kwq(
        &[
            "model",
            "replay",
            "kwq1:v4:2019:coarse:lifo:i3:w4:a4:o2:Q1.Q1",
        ],
        &[],
    );
    assert_usage_error(&o, "step 2");
}

#[test]
fn a_valid_replay_string_replays() {
    let s = "kwq1:v4:2019:coarse:lifo:i3:w4:a4:o2:Q1.Q2.PA.PB.FA.FB.OA.BA.LA1.PC";
    let o = kwq(&["model", "replay", s], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("replayed 10 steps: DEADLOCK"));
}

#[test]
fn the_code_flag_replaces_version() {
    let o = kwq(
        &["model", "check", "--code", "v4", "--scenario", "2019"],
        &[],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("DEADLOCK reachable"), "{}", stdout(&o));
    let o = kwq(
        &["model", "check", "--version", "v4", "--scenario", "2019"],
        &[],
    );
    assert_usage_error(&o, "'--version'");
    let o = kwq(
        &["model", "check", "--code", "v9", "--scenario", "2019"],
        &[],
    );
    assert_usage_error(&o, "possible values: v3.16, v4");
    // clap's own --version still prints the program's version.
    let o = kwq(&["--version"], &[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).starts_with("kwq "));
}

fn with<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    [base, extra].concat()
}

#[test]
fn bad_numbers_are_usage_errors_from_flags_and_environment() {
    let base = ["model", "check", "--code", "kwq", "--scenario", "2019"];
    assert_usage_error(
        &kwq(&with(&base, &["--items", "0"]), &[]),
        "0 is not in 1..=8",
    );
    assert_usage_error(
        &kwq(&with(&base, &["--workers", "x"]), &[]),
        "not a whole number",
    );
    let o = kwq(&base, &[("KWQ_MODEL_ITEMS", "abc")]);
    assert_usage_error(&o, "(from KWQ_MODEL_ITEMS)");
    let o = kwq(&base, &[("KWQ_MODEL_MAX_STATES", "0")]);
    assert_usage_error(&o, "(from KWQ_MODEL_MAX_STATES)");
    let o = kwq(&base, &[("KWQ_MODEL_GRANULARITY", "bogus")]);
    assert_usage_error(&o, "possible values: coarse, fine, fine-all");
    // A flag beats its variable (which is then not read); digits may be grouped.
    for var in ["abc", "7"] {
        let o = kwq(
            &with(&base, &["--items", "2", "--max-states", "1_000_000"]),
            &[("KWQ_MODEL_ITEMS", var)],
        );
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stdout(&o).contains("2 upper items"), "{}", stdout(&o));
    }
}

#[test]
fn fine_conflicts_with_granularity_but_overrides_its_variable() {
    let base = [
        "model",
        "check",
        "--code",
        "v4",
        "--scenario",
        "2019",
        "--fine",
    ];
    let o = kwq(&[&base[..], &["--granularity", "fine-all"]].concat(), &[]);
    assert_usage_error(&o, "--fine cannot be used with --granularity");
    let o = kwq(&base, &[("KWQ_MODEL_GRANULARITY", "fine-all")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("fine steps"), "{}", stdout(&o));
}

#[test]
fn an_existing_trace_file_is_refused_before_the_work() {
    let dir = std::env::temp_dir().join(format!("kwq-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trace.txt");
    std::fs::write(&path, "keep me").unwrap();
    let p = path.to_str().unwrap();
    let args = ["model", "check", "--code", "v4", "--scenario", "2019"];
    let o = kwq(&[&args[..], &["--trace-file", p]].concat(), &[]);
    assert_usage_error(&o, "already exists");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "keep me");
    std::fs::remove_file(&path).unwrap();
    let o = kwq(&[&args[..], &["--trace-file", p]].concat(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .starts_with("kwq1:v4:2019:"));
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!Path::new(&dir).exists());
}

#[test]
fn reports_have_no_zero_placeholders() {
    for strategy in ["bfs", "dfs", "random"] {
        let o = kwq(
            &[
                "model",
                "check",
                "--code",
                "kwq",
                "--scenario",
                "2014",
                "--strategy",
                strategy,
                "--walks",
                "50",
            ],
            &[],
        );
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(!out.contains(" 0 transitions"), "{out}");
        assert!(!out.contains("0.000 s"), "{out}");
        assert!(!out.contains(" 0 states/s"), "{out}");
    }
}

#[test]
fn demo_refuses_a_requeue_count_too_small_to_check_anything() {
    let o = kwq(&["demo", "--requeues", "4"], &[]);
    assert_usage_error(&o, "4 is not in 100..=100000000");
}
