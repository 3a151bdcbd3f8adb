//! Pulling from a registry with `oci-client`.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{DigestError, OciDistributionError, OciErrorCode};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::Client;
use oci_spec::image::Descriptor;

use crate::auth::{AuthFile, Lookup};
use crate::error::{Error, IoContext, Result};
use crate::manifest::{self, Parsed, ACCEPTED_MANIFESTS};
use crate::reference::{parse_reference, Reference};
use crate::store::{now_secs, sha256_of, ImageStore, RefRecord, StoredImage};

const ATTEMPTS: usize = 3;

/// Options for [`ImageStore::pull`].
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// Registries (`HOST:PORT`, exactly as in the reference) reached over
    /// plain HTTP instead of HTTPS: jarvisd's `--insecure-registry`.
    pub insecure: Vec<String>,
    /// PEM files of extra CA certificates to trust for HTTPS registries (a
    /// home registry with its own CA), on top of the system's roots.
    pub ca_certificates: Vec<std::path::PathBuf>,
    /// Registry credentials: an auth file (`containers-auth.json` /
    /// docker's `config.json`), read at each pull; see [`crate::auth`].
    /// `None`: every pull is anonymous. jarvisd's `--auth-file`, or
    /// [`AuthFile::default`] ([`crate::DEFAULT_AUTH_FILE`], may be missing).
    pub auth_file: Option<AuthFile>,
}

/// Where a layer is in a pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Already in the store, unpacked: nothing to download.
    Cached,
    /// Bytes are arriving (`done` of `total`).
    Downloading,
    /// Downloaded and verified; being unpacked.
    Unpacking,
    /// Unpacked and ready.
    Ready,
}

/// A progress report for one layer of a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The layer's digest.
    pub layer: String,
    /// Its position in the manifest, from 0 (bottom).
    pub index: usize,
    /// How many layers the image has.
    pub count: usize,
    /// Bytes downloaded so far.
    pub done: u64,
    /// The layer's (compressed) size.
    pub total: u64,
    /// What is happening to it.
    pub phase: Phase,
}

/// Install `ring` as rustls's process-wide default crypto provider, if no
/// provider is installed yet (idempotent, cheap).
///
/// This crate builds reqwest with `rustls-no-provider` (no aws-lc build), so
/// every reqwest client in the process that uses TLS (cargo features unify
/// across the workspace) needs a default provider. [`ImageStore::pull`] calls
/// this itself; call it at startup if the process builds other reqwest
/// clients before its first pull.
pub fn install_crypto_provider() {
    // Err means one is installed already: fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl ImageStore {
    /// Pull `reference` into the store (or, for `oci-layout:DIR[:TAG]`,
    /// import it from that layout), and return it ready to mount.
    ///
    /// - Credentials come from `opts.auth_file`, read now (so an edit
    ///   applies to the next pull), for the reference's registry and
    ///   repository; without an entry there the pull is anonymous. HTTP basic
    ///   authentication and the bearer-token flow (`WWW-Authenticate: Bearer
    ///   realm=...`, the credentials going to the token server) are both
    ///   done for you. A refusal (401, 403) is [`Error::Auth`], naming the
    ///   registry and the file the credentials came from, or saying there
    ///   were none for it; a bad auth file is [`Error::AuthFile`].
    /// - An index (manifest list) is resolved to the host's platform
    ///   (linux/amd64 here).
    /// - Every blob is hashed with sha256 as it arrives and enters the store
    ///   only if it matches its descriptor (digest and size).
    /// - Blobs and unpacked layers already in the store are not downloaded
    ///   again; the manifest always is (a tag may have moved).
    /// - `progress` hears about each layer: [`Phase::Cached`], or
    ///   [`Phase::Downloading`] as bytes arrive, then [`Phase::Unpacking`] and
    ///   [`Phase::Ready`].
    ///
    /// Unpacking, locking, fsync and the store's bookkeeping run on tokio's
    /// blocking pool (`spawn_blocking`), unpacking overlapping the next
    /// layer's download; what stays on the calling task is network IO plus
    /// short filesystem calls (stats, and writing each received chunk to a
    /// temporary file). So this is fine to await on a current-thread runtime;
    /// it must run inside a tokio runtime. The future is `Send` when
    /// `progress` is, so it can be spawned. Dropping it mid-pull is safe:
    /// partial downloads are deleted, and unpacks already started finish
    /// under their own lock.
    pub async fn pull(
        &self,
        reference: &str,
        opts: &PullOptions,
        mut progress: impl FnMut(Progress),
    ) -> Result<StoredImage> {
        let parsed = parse_reference(reference)?;
        let name = parsed.to_string();
        let r = match parsed {
            Reference::OciLayout { .. } => {
                let store = self.clone();
                return blocking(move || store.import_reference(&parsed)).await;
            }
            Reference::Registry(r) => r,
        };
        install_crypto_provider();
        let registry = r.resolve_registry().to_string();
        let mut extra_root_certificates = Vec::new();
        for p in &opts.ca_certificates {
            extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data: std::fs::read(p).ctx("read CA certificate", p)?,
            });
        }
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(opts.insecure.clone()),
            extra_root_certificates,
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(120)),
            ..Default::default()
        };
        let client = Client::try_from(config).map_err(|e| Error::Registry {
            registry: registry.clone(),
            message: format!("cannot set up an HTTP client: {}", chain(&e)),
        })?;
        let (auth, source) = credentials(opts.auth_file.clone(), &r).await?;
        if let Source::Found { path, key } = &source {
            tracing::debug!(
                registry = %registry,
                auth_file = %path.display(),
                key = %key,
                "pulling with credentials from the auth file"
            );
        }
        let ctx = Ctx {
            client,
            registry,
            insecure: opts.insecure.iter().any(|h| *h == r.resolve_registry()),
            reference: r,
            auth,
            source,
        };
        for _ in 0..ATTEMPTS {
            let record = {
                let store = self.clone();
                let lock = blocking(move || store.lock_shared()).await?;
                let record = self.fetch(&ctx, &mut progress).await;
                drop(lock);
                record?
            };
            let (store, n, rec) = (self.clone(), name.clone(), record.clone());
            if blocking(move || store.commit(&n, &rec)).await? {
                let (store, n) = (self.clone(), name.clone());
                return blocking(move || store.stored_image(&n, &record)).await;
            }
        }
        Err(Error::Store {
            root: self.root().to_path_buf(),
            message: format!("{name}: its blobs kept being removed by concurrent removals"),
        })
    }

    async fn fetch(&self, ctx: &Ctx, progress: &mut impl FnMut(Progress)) -> Result<RefRecord> {
        let r = &ctx.reference;
        ctx.client
            .store_auth_if_needed(r.resolve_registry(), &ctx.auth)
            .await;
        let what = format!("manifest of {r}");
        let (bytes, _) = ctx
            .client
            .pull_manifest_raw(r, &ctx.auth, ACCEPTED_MANIFESTS)
            .await
            .map_err(|e| ctx.error(&what, e))?;
        let digest = sha256_of(&bytes);
        if let Some(pinned) = r.digest() {
            if pinned != digest {
                return Err(Error::DigestMismatch {
                    what,
                    expected: pinned.to_string(),
                    actual: digest,
                });
            }
        }
        let (bytes, digest, index) = match manifest::parse(&bytes, &what)? {
            Parsed::Manifest(_) => (bytes, digest, None),
            Parsed::Index(index) => {
                let what = format!("index {digest} of {r}");
                let chosen = manifest::choose_platform(&index, &what)?;
                let d = manifest::digest_of(chosen, &what)?;
                let (m, _) = ctx
                    .client
                    .pull_manifest_raw(
                        &r.clone_with_digest(d.clone()),
                        &ctx.auth,
                        ACCEPTED_MANIFESTS,
                    )
                    .await
                    .map_err(|e| ctx.error(&format!("manifest {d} of {r}"), e))?;
                let actual = sha256_of(&m);
                if actual != d {
                    return Err(Error::DigestMismatch {
                        what: format!("manifest of {r}"),
                        expected: d,
                        actual,
                    });
                }
                self.put_blob_async(format!("index of {r}"), digest.clone(), bytes.to_vec())
                    .await?;
                (m, d, Some(digest))
            }
        };
        let what = format!("manifest {digest} of {r}");
        let Parsed::Manifest(m) = manifest::parse(&bytes, &what)? else {
            return Err(Error::invalid(what, "an index points to another index"));
        };
        manifest::check_image(&m, &what)?;

        let config_digest = manifest::digest_of(m.config(), &what)?;
        if !self.has_blob(&config_digest)? {
            self.download(
                ctx,
                m.config(),
                &config_digest,
                &format!("config of {r}"),
                |_| {},
            )
            .await?;
        }
        let config_bytes = self.read_blob(&config_digest)?;
        let config =
            manifest::parse_config(&config_bytes, &format!("config {config_digest} of {r}"))?;

        let count = m.layers().len();
        let mut size = bytes.len() as u64 + m.config().size();
        let mut layers = Vec::with_capacity(count);
        let mut unpacking = Vec::new();
        // On an error, still wait for the unpacks already started: they must
        // not outlive this pull's lock.
        let fetched: Result<()> = async {
            for (index, l) in m.layers().iter().enumerate() {
                let digest = manifest::digest_of(l, &what)?;
                let total = l.size();
                size += total;
                layers.push(digest.clone());
                let report = |done, phase| Progress {
                    layer: digest.clone(),
                    index,
                    count,
                    done,
                    total,
                    phase,
                };
                if self.has_layer(&digest)? {
                    progress(report(total, Phase::Cached));
                    continue;
                }
                if !self.has_blob(&digest)? {
                    progress(report(0, Phase::Downloading));
                    let what = format!("layer {digest} of {r}");
                    self.download(ctx, l, &digest, &what, |done| {
                        progress(report(done, Phase::Downloading))
                    })
                    .await?;
                }
                progress(report(total, Phase::Unpacking));
                let (store, d) = (self.clone(), digest.clone());
                // Its own shared lock, in case this pull is dropped while
                // the unpack runs on.
                let task = tokio::task::spawn_blocking(move || {
                    let _lock = store.lock_shared()?;
                    store.ensure_layer(&d)
                });
                unpacking.push((report(total, Phase::Ready), task));
            }
            Ok(())
        }
        .await;
        let mut first_error = fetched.err();
        for (ready, task) in unpacking {
            match flatten(task.await) {
                Ok(_) => progress(ready),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        self.put_blob_async(what, digest.clone(), bytes.to_vec())
            .await?;
        Ok(RefRecord {
            manifest: digest,
            config: config_digest,
            layers,
            size,
            created: config.created().clone(),
            index,
            stored_at: now_secs(),
        })
    }

    async fn put_blob_async(&self, what: String, digest: String, bytes: Vec<u8>) -> Result<()> {
        let store = self.clone();
        blocking(move || store.put_blob(&what, &digest, &bytes).map(|_| ())).await
    }

    /// Stream a blob into `tmp/`, hashing it; it enters the store only if it
    /// matches `desc`.
    async fn download(
        &self,
        ctx: &Ctx,
        desc: &Descriptor,
        digest: &str,
        what: &str,
        mut on_bytes: impl FnMut(u64),
    ) -> Result<()> {
        let od = OciDescriptor {
            media_type: desc.media_type().to_string(),
            digest: digest.to_string(),
            size: desc.size() as i64,
            urls: None,
            annotations: None,
            artifact_type: None,
        };
        let mut stream = ctx
            .client
            .pull_blob_stream(&ctx.reference, &od)
            .await
            .map_err(|e| ctx.error(what, e))?;
        let mut w = self.blob_writer()?;
        let mut received = 0u64;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => {
                    received += bytes.len() as u64;
                    if received > desc.size() {
                        return Err(Error::DigestMismatch {
                            what: format!("{what} (size)"),
                            expected: format!("{} bytes", desc.size()),
                            actual: format!("more than {} bytes", desc.size()),
                        });
                    }
                    w.write(&bytes)?;
                    on_bytes(received);
                }
                // oci-client's own check at the end of the stream: ours below
                // reports it with the actual digest.
                Err(e) if e.get_ref().is_some_and(|i| i.is::<DigestError>()) => break,
                Err(e) => {
                    return Err(Error::Registry {
                        registry: ctx.registry.clone(),
                        message: format!("{what}: download failed: {}", chain(&e)),
                    })
                }
            }
        }
        let (store, what, digest, size) = (
            self.clone(),
            what.to_string(),
            digest.to_string(),
            desc.size(),
        );
        blocking(move || w.finish(&store, &what, &digest, Some(size)).map(|_| ())).await
    }
}

struct Ctx {
    client: Client,
    registry: String,
    insecure: bool,
    reference: oci_client::Reference,
    /// What the auth file gave (anonymous when nothing).
    auth: RegistryAuth,
    /// Where `auth` came from, for errors.
    source: Source,
}

/// Where a pull's credentials came from, or why it has none.
#[derive(Debug, Clone)]
enum Source {
    /// No auth file configured.
    NoFile,
    /// The (optional) auth file does not exist.
    Missing(PathBuf),
    /// The auth file has no entry for this registry and repository.
    NoEntry(PathBuf),
    /// The entry `key` has neither `auth` nor `username`/`password`.
    Unusable { path: PathBuf, key: String },
    /// Credentials from the entry `key`.
    Found { path: PathBuf, key: String },
}

/// The credentials for `r` from `file`, read on the blocking pool.
async fn credentials(
    file: Option<AuthFile>,
    r: &oci_client::Reference,
) -> Result<(RegistryAuth, Source)> {
    let Some(file) = file else {
        return Ok((RegistryAuth::Anonymous, Source::NoFile));
    };
    let (registry, repository) = (r.registry().to_string(), r.repository().to_string());
    blocking(move || {
        let path = file.path.clone();
        let Some(auths) = file.load()? else {
            return Ok((RegistryAuth::Anonymous, Source::Missing(path)));
        };
        Ok(match auths.lookup(&registry, &repository) {
            Lookup::Found { key, credentials } => (
                RegistryAuth::Basic(credentials.username, credentials.password),
                Source::Found { path, key },
            ),
            Lookup::Unusable { key } => (RegistryAuth::Anonymous, Source::Unusable { path, key }),
            Lookup::None => (RegistryAuth::Anonymous, Source::NoEntry(path)),
        })
    })
    .await
}

impl Ctx {
    /// A refusal (401, 403): which registry, and where its credentials came
    /// from or that there were none.
    fn refused(&self, what: &str, status: &str) -> Error {
        let reg = &self.registry;
        let repo = self.reference.repository();
        let message = match &self.source {
            Source::Found { path, key } => format!(
                "refused the credentials from {} ({status}): {what}; are those under {key:?} right, and may they pull {repo}?",
                path.display()
            ),
            Source::NoEntry(path) => format!(
                "needs credentials and {} has none for it ({status}): {what}; add them under \"auths\" as {:?}, or, if the image is public, check its name",
                path.display(),
                self.reference.registry()
            ),
            Source::Unusable { path, key } => format!(
                "needs credentials and {} has none usable for it ({status}): {what}; its entry {key:?} has neither \"auth\" nor \"username\" and \"password\" (credential helpers and identity tokens are not supported)",
                path.display()
            ),
            Source::Missing(path) => format!(
                "needs credentials and {} does not exist ({status}): {what}; write them there, or, if the image is public, check its name",
                path.display()
            ),
            Source::NoFile => format!(
                "needs credentials and no auth file is configured ({status}): {what}; give one (jarvisd --auth-file), or, if the image is public, check its name"
            ),
        };
        Error::Auth {
            registry: reg.clone(),
            message,
        }
    }

    /// Turn an `oci-client` error into ours, with a hint at what to do.
    fn error(&self, what: &str, e: OciDistributionError) -> Error {
        const UNAUTHORIZED: &str = "401 Unauthorized";
        const FORBIDDEN: &str = "403 Forbidden";
        match &e {
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => {
                return self.refused(what, UNAUTHORIZED)
            }
            OciDistributionError::ServerError { code: 401, .. } => {
                return self.refused(what, UNAUTHORIZED)
            }
            OciDistributionError::ServerError { code: 403, .. } => {
                return self.refused(what, FORBIDDEN)
            }
            OciDistributionError::RegistryError { envelope, .. } => {
                if envelope
                    .errors
                    .iter()
                    .any(|x| matches!(x.code, OciErrorCode::Denied))
                {
                    return self.refused(what, FORBIDDEN);
                }
                if envelope
                    .errors
                    .iter()
                    .any(|x| matches!(x.code, OciErrorCode::Unauthorized))
                {
                    return self.refused(what, UNAUTHORIZED);
                }
            }
            _ => {}
        }
        let detail = chain(&e);
        let reg = &self.registry;
        let message = match &e {
            OciDistributionError::RequestError(re) => {
                let lower = detail.to_lowercase();
                if re.is_timeout() {
                    format!("{what}: timed out ({detail}); is the registry reachable?")
                } else if lower.contains("connection refused") || lower.contains("dns error") {
                    format!("{what}: cannot connect ({detail}); is the address right and the registry running?")
                } else if !self.insecure
                    && (lower.contains("certificate") || lower.contains("unknownissuer"))
                {
                    format!("{what}: {detail}; the registry's TLS certificate is not trusted: if a private CA signed it, add that CA's certificate")
                } else if !self.insecure {
                    format!("{what}: {detail}; is it plain HTTP? add --insecure-registry {reg}")
                } else {
                    format!("{what}: {detail} (spoken to over plain HTTP, as --insecure-registry {reg} asks; is it HTTPS after all?)")
                }
            }
            OciDistributionError::RegistryError { envelope, .. }
                if envelope.errors.iter().any(|x| {
                    matches!(
                        x.code,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                    )
                }) =>
            {
                format!("{what}: not found ({detail}); check the name and tag")
            }
            OciDistributionError::ServerError {
                code: 400, message, ..
            } if self.insecure && message.contains("HTTPS") => {
                format!("{what}: {detail}; it speaks HTTPS: remove {reg} from --insecure-registry")
            }
            OciDistributionError::ServerError { code: 404, .. } => {
                format!("{what}: not found ({detail}); check the name and tag")
            }
            _ => format!("{what}: {detail}"),
        };
        Error::Registry {
            registry: reg.clone(),
            message,
        }
    }
}

/// An error and its sources, joined by ": ".
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

fn flatten<T>(r: std::result::Result<Result<T>, tokio::task::JoinError>) -> Result<T> {
    match r {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::io(
            "join blocking task",
            "",
            std::io::Error::other(e),
        )),
    }
}

/// Run blocking store work on tokio's blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    flatten(tokio::task::spawn_blocking(f).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: &T) {}

    #[test]
    fn pull_future_is_send() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let opts = PullOptions::default();
        let fut = store.pull("busybox", &opts, |_| {});
        assert_send(&fut);
    }
}
