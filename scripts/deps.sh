#!/usr/bin/env bash
# Installs, on Debian or Ubuntu, the packages that building jarvis needs
# (and any more named as arguments), skipping what is already installed.
# scripts/demo and tests/run call it; nothing is installed when nothing is
# missing, so it is cheap to run every time.
#
# What the build needs, from the build scripts of the crates it compiles:
#   gcc, libc6-dev   rustc links through `cc`; ring, zstd-sys and nc compile
#                    C with it (the cc crate), as does libbpf-sys
#   make, pkg-config libbpf-sys builds its vendored libbpf with make, and
#                    libbpf's Makefile asks pkg-config for libelf and zlib
#   libelf-dev, zlib1g-dev
#                    libbpf's headers and -lelf -lz (libcontainer's eBPF
#                    device filter on cgroup v2)
#   libseccomp-dev   libseccomp-sys links -lseccomp (libcontainer's seccomp
#                    filters)
#   libssl-dev       openssl-sys finds OpenSSL through pkg-config (git2's
#                    https, for `jarvisctl apply` and `jarvisd --git`)
#
# Usage: scripts/deps.sh [PACKAGE...]
set -euo pipefail

build=(gcc libc6-dev make pkg-config libelf-dev zlib1g-dev libseccomp-dev libssl-dev)

installed() {
    [ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
    echo "scripts/deps.sh: not a Debian or Ubuntu system; install the equivalents of: ${build[*]} $*" >&2
    exit 0
fi

need=()
for pkg in "${build[@]}" "$@"; do
    installed "$pkg" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "scripts/deps.sh: missing packages: ${need[*]}; run as root, or: sudo apt-get install ${need[*]}" >&2
        exit 1
    fi
    echo "scripts/deps.sh: installing ${need[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

if ! command -v cargo >/dev/null; then
    echo "scripts/deps.sh: no cargo on PATH: install Rust (https://rustup.rs), then run this again" >&2
    exit 1
fi
