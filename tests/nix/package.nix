# nix/package.nix evaluated against the stub: what buildRustPackage is
# given (binaries, native libraries for the crates in Cargo.lock), and what
# its source filter keeps. `nix-instantiate --eval --strict --json
# tests/nix/package.nix` prints it.
let
  stub = import ./stub.nix;
  root = toString ../..;
  args = import ../../nix/package.nix {
    inherit (stub) lib;
    inherit (stub.pkgs)
      rustPlatform
      pkg-config
      libseccomp
      elfutils
      zlib
      openssl
      ;
  };
  keeps = path: type: args.src.filter "${root}/${path}" type;
  lock = builtins.fromTOML (builtins.readFile ../../Cargo.lock);
in
{
  inherit (args) pname version cargoBuildFlags doCheck;
  cargoLock = toString args.cargoLock.lockFile;
  nativeBuildInputs = map (d: d.name) args.nativeBuildInputs;
  buildInputs = map (d: d.name) args.buildInputs;
  bins = map (b: b.name) (builtins.fromTOML (builtins.readFile ../../Cargo.toml)).bin;
  crates = map (p: p.name) lock.package;
  kept = builtins.listToAttrs (
    map
      (p: {
        name = p.path;
        value = keeps p.path p.type;
      })
      [
        { path = "Cargo.toml"; type = "regular"; }
        { path = "Cargo.lock"; type = "regular"; }
        { path = "src"; type = "directory"; }
        { path = "unit"; type = "directory"; }
        { path = "tests"; type = "directory"; }
        { path = "benches"; type = "directory"; }
        { path = "target"; type = "directory"; }
        { path = "nix"; type = "directory"; }
        { path = "flake.nix"; type = "regular"; }
        { path = "examples"; type = "directory"; }
        { path = "unit/src/target"; type = "directory"; }
      ]
  );
}
