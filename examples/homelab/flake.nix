# The homelab box as a NixOS configuration: jarvisd from jarvis's flake,
# following this repository (services.jarvis.git), plus what the units need
# from the host (ollama, its user, the NVIDIA driver, the directories the
# containers mount).
#
#   nixos-rebuild switch --flake .#homelab
{
  description = "A homelab box whose services jarvis runs from this repository";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";
    # jarvis's own repository. Inside a jarvis checkout this example uses the
    # checkout; in a repository of your own, write where jarvis lives, e.g.
    # "git+https://git.example.org/jarvis.git".
    jarvis = {
      url = "path:../..";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs =
    { nixpkgs, jarvis, ... }:
    {
      nixosConfigurations.homelab = nixpkgs.lib.nixosSystem {
        system = "x86_64-linux";
        modules = [
          jarvis.nixosModules.default
          ./hardware-configuration.nix
          ./configuration.nix
        ];
      };
    };
}
