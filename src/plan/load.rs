//! Reading plan files: YAML text → [`Plan`], or every problem at once.
//!
//! This module checks shapes only: syntax, keys, types, values, id formats,
//! references between recommendations. It never calls a provider, and the
//! dependency-cycle check lives with the graph (`crate::graph`).

use super::ids::{self, IdKind};
use super::model::*;
use super::node::{self, Node, Pos, Scalar, Value};
use crate::diagnostic::{Diagnostic, SourceFile, Span};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A plan as loaded: the typed plan and the file it came from.
#[derive(Debug, Clone)]
pub struct LoadedPlan {
    pub path: PathBuf,
    pub source: Arc<SourceFile>,
    pub plan: Plan,
    /// Positions of the approval `covers` entries, per approval.
    pub approval_spans: Vec<Vec<Span>>,
}

/// Why a plan could not be loaded.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum LoadError {
    #[error("cannot read plan file {path}: {error}")]
    #[diagnostic(
        code(plan::unreadable),
        help(
            "check the path; plan files are given relative to the working directory, and are regular files of at most 32 MiB"
        )
    )]
    Io { path: PathBuf, error: String },
    #[error("{} in {}", count_errors(.0.len()), .0.first().map_or("", |d| d.file.name.as_str()))]
    Invalid(Vec<Diagnostic>),
}

pub(crate) fn count_errors(n: usize) -> String {
    if n == 1 {
        "1 error".into()
    } else {
        format!("{n} errors")
    }
}

/// Reads and checks the plan file at `path`.
pub fn load(path: &Path) -> Result<LoadedPlan, LoadError> {
    match check(path)? {
        (Some(loaded), diags) if diags.is_empty() => Ok(loaded),
        (_, diags) => Err(LoadError::Invalid(diags)),
    }
}

/// Reads `path` and checks it, returning what could be read together with
/// every problem found, so callers can add their own checks of the rest.
pub fn check(path: &Path) -> Result<(Option<LoadedPlan>, Vec<Diagnostic>), LoadError> {
    let text = crate::durable::read_text(path, crate::durable::PLAN_LIMIT, "a plan file").map_err(
        |e| LoadError::Io {
            path: path.to_owned(),
            error: e.to_string(),
        },
    )?;
    Ok(check_str(path, &path.display().to_string(), text))
}

/// Checks plan text; `name` is how messages refer to the file.
pub fn load_str(path: &Path, name: &str, text: String) -> Result<LoadedPlan, Vec<Diagnostic>> {
    match check_str(path, name, text) {
        (Some(loaded), diags) if diags.is_empty() => Ok(loaded),
        (_, diags) => Err(diags),
    }
}

/// Checks plan text: the plan as far as it could be read, and every problem,
/// sorted by position.
pub fn check_str(path: &Path, name: &str, text: String) -> (Option<LoadedPlan>, Vec<Diagnostic>) {
    let source = SourceFile::new(name, text);
    let mut loader = Loader {
        file: Arc::clone(&source),
        diags: Vec::new(),
        ids: Vec::new(),
    };
    let root = match node::parse(&source.text) {
        Ok(root) => root,
        Err(err) => {
            let offset = source.offset(err.pos.line, err.pos.column);
            let len = usize::from(offset < source.text.len());
            let several = err.message.contains("multiple YAML documents");
            let message = if several {
                "a plan file holds one YAML document; this one starts a second (`---`)".to_string()
            } else {
                format!("invalid YAML: {}", err.message)
            };
            let d = Diagnostic::new(
                "plan::yaml-syntax",
                &source,
                Span::new(offset, len),
                message,
                if several { "second document" } else { "here" },
            )
            .with_help(if several {
                "put each plan in a file of its own, or remove the `---` line"
            } else if err.message.contains("budget") || err.message.contains("recursion") {
                "the document exceeds pare's safety limits on size, nesting and alias expansion; plans never need that much"
            } else {
                "fix the YAML syntax; check indentation, brackets and quotes around this point"
            });
            return (None, vec![d]);
        }
    };
    let loaded = loader.plan(&root).map(|(plan, approval_spans)| LoadedPlan {
        path: path.to_owned(),
        source,
        plan,
        approval_spans,
    });
    let mut diags = loader.diags;
    diags.sort_by_key(|d| d.primary.span.offset);
    (loaded, diags)
}

/// The fields every recommendation may have.
const COMMON_FIELDS: [&str; 5] = [
    "id",
    "action",
    "reason",
    "savings_monthly_usd",
    "depends_on",
];

struct Loader {
    file: Arc<SourceFile>,
    diags: Vec<Diagnostic>,
    /// Every recommendation id read, with its position, whether or not the
    /// rest of its recommendation was valid: references are checked against
    /// these, so one bad recommendation does not cascade into false errors.
    ids: Vec<(String, Span)>,
}

fn span(pos: Pos) -> Span {
    Span::new(pos.offset, pos.len)
}

/// A mapping being read field by field. The fields asked for become the known
/// fields, so `finish` can name unknown ones and suggest the closest.
struct Fields<'n> {
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
    used: Vec<bool>,
    known: Vec<&'static str>,
}

impl<'n> Fields<'n> {
    fn get(&mut self, name: &'static str) -> Option<&'n Node> {
        self.known.push(name);
        let i = self.entries.iter().position(|(k, _, _)| *k == name)?;
        self.used[i] = true;
        Some(self.entries[i].2)
    }

    fn has(&self, name: &str) -> bool {
        self.entries.iter().any(|(k, _, _)| *k == name)
    }

    /// Marks every field as seen, for when the rest cannot be judged (an unknown action).
    fn accept_rest(&mut self) {
        self.used.iter_mut().for_each(|u| *u = true);
    }

    fn key_span(&self, name: &str) -> Option<Span> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == name)
            .map(|(_, key, _)| span(key.pos))
    }
}

impl Loader {
    fn error(
        &mut self,
        code: &'static str,
        sp: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> &mut Diagnostic {
        self.diags
            .push(Diagnostic::new(code, &self.file, sp, message, label));
        self.diags.last_mut().expect("just pushed")
    }

    fn wrong_type(&mut self, node: &Node, field: &str, expected: &str) {
        let found = match &node.value {
            Value::Scalar(Scalar::Str(s)) => format!("a string \"{s}\""),
            _ => node.kind().to_string(),
        };
        self.error(
            "plan::wrong-type",
            span(node.pos),
            format!("`{field}` must be {expected}, found {found}"),
            format!("expected {expected}"),
        )
        .help = Some(format!("write `{field}` as {expected}"));
    }

    fn fields<'n>(&mut self, node: &'n Node, what: &str) -> Option<Fields<'n>> {
        let Some(map) = node.as_map() else {
            self.wrong_type(node, what, "a mapping");
            return None;
        };
        let mut entries: Vec<(&str, &Node, &Node)> = Vec::with_capacity(map.len());
        for (key, value) in map {
            let Some(name) = key.as_str() else {
                self.error(
                    "plan::wrong-type",
                    span(key.pos),
                    format!("keys in {what} must be strings, found {}", key.kind()),
                    "not a string key",
                )
                .help = Some("field names are plain words like `instance`; quote a key that YAML reads as a number or boolean".into());
                continue;
            };
            if let Some((_, first, _)) = entries.iter().find(|(k, _, _)| *k == name) {
                let first = span(first.pos);
                self.error(
                    "plan::duplicate-key",
                    span(key.pos),
                    format!("`{name}` appears twice in {what}"),
                    "given again here",
                )
                .with_label(first, "first given here")
                .help = Some(format!(
                    "keep one `{name}`; YAML would silently drop the other"
                ));
                continue;
            }
            entries.push((name, key, value));
        }
        let used = vec![false; entries.len()];
        Some(Fields {
            entries,
            used,
            known: Vec::new(),
        })
    }

    /// Reports the fields nobody asked for.
    fn finish(&mut self, fields: Fields, code: &'static str, what: &str, extra_known: &[&str]) {
        for (i, (name, key, _)) in fields.entries.iter().enumerate() {
            if fields.used[i] || extra_known.contains(name) {
                continue;
            }
            let candidates = fields.known.iter().chain(extra_known).copied();
            let help = match ids::suggest(name, candidates) {
                Some(s) => format!("did you mean `{s}`?"),
                None => {
                    let mut own: Vec<&str> = Vec::new();
                    for k in &fields.known {
                        if !extra_known.contains(k) && !own.contains(k) {
                            own.push(k);
                        }
                    }
                    if extra_known.is_empty() {
                        format!("{what} takes: {}", own.join(", "))
                    } else {
                        format!(
                            "{what} takes: {} (and {})",
                            own.join(", "),
                            extra_known.join(", ")
                        )
                    }
                }
            };
            self.error(
                code,
                span(key.pos),
                format!("unknown field `{name}` in {what}"),
                "unknown field",
            )
            .help = Some(help);
        }
    }

    fn missing(&mut self, at: Span, field: &str, what: &str, help: impl Into<String>) {
        self.error(
            "plan::missing-field",
            at,
            format!("{what} is missing `{field}`"),
            format!("needs `{field}`"),
        )
        .help = Some(help.into());
    }

    fn required<'n>(
        &mut self,
        f: &mut Fields<'n>,
        field: &'static str,
        at: Span,
        what: &str,
        help: &str,
    ) -> Option<&'n Node> {
        let node = f.get(field);
        if node.is_none() {
            self.missing(at, field, what, help);
        }
        node
    }

    /// A strict string (ids, names of things).
    fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match node.as_str() {
            Some(s) => Some(s.to_owned()),
            None => {
                self.wrong_type(node, field, "a string");
                None
            }
        }
    }

    /// Free text: any scalar reads as its text.
    fn text(&mut self, node: &Node, field: &str) -> Option<String> {
        match &node.value {
            Value::Scalar(Scalar::Str(s)) => Some(s.clone()),
            Value::Scalar(Scalar::Int(i)) => Some(i.to_string()),
            Value::Scalar(Scalar::Float(x)) => Some(x.to_string()),
            Value::Scalar(Scalar::Bool(b)) => Some(b.to_string()),
            _ => {
                self.wrong_type(node, field, "text");
                None
            }
        }
    }

    fn uint(&mut self, node: &Node, field: &str, min: u32) -> Option<u32> {
        let Value::Scalar(Scalar::Int(i)) = node.value else {
            self.wrong_type(node, field, "a whole number");
            return None;
        };
        match u32::try_from(i) {
            Ok(v) if v >= min => Some(v),
            _ => {
                let message = if i > i128::from(u32::MAX) {
                    format!("`{field}` is too large: at most {}, found {i}", u32::MAX)
                } else {
                    format!("`{field}` must be at least {min}, found {i}")
                };
                self.error(
                    "plan::out-of-range",
                    span(node.pos),
                    message,
                    "out of range",
                )
                .help = Some(format!(
                    "give `{field}` a whole number from {min} to {}",
                    u32::MAX
                ));
                None
            }
        }
    }

    fn positive_number(&mut self, node: &Node, field: &str, allow_zero: bool) -> Option<f64> {
        let v = match node.value {
            Value::Scalar(Scalar::Int(i)) => i as f64,
            Value::Scalar(Scalar::Float(x)) => x,
            _ => {
                self.wrong_type(node, field, "a number");
                return None;
            }
        };
        if !v.is_finite() || v < 0.0 || (!allow_zero && v == 0.0) {
            let bound = if allow_zero {
                "zero or more"
            } else {
                "more than zero"
            };
            self.error(
                "plan::out-of-range",
                span(node.pos),
                format!("`{field}` must be {bound}, found {v}"),
                "out of range",
            )
            .help = Some(format!("give `{field}` a number {bound}"));
            return None;
        }
        Some(v)
    }

    fn boolean(&mut self, node: &Node, field: &str) -> Option<bool> {
        match node.value {
            Value::Scalar(Scalar::Bool(b)) => Some(b),
            _ => {
                self.wrong_type(node, field, "true or false");
                None
            }
        }
    }

    fn choice<T: Copy>(
        &mut self,
        node: &Node,
        field: &str,
        choices: &[(&'static str, T)],
    ) -> Option<T> {
        let names = || choices.iter().map(|(n, _)| *n);
        let text = match &node.value {
            Value::Scalar(Scalar::Str(s)) => s.clone(),
            Value::Scalar(Scalar::Int(i)) => i.to_string(),
            Value::Scalar(Scalar::Bool(b)) => b.to_string(),
            _ => {
                self.wrong_type(
                    node,
                    field,
                    &format!("one of {}", names().collect::<Vec<_>>().join(", ")),
                );
                return None;
            }
        };
        if let Some((_, v)) = choices.iter().find(|(n, _)| *n == text) {
            return Some(*v);
        }
        let list = names()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let help = match ids::suggest(&text, names()) {
            Some(s) => format!("did you mean `{s}`? `{field}` is one of {list}"),
            None => format!("`{field}` is one of {list}"),
        };
        self.error(
            "plan::invalid-value",
            span(node.pos),
            format!("`{text}` is not a valid `{field}`"),
            "not one of the allowed values",
        )
        .help = Some(help);
        None
    }

    fn string_list(&mut self, node: &Node, field: &str) -> Option<Vec<(String, Span)>> {
        let Value::Seq(items) = &node.value else {
            self.wrong_type(node, field, "a list of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items {
            match self.string(item, field) {
                Some(s) => out.push((s, span(item.pos))),
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn resource_id(&mut self, node: &Node, field: &str, kind: IdKind) -> Option<String> {
        let id = self.string(node, field)?;
        if ids::is_valid(kind, &id) {
            return Some(id);
        }
        let mut help = format!(
            "{} is `{}` followed by 8 or 17 lowercase hex digits, like `{}`",
            capitalise(kind.noun()),
            kind.prefix(),
            kind.example()
        );
        if let Some(other) = ids::looks_like(&id).filter(|k| *k != kind) {
            help = format!(
                "this looks like {}, but `{field}` needs {}; {help}",
                other.noun(),
                kind.noun()
            );
        }
        self.error(
            "plan::resource-id",
            span(node.pos),
            format!("`{id}` is not {}", kind.noun()),
            format!("not {}", kind.noun()),
        )
        .help = Some(help);
        Some(id)
    }

    fn instance_type(&mut self, node: &Node, field: &str) -> Option<String> {
        let t = self.string(node, field)?;
        if !ids::is_instance_type(&t) {
            self.error(
                "plan::instance-type",
                span(node.pos),
                format!("`{t}` is not an instance type"),
                "not an instance type",
            )
            .help = Some(
                "instance types are `family.size` in lowercase, like `m5.large` or `c6g.2xlarge`"
                    .into(),
            );
        }
        Some(t)
    }

    // ----- the file -----

    fn plan(&mut self, root: &Node) -> Option<(Plan, Vec<Vec<Span>>)> {
        if matches!(root.value, Value::Scalar(Scalar::Null)) {
            self.error("plan::empty", Span::new(0, 0), "the plan file is empty", "empty file")
                .help = Some("a plan needs `version: 1`, a `provider` and `recommendations`; see `pare schema` or examples/quickstart".into());
            return None;
        }
        let mut f = self.fields(root, "a plan file")?;
        let top = Span::new(root.pos.offset, 0);

        let version = self.required(
            &mut f,
            "version",
            top,
            "the plan file",
            "start the file with `version: 1`",
        );
        if let Some(v) = version
            && !matches!(v.value, Value::Scalar(Scalar::Int(1)))
        {
            let shown = match &v.value {
                Value::Scalar(Scalar::Str(s)) => format!("\"{s}\""),
                Value::Scalar(Scalar::Int(i)) => i.to_string(),
                Value::Scalar(Scalar::Float(x)) => x.to_string(),
                _ => v.kind().to_string(),
            };
            self.error(
                "plan::version",
                span(v.pos),
                format!("unsupported plan version {shown}"),
                "this pare reads version 1",
            )
            .help = Some(
                "set `version: 1`, or upgrade pare if the plan was written for a newer one".into(),
            );
            // Another version's rules are unknown: checking further would only mislead.
            return None;
        }
        let name = f.get("name").and_then(|n| self.text(n, "name"));
        let provider = self
            .required(&mut f, "provider", top, "the plan file", "add `provider: { sandbox: { seed: account.yaml } }` or `provider: { aws: { region: us-east-1 } }`")
            .and_then(|p| self.provider(p));
        let approvals = f.get("approvals").map(|a| self.approvals(a));
        let recs_node = self.required(
            &mut f,
            "recommendations",
            top,
            "the plan file",
            "add `recommendations:` with a list of recommendations",
        );
        let recommendations = recs_node.map(|r| self.recommendations(r));
        self.finish(f, "plan::unknown-key", "a plan file", &[]);

        let (approvals, approval_spans) = approvals.unwrap_or_default();
        let recommendations = recommendations.unwrap_or_default();
        self.cross_checks(&recommendations, &approvals, &approval_spans);
        let plan = Plan {
            version: 1,
            name,
            provider: provider?,
            approvals,
            recommendations,
        };
        Some((plan, approval_spans))
    }

    fn provider(&mut self, node: &Node) -> Option<Provider> {
        let mut f = self.fields(node, "provider")?;
        let sandbox = f.get("sandbox");
        let aws = f.get("aws");
        let out = match (sandbox, aws) {
            (Some(_), Some(_)) => {
                let first = f.key_span("sandbox").unwrap_or_default();
                let second = f.key_span("aws").unwrap_or_default();
                let (first, second) = if first.offset < second.offset {
                    (first, second)
                } else {
                    (second, first)
                };
                self.error(
                    "plan::provider",
                    second,
                    "a plan has exactly one provider, this one names two",
                    "second provider",
                )
                .with_label(first, "first provider")
                .help = Some("split the plan in two, one per provider".into());
                None
            }
            (None, None) => {
                self.error(
                    "plan::provider",
                    span(node.pos),
                    "the plan names no provider",
                    "no `sandbox` or `aws` here",
                )
                .help = Some(
                    "use `sandbox: { seed: account.yaml }` or `aws: { region: us-east-1 }`".into(),
                );
                None
            }
            (Some(s), None) => self.sandbox(s).map(Provider::Sandbox),
            (None, Some(a)) => self.aws(a).map(Provider::Aws),
        };
        self.finish(f, "plan::unknown-key", "provider", &[]);
        out
    }

    fn sandbox(&mut self, node: &Node) -> Option<SandboxProvider> {
        let mut f = self.fields(node, "the sandbox provider")?;
        let seed = self
            .required(
                &mut f,
                "seed",
                span(node.pos),
                "the sandbox provider",
                "name the seed account file: `seed: account.yaml` (relative to the plan file)",
            )
            .and_then(|s| {
                let seed = self.string(s, "seed")?;
                // A plan may name a seed only in its own folder or below, so
                // a plan from someone else cannot make pare read any file.
                if !crate::provider::sandbox::lexically_inside(&seed) {
                    self.error(
                        "plan::seed-path",
                        span(s.pos),
                        format!("the seed `{seed}` is outside the plan's folder"),
                        "outside the plan's folder",
                    )
                    .help = Some(
                        "name a file in the plan's folder or below, relative to the plan (no absolute path, no `..`): copy the account file next to the plan".into(),
                    );
                    return None;
                }
                Some(seed)
            });
        self.finish(f, "plan::unknown-field", "the sandbox provider", &[]);
        Some(SandboxProvider { seed: seed? })
    }

    fn aws(&mut self, node: &Node) -> Option<AwsProvider> {
        if matches!(node.value, Value::Scalar(Scalar::Null)) {
            return Some(AwsProvider::default());
        }
        let mut f = self.fields(node, "the aws provider")?;
        let mut ok = true;
        let region = f.get("region").and_then(|r| {
            let s = self.string(r, "region")?;
            if !ids::is_region(&s) {
                ok = false;
                self.error(
                    "plan::invalid-value",
                    span(r.pos),
                    format!("`{s}` is not an AWS region"),
                    "not a region",
                )
                .help = Some("regions look like `us-east-1` or `eu-west-2`".into());
            }
            Some(s)
        });
        let profile = f.get("profile").and_then(|p| self.string(p, "profile"));
        let endpoint_url = f.get("endpoint_url").and_then(|e| {
            let s = self.string(e, "endpoint_url")?;
            if !(s.starts_with("http://") || s.starts_with("https://")) {
                self.error(
                    "plan::invalid-value",
                    span(e.pos),
                    format!("`{s}` is not an http(s) URL"),
                    "not a URL",
                )
                .help = Some("write the endpoint as a URL, like `http://127.0.0.1:5000`".into());
            }
            Some(s)
        });
        let batch_size = f
            .get("batch_size")
            .and_then(|n| self.uint(n, "batch_size", 1));
        let instance_timeout_s = f
            .get("instance_timeout_s")
            .and_then(|n| self.uint(n, "instance_timeout_s", 1));
        let image_timeout_s = f
            .get("image_timeout_s")
            .and_then(|n| self.uint(n, "image_timeout_s", 1));
        let snapshot_timeout_s = f
            .get("snapshot_timeout_s")
            .and_then(|n| self.uint(n, "snapshot_timeout_s", 1));
        let volume_timeout_s = f
            .get("volume_timeout_s")
            .and_then(|n| self.uint(n, "volume_timeout_s", 1));
        self.finish(f, "plan::unknown-field", "the aws provider", &[]);
        ok.then_some(AwsProvider {
            region,
            profile,
            endpoint_url,
            batch_size,
            instance_timeout_s,
            image_timeout_s,
            snapshot_timeout_s,
            volume_timeout_s,
        })
    }

    fn approvals(&mut self, node: &Node) -> (Vec<Approval>, Vec<Vec<Span>>) {
        let Value::Seq(items) = &node.value else {
            self.wrong_type(node, "approvals", "a list");
            return Default::default();
        };
        let mut out = Vec::new();
        let mut spans = Vec::new();
        for item in items {
            let Some(mut f) = self.fields(item, "an approval") else {
                continue;
            };
            let at = span(item.pos);
            let by = self
                .required(
                    &mut f,
                    "by",
                    at,
                    "an approval",
                    "say who approved: `by: alice@example.com`",
                )
                .and_then(|b| self.text(b, "by"));
            let covers = self
                .required(
                    &mut f,
                    "covers",
                    at,
                    "an approval",
                    "list the recommendation ids it covers, or `[\"*\"]` for all",
                )
                .and_then(|c| {
                    let list = self.string_list(c, "covers")?;
                    if list.is_empty() {
                        self.error(
                            "plan::invalid-value",
                            span(c.pos),
                            "an approval that covers nothing",
                            "empty list",
                        )
                        .help = Some(
                            "list the recommendation ids it covers, or `[\"*\"]` for all".into(),
                        );
                    }
                    Some(list)
                });
            let reason = f.get("reason").and_then(|r| self.text(r, "reason"));
            self.finish(f, "plan::unknown-field", "an approval", &[]);
            if let (Some(by), Some(covers)) = (by, covers) {
                spans.push(covers.iter().map(|(_, s)| *s).collect());
                out.push(Approval {
                    by,
                    covers: covers.into_iter().map(|(c, _)| c).collect(),
                    reason,
                });
            }
        }
        (out, spans)
    }

    fn recommendations(&mut self, node: &Node) -> Vec<Recommendation> {
        let Value::Seq(items) = &node.value else {
            self.wrong_type(node, "recommendations", "a list");
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| self.recommendation(item))
            .collect()
    }

    fn recommendation(&mut self, node: &Node) -> Option<Recommendation> {
        let mut f = self.fields(node, "a recommendation")?;
        let entry = span(node.pos);
        let id_node = f.get("id");
        let id = match id_node {
            None => {
                self.missing(entry, "id", "this recommendation", "give it a unique id such as `rightsize-web-1`");
                None
            }
            Some(n) => self.string(n, "id").inspect(|id| {
                if !ids::is_recommendation_id(id) {
                    self.error("plan::invalid-id", span(n.pos), format!("`{id}` is not a valid recommendation id"), "invalid id")
                        .help = Some("ids start with a lowercase letter or digit, then lowercase letters, digits, `-` or `_`".into());
                }
            }),
        };
        if let (Some(id), Some(n)) = (&id, id_node) {
            self.ids.push((id.clone(), span(n.pos)));
        }
        let what = match &id {
            Some(id) => format!("recommendation `{id}`"),
            None => "this recommendation".to_string(),
        };
        let action_node = f.get("action");
        let action_name = match action_node {
            None => {
                self.missing(
                    entry,
                    "action",
                    &what,
                    format!("add `action:` with one of {}", ACTION_NAMES.join(", ")),
                );
                None
            }
            Some(n) => self.string(n, "action").and_then(|a| {
                if ACTION_NAMES.contains(&a.as_str()) {
                    Some(a)
                } else {
                    let help = match ids::suggest(&a, ACTION_NAMES) {
                        Some(s) => format!(
                            "did you mean `{s}`? the actions are {}",
                            ACTION_NAMES.join(", ")
                        ),
                        None => format!("the actions are {}", ACTION_NAMES.join(", ")),
                    };
                    self.error(
                        "plan::unknown-action",
                        span(n.pos),
                        format!("unknown action `{a}`"),
                        "unknown action",
                    )
                    .help = Some(help);
                    None
                }
            }),
        };
        let reason = f.get("reason").and_then(|r| self.text(r, "reason"));
        let savings = f
            .get("savings_monthly_usd")
            .and_then(|s| self.positive_number(s, "savings_monthly_usd", true));
        let mut depends_on = Vec::new();
        let mut dep_spans = Vec::new();
        if let Some(d) = f.get("depends_on") {
            for (dep, sp) in self.string_list(d, "depends_on").unwrap_or_default() {
                if id.as_deref() == Some(dep.as_str()) {
                    self.error(
                        "plan::self-dependency",
                        sp,
                        format!("recommendation `{dep}` depends on itself"),
                        "itself",
                    )
                    .help = Some("remove its own id from `depends_on`".into());
                    continue;
                }
                depends_on.push(dep);
                dep_spans.push(sp);
            }
        }

        // Missing action fields are reported at the action, which names what needs them.
        let anchor = action_node.map_or(entry, |n| span(n.pos));
        let mut resource = anchor;
        let action = match action_name.as_deref() {
            None => {
                f.accept_rest();
                None
            }
            Some(name) => {
                let mut a = ActionReader {
                    l: self,
                    f: &mut f,
                    anchor,
                    what: &what,
                    resource: &mut resource,
                };
                a.read(name)
            }
        };
        let takes = format!(
            "a `{}` recommendation",
            action_name.as_deref().unwrap_or("?")
        );
        self.finish(f, "plan::unknown-field", &takes, &COMMON_FIELDS);
        Some(Recommendation {
            id: id?,
            reason,
            savings_monthly_usd: savings,
            depends_on,
            action: action?,
            spans: RecommendationSpans {
                entry,
                id: id_node.map_or(entry, |n| span(n.pos)),
                action: anchor,
                resource,
                depends_on: dep_spans,
            },
        })
    }

    /// Duplicate ids, unknown `depends_on` ids, approvals of unknown ids.
    fn cross_checks(
        &mut self,
        recs: &[Recommendation],
        approvals: &[Approval],
        approval_spans: &[Vec<Span>],
    ) {
        let ids = std::mem::take(&mut self.ids);
        let mut first: HashMap<&str, Span> = HashMap::with_capacity(ids.len());
        for (id, sp) in &ids {
            if let Some(prev) = first.get(id.as_str()) {
                let prev = *prev;
                self.error(
                    "plan::duplicate-id",
                    *sp,
                    format!("recommendation id `{id}` is used twice"),
                    "used again here",
                )
                .with_label(prev, "first used here")
                .help = Some("give each recommendation its own id".into());
            } else {
                first.insert(id, *sp);
            }
        }
        let known = || ids.iter().map(|(id, _)| id.as_str());
        for r in recs {
            for (dep, sp) in r.depends_on.iter().zip(&r.spans.depends_on) {
                if !first.contains_key(dep.as_str()) {
                    let help = match ids::suggest(dep, known()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => "depend only on ids of recommendations in this plan".into(),
                    };
                    self.error(
                        "plan::unknown-dependency",
                        *sp,
                        format!("`{}` depends on `{dep}`, which is not in this plan", r.id),
                        "no such recommendation",
                    )
                    .help = Some(help);
                }
            }
        }
        for (a, spans) in approvals.iter().zip(approval_spans) {
            for (c, sp) in a.covers.iter().zip(spans) {
                if c != "*" && !first.contains_key(c.as_str()) {
                    let help = match ids::suggest(c, known()) {
                        Some(s) => format!("did you mean `{s}`?"),
                        None => {
                            "an approval covers ids of recommendations in this plan, or `*`".into()
                        }
                    };
                    self.error(
                        "plan::unknown-approval",
                        *sp,
                        format!(
                            "the approval by {} covers `{c}`, which is not in this plan",
                            a.by
                        ),
                        "no such recommendation",
                    )
                    .help = Some(help);
                }
            }
        }
    }
}

/// Reads the fields of one action from a recommendation's mapping.
struct ActionReader<'a, 'n> {
    l: &'a mut Loader,
    f: &'a mut Fields<'n>,
    anchor: Span,
    what: &'a str,
    resource: &'a mut Span,
}

impl<'n> ActionReader<'_, 'n> {
    fn required(&mut self, field: &'static str, help: &str) -> Option<&'n Node> {
        let action = self.what;
        self.l.required(self.f, field, self.anchor, action, help)
    }

    fn target(&mut self, field: &'static str, kind: IdKind) -> Option<String> {
        let help = format!(
            "name the {} to change: `{field}: {}`",
            &kind.noun()[kind.noun().find(' ').map_or(0, |i| i + 1)..],
            kind.example()
        );
        let node = self.required(field, &help)?;
        *self.resource = span(node.pos);
        self.l.resource_id(node, field, kind)
    }

    fn optional_choice<T: Copy>(
        &mut self,
        field: &'static str,
        choices: &[(&'static str, T)],
        default: T,
    ) -> Option<T> {
        match self.f.get(field) {
            Some(n) => self.l.choice(n, field, choices),
            None => Some(default),
        }
    }

    /// A field that does not apply in this combination.
    fn conflict(&mut self, field: &str, why: &str, help: &str) {
        if let Some(sp) = self.f.key_span(field) {
            self.l
                .error(
                    "plan::field-conflict",
                    sp,
                    format!("`{field}` {why}"),
                    "does not apply here",
                )
                .help = Some(help.to_string());
        }
    }

    fn read(&mut self, name: &str) -> Option<Action> {
        match name {
            "terminate" => {
                let instance = self.target("instance", IdKind::Instance);
                let backup = self.optional_choice(
                    "backup",
                    &[("image", Backup::Image), ("none", Backup::None)],
                    Backup::Image,
                );
                Some(Action::Terminate(Terminate {
                    instance: instance?,
                    backup: backup?,
                }))
            }
            "rightsize" => {
                let instance = self.target("instance", IdKind::Instance);
                let to = self
                    .required("to", "give the new instance type: `to: m5.large`")
                    .and_then(|n| self.l.instance_type(n, "to"));
                Some(Action::Rightsize(Rightsize {
                    instance: instance?,
                    to: to?,
                }))
            }
            "hibernate" => {
                let instance = self.target("instance", IdKind::Instance);
                let mode = self.optional_choice(
                    "mode",
                    &[
                        ("hibernate", HibernateMode::Hibernate),
                        ("stop", HibernateMode::Stop),
                    ],
                    HibernateMode::Hibernate,
                );
                Some(Action::Hibernate(Hibernate {
                    instance: instance?,
                    mode: mode?,
                }))
            }
            "spot" => {
                let instance = self.target("instance", IdKind::Instance);
                let max_price = match self.f.get("max_price_usd_hour") {
                    Some(n) => Some(
                        self.l
                            .positive_number(n, "max_price_usd_hour", false)
                            .ok_or(()),
                    ),
                    None => None,
                }
                .transpose()
                .ok()?;
                Some(Action::Spot(Spot {
                    instance: instance?,
                    max_price_usd_hour: max_price,
                }))
            }
            "reserve" => self.reserve(),
            "autoscale" => self.autoscale(),
            "storage" => self.storage(),
            "config" => self.config(),
            _ => None,
        }
    }

    fn reserve(&mut self) -> Option<Action> {
        let type_node = self.required(
            "instance_type",
            "give the instance type to reserve: `instance_type: m5.large`",
        );
        if let Some(n) = type_node {
            *self.resource = span(n.pos);
        }
        let instance_type = type_node.and_then(|n| self.l.instance_type(n, "instance_type"));
        let count = self
            .required("count", "say how many to buy: `count: 2`")
            .and_then(|n| self.l.uint(n, "count", 1));
        let term = self
            .required("term", "give the term: `term: 1y` or `term: 3y`")
            .and_then(|n| {
                self.l.choice(
                    n,
                    "term",
                    &[("1y", Term::OneYear), ("3y", Term::ThreeYears)],
                )
            });
        let payment = self
            .required("payment", "give the payment option: `payment: no-upfront`")
            .and_then(|n| {
                self.l.choice(
                    n,
                    "payment",
                    &[
                        ("no-upfront", Payment::NoUpfront),
                        ("partial-upfront", Payment::PartialUpfront),
                        ("all-upfront", Payment::AllUpfront),
                    ],
                )
            });
        let class = self.optional_choice(
            "offering_class",
            &[
                ("standard", OfferingClass::Standard),
                ("convertible", OfferingClass::Convertible),
            ],
            OfferingClass::Standard,
        );
        let zone = match self.f.get("zone") {
            None => Some(None),
            Some(n) => self.l.string(n, "zone").map(|z| {
                if !ids::is_zone(&z) {
                    self.l
                        .error(
                            "plan::invalid-value",
                            span(n.pos),
                            format!("`{z}` is not an availability zone"),
                            "not a zone",
                        )
                        .help = Some(
                        "zones look like `us-east-1a`; leave `zone` out for a regional reservation"
                            .into(),
                    );
                }
                Some(z)
            }),
        };
        Some(Action::Reserve(Reserve {
            instance_type: instance_type?,
            count: count?,
            term: term?,
            payment: payment?,
            offering_class: class?,
            zone: zone?,
        }))
    }

    fn autoscale(&mut self) -> Option<Action> {
        let group_node = self.required("group", "name the auto-scaling group: `group: web-asg`");
        if let Some(n) = group_node {
            *self.resource = span(n.pos);
        }
        let group = group_node.and_then(|n| self.l.string(n, "group"));
        let mut read = |field: &'static str| -> (Option<u32>, Option<Span>, bool) {
            match self.f.get(field) {
                None => (None, None, true),
                Some(n) => {
                    let v = self.l.uint(n, field, 0);
                    let ok = v.is_some();
                    (v, Some(span(n.pos)), ok)
                }
            }
        };
        let (min, min_sp, ok1) = read("min");
        let (max, max_sp, ok2) = read("max");
        let (desired, desired_sp, ok3) = read("desired");
        if min_sp.is_none() && max_sp.is_none() && desired_sp.is_none() {
            let what = self.what.to_string();
            self.l.missing(
                self.anchor,
                "min, max or desired",
                &what,
                "give at least one of `min`, `max`, `desired`",
            );
            return None;
        }
        if let (Some(lo), Some(hi)) = (min, max)
            && lo > hi
        {
            self.l
                .error(
                    "plan::autoscale-bounds",
                    min_sp.unwrap_or_default(),
                    format!("`min` ({lo}) is greater than `max` ({hi})"),
                    "min",
                )
                .with_label(max_sp.unwrap_or_default(), "max")
                .help = Some("make `min` at most `max`".into());
        }
        if let Some(d) = desired {
            let sp = desired_sp.unwrap_or_default();
            if let Some(lo) = min.filter(|lo| d < *lo) {
                self.l
                    .error(
                        "plan::autoscale-bounds",
                        sp,
                        format!("`desired` ({d}) is below `min` ({lo})"),
                        "desired",
                    )
                    .with_label(min_sp.unwrap_or_default(), "min")
                    .help =
                    Some("the group's desired capacity must lie between min and max".into());
            }
            if let Some(hi) = max.filter(|hi| d > *hi) {
                self.l
                    .error(
                        "plan::autoscale-bounds",
                        sp,
                        format!("`desired` ({d}) is above `max` ({hi})"),
                        "desired",
                    )
                    .with_label(max_sp.unwrap_or_default(), "max")
                    .help =
                    Some("the group's desired capacity must lie between min and max".into());
            }
        }
        if !(ok1 && ok2 && ok3) {
            return None;
        }
        Some(Action::Autoscale(Autoscale {
            group: group?,
            min,
            max,
            desired,
        }))
    }

    fn storage(&mut self) -> Option<Action> {
        let volume = self.target("volume", IdKind::Volume);
        let to_node = self.f.get("to");
        let delete_node = self.f.get("delete");
        let iops_node = self.f.get("iops");
        let tp_node = self.f.get("throughput_mbps");
        let snap_node = self.f.get("snapshot");
        let to = to_node.map(|n| self.l.choice(n, "to", &VolumeType::ALL));
        let delete = delete_node.map(|n| self.l.boolean(n, "delete"));
        let deleting = matches!(delete, Some(Some(true)));
        match (to_node, deleting) {
            (Some(t), true) => {
                let d = delete_node.map_or(self.anchor, |n| span(n.pos));
                self.l
                    .error(
                        "plan::storage-mode",
                        span(t.pos),
                        "`storage` takes either `to` or `delete: true`, not both",
                        "retype",
                    )
                    .with_label(d, "delete")
                    .help =
                    Some("split this into two recommendations, or keep only one of them".into());
                return None;
            }
            (None, false) if !matches!(delete, Some(None)) => {
                self.l
                    .error(
                        "plan::storage-mode",
                        self.anchor,
                        format!("{} says neither `to` nor `delete: true`", self.what),
                        "nothing to do",
                    )
                    .help = Some(
                    "add `to: gp3` to change the volume type, or `delete: true` to delete it"
                        .into(),
                );
                return None;
            }
            _ => {}
        }
        let snapshot = match snap_node {
            None => Some(true),
            Some(n) => self.l.boolean(n, "snapshot"),
        };
        if to_node.is_some() {
            self.conflict(
                "snapshot",
                "applies only to `delete: true`",
                "remove `snapshot`, or delete the volume instead of changing its type",
            );
        } else {
            self.conflict(
                "iops",
                "applies only to a type change (`to`)",
                "remove `iops`",
            );
            self.conflict(
                "throughput_mbps",
                "applies only to a type change (`to`)",
                "remove `throughput_mbps`",
            );
        }
        let to = to.flatten();
        let mut numbers = |node: Option<&Node>,
                           field: &str,
                           allowed: &[(VolumeType, u32, u32)]|
         -> Option<Option<u32>> {
            let Some(n) = node else { return Some(None) };
            let v = self.l.uint(n, field, 0)?;
            let Some(t) = to else { return Some(Some(v)) };
            match allowed.iter().find(|(vt, _, _)| *vt == t) {
                None => {
                    let list: Vec<&str> = allowed.iter().map(|(vt, _, _)| vt.as_str()).collect();
                    self.l
                        .error(
                            "plan::field-conflict",
                            span(n.pos),
                            format!("`{field}` cannot be set for {} volumes", t.as_str()),
                            "not for this type",
                        )
                        .help = Some(format!(
                        "`{field}` applies to {} volumes; remove it",
                        list.join(", ")
                    ));
                    None
                }
                Some((_, lo, hi)) if v < *lo || v > *hi => {
                    self.l
                        .error(
                            "plan::out-of-range",
                            span(n.pos),
                            format!(
                                "`{field}` for {} must be from {lo} to {hi}, found {v}",
                                t.as_str()
                            ),
                            "out of range",
                        )
                        .help = Some(format!("choose a value from {lo} to {hi}"));
                    None
                }
                Some(_) => Some(Some(v)),
            }
        };
        let iops = numbers(
            iops_node,
            "iops",
            &[
                (VolumeType::Gp3, 3000, 16000),
                (VolumeType::Io1, 100, 64000),
                (VolumeType::Io2, 100, 256000),
            ],
        );
        let throughput = numbers(tp_node, "throughput_mbps", &[(VolumeType::Gp3, 125, 1000)]);
        if let Some(None) = delete {
            return None;
        }
        if to_node.is_some() && to.is_none() {
            return None;
        }
        Some(Action::Storage(Storage {
            volume: volume?,
            to,
            iops: iops?,
            throughput_mbps: throughput?,
            delete: deleting,
            snapshot: snapshot?,
        }))
    }

    fn config(&mut self) -> Option<Action> {
        let fix = self
            .required("fix", "say which fix: `fix: disable-detailed-monitoring`, `release-address` or `delete-snapshot`")
            .and_then(|n| self.l.choice(n, "fix", &ConfigFix::ALL));
        let Some(fix) = fix else {
            // The target fields depend on the fix; without one they cannot be judged.
            self.f.get("instance");
            self.f.get("address");
            self.f.get("snapshot");
            return None;
        };
        let (instance, address, snapshot) = match fix {
            ConfigFix::DisableDetailedMonitoring => {
                (self.target("instance", IdKind::Instance), None, None)
            }
            ConfigFix::ReleaseAddress => (None, self.target("address", IdKind::Address), None),
            ConfigFix::DeleteSnapshot => (None, None, self.target("snapshot", IdKind::Snapshot)),
        };
        let fix_name = ConfigFix::ALL
            .iter()
            .find(|(_, f)| *f == fix)
            .map_or("", |(n, _)| n);
        for other in ["instance", "address", "snapshot"] {
            if other != fix.target_field() && self.f.has(other) {
                self.f.get(other);
                self.conflict(
                    other,
                    &format!("does not apply to `fix: {fix_name}`"),
                    &format!(
                        "`{fix_name}` takes `{}`; remove `{other}`",
                        fix.target_field()
                    ),
                );
            }
        }
        let target_ok = instance.is_some() || address.is_some() || snapshot.is_some();
        target_ok.then_some(Action::Config(Config {
            fix,
            instance,
            address,
            snapshot,
        }))
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map_or_else(String::new, |f| f.to_uppercase().chain(c).collect())
}
