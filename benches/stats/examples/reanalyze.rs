//! Analyses a stored benchmark result again from its raw rounds, with this
//! version's checks and statistics: `cargo run -p jarvis-benchstats
//! --example reanalyze < result.json` prints the analysis (JSON), or why
//! nothing can be concluded (exit 1).

use std::io::Read;
use std::process::ExitCode;

use jarvis_benchstats::Submission;

fn main() -> ExitCode {
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        eprintln!("reanalyze: stdin: {e}");
        return ExitCode::FAILURE;
    }
    let sub: Submission = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("reanalyze: not a benchmark result: {e}");
            return ExitCode::FAILURE;
        }
    };
    match sub.analyze() {
        Ok(rec) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&rec.analysis).expect("serializable")
            );
            ExitCode::SUCCESS
        }
        Err(refusal) => {
            eprintln!("reanalyze: no result: {refusal}");
            ExitCode::FAILURE
        }
    }
}
