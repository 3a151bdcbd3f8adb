# The NixOS module: jarvisd as a systemd service, units declared in Nix
# (services.jarvis.units) or pulled from a git repository
# (services.jarvis.git), and the flags jarvisd takes for both.
#
# It uses few lib functions on purpose (mkOption, mkEnableOption, mkIf and
# a handful of types; the rest is builtins), so that tests/nix can evaluate it
# offline against a small stand-in for nixpkgs' lib.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;
  inherit (builtins)
    attrNames
    concatStringsSep
    listToAttrs
    map
    match
    replaceStrings
    ;

  cfg = config.services.jarvis;
  toml = import ./toml.nix;

  unitsDir = "/etc/jarvis/units";
  stateDir = "/var/lib/jarvis";

  # One ExecStart word: as it is when it is plain, else double-quoted with
  # systemd's escapes (and $ and % doubled, so systemd expands nothing).
  systemdArg =
    s:
    let
      escaped = replaceStrings [ "\\" "\"" "$" "%" ] [ "\\\\" "\\\"" "$$" "%%" ] s;
    in
    if match "[A-Za-z0-9_./:@+=,-]+" s != null then s else "\"${escaped}\"";

  # A table of the unit file ([native], [resources], ...): its keys as the
  # unit format spells them, checked by jarvisctl validate at build time.
  section =
    name:
    mkOption {
      type = types.nullOr (types.attrsOf types.anything);
      default = null;
      description = "The unit file's [${name}] table, its keys as the unit format spells them.";
    };

  unitType = types.submodule {
    options = {
      description = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "What the unit is, shown by jarvisctl status --json.";
      };
      depends_on = mkOption {
        type = types.nullOr (
          types.either (types.listOf types.str) (
            types.attrsOf (
              types.enum [
                "started"
                "healthy"
                "completed"
              ]
            )
          )
        );
        default = null;
        description = ''Units this one waits for: a list (started) or { db = "healthy"; }.'';
      };
      run = mkOption {
        type = types.nullOr (
          types.enum [
            "native"
            "container"
            "auto"
          ]
        );
        default = null;
        description = "Which form runs when the unit has both [native] and [container].";
      };
      env_file = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "KEY=VALUE files read at each start (absolute paths; never a Nix path, which would copy the file to the store).";
      };
      env = mkOption {
        type = types.attrsOf types.str;
        default = { };
        description = "Environment variables.";
      };
      native = section "native";
      container = section "container";
      resources = section "resources";
      restart = section "restart";
      health = section "health";
      stop = section "stop";
      security = section "security";
      logs = section "logs";
      gpu = section "gpu";
      bench = section "bench";
      device = mkOption {
        type = types.listOf (types.attrsOf types.anything);
        default = [ ];
        description = "[[device]] entries: { usb = \"10c4:ea60\"; as = \"/dev/zigbee\"; } or { path = \"/dev/net/tun\"; }.";
      };
      secret = mkOption {
        type = types.listOf (types.attrsOf types.anything);
        default = [ ];
        description = ''[[secret]] entries: { source = "/run/keys/db_password"; target = "db_password"; mode = "0440"; } (a mode is an octal string).'';
      };
    };
  };

  webhookType = types.submodule {
    options = {
      listen = mkOption {
        type = types.str;
        example = "0.0.0.0:8787";
        description = "The address jarvisd's HTTP listener binds (--http); the hook is POST /hooks/git.";
      };
      secretFile = mkOption {
        type = types.str;
        example = "/run/keys/jarvis-webhook";
        description = "The file holding the webhook's HMAC secret (--webhook-secret-file).";
      };
    };
  };

  gitType = types.submodule {
    options = {
      url = mkOption {
        type = types.str;
        example = "https://git.example.org/me/homelab.git";
        description = "The repository jarvisd polls and applies (--git).";
      };
      branch = mkOption {
        type = types.str;
        default = "main";
        description = "The branch whose head is applied (--git-branch).";
      };
      interval = mkOption {
        type = types.str;
        default = "5m";
        description = "How often jarvisd looks for a new revision (--git-interval).";
      };
      path = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "units";
        description = "The units directory inside the repository (--git-path); null: its root.";
      };
      webhook = mkOption {
        type = types.nullOr webhookType;
        default = null;
        description = "A push webhook (Forgejo, Gitea, GitHub) that applies at once instead of at the next poll.";
      };
    };
  };

  unitFiles = listToAttrs (
    map (name: {
      inherit name;
      value = pkgs.writeText "jarvis-unit-${name}.toml" (
        "# services.jarvis.units.${name}, written by jarvis's NixOS module\n"
        + toml.unitFile cfg.units.${name}
      );
    }) (attrNames cfg.units)
  );

  # jarvisd's arguments, in the order written.
  args =
    [
      "--state-dir"
      stateDir
      "--socket"
      cfg.socket
    ]
    ++ (if cfg.socketGroup != null then [ "--socket-group" cfg.socketGroup ] else [ ])
    ++ (if cfg.units != { } then [ "--units" unitsDir ] else [ ])
    ++ (
      if cfg.git != null then
        [
          "--git"
          cfg.git.url
          "--git-branch"
          cfg.git.branch
          "--git-interval"
          cfg.git.interval
        ]
        ++ (if cfg.git.path != null then [ "--git-path" cfg.git.path ] else [ ])
        ++ (
          if cfg.git.webhook != null then
            [
              "--http"
              cfg.git.webhook.listen
              "--webhook-secret-file"
              cfg.git.webhook.secretFile
            ]
          else
            [ ]
        )
      else
        [ ]
    )
    ++ (if cfg.ageIdentity != null then [ "--age-identity" cfg.ageIdentity ] else [ ])
    ++ cfg.extraArgs;

  jarvisd = "${cfg.package}/bin/jarvisd";
  jarvisctl = "${cfg.package}/bin/jarvisctl";
in
{
  options.services.jarvis = {
    enable = lib.mkEnableOption "jarvisd, the supervisor of the home server's services";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = "pkgs.callPackage ./nix/package.nix { }";
      description = "The jarvis package (jarvisd, jarvisctl, jarvis-shim and jarvis-cshim, side by side).";
    };

    units = mkOption {
      type = types.attrsOf unitType;
      default = { };
      example = {
        ollama = {
          native = {
            command = [
              "/run/current-system/sw/bin/ollama"
              "serve"
            ];
            user = "ollama";
          };
          gpu = {
            want = "auto";
            min_vram = "6G";
          };
          health.http = "http://127.0.0.1:11434/api/version";
        };
      };
      description = ''
        Units, by name, in the unit file's shape (see jarvis's README): each is
        written to /etc/jarvis/units/NAME.toml and checked with
        `jarvisctl validate` when the system is built, so a bad unit fails
        the build. A change reloads jarvisd (`jarvisctl up`): changed units
        restart, the others keep running.
      '';
    };

    git = mkOption {
      type = types.nullOr gitType;
      default = null;
      description = "Pull units from a git repository: each new revision is applied as a generation, health-gated, rolled back on failure.";
    };

    ageIdentity = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "/etc/ssh/ssh_host_ed25519_key";
      description = "The host identity that decrypts the units' .age files (--age-identity): an age identity file or an SSH ed25519 private key. null: jarvisd's default, /etc/jarvis/age.key.";
    };

    socket = mkOption {
      type = types.str;
      default = "/run/jarvis/jarvis.sock";
      description = "jarvisd's control socket (--socket); jarvisctl finds it through JARVIS_SOCKET.";
    };

    socketGroup = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "A group whose members may use jarvisctl (--socket-group); null: root only.";
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "--subnet-pool"
        "10.90.0.0/16"
      ];
      description = "More jarvisd arguments.";
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.units == { } || cfg.git == null;
        message = "services.jarvis: set units or git, not both (a git repository's generation is the whole unit set)";
      }
    ];

    environment.systemPackages = [ cfg.package ];
    environment.variables.JARVIS_SOCKET = cfg.socket;

    environment.etc = listToAttrs (
      map (name: {
        name = "jarvis/units/${name}.toml";
        value.source = unitFiles.${name};
      }) (attrNames unitFiles)
    );

    # The units as one directory, checked by jarvisctl validate: a unit it
    # refuses fails the system's build, with every problem as FILE:LINE:COL.
    system.checks =
      if cfg.units != { } then
        [
          (pkgs.runCommand "jarvis-units-valid" { } ''
            mkdir units
            ${concatStringsSep "\n" (
              map (name: "ln -s ${unitFiles.${name}} units/${name}.toml") (attrNames unitFiles)
            )}
            ${jarvisctl} validate units
            touch $out
          '')
        ]
      else
        [ ];

    systemd.services.jarvisd = {
      description = "jarvisd, the supervisor of the home server's services";
      wantedBy = [ "multi-user.target" ];
      wants = [ "network-online.target" ];
      after = [ "network-online.target" ];
      # nft loads the table of bridged containers' rules.
      path = [ pkgs.nftables ];
      # A change of units reloads (jarvisctl up: changed units restart, the
      # others keep running) instead of restarting jarvisd.
      reloadTriggers = map (name: unitFiles.${name}) (attrNames unitFiles);
      serviceConfig = {
        Type = "simple";
        ExecStart = concatStringsSep " " (map systemdArg ([ jarvisd ] ++ args));
        Restart = "on-failure";
        RestartSec = "2s";
        # Units are children of their shims, not of jarvisd: when jarvisd
        # dies, systemd must leave them (and their shims) running for the
        # next jarvisd to re-adopt. A stop (SIGTERM) still stops every unit:
        # jarvisd does that itself, each with its own stop timeout.
        KillMode = "process";
        TimeoutStopSec = "5min";
        # jarvisd makes and limits cgroups.
        Delegate = "yes";
        StateDirectory = "jarvis";
        StateDirectoryMode = "0700";
        # The socket's directory; kept across restarts of jarvisd.
        RuntimeDirectory = "jarvis";
        RuntimeDirectoryMode = "0755";
        RuntimeDirectoryPreserve = "yes";
      }
      // (
        if cfg.units != { } then
          {
            ExecReload = concatStringsSep " " (
              map systemdArg [
                jarvisctl
                "--socket"
                cfg.socket
                "up"
              ]
            );
          }
        else
          { }
      );
    };
  };
}
