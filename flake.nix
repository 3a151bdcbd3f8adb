# jarvis for Nix: the package (jarvisd, jarvisctl, jarvis-shim) and the
# NixOS module (services.jarvis). examples/homelab uses both.
{
  description = "jarvis: a supervisor for the home server";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs =
    { self, nixpkgs }:
    let
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forEachSystem = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in
    {
      packages = forEachSystem (pkgs: rec {
        jarvis = pkgs.callPackage ./nix/package.nix { };
        default = jarvis;
      });

      overlays.default = final: _prev: {
        jarvis = final.callPackage ./nix/package.nix { };
      };

      # The module, with this flake's package as services.jarvis.package.
      nixosModules.default =
        { lib, pkgs, ... }:
        {
          imports = [ ./nix/module.nix ];
          services.jarvis.package = lib.mkDefault self.packages.${pkgs.stdenv.hostPlatform.system}.default;
        };
      nixosModules.jarvis = self.nixosModules.default;
    };
}
