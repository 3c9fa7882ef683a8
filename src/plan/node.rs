//! A YAML document as a tree of nodes that each remember where they came from.
//!
//! This is the only place that talks to the YAML library. The loader walks the
//! tree to build the typed plan and to report every problem at once, which a
//! direct `serde` deserialisation into the typed model could not do: serde stops
//! at the first error.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;
use std::fmt;

/// Where a node sits in its source: a byte range plus 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Byte offset of the first character.
    pub offset: usize,
    /// Length in bytes (at least 1 where the token is not empty).
    pub len: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
}

/// A scalar as YAML typed it.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
}

/// One node of the document.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A value and its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

impl Node {
    /// The name of the node's kind as a user would say it.
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Scalar(Scalar::Null) => "null",
            Value::Scalar(Scalar::Bool(_)) => "a boolean",
            Value::Scalar(Scalar::Int(_)) => "an integer",
            Value::Scalar(Scalar::Float(_)) => "a number",
            Value::Scalar(Scalar::Str(_)) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// The node as a string, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(Scalar::Str(s)) => Some(s),
            _ => None,
        }
    }

    /// The mapping's entries, if it is one.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }
}

/// The bare value, before its position is attached by [`Spanned`].
struct RawValue(Value);

impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor).map(RawValue)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Int(v.into())))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Int(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Int(v.into())))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        i128::try_from(v)
            .map(|v| Value::Scalar(Scalar::Int(v)))
            .map_err(|_| E::custom("integer is too large"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Float(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Str(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Str(v)))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Null))
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Scalar(Scalar::Null))
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(RawVisitor)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element::<SpannedNode>()? {
            items.push(item.0);
        }
        Ok(Value::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some(key) = map.next_key::<SpannedNode>()? {
            let value = map.next_value::<SpannedNode>()?;
            entries.push((key.0, value.0));
        }
        Ok(Value::Map(entries))
    }
}

/// A node read through serde-saphyr's `Spanned`, which records the location.
struct SpannedNode(Node);

impl<'de> Deserialize<'de> for SpannedNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<RawValue>::deserialize(d)?;
        let loc = spanned.referenced;
        let span = loc.span();
        let pos = Pos {
            offset: span.byte_offset().unwrap_or(0) as usize,
            len: span.byte_len().unwrap_or(0) as usize,
            line: loc.line() as usize,
            column: loc.column() as usize,
        };
        Ok(SpannedNode(Node {
            value: spanned.value.0,
            pos,
        }))
    }
}

/// A YAML syntax error, located.
#[derive(Debug, Clone)]
pub struct SyntaxError {
    pub message: String,
    pub pos: Pos,
}

/// Parses one YAML document into a located tree.
/// The YAML reading rules pare uses for every file it reads: YAML 1.2
/// booleans, and limits that grow with the text. The text is already in
/// memory and a byte yields at most about one node without aliases, so a
/// large file is never refused for its size; aliases are what can multiply
/// work (an "alias bomb"), and their replay stays capped.
pub(crate) fn options(
    source: &str,
    duplicates: serde_saphyr::DuplicateKeyPolicy,
) -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = source.len().max(budget.max_nodes);
    budget.max_events = (2 * source.len()).max(budget.max_events);
    let mut alias_limits = serde_saphyr::options::AliasLimits::default();
    alias_limits.max_total_replayed_events = 100_000;
    serde_saphyr::options! {
        duplicate_keys: duplicates,
        strict_booleans: true,
        budget: Some(budget),
        alias_limits: alias_limits,
    }
}

pub fn parse(source: &str) -> Result<Node, SyntaxError> {
    // Duplicates reach the loader, which reports both places.
    let options = options(source, serde_saphyr::DuplicateKeyPolicy::PassThrough);
    match serde_saphyr::from_str_with_options::<SpannedNode>(source, options) {
        Ok(node) => Ok(node.0),
        Err(err) => {
            let loc = err.location();
            let (line, column) = loc
                .map(|l| (l.line() as usize, l.column() as usize))
                .unwrap_or((1, 1));
            Err(SyntaxError {
                message: strip_location(&err.to_string()),
                pos: Pos {
                    offset: 0,
                    len: 0,
                    line,
                    column,
                },
            })
        }
    }
}

/// The library's first message line without its "error: line N column M:"
/// prefix: the diagnostic shows the location itself.
pub(crate) fn strip_location(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    let line = line.strip_prefix("error:").unwrap_or(line).trim_start();
    match line
        .strip_prefix("line ")
        .and_then(|rest| rest.split_once(": "))
    {
        Some((loc, msg)) if loc.contains("column") => msg.to_string(),
        _ => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_carry_byte_spans_and_positions() {
        let src = "a: 1
list:
  - { k: \"v w\", n: no, f: 1.5, z: ~ }\n";
        let root = parse(src).unwrap();
        let map = root.as_map().unwrap();
        assert_eq!(
            map[0].0.pos,
            Pos {
                offset: 0,
                len: 1,
                line: 1,
                column: 1
            }
        );
        assert_eq!(map[0].1.value, Value::Scalar(Scalar::Int(1)));
        let Value::Seq(items) = &map[1].1.value else {
            panic!("a list")
        };
        let inner = items[0].as_map().unwrap();
        let (k, v) = &inner[0];
        assert_eq!((k.pos.line, k.pos.column), (3, 7));
        assert_eq!(v.as_str(), Some("v w"));
        assert_eq!(&src[v.pos.offset..v.pos.offset + v.pos.len], "\"v w\"");
        // YAML 1.2 booleans only: `n` and `no` stay strings.
        assert_eq!(inner[1].0.as_str(), Some("n"));
        assert_eq!(inner[1].1.as_str(), Some("no"));
        assert_eq!(inner[2].1.value, Value::Scalar(Scalar::Float(1.5)));
        assert_eq!(inner[3].1.value, Value::Scalar(Scalar::Null));
    }

    #[test]
    fn syntax_errors_are_located_without_the_library_prefix() {
        let err = parse("a: [1, 2\n").unwrap_err();
        assert_eq!((err.pos.line, err.pos.column), (1, 4));
        assert!(!err.message.starts_with("error:"), "{}", err.message);
    }

    #[test]
    fn duplicate_keys_reach_the_loader() {
        let root = parse("a: 1\na: 2\n").unwrap();
        assert_eq!(root.as_map().unwrap().len(), 2);
    }
}
