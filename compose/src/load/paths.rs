//! Relative paths made absolute, as compose-go's `paths.ResolveRelativePaths`
//! does, against the directory they are relative to: the project directory
//! for the `-f` files, the extended file's own directory for a service taken
//! from another file by `extends: {file}`. A leading `~` is the home
//! directory (`HOME` in the environment).
//!
//! The keys made absolute:
//! - `services.*.build` (the short form) and `build.context` (unless a URL,
//!   a git reference or `service:`/`docker-image://`-style context), the
//!   values of `build.additional_contexts` (mapping, or `NAME=PATH` list);
//! - `services.*.env_file` and `label_file` (a string, list items, or the
//!   `path` of a long-form item);
//! - `services.*.volumes`: the source of a short-form bind mount (one that
//!   starts with `.` or `~`; `/` is absolute already) and of a long-form
//!   `type: bind`;
//! - `services.*.extends.file`; `services.*.develop.watch[].path`;
//! - top-level `configs.*.file`, `secrets.*.file`, and a top-level volume's
//!   `driver_opts.device` when its driver is `local` with `o: bind`.

use std::path::{Component, Path, PathBuf};

use super::yaml::{V, Y};

pub struct Resolver<'a> {
    pub base: &'a Path,
    pub home: Option<&'a str>,
}

impl Resolver<'_> {
    /// `p` made absolute (and lexically clean); empty stays empty.
    pub fn abs(&self, p: &str) -> String {
        if p.is_empty() {
            return String::new();
        }
        let expanded = match (p.strip_prefix('~'), self.home) {
            (Some(rest), Some(home)) => format!("{home}/{}", rest.trim_start_matches('/')),
            _ => p.to_string(),
        };
        let path = Path::new(&expanded);
        let joined = if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base.join(path)
        };
        clean(&joined).to_string_lossy().into_owned()
    }

    fn abs_node(&self, y: &mut Y) {
        if let V::Str(s) = &mut y.v {
            *s = self.abs(s);
        }
    }

    fn abs_context(&self, y: &mut Y) {
        if let V::Str(s) = &y.v {
            let remote = s.contains("://")
                || s.starts_with("service:")
                || [
                    "https://",
                    "http://",
                    "git://",
                    "ssh://",
                    "github.com/",
                    "git@",
                ]
                .iter()
                .any(|p| s.starts_with(p));
            if !remote {
                self.abs_node(y);
            }
        }
    }

    /// Resolves every path of a file's tree.
    pub fn resolve(&self, root: &mut Y) {
        if let Some(V::Map(services)) = root.get_mut("services").map(|s| &mut s.v) {
            for (_, service) in services.iter_mut() {
                self.resolve_service(service);
            }
        }
        for section in ["configs", "secrets"] {
            if let Some(V::Map(items)) = root.get_mut(section).map(|s| &mut s.v) {
                for (_, item) in items.iter_mut() {
                    if let Some(file) = item.get_mut("file") {
                        self.abs_node(file);
                    }
                }
            }
        }
        if let Some(V::Map(volumes)) = root.get_mut("volumes").map(|s| &mut s.v) {
            for (_, vol) in volumes.iter_mut() {
                let local = vol.get("driver").and_then(Y::scalar).as_deref() == Some("local");
                let Some(opts) = vol.get_mut("driver_opts") else {
                    continue;
                };
                let bind = opts.get("o").and_then(Y::scalar).as_deref() == Some("bind");
                if local && bind {
                    if let Some(dev) = opts.get_mut("device") {
                        self.abs_node(dev);
                    }
                }
            }
        }
    }

    fn resolve_service(&self, service: &mut Y) {
        if let Some(build) = service.get_mut("build") {
            match &mut build.v {
                V::Str(_) => self.abs_context(build),
                V::Map(_) => {
                    if let Some(ctx) = build.get_mut("context") {
                        self.abs_context(ctx);
                    }
                    if let Some(extra) = build.get_mut("additional_contexts") {
                        match &mut extra.v {
                            V::Map(m) => m.iter_mut().for_each(|(_, v)| self.abs_context(v)),
                            V::Seq(items) => {
                                for item in items.iter_mut() {
                                    if let V::Str(s) = &item.v {
                                        if let Some((name, path)) = s.split_once('=') {
                                            let mut p =
                                                Y::new(V::Str(path.into()), item.pos.clone());
                                            self.abs_context(&mut p);
                                            let path = p.scalar().unwrap_or_default();
                                            item.v = V::Str(format!("{name}={path}"));
                                        }
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        for key in ["env_file", "label_file"] {
            let Some(files) = service.get_mut(key) else {
                continue;
            };
            match &mut files.v {
                V::Str(_) => self.abs_node(files),
                V::Seq(items) => {
                    for item in items.iter_mut() {
                        match &item.v {
                            V::Str(_) => self.abs_node(item),
                            V::Map(_) => {
                                if let Some(p) = item.get_mut("path") {
                                    self.abs_node(p);
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if let Some(V::Seq(volumes)) = service.get_mut("volumes").map(|v| &mut v.v) {
            for vol in volumes.iter_mut() {
                match &vol.v {
                    V::Str(s) => {
                        if let Some(resolved) = self.short_volume(s) {
                            vol.v = V::Str(resolved);
                        }
                    }
                    V::Map(_) if vol.get("type").and_then(Y::scalar).as_deref() == Some("bind") => {
                        if let Some(src) = vol.get_mut("source") {
                            self.abs_node(src);
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(ext) = service.get_mut("extends") {
            if let Some(file) = ext.get_mut("file") {
                self.abs_node(file);
            }
        }
        if let Some(watch) = service.get_mut("develop").and_then(|d| d.get_mut("watch")) {
            if let V::Seq(items) = &mut watch.v {
                for item in items.iter_mut() {
                    if let Some(p) = item.get_mut("path") {
                        self.abs_node(p);
                    }
                }
            }
        }
    }

    /// `./data:/data:ro` → `/project/data:/data:ro`; `None` when the source
    /// is not a relative host path.
    fn short_volume(&self, spec: &str) -> Option<String> {
        let (src, rest) = spec.split_once(':')?;
        if !(src.starts_with('.') || src.starts_with('~')) {
            return None;
        }
        Some(format!("{}:{rest}", self.abs(src)))
    }
}

/// `a/./b/../c` → `a/c`, without touching the file system (as Go's
/// `filepath.Join` cleans).
pub fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            c => out.push(c.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn relative_sources_become_absolute() {
        let text = "services:\n  s:\n    build: ./app\n    env_file: [.env.web, {path: ../x.env}]\n    volumes:\n      - ./data:/data:ro\n      - ~/cache:/cache\n      - named:/n\n      - /abs:/abs\n      - {type: bind, source: ./b, target: /b}\n      - {type: volume, source: v, target: /v}\nsecrets:\n  s: {file: ./secret.txt}\n";
        let mut y = super::super::yaml::parse(text, &Arc::new(PathBuf::from("c.yaml")))
            .unwrap()
            .remove(0);
        Resolver {
            base: Path::new("/srv/app"),
            home: Some("/home/u"),
        }
        .resolve(&mut y);
        let s = y.get("services").unwrap().get("s").unwrap();
        assert_eq!(s.get("build").unwrap().scalar().unwrap(), "/srv/app/app");
        let env: Vec<String> = s
            .get("env_file")
            .unwrap()
            .items()
            .map(|i| {
                i.scalar()
                    .or_else(|| i.get("path").and_then(Y::scalar))
                    .unwrap()
            })
            .collect();
        assert_eq!(env, ["/srv/app/.env.web", "/srv/x.env"]);
        let vols: Vec<String> = s
            .get("volumes")
            .unwrap()
            .items()
            .map(|i| {
                i.scalar()
                    .or_else(|| i.get("source").and_then(Y::scalar))
                    .unwrap()
            })
            .collect();
        assert_eq!(
            vols,
            [
                "/srv/app/data:/data:ro",
                "/home/u/cache:/cache",
                "named:/n",
                "/abs:/abs",
                "/srv/app/b",
                "v"
            ]
        );
        let secret = y
            .get("secrets")
            .unwrap()
            .get("s")
            .unwrap()
            .get("file")
            .unwrap();
        assert_eq!(secret.scalar().unwrap(), "/srv/app/secret.txt");
    }

    impl Y {
        fn items(&self) -> impl Iterator<Item = &Y> {
            match &self.v {
                V::Seq(items) => items.iter(),
                _ => [].iter(),
            }
        }
    }
}
