# jarvis from this checkout: jarvisd, jarvisctl, jarvis-shim and
# jarvis-cshim, installed side by side in $out/bin (jarvisd starts the
# jarvis-shim found next to itself for native units, and a sealed copy of
# the jarvis-cshim found there for containers).
{
  lib,
  rustPlatform,
  pkg-config,
  libseccomp,
  elfutils,
  zlib,
  openssl,
}:
let
  root = ../.;
  workspace = (builtins.fromTOML (builtins.readFile ../Cargo.toml)).workspace.package;
  lock = builtins.fromTOML (builtins.readFile ../Cargo.lock);
  # Whether a crate is in the build, so the C libraries follow Cargo.lock.
  uses = name: builtins.any (p: p.name == name) lock.package;
  # Leave out what the build does not read, so that editing it rebuilds
  # nothing: the build directory, the Nix files, the example repository.
  left = [
    "target"
    "result"
    "nix"
    "flake.nix"
    "flake.lock"
    "examples"
  ];
in
rustPlatform.buildRustPackage {
  pname = "jarvis";
  inherit (workspace) version;

  src = lib.cleanSourceWith {
    src = lib.cleanSource root;
    filter =
      path: _type: !(builtins.elem (lib.removePrefix "${toString root}/" (toString path)) left);
  };

  cargoLock.lockFile = ../Cargo.lock;

  cargoBuildFlags = [
    "--bin"
    "jarvisd"
    "--bin"
    "jarvisctl"
    "--bin"
    "jarvis-shim"
    "--bin"
    "jarvis-cshim"
  ];

  # cc (ring, zstd-sys and libbpf's C) comes with stdenv, as does make, which
  # libbpf-sys runs; pkg-config finds libelf and zlib for it.
  nativeBuildInputs = [ pkg-config ];
  buildInputs =
    # libcontainer's seccomp filters (libseccomp-sys links -lseccomp).
    [ libseccomp ]
    # libcontainer's eBPF device filter on cgroup v2 (vendored libbpf).
    ++ lib.optionals (uses "libbpf-sys") [ elfutils ]
    ++ lib.optionals (uses "libbpf-sys" || uses "libz-sys") [ zlib ]
    # libgit2's https transport (vendored libgit2).
    ++ lib.optionals (uses "openssl-sys") [ openssl ];

  # The tests start real cgroups, namespaces and containers as root; the
  # build sandbox has none of them (tests/run runs them).
  doCheck = false;

  meta = {
    description = "jarvisd and jarvisctl: a supervisor for the home server";
    license = lib.licenses.asl20;
    mainProgram = "jarvisctl";
    platforms = lib.platforms.linux;
  };
}
