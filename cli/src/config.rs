//! `jarvisctl config`'s text form: each unit as jarvisd runs it, one
//! indented `key: value` line per setting (compose's `config` reads the
//! same way); empty and unset settings are left out.

use serde_json::Value;

pub fn render(units: &[Value]) -> String {
    let mut out = String::new();
    for (i, unit) in units.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let name = unit["name"].as_str().unwrap_or("?");
        out.push_str(&format!("{name}:\n"));
        if let Some(obj) = unit.as_object() {
            for (k, v) in obj.iter().filter(|(k, _)| *k != "name") {
                entry(&mut out, 1, k, v);
            }
        }
    }
    out
}

fn empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(empty),
        _ => false,
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn entry(out: &mut String, depth: usize, key: &str, v: &Value) {
    if empty(v) {
        return;
    }
    let pad = "  ".repeat(depth);
    match v {
        Value::Object(o) => {
            out.push_str(&format!("{pad}{key}:\n"));
            for (k, v) in o {
                entry(out, depth + 1, k, v);
            }
        }
        Value::Array(a) if a.iter().all(|x| !x.is_object() && !x.is_array()) => {
            let items: Vec<String> = a.iter().map(scalar).collect();
            out.push_str(&format!("{pad}{key}: [{}]\n", items.join(", ")));
        }
        Value::Array(a) => {
            out.push_str(&format!("{pad}{key}:\n"));
            for x in a {
                out.push_str(&format!("{pad}  -\n"));
                match x.as_object() {
                    Some(o) => o.iter().for_each(|(k, v)| entry(out, depth + 2, k, v)),
                    None => out.push_str(&format!("{pad}    {}\n", scalar(x))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{key}: {}\n", scalar(other))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_settings_indent_and_empty_ones_go() {
        let unit = serde_json::json!({
            "name": "web",
            "description": null,
            "env": {"A": "1", "DB_PASSWORD": "<redacted>"},
            "depends_on": [],
            "secrets": [{"source": "/run/pw", "target": "pw"}],
            "native": {"command": ["sleep", "5"], "user": null},
        });
        assert_eq!(
            render(&[unit]),
            "\
web:
  env:
    A: 1
    DB_PASSWORD: <redacted>
  native:
    command: [sleep, 5]
  secrets:
    -
      source: /run/pw
      target: pw
"
        );
    }
}
