//! What both forms share: the shim that starts and watches a run, and the
//! unit's cgroup, `/<parent>/<unit>`, which stats, kills and removal find
//! at the same path whichever form ran.

use std::path::PathBuf;

use jarvis_shim::{Adopted, Payload, ShimSpec};

use crate::{blocking, BoxFuture, Config, Exit, Found, Running, StartError, Stats};

/// Starts a shim for `payload`; resolves once the unit's process runs.
pub(crate) async fn start(
    cfg: &Config,
    unit: &str,
    payload: Payload,
    identity: Option<jarvis_native::launch::Identity>,
    log: jarvis_shim::logfile::LogConfig,
    devices: Vec<PathBuf>,
    secrets: bool,
) -> Result<Running, StartError> {
    let spec = ShimSpec {
        unit: unit.to_string(),
        launcher: cfg.launcher.clone(),
        payload,
        log,
        run_dir: cfg.run_dir.clone(),
        cgroup_parent: cfg.cgroup_parent.clone(),
        cgroup_name: unit.to_string(),
    };
    // Native runs start the small shim binary where it is installed (an
    // exec of a few hundred kilobytes, not of jarvisd), containers jarvisd.
    let exe = match (&spec.payload, &cfg.native_shim) {
        (Payload::Native(_), Some(shim)) => shim,
        _ => &cfg.launcher,
    };
    let started = jarvis_shim::spawn(&cfg.shims, exe, &spec, identity)
        .await
        .map_err(|e| StartError::Failed(e.to_string()))?;
    Ok(Running {
        pid: started.pid(),
        devices,
        shim: Box::new(started),
        secrets,
    })
}

/// The run's end; then its secrets go.
pub(crate) fn wait(cfg: &Config, unit: &str, run: Running) -> BoxFuture<Exit> {
    let (run_dir, cg, unit) = (cfg.run_dir.clone(), cfg.cgroup(unit), unit.to_string());
    let secrets = crate::inputs::dirs(cfg, &unit);
    let pool = cfg.shims.clone();
    Box::pin(async move {
        let exit = match jarvis_shim::wait(&pool, *run.shim, &run_dir).await {
            Some(rec) => rec.into(),
            None => {
                tracing::warn!(
                    unit,
                    "the shim died without an exit record; emptying the cgroup"
                );
                if let Err(e) = blocking(move || cg.kill_all()).await {
                    tracing::error!(unit, error = %e, "cannot empty the cgroup");
                }
                Exit::UNKNOWN
            }
        };
        if run.secrets {
            blocking(move || crate::inputs::clear_dirs(&secrets)).await;
        }
        exit
    })
}

pub(crate) fn adopt(cfg: &Config, unit: &str) -> Found {
    match jarvis_shim::adopt(&cfg.run_dir, unit) {
        Some(Adopted::Running(started)) => Found::Running(Running::adopted(*started)),
        Some(Adopted::Ended(record, exit)) => {
            // Over while no jarvisd watched: its secrets go now.
            crate::inputs::clear(cfg, unit);
            Found::Ended {
                pid: record.pid,
                exit: exit.map(Exit::from),
            }
        }
        None => Found::Nothing,
    }
}

pub(crate) fn kill_all(cfg: &Config, unit: &str) -> BoxFuture<Result<(), String>> {
    let cg = cfg.cgroup(unit);
    Box::pin(async move { blocking(move || cg.kill_all().map_err(|e| e.to_string())).await })
}

pub(crate) fn stats(cfg: &Config, unit: &str) -> BoxFuture<Stats> {
    let cg = cfg.cgroup(unit);
    Box::pin(blocking(move || cg.stats()))
}

/// Removes the unit's cgroup (blocking). A cgroup still holding processes
/// is emptied first.
pub(crate) fn remove_cgroup(cfg: &Config, unit: &str) -> Result<(), String> {
    let cg = cfg.cgroup(unit);
    if cg.remove().is_ok() {
        return Ok(());
    }
    cg.kill_all().map_err(|e| e.to_string())?;
    cg.remove().map_err(|e| e.to_string())
}
