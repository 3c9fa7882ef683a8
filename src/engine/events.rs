//! What a run reports as it goes: a progress bar when a person watches a
//! terminal, plain lines otherwise, or one JSON object per line
//! (`--log-format json`), the audit trail a CI log keeps.

use serde_json::json;
use std::io::Write;

/// Where events go.
#[derive(Debug, Clone)]
pub struct Events {
    pub run: String,
    pub json: bool,
    pub quiet: bool,
    /// Drawn only on a terminal, never with JSON logs.
    pub bar: Option<indicatif::ProgressBar>,
    /// Where each event also goes, as the JSON object JSON logs print
    /// (`pare serve` keeps them for an execution's logs and progress).
    pub sink: Option<EventSink>,
}

/// A receiver of every event of a run, as JSON.
#[derive(Clone)]
pub struct EventSink(pub std::sync::Arc<dyn Fn(&serde_json::Value) + Send + Sync>);

impl std::fmt::Debug for EventSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventSink")
    }
}

impl Events {
    /// Events for `run`; a progress bar when stderr is a terminal and plain
    /// lines are not asked for.
    pub fn new(run: &str, json: bool, quiet: bool) -> Events {
        use std::io::IsTerminal;
        let bar = (!json && !quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  {wide_msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        Events {
            run: run.to_string(),
            json,
            quiet,
            bar,
            sink: None,
        }
    }

    /// The same events, each also given to `sink`.
    pub fn with_sink(mut self, sink: Option<EventSink>) -> Events {
        self.sink = sink;
        self
    }

    /// Sets how many steps the bar counts to.
    pub fn steps(&self, n: usize) {
        if let Some(b) = &self.bar {
            b.set_length(n as u64);
        }
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn emit(
        &self,
        event: &str,
        rec: Option<&str>,
        step: Option<usize>,
        extra: serde_json::Value,
        text: String,
    ) {
        let text = crate::vocabulary::words::terminal_safe(&text, false).into_owned();
        if let Some(obj) = self.object(event, rec, step, extra)
            && self.json
        {
            let _ = writeln!(std::io::stderr().lock(), "{obj}");
            return;
        }
        let mut err = std::io::stderr().lock();
        if let Some(bar) = self.bar.as_ref().filter(|b| !b.is_finished()) {
            match event {
                "step_start" => bar.set_message(text.trim().to_string()),
                "step_done" => bar.inc(1),
                // Failures, retries and skips stay on screen above the bar.
                _ => bar.println(text),
            }
        } else if !self.quiet {
            let _ = writeln!(err, "{text}");
        }
    }

    /// The event as JSON, given to the sink, when JSON logs or a sink want it.
    fn object(
        &self,
        event: &str,
        rec: Option<&str>,
        step: Option<usize>,
        extra: serde_json::Value,
    ) -> Option<serde_json::Value> {
        if !self.json && self.sink.is_none() {
            return None;
        }
        let mut obj = json!({
            "event": event,
            "run": self.run,
            "rec": rec,
            "step": step.map(|s| s + 1),
            "at": crate::clock::rfc3339(crate::clock::now()),
        });
        if let (Some(o), serde_json::Value::Object(e)) = (obj.as_object_mut(), extra) {
            o.extend(e);
        }
        if let Some(sink) = &self.sink {
            (sink.0)(&obj);
        }
        Some(obj)
    }

    pub fn run_start(&self, kind: &str, changes: usize) {
        self.emit(
            "run_start",
            None,
            None,
            json!({ "kind": kind, "changes": changes }),
            format!("{kind} run {}: {changes} to do", self.run),
        );
    }

    pub fn step_start(&self, rec: &str, step: usize, what: &str) {
        self.emit(
            "step_start",
            Some(rec),
            Some(step),
            json!({ "op": what }),
            format!("  {rec} [{}] {what} …", step + 1),
        );
    }

    pub fn step_done(&self, rec: &str, step: usize, ms: u64, attempts: u32) {
        let retried = if attempts > 1 {
            format!(" after {attempts} attempts")
        } else {
            String::new()
        };
        self.emit(
            "step_done",
            Some(rec),
            Some(step),
            json!({ "duration_ms": ms, "attempts": attempts }),
            format!("  {rec} [{}] done in {ms} ms{retried}", step + 1),
        );
    }

    pub fn retry(&self, rec: &str, step: usize, attempt: u32, error: &str) {
        self.emit(
            "step_retry",
            Some(rec),
            Some(step),
            json!({ "attempt": attempt, "error": error }),
            format!(
                "  {rec} [{}] transient error, retrying (attempt {attempt}): {error}",
                step + 1
            ),
        );
    }

    pub fn step_failed(&self, rec: &str, step: usize, error: &str) {
        self.emit(
            "step_failed",
            Some(rec),
            Some(step),
            json!({ "error": error }),
            format!("  {rec} [{}] FAILED: {error}", step + 1),
        );
    }

    pub fn step_skipped(&self, rec: &str, step: Option<usize>, why: &str) {
        let at = step.map_or(String::new(), |s| format!(" [{}]", s + 1));
        self.emit(
            "step_skipped",
            Some(rec),
            step,
            json!({ "why": why }),
            format!("  {rec}{at} skipped: {why}"),
        );
    }

    pub fn rollback_start(&self, steps: usize) {
        self.emit(
            "rollback_start",
            None,
            None,
            json!({ "steps": steps }),
            format!(
                "undoing {}, newest first",
                crate::vocabulary::words::plural(steps, "step")
            ),
        );
    }

    /// The end of a run: an event in JSON logs; in text, the command's own
    /// summary line says it (once).
    pub fn run_done(&self, status: &str) {
        if !self.json {
            self.object("run_done", None, None, json!({ "status": status }));
            return;
        }
        self.emit(
            "run_done",
            None,
            None,
            json!({ "status": status }),
            format!("run {}: {status}", self.run),
        );
    }
}
