//! What a run reads from the host at each start, for either form: its env
//! files and its secrets.
//!
//! - `env_file`: read at each start ([`crate::envfile`]); `[env]` wins.
//! - `[[secret]]`: copied into a tmpfs of the run's own
//!   (`jarvis_container::secrets`): a container's at
//!   `<run_dir>/secrets/UNIT` (a directory only root may enter), bound
//!   read-only at `/run/secrets`; a native unit's at
//!   `<run_dir>/credentials/UNIT`, whose path it gets in
//!   `$CREDENTIALS_DIRECTORY` (`credentials` may be passed through by
//!   anyone, not listed, so the unit's user reaches its own directory,
//!   0500 and its own, and no other: the state directory must be
//!   searchable by that user, as `/var/lib/jarvis` is). Either goes once
//!   the run is over ([`clear`]).
//! - A container run's spec, when its environment holds values from an
//!   encrypted env file: `config.json` in a tmpfs of its own at
//!   `<run_dir>/specs/UNIT` (root's only), linked from the bundle
//!   ([`jarvis_container::prepare::prepare_bundle_in_memory`]); it goes
//!   with the secrets ([`clear`]).
//!
//! An `env_file` entry or a secret's source whose name ends in `.age` is
//! age-encrypted: it is decrypted at each start with the host's identity
//! ([`Config::age_identity`]: an age X25519 identity file, or an
//! unencrypted SSH ed25519 private key as agenix uses). An env file's
//! plaintext stays in jarvisd's memory (as a plain env file's values do);
//! a secret's goes, through a sealed memfd, straight into the run's tmpfs.
//! A file that cannot be decrypted fails that unit's start, naming the file
//! and why (no identity, not encrypted to it, not an age file), never any
//! of its content.
//!
//! Neither values nor secret contents are logged or written to disk here;
//! messages name files only. A plain `env_file`'s or `[env]`'s values are
//! no secrets: a container's spec holding only those is written with its
//! bundle, on disk.

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use jarvis_unit::{Secret, Unit};
use zeroize::Zeroizing;

use crate::{Config, StartError};

/// The largest encrypted file read (an env file or a secret): 1 MiB, as
/// plain ones. The plaintext is never larger than its encryption.
pub const MAX_ENCRYPTED_SIZE: u64 = 1 << 20;

/// The largest identity file read.
const MAX_IDENTITY_SIZE: u64 = 64 << 10;

/// The environment variable a native unit finds its secrets' directory in
/// (systemd's name for it).
pub const CREDENTIALS_ENV: &str = "CREDENTIALS_DIRECTORY";

impl Config {
    /// The tmpfs holding a container run's secrets, bound at `/run/secrets`.
    pub fn secrets_dir(&self, unit: &str) -> PathBuf {
        self.run_dir.join("secrets").join(unit)
    }

    /// The tmpfs holding a native run's secrets (`$CREDENTIALS_DIRECTORY`).
    pub fn credentials_dir(&self, unit: &str) -> PathBuf {
        self.run_dir.join("credentials").join(unit)
    }

    /// The tmpfs holding a container run's `config.json` when its
    /// environment holds secrets ([`holds_secret_env`]).
    pub fn spec_dir(&self, unit: &str) -> PathBuf {
        self.run_dir.join("specs").join(unit)
    }
}

/// Whether a run of `unit` gets environment values from an encrypted env
/// file, so that its container spec must stay in memory
/// ([`Config::spec_dir`]).
pub(crate) fn holds_secret_env(unit: &Unit) -> bool {
    unit.env_file.iter().any(|f| Secret::is_age(f))
}

/// `unit` with its env files read in under `[env]`, `.age` ones decrypted
/// (blocking). A file that is missing, malformed or cannot be decrypted
/// fails the start, naming the file (and line).
pub(crate) fn with_env_files(cfg: &Config, mut unit: Unit) -> Result<Unit, StartError> {
    if unit.env_file.is_empty() {
        return Ok(unit);
    }
    unit.env = crate::envfile::merged_decrypting(&unit.env_file, &unit.env, &cfg.age_identity)
        .map_err(|e| StartError::failed(e.to_string()))?;
    Ok(unit)
}

/// The plaintext of the age-encrypted file at `path`, decrypted with the
/// identity in `identity` (blocking). The error says why, naming the
/// identity file where it is at fault; it never holds any content.
pub fn decrypt_file(path: &Path, identity: &Path) -> Result<Zeroizing<Vec<u8>>, String> {
    let ciphertext = read_bounded(path, MAX_ENCRYPTED_SIZE)?;
    let identities = identities(identity)?;
    let armored = age::armor::ArmoredReader::new(&ciphertext[..]);
    let decryptor = age::Decryptor::new_buffered(std::io::BufReader::new(armored))
        .map_err(|e| format!("not an age file: {e}"))?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => format!(
                "cannot decrypt: it is not encrypted to the age identity in {} \
                 (encrypt it again with this host's recipient among the others: jarvisctl \
                 secret encrypt FILE --recipient KEY)",
                identity.display()
            ),
            e => format!("cannot decrypt: {e}"),
        })?;
    let mut plain = Zeroizing::new(Vec::with_capacity(ciphertext.len()));
    reader
        .by_ref()
        .take(MAX_ENCRYPTED_SIZE + 1)
        .read_to_end(&mut plain)
        .map_err(|e| format!("cannot decrypt: {e}"))?;
    Ok(plain)
}

/// A regular file of at most `max` bytes, whole.
fn read_bounded(path: &Path, max: u64) -> Result<Zeroizing<Vec<u8>>, String> {
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        _ => e.to_string(),
    })?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(meta.len().min(max) as usize));
    file.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|e| e.to_string())?;
    if buf.len() as u64 > max {
        return Err(format!("larger than {max} bytes"));
    }
    Ok(buf)
}

/// The identities in the file at `path`: an age identity file (`AGE-SECRET-KEY-1...`
/// lines) or an unencrypted SSH private key (ed25519, as a host key).
fn identities(path: &Path) -> Result<Vec<Box<dyn age::Identity + Send + Sync>>, String> {
    let at = |what: String| {
        format!(
            "cannot decrypt: the age identity {} (jarvisd --age-identity): {what}",
            path.display()
        )
    };
    let bytes = read_bounded(path, MAX_IDENTITY_SIZE).map_err(at)?;
    if bytes.windows(10).any(|w| w == b"-----BEGIN") {
        let name = Some(path.display().to_string());
        let key = age::ssh::Identity::from_buffer(&bytes[..], name)
            .map_err(|e| at(format!("not an SSH private key age reads: {e}")))?;
        return match key {
            age::ssh::Identity::Unencrypted(_) => Ok(vec![Box::new(key)]),
            age::ssh::Identity::Encrypted(_) => Err(at(
                "the SSH key has a passphrase; jarvisd needs one without, as a host key is".into(),
            )),
            age::ssh::Identity::Unsupported(k) => Err(at(format!(
                "an SSH key of a kind age does not decrypt with ({k:?})"
            ))),
        };
    }
    let file = age::IdentityFile::from_buffer(&bytes[..])
        .map_err(|e| at(format!("not an age identity file: {e}")))?;
    let ids = file
        .into_identities()
        .map_err(|e| at(format!("not an age identity file: {e}")))?;
    if ids.is_empty() {
        return Err(at("it holds no identity (AGE-SECRET-KEY-1... line)".into()));
    }
    Ok(ids)
}

/// A unit's secrets as its tmpfs gets them: each `.age` source replaced by
/// its plaintext in a sealed memfd, named by its `/proc/self/fd` path, for
/// as long as this lives. Plain sources are kept as they are.
pub(crate) struct Decrypted {
    pub secrets: Vec<Secret>,
    _memfds: Vec<OwnedFd>,
}

/// Decrypts the `.age` sources among `secrets` (blocking). A source that
/// cannot be decrypted fails the start, naming the secret and its file.
pub(crate) fn decrypt_secrets(cfg: &Config, secrets: &[Secret]) -> Result<Decrypted, StartError> {
    decrypt_with(&cfg.age_identity, secrets)
}

/// [`decrypt_secrets`] with the identity in the file `identity`.
fn decrypt_with(identity: &Path, secrets: &[Secret]) -> Result<Decrypted, StartError> {
    let mut out = Decrypted {
        secrets: secrets.to_vec(),
        _memfds: Vec::new(),
    };
    for s in out.secrets.iter_mut().filter(|s| Secret::is_age(&s.source)) {
        let fail = |e: String| {
            StartError::failed(format!("secret {}: {}: {e}", s.target, s.source.display()))
        };
        let plain = decrypt_file(&s.source, identity).map_err(fail)?;
        if plain.len() as u64 > jarvis_container::secrets::MAX_SIZE {
            return Err(fail(format!(
                "decrypted, larger than {} bytes",
                jarvis_container::secrets::MAX_SIZE
            )));
        }
        let fd = sealed_memfd(&plain).map_err(|e| fail(format!("cannot hold it: {e}")))?;
        s.source = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
        out._memfds.push(fd);
    }
    Ok(out)
}

/// `content` in an anonymous, close-on-exec memory file that nothing can
/// change any more.
fn sealed_memfd(content: &[u8]) -> std::io::Result<OwnedFd> {
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use nix::sys::memfd::{memfd_create, MemFdCreateFlag};
    let fd = memfd_create(
        c"jarvis-secret",
        MemFdCreateFlag::MFD_CLOEXEC | MemFdCreateFlag::MFD_ALLOW_SEALING,
    )?;
    let mut f = std::fs::File::from(fd);
    std::io::Write::write_all(&mut f, content)?;
    fcntl(
        f.as_raw_fd(),
        FcntlArg::F_ADD_SEALS(
            SealFlag::F_SEAL_WRITE
                | SealFlag::F_SEAL_GROW
                | SealFlag::F_SEAL_SHRINK
                | SealFlag::F_SEAL_SEAL,
        ),
    )?;
    Ok(f.into())
}

/// Creates `dir` with `mode` if missing, and gives it `mode` if not.
fn parent_dir(dir: &Path, mode: u32) -> Result<(), StartError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let fail = |e: std::io::Error| {
        StartError::Failed(crate::StartFailure::io(&dir.display().to_string(), &e))
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(dir)
        .map_err(fail)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode)).map_err(fail)
}

/// Makes the parent of a container's secrets directory, root's only
/// (blocking).
pub(crate) fn secrets_parent(cfg: &Config, unit: &str) -> Result<(), StartError> {
    match cfg.secrets_dir(unit).parent() {
        Some(p) => parent_dir(p, 0o700),
        None => Ok(()),
    }
}

/// Makes the parent of a container's in-memory spec directory, root's
/// only (blocking).
pub(crate) fn spec_parent(cfg: &Config, unit: &str) -> Result<(), StartError> {
    match cfg.spec_dir(unit).parent() {
        Some(p) => parent_dir(p, 0o700),
        None => Ok(()),
    }
}

/// Mounts a native run's secrets for `uid`:`gid` and returns the
/// directory, or `None` without secrets (blocking).
pub(crate) fn mount_credentials(
    cfg: &Config,
    unit: &Unit,
    uid: u32,
    gid: u32,
) -> Result<Option<PathBuf>, StartError> {
    let dir = cfg.credentials_dir(&unit.name);
    if unit.secrets.is_empty() {
        // An earlier run's (of a unit that had secrets then) goes.
        clear_dir(&dir);
        return Ok(None);
    }
    if let Some(p) = dir.parent() {
        parent_dir(p, 0o711)?;
    }
    let decrypted = decrypt_secrets(cfg, &unit.secrets)?;
    jarvis_container::secrets::mount(&dir, &decrypted.secrets, uid, gid)
        .map_err(|e| StartError::failed(e.to_string()))?;
    Ok(Some(dir))
}

/// Unmounts whatever secrets a run of `unit` had, of either form, and a
/// container's in-memory spec (blocking). Nothing there is fine; a failure
/// is logged.
pub(crate) fn clear(cfg: &Config, unit: &str) {
    clear_dirs(&dirs(cfg, unit));
}

/// Where a run of `unit` may have secrets: a container's, a native unit's,
/// a container's spec.
pub(crate) fn dirs(cfg: &Config, unit: &str) -> [PathBuf; 3] {
    [
        cfg.secrets_dir(unit),
        cfg.credentials_dir(unit),
        cfg.spec_dir(unit),
    ]
}

/// [`clear`] for the paths [`dirs`] gave.
pub(crate) fn clear_dirs(dirs: &[PathBuf]) {
    for d in dirs {
        clear_dir(d);
    }
}

fn clear_dir(dir: &Path) {
    if let Err(e) = jarvis_container::secrets::unmount(dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot remove a run's secrets");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Write;

    /// `plain` encrypted to `recipient`, binary or armored.
    fn encrypt(recipient: &dyn age::Recipient, plain: &[u8], armor: bool) -> Vec<u8> {
        let e = age::Encryptor::with_recipients(std::iter::once(recipient)).unwrap();
        let mut out = Vec::new();
        if armor {
            let a =
                age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
                    .unwrap();
            let mut w = e.wrap_output(a).unwrap();
            w.write_all(plain).unwrap();
            w.finish().unwrap().finish().unwrap();
        } else {
            let mut w = e.wrap_output(&mut out).unwrap();
            w.write_all(plain).unwrap();
            w.finish().unwrap();
        }
        out
    }

    struct Host {
        dir: tempfile::TempDir,
        id: age::x25519::Identity,
        key: PathBuf,
    }

    fn host() -> Host {
        use age::secrecy::ExposeSecret;
        let dir = tempfile::tempdir().unwrap();
        let id = age::x25519::Identity::generate();
        let key = dir.path().join("age.key");
        std::fs::write(
            &key,
            format!(
                "# public key: {}\n{}\n",
                id.to_public(),
                id.to_string().expose_secret()
            ),
        )
        .unwrap();
        Host { dir, id, key }
    }

    #[test]
    fn decrypts_binary_and_armored_files() {
        let h = host();
        for armor in [false, true] {
            let f = h.dir.path().join("pw.age");
            std::fs::write(&f, encrypt(&h.id.to_public(), b"hunter2", armor)).unwrap();
            assert_eq!(&decrypt_file(&f, &h.key).unwrap()[..], b"hunter2");
        }
    }

    #[test]
    fn failures_name_the_cause_never_the_content() {
        let h = host();
        let other = age::x25519::Identity::generate();
        let f = h.dir.path().join("pw.age");
        std::fs::write(&f, encrypt(&other.to_public(), b"hunter2", false)).unwrap();
        let e = decrypt_file(&f, &h.key).unwrap_err();
        assert!(
            e.starts_with(&format!(
                "cannot decrypt: it is not encrypted to the age identity in {}",
                h.key.display()
            )),
            "{e}"
        );
        std::fs::write(&f, "hunter2, not encrypted\n").unwrap();
        let e = decrypt_file(&f, &h.key).unwrap_err();
        assert!(e.starts_with("not an age file"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        std::fs::write(&f, encrypt(&h.id.to_public(), b"hunter2", false)).unwrap();
        let gone = h.dir.path().join("none.key");
        let e = decrypt_file(&f, &gone).unwrap_err();
        assert_eq!(
            e,
            format!(
                "cannot decrypt: the age identity {} (jarvisd --age-identity): no such file",
                gone.display()
            )
        );
        std::fs::write(&gone, "# nothing here\n").unwrap();
        let e = decrypt_file(&f, &gone).unwrap_err();
        assert!(
            e.ends_with("it holds no identity (AGE-SECRET-KEY-1... line)"),
            "{e}"
        );
        let e = decrypt_file(&h.dir.path().join("nope.age"), &h.key).unwrap_err();
        assert_eq!(e, "no such file");
        let big = h.dir.path().join("big.age");
        std::fs::write(&big, vec![b'x'; MAX_ENCRYPTED_SIZE as usize + 1]).unwrap();
        let e = decrypt_file(&big, &h.key).unwrap_err();
        assert_eq!(e, format!("larger than {MAX_ENCRYPTED_SIZE} bytes"));
    }

    #[test]
    fn an_ssh_ed25519_key_is_an_identity() {
        let h = host();
        let key = h.dir.path().join("ssh_host_ed25519_key");
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "host", "-f"])
            .arg(&key)
            .status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("SKIPPED: no ssh-keygen (Debian's openssh-client)");
            return;
        }
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        let r: age::ssh::Recipient = public.trim().parse().unwrap();
        let f = h.dir.path().join("pw.age");
        std::fs::write(&f, encrypt(&r, b"hunter2", false)).unwrap();
        assert_eq!(&decrypt_file(&f, &key).unwrap()[..], b"hunter2");
        // Not encrypted to it: named as such.
        std::fs::write(&f, encrypt(&h.id.to_public(), b"hunter2", false)).unwrap();
        let e = decrypt_file(&f, &key).unwrap_err();
        assert!(
            e.contains("it is not encrypted to the age identity in"),
            "{e}"
        );
        // A key with a passphrase is refused, saying why.
        let locked = h.dir.path().join("locked");
        let made = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "a passphrase", "-f"])
            .arg(&locked)
            .status()
            .unwrap();
        assert!(made.success());
        let e = decrypt_file(&f, &locked).unwrap_err();
        assert!(
            e.ends_with(
                "the SSH key has a passphrase; jarvisd needs one without, as a host key is"
            ),
            "{e}"
        );
    }

    #[test]
    fn encrypted_env_files_are_read_at_start_and_never_shown() {
        let h = host();
        let plain = h.dir.path().join("a.env");
        std::fs::write(&plain, "A=plain\nB=plain\n").unwrap();
        let sealed = h.dir.path().join("b.env.age");
        std::fs::write(
            &sealed,
            encrypt(
                &h.id.to_public(),
                b"B=sealed\nPASSWORD=\"hunter2\"\n",
                false,
            ),
        )
        .unwrap();
        let env = BTreeMap::from([("C".to_string(), "env".to_string())]);
        let files = [&plain, &sealed];
        let m = crate::envfile::merged_decrypting(&files, &env, &h.key).unwrap();
        assert_eq!(
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>(),
            ["A=plain", "B=sealed", "C=env", "PASSWORD=hunter2"]
        );
        // What `config` shows leaves the encrypted file out.
        let m = crate::envfile::merged(&files, &env).unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["A", "B", "C"]);
        assert_eq!(m["B"], "plain");
        // A syntax error inside gives its line, never a value.
        std::fs::write(
            &sealed,
            encrypt(&h.id.to_public(), b"OK=1\nPASSWORD=\"hunter2\n", false),
        )
        .unwrap();
        let e = crate::envfile::merged_decrypting(&files, &env, &h.key)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!("env_file {}:2:10: ", sealed.display())),
            "{e}"
        );
        assert!(!e.contains("hunter2"), "{e}");
        // Encrypted to another host: the file is named.
        let other = age::x25519::Identity::generate();
        std::fs::write(&sealed, encrypt(&other.to_public(), b"B=x\n", false)).unwrap();
        let e = crate::envfile::merged_decrypting(&files, &env, &h.key)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(&format!(
                "env_file {}: cannot decrypt: it is not encrypted",
                sealed.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn encrypted_secrets_reach_the_mount_as_sealed_memory() {
        let h = host();
        let plain = h.dir.path().join("plain");
        std::fs::write(&plain, "as is").unwrap();
        let sealed = h.dir.path().join("db.age");
        std::fs::write(&sealed, encrypt(&h.id.to_public(), b"hunter2", false)).unwrap();
        let secret = |source: &Path, target: &str| Secret {
            source: source.to_path_buf(),
            target: target.into(),
            mode: Secret::DEFAULT_MODE,
        };
        let cfg_key = h.key.clone();
        let d = decrypt_with(&cfg_key, &[secret(&plain, "plain"), secret(&sealed, "db")]).unwrap();
        assert_eq!(d.secrets[0].source, plain);
        let via = &d.secrets[1].source;
        assert!(via.starts_with("/proc/self/fd/"), "{}", via.display());
        assert_eq!(std::fs::read(via).unwrap(), b"hunter2");
        // Sealed: nobody writes it any more.
        let mut w = std::fs::OpenOptions::new().write(true).open(via).unwrap();
        assert!(w.write_all(b"x").is_err());
        drop(d);
        // Another recipient's file fails, naming the secret and the file.
        let other = age::x25519::Identity::generate();
        std::fs::write(&sealed, encrypt(&other.to_public(), b"hunter2", false)).unwrap();
        let Err(StartError::Failed(e)) = decrypt_with(&cfg_key, &[secret(&sealed, "db")]) else {
            panic!("decrypted with the wrong identity");
        };
        assert!(!e.transient);
        let e = e.reason;
        assert!(
            e.starts_with(&format!(
                "secret db: {}: cannot decrypt: it is not encrypted",
                sealed.display()
            )),
            "{e}"
        );
    }
}
