#!/usr/bin/env bash
# The placement benchmark on the reference workload: jarvisd runs the unit of
# unit.toml.in (llama-server + SmolLM2, both forms), `jarvisctl bench` measures
# it natively and as a container in alternating rounds. As root, after
# setup.sh. Writes the result (JSON), the table, the chart and the target row
# (targets-placement.md) to OUT.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${JARVIS_BENCH_CACHE:-/var/cache/jarvis-bench}"
out="${OUT:-$here/../results}"
bin="${JARVIS_BIN:-$here/../../target/release}"
rounds="${ROUNDS:-6}"
mkdir -p "$out"
work="$(mktemp -d)"
stop() {
    local pid; pid="$(cat "$work/pid" 2>/dev/null)" || true
    # jarvisd stops the unit on SIGTERM; wait for it before removing its files.
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    rm -rf "$work"
}
trap stop EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/units"
sed -e "s|@CACHE@|$cache|g" -e "s|@PORT@|$port|g" "$here/unit.toml.in" > "$work/units/llm.toml"
export JARVIS_SOCKET="$work/jarvis.sock"
"$bin/jarvisd" --units "$work/units" --state-dir "$work/state" --cgroup-parent jarvis-llm-bench 2> "$work/jarvisd.log" &
echo $! > "$work/pid"
until "$bin/jarvisctl" status >/dev/null 2>&1; do sleep 0.1; done
"$bin/jarvisctl" bench llm --rounds "$rounds" --chart "$out/inference.svg" --json > "$out/inference.json"
python3 - "$out/inference.json" "$out/targets-placement.md" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{'metric':<22}{'native median':>15}{'p95':>10}{'container median':>18}{'p95':>10}{'ratio':>8}  95% CI")
for name, m in r["metrics"].items():
    n, c = m["native"], m["container"]
    ci = f"{m['ci_low']:.3f} to {m['ci_high']:.3f}" if m["ci_low"] is not None else "-"
    print(f"{name:<22}{n['median']:>15.2f}{n['p95']:>10.2f}{c['median']:>18.2f}{c['p95']:>10.2f}{m['ratio']:>8.3f}  {ci}")
print("verdict:", r["verdict"])
print("recommendation:", r["recommendation"])
# The bench's own share of each request: the client's latency against the
# server's own prompt + generation time (llama.cpp's timings).
shares = []
for rd in r["rounds"]:
    for s in rd["samples"]:
        if s.get("prompt_tokens") and s.get("prompt_tokens_per_s") and s.get("gen_tokens") and s.get("gen_tokens_per_s"):
            server_ms = 1000 * (s["prompt_tokens"] / s["prompt_tokens_per_s"] + s["gen_tokens"] / s["gen_tokens_per_s"])
            shares.append((s["latency_ms"] - server_ms) / s["latency_ms"])
if not shares:
    sys.exit("no sample has the server's timings: the bench's own overhead cannot be computed")
shares.sort()
overhead = shares[len(shares)//2]
print(f"bench overhead (client latency beyond the server's own time), median: {100*overhead:.2f}%")
# The target row BENCHMARKS.md quotes, decided here from the samples.
row = (f"| placement bench: its own overhead on the measured latency (median of {len(shares)} requests) "
       f"| < 1% | {100*overhead:.1f}% | {'pass' if overhead < 0.01 else '**miss**'} |")
with open(sys.argv[2], "w") as f:
    f.write(f"<!-- Written by benches/llm/bench.sh from {sys.argv[1].rsplit('/', 1)[-1]} ({r['created']}); not edited by hand. -->\n")
    f.write("| target | limit | measured | result |\n| --- | --- | --- | --- |\n" + row + "\n")
print(row)
PY
