//! Test hooks, off unless their environment variables are set, so tests can
//! synchronise with a running pare without sleeping:
//!
//! - `PARE_TEST_PAUSE_AT=<point>` with `PARE_TEST_PAUSE_DIR=<dir>`: on
//!   reaching `point` (`apply-started`, `after-group-3`, …) pare writes
//!   `<dir>/<point>.paused` and waits until `<dir>/<point>.go` exists (at
//!   most a minute), so the test can signal or kill it exactly there;
//! - with `PARE_TEST_PAUSE_DIR` set, [`seen`] writes `<dir>/<event>.seen`
//!   when something happens (`ctrl-c`), so the test knows it did.
//!
//! (The crash hook, `PARE_TEST_KILL_AFTER_RECORD`, lives with the journal.)

use std::path::PathBuf;

fn dir() -> Option<PathBuf> {
    std::env::var_os("PARE_TEST_PAUSE_DIR").map(PathBuf::from)
}

/// The point a test asked to pause at, read once.
fn pause_at() -> Option<&'static str> {
    static AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    AT.get_or_init(|| std::env::var("PARE_TEST_PAUSE_AT").ok())
        .as_deref()
}

/// Pauses at `point` if a test asked for it.
pub fn pause(point: &str) {
    if pause_at() != Some(point) {
        return;
    }
    let Some(dir) = dir() else { return };
    let _ = std::fs::write(
        dir.join(format!("{point}.paused")),
        std::process::id().to_string(),
    );
    let go = dir.join(format!("{point}.go"));
    let started = std::time::Instant::now();
    while !go.exists() && started.elapsed() < std::time::Duration::from_secs(60) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Records that `event` happened, if a test is watching.
pub fn seen(event: &str) {
    if let Some(dir) = dir() {
        let _ = std::fs::write(dir.join(format!("{event}.seen")), "");
    }
}
