//! What a run reads from the host at each start: env files, and a native
//! unit's secrets in `$CREDENTIALS_DIRECTORY`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use jarvis_runtime::{Runtime, StartError};
use jarvis_unit::{Exec, Native, Secret, Unit};
use libtest_mimic::Failed;

use super::{check, runtime, Env};

fn native(script: &str) -> Unit {
    Unit::new(
        "web",
        Exec::Native(Native::new(vec![
            "/bin/sh".into(),
            "-c".into(),
            script.into(),
        ])),
    )
}

/// Starts `u`, waits for its end, and returns what it wrote to its log.
async fn run_to_end(env: &Env, u: &Unit) -> Result<String, Failed> {
    let log = env.dir.path().join("web.log");
    let _ = std::fs::remove_file(&log);
    let run = env
        .rts
        .start(env.spec(u.clone()))
        .await
        .map_err(|e| e.to_string())?;
    let exit = tokio::time::timeout(Duration::from_secs(10), env.rts.wait("web", run))
        .await
        .map_err(|_| "no exit within 10s")?;
    check(exit.code == Some(0), format!("exit {exit:?}"))?;
    Ok(jarvis_runtime::logfile::plain_text(
        &std::fs::read(&log).unwrap_or_default(),
    ))
}

/// The value of `key=` in the log.
fn value<'a>(log: &'a str, key: &str) -> Option<&'a str> {
    log.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::trim))
}

pub fn env_files_are_read_at_each_start() -> Result<(), Failed> {
    let env = Env::new("envfile");
    let a = env.dir.path().join("a.env");
    let b = env.dir.path().join("b.env");
    std::fs::write(&a, "# base\nX=from-a\nY=from-a\nexport Z=from-a\n")?;
    std::fs::write(&b, "Y='from b'\n")?;
    let mut u = native("echo x=$X; echo y=$Y; echo z=$Z");
    u.env_file = vec![a.clone(), b.clone()];
    u.env.insert("Z".into(), "from-env".into());
    runtime().block_on(async {
        let log = run_to_end(&env, &u).await?;
        check(value(&log, "x") == Some("from-a"), format!("x: {log}"))?;
        check(value(&log, "y") == Some("from b"), format!("y: {log}"))?;
        check(value(&log, "z") == Some("from-env"), format!("z: {log}"))?;

        // Read again at the next start.
        std::fs::write(&b, "Y=changed\n")?;
        let log = run_to_end(&env, &u).await?;
        check(value(&log, "y") == Some("changed"), format!("y: {log}"))?;

        // A missing file fails the start and names it.
        std::fs::remove_file(&a)?;
        let err = env.rts.start(env.spec(u.clone())).await.err();
        let want = format!("env_file {}: no such file", a.display());
        check(
            err == Some(StartError::failed(want.clone())),
            format!("{err:?}, want {want}"),
        )?;
        // A container unit's start fails the same way, before its image.
        let mut c = u.clone();
        c.exec = Exec::Container(
            jarvis_unit::Container::new("busybox:none").with_network(jarvis_unit::Network::None),
        );
        let err = env.rts.start(env.spec(c)).await.err();
        check(
            matches!(&err, Some(StartError::Failed(m)) if m.reason.contains(&a.display().to_string())),
            format!("container: {err:?}"),
        )
    })
}

pub fn native_secrets_in_credentials_directory() -> Result<(), Failed> {
    let env = Env::new("creds");
    // The unit's user passes through the state directory to its own.
    for d in [env.dir.path(), &env.dir.path().join("state")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o711))?;
    }
    let src = env.dir.path().join("db_password");
    std::fs::write(&src, "s3cret")?;
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o600))?;
    let mut u = native(
        "echo dir=$CREDENTIALS_DIRECTORY; echo value=$(cat $CREDENTIALS_DIRECTORY/db); \
         echo meta=$(stat -c %u:%a $CREDENTIALS_DIRECTORY/db); \
         echo dirmeta=$(stat -c %u:%a $CREDENTIALS_DIRECTORY); \
         (echo x > $CREDENTIALS_DIRECTORY/db) 2>/dev/null && echo write=1 || echo write=0",
    );
    if let Exec::Native(n) = &mut u.exec {
        n.user = Some("nobody".into());
    }
    u.secrets = vec![Secret {
        source: src.clone(),
        target: "db".into(),
        mode: Secret::DEFAULT_MODE,
    }];
    let nobody = nix::unistd::User::from_name("nobody")?.ok_or("no user nobody")?;
    let uid = nobody.uid.as_raw();
    runtime().block_on(async {
        let log = run_to_end(&env, &u).await?;
        let dir = value(&log, "dir")
            .ok_or(format!("no dir: {log}"))?
            .to_string();
        check(
            dir == env
                .rts
                .config()
                .credentials_dir("web")
                .display()
                .to_string(),
            format!("dir {dir}"),
        )?;
        check(
            value(&log, "value") == Some("s3cret"),
            format!("value: {log}"),
        )?;
        check(
            value(&log, "meta") == Some(&format!("{uid}:400")),
            format!("meta: {log}"),
        )?;
        check(
            value(&log, "dirmeta") == Some(&format!("{uid}:500")),
            format!("dirmeta: {log}"),
        )?;
        check(value(&log, "write") == Some("0"), format!("write: {log}"))?;
        // Gone with the run, mount and all.
        check(!Path::new(&dir).exists(), format!("{dir} stayed"))?;
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
        check(!mounts.contains(&dir), format!("{dir} is still mounted"))?;

        // A missing source fails the start and names the file.
        std::fs::remove_file(&src)?;
        let err = env.rts.start(env.spec(u.clone())).await.err();
        check(
            matches!(&err, Some(StartError::Failed(m)) if m.reason.contains(&src.display().to_string())),
            format!("{err:?}"),
        )?;
        check(
            !Path::new(&dir).exists(),
            format!("{dir} after a failed start"),
        )
    })
}
