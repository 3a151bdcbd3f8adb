//! jarvisctl: the command line client of jarvisd.

fn main() -> std::process::ExitCode {
    jarvis_cli::main()
}
