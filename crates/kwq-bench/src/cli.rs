//! The command line, parsed by clap: `kwq-bench <workload> --impl NAME
//! [--items N] [--threads T] [workload flags] [--rep K]`.
//!
//! Flags take `--flag VALUE` or `--flag=VALUE`. Everything clap rejects
//! (an unknown workload, flag or impl, a bad number) exits 2 with clap's
//! message on stderr before anything runs. Numbers may group digits with `_`
//! (`1_000_000`).
//!
//! Adding a workload is one module that defines a `#[derive(clap::Args)]`
//! struct (flattening [`Common`], declaring its `--impl` values) with a
//! `run(&self) -> Result<Report, Failure>` method, plus one line in the
//! `workloads!` list in `main.rs`. A workload that writes a file takes
//! `--output PATH` with [`new_output`] as its value parser and `--force`, and
//! calls [`refuse_existing`] before its measured phase.

use clap::Args;
use std::path::Path;

/// Flags every workload takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct Common {
    /// Number of items / jobs / samples [default: per workload].
    #[arg(long, value_parser = at_least::<u64>(1))]
    pub(crate) items: Option<u64>,
    /// Worker count.
    #[arg(long, default_value_t = cpus(), value_parser = at_least::<usize>(1))]
    pub(crate) threads: usize,
    /// Repeat the measured phase K times in this process; `seconds` is the
    /// median, `runs_s` lists them all.
    #[arg(long, default_value_t = 1, value_parser = at_least::<usize>(1))]
    pub(crate) rep: usize,
}

/// The number of CPUs this process may use (1 if unknown).
fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A whole number of type `T` that is at least `min`; `_` may group digits.
pub(crate) fn at_least<T: TryFrom<u64>>(min: u64) -> impl Fn(&str) -> Result<T, String> + Clone {
    between(min, u64::MAX)
}

/// A whole number of type `T` in `min..=max`; `_` may group digits.
pub(crate) fn between<T: TryFrom<u64>>(
    min: u64,
    max: u64,
) -> impl Fn(&str) -> Result<T, String> + Clone {
    move |s: &str| {
        let n: u64 = s
            .replace('_', "")
            .parse()
            .map_err(|_| "not a whole number".to_string())?;
        if n < min {
            return Err(format!("must be at least {min}"));
        }
        if n > max {
            return Err(format!("must be at most {max}"));
        }
        T::try_from(n).map_err(|_| format!("{n} is too large"))
    }
}

/// A `u64` written in hex, with or without `0x`.
pub(crate) fn hex_u64(s: &str) -> Result<u64, String> {
    let digits = s.strip_prefix("0x").unwrap_or(s);
    u64::from_str_radix(&digits.replace('_', ""), 16).map_err(|_| "not a hex u64".to_string())
}

/// The value parser of an `--output PATH`: a non-empty path. Whether it
/// may be overwritten depends on `--force`, so [`refuse_existing`] checks
/// that once both are parsed.
#[allow(dead_code)] // for the workloads that write files (W4, W5)
pub(crate) fn new_output(s: &str) -> Result<std::path::PathBuf, String> {
    if s.is_empty() {
        return Err("an empty path".into());
    }
    Ok(s.into())
}

/// Refuses, before any work, to overwrite an existing `path` unless `force`.
///
/// # Errors
///
/// [`Failure::Usage`](crate::Failure::Usage) if `path` exists (even as a
/// dangling symlink) and `force` is false.
#[allow(dead_code)] // for the workloads that write files (W4, W5)
pub(crate) fn refuse_existing(path: &Path, force: bool) -> Result<(), crate::Failure> {
    if !force && path.symlink_metadata().is_ok() {
        return Err(crate::Failure::Usage(format!(
            "{} already exists; pass --force to overwrite it",
            path.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_group_digits_and_respect_the_minimum() {
        assert_eq!(at_least::<u64>(1)("1_000_000"), Ok(1_000_000));
        assert_eq!(
            at_least::<u64>(1)("0"),
            Err("must be at least 1".to_string())
        );
        assert!(at_least::<u64>(0)("-1").is_err());
        assert!(at_least::<u8>(0)("256").is_err());
        assert_eq!(
            between::<u64>(1, 9)("10"),
            Err("must be at most 9".to_string())
        );
        assert_eq!(hex_u64("0xff"), Ok(255));
        assert_eq!(hex_u64("FF"), Ok(255));
        assert!(hex_u64("0xg").is_err());
    }

    #[test]
    fn existing_outputs_are_refused_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out");
        assert!(refuse_existing(&p, false).is_ok());
        std::fs::write(&p, b"x").unwrap();
        assert!(matches!(
            refuse_existing(&p, false),
            Err(crate::Failure::Usage(m)) if m.contains("--force")
        ));
        assert!(refuse_existing(&p, true).is_ok());
        assert_eq!(new_output(""), Err("an empty path".to_string()));
    }
}
