//! The unit file being written: top-level keys and sections in the order
//! jarvis's README lists them, each entry with the comments that explain a
//! choice. Values are `toml_edit` values, so quoting and escaping are
//! TOML's own.

use toml_edit::{Array, Value};

/// One `key = value` line and the comment lines above it.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub key: String,
    pub value: Value,
    pub comments: Vec<String>,
}

/// `[name]` or `[[name]]` and its entries.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    pub name: String,
    /// `[[name]]`: one of an array of tables.
    pub array: bool,
    pub comments: Vec<String>,
    pub entries: Vec<Entry>,
}

impl Section {
    fn new(name: &str, array: bool) -> Section {
        Section {
            name: name.to_string(),
            array,
            comments: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// Sets `key` (replacing an earlier value, keeping its place and
    /// comments).
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        let value = value.into();
        match self.entries.iter_mut().find(|e| e.key == key) {
            Some(e) => e.value = value,
            None => self.entries.push(Entry {
                key: key.to_string(),
                value,
                comments: Vec::new(),
            }),
        }
    }

    /// Adds a comment above `key`, which must have been set.
    pub fn comment(&mut self, key: &str, text: impl Into<String>) {
        let text = text.into();
        if let Some(e) = self.entries.iter_mut().find(|e| e.key == key) {
            if !e.comments.contains(&text) {
                e.comments.push(text);
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|e| e.key == key).map(|e| &e.value)
    }

    pub fn remove(&mut self, key: &str) {
        self.entries.retain(|e| e.key != key);
    }
}

/// Sections are written in the order the unit format lists its keys
/// (`jarvis_unit::Unit::KEYS`).
const ORDER: &[&str] = jarvis_unit::Unit::KEYS;

/// A unit file under construction.
#[derive(Debug, Clone, Default)]
pub(crate) struct Doc {
    /// Lines at the very top (the import header), without `# `.
    pub header: Vec<String>,
    pub top: Section,
    pub sections: Vec<Section>,
}

impl Default for Section {
    fn default() -> Section {
        Section::new("", false)
    }
}

impl Doc {
    /// The single `[name]` section, made when first asked for.
    pub fn section(&mut self, name: &str) -> &mut Section {
        let i = match self
            .sections
            .iter()
            .position(|s| s.name == name && !s.array)
        {
            Some(i) => i,
            None => {
                self.sections.push(Section::new(name, false));
                self.sections.len() - 1
            }
        };
        &mut self.sections[i]
    }

    /// Whether `[name]` exists.
    pub fn has(&self, name: &str) -> bool {
        self.sections.iter().any(|s| s.name == name)
    }

    pub fn find(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name && !s.array)
    }

    /// A new `[[name]]`.
    pub fn push_array(&mut self, name: &str) -> &mut Section {
        self.sections.push(Section::new(name, true));
        self.sections.last_mut().expect("just pushed")
    }

    /// The file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.header {
            push_comment(&mut out, line);
        }
        if !self.header.is_empty() {
            out.push('\n');
        }
        render_entries(&mut out, &self.top.entries);
        let mut sections: Vec<&Section> = self.sections.iter().collect();
        // Stable: sections keep their relative order within one name.
        sections.sort_by_key(|s| {
            ORDER
                .iter()
                .position(|n| *n == s.name)
                .unwrap_or(ORDER.len())
        });
        for s in sections {
            if !out.is_empty() && !out.ends_with("\n\n") {
                out.push('\n');
            }
            for c in &s.comments {
                push_comment(&mut out, c);
            }
            let key = toml_edit::Key::new(&s.name).display_repr().into_owned();
            if s.array {
                out.push_str(&format!("[[{key}]]\n"));
            } else {
                out.push_str(&format!("[{key}]\n"));
            }
            render_entries(&mut out, &s.entries);
        }
        out
    }
}

fn render_entries(out: &mut String, entries: &[Entry]) {
    for e in entries {
        for c in &e.comments {
            push_comment(out, c);
        }
        let key = toml_edit::Key::new(&e.key).display_repr().into_owned();
        let mut value = e.value.clone();
        value.decor_mut().clear();
        out.push_str(&format!("{key} = {}\n", render_value(&value)));
    }
}

/// A value on one line, with the spacing people write.
fn render_value(v: &Value) -> String {
    match v {
        Value::Array(a) => {
            let items: Vec<String> = a
                .iter()
                .map(|i| {
                    let mut i = i.clone();
                    i.decor_mut().clear();
                    render_value(&i)
                })
                .collect();
            format!("[{}]", items.join(", "))
        }
        Value::InlineTable(t) => {
            if t.is_empty() {
                return "{}".into();
            }
            let items: Vec<String> = t
                .iter()
                .map(|(k, v)| {
                    let mut v = v.clone();
                    v.decor_mut().clear();
                    format!(
                        "{} = {}",
                        toml_edit::Key::new(k).display_repr(),
                        render_value(&v)
                    )
                })
                .collect();
            format!("{{ {} }}", items.join(", "))
        }
        Value::String(s) => quote(s.value()),
        other => other.to_string().trim().to_string(),
    }
}

/// A TOML basic string on one line: `"`, `\` and control characters
/// escaped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `# text`, one comment line per line of text.
fn push_comment(out: &mut String, text: &str) {
    for line in text.lines() {
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
    }
}

/// A TOML array of strings.
pub(crate) fn strings<I, S>(items: I) -> Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut a = Array::new();
    for s in items {
        a.push(s.as_ref());
    }
    Value::Array(a)
}

/// A TOML inline table of strings.
#[cfg(test)]
pub(crate) fn string_table<'a, I>(items: I) -> Value
where
    I: IntoIterator<Item = (&'a str, String)>,
{
    let mut t = toml_edit::InlineTable::new();
    for (k, v) in items {
        t.insert(k, Value::from(v));
    }
    Value::InlineTable(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_sections_in_order_with_comments() {
        let mut d = Doc {
            header: vec!["imported".into()],
            ..Doc::default()
        };
        d.section("restart").set("policy", "never");
        d.section("restart").comment("policy", "compose's default");
        d.top
            .set("depends_on", string_table([("db", "healthy".to_string())]));
        d.section("container").set("image", "nginx");
        d.section("container")
            .set("volumes", strings(["/a:/b", "we\"ird:/c"]));
        d.section("env").set("A B", "x\ny");
        let text = d.render();
        assert_eq!(
            text,
            "# imported\n\ndepends_on = { db = \"healthy\" }\n\n[container]\nimage = \"nginx\"\n\
             volumes = [\"/a:/b\", \"we\\\"ird:/c\"]\n\n[env]\n\"A B\" = \"x\\ny\"\n\n\
             [restart]\n# compose's default\npolicy = \"never\"\n"
        );
        let parsed: toml_edit::DocumentMut = text.parse().expect("valid TOML");
        assert_eq!(parsed["env"]["A B"].as_str(), Some("x\ny"));
    }
}
