//! `jarvisctl secret encrypt`: a file to an age-encrypted `.age` file that
//! units may name (`env_file` or `[[secret]] source`), for hosts whose age
//! identity is one of the recipients.

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::{bail, Context};
use clap::Subcommand;

/// The largest file encrypted: 1 MiB, the most jarvisd reads of an env file
/// or a secret.
pub const MAX_SIZE: u64 = 1 << 20;

#[derive(Debug, Subcommand)]
pub enum SecretCommand {
    /// Encrypt FILE for the hosts given by --recipient (age's format, as
    /// `age -e` and agenix write it), to OUT, by default FILE.age.
    ///
    /// A unit names the result where it would name the plain file
    /// (env_file = ["secrets/app.env.age"], [[secret]] source =
    /// "secrets/db_password.age"); jarvisd decrypts it at each start with
    /// its --age-identity. Commit the .age file, never FILE.
    Encrypt {
        /// The plaintext: an env file or a secret, at most 1 MiB.
        file: PathBuf,
        /// Who can decrypt it: an age recipient (age1...), an SSH public
        /// key line (ssh-ed25519 AAAA..., e.g. the host's
        /// /etc/ssh/ssh_host_ed25519_key.pub), or a file of such lines (one
        /// per line; blank lines and # comments skipped). Repeat for more.
        #[arg(long, short = 'r', required = true, value_name = "KEY")]
        recipient: Vec<String>,
        /// Where to write the encrypted file [default: FILE.age].
        #[arg(long, short = 'o', value_name = "OUT")]
        output: Option<PathBuf>,
    },
}

pub fn run(cmd: SecretCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SecretCommand::Encrypt {
            file,
            recipient,
            output,
        } => {
            let out = output.unwrap_or_else(|| default_output(&file));
            let recipients = recipients(&recipient)?;
            encrypt(&file, &out, &recipients)?;
            eprintln!(
                "wrote {} (encrypted to {} recipient{})",
                out.display(),
                recipients.len(),
                if recipients.len() == 1 { "" } else { "s" }
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `FILE.age`.
fn default_output(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".age");
    PathBuf::from(s)
}

type Recipient = Box<dyn age::Recipient + Send>;

/// One recipient per `--recipient`: a key, or every key in a file.
fn recipients(args: &[String]) -> anyhow::Result<Vec<Recipient>> {
    let mut out = Vec::new();
    for arg in args {
        if let Some(r) = parse_key(arg.trim()) {
            out.push(r?);
            continue;
        }
        let path = Path::new(arg);
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
                "--recipient {arg:?}: not an age recipient (age1...), an SSH public key \
                 (ssh-ed25519 AAAA...) or a file of them"
            ),
            Err(e) => return Err(e).with_context(|| format!("--recipient {arg}")),
        };
        let before = out.len();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_key(line) {
                Some(r) => out.push(r.with_context(|| format!("{arg}:{}", i + 1))?),
                None => bail!(
                    "{arg}:{}: not an age recipient (age1...) or an SSH public key \
                     (ssh-ed25519 AAAA...)",
                    i + 1
                ),
            }
        }
        if out.len() == before {
            bail!("--recipient {arg}: the file holds no recipient");
        }
    }
    Ok(out)
}

/// A recipient from one key: `None` when `key` is not written as one.
fn parse_key(key: &str) -> Option<anyhow::Result<Recipient>> {
    if key.starts_with("age1") {
        return Some(
            age::x25519::Recipient::from_str(key)
                .map(|r| Box::new(r) as Recipient)
                .map_err(|e| anyhow::anyhow!("{key:?} is not a valid age recipient: {e}")),
        );
    }
    if key.starts_with("ssh-") {
        return Some(
            age::ssh::Recipient::from_str(key)
                .map(|r| Box::new(r) as Recipient)
                .map_err(|e| {
                    anyhow::anyhow!(
                        "not an SSH public key age encrypts to (ssh-ed25519 or ssh-rsa): {e:?}"
                    )
                }),
        );
    }
    None
}

/// Encrypts `file` to `out` for `recipients`: the ciphertext is written to
/// a temporary file beside `out` and renamed over it; the plaintext is
/// written nowhere.
fn encrypt(file: &Path, out: &Path, recipients: &[Recipient]) -> anyhow::Result<()> {
    if std::fs::canonicalize(file).ok() == std::fs::canonicalize(out).ok() {
        bail!(
            "{}: the output is the input; give another -o",
            out.display()
        );
    }
    let f = std::fs::File::open(file).with_context(|| format!("{}", file.display()))?;
    let meta = f
        .metadata()
        .with_context(|| format!("{}", file.display()))?;
    if !meta.is_file() {
        bail!("{}: not a regular file", file.display());
    }
    let mut plain = Vec::with_capacity(meta.len().min(MAX_SIZE) as usize);
    f.take(MAX_SIZE + 1)
        .read_to_end(&mut plain)
        .with_context(|| format!("{}", file.display()))?;
    if plain.len() as u64 > MAX_SIZE {
        bail!(
            "{}: larger than {MAX_SIZE} bytes, the most jarvisd reads of an env file or a secret",
            file.display()
        );
    }
    let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_ref() as _))
        .map_err(|e| anyhow::anyhow!("cannot encrypt to these recipients: {e}"))?;
    let mut ciphertext = Vec::with_capacity(plain.len() + 512);
    let mut w = encryptor.wrap_output(&mut ciphertext)?;
    w.write_all(&plain)?;
    w.finish()?;
    plain.fill(0);

    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = out
        .file_name()
        .with_context(|| format!("{}: not a file name", out.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.partial",
        name.to_string_lossy(),
        std::process::id()
    ));
    let written = (|| -> std::io::Result<()> {
        let mut t = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        t.write_all(&ciphertext)?;
        t.sync_all()?;
        std::fs::rename(&tmp, out)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("{}", out.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decrypt(path: &Path, id: &age::x25519::Identity) -> Vec<u8> {
        let bytes = std::fs::read(path).unwrap();
        let d = age::Decryptor::new_buffered(&bytes[..]).unwrap();
        let mut r = d
            .decrypt(std::iter::once(id as &dyn age::Identity))
            .unwrap();
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        out
    }

    #[test]
    fn encrypts_to_keys_and_key_files() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (
            age::x25519::Identity::generate(),
            age::x25519::Identity::generate(),
        );
        let plain = tmp.path().join("db_password");
        std::fs::write(&plain, "hunter2\n").unwrap();
        let keys = tmp.path().join("hosts.txt");
        std::fs::write(&keys, format!("# the NAS\n\n{}\n", b.to_public())).unwrap();
        run(SecretCommand::Encrypt {
            file: plain.clone(),
            recipient: vec![a.to_public().to_string(), keys.display().to_string()],
            output: None,
        })
        .unwrap();
        let out = tmp.path().join("db_password.age");
        let bytes = std::fs::read(&out).unwrap();
        assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
        assert!(!bytes.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(decrypt(&out, &a), b"hunter2\n");
        assert_eq!(decrypt(&out, &b), b"hunter2\n");
        // No temporary file is left beside it.
        let names: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "{names:?}");
    }

    #[test]
    fn bad_recipients_are_refused_before_anything_is_written() {
        let tmp = tempfile::tempdir().unwrap();
        let plain = tmp.path().join("x");
        std::fs::write(&plain, "x").unwrap();
        let out = tmp.path().join("x.age");
        for (bad, want) in [
            ("age1nope", "is not a valid age recipient"),
            (
                "ssh-ed25519 AAAAnope",
                "not an SSH public key age encrypts to",
            ),
            (
                "/nonexistent/keys",
                "not an age recipient (age1...), an SSH public key",
            ),
        ] {
            let e = run(SecretCommand::Encrypt {
                file: plain.clone(),
                recipient: vec![bad.into()],
                output: Some(out.clone()),
            })
            .unwrap_err();
            assert!(format!("{e:#}").contains(want), "{bad}: {e:#}");
            assert!(!out.exists());
        }
        let empty = tmp.path().join("empty.txt");
        std::fs::write(&empty, "# nobody yet\n").unwrap();
        let Err(e) = recipients(&[empty.display().to_string()]) else {
            panic!("a file without keys gave recipients");
        };
        assert!(format!("{e:#}").contains("holds no recipient"), "{e:#}");
        let e = run(SecretCommand::Encrypt {
            file: plain.clone(),
            recipient: vec![age::x25519::Identity::generate().to_public().to_string()],
            output: Some(plain.clone()),
        })
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("the output is the input"),
            "{e:#}"
        );
        assert_eq!(std::fs::read(&plain).unwrap(), b"x");
    }
}
