//! W4 `compress` / `decompress`: parallel zstd with in-order output.
//!
//! Compression impls: `kwq` (kwq-zstd's `Encoder`: independent frames on a
//! kwq ordered queue, seek table), `pzstd` (`pzstd -p T`), `zstd-cli`
//! (`zstd -T T`, libzstd's multithreaded single frame), `zstd-mt` (the
//! zstd crate's multithreaded streaming encoder, in process) and `ceiling`
//! (T threads each compressing 1/T of the input, already in memory, in
//! frames of the same size, writing nothing: no ordering, no I/O — the
//! machine's limit for independent frames, not a peer).
//!
//! Decompression impls: `kwq` (kwq-zstd's `Decoder`, frames in parallel),
//! `zstd-cli` (`zstd -d`, single-threaded as libzstd always is), `pzstd`
//! (`pzstd -d -p T`). Output goes to `--output` (default `/dev/null`).
//!
//! Fields: `in_bytes`, `out_bytes`, `ratio` (uncompressed / compressed),
//! `mb_per_s` (uncompressed MB, 10^6 bytes, per second, both directions),
//! `frame_kib`, `peak_rss_kib` (this process's `VmHWM` for in-process
//! impls; the child's, sampled every 5 ms, for external ones). Every
//! `cpu_s` is user + system CPU seconds per run (this process plus its
//! waited-for children): on a loaded machine it shows efficiency where
//! wall time mostly shows how many runnable threads an impl has. Every
//! compressed output is checked, untimed, by decoding it with the stock
//! `zstd -d` and comparing with the input (`--no-verify` skips that).

use crate::cli::{at_least, between, Common};
use crate::{Failure, Report};
use clap::builder::PossibleValuesParser;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const COMPRESS_IMPLS: [&str; 5] = ["kwq", "pzstd", "zstd-cli", "zstd-mt", "ceiling"];
const DECOMPRESS_IMPLS: [&str; 3] = ["kwq", "zstd-cli", "pzstd"];

/// Flags of `kwq-bench compress`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct CompressArgs {
    /// Implementation (ceiling: the machine's limit, not a peer).
    #[arg(long = "impl", value_name = "NAME", value_parser = PossibleValuesParser::new(COMPRESS_IMPLS))]
    imp: String,
    #[command(flatten)]
    common: Common,
    /// The file to compress.
    #[arg(long)]
    input: PathBuf,
    /// Where to write the compressed file [default: a temporary, removed].
    #[arg(long)]
    output: Option<PathBuf>,
    /// zstd level.
    #[arg(long, default_value_t = 3, allow_negative_numbers = true)]
    level: i32,
    /// Frame size in KiB (kwq, ceiling) [default: kwq-zstd's default].
    #[arg(long, value_parser = between::<usize>(1, 1 << 20))]
    chunk_kib: Option<usize>,
    /// Skip the untimed `zstd -d` check of the output.
    #[arg(long)]
    no_verify: bool,
    /// Frames in flight for kwq [default: kwq-zstd's, 4 × threads].
    #[arg(long, value_parser = at_least::<usize>(1))]
    inflight: Option<usize>,
}

/// Flags of `kwq-bench decompress`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DecompressArgs {
    /// Implementation.
    #[arg(long = "impl", value_name = "NAME", value_parser = PossibleValuesParser::new(DECOMPRESS_IMPLS))]
    imp: String,
    #[command(flatten)]
    common: Common,
    /// The compressed file.
    #[arg(long)]
    input: PathBuf,
    /// Where the output goes.
    #[arg(long, default_value = "/dev/null")]
    output: PathBuf,
    /// In-flight frames for kwq [default: 2 × threads + 1].
    #[arg(long, value_parser = at_least::<usize>(1))]
    inflight: Option<usize>,
}

impl CompressArgs {
    pub(crate) fn run(&self) -> Result<Report, Failure> {
        run_compress(self)
    }
}

impl DecompressArgs {
    pub(crate) fn run(&self) -> Result<Report, Failure> {
        run_decompress(self)
    }
}

fn io_fail(what: &str) -> impl Fn(io::Error) -> Failure + '_ {
    move |e| Failure::Check(format!("{what}: {e}"))
}

/// CPU seconds (user + system) used so far by this process and by its
/// waited-for children, from `/proc/self/stat` (clock ticks of 1/100 s).
fn cpu_seconds() -> (f64, f64) {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at 3.
    let rest = s.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    let get = |i: usize| f.get(i - 3).copied().unwrap_or(0) as f64 / 100.0;
    (get(14) + get(15), get(16) + get(17))
}

/// Runs an external program, sampling its peak RSS; returns (seconds, KiB).
fn external(mut cmd: Command, stdout: Option<File>) -> Result<(f64, u64), Failure> {
    let prog = format!("{cmd:?}");
    cmd.stdin(Stdio::null());
    if let Some(f) = stdout {
        cmd.stdout(f);
    }
    let t0 = Instant::now();
    let mut child = cmd.spawn().map_err(|e| {
        Failure::Usage(format!(
            "cannot run {prog}: {e} (install the Debian package zstd)"
        ))
    })?;
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let status = loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(v) = s.lines().find_map(|l| l.strip_prefix("VmHWM:")) {
                peak = peak.max(v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0));
            }
        }
        if let Some(st) = child.try_wait().map_err(io_fail("wait"))? {
            break st;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let secs = t0.elapsed().as_secs_f64();
    if !status.success() {
        return Err(Failure::Check(format!("{prog} failed: {status}")));
    }
    Ok((secs, peak))
}

fn compress_once(
    a: &CompressArgs,
    out: &Path,
    frame: usize,
    data: Option<&[u8]>,
) -> Result<(f64, u64), Failure> {
    let t = a.common.threads;
    let lvl = format!("-{}", a.level);
    match a.imp.as_str() {
        "kwq" => {
            let t0 = Instant::now();
            let mut src = File::open(&a.input).map_err(io_fail("input"))?;
            let sink = File::create(out).map_err(io_fail("output"))?;
            let params = kwq_zstd::Params::new().level(a.level).frame_size(frame);
            let mut b = kwq_zstd::EncoderBuilder::new().params(params).threads(t);
            if let Some(k) = a.inflight {
                b = b.in_flight(k);
            }
            let mut enc = b.build(sink).map_err(|e| Failure::Usage(e.to_string()))?;
            enc.write_from(&mut src).map_err(io_fail("compress"))?;
            enc.finish().map_err(io_fail("finish"))?;
            Ok((t0.elapsed().as_secs_f64(), crate::peak_rss_kib()))
        }
        "zstd-mt" => {
            let t0 = Instant::now();
            let mut src = File::open(&a.input).map_err(io_fail("input"))?;
            let sink = File::create(out).map_err(io_fail("output"))?;
            let mut enc =
                zstd::stream::write::Encoder::new(sink, a.level).map_err(io_fail("zstd"))?;
            enc.multithread(t as u32)
                .map_err(io_fail("zstd multithread"))?;
            io::copy(&mut src, &mut enc).map_err(io_fail("compress"))?;
            enc.finish().map_err(io_fail("finish"))?;
            Ok((t0.elapsed().as_secs_f64(), crate::peak_rss_kib()))
        }
        "pzstd" => {
            let mut c = Command::new("pzstd");
            c.args(["-q", "-f", "-p", &t.to_string(), &lvl])
                .arg(&a.input)
                .arg("-o")
                .arg(out);
            external(c, None)
        }
        "zstd-cli" => {
            let mut c = Command::new("zstd");
            c.args(["-q", "-f", &format!("-T{t}"), &lvl])
                .arg(&a.input)
                .arg("-o")
                .arg(out);
            external(c, None)
        }
        "ceiling" => {
            let data = data.expect("ceiling has its input in memory");
            let t0 = Instant::now();
            let total = ceiling(data, t, frame, a.level)?;
            let secs = t0.elapsed().as_secs_f64();
            // The ceiling writes nothing; record the size it reached.
            std::fs::write(out, total.to_le_bytes()).map_err(io_fail("output"))?;
            Ok((secs, crate::peak_rss_kib()))
        }
        other => Err(Failure::Usage(format!("unknown impl {other}"))),
    }
}

/// T threads, each compressing a contiguous 1/T of `data` in frames, no
/// ordering between them; returns the total compressed size.
fn ceiling(data: &[u8], threads: usize, frame: usize, level: i32) -> Result<u64, Failure> {
    let per = data.len().div_ceil(threads).max(1);
    let params = kwq_zstd::Params::new().level(level).frame_size(frame);
    std::thread::scope(|s| {
        let hs: Vec<_> = data
            .chunks(per)
            .map(|part| {
                let params = params.clone();
                s.spawn(move || -> Result<u64, String> {
                    let mut c =
                        kwq_zstd::ChunkCompressor::new(&params).map_err(|e| e.to_string())?;
                    let mut out = Vec::new();
                    let mut total = 0u64;
                    for f in part.chunks(frame) {
                        c.compress_into(f, &mut out).map_err(|e| e.to_string())?;
                        total += out.len() as u64;
                    }
                    Ok(total)
                })
            })
            .collect();
        let mut total = 0;
        for h in hs {
            total += h
                .join()
                .map_err(|_| Failure::Check("ceiling thread panicked".into()))?
                .map_err(Failure::Check)?;
        }
        Ok(total)
    })
}

/// Decodes `out` with the stock `zstd -d` and compares it with `input`.
fn verify(input: &Path, out: &Path) -> Result<(), Failure> {
    let mut child = Command::new("zstd")
        .args(["-d", "-c", "-q"])
        .arg(out)
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| Failure::Usage(format!("verify needs zstd: {e}")))?;
    let mut a = io::BufReader::new(File::open(input).map_err(io_fail("input"))?);
    let mut b = child.stdout.take().expect("piped");
    let (mut ba, mut bb) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    let mut at = 0u64;
    loop {
        let n = a.read(&mut ba).map_err(io_fail("input"))?;
        b.read_exact(&mut bb[..n]).map_err(|e| {
            Failure::Check(format!(
                "zstd -d output shorter than the input (at byte {at}): {e}"
            ))
        })?;
        if ba[..n] != bb[..n] {
            return Err(Failure::Check(format!(
                "zstd -d output differs from the input near byte {at}"
            )));
        }
        at += n as u64;
        if n == 0 {
            break;
        }
    }
    let mut rest = [0u8; 1];
    if b.read(&mut rest).map_err(io_fail("zstd -d"))? != 0 {
        return Err(Failure::Check(
            "zstd -d output longer than the input".into(),
        ));
    }
    let st = child.wait().map_err(io_fail("zstd -d"))?;
    if !st.success() {
        return Err(Failure::Check(format!("zstd -d refused the output: {st}")));
    }
    Ok(())
}

fn run_compress(a: &CompressArgs) -> Result<Report, Failure> {
    let in_bytes = std::fs::metadata(&a.input).map_err(io_fail("input"))?.len();
    let frame = a
        .chunk_kib
        .map_or(kwq_zstd::DEFAULT_FRAME_SIZE, |k| k << 10);
    let tmp;
    let out = match &a.output {
        Some(p) => p.clone(),
        None => {
            tmp = tempfile::Builder::new()
                .prefix("kwq-bench-")
                .suffix(".zst")
                .tempfile()
                .map_err(io_fail("temporary"))?;
            tmp.path().to_path_buf()
        }
    };
    let data = (a.imp == "ceiling")
        .then(|| std::fs::read(&a.input))
        .transpose()
        .map_err(io_fail("input"))?;
    let mut runs = Vec::new();
    let mut rss = 0;
    let (self0, kids0) = cpu_seconds();
    for _ in 0..a.common.rep {
        let (s, r) = compress_once(a, &out, frame, data.as_deref())?;
        runs.push(s);
        rss = rss.max(r);
    }
    let (self1, kids1) = cpu_seconds();
    let cpu_s = (self1 - self0 + kids1 - kids0) / a.common.rep as f64;
    let out_bytes = if a.imp == "ceiling" {
        let b = std::fs::read(&out).map_err(io_fail("output"))?;
        u64::from_le_bytes(b.get(..8).and_then(|s| s.try_into().ok()).unwrap_or([0; 8]))
    } else {
        if !a.no_verify {
            verify(&a.input, &out)?;
        }
        std::fs::metadata(&out).map_err(io_fail("output"))?.len()
    };
    let med = crate::report::median(&runs);
    let mut r = Report::new("compress", &a.imp);
    r.timing(in_bytes, a.common.threads, &runs)
        .int("in_bytes", in_bytes)
        .int("out_bytes", out_bytes)
        .float("ratio", in_bytes as f64 / out_bytes.max(1) as f64)
        .float("mb_per_s", in_bytes as f64 / 1e6 / med)
        .int("level", a.level as u64)
        .int(
            "frame_kib",
            if matches!(a.imp.as_str(), "kwq" | "ceiling") {
                (frame >> 10) as u64
            } else {
                0
            },
        )
        .int("peak_rss_kib", rss)
        .float("cpu_s", cpu_s);
    Ok(r)
}

fn run_decompress(a: &DecompressArgs) -> Result<Report, Failure> {
    let in_bytes = std::fs::metadata(&a.input).map_err(io_fail("input"))?.len();
    let t = a.common.threads;
    let mut runs = Vec::new();
    let mut rss = 0;
    let mut out_bytes = 0;
    let (self0, kids0) = cpu_seconds();
    for _ in 0..a.common.rep {
        let sink = File::create(&a.output).map_err(io_fail("output"))?;
        let (s, r, n) = match a.imp.as_str() {
            "kwq" => {
                let t0 = Instant::now();
                let src = File::open(&a.input).map_err(io_fail("input"))?;
                let mut b = kwq_zstd::DecoderBuilder::new().threads(t);
                if let Some(k) = a.inflight {
                    b = b.in_flight(k);
                }
                let mut dec = b.build(src).map_err(|e| Failure::Usage(e.to_string()))?;
                let mut sink = sink;
                let n = dec
                    .copy_to(&mut sink)
                    .map_err(|e| Failure::Check(format!("decompress: {e}")))?;
                sink.flush().map_err(io_fail("output"))?;
                (t0.elapsed().as_secs_f64(), crate::peak_rss_kib(), n)
            }
            "zstd-cli" => {
                let mut c = Command::new("zstd");
                c.args(["-d", "-q", "-c"]).arg(&a.input);
                let (s, r) = external(c, Some(sink))?;
                (
                    s,
                    r,
                    std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0),
                )
            }
            "pzstd" => {
                let mut c = Command::new("pzstd");
                c.args(["-d", "-q", "-c", "-p", &t.to_string()])
                    .arg(&a.input);
                let (s, r) = external(c, Some(sink))?;
                (
                    s,
                    r,
                    std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0),
                )
            }
            other => return Err(Failure::Usage(format!("unknown impl {other}"))),
        };
        runs.push(s);
        rss = rss.max(r);
        out_bytes = n;
    }
    let (self1, kids1) = cpu_seconds();
    let cpu_s = (self1 - self0 + kids1 - kids0) / a.common.rep as f64;
    if out_bytes == 0 && a.output == Path::new("/dev/null") {
        // /dev/null has no length: count with the library, untimed.
        let src = File::open(&a.input).map_err(io_fail("input"))?;
        let mut dec = kwq_zstd::Decoder::new(src).map_err(|e| Failure::Check(e.to_string()))?;
        out_bytes = io::copy(&mut dec, &mut io::sink()).map_err(io_fail("count"))?;
    }
    let med = crate::report::median(&runs);
    let mut r = Report::new("decompress", &a.imp);
    r.timing(out_bytes, t, &runs)
        .int("in_bytes", in_bytes)
        .int("out_bytes", out_bytes)
        .float("ratio", out_bytes as f64 / in_bytes.max(1) as f64)
        .float("mb_per_s", out_bytes as f64 / 1e6 / med)
        .int("peak_rss_kib", rss)
        .float("cpu_s", cpu_s);
    Ok(r)
}
