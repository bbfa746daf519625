//! Hand-written flag parser: `--flag VALUE` or `--flag=VALUE`; unknown flags
//! are errors (the caller exits 2).

pub(crate) const USAGE: &str = "\
kwq-bench <workload> --impl <name> [--items N] [--threads T] [workload flags] [--rep K]

workloads and impls:
  spawn    W1 one-shot submission throughput (default N = 1000000)
           impls: kwq kwq-work rayon threadpool crossbeam-pool tokio-spawn-blocking handoff
           --work-items K   persistent items for kwq-work (default 1024)
  latency  W3 wake-up latency of an idle pool (default N = 10000 samples)
           impls: kwq rayon threadpool crossbeam-pool tokio-spawn-blocking handoff bare-park
           --interval-us U  (default 1000)   --warmup W (default 100)
  ordered  W2 parallel stage then in-order stage (default N = 200000)
           impls: seq ceiling kwq kwq-caller kwq-iter rayon crossbeam-reorder pariter tbb
           (seq: one thread; ceiling: T threads fill an N-item buffer in
           chunks, then the fold — the machine's ceiling, not a peer)
           --rounds R       work per item (default 500)
           --inflight K     bound on items in flight (default 4096; rayon: window size)
           --expect 0xHEX   expected checksum (default: computed sequentially, untimed)
           --tbb-bin PATH   the oneTBB program (default: $KWQ_BENCH_TBB, else
                            kwq-bench-tbb next to this executable)

common flags:
  --impl NAME    implementation (required)
  --items N      number of items / jobs / samples
  --threads T    worker count (default: number of CPUs)
  --rep K        repeat the measured phase K times in this process; `seconds`
                 is the median, `runs_s` lists them all (default 1)
";

/// Parsed command line.
#[derive(Debug, Clone)]
pub(crate) struct Args {
    pub(crate) workload: String,
    pub(crate) imp: String,
    pub(crate) items: Option<u64>,
    pub(crate) threads: usize,
    pub(crate) rep: usize,
    pub(crate) work_items: usize,
    pub(crate) interval_us: u64,
    pub(crate) warmup: usize,
    pub(crate) rounds: u64,
    pub(crate) inflight: Option<usize>,
    pub(crate) expect: Option<u64>,
    pub(crate) tbb_bin: Option<String>,
}

pub(crate) enum Parsed {
    Run(Args),
    Help,
}

fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    let clean: String = v.chars().filter(|&c| c != '_').collect();
    clean
        .parse()
        .map_err(|_| format!("{flag}: {v:?} is not a valid number"))
}

pub(crate) fn parse(argv: impl Iterator<Item = String>) -> Result<Parsed, String> {
    let mut workload = None;
    let mut a = Args {
        workload: String::new(),
        imp: String::new(),
        items: None,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        rep: 1,
        work_items: 1024,
        interval_us: 1000,
        warmup: 100,
        rounds: 500,
        inflight: None,
        expect: None,
        tbb_bin: None,
    };
    let mut imp = None;
    let mut argv = argv.peekable();
    while let Some(arg) = argv.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(Parsed::Help);
        }
        let Some(flag) = arg.strip_prefix("--") else {
            if arg.starts_with('-') || workload.is_some() {
                return Err(format!("unexpected argument {arg:?}"));
            }
            workload = Some(arg);
            continue;
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (flag.to_string(), None),
        };
        const KNOWN: &[&str] = &[
            "impl",
            "items",
            "threads",
            "rep",
            "work-items",
            "interval-us",
            "warmup",
            "rounds",
            "inflight",
            "expect",
            "tbb-bin",
        ];
        if !KNOWN.contains(&name.as_str()) {
            return Err(format!("unknown flag --{name}"));
        }
        let value = match inline {
            Some(v) => v,
            None => argv
                .next()
                .ok_or_else(|| format!("--{name} needs a value"))?,
        };
        let f = format!("--{name}");
        match name.as_str() {
            "impl" => imp = Some(value),
            "items" => a.items = Some(num(&f, &value)?),
            "threads" => a.threads = num(&f, &value)?,
            "rep" => a.rep = num(&f, &value)?,
            "work-items" => a.work_items = num(&f, &value)?,
            "interval-us" => a.interval_us = num(&f, &value)?,
            "warmup" => a.warmup = num(&f, &value)?,
            "rounds" => a.rounds = num(&f, &value)?,
            "inflight" => a.inflight = Some(num(&f, &value)?),
            "expect" => {
                let hex = value.strip_prefix("0x").unwrap_or(&value);
                a.expect = Some(
                    u64::from_str_radix(hex, 16)
                        .map_err(|_| format!("--expect: {value:?} is not a hex u64"))?,
                );
            }
            "tbb-bin" => a.tbb_bin = Some(value),
            _ => unreachable!("checked against KNOWN"),
        }
    }
    a.workload = workload.ok_or("missing workload (spawn, latency, ordered)")?;
    a.imp = imp.ok_or("missing --impl")?;
    if a.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    if a.rep == 0 {
        return Err("--rep must be at least 1".into());
    }
    if a.work_items == 0 {
        return Err("--work-items must be at least 1".into());
    }
    if a.inflight == Some(0) {
        return Err("--inflight must be at least 1".into());
    }
    Ok(Parsed::Run(a))
}
