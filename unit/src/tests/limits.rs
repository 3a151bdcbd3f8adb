//! Bounds: the size of a file, every string, list and table, the number of
//! unit files and the length of names; the cap on diagnostics; positions
//! late in a big file; nesting; and input that must not panic.

use super::*;
use crate::limits::*;

/// `n` unknown keys in `[native]`, one per line from line 3.
fn unknown_keys(n: usize) -> String {
    let mut text = String::from(MIN);
    for i in 0..n {
        text.push_str(&format!("unknown_{i} = 1\n"));
    }
    text
}

fn summary(n: usize, file: &str) -> String {
    format!("... and {n} more problems in {file} (fix these first)")
}

#[test]
fn diagnostics_are_capped_per_file() {
    let d = errs(&unknown_keys(10_000));
    assert_eq!(d.len(), MAX_DIAGNOSTICS_PER_FILE + 1, "{}", render(&d[..5]));
    for (i, diag) in d[..MAX_DIAGNOSTICS_PER_FILE].iter().enumerate() {
        assert_eq!((diag.line, diag.col), (i + 3, 1), "{diag}");
        assert!(
            diag.message
                .starts_with(&format!("unknown key \"unknown_{i}\"")),
            "{diag}"
        );
    }
    let last = d.last().unwrap();
    assert_eq!(
        last.message,
        summary(10_000 - MAX_DIAGNOSTICS_PER_FILE, "units/web.toml")
    );
    assert_eq!(last.file, Path::new("units/web.toml"));
}

#[test]
fn diagnostics_are_capped_per_load() {
    let text = unknown_keys(150);
    let s = Scratch::new(&[
        ("a.toml", &text),
        ("b.toml", &text),
        ("c.toml", &text),
        ("d.toml", &text),
    ]);
    let d = load_err(&s);
    let summaries: Vec<&Diagnostic> = d.iter().filter(|d| d.message.starts_with("...")).collect();
    assert_eq!(d.len() - summaries.len(), MAX_DIAGNOSTICS, "{summaries:?}");
    let (a, b, c) = (s.file("a.toml"), s.file("b.toml"), s.file("c.toml"));
    let messages: Vec<String> = summaries.iter().map(|d| d.to_string()).collect();
    assert_eq!(
        messages,
        [
            format!("{a}: {}", summary(50, &a)),
            format!("{b}: {}", summary(50, &b)),
            format!("{c}: ... and 300 more problems in {c} and 1 other file (fix these first)"),
        ]
    );
    // Each file's summary ends its problems; the last ends the list.
    let a_end = d
        .iter()
        .position(|x| x.file == Path::new(&a) && x.message.starts_with("..."));
    assert_eq!(a_end, Some(MAX_DIAGNOSTICS_PER_FILE));
    assert_eq!(d.last().unwrap().file, Path::new(&c));

    // One file over the cap, the load under it: only the file's summary.
    let s = Scratch::new(&[("a.toml", &unknown_keys(120)), ("b.toml", &unknown_keys(3))]);
    let d = load_err(&s);
    assert_eq!(d.len(), MAX_DIAGNOSTICS_PER_FILE + 1 + 3, "{}", render(&d));
    assert_eq!(
        d[MAX_DIAGNOSTICS_PER_FILE].message,
        summary(20, &s.file("a.toml"))
    );
}

#[test]
fn positions_late_in_a_big_file() {
    // 30,000 lines of comments with characters of 2, 3 and 4 bytes, then
    // problems whose columns count characters.
    let mut text = String::new();
    for i in 0..30_000 {
        text.push_str(&format!("# {i} é € 𝄞 ça\n"));
    }
    text.push_str("depends_on = { \"ää\" = \"ready\" }\n");
    text.push_str("description = \"€€€\"\n");
    text.push_str("[native]\ncommand = [\"/bin/ü\", 1]\n");
    text.push_str("  nmae = 1\n");
    let d = errs(&text);
    let got: Vec<String> = d
        .iter()
        .map(|d| format!("{}:{} {}", d.line, d.col, d.message))
        .collect();
    let pos: Vec<(usize, usize)> = d.iter().map(|d| (d.line, d.col)).collect();
    assert_eq!(
        pos,
        [(30_001, 16), (30_001, 23), (30_004, 22), (30_005, 3)],
        "{got:#?}"
    );
    // One long line with characters of several widths: the column of a
    // problem far along it.
    let pad = "é€𝄞x".repeat(5_000); // 20,000 characters, 50,000 bytes
    let text = format!("{MIN}[env]\nA = \"{pad}\"\nB = 1\n");
    let d = errs(&text);
    assert_eq!((d[0].line, d[0].col), (5, 5), "{}", render(&d));
    let text = format!("env = {{ A = \"{pad}\", B = 1 }}\n{MIN}");
    let d = errs(&text);
    assert_eq!(d.len(), 1, "{}", render(&d));
    assert_eq!(
        (d[0].line, d[0].col),
        (1, 13 + 20_000 + 7 + 1),
        "{}",
        render(&d)
    );
}

#[test]
fn a_file_over_the_size_limit_is_refused_before_it_is_read() {
    let limit = MAX_FILE_BYTES as usize;
    // A valid unit padded with a comment to exactly the limit loads.
    let pad = |n: usize| format!("{MIN}#{}\n", "x".repeat(n - MIN.len() - 2));
    let exact = pad(limit);
    assert_eq!(exact.len(), limit);
    let s = Scratch::new(&[("web.toml", &exact)]);
    load_dir(&s.0).unwrap_or_else(|d| panic!("{}", render(&d)));
    assert!(parse(&exact).is_ok());

    let over = pad(limit + 1);
    let s = Scratch::new(&[("web.toml", &over)]);
    let d = load_err(&s);
    assert_eq!(d.len(), 1, "{}", render(&d));
    assert_eq!(d[0].line, 0);
    assert_eq!(d[0].file, Path::new(&s.file("web.toml")));
    assert!(
        d[0].message.contains(&format!("{} bytes", limit + 1))
            && d[0].message.contains(&format!("{limit} bytes")),
        "{}",
        d[0]
    );
    // The text given to the parser directly is refused too.
    let d = errs(&over);
    assert_eq!(d.len(), 1, "{}", render(&d));
    assert!(d[0].message.contains(&format!("{limit} bytes")), "{}", d[0]);

    // A 50 MB description is refused by the file's size alone.
    let big = format!("description = \"{}\"\n{MIN}", "x".repeat(50 << 20));
    let s = Scratch::new(&[("web.toml", &big)]);
    let d = load_err(&s);
    assert_eq!(d.len(), 1, "{}", d[0]);
    assert!(d[0].message.contains("1 MiB"), "{}", d[0]);
}

/// Each case: file text, the `line:col` of the one problem, a fragment of
/// its message.
fn bound_cases() -> Vec<(String, &'static str, String)> {
    let x = |n: usize| "x".repeat(n);
    let list = |n: usize, item: &str| vec![format!("\"{item}\""); n].join(", ");
    vec![
        (
            format!("description = \"{}\"\n{MIN}", x(MAX_DESCRIPTION_BYTES + 1)),
            "1:15",
            format!(
                "description: {} bytes long; at most {MAX_DESCRIPTION_BYTES}",
                MAX_DESCRIPTION_BYTES + 1
            ),
        ),
        (
            format!(
                "[native]\ncommand = [\"/bin/x\", \"{}\"]\n",
                x(MAX_STRING_BYTES + 1)
            ),
            "2:22",
            format!(
                "native.command: {} bytes long; at most {MAX_STRING_BYTES}",
                MAX_STRING_BYTES + 1
            ),
        ),
        (
            format!(
                "[native]\ncommand = [\"/bin/x\"]\nworking_dir = \"/{}\"\n",
                x(MAX_PATH_BYTES)
            ),
            "3:15",
            format!(
                "native.working_dir: {} bytes long; at most {MAX_PATH_BYTES}",
                MAX_PATH_BYTES + 1
            ),
        ),
        (
            format!("{MIN}[env]\nA = \"{}\"\n", x(MAX_STRING_BYTES + 1)),
            "4:5",
            format!(
                "env.A: {} bytes long; at most {MAX_STRING_BYTES}",
                MAX_STRING_BYTES + 1
            ),
        ),
        (
            format!(
                "{MIN}[env]\nA = \"{a}\"\nB = \"{a}\"\nC = \"{a}\"\n",
                a = x(50_000)
            ),
            "6:5",
            format!("env: the variables add up to more than {MAX_ENV_BYTES} bytes"),
        ),
        (
            format!("{MIN}[env]\n{} = \"1\"\n", x(MAX_KEY_BYTES + 1)),
            "4:1",
            format!(
                "a key of {} bytes; at most {MAX_KEY_BYTES}",
                MAX_KEY_BYTES + 1
            ),
        ),
        (
            format!(
                "{MIN}[env]\n{}",
                (0..=MAX_ENV_VARS)
                    .map(|i| format!("V{i} = \"1\"\n"))
                    .collect::<String>()
            ),
            "3:1",
            format!("env: {} entries; at most {MAX_ENV_VARS}", MAX_ENV_VARS + 1),
        ),
        (
            format!(
                "[container]\nimage = \"nginx\"\nvolumes = [{}]\n",
                (0..=MAX_ITEMS)
                    .map(|i| format!("\"/srv/{i}:/srv/{i}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "3:11",
            format!(
                "container.volumes: {} entries; at most {MAX_ITEMS}",
                MAX_ITEMS + 1
            ),
        ),
        (
            format!("[native]\ncommand = [{}]\n", list(MAX_ARGS + 1, "/bin/x")),
            "2:11",
            format!(
                "native.command: {} entries; at most {MAX_ARGS}",
                MAX_ARGS + 1
            ),
        ),
        (
            format!(
                "[native]\ncommand = [\"/bin/x\", \"{a}\", \"{a}\", \"{a}\"]\n",
                a = x(50_000)
            ),
            "2:100030",
            format!("native.command: the arguments add up to more than {MAX_ARGV_BYTES} bytes"),
        ),
        (
            format!(
                "{MIN}{}",
                (0..=MAX_ITEMS)
                    .map(|i| format!("[[device]]\npath = \"/dev/d{i}\"\n"))
                    .collect::<String>()
            ),
            "3:1",
            format!("device: {} entries; at most {MAX_ITEMS}", MAX_ITEMS + 1),
        ),
    ]
}

#[test]
fn every_string_list_and_table_is_bounded() {
    let mut failures = Vec::new();
    for (text, pos, fragment) in bound_cases() {
        let short = &text[..text.len().min(60)];
        let diags = match parse(&text) {
            Ok(_) => {
                failures.push(format!("{short:?}...: parsed without error"));
                continue;
            }
            Err(d) => d,
        };
        let expected = format!("units/web.toml:{pos}: ");
        let found = diags.len() == 1
            && diags[0].to_string().starts_with(&expected)
            && diags[0].message.contains(&fragment);
        if !found {
            failures.push(format!(
                "{short:?}...\n  want exactly {expected}...{fragment}\n  got  {}",
                render(&diags).trim_end().replace('\n', "\n       ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn strings_at_their_bound_pass() {
    let x = |n: usize| "x".repeat(n);
    ok(&format!(
        "description = \"{}\"\n{MIN}",
        x(MAX_DESCRIPTION_BYTES)
    ));
    ok(&format!(
        "[native]\ncommand = [\"/bin/x\", \"{}\"]\n",
        x(MAX_STRING_BYTES)
    ));
    ok(&format!(
        "{MIN}[env]\nA = \"{}\"\nB = \"1\"\n",
        x(MAX_STRING_BYTES)
    ));
    let vars: String = (0..MAX_ENV_VARS)
        .map(|i| format!("V{i} = \"1\"\n"))
        .collect();
    assert_eq!(ok(&format!("{MIN}[env]\n{vars}")).env.len(), MAX_ENV_VARS);
}

#[test]
fn messages_that_quote_a_long_value_are_cut() {
    let d = errs(&format!("run = \"{}\"\n{MIN}", "x".repeat(20_000)));
    assert_eq!(d.len(), 1, "{}", d[0]);
    assert!(
        d[0].message.len() <= MAX_MESSAGE_BYTES,
        "{}",
        d[0].message.len()
    );
    assert!(
        d[0].message.starts_with("run: unknown value \"xxx"),
        "{}",
        &d[0].message[..40]
    );
}

#[test]
fn a_directory_of_too_many_unit_files_is_refused() {
    let files: Vec<(String, &str)> = (0..=MAX_UNIT_FILES)
        .map(|i| (format!("u{i}.toml"), MIN))
        .collect();
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let s = Scratch::new(&refs);
    let d = load_err(&s);
    assert_eq!(d.len(), 1, "{}", render(&d[..d.len().min(3)]));
    assert_eq!(d[0].file, s.0);
    assert!(
        d[0].message
            .contains(&format!("{} unit files", MAX_UNIT_FILES + 1))
            && d[0].message.contains(&format!("at most {MAX_UNIT_FILES}")),
        "{}",
        d[0]
    );
    // At the limit, the set loads.
    std::fs::remove_file(s.0.join("u0.toml")).unwrap();
    assert_eq!(load_dir(&s.0).unwrap().len(), MAX_UNIT_FILES);
}

#[test]
fn unit_names_are_at_most_63_characters() {
    let name = |n: usize| "a".repeat(n);
    assert!(is_valid_unit_name(&name(MAX_UNIT_NAME)));
    assert!(!is_valid_unit_name(&name(MAX_UNIT_NAME + 1)));
    let path = |n: usize| PathBuf::from(format!("units/{}.toml", name(n)));
    assert!(parse_unit(&path(MAX_UNIT_NAME), MIN).is_ok());
    let d = parse_unit(&path(MAX_UNIT_NAME + 1), MIN).unwrap_err();
    assert_eq!(d.len(), 1, "{}", render(&d));
    assert_eq!((d[0].line, d[0].col), (1, 1));
    assert!(
        d[0].message
            .contains(&format!("{} characters", MAX_UNIT_NAME + 1))
            && d[0].message.contains(&format!("at most {MAX_UNIT_NAME}")),
        "{}",
        d[0]
    );

    // In a directory: refused at the file, with the length.
    let long = format!("{}.toml", name(244));
    let s = Scratch::new(&[(long.as_str(), MIN)]);
    let d = load_err(&s);
    assert_eq!(d.len(), 1, "{}", render(&d));
    assert!(d[0].message.contains("244 characters"), "{}", d[0]);

    // Names of other units.
    let long = name(MAX_UNIT_NAME + 1);
    let d = errs(&with_deps(&format!("[\"{long}\"]")));
    assert!(
        d[0].message
            .contains(&format!("{} characters", MAX_UNIT_NAME + 1)),
        "{}",
        d[0]
    );
    let d = errs(&format!(
        "[container]\nimage = \"nginx\"\nnetwork = \"unit:{long}\"\n"
    ));
    assert_eq!((d[0].line, d[0].col), (3, 11), "{}", d[0]);
    assert!(
        d[0].message
            .contains(&format!("{} characters", MAX_UNIT_NAME + 1)),
        "{}",
        d[0]
    );

    // Units built in code.
    let d = UnitSet::from_units([Unit::new(long, Exec::Native(native_x()))]).unwrap_err();
    assert!(d[0].message.contains("at most 63"), "{}", d[0]);
}

#[test]
fn names_that_become_file_names_fit_in_one() {
    // A volume's name is a directory under the volume directory, a
    // secret's target a file in the run's tmpfs, both as written: 255
    // bytes at most. A network name is no file name (the links are named by
    // a hash), 64 bytes at most.
    let volume = |n: usize| {
        format!(
            "[container]\nimage = \"nginx\"\nvolumes = [\"{}:/data\"]\n",
            "v".repeat(n)
        )
    };
    ok(&volume(MAX_VOLUME_NAME));
    let d = errs(&volume(MAX_VOLUME_NAME + 1));
    assert!(
        d[0].message.contains(&format!("at most {MAX_VOLUME_NAME}")),
        "{}",
        d[0]
    );
    let secret = |n: usize| {
        format!(
            "{MIN}[[secret]]\nsource = \"/srv/s\"\ntarget = \"{}\"\n",
            "s".repeat(n)
        )
    };
    ok(&secret(MAX_FILE_NAME));
    let d = errs(&secret(MAX_FILE_NAME + 1));
    assert!(
        d[0].message.contains(&format!("at most {MAX_FILE_NAME}")),
        "{}",
        d[0]
    );
    let network = |n: usize| {
        format!(
            "[container]\nimage = \"nginx\"\nnetworks = [\"{}\"]\n",
            "n".repeat(n)
        )
    };
    ok(&network(MAX_NETWORK_NAME));
    let d = errs(&network(MAX_NETWORK_NAME + 1));
    assert!(
        d[0].message
            .contains(&format!("at most {MAX_NETWORK_NAME}")),
        "{}",
        d[0]
    );
}

/// Runs `f` on a thread with a stack of `kib` KiB: the parser must not
/// need more however deep the input nests.
fn on_small_stack<T: Send + 'static>(kib: usize, f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(kib << 10)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn nesting_past_the_limit_is_reported_at_its_position() {
    let deep = |open: &str, close: &str, n: usize| {
        format!("{MIN}x = {}1{}\n", open.repeat(n), close.repeat(n))
    };
    let cases = [
        // The 81st '[' of line 3.
        (deep("[", "]", 10_000), (3, 85)),
        (deep("{ a = ", "}", 10_000), (3, 5 + 80 * 6)),
        // The 81st part of a dotted key, and of a table's header.
        (format!("{MIN}{}= 1\n", "a.".repeat(100)), (3, 161)),
        (format!("{MIN}[{}b]\nc = 1\n", "a.".repeat(100)), (3, 162)),
        (
            format!("{MIN}y = {{ {}= 1 }}\n", "'a'.".repeat(100)),
            (3, 7 + 80 * 4),
        ),
    ];
    for (text, pos) in cases {
        let d = on_small_stack(512, move || parse(&text).unwrap_err());
        let nest: Vec<&Diagnostic> = d.iter().filter(|d| d.message.contains("nest")).collect();
        assert_eq!(nest.len(), 1, "{}", render(&d));
        assert_eq!((nest[0].line, nest[0].col), pos, "{}", render(&d));
        assert!(
            nest[0].message.contains("nested more than 80 levels"),
            "{}",
            nest[0]
        );
    }
    // Through a directory load too.
    let s = Scratch::new(&[("web.toml", &format!("{MIN}{}= 1\n", "a.".repeat(100)))]);
    let d = load_err(&s);
    assert!(
        d.iter().any(|d| (d.line, d.col) == (3, 161)),
        "{}",
        render(&d)
    );
}

/// A small deterministic generator (xorshift), so the test is the same at
/// each run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn mutated_unit_files_never_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../units");
    let mut seeds: Vec<String> = unit_files(&dir)
        .unwrap()
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    seeds.extend(ERROR_CASES.iter().map(|(t, _, _)| t.to_string()));
    // Values whose checks slice by bytes, with characters of several bytes
    // at the cut.
    for v in [
        "http://é",
        "https:/é",
        "http://[é",
        "http://a:é/",
        "é:é",
        "[::é]:1:2",
    ] {
        seeds.push(format!("{MIN}[health]\nhttp = \"{v}\"\n"));
        seeds.push(format!(
            "{MIN}[health]\ntcp = \"{v}\"\n[bench]\nurl = \"{v}\"\n"
        ));
        seeds.push(format!("[container]\nimage = \"{v}\"\nports = [\"{v}\"]\nvolumes = [\"{v}\"]\ntmpfs = [\"{v}\"]\nextra_hosts = [\"{v}\"]\n"));
    }
    let pieces = [
        "é",
        "€",
        "𝄞",
        "\"",
        "'",
        "[",
        "]",
        "{",
        "}",
        "=",
        ".",
        ":",
        "/",
        "\n",
        "#",
        "\\",
        "\"\"\"",
        "0x",
        "-",
        "1e400",
        "[[device]]\n",
        "[container]\n",
        "unit:",
        "oci-layout:",
    ];
    // More rounds with JARVIS_UNIT_MUTATION_ROUNDS=N (a release build
    // runs a million in a few minutes).
    let rounds: usize = std::env::var("JARVIS_UNIT_MUTATION_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3_000);
    let scratch = Scratch::new(&[]);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..rounds {
        let mut text = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(4) {
            let mut at = rng.below(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            match rng.below(3) {
                0 => text.insert_str(at, pieces[rng.below(pieces.len())]),
                1 => text.truncate(at),
                _ => {
                    let mut end = (at + rng.below(16)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(at..end, "");
                }
            }
        }
        let t = text.clone();
        let r = std::panic::catch_unwind(|| parse_unit(Path::new("units/web.toml"), &t));
        assert!(r.is_ok(), "round {round}: parse_unit panicked on {text:?}");
        // Now and then, as one of a set loaded from a directory, with two
        // seeds that refer to it.
        if round % 50 == 0 {
            let names = ["web", "db", &format!("u{}", rng.below(3))];
            for (i, name) in names.iter().enumerate() {
                let text = match i {
                    0 => text.clone(),
                    _ => format!("depends_on = [\"web\"]\n{}", seeds[rng.below(seeds.len())]),
                };
                scratch.write(&format!("{name}.toml"), &text);
            }
            let dir = scratch.0.clone();
            let r = std::panic::catch_unwind(|| load_paths(&[dir]));
            assert!(
                r.is_ok(),
                "round {round}: load_paths panicked with web.toml {text:?}"
            );
        }
    }
}

#[test]
fn cross_unit_messages_stay_short_in_a_big_set() {
    // 30 units, and one that depends on a unit none has: the message names
    // the first few known units and how many there are.
    let names: Vec<String> = (0..30).map(|i| format!("u{i:02}.toml")).collect();
    let mut files: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), MIN)).collect();
    let app = with_deps("[\"u1\"]");
    files.push(("app.toml", &app));
    let s = Scratch::new(&files);
    let d = load_err(&s);
    assert_eq!(d.len(), 1, "{}", render(&d));
    assert!(
        d[0].message
            .contains("u17, u18, ... (31 units)); did you mean \"u01\"?"),
        "{}",
        d[0]
    );
}
