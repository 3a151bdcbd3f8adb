//! `jarvisctl bench UNIT`: jarvisd switches the unit between its forms, in
//! alternating rounds (native first); the requests go from here, the same
//! client for both.
//!
//! Nothing is concluded from failed or missing data: the first failed
//! request ends the measurement, and rounds that do not pass
//! [`jarvis_benchstats::check`] are not sent to jarvisd. The command then
//! exits non-zero with the reason, and `run = "auto"` keeps whatever
//! recommendation it had.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::bail;
use jarvis_proto::{Request, Response};

use super::{chart, report, stats, Api, BenchClient, BenchReport, Form, Round};
use crate::client::Client;

/// What the command needs from jarvisd: one request, one answer (an error
/// answer is an error).
pub trait Daemon {
    fn expect(&self, req: Request) -> anyhow::Result<Response>;
}

impl Daemon for Client {
    fn expect(&self, req: Request) -> anyhow::Result<Response> {
        Client::expect(self, req)
    }
}

/// The number of rounds to run: at least one native/container pair, and
/// always whole pairs (an odd count is rounded up).
pub fn round_count(asked: u32) -> u32 {
    let n = asked.max(2);
    n + n % 2
}

/// Runs the benchmark of `unit` and reports it (text, or `--json`); sends
/// the report to jarvisd only when its rounds pass the checks.
pub fn run(
    client: &impl Daemon,
    unit: &str,
    rounds: Option<u32>,
    requests: Option<u32>,
    chart_path: Option<PathBuf>,
    start_timeout: Duration,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let Response::BenchPlan(plan) = client.expect(Request::BenchBegin {
        unit: unit.to_string(),
    })?
    else {
        unreachable!("checked by expect")
    };
    let api: Api = plan.api.parse()?;
    let asked = rounds.unwrap_or(plan.rounds);
    let rounds_n = round_count(asked);
    if rounds_n != asked {
        eprintln!("running {rounds_n} rounds: rounds are compared in native/container pairs");
    }
    let per_round = requests.unwrap_or(plan.requests).max(1);
    let http = BenchClient::new(api, &plan.url, plan.model.clone(), Duration::from_secs(120))?;
    let t0 = Instant::now();
    let mut done: Vec<Round> = Vec::new();
    let measured = (|| -> anyhow::Result<()> {
        for i in 0..rounds_n {
            let form = if i % 2 == 0 {
                Form::Native
            } else {
                Form::Container
            };
            eprint!("round {}/{rounds_n} {form}: starting ", i + 1);
            client.expect(Request::BenchForm {
                unit: unit.to_string(),
                form: Some(match form {
                    Form::Native => jarvis_proto::UnitKind::Native,
                    Form::Container => jarvis_proto::UnitKind::Container,
                }),
                timeout_ms: start_timeout.as_millis() as u64,
            })?;
            // One warm-up request, not measured.
            http.measure(&plan.prompt, plan.max_tokens)?;
            let mut round = Round::new(form, i as usize, t0.elapsed().as_millis() as u64);
            let started = Instant::now();
            for k in 0..per_round {
                eprint!(
                    "\rround {}/{rounds_n} {form}: request {}/{per_round}   ",
                    i + 1,
                    k + 1
                );
                match http.measure(&plan.prompt, plan.max_tokens) {
                    Ok(s) => round.samples.push(s),
                    Err(e) => {
                        round.errors.push(format!("{e:#}"));
                        break;
                    }
                }
            }
            round.duration_ms = started.elapsed().as_secs_f64() * 1e3;
            let lat: Vec<f64> = round.samples.iter().map(|s| s.latency_ms).collect();
            eprintln!(
                "\rround {}/{rounds_n} {form}: {} requests, {} failed, median latency {:.1} ms",
                i + 1,
                round.samples.len(),
                round.errors.len(),
                stats::median(&lat).unwrap_or(f64::NAN)
            );
            let failed = !round.errors.is_empty();
            done.push(round);
            if failed {
                break;
            }
        }
        Ok(())
    })();
    // Whatever happened, the unit goes back to how it was.
    let restored = client.expect(Request::BenchForm {
        unit: unit.to_string(),
        form: None,
        timeout_ms: 0,
    });
    measured?;
    restored?;
    let report = match BenchReport::new(unit, api, done, plan.max_slowdown) {
        Ok(report) => report,
        Err(refusal) => bail!(
            "no result: {refusal}; nothing was sent to jarvisd, and run = \"auto\" keeps what it had"
        ),
    };
    let value = serde_json::to_value(&report)?;
    if let Response::Done { message } = client.expect(Request::BenchResult {
        unit: unit.to_string(),
        result: value.clone(),
    })? {
        eprintln!("{message}");
    }
    if let Some(path) = chart_path {
        chart::write_svg(&report, &path)?;
        eprintln!("chart: {}", path.display());
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", report::render_text(&report));
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::thread;

    use super::*;

    #[test]
    fn rounds_come_in_pairs() {
        assert_eq!(round_count(0), 2);
        assert_eq!(round_count(1), 2);
        assert_eq!(round_count(2), 2);
        assert_eq!(round_count(3), 4);
        assert_eq!(round_count(6), 6);
    }

    /// A llama.cpp server on 127.0.0.1 that answers `ok` requests with a
    /// two-token stream, then every later one with HTTP 500.
    fn llamacpp(ok: usize) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        thread::spawn(move || {
            for (i, stream) in listener.incoming().enumerate() {
                let mut stream = stream.unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut h = String::new();
                    reader.read_line(&mut h).unwrap();
                    if h.trim().is_empty() {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':') {
                        if k.eq_ignore_ascii_case("content-length") {
                            length = v.trim().parse().unwrap();
                        }
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let reply = if i < ok {
                    let body = format!(
                        "data: {}\n\ndata: {}\n\ndata: {}\n\n",
                        serde_json::json!({"content": "a", "stop": false}),
                        serde_json::json!({"content": "b", "stop": false}),
                        serde_json::json!({"content": "", "stop": true, "timings": {
                            "prompt_n": 4, "prompt_ms": 2.0, "prompt_per_second": 2000.0,
                            "predicted_n": 2, "predicted_ms": 4.0, "predicted_per_second": 500.0}}),
                    );
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                } else {
                    "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\nConnection: close\r\n\r\nboom"
                        .to_string()
                };
                stream.write_all(reply.as_bytes()).unwrap();
            }
        });
        url
    }

    /// jarvisd as the command sees it: answers the plan, switches forms,
    /// records every request.
    struct FakeDaemon {
        url: String,
        seen: RefCell<Vec<Request>>,
    }

    impl Daemon for FakeDaemon {
        fn expect(&self, req: Request) -> anyhow::Result<Response> {
            self.seen.borrow_mut().push(req.clone());
            Ok(match req {
                Request::BenchBegin { unit } => Response::BenchPlan(jarvis_proto::BenchPlan {
                    unit,
                    api: "llamacpp".into(),
                    url: self.url.clone(),
                    model: None,
                    prompt: "p".into(),
                    max_tokens: 2,
                    requests: 3,
                    rounds: 4,
                    max_slowdown: 0.05,
                    forms: vec![
                        jarvis_proto::UnitKind::Native,
                        jarvis_proto::UnitKind::Container,
                    ],
                }),
                _ => Response::Done {
                    message: "ok".into(),
                },
            })
        }
    }

    fn bench(ok: usize) -> (anyhow::Result<ExitCode>, Vec<Request>) {
        let daemon = FakeDaemon {
            url: llamacpp(ok),
            seen: RefCell::new(Vec::new()),
        };
        let out = run(
            &daemon,
            "llm",
            None,
            None,
            None,
            Duration::from_secs(1),
            true,
        );
        (out, daemon.seen.into_inner())
    }

    fn sent_result(seen: &[Request]) -> Option<&serde_json::Value> {
        seen.iter().find_map(|r| match r {
            Request::BenchResult { result, .. } => Some(result),
            _ => None,
        })
    }

    #[test]
    fn a_failed_request_sends_nothing_and_fails() {
        // Four rounds of one warm-up and three requests: the 7th request
        // (round 2's second measured one) fails.
        let (out, seen) = bench(6);
        let err = out.unwrap_err().to_string();
        assert!(
            err.starts_with("no result: round 2 (container) had 1 failed request(s), the first: "),
            "{err}"
        );
        assert!(err.contains("HTTP 500"), "{err}");
        assert!(err.ends_with("nothing was sent to jarvisd, and run = \"auto\" keeps what it had"));
        assert!(sent_result(&seen).is_none(), "{seen:?}");
        // The measurement stopped there, and the unit was put back.
        let forms: Vec<Option<jarvis_proto::UnitKind>> = seen
            .iter()
            .filter_map(|r| match r {
                Request::BenchForm { form, .. } => Some(*form),
                _ => None,
            })
            .collect();
        assert_eq!(
            forms,
            [
                Some(jarvis_proto::UnitKind::Native),
                Some(jarvis_proto::UnitKind::Container),
                None
            ]
        );
    }

    #[test]
    fn clean_rounds_send_the_raw_rounds() {
        let (out, seen) = bench(usize::MAX);
        assert_eq!(out.unwrap(), ExitCode::SUCCESS);
        let result = sent_result(&seen).expect("a result was sent");
        let sub: jarvis_benchstats::Submission = serde_json::from_value(result.clone()).unwrap();
        assert_eq!(sub.rounds.len(), 4);
        assert!(sub
            .rounds
            .iter()
            .all(|r| r.samples.len() == 3 && r.errors.is_empty()));
        assert_eq!(sub.rounds[1].form, Form::Container);
        let again = sub.analyze().unwrap();
        assert_eq!(
            serde_json::to_value(&again.analysis.metrics).unwrap(),
            result["metrics"]
        );
    }
}
