//! Test support: real tools (docker-registry, skopeo, umoci), OCI layouts
//! written by hand with tar/flate2/zstd/sha2, tree comparison.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

pub const MTIME: u64 = 1_700_000_000;

/// Fail (not skip) with the Debian package to install if a tool is missing.
pub fn require_tool(tool: &str, package: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "`{tool}` is not installed: these tests need the Debian package `{package}` (apt-get install {package})"
    );
}

pub fn require_root() {
    assert_eq!(
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() },
        0,
        "these tests mount overlays and create device nodes: run them as root"
    );
}

/// Run a command under `timeout`, panicking with its output if it fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("120")
        .arg(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(bytes)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

// ---------------------------------------------------------------- tar layers

/// A tar archive built entry by entry; names are written verbatim (so tests
/// can write hostile ones).
pub struct Tar {
    b: tar::Builder<Vec<u8>>,
}

impl Default for Tar {
    fn default() -> Self {
        Self::new()
    }
}

impl Tar {
    pub fn new() -> Tar {
        Tar {
            b: tar::Builder::new(Vec::new()),
        }
    }

    fn header(
        path: &str,
        ty: tar::EntryType,
        mode: u32,
        uid: u64,
        gid: u64,
        size: u64,
    ) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        let name = path.as_bytes();
        assert!(name.len() < 100, "test paths are short");
        let field = &mut h.as_old_mut().name;
        field.fill(0);
        field[..name.len()].copy_from_slice(name);
        h.set_entry_type(ty);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_size(size);
        h.set_mtime(MTIME);
        h
    }

    fn append(&mut self, mut h: tar::Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn dir(&mut self, path: &str, mode: u32) -> &mut Self {
        self.dir_owned(path, mode, 0, 0)
    }

    pub fn dir_owned(&mut self, path: &str, mode: u32, uid: u64, gid: u64) -> &mut Self {
        let h = Self::header(path, tar::EntryType::Directory, mode, uid, gid, 0);
        self.append(h, &[])
    }

    pub fn file(&mut self, path: &str, data: &[u8], mode: u32) -> &mut Self {
        self.file_owned(path, data, mode, 0, 0)
    }

    pub fn file_owned(
        &mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        uid: u64,
        gid: u64,
    ) -> &mut Self {
        let h = Self::header(
            path,
            tar::EntryType::Regular,
            mode,
            uid,
            gid,
            data.len() as u64,
        );
        self.append(h, data)
    }

    /// A file with PAX xattrs.
    pub fn file_xattrs(
        &mut self,
        path: &str,
        data: &[u8],
        mode: u32,
        xattrs: &[(&str, &[u8])],
    ) -> &mut Self {
        let keys: Vec<(String, &[u8])> = xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), *v))
            .collect();
        self.b
            .append_pax_extensions(keys.iter().map(|(k, v)| (k.as_str(), *v)))
            .unwrap();
        self.file(path, data, mode)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(path, tar::EntryType::Symlink, 0o777, 0, 0, 0);
        h.set_link_name_literal(target).unwrap();
        self.append(h, &[])
    }

    pub fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let mut h = Self::header(path, tar::EntryType::Link, 0o644, 0, 0, 0);
        h.set_link_name_literal(target).unwrap();
        self.append(h, &[])
    }

    pub fn chardev(&mut self, path: &str, mode: u32, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(path, tar::EntryType::Char, mode, 0, 0, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.append(h, &[])
    }

    pub fn fifo(&mut self, path: &str, mode: u32) -> &mut Self {
        let h = Self::header(path, tar::EntryType::Fifo, mode, 0, 0, 0);
        self.append(h, &[])
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let b = std::mem::replace(&mut self.b, tar::Builder::new(Vec::new()));
        b.into_inner().unwrap()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Comp {
    None,
    Gzip,
    Zstd,
}

pub fn compress(tar: &[u8], comp: Comp) -> (Vec<u8>, &'static str) {
    match comp {
        Comp::None => (tar.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
        Comp::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            (
                e.finish().unwrap(),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        }
        Comp::Zstd => (
            zstd::encode_all(tar, 3).unwrap(),
            "application/vnd.oci.image.layer.v1.tar+zstd",
        ),
    }
}

// -------------------------------------------------------------- OCI layouts

/// An OCI image layout written by hand.
pub struct Layout {
    pub dir: PathBuf,
    manifests: Vec<serde_json::Value>,
}

impl Layout {
    pub fn new(dir: &Path) -> Layout {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let l = Layout {
            dir: dir.to_path_buf(),
            manifests: Vec::new(),
        };
        l.write_index();
        l
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    pub fn put(&self, bytes: &[u8]) -> (String, u64) {
        let d = sha256(bytes);
        fs::write(self.blob_path(&d), bytes).unwrap();
        (d, bytes.len() as u64)
    }

    /// Add an image of the given layers (uncompressed tars and how to
    /// compress each), tagged `tag`. Returns the manifest digest.
    pub fn add_image(&mut self, tag: &str, layers: &[(Vec<u8>, Comp)]) -> String {
        let mut diff_ids = Vec::new();
        let mut descs = Vec::new();
        for (tar, comp) in layers {
            diff_ids.push(sha256(tar));
            let (blob, mt) = compress(tar, *comp);
            let (d, size) = self.put(&blob);
            descs.push(serde_json::json!({"mediaType": mt, "digest": d, "size": size}));
        }
        let config = serde_json::json!({
            "created": "2024-12-01T00:00:00Z",
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/bin:/usr/bin"], "Cmd": ["/bin/sh"], "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": layers.iter().map(|_| serde_json::json!({"created_by": "jarvis-image test"})).collect::<Vec<_>>(),
        });
        let (cd, cs) = self.put(&serde_json::to_vec(&config).unwrap());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": descs,
        });
        let (md, ms) = self.put(&serde_json::to_vec(&manifest).unwrap());
        self.manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md,
            "size": ms,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }));
        self.write_index();
        md
    }

    /// The manifest digest of `tag`.
    pub fn manifest_digest(&self, tag: &str) -> String {
        self.manifests
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap_or_else(|| panic!("no tag {tag}"))["digest"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The manifest of `tag`.
    pub fn manifest(&self, tag: &str) -> serde_json::Value {
        let d = self.manifest_digest(tag);
        serde_json::from_slice(&fs::read(self.blob_path(&d)).unwrap()).unwrap()
    }

    fn write_index(&self) {
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": self.manifests,
        });
        fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec_pretty(&index).unwrap(),
        )
        .unwrap();
    }

    /// The layout as a tar archive.
    pub fn to_tar(&self, dest: &Path) {
        let mut b = tar::Builder::new(fs::File::create(dest).unwrap());
        b.append_dir_all(".", &self.dir).unwrap();
        b.finish().unwrap();
    }
}

/// The test image: a busybox rootfs, then a layer that deletes a file and
/// makes a directory opaque, then one more plain layer. Returns the layers'
/// uncompressed tars.
pub fn busybox_layers() -> [Vec<u8>; 3] {
    let busybox =
        fs::read("/bin/busybox").expect("read /bin/busybox (Debian package busybox-static)");
    let mut base = Tar::new();
    base.dir("./", 0o755)
        .dir("bin/", 0o755)
        .file("bin/busybox", &busybox, 0o755)
        .hardlink("bin/busybox.hard", "bin/busybox");
    for applet in ["sh", "ls", "cat", "echo", "true", "false", "mkdir", "rm"] {
        base.symlink(&format!("bin/{applet}"), "busybox");
    }
    base.dir("etc/", 0o755)
        .file("etc/motd", b"welcome to the old layer\n", 0o644)
        .file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n", 0o644)
        .file("etc/group", b"root:x:0:\n", 0o644)
        .symlink("etc/localtime", "/usr/share/zoneinfo/UTC")
        .dir("etc/conf.d/", 0o750)
        .file("etc/conf.d/old.conf", b"old=1\n", 0o600)
        .dir("etc/conf.d/sub/", 0o755)
        .file("etc/conf.d/sub/deep.conf", b"deep=1\n", 0o644)
        .dir("usr/", 0o755)
        .dir("usr/bin/", 0o755)
        .file("usr/bin/suid-tool", b"#!/bin/sh\necho suid\n", 0o4755)
        .file("usr/bin/sgid-tool", b"#!/bin/sh\necho sgid\n", 0o2755)
        .dir("usr/share/", 0o755)
        .dir("usr/share/doc/", 0o755)
        .file_owned(
            "usr/share/doc/readme",
            b"owned by 1000\n",
            0o640,
            1000,
            1000,
        )
        .file_xattrs(
            "usr/share/doc/tagged",
            b"has an xattr\n",
            0o644,
            &[("user.jarvis", b"yes")],
        )
        .dir_owned("home/", 0o755, 0, 0)
        .dir_owned("home/user/", 0o700, 1000, 1000)
        .file_owned(
            "home/user/.profile",
            b"export PS1='$ '\n",
            0o644,
            1000,
            1000,
        )
        .dir("dev/", 0o755)
        .chardev("dev/null", 0o666, 1, 3)
        .chardev("dev/zero", 0o666, 1, 5)
        .dir("run/", 0o755)
        .fifo("run/ctl", 0o600)
        .dir("tmp/", 0o1777)
        .file("empty-file", b"", 0o644);

    let mut upper = Tar::new();
    upper
        .dir("etc/", 0o755)
        .file("etc/.wh.motd", b"", 0o644)
        .file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n",
            0o644,
        )
        .dir("etc/conf.d/", 0o755)
        .file("etc/conf.d/.wh..wh..opq", b"", 0o644)
        .file("etc/conf.d/new.conf", b"new=2\n", 0o644)
        .file("usr/share/doc/.wh.tagged", b"", 0o644)
        .dir("srv/", 0o755)
        .file("srv/index.html", b"<h1>jarvis</h1>\n", 0o644);

    let mut top = Tar::new();
    top.dir("opt/", 0o755)
        .dir("opt/app/", 0o755)
        .file("opt/app/data.txt", b"top layer\n", 0o644)
        .symlink("opt/app/sh", "/bin/sh");

    [base.finish(), upper.finish(), top.finish()]
}

// ------------------------------------------------------------------ registry

/// A `docker-registry serve` on 127.0.0.1, killed on drop.
pub struct Registry {
    child: Child,
    pub port: u16,
    pub storage: PathBuf,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        Self::start_with(None, None)
    }

    /// A registry that wants bearer tokens from `auth`, as Docker Hub does,
    /// and/or speaks HTTPS with `tls`.
    pub fn start_with(auth: Option<&TokenServer>, tls: Option<&Tls>) -> Registry {
        Self::start_config(auth.map(|a| a.registry_config()), tls)
    }

    /// A registry that wants HTTP basic authentication, checked against a
    /// bcrypt htpasswd file (`htpasswd -B`).
    pub fn start_htpasswd(htpasswd: &Path) -> Registry {
        Self::start_config(
            Some(format!(
                "auth:\n  htpasswd:\n    realm: jarvis-test-realm\n    path: {}\n",
                htpasswd.display()
            )),
            None,
        )
    }

    /// A registry with `auth` (the YAML of its `auth:` section) and TLS.
    fn start_config(auth: Option<String>, tls: Option<&Tls>) -> Registry {
        require_tool("docker-registry", "docker-registry");
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        fs::create_dir(&storage).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = dir.path().join("config.yml");
        fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
                 http:\n  addr: 127.0.0.1:{port}\n{}{}",
                storage.display(),
                tls.map(|t| format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    t.cert.display(),
                    t.key.display()
                ))
                .unwrap_or_default(),
                auth.unwrap_or_default()
            ),
        )
        .unwrap();
        let log = dir.path().join("registry.log");
        let out = fs::File::create(&log).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start docker-registry");
        let reg = Registry {
            child,
            port,
            storage,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on 127.0.0.1:{port}:\n{}",
                fs::read_to_string(&reg.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        reg
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `skopeo copy` a layout's tag into `repo:tag` here.
    pub fn seed(&self, layout: &Path, tag: &str, repo: &str) -> String {
        self.seed_as(layout, tag, repo, None)
    }

    /// [`Registry::seed`], logged in as `creds` (`USER:PASSWORD`).
    pub fn seed_as(&self, layout: &Path, tag: &str, repo: &str, creds: Option<&str>) -> String {
        require_tool("skopeo", "skopeo");
        let dest = format!("{}/{repo}:{tag}", self.host());
        let creds = creds.map(|c| format!("--dest-creds={c}"));
        let mut args = vec![
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
        ];
        args.extend(creds.as_deref());
        let (src, dst) = (
            format!("oci:{}:{tag}", layout.display()),
            format!("docker://{dest}"),
        );
        args.extend([src.as_str(), dst.as_str()]);
        run("skopeo", &args);
        dest
    }

    /// How many blob GETs the registry has served so far.
    pub fn blob_gets(&self) -> usize {
        fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"GET /v2/") && l.contains("/blobs/sha256:"))
            .count()
    }

    /// The file the registry serves the blob `digest` from.
    pub fn blob_data(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// -------------------------------------------------------------------- mounts

/// An overlay mount, unmounted on drop.
pub struct Mounted(pub PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = jarvis_image::unmount(&self.0);
    }
}

// ---------------------------------------------------------- tree comparison

#[derive(Debug, PartialEq, Eq)]
pub struct Node {
    kind: &'static str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    rdev: u64,
    target: Option<PathBuf>,
    content: Option<String>,
    mtime: Option<i64>,
}

/// Every path under `root` (not `root` itself) with its type, mode, owner,
/// size, device, symlink target, content hash and (non-directory) mtime.
pub fn tree(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    for ent in fs::read_dir(dir).unwrap() {
        let p = ent.unwrap().path();
        let m = fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "other"
        };
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        out.insert(
            rel,
            Node {
                kind,
                mode: m.mode() & 0o7777,
                uid: m.uid(),
                gid: m.gid(),
                size: if ft.is_dir() { 0 } else { m.size() },
                rdev: m.rdev(),
                target: ft.is_symlink().then(|| fs::read_link(&p).unwrap()),
                content: ft.is_file().then(|| sha256(&fs::read(&p).unwrap())),
                mtime: (!ft.is_dir()).then(|| m.mtime()),
            },
        );
        if ft.is_dir() {
            walk(root, &p, out);
        }
    }
}

/// Assert two trees are equal, listing every difference.
pub fn assert_same_tree(ours: &Path, reference: &Path) {
    let a = tree(ours);
    let b = tree(reference);
    let mut diffs = Vec::new();
    for (k, v) in &a {
        match b.get(k) {
            None => diffs.push(format!("only in ours: {k} {v:?}")),
            Some(w) if w != v => diffs.push(format!("{k}:\n   ours: {v:?}\n   umoci: {w:?}")),
            _ => {}
        }
    }
    for (k, v) in &b {
        if !a.contains_key(k) {
            diffs.push(format!("only in umoci's: {k} {v:?}"));
        }
    }
    assert!(diffs.is_empty(), "trees differ:\n{}", diffs.join("\n"));
    assert!(a.len() > 20, "suspiciously small tree: {a:?}");
}

/// Everything under `dir`, for "nothing was left behind" checks.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

// -------------------------------------------------------------- token auth

/// A Docker-Hub-style token server on 127.0.0.1: it hands a JWT (RS256,
/// signed with `openssl`) granting whatever scope is asked for to anyone,
/// or, started with credentials, only to a request that gives them by HTTP
/// basic authentication (others get 401). Stopped on drop.
pub struct TokenServer {
    pub port: u16,
    pub hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Tokens handed out.
    pub granted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    cert: PathBuf,
}

const TOKEN_SERVICE: &str = "jarvis-test-registry";
const TOKEN_ISSUER: &str = "jarvis-test-issuer";

impl TokenServer {
    pub fn start(dir: &Path) -> TokenServer {
        Self::start_checking(dir, None)
    }

    /// A token server that grants tokens only for `USER:PASSWORD`.
    pub fn start_checking(dir: &Path, creds: Option<&str>) -> TokenServer {
        use std::sync::atomic::{AtomicBool, AtomicUsize};
        use std::sync::Arc;
        require_tool("openssl", "openssl");
        let key = dir.join("token.key");
        let cert = dir.join("token.crt");
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=jarvis-test-token",
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                cert.to_str().unwrap(),
            ],
        );
        let der_path = dir.join("token.der");
        run(
            "openssl",
            &[
                "x509",
                "-in",
                cert.to_str().unwrap(),
                "-outform",
                "DER",
                "-out",
                der_path.to_str().unwrap(),
            ],
        );
        let der = fs::read(&der_path).unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let hits = Arc::new(AtomicUsize::new(0));
        let granted = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (h, g, s) = (hits.clone(), granted.clone(), stop.clone());
        let want = creds.map(|c| {
            use base64::Engine;
            format!(
                "basic {}",
                base64::engine::general_purpose::STANDARD.encode(c)
            )
        });
        let thread = std::thread::spawn(move || {
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        if serve_token(stream, &key, &der, want.as_deref()) {
                            g.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        TokenServer {
            port,
            hits,
            granted,
            stop,
            thread: Some(thread),
            cert,
        }
    }

    fn registry_config(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: http://127.0.0.1:{}/token\n    service: {TOKEN_SERVICE}\n    \
             issuer: {TOKEN_ISSUER}\n    rootcertbundle: {}\n",
            self.port,
            self.cert.display()
        )
    }

    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn granted(&self) -> usize {
        self.granted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Answer one token request; whether a token was handed out. With `want`
/// (`basic BASE64`, lowercase scheme), only a request whose Authorization
/// header is that gets one.
fn serve_token(
    mut stream: std::net::TcpStream,
    key: &Path,
    cert_der: &[u8],
    want: Option<&str>,
) -> bool {
    use base64::Engine;
    use std::io::Read;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut req = Vec::new();
    let mut buf = [0u8; 4096];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return false,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    let req = String::from_utf8_lossy(&req);
    if let Some(want) = want {
        let given = req.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("authorization")
                .then(|| value.trim().to_string())
        });
        let ok = given.is_some_and(|g| {
            g.split_once(' ').is_some_and(|(scheme, rest)| {
                format!("{} {}", scheme.to_ascii_lowercase(), rest.trim()) == want
            })
        });
        if !ok {
            let body = r#"{"details":"incorrect username or password"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n\
                 WWW-Authenticate: Basic realm=\"jarvis-test-token\"\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            return false;
        }
    }
    let target = req.split_whitespace().nth(1).unwrap_or("/");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut access = Vec::new();
    for pair in query.split('&') {
        let Some((k, v)) = pair.split_once('=') else {
            continue;
        };
        if k != "scope" {
            continue;
        }
        let scope = percent_decode(v);
        for one in scope.split(' ') {
            let parts: Vec<&str> = one.split(':').collect();
            if parts.len() >= 3 {
                let actions = parts[parts.len() - 1];
                let name = parts[1..parts.len() - 1].join(":");
                access.push(serde_json::json!({
                    "type": parts[0], "name": name, "actions": actions.split(',').collect::<Vec<_>>(),
                }));
            }
        }
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let header = serde_json::json!({
        "typ": "JWT", "alg": "RS256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(cert_der)],
    });
    let claims = serde_json::json!({
        "iss": TOKEN_ISSUER, "sub": "", "aud": TOKEN_SERVICE,
        "exp": now.as_secs() + 300, "nbf": now.as_secs() - 10, "iat": now.as_secs(),
        "jti": format!("{}", now.as_nanos()), "access": access,
    });
    let input = format!(
        "{}.{}",
        b64.encode(serde_json::to_vec(&header).unwrap()),
        b64.encode(serde_json::to_vec(&claims).unwrap())
    );
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-sign", key.to_str().unwrap()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let sig = child.wait_with_output().unwrap().stdout;
    let token = format!("{input}.{}", b64.encode(sig));
    let body =
        serde_json::json!({"token": token, "access_token": token, "expires_in": 300}).to_string();
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    true
}

/// A bcrypt htpasswd file (`htpasswd -B`) with one user, for
/// [`Registry::start_htpasswd`].
pub fn htpasswd(dir: &Path, user: &str, password: &str) -> PathBuf {
    require_tool("htpasswd", "apache2-utils");
    let path = dir.join("htpasswd");
    let line = run("htpasswd", &["-nbB", user, password]);
    fs::write(&path, line.trim_end().to_string() + "\n").unwrap();
    path
}

// ---------------------------------------------------------------------- TLS

/// A private CA and a server certificate for 127.0.0.1 signed by it.
pub struct Tls {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Tls {
    pub fn make(dir: &Path) -> Tls {
        require_tool("openssl", "openssl");
        let p = |n: &str| dir.join(n).to_string_lossy().into_owned();
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=jarvis test CA",
                "-keyout",
                &p("ca.key"),
                "-out",
                &p("ca.crt"),
            ],
        );
        run(
            "openssl",
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                &p("server.key"),
                "-out",
                &p("server.csr"),
            ],
        );
        fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n\
             keyUsage=digitalSignature,keyEncipherment\n",
        )
        .unwrap();
        run(
            "openssl",
            &[
                "x509",
                "-req",
                "-in",
                &p("server.csr"),
                "-CA",
                &p("ca.crt"),
                "-CAkey",
                &p("ca.key"),
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &p("server.ext"),
                "-out",
                &p("server.crt"),
            ],
        );
        Tls {
            ca: dir.join("ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        }
    }
}
