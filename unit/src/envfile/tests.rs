//! The grammar's cases: compose-go's dotenv/godotenv_test.go and its
//! fixtures (dotenv/fixtures/*.env), the cases a unit's `env_file` was
//! tested with, and the interpolation hook.

use super::*;

fn parse_map(src: &str) -> Result<BTreeMap<String, String>, EnvFileError> {
    let mut vars = BTreeMap::new();
    parse_with(src, &mut vars, None)?;
    Ok(vars)
}

fn parse_str(src: &str) -> Result<BTreeMap<String, String>, String> {
    parse_map(src).map_err(|e| e.to_string())
}

fn parse_and_compare(src: &str, key: &str, want: &str) {
    let env = parse_str(src).unwrap_or_else(|e| panic!("{src:?}: {e}"));
    assert_eq!(
        env.get(key).map(String::as_str),
        Some(want),
        "{src:?} → {env:?}"
    );
}

fn kv(text: &str) -> Vec<(String, String)> {
    parse(text)
        .unwrap()
        .into_iter()
        .map(|e| (e.key, e.value))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn err(src: &str) -> (usize, usize, EnvFileErrorKind) {
    let e = parse(src).unwrap_err();
    (e.line, e.col, e.kind)
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
        assert_eq!(e, "1:5: unterminated quoted value", "{src}");
    }
}

#[test]
fn lines_to_ignore() {
    for src in ["\n", "\r\n", "\t\t ", "# Comment", "\t # comment", ""] {
        assert!(parse_str(src).unwrap().is_empty(), "{src:?}");
    }
}

#[test]
fn error_names_its_line_and_column() {
    // fixtures/invalid1.env
    let src = "# some comments\nfoo=\"\n  a\n  multine\n  value\n\"\nINVALID LINE\nzot=qix";
    assert_eq!(
        parse_str(src).unwrap_err(),
        "7:8: key cannot contain a space"
    );
    assert_eq!(
        err("A=1\nB=\"open\n\n"),
        (2, 3, EnvFileErrorKind::Unterminated)
    );
    assert_eq!(err("A='x' y\n"), (1, 7, EnvFileErrorKind::AfterQuote));
    assert_eq!(err("A=\"x\"B=2\n"), (1, 6, EnvFileErrorKind::AfterQuote));
    assert_eq!(err("A=1\n#x\nB C\n"), (3, 2, EnvFileErrorKind::KeySpace));
    assert_eq!(err("MY KEY=2\n"), (1, 3, EnvFileErrorKind::KeySpace));
    assert_eq!(err("  é$x=1\n"), (1, 4, EnvFileErrorKind::KeyChar('$')));
    assert_eq!(
        err("A=1\nURL/x=2\n"),
        (2, 4, EnvFileErrorKind::KeyChar('/'))
    );
    // Columns count characters, not bytes; a multi-line value moves the
    // line on.
    assert_eq!(
        err("K=\"é\nü\"\nX=ü'\nY='"),
        (4, 3, EnvFileErrorKind::Unterminated)
    );
}

#[test]
fn errors_never_show_a_value() {
    for src in [
        "PASSWORD=\"hunter2 oops\n",
        "PASSWORD='hunter2' oops\n",
        "hunter2 oops\n",
    ] {
        let e = parse(src).unwrap_err().to_string();
        assert!(
            !e.contains("hunter2") && !e.contains("oops"),
            "{src:?}: {e}"
        );
    }
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
        ("456", "ABC"),
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
    let entries = parse(src).unwrap();
    let env: BTreeMap<_, _> = entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect();
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
    // Each entry knows the line of its key, after a multi-line value too.
    let z = entries.iter().find(|e| e.key == "OPTION_Z").unwrap();
    assert_eq!(z.line, 15);
}

#[test]
fn utf8_bom_and_special_names() {
    let env = parse_str("\u{feff}OPTION_A=1\nVAR.WITH.DOTS=dots\nVAR-WITH-DASHES=dashes\nA[0]=x\n")
        .unwrap();
    assert_eq!(env["OPTION_A"], "1");
    assert_eq!(env["VAR.WITH.DOTS"], "dots");
    assert_eq!(env["VAR-WITH-DASHES"], "dashes");
    assert_eq!(env["A[0]"], "x");
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

/// What a unit's env file was always read as: every case of the grammar
/// without interpolation, in file order.
#[test]
fn without_interpolation_values_are_as_written() {
    let text = "# a comment\n\
                \n\
                PLAIN=value\n\
                export EXPORTED=yes\n\
                \t SPACED = some value  \n\
                EMPTY=\n\
                HASH=a#b\n\
                COMMENTED=x # not this\n\
                SINGLE='lit $HOME \\n # kept'\n\
                DOUBLE=\"a\\nb \\\"q\\\" \\$x ${Y}\" # comment\n\
                UNQUOTED=$HOME/${X:-d}\n\
                MULTI=\"line1\n\
                line2\"\n\
                BARE\n\
                exportNOT=1\n\
                CRLF=v\r\n\
                URL=postgres://u:p@db:5432/x?a=b\n\
                PLAIN=again\n";
    assert_eq!(
        kv(text),
        pairs(&[
            ("PLAIN", "value"),
            ("EXPORTED", "yes"),
            ("SPACED", "some value"),
            ("EMPTY", ""),
            ("HASH", "a#b"),
            ("COMMENTED", "x"),
            ("SINGLE", "lit $HOME \\n # kept"),
            ("DOUBLE", "a\nb \"q\" $x ${Y}"),
            ("UNQUOTED", "$HOME/${X:-d}"),
            ("MULTI", "line1\nline2"),
            ("exportNOT", "1"),
            ("CRLF", "v"),
            ("URL", "postgres://u:p@db:5432/x?a=b"),
            ("PLAIN", "again"),
        ])
    );
}

/// A stand-in for the template grammar: `$NAME` and `${NAME}`, `$$` for
/// `$`, `${!}` refused.
fn simple_expand(value: &str, lookup: &Lookup<'_>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let (name, r) = match rest.strip_prefix('{') {
            Some(r) => {
                let end = r.find('}').ok_or("unclosed ${")?;
                (&r[..end], &r[end + 1..])
            }
            None => {
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
        };
        if name == "!" {
            return Err("invalid interpolation format".into());
        }
        out.push_str(&lookup(name).unwrap_or_default());
        rest = r;
    }
    out.push_str(rest);
    Ok(out)
}

#[test]
fn the_interpolation_hook() {
    let outside = |k: &str| match k {
        "HOME" => Some("/root".to_string()),
        "B" => Some("from-outside".to_string()),
        _ => None,
    };
    let interp = Interpolation {
        lookup: &outside,
        expand: &simple_expand,
    };
    let text = "A=1\nB=2\nC=$A-${B}\nD=\"$A \\$A $$\"\nE='$A'\nHOME\nNOPE\nF=$HOME # c\n";
    let mut vars = BTreeMap::from([("EARLIER".to_string(), "e".to_string())]);
    let entries = parse_with(&format!("{text}G=${{EARLIER}}\n"), &mut vars, Some(&interp)).unwrap();
    let got: Vec<(&str, &str, usize)> = entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str(), e.line))
        .collect();
    assert_eq!(
        got,
        [
            ("A", "1", 1),
            ("B", "2", 2),
            // The lookup comes before the values read above.
            ("C", "1-from-outside", 3),
            // `\$` stays a `$`, `$$` is the template's own escape.
            ("D", "1 $A $", 4),
            ("E", "$A", 5),
            // A name alone takes the lookup's value; unknown, nothing.
            ("HOME", "/root", 6),
            ("F", "/root", 8),
            // The variables given before the text are read above it.
            ("G", "e", 9),
        ]
    );
    assert_eq!(vars["C"], "1-from-outside");
    assert_eq!(vars["EARLIER"], "e");
    // The hook's refusal is located at the value.
    let e = parse_with("A=1\nB= x${!}\n", &mut BTreeMap::new(), Some(&interp)).unwrap_err();
    assert_eq!(e.to_string(), "2:4: invalid interpolation format");
}
