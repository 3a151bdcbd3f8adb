//! A blocking HTTP client that measures one streamed completion request to
//! an inference server.
//!
//! Three APIs, each asked to stream so that the time to the first token can
//! be seen:
//!
//! * [`Api::Ollama`]: `POST {url}/api/generate` with
//!   `{"model", "prompt", "stream": true, "options": {"num_predict"}}`; the
//!   reply is NDJSON, one object a line, the last with `"done": true` and
//!   `eval_count`, `eval_duration`, `prompt_eval_count`,
//!   `prompt_eval_duration` (nanoseconds).
//! * [`Api::Openai`]: `POST {url}/v1/completions` with
//!   `{"model", "prompt", "max_tokens", "stream": true}`; the reply is SSE,
//!   `data: {...}` lines ending with `data: [DONE]`. A `usage` object, where
//!   a chunk carries one, gives the token counts; without it each streamed
//!   chunk with text counts as one generated token.
//! * [`Api::Llamacpp`]: `POST {url}/completion` with
//!   `{"prompt", "n_predict", "stream": true}`; the reply is SSE, the last
//!   `data:` object with `"stop": true` and `timings` (`prompt_n`,
//!   `prompt_ms`, `prompt_per_second`, `predicted_n`, `predicted_ms`,
//!   `predicted_per_second`).
//!
//! Plain HTTP only (the servers are on 127.0.0.1); no TLS, and no proxy from
//! the environment.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The API an inference server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    /// ollama's `/api/generate`.
    Ollama,
    /// OpenAI-compatible `/v1/completions` (vLLM, llama.cpp's server, ...).
    Openai,
    /// llama.cpp's own `/completion`.
    Llamacpp,
}

impl Api {
    pub fn as_str(self) -> &'static str {
        match self {
            Api::Ollama => "ollama",
            Api::Openai => "openai",
            Api::Llamacpp => "llamacpp",
        }
    }

    /// The path requests go to, below the base URL.
    pub fn path(self) -> &'static str {
        match self {
            Api::Ollama => "/api/generate",
            Api::Openai => "/v1/completions",
            Api::Llamacpp => "/completion",
        }
    }

    /// Whether requests must name a model.
    pub fn needs_model(self) -> bool {
        !matches!(self, Api::Llamacpp)
    }

    /// The JSON body of a request (pinned per API; see the module docs).
    pub fn request_body(self, model: Option<&str>, prompt: &str, max_tokens: u32) -> Value {
        let model = model.unwrap_or_default();
        match self {
            Api::Ollama => json!({
                "model": model,
                "prompt": prompt,
                "stream": true,
                "options": {"num_predict": max_tokens},
            }),
            Api::Openai => json!({
                "model": model,
                "prompt": prompt,
                "max_tokens": max_tokens,
                "stream": true,
            }),
            // Every request does the same work: all `n_predict` tokens (no
            // early end of sequence) and the prompt evaluated again (no
            // prompt cache carried over from the previous request).
            Api::Llamacpp => json!({
                "prompt": prompt,
                "n_predict": max_tokens,
                "stream": true,
                "ignore_eos": true,
                "cache_prompt": false,
            }),
        }
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Api {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "ollama" => Ok(Api::Ollama),
            "openai" => Ok(Api::Openai),
            "llamacpp" | "llama.cpp" => Ok(Api::Llamacpp),
            _ => bail!("unknown API {s:?} (ollama, openai or llamacpp)"),
        }
    }
}

pub use jarvis_benchstats::Sample;

/// Sends measured requests to one inference server.
#[derive(Debug, Clone)]
pub struct BenchClient {
    agent: ureq::Agent,
    api: Api,
    endpoint: String,
    model: Option<String>,
}

impl BenchClient {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:11434`)
    /// speaking `api`. `timeout` bounds each whole request. Fails if the API
    /// needs a model and none is given, or the URL is not plain `http://`.
    pub fn new(
        api: Api,
        base_url: &str,
        model: Option<String>,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        if api.needs_model() && model.as_deref().is_none_or(str::is_empty) {
            bail!("the {api} API needs a model name");
        }
        if !base_url.starts_with("http://") {
            bail!("{base_url:?}: only plain http:// URLs are supported");
        }
        let config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .proxy(None)
            .build();
        Ok(BenchClient {
            agent: ureq::Agent::new_with_config(config),
            api,
            endpoint: format!("{}{}", base_url.trim_end_matches('/'), api.path()),
            model,
        })
    }

    pub fn api(&self) -> Api {
        self.api
    }

    /// The URL requests go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends one streamed completion request and measures it. An HTTP error
    /// status, an error object in the stream, a malformed line, or a stream
    /// that ends without its final message is an error.
    pub fn measure(&self, prompt: &str, max_tokens: u32) -> anyhow::Result<Sample> {
        let body = self
            .api
            .request_body(self.model.as_deref(), prompt, max_tokens)
            .to_string();
        let start = Instant::now();
        let response = self
            .agent
            .post(&self.endpoint)
            .header("Content-Type", "application/json")
            .header(
                "Accept",
                match self.api {
                    Api::Ollama => "application/x-ndjson",
                    _ => "text/event-stream",
                },
            )
            .send(body)
            .with_context(|| format!("POST {}", self.endpoint))?;
        let status = response.status();
        let mut reader = BufReader::new(response.into_body().into_reader());
        if !status.is_success() {
            let mut text = String::new();
            let _ = reader.take(2048).read_to_string(&mut text);
            bail!(
                "POST {}: HTTP {}: {}",
                self.endpoint,
                status.as_u16(),
                text.trim()
            );
        }
        let mut stream = Stream::new(start);
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader
                .read_line(&mut line)
                .with_context(|| format!("reading the reply from {}", self.endpoint))?;
            if n == 0 {
                break;
            }
            let done = match self.api {
                Api::Ollama => stream.ollama_line(line.trim())?,
                Api::Openai => stream.openai_line(line.trim())?,
                Api::Llamacpp => stream.llamacpp_line(line.trim())?,
            };
            if done {
                // The final message is the end of the reply; a server that
                // keeps the connection open after it must not count.
                break;
            }
        }
        let latency = start.elapsed();
        stream.finish(self.api, latency)
    }
}

/// What has been seen of one streamed reply.
struct Stream {
    start: Instant,
    first_token: Option<Duration>,
    last_token: Option<Duration>,
    chunks: u64,
    done: bool,
    prompt_tokens: Option<u64>,
    gen_tokens: Option<u64>,
    prompt_tps: Option<f64>,
    gen_tps: Option<f64>,
}

fn as_u64(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(|x| {
        x.as_u64()
            .or_else(|| x.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
    })
}

fn as_f64(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
}

/// `count / seconds`, if both make sense.
fn rate(count: Option<u64>, seconds: Option<f64>) -> Option<f64> {
    let (c, s) = (count?, seconds?);
    (s > 0.0).then(|| c as f64 / s)
}

fn parse(line: &str) -> anyhow::Result<Value> {
    let v: Value =
        serde_json::from_str(line).with_context(|| format!("malformed line in reply: {line:?}"))?;
    if let Some(err) = v.get("error") {
        let msg = err
            .get("message")
            .and_then(Value::as_str)
            .or_else(|| err.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| err.to_string());
        bail!("server error: {msg}");
    }
    Ok(v)
}

/// The payload of an SSE `data:` line; `None` for other SSE lines
/// (comments, `event:`, `id:`, blank separators).
fn sse_data(line: &str) -> Option<&str> {
    line.strip_prefix("data:").map(str::trim)
}

impl Stream {
    fn new(start: Instant) -> Self {
        Stream {
            start,
            first_token: None,
            last_token: None,
            chunks: 0,
            done: false,
            prompt_tokens: None,
            gen_tokens: None,
            prompt_tps: None,
            gen_tps: None,
        }
    }

    fn token(&mut self) {
        let now = self.start.elapsed();
        self.first_token.get_or_insert(now);
        self.last_token = Some(now);
        self.chunks += 1;
    }

    /// One NDJSON line; true once the final one has been read.
    fn ollama_line(&mut self, line: &str) -> anyhow::Result<bool> {
        if line.is_empty() {
            return Ok(false);
        }
        let v = parse(line)?;
        if v.get("response")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            self.token();
        }
        if v.get("done").and_then(Value::as_bool) == Some(true) {
            self.done = true;
            let ns = |key| as_f64(&v, key).map(|ns| ns / 1e9);
            self.prompt_tokens = as_u64(&v, "prompt_eval_count");
            self.gen_tokens = as_u64(&v, "eval_count");
            self.prompt_tps = rate(self.prompt_tokens, ns("prompt_eval_duration"));
            self.gen_tps = rate(self.gen_tokens, ns("eval_duration"));
            return Ok(true);
        }
        Ok(false)
    }

    /// One SSE line of `/v1/completions`; true at `data: [DONE]`.
    fn openai_line(&mut self, line: &str) -> anyhow::Result<bool> {
        let Some(data) = sse_data(line) else {
            return Ok(false);
        };
        if data == "[DONE]" {
            self.done = true;
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let v = parse(data)?;
        let text = v
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
            .and_then(|c| c.get("text"))
            .and_then(Value::as_str);
        if text.is_some_and(|t| !t.is_empty()) {
            self.token();
        }
        if let Some(usage) = v.get("usage").filter(|u| u.is_object()) {
            self.prompt_tokens = as_u64(usage, "prompt_tokens").or(self.prompt_tokens);
            self.gen_tokens = as_u64(usage, "completion_tokens").or(self.gen_tokens);
        }
        Ok(false)
    }

    /// One SSE line of llama.cpp's `/completion`; true at the `stop` object.
    fn llamacpp_line(&mut self, line: &str) -> anyhow::Result<bool> {
        let Some(data) = sse_data(line) else {
            return Ok(false);
        };
        if data.is_empty() {
            return Ok(false);
        }
        let v = parse(data)?;
        if v.get("content")
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
        {
            self.token();
        }
        if v.get("stop").and_then(Value::as_bool) == Some(true) {
            self.done = true;
            if let Some(t) = v.get("timings").filter(|t| t.is_object()) {
                self.prompt_tokens = as_u64(t, "prompt_n");
                self.gen_tokens = as_u64(t, "predicted_n");
                self.prompt_tps = as_f64(t, "prompt_per_second")
                    .filter(|r| r.is_finite() && *r > 0.0)
                    .or_else(|| {
                        rate(
                            self.prompt_tokens,
                            as_f64(t, "prompt_ms").map(|ms| ms / 1e3),
                        )
                    });
                self.gen_tps = as_f64(t, "predicted_per_second")
                    .filter(|r| r.is_finite() && *r > 0.0)
                    .or_else(|| {
                        rate(
                            self.gen_tokens,
                            as_f64(t, "predicted_ms").map(|ms| ms / 1e3),
                        )
                    });
            } else {
                self.prompt_tokens = as_u64(&v, "tokens_evaluated");
                self.gen_tokens = as_u64(&v, "tokens_predicted");
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// The sample, filling in from the client's own counts and clock what
    /// the server did not say.
    fn finish(mut self, api: Api, latency: Duration) -> anyhow::Result<Sample> {
        if !self.done {
            return Err(anyhow!(
                "the {api} reply ended without its final message ({} token chunks read)",
                self.chunks
            ));
        }
        if self.gen_tokens.is_none() && self.chunks > 0 {
            self.gen_tokens = Some(self.chunks);
        }
        let secs = |d: Duration| d.as_secs_f64();
        if self.gen_tps.is_none() {
            if let (Some(n), Some(first), Some(last)) =
                (self.gen_tokens, self.first_token, self.last_token)
            {
                if n >= 2 {
                    self.gen_tps = rate(Some(n - 1), Some(secs(last - first)));
                }
            }
        }
        if self.prompt_tps.is_none() {
            self.prompt_tps = rate(self.prompt_tokens, self.first_token.map(secs));
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        Ok(Sample {
            ttft_ms: self.first_token.map(ms),
            latency_ms: ms(latency),
            prompt_tokens: self.prompt_tokens,
            gen_tokens: self.gen_tokens,
            prompt_tokens_per_s: self.prompt_tps,
            gen_tokens_per_s: self.gen_tps,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::thread;

    /// What the canned server does with one connection.
    struct Canned {
        status: &'static str,
        content_type: &'static str,
        /// Written one by one as chunks, with `gap` between them.
        parts: Vec<String>,
        gap: Duration,
        /// Chunked encoding, or close-delimited.
        chunked: bool,
    }

    /// The request the server read: request line, and body.
    type Seen = (String, Value);

    fn read_request(stream: &mut TcpStream) -> Seen {
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
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
        (
            request_line.trim().to_string(),
            serde_json::from_slice(&body).unwrap(),
        )
    }

    /// Serves one request with `canned` on 127.0.0.1; returns the base URL
    /// and a receiver for what the request was.
    fn serve(canned: Canned) -> (String, mpsc::Receiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let seen = read_request(&mut stream);
            tx.send(seen).unwrap();
            let framing = if canned.chunked {
                "Transfer-Encoding: chunked\r\n"
            } else {
                "Connection: close\r\n"
            };
            write!(
                stream,
                "HTTP/1.1 {}\r\nContent-Type: {}\r\n{framing}\r\n",
                canned.status, canned.content_type
            )
            .unwrap();
            stream.flush().unwrap();
            for part in &canned.parts {
                thread::sleep(canned.gap);
                if canned.chunked {
                    write!(stream, "{:x}\r\n{part}\r\n", part.len()).unwrap();
                } else {
                    stream.write_all(part.as_bytes()).unwrap();
                }
                stream.flush().unwrap();
            }
            if canned.chunked {
                stream.write_all(b"0\r\n\r\n").unwrap();
            }
            stream.flush().unwrap();
        });
        (url, rx)
    }

    fn ok(content_type: &'static str, parts: Vec<String>) -> Canned {
        Canned {
            status: "200 OK",
            content_type,
            parts,
            gap: Duration::from_millis(20),
            chunked: true,
        }
    }

    fn client(api: Api, url: &str, model: Option<&str>) -> BenchClient {
        BenchClient::new(api, url, model.map(str::to_string), Duration::from_secs(10)).unwrap()
    }

    #[test]
    fn ollama_uses_server_timings() {
        let mut parts: Vec<String> = ["Hel", "lo", " there"]
            .iter()
            .map(|t| format!("{}\n", json!({"model": "m", "response": t, "done": false})))
            .collect();
        parts.push(format!(
            "{}\n",
            json!({
                "model": "m", "response": "", "done": true,
                "prompt_eval_count": 12, "prompt_eval_duration": 60_000_000u64,
                "eval_count": 3, "eval_duration": 30_000_000u64,
            })
        ));
        let (url, seen) = serve(ok("application/x-ndjson", parts));
        let s = client(Api::Ollama, &url, Some("m"))
            .measure("Say hello", 16)
            .unwrap();
        let (line, body) = seen.recv().unwrap();
        assert_eq!(line, "POST /api/generate HTTP/1.1");
        assert_eq!(
            body,
            json!({"model": "m", "prompt": "Say hello", "stream": true, "options": {"num_predict": 16}})
        );
        let ttft = s.ttft_ms.unwrap();
        assert!(ttft >= 15.0, "{s:?}");
        assert!(s.latency_ms >= ttft + 40.0, "{s:?}");
        assert_eq!(s.prompt_tokens, Some(12));
        assert_eq!(s.gen_tokens, Some(3));
        assert!((s.prompt_tokens_per_s.unwrap() - 200.0).abs() < 1e-9);
        assert!((s.gen_tokens_per_s.unwrap() - 100.0).abs() < 1e-9);
    }

    #[test]
    fn openai_counts_chunks_without_usage() {
        let mut parts: Vec<String> = ["a", "b", "c", "d"]
            .iter()
            .map(|t| {
                format!(
                    "data: {}\n\n",
                    json!({"id": "x", "object": "text_completion", "choices": [{"index": 0, "text": t, "finish_reason": null}]})
                )
            })
            .collect();
        parts.push("data: [DONE]\n\n".to_string());
        let (url, seen) = serve(ok("text/event-stream", parts));
        let s = client(Api::Openai, &url, Some("m"))
            .measure("p", 4)
            .unwrap();
        let (line, body) = seen.recv().unwrap();
        assert_eq!(line, "POST /v1/completions HTTP/1.1");
        assert_eq!(
            body,
            json!({"model": "m", "prompt": "p", "max_tokens": 4, "stream": true})
        );
        let ttft = s.ttft_ms.unwrap();
        assert!(ttft >= 15.0 && s.latency_ms > ttft + 40.0, "{s:?}");
        assert_eq!(s.gen_tokens, Some(4));
        assert_eq!(s.prompt_tokens, None);
        assert_eq!(s.prompt_tokens_per_s, None);
        // 3 tokens over ~60 ms after the first: ~50/s, well under 200/s.
        let tps = s.gen_tokens_per_s.unwrap();
        assert!(tps > 5.0 && tps < 100.0, "{tps}");
    }

    #[test]
    fn openai_uses_usage_when_given() {
        let parts = vec![
            format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "text": "hi"}]})
            ),
            format!(
                "data: {}\n\n",
                json!({"choices": [{"index": 0, "text": " there"}]})
            ),
            format!(
                "data: {}\n\n",
                json!({"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}})
            ),
            "data: [DONE]\n\n".to_string(),
        ];
        let mut canned = ok("text/event-stream", parts);
        canned.chunked = false;
        let (url, _seen) = serve(canned);
        let s = client(Api::Openai, &url, Some("m"))
            .measure("p", 8)
            .unwrap();
        assert_eq!(s.prompt_tokens, Some(7));
        assert_eq!(s.gen_tokens, Some(5));
        // prompt tokens over the time to first token.
        let expect = 7.0 / (s.ttft_ms.unwrap() / 1e3);
        assert!((s.prompt_tokens_per_s.unwrap() - expect).abs() < 1e-6);
        assert!(s.gen_tokens_per_s.unwrap() > 0.0);
    }

    #[test]
    fn llamacpp_uses_timings() {
        let mut parts: Vec<String> = ["x", "y"]
            .iter()
            .map(|t| format!("data: {}\n\n", json!({"content": t, "stop": false})))
            .collect();
        parts.push(format!(
            "data: {}\n\n",
            json!({
                "content": "", "stop": true,
                "timings": {
                    "prompt_n": 10, "prompt_ms": 20.0, "prompt_per_second": 500.0,
                    "predicted_n": 2, "predicted_ms": 40.0, "predicted_per_second": 50.0,
                }
            })
        ));
        let (url, seen) = serve(ok("text/event-stream", parts));
        let s = client(Api::Llamacpp, &url, None).measure("q", 2).unwrap();
        let (line, body) = seen.recv().unwrap();
        assert_eq!(line, "POST /completion HTTP/1.1");
        assert_eq!(
            body,
            json!({"prompt": "q", "n_predict": 2, "stream": true, "ignore_eos": true, "cache_prompt": false})
        );
        assert!(s.ttft_ms.unwrap() < s.latency_ms);
        assert_eq!(s.prompt_tokens, Some(10));
        assert_eq!(s.gen_tokens, Some(2));
        assert_eq!(s.prompt_tokens_per_s, Some(500.0));
        assert_eq!(s.gen_tokens_per_s, Some(50.0));
    }

    #[test]
    fn http_error_and_truncated_stream() {
        let (url, _seen) = serve(Canned {
            status: "404 Not Found",
            content_type: "application/json",
            parts: vec![r#"{"error":"model \"m\" not found"}"#.to_string()],
            gap: Duration::ZERO,
            chunked: true,
        });
        let err = client(Api::Ollama, &url, Some("m"))
            .measure("p", 1)
            .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("HTTP 404") && msg.contains("not found"),
            "{msg}"
        );

        let (url, _seen) = serve(ok(
            "text/event-stream",
            vec![format!(
                "data: {}\n\n",
                json!({"content": "x", "stop": false})
            )],
        ));
        let err = client(Api::Llamacpp, &url, None)
            .measure("p", 1)
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("without its final message"),
            "{err:#}"
        );

        let (url, _seen) = serve(ok(
            "application/x-ndjson",
            vec!["{\"error\":\"out of memory\"}\n".to_string()],
        ));
        let err = client(Api::Ollama, &url, Some("m"))
            .measure("p", 1)
            .unwrap_err();
        assert!(format!("{err:#}").contains("out of memory"), "{err:#}");
    }

    #[test]
    fn construction() {
        let t = Duration::from_secs(1);
        assert!(BenchClient::new(Api::Ollama, "http://127.0.0.1:1", None, t).is_err());
        assert!(BenchClient::new(Api::Llamacpp, "https://127.0.0.1:1", None, t).is_err());
        let c =
            BenchClient::new(Api::Openai, "http://127.0.0.1:8000/", Some("m".into()), t).unwrap();
        assert_eq!(c.endpoint(), "http://127.0.0.1:8000/v1/completions");
        assert_eq!("llamacpp".parse::<Api>().unwrap(), Api::Llamacpp);
        assert!("vllm".parse::<Api>().is_err());
        assert_eq!(serde_json::to_value(Api::Openai).unwrap(), "openai");
    }

    #[test]
    fn sample_metric_lookup() {
        let s = Sample {
            ttft_ms: Some(1.0),
            latency_ms: 2.0,
            prompt_tokens: None,
            gen_tokens: None,
            prompt_tokens_per_s: None,
            gen_tokens_per_s: Some(3.0),
        };
        assert_eq!(s.metric("ttft_ms"), Some(1.0));
        assert_eq!(s.metric("latency_ms"), Some(2.0));
        assert_eq!(s.metric("gen_tokens_per_s"), Some(3.0));
        assert_eq!(s.metric("prompt_tokens_per_s"), None);
        assert_eq!(s.metric("nope"), None);
    }
}
