//! `GET /metrics`: Prometheus's text format, written by hand (a few
//! counters and two histograms need no crate). Labels come from fixed sets
//! (kind, status, action, result): never a resource or run id.

use std::collections::BTreeMap;
use std::fmt::Write;

/// The buckets of the run-duration histogram, in seconds.
const RUN_BUCKETS: [f64; 9] = [1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0];
/// The buckets of the lock-acquisition histogram, in seconds.
const LOCK_BUCKETS: [f64; 6] = [0.01, 0.05, 0.25, 1.0, 5.0, 30.0];

#[derive(Debug, Default)]
pub struct Metrics {
    runs: BTreeMap<(String, String), u64>,
    steps: BTreeMap<(String, String), u64>,
    run_durations: Histogram,
    lock_waits: Histogram,
    lock_conflicts: u64,
    savings_realised: f64,
    requests: BTreeMap<u16, u64>,
}

#[derive(Debug, Default)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, buckets: &[f64], v: f64) {
        if self.counts.len() != buckets.len() {
            self.counts = vec![0; buckets.len()];
        }
        for (i, b) in buckets.iter().enumerate() {
            if v <= *b {
                self.counts[i] += 1;
            }
        }
        self.sum += v;
        self.count += 1;
    }

    fn write(&self, out: &mut String, name: &str, help: &str, buckets: &[f64]) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (i, b) in buckets.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.counts.get(i).copied().unwrap_or(0)
            );
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

impl Metrics {
    /// A run of `kind` ended with `status` after `seconds`, realising
    /// `savings` a month.
    pub fn run(&mut self, kind: &str, status: &str, seconds: f64, savings: f64) {
        *self
            .runs
            .entry((kind.to_string(), status.to_string()))
            .or_default() += 1;
        self.run_durations.observe(&RUN_BUCKETS, seconds);
        if kind == "apply" && savings.is_finite() {
            self.savings_realised += savings;
        }
    }

    /// An apply run's realised savings were undone by a rollback.
    pub fn undo_savings(&mut self, savings: f64) {
        if savings.is_finite() {
            self.savings_realised -= savings;
        }
    }

    /// A step of an `action` ended so (`done`, `failed`, `skipped`, `retried`).
    pub fn step(&mut self, action: &str, result: &str) {
        *self
            .steps
            .entry((action.to_string(), result.to_string()))
            .or_default() += 1;
    }

    /// Taking the state's lock took `seconds` (`conflict`: it was held).
    pub fn lock(&mut self, seconds: f64, conflict: bool) {
        self.lock_waits.observe(&LOCK_BUCKETS, seconds);
        if conflict {
            self.lock_conflicts += 1;
        }
    }

    pub fn request(&mut self, status: u16) {
        *self.requests.entry(status).or_default() += 1;
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP pare_runs_total Runs this server started, by kind and how they ended."
        );
        let _ = writeln!(out, "# TYPE pare_runs_total counter");
        for ((kind, status), n) in &self.runs {
            let _ = writeln!(
                out,
                "pare_runs_total{{kind=\"{kind}\",status=\"{status}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP pare_steps_total Steps of this server's runs, by action and result."
        );
        let _ = writeln!(out, "# TYPE pare_steps_total counter");
        for ((action, result), n) in &self.steps {
            let _ = writeln!(
                out,
                "pare_steps_total{{action=\"{action}\",result=\"{result}\"}} {n}"
            );
        }
        self.run_durations.write(
            &mut out,
            "pare_run_duration_seconds",
            "How long this server's runs took.",
            &RUN_BUCKETS,
        );
        let _ = writeln!(
            out,
            "# HELP pare_savings_realised_usd_monthly Monthly savings realised by the apply runs of this server, less those its rollbacks undid."
        );
        let _ = writeln!(out, "# TYPE pare_savings_realised_usd_monthly gauge");
        let _ = writeln!(
            out,
            "pare_savings_realised_usd_monthly {:.2}",
            self.savings_realised
        );
        self.lock_waits.write(
            &mut out,
            "pare_lock_wait_seconds",
            "How long taking the state's lock took, for each execution.",
            &LOCK_BUCKETS,
        );
        let _ = writeln!(
            out,
            "# HELP pare_lock_conflicts_total Executions refused because another run held the lock."
        );
        let _ = writeln!(out, "# TYPE pare_lock_conflicts_total counter");
        let _ = writeln!(out, "pare_lock_conflicts_total {}", self.lock_conflicts);
        let _ = writeln!(
            out,
            "# HELP pare_http_requests_total Requests answered, by status code."
        );
        let _ = writeln!(out, "# TYPE pare_http_requests_total counter");
        for (code, n) in &self.requests {
            let _ = writeln!(out, "pare_http_requests_total{{code=\"{code}\"}} {n}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_is_prometheus_text_with_fixed_labels() {
        let mut m = Metrics::default();
        m.run("apply", "applied", 3.0, 120.5);
        m.step("rightsize", "done");
        m.lock(0.002, false);
        m.lock(0.001, true);
        let text = m.render();
        assert!(text.contains("pare_runs_total{kind=\"apply\",status=\"applied\"} 1"));
        assert!(text.contains("pare_run_duration_seconds_bucket{le=\"1\"} 0"));
        assert!(text.contains("pare_run_duration_seconds_bucket{le=\"5\"} 1"));
        assert!(text.contains("pare_run_duration_seconds_count 1"));
        assert!(text.contains("pare_savings_realised_usd_monthly 120.50"));
        assert!(text.contains("pare_lock_conflicts_total 1"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(name.starts_with("pare_"), "{line}");
        }
    }
}
