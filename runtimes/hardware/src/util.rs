//! Small file helpers shared by the probes.

use std::fs;
use std::path::{Path, PathBuf};

/// The file's content, trimmed; `None` when it cannot be read.
pub(crate) fn read_trim(path: impl AsRef<Path>) -> Option<String> {
    fs::read_to_string(path.as_ref())
        .ok()
        .map(|s| s.trim().to_string())
}

/// A sysfs hex attribute such as `0x10de` or `10c4`.
pub(crate) fn read_hex(path: impl AsRef<Path>) -> Option<u32> {
    let s = read_trim(path)?;
    u32::from_str_radix(s.trim_start_matches("0x").trim_start_matches("0X"), 16).ok()
}

/// A decimal attribute.
pub(crate) fn read_u64(path: impl AsRef<Path>) -> Option<u64> {
    read_trim(path)?.parse().ok()
}

/// The entries of a directory, sorted by name; empty when it cannot be read.
pub(crate) fn list_dir(dir: impl AsRef<Path>) -> Vec<(String, PathBuf)> {
    let mut out: Vec<(String, PathBuf)> = match fs::read_dir(dir.as_ref()) {
        Ok(rd) => rd
            .filter_map(|e| e.ok())
            .filter_map(|e| Some((e.file_name().into_string().ok()?, e.path())))
            .collect(),
        Err(_) => Vec::new(),
    };
    out.sort_by(|a, b| natural_cmp(&a.0, &b.0));
    out
}

/// Compares names so that embedded numbers sort by value: `ttyUSB2` before
/// `ttyUSB10`, `card1` before `card10`.
pub(crate) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return std::cmp::Ordering::Equal,
            (None, _) => return std::cmp::Ordering::Less,
            (_, None) => return std::cmp::Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
                let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
                let (da, db) = (&a[..na], &b[..nb]);
                let strip = |d: &[u8]| -> usize { d.iter().take_while(|c| **c == b'0').count() };
                let (ta, tb) = (&da[strip(da)..], &db[strip(db)..]);
                let ord = ta.len().cmp(&tb.len()).then(ta.cmp(tb));
                if ord != std::cmp::Ordering::Equal {
                    return ord;
                }
                a = &a[na..];
                b = &b[nb..];
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                a = &a[1..];
                b = &b[1..];
            }
        }
    }
}

/// `KEY=VALUE` lines of a sysfs `uevent` file.
pub(crate) fn uevent_var(dir: &Path, key: &str) -> Option<String> {
    let s = fs::read_to_string(dir.join("uevent")).ok()?;
    s.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k == key).then(|| v.to_string())
    })
}

/// `major:minor` from a sysfs `dev` file.
pub(crate) fn read_dev_numbers(path: impl AsRef<Path>) -> Option<(u32, u32)> {
    let s = read_trim(path)?;
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut v = vec![
            "ttyUSB10",
            "ttyUSB2",
            "ttyACM0",
            "card1",
            "card0",
            "renderD128",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            [
                "card0",
                "card1",
                "renderD128",
                "ttyACM0",
                "ttyUSB2",
                "ttyUSB10"
            ]
        );
    }
}
