//! YAML text to the loader's working tree: every value positioned, anchors
//! and aliases expanded (within a bound), merge keys (`<<`) applied, plain
//! scalars typed as compose's YAML library types them (YAML 1.2 core schema:
//! `yes`, `on`, `80:80` and `2024-01-01` stay strings), and the `!reset` and
//! `!override` tags kept for the merge.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use saphyr_parser::{Event, Parser, ScalarStyle, Span, Tag as YTag};

use super::LoadError;
use crate::node::{Node, Pos, Value};

/// The largest compose (or extended) file read, in bytes.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// The most values one document may hold once aliases are expanded.
pub const MAX_NODES: usize = 1_000_000;
/// The deepest nesting of sequences and mappings.
pub const MAX_DEPTH: usize = 256;

/// Compose's merge directives on a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    None,
    /// `!reset`: the key is removed from what it is merged over.
    Reset,
    /// `!override`: the value replaces what it is merged over, whole.
    Override,
}

#[derive(Debug, Clone, PartialEq)]
pub enum V {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Y>),
    Map(Vec<(String, Y)>),
}

/// A value of the working tree.
#[derive(Debug, Clone, PartialEq)]
pub struct Y {
    pub v: V,
    pub pos: Pos,
    pub tag: Tag,
}

impl Y {
    pub fn new(v: V, pos: Pos) -> Y {
        Y {
            v,
            pos,
            tag: Tag::None,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Y> {
        match &self.v {
            V::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Y> {
        match &mut self.v {
            V::Map(m) => m.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<Y> {
        match &mut self.v {
            V::Map(m) => {
                let i = m.iter().position(|(k, _)| k == key)?;
                Some(m.remove(i).1)
            }
            _ => None,
        }
    }

    /// Sets `key`, in place when present, else at the end.
    pub fn set(&mut self, key: &str, value: Y) {
        if let V::Map(m) = &mut self.v {
            match m.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => *v = value,
                None => m.push((key.to_string(), value)),
            }
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.v {
            V::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A scalar in compose's string reading (see [`Node::scalar`]).
    pub fn scalar(&self) -> Option<String> {
        match &self.v {
            V::Str(s) => Some(s.clone()),
            V::Int(i) => Some(i.to_string()),
            V::Float(f) => Some(f.to_string()),
            V::Bool(b) => Some(b.to_string()),
            V::Null | V::Seq(_) | V::Map(_) => None,
        }
    }

    pub fn is_map(&self) -> bool {
        matches!(self.v, V::Map(_))
    }

    /// The shared tree, tags dropped.
    pub fn into_node(self) -> Node {
        let value = match self.v {
            V::Null => Value::Null,
            V::Bool(b) => Value::Bool(b),
            V::Int(i) => Value::Int(i),
            V::Float(f) => Value::Float(f),
            V::Str(s) => Value::Str(s),
            V::Seq(items) => Value::Seq(items.into_iter().map(Y::into_node).collect()),
            V::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, v.into_node()))
                    .collect(),
            ),
        };
        Node::new(value, self.pos)
    }

    /// How many values this one holds, itself included.
    fn size(&self) -> usize {
        1 + match &self.v {
            V::Seq(items) => items.iter().map(Y::size).sum(),
            V::Map(entries) => entries.iter().map(|(_, v)| v.size()).sum(),
            _ => 0,
        }
    }
}

fn pos_of(file: &Arc<PathBuf>, span: &Span) -> Pos {
    Pos {
        file: file.clone(),
        line: span.start.line(),
        col: span.start.col() + 1,
    }
}

/// A container being built.
enum Open {
    Seq {
        items: Vec<Y>,
        pos: Pos,
        tag: Tag,
        anchor: usize,
    },
    Map {
        entries: Vec<(Y, Y)>,
        key: Option<Y>,
        pos: Pos,
        tag: Tag,
        anchor: usize,
    },
}

/// Parses every document of `text` (a file's content; `file` names it in
/// positions). An empty document is `Null`.
pub fn parse(text: &str, file: &Arc<PathBuf>) -> Result<Vec<Y>, LoadError> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut stack: Vec<Open> = Vec::new();
    let mut anchors: HashMap<usize, Y> = HashMap::new();
    let mut nodes = 0usize;
    let mut current: Option<Y> = None;
    let at = |line: usize, col: usize| Pos {
        file: file.clone(),
        line,
        col,
    };

    while let Some(ev) = parser.next_event() {
        let (ev, span) = ev.map_err(|e| {
            let m = e.marker();
            LoadError::at(at(m.line(), m.col() + 1), format!("YAML: {}", e.info()))
        })?;
        let pos = pos_of(file, &span);
        let done: Option<Y> = match ev {
            Event::StreamStart | Event::StreamEnd | Event::Nothing => None,
            Event::DocumentStart(_) => {
                anchors.clear();
                current = None;
                None
            }
            Event::DocumentEnd => {
                docs.push(
                    current
                        .take()
                        .unwrap_or_else(|| Y::new(V::Null, pos.clone())),
                );
                None
            }
            Event::Alias(id) => {
                let Some(target) = anchors.get(&id) else {
                    return Err(LoadError::at(
                        pos,
                        "YAML: an alias to an unknown anchor".into(),
                    ));
                };
                nodes += target.size();
                if nodes > MAX_NODES {
                    return Err(LoadError::at(
                        pos,
                        format!(
                            "YAML: aliases expand to more than {MAX_NODES} values; refusing the file (an alias bomb?)"
                        ),
                    ));
                }
                let mut y = target.clone();
                y.pos = pos;
                Some(y)
            }
            Event::Scalar(text, style, anchor, tag) => {
                nodes += 1;
                let (v, tag) = scalar(&text, style, tag.as_deref())
                    .map_err(|m| LoadError::at(pos.clone(), m))?;
                let y = Y { v, pos, tag };
                if anchor > 0 {
                    anchors.insert(anchor, y.clone());
                }
                Some(y)
            }
            Event::SequenceStart(anchor, tag) => {
                nodes += 1;
                if stack.len() >= MAX_DEPTH {
                    return Err(LoadError::at(
                        pos,
                        format!("YAML: nested deeper than {MAX_DEPTH} levels"),
                    ));
                }
                stack.push(Open::Seq {
                    items: Vec::new(),
                    pos,
                    tag: compose_tag(tag.as_deref()),
                    anchor,
                });
                None
            }
            Event::MappingStart(anchor, tag) => {
                nodes += 1;
                if stack.len() >= MAX_DEPTH {
                    return Err(LoadError::at(
                        pos,
                        format!("YAML: nested deeper than {MAX_DEPTH} levels"),
                    ));
                }
                stack.push(Open::Map {
                    entries: Vec::new(),
                    key: None,
                    pos,
                    tag: compose_tag(tag.as_deref()),
                    anchor,
                });
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Open::Seq {
                    items,
                    pos,
                    tag,
                    anchor,
                }) => {
                    let y = Y {
                        v: V::Seq(items),
                        pos,
                        tag,
                    };
                    if anchor > 0 {
                        anchors.insert(anchor, y.clone());
                    }
                    Some(y)
                }
                _ => return Err(LoadError::at(pos, "YAML: unbalanced sequence".into())),
            },
            Event::MappingEnd => match stack.pop() {
                Some(Open::Map {
                    entries,
                    pos,
                    tag,
                    anchor,
                    ..
                }) => {
                    let y = Y {
                        v: V::Map(build_map(entries)?),
                        pos,
                        tag,
                    };
                    if anchor > 0 {
                        anchors.insert(anchor, y.clone());
                    }
                    Some(y)
                }
                _ => return Err(LoadError::at(pos, "YAML: unbalanced mapping".into())),
            },
        };
        if nodes > MAX_NODES {
            return Err(LoadError::at(
                at(span.start.line(), span.start.col() + 1),
                format!("YAML: more than {MAX_NODES} values in one document; refusing the file"),
            ));
        }
        if let Some(y) = done {
            match stack.last_mut() {
                None => current = Some(y),
                Some(Open::Seq { items, .. }) => items.push(y),
                Some(Open::Map { entries, key, .. }) => match key.take() {
                    None => *key = Some(y),
                    Some(k) => entries.push((k, y)),
                },
            }
        }
    }
    Ok(docs)
}

/// Keys as strings (compose turns `80:` and `true:` into "80" and "true"),
/// duplicates refused, then merge keys applied: the mapping's own keys win
/// over merged ones, and in a list of merged mappings the earlier wins.
fn build_map(entries: Vec<(Y, Y)>) -> Result<Vec<(String, Y)>, LoadError> {
    let mut own: Vec<(String, Y)> = Vec::with_capacity(entries.len());
    let mut merged: Vec<(String, Y)> = Vec::new();
    let mut key_pos: HashMap<String, Pos> = HashMap::new();
    for (k, v) in entries {
        let name = match &k.v {
            V::Str(s) => s.clone(),
            V::Null => "null".to_string(),
            V::Bool(_) | V::Int(_) | V::Float(_) => k.scalar().unwrap_or_default(),
            V::Seq(_) | V::Map(_) => {
                return Err(LoadError::at(
                    k.pos,
                    "YAML: a mapping key must be a string".into(),
                ));
            }
        };
        if name == "<<" && matches!(k.v, V::Str(_)) {
            let sources =
                match v.v {
                    V::Map(m) => vec![m],
                    V::Seq(items) => {
                        let mut maps = Vec::new();
                        for item in items {
                            match item.v {
                                V::Map(m) => maps.push(m),
                                _ => return Err(LoadError::at(
                                    item.pos,
                                    "YAML: a merge key (<<) takes a mapping or a list of mappings"
                                        .into(),
                                )),
                            }
                        }
                        maps
                    }
                    _ => {
                        return Err(LoadError::at(
                            v.pos,
                            "YAML: a merge key (<<) takes a mapping or a list of mappings".into(),
                        ))
                    }
                };
            for m in sources {
                for (mk, mv) in m {
                    if !merged.iter().any(|(k, _)| *k == mk) {
                        merged.push((mk, mv));
                    }
                }
            }
            continue;
        }
        if let Some(first) = key_pos.get(&name) {
            return Err(LoadError::at(
                k.pos,
                format!(
                    "YAML: mapping key {name:?} already defined at line {}",
                    first.line
                ),
            ));
        }
        key_pos.insert(name.clone(), k.pos.clone());
        // A mapping, list or empty value is positioned at its key: where
        // `healthcheck:` or `web:` is written.
        let mut v = v;
        if matches!(v.v, V::Map(_) | V::Seq(_) | V::Null) {
            v.pos = k.pos.clone();
        }
        own.push((name, v));
    }
    if merged.is_empty() {
        return Ok(own);
    }
    let mut out: Vec<(String, Y)> = Vec::with_capacity(merged.len() + own.len());
    for (k, v) in merged {
        if !key_pos.contains_key(&k) {
            out.push((k, v));
        }
    }
    out.extend(own);
    Ok(out)
}

fn compose_tag(tag: Option<&YTag>) -> Tag {
    match tag {
        Some(t) if t.handle == "!" && t.suffix == "reset" => Tag::Reset,
        Some(t) if t.handle == "!" && t.suffix == "override" => Tag::Override,
        _ => Tag::None,
    }
}

/// Types a scalar. Quoted and block scalars are strings; plain ones are
/// resolved as go-yaml (compose's YAML library) resolves them.
fn scalar(text: &str, style: ScalarStyle, tag: Option<&YTag>) -> Result<(V, Tag), String> {
    let ctag = compose_tag(tag);
    if let Some(t) = tag.filter(|t| t.is_yaml_core_schema()) {
        let v = match t.suffix.as_str() {
            "str" => V::Str(text.to_string()),
            "null" => V::Null,
            "bool" => match resolve_plain(text) {
                v @ V::Bool(_) => v,
                _ => return Err(format!("YAML: {text:?} is not a !!bool")),
            },
            "int" => match resolve_plain(text) {
                v @ V::Int(_) => v,
                _ => return Err(format!("YAML: {text:?} is not an !!int")),
            },
            "float" => match resolve_plain(text) {
                V::Int(i) => V::Float(i as f64),
                v @ V::Float(_) => v,
                _ => return Err(format!("YAML: {text:?} is not a !!float")),
            },
            _ => V::Str(text.to_string()),
        };
        return Ok((v, ctag));
    }
    let v = match style {
        ScalarStyle::Plain => resolve_plain(text),
        _ => V::Str(text.to_string()),
    };
    Ok((v, ctag))
}

/// go-yaml's resolution of an untagged plain scalar (YAML 1.2 core schema,
/// plus Go's integer spellings: `0x1F`, `0o17`, `017`, `0b101`, `1_000`).
pub fn resolve_plain(s: &str) -> V {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return V::Null,
        "true" | "True" | "TRUE" => return V::Bool(true),
        "false" | "False" | "FALSE" => return V::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return V::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return V::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return V::Float(f64::NAN),
        _ => {}
    }
    let first = s.as_bytes()[0];
    if !(first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.') {
        return V::Str(s.to_string());
    }
    let plain: String = s.chars().filter(|&c| c != '_').collect();
    if let Some(i) = go_parse_int(&plain) {
        return V::Int(i);
    }
    if yaml_style_float(&plain) {
        if let Ok(f) = plain.parse::<f64>() {
            return V::Float(f);
        }
    }
    V::Str(s.to_string())
}

/// Go's `strconv.ParseInt(s, 0, 64)`: a sign, then `0x`, `0o`, `0b`, a
/// leading `0` (octal) or decimal digits.
fn go_parse_int(s: &str) -> Option<i64> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        if magnitude <= i64::MAX as u64 + 1 {
            Some((magnitude as i128).wrapping_neg() as i64)
        } else {
            None
        }
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn yaml_style_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Y {
        let file = Arc::new(PathBuf::from("t.yaml"));
        parse(text, &file).unwrap().remove(0)
    }

    #[test]
    fn plain_scalars_resolve_as_compose_reads_them() {
        let cases: &[(&str, V)] = &[
            ("80:80", V::Str("80:80".into())),
            ("yes", V::Str("yes".into())),
            ("on", V::Str("on".into())),
            ("off", V::Str("off".into())),
            ("true", V::Bool(true)),
            ("False", V::Bool(false)),
            ("~", V::Null),
            ("80", V::Int(80)),
            ("-3", V::Int(-3)),
            ("0x1F", V::Int(31)),
            ("0o17", V::Int(15)),
            ("0777", V::Int(511)),
            ("1_000", V::Int(1000)),
            ("1.5", V::Float(1.5)),
            ("1e3", V::Float(1000.0)),
            ("2024-01-01", V::Str("2024-01-01".into())),
            ("1.2.3", V::Str("1.2.3".into())),
            ("0.5G", V::Str("0.5G".into())),
        ];
        for (text, want) in cases {
            assert_eq!(&resolve_plain(text), want, "{text}");
        }
        assert_eq!(one("a: \"80\"").get("a").unwrap().v, V::Str("80".into()));
        assert_eq!(one("a: !!str 80").get("a").unwrap().v, V::Str("80".into()));
        assert_eq!(one("a: '1.5'").get("a").unwrap().v, V::Str("1.5".into()));
    }

    #[test]
    fn positions_are_one_based() {
        let y = one("a:\n  b: c\n");
        let b = y.get("a").unwrap().get("b").unwrap();
        assert_eq!((b.pos.line, b.pos.col), (2, 6));
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let file = Arc::new(PathBuf::from("t.yaml"));
        let e = parse("a: 1\nb: 2\na: 3\n", &file).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.yaml:3:1: YAML: mapping key \"a\" already defined at line 1"
        );
    }

    #[test]
    fn tags_for_merging_are_kept() {
        let y = one("a: !reset []\nb: !override [1]\n");
        assert_eq!(y.get("a").unwrap().tag, Tag::Reset);
        assert_eq!(y.get("b").unwrap().tag, Tag::Override);
    }
}

#[cfg(test)]
mod input_tests {
    use super::*;

    fn docs(text: &str) -> Vec<Y> {
        parse(text, &Arc::new(PathBuf::from("t.yaml"))).unwrap()
    }

    #[test]
    fn bom_crlf_comments_and_several_documents() {
        let d = docs("\u{feff}a: 1\r\nb: x # note\r\n");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].get("b").unwrap().v, V::Str("x".into()));
        assert!(docs("# only a comment\n")
            .iter()
            .all(|d| matches!(d.v, V::Null)));
        let d = docs("a: 1\n---\na: 2\n");
        assert_eq!(d.len(), 2);
        assert_eq!(d[1].get("a").unwrap().pos.line, 3);
    }

    #[test]
    fn merge_keys_list_order() {
        let d = docs("x: &x {a: 1, b: 1}\ny: &y {b: 2, c: 2}\nz:\n  <<: [*x, *y]\n  c: 3\n");
        let z = d[0].get("z").unwrap();
        let got: Vec<(String, Option<String>)> = match &z.v {
            V::Map(m) => m.iter().map(|(k, v)| (k.clone(), v.scalar())).collect(),
            _ => panic!(),
        };
        let want = [("a", "1"), ("b", "1"), ("c", "3")];
        assert_eq!(got, want.map(|(k, v)| (k.to_string(), Some(v.to_string()))));
        // A merged value is positioned where it was written.
        assert_eq!(z.get("a").unwrap().pos.line, 1);
    }
}
