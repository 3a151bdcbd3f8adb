//! The unit parser on any text, then the cross-unit validator on one to
//! three files.
//!
//! Input: up to three unit files separated by NUL bytes (a NUL is never
//! valid TOML). A piece whose first line is `#name NAME` is written as
//! `NAME.toml`, so dependencies between pieces can name each other; the
//! others are `u0.toml`, `u1.toml`, `u2.toml`. Bytes that are not UTF-8
//! become U+FFFD, as a lossy read would make them.
#![no_main]

use std::path::{Path, PathBuf};

use libfuzzer_sys::fuzz_target;

fn file_name(i: usize, piece: &str) -> String {
    let named = piece
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#name "))
        .map(str::trim)
        .filter(|n| {
            !n.is_empty() && n.len() <= 200 && !n.contains(['/', '\0']) && *n != "." && *n != ".."
        });
    match named {
        Some(n) => format!("{n}.toml"),
        None => format!("u{i}.toml"),
    }
}

fuzz_target!(|data: &[u8]| {
    let pieces: Vec<String> = data
        .split(|b| *b == 0)
        .take(3)
        .map(|p| String::from_utf8_lossy(p).into_owned())
        .collect();

    for p in &pieces {
        let one = jarvis_unit::parse_unit(Path::new("fuzz.toml"), p);
        let based = jarvis_unit::parse_unit_with(
            Path::new("/repo/units/fuzz.toml"),
            p,
            &jarvis_unit::LoadOptions {
                base: Some(PathBuf::from("/repo")),
            },
        );
        // The base only changes relative host paths: a file valid without
        // one is valid with one.
        if one.is_ok() {
            assert!(
                based.is_ok(),
                "valid without a base, refused with one: {based:?}"
            );
        }
        if let Err(diags) = one {
            assert!(!diags.is_empty(), "an Err without a diagnostic");
            for d in &diags {
                let _ = d.to_string();
            }
        }
    }

    let dir = tempfile::tempdir().expect("scratch directory");
    let mut paths = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        let path = dir.path().join(file_name(i, p));
        if paths.contains(&path) {
            continue;
        }
        std::fs::write(&path, p).expect("write unit file");
        paths.push(path);
    }
    match jarvis_unit::load_paths(&paths) {
        Ok(set) => {
            assert!(set.len() <= paths.len());
            let order = set.start_order();
            assert_eq!(order.len(), set.len(), "start order drops or repeats units");
            let stop = set.stop_order();
            assert_eq!(stop.len(), set.len(), "stop order drops or repeats units");
            // A unit starts after every unit it depends on.
            for name in set.names() {
                let at = order.iter().position(|n| *n == name).expect("in the order");
                for dep in set.dependencies(name) {
                    if let Some(d) = order.iter().position(|n| *n == dep) {
                        assert!(d < at, "{name} starts before its dependency {dep}");
                    }
                }
                let _ = set.dependents(name);
                let _ = set.with_dependencies(name);
                let _ = set.with_dependents(name);
            }
        }
        Err(diags) => {
            assert!(!diags.is_empty(), "an Err without a diagnostic");
            for d in &diags {
                let _ = d.to_string();
            }
        }
    }
});
