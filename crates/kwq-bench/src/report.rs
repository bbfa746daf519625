//! The result line: one flat JSON object, written with serde_json.
//!
//! Fields keep the order a workload sets them in (`workload`, `impl` first);
//! setting a field again replaces its value in place. JSON has no NaN or
//! infinity: a non-finite number is written as `null` (never as invalid
//! JSON) and its field name is remembered, so `main` can warn on stderr.
//! A line from an external program (the oneTBB peer) is parsed and checked
//! to be one JSON object before it is passed on.

use crate::Failure;
use serde_json::{Map, Value};

/// One workload's result.
#[derive(Debug, Default, Clone)]
pub(crate) struct Report {
    fields: Map<String, Value>,
    non_finite: Vec<String>,
}

impl Report {
    /// A report that starts with `workload` and `impl`.
    pub(crate) fn new(workload: &str, imp: &str) -> Self {
        let mut r = Report::default();
        r.str("workload", workload).str("impl", imp);
        r
    }

    /// Parses a result line produced by another program.
    ///
    /// # Errors
    ///
    /// [`Failure::Check`] if `line` is not one JSON object.
    pub(crate) fn from_line(line: &str) -> Result<Self, Failure> {
        match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(fields)) => Ok(Report {
                fields,
                non_finite: Vec::new(),
            }),
            Ok(_) => Err(Failure::Check(format!("not a JSON object: {line:?}"))),
            Err(e) => Err(Failure::Check(format!("invalid JSON ({e}): {line:?}"))),
        }
    }

    pub(crate) fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.fields.insert(k.to_string(), Value::from(v));
        self
    }

    pub(crate) fn int(&mut self, k: &str, v: u64) -> &mut Self {
        self.fields.insert(k.to_string(), Value::from(v));
        self
    }

    /// A float, or `null` if it is NaN or infinite.
    pub(crate) fn float(&mut self, k: &str, v: f64) -> &mut Self {
        let value = self.finite(k, v);
        self.fields.insert(k.to_string(), value);
        self
    }

    /// An array of floats (non-finite ones become `null`).
    pub(crate) fn floats(&mut self, k: &str, v: &[f64]) -> &mut Self {
        let values = v.iter().map(|&x| self.finite(k, x)).collect();
        self.fields.insert(k.to_string(), Value::Array(values));
        self
    }

    fn finite(&mut self, k: &str, v: f64) -> Value {
        match serde_json::Number::from_f64(v) {
            Some(n) => Value::Number(n),
            None => {
                if !self.non_finite.iter().any(|f| f == k) {
                    self.non_finite.push(k.to_string());
                }
                Value::Null
            }
        }
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

    /// Fields whose value was NaN or infinite (written as `null`).
    pub(crate) fn non_finite(&self) -> &[String] {
        &self.non_finite
    }

    /// The JSON object on one line.
    pub(crate) fn to_line(&self) -> String {
        Value::Object(self.fields.clone()).to_string()
    }
}

/// The median of `v` (NaN if `v` is empty).
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(r: &Report) -> Map<String, Value> {
        match serde_json::from_str(&r.to_line()) {
            Ok(Value::Object(m)) => m,
            other => panic!("not an object: {other:?}"),
        }
    }

    #[test]
    fn fields_keep_their_order_and_escape_strings() {
        let mut r = Report::new("spawn", "kwq");
        r.int("items", 3).str("setup", "a \"quoted\"\n\\ value");
        r.int("items", 4);
        let line = r.to_line();
        assert!(line.starts_with(r#"{"workload":"spawn","impl":"kwq","items":4,"#));
        assert_eq!(parse(&r)["setup"], "a \"quoted\"\n\\ value");
    }

    #[test]
    fn non_finite_floats_become_null_and_are_reported() {
        let mut r = Report::new("latency", "kwq");
        r.float("seconds", f64::NAN)
            .float("items_per_s", f64::INFINITY)
            .float("p50_us", 1.5)
            .floats("runs_s", &[0.25, f64::NEG_INFINITY]);
        let m = parse(&r);
        assert_eq!(m["seconds"], Value::Null);
        assert_eq!(m["items_per_s"], Value::Null);
        assert_eq!(m["p50_us"], 1.5);
        assert_eq!(m["runs_s"], serde_json::json!([0.25, null]));
        assert_eq!(r.non_finite(), ["seconds", "items_per_s", "runs_s"]);
    }

    #[test]
    fn timing_uses_the_median_and_an_empty_run_list_is_null() {
        let mut r = Report::new("spawn", "kwq");
        r.timing(10, 2, &[3.0, 1.0, 2.0]);
        let m = parse(&r);
        assert_eq!(m["seconds"], 2.0);
        assert_eq!(m["items_per_s"], 5.0);
        assert_eq!(m["reps"], 3);
        let mut r = Report::new("spawn", "kwq");
        r.timing(10, 2, &[]);
        assert_eq!(parse(&r)["seconds"], Value::Null);
        assert!(!r.non_finite().is_empty());
    }

    #[test]
    fn external_lines_must_be_one_object() {
        let r = Report::from_line(r#"{"workload":"ordered","impl":"tbb","seconds":0.5}"#).unwrap();
        assert_eq!(parse(&r)["impl"], "tbb");
        assert!(Report::from_line("[1]").is_err());
        assert!(Report::from_line(r#"{"seconds":nan}"#).is_err());
        assert!(Report::from_line("").is_err());
    }
}
