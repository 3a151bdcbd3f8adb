//! `.env` files as compose-go's `dotenv` package reads them: `KEY=VALUE` and
//! `KEY: VALUE`, an optional `export `, `#` comments (inline ones after a
//! space on unquoted lines), single quotes (taken literally), double quotes
//! (escapes `\n \t \\ \" \$ \0NNN ...`, newlines inside, then variables),
//! unquoted values with variables expanded, and a bare `KEY` that takes the
//! variable from the environment when it is set there.

use std::collections::BTreeMap;

use std::fmt;

use super::interp;

/// A line of a `.env` file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotenvError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for DotenvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn err<T>(line: usize, message: String) -> Result<T, DotenvError> {
    Err(DotenvError { line, message })
}

/// Parses `src` into `out` (later keys replace earlier ones). `lookup` is
/// consulted first when expanding variables, then the values read so far.
pub fn parse<F>(
    src: &str,
    out: &mut BTreeMap<String, String>,
    lookup: &F,
) -> Result<(), DotenvError>
where
    F: Fn(&str) -> Option<String>,
{
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let mut p = Parser { line: 1 };
    let mut cut = src;
    loop {
        cut = p.statement_start(cut);
        if cut.is_empty() {
            return Ok(());
        }
        let (key, left, inherited) = p.key_name(cut)?;
        if key.contains(' ') {
            return err(p.line, "key cannot contain a space".into());
        }
        if inherited {
            if let Some(v) = lookup(&key) {
                out.insert(key, v);
            }
            cut = left;
            continue;
        }
        let (value, left) = p.value(left, out, lookup)?;
        out.insert(key, value);
        cut = left;
    }
}

struct Parser {
    line: usize,
}

/// Spaces other than line breaks.
fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\u{0b}' | '\u{0c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
    )
}

impl Parser {
    fn statement_start<'a>(&mut self, src: &'a str) -> &'a str {
        let mut src = src;
        loop {
            let Some(pos) = src.find(|c: char| {
                if c == '\n' {
                    self.line += 1;
                }
                !c.is_whitespace()
            }) else {
                return "";
            };
            src = &src[pos..];
            if !src.starts_with('#') {
                return src;
            }
            match src.find('\n') {
                Some(nl) => src = &src[nl..],
                None => return "",
            }
        }
    }

    fn key_name<'a>(&mut self, src: &'a str) -> Result<(String, &'a str, bool), DotenvError> {
        let mut src = src;
        if let Some(rest) = src.strip_prefix("export") {
            if rest.starts_with(char::is_whitespace) {
                src = rest.trim_start_matches(is_space);
            }
        }
        let mut key: Option<(&str, usize, bool)> = None;
        for (i, c) in src.char_indices() {
            if is_space(c) {
                continue;
            }
            match c {
                '=' | ':' | '\n' => {
                    key = Some((&src[..i], i + 1, c == '\n'));
                    break;
                }
                '_' | '.' | '-' | '[' | ']' => {}
                c if c.is_alphanumeric() => {}
                c => {
                    return err(
                        self.line,
                        format!(
                            "unexpected character {:?} in variable name {:?}",
                            c.to_string(),
                            src.split('\n').next().unwrap_or_default()
                        ),
                    )
                }
            }
        }
        // A last line with a bare name and no line break: the name alone.
        let (key, offset, inherited) = key.unwrap_or((src, src.len(), true));
        if inherited && !key.contains(' ') {
            self.line += 1;
        }
        let key = key.trim_end();
        let rest = src[offset.min(src.len())..].trim_start_matches(is_space);
        Ok((key.to_string(), rest, inherited))
    }

    fn value<'a, F>(
        &mut self,
        src: &'a str,
        env: &BTreeMap<String, String>,
        lookup: &F,
    ) -> Result<(String, &'a str), DotenvError>
    where
        F: Fn(&str) -> Option<String>,
    {
        let quote = match src.as_bytes().first() {
            Some(&q @ (b'"' | b'\'')) => q,
            _ => {
                let (line, rest) = src.split_once('\n').unwrap_or((src, ""));
                self.line += 1;
                let line = line.split_once(" #").map_or(line, |(v, _)| v);
                let value =
                    expand(line.trim_end(), env, lookup).or_else(|m| err(self.line - 1, m))?;
                return Ok((value, rest));
            }
        };
        let bytes = src.as_bytes();
        let mut chars: Vec<u8> = Vec::new();
        let mut escaped = false;
        for (i, &c) in bytes.iter().enumerate().skip(1) {
            if c == b'\n' {
                self.line += 1;
            }
            if c != quote {
                if !escaped && c == b'\\' {
                    escaped = true;
                    continue;
                }
                if escaped {
                    escaped = false;
                    chars.push(b'\\');
                }
                chars.push(c);
                continue;
            }
            if escaped {
                escaped = false;
                chars.push(c);
                continue;
            }
            let mut value = String::from_utf8_lossy(&chars).into_owned();
            if quote == b'"' {
                value =
                    expand(&expand_escapes(&value), env, lookup).or_else(|m| err(self.line, m))?;
            }
            return Ok((value, &src[i + 1..]));
        }
        let end = src.find('\n').unwrap_or(src.len());
        err(
            self.line,
            format!("unterminated quoted value {}", &src[..end]),
        )
    }
}

fn expand<F>(value: &str, env: &BTreeMap<String, String>, lookup: &F) -> Result<String, String>
where
    F: Fn(&str) -> Option<String>,
{
    interp::substitute(value, &|k: &str| lookup(k).or_else(|| env.get(k).cloned()))
        .map_err(|e| e.to_string())
}

/// `\a \b \c \f \n \r \t \v \$ \" \\` and `\0NNN` (octal); `\$` becomes
/// `$$` so that the expansion after it keeps a literal `$`. Anything else
/// stays as written.
fn expand_escapes(s: &str) -> String {
    let b = s.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' || i + 1 >= b.len() {
            out.push(b[i]);
            i += 1;
            continue;
        }
        let c = b[i + 1];
        let simple = match c {
            b'a' => Some(&[0x07u8][..]),
            b'b' => Some(&[0x08u8][..]),
            b'f' => Some(&[0x0cu8][..]),
            b'n' => Some(&b"\n"[..]),
            b'r' => Some(&b"\r"[..]),
            b't' => Some(&b"\t"[..]),
            b'v' => Some(&[0x0bu8][..]),
            b'$' => Some(&b"$$"[..]),
            b'"' => Some(&b"\""[..]),
            b'\\' => Some(&b"\\"[..]),
            // `\c` is in compose-go's pattern but not a Go escape: kept.
            _ => None,
        };
        if let Some(rep) = simple {
            out.extend_from_slice(rep);
            i += 2;
            continue;
        }
        if c == b'0' {
            // `\0` then up to three digits, read as Go reads `\NNN`: exactly
            // three octal digits, else the text stays.
            let mut j = i + 2;
            while j < b.len() && j < i + 5 && b[j].is_ascii_digit() {
                j += 1;
            }
            let digits = &s[i + 2..j];
            if digits.len() == 3 {
                if let Ok(n) = u8::from_str_radix(digits, 8) {
                    out.extend_from_slice(char::from(n).to_string().as_bytes());
                    i = j;
                    continue;
                }
            }
            out.extend_from_slice(&b[i..j]);
            i = j;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    //! Cases ported from compose-go's dotenv/godotenv_test.go and its
    //! fixtures (dotenv/fixtures/*.env).
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    fn parse_str(src: &str) -> Result<BTreeMap<String, String>, String> {
        let mut out = BTreeMap::new();
        parse(src, &mut out, &none)
            .map(|_| out)
            .map_err(|e| e.to_string())
    }

    fn parse_and_compare(src: &str, key: &str, want: &str) {
        let env = parse_str(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
        assert_eq!(
            env.get(key).map(String::as_str),
            Some(want),
            "{src:?} → {env:?}"
        );
    }

    #[test]
    fn parsing() {
        parse_and_compare("FOO=bar", "FOO", "bar");
        parse_and_compare("FOO =bar", "FOO", "bar");
        parse_and_compare("FOO= bar", "FOO", "bar");
        parse_and_compare(r#"FOO="bar""#, "FOO", "bar");
        parse_and_compare("FOO='bar'", "FOO", "bar");
        parse_and_compare(r#"FOO="escaped\"bar""#, "FOO", r#"escaped"bar"#);
        parse_and_compare(r#"FOO="\"quoted\"""#, "FOO", r#""quoted""#);
        parse_and_compare(r#"FOO="'d'""#, "FOO", "'d'");
        parse_and_compare("OPTION_A: 1", "OPTION_A", "1");
        parse_and_compare("OPTION_A: Foo=bar", "OPTION_A", "Foo=bar");
        parse_and_compare("OPTION_A=1:B", "OPTION_A", "1:B");
        parse_and_compare("export OPTION_A=2", "OPTION_A", "2");
        parse_and_compare(r"export OPTION_B='\n'", "OPTION_B", r"\n");
        parse_and_compare("export exportFoo=2", "exportFoo", "2");
        parse_and_compare("exportFOO=2", "exportFOO", "2");
        parse_and_compare("export_FOO =2", "export_FOO", "2");
        parse_and_compare("export.FOO= 2", "export.FOO", "2");
        parse_and_compare("export\tOPTION_A=2", "OPTION_A", "2");
        parse_and_compare("  export OPTION_A=2", "OPTION_A", "2");
        parse_and_compare("\texport OPTION_A=2", "OPTION_A", "2");
        parse_and_compare(r#"export OPTION_A="export A""#, "OPTION_A", "export A");
        parse_and_compare(r#"FOO="bar\nbaz""#, "FOO", "bar\nbaz");
        parse_and_compare(r"FOO=a\tb", "FOO", r"a\tb");
        parse_and_compare(r#"FOO="a\tb""#, "FOO", "a\tb");
        parse_and_compare(
            r#"KEY="Z\aZ\bZ\fZ\nZ\rZ\tZ\vZ\\Z\0123Z""#,
            "KEY",
            "Z\u{7}Z\u{8}Z\u{c}Z\nZ\rZ\tZ\u{b}Z\\ZSZ",
        );
        parse_and_compare("FOO.BAR=foobar", "FOO.BAR", "foobar");
        parse_and_compare("FOO=foobar=", "FOO", "foobar=");
        parse_and_compare("FOO=bar ", "FOO", "bar");
        parse_and_compare("FOO=bar # this is foo", "FOO", "bar");
        parse_and_compare("FOO=bar #this is foo", "FOO", "bar");
        parse_and_compare("FOO=bar #", "FOO", "bar");
        parse_and_compare(
            "FOO=123#not-an-inline-comment",
            "FOO",
            "123#not-an-inline-comment",
        );
        parse_and_compare(r#"FOO="bar#baz""#, "FOO", "bar#baz");
        parse_and_compare(r##"FOO="bar#baz"#"##, "FOO", "bar#baz");
        parse_and_compare(r#"FOO="bar#baz" # comment"#, "FOO", "bar#baz");
        parse_and_compare("FOO='bar#baz' # comment", "FOO", "bar#baz");
        parse_and_compare(r#"FOO="bar#baz#bang" # comment"#, "FOO", "bar#baz#bang");
        parse_and_compare(r#"FOO="ba#r""#, "FOO", "ba#r");
        parse_and_compare("FOO='ba#r'", "FOO", "ba#r");
        parse_and_compare(r#"FOO="bar\n\ b\az""#, "FOO", "bar\n\\ b\u{7}z");
        parse_and_compare(r#"FOO="bar\\\n\ b\az""#, "FOO", "bar\\\n\\ b\u{7}z");
        parse_and_compare(r#"FOO="bar\\r\ b\az""#, "FOO", "bar\\r\\ b\u{7}z");
        parse_and_compare(r#"FOO="bar\nbaz\\""#, "FOO", "bar\nbaz\\");
        parse_and_compare(r#"="value""#, "", "value");
        parse_and_compare(" KEY =value", "KEY", "value");
        parse_and_compare("   KEY=value", "KEY", "value");
        parse_and_compare("\tKEY=value", "KEY", "value");
        parse_and_compare(r#"KEY="\0123""#, "KEY", "S");
        parse_and_compare(r#"KEY="\x07""#, "KEY", r"\x07");
        parse_and_compare(r#"KEY="\u12e4""#, "KEY", r"\u12e4");
        parse_and_compare(r#"KEY="\U00101234""#, "KEY", r"\U00101234");
        assert!(parse_str("lol$wut").is_err());
    }

    #[test]
    fn unterminated_quotes() {
        for src in [
            r#"KEY=""#,
            r#"KEY="value"#,
            r#"KEY="value\""#,
            r#"KEY="value'"#,
            "KEY='",
            "KEY='value",
            r"KEY='value\'",
            r#"KEY='value""#,
        ] {
            let e = parse_str(src).unwrap_err();
            assert!(e.contains("unterminated quoted value"), "{src}: {e}");
        }
    }

    #[test]
    fn lines_to_ignore() {
        for src in ["\n", "\r\n", "\t\t ", "# Comment", "\t # comment"] {
            assert!(parse_str(src).unwrap().is_empty(), "{src:?}");
        }
    }

    #[test]
    fn error_names_its_line() {
        // fixtures/invalid1.env
        let src = "# some comments\nfoo=\"\n  a\n  multine\n  value\n\"\nINVALID LINE\nzot=qix";
        assert_eq!(
            parse_str(src).unwrap_err(),
            "line 7: key cannot contain a space"
        );
    }

    #[test]
    fn plain_fixture() {
        // fixtures/plain.env
        let src = "OPTION_A=1\nOPTION_B=2\nOPTION_C= 3\nOPTION_D =4\nOPTION_E = 5\n456 = ABC\nOPTION_F = \nOPTION_G=\nOPTION_H = my string # Inline comment\n";
        let env = parse_str(src).unwrap();
        for (k, v) in [
            ("OPTION_A", "1"),
            ("OPTION_B", "2"),
            ("OPTION_C", "3"),
            ("OPTION_D", "4"),
            ("OPTION_E", "5"),
            ("OPTION_F", ""),
            ("OPTION_G", ""),
            ("OPTION_H", "my string"),
        ] {
            assert_eq!(env[k], v, "{k}");
        }
    }

    #[test]
    fn quoted_fixture() {
        // fixtures/quoted.env
        let src = "OPTION_A='1'\nOPTION_B='2'\nOPTION_C=''\nOPTION_D='\\n'\nOPTION_E=\"1\"\nOPTION_F=\"2\"\nOPTION_G=\"\"\nOPTION_H=\"\\n\"\nOPTION_I = \"echo 'asd'\" # Inline comment\nOPTION_J = 'first line\nsecond line\nthird line\nand so on'\nOPTION_K='Let\\'s go!'\nOPTION_Z = \"last value\"\n";
        let env = parse_str(src).unwrap();
        for (k, v) in [
            ("OPTION_A", "1"),
            ("OPTION_B", "2"),
            ("OPTION_C", ""),
            ("OPTION_D", "\\n"),
            ("OPTION_E", "1"),
            ("OPTION_F", "2"),
            ("OPTION_G", ""),
            ("OPTION_H", "\n"),
            ("OPTION_I", "echo 'asd'"),
            ("OPTION_J", "first line\nsecond line\nthird line\nand so on"),
            ("OPTION_K", "Let's go!"),
            ("OPTION_Z", "last value"),
        ] {
            assert_eq!(env[k], v, "{k}");
        }
    }

    #[test]
    fn expanding() {
        let cases: &[(&str, &[(&str, &str)])] = &[
            ("FOO=test\nBAR=$FOO", &[("FOO", "test"), ("BAR", "test")]),
            (
                "FOO=test\nBAR=${FOO}bar",
                &[("FOO", "test"), ("BAR", "testbar")],
            ),
            ("BAR=$FOO", &[("BAR", "")]),
            (
                "FOO=test\nBAR=\"quote $FOO\"",
                &[("FOO", "test"), ("BAR", "quote test")],
            ),
            ("BAR='quote $FOO'", &[("BAR", "quote $FOO")]),
            (r#"FOO="foo\$BAR""#, &[("FOO", "foo$BAR")]),
            (r#"FOO="foo\${BAR}""#, &[("FOO", "foo${BAR}")]),
            (
                "FOO=test\nBAR=\"foo\\${FOO} ${FOO}\"",
                &[("FOO", "test"), ("BAR", "foo${FOO} test")],
            ),
        ];
        for (src, want) in cases {
            let env = parse_str(src).unwrap();
            for (k, v) in *want {
                assert_eq!(env[*k], *v, "{src:?}");
            }
        }
    }

    #[test]
    fn inherited_and_lookup_precedence() {
        // fixtures/inherited-multi-var.env, substitutions.env and
        // substitutions-default.env with OPTION_A set in the environment.
        let os = |k: &str| match k {
            "VAR_TO_BE_LOADED_FROM_OS_ENV" => Some("SOME_RANDOM_VALUE".to_string()),
            "OPTION_A" => Some("5".to_string()),
            _ => None,
        };
        let mut env = BTreeMap::new();
        parse(
            "foo=bar\nVAR_TO_BE_LOADED_FROM_OS_ENV\nbar=baz\nNOT_SET\n",
            &mut env,
            &os,
        )
        .unwrap();
        assert_eq!(env.len(), 3);
        assert_eq!(env["VAR_TO_BE_LOADED_FROM_OS_ENV"], "SOME_RANDOM_VALUE");
        let mut env = BTreeMap::new();
        parse("VAR_TO_BE_LOADED_FROM_OS_ENV", &mut env, &os).unwrap();
        assert_eq!(env["VAR_TO_BE_LOADED_FROM_OS_ENV"], "SOME_RANDOM_VALUE");

        let subs = "OPTION_A=1\nOPTION_B=${OPTION_A}\nOPTION_C=$OPTION_B\nOPTION_D=${OPTION_A}_${OPTION_B}\nOPTION_E=${OPTION_NOT_DEFINED}\n";
        let mut env = BTreeMap::new();
        parse(subs, &mut env, &os).unwrap();
        let got: Vec<&str> = env.values().map(String::as_str).collect();
        assert_eq!(got, ["1", "5", "5", "5_5", ""]);
        let mut env = BTreeMap::new();
        parse(subs, &mut env, &none).unwrap();
        let got: Vec<&str> = env.values().map(String::as_str).collect();
        assert_eq!(got, ["1", "1", "1", "1_1", ""]);

        let defaults = "OPTION_A=${OPTION_A:-1}\nOPTION_B=${OPTION_A}\nOPTION_C=$OPTION_B\nOPTION_D=${OPTION_A}_${OPTION_B}\nOPTION_E=${OPTION_NOT_DEFINED}\n";
        let mut env = BTreeMap::new();
        parse(defaults, &mut env, &os).unwrap();
        let got: Vec<&str> = env.values().map(String::as_str).collect();
        assert_eq!(got, ["5", "5", "5", "5_5", ""]);
    }

    #[test]
    fn utf8_bom_and_special_names() {
        let env =
            parse_str("\u{feff}OPTION_A=1\nVAR.WITH.DOTS=dots\nVAR-WITH-DASHES=dashes\n").unwrap();
        assert_eq!(env["OPTION_A"], "1");
        assert_eq!(env["VAR.WITH.DOTS"], "dots");
        assert_eq!(env["VAR-WITH-DASHES"], "dashes");
    }

    #[test]
    fn multi_line_double_quoted_value() {
        let src = "TEST_URLS=\"stratum+tcp://a:3333\nstratum+tcp://b:443\"";
        parse_and_compare(
            src,
            "TEST_URLS",
            "stratum+tcp://a:3333\nstratum+tcp://b:443",
        );
    }
}
