//! jarvis-image against the real thing: `docker-registry` (distribution 2.8)
//! seeded with `skopeo`, `umoci unpack` as the reference for what an image's
//! root filesystem must look like, and overlayfs mounts of the unpacked
//! layers. Runs as root. Needs the Debian packages docker-registry, skopeo,
//! umoci and busybox-static.

mod auth;
mod support;

use std::fs;
use std::future::Future;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jarvis_image::{Error, ImageStore, Phase, Progress, PullOptions};
use support::*;

/// Every test is bounded.
async fn bounded<F: Future<Output = ()>>(f: F) {
    tokio::time::timeout(Duration::from_secs(240), f)
        .await
        .expect("test timed out");
}

/// A layout with the busybox image tagged `gz` (gzip, gzip, plain layers)
/// and `zst` (gzip, zstd, plain: the same tars), a registry holding both
/// as `test/busybox`, and an empty store.
struct Fixture {
    tmp: tempfile::TempDir,
    layout: Layout,
    registry: Registry,
    store: ImageStore,
}

impl Fixture {
    fn new() -> Fixture {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let layout = busybox_layout(&tmp.path().join("layout"));
        let registry = Registry::start();
        registry.seed(&layout.dir, "gz", "test/busybox");
        registry.seed(&layout.dir, "zst", "test/busybox");
        let store = ImageStore::open(tmp.path().join("store")).unwrap();
        Fixture {
            tmp,
            layout,
            registry,
            store,
        }
    }

    fn opts(&self) -> PullOptions {
        PullOptions {
            insecure: vec![self.registry.host()],
            ..Default::default()
        }
    }

    fn reference(&self, tag: &str) -> String {
        format!("{}/test/busybox:{tag}", self.registry.host())
    }

    async fn pull(&self, tag: &str) -> (jarvis_image::StoredImage, Vec<Progress>) {
        let mut events = Vec::new();
        let image = self
            .store
            .pull(&self.reference(tag), &self.opts(), |p| events.push(p))
            .await
            .unwrap_or_else(|e| panic!("pull {tag}: {e}"));
        (image, events)
    }

    fn mount(&self, image: &jarvis_image::StoredImage, name: &str) -> Mounted {
        let target = self.tmp.path().join(name);
        fs::create_dir_all(&target).unwrap();
        self.store.mount_readonly(image, &target).unwrap();
        Mounted(target)
    }

    fn umoci_rootfs(&self, tag: &str) -> PathBuf {
        require_tool("umoci", "umoci");
        let bundle = self.tmp.path().join(format!("umoci-{tag}"));
        run(
            "umoci",
            &[
                "unpack",
                "--image",
                &format!("{}:{tag}", self.layout.dir.display()),
                &bundle.to_string_lossy(),
            ],
        );
        bundle.join("rootfs")
    }

    fn root(&self) -> &Path {
        self.store.root()
    }
}

fn busybox_layout(dir: &Path) -> Layout {
    let [base, upper, top] = busybox_layers();
    let mut layout = Layout::new(dir);
    layout.add_image(
        "gz",
        &[
            (base.clone(), Comp::Gzip),
            (upper.clone(), Comp::Gzip),
            (top.clone(), Comp::None),
        ],
    );
    layout.add_image(
        "zst",
        &[(base, Comp::Gzip), (upper, Comp::Zstd), (top, Comp::None)],
    );
    layout
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    match rustix::fs::lgetxattr(path, name, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Some(buf)
        }
        Err(_) => None,
    }
}

fn is_whiteout(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .map(|m| m.file_type().is_char_device() && m.rdev() == 0)
        .unwrap_or(false)
}

#[tokio::test]
async fn pull_matches_umoci_unpack() {
    bounded(async {
        let f = Fixture::new();
        let reference = f.umoci_rootfs("gz");

        let (gz, events) = f.pull("gz").await;
        assert_eq!(gz.reference, f.reference("gz"));
        assert_eq!(gz.layers.len(), 3);
        let cfg = gz.config.config().as_ref().unwrap();
        assert_eq!(cfg.cmd().as_deref(), Some(&["/bin/sh".to_string()][..]));
        for i in 0..3 {
            let of = |ph: Phase| {
                events
                    .iter()
                    .filter(|e| e.index == i && e.phase == ph)
                    .count()
            };
            assert!(
                events.iter().any(|e| e.index == i
                    && e.phase == Phase::Downloading
                    && e.done == e.total
                    && e.total > 0),
                "layer {i}: no complete download reported: {events:?}"
            );
            assert_eq!(of(Phase::Ready), 1, "{events:?}");
            assert_eq!(of(Phase::Cached), 0, "{events:?}");
            assert!(events.iter().all(|e| e.count == 3 && e.done <= e.total));
        }

        // gzip + zstd + plain layers, both stacked as overlay lowerdirs, give
        // exactly what umoci unpacks.
        let (zst, _) = f.pull("zst").await;
        for (image, name) in [(&gz, "mnt-gz"), (&zst, "mnt-zst")] {
            let m = f.mount(image, name);
            assert_same_tree(&m.0, &reference);
            // The whiteout deleted etc/motd; the opaque etc/conf.d holds only
            // the new layer's content.
            assert!(!m.0.join("etc/motd").exists());
            assert!(!m.0.join("usr/share/doc/tagged").exists());
            assert_eq!(entries(&m.0.join("etc/conf.d")), ["new.conf"]);
            assert_eq!(
                fs::read(m.0.join("etc/conf.d/new.conf")).unwrap(),
                b"new=2\n"
            );
            assert!(fs::read_to_string(m.0.join("etc/passwd"))
                .unwrap()
                .contains("user:x:1000"));
            assert_eq!(
                fs::read(m.0.join("opt/app/data.txt")).unwrap(),
                b"top layer\n"
            );
            drop(m);
        }

        // The layer directories are in overlayfs form.
        let [base, upper, _top] = [&gz.layers[0], &gz.layers[1], &gz.layers[2]];
        assert!(is_whiteout(&upper.join("etc/motd")));
        assert!(is_whiteout(&upper.join("usr/share/doc/tagged")));
        assert_eq!(
            xattr(&upper.join("etc/conf.d"), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..])
        );
        assert!(!upper.join("etc/conf.d/.wh..wh..opq").exists());
        assert_eq!(
            xattr(&base.join("etc/conf.d"), "trusted.overlay.opaque"),
            None
        );
        assert_eq!(
            xattr(&base.join("usr/share/doc/tagged"), "user.jarvis").as_deref(),
            Some(&b"yes"[..])
        );
        let a = fs::metadata(base.join("bin/busybox")).unwrap();
        let b = fs::metadata(base.join("bin/busybox.hard")).unwrap();
        assert_eq!((a.ino(), a.nlink()), (b.ino(), 2), "hard link kept");
        assert_eq!(
            fs::read_link(base.join("etc/localtime")).unwrap(),
            Path::new("/usr/share/zoneinfo/UTC")
        );
        assert_eq!(a.mtime(), MTIME as i64);
        // The zstd layer is a different blob with the same content.
        assert_ne!(gz.layers[1], zst.layers[1]);
        assert_eq!(gz.layers[0], zst.layers[0]);
        assert_eq!(tree(&gz.layers[1]), tree(&zst.layers[1]));

        // list/get agree with the pulls.
        let list = f.store.list().unwrap();
        let names: Vec<&str> = list.iter().map(|s| s.reference.as_str()).collect();
        assert_eq!(names, [f.reference("gz"), f.reference("zst")]);
        assert_eq!(list[0].digest, gz.manifest_digest);
        assert_eq!(list[0].created.as_deref(), Some("2024-12-01T00:00:00Z"));
        assert!(list[0].size > 500_000, "{list:?}");
        let again = ImageStore::open(f.root())
            .unwrap()
            .get(&f.reference("gz"))
            .unwrap()
            .unwrap();
        assert_eq!(again.layers, gz.layers);
        assert_eq!(again.manifest_digest, gz.manifest_digest);
        assert!(f
            .store
            .get(&format!("{}/test/busybox:nope", f.registry.host()))
            .unwrap()
            .is_none());
        assert!(entries(&f.root().join("tmp")).is_empty());
    })
    .await;
}

#[tokio::test]
async fn second_pull_reuses_blobs_and_layers() {
    bounded(async {
        let f = Fixture::new();
        let (first, _) = f.pull("gz").await;
        let gets = f.registry.blob_gets();
        assert_eq!(gets, 4, "config and three layers");
        let stamp = |p: &Path| {
            let m = fs::metadata(p).unwrap();
            (m.ino(), m.mtime(), m.mtime_nsec())
        };
        let before: Vec<_> = first.layers.iter().map(|l| stamp(l)).collect();

        // Same tag again: nothing downloaded, nothing unpacked.
        let (again, events) = f.pull("gz").await;
        assert_eq!(f.registry.blob_gets(), gets, "no blob downloaded again");
        assert_eq!(again.layers, first.layers);
        assert_eq!(
            again.layers.iter().map(|l| stamp(l)).collect::<Vec<_>>(),
            before
        );
        assert_eq!(events.len(), 3);
        assert!(
            events.iter().all(|e| e.phase == Phase::Cached),
            "{events:?}"
        );

        // Another tag sharing the base and top layers and the config: only the
        // zstd layer is fetched.
        let (zst, events) = f.pull("zst").await;
        assert_eq!(f.registry.blob_gets(), gets + 1, "only the zstd layer");
        let phases: Vec<(usize, Phase)> = events
            .iter()
            .filter(|e| e.phase != Phase::Downloading)
            .map(|e| (e.index, e.phase))
            .collect();
        assert_eq!(
            phases,
            [
                (0, Phase::Cached),
                (1, Phase::Unpacking),
                (2, Phase::Cached),
                (1, Phase::Ready)
            ]
        );
        assert_eq!(zst.layers[0], first.layers[0]);
        assert_eq!(stamp(&zst.layers[0]), before[0]);

        // A fresh store object on the same directory sees it all.
        let other = ImageStore::open(f.root()).unwrap();
        assert_eq!(other.list().unwrap().len(), 2);
    })
    .await;
}

#[tokio::test]
async fn remove_collects_garbage() {
    bounded(async {
        let f = Fixture::new();
        let (gz, _) = f.pull("gz").await;
        let (zst, _) = f.pull("zst").await;
        let blobs = f.root().join("blobs/sha256");
        let layers = f.root().join("layers/sha256");
        // 2 manifests, 1 shared config, 4 distinct layers.
        assert_eq!(entries(&blobs).len(), 7);
        assert_eq!(entries(&layers).len(), 4);

        // Spellings that canonicalize to the same reference work.
        f.store.remove(&f.reference("gz")).unwrap();
        assert!(f.store.get(&f.reference("gz")).unwrap().is_none());
        assert!(f.store.get(&f.reference("zst")).unwrap().is_some());
        assert!(!gz.layers[1].exists(), "the gzip-only layer is collected");
        assert!(
            gz.layers[0].exists() && gz.layers[2].exists(),
            "shared layers stay"
        );
        assert!(!f.store.blob_path(&gz.manifest_digest).unwrap().exists());
        assert_eq!(entries(&blobs).len(), 5);
        assert_eq!(entries(&layers).len(), 3);

        f.store.remove(&f.reference("zst")).unwrap();
        assert!(entries(&blobs).is_empty(), "{:?}", entries(&blobs));
        assert!(entries(&layers).is_empty());
        assert!(entries(&f.root().join("tmp")).is_empty());
        assert!(f.store.list().unwrap().is_empty());
        assert!(!zst.layers[0].exists());

        match f.store.remove(&f.reference("zst")) {
            Err(Error::NotFound(r)) => assert_eq!(r, f.reference("zst")),
            other => panic!("{other:?}"),
        }
        // And it can all come back.
        let (back, _) = f.pull("gz").await;
        assert!(back.layers.iter().all(|l| l.is_dir()));
    })
    .await;
}

#[tokio::test]
async fn digest_mismatch_is_rejected() {
    bounded(async {
        let f = Fixture::new();
        // Corrupt the zstd layer where the registry keeps it: same size,
        // different bytes.
        let zst_manifest = f.layout.manifest("zst");
        let layer = zst_manifest["layers"][1]["digest"]
            .as_str()
            .unwrap()
            .to_string();
        let data = f.registry.blob_data(&layer);
        let mut bytes = fs::read(&data).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        fs::write(&data, &bytes).unwrap();

        let err = f
            .store
            .pull(&f.reference("zst"), &f.opts(), |_| {})
            .await
            .unwrap_err();
        match &err {
            Error::DigestMismatch { what, expected, .. } => {
                assert!(what.contains(&layer), "{err}");
                assert_eq!(expected, &layer);
            }
            other => panic!("expected a digest mismatch, got {other}"),
        }
        assert!(
            !f.store.blob_path(&layer).unwrap().exists(),
            "the bad blob never entered the store"
        );
        assert!(!f.store.layer_path(&layer).unwrap().exists());
        assert!(f.store.get(&f.reference("zst")).unwrap().is_none());
        assert!(
            entries(&f.root().join("tmp")).is_empty(),
            "no partial download left"
        );
        // What did arrive is garbage until something uses it.
        assert!(f.store.gc().unwrap() > 0);
        assert!(entries(&f.root().join("layers/sha256")).is_empty());

        // A pinned digest that the registry's manifest does not hash to.
        let good = f.pull("gz").await.0.manifest_digest;
        let pinned = format!("{}/test/busybox@{good}", f.registry.host());
        f.store.pull(&pinned, &f.opts(), |_| {}).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn plain_http_registry_needs_insecure() {
    bounded(async {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let layout = busybox_layout(&tmp.path().join("layout"));
        let registry = Registry::start();
        registry.seed(&layout.dir, "gz", "test/busybox");
        let store = ImageStore::open(tmp.path().join("store")).unwrap();
        let reference = format!("{}/test/busybox:gz", registry.host());

        let err = store
            .pull(&reference, &PullOptions::default(), |_| {})
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Registry { .. }), "{msg}");
        assert!(
            msg.contains(&format!("add --insecure-registry {}", registry.host())),
            "{msg}"
        );

        let opts = PullOptions {
            insecure: vec![registry.host()],
            ..Default::default()
        };
        let err = store
            .pull(
                &format!("{}/test/busybox:missing", registry.host()),
                &opts,
                |_| {},
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not found"), "{err}");

        // Nothing listens here any more once the guard is gone.
        let host = registry.host();
        drop(registry);
        let err = store
            .pull(
                &format!("{host}/test/busybox:gz"),
                &PullOptions {
                    insecure: vec![host.clone()],
                    ..Default::default()
                },
                |_| {},
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot connect"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn import_from_layout_dir_and_tar() {
    bounded(async {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let layout = busybox_layout(&tmp.path().join("layout"));
        let store = ImageStore::open(tmp.path().join("store")).unwrap();

        // From the directory, chosen by its ref.name annotation (the tag part).
        let gz = store.import(&layout.dir, "example.com/busybox:gz").unwrap();
        assert_eq!(gz.reference, "example.com/busybox:gz");
        assert_eq!(gz.manifest_digest, layout.manifest_digest("gz"));

        // From a tar of it, and a compressed tar.
        let tar = tmp.path().join("layout.tar");
        layout.to_tar(&tar);
        let zst = store.import(&tar, "example.com/busybox:zst").unwrap();
        assert_eq!(zst.manifest_digest, layout.manifest_digest("zst"));
        let tgz = tmp.path().join("layout.tar.gz");
        fs::write(&tgz, compress(&fs::read(&tar).unwrap(), Comp::Gzip).0).unwrap();
        let again = store.import(&tgz, "zst").unwrap();
        assert_eq!(again.reference, "docker.io/library/zst:latest");
        assert_eq!(again.layers, zst.layers);

        let a = Mounted(tmp.path().join("a"));
        let b = Mounted(tmp.path().join("b"));
        fs::create_dir_all(&a.0).unwrap();
        fs::create_dir_all(&b.0).unwrap();
        store.mount_readonly(&gz, &a.0).unwrap();
        store.mount_readonly(&zst, &b.0).unwrap();
        assert_eq!(tree(&a.0), tree(&b.0));
        assert_eq!(entries(&a.0.join("etc/conf.d")), ["new.conf"]);
        drop((a, b));

        // oci-layout: references go through pull.
        let r = format!("oci-layout:{}:gz", layout.dir.display());
        let via_pull = store
            .pull(&r, &PullOptions::default(), |_| {})
            .await
            .unwrap();
        assert_eq!(via_pull.reference, r);
        assert_eq!(via_pull.layers, gz.layers);

        // Two manifests and no matching name: an error that lists them.
        let err = store
            .import(&layout.dir, "example.com/busybox:other")
            .unwrap_err()
            .to_string();
        assert!(err.contains("gz, zst"), "{err}");
        // One manifest: taken whatever the tag.
        let single_dir = tmp.path().join("single");
        let mut single = Layout::new(&single_dir);
        single.add_image("whatever", &[(busybox_layers()[2].clone(), Comp::None)]);
        let one = store.import(&single_dir, "local/one:1").unwrap();
        assert_eq!(one.layers.len(), 1);
        let m = Mounted(tmp.path().join("one"));
        fs::create_dir_all(&m.0).unwrap();
        store.mount_readonly(&one, &m.0).unwrap();
        assert_eq!(
            fs::read(m.0.join("opt/app/data.txt")).unwrap(),
            b"top layer\n"
        );
        drop(m);

        // A corrupted blob in a layout is refused and not stored.
        let bad_dir = tmp.path().join("bad");
        let mut bad = Layout::new(&bad_dir);
        let mut t = Tar::new();
        t.file("hello", b"hello\n", 0o644);
        let md = bad.add_image("bad", &[(t.finish(), Comp::Gzip)]);
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(bad.blob_path(&md)).unwrap()).unwrap();
        let layer = manifest["layers"][0]["digest"].as_str().unwrap();
        let mut bytes = fs::read(bad.blob_path(layer)).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(bad.blob_path(layer), bytes).unwrap();
        match store.import(&bad_dir, "bad") {
            Err(Error::DigestMismatch { expected, .. }) => assert_eq!(expected, layer),
            other => panic!("expected a digest mismatch, got {other:?}"),
        }
        assert!(!store.blob_path(layer).unwrap().exists());
        assert!(entries(&store.root().join("tmp")).is_empty());

        // Not a layout at all.
        let err = store.import(tmp.path(), "x").unwrap_err().to_string();
        assert!(err.contains("not an OCI image layout"), "{err}");
    })
    .await;
}

/// Import a one-layer image made of `tar` and expect it refused for `entry`.
fn expect_refused(store: &ImageStore, dir: &Path, tar: Vec<u8>, entry: &str) -> String {
    let mut layout = Layout::new(dir);
    layout.add_image("evil", &[(tar, Comp::Gzip)]);
    match store.import(dir, "evil") {
        Err(e @ Error::UnsafeEntry { .. }) => {
            let Error::UnsafeEntry { entry: got, .. } = &e else {
                unreachable!()
            };
            assert_eq!(got, entry, "{e}");
            let msg = e.to_string();
            assert!(msg.contains(entry), "{msg}");
            msg
        }
        other => panic!("{entry}: expected refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn malicious_layers_are_rejected() {
    bounded(async {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let store = ImageStore::open(tmp.path().join("store")).unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let passwd_links = fs::metadata("/etc/passwd").unwrap().nlink();

        // `..` escapes the layer directory.
        let mut t = Tar::new();
        t.file("ok", b"fine", 0o644)
            .file("../escape", b"gotcha", 0o644);
        let msg = expect_refused(&store, &tmp.path().join("l1"), t.finish(), "../escape");
        assert!(msg.contains(".."), "{msg}");
        let mut t = Tar::new();
        t.dir("a/", 0o755).file("a/../../escape2", b"gotcha", 0o644);
        expect_refused(
            &store,
            &tmp.path().join("l1b"),
            t.finish(),
            "a/../../escape2",
        );

        // Absolute paths.
        let abs = outside.join("abs-file");
        let mut t = Tar::new();
        t.file(abs.to_str().unwrap(), b"gotcha", 0o644);
        let msg = expect_refused(
            &store,
            &tmp.path().join("l2"),
            t.finish(),
            abs.to_str().unwrap(),
        );
        assert!(msg.contains("absolute"), "{msg}");

        // A symlink to outside, then a write through it.
        let mut t = Tar::new();
        t.symlink("evil", outside.to_str().unwrap())
            .file("evil/file", b"gotcha", 0o644);
        let msg = expect_refused(&store, &tmp.path().join("l3"), t.finish(), "evil/file");
        assert!(msg.contains("symlink"), "{msg}");
        let mut t = Tar::new();
        t.symlink("up", "../../../../../../..")
            .dir("up/tmp/", 0o755);
        expect_refused(&store, &tmp.path().join("l3b"), t.finish(), "up/tmp/");
        let mut t = Tar::new();
        t.dir("d/", 0o755)
            .symlink("d/tmp", "/tmp")
            .file("d/tmp/x", b"gotcha", 0o644);
        expect_refused(&store, &tmp.path().join("l3c"), t.finish(), "d/tmp/x");

        // Hard links to files outside the layer.
        let mut t = Tar::new();
        t.hardlink("passwd", "/etc/passwd");
        let msg = expect_refused(&store, &tmp.path().join("l4"), t.finish(), "passwd");
        assert!(msg.contains("/etc/passwd"), "{msg}");
        let mut t = Tar::new();
        t.hardlink("passwd", "../../../../../../../etc/passwd");
        expect_refused(&store, &tmp.path().join("l4b"), t.finish(), "passwd");
        let mut t = Tar::new();
        t.dir("etc/", 0o755).hardlink("etc/shadow", "etc/missing");
        expect_refused(&store, &tmp.path().join("l4c"), t.finish(), "etc/shadow");

        // Nothing landed outside, nothing half-made stayed in the store.
        assert!(entries(&outside).is_empty(), "{:?}", entries(&outside));
        assert_eq!(fs::metadata("/etc/passwd").unwrap().nlink(), passwd_links);
        assert!(!store.root().join("tmp/escape").exists());
        assert!(
            !store.root().join("escape2").exists() && !store.root().join("tmp/escape2").exists()
        );
        assert!(
            entries(&store.root().join("tmp")).is_empty(),
            "{:?}",
            entries(&store.root().join("tmp"))
        );
        assert!(entries(&store.root().join("layers/sha256")).is_empty());
        assert!(store.list().unwrap().is_empty());

        // Absolute symlink *targets* are fine, and never followed.
        let dir = tmp.path().join("ok");
        let mut layout = Layout::new(&dir);
        let mut t = Tar::new();
        t.symlink("etc", outside.to_str().unwrap())
            .symlink("root-link", "/");
        layout.add_image("ok", &[(t.finish(), Comp::Zstd)]);
        let img = store.import(&dir, "ok").unwrap();
        assert_eq!(fs::read_link(img.layers[0].join("etc")).unwrap(), outside);
        assert!(entries(&outside).is_empty());
    })
    .await;
}

#[tokio::test]
async fn token_auth_like_docker_hub() {
    bounded(async {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let layout = busybox_layout(&tmp.path().join("layout"));
        let tokens = TokenServer::start(tmp.path());
        let registry = Registry::start_with(Some(&tokens), None);
        registry.seed(&layout.dir, "gz", "test/busybox");
        let before = tokens.hits();
        let store = ImageStore::open(tmp.path().join("store")).unwrap();
        let opts = PullOptions {
            insecure: vec![registry.host()],
            ..Default::default()
        };
        let image = store
            .pull(
                &format!("{}/test/busybox:gz", registry.host()),
                &opts,
                |_| {},
            )
            .await
            .unwrap();
        assert!(tokens.hits() > before, "the pull fetched a token");
        assert_eq!(image.layers.len(), 3);
        assert!(image
            .layers
            .iter()
            .all(|l| l.join("bin").is_dir() || l.join("etc").is_dir() || l.join("opt").is_dir()));
    })
    .await;
}

#[tokio::test]
async fn https_registry_with_private_ca() {
    bounded(async {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let layout = busybox_layout(&tmp.path().join("layout"));
        let tls = Tls::make(tmp.path());
        let registry = Registry::start_with(None, Some(&tls));
        // skopeo pushes over HTTPS without verification; we verify.
        registry.seed(&layout.dir, "gz", "test/busybox");
        let store = ImageStore::open(tmp.path().join("store")).unwrap();
        let reference = format!("{}/test/busybox:gz", registry.host());

        let err = store
            .pull(&reference, &PullOptions::default(), |_| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("not trusted"), "{err}");

        let opts = PullOptions {
            ca_certificates: vec![tls.ca.clone()],
            ..Default::default()
        };
        let image = store.pull(&reference, &opts, |_| {}).await.unwrap();
        assert_eq!(image.layers.len(), 3);

        // Asking for plain HTTP from an HTTPS registry fails, and says so.
        let opts = PullOptions {
            insecure: vec![registry.host()],
            ..Default::default()
        };
        let err = store
            .pull(
                &format!("{}/test/busybox:other", registry.host()),
                &opts,
                |_| {},
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("it speaks HTTPS"), "{err}");
    })
    .await;
}

#[tokio::test]
async fn unpack_edge_cases() {
    bounded(async {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let mut t = Tar::new();
        t.dir("etc/", 0o755)
            .file("etc/a", b"a", 0o644)
            // A directory replaced by a file, and a file by a directory.
            .dir("x/", 0o755)
            .file("x/inner", b"gone", 0o644)
            .file("x", b"now a file", 0o600)
            .file("y", b"was a file", 0o644)
            .dir("y/", 0o711)
            // A whiteout of a whole directory, setuid kept across chown.
            .file(".wh.var", b"", 0o644)
            .file_owned("suid", b"#!/bin/sh\n", 0o4750, 1000, 100);
        let mut tar = t.finish();
        // A long name (GNU long-name record) through the tar crate's own API.
        let long = format!("deep/{}/file.txt", "d".repeat(120));
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(4);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(MTIME);
        b.append_data(&mut h, &long, &b"long"[..]).unwrap();
        let extra = b.into_inner().unwrap();
        // Concatenate: drop the first archive's end-of-archive blocks.
        tar.truncate(tar.len() - 1024);
        tar.extend_from_slice(&extra);

        let blob = tmp.path().join("layer.tar.zst");
        fs::write(&blob, compress(&tar, Comp::Zstd).0).unwrap();
        let dest = tmp.path().join("out");
        fs::create_dir(&dest).unwrap();
        jarvis_image::unpack::unpack_layer(&blob, &dest, "edge").unwrap();

        assert_eq!(fs::read(dest.join("x")).unwrap(), b"now a file");
        let y = fs::symlink_metadata(dest.join("y")).unwrap();
        assert!(y.is_dir() && y.mode() & 0o7777 == 0o711);
        assert!(is_whiteout(&dest.join("var")));
        let s = fs::metadata(dest.join("suid")).unwrap();
        assert_eq!((s.mode() & 0o7777, s.uid(), s.gid()), (0o4750, 1000, 100));
        assert_eq!(fs::read(dest.join(&long)).unwrap(), b"long");
        // Directory times are set after their contents.
        assert_eq!(
            fs::metadata(dest.join("etc")).unwrap().mtime(),
            MTIME as i64
        );
        assert_eq!(fs::metadata(&dest).unwrap().mode() & 0o7777, 0o755);

        // A truncated archive is an error, not a silently short layer.
        let cut = tmp.path().join("cut.tar.gz");
        let gz = compress(&tar, Comp::Gzip).0;
        fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
        let dest2 = tmp.path().join("out2");
        fs::create_dir(&dest2).unwrap();
        let err = jarvis_image::unpack::unpack_layer(&cut, &dest2, "cut").unwrap_err();
        assert!(matches!(err, Error::Layer { .. }), "{err}");
    })
    .await;
}
