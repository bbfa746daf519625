//! Search bounds and scenario sizes, loom-style: a `#[non_exhaustive]` struct
//! with public documented fields whose defaults can be overridden from
//! `KWQ_MODEL_*` environment variables.

use crate::setup::{Granularity, Scenario, Setup, Version, MAX_ITEMS, MAX_WORKERS};
use crate::AllocPolicy;
use std::fmt;

/// Bounds of one model-checking run.
///
/// [`Config::default`] gives the built-in values below; [`Config::from_env`]
/// starts from them and applies every `KWQ_MODEL_*` variable that is set.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Stop exploring after this many distinct states and report the search
    /// as *bounded* (`KWQ_MODEL_MAX_STATES`, default 4 000 000).
    pub max_states: usize,
    /// Do not extend a path beyond this many steps (`KWQ_MODEL_MAX_DEPTH`,
    /// default 400; the scenarios' longest paths are far shorter, and a run
    /// that hits the bound says so).
    pub max_depth: usize,
    /// Worker cap of the pool (`KWQ_MODEL_MAX_WORKERS`, default 4, at most 8).
    pub max_workers: u8,
    /// Delalloc items queued by the (top) filesystem's writeback
    /// (`KWQ_MODEL_ITEMS`, default 3, at most 8). The bottom filesystem's and
    /// the end-io items come on top, at most one per upper item.
    pub items: u8,
    /// At most this many ordered phases wait for I/O in one run
    /// (`KWQ_MODEL_WAITS`, default 2, at most `items`).
    pub waits: u8,
    /// `max_active` of each workqueue (`KWQ_MODEL_MAX_ACTIVE`, default 4 =
    /// Btrfs `thread_pool_size` on a 2-CPU machine, `min(ncpu + 2, 8)`).
    pub max_active: u8,
    /// Seed of the random-walk strategy (`KWQ_MODEL_SEED`, default 1).
    pub seed: u64,
    /// Number of random walks (`KWQ_MODEL_WALKS`, default 10 000).
    pub walks: usize,
    /// Step granularity used by [`Config::setup`] (`KWQ_MODEL_GRANULARITY`:
    /// `coarse`, `fine` or `fine-all`; default `coarse`).
    pub granularity: Granularity,
    /// Allocator policy used by [`Config::setup`] (`KWQ_MODEL_ALLOC`: `lifo`
    /// or `any`; default `lifo`).
    pub alloc: AllocPolicy,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            max_states: 4_000_000,
            max_depth: 400,
            max_workers: 4,
            items: 3,
            waits: 2,
            max_active: 4,
            seed: 1,
            walks: 10_000,
            granularity: Granularity::Coarse,
            alloc: AllocPolicy::Lifo,
        }
    }
}

/// A `KWQ_MODEL_*` variable that could not be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    var: &'static str,
    value: String,
    reason: String,
}

impl ConfigError {
    /// The environment variable at fault.
    #[must_use]
    pub fn variable(&self) -> &'static str {
        self.var
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={:?}: {}", self.var, self.value, self.reason)
    }
}

impl std::error::Error for ConfigError {}

fn num<T: std::str::FromStr>(
    var: &'static str,
    value: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<T, ConfigError> {
    let err = |reason: String| ConfigError {
        var,
        value: value.to_string(),
        reason,
    };
    let n: u64 = value
        .trim()
        .replace('_', "")
        .parse()
        .map_err(|_| err("not a non-negative integer".into()))?;
    if !range.contains(&n) {
        return Err(err(format!(
            "out of range {}..={}",
            range.start(),
            range.end()
        )));
    }
    n.to_string()
        .parse()
        .map_err(|_| err("does not fit the field".into()))
}

impl Config {
    /// The defaults, overridden by every `KWQ_MODEL_*` variable that is set.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first variable that is set but invalid.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|k| std::env::var(k).ok())
    }

    /// Like [`Config::from_env`] with an arbitrary lookup (for tests).
    ///
    /// # Errors
    ///
    /// As [`Config::from_env`].
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut c = Config::default();
        if let Some(v) = get("KWQ_MODEL_MAX_STATES") {
            c.max_states = num("KWQ_MODEL_MAX_STATES", &v, 1..=u32::MAX as u64)?;
        }
        if let Some(v) = get("KWQ_MODEL_MAX_DEPTH") {
            c.max_depth = num("KWQ_MODEL_MAX_DEPTH", &v, 1..=100_000)?;
        }
        if let Some(v) = get("KWQ_MODEL_MAX_WORKERS") {
            c.max_workers = num("KWQ_MODEL_MAX_WORKERS", &v, 1..=MAX_WORKERS as u64)?;
        }
        if let Some(v) = get("KWQ_MODEL_ITEMS") {
            c.items = num("KWQ_MODEL_ITEMS", &v, 1..=MAX_ITEMS as u64)?;
        }
        if let Some(v) = get("KWQ_MODEL_WAITS") {
            c.waits = num("KWQ_MODEL_WAITS", &v, 0..=MAX_ITEMS as u64)?;
        }
        if let Some(v) = get("KWQ_MODEL_MAX_ACTIVE") {
            c.max_active = num("KWQ_MODEL_MAX_ACTIVE", &v, 1..=255)?;
        }
        if let Some(v) = get("KWQ_MODEL_SEED") {
            c.seed = num("KWQ_MODEL_SEED", &v, 0..=u64::MAX)?;
        }
        if let Some(v) = get("KWQ_MODEL_WALKS") {
            c.walks = num("KWQ_MODEL_WALKS", &v, 1..=u32::MAX as u64)?;
        }
        if let Some(v) = get("KWQ_MODEL_GRANULARITY") {
            c.granularity = v.trim().parse().map_err(|e| ConfigError {
                var: "KWQ_MODEL_GRANULARITY",
                value: v.clone(),
                reason: format!("{e}"),
            })?;
        }
        if let Some(v) = get("KWQ_MODEL_ALLOC") {
            c.alloc = v.trim().parse().map_err(|e| ConfigError {
                var: "KWQ_MODEL_ALLOC",
                value: v.clone(),
                reason: format!("{e}"),
            })?;
        }
        Ok(c)
    }

    /// The setup for `version × scenario` with this config's sizes,
    /// granularity and allocator.
    #[must_use]
    pub fn setup(&self, version: Version, scenario: Scenario) -> Setup {
        Setup {
            version,
            scenario,
            granularity: self.granularity,
            alloc: self.alloc,
            items: self.items,
            waits: self.waits.min(self.items),
            max_workers: self.max_workers,
            max_active: self.max_active,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_and_errors_name_the_variable() {
        let c = Config::from_lookup(|k| match k {
            "KWQ_MODEL_ITEMS" => Some("5".into()),
            "KWQ_MODEL_MAX_STATES" => Some("1_000".into()),
            "KWQ_MODEL_GRANULARITY" => Some("fine".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.items, 5);
        assert_eq!(c.max_states, 1000);
        assert_eq!(c.granularity, Granularity::Fine);
        assert_eq!(c.max_workers, Config::default().max_workers);

        let e = Config::from_lookup(|k| (k == "KWQ_MODEL_MAX_WORKERS").then(|| "99".into()))
            .unwrap_err();
        assert_eq!(e.variable(), "KWQ_MODEL_MAX_WORKERS");
        assert!(e.to_string().contains("KWQ_MODEL_MAX_WORKERS"), "{e}");

        let e =
            Config::from_lookup(|k| (k == "KWQ_MODEL_ALLOC").then(|| "fifo".into())).unwrap_err();
        assert!(e.to_string().starts_with("KWQ_MODEL_ALLOC="), "{e}");
        let e = Config::from_lookup(|k| (k == "KWQ_MODEL_SEED").then(|| "x".into())).unwrap_err();
        assert_eq!(e.variable(), "KWQ_MODEL_SEED");
    }
}
