# The box: jarvisd applying this repository's units/ from its main branch,
# and the host side of those units.
{ pkgs, ... }:
{
  networking.hostName = "homelab";
  system.stateVersion = "25.05";

  services.jarvis = {
    enable = true;
    git = {
      # Where this repository is pushed; jarvisd fetches it from there.
      url = "https://git.example.org/me/homelab.git";
      branch = "main";
      interval = "5m";
      path = "units";
      # Optional: apply on push instead of at the next poll. Add a webhook
      # for push events to http://homelab:8787/hooks/git with the secret in
      # this file (Forgejo, Gitea and GitHub sign the body with it).
      webhook = {
        listen = "0.0.0.0:8787";
        secretFile = "/etc/jarvis/webhook-secret";
      };
    };
    # Decrypts secrets/*.age: encrypt them to this key's public half,
    # /etc/ssh/ssh_host_ed25519_key.pub.
    ageIdentity = "/etc/ssh/ssh_host_ed25519_key";
  };

  services.openssh.enable = true;
  networking.firewall.allowedTCPPorts = [
    8123 # Home Assistant
    8787 # jarvis's webhook
  ];

  # ollama runs natively (units/ollama.toml): its program and its user.
  environment.systemPackages = [ pkgs.ollama-cuda ];
  users.users.ollama = {
    isSystemUser = true;
    group = "ollama";
    home = "/var/lib/ollama";
    createHome = true;
    extraGroups = [
      "render"
      "video"
    ];
  };
  users.groups.ollama = { };

  # The NVIDIA driver, for ollama's [gpu].
  nixpkgs.config.allowUnfree = true;
  hardware.graphics.enable = true;
  hardware.nvidia.open = true;
  services.xserver.videoDrivers = [ "nvidia" ];

  # What the containers mount.
  systemd.tmpfiles.rules = [
    "d /srv/home-assistant 0750 root root -"
    "d /srv/open-webui 0750 root root -"
    "d /srv/tailscale 0700 root root -"
  ];
}
