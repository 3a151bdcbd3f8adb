//! Variable substitution in compose files and `.env` values, as compose-go's
//! `template` package does it: `$VAR`, `${VAR}`, `${VAR:-default}`,
//! `${VAR-default}`, `${VAR:?error}`, `${VAR?error}`, `${VAR:+replacement}`,
//! `${VAR+replacement}`, nested expressions in the default, replacement and
//! error text, and `$$` for a literal `$`. Names are `[_a-zA-Z][_a-zA-Z0-9]*`;
//! an unset variable without a default becomes the empty string.

use std::fmt;

/// Why a substitution failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// `${` not followed by a valid expression (`${}`, `${ foo}`, `${foo!}`).
    Invalid(String),
    /// `${VAR:?reason}` or `${VAR?reason}` with the variable missing.
    Required { variable: String, reason: String },
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Invalid(t) => write!(
                f,
                "invalid interpolation format: {t:?}; you may need to escape any $ with another $"
            ),
            TemplateError::Required { variable, reason } if reason.is_empty() => {
                write!(f, "required variable {variable} is missing a value")
            }
            TemplateError::Required { variable, reason } => {
                write!(
                    f,
                    "required variable {variable} is missing a value: {reason}"
                )
            }
        }
    }
}

fn is_name_start(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphabetic()
}

fn is_name_char(c: u8) -> bool {
    c == b'_' || c.is_ascii_alphanumeric()
}

/// What compose's pattern matches at a `$`.
enum Match<'a> {
    /// `$$`
    Escaped,
    /// `$NAME`
    Named(&'a str),
    /// `${...}`: the whole text matched, from `$` to its `}`.
    Braced(&'a str),
    /// `${` not followed by a valid expression.
    Invalid,
    /// Not a substitution: the `$` stays.
    None,
}

/// Matches compose's pattern
/// `\$(?i:(\$)|([_a-z][_a-z0-9]*)|{(?:([_a-z][_a-z0-9]*(?::?[-+?](.*))?)}|()))`
/// at the start of `s` (which begins with `$`): the operator's `.*` is
/// greedy and does not cross a newline, so a braced match with an operator
/// runs to the last `}` on the line; [`closing_brace`] then cuts it.
fn match_at(s: &str) -> (Match<'_>, usize) {
    let b = s.as_bytes();
    match b.get(1) {
        Some(b'$') => (Match::Escaped, 2),
        Some(&c) if is_name_start(c) => {
            let mut i = 2;
            while i < b.len() && is_name_char(b[i]) {
                i += 1;
            }
            (Match::Named(&s[1..i]), i)
        }
        Some(b'{') => {
            let mut i = 2;
            if i < b.len() && is_name_start(b[i]) {
                while i < b.len() && is_name_char(b[i]) {
                    i += 1;
                }
                if b.get(i) == Some(&b'}') {
                    return (Match::Braced(&s[..=i]), i + 1);
                }
                let mut j = i;
                if b.get(j) == Some(&b':') {
                    j += 1;
                }
                if matches!(b.get(j), Some(b'-' | b'+' | b'?')) {
                    let line_end = s[j..].find('\n').map_or(s.len(), |n| j + n);
                    if let Some(close) = s[j + 1..line_end].rfind('}') {
                        let end = j + 1 + close;
                        return (Match::Braced(&s[..=end]), end + 1);
                    }
                }
            }
            (Match::Invalid, 2)
        }
        _ => (Match::None, 1),
    }
}

/// compose-go's `getFirstBraceClosingIndex`, quirks included: the
/// character after each `{` is skipped.
fn closing_brace(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut open = 0i32;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'}' {
            open -= 1;
            if open == 0 {
                return Some(i);
            }
        }
        if b[i] == b'{' {
            open += 1;
            i += 1;
        }
        i += 1;
    }
    None
}

/// Substitutes every expression in `template`; `lookup` says a variable's
/// value and whether it is set. Like compose, it goes on after an error and
/// returns the first one.
pub fn substitute<F>(template: &str, lookup: &F) -> Result<String, TemplateError>
where
    F: Fn(&str) -> Option<String>,
{
    let mut out = String::with_capacity(template.len());
    let mut first_err: Option<TemplateError> = None;
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let here = &rest[at..];
        let (m, len) = match_at(here);
        match m {
            Match::Escaped => out.push('$'),
            Match::Named(name) => out.push_str(&lookup(name).unwrap_or_default()),
            Match::None => out.push('$'),
            Match::Invalid => {
                first_err.get_or_insert(TemplateError::Invalid(template.to_string()));
            }
            Match::Braced(text) => match braced(text, lookup) {
                Ok(v) => out.push_str(&v),
                Err(e) => {
                    first_err.get_or_insert(match e {
                        TemplateError::Invalid(t) if t.is_empty() => {
                            TemplateError::Invalid(template.to_string())
                        }
                        e => e,
                    });
                }
            },
        }
        rest = &here[len..];
    }
    out.push_str(rest);
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// One `${...}` match: compose-go's `DefaultReplacementAppliedFunc`.
fn braced<F>(text: &str, lookup: &F) -> Result<String, TemplateError>
where
    F: Fn(&str) -> Option<String>,
{
    let (expr, tail) = match closing_brace(text) {
        Some(i) => (&text[..=i], &text[i + 1..]),
        None => (text, ""),
    };
    // expr is `${NAME}` or `${NAME<op>...}`.
    let inner = &expr[2..expr.len() - 1];
    let name_len = inner.bytes().take_while(|&c| is_name_char(c)).count();
    let name = &inner[..name_len];
    let after = &inner[name_len..];
    if after.is_empty() {
        return Ok(lookup(name).unwrap_or_default());
    }
    let op_len = if after.starts_with(':') { 2 } else { 1 };
    let (op, arg) = after.split_at(op_len.min(after.len()));
    let value = lookup(name);
    let result = match op {
        ":-" => match value {
            Some(v) if !v.is_empty() => v,
            _ => substitute(arg, lookup)?,
        },
        "-" => match value {
            Some(v) => v,
            None => substitute(arg, lookup)?,
        },
        ":+" => match value {
            Some(v) if !v.is_empty() => substitute(arg, lookup)?,
            v => v.unwrap_or_default(),
        },
        "+" => match value {
            Some(_) => substitute(arg, lookup)?,
            None => String::new(),
        },
        ":?" => match value {
            Some(v) if !v.is_empty() => v,
            _ => {
                return Err(TemplateError::Required {
                    variable: name.to_string(),
                    reason: substitute(arg, lookup)?,
                })
            }
        },
        "?" => match value {
            Some(v) => v,
            None => {
                return Err(TemplateError::Required {
                    variable: name.to_string(),
                    reason: substitute(arg, lookup)?,
                })
            }
        },
        _ => return Err(TemplateError::Invalid(String::new())),
    };
    Ok(result + &substitute(tail, lookup)?)
}

#[cfg(test)]
mod tests {
    //! Cases ported from compose-go's template/template_test.go (the same
    //! names, the same mapping: FOO=first, BAR="", JSON={"json":2}).
    use super::*;

    fn defaults(name: &str) -> Option<String> {
        match name {
            "FOO" => Some("first".into()),
            "BAR" => Some(String::new()),
            "JSON" => Some(r#"{"json":2}"#.into()),
            _ => None,
        }
    }

    fn sub(t: &str) -> Result<String, TemplateError> {
        substitute(t, &defaults)
    }

    fn ok(t: &str) -> String {
        sub(t).unwrap_or_else(|e| panic!("{t}: {e}"))
    }

    #[test]
    fn escaped() {
        assert_eq!(ok("$${foo}"), "${foo}");
    }

    #[test]
    fn substitute_no_match() {
        assert_eq!(ok("foo"), "foo");
    }

    #[test]
    fn unescaped() {
        for t in ["a $ string", "^REGEX$", "$}", "$"] {
            assert_eq!(ok(t), t);
        }
    }

    #[test]
    fn invalid() {
        for t in ["${", "${}", "${ }", "${ foo}", "${foo }", "${foo!}"] {
            let e = sub(t).unwrap_err();
            assert!(matches!(e, TemplateError::Invalid(_)), "{t}: {e:?}");
        }
    }

    #[test]
    fn non_braced() {
        assert_eq!(ok("$FOO-bar"), "first-bar");
    }

    #[test]
    fn no_value_no_default() {
        for t in ["This ${missing} var", "This ${BAR} var"] {
            assert_eq!(ok(t), "This  var");
        }
    }

    #[test]
    fn value_no_default() {
        for t in ["This $FOO var", "This ${FOO} var"] {
            assert_eq!(ok(t), "This first var");
        }
    }

    #[test]
    fn no_value_with_default() {
        for t in ["ok ${missing:-def}", "ok ${missing-def}"] {
            assert_eq!(ok(t), "ok def");
        }
    }

    #[test]
    fn lazy_default() {
        assert_eq!(ok("${A:+${A},}B"), "B");
        assert_eq!(ok("${A:-${B}}"), "");
        let a = |k: &str| (k == "A").then(|| "value".to_string());
        assert_eq!(substitute("${A?${B}}", &a).unwrap(), "value");
    }

    #[test]
    fn soft_and_hard_defaults() {
        assert_eq!(ok("ok ${BAR:-def}"), "ok def");
        assert_eq!(ok("ok ${FOO:-def}"), "ok first");
        assert_eq!(ok("ok ${BAR-def}"), "ok ");
    }

    #[test]
    fn presence_values() {
        assert_eq!(ok("ok ${UNSET_VAR:+presence_value}"), "ok ");
        assert_eq!(ok("ok ${UNSET_VAR+presence_value}"), "ok ");
        assert_eq!(ok("ok ${FOO:+presence_value}"), "ok presence_value");
        assert_eq!(ok("ok ${FOO+presence_value}"), "ok presence_value");
        assert_eq!(ok("ok ${BAR+presence_value}"), "ok presence_value");
        assert_eq!(ok("ok ${BAR:+presence_value}"), "ok ");
    }

    #[test]
    fn non_alphanumeric_default() {
        assert_eq!(ok("ok ${BAR:-/non:-alphanumeric}"), "ok /non:-alphanumeric");
    }

    #[test]
    fn interpolation_external_interference() {
        let cases = [
            ("-ok ${BAR:-defaultValue}", "-ok defaultValue"),
            ("+ok ${UNSET:-${BAR-defaultValue}}", "+ok "),
            ("-ok ${FOO:-defaultValue}", "-ok first"),
            (":-ok ${UNSET-defaultValue}", ":-ok defaultValue"),
            (":-ok ${BAR-defaultValue}", ":-ok "),
            (":?ok ${BAR-defaultValue}", ":?ok "),
            (":?ok ${BAR:-defaultValue}", ":?ok defaultValue"),
            (":+ok ${BAR:-defaultValue}", ":+ok defaultValue"),
            ("+ok ${BAR-defaultValue}", "+ok "),
            ("?ok ${BAR:-defaultValue}", "?ok defaultValue"),
        ];
        for (t, want) in cases {
            assert_eq!(ok(t), want, "{t}");
        }
    }

    #[test]
    fn defaults_with_nested_expansion() {
        let cases = [
            ("ok ${UNSET_VAR-$FOO}", "ok first"),
            ("ok ${UNSET_VAR-${FOO}}", "ok first"),
            ("ok ${UNSET_VAR-${FOO} ${FOO}}", "ok first first"),
            ("ok ${BAR:-$FOO}", "ok first"),
            ("ok ${BAR:-${FOO}}", "ok first"),
            ("ok ${BAR:-${FOO} ${FOO}}", "ok first first"),
            ("ok ${BAR+$FOO}", "ok first"),
            ("ok ${BAR+$FOO ${FOO:+second}}", "ok first second"),
        ];
        for (t, want) in cases {
            assert_eq!(ok(t), want, "{t}");
        }
    }

    #[test]
    fn mandatory_variable_errors() {
        let cases = [
            (
                "not ok ${UNSET_VAR:?Mandatory Variable Unset}",
                "required variable UNSET_VAR is missing a value: Mandatory Variable Unset",
            ),
            (
                "not ok ${BAR:?Mandatory Variable Empty}",
                "required variable BAR is missing a value: Mandatory Variable Empty",
            ),
            (
                "not ok ${UNSET_VAR:?}",
                "required variable UNSET_VAR is missing a value",
            ),
            (
                "not ok ${UNSET_VAR?Mandatory Variable Unset}",
                "required variable UNSET_VAR is missing a value: Mandatory Variable Unset",
            ),
            (
                "not ok ${UNSET_VAR?}",
                "required variable UNSET_VAR is missing a value",
            ),
            (
                "not ok ${UNSET_VAR:?Mandatory Variable ${FOO}}",
                "required variable UNSET_VAR is missing a value: Mandatory Variable first",
            ),
            (
                "not ok ${UNSET_VAR?Mandatory Variable ${FOO}}",
                "required variable UNSET_VAR is missing a value: Mandatory Variable first",
            ),
        ];
        for (t, want) in cases {
            let e = sub(t).unwrap_err();
            assert!(matches!(e, TemplateError::Required { .. }), "{t}");
            assert_eq!(e.to_string(), want, "{t}");
        }
    }

    #[test]
    fn defaults_for_mandatory_variables() {
        assert_eq!(ok("ok ${FOO:?err}"), "ok first");
        assert_eq!(ok("ok ${FOO?err}"), "ok first");
        assert_eq!(ok("ok ${BAR?err}"), "ok ");
    }

    #[test]
    fn precedence() {
        assert_eq!(
            sub("${UNSET_VAR?bar-baz}").unwrap_err(),
            TemplateError::Required {
                variable: "UNSET_VAR".into(),
                reason: "bar-baz".into()
            }
        );
        assert_eq!(ok("${UNSET_VAR-myerror?msg}"), "myerror?msg");
        assert_eq!(ok("${FOO?bar-baz}"), "first");
        assert_eq!(
            ok("${BAR:-default_value_for_empty_var}"),
            "default_value_for_empty_var"
        );
        assert_eq!(
            ok("${UNSET_VAR-default_value_for_unset_var}"),
            "default_value_for_unset_var"
        );
    }

    #[test]
    fn several_expressions_in_one_value() {
        // From TestSubstituteWithReplacementFunc's last case.
        assert_eq!(ok("ok ${SUBDOMAIN:-redis}.${FOO:?}"), "ok redis.first");
    }

    #[test]
    fn curly_braces_in_defaults() {
        for t in [
            r#"ok ${missing:-{"json":1}}"#,
            r#"ok ${missing-{"json":1}}"#,
        ] {
            assert_eq!(ok(t), r#"ok {"json":1}"#);
        }
        for t in [r#"ok ${JSON:-{"json":1}}"#, r#"ok ${JSON-{"json":1}}"#] {
            assert_eq!(ok(t), r#"ok {"json":2}"#);
        }
    }
}
