//! Located, user-facing problems in files people write (plans, `pare.toml`).
//!
//! A [`Diagnostic`] points at a file, line and column, carries a stable code,
//! labels under the offending tokens and a help text, and renders like a
//! compiler error through miette. It owns no policy about which problems
//! exist: the loaders decide that.

use miette::{LabeledSpan, SourceCode};
use serde::Serialize;
use std::fmt;
use std::sync::Arc;

/// "1 error", "3 errors".
/// A JSON parser's message without the position serde appends ("at line
/// L column C"): for messages that give the position once, before it.
pub fn json_message(e: &serde_json::Error) -> String {
    let s = e.to_string();
    s.rsplit_once(" at line ")
        .map_or_else(|| s.clone(), |(m, _)| m.to_string())
}

pub fn count_errors(n: usize) -> String {
    crate::vocabulary::words::plural(n, "error")
}

/// A file as read, kept whole so every diagnostic can show its lines.
#[derive(Debug)]
pub struct SourceFile {
    /// The path as the user gave it (or as found), used in messages.
    pub name: String,
    /// The text.
    pub text: String,
    /// The text as shown in a snippet: control characters made harmless,
    /// every byte offset the same as in `text`.
    shown: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Arc<SourceFile> {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let shown = crate::vocabulary::words::same_length_printable(&text).into_owned();
        Arc::new(SourceFile {
            name: crate::vocabulary::words::clean(&name.into()).into_owned(),
            text,
            shown,
            line_starts,
        })
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, column + 1)
    }

    /// Byte offset of a 1-based line and column (in characters); clamped to the text.
    pub fn offset(&self, line: usize, column: usize) -> usize {
        let Some(&start) = self.line_starts.get(line.saturating_sub(1)) else {
            return self.text.len();
        };
        let rest = &self.text[start..];
        rest.char_indices()
            .take_while(|(_, c)| *c != '\n')
            .nth(column.saturating_sub(1))
            .map_or_else(
                || start + rest.find('\n').unwrap_or(rest.len()),
                |(i, _)| start + i,
            )
    }
}

/// A byte range in a [`SourceFile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Span {
    pub offset: usize,
    pub len: usize,
}

impl Span {
    pub fn new(offset: usize, len: usize) -> Span {
        Span { offset, len }
    }
}

/// A label under a span.
#[derive(Debug, Clone)]
pub struct Label {
    pub span: Span,
    pub text: String,
}

/// One problem in one file.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// Stable code, e.g. `plan::unknown-field`. Scripts may match on it.
    pub code: &'static str,
    pub message: String,
    pub file: Arc<SourceFile>,
    /// The main label; its start is the reported line and column.
    pub primary: Label,
    /// Further labels (the other occurrence of a duplicate, the rest of a cycle).
    pub secondary: Vec<Label>,
    pub help: Option<String>,
    /// Show no lines of the file (it may not be what it claims: a seed
    /// pointing at a secret is never quoted).
    pub hide_source: bool,
}

impl Diagnostic {
    pub fn new(
        code: &'static str,
        file: &Arc<SourceFile>,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Diagnostic {
        use crate::vocabulary::words::clean;
        Diagnostic {
            code,
            message: clean(&message.into()).into_owned(),
            file: Arc::clone(file),
            primary: Label {
                span,
                text: clean(&label.into()).into_owned(),
            },
            secondary: Vec::new(),
            help: None,
            hide_source: false,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(crate::vocabulary::words::clean(&help.into()).into_owned());
        self
    }

    /// Shows the position only, never the file's lines.
    pub fn without_source(mut self) -> Diagnostic {
        self.hide_source = true;
        self
    }

    /// Adds a secondary label.
    pub fn with_label(&mut self, span: Span, text: impl Into<String>) -> &mut Diagnostic {
        self.secondary.push(Label {
            span,
            text: crate::vocabulary::words::clean(&text.into()).into_owned(),
        });
        self
    }

    /// 1-based line and column of the primary label.
    pub fn line_col(&self) -> (usize, usize) {
        self.file.line_col(self.primary.span.offset)
    }

    /// The machine-readable form used by `--format json`.
    pub fn to_json(&self) -> DiagnosticJson {
        let (line, column) = self.line_col();
        DiagnosticJson {
            file: self.file.name.clone(),
            line,
            column,
            code: self.code,
            severity: "error",
            message: self.message.clone(),
            label: self.primary.text.clone(),
            help: self.help.clone(),
        }
    }
}

/// `Diagnostic` as JSON for editors and CI.
#[derive(Debug, Serialize)]
pub struct DiagnosticJson {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub code: &'static str,
    pub severity: &'static str,
    pub message: String,
    pub label: String,
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        (!self.hide_source).then_some(self.file.as_ref() as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if self.hide_source {
            return None;
        }
        let primary = std::iter::once(LabeledSpan::new_primary_with_span(
            Some(self.primary.text.clone()),
            (self.primary.span.offset, self.primary.span.len),
        ));
        let rest = self
            .secondary
            .iter()
            .map(|l| LabeledSpan::new_with_span(Some(l.text.clone()), (l.span.offset, l.span.len)));
        Some(Box::new(primary.chain(rest)))
    }
}

impl SourceCode for SourceFile {
    fn read_span<'a>(
        &'a self,
        span: &miette::SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn miette::SpanContents<'a> + 'a>, miette::MietteError> {
        let inner =
            self.shown
                .as_str()
                .read_span(span, context_lines_before, context_lines_after)?;
        Ok(Box::new(miette::MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}
