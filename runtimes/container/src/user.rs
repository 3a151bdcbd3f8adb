//! The user a container runs as: "uid", "uid:gid", "name", "name:group",
//! resolved against the image's own `/etc/passwd` and `/etc/group`, with the
//! rules of runc's `GetExecUser` (which Docker and Podman follow).

use std::io;
use std::path::Path;

use crate::inroot;

/// The largest `/etc/passwd` or `/etc/group` read from an image.
const DB_LIMIT: u64 = 16 * 1024 * 1024;

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// One line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
}

/// The image's user and group databases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserDb {
    pub passwd: Vec<PasswdEntry>,
    pub group: Vec<GroupEntry>,
}

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups: the groups that list the user as a member, when
    /// the user was given by name (or found by uid) and no group was given.
    pub additional_gids: Vec<u32>,
    /// The home directory from `/etc/passwd`, `/` when the user has no entry.
    pub home: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum UserError {
    #[error("user {0:?} is not in the image's /etc/passwd")]
    NoSuchUser(String),
    #[error("group {0:?} is not in the image's /etc/group")]
    NoSuchGroup(String),
    #[error("invalid user {0:?}: expected uid, uid:gid, name or name:group")]
    Invalid(String),
}

impl UserDb {
    /// Parses the text of `/etc/passwd` and `/etc/group`. Malformed lines
    /// (and NIS `+`/`-` lines) are skipped, as libc does.
    pub fn parse(passwd: &str, group: &str) -> UserDb {
        let passwd = passwd
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() < 7 || f[0].is_empty() || f[0].starts_with(['+', '-']) {
                    return None;
                }
                Some(PasswdEntry {
                    name: f[0].to_string(),
                    uid: f[2].trim().parse().ok()?,
                    gid: f[3].trim().parse().ok()?,
                    home: f[5].to_string(),
                })
            })
            .collect();
        let group = group
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split(':').collect();
                if f.len() < 4 || f[0].is_empty() || f[0].starts_with(['+', '-']) {
                    return None;
                }
                Some(GroupEntry {
                    name: f[0].to_string(),
                    gid: f[2].trim().parse().ok()?,
                    members: f[3]
                        .split(',')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .map(str::to_string)
                        .collect(),
                })
            })
            .collect();
        UserDb { passwd, group }
    }

    /// Reads `/etc/passwd` and `/etc/group` of a rootfs, resolving both paths
    /// inside it (an image's symlink cannot point at the host's files). A
    /// missing file is an empty database.
    pub fn load(rootfs: &Path) -> io::Result<UserDb> {
        let read = |p: &str| -> io::Result<String> {
            Ok(inroot::read_file(rootfs, Path::new(p), DB_LIMIT)?
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default())
        };
        Ok(UserDb::parse(&read("/etc/passwd")?, &read("/etc/group")?))
    }

    /// Resolves a user string; the empty string is root.
    pub fn resolve(&self, spec: &str) -> Result<ExecUser, UserError> {
        let (user_arg, group_arg) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        if group_arg.is_some_and(|g| g.is_empty() || g.contains(':')) {
            return Err(UserError::Invalid(spec.to_string()));
        }
        let user_arg = if user_arg.is_empty() { "0" } else { user_arg };
        let numeric_uid = user_arg.parse::<u32>().ok();
        let entry = self
            .passwd
            .iter()
            .find(|e| e.name == user_arg || Some(e.uid) == numeric_uid);
        let (uid, mut gid, home, name) = match (entry, numeric_uid) {
            (Some(e), _) => (e.uid, e.gid, e.home.clone(), Some(e.name.as_str())),
            // A numeric uid needs no entry; its group is then root's.
            (None, Some(uid)) => (uid, 0, "/".to_string(), None),
            (None, None) => return Err(UserError::NoSuchUser(user_arg.to_string())),
        };
        let mut additional_gids = Vec::new();
        match group_arg {
            Some(g) => {
                let numeric_gid = g.parse::<u32>().ok();
                gid = match self.group.iter().find(|e| e.name == g) {
                    Some(e) => e.gid,
                    None => numeric_gid.ok_or_else(|| UserError::NoSuchGroup(g.to_string()))?,
                };
            }
            None => {
                if let Some(name) = name {
                    for g in &self.group {
                        if g.members.iter().any(|m| m == name)
                            && g.gid != gid
                            && !additional_gids.contains(&g.gid)
                        {
                            additional_gids.push(g.gid);
                        }
                    }
                }
            }
        }
        Ok(ExecUser {
            uid,
            gid,
            additional_gids,
            home: if home.is_empty() { "/".into() } else { home },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
+nis::::::
broken line
www:x:33:33:www-data:/var/www:/usr/sbin/nologin
app:x:1000:1000::/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
";
    const GROUP: &str = "\
root:x:0:
daemon:x:1:
www:x:33:app
video:x:44:app, other
app:x:1000:app
nogroup:x:65534:
";

    fn db() -> UserDb {
        UserDb::parse(PASSWD, GROUP)
    }

    fn user(uid: u32, gid: u32, extra: &[u32], home: &str) -> ExecUser {
        ExecUser {
            uid,
            gid,
            additional_gids: extra.to_vec(),
            home: home.into(),
        }
    }

    #[test]
    fn parse_skips_malformed_lines() {
        let db = db();
        assert_eq!(db.passwd.len(), 5);
        assert_eq!(db.group.len(), 6);
        assert_eq!(db.group[3].members, vec!["app", "other"]);
    }

    #[test]
    fn empty_is_root() {
        assert_eq!(db().resolve(""), Ok(user(0, 0, &[], "/root")));
        assert_eq!(UserDb::default().resolve(""), Ok(user(0, 0, &[], "/")));
    }

    #[test]
    fn by_name_gets_primary_and_supplementary_groups() {
        assert_eq!(
            db().resolve("app"),
            Ok(user(1000, 1000, &[33, 44], "/home/app"))
        );
        assert_eq!(
            db().resolve("nobody"),
            Ok(user(65534, 65534, &[], "/nonexistent"))
        );
    }

    #[test]
    fn by_uid() {
        assert_eq!(
            db().resolve("1000"),
            Ok(user(1000, 1000, &[33, 44], "/home/app"))
        );
        // Not in /etc/passwd: fine for a number, with gid 0 and home /.
        assert_eq!(db().resolve("4242"), Ok(user(4242, 0, &[], "/")));
    }

    #[test]
    fn explicit_group_drops_supplementary_groups() {
        assert_eq!(
            db().resolve("app:video"),
            Ok(user(1000, 44, &[], "/home/app"))
        );
        assert_eq!(db().resolve("app:7"), Ok(user(1000, 7, &[], "/home/app")));
        assert_eq!(db().resolve("33:33"), Ok(user(33, 33, &[], "/var/www")));
        assert_eq!(db().resolve("4242:4242"), Ok(user(4242, 4242, &[], "/")));
        assert_eq!(db().resolve(":44"), Ok(user(0, 44, &[], "/root")));
    }

    #[test]
    fn unknown_names_fail() {
        assert_eq!(
            db().resolve("ghost"),
            Err(UserError::NoSuchUser("ghost".into()))
        );
        assert_eq!(
            db().resolve("app:ghosts"),
            Err(UserError::NoSuchGroup("ghosts".into()))
        );
        assert!(matches!(db().resolve("app:"), Err(UserError::Invalid(_))));
        assert!(matches!(db().resolve("a:b:c"), Err(UserError::Invalid(_))));
    }

    #[test]
    fn load_reads_the_rootfs_files() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/passwd"), PASSWD).unwrap();
        std::fs::write(root.path().join("etc/group"), GROUP).unwrap();
        assert_eq!(UserDb::load(root.path()).unwrap(), db());
        let empty = tempfile::tempdir().unwrap();
        assert_eq!(UserDb::load(empty.path()).unwrap(), UserDb::default());
    }
}
