//! `kwq compress | decompress | test | list`: parallel zstd with the
//! `zstd` command's manners.
//!
//! Inputs are files or `-` (stdin; also when none is given). Without `-c`
//! or `-o`, `FILE` becomes `FILE.zst` (compress) or `FILE.zst` becomes
//! `FILE` (decompress), written to a temporary and renamed when complete
//! (see `compress_io.rs`), never over an existing file without `-f`. Each
//! input is handled in turn; a failure is reported and the next one tried;
//! the exit status is non-zero if any failed. Corrupt input is reported
//! with the byte offset of the offending frame.

use crate::compress_io::{install_signal_cleanup, parse_size, Progress, Sink, Staged};
use anyhow::{bail, Context as _};
use clap::Args;
use std::ffi::OsString;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Options shared by every subcommand.
#[derive(Debug, Args)]
pub struct Common {
    /// Input files (`-` or none: standard input).
    pub files: Vec<PathBuf>,
    /// Write to this file (one input only).
    #[arg(short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Write to standard output.
    #[arg(short = 'c', long = "stdout")]
    pub stdout: bool,
    /// Overwrite existing output files; write compressed data to a terminal.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Keep input files (the default).
    #[arg(short = 'k', long)]
    pub keep: bool,
    /// Remove input files after success.
    #[arg(long = "rm", conflicts_with = "keep")]
    pub remove: bool,
    /// Worker threads (default: all cores).
    #[arg(short = 'T', long = "threads", value_name = "N")]
    pub threads: Option<usize>,
    /// No progress bar, no summary.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// List the input files' frames instead (as `kwq list`).
    #[arg(short = 'l', long)]
    pub list: bool,
}

/// `kwq compress`.
#[derive(Debug, Args)]
pub struct CompressArgs {
    #[command(flatten)]
    pub common: Common,
    /// Compression level (-7..=22; `-#` works too, e.g. `-19`).
    #[arg(
        long,
        value_name = "L",
        default_value_t = 3,
        allow_negative_numbers = true
    )]
    pub level: i32,
    /// Bytes of input per frame (e.g. 4M; default 4 MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub frame_size: Option<u64>,
    /// Long-distance matching, with this window log (default 27).
    #[arg(long, value_name = "WLOG", num_args = 0..=1, default_missing_value = "27")]
    pub long: Option<u32>,
    /// Leave out the seek table.
    #[arg(long)]
    pub no_seek_table: bool,
}

/// `kwq decompress` and `kwq test`.
#[derive(Debug, Args)]
pub struct DecompressArgs {
    #[command(flatten)]
    pub common: Common,
    /// Most memory one frame may need (e.g. 512M; default 128 MiB).
    #[arg(long = "memory", value_name = "SIZE", value_parser = parse_size)]
    pub memory: Option<u64>,
}

/// Rewrites `-#` level flags (`-1`..`-22`) into `--level=#` so clap sees
/// them, as `zstd` accepts them. Stops at `--`.
pub fn rewrite_level_flags(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let args: Vec<OsString> = args.into_iter().collect();
    // Only `kwq compress` takes `-#`: the subcommand is the first word
    // after the program that is not the global `--log` flag or its value.
    let mut i = 1;
    while let Some(a) = args.get(i) {
        if a == "--log" {
            i += 2;
        } else if a.to_str().is_some_and(|s| s.starts_with("--log=")) {
            i += 1;
        } else {
            break;
        }
    }
    let mut done = args.get(i).is_none_or(|a| a != "compress");
    for a in args {
        if !done {
            if a == "--" {
                done = true;
            } else if let Some(s) = a.to_str() {
                let digits = s
                    .strip_prefix('-')
                    .filter(|d| !d.is_empty() && d.len() <= 2);
                if let Some(d) = digits.filter(|d| d.bytes().all(|b| b.is_ascii_digit())) {
                    out.push(OsString::from(format!("--level={d}")));
                    continue;
                }
            }
        }
        out.push(a);
    }
    out
}

fn is_stdin(p: &Path) -> bool {
    p.as_os_str() == "-"
}

fn inputs(c: &Common) -> Vec<PathBuf> {
    if c.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        c.files.clone()
    }
}

/// Reports one input's failure the way `zstd` does, with the byte offset
/// of corrupt input when there is one.
fn report(name: &Path, e: &anyhow::Error) {
    let offset = e.chain().find_map(|c| {
        c.downcast_ref::<kwq_zstd::Error>().or_else(|| {
            c.downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|i| i.downcast_ref::<kwq_zstd::Error>())
        })
    });
    let msg = format!("{e:#}");
    match offset.and_then(kwq_zstd::Error::offset) {
        Some(at) if !msg.contains(&format!("byte {at}")) => {
            eprintln!("kwq: {}: {e:#} (at byte {at})", name.display())
        }
        _ => eprintln!("kwq: {}: {msg}", name.display()),
    }
}

fn open_input(p: &Path) -> anyhow::Result<(Box<dyn Read>, Option<std::fs::Metadata>)> {
    if is_stdin(p) {
        return Ok((Box::new(io::stdin().lock()), None));
    }
    let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
    let m = f.metadata()?;
    if !m.is_file() {
        bail!("{} is not a regular file", p.display());
    }
    Ok((Box::new(f), Some(m)))
}

/// Picks where one input's output goes.
fn sink_for(
    c: &Common,
    input: &Path,
    dest: Option<PathBuf>,
    binary_out: bool,
) -> anyhow::Result<Sink> {
    let to_stdout = c.stdout || (dest.is_none() && c.output.is_none() && is_stdin(input));
    if to_stdout {
        if binary_out && !c.force && io::stdout().is_terminal() {
            bail!("refusing to write compressed data to a terminal (use -f)");
        }
        return Ok(Sink::Stdout(io::stdout().lock()));
    }
    let dest = c.output.clone().or(dest).context("no output name")?;
    Ok(Sink::File(Staged::create(&dest, c.force)?))
}

fn finish_sink(
    sink: Sink,
    meta: Option<&std::fs::Metadata>,
    c: &Common,
    input: &Path,
) -> anyhow::Result<()> {
    match sink {
        Sink::Stdout(mut s) => s.flush()?,
        Sink::File(f) => f.commit(meta, c.force)?,
    }
    if c.remove && !is_stdin(input) {
        std::fs::remove_file(input).with_context(|| format!("removing {}", input.display()))?;
    }
    Ok(())
}

fn check_outputs(c: &Common, files: &[PathBuf]) -> anyhow::Result<()> {
    if c.output.is_some() && files.len() > 1 {
        bail!("-o takes one input file, {} given", files.len());
    }
    if files.iter().filter(|f| is_stdin(f)).count() > 1 {
        bail!("standard input given more than once");
    }
    Ok(())
}

fn each(c: &Common, mut f: impl FnMut(&Path) -> anyhow::Result<()>) -> anyhow::Result<ExitCode> {
    let files = inputs(c);
    check_outputs(c, &files)?;
    install_signal_cleanup()?;
    let mut failed = false;
    for p in &files {
        if let Err(e) = f(p) {
            report(p, &e);
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `kwq compress`.
pub fn compress(a: CompressArgs) -> anyhow::Result<ExitCode> {
    if a.common.list {
        return crate::compress_list::list(&a.common);
    }
    let mut params = kwq_zstd::Params::new().level(a.level).long_distance(a.long);
    if let Some(fs) = a.frame_size {
        params = params.frame_size(usize::try_from(fs).unwrap_or(usize::MAX));
    }
    params.validate()?;
    let c = &a.common;
    each(c, |input| {
        let (reader, meta) = open_input(input)?;
        let dest = (!is_stdin(input)).then(|| {
            let mut s = input.as_os_str().to_owned();
            s.push(".zst");
            PathBuf::from(s)
        });
        let sink = sink_for(c, input, dest, true)?;
        let mut b = kwq_zstd::EncoderBuilder::new()
            .params(params.clone())
            .seek_table(!a.no_seek_table);
        if let Some(t) = c.threads {
            b = b.threads(t);
        }
        let mut enc = b.build(sink)?;
        let mut src = Progress::new(
            reader,
            meta.as_ref().map(|m| m.len()),
            &input.display().to_string(),
            c.quiet,
        );
        let n = enc
            .write_from(&mut src)
            .with_context(|| format!("compressing {}", input.display()))?;
        let sink = enc.finish().context("writing the output")?;
        src.finish();
        finish_sink(sink, meta.as_ref(), c, input)?;
        if !c.quiet && !is_stdin(input) && !c.stdout {
            eprintln!("{}: {n} bytes compressed", input.display());
        }
        Ok(())
    })
}

fn decode_one(input: &Path, a: &DecompressArgs, sink: &mut dyn Write) -> anyhow::Result<u64> {
    let c = &a.common;
    let (reader, meta) = open_input(input)?;
    let mut b = kwq_zstd::DecoderBuilder::new();
    if let Some(t) = c.threads {
        b = b.threads(t);
    }
    if let Some(m) = a.memory {
        b = b.memory_limit(m);
    }
    let src = Progress::new(
        reader,
        meta.as_ref().map(|m| m.len()),
        &input.display().to_string(),
        c.quiet,
    );
    let mut dec = b.build(src)?;
    let total = dec.copy_to(sink)?;
    Ok(total)
}

/// `kwq decompress`.
pub fn decompress(a: DecompressArgs) -> anyhow::Result<ExitCode> {
    let c = &a.common;
    if c.list {
        return crate::compress_list::list(c);
    }
    each(c, |input| {
        let dest = if is_stdin(input) || c.stdout || c.output.is_some() {
            None
        } else {
            let name = input.to_string_lossy();
            match name.strip_suffix(".zst") {
                Some(stem) if !stem.is_empty() => Some(PathBuf::from(stem)),
                _ => bail!("unknown suffix (expected .zst); use -o or -c"),
            }
        };
        let meta = if is_stdin(input) {
            None
        } else {
            std::fs::metadata(input).ok()
        };
        let mut sink = sink_for(c, input, dest, false)?;
        decode_one(input, &a, &mut sink)?;
        finish_sink(sink, meta.as_ref(), c, input)
    })
}

/// `kwq test`: decompress and discard.
pub fn test(a: DecompressArgs) -> anyhow::Result<ExitCode> {
    let c = &a.common;
    let files = inputs(c);
    let mut failed = false;
    for p in &files {
        match decode_one(p, &a, &mut io::sink()) {
            Ok(n) => {
                if !c.quiet {
                    eprintln!("{}: OK ({n} bytes)", p.display());
                }
            }
            Err(e) => {
                report(p, &e);
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::rewrite_level_flags;
    use std::ffi::OsString;

    fn rw(args: &[&str]) -> Vec<String> {
        rewrite_level_flags(args.iter().map(OsString::from))
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn level_flags_only_for_compress() {
        assert_eq!(
            rw(&["kwq", "compress", "-19", "f"]),
            ["kwq", "compress", "--level=19", "f"]
        );
        assert_eq!(
            rw(&["kwq", "--log", "debug", "compress", "-3"]),
            ["kwq", "--log", "debug", "compress", "--level=3"]
        );
        assert_eq!(
            rw(&["kwq", "compress", "--", "-3"]),
            ["kwq", "compress", "--", "-3"]
        );
        assert_eq!(
            rw(&["kwq", "decompress", "-3"]),
            ["kwq", "decompress", "-3"]
        );
        assert_eq!(
            rw(&["kwq", "compress", "-123"]),
            ["kwq", "compress", "-123"]
        );
    }
}
