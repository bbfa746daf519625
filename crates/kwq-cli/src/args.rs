//! Value parsers shared by the subcommands, so that every bad argument is
//! reported the same way: by clap, with exit code 2, before any work.
//!
//! - [`count`]: a bounded whole number (digits may be grouped with `_`); a
//!   bad value read from the argument's environment variable names it.
//! - [`new_file`]: an output path that must not exist yet (tools that write
//!   files refuse before doing the work).

use clap::builder::TypedValueParser;
use clap::error::ErrorKind;
use std::ffi::OsStr;
use std::marker::PhantomData;
use std::path::PathBuf;

/// A whole number in `lo..=hi` of the field's type; `_` may group digits
/// (`4_000_000`). A bad value read from the argument's environment variable
/// says so, since the command line may not mention that argument at all.
pub(crate) fn count<T>(lo: u64, hi: u64) -> Count<T> {
    Count {
        lo,
        hi,
        ty: PhantomData,
    }
}

/// The value parser [`count`] returns.
#[derive(Debug)]
pub(crate) struct Count<T> {
    lo: u64,
    hi: u64,
    ty: PhantomData<fn() -> T>,
}

impl<T> Clone for Count<T> {
    fn clone(&self) -> Self {
        count(self.lo, self.hi)
    }
}

impl<T: TryFrom<u64> + Clone + Send + Sync + 'static> TypedValueParser for Count<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &OsStr,
    ) -> Result<T, clap::Error> {
        let text = value.to_string_lossy();
        let checked = text
            .trim()
            .replace('_', "")
            .parse::<u64>()
            .map_err(|_| "not a whole number".to_string())
            .and_then(|n| {
                if (self.lo..=self.hi).contains(&n) {
                    T::try_from(n).map_err(|_| format!("{n} does not fit this platform"))
                } else {
                    Err(format!("{n} is not in {}..={}", self.lo, self.hi))
                }
            });
        checked.map_err(|why| {
            let name = arg.map_or_else(|| "...".to_string(), ToString::to_string);
            let source = arg
                .and_then(clap::Arg::get_env)
                .filter(|var| std::env::var_os(var).as_deref() == Some(value))
                .map(|var| format!(" (from {})", var.to_string_lossy()))
                .unwrap_or_default();
            cmd.clone().error(
                ErrorKind::ValueValidation,
                format!("invalid value '{text}' for '{name}'{source}: {why}"),
            )
        })
    }
}

pub(crate) fn new_file(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if s.is_empty() {
        return Err("an empty path".into());
    }
    if p.symlink_metadata().is_ok() {
        return Err(format!("{s} already exists (refusing to overwrite it)"));
    }
    Ok(p)
}
