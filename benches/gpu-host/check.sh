#!/bin/bash
# A GPU host check of jarvis: real NVML probing, GPU placement and injection
# into a native unit and a container (nvidia-smi and CUDA driver calls inside),
# re-adoption after kill -9, and the native end-to-end tests on pure cgroup v2.
set -u
# The binaries and tools, built and collected on a development machine (see
# BENCHMARKS.md): jarvisd, jarvis-shim (next to jarvisd), jarvisctl, the release `it` test binary, umoci,
# busybox (static) and cuda_probe (gcc -O2 -o cuda_probe cuda_probe.c -ldl).
D=${JARVIS_DEVICE_DIR:-$PWD/.device}
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
chmod +x "$D"/*
echo "== host"; uname -r; nvidia-smi -L; cat /proc/self/cgroup; cat /sys/fs/cgroup/cgroup.subtree_control
ldd --version | head -1; command -v python3 setsid; getent group nogroup daemon | cut -d: -f1
echo "== probe"; "$D/jarvisctl" probe; "$D/jarvisctl" probe --json > "$OUT/probe.json"

W=/tmp/jw; rm -rf $W; mkdir -p $W/units
echo "== image"
R=$W/bundle/rootfs
"$D/umoci" init --layout $W/layout && "$D/umoci" new --image $W/layout:latest && "$D/umoci" unpack --image $W/layout:latest $W/bundle >/dev/null
mkdir -p $R/bin $R/tmp $R/etc
cp "$D/busybox" $R/bin/; for a in sh ls echo sleep cat env mknod; do ln -sf busybox $R/bin/$a; done
cp "$D/cuda_probe" $R/cuda_probe
for f in $(ldd "$D/cuda_probe" "$(command -v nvidia-smi)" "$(ldconfig -p | awk '/libcuda.so.1 /{print $NF; exit}')" 2>/dev/null | grep -o '/[^ ]*' | sort -u); do
  mkdir -p "$R$(dirname "$f")"; cp -L "$f" "$R$f" 2>/dev/null; done
printf 'root:x:0:0:root:/:/bin/sh\n' > $R/etc/passwd; printf 'root:x:0:\n' > $R/etc/group
"$D/umoci" repack --image $W/layout:latest $W/bundle

echo "== jarvisd"
export JARVIS_SOCKET=$W/s.sock
start() { "$D/jarvisd" --units $W/units --state-dir $W/state --cgroup-parent jarvis-dev >> "$OUT/jarvisd.log" 2>&1 & sleep 1.5; }
start
"$D/jarvisctl" image import $W/layout --tag busybox:local
g() { printf '[gpu]\nwant = "%s"\nmin_vram = "%s"\n' "$1" "$2"; }
{ echo '[native]'; echo 'command = ["sh", "-c", "echo cvd=$CUDA_VISIBLE_DEVICES order=$CUDA_DEVICE_ORDER; nvidia-smi -L; sleep 1000"]'; g nvidia 100G; } > $W/units/native-gpu.toml
{ echo '[container]'; echo 'image = "busybox:local"'; echo 'command = ["sh", "-c", "echo cvd=$CUDA_VISIBLE_DEVICES; ls -l /dev/nvidia*; nvidia-smi -L; /cuda_probe; sleep 1000"]'; g nvidia 30G; printf '[stop]\ntimeout = "1s"\n'; } > $W/units/box-gpu.toml
{ echo '[native]'; echo 'command = ["sleep", "1000"]'; g nvidia 20G; } > $W/units/too-much.toml
# The device cgroup on v2 (an eBPF filter): a node outside the rules cannot be opened.
{ echo '[container]'; echo 'image = "busybox:local"'; echo 'command = ["sh", "-c", "if mknod /dev/k c 1 11 && echo jarvis-devtest > /dev/k; then echo kmsg=opened; else echo kmsg=denied; fi; sleep 1000"]'; printf '[security]\ncapabilities = ["CAP_MKNOD"]\n[stop]\ntimeout = "1s"\n'; } > $W/units/devtest.toml
{ echo '[native]'; echo 'command = ["sh", "-c", "echo cvd=$CUDA_VISIBLE_DEVICES; sleep 1000"]'; g auto 200G; } > $W/units/cpu-fallback.toml
"$D/jarvisctl" up; "$D/jarvisctl" up --wait --timeout 60s; sleep 6
"$D/jarvisctl" status; "$D/jarvisctl" status --json > "$OUT/status.json"
for u in native-gpu box-gpu cpu-fallback devtest; do echo "== logs $u"; "$D/jarvisctl" logs $u; done
P=$("$D/jarvisctl" status box-gpu --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["units"][0]["pid"])')
echo "== kill -9 jarvisd; box-gpu pid $P"; pkill -9 -f "$D/jarvisd --units"; sleep 0.5; start
"$D/jarvisctl" status box-gpu
"$D/jarvisctl" down; pkill -TERM -f "$D/jarvisd --units"; sleep 2
echo "== leftovers"; ls /sys/fs/cgroup | grep jarvis; grep $W /proc/self/mountinfo

echo "== container tests on cgroup v2"
[ -x "$D/ctest" ] && timeout 200 "$D/ctest" 2>&1 | tail -20
echo "== end-to-end tests on cgroup v2"
JARVISD_BIN="$D/jarvisd" JARVISCTL_BIN="$D/jarvisctl" timeout 300 "$D/it" --test-threads 4 limits:: supervise:: cli::up_ cli::logs_ cli::the_socket cli::validate_ 2>&1 | grep -v '^\s*[0-9]*: \|^\s*at ' | tail -80
echo "== done"
