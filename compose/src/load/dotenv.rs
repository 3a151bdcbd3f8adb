//! `.env` files as compose-go's `dotenv` package reads them: the grammar is
//! [`jarvis_unit::envfile`]'s (the one a unit's `env_file` is read with
//! too); here it gets compose's interpolation: unquoted and double-quoted
//! values have their variables expanded with [`super::interp`], the lookup
//! first and then the values read so far, and a bare `KEY` takes the
//! variable from the lookup when it is set there.

use std::collections::BTreeMap;

use std::fmt;

use jarvis_unit::envfile::{self, Interpolation, Lookup};

use super::interp;

/// A place in a `.env` file that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DotenvError {
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for DotenvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// compose's template grammar, as the env-file grammar's hook.
pub fn expand(value: &str, lookup: &Lookup<'_>) -> Result<String, String> {
    interp::substitute(value, &|k: &str| lookup(k)).map_err(|e| e.to_string())
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
    let interpolation = Interpolation {
        lookup,
        expand: &expand,
    };
    envfile::parse_with(src, out, Some(&interpolation))
        .map(|_| ())
        .map_err(|e| DotenvError {
            line: e.line,
            col: e.col,
            message: e.kind.to_string(),
        })
}

#[cfg(test)]
mod tests {
    //! The interpolation cases of compose-go's dotenv/godotenv_test.go and
    //! its fixtures; the grammar's own are jarvis-unit's.
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
    fn error_names_its_line() {
        assert_eq!(
            parse_str("A=1\nBAD KEY=2\n").unwrap_err(),
            "line 2: key cannot contain a space"
        );
        let mut out = BTreeMap::new();
        let e = parse("A=${", &mut out, &none).unwrap_err();
        assert_eq!((e.line, e.col), (1, 3));
        assert!(e.message.contains("invalid interpolation format"), "{e}");
    }
}
