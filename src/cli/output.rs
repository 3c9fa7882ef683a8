//! Where output goes: data on stdout, diagnostics and progress on stderr,
//! colour only when a person is watching (or asked for).

use super::ColorChoice;
use miette::{GraphicalReportHandler, GraphicalTheme};
use std::io::{IsTerminal, Write};

/// The resolved output settings of one invocation.
#[derive(Debug, Clone)]
pub struct Output {
    pub color: bool,
    pub quiet: bool,
}

impl Output {
    pub fn new(choice: ColorChoice, quiet: bool) -> Output {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::io::stderr().is_terminal()
            }
        };
        Output { color, quiet }
    }

    /// Renders a diagnostic (with its source snippet) to a string.
    pub fn render(&self, diag: &dyn miette::Diagnostic) -> String {
        let theme = if self.color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        let handler = GraphicalReportHandler::new_themed(theme).with_width(100);
        let mut s = String::new();
        if handler.render_report(&mut s, diag).is_err() {
            s = format!("error: {diag}\n");
        }
        s
    }

    /// Prints a diagnostic to stderr.
    pub fn report(&self, diag: &dyn miette::Diagnostic) {
        let _ = writeln!(std::io::stderr().lock(), "{}", self.render(diag));
    }

    /// Prints a line to stdout (data).
    pub fn data(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = out.write_all(b"\n");
        }
    }

    /// Prints a line of progress or status to stderr, unless quiet.
    pub fn status(&self, text: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr().lock(), "{text}");
        }
    }
}
