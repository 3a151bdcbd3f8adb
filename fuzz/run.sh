#!/usr/bin/env bash
# Build the fuzz targets and run each for a bounded time from the corpus kept
# in fuzz/corpus/. Fails (exit 1) when any target crashes, printing the
# crashing input's path and base64; prints one summary line per target:
#
#   fuzz TARGET: N runs in S s, corpus C inputs, no crash
#
# Usage: fuzz/run.sh [SECONDS_PER_TARGET [TARGET...]]   (default: 60, all)
#
# Environment:
#   CARGO_TARGET_DIR          builds go to $CARGO_TARGET_DIR/fuzz (else fuzz/target)
#   JARVIS_FUZZ_SANITIZER     none (default, stable toolchain) or address
#                             (nightly toolchain)
#   JARVIS_FUZZ_TOOLCHAIN     the rustup toolchain (default: stable, or
#                             nightly with a sanitizer)
#   JARVIS_FUZZ_INSTALL_ROOT  where cargo-fuzz is installed when missing
#                             (default: /var/cache/jarvis-ci/cargo-bin when
#                             writable, else ~/.cargo)
#   JARVIS_FUZZ_KEEP          a directory: the corpora grown by this run and
#                             any crash artifacts are left there
#
# The corpora are copied to a temporary directory first: runs never write
# into the checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
# libfuzzer-sys compiles libFuzzer (C++) with the cc crate.
bash scripts/deps.sh g++

CARGO_FUZZ_VERSION=0.13.2
ALL_TARGETS=(unit envfile proto manifest unpack)

secs="${1:-60}"
if [ "$#" -gt 0 ]; then shift; fi
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then targets=("${ALL_TARGETS[@]}"); fi
case "$secs" in '' | *[!0-9]*) echo "fuzz/run.sh: SECONDS_PER_TARGET must be a number, got '$secs'" >&2; exit 2 ;; esac

# The largest input each target is given.
max_len() {
    case "$1" in
        envfile) echo 16384 ;;
        *) echo 65536 ;;
    esac
}

sanitizer="${JARVIS_FUZZ_SANITIZER:-none}"
if [ "$sanitizer" = none ]; then
    toolchain="${JARVIS_FUZZ_TOOLCHAIN:-stable}"
else
    toolchain="${JARVIS_FUZZ_TOOLCHAIN:-nightly}"
fi
cargo=(cargo)
if command -v rustup > /dev/null 2>&1; then cargo=(cargo "+$toolchain"); fi

# cargo-fuzz: on PATH, or installed once into a cache.
if ! command -v cargo-fuzz > /dev/null 2>&1; then
    root="${JARVIS_FUZZ_INSTALL_ROOT:-}"
    if [ -z "$root" ]; then
        if mkdir -p /var/cache/jarvis-ci/cargo-bin 2> /dev/null && [ -w /var/cache/jarvis-ci/cargo-bin ]; then
            root=/var/cache/jarvis-ci/cargo-bin
        else
            root="${CARGO_HOME:-$HOME/.cargo}"
        fi
    fi
    export PATH="$root/bin:$PATH"
    if ! command -v cargo-fuzz > /dev/null 2>&1; then
        echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION into $root"
        CARGO_INSTALL_ROOT="$root" CARGO_TARGET_DIR="$root/build" \
            "${cargo[@]}" install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
    fi
fi

target_dir="${CARGO_TARGET_DIR:+$CARGO_TARGET_DIR/fuzz}"
target_dir="${target_dir:-$PWD/fuzz/target}"
triple="$(rustc "+$toolchain" -vV 2> /dev/null | sed -n 's/^host: //p' || true)"
if [ -z "$triple" ]; then triple="$(rustc -vV | sed -n 's/^host: //p')"; fi

# The committed Cargo.lock must be current (cargo fuzz build has no --locked).
"${cargo[@]}" fetch --locked --manifest-path fuzz/Cargo.toml

start=$(date +%s)
one=()
if [ "${#targets[@]}" -eq 1 ]; then one=("${targets[0]}"); fi
"${cargo[@]}" fuzz build --fuzz-dir fuzz --sanitizer "$sanitizer" --target-dir "$target_dir" "${one[@]}"
echo "fuzz: built in $(($(date +%s) - start)) s (toolchain $toolchain, sanitizer $sanitizer)"

work="$(mktemp -d "${TMPDIR:-/tmp}/jarvis-fuzz.XXXXXX")"
scratch_base=/dev/shm
if ! [ -d "$scratch_base" ] || ! [ -w "$scratch_base" ]; then scratch_base="$work"; fi
scratch="$(mktemp -d "$scratch_base/jarvis-fuzz-scratch.XXXXXX")"
cleanup() {
    rm -rf "$scratch"
    if [ -n "${JARVIS_FUZZ_KEEP:-}" ]; then
        mkdir -p "$JARVIS_FUZZ_KEEP"
        cp -r "$work"/. "$JARVIS_FUZZ_KEEP"/
        echo "fuzz: corpora, logs and artifacts kept in $JARVIS_FUZZ_KEEP"
    fi
    rm -rf "$work"
}
trap cleanup EXIT

failed=()
for t in "${targets[@]}"; do
    bin="$target_dir/$triple/release/$t"
    if ! [ -x "$bin" ]; then
        echo "fuzz $t: no such target (built: ${ALL_TARGETS[*]})" >&2
        failed+=("$t")
        continue
    fi
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
    if [ -d "fuzz/corpus/$t" ]; then cp -r "fuzz/corpus/$t"/. "$work/corpus/$t"/; fi
    log="$work/$t.log"
    rc=0
    JARVIS_FUZZ_SCRATCH="$scratch" "$bin" \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len="$(max_len "$t")" \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/$t/" \
        "$work/corpus/$t" > "$log" 2>&1 || rc=$?
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)"
    took="$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)"
    inputs="$(find "$work/corpus/$t" -type f | wc -l)"
    crashes=("$work/artifacts/$t"/*)
    if [ "$rc" -eq 0 ] && ! [ -e "${crashes[0]}" ]; then
        echo "fuzz $t: ${runs:-?} runs in ${took:-?} s, corpus $inputs inputs, no crash"
        continue
    fi
    failed+=("$t")
    echo "fuzz $t: CRASH (exit $rc) after ${runs:-?} runs, corpus $inputs inputs"
    echo "---- last lines of the $t log:"
    grep -v -e '^#[0-9]' -e '^INFO:' -e 'NEW_FUNC' "$log" | tail -60
    for a in "${crashes[@]}"; do
        [ -e "$a" ] || continue
        echo "---- crashing input $a ($(wc -c < "$a") bytes), base64:"
        base64 -w 76 "$a"
        echo "---- to reproduce: base64 -d > fuzz/corpus/$t/crash-NAME, then fuzz/run.sh 1 $t"
        echo "     (or $bin fuzz/corpus/$t/crash-NAME; see fuzz/README.md)"
    done
done

if [ "${#failed[@]}" -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz: all targets ran $secs s each without a crash"
