//! Native units: a process started by its shim's fork, in a cgroup this
//! runtime creates and limits from `[resources]`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jarvis_native::{LaunchSpec, UnitCgroup};
use jarvis_shim::Payload;
use jarvis_unit::{Exec, Resources, Unit};
use tokio::io::AsyncReadExt;

use crate::hardware::{resolve_devices, RunHardware};
use crate::{blocking, shim, BoxFuture, Config, Running, StartError, StartFailure, StartSpec};

/// The environment every unit starts from; `[env]` adds to it and wins.
const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// At most this much of an exec check's output is kept.
const PROBE_OUTPUT_MAX: usize = 4096;

/// Native units (see the module docs).
#[derive(Clone)]
pub struct NativeRuntime {
    cfg: Arc<Config>,
    /// The limits each unit's cgroup was last given here. A restart with
    /// the same limits, whose cgroup is still there in every hierarchy,
    /// keeps it as it is: nothing else writes a native unit's limits (one
    /// owner per kernel object), so writing them again would change
    /// nothing. A removed cgroup (a stop, a container run's delete) is made
    /// and limited again.
    applied: Arc<Mutex<HashMap<String, Resources>>>,
}

impl NativeRuntime {
    pub fn new(cfg: Arc<Config>) -> NativeRuntime {
        NativeRuntime {
            cfg,
            applied: Arc::default(),
        }
    }

    /// `jarvisctl exec`: `argv` in the unit's cgroup with its identity and
    /// privileges (or `user`'s identity), started the way a run is, with
    /// the caller's stdin, stdout and stderr. With `tty` its stdin is a
    /// terminal (a pty's slave) that becomes the controlling terminal of
    /// the command's session, so `tty` names it and Ctrl-C reaches it.
    pub(crate) fn exec(
        &self,
        unit: &Unit,
        argv: Vec<String>,
        user: Option<String>,
        tty: bool,
        stdio: crate::ExecStdio,
    ) -> BoxFuture<Result<i32, String>> {
        let mut unit = unit.clone();
        if let (Some(user), Exec::Native(n)) = (user, &mut unit.exec) {
            n.user = Some(user);
            n.group = None;
            n.supplementary_groups.clear();
        }
        let cgroup = self.cfg.cgroup(&unit.name);
        let launcher = self.cfg.launcher.clone();
        let cfg = self.cfg.clone();
        Box::pin(async move {
            let unit = blocking(move || crate::inputs::with_env_files(&cfg, unit))
                .await
                .map_err(|e| e.to_string())?;
            let spec = launch_spec(&unit, argv, &cgroup);
            let what = spec.argv.join(" ");
            let stdio = jarvis_native::launch::Stdio3 {
                stdin: stdio.stdin,
                stdout: stdio.stdout,
                stderr: stdio.stderr,
                controlling_terminal: tty,
            };
            let mut child = blocking(move || {
                jarvis_native::launch::spawn_blocking_stdio(&launcher, &spec, None, stdio)
            })
            .await
            .map_err(|e| format!("{what}: {e}"))?;
            let guard = KillOnDrop(child.id() as i32);
            let status = blocking(move || child.wait())
                .await
                .map_err(|e| format!("{what}: {e}"))?;
            std::mem::forget(guard);
            Ok(crate::exit_code(status))
        })
    }

    /// The `jarvis-shim` binary installed next to jarvisd, as jarvisd's
    /// `main` found it (`JARVIS_NATIVE_SHIM`, set before jarvisd re-executes
    /// itself from a sealed copy); `None`, said in the log, when it is not
    /// there: native runs' shims are then `jarvisd __shim` too.
    pub fn installed_shim() -> Option<std::path::PathBuf> {
        let found = std::env::var_os(jarvis_shim::NATIVE_SHIM_ENV)
            .map(std::path::PathBuf::from)
            .filter(|p| p.is_absolute() && p.is_file());
        if found.is_none() {
            tracing::warn!(
                "{} is not installed next to jarvisd: native units' shims run as `jarvisd {}`",
                jarvis_shim::SHIM_NAME,
                jarvis_shim::SHIM_ARG
            );
        }
        found
    }
}

/// The launch spec for `argv` with the unit's identity and privileges, in
/// `cgroup`.
pub(crate) fn launch_spec(unit: &Unit, argv: Vec<String>, cgroup: &UnitCgroup) -> LaunchSpec {
    let (user, group, supplementary_groups, working_dir) = match &unit.exec {
        Exec::Native(n) => (
            n.user.clone(),
            n.group.clone(),
            n.supplementary_groups.clone(),
            n.working_dir.clone(),
        ),
        Exec::Container(_) => (None, None, vec![], None),
    };
    LaunchSpec {
        env: base_env(unit, user.as_deref(), lookup_user),
        argv,
        user,
        group,
        supplementary_groups,
        working_dir,
        capabilities: unit.security.capabilities.clone(),
        no_new_privileges: unit.security.no_new_privileges,
        cgroup_procs: cgroup.procs_files(),
    }
}

/// PATH, the account's HOME/USER/LOGNAME (root's without a user), the
/// unit's name, then `[env]`, which wins.
fn base_env(
    unit: &Unit,
    user: Option<&str>,
    lookup: impl Fn(&str) -> Option<Account>,
) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = vec![("PATH".into(), BASE_PATH.into())];
    let account = match user {
        None => Some(Account {
            name: "root".into(),
            home: "/root".into(),
        }),
        Some(u) => lookup(u),
    };
    if let Some(account) = account {
        env.push(("HOME".into(), account.home));
        env.push(("USER".into(), account.name.clone()));
        env.push(("LOGNAME".into(), account.name));
    }
    env.push(("JARVIS_UNIT".into(), unit.name.clone()));
    for (k, v) in &unit.env {
        set_env(&mut env, k.clone(), v.clone());
    }
    env
}

fn set_env(env: &mut Vec<(String, String)>, k: String, v: String) {
    env.retain(|(ek, _)| *ek != k);
    env.push((k, v));
}

impl crate::Runtime for NativeRuntime {
    fn start(&self, spec: StartSpec) -> BoxFuture<Result<Running, StartError>> {
        let cfg = self.cfg.clone();
        let applied = self.applied.clone();
        Box::pin(async move {
            let StartSpec {
                unit,
                placement,
                log,
                ..
            } = spec;
            if !matches!(unit.exec, Exec::Native(_)) {
                return Err(StartError::failed(format!(
                    "unit {} is not a native unit",
                    unit.name
                )));
            }
            let secrets = !unit.secrets.is_empty();
            let name = unit.name.clone();
            // One trip to the blocking pool: the env files (read at each
            // start; a missing one fails it), the cgroup, the devices and
            // their links, the user and groups, the credentials.
            let (launch, identity, hw) = blocking({
                let cfg = cfg.clone();
                move || -> Result<_, StartError> {
                    let unit = if unit.env_file.is_empty() {
                        unit
                    } else {
                        crate::inputs::with_env_files(&cfg, unit)?
                    };
                    let Exec::Native(native) = &unit.exec else {
                        unreachable!("checked above");
                    };
                    let failure = |e: jarvis_native::CgroupError| {
                        StartError::Failed(StartFailure {
                            reason: e.to_string(),
                            transient: e.is_transient(),
                        })
                    };
                    let cgroup = unit_cgroup(&cfg, &applied, &unit.name, &unit.resources)
                        .map_err(failure)?;
                    // A run never shares its cgroup with processes no shim
                    // watches (left by a run whose shim died): they go
                    // first. Nothing is there most often, one read says so.
                    cgroup.kill_all().map_err(failure)?;
                    // The devices as they are now: one may have gone (or
                    // moved) since the unit was found ready.
                    let devices =
                        resolve_devices(&cfg.roots, &unit).map_err(StartError::Deferred)?;
                    let hw = RunHardware { placement, devices };
                    hw.link_native(&cfg.roots).map_err(StartError::failed)?;
                    let mut launch = launch_spec(&unit, native.command.clone(), &cgroup);
                    for (k, v) in hw.env() {
                        set_env(&mut launch.env, k, v);
                    }
                    if launch.user.is_some() {
                        launch
                            .supplementary_groups
                            .extend(hw.groups().into_iter().map(|g| g.to_string()));
                    }
                    let id = jarvis_native::launch::resolve_identity(&launch)
                        .map_err(StartError::failed)?;
                    if !unit.secrets.is_empty() {
                        if let Some(dir) =
                            crate::inputs::mount_credentials(&cfg, &unit, id.uid, id.gid)?
                        {
                            let dir = dir.to_string_lossy().into_owned();
                            set_env(&mut launch.env, crate::CREDENTIALS_ENV.into(), dir);
                        }
                    }
                    Ok((launch, id, hw))
                }
            })
            .await?;
            let started = shim::start(
                &cfg,
                &name,
                Payload::Native(launch),
                Some(identity),
                log,
                hw.device_paths(),
                secrets,
            )
            .await;
            if started.is_err() && secrets {
                let cfg = cfg.clone();
                blocking(move || crate::inputs::clear(&cfg, &name)).await;
            }
            started
        })
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn exec_probe(&self, unit: &Unit, argv: Vec<String>) -> BoxFuture<Result<String, String>> {
        let cgroup = self.cfg.cgroup(&unit.name);
        let spec = launch_spec(unit, argv, &cgroup);
        let launcher = self.cfg.launcher.clone();
        Box::pin(async move {
            let what = spec.argv.join(" ");
            let mut spawned = jarvis_native::spawn(&launcher, &spec)
                .await
                .map_err(|e| format!("{what}: {e}"))?;
            // The check is bounded by the caller's timeout; the process
            // must not outlive it.
            let guard = KillOnDrop(spawned.pid);
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = spawned.output.read(&mut buf).await {
                if out.len() < PROBE_OUTPUT_MAX {
                    out.extend_from_slice(&buf[..n.min(PROBE_OUTPUT_MAX - out.len())]);
                }
            }
            let status = spawned.wait().await.map_err(|e| e.to_string())?;
            std::mem::forget(guard);
            let text = String::from_utf8_lossy(&out).trim().to_string();
            if status.success() {
                Ok(text)
            } else {
                Err(format!("{what} {status}: {text}"))
            }
        })
    }

    fn remove(&self, unit: &str) -> BoxFuture<()> {
        self.cfg.shims.dismiss(unit);
        self.applied
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(unit);
        let (cfg, unit) = (self.cfg.clone(), unit.to_string());
        Box::pin(async move {
            if let Err(e) = blocking({
                let unit = unit.clone();
                move || shim::remove_cgroup(&cfg, &unit)
            })
            .await
            {
                tracing::warn!(unit, error = %e, "cannot remove the cgroup");
            }
        })
    }
}

/// The unit's cgroup, made and limited, or kept as it is when it is there
/// in every hierarchy with the limits it was last given here (blocking).
fn unit_cgroup(
    cfg: &Config,
    applied: &Mutex<HashMap<String, Resources>>,
    name: &str,
    limits: &Resources,
) -> Result<UnitCgroup, jarvis_native::CgroupError> {
    let lock = || applied.lock().unwrap_or_else(|e| e.into_inner());
    let cg = cfg.cgroup(name);
    if lock().get(name) == Some(limits) && cg.exists_everywhere() {
        return Ok(cg);
    }
    lock().remove(name);
    let cg = UnitCgroup::create(&cfg.cgroup_parent, name, limits)?;
    lock().insert(name.to_string(), limits.clone());
    Ok(cg)
}

struct KillOnDrop(i32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

struct Account {
    name: String,
    home: String,
}

fn lookup_user(user: &str) -> Option<Account> {
    let u = match user.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => nix::unistd::User::from_name(user),
    };
    u.ok().flatten().map(|u| Account {
        name: u.name,
        home: u.dir.to_string_lossy().into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(env: &[(&str, &str)]) -> Unit {
        let mut u = Unit::new(
            "web",
            Exec::Native(jarvis_unit::Native::new(vec!["/bin/true".into()])),
        );
        for (k, v) in env {
            u.env.insert(k.to_string(), v.to_string());
        }
        u
    }

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(ek, _)| ek == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn root_by_default_and_env_wins() {
        let env = base_env(&unit(&[("PATH", "/opt/bin")]), None, |_| None);
        assert_eq!(get(&env, "PATH"), Some("/opt/bin"));
        assert_eq!(env.iter().filter(|(k, _)| k == "PATH").count(), 1);
        assert_eq!(get(&env, "HOME"), Some("/root"));
        assert_eq!(get(&env, "USER"), Some("root"));
        assert_eq!(get(&env, "JARVIS_UNIT"), Some("web"));
    }

    #[test]
    fn a_user_gets_its_account_and_an_unknown_one_none() {
        let found = |u: &str| {
            (u == "www").then(|| Account {
                name: "www".into(),
                home: "/var/www".into(),
            })
        };
        let env = base_env(&unit(&[]), Some("www"), found);
        assert_eq!(get(&env, "HOME"), Some("/var/www"));
        assert_eq!(get(&env, "LOGNAME"), Some("www"));
        let env = base_env(&unit(&[]), Some("nobody-here"), found);
        assert_eq!(get(&env, "HOME"), None);
        assert_eq!(get(&env, "PATH"), Some(BASE_PATH));
    }
}
