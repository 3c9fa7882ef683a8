//! A refusal: what pare will not do, and what to do next. Always before any
//! change; one typed diagnostic, whichever face (command line, server)
//! shows it.

use std::fmt;

/// What pare refused, with a stable code and what to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Stable, for scripts: `apply::blocked`, `saved::stale`, ….
    pub code: &'static str,
    /// What is wrong.
    pub what: String,
    /// What to do next.
    pub todo: String,
}

impl Refusal {
    pub fn new(code: &'static str, what: impl Into<String>, todo: impl Into<String>) -> Refusal {
        Refusal {
            code,
            what: what.into(),
            todo: todo.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for Refusal {}

impl miette::Diagnostic for Refusal {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(&self.todo))
    }
}
