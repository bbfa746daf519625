//! `kwq-bench`: the benchmark binary of `../../shared/bench-spec.md`.
//!
//! ```text
//! kwq-bench <workload> --impl <name> [--items N] [--threads T] [workload flags] [--rep K]
//! ```
//!
//! Workloads: `spawn` (W1), `ordered` (W2), `latency` (W3). Every workload
//! runs kwq and its peers (rayon, threadpool, a crossbeam-channel pool, tokio
//! `spawn_blocking`, oneTBB, pariter, ...) from this one binary, so that
//! BENCHMARKS.md can quote same-session ratios. The last line of stdout is
//! one JSON object.
#![forbid(unsafe_code)]

mod cli;
mod latency;
mod ordered;
mod peers;
mod spawn;

use std::process::ExitCode;

/// Sizes and settings shared by every workload.
pub(crate) use cli::Args;

fn main() -> ExitCode {
    let args = match cli::parse(std::env::args().skip(1)) {
        Ok(cli::Parsed::Run(a)) => a,
        Ok(cli::Parsed::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("kwq-bench: {msg}");
            eprintln!("run `kwq-bench --help` for usage");
            return ExitCode::from(2);
        }
    };
    let result = match args.workload.as_str() {
        "spawn" => spawn::run(&args),
        "latency" => latency::run(&args),
        "ordered" => ordered::run(&args),
        other => Err(Failure::Usage(format!("unknown workload {other:?}"))),
    };
    match result {
        Ok(json) => {
            println!("{}", json.finish());
            ExitCode::SUCCESS
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("kwq-bench: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Check(msg)) => {
            eprintln!("kwq-bench: check failed: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Passthrough(code)) => ExitCode::from(code),
    }
}

/// Why a workload did not produce a result.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Bad flags or impl name (exit 2).
    Usage(String),
    /// A result check failed (exit 1).
    Check(String),
    /// An external program's exit code, already reported.
    Passthrough(u8),
}

/// A flat JSON object, written by hand (numbers and strings only).
#[derive(Debug, Default)]
pub(crate) struct Json {
    fields: Vec<(String, String)>,
    /// A complete JSON line produced elsewhere (the oneTBB program).
    raw: Option<String>,
}

impl Json {
    pub(crate) fn new(workload: &str, imp: &str) -> Self {
        let mut j = Json::default();
        j.str("workload", workload);
        j.str("impl", imp);
        j
    }
    pub(crate) fn raw(line: String) -> Self {
        Json {
            fields: Vec::new(),
            raw: Some(line),
        }
    }
    pub(crate) fn str(&mut self, k: &str, v: &str) -> &mut Self {
        let mut s = String::with_capacity(v.len() + 2);
        s.push('"');
        for c in v.chars() {
            match c {
                '"' => s.push_str("\\\""),
                '\\' => s.push_str("\\\\"),
                c if (c as u32) < 0x20 => s.push_str(&format!("\\u{:04x}", c as u32)),
                c => s.push(c),
            }
        }
        s.push('"');
        self.set(k, s)
    }
    pub(crate) fn int(&mut self, k: &str, v: u64) -> &mut Self {
        self.set(k, v.to_string())
    }
    pub(crate) fn float(&mut self, k: &str, v: f64) -> &mut Self {
        let s = if v.is_finite() {
            let s = format!("{v:.6}");
            // Trim trailing zeros but keep it a valid JSON number.
            let s = s.trim_end_matches('0');
            let s = s
                .strip_suffix('.')
                .map(|x| format!("{x}.0"))
                .unwrap_or(s.to_string());
            s
        } else {
            "null".to_string()
        };
        self.set(k, s)
    }
    pub(crate) fn floats(&mut self, k: &str, v: &[f64]) -> &mut Self {
        let parts: Vec<String> = v.iter().map(|x| format!("{x:.6}")).collect();
        self.set(k, format!("[{}]", parts.join(",")))
    }
    fn set(&mut self, k: &str, v: String) -> &mut Self {
        if let Some(slot) = self.fields.iter_mut().find(|(kk, _)| kk == k) {
            slot.1 = v;
        } else {
            self.fields.push((k.to_string(), v));
        }
        self
    }
    /// The standard timing fields: `seconds` is the median of the measured
    /// repetitions, `items_per_s` is derived from it.
    pub(crate) fn timing(&mut self, items: u64, threads: usize, runs: &[f64]) -> &mut Self {
        let med = median(runs);
        self.int("items", items)
            .float("seconds", med)
            .float("items_per_s", items as f64 / med)
            .int("threads", threads as u64);
        if runs.len() > 1 {
            self.int("reps", runs.len() as u64).floats("runs_s", runs);
        }
        self
    }
    pub(crate) fn finish(&self) -> String {
        if let Some(r) = &self.raw {
            return r.clone();
        }
        let body: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v}"))
            .collect();
        format!("{{{}}}", body.join(","))
    }
}

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Peak resident set size of this process (`VmHWM`), in KiB.
pub(crate) fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}
