//! Reading values: a mapping's fields (unknown ones named, with a "did you
//! mean"), strings, numbers in range, choices, lists, cloud ids and types,
//! each problem a located diagnostic.

use super::*;

impl Loader {
    pub(super) fn error(
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

    pub(super) fn wrong_type(&mut self, node: &Node, field: &str, expected: &str) {
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

    pub(super) fn fields<'n>(&mut self, node: &'n Node, what: &str) -> Option<Fields<'n>> {
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
    pub(super) fn finish(
        &mut self,
        fields: Fields,
        code: &'static str,
        what: &str,
        extra_known: &[&str],
    ) {
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

    pub(super) fn missing(&mut self, at: Span, field: &str, what: &str, help: impl Into<String>) {
        self.error(
            "plan::missing-field",
            at,
            format!("{what} is missing `{field}`"),
            format!("needs `{field}`"),
        )
        .help = Some(help.into());
    }

    pub(super) fn required<'n>(
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
    pub(super) fn string(&mut self, node: &Node, field: &str) -> Option<String> {
        match node.as_str() {
            Some(s) => Some(s.to_owned()),
            None => {
                self.wrong_type(node, field, "a string");
                None
            }
        }
    }

    /// Free text: any scalar reads as its text.
    pub(super) fn text(&mut self, node: &Node, field: &str) -> Option<String> {
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

    pub(super) fn uint(&mut self, node: &Node, field: &str, min: u32) -> Option<u32> {
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

    /// A number from zero (or just above it) up to `max`: an amount of
    /// money a plan declares. Infinity, NaN and amounts beyond any real
    /// bill are refused: summed, they would overflow to infinity, which a
    /// run record (JSON) cannot hold.
    pub(super) fn positive_number(
        &mut self,
        node: &Node,
        field: &str,
        allow_zero: bool,
        max: Bound,
    ) -> Option<f64> {
        let v = match node.value {
            Value::Scalar(Scalar::Int(i)) => i as f64,
            Value::Scalar(Scalar::Float(x)) => x,
            _ => {
                self.wrong_type(node, field, "a number");
                return None;
            }
        };
        let bound = if allow_zero {
            "zero or more"
        } else {
            "more than zero"
        };
        let help = format!("give `{field}` a number {bound}, at most {}", max.text);
        if v.is_nan() || v < 0.0 || (!allow_zero && v == 0.0) {
            self.error(
                "plan::out-of-range",
                span(node.pos),
                format!("`{field}` must be {bound}, found {}", shown_number(v)),
                "out of range",
            )
            .help = Some(help);
            return None;
        }
        if v > max.value {
            self.error(
                "plan::out-of-range",
                span(node.pos),
                format!(
                    "`{field}` is too large: at most {}, found {}",
                    max.text,
                    shown_number(v)
                ),
                "out of range",
            )
            .help = Some(help);
            return None;
        }
        Some(v)
    }

    pub(super) fn boolean(&mut self, node: &Node, field: &str) -> Option<bool> {
        match node.value {
            Value::Scalar(Scalar::Bool(b)) => Some(b),
            _ => {
                self.wrong_type(node, field, "true or false");
                None
            }
        }
    }

    pub(super) fn choice<T: Copy>(
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

    pub(super) fn string_list(&mut self, node: &Node, field: &str) -> Option<Vec<(String, Span)>> {
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

    pub(super) fn resource_id(&mut self, node: &Node, field: &str, kind: IdKind) -> Option<String> {
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

    pub(super) fn instance_type(&mut self, node: &Node, field: &str) -> Option<String> {
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
}

/// The largest amount a plan may declare, and how to say it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bound {
    pub value: f64,
    pub text: &'static str,
}

/// `savings_monthly_usd`: more than any one change could save.
pub(super) const MAX_SAVINGS_MONTHLY_USD: Bound = Bound {
    value: crate::plan::model::MAX_SAVINGS_MONTHLY_USD,
    text: "1,000,000,000 (USD a month)",
};

/// `max_price_usd_hour`: far above the dearest instance's on-demand price.
pub(super) const MAX_PRICE_USD_HOUR: Bound = Bound {
    value: crate::plan::model::MAX_PRICE_USD_HOUR,
    text: "100,000 (USD an hour)",
};

/// A number as written back to the user: `1.7e308` rather than 309 digits.
fn shown_number(v: f64) -> String {
    if v.is_finite() && v.abs() >= 1e15 {
        format!("{v:e}")
    } else {
        v.to_string()
    }
}
