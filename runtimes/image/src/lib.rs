//! jarvis-image: OCI images for jarvisd.
//!
//! Pull images from registries ([`ImageStore::pull`], with `oci-client`),
//! import them from OCI image layouts ([`ImageStore::import`]), keep them in a
//! content-addressed store, and unpack every layer once into a directory that
//! can be stacked directly as an overlayfs `lowerdir`
//! ([`StoredImage::layers`], [`StoredImage::lowerdir`]).
//!
//! ```no_run
//! # async fn demo() -> jarvis_image::Result<()> {
//! use jarvis_image::{ImageStore, PullOptions};
//! let store = ImageStore::open("/var/lib/jarvis/images")?;
//! let opts = PullOptions {
//!     insecure: vec!["registry.lan:5000".into()],
//!     ..Default::default()
//! };
//! let image = store
//!     .pull("docker.io/homeassistant/home-assistant:2024.12", &opts, |p| {
//!         eprintln!("{} {:?} {}/{}", p.layer, p.phase, p.done, p.total)
//!     })
//!     .await?;
//! println!("lowerdir={}", image.lowerdir());
//! # Ok(()) }
//! ```
//!
//! # Registry credentials
//!
//! See [`auth`]. [`PullOptions::auth_file`] names an auth file in the format
//! of podman's `containers-auth.json` and docker's `config.json`
//! (`{"auths": {"registry.example:5000": {"auth": "BASE64(USER:PASSWORD)"}}}`,
//! or `"username"`/`"password"` instead of `"auth"`), read at each pull.
//! Keys match as docker matches them (`HOST[:PORT]`, an `https://` prefix
//! and a `/v1/` or `/v2/` suffix ignored, Docker Hub under any of its
//! names). HTTP basic authentication and the bearer-token flow are both
//! done by `oci-client` with the credentials found; without an entry the
//! pull is anonymous. A file readable by everyone is refused; a refusal by
//! the registry ([`Error::Auth`]) names the registry and the file, or says
//! the file had nothing for it, and never a credential.
//!
//! # Blocking and async
//!
//! [`ImageStore::pull`] is async and safe on a current-thread runtime: its
//! blocking parts (locking, unpacking, fsync) run in `spawn_blocking`. All
//! other methods are synchronous: [`ImageStore::open`], [`ImageStore::get`]
//! and [`ImageStore::list`] are quick (small file reads);
//! [`ImageStore::import`], [`ImageStore::remove`] and [`ImageStore::gc`] do
//! real work or wait for running pulls, so call them in `spawn_blocking`.
//!
//! # Store layout
//!
//! See [`store`]: `blobs/sha256/<hex>` (verified, content-addressed),
//! `layers/sha256/<hex>/` (one unpacked directory per layer blob, shared by
//! every image that uses it), `refs.json` (reference -> manifest, config and
//! layer digests; written temp+fsync+rename). [`ImageStore::remove`] drops a
//! reference and collects blobs and layers nothing else uses. Concurrent
//! stores on one directory (threads or processes) coordinate with `flock`.
//!
//! # Layers
//!
//! See [`unpack`]: gzip, zstd or plain tar; OCI whiteouts become overlayfs
//! whiteouts (0/0 character devices) and opaque directories
//! (`trusted.overlay.opaque=y`); no entry can escape its layer directory.

pub mod auth;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod layout;
pub mod manifest;
pub mod overlay;
mod pull;
pub mod reference;
pub mod store;
pub mod unpack;

pub use auth::{AuthFile, DEFAULT_AUTH_FILE};
pub use error::{Error, Result};
pub use manifest::host_platform;
pub use overlay::{lowerdir_option, unmount};
pub use pull::{install_crypto_provider, Phase, Progress, PullOptions};
pub use reference::{parse_reference, Reference};
pub use store::{ImageStore, ImageSummary, StoredImage};

pub use oci_spec::image::ImageConfiguration;
