//! Pulls with credentials from an auth file, against a registry that checks
//! them: HTTP basic authentication (htpasswd) and the bearer-token flow (a
//! token server that wants the credentials by basic authentication).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use jarvis_image::{AuthFile, Error, ImageStore, PullOptions};

use crate::support::*;
use crate::{bounded, busybox_layout};

const USER: &str = "jarvis";
const PASSWORD: &str = "pa:ss-w0rd";
const WRONG: &str = "not-the-PASSWORD";

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Write an auth file (mode 0600, as `podman login` leaves it).
fn write_auth(path: &Path, json: &serde_json::Value) {
    fs::write(path, serde_json::to_vec_pretty(json).unwrap()).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// `{"auths": {key: {"auth": base64(user:password)}}}`
fn auth_entry(key: &str, user: &str, password: &str) -> serde_json::Value {
    serde_json::json!({"auths": {key: {"auth": b64(&format!("{user}:{password}"))}}})
}

/// Pull `reference` with `opts`; the error if it fails.
async fn pull_err(store: &ImageStore, reference: &str, opts: &PullOptions) -> Error {
    match store.pull(reference, opts, |_| {}).await {
        Ok(_) => panic!("pulling {reference} succeeded with {opts:?}"),
        Err(e) => e,
    }
}

/// An error that is a refusal by `registry`, says `want`, and quotes no
/// credential.
fn assert_refused(e: &Error, registry: &str, want: &str) {
    let msg = e.to_string();
    assert!(matches!(e, Error::Auth { .. }), "not Error::Auth: {msg}");
    assert!(msg.starts_with(&format!("registry {registry} ")), "{msg}");
    assert!(msg.contains(want), "expected {want:?} in: {msg}");
    for secret in [
        PASSWORD.to_string(),
        WRONG.to_string(),
        b64(&format!("{USER}:{PASSWORD}")),
        b64(&format!("{USER}:{WRONG}")),
    ] {
        assert!(
            !msg.contains(&secret),
            "the error quotes a credential: {msg}"
        );
        assert!(
            !format!("{e:?}").contains(&secret),
            "Debug quotes one: {e:?}"
        );
    }
}

/// The whole story against one registry that wants `USER:PASSWORD`: no
/// auth file, a missing default file, no entry, a wrong password, a
/// world-readable file, then the right credentials (both spellings) in the
/// same file, edited between pulls.
async fn pulls_need_the_right_credentials(tmp: &Path, registry: &Registry) {
    let host = registry.host();
    let reference = format!("{host}/test/busybox:gz");
    let store = ImageStore::open(tmp.join("store")).unwrap();
    let path = tmp.join("auth.json");
    let opts = |auth_file: Option<AuthFile>| PullOptions {
        insecure: vec![host.clone()],
        auth_file,
        ..Default::default()
    };
    let given = opts(Some(AuthFile::given(&path)));

    // No auth file configured at all.
    let e = pull_err(&store, &reference, &opts(None)).await;
    assert_refused(
        &e,
        &host,
        "needs credentials and no auth file is configured (401 Unauthorized)",
    );

    // The default file is missing: anonymous, refused.
    let missing = opts(Some(AuthFile {
        path: path.clone(),
        required: false,
    }));
    let e = pull_err(&store, &reference, &missing).await;
    assert_refused(
        &e,
        &host,
        &format!(
            "needs credentials and {} does not exist (401 Unauthorized)",
            path.display()
        ),
    );
    // An explicitly given file that is missing is an error of its own.
    let e = pull_err(&store, &reference, &given).await;
    assert!(
        matches!(e, Error::AuthFile { .. }) && e.to_string().contains("does not exist"),
        "{e}"
    );

    // Credentials for another registry only.
    write_auth(&path, &auth_entry("registry.example:5000", USER, PASSWORD));
    let e = pull_err(&store, &reference, &given).await;
    assert_refused(
        &e,
        &host,
        &format!(
            "needs credentials and {} has none for it (401 Unauthorized)",
            path.display()
        ),
    );

    // The wrong password.
    write_auth(&path, &auth_entry(&host, USER, WRONG));
    let e = pull_err(&store, &reference, &given).await;
    assert_refused(
        &e,
        &host,
        &format!(
            "registry {host} refused the credentials from {} (401 Unauthorized)",
            path.display()
        ),
    );

    // The right ones, but in a file everyone may read: refused before any
    // request.
    write_auth(&path, &auth_entry(&host, USER, PASSWORD));
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let e = pull_err(&store, &reference, &given).await;
    let msg = e.to_string();
    assert!(matches!(e, Error::AuthFile { .. }), "{msg}");
    assert!(msg.contains("readable by everyone (mode 0644)"), "{msg}");

    // Mode 0600: the same file, read again by this pull, now works.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    let image = store
        .pull(&reference, &given, |_| {})
        .await
        .unwrap_or_else(|e| panic!("pull with the right credentials: {e}"));
    assert_eq!(image.layers.len(), 3);
    assert!(image.layers[0].join("bin/busybox").is_file());

    // docker's spelling: "username"/"password" under "https://HOST/v2/";
    // the optional default file works as well as a given one. The `zst`
    // tag has a layer this store lacks, so a blob is fetched with them too.
    write_auth(
        &path,
        &serde_json::json!({"auths": {
            format!("https://{host}/v2/"): {"username": USER, "password": PASSWORD},
            "registry.example:5000": {"auth": b64("someone:else")},
        }}),
    );
    let image = store
        .pull(&format!("{host}/test/busybox:zst"), &missing, |_| {})
        .await
        .unwrap_or_else(|e| panic!("pull with username/password: {e}"));
    assert_eq!(image.layers.len(), 3);
}

/// A registry seeded with the busybox image, `gz` and `zst`, as `USER`.
fn seeded(tmp: &Path, registry: &Registry) {
    let layout = busybox_layout(&tmp.join("layout"));
    let creds = format!("{USER}:{PASSWORD}");
    registry.seed_as(&layout.dir, "gz", "test/busybox", Some(&creds));
    registry.seed_as(&layout.dir, "zst", "test/busybox", Some(&creds));
}

#[tokio::test]
async fn basic_auth_registry_takes_credentials_from_the_auth_file() {
    bounded(async {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let registry = Registry::start_htpasswd(&htpasswd(tmp.path(), USER, PASSWORD));
        seeded(tmp.path(), &registry);
        pulls_need_the_right_credentials(tmp.path(), &registry).await;
    })
    .await;
}

#[tokio::test]
async fn token_auth_registry_takes_credentials_from_the_auth_file() {
    bounded(async {
        require_root();
        let tmp = tempfile::tempdir().unwrap();
        let tokens = TokenServer::start_checking(tmp.path(), Some(&format!("{USER}:{PASSWORD}")));
        let registry = Registry::start_with(Some(&tokens), None);
        seeded(tmp.path(), &registry);
        let (hits, granted) = (tokens.hits(), tokens.granted());
        pulls_need_the_right_credentials(tmp.path(), &registry).await;
        let (asked, given) = (tokens.hits() - hits, tokens.granted() - granted);
        assert!(
            asked > given,
            "token requests without or with wrong credentials were refused ({asked} requests, {given} granted)"
        );
        assert!(
            tokens.granted() > granted,
            "the right credentials got a token from the token server"
        );
    })
    .await;
}
