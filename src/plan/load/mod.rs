//! Reading plan files: YAML text → [`Plan`], or every problem at once.
//!
//! This module checks shapes only: syntax, keys, types, values, id formats,
//! references between recommendations. It never calls a provider, and the
//! dependency-cycle check lives with the graph.

mod actions;
mod values;

use super::ids::{self, IdKind};
use super::model::*;
use super::node::{self, Node, Pos, Scalar, Value};
use crate::diagnostic::{Diagnostic, SourceFile, Span};
use crate::vocabulary::words::{capitalise, clean};
use actions::ActionReader;
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
    #[error("{} in {}", crate::diagnostic::count_errors(.0.len()), .0.first().map_or("", |d| d.file.name.as_str()))]
    Invalid(Vec<Diagnostic>),
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
    let text = crate::durable::read_given(path, crate::durable::PLAN_LIMIT, "a plan file")
        .map_err(|e| LoadError::Io {
            path: path.to_owned(),
            error: e.to_string(),
        })?;
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
        Err(err) if !looks_like_plan_text(&source.text) => {
            // Not YAML, and nothing says it is a plan: a file named by mistake
            // (or by someone else's pull request) may hold secrets, so neither
            // its lines nor the YAML reader's words about them are shown.
            let offset = source.offset(err.pos.line, err.pos.column);
            let d = Diagnostic::new(
                "plan::yaml-syntax",
                &source,
                Span::new(offset, 0),
                format!(
                    "{} is not a plan file: it is not YAML (the YAML breaks at line {}, column {}), and has no top-level `version` or `recommendations`",
                    source.name, err.pos.line, err.pos.column
                ),
                "here",
            )
            .with_help(PLAN_SHAPE)
            .without_source();
            return (None, vec![d]);
        }
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
    if !is_plan_shaped(&root) {
        // YAML, but not a plan: shown by position only, never quoted.
        let (line, column) = (root.pos.line.max(1), root.pos.column.max(1));
        let d = Diagnostic::new(
            "plan::not-a-plan",
            &source,
            Span::new(root.pos.offset, 0),
            format!(
                "{} is not a plan file (line {line}, column {column}): its top level is not a mapping with `version` or `recommendations`",
                source.name
            ),
            "here",
        )
        .with_help(PLAN_SHAPE)
        .without_source();
        return (None, vec![d]);
    }
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

/// What a plan file looks like, for a file that does not.
const PLAN_SHAPE: &str = "a plan file is a YAML mapping with `version: 1`, a `provider` and `recommendations` at the top (its lines are not shown, since this file may be something else); see `pare schema` or examples/quickstart/plan.yaml";

/// The plan's own top-level keys, by which a file is recognised as a plan.
const PLAN_KEYS: [&str; 2] = ["version", "recommendations"];

/// Whether a parsed document is recognisably a plan (or empty, which is
/// reported as such): a mapping at the top with `version` or
/// `recommendations`. Anything else is never quoted in an error.
fn is_plan_shaped(root: &Node) -> bool {
    match &root.value {
        Value::Scalar(Scalar::Null) => true,
        Value::Map(entries) => entries
            .iter()
            .any(|(k, _)| k.as_str().is_some_and(|k| PLAN_KEYS.contains(&k))),
        _ => false,
    }
}

/// The same, for text that is not YAML: a line that starts, unindented,
/// with `version:` or `recommendations:` (quoted or not).
fn looks_like_plan_text(text: &str) -> bool {
    text.lines().any(|line| {
        PLAN_KEYS.iter().any(|k| {
            [format!("{k}:"), format!("\"{k}\":"), format!("'{k}':")]
                .iter()
                .any(|p| line.starts_with(p.as_str()))
        })
    })
}

/// The fields every recommendation may have.
const COMMON_FIELDS: [&str; 6] = [
    "id",
    "action",
    "reason",
    "savings_monthly_usd",
    "depends_on",
    "source",
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
                if !crate::durable::lexically_inside(&seed) {
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
                .and_then(|b| {
                    let by = self.text(b, "by")?;
                    // Someone must be named: blank, invisible or punctuation-only
                    // text (`""`, `" "`, `"\u{200b}"`, `"~"`) approves nothing.
                    if !by.trim().chars().any(char::is_alphanumeric) {
                        self.error(
                            "plan::invalid-value",
                            span(b.pos),
                            "an approval must name who approved it, e.g. alice@example.com",
                            "names no one",
                        )
                        .help = Some(
                            "write who approved it in `by`, with at least one letter or digit: `by: alice@example.com`".into(),
                        );
                        return None;
                    }
                    Some(by)
                });
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
        let savings = f.get("savings_monthly_usd").and_then(|s| {
            self.positive_number(
                s,
                "savings_monthly_usd",
                true,
                values::MAX_SAVINGS_MONTHLY_USD,
            )
        });
        let source = f.get("source").and_then(|n| self.source(n));
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
            source,
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

    /// An imported recommendation's `source` block.
    fn source(&mut self, node: &Node) -> Option<Source> {
        let at = span(node.pos);
        let mut f = self.fields(node, "source")?;
        let service = self
            .required(
                &mut f,
                "service",
                at,
                "the `source` block",
                "name the service: `cost-optimization-hub` or `compute-optimizer`",
            )
            .and_then(|n| {
                let s = self.string(n, "service")?;
                if SOURCE_SERVICES.contains(&s.as_str()) {
                    Some(s)
                } else {
                    self.error(
                        "plan::invalid-value",
                        span(n.pos),
                        format!("`{}` is not a service pare imports from", clean(&s)),
                        "unknown service",
                    )
                    .help = Some(format!("use one of {}", SOURCE_SERVICES.join(", ")));
                    None
                }
            });
        let recommendation_id = self
            .required(
                &mut f,
                "recommendation_id",
                at,
                "the `source` block",
                "give the service's id of the recommendation",
            )
            .and_then(|n| self.text(n, "recommendation_id"));
        let refreshed_at = f.get("refreshed_at").and_then(|n| {
            let s = self.string(n, "refreshed_at")?;
            // Exactly as pare writes it, and a real time (no 30 February).
            if crate::clock::parse_rfc3339(&s)
                .map(crate::clock::rfc3339)
                .as_deref()
                != Some(s.as_str())
            {
                self.error(
                    "plan::invalid-value",
                    span(n.pos),
                    format!("`{}` is not an RFC 3339 time", clean(&s)),
                    "not a time",
                )
                .help = Some("write it in UTC to the second, like `2026-11-30T08:00:00Z`".into());
                return None;
            }
            Some(s)
        });
        let mut assumed = std::collections::BTreeMap::new();
        if let Some(n) = f.get("assumed") {
            match &n.value {
                Value::Map(entries) => {
                    for (k, v) in entries {
                        let key = match &k.value {
                            Value::Scalar(Scalar::Str(s)) if ASSUMED_KEYS.contains(&s.as_str()) => {
                                s.clone()
                            }
                            _ => {
                                self.error(
                                    "plan::unknown-field",
                                    span(k.pos),
                                    "not an attribute pare checks",
                                    "unknown attribute",
                                )
                                .help =
                                    Some(format!("`assumed` takes: {}", ASSUMED_KEYS.join(", ")));
                                continue;
                            }
                        };
                        // Types are names; the rest are counts.
                        let named = matches!(key.as_str(), "type" | "instance_type");
                        let value = match &v.value {
                            Value::Scalar(Scalar::Str(s)) if named && s.len() <= 64 => {
                                serde_json::Value::from(s.clone())
                            }
                            Value::Scalar(Scalar::Int(i))
                                if !named && (0..=1_000_000_000).contains(i) =>
                            {
                                serde_json::Value::from(*i as i64)
                            }
                            _ => {
                                let expected = if named {
                                    "a name such as `m5.xlarge` or `gp2`"
                                } else {
                                    "a whole number from 0"
                                };
                                self.wrong_type(v, &key, expected);
                                continue;
                            }
                        };
                        assumed.insert(key, value);
                    }
                }
                _ => self.wrong_type(n, "assumed", "a mapping"),
            }
        }
        self.finish(f, "plan::unknown-field", "the `source` block", &[]);
        Some(Source {
            service: service?,
            recommendation_id: recommendation_id?,
            refreshed_at,
            assumed,
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
