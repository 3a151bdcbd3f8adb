//! jarvisd: the supervisor daemon. Also the launcher it re-executes to start
//! each process (`jarvisd __launch`, internal).

fn main() -> std::process::ExitCode {
    if std::env::args_os().nth(1).as_deref() == Some(jarvis_native::LAUNCH_ARG.as_ref()) {
        jarvis_native::launcher_main();
    }
    jarvis_supervisor::main()
}
