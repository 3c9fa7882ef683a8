//! Where output goes: data on stdout, diagnostics and progress on stderr,
//! colour only when a person is watching (or asked for). Everything printed
//! passes [`terminal_safe`] last: only pare's own colours reach a terminal.

use super::ColorChoice;
use crate::vocabulary::words::terminal_safe;
use miette::{GraphicalReportHandler, GraphicalTheme};
use std::io::{IsTerminal, Write};

/// The resolved output settings of one invocation.
#[derive(Debug, Clone)]
pub struct Output {
    /// Colour on stderr (diagnostics, progress).
    pub color: bool,
    /// Colour on stdout (previews).
    pub color_stdout: bool,
    pub quiet: bool,
}

impl Output {
    pub fn new(choice: ColorChoice, quiet: bool) -> Output {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let pick = |terminal: bool| match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => !no_color && terminal,
        };
        Output {
            color: pick(std::io::stderr().is_terminal()),
            color_stdout: pick(std::io::stdout().is_terminal()),
            quiet,
        }
    }

    /// Renders a diagnostic (with its source snippet) to a string.
    pub fn render(&self, diag: &dyn miette::Diagnostic) -> String {
        let theme = if self.color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        // Messages and help are not wrapped: a suggested command (`pare
        // unlock l-… --force --state s3://…`) stays on one line, so pasting
        // a line never runs half of it against another state.
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_wrap_lines(false);
        let mut s = String::new();
        if handler.render_report(&mut s, diag).is_err() {
            s = format!("error: {diag}\n");
        }
        s
    }

    /// Prints a diagnostic to stderr.
    pub fn report(&self, diag: &dyn miette::Diagnostic) {
        let text = self.render(diag);
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}",
            terminal_safe(&text, self.color)
        );
    }

    /// Prints a line to stdout (data).
    pub fn data(&self, text: &str) {
        let text = terminal_safe(text, self.color_stdout);
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = out.write_all(b"\n");
        }
    }

    /// Prints JSON to stdout (data): the same JSON, with anything a terminal
    /// would act on escaped as `\uXXXX`.
    pub fn json(&self, text: &str) {
        let text = crate::vocabulary::words::json_safe(text);
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = out.write_all(b"\n");
        }
    }

    /// Prints a line of progress or status to stderr, unless quiet.
    pub fn status(&self, text: &str) {
        if !self.quiet {
            self.problem(text);
        }
    }

    /// Prints what went wrong to stderr, even when quiet.
    pub fn problem(&self, text: &str) {
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}",
            terminal_safe(text, self.color)
        );
    }
}
